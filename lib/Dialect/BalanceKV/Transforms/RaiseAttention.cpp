//===- RaiseAttention.cpp - linalg attention => balancekv.attention ------===//
//
// contract(softmax(scale * contract(Q, Kᵀ) [+ causal mask]), V)
//   => balancekv.attention(Q, K, V) {scale, causal}
//
// Matched from the P·V contraction backwards. Every piece must match
// exactly; otherwise the IR is left untouched.
//
//===----------------------------------------------------------------------===//

#include "balancekv/Dialect/BalanceKV/Transforms/Passes.h"
#include "balancekv/Support/OptionDefaults.h"
#include "balancekv/Dialect/BalanceKV/Transforms/Transforms.h"
#include "balancekv/Dialect/IREECompat/IR/Dialect.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/IR/LinalgInterfaces.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <cmath>

namespace balancekv {
#define GEN_PASS_DEF_BALANCEKVRAISEATTENTIONPASS
#include "balancekv/Dialect/BalanceKV/Transforms/Passes.h.inc"
} // namespace balancekv

using namespace mlir;
using namespace balancekv;

namespace {

//===----------------------------------------------------------------------===//
// Small matchers
//===----------------------------------------------------------------------===//

/// A float scalar constant, or a splat float tensor constant.
std::optional<double> matchFloatConstant(Value v) {
  APFloat f(0.0);
  if (matchPattern(v, m_ConstantFloat(&f)))
    return f.convertToDouble();
  DenseElementsAttr attr;
  if (matchPattern(v, m_Constant(&attr)) && attr.isSplat() &&
      isa<FloatType>(attr.getElementType()))
    return attr.getSplatValue<APFloat>().convertToDouble();
  return std::nullopt;
}

/// A usable scale factor: finite and positive.
std::optional<double> positiveFinite(std::optional<double> c, bool invert) {
  if (!c || !std::isfinite(*c) || *c <= 0.0)
    return std::nullopt;
  return invert ? 1.0 / *c : *c;
}

bool isZeroInit(Value init) {
  if (auto fill = init.getDefiningOp<linalg::FillOp>())
    return matchPattern(fill.getInputs()[0], m_AnyZeroFloat());
  // A generalised fill: a generic without inputs yielding zero.
  if (auto g = init.getDefiningOp<linalg::GenericOp>();
      g && g.getNumDpsInputs() == 0 &&
      g.getRegion().front().getOperations().size() == 1)
    return matchPattern(
        cast<linalg::YieldOp>(g.getRegion().front().getTerminator())
            .getOperand(0),
        m_AnyZeroFloat());
  return matchPattern(init, m_AnyZeroFloat());
}

bool allParallel(linalg::LinalgOp op) {
  return op.getNumLoops() == op.getNumParallelLoops();
}

/// The single non-yield op of a generic's body, if its result is yielded.
Operation *singleBodyOp(linalg::GenericOp g) {
  Block &body = g.getRegion().front();
  if (body.getOperations().size() != 2)
    return nullptr;
  Operation *op = &body.front();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  if (yield.getNumOperands() != 1 || yield.getOperand(0) != op->getResult(0))
    return nullptr;
  return op;
}

/// Block argument number of `v` in `g`'s body, or -1.
int argNumber(linalg::GenericOp g, Value v) {
  auto arg = dyn_cast<BlockArgument>(v);
  if (!arg || arg.getOwner() != &g.getRegion().front())
    return -1;
  return int(arg.getArgNumber());
}

/// x * c or x / c elementwise (generic with a captured or splat constant, or
/// linalg.mul / linalg.div). Returns the multiplier and sets `input`.
std::optional<double> matchScale(Value v, Value &input) {
  Operation *def = v.getDefiningOp();
  if (!def)
    return std::nullopt;
  auto lop = dyn_cast<linalg::LinalgOp>(def);
  if (!lop || !allParallel(lop) || lop.getNumDpsInits() != 1)
    return std::nullopt;
  if (isa<linalg::MulOp, linalg::DivOp>(def)) {
    auto c = positiveFinite(matchFloatConstant(lop.getDpsInputs()[1]),
                            isa<linalg::DivOp>(def));
    if (c)
      input = lop.getDpsInputs()[0];
    return c;
  }
  auto g = dyn_cast<linalg::GenericOp>(def);
  if (!g || !g.getIndexingMapsArray()[0].isIdentity())
    return std::nullopt;
  Operation *body = singleBodyOp(g);
  if (!body || !isa<arith::MulFOp, arith::DivFOp>(body))
    return std::nullopt;
  if (argNumber(g, body->getOperand(0)) != 0)
    return std::nullopt;
  Value rhs = body->getOperand(1);
  std::optional<double> c;
  if (int a = argNumber(g, rhs); a > 0 && a < int(g.getNumDpsInputs()))
    c = matchFloatConstant(g.getDpsInputs()[a]);
  else if (a < 0)
    c = matchFloatConstant(rhs);
  if (g.getNumDpsInputs() > 2)
    return std::nullopt;
  c = positiveFinite(c, isa<arith::DivFOp>(body));
  if (c)
    input = g.getDpsInputs()[0];
  return c;
}

/// Reduction over the innermost dim of a rank-r input into a rank-(r-1)
/// result, with body `OpTy(in, acc)`.
template <typename... OpTys>
Value matchLastDimReduction(Value v) {
  auto g = v.getDefiningOp<linalg::GenericOp>();
  if (!g || g.getNumDpsInputs() != 1 || g.getNumDpsInits() != 1 ||
      g.getNumReductionLoops() != 1)
    return {};
  unsigned last = g.getNumLoops() - 1;
  if (g.getIteratorTypesArray()[last] != utils::IteratorType::reduction ||
      !g.getIndexingMapsArray()[0].isIdentity())
    return {};
  Operation *body = singleBodyOp(g);
  if (!body || !isa<OpTys...>(body))
    return {};
  return g.getDpsInputs()[0];
}

/// `x op broadcast(r)` where r is indexed without the innermost dim.
template <typename OpTy>
bool matchWithRowBroadcast(linalg::GenericOp g, Value &x, Value &row) {
  if (g.getNumDpsInputs() != 2 || !allParallel(g))
    return false;
  auto maps = g.getIndexingMapsArray();
  if (!maps[0].isIdentity())
    return false;
  // The row: the leading dims, optionally with a keepdim unit dim (index 0).
  AffineMap rowMap = maps[1];
  unsigned rank = maps[0].getNumResults();
  if (rowMap.getNumResults() == rank) {
    if (rowMap.getResult(rank - 1) !=
        getAffineConstantExpr(0, g.getContext()))
      return false;
    rowMap = rowMap.dropResult(rank - 1);
  }
  if (rowMap != AffineMap::getMultiDimIdentityMap(rank, g.getContext())
                    .dropResult(rank - 1))
    return false;
  Operation *body = singleBodyOp(g);
  if (!body || !isa<OpTy>(body) || argNumber(g, body->getOperand(0)) != 0 ||
      argNumber(g, body->getOperand(1)) != 1)
    return false;
  x = g.getDpsInputs()[0];
  row = g.getDpsInputs()[1];
  return true;
}

/// softmax over the innermost dim: `linalg.softmax` or its decomposition
/// max -> exp(x - max) -> sum -> div. Returns the logits.
Value matchSoftmax(Value v) {
  if (auto sm = v.getDefiningOp<linalg::SoftmaxOp>()) {
    auto t = cast<ShapedType>(sm.getInput().getType());
    return sm.getDimension() == uint64_t(t.getRank() - 1) ? sm.getInput()
                                                          : Value();
  }
  auto div = v.getDefiningOp<linalg::GenericOp>();
  Value e, sum;
  if (!div || !matchWithRowBroadcast<arith::DivFOp>(div, e, sum))
    return {};
  if (matchLastDimReduction<arith::AddFOp>(sum) != e)
    return {};
  // exp(x - max) fused in one generic, or as two.
  Value x, max;
  auto expOp = e.getDefiningOp<linalg::GenericOp>();
  if (!expOp)
    return {};
  Block &body = expOp.getRegion().front();
  if (body.getOperations().size() == 3) {
    auto sub = dyn_cast<arith::SubFOp>(&body.front());
    auto ex = dyn_cast<math::ExpOp>(sub ? sub->getNextNode() : nullptr);
    if (!sub || !ex || ex.getOperand() != sub.getResult() ||
        body.getTerminator()->getOperand(0) != ex.getResult() ||
        expOp.getNumDpsInputs() != 2 || !allParallel(expOp) ||
        argNumber(expOp, sub.getLhs()) != 0 ||
        argNumber(expOp, sub.getRhs()) != 1 ||
        !expOp.getIndexingMapsArray()[0].isIdentity())
      return {};
    x = expOp.getDpsInputs()[0];
    max = expOp.getDpsInputs()[1];
  } else {
    Operation *ex = singleBodyOp(expOp);
    if (!ex || !isa<math::ExpOp>(ex) || expOp.getNumDpsInputs() != 1 ||
        argNumber(expOp, ex->getOperand(0)) != 0)
      return {};
    auto subOp = expOp.getDpsInputs()[0].getDefiningOp<linalg::GenericOp>();
    if (!subOp || !matchWithRowBroadcast<arith::SubFOp>(subOp, x, max))
      return {};
  }
  if (matchLastDimReduction<arith::MaxNumFOp, arith::MaximumFOp>(max) != x)
    return {};
  return x;
}

//===----------------------------------------------------------------------===//
// Masks built from indices
//===----------------------------------------------------------------------===//

/// Front ends build causal masks from iota compares (jnp.where, torch.where
/// on aranges): small tensors computed from constants and linalg.index
/// alone. Evaluates such a tensor (row-major; integers and i1 as doubles,
/// exact below 2^53), or nullopt when anything else feeds it or it is large.
class MaskEvaluator {
public:
  std::optional<std::vector<double>> evaluate(Value v) {
    auto t = dyn_cast<RankedTensorType>(v.getType());
    if (!t || !t.hasStaticShape() || t.getNumElements() > kMaxElements ||
        ++steps > kMaxSteps)
      return std::nullopt;
    if (auto it = cache.find(v); it != cache.end())
      return it->second;
    std::optional<std::vector<double>> r = compute(v, t);
    if (r)
      cache[v] = *r;
    return r;
  }

private:
  static constexpr int64_t kMaxElements = int64_t(1) << 20;
  static constexpr int64_t kMaxSteps = 64;

