// RUN: balancekv-opt %s --balancekv-raise-attention --split-input-file | FileCheck %s

// Heads folded into the batch (torch-mlir / IREE style): transpose +
// batch_matmul, scale multiply, linalg.softmax, batch_matmul.
// CHECK-LABEL: func.func @folded_heads_named_softmax
// CHECK-SAME: (%[[Q:.*]]: tensor<16x4x64xf32>, %[[K:.*]]: tensor<16x128x64xf32>, %[[V:.*]]: tensor<16x128x32xf32>)
// CHECK-DAG: %[[Q4:.*]] = tensor.expand_shape %[[Q]] {{\[\[}}0, 1], [2], [3]] output_shape [16, 1, 4, 64]
// CHECK-DAG: %[[K4:.*]] = tensor.expand_shape %[[K]] {{\[\[}}0, 1], [2], [3]] output_shape [16, 1, 128, 64]
// CHECK-DAG: %[[V4:.*]] = tensor.expand_shape %[[V]] {{\[\[}}0, 1], [2], [3]] output_shape [16, 1, 128, 32]
// CHECK: %[[A:.*]] = balancekv.attention %[[Q4]], %[[K4]], %[[V4]] scale(1.250000e-01) : tensor<16x1x4x64xf32>, tensor<16x1x128x64xf32>, tensor<16x1x128x32xf32> -> tensor<16x1x4x32xf32>
// CHECK: %[[R:.*]] = tensor.collapse_shape %[[A]] {{\[\[}}0, 1], [2], [3]]
// CHECK-NOT: linalg.softmax
// CHECK-NOT: linalg.batch_matmul
// CHECK: return %[[R]]
func.func @folded_heads_named_softmax(%q: tensor<16x4x64xf32>, %k: tensor<16x128x64xf32>,
                                      %v: tensor<16x128x32xf32>) -> tensor<16x4x32xf32> {
  %zero = arith.constant 0.0 : f32
  %scale = arith.constant 0.125 : f32
  %kt0 = tensor.empty() : tensor<16x64x128xf32>
  %kt = linalg.transpose ins(%k : tensor<16x128x64xf32>) outs(%kt0 : tensor<16x64x128xf32>) permutation = [0, 2, 1]
  %s0 = tensor.empty() : tensor<16x4x128xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<16x4x128xf32>) -> tensor<16x4x128xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<16x4x64xf32>, tensor<16x64x128xf32>) outs(%sz : tensor<16x4x128xf32>) -> tensor<16x4x128xf32>
  %ss = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>],
                        iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%s : tensor<16x4x128xf32>) outs(%s0 : tensor<16x4x128xf32>) {
  ^bb0(%in: f32, %out: f32):
    %m = arith.mulf %in, %scale : f32
    linalg.yield %m : f32
  } -> tensor<16x4x128xf32>
  %p = linalg.softmax dimension(2) ins(%ss : tensor<16x4x128xf32>) outs(%s0 : tensor<16x4x128xf32>) -> tensor<16x4x128xf32>
  %o0 = tensor.empty() : tensor<16x4x32xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<16x4x32xf32>) -> tensor<16x4x32xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<16x4x128xf32>, tensor<16x128x32xf32>) outs(%oz : tensor<16x4x32xf32>) -> tensor<16x4x32xf32>
  return %o : tensor<16x4x32xf32>
}

// -----

