//===- BalanceKVToRuntimeCalls.cpp - ops => calls into the CUDA C API ----===//
//
// compress(k, v)            => call @balancekv_rt_compress_<t>(k, v, ck, cv, lw, ...)
// weighted_attention(q, ..) => call @balancekv_rt_weighted_decode_<t>(q, k, v, lw, ...)
// attention(q, k, v)        => the same call without log-weights
//
//===----------------------------------------------------------------------===//

#include "balancekv/Conversion/Passes.h"
#include "balancekv/Conversion/Utils/Buffers.h"

#include "balancekv/Dialect/BalanceKV/IR/BalanceKVOps.h"
#include "mlir/Dialect/Func/Utils/Utils.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/DialectConversion.h"

namespace balancekv {
#define GEN_PASS_DEF_BALANCEKVLOWERTORUNTIMECALLSPASS
#include "balancekv/Conversion/Passes.h.inc"
} // namespace balancekv

using namespace mlir;
using namespace balancekv;

namespace {

std::string typeSuffix(Type t) {
  if (t.isF16())
    return "f16";
  if (t.isBF16())
    return "bf16";
  return "f32";
}

/// memref<?x...x?xT, strided<[?, ...], offset: ?>>: one declaration serves
/// every shape and layout.
MemRefType anyMemRef(MLIRContext *ctx, int64_t rank, Type elem) {
  SmallVector<int64_t> dyn(rank, ShapedType::kDynamic);
  return MemRefType::get(
      dyn, elem,
      StridedLayoutAttr::get(ctx, ShapedType::kDynamic, dyn));
}

/// A tensor operand as a read-only buffer of the declaration's type.
Value asBuffer(ImplicitLocOpBuilder &b, Value tensor) {
  auto t = cast<RankedTensorType>(tensor.getType());
  return memref::CastOp::create(
      b, anyMemRef(b.getContext(), t.getRank(), t.getElementType()),
      exactBuffer(b, tensor));
}

/// A fresh buffer shaped like tensor type `t`, with `dims` for its dynamic
/// sizes (in order): `memref.alloc`, or `gpu.alloc` with `device` (the
/// kernels need device memory; see the pass's `device-alloc` option).
Value allocFor(ImplicitLocOpBuilder &b, RankedTensorType t,
               ArrayRef<Value> allDims, bool device) {
  SmallVector<Value> dyn;
  for (int64_t i = 0; i < t.getRank(); ++i)
    if (t.isDynamicDim(i))
      dyn.push_back(allDims[i]);
  auto type = MemRefType::get(t.getShape(), t.getElementType());
  if (device) {
    // Async form (what gpu-to-llvm lowers), waited for at once: the kernels
    // run on another stream.
    Type token = gpu::AsyncTokenType::get(b.getContext());
    Value start = gpu::WaitOp::create(b, token, ValueRange{}).getAsyncToken();
    auto alloc = gpu::AllocOp::create(b, type, token, ValueRange{start}, dyn,
                                      ValueRange{}, false);
    gpu::WaitOp::create(b, Type(), ValueRange{alloc.getAsyncToken()});
    return alloc.getMemref();
  }
  return memref::AllocOp::create(b, type, dyn);
}

Value erase(ImplicitLocOpBuilder &b, Value buf) {
  auto t = cast<MemRefType>(buf.getType());
  return memref::CastOp::create(
      b, anyMemRef(b.getContext(), t.getRank(), t.getElementType()), buf);
}

FailureOr<func::FuncOp> declare(Operation *op, StringRef name,
                                TypeRange params) {
  auto module = op->getParentOfType<ModuleOp>();
  OpBuilder b(module.getBodyRegion());
  auto fn = func::lookupOrCreateFnDecl(b, module, name, params,
                                       /*symbolTables=*/nullptr,
                                       b.getI32Type());
  if (succeeded(fn))
    (*fn)->setAttr("llvm.emit_c_interface", b.getUnitAttr());
  return fn;
}

/// What the CUDA kernels cover; anything else gets a diagnostic.
LogicalResult checkSupported(CompressOp op) {
  if (op.getMethod() != CompressionMethod::Balance &&
      op.getMethod() != CompressionMethod::Uniform)
    return op.emitOpError()
           << "method '" << stringifyCompressionMethod(op.getMethod())
           << "' has no CUDA kernel; lower it with --balancekv-lower-to-loops";
  return success();
}

template <typename OpTy> LogicalResult checkSupportedAttention(OpTy op) {
  auto qT = cast<RankedTensorType>(op.getQuery().getType());
  auto vT = cast<RankedTensorType>(op.getValue().getType());
  auto kT = cast<RankedTensorType>(op.getKey().getType());
  int64_t l = qT.getDimSize(2), dv = vT.getDimSize(3), d = kT.getDimSize(3);
  if (ShapedType::isDynamic(l) || l > 16)
    return op.emitOpError()
           << "the decode kernel takes at most 16 queries (a static L), got "
           << (ShapedType::isDynamic(l) ? std::string("?")
                                        : std::to_string(l));
  if (!(dv == 32 || dv == 64 || dv == 128 || dv == 256))
    return op.emitOpError()
           << "the decode kernel takes value dims 32, 64, 128 or 256";
  if (ShapedType::isDynamic(d) || d % 8 != 0 || d > 256)
    return op.emitOpError() << "the decode kernel takes a static head dim, a "
                               "multiple of 8 up to 256";
  Value kvLen = op.getKvLen();
  if (kvLen &&
      !cast<ShapedType>(kvLen.getType()).getElementType().isInteger(32))
    return op.emitOpError() << "the decode kernel takes kv_len as i32";
  return success();
}

struct CompressToCall : OpConversionPattern<CompressOp> {
  CompressToCall(MLIRContext *ctx, bool deviceAlloc)
      : OpConversionPattern(ctx), deviceAlloc(deviceAlloc) {}
  LogicalResult
  matchAndRewrite(CompressOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    Value key = op.getKey(), value = op.getValue();
    auto dim = [&](Value t, int64_t i) -> Value {
      return tensor::DimOp::create(b, t, i);
    };
    Value n = dim(key, 2);
    auto idx = [&](int64_t v) { return arith::ConstantIndexOp::create(b, v); };
    Value sink = arith::MinUIOp::create(b, idx(op.getSink()), n);
    Value recent = arith::MinUIOp::create(
        b, idx(op.getRecent()), arith::SubIOp::create(b, n, sink));
    Value middle = arith::SubIOp::create(
        b, arith::SubIOp::create(b, n, sink), recent);
    Value m = arith::AddIOp::create(
        b,
        arith::AddIOp::create(
            b, sink, arith::ShRUIOp::create(b, middle, idx(op.getRounds()))),
        recent);
    Value bDim = dim(key, 0), hDim = dim(key, 1);
    auto ckT = cast<RankedTensorType>(op.getCompressedKey().getType());
    auto cvT = cast<RankedTensorType>(op.getCompressedValue().getType());
    auto lwT = cast<RankedTensorType>(op.getLogWeights().getType());
    Value ck = allocFor(b, ckT, {bDim, hDim, m, dim(key, 3)}, deviceAlloc);
    Value cv = allocFor(b, cvT, {bDim, hDim, m, dim(value, 3)}, deviceAlloc);
    Value lw = allocFor(b, lwT, {bDim, hDim, m}, deviceAlloc);
    Type et = ckT.getElementType();
    SmallVector<Value> args{asBuffer(b, key), asBuffer(b, value),
                            erase(b, ck), erase(b, cv), erase(b, lw)};
    auto i64 = [&](int64_t v) {
      return arith::ConstantIntOp::create(b, b.getI64Type(), v).getResult();
    };
    auto f64 = [&](APFloat v) {
      return arith::ConstantFloatOp::create(b, b.getF64Type(), v).getResult();
    };
    args.append({arith::ConstantIntOp::create(b, b.getI32Type(),
                                              int64_t(op.getMethod())),
                 i64(op.getRounds()), i64(op.getBlockSize()), i64(op.getSink()),
                 i64(op.getRecent()), f64(op.getGamma()),
                 f64(op.getTemperature()), f64(op.getC0()), i64(op.getSeed()),
                 arith::ConstantFloatOp::create(
                     b, b.getF32Type(),
                     APFloat(op.getScale() ? op.getScale()->convertToFloat()
                                           : 0.0f))});
    auto fn = declare(op, "balancekv_rt_compress_" + typeSuffix(et),
                      TypeRange(ValueRange(args)));
    if (failed(fn))
      return op.emitOpError() << "conflicting runtime declaration";
    func::CallOp::create(b, *fn, args);
    rewriter.replaceOp(op, {resultTensor(b, ck, ckT), resultTensor(b, cv, cvT),
                            resultTensor(b, lw, lwT)});
    return success();
  }

