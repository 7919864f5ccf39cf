// RUN: balancekv-opt %s --balancekv-compress-kv-cache --split-input-file | FileCheck %s
// RUN: balancekv-opt %s --balancekv-compress-kv-cache="method=uniform rounds=3 seed=9 sink=4 recent=8 min-kv-len=0" --split-input-file | FileCheck %s --check-prefix=OPTS
// RUN: balancekv-opt %s --balancekv-compress-kv-cache --loop-invariant-code-motion --split-input-file | FileCheck %s --check-prefix=LICM
// RUN: balancekv-opt %s --balancekv-compress-kv-cache="allow-dynamic=true max-query-len=0" --split-input-file | FileCheck %s --check-prefix=DYN
// RUN: balancekv-opt %s --balancekv-compress-kv-cache="method=snapkv" --split-input-file | FileCheck %s --check-prefix=SNAP
// RUN: balancekv-opt %s --balancekv-compress-kv-cache="method=adaptive budget=600" --split-input-file | FileCheck %s --check-prefix=ADAPT

// Adaptive pads each head after its kept tokens: causal queries beyond one
// would not sit at M - L + i, so the attention stays.
// ADAPT-LABEL: func.func @adaptive_causal_multi_query
// ADAPT-NOT: balancekv.compress
// ADAPT: balancekv.attention
func.func @adaptive_causal_multi_query(%q: tensor<1x32x4x128xf16>, %k: tensor<1x8x4096x128xf16>,
                                       %v: tensor<1x8x4096x128xf16>) -> tensor<1x32x4x128xf16> {
  %o = balancekv.attention %q, %k, %v causal
      : tensor<1x32x4x128xf16>, tensor<1x8x4096x128xf16>, tensor<1x8x4096x128xf16>
      -> tensor<1x32x4x128xf16>
  return %o : tensor<1x32x4x128xf16>
}

// -----

// CHECK-LABEL: func.func @decode
// CHECK-SAME: (%[[Q:.*]]: tensor<1x32x1x128xf16>, %[[K:.*]]: tensor<1x8x4096x128xf16>, %[[V:.*]]: tensor<1x8x4096x128xf16>)
// CHECK: %[[CK:.*]], %[[CV:.*]], %[[LW:.*]] = balancekv.compress %[[K]], %[[V]] : tensor<1x8x4096x128xf16>, tensor<1x8x4096x128xf16>
// CHECK: %[[O:.*]] = balancekv.weighted_attention %[[Q]], %[[CK]], %[[CV]], %[[LW]] causal : tensor<1x32x1x128xf16>, tensor<1x8x1072x128xf16>, tensor<1x8x1072x128xf16>, tensor<1x8x1072xf32> -> tensor<1x32x1x128xf16>
// CHECK: return %[[O]]
// OPTS-LABEL: func.func @decode
// OPTS: balancekv.compress %{{.*}}, %{{.*}} <method = uniform, rounds = 3, sink = 4, recent = 8, seed = 9>
// OPTS: tensor<1x8x522x128xf16>
// SNAP-LABEL: func.func @decode
// SNAP-SAME: (%[[Q:.*]]: tensor<1x32x1x128xf16>
// SNAP: balancekv.compress %{{.*}}, %{{.*}} observe(%[[Q]] : tensor<1x32x1x128xf16>) <method = snapkv>
// Adaptive: the queries observe, 1200 slots per head (twice the budget),
// the padding's -inf log-weights need no kv_len.
// ADAPT-LABEL: func.func @decode
// ADAPT-SAME: (%[[Q:.*]]: tensor<1x32x1x128xf16>
// ADAPT: %[[CK:.*]], %[[CV:.*]], %[[LW:.*]] = balancekv.compress %{{.*}}, %{{.*}} observe(%[[Q]] : tensor<1x32x1x128xf16>) <method = adaptive, budget = 600>
// ADAPT: balancekv.weighted_attention %[[Q]], %[[CK]], %[[CV]], %[[LW]] causal : tensor<1x32x1x128xf16>, tensor<1x8x1200x128xf16>, tensor<1x8x1200x128xf16>, tensor<1x8x1200xf32>
func.func @decode(%q: tensor<1x32x1x128xf16>, %k: tensor<1x8x4096x128xf16>,
                  %v: tensor<1x8x4096x128xf16>) -> tensor<1x32x1x128xf16> {
  %o = balancekv.attention %q, %k, %v causal
      : tensor<1x32x1x128xf16>, tensor<1x8x4096x128xf16>, tensor<1x8x4096x128xf16>
      -> tensor<1x32x1x128xf16>
  return %o : tensor<1x32x1x128xf16>
}

