//===- BalanceKVToGPUPass.cpp - --balancekv-lower-to-gpu ------------------===//

#include "BalanceKVToGPU.h"
#include "KernelBuilder.h"

#include "balancekv/Conversion/Passes.h"
#include "balancekv/Support/OptionDefaults.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace balancekv {
#define GEN_PASS_DEF_BALANCEKVLOWERTOGPUPASS
#include "balancekv/Conversion/Passes.h.inc"
} // namespace balancekv

using namespace mlir;
using namespace balancekv;

namespace {

struct BalanceKVLowerToGPUPass
    : balancekv::impl::BalanceKVLowerToGPUPassBase<BalanceKVLowerToGPUPass> {
  BalanceKVLowerToGPUPass() { balancekv::showDefault(smCount); }
  BalanceKVLowerToGPUPass(const balancekv::BalanceKVLowerToGPUPassOptions &options) : Base(options) {
    balancekv::showDefault(smCount);
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (smCount < 1 || smCount > kMaxSMCount) {
      module.emitError() << "balancekv-lower-to-gpu: sm-count must be in [1, "
                         << kMaxSMCount << "], got " << int64_t(smCount);
      return signalPassFailure();
    }
    // Diagnose everything first so that a failing module is left untouched.
    bool ok = true, any = false;
    module->walk([&](Operation *op) {
      if (isa<CompressOp, BalanceInitOp, BalanceWalkOp, BalanceHalveOp,
              GatherKeptOp, AttentionOp, WeightedAttentionOp, GatherPagesOp>(
              op)) {
        ok &= succeeded(checkGPUSupported(op));
        any = true;
      }
    });
    if (!ok)
      return signalPassFailure();
    if (!any)
      return;
    // compress => its stages, rounds unrolled (one launch sequence per
    // round), then every op in program order, producers before consumers.
    IRRewriter rewriter(&getContext());
    module->walk([&](CompressOp op) {
      rewriter.setInsertionPoint(op);
      if (FailureOr<SmallVector<Value>> stages =
              decomposeCompress(rewriter, op, /*unrollRounds=*/true);
          succeeded(stages))
        rewriter.replaceOp(op, *stages);
    });
    RewritePatternSet patterns(&getContext());
    populateBalanceKVToGPUPatterns(patterns, smCount);
    walkAndApplyPatterns(module, std::move(patterns));
    freeGPUStageScratch(module);
  }
};

} // namespace

LogicalResult balancekv::checkGPUSupported(Operation *op) {
  if (isa<CompressOp, BalanceInitOp, BalanceWalkOp, BalanceHalveOp,
          GatherKeptOp>(op))
    return checkCompressForGPU(op);
  if (isa<AttentionOp, WeightedAttentionOp>(op))
    return checkAttentionForGPU(op);
  if (isa<GatherPagesOp>(op))
    return op->emitOpError()
           << "has no generated GPU kernel: lower paged caches with "
              "--balancekv-lower-to-runtime-calls (the CUDA kernels read the "
              "pages in place) or --balancekv-lower-to-loops";
  return success();
}

void balancekv::populateBalanceKVToGPUPatterns(RewritePatternSet &patterns,
                                               int64_t smCount) {
  auto kms = std::make_shared<gpukernels::KernelModules>();
  populateCompressToGPUPatterns(patterns, kms);
  populateAttentionToGPUPatterns(patterns, kms, smCount);
}
