// RUN: balancekv-opt %s --balancekv-normalize-attention --split-input-file --mlir-print-local-scope | FileCheck %s

// Heads folded into the batch around batch_matmul (as torch-mlir and IREE's
// StableHLO input emit it): the contraction becomes one over [B, H], the
// transpose of K a map of it.
// CHECK-LABEL: func.func @unfold_heads
// CHECK-SAME: (%[[Q:.*]]: tensor<2x4x3x16xf32>, %[[K:.*]]: tensor<2x4x10x16xf32>)
// CHECK-NOT: tensor.collapse_shape
// CHECK-NOT: tensor.expand_shape
// CHECK: linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d4)>, affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d3, d4)>, affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3)>]
// CHECK-SAME: ins(%[[Q]], %[[K]] : tensor<2x4x3x16xf32>, tensor<2x4x10x16xf32>)
// CHECK: return %{{.*}} : tensor<2x4x3x10xf32>
func.func @unfold_heads(%q: tensor<2x4x3x16xf32>, %k: tensor<2x4x10x16xf32>) -> tensor<2x4x3x10xf32> {
  %cst = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<2x4x16x10xf32>
  %kt = linalg.transpose ins(%k : tensor<2x4x10x16xf32>) outs(%e : tensor<2x4x16x10xf32>) permutation = [0, 1, 3, 2]
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<2x4x3x16xf32> into tensor<8x3x16xf32>
  %k3 = tensor.collapse_shape %kt [[0, 1], [2], [3]] : tensor<2x4x16x10xf32> into tensor<8x16x10xf32>
  %i = tensor.empty() : tensor<8x3x10xf32>
  %z = linalg.fill ins(%cst : f32) outs(%i : tensor<8x3x10xf32>) -> tensor<8x3x10xf32>
  %s = linalg.batch_matmul ins(%q3, %k3 : tensor<8x3x16xf32>, tensor<8x16x10xf32>) outs(%z : tensor<8x3x10xf32>) -> tensor<8x3x10xf32>
  %s4 = tensor.expand_shape %s [[0, 1], [2], [3]] output_shape [2, 4, 3, 10] : tensor<8x3x10xf32> into tensor<2x4x3x10xf32>
  return %s4 : tensor<2x4x3x10xf32>
}

// -----

