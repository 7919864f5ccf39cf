//===- RuntimeCallShim.h - implementing RuntimeCallABI.h's entries -*- C++
//-*-===//
//
// What the memref entry points (kernels/cuda/MemRefShim.cpp on the CUDA
// kernels, kernels/reference/ReferenceMemRef.cpp on the CPU reference) share:
// MLIR's ranked memref descriptor and the parameter lists generated from
// RuntimeCallABI.h's tables.
//
//===----------------------------------------------------------------------===//
#ifndef BALANCEKV_RUNTIME_RUNTIMECALLSHIM_H
#define BALANCEKV_RUNTIME_RUNTIMECALLSHIM_H

#include "balancekv/Runtime/RuntimeCallABI.h"

#include <cstdint>

namespace balancekv::shim {

/// MLIR's ranked memref descriptor of rank N, as `llvm.emit_c_interface`
/// passes it (mlir/ExecutionEngine/CRunnerUtils.h's StridedMemRefType; the
/// elements are only passed through, hence char).
template <int N> struct MemRef {
  char *basePtr;
  char *data;
  int64_t offset;
  int64_t sizes[N];
  int64_t strides[N];
};

template <int N> const void *start(const MemRef<N> *m, int elemSize) {
  return static_cast<const char *>(m->data) + m->offset * elemSize;
}

} // namespace balancekv::shim

// Parameter lists generated from RuntimeCallABI.h (the lowering builds its
// calls from the same tables).
#define BALANCEKV_ABI_MEMREF1 ::balancekv::shim::MemRef<1> *
#define BALANCEKV_ABI_MEMREF2 ::balancekv::shim::MemRef<2> *
#define BALANCEKV_ABI_MEMREF3 ::balancekv::shim::MemRef<3> *
#define BALANCEKV_ABI_MEMREF4 ::balancekv::shim::MemRef<4> *
#define BALANCEKV_ABI_I32 int32_t
#define BALANCEKV_ABI_I64 int64_t
#define BALANCEKV_ABI_F32 float
#define BALANCEKV_ABI_F64 double
// One more level so that a KIND given as a macro (RuntimeCallABI.h) expands.
#define BALANCEKV_ABI_PARAM(KIND, NAME) BALANCEKV_ABI_PARAM_(KIND, NAME)
#define BALANCEKV_ABI_PARAM_(KIND, NAME) , BALANCEKV_ABI_##KIND NAME
#define BALANCEKV_ABI_ARG(KIND, NAME) , NAME
#define BALANCEKV_ABI_DROP_FIRST(first, ...) __VA_ARGS__
#define BALANCEKV_ABI_APPLY(macro, ...) macro(__VA_ARGS__)
/// `TABLE`'s parameters as a declaration list / as call arguments.
#define BALANCEKV_ABI_PARAMS(TABLE)                                            \
  BALANCEKV_ABI_APPLY(BALANCEKV_ABI_DROP_FIRST, 0 TABLE(BALANCEKV_ABI_PARAM))
#define BALANCEKV_ABI_ARGS(TABLE)                                              \
  BALANCEKV_ABI_APPLY(BALANCEKV_ABI_DROP_FIRST, 0 TABLE(BALANCEKV_ABI_ARG))

#endif // BALANCEKV_RUNTIME_RUNTIMECALLSHIM_H
