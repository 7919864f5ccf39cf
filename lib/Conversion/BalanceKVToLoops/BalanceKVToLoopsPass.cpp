//===- BalanceKVToLoopsPass.cpp - balancekv ops => linalg/scf/tensor -----===//

#include "balancekv/Conversion/BalanceKVToLoops/BalanceKVToLoops.h"
#include "balancekv/Conversion/BalanceKVToRuntime/BalanceKVToRuntime.h"
#include "balancekv/Conversion/Passes.h"

#include "balancekv/Dialect/BalanceKV/IR/BalanceKVDialect.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/DialectConversion.h"

namespace balancekv {
#define GEN_PASS_DEF_BALANCEKVLOWERTOLOOPSPASS
#include "balancekv/Conversion/Passes.h.inc"
} // namespace balancekv

using namespace mlir;

namespace {
struct BalanceKVLowerToLoopsPass
    : balancekv::impl::BalanceKVLowerToLoopsPassBase<BalanceKVLowerToLoopsPass> {
  void runOnOperation() override {
    ConversionTarget target(getContext());
    target.addIllegalDialect<balancekv::BalanceKVDialect>();
    target.addLegalDialect<arith::ArithDialect, linalg::LinalgDialect,
                           math::MathDialect, scf::SCFDialect,
                           tensor::TensorDialect>();
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
    RewritePatternSet patterns(&getContext());
    balancekv::populateBalanceKVToLoopsPatterns(patterns);
    // Method adaptive: a call of the CPU reference (no loop form).
    balancekv::populateAdaptiveCompressToReferenceCallPatterns(patterns);
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
