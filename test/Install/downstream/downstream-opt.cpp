//===- downstream-opt.cpp - a compiler's own opt tool with balancekv -------===//

#include "balancekv/InitAll.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  registry.insert<mlir::func::FuncDialect>();
  balancekv::registerAllDialects(registry);
  balancekv::registerAllPasses();
  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "a downstream compiler with balancekv\n", registry));
}
