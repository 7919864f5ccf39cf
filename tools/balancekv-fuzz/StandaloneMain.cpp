//===- StandaloneMain.cpp - run a fuzz target on files, without libFuzzer -===//
//
// Builds without -fsanitize=fuzzer link the fuzz targets with this main, so
// every build compiles the harnesses and lit replays the committed corpus of
// findings (test/Fuzz) through them.
//
//===----------------------------------------------------------------------===//

#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv) {
  for (int i = 1; i < argc; ++i) {
    auto buffer = llvm::MemoryBuffer::getFile(argv[i]);
    if (!buffer) {
      llvm::errs() << argv[i] << ": " << buffer.getError().message() << "\n";
      return 1;
    }
    LLVMFuzzerTestOneInput(
        reinterpret_cast<const uint8_t *>((*buffer)->getBufferStart()),
        (*buffer)->getBufferSize());
  }
  llvm::outs() << "ran " << (argc - 1) << " inputs\n";
  return 0;
}
