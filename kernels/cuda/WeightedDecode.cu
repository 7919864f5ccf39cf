//===- WeightedDecode.cu - split-K decode attention with log-weights -----===//
//
// out = softmax(scale q kᵀ + log w) v for L <= 16 queries per head over a
// (compressed) cache of M tokens, flash-decoding style:
//   grid (splits, row chunks, B * Hkv): a CTA streams its share of the keys
//   of one KV head in tiles of 32 through shared memory (cp.async, two
//   stages) and serves every query row of the GQA group with them, so each
//   key/value byte is read from HBM once. Warps split the query rows; in a
//   warp, lane l scores key l of the tile, the online softmax runs on
//   warp-wide max/sum, and P·V splits Dv across lanes. Each CTA writes
//   (max, sum, acc) per row; a combine kernel (one CTA per row, launched
//   as a programmatic dependent of the split kernel) merges the splits.
// That is the CUDA-core path; f16/bf16 with D = Dv = 64 or 128 take the
// tensor-core kernel below (64-key tiles, three buffers, mma.sync), whose
// tiles arrive by TMA (boxes in the 128-byte swizzle, one thread issuing,
// an mbarrier a stage) where the strides allow a tensor map, else by
// cp.async. Keys and values may be paged (a pool and a block table).
// Splits: one wave of CTAs, down to one tile per split for small batches;
// with one split a head the tensor-core kernel writes the output itself.
// The split kernels are programmatic dependents of whatever precedes them
// (they wait for it before touching memory) and the combine lets its own
// dependents launch at once, so back-to-back calls overlap.
//
//===----------------------------------------------------------------------===//

#include "balancekv/Support/CompressedLayout.h"
#include "kernels/cuda/Common.cuh"
#include "kernels/cuda/Launch.h"
#include "kernels/cuda/TensorMap.h"

#include <cuda_pipeline.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <tuple>

namespace balancekv::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kTile = 32;
constexpr int kRowsPerWarp = 8;
constexpr int kRowsPerCta = kWarps * kRowsPerWarp;
constexpr float kLog2e = 1.4426950408889634f;
// Splits of at most this many keys copy their log-weights asynchronously.
constexpr int64_t kAsyncLogWeightKeys = 1024;

// Programmatic dependent launch (sm_90): the split kernel lets the combine
// kernel be scheduled while its last CTAs run; the combine kernel waits for
// the split kernel's results before reading them. Hides one launch latency.
__device__ __forceinline__ void allowDependentLaunch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ __forceinline__ void waitForPrerequisiteGrid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

struct DecodeParams {
  const void *q, *k, *v;
  int64_t qs[4], ks[3], vs[3];
  Paging paging; // k and v through a block table (ks, vs: page, h, slot)
  const float *lw;
  const int32_t *kvLen;
  bool kvLenPerHead; // kvLen [B, Hkv] (ragged heads) instead of [B]
  float *partial; // [B*Hq*L][splits][Dv + 2]
  // Tensor-core path with one split a head: the split kernel normalises and
  // writes `out` itself (no partials, no combine kernel).
  void *out;
  int64_t os[4];
  bool directOut;
  int64_t m, chunk;
  int d, dv, group, queryLen, rows, kvHeads, splits, ldk;
  float scaleLog2;
  bool causal, lwAsync;
  // kTma: which of (row or slot, head, batch or page) each of the tensor
  // maps' dims 1..3 is (the maps order them by stride).
  int8_t tmaOrder[3];
};

/// 16 bytes global -> shared, bypassing L1, with an L2 prefetch of the
/// surrounding 256 bytes (a key row): the tiles stream once, in whole rows.
__device__ __forceinline__ void copyAsync16(void *dst, const void *src) {
  const uint32_t d = sharedAddress(dst);
  asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16;\n" ::"r"(d),
               "l"(src)
               : "memory");
}

/// cp.async of `bytes` <= 4 from global memory (copyAsync16Fill in
/// Common.cuh for 16), the rest of the destination zero-filled.
__device__ __forceinline__ void copyAsync4Fill(void *dst, const void *src,
                                               int bytes) {
  const uint32_t d = sharedAddress(dst);
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(d),
               "l"(src), "r"(bytes)
               : "memory");
}

/// Rows [t0, t0 + rows) of one head (`perRow` 16-byte chunks each) into
/// shared memory; rows past `len` repeat the last one. On whole tiles a
/// thread keeps one column and, in a dense cache, steps its source pointer
/// by rows instead of clamping and multiplying a 64-bit row index per chunk
/// (a paged one looks each row's page up: a tile may span pages).
template <typename T>
__device__ __forceinline__ void copyRows16(T *dst, int ld,
                                           const CacheRows<T> &head, int64_t t0,
                                           int64_t len, int rows, int perRow) {
  constexpr int kPer = 16 / sizeof(T);
  const int tid = threadIdx.x, nthreads = blockDim.x;
  if (t0 + rows <= len && nthreads % perRow == 0) {
    const int r0 = tid / perRow, c = tid % perRow, step = nthreads / perRow;
    T *out = dst + r0 * ld + c * kPer;
    if (head.pages) {
      for (int r = r0; r < rows; r += step, out += step * ld)
        copyAsync16(out, head(t0 + r) + c * kPer);
      return;
    }
    const T *src = head(t0 + r0) + c * kPer;
    const int64_t srcStep = int64_t(step) * head.stride;
    for (int r = r0; r < rows; r += step, src += srcStep, out += step * ld)
      copyAsync16(out, src);
    return;
  }
  for (int e = tid; e < rows * perRow; e += nthreads) {
    int r = e / perRow, c = e % perRow;
    int64_t j = min(t0 + r, len - 1);
    copyAsync16(dst + r * ld + c * kPer, head(j) + c * kPer);
  }
}

/// Keys [t0, t0 + rows) of one KV head and their values into shared memory
/// (rows past `len` repeat the last key; the caller masks them), and their
/// log-weights (natural log; 0 past `len`; scaled by log2(e) where used).
/// One cp.async group on the vector path; the log-weights join it for
/// short splits (`lwAsync`).
template <typename T, bool kVec>
__device__ void loadKVTile(T *kd, int ldk, T *vd, int ldv, float *lwd,
                           const CacheRows<T> &kHead, const CacheRows<T> &vHead,
                           const float *lwHead, int64_t t0, int64_t len,
                           int rows, int d, int dv, bool lwAsync,
                           bool rowsIssued = false) {
  const int tid = threadIdx.x, nthreads = blockDim.x;
  const bool asyncLw = kVec && lwAsync && lwHead;
  if constexpr (kVec) {
    constexpr int kPer = 16 / sizeof(T);
    if (!rowsIssued) {
      copyRows16<T>(kd, ldk, kHead, t0, len, rows, d / kPer);
      copyRows16<T>(vd, ldv, vHead, t0, len, rows, dv / kPer);
    }
    // Short splits copy the log-weights in the same cp.async group: a plain
    // load stalls the issuing warps for a DRAM round trip on every tile,
    // which a CTA of a few tiles cannot hide (-5 to -8 % on 18-136 MB
    // caches). Long streams keep the plain load: measured 1-4 % faster on
    // 0.3-4 GB caches (it paces each CTA's requests).
    // bench/results/2026-11-24-h100-decode-logweights.md
    if (asyncLw && reinterpret_cast<uintptr_t>(lwHead + t0) % 16 == 0) {
      for (int e = tid; e < rows / 4; e += nthreads) {
        const int64_t j = t0 + 4 * e;
        const int64_t left = len - j;
        if (left >= 4 || left <= 0) {
          copyAsync16Fill(lwd + 4 * e, lwHead + (left > 0 ? j : 0),
                          left > 0 ? 16 : 0);
        } else {
          // The last 1-3 weights: 4-byte copies, so that no 16-byte access
          // reaches past the tensor (compute-sanitizer initcheck flagged the
          // zero-filling 16-byte form at the end of an M = 70 cache).
          for (int i = 0; i < 4; ++i)
            copyAsync4Fill(lwd + 4 * e + i, lwHead + (i < left ? j + i : 0),
                           i < left ? 4 : 0);
        }
      }
    } else if (asyncLw) {
      for (int e = tid; e < rows; e += nthreads) {
        const int64_t j = t0 + e;
        copyAsync4Fill(lwd + e, lwHead + (j < len ? j : 0), j < len ? 4 : 0);
      }
    }
  } else {
    for (int e = tid; e < rows * d; e += nthreads) {
      int r = e / d, x = e % d;
      kd[r * ldk + x] = kHead(min(t0 + r, len - 1))[x];
    }
    for (int e = tid; e < rows * dv; e += nthreads) {
      int r = e / dv, x = e % dv;
      vd[r * ldv + x] = vHead(min(t0 + r, len - 1))[x];
    }
  }
  if (!asyncLw && tid < rows) {
    int64_t j = t0 + tid;
    lwd[tid] = lwHead && j < len ? lwHead[j] : 0.0f;
  }
  __pipeline_commit();
}