  static std::optional<double> scalarConstant(Attribute a) {
    if (auto f = dyn_cast<FloatAttr>(a))
      return f.getValueAsDouble();
    if (auto i = dyn_cast<IntegerAttr>(a))
      return i.getType().isInteger(1) ? double(i.getValue().getBoolValue())
                                      : double(i.getValue().getSExtValue());
    return std::nullopt;
  }

  std::optional<std::vector<double>> compute(Value v, RankedTensorType t) {
    const int64_t n = t.getNumElements();
    Operation *def = v.getDefiningOp();
    if (!def)
      return std::nullopt;
    DenseElementsAttr dense;
    if (matchPattern(v, m_Constant(&dense))) {
      std::vector<double> out;
      out.reserve(n);
      for (Attribute a : dense.getValues<Attribute>()) {
        auto x = scalarConstant(a);
        if (!x)
          return std::nullopt;
        out.push_back(*x);
      }
      return out;
    }
    if (isa<tensor::ExpandShapeOp, tensor::CollapseShapeOp>(def))
      return evaluate(def->getOperand(0)); // row-major order is kept
    if (auto fill = dyn_cast<linalg::FillOp>(def)) {
      Attribute a;
      if (!matchPattern(fill.getInputs()[0], m_Constant(&a)))
        return std::nullopt;
      auto x = scalarConstant(a);
      return x ? std::optional(std::vector<double>(n, *x)) : std::nullopt;
    }
    auto g = dyn_cast<linalg::GenericOp>(def);
    if (!g || g->getNumResults() != 1 || !allParallel(g) ||
        !g.getIndexingMapsArray().back().isIdentity())
      return std::nullopt;
    Block &body = g.getRegion().front();
    if (!body.getArgument(g.getNumDpsInputs()).use_empty())
      return std::nullopt; // reads its init
    SmallVector<std::vector<double>> ins;
    for (Value in : g.getDpsInputs()) {
      auto x = evaluate(in);
      if (!x)
        return std::nullopt;
      ins.push_back(std::move(*x));
    }
    auto maps = g.getIndexingMapsArray();
    ArrayRef<int64_t> shape = t.getShape();
    std::vector<double> out(n);
    SmallVector<int64_t> idx(shape.size());
    for (int64_t e = 0; e < n; ++e) {
      for (int64_t d = int64_t(shape.size()) - 1, rest = e; d >= 0; --d) {
        idx[d] = rest % shape[d];
        rest /= shape[d];
      }
      DenseMap<Value, double> env;
      for (auto [i, in] : llvm::enumerate(g.getDpsInputs())) {
        auto inType = cast<RankedTensorType>(in.getType());
        int64_t flat = 0;
        for (auto [r, expr] : llvm::enumerate(maps[i].getResults())) {
          int64_t at;
          if (auto dim = dyn_cast<AffineDimExpr>(expr))
            at = idx[dim.getPosition()];
          else if (auto c = dyn_cast<AffineConstantExpr>(expr))
            at = c.getValue();
          else
            return std::nullopt;
          flat = flat * inType.getDimSize(r) + at;
        }
        env[body.getArgument(i)] = ins[i][flat];
      }
      for (Operation &op : body.without_terminator()) {
        auto x = step(op, env, idx);
        if (!x)
          return std::nullopt;
        env[op.getResult(0)] = *x;
      }
      Value y = body.getTerminator()->getOperand(0);
      auto it = env.find(y);
      if (it != env.end()) {
        out[e] = it->second;
        continue;
      }
      Attribute a;
      if (!matchPattern(y, m_Constant(&a)) || !scalarConstant(a))
        return std::nullopt;
      out[e] = *scalarConstant(a);
    }
    return out;
  }

