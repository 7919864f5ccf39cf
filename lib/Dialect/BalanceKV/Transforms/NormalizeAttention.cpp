//===- NormalizeAttention.cpp - front-end attention into one shape --------===//
//
// What front ends emit around attention differs only in data movement:
// heads folded into a batch dim around batch_matmul (collapse/expand_shape),
// broadcasts and transposes as their own linalg.generic, keepdim reductions
// re-expanded, named ops or generics. Before matching, the raise pass brings
// a copy of the function into one shape with upstream patterns:
//   - named linalg ops generalised;
//   - heads folded into a batch dim around a contraction unfolded (the
//     [B*H, ...] contractions become [B, H, ...] ones);
//   - keepdim reductions read through their result instead of a unit-dim
//     re-expansion;
//   - pure data-movement generics (broadcast, transpose, constant fill)
//     fused into their consumers, where they become indexing maps or
//     captured constants; arithmetic is never duplicated;
//   - canonicalisation and CSE.
//
//===----------------------------------------------------------------------===//

#include "balancekv/Dialect/BalanceKV/Transforms/Passes.h"
#include "balancekv/Dialect/BalanceKV/Transforms/Transforms.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Dominance.h"
#include "mlir/Transforms/CSE.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

using namespace mlir;

namespace {

/// A generic that only moves data: every loop parallel, one result, and a
/// body that yields a block argument of an input or a value defined outside.
bool movesDataOnly(linalg::GenericOp g) {
  if (g.getNumDpsInits() != 1 || g.getNumLoops() != g.getNumParallelLoops())
    return false;
  Block &body = g.getRegion().front();
  if (body.getOperations().size() != 1)
    return false;
  Value yielded = cast<linalg::YieldOp>(body.getTerminator()).getOperand(0);
  if (auto arg = dyn_cast<BlockArgument>(yielded))
    return arg.getOwner() == &body &&
           arg.getArgNumber() < g.getNumDpsInputs();
  return !g.getRegion().isAncestor(yielded.getParentRegion());
}

/// A generic reading an expand_shape that only inserts unit dims (PyTorch's
/// keepdim reductions re-expanded, [B, H, L] -> [B, H, L, 1]) reads the
/// source instead: the unit dims' map results go, the rest stay. Keeps the
/// reduction from being expanded through the whole attention.
struct FoldUnitExpandIntoIndexingMap : OpRewritePattern<linalg::GenericOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(linalg::GenericOp g,
                                PatternRewriter &rewriter) const override {
    for (OpOperand *operand : g.getDpsInputOperands()) {
      auto expand = operand->get().getDefiningOp<tensor::ExpandShapeOp>();
      // Only a reduction's result re-expanded with trailing unit dims
      // (keepdim); a [B*H] -> [1, H] split is UnfoldHeadsOfContraction's.
      auto reduction =
          expand ? expand.getSrc().getDefiningOp<linalg::LinalgOp>() : nullptr;
      if (!reduction || reduction.getNumReductionLoops() == 0)
        continue;
      auto srcType = expand.getSrcType();
      auto dstType = expand.getResultType();
      if (!srcType.hasStaticShape() || !dstType.hasStaticShape())
        continue;
      AffineMap map = g.getMatchingIndexingMap(operand);
      SmallVector<AffineExpr> kept;
      bool unitOnly = true;
      for (auto [s, group] : llvm::enumerate(expand.getReassociationIndices())) {
        // The group's first dim has the source's extent; the ones after it
        // are inserted unit dims.
        const int64_t keep = group.front();
        if (dstType.getDimSize(keep) != srcType.getDimSize(s))
          unitOnly = false;
        for (int64_t d : group)
          if (d != keep && dstType.getDimSize(d) != 1)
            unitOnly = false;
        kept.push_back(map.getResult(keep));
      }
      if (!unitOnly)
        continue;
      SmallVector<AffineMap> maps = g.getIndexingMapsArray();
      maps[operand->getOperandNumber()] =
          AffineMap::get(map.getNumDims(), 0, kept, g.getContext());
      rewriter.modifyOpInPlace(g, [&] {
        operand->set(expand.getSrc());
        g.setIndexingMapsAttr(rewriter.getAffineMapArrayAttr(maps));
      });
      return success();
    }
    return rewriter.notifyMatchFailure(g, "no unit-dim expand_shape operand");
  }
};

/// A generic with `g`'s body over new operands, maps and iterators (one
/// result of `type` into `init`).
Value genericWithBodyOf(PatternRewriter &rewriter, linalg::GenericOp g,
                        Type type, ValueRange inputs, Value init,
                        ArrayRef<AffineMap> maps,
                        ArrayRef<utils::IteratorType> iters) {
  auto op = linalg::GenericOp::create(rewriter, g.getLoc(), TypeRange{type},
                                      inputs, ValueRange{init}, maps, iters);
  rewriter.cloneRegionBefore(g.getRegion(), op.getRegion(),
                             op.getRegion().end());
  return op->getResult(0);
}

