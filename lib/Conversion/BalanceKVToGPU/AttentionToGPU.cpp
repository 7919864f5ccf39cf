//===- AttentionToGPU.cpp - decode attention => split-K gpu kernels ------===//
//
// balancekv.weighted_attention / attention (static shapes, L <= 16) =>
//   split    one workgroup per (key chunk, KV head or query head, batch): the
//            workgroup takes all query heads of the GQA group that fit (so
//            each loaded key/value row serves them all); logits (+ log-weight,
//            masks) with shuffle reductions, then the chunk's softmax
//            partials: max m, sum l and the unnormalised P V. Two paths,
//            chosen by a kernel argument: 16-byte loads (D/8 lanes per key,
//            query values in registers, four rows in flight) when key and
//            value are 16-byte aligned, element-wise loads otherwise;
//   combine  one workgroup per (query head, batch): rescales the chunks'
//            partials by exp(m_s - max m) and normalises (flash-decoding).
// A row that sees no key gets zeros, as the CUDA kernels.
//
//===----------------------------------------------------------------------===//

#include "BalanceKVToGPU.h"
#include "KernelBuilder.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/Support/Format.h"

#include <limits>

using namespace mlir;
using namespace balancekv;
using namespace balancekv::gpukernels;
using arith::CmpIPredicate;

namespace {

constexpr int64_t kSplitThreads = 128;
constexpr int64_t kCombineThreads = 128;
constexpr int64_t kMaxQueries = 16;
/// Query rows (heads x queries) one split workgroup keeps in registers.
constexpr int64_t kMaxRowsPerBlock = 16;
/// Logits staged per workgroup (24 KB), so that everything stays within the
/// 48 KB of static workgroup memory.
constexpr int64_t kMaxLogitFloats = 6144;
constexpr int64_t kUnroll = 4;
/// Static workgroup memory per block without an opt-in.
constexpr int64_t kMaxStaticShared = 48 * 1024;

struct DecodeConfig {
  int64_t batch, qHeads, kvHeads, group, queries, d, dv, m;
  int64_t headsPerBlock, splits, chunk;
  float scale;
  bool causal, hasLogWeights;
  Type elem, outElem, lenElem;

  int64_t rows() const { return headsPerBlock * queries; }
  /// Elements per 16-byte load.
  int64_t vec() const { return 16 / (elem.getIntOrFloatBitWidth() / 8); }
  /// Whether the split kernel gets its 16-byte path: rows of D and Dv
  /// elements split in 16-byte pieces, D in at most 32 of them (lanes per
  /// key a power of two), and both paths' workgroup memory within 48 KB.
  bool vectorizable() const {
    int64_t lanes = d / vec();
    return d % vec() == 0 && dv % vec() == 0 && lanes <= 32 &&
           llvm::isPowerOf2_64(lanes) && kSplitThreads % (dv / vec()) == 0 &&
           4 * (rows() * d + vectorLogitFloats() + kSplitThreads / 32) <=
               kMaxStaticShared;
  }
  /// The 16-byte path's logits and, after P V, its per-key-slot sums share
  /// one workgroup buffer.
  int64_t vectorLogitFloats() const {
    int64_t keySlots = kSplitThreads / std::max<int64_t>(1, dv / vec());
    return std::max(rows() * chunk, keySlots * rows() * dv);
  }
  int64_t sharedLogitFloats() const {
    return vectorizable() ? vectorLogitFloats() : rows() * chunk;
  }

  template <typename OpTy> static DecodeConfig get(OpTy op, int64_t smCount) {
    auto qT = cast<RankedTensorType>(op.getQuery().getType());
    auto kT = cast<RankedTensorType>(op.getKey().getType());
    auto vT = cast<RankedTensorType>(op.getValue().getType());
    DecodeConfig c;
    c.batch = qT.getDimSize(0);
    c.qHeads = qT.getDimSize(1);
    c.queries = qT.getDimSize(2);
    c.d = qT.getDimSize(3);
    c.kvHeads = kT.getDimSize(1);
    c.m = kT.getDimSize(2);
    c.dv = vT.getDimSize(3);
    c.group = c.qHeads / c.kvHeads;
    c.headsPerBlock = c.group * c.queries <= kMaxRowsPerBlock ? c.group : 1;
    c.scale = op.getEffectiveScale();
    c.causal = op.getCausal();
    c.hasLogWeights = std::is_same_v<OpTy, WeightedAttentionOp>;
    c.elem = qT.getElementType();
    c.outElem =
        cast<RankedTensorType>(op.getResult().getType()).getElementType();
    c.lenElem = op.getKvLen()
                    ? cast<ShapedType>(op.getKvLen().getType()).getElementType()
                    : Type();
    // About four workgroups per SM, chunks of whole warps' worth of keys.
    int64_t base = c.batch * (c.qHeads / c.headsPerBlock);
    int64_t maxChunk =
        std::max<int64_t>(32, kMaxLogitFloats / c.rows() / 32 * 32);
    c.splits =
        std::clamp<int64_t>(llvm::divideCeil(4 * smCount, base), 1,
                            std::max<int64_t>(1, llvm::divideCeil(c.m, 64)));
    c.chunk = std::min<int64_t>(
        llvm::alignTo(std::max<int64_t>(1, llvm::divideCeil(c.m, c.splits)),
                      32),
        maxChunk);
    c.splits = std::max<int64_t>(1, llvm::divideCeil(c.m, c.chunk));
    return c;
  }

