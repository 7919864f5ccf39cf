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

int32_t compress(balancekv_dtype dt, int elem,
                 BALANCEKV_ABI_PARAMS(BALANCEKV_RT_COMPRESS_PARAMS)) {
  MemRef<4> *k = key, *v = value, *ck = compressed_key, *cv = compressed_value;
  MemRef<3> *lw = log_weights;
  balancekv_compress_params p{};
#define BALANCEKV_PARAM_FROM_ARG(type, member, name, dflt, doc) p.name = type(name);
  BALANCEKV_COMPRESS_PARAMS(BALANCEKV_PARAM_FROM_ARG)
#undef BALANCEKV_PARAM_FROM_ARG
  // The C enum's bits as the caller passed them (the C API checks the value;
  // an int outside the enum must not be converted to it).
  static_assert(sizeof p.method == sizeof method, "C enums are int-sized");
  std::memcpy(&p.method, &method, sizeof method);
  size_t bytes = 0;
  if (balancekv_status s = balancekv_compress_workspace_size(
          k->sizes[0], k->sizes[1], k->sizes[2], &p, &bytes))
    return s;
  if (lw->strides[2] != 1 || lw->strides[1] != lw->sizes[2] ||
      lw->strides[0] != lw->sizes[1] * lw->sizes[2])
    return balancekv::cuda::reportError(
        BALANCEKV_STATUS_UNSUPPORTED,
        "balancekv_rt_compress: log-weights must be contiguous");
  if (!deviceOrEmpty(k) || !deviceOrEmpty(v) || !deviceOrEmpty(ck) ||
      !deviceOrEmpty(cv) || !deviceOrEmpty(lw))
    return notOnDevice();
  Workspace ws(bytes);
  if (ws.err != cudaSuccess)
    return balancekv::cuda::reportError(BALANCEKV_STATUS_CUDA_ERROR,
                                        "cudaMallocAsync of the workspace");
  return balancekv_compress(
      dt, view(k, elem), view(v, elem), k->sizes[0], k->sizes[1], k->sizes[2],
      k->sizes[3], v->sizes[3], &p, mutableView(ck, elem),
      mutableView(cv, elem),
      static_cast<float *>(const_cast<void *>(start(lw, 4))), nullptr, ws.ptr,
      bytes, nullptr);
}

int32_t decode(balancekv_dtype dt, int elem,
               BALANCEKV_ABI_PARAMS(BALANCEKV_RT_WEIGHTED_DECODE_PARAMS)) {
  MemRef<4> *q = query, *k = key, *v = value;
  MemRef<3> *lw = log_weights;
  MemRef<1> *lens = kv_len;
  const int32_t hasLw = has_log_weights, hasLens = has_kv_len;
  size_t bytes = 0;
  if (balancekv_status s = balancekv_weighted_decode_workspace_size(
          q->sizes[0], q->sizes[1], q->sizes[2], k->sizes[2], v->sizes[3],
          &bytes))
    return s;
  if (!deviceOrEmpty(q) || !deviceOrEmpty(k) || !deviceOrEmpty(v) ||
      !deviceOrEmpty(out) || (hasLw && !deviceOrEmpty(lw)) ||
      (hasLens && !deviceOrEmpty(lens)))
    return notOnDevice();
  Workspace ws(bytes);
  if (ws.err != cudaSuccess)
    return BALANCEKV_STATUS_CUDA_ERROR;
  auto entry = hasLens == 2 ? balancekv_weighted_decode_attention_ragged
                            : balancekv_weighted_decode_attention;
  return entry(
      dt, view(q, elem), view(k, elem), view(v, elem),
      hasLw ? static_cast<const float *>(start(lw, 4)) : nullptr,
      hasLens ? static_cast<const int32_t *>(start(lens, 4)) : nullptr,
      q->sizes[0], q->sizes[1], k->sizes[1], q->sizes[2], k->sizes[2],
      k->sizes[3], v->sizes[3], scale, causal, mutableView(out, elem), ws.ptr,
      bytes, nullptr);
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

BALANCEKV_SHIM(f16, BALANCEKV_DTYPE_F16, 2)
BALANCEKV_SHIM(bf16, BALANCEKV_DTYPE_BF16, 2)
BALANCEKV_SHIM(f32, BALANCEKV_DTYPE_F32, 4)
