//===- PhiloxTest.cpp - Philox-4x32-10 against the spec's known answers ---===//

#include "kernels/reference/FloatStorage.h"
#include "kernels/reference/Philox.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace balancekv;

namespace {

void expectKat(Philox4x32 ctr, uint32_t k0, uint32_t k1, Philox4x32 want) {
  Philox4x32 got = philox4x32_10(ctr, k0, k1);
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(got.v[i], want.v[i]) << "word " << i;
}

TEST(Philox, KnownAnswerZero) {
  expectKat({{0, 0, 0, 0}}, 0, 0,
            {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}});
}

TEST(Philox, KnownAnswerOnes) {
  expectKat({{~0u, ~0u, ~0u, ~0u}}, ~0u, ~0u,
            {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}});
}

TEST(Philox, KnownAnswerPi) {
  expectKat({{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}}, 0xa4093822,
            0x299f31d0, {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}});
}

TEST(Philox, CounterAndKeyLayout) {
  // u for (i=5, block=2, round=1, batch=3, head=4, seed=lo|hi<<32) is word 0
  // of the counter [5, 2, 1, (3 << 16) | 4] under key [lo, hi].
  uint64_t seed = (uint64_t(0x12345678) << 32) | 0x9abcdef0u;
  uint32_t x =
      philox4x32_10({{5, 2, 1, (3u << 16) | 4u}}, 0x9abcdef0u, 0x12345678u)
          .v[0];
  EXPECT_EQ(walkUniform(seed, 5, 2, 1, 3, 4), float(x >> 8) / 16777216.0f);
  EXPECT_EQ(uniformBaselineDraw(seed, 7, 3, 4), walkUniform(seed, 7, 0,
                                                            0xffffffffu, 3, 4));
}

TEST(Philox, UnitIntervalEnds) {
  EXPECT_EQ(philoxToUnit(0), 0.0f);
  EXPECT_LT(philoxToUnit(~0u), 1.0f);
  EXPECT_EQ(philoxToUnit(~0u), 1.0f - std::ldexp(1.0f, -24));
}

TEST(FloatStorage, HalfRoundTrip) {
  for (float f : {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f,
                  5.9604645e-08f, 0.333251953125f})
    EXPECT_EQ(f16ToFloat(floatToF16(f)), f) << f;
  EXPECT_EQ(floatToF16(1.0f), 0x3c00);
  EXPECT_EQ(floatToF16(1e6f), 0x7c00);          // overflow to infinity
  EXPECT_EQ(f16ToFloat(floatToF16(1.0f + 1.0f / 4096)), 1.0f); // ties to even
  EXPECT_TRUE(std::isnan(f16ToFloat(floatToF16(NAN))));
}

TEST(FloatStorage, BFloatRoundTrip) {
  for (float f : {0.0f, 1.0f, -3.0f, std::ldexp(1.5f, 100), 0.0078125f})
    EXPECT_EQ(bf16ToFloat(floatToBf16(f)), f) << f;
  EXPECT_EQ(floatToBf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16ToFloat(floatToBf16(1.0f + 1.0f / 256)), 1.0f); // ties to even
}

} // namespace
