// RUN: balancekv-opt %s --split-input-file --verify-diagnostics


func.func @too_few_inputs(%q: tensor<8x1x64xf16>, %k: tensor<8x512x64xf16>, %init: tensor<8x1x64xf16>) -> tensor<8x1x64xf16> {
  // expected-error @+1 {{'iree_linalg_ext.attention' op expects query, key, value, scale and an optional mask before the outputs, got 2 inputs}}
  %0 = iree_linalg_ext.attention <indexing_maps = []> ins(%q, %k : tensor<8x1x64xf16>, tensor<8x512x64xf16>) outs(%init : tensor<8x1x64xf16>) {
  ^bb0(%score: f32):
    iree_linalg_ext.yield %score : f32
  } -> tensor<8x1x64xf16>
  return %0 : tensor<8x1x64xf16>
}

// -----

func.func @maps_per_operand(%q: tensor<8x1x64xf16>, %k: tensor<8x512x64xf16>, %s: f16, %init: tensor<8x1x64xf16>) -> tensor<8x1x64xf16> {
  // expected-error @+1 {{'iree_linalg_ext.attention' op expects one indexing map per operand}}
  %0 = iree_linalg_ext.attention <indexing_maps = [affine_map<(d0) -> (d0)>]> ins(%q, %k, %k, %s : tensor<8x1x64xf16>, tensor<8x512x64xf16>, tensor<8x512x64xf16>, f16) outs(%init : tensor<8x1x64xf16>) {
  ^bb0(%score: f32):
    iree_linalg_ext.yield %score : f32
  } -> tensor<8x1x64xf16>
  return %0 : tensor<8x1x64xf16>
}

// -----

#m = affine_map<(d0, d1, d2, d3, d4) -> ()>
func.func @region_arguments(%q: tensor<8x1x64xf16>, %k: tensor<8x512x64xf16>, %s: f16, %init: tensor<8x1x64xf16>) -> tensor<8x1x64xf16> {
  // expected-error @+1 {{'iree_linalg_ext.attention' op expects a region of one score argument yielding one value}}
  %0 = iree_linalg_ext.attention <indexing_maps = [#m, #m, #m, #m, #m]> ins(%q, %k, %k, %s : tensor<8x1x64xf16>, tensor<8x512x64xf16>, tensor<8x512x64xf16>, f16) outs(%init : tensor<8x1x64xf16>) {
  ^bb0(%score: f32, %extra: f32):
    iree_linalg_ext.yield %score : f32
  } -> tensor<8x1x64xf16>
  return %0 : tensor<8x1x64xf16>
}

// -----

func.func @tm_tensor_inputs(%q: tensor<8x1x64xf32>, %k: tensor<8x512x64xf32>, %init: tensor<8x1x64xf32>) -> tensor<8x1x64xf32> {
  // expected-error @+1 {{'tm_tensor.attention' op expects query, key, value and an optional mask, got 2 inputs}}
  %0 = tm_tensor.attention ins(%q, %k : tensor<8x1x64xf32>, tensor<8x512x64xf32>) outs(%init : tensor<8x1x64xf32>) -> tensor<8x1x64xf32>
  return %0 : tensor<8x1x64xf32>
}

// -----

func.func @tm_tensor_result_type(%q: tensor<8x1x64xf32>, %k: tensor<8x512x64xf32>, %init: tensor<8x1x64xf32>) -> tensor<8x1x32xf32> {
  // expected-error @+1 {{'tm_tensor.attention' op expects one output, typed as the result}}
  %0 = tm_tensor.attention ins(%q, %k, %k : tensor<8x1x64xf32>, tensor<8x512x64xf32>, tensor<8x512x64xf32>) outs(%init : tensor<8x1x64xf32>) -> tensor<8x1x32xf32>
  return %0 : tensor<8x1x32xf32>
}

// -----

#n = affine_map<(d0, d1, d2, d3, d4) -> ()>
func.func @results_as_outputs(%q: tensor<8x1x64xf16>, %k: tensor<8x512x64xf16>, %s: f16, %init: tensor<8x1x64xf16>) -> tensor<8x1x32xf16> {
  // expected-error @+1 {{'iree_linalg_ext.attention' op expects results typed as the outputs}}
  %0 = iree_linalg_ext.attention <indexing_maps = [#n, #n, #n, #n, #n]> ins(%q, %k, %k, %s : tensor<8x1x64xf16>, tensor<8x512x64xf16>, tensor<8x512x64xf16>, f16) outs(%init : tensor<8x1x64xf16>) {
  ^bb0(%score: f32):
    iree_linalg_ext.yield %score : f32
  } -> tensor<8x1x32xf16>
  return %0 : tensor<8x1x32xf16>
}