  /// One op of a generic's body on scalars.
  static std::optional<double> step(Operation &op, DenseMap<Value, double> &env,
                                    ArrayRef<int64_t> idx) {
    if (op.getNumResults() != 1)
      return std::nullopt;
    auto arg = [&](unsigned i) -> std::optional<double> {
      Value v = op.getOperand(i);
      if (auto it = env.find(v); it != env.end())
        return it->second;
      Attribute a;
      if (matchPattern(v, m_Constant(&a)))
        return scalarConstant(a);
      return std::nullopt;
    };
    if (auto index = dyn_cast<linalg::IndexOp>(op))
      return double(idx[index.getDim()]);
    if (auto c = dyn_cast<arith::ConstantOp>(op))
      return scalarConstant(c.getValue());
    SmallVector<double> a;
    for (unsigned i = 0; i < op.getNumOperands(); ++i) {
      auto x = arg(i);
      if (!x)
        return std::nullopt;
      a.push_back(*x);
    }
    if (isa<arith::IndexCastOp, arith::IndexCastUIOp, arith::SIToFPOp,
            arith::UIToFPOp, arith::ExtSIOp, arith::ExtUIOp, arith::ExtFOp,
            arith::TruncFOp>(op))
      return a[0];
    if (isa<arith::AddIOp, arith::AddFOp>(op))
      return a[0] + a[1];
    if (isa<arith::SubIOp, arith::SubFOp>(op))
      return a[0] - a[1];
    if (isa<arith::MulIOp, arith::MulFOp>(op))
      return a[0] * a[1];
    if (isa<arith::NegFOp>(op))
      return -a[0];
    if (isa<arith::AndIOp>(op))
      return double(a[0] != 0 && a[1] != 0);
    if (isa<arith::OrIOp>(op))
      return double(a[0] != 0 || a[1] != 0);
    if (isa<arith::XOrIOp>(op))
      return double((a[0] != 0) != (a[1] != 0));
    if (isa<arith::SelectOp>(op))
      return a[0] != 0 ? a[1] : a[2];
    if (auto cmp = dyn_cast<arith::CmpIOp>(op)) {
      using P = arith::CmpIPredicate;
      switch (cmp.getPredicate()) {
      case P::eq: return double(a[0] == a[1]);
      case P::ne: return double(a[0] != a[1]);
      case P::slt: case P::ult: return double(a[0] < a[1]);
      case P::sle: case P::ule: return double(a[0] <= a[1]);
      case P::sgt: case P::ugt: return double(a[0] > a[1]);
      case P::sge: case P::uge: return double(a[0] >= a[1]);
      }
    }
    if (auto cmp = dyn_cast<arith::CmpFOp>(op)) {
      using P = arith::CmpFPredicate;
      switch (cmp.getPredicate()) {
      case P::OEQ: case P::UEQ: return double(a[0] == a[1]);
      case P::ONE: case P::UNE: return double(a[0] != a[1]);
      case P::OLT: case P::ULT: return double(a[0] < a[1]);
      case P::OLE: case P::ULE: return double(a[0] <= a[1]);
      case P::OGT: case P::UGT: return double(a[0] > a[1]);
      case P::OGE: case P::UGE: return double(a[0] >= a[1]);
      default: return std::nullopt;
      }
    }
    return std::nullopt;
  }

