//===- AggregatedOpInterfaceImpl.cpp - attention decompositions ----------===//
//
// attention / weighted_attention => linalg.generic chain in f32 (IREE's
// attention decomposition, with the log-weights added where IREE adds the
// mask):
//   S = Q Kᵀ; S' = scale S + log w, masked (causal, kv_len) to -inf;
//   P = exp(S' - rowmax); O = (P V) / rowsum(P)
// GQA by viewing Q as [B, Hkv, G, L, D]. Rows that see no key give zeros.
// Used by --balancekv-lower-to-loops and by
// transform.structured.decompose_interface.
//
//===----------------------------------------------------------------------===//

#include "balancekv/Dialect/BalanceKV/IR/BalanceKVOps.h"
#include "balancekv/Support/LoopBuilder.h"

#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

#include <cmath>

using namespace mlir;
using namespace balancekv;
using namespace balancekv::loops;

namespace {

struct AttentionParts {
  Value query, key, value, logWeights, kvLen;
  float scale;
  bool causal;
  RankedTensorType resultType;
};

Value lowerAttention(ImplicitLocOpBuilder &b, const AttentionParts &a) {
  MLIRContext *ctx = b.getContext();
  Type f32 = b.getF32Type();
  auto qType = cast<RankedTensorType>(a.query.getType());
  Type elem = qType.getElementType();
  auto size = [&](Value v, int64_t d) { return typedSize(b, v, d); };
  OpFoldResult B = size(a.query, 0), Hq = size(a.query, 1),
               Hkv = size(a.key, 1), L = size(a.query, 2), D = size(a.query, 3),
               N = size(a.key, 2), Dv = size(a.value, 3);
  Value key = a.key, value = a.value, logWeights = a.logWeights;
  // G = Hq / Hkv. Head counts the verifier cannot see are checked when the
  // program runs (a wrong grouping would read past the KV heads).
  OpFoldResult G;
  auto hq = getConstantIntValue(Hq), hkv = getConstantIntValue(Hkv);
  Value group;
  if (hq && hkv) {
    G = b.getIndexAttr(*hq / *hkv);
  } else {
    Value hqV = getValueOrCreateConstantIndexOp(b, b.getLoc(), Hq);
    Value hkvV = getValueOrCreateConstantIndexOp(b, b.getLoc(), Hkv);
    Value zero = cIdx(b, 0);
    Value safeHkv = arith::MaxUIOp::create(b, hkvV, cIdx(b, 1));
    Value divides = arith::AndIOp::create(
        b, arith::CmpIOp::create(b, arith::CmpIPredicate::sgt, hkvV, zero),
        arith::CmpIOp::create(b, arith::CmpIPredicate::eq,
                              arith::RemUIOp::create(b, hqV, safeHkv), zero));
    cf::AssertOp::create(b, divides,
                         "balancekv attention: the query head count must be "
                         "a positive multiple of the KV head count");
    group = arith::DivUIOp::create(b, hqV, safeHkv);
    G = group;
  }
  if (!hkv) {
    // A dynamic KV head count: Q cannot be viewed as [B, Hkv, G, L, D] (two
    // dynamic sizes in one expand_shape group, which MLIR 22's
    // expand-strided-metadata cannot lower), so K, V and the log-weights are
    // broadcast to the query heads instead (G = 1).
    auto broadcastHeads = [&](Value t) {
      auto type = cast<RankedTensorType>(t.getType());
      SmallVector<OpFoldResult> shape;
      for (int64_t i = 0; i < type.getRank(); ++i)
        shape.push_back(i == 1 ? Hq : size(t, i));
      Value out = tensor::EmptyOp::create(b, shape, type.getElementType());
      unsigned rank = type.getRank();
      return generic(
          b, {}, {out}, {AffineMap::getMultiDimIdentityMap(rank, ctx)},
          std::string(rank, 'p'), [&](ImplicitLocOpBuilder &nb, ValueRange) {
            SmallVector<Value> idx;
            for (unsigned i = 0; i < rank; ++i)
              idx.push_back(linalgIndex(nb, i));
            idx[1] = arith::DivUIOp::create(nb, idx[1], group);
            return SmallVector<Value>{tensor::ExtractOp::create(nb, t, idx)};
          })[0];
    };
    key = broadcastHeads(key);
    value = broadcastHeads(value);
    if (logWeights)
      logWeights = broadcastHeads(logWeights);
    Hkv = Hq;
    G = b.getIndexAttr(1);
  }
  auto staticOf = [](ArrayRef<OpFoldResult> s) {
    SmallVector<int64_t> out;
    for (OpFoldResult o : s)
      out.push_back(getConstantIntValue(o).value_or(ShapedType::kDynamic));
    return out;
  };
  SmallVector<ReassociationIndices> heads{{0}, {1, 2}, {3}, {4}};
  SmallVector<OpFoldResult> q5{B, Hkv, G, L, D};
  Value q = tensor::ExpandShapeOp::create(
      b, RankedTensorType::get(staticOf(q5), elem), a.query, heads, q5);

  auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  auto map = [&](unsigned n, ArrayRef<unsigned> dims) {
    SmallVector<AffineExpr> r;
    for (unsigned i : dims)
      r.push_back(d(i));
    return AffineMap::get(n, 0, r, ctx);
  };

  // S[b,h,g,l,n] = sum_d q[b,h,g,l,d] k[b,h,n,d]
  Value s = filled(b, {B, Hkv, G, L, N}, cF(b, f32, 0.0));
  s = generic(b, {q, key}, {s},
              {map(6, {0, 1, 2, 3, 5}), map(6, {0, 1, 4, 5}),
               map(6, {0, 1, 2, 3, 4})},
              "pppppr", [&](ImplicitLocOpBuilder &nb, ValueRange x) {
                Value p = arith::MulFOp::create(nb, widen(nb, x[0], f32),
                                                widen(nb, x[1], f32));
                return SmallVector<Value>{arith::AddFOp::create(nb, x[2], p)};
              })[0];

  // Scale, log-weight bias and masks.
  AffineMap id5 = AffineMap::getMultiDimIdentityMap(5, ctx);
  SmallVector<Value> ins{s};
  SmallVector<AffineMap> maps{id5};
  if (logWeights) {
    ins.push_back(logWeights);
    maps.push_back(map(5, {0, 1, 4}));
  }
  if (a.kvLen) {
    // [B] or, for ragged heads, [B, Hkv].
    ins.push_back(a.kvLen);
    maps.push_back(cast<ShapedType>(a.kvLen.getType()).getRank() == 2
                       ? map(5, {0, 1})
                       : map(5, {0}));
  }
  maps.push_back(id5);
  Value nVal = getValueOrCreateConstantIndexOp(b, b.getLoc(), N);
  Value lVal = getValueOrCreateConstantIndexOp(b, b.getLoc(), L);
  Value negInf = cF(b, f32, -INFINITY);
  Value scaleV = cF(b, f32, a.scale);
  s = generic(b, ins, {s}, maps, "ppppp",
              [&](ImplicitLocOpBuilder &nb, ValueRange x) {
                Value v = arith::MulFOp::create(nb, x[0], scaleV);
                unsigned next = 1;
                if (logWeights)
                  v = arith::AddFOp::create(nb, v, x[next++]);
                if (!a.kvLen && !a.causal)
                  return SmallVector<Value>{v};
                Value len = nVal;
                if (a.kvLen) {
                  Value raw = x[next++];
                  raw = raw.getType().isIndex()
                            ? raw
                            : arith::IndexCastOp::create(nb, nb.getIndexType(),
                                                         raw)
                                  .getResult();
                  // Clamped to [0, N] (the op's contract) before the causal
                  // position is taken from it.
                  len = arith::MinSIOp::create(
                      nb, arith::MaxSIOp::create(nb, raw, cIdx(nb, 0)), nVal);
                }
                Value limit = len;
                if (a.causal) {
                  // query l sits at len - L + l and sees positions <= it.
                  Value pos = arith::AddIOp::create(
                      nb, arith::SubIOp::create(nb, len, lVal),
                      linalgIndex(nb, 3));
                  limit = arith::MinSIOp::create(
                      nb, len, arith::AddIOp::create(nb, pos, cIdx(nb, 1)));
                }
                Value visible = arith::CmpIOp::create(
                    nb, arith::CmpIPredicate::slt, linalgIndex(nb, 4), limit);
                return SmallVector<Value>{
                    arith::SelectOp::create(nb, visible, v, negInf)};
              })[0];

  AffineMap row5 = map(5, {0, 1, 2, 3});
  Value mx = filled(b, {B, Hkv, G, L}, negInf);
  mx = generic(b, {s}, {mx}, {id5, row5}, "ppppr",
               [&](ImplicitLocOpBuilder &nb, ValueRange x) {
                 return SmallVector<Value>{
                     arith::MaximumFOp::create(nb, x[0], x[1])};
               })[0];
  Value zero = cF(b, f32, 0.0);
  s = generic(b, {s, mx}, {s}, {id5, row5, id5}, "ppppp",
              [&](ImplicitLocOpBuilder &nb, ValueRange x) {
                // A row that sees no key has max -inf: its weights are 0.
                Value none = arith::CmpFOp::create(
                    nb, arith::CmpFPredicate::OEQ, x[1], negInf);
                Value e = math::ExpOp::create(
                    nb, arith::SubFOp::create(nb, x[0], x[1]));
                return SmallVector<Value>{
                    arith::SelectOp::create(nb, none, zero, e)};
              })[0];
  Value sum = filled(b, {B, Hkv, G, L}, zero);
  sum = generic(b, {s}, {sum}, {id5, row5}, "ppppr",
                [&](ImplicitLocOpBuilder &nb, ValueRange x) {
                  return SmallVector<Value>{
                      arith::AddFOp::create(nb, x[0], x[1])};
                })[0];
  // O[b,h,g,l,e] = sum_n P[b,h,g,l,n] v[b,h,n,e]
  Value o = filled(b, {B, Hkv, G, L, Dv}, zero);
  o = generic(
      b, {s, value}, {o},
      {map(6, {0, 1, 2, 3, 5}), map(6, {0, 1, 5, 4}), map(6, {0, 1, 2, 3, 4})},
      "pppppr", [&](ImplicitLocOpBuilder &nb, ValueRange x) {
        Value p = arith::MulFOp::create(nb, x[0], widen(nb, x[1], f32));
        return SmallVector<Value>{arith::AddFOp::create(nb, x[2], p)};
      })[0];
  Value out = tensor::EmptyOp::create(b, SmallVector<OpFoldResult>{B, Hkv, G, L, Dv},
                                      elem);
  out = generic(b, {o, sum}, {out}, {id5, row5, id5}, "ppppp",
                [&](ImplicitLocOpBuilder &nb, ValueRange x) {
                  Value empty = arith::CmpFOp::create(
                      nb, arith::CmpFPredicate::OEQ, x[1], zero);
                  Value safe = arith::SelectOp::create(nb, empty,
                                                       cF(nb, f32, 1.0), x[1]);
                  Value r = arith::DivFOp::create(nb, x[0], safe);
                  if (elem != f32)
                    r = arith::TruncFOp::create(nb, elem, r);
                  return SmallVector<Value>{r};
                })[0];
  Value collapsed = tensor::CollapseShapeOp::create(b, out, heads);
  if (collapsed.getType() != a.resultType)
    collapsed = tensor::CastOp::create(b, a.resultType, collapsed);
  return collapsed;
}

} // namespace

