//===- Wgmma.cuh - Warpgroup MMA helpers (sm_90a) ----------------*- CUDA
//-*-===//
//
// Row-block Grams on Hopper's warpgroup MMA: both operands in shared memory
// in the canonical no-swizzle K-major layout (8 x 16-byte core matrices), the
// accumulators in registers in the same per-warp fragment layout as
// mma.sync m16n8 (so epilogues written for mma.sync work unchanged).
//
//===----------------------------------------------------------------------===//

#ifndef BALANCEKV_KERNELS_CUDA_WGMMA_CUH
#define BALANCEKV_KERNELS_CUDA_WGMMA_CUH

#include "kernels/cuda/Common.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace balancekv::cuda {

/// Element offset of (row, x) in a buffer of `dim`-wide 16-bit rows stored
/// as 8 x 8 core matrices: row block after row block, each a run of the
/// dim / 8 core matrices of its columns (128 contiguous bytes each).
__device__ __forceinline__ int coreMatrixOffset(int row, int x, int dim) {
  return ((row >> 3) * (dim >> 3) + (x >> 3)) * 64 + (row & 7) * 8 + (x & 7);
}

/// Shared-memory matrix descriptor, no swizzle: `lbo` bytes between core
/// matrices adjacent in K, `sbo` between those adjacent in M/N.
__device__ __forceinline__ uint64_t wgmmaDescriptor(const void *p, uint32_t lbo,
                                                    uint32_t sbo) {
  const uint32_t addr = sharedAddress(p);
  return uint64_t((addr & 0x3ffff) >> 4) | uint64_t(lbo >> 4) << 16 |
         uint64_t(sbo >> 4) << 32;
}

// acc (+)= A B^T for one k-step of 16: A = 64 rows, B = 128 rows, both
// K-major in shared memory; `accumulate` false overwrites acc.
#define BALANCEKV_WGMMA_64x128x16(TYPE)                                        \
  asm volatile(                                                                \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                             \
      "wgmma.mma_async.sync.aligned.m64n128k16.f32." TYPE "." TYPE " {"        \
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, " \
      "%30, %31, "                                                             \
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, " \
      "%46, %47, "                                                             \
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, " \
      "%62, %63"                                                               \
      "}, %64, %65, p, 1, 1, 0, 0;\n}\n"                                       \
      : "+f"(acc[0][0]), "+f"(acc[0][1]), "+f"(acc[0][2]), "+f"(acc[0][3]),    \
        "+f"(acc[1][0]), "+f"(acc[1][1]), "+f"(acc[1][2]), "+f"(acc[1][3]),    \
        "+f"(acc[2][0]), "+f"(acc[2][1]), "+f"(acc[2][2]), "+f"(acc[2][3]),    \
        "+f"(acc[3][0]), "+f"(acc[3][1]), "+f"(acc[3][2]), "+f"(acc[3][3]),    \
        "+f"(acc[4][0]), "+f"(acc[4][1]), "+f"(acc[4][2]), "+f"(acc[4][3]),    \
        "+f"(acc[5][0]), "+f"(acc[5][1]), "+f"(acc[5][2]), "+f"(acc[5][3]),    \
        "+f"(acc[6][0]), "+f"(acc[6][1]), "+f"(acc[6][2]), "+f"(acc[6][3]),    \
        "+f"(acc[7][0]), "+f"(acc[7][1]), "+f"(acc[7][2]), "+f"(acc[7][3]),    \
        "+f"(acc[8][0]), "+f"(acc[8][1]), "+f"(acc[8][2]), "+f"(acc[8][3]),    \
        "+f"(acc[9][0]), "+f"(acc[9][1]), "+f"(acc[9][2]), "+f"(acc[9][3]),    \
        "+f"(acc[10][0]), "+f"(acc[10][1]), "+f"(acc[10][2]),                  \
        "+f"(acc[10][3]), "+f"(acc[11][0]), "+f"(acc[11][1]),                  \
        "+f"(acc[11][2]), "+f"(acc[11][3]), "+f"(acc[12][0]),                  \
        "+f"(acc[12][1]), "+f"(acc[12][2]), "+f"(acc[12][3]),                  \
        "+f"(acc[13][0]), "+f"(acc[13][1]), "+f"(acc[13][2]),                  \
        "+f"(acc[13][3]), "+f"(acc[14][0]), "+f"(acc[14][1]),                  \
        "+f"(acc[14][2]), "+f"(acc[14][3]), "+f"(acc[15][0]),                  \
        "+f"(acc[15][1]), "+f"(acc[15][2]), "+f"(acc[15][3])                   \
      : "l"(descA), "l"(descB), "r"(int(accumulate)))

