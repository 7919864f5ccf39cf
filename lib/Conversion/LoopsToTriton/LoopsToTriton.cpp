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

/// One kernel: an scf.parallel's body as a tt.func.
class KernelBuilder {
public:
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
    // The iteration point from the program ids.
    SmallVector<Value> ivs = programPoint(loc);
    for (auto [iv, value] : llvm::zip(loop.getInductionVars(), ivs))
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

  Value i64(int64_t v, Location loc) {
    return arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(v));
  }

  Value programId(int dim, Location loc) {
    Value id = tt::GetProgramIdOp::create(
        b, loc, b.getI32Type(), static_cast<tt::ProgramIDDim>(dim));
    return arith::ExtSIOp::create(b, loc, b.getI64Type(), id);
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
      if (st.getSExtValue() != 1)
        v = arith::MulIOp::create(b, loc, v, i64(st.getSExtValue(), loc));
      if (lb.getSExtValue() != 0)
        v = arith::AddIOp::create(b, loc, v, i64(lb.getSExtValue(), loc));
      return v;
    };
    if (fits) {
      gridDims = {1, 1, 1};
      for (size_t i = 0; i < n; ++i) {
        int dim = static_cast<int>(n - 1 - i);
        gridDims[dim] = counts[i];
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

  Value map(Value v) { return mapping.lookupOrDefault(v); }

  /// Pointer to `memref[indices]` (identity layout, static shape).
  FailureOr<Value> address(Operation *op, Value memref, ValueRange indices) {
    auto it = pointers.find(memref);
    auto type = cast<MemRefType>(memref.getType());
    if (it == pointers.end())
      return op->emitError("balancekv-loops-to-triton: a kernel reads or "
                           "writes a buffer that is not one of its arguments");
    Location loc = op->getLoc();
    Value offset;
    for (auto [index, size] : llvm::zip(indices, type.getShape())) {
      Value i = map(index);
      if (!offset) {
        offset = i;
        continue;
      }
      offset = arith::MulIOp::create(b, loc, offset, i64(size, loc));
      offset = arith::AddIOp::create(b, loc, offset, i);
    }
    if (!offset)
      offset = i64(0, loc); // a rank-0 buffer
    return tt::AddPtrOp::create(b, loc, it->second.getType(), it->second,
                                offset)
        .getResult();
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
      bool isSigned = isa<arith::IndexCastOp>(op);
      Value src = map(op->getOperand(0));
      Type to = withoutIndex(op->getResult(0).getType());
      unsigned from = src.getType().getIntOrFloatBitWidth();
      unsigned width = to.getIntOrFloatBitWidth();
      Value result = src;
      if (width < from)
        result = arith::TruncIOp::create(b, loc, to, src);
      else if (width > from)
        result = isSigned ? arith::ExtSIOp::create(b, loc, to, src).getResult()
                          : arith::ExtUIOp::create(b, loc, to, src).getResult();
      mapping.map(op->getResult(0), result);
      return success();
    }
    if (auto forOp = dyn_cast<scf::ForOp>(op)) {
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
      if (ifOp.getElseRegion().empty())
      {
        OpBuilder eb = OpBuilder::atBlockEnd(&copy.getElseRegion().front());
        scf::YieldOp::create(eb, loc);
      }
      else if (failed(convertRegion(ifOp.getElseRegion(),
                                    copy.getElseRegion())))
        return failure();
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
    OperationState state(loc, op->getName());
    for (Value v : op->getOperands())
      state.addOperands(map(v));
    for (Type t : op->getResultTypes())
      state.addTypes(withoutIndex(t));
    state.addAttributes(op->getAttrs());
    Operation *copy = b.create(state);
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
                            "after unrolling");
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
