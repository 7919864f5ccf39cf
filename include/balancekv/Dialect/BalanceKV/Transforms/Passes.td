//===- Passes.td - BalanceKV transformation passes -----------*- tablegen -*-===//

#ifndef BALANCEKV_TRANSFORMS_PASSES_TD
#define BALANCEKV_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def BalanceKVRaiseAttentionPass : Pass<"balancekv-raise-attention"> {
  let summary = "Recognise attention in linalg/tensor IR and raise it to "
                "balancekv.attention";
  let description = [{
    Matches attention as front ends (torch-mlir, StableHLO and IREE imports)
    emit it on tensors: a contraction for `Q Kᵀ` (`linalg.batch_matmul`,
    `linalg.matmul` or a `linalg.generic` contraction, with the transpose as a
    `linalg.transpose` or in the indexing map), an optional scale multiply or
    divide by a constant, an optional additive causal mask, softmax either as
    `linalg.softmax` or decomposed (max-reduce, subtract, exp, sum-reduce,
    divide), and a contraction with `V`. Heads may be folded into the batch
    dimension (`[B*H, N, D]`) or explicit (`[B, H, N, D]`), and GQA may be
    written as a broadcast of the KV heads. Anything that does not match
    exactly is left untouched.

    What front ends emit around attention (PyTorch through torch-mlir,
    JAX through IREE's StableHLO input, IREE input IR) differs from that in
    data movement only: functions with a softmax left after the first try
    are tried again on a normalised copy (`--balancekv-normalize-attention`),
    which replaces the function only if it raised something. With `remarks`,
    every softmax left un-raised gets a remark naming the step that failed.
  }];
  let options = [
    Option<"remarks", "remarks", "bool", "false",
           "emit a remark on every softmax left un-raised, saying why">
  ];
  let dependentDialects = ["::balancekv::BalanceKVDialect",
                           "::mlir::tensor::TensorDialect"];
}