  std::string key(StringRef kernel) const {
    std::string s;
    llvm::raw_string_ostream os(s);
    os << kernel << ':' << elem << "->" << outElem << ':' << batch << 'x'
       << qHeads << 'x' << kvHeads << 'x' << queries << 'x' << d << 'x' << dv
       << 'x' << m << ":s" << splits << ":c" << chunk << ":h" << headsPerBlock
       << ":scale" << llvm::format("%a", double(scale)) << ":causal" << causal
       << ":lw" << hasLogWeights << ":len";
    if (lenElem)
      os << lenElem;
    return s;
  }
};

struct DecodeTypes {
  MemRefType query, key, value, logWeights, lens, partialOut, partialStats, out;

  DecodeTypes(MLIRContext *ctx, const DecodeConfig &c) {
    Type f32 = Float32Type::get(ctx);
    query = MemRefType::get({c.batch, c.qHeads, c.queries, c.d}, c.elem);
    key = MemRefType::get({c.batch, c.kvHeads, c.m, c.d}, c.elem);
    value = MemRefType::get({c.batch, c.kvHeads, c.m, c.dv}, c.elem);
    logWeights = MemRefType::get({c.batch, c.kvHeads, c.m}, f32);
    if (c.lenElem)
      lens = MemRefType::get({c.batch}, c.lenElem);
    partialOut =
        MemRefType::get({c.batch, c.qHeads, c.splits, c.queries, c.dv}, f32);
    partialStats =
        MemRefType::get({c.batch, c.qHeads, c.splits, c.queries, 2}, f32);
    out = MemRefType::get({c.batch, c.qHeads, c.queries, c.dv}, c.outElem);
  }
  SmallVector<Type> splitArgs(const DecodeConfig &c) const {
    SmallVector<Type> args{query, key, value};
    if (c.hasLogWeights)
      args.push_back(logWeights);
    if (c.lenElem)
      args.push_back(lens);
    args.append({partialOut, partialStats});
    return args;
  }
};

Value negInf(ImplicitLocOpBuilder &b) {
  return cF(b, b.getF32Type(), -std::numeric_limits<double>::infinity());
}

/// The split kernels' arguments (DecodeTypes::splitArgs order).
struct SplitArgs {
  Value q, k, v, lw, lens, partO, partStats;
  SplitArgs(gpu::GPUFuncOp fn, const DecodeConfig &c) {
    unsigned a = 0;
    q = fn.getArgument(a++);
    k = fn.getArgument(a++);
    v = fn.getArgument(a++);
    lw = c.hasLogWeights ? fn.getArgument(a++) : Value();
    lens = c.lenElem ? fn.getArgument(a++) : Value();
    partO = fn.getArgument(a++);
    partStats = fn.getArgument(a++);
  }
};

/// What both split kernels share: the workgroup's place (chunk, heads,
/// batch), its valid key range, the biased/masked logit stores and the
/// chunk's softmax partials.
struct SplitPrologue {
  const DecodeConfig &c;
  Value split, bi, firstHead, kvHead, len, start, count;

