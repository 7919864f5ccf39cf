//===- TensorMap.h - TMA tensor maps for the CUDA kernels ------*- C++ -*-===//
#ifndef BALANCEKV_KERNELS_CUDA_TENSORMAP_H
#define BALANCEKV_KERNELS_CUDA_TENSORMAP_H

#include <cuda.h>
#include <cudaTypedefs.h>

namespace balancekv::cuda {

/// cuTensorMapEncodeTiled through the runtime (no libcuda link), or null
/// where the driver has none; looked up once.
PFN_cuTensorMapEncodeTiled_v12000 tensorMapEncoder();

} // namespace balancekv::cuda

#endif // BALANCEKV_KERNELS_CUDA_TENSORMAP_H
