//===- Reference.cpp - CPU reference of BalanceKV and baselines ----------===//

#include "kernels/reference/Reference.h"
#include "kernels/reference/Philox.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <thread>

namespace balancekv::reference {

const char *methodName(Method m) {
  switch (m) {
  case Method::Balance:
    return "balance";
  case Method::Uniform:
    return "uniform";
  case Method::Streaming:
    return "streaming";
  case Method::SnapKV:
    return "snapkv";
  case Method::KNorm:
    return "knorm";
  }
  return "?";
}

std::optional<Method> parseMethod(const std::string &name) {
  for (Method m : {Method::Balance, Method::Uniform, Method::Streaming,
                   Method::SnapKV, Method::KNorm})
    if (name == methodName(m))
      return m;
  return std::nullopt;
}

static int64_t product(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t s : shape)
    n *= s;
  return n;
}
int64_t TensorRef::numElements() const { return product(shape); }
int64_t Tensor::numElements() const { return product(shape); }

Tensor::Tensor(DType dtype, std::vector<int64_t> shape)
    : dtype(dtype), shape(std::move(shape)),
      bytes(size_t(product(this->shape) * dtypeSize(dtype))) {}

Status validate(const CompressOptions &o) {
  if (std::string bad = o.validate(); !bad.empty())
    return Status::error(bad);
  if (o.snapkvPool < 1 || o.snapkvPool % 2 == 0)
    return Status::error("SnapKV pool kernel must be odd and >= 1");
  return {};
}

//===----------------------------------------------------------------------===//
// Self-balancing walk (spec section 3)
//===----------------------------------------------------------------------===//

namespace {

/// Steps 1-3 on one block: writes sigma for the block's `b` tokens.
void walkBlock(const double *keys, const double *values, const int64_t *idx,
               const int *doublings, int64_t b, int64_t d, int64_t dv,
               const CompressOptions &o, double scale, uint32_t block,
               uint32_t round, uint32_t batch, uint32_t kvHead,
               int8_t *sigma) {
  std::vector<double> mean(d, 0.0);
  for (int64_t i = 0; i < b; ++i)
    for (int64_t x = 0; x < d; ++x)
      mean[x] += keys[idx[i] * d + x];
  for (double &m : mean)
    m /= double(b);
  std::vector<double> kc(b * d), wv(b * dv);
  for (int64_t i = 0; i < b; ++i) {
    double w = std::ldexp(1.0, doublings[i]); // 2^r exactly
    for (int64_t x = 0; x < d; ++x)
      kc[i * d + x] = keys[idx[i] * d + x] - mean[x];
    for (int64_t x = 0; x < dv; ++x)
      wv[i * dv + x] = w * values[idx[i] * dv + x];
  }
  const double expScale = o.temperature * scale;
  for (int64_t i = 0; i < b; ++i) {
    double s = 0.0; // S_i = sum_{j<i} G_ij sigma_j
    for (int64_t j = 0; j < i; ++j) {
      double kk = 0.0, vv = 0.0;
      for (int64_t x = 0; x < d; ++x)
        kk += kc[i * d + x] * kc[j * d + x];
      for (int64_t x = 0; x < dv; ++x)
        vv += wv[i * dv + x] * wv[j * dv + x];
      s += std::exp(expScale * kk) * (vv + o.c0) * sigma[j];
    }
    double p = std::clamp(0.5 - o.gamma * s, 0.0, 1.0);
    float u = walkUniform(o.seed, uint32_t(i), block, round, batch, kvHead);
    sigma[i] = double(u) < p ? 1 : -1;
  }
}

} // namespace

CrossoverSelection selectByCrossover(const std::vector<int8_t> &sigma) {
  CrossoverSelection sel;
  const int64_t len = int64_t(sigma.size()), h = len / 2;
  if (h == 0)
    return sel;
  // c+/c-: first index where the count of +1/-1 signs reaches h (0 if never).
  int64_t cPlus = 0, cMinus = 0, nPlus = 0, nMinus = 0;
  for (int64_t i = 0; i < len; ++i) {
    if (sigma[i] > 0 && ++nPlus == h)
      cPlus = i;
    if (sigma[i] < 0 && ++nMinus == h)
      cMinus = i;
  }
  sel.crossover = std::max(cPlus, cMinus);
  sel.keptColour = int8_t(-sigma[sel.crossover]);
  for (int64_t i = 0; i <= sel.crossover && int64_t(sel.kept.size()) < h; ++i)
    if (sigma[i] == sel.keptColour) {
      sel.kept.push_back(i);
      sel.doubled.push_back(true);
    }
  for (int64_t i = sel.crossover + 1;
       i < len && int64_t(sel.kept.size()) < h; ++i) {
    sel.kept.push_back(i);
    sel.doubled.push_back(false);
  }
  return sel;
}