/// Runs `body(stage, t0)` over the tiles [begin, end) of `tile` keys with a
/// cp.async pipeline of `kStages` buffers. The first tiles are requested
/// before `started()` runs, so whatever it loads (the queries) overlaps
/// their round trip. Two stages: tile t + 1 streams in while tile t is
/// used. More: one barrier per tile, and the tile kStages - 1 ahead is
/// requested before tile t is used (the buffer it refills was used by tile
/// t - 1, which every thread has finished at that barrier).
template <int kStages, typename Load, typename Started, typename Body>
__device__ __forceinline__ void pipelinedTiles(int64_t begin, int64_t end,
                                               int tile, Load &&load,
                                               Started &&started,
                                               Body &&body) {
  static_assert(kStages >= 2, "a pipeline needs two buffers");
  if constexpr (kStages == 2) {
    if (begin < end)
      load(0, begin);
    if (begin + tile < end)
      load(1, begin + tile);
    started();
    int stage = 0;
    for (int64_t t0 = begin; t0 < end; t0 += tile, stage ^= 1) {
      if (t0 + tile < end)
        __pipeline_wait_prior(1);
      else
        __pipeline_wait_prior(0);
      __syncthreads();
      body(stage, t0);
      __syncthreads(); // the stage is refilled next
      if (t0 + 2 * tile < end)
        load(stage, t0 + 2 * tile);
    }
  } else {
    // One cp.async group per tile slot, empty past the end, so that
    // "all but the newest kStages - 2 groups" is always tile t.
    for (int s = 0; s < kStages - 1; ++s) {
      if (begin + s * tile < end)
        load(s, begin + s * tile);
      else
        __pipeline_commit();
    }
    started();
    int stage = 0;
    for (int64_t t0 = begin; t0 < end; t0 += tile) {
      __pipeline_wait_prior(kStages - 2);
      __syncthreads();
      const int64_t ahead = t0 + int64_t(kStages - 1) * tile;
      const int refill = stage == 0 ? kStages - 1 : stage - 1;
      if (ahead < end)
        load(refill, ahead);
      else
        __pipeline_commit();
      body(stage, t0);
      stage = stage + 1 == kStages ? 0 : stage + 1;
    }
    __syncthreads(); // the caller may reuse the buffers
  }
}

/// The keys [begin, end) of one split of one (batch, KV head), of the
/// `len` valid ones, and where that head's keys, values and log-weights are.
template <typename T> struct SplitSlice {
  int64_t len, begin, end;
  CacheRows<T> k, v;
  const float *lw;
};

template <typename T>
__device__ __forceinline__ SplitSlice<T>
splitSlice(const DecodeParams &p, int b, int hkv, int bh, int split) {
  SplitSlice<T> s;
  s.len =
      p.kvLen
          ? min(int64_t(p.kvLen[p.kvLenPerHead ? b * p.kvHeads + hkv : b]), p.m)
          : p.m;
  s.begin = int64_t(split) * p.chunk;
  s.end = min(s.begin + p.chunk, s.len);
  s.k = cacheRows<T>(p.k, p.ks, p.paging, b, hkv);
  s.v = cacheRows<T>(p.v, p.vs, p.paging, b, hkv);
  s.lw = p.lw ? p.lw + int64_t(bh) * p.m : nullptr;
  return s;
}

/// Keys a query row may see: all `len`, or with `causal` those up to its
/// position len - L + l.
__device__ __forceinline__ int64_t visibleKeys(int64_t len, int queryLen,
                                               int l, bool causal) {
  return causal ? min(len, len - queryLen + l + 1) : len;
}

template <typename T, int VPL, bool kVec>
__global__ void __launch_bounds__(kWarps * 32)
    decodeSplitKernel(DecodeParams p) {
  extern __shared__ __align__(16) unsigned char smem[];
  waitForPrerequisiteGrid(); // launched early: inputs and workspace are ready
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int split = blockIdx.x, rowChunk = blockIdx.y;
  const int bh = blockIdx.z;
  const int b = bh / p.kvHeads, hkv = bh % p.kvHeads;
  const int row0 = rowChunk * kRowsPerCta;
  const int ctaRows = min(kRowsPerCta, p.rows - row0);
  const int dv = p.dv, d = p.d, ldk = p.ldk;

  float *qs = reinterpret_cast<float *>(smem); // [kRowsPerCta][d]
  float *lws = qs + kRowsPerCta * d;            // [2][kTile]
  T *ks = reinterpret_cast<T *>(lws + 2 * kTile); // [2][kTile][ldk]
  T *vsm = ks + 2 * kTile * ldk;                   // [2][kTile][dv]

  // Query rows of this chunk, pre-scaled by scale * log2(e).
  auto loadQueries = [&] {
    for (int e = tid; e < ctaRows * d; e += blockDim.x) {
      int r = e / d, x = e % d, gr = row0 + r;
      int hq = hkv * p.group + gr / p.queryLen, l = gr % p.queryLen;
      const T *qp = static_cast<const T *>(p.q) + b * p.qs[0] +
                    hq * p.qs[1] + l * p.qs[2];
      qs[r * d + x] = toFloat(qp[x]) * p.scaleLog2;
    }
  };

  const SplitSlice<T> sl = splitSlice<T>(p, b, hkv, bh, split);
  const int64_t len = sl.len, begin = sl.begin, end = sl.end;
  const CacheRows<T> kHead = sl.k, vHead = sl.v;
  const float *lwHead = sl.lw;

  auto loadTile = [&](int stage, int64_t t0) {
    loadKVTile<T, kVec>(ks + stage * kTile * ldk, ldk, vsm + stage * kTile * dv,
                        dv, lws + stage * kTile, kHead, vHead, lwHead, t0, len,
                        kTile, d, dv, p.lwAsync);
  };

  // Rows of this warp: warp, warp + kWarps, ... (at most kRowsPerWarp).
  float mRow[kRowsPerWarp], lRow[kRowsPerWarp], acc[kRowsPerWarp][VPL];
  int64_t limit[kRowsPerWarp];
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    mRow[rr] = -INFINITY;
    lRow[rr] = 0.0f;
#pragma unroll
    for (int c = 0; c < VPL; ++c)
      acc[rr][c] = 0.0f;
    int gr = row0 + warp + rr * kWarps;
    limit[rr] = visibleKeys(len, p.queryLen, gr % p.queryLen, p.causal);
  }

  pipelinedTiles<2>(begin, end, kTile, loadTile, loadQueries,
                 [&](int stage, int64_t t0) {
    const T *kt = ks + stage * kTile * ldk;
    const T *vt = vsm + stage * kTile * dv;
    const int64_t j = t0 + lane;
    // Scores of key `lane` for this warp's rows.
    float s[kRowsPerWarp];
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr)
      s[rr] = 0.0f;
    if constexpr (kVec) {
      // 16-byte reads; the row stride is an odd number of 16-byte units, so
      // each 8-lane phase hits distinct banks.
      constexpr int kPer = 16 / sizeof(T);
      for (int x = 0; x < d; x += kPer) {
        union {
          uint4 u;
          T e[kPer];
        } kv;
        kv.u = *reinterpret_cast<const uint4 *>(kt + lane * ldk + x);
#pragma unroll
        for (int rr = 0; rr < kRowsPerWarp; ++rr) {
          int r = warp + rr * kWarps;
          if (r < ctaRows) {
            const float *qr = qs + r * d + x;
#pragma unroll
            for (int e = 0; e < kPer; ++e)
              s[rr] += qr[e] * toFloat(kv.e[e]);
          }
        }
      }
    } else {
      for (int x = 0; x < d; ++x) {
        float kx = toFloat(kt[lane * ldk + x]);
#pragma unroll
        for (int rr = 0; rr < kRowsPerWarp; ++rr) {
          int r = warp + rr * kWarps;
          if (r < ctaRows)
            s[rr] += qs[r * d + x] * kx;
        }
      }
    }
    const float lwj = lws[stage * kTile + lane] * kLog2e;
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      int r = warp + rr * kWarps;
      if (r >= ctaRows)
        continue;
      float sc = j < limit[rr] && j < end ? s[rr] + lwj : -INFINITY;
      float mt = sc;
#pragma unroll
      for (int o = 16; o > 0; o >>= 1)
        mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, o));
      float mNew = fmaxf(mRow[rr], mt);
      if (mNew == -INFINITY)
        continue; // nothing visible yet
      float corr = exp2f(mRow[rr] - mNew);
      float pj = exp2f(sc - mNew);
      float ps = pj;
