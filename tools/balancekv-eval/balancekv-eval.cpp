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
             "snapkv, knorm"),
    cl::init("balance,balance-gamma0,uniform,streaming,snapkv,knorm"));
static cl::opt<std::string> ratios("ratios",
                                   cl::desc("comma list of powers of two"),
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
// chooses the rounds; --seed is the first seed of each cell's --seeds).
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

/// "balance-gamma0" is the balance walk with gamma = 0 (fair-coin signs
/// through the same selection).
CompressOptions optionsFor(const std::string &name, int64_t rounds,
                           uint64_t seed) {
  CompressOptions o;
  std::string base = name == "balance-gamma0" ? "balance" : name;
  auto m = parseMethod(base);
  if (!m)
    fail("unknown method '" + name + "'");
  o.method = *m;
#define BALANCEKV_PARAM_FROM_FLAG(type, member, name, dflt, doc)               \
  o.member = member##Flag;
  BALANCEKV_COMPRESS_PARAMS(BALANCEKV_PARAM_FROM_FLAG)
#undef BALANCEKV_PARAM_FROM_FLAG
  o.rounds = rounds;
  o.seed = seedFlag + seed;
  if (name == "balance-gamma0")
    o.gamma = 0.0;
  Status st = validate(o);
  if (!st.ok)
    fail(st.message);
  return o;
}

/// The held-out protocol (--protocol=heldout): the prefix [0, N - Q) is
/// compressed observing the `observe` queries before its end; the last Q
/// queries attend causally to it plus the Q exact new tokens (log-weight 0).
double evaluateHeldout(const eval::Instance &in,
                       const std::vector<double> &exact,
                       const CompressOptions &o) {
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
                       o.method == Method::SnapKV ? &obsRef : nullptr);
  if (!st.ok)
    fail(st.message);
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
                const CompressOptions &o) {
  if (protocol == "heldout")
    return evaluateHeldout(in, exact, o);
  Selection sel;
  TensorRef obs = in.query.ref();
  Status st = compress(in.key.ref(), in.value.ref(), o, sel,
                       o.method == Method::SnapKV ? &obs : nullptr);
  if (!st.ok)
    fail(st.message);
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
  std::vector<int64_t> roundsList;
  llvm::SmallVector<llvm::StringRef> parts;
  llvm::StringRef(methods).split(parts, ',', -1, false);
  for (auto p : parts)
    methodList.push_back(p.trim().str());
  if (methodList.empty())
    fail("--methods is empty");
  parts.clear();
  llvm::StringRef(ratios).split(parts, ',', -1, false);
  for (auto p : parts) {
    int64_t r;
    if (p.trim().getAsInteger(10, r) || r < 1 || (r & (r - 1)) ||
        r > (int64_t(1) << CompressParams::kMaxRounds))
      fail("ratios must be powers of two up to 2^16, got '" + p.str() + "'");
    roundsList.push_back(int64_t(llvm::Log2_64(uint64_t(r))));
  }
  if (roundsList.empty())
    fail("--ratios is empty");
  if (roundsFlag.getNumOccurrences())
    fail("--rounds is set per cell by --ratios");
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
    (void)optionsFor(m, 1, 0); // reject bad names before the long run

  // (dataset, method, rounds) -> errors over seeds
  std::map<std::tuple<std::string, std::string, int64_t>, Cell> cells;
  const int64_t total = int64_t(datasetList.size()) * seeds *
                        int64_t(methodList.size() * roundsList.size());
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
      for (const auto &m : methodList)
        for (int64_t rounds : roundsList) {
          double err = evaluate(in, exact, optionsFor(m, rounds, uint64_t(seed)));
          cells[{ds, m, rounds}].errors.push_back(err);
          if (!quiet) {
            double secs = std::chrono::duration<double>(
                              std::chrono::steady_clock::now() - start)
                              .count();
            llvm::errs() << llvm::format("\r[%3d%%] %s seed %lld %s x%lld  (%.0fs)   ",
                                         int(100 * ++done / total), ds.c_str(),
                                         (long long)seed, m.c_str(),
                                         (long long)(1ll << rounds), secs);
          }
        }
    }
  }
  if (!quiet)
    llvm::errs() << "\n";

  // Table: one block per dataset, methods as rows, ratios as columns.
  std::string md;
  llvm::raw_string_ostream mdOs(md);
  for (const auto &ds : datasetList) {
    llvm::outs() << "\n" << ds << " (N=" << (kvPrefix.empty() ? tokens.getValue()
                                                    : realKV.key.shape[2])
                 << ", seeds=" << seeds << "): mean relative error +- std\n";
    llvm::outs() << llvm::format("%-16s", "method");
    mdOs << "\n**" << ds << "**\n\n| method |";
    for (int64_t r : roundsList) {
      llvm::outs() << llvm::format("%18s", ("x" + std::to_string(1ll << r)).c_str());
      mdOs << " x" << (1ll << r) << " |";
    }
    llvm::outs() << "\n";
    mdOs << "\n|---|" ;
    for (size_t i = 0; i < roundsList.size(); ++i)
      mdOs << "---|";
    mdOs << "\n";
    // The memory every method keeps at that ratio: sink + middle / 2^T +
    // recent (+ the new tokens held out), against the N tokens.
    const int64_t n = kvPrefix.empty() ? tokens.getValue() : realKV.key.shape[2];
    const int64_t fresh = protocol == "heldout" ? realKV.query.shape[2] : 0;
    llvm::outs() << llvm::format("%-16s", "memory N/M");
    mdOs << "| memory N/M |";
    for (int64_t r : roundsList) {
      const int64_t m = CompressedLayout::compute(n - fresh, sinkFlag,
                                                  recentFlag, r)
                            .compressedLength() +
                        fresh;
      llvm::outs() << llvm::format("%18.2f", double(n) / double(m));
      mdOs << llvm::format(" %.2f |", double(n) / double(m));
    }
    llvm::outs() << "\n";
    mdOs << "\n";
    for (const auto &m : methodList) {
      llvm::outs() << llvm::format("%-16s", m.c_str());
      mdOs << "| " << m << " |";
      for (int64_t r : roundsList) {
        const Cell &c = cells[{ds, m, r}];
        llvm::outs() << llvm::format("  %7.4f +- %6.4f", c.mean(), c.stddev());
        mdOs << llvm::format(" %.4f ± %.4f |", c.mean(), c.stddev());
      }
      llvm::outs() << "\n";
      mdOs << "\n";
    }
  }
  if (!csvPath.empty()) {
    std::ofstream csv(csvPath);
    if (!csv)
      fail("cannot write " + csvPath);
    csv << "dataset,method,ratio,mean_rel_error,std_rel_error\n";
    for (const auto &[key, c] : cells)
      csv << std::get<0>(key) << "," << std::get<1>(key) << ","
          << (1ll << std::get<2>(key)) << "," << c.mean() << "," << c.stddev()
          << "\n";
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
