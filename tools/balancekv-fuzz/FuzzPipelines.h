//===- FuzzPipelines.h - run every balancekv pipeline on one input -*- C++
//-*-===//
//
// The oracle both fuzz targets share. An input is fine when it does not
// parse or verify (the parser and verifier said why), or when each pipeline
// either succeeds with IR that verifies after every pass or fails with a
// diagnostic. A crash, a hang, a sanitizer report, or a pass that succeeds
// and leaves invalid IR is a finding (the harness aborts).
//
//===----------------------------------------------------------------------===//
#ifndef BALANCEKV_TOOLS_FUZZ_FUZZPIPELINES_H
#define BALANCEKV_TOOLS_FUZZ_FUZZPIPELINES_H

#include "llvm/ADT/StringRef.h"

namespace balancekv::fuzz {

struct FuzzOptions {
  /// Also a finding: a pipeline that fails without any diagnostic naming
  /// balancekv (an upstream pass rejecting what our lowering produced). Only
  /// sound for inputs made of func and balancekv ops alone (the structured
  /// generator), not for mutated test files full of upstream ops.
  bool failuresMustBeOurs = false;
};

/// Parses `source` as MLIR with balancekv's dialects and upstream's, and runs
/// each pipeline of `pipelines()` on its own copy.
void fuzzPipelines(llvm::StringRef source, const FuzzOptions &options);

} // namespace balancekv::fuzz

#endif // BALANCEKV_TOOLS_FUZZ_FUZZPIPELINES_H
