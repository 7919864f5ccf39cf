//===- CompressToGPU.cpp - compress => gpu.func kernels + launches -------===//
//
// balancekv.compress (method balance, static shapes) => four kernels in
// @balancekv_kernels and their launches (spec sections 2-3):
//   init    one thread per middle token: cur[i] = i, r[i] = 0 (r = log2 w);
//   walk    one workgroup per (block, head, batch) and round: the block's
//           rows staged in workgroup memory, the Gram G there too (tensor
//           cores on raw 16-bit rows, centred afterwards; FFMA 4x4 register
//           tiles on centred f32 rows otherwise), then the walk in one
//           warp: lane l keeps S_k of rows k = l + 32 q in registers, S_i
//           and u_i come from their owner by shuffle, and every lane adds
//           G[i][k] * sigma_i after step i;
//   select  one workgroup per (head, batch): the crossover (spec step 4) as
//           a block scan of per-thread sign counts, then a second scan that
//           compacts the kept tokens into the next round's cur / r;
//   gather  one warp per output row: sink, kept middle, recent + log-weights.
//
//===----------------------------------------------------------------------===//

#include "BalanceKVToGPU.h"
#include "KernelBuilder.h"

#include "balancekv/Conversion/Utils/Philox.h"
#include "balancekv/Dialect/BalanceKV/IR/BalanceKVOps.h"
#include "balancekv/Support/CompressedLayout.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/Support/Format.h"

#include <cmath>

using namespace mlir;
using namespace balancekv;
using namespace balancekv::gpukernels;
using arith::CmpIPredicate;

namespace {

constexpr int64_t kInitThreads = 256;
constexpr int64_t kWalkThreads = 256;
constexpr int64_t kSelectThreads = 1024;
constexpr int64_t kGatherRowsPerBlock = 8; // one warp per row
/// Opt-in workgroup memory per block on sm_90.
constexpr int64_t kMaxSharedBytes = 227 * 1024;

struct CompressConfig {
  int64_t batch, heads, n, d, dv, blockSize, paddedBlock, rounds;
  CompressedLayout layout;
  double gamma, expScale, c0;
  uint64_t seed;
  Type elem;

  /// The kernels' configuration for a cache `kT` / `vT` compressed under
  /// `p` (static shapes; checkCompressForGPU).
  static CompressConfig get(RankedTensorType kT, RankedTensorType vT,
                            const CompressParams &p) {
    CompressConfig c;
    c.batch = kT.getDimSize(0);
    c.heads = kT.getDimSize(1);
    c.n = kT.getDimSize(2);
    c.d = kT.getDimSize(3);
    c.dv = vT.getDimSize(3);
    c.blockSize = p.blockSize;
    c.rounds = p.rounds;
    c.layout = CompressedLayout::compute(c.n, p.sink, p.recent, c.rounds);
    c.gamma = p.gamma;
    // The kernel exponent's scale in f32, as CompressOp::getEffectiveScale.
    const float scale =
        p.scale != 0 ? p.scale : 1.0f / std::sqrt(static_cast<float>(c.d));
    c.expScale = p.temperature * scale;
    c.c0 = p.c0;
    c.seed = p.seed;
    c.elem = kT.getElementType();
    // Whole m16n8 tiles for tensor cores, 4x4 register tiles otherwise.
    c.paddedBlock = llvm::alignTo(c.blockSize, c.useTensorCores() ? 16 : 4);
    return c;
  }
  /// 16-bit keys and values with dims that are multiples of 16: the Gram
  /// runs on tensor cores (mma.sync m16n8k16, fp32 accumulate) over the raw
  /// rows, which bf16/f16 hold exactly, and is centred afterwards.
  bool useTensorCores() const {
    return (elem.isBF16() || elem.isF16()) && d % 16 == 0 && dv % 16 == 0;
  }
  /// Row stride of the staged rows. FFMA: f32 +1 so that the rows a warp
  /// reads at once fall in distinct banks. Tensor cores: 16-bit +8 so that
  /// the fragment loads of a warp do.
  int64_t stagedStride() const {
    return std::max(d, dv) + (useTensorCores() ? 8 : 1);
  }
  /// The walk reads only G[i][k] with k > i: G is kept as its strict upper
  /// triangle, row after row (half the workgroup memory of the square).
  int64_t packedGramFloats() const {
    return paddedBlock * (paddedBlock - 1) / 2;
  }
  /// Workgroup memory of the walk kernel: G, the staged rows, the key mean
  /// and per-row <k_i, mean> and w_i.
  struct WalkLayout {
    int64_t gram, staged, mean, rowDot, weight, bytes;
  };
  WalkLayout walkLayout() const {
    const int64_t bp = paddedBlock;
    WalkLayout l;
    l.gram = 0;
    l.staged = llvm::alignTo(4 * packedGramFloats(), 16);
    l.mean =
        l.staged +
        llvm::alignTo(bp * stagedStride() * (useTensorCores() ? 2 : 4), 16);
    l.rowDot = l.mean + 4 * d;
    l.weight = l.rowDot + 4 * bp;
    l.bytes = l.weight + 4 * bp;
    return l;
  }
  /// Everything that shapes the generated code.
  std::string key(StringRef kernel) const {
    std::string s;
    llvm::raw_string_ostream os(s);
    os << kernel << ':' << elem << ':' << batch << 'x' << heads << 'x' << n
       << 'x' << d << 'x' << dv << ":b" << blockSize << ":s" << layout.sink
       << ":w" << layout.recent << ":t" << rounds << ":g"
       << llvm::format("%a", gamma) << ":e" << llvm::format("%a", expScale)
       << ":c" << llvm::format("%a", c0) << ":seed" << seed;
    return s;
  }
};

struct Types {
  MemRefType key, value, tokens, signs, outKey, outValue, outLogWeights;
  Type idx;

