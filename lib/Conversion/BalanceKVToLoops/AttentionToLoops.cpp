//===- AttentionToLoops.cpp - attention ops => linalg on tensors ---------===//
//
// attention / weighted_attention / gather_pages => their
// AggregatedOpInterface decomposition
// (lib/Dialect/BalanceKV/IR/AggregatedOpInterfaceImpl.cpp).
//
//===----------------------------------------------------------------------===//

#include "balancekv/Conversion/BalanceKVToLoops/BalanceKVToLoops.h"

#include "balancekv/Dialect/BalanceKV/IR/BalanceKVOps.h"
#include "mlir/Dialect/Linalg/IR/LinalgInterfaces.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace balancekv;

namespace {

template <typename OpTy> struct DecomposeToLoops : OpRewritePattern<OpTy> {
  using OpRewritePattern<OpTy>::OpRewritePattern;
  LogicalResult matchAndRewrite(OpTy op,
                                PatternRewriter &rewriter) const override {
    FailureOr<SmallVector<Value>> decomposed =
        cast<linalg::AggregatedOpInterface>(op.getOperation())
            .decomposeOperation(rewriter);
    if (failed(decomposed))
      return failure();
    rewriter.replaceOp(op, *decomposed);
    return success();
  }
};

} // namespace

void balancekv::populateAttentionToLoopsPatterns(RewritePatternSet &patterns) {
  patterns
      .add<DecomposeToLoops<AttentionOp>, DecomposeToLoops<WeightedAttentionOp>,
           DecomposeToLoops<GatherPagesOp>>(patterns.getContext());
}
