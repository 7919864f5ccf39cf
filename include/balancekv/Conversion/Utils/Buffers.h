//===- Buffers.h - tensor <-> buffer glue of the library lowerings -*- C++
//-*-===//
//
// The runtime-call and GPU lowerings replace a tensor op by code on buffers:
// operands become read-only buffers, freshly allocated results become
// tensors again, and one-shot bufferization folds the glue away.
//
//===----------------------------------------------------------------------===//
#ifndef BALANCEKV_CONVERSION_UTILS_BUFFERS_H
#define BALANCEKV_CONVERSION_UTILS_BUFFERS_H

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace balancekv {

/// A ranked tensor as a read-only buffer of the same shape (identity layout).
inline mlir::Value exactBuffer(mlir::ImplicitLocOpBuilder &b,
                               mlir::Value tensor) {
  auto t = mlir::cast<mlir::RankedTensorType>(tensor.getType());
  auto type = mlir::MemRefType::get(t.getShape(), t.getElementType());
  return mlir::bufferization::ToBufferOp::create(b, type, tensor,
                                                 b.getUnitAttr());
}

/// A buffer written by the lowering, handed back as the op's result tensor
/// (restrict: nothing else aliases it; writable: later ops may update it).
inline mlir::Value resultTensor(mlir::ImplicitLocOpBuilder &b, mlir::Value buf,
                                mlir::Type tensorType) {
  return mlir::bufferization::ToTensorOp::create(
      b, tensorType, buf, b.getUnitAttr(), b.getUnitAttr());
}

} // namespace balancekv

#endif // BALANCEKV_CONVERSION_UTILS_BUFFERS_H