void balanceMiddle(const double *keys, const double *values, int64_t n,
                   int64_t d, int64_t dv, const CompressOptions &o,
                   double scale, uint32_t batch, uint32_t kvHead,
                   std::vector<int64_t> &kept, std::vector<double> &logW,
                   std::vector<RoundTrace> *trace) {
  kept.resize(n);
  std::iota(kept.begin(), kept.end(), 0);
  std::vector<int> doublings(n, 0); // weight 2^r
  const double ln2 = std::log(2.0);
  for (int64_t round = 0; round < o.rounds; ++round) {
    const int64_t len = int64_t(kept.size());
    std::vector<int8_t> sigma(len, 0);
    for (int64_t start = 0, blk = 0; start < len; start += o.blockSize, ++blk)
      walkBlock(keys, values, kept.data() + start, doublings.data() + start,
                std::min(o.blockSize, len - start), d, dv, o, scale,
                uint32_t(blk), uint32_t(round), batch, kvHead,
                sigma.data() + start);

    CrossoverSelection sel = selectByCrossover(sigma);
    std::vector<int64_t> nextKept(sel.kept.size());
    std::vector<int> nextDoublings(sel.kept.size());
    for (size_t j = 0; j < sel.kept.size(); ++j) {
      nextKept[j] = kept[sel.kept[j]];
      nextDoublings[j] = doublings[sel.kept[j]] + (sel.doubled[j] ? 1 : 0);
    }
    if (trace)
      trace->push_back({sigma, sel.crossover, sel.keptColour});
    kept = std::move(nextKept);
    doublings = std::move(nextDoublings);
  }
  // log w = r ln 2, rounded once (as every back end writes it).
  logW.resize(kept.size());
  for (size_t j = 0; j < kept.size(); ++j)
    logW[j] = doublings[j] * ln2;
}

//===----------------------------------------------------------------------===//
// Baselines (spec section 4)
//===----------------------------------------------------------------------===//

namespace {

/// The `count` entries with the smallest `score`, ties by position, returned
/// in position order.
std::vector<int64_t> smallestInPositionOrder(const std::vector<double> &score,
                                             int64_t count) {
  std::vector<int64_t> order(score.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return score[a] < score[b] || (score[a] == score[b] && a < b);
  });
  order.resize(size_t(count));
  std::sort(order.begin(), order.end());
  return order;
}

struct HeadInput {
  std::vector<double> keys, values; // [n, d], [n, dv]
  std::vector<double> queries;      // SnapKV: [queryRows, d]
  int64_t queryRows = 0;            // SnapKV: g * lobs (also when d = 0)
};

/// SnapKV: attention mass of the observation queries on each middle token,
/// max-pooled over `pool` neighbours inside the middle segment.
std::vector<double> snapkvScores(const HeadInput &in, int64_t n, int64_t d,
                                 int64_t mid0, int64_t midLen, double scale,
                                 int64_t pool) {
  std::vector<double> mass(n, 0.0), logits(n);
  for (int64_t r = 0; r < in.queryRows; ++r) {
    const double *q = in.queries.data() + r * d; // d may be 0
    double mx = -INFINITY;
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t x = 0; x < d; ++x)
        s += q[x] * in.keys[j * d + x];
      logits[j] = s * scale;
      mx = std::max(mx, logits[j]);
    }
    double z = 0;
    for (int64_t j = 0; j < n; ++j)
      z += (logits[j] = std::exp(logits[j] - mx));
    for (int64_t j = 0; j < n; ++j)
      mass[j] += logits[j] / z;
  }
  std::vector<double> pooled(midLen);
  int64_t half = pool / 2;
  for (int64_t i = 0; i < midLen; ++i) {
    double m = -INFINITY;
    for (int64_t j = std::max<int64_t>(0, i - half);
         j <= std::min(midLen - 1, i + half); ++j)
      m = std::max(m, mass[mid0 + j]);
    pooled[i] = -m; // smallest first below
  }
  return pooled;
}

