//===- BalanceKVDialect.td - BalanceKV dialect ---------------*- tablegen -*-===//

#ifndef BALANCEKV_DIALECT_TD
#define BALANCEKV_DIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def BalanceKV_Dialect : Dialect {
  let name = "balancekv";
  let cppNamespace = "::balancekv";
  let summary = "KV-cache compression by discrepancy theory (BalanceKV)";
  let description = [{
    Tensor-level ops that express attention over a long KV cache, its
    compression into a small weighted cache (BalanceKV and baselines), and
    attention over the compressed cache with a log-weight bias on the logits.

    Shapes follow the `[batch, heads, seq, dim]` convention. Queries have `Hq`
    heads, keys and values `Hkv` heads; grouped-query attention (GQA) maps
    query head `h` to KV head `h / (Hq / Hkv)`. Element types are `f16`,
    `bf16` or `f32`; all math accumulates in `f32` or wider.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::tensor::TensorDialect",
    "::mlir::linalg::LinalgDialect"
  ];
  let useDefaultAttributePrinterParser = 1;
  let hasCanonicalizer = 0;
}

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def BalanceKV_MethodBalance   : I32EnumAttrCase<"Balance",   0, "balance">;
def BalanceKV_MethodUniform   : I32EnumAttrCase<"Uniform",   1, "uniform">;
def BalanceKV_MethodStreaming : I32EnumAttrCase<"Streaming", 2, "streaming">;
def BalanceKV_MethodSnapKV    : I32EnumAttrCase<"SnapKV",    3, "snapkv">;
def BalanceKV_MethodKNorm     : I32EnumAttrCase<"KNorm",     4, "knorm">;
def BalanceKV_MethodAdaptive  : I32EnumAttrCase<"Adaptive",  5, "adaptive">;

def BalanceKV_CompressionMethod : I32EnumAttr<"CompressionMethod",
    "how the compressed middle of the cache is selected",
    [BalanceKV_MethodBalance, BalanceKV_MethodUniform,
     BalanceKV_MethodStreaming, BalanceKV_MethodSnapKV,
     BalanceKV_MethodKNorm, BalanceKV_MethodAdaptive]> {
  let cppNamespace = "::balancekv";
  let genSpecializedAttr = 0;
}

def BalanceKV_CompressionMethodAttr
    : EnumAttr<BalanceKV_Dialect, BalanceKV_CompressionMethod, "method"> {
  let assemblyFormat = "`<` $value `>`";
}

//===----------------------------------------------------------------------===//
// Compression parameters
//===----------------------------------------------------------------------===//

def BalanceKV_CompressParamsAttr
    : AttrDef<BalanceKV_Dialect, "CompressParams"> {
  let mnemonic = "compress_params";
  let summary = "a compression method and its parameters (spec sections 2-4)";
  let description = [{
    The method and the spec's parameters, as one value. Written as a list of
    `name = value` pairs where only what differs from the defaults appears:

    ```mlir
    #balancekv.compress_params<method = uniform, rounds = 3, seed = 9>
    ```

    The names, their C++ types and defaults come from the parameter table of
    `balancekv/Support/CompressParams.h` (`rounds`, `block_size`, `sink`,
    `recent`, `gamma`, `temperature`, `c0`, `seed`, `scale`); `method` is
    `balance` (the default), `uniform`, `streaming`, `snapkv` or `knorm`.
    Ranges are checked by the ops that carry it, with the message of
    `CompressParams::validate()`.
  }];
  let parameters = (ins
    DefaultValuedParameter<"CompressionMethod", "CompressionMethod::Balance",
                           "how the middle is selected">:$method,
    AttrParameter<"::balancekv::CompressParams", "the numeric parameters">:$values);
  let hasCustomAssemblyFormat = 1;
  let extraClassDeclaration = [{
    /// The entries and the closing `>` (ops print the value without its
    /// prefix: custom<CompressParams>).
    static CompressParamsAttr parseAfterLess(::mlir::AsmParser &parser);
  }];
}

#endif // BALANCEKV_DIALECT_TD
