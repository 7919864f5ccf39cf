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

/// balance_halve's search chunk (tokens per kept-colour count).
constexpr int64_t kHalveChunk = 128;

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

/// ceil(n / d), static when n is.
OpFoldResult ceilDiv(ImplicitLocOpBuilder &b, OpFoldResult n, int64_t d) {
  if (std::optional<int64_t> c = getConstantIntValue(n))
    return b.getIndexAttr((*c + d - 1) / d);
  return arith::CeilDivUIOp::create(b, toIndex(b, n), cIdx(b, d)).getResult();
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
              case CompressionMethod::Adaptive:
                llvm_unreachable("balance is decomposed into its stages, "
                                 "adaptive calls the reference");
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
    if (op.getMethod() == CompressionMethod::Adaptive)
      return rewriter.notifyMatchFailure(
          op, "adaptive: a call of the CPU reference (its own pattern)");
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

/// balance_walk on tensors as linalg.generic ops over (batch, head, block)
/// (so a compiler that forms dispatches from linalg ops, IREE, runs every
/// block as one parallel work item; nothing is written element by element
/// outside them): the pieces of spec section 3, steps 1-3, each a method.
class WalkLowering {
public:
  WalkLowering(ImplicitLocOpBuilder &b, BalanceWalkOp op)
      : b(b), op(op), ctx(b.getContext()), p(op.getCompressParams()),
        f64(b.getF64Type()), i8(b.getI8Type()), i64(b.getI64Type()) {
    dV = toIndex(b, typedSize(b, op.getKey(), 3));
    dvV = toIndex(b, typedSize(b, op.getValue(), 3));
    // Middle token j is cache row S' + j.
    mid0 = buildCompressedLayout(b, toIndex(b, typedSize(b, op.getKey(), 2)),
                                 p.sink, p.recent, p.rounds)
               .sink;
    len = arith::ShRUIOp::create(
        b, toIndex(b, typedSize(b, op.getTokens(), 2)), op.getRound());
    roundI32 = arith::IndexCastOp::create(b, b.getI32Type(), op.getRound());
    bsV = cIdx(b, p.blockSize);
  }

  /// signs [B, H, L_0] (i8; 0 past L_t).
  Value run() {
    Value tokens = op.getTokens();
    OpFoldResult B = typedSize(b, tokens, 0), H = typedSize(b, tokens, 1),
                 L0 = typedSize(b, tokens, 2);
    // Blocks of the first round cover every later round's tokens too.
    OpFoldResult NB = ceilDiv(b, L0, p.blockSize);
    Value means = blockMeans(B, H, NB);
    auto words = blockWalks(B, H, NB, means);
    Value lo = words.first, hi = words.second;
    Value signs = tensor::EmptyOp::create(b, ArrayRef<OpFoldResult>{B, H, L0}, i8);
    return generic(
        b, {}, {signs}, {map(3, {0, 1, 2})}, "ppp",
        [&](ImplicitLocOpBuilder &nb, ValueRange) -> SmallVector<Value> {
          Value t = linalgIndex(nb, 2);
          Value blk = arith::DivUIOp::create(nb, t, bsV);
          Value i = arith::RemUIOp::create(nb, t, bsV);
          SmallVector<Value> at{linalgIndex(nb, 0), linalgIndex(nb, 1), blk};
          Value inLo =
              arith::CmpIOp::create(nb, arith::CmpIPredicate::ult, i, cIdx(nb, 64));
          Value word = arith::SelectOp::create(
              nb, inLo, tensor::ExtractOp::create(nb, lo, at),
              tensor::ExtractOp::create(nb, hi, at));
          Value plus = bitAt(nb, word, arith::RemUIOp::create(nb, i, cIdx(nb, 64)));
          Value sign = arith::SelectOp::create(
              nb, plus, arith::ConstantIntOp::create(nb, i8, 1),
              arith::ConstantIntOp::create(nb, i8, -1));
          Value live =
              arith::CmpIOp::create(nb, arith::CmpIPredicate::ult, t, len);
          return SmallVector<Value>{arith::SelectOp::create(
              nb, live, sign, arith::ConstantIntOp::create(nb, i8, 0))};
        })[0];
  }

private:
  /// Tokens [start, start + size) of the state: one block of one head.
  struct Block {
    Value batch, head, index, start, size;
  };

  AffineMap map(unsigned n, ArrayRef<unsigned> dims) {
    return dimsMap(ctx, n, dims);
  }
  /// The block at linalg indices (0, 1, 2) = (batch, head, block) in round
  /// `len` (size 0 past L_t).
  Block blockHere(ImplicitLocOpBuilder &nb) {
    Block blk{linalgIndex(nb, 0), linalgIndex(nb, 1), linalgIndex(nb, 2),
              Value(), Value()};
    blk.start = arith::MulIOp::create(nb, blk.index, bsV);
    Value live =
        arith::CmpIOp::create(nb, arith::CmpIPredicate::ult, blk.start, len);
    Value rest = arith::SubIOp::create(
        nb, len, arith::MinUIOp::create(nb, blk.start, len));
    blk.size = arith::SelectOp::create(
        nb, live, arith::MinUIOp::create(nb, bsV, rest), cIdx(nb, 0));
    return blk;
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
        nb, arith::ExtSIOp::create(nb, i64, stateAt(nb, op.getDoublings(), blk, r)),
        arith::ConstantIntOp::create(nb, i64, 1023));
    Value bits =
        arith::ShLIOp::create(nb, e, arith::ConstantIntOp::create(nb, i64, 52));
    return arith::BitcastOp::create(nb, f64, bits);
  }
  /// An element of the cache, widened to f64.
  Value cacheAt(ImplicitLocOpBuilder &nb, Value t, const Block &blk, Value row,
                Value x) {
    return widen(
        nb, tensor::ExtractOp::create(nb, t, ValueRange{blk.batch, blk.head, row, x}),
        f64);
  }
  /// Bit `i` (index) of an i64 word, as i1.
  Value bitAt(ImplicitLocOpBuilder &nb, Value word, Value i) {
    Value shifted = arith::ShRUIOp::create(
        nb, word, arith::IndexCastOp::create(nb, i64, i));
    return arith::TruncIOp::create(nb, nb.getI1Type(), shifted);
  }

  /// means [B, H, NB, D] (f64): each block's mean key, summed in token order
  /// and divided by the block size (step 1).
  Value blockMeans(OpFoldResult B, OpFoldResult H, OpFoldResult NB) {
    Value means = tensor::EmptyOp::create(
        b, ArrayRef<OpFoldResult>{B, H, NB, typedSize(b, op.getKey(), 3)}, f64);
    return generic(
        b, {}, {means}, {map(4, {0, 1, 2, 3})}, "pppp",
        [&](ImplicitLocOpBuilder &nb, ValueRange) -> SmallVector<Value> {
          Block blk = blockHere(nb);
          Value x = linalgIndex(nb, 3);
          Value sum = forLoop(nb, cIdx(nb, 0), blk.size, {cF(nb, f64, 0.0)},
                              [&](ImplicitLocOpBuilder &lb, Value r, ValueRange a) -> SmallVector<Value> {
                                return SmallVector<Value>{arith::AddFOp::create(
                                    lb, a[0],
                                    cacheAt(lb, op.getKey(), blk, rowOf(lb, blk, r), x))};
                              })[0];
          Value size = arith::UIToFPOp::create(
              nb, f64, arith::IndexCastUIOp::create(nb, i64, blk.size));
          return SmallVector<Value>{arith::DivFOp::create(nb, sum, size)};
        })[0];
  }

  /// G_ij = exp(tau s <kc_i, kc_j>) (<wv_i, wv_j> + c0) over the block's
  /// centred keys kc = k - mean and weighted values wv = w v (f64, step 2),
  /// computed when the walk needs it.
  Value gram(ImplicitLocOpBuilder &nb, const Block &blk, Value means, Value ri,
             Value rj, Value wi, Value wj) {
    SmallVector<Value> at{blk.batch, blk.head, blk.index};
    Value kk = forLoop(nb, cIdx(nb, 0), dV, {cF(nb, f64, 0.0)},
                       [&](ImplicitLocOpBuilder &lb, Value x, ValueRange a) -> SmallVector<Value> {
                         Value m = tensor::ExtractOp::create(
                             lb, means, ValueRange{at[0], at[1], at[2], x});
                         Value ki = arith::SubFOp::create(
                             lb, cacheAt(lb, op.getKey(), blk, ri, x), m);
                         Value kj = arith::SubFOp::create(
                             lb, cacheAt(lb, op.getKey(), blk, rj, x), m);
                         return SmallVector<Value>{arith::AddFOp::create(
                             lb, a[0], arith::MulFOp::create(lb, ki, kj))};
                       })[0];
    Value vv = forLoop(nb, cIdx(nb, 0), dvV, {cF(nb, f64, 0.0)},
                       [&](ImplicitLocOpBuilder &lb, Value x, ValueRange a) -> SmallVector<Value> {
                         Value vi = arith::MulFOp::create(
                             lb, wi, cacheAt(lb, op.getValue(), blk, ri, x));
                         Value vj = arith::MulFOp::create(
                             lb, wj, cacheAt(lb, op.getValue(), blk, rj, x));
                         return SmallVector<Value>{arith::AddFOp::create(
                             lb, a[0], arith::MulFOp::create(lb, vi, vj))};
                       })[0];
    const double expScale = p.temperature * op.getKernelScale();
    Value e = math::ExpOp::create(
        nb, arith::MulFOp::create(nb, kk, cF(nb, f64, expScale)));
    return arith::MulFOp::create(
        nb, e, arith::AddFOp::create(nb, vv, cF(nb, f64, p.c0)));
  }

  /// The walk over each block (step 3): sigma_i = +1 when the Philox draw
  /// is below clamp(1/2 - gamma S_i, 0, 1), S_i = sum_{j<i} G_ij sigma_j in
  /// j order. A block's signs (at most 128, Passes.td) are two i64 words
  /// [B, H, NB] (bit set: +1).
  std::pair<Value, Value> blockWalks(OpFoldResult B, OpFoldResult H,
                                     OpFoldResult NB, Value means) {
    Value words = tensor::EmptyOp::create(b, ArrayRef<OpFoldResult>{B, H, NB}, i64);
    AffineMap id3 = map(3, {0, 1, 2});
    auto r = generic(
        b, {}, {words, words}, {id3, id3}, "ppp",
        [&](ImplicitLocOpBuilder &nb, ValueRange) -> SmallVector<Value> {
          Block blk = blockHere(nb);
          Value zero64 = arith::ConstantIntOp::create(nb, i64, 0);
          return forLoop(
              nb, cIdx(nb, 0), blk.size, {zero64, zero64},
              [&](ImplicitLocOpBuilder &wb, Value i, ValueRange w) -> SmallVector<Value> {
                Value ri = rowOf(wb, blk, i), wi = weightOf(wb, blk, i);
                Value s = forLoop(
                    wb, cIdx(wb, 0), i, {cF(wb, f64, 0.0)},
                    [&](ImplicitLocOpBuilder &jb, Value j, ValueRange a) -> SmallVector<Value> {
                      Value g = gram(jb, blk, means, ri, rowOf(jb, blk, j), wi,
                                     weightOf(jb, blk, j));
                      Value inLo = arith::CmpIOp::create(
                          jb, arith::CmpIPredicate::ult, j, cIdx(jb, 64));
                      Value word = arith::SelectOp::create(jb, inLo, w[0], w[1]);
                      Value plus = bitAt(
                          jb, word, arith::RemUIOp::create(jb, j, cIdx(jb, 64)));
                      Value sg = arith::SelectOp::create(
                          jb, plus, cF(jb, f64, 1.0), cF(jb, f64, -1.0));
                      return SmallVector<Value>{arith::AddFOp::create(
                          jb, a[0], arith::MulFOp::create(jb, g, sg))};
                    })[0];
                Value prob = buildWalkProbability(wb, s, p.gamma);
                Value u = widen(wb,
                                buildSpecUniform(wb, p.seed, i, blk.index,
                                                 roundI32, blk.batch, blk.head),
                                f64);
                Value plus =
                    arith::CmpFOp::create(wb, arith::CmpFPredicate::OLT, u, prob);
                // Set bit i of its word when +1.
                Value bit = arith::ShLIOp::create(
                    wb, arith::ExtUIOp::create(wb, i64, plus),
                    arith::IndexCastOp::create(
                        wb, i64, arith::RemUIOp::create(wb, i, cIdx(wb, 64))));
                Value inLo = arith::CmpIOp::create(
                    wb, arith::CmpIPredicate::ult, i, cIdx(wb, 64));
                Value zero = arith::ConstantIntOp::create(wb, i64, 0);
                return SmallVector<Value>{
                    arith::OrIOp::create(
                        wb, w[0], arith::SelectOp::create(wb, inLo, bit, zero)),
                    arith::OrIOp::create(
                        wb, w[1], arith::SelectOp::create(wb, inLo, zero, bit))};
              });
        });
    return {r[0], r[1]};
  }

  ImplicitLocOpBuilder &b;
  BalanceWalkOp op;
  MLIRContext *ctx;
  const CompressParams p;
  Type f64, i8, i64;
  Value dV, dvV, mid0, len, roundI32, bsV;
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

/// Step 4 of spec section 3 for every head, as linalg.generic ops: the
/// crossover per (batch, head), the kept-colour count per block, then each
/// kept slot j < h finds its token (the j-th kept-colour token up to c
/// through the block counts, else token c + 1 + j - count). Slots from h on
/// keep their old state (no later round reads them).
struct BalanceHalveToLoops : OpRewritePattern<BalanceHalveOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(BalanceHalveOp op,
                                PatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    MLIRContext *ctx = b.getContext();
    Value signs = op.getSigns(), tokens = op.getTokens(),
          doublings = op.getDoublings();
    OpFoldResult B = typedSize(b, tokens, 0), H = typedSize(b, tokens, 1),
                 L0 = typedSize(b, tokens, 2);
    Value len = arith::ShRUIOp::create(b, toIndex(b, L0), op.getRound());
    Value h = arith::DivUIOp::create(b, len, cIdx(b, 2));
    // Chunks for finding the j-th kept token (any size works; the walk's
    // block size bounds neither).
    Value bsV = cIdx(b, kHalveChunk);
    OpFoldResult NB = ceilDiv(b, L0, kHalveChunk);
    Value zero = cIdx(b, 0), oneI = cIdx(b, 1);
    Type i8 = b.getI8Type(), i32 = b.getI32Type();
    // (linalg.index only directly in a generic's body: each body reads
    // its (batch, head) first and passes them on.)
    Value bi, hi;
    auto signAt = [&](ImplicitLocOpBuilder &nb, Value i) -> Value {
      return tensor::ExtractOp::create(nb, signs, ValueRange{bi, hi, i});
    };
    auto toI32 = [&](ImplicitLocOpBuilder &nb, Value v) -> Value {
      return arith::IndexCastOp::create(nb, i32, v);
    };
    auto toIdx = [&](ImplicitLocOpBuilder &nb, Value v) -> Value {
      return arith::IndexCastOp::create(nb, nb.getIndexType(), v);
    };

    // Crossover c (i32) and kept colour kappa (i8) per (batch, head).
    Value cT = tensor::EmptyOp::create(b, ArrayRef<OpFoldResult>{B, H}, i32);
    Value kT = tensor::EmptyOp::create(b, ArrayRef<OpFoldResult>{B, H}, i8);
    AffineMap id2 = dimsMap(ctx, 2, {0, 1});
    auto crossover = generic(
        b, {}, {cT, kT}, {id2, id2}, "pp",
        [&](ImplicitLocOpBuilder &nb, ValueRange) -> SmallVector<Value> {
          bi = linalgIndex(nb, 0);
          hi = linalgIndex(nb, 1);
          // c+/c- = first index where the +1/-1 count reaches h.
          auto scan = forLoop(
              nb, zero, len, {zero, zero, zero, zero},
              [&](ImplicitLocOpBuilder &sb, Value i, ValueRange a) -> SmallVector<Value> {
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
                      arith::CmpIOp::create(sb, arith::CmpIPredicate::eq, count, h));
                };
                Value isMinus = arith::XOrIOp::create(
                    sb, isPlus, arith::ConstantIntOp::create(sb, sb.getI1Type(), 1));
                Value cP = arith::SelectOp::create(sb, reached(isPlus, nP), i, a[2]);
                Value cM = arith::SelectOp::create(sb, reached(isMinus, nM), i, a[3]);
                return SmallVector<Value>{nP, nM, cP, cM};
              });
          Value c = arith::MaxUIOp::create(nb, scan[2], scan[3]);
          // kappa = -sigma_c; read only when the round keeps anything.
          Value any = arith::CmpIOp::create(nb, arith::CmpIPredicate::ugt, h, zero);
          auto ifOp = scf::IfOp::create(nb, TypeRange{i8}, any, true);
          {
            OpBuilder::InsertionGuard g(nb);
            nb.setInsertionPointToStart(ifOp.thenBlock());
            scf::YieldOp::create(
                nb, ValueRange{arith::SubIOp::create(
                        nb, arith::ConstantIntOp::create(nb, i8, 0), signAt(nb, c))});
            nb.setInsertionPointToStart(ifOp.elseBlock());
            scf::YieldOp::create(nb,
                                 ValueRange{arith::ConstantIntOp::create(nb, i8, 0)});
          }
          return SmallVector<Value>{toI32(nb, c), ifOp.getResult(0)};
        });
    Value cross = crossover[0], kappa = crossover[1];
    auto headScalar = [&](ImplicitLocOpBuilder &nb, Value t) -> Value {
      return tensor::ExtractOp::create(nb, t, ValueRange{bi, hi});
    };
    // Whether token i is a kept-colour token up to c.
    auto keptColourUpToC = [&](ImplicitLocOpBuilder &nb, Value i, Value c,
                               Value k) -> Value {
      return arith::AndIOp::create(
          nb, arith::CmpIOp::create(nb, arith::CmpIPredicate::ule, i, c),
          arith::CmpIOp::create(nb, arith::CmpIPredicate::eq, signAt(nb, i), k));
    };

    // Kept-colour tokens up to c per block (i32).
    Value counts = tensor::EmptyOp::create(b, ArrayRef<OpFoldResult>{B, H, NB}, i32);
    counts = generic(
        b, {}, {counts}, {dimsMap(ctx, 3, {0, 1, 2})}, "ppp",
        [&](ImplicitLocOpBuilder &nb, ValueRange) -> SmallVector<Value> {
          bi = linalgIndex(nb, 0);
          hi = linalgIndex(nb, 1);
          Value c = toIdx(nb, headScalar(nb, cross)), k = headScalar(nb, kappa);
          Value start = arith::MulIOp::create(nb, linalgIndex(nb, 2), bsV);
          Value end = arith::MinUIOp::create(
              nb, arith::AddIOp::create(nb, start, bsV),
              arith::MinUIOp::create(nb, len, arith::AddIOp::create(nb, c, oneI)));
          end = arith::MaxUIOp::create(nb, end, start);
          Value n = forLoop(nb, start, end, {zero},
                            [&](ImplicitLocOpBuilder &lb, Value i, ValueRange a) -> SmallVector<Value> {
                              return SmallVector<Value>{arith::AddIOp::create(
                                  lb, a[0],
                                  arith::SelectOp::create(
                                      lb, keptColourUpToC(lb, i, c, k), oneI, zero))};
                            })[0];
          return SmallVector<Value>{toI32(nb, n)};
        })[0];

    // Slot j of the next round's state.
    Value nbV = toIndex(b, NB);
    AffineMap id3 = dimsMap(ctx, 3, {0, 1, 2});
    // Fresh outputs: the bodies read other slots of the old state.
    Value nextTokens =
        tensor::EmptyOp::create(b, ArrayRef<OpFoldResult>{B, H, L0}, i32);
    auto next = generic(
        b, {tokens, doublings}, {nextTokens, nextTokens}, {id3, id3, id3, id3}, "ppp",
        [&](ImplicitLocOpBuilder &nb, ValueRange a) -> SmallVector<Value> {
          bi = linalgIndex(nb, 0);
          hi = linalgIndex(nb, 1);
          Value j = linalgIndex(nb, 2);
          Value kept = arith::CmpIOp::create(nb, arith::CmpIPredicate::ult, j, h);
          auto ifOp = scf::IfOp::create(nb, TypeRange{i32, i32}, kept, true);
          {
            OpBuilder::InsertionGuard g(nb);
            nb.setInsertionPointToStart(ifOp.thenBlock());
            Value c = toIdx(nb, headScalar(nb, cross)), k = headScalar(nb, kappa);
            // The block holding the j-th kept-colour token (if j < their
            // count), the count before it, and their count.
            auto walk = forLoop(
                nb, zero, nbV, {zero, zero, zero, zero},
                [&](ImplicitLocOpBuilder &lb, Value blk, ValueRange w) -> SmallVector<Value> {
                  Value n = toIdx(lb, tensor::ExtractOp::create(
                                          lb, counts, ValueRange{bi, hi, blk}));
                  Value total = arith::AddIOp::create(lb, w[0], n);
                  Value here = arith::AndIOp::create(
                      lb, arith::CmpIOp::create(lb, arith::CmpIPredicate::eq, w[3], zero),
                      arith::CmpIOp::create(lb, arith::CmpIPredicate::ult, j, total));
                  return SmallVector<Value>{
                      total, arith::SelectOp::create(lb, here, blk, w[1]),
                      arith::SelectOp::create(lb, here, w[0], w[2]),
                      arith::SelectOp::create(lb, here, oneI, w[3])};
                });
            Value nKappa = walk[0];
            Value fromKappa =
                arith::CmpIOp::create(nb, arith::CmpIPredicate::ult, j, nKappa);
            // Within the block: the (j - before)-th kept-colour token.
            Value start = arith::MulIOp::create(nb, walk[1], bsV);
            Value end = arith::MinUIOp::create(
                nb, arith::AddIOp::create(nb, start, bsV), len);
            Value want = arith::SubIOp::create(nb, j, walk[2]);
            auto found = forLoop(
                nb, start, arith::SelectOp::create(nb, fromKappa, end, start),
                {zero, zero},
                [&](ImplicitLocOpBuilder &lb, Value i, ValueRange f) -> SmallVector<Value> {
                  Value isK = keptColourUpToC(lb, i, c, k);
                  Value hit = arith::AndIOp::create(
                      lb, isK,
                      arith::CmpIOp::create(lb, arith::CmpIPredicate::eq, f[0], want));
                  return SmallVector<Value>{
                      arith::AddIOp::create(
                          lb, f[0], arith::SelectOp::create(lb, isK, oneI, zero)),
                      arith::SelectOp::create(lb, hit, i, f[1])};
                });
            Value afterC = arith::AddIOp::create(
                nb, arith::AddIOp::create(nb, c, oneI),
                arith::SubIOp::create(nb, j, arith::MinUIOp::create(nb, j, nKappa)));
            Value pos = arith::SelectOp::create(nb, fromKappa, found[1], afterC);
            SmallVector<Value> at{bi, hi, pos};
            Value upToC = arith::CmpIOp::create(nb, arith::CmpIPredicate::ule, pos, c);
            Value dbl = arith::AddIOp::create(
                nb, tensor::ExtractOp::create(nb, doublings, at),
                arith::ExtUIOp::create(nb, i32, upToC));
            scf::YieldOp::create(
                nb, ValueRange{tensor::ExtractOp::create(nb, tokens, at), dbl});
            nb.setInsertionPointToStart(ifOp.elseBlock());
            scf::YieldOp::create(nb, ValueRange{a[0], a[1]});
          }
          return SmallVector<Value>{ifOp.getResult(0), ifOp.getResult(1)};
        });
    rewriter.replaceOp(op, castToResults(b, {next[0], next[1]}, op));
    return success();
  }
};

