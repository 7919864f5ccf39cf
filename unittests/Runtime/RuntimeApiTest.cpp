//===- RuntimeApiTest.cpp - C API argument checks (no GPU needed) ---------===//
//
// Every check returns a status and a message and launches nothing, so these
// run on machines without a GPU. GPU results are checked by
// bench/bench_kernels.py on the device (and test/Integration/cuda-*.test).
//
//===----------------------------------------------------------------------===//

#include "../Support/BadCompressParams.h"
#include "balancekv/Runtime/BalanceKVRuntime.h"
#include "balancekv/Runtime/CompressParamsC.h"

#include <gtest/gtest.h>

#include <cmath>

#include <string>

// The CPU reference's C entries (kernels/reference/ReferenceC.cpp).
extern "C" int balancekv_reference_compress(
    balancekv_dtype dtype, const void *key, const void *value, int64_t batch,
    int64_t heads, int64_t n, int64_t d, int64_t dv,
    const balancekv_compress_params *params, int32_t *outIndices,
    float *outLogWeights);
extern "C" int balancekv_reference_attention(
    balancekv_dtype dtype, const void *query, const void *key,
    const void *value, const float *logWeights, int64_t batch, int64_t qHeads,
    int64_t kvHeads, int64_t queries, int64_t n, int64_t d, int64_t dv,
    float scale, int causal, float *out);
extern "C" const char *balancekv_reference_error(void);
extern "C" int balancekv_reference_compress_observed(
    balancekv_dtype dtype, const void *key, const void *value,
    const void *observation, int64_t batch, int64_t heads, int64_t qHeads,
    int64_t obsLen, int64_t n, int64_t d, int64_t dv,
    const balancekv_compress_params *params, int32_t *outIndices,
    float *outLogWeights, int32_t *outLengths);
extern "C" int64_t
balancekv_compressed_slots(int64_t n, const balancekv_compress_params *params);

