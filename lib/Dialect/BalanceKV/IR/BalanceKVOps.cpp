//===- BalanceKVOps.cpp - BalanceKV op verifiers and type inference ------===//

#include "balancekv/Dialect/BalanceKV/IR/BalanceKVOps.h"
#include "balancekv/Support/CompressedLayout.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/OpImplementation.h"

#include <cmath>

using namespace mlir;
using namespace balancekv;


namespace {

std::optional<float> toFloat(std::optional<APFloat> v) {
  if (!v)
    return std::nullopt;
  return v->convertToFloat();
}

bool dimsAgree(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

std::string dimStr(int64_t d) {
  return ShapedType::isDynamic(d) ? std::string("?") : std::to_string(d);
}

/// Checks that `type` is a rank-`rank` tensor and names it in the error.
LogicalResult verifyRank(Operation *op, StringRef name, ShapedType type,
                         int64_t rank) {
  if (type.getRank() == rank)
    return success();
  return op->emitOpError() << "expects " << name << " of rank " << rank
                           << ", got rank " << type.getRank();
}

LogicalResult verifyDim(Operation *op, StringRef what, int64_t a,
                        StringRef aName, int64_t b, StringRef bName) {
  if (dimsAgree(a, b))
    return success();
  return op->emitOpError() << what << " mismatch: " << aName << " has "
                           << dimStr(a) << ", " << bName << " has "
                           << dimStr(b);
}

/// Hq must be a multiple of Hkv (GQA) when both are static.
LogicalResult verifyHeadGroups(Operation *op, int64_t hq, int64_t hkv) {
  if (ShapedType::isDynamic(hq) || ShapedType::isDynamic(hkv))
    return success();
  if (hkv > 0 && hq % hkv == 0)
    return success();
  return op->emitOpError() << "expects the query head count (" << hq
                           << ") to be a multiple of the KV head count ("
                           << hkv << ")";
}

LogicalResult verifyScale(Operation *op, std::optional<float> scale,
                          int64_t headDim) {
  if (scale) {
    if (!std::isfinite(*scale) || *scale <= 0.0f)
      return op->emitOpError()
             << "expects a finite, positive scale, got " << *scale;
    return success();
  }
  if (ShapedType::isDynamic(headDim))
    return op->emitOpError()
           << "needs an explicit scale when the head dim is dynamic";
  return success();
}

float effectiveScale(std::optional<float> scale, Value query) {
  if (scale)
    return *scale;
  int64_t d = cast<ShapedType>(query.getType()).getDimSize(3);
  return ShapedType::isDynamic(d) ? 0.0f
                                  : 1.0f / std::sqrt(static_cast<float>(d));
}

/// Key and value: rank 4, one element type, one batch, head count and
/// length.
LogicalResult verifyCache(Operation *op, Value keyV, Value valueV) {
  auto k = cast<RankedTensorType>(keyV.getType());
  auto v = cast<RankedTensorType>(valueV.getType());
  if (failed(verifyRank(op, "key", k, 4)) ||
      failed(verifyRank(op, "value", v, 4)))
    return failure();
  if (k.getElementType() != v.getElementType())
    return op->emitOpError()
           << "expects key and value to share one element type, got "
           << k.getElementType() << " and " << v.getElementType();
  if (failed(verifyDim(op, "batch size", k.getDimSize(0), "key",
                       v.getDimSize(0), "value")) ||
      failed(verifyDim(op, "KV head count", k.getDimSize(1), "key",
                       v.getDimSize(1), "value")) ||
      failed(verifyDim(op, "cache length", k.getDimSize(2), "key",
                       v.getDimSize(2), "value")))
    return failure();
  return success();
}

/// The parameters attribute an op being built or parsed will have (null:
/// all defaults, method balance). The parser infers before it moves
/// attr-dict entries into the properties and before it fills in the
/// defaults: do both on a copy.
template <typename OpTy>
CompressParamsAttr inferredParamsAttr(MLIRContext *context,
                                      std::optional<Location> location,
                                      typename OpTy::Adaptor adaptor) {
  typename OpTy::Properties props = adaptor.getProperties();
  if (DictionaryAttr attrs = adaptor.getAttributes()) {
    auto emitError = [&] {
      return mlir::emitError(location ? *location : UnknownLoc::get(context));
    };
    (void)OpTy::setPropertiesFromAttr(props, attrs, emitError);
  }
  return props.params;
}

/// The parameters an op being built or parsed will have.
template <typename OpTy>
CompressParams inferredParams(MLIRContext *context,
                              std::optional<Location> location,
                              typename OpTy::Adaptor adaptor) {
  CompressParamsAttr attr =
      inferredParamsAttr<OpTy>(context, location, adaptor);
  return attr ? attr.getValues() : CompressParams{};
}

/// The layout under `p` for a cache of `n` tokens; nullopt when `n` is
/// dynamic or the parameters are out of range (the verifier reports those).
std::optional<CompressedLayout> inferredLayout(int64_t n,
                                               const CompressParams &p) {
  if (ShapedType::isDynamic(n) || p.rounds < 0 || p.sink < 0 || p.recent < 0)
    return std::nullopt;
  return CompressedLayout::compute(n, p.sink, p.recent, p.rounds);
}

/// compress's (and gather_kept's) results for a [b, h, n] cache of keys
/// `k` and values `v`: compressed key, value and f32 log-weights over the M
/// of the layout (dynamic when n is).
void compressedResultTypes(
    MLIRContext *context, int64_t b, int64_t h, int64_t n, RankedTensorType k,
    RankedTensorType v, const CompressParams &params,
    SmallVectorImpl<Type> &types,
    CompressionMethod method = CompressionMethod::Balance) {
  int64_t m = ShapedType::kDynamic;
  if (auto layout = inferredLayout(n, params))
    m = method == CompressionMethod::Adaptive && params.budget >= 0
            ? layout->adaptiveCapacity(n, params.budget)
            : layout->compressedLength();
  types.push_back(
      RankedTensorType::get({b, h, m, k.getDimSize(3)}, k.getElementType()));
  types.push_back(
      RankedTensorType::get({b, h, m, v.getDimSize(3)}, v.getElementType()));
  types.push_back(RankedTensorType::get({b, h, m}, Float32Type::get(context)));
}

/// compress's and gather_kept's result types from their key and value
/// (rank 4): [B, H, N] from the key, where dynamic from the value too when
/// `dimsFromValueToo` (compress takes either).
LogicalResult
inferCompressedTypes(MLIRContext *context, std::optional<Location> location,
                     StringRef opName, Value key, Value value,
                     bool dimsFromValueToo, const CompressParams &params,
                     SmallVectorImpl<Type> &types,
                     CompressionMethod method = CompressionMethod::Balance) {
  auto k = cast<RankedTensorType>(key.getType());
  auto v = cast<RankedTensorType>(value.getType());
  if (k.getRank() != 4 || v.getRank() != 4)
    return emitOptionalError(location, "'", opName,
                             "' op expects key and value of rank 4, got ranks ",
                             k.getRank(), " and ", v.getRank());
  auto dim = [&](unsigned i) {
    int64_t d = k.getDimSize(i);
    return ShapedType::isDynamic(d) && dimsFromValueToo ? v.getDimSize(i) : d;
  };
  compressedResultTypes(context, dim(0), dim(1), dim(2), k, v, params, types,
                        method);
  return success();
}

/// Parameters in range (the scale by the attention ops' rule); rejects a
/// parameter left in the attribute dictionary, where it would be ignored.
LogicalResult verifyParams(Operation *op, CompressParams params,
                           int64_t headDim) {
  for (NamedAttribute attr : op->getDiscardableAttrs()) {
    bool isParam = attr.getName() == "method";
#define BALANCEKV_PARAM_NAME(type, member, name, dflt, doc)                    \
  isParam = isParam || attr.getName() == #name;
    BALANCEKV_COMPRESS_PARAMS(BALANCEKV_PARAM_NAME)
#undef BALANCEKV_PARAM_NAME
    if (isParam)
      return op->emitOpError()
             << "'" << attr.getName().getValue()
             << "' is a compression parameter: write it in the op's <...> "
                "list (#balancekv.compress_params)";
  }
  const float scale = params.scale;
  params.scale = 0;
  if (std::string bad = params.validate(); !bad.empty())
    return op->emitOpError() << bad;
  return verifyScale(op, scale != 0 ? std::optional<float>(scale) : std::nullopt,
                     headDim);
}

CompressParams paramsOf(CompressParamsAttr attr) {
  return attr ? attr.getValues() : CompressParams{};
}

/// The rules `attention` and `weighted_attention` share. `logWeights` is null
/// for plain attention.
LogicalResult verifyAttentionLike(Operation *op, Value queryV, Value keyV,
                                  Value valueV, Value logWeightsV,
                                  Value kvLenV, std::optional<float> scale,
                                  Value resultV) {
  auto q = cast<RankedTensorType>(queryV.getType());
  auto k = cast<RankedTensorType>(keyV.getType());
  auto v = cast<RankedTensorType>(valueV.getType());
  auto r = cast<RankedTensorType>(resultV.getType());
  if (failed(verifyRank(op, "query", q, 4)) ||
      failed(verifyRank(op, "key", k, 4)) ||
      failed(verifyRank(op, "value", v, 4)) ||
      failed(verifyRank(op, "result", r, 4)))
    return failure();
  Type et = q.getElementType();
  if (k.getElementType() != et || v.getElementType() != et ||
      r.getElementType() != et)
    return op->emitOpError()
           << "expects query, key, value and result to share one element "
              "type, got "
           << q.getElementType() << ", " << k.getElementType() << ", "
           << v.getElementType() << ", " << r.getElementType();
  if (failed(verifyDim(op, "batch size", q.getDimSize(0), "query",
                       k.getDimSize(0), "key")) ||
      failed(verifyDim(op, "batch size", k.getDimSize(0), "key",
                       v.getDimSize(0), "value")) ||
      failed(verifyDim(op, "KV head count", k.getDimSize(1), "key",
                       v.getDimSize(1), "value")) ||
      failed(verifyHeadGroups(op, q.getDimSize(1), k.getDimSize(1))) ||
      failed(verifyDim(op, "head dim", q.getDimSize(3), "query",
                       k.getDimSize(3), "key")) ||
      failed(verifyDim(op, "cache length", k.getDimSize(2), "key",
                       v.getDimSize(2), "value")))
    return failure();
  // result = [B, Hq, L, Dv]
  if (failed(verifyDim(op, "batch size", r.getDimSize(0), "result",
                       q.getDimSize(0), "query")) ||
      failed(verifyDim(op, "head count", r.getDimSize(1), "result",
                       q.getDimSize(1), "query")) ||
      failed(verifyDim(op, "query length", r.getDimSize(2), "result",
                       q.getDimSize(2), "query")) ||
      failed(verifyDim(op, "value dim", r.getDimSize(3), "result",
                       v.getDimSize(3), "value")))
    return failure();
  if (logWeightsV) {
    auto w = cast<RankedTensorType>(logWeightsV.getType());
    if (failed(verifyRank(op, "log_weights", w, 3)) ||
        failed(verifyDim(op, "batch size", w.getDimSize(0), "log_weights",
                         k.getDimSize(0), "key")) ||
        failed(verifyDim(op, "KV head count", w.getDimSize(1), "log_weights",
                         k.getDimSize(1), "key")) ||
        failed(verifyDim(op, "cache length", w.getDimSize(2), "log_weights",
                         k.getDimSize(2), "key")))
      return failure();
  }
  if (kvLenV) {
    // [B], or [B, Hkv]: one length per KV head (ragged heads).
    auto l = cast<RankedTensorType>(kvLenV.getType());
    if (l.getRank() != 1 && l.getRank() != 2)
      return op->emitOpError()
             << "expects kv_len of rank 1 ([B]) or 2 ([B, Hkv]), got rank "
             << l.getRank();
    if (failed(verifyDim(op, "batch size", l.getDimSize(0), "kv_len",
                         q.getDimSize(0), "query")) ||
        (l.getRank() == 2 &&
         failed(verifyDim(op, "KV head count", l.getDimSize(1), "kv_len",
                          k.getDimSize(1), "key"))))
      return failure();
  }
  return verifyScale(op, scale, q.getDimSize(3));
}

} // namespace

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

LogicalResult AttentionOp::verify() {
  return verifyAttentionLike(*this, getQuery(), getKey(), getValue(),
                             /*logWeights=*/Value(), getKvLen(), toFloat(getScale()),
                             getResult());
}

float AttentionOp::getEffectiveScale() {
  return effectiveScale(toFloat(getScale()), getQuery());
}

//===----------------------------------------------------------------------===//
// WeightedAttentionOp
//===----------------------------------------------------------------------===//

LogicalResult WeightedAttentionOp::verify() {
  return verifyAttentionLike(*this, getQuery(), getKey(), getValue(),
                             getLogWeights(), getKvLen(), toFloat(getScale()),
                             getResult());
}

float WeightedAttentionOp::getEffectiveScale() {
  return effectiveScale(toFloat(getScale()), getQuery());
}

//===----------------------------------------------------------------------===//
// CompressOp
//===----------------------------------------------------------------------===//

int64_t CompressOp::getCompressedLength(int64_t n) {
  const CompressedLayout layout =
      CompressedLayout::compute(n, getSink(), getRecent(), getRounds());
  return getMethod() == CompressionMethod::Adaptive
             ? layout.adaptiveCapacity(n, getCompressParams().budget)
             : layout.compressedLength();
}

float CompressOp::getEffectiveScale() {
  const float scale = getCompressParams().scale;
  return effectiveScale(scale != 0 ? std::optional<float>(scale) : std::nullopt,
                        getKey());
}

CompressParams CompressOp::getCompressParams() {
  return paramsOf(getParamsAttr());
}

CompressionMethod CompressOp::getMethod() {
  if (CompressParamsAttr attr = getParamsAttr())
    return attr.getMethod();
  return CompressionMethod::Balance;
}

void CompressOp::build(OpBuilder &b, OperationState &state, Value key,
                       Value value, Value observation,
                       CompressionMethod method,
                       const CompressParams &values) {
  CompressParamsAttr params;
  if (method != CompressionMethod::Balance || values != CompressParams{})
    params = CompressParamsAttr::get(b.getContext(), method, values);
  build(b, state, key, value, observation, params);
}

LogicalResult CompressOp::inferReturnTypes(
    MLIRContext *context, std::optional<Location> location, Adaptor adaptor,
    SmallVectorImpl<Type> &inferredReturnTypes) {
  CompressParamsAttr params =
      inferredParamsAttr<CompressOp>(context, location, adaptor);
  return inferCompressedTypes(
      context, location, getOperationName(), adaptor.getKey(),
      adaptor.getValue(), /*dimsFromValueToo=*/true,
      params ? params.getValues() : CompressParams{}, inferredReturnTypes,
      params ? params.getMethod() : CompressionMethod::Balance);
}

LogicalResult CompressOp::verify() {
  Operation *op = *this;
  auto k = cast<RankedTensorType>(getKey().getType());
  if (failed(verifyCache(op, getKey(), getValue())))
    return failure();

  // The scale is checked below by the attention ops' rule (if set, > 0).
  if (failed(verifyParams(op, getCompressParams(), k.getDimSize(3))))
    return failure();

  if (getCompressParams().budget != 0 &&
      getMethod() != CompressionMethod::Adaptive)
    return emitOpError() << "budget is a parameter of method 'adaptive', not '"
                         << stringifyCompressionMethod(getMethod()) << "'";
  const bool observes = getMethod() == CompressionMethod::SnapKV ||
                        getMethod() == CompressionMethod::Adaptive;
  Value obs = getObservation();
  if (observes && !obs)
    return emitOpError() << "method '"
                         << stringifyCompressionMethod(getMethod())
                         << "' needs the observation queries (`observe`)";
  if (!observes && obs)
    return emitOpError() << "takes observation queries only with methods "
                            "'snapkv' and 'adaptive', not '"
                         << stringifyCompressionMethod(getMethod()) << "'";
  if (obs) {
    auto o = cast<RankedTensorType>(obs.getType());
    if (failed(verifyRank(op, "observation", o, 4)))
      return failure();
    if (o.getElementType() != k.getElementType())
      return emitOpError() << "expects observation and key to share one "
                              "element type, got "
                           << o.getElementType() << " and "
                           << k.getElementType();
    if (failed(verifyDim(op, "batch size", o.getDimSize(0), "observation",
                         k.getDimSize(0), "key")) ||
        failed(verifyHeadGroups(op, o.getDimSize(1), k.getDimSize(1))) ||
        failed(verifyDim(op, "head dim", o.getDimSize(3), "observation",
                         k.getDimSize(3), "key")))
      return failure();
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Compression stages
//===----------------------------------------------------------------------===//

namespace {

/// [B, Hkv, L_0] of `t` for a cache shaped `key` under `p`.
RankedTensorType stateType(MLIRContext *ctx, RankedTensorType key,
                           const CompressParams &p, Type elem) {
  int64_t l0 = ShapedType::kDynamic;
  if (auto layout = inferredLayout(key.getDimSize(2), p))
    l0 = layout->middle;
  return RankedTensorType::get({key.getDimSize(0), key.getDimSize(1), l0},
                               elem);
}

/// The state tensors of a stage: rank 3, one shape, [B, Hkv] of the cache
/// and (when both are static) L_0 of the layout.
LogicalResult verifyState(Operation *op, ArrayRef<std::pair<StringRef, Value>> state,
                          RankedTensorType key, const CompressParams *params) {
  auto first = cast<RankedTensorType>(state.front().second.getType());
  for (auto [name, v] : state) {
    auto t = cast<RankedTensorType>(v.getType());
    if (failed(verifyRank(op, name, t, 3)))
      return failure();
    if (failed(mlir::verifyCompatibleShape(t.getShape(), first.getShape())))
      return op->emitOpError()
             << "expects " << state.front().first << " and " << name
             << " of one shape, got " << first << " and " << t;
  }
  if (!key)
    return success();
  if (failed(verifyDim(op, "batch size", key.getDimSize(0), "key",
                       first.getDimSize(0), state.front().first)) ||
      failed(verifyDim(op, "KV head count", key.getDimSize(1), "key",
                       first.getDimSize(1), state.front().first)))
    return failure();
  if (auto layout = inferredLayout(key.getDimSize(2), *params);
      layout && !ShapedType::isDynamic(first.getDimSize(2)) &&
      first.getDimSize(2) != layout->middle)
    return op->emitOpError()
           << "expects " << state.front().first << " to hold the "
           << layout->middle << " middle tokens of the cache (L_0), got "
           << first.getDimSize(2);
  return success();
}

/// A stage that reads the cache and the state: the cache, the parameters,
/// then the state against both.
LogicalResult verifyCacheStage(Operation *op, Value key, Value value,
                               Value tokens, Value doublings,
                               const CompressParams &p) {
  auto k = cast<RankedTensorType>(key.getType());
  if (failed(verifyCache(op, key, value)) ||
      failed(verifyParams(op, p, k.getDimSize(3))))
    return failure();
  return verifyState(op, {{"tokens", tokens}, {"doublings", doublings}}, k,
                     &p);
}

} // namespace

CompressParams BalanceInitOp::getCompressParams() {
  return paramsOf(getParamsAttr());
}

LogicalResult BalanceInitOp::inferReturnTypes(
    MLIRContext *context, std::optional<Location> location, Adaptor adaptor,
    SmallVectorImpl<Type> &inferredReturnTypes) {
  auto k = cast<RankedTensorType>(adaptor.getKey().getType());
  if (k.getRank() != 4)
    return emitOptionalError(location, "'balancekv.balance_init' op expects "
                                       "key of rank 4, got rank ",
                             k.getRank());
  Type state = stateType(context, k,
                         inferredParams<BalanceInitOp>(context, location,
                                                       adaptor),
                         IntegerType::get(context, 32));
  inferredReturnTypes.assign({state, state});
  return success();
}

LogicalResult BalanceInitOp::verify() {
  auto k = cast<RankedTensorType>(getKey().getType());
  return verifyParams(*this, getCompressParams(), k.getDimSize(3));
}

CompressParams BalanceWalkOp::getCompressParams() {
  return paramsOf(getParamsAttr());
}

double BalanceWalkOp::getKernelScale() {
  if (float s = getCompressParams().scale; s != 0)
    return s;
  int64_t d = cast<ShapedType>(getKey().getType()).getDimSize(3);
  return 1.0 / std::sqrt(double(d));
}

LogicalResult BalanceWalkOp::inferReturnTypes(
    MLIRContext *context, std::optional<Location> location, Adaptor adaptor,
    SmallVectorImpl<Type> &inferredReturnTypes) {
  auto t = cast<RankedTensorType>(adaptor.getTokens().getType());
  inferredReturnTypes.push_back(
      RankedTensorType::get(t.getShape(), IntegerType::get(context, 8)));
  return success();
}

LogicalResult BalanceWalkOp::verify() {
  return verifyCacheStage(*this, getKey(), getValue(), getTokens(),
                          getDoublings(), getCompressParams());
}

LogicalResult BalanceHalveOp::verify() {
  return verifyState(*this,
                     {{"tokens", getTokens()},
                      {"doublings", getDoublings()},
                      {"signs", getSigns()}},
                     nullptr, nullptr);
}

CompressParams GatherKeptOp::getCompressParams() {
  return paramsOf(getParamsAttr());
}

LogicalResult GatherKeptOp::inferReturnTypes(
    MLIRContext *context, std::optional<Location> location, Adaptor adaptor,
    SmallVectorImpl<Type> &inferredReturnTypes) {
  return inferCompressedTypes(
      context, location, getOperationName(), adaptor.getKey(),
      adaptor.getValue(), /*dimsFromValueToo=*/false,
      inferredParams<GatherKeptOp>(context, location, adaptor),
      inferredReturnTypes);
}

LogicalResult GatherKeptOp::verify() {
  return verifyCacheStage(*this, getKey(), getValue(), getTokens(),
                          getDoublings(), getCompressParams());
}

//===----------------------------------------------------------------------===//
// GatherPagesOp
//===----------------------------------------------------------------------===//

int64_t GatherPagesOp::getPageSize() {
  return cast<RankedTensorType>(getPool().getType()).getDimSize(getSlotDim());
}

LogicalResult GatherPagesOp::verify() {
  auto pool = cast<RankedTensorType>(getPool().getType());
  auto table = cast<RankedTensorType>(getBlockTable().getType());
  auto result = cast<RankedTensorType>(getResult().getType());
  if (failed(verifyRank(*this, "pool", pool, 4)) ||
      failed(verifyRank(*this, "block_table", table, 2)) ||
      failed(verifyRank(*this, "result", result, 4)))
    return failure();
  if (pool.getElementType() != result.getElementType())
    return emitOpError() << "expects the result to have the pool's element "
                            "type, got "
                         << result.getElementType() << " and "
                         << pool.getElementType();
  const int64_t pageSize = getPageSize();
  if (ShapedType::isDynamic(pageSize) || pageSize < 1)
    return emitOpError() << "expects a static page size (pool dim "
                         << getSlotDim() << "), got " << dimStr(pageSize);
  if (failed(verifyDim(*this, "batch size", table.getDimSize(0), "block_table",
                       result.getDimSize(0), "result")) ||
      failed(verifyDim(*this, "KV head count", pool.getDimSize(getHeadDim()),
                       "pool", result.getDimSize(1), "result")) ||
      failed(verifyDim(*this, "head dim", pool.getDimSize(3), "pool",
                       result.getDimSize(3), "result")))
    return failure();
  const int64_t maxPages = table.getDimSize(1), n = result.getDimSize(2);
  if (!ShapedType::isDynamic(maxPages) && !ShapedType::isDynamic(n) &&
      n > maxPages * pageSize)
    return emitOpError() << "expects at most max_pages * page size = "
                         << maxPages << " * " << pageSize
                         << " tokens a sequence, got " << n;
  return success();
}

#define GET_OP_CLASSES
#include "balancekv/Dialect/BalanceKV/IR/BalanceKVOps.cpp.inc"
