//===- LoopsToTriton.cpp - bufferized loops to Triton kernels + a plan ----===//
//
// --balancekv-loops-to-triton: the bufferized loop form of balancekv's ops
// (what --balancekv-lower-to-loops, one-shot bufferization and
// convert-linalg-to-parallel-loops make of them) as Triton kernels. Each
// top-level scf.parallel becomes a public tt.func, one program per iteration
// point (program ids; dims beyond three, or too large for y/z, linearised
// into x), its memrefs passed as pointers, `index` computed in i64; the host
// function (allocations, launches, copies, loops over the rounds unrolled)
// becomes a launch plan in JSON on the module, so that a runtime with no
// MLIR (Triton's Python) can run it: python/balancekv/triton.py.
//
//===----------------------------------------------------------------------===//

#include "balancekv/Conversion/Passes.h"
#include "balancekv/Dialect/TritonCompat/IR/Dialect.h"

#include "mlir/Dialect/SCF/Utils/Utils.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/JSON.h"

namespace balancekv {
#define GEN_PASS_DEF_BALANCEKVLOOPSTOTRITONPASS
#include "balancekv/Conversion/Passes.h.inc"
} // namespace balancekv

using namespace mlir;
using namespace balancekv;

namespace {

constexpr llvm::StringLiteral kPlanAttr = "balancekv.triton_plans";
constexpr int64_t kMaxGridYZ = 65535;

Type withoutIndex(Type type) {
  return type.isIndex() ? IntegerType::get(type.getContext(), 64) : type;
}

/// Triton's name of an element type (its signature strings).
std::string tritonTypeName(Type type) {
  if (type.isF16())
    return "fp16";
  if (type.isBF16())
    return "bf16";
  if (type.isF32())
    return "fp32";
  if (type.isF64())
    return "fp64";
  if (auto i = dyn_cast<IntegerType>(type))
    return "i" + std::to_string(i.getWidth());
  return "";
}

/// Whether ops are straight-line scalar code a program can run on a tensor
/// of points at once: loads, stores, arith and math, no regions.
bool isStraightLine(Block &block) {
  return llvm::all_of(block.without_terminator(), [](Operation &op) {
    return op.getNumRegions() == 0 &&
           (isa<memref::LoadOp, memref::StoreOp>(op) ||
            isa<arith::ArithDialect, math::MathDialect>(op.getDialect()));
  });
}

/// Lanes of a program: the last parallel dim's points (straight-line
/// bodies) or a sum loop's terms, as tensors of `count` elements
/// (a power of two), `mask` for the ones past the end.
struct Lanes {
  int64_t count = 0;
  Value mask;
  DenseMap<Value, Value> values; // original value -> its tensor of lanes
};

/// One kernel: an scf.parallel's body as a tt.func.
class KernelBuilder {
public:
  /// Lanes per program for straight-line bodies, and the most a sum loop
  /// takes at once (a chunk; longer sums loop over chunks).
  static constexpr int64_t kPointLanes = 128;
  static constexpr int64_t kSumLanes = 1024;

  KernelBuilder(scf::ParallelOp loop, ArrayRef<Value> buffers,
                tt::FuncOp kernel, ArrayRef<int64_t> counts)
      : loop(loop), kernel(kernel), counts(counts),
        b(kernel.getContext()) {
    for (auto [buffer, arg] :
         llvm::zip(buffers, kernel.getBody().front().getArguments()))
      pointers[buffer] = arg;
  }

  LogicalResult build() {
    Block &entry = kernel.getBody().front();
    b.setInsertionPointToStart(&entry);
    Location loc = loop.getLoc();
    // The iteration point from the program ids (the last dim as lanes when
    // the body is straight-line code).
    SmallVector<Value> ivs = programPoint(loc);
    for (auto [iv, value] : llvm::zip(loop.getInductionVars(), ivs))
      if (value) // null: the dim is lanes
        mapping.map(iv, value);
    for (Operation &op : loop.getBody()->without_terminator())
      if (failed(convert(&op)))
        return failure();
    tt::ReturnOp::create(b, loc, ValueRange{});
    return success();
  }

