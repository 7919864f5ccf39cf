//===- BalanceKVCanonicalize.cpp - BalanceKV canonicalizations -----------===//
//
// compress{rounds = 0}(k, v)              => k, v, zeros
// weighted_attention(q, k, v, zeros)      => attention(q, k, v)
//
//===----------------------------------------------------------------------===//

#include "balancekv/Dialect/BalanceKV/IR/BalanceKVOps.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace balancekv;

namespace {

/// A `tensor<...xf32>` of zeros with the shape of `like`'s leading three dims.
Value createZeroLogWeights(PatternRewriter &rewriter, Location loc,
                           RankedTensorType type, Value like) {
  auto zero = rewriter.getZeroAttr(type.getElementType());
  if (type.hasStaticShape())
    return arith::ConstantOp::create(
        rewriter, loc, type, DenseElementsAttr::get(type, zero));
  SmallVector<Value> dynSizes;
  for (int64_t i = 0; i < type.getRank(); ++i)
    if (type.isDynamicDim(i))
      dynSizes.push_back(tensor::DimOp::create(rewriter, loc, like, i));
  Value empty = tensor::EmptyOp::create(rewriter, loc, type, dynSizes);
  Value zeroScalar = arith::ConstantOp::create(rewriter, loc, cast<TypedAttr>(zero));
  return linalg::FillOp::create(rewriter, loc, zeroScalar, empty).getResult(0);
}

Value castIfNeeded(PatternRewriter &rewriter, Location loc, Value v, Type t) {
  if (v.getType() == t)
    return v;
  return tensor::CastOp::create(rewriter, loc, t, v);
}

/// With no halving round every method keeps every token with weight 1
/// (spec section 2: L_T = L_0), so compression is the identity.
struct FoldZeroRoundCompress : OpRewritePattern<CompressOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(CompressOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getRounds() != 0)
      return rewriter.notifyMatchFailure(op, "rounds != 0");
    Location loc = op.getLoc();
    Value k = castIfNeeded(rewriter, loc, op.getKey(),
                           op.getCompressedKey().getType());
    Value v = castIfNeeded(rewriter, loc, op.getValue(),
                           op.getCompressedValue().getType());
    Value w = createZeroLogWeights(
        rewriter, loc, cast<RankedTensorType>(op.getLogWeights().getType()),
        op.getKey());
    rewriter.replaceOp(op, {k, v, w});
    return success();
  }
};

bool isZeroTensor(Value v) {
  if (matchPattern(v, m_AnyZeroFloat()))
    return true;
  auto fill = v.getDefiningOp<linalg::FillOp>();
  return fill && matchPattern(fill.getInputs()[0], m_AnyZeroFloat());
}

/// log w = 0 everywhere means weight 1 everywhere: plain attention.
struct ZeroLogWeightsToAttention : OpRewritePattern<WeightedAttentionOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(WeightedAttentionOp op,
                                PatternRewriter &rewriter) const override {
    if (!isZeroTensor(op.getLogWeights()))
      return rewriter.notifyMatchFailure(op, "log-weights not known zero");
    rewriter.replaceOpWithNewOp<AttentionOp>(
        op, op.getResult().getType(), op.getQuery(), op.getKey(),
        op.getValue(), op.getKvLen(), op.getScaleAttr(), op.getCausalAttr());
    return success();
  }
};

} // namespace

void CompressOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                             MLIRContext *context) {
  results.add<FoldZeroRoundCompress>(context);
}

void WeightedAttentionOp::getCanonicalizationPatterns(
    RewritePatternSet &results, MLIRContext *context) {
  results.add<ZeroLogWeightsToAttention>(context);
}
