//===- Runtime.cpp - the C API: validation, workspace sizes, dispatch ----===//
//
// Every argument is checked here, on the host, before anything touches the
// GPU: a bad call returns BALANCEKV_STATUS_INVALID_ARGUMENT (or _UNSUPPORTED)
// with a message naming the argument, and never launches.
//
//===----------------------------------------------------------------------===//

#include "balancekv/Runtime/BalanceKVRuntime.h"
#include "balancekv/Runtime/CompressParamsC.h"
#include "balancekv/Support/CompressedLayout.h"
#include "kernels/cuda/Launch.h"

#include <cmath>
#include <cstring>
#include <initializer_list>
#include <string>

using namespace balancekv;
using namespace balancekv::cuda;

namespace {

thread_local std::string lastError;

balancekv_status fail(balancekv_status s, std::string msg) {
  lastError = std::move(msg);
  return s;
}
balancekv_status ok() {
  lastError.clear();
  return BALANCEKV_STATUS_OK;
}
#define BALANCEKV_CHECK(cond, msg)                                             \
  do {                                                                         \
    if (!(cond))                                                               \
      return fail(BALANCEKV_STATUS_INVALID_ARGUMENT, msg);                     \
  } while (0)

bool validDtype(const balancekv_dtype &t) {
  const int v = enumValue(t);
  return v == BALANCEKV_DTYPE_F16 || v == BALANCEKV_DTYPE_BF16 ||
         v == BALANCEKV_DTYPE_F32;
}

balancekv_status checkTensor(const void *data, const int64_t *strides,
                             const char *name, bool empty) {
  // A tensor with no element may have no storage (PyTorch hands over null
  // for empty tensors); nothing of it is ever read or written.
  if (empty)
    return BALANCEKV_STATUS_OK;
  if (!data)
    return fail(BALANCEKV_STATUS_INVALID_ARGUMENT,
                std::string(name) + " is null");
  if (strides[3] != 1)
    return fail(BALANCEKV_STATUS_UNSUPPORTED,
                std::string(name) + ": the innermost stride must be 1");
  for (int i = 0; i < 3; ++i)
    if (strides[i] < 0)
      return fail(BALANCEKV_STATUS_INVALID_ARGUMENT,
                  std::string(name) + ": negative stride");
  return BALANCEKV_STATUS_OK;
}

struct TensorArg {
  const void *data;
  const int64_t *strides;
  const char *name;
  bool empty; ///< has a zero-sized dimension
};

balancekv_status checkTensors(std::initializer_list<TensorArg> tensors) {
  for (const TensorArg &t : tensors)
    if (balancekv_status s = checkTensor(t.data, t.strides, t.name, t.empty))
      return s;
  return BALANCEKV_STATUS_OK;
}

balancekv_status checkWorkspace(size_t need, const void *workspace,
                                size_t bytes) {
  if (bytes < need || (need && !workspace))
    return fail(BALANCEKV_STATUS_WORKSPACE_TOO_SMALL,
                "workspace needs " + std::to_string(need) + " bytes, got " +
                    std::to_string(bytes));
  return BALANCEKV_STATUS_OK;
}

balancekv_status checkParams(const balancekv_compress_params *p) {
  BALANCEKV_CHECK(p, "params is null");
  const int method = enumValue(p->method);
  if (method == BALANCEKV_METHOD_STREAMING ||
      method == BALANCEKV_METHOD_KNORM || method == BALANCEKV_METHOD_SNAPKV ||
      method == BALANCEKV_METHOD_ADAPTIVE)
    return fail(BALANCEKV_STATUS_UNSUPPORTED,
                "params.method: the CUDA kernels run balance and uniform "
                "(streaming, knorm, snapkv and adaptive: the CPU reference)");
  BALANCEKV_CHECK(method == BALANCEKV_METHOD_BALANCE ||
                      method == BALANCEKV_METHOD_UNIFORM,
                  "params.method must be balance or uniform");
  if (std::string bad = fromC(*p).validate(); !bad.empty())
    return fail(BALANCEKV_STATUS_INVALID_ARGUMENT, "params." + bad);
  BALANCEKV_CHECK(p->budget == 0,
                  "params.budget is a parameter of method adaptive");
  // The kernels' one limit beyond the spec: a walk block fits one CTA.
  BALANCEKV_CHECK(p->block_size <= 128, "params.block_size must be <= 128");
  return BALANCEKV_STATUS_OK;
}

/// Checks a block table whose sequences reach `tokens` slots and sets the
/// kernels' `paging` from it (nothing to check when nothing is read).
balancekv_status checkBlockTable(const balancekv_block_table &t, int64_t tokens,
                                 bool empty, Paging &paging) {
  if (empty)
    return BALANCEKV_STATUS_OK;
  BALANCEKV_CHECK(t.block_table, "table.block_table is null");
  BALANCEKV_CHECK(t.page_size >= 1 && t.page_size <= 1024 &&
                      (t.page_size & (t.page_size - 1)) == 0,
                  "table.page_size must be a power of two in [1, 1024]");
  BALANCEKV_CHECK(t.max_pages >= 0 && t.max_pages <= INT32_MAX / t.page_size &&
                      t.max_pages * t.page_size >= tokens,
                  "table.max_pages * table.page_size must cover the " +
                      std::to_string(tokens) +
                      " tokens of a sequence (and fit in int32)");
  paging.table = t.block_table;
  paging.tableStride = t.max_pages;
  paging.pageShift = 0;
  while ((int64_t(1) << paging.pageShift) < t.page_size)
    ++paging.pageShift;
  return BALANCEKV_STATUS_OK;
}

/// A pool as the kernels read a paged cache: strides of [page, head, slot,
/// dim] (see Paging), so that index 1 is the head's as in a dense tensor.
balancekv_tensor poolView(const balancekv_page_pool &pool) {
  return {pool.data,
          {pool.strides[0], pool.strides[2], pool.strides[1], pool.strides[3]}};
}

} // namespace

