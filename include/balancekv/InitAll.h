//===- InitAll.h - every balancekv dialect and pass, registered --*- C++ -*-===//
//
// What a compiler's own *-opt tool (or an mlir-opt plugin) calls to get
// balancekv: the dialects (balancekv and the re-declared front-end ones:
// Triton's `tt`, IREE's `iree_linalg_ext`, torch-mlir's `tm_tensor`), the
// passes and the pipelines. balancekv-opt, the plugin and the fuzz targets
// register through here.
//
//===----------------------------------------------------------------------===//
#ifndef BALANCEKV_INITALL_H
#define BALANCEKV_INITALL_H

#include "balancekv/Conversion/Passes.h"
#include "balancekv/Dialect/BalanceKV/IR/BalanceKVDialect.h"
#include "balancekv/Dialect/BalanceKV/Transforms/Passes.h"
#include "balancekv/Dialect/IREECompat/IR/Dialect.h"
#include "balancekv/Dialect/TritonCompat/IR/Dialect.h"
#include "balancekv/Dialect/TritonCompat/IR/TritonGPUDialect.h"
#include "balancekv/Pipelines/Pipelines.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"

namespace balancekv {

inline void registerAllDialects(mlir::DialectRegistry &registry) {
  registry.insert<BalanceKVDialect, tt::TTDialect, ttg::TTGDialect,
                  ttng::TTNGDialect, iree_linalg_ext::IREELinalgExtDialect,
                  tm_tensor::TMTensorDialect>();
}

/// Passes (`--balancekv-*`) and pipelines (`--balancekv-*-pipeline`).
inline void registerAllPasses() {
  registerBalanceKVPasses();
  registerBalanceKVConversionPasses();
  registerBalanceKVPipelines();
}

/// Everything a standalone tool needs: every upstream MLIR dialect,
/// extension, pass and GPU-to-LLVM-IR translation, plus balancekv's (what
/// balancekv-opt, libbalancekv_capi and the fuzz targets run with). Passes
/// are registered globally, once.
inline const mlir::DialectRegistry &upstreamAndBalanceKVRegistry() {
  static const mlir::DialectRegistry *registry = [] {
    mlir::registerAllPasses();
    balancekv::registerAllPasses();
    auto *r = new mlir::DialectRegistry();
    mlir::registerAllDialects(*r);
    mlir::registerAllExtensions(*r);
    mlir::registerAllGPUToLLVMIRTranslations(*r);
    balancekv::registerAllDialects(*r);
    return r;
  }();
  return *registry;
}

} // namespace balancekv

#endif // BALANCEKV_INITALL_H
