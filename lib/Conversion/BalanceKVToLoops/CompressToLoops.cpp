//===- CompressToLoops.cpp - compress and its stages => scf/linalg/tensor -===//
//
// CPU lowering of compression, exactly as kernels/reference selects
// (spec sections 2-4):
//   compress, method balance: decomposed into its stages (decomposeCompress:
//             balance_init, an scf.for of balance_walk + balance_halve,
//             gather_kept), each lowered by its own pattern below:
//     balance_init   iota / zeros;
//     balance_walk   per (batch, head, block): centred keys, weighted
//                    values (w = 2^r), the Gram G in f64 (linalg.generic),
//                    the walk as an scf.for carrying the running sums S
//                    (S += G[:, i] * sigma_i after each sign), Philox as
//                    arith ops;
//     balance_halve  per (batch, head): the crossover scan, then a
//                    branch-free compaction;
//     gather_kept    sink, kept middle, recent window; a gather of the rows;
//   compress, uniform / knorm / snapkv: a score per middle token and "the
//             L_T smallest scores in position order" through a rank count;
//   compress, streaming: the last L_T middle tokens;
// the baselines end in the same layout writer and gather as gather_kept.
//
//===----------------------------------------------------------------------===//

#include "balancekv/Conversion/BalanceKVToLoops/BalanceKVToLoops.h"
#include "balancekv/Support/LoopBuilder.h"

#include "balancekv/Conversion/Utils/Layout.h"
#include "balancekv/Conversion/Utils/Philox.h"
#include "balancekv/Dialect/BalanceKV/IR/BalanceKVOps.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/PatternMatch.h"

#include <cmath>

using namespace mlir;
using namespace balancekv;
using namespace balancekv::loops;

namespace {

/// The SnapKV max-pool kernel of the spec (section 4).
constexpr int64_t kSnapKVPool = 7;

AffineMap dimsMap(MLIRContext *ctx, unsigned n, ArrayRef<unsigned> dims) {
  SmallVector<AffineExpr> r;
  for (unsigned i : dims)
    r.push_back(getAffineDimExpr(i, ctx));
  return AffineMap::get(n, 0, r, ctx);
}

Value toIndex(ImplicitLocOpBuilder &b, OpFoldResult o) {
  return getValueOrCreateConstantIndexOp(b, b.getLoc(), o);
}

/// The (B, H) loop nest every stage runs per head: `body(bi, hi, carried)`
/// returns the new carried values.
SmallVector<Value> forEachHead(
    ImplicitLocOpBuilder &b, Value batch, Value heads, ValueRange inits,
    const std::function<SmallVector<Value>(ImplicitLocOpBuilder &, Value,
                                           Value, ValueRange)> &body) {
  return forLoop(b, cIdx(b, 0), batch, inits,
                 [&](ImplicitLocOpBuilder &bb, Value bi, ValueRange ba) {
                   return forLoop(bb, cIdx(bb, 0), heads, ba,
                                  [&](ImplicitLocOpBuilder &hb, Value hi,
                                      ValueRange ha) {
                                    return body(hb, bi, hi, ha);
                                  });
                 });
}

using ElementFn = std::function<Value(ImplicitLocOpBuilder &, Value)>;

/// One head's compressed layout into `indices` / `logW` ([B, H, M]): the
/// sink rows, the L_T kept middle rows (`keptPos(j)`: position in the middle,
/// `keptLw(j)`: f64 log-weight) and the recent window (spec section 2).
std::pair<Value, Value> writeHeadLayout(ImplicitLocOpBuilder &b, Value bi,
                                        Value hi, Value indices, Value logW,
                                        const LayoutValues &layout, Value n,
                                        const ElementFn &keptPos,
                                        const ElementFn &keptLw) {
  auto write = [&](Value count, Value at0, const ElementFn &position,
                   const ElementFn *lw) {
    auto r = forLoop(
        b, cIdx(b, 0), count, {indices, logW},
        [&](ImplicitLocOpBuilder &wb, Value j, ValueRange a) {
          Value m = arith::AddIOp::create(wb, at0, j);
          Value pos = arith::IndexCastOp::create(wb, wb.getI32Type(),
                                                 position(wb, j));
          Value ni =
              tensor::InsertOp::create(wb, pos, a[0], ValueRange{bi, hi, m});
          Value nl = a[1];
          if (lw)
            nl = tensor::InsertOp::create(
                wb, arith::TruncFOp::create(wb, wb.getF32Type(), (*lw)(wb, j)),
                a[1], ValueRange{bi, hi, m});
          return SmallVector<Value>{ni, nl};
        });
    indices = r[0];
    logW = r[1];
  };
  write(layout.sink, cIdx(b, 0),
        [](ImplicitLocOpBuilder &, Value j) { return j; }, nullptr);
  write(layout.keptMiddle, layout.sink,
        [&](ImplicitLocOpBuilder &wb, Value j) -> Value {
          return arith::AddIOp::create(wb, layout.sink, keptPos(wb, j));
        },
        &keptLw);
  Value recent0 = arith::SubIOp::create(b, n, layout.recent);
  write(layout.recent, arith::AddIOp::create(b, layout.sink, layout.keptMiddle),
        [&](ImplicitLocOpBuilder &wb, Value j) -> Value {
          return arith::AddIOp::create(wb, recent0, j);
        },
        nullptr);
  return {indices, logW};
}

/// rows[b, h, m, :] = src[b, h, indices[b, h, m], :]. The indices are i32
/// (an index-typed tensor cannot cross IREE's dispatch boundaries).
Value gatherRows(ImplicitLocOpBuilder &b, Value src, Value indices,
                 OpFoldResult B, OpFoldResult H, OpFoldResult M) {
  MLIRContext *ctx = b.getContext();
  Value out = tensor::EmptyOp::create(
      b, ArrayRef<OpFoldResult>{B, H, M, typedSize(b, src, 3)},
      cast<ShapedType>(src.getType()).getElementType());
  return generic(b, {indices}, {out},
                 {dimsMap(ctx, 4, {0, 1, 2}), dimsMap(ctx, 4, {0, 1, 2, 3})},
                 "pppp", [&](ImplicitLocOpBuilder &nb, ValueRange a) {
                   Value row = arith::IndexCastOp::create(
                       nb, nb.getIndexType(), a[0]);
                   Value x = tensor::ExtractOp::create(
                       nb, src,
                       ValueRange{linalgIndex(nb, 0), linalgIndex(nb, 1), row,
                                  linalgIndex(nb, 3)});
                   return SmallVector<Value>{x};
                 })[0];
}

/// `results` cast to the types of `op`'s results where they differ.
SmallVector<Value> castToResults(ImplicitLocOpBuilder &b,
                                 SmallVector<Value> results, Operation *op) {
  for (auto [r, res] : llvm::zip(results, op->getResults()))
    if (r.getType() != res.getType())
      r = tensor::CastOp::create(b, res.getType(), r);
  return results;
}

//===----------------------------------------------------------------------===//
// The baselines (uniform, knorm, snapkv, streaming)
//===----------------------------------------------------------------------===//

class CompressLowering {
public:
  CompressLowering(ImplicitLocOpBuilder &b, CompressOp op)
      : b(b), op(op), ctx(b.getContext()), f64(b.getF64Type()),
        f32(b.getF32Type()), idx(b.getIndexType()) {}

