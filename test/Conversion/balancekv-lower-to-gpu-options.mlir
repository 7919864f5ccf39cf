// RUN: not balancekv-opt %s --balancekv-lower-to-gpu=sm-count=0 2>&1 | FileCheck %s
// RUN: not balancekv-opt %s --balancekv-lower-to-gpu=sm-count=4611686018427387904 2>&1 | FileCheck %s --check-prefix=HUGE
// CHECK: error: balancekv-lower-to-gpu: sm-count must be in [1, 65536], got 0
// HUGE: error: balancekv-lower-to-gpu: sm-count must be in [1, 65536], got 4611686018427387904
func.func @f(%q: tensor<1x1x1x16xf16>, %k: tensor<1x1x64x16xf16>,
             %v: tensor<1x1x64x16xf16>) -> tensor<1x1x1x16xf16> {
  %o = balancekv.attention %q, %k, %v
      : tensor<1x1x1x16xf16>, tensor<1x1x64x16xf16>, tensor<1x1x64x16xf16>
        -> tensor<1x1x1x16xf16>
  return %o : tensor<1x1x1x16xf16>
}