  DenseMap<Value, std::vector<double>> cache;
  int64_t steps = 0;
};

/// Whether `mask` (read through `map` by a generic over [..., L, N] loops)
/// is causal: `keep(x)` for key j <= N - L + i, not elsewhere, the same for
/// every leading index. Evaluates it (constants and iota compares).
bool isCausalMask(Value mask, AffineMap map,
                  llvm::function_ref<std::optional<bool>(double)> keep) {
  unsigned r = map.getNumResults(), loops = map.getNumDims();
  if (r < 2 || !map.isProjectedPermutation() ||
      map.getDimPosition(r - 2) != loops - 2 ||
      map.getDimPosition(r - 1) != loops - 1)
    return false;
  auto type = cast<RankedTensorType>(mask.getType());
  if (!type.hasStaticShape())
    return false;
  int64_t l = type.getDimSize(r - 2), n = type.getDimSize(r - 1);
  MaskEvaluator evaluator;
  std::optional<std::vector<double>> values = evaluator.evaluate(mask);
  if (!values)
    return false;
  for (int64_t e = 0, end = int64_t(values->size()); e < end; ++e) {
    int64_t row = (e / n) % l, col = e % n;
    std::optional<bool> kept = keep((*values)[e]);
    if (!kept || *kept != (col <= n - l + row))
      return false;
  }
  return true;
}

/// An additive mask entry: 0 keeps the key, a very negative one masks it,
/// anything else is no mask.
std::optional<bool> additiveMaskKeeps(double x) {
  if (x == 0.0)
    return true;
  if (x <= -1e4)
    return false;
  return std::nullopt;
}

/// select(causal(i, j), x, very negative): the where() spelling. Sets
/// `input`.
bool matchCausalSelect(Value v, Value &input) {
  auto g = v.getDefiningOp<linalg::GenericOp>();
  if (!g || g.getNumDpsInputs() != 2 || !allParallel(g))
    return false;
  Operation *body = singleBodyOp(g);
  auto sel = dyn_cast_or_null<arith::SelectOp>(body);
  if (!sel)
    return false;
  int cond = argNumber(g, sel.getCondition()),
      x = argNumber(g, sel.getTrueValue());
  auto masked = matchFloatConstant(sel.getFalseValue());
  if (cond < 0 || x < 0 || cond == x || !masked || *masked > -1e4 ||
      !g.getIndexingMapsArray()[x].isIdentity())
    return false;
  if (!isCausalMask(g.getDpsInputs()[cond], g.getIndexingMapsArray()[cond],
                    [](double c) { return std::optional<bool>(c != 0); }))
    return false;
  input = g.getDpsInputs()[x];
  return true;
}

/// An additive constant mask [.., L, N] that is 0 where key j <= N - L + i
/// and very negative elsewhere: the causal mask. Sets `input`.
bool matchCausalMask(Value v, Value &input) {
  auto lop = v.getDefiningOp<linalg::LinalgOp>();
  if (!lop || !allParallel(lop) || lop.getNumDpsInputs() != 2 ||
      lop.getNumDpsInits() != 1)
    return false;
  if (auto g = dyn_cast<linalg::GenericOp>(lop.getOperation())) {
    Operation *body = singleBodyOp(g);
    if (!body || !isa<arith::AddFOp>(body) ||
        argNumber(g, body->getOperand(0)) + argNumber(g, body->getOperand(1)) !=
            1)
      return false;
  } else if (!isa<linalg::AddOp>(lop.getOperation())) {
    return false;
  }
  auto maps = lop.getIndexingMapsArray();
  for (int which = 0; which < 2; ++which) {
    Value mask = lop.getDpsInputs()[1 - which];
    DenseElementsAttr attr;
    if (!maps[which].isIdentity())
      continue;
    if (!matchPattern(mask, m_Constant(&attr))) {
      // Built from iota compares: evaluated.
      if (!isCausalMask(mask, maps[1 - which], additiveMaskKeeps))
        continue;
      input = lop.getDpsInputs()[which];
      return true;
    }
    // The mask's last two indices must be the result's last two.
    AffineMap mm = maps[1 - which];
    unsigned r = mm.getNumResults(), loops = mm.getNumDims();
    if (r < 2 || mm.getDimPosition(r - 2) != loops - 2 ||
        mm.getDimPosition(r - 1) != loops - 1)
      continue;
    auto shape = cast<ShapedType>(attr.getType()).getShape();
    int64_t l = shape[r - 2], n = shape[r - 1];
    auto values = attr.getValues<APFloat>();
    bool causal = true;
    if (attr.isSplat()) {
      // One value everywhere (any size, read in O(1)): causal only where no
      // key is masked, i.e. every row sees all n keys (l <= 1), and then the
      // value must be 0.
      causal = attr.empty() || (l <= 1 && values[0].convertToDouble() == 0.0);
    } else {
      // Walks the stored elements, which the constant already holds.
      for (int64_t i = 0, e = attr.getNumElements(); i < e && causal; ++i) {
        int64_t row = (i / n) % l, col = i % n;
        double x = values[i].convertToDouble();
        causal = col <= n - l + row ? x == 0.0 : x <= -1e4;
      }
    }
    if (!causal)
      continue;
    input = lop.getDpsInputs()[which];
    return true;
  }
  return false;
}

//===----------------------------------------------------------------------===//
// Batched contractions
//===----------------------------------------------------------------------===//

/// A contraction with 0 to 2 batch dims and single m, n and k dims whose
/// result is laid out [batch..., m, n] and accumulates into zeros.
struct BatchedContraction {
  linalg::LinalgOp op;
  linalg::ContractionDimensions dims;
};

std::optional<BatchedContraction> matchContraction(Value result) {
  auto op = result.getDefiningOp<linalg::LinalgOp>();
  if (!op || !linalg::isaContractionOpInterface(op) ||
      op.getNumDpsInits() != 1 || !isZeroInit(op.getDpsInits()[0]))
    return std::nullopt;
  auto dims = linalg::inferContractionDims(op);
  if (failed(dims) || dims->m.size() != 1 || dims->n.size() != 1 ||
      dims->k.size() != 1 || dims->batch.size() > 2)
    return std::nullopt;
  SmallVector<unsigned> want(dims->batch.begin(), dims->batch.end());
  want.append({dims->m[0], dims->n[0]});
  AffineMap out = op.getIndexingMapsArray()[2];
  for (unsigned i = 0; i < want.size(); ++i)
    if (!out.isProjectedPermutation() || out.getNumResults() != want.size() ||
        out.getDimPosition(i) != want[i])
      return std::nullopt;
  return BatchedContraction{op, *dims};
}

/// The permutation that lays operand `idx` of `c` out as the loop dims
/// `want`, in that order; nullopt when the operand cannot be.
std::optional<SmallVector<int64_t>>
orderPermutation(BatchedContraction c, unsigned idx, ArrayRef<unsigned> want) {
  AffineMap map = c.op.getIndexingMapsArray()[idx];
  if (!map.isProjectedPermutation() || map.getNumResults() != want.size())
    return std::nullopt;
  SmallVector<int64_t> perm;
  for (unsigned d : want) {
    std::optional<unsigned> pos =
        map.getResultPosition(getAffineDimExpr(d, c.op.getContext()));
    if (!pos)
      return std::nullopt;
    perm.push_back(*pos);
  }
  return perm;
}

/// Operand `idx` of `c` permuted by `perm`: the operand itself, the source
/// of a transpose that `perm` undoes, or a new linalg.transpose.
Value inOrder(PatternRewriter &rewriter, BatchedContraction c, unsigned idx,
              ArrayRef<int64_t> perm) {
  Value operand = c.op->getOperand(idx);
  if (llvm::equal(perm, llvm::seq<int64_t>(0, perm.size())))
    return operand;
  if (auto t = operand.getDefiningOp<linalg::TransposeOp>()) {
    // operand[i] = src[tperm[i]]; we need operand[perm[j]] = src[tperm[perm[j]]].
    ArrayRef<int64_t> tperm = t.getPermutation();
    bool identity = true;
    for (unsigned j = 0; j < perm.size(); ++j)
      identity &= tperm[perm[j]] == int64_t(j);
    if (identity)
      return t.getInput();
  }
  auto srcType = cast<RankedTensorType>(operand.getType());
  SmallVector<int64_t> shape;
  SmallVector<OpFoldResult> sizes;
  for (int64_t p : perm)
    sizes.push_back(tensor::getMixedSize(rewriter, c.op.getLoc(), operand, p));
  Value init = tensor::EmptyOp::create(rewriter, c.op.getLoc(), sizes,
                                       srcType.getElementType());
  return linalg::TransposeOp::create(rewriter, c.op.getLoc(), operand, init,
                                     perm)
      ->getResult(0);
}

/// GQA written as repeat_kv: collapse([B, Hkv, G, N, D] -> [B, Hkv*G, N, D])
/// of a broadcast of [B, Hkv, N, D] along G. Returns the un-repeated source.
Value matchRepeatKV(Value v) {
  auto collapse = v.getDefiningOp<tensor::CollapseShapeOp>();
  if (!collapse || collapse.getSrcType().getRank() != 5)
    return {};
  auto re = collapse.getReassociationIndices();
  if (re.size() != 4 || re[1] != ReassociationIndices{1, 2})
    return {};
  Value src = collapse.getSrc();
  if (auto b = src.getDefiningOp<linalg::BroadcastOp>())
    return b.getDimensions() == ArrayRef<int64_t>{2} ? b.getInput() : Value();
  auto g = src.getDefiningOp<linalg::GenericOp>();
  if (!g || g.getNumDpsInputs() != 1 || !allParallel(g))
    return {};
  Operation *body = &g.getRegion().front().front();
  if (!isa<linalg::YieldOp>(body) || argNumber(g, body->getOperand(0)) != 0)
    return {};
  AffineMap m = g.getIndexingMapsArray()[0];
  MLIRContext *ctx = g.getContext();
  auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  Value in = g.getDpsInputs()[0];
  if (m == AffineMap::get(5, 0, {d(0), d(1), d(3), d(4)}, ctx))
    return in;
  // [B, Hkv, 1, N, D] from an expand_shape of the source.
  if (m == AffineMap::get(5, 0,
                          {d(0), d(1), getAffineConstantExpr(0, ctx), d(3),
                           d(4)},
                          ctx))
    if (auto ex = in.getDefiningOp<tensor::ExpandShapeOp>())
      if (ex.getSrcType().getRank() == 4 &&
          ex.getResultType().getDimSize(2) == 1)
        return ex.getSrc();
  return {};
}

//===----------------------------------------------------------------------===//
// The pattern
//===----------------------------------------------------------------------===//

/// x through an elementwise float conversion (extf / truncf generic), as
/// front ends write a softmax in f32 between f16 contractions.
Value throughFloatCast(Value v) {
  auto g = v.getDefiningOp<linalg::GenericOp>();
  if (!g || g.getNumDpsInputs() != 1 || !allParallel(g) ||
      !g.getIndexingMapsArray()[0].isIdentity())
    return v;
  Operation *body = singleBodyOp(g);
  if (!body || !isa<arith::ExtFOp, arith::TruncFOp>(body) ||
      argNumber(g, body->getOperand(0)) != 0)
    return v;
  return g.getDpsInputs()[0];
}

/// What the raise found, from the P·V contraction backwards.
struct AttentionMatch {
  BatchedContraction pv, qk;
  Value logits;
  double scale = 1.0;
  bool causal = false;
  SmallVector<int64_t> qPerm, kPerm, vPerm;
  Type elem;
};

/// Matches attention ending in `pvOp`; otherwise says which step failed.
FailureOr<AttentionMatch> matchAttention(linalg::LinalgOp pvOp,
                                         std::string &why) {
  auto fail = [&](StringRef step) -> FailureOr<AttentionMatch> {
    why = step.str();
    return failure();
  };
  if (pvOp->getNumResults() != 1)
    return fail("P·V: not a single-result op");
  auto pv = matchContraction(pvOp->getResult(0));
  if (!pv)
    return fail("P·V: not a batched contraction accumulating into zeros");
  AttentionMatch m;
  m.pv = *pv;
  const auto &dv = pv->dims;
  // P = softmax(logits), laid out [batch..., m, k].
  SmallVector<unsigned> pOrder(dv.batch.begin(), dv.batch.end());
  pOrder.append({dv.m[0], dv.k[0]});
  AffineMap pMap = pvOp.getIndexingMapsArray()[0];
  for (unsigned i = 0; i < pOrder.size(); ++i)
    if (pMap.getNumResults() != pOrder.size() ||
        !pMap.isProjectedPermutation() || pMap.getDimPosition(i) != pOrder[i])
      return fail("P·V: P is not laid out [batch..., L, N]");
  // A softmax in f32 over f16 logits (Hugging Face, JAX's .astype):
  // attention computes it in f32 anyway.
  Value logits = matchSoftmax(throughFloatCast(pvOp.getDpsInputs()[0]));
  if (!logits)
    return fail("softmax: P is not exp(x - max) / sum over the last dim "
                "(or linalg.softmax)");
  logits = throughFloatCast(logits);
  Value unmasked;
  if (matchCausalMask(logits, unmasked) ||
      matchCausalSelect(logits, unmasked)) {
    m.causal = true;
    logits = unmasked;
  }
  Value unscaled;
  if (auto s = matchScale(logits, unscaled)) {
    m.scale = *s;
    logits = throughFloatCast(unscaled);
  }
  auto qk = matchContraction(logits);
  if (!qk || qk->dims.batch.size() != dv.batch.size())
    return fail("Q·Kᵀ: the logits (after an optional scale and causal mask) "
                "are not a batched contraction like P·V's");
  m.qk = *qk;
  m.logits = logits;
  const auto &dq = qk->dims;
  // Q [batch, L, D], K [batch, N, D], V [batch, N, Dv].
  SmallVector<unsigned> qWant(dq.batch.begin(), dq.batch.end()),
      kWant(dq.batch.begin(), dq.batch.end()),
      vWant(dv.batch.begin(), dv.batch.end());
  qWant.append({dq.m[0], dq.k[0]});
  kWant.append({dq.n[0], dq.k[0]});
  vWant.append({dv.k[0], dv.n[0]});
  auto elemOf = [](Value v) { return getElementTypeOrSelf(v.getType()); };
  // The attention's element type is Q's; contractions may accumulate in
  // f32 over 16-bit inputs (mixed precision), as attention does.
  m.elem = elemOf(qk->op.getDpsInputs()[0]);
  if (!isa<Float16Type, BFloat16Type, Float32Type>(m.elem))
    return fail("element type: not f16, bf16 or f32");
  for (Value x : {qk->op.getDpsInputs()[1], pvOp.getDpsInputs()[1]})
    if (elemOf(x) != m.elem)
      return fail("element types: Q, K and V differ");
  for (Value x : {Value(pvOp->getResult(0)), logits})
    if (elemOf(x) != m.elem && !elemOf(x).isF32())
      return fail("element types: logits or output neither Q's nor f32");
  auto qPerm = orderPermutation(*qk, 0, qWant);
  auto kPerm = orderPermutation(*qk, 1, kWant);
  auto vPerm = orderPermutation(*pv, 1, vWant);
  if (!qPerm || !kPerm || !vPerm)
    return fail("layout: Q, K or V cannot be viewed as [batch..., seq, dim]");
  m.qPerm = *qPerm;
  m.kPerm = *kPerm;
  m.vPerm = *vPerm;
  return m;
}

/// balancekv.attention over [B, H, L, D] operands: its result is
/// [B, Hq, L, Dv] of `et`.
Value buildAttention(PatternRewriter &rewriter, Location loc, Value q, Value k,
                     Value v, Type et, double scale, bool causal) {
  auto qT = cast<RankedTensorType>(q.getType());
  auto vT = cast<RankedTensorType>(v.getType());
  auto type = RankedTensorType::get({qT.getDimSize(0), qT.getDimSize(1),
                                     qT.getDimSize(2), vT.getDimSize(3)},
                                    et);
  return AttentionOp::create(rewriter, loc, type, q, k, v, /*kv_len=*/Value(),
                             rewriter.getF32FloatAttr(float(scale)),
                             causal ? rewriter.getUnitAttr() : UnitAttr());
}

/// Replaces `op` (one result, [batch..., seq, dim] operands with one or two
/// batch dims) by balancekv.attention: two batch dims are [B, H]; one that
/// folds [B, H] from collapse_shapes, expanded back after `op`, attends over
/// [B, H] (and replaces that expand); any other single batch dim is the
/// heads of one sequence.
LogicalResult raiseSequenceAttention(PatternRewriter &rewriter, Operation *op,
                                     Value q, Value k, Value v, double scale,
                                     bool causal) {
  auto qT = cast<RankedTensorType>(q.getType());
  Type et = qT.getElementType();
  auto oT = cast<RankedTensorType>(op->getResult(0).getType());
  const unsigned nb = qT.getRank() - 2;
  Location loc = op->getLoc();
  Operation *replaced = op;
  RankedTensorType resultType = oT;
  if (nb == 1) {
    // [B*H, L, D] from [B, H, L, D]: attend over [B, H] if every operand
    // is such a collapse and the result is expanded back.
    auto unfold = [](Value x) -> Value {
      auto c = x.getDefiningOp<tensor::CollapseShapeOp>();
      if (!c || c.getSrcType().getRank() != 4 ||
          c.getReassociationIndices().front().size() != 2)
        return {};
      return c.getSrc();
    };
    Value q4 = unfold(q), k4 = unfold(k), v4 = unfold(v);
    auto expand = op->hasOneUse()
                      ? dyn_cast<tensor::ExpandShapeOp>(*op->user_begin())
                      : nullptr;
    if (q4 && k4 && v4 && expand && expand.getResultType().getRank() == 4 &&
        expand.getReassociationIndices().front().size() == 2 &&
        cast<RankedTensorType>(q4.getType()).getDimSize(0) ==
            expand.getResultType().getDimSize(0)) {
      q = q4;
      k = k4;
      v = v4;
      replaced = expand;
      resultType = expand.getResultType();
    } else {
      // One sequence's heads: [1, H, L, D].
      auto lead = [&](Value x) -> Value {
        auto t = cast<RankedTensorType>(x.getType());
        SmallVector<int64_t> shape{1};
        llvm::append_range(shape, t.getShape());
        return tensor::ExpandShapeOp::create(
            rewriter, loc, RankedTensorType::get(shape, et), x,
            SmallVector<ReassociationIndices>{{0, 1}, {2}, {3}});
      };
      q = lead(q);
      k = lead(k);
      v = lead(v);
    }
  }
  Value att = buildAttention(rewriter, loc, q, k, v, et, scale, causal);
  if (att.getType() != resultType) {
    if (resultType.getRank() == 3)
      att = tensor::CollapseShapeOp::create(
          rewriter, loc, att,
          SmallVector<ReassociationIndices>{{0, 1}, {2}, {3}});
    if (att.getType() != resultType)
      att = tensor::CastOp::create(rewriter, loc, resultType, att);
  }
  rewriter.replaceOp(replaced, att);
  if (replaced != op)
    rewriter.eraseOp(op);
  return success();
}

/// IREE's `iree_linalg_ext.attention` (its input IR; SDPA through
/// iree-turbine): a plain score region, a constant scale, no mask, and the
/// standard maps (batch..., m, n, k1, k2): Q (b, m, k1), K (b, k2, k1),
/// V (b, k2, n), scale (), out (b, m, n). One batch dim that folds [B, H]
/// from collapse_shapes (expanded back after) attends over [B, H]; otherwise
/// the batch is the heads of one sequence.
struct RaiseIREEAttention : OpRewritePattern<iree_linalg_ext::AttentionOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(iree_linalg_ext::AttentionOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getMask())
      return rewriter.notifyMatchFailure(op, "a mask (not provably causal)");
    if (op.getNumResults() != 1)
      return rewriter.notifyMatchFailure(op, "not one result");
    Block &body = op.getRegion().front();
    if (body.getTerminator()->getOperand(0) != body.getArgument(0))
      return rewriter.notifyMatchFailure(op, "the score region changes scores");
    auto scale = matchFloatConstant(op.getScale());
    if (!scale || !std::isfinite(*scale) || *scale <= 0)
      return rewriter.notifyMatchFailure(op, "scale not a positive constant");
    auto qT = dyn_cast<RankedTensorType>(op.getQuery().getType());
    auto kT = dyn_cast<RankedTensorType>(op.getKey().getType());
    auto vT = dyn_cast<RankedTensorType>(op.getValue().getType());
    auto oT = cast<RankedTensorType>(op.getResult(0).getType());
    if (!qT || !kT || !vT || qT.getRank() != kT.getRank() ||
        qT.getRank() != vT.getRank() || qT.getRank() < 3 || qT.getRank() > 4)
      return rewriter.notifyMatchFailure(op, "operands not [batch..., seq, dim]");
    const unsigned nb = qT.getRank() - 2, loops = nb + 4;
    MLIRContext *ctx = op.getContext();
    auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
    auto standard = [&](ArrayRef<unsigned> tail) {
      SmallVector<AffineExpr> r;
      for (unsigned i = 0; i < nb; ++i)
        r.push_back(d(i));
      for (unsigned t : tail)
        r.push_back(d(t));
      return AffineMap::get(loops, 0, r, ctx);
    };
    const unsigned m = nb, n = nb + 1, k1 = nb + 2, k2 = nb + 3;
    SmallVector<AffineMap> want{standard({m, k1}), standard({k2, k1}),
                                standard({k2, n}),
                                AffineMap::get(loops, 0, {}, ctx),
                                standard({m, n})};
    auto maps = op.getIndexingMaps().getAsValueRange<AffineMapAttr>();
    if (!llvm::equal(maps, want))
      return rewriter.notifyMatchFailure(op, "indexing maps not the standard");
    Type et = qT.getElementType();
    if (!isa<Float16Type, BFloat16Type, Float32Type>(et) ||
        kT.getElementType() != et || vT.getElementType() != et ||
        oT.getElementType() != et)
      return rewriter.notifyMatchFailure(op, "element types");
    return raiseSequenceAttention(rewriter, op, op.getQuery(), op.getKey(),
                                  op.getValue(), *scale, /*causal=*/false);
  }
};