namespace {

struct CompressCall {
  // An int: tests pass values outside the enum, as C callers can.
  int dtype = BALANCEKV_DTYPE_BF16;
  int dummy = 0;
  balancekv_tensor key{&dummy, {8 * 64 * 128, 64 * 128, 128, 1}};
  balancekv_tensor value{&dummy, {8 * 64 * 128, 64 * 128, 128, 1}};
  balancekv_mutable_tensor outKey{&dummy, {8 * 48 * 128, 48 * 128, 128, 1}};
  balancekv_mutable_tensor outValue{&dummy, {8 * 48 * 128, 48 * 128, 128, 1}};
  float lw = 0;
  int64_t batch = 1, heads = 8, n = 64, d = 128, dv = 128;
  balancekv_compress_params params;
  size_t wsBytes = 1 << 20;
  CompressCall() { balancekv_compress_params_init(&params); }
  balancekv_status run() {
    return balancekv_compress(balancekv_dtype(dtype), key, value, batch, heads,
                              n, d, dv, &params, outKey, outValue, &lw, nullptr,
                              &dummy, wsBytes, nullptr);
  }
};

void expectError(balancekv_status got, balancekv_status want,
                 const std::string &msg) {
  EXPECT_EQ(got, want);
  EXPECT_NE(std::string(balancekv_last_error()).find(msg), std::string::npos)
      << "message: " << balancekv_last_error();
}

TEST(RuntimeApi, DefaultsAndLength) {
  balancekv_compress_params p;
  balancekv_compress_params_init(&p);
  EXPECT_EQ(p.rounds, 2);
  EXPECT_EQ(p.block_size, 128);
  EXPECT_EQ(p.sink, 32);
  EXPECT_DOUBLE_EQ(p.gamma, 4.0);
  EXPECT_DOUBLE_EQ(p.c0, 0.025);
  EXPECT_EQ(balancekv_compressed_length(4096, 32, 32, 2), 1072);
  EXPECT_EQ(balancekv_compressed_length(-1, 32, 32, 2), -1);
}

// The launch record answers only after a decode ran on the calling thread.
TEST(RuntimeApi, LastDecodeLaunchNeedsADecode) {
  expectError(balancekv_last_decode_launch(nullptr),
              BALANCEKV_STATUS_INVALID_ARGUMENT, "out must not be null");
  balancekv_decode_launch launch{};
  expectError(balancekv_last_decode_launch(&launch),
              BALANCEKV_STATUS_INVALID_ARGUMENT,
              "no weighted decode has run on this thread");
  EXPECT_EQ(launch.kernel, nullptr);
}

// The reference's entries reject a dtype outside the enum (C callers can
// pass any int) instead of reading the data as f32.
TEST(RuntimeApi, ReferenceEntriesRejectAnUnknownDtype) {
  float data[8] = {};
  int32_t idx[8];
  float lw[8], out[8];
  balancekv_compress_params p;
  balancekv_compress_params_init(&p);
  EXPECT_EQ(balancekv_reference_compress(balancekv_dtype(7), data, data, 1, 1,
                                         2, 2, 2, &p, idx, lw),
            -1);
  EXPECT_STREQ(balancekv_reference_error(), "dtype must be f16, bf16 or f32");
  EXPECT_EQ(balancekv_reference_attention(balancekv_dtype(7), data, data, data,
                                          nullptr, 1, 1, 1, 1, 2, 2, 2, 0.0f,
                                          0, out),
            -1);
  EXPECT_STREQ(balancekv_reference_error(), "dtype must be f16, bf16 or f32");
  // A valid dtype goes through.
  EXPECT_EQ(balancekv_reference_compress(BALANCEKV_DTYPE_F32, data, data, 1, 1,
                                         2, 2, 2, &p, idx, lw),
            0);
}

// The reference's C entry runs every method of the enum and rejects a value
// outside it (it used to read anything but uniform as balance).
TEST(RuntimeApi, ReferenceCompressTakesEveryMethodOfTheEnum) {
  float key[1 * 1 * 100 * 2], value[1 * 1 * 100 * 2];
  for (int i = 0; i < 200; ++i)
    key[i] = value[i] = float(i % 7) - 3.0f;
  balancekv_compress_params p;
  balancekv_compress_params_init(&p);
  p.sink = p.recent = 4;
  const int64_t m = balancekv_compressed_length(100, 4, 4, 2);
  std::vector<int32_t> idx(size_t(m), 0);
  std::vector<float> lw(size_t(m), 0.0f);
  for (balancekv_method method :
       {BALANCEKV_METHOD_BALANCE, BALANCEKV_METHOD_UNIFORM,
        BALANCEKV_METHOD_STREAMING, BALANCEKV_METHOD_KNORM}) {
    p.method = method;
    EXPECT_EQ(balancekv_reference_compress(BALANCEKV_DTYPE_F32, key, value, 1,
                                           1, 100, 2, 2, &p, idx.data(),
                                           lw.data()),
              0)
        << balancekv_reference_error();
    if (method == BALANCEKV_METHOD_STREAMING)
      EXPECT_EQ(idx[4], 100 - 4 - (m - 8)); // the last L_T middle tokens
  }
  p.method = balancekv_method(9);
  EXPECT_EQ(balancekv_reference_compress(BALANCEKV_DTYPE_F32, key, value, 1, 1,
                                         100, 2, 2, &p, idx.data(), lw.data()),
            -1);
  EXPECT_STREQ(balancekv_reference_error(),
               "method must be balance, uniform, streaming, knorm, snapkv or "
               "adaptive");
  p.method = BALANCEKV_METHOD_ADAPTIVE;
  EXPECT_EQ(balancekv_reference_compress(BALANCEKV_DTYPE_F32, key, value, 1, 1,
                                         100, 2, 2, &p, idx.data(), lw.data()),
            -1);
  EXPECT_STREQ(balancekv_reference_error(),
               "snapkv and adaptive read observation queries: call "
               "balancekv_reference_compress_observed");
}

// Method adaptive through the C entry: M slots of twice the mean, per-head
// lengths within the total, padding marked.
TEST(RuntimeApi, ReferenceCompressObservedAdaptive) {
  const int64_t b = 1, h = 2, n = 400, d = 4, lobs = 8;
  std::vector<float> key(size_t(b * h * n * d)), value(key.size()),
      obs(size_t(b * h * lobs * d));
  for (size_t i = 0; i < key.size(); ++i) {
    key[i] = float(std::sin(0.37 * double(i)));
    value[i] = float(std::cos(0.11 * double(i)));
  }
  for (size_t i = 0; i < obs.size(); ++i)
    obs[i] = float(std::sin(0.5 * double(i) + 1.0));
  balancekv_compress_params p;
  balancekv_compress_params_init(&p);
  p.method = BALANCEKV_METHOD_ADAPTIVE;
  const int64_t mean = balancekv_compressed_length(n, 32, 32, 2);
  const int64_t m = balancekv_compressed_slots(n, &p);
  EXPECT_EQ(m, 2 * mean);
  std::vector<int32_t> idx(size_t(b * h * m)), lens(size_t(b * h));
  std::vector<float> lw(idx.size());
  ASSERT_EQ(balancekv_reference_compress_observed(
                BALANCEKV_DTYPE_F32, key.data(), value.data(), obs.data(), b, h,
                h, lobs, n, d, d, &p, idx.data(), lw.data(), lens.data()),
            0)
      << balancekv_reference_error();
  EXPECT_LE(lens[0] + lens[1], 2 * mean);
  for (int64_t hh = 0; hh < h; ++hh) {
    EXPECT_GT(lens[hh], 0);
    EXPECT_EQ(idx[hh * m], 0); // a sink is always kept
    for (int64_t j = lens[hh]; j < m; ++j)
      EXPECT_EQ(idx[hh * m + j], -1);
  }
  p.budget = -2;
  EXPECT_EQ(balancekv_compressed_slots(n, &p), -1);
}

// The same values as the op verifier, the pass and the reference reject
// (CompressParamsTest.cpp), with the same message behind "params.".
TEST(RuntimeApi, CompressRejectsWhatEveryLayerRejects) {
  for (const auto &bad : balancekv::testing::badCompressParams()) {
    CompressCall c;
    // Every field of the table (CompressParamsC.h's conversion).
    c.params = balancekv::toC(bad.params, c.params.method);
    EXPECT_EQ(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT);
    EXPECT_EQ(std::string(balancekv_last_error()), "params." + bad.message);
  }
}

// An empty cache is valid input (PyTorch passes null for empty tensors):
// nothing to read, an empty result, nothing launched (so no GPU needed).
TEST(RuntimeApi, CompressAcceptsAnEmptyCache) {
  for (int which = 0; which < 3; ++which) {
    CompressCall c;
    (which == 0 ? c.n : which == 1 ? c.batch : c.heads) = 0;
    c.key.data = c.value.data = nullptr;
    c.outKey.data = c.outValue.data = nullptr;
    EXPECT_EQ(balancekv_compress(
                  balancekv_dtype(c.dtype), c.key, c.value, c.batch, c.heads,
                  c.n, c.d, c.dv, &c.params, c.outKey, c.outValue,
                  /*out_log_weights=*/nullptr, nullptr, nullptr, 0, nullptr),
              BALANCEKV_STATUS_OK)
        << balancekv_last_error();
  }
  // A cache that is not empty still needs its data.
  CompressCall c;
  c.key.data = nullptr;
  expectError(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT, "key is null");
}

TEST(RuntimeApi, CompressRejectsBadArguments) {
  {
    CompressCall c;
    c.params.rounds = 17;
    expectError(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT, "params.rounds");
  }
  {
    CompressCall c;
    c.params.block_size = 256;
    expectError(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT,
                "params.block_size");
  }
  {
    CompressCall c;
    c.params.block_size = 7;
    expectError(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT,
                "params.block_size");
  }
  {
    CompressCall c;
    c.params.gamma = -1;
    expectError(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT, "params.gamma");
  }
  {
    CompressCall c;
    c.params.temperature = 0;
    expectError(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT,
                "params.temperature");
  }
  {
    CompressCall c;
    c.params.c0 = -0.5;
    expectError(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT, "params.c0");
  }
  {
    CompressCall c;
    c.params.sink = -1;
    expectError(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT, "params.sink");
  }
  {
    CompressCall c;
    c.params.method = balancekv_method(7);
    expectError(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT, "params.method");
  }
  {
    // In the enum, but the reference's only.
    CompressCall c;
    c.params.method = BALANCEKV_METHOD_STREAMING;
    expectError(c.run(), BALANCEKV_STATUS_UNSUPPORTED, "params.method");
  }
  {
    CompressCall c;
    c.dtype = 9;
    expectError(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT, "dtype");
  }
  {
    CompressCall c;
    c.key.data = nullptr;
    expectError(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT, "key is null");
  }
  {
    CompressCall c;
    c.value.strides[3] = 2;
    expectError(c.run(), BALANCEKV_STATUS_UNSUPPORTED,
                "value: the innermost stride must be 1");
  }
  {
    CompressCall c;
    c.outKey.strides[1] = -4;
    expectError(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT,
                "out_key: negative stride");
  }
  {
    CompressCall c;
    c.d = 300;
    expectError(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT, "head_dim");
  }
  {
    CompressCall c;
    c.heads = 70000;
    expectError(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT, "65535");
  }
  {
    CompressCall c;
    c.n = 4096;
    c.wsBytes = 16;
    expectError(c.run(), BALANCEKV_STATUS_WORKSPACE_TOO_SMALL,
                "workspace needs");
  }
  {
    CompressCall c;
    c.params.recent = -2;
    expectError(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT, "params.recent");
  }
  {
    CompressCall c;
    c.params.scale = -1.0f;
    expectError(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT, "params.scale");
  }
  {
    CompressCall c;
    c.n = -1;
    expectError(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT,
                "batch, heads and n must be >= 0");
  }
  {
    CompressCall c;
    c.n = int64_t(INT32_MAX) + 1;
    expectError(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT,
                "n must fit in int32");
  }
  {
    CompressCall c;
    c.dv = 0;
    expectError(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT, "value_dim");
  }
  {
    CompressCall c;
    CompressCall *self = &c;
    expectError(balancekv_compress(
                    balancekv_dtype(self->dtype), self->key, self->value, 1, 8,
                    64, 128, 128, &self->params, self->outKey, self->outValue,
                    nullptr, nullptr, &self->dummy, self->wsBytes, nullptr),
                BALANCEKV_STATUS_INVALID_ARGUMENT, "out_log_weights is null");
  }
  {
    CompressCall c;
    c.batch = 0; // nothing to do: no launch, OK
    EXPECT_EQ(c.run(), BALANCEKV_STATUS_OK);
    EXPECT_STREQ(balancekv_last_error(), "");
  }
  size_t bytes = 0;
  balancekv_compress_params p;
  balancekv_compress_params_init(&p);
  EXPECT_EQ(balancekv_compress_workspace_size(1, 8, 4096, &p, &bytes),
            BALANCEKV_STATUS_OK);
  EXPECT_GE(bytes, size_t(8 * 4032 * 9)); // idx + lw + signs per token
  expectError(balancekv_compress_workspace_size(1, 8, 4096, nullptr, &bytes),
              BALANCEKV_STATUS_INVALID_ARGUMENT, "params is null");
  expectError(balancekv_compress_workspace_size(1, -8, 4096, &p, &bytes),
              BALANCEKV_STATUS_INVALID_ARGUMENT,
              "batch, heads and n must be >= 0");
  expectError(balancekv_compress_workspace_size(1, 8, 4096, &p, nullptr),
              BALANCEKV_STATUS_INVALID_ARGUMENT, "bytes is null");
}

struct DecodeCall {
  int dummy = 0;
  // An int: tests pass values outside the enum, as C callers can.
  int dtype = BALANCEKV_DTYPE_BF16;
  balancekv_tensor q{&dummy, {32 * 128, 128, 128, 1}};
  balancekv_tensor k{&dummy, {8 * 1024 * 128, 1024 * 128, 128, 1}};
  balancekv_tensor v{&dummy, {8 * 1024 * 128, 1024 * 128, 128, 1}};
  balancekv_mutable_tensor out{&dummy, {32 * 128, 128, 128, 1}};
  int64_t batch = 1, qHeads = 32, kvHeads = 8, l = 1, m = 1024, d = 128,
          dv = 128;
  float scale = 0.088f;
  size_t wsBytes = 1 << 24;
  balancekv_status run() {
    return balancekv_weighted_decode_attention(
        balancekv_dtype(dtype), q, k, v, nullptr, nullptr, batch, qHeads,
        kvHeads, l, m, d, dv, scale, 0, out, &dummy, wsBytes, nullptr);
  }
};

TEST(RuntimeApi, DecodeRejectsBadArguments) {
  {
    // The ragged entry needs its per-head lengths.
    DecodeCall c;
    expectError(balancekv_weighted_decode_attention_ragged(
                    balancekv_dtype(c.dtype), c.q, c.k, c.v, nullptr, nullptr,
                    c.batch, c.qHeads, c.kvHeads, c.l, c.m, c.d, c.dv, c.scale,
                    0, c.out, &c.dummy, c.wsBytes, nullptr),
                BALANCEKV_STATUS_INVALID_ARGUMENT,
                "head_lens is null (pass kv_len to the plain entry)");
  }
  {
    DecodeCall c;
    c.qHeads = 30;
    expectError(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT,
                "q_heads must be a positive multiple of kv_heads");
  }
  {
    DecodeCall c;
    c.l = 17;
    expectError(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT, "query_len");
  }
  {
    DecodeCall c;
    c.d = 100;
    expectError(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT, "head_dim");
  }
  {
    DecodeCall c;
    c.dv = 96;
    expectError(c.run(), BALANCEKV_STATUS_UNSUPPORTED, "value_dim");
  }
  {
    DecodeCall c;
    c.scale = 0.0f;
    expectError(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT, "scale");
  }
  {
    DecodeCall c;
    c.out.data = nullptr;
    expectError(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT, "out is null");
  }
  {
    DecodeCall c;
    c.wsBytes = 0;
    expectError(c.run(), BALANCEKV_STATUS_WORKSPACE_TOO_SMALL,
                "workspace needs");
  }
  {
    DecodeCall c;
    c.dtype = 5;
    expectError(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT, "dtype");
  }
  {
    DecodeCall c;
    c.m = -1;
    expectError(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT,
                "batch and m must be >= 0");
  }
  {
    DecodeCall c;
    c.qHeads = 2048;
    c.kvHeads = 1;
    expectError(c.run(), BALANCEKV_STATUS_INVALID_ARGUMENT,
                "query rows per KV head (group * L) must be <= 1024");
  }
  {
    DecodeCall c;
    c.k.strides[3] = 4;
    expectError(c.run(), BALANCEKV_STATUS_UNSUPPORTED,
                "key: the innermost stride must be 1");
  }
  {
    DecodeCall c;
    c.batch = 0;
    EXPECT_EQ(c.run(), BALANCEKV_STATUS_OK);
  }
  size_t bytes = 0;
  expectError(
      balancekv_weighted_decode_workspace_size(1, 32, 1, 1024, 128, nullptr),
      BALANCEKV_STATUS_INVALID_ARGUMENT, "bytes is null");
  EXPECT_EQ(balancekv_weighted_decode_workspace_size(1, 32, 1, 1024, 128,
                                                     &bytes),
            BALANCEKV_STATUS_OK);
  expectError(
      balancekv_weighted_decode_workspace_size(1, 32, 1, -1, 128, &bytes),
      BALANCEKV_STATUS_INVALID_ARGUMENT, "sizes must be >= 0");
  EXPECT_GT(bytes, 0u);
}

// The paged entries check the block table before anything else is launched;
// the rest of their arguments go through the dense entries' checks.
TEST(RuntimeApi, PagedEntriesCheckTheBlockTable) {
  int32_t pages[4] = {0, 1, 2, 3};
  int dummy = 0;
  // NHD pool [pages, 16, 8, 128]: strides of [page, slot, head, dim].
  const balancekv_page_pool pool{&dummy, {16 * 8 * 128, 8 * 128, 128, 1}};
  auto compress = [&](balancekv_block_table t, int64_t n) {
    CompressCall c;
    return balancekv_compress_paged(balancekv_dtype(c.dtype), pool, pool, t,
                                    c.batch, c.heads, n, c.d, c.dv, &c.params,
                                    c.outKey, c.outValue, &c.lw, nullptr,
                                    &c.dummy, c.wsBytes, nullptr);
  };
  auto decode = [&](balancekv_block_table t, int64_t m) {
    DecodeCall c;
    return balancekv_weighted_decode_attention_paged(
        balancekv_dtype(c.dtype), c.q, pool, pool, t, nullptr, nullptr, c.batch,
        c.qHeads, c.kvHeads, c.l, m, c.d, c.dv, c.scale, 0, c.out, &c.dummy,
        c.wsBytes, nullptr);
  };
  for (const bool isDecode : {false, true}) {
    auto run = [&](balancekv_block_table t, int64_t tokens) {
      return isDecode ? decode(t, tokens) : compress(t, tokens);
    };
    expectError(run({nullptr, 4, 16}, 64), BALANCEKV_STATUS_INVALID_ARGUMENT,
                "table.block_table is null");
    for (int64_t size : {0, 24, 2048})
      expectError(run({pages, 4, size}, 64), BALANCEKV_STATUS_INVALID_ARGUMENT,
                  "table.page_size must be a power of two in [1, 1024]");
    expectError(run({pages, 4, 16}, 65), BALANCEKV_STATUS_INVALID_ARGUMENT,
                "table.max_pages * table.page_size must cover the 65 tokens");
    expectError(run({pages, -1, 16}, 64), BALANCEKV_STATUS_INVALID_ARGUMENT,
                "table.max_pages");
    expectError(run({pages, int64_t(1) << 40, 16}, 64),
                BALANCEKV_STATUS_INVALID_ARGUMENT, "fit in int32");
  }
  // Nothing to read, no table needed: an empty cache (compress), no
  // sequence (decode; an empty cache there still launches, to write zeros).
  EXPECT_EQ(compress({nullptr, 0, 0}, 0), BALANCEKV_STATUS_OK)
      << balancekv_last_error();
  {
    DecodeCall c;
    EXPECT_EQ(balancekv_weighted_decode_attention_paged(
                  balancekv_dtype(c.dtype), c.q, pool, pool, {nullptr, 0, 0},
                  nullptr, nullptr, /*batch=*/0, c.qHeads, c.kvHeads, c.l, 64,
                  c.d, c.dv, c.scale, 0, c.out, &c.dummy, c.wsBytes, nullptr),
              BALANCEKV_STATUS_OK)
        << balancekv_last_error();
  }
  {
    // The ragged paged entry needs its per-head lengths and checks the table
    // as the paged one does.
    DecodeCall c;
    const int32_t lens[1] = {64}; // not read: the call fails first
    auto ragged = [&](balancekv_block_table t, const int32_t *headLens) {
      return balancekv_weighted_decode_attention_paged_ragged(
          balancekv_dtype(c.dtype), c.q, pool, pool, t, nullptr, headLens,
          c.batch, c.qHeads, c.kvHeads, c.l, 64, c.d, c.dv, c.scale, 0, c.out,
          &c.dummy, c.wsBytes, nullptr);
    };
    expectError(ragged({pages, 4, 16}, nullptr),
                BALANCEKV_STATUS_INVALID_ARGUMENT,
                "head_lens is null (pass kv_len to the plain paged entry)");
    expectError(ragged({nullptr, 4, 16}, lens),
                BALANCEKV_STATUS_INVALID_ARGUMENT, "table.block_table is null");
  }
  // The pool is checked as the dense tensors are.
  balancekv_page_pool strided = pool;
  strided.strides[3] = 2;
  DecodeCall c;
  expectError(balancekv_weighted_decode_attention_paged(
                  balancekv_dtype(c.dtype), c.q, strided, pool, {pages, 4, 16},
                  nullptr, nullptr, c.batch, c.qHeads, c.kvHeads, c.l, 64, c.d,
                  c.dv, c.scale, 0, c.out, &c.dummy, c.wsBytes, nullptr),
              BALANCEKV_STATUS_UNSUPPORTED,
              "key: the innermost stride must be 1");
}

} // namespace

