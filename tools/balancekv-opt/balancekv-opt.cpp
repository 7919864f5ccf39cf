//===- balancekv-opt.cpp - balancekv optimizer driver --------------------===//
//
// mlir-opt with every upstream dialect, pass and extension plus balancekv's.
//
//===----------------------------------------------------------------------===//

#include "balancekv/Conversion/Passes.h"
#include "balancekv/Dialect/BalanceKV/IR/BalanceKVDialect.h"
#include "balancekv/Dialect/BalanceKV/Transforms/Passes.h"
#include "balancekv/Dialect/IREECompat/IR/Dialect.h"
#include "balancekv/Dialect/TritonCompat/IR/Dialect.h"
#include "balancekv/Pipelines/Pipelines.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::registerAllPasses();
  balancekv::registerBalanceKVPasses();
  balancekv::registerBalanceKVConversionPasses();
  balancekv::registerBalanceKVPipelines();

  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  // gpu-module-to-binary translates the kernels to LLVM IR.
  mlir::registerAllGPUToLLVMIRTranslations(registry);
  registry.insert<balancekv::BalanceKVDialect, balancekv::tt::TTDialect,
                  balancekv::iree_linalg_ext::IREELinalgExtDialect,
                  balancekv::tm_tensor::TMTensorDialect>();

  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "balancekv optimizer driver\n", registry));
}