  SmallVector<Value> run();

private:
  OpFoldResult size(Value v, int64_t d) { return typedSize(b, v, d); }
  /// Whether the key has no token or no feature (a static 0 in N or D):
  /// every score is then 0, and slices of it would have out-of-bounds
  /// static offsets.
  bool keyIsEmpty() {
    auto t = cast<RankedTensorType>(op.getKey().getType());
    return t.getDimSize(2) == 0 || t.getDimSize(3) == 0;
  }
  Value toValue(ImplicitLocOpBuilder &nb, OpFoldResult o) {
    return getValueOrCreateConstantIndexOp(nb, nb.getLoc(), o);
  }
  AffineMap map(unsigned n, ArrayRef<unsigned> dims) {
    return dimsMap(ctx, n, dims);
  }

  std::pair<Value, Value> rankSelectHead(Value scores, Value logWeight);
  Value snapkvScores(Value bi, Value hi);

  ImplicitLocOpBuilder &b;
  CompressOp op;
  MLIRContext *ctx;
  Type f64, f32, idx;
  // Sizes (index values) shared by all heads.
  Value nV, dV, dvV, mid0, l0, lT, mV;
  LayoutValues layout;
  double scale = 0;
};

/// Keeps the L_T middle tokens with the smallest `scores` (ties by
/// position), in position order, each with log-weight `logWeight`.
std::pair<Value, Value> CompressLowering::rankSelectHead(Value scores,
                                                         Value logWeight) {
  OpFoldResult l0Size = l0;
  Value ranks = filled(b, {l0Size}, cIdx(b, 0));
  ranks = generic(b, {scores, scores}, {ranks},
                  {map(2, {0}), map(2, {1}), map(2, {0})}, "pr",
                  [&](ImplicitLocOpBuilder &nb, ValueRange a) {
                    Value i = linalgIndex(nb, 0), j = linalgIndex(nb, 1);
                    Value less = arith::CmpFOp::create(
                        nb, arith::CmpFPredicate::OLT, a[1], a[0]);
                    Value tie = arith::AndIOp::create(
                        nb,
                        arith::CmpFOp::create(nb, arith::CmpFPredicate::OEQ,
                                              a[1], a[0]),
                        arith::CmpIOp::create(nb, arith::CmpIPredicate::ult, j,
                                              i));
                    Value before = arith::OrIOp::create(nb, less, tie);
                    return SmallVector<Value>{arith::AddIOp::create(
                        nb, a[2],
                        arith::SelectOp::create(nb, before, cIdx(nb, 1),
                                                cIdx(nb, 0)))};
                  })[0];
  Value kept = filled(b, {l0Size}, cIdx(b, 0));
  Value zero = cIdx(b, 0), one = cIdx(b, 1);
  auto comp = forLoop(
      b, zero, l0, {kept, zero},
      [&](ImplicitLocOpBuilder &cb, Value i, ValueRange a) {
        Value take = arith::CmpIOp::create(
            cb, arith::CmpIPredicate::ult,
            tensor::ExtractOp::create(cb, ranks, i), lT);
        // Branch-free as in the walk's compaction; count <= i < L_0.
        Value nk = tensor::InsertOp::create(cb, i, a[0], a[1]);
        return SmallVector<Value>{
            nk, arith::AddIOp::create(
                    cb, a[1], arith::SelectOp::create(cb, take, one, zero))};
      });
  return {comp[0], filled(b, {l0Size}, logWeight)};
}

/// SnapKV: minus the observation queries' attention mass on each middle
/// token, max-pooled over kSnapKVPool neighbours within the middle.
Value CompressLowering::snapkvScores(Value bi, Value hi) {
  Value obs = op.getObservation();
  Value hq = toValue(b, size(obs, 1)), lobs = toValue(b, size(obs, 2));
  Value group = arith::DivUIOp::create(b, hq, toValue(b, size(op.getKey(), 1)));
  Value rowsV = arith::MulIOp::create(b, group, lobs);
  OpFoldResult R = rowsV, N = nV, L0 = l0;
  // logits[r, n] = scale <q_r, k_n>, r over the group's queries.
  Value logits = filled(b, {R, N}, cF(b, f64, 0.0));
  if (!keyIsEmpty()) {
    Value keyHead = tensor::ExtractSliceOp::create(
        b,
        RankedTensorType::get(
            {ShapedType::kDynamic, ShapedType::kDynamic},
            cast<ShapedType>(op.getKey().getType()).getElementType()),
        op.getKey(),
        ArrayRef<OpFoldResult>{bi, hi, b.getIndexAttr(0), b.getIndexAttr(0)},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1), N,
                               OpFoldResult(dV)},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1),
                               b.getIndexAttr(1), b.getIndexAttr(1)});
    logits = generic(
        b, {keyHead}, {logits}, {map(3, {1, 2}), map(3, {0, 1})}, "ppr",
        [&](ImplicitLocOpBuilder &nb, ValueRange a) {
          Value r = linalgIndex(nb, 0);
          Value qh =
              arith::AddIOp::create(nb, arith::MulIOp::create(nb, hi, group),
                                    arith::DivUIOp::create(nb, r, lobs));
          Value qi = arith::RemUIOp::create(nb, r, lobs);
          Value q =
              widen(nb,
                    tensor::ExtractOp::create(
                        nb, obs, ValueRange{bi, qh, qi, linalgIndex(nb, 2)}),
                    f64);
          Value prod = arith::MulFOp::create(
              nb, arith::MulFOp::create(nb, q, widen(nb, a[0], f64)),
              cF(nb, f64, scale));
          return SmallVector<Value>{arith::AddFOp::create(nb, a[1], prod)};
        })[0];
  }
  AffineMap id2 = map(2, {0, 1}), row = map(2, {0});
  Value mx = filled(b, {R}, cF(b, f64, -INFINITY));
  mx = generic(b, {logits}, {mx}, {id2, row}, "pr",
               [&](ImplicitLocOpBuilder &nb, ValueRange a) {
                 return SmallVector<Value>{
                     arith::MaximumFOp::create(nb, a[0], a[1])};
               })[0];
  logits = generic(b, {mx}, {logits}, {row, id2}, "pp",
                   [&](ImplicitLocOpBuilder &nb, ValueRange a) {
                     return SmallVector<Value>{math::ExpOp::create(
                         nb, arith::SubFOp::create(nb, a[1], a[0]))};
                   })[0];
  Value sum = filled(b, {R}, cF(b, f64, 0.0));
  sum = generic(b, {logits}, {sum}, {id2, row}, "pr",
                [&](ImplicitLocOpBuilder &nb, ValueRange a) {
                  return SmallVector<Value>{arith::AddFOp::create(nb, a[0], a[1])};
                })[0];
  // mass[n] = sum_r p[r, n] / sum[r]
  Value mass = filled(b, {N}, cF(b, f64, 0.0));
  mass = generic(b, {logits, sum}, {mass},
                 {map(2, {1, 0}), map(2, {1}), map(2, {0})}, "pr",
                 [&](ImplicitLocOpBuilder &nb, ValueRange a) {
                   return SmallVector<Value>{arith::AddFOp::create(
                       nb, a[2], arith::DivFOp::create(nb, a[0], a[1]))};
                 })[0];
  Value scores = tensor::EmptyOp::create(b, ArrayRef<OpFoldResult>{L0}, f64);
  return generic(
      b, {}, {scores}, {map(1, {0})}, "p",
      [&](ImplicitLocOpBuilder &nb, ValueRange) {
        Value i = linalgIndex(nb, 0);
        Value best = cF(nb, f64, -INFINITY);
        for (int64_t w = -kSnapKVPool / 2; w <= kSnapKVPool / 2; ++w) {
          Value j = arith::AddIOp::create(nb, i, cIdx(nb, w));
          Value inside = arith::AndIOp::create(
              nb, arith::CmpIOp::create(nb, arith::CmpIPredicate::sge, j, cIdx(nb, 0)),
              arith::CmpIOp::create(nb, arith::CmpIPredicate::slt, j, l0));
          Value safe = arith::SelectOp::create(nb, inside, j, i);
          Value m = tensor::ExtractOp::create(
              nb, mass, ValueRange{arith::AddIOp::create(nb, mid0, safe)});
          best = arith::MaximumFOp::create(
              nb, best, arith::SelectOp::create(nb, inside, m, cF(nb, f64, -INFINITY)));
        }
        return SmallVector<Value>{arith::NegFOp::create(nb, best)};
      })[0];
}

