// RUN: balancekv-opt %s | FileCheck %s
// RUN: balancekv-opt %s --mlir-print-op-generic | balancekv-opt | FileCheck %s
// RUN: balancekv-opt %s --mlir-print-op-generic | FileCheck %s --check-prefix=GENERIC

// iree_linalg_ext.attention as IREE 3.13 prints it, and with the maps in an
// attribute dictionary (earlier IREE); the generic form is IREE's: inputs
// then outputs, no segment sizes, the maps as a property.
// CHECK-LABEL: func.func @attention
// CHECK: iree_linalg_ext.attention <indexing_maps = [{{.*}}]> ins(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<8x1x64xf16>, tensor<8x512x64xf16>, tensor<8x512x64xf16>, f16) outs(%{{.*}} : tensor<8x1x64xf16>) {
// CHECK: iree_linalg_ext.yield %{{.*}} : f32
// CHECK: } -> tensor<8x1x64xf16>
// CHECK: iree_linalg_ext.attention <indexing_maps
// GENERIC: "iree_linalg_ext.attention"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) <{indexing_maps = [{{.*}}]}> ({
#q = affine_map<(b, m, n, k1, k2) -> (b, m, k1)>
#k = affine_map<(b, m, n, k1, k2) -> (b, k2, k1)>
#v = affine_map<(b, m, n, k1, k2) -> (b, k2, n)>
#s = affine_map<(b, m, n, k1, k2) -> ()>
#o = affine_map<(b, m, n, k1, k2) -> (b, m, n)>
func.func @attention(%q: tensor<8x1x64xf16>, %k: tensor<8x512x64xf16>, %v: tensor<8x512x64xf16>,
                     %scale: f16, %init: tensor<8x1x64xf16>) -> (tensor<8x1x64xf16>, tensor<8x1x64xf16>) {
  %0 = iree_linalg_ext.attention <indexing_maps = [#q, #k, #v, #s, #o]>
      ins(%q, %k, %v, %scale : tensor<8x1x64xf16>, tensor<8x512x64xf16>, tensor<8x512x64xf16>, f16)
      outs(%init : tensor<8x1x64xf16>) {
  ^bb0(%score: f32):
    iree_linalg_ext.yield %score : f32
  } -> tensor<8x1x64xf16>
  %1 = iree_linalg_ext.attention {indexing_maps = [#q, #k, #v, #s, #o]}
      ins(%q, %k, %v, %scale : tensor<8x1x64xf16>, tensor<8x512x64xf16>, tensor<8x512x64xf16>, f16)
      outs(%init : tensor<8x1x64xf16>) {
  ^bb0(%score: f32):
    iree_linalg_ext.yield %score : f32
  } -> tensor<8x1x64xf16>
  return %0, %1 : tensor<8x1x64xf16>, tensor<8x1x64xf16>
}
