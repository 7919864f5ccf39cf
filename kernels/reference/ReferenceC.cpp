//===- ReferenceC.cpp - C entry point to the reference for tools/benches -===//
//
// Lets a benchmark in any language (ctypes, cffi) check GPU results against
// the CPU reference without C++ bindings, and holds the C API's parameter
// helpers (balancekv_compress_params_init, balancekv_compressed_length).
// Compiled into libbalancekv_cuda.so and the CPU-only libbalancekv_capi.so.
//
//===----------------------------------------------------------------------===//

#include "balancekv/Runtime/CompressParamsC.h"
#include "balancekv/Runtime/RuntimeCallShim.h"
#include "balancekv/Support/CompressedLayout.h"
#include "kernels/reference/Reference.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

// Exported even from libraries built with hidden visibility.
#define BALANCEKV_C_EXPORT __attribute__((visibility("default")))

using namespace balancekv;
using namespace balancekv::reference;

extern "C" {

/// Kept positions [B, H, M] (int32) and log-weights [B, H, M] of the
/// reference for contiguous host key/value. Returns 0, or -1 with
/// balancekv_reference_error() set.
BALANCEKV_C_EXPORT int balancekv_reference_compress(
    balancekv_dtype dtype, const void *key, const void *value, int64_t batch,
    int64_t heads, int64_t n, int64_t d, int64_t dv,
    const balancekv_compress_params *params, int32_t *outIndices,
    float *outLogWeights);
/// The same for the methods that read observation queries (snapkv,
/// adaptive; the others too): observation [B, Hq, Lobs, D] contiguous, the
/// queries of the cache's last Lobs positions. Outputs hold M =
/// balancekv_compressed_slots(n, params) slots per (batch, head);
/// out_lengths [B, H] (int32, may be null) receives how many are kept --
/// with adaptive, slots past a head's length have index -1 and log-weight
/// -inf (spec section 6); otherwise every head keeps M.
BALANCEKV_C_EXPORT int balancekv_reference_compress_observed(
    balancekv_dtype dtype, const void *key, const void *value,
    const void *observation, int64_t batch, int64_t heads, int64_t qHeads,
    int64_t obsLen, int64_t n, int64_t d, int64_t dv,
    const balancekv_compress_params *params, int32_t *outIndices,
    float *outLogWeights, int32_t *outLengths);
/// Slots per (batch, head) that compressing n tokens with `params` fills:
/// the spec layout's M, or with method adaptive the most one head may keep
/// (twice the mean budget); -1 for bad arguments.
BALANCEKV_C_EXPORT int64_t
balancekv_compressed_slots(int64_t n, const balancekv_compress_params *params);
BALANCEKV_C_EXPORT const char *balancekv_reference_error(void);
/// softmax(scale q kᵀ + log w) v of the reference (fp64 inside) for
/// contiguous host q [B, Hq, L, D], k [B, Hkv, N, D], v [B, Hkv, N, Dv],
/// optional log-weights [B, Hkv, N] (null: plain attention); out [B, Hq, L,
/// Dv] f32. scale 0: 1/sqrt(D). Returns 0, or -1 with the error set.
BALANCEKV_C_EXPORT int balancekv_reference_attention(
    balancekv_dtype dtype, const void *query, const void *key,
    const void *value, const float *logWeights, int64_t batch, int64_t qHeads,
    int64_t kvHeads, int64_t queries, int64_t n, int64_t d, int64_t dv,
    float scale, int causal, float *out);
BALANCEKV_C_EXPORT void
balancekv_compress_params_init(balancekv_compress_params *params);
BALANCEKV_C_EXPORT int64_t balancekv_compressed_length(int64_t n, int64_t sink,
                                                       int64_t recent,
                                                       int64_t rounds);
}

void balancekv_compress_params_init(balancekv_compress_params *p) {
  if (!p)
    return;
  *p = toC(CompressParams{}, BALANCEKV_METHOD_BALANCE);
}