#pragma unroll
      for (int o = 16; o > 0; o >>= 1)
        ps += __shfl_xor_sync(0xffffffffu, ps, o);
      lRow[rr] = lRow[rr] * corr + ps;
      mRow[rr] = mNew;
#pragma unroll
      for (int c = 0; c < VPL; ++c)
        acc[rr][c] *= corr;
      for (int k = 0; k < kTile; ++k) {
        float pk = __shfl_sync(0xffffffffu, pj, k);
        const T *vr = vt + k * dv + lane * VPL;
#pragma unroll
        for (int c = 0; c < VPL; ++c)
          acc[rr][c] += pk * toFloat(vr[c]);
      }
    }
  });

  allowDependentLaunch(); // only the partial results are left to write
  // Partial results: [row][split][Dv + 2] = acc, max, sum.
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    int r = warp + rr * kWarps;
    if (r >= ctaRows)
      continue;
    int gr = row0 + r;
    int hq = hkv * p.group + gr / p.queryLen, l = gr % p.queryLen;
    int64_t rowId = (int64_t(b) * (p.kvHeads * p.group) + hq) * p.queryLen + l;
    float *out = p.partial + (rowId * p.splits + split) * (dv + 2);
#pragma unroll
    for (int c = 0; c < VPL; ++c)
      out[lane * VPL + c] = acc[rr][c];
    if (lane == 0) {
      out[dv] = mRow[rr];
      out[dv + 1] = lRow[rr];
    }
  }
}


//===----------------------------------------------------------------------===//
// Tensor-core path (f16/bf16, D and Dv multiples of 16 up to 128)
//===----------------------------------------------------------------------===//

constexpr int kMmaRows = 16;  // query rows per CTA (one m16 tile)
constexpr int kMmaTile = 64;  // keys per CTA tile; 16 per warp
// Three buffers (two CTAs of 105 KB per SM at D = 128): 0.5-1 % faster than
// two on most shapes, never measurably slower (2026-11-24-h100-decode-stages).
constexpr int kMmaStages = 3;
// (Tiles by 1-D bulk copies, TMA, one per key or value row on an mbarrier,
// instead of 16-byte cp.async: 2x slower on an H200, e.g. 168.6 vs 83.5 µs
// at B 8 x 32k x 4; bench/results/2026-12-02-h200-paged.md.)

/// kTma tiles: TMA boxes of 64 rows x 64 columns (128 bytes) in the
/// 128-byte swizzle, D / 64 boxes a tile side by side; the 16-byte chunk c
/// of row r sits at chunk c ^ (r & 7) of its 128-byte line, so the mma
/// fragment loads and ldmatrix hit 32 distinct banks without padding.
constexpr int kBoxCols = 64;
constexpr int kSwizzleAlign = 1024; // the 128-byte swizzle's smem alignment
// At most this many TMA boxes a tile side (pages of 8 tokens); smaller
// pages take the cp.async tiles.
constexpr int kMaxPageBoxes = kMmaTile / 8;

/// Element (row, col) of a swizzled tile of `cols` columns.
template <typename T>
__device__ __forceinline__ const T *swizzled(const T *tile, int cols, int row,
                                             int col) {
  const int box = col / kBoxCols, inBox = col % kBoxCols;
  const int chunk = (inBox / 8) ^ (row & 7);
  return tile + box * kMmaTile * kBoxCols + row * kBoxCols + chunk * 8 +
         inBox % 8;
}

/// One TMA load of box (x, row, head, batch) of a 4-d map into `dst`,
/// counted on `bar`'s transactions.
__device__ __forceinline__ void tmaLoad4d(void *dst, const CUtensorMap *map,
                                          int x, int row, int head, int batch,
                                          uint64_t *bar) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::"
      "bytes [%0], [%1, {%2, %3, %4, %5}], [%6];\n" ::"r"(sharedAddress(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(x), "r"(row), "r"(head),
      "r"(batch), "r"(sharedAddress(bar))
      : "memory");
}

/// pipelinedTiles over mbarriers: `load(stage, t0)` completes full[stage]'s
/// phase when the tile has landed; one barrier per tile still orders the
/// refill of a buffer after every warp has used it.
template <int kStages, typename Load, typename Started, typename Body>
__device__ __forceinline__ void
pipelinedTilesMbarrier(int64_t begin, int64_t end, int tile, uint64_t *full,
                       Load &&load, Started &&started, Body &&body) {
  for (int s = 0; s < kStages - 1; ++s)
    if (begin + s * tile < end)
      load(s, begin + s * tile);
  started();
  int stage = 0;
  uint32_t parity = 0;
  for (int64_t t0 = begin; t0 < end; t0 += tile) {
    mbarrierWait(&full[stage], parity);
    __syncthreads();
    const int64_t ahead = t0 + int64_t(kStages - 1) * tile;
    if (ahead < end)
      load(stage == 0 ? kStages - 1 : stage - 1, ahead);
    body(stage, t0);
    if (++stage == kStages) {
      stage = 0;
      parity ^= 1;
    }
  }
  __syncthreads(); // the caller may reuse the buffers
}

/// A paged cache: brings the block-table entry of this CTA's first tile into
/// L2 before the prerequisite grid is waited for, so that the first tile's
/// boxes do not wait a DRAM round trip for their page ids (B 1 x 32k at page
/// 16: 1.05x the dense decode, a 16 µs call of 4 tiles a CTA). A prefetch
/// reads nothing into registers and L2 is coherent with the prerequisite
/// grid's writes, so it is safe before the wait; the entry is inside the
/// table (max_pages * page_size >= m).
__device__ __forceinline__ void prefetchFirstPageId(const DecodeParams &p) {
  if (!p.paging.table || threadIdx.x != 0)
    return;
  const int64_t first = int64_t(blockIdx.x) * p.chunk;
  if (first >= p.m)
    return;
  const int32_t *entry = p.paging.table +
                         int64_t(blockIdx.z / p.kvHeads) * p.paging.tableStride +
                         (first >> p.paging.pageShift);
  asm volatile("prefetch.global.L2 [%0];" ::"l"(entry));
}

/// Bytes of one kTma stage: swizzled key and value tiles, log-weights.
template <typename T, int D, int DV> constexpr size_t tmaStageBytes() {
  return sizeof(T) * kMmaTile * (D + DV) + sizeof(float) * kMmaTile;
}

