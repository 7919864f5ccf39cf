// RUN: balancekv-opt %s --split-input-file --verify-diagnostics


func.func @too_few_inputs(%q: tensor<8x1x64xf16>, %k: tensor<8x512x64xf16>, %init: tensor<8x1x64xf16>) -> tensor<8x1x64xf16> {
  // expected-error @+1 {{'iree_linalg_ext.attention' op expects query, key, value, scale and an optional mask before the outputs, got 2 inputs}}
  %0 = iree_linalg_ext.attention <indexing_maps = []> ins(%q, %k : tensor<8x1x64xf16>, tensor<8x512x64xf16>) outs(%init : tensor<8x1x64xf16>) {
  ^bb0(%score: f32):
    iree_linalg_ext.yield %score : f32
  } -> tensor<8x1x64xf16>
  return %0 : tensor<8x1x64xf16>
}