// -----

// The scale carries over to both ops.
// CHECK-LABEL: func.func @explicit_scale
// CHECK: balancekv.compress %{{.*}}, %{{.*}} <scale = 5.000000e-01>
// CHECK: balancekv.weighted_attention {{.*}} scale(5.000000e-01)
func.func @explicit_scale(%q: tensor<2x4x2x64xbf16>, %k: tensor<2x4x2048x64xbf16>,
                          %v: tensor<2x4x2048x64xbf16>) -> tensor<2x4x2x64xbf16> {
  %o = balancekv.attention %q, %k, %v scale(0.5)
      : tensor<2x4x2x64xbf16>, tensor<2x4x2048x64xbf16>, tensor<2x4x2048x64xbf16>
      -> tensor<2x4x2x64xbf16>
  return %o : tensor<2x4x2x64xbf16>
}

// -----

// A decode loop with a loop-invariant cache: LICM hoists the compression out
// of the loop, the weighted attention stays inside.
// LICM-LABEL: func.func @decode_loop
// LICM: balancekv.compress
// LICM: scf.for
// LICM-NOT: balancekv.compress
// LICM: balancekv.weighted_attention
// LICM: scf.yield
func.func @decode_loop(%q0: tensor<1x8x1x64xf32>, %k: tensor<1x8x2048x64xf32>,
                       %v: tensor<1x8x2048x64xf32>, %steps: index) -> tensor<1x8x1x64xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %r = scf.for %i = %c0 to %steps step %c1 iter_args(%q = %q0) -> (tensor<1x8x1x64xf32>) {
    %o = balancekv.attention %q, %k, %v
        : tensor<1x8x1x64xf32>, tensor<1x8x2048x64xf32>, tensor<1x8x2048x64xf32>
        -> tensor<1x8x1x64xf32>
    scf.yield %o : tensor<1x8x1x64xf32>
  }
  return %r : tensor<1x8x1x64xf32>
}

// -----

// Not rewritten: a short cache (default min-kv-len = 1024).
// CHECK-LABEL: func.func @short_cache
// CHECK-NOT: balancekv.compress
// CHECK: balancekv.attention
// OPTS-LABEL: func.func @short_cache
// OPTS: balancekv.compress
func.func @short_cache(%q: tensor<1x4x1x16xf32>, %k: tensor<1x4x512x16xf32>,
                       %v: tensor<1x4x512x16xf32>) -> tensor<1x4x1x16xf32> {
  %o = balancekv.attention %q, %k, %v
      : tensor<1x4x1x16xf32>, tensor<1x4x512x16xf32>, tensor<1x4x512x16xf32> -> tensor<1x4x1x16xf32>
  return %o : tensor<1x4x1x16xf32>
}

// -----

// Not rewritten: prefill-shaped attention (L = 512 > max-query-len = 16).
// CHECK-LABEL: func.func @prefill
// CHECK-NOT: balancekv.compress
// DYN-LABEL: func.func @prefill
// DYN-NOT: balancekv.compress
func.func @prefill(%q: tensor<1x4x512x16xf32>, %k: tensor<1x4x4096x16xf32>,
                   %v: tensor<1x4x4096x16xf32>) -> tensor<1x4x512x16xf32> {
  %o = balancekv.attention %q, %k, %v causal
      : tensor<1x4x512x16xf32>, tensor<1x4x4096x16xf32>, tensor<1x4x4096x16xf32> -> tensor<1x4x512x16xf32>
  return %o : tensor<1x4x512x16xf32>
}

