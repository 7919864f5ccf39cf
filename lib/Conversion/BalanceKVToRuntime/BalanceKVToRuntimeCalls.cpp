//===- BalanceKVToRuntimeCalls.cpp - ops => calls into the CUDA C API ----===//
//
// compress(k, v)            => call @balancekv_rt_compress_<t>(k, v, ck, cv,
// lw, ...) weighted_attention(q, ..) => call
// @balancekv_rt_weighted_decode_<t>(q, k, v, lw, ...) attention(q, k, v) => the
// same call without log-weights
// ... whose key and value are gather_pages of one block table
//                           => the _paged_ calls on the pools and the table
//
//===----------------------------------------------------------------------===//

#include "balancekv/Conversion/BalanceKVToRuntime/BalanceKVToRuntime.h"
#include "balancekv/Conversion/Utils/Buffers.h"
#include "balancekv/Conversion/Utils/Layout.h"
#include "balancekv/Dialect/BalanceKV/IR/BalanceKVOps.h"
#include "balancekv/Runtime/BalanceKVRuntime.h"
#include "balancekv/Runtime/RuntimeCallABI.h"
#include "balancekv/Support/CompressedLayout.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Func/Utils/Utils.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/DialectConversion.h"

#include <optional>

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

Value constI32(ImplicitLocOpBuilder &b, int64_t v) {
  return arith::ConstantIntOp::create(b, b.getI32Type(), v);
}
Value constI64(ImplicitLocOpBuilder &b, int64_t v) {
  return arith::ConstantIntOp::create(b, b.getI64Type(), v);
}
/// A compression parameter as the operand of its ABI kind
/// (RuntimeCallABI.h: int64_t and uint64_t as I64, double F64, float F32).
Value paramConstant(ImplicitLocOpBuilder &b, int64_t v) { return constI64(b, v); }
Value paramConstant(ImplicitLocOpBuilder &b, uint64_t v) {
  return constI64(b, int64_t(v));
}
Value paramConstant(ImplicitLocOpBuilder &b, double v) {
  return arith::ConstantFloatOp::create(b, b.getF64Type(), APFloat(v));
}
Value paramConstant(ImplicitLocOpBuilder &b, float v) {
  return arith::ConstantFloatOp::create(b, b.getF32Type(), APFloat(v));
}

/// The kinds of RuntimeCallABI.h's tables.
enum class AbiKind { MEMREF1, MEMREF2, MEMREF3, MEMREF4, I32, I64, F32, F64 };

struct AbiParam {
  const char *name;
  AbiKind kind;
};

#define BALANCEKV_ABI_ENTRY(KIND, NAME) {#NAME, AbiKind::KIND},
constexpr AbiParam kCompressAbi[] = {
    BALANCEKV_RT_COMPRESS_PARAMS(BALANCEKV_ABI_ENTRY)};
constexpr AbiParam kWeightedDecodeAbi[] = {
    BALANCEKV_RT_WEIGHTED_DECODE_PARAMS(BALANCEKV_ABI_ENTRY)};
constexpr AbiParam kReferenceCompressAbi[] = {
    BALANCEKV_RT_REFERENCE_COMPRESS_PARAMS(BALANCEKV_ABI_ENTRY)};
constexpr AbiParam kCompressPagedAbi[] = {
    BALANCEKV_RT_COMPRESS_PAGED_PARAMS(BALANCEKV_ABI_ENTRY)};
constexpr AbiParam kWeightedDecodePagedAbi[] = {
    BALANCEKV_RT_WEIGHTED_DECODE_PAGED_PARAMS(BALANCEKV_ABI_ENTRY)};
#undef BALANCEKV_ABI_ENTRY

bool hasKind(Type t, AbiKind kind) {
  switch (kind) {
  case AbiKind::MEMREF1:
  case AbiKind::MEMREF2:
  case AbiKind::MEMREF3:
  case AbiKind::MEMREF4: {
    auto m = dyn_cast<MemRefType>(t);
    int64_t rank = kind == AbiKind::MEMREF1   ? 1
                   : kind == AbiKind::MEMREF2 ? 2
                   : kind == AbiKind::MEMREF3 ? 3
                                              : 4;
    return m && m.getRank() == rank;
  }
  case AbiKind::I32:
    return t.isInteger(32);
  case AbiKind::I64:
    return t.isInteger(64);
  case AbiKind::F32:
    return t.isF32();
  case AbiKind::F64:
    return t.isF64();
  }
  return false;
}