balancekv_status balancekv::cuda::reportError(balancekv_status status,
                                              const char *message) {
  return fail(status, message);
}

extern "C" {

const char *balancekv_last_error(void) { return lastError.c_str(); }

balancekv_status balancekv_last_decode_launch(balancekv_decode_launch *out) {
  const balancekv::cuda::DecodeLaunch &l = balancekv::cuda::lastDecodeLaunch();
  if (!out)
    return fail(BALANCEKV_STATUS_INVALID_ARGUMENT, "out must not be null");
  if (!l.kernel)
    return fail(BALANCEKV_STATUS_INVALID_ARGUMENT,
                "no weighted decode has run on this thread");
  *out = {l.kernel, l.gridX,     l.gridX,          l.gridY,
          l.gridZ,  l.ctasPerSM, l.combine ? 1 : 0};
  return ok();
}

// balancekv_compress_params_init and balancekv_compressed_length: in
// kernels/reference/ReferenceC.cpp (also in the CPU-only library).

balancekv_status balancekv_compress_workspace_size(
    int64_t batch, int64_t heads, int64_t n,
    const balancekv_compress_params *params, size_t *bytes) {
  BALANCEKV_CHECK(bytes, "bytes is null");
  if (balancekv_status s = checkParams(params))
    return s;
  BALANCEKV_CHECK(batch >= 0 && heads >= 0 && n >= 0,
                  "batch, heads and n must be >= 0");
  auto layout =
      CompressedLayout::compute(n, params->sink, params->recent, params->rounds);
  *bytes = compressWorkspaceBytes(batch, heads, layout.middle);
  return ok();
}

} // extern "C"

