//===- TensorMap.h - TMA tensor maps for the CUDA kernels ------*- C++ -*-===//
#ifndef BALANCEKV_KERNELS_CUDA_TENSORMAP_H
#define BALANCEKV_KERNELS_CUDA_TENSORMAP_H

#include "balancekv/Runtime/BalanceKVRuntime.h"

#include <cuda.h>
#include <cudaTypedefs.h>

namespace balancekv::cuda {

/// cuTensorMapEncodeTiled through the runtime (no libcuda link), or null
/// where the driver has none; looked up once.
PFN_cuTensorMapEncodeTiled_v12000 tensorMapEncoder();

/// The TMA element type of a 16-bit cache (the kernels map only f16 and
/// bf16 caches).
inline CUtensorMapDataType tensorMapDataType(balancekv_dtype dtype) {
  return dtype == BALANCEKV_DTYPE_BF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                       : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
}

} // namespace balancekv::cuda

#endif // BALANCEKV_KERNELS_CUDA_TENSORMAP_H
