//===- balancekv-fuzz-ops.cpp - libFuzzer: well-typed balancekv programs --===//
//
// Mutated text rarely gets past the parser into the deep pipelines, so this
// target reads its bytes as choices: a function of balancekv ops with shapes
// from edge values (0, 1, odd, block-sized, 257, dynamic), element types, GQA
// groups, causal and kv_len, and compression attributes up to and past their
// limits. Every pipeline then runs on it with the stricter oracle: a failure
// must come with a diagnostic of ours (FuzzPipelines.h).
//
//===----------------------------------------------------------------------===//

#include "FuzzPipelines.h"

#include "balancekv/Support/CompressedLayout.h"

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace {

constexpr int64_t kDynamic = -1;

struct Program {
  std::ostringstream args, body, results, returns;
  int next = 0;
  bool firstArg = true, firstResult = true;

  std::string arg(const std::string &type) {
    std::string name = "%a" + std::to_string(next++);
    args << (firstArg ? "" : ", ") << name << ": " << type;
    firstArg = false;
    return name;
  }
  void result(const std::string &value, const std::string &type) {
    returns << (firstResult ? "" : ", ") << value;
    results << (firstResult ? "" : ", ") << type;
    firstResult = false;
  }
  std::string text() const {
    std::ostringstream s;
    s << "func.func @f(" << args.str() << ") -> (" << results.str() << ") {\n"
      << body.str() << "  return " << returns.str() << " : " << results.str()
      << "\n}\n";
    if (firstResult) // nothing to return
      return "func.func @f(" + args.str() + ") {\n" + body.str() +
             "  return\n}\n";
    return s.str();
  }
};

std::string tensorType(const std::vector<int64_t> &shape,
                       const std::string &elem) {
  std::string s = "tensor<";
  for (int64_t d : shape)
    s += (d == kDynamic ? std::string("?") : std::to_string(d)) + "x";
  return s + elem + ">";
}

int64_t pickDim(FuzzedDataProvider &fdp, const std::vector<int64_t> &values) {
  if (fdp.ConsumeIntegralInRange<int>(0, 7) == 0)
    return kDynamic;
  return values[fdp.ConsumeIntegralInRange<size_t>(0, values.size() - 1)];
}

template <typename T>
T pick(FuzzedDataProvider &fdp, const std::vector<T> &values) {
  return values[fdp.ConsumeIntegralInRange<size_t>(0, values.size() - 1)];
}

std::string build(FuzzedDataProvider &fdp) {
  Program p;
  const std::string elem = pick<std::string>(fdp, {"f16", "bf16", "f32"});
  const int64_t batch = pickDim(fdp, {0, 1, 2, 3});
  const int64_t kvHeads = pickDim(fdp, {1, 2, 3, 8});
  const int64_t group = pick<int64_t>(fdp, {1, 2, 3, 4, 0});
  const int64_t qHeads = kvHeads == kDynamic
                             ? pickDim(fdp, {1, 2, 4, 6})
                             : (group == 0 ? 5 : kvHeads * group); // 5: bad GQA
  const int64_t queries = pickDim(fdp, {0, 1, 2, 3, 16, 17});
  const int64_t n = pickDim(fdp, {0, 1, 2, 7, 31, 32, 33, 64, 65, 100, 127, 128,
                                  129, 200, 300, 1000});
  const int64_t d = pickDim(fdp, {0, 1, 3, 8, 16, 64, 128, 256, 257});
  const int64_t dv = pickDim(fdp, {0, 1, 8, 16, 32, 64, 128, 256, 257});
  const bool causal = fdp.ConsumeBool();
  const bool kvLen = fdp.ConsumeIntegralInRange<int>(0, 3) == 0;
  std::string scale;
  if (d == kDynamic || fdp.ConsumeBool())
    scale = pick<std::string>(
        fdp, {"0.125", "1.0e-30", "1.0e+30", "3.0e+38", "0.0", "-1.0"});

  auto attrs = [&](std::vector<std::string> list) {
    std::string s;
    for (const std::string &a : list)
      if (!a.empty())
        s += (s.empty() ? "" : ", ") + a;
    return s.empty() ? std::string() : " {" + s + "}";
  };
  const std::string scaleAttr =
      scale.empty() ? "" : "scale = " + scale + " : f32";

  const std::string qT = tensorType({batch, qHeads, queries, d}, elem);
  const std::string kT = tensorType({batch, kvHeads, n, d}, elem);
  const std::string vT = tensorType({batch, kvHeads, n, dv}, elem);
  const std::string oT = tensorType({batch, qHeads, queries, dv}, elem);
  const std::string q = p.arg(qT), k = p.arg(kT), v = p.arg(vT);
  std::string lenClause;
  if (kvLen) {
    const std::string lenElem = pick<std::string>(fdp, {"i32", "i64", "index"});
    const std::string lenT = tensorType({batch}, lenElem);
    lenClause = " kv_len(" + p.arg(lenT) + " : " + lenT + ")";
  }
  const std::string causalKw = causal ? " causal" : "";

  switch (fdp.ConsumeIntegralInRange<int>(0, 2)) {
  case 0: // attention, as a front end hands it over
    p.body << "  %o = balancekv.attention " << q << ", " << k << ", " << v
           << lenClause << causalKw << attrs({scaleAttr}) << " : " << qT << ", "
           << kT << ", " << vT << " -> " << oT << "\n";
    p.result("%o", oT);
    break;
  case 1: { // weighted_attention over a given compressed cache
    const std::string lwT = tensorType({batch, kvHeads, n}, "f32");
    const std::string lw = p.arg(lwT);
    p.body << "  %o = balancekv.weighted_attention " << q << ", " << k << ", "
           << v << ", " << lw << lenClause << causalKw << attrs({scaleAttr})
           << " : " << qT << ", " << kT << ", " << vT << ", " << lwT << " -> "
           << oT << "\n";
    p.result("%o", oT);
    break;
  }
  default: { // compress, then attend over the compressed cache
    const std::string method = pick<std::string>(
        fdp, {"balance", "uniform", "streaming", "snapkv", "knorm"});
    const int64_t rounds = pick<int64_t>(fdp, {0, 1, 2, 3, 4, 7, 16, 17, -1});
    const int64_t block = pick<int64_t>(fdp, {2, 4, 8, 64, 128, 130, 256, 7});
    const int64_t sink =
        pick<int64_t>(fdp, {0, 1, 4, 32, 300, int64_t(1) << 40});
    const int64_t recent = pick<int64_t>(fdp, {0, 1, 3, 32, 500, -2});
    const std::string gamma =
        pick<std::string>(fdp, {"4.0", "0.0", "1.0e+300", "1.0e-300"});
    const std::string temp =
        pick<std::string>(fdp, {"1.0", "1.0e-30", "1.0e+30"});
    const std::string c0 = pick<std::string>(fdp, {"0.025", "0.0", "1.0e+30"});
    const std::string seed =
        pick<std::string>(fdp, {"0", "7", "9223372036854775807",
                                "18446744073709551615", "-1"});
    std::string observe;
    if (method == "snapkv")
      observe = " observe(" + q + " : " + qT + ")";
    p.body << "  %ck, %cv, %lw = balancekv.compress " << k << ", " << v
           << observe << " <method = " << method
           << ", rounds = " << rounds << ", block_size = " << block
           << ", sink = " << sink << ", recent = " << recent
           << ", gamma = " << gamma << ", temperature = " << temp
           << ", c0 = " << c0 << ", seed = " << seed
           << (scale.empty() ? "" : ", scale = " + scale) << "> : " << kT
           << ", " << vT << "\n";
    int64_t m = kDynamic;
    if (n != kDynamic && rounds >= 0 && sink >= 0 && recent >= 0)
      m = balancekv::CompressedLayout::compute(n, sink, recent, rounds)
              .compressedLength();
    const std::string ckT = tensorType({batch, kvHeads, m, d}, elem),
                      cvT = tensorType({batch, kvHeads, m, dv}, elem),
                      lwT = tensorType({batch, kvHeads, m}, "f32");
    if (fdp.ConsumeBool()) {
      p.body << "  %o = balancekv.weighted_attention " << q << ", %ck, %cv, %lw"
             << causalKw << attrs({scaleAttr}) << " : " << qT << ", " << ckT
             << ", " << cvT << ", " << lwT << " -> " << oT << "\n";
      p.result("%o", oT);
    } else {
      p.result("%ck", ckT);
      p.result("%cv", cvT);
      p.result("%lw", lwT);
    }
    break;
  }
  }
  return p.text();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  const std::string program = build(fdp);
  balancekv::fuzz::FuzzOptions options;
  options.failuresMustBeOurs = true;
  balancekv::fuzz::fuzzPipelines(program, options);
  return 0;
}
