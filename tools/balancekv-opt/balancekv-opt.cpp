//===- balancekv-opt.cpp - balancekv optimizer driver --------------------===//
//
// mlir-opt with every upstream dialect, pass and extension plus balancekv's.
//
//===----------------------------------------------------------------------===//

#include "balancekv/InitAll.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::registerAllPasses();
  balancekv::registerAllPasses();

  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  // gpu-module-to-binary translates the kernels to LLVM IR.
  mlir::registerAllGPUToLLVMIRTranslations(registry);
  balancekv::registerAllDialects(registry);

  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "balancekv optimizer driver\n", registry));
}
