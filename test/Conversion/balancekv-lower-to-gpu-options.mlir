// RUN: not balancekv-opt %s --balancekv-lower-to-gpu=sm-count=0 2>&1 | FileCheck %s
// CHECK: error: balancekv-lower-to-gpu: sm-count must be >= 1, got 0
func.func @f(%q: tensor<1x1x1x16xf16>, %k: tensor<1x1x64x16xf16>,
             %v: tensor<1x1x64x16xf16>) -> tensor<1x1x1x16xf16> {
  %o = balancekv.attention %q, %k, %v
      : tensor<1x1x1x16xf16>, tensor<1x1x64x16xf16>, tensor<1x1x64x16xf16>
        -> tensor<1x1x1x16xf16>
  return %o : tensor<1x1x1x16xf16>
}