// [B, H, L, D] with generic contractions: Kᵀ in the indexing map, divide by
// sqrt(D), softmax decomposed as upstream decomposes linalg.softmax, and an
// additive causal mask (L = 4 queries at the end of N = 8 positions).
#qk_q = affine_map<(b, h, l, n, d) -> (b, h, l, d)>
#qk_k = affine_map<(b, h, l, n, d) -> (b, h, n, d)>
#qk_s = affine_map<(b, h, l, n, d) -> (b, h, l, n)>
#pv_p = affine_map<(b, h, l, dv, n) -> (b, h, l, n)>
#pv_v = affine_map<(b, h, l, dv, n) -> (b, h, n, dv)>
#pv_o = affine_map<(b, h, l, dv, n) -> (b, h, l, dv)>
#id = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#row = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#mask = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
// CHECK-LABEL: func.func @explicit_heads_decomposed_causal
// CHECK-SAME: (%[[Q:.*]]: tensor<2x4x4x16xf16>, %[[K:.*]]: tensor<2x4x8x16xf16>, %[[V:.*]]: tensor<2x4x8x16xf16>)
// CHECK: %[[A:.*]] = balancekv.attention %[[Q]], %[[K]], %[[V]] causal scale(2.500000e-01) : tensor<2x4x4x16xf16>, tensor<2x4x8x16xf16>, tensor<2x4x8x16xf16> -> tensor<2x4x4x16xf16>
// CHECK-NOT: math.exp
// CHECK: return %[[A]]
func.func @explicit_heads_decomposed_causal(%q: tensor<2x4x4x16xf16>, %k: tensor<2x4x8x16xf16>,
                                            %v: tensor<2x4x8x16xf16>) -> tensor<2x4x4x16xf16> {
  %zero = arith.constant 0.0 : f16
  %ninf = arith.constant 0xFC00 : f16
  %four = arith.constant 4.0 : f16
  %causal = arith.constant dense<[[0.0, 0.0, 0.0, 0.0, 0.0, -65504.0, -65504.0, -65504.0],
                                  [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -65504.0, -65504.0],
                                  [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -65504.0],
                                  [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<4x8xf16>
  %s0 = tensor.empty() : tensor<2x4x4x8xf16>
  %sz = linalg.fill ins(%zero : f16) outs(%s0 : tensor<2x4x4x8xf16>) -> tensor<2x4x4x8xf16>
  %s = linalg.generic {indexing_maps = [#qk_q, #qk_k, #qk_s],
                       iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %k : tensor<2x4x4x16xf16>, tensor<2x4x8x16xf16>) outs(%sz : tensor<2x4x4x8xf16>) {
  ^bb0(%a: f16, %b: f16, %acc: f16):
    %m = arith.mulf %a, %b : f16
    %r = arith.addf %acc, %m : f16
    linalg.yield %r : f16
  } -> tensor<2x4x4x8xf16>
  %ss = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%s : tensor<2x4x4x8xf16>) outs(%s0 : tensor<2x4x4x8xf16>) {
  ^bb0(%in: f16, %out: f16):
    %d = arith.divf %in, %four : f16
    linalg.yield %d : f16
  } -> tensor<2x4x4x8xf16>
  %sm = linalg.generic {indexing_maps = [#id, #mask, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%ss, %causal : tensor<2x4x4x8xf16>, tensor<4x8xf16>) outs(%s0 : tensor<2x4x4x8xf16>) {
  ^bb0(%in: f16, %mk: f16, %out: f16):
    %a = arith.addf %in, %mk : f16
    linalg.yield %a : f16
  } -> tensor<2x4x4x8xf16>
  %r0 = tensor.empty() : tensor<2x4x4xf16>
  %rmin = linalg.fill ins(%ninf : f16) outs(%r0 : tensor<2x4x4xf16>) -> tensor<2x4x4xf16>
  %max = linalg.generic {indexing_maps = [#id, #row], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%sm : tensor<2x4x4x8xf16>) outs(%rmin : tensor<2x4x4xf16>) {
  ^bb0(%in: f16, %out: f16):
    %m = arith.maxnumf %in, %out : f16
    linalg.yield %m : f16
  } -> tensor<2x4x4xf16>
  %e = linalg.generic {indexing_maps = [#id, #row, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%sm, %max : tensor<2x4x4x8xf16>, tensor<2x4x4xf16>) outs(%s0 : tensor<2x4x4x8xf16>) {
  ^bb0(%in: f16, %mx: f16, %out: f16):
    %d = arith.subf %in, %mx : f16
    %x = math.exp %d : f16
    linalg.yield %x : f16
  } -> tensor<2x4x4x8xf16>
  %rz = linalg.fill ins(%zero : f16) outs(%r0 : tensor<2x4x4xf16>) -> tensor<2x4x4xf16>
  %sum = linalg.generic {indexing_maps = [#id, #row], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%e : tensor<2x4x4x8xf16>) outs(%rz : tensor<2x4x4xf16>) {
  ^bb0(%in: f16, %out: f16):
    %a = arith.addf %in, %out : f16
    linalg.yield %a : f16
  } -> tensor<2x4x4xf16>
  %p = linalg.generic {indexing_maps = [#id, #row, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%e, %sum : tensor<2x4x4x8xf16>, tensor<2x4x4xf16>) outs(%s0 : tensor<2x4x4x8xf16>) {
  ^bb0(%in: f16, %z: f16, %out: f16):
    %d = arith.divf %in, %z : f16
    linalg.yield %d : f16
  } -> tensor<2x4x4x8xf16>
  %o0 = tensor.empty() : tensor<2x4x4x16xf16>
  %oz = linalg.fill ins(%zero : f16) outs(%o0 : tensor<2x4x4x16xf16>) -> tensor<2x4x4x16xf16>
  %o = linalg.generic {indexing_maps = [#pv_p, #pv_v, #pv_o],
                       iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %v : tensor<2x4x4x8xf16>, tensor<2x4x8x16xf16>) outs(%oz : tensor<2x4x4x16xf16>) {
  ^bb0(%a: f16, %b: f16, %acc: f16):
    %m = arith.mulf %a, %b : f16
    %r = arith.addf %acc, %m : f16
    linalg.yield %r : f16
  } -> tensor<2x4x4x16xf16>
  return %o : tensor<2x4x4x16xf16>
}

// -----

// GQA as repeat_kv: expand_shape + broadcast generic + collapse_shape of the
// KV heads; the scale is on Q. Attends to the un-repeated KV heads.
#qk_q = affine_map<(b, h, l, n, d) -> (b, h, l, d)>
#qk_k = affine_map<(b, h, l, n, d) -> (b, h, n, d)>
#qk_s = affine_map<(b, h, l, n, d) -> (b, h, l, n)>
#pv_p = affine_map<(b, h, l, dv, n) -> (b, h, l, n)>
#pv_v = affine_map<(b, h, l, dv, n) -> (b, h, n, dv)>
#pv_o = affine_map<(b, h, l, dv, n) -> (b, h, l, dv)>
#id4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#rep_in = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, 0, d3, d4)>
#rep_out = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3, d4)>
// CHECK-LABEL: func.func @gqa_repeat_kv
// CHECK-SAME: (%[[Q:.*]]: tensor<1x8x1x32xbf16>, %[[K:.*]]: tensor<1x2x64x32xbf16>, %[[V:.*]]: tensor<1x2x64x32xbf16>)
// CHECK: %[[A:.*]] = balancekv.attention %[[Q]], %[[K]], %[[V]] scale(0.176757813) : tensor<1x8x1x32xbf16>, tensor<1x2x64x32xbf16>, tensor<1x2x64x32xbf16> -> tensor<1x8x1x32xbf16>
// CHECK: return %[[A]]
func.func @gqa_repeat_kv(%q: tensor<1x8x1x32xbf16>, %k: tensor<1x2x64x32xbf16>,
                         %v: tensor<1x2x64x32xbf16>) -> tensor<1x8x1x32xbf16> {
  %zero = arith.constant 0.0 : bf16
  %scale = arith.constant dense<0.176776695> : tensor<1x8x1x32xbf16>
  %rep0 = tensor.empty() : tensor<1x2x4x64x32xbf16>
  %ke = tensor.expand_shape %k [[0], [1, 2], [3], [4]] output_shape [1, 2, 1, 64, 32] : tensor<1x2x64x32xbf16> into tensor<1x2x1x64x32xbf16>
  %kb = linalg.generic {indexing_maps = [#rep_in, #rep_out], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]}
      ins(%ke : tensor<1x2x1x64x32xbf16>) outs(%rep0 : tensor<1x2x4x64x32xbf16>) {
  ^bb0(%in: bf16, %out: bf16):
    linalg.yield %in : bf16
  } -> tensor<1x2x4x64x32xbf16>
  %kr = tensor.collapse_shape %kb [[0], [1, 2], [3], [4]] : tensor<1x2x4x64x32xbf16> into tensor<1x8x64x32xbf16>
  %vb = linalg.broadcast ins(%v : tensor<1x2x64x32xbf16>) outs(%rep0 : tensor<1x2x4x64x32xbf16>) dimensions = [2]
  %vr = tensor.collapse_shape %vb [[0], [1, 2], [3], [4]] : tensor<1x2x4x64x32xbf16> into tensor<1x8x64x32xbf16>
  %qe = tensor.empty() : tensor<1x8x1x32xbf16>
  %qs = linalg.mul ins(%q, %scale : tensor<1x8x1x32xbf16>, tensor<1x8x1x32xbf16>) outs(%qe : tensor<1x8x1x32xbf16>) -> tensor<1x8x1x32xbf16>
  %s0 = tensor.empty() : tensor<1x8x1x64xbf16>
  %sz = linalg.fill ins(%zero : bf16) outs(%s0 : tensor<1x8x1x64xbf16>) -> tensor<1x8x1x64xbf16>
  %s = linalg.generic {indexing_maps = [#qk_q, #qk_k, #qk_s],
                       iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%qs, %kr : tensor<1x8x1x32xbf16>, tensor<1x8x64x32xbf16>) outs(%sz : tensor<1x8x1x64xbf16>) {
  ^bb0(%a: bf16, %b: bf16, %acc: bf16):
    %m = arith.mulf %a, %b : bf16
    %r = arith.addf %acc, %m : bf16
    linalg.yield %r : bf16
  } -> tensor<1x8x1x64xbf16>
  %p = linalg.softmax dimension(3) ins(%s : tensor<1x8x1x64xbf16>) outs(%s0 : tensor<1x8x1x64xbf16>) -> tensor<1x8x1x64xbf16>
  %o0 = tensor.empty() : tensor<1x8x1x32xbf16>
  %oz = linalg.fill ins(%zero : bf16) outs(%o0 : tensor<1x8x1x32xbf16>) -> tensor<1x8x1x32xbf16>
  %o = linalg.generic {indexing_maps = [#pv_p, #pv_v, #pv_o],
                       iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %vr : tensor<1x8x1x64xbf16>, tensor<1x8x64x32xbf16>) outs(%oz : tensor<1x8x1x32xbf16>) {
  ^bb0(%a: bf16, %b: bf16, %acc: bf16):
    %m = arith.mulf %a, %b : bf16
    %r = arith.addf %acc, %m : bf16
    linalg.yield %r : bf16
  } -> tensor<1x8x1x32xbf16>
  return %o : tensor<1x8x1x32xbf16>
}

// -----

// One head with plain linalg.matmul and a Kᵀ the front end materialised
// without a transpose op: the pass inserts the transpose it needs.
// CHECK-LABEL: func.func @single_head_matmul
// CHECK-SAME: (%[[Q:.*]]: tensor<2x8xf32>, %[[KT:.*]]: tensor<8x10xf32>, %[[V:.*]]: tensor<10x4xf32>)
// CHECK: %[[K:.*]] = linalg.transpose ins(%[[KT]] : tensor<8x10xf32>) outs(%{{.*}} : tensor<10x8xf32>) permutation = [1, 0]
// CHECK-DAG: %[[Q4:.*]] = tensor.expand_shape %[[Q]] {{\[\[}}0, 1, 2], [3]] output_shape [1, 1, 2, 8]
// CHECK-DAG: %[[K4:.*]] = tensor.expand_shape %[[K]] {{\[\[}}0, 1, 2], [3]] output_shape [1, 1, 10, 8]
// CHECK: balancekv.attention %[[Q4]], %[[K4]], %{{.*}} scale(1.000000e+00) : tensor<1x1x2x8xf32>, tensor<1x1x10x8xf32>, tensor<1x1x10x4xf32> -> tensor<1x1x2x4xf32>
func.func @single_head_matmul(%q: tensor<2x8xf32>, %kt: tensor<8x10xf32>, %v: tensor<10x4xf32>) -> tensor<2x4xf32> {
  %zero = arith.constant 0.0 : f32
  %s0 = tensor.empty() : tensor<2x10xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<2x10xf32>) -> tensor<2x10xf32>
  %s = linalg.matmul ins(%q, %kt : tensor<2x8xf32>, tensor<8x10xf32>) outs(%sz : tensor<2x10xf32>) -> tensor<2x10xf32>
  %p = linalg.softmax dimension(1) ins(%s : tensor<2x10xf32>) outs(%s0 : tensor<2x10xf32>) -> tensor<2x10xf32>
  %o0 = tensor.empty() : tensor<2x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<2x4xf32>) -> tensor<2x4xf32>
  %o = linalg.matmul ins(%p, %v : tensor<2x10xf32>, tensor<10x4xf32>) outs(%oz : tensor<2x4xf32>) -> tensor<2x4xf32>
  return %o : tensor<2x4xf32>
}

// -----

// Negative: softmax over the query dim, not the key dim.
// CHECK-LABEL: func.func @softmax_wrong_dim
// CHECK-NOT: balancekv.attention
// CHECK: linalg.softmax dimension(1)
func.func @softmax_wrong_dim(%q: tensor<4x4x8xf32>, %kt: tensor<4x8x16xf32>, %v: tensor<4x16x8xf32>) -> tensor<4x4x8xf32> {
  %zero = arith.constant 0.0 : f32
  %s0 = tensor.empty() : tensor<4x4x16xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<4x4x16xf32>) -> tensor<4x4x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x4x8xf32>, tensor<4x8x16xf32>) outs(%sz : tensor<4x4x16xf32>) -> tensor<4x4x16xf32>
  %p = linalg.softmax dimension(1) ins(%s : tensor<4x4x16xf32>) outs(%s0 : tensor<4x4x16xf32>) -> tensor<4x4x16xf32>
  %o0 = tensor.empty() : tensor<4x4x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x4x16xf32>, tensor<4x16x8xf32>) outs(%oz : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
  return %o : tensor<4x4x8xf32>
}

// -----

// Negative: P·V accumulates into a non-zero tensor (a residual add).
// CHECK-LABEL: func.func @nonzero_accumulator
// CHECK-NOT: balancekv.attention
func.func @nonzero_accumulator(%q: tensor<4x4x8xf32>, %kt: tensor<4x8x16xf32>, %v: tensor<4x16x8xf32>,
                               %acc: tensor<4x4x8xf32>) -> tensor<4x4x8xf32> {
  %zero = arith.constant 0.0 : f32
  %s0 = tensor.empty() : tensor<4x4x16xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<4x4x16xf32>) -> tensor<4x4x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x4x8xf32>, tensor<4x8x16xf32>) outs(%sz : tensor<4x4x16xf32>) -> tensor<4x4x16xf32>
  %p = linalg.softmax dimension(2) ins(%s : tensor<4x4x16xf32>) outs(%s0 : tensor<4x4x16xf32>) -> tensor<4x4x16xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x4x16xf32>, tensor<4x16x8xf32>) outs(%acc : tensor<4x4x8xf32>) -> tensor<4x4x8xf32>
  return %o : tensor<4x4x8xf32>
}

// -----

// Negative: an additive mask that is not causal (a padding mask) is not
// dropped, so nothing is raised.
// CHECK-LABEL: func.func @non_causal_mask
// CHECK-NOT: balancekv.attention
func.func @non_causal_mask(%q: tensor<1x2x4xf32>, %kt: tensor<1x4x3xf32>, %v: tensor<1x3x4xf32>) -> tensor<1x2x4xf32> {
  %zero = arith.constant 0.0 : f32
  %mask = arith.constant dense<[[[0.0, -1.0e9, 0.0], [0.0, 0.0, 0.0]]]> : tensor<1x2x3xf32>
  %s0 = tensor.empty() : tensor<1x2x3xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<1x2x3xf32>) -> tensor<1x2x3xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<1x2x4xf32>, tensor<1x4x3xf32>) outs(%sz : tensor<1x2x3xf32>) -> tensor<1x2x3xf32>
  %sm = linalg.add ins(%s, %mask : tensor<1x2x3xf32>, tensor<1x2x3xf32>) outs(%s0 : tensor<1x2x3xf32>) -> tensor<1x2x3xf32>
  %p = linalg.softmax dimension(2) ins(%sm : tensor<1x2x3xf32>) outs(%s0 : tensor<1x2x3xf32>) -> tensor<1x2x3xf32>
  %o0 = tensor.empty() : tensor<1x2x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<1x2x3xf32>, tensor<1x3x4xf32>) outs(%oz : tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
  return %o : tensor<1x2x4xf32>
}

// -----

// Negative: normalised exp without the max subtraction is not the softmax
// we raise (and the sum-reduce feeds a different tensor).
#id = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#row = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @softmax_without_max
// CHECK-NOT: balancekv.attention
func.func @softmax_without_max(%q: tensor<1x2x4xf32>, %kt: tensor<1x4x3xf32>, %v: tensor<1x3x4xf32>) -> tensor<1x2x4xf32> {
  %zero = arith.constant 0.0 : f32
  %s0 = tensor.empty() : tensor<1x2x3xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<1x2x3xf32>) -> tensor<1x2x3xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<1x2x4xf32>, tensor<1x4x3xf32>) outs(%sz : tensor<1x2x3xf32>) -> tensor<1x2x3xf32>
  %e = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%s : tensor<1x2x3xf32>) outs(%s0 : tensor<1x2x3xf32>) {
  ^bb0(%in: f32, %out: f32):
    %x = math.exp %in : f32
    linalg.yield %x : f32
  } -> tensor<1x2x3xf32>
  %r0 = tensor.empty() : tensor<1x2xf32>
  %rz = linalg.fill ins(%zero : f32) outs(%r0 : tensor<1x2xf32>) -> tensor<1x2xf32>
  %sum = linalg.generic {indexing_maps = [#id, #row], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%e : tensor<1x2x3xf32>) outs(%rz : tensor<1x2xf32>) {
  ^bb0(%in: f32, %out: f32):
    %a = arith.addf %in, %out : f32
    linalg.yield %a : f32
  } -> tensor<1x2xf32>
  %p = linalg.generic {indexing_maps = [#id, #row, #id], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%e, %sum : tensor<1x2x3xf32>, tensor<1x2xf32>) outs(%s0 : tensor<1x2x3xf32>) {
  ^bb0(%in: f32, %z: f32, %out: f32):
    %d = arith.divf %in, %z : f32
    linalg.yield %d : f32
  } -> tensor<1x2x3xf32>
  %o0 = tensor.empty() : tensor<1x2x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<1x2x3xf32>, tensor<1x3x4xf32>) outs(%oz : tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
  return %o : tensor<1x2x4xf32>
}

// -----

// Negative: a plain matmul chain without softmax.
// CHECK-LABEL: func.func @no_softmax
// CHECK-NOT: balancekv.attention
func.func @no_softmax(%a: tensor<2x8xf32>, %b: tensor<8x10xf32>, %c: tensor<10x4xf32>) -> tensor<2x4xf32> {
  %zero = arith.constant 0.0 : f32
  %s0 = tensor.empty() : tensor<2x10xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<2x10xf32>) -> tensor<2x10xf32>
  %s = linalg.matmul ins(%a, %b : tensor<2x8xf32>, tensor<8x10xf32>) outs(%sz : tensor<2x10xf32>) -> tensor<2x10xf32>
  %o0 = tensor.empty() : tensor<2x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<2x4xf32>) -> tensor<2x4xf32>
  %o = linalg.matmul ins(%s, %c : tensor<2x10xf32>, tensor<10x4xf32>) outs(%oz : tensor<2x4xf32>) -> tensor<2x4xf32>
  return %o : tensor<2x4xf32>
}

