//===- Compress.cu - BalanceKV compression on the GPU ---------------------===//
//
// Per round, the blocks' Grams and self-balancing walks (spec section 3,
// steps 1-3): for 16-bit rows with dims % 16 == 0 a persistent
// warp-specialised kernel (one CTA per SM; loader warps copy rows ahead,
// producer warpgroups build G on wgmma, walker warps walk), otherwise one
// CTA per (batch, KV head, block). Then the crossover selection (step 4): a CTA per (batch, KV head)
// finds c and kappa and the blocks' offsets, a warp per block compacts. A
// final kernel gathers sink + kept middle + recent window.
//
// Gram: G_ij = exp(tau s <k_i - mu, k_j - mu>) (w_i w_j <v_i, v_j> + c0).
// The raw products <k_i, k_j>, <v_i, v_j> of the stored f16/bf16 rows run on
// tensor cores (wgmma, or mma.sync m16n8k16 in the one-block kernel; the
// products are exact in the f32 accumulator) and the centring is applied
// afterwards in f32:
//   <k_i - mu, k_j - mu> = raw_ij - a_i - a_j + |mu|^2,  a_i = <k_i, mu>,
// so no centred key is ever rounded to 16 bits. f32 storage and dims that
// are not multiples of 16 use an f32 FMA path.
//
// Walk: one warp, lane l owns the running sums S_k of its four rows
// k = 4l..4l+3, so each chunk of four steps is decided inside one lane (the
// owner's chain is four compare-and-FMA steps); one shuffle hands the
// chunk's four signs to every lane, which adds them to its own sums. G is
// stored in the walk's order (`walkIndex`): a lane's four rows of a chunk are
// one float4 per row, conflict-free.
//
//===----------------------------------------------------------------------===//

#include "kernels/cuda/Common.cuh"
#include "kernels/cuda/Launch.h"
#include "kernels/cuda/TensorMap.h"
#include "kernels/cuda/Wgmma.cuh"
#include "kernels/reference/Philox.h"

#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_pipeline.h>

#include <algorithm>
#include <utility>

