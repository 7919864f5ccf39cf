//===- CompressToLoops.cpp - compress => scf/linalg/tensor/arith ---------===//
//
// balancekv.compress => per (batch, KV head) scf.for nest that selects the
// kept tokens exactly as kernels/reference does (spec sections 2-4):
//   balance:  T rounds of { per block: centred keys, Gram G in f64
//             (linalg.generic), the walk as an scf.for carrying the running
//             sums S (S += G[:, i] * sigma_i after each sign), Philox as arith
//             ops }, then the crossover scan and a branch-free compaction;
//   uniform / knorm / snapkv: a score per middle token and "the L_T
//             smallest scores in position order" through a rank count;
//   streaming: the last L_T middle tokens.
// followed by a gather of the kept keys and values.
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
    SmallVector<AffineExpr> r;
    for (unsigned i : dims)
      r.push_back(getAffineDimExpr(i, ctx));
    return AffineMap::get(n, 0, r, ctx);
  }
  /// key/value element (b, h, row, x) widened to f64.
  Value load(ImplicitLocOpBuilder &nb, Value t, Value bi, Value hi, Value row,
             Value x) {
    return widen(nb, tensor::ExtractOp::create(nb, t, ValueRange{bi, hi, row, x}),
                 f64);
  }

  std::pair<Value, Value> balanceHead(Value bi, Value hi, double gamma);
  std::pair<Value, Value> rankSelectHead(Value scores, Value logWeight);
  Value snapkvScores(Value bi, Value hi);

  ImplicitLocOpBuilder &b;
  CompressOp op;
  MLIRContext *ctx;
  Type f64, f32, idx;
  // Sizes (index values) shared by all heads.
  Value nV, dV, dvV, mid0, l0, lT, mV, recentP;
  double scale = 0;
};