// -----

// Splat masks are read in O(1), whatever their size (a 1e10-element splat was
// walked element by element: > 30 s). A zero splat with one query masks
// nothing, which is causal; with several queries it is not.
// CHECK-LABEL: func.func @huge_splat_zero_mask_one_query
// CHECK: balancekv.attention
// CHECK-SAME: causal
func.func @huge_splat_zero_mask_one_query(%q: tensor<100000x1x4xf32>, %kt: tensor<100000x4x100000xf32>, %v: tensor<100000x100000x4xf32>) -> tensor<100000x1x4xf32> {
  %zero = arith.constant 0.0 : f32
  %mask = arith.constant dense<0.0> : tensor<100000x1x100000xf32>
  %s0 = tensor.empty() : tensor<100000x1x100000xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<100000x1x100000xf32>) -> tensor<100000x1x100000xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<100000x1x4xf32>, tensor<100000x4x100000xf32>) outs(%sz : tensor<100000x1x100000xf32>) -> tensor<100000x1x100000xf32>
  %sm = linalg.add ins(%s, %mask : tensor<100000x1x100000xf32>, tensor<100000x1x100000xf32>) outs(%s0 : tensor<100000x1x100000xf32>) -> tensor<100000x1x100000xf32>
  %p = linalg.softmax dimension(2) ins(%sm : tensor<100000x1x100000xf32>) outs(%s0 : tensor<100000x1x100000xf32>) -> tensor<100000x1x100000xf32>
  %o0 = tensor.empty() : tensor<100000x1x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<100000x1x4xf32>) -> tensor<100000x1x4xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<100000x1x100000xf32>, tensor<100000x100000x4xf32>) outs(%oz : tensor<100000x1x4xf32>) -> tensor<100000x1x4xf32>
  return %o : tensor<100000x1x4xf32>
}

