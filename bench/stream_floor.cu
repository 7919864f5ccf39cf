// A read-only streaming kernel: the floor for any kernel that reads a cache
// of a given size once (bench/stream_floor.py times it like the decode).
// Each CTA reads one contiguous chunk with 16-byte loads, `kUnroll` in
// flight per thread.
#include <cuda_runtime.h>
#include <stdint.h>

namespace {
constexpr int kUnroll = 8;

__global__ void readChunks(const uint4 *__restrict__ data, int64_t n16,
                           unsigned *sink) {
  const int64_t per = (n16 + gridDim.x - 1) / gridDim.x;
  const int64_t begin = blockIdx.x * per;
  const int64_t end = begin + per < n16 ? begin + per : n16;
  unsigned acc = 0;
  for (int64_t i = begin + threadIdx.x; i < end;
       i += int64_t(blockDim.x) * kUnroll) {
    uint4 v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      int64_t j = i + int64_t(u) * blockDim.x;
      v[u] = j < end ? __ldcs(data + j) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  if (acc == 0x9e3779b9u) // never in practice; keeps the loads
    *sink = acc;
}
} // namespace

extern "C" int stream_read(const void *data, int64_t bytes, int ctas,
                           int threads, void *sink, void *stream) {
  readChunks<<<ctas, threads, 0, static_cast<cudaStream_t>(stream)>>>(
      static_cast<const uint4 *>(data), bytes / 16,
      static_cast<unsigned *>(sink));
  return int(cudaGetLastError());
}