  Types(MLIRContext *ctx, const CompressConfig &c) {
    int64_t mid = std::max<int64_t>(c.layout.middle, 1);
    int64_t m = c.layout.compressedLength();
    key = MemRefType::get({c.batch, c.heads, c.n, c.d}, c.elem);
    value = MemRefType::get({c.batch, c.heads, c.n, c.dv}, c.elem);
    tokens =
        MemRefType::get({c.batch, c.heads, mid}, IntegerType::get(ctx, 32));
    signs = MemRefType::get({c.batch, c.heads, mid}, IntegerType::get(ctx, 8));
    outKey = MemRefType::get({c.batch, c.heads, m, c.d}, c.elem);
    outValue = MemRefType::get({c.batch, c.heads, m, c.dv}, c.elem);
    outLogWeights =
        MemRefType::get({c.batch, c.heads, m}, Float32Type::get(ctx));
    idx = IndexType::get(ctx);
  }
};

/// The (x, y, z) block ids as (block, head, batch).
struct GridPos {
  Value x, head, batch;
  explicit GridPos(ImplicitLocOpBuilder &b)
      : x(blockId(b, gpu::Dimension::x)), head(blockId(b, gpu::Dimension::y)),
        batch(blockId(b, gpu::Dimension::z)) {}
};

gpu::GPUFuncOp initKernel(KernelModule &km, const CompressConfig &c,
                          const Types &t) {
  return km.getOrCreate(
      "balancekv_init_tokens", c.key("init"), {t.tokens, t.tokens},
      kInitThreads, {}, [&](ImplicitLocOpBuilder &b, gpu::GPUFuncOp fn) {
        Value cur = fn.getArgument(0), r = fn.getArgument(1);
        GridPos g(b);
        Value i = add(b, mul(b, g.x, cIdx(b, kInitThreads)), threadId(b));
        ifThen(b, cmp(b, CmpIPredicate::ult, i, cIdx(b, c.layout.middle)),
               [&](ImplicitLocOpBuilder &ib) {
                 store(ib, indexCast(ib, ib.getI32Type(), i), cur,
                       {g.batch, g.head, i});
                 store(ib, cI32(ib, 0), r, {g.batch, g.head, i});
               });
      });
}

using EmitFn =
    std::function<void(ImplicitLocOpBuilder &, Value i, Value j, Value dot)>;

/// FFMA Gram over f32 rows staged with stride stagedStride(): for every 4x4
/// tile (rows ti + u*nt, columns tj + v*nt) of the padded block owned by
/// this thread, acc = sum_x X[i][x] * X[j][x] over `dim`, handed to `emit`.
/// The strided rows keep the 32 lanes of a warp on 32 banks; the same fma
/// order for (i, j) and (j, i) keeps G symmetric.
void gramTilesFFMA(ImplicitLocOpBuilder &b, const CompressConfig &c,
                   Value staged, int64_t dim, const EmitFn &emit) {
  const int64_t nt = c.paddedBlock / 4, xs = c.stagedStride();
  Value zero = cF(b, b.getF32Type(), 0.0);
  forEach(
      b, threadId(b), cIdx(b, nt * nt), kWalkThreads,
      [&](ImplicitLocOpBuilder &tb, Value tile) {
        Value ti = divU(tb, tile, cIdx(tb, nt));
        Value tj = remU(tb, tile, cIdx(tb, nt));
        SmallVector<Value> rows, cols;
        for (int64_t u = 0; u < 4; ++u) {
          rows.push_back(add(tb, ti, cIdx(tb, u * nt)));
          cols.push_back(add(tb, tj, cIdx(tb, u * nt)));
        }
        SmallVector<Value> inits(16, zero);
        auto acc = forStep(
            tb, cIdx(tb, 0), cIdx(tb, dim), 1, inits,
            [&](ImplicitLocOpBuilder &xb, Value x, ValueRange a) {
              SmallVector<Value> ra, cb, out;
              for (int64_t u = 0; u < 4; ++u) {
                ra.push_back(load(
                    xb, staged, {add(xb, mul(xb, rows[u], cIdx(xb, xs)), x)}));
                cb.push_back(load(
                    xb, staged, {add(xb, mul(xb, cols[u], cIdx(xb, xs)), x)}));
              }
              for (int64_t u = 0; u < 4; ++u)
                for (int64_t v = 0; v < 4; ++v)
                  out.push_back(
                      math::FmaOp::create(xb, ra[u], cb[v], a[u * 4 + v]));
              return out;
            });
        for (int64_t u = 0; u < 4; ++u)
          for (int64_t v = 0; v < 4; ++v)
            emit(tb, rows[u], cols[v], acc[u * 4 + v]);
      });
}

/// Tensor-core Gram over 16-bit rows staged with stride stagedStride()
/// (viewed as i32 pairs): each warp takes 16x8 tiles of G and runs
/// mma.sync.m16n8k16 (row.col, fp32 accumulate) over `dim`; A is the tile's
/// 16 rows, B (column-major) its 8 rows, both read straight from the staged
/// rows in the PTX fragment layout.
void gramTilesMMA(ImplicitLocOpBuilder &b, const CompressConfig &c,
                  Value stagedWords, int64_t dim, const EmitFn &emit) {
  MLIRContext *ctx = b.getContext();
  const int64_t bp = c.paddedBlock, words = c.stagedStride() / 2;
  const int64_t colTiles = bp / 8, tiles = (bp / 16) * colTiles;
  Type f32 = b.getF32Type();
  Type resTy = LLVM::LLVMStructType::getLiteral(ctx, {f32, f32, f32, f32});
  const bool bf16 = c.elem.isBF16();
  auto operand = [&](ImplicitLocOpBuilder &ib, Value row, Value word) -> Value {
    Value w =
        load(ib, stagedWords, {add(ib, mul(ib, row, cIdx(ib, words)), word)});
    if (bf16)
      return w;
    return LLVM::BitcastOp::create(ib, VectorType::get({2}, ib.getF16Type()),
                                   w);
  };
  Value tid = threadId(b);
  Value lane = remU(b, tid, cIdx(b, 32)), warp = divU(b, tid, cIdx(b, 32));
  Value grp = divU(b, lane, cIdx(b, 4)), tig = remU(b, lane, cIdx(b, 4));
  forEach(
      b, warp, cIdx(b, tiles), kWalkThreads / 32,
      [&](ImplicitLocOpBuilder &tb, Value tile) {
        Value row0 = add(
            tb, mul(tb, divU(tb, tile, cIdx(tb, colTiles)), cIdx(tb, 16)), grp);
        Value row1 = add(tb, row0, cIdx(tb, 8));
        Value col = add(
            tb, mul(tb, remU(tb, tile, cIdx(tb, colTiles)), cIdx(tb, 8)), grp);
        SmallVector<Value> zeros(4, cF(tb, f32, 0.0));
        auto acc = forStep(
            tb, cIdx(tb, 0), cIdx(tb, dim / 2), 8, zeros,
            [&](ImplicitLocOpBuilder &kb, Value k2, ValueRange a) {
              Value w0 = add(kb, k2, tig), w1 = add(kb, w0, cIdx(kb, 4));
              SmallVector<Value> aOps{
                  operand(kb, row0, w0), operand(kb, row1, w0),
                  operand(kb, row0, w1), operand(kb, row1, w1)};
              SmallVector<Value> bOps{operand(kb, col, w0),
                                      operand(kb, col, w1)};
              auto mma = NVVM::MmaOp::create(
                  kb, resTy, aOps, bOps, a, {16, 8, 16}, std::nullopt,
                  std::nullopt,
                  std::array<NVVM::MMATypes, 2>{
                      bf16 ? NVVM::MMATypes::bf16 : NVVM::MMATypes::f16,
                      bf16 ? NVVM::MMATypes::bf16 : NVVM::MMATypes::f16},
                  std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                                 NVVM::MMALayout::col});
              SmallVector<Value> out;
              for (int64_t i = 0; i < 4; ++i)
                out.push_back(LLVM::ExtractValueOp::create(kb, mma, i));
              return out;
            });
        // C fragment: (grp, 2 tig + {0,1}) and (grp + 8, 2 tig + {0,1}).
        Value c0 = add(tb, sub(tb, col, grp), mul(tb, tig, cIdx(tb, 2)));
        Value c1 = add(tb, c0, cIdx(tb, 1));
        emit(tb, row0, c0, acc[0]);
        emit(tb, row0, c1, acc[1]);
        emit(tb, row1, c0, acc[2]);
        emit(tb, row1, c1, acc[3]);
      });
}

/// The walk kernel's body (spec section 3, steps 1-3), one workgroup per
/// (block, head, batch), one method per step. The members are what every
/// step reads: the block's place in the state and the workgroup-memory
/// views (WalkLayout).
class WalkKernelBody {
public:
  WalkKernelBody(ImplicitLocOpBuilder &b, gpu::GPUFuncOp fn,
                 const CompressConfig &c)
      : b(b), c(c), f32(b.getF32Type()), mma(c.useTensorCores()),
        bp(c.paddedBlock), xs(c.stagedStride()), g(initArgs(fn)) {
    const auto layout = c.walkLayout();
    tid = threadId(b);
    start = mul(b, g.x, cIdx(b, c.blockSize));
    bsz = minU(b, cIdx(b, c.blockSize), sub(b, len, start));
    Value base = dynamicSharedBase(b);
    gram = sharedView(b, base, layout.gram, c.packedGramFloats(), f32);
    staged = sharedView(b, base, layout.staged, bp * xs, mma ? c.elem : f32);
    stagedWords = mma ? sharedView(b, base, layout.staged, bp * xs / 2,
                                   b.getI32Type())
                      : Value();
    mean = sharedView(b, base, layout.mean, c.d, f32);
    rowDot = sharedView(b, base, layout.rowDot, bp, f32);
    weight = sharedView(b, base, layout.weight, bp, f32);
  }