// -----

// Not rewritten: causal queries beyond the recent window would see the
// compressed middle differently (L - 1 = 39 > recent = 32).
// CHECK-LABEL: func.func @causal_outside_window
// CHECK-NOT: balancekv.compress
// DYN-LABEL: func.func @causal_outside_window
// DYN-NOT: balancekv.compress
func.func @causal_outside_window(%q: tensor<1x4x40x16xf32>, %k: tensor<1x4x4096x16xf32>,
                                 %v: tensor<1x4x4096x16xf32>) -> tensor<1x4x40x16xf32> {
  %o = balancekv.attention %q, %k, %v causal
      : tensor<1x4x40x16xf32>, tensor<1x4x4096x16xf32>, tensor<1x4x4096x16xf32> -> tensor<1x4x40x16xf32>
  return %o : tensor<1x4x40x16xf32>
}

// -----

// Rewritten: causal with every query inside the window (L - 1 = 15 <= 32).
// CHECK-LABEL: func.func @causal_inside_window
// DYN-LABEL: func.func @causal_inside_window
// CHECK: balancekv.compress
// CHECK: balancekv.weighted_attention {{.*}} causal
func.func @causal_inside_window(%q: tensor<1x4x16x16xf32>, %k: tensor<1x4x4096x16xf32>,
                                %v: tensor<1x4x4096x16xf32>) -> tensor<1x4x16x16xf32> {
  %o = balancekv.attention %q, %k, %v causal
      : tensor<1x4x16x16xf32>, tensor<1x4x4096x16xf32>, tensor<1x4x4096x16xf32> -> tensor<1x4x16x16xf32>
  return %o : tensor<1x4x16x16xf32>
}

// -----

// Dynamic cache length: only with allow-dynamic.
// CHECK-LABEL: func.func @dynamic_cache
// CHECK-NOT: balancekv.compress
// DYN-LABEL: func.func @dynamic_cache
// DYN: balancekv.compress %{{.*}}, %{{.*}} : tensor<1x4x?x16xf32>, tensor<1x4x?x16xf32>
// DYN: balancekv.weighted_attention {{.*}} tensor<1x4x?xf32> -> tensor<1x4x1x16xf32>
func.func @dynamic_cache(%q: tensor<1x4x1x16xf32>, %k: tensor<1x4x?x16xf32>,
                         %v: tensor<1x4x?x16xf32>) -> tensor<1x4x1x16xf32> {
  %o = balancekv.attention %q, %k, %v
      : tensor<1x4x1x16xf32>, tensor<1x4x?x16xf32>, tensor<1x4x?x16xf32> -> tensor<1x4x1x16xf32>
  return %o : tensor<1x4x1x16xf32>
}

// -----

// Not rewritten: a padded cache (kv_len) would compress padding.
// CHECK-LABEL: func.func @padded_cache
// CHECK-NOT: balancekv.compress
// DYN-LABEL: func.func @padded_cache
// DYN-NOT: balancekv.compress
func.func @padded_cache(%q: tensor<1x4x1x16xf32>, %k: tensor<1x4x4096x16xf32>,
                        %v: tensor<1x4x4096x16xf32>, %len: tensor<1xi32>) -> tensor<1x4x1x16xf32> {
  %o = balancekv.attention %q, %k, %v kv_len(%len : tensor<1xi32>)
      : tensor<1x4x1x16xf32>, tensor<1x4x4096x16xf32>, tensor<1x4x4096x16xf32> -> tensor<1x4x1x16xf32>
  return %o : tensor<1x4x1x16xf32>
}

