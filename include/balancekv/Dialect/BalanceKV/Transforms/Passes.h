//===- Passes.h - BalanceKV transformation passes ---------------*- C++ -*-===//
#ifndef BALANCEKV_DIALECT_BALANCEKV_TRANSFORMS_PASSES_H
#define BALANCEKV_DIALECT_BALANCEKV_TRANSFORMS_PASSES_H

#include "balancekv/Dialect/BalanceKV/IR/BalanceKVOps.h"
#include "balancekv/Dialect/BalanceKV/Transforms/Transforms.h"
#include "balancekv/Dialect/TritonCompat/IR/Dialect.h"
#include "mlir/Pass/Pass.h"

namespace balancekv {

#define GEN_PASS_DECL
#include "balancekv/Dialect/BalanceKV/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "balancekv/Dialect/BalanceKV/Transforms/Passes.h.inc"

} // namespace balancekv

#endif // BALANCEKV_DIALECT_BALANCEKV_TRANSFORMS_PASSES_H
