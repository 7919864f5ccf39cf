//===- Dialect.h - Triton 3.6 `tt` dialect, re-declared ---------*- C++ -*-===//
#ifndef BALANCEKV_DIALECT_TRITONCOMPAT_IR_DIALECT_H
#define BALANCEKV_DIALECT_TRITONCOMPAT_IR_DIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/UB/IR/UBOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/CallInterfaces.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "balancekv/Dialect/TritonCompat/IR/TritonDialect.h.inc"
#include "balancekv/Dialect/TritonCompat/IR/TritonEnums.h.inc"

#define GET_TYPEDEF_CLASSES
#include "balancekv/Dialect/TritonCompat/IR/TritonTypes.h.inc"

namespace balancekv::tt {
/// The pointee of a pointer, or a tensor of pointees for a tensor of pointers
/// (Triton's getPointeeType).
mlir::Type getPointeeType(mlir::Type ptrLike);
/// i1, or a tensor of i1 with the shape of `type` (Triton's getI1SameShape).
mlir::Type getI1SameShape(mlir::Type type);
/// The base pointer type of a block pointer !tt.ptr<tensor<...xT>, as>:
/// !tt.ptr<T, as>.
mlir::Type tensorPtrBaseType(mlir::Type blockPtr);
} // namespace balancekv::tt

#define GET_OP_CLASSES
#include "balancekv/Dialect/TritonCompat/IR/TritonOps.h.inc"

#endif // BALANCEKV_DIALECT_TRITONCOMPAT_IR_DIALECT_H