  bool deviceAlloc;
};

template <typename OpTy>
struct AttentionToCall : OpConversionPattern<OpTy> {
  AttentionToCall(MLIRContext *ctx, bool deviceAlloc)
      : OpConversionPattern<OpTy>(ctx), deviceAlloc(deviceAlloc) {}
  LogicalResult
  matchAndRewrite(OpTy op, typename OpTy::Adaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto qT = cast<RankedTensorType>(op.getQuery().getType());
    Value kvLen = op.getKvLen();
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    auto resT = cast<RankedTensorType>(op.getResult().getType());
    SmallVector<Value> outDims;
    for (int64_t i = 0; i < 3; ++i)
      outDims.push_back(tensor::DimOp::create(b, op.getQuery(), i));
    outDims.push_back(tensor::DimOp::create(b, op.getValue(), 3));
    Value out = allocFor(b, resT, outDims, deviceAlloc);
    // Absent log-weights / kv_len: empty buffers and a flag.
    Value lw, hasLw;
    if constexpr (std::is_same_v<OpTy, WeightedAttentionOp>) {
      lw = asBuffer(b, op.getLogWeights());
      hasLw = arith::ConstantIntOp::create(b, b.getI32Type(), 1);
    } else {
      lw = erase(b, memref::AllocaOp::create(
                        b, MemRefType::get({0, 0, 0}, b.getF32Type())));
      hasLw = arith::ConstantIntOp::create(b, b.getI32Type(), 0);
    }
    Value lens = kvLen ? asBuffer(b, kvLen)
                       : erase(b, memref::AllocaOp::create(
                                      b, MemRefType::get({0}, b.getI32Type())));
    SmallVector<Value> args{
        asBuffer(b, op.getQuery()), asBuffer(b, op.getKey()),
        asBuffer(b, op.getValue()), lw, hasLw, lens,
        arith::ConstantIntOp::create(b, b.getI32Type(), kvLen ? 1 : 0),
        erase(b, out),
        arith::ConstantFloatOp::create(b, b.getF32Type(),
                                       APFloat(op.getEffectiveScale())),
        arith::ConstantIntOp::create(b, b.getI32Type(), op.getCausal() ? 1 : 0)};
    auto fn = declare(op,
                      "balancekv_rt_weighted_decode_" +
                          typeSuffix(qT.getElementType()),
                      TypeRange(ValueRange(args)));
    if (failed(fn))
      return op.emitOpError() << "conflicting runtime declaration";
    func::CallOp::create(b, *fn, args);
    rewriter.replaceOp(op, resultTensor(b, out, resT));
    return success();
  }

  bool deviceAlloc;
};

struct BalanceKVLowerToRuntimeCallsPass
    : balancekv::impl::BalanceKVLowerToRuntimeCallsPassBase<
          BalanceKVLowerToRuntimeCallsPass> {
  using Base::Base;
  void runOnOperation() override {
    bool ok = true;
    getOperation()->walk([&](Operation *op) {
      if (auto c = dyn_cast<CompressOp>(op))
        ok &= succeeded(checkSupported(c));
      else if (auto a = dyn_cast<AttentionOp>(op))
        ok &= succeeded(checkSupportedAttention(a));
      else if (auto w = dyn_cast<WeightedAttentionOp>(op))
        ok &= succeeded(checkSupportedAttention(w));
    });
    if (!ok)
      return signalPassFailure();
    ConversionTarget target(getContext());
    target.addIllegalDialect<BalanceKVDialect>();
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
    RewritePatternSet patterns(&getContext());
    patterns.add<CompressToCall, AttentionToCall<AttentionOp>,
                 AttentionToCall<WeightedAttentionOp>>(&getContext(),
                                                       deviceAlloc);
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
