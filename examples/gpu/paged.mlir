// Paged KV caches through --balancekv-runtime-calls-pipeline: the cache is
// a pool of 16-token pages in any order and a block table, read by
// balancekv.gather_pages; the lowering hands pools and table to the CUDA
// kernels (balancekv_compress_paged, ..._decode_attention_paged), nothing
// is gathered. run_paged.cpp checks the results bit for bit against the
// dense calls and the C++ reference on a GPU.
//
// Prefill: B = 2, 2 KV heads, N = 2112 tokens of d = 128 in an NHD pool
// ([pages, 16, H, D], 265 pages); M = 576 kept (T = 2). Decode: 8 query
// heads over the compressed cache moved into an HND pool ([pages, H, 16,
// D]) with 24 decoded tokens after it (kv_len 600 and 590, 40 pages a
// sequence), and over the same pages with a length per KV head (method
// adaptive's ragged heads: kv_len [B, Hkv]).

func.func @compress_paged(%kpool: tensor<265x16x2x128xbf16>, %vpool: tensor<265x16x2x128xbf16>,
                          %table: tensor<2x132xi32>)
    -> (tensor<2x2x576x128xbf16>, tensor<2x2x576x128xbf16>, tensor<2x2x576xf32>) {
  %k = balancekv.gather_pages %kpool, %table
      : tensor<265x16x2x128xbf16>, tensor<2x132xi32> -> tensor<2x2x2112x128xbf16>
  %v = balancekv.gather_pages %vpool, %table
      : tensor<265x16x2x128xbf16>, tensor<2x132xi32> -> tensor<2x2x2112x128xbf16>
  %ck, %cv, %lw = balancekv.compress %k, %v <rounds = 2, seed = 42>
      : tensor<2x2x2112x128xbf16>, tensor<2x2x2112x128xbf16>
  return %ck, %cv, %lw
      : tensor<2x2x576x128xbf16>, tensor<2x2x576x128xbf16>, tensor<2x2x576xf32>
}

func.func @decode_paged(%q: tensor<2x8x1x128xbf16>, %kpool: tensor<81x2x16x128xbf16>,
                        %vpool: tensor<81x2x16x128xbf16>, %table: tensor<2x40xi32>,
                        %lw: tensor<2x2x640xf32>, %len: tensor<2xi32>)
    -> tensor<2x8x1x128xbf16> {
  %k = balancekv.gather_pages %kpool, %table heads_major
      : tensor<81x2x16x128xbf16>, tensor<2x40xi32> -> tensor<2x2x640x128xbf16>
  %v = balancekv.gather_pages %vpool, %table heads_major
      : tensor<81x2x16x128xbf16>, tensor<2x40xi32> -> tensor<2x2x640x128xbf16>
  %o = balancekv.weighted_attention %q, %k, %v, %lw kv_len(%len : tensor<2xi32>) causal
      : tensor<2x8x1x128xbf16>, tensor<2x2x640x128xbf16>,
        tensor<2x2x640x128xbf16>, tensor<2x2x640xf32> -> tensor<2x8x1x128xbf16>
  return %o : tensor<2x8x1x128xbf16>
}

// The same decode over the dense cache, for the bitwise comparison.
func.func @decode_dense(%q: tensor<2x8x1x128xbf16>, %k: tensor<2x2x640x128xbf16>,
                        %v: tensor<2x2x640x128xbf16>, %lw: tensor<2x2x640xf32>,
                        %len: tensor<2xi32>) -> tensor<2x8x1x128xbf16> {
  %o = balancekv.weighted_attention %q, %k, %v, %lw kv_len(%len : tensor<2xi32>) causal
      : tensor<2x8x1x128xbf16>, tensor<2x2x640x128xbf16>,
        tensor<2x2x640x128xbf16>, tensor<2x2x640xf32> -> tensor<2x8x1x128xbf16>
  return %o : tensor<2x8x1x128xbf16>
}

// Ragged heads: each (sequence, KV head) holds its own number of tokens.
func.func @decode_paged_ragged(%q: tensor<2x8x1x128xbf16>, %kpool: tensor<81x2x16x128xbf16>,
                               %vpool: tensor<81x2x16x128xbf16>, %table: tensor<2x40xi32>,
                               %lw: tensor<2x2x640xf32>, %len: tensor<2x2xi32>)
    -> tensor<2x8x1x128xbf16> {
  %k = balancekv.gather_pages %kpool, %table heads_major
      : tensor<81x2x16x128xbf16>, tensor<2x40xi32> -> tensor<2x2x640x128xbf16>
  %v = balancekv.gather_pages %vpool, %table heads_major
      : tensor<81x2x16x128xbf16>, tensor<2x40xi32> -> tensor<2x2x640x128xbf16>
  %o = balancekv.weighted_attention %q, %k, %v, %lw kv_len(%len : tensor<2x2xi32>) causal
      : tensor<2x8x1x128xbf16>, tensor<2x2x640x128xbf16>,
        tensor<2x2x640x128xbf16>, tensor<2x2x640xf32> -> tensor<2x8x1x128xbf16>
  return %o : tensor<2x8x1x128xbf16>
}

func.func @decode_dense_ragged(%q: tensor<2x8x1x128xbf16>, %k: tensor<2x2x640x128xbf16>,
                               %v: tensor<2x2x640x128xbf16>, %lw: tensor<2x2x640xf32>,
                               %len: tensor<2x2xi32>) -> tensor<2x8x1x128xbf16> {
  %o = balancekv.weighted_attention %q, %k, %v, %lw kv_len(%len : tensor<2x2xi32>) causal
      : tensor<2x8x1x128xbf16>, tensor<2x2x640x128xbf16>,
        tensor<2x2x640x128xbf16>, tensor<2x2x640xf32> -> tensor<2x8x1x128xbf16>
  return %o : tensor<2x8x1x128xbf16>
}