namespace balancekv::cuda {
namespace {

constexpr int kThreads = 128;                 // walk CTA
constexpr int kMaxBlock = 128;                // largest walk block
constexpr int kGSize = kMaxBlock * kMaxBlock; // one G, walk order
// The persistent kernel keeps only what the walk reads of G (its lower
// triangle): columns 0..63 for all rows as in walkIndex order, columns
// 64..127 for rows 64..127 only (walkLowerIndex), 48 KB instead of 64.
constexpr int kGLowerSize = kGSize / 2 + kGSize / 4;
// The persistent round kernel: producer warps, two walking warps (one per G
// buffer) and two loader warps: twelve warps, at most three to a
// scheduler, so the register cap stays 168 as with ten.
constexpr int kProducerWarps = 8;
constexpr int kProducers = kProducerWarps * 32;
constexpr int kWalkers = 2;
constexpr int kLoaders = 64;
constexpr int kPersistentThreads = kProducers + 32 * kWalkers + kLoaders;
// FULL[s] and EMPTY[s] join the producers and the walker of buffer s.
constexpr int kHandOffThreads = kProducers + 32;
// The row-buffer barriers join the producers and the loaders.
constexpr int kRowsThreads = kProducers + kLoaders;
constexpr int kSelectThreads = 1024;

/// 2^x by the SFU (relative error < 2^-22; no overflow branches).
__device__ __forceinline__ float fastExp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

/// Position of G_ki (row k, column i) in the walk's order: column chunk
/// i / 4, then row k % 4, then the owner lane k / 4 (XOR-swizzled by 2 (k % 4)
/// so that the producers' fragment stores spread over the banks), then i % 4.
__device__ __forceinline__ int walkRowOffset(int k) {
  const int q = k & 3;
  return q * kMaxBlock + (((k >> 2) ^ (q << 1)) << 2);
}
__device__ __forceinline__ int walkColumnOffset(int i) {
  return (i >> 2) * (4 * kMaxBlock) + (i & 3);
}
__device__ __forceinline__ int walkIndex(int k, int i) {
  return walkRowOffset(k) + walkColumnOffset(i);
}
/// The same order for columns i >= 64 of rows k >= 64 in the lower-
/// triangle G: chunks of 16 lanes after the kGSize / 2 floats of columns
/// 0..63 (whose positions are walkIndex's).
__device__ __forceinline__ int walkLowerRowOffset(int k) {
  const int q = k & 3;
  return q * (kMaxBlock / 2) + ((((k >> 2) ^ (q << 1)) & 15) << 2);
}
__device__ __forceinline__ int walkLowerColumnOffset(int i) {
  return kGSize / 2 + ((i >> 2) - 16) * (2 * kMaxBlock) + (i & 3);
}

/// Spec section 3, step 3, for one block on one warp: writes the signs of
/// steps 0..bsz-1 to `out` and returns their count of +1 (on every lane).
/// `G` holds the block's kernel in `walkIndex` order (kLower: its lower
/// triangle, walkLowerIndex order for columns >= 64), `u` its uniforms.
/// Entries in rows or columns >= bsz, and above the diagonal, may hold
/// anything: a live step i < bsz reads only G[i][j < i] (the owner's own
/// chunk: G[4c + q][4c + r < 4c + q]), and a lane's sums of rows already
/// decided are never read again; the updates from dead columns come last.
///
/// sigma_i = +1 iff u_i < clamp(1/2 - gamma S_i, 0, 1), which for u_i in
/// [0, 1) is u_i < 1/2 - gamma S_i (a NaN compares false either way).
/// Every S_k still adds G_ki sigma_i in step order, as a serial walk would.
template <bool kLower>
__device__ __forceinline__ int selfBalancingWalk(const float *G, const float *u,
                                                 int bsz, float gamma, int lane,
                                                 int8_t *out) {
  const float4 *Gv = reinterpret_cast<const float4 *>(G);
  const float4 *uv = reinterpret_cast<const float4 *>(u);
  const int chunks = (bsz + 3) >> 2;
  float S[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  int myMask = 0;
  // Unrolled by two so that the next chunk's loads issue during this
  // chunk's chain.
#pragma unroll 2
  for (int c = 0; c < chunks; ++c) {
    float4 g[4];
    // Chunks of columns >= 64 keep rows >= 64 only (kLower): lanes 0..15
    // read lanes 16..31's entries, into sums they no longer use.
    const bool half = kLower && c >= 16;
    const int base = half ? kGSize / 8 + (c - 16) * (kMaxBlock / 2)
                          : c * kMaxBlock,
              qStride = half ? kMaxBlock / 8 : kMaxBlock / 4,
              laneMask = half ? 15 : 31;
#pragma unroll
    for (int q = 0; q < 4; ++q)
      g[q] = Gv[base + q * qStride + ((lane ^ (q << 1)) & laneMask)];
    const float4 uu = uv[c];
    // The owner's (lane c's) four decisions; other lanes' results are unused.
    const bool p0 = uu.x < 0.5f - gamma * S[0];
    const float s0 = p0 ? 1.0f : -1.0f;
    const float t1 = fmaf(g[1].x, s0, S[1]);
    const bool p1 = uu.y < 0.5f - gamma * t1;
    const float s1 = p1 ? 1.0f : -1.0f;
    const float t2 = fmaf(g[2].y, s1, fmaf(g[2].x, s0, S[2]));
    const bool p2 = uu.z < 0.5f - gamma * t2;
    const float s2 = p2 ? 1.0f : -1.0f;
    const float t3 = fmaf(g[3].z, s2, fmaf(g[3].y, s1, fmaf(g[3].x, s0, S[3])));
    const bool p3 = uu.w < 0.5f - gamma * t3;
    const int mask = __shfl_sync(
        0xffffffffu, int(p0) | int(p1) << 1 | int(p2) << 2 | int(p3) << 3,
        c & 31);
    myMask = c == lane ? mask : myMask;
    const float sg[4] = {mask & 1 ? 1.0f : -1.0f, mask & 2 ? 1.0f : -1.0f,
                         mask & 4 ? 1.0f : -1.0f, mask & 8 ? 1.0f : -1.0f};
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      S[q] = fmaf(g[q].x, sg[0], S[q]);
      S[q] = fmaf(g[q].y, sg[1], S[q]);
      S[q] = fmaf(g[q].z, sg[2], S[q]);
      S[q] = fmaf(g[q].w, sg[3], S[q]);
    }
  }
  int plus = 0;
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int i = 4 * lane + r;
    if (i < bsz) {
      const bool pos = (myMask >> r) & 1;
      out[i] = pos ? 1 : -1;
      plus += pos;
    }
  }
  for (int o = 16; o > 0; o >>= 1)
    plus += __shfl_xor_sync(0xffffffffu, plus, o);
  return plus;
}

struct RoundParams {
  const void *key, *value;
  int64_t ks[3], vs[3]; // strides of b, h, s (innermost is 1)
  Paging paging;        // or page, h, slot through a block table
  int32_t *cur;
  float *lw;
  int8_t *sigma;
  int32_t *blockPlus; // [B*H][numBlocks]: +1 signs per walk block
  int64_t l0, len, mid0, numBlocks;
  int d, dv, blockSize, heads, ld;
  uint32_t round;
  uint64_t seed;
  float gamma, expScale, c0;
  bool vecKey, vecValue;
  int gSlots;    // G buffers of the persistent round kernel
  int rowSlots;  // its row buffers (keys and values in turn): 2 or 3
  // Round 0 of 128-wide rows: full blocks below row tmaRowEnd load by TMA
  // (keyMap/valueMap: one box per group of 8 rows), 0 if unavailable.
  int64_t tmaRowEnd;
  // Paged caches: the boxes' (group, x) coordinates of token group sg of a
  // page and head h are (page * tmaPageGroups + h * tmaHeadGroups + sg,
  // h * tmaHeadX) (pagedRowGroupMap).
  int tmaPageGroups, tmaHeadGroups, tmaHeadX;
  bool identity; // round 0: cur[i] = i, lw[i] = 0 (not loaded)
};

/// Starts loading the block's rows into `buf` (rows past bsz are zeroed).
/// On the vector path the copies are cp.async: every load is in flight at
/// once and the caller overlaps other work before `__pipeline_wait_prior`.
template <typename T>
__device__ void loadRows(const CacheRows<T> &src, const int *rows, int bsz,
                         int dim, T *buf, int ld, bool vec,
                         int tid = threadIdx.x, int nthreads = kThreads) {
  constexpr int kPerVec = 16 / sizeof(T);
  if (vec) {
    const int perRow = dim / kPerVec;
    for (int e = tid; e < kMaxBlock * perRow; e += nthreads) {
      int i = e / perRow, c = e % perRow;
      // ld * sizeof(T) is a multiple of 16 on this path.
      T *dst = buf + i * ld + c * kPerVec;
      if (i < bsz)
        __pipeline_memcpy_async(dst, src(rows[i]) + c * kPerVec, 16);
      else
        *reinterpret_cast<uint4 *>(dst) = make_uint4(0, 0, 0, 0);
    }
    __pipeline_commit();
  } else {
    for (int e = tid; e < kMaxBlock * dim; e += nthreads) {
      int i = e / dim, x = e % dim;
      buf[i * ld + x] = i < bsz ? src(rows[i])[x] : fromFloat<T>(0.0f);
    }
  }
}

/// The persistent kernel stores a block's rows *folded*: its 16 groups of
/// 8 rows in the order 0, 15, 1, 14, ..., 7, 8 (physical group p holds
/// token group p / 2 for even p, 15 - p / 2 for odd p). The walk reads only
/// the lower triangle of G (G_ki with k > i), and warp w's fragment rows
/// are physical groups 2w, 2w + 1, i.e. token groups w and 15 - w: every
/// warp then has 17 of its 32 (row group, column group) tiles on or below
/// the diagonal, where in token order the work would range from 2 to 32
/// tiles a warp. foldedRow(i) is the physical row of token row i.
__device__ __forceinline__ int foldedRow(int i) {
  const int g = i >> 3;
  return (g < 8 ? 2 * g : 31 - 2 * g) * 8 + (i & 7);
}

/// loadRows for the warpgroup MMA, by the kLoaders loader threads: 16-bit
/// rows in coreMatrixOffset order. `rows` is in physical (folded) order, -1
/// for rows past the block, which are zero-filled; `pages` (paged caches)
/// their page ids. kDim > 0 (a multiple of
/// 64) fixes the row width at compile time: thread (cs, r) copies the
/// 16-byte pieces cs, cs + 8, ... of row r of every group of 8 rows, and
/// reads each row index once for all of them; a warp fills 512 contiguous
/// bytes (four core matrices) from 8 rows x 64 bytes, conflict-free. (With
/// four lanes a row instead, so that a quarter-warp reads whole sectors,
/// ncu still counts 32 sectors an instruction, and the shared-memory side
/// conflicts 4-way.) The copies fetch whole 128-byte lines into L2 (2 %
/// faster rounds; 256 bytes: 3 % slower). The caller signals their
/// completion.
template <int kDim, typename T>
__device__ __forceinline__ void
loadRowsCoreFor(const CacheRows<T> &source, const int *rows, const int *pages,
                int dim, T *buf, int tid) {
  static_assert(kLoaders == 64, "eight piece columns of eight rows");
  if constexpr (kDim > 0) {
    constexpr int perRow = kDim / 8; // 16-byte pieces
    static_assert(perRow % 8 == 0, "whole piece columns");
    const int r = tid & 7, cs = tid >> 3;
#pragma unroll 4
    for (int g = 0; g < kMaxBlock / 8; ++g) {
      const int row = rows[g * 8 + r];
      const bool live = row >= 0; // a dead row's source is unread
      const T *src = !live   ? source.head
                     : pages ? source.inPage(pages[g * 8 + r], row) + cs * 8
                             : source(row) + cs * 8;
#pragma unroll
      for (int cb = 0; cb < perRow / 8; ++cb)
        copyAsync16Fill<true>(buf + ((g * perRow + cb * 8 + cs) * 8 + r) * 8,
                              src + (live ? cb * 64 : 0), live ? 16 : 0);
    }
  } else {
    const int perRow = dim / 8;
    for (int e = tid; e < kMaxBlock * perRow; e += kLoaders) {
      const int i = (e >> 3) / perRow * 8 + (e & 7), c = (e >> 3) % perRow;
      T *dst = buf + e * 8; // == coreMatrixOffset(i, 8 c, dim)
      if (rows[i] >= 0)
        __pipeline_memcpy_async(
            dst,
            (pages ? source.inPage(pages[i], rows[i]) : source(rows[i])) +
                c * 8,
            16);
      else
        *reinterpret_cast<uint4 *>(dst) = make_uint4(0, 0, 0, 0);
    }
  }
}

/// Returns whether every write was a cp.async (else some were plain
/// stores, and the caller must wait for its copies before publishing).
template <typename T>
__device__ bool loadRowsCore(const CacheRows<T> &src, const int *rows,
                             const int *pages, int dim, T *buf, bool vec,
                             int tid) {
  if (vec) {
    if (dim == 128)
      loadRowsCoreFor<128>(src, rows, pages, dim, buf, tid);
    else if (dim == 256)
      loadRowsCoreFor<256>(src, rows, pages, dim, buf, tid);
    else if (dim == 64)
      loadRowsCoreFor<64>(src, rows, pages, dim, buf, tid);
    else
      loadRowsCoreFor<0>(src, rows, pages, dim, buf, tid);
    return dim == 128 || dim == 256 || dim == 64;
  } else {
    for (int e = tid; e < kMaxBlock * dim; e += kLoaders) {
      const int i = e / dim, x = e % dim;
      buf[coreMatrixOffset(i, x, dim)] =
          rows[i] >= 0 ? src(rows[i])[x] : fromFloat<T>(0.0f);
    }
    return false;
  }
}

/// acc[nt] = raw products of one warp's 16 rows m0..m0+15 with rows
/// nt*8..nt*8+7, nt < 16 (mma.sync m16n8k16 fragment layout: lane (g, t)
/// holds rows g, g + 8 and columns 2t, 2t + 1). 16-bit T, dim % 16 == 0.
template <typename T>
__device__ __forceinline__ void mmaRowTile(const T *buf, int ld, int dim,
                                           int m0, int lane,
                                           float (&acc)[16][4]) {
#pragma unroll
  for (int nt = 0; nt < 16; ++nt)
#pragma unroll
    for (int r = 0; r < 4; ++r)
      acc[nt][r] = 0.0f;
  // Fragments by ldmatrix (one instruction for four 32-bit loads per lane;
  // the padded rows keep its eight row addresses on distinct banks). Lane
  // l addresses row (l & 7) of matrix l >> 3.
  const int mi = lane >> 3, mr = lane & 7;
  const T *aRow = buf + (m0 + mr + (mi & 1) * 8) * ld + (mi >> 1) * 8;
  const T *bRow = buf + ((mi >> 1) * 8 + mr) * ld + (mi & 1) * 8;
  for (int k0 = 0; k0 < dim; k0 += 16) {
    uint32_t a[4];
    ldmatrixX4(a, aRow + k0);
#pragma unroll
    for (int np = 0; np < 8; ++np) { // n-tiles 2np and 2np + 1
      uint32_t b[4];
      ldmatrixX4(b, bRow + np * 16 * ld + k0);
      Mma16816<T>::run(acc[2 * np], a, b[0], b[1]);
      Mma16816<T>::run(acc[2 * np + 1], a, b[2], b[3]);
    }
  }
}

/// rowMean[i] = (1/bsz) sum_j raw_ij for the 16 rows of a warp's full-width
/// tile: token rows i0 (fragment rows g) and i1 (rows g + 8) of lane (g, t);
/// only the 4 lanes of a row add up; zero-filled columns add nothing.
__device__ __forceinline__ void storeRowMeans(const float (&acc)[16][4], int i0,
                                              int i1, int bsz, int lane,
                                              float *rowMean) {
  const int t = lane & 3;
  float s0 = 0.0f, s1 = 0.0f;
#pragma unroll
  for (int nt = 0; nt < 16; ++nt) {
    s0 += acc[nt][0] + acc[nt][1];
    s1 += acc[nt][2] + acc[nt][3];
  }
  s0 += __shfl_xor_sync(0xffffffffu, s0, 1);
  s0 += __shfl_xor_sync(0xffffffffu, s0, 2);
  s1 += __shfl_xor_sync(0xffffffffu, s1, 1);
  s1 += __shfl_xor_sync(0xffffffffu, s1, 2);
  if (t == 0) {
    if (i0 < bsz)
      rowMean[i0] = s0 / float(bsz);
    if (i1 < bsz)
      rowMean[i1] = s1 / float(bsz);
  }
}

/// raw_ij = <row_i, row_j> on tensor cores for one warp's 16 rows
/// m0..m0+15 against all (up to 128) rows, handed to `epilogue(i, j, raw)` for
/// i, j < bsz. 16-bit T, dim % 16 == 0.
template <typename T, typename Epilogue>
__device__ void gramRows16(const T *buf, int ld, int bsz, int dim, int m0,
                           int lane, Epilogue &epilogue) {
  const int g = lane >> 2, t = lane & 3;
  if (m0 >= bsz)
    return;
  float acc[16][4];
  mmaRowTile(buf, ld, dim, m0, lane, acc);
#pragma unroll
  for (int nt = 0; nt < 16; ++nt)
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      int i = m0 + g + (r >= 2 ? 8 : 0), j = nt * 8 + t * 2 + (r & 1);
      if (i < bsz && j < bsz)
        epilogue(i, j, acc[nt][r]);
    }
}