  void build() {
    storeWeights();
    // Step 1: the block's keys centred, their Gram in G.
    stage(key, c.d, false);
    barrier(b);
    blockMean();
    barrier(b);
    keyGram();
    barrier(b);
    // Step 2: G_ij = exp(tau s <k~_i, k~_j>) (<w_i v_i, w_j v_j> + c0).
    stage(value, c.dv, true);
    barrier(b);
    if (mma)
      gramTilesMMA(b, c, stagedWords, c.dv, kernelEntry());
    else
      gramTilesFFMA(b, c, staged, c.dv, kernelEntry());
    barrier(b);
    // Step 3: the signs.
    walkInWarp();
  }

private:
  GridPos initArgs(gpu::GPUFuncOp fn) {
    key = fn.getArgument(0);
    value = fn.getArgument(1);
    tokens = fn.getArgument(2);
    doublings = fn.getArgument(3);
    signs = fn.getArgument(4);
    len = fn.getArgument(5);
    round = fn.getArgument(6);
    vectorized = c.useTensorCores() ? fn.getArgument(7) : Value();
    return GridPos(b);
  }

  Value stateAt(ImplicitLocOpBuilder &ib, Value mem, Value r) {
    return load(ib, mem, {g.batch, g.head, add(ib, start, r)});
  }
  Value cacheRow(ImplicitLocOpBuilder &ib, Value r) {
    return add(ib, cIdx(ib, c.layout.sink),
               indexCast(ib, ib.getIndexType(), stateAt(ib, tokens, r)));
  }
  Value stagedAt(ImplicitLocOpBuilder &ib, Value r, Value x) {
    return add(ib, mul(ib, r, cIdx(ib, xs)), x);
  }
  Value stagedF32(ImplicitLocOpBuilder &ib, Value r, Value x) {
    return loops::widen(ib, load(ib, staged, {stagedAt(ib, r, x)}), f32);
  }
  /// G[i][j], j > i, in the packed upper triangle: row i starts at
  /// i (2 bp - i - 1) / 2 (an even product).
  Value gramAt(ImplicitLocOpBuilder &ib, Value i, Value j) {
    Value rowStart =
        divU(ib, mul(ib, i, sub(ib, cIdx(ib, 2 * bp - 1), i)), cIdx(ib, 2));
    return add(ib, rowStart, sub(ib, j, add(ib, i, cIdx(ib, 1))));
  }
  void ifUpper(ImplicitLocOpBuilder &ib, Value i, Value j,
               const std::function<void(ImplicitLocOpBuilder &)> &fn) {
    ifThen(ib, cmp(ib, CmpIPredicate::ugt, j, i), fn);
  }

  /// w_i = 2^r_i exactly.
  void storeWeights() {
    forEach(b, tid, bsz, kWalkThreads, [&](ImplicitLocOpBuilder &ib, Value r) {
      store(ib,
            math::Exp2Op::create(
                ib, arith::SIToFPOp::create(ib, f32, stateAt(ib, doublings, r))),
            weight, {r});
    });
  }

  /// The block's rows of `src` into workgroup memory: raw 16-bit for tensor
  /// cores, f32 otherwise (times w_i when `weighted`); 16-byte loads where
  /// the `vectorized` flag says the buffers allow them.
  void stage(Value src, int64_t dim, bool weighted) {
    if (!vectorized)
      return stageScalar(b, src, dim, weighted);
    ifFlag(
        b, vectorized,
        [&](ImplicitLocOpBuilder &ib) { stageVectorized(ib, src, dim); },
        [&](ImplicitLocOpBuilder &ib) { stageScalar(ib, src, dim, weighted); });
  }
  void stageVectorized(ImplicitLocOpBuilder &sb, Value src, int64_t dim) {
    const int64_t vec = 8, perRow = dim / vec;
    const int64_t iters = llvm::divideCeil(bp * perRow, kWalkThreads);
    Value total = mul(sb, bsz, cIdx(sb, perRow));
    VectorType vt = VectorType::get({vec}, c.elem);
    // Every thread issues all its loads before its stores; lanes past the
    // end copy element 0 again (the same value to the same place), so the
    // stores need no guard that would let the loads sink.
    SmallVector<Value> vals, dst;
    for (int64_t it = 0; it < iters; ++it) {
      Value e = add(sb, tid, cIdx(sb, it * kWalkThreads));
      e = select(sb, cmp(sb, CmpIPredicate::ult, e, total), e, cIdx(sb, 0));
      Value r = divU(sb, e, cIdx(sb, perRow));
      Value x = mul(sb, remU(sb, e, cIdx(sb, perRow)), cIdx(sb, vec));
      vals.push_back(vector::LoadOp::create(
          sb, vt, src, ValueRange{g.batch, g.head, cacheRow(sb, r), x}, false,
          llvm::MaybeAlign(16)));
      dst.push_back(stagedAt(sb, r, x));
    }
    for (int64_t it = 0; it < iters; ++it)
      vector::StoreOp::create(sb, vals[it], staged, ValueRange{dst[it]}, false,
                              llvm::MaybeAlign(16));
  }
  void stageScalar(ImplicitLocOpBuilder &sb, Value src, int64_t dim,
                   bool weighted) {
    forEach(sb, tid, mul(sb, bsz, cIdx(sb, dim)), kWalkThreads,
            [&](ImplicitLocOpBuilder &ib, Value e) {
              Value r = divU(ib, e, cIdx(ib, dim)),
                    x = remU(ib, e, cIdx(ib, dim));
              Value v = load(ib, src, {g.batch, g.head, cacheRow(ib, r), x});
              if (!mma) {
                v = loops::widen(ib, v, f32);
                if (weighted)
                  v = arith::MulFOp::create(ib, load(ib, weight, {r}), v);
              }
              store(ib, v, staged, {stagedAt(ib, r, x)});
            });
  }

  /// mu = the mean of the staged keys.
  void blockMean() {
    Value bszF =
        arith::UIToFPOp::create(b, f32, indexCast(b, b.getI32Type(), bsz));
    forEach(b, tid, cIdx(b, c.d), kWalkThreads,
            [&](ImplicitLocOpBuilder &ib, Value x) {
              Value s = forStep(
                  ib, cIdx(ib, 0), bsz, 1, {cF(ib, f32, 0.0)},
                  [&](ImplicitLocOpBuilder &rb, Value r, ValueRange a) {
                    return SmallVector<Value>{
                        arith::AddFOp::create(rb, a[0], stagedF32(rb, r, x))};
                  })[0];
              store(ib, arith::DivFOp::create(ib, s, bszF), mean, {x});
            });
  }

  /// <k_r, mu>, or <mu, mu> for a null `r`.
  Value dotWithMean(ImplicitLocOpBuilder &ib, Value r) {
    return forStep(ib, cIdx(ib, 0), cIdx(ib, c.d), 1, {cF(ib, f32, 0.0)},
                   [&](ImplicitLocOpBuilder &xb, Value x, ValueRange a) {
                     Value kx = r ? stagedF32(xb, r, x) : load(xb, mean, {x});
                     return SmallVector<Value>{math::FmaOp::create(
                         xb, kx, load(xb, mean, {x}), a[0])};
                   })[0];
  }

