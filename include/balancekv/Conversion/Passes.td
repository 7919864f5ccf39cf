//===- Passes.td - BalanceKV conversion passes ---------------*- tablegen -*-===//

#ifndef BALANCEKV_CONVERSION_PASSES_TD
#define BALANCEKV_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def BalanceKVLowerToLoopsPass : Pass<"balancekv-lower-to-loops"> {
  let summary = "Lower balancekv ops to linalg, scf, tensor, arith and math";
  let description = [{
    `attention` and `weighted_attention` become a chain of `linalg.generic`
    ops in f32 (Q Kᵀ, scale + log-weights + masks, row max, exp, row sum,
    P V, normalise). `compress` becomes an `scf.for` nest per (batch, KV
    head) that computes exactly the spec's selection in f64: the walk is an
    `scf.for` carrying the running sums, Philox-4x32-10 is built from
    `arith` ops (bit-exact with the reference), and the crossover selection
    is a scan and a compaction. The result is on tensors and bufferizes with
    one-shot bufferization.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect", "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect"
  ];
}

#endif // BALANCEKV_CONVERSION_PASSES_TD