// A keepdim reduction re-expanded with a unit dim ([B, H, L] -> [B, H, L, 1],
// PyTorch's amax(keepdim=True)) is read directly; the broadcast becomes the
// row map of the subtraction.
// CHECK-LABEL: func.func @keepdim
// CHECK-NOT: tensor.expand_shape
// CHECK: %[[MAX:.*]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "parallel", "reduction"]
// CHECK: linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>]
// CHECK-SAME: ins(%{{.*}}, %[[MAX]] : tensor<1x2x3x8xf32>, tensor<1x2x3xf32>)
// CHECK: arith.subf
#id = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#row = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#keep = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
func.func @keepdim(%x: tensor<1x2x3x8xf32>) -> tensor<1x2x3x8xf32> {
  %ninf = arith.constant 0xFF800000 : f32
  %e = tensor.empty() : tensor<1x2x3xf32>
  %f = linalg.fill ins(%ninf : f32) outs(%e : tensor<1x2x3xf32>) -> tensor<1x2x3xf32>
  %m = linalg.generic {indexing_maps = [#id, #row], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x : tensor<1x2x3x8xf32>) outs(%f : tensor<1x2x3xf32>) {
  ^bb0(%in: f32, %out: f32):
    %r = arith.maximumf %in, %out : f32
    linalg.yield %r : f32
  } -> tensor<1x2x3xf32>
  %m4 = tensor.expand_shape %m [[0], [1], [2, 3]] output_shape [1, 2, 3, 1] : tensor<1x2x3xf32> into tensor<1x2x3x1xf32>
  %o = tensor.empty() : tensor<1x2x3x8xf32>
  %d = linalg.generic {indexing_maps = [#id, #keep, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%x, %m4 : tensor<1x2x3x8xf32>, tensor<1x2x3x1xf32>) outs(%o : tensor<1x2x3x8xf32>) {
  ^bb0(%a: f32, %b: f32, %out: f32):
    %r = arith.subf %a, %b : f32
    linalg.yield %r : f32
  } -> tensor<1x2x3x8xf32>
  return %d : tensor<1x2x3x8xf32>
}

// -----

// Data movement only is fused: a broadcast disappears into its consumer,
// arithmetic (the exp) is not duplicated into two consumers.
// CHECK-LABEL: func.func @fuse_data_movement_only
// CHECK-COUNT-1: math.exp
// CHECK-NOT: math.exp
// CHECK: return
#b = affine_map<(d0, d1) -> (d0)>
#i2 = affine_map<(d0, d1) -> (d0, d1)>
func.func @fuse_data_movement_only(%r: tensor<4xf32>, %x: tensor<4x8xf32>) -> (tensor<4x8xf32>, tensor<4x8xf32>) {
  %e = tensor.empty() : tensor<4x8xf32>
  %bc = linalg.generic {indexing_maps = [#b, #i2], iterator_types = ["parallel", "parallel"]} ins(%r : tensor<4xf32>) outs(%e : tensor<4x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  } -> tensor<4x8xf32>
  %ex = linalg.generic {indexing_maps = [#i2, #i2], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<4x8xf32>) outs(%e : tensor<4x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %v = math.exp %in : f32
    linalg.yield %v : f32
  } -> tensor<4x8xf32>
  %a = linalg.generic {indexing_maps = [#i2, #i2, #i2], iterator_types = ["parallel", "parallel"]} ins(%ex, %bc : tensor<4x8xf32>, tensor<4x8xf32>) outs(%e : tensor<4x8xf32>) {
  ^bb0(%p: f32, %q: f32, %out: f32):
    %v = arith.subf %p, %q : f32
    linalg.yield %v : f32
  } -> tensor<4x8xf32>
  %m = linalg.generic {indexing_maps = [#i2, #i2, #i2], iterator_types = ["parallel", "parallel"]} ins(%ex, %bc : tensor<4x8xf32>, tensor<4x8xf32>) outs(%e : tensor<4x8xf32>) {
  ^bb0(%p: f32, %q: f32, %out: f32):
    %v = arith.mulf %p, %q : f32
    linalg.yield %v : f32
  } -> tensor<4x8xf32>
  return %a, %m : tensor<4x8xf32>, tensor<4x8xf32>
}

// -----

// A reshape that only moves unit dims (jax.nn.dot_product_attention's
// collapse to 1-D and re-expansion) becomes a copy, which fuses into its
// consumer as a map: non-unit dims in order, unit dims onto the result's
// unit dims, extra ones 0.
// CHECK-LABEL: func.func @unit_dim_shuffle
// CHECK-SAME: (%[[X:.*]]: tensor<1x8x1x1x512xf32>)
// CHECK-NOT: tensor.collapse_shape
// CHECK-NOT: tensor.expand_shape
// CHECK: linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d2, d0, 0, 0, d1)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>]
// CHECK-SAME: ins(%[[X]] : tensor<1x8x1x1x512xf32>)
// CHECK: math.exp
// CHECK: return %{{.*}} : tensor<8x512x1xf32>
func.func @unit_dim_shuffle(%x: tensor<1x8x1x1x512xf32>) -> tensor<8x512x1xf32> {
  %flat = tensor.collapse_shape %x [[0, 1, 2, 3, 4]] : tensor<1x8x1x1x512xf32> into tensor<4096xf32>
  %y = tensor.expand_shape %flat [[0, 1, 2]] output_shape [8, 512, 1] : tensor<4096xf32> into tensor<8x512x1xf32>
  %e = tensor.empty() : tensor<8x512x1xf32>
  %r = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%y : tensor<8x512x1xf32>) outs(%e : tensor<8x512x1xf32>) {
  ^bb0(%a: f32, %o: f32):
    %z = math.exp %a : f32
    linalg.yield %z : f32
  } -> tensor<8x512x1xf32>
  return %r : tensor<8x512x1xf32>
}