SmallVector<Value> CompressLowering::run() {
  Value key = op.getKey(), value = op.getValue();
  OpFoldResult B = size(key, 0), H = size(key, 1);
  nV = toValue(b, size(key, 2));
  dV = toValue(b, size(key, 3));
  dvV = toValue(b, size(value, 3));
  if (float s = op.getCompressParams().scale; s != 0)
    scale = s;
  else
    scale = 1.0 / std::sqrt(double(
                cast<ShapedType>(key.getType()).getDimSize(3)));
  // Spec section 2: S' = min(S, n), W' = min(W, n - S'), L_0, L_T, M.
  layout = buildCompressedLayout(b, nV, op.getSink(), op.getRecent(),
                                 op.getRounds());
  mid0 = layout.sink;
  l0 = layout.middle;
  lT = layout.keptMiddle;
  mV = layout.length;
  OpFoldResult M = mV;

  Value indices =
      filled(b, {B, H, M}, arith::ConstantIntOp::create(b, b.getI32Type(), 0));
  Value logW = filled(b, {B, H, M}, cF(b, f32, 0.0));
  const CompressionMethod method = op.getMethod();
  auto perBatch = forLoop(
      b, cIdx(b, 0), toValue(b, B), {indices, logW},
      [&](ImplicitLocOpBuilder &bb, Value bi, ValueRange ba) {
        return forLoop(
            bb, cIdx(bb, 0), toValue(bb, H), {ba[0], ba[1]},
            [&](ImplicitLocOpBuilder &hb, Value hi, ValueRange ha) {
              // The helpers build with `b`: point it into this loop body.
              OpBuilder::InsertionGuard guard(b);
              b.setInsertionPoint(hb.getInsertionBlock(), hb.getInsertionPoint());
              Value kept, keptLw;
              switch (method) {
              case CompressionMethod::Balance:
                llvm_unreachable("balance is decomposed into its stages");
              case CompressionMethod::Uniform: {
                Value draws = tensor::EmptyOp::create(
                    b, ArrayRef<OpFoldResult>{OpFoldResult(l0)}, f64);
                draws = generic(
                    b, {}, {draws}, {map(1, {0})}, "p",
                    [&](ImplicitLocOpBuilder &nb, ValueRange) {
                      Value u = buildSpecUniform(
                          nb, op.getCompressParams().seed, linalgIndex(nb, 0),
                          cIdx(nb, 0),
                          arith::ConstantIntOp::create(nb, nb.getI32Type(),
                                                       int64_t(0xffffffffu)),
                          bi, hi);
                      return SmallVector<Value>{widen(nb, u, f64)};
                    })[0];
                // log(L_0 / L_T); unused when L_T = 0.
                auto toF = [&](Value v) -> Value {
                  return arith::UIToFPOp::create(
                      b, f64, arith::IndexCastUIOp::create(b, b.getI64Type(), v));
                };
                Value ratio = arith::DivFOp::create(
                    b, toF(l0), toF(arith::MaxUIOp::create(b, lT, cIdx(b, 1))));
                std::tie(kept, keptLw) =
                    rankSelectHead(draws, math::LogOp::create(b, ratio));
                break;
              }
              case CompressionMethod::KNorm: {
                Value norms = filled(b, {OpFoldResult(l0)}, cF(b, f64, 0.0));
                if (!keyIsEmpty()) {
                  Value keyHead = tensor::ExtractSliceOp::create(
                      b,
                      RankedTensorType::get(
                          {ShapedType::kDynamic, ShapedType::kDynamic},
                          cast<ShapedType>(key.getType()).getElementType()),
                      key,
                      ArrayRef<OpFoldResult>{bi, hi, OpFoldResult(mid0),
                                             b.getIndexAttr(0)},
                      ArrayRef<OpFoldResult>{
                          b.getIndexAttr(1), b.getIndexAttr(1),
                          OpFoldResult(l0), OpFoldResult(dV)},
                      ArrayRef<OpFoldResult>{
                          b.getIndexAttr(1), b.getIndexAttr(1),
                          b.getIndexAttr(1), b.getIndexAttr(1)});
                  norms = generic(
                      b, {keyHead}, {norms}, {map(2, {0, 1}), map(2, {0})},
                      "pr", [&](ImplicitLocOpBuilder &nb, ValueRange a) {
                        Value k = widen(nb, a[0], f64);
                        return SmallVector<Value>{arith::AddFOp::create(
                            nb, a[1], arith::MulFOp::create(nb, k, k))};
                      })[0];
                }
                std::tie(kept, keptLw) = rankSelectHead(norms, cF(b, f64, 0.0));
                break;
              }
              case CompressionMethod::SnapKV:
                std::tie(kept, keptLw) =
                    rankSelectHead(snapkvScores(bi, hi), cF(b, f64, 0.0));
                break;
              case CompressionMethod::Streaming: {
                kept = tensor::EmptyOp::create(
                    b, ArrayRef<OpFoldResult>{OpFoldResult(l0)}, idx);
                Value first = arith::SubIOp::create(b, l0, lT);
                kept = generic(b, {}, {kept}, {map(1, {0})}, "p",
                               [&](ImplicitLocOpBuilder &nb, ValueRange) {
                                 return SmallVector<Value>{arith::AddIOp::create(
                                     nb, first, linalgIndex(nb, 0))};
                               })[0];
                keptLw = filled(b, {OpFoldResult(l0)}, cF(b, f64, 0.0));
                break;
              }
              }
              auto [idxT, lwT] = writeHeadLayout(
                  b, bi, hi, ha[0], ha[1], layout, nV,
                  [&](ImplicitLocOpBuilder &wb, Value j) -> Value {
                    return tensor::ExtractOp::create(wb, kept, j);
                  },
                  [&](ImplicitLocOpBuilder &wb, Value j) -> Value {
                    return tensor::ExtractOp::create(wb, keptLw, j);
                  });
              return SmallVector<Value>{idxT, lwT};
            });
      });
  indices = perBatch[0];
  logW = perBatch[1];

  SmallVector<Value> results{gatherRows(b, key, indices, B, H, M),
                             gatherRows(b, value, indices, B, H, M), logW};
  return castToResults(b, results, op);
}


