//===- Pipelines.h - balancekv pass pipelines -------------------*- C++ -*-===//
#ifndef BALANCEKV_PIPELINES_PIPELINES_H
#define BALANCEKV_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"
#include "balancekv/Support/OptionDefaults.h"
#include "mlir/Pass/PassOptions.h"

namespace balancekv {

/// balancekv ops (and the upstream dialects around them) on tensors down to
/// the LLVM dialect for the CPU: lower-to-loops, one-shot bufferization,
/// deallocation, loops, and the *-to-llvm conversions. The result runs under
/// `mlir-runner` or the MLIR ExecutionEngine.
llvm::LogicalResult buildCPUPipeline(mlir::OpPassManager &pm);

/// balancekv ops on tensors down to host LLVM IR that calls the hand-tuned
/// CUDA kernels through their memref entry points
/// (`--balancekv-lower-to-runtime-calls{device-alloc}`, bufferization,
/// `*-to-llvm` with `gpu-to-llvm` for the result allocations). Operands must
/// be device buffers; link with libbalancekv_cuda.so and the mgpu runtime.
llvm::LogicalResult buildRuntimeCallsPipeline(mlir::OpPassManager &pm);

struct GPUPipelineOptions
    : public mlir::PassPipelineOptions<GPUPipelineOptions> {
  Option<std::string> chip{*this, "chip",
                           llvm::cl::desc("Target SM (e.g. sm_90, sm_90a)"),
                           llvm::cl::init("sm_90")};
  Option<std::string> features{
      *this, "features", llvm::cl::desc("PTX features (e.g. +ptx80)"),
      llvm::cl::init("+ptx80")};
  Option<std::string> format{
      *this, "format",
      llvm::cl::desc("gpu.binary format: isa (PTX text), bin (cubin, needs "
                     "ptxas), fatbin, offloading (LLVM bitcode)"),
      llvm::cl::init("fatbin")};
  Option<int> optLevel{*this, "opt-level",
                       llvm::cl::desc("NVVM optimisation level"),
                       llvm::cl::init(3)};
  Option<std::string> toolkit{
      *this, "toolkit",
      llvm::cl::desc("CUDA toolkit (libdevice, ptxas); default: $CUDA_ROOT, "
                     "$CUDA_HOME, $CUDA_PATH, else /usr/local/cuda"),
      llvm::cl::init("")};
  Option<int64_t> smCount{*this, "sm-count",
                          llvm::cl::desc("Multiprocessors of the target "
                                         "(sizes the split-K grid)"),
                          llvm::cl::init(132)};

  GPUPipelineOptions() {
    showDefault(chip);
    showDefault(features);
    showDefault(format);
    showDefault(optLevel);
    showDefault(toolkit);
    showDefault(smCount);
  }
};

/// balancekv ops on tensors down to host LLVM IR with embedded GPU code:
/// --balancekv-lower-to-gpu, one-shot bufferization, gpu-async-region,
/// C wrappers, then the passes of upstream's gpu-lower-to-nvvm-pipeline
/// (NVVM, host runtime calls, nvvm-attach-target, gpu-module-to-binary with
/// the CUDA toolkit). Translate the result with
/// `mlir-translate --mlir-to-llvmir`; the host code calls the `mgpu*` entry
/// points of kernels/mlir-runtime.
llvm::LogicalResult buildGPUPipeline(mlir::OpPassManager &pm,
                                     const GPUPipelineOptions &options);

/// Registers `--balancekv-cpu-pipeline`, `--balancekv-runtime-calls-pipeline`
/// and `--balancekv-gpu-pipeline`.
void registerBalanceKVPipelines();

} // namespace balancekv

#endif // BALANCEKV_PIPELINES_PIPELINES_H
