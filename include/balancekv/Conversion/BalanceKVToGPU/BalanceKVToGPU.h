//===- BalanceKVToGPU.h - ops => generated GPU kernels ----------*- C++ -*-===//
#ifndef BALANCEKV_CONVERSION_BALANCEKVTOGPU_BALANCEKVTOGPU_H
#define BALANCEKV_CONVERSION_BALANCEKVTOGPU_BALANCEKVTOGPU_H

#include "mlir/IR/PatternMatch.h"

namespace balancekv {

/// Whether the generated kernels take `op` (a balancekv op); emits the
/// diagnostic that says why not.
llvm::LogicalResult checkGPUSupported(mlir::Operation *op);

/// compress (balance) and decode attention => gpu.func kernels in one
/// gpu.module per builtin.module, launched by gpu.launch_func on device
/// buffers. `smCount` sizes the decode kernels' split-K grid.
void populateBalanceKVToGPUPatterns(mlir::RewritePatternSet &patterns,
                                    int64_t smCount);

/// After the patterns: the device buffers of the compression stages' state
/// (tokens, doublings, signs) are reused by the next stage allocation of
/// their type once their last launch has passed (the rounds ping-pong) and
/// freed after their last launch, where only launches use them (a stage
/// result read as a tensor is the caller's).
void freeGPUStageScratch(mlir::Operation *root);

} // namespace balancekv

#endif // BALANCEKV_CONVERSION_BALANCEKVTOGPU_BALANCEKVTOGPU_H
