//===- LoopBuilder.h - terse tensor/scf/linalg IR building ------*- C++ -*-===//
//
// Header-only helpers of the linalg/scf lowerings (the attention
// decomposition and the compress lowering): constants, scf.for with
// iter_args and linalg.generic with an ImplicitLocOpBuilder body.
//
//===----------------------------------------------------------------------===//
#ifndef BALANCEKV_SUPPORT_LOOPBUILDER_H
#define BALANCEKV_SUPPORT_LOOPBUILDER_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

#include <functional>

namespace balancekv::loops {

using mlir::ImplicitLocOpBuilder;
using mlir::Value;
using mlir::ValueRange;

using BodyFn = std::function<llvm::SmallVector<Value>(ImplicitLocOpBuilder &,
                                                      ValueRange)>;
using LoopFn = std::function<llvm::SmallVector<Value>(
    ImplicitLocOpBuilder &, Value iv, ValueRange iterArgs)>;

inline Value cIdx(ImplicitLocOpBuilder &b, int64_t v) {
  return mlir::arith::ConstantIndexOp::create(b, v);
}
inline Value cF(ImplicitLocOpBuilder &b, mlir::Type t, double v) {
  auto ft = mlir::cast<mlir::FloatType>(t);
  llvm::APFloat f(v);
  bool lost;
  f.convert(ft.getFloatSemantics(), llvm::APFloat::rmNearestTiesToEven, &lost);
  return mlir::arith::ConstantFloatOp::create(b, ft, f);
}

/// Widens a float to `t` (no-op when equal).
inline Value widen(ImplicitLocOpBuilder &b, Value v, mlir::Type t) {
  return v.getType() == t ? v : mlir::arith::ExtFOp::create(b, t, v).getResult();
}

/// scf.for (iv = lb; iv < ub; iv += step) with iter_args; returns the
/// loop's results.
inline llvm::SmallVector<Value> forStep(ImplicitLocOpBuilder &b, Value lb,
                                        Value ub, int64_t step,
                                        ValueRange inits, const LoopFn &body) {
  auto loop = mlir::scf::ForOp::create(
      b, lb, ub, cIdx(b, step), inits,
      [&](mlir::OpBuilder &nb, mlir::Location loc, Value iv, ValueRange args) {
        ImplicitLocOpBuilder ib(loc, nb);
        mlir::scf::YieldOp::create(ib, body(ib, iv, args));
      });
  return llvm::SmallVector<Value>(loop.getResults());
}

/// scf.for lb..ub step 1 with iter_args; returns the loop's results.
inline llvm::SmallVector<Value> forLoop(ImplicitLocOpBuilder &b, Value lb,
                                        Value ub, ValueRange inits,
                                        const LoopFn &body) {
  return forStep(b, lb, ub, 1, inits, body);
}

/// linalg.generic over `outs`; `iters` uses 'p'/'r' per loop.
inline llvm::SmallVector<Value>
generic(ImplicitLocOpBuilder &b, ValueRange ins, ValueRange outs,
        llvm::ArrayRef<mlir::AffineMap> maps, llvm::StringRef iters,
        const BodyFn &body) {
  llvm::SmallVector<mlir::utils::IteratorType> it;
  for (char c : iters)
    it.push_back(c == 'r' ? mlir::utils::IteratorType::reduction
                          : mlir::utils::IteratorType::parallel);
  auto g = mlir::linalg::GenericOp::create(
      b, mlir::TypeRange(outs), ins, outs, maps, it,
      [&](mlir::OpBuilder &nb, mlir::Location loc, ValueRange args) {
        ImplicitLocOpBuilder ib(loc, nb);
        mlir::linalg::YieldOp::create(ib, body(ib, args));
      });
  return llvm::SmallVector<Value>(g.getResults());
}

/// A tensor of `shape` (mixed static/dynamic) filled with `value`.
inline Value filled(ImplicitLocOpBuilder &b,
                    llvm::ArrayRef<mlir::OpFoldResult> shape, Value value) {
  Value empty = mlir::tensor::EmptyOp::create(b, shape, value.getType());
  return mlir::linalg::FillOp::create(b, value, empty).getResult(0);
}

/// Dimension `d` of ranked tensor `v` as its type states it: a constant
/// where the type is static, else a `tensor.dim` (not folded through a
/// `tensor.cast`, so that result types built from these sizes agree with the
/// operand types they are views of).
inline mlir::OpFoldResult typedSize(ImplicitLocOpBuilder &b, Value v,
                                    int64_t d) {
  auto type = mlir::cast<mlir::RankedTensorType>(v.getType());
  if (!type.isDynamicDim(d))
    return b.getIndexAttr(type.getDimSize(d));
  return mlir::tensor::DimOp::create(b, v, d).getResult();
}

inline Value linalgIndex(ImplicitLocOpBuilder &b, int64_t dim) {
  return mlir::linalg::IndexOp::create(b, dim);
}

} // namespace balancekv::loops

#endif // BALANCEKV_SUPPORT_LOOPBUILDER_H
