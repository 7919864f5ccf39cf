func.func @decode(%q: tensor<1x8x1x64xf16>, %k: tensor<1x2x2048x64xf16>, %v: tensor<1x2x2048x64xf16>) -> tensor<1x8x1x64xf16> {
  %o = balancekv.attention %q, %k, %v : tensor<1x8x1x64xf16>, tensor<1x2x2048x64xf16>, tensor<1x2x2048x64xf16> -> tensor<1x8x1x64xf16>
  return %o : tensor<1x8x1x64xf16>
}