/// Both compress entries (`table` null: dense key and value).
static balancekv_status
compress(const balancekv_dtype &dtype, balancekv_tensor key,
         balancekv_tensor value, const balancekv_block_table *table,
         int64_t batch, int64_t heads, int64_t n, int64_t headDim,
         int64_t valueDim, const balancekv_compress_params *params,
         balancekv_mutable_tensor outKey, balancekv_mutable_tensor outValue,
         float *outLogWeights, int32_t *outIndices, void *workspace,
         size_t workspaceBytes, void *stream) {
  BALANCEKV_CHECK(validDtype(dtype), "dtype must be f16, bf16 or f32");
  if (balancekv_status s = checkParams(params))
    return s;
  BALANCEKV_CHECK(batch >= 0 && heads >= 0 && n >= 0,
                  "batch, heads and n must be >= 0");
  BALANCEKV_CHECK(batch <= 65535 && heads <= 65535,
                  "batch and heads must be <= 65535 (16-bit Philox fields)");
  BALANCEKV_CHECK(n <= INT32_MAX, "n must fit in int32");
  BALANCEKV_CHECK(headDim >= 1 && headDim <= 256,
                  "head_dim must be in [1, 256]");
  BALANCEKV_CHECK(valueDim >= 1 && valueDim <= 256,
                  "value_dim must be in [1, 256]");
  auto layout =
      CompressedLayout::compute(n, params->sink, params->recent, params->rounds);
  // An empty cache (or batch) is valid input with an empty result.
  const bool noInput = batch == 0 || heads == 0 || n == 0;
  const bool noOutput =
      batch == 0 || heads == 0 || layout.compressedLength() == 0;
  if (balancekv_status s = checkTensors(
          {{key.data, key.strides, "key", noInput},
           {value.data, value.strides, "value", noInput},
           {outKey.data, outKey.strides, "out_key", noOutput},
           {outValue.data, outValue.strides, "out_value", noOutput}}))
    return s;
  BALANCEKV_CHECK(outLogWeights || noOutput, "out_log_weights is null");
  Paging paging;
  if (table)
    if (balancekv_status s = checkBlockTable(*table, n, noInput, paging))
      return s;
  if (noOutput)
    return ok(); // nothing to compute, no workspace needed
  if (balancekv_status s = checkWorkspace(
          compressWorkspaceBytes(batch, heads, layout.middle), workspace,
          workspaceBytes))
    return s;
  CompressArgs a{};
  a.dtype = dtype;
  a.key = key;
  a.value = value;
  a.batch = batch;
  a.heads = heads;
  a.n = n;
  a.d = headDim;
  a.dv = valueDim;
  a.params = *params;
  a.scale = params->scale > 0 ? params->scale
                              : float(1.0 / std::sqrt(double(headDim)));
  a.outKey = outKey;
  a.outValue = outValue;
  a.outLogWeights = outLogWeights;
  a.outIndices = outIndices;
  a.workspace = workspace;
  a.stream = stream;
  a.sink = layout.sink;
  a.recent = layout.recent;
  a.middle = layout.middle;
  a.keptMiddle = layout.keptMiddle;
  a.m = layout.compressedLength();
  a.paging = paging;
  if (const char *err = launchCompress(a))
    return fail(BALANCEKV_STATUS_CUDA_ERROR, std::string("CUDA: ") + err);
  return ok();
}