template <typename T, int D, int DV, bool kTma>
__global__ void __launch_bounds__(kWarps * 32)
    decodeMmaKernel(DecodeParams p, const __grid_constant__ CUtensorMap kMap,
                    const __grid_constant__ CUtensorMap vMap) {
  extern __shared__ __align__(16) unsigned char smem[];
  prefetchFirstPageId(p);
  waitForPrerequisiteGrid(); // launched early: inputs and workspace are ready
  constexpr int kLdk = D + 8, kLdv = DV + 8; // 16-byte padded rows
  constexpr int kKSteps = D / 16, kNTiles = DV / 8;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, t = lane & 3;
  const int split = blockIdx.x, row0 = blockIdx.y * kMmaRows;
  const int bh = blockIdx.z, b = bh / p.kvHeads, hkv = bh % p.kvHeads;
  const int ctaRows = min(kMmaRows, p.rows - row0);

  // cp.async: [stages][kMmaTile][kLdk] keys, the same for values, then
  // [stages][kMmaTile] log-weights. kTma: from a 1024-byte boundary,
  // [stages][D / 64 boxes][kMmaTile][64] keys (swizzled), the same for
  // values, log-weights, then one mbarrier a stage.
  // (alignShared: key fragments and log-weights by ld.shared; through an
  // integer, generic loads and their address arithmetic were a quarter of
  // a tile's instructions.)
  unsigned char *tiles = kTma ? alignShared(smem, kSwizzleAlign) : smem;
  constexpr int kTileK = kTma ? kMmaTile * D : kMmaTile * kLdk;
  constexpr int kTileV = kTma ? kMmaTile * DV : kMmaTile * kLdv;
  T *kBuf = reinterpret_cast<T *>(tiles);
  T *vBuf = kBuf + kMmaStages * kTileK;
  float *lwBuf = reinterpret_cast<float *>(vBuf + kMmaStages * kTileV);
  uint64_t *full = reinterpret_cast<uint64_t *>(lwBuf + kMmaStages * kMmaTile);
  if constexpr (kTma) {
    // 33 arrivals a phase: warp 0's lanes when their log-weight copies land
    // (.noinc), thread 0 with the boxes' bytes.
    if (tid == 0) {
      for (int s = 0; s < kMmaStages; ++s)
        mbarrierInit(&full[s], 33);
      asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();
  }
  // Element (row, col) of stage `stage`'s key / value tile.
  auto kAt = [&](int stage, int row, int col) -> const T * {
    const T *tile = kBuf + stage * kTileK;
    return kTma ? swizzled(tile, D, row, col) : tile + row * kLdk + col;
  };
  auto vAt = [&](int stage, int row, int col) -> const T * {
    const T *tile = vBuf + stage * kTileV;
    return kTma ? swizzled(tile, DV, row, col) : tile + row * kLdv + col;
  };

  // Q fragments (A operand), rows g and g + 8 of this row chunk; rows past
  // the group are zero. Q stays in its storage type: no extra rounding.
  uint32_t qa[kKSteps][4];
  auto loadQueries = [&] {
    auto rowPtr = [&](int r) -> const T * {
      if (r >= ctaRows)
        return nullptr;
      int gr = row0 + r;
      int hq = hkv * p.group + gr / p.queryLen, l = gr % p.queryLen;
      return static_cast<const T *>(p.q) + b * p.qs[0] + hq * p.qs[1] +
             l * p.qs[2];
    };
    const T *r0 = rowPtr(g), *r1 = rowPtr(g + 8);
    auto pair = [&](const T *row, int x) -> uint32_t {
      if (!row)
        return 0u;
      union {
        uint32_t u;
        T e[2];
      } v;
      v.e[0] = row[x];
      v.e[1] = row[x + 1];
      return v.u;
    };
#pragma unroll
    for (int ks = 0; ks < kKSteps; ++ks) {
      int x = ks * 16 + 2 * t;
      qa[ks][0] = pair(r0, x);
      qa[ks][1] = pair(r1, x);
      qa[ks][2] = pair(r0, x + 8);
      qa[ks][3] = pair(r1, x + 8);
    }
  };

  const SplitSlice<T> sl = splitSlice<T>(p, b, hkv, bh, split);
  const int64_t len = sl.len, begin = sl.begin, end = sl.end;
  const CacheRows<T> kHead = sl.k, vHead = sl.v;
  const float *lwHead = sl.lw;

  // A paged cache's whole tiles: thread tid copies 16-byte column c of
  // rows r0, r0 + kStep, ... (copyRows16's order) of keys and values, whose
  // page ids it looked up a tile ahead, so that the copies never wait for
  // the block table (looked up in the copy loop, they made a 32k x B 8
  // decode 1.21x the dense one at page 16 on an H200; rows past len repeat
  // the last, as in copyRows16).
  static_assert(D == DV, "the tensor-core decode reads square heads");
  constexpr int kPerRow = D * int(sizeof(T)) / 16;
  constexpr int kStep = kWarps * 32 / kPerRow, kMine = kMmaTile / kStep;
  const int r0 = tid / kPerRow, c = tid % kPerRow;
  int32_t pageIds[kMine];
  int64_t pagesOf = -1; // the tile pageIds holds
  auto lookUpPages = [&](int64_t t0) {
#pragma unroll
    for (int i = 0; i < kMine; ++i)
      pageIds[i] = __ldg(kHead.pages +
                         (min(t0 + r0 + i * kStep, len - 1) >> kHead.shift));
    pagesOf = t0;
  };
  // kTma: thread 0 loads the boxes (rows past M come back as zeros, masked
  // like the rows past len), warp 0 the log-weights.
  // One box: columns x.., rows (or a page's slots) row.., of `outer` (the
  // batch, or a page), in the maps' dimension order.
  auto box = [&](const CUtensorMap *map, T *dst, int x, int row, int outer,
                 uint64_t *bar) {
    auto pick = [&](int o) { return o == 0 ? row : o == 1 ? hkv : outer; };
    tmaLoad4d(dst, map, x, pick(p.tmaOrder[0]), pick(p.tmaOrder[1]),
              pick(p.tmaOrder[2]), bar);
  };
  // A paged cache: lane i of warp 0 (i < the tile's pages) looks page i of
  // a tile up a tile ahead (rows past len: the last one's page), so that
  // issuing never waits for the block table, and issues that page's boxes
  // (one thread issuing all 16 boxes of a page-16 tile left the other warps
  // waiting at the CTA barriers twice as long as dense: B 1 x 32k x 4,
  // bench/results/2026-12-02-h200-paged.md).
  const int pageShift = p.paging.pageShift;
  const int pageRows = min(kMmaTile, 1 << pageShift);
  const bool issuesPage = lane * pageRows < kMmaTile;
  int32_t pageId = 0;
  int64_t idOf = -1;
  auto lookUpId = [&](int64_t t0) {
    pageId =
        __ldg(kHead.pages + (min(t0 + lane * pageRows, len - 1) >> pageShift));
    idOf = t0;
  };
  auto loadTileTma = [&](int stage, int64_t t0) {
    if (warp != 0)
      return;
    uint64_t *bar = &full[stage];
    T *kd = kBuf + stage * kTileK, *vd = vBuf + stage * kTileV;
    if (!kHead.pages) {
      if (lane == 0) {
        mbarrierArriveExpectTx(bar, kMmaTile * (D + DV) * sizeof(T));
#pragma unroll
        for (int c = 0; c < D / kBoxCols; ++c)
          box(&kMap, kd + c * kMmaTile * kBoxCols, c * kBoxCols, int(t0), b,
              bar);
#pragma unroll
        for (int c = 0; c < DV / kBoxCols; ++c)
          box(&vMap, vd + c * kMmaTile * kBoxCols, c * kBoxCols, int(t0), b,
              bar);
      }
    } else {
      // The expected bytes before any box can complete on the barrier.
      if (lane == 0)
        mbarrierArriveExpectTx(bar, kMmaTile * (D + DV) * sizeof(T));
      __syncwarp();
      if (issuesPage) {
        if (idOf != t0)
          lookUpId(t0);
        const int slot0 = int(t0 & ((int64_t(1) << pageShift) - 1));
        const int row = lane * pageRows * kBoxCols;
#pragma unroll
        for (int c = 0; c < D / kBoxCols; ++c)
          box(&kMap, kd + c * kMmaTile * kBoxCols + row, c * kBoxCols, slot0,
              pageId, bar);
#pragma unroll
        for (int c = 0; c < DV / kBoxCols; ++c)
          box(&vMap, vd + c * kMmaTile * kBoxCols + row, c * kBoxCols, slot0,
              pageId, bar);
        lookUpId(t0 + kMmaTile); // the next tile's, used a tile later
      }
    }
    float *lwd = lwBuf + stage * kMmaTile;
#pragma unroll
    for (int r = lane; r < kMmaTile; r += 32) {
      const bool in = lwHead && t0 + r < len;
      copyAsync4Fill(lwd + r,
                     in ? lwHead + t0 + r : static_cast<const float *>(p.q),
                     in ? 4 : 0);
    }
    cpAsyncMbarrierArrive(bar);
  };
  auto loadTile = [&](int stage, int64_t t0) {
    T *kd = kBuf + stage * kTileK, *vd = vBuf + stage * kTileV;
    const bool paged = kHead.pages && t0 + kMmaTile <= len;
    if (paged) {
      if (pagesOf != t0)
        lookUpPages(t0);
#pragma unroll
      for (int i = 0; i < kMine; ++i) {
        const int r = r0 + i * kStep;
        copyAsync16(kd + r * kLdk + c * 8,
                    kHead.inPage(pageIds[i], t0 + r) + c * 8);
        copyAsync16(vd + r * kLdv + c * 8,
                    vHead.inPage(pageIds[i], t0 + r) + c * 8);
      }
      lookUpPages(t0 + kMmaTile); // the next tile's, used a tile later
    }
    loadKVTile<T, true>(kd, kLdk, vd, kLdv, lwBuf + stage * kMmaTile, kHead,
                        vHead, lwHead, t0, len, kMmaTile, D, DV, p.lwAsync,
                        /*rowsIssued=*/paged);
  };

  // Per lane: rows g (index 0) and g + 8 (index 1).
  float mRow[2] = {-INFINITY, -INFINITY}, lRow[2] = {0.0f, 0.0f};
  float o[kNTiles][4] = {};
  // The keys row g (+ 8) sees in this split: [begin, bound).
  int64_t bound[2];
#pragma unroll
  for (int hr = 0; hr < 2; ++hr)
    bound[hr] =
        min(end, visibleKeys(len, p.queryLen, (row0 + g + 8 * hr) % p.queryLen,
                             p.causal));

  auto body = [&](int stage, int64_t t0) {
    const float *lwt = lwBuf + stage * kMmaTile + warp * 16;
    if constexpr (kTma) {
      // The boxes hold whole rows past len (slots the caller may never have
      // written: NaN there would survive P = 0 in P V): this warp zeroes its
      // value rows past len (only in a split's last tile, which no load
      // refills after).
      const int64_t valid = len - (t0 + warp * 16);
      if (valid < 16) {
        for (int e = lane; e < 16 * (DV / 8); e += 32) {
          const int r = e / (DV / 8), c = e % (DV / 8);
          if (r >= valid)
            *reinterpret_cast<uint4 *>(const_cast<T *>(
                vAt(stage, warp * 16 + r, c * 8))) = make_uint4(0, 0, 0, 0);
        }
        __syncwarp();
      }
    }
    const int64_t key0 = t0 + warp * 16;

    // S = Q Kᵀ for this warp's 16 keys: two n8 tiles.
    float sAcc[2][4] = {};
#pragma unroll
    for (int nt = 0; nt < 2; ++nt)
#pragma unroll
      for (int ks = 0; ks < kKSteps; ++ks) {
        const int row = warp * 16 + nt * 8 + g, col = ks * 16 + 2 * t;
        Mma16816<T>::run(
            sAcc[nt], qa[ks],
            *reinterpret_cast<const uint32_t *>(kAt(stage, row, col)),
            *reinterpret_cast<const uint32_t *>(kAt(stage, row, col + 8)));
      }
    // Online softmax (log2 domain) on the fragments.
    float pv[2][4];
    float corr[2];
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      float mt = -INFINITY;
      // Keys of this warp's 16 the row sees (one 32-bit compare a key).
      const int64_t ahead = bound[hr] - key0;
      const int visible = ahead >= 16 ? 16 : ahead <= 0 ? 0 : int(ahead);
#pragma unroll
      for (int nt = 0; nt < 2; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          int kk = nt * 8 + 2 * t + e;
          float v = fmaf(lwt[kk], kLog2e, sAcc[nt][2 * hr + e] * p.scaleLog2);
          v = kk < visible ? v : -INFINITY;
          pv[nt][2 * hr + e] = v;
          mt = fmaxf(mt, v);
        }
      mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 1));
      mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 2));
      float mNew = fmaxf(mRow[hr], mt);
      float mUse = mNew == -INFINITY ? 0.0f : mNew;
      corr[hr] = exp2f(mRow[hr] - mUse);
      float rs = 0.0f;
