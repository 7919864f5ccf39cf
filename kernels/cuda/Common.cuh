//===- Common.cuh - shared device helpers of the CUDA kernels ---*- CUDA -*-===//
#ifndef BALANCEKV_KERNELS_CUDA_COMMON_CUH
#define BALANCEKV_KERNELS_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels/cuda/Launch.h"

#include <cstdint>

namespace balancekv::cuda {

/// The rows of one (batch, head) of a key or value cache: row j is at
/// head + j * stride in a dense cache, and in a paged one (`pages`: that
/// sequence's block-table row) at slot j & (page size - 1) of page
/// pages[j >> shift]. Every kernel addresses cache rows through this, so
/// paged and dense caches run the same arithmetic (bit-identical results).
template <typename T> struct CacheRows {
  const T *head;
  int64_t stride;
  const int32_t *pages;
  int64_t pageStride;
  int shift;
  __device__ __forceinline__ const T *operator()(int64_t j) const {
    if (!pages)
      return head + j * stride;
    return inPage(__ldg(pages + (j >> shift)), j);
  }
  /// Row j of a paged cache whose page id is already known.
  __device__ __forceinline__ const T *inPage(int32_t page, int64_t j) const {
    return head + int64_t(page) * pageStride +
           (j & ((int64_t(1) << shift) - 1)) * stride;
  }
};

/// Rows of (b, h) of the cache at `base` with element strides `s` ([b, h,
/// s] dense, [page, h, slot] paged: see Paging).
template <typename T>
__device__ __forceinline__ CacheRows<T>
cacheRows(const void *base, const int64_t *s, const Paging &paging, int64_t b,
          int64_t h) {
  const T *t = static_cast<const T *>(base);
  if (!paging.table)
    return {t + b * s[0] + h * s[1], s[2], nullptr, 0, 0};
  return {t + h * s[1], s[2], paging.table + b * paging.tableStride, s[0],
          paging.pageShift};
}

__device__ __forceinline__ float toFloat(float x) { return x; }
__device__ __forceinline__ float toFloat(__half x) { return __half2float(x); }
__device__ __forceinline__ float toFloat(__nv_bfloat16 x) {
  return __bfloat162float(x);
}
template <typename T> __device__ __forceinline__ T fromFloat(float x);
template <> __device__ __forceinline__ float fromFloat<float>(float x) {
  return x;
}
template <> __device__ __forceinline__ __half fromFloat<__half>(float x) {
  return __float2half_rn(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 fromFloat<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

/// D += A B for one m16n8k16 tile with f32 accumulators (A row-major
/// fragments a[4], B column fragments b0, b1), for 16-bit T. `pack` makes a
/// 32-bit A/B register from two floats.
template <typename T> struct Mma16816;
template <> struct Mma16816<__half> {
  __device__ static void run(float *c, const uint32_t *a, uint32_t b0,
                             uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0),
                   "r"(b1));
  }
  __device__ static uint32_t pack(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&h);
  }
};
template <> struct Mma16816<__nv_bfloat16> {
  __device__ static void run(float *c, const uint32_t *a, uint32_t b0,
                             uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0),
                   "r"(b1));
  }
  __device__ static uint32_t pack(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&h);
  }
};

/// The shared-memory address (state space offset) of a generic pointer.
__device__ __forceinline__ uint32_t sharedAddress(const void *p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

/// `p`, a pointer into a __shared__ array, moved up to the next multiple of
/// `align` bytes of shared address. Done as an offset from `p`: a round trip
/// through an integer hides from the compiler that the result is shared
/// memory, and every access through it becomes a generic load or store with
/// 64-bit address arithmetic.
template <typename T>
__device__ __forceinline__ T *alignShared(T *p, uint32_t align) {
  unsigned char *c = reinterpret_cast<unsigned char *>(p);
  return reinterpret_cast<T *>(c + (align - sharedAddress(c) % align) % align);
}

/// cp.async of `bytes` <= 16 from global memory into a 16-byte slot of
/// shared memory, the rest of the slot zero-filled (`src` is not read when
/// `bytes` is 0 but must still be a valid address). kL2Line: the L2 also
/// fetches the aligned 128 bytes around `src` from DRAM, for rows whose
/// 16-byte pieces arrive from different quarter-warps (the later pieces
/// then hit in L2).
template <bool kL2Line = false>
__device__ __forceinline__ void copyAsync16Fill(void *dst, const void *src,
                                                int bytes) {
  if constexpr (kL2Line)
    asm volatile("cp.async.cg.shared.global.L2::128B [%0], [%1], 16, %2;\n" ::
                     "r"(sharedAddress(dst)),
                 "l"(src), "r"(bytes)
                 : "memory");
  else
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(
                     sharedAddress(dst)),
                 "l"(src), "r"(bytes)
                 : "memory");
}

