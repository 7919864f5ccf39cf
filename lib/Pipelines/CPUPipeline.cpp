//===- CPUPipeline.cpp - balancekv to LLVM for the CPU --------------------===//

#include "balancekv/Pipelines/Pipelines.h"

#include "mlir/Pass/PassRegistry.h"

using namespace mlir;

namespace balancekv {

// Spelled as a textual pipeline so that it reads like the command line a
// user would write and stays in step with `--help`.
static constexpr const char *kCPUPipeline =
    "balancekv-lower-to-loops,canonicalize,cse,"
    "one-shot-bufferize{bufferize-function-boundaries "
    "function-boundary-type-conversion=identity-layout-map "
    "allow-return-allocs-from-loops},"
    "buffer-deallocation-pipeline,convert-bufferization-to-memref,"
    "convert-linalg-to-loops,convert-scf-to-cf,expand-strided-metadata,"
    "lower-affine,finalize-memref-to-llvm,convert-math-to-llvm,"
    "convert-math-to-libm,convert-arith-to-llvm,convert-index-to-llvm,"
    "convert-cf-to-llvm,convert-func-to-llvm,reconcile-unrealized-casts";

// balancekv ops as Triton kernels + a launch plan: the CPU pipeline's loops,
// bufferized, each parallel loop a kernel.
static constexpr const char *kTritonPipeline =
    "balancekv-lower-to-loops,canonicalize,cse,"
    "one-shot-bufferize{bufferize-function-boundaries "
    "function-boundary-type-conversion=identity-layout-map "
    "allow-return-allocs-from-loops},"
    "func.func(convert-linalg-to-parallel-loops),canonicalize,cse,"
    "balancekv-loops-to-triton";

LogicalResult buildCPUPipeline(OpPassManager &pm) {
  return parsePassPipeline(kCPUPipeline, pm);
}

// Host code that calls the hand-tuned kernels (libbalancekv_cuda.so) on
// device buffers; gpu.alloc'ed results go through the mgpu runtime.
static constexpr const char *kRuntimeCallsPipeline =
    "balancekv-lower-to-runtime-calls{device-alloc=true},canonicalize,cse,"
    "one-shot-bufferize{bufferize-function-boundaries "
    "function-boundary-type-conversion=identity-layout-map "
    "allow-return-allocs-from-loops},"
    "func.func(llvm-request-c-wrappers),convert-scf-to-cf,"
    "expand-strided-metadata,finalize-memref-to-llvm,gpu-to-llvm,"
    "convert-func-to-llvm,convert-arith-to-llvm,convert-index-to-llvm,"
    "convert-cf-to-llvm,reconcile-unrealized-casts";

LogicalResult buildRuntimeCallsPipeline(OpPassManager &pm) {
  return parsePassPipeline(kRuntimeCallsPipeline, pm);
}

void registerBalanceKVPipelines() {
  PassPipelineRegistration<>(
      "balancekv-cpu-pipeline",
      "Lower balancekv and upstream tensor IR to the LLVM dialect for the "
      "CPU (runs under mlir-runner)",
      [](OpPassManager &pm) {
        if (failed(buildCPUPipeline(pm)))
          llvm::report_fatal_error("balancekv-cpu-pipeline: bad pipeline");
      });
  PassPipelineRegistration<>(
      "balancekv-convert-to-triton",
      "balancekv ops (compress, weighted_attention, attention) as Triton "
      "kernels (tt.func) and a launch plan: the loops lowering, bufferized, "
      "then --balancekv-loops-to-triton",
      [](OpPassManager &pm) {
        if (failed(parsePassPipeline(kTritonPipeline, pm)))
          llvm::report_fatal_error("balancekv-convert-to-triton: bad pipeline");
      });
  PassPipelineRegistration<>(
      "balancekv-runtime-calls-pipeline",
      "Lower balancekv ops to host LLVM IR calling the CUDA kernels' C API "
      "(libbalancekv_cuda.so) on device buffers, results gpu.alloc'ed",
      [](OpPassManager &pm) {
        if (failed(buildRuntimeCallsPipeline(pm)))
          llvm::report_fatal_error(
              "balancekv-runtime-calls-pipeline: bad pipeline");
      });
  PassPipelineRegistration<GPUPipelineOptions>(
      "balancekv-gpu-pipeline",
      "Lower balancekv and upstream tensor IR to host LLVM IR with the "
      "kernels compiled for NVIDIA GPUs (PTX, cubin or fatbin)",
      [](OpPassManager &pm, const GPUPipelineOptions &options) {
        if (failed(buildGPUPipeline(pm, options)))
          llvm::report_fatal_error("balancekv-gpu-pipeline: bad pipeline");
      });
}

} // namespace balancekv