/// The call's operands in the order of `abi`, each checked against its kind:
/// the lowering names its values, the table orders them.
FailureOr<SmallVector<Value>> abiOperands(Operation *op, ArrayRef<AbiParam> abi,
                                          const llvm::StringMap<Value> &named) {
  SmallVector<Value> args;
  for (const AbiParam &p : abi) {
    Value v = named.lookup(p.name);
    if (!v || !hasKind(v.getType(), p.kind))
      return op->emitOpError()
             << "internal error: no operand of the right type for runtime-call "
                "parameter '"
             << p.name << "' (RuntimeCallABI.h)";
    args.push_back(v);
  }
  return args;
}

/// The C API's number of every method, spelled out (the two enums are not
/// assumed to agree): the CPU reference's entry takes them all.
balancekv_method referenceMethod(CompressionMethod m) {
  switch (m) {
  case CompressionMethod::Balance:
    return BALANCEKV_METHOD_BALANCE;
  case CompressionMethod::Uniform:
    return BALANCEKV_METHOD_UNIFORM;
  case CompressionMethod::Streaming:
    return BALANCEKV_METHOD_STREAMING;
  case CompressionMethod::SnapKV:
    return BALANCEKV_METHOD_SNAPKV;
  case CompressionMethod::KNorm:
    return BALANCEKV_METHOD_KNORM;
  case CompressionMethod::Adaptive:
    return BALANCEKV_METHOD_ADAPTIVE;
  }
  return BALANCEKV_METHOD_BALANCE;
}

