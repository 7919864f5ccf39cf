//===- Pipelines.h - balancekv pass pipelines -------------------*- C++ -*-===//
#ifndef BALANCEKV_PIPELINES_PIPELINES_H
#define BALANCEKV_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"

namespace balancekv {

/// balancekv ops (and the upstream dialects around them) on tensors down to
/// the LLVM dialect for the CPU: lower-to-loops, one-shot bufferization,
/// deallocation, loops, and the *-to-llvm conversions. The result runs under
/// `mlir-runner` or the MLIR ExecutionEngine.
llvm::LogicalResult buildCPUPipeline(mlir::OpPassManager &pm);

/// Registers `--balancekv-cpu-pipeline`.
void registerBalanceKVPipelines();

} // namespace balancekv

#endif // BALANCEKV_PIPELINES_PIPELINES_H