def BalanceKVNormalizeAttentionPass : Pass<"balancekv-normalize-attention"> {
  let summary = "Bring front-end attention IR into the shape the raise matches";
  let description = [{
    What `--balancekv-raise-attention` does to a copy of each function before
    matching (it keeps the copy only when something was raised), as a pass
    of its own to see that shape: named linalg ops generalised, heads folded
    into a batch dim around a contraction unfolded (`[B*H, ...]`
    contractions become `[B, H, ...]` ones), keepdim reductions read without
    their unit-dim re-expansion, data-movement generics (broadcasts,
    transposes, constants) fused into their consumers, then CSE.
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect",
                           "::mlir::affine::AffineDialect"];
}

def BalanceKVCompressKVCachePass : Pass<"balancekv-compress-kv-cache"> {
  let summary = "Rewrite attention into compress + weighted_attention";
  let description = [{
    Replaces `balancekv.attention` over a long cache with
    `balancekv.compress` followed by `balancekv.weighted_attention` over the
    compressed cache. `compress` is pure, so in a decode loop with a
    loop-invariant cache `--loop-invariant-code-motion` hoists it.

    Only attention that the rewrite keeps exact in structure is changed:
    caches known to be at least `min-kv-len` long (dynamic lengths only with
    `allow-dynamic`), queries no longer than `max-query-len` (decode), no
    `kv_len` padding, and with `causal` only when every query sits in the
    recent window (`L - 1 <= recent`), which the compressed cache keeps at
    its end.
  }];
  let dependentDialects = ["::balancekv::BalanceKVDialect"];
  let options = [
    // One option per parameter of CompressParams.h's table, named as its
    // member (the pass copies them by that name).
    Option<"method", "method", "std::string", /*default=*/"\"balance\"",
           "balance | uniform | streaming | snapkv | knorm">,
    Option<"rounds", "rounds", "int64_t", "::balancekv::CompressParams{}.rounds", "halving rounds T (ratio 2^T)">,
    Option<"blockSize", "block-size", "int64_t",
           "::balancekv::CompressParams{}.blockSize", "walk block size">,
    Option<"sink", "sink", "int64_t", "::balancekv::CompressParams{}.sink", "sink tokens kept exactly">,
    Option<"recent", "recent", "int64_t",
           "::balancekv::CompressParams{}.recent", "recent tokens kept exactly">,
    Option<"gamma", "gamma", "double", "::balancekv::CompressParams{}.gamma", "walk step size">,
    Option<"temperature", "temperature", "double",
           "::balancekv::CompressParams{}.temperature", "kernel temperature">,
    Option<"c0", "c0", "double", "::balancekv::CompressParams{}.c0", "normaliser coordinate">,
    Option<"seed", "seed", "uint64_t", "::balancekv::CompressParams{}.seed",
           "Philox seed">,
    Option<"scale", "scale", "float", "::balancekv::CompressParams{}.scale",
           "logit scale of the compression kernel (0: the attention's)">,
    Option<"budget", "budget", "int64_t", "::balancekv::CompressParams{}.budget",
           "adaptive: mean tokens kept per KV head (0: the layout's)">,
    Option<"minKvLen", "min-kv-len", "int64_t",
           "::balancekv::CompressKVCacheOptions{}.minKvLen",
           "compress only caches at least this long">,
    Option<"allowDynamic", "allow-dynamic", "bool",
           "::balancekv::CompressKVCacheOptions{}.allowDynamic",
           "also compress caches of dynamic length">,
    Option<"maxQueryLen", "max-query-len", "int64_t",
           "::balancekv::CompressKVCacheOptions{}.maxQueryLen",
           "compress only attention with at most this many queries "
           "(0: any)">
  ];
}

def BalanceKVDecomposeCompressPass : Pass<"balancekv-decompose-compress"> {
  let summary = "Decompose balancekv.compress (method balance) into its stages";
  let description = [{
    Rewrites `compress` with method `balance` into the ops of one round of
    the spec, the round structure written once (`decomposeCompress`):

    ```mlir
    %tok, %dbl = balancekv.balance_init %k <...>
    %t, %d = scf.for %r = %c0 to %cT step %c1 iter_args(...) {
      %s = balancekv.balance_walk %k, %v, %t0, %d0, %r <...>
      %t1, %d1 = balancekv.balance_halve %s, %t0, %d0, %r
      scf.yield %t1, %d1
    }
    %ck, %cv, %lw = balancekv.gather_kept %k, %v, %t, %d <...>
    ```

    `--balancekv-lower-to-loops` and `--balancekv-lower-to-gpu` lower the
    stages; a back end of one's own only needs patterns for the four stage
    ops. With `unroll-rounds` the rounds are emitted one after the other
    (what the GPU lowering uses: one launch sequence per round). The other
    methods have no rounds and are left alone.
  }];
  let dependentDialects = ["::balancekv::BalanceKVDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::tensor::TensorDialect"];
  let options = [
    Option<"unrollRounds", "unroll-rounds", "bool", "false",
           "emit the rounds one after the other instead of an scf.for">
  ];
}

def BalanceKVTritonWeightedAttentionPass
    : Pass<"balancekv-triton-weighted-attention"> {
  let summary = "Rewrite Triton attention kernels (TTIR) to attend over a "
                "BalanceKV compressed cache";
  let description = [{
    Finds the flash-attention loops of each public `tt.func`: an `scf.for`
    whose body computes logits from the key tile (a `tt.dot` with the
    transposed keys, or decode's sum of `q * k` products), subtracts a
    running max and exponentiates (`math.exp2` or `math.exp`), and feeds the
    exponentials to the product with the values (`tt.dot` or a summed
    product). Pointer, block-pointer and tensor-descriptor kernels,
    causal or not (several loops per kernel), FlexAttention's and split-K
    decode kernels are recognised.

    The kernel gets a new last argument `LW: !tt.ptr<f32>`, the log-weights
    of the compressed cache (`log w` per kept key, the `log_weights` result of
    `balancekv.compress`), and each loop adds them to its logits just before
    the running max is subtracted: `× log2(e)` in `exp2` kernels, so the bias
    is in the kernel's base. The running max, rescaling, normalisation,
    masks and split-K log-sum-exp outputs stay as written and are correct
    for the weighted softmax (the bias is at most `log 2^T`).

    The log-weights are addressed the way the kernel addresses its keys,
    without the feature dim:
    - pointer tiles `K + Σ offsets`: the same offsets; every integer kernel
      argument the key address multiplies by (a stride such as
      `stride_kh`) gets a twin argument `lw_<name>` after `LW`, to be given
      the log-weights' stride for the same dim. Offsets with constant
      strides only (TorchInductor's kernels) are divided by the head dim:
      the log-weights are then dense in K's dim order.
    - block pointers (`tt.make_tensor_ptr` + `tt.advance`): the base and the
      key-dim stride the same way; the key-dim offset is carried through
      the loop; `boundaryCheck` on the key dim masks the load.
    - tensor descriptors (kernel arguments or `tt.make_tensor_descriptor`):
      the log-weights are contiguous over the rows of the descriptor's key
      dim (e.g. `[Z * H * N]` for the tutorial's `[Z * H * N, D]` view),
      masked by the descriptor's shape.

    The caller passes the compressed length where the kernel takes its key
    length. A kernel argument that bounds the attention loops and also
    serves the queries (self-attention kernels' one `N_CTX`) gets a twin,
    last, `<name>_kv`: the key length, from which the loops' bounds, key
    masks and offsets and the key/value descriptors made in the kernel are
    recomputed. A kernel in which some
    loop looks like attention (a product and an exp) but does not match is
    left unchanged; with `remarks`, every kernel left unchanged gets a
    remark saying why.
  }];
  let options = [
    Option<"remarks", "remarks", "bool", "false",
           "emit a remark on every kernel left unchanged, saying why">
  ];
  let dependentDialects = ["::balancekv::tt::TTDialect",
                           "::mlir::arith::ArithDialect"];
}

#endif // BALANCEKV_TRANSFORMS_PASSES_TD