  SplitPrologue(ImplicitLocOpBuilder &b, const DecodeConfig &c, Value lens)
      : c(c) {
    split = blockId(b, gpu::Dimension::x);
    Value headGroup = blockId(b, gpu::Dimension::y);
    bi = blockId(b, gpu::Dimension::z);
    firstHead = mul(b, headGroup, cIdx(b, c.headsPerBlock));
    kvHead = divU(b, firstHead, cIdx(b, c.group));
    len = cIdx(b, c.m);
    if (lens) {
      Value raw = load(b, lens, {bi});
      if (!raw.getType().isIndex())
        raw = indexCast(b, b.getIndexType(), raw);
      len = arith::MinSIOp::create(
          b, arith::MaxSIOp::create(b, raw, cIdx(b, 0)), len);
    }
    start = mul(b, split, cIdx(b, c.chunk));
    count =
        select(b, cmp(b, CmpIPredicate::sgt, len, start),
               arith::MinSIOp::create(b, sub(b, len, start), cIdx(b, c.chunk)),
               cIdx(b, 0));
  }

  Value headOf(ImplicitLocOpBuilder &b, int64_t r) const {
    return add(b, firstHead, cIdx(b, r / c.queries));
  }

  /// The log-weight of key j (0 without log-weights).
  Value bias(ImplicitLocOpBuilder &b, Value lw, Value j) const {
    return lw ? load(b, lw, {bi, kvHead, j}) : cF(b, b.getF32Type(), 0.0);
  }

  /// logits[r][jj] = dots[r] + bias, -inf where masked.
  void storeLogits(ImplicitLocOpBuilder &b, Value logits, Value bias, Value j,
                   Value jj, ArrayRef<Value> dots) const {
    for (int64_t r = 0; r < c.rows(); ++r) {
      Value logit = arith::AddFOp::create(b, dots[r], bias);
      if (c.causal) {
        // Query l sits at len - L + l: sees j <= that.
        int64_t l = r % c.queries;
        Value last = add(b, len, cIdx(b, l - c.queries));
        logit =
            select(b, cmp(b, CmpIPredicate::sle, j, last), logit, negInf(b));
      }
      store(b, logit, logits, {add(b, cIdx(b, r * c.chunk), jj)});
    }
  }

  /// Per row: m = max logit, p = exp(logit - m) in place, l = sum p; (m, l)
  /// to partStats. Ends with a barrier.
  void softmax(ImplicitLocOpBuilder &b, Value logits, Value red,
               Value partStats) const {
    Type f32 = b.getF32Type();
    Value tid = threadId(b);
    for (int64_t r = 0; r < c.rows(); ++r) {
      auto at = [&](ImplicitLocOpBuilder &ib, Value jj) {
        return add(ib, cIdx(ib, r * c.chunk), jj);
      };
      Value mx = forStep(
          b, tid, count, kSplitThreads, {negInf(b)},
          [&](ImplicitLocOpBuilder &ib, Value jj, ValueRange acc) {
            return SmallVector<Value>{combine(ib, Combine::Max, acc[0],
                                              load(ib, logits, {at(ib, jj)}))};
          })[0];
      mx = blockAllReduce(b, Combine::Max, mx, red, kSplitThreads);
      Value empty =
          arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, mx, negInf(b));
      Value sum = forStep(
          b, tid, count, kSplitThreads, {cF(b, f32, 0.0)},
          [&](ImplicitLocOpBuilder &ib, Value jj, ValueRange acc) {
            Value e = math::ExpOp::create(
                ib,
                arith::SubFOp::create(ib, load(ib, logits, {at(ib, jj)}), mx));
            Value pr = select(ib, empty, cF(ib, f32, 0.0), e);
            store(ib, pr, logits, {at(ib, jj)});
            return SmallVector<Value>{arith::AddFOp::create(ib, acc[0], pr)};
          })[0];
      sum = blockAllReduce(b, Combine::Add, sum, red, kSplitThreads);
      ifThen(b, cmp(b, CmpIPredicate::eq, tid, cIdx(b, 0)),
             [&](ImplicitLocOpBuilder &ib) {
               Value head = headOf(ib, r), l = cIdx(ib, r % c.queries);
               store(ib, mx, partStats, {bi, head, split, l, cIdx(ib, 0)});
               store(ib, sum, partStats, {bi, head, split, l, cIdx(ib, 1)});
             });
    }
  }
};