// -----

// CHECK-LABEL: func.func @huge_splat_zero_mask_two_queries
// CHECK-NOT: balancekv.attention
func.func @huge_splat_zero_mask_two_queries(%q: tensor<100000x2x4xf32>, %kt: tensor<100000x4x100000xf32>, %v: tensor<100000x100000x4xf32>) -> tensor<100000x2x4xf32> {
  %zero = arith.constant 0.0 : f32
  %mask = arith.constant dense<0.0> : tensor<100000x2x100000xf32>
  %s0 = tensor.empty() : tensor<100000x2x100000xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<100000x2x100000xf32>) -> tensor<100000x2x100000xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<100000x2x4xf32>, tensor<100000x4x100000xf32>) outs(%sz : tensor<100000x2x100000xf32>) -> tensor<100000x2x100000xf32>
  %sm = linalg.add ins(%s, %mask : tensor<100000x2x100000xf32>, tensor<100000x2x100000xf32>) outs(%s0 : tensor<100000x2x100000xf32>) -> tensor<100000x2x100000xf32>
  %p = linalg.softmax dimension(2) ins(%sm : tensor<100000x2x100000xf32>) outs(%s0 : tensor<100000x2x100000xf32>) -> tensor<100000x2x100000xf32>
  %o0 = tensor.empty() : tensor<100000x2x4xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<100000x2x4xf32>) -> tensor<100000x2x4xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<100000x2x100000xf32>, tensor<100000x100000x4xf32>) outs(%oz : tensor<100000x2x4xf32>) -> tensor<100000x2x4xf32>
  return %o : tensor<100000x2x4xf32>
}

