//===- Launch.h - internal launchers of the CUDA kernels --------*- C++ -*-===//
//
// Called by Runtime.cpp after argument validation; they only launch.
//
//===----------------------------------------------------------------------===//
#ifndef BALANCEKV_KERNELS_CUDA_LAUNCH_H
#define BALANCEKV_KERNELS_CUDA_LAUNCH_H

#include "balancekv/Runtime/BalanceKVRuntime.h"

#include <cstddef>
#include <cstdint>

namespace balancekv::cuda {

/// A paged cache's block table. With `table` null the cache tensor is dense
/// and its strides are those of [b, h, s, d]; otherwise they are the pool's
/// [page, h, slot, d] and token j of sequence b lives in slot j & (page
/// size - 1) of page table[b * tableStride + (j >> pageShift)].
struct Paging {
  const int32_t *table = nullptr;
  int64_t tableStride = 0; ///< the block table's row length (max pages)
  int pageShift = 0;       ///< log2 of the page size
};

/// Everything compress needs, validated.
struct CompressArgs {
  balancekv_dtype dtype;
  balancekv_tensor key, value;
  int64_t batch, heads, n, d, dv;
  balancekv_compress_params params;
  float scale; // effective
  balancekv_mutable_tensor outKey, outValue;
  float *outLogWeights;
  int32_t *outIndices;
  void *workspace;
  void *stream;
  // Layout (spec section 2).
  int64_t sink, recent, middle, keptMiddle, m;
  Paging paging; ///< key and value read through a block table
};

/// Workspace bytes for compress with these sizes.
size_t compressWorkspaceBytes(int64_t batch, int64_t heads, int64_t middle);

/// Launches the rounds, selection and gather. Returns a CUDA error string,
/// or null on success.
const char *launchCompress(const CompressArgs &args);

struct DecodeArgs {
  balancekv_dtype dtype;
  balancekv_tensor query, key, value;
  const float *logWeights;
  const int32_t *kvLen;
  int64_t batch, qHeads, kvHeads, queryLen, m, d, dv;
  float scale;
  bool causal;
  balancekv_mutable_tensor out;
  void *workspace;
  void *stream;
  bool kvLenPerHead = false; ///< kvLen is [B, Hkv] (ragged heads), not [B]
  Paging paging;             ///< key and value read through a block table
};

size_t decodeWorkspaceBytes(int64_t batch, int64_t qHeads, int64_t queryLen,
                            int64_t m, int64_t dv);

const char *launchWeightedDecode(const DecodeArgs &args);

/// What launchWeightedDecode last launched on this thread (kernel null
/// before the first); the grid's x is the splits of each head's keys.
struct DecodeLaunch {
  const char *kernel = nullptr;
  int gridX = 0, gridY = 0, gridZ = 0, ctasPerSM = 0;
  bool combine = false;
};
const DecodeLaunch &lastDecodeLaunch();

/// Multiprocessors of the current device (queried once).
int multiprocessorCount();

/// Shared memory one block may opt in to on the current device (bytes).
size_t sharedMemoryPerBlockOptin();

/// Lets kernel `func` use `bytes` of dynamic shared memory on the current
/// device (cudaFuncSetAttribute), calling the runtime only when that
/// function and device have not been allowed as much yet: the attribute is
/// per device, and setting it on every launch cost host time per call.
/// Thread-safe.
void allowDynamicSharedMemory(const void *func, size_t bytes);

/// Records a failure for balancekv_last_error() and returns `status`.
balancekv_status reportError(balancekv_status status, const char *message);

} // namespace balancekv::cuda

#endif // BALANCEKV_KERNELS_CUDA_LAUNCH_H
