// A front end's attention (torch-mlir / IREE style linalg, heads folded into
// the batch) through the whole chain: raise to balancekv.attention, rewrite
// into compress + weighted_attention, lower both to GPU kernels and launches.
// RUN: balancekv-opt %s --balancekv-raise-attention --balancekv-compress-kv-cache \
// RUN:   --balancekv-lower-to-gpu --canonicalize | FileCheck %s
// And down to PTX.
// REQUIRES: ptxas
// RUN: balancekv-opt %s --balancekv-raise-attention --balancekv-compress-kv-cache \
// RUN:   --balancekv-gpu-pipeline="format=isa" | FileCheck %s --check-prefix=ISA

// CHECK-LABEL: func.func @decode
// CHECK-NOT: linalg.batch_matmul
// CHECK-NOT: balancekv.
// CHECK: gpu.launch_func @balancekv_kernels::@balancekv_init_tokens
// CHECK: gpu.launch_func @balancekv_kernels::@balancekv_walk blocks in (%c16, %c1, %c8)
// CHECK: gpu.launch_func @balancekv_kernels::@balancekv_select
// CHECK: gpu.launch_func @balancekv_kernels::@balancekv_walk blocks in (%c8, %c1, %c8)
// CHECK: gpu.launch_func @balancekv_kernels::@balancekv_select
// CHECK: gpu.launch_func @balancekv_kernels::@balancekv_gather
// CHECK: gpu.launch_func @balancekv_kernels::@balancekv_decode_split
// CHECK: gpu.launch_func @balancekv_kernels::@balancekv_decode_combine
// CHECK: tensor.collapse_shape
// ISA: gpu.binary @balancekv_kernels
// ISA-NOT: balancekv.
func.func @decode(%q: tensor<8x1x64xf16>, %k: tensor<8x2112x64xf16>,
                  %v: tensor<8x2112x64xf16>) -> tensor<8x1x64xf16> {
  %zero = arith.constant 0.0 : f16
  %scale = arith.constant 0.125 : f16
  %kt0 = tensor.empty() : tensor<8x64x2112xf16>
  %kt = linalg.transpose ins(%k : tensor<8x2112x64xf16>) outs(%kt0 : tensor<8x64x2112xf16>) permutation = [0, 2, 1]
  %s0 = tensor.empty() : tensor<8x1x2112xf16>
  %sz = linalg.fill ins(%zero : f16) outs(%s0 : tensor<8x1x2112xf16>) -> tensor<8x1x2112xf16>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<8x1x64xf16>, tensor<8x64x2112xf16>) outs(%sz : tensor<8x1x2112xf16>) -> tensor<8x1x2112xf16>
  %ss = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>],
                        iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%s : tensor<8x1x2112xf16>) outs(%s0 : tensor<8x1x2112xf16>) {
  ^bb0(%in: f16, %out: f16):
    %m = arith.mulf %in, %scale : f16
    linalg.yield %m : f16
  } -> tensor<8x1x2112xf16>
  %p = linalg.softmax dimension(2) ins(%ss : tensor<8x1x2112xf16>) outs(%s0 : tensor<8x1x2112xf16>) -> tensor<8x1x2112xf16>
  %o0 = tensor.empty() : tensor<8x1x64xf16>
  %oz = linalg.fill ins(%zero : f16) outs(%o0 : tensor<8x1x64xf16>) -> tensor<8x1x64xf16>
  %o = linalg.batch_matmul ins(%p, %v : tensor<8x1x2112xf16>, tensor<8x2112x64xf16>) outs(%oz : tensor<8x1x64xf16>) -> tensor<8x1x64xf16>
  return %o : tensor<8x1x64xf16>
}