extern "C" {

balancekv_status balancekv_compress(
    balancekv_dtype dtype, balancekv_tensor key, balancekv_tensor value,
    int64_t batch, int64_t heads, int64_t n, int64_t headDim, int64_t valueDim,
    const balancekv_compress_params *params, balancekv_mutable_tensor outKey,
    balancekv_mutable_tensor outValue, float *outLogWeights,
    int32_t *outIndices, void *workspace, size_t workspaceBytes, void *stream) {
  return compress(dtype, key, value, nullptr, batch, heads, n, headDim,
                  valueDim, params, outKey, outValue, outLogWeights, outIndices,
                  workspace, workspaceBytes, stream);
}

balancekv_status balancekv_compress_paged(
    balancekv_dtype dtype, balancekv_page_pool key, balancekv_page_pool value,
    balancekv_block_table table, int64_t batch, int64_t heads, int64_t n,
    int64_t headDim, int64_t valueDim, const balancekv_compress_params *params,
    balancekv_mutable_tensor outKey, balancekv_mutable_tensor outValue,
    float *outLogWeights, int32_t *outIndices, void *workspace,
    size_t workspaceBytes, void *stream) {
  return compress(dtype, poolView(key), poolView(value), &table, batch, heads,
                  n, headDim, valueDim, params, outKey, outValue, outLogWeights,
                  outIndices, workspace, workspaceBytes, stream);
}

balancekv_status balancekv_weighted_decode_workspace_size(
    int64_t batch, int64_t qHeads, int64_t queryLen, int64_t kvLenMax,
    int64_t valueDim, size_t *bytes) {
  BALANCEKV_CHECK(bytes, "bytes is null");
  BALANCEKV_CHECK(batch >= 0 && qHeads >= 0 && queryLen >= 0 &&
                      kvLenMax >= 0 && valueDim >= 0,
                  "sizes must be >= 0");
  *bytes = decodeWorkspaceBytes(batch, qHeads, queryLen, kvLenMax, valueDim);
  return ok();
}

} // extern "C"

/// Both decode entries; `dtype` by reference (an int outside the enum must
/// not be loaded as the enum: validDtype checks it).
static balancekv_status
weightedDecode(const balancekv_dtype &dtype, balancekv_tensor query,
               balancekv_tensor key, balancekv_tensor value,
               const float *logWeights, const int32_t *kvLen, int64_t batch,
               int64_t qHeads, int64_t kvHeads, int64_t queryLen, int64_t m,
               int64_t headDim, int64_t valueDim, float scale, int causal,
               balancekv_mutable_tensor out, void *workspace,
               size_t workspaceBytes, void *stream, bool kvLenPerHead,
               const balancekv_block_table *table = nullptr) {
  BALANCEKV_CHECK(validDtype(dtype), "dtype must be f16, bf16 or f32");
  BALANCEKV_CHECK(batch >= 0 && m >= 0, "batch and m must be >= 0");
  BALANCEKV_CHECK(kvHeads >= 1 && qHeads >= 1 && qHeads % kvHeads == 0,
                  "q_heads must be a positive multiple of kv_heads");
  BALANCEKV_CHECK(qHeads / kvHeads * queryLen <= 1024,
                  "query rows per KV head (group * L) must be <= 1024");
  BALANCEKV_CHECK(queryLen >= 1 && queryLen <= 16,
                  "query_len must be in [1, 16]");
  BALANCEKV_CHECK(headDim >= 8 && headDim <= 256 && headDim % 8 == 0,
                  "head_dim must be a multiple of 8 in [8, 256]");
  if (!(valueDim == 32 || valueDim == 64 || valueDim == 128 ||
        valueDim == 256))
    return fail(BALANCEKV_STATUS_UNSUPPORTED,
                "value_dim must be 32, 64, 128 or 256");
  BALANCEKV_CHECK(std::isfinite(scale) && scale > 0,
                  "scale must be finite and > 0");
  // m = 0 is an empty (compressed) cache: every row sees no key and gets
  // zeros.
  if (balancekv_status s = checkTensors(
          {{query.data, query.strides, "query", batch == 0},
           {key.data, key.strides, "key", batch == 0 || m == 0},
           {value.data, value.strides, "value", batch == 0 || m == 0},
           {out.data, out.strides, "out", batch == 0}}))
    return s;
  Paging paging;
  if (table)
    if (balancekv_status s =
            checkBlockTable(*table, m, batch == 0 || m == 0, paging))
      return s;
  if (balancekv_status s = checkWorkspace(
          decodeWorkspaceBytes(batch, qHeads, queryLen, m, valueDim),
          workspace, workspaceBytes))
    return s;
  if (batch == 0)
    return ok();
  DecodeArgs a{dtype, query,     key,      value,        logWeights,
               kvLen, batch,     qHeads,   kvHeads,      queryLen,
               m,     headDim,   valueDim, scale,        causal != 0,
               out,   workspace, stream,   kvLenPerHead, paging};
  if (const char *err = launchWeightedDecode(a))
    return fail(BALANCEKV_STATUS_CUDA_ERROR, std::string("CUDA: ") + err);
  return ok();
}

