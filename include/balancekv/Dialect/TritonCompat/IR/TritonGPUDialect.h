//===- TritonGPUDialect.h - Triton 3.6 ttg and ttng, re-declared -*- C++ -*-===//
#ifndef BALANCEKV_DIALECT_TRITONCOMPAT_IR_TRITONGPUDIALECT_H
#define BALANCEKV_DIALECT_TRITONCOMPAT_IR_TRITONGPUDIALECT_H

#include "balancekv/Dialect/TritonCompat/IR/Dialect.h"

#include "balancekv/Dialect/TritonCompat/IR/TritonGPUDialect.h.inc"
#include "balancekv/Dialect/TritonCompat/IR/TritonNvidiaGPUDialect.h.inc"

#define GET_ATTRDEF_CLASSES
#include "balancekv/Dialect/TritonCompat/IR/TritonGPUAttrs.h.inc"
#define GET_TYPEDEF_CLASSES
#include "balancekv/Dialect/TritonCompat/IR/TritonGPUTypes.h.inc"

#define GET_OP_CLASSES
#include "balancekv/Dialect/TritonCompat/IR/TritonGPUOps.h.inc"

#endif // BALANCEKV_DIALECT_TRITONCOMPAT_IR_TRITONGPUDIALECT_H
