// A compression and a weighted decode over its result, for
// balancekv-convert-to-triton.test (and the GPU run of
// bench/triton_weighted_attention.py, which makes the same at larger shapes).
func.func @compress(%k: tensor<1x2x512x64xf16>, %v: tensor<1x2x512x64xf16>)
    -> (tensor<1x2x176x64xf16>, tensor<1x2x176x64xf16>, tensor<1x2x176xf32>) {
  %ck, %cv, %lw = balancekv.compress %k, %v <rounds = 2> : tensor<1x2x512x64xf16>, tensor<1x2x512x64xf16>
  return %ck, %cv, %lw : tensor<1x2x176x64xf16>, tensor<1x2x176x64xf16>, tensor<1x2x176xf32>
}
func.func @decode(%q: tensor<1x8x1x64xf16>, %k: tensor<1x2x176x64xf16>, %v: tensor<1x2x176x64xf16>,
                  %lw: tensor<1x2x176xf32>) -> tensor<1x8x1x64xf16> {
  %o = balancekv.weighted_attention %q, %k, %v, %lw : tensor<1x8x1x64xf16>, tensor<1x2x176x64xf16>, tensor<1x2x176x64xf16>, tensor<1x2x176xf32> -> tensor<1x8x1x64xf16>
  return %o : tensor<1x8x1x64xf16>
}