template <typename T> struct Wgmma64x128x16;
template <> struct Wgmma64x128x16<__nv_bfloat16> {
  static __device__ __forceinline__ void
  run(float (&acc)[16][4], uint64_t descA, uint64_t descB, bool accumulate) {
    BALANCEKV_WGMMA_64x128x16("bf16");
  }
};
template <> struct Wgmma64x128x16<__half> {
  static __device__ __forceinline__ void
  run(float (&acc)[16][4], uint64_t descA, uint64_t descB, bool accumulate) {
    BALANCEKV_WGMMA_64x128x16("f16");
  }
};
#undef BALANCEKV_WGMMA_64x128x16

/// Issues kSteps k-steps from descriptors a, b (2 core matrices = 256 bytes
/// = 16 descriptor units per step) as one wgmma group, fully unrolled so
/// that the accumulators stay in place between the MMAs. acc must not be
/// touched before wgmmaWait().
template <typename T, int kSteps>
__device__ __forceinline__ void
wgmmaGramSteps(uint64_t a, uint64_t b, bool accumulate, float (&acc)[16][4]) {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
  // Only the start-address field (the low word, no carry: shared memory is
  // below 256 KB) moves from step to step.
  const uint64_t aHi = a & ~0xffffffffull, bHi = b & ~0xffffffffull;
#pragma unroll
  for (int k = 0; k < kSteps; ++k)
    Wgmma64x128x16<T>::run(acc, aHi | uint32_t(uint32_t(a) + 16 * k),
                           bHi | uint32_t(uint32_t(b) + 16 * k),
                           accumulate || k > 0);
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}

/// Waits until at most kPending of this warpgroup's wgmma groups are in
/// flight (0: all done).
template <int kPending = 0> __device__ __forceinline__ void wgmmaWait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending)
               : "memory");
}

/// The descriptors of rows 64 wg..64 wg+63 (A) and of all 128 rows (B) of
/// a `dim`-wide row buffer in coreMatrixOffset order (loop-invariant: make
/// them once per kernel).
struct WgmmaRowBlock {
  uint64_t a, b;
  int dim;
};
template <typename T>
__device__ __forceinline__ WgmmaRowBlock wgmmaRowBlock(const T *buf, int dim,
                                                       int wg) {
  const uint32_t sbo = uint32_t(dim) * 16; // one block of 8 rows
  return {wgmmaDescriptor(buf + wg * 64 * dim, 128, sbo),
          wgmmaDescriptor(buf, 128, sbo), dim};
}

/// Starts acc = rows 64 wg..64 wg+63 of the buffer times all its 128 rows,
/// transposed (a raw Gram row block), over `dim` columns (dim % 16 == 0);
/// work that leaves acc alone may run before wgmmaWait(). Warpgroup-
/// collective: all four warps of warpgroup `wg` call it; warp w of the
/// group receives rows 64 wg + 16 w.. in the mma.sync m16n8 C layout. The
/// buffer was made visible to the async proxy (fenceAsyncShared + barrier)
/// after it was written.
template <typename T>
__device__ __forceinline__ void wgmmaGramRows64(const WgmmaRowBlock &rb,
                                                float (&acc)[16][4]) {
  if (rb.dim == 128) {
    wgmmaGramSteps<T, 8>(rb.a, rb.b, false, acc);
  } else if (rb.dim == 64) {
    wgmmaGramSteps<T, 4>(rb.a, rb.b, false, acc);
  } else if (rb.dim == 256) {
    wgmmaGramSteps<T, 16>(rb.a, rb.b, false, acc);
  } else {
    // Other sizes one k-step at a time (each waited for but the last).
    for (int k = 0; k < rb.dim / 16; ++k) {
      if (k > 0)
        wgmmaWait();
      wgmmaGramSteps<T, 1>(rb.a + 16 * k, rb.b + 16 * k, k > 0, acc);
    }
  }
}

/// Pins the accumulators in place around wgmma: reads after a wgmmaWait
/// cannot be hoisted above it (the wait names no registers), so ptxas
/// does not see them inside a later wgmma's window and serialise it.
__device__ __forceinline__ void wgmmaFenceOperands(float (&acc)[16][4]) {
#pragma unroll
  for (int n = 0; n < 16; ++n)
#pragma unroll
    for (int r = 0; r < 4; ++r)
      asm volatile("" : "+f"(acc[n][r])::"memory");
}

/// Orders this thread's earlier generic-proxy writes to shared memory
/// (st.shared, cp.async) before later async-proxy reads (wgmma operands).
__device__ __forceinline__ void fenceAsyncShared() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

} // namespace balancekv::cuda

#endif // BALANCEKV_KERNELS_CUDA_WGMMA_CUH
