//===- balancekv-plugin.cpp - balancekv as an mlir-opt plugin -------------===//
//
// Loads into any MLIR 22 tool built on libMLIR.so (Debian's mlir-opt is):
//   mlir-opt --load-dialect-plugin=lib/BalanceKVPlugin.so \
//            --load-pass-plugin=lib/BalanceKVPlugin.so ...
// The dialect entry point registers `balancekv` and `tt`; the pass entry
// point registers every balancekv pass and --balancekv-cpu-pipeline.
//
//===----------------------------------------------------------------------===//

#include "balancekv/Conversion/Passes.h"
#include "balancekv/Dialect/BalanceKV/IR/BalanceKVDialect.h"
#include "balancekv/Dialect/BalanceKV/Transforms/Passes.h"
#include "balancekv/Dialect/IREECompat/IR/Dialect.h"
#include "balancekv/Dialect/TritonCompat/IR/Dialect.h"
#include "balancekv/Pipelines/Pipelines.h"

#include "mlir/Tools/Plugins/DialectPlugin.h"
#include "mlir/Tools/Plugins/PassPlugin.h"
#include "llvm/Config/llvm-config.h"

extern "C" LLVM_ATTRIBUTE_WEAK mlir::DialectPluginLibraryInfo
mlirGetDialectPluginInfo() {
  return {MLIR_PLUGIN_API_VERSION, "BalanceKV", LLVM_VERSION_STRING,
          [](mlir::DialectRegistry *registry) {
            registry->insert<balancekv::BalanceKVDialect,
                             balancekv::tt::TTDialect,
                             balancekv::iree_linalg_ext::IREELinalgExtDialect,
                  balancekv::tm_tensor::TMTensorDialect>();
          }};
}

extern "C" LLVM_ATTRIBUTE_WEAK mlir::PassPluginLibraryInfo
mlirGetPassPluginInfo() {
  return {MLIR_PLUGIN_API_VERSION, "BalanceKVPasses", LLVM_VERSION_STRING,
          []() {
            balancekv::registerBalanceKVPasses();
            balancekv::registerBalanceKVConversionPasses();
            balancekv::registerBalanceKVPipelines();
          }};
}
