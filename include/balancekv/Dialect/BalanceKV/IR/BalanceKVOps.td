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
      sits at `kv_len[b] - L + i`. Every back end (reference, CPU and GPU
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
    [InferTypeOpAdaptor]> {
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

#endif // BALANCEKV_OPS_TD
