//===- AttentionToGPU.cpp - decode attention => split-K gpu kernels ------===//
//
// balancekv.weighted_attention / attention (static shapes, L <= 16) =>
//   split    one workgroup per (key chunk, KV head or query head, batch): the
//            workgroup holds the scaled queries of all query heads of the
//            GQA group that fit (so each loaded key/value row serves them
//            all), one warp per key computes the logits (+ log-weight, masks)
//            with a shuffle reduction, then the chunk's softmax partials:
//            max m, sum l and the unnormalised P V (one thread per value
//            column, four rows in flight);
//   combine  one workgroup per (query head, batch): rescales the chunks'
//            partials by exp(m_s - max m) and normalises (flash-decoding).
// A row that sees no key gets zeros, as the CUDA kernels.
//
//===----------------------------------------------------------------------===//

#include "BalanceKVToGPU.h"
#include "KernelBuilder.h"

#include "mlir/Dialect/Math/IR/Math.h"
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

struct DecodeConfig {
  int64_t batch, qHeads, kvHeads, group, queries, d, dv, m;
  int64_t headsPerBlock, splits, chunk;
  float scale;
  bool causal, hasLogWeights;
  Type elem, outElem, lenElem;

  int64_t rows() const { return headsPerBlock * queries; }

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
    c.outElem = cast<RankedTensorType>(op.getResult().getType()).getElementType();
    c.lenElem = op.getKvLen()
                    ? cast<ShapedType>(op.getKvLen().getType()).getElementType()
                    : Type();
    // About four workgroups per SM, chunks of whole warps' worth of keys.
    int64_t base = c.batch * (c.qHeads / c.headsPerBlock);
    int64_t maxChunk =
        std::max<int64_t>(32, kMaxLogitFloats / c.rows() / 32 * 32);
    c.splits = std::clamp<int64_t>(llvm::divideCeil(4 * smCount, base), 1,
                                   std::max<int64_t>(1, llvm::divideCeil(c.m, 64)));
    c.chunk = std::min<int64_t>(
        llvm::alignTo(std::max<int64_t>(1, llvm::divideCeil(c.m, c.splits)), 32),
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

gpu::GPUFuncOp splitKernel(KernelModule &km, const DecodeConfig &c,
                           const DecodeTypes &t) {
  MLIRContext *ctx = t.query.getContext();
  Type f32 = Float32Type::get(ctx);
  const int64_t rows = c.rows();
  return km.getOrCreate(
      "balancekv_decode_split", c.key("split"), t.splitArgs(c), kSplitThreads,
      {workgroupBuffer(ctx, rows * c.d, f32),
       workgroupBuffer(ctx, rows * c.chunk, f32),
       workgroupBuffer(ctx, kSplitThreads / 32, f32)},
      [&](ImplicitLocOpBuilder &b, gpu::GPUFuncOp fn) {
        unsigned a = 0;
        Value q = fn.getArgument(a++), k = fn.getArgument(a++),
              v = fn.getArgument(a++);
        Value lw = c.hasLogWeights ? fn.getArgument(a++) : Value();
        Value lens = c.lenElem ? fn.getArgument(a++) : Value();
        Value partO = fn.getArgument(a++), partStats = fn.getArgument(a++);
        auto wg = fn.getWorkgroupAttributions();
        Value qs = wg[0], logits = wg[1], red = wg[2];

        Value split = blockId(b, gpu::Dimension::x);
        Value headGroup = blockId(b, gpu::Dimension::y);
        Value bi = blockId(b, gpu::Dimension::z);
        Value tid = threadId(b);
        Value firstHead = mul(b, headGroup, cIdx(b, c.headsPerBlock));
        Value kvHead = divU(b, firstHead, cIdx(b, c.group));
        Value len = cIdx(b, c.m);
        if (lens) {
          Value raw = load(b, lens, {bi});
          if (!raw.getType().isIndex())
            raw = indexCast(b, b.getIndexType(), raw);
          len = arith::MinSIOp::create(
              b, arith::MaxSIOp::create(b, raw, cIdx(b, 0)), len);
        }
        Value start = mul(b, split, cIdx(b, c.chunk));
        Value count = select(
            b, cmp(b, CmpIPredicate::sgt, len, start),
            arith::MinSIOp::create(b, sub(b, len, start), cIdx(b, c.chunk)),
            cIdx(b, 0));
        auto headOf = [&](ImplicitLocOpBuilder &ib, Value r) {
          return add(ib, firstHead, divU(ib, r, cIdx(ib, c.queries)));
        };
        auto queryOf = [&](ImplicitLocOpBuilder &ib, Value r) {
          return remU(ib, r, cIdx(ib, c.queries));
        };
        // Scaled queries of every row.
        forEach(b, tid, cIdx(b, rows * c.d), kSplitThreads,
                [&](ImplicitLocOpBuilder &ib, Value e) {
                  Value r = divU(ib, e, cIdx(ib, c.d)),
                        x = remU(ib, e, cIdx(ib, c.d));
                  Value qv = loadF32(ib, q, {bi, headOf(ib, r), queryOf(ib, r), x});
                  store(ib,
                        arith::MulFOp::create(ib, qv,
                                              cF(ib, ib.getF32Type(), c.scale)),
                        qs, {e});
                });
        barrier(b);
        // Logits: one warp per key row, lanes over D.
        Value lane = remU(b, tid, cIdx(b, 32)), warp = divU(b, tid, cIdx(b, 32));
        forEach(b, warp, count, kSplitThreads / 32,
                [&](ImplicitLocOpBuilder &ib, Value jj) {
                  Value j = add(ib, start, jj);
                  SmallVector<Value> zeros(rows, cF(ib, ib.getF32Type(), 0.0));
                  auto dots = forStep(
                      ib, lane, cIdx(ib, c.d), 32, zeros,
                      [&](ImplicitLocOpBuilder &xb, Value x, ValueRange acc) {
                        Value kv = loadF32(xb, k, {bi, kvHead, j, x});
                        SmallVector<Value> next;
                        for (int64_t r = 0; r < rows; ++r)
                          next.push_back(math::FmaOp::create(
                              xb, kv,
                              load(xb, qs, {add(xb, cIdx(xb, r * c.d), x)}),
                              acc[r]));
                        return next;
                      });
                  for (Value &dot : dots)
                    dot = warpAllReduce(ib, Combine::Add, dot);
                  ifThen(ib, cmp(ib, CmpIPredicate::eq, lane, cIdx(ib, 0)),
                         [&](ImplicitLocOpBuilder &lb) {
                           Value bias = lw ? load(lb, lw, {bi, kvHead, j})
                                           : cF(lb, lb.getF32Type(), 0.0);
                           for (int64_t r = 0; r < rows; ++r) {
                             Value logit = arith::AddFOp::create(lb, dots[r], bias);
                             if (c.causal) {
                               // Query l sits at len - L + l: sees j <= that.
                               int64_t l = r % c.queries;
                               Value last = add(lb, len, cIdx(lb, l - c.queries));
                               logit = select(
                                   lb, cmp(lb, CmpIPredicate::sle, j, last), logit,
                                   negInf(lb));
                             }
                             store(lb, logit, logits,
                                   {add(lb, cIdx(lb, r * c.chunk), jj)});
                           }
                         });
                });
        barrier(b);
        // Softmax partials of the chunk, row by row.
        for (int64_t r = 0; r < rows; ++r) {
          auto at = [&](ImplicitLocOpBuilder &ib, Value jj) {
            return add(ib, cIdx(ib, r * c.chunk), jj);
          };
          Value mx = forStep(b, tid, count, kSplitThreads, {negInf(b)},
                             [&](ImplicitLocOpBuilder &ib, Value jj, ValueRange acc) {
                               return SmallVector<Value>{combine(
                                   ib, Combine::Max, acc[0],
                                   load(ib, logits, {at(ib, jj)}))};
                             })[0];
          mx = blockAllReduce(b, Combine::Max, mx, red, kSplitThreads);
          Value empty = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, mx,
                                              negInf(b));
          Value sum = forStep(
              b, tid, count, kSplitThreads, {cF(b, f32, 0.0)},
              [&](ImplicitLocOpBuilder &ib, Value jj, ValueRange acc) {
                Value e = math::ExpOp::create(
                    ib, arith::SubFOp::create(ib, load(ib, logits, {at(ib, jj)}),
                                              mx));
                Value p = select(ib, empty, cF(ib, f32, 0.0), e);
                store(ib, p, logits, {at(ib, jj)});
                return SmallVector<Value>{arith::AddFOp::create(ib, acc[0], p)};
              })[0];
          sum = blockAllReduce(b, Combine::Add, sum, red, kSplitThreads);
          ifThen(b, cmp(b, CmpIPredicate::eq, tid, cIdx(b, 0)),
                 [&](ImplicitLocOpBuilder &ib) {
                   Value head = headOf(ib, cIdx(ib, r)),
                         l = queryOf(ib, cIdx(ib, r));
                   store(ib, mx, partStats, {bi, head, split, l, cIdx(ib, 0)});
                   store(ib, sum, partStats, {bi, head, split, l, cIdx(ib, 1)});
                 });
        }
        // Unnormalised P V: one thread per value column, kUnroll rows in
        // flight per step.
        forEach(b, tid, cIdx(b, c.dv), kSplitThreads,
                [&](ImplicitLocOpBuilder &ib, Value x) {
                  SmallVector<Value> zeros(rows, cF(ib, f32, 0.0));
                  auto step = [&](ImplicitLocOpBuilder &sb, Value jj,
                                  ValueRange acc, int64_t n) {
                    SmallVector<Value> vals, next(acc);
                    for (int64_t u = 0; u < n; ++u)
                      vals.push_back(loadF32(
                          sb, v, {bi, kvHead, add(sb, start, add(sb, jj, cIdx(sb, u))), x}));
                    for (int64_t u = 0; u < n; ++u)
                      for (int64_t r = 0; r < rows; ++r)
                        next[r] = math::FmaOp::create(
                            sb,
                            load(sb, logits,
                                 {add(sb, cIdx(sb, r * c.chunk + u), jj)}),
                            vals[u], next[r]);
                    return next;
                  };
                  Value whole = mul(ib, divU(ib, count, cIdx(ib, kUnroll)),
                                    cIdx(ib, kUnroll));
                  auto acc = forStep(ib, cIdx(ib, 0), whole, kUnroll, zeros,
                                     [&](ImplicitLocOpBuilder &sb, Value jj,
                                         ValueRange a) { return step(sb, jj, a, kUnroll); });
                  acc = forStep(ib, whole, count, 1, acc,
                                [&](ImplicitLocOpBuilder &sb, Value jj,
                                    ValueRange a) { return step(sb, jj, a, 1); });
                  for (int64_t r = 0; r < rows; ++r)
                    store(ib, acc[r], partO,
                          {bi, headOf(ib, cIdx(ib, r)), split,
                           queryOf(ib, cIdx(ib, r)), x});
                });
      });
}

gpu::GPUFuncOp combineKernel(KernelModule &km, const DecodeConfig &c,
                             const DecodeTypes &t) {
  return km.getOrCreate(
      "balancekv_decode_combine", c.key("combine"),
      {t.partialOut, t.partialStats, t.out}, kCombineThreads, {},
      [&](ImplicitLocOpBuilder &b, gpu::GPUFuncOp fn) {
        Value partO = fn.getArgument(0), partStats = fn.getArgument(1),
              out = fn.getArgument(2);
        Type f32 = b.getF32Type();
        Value head = blockId(b, gpu::Dimension::x),
              bi = blockId(b, gpu::Dimension::y), tid = threadId(b);
        Value zero = cF(b, f32, 0.0);
        forEach(b, cIdx(b, 0), cIdx(b, c.queries), 1,
                [&](ImplicitLocOpBuilder &lb, Value l) {
                  auto stat = [&](ImplicitLocOpBuilder &ib, Value s, int64_t i) {
                    return load(ib, partStats, {bi, head, s, l, cIdx(ib, i)});
                  };
                  Value mx = forStep(lb, cIdx(lb, 0), cIdx(lb, c.splits), 1,
                                     {negInf(lb)},
                                     [&](ImplicitLocOpBuilder &ib, Value s,
                                         ValueRange a) {
                                       return SmallVector<Value>{combine(
                                           ib, Combine::Max, a[0], stat(ib, s, 0))};
                                     })[0];
                  Value empty = arith::CmpFOp::create(
                      lb, arith::CmpFPredicate::OEQ, mx, negInf(lb));
                  auto weight = [&](ImplicitLocOpBuilder &ib, Value s) {
                    Value e = math::ExpOp::create(
                        ib, arith::SubFOp::create(ib, stat(ib, s, 0), mx));
                    return select(ib, empty, cF(ib, f32, 0.0), e);
                  };
                  Value den = forStep(lb, cIdx(lb, 0), cIdx(lb, c.splits), 1,
                                      {zero},
                                      [&](ImplicitLocOpBuilder &ib, Value s,
                                          ValueRange a) {
                                        return SmallVector<Value>{math::FmaOp::create(
                                            ib, weight(ib, s), stat(ib, s, 1), a[0])};
                                      })[0];
                  forEach(lb, tid, cIdx(lb, c.dv), kCombineThreads,
                          [&](ImplicitLocOpBuilder &ib, Value x) {
                            Value num = forStep(
                                ib, cIdx(ib, 0), cIdx(ib, c.splits), 1,
                                {cF(ib, f32, 0.0)},
                                [&](ImplicitLocOpBuilder &sb, Value s, ValueRange a) {
                                  return SmallVector<Value>{math::FmaOp::create(
                                      sb, weight(sb, s),
                                      load(sb, partO, {bi, head, s, l, x}), a[0])};
                                })[0];
                            Value o = select(
                                ib,
                                arith::CmpFOp::create(ib, arith::CmpFPredicate::OGT,
                                                      den, cF(ib, f32, 0.0)),
                                arith::DivFOp::create(ib, num, den),
                                cF(ib, f32, 0.0));
                            if (c.outElem != f32)
                              o = arith::TruncFOp::create(ib, c.outElem, o);
                            store(ib, o, out, {bi, head, l, x});
                          });
                });
      });
}

template <typename OpTy> struct AttentionToGPU : OpRewritePattern<OpTy> {
  AttentionToGPU(MLIRContext *ctx, KernelModule &km, int64_t smCount)
      : OpRewritePattern<OpTy>(ctx), km(km), smCount(smCount) {}

  LogicalResult matchAndRewrite(OpTy op,
                                PatternRewriter &rewriter) const override {
    const DecodeConfig c = DecodeConfig::get(op, smCount);
    const DecodeTypes t(op.getContext(), c);
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    auto alloc = [&](MemRefType type) -> Value {
      return gpu::AllocOp::create(b, type, Type(), ValueRange{}, ValueRange{},
                                  ValueRange{}, false)
          .getMemref();
    };
    SmallVector<Value> args{exactBuffer(b, op.getQuery()),
                            exactBuffer(b, op.getKey()),
                            exactBuffer(b, op.getValue())};
    if constexpr (std::is_same_v<OpTy, WeightedAttentionOp>)
      args.push_back(exactBuffer(b, op.getLogWeights()));
    if (op.getKvLen())
      args.push_back(exactBuffer(b, op.getKvLen()));
    Value partO = alloc(t.partialOut), partStats = alloc(t.partialStats),
          out = alloc(t.out);
    args.append({partO, partStats});
    gpu::LaunchFuncOp::create(
        b, splitKernel(km, c, t),
        gpu::KernelDim3{cIdx(b, c.splits), cIdx(b, c.qHeads / c.headsPerBlock),
                        cIdx(b, c.batch)},
        gpu::KernelDim3{cIdx(b, kSplitThreads), cIdx(b, 1), cIdx(b, 1)},
        Value(), args);
    gpu::LaunchFuncOp::create(
        b, combineKernel(km, c, t),
        gpu::KernelDim3{cIdx(b, c.qHeads), cIdx(b, c.batch), cIdx(b, 1)},
        gpu::KernelDim3{cIdx(b, kCombineThreads), cIdx(b, 1), cIdx(b, 1)},
        Value(), ValueRange{partO, partStats, out});
    gpu::DeallocOp::create(b, Type(), ValueRange{}, partO);
    gpu::DeallocOp::create(b, Type(), ValueRange{}, partStats);
    rewriter.replaceOp(op, resultTensor(b, out, op.getResult().getType()));
    return success();
  }

  KernelModule &km;
  int64_t smCount;
};

template <typename OpTy> LogicalResult checkDecode(OpTy op) {
  for (Value v : op->getOperands())
    if (!cast<RankedTensorType>(v.getType()).hasStaticShape())
      return op.emitOpError()
             << "the GPU lowering needs static shapes, got " << v.getType();
  auto qT = cast<RankedTensorType>(op.getQuery().getType());
  if (qT.getDimSize(2) > kMaxQueries)
    return op.emitOpError() << "the GPU decode kernel takes at most "
                            << kMaxQueries << " queries, got "
                            << qT.getDimSize(2);
  if (qT.getDimSize(3) > 256 ||
      cast<RankedTensorType>(op.getValue().getType()).getDimSize(3) > 256)
    return op.emitOpError()
           << "the GPU decode kernel takes head and value dims up to 256";
  if (qT.getDimSize(0) > 65535 || qT.getDimSize(1) > 65535)
    return op.emitOpError() << "the GPU decode kernel takes at most 65535 "
                               "batches and query heads (grid dimensions)";
  return success();
}

} // namespace

LogicalResult balancekv::checkAttentionForGPU(Operation *op) {
  if (auto a = dyn_cast<AttentionOp>(op))
    return checkDecode(a);
  return checkDecode(cast<WeightedAttentionOp>(op));
}

void balancekv::populateAttentionToGPUPatterns(RewritePatternSet &patterns,
                                               KernelModule &km,
                                               int64_t smCount) {
  patterns.add<AttentionToGPU<AttentionOp>, AttentionToGPU<WeightedAttentionOp>>(
      patterns.getContext(), km, smCount);
}
