//===- LowerToLoopsExecutionTest.cpp - JIT the CPU lowering vs reference -===//
//
// Builds compress + weighted_attention + attention in IR, lowers them with
// the registered CPU pipeline, JIT-runs them on random inputs and checks the
// result against kernels/reference: the same kept rows and log-weights for
// the same seed, and attention outputs within floating-point tolerance.
//
//===----------------------------------------------------------------------===//

#include "balancekv/Conversion/Passes.h"
#include "balancekv/Dialect/BalanceKV/IR/BalanceKVDialect.h"
#include "balancekv/Dialect/BalanceKV/Transforms/Passes.h"
#include "balancekv/Pipelines/Pipelines.h"
#include "kernels/reference/Reference.h"

#include "mlir/ExecutionEngine/CRunnerUtils.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "llvm/Support/TargetSelect.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <sstream>

using namespace mlir;
using namespace balancekv;
using namespace balancekv::reference;

namespace {

struct Case {
  const char *name;
  DType dtype;
  int64_t batch, kvHeads, qHeads, n, d, dv, l;
  CompressOptions opts;
  bool causal = false;
};

void PrintTo(const Case &c, std::ostream *os) { *os << c.name; }

std::string typeStr(DType t) { return dtypeName(t); }

std::string tensorType(const std::string &kind, std::vector<int64_t> shape,
                       const std::string &elem) {
  std::ostringstream s;
  s << kind << "<";
  for (int64_t x : shape)
    s << x << "x";
  s << elem << ">";
  return s.str();
}

/// `scale = ... : f32` after `sep` when the case sets a scale, else "".
std::string scaleAttr(const CompressOptions &o, const char *sep) {
  if (o.scale <= 0)
    return "";
  std::ostringstream s;
  s.precision(9);
  s << sep << "scale = " << std::scientific << float(o.scale) << " : f32";
  return s.str();
}

/// The function under test: inputs q, k, v; outputs compressed k, v, log
/// weights, weighted attention and exact attention, all as memrefs.
std::string buildModule(const Case &c, int64_t m) {
  std::string e = typeStr(c.dtype);
  auto mem = [&](std::vector<int64_t> s, const std::string &el) {
    return tensorType("memref", s, el);
  };
  auto ten = [&](std::vector<int64_t> s, const std::string &el) {
    return tensorType("tensor", s, el);
  };
  std::vector<int64_t> qS{c.batch, c.qHeads, c.l, c.d},
      kS{c.batch, c.kvHeads, c.n, c.d}, vS{c.batch, c.kvHeads, c.n, c.dv},
      ckS{c.batch, c.kvHeads, m, c.d}, cvS{c.batch, c.kvHeads, m, c.dv},
      lwS{c.batch, c.kvHeads, m}, oS{c.batch, c.qHeads, c.l, c.dv};
  const CompressOptions &o = c.opts;
  std::ostringstream s;
  s.precision(17);
  s << "func.func @run(%q: " << mem(qS, e) << ", %k: " << mem(kS, e)
    << ", %v: " << mem(vS, e) << ", %ck: " << mem(ckS, e)
    << ", %cv: " << mem(cvS, e) << ", %lw: " << mem(lwS, "f32")
    << ", %ow: " << mem(oS, e) << ", %oe: " << mem(oS, e)
    << ") attributes {llvm.emit_c_interface} {\n";
  for (auto [name, shape] : {std::pair{"q", qS}, {"k", kS}, {"v", vS}})
    s << "  %" << name << "t = bufferization.to_tensor %" << name
      << " restrict : " << mem(shape, e) << " to " << ten(shape, e) << "\n";
  s << "  %a, %b, %w = balancekv.compress ";
  s << "%kt, %vt";
  if (o.method == Method::SnapKV)
    s << " observe(%qt : " << ten(qS, e) << ")";
  s << " <method = " << methodName(o.method) << ", rounds = " << o.rounds
    << ", block_size = " << o.blockSize << ", sink = " << o.sink
    << ", recent = " << o.recent << ", gamma = " << std::fixed << o.gamma
    << std::defaultfloat << ", seed = " << o.seed;
  if (o.scale > 0) {
    std::ostringstream sc;
    sc.precision(9);
    sc << std::scientific << float(o.scale);
    s << ", scale = " << sc.str();
  }
  s << "> : " << ten(kS, e) << ", " << ten(vS, e) << "\n";
  // The attention ops' attribute dictionaries: causal, scale.
  std::string causal = (c.causal ? " causal" : "") +
                       (o.scale > 0 ? " {" + scaleAttr(o, "") + "}" : "");
  s << "  %ow_t = balancekv.weighted_attention %qt, %a, %b, %w" << causal
    << " : " << ten(qS, e) << ", " << ten(ckS, e) << ", " << ten(cvS, e)
    << ", " << ten(lwS, "f32") << " -> " << ten(oS, e) << "\n";
  s << "  %oe_t = balancekv.attention %qt, %kt, %vt" << causal << " : "
    << ten(qS, e) << ", " << ten(kS, e) << ", " << ten(vS, e) << " -> "
    << ten(oS, e) << "\n";
  for (auto [t, mref, shape, el] :
       {std::tuple{"a", "ck", ckS, e}, {"b", "cv", cvS, e},
        {"w", "lw", lwS, std::string("f32")}, {"ow_t", "ow", oS, e},
        {"oe_t", "oe", oS, e}})
    s << "  bufferization.materialize_in_destination %" << t
      << " in restrict writable %" << mref << " : (" << ten(shape, el) << ", "
      << mem(shape, el) << ") -> ()\n";
  s << "  return\n}\n";
  return s.str();
}

template <int N> StridedMemRefType<char, N> descriptor(Tensor &t) {
  StridedMemRefType<char, N> d;
  d.basePtr = d.data = reinterpret_cast<char *>(t.bytes.data());
  d.offset = 0;
  int64_t stride = 1;
  for (int i = N - 1; i >= 0; --i) {
    d.sizes[i] = t.shape[i];
    d.strides[i] = stride;
    stride *= t.shape[i];
  }
  return d;
}

Tensor randomTensor(DType t, std::vector<int64_t> shape, uint32_t seed) {
  Tensor x(t, std::move(shape));
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  for (int64_t i = 0; i < x.numElements(); ++i)
    x.set(i, nd(rng));
  return x;
}

double relError(const Tensor &got, const std::vector<double> &want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    double diff = got.at(int64_t(i)) - want[i];
    num += diff * diff;
    den += want[i] * want[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

class LowerToLoopsExecution : public ::testing::TestWithParam<Case> {
protected:
  static void SetUpTestSuite() {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    mlir::registerAllPasses();
    balancekv::registerBalanceKVPasses();
    balancekv::registerBalanceKVConversionPasses();
  }
};

TEST_P(LowerToLoopsExecution, MatchesReference) {
  const Case &c = GetParam();
  const int64_t m = CompressedLayout::compute(c.n, c.opts.sink, c.opts.recent,
                                              c.opts.rounds)
                        .compressedLength();
  DialectRegistry registry;
  registerAllDialects(registry);
  registerAllExtensions(registry);
  registry.insert<BalanceKVDialect>();
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  MLIRContext ctx(registry);
  std::string src = buildModule(c, m);
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(src, &ctx);
  ASSERT_TRUE(module) << src;
  PassManager pm(&ctx);
  ASSERT_TRUE(succeeded(buildCPUPipeline(pm)));
  ASSERT_TRUE(succeeded(pm.run(*module))) << src;
  auto engine = ExecutionEngine::create(*module);
  ASSERT_TRUE(bool(engine)) << llvm::toString(engine.takeError());

  Tensor q = randomTensor(c.dtype, {c.batch, c.qHeads, c.l, c.d}, 1);
  Tensor k = randomTensor(c.dtype, {c.batch, c.kvHeads, c.n, c.d}, 2);
  Tensor v = randomTensor(c.dtype, {c.batch, c.kvHeads, c.n, c.dv}, 3);
  Tensor ck(c.dtype, {c.batch, c.kvHeads, m, c.d}),
      cv(c.dtype, {c.batch, c.kvHeads, m, c.dv}),
      lw(DType::F32, {c.batch, c.kvHeads, m}),
      ow(c.dtype, {c.batch, c.qHeads, c.l, c.dv}),
      oe(c.dtype, {c.batch, c.qHeads, c.l, c.dv});
  // Poison the outputs: every element must be written.
  for (Tensor *t : {&ck, &cv, &lw, &ow, &oe})
    std::fill(t->bytes.begin(), t->bytes.end(), 0xff);

  auto dq = descriptor<4>(q), dk = descriptor<4>(k), dv = descriptor<4>(v),
       dck = descriptor<4>(ck), dcv = descriptor<4>(cv),
       dow = descriptor<4>(ow), doe = descriptor<4>(oe);
  auto dlw = descriptor<3>(lw);
  void *ptrs[] = {&dq, &dk, &dv, &dck, &dcv, &dlw, &dow, &doe};
  SmallVector<void *> args;
  for (void *&p : ptrs)
    args.push_back(&p);
  ASSERT_FALSE(bool((*engine)->invokePacked("_mlir_ciface_run", args)));

  // Reference selection, gathered rows and log-weights.
  Selection sel;
  TensorRef qr = q.ref();
  Status st = compress(k.ref(), v.ref(), c.opts, sel,
                       c.opts.method == Method::SnapKV ? &qr : nullptr);
  ASSERT_TRUE(st.ok) << st.message;
  ASSERT_EQ(sel.m, m);
  Tensor rk = gather(k.ref(), sel), rv = gather(v.ref(), sel);
  EXPECT_EQ(ck.bytes, rk.bytes) << "kept keys differ";
  EXPECT_EQ(cv.bytes, rv.bytes) << "kept values differ";
  for (int64_t i = 0; i < lw.numElements(); ++i)
    ASSERT_NEAR(lw.at(i), sel.logWeights[i], 1e-6) << "log-weight " << i;

  AttentionOptions ao;
  ao.causal = c.causal;
  ao.scale = c.opts.scale;
  std::vector<double> wantW, wantE;
  ASSERT_TRUE(attention(q.ref(), rk.ref(), rv.ref(), ao, wantW,
                        sel.logWeights.data())
                  .ok);
  ASSERT_TRUE(attention(q.ref(), k.ref(), v.ref(), ao, wantE).ok);
  const double tol = c.dtype == DType::F32 ? 1e-5 : 1e-2;
  EXPECT_LT(relError(ow, wantW), tol);
  EXPECT_LT(relError(oe, wantE), tol);
}

CompressOptions opts(Method m, int64_t rounds, int64_t block, int64_t seed,
                     double gamma = 4.0, double scale = 0.0) {
  CompressOptions o;
  o.scale = scale;
  o.method = m;
  o.rounds = rounds;
  o.blockSize = block;
  o.seed = uint64_t(seed);
  o.gamma = gamma;
  return o;
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, LowerToLoopsExecution,
    ::testing::Values(
        Case{"balance_f32_gqa_decode", DType::F32, 1, 2, 4, 300, 16, 8, 1,
             opts(Method::Balance, 2, 64, 7), true},
        Case{"balance_f16_odd_length", DType::F16, 2, 2, 2, 517, 32, 16, 3,
             opts(Method::Balance, 3, 128, 1234)},
        Case{"balance_bf16_short_cache", DType::BF16, 1, 1, 2, 40, 8, 8, 1,
             opts(Method::Balance, 2, 128, 5)},
        // Five rounds: walks over weights 2^3 and 2^4 (exact on both sides).
        Case{"balance_f32_five_rounds", DType::F32, 1, 1, 2, 1100, 16, 8, 1,
             opts(Method::Balance, 5, 32, 11)},
        Case{"balance_gamma0_f32", DType::F32, 1, 1, 1, 200, 8, 8, 2,
             opts(Method::Balance, 1, 32, 3, 0.0)},
        Case{"uniform_f32", DType::F32, 2, 1, 2, 333, 16, 16, 1,
             opts(Method::Uniform, 2, 128, 99)},
        Case{"streaming_bf16", DType::BF16, 1, 2, 2, 250, 16, 8, 1,
             opts(Method::Streaming, 3, 128, 0)},
        Case{"knorm_f16", DType::F16, 1, 2, 4, 260, 16, 16, 2,
             opts(Method::KNorm, 2, 128, 0)},
        Case{"snapkv_f32", DType::F32, 1, 2, 4, 270, 16, 8, 4,
             opts(Method::SnapKV, 2, 128, 0)},
        // Empty caches and zero-width keys: the reference's answer (empty
        // or zero scores), not out-of-bounds slices.
        Case{"knorm_empty_cache", DType::F32, 1, 2, 2, 0, 16, 8, 1,
             opts(Method::KNorm, 2, 128, 0)},
        Case{"snapkv_empty_cache", DType::F32, 1, 2, 2, 0, 16, 8, 2,
             opts(Method::SnapKV, 2, 128, 0)},
        Case{"knorm_zero_width_keys", DType::F32, 1, 2, 2, 100, 0, 8, 1,
             opts(Method::KNorm, 2, 128, 0, 4.0, 1.0)},
        Case{"snapkv_zero_width_keys", DType::F32, 1, 2, 4, 100, 0, 8, 2,
             opts(Method::SnapKV, 2, 128, 0, 4.0, 1.0)},
        Case{"balance_zero_width_keys", DType::F32, 1, 1, 1, 300, 0, 8, 1,
             opts(Method::Balance, 2, 64, 3, 4.0, 1.0)}),
    [](const ::testing::TestParamInfo<Case> &info) {
      return std::string(info.param.name);
    });

} // namespace
