//===- run_compress_decode.cpp - run the MLIR-compiled GPU example --------===//
//
// Calls the functions of compress_decode.mlir as compiled by
// --balancekv-gpu-pipeline (their _mlir_ciface_ entry points) on a GPU and
// checks them against the C++ reference: the compressed cache must hold
// exactly the reference's rows and log-weights (same seed), and both decodes
// must match float64 attention. Prints one line per check and PASS / FAIL.
//
//===----------------------------------------------------------------------===//

#include "GpuCheck.h"
#include "kernels/reference/Reference.h"

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
using balancekv::DType;
using balancekv::reference::Tensor;

void *upload(const Tensor &t) {
  void *p = nullptr;
  cudaMalloc(&p, t.bytes.size());
  cudaMemcpy(p, t.bytes.data(), t.bytes.size(), cudaMemcpyHostToDevice);
  return p;
}

Tensor randomTensor(std::vector<int64_t> shape, std::mt19937 &rng) {
  Tensor t(DType::BF16, std::move(shape));
  std::normal_distribution<float> normal(0.f, 1.f);
  for (int64_t i = 0; i < t.numElements(); ++i)
    t.set(i, normal(rng));
  return t;
}

double decodeError(const std::vector<uint8_t> &got,
                   const std::vector<double> &exact) {
  std::vector<double> approx(exact.size());
  for (size_t i = 0; i < exact.size(); ++i)
    approx[i] = balancekv::loadElement(got.data(), DType::BF16, int64_t(i));
  return balancekv::reference::meanRelativeError(approx, exact, D);
}

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
  balancekv::reference::CompressOptions opts;
  opts.seed = 42;
  balancekv::reference::Selection sel;
  auto st = balancekv::reference::compress(k.ref(), v.ref(), opts, sel);
  check(st.ok && sel.m == M, "reference compressed length");
  Tensor refK = balancekv::reference::gather(k.ref(), sel),
         refV = balancekv::reference::gather(v.ref(), sel);
  auto gotK = download(c.key.data, refK.bytes.size()),
       gotV = download(c.value.data, refV.bytes.size()),
       gotLw = download(c.logWeights.data, sel.logWeights.size() * 4);
  int64_t rowsDiffer = 0;
  for (int64_t r = 0; r < B * Hkv * M; ++r)
    rowsDiffer += std::memcmp(gotK.data() + r * D * 2,
                              refK.bytes.data() + r * D * 2, D * 2) != 0 ||
                  std::memcmp(gotV.data() + r * D * 2,
                              refV.bytes.data() + r * D * 2, D * 2) != 0;
  check(rowsDiffer == 0, "kept rows identical to the reference (rows differ)",
        double(rowsDiffer));
  double lwErr = 0;
  for (size_t i = 0; i < sel.logWeights.size(); ++i) {
    float g;
    std::memcpy(&g, gotLw.data() + 4 * i, 4);
    lwErr = std::max(lwErr, double(std::fabs(g - sel.logWeights[i])));
  }
  check(lwErr == 0, "log-weights identical (max abs diff)", lwErr);

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
  double e = decodeError(download(out.data, exact.size() * 2), exact);
  check(e < 1e-2, "weighted decode vs float64 (mean rel err)", e);
  mgpuMemFree(out.data, nullptr);

  // Full-cache attention, and how far the compressed answer is from it.
  MemRef<4> full;
  _mlir_ciface_full_attention(&full, &mq, &mk, &mv);
  check(cudaDeviceSynchronize() == cudaSuccess, "full attention ran");
  std::vector<double> exactFull;
  balancekv::reference::attention(q.ref(), k.ref(), v.ref(), aopts, exactFull);
  e = decodeError(download(full.data, exactFull.size() * 2), exactFull);
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