/// The split kernel's element-wise path (any alignment, any dims): one warp per
/// key row with lanes over D for the logits, one thread per value column
/// with kUnroll rows in flight for P V.
void emitSplitScalar(ImplicitLocOpBuilder &b, const DecodeConfig &c,
                     const SplitArgs &in, const SplitPrologue &p, Value qs,
                     Value logits, Value red) {
  Type f32 = b.getF32Type();
  const int64_t rows = c.rows();
  Value tid = threadId(b);
  // Scaled queries of every row.
  forEach(
      b, tid, cIdx(b, rows * c.d), kSplitThreads,
      [&](ImplicitLocOpBuilder &ib, Value e) {
        Value r = divU(ib, e, cIdx(ib, c.d)), x = remU(ib, e, cIdx(ib, c.d));
        Value head = add(ib, p.firstHead, divU(ib, r, cIdx(ib, c.queries)));
        Value qv = loadF32(ib, in.q,
                           {p.bi, head, remU(ib, r, cIdx(ib, c.queries)), x});
        store(ib, arith::MulFOp::create(ib, qv, cF(ib, f32, c.scale)), qs, {e});
      });
  barrier(b);
  // Logits: one warp per key row, lanes over D.
  Value lane = remU(b, tid, cIdx(b, 32)), warp = divU(b, tid, cIdx(b, 32));
  forEach(b, warp, p.count, kSplitThreads / 32,
          [&](ImplicitLocOpBuilder &ib, Value jj) {
            Value j = add(ib, p.start, jj);
            SmallVector<Value> zeros(rows, cF(ib, f32, 0.0));
            auto dots = forStep(
                ib, lane, cIdx(ib, c.d), 32, zeros,
                [&](ImplicitLocOpBuilder &xb, Value x, ValueRange acc) {
                  Value kv = loadF32(xb, in.k, {p.bi, p.kvHead, j, x});
                  SmallVector<Value> next;
                  for (int64_t r = 0; r < rows; ++r)
                    next.push_back(math::FmaOp::create(
                        xb, kv, load(xb, qs, {add(xb, cIdx(xb, r * c.d), x)}),
                        acc[r]));
                  return next;
                });
            for (Value &dot : dots)
              dot = warpAllReduce(ib, Combine::Add, dot);
            ifThen(ib, cmp(ib, CmpIPredicate::eq, lane, cIdx(ib, 0)),
                   [&](ImplicitLocOpBuilder &lb) {
                     p.storeLogits(lb, logits, p.bias(lb, in.lw, j), j, jj,
                                   dots);
                   });
          });
  barrier(b);
  p.softmax(b, logits, red, in.partStats);
  // Unnormalised P V: one thread per value column, kUnroll rows in
  // flight per step.
  forEach(
      b, tid, cIdx(b, c.dv), kSplitThreads,
      [&](ImplicitLocOpBuilder &ib, Value x) {
        SmallVector<Value> zeros(rows, cF(ib, f32, 0.0));
        auto step = [&](ImplicitLocOpBuilder &sb, Value jj, ValueRange acc,
                        int64_t n) {
          SmallVector<Value> vals, next(acc);
          for (int64_t u = 0; u < n; ++u)
            vals.push_back(
                loadF32(sb, in.v,
                        {p.bi, p.kvHead,
                         add(sb, p.start, add(sb, jj, cIdx(sb, u))), x}));
          for (int64_t u = 0; u < n; ++u)
            for (int64_t r = 0; r < rows; ++r)
              next[r] = math::FmaOp::create(
                  sb,
                  load(sb, logits, {add(sb, cIdx(sb, r * c.chunk + u), jj)}),
                  vals[u], next[r]);
          return next;
        };
        Value whole =
            mul(ib, divU(ib, p.count, cIdx(ib, kUnroll)), cIdx(ib, kUnroll));
        auto acc =
            forStep(ib, cIdx(ib, 0), whole, kUnroll, zeros,
                    [&](ImplicitLocOpBuilder &sb, Value jj, ValueRange a) {
                      return step(sb, jj, a, kUnroll);
                    });
        acc = forStep(ib, whole, p.count, 1, acc,
                      [&](ImplicitLocOpBuilder &sb, Value jj, ValueRange a) {
                        return step(sb, jj, a, 1);
                      });
        for (int64_t r = 0; r < rows; ++r)
          store(ib, acc[r], in.partO,
                {p.bi, p.headOf(ib, r), p.split, cIdx(ib, r % c.queries), x});
      });
}

