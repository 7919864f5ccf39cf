//===- BalanceKVToRuntimeCallsPass.cpp - --balancekv-lower-to-runtime-calls
//===//

#include "balancekv/Conversion/BalanceKVToRuntime/BalanceKVToRuntime.h"
#include "balancekv/Support/OptionDefaults.h"
#include "balancekv/Conversion/Passes.h"

#include "balancekv/Dialect/BalanceKV/IR/BalanceKVDialect.h"
#include "balancekv/Dialect/BalanceKV/IR/BalanceKVOps.h"
#include "mlir/Transforms/DialectConversion.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace balancekv {
#define GEN_PASS_DEF_BALANCEKVLOWERTORUNTIMECALLSPASS
#include "balancekv/Conversion/Passes.h.inc"
} // namespace balancekv

using namespace mlir;

namespace {

struct BalanceKVLowerToRuntimeCallsPass
    : balancekv::impl::BalanceKVLowerToRuntimeCallsPassBase<
          BalanceKVLowerToRuntimeCallsPass> {
  BalanceKVLowerToRuntimeCallsPass() { balancekv::showDefault(deviceAlloc); }
  BalanceKVLowerToRuntimeCallsPass(const balancekv::BalanceKVLowerToRuntimeCallsPassOptions &options) : Base(options) {
    balancekv::showDefault(deviceAlloc);
  }
  void runOnOperation() override {
    // Diagnose everything first so that a failing module is left untouched.
    bool ok = true;
    getOperation()->walk([&](Operation *op) {
      ok &= succeeded(balancekv::checkRuntimeCallsSupported(op, deviceAlloc));
    });
    if (!ok)
      return signalPassFailure();
    // Paged caches first, while the gathers are there to be read through;
    // the gathers left without a use go with them.
    RewritePatternSet paged(&getContext());
    balancekv::populateBalanceKVPagedToRuntimeCallsPatterns(paged, deviceAlloc);
    walkAndApplyPatterns(getOperation(), std::move(paged));
    getOperation()->walk([](balancekv::GatherPagesOp op) {
      if (op->use_empty())
        op->erase();
    });
    ConversionTarget target(getContext());
    target.addIllegalDialect<balancekv::BalanceKVDialect>();
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
    RewritePatternSet patterns(&getContext());
    balancekv::populateBalanceKVToRuntimeCallsPatterns(patterns, deviceAlloc);
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
