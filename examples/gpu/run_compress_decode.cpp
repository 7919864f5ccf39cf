//===- run_compress_decode.cpp - run the MLIR-compiled GPU example --------===//
//
// Calls the functions of compress_decode.mlir as compiled by
// --balancekv-gpu-pipeline (their _mlir_ciface_ entry points) on a GPU and
// checks them against the C++ reference: the compressed cache must hold
// exactly the reference's rows and log-weights (same seed), and both decodes
// must match float64 attention. Prints one line per check and PASS / FAIL.
//
//===----------------------------------------------------------------------===//

#include "ReferenceCheck.h"

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

extern "C" void mgpuMemFree(void *ptr, void *stream);

using balancekv::gpucheck::CompressResult;
using balancekv::gpucheck::MemRef;

namespace {

constexpr int64_t B = 2, Hkv = 2, Hq = 8, N = 2112, D = 128, M = 576;

} // namespace

extern "C" {
void _mlir_ciface_compress(CompressResult *, MemRef<4> *, MemRef<4> *);
void _mlir_ciface_decode(MemRef<4> *, MemRef<4> *, MemRef<4> *, MemRef<4> *,
                         MemRef<3> *);
void _mlir_ciface_full_attention(MemRef<4> *, MemRef<4> *, MemRef<4> *,
                                 MemRef<4> *);
}

namespace {

using namespace balancekv::gpucheck;

} // namespace

int main() {
  if (!haveDevice())
    return 2;
  std::mt19937 rng(7);
  Tensor k = randomTensor({B, Hkv, N, D}, rng),
         v = randomTensor({B, Hkv, N, D}, rng),
         q = randomTensor({B, Hq, 1, D}, rng);
  // Keys with a shared offset, as real caches have (centring must remove it).
  for (int64_t i = 0; i < k.numElements(); ++i)
    k.set(i, float(k.at(i) + 0.5 * std::sin(double(i % D))));
  void *dk = upload(k), *dv = upload(v), *dq = upload(q);
  MemRef<4> mk = describe<4>(dk, {B, Hkv, N, D}),
            mv = describe<4>(dv, {B, Hkv, N, D}),
            mq = describe<4>(dq, {B, Hq, 1, D});

  // Compression: the same rows and log-weights as the reference.
  CompressResult c;
  _mlir_ciface_compress(&c, &mk, &mv);
  cudaError_t err = cudaDeviceSynchronize();
  check(err == cudaSuccess, "compress ran");
  const ReferenceCompression ref = checkCompressed(c, k, v, 42, M, "");
  const Tensor &refK = ref.key, &refV = ref.value;
  const auto &sel = ref.sel;

  // Decode over the compressed cache vs float64 weighted attention over the
  // reference's compressed cache.
  balancekv::reference::AttentionOptions aopts;
  aopts.causal = true;
  MemRef<4> out;
  _mlir_ciface_decode(&out, &mq, &c.key, &c.value, &c.logWeights);
  check(cudaDeviceSynchronize() == cudaSuccess, "decode ran");
  std::vector<double> exact;
  balancekv::reference::weightedAttention(q.ref(), refK.ref(), refV.ref(),
                                          sel.logWeights.data(), aopts, exact);
  double e = decodeError(download(out.data, exact.size() * 2), exact, D);
  check(e < 1e-2, "weighted decode vs float64 (mean rel err)", e);
  mgpuMemFree(out.data, nullptr);

  // Full-cache attention, and how far the compressed answer is from it.
  MemRef<4> full;
  _mlir_ciface_full_attention(&full, &mq, &mk, &mv);
  check(cudaDeviceSynchronize() == cudaSuccess, "full attention ran");
  std::vector<double> exactFull;
  balancekv::reference::attention(q.ref(), k.ref(), v.ref(), aopts, exactFull);
  e = decodeError(download(full.data, exactFull.size() * 2), exactFull, D);
  check(e < 1e-2, "full attention vs float64 (mean rel err)", e);
  std::printf("%-48s      %.3g\n",
              "compressed vs full (i.i.d. data: output ~0, so ~1)",
              balancekv::reference::meanRelativeError(exact, exactFull, D));
  mgpuMemFree(full.data, nullptr);

  for (void *p : {c.key.data, c.value.data, c.logWeights.data})
    mgpuMemFree(p, nullptr);
  cudaFree(dk);
  cudaFree(dv);
  cudaFree(dq);
  std::printf("%s\n", failed ? "FAIL" : "PASS");
  return failed ? 1 : 0;
}