#pragma unroll
      for (int nt = 0; nt < 2; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float pe = exp2f(pv[nt][2 * hr + e] - mUse);
          pv[nt][2 * hr + e] = pe;
          rs += pe;
        }
      rs += __shfl_xor_sync(0xffffffffu, rs, 1);
      rs += __shfl_xor_sync(0xffffffffu, rs, 2);
      lRow[hr] = lRow[hr] * corr[hr] + rs;
      mRow[hr] = mNew;
    }
    // P as the A operand: the S fragments of the two n-tiles line up with
    // the m16k16 A layout.
    uint32_t pa[4] = {Mma16816<T>::pack(pv[0][0], pv[0][1]),
                      Mma16816<T>::pack(pv[0][2], pv[0][3]),
                      Mma16816<T>::pack(pv[1][0], pv[1][1]),
                      Mma16816<T>::pack(pv[1][2], pv[1][3])};
    // Rescale only when the max of a row this CTA writes moved (corr is
    // exactly 1 otherwise, and 1 * x == x; rows past ctaRows are never
    // written): after the first tiles it rarely does, and the 4 * Dv / 8
    // multiplies were an eighth of a tile's instructions.
    if (__any_sync(0xffffffffu, (g < ctaRows && corr[0] != 1.0f) ||
                                    (g + 8 < ctaRows && corr[1] != 1.0f))) {
#pragma unroll
      for (int nt = 0; nt < kNTiles; ++nt) {
        o[nt][0] *= corr[0];
        o[nt][1] *= corr[0];
        o[nt][2] *= corr[1];
        o[nt][3] *= corr[1];
      }
    }
    // O += P V: V fragments by ldmatrix.trans, two n-tiles per x4.
#pragma unroll
    for (int np = 0; np < kNTiles / 2; ++np) {
      const int mi = lane >> 3, r = lane & 7;
      const T *addr =
          vAt(stage, warp * 16 + (mi & 1) * 8 + r, np * 16 + (mi >> 1) * 8);
      uint32_t vb[4];
      ldmatrixX4Trans(vb, addr);
      Mma16816<T>::run(o[2 * np], pa, vb[0], vb[1]);
      Mma16816<T>::run(o[2 * np + 1], pa, vb[2], vb[3]);
    }
  };
  if constexpr (kTma)
    pipelinedTilesMbarrier<kMmaStages>(begin, end, kMmaTile, full, loadTileTma,
                                       loadQueries, body);
  else
    pipelinedTiles<kMmaStages>(begin, end, kMmaTile, loadTile, loadQueries,
                               body);

  allowDependentLaunch(); // only the partial results are left to write
  // Merge the four warps through shared memory (the tile buffers are free).
  float *red = reinterpret_cast<float *>(smem); // [kWarps][16][DV + 2]
  constexpr int kRed = DV + 2;
#pragma unroll
  for (int nt = 0; nt < kNTiles; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      int r = g + (e >= 2 ? 8 : 0), x = nt * 8 + 2 * t + (e & 1);
      red[(warp * kMmaRows + r) * kRed + x] = o[nt][e];
    }
  if (t == 0)
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      red[(warp * kMmaRows + g + 8 * hr) * kRed + DV] = mRow[hr];
      red[(warp * kMmaRows + g + 8 * hr) * kRed + DV + 1] = lRow[hr];
    }
  __syncthreads();
  if (p.directOut) {
    // The only split of its head: the normalised output (acc / sum).
    for (int e = tid; e < ctaRows * DV; e += kWarps * 32) {
      const int r = e / DV, x = e % DV;
      float mMax = -INFINITY;
#pragma unroll
      for (int w = 0; w < kWarps; ++w)
        mMax = fmaxf(mMax, red[(w * kMmaRows + r) * kRed + DV]);
      float v = 0.0f, sum = 0.0f;
      if (mMax != -INFINITY)
#pragma unroll
        for (int w = 0; w < kWarps; ++w) {
          const float *part = red + (w * kMmaRows + r) * kRed;
          const float scale = exp2f(part[DV] - mMax);
          v += part[x] * scale;
          sum += part[DV + 1] * scale;
        }
      const int gr = row0 + r;
      const int hq = hkv * p.group + gr / p.queryLen, l = gr % p.queryLen;
      T *out = static_cast<T *>(p.out) + b * p.os[0] + hq * p.os[1] +
               l * p.os[2];
      out[x] = fromFloat<T>(sum > 0.0f ? v / sum : 0.0f);
    }
    return;
  }
  for (int e = tid; e < ctaRows * (DV + 2); e += kWarps * 32) {
    int r = e / (DV + 2), x = e % (DV + 2);
    float mMax = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w)
      mMax = fmaxf(mMax, red[(w * kMmaRows + r) * kRed + DV]);
    float v;
    if (x == DV) {
      v = mMax;
    } else {
      v = 0.0f;
      if (mMax != -INFINITY)
#pragma unroll
        for (int w = 0; w < kWarps; ++w)
          v += red[(w * kMmaRows + r) * kRed + x] *
               exp2f(red[(w * kMmaRows + r) * kRed + DV] - mMax);
    }
    int gr = row0 + r;
    int hq = hkv * p.group + gr / p.queryLen, l = gr % p.queryLen;
    int64_t rowId = (int64_t(b) * (p.kvHeads * p.group) + hq) * p.queryLen + l;
    p.partial[(rowId * p.splits + split) * (DV + 2) + x] = v;
  }
}

