//===- MemRefShim.cpp - MLIR memref ABI entry points over the C API ------===//
//
// `--balancekv-lower-to-runtime-calls` emits calls to
// `balancekv_rt_{compress,weighted_decode}_<f16|bf16|f32>` with
// `llvm.emit_c_interface`; MLIR's LLVM lowering calls them as
// `_mlir_ciface_<name>(descriptor *...)`. These wrappers unpack the
// descriptors, take a stream-ordered workspace, and return the C API status.
// The buffers must be device memory.
//
//===----------------------------------------------------------------------===//

#include "balancekv/Runtime/BalanceKVRuntime.h"
#include "balancekv/Runtime/RuntimeCallShim.h"
#include "kernels/cuda/Launch.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstring>

namespace {

using balancekv::shim::MemRef;
using balancekv::shim::start;

balancekv_tensor view(const MemRef<4> *m, int elemSize) {
  return {start(m, elemSize),
          {m->strides[0], m->strides[1], m->strides[2], m->strides[3]}};
}

balancekv_mutable_tensor mutableView(const MemRef<4> *m, int elemSize) {
  return {const_cast<void *>(start(m, elemSize)),
          {m->strides[0], m->strides[1], m->strides[2], m->strides[3]}};
}

/// The kernels need device (or managed) memory; a host buffer would fault.
bool onDevice(const void *p) {
  cudaPointerAttributes a;
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    cudaGetLastError(); // not a CUDA pointer, or no device: clear the error
    return false;
  }
  return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

/// A buffer the kernels may use: device memory, or no element at all (an
/// empty cache or result, whose data pointer may be anything, even null).
template <int N> bool deviceOrEmpty(const MemRef<N> *m) {
  for (int i = 0; i < N; ++i)
    if (m->sizes[i] == 0)
      return true;
  return onDevice(m->data);
}

int32_t notOnDevice() {
  return balancekv::cuda::reportError(
      BALANCEKV_STATUS_INVALID_ARGUMENT,
      "balancekv_rt_*: the buffers must be device memory");
}

/// A workspace on the default stream for one call.
struct Workspace {
  void *ptr = nullptr;
  cudaError_t err = cudaSuccess;
  explicit Workspace(size_t bytes) {
    if (bytes)
      err = cudaMallocAsync(&ptr, bytes, nullptr);
  }
  ~Workspace() {
    if (ptr)
      cudaFreeAsync(ptr, nullptr);
  }
};

/// A paged cache's pools and block table (RuntimeCallABI.h's
/// BALANCEKV_RT_PAGED_CACHE_PARAMS) as the C API takes them.
struct PagedCache {
  balancekv_page_pool key, value;
  balancekv_block_table table;
  int64_t batch, heads, headDim, valueDim;
};

int32_t pagedCache(const MemRef<4> *keyPool, const MemRef<4> *valuePool,
                   const MemRef<2> *blockTable, int32_t headsMajor,
                   int64_t tokens, int elem, PagedCache &c) {
  // The C API's pools are strided [page, slot, head, dim].
  const int slot = headsMajor ? 2 : 1, head = headsMajor ? 1 : 2;
  auto pool = [&](const MemRef<4> *m) {
    return balancekv_page_pool{
        start(m, elem),
        {m->strides[0], m->strides[slot], m->strides[head], m->strides[3]}};
  };
  c.key = pool(keyPool);
  c.value = pool(valuePool);
  const int64_t pageSize = keyPool->sizes[slot];
  if (blockTable->strides[1] != 1 && blockTable->sizes[1] > 1)
    return balancekv::cuda::reportError(
        BALANCEKV_STATUS_UNSUPPORTED,
        "balancekv_rt_*_paged: the block table's rows must be contiguous");
  if (valuePool->sizes[slot] != pageSize ||
      valuePool->sizes[head] != keyPool->sizes[head] ||
      blockTable->sizes[1] * pageSize < tokens)
    return balancekv::cuda::reportError(
        BALANCEKV_STATUS_INVALID_ARGUMENT,
        "balancekv_rt_*_paged: the pools' page sizes or head counts differ, "
        "or the block table has fewer pages than the tokens need");
  // The table's row stride is its row length for the C API (a narrower
  // view was checked above against the tokens it must reach).
  c.table = {static_cast<const int32_t *>(start(blockTable, 4)),
             blockTable->sizes[1] > 1 ? blockTable->strides[0]
                                      : blockTable->sizes[1],
             pageSize};
  c.batch = blockTable->sizes[0];
  c.heads = keyPool->sizes[head];
  c.headDim = keyPool->sizes[3];
  c.valueDim = valuePool->sizes[3];
  if (!deviceOrEmpty(keyPool) || !deviceOrEmpty(valuePool) ||
      !deviceOrEmpty(blockTable))
    return notOnDevice();
  return BALANCEKV_STATUS_OK;
}

/// Both compress entries: `paged` null reads key and value, else the pages.
int32_t compressAny(balancekv_dtype dt, int elem, MemRef<4> *k, MemRef<4> *v,
                    const PagedCache *paged, int64_t n, MemRef<4> *ck,
                    MemRef<4> *cv, MemRef<3> *lw,
                    const balancekv_compress_params &p) {
  const int64_t batch = paged ? paged->batch : k->sizes[0],
                heads = paged ? paged->heads : k->sizes[1],
                d = paged ? paged->headDim : k->sizes[3],
                dv = paged ? paged->valueDim : v->sizes[3];
  size_t bytes = 0;
  if (balancekv_status s =
          balancekv_compress_workspace_size(batch, heads, n, &p, &bytes))
    return s;
  if (lw->strides[2] != 1 || lw->strides[1] != lw->sizes[2] ||
      lw->strides[0] != lw->sizes[1] * lw->sizes[2])
    return balancekv::cuda::reportError(
        BALANCEKV_STATUS_UNSUPPORTED,
        "balancekv_rt_compress: log-weights must be contiguous");
  if ((!paged && (!deviceOrEmpty(k) || !deviceOrEmpty(v))) ||
      !deviceOrEmpty(ck) || !deviceOrEmpty(cv) || !deviceOrEmpty(lw))
    return notOnDevice();
  Workspace ws(bytes);
  if (ws.err != cudaSuccess)
    return balancekv::cuda::reportError(BALANCEKV_STATUS_CUDA_ERROR,
                                        "cudaMallocAsync of the workspace");
  float *lwOut = static_cast<float *>(const_cast<void *>(start(lw, 4)));
  if (paged)
    return balancekv_compress_paged(
        dt, paged->key, paged->value, paged->table, batch, heads, n, d, dv, &p,
        mutableView(ck, elem), mutableView(cv, elem), lwOut, nullptr, ws.ptr,
        bytes, nullptr);
  return balancekv_compress(dt, view(k, elem), view(v, elem), batch, heads, n,
                            d, dv, &p, mutableView(ck, elem),
                            mutableView(cv, elem), lwOut, nullptr, ws.ptr,
                            bytes, nullptr);
}

/// The ABI's compression parameters (named as in CompressParams.h's
/// table, `method` first) as the C struct.
#define BALANCEKV_PARAM_FROM_ARG(type, member, name, dflt, doc)                \
  p.name = type(name);
#define BALANCEKV_PARAMS_FROM_ARGS(p)                                          \
  balancekv_compress_params p{};                                               \
  BALANCEKV_COMPRESS_PARAMS(BALANCEKV_PARAM_FROM_ARG)                          \
  static_assert(sizeof p.method == sizeof method, "C enums are int-sized");    \
  std::memcpy(&p.method, &method, sizeof method);
// (The C enum's bits as the caller passed them: the C API checks the value;
// an int outside the enum must not be converted to it.)

int32_t compress(balancekv_dtype dt, int elem,
                 BALANCEKV_ABI_PARAMS(BALANCEKV_RT_COMPRESS_PARAMS)) {
  BALANCEKV_PARAMS_FROM_ARGS(p)
  return compressAny(dt, elem, key, value, nullptr, key->sizes[2],
                     compressed_key, compressed_value, log_weights, p);
}

int32_t
compressPaged(balancekv_dtype dt, int elem,
              BALANCEKV_ABI_PARAMS(BALANCEKV_RT_COMPRESS_PAGED_PARAMS)) {
  BALANCEKV_PARAMS_FROM_ARGS(p)
  PagedCache paged;
  if (int32_t s = pagedCache(key_pool, value_pool, block_table, heads_major,
                             tokens, elem, paged))
    return s;
  return compressAny(dt, elem, nullptr, nullptr, &paged, tokens, compressed_key,
                     compressed_value, log_weights, p);
}

/// Both decode entries: `paged` null reads k and v, else the pages; m is
/// the cache length.
int32_t decodeAny(balancekv_dtype dt, int elem, MemRef<4> *q, MemRef<4> *k,
                  MemRef<4> *v, const PagedCache *paged, int64_t m,
                  BALANCEKV_ABI_PARAMS(BALANCEKV_RT_DECODE_TAIL_PARAMS)) {
  const int64_t heads = paged ? paged->heads : k->sizes[1],
                d = paged ? paged->headDim : k->sizes[3],
                dv = paged ? paged->valueDim : v->sizes[3];
  size_t bytes = 0;
  if (balancekv_status s = balancekv_weighted_decode_workspace_size(
          q->sizes[0], q->sizes[1], q->sizes[2], m, dv, &bytes))
    return s;
  if (!deviceOrEmpty(q) ||
      (!paged && (!deviceOrEmpty(k) || !deviceOrEmpty(v))) ||
      !deviceOrEmpty(out) || (has_log_weights && !deviceOrEmpty(log_weights)) ||
      (has_kv_len && !deviceOrEmpty(kv_len)))
    return notOnDevice();
  Workspace ws(bytes);
  if (ws.err != cudaSuccess)
    return BALANCEKV_STATUS_CUDA_ERROR;
  const float *lw = has_log_weights
                        ? static_cast<const float *>(start(log_weights, 4))
                        : nullptr;
  const int32_t *lens =
      has_kv_len ? static_cast<const int32_t *>(start(kv_len, 4)) : nullptr;
  if (paged) {
    auto entry = has_kv_len == 2
                     ? balancekv_weighted_decode_attention_paged_ragged
                     : balancekv_weighted_decode_attention_paged;
    return entry(dt, view(q, elem), paged->key, paged->value, paged->table, lw,
                 lens, q->sizes[0], q->sizes[1], heads, q->sizes[2], m, d, dv,
                 scale, causal, mutableView(out, elem), ws.ptr, bytes, nullptr);
  }
  auto entry = has_kv_len == 2 ? balancekv_weighted_decode_attention_ragged
                               : balancekv_weighted_decode_attention;
  return entry(dt, view(q, elem), view(k, elem), view(v, elem), lw, lens,
               q->sizes[0], q->sizes[1], heads, q->sizes[2], m, d, dv, scale,
               causal, mutableView(out, elem), ws.ptr, bytes, nullptr);
}

int32_t
decodePaged(balancekv_dtype dt, int elem,
            BALANCEKV_ABI_PARAMS(BALANCEKV_RT_WEIGHTED_DECODE_PAGED_PARAMS)) {
  PagedCache paged;
  if (int32_t s = pagedCache(key_pool, value_pool, block_table, heads_major,
                             tokens, elem, paged))
    return s;
  return decodeAny(dt, elem, query, nullptr, nullptr, &paged, tokens,
                   BALANCEKV_ABI_ARGS(BALANCEKV_RT_DECODE_TAIL_PARAMS));
}

int32_t decode(balancekv_dtype dt, int elem,
               BALANCEKV_ABI_PARAMS(BALANCEKV_RT_WEIGHTED_DECODE_PARAMS)) {
  return decodeAny(dt, elem, query, key, value, nullptr, key->sizes[2],
                   BALANCEKV_ABI_ARGS(BALANCEKV_RT_DECODE_TAIL_PARAMS));
}

/// Compiled code calling these entry points cannot return the status
/// through its tensor results (and our lowering discards it), so a failure
/// is also printed, with the C API's message, instead of passing silently.
int32_t loud(const char *entry, int32_t status) {
  if (status != BALANCEKV_STATUS_OK)
    std::fprintf(stderr, "%s: status %d: %s\n", entry, int(status),
                 balancekv_last_error());
  return status;
}

} // namespace

