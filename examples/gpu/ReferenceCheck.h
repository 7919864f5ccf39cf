//===- ReferenceCheck.h - GPU example results vs the C++ reference -*- C++
//-*-===//
//
// What the bf16 example drivers (run_compress_decode.cpp, run_paged.cpp)
// share: random caches, uploads, decode errors against float64, and the
// check that a compression keeps exactly the reference's rows and
// log-weights.
//
//===----------------------------------------------------------------------===//
#ifndef BALANCEKV_EXAMPLES_GPU_REFERENCECHECK_H
#define BALANCEKV_EXAMPLES_GPU_REFERENCECHECK_H

#include "GpuCheck.h"
#include "kernels/reference/Reference.h"

#include <cmath>
#include <cstring>
#include <random>
#include <string>

namespace balancekv::gpucheck {

using balancekv::reference::Tensor;

inline void *upload(const void *data, size_t bytes) {
  void *p = nullptr;
  cudaMalloc(&p, bytes);
  cudaMemcpy(p, data, bytes, cudaMemcpyHostToDevice);
  return p;
}

inline void *upload(const Tensor &t) {
  return upload(t.bytes.data(), t.bytes.size());
}

/// A bf16 tensor of standard normal values.
inline Tensor randomTensor(std::vector<int64_t> shape, std::mt19937 &rng) {
  Tensor t(DType::BF16, std::move(shape));
  std::normal_distribution<float> normal(0.f, 1.f);
  for (int64_t i = 0; i < t.numElements(); ++i)
    t.set(i, normal(rng));
  return t;
}

/// Mean relative error of a bf16 attention output against float64 rows of
/// `dv` values.
inline double decodeError(const std::vector<uint8_t> &got,
                          const std::vector<double> &exact, int64_t dv) {
  std::vector<double> approx(exact.size());
  for (size_t i = 0; i < exact.size(); ++i)
    approx[i] = balancekv::loadElement(got.data(), DType::BF16, int64_t(i));
  return balancekv::reference::meanRelativeError(approx, exact, dv);
}

/// The reference's compression of a cache and its compressed rows.
struct ReferenceCompression {
  balancekv::reference::Selection sel;
  Tensor key, value;
};

/// Checks that `c` (a compression of bf16 `k`, `v` with `seed` and the
/// default parameters, of length `m`) keeps exactly the reference's rows and
/// log-weights; check lines start with `label`. Returns the reference's.
inline ReferenceCompression checkCompressed(const CompressResult &c,
                                            const Tensor &k, const Tensor &v,
                                            uint64_t seed, int64_t m,
                                            const std::string &label) {
  balancekv::reference::CompressOptions opts;
  opts.seed = seed;
  ReferenceCompression r;
  auto st = balancekv::reference::compress(k.ref(), v.ref(), opts, r.sel);
  check(st.ok && r.sel.m == m, label + "reference compressed length");
  r.key = balancekv::reference::gather(k.ref(), r.sel);
  r.value = balancekv::reference::gather(v.ref(), r.sel);
  const int64_t rows = k.shape[0] * k.shape[1] * m, rowBytes = k.shape[3] * 2;
  auto gotK = download(c.key.data, r.key.bytes.size()),
       gotV = download(c.value.data, r.value.bytes.size()),
       gotLw = download(c.logWeights.data, r.sel.logWeights.size() * 4);
  int64_t rowsDiffer = 0;
  for (int64_t i = 0; i < rows; ++i)
    rowsDiffer +=
        std::memcmp(gotK.data() + i * rowBytes,
                    r.key.bytes.data() + i * rowBytes, rowBytes) != 0 ||
        std::memcmp(gotV.data() + i * rowBytes,
                    r.value.bytes.data() + i * rowBytes, rowBytes) != 0;
  check(rowsDiffer == 0,
        label + "kept rows identical to the reference (rows differ)",
        double(rowsDiffer));
  double lwErr = 0;
  for (size_t i = 0; i < r.sel.logWeights.size(); ++i) {
    float g;
    std::memcpy(&g, gotLw.data() + 4 * i, 4);
    lwErr = std::max(lwErr, double(std::fabs(g - r.sel.logWeights[i])));
  }
  // Equal bits, and no difference (a NaN would pass the maximum).
  check(lwErr == 0 && std::memcmp(gotLw.data(), r.sel.logWeights.data(),
                                  gotLw.size()) == 0,
        label + "log-weights identical (max abs diff)", lwErr);
  return r;
}

} // namespace balancekv::gpucheck

#endif // BALANCEKV_EXAMPLES_GPU_REFERENCECHECK_H
