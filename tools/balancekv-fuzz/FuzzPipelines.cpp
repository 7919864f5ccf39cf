//===- FuzzPipelines.cpp - run every balancekv pipeline on one input ------===//

#include "FuzzPipelines.h"

#include "balancekv/InitAll.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassInstrumentation.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>

using namespace mlir;

namespace balancekv::fuzz {
namespace {

/// Each of balancekv's passes and pipelines as a user runs them.
constexpr const char *kPipelines[] = {
    "builtin.module(balancekv-raise-attention)",
    "builtin.module(balancekv-compress-kv-cache)",
    ("builtin.module(balancekv-compress-kv-cache{allow-dynamic=true "
     "min-kv-len=0 max-query-len=0 method=snapkv})"),
    "builtin.module(balancekv-lower-to-loops)",
    "builtin.module(balancekv-cpu-pipeline)",
    "builtin.module(balancekv-lower-to-runtime-calls)",
    "builtin.module(balancekv-runtime-calls-pipeline)",
    "builtin.module(balancekv-lower-to-gpu)",
    "builtin.module(balancekv-gpu-pipeline{format=isa})",
};

const DialectRegistry &registry() {
  return balancekv::upstreamAndBalanceKVRegistry();
}

[[noreturn]] void finding(const std::string &what, StringRef source) {
  llvm::errs() << "balancekv-fuzz: FINDING: " << what << "\n--- input ---\n"
               << source << "\n-------------\n";
  std::abort();
}

/// Verifies the IR after every pass that succeeded, before the next pass
/// sees it (the pass manager's own verifier would turn invalid IR into an
/// ordinary failure).
struct VerifyAfterEachPass : PassInstrumentation {
  VerifyAfterEachPass(StringRef pipeline, StringRef source,
                      const std::string &errors)
      : pipeline(pipeline), source(source), errors(errors) {}
  void runAfterPass(Pass *pass, Operation *op) override {
    if (failed(verify(op)))
      finding(pipeline.str() + ": pass '" + pass->getArgument().str() +
                  "' succeeded but left IR that does not verify:\n" + errors,
              source);
  }
  StringRef pipeline, source;
  const std::string &errors;
};

} // namespace

void fuzzPipelines(StringRef source, const FuzzOptions &options) {
  // A context per input: attributes and types made by one input do not pile
  // up over millions of runs.
  MLIRContext ctx(registry(), MLIRContext::Threading::DISABLED);
  std::string errors;
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &d) {
    if (d.getSeverity() == DiagnosticSeverity::Error)
      errors += d.str() + "\n";
    return success();
  });
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(source, &ctx);
  if (!module || failed(verify(*module))) {
    if (getenv("BALANCEKV_FUZZ_DEBUG"))
      llvm::errs() << "not parsed or not valid:\n" << errors;
    return;
  }
  for (const char *pipeline : kPipelines) {
    OwningOpRef<ModuleOp> copy = module->clone();
    PassManager pm(&ctx);
    pm.enableVerifier(false);
    if (failed(parsePassPipeline(pipeline, pm)))
      finding(std::string("cannot build ") + pipeline, source);
    pm.addInstrumentation(
        std::make_unique<VerifyAfterEachPass>(pipeline, source, errors));
    errors.clear();
    const bool ok = succeeded(pm.run(*copy));
    if (getenv("BALANCEKV_FUZZ_DEBUG"))
      llvm::errs() << pipeline << ": " << (ok ? "ok" : "failed") << "\n"
                   << errors;
    if (!ok && errors.empty())
      finding(std::string(pipeline) + " failed without a diagnostic", source);
    if (!ok && options.failuresMustBeOurs &&
        StringRef(errors).find("balancekv") == StringRef::npos)
      finding(std::string(pipeline) +
                  " failed with a diagnostic that is not ours:\n" + errors,
              source);
  }
}

} // namespace balancekv::fuzz