/// The fill value of a contraction's init: linalg.fill, or a generalised
/// fill (a generic without inputs yielding a value defined outside).
Value fillValue(Value init) {
  if (auto fill = init.getDefiningOp<linalg::FillOp>())
    return fill.getInputs()[0];
  auto g = init.getDefiningOp<linalg::GenericOp>();
  if (!g || g.getNumDpsInputs() != 0)
    return {};
  Block &body = g.getRegion().front();
  if (body.getOperations().size() != 1)
    return {};
  Value v = cast<linalg::YieldOp>(body.getTerminator()).getOperand(0);
  return g.getRegion().isAncestor(v.getParentRegion()) ? Value() : v;
}

/// Heads folded into the batch dim around a contraction, as front ends emit
/// batch_matmul: expand_shape([B*H] -> [B, H]) of a contraction whose every
/// input is a collapse_shape([B, H] -> [B*H]) of the same kind. Becomes the
/// contraction over [B, H] on the uncollapsed inputs. (Upstream's reshape
/// propagation does the same in general, but picks among equivalent
/// groupings of unit dims differently run to run; this is the one reshape
/// pair attention needs, matched exactly.)
struct UnfoldHeadsOfContraction : OpRewritePattern<tensor::ExpandShapeOp> {
  using OpRewritePattern::OpRewritePattern;

  /// [[0, 1], [2], ..., [r]]: the first two dims merged, nothing else.
  static bool splitsLeadingPair(ArrayRef<ReassociationIndices> groups) {
    if (groups.empty() || groups[0].size() != 2)
      return false;
    for (size_t i = 1; i < groups.size(); ++i)
      if (groups[i].size() != 1)
        return false;
    return true;
  }

  /// `in` = collapse_shape(x) folding x's leading dims into B*H, as
  /// [B, H, ...]: x itself ([B, H, ...] -> [B*H, ...]), or x with its head
  /// dims merged ([B, Hkv, G, ...] -> [B*Hkv*G, ...], GQA's repeated KV,
  /// becomes [B, Hkv*G, ...]). Null otherwise.
  static Value unfoldInput(PatternRewriter &rewriter, Value in, int64_t batch,
                           int64_t heads) {
    auto collapse = in.getDefiningOp<tensor::CollapseShapeOp>();
    if (!collapse)
      return {};
    auto groups = collapse.getReassociationIndices();
    auto src = collapse.getSrcType();
    if (groups.empty() || groups[0].size() < 2)
      return {};
    for (size_t i = 1; i < groups.size(); ++i)
      if (groups[i].size() != 1)
        return {};
    const int64_t lead = groups[0].size();
    if (src.getDimSize(0) != batch)
      return {};
    int64_t h = 1;
    for (int64_t d = 1; d < lead; ++d)
      h = ShapedType::isDynamic(src.getDimSize(d)) || h == ShapedType::kDynamic
              ? ShapedType::kDynamic
              : h * src.getDimSize(d);
    if (h != heads)
      return {};
    if (lead == 2)
      return collapse.getSrc();
    SmallVector<ReassociationIndices> merge{{0}, {}};
    for (int64_t d = 1; d < lead; ++d)
      merge[1].push_back(d);
    for (int64_t d = lead; d < src.getRank(); ++d)
      merge.push_back({d});
    return tensor::CollapseShapeOp::create(rewriter, collapse.getLoc(),
                                           collapse.getSrc(), merge);
  }

