//===- TMTensorOps.td - torch-mlir's tm_tensor attention, re-declared -*- tablegen -*-===//
//
// torch-mlir lowers scaled_dot_product_attention with a mask (e.g.
// `is_causal=True`) to `tm_tensor.attention`; balancekv-opt declares that
// one op (same name, operands, printed form) to read such exports.
//
//===----------------------------------------------------------------------===//

#ifndef BALANCEKV_TMTENSOR_OPS_TD
#define BALANCEKV_TMTENSOR_OPS_TD

include "mlir/IR/OpBase.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def TMTensor_Dialect : Dialect {
  let name = "tm_tensor";
  let cppNamespace = "::balancekv::tm_tensor";
  let summary = "torch-mlir's `tm_tensor.attention`, as balancekv reads it";
}

def TMTensor_AttentionOp : Op<TMTensor_Dialect, "attention",
    [Pure, AttrSizedOperandSegments]> {
  let summary = "softmax(Q Kᵀ / sqrt(D) [+ mask]) V";
  let description = [{
    Inputs query, key, value and an optional additive mask (all
    `[batch..., seq, dim]` / `[batch..., L, N]`), one output; the scale is
    1/sqrt(D).

    ```mlir
    %o = tm_tensor.attention ins(%q, %k, %v, %mask : tensor<8x4x64xf32>,
        tensor<8x512x64xf32>, tensor<8x512x64xf32>, tensor<8x4x512xf32>)
        outs(%init : tensor<8x4x64xf32>) -> tensor<8x4x64xf32>
    ```
  }];
  let arguments = (ins Variadic<AnyRankedTensor>:$inputs,
                       Variadic<AnyRankedTensor>:$outputs);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let assemblyFormat = [{
    attr-dict `ins` `(` $inputs `:` type($inputs) `)`
    `outs` `(` $outputs `:` type($outputs) `)` (`->` type($results)^)?
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    ::mlir::Value getMask() {
      return getInputs().size() > 3 ? ::mlir::Value(getInputs()[3])
                                    : ::mlir::Value();
    }
  }];
}

#endif // BALANCEKV_TMTENSOR_OPS_TD
