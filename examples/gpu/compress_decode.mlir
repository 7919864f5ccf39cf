// The GPU path end to end: BalanceKV compression of a bf16 cache, then decode
// attention over the compressed cache (and, for comparison, over the full
// one), compiled by MLIR itself:
//
//   balancekv-opt compress_decode.mlir \
//       --balancekv-gpu-pipeline="chip=sm_90 features=+ptx80 format=bin" |
//     mlir-translate --mlir-to-llvmir | clang -c -x ir - -o compress_decode.o
//
// and linked with kernels/mlir-runtime (the mgpu* entry points). The build
// does this when CUDA is installed; run_compress_decode.cpp checks the result
// against the C++ reference on a GPU.
//
// Shapes: B = 2, 2 KV heads, 8 query heads (GQA), N = 2112 tokens, d = 128:
// sink 32 + middle 2048 + recent 32, T = 2 rounds => M = 32 + 512 + 32 = 576.

func.func @compress(%k: tensor<2x2x2112x128xbf16>, %v: tensor<2x2x2112x128xbf16>)
    -> (tensor<2x2x576x128xbf16>, tensor<2x2x576x128xbf16>, tensor<2x2x576xf32>) {
  %ck, %cv, %lw = balancekv.compress %k, %v <rounds = 2, seed = 42>
      : tensor<2x2x2112x128xbf16>, tensor<2x2x2112x128xbf16>
  return %ck, %cv, %lw
      : tensor<2x2x576x128xbf16>, tensor<2x2x576x128xbf16>, tensor<2x2x576xf32>
}

func.func @decode(%q: tensor<2x8x1x128xbf16>, %ck: tensor<2x2x576x128xbf16>,
                  %cv: tensor<2x2x576x128xbf16>, %lw: tensor<2x2x576xf32>)
    -> tensor<2x8x1x128xbf16> {
  %o = balancekv.weighted_attention %q, %ck, %cv, %lw causal
      : tensor<2x8x1x128xbf16>, tensor<2x2x576x128xbf16>,
        tensor<2x2x576x128xbf16>, tensor<2x2x576xf32> -> tensor<2x8x1x128xbf16>
  return %o : tensor<2x8x1x128xbf16>
}

func.func @full_attention(%q: tensor<2x8x1x128xbf16>, %k: tensor<2x2x2112x128xbf16>,
                          %v: tensor<2x2x2112x128xbf16>) -> tensor<2x8x1x128xbf16> {
  %o = balancekv.attention %q, %k, %v causal
      : tensor<2x8x1x128xbf16>, tensor<2x2x2112x128xbf16>,
        tensor<2x2x2112x128xbf16> -> tensor<2x8x1x128xbf16>
  return %o : tensor<2x8x1x128xbf16>
}
