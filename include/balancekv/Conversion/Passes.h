//===- Passes.h - BalanceKV conversion passes -------------------*- C++ -*-===//
#ifndef BALANCEKV_CONVERSION_PASSES_H
#define BALANCEKV_CONVERSION_PASSES_H

#include "balancekv/Dialect/TritonCompat/IR/Dialect.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace balancekv {

/// Largest `sm-count` the GPU lowering takes (it sizes grids by it).
constexpr int64_t kMaxSMCount = 1 << 16;

#define GEN_PASS_DECL
#include "balancekv/Conversion/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "balancekv/Conversion/Passes.h.inc"

} // namespace balancekv

#endif // BALANCEKV_CONVERSION_PASSES_H
