//===- Opt.cpp - balancekv's passes in-process, from C --------------------===//

#include "balancekv/CAPI/Opt.h"
#include "balancekv/InitAll.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>
#include <cstring>

using namespace mlir;

namespace {

const DialectRegistry &registry() {
  return balancekv::upstreamAndBalanceKVRegistry();
}

char *copy(const std::string &s) {
  char *p = static_cast<char *>(std::malloc(s.size() + 1));
  if (p)
    std::memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

} // namespace

extern "C" __attribute__((visibility("default"))) int balancekv_opt(const char *ir, const char *pipeline, int print_flags,
                             char **out) {
  if (!out)
    return 2;
  *out = nullptr;
  if (!ir || !pipeline) {
    *out = copy("balancekv_opt: ir and pipeline must not be null");
    return 2;
  }
  MLIRContext ctx(registry(), MLIRContext::Threading::DISABLED);
  std::string diagnostics;
  llvm::raw_string_ostream diag(diagnostics);
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &d) {
    diag << d.getLocation() << ": "
         << (d.getSeverity() == DiagnosticSeverity::Error     ? "error"
             : d.getSeverity() == DiagnosticSeverity::Warning ? "warning"
             : d.getSeverity() == DiagnosticSeverity::Remark  ? "remark"
                                                              : "note")
         << ": " << d << "\n";
    return success();
  });
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(ir, &ctx);
  if (!module) {
    *out = copy(diagnostics.empty() ? "balancekv_opt: cannot parse the IR"
                                    : diagnostics);
    return 1;
  }
  // The pipeline names its anchor ("builtin.module(...)"), as
  // --pass-pipeline does.
  std::string pipelineError;
  llvm::raw_string_ostream pipelineErrors(pipelineError);
  FailureOr<OpPassManager> parsed = parsePassPipeline(pipeline, pipelineErrors);
  if (failed(parsed)) {
    *out = copy("balancekv_opt: bad pipeline: " + pipelineError);
    return 1;
  }
  PassManager pm(&ctx, parsed->getOpAnchorName());
  static_cast<OpPassManager &>(pm) = *parsed;
  if (failed(pm.run(*module))) {
    *out = copy(diagnostics.empty() ? "balancekv_opt: a pass failed"
                                    : diagnostics);
    return 1;
  }
  std::string text;
  llvm::raw_string_ostream os(text);
  OpPrintingFlags flags;
  if (print_flags & BALANCEKV_OPT_GENERIC)
    flags.printGenericOpForm();
  if (print_flags & BALANCEKV_OPT_DEBUGINFO)
    flags.enableDebugInfo();
  module->print(os, flags);
  // Remarks and warnings of a successful run follow the IR as comments.
  if (!diagnostics.empty()) {
    std::string commented;
    for (llvm::StringRef line : llvm::split(diagnostics, '\n'))
      if (!line.empty())
        commented += "// " + line.str() + "\n";
    text += commented;
  }
  *out = copy(text);
  return 0;
}

extern "C" __attribute__((visibility("default"))) void balancekv_free(char *p) { std::free(p); }
