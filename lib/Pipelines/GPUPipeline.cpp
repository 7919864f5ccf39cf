//===- GPUPipeline.cpp - balancekv to NVVM, PTX and cubin -----------------===//

#include "balancekv/Pipelines/Pipelines.h"

#include "balancekv/Conversion/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/GPU/Pipelines/Passes.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/LLVMIR/Transforms/Passes.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

namespace balancekv {

void buildGPUPipeline(OpPassManager &pm, const GPUPipelineOptions &options) {
  BalanceKVLowerToGPUPassOptions lowering;
  lowering.smCount = options.smCount;
  pm.addPass(createBalanceKVLowerToGPUPass(lowering));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  // One stream per function: launches, allocations and frees are ordered on
  // it and the host waits once at the end instead of after every launch.
  pm.addNestedPass<func::FuncOp>(createGpuAsyncRegionPass());
  // _mlir_ciface_ entry points for C/C++/Python callers.
  pm.addNestedPass<func::FuncOp>(LLVM::createLLVMRequestCWrappersPass());
  gpu::GPUToNVVMPipelineOptions nvvm;
  nvvm.cubinChip = options.chip;
  nvvm.cubinFeatures = options.features;
  nvvm.cubinFormat = options.format;
  nvvm.optLevel = options.optLevel;
  gpu::buildLowerToNVVMPassPipeline(pm, nvvm);
}

} // namespace balancekv