struct CombineParams {
  const float *partial;
  void *out;
  int64_t os[4];
  int64_t rows;
  int qHeads, queryLen, splits, dv;
};

constexpr int kCombineThreads = 512;

/// One CTA per output row; thread (part, x) merges value column x of every
/// `parts`-th split. A thread loads its splits' (max, sum, value) in batches
/// of kBatch (1, 2, 4 or 8: the launch picks the fewest that cover a
/// thread's splits, up to 8), all in flight together, so the row costs one
/// round trip to L2 on every shape of the benchmark; batches are merged
/// online, then the parts meet in shared memory. (Warp 0 first turning all
/// maxima into weights, then everyone loading values, took two round trips
/// with a barrier between: 0.3-0.8 µs more at B = 1; one warp per row was
/// latency-bound: 42 µs at B 1 x 32k x 4.)
template <typename T, int kBatch>
__global__ void combineKernel(CombineParams p) {
  extern __shared__ float combineSmem[]; // [parts][dv + 2]
  const int64_t row = blockIdx.x;
  const int tid = threadIdx.x, dv = p.dv, parts = blockDim.x / dv;
  const int x = tid % dv, part = tid / dv;
  const int stride = dv + 2;
  const float *base = p.partial + row * p.splits * stride;
  // Whatever follows may launch now (a next decode call waits for this grid
  // before it reads anything): its CTAs start while these finish.
  allowDependentLaunch();
  waitForPrerequisiteGrid(); // the partial results are complete
  float mRun = -INFINITY, vRun = 0.0f, lRun = 0.0f;
  for (int s0 = part; s0 < p.splits; s0 += parts * kBatch) {
    float m[kBatch], v[kBatch], l[kBatch];
#pragma unroll
    for (int k = 0; k < kBatch; ++k) {
      const int s = s0 + k * parts;
      const bool in = s < p.splits;
      m[k] = in ? base[s * stride + dv] : -INFINITY;
      l[k] = in ? base[s * stride + dv + 1] : 0.0f;
      v[k] = in ? base[s * stride + x] : 0.0f;
    }
    float mNew = mRun;
#pragma unroll
    for (int k = 0; k < kBatch; ++k)
      mNew = fmaxf(mNew, m[k]);
    if (mNew == -INFINITY)
      continue; // nothing seen yet
    const float corr = exp2f(mRun - mNew);
    vRun *= corr;
    lRun *= corr;
#pragma unroll
    for (int k = 0; k < kBatch; ++k) {
      const float w = exp2f(m[k] - mNew); // 0 for empty splits
      vRun += w == 0.0f ? 0.0f : v[k] * w;
      lRun += w == 0.0f ? 0.0f : l[k] * w;
    }
    mRun = mNew;
  }
  float *mine = combineSmem + part * stride;
  mine[x] = vRun;
  if (x == 0) {
    mine[dv] = mRun;
    mine[dv + 1] = lRun;
  }
  __syncthreads();
  if (tid < dv) {
    float mMax = -INFINITY;
    for (int q = 0; q < parts; ++q)
      mMax = fmaxf(mMax, combineSmem[q * stride + dv]);
    float num = 0.0f, den = 0.0f;
    if (mMax != -INFINITY)
      for (int q = 0; q < parts; ++q) {
        const float w = exp2f(combineSmem[q * stride + dv] - mMax);
        num += combineSmem[q * stride + tid] * w;
        den += combineSmem[q * stride + dv + 1] * w;
      }
    const int64_t l = row % p.queryLen, hq = (row / p.queryLen) % p.qHeads,
                  b = row / (int64_t(p.queryLen) * p.qHeads);
    T *out =
        static_cast<T *>(p.out) + b * p.os[0] + hq * p.os[1] + l * p.os[2];
    out[tid] = fromFloat<T>(den > 0.0f ? num / den : 0.0f);
  }
}

/// The most splits the workspace holds for `batch` sequences of `m` keys:
/// one tensor-core tile of keys each, and no more CTAs than 8 per
/// multiprocessor (every CTA serves at least one sequence). Small batches
/// need many splits to fill the GPU; large ones need few.
int64_t splitCap(int64_t batch, int64_t m) {
  const int64_t tiles = (m + kMmaTile - 1) / kMmaTile;
  const int64_t fill = (int64_t(multiprocessorCount()) * 8 + batch - 1) /
                       std::max<int64_t>(batch, 1);
  return std::clamp<int64_t>(std::min(tiles, fill), 1, 1024);
}

int chooseSplits(int64_t batch, int64_t kvHeads, int64_t rowChunks,
                 int64_t m) {
  // About 8 CTAs per SM, chunks of >= 8 tiles.
  int64_t ctas = batch * kvHeads * rowChunks;
  int64_t want =
      (multiprocessorCount() * 8 + ctas - 1) / std::max<int64_t>(ctas, 1);
  want = std::min(want, (m + 8 * kTile - 1) / (8 * kTile));
  return int(std::clamp<int64_t>(want, 1, splitCap(batch, m)));
}

/// Chunks of whole tiles for about `p.splits` splits of the `p.m` keys; the
/// split count then drops to the chunks that hold keys. Ragged heads (per
/// head lengths) fill on average 1/kAdaptiveCapacityFactor of their M slots
/// and a split past a head's length exits at once: they get twice that many
/// splits, down to chunks of 8 tiles and within the workspace's cap, so the
/// splits that hold keys still fill the GPU and the longest heads do not
/// leave a tail (H200, B 8 x Hkv 8, lengths uniform in [0, M]: 1.57x the
/// dense decode of the mean length with the dense split count, 1.25x with
/// twice the splits, 1.11x with four times; bench/ragged_decode.py).
void splitIntoChunks(DecodeParams &p, int tile, int64_t batch) {
  if (p.kvLenPerHead) {
    const int64_t ragged =
        int64_t(p.splits) * 2 * CompressedLayout::kAdaptiveCapacityFactor;
    const int64_t minChunk = 8 * int64_t(tile);
    p.splits = int(std::max<int64_t>(
        p.splits, std::min({ragged, (p.m + minChunk - 1) / minChunk,
                            splitCap(batch, p.m)})));
  }
  const int64_t per = (p.m + p.splits - 1) / p.splits;
  p.chunk = std::max<int64_t>(tile, (per + tile - 1) / tile * tile);
  p.splits = int(std::max<int64_t>(1, (p.m + p.chunk - 1) / p.chunk));
  p.lwAsync = p.chunk <= kAsyncLogWeightKeys;
}

bool vecOk(const void *ptr, const int64_t *strides, int dim, int elem) {
  int per = 16 / elem;
  if (reinterpret_cast<uintptr_t>(ptr) % 16 || dim % per)
    return false;
  for (int i = 0; i < 3; ++i)
    if (strides[i] % per)
      return false;
  return true;
}

template <typename T>
const char *launchCombine(const DecodeArgs &a, const DecodeParams &p);

/// A launch of a programmatic dependent of the kernel before it in the
/// stream (`attr` holds the attribute and must outlive the launch).
cudaLaunchConfig_t programmaticLaunch(dim3 grid, dim3 block, size_t smem,
                                      cudaStream_t stream,
                                      cudaLaunchAttribute &attr) {
  attr = {};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  return cfg;
}

