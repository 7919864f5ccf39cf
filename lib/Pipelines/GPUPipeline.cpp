//===- GPUPipeline.cpp - balancekv to NVVM, PTX and cubin -----------------===//

#include "balancekv/Pipelines/Pipelines.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVM/NVVM/Utils.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;

namespace {

/// Stands in for the pipeline when its options are wrong: one diagnostic and
/// a failure. (Upstream gpu-module-to-binary reports a bad format or toolkit
/// but does not fail, so the bad options would otherwise yield a zero exit
/// status and, without libdevice, PTX with unresolved __nv_* calls.)
struct GPUPipelineOptionError
    : PassWrapper<GPUPipelineOptionError, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(GPUPipelineOptionError)
  explicit GPUPipelineOptionError(std::string message)
      : message(std::move(message)) {}
  StringRef getArgument() const final { return "balancekv-gpu-pipeline-error"; }
  void runOnOperation() override {
    getOperation().emitError() << "balancekv-gpu-pipeline: " << message;
    signalPassFailure();
  }
  std::string message;
};

} // namespace

namespace balancekv {

std::string cudaToolkitPath(const GPUPipelineOptions &options) {
  if (!options.toolkit.empty())
    return options.toolkit;
  // CUDA_ROOT / CUDA_HOME / CUDA_PATH, then where CMake saw CUDA when MLIR
  // was built (empty on Debian), then the usual install location.
  if (StringRef path = NVVM::getCUDAToolkitPath(); !path.empty())
    return path.str();
  return llvm::sys::fs::is_directory("/usr/local/cuda") ? "/usr/local/cuda"
                                                        : "";
}

// Upstream's gpu-lower-to-nvvm-pipeline (as of MLIR 22) behind our lowering,
// bufferization, gpu-async-region and C wrappers, spelled out so that
// gpu-module-to-binary gets the CUDA toolkit: without it libdevice (exp) is
// not linked and the PTX keeps unresolved __nv_* calls.
static constexpr const char *kGPUPipeline =
    "balancekv-lower-to-gpu{{sm-count={0}},canonicalize,cse,"
    "one-shot-bufferize{{bufferize-function-boundaries "
    "function-boundary-type-conversion=identity-layout-map},"
    "func.func(gpu-async-region,llvm-request-c-wrappers),"
    "convert-nvgpu-to-nvvm,gpu-kernel-outlining,convert-vector-to-scf,"
    "convert-scf-to-cf,convert-nvvm-to-llvm,convert-func-to-llvm,"
    "expand-strided-metadata,"
    "nvvm-attach-target{{chip={1} features={2} O={3}},"
    "lower-affine,convert-arith-to-llvm,convert-index-to-llvm,canonicalize,cse,"
    "gpu.module(convert-gpu-to-nvvm,canonicalize,cse,"
    "reconcile-unrealized-casts),"
    "gpu-to-llvm,gpu-module-to-binary{{format={4} toolkit={5}},"
    "convert-math-to-llvm,canonicalize,cse,reconcile-unrealized-casts";

LogicalResult buildGPUPipeline(OpPassManager &pm,
                               const GPUPipelineOptions &options) {
  auto optionError = [&](std::string message) {
    pm.addPass(std::make_unique<GPUPipelineOptionError>(std::move(message)));
    return success();
  };
  // gpu-module-to-binary's spellings.
  static constexpr StringLiteral kFormats[] = {
      "isa",    "assembly",  "bin",        "binary",
      "fatbin", "fatbinary", "offloading", "llvm"};
  if (!llvm::is_contained(kFormats, StringRef(options.format)))
    return optionError("format must be isa, bin, fatbin or offloading, got '" +
                       options.format + "'");
  const std::string toolkit = cudaToolkitPath(options);
  if (toolkit.empty() || !llvm::sys::fs::is_directory(toolkit))
    return optionError(
        "no CUDA toolkit" +
        (toolkit.empty() ? std::string() : " at '" + toolkit + "'") +
        " (libdevice, ptxas): pass toolkit=<dir> or set CUDA_HOME");
  std::string text = llvm::formatv(
      kGPUPipeline, int64_t(options.smCount), std::string(options.chip),
      std::string(options.features), int(options.optLevel),
      std::string(options.format), toolkit);
  return parsePassPipeline(text, pm);
}

} // namespace balancekv