extern "C" {

balancekv_status balancekv_weighted_decode_attention(
    balancekv_dtype dtype, balancekv_tensor query, balancekv_tensor key,
    balancekv_tensor value, const float *logWeights, const int32_t *kvLen,
    int64_t batch, int64_t qHeads, int64_t kvHeads, int64_t queryLen, int64_t m,
    int64_t headDim, int64_t valueDim, float scale, int causal,
    balancekv_mutable_tensor out, void *workspace, size_t workspaceBytes,
    void *stream) {
  return weightedDecode(dtype, query, key, value, logWeights, kvLen, batch,
                        qHeads, kvHeads, queryLen, m, headDim, valueDim, scale,
                        causal, out, workspace, workspaceBytes, stream,
                        /*kvLenPerHead=*/false);
}

balancekv_status balancekv_weighted_decode_attention_ragged(
    balancekv_dtype dtype, balancekv_tensor query, balancekv_tensor key,
    balancekv_tensor value, const float *logWeights, const int32_t *headLens,
    int64_t batch, int64_t qHeads, int64_t kvHeads, int64_t queryLen, int64_t m,
    int64_t headDim, int64_t valueDim, float scale, int causal,
    balancekv_mutable_tensor out, void *workspace, size_t workspaceBytes,
    void *stream) {
  BALANCEKV_CHECK(headLens || batch == 0,
                  "head_lens is null (pass kv_len to the plain entry)");
  return weightedDecode(dtype, query, key, value, logWeights, headLens, batch,
                        qHeads, kvHeads, queryLen, m, headDim, valueDim, scale,
                        causal, out, workspace, workspaceBytes, stream,
                        /*kvLenPerHead=*/true);
}

balancekv_status balancekv_weighted_decode_attention_paged(
    balancekv_dtype dtype, balancekv_tensor query, balancekv_page_pool key,
    balancekv_page_pool value, balancekv_block_table table,
    const float *logWeights, const int32_t *kvLen, int64_t batch,
    int64_t qHeads, int64_t kvHeads, int64_t queryLen, int64_t m,
    int64_t headDim, int64_t valueDim, float scale, int causal,
    balancekv_mutable_tensor out, void *workspace, size_t workspaceBytes,
    void *stream) {
  return weightedDecode(dtype, query, poolView(key), poolView(value),
                        logWeights, kvLen, batch, qHeads, kvHeads, queryLen, m,
                        headDim, valueDim, scale, causal, out, workspace,
                        workspaceBytes, stream, /*kvLenPerHead=*/false, &table);
}

balancekv_status balancekv_weighted_decode_attention_paged_ragged(
    balancekv_dtype dtype, balancekv_tensor query, balancekv_page_pool key,
    balancekv_page_pool value, balancekv_block_table table,
    const float *logWeights, const int32_t *headLens, int64_t batch,
    int64_t qHeads, int64_t kvHeads, int64_t queryLen, int64_t m,
    int64_t headDim, int64_t valueDim, float scale, int causal,
    balancekv_mutable_tensor out, void *workspace, size_t workspaceBytes,
    void *stream) {
  BALANCEKV_CHECK(headLens || batch == 0,
                  "head_lens is null (pass kv_len to the plain paged entry)");
  return weightedDecode(dtype, query, poolView(key), poolView(value),
                        logWeights, headLens, batch, qHeads, kvHeads, queryLen,
                        m, headDim, valueDim, scale, causal, out, workspace,
                        workspaceBytes, stream, /*kvLenPerHead=*/true, &table);
}

} // extern "C"