/// raw_ij = <row_i, row_j> for i, j < bsz, handed to `epilogue(i, j, raw)`.
/// Tensor cores for 16-bit types with dim % 16 == 0, f32 FMA otherwise.
template <typename T, typename Epilogue>
__device__ void rawGram(const T *buf, int ld, int bsz, int dim,
                        Epilogue epilogue) {
  if constexpr (sizeof(T) == 2) {
    if (dim % 16 == 0) {
      // Warp w takes the 16-row tiles w, w + 4, ...
      for (int m0 = (threadIdx.x >> 5) * 16; m0 < bsz; m0 += kThreads / 2)
        gramRows16(buf, ld, bsz, dim, m0, threadIdx.x & 31, epilogue);
      return;
    }
  }
  for (int e = threadIdx.x; e < bsz * bsz; e += kThreads) {
    int i = e / bsz, j = e % bsz;
    float s = 0.0f;
    for (int x = 0; x < dim; ++x)
      s += toFloat(buf[i * ld + x]) * toFloat(buf[j * ld + x]);
    epilogue(i, j, s);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) walkRoundKernel(RoundParams p) {
  extern __shared__ __align__(16) unsigned char smem[];
  float *G = reinterpret_cast<float *>(smem);
  float *a = G + kGSize;
  float *w = a + kMaxBlock;
  float *u = w + kMaxBlock;
  int *rows = reinterpret_cast<int *>(u + kMaxBlock);
  float *muNorm = reinterpret_cast<float *>(rows + kMaxBlock);
  T *buf = reinterpret_cast<T *>(muNorm + 4);

  const int tid = threadIdx.x;
  const uint32_t blk = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int64_t bh = int64_t(b) * p.heads + h;
  const int64_t start = int64_t(blk) * p.blockSize;
  const int bsz = int(min(int64_t(p.blockSize), p.len - start));
  const int32_t *cur = p.cur + bh * p.l0 + start;
  const float *lw = p.lw + bh * p.l0 + start;

  if (tid < bsz) {
    rows[tid] = int(p.mid0 + (p.identity ? start + tid : cur[tid]));
    w[tid] = p.identity ? 1.0f : expf(lw[tid]);
    u[tid] = walkUniform(p.seed, uint32_t(tid), blk, p.round, b, h);
  }
  __syncthreads();

  // Keys: raw Gram first. The centring needs a_i = <k_i, mu> and |mu|^2,
  // which are row means of the raw Gram: a_i = (1/b) sum_j raw_ij and
  // |mu|^2 = (1/b) sum_i a_i, so no mean vector is formed.
  loadRows(cacheRows<T>(p.key, p.ks, p.paging, b, h), rows, bsz, p.d, buf, p.ld,
           p.vecKey);
  __pipeline_wait_prior(0);
  __syncthreads();
  rawGram(buf, p.ld, bsz, p.d,
          [&](int i, int j, float raw) { G[walkIndex(i, j)] = raw; });
  __syncthreads();
  // The values stream in while the key statistics and the exp pass run.
  loadRows(cacheRows<T>(p.value, p.vs, p.paging, b, h), rows, bsz, p.dv, buf,
           p.ld, p.vecValue);
  if (tid < bsz) {
    float s = 0.0f;
    for (int j = 0; j < bsz; ++j)
      s += G[walkIndex(tid, j)];
    a[tid] = s / float(bsz);
  }
  __syncthreads();
  if (tid < 32) {
    float s = 0.0f;
    for (int i = tid; i < bsz; i += 32)
      s += a[i];
    for (int o = 16; o > 0; o >>= 1)
      s += __shfl_xor_sync(0xffffffffu, s, o);
    if (tid == 0)
      muNorm[0] = s / float(bsz);
  }
  __syncthreads();
  {
    const float mm = muNorm[0], e2 = p.expScale * 1.4426950408889634f;
    for (int e = tid; e < bsz * kMaxBlock; e += kThreads) {
      int i = e >> 7, j = e & (kMaxBlock - 1);
      if (j < bsz)
        G[walkIndex(i, j)] =
            fastExp2(e2 * (G[walkIndex(i, j)] - a[i] - a[j] + mm));
    }
  }
  __syncthreads();

  // Values: G_ij *= w_i w_j <v_i, v_j> + c0.
  __pipeline_wait_prior(0);
  __syncthreads();
  const float c0 = p.c0;
  rawGram(buf, p.ld, bsz, p.dv, [&](int i, int j, float raw) {
    G[walkIndex(i, j)] *= w[i] * w[j] * raw + c0;
  });
  __syncthreads();

  if (tid >= 32)
    return;
  // The walk (warp 0).
  const int plus =
      selfBalancingWalk<false>(G, u, bsz, p.gamma, tid,
                               p.sigma + bh * p.l0 + start);
  if (tid == 0)
    p.blockPlus[bh * p.numBlocks + blk] = plus;
}

//===----------------------------------------------------------------------===//
// Persistent, warp-specialised round (16-bit types, dims % 16 == 0)
//===----------------------------------------------------------------------===//
//
// One CTA per SM walks a strided list of (batch, head, block) items. Two
// loader warps copy the items' rows into a ring of row buffers (keys j,
// values j, keys j+1, ...; round 0's contiguous blocks by TMA); eight producer warps build item j+1's G (Grams,
// row means, epilogue) into one of two G buffers while walker warp s walks
// the items of buffer s, so the serial walks overlap everything else and
// each other. Hand-off:
//   rowsFull[b]   loaders' cp.async arrive (mbarrier), producers wait
//   ROWS_FREE[b]  producers bar.arrive, loaders bar.sync  (buffer b free)
//   FULL[s]       producers bar.arrive, walker s bar.sync  (G[s] ready)
//   EMPTY[s]      walker s bar.arrive, producers bar.sync  (G[s] free again)

enum : int {
  kBarProducers = 1,
  kBarFull0 = 2,
  kBarEmpty0 = 4,
  kBarRowsFree0 = 6, // 6, 7, 8: ROWS_FREE[b]
  kBarLoaders = 9
};

__device__ __forceinline__ void namedSync(int id, int n) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(n) : "memory");
}
__device__ __forceinline__ void namedArrive(int id, int n) {
  asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(n) : "memory");
}

/// Which (batch, head, block) an item is and where its tokens are (32-bit
/// arithmetic: a 64-bit division is a long software sequence).
struct RoundItem {
  int blk, h, b, bsz;
  int64_t bh, start;
  __device__ RoundItem(const RoundParams &p, int64_t item) {
    const int nb = int(p.numBlocks), bhi = int(item) / nb;
    blk = int(item) - bhi * nb;
    b = bhi / p.heads;
    h = bhi - b * p.heads;
    bh = bhi;
    start = int64_t(blk) * p.blockSize;
    bsz = int(min(int64_t(p.blockSize), p.len - start));
  }
};

/// Writes an item's row indices (in physical, folded order; -1 past the
/// block) and weights into `rows` and `ws`, tokens ltid, ltid + kLoaders,
/// ... (plain loads: the loader warps' copies of rows are in flight
/// meanwhile). A paged cache's page ids go to `pages` (same order): looked
/// up here, an item ahead, rather than in the copy loop.
__device__ __forceinline__ void loadIndices(const RoundParams &p,
                                            const RoundItem &it, int *rows,
                                            int *pages, float *ws, int ltid) {
#pragma unroll
  for (int i = ltid; i < kMaxBlock; i += kLoaders) {
    int *row = rows + foldedRow(i);
    if (i >= it.bsz) {
      *row = -1;
      continue;
    } else if (p.identity) {
      *row = int(p.mid0 + it.start) + i;
      ws[i] = 1.0f;
    } else {
      const int64_t at = it.bh * p.l0 + it.start + i;
      *row = int(p.mid0) + p.cur[at];
      ws[i] = expf(p.lw[at]);
    }
    if (p.paging.table)
      pages[foldedRow(i)] = __ldg(p.paging.table + it.b * p.paging.tableStride +
                                  (*row >> p.paging.pageShift));
  }
}

