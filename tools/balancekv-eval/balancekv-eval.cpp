//===- balancekv-eval.cpp - measured approximation quality ---------------===//
//
// Relative attention error (spec section 5) of every compression method at
// ratios 2^T over data sets and seeds; prints a table, writes CSV/Markdown.
//
//===----------------------------------------------------------------------===//

#include "Datasets.h"
#include "balancekv/Support/CompressedLayout.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <cmath>
#include <fstream>
#include <map>
#include <new>

using namespace balancekv;
using namespace balancekv::reference;
namespace cl = llvm::cl;

static cl::opt<std::string> dataset("dataset",
                                    cl::desc("gaussian | synthetic-llm | both"),
                                    cl::init("both"));
static cl::opt<std::string> kvPrefix(
    "kv", cl::desc("evaluate a real cache: PREFIX_{q,k,v}.npy instead"),
    cl::init(""));
static cl::opt<std::string> methods(
    "methods",
    cl::desc("comma list of balance, balance-gamma0, uniform, streaming, "
             "snapkv, snapkv-pool1, knorm, adaptive, adaptive-norefit"),
    cl::init("balance,balance-gamma0,uniform,streaming,snapkv,snapkv-pool1,"
             "knorm,adaptive"));
static cl::opt<std::string> ratios(
    "ratios",
    cl::desc("comma list of total memory ratios N/M (>= 1): every method "
             "keeps at most N/ratio tokens per head, new tokens included; "
             "fixed methods take the fewest rounds that fit and grow the "
             "recent window to fill it, adaptive gets it as its budget"),
    cl::init("2,4,8,16"));
static cl::opt<int64_t> tokens("tokens", cl::desc("cache length N"),
                               cl::init(4096));
static cl::opt<int64_t> heads("heads", cl::desc("KV heads"), cl::init(4));
static cl::opt<int64_t> dim("dim", cl::desc("head dim"), cl::init(128));
static cl::opt<int64_t> queries("queries",
                                cl::desc("queries (the last positions)"),
                                cl::init(32));
static cl::opt<int64_t> seeds("seeds", cl::desc("seeds per cell"),
                              cl::init(3));
/// A parameter's flag: its table name with '-' for '_'.
static llvm::StringRef flagName(const char *name) {
  static std::deque<std::string> names; // stable storage for cl::opt
  names.emplace_back(name);
  std::replace(names.back().begin(), names.back().end(), '_', '-');
  return names.back();
}
// One flag per compression parameter of CompressParams.h's table (--ratios
// chooses the rounds, the window and the budget; --seed is the first seed of
// each cell's --seeds).
#define BALANCEKV_PARAM_FLAG(type, member, name, dflt, doc)                    \
  static cl::opt<type> member##Flag(flagName(#name), cl::desc(doc),            \
                                    cl::init(CompressParams{}.member));
BALANCEKV_COMPRESS_PARAMS(BALANCEKV_PARAM_FLAG)
#undef BALANCEKV_PARAM_FLAG
static cl::opt<std::string> csvPath("csv", cl::desc("write CSV here"),
                                    cl::init(""));
static cl::opt<std::string> mdPath("markdown",
                                   cl::desc("write a Markdown table here"),
                                   cl::init(""));
static cl::opt<bool> quiet("quiet", cl::desc("no progress on stderr"));
static cl::opt<std::string> protocol(
    "protocol",
    cl::desc("same: the last --queries positions attend to the whole cache, "
             "non-causally, and SnapKV observes them; heldout (--kv): the "
             "first N - Q tokens are compressed observing the --observe "
             "queries before them, and the last Q queries attend causally to "
             "the compressed prefix plus the Q exact new tokens"),
    cl::init("same"));
static cl::opt<int64_t> observe(
    "observe", cl::desc("heldout: observation queries before the prefix end"),
    cl::init(64));

