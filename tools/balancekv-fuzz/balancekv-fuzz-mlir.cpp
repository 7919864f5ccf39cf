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
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // NUL-terminated, as every buffer a tool reads is (llvm::MemoryBuffer
  // guarantees it): MLIR's lexer looks at the byte past the end to find EOF,
  // which libFuzzer's exactly sized input does not have (ASan reported that
  // over-read for an input ending in an identifier).
  const std::string text(reinterpret_cast<const char *>(data), size);
  balancekv::fuzz::fuzzPipelines(text, {});
  return 0;
}
