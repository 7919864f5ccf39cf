//===- BalanceKVToGPU.h - the GPU lowering's pieces -------------*- C++ -*-===//
#ifndef BALANCEKV_LIB_CONVERSION_BALANCEKVTOGPU_BALANCEKVTOGPU_H
#define BALANCEKV_LIB_CONVERSION_BALANCEKVTOGPU_BALANCEKVTOGPU_H

#include "balancekv/Conversion/Utils/Buffers.h"
#include "balancekv/Dialect/BalanceKV/IR/BalanceKVOps.h"

#include "mlir/IR/PatternMatch.h"

namespace balancekv {
namespace gpukernels {
class KernelModules;
} // namespace gpukernels

/// What the generated kernels cover; anything else gets a diagnostic.
llvm::LogicalResult checkCompressForGPU(CompressOp op);
llvm::LogicalResult checkAttentionForGPU(mlir::Operation *op);

/// `smCount` sizes the split-K grid of the decode kernels.
void populateCompressToGPUPatterns(mlir::RewritePatternSet &patterns,
                                   gpukernels::KernelModules &kms);
void populateAttentionToGPUPatterns(mlir::RewritePatternSet &patterns,
                                    gpukernels::KernelModules &kms,
                                    int64_t smCount);

} // namespace balancekv

#endif // BALANCEKV_LIB_CONVERSION_BALANCEKVTOGPU_BALANCEKVTOGPU_H