/// The compressed layout per slot (sink, kept middle, recent window; spec
/// section 2) as one linalg.generic, then the gather of the rows.
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
    Type i32 = b.getI32Type(), f32 = b.getF32Type(), f64 = b.getF64Type();
    Value indices = tensor::EmptyOp::create(b, ArrayRef<OpFoldResult>{B, H, M}, i32);
    Value logW = tensor::EmptyOp::create(b, ArrayRef<OpFoldResult>{B, H, M}, f32);
    Value middleEnd = arith::AddIOp::create(b, layout.sink, layout.keptMiddle);
    Value recent0 = arith::SubIOp::create(b, n, layout.recent);
    AffineMap id3 = dimsMap(b.getContext(), 3, {0, 1, 2});
    auto slots = generic(
        b, {}, {indices, logW}, {id3, id3}, "ppp",
        [&](ImplicitLocOpBuilder &nb, ValueRange) -> SmallVector<Value> {
          Value bi = linalgIndex(nb, 0), hi = linalgIndex(nb, 1);
          Value m = linalgIndex(nb, 2);
          Value inSink =
              arith::CmpIOp::create(nb, arith::CmpIPredicate::ult, m, layout.sink);
          Value inMiddle = arith::AndIOp::create(
              nb, arith::CmpIOp::create(nb, arith::CmpIPredicate::uge, m, layout.sink),
              arith::CmpIOp::create(nb, arith::CmpIPredicate::ult, m, middleEnd));
          // The recent window's row; the sink's is m itself.
          Value other = arith::SelectOp::create(
              nb, inSink, m,
              arith::AddIOp::create(nb, recent0,
                                    arith::SubIOp::create(nb, m, middleEnd)));
          auto ifOp = scf::IfOp::create(nb, TypeRange{i32, f32}, inMiddle, true);
          {
            OpBuilder::InsertionGuard g(nb);
            nb.setInsertionPointToStart(ifOp.thenBlock());
            SmallVector<Value> at{bi, hi, arith::SubIOp::create(nb, m, layout.sink)};
            Value row = arith::AddIOp::create(
                nb, arith::IndexCastOp::create(nb, i32, layout.sink),
                tensor::ExtractOp::create(nb, tokens, at));
            // log w = r ln 2 in f64, rounded once to f32.
            Value r = arith::SIToFPOp::create(
                nb, f64, tensor::ExtractOp::create(nb, doublings, at));
            Value lw = arith::TruncFOp::create(
                nb, f32, arith::MulFOp::create(nb, r, cF(nb, f64, std::log(2.0))));
            scf::YieldOp::create(nb, ValueRange{row, lw});
            nb.setInsertionPointToStart(ifOp.elseBlock());
            scf::YieldOp::create(
                nb, ValueRange{arith::IndexCastOp::create(nb, i32, other),
                               cF(nb, f32, 0.0)});
          }
          return SmallVector<Value>{ifOp.getResult(0), ifOp.getResult(1)};
        });
    SmallVector<Value> results{gatherRows(b, key, slots[0], B, H, M),
                               gatherRows(b, op.getValue(), slots[0], B, H, M),
                               slots[1]};
    rewriter.replaceOp(op, castToResults(b, results, op));
    return success();
  }
};

} // namespace

void balancekv::populateCompressToLoopsPatterns(RewritePatternSet &patterns) {
  patterns.add<CompressToLoops, BalanceInitToLoops, BalanceWalkToLoops,
               BalanceHalveToLoops, GatherKeptToLoops>(patterns.getContext());
}