#define BALANCEKV_SHIM(SUFFIX, DTYPE, ELEM)                                    \
  extern "C" int32_t _mlir_ciface_balancekv_rt_compress_##SUFFIX(              \
      BALANCEKV_ABI_PARAMS(BALANCEKV_RT_COMPRESS_PARAMS)) {                    \
    return loud(BALANCEKV_RT_COMPRESS_PREFIX #SUFFIX,                          \
                compress(DTYPE, ELEM,                                          \
                         BALANCEKV_ABI_ARGS(BALANCEKV_RT_COMPRESS_PARAMS)));   \
  }                                                                            \
  extern "C" int32_t _mlir_ciface_balancekv_rt_weighted_decode_##SUFFIX(       \
      BALANCEKV_ABI_PARAMS(BALANCEKV_RT_WEIGHTED_DECODE_PARAMS)) {             \
    return loud(                                                               \
        BALANCEKV_RT_WEIGHTED_DECODE_PREFIX #SUFFIX,                           \
        decode(DTYPE, ELEM,                                                    \
               BALANCEKV_ABI_ARGS(BALANCEKV_RT_WEIGHTED_DECODE_PARAMS)));      \
  }

#define BALANCEKV_PAGED_SHIM(SUFFIX, DTYPE, ELEM)                              \
  extern "C" int32_t _mlir_ciface_balancekv_rt_compress_paged_##SUFFIX(        \
      BALANCEKV_ABI_PARAMS(BALANCEKV_RT_COMPRESS_PAGED_PARAMS)) {              \
    return loud(BALANCEKV_RT_COMPRESS_PAGED_PREFIX #SUFFIX,                    \
                compressPaged(                                                 \
                    DTYPE, ELEM,                                               \
                    BALANCEKV_ABI_ARGS(BALANCEKV_RT_COMPRESS_PAGED_PARAMS)));  \
  }                                                                            \
  extern "C" int32_t _mlir_ciface_balancekv_rt_weighted_decode_paged_##SUFFIX( \
      BALANCEKV_ABI_PARAMS(BALANCEKV_RT_WEIGHTED_DECODE_PAGED_PARAMS)) {       \
    return loud(BALANCEKV_RT_WEIGHTED_DECODE_PAGED_PREFIX #SUFFIX,             \
                decodePaged(DTYPE, ELEM,                                       \
                            BALANCEKV_ABI_ARGS(                                \
                                BALANCEKV_RT_WEIGHTED_DECODE_PAGED_PARAMS)));  \
  }

BALANCEKV_SHIM(f16, BALANCEKV_DTYPE_F16, 2)
BALANCEKV_SHIM(bf16, BALANCEKV_DTYPE_BF16, 2)
BALANCEKV_SHIM(f32, BALANCEKV_DTYPE_F32, 4)
BALANCEKV_PAGED_SHIM(f16, BALANCEKV_DTYPE_F16, 2)
BALANCEKV_PAGED_SHIM(bf16, BALANCEKV_DTYPE_BF16, 2)
BALANCEKV_PAGED_SHIM(f32, BALANCEKV_DTYPE_F32, 4)
