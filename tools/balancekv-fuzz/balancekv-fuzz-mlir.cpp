//===- balancekv-fuzz-mlir.cpp - libFuzzer: bytes as MLIR text -----------===//
//
// Mutation fuzzing seeded from test/ (scripts/fuzz.sh splits the lit files
// at `// -----` into a corpus): every input that parses and verifies goes
// through every balancekv pipeline (FuzzPipelines.h says what is a finding).
//
//===----------------------------------------------------------------------===//

#include "FuzzPipelines.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  balancekv::fuzz::fuzzPipelines(
      llvm::StringRef(reinterpret_cast<const char *>(data), size), {});
  return 0;
}
