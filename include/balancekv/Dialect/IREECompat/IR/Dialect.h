//===- Dialect.h - iree_linalg_ext / tm_tensor attention, re-declared -*- C++ -*-===//
#ifndef BALANCEKV_DIALECT_IREECOMPAT_IR_DIALECT_H
#define BALANCEKV_DIALECT_IREECOMPAT_IR_DIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "balancekv/Dialect/IREECompat/IR/IREELinalgExtDialect.h.inc"

#define GET_OP_CLASSES
#include "balancekv/Dialect/IREECompat/IR/IREELinalgExtOps.h.inc"

#include "balancekv/Dialect/IREECompat/IR/TMTensorDialect.h.inc"

#define GET_OP_CLASSES
#include "balancekv/Dialect/IREECompat/IR/TMTensorOps.h.inc"

#endif // BALANCEKV_DIALECT_IREECOMPAT_IR_DIALECT_H
