/*===- BalanceKVRuntime.h - C API of the balancekv CUDA kernels -*- C -*-===*
 *
 * Plain C functions over device pointers. Tensors are [batch, heads, seq,
 * dim] with arbitrary element strides (innermost stride must be 1); outputs
 * are written with the strides given. Every function validates its
 * arguments and returns a status; on failure `balancekv_last_error()` holds
 * a message naming the argument. Nothing aborts, nothing is allocated: the
 * caller passes a workspace of at least the size the *_workspace_size query
 * returns (0 is fine when that is 0) and a stream.
 *
 *===----------------------------------------------------------------------===*/
#ifndef BALANCEKV_RUNTIME_BALANCEKVRUNTIME_H
#define BALANCEKV_RUNTIME_BALANCEKVRUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  BALANCEKV_STATUS_OK = 0,
  BALANCEKV_STATUS_INVALID_ARGUMENT = 1,
  BALANCEKV_STATUS_UNSUPPORTED = 2,
  BALANCEKV_STATUS_WORKSPACE_TOO_SMALL = 3,
  BALANCEKV_STATUS_CUDA_ERROR = 4
} balancekv_status;

typedef enum {
  BALANCEKV_DTYPE_F16 = 0,
  BALANCEKV_DTYPE_BF16 = 1,
  BALANCEKV_DTYPE_F32 = 2
} balancekv_dtype;

/* The CUDA kernels run balance and uniform (others: UNSUPPORTED); the CPU
 * reference's C entry (balancekv_reference_compress) also the streaming and
 * key-norm baselines (spec section 4). */
typedef enum {
  BALANCEKV_METHOD_BALANCE = 0,
  BALANCEKV_METHOD_UNIFORM = 1,
  BALANCEKV_METHOD_STREAMING = 2,
  BALANCEKV_METHOD_KNORM = 3,
  /* These two read observation queries: the CPU reference only
   * (balancekv_reference_compress_observed). */
  BALANCEKV_METHOD_SNAPKV = 4,
  BALANCEKV_METHOD_ADAPTIVE = 5
} balancekv_method;

/* The message of the last failed call on this thread ("" after success). */
const char *balancekv_last_error(void);

/* How this thread's last weighted decode (any entry: dense, ragged, paged)
 * was launched, for tables of the launch choices: the kernel ("tensor-core
 * TMA", "tensor-core cp.async" or "cuda-core"), the splits of each head's
 * keys, the grid (splits, query-row chunks, batch x KV heads), the CTAs
 * resident per SM that the splits were chosen for (0 where the kernel does
 * not ask) and whether a combine kernel merged the splits. INVALID_ARGUMENT
 * for a null `out` or before any decode on this thread. */
typedef struct {
  const char *kernel;
  int32_t splits, grid_x, grid_y, grid_z, ctas_per_sm, combine;
} balancekv_decode_launch;
balancekv_status balancekv_last_decode_launch(balancekv_decode_launch *out);

/* A rank-4 tensor view: data plus element strides for [b, h, s, d]. */
typedef struct {
  const void *data;
  int64_t strides[4];
} balancekv_tensor;

typedef struct {
  void *data;
  int64_t strides[4];
} balancekv_mutable_tensor;

typedef struct {
  balancekv_method method;
  int64_t rounds;     /* T in [0, 16] */
  int64_t block_size; /* even, 2..128 */
  int64_t sink;
  int64_t recent;
  double gamma;
  double temperature;
  double c0;
  uint64_t seed;
  float scale; /* 0: 1/sqrt(D) */
  int64_t budget; /* adaptive: mean tokens per KV head (0: the layout's M) */
} balancekv_compress_params;

/* Fills the spec's defaults (balance, T = 2, B = 128, S = W = 32, ...). */
void balancekv_compress_params_init(balancekv_compress_params *params);

/* M = S' + (L_0 >> T) + W' for a cache of n tokens (spec section 2). */
int64_t balancekv_compressed_length(int64_t n, int64_t sink, int64_t recent,
                                    int64_t rounds);

balancekv_status balancekv_compress_workspace_size(
    int64_t batch, int64_t heads, int64_t n,
    const balancekv_compress_params *params, size_t *bytes);

/* Compresses key [B, H, N, D] / value [B, H, N, Dv] into out_key
 * [B, H, M, D], out_value [B, H, M, Dv] (same dtype), out_log_weights
 * [B, H, M] (f32, contiguous) and, when non-null, out_indices [B, H, M]
 * (int32, contiguous: the kept cache positions). D, Dv <= 256. An empty
 * cache (N = 0, or B or H = 0) is valid: tensors with no element may be
 * null and nothing is launched. */
balancekv_status balancekv_compress(
    balancekv_dtype dtype, balancekv_tensor key, balancekv_tensor value,
    int64_t batch, int64_t heads, int64_t n, int64_t head_dim,
    int64_t value_dim, const balancekv_compress_params *params,
    balancekv_mutable_tensor out_key, balancekv_mutable_tensor out_value,
    float *out_log_weights, int32_t *out_indices, void *workspace,
    size_t workspace_bytes, void *stream /* cudaStream_t */);

balancekv_status balancekv_weighted_decode_workspace_size(
    int64_t batch, int64_t q_heads, int64_t query_len, int64_t kv_len_max,
    int64_t value_dim, size_t *bytes);

/* out [B, Hq, L, Dv] = softmax(scale q kᵀ + log_weights) v per (b, query
 * head), query head h reading KV head h / (Hq / Hkv). query [B, Hq, L, D]
 * with L <= 16, key [B, Hkv, M, D], value [B, Hkv, M, Dv], log_weights
 * [B, Hkv, M] f32 contiguous or null (all weights 1), kv_len [B] int32 or
 * null (all M valid; values are clamped to [0, M], and a row that sees no key
 * gets zeros). causal: query l sits at kv_len - L + l. Accumulates
 * in f32; split-K over M with a combine step. D: a multiple of 8 up to 256;
 * Dv: 32, 64, 128 or 256 (BALANCEKV_STATUS_UNSUPPORTED otherwise). M = 0
 * (an empty cache) is valid: the output is zeros, and key, value and
 * log_weights may be null. */
