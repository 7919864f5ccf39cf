//===- balancekv-opt.cpp - balancekv optimizer driver --------------------===//
//
// mlir-opt with every upstream dialect, pass and extension plus balancekv's.
//
//===----------------------------------------------------------------------===//

#include "balancekv/InitAll.h"

#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  // Upstream's and balancekv's dialects, extensions and passes, and the
  // GPU-to-LLVM-IR translations gpu-module-to-binary needs.
  mlir::DialectRegistry registry;
  balancekv::upstreamAndBalanceKVRegistry().appendTo(registry);
  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "balancekv optimizer driver\n", registry));
}