//===----------------------------------------------------------------------===//
// Patterns
//===----------------------------------------------------------------------===//

struct CompressToLoops : OpRewritePattern<CompressOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(CompressOp op,
                                PatternRewriter &rewriter) const override {
    if (ShapedType::isDynamic(
            cast<ShapedType>(op.getKey().getType()).getDimSize(3)) &&
        op.getCompressParams().scale == 0)
      return rewriter.notifyMatchFailure(op, "dynamic D without scale");
    if (op.getMethod() == CompressionMethod::Balance) {
      // The rounds: the stage patterns below take it from here.
      FailureOr<SmallVector<Value>> stages =
          decomposeCompress(rewriter, op, /*unrollRounds=*/false);
      if (failed(stages))
        return failure();
      rewriter.replaceOp(op, *stages);
      return success();
    }
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    rewriter.replaceOp(op, CompressLowering(b, op).run());
    return success();
  }
};

struct BalanceInitToLoops : OpRewritePattern<BalanceInitOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(BalanceInitOp op,
                                PatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    // [B, H] of the cache; L_0 static from the type, else from the layout.
    auto stateType = cast<RankedTensorType>(op.getTokens().getType());
    SmallVector<OpFoldResult> shape{typedSize(b, op.getKey(), 0),
                                    typedSize(b, op.getKey(), 1),
                                    b.getIndexAttr(stateType.getDimSize(2))};
    if (stateType.isDynamicDim(2)) {
      CompressParams p = op.getCompressParams();
      shape[2] = buildCompressedLayout(
                     b, toIndex(b, typedSize(b, op.getKey(), 2)), p.sink,
                     p.recent, p.rounds)
                     .middle;
    }
    Type i32 = b.getI32Type();
    Value tokens = tensor::EmptyOp::create(b, shape, i32);
    tokens = generic(b, {}, {tokens},
                     {AffineMap::getMultiDimIdentityMap(3, b.getContext())},
                     "ppp", [&](ImplicitLocOpBuilder &nb, ValueRange) {
                       return SmallVector<Value>{arith::IndexCastOp::create(
                           nb, nb.getI32Type(), linalgIndex(nb, 2))};
                     })[0];
    Value doublings =
        filled(b, shape, arith::ConstantIntOp::create(b, i32, 0));
    rewriter.replaceOp(op, castToResults(b, {tokens, doublings}, op));
    return success();
  }
};

