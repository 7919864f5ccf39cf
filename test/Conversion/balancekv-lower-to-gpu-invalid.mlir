// RUN: balancekv-opt %s --balancekv-lower-to-gpu --split-input-file --verify-diagnostics

func.func @uniform(%k: tensor<1x1x300x16xf16>, %v: tensor<1x1x300x16xf16>) -> tensor<1x1x123xf32> {
  // expected-error @below {{method 'uniform' has no GPU lowering; use --balancekv-lower-to-runtime-calls or --balancekv-lower-to-loops}}
  %ck, %cv, %lw = balancekv.compress %k, %v <method = uniform>
      : tensor<1x1x300x16xf16>, tensor<1x1x300x16xf16>
  return %lw : tensor<1x1x123xf32>
}

// -----

func.func @dynamic(%k: tensor<1x1x?x16xf16>, %v: tensor<1x1x?x16xf16>) -> tensor<1x1x?xf32> {
  // expected-error @below {{the GPU lowering needs static key and value shapes, got 'tensor<1x1x?x16xf16>'}}
  %ck, %cv, %lw = balancekv.compress %k, %v : tensor<1x1x?x16xf16>, tensor<1x1x?x16xf16>
  return %lw : tensor<1x1x?xf32>
}

// -----

func.func @big_block(%k: tensor<1x1x600x16xf16>, %v: tensor<1x1x600x16xf16>) -> tensor<1x1x198xf32> {
  // expected-error @below {{the GPU lowering takes block_size <= 128 (one workgroup per block), got 256}}
  %ck, %cv, %lw = balancekv.compress %k, %v <block_size = 256>
      : tensor<1x1x600x16xf16>, tensor<1x1x600x16xf16>
  return %lw : tensor<1x1x198xf32>
}

// -----

func.func @too_wide(%k: tensor<1x1x600x512xf32>, %v: tensor<1x1x600x512xf32>) -> tensor<1x1x198xf32> {
  // expected-error @below {{the walk kernel needs 298240 bytes of workgroup memory (block 128, D 512, Dv 512); at most 232448 fit}}
  %ck, %cv, %lw = balancekv.compress %k, %v : tensor<1x1x600x512xf32>, tensor<1x1x600x512xf32>
  return %lw : tensor<1x1x198xf32>
}

// -----

func.func @many_queries(%q: tensor<1x1x17x16xf16>, %k: tensor<1x1x64x16xf16>,
                        %v: tensor<1x1x64x16xf16>, %lw: tensor<1x1x64xf32>) -> tensor<1x1x17x16xf16> {
  // expected-error @below {{the GPU decode kernel takes at most 16 queries, got 17}}
  %o = balancekv.weighted_attention %q, %k, %v, %lw
      : tensor<1x1x17x16xf16>, tensor<1x1x64x16xf16>, tensor<1x1x64x16xf16>,
        tensor<1x1x64xf32> -> tensor<1x1x17x16xf16>
  return %o : tensor<1x1x17x16xf16>
}

// -----

func.func @wide_head(%q: tensor<1x1x1x512xf16>, %k: tensor<1x1x64x512xf16>,
                     %v: tensor<1x1x64x16xf16>) -> tensor<1x1x1x16xf16> {
  // expected-error @below {{the GPU decode kernel takes head and value dims up to 256}}
  %o = balancekv.attention %q, %k, %v
      : tensor<1x1x1x512xf16>, tensor<1x1x64x512xf16>, tensor<1x1x64x16xf16>
        -> tensor<1x1x1x16xf16>
  return %o : tensor<1x1x1x16xf16>
}

// -----

func.func @dynamic_decode(%q: tensor<1x1x1x16xf16>, %k: tensor<1x1x?x16xf16>,
                          %v: tensor<1x1x?x16xf16>) -> tensor<1x1x1x16xf16> {
  // expected-error @below {{the GPU lowering needs static shapes, got 'tensor<1x1x?x16xf16>'}}
  %o = balancekv.attention %q, %k, %v
      : tensor<1x1x1x16xf16>, tensor<1x1x?x16xf16>, tensor<1x1x?x16xf16>
        -> tensor<1x1x1x16xf16>
  return %o : tensor<1x1x1x16xf16>
}

// -----

func.func @huge_batch(%q: tensor<70000x1x1x16xf16>, %k: tensor<70000x1x4x16xf16>,
                      %v: tensor<70000x1x4x16xf16>) -> tensor<70000x1x1x16xf16> {
  // expected-error @below {{the GPU decode kernel takes at most 65535 batches and query heads (grid dimensions)}}
  %o = balancekv.attention %q, %k, %v
      : tensor<70000x1x1x16xf16>, tensor<70000x1x4x16xf16>, tensor<70000x1x4x16xf16>
        -> tensor<70000x1x1x16xf16>
  return %o : tensor<70000x1x1x16xf16>
}

// -----

func.func @huge_heads(%k: tensor<1x70000x200x16xf16>, %v: tensor<1x70000x200x16xf16>)
    -> tensor<1x70000x98xf32> {
  // expected-error @below {{the GPU lowering takes at most 65535 batches and heads (grid dimensions)}}
  %ck, %cv, %lw = balancekv.compress %k, %v
      : tensor<1x70000x200x16xf16>, tensor<1x70000x200x16xf16>
  return %lw : tensor<1x70000x98xf32>
}

// -----

// A stage with a run-time round (its rounds not unrolled) has no static grid.
func.func @walk_dynamic_round(%k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x32xf32>,
                              %t: tensor<1x2x192xi32>, %r: index) -> tensor<1x2x192xi8> {
  // expected-error @+1 {{'balancekv.balance_walk' op the GPU lowering takes a constant round (unroll the rounds: --balancekv-decompose-compress=unroll-rounds)}}
  %s = balancekv.balance_walk %k, %v, %t, %t, %r : tensor<1x2x256x64xf32>, tensor<1x2x256x32xf32>, tensor<1x2x192xi32>
  return %s : tensor<1x2x192xi8>
}

// -----

func.func @ragged_heads(%q: tensor<1x4x1x64xf16>, %k: tensor<1x2x64x64xf16>, %v: tensor<1x2x64x64xf16>,
                        %lw: tensor<1x2x64xf32>, %len: tensor<1x2xi32>) -> tensor<1x4x1x64xf16> {
  // expected-error @below {{the generated GPU decode takes kv_len per batch ([B]); per KV head lengths ([B, Hkv]) go through --balancekv-lower-to-runtime-calls (the CUDA kernels)}}
  %o = balancekv.weighted_attention %q, %k, %v, %lw kv_len(%len : tensor<1x2xi32>)
      : tensor<1x4x1x64xf16>, tensor<1x2x64x64xf16>, tensor<1x2x64x64xf16>, tensor<1x2x64xf32> -> tensor<1x4x1x64xf16>
  return %o : tensor<1x4x1x64xf16>
}

// -----

func.func @paged(%pool: tensor<64x16x2x64xf16>, %table: tensor<1x8xi32>) -> tensor<1x2x128x64xf16> {
  // expected-error @below {{'balancekv.gather_pages' op has no generated GPU kernel: lower paged caches with --balancekv-lower-to-runtime-calls (the CUDA kernels read the pages in place) or --balancekv-lower-to-loops}}
  %k = balancekv.gather_pages %pool, %table : tensor<64x16x2x64xf16>, tensor<1x8xi32> -> tensor<1x2x128x64xf16>
  return %k : tensor<1x2x128x64xf16>
}
