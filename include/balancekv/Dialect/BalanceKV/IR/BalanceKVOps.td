//===- BalanceKVOps.td - BalanceKV operations ----------------*- tablegen -*-===//

#ifndef BALANCEKV_OPS_TD
#define BALANCEKV_OPS_TD

include "balancekv/Dialect/BalanceKV/IR/BalanceKVDialect.td"
include "mlir/IR/CommonAttrConstraints.td"
include "mlir/Dialect/Linalg/IR/LinalgInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

// Every op is pure: compression is a deterministic function of its operands
// and the `seed` attribute, so CSE and loop-invariant code motion apply.
class BalanceKV_Op<string mnemonic, list<Trait> traits = []>
    : Op<BalanceKV_Dialect, mnemonic, !listconcat([Pure], traits)> {
  let hasVerifier = 1;
}

// A signless i64 attribute read back as int64_t (upstream I64Attr returns
// uint64_t, which would hide negative values from the verifier).
def BalanceKV_I64Attr : TypedSignlessIntegerAttrBase<I64, "int64_t",
                                                     "64-bit integer attribute"> {
  let convertFromStorage = "$_self.getValue().getSExtValue()";
}

def BalanceKV_FloatTensor : RankedTensorOf<[F16, BF16, F32]>;
def BalanceKV_LengthTensor : RankedTensorOf<[I32, I64, Index]>;

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

def BalanceKV_AttentionOp : BalanceKV_Op<"attention",
    [DeclareOpInterfaceMethods<AggregatedOpInterface, ["decomposeOperation"]>]> {
  let summary = "exact attention over a KV cache";
  let description = [{
    `softmax(scale * Q Kᵀ) V` per (batch, query head), with query
    `[B, Hq, L, D]`, key `[B, Hkv, N, D]`, value `[B, Hkv, N, Dv]` and result
    `[B, Hq, L, Dv]`. Query head `h` reads KV head `h / (Hq / Hkv)` (GQA).

    - `scale` defaults to `1/sqrt(D)` when absent.
    - `causal`: query `i` sits at cache position `N - L + i` and sees cache
      positions `<= N - L + i`.
    - `kv_len` (optional, `[B]` integers): cache positions `>= kv_len[b]` of
      batch `b` are padding and are ignored; with `causal`, query `i` then
      sits at `kv_len[b] - L + i`. `[B, Hkv]` gives one length per KV head
      (ragged heads, as method `adaptive` keeps them: spec section 6), read
      the same way per (batch, KV head). Every back end (reference, CPU and GPU
      lowerings, CUDA kernels) clamps `kv_len[b]` to `[0, N]` first: a
      negative length sees no key (zeros), one past `N` is `N`.
    - Range: the compiled back ends compute logits in f32 (the reference in
      f64). Where `|scale * <q, k>|` overflows f32 (about 3.4e38, e.g. keys
      near the f32 maximum) they give NaN; scale such inputs down first.
      Head counts that the verifier cannot see (dynamic `Hq`, `Hkv`) are
      checked when the program runs.

    Example:

    ```mlir
    %o = balancekv.attention %q, %k, %v causal
        : tensor<1x32x1x128xf16>, tensor<1x8x4096x128xf16>,
          tensor<1x8x4096x128xf16> -> tensor<1x32x1x128xf16>
    ```
  }];
  let arguments = (ins BalanceKV_FloatTensor:$query,
                       BalanceKV_FloatTensor:$key,
                       BalanceKV_FloatTensor:$value,
                       Optional<BalanceKV_LengthTensor>:$kv_len,
                       OptionalAttr<F32Attr>:$scale,
                       UnitAttr:$causal);
  let results = (outs BalanceKV_FloatTensor:$result);
  let assemblyFormat = [{
    $query `,` $key `,` $value (`kv_len` `(` $kv_len^ `:` type($kv_len) `)`)?
    (`causal` $causal^)? (`scale` `(` $scale^ `)`)? attr-dict
    `:` type($query) `,` type($key) `,` type($value) `->` type($result)
  }];
  let extraClassDeclaration = [{
    /// The effective softmax scale: the attribute, or 1/sqrt(D).
    float getEffectiveScale();
  }];
}