/// The split kernel's 16-byte path (16-byte aligned key/value buffers).
/// Logits: LPK = D / vec lanes per key, each
/// holding its vec query values of every row in registers, reduced with
/// log2(LPK) shuffles. P V: thread = (key slot, vec value columns), rows x
/// vec accumulators, key slots summed through workgroup memory at the end.
void emitSplitVectorized(ImplicitLocOpBuilder &b, const DecodeConfig &c,
                         const SplitArgs &in, const SplitPrologue &p,
                         Value logits, Value red) {
  Type f32 = b.getF32Type();
  const int64_t rows = c.rows(), vec = c.vec();
  const int64_t lanesPerKey = c.d / vec, keysPerWarp = 32 / lanesPerKey;
  const int64_t colGroups = c.dv / vec, keySlots = kSplitThreads / colGroups;
  // The slot sums reuse the logits' workgroup memory after P V.
  Value slotSums = logits;
  Value tid = threadId(b);
  auto vecLoad = [&](ImplicitLocOpBuilder &ib, Value mem, ValueRange idx) {
    return loadVectorF32(ib, mem, idx, vec);
  };
  auto lane32 = [&](ImplicitLocOpBuilder &ib, Value vecVal, int64_t i) {
    return Value(vector::ExtractOp::create(ib, vecVal, i));
  };
  // Logits.
  Value lane = remU(b, tid, cIdx(b, 32)), warp = divU(b, tid, cIdx(b, 32));
  Value part = remU(b, lane, cIdx(b, lanesPerKey));
  Value keyInWarp = divU(b, lane, cIdx(b, lanesPerKey));
  Value x0 = mul(b, part, cIdx(b, vec));
  SmallVector<Value> qv; // rows x vec scaled query values
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t e = 0; e < vec; ++e)
      qv.push_back(arith::MulFOp::create(
          b,
          loadF32(b, in.q,
                  {p.bi, p.headOf(b, r), cIdx(b, r % c.queries),
                   add(b, x0, cIdx(b, e))}),
          cF(b, f32, c.scale)));
  // Warp-uniform trip count (the shuffles need every lane): lanes past
  // the end recompute the last key and do not store.
  // kUnroll keys per lane in flight; warp-uniform trip count (the
  // shuffles need every lane): lanes past the end recompute the last
  // key and do not store.
  const int64_t keyStride = keysPerWarp * (kSplitThreads / 32);
  forEach(
      b, mul(b, warp, cIdx(b, keysPerWarp)), p.count, kUnroll * keyStride,
      [&](ImplicitLocOpBuilder &ib, Value base) {
        SmallVector<Value> jjs, valids, rowsK;
        for (int64_t u = 0; u < kUnroll; ++u) {
          Value jj = add(ib, base, add(ib, keyInWarp, cIdx(ib, u * keyStride)));
          valids.push_back(cmp(ib, CmpIPredicate::ult, jj, p.count));
          jjs.push_back(minU(ib, jj, sub(ib, p.count, cIdx(ib, 1))));
          rowsK.push_back(vecLoad(
              ib, in.k, {p.bi, p.kvHead, add(ib, p.start, jjs.back()), x0}));
        }
        // The log-weights in flight with the keys (a load in the writer
        // lane's branch would stall the warp once per key).
        SmallVector<Value> biases;
        for (int64_t u = 0; u < kUnroll; ++u)
          biases.push_back(p.bias(ib, in.lw, add(ib, p.start, jjs[u])));
        for (int64_t u = 0; u < kUnroll; ++u) {
          SmallVector<Value> dots;
          for (int64_t r = 0; r < rows; ++r) {
            Value d = cF(ib, f32, 0.0);
            for (int64_t e = 0; e < vec; ++e)
              d = math::FmaOp::create(ib, lane32(ib, rowsK[u], e),
                                      qv[r * vec + e], d);
            for (int64_t off = lanesPerKey / 2; off >= 1; off /= 2)
              d = combine(ib, Combine::Add, d,
                          gpu::ShuffleOp::create(ib, d, int32_t(off), 32,
                                                 gpu::ShuffleMode::XOR)
                              .getShuffleResult());
            dots.push_back(d);
          }
          Value writer = arith::AndIOp::create(
              ib, valids[u], cmp(ib, CmpIPredicate::eq, part, cIdx(ib, 0)));
          ifThen(ib, writer, [&](ImplicitLocOpBuilder &lb) {
            p.storeLogits(lb, logits, biases[u], add(lb, p.start, jjs[u]),
                          jjs[u], dots);
          });
        }
      });
  barrier(b);
  p.softmax(b, logits, red, in.partStats);
  // P V.
  Value cg = remU(b, tid, cIdx(b, colGroups));
  Value ks = divU(b, tid, cIdx(b, colGroups));
  Value col0 = mul(b, cg, cIdx(b, vec));
  SmallVector<Value> zeros(rows * vec, cF(b, f32, 0.0));
  // kUnroll value rows in flight; past the end: the last row, weight 0.
  auto acc = forStep(
      b, ks, p.count, kUnroll * keySlots, zeros,
      [&](ImplicitLocOpBuilder &ib, Value jj0, ValueRange a) {
        SmallVector<Value> jjs, valids, vals;
        for (int64_t u = 0; u < kUnroll; ++u) {
          Value jj = add(ib, jj0, cIdx(ib, u * keySlots));
          valids.push_back(cmp(ib, CmpIPredicate::ult, jj, p.count));
          jjs.push_back(minU(ib, jj, sub(ib, p.count, cIdx(ib, 1))));
          vals.push_back(vecLoad(
              ib, in.v, {p.bi, p.kvHead, add(ib, p.start, jjs.back()), col0}));
        }
        SmallVector<Value> next(a);
        for (int64_t u = 0; u < kUnroll; ++u)
          for (int64_t r = 0; r < rows; ++r) {
            Value pr = select(
                ib, valids[u],
                load(ib, logits, {add(ib, cIdx(ib, r * c.chunk), jjs[u])}),
                cF(ib, f32, 0.0));
            for (int64_t e = 0; e < vec; ++e)
              next[r * vec + e] = math::FmaOp::create(
                  ib, pr, lane32(ib, vals[u], e), next[r * vec + e]);
          }
        return next;
      });
  barrier(b); // the slot sums reuse the logits' memory
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t e = 0; e < vec; ++e)
      store(b, acc[r * vec + e], slotSums,
            {add(b, mul(b, ks, cIdx(b, rows * c.dv)),
                 add(b, cIdx(b, r * c.dv + e), col0))});
  barrier(b);
  forEach(b, tid, cIdx(b, rows * c.dv), kSplitThreads,
          [&](ImplicitLocOpBuilder &ib, Value e) {
            Value sum = cF(ib, f32, 0.0);
            for (int64_t s = 0; s < keySlots; ++s)
              sum = arith::AddFOp::create(
                  ib, sum,
                  load(ib, slotSums, {add(ib, e, cIdx(ib, s * rows * c.dv))}));
            Value r = divU(ib, e, cIdx(ib, c.dv)),
                  x = remU(ib, e, cIdx(ib, c.dv));
            store(ib, sum, in.partO,
                  {p.bi, add(ib, p.firstHead, divU(ib, r, cIdx(ib, c.queries))),
                   p.split, remU(ib, r, cIdx(ib, c.queries)), x});
          });
}