/// balance_walk on tensors, one block of one head at a time: the pieces of
/// spec section 3, steps 1-3, each a method.
class WalkLowering {
public:
  WalkLowering(ImplicitLocOpBuilder &b, BalanceWalkOp op)
      : b(b), op(op), ctx(b.getContext()), p(op.getCompressParams()),
        f64(b.getF64Type()), i8(b.getI8Type()) {
    dV = toIndex(b, typedSize(b, op.getKey(), 3));
    dvV = toIndex(b, typedSize(b, op.getValue(), 3));
    // Middle token j is cache row S' + j.
    mid0 = buildCompressedLayout(b, toIndex(b, typedSize(b, op.getKey(), 2)),
                                 p.sink, p.recent, p.rounds)
               .sink;
    len = arith::ShRUIOp::create(
        b, toIndex(b, typedSize(b, op.getTokens(), 2)), op.getRound());
    roundI32 = arith::IndexCastOp::create(b, b.getI32Type(), op.getRound());
  }

  /// signs [B, H, L_0] (i8; 0 past L_t).
  Value run() {
    Value tokens = op.getTokens();
    OpFoldResult B = typedSize(b, tokens, 0), H = typedSize(b, tokens, 1),
                 L0 = typedSize(b, tokens, 2);
    Value signs =
        filled(b, {B, H, L0}, arith::ConstantIntOp::create(b, i8, 0));
    return forEachHead(
        b, toIndex(b, B), toIndex(b, H), {signs},
        [&](ImplicitLocOpBuilder &hb, Value bi, Value hi, ValueRange ha) {
          Value bsV = cIdx(hb, p.blockSize);
          Value nBlocks = arith::CeilDivUIOp::create(hb, len, bsV);
          return forLoop(
              hb, cIdx(hb, 0), nBlocks, {ha[0]},
              [&](ImplicitLocOpBuilder &kb, Value blk, ValueRange ka) {
                Block blockAt{bi, hi, blk, arith::MulIOp::create(kb, blk, bsV),
                              Value()};
                blockAt.size = arith::MinUIOp::create(
                    kb, bsV, arith::SubIOp::create(kb, len, blockAt.start));
                Value gram = blockGram(kb, blockAt);
                return SmallVector<Value>{walk(kb, blockAt, gram, ka[0])};
              });
        })[0];
  }

private:
  /// One block of one head: tokens [start, start + size) of the state.
  struct Block {
    Value batch, head, index, start, size;
  };