  /// G_ij = <k~_i, k~_j>: tensor cores on the raw rows, centred afterwards
  /// (<k_i, k_j> - <k_i, mu> - <k_j, mu> + <mu, mu>), or FFMA tiles on rows
  /// centred in place.
  void keyGram() {
    if (mma) {
      forEach(b, tid, bsz, kWalkThreads, [&](ImplicitLocOpBuilder &ib, Value r) {
        store(ib, dotWithMean(ib, r), rowDot, {r});
      });
      barrier(b);
      Value muMu = dotWithMean(b, Value());
      gramTilesMMA(b, c, stagedWords, c.d,
                   [&](ImplicitLocOpBuilder &tb, Value i, Value j, Value kk) {
                     ifUpper(tb, i, j, [&](ImplicitLocOpBuilder &ib) {
                       Value v = arith::SubFOp::create(
                           ib,
                           arith::SubFOp::create(ib, kk,
                                                 load(ib, rowDot, {i})),
                           load(ib, rowDot, {j}));
                       store(ib, arith::AddFOp::create(ib, v, muMu), gram,
                             {gramAt(ib, i, j)});
                     });
                   });
      return;
    }
    forEach(b, tid, mul(b, bsz, cIdx(b, c.d)), kWalkThreads,
            [&](ImplicitLocOpBuilder &ib, Value e) {
              Value r = divU(ib, e, cIdx(ib, c.d)),
                    x = remU(ib, e, cIdx(ib, c.d));
              Value at = stagedAt(ib, r, x);
              store(ib,
                    arith::SubFOp::create(ib, load(ib, staged, {at}),
                                          load(ib, mean, {x})),
                    staged, {at});
            });
    barrier(b);
    gramTilesFFMA(b, c, staged, c.d,
                  [&](ImplicitLocOpBuilder &tb, Value i, Value j, Value kk) {
                    ifUpper(tb, i, j, [&](ImplicitLocOpBuilder &ib) {
                      store(ib, kk, gram, {gramAt(ib, i, j)});
                    });
                  });
  }

  /// Step 2 per tile entry: G_ij = exp(tau s G_ij) (<w_i v_i, w_j v_j> +
  /// c0), the weights applied here for tensor cores (w_i w_j = 2^(r_i + r_j)
  /// is exact), at staging otherwise.
  EmitFn kernelEntry() {
    return [this](ImplicitLocOpBuilder &tb, Value i, Value j, Value vv) {
      ifUpper(tb, i, j, [&](ImplicitLocOpBuilder &ib) {
        Value w = vv;
        if (mma)
          w = arith::MulFOp::create(
              ib, w,
              arith::MulFOp::create(ib, load(ib, weight, {i}),
                                    load(ib, weight, {j})));
        Value at = gramAt(ib, i, j);
        Value e = math::ExpOp::create(
            ib, arith::MulFOp::create(ib, load(ib, gram, {at}),
                                      cF(ib, f32, c.expScale)));
        store(ib,
              arith::MulFOp::create(
                  ib, e, arith::AddFOp::create(ib, w, cF(ib, f32, c.c0))),
              gram, {at});
      });
    };
  }

  /// Step 3, the walk, in warp 0 alone (no barrier per step), four steps at
  /// a time: lane l owns rows l + 32 q (S and u in registers). For the chunk
  /// i0..i0+3 every lane fetches the four S_i and u_i from their owners
  /// (independent shuffles), decides the four signs itself with the chunk's
  /// own G entries (the same arithmetic as one step at a time), then adds
  /// the four updates to its rows: one shuffle round per four steps instead
  /// of a chain of four.
  void walkInWarp() {
    const int64_t slots = llvm::divideCeil(bp, 32);
    ifThen(b, cmp(b, CmpIPredicate::ult, tid, cIdx(b, 32)),
           [&](ImplicitLocOpBuilder &wb) {
             Value lane = tid;
             SmallVector<Value> us, cols, zeros;
             for (int64_t q = 0; q < slots; ++q) {
               Value row = add(wb, lane, cIdx(wb, 32 * q));
               us.push_back(buildSpecUniform(wb, c.seed, row, g.x, round,
                                             g.batch, g.head));
               cols.push_back(minU(wb, row, cIdx(wb, bp - 1)));
               zeros.push_back(cF(wb, f32, 0.0));
             }
             Value width = cI32(wb, 32);
             Value lastAt = cIdx(wb, c.packedGramFloats() - 1);
             auto gramIJ = [&](ImplicitLocOpBuilder &ib, Value i, Value j) {
               return load(ib, gram, {minU(ib, gramAt(ib, i, j), lastAt)});
             };
             forStep(
                 wb, cIdx(wb, 0), bsz, 4, zeros,
                 [&](ImplicitLocOpBuilder &ib, Value i0, ValueRange sums) {
                   return walkChunk(ib, lane, i0, sums, us, cols, width,
                                    gramIJ);
                 });
           });
  }

  /// Four steps i0..i0+3 of the walk; returns the lane's updated sums.
  SmallVector<Value>
  walkChunk(ImplicitLocOpBuilder &ib, Value lane, Value i0, ValueRange sums,
            ArrayRef<Value> us, ArrayRef<Value> cols, Value width,
            const std::function<Value(ImplicitLocOpBuilder &, Value, Value)>
                &gramIJ) {
    const int64_t slots = us.size();
    // The chunk's rows share slot q = i0 / 32 (uniform).
    Value q = divU(ib, i0, cIdx(ib, 32));
    Value ownS = sums[0], ownU = us[0];
    for (int64_t k = 1; k < slots; ++k) {
      Value isK = cmp(ib, CmpIPredicate::eq, q, cIdx(ib, k));
      ownS = select(ib, isK, sums[k], ownS);
      ownU = select(ib, isK, us[k], ownU);
    }
    Value base = remU(ib, i0, cIdx(ib, 32));
    Value step[4], si[4], ui[4];
    for (int r = 0; r < 4; ++r) {
      step[r] = add(ib, i0, cIdx(ib, r));
      Value owner =
          indexCast(ib, ib.getI32Type(), add(ib, base, cIdx(ib, r)));
      si[r] = gpu::ShuffleOp::create(ib, ownS, owner, width,
                                     gpu::ShuffleMode::IDX)
                  .getShuffleResult();
      ui[r] = gpu::ShuffleOp::create(ib, ownU, owner, width,
                                     gpu::ShuffleMode::IDX)
                  .getShuffleResult();
    }
    // S_{i0+r} += G[i0+t][i0+r] sigma_t for t < r, in step order, then
    // sigma_{i0+r}.
    Value sg[4];
    for (int r = 0; r < 4; ++r) {
      Value s = si[r];
      for (int t = 0; t < r; ++t)
        s = math::FmaOp::create(ib, gramIJ(ib, step[t], step[r]), sg[t], s);
      Value p = buildWalkProbability(ib, s, c.gamma);
      Value plus =
          arith::CmpFOp::create(ib, arith::CmpFPredicate::OLT, ui[r], p);
      sg[r] = select(ib, plus, cF(ib, f32, 1.0), cF(ib, f32, -1.0));
      ifThen(ib,
             arith::AndIOp::create(
                 ib, cmp(ib, CmpIPredicate::eq, lane, cIdx(ib, 0)),
                 cmp(ib, CmpIPredicate::ult, step[r], bsz)),
             [&](ImplicitLocOpBuilder &sb) {
               store(sb,
                     select(sb, plus,
                            arith::ConstantIntOp::create(sb, sb.getI8Type(), 1),
                            arith::ConstantIntOp::create(sb, sb.getI8Type(),
                                                         -1)),
                     signs, {g.batch, g.head, add(sb, start, step[r])});
             });
    }
    // Every row adds the chunk's four steps in order. Rows k <= i are
    // decided: they may add anything (a clamped in-bounds element) as they
    // are not read again; steps past bsz come after every live one.
    SmallVector<Value> next(sums.begin(), sums.end());
    for (int r = 0; r < 4; ++r) {
      Value after = add(ib, step[r], cIdx(ib, 1));
      for (int64_t k = 0; k < slots; ++k) {
        Value j = arith::MaxUIOp::create(ib, cols[k], after);
        next[k] = math::FmaOp::create(ib, gramIJ(ib, step[r], j), sg[r],
                                      next[k]);
      }
    }
    return next;
  }