/// The same for the methods with a CUDA kernel; none for the others.
std::optional<balancekv_method> runtimeMethod(CompressionMethod m) {
  if (m == CompressionMethod::Balance || m == CompressionMethod::Uniform)
    return referenceMethod(m);
  return std::nullopt;
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

/// Key and value that the CUDA kernels can read from their pages: both
/// gather_pages of one block table, pools of one layout and page size (a
/// power of two up to 1024, as the C API takes it).
struct PagedSource {
  GatherPagesOp key, value;
};
std::optional<PagedSource> pagedSource(Value key, Value value) {
  auto k = key.getDefiningOp<GatherPagesOp>();
  auto v = value.getDefiningOp<GatherPagesOp>();
  if (!k || !v || k.getBlockTable() != v.getBlockTable() ||
      k.getHeadsMajor() != v.getHeadsMajor() ||
      k.getPageSize() != v.getPageSize())
    return std::nullopt;
  const int64_t size = k.getPageSize();
  if (size > 1024 || (size & (size - 1)) != 0)
    return std::nullopt;
  return PagedSource{k, v};
}

/// Dimension `i` of cache `t` ([B, H, N, D]); of a gather_pages result read
/// from its pool and table, so that the gather itself can go away.
Value cacheDim(ImplicitLocOpBuilder &b, Value t, int64_t i) {
  auto g = t.getDefiningOp<GatherPagesOp>();
  auto type = cast<RankedTensorType>(t.getType());
  if (!type.isDynamicDim(i))
    return arith::ConstantIndexOp::create(b, type.getDimSize(i));
  if (!g)
    return tensor::DimOp::create(b, t, i);
  switch (i) {
  case 0:
    return tensor::DimOp::create(b, g.getBlockTable(), 0);
  case 1:
    return tensor::DimOp::create(b, g.getPool(), g.getHeadDim());
  case 2: // a dynamic N is the table's capacity
    return arith::MulIOp::create(
        b, tensor::DimOp::create(b, g.getBlockTable(), 1),
        arith::ConstantIndexOp::create(b, g.getPageSize()));
  default:
    return tensor::DimOp::create(b, g.getPool(), 3);
  }
}

/// The paged calls' cache operands (RuntimeCallABI.h's
/// BALANCEKV_RT_PAGED_CACHE_PARAMS); `tokens` is the cache length.
void addPagedOperands(ImplicitLocOpBuilder &b, PagedSource src, Value tokens,
                      llvm::StringMap<Value> &named) {
  named["key_pool"] = asBuffer(b, src.key.getPool());
  named["value_pool"] = asBuffer(b, src.value.getPool());
  named["block_table"] = asBuffer(b, src.key.getBlockTable());
  named["heads_major"] = constI32(b, src.key.getHeadsMajor() ? 1 : 0);
  named["tokens"] = arith::IndexCastOp::create(b, b.getI64Type(), tokens);
}

/// What the CUDA kernels cover; anything else gets a diagnostic.
LogicalResult checkSupported(CompressOp op) {
  if (!runtimeMethod(op.getMethod()))
    return op.emitOpError()
           << "method '" << stringifyCompressionMethod(op.getMethod())
           << "' has no CUDA kernel; lower it with --balancekv-lower-to-loops"
           << (op.getMethod() == CompressionMethod::Adaptive
                   ? " (which calls the CPU reference for it)"
                   : "");
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

/// compress => a call of the CUDA kernels' entry, or with `reference` of the
/// CPU reference's (every method, host buffers, the observation passed).
LogicalResult rewriteCompressToCall(CompressOp op, RewriterBase &rewriter,
                                    bool deviceAlloc, bool reference,
                                    std::optional<PagedSource> paged = {}) {
  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  Value key = op.getKey(), value = op.getValue();
  auto dim = [&](Value t, int64_t i) -> Value { return cacheDim(b, t, i); };
  const CompressParams params = op.getCompressParams();
  Value n = dim(key, 2);
  Value m =
      buildCompressedLayout(b, n, op.getSink(), op.getRecent(), op.getRounds())
          .length;
  if (op.getMethod() == CompressionMethod::Adaptive) {
    // CompressedLayout::adaptiveCapacity: min(n, factor * mean), the mean
    // being the budget (at most n) or the layout's length.
    Value mean =
        params.budget > 0
            ? arith::MinSIOp::create(
                  b, arith::ConstantIndexOp::create(b, params.budget), n)
            : m;
    m = arith::MinSIOp::create(
        b, n,
        arith::MulIOp::create(
            b, mean,
            arith::ConstantIndexOp::create(
                b, CompressedLayout::kAdaptiveCapacityFactor)));
  }
  Value bDim = dim(key, 0), hDim = dim(key, 1);
  auto ckT = cast<RankedTensorType>(op.getCompressedKey().getType());
  auto cvT = cast<RankedTensorType>(op.getCompressedValue().getType());
  auto lwT = cast<RankedTensorType>(op.getLogWeights().getType());
  Value ck = allocFor(b, ckT, {bDim, hDim, m, dim(key, 3)}, deviceAlloc);
  Value cv = allocFor(b, cvT, {bDim, hDim, m, dim(value, 3)}, deviceAlloc);
  Value lw = allocFor(b, lwT, {bDim, hDim, m}, deviceAlloc);
  llvm::StringMap<Value> named{
      {"compressed_key", erase(b, ck)},
      {"compressed_value", erase(b, cv)},
      {"log_weights", erase(b, lw)},
      {"method", constI32(b, reference ? referenceMethod(op.getMethod())
                                       : *runtimeMethod(op.getMethod()))}};
  if (paged) {
    addPagedOperands(b, *paged, n, named);
  } else {
    named["key"] = asBuffer(b, key);
    named["value"] = asBuffer(b, value);
  }
  if (reference) {
    auto keyT = cast<RankedTensorType>(key.getType());
    named["observation"] =
        op.getObservation()
            ? asBuffer(b, op.getObservation())
            : erase(b, memref::AllocaOp::create(
                           b, MemRefType::get({0, 0, 0, 0},
                                              keyT.getElementType())));
  }
#define BALANCEKV_PARAM_OPERAND(type, member, name, dflt, doc)                 \
  named[#name] = paramConstant(b, params.member);
  BALANCEKV_COMPRESS_PARAMS(BALANCEKV_PARAM_OPERAND)
#undef BALANCEKV_PARAM_OPERAND
  FailureOr<SmallVector<Value>> args =
      abiOperands(op,
                  reference ? ArrayRef<AbiParam>(kReferenceCompressAbi)
                  : paged   ? ArrayRef<AbiParam>(kCompressPagedAbi)
                            : ArrayRef<AbiParam>(kCompressAbi),
                  named);
  if (failed(args))
    return failure();
  Type et = ckT.getElementType();
  auto fn = declare(op,
                    (reference ? BALANCEKV_RT_REFERENCE_COMPRESS_PREFIX
                     : paged   ? BALANCEKV_RT_COMPRESS_PAGED_PREFIX
                               : BALANCEKV_RT_COMPRESS_PREFIX) +
                        typeSuffix(et),
                    TypeRange(ValueRange(*args)));
  if (failed(fn))
    return op.emitOpError() << "conflicting runtime declaration";
  func::CallOp::create(b, *fn, *args);
  rewriter.replaceOp(op, {resultTensor(b, ck, ckT), resultTensor(b, cv, cvT),
                          resultTensor(b, lw, lwT)});
  return success();
}

struct CompressToCall : OpConversionPattern<CompressOp> {
  CompressToCall(MLIRContext *ctx, bool deviceAlloc)
      : OpConversionPattern(ctx), deviceAlloc(deviceAlloc) {}
  LogicalResult
  matchAndRewrite(CompressOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    return rewriteCompressToCall(op, rewriter, deviceAlloc,
                                 /*reference=*/false);
  }

  bool deviceAlloc;
};

/// Method adaptive => the CPU reference's entry (its per-head plan search
/// has no loop form).
struct AdaptiveCompressToReferenceCall : OpRewritePattern<CompressOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(CompressOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getMethod() != CompressionMethod::Adaptive)
      return rewriter.notifyMatchFailure(op, "not method adaptive");
    return rewriteCompressToCall(op, rewriter, /*deviceAlloc=*/false,
                                 /*reference=*/true);
  }
};

/// attention / weighted_attention => the decode call (`paged`: the paged
/// one, on the pools key and value are gathered from).
template <typename OpTy>
LogicalResult rewriteAttentionToCall(OpTy op, RewriterBase &rewriter,
                                     bool deviceAlloc,
                                     std::optional<PagedSource> paged = {}) {
  auto qT = cast<RankedTensorType>(op.getQuery().getType());
  Value kvLen = op.getKvLen();
  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  auto resT = cast<RankedTensorType>(op.getResult().getType());
  SmallVector<Value> outDims;
  for (int64_t i = 0; i < 3; ++i)
    outDims.push_back(tensor::DimOp::create(b, op.getQuery(), i));
  outDims.push_back(cacheDim(b, op.getValue(), 3));
  Value out = allocFor(b, resT, outDims, deviceAlloc);
  // Absent log-weights / kv_len: empty buffers and a flag.
  Value lw, hasLw;
  if constexpr (std::is_same_v<OpTy, WeightedAttentionOp>) {
    lw = asBuffer(b, op.getLogWeights());
    hasLw = constI32(b, 1);
  } else {
    lw = erase(b, memref::AllocaOp::create(
                      b, MemRefType::get({0, 0, 0}, b.getF32Type())));
    hasLw = constI32(b, 0);
  }
  // Per-KV-head lengths [B, Hkv] travel flattened, flagged 2.
  const bool perHead =
      kvLen && cast<ShapedType>(kvLen.getType()).getRank() == 2;
  if (perHead)
    kvLen = tensor::CollapseShapeOp::create(
        b, kvLen, SmallVector<ReassociationIndices>{{0, 1}});
  Value lens = kvLen ? asBuffer(b, kvLen)
                     : erase(b, memref::AllocaOp::create(
                                    b, MemRefType::get({0}, b.getI32Type())));
  llvm::StringMap<Value> named{
      {"query", asBuffer(b, op.getQuery())},
      {"log_weights", lw},
      {"has_log_weights", hasLw},
      {"kv_len", lens},
      {"has_kv_len", constI32(b, perHead ? 2
                                 : kvLen ? 1
                                         : 0)},
      {"out", erase(b, out)},
      {"scale", arith::ConstantFloatOp::create(
                    b, b.getF32Type(), APFloat(op.getEffectiveScale()))},
      {"causal", constI32(b, op.getCausal() ? 1 : 0)}};
  if (paged) {
    addPagedOperands(b, *paged, cacheDim(b, op.getKey(), 2), named);
  } else {
    named["key"] = asBuffer(b, op.getKey());
    named["value"] = asBuffer(b, op.getValue());
  }
  FailureOr<SmallVector<Value>> args =
      abiOperands(op,
                  paged ? ArrayRef<AbiParam>(kWeightedDecodePagedAbi)
                        : ArrayRef<AbiParam>(kWeightedDecodeAbi),
                  named);
  if (failed(args))
    return failure();
  auto fn = declare(op,
                    (paged ? BALANCEKV_RT_WEIGHTED_DECODE_PAGED_PREFIX
                           : BALANCEKV_RT_WEIGHTED_DECODE_PREFIX) +
                        typeSuffix(qT.getElementType()),
                    TypeRange(ValueRange(*args)));
  if (failed(fn))
    return op.emitOpError() << "conflicting runtime declaration";
  func::CallOp::create(b, *fn, *args);
  rewriter.replaceOp(op, resultTensor(b, out, resT));
  return success();
}

template <typename OpTy> struct AttentionToCall : OpConversionPattern<OpTy> {
  AttentionToCall(MLIRContext *ctx, bool deviceAlloc)
      : OpConversionPattern<OpTy>(ctx), deviceAlloc(deviceAlloc) {}
  LogicalResult
  matchAndRewrite(OpTy op, typename OpTy::Adaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    return rewriteAttentionToCall(op, rewriter, deviceAlloc);
  }

  bool deviceAlloc;
};

/// compress / attention / weighted_attention reading a paged cache => the
/// paged calls (before the conversion, while the gathers are still there).
template <typename OpTy> struct PagedToCall : OpRewritePattern<OpTy> {
  PagedToCall(MLIRContext *ctx, bool deviceAlloc)
      : OpRewritePattern<OpTy>(ctx), deviceAlloc(deviceAlloc) {}
  LogicalResult matchAndRewrite(OpTy op,
                                PatternRewriter &rewriter) const override {
    std::optional<PagedSource> paged = pagedSource(op.getKey(), op.getValue());
    if (!paged)
      return rewriter.notifyMatchFailure(op, "key and value are not pages");
    if constexpr (std::is_same_v<OpTy, CompressOp>) {
      return rewriteCompressToCall(op, rewriter, deviceAlloc,
                                   /*reference=*/false, paged);
    } else {
      return rewriteAttentionToCall(op, rewriter, deviceAlloc, paged);
    }
  }

  bool deviceAlloc;
};

/// A gather_pages the kernels do not read in place: its gather.
struct GatherPagesToLoops : OpConversionPattern<GatherPagesOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(GatherPagesOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    FailureOr<SmallVector<Value>> gathered = op.decomposeOperation(rewriter);
    if (failed(gathered))
      return failure();
    rewriter.replaceOp(op, *gathered);
    return success();
  }
};

} // namespace