/// The persistent kernel's epilogue for producer warp `warp`: from the raw
/// Grams of its fragment rows (token rows 8 warp + g and 8 (15 - warp) + g
/// of lane (g, t), the fold) stores
///   G_ij = exp2(e2 (raw_ij - a_i - a_j + |mu|^2)) (w_i w_j <v_i, v_j> + c0)
/// for the tiles of 8 x 8 on or below the diagonal, the only ones the walk
/// reads (G_ki, k > i): 17 of the warp's 32, in one code path for all warps
/// (a copy per warp thrashed the instruction cache). Rows and columns past
/// bsz get values too; the walk never lets them reach a live decision.
__device__ __forceinline__ void
storeLowerTriangle(float *__restrict__ G, const float *__restrict__ a,
                   const float *__restrict__ ws, const float (&rawK)[16][4],
                   const float (&rawV)[16][4], float e2, float mm, float c0,
                   int lane, int warp) {
  const int t = lane & 3;
  const int i0 = warp * 8 + (lane >> 2), i1 = (15 - warp) * 8 + (lane >> 2);
  // The exponent e2 (raw - a_i - a_j + |mu|^2) as one FFMA on a row and a
  // column term. (The pointers are __restrict__: a and ws may then be read
  // ahead of the G stores.)
  const float rowTerm[2] = {e2 * (mm - a[i0]), e2 * (mm - a[i1])};
  const float wi[2] = {ws[i0], ws[i1]};
  // Column group cg < 8 (columns 8 cg + 2t + e) sits at cg * 8 * kMaxBlock
  // + e past the thread's row base in walkIndex order, column group cg >= 8
  // at (cg - 8) * 4 * kMaxBlock + e past its walkLowerIndex row base (row
  // group 15 - w only).
  const int col = walkColumnOffset(2 * t);
  float *gRow[2] = {G + walkRowOffset(i0) + col, G + walkRowOffset(i1) + col};
  float *gRowLower =
      G + walkLowerRowOffset(i1) + walkLowerColumnOffset(64 + 2 * t);
  // Two elements of one tile: row group hi (as its row base for the tile,
  // row term and weight) against column group cg, fragment entries k0, k1
  // and v0, v1.
  auto tile = [&](float *gr, float rt, float w, int cg, float k0, float k1,
                  float v0, float v1) {
    const int j0 = cg * 8 + 2 * t;
    const float2 aj = *reinterpret_cast<const float2 *>(a + j0);
    const float2 wj = *reinterpret_cast<const float2 *>(ws + j0);
    gr[0] =
        fastExp2(fmaf(e2, k0, fmaf(-e2, aj.x, rt))) * fmaf(w * wj.x, v0, c0);
    gr[1] =
        fastExp2(fmaf(e2, k1, fmaf(-e2, aj.y, rt))) * fmaf(w * wj.y, v1, c0);
  };
  auto at = [&](int hi, int cg) {
    return cg < 8 ? gRow[hi] + cg * 8 * kMaxBlock
                  : gRowLower + (cg - 8) * 4 * kMaxBlock;
  };
  // Fragment column tile nt holds column group foldedGroup(nt): cg = nt / 2
  // for even nt, 15 - nt / 2 for odd. Row group 15 - w needs column groups
  // 0..15 - w, row group w needs 0..w.
#pragma unroll
  for (int m = 0; m < 8; ++m) // row group 15 - w, column groups 0..7
    tile(at(1, m), rowTerm[1], wi[1], m, rawK[2 * m][2], rawK[2 * m][3],
         rawV[2 * m][2], rawV[2 * m][3]);
  tile(at(0, 0), rowTerm[0], wi[0], 0, rawK[0][0], rawK[0][1], rawV[0][0],
       rawV[0][1]);
  tile(at(1, 8), rowTerm[1], wi[1], 8, rawK[15][2], rawK[15][3], rawV[15][2],
       rawV[15][3]);
  // Slot s = 1..7: row group w against column group s (tile 2s) while
  // s <= w, else row group 15 - w against column group 16 - s (tile 2s - 1).
#pragma unroll
  for (int s = 1; s < 8; ++s) {
    const bool lo = s <= warp;
    tile(lo ? at(0, s) : at(1, 16 - s), lo ? rowTerm[0] : rowTerm[1],
         lo ? wi[0] : wi[1], lo ? s : 16 - s,
         lo ? rawK[2 * s][0] : rawK[2 * s - 1][2],
         lo ? rawK[2 * s][1] : rawK[2 * s - 1][3],
         lo ? rawV[2 * s][0] : rawV[2 * s - 1][2],
         lo ? rawV[2 * s][1] : rawV[2 * s - 1][3]);
  }
}