  ImplicitLocOpBuilder &b;
  const CompressConfig &c;
  Type f32;
  const bool mma;
  const int64_t bp, xs;
  // Arguments: the cache, the state, the signs written, L_t, the round, and
  // (tensor cores) the 16-byte flag.
  Value key, value, tokens, doublings, signs, len, round, vectorized;
  GridPos g;
  Value tid, start, bsz;
  // Workgroup memory.
  Value gram, staged, stagedWords, mean, rowDot, weight;
};

/// The tensor-core variant takes an i32 `vectorized` argument (1 when key
/// and value are 16-byte aligned): then the rows are staged with 16-byte
/// loads, all of a thread's loads issued before its stores.
gpu::GPUFuncOp walkKernel(KernelModule &km, const CompressConfig &c,
                          const Types &t) {
  SmallVector<Type> args{t.key,   t.value, t.tokens, t.tokens,
                         t.signs, t.idx,   t.idx};
  if (c.useTensorCores())
    args.push_back(IntegerType::get(t.key.getContext(), 32));
  return km.getOrCreate("balancekv_walk", c.key("walk"), args, kWalkThreads,
                        {}, [&](ImplicitLocOpBuilder &b, gpu::GPUFuncOp fn) {
                          WalkKernelBody(b, fn, c).build();
                        });
}

/// Reads nothing of the cache: configured by the state's types alone.
gpu::GPUFuncOp selectKernel(KernelModule &km, MemRefType signs,
                            MemRefType tokens) {
  MLIRContext *ctx = tokens.getContext();
  Type i32 = IntegerType::get(ctx, 32);
  std::string cacheKey;
  llvm::raw_string_ostream(cacheKey) << "select:" << signs << ':' << tokens;
  Type idx = IndexType::get(ctx);
  return km.getOrCreate(
      "balancekv_select", cacheKey,
      {signs, tokens, tokens, tokens, tokens, idx}, kSelectThreads,
      {workgroupBuffer(ctx, kSelectThreads, i32), workgroupBuffer(ctx, 2, i32)},
      [&](ImplicitLocOpBuilder &b, gpu::GPUFuncOp fn) {
        Value sigma = fn.getArgument(0), curIn = fn.getArgument(1),
              rIn = fn.getArgument(2), curOut = fn.getArgument(3),
              rOut = fn.getArgument(4), len = fn.getArgument(5);
        Value scan = fn.getWorkgroupAttributions()[0],
              crossing = fn.getWorkgroupAttributions()[1];
        GridPos g(b);
        Value tid = threadId(b);
        auto scanPrefix = [&](ImplicitLocOpBuilder &ib, Value v, Value buf) {
          return blockExclusiveScan(ib, v, buf, kSelectThreads).first;
        };
        Value half = indexCast(b, i32, divU(b, len, cIdx(b, 2)));
        Value chunk =
            arith::CeilDivUIOp::create(b, len, cIdx(b, kSelectThreads));
        Value lo = minU(b, mul(b, tid, chunk), len);
        Value hi = minU(b, add(b, lo, chunk), len);
        auto signAt = [&](ImplicitLocOpBuilder &ib, Value j) {
          return load(ib, sigma, {g.batch, g.head, j});
        };
        auto i8c = [&](ImplicitLocOpBuilder &ib, int64_t v) {
          return arith::ConstantIntOp::create(ib, ib.getI8Type(), v);
        };
        auto asI32 = [&](ImplicitLocOpBuilder &ib, Value flag) -> Value {
          return arith::ExtUIOp::create(ib, ib.getI32Type(), flag);
        };
        auto countIf = [&](const std::function<Value(ImplicitLocOpBuilder &,
                                                     Value)> &pred) {
          return forStep(b, lo, hi, 1, {cI32(b, 0)},
                         [&](ImplicitLocOpBuilder &ib, Value j, ValueRange a) {
                           return SmallVector<Value>{
                               add(ib, a[0], asI32(ib, pred(ib, j)))};
                         })[0];
        };
        ifThen(b, cmp(b, CmpIPredicate::eq, tid, cIdx(b, 0)),
               [&](ImplicitLocOpBuilder &ib) {
                 store(ib, cI32(ib, 0), crossing, {cIdx(ib, 0)});
                 store(ib, cI32(ib, 0), crossing, {cIdx(ib, 1)});
               });
        // c+ / c-: where the running count of a colour reaches h. Only the
        // thread whose chunk holds that index walks its chunk.
        Value nPlus = countIf([&](ImplicitLocOpBuilder &ib, Value j) {
          return cmp(ib, CmpIPredicate::sgt, signAt(ib, j), i8c(ib, 0));
        });
        Value before = scanPrefix(b, nPlus, scan);
        Value nMinus = sub(b, indexCast(b, i32, sub(b, hi, lo)), nPlus);
        Value beforeMinus = sub(b, indexCast(b, i32, lo), before);
        for (int colour = 0; colour < 2; ++colour) {
          Value pre = colour == 0 ? before : beforeMinus;
          Value cnt = colour == 0 ? nPlus : nMinus;
          Value holds = arith::AndIOp::create(
              b, cmp(b, CmpIPredicate::slt, pre, half),
              cmp(b, CmpIPredicate::sle, half, add(b, pre, cnt)));
          ifThen(b, holds, [&](ImplicitLocOpBuilder &ib) {
            forStep(ib, lo, hi, 1, {pre},
                    [&](ImplicitLocOpBuilder &jb, Value j, ValueRange a) {
                      Value isColour = cmp(jb,
                                           colour == 0 ? CmpIPredicate::sgt
                                                       : CmpIPredicate::slt,
                                           signAt(jb, j), i8c(jb, 0));
                      Value next = add(jb, a[0], asI32(jb, isColour));
                      Value hit = arith::AndIOp::create(
                          jb, isColour, cmp(jb, CmpIPredicate::eq, next, half));
                      ifThen(jb, hit, [&](ImplicitLocOpBuilder &sb) {
                        store(sb, indexCast(sb, i32, j), crossing,
                              {cIdx(sb, colour)});
                      });
                      return SmallVector<Value>{next};
                    });
          });
        }
        barrier(b);
        Value cross =
            indexCast(b, b.getIndexType(),
                      arith::MaxSIOp::create(b, load(b, crossing, {cIdx(b, 0)}),
                                             load(b, crossing, {cIdx(b, 1)})));
        Value kept = arith::SubIOp::create(b, i8c(b, 0), signAt(b, cross));
        // Candidates: kept-colour tokens up to c (doubled), then all after c.
        auto candidate = [&](ImplicitLocOpBuilder &ib, Value j) -> Value {
          Value upTo = cmp(ib, CmpIPredicate::ule, j, cross);
          return arith::OrIOp::create(
              ib,
              arith::XOrIOp::create(
                  ib, upTo,
                  arith::ConstantIntOp::create(ib, ib.getI1Type(), 1)),
              cmp(ib, CmpIPredicate::eq, signAt(ib, j), kept));
        };
        Value slot = scanPrefix(b, countIf(candidate), scan);
        forStep(b, lo, hi, 1, {slot},
                [&](ImplicitLocOpBuilder &ib, Value j, ValueRange a) {
                  Value isCand = candidate(ib, j);
                  Value take = arith::AndIOp::create(
                      ib, isCand, cmp(ib, CmpIPredicate::slt, a[0], half));
                  ifThen(ib, take, [&](ImplicitLocOpBuilder &sb) {
                    Value at = indexCast(sb, sb.getIndexType(), a[0]);
                    Value doubled =
                        asI32(sb, cmp(sb, CmpIPredicate::ule, j, cross));
                    store(sb, load(sb, curIn, {g.batch, g.head, j}), curOut,
                          {g.batch, g.head, at});
                    store(sb,
                          add(sb, load(sb, rIn, {g.batch, g.head, j}), doubled),
                          rOut, {g.batch, g.head, at});
                  });
                  return SmallVector<Value>{add(ib, a[0], asI32(ib, isCand))};
                });
      });
}

