//===- BalanceKVToLoops.h - BalanceKV to linalg/scf patterns ----*- C++ -*-===//
#ifndef BALANCEKV_CONVERSION_BALANCEKVTOLOOPS_BALANCEKVTOLOOPS_H
#define BALANCEKV_CONVERSION_BALANCEKVTOLOOPS_BALANCEKVTOLOOPS_H

#include "mlir/IR/PatternMatch.h"

namespace balancekv {

/// attention and weighted_attention => linalg.generic on tensors.
void populateAttentionToLoopsPatterns(mlir::RewritePatternSet &patterns);

/// compress => scf.for / linalg.generic / tensor ops with Philox in arith.
void populateCompressToLoopsPatterns(mlir::RewritePatternSet &patterns);

/// Both of the above.
inline void populateBalanceKVToLoopsPatterns(mlir::RewritePatternSet &patterns) {
  populateAttentionToLoopsPatterns(patterns);
  populateCompressToLoopsPatterns(patterns);
}

} // namespace balancekv

#endif // BALANCEKV_CONVERSION_BALANCEKVTOLOOPS_BALANCEKVTOLOOPS_H
