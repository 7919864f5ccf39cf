//===- CompressParams.h - compression parameters, defaults, checks -*- C++
//-*-===//
//
// The spec's compression parameters (section 3) with their defaults and the
// one check of their ranges. Header-only and free of MLIR, like
// CompressedLayout.h: the op verifier, --balancekv-compress-kv-cache, the CPU
// reference, the C API and balancekv-eval all validate through
// `CompressParams::validate()`, so every layer rejects the same values with
// the same message.
//
//===----------------------------------------------------------------------===//
#ifndef BALANCEKV_SUPPORT_COMPRESSPARAMS_H
#define BALANCEKV_SUPPORT_COMPRESSPARAMS_H

#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>

namespace balancekv {

/// The parameters, once: X(type, member, name, default, meaning). `name` is
/// how the IR attribute (`#balancekv.compress_params<name = ...>`), the C API
/// (`balancekv_compress_params.name`), pass options and tool flags (with '-'
/// for '_') spell it; every layer reads and writes the parameters through
/// this table, so a new parameter is one line here, a range check in
/// validate() and a field in the C API header.
#define BALANCEKV_COMPRESS_PARAMS(X)                                           \
  BALANCEKV_COMPRESS_PARAMS_WITH(BALANCEKV_PARAM_CALL, X)
/// The same table with `arg` passed first: F(arg, type, member, ...), for
/// tables built from this one (RuntimeCallABI.h).
#define BALANCEKV_COMPRESS_PARAMS_WITH(F, arg)                                 \
  F(arg, int64_t, rounds, rounds, 2, "halving rounds T (ratio 2^T)")           \
  F(arg, int64_t, blockSize, block_size, 128, "walk block size (even)")        \
  F(arg, int64_t, sink, sink, 32, "first tokens kept exactly")                 \
  F(arg, int64_t, recent, recent, 32, "last tokens kept exactly")              \
  F(arg, double, gamma, gamma, 4.0, "walk step size")                          \
  F(arg, double, temperature, temperature, 1.0, "exp-kernel temperature")      \
  F(arg, double, c0, c0, 0.025, "normaliser coordinate of the kernel")         \
  F(arg, uint64_t, seed, seed, 0, "Philox key")                                \
  F(arg, float, scale, scale, 0.0f, "logit scale; 0 means 1/sqrt(D)")       \
  F(arg, int64_t, budget, budget, 0,                                           \
    "adaptive: mean tokens kept per KV head (0: sink + middle/2^T + recent)")
#define BALANCEKV_PARAM_CALL(X, type, member, name, dflt, doc)                 \
  X(type, member, name, dflt, doc)

struct CompressParams {
  /// Largest number of halving rounds (ratio 2^16).
  static constexpr int64_t kMaxRounds = 16;

#define BALANCEKV_PARAM_MEMBER(type, member, name, dflt, doc)                  \
  type member = dflt;
  BALANCEKV_COMPRESS_PARAMS(BALANCEKV_PARAM_MEMBER)
#undef BALANCEKV_PARAM_MEMBER

  bool operator==(const CompressParams &o) const {
    bool same = true;
#define BALANCEKV_PARAM_EQ(type, member, name, dflt, doc)                      \
  same = same && member == o.member;
    BALANCEKV_COMPRESS_PARAMS(BALANCEKV_PARAM_EQ)
#undef BALANCEKV_PARAM_EQ
    return same;
  }
  bool operator!=(const CompressParams &o) const { return !(*this == o); }

  /// Empty when every parameter is in range, else what is wrong, naming the
  /// parameter as the IR attribute and the C API field do.
  std::string validate() const {
    if (rounds < 0 || rounds > kMaxRounds)
      return "rounds must be in [0, 16], got " + str(rounds);
    if (blockSize < 2 || blockSize % 2 != 0)
      return "block_size must be even and >= 2, got " + str(blockSize);
    if (sink < 0)
      return "sink must be >= 0, got " + str(sink);
    if (recent < 0)
      return "recent must be >= 0, got " + str(recent);
    if (!(gamma >= 0) || !std::isfinite(gamma))
      return "gamma must be finite and >= 0, got " + str(gamma);
    if (!(temperature > 0) || !std::isfinite(temperature))
      return "temperature must be finite and > 0, got " + str(temperature);
    if (!(c0 >= 0) || !std::isfinite(c0))
      return "c0 must be finite and >= 0, got " + str(c0);
    if (!(scale >= 0) || !std::isfinite(scale))
      return "scale must be finite and > 0 (0: 1/sqrt(D)), got " + str(scale);
    if (budget < 0)
      return "budget must be >= 0 (0: the layout's length), got " +
             str(budget);
    return {};
  }

private:
  template <typename T> static std::string str(T x) {
    std::ostringstream os;
    os << x;
    return os.str();
  }
};

} // namespace balancekv

#endif // BALANCEKV_SUPPORT_COMPRESSPARAMS_H