/// `vec` > 1: an i32 `vectorized` argument; when set (the key/value buffers
/// are 16-byte aligned; ours are allocated aligned) rows are copied in
/// 16-byte pieces of `vec` elements.
gpu::GPUFuncOp gatherKernel(KernelModule &km, const CompressConfig &c,
                            const Types &t, int64_t vec) {
  SmallVector<Type> args{t.key,    t.value,    t.tokens,       t.tokens,
                         t.outKey, t.outValue, t.outLogWeights};
  if (vec > 1)
    args.push_back(IntegerType::get(t.key.getContext(), 32));
  return km.getOrCreate(
      "balancekv_gather", c.key("gather"), args, kGatherRowsPerBlock * 32, {},
      [&](ImplicitLocOpBuilder &b, gpu::GPUFuncOp fn) {
        Value key = fn.getArgument(0), value = fn.getArgument(1),
              cur = fn.getArgument(2), logW2 = fn.getArgument(3),
              outK = fn.getArgument(4), outV = fn.getArgument(5),
              outLw = fn.getArgument(6);
        const CompressedLayout &l = c.layout;
        GridPos g(b);
        Value tid = threadId(b);
        Value lane = remU(b, tid, cIdx(b, 32));
        Value row = add(b, mul(b, g.x, cIdx(b, kGatherRowsPerBlock)),
                        divU(b, tid, cIdx(b, 32)));
        ifThen(
            b, cmp(b, CmpIPredicate::ult, row, cIdx(b, l.compressedLength())),
            [&](ImplicitLocOpBuilder &ib) {
              Value inSink = cmp(ib, CmpIPredicate::ult, row, cIdx(ib, l.sink));
              Value inMiddle = arith::AndIOp::create(
                  ib,
                  arith::XOrIOp::create(
                      ib, inSink,
                      arith::ConstantIntOp::create(ib, ib.getI1Type(), 1)),
                  cmp(ib, CmpIPredicate::ult, row,
                      cIdx(ib, l.sink + l.keptMiddle)));
              Value midIdx = select(
                  ib, inMiddle, sub(ib, row, cIdx(ib, l.sink)), cIdx(ib, 0));
              Value midRow =
                  add(ib, cIdx(ib, l.sink),
                      indexCast(ib, ib.getIndexType(),
                                load(ib, cur, {g.batch, g.head, midIdx})));
              Value recentRow = add(
                  ib, row, cIdx(ib, c.n - l.recent - l.sink - l.keptMiddle));
              Value src = select(ib, inSink, row,
                                 select(ib, inMiddle, midRow, recentRow));
              // `piece` elements per lane step: 1 (scalar) or vec.
              auto copyRow = [&](ImplicitLocOpBuilder &cb, Value from, Value to,
                                 int64_t dim, int64_t piece) {
                forEach(cb, mul(cb, lane, cIdx(cb, piece)), cIdx(cb, dim),
                        32 * piece, [&](ImplicitLocOpBuilder &xb, Value x) {
                          if (piece == 1) {
                            store(xb, load(xb, from, {g.batch, g.head, src, x}),
                                  to, {g.batch, g.head, row, x});
                            return;
                          }
                          Value v = vector::LoadOp::create(
                              xb, VectorType::get({piece}, c.elem), from,
                              ValueRange{g.batch, g.head, src, x}, false,
                              llvm::MaybeAlign(16));
                          vector::StoreOp::create(
                              xb, v, to, ValueRange{g.batch, g.head, row, x},
                              false, llvm::MaybeAlign(16));
                        });
              };
              auto copyRows = [&](ImplicitLocOpBuilder &cb, int64_t piece) {
                copyRow(cb, key, outK, c.d, piece);
                copyRow(cb, value, outV, c.dv, piece);
              };
              if (vec > 1)
                ifFlag(
                    ib, fn.getArgument(7),
                    [&](ImplicitLocOpBuilder &cb) { copyRows(cb, vec); },
                    [&](ImplicitLocOpBuilder &cb) { copyRows(cb, 1); });
              else
                copyRows(ib, 1);
              ifThen(ib, cmp(ib, CmpIPredicate::eq, lane, cIdx(ib, 0)),
                     [&](ImplicitLocOpBuilder &lb) {
                       // r ln 2 in f64, rounded once (as the reference).
                       Value r = arith::SIToFPOp::create(
                           lb, lb.getF64Type(),
                           load(lb, logW2, {g.batch, g.head, midIdx}));
                       Value lw = arith::TruncFOp::create(
                           lb, lb.getF32Type(),
                           arith::MulFOp::create(
                               lb, r, cF(lb, lb.getF64Type(), std::log(2.0))));
                       store(lb,
                             select(lb, inMiddle, lw,
                                    cF(lb, lb.getF32Type(), 0.0)),
                             outLw, {g.batch, g.head, row});
                     });
            });
      });
}

//===----------------------------------------------------------------------===//
// Host side: one pattern per stage (the rounds come unrolled from
// decomposeCompress, so every launch has a static grid)
//===----------------------------------------------------------------------===//

/// Marks device buffers that only stages read (the walk state and the
/// signs): freeGPUStageScratch frees them after their last launch.
constexpr StringLiteral kScratchAttr = "balancekv.stage_scratch";

Value scratchAlloc(ImplicitLocOpBuilder &b, MemRefType type) {
  Value buf = deviceAlloc(b, type);
  buf.getDefiningOp()->setAttr(kScratchAttr, b.getUnitAttr());
  return buf;
}

/// The device buffer behind a stage operand: the buffer an earlier stage
/// pattern wrapped, else the tensor's own buffer.
Value deviceBuffer(ImplicitLocOpBuilder &b, Value tensor) {
  if (auto wrap = tensor.getDefiningOp<bufferization::ToTensorOp>())
    if (wrap.getBuffer().getDefiningOp<gpu::AllocOp>())
      return wrap.getBuffer();
  return exactBuffer(b, tensor);
}

/// Stages are lowered in program order: a stage whose operands still come
/// from an unlowered stage waits (its producer's buffer is then reused
/// directly).
bool producersLowered(Operation *op) {
  return llvm::none_of(op->getOperands(), [](Value v) {
    return isa_and_present<BalanceInitOp, BalanceWalkOp, BalanceHalveOp>(
        v.getDefiningOp());
  });
}

/// An empty middle (N <= S + W) has an empty state: no buffer, no launch.
bool replaceEmptyState(PatternRewriter &rewriter, Operation *op) {
  if (llvm::any_of(op->getResultTypes(), [](Type t) {
        return cast<RankedTensorType>(t).getDimSize(2) != 0;
      }))
    return false;
  SmallVector<Value> empty;
  for (Type t : op->getResultTypes()) {
    auto rt = cast<RankedTensorType>(t);
    empty.push_back(tensor::EmptyOp::create(rewriter, op->getLoc(),
                                            rt.getShape(), rt.getElementType()));
  }
  rewriter.replaceOp(op, empty);
  return true;
}

FailureOr<int64_t> constantRound(PatternRewriter &rewriter, Operation *op,
                                 Value round) {
  std::optional<int64_t> t = getConstantIntValue(round);
  if (!t || *t < 0 || *t > CompressParams::kMaxRounds)
    return rewriter.notifyMatchFailure(
        op, "the GPU lowering takes a constant round in [0, 16] (rounds "
            "unrolled, as --balancekv-decompose-compress=unroll-rounds does)");
  return *t;
}