  /// The grid: x, y, z program counts.
  SmallVector<int64_t, 3> grid() const { return gridDims; }

private:
  scf::ParallelOp loop;
  tt::FuncOp kernel;
  ArrayRef<int64_t> counts;
  OpBuilder b;
  IRMapping mapping;
  DenseMap<Value, Value> pointers;
  SmallVector<int64_t, 3> gridDims;
  Lanes *lanes = nullptr; // while converting vectorised code

  Value i64(int64_t v, Location loc) {
    return arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(v));
  }

  Value programId(int dim, Location loc) {
    Value id = tt::GetProgramIdOp::create(
        b, loc, b.getI32Type(), static_cast<tt::ProgramIDDim>(dim));
    return arith::ExtSIOp::create(b, loc, b.getI64Type(), id);
  }

  RankedTensorType lanesOf(Type t) {
    return RankedTensorType::get({lanes->count}, withoutIndex(t));
  }

  /// `first + [0, count)` as i64 lanes, and `< limit` as their mask
  /// (none when every lane is in range).
  std::pair<Value, Value> laneRange(Value first, int64_t count, int64_t limit,
                                    bool mayPassLimit, Location loc) {
    auto i32s = RankedTensorType::get({count}, b.getI32Type());
    auto i64s = RankedTensorType::get({count}, b.getI64Type());
    Value range = arith::ExtSIOp::create(
        b, loc, i64s,
        tt::MakeRangeOp::create(b, loc, i32s, 0u,
                                static_cast<uint32_t>(count)));
    Value points = arith::AddIOp::create(
        b, loc, tt::SplatOp::create(b, loc, i64s, first), range);
    Value mask;
    if (mayPassLimit)
      mask = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, points,
                                   tt::SplatOp::create(b, loc, i64s,
                                                       i64(limit, loc)));
    return {points, mask};
  }

  /// The parallel loop's point: the last dim on x (the one grid dim with
  /// no 65535 limit), then y and z; anything else linearised into x.
  SmallVector<Value> programPoint(Location loc) {
    size_t n = counts.size();
    SmallVector<Value> point(n);
    bool fits = n <= 3;
    for (size_t i = 0; fits && i + 1 < n; ++i)
      fits = counts[i] <= kMaxGridYZ;
    auto lower = loop.getLowerBound();
    auto step = loop.getStep();
    auto scaled = [&](size_t i, Value index) {
      APInt lb, st;
      matchPattern(lower[i], m_ConstantInt(&lb));
      matchPattern(step[i], m_ConstantInt(&st));
      Value v = index;
      auto like = [&](int64_t c) -> Value {
        Value k = i64(c, loc);
        if (auto t = dyn_cast<RankedTensorType>(index.getType()))
          k = tt::SplatOp::create(b, loc, t, k);
        return k;
      };
      if (st.getSExtValue() != 1)
        v = arith::MulIOp::create(b, loc, v, like(st.getSExtValue()));
      if (lb.getSExtValue() != 0)
        v = arith::AddIOp::create(b, loc, v, like(lb.getSExtValue()));
      return v;
    };
    if (fits) {
      gridDims = {1, 1, 1};
      for (size_t i = 0; i < n; ++i) {
        int dim = static_cast<int>(n - 1 - i);
        gridDims[dim] = counts[i];
        if (dim == 0 && counts[i] > 1 && isStraightLine(*loop.getBody())) {
          // One program per kPointLanes points of the last dim.
          pointLanes.count =
              std::min<int64_t>(llvm::PowerOf2Ceil(counts[i]), kPointLanes);
          gridDims[0] = llvm::divideCeil(counts[i], pointLanes.count);
          Value first = arith::MulIOp::create(b, loc, programId(0, loc),
                                              i64(pointLanes.count, loc));
          auto [points, mask] =
              laneRange(first, pointLanes.count, counts[i],
                        counts[i] % pointLanes.count != 0, loc);
          pointLanes.mask = mask;
          pointLanes.values[loop.getInductionVars()[i]] = scaled(i, points);
          lanes = &pointLanes;
          point[i] = Value(); // only as lanes
          continue;
        }
        point[i] = scaled(i, programId(dim, loc));
      }
      return point;
    }
    int64_t total = 1;
    for (int64_t c : counts)
      total *= c;
    gridDims = {total, 1, 1};
    Value rest = programId(0, loc);
    for (size_t i = n; i-- > 0;) {
      Value count = i64(counts[i], loc);
      point[i] = scaled(i, arith::RemSIOp::create(b, loc, rest, count));
      rest = arith::DivSIOp::create(b, loc, rest, count);
    }
    return point;
  }
  Lanes pointLanes;

  Value map(Value v) { return mapping.lookupOrDefault(v); }

  bool isLane(Value v) { return lanes && lanes->values.count(v); }

  /// A value as lanes: its tensor, or the scalar splat.
  Value asLanes(Value v, Location loc) {
    if (auto it = lanes->values.find(v); it != lanes->values.end())
      return it->second;
    return tt::SplatOp::create(b, loc, lanesOf(v.getType()), map(v));
  }

  Value zerosLike(RankedTensorType type, Location loc) {
    return arith::ConstantOp::create(
        b, loc,
        DenseElementsAttr::get(type, b.getZeroAttr(type.getElementType())));
  }

  /// Pointer(s) to `memref[indices]` (identity layout, static shape): a
  /// scalar pointer, or a tensor of them when an index is per lane.
  FailureOr<Value> address(Operation *op, Value memref, ValueRange indices) {
    auto it = pointers.find(memref);
    auto type = cast<MemRefType>(memref.getType());
    if (it == pointers.end())
      return op->emitError("balancekv-loops-to-triton: a kernel reads or "
                           "writes a buffer that is not one of its arguments");
    Location loc = op->getLoc();
    bool perLane = llvm::any_of(indices, [&](Value i) { return isLane(i); });
    auto index = [&](Value i) { return perLane ? asLanes(i, loc) : map(i); };
    auto constant = [&](int64_t c) -> Value {
      Value k = i64(c, loc);
      return perLane ? tt::SplatOp::create(b, loc, lanesOf(b.getI64Type()), k)
                           .getResult()
                     : k;
    };
    Value offset;
    for (auto [i, size] : llvm::zip(indices, type.getShape())) {
      Value v = index(i);
      offset = offset ? arith::AddIOp::create(
                            b, loc,
                            arith::MulIOp::create(b, loc, offset, constant(size)),
                            v)
                            .getResult()
                      : v;
    }
    if (!offset)
      offset = constant(0); // a rank-0 buffer
    Value base = it->second;
    if (!perLane)
      return tt::AddPtrOp::create(b, loc, base.getType(), base, offset)
          .getResult();
    auto ptrs = RankedTensorType::get({lanes->count}, base.getType());
    return tt::AddPtrOp::create(b, loc, ptrs,
                                tt::SplatOp::create(b, loc, ptrs, base), offset)
        .getResult();
  }

  /// An op with per-lane operands, on tensors of lanes.
  LogicalResult convertLanes(Operation *op) {
    Location loc = op->getLoc();
    if (auto load = dyn_cast<memref::LoadOp>(op)) {
      FailureOr<Value> ptrs = address(op, load.getMemRef(), load.getIndices());
      if (failed(ptrs))
        return failure();
      auto type = lanesOf(load.getType());
      Value mask = lanes->mask;
      lanes->values[load.getResult()] =
          tt::LoadOp::create(b, loc, *ptrs, mask,
                             mask ? zerosLike(type, loc) : Value(),
                             ArrayRef<int32_t>{}, tt::PaddingOptionAttr())
              .getResult();
      return success();
    }
    if (auto store = dyn_cast<memref::StoreOp>(op)) {
      FailureOr<Value> ptrs =
          address(op, store.getMemRef(), store.getIndices());
      if (failed(ptrs))
        return failure();
      if (!isa<RankedTensorType>(ptrs->getType()))
        return op->emitError("balancekv-loops-to-triton: a store of lanes to "
                             "one address");
      tt::StoreOp::create(b, loc, *ptrs,
                          asLanes(store.getValueToStore(), loc), lanes->mask,
                          b.getDenseI32ArrayAttr({}));
      return success();
    }
    if (isa<arith::IndexCastOp, arith::IndexCastUIOp>(op)) {
      lanes->values[op->getResult(0)] =
          castIndex(op, asLanes(op->getOperand(0), loc),
                    lanesOf(op->getResult(0).getType()));
      return success();
    }
    if (op->getNumRegions() != 0 ||
        !isa<arith::ArithDialect, math::MathDialect>(op->getDialect()))
      return op->emitError("balancekv-loops-to-triton: cannot run '")
             << op->getName() << "' on lanes";
    Operation *copy = recreate(
        op, [&](Value v) { return asLanes(v, loc); },
        [&](Type t) -> Type { return lanesOf(t); });
    for (auto [r, c] : llvm::zip(op->getResults(), copy->getResults()))
      lanes->values[r] = c;
    return success();
  }

  /// An index_cast(ui) of `src` (index already i64) to `to`: a
  /// truncation, an extension (signed for index_cast) or nothing.
  Value castIndex(Operation *op, Value src, Type to) {
    unsigned from = getElementTypeOrSelf(src).getIntOrFloatBitWidth();
    unsigned width = getElementTypeOrSelf(to).getIntOrFloatBitWidth();
    Location loc = op->getLoc();
    if (width < from)
      return arith::TruncIOp::create(b, loc, to, src);
    if (width > from)
      return isa<arith::IndexCastOp>(op)
                 ? arith::ExtSIOp::create(b, loc, to, src).getResult()
                 : arith::ExtUIOp::create(b, loc, to, src).getResult();
    return src;
  }

  /// `op` (elementwise, no regions) again on `operand(v)` for each operand
  /// and `type(t)` for each result type, attributes kept.
  Operation *recreate(Operation *op, llvm::function_ref<Value(Value)> operand,
                      llvm::function_ref<Type(Type)> type) {
    OperationState state(op->getLoc(), op->getName());
    for (Value v : op->getOperands())
      state.addOperands(operand(v));
    for (Type t : op->getResultTypes())
      state.addTypes(type(t));
    state.addAttributes(op->getAttrs());
    return b.create(state);
  }

  Value sumOf(Value terms, Location loc) {
    Type elem = getElementTypeOrSelf(terms);
    OperationState state(loc, tt::ReduceOp::getOperationName());
    state.addOperands(terms);
    state.addTypes(elem);
    state.addAttribute("axis", b.getI32IntegerAttr(0));
    Block *body = new Block();
    state.addRegion()->push_back(body);
    Value x = body->addArgument(elem, loc), y = body->addArgument(elem, loc);
    // The block has no parent op yet: the builder takes the context.
    OpBuilder rb(b.getContext());
    rb.setInsertionPointToEnd(body);
    Value sum = isa<FloatType>(elem)
                    ? arith::AddFOp::create(rb, loc, x, y).getResult()
                    : arith::AddIOp::create(rb, loc, x, y).getResult();
    tt::ReduceReturnOp::create(rb, loc, ValueRange{sum});
    return b.create(state)->getResult(0);
  }

  static Value add(OpBuilder &b, Location loc, Value x, Value y) {
    return isa<FloatType>(getElementTypeOrSelf(x))
               ? arith::AddFOp::create(b, loc, x, y).getResult()
               : arith::AddIOp::create(b, loc, x, y).getResult();
  }

  /// `scf.for %i = 0 to N iter_args(%acc) { loads and elementwise ops;
  /// yield %acc + x(%i) }`, the scalar loops' inner products and sums: the
  /// terms kSumLanes at a time as a tensor (masked past N), each chunk
  /// summed by tt.reduce into %acc. Fails, changing nothing, for any other
  /// loop or inside lanes already. The sum's order changes: in f64 that
  /// moves results by ulps, which the spec allows (walk decisions may
  /// differ only at near-ties).
  LogicalResult vectorizeSum(scf::ForOp forOp) {
    if (lanes)
      return failure();
    APInt lb, ub, st;
    if (!matchPattern(forOp.getLowerBound(), m_ConstantInt(&lb)) ||
        !matchPattern(forOp.getUpperBound(), m_ConstantInt(&ub)) ||
        !matchPattern(forOp.getStep(), m_ConstantInt(&st)) || !lb.isZero() ||
        !st.isOne() || ub.getSExtValue() < 2 ||
        forOp.getNumRegionIterArgs() != 1 || !isStraightLine(*forOp.getBody()))
      return failure();
    Value acc = forOp.getRegionIterArgs()[0];
    Operation *addOp = forOp.getYieldedValues()[0].getDefiningOp();
    if (!isa_and_nonnull<arith::AddFOp, arith::AddIOp>(addOp) ||
        addOp->getBlock() != forOp.getBody() || !addOp->hasOneUse() ||
        !acc.hasOneUse() || !llvm::is_contained(addOp->getOperands(), acc))
      return failure();
    Value term = addOp->getOperand(0) == acc ? addOp->getOperand(1)
                                             : addOp->getOperand(0);
    if (term == acc)
      return failure();
    // Which values vary with %i; stores would race.
    DenseSet<Value> varying{forOp.getInductionVar()};
    for (Operation &inner : forOp.getBody()->without_terminator()) {
      if (isa<memref::StoreOp>(inner))
        return failure();
      if (llvm::any_of(inner.getOperands(),
                       [&](Value v) { return varying.contains(v); }))
        for (Value r : inner.getResults())
          varying.insert(r);
    }
    if (!varying.contains(term))
      return failure();

    Location loc = forOp.getLoc();
    int64_t n = ub.getSExtValue();
    Lanes sum;
    sum.count = std::min<int64_t>(llvm::PowerOf2Ceil(n), kSumLanes);
    int64_t chunks = llvm::divideCeil(n, sum.count);
    Value init = map(forOp.getInitArgs()[0]);
    // for chunk in [0, chunks): acc += reduce(terms of the chunk)
    auto chunkLoop = scf::ForOp::create(b, loc, i64(0, loc), i64(chunks, loc),
                                        i64(1, loc), ValueRange{init});
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(chunkLoop.getBody());
    Value first = arith::MulIOp::create(b, loc, chunkLoop.getInductionVar(),
                                        i64(sum.count, loc));
    auto [points, mask] = laneRange(first, sum.count, n,
                                    n % sum.count != 0, loc);
    sum.mask = mask;
    sum.values[forOp.getInductionVar()] = points;
    lanes = &sum;
    for (Operation &inner : forOp.getBody()->without_terminator()) {
      if (&inner == addOp)
        continue;
      LogicalResult converted = varying.contains(inner.getResult(0))
                                    ? convertLanes(&inner)
                                    : convert(&inner);
      if (failed(converted)) {
        lanes = nullptr;
        return failure();
      }
    }
    Value terms = sum.values[term];
    if (mask)
      terms = arith::SelectOp::create(
          b, loc, mask, terms,
          zerosLike(cast<RankedTensorType>(terms.getType()), loc));
    Value total = add(b, loc, chunkLoop.getRegionIterArgs()[0],
                      sumOf(terms, loc));
    scf::YieldOp::create(b, loc, ValueRange{total});
    lanes = nullptr;
    mapping.map(forOp.getResult(0), chunkLoop.getResult(0));
    return success();
  }

  LogicalResult convertRegion(Region &from, Region &to) {
    for (auto [src, dst] : llvm::zip(from.getArguments(), to.getArguments()))
      mapping.map(src, dst);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToEnd(&to.front());
    for (Operation &op : from.front())
      if (failed(convert(&op)))
        return failure();
    return success();
  }

  LogicalResult convert(Operation *op) {
    Location loc = op->getLoc();
    if (lanes && llvm::any_of(op->getOperands(),
                              [&](Value v) { return isLane(v); }))
      return convertLanes(op);
    if (auto load = dyn_cast<memref::LoadOp>(op)) {
      FailureOr<Value> ptr =
          address(op, load.getMemRef(), load.getIndices());
      if (failed(ptr))
        return failure();
      mapping.map(load.getResult(),
                  tt::LoadOp::create(b, loc, *ptr, Value(), Value(),
                                     ArrayRef<int32_t>{},
                                     tt::PaddingOptionAttr())
                      .getResult());
      return success();
    }
    if (auto store = dyn_cast<memref::StoreOp>(op)) {
      FailureOr<Value> ptr =
          address(op, store.getMemRef(), store.getIndices());
      if (failed(ptr))
        return failure();
      tt::StoreOp::create(b, loc, *ptr, map(store.getValueToStore()), Value(),
                          b.getDenseI32ArrayAttr({}));
      return success();
    }
    if (auto constant = dyn_cast<arith::ConstantOp>(op)) {
      TypedAttr value = constant.getValue();
      if (constant.getType().isIndex())
        value = b.getI64IntegerAttr(
            cast<IntegerAttr>(value).getValue().getSExtValue());
      mapping.map(constant.getResult(),
                  arith::ConstantOp::create(b, loc, value).getResult());
      return success();
    }
    if (isa<arith::IndexCastOp, arith::IndexCastUIOp>(op)) {
      mapping.map(op->getResult(0),
                  castIndex(op, map(op->getOperand(0)),
                            withoutIndex(op->getResult(0).getType())));
      return success();
    }
    if (auto forOp = dyn_cast<scf::ForOp>(op)) {
      if (succeeded(vectorizeSum(forOp)))
        return success();
      SmallVector<Value> inits;
      for (Value v : forOp.getInitArgs())
        inits.push_back(map(v));
      auto copy = scf::ForOp::create(b, loc, map(forOp.getLowerBound()),
                                     map(forOp.getUpperBound()),
                                     map(forOp.getStep()), inits);
      copy.getBody()->clear(); // the builder's implicit yield
      mapping.map(forOp.getInductionVar(), copy.getInductionVar());
      if (failed(convertRegion(forOp.getRegion(), copy.getRegion())))
        return failure();
      mapping.map(forOp.getResults(), copy.getResults());
      return success();
    }
    if (auto ifOp = dyn_cast<scf::IfOp>(op)) {
      SmallVector<Type> types;
      for (Type t : ifOp.getResultTypes())
        types.push_back(withoutIndex(t));
      auto copy = scf::IfOp::create(b, loc, types, map(ifOp.getCondition()),
                                    /*withElseRegion=*/true);
      copy.getThenRegion().front().clear();
      copy.getElseRegion().front().clear();
      if (failed(convertRegion(ifOp.getThenRegion(), copy.getThenRegion())))
        return failure();
      if (ifOp.getElseRegion().empty()) {
        OpBuilder eb = OpBuilder::atBlockEnd(&copy.getElseRegion().front());
        scf::YieldOp::create(eb, loc);
      } else if (failed(convertRegion(ifOp.getElseRegion(),
                                      copy.getElseRegion()))) {
        return failure();
      }
      mapping.map(ifOp.getResults(), copy.getResults());
      return success();
    }
    if (op->getNumRegions() != 0 ||
        !isa<arith::ArithDialect, math::MathDialect, scf::SCFDialect>(
            op->getDialect()))
      return op->emitError("balancekv-loops-to-triton: cannot put '")
             << op->getName() << "' in a Triton kernel";
    // Elementwise scalar ops: the same op on the mapped operands, index
    // results as i64.
    Operation *copy = recreate(
        op, [&](Value v) { return map(v); }, withoutIndex);
    mapping.map(op->getResults(), copy->getResults());
    return success();
  }
};

