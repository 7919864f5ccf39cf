// RUN: balancekv-opt %s --canonicalize --split-input-file | FileCheck %s

// rounds = 0 keeps every token with weight 1: k, v and zero log-weights.
// CHECK-LABEL: func.func @zero_rounds_static
// CHECK-SAME: (%[[K:.*]]: tensor<1x2x100x16xf32>, %[[V:.*]]: tensor<1x2x100x8xf32>)
// CHECK-NOT: balancekv.compress
// CHECK: %[[Z:.*]] = arith.constant dense<0.000000e+00> : tensor<1x2x100xf32>
// CHECK: return %[[K]], %[[V]], %[[Z]]
func.func @zero_rounds_static(%k: tensor<1x2x100x16xf32>, %v: tensor<1x2x100x8xf32>)
    -> (tensor<1x2x100x16xf32>, tensor<1x2x100x8xf32>, tensor<1x2x100xf32>) {
  %ck, %cv, %lw = balancekv.compress %k, %v <method = uniform, rounds = 0>
      : tensor<1x2x100x16xf32>, tensor<1x2x100x8xf32>
  return %ck, %cv, %lw : tensor<1x2x100x16xf32>, tensor<1x2x100x8xf32>, tensor<1x2x100xf32>
}

// -----

// CHECK-LABEL: func.func @zero_rounds_dynamic
// CHECK-SAME: (%[[K:.*]]: tensor<?x2x?x16xf16>, %[[V:.*]]: tensor<?x2x?x16xf16>)
// CHECK-DAG: %[[C0:.*]] = arith.constant 0 : index
// CHECK-DAG: %[[C2:.*]] = arith.constant 2 : index
// CHECK-DAG: %[[B:.*]] = tensor.dim %[[K]], %[[C0]]
// CHECK-DAG: %[[N:.*]] = tensor.dim %[[K]], %[[C2]]
// CHECK: %[[E:.*]] = tensor.empty(%[[B]], %[[N]]) : tensor<?x2x?xf32>
// CHECK: %[[Z:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%[[E]] : tensor<?x2x?xf32>)
// CHECK: return %[[K]], %[[V]], %[[Z]]
func.func @zero_rounds_dynamic(%k: tensor<?x2x?x16xf16>, %v: tensor<?x2x?x16xf16>)
    -> (tensor<?x2x?x16xf16>, tensor<?x2x?x16xf16>, tensor<?x2x?xf32>) {
  %ck, %cv, %lw = balancekv.compress %k, %v <rounds = 0>
      : tensor<?x2x?x16xf16>, tensor<?x2x?x16xf16>
  return %ck, %cv, %lw : tensor<?x2x?x16xf16>, tensor<?x2x?x16xf16>, tensor<?x2x?xf32>
}

// -----

// Compression with rounds > 0 stays.
// CHECK-LABEL: func.func @nonzero_rounds_kept
// CHECK: balancekv.compress
func.func @nonzero_rounds_kept(%k: tensor<1x2x100x16xf32>, %v: tensor<1x2x100x8xf32>)
    -> tensor<1x2x?xf32> {
  %ck, %cv, %lw = balancekv.compress %k, %v <rounds = 1>
      : tensor<1x2x100x16xf32>, tensor<1x2x100x8xf32>
  %c = tensor.cast %lw : tensor<1x2x82xf32> to tensor<1x2x?xf32>
  return %c : tensor<1x2x?xf32>
}

// -----

// weighted_attention over zero log-weights is attention; attributes carry over.
// CHECK-LABEL: func.func @zero_log_weights
// CHECK-NOT: balancekv.weighted_attention
// CHECK: balancekv.attention %{{.*}}, %{{.*}}, %{{.*}} causal scale(5.000000e-01)
func.func @zero_log_weights(%q: tensor<1x4x1x16xf32>, %k: tensor<1x2x10x16xf32>,
                            %v: tensor<1x2x10x8xf32>) -> tensor<1x4x1x8xf32> {
  %w = arith.constant dense<0.0> : tensor<1x2x10xf32>
  %o = balancekv.weighted_attention %q, %k, %v, %w causal scale(0.5)
      : tensor<1x4x1x16xf32>, tensor<1x2x10x16xf32>, tensor<1x2x10x8xf32>, tensor<1x2x10xf32>
      -> tensor<1x4x1x8xf32>
  return %o : tensor<1x4x1x8xf32>
}

// -----

// Non-zero log-weights are kept.
// CHECK-LABEL: func.func @nonzero_log_weights
// CHECK: balancekv.weighted_attention
func.func @nonzero_log_weights(%q: tensor<1x4x1x16xf32>, %k: tensor<1x2x10x16xf32>,
                               %v: tensor<1x2x10x8xf32>) -> tensor<1x4x1x8xf32> {
  %w = arith.constant dense<0.693147182> : tensor<1x2x10xf32>
  %o = balancekv.weighted_attention %q, %k, %v, %w
      : tensor<1x4x1x16xf32>, tensor<1x2x10x16xf32>, tensor<1x2x10x8xf32>, tensor<1x2x10xf32>
      -> tensor<1x4x1x8xf32>
  return %o : tensor<1x4x1x8xf32>
}

// -----

// Both folds together: compress{rounds = 0} + weighted_attention == attention.
// CHECK-LABEL: func.func @compress_then_attend_identity
// CHECK-SAME: (%[[Q:.*]]: tensor<?x4x1x16xf32>, %[[K:.*]]: tensor<?x2x?x16xf32>, %[[V:.*]]: tensor<?x2x?x8xf32>)
// CHECK-NOT: balancekv.compress
// CHECK-NOT: balancekv.weighted_attention
// CHECK: %[[O:.*]] = balancekv.attention %[[Q]], %[[K]], %[[V]] :
// CHECK: return %[[O]]
func.func @compress_then_attend_identity(%q: tensor<?x4x1x16xf32>, %k: tensor<?x2x?x16xf32>,
                                         %v: tensor<?x2x?x8xf32>) -> tensor<?x4x1x8xf32> {
  %ck, %cv, %lw = balancekv.compress %k, %v <rounds = 0>
      : tensor<?x2x?x16xf32>, tensor<?x2x?x8xf32>
  %o = balancekv.weighted_attention %q, %ck, %cv, %lw
      : tensor<?x4x1x16xf32>, tensor<?x2x?x16xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?xf32>
      -> tensor<?x4x1x8xf32>
  return %o : tensor<?x4x1x8xf32>
}

// -----

// compress is Pure: dead compression is erased.
// CHECK-LABEL: func.func @dead_compress
// CHECK-NOT: balancekv.compress
func.func @dead_compress(%k: tensor<1x8x4096x128xf16>, %v: tensor<1x8x4096x128xf16>) {
  %ck, %cv, %lw = balancekv.compress %k, %v : tensor<1x8x4096x128xf16>, tensor<1x8x4096x128xf16>
  return
}
