//===- CompressedLayout.h - Token layout of a compressed cache --*- C++ -*-===//
//
// The spec's section 2 layout (sink, compressed middle, recent window) as one
// header-only helper with no MLIR dependency: the dialect's type inference, the
// CPU reference and the CUDA launchers all size buffers with it.
//
//===----------------------------------------------------------------------===//
#ifndef BALANCEKV_SUPPORT_COMPRESSEDLAYOUT_H
#define BALANCEKV_SUPPORT_COMPRESSEDLAYOUT_H

#include <algorithm>
#include <cstdint>

namespace balancekv {

/// Sizes of the three segments for a cache of `n` tokens.
struct CompressedLayout {
  int64_t sink = 0;        ///< S' = min(S, n)
  int64_t recent = 0;      ///< W' = min(W, n - S')
  int64_t middle = 0;      ///< L_0 = n - S' - W'
  int64_t keptMiddle = 0;  ///< L_T = floor(L_0 / 2^T)

  /// m = S' + L_T + W'.
  int64_t compressedLength() const { return sink + keptMiddle + recent; }

  static CompressedLayout compute(int64_t n, int64_t sink, int64_t recent,
                                  int64_t rounds) {
    CompressedLayout l;
    l.sink = std::min(sink, n);
    l.recent = std::min(recent, n - l.sink);
    l.middle = n - l.sink - l.recent;
    // Repeated floor-halving equals one shift: floor(floor(x/2)/2) = floor(x/4).
    l.keptMiddle = rounds >= 63 ? 0 : (l.middle >> rounds);
    return l;
  }

  /// Method adaptive (spec section 6) keeps on average `meanBudget(...)`
  /// tokens per KV head -- the same total memory as this layout unless a
  /// budget is given -- but splits it unevenly over the heads of a batch
  /// row; one head may keep up to this many times the mean.
  static constexpr int64_t kAdaptiveCapacityFactor = 2;

  /// The adaptive method's mean tokens per head: `budget` (clamped to the
  /// cache), or this layout's length when `budget` is 0.
  int64_t adaptiveMean(int64_t n, int64_t budget) const {
    return budget > 0 ? std::min(budget, n) : compressedLength();
  }

  /// The adaptive layout's slots per head: the most one head may keep.
  int64_t adaptiveCapacity(int64_t n, int64_t budget) const {
    return std::min(n, kAdaptiveCapacityFactor * adaptiveMean(n, budget));
  }
};

} // namespace balancekv

#endif // BALANCEKV_SUPPORT_COMPRESSEDLAYOUT_H