/// The split kernel. Kernels with a 16-byte path take an i32 `vectorized`
/// argument (1 when key and value are 16-byte aligned) and branch on it
/// uniformly; the workgroup memory is the union of both paths' needs.
gpu::GPUFuncOp splitKernel(KernelModule &km, const DecodeConfig &c,
                           const DecodeTypes &t) {
  MLIRContext *ctx = t.query.getContext();
  Type f32 = Float32Type::get(ctx);
  SmallVector<Type> args = t.splitArgs(c);
  const bool vectorizable = c.vectorizable();
  if (vectorizable)
    args.push_back(IntegerType::get(ctx, 32));
  return km.getOrCreate(
      "balancekv_decode_split", c.key("split"), args, kSplitThreads,
      {workgroupBuffer(ctx, c.rows() * c.d, f32),
       workgroupBuffer(ctx, c.sharedLogitFloats(), f32),
       workgroupBuffer(ctx, kSplitThreads / 32, f32)},
      [&](ImplicitLocOpBuilder &b, gpu::GPUFuncOp fn) {
        // Decode is memory-bound: for the common small row counts ask ptxas
        // for 5 resident workgroups per SM (<= 102 registers, no spills at
        // rows x vec <= 32), which the scalar branch alone would not.
        if (vectorizable && c.rows() * c.vec() <= 32)
          fn->setAttr("nvvm.minctasm", b.getI32IntegerAttr(5));
        SplitArgs in(fn, c);
        auto wg = fn.getWorkgroupAttributions();
        SplitPrologue p(b, c, in.lens);
        if (!vectorizable)
          return emitSplitScalar(b, c, in, p, wg[0], wg[1], wg[2]);
        ifFlag(
            b, fn.getArgument(fn.getNumArguments() - 1),
            [&](ImplicitLocOpBuilder &ib) {
              emitSplitVectorized(ib, c, in, p, wg[1], wg[2]);
            },
            [&](ImplicitLocOpBuilder &ib) {
              emitSplitScalar(ib, c, in, p, wg[0], wg[1], wg[2]);
            });
      });
}

