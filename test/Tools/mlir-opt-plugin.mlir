// REQUIRES: plugin, mlir-runner
// Stock mlir-opt (Debian's, on libMLIR.so) with balancekv loaded as a plugin:
// the dialects parse, the passes run, and the example gives the same result
// as balancekv-opt.
// RUN: mlir-opt %s --load-dialect-plugin=%balancekv_plugin --load-pass-plugin=%balancekv_plugin \
// RUN:   --pass-pipeline="builtin.module(balancekv-compress-kv-cache{min-kv-len=64})" | FileCheck %s
// RUN: mlir-opt %balancekv_src_root/examples/decode_loop.mlir --load-dialect-plugin=%balancekv_plugin \
// RUN:   --load-pass-plugin=%balancekv_plugin \
// RUN:   --pass-pipeline="builtin.module(balancekv-compress-kv-cache,func.func(loop-invariant-code-motion),balancekv-cpu-pipeline)" \
// RUN:   | mlir-runner -e main -entry-point-result=void -shared-libs=%mlir_lib_dir/libmlir_c_runner_utils.so \
// RUN:   | FileCheck %s --check-prefix=RUNS

// CHECK-LABEL: func.func @decode
// CHECK: balancekv.compress
// CHECK: balancekv.weighted_attention
func.func @decode(%q: tensor<1x4x1x16xf32>, %k: tensor<1x2x128x16xf32>,
                  %v: tensor<1x2x128x16xf32>) -> tensor<1x4x1x16xf32> {
  %o = balancekv.attention %q, %k, %v
      : tensor<1x4x1x16xf32>, tensor<1x2x128x16xf32>, tensor<1x2x128x16xf32> -> tensor<1x4x1x16xf32>
  return %o : tensor<1x4x1x16xf32>
}

// RUNS: {{^0\.06[0-9]*$}}
