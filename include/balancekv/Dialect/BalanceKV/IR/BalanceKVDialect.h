//===- BalanceKVDialect.h - BalanceKV dialect -------------------*- C++ -*-===//
#ifndef BALANCEKV_DIALECT_BALANCEKV_IR_BALANCEKVDIALECT_H
#define BALANCEKV_DIALECT_BALANCEKV_IR_BALANCEKVDIALECT_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Dialect.h"

#include "balancekv/Dialect/BalanceKV/IR/BalanceKVOpsDialect.h.inc"

#include "balancekv/Dialect/BalanceKV/IR/BalanceKVEnums.h.inc"

#include "balancekv/Support/CompressParams.h"
#include "llvm/ADT/Hashing.h"
#include "llvm/ADT/bit.h"

#include <type_traits>

namespace balancekv {
namespace detail {
template <typename T> llvm::hash_code hashParam(T v) {
  if constexpr (std::is_floating_point_v<T>) {
    // By bit pattern (LLVM hashes no floats), with -0 as 0 since == equates
    // them.
    double d = v == 0 ? 0.0 : double(v);
    return llvm::hash_value(llvm::bit_cast<uint64_t>(d));
  } else {
    return llvm::hash_value(v);
  }
}
} // namespace detail

/// For CompressParamsAttr's storage uniquing.
inline llvm::hash_code hash_value(const CompressParams &p) {
  llvm::hash_code h = llvm::hash_value(0);
#define BALANCEKV_PARAM_HASH(type, member, name, dflt, doc)                    \
  h = llvm::hash_combine(h, detail::hashParam(p.member));
  BALANCEKV_COMPRESS_PARAMS(BALANCEKV_PARAM_HASH)
#undef BALANCEKV_PARAM_HASH
  return h;
}
} // namespace balancekv

#define GET_ATTRDEF_CLASSES
#include "balancekv/Dialect/BalanceKV/IR/BalanceKVAttrs.h.inc"

#endif // BALANCEKV_DIALECT_BALANCEKV_IR_BALANCEKVDIALECT_H