/// One head of the balance walk: returns (kept middle positions, their
/// log-weights), each of length L_0 with the first L_T valid.
std::pair<Value, Value> CompressLowering::balanceHead(Value bi, Value hi,
                                                      double gamma) {
  const int64_t blockSize = op.getCompressParams().blockSize;
  const double expScale = op.getCompressParams().temperature * scale;
  const double c0 = op.getCompressParams().c0;
  const uint64_t seed = op.getCompressParams().seed;
  OpFoldResult l0Size = l0;
  Value cur = tensor::EmptyOp::create(b, ArrayRef<OpFoldResult>{l0Size}, idx);
  cur = generic(b, {}, {cur}, {map(1, {0})}, "p",
                [&](ImplicitLocOpBuilder &nb, ValueRange) {
                  return SmallVector<Value>{linalgIndex(nb, 0)};
                })[0];
  Value curLw = filled(b, {l0Size}, cF(b, f64, 0.0));

  auto rounds = forLoop(
      b, cIdx(b, 0), cIdx(b, op.getRounds()), {cur, curLw, l0},
      [&](ImplicitLocOpBuilder &rb, Value round, ValueRange ra) {
        Value cur = ra[0], curLw = ra[1], len = ra[2];
        Value sigma0 = filled(rb, {l0Size}, cF(rb, f64, 0.0));
        Value bsV = cIdx(rb, blockSize);
        Value nBlocks = arith::CeilDivUIOp::create(rb, len, bsV);
        Value sigma = forLoop(
            rb, cIdx(rb, 0), nBlocks, {sigma0},
            [&](ImplicitLocOpBuilder &kb, Value blk, ValueRange ka) {
              Value start = arith::MulIOp::create(kb, blk, bsV);
              Value bsz = arith::MinUIOp::create(
                  kb, bsV, arith::SubIOp::create(kb, len, start));
              OpFoldResult bszF = bsz, one = kb.getIndexAttr(1);
              Value rows = tensor::ExtractSliceOp::create(
                  kb, cur, ArrayRef<OpFoldResult>{start},
                  ArrayRef<OpFoldResult>{bszF}, ArrayRef<OpFoldResult>{one});
              Value lws = tensor::ExtractSliceOp::create(
                  kb, curLw, ArrayRef<OpFoldResult>{start},
                  ArrayRef<OpFoldResult>{bszF}, ArrayRef<OpFoldResult>{one});
              auto rowOf = [&](ImplicitLocOpBuilder &nb, Value r) -> Value {
                return arith::AddIOp::create(nb, mid0, r);
              };
              // Sum of the block's keys, then centred keys k - sum / b.
              Value ksum = filled(kb, {OpFoldResult(dV)}, cF(kb, f64, 0.0));
              ksum = generic(kb, {rows}, {ksum}, {map(2, {1}), map(2, {0})}, "pr",
                             [&](ImplicitLocOpBuilder &nb, ValueRange x) {
                               Value k = load(nb, op.getKey(), bi, hi,
                                              rowOf(nb, x[0]),
                                              linalgIndex(nb, 0));
                               return SmallVector<Value>{
                                   arith::AddFOp::create(nb, x[1], k)};
                             })[0];
              Value bszF64 = arith::UIToFPOp::create(
                  kb, f64, arith::IndexCastUIOp::create(kb, kb.getI64Type(), bsz));
              Value kc = tensor::EmptyOp::create(
                  kb, ArrayRef<OpFoldResult>{bszF, OpFoldResult(dV)}, f64);
              kc = generic(kb, {rows, ksum}, {kc},
                           {map(2, {0}), map(2, {1}), map(2, {0, 1})}, "pp",
                           [&](ImplicitLocOpBuilder &nb, ValueRange x) {
                             Value k = load(nb, op.getKey(), bi, hi,
                                            rowOf(nb, x[0]), linalgIndex(nb, 1));
                             Value mean = arith::DivFOp::create(nb, x[1], bszF64);
                             return SmallVector<Value>{
                                 arith::SubFOp::create(nb, k, mean)};
                           })[0];
              Value wv = tensor::EmptyOp::create(
                  kb, ArrayRef<OpFoldResult>{bszF, OpFoldResult(dvV)}, f64);
              wv = generic(kb, {rows, lws}, {wv},
                           {map(2, {0}), map(2, {0}), map(2, {0, 1})}, "pp",
                           [&](ImplicitLocOpBuilder &nb, ValueRange x) {
                             Value v = load(nb, op.getValue(), bi, hi,
                                            rowOf(nb, x[0]), linalgIndex(nb, 1));
                             return SmallVector<Value>{arith::MulFOp::create(
                                 nb, math::ExpOp::create(nb, x[1]), v)};
                           })[0];
              // Gram G_ij = exp(tau s <kc_i, kc_j>) (<wv_i, wv_j> + c0).
              auto gramOf = [&](Value x) {
                Value g = filled(kb, {bszF, bszF}, cF(kb, f64, 0.0));
                return generic(kb, {x, x}, {g},
                               {map(3, {0, 2}), map(3, {1, 2}), map(3, {0, 1})},
                               "ppr",
                               [&](ImplicitLocOpBuilder &nb, ValueRange a) {
                                 return SmallVector<Value>{arith::AddFOp::create(
                                     nb, a[2],
                                     arith::MulFOp::create(nb, a[0], a[1]))};
                               })[0];
              };
              Value kk = gramOf(kc), vv = gramOf(wv);
              AffineMap id2 = map(2, {0, 1});
              Value gram = generic(
                  kb, {vv}, {kk}, {id2, id2}, "pp",
                  [&](ImplicitLocOpBuilder &nb, ValueRange a) {
                    Value e = math::ExpOp::create(
                        nb, arith::MulFOp::create(nb, a[1],
                                                  cF(nb, f64, expScale)));
                    return SmallVector<Value>{arith::MulFOp::create(
                        nb, e, arith::AddFOp::create(nb, a[0], cF(nb, f64, c0)))};
                  })[0];
              // The walk carries the running sums S_k = sum_{j<i} G_kj s_j.
              Value s0 = filled(kb, {bszF}, cF(kb, f64, 0.0));
              auto walk = forLoop(
                  kb, cIdx(kb, 0), bsz, {s0, ka[0]},
                  [&](ImplicitLocOpBuilder &wb, Value i, ValueRange wa) {
                    Value si = tensor::ExtractOp::create(wb, wa[0], i);
                    Value p = arith::SubFOp::create(
                        wb, cF(wb, f64, 0.5),
                        arith::MulFOp::create(wb, cF(wb, f64, gamma), si));
                    p = arith::MinimumFOp::create(
                        wb, arith::MaximumFOp::create(wb, p, cF(wb, f64, 0.0)),
                        cF(wb, f64, 1.0));
                    Value u = widen(wb,
                                    buildSpecUniform(wb, seed, i, blk, round,
                                                     bi, hi),
                                    f64);
                    Value plus = arith::CmpFOp::create(
                        wb, arith::CmpFPredicate::OLT, u, p);
                    Value sg = arith::SelectOp::create(
                        wb, plus, cF(wb, f64, 1.0), cF(wb, f64, -1.0));
                    Value sigma = tensor::InsertOp::create(
                        wb, sg, wa[1], ValueRange{
                                           arith::AddIOp::create(wb, start, i)});
                    Value s = generic(
                        wb, {}, {wa[0]}, {map(1, {0})}, "p",
                        [&](ImplicitLocOpBuilder &nb, ValueRange a) {
                          Value g = tensor::ExtractOp::create(
                              nb, gram, ValueRange{linalgIndex(nb, 0), i});
                          return SmallVector<Value>{arith::AddFOp::create(
                              nb, a[0], arith::MulFOp::create(nb, g, sg))};
                        })[0];
                    return SmallVector<Value>{s, sigma};
                  });
              return SmallVector<Value>{walk[1]};
            })[0];

        // Crossover: c+/c- = first index where the +1/-1 count reaches h.
        Value h = arith::DivUIOp::create(rb, len, cIdx(rb, 2));
        Value zero = cIdx(rb, 0), oneI = cIdx(rb, 1);
        auto scan = forLoop(
            rb, zero, len, {zero, zero, zero, zero},
            [&](ImplicitLocOpBuilder &sb, Value i, ValueRange a) {
              Value sg = tensor::ExtractOp::create(sb, sigma, i);
              Value isPlus = arith::CmpFOp::create(
                  sb, arith::CmpFPredicate::OGT, sg, cF(sb, f64, 0.0));
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
        Value c = arith::MaxUIOp::create(rb, scan[2], scan[3]);
        // kappa = -sigma_c; read only when the round keeps anything.
        Value any = arith::CmpIOp::create(rb, arith::CmpIPredicate::ugt, h, zero);
        auto ifOp = scf::IfOp::create(rb, TypeRange{f64}, any, true);
        {
          OpBuilder::InsertionGuard g(rb);
          rb.setInsertionPointToStart(ifOp.thenBlock());
          Value sc = tensor::ExtractOp::create(rb, sigma, c);
          scf::YieldOp::create(rb, ValueRange{arith::NegFOp::create(rb, sc)});
          rb.setInsertionPointToStart(ifOp.elseBlock());
          scf::YieldOp::create(rb, ValueRange{cF(rb, f64, 0.0)});
        }
        Value kappa = ifOp.getResult(0);
        // Compaction, in place: the kappa tokens up to c (weight x2), then
        // all after c, the first h of them. Token i is read before index
        // count <= i is written, so nothing unread is overwritten. Writes are
        // branch-free: a skipped token writes at `count` too and is
        // overwritten by the next kept one (or lands at index h, unused).
        Value ln2 = cF(rb, f64, std::log(2.0));
        auto comp = forLoop(
            rb, zero, len, {cur, curLw, zero},
            [&](ImplicitLocOpBuilder &cb, Value i, ValueRange a) {
              Value sg = tensor::ExtractOp::create(cb, sigma, i);
              Value upToC =
                  arith::CmpIOp::create(cb, arith::CmpIPredicate::ule, i, c);
              Value isKappa = arith::CmpFOp::create(
                  cb, arith::CmpFPredicate::OEQ, sg, kappa);
              Value candidate = arith::SelectOp::create(
                  cb, upToC, isKappa,
                  arith::ConstantIntOp::create(cb, cb.getI1Type(), 1));
              Value room = arith::CmpIOp::create(cb, arith::CmpIPredicate::ult,
                                                 a[2], h);
              Value take = arith::AndIOp::create(cb, candidate, room);
              Value pos = tensor::ExtractOp::create(cb, a[0], i);
              Value lw = arith::AddFOp::create(
                  cb, tensor::ExtractOp::create(cb, a[1], i),
                  arith::SelectOp::create(cb, upToC, ln2, cF(cb, f64, 0.0)));
              Value nc = tensor::InsertOp::create(cb, pos, a[0], a[2]);
              Value nl = tensor::InsertOp::create(cb, lw, a[1], a[2]);
              Value count = arith::AddIOp::create(
                  cb, a[2], arith::SelectOp::create(cb, take, oneI, zero));
              return SmallVector<Value>{nc, nl, count};
            });
        return SmallVector<Value>{comp[0], comp[1], h};
      });
  return {rounds[0], rounds[1]};
}

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
  LayoutValues layout = buildCompressedLayout(b, nV, op.getSink(),
                                              op.getRecent(), op.getRounds());
  Value sinkP = layout.sink;
  recentP = layout.recent;
  mid0 = layout.sink;
  l0 = layout.middle;
  lT = layout.keptMiddle;
  mV = layout.length;
  OpFoldResult M = mV;

  Value indices = filled(b, {B, H, M}, cIdx(b, 0));
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
                std::tie(kept, keptLw) = balanceHead(
                    bi, hi, op.getCompressParams().gamma);
                break;
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
              // Sink, kept middle, recent window: positions and log-weights.
              Value idxT = ha[0], lwT = ha[1];
              auto write = [&](Value count, Value at0,
                               std::function<Value(ImplicitLocOpBuilder &, Value)>
                                   position,
                               Value keptLwOrNull) {
                auto r = forLoop(
                    b, cIdx(b, 0), count, {idxT, lwT},
                    [&](ImplicitLocOpBuilder &wb, Value j, ValueRange a) {
                      Value m = arith::AddIOp::create(wb, at0, j);
                      Value ni = tensor::InsertOp::create(
                          wb, position(wb, j), a[0], ValueRange{bi, hi, m});
                      Value nl = a[1];
                      if (keptLwOrNull)
                        nl = tensor::InsertOp::create(
                            wb,
                            arith::TruncFOp::create(
                                wb, f32,
                                tensor::ExtractOp::create(wb, keptLwOrNull, j)),
                            a[1], ValueRange{bi, hi, m});
                      return SmallVector<Value>{ni, nl};
                    });
                idxT = r[0];
                lwT = r[1];
              };
              write(sinkP, cIdx(b, 0),
                    [](ImplicitLocOpBuilder &, Value j) { return j; }, Value());
              write(lT, sinkP,
                    [&](ImplicitLocOpBuilder &wb, Value j) -> Value {
                      return arith::AddIOp::create(
                          wb, mid0, tensor::ExtractOp::create(wb, kept, j));
                    },
                    keptLw);
              Value recent0 = arith::SubIOp::create(b, nV, recentP);
              write(recentP, arith::AddIOp::create(b, sinkP, lT),
                    [&](ImplicitLocOpBuilder &wb, Value j) -> Value {
                      return arith::AddIOp::create(wb, recent0, j);
                    },
                    Value());
              return SmallVector<Value>{idxT, lwT};
            });
      });
  indices = perBatch[0];
  logW = perBatch[1];

  // Gather the kept rows.
  auto gather = [&](Value src, OpFoldResult width) {
    Value out = tensor::EmptyOp::create(
        b, ArrayRef<OpFoldResult>{B, H, M, width},
        cast<ShapedType>(src.getType()).getElementType());
    return generic(b, {indices}, {out}, {map(4, {0, 1, 2}), map(4, {0, 1, 2, 3})},
                   "pppp", [&](ImplicitLocOpBuilder &nb, ValueRange a) {
                     Value x = tensor::ExtractOp::create(
                         nb, src,
                         ValueRange{linalgIndex(nb, 0), linalgIndex(nb, 1), a[0],
                                    linalgIndex(nb, 3)});
                     return SmallVector<Value>{x};
                   })[0];
  };
  SmallVector<Value> results{gather(key, size(key, 3)),
                             gather(value, size(value, 3)), logW};
  for (auto [r, res] : llvm::zip(results, op.getResults()))
    if (r.getType() != res.getType())
      r = tensor::CastOp::create(b, res.getType(), r);
  return results;
}

struct CompressToLoops : OpRewritePattern<CompressOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(CompressOp op,
                                PatternRewriter &rewriter) const override {
    if (ShapedType::isDynamic(
            cast<ShapedType>(op.getKey().getType()).getDimSize(3)) &&
        op.getCompressParams().scale == 0)
      return rewriter.notifyMatchFailure(op, "dynamic D without scale");
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    rewriter.replaceOp(op, CompressLowering(b, op).run());
    return success();
  }
};

} // namespace

void balancekv::populateCompressToLoopsPatterns(RewritePatternSet &patterns) {
  patterns.add<CompressToLoops>(patterns.getContext());
}
