// Gathers the kernels do not read in place: on host buffers they are
// materialised and the dense calls read them; with device buffers
// (device-alloc) that would be a host loop over device memory, so it is an
// error.
// RUN: balancekv-opt %s --balancekv-lower-to-runtime-calls --split-input-file | FileCheck %s
// RUN: not balancekv-opt %s --balancekv-lower-to-runtime-calls=device-alloc=true --split-input-file 2>&1 | FileCheck %s --check-prefix=DEV

// Key and value through different tables: not one paged cache.
// CHECK-LABEL: func.func @two_tables
// CHECK: linalg.generic
// CHECK: tensor.extract
// CHECK: linalg.generic
// CHECK: call @balancekv_rt_weighted_decode_f16(
// CHECK-NOT: balancekv.gather_pages
// DEV: :[[@LINE+3]]:8: error: 'balancekv.gather_pages' op is not read in place by the CUDA kernels (they read the key and value of compress, attention or weighted_attention gathered through one block table, with one pool layout and a power-of-two page size up to 1024), and with device buffers (device-alloc) there is no gather for it
func.func @two_tables(%q: tensor<1x4x1x64xf16>, %pool: tensor<8x16x2x64xf16>,
                      %t1: tensor<1x4xi32>, %t2: tensor<1x4xi32>) -> tensor<1x4x1x64xf16> {
  %k = balancekv.gather_pages %pool, %t1 : tensor<8x16x2x64xf16>, tensor<1x4xi32> -> tensor<1x2x64x64xf16>
  // DEV: :[[@LINE+1]]:8: error: 'balancekv.gather_pages' op is not read in place
  %v = balancekv.gather_pages %pool, %t2 : tensor<8x16x2x64xf16>, tensor<1x4xi32> -> tensor<1x2x64x64xf16>
  %o = balancekv.attention %q, %k, %v
      : tensor<1x4x1x64xf16>, tensor<1x2x64x64xf16>, tensor<1x2x64x64xf16> -> tensor<1x4x1x64xf16>
  return %o : tensor<1x4x1x64xf16>
}

// -----

// A gathered cache returned, not read by a kernel.
// CHECK-LABEL: func.func @returned
// CHECK: linalg.generic
// DEV: :[[@LINE+2]]:8: error: 'balancekv.gather_pages' op is not read in place
func.func @returned(%pool: tensor<8x16x2x64xf16>, %t: tensor<1x4xi32>) -> tensor<1x2x64x64xf16> {
  %k = balancekv.gather_pages %pool, %t : tensor<8x16x2x64xf16>, tensor<1x4xi32> -> tensor<1x2x64x64xf16>
  return %k : tensor<1x2x64x64xf16>
}

// -----

// Read in place as key and value, and also returned: the return needs the
// gather.
// CHECK-LABEL: func.func @also_returned
// CHECK: linalg.generic
// CHECK: call @balancekv_rt_weighted_decode_paged_f16(
// DEV: :[[@LINE+3]]:8: error: 'balancekv.gather_pages' op is not read in place
func.func @also_returned(%q: tensor<1x4x1x64xf16>, %pool: tensor<8x16x2x64xf16>,
                         %t: tensor<1x4xi32>) -> (tensor<1x4x1x64xf16>, tensor<1x2x64x64xf16>) {
  %k = balancekv.gather_pages %pool, %t : tensor<8x16x2x64xf16>, tensor<1x4xi32> -> tensor<1x2x64x64xf16>
  %o = balancekv.attention %q, %k, %k
      : tensor<1x4x1x64xf16>, tensor<1x2x64x64xf16>, tensor<1x2x64x64xf16> -> tensor<1x4x1x64xf16>
  return %o, %k : tensor<1x4x1x64xf16>, tensor<1x2x64x64xf16>
}
