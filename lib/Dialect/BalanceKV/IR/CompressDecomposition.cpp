//===- CompressDecomposition.cpp - compress => stage ops ------------------===//
//
// The round structure of BalanceKV (spec sections 2-3), written once:
//
//   balance_init; T x { balance_walk; balance_halve }; gather_kept
//
// as an scf.for over the rounds (CompressOp's AggregatedOpInterface, used by
// the loops lowering and transform.structured.decompose_interface), or with
// the rounds unrolled for back ends whose host code wants one launch
// sequence per round (the GPU lowering: static grids, scratch freed after
// its last use).
//
//===----------------------------------------------------------------------===//

#include "balancekv/Dialect/BalanceKV/IR/BalanceKVOps.h"

#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace balancekv;

FailureOr<SmallVector<Value>>
balancekv::decomposeCompress(OpBuilder &b, CompressOp op, bool unrollRounds) {
  if (op.getMethod() != CompressionMethod::Balance)
    return failure(); // the baselines have no rounds
  Location loc = op.getLoc();
  Value key = op.getKey(), value = op.getValue();
  CompressParamsAttr params = op.getParamsAttr();
  auto init = BalanceInitOp::create(b, loc, key, params);
  auto round = [&](OpBuilder &rb, Value t, ValueRange state) {
    Value signs = BalanceWalkOp::create(rb, loc, key, value, state[0],
                                        state[1], t, params);
    auto halve =
        BalanceHalveOp::create(rb, loc, signs, state[0], state[1], t);
    return SmallVector<Value>{halve.getNextTokens(), halve.getNextDoublings()};
  };
  SmallVector<Value> state{init.getTokens(), init.getDoublings()};
  const int64_t rounds = op.getRounds();
  if (unrollRounds) {
    for (int64_t t = 0; t < rounds; ++t)
      state = round(b, arith::ConstantIndexOp::create(b, loc, t), state);
  } else {
    Value zero = arith::ConstantIndexOp::create(b, loc, 0);
    Value end = arith::ConstantIndexOp::create(b, loc, rounds);
    Value one = arith::ConstantIndexOp::create(b, loc, 1);
    auto loop = scf::ForOp::create(
        b, loc, zero, end, one, state,
        [&](OpBuilder &lb, Location, Value t, ValueRange iter) {
          scf::YieldOp::create(lb, loc, round(lb, t, iter));
        });
    state = loop.getResults();
  }
  auto gather =
      GatherKeptOp::create(b, loc, key, value, state[0], state[1], params);
  SmallVector<Value> results;
  for (auto [r, want] : llvm::zip(gather.getResults(), op.getResults()))
    results.push_back(r.getType() == want.getType()
                          ? Value(r)
                          : Value(tensor::CastOp::create(b, loc,
                                                         want.getType(), r)));
  return results;
}

FailureOr<SmallVector<Value>> CompressOp::decomposeOperation(OpBuilder &b) {
  return decomposeCompress(b, *this, /*unrollRounds=*/false);
}
