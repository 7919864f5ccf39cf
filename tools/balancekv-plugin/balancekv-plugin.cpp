//===- balancekv-plugin.cpp - balancekv as an mlir-opt plugin -------------===//
//
// Loads into any MLIR 22 tool built on libMLIR.so (Debian's mlir-opt is):
//   mlir-opt --load-dialect-plugin=lib/BalanceKVPlugin.so \
//            --load-pass-plugin=lib/BalanceKVPlugin.so ...
// The dialect entry point registers balancekv's dialects (InitAll.h: also the
// re-declared `tt`, `iree_linalg_ext` and `tm_tensor`); the pass entry point
// every balancekv pass and pipeline.
//
//===----------------------------------------------------------------------===//

#include "balancekv/InitAll.h"

#include "mlir/Tools/Plugins/DialectPlugin.h"
#include "mlir/Tools/Plugins/PassPlugin.h"
#include "llvm/Config/llvm-config.h"

extern "C" LLVM_ATTRIBUTE_WEAK mlir::DialectPluginLibraryInfo
mlirGetDialectPluginInfo() {
  return {MLIR_PLUGIN_API_VERSION, "BalanceKV", LLVM_VERSION_STRING,
          [](mlir::DialectRegistry *registry) {
            balancekv::registerAllDialects(*registry);
          }};
}

extern "C" LLVM_ATTRIBUTE_WEAK mlir::PassPluginLibraryInfo
mlirGetPassPluginInfo() {
  return {MLIR_PLUGIN_API_VERSION, "BalanceKVPasses", LLVM_VERSION_STRING,
          []() {
            balancekv::registerAllPasses();
          }};
}