//===----------------------------------------------------------------------===//
// CompressOp
//===----------------------------------------------------------------------===//

def BalanceKV_CompressOp : BalanceKV_Op<"compress",
    [InferTypeOpAdaptor,
     DeclareOpInterfaceMethods<AggregatedOpInterface, ["decomposeOperation"]>]> {
  let summary = "compress a KV cache into kept tokens with log-weights";
  let description = [{
    Keeps the first `sink` and last `recent` tokens of every (batch, KV head)
    exactly and reduces the `L_0` tokens in between to `L_0 >> rounds` kept
    tokens with positive weights, as specified in
    `balancekv-spec.md` (sections 2 to 4). Results: compressed key
    `[B, Hkv, M, D]`, compressed value `[B, Hkv, M, Dv]` and `log_weights`
    `[B, Hkv, M]` (`f32`), where `M = S' + (L_0 >> rounds) + W'` is inferred
    when `N` is static and dynamic otherwise.

    The method and its parameters are one `#balancekv.compress_params`
    value, written after the operands without its prefix and holding only
    what differs from the defaults (absent: all defaults). `method` selects
    the algorithm: `balance` (self-balancing walk; the default), `uniform`,
    `streaming`, `snapkv` (needs the `observe` operand: the last queries
    `[B, Hq, Lobs, D]`) or `knorm`. `gamma`, `temperature`, `c0` and
    `block_size` parameterise the walk; `seed` drives the counter-based
    Philox random numbers, so the op is a pure function.

    Example:

    ```mlir
    %ck, %cv, %lw = balancekv.compress %k, %v <rounds = 3, seed = 7>
        : tensor<1x8x4096x128xf16>, tensor<1x8x4096x128xf16>
    ```
  }];
  let arguments = (ins
    BalanceKV_FloatTensor:$key,
    BalanceKV_FloatTensor:$value,
    Optional<BalanceKV_FloatTensor>:$observation,
    OptionalAttr<BalanceKV_CompressParamsAttr>:$params);
  let results = (outs BalanceKV_FloatTensor:$compressed_key,
                      BalanceKV_FloatTensor:$compressed_value,
                      RankedTensorOf<[F32]>:$log_weights);
  let assemblyFormat = [{
    $key `,` $value
    (`observe` `(` $observation^ `:` type($observation) `)`)?
    custom<CompressParams>($params) attr-dict `:` type($key) `,` type($value)
  }];
  let hasCanonicalizer = 1;
  let builders = [
    // Leaves `params` absent when it holds only defaults (the canonical form).
    OpBuilder<(ins "::mlir::Value":$key, "::mlir::Value":$value,
                   "::mlir::Value":$observation, "CompressionMethod":$method,
                   "const ::balancekv::CompressParams &":$values)>
  ];
  let extraClassDeclaration = [{
    /// Compressed length M for a static cache length `n`.
    int64_t getCompressedLength(int64_t n);
    /// The spec's parameters (defaults where `params` is absent; scale 0:
    /// 1/sqrt(D)).
    ::balancekv::CompressParams getCompressParams();
    /// The method (balance where `params` is absent).
    CompressionMethod getMethod();
    int64_t getRounds() { return getCompressParams().rounds; }
    int64_t getSink() { return getCompressParams().sink; }
    int64_t getRecent() { return getCompressParams().recent; }
    /// The effective scale s used in the kernel exponent: the attribute, or
    /// 1/sqrt(D).
    float getEffectiveScale();
  }];
}

//===----------------------------------------------------------------------===//
// WeightedAttentionOp
//===----------------------------------------------------------------------===//