  AffineMap map(unsigned n, ArrayRef<unsigned> dims) {
    return dimsMap(ctx, n, dims);
  }
  Value stateAt(ImplicitLocOpBuilder &nb, Value state, const Block &blk,
                Value r) {
    return tensor::ExtractOp::create(
        nb, state,
        ValueRange{blk.batch, blk.head, arith::AddIOp::create(nb, blk.start, r)});
  }
  /// The cache row of the block's token r.
  Value rowOf(ImplicitLocOpBuilder &nb, const Block &blk, Value r) {
    return arith::AddIOp::create(
        nb, mid0,
        arith::IndexCastOp::create(nb, nb.getIndexType(),
                                   stateAt(nb, op.getTokens(), blk, r)));
  }
  /// w_r = 2^doublings exactly: the exponent field of an f64.
  Value weightOf(ImplicitLocOpBuilder &nb, const Block &blk, Value r) {
    Value e = arith::AddIOp::create(
        nb,
        arith::ExtSIOp::create(nb, nb.getI64Type(),
                               stateAt(nb, op.getDoublings(), blk, r)),
        arith::ConstantIntOp::create(nb, nb.getI64Type(), 1023));
    Value bits = arith::ShLIOp::create(
        nb, e, arith::ConstantIntOp::create(nb, nb.getI64Type(), 52));
    return arith::BitcastOp::create(nb, f64, bits);
  }
  /// An element of the cache, widened to f64.
  Value cacheAt(ImplicitLocOpBuilder &nb, Value t, const Block &blk, Value row,
                Value x) {
    return widen(nb,
                 tensor::ExtractOp::create(nb, t,
                                           ValueRange{blk.batch, blk.head, row, x}),
                 f64);
  }

  /// G_ij = exp(tau s <kc_i, kc_j>) (<wv_i, wv_j> + c0) over the block's
  /// centred keys kc = k - mean and weighted values wv = w v (f64).
  Value blockGram(ImplicitLocOpBuilder &kb, const Block &blk) {
    OpFoldResult bszF = blk.size;
    // Sum of the block's keys, then centred keys k - sum / b.
    Value ksum = filled(kb, {OpFoldResult(dV)}, cF(kb, f64, 0.0));
    Value rows = tensor::EmptyOp::create(
        kb, ArrayRef<OpFoldResult>{bszF, OpFoldResult(dV)}, f64);
    ksum = generic(kb, {rows}, {ksum}, {map(2, {0, 1}), map(2, {1})}, "rp",
                   [&](ImplicitLocOpBuilder &nb, ValueRange x) {
                     Value k = cacheAt(nb, op.getKey(), blk,
                                       rowOf(nb, blk, linalgIndex(nb, 0)),
                                       linalgIndex(nb, 1));
                     return SmallVector<Value>{
                         arith::AddFOp::create(nb, x[1], k)};
                   })[0];
    Value bszF64 = arith::UIToFPOp::create(
        kb, f64, arith::IndexCastUIOp::create(kb, kb.getI64Type(), blk.size));
    Value kc = generic(kb, {ksum}, {rows}, {map(2, {1}), map(2, {0, 1})}, "pp",
                       [&](ImplicitLocOpBuilder &nb, ValueRange x) {
                         Value k = cacheAt(nb, op.getKey(), blk,
                                           rowOf(nb, blk, linalgIndex(nb, 0)),
                                           linalgIndex(nb, 1));
                         Value mean = arith::DivFOp::create(nb, x[0], bszF64);
                         return SmallVector<Value>{
                             arith::SubFOp::create(nb, k, mean)};
                       })[0];
    Value wv = tensor::EmptyOp::create(
        kb, ArrayRef<OpFoldResult>{bszF, OpFoldResult(dvV)}, f64);
    wv = generic(kb, {}, {wv}, {map(2, {0, 1})}, "pp",
                 [&](ImplicitLocOpBuilder &nb, ValueRange) {
                   Value r = linalgIndex(nb, 0);
                   Value v = cacheAt(nb, op.getValue(), blk, rowOf(nb, blk, r),
                                     linalgIndex(nb, 1));
                   return SmallVector<Value>{
                       arith::MulFOp::create(nb, weightOf(nb, blk, r), v)};
                 })[0];
    auto gramOf = [&](Value x) {
      Value g = filled(kb, {bszF, bszF}, cF(kb, f64, 0.0));
      return generic(kb, {x, x}, {g},
                     {map(3, {0, 2}), map(3, {1, 2}), map(3, {0, 1})}, "ppr",
                     [&](ImplicitLocOpBuilder &nb, ValueRange a) {
                       return SmallVector<Value>{arith::AddFOp::create(
                           nb, a[2], arith::MulFOp::create(nb, a[0], a[1]))};
                     })[0];
    };
    Value kk = gramOf(kc), vv = gramOf(wv);
    const double expScale = p.temperature * op.getKernelScale();
    AffineMap id2 = map(2, {0, 1});
    return generic(
        kb, {vv}, {kk}, {id2, id2}, "pp",
        [&](ImplicitLocOpBuilder &nb, ValueRange a) {
          Value e = math::ExpOp::create(
              nb, arith::MulFOp::create(nb, a[1], cF(nb, f64, expScale)));
          return SmallVector<Value>{arith::MulFOp::create(
              nb, e, arith::AddFOp::create(nb, a[0], cF(nb, f64, p.c0)))};
        })[0];
  }