  LogicalResult matchAndRewrite(tensor::ExpandShapeOp expand,
                                PatternRewriter &rewriter) const override {
    if (!splitsLeadingPair(expand.getReassociationIndices()))
      return rewriter.notifyMatchFailure(expand, "not a [B*H] split");
    auto g = expand.getSrc().getDefiningOp<linalg::GenericOp>();
    if (!g || g->getNumResults() != 1 || !g->hasOneUse() ||
        !linalg::isaContractionOpInterface(g))
      return rewriter.notifyMatchFailure(expand, "not of a contraction");
    auto outType = expand.getResultType();
    const int64_t heads = outType.getDimSize(1);
    // Every map indexes the folded batch by d0, as its first result.
    MLIRContext *ctx = rewriter.getContext();
    AffineExpr d0 = getAffineDimExpr(0, ctx);
    for (AffineMap m : g.getIndexingMapsArray())
      if (m.getNumResults() == 0 || m.getResult(0) != d0)
        return rewriter.notifyMatchFailure(expand, "batch is not d0");
    if (g.getIteratorTypesArray()[0] != utils::IteratorType::parallel)
      return rewriter.notifyMatchFailure(expand, "d0 is not parallel");
    if (ShapedType::isDynamic(heads))
      return rewriter.notifyMatchFailure(expand, "dynamic head count");
    SmallVector<Value> inputs;
    for (Value in : g.getDpsInputs()) {
      Value unfolded = unfoldInput(rewriter, in, outType.getDimSize(0), heads);
      if (!unfolded)
        return rewriter.notifyMatchFailure(expand, "input not [B, H] folded");
      inputs.push_back(unfolded);
    }
    Value fill = fillValue(g.getDpsInits()[0]);
    if (!fill)
      return rewriter.notifyMatchFailure(expand, "init not a fill");
    // Loops: d0 -> (d0, d1), every other dim shifted by one.
    const unsigned n = g.getNumLoops();
    SmallVector<AffineExpr> shift;
    for (unsigned i = 0; i < n; ++i)
      shift.push_back(getAffineDimExpr(i + 1, ctx));
    SmallVector<AffineMap> maps;
    for (AffineMap m : g.getIndexingMapsArray()) {
      SmallVector<AffineExpr> r{d0, getAffineDimExpr(1, ctx)};
      for (AffineExpr e : m.getResults().drop_front())
        r.push_back(e.replaceDims(shift));
      maps.push_back(AffineMap::get(n + 1, 0, r, ctx));
    }
    SmallVector<utils::IteratorType> iters{utils::IteratorType::parallel};
    llvm::append_range(iters, g.getIteratorTypesArray());
    Location loc = g.getLoc();
    SmallVector<OpFoldResult> outSizes =
        tensor::getMixedSizes(rewriter, loc, expand.getResult());
    Value init = linalg::FillOp::create(
                     rewriter, loc, fill,
                     tensor::EmptyOp::create(rewriter, loc, outSizes,
                                             outType.getElementType())
                         .getResult())
                     .getResult(0);
    rewriter.replaceOp(expand, genericWithBodyOf(rewriter, g, outType, inputs,
                                                 init, maps, iters));
    return success();
  }
};

/// expand_shape(elementwise(x)) => elementwise(expand_shape(x)) for a
/// one-input, identity-map generic (the f32 -> f16 truncation PyTorch puts
/// between a mixed-precision contraction and its [B*H] split), so that the
/// split meets the contraction.
struct ExpandBeforeElementwise : OpRewritePattern<tensor::ExpandShapeOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(tensor::ExpandShapeOp expand,
                                PatternRewriter &rewriter) const override {
    auto g = expand.getSrc().getDefiningOp<linalg::GenericOp>();
    if (!g || !g->hasOneUse() || g.getNumDpsInputs() != 1 ||
        g->getNumResults() != 1 || g.getNumLoops() != g.getNumParallelLoops() ||
        !llvm::all_of(g.getIndexingMapsArray(),
                      [](AffineMap m) { return m.isIdentity(); }) ||
        !g.getDpsInputs()[0].getDefiningOp<linalg::LinalgOp>())
      return rewriter.notifyMatchFailure(expand, "not of a unary elementwise op");
    Location loc = g.getLoc();
    auto outType = expand.getResultType();
    auto inType = RankedTensorType::get(
        outType.getShape(),
        getElementTypeOrSelf(g.getDpsInputs()[0].getType()));
    Value in = tensor::ExpandShapeOp::create(
        rewriter, loc, inType, g.getDpsInputs()[0],
        expand.getReassociationIndices(), expand.getMixedOutputShape());
    Value init = tensor::EmptyOp::create(
        rewriter, loc, tensor::getMixedSizes(rewriter, loc, in),
        outType.getElementType());
    unsigned rank = outType.getRank();
    AffineMap id = rewriter.getMultiDimIdentityMap(rank);
    rewriter.replaceOp(
        expand,
        genericWithBodyOf(
            rewriter, g, outType, ValueRange{in}, init, {id, id},
            SmallVector<utils::IteratorType>(rank, utils::IteratorType::parallel)));
    return success();
  }
};