/// TMA: rows 8 group .. 8 group + 7 of head bh (a rowGroupMap box, 8 core
/// matrices of every 16-byte column) into dst, completing on bar.
__device__ __forceinline__ void tmaLoadRowGroup(void *dst,
                                                const CUtensorMap *map,
                                                int group, int bh,
                                                uint64_t *bar) {
  asm volatile(
      "cp.async.bulk.tensor.5d.shared::cluster.global.mbarrier::complete_tx::"
      "bytes [%0], [%1, {%2, %3, %4, %5, %6}], [%7];\n" ::"r"(
          sharedAddress(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(0), "r"(0), "r"(0),
      "r"(group), "r"(bh), "r"(sharedAddress(bar))
      : "memory");
}

/// kDim > 0: keys and values are kDim wide (64 or 128), and the value Gram
/// is issued right behind the key Gram, so that the row means overlap it.
/// kDim = 0: any widths (multiples of 16), one Gram at a time (with the
/// width chosen at run time, ptxas would serialise overlapping wgmma).
template <typename T, int kDim>
__global__ void __launch_bounds__(kPersistentThreads, 1)
    walkRoundPersistentKernel(RoundParams p, int64_t items,
                              const __grid_constant__ CUtensorMap keyMap,
                              const __grid_constant__ CUtensorMap valueMap) {
  constexpr bool kOverlap = kDim > 0;
  extern __shared__ __align__(16) unsigned char smem[];
  const int slots = p.gSlots; // G buffers: 2, or 1 for wide rows
  float *Gs = reinterpret_cast<float *>(smem); // [slots][kGLowerSize]
  float *us = Gs + slots * kGLowerSize;        // [2][128]
  float *a = us + 2 * kMaxBlock;               // [128]
  float *wsAll = a + kMaxBlock;                // [4][128]
  int *rowsAll = reinterpret_cast<int *>(wsAll + 4 * kMaxBlock); // [4][128]
  // The item in each G buffer, for its walker.
  RoundItem *info = reinterpret_cast<RoundItem *>(rowsAll + 4 * kMaxBlock);
  // Items j, j+1 (by j & 3; four deep for the loaders' lead), kept here
  // rather than in registers.
  RoundItem *ring = reinterpret_cast<RoundItem *>(info + 2);
  // rowSlots row buffers (16-byte aligned), filled with item j's keys, item
  // j's values, item j+1's keys, ... in turn; rowsFull[b] completes a phase
  // when buffer b has landed (one arrival per loader thread when its copies
  // have, one more by loader thread 0, which publishes the item's ring entry
  // and indices).
  uint64_t *rowsFull = reinterpret_cast<uint64_t *>(ring + 4); // [4]
  // 128-byte aligned (TMA destinations).
  T *rowBufs = reinterpret_cast<T *>(
      alignShared(reinterpret_cast<unsigned char *>(rowsFull + 4), 128));
  const int rowElems = kMaxBlock * max(p.d, p.dv);
  // A paged cache's page ids of the rows in rowsAll: [4][128], past the
  // row buffers (only then allocated).
  int *pagesAll = p.paging.table
                      ? reinterpret_cast<int *>(rowBufs + p.rowSlots * rowElems)
                      : nullptr;
  const int tid = threadIdx.x;
  if (tid == 0)
    for (int b = 0; b < p.rowSlots; ++b)
      mbarrierInit(&rowsFull[b], kLoaders + 1);
  __syncthreads();
  auto rowsOf = [&](int j) { return rowsAll + (j & 3) * kMaxBlock; };
  auto pagesOf = [&](int j) {
    return pagesAll ? pagesAll + (j & 3) * kMaxBlock : nullptr;
  };
  auto wsOf = [&](int j) { return wsAll + (j & 3) * kMaxBlock; };

  if (tid >= kProducers + 32 * kWalkers) {
    // Loaders: each row buffer is refilled as soon as the producers' Gram
    // of its previous contents is done, so with three buffers item j+1's
    // keys load from the end of item j-1's value Gram on. (Issued by the
    // producers themselves, the copies cost them a quarter of the round:
    // ncu showed stalls on the copies' address registers.)
    const int ltid = tid - kProducers - 32 * kWalkers;
    if (blockIdx.x < items) {
      const RoundItem it(p, blockIdx.x);
      if (ltid == 0)
        ring[0] = it;
      loadIndices(p, it, rowsOf(0), pagesOf(0), wsOf(0), ltid);
      namedSync(kBarLoaders, kLoaders);
    }
    int buf = 0;
    auto fill = [&](const CacheRows<T> &src, const int *rows, const int *pages,
                    int dim, bool vec, const CUtensorMap *map,
                    const RoundItem &it) {
      namedSync(kBarRowsFree0 + buf, kRowsThreads);
      T *dst = rowBufs + buf * rowElems;
      if (kDim == 128 && p.identity && it.bsz == kMaxBlock &&
          p.mid0 + it.start + kMaxBlock <= p.tmaRowEnd) {
        // Round 0's rows are contiguous: one thread copies the block by
        // TMA, 16 boxes of 8 rows (2 KB), token group g into physical group
        // 2g or 31 - 2g (the fold); the phase completes when the bytes
        // have landed.
        if (ltid == 0) {
          mbarrierArriveExpectTx(&rowsFull[buf], kMaxBlock * kDim * 2);
          const int row0 = int(p.mid0 + it.start), bh = int(it.bh);
          const int slotMask = (1 << p.paging.pageShift) - 1;
#pragma unroll 4
          for (int g = 0; g < 16; ++g) {
            const int pg = g < 8 ? 2 * g : 31 - 2 * g;
            // A paged cache's groups by their page (loadIndices looked the
            // pages up); a dense one's are consecutive.
            const int group = pages
                                  ? pages[foldedRow(8 * g)] * p.tmaPageGroups +
                                        it.h * p.tmaHeadGroups +
                                        (((row0 + 8 * g) & slotMask) >> 3)
                                  : (row0 >> 3) + g;
            tmaLoadRowGroup(dst + pg * 8 * kDim, map, group,
                            pages ? it.h * p.tmaHeadX : bh, &rowsFull[buf]);
          }
        } else {
          mbarrierArrive(&rowsFull[buf]);
        }
      } else if (loadRowsCore(src, rows, pages, dim, dst, vec, ltid)) {
        cpAsyncMbarrierArrive(&rowsFull[buf]);
      } else { // also plain stores: wait, then a releasing arrival
        __pipeline_wait_prior(0);
        mbarrierArrive(&rowsFull[buf]);
      }
      if (ltid == 0)
        mbarrierArrive(&rowsFull[buf]);
      buf = buf + 1 == p.rowSlots ? 0 : buf + 1;
    };
    int j = 0;
    for (int64_t item = blockIdx.x; item < items; item += gridDim.x, ++j) {
      const RoundItem &it = ring[j & 3];
      fill(cacheRows<T>(p.key, p.ks, p.paging, it.b, it.h), rowsOf(j),
           pagesOf(j), p.d, p.vecKey, &keyMap, it);
      fill(cacheRows<T>(p.value, p.vs, p.paging, it.b, it.h), rowsOf(j),
           pagesOf(j), p.dv, p.vecValue, &valueMap, it);
      // Item j+1's indices while item j's rows land (its ring entry and
      // index buffers were last read for item j-3, which the producers
      // have finished: they are past the Gram that freed the buffers just
      // filled, item j-1's value Gram or later). After both fills, so that
      // their loads (cur, lw, a paged cache's block table) do not hold up
      // the values, which the producers need right behind the keys.
      const int64_t next = item + gridDim.x;
      if (next < items) {
        const RoundItem nextIt(p, next);
        if (ltid == 0)
          ring[(j + 1) & 3] = nextIt;
        loadIndices(p, nextIt, rowsOf(j + 1), pagesOf(j + 1), wsOf(j + 1),
                    ltid);
      }
      namedSync(kBarLoaders, kLoaders);
    }
    return;
  }

  if (tid >= kProducers) {
    // Walker `slot` walks the items j with j % slots == slot.
    const int slot = (tid - kProducers) >> 5, lane = tid & 31;
    if (slot >= slots)
      return; // one G buffer: one walker
    namedArrive(kBarEmpty0 + slot, kHandOffThreads);
    for (int64_t item = blockIdx.x + slot * int64_t(gridDim.x); item < items;
         item += slots * int64_t(gridDim.x)) {
      namedSync(kBarFull0 + slot, kHandOffThreads);
      const RoundItem it = info[slot];
      const int plus =
          selfBalancingWalk<true>(Gs + slot * kGLowerSize,
                                  us + slot * kMaxBlock, it.bsz, p.gamma, lane,
                                  p.sigma + it.bh * p.l0 + it.start);
      if (lane == 0)
        p.blockPlus[it.bh * p.numBlocks + it.blk] = plus;
      __syncwarp();
      namedArrive(kBarEmpty0 + slot, kHandOffThreads);
    }
    return;
  }

  // Producers: Grams, row means and the epilogue of item j, while the
  // loaders bring item j+1's rows and the walkers walk earlier items.
  const int ptid = tid;
  const int lane = ptid & 31, warp = ptid >> 5, wg = ptid >> 7;
  // Warp w's fragment rows g and g + 8 are token rows 8 w + g and
  // 8 (15 - w) + g (the fold). (Recomputed where used: kept live across
  // the item loop they spill.)
  auto tokenRow = [&](int hi) {
    return (hi ? 15 - warp : warp) * 8 + (lane >> 2);
  };
  int buf = 0;          // row buffer of the next Gram
  uint32_t parity = 0;  // of its rowsFull phase
  int doneBuf = 0;      // row buffer of the next Gram to finish
  for (int b = 0; b < p.rowSlots; ++b)
    namedArrive(kBarRowsFree0 + b, kRowsThreads);
  auto acquireRows = [&] {
    mbarrierWait(&rowsFull[buf], parity);
    fenceAsyncShared(); // the landed copies, before the wgmma reads them
    const T *rows = rowBufs + buf * rowElems;
    if (++buf == p.rowSlots) {
      buf = 0;
      parity ^= 1;
    }
    return rows;
  };
  auto releaseRows = [&] { // after this thread's wgmmaWait
    namedArrive(kBarRowsFree0 + doneBuf, kRowsThreads);
    doneBuf = doneBuf + 1 == p.rowSlots ? 0 : doneBuf + 1;
  };
  int j = 0; // items so far
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x, ++j) {
    // Warp w owns physical rows 16w..16w+15 of the Grams, all columns; the
    // four warps of warpgroup wg compute their 64 rows together (wgmma). The
    // raw key Gram stays in registers while the values wait (no round trip
    // through G):
    // G_ij = exp(tau s (raw_ij - a_i - a_j + |mu|^2)) (w_i w_j <v_i, v_j> + c0)
    // with a_i = <k_i, mu> the row means of the raw key Gram and |mu|^2 =
    // mean of a_i.
    float rawK[16][4], rawV[16][4];
    const T *keyRows = acquireRows(); // also publishes ring[j & 3]
    const RoundItem &it = ring[j & 3];
    const int bsz = it.bsz;
    // Warpgroup 1 holds token groups 4..11.
    const bool mine = warp * 8 < bsz, wgLive = wg == 0 || bsz > 32;
    // kOverlap: the value Gram queues behind the key Gram (as soon as the
    // values have landed, which in round 0 they mostly have), and the row
    // means below overlap it.
    auto gram = [&](const T *rows, int dim, float(&acc)[16][4]) {
      if constexpr (kOverlap) {
        const WgmmaRowBlock rb = wgmmaRowBlock(rows, kDim, wg);
        wgmmaGramSteps<T, kDim / 16>(rb.a, rb.b, false, acc);
      } else {
        wgmmaGramRows64<T>(wgmmaRowBlock(rows, dim, wg), acc);
      }
    };
    const T *valueRows = nullptr;
    if (wgLive) {
      gram(keyRows, p.d, rawK);
      if constexpr (kOverlap) {
        valueRows = acquireRows();
        gram(valueRows, p.dv, rawV);
      }
    } else if constexpr (kOverlap) {
      valueRows = acquireRows();
    }
    const float uniform =
        ptid < bsz ? walkUniform(p.seed, uint32_t(ptid), uint32_t(it.blk),
                                 p.round, uint32_t(it.b), uint32_t(it.h))
                   : 0.0f;
    wgmmaWait<kOverlap ? 1 : 0>(); // the key Gram
    wgmmaFenceOperands(rawK);
    releaseRows();
    if (mine)
      storeRowMeans(rawK, tokenRow(0), tokenRow(1), bsz, lane, a);
    namedSync(kBarProducers, kProducers); // a_i written
    float mm = 0.0f; // every warp the same sum, in the same order
    for (int i = lane; i < bsz; i += 32)
      mm += a[i];
    for (int o = 16; o > 0; o >>= 1)
      mm += __shfl_xor_sync(0xffffffffu, mm, o);
    mm /= float(bsz);
    if constexpr (!kOverlap) {
      valueRows = acquireRows();
      if (wgLive)
        gram(valueRows, p.dv, rawV);
    }
    wgmmaWait<0>(); // the value Gram
    wgmmaFenceOperands(rawV);
    releaseRows();
    // Wait until the walk freed G[slot] (it walks item j - slots).
    const int slot = slots == 2 ? (j & 1) : 0; // j % slots, slots in {1, 2}
    float *G = Gs + slot * kGLowerSize;
    namedSync(kBarEmpty0 + slot, kHandOffThreads);
    if (ptid < bsz)
      us[slot * kMaxBlock + ptid] = uniform;
    if (ptid == 0)
      info[slot] = it;
    if (mine)
      storeLowerTriangle(G, a, wsOf(j), rawK, rawV,
                         p.expScale * 1.4426950408889634f, mm, p.c0, lane,
                         warp);
    // G[slot] is complete: hand it to the walk. The producer barrier also
    // makes `a` reusable for the next item.
    namedSync(kBarProducers, kProducers);
    namedArrive(kBarFull0 + slot, kHandOffThreads);
  }
}

/// Step 4, part 1, per (batch, head): finds c (from the blocks' sign
/// counts, then inside the crossing block) and kappa, and the output offset
/// of every block's candidates.
struct SelectParams {
  const int8_t *sigma;
  const int32_t *blockPlus;
  int32_t *blockOffset; // [B*H][numBlocks]
  int64_t *crossing;    // [B*H][2]: c, kappa
  int64_t l0, len, numBlocks, blockSize;
};

/// Index of the need-th (1-based) sign of colour `wantPlus` among
/// sigma[s0, s0 + len), on one warp, 32 signs a step (a serial walk on one
/// lane was ~16 us a round); 0 if there are fewer.
__device__ int64_t nthSign(const int8_t *sigma, int64_t s0, int64_t len,
                           bool wantPlus, int64_t need, int lane) {
  int64_t cnt = 0;
  for (int64_t off = 0; off < len; off += 32) {
    const bool want =
        off + lane < len && (sigma[s0 + off + lane] > 0) == wantPlus;
    const unsigned mask = __ballot_sync(0xffffffffu, want);
    const int64_t upTo = cnt + __popc(mask & ((2u << lane) - 1u));
    const unsigned at = __ballot_sync(0xffffffffu, want && upTo == need);
    if (at)
      return s0 + off + __ffs(at) - 1;
    cnt += __popc(mask);
  }
  return 0;
}

/// One CTA of kSelectThreads per (batch, head): thread t sums the sign
/// counts of its blocks, CTA-wide scans find the block where each colour
/// reaches h and two warps the exact index in it, then a third scan gives
/// every block's output offset (a single warp doing this in chunks of 32
/// blocks took 11 us a round at 32k tokens).
__global__ void __launch_bounds__(kSelectThreads)
    crossoverScanKernel(SelectParams p) {
  __shared__ int scratch[kSelectThreads / 32];
  __shared__ int64_t crossBlock[2], crossNeed[2], found[2];
  __shared__ int kappaUpToC;
  const int64_t bh = blockIdx.x;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int8_t *sigma = p.sigma + bh * p.l0;
  const int32_t *plus = p.blockPlus + bh * p.numBlocks;
  const int64_t h = p.len / 2, nb = p.numBlocks, bs = p.blockSize;
  auto blockLen = [&](int64_t k) { return int(min(bs, p.len - k * bs)); };
  const int64_t per = (nb + kSelectThreads - 1) / kSelectThreads;
  const int64_t k0 = min(nb, tid * per), k1 = min(nb, k0 + per);
  int64_t myPlus = 0, myMinus = 0;
  for (int64_t k = k0; k < k1; ++k) {
    const int n = plus[k];
    myPlus += n;
    myMinus += blockLen(k) - n;
  }
  if (tid < 2) {
    crossBlock[tid] = -1;
    found[tid] = 0; // "0 if never"
  }
  int total;
  const int64_t beforePlus =
      blockInclusiveScan<kSelectThreads>(int(myPlus), scratch, total) - myPlus;
  const int64_t beforeMinus =
      blockInclusiveScan<kSelectThreads>(int(myMinus), scratch, total) -
      myMinus;
  for (int colour = 0; colour < 2; ++colour) {
    int64_t run = colour == 0 ? beforePlus : beforeMinus;
    const int64_t mine = colour == 0 ? myPlus : myMinus;
    if (run < h && run + mine >= h) {
      for (int64_t k = k0; k < k1; ++k) {
        const int n = colour == 0 ? plus[k] : blockLen(k) - plus[k];
        if (run + n >= h) {
          crossBlock[colour] = k;
          crossNeed[colour] = h - run;
          break;
        }
        run += n;
      }
    }
  }
  __syncthreads();
  if (warp < 2 && crossBlock[warp] >= 0) {
    const int64_t kb = crossBlock[warp];
    const int64_t c =
        nthSign(sigma, kb * bs, blockLen(kb), warp == 0, crossNeed[warp], lane);
    if (lane == 0)
      found[warp] = c;
  }
  __syncthreads();
  const int64_t c = h > 0 ? max(found[0], found[1]) : 0;
  const int kappa = h > 0 ? -sigma[c] : 0;
  const int64_t cBlock = c / bs;
  if (warp == 0) {
    int n = 0;
    for (int64_t i = cBlock * bs + lane; i <= c; i += 32)
      n += sigma[i] == kappa;
    for (int o = 16; o > 0; o >>= 1)
      n += __shfl_xor_sync(0xffffffffu, n, o);
    if (lane == 0)
      kappaUpToC = n;
  }
  __syncthreads();
  // Candidates per block: kappa-coloured up to c, everything after c.
  auto candidates = [&](int64_t k) {
    const int len = blockLen(k);
    if (k < cBlock)
      return kappa > 0 ? plus[k] : len - plus[k];
    if (k > cBlock)
      return len;
    return kappaUpToC + int(k * bs + len - 1 - c);
  };
  int myN = 0;
  for (int64_t k = k0; k < k1; ++k)
    myN += candidates(k);
  int at = blockInclusiveScan<kSelectThreads>(myN, scratch, total) - myN;
  for (int64_t k = k0; k < k1; ++k) {
    p.blockOffset[bh * nb + k] = at;
    at += candidates(k);
  }
  if (tid == 0) {
    p.crossing[bh * 2] = c;
    p.crossing[bh * 2 + 1] = kappa;
  }
}

/// Step 4, part 2, one CTA per (batch, head, block): writes the block's
/// kept candidates at their offsets (ping-pong buffers).
struct CompactParams {
  const int8_t *sigma;
  const int32_t *blockOffset;
  const int64_t *crossing;
  const int32_t *curIn;
  const float *lwIn;
  int32_t *curOut;
  float *lwOut;
  int64_t l0, len, numBlocks, blockSize;
  int heads;
  bool identity; // round 0: curIn[i] = i, lwIn[i] = 0 (not loaded)
};

/// Step 4, part 2: a warp per block (8 blocks a CTA), one ballot per 32
/// tokens, no CTA barrier (a CTA per block with a block scan took 11 us a
/// round at 32k tokens).
__global__ void __launch_bounds__(256) compactKernel(CompactParams p) {
  const int lane = threadIdx.x & 31;
  const int64_t blk = blockIdx.x * int64_t(8) + (threadIdx.x >> 5),
                bh = int64_t(blockIdx.z) * p.heads + blockIdx.y;
  if (blk >= p.numBlocks)
    return;
  const int64_t h = p.len / 2, c = p.crossing[bh * 2];
  const int kappa = int(p.crossing[bh * 2 + 1]);
  const int64_t s0 = blk * p.blockSize, len = min(p.blockSize, p.len - s0);
  int64_t off = p.blockOffset[bh * p.numBlocks + blk];
  for (int64_t e = 0; e < len; e += 32) {
    const int64_t i = s0 + e + lane;
    const bool cand =
        e + lane < len && (i <= c ? p.sigma[bh * p.l0 + i] == kappa : true);
    const unsigned mask = __ballot_sync(0xffffffffu, cand);
    const int64_t pos = off + __popc(mask & ((1u << lane) - 1u));
    if (cand && pos < h) {
      p.curOut[bh * p.l0 + pos] =
          p.identity ? int32_t(i) : p.curIn[bh * p.l0 + i];
      p.lwOut[bh * p.l0 + pos] = (p.identity ? 0.0f : p.lwIn[bh * p.l0 + i]) +
                                 (i <= c ? 0.69314718055994531f : 0.0f);
    }
    off += __popc(mask);
  }
}

/// uniform: the L_T middle tokens with the smallest Philox draws (24-bit
/// integers; ties by position), by a two-pass 12-bit radix select.
__global__ void __launch_bounds__(kSelectThreads)
    uniformSelectKernel(int32_t *curAll, float *lwAll, int64_t l0, int64_t lt,
                        int heads, uint64_t seed) {
  __shared__ int hist[4096];
  __shared__ int scratch[kSelectThreads / 32];
  __shared__ int foundBin, foundBefore;
  const int64_t bh = blockIdx.x;
  const uint32_t b = uint32_t(bh / heads), h = uint32_t(bh % heads);
  int32_t *cur = curAll + bh * l0;
  float *lw = lwAll + bh * l0;
  if (lt == 0)
    return;
  auto draw = [&](int64_t i) {
    return uniformBaselineBits(seed, uint32_t(i), b, h) >> 8;
  };
  // Finds the bin where the running count crosses `need`.
  auto crossing = [&](int need) {
    int local = 0;
    for (int k = 0; k < 4; ++k)
      local += hist[threadIdx.x * 4 + k];
    int total;
    int incl = blockInclusiveScan<kSelectThreads>(local, scratch, total);
    int before = incl - local;
    if (before < need && need <= incl) {
      for (int k = 0; k < 4; ++k) {
        int c = hist[threadIdx.x * 4 + k];
        if (before < need && need <= before + c) {
          foundBin = threadIdx.x * 4 + k;
          foundBefore = before;
        }
        before += c;
      }
    }
    __syncthreads();
  };
  for (int k = threadIdx.x; k < 4096; k += kSelectThreads)
    hist[k] = 0;
  __syncthreads();
  for (int64_t i = threadIdx.x; i < l0; i += kSelectThreads)
    atomicAdd(&hist[draw(i) >> 12], 1);
  __syncthreads();
  crossing(int(lt));
  const uint32_t hiBin = foundBin;
  const int need1 = int(lt) - foundBefore;
  for (int k = threadIdx.x; k < 4096; k += kSelectThreads)
    hist[k] = 0;
  __syncthreads();
  for (int64_t i = threadIdx.x; i < l0; i += kSelectThreads) {
    uint32_t x = draw(i);
    if ((x >> 12) == hiBin)
      atomicAdd(&hist[x & 4095], 1);
  }
  __syncthreads();
  crossing(need1);
  const uint32_t threshold = (hiBin << 12) | uint32_t(foundBin);
  const int needEq = need1 - foundBefore;
  const float logW = logf(float(double(l0) / double(lt)));
  int64_t carry = 0, carryEq = 0;
  for (int64_t c0 = 0; c0 < l0; c0 += kSelectThreads) {
    const int64_t i = c0 + threadIdx.x;
    uint32_t x = i < l0 ? draw(i) : 0xffffffffu;
    int eq = x == threshold, total;
    int eqBefore = blockInclusiveScan<kSelectThreads>(eq, scratch, total) - eq;
    bool take = x < threshold || (eq && carryEq + eqBefore < needEq);
    carryEq += total;
    int pos = blockInclusiveScan<kSelectThreads>(take, scratch, total) - take;
    if (take) {
      cur[carry + pos] = int32_t(i);
      lw[carry + pos] = logW;
    }
    carry += total;
  }
}

/// Every (batch, head) keeps its whole middle with weight 1: x = position,
/// y = (batch, head) + gridDim.y steps (no 64-bit modulo per element).
__global__ void initKeptKernel(int32_t *cur, float *lw, int64_t l0,
                               int64_t bhCount) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= l0)
    return;
  for (int64_t bh = blockIdx.y; bh < bhCount; bh += gridDim.y) {
    cur[bh * l0 + i] = int32_t(i);
    lw[bh * l0 + i] = 0.0f;
  }
}

