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

struct CompressParams {
  /// Largest number of halving rounds (ratio 2^16).
  static constexpr int64_t kMaxRounds = 16;

  int64_t rounds = 2;       ///< T: halving rounds
  int64_t blockSize = 128;  ///< B: walk block (even)
  int64_t sink = 32;        ///< S: first tokens kept exactly
  int64_t recent = 32;      ///< W: last tokens kept exactly
  double gamma = 4.0;       ///< walk step size
  double temperature = 1.0; ///< tau: exp-kernel temperature
  double c0 = 0.025;        ///< normaliser coordinate of the kernel
  uint64_t seed = 0;        ///< Philox key
  double scale = 0.0;       ///< logit scale; 0 means 1/sqrt(D)

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
