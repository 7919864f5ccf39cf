//===- Layout.cpp - the compressed layout as IR ---------------------------===//

#include "balancekv/Conversion/Utils/Layout.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

using namespace mlir;

namespace balancekv {

LayoutValues buildCompressedLayout(ImplicitLocOpBuilder &b, Value n,
                                   int64_t sink, int64_t recent,
                                   int64_t rounds) {
  auto idx = [&](int64_t v) { return arith::ConstantIndexOp::create(b, v); };
  LayoutValues l;
  l.sink = arith::MinUIOp::create(b, idx(sink), n);
  l.recent = arith::MinUIOp::create(b, idx(recent),
                                    arith::SubIOp::create(b, n, l.sink));
  l.middle =
      arith::SubIOp::create(b, arith::SubIOp::create(b, n, l.sink), l.recent);
  // Rounds are verified to be <= 16, so the shift is defined.
  l.keptMiddle = arith::ShRUIOp::create(b, l.middle, idx(rounds));
  l.length = arith::AddIOp::create(
      b, arith::AddIOp::create(b, l.sink, l.keptMiddle), l.recent);
  return l;
}

} // namespace balancekv