struct GatherParams {
  const void *key, *value;
  int64_t ks[3], vs[3];
  Paging paging;
  void *outKey, *outValue;
  int64_t oks[3], ovs[3];
  float *outLw;
  int32_t *outIdx;
  const int32_t *cur;
  const float *lw;
  int64_t n, l0, sink, lt, recent, m, heads, bhCount;
  int d, dv;
  bool vec;
};

constexpr int kGatherRowsPerWarp = 2;

/// Warp w of CTA x copies output rows (8 x + w) * R .. + R - 1 of (batch,
/// head) blockIdx.y (+ gridDim.y steps), R = kGatherRowsPerWarp. All R
/// rows' 16-byte pieces are loaded before any is stored (a row at a time
/// left the kernel latency-bound at ~1.7 TB/s; R = 2: 98 us at 32k x 32,
/// R = 4: 111 us, R = 8: 135 us), and there is no 64-bit division per row.
template <typename T> __global__ void gatherKernel(GatherParams p) {
  constexpr int kR = kGatherRowsPerWarp;
  const int64_t m0 =
      (blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32) * kR;
  const int lane = threadIdx.x & 31;
  if (m0 >= p.m)
    return;
  for (int64_t bh = blockIdx.y; bh < p.bhCount; bh += gridDim.y) {
    const int64_t b = int(bh) / int(p.heads), h = bh - b * p.heads;
    int64_t pos[kR];
    float lwv[kR];
#pragma unroll
    for (int r = 0; r < kR; ++r) {
      const int64_t m = min(m0 + r, p.m - 1); // tail rows repeat the last
      lwv[r] = 0.0f;
      if (m < p.sink) {
        pos[r] = m;
      } else if (m < p.sink + p.lt) {
        const int64_t j = m - p.sink;
        pos[r] = p.sink + p.cur[bh * p.l0 + j];
        lwv[r] = p.lw[bh * p.l0 + j];
      } else {
        pos[r] = p.n - p.recent + (m - p.sink - p.lt);
      }
    }
    const CacheRows<T> srcK = cacheRows<T>(p.key, p.ks, p.paging, b, h);
    const CacheRows<T> srcV = cacheRows<T>(p.value, p.vs, p.paging, b, h);
    T *dstK = static_cast<T *>(p.outKey) + b * p.oks[0] + h * p.oks[1];
    T *dstV = static_cast<T *>(p.outValue) + b * p.ovs[0] + h * p.ovs[1];
    constexpr int kPerVec = 16 / sizeof(T);
    const int kc = p.d / kPerVec, vc = p.dv / kPerVec;
    if (p.vec && kc + vc <= 32) {
      // One 16-byte piece per lane and row (key pieces, then value pieces).
      const bool isKey = lane < kc, live = lane < kc + vc;
      uint4 piece[kR];
#pragma unroll
      for (int r = 0; r < kR; ++r)
        if (live)
          piece[r] =
              isKey ? reinterpret_cast<const uint4 *>(srcK(pos[r]))[lane]
                    : reinterpret_cast<const uint4 *>(srcV(pos[r]))[lane - kc];
#pragma unroll
      for (int r = 0; r < kR; ++r)
        if (live && m0 + r < p.m) {
          if (isKey)
            reinterpret_cast<uint4 *>(dstK + (m0 + r) * p.oks[2])[lane] =
                piece[r];
          else
            reinterpret_cast<uint4 *>(dstV + (m0 + r) * p.ovs[2])[lane - kc] =
                piece[r];
        }
    } else {
      for (int r = 0; r < kR && m0 + r < p.m; ++r) {
        const int64_t m = m0 + r;
        for (int x = lane; x < p.d; x += 32)
          dstK[m * p.oks[2] + x] = srcK(pos[r])[x];
        for (int x = lane; x < p.dv; x += 32)
          dstV[m * p.ovs[2] + x] = srcV(pos[r])[x];
      }
    }
    if (lane < kR && m0 + lane < p.m) {
      // Lane r writes row r's weight and index (registers indexed by lane
      // through a small unrolled select).
      int64_t pr = pos[0];
      float lr = lwv[0];
#pragma unroll
      for (int r = 1; r < kR; ++r)
        if (lane == r) {
          pr = pos[r];
          lr = lwv[r];
        }
      p.outLw[bh * p.m + m0 + lane] = lr;
      if (p.outIdx)
        p.outIdx[bh * p.m + m0 + lane] = int32_t(pr);
    }
  }
}

