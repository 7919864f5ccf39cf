//===- Reference.cpp - CPU reference of BalanceKV and baselines ----------===//

#include "kernels/reference/Reference.h"
#include "kernels/reference/Philox.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <thread>
#include <tuple>

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
  case Method::Adaptive:
    return "adaptive";
  }
  return "?";
}

std::optional<Method> parseMethod(const std::string &name) {
  for (Method m : {Method::Balance, Method::Uniform, Method::Streaming,
                   Method::SnapKV, Method::KNorm, Method::Adaptive})
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
  if (o.budget != 0 && o.method != Method::Adaptive)
    return Status::error(std::string("budget is a parameter of method "
                                     "adaptive, not ") +
                         methodName(o.method));
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
  // Row i's dot products with the rows before it, 16 rows j at a time
  // from column-major copies (contiguous loads, independent chains), each
  // still summing x = 0, 1, ... in order: every product has the bits of
  // the pair-at-a-time loop (the spec's order; the back ends match it).
  auto columnMajor = [b](const std::vector<double> &rows, int64_t width) {
    std::vector<double> cols(rows.size());
    for (int64_t r = 0; r < b; ++r)
      for (int64_t x = 0; x < width; ++x)
        cols[x * b + r] = rows[r * width + x];
    return cols;
  };
  const std::vector<double> kcT = columnMajor(kc, d), wvT = columnMajor(wv, dv);
  std::vector<double> kkRow(b), vvRow(b);
  auto dots = [b](const double *a, const double *cols, int64_t width,
                  int64_t count, double *out) {
    constexpr int64_t kLanes = 16;
    for (int64_t j0 = 0; j0 < count; j0 += kLanes) {
      double acc[kLanes] = {};
      if (j0 + kLanes <= count) { // a constant trip count: vectorised
        for (int64_t x = 0; x < width; ++x)
          for (int64_t t = 0; t < kLanes; ++t)
            acc[t] += a[x] * cols[x * b + j0 + t];
      } else {
        for (int64_t x = 0; x < width; ++x)
          for (int64_t t = 0; t < count - j0; ++t)
            acc[t] += a[x] * cols[x * b + j0 + t];
      }
      for (int64_t t = 0; t < kLanes && j0 + t < count; ++t)
        out[j0 + t] = acc[t];
    }
  };
  for (int64_t i = 0; i < b; ++i) {
    dots(kc.data() + i * d, kcT.data(), d, i, kkRow.data());
    dots(wv.data() + i * dv, wvT.data(), dv, i, vvRow.data());
    double s = 0.0; // S_i = sum_{j<i} G_ij sigma_j
    for (int64_t j = 0; j < i; ++j)
      s += std::exp(expScale * kkRow[j]) * (vvRow[j] + o.c0) * sigma[j];
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
                   std::vector<RoundTrace> *trace,
                   std::vector<RoundResult> *roundResults) {
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
    if (roundResults) {
      RoundResult r{kept, std::vector<double>(kept.size())};
      for (size_t j = 0; j < kept.size(); ++j)
        r.logW[j] = doublings[j] * ln2;
      roundResults->push_back(std::move(r));
    }
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

/// Softmax of scale <q, k_j> over the keys j < `visible` (rows of `keys`,
/// `d` wide): the logits into `logits`, the probabilities into `probs`
/// (which may be `logits` itself).
void attentionRow(const double *q, const double *keys, int64_t d,
                  int64_t visible, double scale, double *logits,
                  double *probs) {
  double mx = -INFINITY;
  for (int64_t j = 0; j < visible; ++j) {
    double s = 0;
    for (int64_t x = 0; x < d; ++x) // d may be 0
      s += q[x] * keys[j * d + x];
    logits[j] = s * scale;
    mx = std::max(mx, logits[j]);
  }
  double z = 0;
  for (int64_t j = 0; j < visible; ++j)
    z += (probs[j] = std::exp(logits[j] - mx));
  for (int64_t j = 0; j < visible; ++j)
    probs[j] /= z;
}

/// Query `q`'s causal attention over the first `visible` keys of `in`: its
/// probabilities into `probs`, its output sum_j p(j) v_j into `o` (`dv`
/// wide); returns ||o||^2.
double attendRow(const HeadInput &in, const double *q, int64_t d, int64_t dv,
                 int64_t visible, double scale, double *probs, double *o) {
  attentionRow(q, in.keys.data(), d, visible, scale, probs, probs);
  std::fill(o, o + dv, 0.0);
  for (int64_t j = 0; j < visible; ++j)
    for (int64_t x = 0; x < dv; ++x)
      o[x] += probs[j] * in.values[j * dv + x];
  double n2 = 0;
  for (int64_t x = 0; x < dv; ++x)
    n2 += o[x] * o[x];
  return n2;
}

/// The observation query rows (`lobs` positions a query head) before the
/// last h positions: the queries that choose when the last h score.
std::vector<int64_t> earlierQueryRows(const HeadInput &in, int64_t lobs,
                                      int64_t h) {
  std::vector<int64_t> rows;
  for (int64_t r = 0; r < in.queryRows; ++r)
    if (r % lobs < lobs - h)
      rows.push_back(r);
  return rows;
}

/// `mass` max-pooled over `pool` neighbours inside the middle, negated (the
/// highest first in smallestInPositionOrder).
std::vector<double> pooledScores(const std::vector<double> &mass, int64_t mid0,
                                 int64_t midLen, int64_t pool) {
  std::vector<double> pooled(size_t(std::max<int64_t>(midLen, 0)));
  const int64_t half = pool / 2;
  for (int64_t i = 0; i < midLen; ++i) {
    double m = -INFINITY;
    for (int64_t j = std::max<int64_t>(0, i - half);
         j <= std::min(midLen - 1, i + half); ++j)
      m = std::max(m, mass[mid0 + j]);
    pooled[i] = -m;
  }
  return pooled;
}

/// SnapKV: attention mass of the observation queries on each middle token,
/// max-pooled over `pool` neighbours inside the middle segment.
std::vector<double> snapkvScores(const HeadInput &in, int64_t n, int64_t d,
                                 int64_t mid0, int64_t midLen, double scale,
                                 int64_t pool) {
  std::vector<double> mass(n, 0.0), probs(n);
  for (int64_t r = 0; r < in.queryRows; ++r) {
    attentionRow(in.queries.data() + r * d, in.keys.data(), d, n, scale,
                 probs.data(), probs.data());
    for (int64_t j = 0; j < n; ++j)
      mass[j] += probs[j];
  }
  return pooledScores(mass, mid0, midLen, pool);
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
  case Method::Adaptive: // compress() runs a plan per head instead
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

/// Runs `fn(task)` for task in [0, count) on the machine's cores, each
/// worker taking the next task when done (tasks of unequal cost still
/// balance: adaptive's per-horizon tasks differ by up to ~3x).
template <typename Fn> void parallelFor(int64_t count, Fn fn) {
  int64_t workers = std::max<int64_t>(
      1, std::min<int64_t>(count, std::thread::hardware_concurrency()));
  std::atomic<int64_t> next{0};
  std::vector<std::thread> pool;
  for (int64_t w = 0; w < workers; ++w)
    pool.emplace_back([&] {
      for (int64_t t; (t = next.fetch_add(1)) < count;)
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

//===----------------------------------------------------------------------===//
// Adaptive per-head budgets (spec section 6)
//===----------------------------------------------------------------------===//

namespace {

/// One way to spend a head's memory: the first `sink` tokens, the last
/// `window` tokens, the `heavy` middle tokens the observation queries attend
/// to most, and the rest of the middle halved `rounds` times by the walk
/// (-1: the rest is dropped).
struct HeadPlan {
  int64_t sink = 0, window = 0, heavy = 0, rounds = -1;
  bool operator==(const HeadPlan &o) const {
    return sink == o.sink && window == o.window && heavy == o.heavy &&
           rounds == o.rounds;
  }
};

/// The segments `plan` makes of a cache of `n` tokens.
struct PlanLayout {
  int64_t sink, window, heavy, rest, keptRest;
  int64_t length() const { return sink + window + heavy + keptRest; }
};
PlanLayout planLayout(const HeadPlan &plan, int64_t n) {
  PlanLayout l;
  l.sink = std::min(plan.sink, n);
  l.window = std::min(plan.window, n - l.sink);
  const int64_t middle = n - l.sink - l.window;
  l.heavy = std::min(plan.heavy, middle);
  l.rest = middle - l.heavy;
  l.keptRest = plan.rounds < 0 ? 0 : l.rest >> plan.rounds;
  return l;
}

/// How much the observation queries need each key before `end`: query rows
/// `rows` (of `perGroup` consecutive positions ending at `end`, one block
/// per query head of the group) attend causally, and key j scores
/// sum_r p_r(j) ||v_j - o_r|| / ||o_r||, the first-order change of row r's
/// relative output error if j were dropped (SnapKV's attention mass
/// weighted by how far the value is from the output; heavy tokens by this
/// score: 0.0503 -> 0.0469 / 0.1015 -> 0.1001 / 0.1873 -> 0.1851 at x4 / x8
/// / x16 on SmolLM2's held-out caches, docs/quality.md).
std::vector<double> observedImportance(const HeadInput &in, int64_t d,
                                       int64_t dv,
                                       const std::vector<int64_t> &rows,
                                       int64_t perGroup, int64_t end,
                                       double scale) {
  std::vector<double> mass(static_cast<size_t>(end), 0.0),
      probs(static_cast<size_t>(end)), o(static_cast<size_t>(dv));
  for (size_t i = 0; i < rows.size(); ++i) {
    const int64_t visible = end - perGroup + int64_t(i) % perGroup + 1;
    double norm =
        std::sqrt(attendRow(in, in.queries.data() + rows[i] * d, d, dv, visible,
                            scale, probs.data(), o.data()));
    if (!(norm > 0))
      norm = 1;
    for (int64_t j = 0; j < visible; ++j) {
      double dist = 0;
      for (int64_t x = 0; x < dv; ++x) {
        const double e = in.values[j * dv + x] - o[x];
        dist += e * e;
      }
      mass[j] += probs[j] * std::sqrt(dist) / norm;
    }
  }
  return mass;
}

/// Kept positions (cache order) and log-weights of a plan's middle
/// [mid0, mid1): its `heavy` highest-scored tokens with weight 1, then the
/// walk over the rest (position order) for `rounds` rounds, its result
/// after every round kept (a plan of t rounds reads round t's).
struct KeptMiddle {
  std::vector<int64_t> heavy;      ///< cache positions, ascending
  std::vector<int64_t> rest;       ///< cache positions of the walked tokens
  std::vector<RoundResult> rounds; ///< per round: indices into `rest`
};
KeptMiddle keepMiddle(const HeadInput &in, int64_t d, int64_t dv,
                      const CompressOptions &o, double scale, int64_t mid0,
                      int64_t mid1, const std::vector<double> &pooled,
                      int64_t heavy, int64_t rounds, uint32_t batch,
                      uint32_t head) {
  KeptMiddle km;
  std::vector<char> isHeavy(size_t(mid1 - mid0), 0);
  if (heavy > 0)
    for (int64_t i : smallestInPositionOrder(pooled, heavy)) {
      km.heavy.push_back(mid0 + i);
      isHeavy[i] = 1;
    }
  for (int64_t i = mid0; i < mid1; ++i)
    if (!isHeavy[i - mid0])
      km.rest.push_back(i);
  if (rounds < 1 || km.rest.size() < 2)
    return km;
  const int64_t len = int64_t(km.rest.size());
  std::vector<double> keys(size_t(len * d)), values(size_t(len * dv));
  for (int64_t i = 0; i < len; ++i) {
    std::copy_n(in.keys.data() + km.rest[i] * d, d, keys.data() + i * d);
    std::copy_n(in.values.data() + km.rest[i] * dv, dv, values.data() + i * dv);
  }
  CompressOptions walk = o;
  walk.rounds = rounds;
  std::vector<int64_t> kept;
  std::vector<double> logW;
  balanceMiddle(keys.data(), values.data(), len, d, dv, walk, scale, batch,
                head, kept, logW, nullptr, &km.rounds);
  return km;
}

/// Kept tokens: cache position and log-weight.
using KeptTokens = std::vector<std::pair<int64_t, double>>;

/// A plan's kept tokens in segment order — the first `sink` tokens, `km`'s
/// heavy tokens, the walk's round `walked` of the rest (or, with
/// `keepRest`, all of the rest at weight 1), the window [window0, end) —
/// not sorted.
KeptTokens planSegments(int64_t sink, const KeptMiddle &km,
                        const RoundResult *walked, bool keepRest,
                        int64_t window0, int64_t end) {
  KeptTokens kept;
  for (int64_t i = 0; i < sink; ++i)
    kept.push_back({i, 0.0});
  for (int64_t i : km.heavy)
    kept.push_back({i, 0.0});
  if (keepRest)
    for (int64_t i : km.rest)
      kept.push_back({i, 0.0});
  else if (walked)
    for (size_t i = 0; i < walked->kept.size(); ++i)
      kept.push_back({km.rest[walked->kept[i]], walked->logW[i]});
  for (int64_t i = window0; i < end; ++i)
    kept.push_back({i, 0.0});
  return kept;
}

/// The weight refit of method adaptive (spec section 6): kept token i's
/// weight becomes w0_i u_i, u >= 0 minimising, over the observation queries
/// r (query rows `rows`, of `perGroup` consecutive positions ending at
/// `end`, one block per query head of the group, causal),
///   sum_r || sum_i u_i alpha_ri (v_i - o_r) ||^2 / ||o_r||^2   (direction)
///   + mu^2 sum_r (sum_i u_i alpha_ri - 1)^2                    (mass)
///   + lambda' ||u - 1||^2
/// where alpha_ri = w0_i p_r(i), p_r the exact attention of query r and o_r
/// its output: the relative output error of the compressed cache, linearised
/// at the exact softmax mass. lambda' is `ridgeFactor` times the mean diagonal
/// of the normal equations. Solved by projected Gauss-Seidel over blocks of at
/// most kRefitBlock tokens (one block: the whole problem; more: block
/// coordinate descent, so the normal equations stay kRefitBlock^2).
constexpr double kRefitMass = 0.7;
constexpr int64_t kRefitBlock = 1024;
constexpr int kRefitSweeps = 100, kRefitPasses = 3;

void refitLogWeights(const HeadInput &in, int64_t d, int64_t dv, double scale,
                     const std::vector<int64_t> &rows, int64_t perGroup,
                     int64_t end, double ridgeFactor, KeptTokens &kept) {
  const int64_t R = int64_t(rows.size()), M = int64_t(kept.size());
  if (R == 0 || M == 0 || perGroup == 0)
    return;
  const double mu2 = kRefitMass * kRefitMass;
  // Per query: alpha (visible kept tokens), <o, v_i>, ||o||^2 and ||o||
  // (P_ri = alpha_ri / ||o_r|| below).
  std::vector<double> alpha(static_cast<size_t>(R * M), 0.0),
      pv(alpha.size(), 0.0), on2(static_cast<size_t>(R)),
      on(static_cast<size_t>(R)), probs(static_cast<size_t>(end)),
      o(static_cast<size_t>(dv));
  std::vector<double> u(static_cast<size_t>(M), 1.0);
  for (int64_t r = 0; r < R; ++r) {
    const int64_t visible = end - perGroup + r % perGroup + 1;
    on2[r] = std::max(attendRow(in, in.queries.data() + rows[r] * d, d, dv,
                                visible, scale, probs.data(), o.data()),
                      1e-300);
    on[r] = std::sqrt(on2[r]);
    for (int64_t i = 0; i < M; ++i) {
      const int64_t t = kept[i].first;
      if (t >= visible)
        continue;
      const double a = std::exp(kept[i].second) * probs[t];
      const double *v = in.values.data() + t * dv;
      double dot = 0;
      for (int64_t x = 0; x < dv; ++x)
        dot += o[x] * v[x];
      alpha[r * M + i] = a;
      pv[r * M + i] = dot;
    }
  }
  const int64_t blocks = (M + kRefitBlock - 1) / kRefitBlock;
  const int passes = blocks == 1 ? 1 : kRefitPasses;
  std::vector<double> G, g;
  for (int pass = 0; pass < passes; ++pass)
    for (int64_t i0 = 0; i0 < M; i0 += kRefitBlock) {
      const int64_t i1 = std::min(M, i0 + kRefitBlock), mb = i1 - i0;
      // The other tokens' share of query r's residuals: direction
      // Y_r = othersV_r - S_r o_r (othersV_r = sum_j u_j P_rj v_j, S_r =
      // sum_j u_j P_rj), othersO_r = <o_r, othersV_r>, and mass
      // othersMass_r = sum_j u_j alpha_rj - 1.
      G.assign(static_cast<size_t>(mb * mb), 0.0);
      g.assign(static_cast<size_t>(mb), 0.0);
      std::vector<double> S(static_cast<size_t>(R), 0.0),
          othersO(static_cast<size_t>(R), 0.0),
          othersMass(static_cast<size_t>(R), -1.0),
          othersV(static_cast<size_t>(R * dv), 0.0);
      for (int64_t r = 0; r < R; ++r)
        for (int64_t j = 0; j < M; ++j) {
          if ((j >= i0 && j < i1) || alpha[r * M + j] == 0)
            continue;
          const double pu = u[j] * (alpha[r * M + j] / on[r]);
          S[r] += pu;
          othersO[r] += pu * pv[r * M + j];
          othersMass[r] += u[j] * alpha[r * M + j];
          const double *v = in.values.data() + kept[j].first * dv;
          for (int64_t x = 0; x < dv; ++x)
            othersV[r * dv + x] += pu * v[x];
        }
      // The block's normal equations:
      //   G_ij = sum_r P_ri P_rj ((v_i - o)(v_j - o)) + mu^2 alpha_ri alpha_rj
      //   g_i  = sum_r P_ri (v_i - o_r) . y_r + mu^2 alpha_ri z_r
      // with (v_i - o)(v_j - o) = v_i.v_j - o.v_i - o.v_j + |o|^2 and y_r =
      // othersV_r - S_r o_r (S_r = sum_j u_j P_rj over the others).
      std::vector<double> PP(static_cast<size_t>(mb * mb), 0.0),
          pr(static_cast<size_t>(mb));
      for (int64_t r = 0; r < R; ++r) {
        const double *ar = alpha.data() + r * M + i0,
                     *vr = pv.data() + r * M + i0;
        for (int64_t i = 0; i < mb; ++i)
          pr[i] = ar[i] / on[r];
        const double *ov = othersV.data() + r * dv;
        for (int64_t i = 0; i < mb; ++i) {
          if (ar[i] == 0)
            continue;
          // (v_i - o_r) . Y_r
          const double *v = in.values.data() + kept[i0 + i].first * dv;
          double vo = 0;
          for (int64_t x = 0; x < dv; ++x)
            vo += v[x] * ov[x];
          g[i] += pr[i] * (vo - S[r] * vr[i] - othersO[r] + S[r] * on2[r]) +
                  mu2 * ar[i] * othersMass[r];
          double *gi = G.data() + i * mb, *ppi = PP.data() + i * mb;
          for (int64_t j = 0; j <= i; ++j) {
            ppi[j] += pr[i] * pr[j];
            gi[j] +=
                pr[i] * pr[j] * (on2[r] - vr[i] - vr[j]) + mu2 * ar[i] * ar[j];
          }
        }
      }
      for (int64_t i = 0; i < mb; ++i) {
        const double *vi = in.values.data() + kept[i0 + i].first * dv;
        for (int64_t j = 0; j <= i; ++j) {
          const double *vj = in.values.data() + kept[i0 + j].first * dv;
          double vv = 0;
          for (int64_t x = 0; x < dv; ++x)
            vv += vi[x] * vj[x];
          G[i * mb + j] += vv * PP[i * mb + j];
          G[j * mb + i] = G[i * mb + j];
        }
      }
      double trace = 0;
      for (int64_t i = 0; i < mb; ++i)
        trace += G[i * mb + i];
      const double ridge = ridgeFactor * std::max(trace / double(mb), 1e-300);
      for (int sweep = 0; sweep < kRefitSweeps; ++sweep)
        for (int64_t i = 0; i < mb; ++i) {
          double sum = ridge - g[i];
          const double *gi = G.data() + i * mb;
          for (int64_t j = 0; j < mb; ++j)
            if (j != i)
              sum -= gi[j] * u[i0 + j];
          u[i0 + i] = std::max(0.0, sum / (gi[i] + ridge));
        }
    }
  for (int64_t i = 0; i < M; ++i)
    kept[i].second += std::log(std::max(u[i], 1e-30));
}

/// Scores plans on one head by its observation queries, which sit at the
/// cache's last `lobs` positions. The later half of them (h queries) plays
/// the future: a plan compresses the cache before them ([0, n - h)),
/// choosing its heavy tokens with the earlier half as the real compression
/// chooses them with all `lobs`, and each of the h queries attends causally
/// to that plus the exact tokens from n - h to itself, as a future query
/// attends to the compressed cache plus the tokens decoded since. The score
/// is the mean relative error of their outputs against exact causal
/// attention.
class ObservationScorer {
public:
  ObservationScorer(const HeadInput &in, int64_t n, int64_t d, int64_t dv,
                    int64_t lobs, int64_t h, double scale)
      : values(in.values), n(n), dv(dv), h(h), prefix(n - h),
        rowCount(in.queryRows / lobs * h), logits(size_t(rowCount * n)),
        exact(size_t(rowCount * dv)) {
    std::vector<double> p(static_cast<size_t>(n));
    for (int64_t r = 0; r < rowCount; ++r) {
      // Row r: query head r / h of the group, position prefix + r % h.
      const double *q =
          in.queries.data() + ((r / h) * lobs + lobs - h + r % h) * d;
      const int64_t visible = position(r) + 1;
      attentionRow(q, in.keys.data(), d, visible, scale, logits.data() + r * n,
                   p.data());
      for (int64_t j = 0; j < visible; ++j)
        for (int64_t x = 0; x < dv; ++x)
          exact[r * dv + x] += p[j] * values[j * dv + x];
    }
  }

  int64_t prefixLength() const { return prefix; }

  /// The error of keeping prefix tokens `kept`.
  double error(const KeptTokens &kept) const {
    double sum = 0;
    std::vector<double> o(static_cast<size_t>(dv));
    for (int64_t r = 0; r < rowCount; ++r) {
      const double *lg = logits.data() + r * n;
      const int64_t pos = position(r);
      double mx = -INFINITY, z = 0;
      for (size_t i = 0; i < kept.size(); ++i)
        mx = std::max(mx, lg[kept[i].first] + kept[i].second);
      for (int64_t j = prefix; j <= pos; ++j)
        mx = std::max(mx, lg[j]);
      std::fill(o.begin(), o.end(), 0.0);
      for (size_t i = 0; i < kept.size(); ++i) {
        const double e = std::exp(lg[kept[i].first] + kept[i].second - mx);
        z += e;
        const double *v = values.data() + kept[i].first * dv;
        for (int64_t x = 0; x < dv; ++x)
          o[x] += e * v[x];
      }
      for (int64_t j = prefix; j <= pos; ++j) {
        const double e = std::exp(lg[j] - mx);
        z += e;
        for (int64_t x = 0; x < dv; ++x)
          o[x] += e * values[j * dv + x];
      }
      double num = 0, den = 0;
      for (int64_t x = 0; x < dv; ++x) {
        const double ex = exact[r * dv + x], diff = o[x] / z - ex;
        num += diff * diff;
        den += ex * ex;
      }
      sum += den > 0 ? std::sqrt(num / den) : std::sqrt(num);
    }
    return rowCount ? sum / double(rowCount) : 0.0;
  }

private:
  int64_t position(int64_t r) const { return prefix + r % h; }

  const std::vector<double> &values;
  int64_t n, dv, h, prefix, rowCount;
  std::vector<double> logits, exact; // [rows, n], [rows, dv]
};

struct ScoredPlan {
  HeadPlan plan;
  int64_t length = 0; ///< tokens kept of the whole cache
  double error = 0;   ///< the observation queries' error
};

/// Rounds the walk may use on one head; past 2^6 the rest of the middle is
/// better dropped for a longer window or more heavy tokens.
constexpr int64_t kAdaptiveMaxRounds = 6;
/// Heavy tokens are the top tokens of observedImportance themselves (SnapKV's
/// max-pooling over 7 neighbours spends the budget on neighbours the
/// window or the walk already covers: 0.040 vs 0.049 error at x4 on
/// SmolLM2's caches, docs/quality.md).
constexpr int64_t kAdaptivePool = 1;
constexpr int64_t kAdaptiveShortSink = 4;

/// The horizons h the observation queries play the future at: the last h
/// of the `lobs` queries score what the earlier ones chose, for h = lobs/8,
/// 2 lobs/8, ..., 7 lobs/8 (distinct, > 0). One horizon (h = lobs/2) left the
/// budget split over heads to the noise of 32 queries (SmolLM2 held out, x16:
/// a head of 52 tokens beside two of 260); the scores summed over the seven
/// take held-out x16 from 0.185 to 0.173 (docs/quality.md).
std::vector<int64_t> scoringHorizons(int64_t lobs) {
  std::vector<int64_t> hs;
  for (int64_t k = 1; k < 8; ++k)
    if (const int64_t h = k * lobs / 8; h > 0 && (hs.empty() || h != hs.back()))
      hs.push_back(h);
  return hs;
}

/// The plans of one head scored at horizon h: a plan compresses the cache
/// before the last h observation positions, its heavy tokens chosen by the
/// earlier queries, and the last h queries score it. None when the cache is
/// too short to score at h.
std::optional<std::vector<ScoredPlan>>
scorePlansAt(const HeadInput &in, int64_t n, int64_t d, int64_t dv,
             const CompressOptions &o, double scale, int64_t lobs, int64_t h,
             int64_t capacity, uint32_t batch, uint32_t head) {
  if (!(h > 0 && n - h > std::min(o.sink, n) + o.recent + 1))
    return std::nullopt;
  std::vector<ScoredPlan> all;
  ObservationScorer scorer(in, n, d, dv, lobs, h, scale);
  const int64_t prefix = scorer.prefixLength();
  // The earlier observation queries choose the heavy tokens of the prefix.
  const std::vector<int64_t> selectors = earlierQueryRows(in, lobs, h);
  const std::vector<double> mass =
      observedImportance(in, d, dv, selectors, lobs - h, prefix, scale);
  auto addPlan = [&](const HeadPlan &plan, const KeptMiddle &km,
                     const RoundResult *walked) {
    const int64_t len = planLayout(plan, n).length();
    if (len > capacity)
      return;
    const int64_t sink = std::min(plan.sink, prefix);
    all.push_back(
        {plan, len,
         scorer.error(planSegments(
             sink, km, walked, /*keepRest=*/false,
             prefix - std::min(plan.window, prefix - sink), prefix))});
  };
  // Windows from `recent` up in steps of 2^(1/2) (2 with a walk), heavy
  // tokens 0 and 2^k * 16.
  // Sinks: the spec's, and StreamingLLM's 4 (the heavy tokens take up
  // any other token the queries keep attending to).
  std::vector<int64_t> sinks{std::min(o.sink, prefix)};
  if (o.sink > kAdaptiveShortSink)
    sinks.push_back(kAdaptiveShortSink);
  for (int64_t sink : sinks) {
    int64_t step = 0;
    for (double wf = double(std::max<int64_t>(o.recent, 1));;
         wf *= 1.41421356, ++step) {
      const int64_t w = step == 0 ? o.recent : int64_t(std::llround(wf));
      if (sink + w + 1 >= prefix)
        break;
      const int64_t mid0 = sink, mid1 = prefix - w;
      const std::vector<double> pooled =
          pooledScores(mass, mid0, mid1 - mid0, kAdaptivePool);
      for (int64_t heavy = 0; heavy < mid1 - mid0;
           heavy = heavy ? 2 * heavy : 16) {
        if (sink + w + heavy > capacity)
          break;
        const bool walk = step % 2 == 0;
        const int64_t rest = mid1 - mid0 - heavy;
        const int64_t maxRounds =
            !walk || rest < 2
                ? 0
                : std::min<int64_t>(std::max(kAdaptiveMaxRounds, o.rounds),
                                    63 - __builtin_clzll(uint64_t(rest)));
        KeptMiddle km = keepMiddle(in, d, dv, o, scale, mid0, mid1, pooled,
                                   heavy, maxRounds, batch, head);
        addPlan({sink, w, heavy, -1}, km, nullptr);
        for (int64_t t = 1; t <= maxRounds; ++t)
          addPlan({sink, w, heavy, t}, km, &km.rounds[t - 1]);
      }
    }
  }
  return all;
}

/// The plans of one head that are worth their memory (a Pareto front:
/// longer only when better), scored by the observation queries summed over
/// the scoring horizons (`atHorizon`: scorePlansAt's plans per horizon, in
/// scoringHorizons' order; a horizon that could not observe is skipped, a
/// plan some horizon did not score drops out). The spec's own layout
/// (window `recent`, no heavy tokens, `rounds` rounds) is always among them.
std::vector<ScoredPlan>
planFront(const std::optional<std::vector<ScoredPlan>> *atHorizon,
          size_t horizons, const CompressOptions &o, int64_t n) {
  const HeadPlan spec{o.sink, o.recent, 0, o.rounds};
  std::vector<ScoredPlan> all;
  bool canObserve = false;
  for (size_t k = 0; k < horizons; ++k) {
    const auto &at = atHorizon[k];
    if (!at)
      continue;
    if (!canObserve) {
      all = *at;
      canObserve = true;
      continue;
    }
    // Plans come in the same order at every horizon (a shorter prefix may
    // lack some).
    std::vector<ScoredPlan> both;
    auto from = at->begin();
    for (const ScoredPlan &p : all) {
      auto it = std::find_if(from, at->end(), [&](const ScoredPlan &q) {
        return q.plan == p.plan;
      });
      if (it == at->end())
        continue;
      both.push_back({p.plan, p.length, p.error + it->error});
      from = it + 1;
    }
    all = std::move(both);
  }
  if (std::none_of(all.begin(), all.end(),
                   [&](const ScoredPlan &p) { return p.plan == spec; }))
    all.push_back(
        {spec, planLayout(spec, n).length(), canObserve ? 1e300 : 0.0});
  // Keep the front: sorted by length, each strictly better than all shorter.
  std::sort(all.begin(), all.end(),
            [](const ScoredPlan &a, const ScoredPlan &b) {
              return std::tie(a.length, a.error, a.plan.sink, a.plan.window,
                              a.plan.heavy, a.plan.rounds) <
                     std::tie(b.length, b.error, b.plan.sink, b.plan.window,
                              b.plan.heavy, b.plan.rounds);
            });
  std::vector<ScoredPlan> front;
  for (const ScoredPlan &p : all)
    if (front.empty() || p.error < front.back().error || p.plan == spec)
      front.push_back(p);
  return front;
}

/// Picks one plan per head minimising the heads' summed error with their
/// lengths summing to at most `budget` (a multiple-choice knapsack, exact
/// in tokens); heads that cannot fit take their shortest plan.
std::vector<HeadPlan>
allocateBudget(const std::vector<std::vector<ScoredPlan>> &heads,
               int64_t budget) {
  const size_t h = heads.size();
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> best(size_t(budget + 1), 0.0), next(best.size());
  std::vector<std::vector<int32_t>> choice(
      h, std::vector<int32_t>(best.size(), -1));
  for (size_t i = 0; i < h; ++i) {
    for (int64_t c = 0; c <= budget; ++c) {
      next[c] = inf;
      for (size_t k = 0; k < heads[i].size(); ++k) {
        const int64_t len = heads[i][k].length;
        if (len > c)
          break; // sorted by length
        const double e = best[c - len] + heads[i][k].error;
        if (e < next[c]) {
          next[c] = e;
          choice[i][c] = int32_t(k);
        }
      }
    }
    std::swap(best, next);
  }
  std::vector<HeadPlan> plans(h);
  int64_t c = budget;
  for (size_t i = h; i-- > 0;) {
    const int32_t k = choice[i][c];
    plans[i] = heads[i][k < 0 ? 0 : k].plan;
    c = std::max<int64_t>(0, c - heads[i][k < 0 ? 0 : k].length);
  }
  return plans;
}

/// Head `plan`'s kept tokens of the cache's first `end` tokens (sink, heavy
/// and walked middle tokens, window; cache order) with their log-weights;
/// the heavy tokens are those query rows `rows` (`perGroup` positions
/// ending at `end`) attend to most.
KeptTokens planTokens(const HeadInput &in, int64_t end, int64_t d, int64_t dv,
                      const CompressOptions &o, double scale,
                      const HeadPlan &plan, const std::vector<int64_t> &rows,
                      int64_t perGroup, uint32_t batch, uint32_t head) {
  const PlanLayout lay = planLayout(plan, end);
  const int64_t mid0 = lay.sink, mid1 = end - lay.window;
  std::vector<double> pooled =
      lay.heavy > 0 ? pooledScores(observedImportance(in, d, dv, rows, perGroup,
                                                      end, scale),
                                   mid0, mid1 - mid0, kAdaptivePool)
                    : std::vector<double>(size_t(mid1 - mid0), 0.0);
  KeptMiddle km = keepMiddle(in, d, dv, o, scale, mid0, mid1, pooled, lay.heavy,
                             plan.rounds, batch, head);
  KeptTokens kept = planSegments(
      lay.sink, km,
      plan.rounds > 0 && !km.rounds.empty() ? &km.rounds.back() : nullptr,
      /*keepRest=*/plan.rounds == 0, mid1, end);
  std::sort(kept.begin(), kept.end());
  return kept;
}

/// The refit's ridges tried, weakest first.
constexpr double kRefitRidges[] = {1e-3, 1e-2, 1e-1, 1.0};

/// The observation queries' scores of head `plan`'s weight refit at horizon
/// h, as the plan scoring plays the future: the plan's tokens of the cache
/// before the last h queries, heavy tokens chosen and weights refit with the
/// earlier queries, scored by the later ones (their causal outputs over those
/// tokens plus the exact tokens since) with the plan's own weights (`plain`)
/// and refit with each of kRefitRidges. None when the cache is too short.
struct RidgeScores {
  double plain = 0, refit[std::size(kRefitRidges)] = {};
};
std::optional<RidgeScores> scoreRefitRidgesAt(const HeadInput &in, int64_t n,
                                              int64_t d, int64_t dv,
                                              const CompressOptions &o,
                                              double scale, int64_t lobs,
                                              int64_t h, const HeadPlan &plan,
                                              uint32_t batch, uint32_t head) {
  if (n - h < 2)
    return std::nullopt;
  ObservationScorer scorer(in, n, d, dv, lobs, h, scale);
  const std::vector<int64_t> selectors = earlierQueryRows(in, lobs, h);
  const KeptTokens tokens =
      planTokens(in, scorer.prefixLength(), d, dv, o, scale, plan, selectors,
                 lobs - h, batch, head);
  RidgeScores s;
  s.plain = scorer.error(tokens);
  for (size_t k = 0; k < std::size(kRefitRidges); ++k) {
    KeptTokens refit = tokens;
    refitLogWeights(in, d, dv, scale, selectors, lobs - h,
                    scorer.prefixLength(), kRefitRidges[k], refit);
    s.refit[k] = scorer.error(refit);
  }
  return s;
}

/// The ridge of a head's weight refit from its scores at the scoring
/// horizons (`atHorizon`, summed): the weakest ridge within 1 % of the best
/// score; a negative value — keep the plan's weights — when no refit scores
/// better than the plan's own weights, or when there are too few queries to
/// tell.
double chooseRefitRidge(const std::optional<RidgeScores> *atHorizon,
                        size_t horizons) {
  double plain = 0, scores[std::size(kRefitRidges)] = {};
  bool scored = false;
  for (size_t k = 0; k < horizons; ++k) {
    if (!atHorizon[k])
      continue;
    scored = true;
    plain += atHorizon[k]->plain;
    for (size_t r = 0; r < std::size(kRefitRidges); ++r)
      scores[r] += atHorizon[k]->refit[r];
  }
  const double best = *std::min_element(std::begin(scores), std::end(scores));
  if (!scored || best >= plain)
    return -1;
  for (size_t k = 0; k < std::size(kRefitRidges); ++k)
    if (scores[k] <= 1.01 * best)
      return kRefitRidges[k];
  return -1; // not reached
}

/// Writes head `plan`'s kept tokens of the whole cache, their weights refit
/// with `ridge` (negative: the plan's weights), into `indices`/`logWeights`;
/// returns how many.
int64_t applyPlan(const HeadInput &in, int64_t n, int64_t d, int64_t dv,
                  const CompressOptions &o, double scale, int64_t lobs,
                  const HeadPlan &plan, double ridge, uint32_t batch,
                  uint32_t head, int64_t *indices, float *logWeights) {
  std::vector<int64_t> rows;
  for (int64_t r = 0; r < in.queryRows; ++r)
    rows.push_back(r);
  KeptTokens kept =
      planTokens(in, n, d, dv, o, scale, plan, rows, lobs, batch, head);
  if (ridge >= 0)
    refitLogWeights(in, d, dv, scale, rows, lobs, n, ridge, kept);
  for (size_t j = 0; j < kept.size(); ++j) {
    indices[j] = kept[j].first;
    logWeights[j] = float(kept[j].second);
  }
  return int64_t(kept.size());
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
  const bool observes =
      o.method == Method::SnapKV || o.method == Method::Adaptive;
  if (observes != (observation != nullptr))
    return Status::error(
        observes
            ? std::string(methodName(o.method)) + " needs observation queries"
            : "observation queries are for snapkv and adaptive only");
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
  const bool adaptive = o.method == Method::Adaptive;
  out.batch = B;
  out.heads = H;
  out.m = adaptive ? lay.adaptiveCapacity(N, o.budget) : lay.compressedLength();
  out.indices.assign(size_t(B * H * out.m), 0);
  out.logWeights.assign(size_t(B * H * out.m), 0.0f);
  out.lengths.clear();
  auto loadHead = [&](int64_t bh) {
    const int64_t b = bh / H, h = bh % H;
    HeadInput in;
    loadRows(key, bh * N * D, N * D, in.keys);
    loadRows(value, bh * N * Dv, N * Dv, in.values);
    if (observation) {
      const int64_t rows = in.queryRows = groups * lobs;
      loadRows(*observation, (b * observation->shape[1] + h * groups) * lobs * D,
               rows * D, in.queries);
    }
    return in;
  };
  if (!adaptive) {
    parallelFor(B * H, [&](int64_t bh) {
      selectHead(loadHead(bh), N, D, Dv, o, scale, lay, uint32_t(bh / H),
                 uint32_t(bh % H), out.indices.data() + bh * out.m,
                 out.logWeights.data() + bh * out.m); // m may be 0
    });
    return {};
  }
  // Adaptive (spec section 6): score every head's plans, split each batch
  // row's memory H * M_spec over its heads, choose each head's refit ridge,
  // then compress with the plans. Scoring and ridges are one task per head
  // and horizon, so that a few heads still use every core; the horizons'
  // scores are summed in order, as one task per head would.
  const std::vector<int64_t> horizons = scoringHorizons(lobs);
  const int64_t nh = int64_t(horizons.size());
  std::vector<std::vector<ScoredPlan>> scored(size_t(B * H));
  {
    std::vector<std::optional<std::vector<ScoredPlan>>> atHorizon(
        size_t(B * H * nh));
    parallelFor(B * H * nh, [&](int64_t t) {
      const int64_t bh = t / nh;
      atHorizon[t] =
          scorePlansAt(loadHead(bh), N, D, Dv, o, scale, lobs, horizons[t % nh],
                       out.m, uint32_t(bh / H), uint32_t(bh % H));
    });
    for (int64_t bh = 0; bh < B * H; ++bh)
      scored[bh] = planFront(atHorizon.data() + bh * nh, size_t(nh), o, N);
  }
  std::vector<HeadPlan> plans;
  for (int64_t b = 0; b < B; ++b) {
    std::vector<HeadPlan> row =
        allocateBudget({scored.begin() + b * H, scored.begin() + (b + 1) * H},
                       H * lay.adaptiveMean(N, o.budget));
    plans.insert(plans.end(), row.begin(), row.end());
  }
  std::vector<double> ridges(size_t(B * H), -1.0);
  if (o.adaptiveRefit) {
    std::vector<std::optional<RidgeScores>> ridgeAt(size_t(B * H * nh));
    parallelFor(B * H * nh, [&](int64_t t) {
      const int64_t bh = t / nh;
      ridgeAt[t] = scoreRefitRidgesAt(loadHead(bh), N, D, Dv, o, scale, lobs,
                                      horizons[t % nh], plans[bh],
                                      uint32_t(bh / H), uint32_t(bh % H));
    });
    for (int64_t bh = 0; bh < B * H; ++bh)
      ridges[bh] = chooseRefitRidge(ridgeAt.data() + bh * nh, size_t(nh));
  }
  out.lengths.assign(size_t(B * H), 0);
  parallelFor(B * H, [&](int64_t bh) {
    int64_t *idx = out.indices.data() + bh * out.m;
    float *lw = out.logWeights.data() + bh * out.m;
    const int64_t len = out.lengths[bh] =
        applyPlan(loadHead(bh), N, D, Dv, o, scale, lobs, plans[bh], ridges[bh],
                  uint32_t(bh / H), uint32_t(bh % H), idx, lw);
    std::fill(idx + len, idx + out.m, int64_t(-1));
    std::fill(lw + len, lw + out.m, -std::numeric_limits<float>::infinity());
  });
  return {};
}

Tensor gather(const TensorRef &src, const Selection &sel) {
  const int64_t N = src.shape[2], X = src.shape[3];
  Tensor t(src.dtype, {sel.batch, sel.heads, sel.m, X});
  const int64_t es = dtypeSize(src.dtype);
  const auto *in = static_cast<const uint8_t *>(src.data);
  for (int64_t bh = 0; bh < sel.batch * sel.heads; ++bh)
    for (int64_t j = 0; j < sel.m; ++j) {
      const int64_t i = sel.indices[bh * sel.m + j];
      if (i < 0) // adaptive padding: zero rows (Tensor starts zeroed)
        continue;
      std::copy_n(in + ((bh * N + i) * X) * es, X * es,
                  t.bytes.data() + ((bh * sel.m + j) * X) * es);
    }
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
    const int64_t len =
        o.kvLen ? std::clamp<int64_t>(
                      o.kvLen[o.kvLenPerHead ? b * Hkv + hkv : b], 0, N)
                : N;
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
      if (mx == -INFINITY)
        continue; // every visible key has weight 0 (log-weight -inf): zeros
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
