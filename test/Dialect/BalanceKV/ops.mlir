// RUN: balancekv-opt %s | FileCheck %s
// RUN: balancekv-opt %s | balancekv-opt | FileCheck %s
// RUN: balancekv-opt %s --mlir-print-op-generic | balancekv-opt | FileCheck %s
// RUN: balancekv-opt %s --mlir-print-op-generic | FileCheck %s --check-prefix=GENERIC

// CHECK-LABEL: func.func @attention_decode
// CHECK: balancekv.attention %{{.*}}, %{{.*}}, %{{.*}} : tensor<1x32x1x128xf16>, tensor<1x8x4096x128xf16>, tensor<1x8x4096x128xf16> -> tensor<1x32x1x128xf16>
// GENERIC-LABEL: sym_name = "attention_decode"
// GENERIC: "balancekv.attention"(%{{.*}}, %{{.*}}, %{{.*}}) : (tensor<1x32x1x128xf16>, tensor<1x8x4096x128xf16>, tensor<1x8x4096x128xf16>) -> tensor<1x32x1x128xf16>
func.func @attention_decode(%q: tensor<1x32x1x128xf16>, %k: tensor<1x8x4096x128xf16>,
                            %v: tensor<1x8x4096x128xf16>) -> tensor<1x32x1x128xf16> {
  %o = balancekv.attention %q, %k, %v
      : tensor<1x32x1x128xf16>, tensor<1x8x4096x128xf16>, tensor<1x8x4096x128xf16>
      -> tensor<1x32x1x128xf16>
  return %o : tensor<1x32x1x128xf16>
}

// CHECK-LABEL: func.func @attention_all_options
// CHECK: balancekv.attention %{{.*}}, %{{.*}}, %{{.*}} kv_len(%{{.*}} : tensor<?xi32>) causal scale(1.250000e-01) : tensor<?x4x?x64xbf16>, tensor<?x2x?x64xbf16>, tensor<?x2x?x32xbf16> -> tensor<?x4x?x32xbf16>
// GENERIC-LABEL: sym_name = "attention_all_options"
// GENERIC: "balancekv.attention"({{.*}}) <{causal, scale = 1.250000e-01 : f32}>
func.func @attention_all_options(%q: tensor<?x4x?x64xbf16>, %k: tensor<?x2x?x64xbf16>,
                                 %v: tensor<?x2x?x32xbf16>, %len: tensor<?xi32>)
    -> tensor<?x4x?x32xbf16> {
  %o = balancekv.attention %q, %k, %v kv_len(%len : tensor<?xi32>) causal scale(0.125)
      : tensor<?x4x?x64xbf16>, tensor<?x2x?x64xbf16>, tensor<?x2x?x32xbf16>
      -> tensor<?x4x?x32xbf16>
  return %o : tensor<?x4x?x32xbf16>
}

// Defaults are elided; M = 32 + (4096 - 64) / 4 + 32 = 1072 is inferred.
// CHECK-LABEL: func.func @compress_defaults
// CHECK: %{{.*}}, %{{.*}}, %{{.*}} = balancekv.compress %{{.*}}, %{{.*}} : tensor<1x8x4096x128xf16>, tensor<1x8x4096x128xf16>
// CHECK: return %{{.*}}, %{{.*}}, %{{.*}} : tensor<1x8x1072x128xf16>, tensor<1x8x1072x128xf16>, tensor<1x8x1072xf32>
// GENERIC-LABEL: sym_name = "compress_defaults"
// GENERIC: "balancekv.compress"(%{{.*}}, %{{.*}}) : (tensor<1x8x4096x128xf16>, tensor<1x8x4096x128xf16>) -> (tensor<1x8x1072x128xf16>, tensor<1x8x1072x128xf16>, tensor<1x8x1072xf32>)
func.func @compress_defaults(%k: tensor<1x8x4096x128xf16>, %v: tensor<1x8x4096x128xf16>)
    -> (tensor<1x8x1072x128xf16>, tensor<1x8x1072x128xf16>, tensor<1x8x1072xf32>) {
  %ck, %cv, %lw = balancekv.compress %k, %v : tensor<1x8x4096x128xf16>, tensor<1x8x4096x128xf16>
  return %ck, %cv, %lw : tensor<1x8x1072x128xf16>, tensor<1x8x1072x128xf16>, tensor<1x8x1072xf32>
}