/// With device buffers a gather_pages the kernels do not read in place would
/// become a host loop over device memory: it must feed only the key and
/// value of compress / attention / weighted_attention that pagedSource
/// accepts.
static LogicalResult checkReadInPlace(GatherPagesOp op) {
  for (OpOperand &use : op->getUses()) {
    Operation *user = use.getOwner();
    std::optional<PagedSource> paged;
    bool keyOrValue = false;
    auto readsPages = [&](auto cacheOp) {
      keyOrValue = &use == &cacheOp.getKeyMutable() ||
                   &use == &cacheOp.getValueMutable();
      paged = pagedSource(cacheOp.getKey(), cacheOp.getValue());
    };
    if (auto c = dyn_cast<CompressOp>(user))
      readsPages(c);
    else if (auto a = dyn_cast<AttentionOp>(user))
      readsPages(a);
    else if (auto w = dyn_cast<WeightedAttentionOp>(user))
      readsPages(w);
    if (!keyOrValue || !paged)
      return op.emitOpError()
             << "is not read in place by the CUDA kernels (they read the key "
                "and value of compress, attention or weighted_attention "
                "gathered through one block table, with one pool layout and a "
                "power-of-two page size up to 1024), and with device buffers "
                "(device-alloc) there is no gather for it";
  }
  return success();
}

