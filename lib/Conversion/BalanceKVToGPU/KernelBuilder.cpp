//===- KernelBuilder.cpp - terse gpu.func building ------------------------===//

#include "KernelBuilder.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;

namespace balancekv::gpukernels {

KernelModule::KernelModule(ModuleOp module) : module(module) {
  module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                  UnitAttr::get(module.getContext()));
  for (auto m : module.getOps<gpu::GPUModuleOp>())
    if (m.getSymName() == "balancekv_kernels")
      gpuModule = m;
  if (!gpuModule) {
    OpBuilder b = OpBuilder::atBlockEnd(module.getBody());
    gpuModule =
        gpu::GPUModuleOp::create(b, module.getLoc(), "balancekv_kernels");
  }
}

gpu::GPUFuncOp KernelModule::getOrCreate(
    StringRef name, const std::string &key, ArrayRef<Type> args,
    int64_t threads, ArrayRef<Type> workgroupBuffers,
    const std::function<void(ImplicitLocOpBuilder &, gpu::GPUFuncOp)> &build) {
  auto it = cache.find(key);
  if (it != cache.end())
    return it->second;
  OpBuilder ob = OpBuilder::atBlockEnd(gpuModule.getBody());
  ImplicitLocOpBuilder b(gpuModule.getLoc(), ob);
  // Unique symbol: configurations that share a name get _1, _2, ...
  std::string symbol = name.str();
  for (int i = 1; gpuModule.lookupSymbol(symbol); ++i)
    symbol = (name + "_" + Twine(i)).str();
  auto fn = gpu::GPUFuncOp::create(b, symbol, b.getFunctionType(args, {}),
                                   workgroupBuffers);
  fn->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  // Every workgroup buffer 16-byte aligned, explicitly: without an alignment
  // the NVVM globals get none, LLVM's load-store vectorizer then assumes the
  // preferred 16 for arrays > 16 bytes and merges scalar loads into
  // ld.shared.v4, while the PTX declares .align 4 (misaligned-address fault,
  // found by compute-sanitizer on a D = 17 decode).
  for (unsigned i = 0; i < workgroupBuffers.size(); ++i)
    fn.setWorkgroupAttributionAttr(i, LLVM::LLVMDialect::getAlignAttrName(),
                                   b.getI64IntegerAttr(16));
  fn.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({int32_t(threads), 1, 1}));
  Block &entry = fn.getBody().front();
  b.setInsertionPointToStart(&entry);
  auto ret = gpu::ReturnOp::create(b);
  b.setInsertionPoint(ret);
  build(b, fn);
  cache[key] = fn;
  return fn;
}

Value dynamicSharedBase(ImplicitLocOpBuilder &b) {
  return gpu::DynamicSharedMemoryOp::create(
      b, MemRefType::get({ShapedType::kDynamic}, b.getI8Type(),
                         MemRefLayoutAttrInterface(),
                         workgroupSpace(b.getContext())));
}

Value sharedView(ImplicitLocOpBuilder &b, Value base, int64_t byteOffset,
                 int64_t count, Type t) {
  return memref::ViewOp::create(b, workgroupBuffer(b.getContext(), count, t),
                                base, cIdx(b, byteOffset), ValueRange{});
}

Value loadVectorF32(ImplicitLocOpBuilder &b, Value mem, ValueRange idx,
                    int64_t vec) {
  Type elem = cast<MemRefType>(mem.getType()).getElementType();
  Value raw = vector::LoadOp::create(b, VectorType::get({vec}, elem), mem, idx,
                                     false, llvm::MaybeAlign(16));
  if (elem.isF32())
    return raw;
  return arith::ExtFOp::create(b, VectorType::get({vec}, b.getF32Type()), raw);
}

Value aligned16Flag(ImplicitLocOpBuilder &b, ValueRange buffers) {
  Value bits;
  for (Value buf : buffers) {
    Value ptr = memref::ExtractAlignedPointerAsIndexOp::create(b, buf);
    bits = bits ? arith::OrIOp::create(b, bits, ptr).getResult() : ptr;
  }
  Value aligned = arith::CmpIOp::create(
      b, arith::CmpIPredicate::eq, arith::RemUIOp::create(b, bits, cIdx(b, 16)),
      cIdx(b, 0));
  return arith::ExtUIOp::create(b, b.getI32Type(), aligned);
}

void ifFlag(ImplicitLocOpBuilder &b, Value flag,
            const std::function<void(ImplicitLocOpBuilder &)> &thenFn,
            const std::function<void(ImplicitLocOpBuilder &)> &elseFn) {
  auto branch = [](const std::function<void(ImplicitLocOpBuilder &)> &fn) {
    return [&fn](OpBuilder &nb, Location loc) {
      ImplicitLocOpBuilder ib(loc, nb);
      fn(ib);
      scf::YieldOp::create(ib);
    };
  };
  Value set =
      arith::CmpIOp::create(b, arith::CmpIPredicate::ne, flag, cI32(b, 0));
  scf::IfOp::create(b, set, branch(thenFn), branch(elseFn));
}

Value combine(ImplicitLocOpBuilder &b, Combine kind, Value x, Value y) {
  if (kind == Combine::Add)
    return arith::AddFOp::create(b, x, y);
  // maxnumf: a -inf identity and no NaN from fully masked rows.
  return arith::MaxNumFOp::create(b, x, y);
}

Value warpAllReduce(ImplicitLocOpBuilder &b, Combine kind, Value v) {
  for (int32_t offset = 16; offset >= 1; offset /= 2) {
    auto sh = gpu::ShuffleOp::create(b, v, offset, 32, gpu::ShuffleMode::XOR);
    v = combine(b, kind, v, sh.getShuffleResult());
  }
  return v;
}

Value blockAllReduce(ImplicitLocOpBuilder &b, Combine kind, Value v,
                     Value scratch, int64_t threads) {
  const int64_t warps = threads / 32;
  v = warpAllReduce(b, kind, v);
  if (warps == 1)
    return v;
  Value tid = threadId(b);
  Value lane = remU(b, tid, cIdx(b, 32)), warp = divU(b, tid, cIdx(b, 32));
  ifThen(b, cmp(b, arith::CmpIPredicate::eq, lane, cIdx(b, 0)),
         [&](ImplicitLocOpBuilder &ib) { store(ib, v, scratch, {warp}); });
  barrier(b);
  Value r = load(b, scratch, {cIdx(b, 0)});
  for (int64_t w = 1; w < warps; ++w)
    r = combine(b, kind, r, load(b, scratch, {cIdx(b, w)}));
  // The scratch is reused by the next reduction.
  barrier(b);
  return r;
}

std::pair<Value, Value> blockExclusiveScan(ImplicitLocOpBuilder &b, Value v,
                                           Value scratch, int64_t threads) {
  // Hillis-Steele inclusive scan: log2(threads) steps, two barriers each.
  Value tid = threadId(b);
  store(b, v, scratch, {tid});
  barrier(b);
  for (int64_t off = 1; off < threads; off *= 2) {
    Value has = cmp(b, arith::CmpIPredicate::uge, tid, cIdx(b, off));
    Value src = select(b, has, sub(b, tid, cIdx(b, off)), tid);
    Value x = select(b, has, load(b, scratch, {src}), cI32(b, 0));
    barrier(b);
    store(b, add(b, load(b, scratch, {tid}), x), scratch, {tid});
    barrier(b);
  }
  Value incl = load(b, scratch, {tid});
  Value total = load(b, scratch, {cIdx(b, threads - 1)});
  barrier(b);
  return {sub(b, incl, v), total};
}

} // namespace balancekv::gpukernels
