//===- run_paged.cpp - run paged.mlir's runtime calls on a GPU ------------===//
//
// Calls the functions of paged.mlir as compiled by
// --balancekv-runtime-calls-pipeline on a GPU: compression of a paged cache
// (pages in a random order of an NHD pool) must keep exactly the C++
// reference's rows and log-weights, and the decode over an HND pool (the
// compressed cache plus decoded tokens; kv_len per sequence, and per KV
// head) must equal the decode over the same cache held densely bit for bit,
// and float64 attention within bf16 rounding. Prints one line per check and
// PASS / FAIL.
//
//===----------------------------------------------------------------------===//

#include "ReferenceCheck.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

extern "C" void mgpuMemFree(void *ptr, void *stream);

using balancekv::gpucheck::CompressResult;
using balancekv::gpucheck::MemRef;

namespace {

constexpr int64_t B = 2, Hkv = 2, Hq = 8, N = 2112, D = 128, M = 576;
constexpr int64_t P = 16;                               // tokens a page
constexpr int64_t PrefillPages = N / P;                 // 132 a sequence
constexpr int64_t Slots = 640, DecodePages = Slots / P; // 40 a sequence
constexpr int64_t Decoded = 24; // tokens after the compressed

} // namespace

extern "C" {
void _mlir_ciface_compress_paged(CompressResult *, MemRef<4> *, MemRef<4> *,
                                 MemRef<2> *);
void _mlir_ciface_decode_paged(MemRef<4> *, MemRef<4> *, MemRef<4> *,
                               MemRef<4> *, MemRef<2> *, MemRef<3> *,
                               MemRef<1> *);
void _mlir_ciface_decode_dense(MemRef<4> *, MemRef<4> *, MemRef<4> *,
                               MemRef<4> *, MemRef<3> *, MemRef<1> *);
void _mlir_ciface_decode_paged_ragged(MemRef<4> *, MemRef<4> *, MemRef<4> *,
                                      MemRef<4> *, MemRef<2> *, MemRef<3> *,
                                      MemRef<2> *);
void _mlir_ciface_decode_dense_ragged(MemRef<4> *, MemRef<4> *, MemRef<4> *,
                                      MemRef<4> *, MemRef<3> *, MemRef<2> *);
}

namespace {

using namespace balancekv::gpucheck;
using balancekv::DType;

/// A block table of `pages` pages a sequence, the pool's pages 1.. in a
/// random order (page 0 unused: no id is its logical page).
std::vector<int32_t> shuffledTable(int64_t pages, std::mt19937 &rng) {
  std::vector<int32_t> table(B * pages);
  std::iota(table.begin(), table.end(), 1);
  std::shuffle(table.begin(), table.end(), rng);
  return table;
}

/// The bf16 rows of dense [B, H, n, D] `t` in a pool of 1 + B * n / P
/// pages: NHD [page, slot, head, x], or HND [page, head, slot, x].
std::vector<uint16_t> toPool(const Tensor &t, int64_t n,
                             const std::vector<int32_t> &table,
                             bool headsMajor) {
  const int64_t pages = n / P;
  std::vector<uint16_t> pool((1 + B * pages) * P * Hkv * D, 0);
  const auto *src = reinterpret_cast<const uint16_t *>(t.bytes.data());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hkv; ++h)
      for (int64_t j = 0; j < n; ++j) {
        const int64_t page = table[b * pages + j / P], slot = j % P;
        const int64_t at = headsMajor ? ((page * Hkv + h) * P + slot) * D
                                      : ((page * P + slot) * Hkv + h) * D;
        std::memcpy(&pool[at], src + ((b * Hkv + h) * n + j) * D, D * 2);
      }
  return pool;
}

} // namespace

