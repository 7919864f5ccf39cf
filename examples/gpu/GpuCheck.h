//===- GpuCheck.h - helpers of the GPU example drivers ----------*- C++ -*-===//
//
// Memref descriptors for calling `_mlir_ciface_` entry points on device
// buffers, downloads, and the one-line-per-check report (PASS/FAIL at the
// end) that test/Integration/gpu-path.test reads.
//
//===----------------------------------------------------------------------===//
#ifndef BALANCEKV_EXAMPLES_GPU_GPUCHECK_H
#define BALANCEKV_EXAMPLES_GPU_GPUCHECK_H

#include "mlir/ExecutionEngine/CRunnerUtils.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace balancekv::gpucheck {

/// MLIR's memref descriptor (the elements are only passed through).
template <int Rank> using MemRef = StridedMemRefType<char, Rank>;

/// What a function returning (compressed key, value, log-weights) writes.
struct CompressResult {
  MemRef<4> key, value;
  MemRef<3> logWeights;
};

/// A contiguous row-major descriptor of `ptr` with `shape`.
template <int Rank>
MemRef<Rank> describe(void *ptr, const std::vector<int64_t> &shape) {
  MemRef<Rank> m;
  m.basePtr = m.data = static_cast<char *>(ptr);
  m.offset = 0;
  int64_t stride = 1;
  for (int i = Rank - 1; i >= 0; --i) {
    m.sizes[i] = shape[i];
    m.strides[i] = stride;
    stride *= shape[i];
  }
  return m;
}

inline std::vector<uint8_t> download(const void *p, size_t bytes) {
  std::vector<uint8_t> out(bytes);
  if (bytes)
    cudaMemcpy(out.data(), p, bytes, cudaMemcpyDeviceToHost);
  return out;
}

/// False (after saying so) where no CUDA device is visible.
inline bool haveDevice() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0)
    return true;
  std::printf("no CUDA device\n");
  return false;
}

/// Set by any failed check; main prints PASS or FAIL from it.
inline bool failed = false;

inline void check(bool ok, const std::string &what, double value = 0) {
  std::printf("%-64s %-4s %.3g\n", what.c_str(), ok ? "ok" : "FAIL", value);
  // Flushed: a run that stops (a hang, a fault) shows its last check even
  // when stdout is a file.
  std::fflush(stdout);
  failed |= !ok;
}

} // namespace balancekv::gpucheck

#endif // BALANCEKV_EXAMPLES_GPU_GPUCHECK_H