bool aligned16(const void *ptr, const int64_t *strides, int n, int dim,
               int elemSize) {
  const int64_t per = 16 / elemSize;
  if (reinterpret_cast<uintptr_t>(ptr) % 16 || dim % per)
    return false;
  for (int i = 0; i < n; ++i)
    if (strides[i] % per)
      return false;
  return true;
}

size_t align256(size_t x) { return (x + 255) / 256 * 256; }

/// Byte offsets into the compress workspace.
struct WorkspaceLayout {
  size_t cur[2], lw[2], sigma, blockPlus, blockOffset, crossing, total;
  WorkspaceLayout(int64_t batch, int64_t heads, int64_t l0) {
    const size_t n = size_t(batch * heads * l0), bh = size_t(batch * heads);
    // Blocks of the first round at the smallest block size (2).
    const size_t blocks = bh * size_t((l0 + 1) / 2 + 1);
    size_t off = 0;
    auto take = [&](size_t bytes) {
      size_t at = off;
      off += align256(bytes);
      return at;
    };
    cur[0] = take(4 * n);
    cur[1] = take(4 * n);
    lw[0] = take(4 * n);
    lw[1] = take(4 * n);
    sigma = take(n);
    blockPlus = take(4 * blocks);
    blockOffset = take(4 * blocks);
    crossing = take(16 * bh);
    total = off;
  }
};

