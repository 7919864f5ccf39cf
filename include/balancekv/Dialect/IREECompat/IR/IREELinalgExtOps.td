//===- IREELinalgExtOps.td - IREE's iree_linalg_ext, re-declared -*- tablegen -*-===//
//
// IREE exports no MLIR dialect library to link against, so balancekv carries
// its own declaration of the one op of `iree_linalg_ext` that attention
// arrives as in IREE's input IR (`iree-compile --compile-to=input`, e.g.
// PyTorch's scaled_dot_product_attention through iree-turbine): the same
// name, operands (inputs then outputs, no segment sizes), `indexing_maps`
// property and score region, in both printed forms IREE uses, so that
// balancekv-opt reads it and IREE reads balancekv-opt's output.
//
//===----------------------------------------------------------------------===//

#ifndef BALANCEKV_IREECOMPAT_OPS_TD
#define BALANCEKV_IREECOMPAT_OPS_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/CommonAttrConstraints.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def IREELinalgExt_Dialect : Dialect {
  let name = "iree_linalg_ext";
  let cppNamespace = "::balancekv::iree_linalg_ext";
  let summary = "IREE's `iree_linalg_ext` attention op, as balancekv reads it";
  let description = [{
    A re-declaration of `iree_linalg_ext.attention` and its terminator
    `iree_linalg_ext.yield` (IREE 3.13), for `--balancekv-raise-attention`.
  }];
}

def IREELinalgExt_AttentionOp : Op<IREELinalgExt_Dialect, "attention",
    [SingleBlockImplicitTerminator<"YieldOp">, Pure]> {
  let summary = "softmax(scale Q Kᵀ [+ mask]) V, with a score region";
  let description = [{
    Operands: query, key, value, scale (a scalar), an optional mask, then
    the outputs; `indexing_maps` holds one map per operand (the scale's has
    no results) over the loops `(batch..., m, n, k1, k2)`. The region maps
    each score before the softmax (`^bb0(%score): yield %score` when plain).

    ```mlir
    %o = iree_linalg_ext.attention <indexing_maps = [#q, #k, #v, #s, #o]>
        ins(%q, %k, %v, %scale : tensor<8x1x64xf32>, tensor<8x512x64xf32>,
                                 tensor<8x512x64xf32>, f32)
        outs(%init : tensor<8x1x64xf32>) {
    ^bb0(%score: f32):
      iree_linalg_ext.yield %score : f32
    } -> tensor<8x1x64xf32>
    ```
  }];
  let arguments = (ins Variadic<AnyType>:$operandList,
                       AffineMapArrayAttr:$indexing_maps,
                       OptionalAttr<DictionaryAttr>:$decomposition_config);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let regions = (region SizedRegion<1>:$region);
  let hasCustomAssemblyFormat = 1;
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The inputs (query, key, value, scale[, mask]): every operand but the
    /// outputs, one per result.
    ::mlir::OperandRange getInputs() {
      return getOperandList().drop_back(getNumResults());
    }
    ::mlir::OperandRange getOutputs() {
      return getOperandList().take_back(getNumResults());
    }
    ::mlir::Value getQuery() { return getInputs()[0]; }
    ::mlir::Value getKey() { return getInputs()[1]; }
    ::mlir::Value getValue() { return getInputs()[2]; }
    ::mlir::Value getScale() { return getInputs()[3]; }
    /// Null when there is none.
    ::mlir::Value getMask() {
      return getInputs().size() > 4 ? ::mlir::Value(getInputs()[4])
                                    : ::mlir::Value();
    }
  }];
}

def IREELinalgExt_YieldOp : Op<IREELinalgExt_Dialect, "yield",
    [Pure, ReturnLike, Terminator, HasParent<"AttentionOp">]> {
  let summary = "the score region's result";
  let arguments = (ins Variadic<AnyType>:$operands);
  let assemblyFormat = "attr-dict ($operands^ `:` type($operands))?";
  let builders = [OpBuilder<(ins), [{ /* nothing */ }]>];
}

#endif // BALANCEKV_IREECOMPAT_OPS_TD
