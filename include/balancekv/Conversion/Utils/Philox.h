//===- Philox.h - Philox-4x32-10 as arith ops -------------------*- C++ -*-===//
//
// The spec's counter-based random numbers built from `arith` ops
// (`arith.mului_extended` for the 32x32->64 products), bit-exact with
// kernels/reference/Philox.h on every backend that lowers arith.
//
//===----------------------------------------------------------------------===//
#ifndef BALANCEKV_CONVERSION_UTILS_PHILOX_H
#define BALANCEKV_CONVERSION_UTILS_PHILOX_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace balancekv {

/// Word 0 of Philox-4x32-10 for `counter` (four i32) and `key` (two i32).
mlir::Value buildPhiloxWord0(mlir::ImplicitLocOpBuilder &b,
                             std::array<mlir::Value, 4> counter,
                             std::array<mlir::Value, 2> key);

/// (x >> 8) * 2^-24 as f32 (exact), x an i32.
mlir::Value buildPhiloxToUnit(mlir::ImplicitLocOpBuilder &b, mlir::Value x);

/// u in [0, 1) for counter [i, block, round, (batch << 16) | head] and the
/// 64-bit `seed`: the walk's and the uniform baseline's draws. `i`, `block`,
/// `round`, `batch` and `head` are index values; `round` may be a constant
/// such as 0xffffffff.
mlir::Value buildSpecUniform(mlir::ImplicitLocOpBuilder &b, uint64_t seed,
                             mlir::Value i, mlir::Value block,
                             mlir::Value round, mlir::Value batch,
                             mlir::Value head);

/// The walk's probability of sign +1 for running sum `s` (spec section 3,
/// step 3): clamp(1/2 - gamma s, 0, 1), in `s`'s float type; the sign is +1
/// when the draw above is below it.
mlir::Value buildWalkProbability(mlir::ImplicitLocOpBuilder &b, mlir::Value s,
                                 double gamma);

} // namespace balancekv

#endif // BALANCEKV_CONVERSION_UTILS_PHILOX_H