/// One workgroup per (query head, batch). Per query row: the chunks' maxima
/// reduced over the workgroup (one split per thread), their weights
/// exp(m_s - max m) kept in workgroup memory, then each thread sums its
/// value columns over the splits with kUnroll independent loads in flight
/// (a serial chain of dependent loads per split made this kernel as slow as
/// the split kernel at B = 1).
gpu::GPUFuncOp combineKernel(KernelModule &km, const DecodeConfig &c,
                             const DecodeTypes &t) {
  MLIRContext *ctx = t.query.getContext();
  Type f32 = Float32Type::get(ctx);
  return km.getOrCreate(
      "balancekv_decode_combine", c.key("combine"),
      {t.partialOut, t.partialStats, t.out}, kCombineThreads,
      {workgroupBuffer(ctx, c.splits, f32),
       workgroupBuffer(ctx, kCombineThreads / 32, f32)},
      [&](ImplicitLocOpBuilder &b, gpu::GPUFuncOp fn) {
        Value partO = fn.getArgument(0), partStats = fn.getArgument(1),
              out = fn.getArgument(2);
        Value weights = fn.getWorkgroupAttributions()[0],
              red = fn.getWorkgroupAttributions()[1];
        Value head = blockId(b, gpu::Dimension::x),
              bi = blockId(b, gpu::Dimension::y), tid = threadId(b);
        Value zero = cF(b, f32, 0.0), splits = cIdx(b, c.splits);
        forEach(
            b, cIdx(b, 0), cIdx(b, c.queries), 1,
            [&](ImplicitLocOpBuilder &lb, Value l) {
              auto stat = [&](ImplicitLocOpBuilder &ib, Value s, int64_t i) {
                return load(ib, partStats, {bi, head, s, l, cIdx(ib, i)});
              };
              Value mx =
                  forStep(lb, tid, splits, kCombineThreads, {negInf(lb)},
                          [&](ImplicitLocOpBuilder &ib, Value s, ValueRange a) {
                            return SmallVector<Value>{combine(
                                ib, Combine::Max, a[0], stat(ib, s, 0))};
                          })[0];
              mx = blockAllReduce(lb, Combine::Max, mx, red, kCombineThreads);
              Value empty = arith::CmpFOp::create(lb, arith::CmpFPredicate::OEQ,
                                                  mx, negInf(lb));
              Value den = forStep(
                  lb, tid, splits, kCombineThreads, {zero},
                  [&](ImplicitLocOpBuilder &ib, Value s, ValueRange a) {
                    Value e = math::ExpOp::create(
                        ib, arith::SubFOp::create(ib, stat(ib, s, 0), mx));
                    Value w = select(ib, empty, cF(ib, f32, 0.0), e);
                    store(ib, w, weights, {s});
                    return SmallVector<Value>{
                        math::FmaOp::create(ib, w, stat(ib, s, 1), a[0])};
                  })[0];
              // Its barriers also publish the weights.
              den = blockAllReduce(lb, Combine::Add, den, red, kCombineThreads);
              forEach(
                  lb, tid, cIdx(lb, c.dv), kCombineThreads,
                  [&](ImplicitLocOpBuilder &ib, Value x) {
                    auto step = [&](ImplicitLocOpBuilder &sb, Value s0,
                                    ValueRange a, int64_t n) {
                      SmallVector<Value> parts;
                      for (int64_t u = 0; u < n; ++u)
                        parts.push_back(
                            load(sb, partO,
                                 {bi, head, add(sb, s0, cIdx(sb, u)), l, x}));
                      Value acc = a[0];
                      for (int64_t u = 0; u < n; ++u)
                        acc = math::FmaOp::create(
                            sb, load(sb, weights, {add(sb, s0, cIdx(sb, u))}),
                            parts[u], acc);
                      return SmallVector<Value>{acc};
                    };
                    const int64_t whole = c.splits / kUnroll * kUnroll;
                    Value num = forStep(
                        ib, cIdx(ib, 0), cIdx(ib, whole), kUnroll, {zero},
                        [&](ImplicitLocOpBuilder &sb, Value s, ValueRange a) {
                          return step(sb, s, a, kUnroll);
                        })[0];
                    num = forStep(
                        ib, cIdx(ib, whole), splits, 1, {num},
                        [&](ImplicitLocOpBuilder &sb, Value s, ValueRange a) {
                          return step(sb, s, a, 1);
                        })[0];
                    Value o = select(
                        ib,
                        arith::CmpFOp::create(ib, arith::CmpFPredicate::OGT,
                                              den, cF(ib, f32, 0.0)),
                        arith::DivFOp::create(ib, num, den), cF(ib, f32, 0.0));
                    if (c.outElem != f32)
                      o = arith::TruncFOp::create(ib, c.outElem, o);
                    store(ib, o, out, {bi, head, l, x});
                  });
              // The next row rewrites the weights.
              barrier(lb);
            });
      });
}