FailureOr<SmallVector<Value>> AttentionOp::decomposeOperation(OpBuilder &b) {
  ImplicitLocOpBuilder ib(getLoc(), b);
  AttentionParts parts{getQuery(), getKey(),   getValue(),
                       Value(),    getKvLen(), getEffectiveScale(),
                       getCausal(),
                       cast<RankedTensorType>(getResult().getType())};
  return SmallVector<Value>{lowerAttention(ib, parts)};
}

FailureOr<SmallVector<Value>>
WeightedAttentionOp::decomposeOperation(OpBuilder &b) {
  ImplicitLocOpBuilder ib(getLoc(), b);
  AttentionParts parts{getQuery(), getKey(),   getValue(),
                       getLogWeights(), getKvLen(), getEffectiveScale(),
                       getCausal(),
                       cast<RankedTensorType>(getResult().getType())};
  return SmallVector<Value>{lowerAttention(ib, parts)};
}

/// A gather: one linalg.generic over the result whose body reads the
/// block table and the pool (tensor.extract).
FailureOr<SmallVector<Value>> GatherPagesOp::decomposeOperation(OpBuilder &b) {
  ImplicitLocOpBuilder ib(getLoc(), b);
  auto resultType = cast<RankedTensorType>(getResult().getType());
  Value pool = getPool(), table = getBlockTable();
  const int64_t pageSize = getPageSize();
  OpFoldResult n;
  if (resultType.isDynamicDim(2)) {
    Value maxPages = tensor::DimOp::create(ib, table, 1);
    n = arith::MulIOp::create(ib, maxPages, cIdx(ib, pageSize)).getResult();
  } else {
    n = ib.getIndexAttr(resultType.getDimSize(2));
  }
  SmallVector<OpFoldResult> shape{typedSize(ib, table, 0),
                                  typedSize(ib, pool, getHeadDim()), n,
                                  typedSize(ib, pool, 3)};
  Value empty = tensor::EmptyOp::create(ib, shape, resultType.getElementType());
  const bool headsMajor = getHeadsMajor();
  Value gathered = generic(
      ib, ValueRange{}, ValueRange{empty},
      {AffineMap::getMultiDimIdentityMap(4, ib.getContext())}, "pppp",
      [&](ImplicitLocOpBuilder &bb, ValueRange) -> SmallVector<Value> {
        Value seq = linalgIndex(bb, 0), head = linalgIndex(bb, 1),
              token = linalgIndex(bb, 2), x = linalgIndex(bb, 3);
        Value size = cIdx(bb, pageSize);
        Value logical = arith::DivUIOp::create(bb, token, size);
        Value slot = arith::RemUIOp::create(bb, token, size);
        Value page = arith::IndexCastOp::create(
            bb, bb.getIndexType(),
            tensor::ExtractOp::create(bb, table, ValueRange{seq, logical}));
        SmallVector<Value> at = headsMajor
                                    ? SmallVector<Value>{page, head, slot, x}
                                    : SmallVector<Value>{page, slot, head, x};
        return {tensor::ExtractOp::create(bb, pool, at)};
      })[0];
  if (gathered.getType() != resultType)
    gathered = tensor::CastOp::create(ib, resultType, gathered);
  return SmallVector<Value>{gathered};
}