def BalanceKV_WeightedAttentionOp : BalanceKV_Op<"weighted_attention",
    [DeclareOpInterfaceMethods<AggregatedOpInterface, ["decomposeOperation"]>]> {
  let summary = "attention over a compressed cache with log-weight bias";
  let description = [{
    `softmax(scale * Q Kᵀ + log_weights) V`: attention over the kept tokens
    where each logit of kept token `j` is biased by `log_weights[b, h, j]`,
    i.e. the weighted softmax of the spec (section 1). Query `[B, Hq, L, D]`,
    key `[B, Hkv, M, D]`, value `[B, Hkv, M, Dv]`, log-weights `[B, Hkv, M]`
    (`f32`); result `[B, Hq, L, Dv]`. GQA, `scale`, `causal` and `kv_len`
    follow `balancekv.attention`, with positions counted in the compressed
    cache (the recent window is its tail, so causal decoding stays exact).

    Example:

    ```mlir
    %o = balancekv.weighted_attention %q, %ck, %cv, %lw
        : tensor<1x32x1x128xf16>, tensor<1x8x1088x128xf16>,
          tensor<1x8x1088x128xf16>, tensor<1x8x1088xf32>
          -> tensor<1x32x1x128xf16>
    ```
  }];
  let arguments = (ins BalanceKV_FloatTensor:$query,
                       BalanceKV_FloatTensor:$key,
                       BalanceKV_FloatTensor:$value,
                       RankedTensorOf<[F32]>:$log_weights,
                       Optional<BalanceKV_LengthTensor>:$kv_len,
                       OptionalAttr<F32Attr>:$scale,
                       UnitAttr:$causal);
  let results = (outs BalanceKV_FloatTensor:$result);
  let assemblyFormat = [{
    $query `,` $key `,` $value `,` $log_weights
    (`kv_len` `(` $kv_len^ `:` type($kv_len) `)`)?
    (`causal` $causal^)? (`scale` `(` $scale^ `)`)? attr-dict
    `:` type($query) `,` type($key) `,` type($value) `,` type($log_weights)
    `->` type($result)
  }];
  let hasCanonicalizer = 1;
  let extraClassDeclaration = [{
    float getEffectiveScale();
  }];
}

//===----------------------------------------------------------------------===//
// GatherPagesOp
//===----------------------------------------------------------------------===//

def BalanceKV_GatherPagesOp : BalanceKV_Op<"gather_pages",
    [DeclareOpInterfaceMethods<AggregatedOpInterface, ["decomposeOperation"]>]> {
  let summary = "the sequences of a paged KV cache, as a [B, H, N, D] cache";
  let description = [{
    A paged KV cache as serving engines hold one (vLLM, FlashInfer, SGLang):
    a pool of pages of `P` token slots for every KV head, and a block table
    whose row `b` lists sequence `b`'s pages in order, anywhere in the pool.
    The result is sequence-major, as every other op reads a cache:

      `result[b, h, j, x] = pool[block_table[b, j / P], j % P, h, x]`

    with pool `[pages, P, H, D]` (NHD), or `[pages, H, P, D]` (HND) with
    `heads_major`; block table `[B, max_pages]` `i32`; result `[B, H, N, D]`
    with `N <= max_pages * P` (a dynamic `N` is `max_pages * P`). The page
    size `P` must be static. Page ids must be pages of the pool (the table is
    data: out-of-range ids are undefined behaviour, as in the engines).

    Lowering: `--balancekv-lower-to-runtime-calls` does not materialise it
    where it feeds `compress`, `weighted_attention` or `attention` as both
    key and value (one table): the CUDA kernels read the pages through the
    table (`balancekv_compress_paged`, `..._decode_attention_paged`, results
    bit-identical to the dense ones). Elsewhere it decomposes into a
    `linalg.generic` gather (`--balancekv-lower-to-loops`).

    ```mlir
    %k = balancekv.gather_pages %key_pool, %table
        : tensor<512x16x8x128xbf16>, tensor<4x128xi32> -> tensor<4x8x2048x128xbf16>
    ```
  }];
  let arguments = (ins BalanceKV_FloatTensor:$pool,
                       RankedTensorOf<[I32]>:$block_table,
                       UnitAttr:$heads_major);
  let results = (outs BalanceKV_FloatTensor:$result);
  let assemblyFormat = [{
    $pool `,` $block_table (`heads_major` $heads_major^)? attr-dict
    `:` type($pool) `,` type($block_table) `->` type($result)
  }];
  let extraClassDeclaration = [{
    /// The pool's dimension holding the slots of a page (1, or 2 with
    /// heads_major) and the one holding the heads.
    int64_t getSlotDim() { return getHeadsMajor() ? 2 : 1; }
    int64_t getHeadDim() { return getHeadsMajor() ? 1 : 2; }
    int64_t getPageSize();
  }];
}