/// A reshape that only moves unit dims (jax.nn.dot_product_attention
/// flattens to 1-D and re-expands, [1, 8, 1, 1] -> [8] -> [1, 1, 8, 1]): the
/// expand_shape of a collapse_shape whose source and result hold the same
/// non-unit extents in the same order becomes a copy generic reading the
/// source through a map (non-unit dims in order; unit dims onto the result's
/// unit dims in order, or 0), which then fuses into its consumers like any
/// other data movement.
struct UnitDimShuffleAsCopy : OpRewritePattern<tensor::ExpandShapeOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(tensor::ExpandShapeOp expand,
                                PatternRewriter &rewriter) const override {
    auto collapse = expand.getSrc().getDefiningOp<tensor::CollapseShapeOp>();
    if (!collapse)
      return rewriter.notifyMatchFailure(expand, "not of a collapse_shape");
    auto srcType = collapse.getSrcType();
    auto dstType = expand.getResultType();
    if (!srcType.hasStaticShape() || !dstType.hasStaticShape())
      return rewriter.notifyMatchFailure(expand, "dynamic shape");
    auto nonUnit = [](RankedTensorType t) {
      SmallVector<int64_t> dims;
      for (int64_t d : t.getShape())
        if (d != 1)
          dims.push_back(d);
      return dims;
    };
    if (nonUnit(srcType) != nonUnit(dstType) || srcType == dstType)
      return rewriter.notifyMatchFailure(expand, "moves more than unit dims");
    // Upstream's folds handle a pair that is one collapse or one expand.
    MLIRContext *ctx = rewriter.getContext();
    SmallVector<unsigned> dstUnit, dstLarge;
    for (auto [i, d] : llvm::enumerate(dstType.getShape()))
      (d == 1 ? dstUnit : dstLarge).push_back(i);
    SmallVector<AffineExpr> results;
    unsigned nextUnit = 0, nextLarge = 0;
    for (int64_t d : srcType.getShape()) {
      if (d != 1)
        results.push_back(getAffineDimExpr(dstLarge[nextLarge++], ctx));
      else if (nextUnit < dstUnit.size())
        results.push_back(getAffineDimExpr(dstUnit[nextUnit++], ctx));
      else
        results.push_back(getAffineConstantExpr(0, ctx));
    }
    unsigned rank = dstType.getRank();
    AffineMap in = AffineMap::get(rank, 0, results, ctx);
    Value init = tensor::EmptyOp::create(rewriter, expand.getLoc(),
                                         dstType.getShape(),
                                         dstType.getElementType());
    auto copy = linalg::GenericOp::create(
        rewriter, expand.getLoc(), TypeRange{dstType},
        ValueRange{collapse.getSrc()}, ValueRange{init},
        SmallVector<AffineMap>{in, rewriter.getMultiDimIdentityMap(rank)},
        SmallVector<utils::IteratorType>(rank, utils::IteratorType::parallel),
        [](OpBuilder &b, Location loc, ValueRange args) {
          linalg::YieldOp::create(b, loc, args[0]);
        });
    rewriter.replaceOp(expand, copy->getResults());
    return success();
  }
};

} // namespace

void balancekv::populateAttentionNormalizationPatterns(
    RewritePatternSet &patterns) {
  linalg::populateLinalgNamedOpsGeneralizationPatterns(patterns);
  patterns.add<UnfoldHeadsOfContraction, FoldUnitExpandIntoIndexingMap,
               ExpandBeforeElementwise, UnitDimShuffleAsCopy>(
      patterns.getContext());
  linalg::populateElementwiseOpsFusionPatterns(patterns, [](OpOperand *use) {
    auto producer = use->get().getDefiningOp<linalg::GenericOp>();
    return producer && movesDataOnly(producer);
  });
  linalg::FillOp::getCanonicalizationPatterns(patterns, patterns.getContext());
  linalg::GenericOp::getCanonicalizationPatterns(patterns,
                                                 patterns.getContext());
  tensor::CollapseShapeOp::getCanonicalizationPatterns(patterns,
                                                       patterns.getContext());
  tensor::ExpandShapeOp::getCanonicalizationPatterns(patterns,
                                                     patterns.getContext());
  tensor::EmptyOp::getCanonicalizationPatterns(patterns, patterns.getContext());
}

LogicalResult balancekv::normalizeAttentionIR(Operation *root) {
  // Bounded: a copy that does not settle is given up, not looped on.
  GreedyRewriteConfig config;
  config.setMaxIterations(8).setMaxNumRewrites(20000);
  RewritePatternSet patterns(root->getContext());
  populateAttentionNormalizationPatterns(patterns);
  if (failed(applyPatternsGreedily(root, std::move(patterns), config)))
    return failure();
  IRRewriter rewriter(root->getContext());
  DominanceInfo dominance;
  eliminateCommonSubExpressions(rewriter, dominance, root);
  return success();
}

namespace balancekv {
#define GEN_PASS_DEF_BALANCEKVNORMALIZEATTENTIONPASS
#include "balancekv/Dialect/BalanceKV/Transforms/Passes.h.inc"
} // namespace balancekv

namespace {
struct BalanceKVNormalizeAttentionPass
    : balancekv::impl::BalanceKVNormalizeAttentionPassBase<
          BalanceKVNormalizeAttentionPass> {
  void runOnOperation() override {
    if (failed(balancekv::normalizeAttentionIR(getOperation())))
      signalPassFailure();
  }
};
} // namespace
