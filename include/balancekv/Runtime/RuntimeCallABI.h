/*===- RuntimeCallABI.h - the memref entry points' calling convention -----===*
 *
 * The one declaration of the calls that --balancekv-lower-to-runtime-calls
 * emits and kernels/cuda/MemRefShim.cpp implements: entry names and, per
 * entry, every parameter in call order with its kind. The lowering builds
 * its operand list from these tables (and checks each operand's type against
 * the kind); the shim's signatures are generated from them. Changing an
 * entry point means changing its table here, nothing else in step.
 *
 * Kinds (a table entry X(KIND, NAME) may pass KIND as a macro naming one:
 * users paste it through one more macro level): MEMREF1/2/3/4 (a ranked
 * memref of that rank, any layout, passed as a descriptor pointer through
 * `llvm.emit_c_interface`), I32, I64, F32, F64. Every entry returns the C
 * API's balancekv_status as i32.
 *===----------------------------------------------------------------------===*/
#ifndef BALANCEKV_RUNTIME_RUNTIMECALLABI_H
#define BALANCEKV_RUNTIME_RUNTIMECALLABI_H

#include "balancekv/Support/CompressParams.h"

/* The compression parameters follow `method` in the order and with the names
 * of CompressParams.h's table, each passed as the kind of its C++ type. */
#define BALANCEKV_RT_KIND_int64_t I64
#define BALANCEKV_RT_KIND_uint64_t I64
#define BALANCEKV_RT_KIND_double F64
#define BALANCEKV_RT_KIND_float F32
#define BALANCEKV_RT_PARAM_ENTRY(X, type, member, name, dflt, doc)            \
  X(BALANCEKV_RT_KIND_##type, name)

/* Every compression entry ends with its results and its parameters. */
#define BALANCEKV_RT_COMPRESS_RESULT_PARAMS(X)                                 \
  X(MEMREF4, compressed_key)                                                   \
  X(MEMREF4, compressed_value)                                                 \
  X(MEMREF3, log_weights)                                                      \
  X(I32, method) /* balancekv_method */                                        \
  BALANCEKV_COMPRESS_PARAMS_WITH(BALANCEKV_RT_PARAM_ENTRY, X)

/* balancekv_rt_compress_<f16|bf16|f32>: compression into fresh buffers. */
#define BALANCEKV_RT_COMPRESS_PARAMS(X)                                        \
  X(MEMREF4, key)                                                              \
  X(MEMREF4, value)                                                            \
  BALANCEKV_RT_COMPRESS_RESULT_PARAMS(X)

/* What every decode entry takes after its cache. */
#define BALANCEKV_RT_DECODE_TAIL_PARAMS(X)                                     \
  X(MEMREF3, log_weights)                                                      \
  X(I32, has_log_weights)                                                      \
  X(MEMREF1, kv_len)                                                           \
  X(I32, has_kv_len)                                                           \
  X(MEMREF4, out)                                                              \
  X(F32, scale)                                                                \
  X(I32, causal)

/* balancekv_rt_weighted_decode_<f16|bf16|f32>: attention over a (compressed)
 * cache; absent log-weights and kv_len are empty buffers with a 0 flag;
 * has_kv_len 1: kv_len is [B], 2: per KV head [B * Hkv] (ragged heads). */
#define BALANCEKV_RT_WEIGHTED_DECODE_PARAMS(X)                                 \
  X(MEMREF4, query)                                                            \
  X(MEMREF4, key)                                                              \
  X(MEMREF4, value)                                                            \
  BALANCEKV_RT_DECODE_TAIL_PARAMS(X)

/* balancekv_rt_reference_compress_<f16|bf16|f32>: any method on the CPU
 * reference (kernels/reference/ReferenceMemRef.cpp, in libbalancekv_capi.so
 * and libbalancekv_cuda.so), host buffers; --balancekv-lower-to-loops calls
 * it for method adaptive, whose search over per-head plans has no loop
 * form. observation is [B, Hq, Lobs, D] (empty for methods that read none);
 * padded slots of ragged heads come back as zero rows with log-weight -inf. */
#define BALANCEKV_RT_REFERENCE_COMPRESS_PARAMS(X)                              \
  X(MEMREF4, key)                                                              \
  X(MEMREF4, value)                                                            \
  X(MEMREF4, observation)                                                      \
  BALANCEKV_RT_COMPRESS_RESULT_PARAMS(X)

/* The paged forms (balancekv.gather_pages feeding the op as key and value):
 * key_pool / value_pool [pages, P, H, D], or [pages, H, P, D] with
 * heads_major 1; block_table [B, max_pages] i32 (unit inner stride);
 * tokens: the cache length N a sequence (compress), or M (decode). */
#define BALANCEKV_RT_PAGED_CACHE_PARAMS(X)                                     \
  X(MEMREF4, key_pool)                                                         \
  X(MEMREF4, value_pool)                                                       \
  X(MEMREF2, block_table)                                                      \
  X(I32, heads_major)                                                          \
  X(I64, tokens)

/* balancekv_rt_compress_paged_<f16|bf16|f32>. */
#define BALANCEKV_RT_COMPRESS_PAGED_PARAMS(X)                                  \
  BALANCEKV_RT_PAGED_CACHE_PARAMS(X)                                           \
  BALANCEKV_RT_COMPRESS_RESULT_PARAMS(X)

/* balancekv_rt_weighted_decode_paged_<f16|bf16|f32>: kv_len [B] only
 * (has_kv_len 0 or 1). */
#define BALANCEKV_RT_WEIGHTED_DECODE_PAGED_PARAMS(X)                           \
  X(MEMREF4, query)                                                            \
  BALANCEKV_RT_PAGED_CACHE_PARAMS(X)                                           \
  BALANCEKV_RT_DECODE_TAIL_PARAMS(X)

#define BALANCEKV_RT_COMPRESS_PREFIX "balancekv_rt_compress_"
#define BALANCEKV_RT_COMPRESS_PAGED_PREFIX "balancekv_rt_compress_paged_"
#define BALANCEKV_RT_WEIGHTED_DECODE_PAGED_PREFIX                              \
  "balancekv_rt_weighted_decode_paged_"
#define BALANCEKV_RT_REFERENCE_COMPRESS_PREFIX "balancekv_rt_reference_compress_"
#define BALANCEKV_RT_WEIGHTED_DECODE_PREFIX "balancekv_rt_weighted_decode_"

#endif /* BALANCEKV_RUNTIME_RUNTIMECALLABI_H */