//===----------------------------------------------------------------------===//
// Compression stages: what `compress` (method balance) decomposes into
//===----------------------------------------------------------------------===//
//
// The round structure of the spec (sections 2-3) is written once, in
// CompressOp's decomposition:
//
//   %tok, %dbl = balancekv.balance_init %key <params>
//   %t, %d = scf.for %round = 0 to T iter_args(%tok, %dbl) {
//     %signs = balancekv.balance_walk %key, %value, %t, %d, %round <params>
//     %t', %d' = balancekv.balance_halve %signs, %t, %d, %round
//   }
//   %ck, %cv, %lw = balancekv.gather_kept %key, %value, %t, %d <params>
//
// and every back end lowers the four stages. The state between stages is
// per (batch, KV head): `tokens` (i32 positions into the middle [S', N - W'))
// and `doublings` (i32 r: the token's weight is 2^r), [B, Hkv, L_0], of which
// round t reads the first L_t = L_0 >> t entries; entries past them are
// undefined.

class BalanceKV_StageOp<string mnemonic, list<Trait> traits = []>
    : BalanceKV_Op<mnemonic, !listconcat([InferTypeOpAdaptor], traits)>;

def BalanceKV_StateTensor : RankedTensorOf<[I32]>;

def BalanceKV_BalanceInitOp : BalanceKV_StageOp<"balance_init"> {
  let summary = "the walk's initial state: every middle token, weight 1";
  let description = [{
    `tokens[b, h, i] = i` and `doublings[b, h, i] = 0` for the `L_0` middle
    tokens of a cache shaped like `key` (`[B, Hkv, N, D]`) under `params`'
    sink and recent window; both results are `[B, Hkv, L_0]` `i32`.

    ```mlir
    %tok, %dbl = balancekv.balance_init %k <rounds = 3> : tensor<1x8x4096x128xf16>
    ```
  }];
  let arguments = (ins BalanceKV_FloatTensor:$key,
                       OptionalAttr<BalanceKV_CompressParamsAttr>:$params);
  let results = (outs BalanceKV_StateTensor:$tokens,
                      BalanceKV_StateTensor:$doublings);
  let assemblyFormat = [{
    $key custom<CompressParams>($params) attr-dict `:` type($key)
  }];
  let extraClassDeclaration = [{
    ::balancekv::CompressParams getCompressParams();
  }];
}