/// Launches a split kernel as a programmatic dependent of whatever precedes
/// it in the stream: its CTAs may be placed while that kernel's last ones
/// finish (if it allows it, as the combine kernel does), and wait for it
/// (griddepcontrol.wait) before touching memory.
void launchEarly(const void *kernel, dim3 grid, size_t smem,
                 cudaStream_t stream, DecodeParams &p,
                 CUtensorMap *kMap = nullptr, CUtensorMap *vMap = nullptr) {
  cudaLaunchAttribute early;
  cudaLaunchConfig_t cfg =
      programmaticLaunch(grid, dim3(kWarps * 32), smem, stream, early);
  void *args[] = {&p, kMap, vMap};
  cudaLaunchKernelExC(&cfg, kernel, args);
}

/// A TMA map of a 16-bit cache for decodeMmaKernel's kTma tiles: boxes of
/// `boxRows` rows x 64 columns in the 128-byte swizzle. The cache has
/// `sizes` (row, head, outer) with element strides `strides` (outer, head,
/// row: a tensor's b, h, s, or a pool's page, h, slot); the map orders those
/// three dimensions by stride, as TMA wants, and `order` says which is
/// which. Rows past the sizes read as zeros. False where the driver or the
/// strides do not allow a map.
bool cacheTileMap(CUtensorMap *map, const void *data, const int64_t *strides,
                  const int64_t (&sizes)[3], int dim, int boxRows,
                  balancekv_dtype dtype, int8_t (&order)[3]) {
  const auto encode = tensorMapEncoder();
  if (!encode || reinterpret_cast<uintptr_t>(data) % 16 || dim % kBoxCols)
    return false;
  int8_t byStride[3] = {0, 1, 2};
  auto strideOf = [&](int which) { return strides[2 - which]; };
  std::stable_sort(byStride, byStride + 3, [&](int8_t x, int8_t y) {
    return strideOf(x) < strideOf(y);
  });
  cuuint64_t dims[4] = {cuuint64_t(dim)}, strideBytes[3];
  cuuint32_t box[4] = {kBoxCols};
  for (int i = 0; i < 3; ++i) {
    const int which = byStride[i];
    order[i] = int8_t(which);
    dims[i + 1] = cuuint64_t(sizes[which]);
    box[i + 1] = which == 0 ? cuuint32_t(boxRows) : 1;
    // A dimension of one is never stepped: any valid stride will do.
    const int64_t bytes = sizes[which] == 1 ? 16 : strideOf(which) * 2;
    if (bytes <= 0 || bytes % 16 || bytes >= (int64_t(1) << 40))
      return false;
    strideBytes[i] = cuuint64_t(bytes);
  }
  const cuuint32_t unit[4] = {1, 1, 1, 1};
  // No L2 promotion: a box row is 128 bytes of a wider cache row, and
  // promoting it to 256 bytes fetched the neighbouring box's half again
  // (L2 hit rate 26 %, DRAM 79 % busy by ncu): 0.92-0.95x -> 1.01-1.03x
  // SDPA + mask on the H200's large caches
  // (bench/results/2026-12-02-h200-decode-l2promo-ab.txt).
  return encode(map, tensorMapDataType(dtype), 4, const_cast<void *>(data),
                dims, strideBytes, box, unit, CU_TENSOR_MAP_INTERLEAVE_NONE,
                CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_NONE,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

/// The kTma maps of a decode's keys and values, dense or paged (pages of at
/// least 8 tokens; the page count, which the C API does not take, bounded
/// by what 1 TB of address space holds), or false.
bool decodeTileMaps(const DecodeArgs &a, int d, int dv, CUtensorMap &kMap,
                    CUtensorMap &vMap, DecodeParams &p) {
  const int64_t pageSize = int64_t(1) << a.paging.pageShift;
  if (a.paging.table && pageSize < kMmaTile / kMaxPageBoxes)
    return false;
  // Pages up to the 1 TB of address space a TMA dimension spans.
  const int64_t pageBytes =
      std::max<int64_t>(2 * std::max(a.key.strides[0], a.value.strides[0]), 16);
  const int64_t pages =
      std::min<int64_t>(int64_t(1) << 30, (int64_t(1) << 40) / pageBytes - 1);
  const int64_t sizes[3] = {a.paging.table ? pageSize : a.m, a.kvHeads,
                            a.paging.table ? pages : a.batch};
  // A tile is kMmaTile rows, the count the stage's mbarrier expects: a
  // dense cache's box is a whole tile even where the cache is shorter (TMA
  // fills the rows past M with zeros and counts their bytes), a page's box
  // its slots (kMmaTile / pageSize boxes a tile). (A box of M < kMmaTile rows
  // left the barrier short of its bytes: the decode hung.)
  const int boxRows =
      int(a.paging.table ? std::min<int64_t>(kMmaTile, pageSize) : kMmaTile);
  int8_t vOrder[3];
  return cacheTileMap(&kMap, a.key.data, a.key.strides, sizes, d, boxRows,
                      a.dtype, p.tmaOrder) &&
         cacheTileMap(&vMap, a.value.data, a.value.strides, sizes, dv, boxRows,
                      a.dtype, vOrder) &&
         std::equal(vOrder, vOrder + 3, p.tmaOrder);
}

thread_local DecodeLaunch lastLaunch;

/// Records a launch for lastDecodeLaunch.
void recordLaunch(const char *kernel, dim3 grid, int ctasPerSM, bool combine) {
  lastLaunch = {kernel,      int(grid.x), int(grid.y),
                int(grid.z), ctasPerSM,   combine};
}

template <typename T, int VPL, bool kVec>
const char *launchDecodeTyped(const DecodeArgs &a, DecodeParams &p) {
  cudaStream_t stream = static_cast<cudaStream_t>(a.stream);
  const int rowChunks = (p.rows + kRowsPerCta - 1) / kRowsPerCta;
  p.splits = chooseSplits(a.batch, a.kvHeads, rowChunks, a.m);
  splitIntoChunks(p, kTile, a.batch);
  const size_t smem = sizeof(float) * (kRowsPerCta * p.d + 2 * kTile) +
                      sizeof(T) * 2 * kTile * (p.ldk + p.dv);
  allowDynamicSharedMemory(
      reinterpret_cast<const void *>(decodeSplitKernel<T, VPL, kVec>), smem);
  dim3 grid(unsigned(p.splits), unsigned(rowChunks),
            unsigned(a.batch * a.kvHeads));
  launchEarly(reinterpret_cast<const void *>(decodeSplitKernel<T, VPL, kVec>),
              grid, smem, stream, p);
  recordLaunch("cuda-core", grid, 0, true);
  return launchCombine<T>(a, p);
}

template <typename T>
const char *launchCombine(const DecodeArgs &a, const DecodeParams &p) {
  cudaStream_t stream = static_cast<cudaStream_t>(a.stream);
  CombineParams cp{};
  cp.partial = p.partial;
  cp.out = a.out.data;
  for (int i = 0; i < 4; ++i)
    cp.os[i] = a.out.strides[i];
  cp.rows = a.batch * a.qHeads * a.queryLen;
  cp.qHeads = int(a.qHeads);
  cp.queryLen = int(a.queryLen);
  cp.splits = p.splits;
  cp.dv = p.dv;
  // Value columns x split slices; dv divides kCombineThreads.
  const int parts = std::min(kCombineThreads / cp.dv, cp.splits);
  cudaLaunchAttribute overlap;
  cudaLaunchConfig_t cfg = programmaticLaunch(
      dim3(unsigned(cp.rows)), dim3(unsigned(parts * cp.dv)),
      sizeof(float) * size_t(parts * (cp.dv + 2)), stream, overlap);
  const int perThread = (cp.splits + parts - 1) / parts;
  if (perThread <= 1)
    cudaLaunchKernelEx(&cfg, combineKernel<T, 1>, cp);
  else if (perThread <= 2)
    cudaLaunchKernelEx(&cfg, combineKernel<T, 2>, cp);
  else if (perThread <= 4)
    cudaLaunchKernelEx(&cfg, combineKernel<T, 4>, cp);
  else
    cudaLaunchKernelEx(&cfg, combineKernel<T, 8>, cp);
  cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

/// CTAs of `kernel` with `smem` bytes of shared memory that fit on an SM of
/// the current device (the occupancy API, asked once per device, kernel and
/// size; 2 if it cannot say).
int residentCtas(const void *kernel, size_t smem) {
  static std::mutex mutex;
  static std::map<std::tuple<int, const void *, size_t>, int> known;
  int dev = 0;
  cudaGetDevice(&dev);
  std::lock_guard<std::mutex> lock(mutex);
  auto [it, fresh] = known.try_emplace({dev, kernel, smem}, 2);
  int n = 0;
  if (fresh &&
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kWarps * 32,
                                                    smem) == cudaSuccess &&
      n >= 1)
    it->second = n;
  return it->second;
}

/// Splits for the tensor-core path: fill whole waves of `perSM` resident
/// CTAs per multiprocessor (no half-empty tail wave), down to one tile per
/// CTA: with few sequences the GPU only fills up with short splits.
int chooseMmaSplits(int64_t base, int64_t batch, int64_t m, int perSM) {
  const int64_t wave = int64_t(multiprocessorCount()) * perSM;
  const int64_t splits = std::min(wave / std::max<int64_t>(base, 1),
                                  splitCap(batch, m));
  return int(std::max<int64_t>(splits, 1));
}

template <typename T, int D, int DV>
const char *launchMma(const DecodeArgs &a, DecodeParams &p) {
  cudaStream_t stream = static_cast<cudaStream_t>(a.stream);
  const int rowChunks = (p.rows + kMmaRows - 1) / kMmaRows;
  // Tiles by TMA (one thread, swizzled boxes; 0.84 -> 0.96x SDPA + float
  // mask at B 8 x 32k x 4 on an H200: 16-byte cp.async kept too few bytes
  // in flight); strides or pages TMA cannot take by cp.async.
  CUtensorMap kMap{}, vMap{};
  const bool tma = decodeTileMaps(a, D, DV, kMap, vMap, p);
  const size_t tiles =
      tma ? kSwizzleAlign +
                kMmaStages * (tmaStageBytes<T, D, DV>() + sizeof(uint64_t))
          : sizeof(T) * kMmaStages * kMmaTile * (D + 8 + DV + 8) +
                sizeof(float) * kMmaStages * kMmaTile;
  const size_t red = sizeof(float) * kWarps * kMmaRows * (DV + 2);
  const size_t smem = std::max(tiles, red);
  const void *kernel =
      tma ? reinterpret_cast<const void *>(decodeMmaKernel<T, D, DV, true>)
          : reinterpret_cast<const void *>(decodeMmaKernel<T, D, DV, false>);
  allowDynamicSharedMemory(kernel, smem);
  // One wave of as many CTAs as fit on an SM (asked of the device, once
  // per kernel and size): 2 at d 128 (98 KB of shared memory each by TMA,
  // 105 KB by cp.async; with two buffers 3 fitted but streamed 1-2 % slower,
  // bench/results/2026-11-24-h100-decode-splits.md), more at d 64, where 2
  // left the H200 short of bytes in flight. Two or four waves were slower
  // (bench/results/2026-12-02-h200-paged.md).
  const int perSM = residentCtas(kernel, smem);
  p.splits = chooseMmaSplits(a.batch * a.kvHeads * rowChunks, a.batch, a.m,
                             perSM);
  splitIntoChunks(p, kMmaTile, a.batch);
  dim3 grid(unsigned(p.splits), unsigned(rowChunks),
            unsigned(a.batch * a.kvHeads));
  // One split a head (many sequences): the split kernel writes the output.
  // Clusters merging up to 8 splits through distributed shared memory were
  // far slower (103 -> 144 µs at B 8 x 32k x 4: clusters of four 105 KB CTAs
  // did not keep two CTAs on every SM).
  p.directOut = p.splits == 1;
  p.out = a.out.data;
  for (int i = 0; i < 4; ++i)
    p.os[i] = a.out.strides[i];
  launchEarly(kernel, grid, smem, stream, p, &kMap, &vMap);
  recordLaunch(tma ? "tensor-core TMA" : "tensor-core cp.async", grid, perSM,
               !p.directOut);
  if (p.directOut) {
    cudaError_t err = cudaGetLastError();
    return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
  }
  return launchCombine<T>(a, p);
}

template <typename T>
const char *launchDecodeDtype(const DecodeArgs &a, DecodeParams &p) {
  const int elem = int(sizeof(T));
  bool vec = vecOk(a.key.data, a.key.strides, int(a.d), elem) &&
             vecOk(a.value.data, a.value.strides, int(a.dv), elem);
  if constexpr (sizeof(T) == 2) {
    if (vec) {
      if (a.d == 128 && a.dv == 128)
        return launchMma<T, 128, 128>(a, p);
      if (a.d == 64 && a.dv == 64)
        return launchMma<T, 64, 64>(a, p);
    }
  }
  p.ldk = int(a.d) + (vec ? 16 / elem : 1);
#define BALANCEKV_DECODE_CASE(VPL)                                           \
  if (a.dv == 32 * VPL)                                                      \
    return vec ? launchDecodeTyped<T, VPL, true>(a, p)                       \
               : launchDecodeTyped<T, VPL, false>(a, p);
  BALANCEKV_DECODE_CASE(1)
  BALANCEKV_DECODE_CASE(2)
  BALANCEKV_DECODE_CASE(4)
  BALANCEKV_DECODE_CASE(8)
#undef BALANCEKV_DECODE_CASE
  return "value dim must be 32, 64, 128 or 256";
}

} // namespace

/// An attribute of the current device (`fallback` if it cannot be read),
/// read once per device: a process may drive GPUs of different kinds, or
/// MIG slices with different SM counts, and each gets its own launches.
static int currentDeviceAttribute(cudaDeviceAttr attr, int fallback) {
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess)
    return fallback;
  static std::mutex mutex;
  static std::map<std::pair<int, int>, int> known;
  std::lock_guard<std::mutex> lock(mutex);
  auto [it, fresh] = known.try_emplace({dev, int(attr)}, fallback);
  int n = 0;
  if (fresh && cudaDeviceGetAttribute(&n, attr, dev) == cudaSuccess && n > 0)
    it->second = n;
  return it->second;
}

