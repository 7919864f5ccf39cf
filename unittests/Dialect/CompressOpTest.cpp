//===- CompressOpTest.cpp - compress op type inference via the C++ API ---===//

#include "balancekv/Dialect/BalanceKV/IR/BalanceKVOps.h"
#include "balancekv/Support/CompressedLayout.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

using namespace mlir;

namespace {

TEST(CompressedLayout, SpecFormula) {
  // n = 4096 with defaults: 32 + 4032/4 + 32.
  auto l = balancekv::CompressedLayout::compute(4096, 32, 32, 2);
  EXPECT_EQ(l.middle, 4032);
  EXPECT_EQ(l.keptMiddle, 1008);
  EXPECT_EQ(l.compressedLength(), 1072);
  // Floor halving each round: 13 -> 6 -> 3 -> 1.
  EXPECT_EQ(balancekv::CompressedLayout::compute(13 + 64, 32, 32, 3).keptMiddle,
            1);
  // Short caches: the sink takes what there is, then the window.
  auto s = balancekv::CompressedLayout::compute(20, 32, 32, 2);
  EXPECT_EQ(s.sink, 20);
  EXPECT_EQ(s.recent, 0);
  EXPECT_EQ(s.compressedLength(), 20);
  auto w = balancekv::CompressedLayout::compute(40, 32, 32, 2);
  EXPECT_EQ(w.recent, 8);
  EXPECT_EQ(w.middle, 0);
  EXPECT_EQ(w.compressedLength(), 40);
  EXPECT_EQ(balancekv::CompressedLayout::compute(0, 32, 32, 2)
                .compressedLength(),
            0);
}

class CompressOpTest : public ::testing::Test {
protected:
  CompressOpTest() { ctx.loadDialect<balancekv::BalanceKVDialect>(); }
  MLIRContext ctx;
};

TEST_F(CompressOpTest, BuilderInfersCompressedLength) {
  OpBuilder b(&ctx);
  Location loc = b.getUnknownLoc();
  auto module = ModuleOp::create(loc);
  b.setInsertionPointToEnd(module.getBody());
  auto kt = RankedTensorType::get({2, 4, 1000, 64}, b.getBF16Type());
  auto vt = RankedTensorType::get({2, 4, 1000, 32}, b.getBF16Type());
  // Values from a placeholder op so that the compress op has operands.
  OperationState st(loc, "test.source");
  st.addTypes({kt, vt});
  Operation *src = b.create(st);
  for (int64_t rounds : {0, 1, 2, 3, 4}) {
    balancekv::CompressParams params;
    params.rounds = rounds;
    auto op = balancekv::CompressOp::create(
        b, loc, src->getResult(0), src->getResult(1), /*observation=*/Value(),
        balancekv::CompressionMethod::Balance, params);
    int64_t m = 64 + (936 >> rounds);
    auto ck = cast<RankedTensorType>(op.getCompressedKey().getType());
    auto lw = cast<RankedTensorType>(op.getLogWeights().getType());
    EXPECT_EQ(ck.getShape(), ArrayRef<int64_t>({2, 4, m, 64}));
    EXPECT_EQ(lw.getShape(), ArrayRef<int64_t>({2, 4, m}));
    EXPECT_TRUE(lw.getElementType().isF32());
    EXPECT_TRUE(ck.getElementType().isBF16());
    EXPECT_EQ(op.getCompressedLength(1000), m);
  }
  module->destroy();
}

TEST_F(CompressOpTest, ParsedAttributesDriveInference) {
  ctx.loadDialect<func::FuncDialect>();
  const char *ir = R"mlir(
    func.func private @f(%k: tensor<1x1x300x8xf32>, %v: tensor<1x1x300x8xf32>) {
      %a:3 = balancekv.compress %k, %v <rounds = 3, sink = 4, recent = 8>
          : tensor<1x1x300x8xf32>, tensor<1x1x300x8xf32>
      return
    }
  )mlir";
  OwningOpRef<ModuleOp> m = parseSourceString<ModuleOp>(ir, &ctx);
  ASSERT_TRUE(m);
  balancekv::CompressOp op;
  m->walk([&](balancekv::CompressOp c) { op = c; });
  ASSERT_TRUE(op);
  // 4 + (288 >> 3) + 8 = 48
  EXPECT_EQ(cast<RankedTensorType>(op.getLogWeights().getType()).getDimSize(2),
            48);
}

} // namespace
