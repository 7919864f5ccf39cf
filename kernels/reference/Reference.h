//===- Reference.h - CPU reference of BalanceKV and baselines ---*- C++ -*-===//
//
// The yardstick for every backend: exactly `balancekv-spec.md`, in fp64,
// plain C++17 without MLIR. Tensors are contiguous row-major
// `[batch, heads, seq, dim]` in f16, bf16 or f32 storage.
//
//===----------------------------------------------------------------------===//
#ifndef BALANCEKV_KERNELS_REFERENCE_REFERENCE_H
#define BALANCEKV_KERNELS_REFERENCE_REFERENCE_H

#include "balancekv/Support/CompressParams.h"
#include "balancekv/Support/CompressedLayout.h"
#include "kernels/reference/FloatStorage.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace balancekv::reference {

enum class Method { Balance, Uniform, Streaming, SnapKV, KNorm, Adaptive };
const char *methodName(Method m);
std::optional<Method> parseMethod(const std::string &name);

/// A read-only view of a contiguous tensor; rank 4 unless said otherwise.
struct TensorRef {
  const void *data = nullptr;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;

  int64_t numElements() const;
  double at(int64_t i) const { return loadElement(data, dtype, i); }
};

/// An owning tensor, handy for tests and tools.
struct Tensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;

  Tensor() = default;
  Tensor(DType dtype, std::vector<int64_t> shape);
  int64_t numElements() const;
  void set(int64_t i, float v) { storeElement(bytes.data(), dtype, i, v); }
  double at(int64_t i) const { return loadElement(bytes.data(), dtype, i); }
  TensorRef ref() const { return {bytes.data(), dtype, shape}; }
};

struct Status {
  bool ok = true;
  std::string message;
  static Status error(std::string m) { return {false, std::move(m)}; }
};

/// The spec's parameters (defaults and ranges in CompressParams.h) plus the
/// reference's method choice and SnapKV's pooling kernel.
struct CompressOptions : CompressParams {
  Method method = Method::Balance;
  int64_t snapkvPool = 7; ///< SnapKV max-pool kernel (odd)
  /// Method adaptive refits the kept tokens' weights to the observation
  /// queries (spec section 6); false only for the ablation.
  bool adaptiveRefit = true;
};
Status validate(const CompressOptions &opts);

/// The kept tokens of every (batch, KV head): `indices[(b*H + h)*M + j]` is
/// the cache position of kept token j (position order) and `logWeights` its
/// log-weight. M is the same for every head (spec section 2) except with
/// method adaptive (spec section 6): there head (b, h) keeps
/// `lengths[b*H + h]` <= M tokens and its slots past them are padding (index
/// -1, log-weight -inf; `gather` writes zero rows).
struct Selection {
  int64_t batch = 0, heads = 0, m = 0;
  std::vector<int64_t> indices;
  std::vector<float> logWeights;
  std::vector<int64_t> lengths; ///< [B*H] valid counts; empty: all M
};

/// One halving round's trace on one head, for tests and debugging.
struct RoundTrace {
  std::vector<int8_t> signs; ///< sigma over the round's sequence
  int64_t crossover = 0;     ///< c of spec section 3, step 4
  int8_t keptColour = 0;     ///< kappa
};

/// Step 4 of spec section 3 on one round's signs: keeps floor(L/2) positions
/// (indices into `sigma`, position order); `doubled[j]` says whether kept
/// position j had its weight doubled (the kappa-coloured tokens up to c).
struct CrossoverSelection {
  std::vector<int64_t> kept;
  std::vector<bool> doubled;
  int64_t crossover = 0;
  int8_t keptColour = 0;
};
CrossoverSelection selectByCrossover(const std::vector<int8_t> &sigma);

/// The kept middle positions and log-weights after one halving round.
struct RoundResult {
  std::vector<int64_t> kept;
  std::vector<double> logW;
};

/// Spec section 3 for one (batch, KV head): compresses the middle segment of
/// `n` tokens (keys `[n, d]`, values `[n, dv]`, fp64 row-major). Returns the
/// kept middle positions (relative to the middle) and their log-weights.
/// `trace`, when given, receives one entry per round; `rounds`, when given,
/// the kept set after each round (a run of T rounds passes through the
/// results of every T' < T).
void balanceMiddle(const double *keys, const double *values, int64_t n,
                   int64_t d, int64_t dv, const CompressOptions &opts,
                   double scale, uint32_t batch, uint32_t kvHead,
                   std::vector<int64_t> &kept, std::vector<double> &logW,
                   std::vector<RoundTrace> *trace = nullptr,
                   std::vector<RoundResult> *rounds = nullptr);

/// Every method of spec sections 2-4 and 6 on `key`/`value`
/// `[B, Hkv, N, D|Dv]`. `observation` `[B, Hq, Lobs, D]` is required for
/// SnapKV and adaptive (for adaptive: the queries of the cache's last Lobs
/// positions).
Status compress(const TensorRef &key, const TensorRef &value,
                const CompressOptions &opts, Selection &out,
                const TensorRef *observation = nullptr);

/// Gathers kept rows of `src` `[B, H, N, X]` into `[B, H, M, X]`, same dtype.
Tensor gather(const TensorRef &src, const Selection &sel);

struct AttentionOptions {
  double scale = 0.0; ///< 0 means 1/sqrt(D)
  bool causal = false;
  const int64_t *kvLen = nullptr; ///< optional [B] valid lengths, clamped
                                  ///< to [0, N] as on every back end
  bool kvLenPerHead = false;      ///< kvLen is [B, Hkv]: one per KV head
};

/// softmax(scale q kᵀ + logWeights) v in fp64, `[B, Hq, L, Dv]`. GQA maps
/// query head h to KV head h / (Hq / Hkv). `logWeights` `[B, Hkv, N]` may be
/// null (plain attention). Rows that see no key are zero.
Status attention(const TensorRef &query, const TensorRef &key,
                 const TensorRef &value, const AttentionOptions &opts,
                 std::vector<double> &out, const float *logWeights = nullptr);

/// Attention over a compressed cache: `attention` with the log-weights
/// `[B, Hkv, M]` (required) added to the logits.
Status weightedAttention(const TensorRef &query, const TensorRef &key,
                         const TensorRef &value, const float *logWeights,
                         const AttentionOptions &opts,
                         std::vector<double> &out);

/// ||a - b|| / ||b|| per row of length `dim`, averaged over rows.
double meanRelativeError(const std::vector<double> &approx,
                         const std::vector<double> &exact, int64_t dim);

} // namespace balancekv::reference

#endif // BALANCEKV_KERNELS_REFERENCE_REFERENCE_H