// N < sink + recent: S' = 32, W' = 8, L_0 = 0, M = 40.
// CHECK-LABEL: func.func @compress_short_cache
// CHECK: balancekv.compress %{{.*}}, %{{.*}} <method = uniform, rounds = 4, seed = 42> : tensor<2x4x40x64xf32>, tensor<2x4x40x32xf32>
// CHECK: return {{.*}} : tensor<2x4x40x64xf32>, tensor<2x4x40x32xf32>, tensor<2x4x40xf32>
func.func @compress_short_cache(%k: tensor<2x4x40x64xf32>, %v: tensor<2x4x40x32xf32>)
    -> (tensor<2x4x40x64xf32>, tensor<2x4x40x32xf32>, tensor<2x4x40xf32>) {
  %ck, %cv, %lw = balancekv.compress %k, %v <method = uniform, rounds = 4, seed = 42>
      : tensor<2x4x40x64xf32>, tensor<2x4x40x32xf32>
  return %ck, %cv, %lw : tensor<2x4x40x64xf32>, tensor<2x4x40x32xf32>, tensor<2x4x40xf32>
}

// A dynamic cache length gives a dynamic M.
// CHECK-LABEL: func.func @compress_dynamic
// CHECK: balancekv.compress %{{.*}}, %{{.*}} <method = knorm, block_size = 64, sink = 4, recent = 16, gamma = 2.000000e+00, temperature = 5.000000e-01, c0 = 5.000000e-02> : tensor<?x8x?x128xf16>, tensor<?x8x?x128xf16>
// CHECK: return {{.*}} : tensor<?x8x?x128xf16>, tensor<?x8x?x128xf16>, tensor<?x8x?xf32>
func.func @compress_dynamic(%k: tensor<?x8x?x128xf16>, %v: tensor<?x8x?x128xf16>)
    -> (tensor<?x8x?x128xf16>, tensor<?x8x?x128xf16>, tensor<?x8x?xf32>) {
  %ck, %cv, %lw = balancekv.compress %k, %v
      <method = knorm, block_size = 64, c0 = 0.05, gamma = 2.0, recent = 16,
       sink = 4, temperature = 0.5>
      : tensor<?x8x?x128xf16>, tensor<?x8x?x128xf16>
  return %ck, %cv, %lw : tensor<?x8x?x128xf16>, tensor<?x8x?x128xf16>, tensor<?x8x?xf32>
}

// CHECK-LABEL: func.func @compress_snapkv
// CHECK: balancekv.compress %{{.*}}, %{{.*}} observe(%{{.*}} : tensor<1x32x32x128xbf16>) <method = snapkv, rounds = 3> : tensor<1x8x1024x128xbf16>, tensor<1x8x1024x128xbf16>
// GENERIC-LABEL: sym_name = "compress_snapkv"
// GENERIC: params = #balancekv.compress_params<method = snapkv, rounds = 3>
func.func @compress_snapkv(%k: tensor<1x8x1024x128xbf16>, %v: tensor<1x8x1024x128xbf16>,
                           %obs: tensor<1x32x32x128xbf16>) -> tensor<1x8x?xf32> {
  %ck, %cv, %lw = balancekv.compress %k, %v observe(%obs : tensor<1x32x32x128xbf16>)
      <method = snapkv, rounds = 3> : tensor<1x8x1024x128xbf16>, tensor<1x8x1024x128xbf16>
  %c = tensor.cast %lw : tensor<1x8x184xf32> to tensor<1x8x?xf32>
  return %c : tensor<1x8x?xf32>
}

// CHECK-LABEL: func.func @compress_streaming
// CHECK: balancekv.compress %{{.*}}, %{{.*}} <method = streaming>
func.func @compress_streaming(%k: tensor<1x1x300x16xf32>, %v: tensor<1x1x300x16xf32>) -> tensor<1x1x?x16xf32> {
  %ck, %cv, %lw = balancekv.compress %k, %v <method = streaming> : tensor<1x1x300x16xf32>, tensor<1x1x300x16xf32>
  %c = tensor.cast %ck : tensor<1x1x123x16xf32> to tensor<1x1x?x16xf32>
  return %c : tensor<1x1x?x16xf32>
}