balancekv_status balancekv_weighted_decode_attention(
    balancekv_dtype dtype, balancekv_tensor query, balancekv_tensor key,
    balancekv_tensor value, const float *log_weights, const int32_t *kv_len,
    int64_t batch, int64_t q_heads, int64_t kv_heads, int64_t query_len,
    int64_t m, int64_t head_dim, int64_t value_dim, float scale, int causal,
    balancekv_mutable_tensor out, void *workspace, size_t workspace_bytes,
    void *stream /* cudaStream_t */);

/* balancekv_weighted_decode_attention over a cache whose KV heads hold
 * different numbers of tokens (method adaptive, spec section 6): head_lens
 * [B, Hkv] int32 (required) is the valid prefix of each (batch, KV head)'s
 * M slots, clamped to [0, M]; slots past it are not read. causal: query l
 * sits at head_lens[b, h] - L + l. Same workspace as the plain entry. */
balancekv_status balancekv_weighted_decode_attention_ragged(
    balancekv_dtype dtype, balancekv_tensor query, balancekv_tensor key,
    balancekv_tensor value, const float *log_weights, const int32_t *head_lens,
    int64_t batch, int64_t q_heads, int64_t kv_heads, int64_t query_len,
    int64_t m, int64_t head_dim, int64_t value_dim, float scale, int causal,
    balancekv_mutable_tensor out, void *workspace, size_t workspace_bytes,
    void *stream /* cudaStream_t */);

/* Paged KV caches, as serving engines hold them (vLLM, FlashInfer, SGLang):
 * a pool of pages of `page_size` token slots for every KV head, and a block
 * table whose row b lists sequence b's pages in order, in any order in the
 * pool: token j of sequence b is in slot j % page_size of page
 * block_table[b * max_pages + j / page_size]. The pool's element strides
 * are those of [page, slot, head, dim] (innermost 1), so both common pools
 * are views: NHD [pages, page_size, H, D] and HND [pages, H, page_size, D].
 * Page ids are read on the GPU and not checked: every id a sequence's
 * tokens reach must be a page of the pool. The paged entries run the dense
 * entries' arithmetic on the same rows: their results are bit-identical to
 * the dense entries' on the gathered cache. */
typedef struct {
  const void *data;
  int64_t strides[4]; /* page, slot, head, dim */
} balancekv_page_pool;

typedef struct {
  const int32_t *block_table; /* [batch, max_pages] int32 page ids */
  int64_t max_pages;          /* row length of block_table */
  int64_t page_size;          /* tokens a page: a power of two, 1..1024 */
} balancekv_block_table;

/* balancekv_compress over the first n tokens of each sequence of a paged
 * cache (max_pages * page_size >= n); writes the dense compressed cache,
 * as balancekv_compress does. Same workspace. */
balancekv_status balancekv_compress_paged(
    balancekv_dtype dtype, balancekv_page_pool key, balancekv_page_pool value,
    balancekv_block_table table, int64_t batch, int64_t heads, int64_t n,
    int64_t head_dim, int64_t value_dim,
    const balancekv_compress_params *params, balancekv_mutable_tensor out_key,
    balancekv_mutable_tensor out_value, float *out_log_weights,
    int32_t *out_indices, void *workspace, size_t workspace_bytes,
    void *stream /* cudaStream_t */);

/* balancekv_weighted_decode_attention over a paged cache of m token slots a
 * sequence (max_pages * page_size >= m): key and value are read through the
 * block table, log_weights is [B, Hkv, m] as in the dense entry. A serving
 * engine keeps the compressed cache and the tokens decoded after it in the
 * same pages (the new tokens with log-weight 0) and passes kv_len [B], the
 * tokens each sequence holds now. Same workspace as the dense entry. */
balancekv_status balancekv_weighted_decode_attention_paged(
    balancekv_dtype dtype, balancekv_tensor query, balancekv_page_pool key,
    balancekv_page_pool value, balancekv_block_table table,
    const float *log_weights, const int32_t *kv_len, int64_t batch,
    int64_t q_heads, int64_t kv_heads, int64_t query_len, int64_t m,
    int64_t head_dim, int64_t value_dim, float scale, int causal,
    balancekv_mutable_tensor out, void *workspace, size_t workspace_bytes,
    void *stream /* cudaStream_t */);

/* balancekv_weighted_decode_attention_paged over KV heads holding different
 * numbers of tokens (method adaptive): head_lens [B, Hkv] int32 (required),
 * as in balancekv_weighted_decode_attention_ragged; every head of sequence b
 * reads its slots through row b of the block table. Bit-identical to the
 * ragged dense entry on the gathered cache. Same workspace. */
balancekv_status balancekv_weighted_decode_attention_paged_ragged(
    balancekv_dtype dtype, balancekv_tensor query, balancekv_page_pool key,
    balancekv_page_pool value, balancekv_block_table table,
    const float *log_weights, const int32_t *head_lens, int64_t batch,
    int64_t q_heads, int64_t kv_heads, int64_t query_len, int64_t m,
    int64_t head_dim, int64_t value_dim, float scale, int causal,
    balancekv_mutable_tensor out, void *workspace, size_t workspace_bytes,
    void *stream /* cudaStream_t */);

#ifdef __cplusplus
}
#endif

#endif /* BALANCEKV_RUNTIME_BALANCEKVRUNTIME_H */