/// torch-mlir's `tm_tensor.attention` (SDPA with a mask): scale 1/sqrt(D);
/// a mask is taken only when it is the KV-cache causal mask (SDPA's
/// `is_causal` with L < N is top-left aligned, which is not).
struct RaiseTMTensorAttention : OpRewritePattern<tm_tensor::AttentionOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(tm_tensor::AttentionOp op,
                                PatternRewriter &rewriter) const override {
    if (op->getNumResults() != 1)
      return rewriter.notifyMatchFailure(op, "not one result");
    Value q = op.getInputs()[0], k = op.getInputs()[1], v = op.getInputs()[2];
    auto qT = cast<RankedTensorType>(q.getType());
    auto kT = cast<RankedTensorType>(k.getType());
    auto vT = cast<RankedTensorType>(v.getType());
    Type et = qT.getElementType();
    if (qT.getRank() != kT.getRank() || qT.getRank() != vT.getRank() ||
        qT.getRank() < 3 || qT.getRank() > 4 || kT.getElementType() != et ||
        vT.getElementType() != et ||
        !isa<Float16Type, BFloat16Type, Float32Type>(et) ||
        qT.isDynamicDim(qT.getRank() - 1))
      return rewriter.notifyMatchFailure(op, "operands");
    bool causal = false;
    if (Value mask = op.getMask()) {
      unsigned r = qT.getRank();
      auto id = AffineMap::getMultiDimIdentityMap(r, op.getContext());
      causal = isCausalMask(mask, id, additiveMaskKeeps);
      if (!causal)
        return rewriter.notifyMatchFailure(
            op, "mask: not the KV-cache causal mask (key j <= N - L + i)");
    }
    const double scale = 1.0 / std::sqrt(double(qT.getDimSize(qT.getRank() - 1)));
    return raiseSequenceAttention(rewriter, op, q, k, v, scale, causal);
  }
};