namespace {

struct Cell {
  std::vector<double> errors; // one per seed
  double mean() const {
    double s = 0;
    for (double e : errors)
      s += e;
    return errors.empty() ? 0 : s / double(errors.size());
  }
  double stddev() const {
    if (errors.size() < 2)
      return 0;
    double m = mean(), s = 0;
    for (double e : errors)
      s += (e - m) * (e - m);
    return std::sqrt(s / double(errors.size() - 1));
  }
};

/// Largest generated cache (elements of one of q, k, v) and head dim.
constexpr int64_t kMaxElements = int64_t(1) << 28;
constexpr int64_t kMaxDim = 4096;

[[noreturn]] void fail(const std::string &msg) {
  llvm::errs() << "balancekv-eval: " << msg << "\n";
  std::exit(1);
}

/// The parameters that make a fixed method keep at most `target` of the
/// `n` tokens it compresses: the fewest rounds whose spec layout fits, then
/// the longest recent window that still fits (the memory a ratio allows).
CompressParams fitToMemory(CompressParams p, int64_t n, int64_t target) {
  auto length = [&](int64_t recent, int64_t rounds) {
    return CompressedLayout::compute(n, p.sink, recent, rounds)
        .compressedLength();
  };
  p.rounds = 0;
  while (p.rounds < CompressParams::kMaxRounds &&
         length(p.recent, p.rounds) > target)
    ++p.rounds;
  int64_t lo = p.recent, hi = std::max<int64_t>(n, p.recent);
  while (lo < hi) { // the longest window with length <= target
    int64_t mid = lo + (hi - lo + 1) / 2;
    if (length(mid, p.rounds) <= target)
      lo = mid;
    else
      hi = mid - 1;
  }
  p.recent = lo;
  return p;
}

/// The tokens of the cache a ratio lets a method keep: N / ratio, less the
/// `fresh` exact new tokens of the held-out protocol.
int64_t memoryTarget(int64_t n, int64_t fresh, double ratio) {
  return std::max<int64_t>(int64_t(std::floor(double(n) / ratio)) - fresh, 1);
}

/// Options of method `name` for a cache of `n` compressed tokens held to
/// `target` tokens per head. "balance-gamma0" is the balance walk with
/// gamma = 0 (fair-coin signs through the same selection); "snapkv-pool1"
/// is SnapKV without its max-pooling (the top tokens themselves, the
/// stronger SnapKV on real caches); "adaptive" keeps
/// the flags' sink, window and rounds as its spec plan and `target` as its
/// mean budget; "adaptive-norefit" is adaptive without its weight refit
/// (the ablation).
CompressOptions optionsFor(const std::string &name, int64_t n, int64_t target,
                           uint64_t seed) {
  CompressOptions o;
  std::string base = name == "balance-gamma0"     ? "balance"
                     : name == "snapkv-pool1"     ? "snapkv"
                     : name == "adaptive-norefit" ? "adaptive"
                                                  : name;
  auto m = parseMethod(base);
  if (!m)
    fail("unknown method '" + name + "'");
  o.method = *m;
#define BALANCEKV_PARAM_FROM_FLAG(type, member, name, dflt, doc)               \
  o.member = member##Flag;
  BALANCEKV_COMPRESS_PARAMS(BALANCEKV_PARAM_FROM_FLAG)
#undef BALANCEKV_PARAM_FROM_FLAG
  if (o.method == Method::Adaptive)
    o.budget = target;
  else
    static_cast<CompressParams &>(o) = fitToMemory(o, n, target);
  o.seed = seedFlag + seed;
  if (name == "balance-gamma0")
    o.gamma = 0.0;
  if (name == "snapkv-pool1")
    o.snapkvPool = 1;
  if (name == "adaptive-norefit")
    o.adaptiveRefit = false;
  Status st = validate(o);
  if (!st.ok)
    fail(st.message);
  return o;
}

/// The exact new tokens of the held-out protocol (none otherwise).
int64_t freshTokens(const eval::Instance &in) {
  return protocol == "heldout" ? in.query.shape[2] : 0;
}

/// "x4", "x2.5".
std::string ratioLabel(double r) {
  std::string s = llvm::formatv("{0}", r).str();
  // formatv prints 2 decimals: drop trailing zeros and a trailing point.
  if (s.find('.') != std::string::npos) {
    s.erase(s.find_last_not_of('0') + 1);
    if (s.back() == '.')
      s.pop_back();
  }
  return "x" + s;
}

/// The fixed policies adaptive is compared with (not the gamma-0 ablation).
bool isFixedPolicy(const std::string &m) {
  return m == "balance" || m == "uniform" || m == "streaming" ||
         m == "snapkv" || m == "snapkv-pool1" || m == "knorm";
}

/// N / M of the fixed methods at `ratio`: their fitted layout of the n -
/// fresh compressed tokens plus the fresh ones, against the n tokens
/// (adaptive keeps at most as much).
double memoryRatio(int64_t n, int64_t fresh, double ratio) {
  const CompressOptions o =
      optionsFor("balance", n - fresh, memoryTarget(n, fresh, ratio), 0);
  const int64_t m =
      CompressedLayout::compute(n - fresh, o.sink, o.recent, o.rounds)
          .compressedLength() +
      fresh;
  return double(n) / double(m);
}

/// Whether method `m` reads observation queries.
bool observes(Method m) { return m == Method::SnapKV || m == Method::Adaptive; }

/// The held-out protocol (--protocol=heldout): the prefix [0, N - Q) is
/// compressed observing the `observe` queries before its end; the last Q
/// queries attend causally to it plus the Q exact new tokens (log-weight 0).
/// Adaptive keeps a different number of tokens per head: their mean must
/// stay within the memory the ratio allows.
void checkMemory(const Selection &sel, int64_t target) {
  if (sel.lengths.empty())
    return;
  int64_t sum = 0;
  for (int64_t len : sel.lengths)
    sum += len;
  if (sum > target * int64_t(sel.lengths.size()))
    fail("adaptive kept " + std::to_string(sum) + " tokens, more than " +
         std::to_string(target) + " per head");
}

double evaluateHeldout(const eval::Instance &in,
                       const std::vector<double> &exact,
                       const CompressOptions &o, int64_t target) {
  const int64_t n = in.key.shape[2], q = in.query.shape[2];
  const int64_t prefix = n - q, t = in.allQueries.shape[2];
  // allQueries row r is position n - t + r.
  const int64_t obsEnd = prefix - (n - t);
  eval::Instance pre{{}, eval::sliceRows(in.key, 0, prefix),
                     eval::sliceRows(in.value, 0, prefix), {}};
  reference::Tensor obs =
      eval::sliceRows(in.allQueries, obsEnd - observe, obsEnd);
  TensorRef obsRef = obs.ref();
  Selection sel;
  Status st = compress(pre.key.ref(), pre.value.ref(), o, sel,
                       observes(o.method) ? &obsRef : nullptr);
  if (!st.ok)
    fail(st.message);
  checkMemory(sel, target);
  reference::Tensor ck = eval::concatRows(
      gather(pre.key.ref(), sel), eval::sliceRows(in.key, prefix, n));
  reference::Tensor cv = eval::concatRows(
      gather(pre.value.ref(), sel), eval::sliceRows(in.value, prefix, n));
  const int64_t h = in.key.shape[1], m = int64_t(sel.logWeights.size()) / h;
  std::vector<float> logW;
  for (int64_t i = 0; i < h; ++i) {
    logW.insert(logW.end(), sel.logWeights.begin() + i * m,
                sel.logWeights.begin() + (i + 1) * m);
    logW.insert(logW.end(), size_t(q), 0.0f);
  }
  std::vector<double> approx;
  AttentionOptions causal;
  causal.causal = true;
  st = attention(in.query.ref(), ck.ref(), cv.ref(), causal, approx,
                 logW.data());
  if (!st.ok)
    fail(st.message);
  return meanRelativeError(approx, exact, in.value.shape[3]);
}

double evaluate(const eval::Instance &in, const std::vector<double> &exact,
                const CompressOptions &o, int64_t target) {
  if (protocol == "heldout")
    return evaluateHeldout(in, exact, o, target);
  Selection sel;
  TensorRef obs = in.query.ref();
  Status st = compress(in.key.ref(), in.value.ref(), o, sel,
                       observes(o.method) ? &obs : nullptr);
  if (!st.ok)
    fail(st.message);
  checkMemory(sel, target);
  Tensor ck = gather(in.key.ref(), sel), cv = gather(in.value.ref(), sel);
  std::vector<double> approx;
  st = attention(in.query.ref(), ck.ref(), cv.ref(), {}, approx,
                 sel.logWeights.data());
  if (!st.ok)
    fail(st.message);
  return meanRelativeError(approx, exact, in.value.shape[3]);
}

} // namespace

