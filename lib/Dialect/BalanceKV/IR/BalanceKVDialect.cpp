//===- BalanceKVDialect.cpp - BalanceKV dialect registration -------------===//

#include "balancekv/Dialect/BalanceKV/IR/BalanceKVDialect.h"
#include "balancekv/Dialect/BalanceKV/IR/BalanceKVOps.h"

#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace balancekv;

#include "balancekv/Dialect/BalanceKV/IR/BalanceKVOpsDialect.cpp.inc"

#include "balancekv/Dialect/BalanceKV/IR/BalanceKVEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "balancekv/Dialect/BalanceKV/IR/BalanceKVAttrs.cpp.inc"

void BalanceKVDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "balancekv/Dialect/BalanceKV/IR/BalanceKVOps.cpp.inc"
      >();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "balancekv/Dialect/BalanceKV/IR/BalanceKVAttrs.cpp.inc"
      >();
}
