//===- BalanceKVOps.h - BalanceKV operations --------------------*- C++ -*-===//
#ifndef BALANCEKV_DIALECT_BALANCEKV_IR_BALANCEKVOPS_H
#define BALANCEKV_DIALECT_BALANCEKV_IR_BALANCEKVOPS_H

#include "balancekv/Dialect/BalanceKV/IR/BalanceKVDialect.h"
#include "balancekv/Support/CompressParams.h"
#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/Dialect/Linalg/IR/LinalgInterfaces.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace balancekv {
// Upstream interface methods (AggregatedOpInterface) spell these unqualified.
using ::mlir::FailureOr;
using ::mlir::OpBuilder;
using ::mlir::SmallVector;
using ::mlir::Value;
} // namespace balancekv

#define GET_OP_CLASSES
namespace balancekv {
/// custom<CompressParams>: `<...>` or nothing (all defaults).
::mlir::ParseResult parseCompressParams(::mlir::OpAsmParser &parser,
                                        CompressParamsAttr &params);
void printCompressParams(::mlir::OpAsmPrinter &printer, ::mlir::Operation *op,
                         CompressParamsAttr params);
} // namespace balancekv

#include "balancekv/Dialect/BalanceKV/IR/BalanceKVOps.h.inc"

namespace balancekv {
/// `op` (method balance) as its stages: balance_init, `rounds` x
/// (balance_walk, balance_halve) in an scf.for (or unrolled), gather_kept.
/// Fails for the other methods, which have no rounds.
::mlir::FailureOr<::llvm::SmallVector<::mlir::Value>>
decomposeCompress(::mlir::OpBuilder &b, CompressOp op, bool unrollRounds);
} // namespace balancekv

#endif // BALANCEKV_DIALECT_BALANCEKV_IR_BALANCEKVOPS_H