def BalanceKV_BalanceWalkOp : BalanceKV_StageOp<"balance_walk",
    [AllTypesMatch<["tokens", "doublings"]>]> {
  let summary = "one round's self-balancing walk (spec section 3, steps 1-3)";
  let description = [{
    For every (batch, KV head) and block of `block_size` tokens of the first
    `L_t = L_0 >> round` entries of `tokens` / `doublings`: the block's keys
    centred, the exp-kernel Gram over centred keys and weighted values
    (`w = 2^doublings`), and the walk's signs. `signs[b, h, i]` is `+1` or
    `-1` (`i8`) for `i < L_t`. The random numbers are Philox at
    (`seed`; token in block, block, `round`, batch, head).

    ```mlir
    %s = balancekv.balance_walk %k, %v, %tok, %dbl, %round <rounds = 3>
        : tensor<1x8x4096x128xf16>, tensor<1x8x4096x128xf16>, tensor<1x8x4032xi32>
    ```
  }];
  let arguments = (ins BalanceKV_FloatTensor:$key,
                       BalanceKV_FloatTensor:$value,
                       BalanceKV_StateTensor:$tokens,
                       BalanceKV_StateTensor:$doublings,
                       Index:$round,
                       OptionalAttr<BalanceKV_CompressParamsAttr>:$params);
  let results = (outs RankedTensorOf<[I8]>:$signs);
  let assemblyFormat = [{
    $key `,` $value `,` $tokens `,` $doublings `,` $round
    custom<CompressParams>($params) attr-dict
    `:` type($key) `,` type($value) `,` type($tokens)
  }];
  let extraClassDeclaration = [{
    ::balancekv::CompressParams getCompressParams();
    /// The walk's kernel scale s: `scale`, or 1/sqrt(D) (double, as the
    /// reference computes it).
    double getKernelScale();
  }];
}

def BalanceKV_BalanceHalveOp : BalanceKV_Op<"balance_halve",
    [AllTypesMatch<["tokens", "doublings", "next_tokens", "next_doublings"]>]> {
  let summary = "one round's crossover selection (spec section 3, step 4)";
  let description = [{
    Over the first `L_t = L_0 >> round` entries: the crossover `c` (where the
    running count of one sign first reaches `h = floor(L_t / 2)`), the kept
    sign `kappa = -signs[c]`, and the `h` kept tokens in order: the
    `kappa`-signed ones up to `c` (doublings + 1), then every one after `c`.
    Results: the next round's `tokens` and `doublings`, first `h` entries.

    ```mlir
    %t2, %d2 = balancekv.balance_halve %s, %tok, %dbl, %round
        : tensor<1x8x4032xi8>, tensor<1x8x4032xi32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[I8]>:$signs,
                       BalanceKV_StateTensor:$tokens,
                       BalanceKV_StateTensor:$doublings,
                       Index:$round);
  let results = (outs BalanceKV_StateTensor:$next_tokens,
                      BalanceKV_StateTensor:$next_doublings);
  let assemblyFormat = [{
    $signs `,` $tokens `,` $doublings `,` $round attr-dict
    `:` type($signs) `,` type($tokens)
  }];
}

def BalanceKV_GatherKeptOp : BalanceKV_StageOp<"gather_kept",
    [AllTypesMatch<["tokens", "doublings"]>]> {
  let summary = "the compressed cache: sink, kept middle, recent window";
  let description = [{
    The results of `compress`: rows `[0, S')`, then the middle tokens
    `S' + tokens[b, h, j]` for `j < L_T` with log-weight
    `doublings[b, h, j] * ln 2` (rounded once to `f32`), then the last `W'`
    rows; sink and recent rows have log-weight 0.

    ```mlir
    %ck, %cv, %lw = balancekv.gather_kept %k, %v, %t, %d <rounds = 3>
        : tensor<1x8x4096x128xf16>, tensor<1x8x4096x128xf16>, tensor<1x8x4032xi32>
    ```
  }];
  let arguments = (ins BalanceKV_FloatTensor:$key,
                       BalanceKV_FloatTensor:$value,
                       BalanceKV_StateTensor:$tokens,
                       BalanceKV_StateTensor:$doublings,
                       OptionalAttr<BalanceKV_CompressParamsAttr>:$params);
  let results = (outs BalanceKV_FloatTensor:$compressed_key,
                      BalanceKV_FloatTensor:$compressed_value,
                      RankedTensorOf<[F32]>:$log_weights);
  let assemblyFormat = [{
    $key `,` $value `,` $tokens `,` $doublings
    custom<CompressParams>($params) attr-dict
    `:` type($key) `,` type($value) `,` type($tokens)
  }];
  let extraClassDeclaration = [{
    ::balancekv::CompressParams getCompressParams();
  }];
}

#endif // BALANCEKV_OPS_TD