struct RaiseAttention : OpInterfaceRewritePattern<linalg::LinalgOp> {
  using OpInterfaceRewritePattern::OpInterfaceRewritePattern;

  LogicalResult matchAndRewrite(linalg::LinalgOp pvOp,
                                PatternRewriter &rewriter) const override {
    std::string why;
    FailureOr<AttentionMatch> m = matchAttention(pvOp, why);
    if (failed(m))
      return rewriter.notifyMatchFailure(pvOp, why);
    BatchedContraction *pv = &m->pv, *qk = &m->qk;
    const auto &dq = qk->dims;
    double scale = m->scale;
    const bool causal = m->causal;
    Type et = m->elem;
    auto *qPerm = &m->qPerm, *kPerm = &m->kPerm, *vPerm = &m->vPerm;

    // Matched: from here on the IR changes.
    rewriter.setInsertionPoint(pvOp);
    Value q = inOrder(rewriter, *qk, 0, *qPerm);
    Value k = inOrder(rewriter, *qk, 1, *kPerm);
    Value v = inOrder(rewriter, *pv, 1, *vPerm);
    // A scale written on Q instead of on the logits.
    Value q0;
    if (auto s = matchScale(q, q0);
        s && getElementTypeOrSelf(q0.getType()) == et) {
      scale *= *s;
      q = q0;
    }

    Location loc = pvOp.getLoc();
    Value result = pvOp->getResult(0);
    auto rType = cast<RankedTensorType>(result.getType());
    // [L, D] (one head) and [B*H, L, D] (heads folded into the batch) become
    // [1, 1, L, D] and [B*H, 1, L, D].
    const bool folded = dq.batch.size() < 2;
    SmallVector<ReassociationIndices> reassoc =
        dq.batch.empty() ? SmallVector<ReassociationIndices>{{0, 1, 2}, {3}}
                         : SmallVector<ReassociationIndices>{{0, 1}, {2}, {3}};
    auto to4d = [&](Value x) -> Value {
      auto t = cast<RankedTensorType>(x.getType());
      SmallVector<OpFoldResult> out;
      if (dq.batch.empty())
        out = {rewriter.getIndexAttr(1), rewriter.getIndexAttr(1)};
      else
        out = {tensor::getMixedSize(rewriter, loc, x, 0),
               rewriter.getIndexAttr(1)};
      for (int64_t i = t.getRank() - 2; i < t.getRank(); ++i)
        out.push_back(tensor::getMixedSize(rewriter, loc, x, i));
      SmallVector<int64_t> shape;
      for (OpFoldResult o : out)
        shape.push_back(getConstantIntValue(o).value_or(ShapedType::kDynamic));
      return tensor::ExpandShapeOp::create(
          rewriter, loc, RankedTensorType::get(shape, et), x, reassoc, out);
    };
    if (folded) {
      q = to4d(q);
      k = to4d(k);
      v = to4d(v);
    } else {
      // repeat_kv: attend to the un-repeated KV heads (GQA).
      Value k0 = matchRepeatKV(k), v0 = matchRepeatKV(v);
      if (k0 && v0 &&
          cast<ShapedType>(k0.getType()).getDimSize(1) ==
              cast<ShapedType>(v0.getType()).getDimSize(1)) {
        k = k0;
        v = v0;
      }
    }
    // Keep the cast's shape info: the attention result may be more static.
    Value att = buildAttention(rewriter, loc, q, k, v, et, scale, causal);
    if (folded)
      att = tensor::CollapseShapeOp::create(rewriter, loc, att, reassoc);
    // A mixed-precision P·V accumulated in f32: widen the result (the
    // export's own truncation follows, as before).
    if (rType.getElementType() != et) {
      auto attT = cast<RankedTensorType>(att.getType());
      auto wideT = attT.clone(rType.getElementType());
      Value init = tensor::EmptyOp::create(
          rewriter, loc, tensor::getMixedSizes(rewriter, loc, att),
          rType.getElementType());
      unsigned rank = attT.getRank();
      AffineMap id = rewriter.getMultiDimIdentityMap(rank);
      att = linalg::GenericOp::create(
                rewriter, loc, TypeRange{wideT}, ValueRange{att},
                ValueRange{init}, SmallVector<AffineMap>{id, id},
                SmallVector<utils::IteratorType>(rank,
                                                 utils::IteratorType::parallel),
                [&](OpBuilder &nb, Location l, ValueRange args) {
                  Value w = arith::ExtFOp::create(nb, l, rType.getElementType(),
                                                  args[0]);
                  linalg::YieldOp::create(nb, l, w);
                })
                .getResult(0);
    }
    if (att.getType() != rType)
      att = tensor::CastOp::create(rewriter, loc, rType, att);
    rewriter.replaceOp(pvOp, att);
    return success();
  }
};

