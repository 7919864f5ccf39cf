//===- CompressParamsTest.cpp - one check of the parameters, every layer --===//
//
// The op verifier, --balancekv-compress-kv-cache's options and the reference
// reject each bad parameter set of BadCompressParams.h with the message of
// CompressParams::validate() (the C API: RuntimeApiTest.cpp).
//
//===----------------------------------------------------------------------===//

#include "../Support/BadCompressParams.h"

#include "balancekv/Dialect/BalanceKV/IR/BalanceKVOps.h"
#include "balancekv/Dialect/BalanceKV/Transforms/Passes.h"
#include "kernels/reference/Reference.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "mlir/AsmParser/AsmParser.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

using namespace mlir;
using balancekv::CompressParams;
using balancekv::testing::badCompressParams;

namespace {

TEST(CompressParams, DefaultsAreTheSpecs) {
  CompressParams p;
  EXPECT_EQ(p.rounds, 2);
  EXPECT_EQ(p.blockSize, 128);
  EXPECT_EQ(p.sink, 32);
  EXPECT_EQ(p.recent, 32);
  EXPECT_DOUBLE_EQ(p.gamma, 4.0);
  EXPECT_DOUBLE_EQ(p.temperature, 1.0);
  EXPECT_DOUBLE_EQ(p.c0, 0.025);
  EXPECT_TRUE(p.validate().empty());
}

class CompressParamsLayers : public ::testing::Test {
protected:
  CompressParamsLayers() {
    ctx.loadDialect<balancekv::BalanceKVDialect, func::FuncDialect>();
  }
  /// Runs `fn` and returns the first error diagnostic it raised.
  template <typename Fn> std::string firstError(Fn fn) {
    std::string msg;
    ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &d) {
      if (msg.empty() && d.getSeverity() == DiagnosticSeverity::Error)
        msg = d.str();
      return success();
    });
    fn();
    return msg;
  }
  MLIRContext ctx;
};

/// Every parameter of the table, set away from its default, prints and
/// parses back to the same attribute; the defaults print as `<>`.
TEST_F(CompressParamsLayers, AttributeRoundTrip) {
  CompressParams p;
#define BALANCEKV_PARAM_BUMP(type, member, name, dflt, doc)                    \
  p.member = type(p.member + type(3));
  BALANCEKV_COMPRESS_PARAMS(BALANCEKV_PARAM_BUMP)
#undef BALANCEKV_PARAM_BUMP
  p.gamma = 0.1; // not a short decimal in binary
  auto attr = balancekv::CompressParamsAttr::get(
      &ctx, balancekv::CompressionMethod::KNorm, p);
  std::string text;
  llvm::raw_string_ostream os(text);
  os << Attribute(attr);
  for (const char *name : {"method = knorm", "rounds = 5", "block_size = 131",
                           "sink = 35", "recent = 35", "gamma = ",
                           "temperature = ", "c0 = ", "seed = 3", "scale = "})
    EXPECT_NE(text.find(name), std::string::npos) << name << " in " << text;
  Attribute back = parseAttribute(text, &ctx);
  EXPECT_EQ(back, attr) << text;
  EXPECT_EQ(cast<balancekv::CompressParamsAttr>(back).getValues(), p);

  std::string defaults;
  llvm::raw_string_ostream ds(defaults);
  ds << Attribute(balancekv::CompressParamsAttr::get(
      &ctx, balancekv::CompressionMethod::Balance, CompressParams{}));
  EXPECT_EQ(defaults, "#balancekv.compress_params<>");
}

TEST_F(CompressParamsLayers, OpVerifier) {
  OpBuilder b(&ctx);
  Location loc = b.getUnknownLoc();
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  b.setInsertionPointToEnd(module->getBody());
  auto t = RankedTensorType::get({1, 2, 256, 64}, b.getF32Type());
  OperationState st(loc, "test.source");
  st.addTypes({t, t});
  Operation *src = b.create(st);
  for (const auto &c : badCompressParams()) {
    const CompressParams &p = c.params;
    auto op = balancekv::CompressOp::create(
        b, loc, src->getResult(0), src->getResult(1), Value(),
        balancekv::CompressionMethod::Balance, p);
    EXPECT_EQ(firstError([&] { (void)mlir::verify(op); }),
              "'balancekv.compress' op " + c.message);
    op->erase();
  }
}

TEST_F(CompressParamsLayers, PassOptions) {
  const char *ir = R"mlir(
    func.func @f(%q: tensor<1x2x1x64xf32>, %k: tensor<1x2x2048x64xf32>) -> tensor<1x2x1x64xf32> {
      %o = balancekv.attention %q, %k, %k : tensor<1x2x1x64xf32>, tensor<1x2x2048x64xf32>, tensor<1x2x2048x64xf32> -> tensor<1x2x1x64xf32>
      return %o : tensor<1x2x1x64xf32>
    }
  )mlir";
  for (const auto &c : badCompressParams()) {
    OwningOpRef<ModuleOp> m = parseSourceString<ModuleOp>(ir, &ctx);
    ASSERT_TRUE(m);
    balancekv::BalanceKVCompressKVCachePassOptions o;
#define BALANCEKV_PARAM_TO_OPTION(type, member, name, dflt, doc)               \
  o.member = c.params.member;
    BALANCEKV_COMPRESS_PARAMS(BALANCEKV_PARAM_TO_OPTION)
#undef BALANCEKV_PARAM_TO_OPTION
    PassManager pm(&ctx);
    pm.addPass(balancekv::createBalanceKVCompressKVCachePass(o));
    bool failedRun = false;
    EXPECT_EQ(firstError([&] { failedRun = failed(pm.run(*m)); }),
              "balancekv-compress-kv-cache: " + c.message);
    EXPECT_TRUE(failedRun);
  }
}

TEST(CompressParamsReference, Validate) {
  for (const auto &c : badCompressParams()) {
    balancekv::reference::CompressOptions o;
    static_cast<CompressParams &>(o) = c.params;
    balancekv::reference::Status st = balancekv::reference::validate(o);
    EXPECT_FALSE(st.ok);
    EXPECT_EQ(st.message, c.message);
  }
}

} // namespace