// The memref entry points that --balancekv-lower-to-runtime-calls targets.
namespace {
template <int N> struct MemRefDesc {
  void *basePtr, *data;
  int64_t offset, sizes[N], strides[N];
};
} // namespace

extern "C" int32_t _mlir_ciface_balancekv_rt_compress_bf16(
    MemRefDesc<4> *, MemRefDesc<4> *, MemRefDesc<4> *, MemRefDesc<4> *,
    MemRefDesc<3> *, int32_t, int64_t, int64_t, int64_t, int64_t, double,
    double, double, int64_t, float, int64_t); // RuntimeCallABI.h's table

// The paged decode entry (same ABI table, same descriptor layout).
extern "C" int32_t _mlir_ciface_balancekv_rt_weighted_decode_paged_bf16(
    MemRefDesc<4> *query, MemRefDesc<4> *keyPool, MemRefDesc<4> *valuePool,
    MemRefDesc<2> *blockTable, int32_t headsMajor, int64_t tokens,
    MemRefDesc<3> *logWeights, int32_t hasLogWeights, MemRefDesc<1> *kvLen,
    int32_t hasKvLen, MemRefDesc<4> *out, float scale, int32_t causal);

namespace {
// The paged shim checks its pools and table before anything touches CUDA.
TEST(RuntimeApi, PagedMemRefShimChecksTheTable) {
  static uint16_t host[4 * 16 * 2 * 16];
  static int32_t table[2 * 4];
  static float lwHost[2 * 64];
  MemRefDesc<4> q{host, host, 0, {1, 4, 1, 16}, {64, 16, 16, 1}};
  // NHD pools [4 pages, 16 slots, 2 heads, 16].
  MemRefDesc<4> pool{host, host, 0, {4, 16, 2, 16}, {512, 32, 16, 1}};
  MemRefDesc<2> tab{table, table, 0, {1, 4}, {4, 1}};
  MemRefDesc<3> lw{lwHost, lwHost, 0, {1, 2, 64}, {128, 64, 1}};
  MemRefDesc<1> lens{table, table, 0, {0}, {1}};
  auto run = [&](MemRefDesc<4> &vp, MemRefDesc<2> &t, int64_t tokens,
                 int32_t hasKvLen) {
    return balancekv_status(
        _mlir_ciface_balancekv_rt_weighted_decode_paged_bf16(
            &q, &pool, &vp, &t, 0, tokens, &lw, 1, &lens, hasKvLen, &q,
            0.25f, 0));
  };
  testing::internal::CaptureStderr(); // the shim also prints failures
  MemRefDesc<2> strided{table, table, 0, {1, 4}, {8, 2}};
  expectError(run(pool, strided, 64, 0), BALANCEKV_STATUS_UNSUPPORTED,
              "the block table's rows must be contiguous");
  expectError(run(pool, tab, 65, 0), BALANCEKV_STATUS_INVALID_ARGUMENT,
              "fewer pages than the tokens need");
  MemRefDesc<4> otherPages{host, host, 0, {8, 8, 2, 16}, {256, 32, 16, 1}};
  expectError(run(otherPages, tab, 64, 0), BALANCEKV_STATUS_INVALID_ARGUMENT,
              "the pools' page sizes or head counts differ");
  MemRefDesc<2> contiguousButHost = tab;
  expectError(run(pool, contiguousButHost, 64, 0),
              BALANCEKV_STATUS_INVALID_ARGUMENT,
              "the buffers must be device memory");
  testing::internal::GetCapturedStderr();
}

TEST(RuntimeApi, MemRefShimChecksArgumentsAndMemory) {
  static uint16_t host[2 * 64 * 16];
  static float lwHost[2 * 64];
  MemRefDesc<4> k{host, host, 0, {1, 2, 64, 16}, {2048, 1024, 16, 1}};
  MemRefDesc<4> ck{host, host, 0, {1, 2, 64, 16}, {2048, 1024, 16, 1}};
  MemRefDesc<3> lw{lwHost, lwHost, 0, {1, 2, 64}, {128, 64, 1}};
  // A bad parameter is reported before anything touches CUDA.
  expectError(balancekv_status(_mlir_ciface_balancekv_rt_compress_bf16(
                  &k, &k, &ck, &ck, &lw, 0, /*rounds=*/17, 128, 32, 32, 4.0,
                  1.0, 0.025, 0, 0.0f, 0)),
              BALANCEKV_STATUS_INVALID_ARGUMENT, "params.rounds");
  // Host buffers are refused (with or without a GPU present), and since
  // compiled callers drop the status, the failure is printed too.
  testing::internal::CaptureStderr();
  expectError(balancekv_status(_mlir_ciface_balancekv_rt_compress_bf16(
                  &k, &k, &ck, &ck, &lw, 0, 2, 128, 32, 32, 4.0, 1.0, 0.025, 0,
                  0.0f, 0)),
              BALANCEKV_STATUS_INVALID_ARGUMENT,
              "the buffers must be device memory");
  EXPECT_NE(testing::internal::GetCapturedStderr().find(
                "balancekv_rt_compress_bf16: status 1: balancekv_rt_*: the "
                "buffers must be device memory"),
            std::string::npos);
  // Log-weights are written contiguously.
  MemRefDesc<3> strided{lwHost, lwHost, 0, {1, 2, 32}, {128, 64, 2}};
  expectError(balancekv_status(_mlir_ciface_balancekv_rt_compress_bf16(
                  &k, &k, &ck, &ck, &strided, 0, 2, 128, 32, 32, 4.0, 1.0,
                  0.025, 0, 0.0f, 0)),
              BALANCEKV_STATUS_UNSUPPORTED, "log-weights must be contiguous");
  // The budget is adaptive's (which has no CUDA kernel).
  expectError(balancekv_status(_mlir_ciface_balancekv_rt_compress_bf16(
                  &k, &k, &ck, &ck, &lw, 0, 2, 128, 32, 32, 4.0, 1.0, 0.025, 0,
                  0.0f, 100)),
              BALANCEKV_STATUS_INVALID_ARGUMENT,
              "params.budget is a parameter of method adaptive");
}
} // namespace
