//===- Common.cuh - shared device helpers of the CUDA kernels ---*- CUDA -*-===//
#ifndef BALANCEKV_KERNELS_CUDA_COMMON_CUH
#define BALANCEKV_KERNELS_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace balancekv::cuda {

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
