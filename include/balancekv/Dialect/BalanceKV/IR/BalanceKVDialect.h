//===- BalanceKVDialect.h - BalanceKV dialect -------------------*- C++ -*-===//
#ifndef BALANCEKV_DIALECT_BALANCEKV_IR_BALANCEKVDIALECT_H
#define BALANCEKV_DIALECT_BALANCEKV_IR_BALANCEKVDIALECT_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Dialect.h"

#include "balancekv/Dialect/BalanceKV/IR/BalanceKVOpsDialect.h.inc"

#include "balancekv/Dialect/BalanceKV/IR/BalanceKVEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "balancekv/Dialect/BalanceKV/IR/BalanceKVAttrs.h.inc"

#endif // BALANCEKV_DIALECT_BALANCEKV_IR_BALANCEKVDIALECT_H