struct LoopsToTritonPass
    : balancekv::impl::BalanceKVLoopsToTritonPassBase<LoopsToTritonPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<func::FuncOp> funcs(module.getOps<func::FuncOp>());
    llvm::json::Object plans;
    for (func::FuncOp func : funcs) {
      if (func.isExternal())
        continue;
      FailureOr<llvm::json::Value> plan = convertFunction(func);
      if (failed(plan))
        return signalPassFailure();
      plans[func.getSymName()] = std::move(*plan);
      func.erase();
    }
    std::string text;
    llvm::raw_string_ostream os(text);
    os << llvm::json::Value(std::move(plans));
    module->setAttr(kPlanAttr, StringAttr::get(module.getContext(), text));
  }

  /// Unrolls the host's loops (over the rounds) and folds what they leave,
  /// so that every launch's grid and arguments are constants.
  LogicalResult unrollHostLoops(func::FuncOp func) {
    SmallVector<scf::ForOp> loops;
    for (Operation &op : func.getBody().front())
      if (auto forOp = dyn_cast<scf::ForOp>(op))
        loops.push_back(forOp);
    for (scf::ForOp forOp : loops)
      if (failed(loopUnrollFull(forOp)))
        return forOp.emitError("balancekv-loops-to-triton: the host loop "
                               "needs constant bounds to be unrolled");
    OpPassManager pm(func::FuncOp::getOperationName());
    pm.addPass(createCanonicalizerPass());
    pm.addPass(createCSEPass());
    if (failed(runPipeline(pm, func)))
      return failure();
    if (!func.getBody().front().getOps<scf::ForOp>().empty())
      return func.emitError("balancekv-loops-to-triton: a host loop is left "
                            "after unrolling (sequential host loops, e.g. the "
                            "baselines' per-head nests, are not kernels: "
                            "convert `compress` with method balance)");
    return success();
  }

  FailureOr<llvm::json::Value> convertFunction(func::FuncOp func) {
    if (failed(unrollHostLoops(func)))
      return failure();
    ModuleOp module = getOperation();
    OpBuilder mb(module.getContext());
    mb.setInsertionPointToEnd(module.getBody());

    DenseMap<Value, std::string> names;
    llvm::json::Array inputs, buffers, steps, outputs;
    auto describe = [&](Value v, StringRef name) -> FailureOr<llvm::json::Object> {
      auto type = dyn_cast<MemRefType>(v.getType());
      if (!type || !type.hasStaticShape() || !type.getLayout().isIdentity() ||
          tritonTypeName(type.getElementType()).empty())
        return failure();
      names[v] = name.str();
      llvm::json::Array shape;
      for (int64_t s : type.getShape())
        shape.push_back(s);
      return llvm::json::Object{
          {"name", name.str()}, {"shape", std::move(shape)},
          {"dtype", tritonTypeName(type.getElementType())}};
    };
    for (BlockArgument arg : func.getArguments()) {
      FailureOr<llvm::json::Object> d =
          describe(arg, "arg" + std::to_string(arg.getArgNumber()));
      if (failed(d))
        return func.emitError("balancekv-loops-to-triton: argument ")
               << arg.getArgNumber()
               << " is not a static identity-layout memref of a Triton "
                  "element type";
      inputs.push_back(std::move(*d));
    }
    int kernels = 0;
    for (Operation &op : llvm::make_early_inc_range(func.getBody().front())) {
      if (isa<arith::ConstantOp, memref::DeallocOp>(op))
        continue;
      if (auto alloc = dyn_cast<memref::AllocOp>(op)) {
        FailureOr<llvm::json::Object> d =
            describe(alloc, "buf" + std::to_string(buffers.size()));
        if (failed(d))
          return alloc.emitError("balancekv-loops-to-triton: buffers must be "
                                 "static identity-layout memrefs");
        buffers.push_back(std::move(*d));
        continue;
      }
      if (isa<memref::ExpandShapeOp, memref::CollapseShapeOp>(op)) {
        // A row-major reshape of a buffer is the same buffer: kernels
        // address it with the view's shape.
        Value src = op.getOperand(0), view = op.getResult(0);
        auto type = cast<MemRefType>(view.getType());
        if (!names.count(src) || !type.getLayout().isIdentity())
          return op.emitError("balancekv-loops-to-triton: reshape of an "
                              "unknown or non-contiguous buffer");
        names[view] = names[src];
        continue;
      }
      if (auto copy = dyn_cast<memref::CopyOp>(op)) {
        if (!names.count(copy.getSource()) || !names.count(copy.getTarget()))
          return copy.emitError("balancekv-loops-to-triton: copy of an "
                                "unknown buffer");
        steps.push_back(llvm::json::Object{{"copy",
                                            llvm::json::Array{
                                                names[copy.getSource()],
                                                names[copy.getTarget()]}}});
        continue;
      }
      if (auto ret = dyn_cast<func::ReturnOp>(op)) {
        for (Value v : ret.getOperands()) {
          if (!names.count(v))
            return ret.emitError("balancekv-loops-to-triton: a result is "
                                 "not a buffer of the plan");
          // By buffer and shape: a result may be a reshaped view.
          llvm::json::Array shape;
          for (int64_t d : cast<MemRefType>(v.getType()).getShape())
            shape.push_back(d);
          outputs.push_back(llvm::json::Object{{"name", names[v]},
                                               {"shape", std::move(shape)}});
        }
        continue;
      }
      auto loop = dyn_cast<scf::ParallelOp>(op);
      if (!loop)
        return op.emitError("balancekv-loops-to-triton: host op '")
               << op.getName() << "' is not supported (allocations, "
               << "scf.parallel loops, copies and constant-bound loops are)";
      std::string name =
          func.getSymName().str() + "_k" + std::to_string(kernels++);
      FailureOr<llvm::json::Object> step = outline(loop, name, names, mb);
      if (failed(step))
        return failure();
      steps.push_back(std::move(*step));
    }
    return llvm::json::Value(llvm::json::Object{
        {"inputs", std::move(inputs)},
        {"buffers", std::move(buffers)},
        {"steps", std::move(steps)},
        {"outputs", std::move(outputs)}});
  }

  FailureOr<llvm::json::Object> outline(scf::ParallelOp loop, StringRef name,
                                        DenseMap<Value, std::string> &names,
                                        OpBuilder &mb) {
    SmallVector<int64_t> counts;
    for (auto [lb, ub, st] : llvm::zip(loop.getLowerBound(),
                                       loop.getUpperBound(), loop.getStep())) {
      APInt l, u, s;
      if (!matchPattern(lb, m_ConstantInt(&l)) ||
          !matchPattern(ub, m_ConstantInt(&u)) ||
          !matchPattern(st, m_ConstantInt(&s)) || s.getSExtValue() <= 0)
        return loop.emitError("balancekv-loops-to-triton: parallel loop "
                              "bounds must be constants");
      counts.push_back(
          llvm::divideCeil(u.getSExtValue() - l.getSExtValue(),
                           s.getSExtValue()));
    }
    if (!loop.getInitVals().empty())
      return loop.emitError("balancekv-loops-to-triton: parallel loops with "
                            "reductions are not supported");
    // Captured values: buffers become pointer arguments, constants are
    // cloned in; anything else cannot be a launch argument of the plan.
    SetVector<Value> buffers;
    WalkResult walk = loop.getBody()->walk([&](Operation *inner) {
      for (Value v : inner->getOperands()) {
        if (loop->isAncestor(v.getParentBlock()->getParentOp()))
          continue;
        if (isa<MemRefType>(v.getType())) {
          if (!names.count(v)) {
            inner->emitError("balancekv-loops-to-triton: a kernel uses a "
                             "buffer the plan does not know");
            return WalkResult::interrupt();
          }
          buffers.insert(v);
        } else if (!matchPattern(v, m_Constant())) {
          inner->emitError("balancekv-loops-to-triton: a kernel uses a host "
                           "value that is not a constant");
          return WalkResult::interrupt();
        }
      }
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      return failure();
    SmallVector<Type> argTypes;
    llvm::json::Array args;
    for (Value buffer : buffers) {
      argTypes.push_back(tt::PointerType::get(
          cast<MemRefType>(buffer.getType()).getElementType(), 1));
      args.push_back(names[buffer]);
    }
    auto kernel = tt::FuncOp::create(
        mb, loop.getLoc(), name, mb.getFunctionType(argTypes, {}),
        /*sym_visibility=*/mb.getStringAttr("public"), /*arg_attrs=*/ArrayAttr(),
        /*res_attrs=*/ArrayAttr());
    Block *entry = new Block();
    kernel.getBody().push_back(entry);
    for (Type t : argTypes)
      entry->addArgument(t, loop.getLoc());
    KernelBuilder builder(loop, buffers.getArrayRef(), kernel, counts);
    if (failed(cloneCapturedConstants(loop)) || failed(builder.build()))
      return failure();
    SmallVector<int64_t, 3> grid = builder.grid();
    return llvm::json::Object{
        {"kernel", name.str()},
        {"grid", llvm::json::Array{grid[0], grid[1], grid[2]}},
        {"args", std::move(args)}};
  }

  /// Constants defined outside the loop and used in it: cloned to the start
  /// of its body, so the kernel builder sees them as its own.
  static LogicalResult cloneCapturedConstants(scf::ParallelOp loop) {
    OpBuilder b = OpBuilder::atBlockBegin(loop.getBody());
    DenseMap<Value, Value> cloned;
    loop.getBody()->walk([&](Operation *inner) {
      for (OpOperand &use : inner->getOpOperands()) {
        Value v = use.get();
        if (loop->isAncestor(v.getParentBlock()->getParentOp()) ||
            isa<MemRefType>(v.getType()))
          continue;
        auto [it, inserted] = cloned.try_emplace(v, Value());
        if (inserted)
          it->second = b.clone(*v.getDefiningOp())->getResult(0);
        use.set(it->second);
      }
    });
    return success();
  }
};

} // namespace