/// A TMA map of 16-bit rows `rowStride` elements apart whose box is one
/// group of 8 rows in the core-matrix layout: dimensions (8 elements, 8 rows,
/// dim / 8 pieces, `groups` groups of 8 rows, `xSize` more, `xStride`
/// elements apart), box (8, 8, dim / 8, 1, 1), so one copy lands the group's
/// dim / 8 core matrices as wgmma reads them. False if the driver refuses.
bool encodeRowGroups(CUtensorMap *map, const void *data, int64_t rowStride,
                     int dim, int64_t groups, int64_t xSize, int64_t xStride,
                     int elem, balancekv_dtype dtype) {
  const auto encode = tensorMapEncoder();
  if (!encode)
    return false;
  const cuuint64_t dims[5] = {8, 8, cuuint64_t(dim / 8), cuuint64_t(groups),
                              cuuint64_t(xSize)};
  const cuuint64_t strides[4] = {cuuint64_t(rowStride * elem), 16,
                                 cuuint64_t(8 * rowStride * elem),
                                 cuuint64_t(xStride * elem)};
  const cuuint32_t box[5] = {8, 8, cuuint32_t(dim / 8), 1, 1};
  const cuuint32_t unit[5] = {1, 1, 1, 1, 1};
  return encode(map, tensorMapDataType(dtype), 5, const_cast<void *>(data),
                dims, strides, box, unit, CU_TENSOR_MAP_INTERLEAVE_NONE,
                CU_TENSOR_MAP_SWIZZLE_NONE, CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

/// The row-group map of a [B, H, N, dim] cache: groups N / 8 of each of the
/// B * H heads. Needs the batch stride to be H head strides; false
/// otherwise (the copies then stay on cp.async). (Round 0 by TMA instead of
/// 16-byte cp.async: 297 -> 282 us at 32k x 32.)
bool rowGroupMap(CUtensorMap *map, const balancekv_tensor &t, int64_t batch,
                 int64_t heads, int64_t n, int dim, int elem,
                 balancekv_dtype dtype) {
  if ((batch > 1 && t.strides[0] != heads * t.strides[1]) || n < 8)
    return false;
  return encodeRowGroups(map, t.data, t.strides[2], dim, n / 8, batch * heads,
                         t.strides[1], elem, dtype);
}

/// rowGroupMap for a paged pool (`t`'s strides: page, h, slot) of pages of
/// `pageSize` tokens (a multiple of 8), where a page's token groups and the
/// pages (NHD: a page is pageSize slots) or the heads and the pages (HND: a
/// page is H heads of pageSize slots) merge into one dimension of groups;
/// sets the kernel's coordinate factors (RoundParams::tmaPageGroups, ...).
/// The page count, which the C API does not take, is bounded by what 1 TB
/// of address space holds. False where the pool is neither.
bool pagedRowGroupMap(CUtensorMap *map, const balancekv_tensor &t,
                      int64_t pageSize, int64_t heads, int dim, int elem,
                      balancekv_dtype dtype, RoundParams &rp) {
  const int64_t sp = t.strides[0], sh = t.strides[1], ss = t.strides[2];
  if (pageSize % 8 || ss <= 0) // (a zero slot stride: no TMA, no division)
    return false;
  const int64_t groups = pageSize / 8; // a page's token groups, one head
  // Group indices up to the 1 TB of address space a TMA dimension spans.
  const int64_t reach =
      std::min<int64_t>(int64_t(1) << 30, (int64_t(1) << 40) / (8 * ss * elem));
  int64_t count, xSize, xStride;
  if (sp == pageSize * ss) { // NHD: groups of all pages, then heads
    rp.tmaPageGroups = int(groups);
    rp.tmaHeadGroups = 0;
    rp.tmaHeadX = 1;
    count = reach / groups * groups;
    xSize = heads;
    xStride = sh;
  } else if (sh == pageSize * ss && sp == heads * sh) { // HND: one run
    rp.tmaPageGroups = int(heads * groups);
    rp.tmaHeadGroups = int(groups);
    rp.tmaHeadX = 0;
    count = reach / (heads * groups) * (heads * groups);
    xSize = 1;
    xStride = 8 * ss; // never stepped
  } else {
    return false;
  }
  return encodeRowGroups(map, t.data, ss, dim, count, xSize, xStride, elem,
                         dtype);
}

template <typename T> const char *launchTyped(const CompressArgs &a) {
  cudaStream_t stream = static_cast<cudaStream_t>(a.stream);
  const int64_t bhCount = a.batch * a.heads, l0 = a.middle;
  WorkspaceLayout wl(a.batch, a.heads, l0);
  auto *ws = static_cast<unsigned char *>(a.workspace);
  int32_t *curBuf[2] = {reinterpret_cast<int32_t *>(ws + wl.cur[0]),
                        reinterpret_cast<int32_t *>(ws + wl.cur[1])};
  float *lwBuf[2] = {reinterpret_cast<float *>(ws + wl.lw[0]),
                     reinterpret_cast<float *>(ws + wl.lw[1])};
  int8_t *sigma = reinterpret_cast<int8_t *>(ws + wl.sigma);
  int32_t *blockPlus = reinterpret_cast<int32_t *>(ws + wl.blockPlus);
  int32_t *blockOffset = reinterpret_cast<int32_t *>(ws + wl.blockOffset);
  int64_t *crossing = reinterpret_cast<int64_t *>(ws + wl.crossing);
  int32_t *cur = curBuf[0];
  float *lw = lwBuf[0];
  const int elem = int(sizeof(T));

  // A balance compression with a round to run reads round 0's kept set as
  // the identity (RoundParams::identity) instead of initialising it.
  const bool skipInit = a.params.method == BALANCEKV_METHOD_BALANCE &&
                        a.params.rounds > 0 && l0 > 1;
  if (bhCount * l0 > 0 && !skipInit)
    initKeptKernel<<<dim3(unsigned((l0 + 255) / 256),
                          unsigned(std::min<int64_t>(bhCount, 65535))),
                     256, 0, stream>>>(cur, lw, l0, bhCount);

  const balancekv_compress_params &prm = a.params;
  if (prm.method == BALANCEKV_METHOD_BALANCE) {
    RoundParams rp{};
    rp.key = a.key.data;
    rp.value = a.value.data;
    for (int i = 0; i < 3; ++i) {
      rp.ks[i] = a.key.strides[i];
      rp.vs[i] = a.value.strides[i];
    }
    rp.paging = a.paging;
    rp.sigma = sigma;
    rp.blockPlus = blockPlus;
    rp.l0 = l0;
    rp.mid0 = a.sink;
    rp.d = int(a.d);
    rp.dv = int(a.dv);
    rp.blockSize = int(prm.block_size);
    rp.heads = int(a.heads);
    const int maxDim = int(std::max(a.d, a.dv));
    // 16-bit rows padded by 8 elements (16 bytes): conflict-free fragment
    // loads and 16-byte row alignment; f32 rows by one word.
    rp.ld = elem == 2 ? (maxDim + 7) / 8 * 8 + 8 : maxDim + 1;
    rp.seed = prm.seed;
    rp.gamma = float(prm.gamma);
    rp.expScale = float(prm.temperature * double(a.scale));
    rp.c0 = float(prm.c0);
    rp.vecKey =
        elem == 2 && aligned16(a.key.data, a.key.strides, 3, rp.d, elem);
    rp.vecValue =
        elem == 2 && aligned16(a.value.data, a.value.strides, 3, rp.dv, elem);
    const size_t smem = sizeof(float) * (kGSize + 4 * kMaxBlock + 4) +
                        size_t(kMaxBlock) * rp.ld * elem;
    allowDynamicSharedMemory(reinterpret_cast<const void *>(walkRoundKernel<T>),
                             smem);
    // The warp-specialised kernel needs 16-bit rows with dims % 16 == 0 and
    // its two row buffers next to one or (if they fit) two G buffers.
    auto persistentSmem = [&](int gSlots, int rowSlots) {
      return sizeof(float) * (size_t(gSlots) * kGLowerSize + 7 * kMaxBlock) +
             sizeof(int) * 4 * kMaxBlock + sizeof(RoundItem) * 2 +
             sizeof(RoundItem) * 4 + sizeof(uint64_t) * 4 + 128 +
             size_t(rowSlots) * kMaxBlock * maxDim * elem + // core matrices
             (a.paging.table ? sizeof(int) * 4 * kMaxBlock : 0); // page ids
    };
    // Two G buffers and three row buffers fit for rows up to 128 wide.
    rp.gSlots = 1;
    rp.rowSlots = 2;
    for (const auto [g, r] : {std::pair{2, 3}, {2, 2}, {1, 3}})
      if (persistentSmem(g, r) <= sharedMemoryPerBlockOptin()) {
        rp.gSlots = g;
        rp.rowSlots = r;
        break;
      }
    const size_t smemP = persistentSmem(rp.gSlots, rp.rowSlots);
    const bool persistent = elem == 2 && rp.d % 16 == 0 && rp.dv % 16 == 0 &&
                            smemP <= sharedMemoryPerBlockOptin();
    const int sms = multiprocessorCount();
    void (*persistentKernel)(RoundParams, int64_t, CUtensorMap,
                             CUtensorMap) = nullptr;
    CUtensorMap keyMap{}, valueMap{};
    rp.tmaRowEnd = 0;
    // Round 0 by TMA: 0.82 -> 0.64 ms at 32k x 32 on an H200 (282 -> 297
    // us on the H100), for dense caches and paged pools alike.
    const int64_t pageSize = int64_t(1) << a.paging.pageShift;
    auto maps = [&] {
      if (!a.paging.table)
        return rowGroupMap(&keyMap, a.key, a.batch, a.heads, a.n, rp.d, elem,
                           a.dtype) &&
               rowGroupMap(&valueMap, a.value, a.batch, a.heads, a.n, rp.dv,
                           elem, a.dtype);
      RoundParams valueFactors = rp;
      return pagedRowGroupMap(&keyMap, a.key, pageSize, a.heads, rp.d, elem,
                              a.dtype, rp) &&
             pagedRowGroupMap(&valueMap, a.value, pageSize, a.heads, rp.dv,
                              elem, a.dtype, valueFactors) &&
             valueFactors.tmaPageGroups == rp.tmaPageGroups &&
             valueFactors.tmaHeadGroups == rp.tmaHeadGroups &&
             valueFactors.tmaHeadX == rp.tmaHeadX;
    };
    if (elem == 2 && rp.d == 128 && rp.dv == 128 && rp.vecKey && rp.vecValue &&
        a.sink % 8 == 0 && a.n >= 8 && maps())
      rp.tmaRowEnd = a.n / 8 * 8;
    if constexpr (sizeof(T) == 2) {
      if (persistent) {
        persistentKernel =
            rp.d == 128 && rp.dv == 128 ? walkRoundPersistentKernel<T, 128>
            : rp.d == 64 && rp.dv == 64 ? walkRoundPersistentKernel<T, 64>
                                        : walkRoundPersistentKernel<T, 0>;
        allowDynamicSharedMemory(
            reinterpret_cast<const void *>(persistentKernel), smemP);
      }
    }
    int64_t len = l0;
    int which = 0;
    for (int64_t t = 0; t < prm.rounds && len > 1; ++t) {
      const int64_t numBlocks = (len + prm.block_size - 1) / prm.block_size;
      rp.cur = curBuf[which];
      rp.lw = lwBuf[which];
      rp.len = len;
      rp.numBlocks = numBlocks;
      rp.round = uint32_t(t);
      rp.identity = t == 0 && skipInit;
      dim3 grid(unsigned(numBlocks), unsigned(a.heads), unsigned(a.batch));
      if (persistentKernel) {
        const int64_t items = numBlocks * a.heads * a.batch;
        persistentKernel<<<unsigned(std::min<int64_t>(items, sms)),
                           kPersistentThreads, smemP, stream>>>(
            rp, items, keyMap, valueMap);
      } else {
        walkRoundKernel<T><<<grid, kThreads, smem, stream>>>(rp);
      }
      SelectParams sp{sigma, blockPlus, blockOffset, crossing,
                      l0,    len,       numBlocks,   prm.block_size};
      crossoverScanKernel<<<unsigned(bhCount), kSelectThreads, 0, stream>>>(sp);
      CompactParams cp{
          sigma,        blockOffset,       crossing,         curBuf[which],
          lwBuf[which], curBuf[which ^ 1], lwBuf[which ^ 1], l0,
          len,          numBlocks,         prm.block_size,   int(a.heads),
          rp.identity};
      compactKernel<<<dim3(unsigned((numBlocks + 7) / 8), unsigned(a.heads),
                           unsigned(a.batch)),
                      256, 0, stream>>>(cp);
      which ^= 1;
      len /= 2;
    }
    cur = curBuf[which];
    lw = lwBuf[which];
  } else if (a.keptMiddle > 0) {
    uniformSelectKernel<<<unsigned(bhCount), kSelectThreads, 0, stream>>>(
        cur, lw, l0, a.keptMiddle, int(a.heads), prm.seed);
  }

  GatherParams gp{};
  gp.key = a.key.data;
  gp.value = a.value.data;
  for (int i = 0; i < 3; ++i) {
    gp.ks[i] = a.key.strides[i];
    gp.vs[i] = a.value.strides[i];
    gp.oks[i] = a.outKey.strides[i];
    gp.ovs[i] = a.outValue.strides[i];
  }
  gp.paging = a.paging;
  gp.outKey = a.outKey.data;
  gp.outValue = a.outValue.data;
  gp.outLw = a.outLogWeights;
  gp.outIdx = a.outIndices;
  gp.cur = cur;
  gp.lw = lw;
  gp.n = a.n;
  gp.l0 = l0;
  gp.sink = a.sink;
  gp.lt = a.keptMiddle;
  gp.recent = a.recent;
  gp.m = a.m;
  gp.heads = a.heads;
  gp.bhCount = bhCount;
  gp.d = int(a.d);
  gp.dv = int(a.dv);
  gp.vec = aligned16(a.key.data, a.key.strides, 3, gp.d, elem) &&
           aligned16(a.value.data, a.value.strides, 3, gp.dv, elem) &&
           aligned16(a.outKey.data, a.outKey.strides, 3, gp.d, elem) &&
           aligned16(a.outValue.data, a.outValue.strides, 3, gp.dv, elem);
  if (a.m > 0 && bhCount > 0) {
    const int64_t perCta = 8 * kGatherRowsPerWarp;
    const dim3 grid(unsigned((a.m + perCta - 1) / perCta),
                    unsigned(std::min<int64_t>(bhCount, 65535)));
    gatherKernel<T><<<grid, 256, 0, stream>>>(gp);
  }
  cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

} // namespace

PFN_cuTensorMapEncodeTiled_v12000 tensorMapEncoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void *f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000,
                                         cudaEnableDefault,
                                         &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
      f = nullptr;
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

size_t compressWorkspaceBytes(int64_t batch, int64_t heads, int64_t middle) {
  return WorkspaceLayout(batch, heads, middle).total;
}

const char *launchCompress(const CompressArgs &args) {
  switch (args.dtype) {
  case BALANCEKV_DTYPE_F16:
    return launchTyped<__half>(args);
  case BALANCEKV_DTYPE_BF16:
    return launchTyped<__nv_bfloat16>(args);
  case BALANCEKV_DTYPE_F32:
    return launchTyped<float>(args);
  }
  return "unknown dtype";
}

} // namespace balancekv::cuda
