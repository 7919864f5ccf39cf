//===- Layout.h - the compressed layout as IR ------------------*- C++ -*-===//
//
// CompressedLayout::compute (spec section 2) for a cache length known only
// when the program runs: the lowerings size their buffers with it. Static
// lengths fold to the constants CompressedLayout gives.
//
//===----------------------------------------------------------------------===//
#ifndef BALANCEKV_CONVERSION_UTILS_LAYOUT_H
#define BALANCEKV_CONVERSION_UTILS_LAYOUT_H

#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace balancekv {

/// Index values of the segments of a cache of `n` tokens.
struct LayoutValues {
  mlir::Value sink;       ///< S' = min(S, n)
  mlir::Value recent;     ///< W' = min(W, n - S')
  mlir::Value middle;     ///< L_0 = n - S' - W'
  mlir::Value keptMiddle; ///< L_T = L_0 >> T
  mlir::Value length;     ///< M = S' + L_T + W'
};

LayoutValues buildCompressedLayout(mlir::ImplicitLocOpBuilder &b, mlir::Value n,
                                   int64_t sink, int64_t recent,
                                   int64_t rounds);

} // namespace balancekv

#endif // BALANCEKV_CONVERSION_UTILS_LAYOUT_H
