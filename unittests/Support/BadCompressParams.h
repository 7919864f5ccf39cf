//===- BadCompressParams.h - out-of-range parameters and their message ---===//
//
// One table of bad parameter sets, used by every layer's test (op verifier,
// pass options, reference, C API) to check that all of them reject the same
// values with the message of CompressParams::validate().
//
//===----------------------------------------------------------------------===//
#ifndef BALANCEKV_UNITTESTS_SUPPORT_BADCOMPRESSPARAMS_H
#define BALANCEKV_UNITTESTS_SUPPORT_BADCOMPRESSPARAMS_H

#include "balancekv/Support/CompressParams.h"

#include <limits>
#include <string>
#include <vector>

namespace balancekv::testing {

struct BadCompressParams {
  CompressParams params;
  std::string message;
};

inline std::vector<BadCompressParams> badCompressParams() {
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<BadCompressParams> cases;
  auto add = [&](auto set, std::string message) {
    CompressParams p;
    set(p);
    cases.push_back({p, std::move(message)});
  };
  add([](CompressParams &p) { p.rounds = 17; },
      "rounds must be in [0, 16], got 17");
  add([](CompressParams &p) { p.rounds = -1; },
      "rounds must be in [0, 16], got -1");
  add([](CompressParams &p) { p.blockSize = 7; },
      "block_size must be even and >= 2, got 7");
  add([](CompressParams &p) { p.blockSize = 0; },
      "block_size must be even and >= 2, got 0");
  add([](CompressParams &p) { p.sink = -1; }, "sink must be >= 0, got -1");
  add([](CompressParams &p) { p.recent = -3; }, "recent must be >= 0, got -3");
  add([](CompressParams &p) { p.gamma = -1; },
      "gamma must be finite and >= 0, got -1");
  add([=](CompressParams &p) { p.gamma = inf; },
      "gamma must be finite and >= 0, got inf");
  add([=](CompressParams &p) { p.gamma = nan; },
      "gamma must be finite and >= 0, got nan");
  add([](CompressParams &p) { p.temperature = 0; },
      "temperature must be finite and > 0, got 0");
  add([=](CompressParams &p) { p.temperature = inf; },
      "temperature must be finite and > 0, got inf");
  add([](CompressParams &p) { p.c0 = -0.5; },
      "c0 must be finite and >= 0, got -0.5");
  add([=](CompressParams &p) { p.c0 = inf; },
      "c0 must be finite and >= 0, got inf");
  add([](CompressParams &p) { p.budget = -1; },
      "budget must be >= 0 (0: the layout's length), got -1");
  return cases;
}

} // namespace balancekv::testing

#endif // BALANCEKV_UNITTESTS_SUPPORT_BADCOMPRESSPARAMS_H