int64_t balancekv_compressed_length(int64_t n, int64_t sink, int64_t recent,
                                    int64_t rounds) {
  if (n < 0 || sink < 0 || recent < 0 || rounds < 0)
    return -1;
  return CompressedLayout::compute(n, sink, recent, rounds).compressedLength();
}

static thread_local std::string referenceError;

const char *balancekv_reference_error(void) { return referenceError.c_str(); }

/// The reference's element type of a C API dtype; false (error set) for a
/// value outside the enum.
static bool toDType(const balancekv_dtype &dtype, DType &t) {
  switch (enumValue(dtype)) {
  case BALANCEKV_DTYPE_F16:
    t = DType::F16;
    return true;
  case BALANCEKV_DTYPE_BF16:
    t = DType::BF16;
    return true;
  case BALANCEKV_DTYPE_F32:
    t = DType::F32;
    return true;
  }
  referenceError = "dtype must be f16, bf16 or f32";
  return false;
}

namespace {
/// The C entries' failure: the message for balancekv_reference_error().
int failWith(std::string message) {
  referenceError = std::move(message);
  return -1;
}
} // namespace

/// The reference's method of a C API method number; false (error set) for
/// a value outside the enum.
static bool toMethod(const balancekv_method &method, Method &m) {
  switch (enumValue(method)) {
  case BALANCEKV_METHOD_BALANCE:
    m = Method::Balance;
    return true;
  case BALANCEKV_METHOD_UNIFORM:
    m = Method::Uniform;
    return true;
  case BALANCEKV_METHOD_STREAMING:
    m = Method::Streaming;
    return true;
  case BALANCEKV_METHOD_KNORM:
    m = Method::KNorm;
    return true;
  case BALANCEKV_METHOD_SNAPKV:
    m = Method::SnapKV;
    return true;
  case BALANCEKV_METHOD_ADAPTIVE:
    m = Method::Adaptive;
    return true;
  }
  referenceError =
      "method must be balance, uniform, streaming, knorm, snapkv or adaptive";
  return false;
}

int64_t balancekv_compressed_slots(int64_t n,
                                   const balancekv_compress_params *params) {
  if (!params || n < 0 || !fromC(*params).validate().empty())
    return -1;
  const CompressedLayout lay = CompressedLayout::compute(
      n, params->sink, params->recent, params->rounds);
  return enumValue(params->method) == BALANCEKV_METHOD_ADAPTIVE
             ? lay.adaptiveCapacity(n, params->budget)
             : lay.compressedLength();
}

/// Both compress entries. `dtype` by reference: a C caller may pass an int
/// outside the enum, which must not be loaded as the enum (toDType checks).
static int compressObserved(const balancekv_dtype &dtype, const void *key,
                            const void *value, const void *observation,
                            int64_t batch, int64_t heads, int64_t qHeads,
                            int64_t obsLen, int64_t n, int64_t d, int64_t dv,
                            const balancekv_compress_params *params,
                            int32_t *outIndices, float *outLogWeights,
                            int32_t *outLengths) {
  if (!params || !key || !value || !outIndices || !outLogWeights)
    return failWith("null argument");
  DType t;
  CompressOptions o;
  if (!toDType(dtype, t) || !toMethod(params->method, o.method))
    return -1;
  static_cast<CompressParams &>(o) = fromC(*params);
  TensorRef obs{observation, t, {batch, qHeads, obsLen, d}};
  if (observation && !obs.data)
    return failWith("null argument");
  Selection sel;
  Status st = compress({key, t, {batch, heads, n, d}},
                       {value, t, {batch, heads, n, dv}}, o, sel,
                       observation ? &obs : nullptr);
  if (!st.ok)
    return failWith(st.message);
  for (size_t i = 0; i < sel.indices.size(); ++i) {
    outIndices[i] = int32_t(sel.indices[i]);
    outLogWeights[i] = sel.logWeights[i];
  }
  if (outLengths)
    for (int64_t bh = 0; bh < batch * heads; ++bh)
      outLengths[bh] =
          int32_t(sel.lengths.empty() ? sel.m : sel.lengths[size_t(bh)]);
  return 0;
}