/// The ops that start a softmax the raise looks for: linalg.softmax, and
/// the max reduction of a decomposed one.
bool isSoftmaxStart(Operation *op) {
  if (isa<linalg::SoftmaxOp>(op))
    return true;
  // Also PyTorch's max + argmax in one generic (normalisation drops the
  // unused argmax).
  auto g = dyn_cast<linalg::GenericOp>(op);
  return g && g.getNumReductionLoops() == 1 &&
         llvm::any_of(g.getRegion().front(), [](Operation &inner) {
           return isa<arith::MaximumFOp, arith::MaxNumFOp>(inner);
         });
}

int64_t countOps(Operation *root, llvm::function_ref<bool(Operation *)> pred) {
  int64_t n = 0;
  root->walk([&](Operation *op) { n += pred(op); });
  return n;
}

/// A remark on every softmax left in `root`: which step of the match failed,
/// for the contraction its result feeds (searched a few ops downstream).
void explainRemaining(Operation *root) {
  // Front ends' own attention ops left: the pattern's reason, by matching
  // again with a rewriter that records it.
  root->walk([&](Operation *op) {
    if (!isa<tm_tensor::AttentionOp, iree_linalg_ext::AttentionOp>(op))
      return;
    struct Recorder : RewriterBase::Listener {
      std::string why;
      void notifyMatchFailure(
          Location, function_ref<void(Diagnostic &)> reason) override {
        Diagnostic d(UnknownLoc::get(ctx), DiagnosticSeverity::Remark);
        reason(d);
        why = d.str();
      }
      MLIRContext *ctx;
    } recorder;
    recorder.ctx = op->getContext();
    PatternRewriter rewriter(op->getContext());
    rewriter.setListener(&recorder);
    rewriter.setInsertionPoint(op);
    // Both patterns leave the IR as it is when they fail.
    if (auto tm = dyn_cast<tm_tensor::AttentionOp>(op))
      (void)RaiseTMTensorAttention(op->getContext())
          .matchAndRewrite(tm, rewriter);
    else
      (void)RaiseIREEAttention(op->getContext())
          .matchAndRewrite(cast<iree_linalg_ext::AttentionOp>(op), rewriter);
    op->emitRemark() << "balancekv-raise-attention: " << op->getName()
                     << " not raised: " << recorder.why;
  });
  root->walk([&](Operation *start) {
    if (!isSoftmaxStart(start))
      return;
    SmallVector<Operation *> frontier{start};
    DenseSet<Operation *> seen{start};
    linalg::LinalgOp pv;
    for (int depth = 0; depth < 8 && !pv && !frontier.empty(); ++depth) {
      SmallVector<Operation *> next;
      for (Operation *op : frontier)
        for (Operation *user : op->getUsers()) {
          if (!seen.insert(user).second)
            continue;
          auto lop = dyn_cast<linalg::LinalgOp>(user);
          if (lop && lop->getNumResults() == 1 &&
              matchContraction(lop->getResult(0))) {
            pv = lop;
            break;
          }
          next.push_back(user);
        }
      frontier = std::move(next);
    }
    std::string why = "P·V: no batched contraction consumes the softmax";
    if (pv)
      (void)matchAttention(pv, why);
    start->emitRemark() << "balancekv-raise-attention: softmax not raised: "
                        << why;
  });
}

