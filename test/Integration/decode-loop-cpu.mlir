// REQUIRES: mlir-runner
// The bundled example, executed: exact decode, then compressed decode.
// RUN: balancekv-opt %balancekv_src_root/examples/decode_loop.mlir --balancekv-cpu-pipeline \
// RUN:   | mlir-runner -e main -entry-point-result=void -shared-libs=%mlir_lib_dir/libmlir_c_runner_utils.so \
// RUN:   | FileCheck %s --check-prefix=EXACT
// RUN: balancekv-opt %balancekv_src_root/examples/decode_loop.mlir --balancekv-compress-kv-cache \
// RUN:     --loop-invariant-code-motion --balancekv-cpu-pipeline \
// RUN:   | mlir-runner -e main -entry-point-result=void -shared-libs=%mlir_lib_dir/libmlir_c_runner_utils.so \
// RUN:   | FileCheck %s --check-prefix=BALANCE
// RUN: balancekv-opt %balancekv_src_root/examples/decode_loop.mlir --balancekv-compress-kv-cache="method=uniform" \
// RUN:     --loop-invariant-code-motion --balancekv-cpu-pipeline \
// RUN:   | mlir-runner -e main -entry-point-result=void -shared-libs=%mlir_lib_dir/libmlir_c_runner_utils.so \
// RUN:   | FileCheck %s --check-prefix=UNIFORM

// Without compression the decode steps equal the batched exact attention.
// EXACT: {{^(0|[0-9.]+e-0[6-9])$}}
// Ratio 4 (2048 -> 560 tokens): BalanceKV's error (measured 0.0621) is below
// uniform sampling's (0.0891) on this cache.
// BALANCE: {{^0\.06[0-9]*$}}
// UNIFORM: {{^0\.08[0-9]*$}}