// -----

// torch-mlir's tm_tensor.attention (SDPA with a mask): a KV-cache causal
// mask (key j <= N - L + i) becomes `causal`; the scale is 1/sqrt(D); [B*H]
// folded from [B, H] is unfolded.
// CHECK-LABEL: func.func @tm_tensor_causal
// CHECK-SAME: (%[[Q:.*]]: tensor<1x2x2x16xf32>, %[[K:.*]]: tensor<1x2x4x16xf32>, %[[V:.*]]: tensor<1x2x4x8xf32>)
// CHECK: %[[A:.*]] = balancekv.attention %[[Q]], %[[K]], %[[V]] causal scale(2.500000e-01) : tensor<1x2x2x16xf32>, tensor<1x2x4x16xf32>, tensor<1x2x4x8xf32> -> tensor<1x2x2x8xf32>
// CHECK: return %[[A]]
func.func @tm_tensor_causal(%q: tensor<1x2x2x16xf32>, %k: tensor<1x2x4x16xf32>, %v: tensor<1x2x4x8xf32>) -> tensor<1x2x2x8xf32> {
  %mask = arith.constant dense<[[[0.0, 0.0, 0.0, 0xFF800000], [0.0, 0.0, 0.0, 0.0]],
                                [[0.0, 0.0, 0.0, 0xFF800000], [0.0, 0.0, 0.0, 0.0]]]> : tensor<2x2x4xf32>
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : tensor<1x2x2x16xf32> into tensor<2x2x16xf32>
  %k3 = tensor.collapse_shape %k [[0, 1], [2], [3]] : tensor<1x2x4x16xf32> into tensor<2x4x16xf32>
  %v3 = tensor.collapse_shape %v [[0, 1], [2], [3]] : tensor<1x2x4x8xf32> into tensor<2x4x8xf32>
  %init = tensor.empty() : tensor<2x2x8xf32>
  %o = tm_tensor.attention ins(%q3, %k3, %v3, %mask : tensor<2x2x16xf32>, tensor<2x4x16xf32>, tensor<2x4x8xf32>, tensor<2x2x4xf32>) outs(%init : tensor<2x2x8xf32>) -> tensor<2x2x8xf32>
  %o4 = tensor.expand_shape %o [[0, 1], [2], [3]] output_shape [1, 2, 2, 8] : tensor<2x2x8xf32> into tensor<1x2x2x8xf32>
  return %o4 : tensor<1x2x2x8xf32>
}

// -----

// SDPA's top-left causal mask (key j <= i) with L < N is a different mask:
// left alone.
// CHECK-LABEL: func.func @tm_tensor_top_left_mask
// CHECK: tm_tensor.attention
// CHECK-NOT: balancekv.attention
func.func @tm_tensor_top_left_mask(%q: tensor<2x2x16xf32>, %k: tensor<2x4x16xf32>, %v: tensor<2x4x8xf32>) -> tensor<2x2x8xf32> {
  %mask = arith.constant dense<[[[0.0, 0xFF800000, 0xFF800000, 0xFF800000], [0.0, 0.0, 0xFF800000, 0xFF800000]],
                                [[0.0, 0xFF800000, 0xFF800000, 0xFF800000], [0.0, 0.0, 0xFF800000, 0xFF800000]]]> : tensor<2x2x4xf32>
  %init = tensor.empty() : tensor<2x2x8xf32>
  %o = tm_tensor.attention ins(%q, %k, %v, %mask : tensor<2x2x16xf32>, tensor<2x4x16xf32>, tensor<2x4x8xf32>, tensor<2x2x4xf32>) outs(%init : tensor<2x2x8xf32>) -> tensor<2x2x8xf32>
  return %o : tensor<2x2x8xf32>
}