LogicalResult balancekv::checkRuntimeCallsSupported(Operation *op,
                                                    bool deviceAlloc) {
  if (auto g = dyn_cast<GatherPagesOp>(op))
    return deviceAlloc ? checkReadInPlace(g) : success();
  if (auto c = dyn_cast<CompressOp>(op))
    return checkSupported(c);
  if (auto a = dyn_cast<AttentionOp>(op))
    return checkSupportedAttention(a);
  if (auto w = dyn_cast<WeightedAttentionOp>(op))
    return checkSupportedAttention(w);
  return success();
}

void balancekv::populateBalanceKVToRuntimeCallsPatterns(
    RewritePatternSet &patterns, bool deviceAlloc) {
  patterns.add<CompressToCall, AttentionToCall<AttentionOp>,
               AttentionToCall<WeightedAttentionOp>>(patterns.getContext(),
                                                     deviceAlloc);
  patterns.add<GatherPagesToLoops>(patterns.getContext());
}

void balancekv::populateBalanceKVPagedToRuntimeCallsPatterns(
    RewritePatternSet &patterns, bool deviceAlloc) {
  patterns.add<PagedToCall<CompressOp>, PagedToCall<AttentionOp>,
               PagedToCall<WeightedAttentionOp>>(patterns.getContext(),
                                                 deviceAlloc);
}

void balancekv::populateAdaptiveCompressToReferenceCallPatterns(
    RewritePatternSet &patterns) {
  patterns.add<AdaptiveCompressToReferenceCall>(patterns.getContext());
}
