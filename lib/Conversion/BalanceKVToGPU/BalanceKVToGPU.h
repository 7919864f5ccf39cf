//===- BalanceKVToGPU.h - the GPU lowering's pieces -------------*- C++ -*-===//
#ifndef BALANCEKV_LIB_CONVERSION_BALANCEKVTOGPU_BALANCEKVTOGPU_H
#define BALANCEKV_LIB_CONVERSION_BALANCEKVTOGPU_BALANCEKVTOGPU_H

#include "balancekv/Conversion/BalanceKVToGPU/BalanceKVToGPU.h"
#include "balancekv/Conversion/Utils/Buffers.h"
#include "balancekv/Dialect/BalanceKV/IR/BalanceKVOps.h"

#include <memory>

namespace balancekv {
namespace gpukernels {
class KernelModules;
} // namespace gpukernels

/// compress and its stages.
llvm::LogicalResult checkCompressForGPU(mlir::Operation *op);
llvm::LogicalResult checkAttentionForGPU(mlir::Operation *op);

/// The patterns share `kms`: the kernels generated so far, one gpu.module per
/// builtin.module, so that equal configurations reuse one kernel.
void populateCompressToGPUPatterns(
    mlir::RewritePatternSet &patterns,
    std::shared_ptr<gpukernels::KernelModules> kms);
void populateAttentionToGPUPatterns(
    mlir::RewritePatternSet &patterns,
    std::shared_ptr<gpukernels::KernelModules> kms, int64_t smCount);

} // namespace balancekv

#endif // BALANCEKV_LIB_CONVERSION_BALANCEKVTOGPU_BALANCEKVTOGPU_H