/// Shared-memory mbarriers (sm_90): a phase completes after `count`
/// arrivals (and, with expect_tx, the transactions' bytes); waiters name
/// the phase by its parity (0 for the first).
__device__ __forceinline__ void mbarrierInit(uint64_t *bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(
                   sharedAddress(bar)),
               "r"(count)
               : "memory");
}
/// Arrives (release: this thread's earlier writes are visible to whoever
/// waits for the phase).
__device__ __forceinline__ void mbarrierArrive(uint64_t *bar) {
  asm volatile("{\n.reg .b64 state;\n"
               "mbarrier.arrive.shared::cta.b64 state, [%0];\n}\n" ::"r"(
                   sharedAddress(bar))
               : "memory");
}
/// Arrives and adds `bytes` to the phase's expected transaction count.
__device__ __forceinline__ void mbarrierArriveExpectTx(uint64_t *bar,
                                                       uint32_t bytes) {
  asm volatile(
      "{\n.reg .b64 state;\n"
      "mbarrier.arrive.expect_tx.shared::cta.b64 state, [%0], %1;\n}\n" ::"r"(
          sharedAddress(bar)),
      "r"(bytes)
      : "memory");
}
/// Arrives once this thread's earlier cp.async copies have landed; counts
/// as one of the phase's arrivals (.noinc).
__device__ __forceinline__ void cpAsyncMbarrierArrive(uint64_t *bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(
                   sharedAddress(bar))
               : "memory");
}
/// Waits (acquire) until the phase of the given parity has completed.
__device__ __forceinline__ void mbarrierWait(uint64_t *bar, uint32_t parity) {
  asm volatile("{\n.reg .pred done;\n"
               "wait:\n"
               "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
               "@!done bra wait;\n}\n" ::"r"(sharedAddress(bar)),
               "r"(parity)
               : "memory");
}

/// Four 8 x 8 16-bit matrices from shared memory, lanes 8i..8i+7 giving the
/// row addresses of matrix i; thread (g, t) of the warp receives row g,
/// columns 2t and 2t + 1 of each: the mma.sync m16n8k16 fragment layout of
/// A (row-major) and of B stored n-major.
__device__ __forceinline__ void ldmatrixX4(uint32_t *r, const void *p) {
  const uint32_t addr = sharedAddress(p);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 "
               "{%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

/// ldmatrixX4 with each matrix transposed (B stored k-major).
__device__ __forceinline__ void ldmatrixX4Trans(uint32_t *r, const void *p) {
  const uint32_t addr = sharedAddress(p);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 "
               "{%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

/// Inclusive sum over a block of `kThreads` threads (multiple of 32);
/// `scratch` holds kThreads / 32 ints. Returns the inclusive prefix and
/// writes the block total to `total`.
template <int kThreads>
__device__ __forceinline__ int blockInclusiveScan(int v, int *scratch,
                                                  int &total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    int n = __shfl_up_sync(0xffffffffu, v, o);
    if (lane >= o)
      v += n;
  }
  if (lane == 31)
    scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    int s = lane < kThreads / 32 ? scratch[lane] : 0;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      int n = __shfl_up_sync(0xffffffffu, s, o);
      if (lane >= o)
        s += n;
    }
    if (lane < kThreads / 32)
      scratch[lane] = s;
  }
  __syncthreads();
  if (warp > 0)
    v += scratch[warp - 1];
  total = scratch[kThreads / 32 - 1];
  __syncthreads();
  return v;
}

} // namespace balancekv::cuda

#endif // BALANCEKV_KERNELS_CUDA_COMMON_CUH