template <typename OpTy> struct AttentionToGPU : OpRewritePattern<OpTy> {
  AttentionToGPU(MLIRContext *ctx, std::shared_ptr<KernelModules> kms,
                 int64_t smCount)
      : OpRewritePattern<OpTy>(ctx), kms(std::move(kms)), smCount(smCount) {}

  LogicalResult matchAndRewrite(OpTy op,
                                PatternRewriter &rewriter) const override {
    // No output element (batch, heads, L or Dv of 0): nothing to launch, and
    // the launch shapes below would divide by zero.
    auto resultType = cast<RankedTensorType>(op.getResult().getType());
    if (resultType.getNumElements() == 0) {
      rewriter.replaceOpWithNewOp<tensor::EmptyOp>(op, resultType.getShape(),
                                                   resultType.getElementType());
      return success();
    }
    const DecodeConfig c = DecodeConfig::get(op, smCount);
    const DecodeTypes t(op.getContext(), c);
    KernelModule &km = kms->forOp(op);
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    SmallVector<Value> args{exactBuffer(b, op.getQuery()),
                            exactBuffer(b, op.getKey()),
                            exactBuffer(b, op.getValue())};
    if constexpr (std::is_same_v<OpTy, WeightedAttentionOp>)
      args.push_back(exactBuffer(b, op.getLogWeights()));
    if (op.getKvLen())
      args.push_back(exactBuffer(b, op.getKvLen()));
    Value partO = deviceAlloc(b, t.partialOut),
          partStats = deviceAlloc(b, t.partialStats),
          out = deviceAlloc(b, t.out);
    args.append({partO, partStats});
    // The 16-byte path needs 16-byte aligned key and value buffers.
    if (c.vectorizable())
      args.push_back(aligned16Flag(b, {args[1], args[2]}));
    launch(b, splitKernel(km, c, t),
           {c.splits, c.qHeads / c.headsPerBlock, c.batch}, kSplitThreads, 0,
           args);
    launch(b, combineKernel(km, c, t), {c.qHeads, c.batch, 1}, kCombineThreads,
           0, ValueRange{partO, partStats, out});
    deviceFree(b, partO);
    deviceFree(b, partStats);
    rewriter.replaceOp(op, resultTensor(b, out, op.getResult().getType()));
    return success();
  }

  std::shared_ptr<KernelModules> kms;
  int64_t smCount;
};

template <typename OpTy> LogicalResult checkDecode(OpTy op) {
  for (Value v : op->getOperands())
    if (!cast<RankedTensorType>(v.getType()).hasStaticShape())
      return op.emitOpError()
             << "the GPU lowering needs static shapes, got " << v.getType();
  auto qT = cast<RankedTensorType>(op.getQuery().getType());
  if (qT.getDimSize(2) > kMaxQueries)
    return op.emitOpError()
           << "the GPU decode kernel takes at most " << kMaxQueries
           << " queries, got " << qT.getDimSize(2);
  if (qT.getDimSize(3) > 256 ||
      cast<RankedTensorType>(op.getValue().getType()).getDimSize(3) > 256)
    return op.emitOpError()
           << "the GPU decode kernel takes head and value dims up to 256";
  if (qT.getDimSize(0) > 65535 || qT.getDimSize(1) > 65535)
    return op.emitOpError() << "the GPU decode kernel takes at most 65535 "
                               "batches and query heads (grid dimensions)";
  if (Value len = op.getKvLen();
      len && cast<ShapedType>(len.getType()).getRank() == 2)
    return op.emitOpError()
           << "the generated GPU decode takes kv_len per batch ([B]); per "
              "KV head lengths ([B, Hkv]) go through "
              "--balancekv-lower-to-runtime-calls (the CUDA kernels)";
  return success();
}

} // namespace

LogicalResult balancekv::checkAttentionForGPU(Operation *op) {
  if (auto a = dyn_cast<AttentionOp>(op))
    return checkDecode(a);
  return checkDecode(cast<WeightedAttentionOp>(op));
}

void balancekv::populateAttentionToGPUPatterns(
    RewritePatternSet &patterns, std::shared_ptr<KernelModules> kms,
    int64_t smCount) {
  patterns
      .add<AttentionToGPU<AttentionOp>, AttentionToGPU<WeightedAttentionOp>>(
          patterns.getContext(), kms, smCount);
}
