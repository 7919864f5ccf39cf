//===- BalanceKVToRuntime.h - ops => calls into the CUDA C API --*- C++ -*-===//
#ifndef BALANCEKV_CONVERSION_BALANCEKVTORUNTIME_BALANCEKVTORUNTIME_H
#define BALANCEKV_CONVERSION_BALANCEKVTORUNTIME_BALANCEKVTORUNTIME_H

#include "mlir/IR/PatternMatch.h"

namespace balancekv {

/// Whether the hand-tuned kernels take `op` (a balancekv op), on device
/// buffers with `deviceAlloc`; emits the diagnostic that says why not.
llvm::LogicalResult checkRuntimeCallsSupported(mlir::Operation *op,
                                               bool deviceAlloc);

/// compress / attention / weighted_attention => func.call of the memref
/// entry points declared in balancekv/Runtime/RuntimeCallABI.h, on buffers
/// allocated with memref.alloc, or gpu.alloc with `deviceAlloc`.
void populateBalanceKVToRuntimeCallsPatterns(mlir::RewritePatternSet &patterns,
                                             bool deviceAlloc);

/// The same ops whose key and value are balancekv.gather_pages of one block
/// table => the paged entry points (RuntimeCallABI.h), on the pools and the
/// table: apply before populateBalanceKVToRuntimeCallsPatterns' conversion,
/// which decomposes the gathers left.
void populateBalanceKVPagedToRuntimeCallsPatterns(
    mlir::RewritePatternSet &patterns, bool deviceAlloc);

/// compress with method adaptive => func.call of
/// balancekv_rt_reference_compress_<t> (RuntimeCallABI.h), the CPU
/// reference on host buffers: --balancekv-lower-to-loops uses it, since the
/// method's search over per-head plans has no loop form.
void populateAdaptiveCompressToReferenceCallPatterns(
    mlir::RewritePatternSet &patterns);

} // namespace balancekv

#endif // BALANCEKV_CONVERSION_BALANCEKVTORUNTIME_BALANCEKVTORUNTIME_H