/// Grids are (x, head, batch).
void launchOnHeads(ImplicitLocOpBuilder &b, gpu::GPUFuncOp fn,
                   const CompressConfig &c, int64_t gx, int64_t threads,
                   int64_t sharedBytes, ValueRange args) {
  launch(b, fn, {gx, c.heads, c.batch}, threads, sharedBytes, args);
}

/// compress (balance) => its stages with the rounds unrolled.
struct CompressToStages : OpRewritePattern<CompressOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(CompressOp op,
                                PatternRewriter &rewriter) const override {
    FailureOr<SmallVector<Value>> stages =
        decomposeCompress(rewriter, op, /*unrollRounds=*/true);
    if (failed(stages))
      return rewriter.notifyMatchFailure(op, "only method balance");
    rewriter.replaceOp(op, *stages);
    return success();
  }
};

/// The opening the stage patterns share: stages lower in program order, a
/// walk or halving takes a constant round, and an empty middle's state is
/// replaced without a launch (gather_kept's results are the compressed
/// cache, never state). `lower` does the rest.
template <typename Op>
struct StagePattern : OpRewritePattern<Op> {
  static constexpr bool kHasRound =
      std::is_same_v<Op, BalanceWalkOp> || std::is_same_v<Op, BalanceHalveOp>;
  static constexpr bool kIsState = !std::is_same_v<Op, GatherKeptOp>;

  StagePattern(MLIRContext *ctx, std::shared_ptr<KernelModules> kms)
      : OpRewritePattern<Op>(ctx), kms(std::move(kms)) {}

  LogicalResult matchAndRewrite(Op op, PatternRewriter &rewriter) const final {
    if (!producersLowered(op))
      return rewriter.notifyMatchFailure(op, "producers first");
    int64_t round = 0;
    if constexpr (kHasRound) {
      FailureOr<int64_t> r = constantRound(rewriter, op, op.getRound());
      if (failed(r))
        return failure();
      round = *r;
    }
    if (kIsState && replaceEmptyState(rewriter, op))
      return success();
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    lower(op, round, b, rewriter);
    return success();
  }

  virtual void lower(Op op, int64_t round, ImplicitLocOpBuilder &b,
                     PatternRewriter &rewriter) const = 0;

  std::shared_ptr<KernelModules> kms;
};

/// The compression's configuration for a stage that reads the cache.
template <typename Op>
CompressConfig cacheConfig(Op op) {
  return CompressConfig::get(cast<RankedTensorType>(op.getKey().getType()),
                             cast<RankedTensorType>(op.getValue().getType()),
                             op.getCompressParams());
}

struct BalanceInitToGPU : StagePattern<BalanceInitOp> {
  using StagePattern::StagePattern;
  void lower(BalanceInitOp op, int64_t, ImplicitLocOpBuilder &b,
             PatternRewriter &rewriter) const override {
    auto kT = cast<RankedTensorType>(op.getKey().getType());
    const CompressConfig c = CompressConfig::get(kT, kT, op.getCompressParams());
    const Types t(op.getContext(), c);
    Value tokens = scratchAlloc(b, t.tokens), doublings = scratchAlloc(b, t.tokens);
    if (int64_t len = c.layout.middle; len > 0)
      launchOnHeads(b, initKernel(kms->forOp(op), c, t), c,
                    llvm::divideCeil(len, kInitThreads), kInitThreads, 0,
                    {tokens, doublings});
    rewriter.replaceOp(op, {resultTensor(b, tokens, op.getTokens().getType()),
                            resultTensor(b, doublings,
                                         op.getDoublings().getType())});
  }
};

struct BalanceWalkToGPU : StagePattern<BalanceWalkOp> {
  using StagePattern::StagePattern;
  void lower(BalanceWalkOp op, int64_t round, ImplicitLocOpBuilder &b,
             PatternRewriter &rewriter) const override {
    const CompressConfig c = cacheConfig(op);
    const Types t(op.getContext(), c);
    Value signs = scratchAlloc(b, t.signs);
    // A round that keeps nothing (L_t < 2) needs no signs.
    const int64_t len = c.layout.middle >> round;
    if (len / 2 > 0) {
      Value key = exactBuffer(b, op.getKey()),
            value = exactBuffer(b, op.getValue());
      SmallVector<Value> args{key,
                              value,
                              deviceBuffer(b, op.getTokens()),
                              deviceBuffer(b, op.getDoublings()),
                              signs,
                              cIdx(b, len),
                              cIdx(b, round)};
      // 16-byte loads of key/value rows where the buffers allow it: the
      // kernel takes the run-time alignment as an argument.
      if (c.useTensorCores())
        args.push_back(aligned16Flag(b, {key, value}));
      launchOnHeads(b, walkKernel(kms->forOp(op), c, t), c,
                    llvm::divideCeil(len, c.blockSize), kWalkThreads,
                    c.walkLayout().bytes, args);
    }
    rewriter.replaceOp(op, resultTensor(b, signs, op.getSigns().getType()));
  }
};

struct BalanceHalveToGPU : StagePattern<BalanceHalveOp> {
  using StagePattern::StagePattern;
  void lower(BalanceHalveOp op, int64_t round, ImplicitLocOpBuilder &b,
             PatternRewriter &rewriter) const override {
    auto stateT = cast<RankedTensorType>(op.getTokens().getType());
    auto signsT = cast<RankedTensorType>(op.getSigns().getType());
    auto tokens = MemRefType::get(stateT.getShape(), stateT.getElementType());
    auto signs = MemRefType::get(signsT.getShape(), signsT.getElementType());
    Value nextTokens = scratchAlloc(b, tokens),
          nextDoublings = scratchAlloc(b, tokens);
    const int64_t len = stateT.getDimSize(2) >> round;
    if (len / 2 > 0)
      launch(b, selectKernel(kms->forOp(op), signs, tokens),
             {1, stateT.getDimSize(1), stateT.getDimSize(0)}, kSelectThreads, 0,
             {deviceBuffer(b, op.getSigns()), deviceBuffer(b, op.getTokens()),
              deviceBuffer(b, op.getDoublings()), nextTokens, nextDoublings,
              cIdx(b, len)});
    rewriter.replaceOp(op, {resultTensor(b, nextTokens, stateT),
                            resultTensor(b, nextDoublings, stateT)});
  }
};

struct GatherKeptToGPU : StagePattern<GatherKeptOp> {
  using StagePattern::StagePattern;
  void lower(GatherKeptOp op, int64_t, ImplicitLocOpBuilder &b,
             PatternRewriter &rewriter) const override {
    const CompressConfig c = cacheConfig(op);
    const Types t(op.getContext(), c);
    Value key = exactBuffer(b, op.getKey()),
          value = exactBuffer(b, op.getValue());
    // The results: device buffers the caller frees.
    Value outK = deviceAlloc(b, t.outKey), outV = deviceAlloc(b, t.outValue),
          outLw = deviceAlloc(b, t.outLogWeights);
    const int64_t vec = 16 / (c.elem.getIntOrFloatBitWidth() / 8);
    const bool vecRows = c.d % vec == 0 && c.dv % vec == 0;
    // No middle: the kernel reads no state, but takes a (1-token) buffer.
    Value tokens, doublings;
    if (c.layout.middle == 0) {
      tokens = doublings = scratchAlloc(b, t.tokens);
    } else {
      tokens = deviceBuffer(b, op.getTokens());
      doublings = deviceBuffer(b, op.getDoublings());
    }
    SmallVector<Value> args{key,
                            value,
                            tokens,
                            doublings,
                            outK,
                            outV,
                            outLw};
    if (vecRows)
      args.push_back(aligned16Flag(b, {key, value}));
    if (int64_t m = c.layout.compressedLength(); m > 0)
      launchOnHeads(b, gatherKernel(kms->forOp(op), c, t, vecRows ? vec : 1),
                    c, llvm::divideCeil(m, kGatherRowsPerBlock),
                    kGatherRowsPerBlock * 32, 0, args);
    rewriter.replaceOp(
        op, {resultTensor(b, outK, op.getCompressedKey().getType()),
             resultTensor(b, outV, op.getCompressedValue().getType()),
             resultTensor(b, outLw, op.getLogWeights().getType())});
  }
};

