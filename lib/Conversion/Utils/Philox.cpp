//===- Philox.cpp - Philox-4x32-10 as arith ops ---------------------------===//

#include "balancekv/Conversion/Utils/Philox.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

using namespace mlir;

namespace balancekv {

Value buildPhiloxWord0(ImplicitLocOpBuilder &b, std::array<Value, 4> c,
                       std::array<Value, 2> key) {
  auto i32 = [&](uint32_t v) {
    return arith::ConstantIntOp::create(b, b.getI32Type(), int64_t(v))
        .getResult();
  };
  Value mul0 = i32(0xD2511F53u), mul1 = i32(0xCD9E8D57u);
  Value weyl0 = i32(0x9E3779B9u), weyl1 = i32(0xBB67AE85u);
  Value k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; ++round) {
    auto p0 = arith::MulUIExtendedOp::create(b, mul0, c[0]);
    auto p1 = arith::MulUIExtendedOp::create(b, mul1, c[2]);
    Value n0 = arith::XOrIOp::create(
        b, arith::XOrIOp::create(b, p1.getHigh(), c[1]), k0);
    Value n2 = arith::XOrIOp::create(
        b, arith::XOrIOp::create(b, p0.getHigh(), c[3]), k1);
    c = {n0, p1.getLow(), n2, p0.getLow()};
    if (round < 9) {
      k0 = arith::AddIOp::create(b, k0, weyl0);
      k1 = arith::AddIOp::create(b, k1, weyl1);
    }
  }
  return c[0];
}

Value buildPhiloxToUnit(ImplicitLocOpBuilder &b, Value x) {
  Value shifted = arith::ShRUIOp::create(
      b, x, arith::ConstantIntOp::create(b, b.getI32Type(), 8));
  Value f = arith::UIToFPOp::create(b, b.getF32Type(), shifted);
  return arith::MulFOp::create(
      b, f, arith::ConstantFloatOp::create(b, b.getF32Type(),
                                           APFloat(1.0f / 16777216.0f)));
}

Value buildSpecUniform(ImplicitLocOpBuilder &b, uint64_t seed, Value i,
                       Value block, Value round, Value batch, Value head) {
  auto toI32 = [&](Value v) -> Value {
    if (v.getType().isIndex())
      return arith::IndexCastUIOp::create(b, b.getI32Type(), v);
    return v;
  };
  Value word3 = arith::OrIOp::create(
      b,
      arith::ShLIOp::create(b, toI32(batch),
                            arith::ConstantIntOp::create(b, b.getI32Type(), 16)),
      toI32(head));
  Value key0 = arith::ConstantIntOp::create(b, b.getI32Type(),
                                            int64_t(uint32_t(seed)));
  Value key1 = arith::ConstantIntOp::create(b, b.getI32Type(),
                                            int64_t(uint32_t(seed >> 32)));
  Value x = buildPhiloxWord0(
      b, {toI32(i), toI32(block), toI32(round), word3}, {key0, key1});
  return buildPhiloxToUnit(b, x);
}

} // namespace balancekv

Value balancekv::buildWalkProbability(ImplicitLocOpBuilder &b, Value s,
                                      double gamma) {
  auto type = cast<FloatType>(s.getType());
  auto c = [&](double v) -> Value {
    APFloat f(v);
    bool lost;
    f.convert(type.getFloatSemantics(), APFloat::rmNearestTiesToEven, &lost);
    return arith::ConstantFloatOp::create(b, type, f).getResult();
  };
  Value p = arith::SubFOp::create(b, c(0.5),
                                  arith::MulFOp::create(b, c(gamma), s));
  return arith::MinimumFOp::create(b, arith::MaximumFOp::create(b, p, c(0.0)),
                                   c(1.0));
}