  /// The walk over the block: sigma_i from Philox against
  /// clamp(1/2 - gamma S_i), carrying the running sums
  /// S_k = sum_{j<i} G_kj sigma_j; the signs go into `signs`.
  Value walk(ImplicitLocOpBuilder &kb, const Block &blk, Value gram,
             Value signs) {
    Value s0 = filled(kb, {OpFoldResult(blk.size)}, cF(kb, f64, 0.0));
    return forLoop(
        kb, cIdx(kb, 0), blk.size, {s0, signs},
        [&](ImplicitLocOpBuilder &wb, Value i, ValueRange wa) {
          Value si = tensor::ExtractOp::create(wb, wa[0], i);
          Value prob = arith::SubFOp::create(
              wb, cF(wb, f64, 0.5),
              arith::MulFOp::create(wb, cF(wb, f64, p.gamma), si));
          prob = arith::MinimumFOp::create(
              wb, arith::MaximumFOp::create(wb, prob, cF(wb, f64, 0.0)),
              cF(wb, f64, 1.0));
          Value u = widen(wb,
                          buildSpecUniform(wb, p.seed, i, blk.index, roundI32,
                                           blk.batch, blk.head),
                          f64);
          Value plus =
              arith::CmpFOp::create(wb, arith::CmpFPredicate::OLT, u, prob);
          Value sg = arith::SelectOp::create(wb, plus, cF(wb, f64, 1.0),
                                             cF(wb, f64, -1.0));
          Value sg8 = arith::SelectOp::create(
              wb, plus, arith::ConstantIntOp::create(wb, i8, 1),
              arith::ConstantIntOp::create(wb, i8, -1));
          Value sigma = tensor::InsertOp::create(
              wb, sg8, wa[1],
              ValueRange{blk.batch, blk.head,
                         arith::AddIOp::create(wb, blk.start, i)});
          Value s = generic(
              wb, {}, {wa[0]}, {map(1, {0})}, "p",
              [&](ImplicitLocOpBuilder &nb, ValueRange a) {
                Value g = tensor::ExtractOp::create(
                    nb, gram, ValueRange{linalgIndex(nb, 0), i});
                return SmallVector<Value>{arith::AddFOp::create(
                    nb, a[0], arith::MulFOp::create(nb, g, sg))};
              })[0];
          return SmallVector<Value>{s, sigma};
        })[1];
  }

  ImplicitLocOpBuilder &b;
  BalanceWalkOp op;
  MLIRContext *ctx;
  const CompressParams p;
  Type f64, i8;
  Value dV, dvV, mid0, len, roundI32;
};

/// Steps 1-3 of spec section 3 for the first L_t tokens of every head.
struct BalanceWalkToLoops : OpRewritePattern<BalanceWalkOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(BalanceWalkOp op,
                                PatternRewriter &rewriter) const override {
    auto keyType = cast<RankedTensorType>(op.getKey().getType());
    if (keyType.isDynamicDim(3) && op.getCompressParams().scale == 0)
      return rewriter.notifyMatchFailure(op, "dynamic D without scale");
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    Value signs = WalkLowering(b, op).run();
    rewriter.replaceOp(op, castToResults(b, {signs}, op));
    return success();
  }
};