int multiprocessorCount() {
  return currentDeviceAttribute(cudaDevAttrMultiProcessorCount, 132);
}

size_t sharedMemoryPerBlockOptin() {
  return size_t(
      currentDeviceAttribute(cudaDevAttrMaxSharedMemoryPerBlockOptin, 232448));
}

void allowDynamicSharedMemory(const void *func, size_t bytes) {
  static std::mutex mutex;
  static std::map<std::pair<const void *, int>, size_t> allowed;
  int dev = 0;
  cudaGetDevice(&dev);
  std::lock_guard<std::mutex> lock(mutex);
  size_t &have = allowed[{func, dev}];
  if (bytes > have &&
      cudaFuncSetAttribute(func, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           int(bytes)) == cudaSuccess)
    have = bytes;
}

size_t decodeWorkspaceBytes(int64_t batch, int64_t qHeads, int64_t queryLen,
                            int64_t m, int64_t dv) {
  return sizeof(float) * size_t(batch * qHeads * queryLen) *
         size_t(splitCap(batch, m)) * size_t(dv + 2);
}

const DecodeLaunch &lastDecodeLaunch() { return lastLaunch; }

const char *launchWeightedDecode(const DecodeArgs &a) {
  DecodeParams p{};
  p.q = a.query.data;
  p.k = a.key.data;
  p.v = a.value.data;
  for (int i = 0; i < 4; ++i)
    p.qs[i] = a.query.strides[i];
  for (int i = 0; i < 3; ++i) {
    p.ks[i] = a.key.strides[i];
    p.vs[i] = a.value.strides[i];
  }
  p.lw = a.logWeights;
  p.kvLen = a.kvLen;
  p.kvLenPerHead = a.kvLenPerHead;
  p.paging = a.paging;
  p.partial = static_cast<float *>(a.workspace);
  p.m = a.m;
  p.d = int(a.d);
  p.dv = int(a.dv);
  p.group = int(a.qHeads / a.kvHeads);
  p.queryLen = int(a.queryLen);
  p.rows = p.group * p.queryLen;
  p.kvHeads = int(a.kvHeads);
  p.scaleLog2 = a.scale * kLog2e;
  p.causal = a.causal;
  // Each path chooses its own splits (launchMma, launchDecodeTyped).
  switch (a.dtype) {
  case BALANCEKV_DTYPE_F16:
    return launchDecodeDtype<__half>(a, p);
  case BALANCEKV_DTYPE_BF16:
    return launchDecodeDtype<__nv_bfloat16>(a, p);
  case BALANCEKV_DTYPE_F32:
    return launchDecodeDtype<float>(a, p);
  }
  return "unknown dtype";
}

} // namespace balancekv::cuda
