//===- DecomposeCompress.cpp - compress => stage ops ----------------------===//

#include "balancekv/Dialect/BalanceKV/Transforms/Passes.h"
#include "balancekv/Support/OptionDefaults.h"
#include "balancekv/Dialect/BalanceKV/Transforms/Transforms.h"

#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace balancekv {
#define GEN_PASS_DEF_BALANCEKVDECOMPOSECOMPRESSPASS
#include "balancekv/Dialect/BalanceKV/Transforms/Passes.h.inc"
} // namespace balancekv

using namespace mlir;
using namespace balancekv;

namespace {

struct DecomposeCompress : OpRewritePattern<CompressOp> {
  DecomposeCompress(MLIRContext *ctx, bool unrollRounds)
      : OpRewritePattern(ctx), unrollRounds(unrollRounds) {}
  LogicalResult matchAndRewrite(CompressOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getMethod() != CompressionMethod::Balance)
      return rewriter.notifyMatchFailure(op, "only method balance has rounds");
    FailureOr<SmallVector<Value>> results =
        decomposeCompress(rewriter, op, unrollRounds);
    if (failed(results))
      return failure();
    rewriter.replaceOp(op, *results);
    return success();
  }
  bool unrollRounds;
};

struct BalanceKVDecomposeCompressPass
    : balancekv::impl::BalanceKVDecomposeCompressPassBase<
          BalanceKVDecomposeCompressPass> {
  BalanceKVDecomposeCompressPass() { showDefault(unrollRounds); }
  BalanceKVDecomposeCompressPass(const balancekv::BalanceKVDecomposeCompressPassOptions &options) : Base(options) {
    showDefault(unrollRounds);
  }
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateDecomposeCompressPatterns(patterns, unrollRounds);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace

void balancekv::populateDecomposeCompressPatterns(RewritePatternSet &patterns,
                                                  bool unrollRounds) {
  patterns.add<DecomposeCompress>(patterns.getContext(), unrollRounds);
}