/// Step 4 of spec section 3 for every head.
struct BalanceHalveToLoops : OpRewritePattern<BalanceHalveOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(BalanceHalveOp op,
                                PatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    Value signs = op.getSigns();
    Value len = arith::ShRUIOp::create(
        b, toIndex(b, typedSize(b, op.getTokens(), 2)), op.getRound());
    Value h = arith::DivUIOp::create(b, len, cIdx(b, 2));
    Value zero = cIdx(b, 0), oneI = cIdx(b, 1);
    Type i8 = b.getI8Type(), i32 = b.getI32Type();
    auto results = forEachHead(
        b, toIndex(b, typedSize(b, op.getTokens(), 0)),
        toIndex(b, typedSize(b, op.getTokens(), 1)),
        {op.getTokens(), op.getDoublings()},
        [&](ImplicitLocOpBuilder &hb, Value bi, Value hi, ValueRange ha) {
          auto signAt = [&](ImplicitLocOpBuilder &nb, Value i) -> Value {
            return tensor::ExtractOp::create(nb, signs, ValueRange{bi, hi, i});
          };
          // Crossover: c+/c- = first index where the +1/-1 count reaches h.
          auto scan = forLoop(
              hb, zero, len, {zero, zero, zero, zero},
              [&](ImplicitLocOpBuilder &sb, Value i, ValueRange a) {
                Value isPlus = arith::CmpIOp::create(
                    sb, arith::CmpIPredicate::sgt, signAt(sb, i),
                    arith::ConstantIntOp::create(sb, i8, 0));
                Value nP = arith::AddIOp::create(
                    sb, a[0], arith::SelectOp::create(sb, isPlus, oneI, zero));
                Value nM = arith::AddIOp::create(
                    sb, a[1], arith::SelectOp::create(sb, isPlus, zero, oneI));
                auto reached = [&](Value isColour, Value count) {
                  return arith::AndIOp::create(
                      sb, isColour,
                      arith::CmpIOp::create(sb, arith::CmpIPredicate::eq, count,
                                            h));
                };
                Value isMinus = arith::XOrIOp::create(
                    sb, isPlus,
                    arith::ConstantIntOp::create(sb, sb.getI1Type(), 1));
                Value cP =
                    arith::SelectOp::create(sb, reached(isPlus, nP), i, a[2]);
                Value cM =
                    arith::SelectOp::create(sb, reached(isMinus, nM), i, a[3]);
                return SmallVector<Value>{nP, nM, cP, cM};
              });
          Value c = arith::MaxUIOp::create(hb, scan[2], scan[3]);
          // kappa = -sigma_c; read only when the round keeps anything.
          Value any =
              arith::CmpIOp::create(hb, arith::CmpIPredicate::ugt, h, zero);
          auto ifOp = scf::IfOp::create(hb, TypeRange{i8}, any, true);
          {
            OpBuilder::InsertionGuard g(hb);
            hb.setInsertionPointToStart(ifOp.thenBlock());
            Value sc = signAt(hb, c);
            scf::YieldOp::create(
                hb, ValueRange{arith::SubIOp::create(
                        hb, arith::ConstantIntOp::create(hb, i8, 0), sc)});
            hb.setInsertionPointToStart(ifOp.elseBlock());
            scf::YieldOp::create(
                hb, ValueRange{arith::ConstantIntOp::create(hb, i8, 0)});
          }
          Value kappa = ifOp.getResult(0);
          // Compaction, in place: the kappa tokens up to c (one more
          // doubling), then all after c, the first h of them. Token i is
          // read before index count <= i is written, so nothing unread is
          // overwritten. Writes are branch-free: a skipped token writes at
          // `count` too and is overwritten by the next kept one (or lands at
          // index h, unused).
          auto comp = forLoop(
              hb, zero, len, {ha[0], ha[1], zero},
              [&](ImplicitLocOpBuilder &cb, Value i, ValueRange a) {
                Value upToC =
                    arith::CmpIOp::create(cb, arith::CmpIPredicate::ule, i, c);
                Value isKappa = arith::CmpIOp::create(
                    cb, arith::CmpIPredicate::eq, signAt(cb, i), kappa);
                Value candidate = arith::SelectOp::create(
                    cb, upToC, isKappa,
                    arith::ConstantIntOp::create(cb, cb.getI1Type(), 1));
                Value room = arith::CmpIOp::create(
                    cb, arith::CmpIPredicate::ult, a[2], h);
                Value take = arith::AndIOp::create(cb, candidate, room);
                Value pos =
                    tensor::ExtractOp::create(cb, a[0], ValueRange{bi, hi, i});
                Value dbl = arith::AddIOp::create(
                    cb, tensor::ExtractOp::create(cb, a[1], ValueRange{bi, hi, i}),
                    arith::ExtUIOp::create(cb, i32, upToC));
                Value at = a[2];
                Value nc =
                    tensor::InsertOp::create(cb, pos, a[0], ValueRange{bi, hi, at});
                Value nd =
                    tensor::InsertOp::create(cb, dbl, a[1], ValueRange{bi, hi, at});
                Value count = arith::AddIOp::create(
                    cb, a[2], arith::SelectOp::create(cb, take, oneI, zero));
                return SmallVector<Value>{nc, nd, count};
              });
          return SmallVector<Value>{comp[0], comp[1]};
        });
    rewriter.replaceOp(op, castToResults(b, results, op));
    return success();
  }
};

struct GatherKeptToLoops : OpRewritePattern<GatherKeptOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(GatherKeptOp op,
                                PatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    const CompressParams p = op.getCompressParams();
    Value key = op.getKey(), tokens = op.getTokens(),
          doublings = op.getDoublings();
    OpFoldResult B = typedSize(b, key, 0), H = typedSize(b, key, 1);
    Value n = toIndex(b, typedSize(b, key, 2));
    LayoutValues layout =
        buildCompressedLayout(b, n, p.sink, p.recent, p.rounds);
    OpFoldResult M = layout.length;
    Value indices = filled(b, {B, H, M},
                           arith::ConstantIntOp::create(b, b.getI32Type(), 0));
    Value logW = filled(b, {B, H, M}, cF(b, b.getF32Type(), 0.0));
    auto perHead = forEachHead(
        b, toIndex(b, B), toIndex(b, H), {indices, logW},
        [&](ImplicitLocOpBuilder &hb, Value bi, Value hi, ValueRange ha) {
          auto [idxT, lwT] = writeHeadLayout(
              hb, bi, hi, ha[0], ha[1], layout, n,
              [&](ImplicitLocOpBuilder &wb, Value j) -> Value {
                return arith::IndexCastOp::create(
                    wb, wb.getIndexType(),
                    tensor::ExtractOp::create(wb, tokens, ValueRange{bi, hi, j}));
              },
              // log w = r ln 2 in f64, rounded once to f32.
              [&](ImplicitLocOpBuilder &wb, Value j) -> Value {
                Value r = arith::SIToFPOp::create(
                    wb, wb.getF64Type(),
                    tensor::ExtractOp::create(wb, doublings,
                                              ValueRange{bi, hi, j}));
                return arith::MulFOp::create(
                    wb, r, cF(wb, wb.getF64Type(), std::log(2.0)));
              });
          return SmallVector<Value>{idxT, lwT};
        });
    SmallVector<Value> results{gatherRows(b, key, perHead[0], B, H, M),
                               gatherRows(b, op.getValue(), perHead[0], B, H, M),
                               perHead[1]};
    rewriter.replaceOp(op, castToResults(b, results, op));
    return success();
  }
};

} // namespace

void balancekv::populateCompressToLoopsPatterns(RewritePatternSet &patterns) {
  patterns.add<CompressToLoops, BalanceInitToLoops, BalanceWalkToLoops,
               BalanceHalveToLoops, GatherKeptToLoops>(patterns.getContext());
}