struct BalanceKVRaiseAttentionPass
    : balancekv::impl::BalanceKVRaiseAttentionPassBase<
          BalanceKVRaiseAttentionPass> {
  BalanceKVRaiseAttentionPass() { showDefault(remarks); }
  BalanceKVRaiseAttentionPass(const balancekv::BalanceKVRaiseAttentionPassOptions &options) : Base(options) {
    showDefault(remarks);
  }

  LogicalResult raise(Operation *root) {
    RewritePatternSet patterns(&getContext());
    populateRaiseAttentionPatterns(patterns);
    // Dead producers (softmax, Q·Kᵀ, ...) are erased by the driver.
    return applyPatternsGreedily(root, std::move(patterns));
  }

  void runOnOperation() override {
    // As written first.
    if (failed(raise(getOperation())))
      return signalPassFailure();
    // Functions with a softmax left: raise a normalised copy, and keep it
    // only if that raised something.
    SmallVector<FunctionOpInterface> candidates;
    getOperation()->walk([&](FunctionOpInterface fn) {
      if (!fn.isExternal() && countOps(fn, isSoftmaxStart) > 0)
        candidates.push_back(fn);
      else if (remarks)
        explainRemaining(fn); // front ends' attention ops left, if any
    });
    for (FunctionOpInterface fn : candidates) {
      auto isAttention = [](Operation *op) { return isa<AttentionOp>(op); };
      const int64_t before = countOps(fn, isAttention);
      Operation *copy = fn->clone();
      const bool normalized = succeeded(normalizeAttentionIR(copy));
      if (normalized && succeeded(raise(copy)) &&
          countOps(copy, isAttention) > before)
        fn.getFunctionBody().takeBody(
            cast<FunctionOpInterface>(copy).getFunctionBody());
      // Why the softmaxes left are left, on the normalised form (the
      // original's when normalisation did not settle).
      if (remarks)
        explainRemaining(normalized ? copy : fn.getOperation());
      copy->destroy();
    }
  }
};

} // namespace

void balancekv::populateRaiseAttentionPatterns(RewritePatternSet &patterns) {
  patterns.add<RaiseAttention, RaiseIREEAttention, RaiseTMTensorAttention>(
      patterns.getContext());
}