// CHECK-LABEL: func.func @weighted_attention
// CHECK: balancekv.weighted_attention %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} kv_len(%{{.*}} : tensor<1xindex>) causal : tensor<1x32x4x128xf16>, tensor<1x8x1072x128xf16>, tensor<1x8x1072x128xf16>, tensor<1x8x1072xf32> -> tensor<1x32x4x128xf16>
// GENERIC-LABEL: sym_name = "weighted_attention"
// GENERIC: "balancekv.weighted_attention"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) <{causal}>
func.func @weighted_attention(%q: tensor<1x32x4x128xf16>, %k: tensor<1x8x1072x128xf16>,
                              %v: tensor<1x8x1072x128xf16>, %w: tensor<1x8x1072xf32>,
                              %len: tensor<1xindex>) -> tensor<1x32x4x128xf16> {
  %o = balancekv.weighted_attention %q, %k, %v, %w kv_len(%len : tensor<1xindex>) causal
      : tensor<1x32x4x128xf16>, tensor<1x8x1072x128xf16>, tensor<1x8x1072x128xf16>,
        tensor<1x8x1072xf32> -> tensor<1x32x4x128xf16>
  return %o : tensor<1x32x4x128xf16>
}

// The stages of compress round-trip; state types follow the layout
// (L_0 = 4096 - 64 = 4032).
// CHECK-LABEL: func.func @stages
// CHECK: %[[T:.*]], %[[D:.*]] = balancekv.balance_init %{{.*}} <rounds = 3> : tensor<1x8x4096x128xf16>
// CHECK: %[[S:.*]] = balancekv.balance_walk %{{.*}}, %{{.*}}, %[[T]], %[[D]], %{{.*}} <rounds = 3> : tensor<1x8x4096x128xf16>, tensor<1x8x4096x128xf16>, tensor<1x8x4032xi32>
// CHECK: %[[T1:.*]], %[[D1:.*]] = balancekv.balance_halve %[[S]], %[[T]], %[[D]], %{{.*}} : tensor<1x8x4032xi8>, tensor<1x8x4032xi32>
// CHECK: balancekv.gather_kept %{{.*}}, %{{.*}}, %[[T1]], %[[D1]] <rounds = 3> : tensor<1x8x4096x128xf16>, tensor<1x8x4096x128xf16>, tensor<1x8x4032xi32>
// GENERIC-LABEL: sym_name = "stages"
// GENERIC: "balancekv.balance_init"(%{{.*}}) <{params = #balancekv.compress_params<rounds = 3>}>
func.func @stages(%k: tensor<1x8x4096x128xf16>, %v: tensor<1x8x4096x128xf16>, %r: index)
    -> (tensor<1x8x568x128xf16>, tensor<1x8x568x128xf16>, tensor<1x8x568xf32>) {
  %t, %d = balancekv.balance_init %k <rounds = 3> : tensor<1x8x4096x128xf16>
  %s = balancekv.balance_walk %k, %v, %t, %d, %r <rounds = 3>
      : tensor<1x8x4096x128xf16>, tensor<1x8x4096x128xf16>, tensor<1x8x4032xi32>
  %t1, %d1 = balancekv.balance_halve %s, %t, %d, %r : tensor<1x8x4032xi8>, tensor<1x8x4032xi32>
  %ck, %cv, %lw = balancekv.gather_kept %k, %v, %t1, %d1 <rounds = 3>
      : tensor<1x8x4096x128xf16>, tensor<1x8x4096x128xf16>, tensor<1x8x4032xi32>
  return %ck, %cv, %lw : tensor<1x8x568x128xf16>, tensor<1x8x568x128xf16>, tensor<1x8x568xf32>
}

// CHECK-LABEL: func.func @gather_pages
// CHECK: balancekv.gather_pages %{{.*}}, %{{.*}} : tensor<64x16x8x128xbf16>, tensor<4x16xi32> -> tensor<4x8x250x128xbf16>
// CHECK: balancekv.gather_pages %{{.*}}, %{{.*}} heads_major : tensor<?x8x32x64xf16>, tensor<?x?xi32> -> tensor<?x8x?x64xf16>
// GENERIC-LABEL: sym_name = "gather_pages"
// GENERIC: "balancekv.gather_pages"(%{{.*}}, %{{.*}}) <{heads_major}>
func.func @gather_pages(%pool: tensor<64x16x8x128xbf16>, %table: tensor<4x16xi32>,
                        %hnd: tensor<?x8x32x64xf16>, %t2: tensor<?x?xi32>)
    -> (tensor<4x8x250x128xbf16>, tensor<?x8x?x64xf16>) {
  %k = balancekv.gather_pages %pool, %table
      : tensor<64x16x8x128xbf16>, tensor<4x16xi32> -> tensor<4x8x250x128xbf16>
  %h = balancekv.gather_pages %hnd, %t2 heads_major
      : tensor<?x8x32x64xf16>, tensor<?x?xi32> -> tensor<?x8x?x64xf16>
  return %k, %h : tensor<4x8x250x128xbf16>, tensor<?x8x?x64xf16>
}