void selectHead(const HeadInput &in, int64_t n, int64_t d, int64_t dv,
                const CompressOptions &o, double scale,
                const CompressedLayout &lay, uint32_t batch, uint32_t head,
                int64_t *indices, float *logWeights) {
  const int64_t mid0 = lay.sink, midLen = lay.middle, keep = lay.keptMiddle;
  std::vector<int64_t> kept;
  std::vector<double> logW;
  switch (o.method) {
  case Method::Balance:
    balanceMiddle(in.keys.data() + mid0 * d, in.values.data() + mid0 * dv,
                  midLen, d, dv, o, scale, batch, head, kept, logW);
    break;
  case Method::Uniform: {
    std::vector<double> draw(midLen);
    for (int64_t i = 0; i < midLen; ++i)
      draw[i] = uniformBaselineDraw(o.seed, uint32_t(i), batch, head);
    kept = smallestInPositionOrder(draw, keep);
    logW.assign(kept.size(),
                keep ? std::log(double(midLen) / double(keep)) : 0.0);
    break;
  }
  case Method::Streaming:
    for (int64_t i = midLen - keep; i < midLen; ++i)
      kept.push_back(i);
    logW.assign(kept.size(), 0.0);
    break;
  case Method::KNorm: {
    std::vector<double> norm(midLen);
    for (int64_t i = 0; i < midLen; ++i) {
      double s = 0;
      for (int64_t x = 0; x < d; ++x)
        s += in.keys[(mid0 + i) * d + x] * in.keys[(mid0 + i) * d + x];
      norm[i] = s;
    }
    kept = smallestInPositionOrder(norm, keep);
    logW.assign(kept.size(), 0.0);
    break;
  }
  case Method::SnapKV:
    kept = smallestInPositionOrder(
        snapkvScores(in, n, d, mid0, midLen, scale, o.snapkvPool), keep);
    logW.assign(kept.size(), 0.0);
    break;
  }
  int64_t j = 0;
  for (int64_t i = 0; i < lay.sink; ++i, ++j) {
    indices[j] = i;
    logWeights[j] = 0.0f;
  }
  for (size_t i = 0; i < kept.size(); ++i, ++j) {
    indices[j] = mid0 + kept[i];
    logWeights[j] = float(logW[i]);
  }
  for (int64_t i = n - lay.recent; i < n; ++i, ++j) {
    indices[j] = i;
    logWeights[j] = 0.0f;
  }
}