int main() {
  if (!haveDevice())
    return 2;
  std::mt19937 rng(11);
  Tensor k = randomTensor({B, Hkv, N, D}, rng),
         v = randomTensor({B, Hkv, N, D}, rng),
         q = randomTensor({B, Hq, 1, D}, rng);

  // Compression of the NHD pool: the reference's rows and log-weights.
  const std::vector<int32_t> prefillTable = shuffledTable(PrefillPages, rng);
  const auto kPool = toPool(k, N, prefillTable, false),
             vPool = toPool(v, N, prefillTable, false);
  void *dkp = upload(kPool.data(), kPool.size() * 2),
       *dvp = upload(vPool.data(), vPool.size() * 2),
       *dt = upload(prefillTable.data(), prefillTable.size() * 4);
  const int64_t poolPages = 1 + B * PrefillPages;
  MemRef<4> mkp = describe<4>(dkp, {poolPages, P, Hkv, D}),
            mvp = describe<4>(dvp, {poolPages, P, Hkv, D});
  MemRef<2> mt = describe<2>(dt, {B, PrefillPages});
  CompressResult c;
  _mlir_ciface_compress_paged(&c, &mkp, &mvp, &mt);
  check(cudaDeviceSynchronize() == cudaSuccess, "paged compress ran");
  const ReferenceCompression ref = checkCompressed(c, k, v, 42, M, "paged: ");
  const Tensor &refK = ref.key, &refV = ref.value;
  const auto &sel = ref.sel;

  // Decode: the compressed cache, then decoded tokens (log-weight 0), in
  // Slots slots a sequence; sequence b holds 600 - 10 b tokens.
  Tensor cacheK(DType::BF16, {B, Hkv, Slots, D}),
      cacheV(DType::BF16, {B, Hkv, Slots, D});
  Tensor extraK = randomTensor({B, Hkv, Slots - M, D}, rng),
         extraV = randomTensor({B, Hkv, Slots - M, D}, rng);
  std::vector<float> lw(B * Hkv * Slots, 0.0f);
  for (int64_t bh = 0; bh < B * Hkv; ++bh) {
    std::memcpy(&cacheK.bytes[bh * Slots * D * 2], &refK.bytes[bh * M * D * 2],
                M * D * 2);
    std::memcpy(&cacheV.bytes[bh * Slots * D * 2], &refV.bytes[bh * M * D * 2],
                M * D * 2);
    std::memcpy(&cacheK.bytes[(bh * Slots + M) * D * 2],
                &extraK.bytes[bh * (Slots - M) * D * 2], (Slots - M) * D * 2);
    std::memcpy(&cacheV.bytes[(bh * Slots + M) * D * 2],
                &extraV.bytes[bh * (Slots - M) * D * 2], (Slots - M) * D * 2);
    std::memcpy(&lw[bh * Slots], &sel.logWeights[bh * M], M * 4);
  }
  const std::vector<int32_t> lens{int32_t(M + Decoded),
                                  int32_t(M + Decoded - 10)};
  const std::vector<int32_t> decodeTable = shuffledTable(DecodePages, rng);
  const auto kPool2 = toPool(cacheK, Slots, decodeTable, true),
             vPool2 = toPool(cacheV, Slots, decodeTable, true);
  void *dq = upload(q.bytes.data(), q.bytes.size()),
       *dk2 = upload(kPool2.data(), kPool2.size() * 2),
       *dv2 = upload(vPool2.data(), vPool2.size() * 2),
       *dt2 = upload(decodeTable.data(), decodeTable.size() * 4),
       *dck = upload(cacheK.bytes.data(), cacheK.bytes.size()),
       *dcv = upload(cacheV.bytes.data(), cacheV.bytes.size()),
       *dlw = upload(lw.data(), lw.size() * 4),
       *dlen = upload(lens.data(), lens.size() * 4);
  const int64_t poolPages2 = 1 + B * DecodePages;
  MemRef<4> mq = describe<4>(dq, {B, Hq, 1, D}),
            mk2 = describe<4>(dk2, {poolPages2, Hkv, P, D}),
            mv2 = describe<4>(dv2, {poolPages2, Hkv, P, D}),
            mck = describe<4>(dck, {B, Hkv, Slots, D}),
            mcv = describe<4>(dcv, {B, Hkv, Slots, D});
  MemRef<2> mt2 = describe<2>(dt2, {B, DecodePages});
  MemRef<3> mlw = describe<3>(dlw, {B, Hkv, Slots});
  MemRef<1> mlen = describe<1>(dlen, {B});
  MemRef<4> outPaged, outDense;
  _mlir_ciface_decode_paged(&outPaged, &mq, &mk2, &mv2, &mt2, &mlw, &mlen);
  _mlir_ciface_decode_dense(&outDense, &mq, &mck, &mcv, &mlw, &mlen);
  check(cudaDeviceSynchronize() == cudaSuccess, "paged and dense decode ran");
  const size_t outBytes = B * Hq * D * 2;
  const auto paged = download(outPaged.data, outBytes),
             dense = download(outDense.data, outBytes);
  check(std::memcmp(paged.data(), dense.data(), outBytes) == 0,
        "paged decode identical to the dense decode");
  const std::vector<int64_t> lens64(lens.begin(), lens.end());
  balancekv::reference::AttentionOptions aopts;
  aopts.causal = true;
  aopts.kvLen = lens64.data();
  std::vector<double> exact;
  balancekv::reference::weightedAttention(q.ref(), cacheK.ref(), cacheV.ref(),
                                          lw.data(), aopts, exact);
  const double e = decodeError(paged, exact, D);
  check(e < 1e-2, "paged decode vs float64 (mean rel err)", e);

  // Ragged heads (kv_len [B, Hkv]) over the same pages: every head of a
  // sequence reads its own prefix of the sequence's slots.
  const std::vector<int32_t> headLens{int32_t(M + Decoded), 333,
                                      int32_t(M + Decoded - 10), 17};
  void *dhl = upload(headLens.data(), headLens.size() * 4);
  MemRef<2> mhl = describe<2>(dhl, {B, Hkv});
  MemRef<4> outPagedRagged, outDenseRagged;
  _mlir_ciface_decode_paged_ragged(&outPagedRagged, &mq, &mk2, &mv2, &mt2, &mlw,
                                   &mhl);
  _mlir_ciface_decode_dense_ragged(&outDenseRagged, &mq, &mck, &mcv, &mlw,
                                   &mhl);
  check(cudaDeviceSynchronize() == cudaSuccess,
        "paged and dense ragged decode ran");
  const auto pagedRagged = download(outPagedRagged.data, outBytes),
             denseRagged = download(outDenseRagged.data, outBytes);
  check(std::memcmp(pagedRagged.data(), denseRagged.data(), outBytes) == 0,
        "paged ragged decode identical to the dense ragged decode");
  const std::vector<int64_t> headLens64(headLens.begin(), headLens.end());
  aopts.kvLen = headLens64.data();
  aopts.kvLenPerHead = true;
  std::vector<double> exactRagged;
  balancekv::reference::weightedAttention(q.ref(), cacheK.ref(), cacheV.ref(),
                                          lw.data(), aopts, exactRagged);
  const double eRagged = decodeError(pagedRagged, exactRagged, D);
  check(eRagged < 1e-2, "paged ragged decode vs float64 (mean rel err)",
        eRagged);

  for (void *p : {c.key.data, c.value.data, c.logWeights.data, outPaged.data,
                  outDense.data, outPagedRagged.data, outDenseRagged.data})
    mgpuMemFree(p, nullptr);
  for (void *p : {dkp, dvp, dt, dq, dk2, dv2, dt2, dck, dcv, dlw, dlen, dhl})
    cudaFree(p);
  std::printf("%s\n", failed ? "FAIL" : "PASS");
  return failed ? 1 : 0;
}