int balancekv_reference_compress_observed(
    balancekv_dtype dtype, const void *key, const void *value,
    const void *observation, int64_t batch, int64_t heads, int64_t qHeads,
    int64_t obsLen, int64_t n, int64_t d, int64_t dv,
    const balancekv_compress_params *params, int32_t *outIndices,
    float *outLogWeights, int32_t *outLengths) {
  return compressObserved(dtype, key, value, observation, batch, heads, qHeads,
                          obsLen, n, d, dv, params, outIndices, outLogWeights,
                          outLengths);
}

int balancekv_reference_compress(balancekv_dtype dtype, const void *key,
                                 const void *value, int64_t batch,
                                 int64_t heads, int64_t n, int64_t d,
                                 int64_t dv,
                                 const balancekv_compress_params *params,
                                 int32_t *outIndices, float *outLogWeights) {
  if (params && (enumValue(params->method) == BALANCEKV_METHOD_SNAPKV ||
                 enumValue(params->method) == BALANCEKV_METHOD_ADAPTIVE))
    return failWith("snapkv and adaptive read observation queries: call "
                    "balancekv_reference_compress_observed");
  return compressObserved(dtype, key, value, nullptr, batch, heads, 0, 0, n, d,
                          dv, params, outIndices, outLogWeights, nullptr);
}

int balancekv_reference_attention(balancekv_dtype dtype, const void *query,
                                  const void *key, const void *value,
                                  const float *logWeights, int64_t batch,
                                  int64_t qHeads, int64_t kvHeads,
                                  int64_t queries, int64_t n, int64_t d,
                                  int64_t dv, float scale, int causal,
                                  float *out) {
  if (!out || (!query && batch * qHeads * queries * d > 0) ||
      (!key && batch * kvHeads * n * d > 0) ||
      (!value && batch * kvHeads * n * dv > 0))
    return failWith("null argument");
  DType t;
  if (!toDType(dtype, t))
    return -1;
  AttentionOptions o;
  o.scale = scale;
  o.causal = causal != 0;
  std::vector<double> result;
  Status st = attention({query, t, {batch, qHeads, queries, d}},
                        {key, t, {batch, kvHeads, n, d}},
                        {value, t, {batch, kvHeads, n, dv}}, o, result,
                        logWeights);
  if (!st.ok)
    return failWith(st.message);
  for (size_t i = 0; i < result.size(); ++i)
    out[i] = float(result[i]);
  return 0;
}

//===----------------------------------------------------------------------===//
// balancekv_rt_reference_compress_<t>: RuntimeCallABI.h's CPU entry
//===----------------------------------------------------------------------===//

