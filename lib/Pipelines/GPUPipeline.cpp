//===- GPUPipeline.cpp - balancekv to NVVM, PTX and cubin -----------------===//

#include "balancekv/Pipelines/Pipelines.h"

#include "balancekv/Conversion/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/LLVMIR/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Target/LLVM/NVVM/Utils.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Regex.h"

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

/// Empty when the options make a pipeline, else what is wrong. Every option
/// is checked here because each ends up in a pass or a tool's command line.
static std::string checkGPUPipelineOptions(const GPUPipelineOptions &options) {
  static const llvm::Regex chip("^sm_[0-9]+[a-z]?$");
  static const llvm::Regex features("^([+-][a-z0-9]+(,[+-][a-z0-9]+)*)?$");
  // gpu-module-to-binary's spellings.
  static constexpr StringLiteral kFormats[] = {
      "isa",    "assembly",  "bin",        "binary",
      "fatbin", "fatbinary", "offloading", "llvm"};
  if (!chip.match(options.chip))
    return "chip must look like sm_90 or sm_90a, got '" + options.chip + "'";
  if (!features.match(options.features))
    return "features must be a comma list of +name or -name (e.g. +ptx80), "
           "got '" +
           options.features + "'";
  if (options.optLevel < 0 || options.optLevel > 3)
    return "opt-level must be in [0, 3], got " +
           std::to_string(options.optLevel);
  if (options.smCount < 1 || options.smCount > kMaxSMCount)
    return "sm-count must be in [1, " + std::to_string(kMaxSMCount) +
           "], got " + std::to_string(options.smCount);
  if (!llvm::is_contained(kFormats, StringRef(options.format)))
    return "format must be isa, bin, fatbin or offloading, got '" +
           options.format + "'";
  return {};
}

// Upstream's gpu-lower-to-nvvm-pipeline (as of MLIR 22) behind our lowering,
// bufferization, gpu-async-region and C wrappers, spelled out so that
// gpu-module-to-binary gets the CUDA toolkit: without it libdevice (exp) is
// not linked and the PTX keeps unresolved __nv_* calls. Built from passes,
// not text, so that no option value is ever parsed as pipeline syntax.
LogicalResult buildGPUPipeline(OpPassManager &pm,
                               const GPUPipelineOptions &options) {
  auto optionError = [&](std::string message) {
    pm.addPass(std::make_unique<GPUPipelineOptionError>(std::move(message)));
    return success();
  };
  if (std::string bad = checkGPUPipelineOptions(options); !bad.empty())
    return optionError(std::move(bad));
  const std::string toolkit = cudaToolkitPath(options);
  if (toolkit.empty() || !llvm::sys::fs::is_directory(toolkit))
    return optionError(
        "no CUDA toolkit" +
        (toolkit.empty() ? std::string() : " at '" + toolkit + "'") +
        " (libdevice, ptxas): pass toolkit=<dir> or set CUDA_HOME");

  pm.addPass(createBalanceKVLowerToGPUPass({options.smCount}));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  bufferize.allowReturnAllocsFromLoops = true;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  OpPassManager &funcs = pm.nest<func::FuncOp>();
  funcs.addPass(createGpuAsyncRegionPass());
  funcs.addPass(LLVM::createLLVMRequestCWrappersPass());
  pm.addPass(createConvertNVGPUToNVVMPass());
  pm.addPass(createGpuKernelOutliningPass());
  pm.addPass(createConvertVectorToSCFPass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createConvertNVVMToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  GpuNVVMAttachTargetOptions target;
  target.chip = options.chip;
  target.features = options.features;
  target.optLevel = unsigned(options.optLevel);
  pm.addPass(createGpuNVVMAttachTarget(target));
  pm.addPass(createLowerAffinePass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  OpPassManager &kernels = pm.nest<gpu::GPUModuleOp>();
  kernels.addPass(createConvertGpuOpsToNVVMOps());
  kernels.addPass(createCanonicalizerPass());
  kernels.addPass(createCSEPass());
  kernels.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createGpuToLLVMConversionPass());
  GpuModuleToBinaryPassOptions binary;
  binary.compilationTarget = options.format;
  binary.toolkitPath = toolkit;
  pm.addPass(createGpuModuleToBinaryPass(binary));
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  return success();
}

} // namespace balancekv