/// Runs `fn(task)` for task in [0, count) on the machine's cores.
template <typename Fn> void parallelFor(int64_t count, Fn fn) {
  int64_t workers = std::max<int64_t>(
      1, std::min<int64_t>(count, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (int64_t w = 0; w < workers; ++w)
    pool.emplace_back([&, w] {
      for (int64_t t = w; t < count; t += workers)
        fn(t);
    });
  for (auto &t : pool)
    t.join();
}

void loadRows(const TensorRef &t, int64_t first, int64_t count,
              std::vector<double> &out) {
  out.resize(count);
  for (int64_t i = 0; i < count; ++i)
    out[i] = t.at(first + i);
}

Status checkRank4(const TensorRef &t, const char *name) {
  if (t.shape.size() != 4)
    return Status::error(std::string(name) + " must have rank 4");
  for (int64_t s : t.shape)
    if (s < 0)
      return Status::error(std::string(name) + " has a negative dim");
  if (!t.data && t.numElements() > 0)
    return Status::error(std::string(name) + " has no data");
  return {};
}

} // namespace

Status compress(const TensorRef &key, const TensorRef &value,
                const CompressOptions &o, Selection &out,
                const TensorRef *observation) {
  Status st = validate(o);
  if (!st.ok)
    return st;
  if (!(st = checkRank4(key, "key")).ok || !(st = checkRank4(value, "value")).ok)
    return st;
  const int64_t B = key.shape[0], H = key.shape[1], N = key.shape[2],
                D = key.shape[3], Dv = value.shape[3];
  if (value.shape[0] != B || value.shape[1] != H || value.shape[2] != N)
    return Status::error("key and value disagree on batch, heads or length");
  const bool snap = o.method == Method::SnapKV;
  if (snap != (observation != nullptr))
    return Status::error(snap ? "snapkv needs observation queries"
                              : "observation queries are for snapkv only");
  int64_t groups = 1, lobs = 0;
  if (observation) {
    if (!(st = checkRank4(*observation, "observation")).ok)
      return st;
    if (observation->shape[0] != B || observation->shape[3] != D ||
        H == 0 || observation->shape[1] % H != 0)
      return Status::error("observation must be [B, Hq, L, D] with Hq % Hkv == 0");
    groups = observation->shape[1] / H;
    lobs = observation->shape[2];
  }
  if (B > 65535 || H > 65535)
    return Status::error("batch and heads must fit the 16-bit Philox fields");
  const double scale = o.scale > 0 ? o.scale : 1.0 / std::sqrt(double(D));
  const CompressedLayout lay =
      CompressedLayout::compute(N, o.sink, o.recent, o.rounds);
  out.batch = B;
  out.heads = H;
  out.m = lay.compressedLength();
  out.indices.assign(size_t(B * H * out.m), 0);
  out.logWeights.assign(size_t(B * H * out.m), 0.0f);
  parallelFor(B * H, [&](int64_t bh) {
    const int64_t b = bh / H, h = bh % H;
    HeadInput in;
    loadRows(key, bh * N * D, N * D, in.keys);
    loadRows(value, bh * N * Dv, N * Dv, in.values);
    if (observation) {
      const int64_t rows = in.queryRows = groups * lobs;
      loadRows(*observation, (b * observation->shape[1] + h * groups) * lobs * D,
               rows * D, in.queries);
    }
    selectHead(in, N, D, Dv, o, scale, lay, uint32_t(b), uint32_t(h),
               out.indices.data() + bh * out.m,
               out.logWeights.data() + bh * out.m); // m may be 0
  });
  return {};
}

Tensor gather(const TensorRef &src, const Selection &sel) {
  const int64_t N = src.shape[2], X = src.shape[3];
  Tensor t(src.dtype, {sel.batch, sel.heads, sel.m, X});
  const int64_t es = dtypeSize(src.dtype);
  const auto *in = static_cast<const uint8_t *>(src.data);
  for (int64_t bh = 0; bh < sel.batch * sel.heads; ++bh)
    for (int64_t j = 0; j < sel.m; ++j)
      std::copy_n(in + ((bh * N + sel.indices[bh * sel.m + j]) * X) * es,
                  X * es, t.bytes.data() + ((bh * sel.m + j) * X) * es);
  return t;
}

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

Status attention(const TensorRef &q, const TensorRef &k, const TensorRef &v,
                 const AttentionOptions &o, std::vector<double> &out,
                 const float *logWeights) {
  Status st;
  if (!(st = checkRank4(q, "query")).ok || !(st = checkRank4(k, "key")).ok ||
      !(st = checkRank4(v, "value")).ok)
    return st;
  const int64_t B = q.shape[0], Hq = q.shape[1], L = q.shape[2],
                D = q.shape[3], Hkv = k.shape[1], N = k.shape[2],
                Dv = v.shape[3];
  if (k.shape[0] != B || v.shape[0] != B || k.shape[3] != D ||
      v.shape[1] != Hkv || v.shape[2] != N)
    return Status::error("query, key and value shapes disagree");
  if (Hkv == 0 || Hq % Hkv)
    return Status::error("query heads must be a multiple of KV heads");
  if (!(o.scale >= 0) || !std::isfinite(o.scale))
    return Status::error("scale must be finite and > 0");
  const double scale = o.scale > 0 ? o.scale : 1.0 / std::sqrt(double(D));
  const int64_t group = Hq / Hkv;
  out.assign(size_t(B * Hq * L * Dv), 0.0);
  parallelFor(B * Hq, [&](int64_t bq) {
    const int64_t b = bq / Hq, hkv = (bq % Hq) / group;
    const int64_t kvBase = (b * Hkv + hkv) * N;
    // kv_len is clamped to [0, N] on every back end (the op's contract).
    const int64_t len = o.kvLen ? std::clamp<int64_t>(o.kvLen[b], 0, N) : N;
    std::vector<double> logits(N), qrow(D);
    for (int64_t l = 0; l < L; ++l) {
      loadRows(q, (bq * L + l) * D, D, qrow);
      const int64_t visible =
          o.causal ? std::clamp<int64_t>(len - L + l + 1, 0, len) : len;
      double mx = -INFINITY;
      for (int64_t j = 0; j < visible; ++j) {
        double s = 0;
        for (int64_t x = 0; x < D; ++x)
          s += qrow[x] * k.at((kvBase + j) * D + x);
        logits[j] = s * scale + (logWeights ? logWeights[kvBase + j] : 0.0);
        mx = std::max(mx, logits[j]);
      }
      double z = 0;
      for (int64_t j = 0; j < visible; ++j)
        z += (logits[j] = std::exp(logits[j] - mx));
      double *o_ = out.data() + (bq * L + l) * Dv; // Dv may be 0
      for (int64_t j = 0; j < visible; ++j)
        for (int64_t x = 0; x < Dv; ++x)
          o_[x] += logits[j] / z * v.at((kvBase + j) * Dv + x);
    }
  });
  return {};
}

Status weightedAttention(const TensorRef &q, const TensorRef &k,
                         const TensorRef &v, const float *logWeights,
                         const AttentionOptions &o, std::vector<double> &out) {
  if (!logWeights)
    return Status::error("weightedAttention needs log-weights");
  return attention(q, k, v, o, out, logWeights);
}

double meanRelativeError(const std::vector<double> &a,
                         const std::vector<double> &e, int64_t dim) {
  const int64_t rows = int64_t(e.size()) / dim;
  double sum = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double num = 0, den = 0;
    for (int64_t x = 0; x < dim; ++x) {
      double diff = a[r * dim + x] - e[r * dim + x];
      num += diff * diff;
      den += e[r * dim + x] * e[r * dim + x];
    }
    sum += den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  }
  return rows ? sum / double(rows) : 0.0;
}

} // namespace balancekv::reference