/// The checks on one cache shape and parameter set that every stage reading
/// the cache shares.
LogicalResult checkCacheForGPU(Operation *op, Value keyV, Value valueV,
                               const CompressParams &p) {
  for (Value v : {keyV, valueV})
    if (!cast<RankedTensorType>(v.getType()).hasStaticShape())
      return op->emitOpError() << "the GPU lowering needs static key and "
                                  "value shapes, got "
                               << v.getType();
  if (p.blockSize > 128)
    return op->emitOpError() << "the GPU lowering takes block_size <= 128 "
                                "(one workgroup per block), got "
                             << p.blockSize;
  const CompressConfig c =
      CompressConfig::get(cast<RankedTensorType>(keyV.getType()),
                          cast<RankedTensorType>(valueV.getType()), p);
  if (c.batch > 65535 || c.heads > 65535)
    return op->emitOpError() << "the GPU lowering takes at most 65535 batches "
                                "and heads (grid dimensions)";
  if (int64_t bytes = c.walkLayout().bytes; bytes > kMaxSharedBytes)
    return op->emitOpError() << "the walk kernel needs " << bytes
                             << " bytes of workgroup memory (block "
                             << c.blockSize << ", D " << c.d << ", Dv " << c.dv
                             << "); at most " << kMaxSharedBytes << " fit";
  return success();
}

} // namespace

LogicalResult balancekv::checkCompressForGPU(Operation *op) {
  if (auto compress = dyn_cast<CompressOp>(op)) {
    if (compress.getMethod() != CompressionMethod::Balance)
      return op->emitOpError()
             << "method '" << stringifyCompressionMethod(compress.getMethod())
             << "' has no GPU lowering; use --balancekv-lower-to-runtime-calls "
                "or --balancekv-lower-to-loops";
    return checkCacheForGPU(op, compress.getKey(), compress.getValue(),
                            compress.getCompressParams());
  }
  if (auto init = dyn_cast<BalanceInitOp>(op))
    return checkCacheForGPU(op, init.getKey(), init.getKey(),
                            init.getCompressParams());
  if (auto walk = dyn_cast<BalanceWalkOp>(op)) {
    if (!getConstantIntValue(walk.getRound()))
      return op->emitOpError() << "the GPU lowering takes a constant round "
                                  "(unroll the rounds: "
                                  "--balancekv-decompose-compress=unroll-rounds)";
    return checkCacheForGPU(op, walk.getKey(), walk.getValue(),
                            walk.getCompressParams());
  }
  if (auto gather = dyn_cast<GatherKeptOp>(op))
    return checkCacheForGPU(op, gather.getKey(), gather.getValue(),
                            gather.getCompressParams());
  if (auto halve = dyn_cast<BalanceHalveOp>(op)) {
    auto t = cast<RankedTensorType>(halve.getTokens().getType());
    if (!t.hasStaticShape() || !getConstantIntValue(halve.getRound()))
      return op->emitOpError() << "the GPU lowering takes a static state and a "
                                  "constant round";
    if (t.getDimSize(0) > 65535 || t.getDimSize(1) > 65535)
      return op->emitOpError() << "the GPU lowering takes at most 65535 "
                                  "batches and heads (grid dimensions)";
  }
  return success();
}

void balancekv::freeGPUStageScratch(Operation *root) {
  SmallVector<gpu::AllocOp> allocs;
  root->walk([&](gpu::AllocOp alloc) {
    if (alloc->removeAttr(kScratchAttr))
      allocs.push_back(alloc);
  });
  // A buffer is ours to reuse and free when, once the result tensors nobody
  // reads are gone, only launches in its own block use it; its life ends
  // after the last of them.
  DenseMap<Operation *, Operation *> lastUse; // alloc -> last launch
  for (gpu::AllocOp alloc : allocs) {
    Value buf = alloc.getMemref();
    Operation *last = alloc;
    bool ours = true;
    for (Operation *user : llvm::make_early_inc_range(buf.getUsers())) {
      if (auto wrap = dyn_cast<bufferization::ToTensorOp>(user)) {
        if (wrap->use_empty()) {
          wrap->erase();
          continue;
        }
        ours = false; // read as a tensor: the caller owns it
        break;
      }
      if (!isa<gpu::LaunchFuncOp>(user) || user->getBlock() != alloc->getBlock()) {
        ours = false;
        break;
      }
      if (last->isBeforeInBlock(user))
        last = user;
    }
    if (ours)
      lastUse[alloc] = last;
  }
  // In each block, in order: a scratch allocation takes a buffer of its type
  // whose life has ended (launches are stream-ordered, so a later launch may
  // overwrite what an earlier one read) — the rounds ping-pong between two
  // state buffers and one signs buffer — and every buffer is freed after
  // its last launch.
  DenseMap<Block *, SmallVector<gpu::AllocOp>> byBlock;
  for (gpu::AllocOp alloc : allocs)
    if (lastUse.count(alloc))
      byBlock[alloc->getBlock()].push_back(alloc);
  for (auto &[block, blockAllocs] : byBlock) {
    DenseSet<Operation *> isScratch;
    for (gpu::AllocOp alloc : blockAllocs)
      isScratch.insert(alloc);
    DenseMap<Operation *, SmallVector<Operation *>> endingAt; // launch -> allocs
    llvm::MapVector<Type, SmallVector<Operation *>> reusable; // type -> allocs
    for (Operation &op : llvm::make_early_inc_range(*block)) {
      if (isScratch.contains(&op)) {
        auto alloc = cast<gpu::AllocOp>(op);
        Operation *owner = alloc;
        auto &pool = reusable[alloc.getType()];
        if (!pool.empty()) {
          owner = pool.pop_back_val();
          Value buf = cast<gpu::AllocOp>(owner).getMemref();
          lastUse[owner] = lastUse[alloc];
          alloc.getMemref().replaceAllUsesWith(buf);
          lastUse.erase(alloc);
          alloc->erase();
        }
        endingAt[lastUse[owner]].push_back(owner);
        continue;
      }
      auto it = endingAt.find(&op);
      if (it == endingAt.end())
        continue;
      for (Operation *owner : it->second) {
        // Reused by a later allocation, or freed after its last launch.
        reusable[cast<gpu::AllocOp>(owner).getType()].push_back(owner);
      }
      endingAt.erase(it);
    }
    // In allocation order, so that the output is deterministic.
    SmallVector<Operation *> owners;
    for (auto &[type, free] : reusable)
      owners.append(free.begin(), free.end());
    llvm::sort(owners, [](Operation *x, Operation *y) {
      return x->isBeforeInBlock(y);
    });
    for (Operation *owner : owners) {
      OpBuilder b(owner->getContext());
      b.setInsertionPointAfter(lastUse[owner]);
      gpu::DeallocOp::create(b, owner->getLoc(), Type(), ValueRange{},
                             cast<gpu::AllocOp>(owner).getMemref());
    }
  }
}

void balancekv::populateCompressToGPUPatterns(
    RewritePatternSet &patterns,
    std::shared_ptr<gpukernels::KernelModules> kms) {
  patterns.add<CompressToStages>(patterns.getContext());
  patterns.add<BalanceInitToGPU, BalanceWalkToGPU, BalanceHalveToGPU,
               GatherKeptToGPU>(patterns.getContext(), kms);
}