namespace {
using balancekv::shim::MemRef;

/// Element offsets of a strided memref's elements in row-major order.
template <int N> std::vector<int64_t> elementOffsets(const MemRef<N> *m) {
  int64_t count = 1;
  for (int d = 0; d < N; ++d)
    count *= m->sizes[d];
  std::vector<int64_t> offsets(size_t(std::max<int64_t>(count, 0)));
  for (int64_t i = 0; i < count; ++i) {
    int64_t rem = i, off = 0;
    for (int d = N - 1; d >= 0; --d) {
      off += (rem % m->sizes[d]) * m->strides[d];
      rem /= m->sizes[d];
    }
    offsets[size_t(i)] = off;
  }
  return offsets;
}

/// A strided memref's elements as a contiguous tensor.
Tensor contiguous(const MemRef<4> *m, DType t) {
  Tensor out(t, {m->sizes[0], m->sizes[1], m->sizes[2], m->sizes[3]});
  const int64_t es = dtypeSize(t);
  const char *base =
      static_cast<const char *>(balancekv::shim::start(m, int(es)));
  std::vector<int64_t> offsets = elementOffsets(m);
  for (size_t i = 0; i < offsets.size(); ++i)
    std::memcpy(out.bytes.data() + i * es, base + offsets[i] * es, size_t(es));
  return out;
}

/// Writes contiguous elements `src` into a strided memref.
template <int N> void store(MemRef<N> *m, const uint8_t *src, int64_t es) {
  char *base = m->data + m->offset * es;
  std::vector<int64_t> offsets = elementOffsets(m);
  for (size_t i = 0; i < offsets.size(); ++i)
    std::memcpy(base + offsets[i] * es, src + i * es, size_t(es));
}

int32_t referenceCompressEntry(
    const char *entry, balancekv_dtype dtype,
    BALANCEKV_ABI_PARAMS(BALANCEKV_RT_REFERENCE_COMPRESS_PARAMS)) {
  auto failed = [&](std::string message) {
    referenceError = std::move(message);
    std::fprintf(stderr, "%s: %s\n", entry, referenceError.c_str());
    return int32_t(BALANCEKV_STATUS_INVALID_ARGUMENT);
  };
  DType t;
  CompressOptions o;
  balancekv_method m;
  static_assert(sizeof m == sizeof method, "C enums are int-sized");
  std::memcpy(&m, &method, sizeof method);
  if (!toDType(dtype, t) || !toMethod(m, o.method))
    return failed(referenceError);
#define BALANCEKV_PARAM_FROM_ARG(type, member, name, dflt, doc)                \
  o.member = type(name);
  BALANCEKV_COMPRESS_PARAMS(BALANCEKV_PARAM_FROM_ARG)
#undef BALANCEKV_PARAM_FROM_ARG
  Tensor k = contiguous(key, t), v = contiguous(value, t);
  const bool observes =
      o.method == Method::SnapKV || o.method == Method::Adaptive;
  Tensor obs = observes ? contiguous(observation, t) : Tensor();
  TensorRef obsRef = obs.ref();
  Selection sel;
  Status st = compress(k.ref(), v.ref(), o, sel, observes ? &obsRef : nullptr);
  if (!st.ok)
    return failed(st.message);
  const int64_t want[3] = {sel.batch, sel.heads, sel.m};
  for (int d = 0; d < 3; ++d)
    if (compressed_key->sizes[d] != want[d] ||
        compressed_value->sizes[d] != want[d] ||
        log_weights->sizes[d] != want[d])
      return failed("the outputs must be [B, H, M, ...] with M = " +
                    std::to_string(sel.m));
  Tensor ck = gather(k.ref(), sel), cv = gather(v.ref(), sel);
  const int64_t es = dtypeSize(t);
  store(compressed_key, ck.bytes.data(), es);
  store(compressed_value, cv.bytes.data(), es);
  store(log_weights, reinterpret_cast<const uint8_t *>(sel.logWeights.data()),
        int64_t(sizeof(float)));
  return BALANCEKV_STATUS_OK;
}
} // namespace

#define BALANCEKV_REFERENCE_SHIM(SUFFIX, DTYPE)                                \
  extern "C" BALANCEKV_C_EXPORT int32_t                                        \
      _mlir_ciface_balancekv_rt_reference_compress_##SUFFIX(                   \
          BALANCEKV_ABI_PARAMS(BALANCEKV_RT_REFERENCE_COMPRESS_PARAMS)) {      \
    return referenceCompressEntry(                                             \
        BALANCEKV_RT_REFERENCE_COMPRESS_PREFIX #SUFFIX, DTYPE,                 \
        BALANCEKV_ABI_ARGS(BALANCEKV_RT_REFERENCE_COMPRESS_PARAMS));           \
  }
BALANCEKV_REFERENCE_SHIM(f16, BALANCEKV_DTYPE_F16)
BALANCEKV_REFERENCE_SHIM(bf16, BALANCEKV_DTYPE_BF16)
BALANCEKV_REFERENCE_SHIM(f32, BALANCEKV_DTYPE_F32)
