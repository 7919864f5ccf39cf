// RUN: balancekv-opt %s --transform-interpreter --split-input-file | FileCheck %s

// upstream's transform.structured.decompose_interface works on our ops
// (linalg::AggregatedOpInterface): the same linalg chain as
// --balancekv-lower-to-loops, with the log-weights added to the logits.
// CHECK-LABEL: func.func @weighted
// CHECK-SAME: %[[W:[a-z0-9]+]]: tensor<1x2x6xf32>
// CHECK-NOT: balancekv.weighted_attention
// CHECK: tensor.expand_shape
// CHECK: linalg.generic {{.*}}"reduction"
// CHECK: linalg.generic {{.*}} ins(%{{.*}}, %[[W]] : tensor<1x2x2x1x6xf32>, tensor<1x2x6xf32>)
// CHECK: arith.addf
// CHECK: arith.maximumf
// CHECK: math.exp
// CHECK: tensor.collapse_shape
func.func @weighted(%q: tensor<1x4x1x8xf32>, %k: tensor<1x2x6x8xf32>, %v: tensor<1x2x6x8xf32>,
                    %w: tensor<1x2x6xf32>) -> tensor<1x4x1x8xf32> {
  %o = balancekv.weighted_attention %q, %k, %v, %w
      : tensor<1x4x1x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6xf32> -> tensor<1x4x1x8xf32>
  return %o : tensor<1x4x1x8xf32>
}

module attributes {transform.with_named_sequence} {
  transform.named_sequence @__transform_main(%root: !transform.any_op {transform.readonly}) {
    %ops = transform.structured.match ops{["balancekv.weighted_attention"]} in %root
        : (!transform.any_op) -> !transform.any_op
    %d = transform.structured.decompose_interface %ops : (!transform.any_op) -> !transform.any_op
    transform.yield
  }
}

// -----

// CHECK-LABEL: func.func @plain
// CHECK-NOT: balancekv.attention
// CHECK: linalg.generic
func.func @plain(%q: tensor<1x1x1x8xbf16>, %k: tensor<1x1x6x8xbf16>, %v: tensor<1x1x6x8xbf16>) -> tensor<1x1x1x8xbf16> {
  %o = balancekv.attention %q, %k, %v causal
      : tensor<1x1x1x8xbf16>, tensor<1x1x6x8xbf16>, tensor<1x1x6x8xbf16> -> tensor<1x1x1x8xbf16>
  return %o : tensor<1x1x1x8xbf16>
}

module attributes {transform.with_named_sequence} {
  transform.named_sequence @__transform_main(%root: !transform.any_op {transform.readonly}) {
    %ops = transform.structured.match ops{["balancekv.attention"]} in %root
        : (!transform.any_op) -> !transform.any_op
    %d = transform.structured.decompose_interface %ops : (!transform.any_op) -> !transform.any_op
    transform.yield
  }
}