static int run(int argc, char **argv) {
  cl::ParseCommandLineOptions(
      argc, argv,
      "balancekv-eval: relative attention error of KV-cache compression\n");

  std::vector<std::string> methodList, datasetList;
  std::vector<double> ratioList;
  llvm::SmallVector<llvm::StringRef> parts;
  llvm::StringRef(methods).split(parts, ',', -1, false);
  for (auto p : parts)
    methodList.push_back(p.trim().str());
  if (methodList.empty())
    fail("--methods is empty");
  parts.clear();
  llvm::StringRef(ratios).split(parts, ',', -1, false);
  for (auto p : parts) {
    double r;
    if (p.trim().getAsDouble(r) || !(r >= 1) || r > 65536)
      fail("ratios must be numbers in [1, 65536], got '" + p.str() + "'");
    ratioList.push_back(r);
  }
  if (ratioList.empty())
    fail("--ratios is empty");
  if (roundsFlag.getNumOccurrences() || recentFlag.getNumOccurrences())
    fail("--rounds and --recent are set per cell by --ratios");
  if (!kvPrefix.empty())
    datasetList = {"kv:" + kvPrefix};
  else if (dataset == "both")
    datasetList = {"gaussian", "synthetic-llm"};
  else if (dataset == "gaussian" || dataset == "synthetic-llm")
    datasetList = {dataset};
  else
    fail("unknown dataset '" + dataset + "'");
  if (tokens < 1 || heads < 1 || dim < 1 || queries < 1 || seeds < 1)
    fail("--tokens, --heads, --dim, --queries and --seeds must be >= 1");
  // Generated caches are held in memory (and the synthetic one has a
  // dim x dim value map): bound them before any size product can overflow.
  if (dim > kMaxDim || tokens > kMaxElements || heads > kMaxElements ||
      heads * tokens > kMaxElements / dim)
    fail("--heads x --tokens x --dim must be at most 2^28 elements with "
         "--dim <= 4096, got " +
         std::to_string(heads) + " x " + std::to_string(tokens) + " x " +
         std::to_string(dim));
  if (queries > tokens)
    fail("--queries must not exceed --tokens");
  for (const auto &m : methodList)
    (void)optionsFor(m, 1, 1, 0); // reject bad names before the long run

  // (dataset, method, ratio index) -> errors over seeds
  std::map<std::tuple<std::string, std::string, size_t>, Cell> cells;
  const int64_t total = int64_t(datasetList.size()) * seeds *
                        int64_t(methodList.size() * ratioList.size());
  int64_t done = 0;
  auto start = std::chrono::steady_clock::now();
  eval::Instance realKV;
  if (!kvPrefix.empty()) {
    std::string err = eval::loadKV(kvPrefix, queries, realKV);
    if (!err.empty())
      fail(err);
  }
  if (protocol != "same" && protocol != "heldout")
    fail("--protocol must be same or heldout, got '" + protocol + "'");
  if (protocol == "heldout") {
    if (kvPrefix.empty())
      fail("--protocol=heldout needs --kv (queries of earlier positions)");
    const int64_t n = realKV.key.shape[2], t = realKV.allQueries.shape[2];
    // Observation rows [n - queries - observe, n - queries) must be in q.
    if (observe < 1 || queries + observe > t || queries >= n)
      fail("--protocol=heldout needs --observe >= 1, --queries + --observe <= "
           "the rows of q (" + std::to_string(t) + ") and --queries < tokens");
  }
  for (const auto &ds : datasetList) {
    for (int64_t seed = 0; seed < seeds; ++seed) {
      eval::Instance in =
          !kvPrefix.empty() ? realKV
          : ds == "gaussian"
              ? eval::makeGaussian(heads, tokens, dim, queries, uint64_t(seed))
              : eval::makeSyntheticLLM(heads, tokens, dim, queries,
                                       uint64_t(seed));
      std::vector<double> exact;
      AttentionOptions exactOpts;
      exactOpts.causal = protocol == "heldout";
      Status st = attention(in.query.ref(), in.key.ref(), in.value.ref(),
                            exactOpts, exact);
      if (!st.ok)
        fail(st.message);
      const int64_t n = in.key.shape[2], fresh = freshTokens(in);
      for (const auto &m : methodList)
        for (size_t r = 0; r < ratioList.size(); ++r) {
          const int64_t target = memoryTarget(n, fresh, ratioList[r]);
          double err = evaluate(
              in, exact, optionsFor(m, n - fresh, target, uint64_t(seed)),
              target);
          cells[{ds, m, r}].errors.push_back(err);
          if (!quiet) {
            double secs = std::chrono::duration<double>(
                              std::chrono::steady_clock::now() - start)
                              .count();
            llvm::errs() << llvm::format(
                "\r[%3d%%] %s seed %lld %s %s  (%.0fs)   ",
                int(100 * ++done / total), ds.c_str(), (long long)seed,
                m.c_str(), ratioLabel(ratioList[r]).c_str(), secs);
          }
        }
    }
  }
  if (!quiet)
    llvm::errs() << "\n";

  // Table: one block per dataset, methods as rows, ratios as columns.
  std::string md;
  llvm::raw_string_ostream mdOs(md);
  const int64_t n = kvPrefix.empty() ? tokens.getValue() : realKV.key.shape[2];
  const int64_t fresh = protocol == "heldout" ? realKV.query.shape[2] : 0;
  for (const auto &ds : datasetList) {
    llvm::outs() << "\n"
                 << ds << " (N=" << n << ", seeds=" << seeds
                 << "): mean relative error +- std\n";
    llvm::outs() << llvm::format("%-16s", "method");
    mdOs << "\n**" << ds << "**\n\n| method |";
    for (double r : ratioList) {
      llvm::outs() << llvm::format("%18s", ratioLabel(r).c_str());
      mdOs << " " << ratioLabel(r) << " |";
    }
    llvm::outs() << "\n";
    mdOs << "\n|---|" ;
    for (size_t i = 0; i < ratioList.size(); ++i)
      mdOs << "---|";
    mdOs << "\n";
    // The memory every method keeps at that ratio (the fixed methods' fitted
    // layout plus the new tokens held out; adaptive keeps at most as much),
    // against the N tokens.
    llvm::outs() << llvm::format("%-16s", "memory N/M");
    mdOs << "| memory N/M |";
    for (double r : ratioList) {
      llvm::outs() << llvm::format("%18.2f", memoryRatio(n, fresh, r));
      mdOs << llvm::format(" %.2f |", memoryRatio(n, fresh, r));
    }
    llvm::outs() << "\n";
    mdOs << "\n";
    auto row = [&](const std::string &name, auto cellAt) {
      llvm::outs() << llvm::format("%-16s", name.c_str());
      mdOs << "| " << name << " |";
      for (size_t r = 0; r < ratioList.size(); ++r) {
        const Cell &c = cellAt(r);
        llvm::outs() << llvm::format("  %7.4f +- %6.4f", c.mean(), c.stddev());
        mdOs << llvm::format(" %.4f ± %.4f |", c.mean(), c.stddev());
      }
      llvm::outs() << "\n";
      mdOs << "\n";
    };
    for (const auto &m : methodList)
      row(m, [&](size_t r) -> const Cell & { return cells[{ds, m, r}]; });
    // The best fixed policy per ratio (the methods of spec section 4 and
    // BalanceKV), which adaptive is measured against.
    std::vector<Cell> best(ratioList.size());
    bool anyFixed = false;
    for (size_t r = 0; r < ratioList.size(); ++r)
      for (const auto &m : methodList)
        if (isFixedPolicy(m) && (best[r].errors.empty() ||
                                 cells[{ds, m, r}].mean() < best[r].mean())) {
          best[r] = cells[{ds, m, r}];
          anyFixed = true;
        }
    if (anyFixed)
      row("best fixed", [&](size_t r) -> const Cell & { return best[r]; });
  }
  if (!csvPath.empty()) {
    std::ofstream csv(csvPath);
    if (!csv)
      fail("cannot write " + csvPath);
    csv << "dataset,method,ratio,memory_ratio,mean_rel_error,std_rel_error\n";
    for (const auto &[key, c] : cells) {
      const double r = ratioList[std::get<2>(key)];
      csv << std::get<0>(key) << "," << std::get<1>(key) << "," << r << ","
          << memoryRatio(n, fresh, r) << "," << c.mean() << "," << c.stddev()
          << "\n";
    }
  }
  if (!mdPath.empty()) {
    std::ofstream f(mdPath);
    if (!f)
      fail("cannot write " + mdPath);
    f << mdOs.str();
  }
  return 0;
}

int main(int argc, char **argv) {
  // Built without exceptions: an allocation failure (a real cache larger
  // than memory) ends with a message instead of std::terminate.
  std::set_new_handler([] { fail("out of memory"); });
  return run(argc, argv);
}
