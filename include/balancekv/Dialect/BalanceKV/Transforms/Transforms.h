//===- Transforms.h - BalanceKV rewrite patterns ----------------*- C++ -*-===//
//
// The patterns behind --balancekv-raise-attention,
// --balancekv-compress-kv-cache and --balancekv-decompose-compress, and the
// kernel rewrite behind --balancekv-triton-weighted-attention, for compilers
// that run them in their own pass pipelines or pattern sets.
//
//===----------------------------------------------------------------------===//
#ifndef BALANCEKV_DIALECT_BALANCEKV_TRANSFORMS_TRANSFORMS_H
#define BALANCEKV_DIALECT_BALANCEKV_TRANSFORMS_TRANSFORMS_H

#include "balancekv/Dialect/BalanceKV/IR/BalanceKVOps.h"
#include "balancekv/Support/CompressParams.h"

#include "mlir/IR/PatternMatch.h"

namespace balancekv {

/// Attention spelled in linalg/tensor IR (contraction, optional scale and
/// causal mask, softmax, contraction) => balancekv.attention.
void populateRaiseAttentionPatterns(mlir::RewritePatternSet &patterns);

/// The patterns that bring front ends' attention into one shape before
/// raising (NormalizeAttention.cpp): named ops generalised, heads folded
/// into a batch dim around contractions unfolded, keepdim re-expansions read
/// through, data-movement generics fused into their consumers.
void populateAttentionNormalizationPatterns(mlir::RewritePatternSet &patterns);
/// Those patterns, bounded, then CSE; fails when the IR does not settle.
llvm::LogicalResult normalizeAttentionIR(mlir::Operation *root);

/// Which attention --balancekv-compress-kv-cache rewrites, and how.
struct CompressKVCacheOptions {
  CompressionMethod method = CompressionMethod::Balance;
  CompressParams params;
  int64_t minKvLen = 1024; ///< compress only caches at least this long
  int64_t maxQueryLen =
      16; ///< only attention with <= this many queries (0: any)
  bool allowDynamic = false; ///< also caches of dynamic length
};

/// attention => weighted_attention over compress(key, value), where the
/// rewrite keeps the structure exact (see the pass's description).
/// `options.params` must be valid (CompressParams::validate()).
void populateCompressKVCachePatterns(mlir::RewritePatternSet &patterns,
                                     const CompressKVCacheOptions &options);

/// compress (method balance) => its stages: balance_init, the rounds of
/// balance_walk + balance_halve (an scf.for, or unrolled), gather_kept
/// (decomposeCompress). Other methods are left alone.
void populateDecomposeCompressPatterns(mlir::RewritePatternSet &patterns,
                                       bool unrollRounds);

namespace tt {
class FuncOp;
} // namespace tt

/// --balancekv-triton-weighted-attention on one Triton kernel (see the
/// pass's description): its attention loops add the log-weights of a
/// compressed cache to their logits; the kernel gains `LW`, the twin
/// strides and, where needed, a key length as last arguments and is marked
/// `balancekv.log_weights`. Fails, changing nothing, when a loop that looks
/// like attention does not match; `whyNot` then says why.
llvm::LogicalResult rewriteTritonAttentionKernel(tt::FuncOp kernel,
                                                 std::string *whyNot = nullptr);

} // namespace balancekv

#endif // BALANCEKV_DIALECT_BALANCEKV_TRANSFORMS_TRANSFORMS_H
