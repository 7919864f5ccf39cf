//===- CompressKVCache.cpp - attention => compress + weighted attention --===//
//
// attention(q, k, v) => weighted_attention(q, compress(k, v))
//
//===----------------------------------------------------------------------===//

#include "balancekv/Dialect/BalanceKV/Transforms/Passes.h"
#include "balancekv/Dialect/BalanceKV/Transforms/Transforms.h"
#include "balancekv/Support/CompressedLayout.h"
#include "balancekv/Support/OptionDefaults.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace balancekv {
#define GEN_PASS_DEF_BALANCEKVCOMPRESSKVCACHEPASS
#include "balancekv/Dialect/BalanceKV/Transforms/Passes.h.inc"
} // namespace balancekv

using namespace mlir;
using namespace balancekv;

namespace {

struct CompressAttention : OpRewritePattern<AttentionOp> {
  CompressAttention(MLIRContext *ctx, CompressKVCacheOptions cfg)
      : OpRewritePattern(ctx), cfg(cfg) {}

  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &rewriter) const override {
    auto qType = cast<RankedTensorType>(op.getQuery().getType());
    auto kType = cast<RankedTensorType>(op.getKey().getType());
    const int64_t n = kType.getDimSize(2), l = qType.getDimSize(2);
    if (op.getKvLen())
      return rewriter.notifyMatchFailure(op, "padded caches (kv_len) stay");
    if (ShapedType::isDynamic(n) ? !cfg.allowDynamic : n < cfg.minKvLen)
      return rewriter.notifyMatchFailure(op, "cache too short or dynamic");
    if (cfg.maxQueryLen > 0 &&
        (ShapedType::isDynamic(l) || l > cfg.maxQueryLen))
      return rewriter.notifyMatchFailure(op, "not decode-shaped");
    // Adaptive pads each head after its kept tokens, so query i would not
    // sit at the padded layout's position M - L + i: only one query.
    if (op.getCausal() && l != 1 && cfg.method == CompressionMethod::Adaptive)
      return rewriter.notifyMatchFailure(
          op, "adaptive with causal multi-query (needs per-head kv_len)");
    if (op.getCausal() && l != 1) {
      // Query i sits at N - L + i: it must not see the compressed middle
      // differently, so all queries must sit inside the recent window.
      if (ShapedType::isDynamic(l))
        return rewriter.notifyMatchFailure(op, "causal with dynamic L");
      int64_t window =
          ShapedType::isDynamic(n)
              ? cfg.params.recent
              : CompressedLayout::compute(n, cfg.params.sink, cfg.params.recent,
                                          cfg.params.rounds)
                    .recent;
      if (l - 1 > window)
        return rewriter.notifyMatchFailure(op, "queries outside the window");
    }

    Value observation;
    // The decode's own queries are the observation (the last positions).
    if (cfg.method == CompressionMethod::SnapKV ||
        cfg.method == CompressionMethod::Adaptive)
      observation = op.getQuery();
    CompressParams params = cfg.params;
    // The attention's own scale unless the options give one.
    if (params.scale == 0 && op.getScaleAttr())
      params.scale = op.getScaleAttr().getValueAsDouble();
    auto compress =
        CompressOp::create(rewriter, op.getLoc(), op.getKey(), op.getValue(),
                           observation, cfg.method, params);
    rewriter.replaceOpWithNewOp<WeightedAttentionOp>(
        op, op.getResult().getType(), op.getQuery(),
        compress.getCompressedKey(), compress.getCompressedValue(),
        compress.getLogWeights(), /*kv_len=*/Value(), op.getScaleAttr(),
        op.getCausalAttr());
    return success();
  }

  CompressKVCacheOptions cfg;
};

struct BalanceKVCompressKVCachePass
    : balancekv::impl::BalanceKVCompressKVCachePassBase<
          BalanceKVCompressKVCachePass> {
  BalanceKVCompressKVCachePass() { showDefaults(); }
  BalanceKVCompressKVCachePass(
      const balancekv::BalanceKVCompressKVCachePassOptions &options)
      : BalanceKVCompressKVCachePassBase(options) {
    showDefaults();
  }

  /// `--help` says each option's default (set from CompressParams.h and
  /// CompressKVCacheOptions).
  void showDefaults() {
#define BALANCEKV_SHOW_DEFAULT(type, member, name, dflt, doc)                  \
  showDefault(member);
    BALANCEKV_COMPRESS_PARAMS(BALANCEKV_SHOW_DEFAULT)
#undef BALANCEKV_SHOW_DEFAULT
    showDefault(method);
    showDefault(minKvLen);
    showDefault(allowDynamic);
    showDefault(maxQueryLen);
  }

  void runOnOperation() override {
    std::optional<CompressionMethod> m = symbolizeCompressionMethod(method);
    if (!m) {
      getOperation()->emitError()
          << "balancekv-compress-kv-cache: unknown method '" << method
          << "' (expected balance, uniform, streaming, snapkv, knorm or "
             "adaptive)";
      return signalPassFailure();
    }
    // Reject what the op verifier would reject, once, before any rewrite.
    CompressKVCacheOptions cfg;
    cfg.method = *m;
    // Every parameter of the table has a pass option of the same C++ name
    // (Passes.td): a parameter without one does not compile.
#define BALANCEKV_PARAM_FROM_OPTION(type, member, name, dflt, doc)             \
  cfg.params.member = type(member);
    BALANCEKV_COMPRESS_PARAMS(BALANCEKV_PARAM_FROM_OPTION)
#undef BALANCEKV_PARAM_FROM_OPTION
    cfg.minKvLen = minKvLen;
    cfg.maxQueryLen = maxQueryLen;
    cfg.allowDynamic = allowDynamic;
    std::string bad = cfg.params.validate();
    if (bad.empty() && (maxQueryLen < 0 || minKvLen < 0))
      bad = "max-query-len and min-kv-len must be >= 0";
    if (!bad.empty()) {
      getOperation()->emitError() << "balancekv-compress-kv-cache: " << bad;
      return signalPassFailure();
    }
    RewritePatternSet patterns(&getContext());
    populateCompressKVCachePatterns(patterns, cfg);
    // One rewrite per op; the pattern's own ops are never matched again.
    GreedyRewriteConfig config;
    config.setRegionSimplificationLevel(GreedySimplifyRegionLevel::Disabled)
        .enableFolding(false);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns),
                                     config)))
      return signalPassFailure();
  }
};

} // namespace

void balancekv::populateCompressKVCachePatterns(
    RewritePatternSet &patterns, const CompressKVCacheOptions &options) {
  patterns.add<CompressAttention>(patterns.getContext(), options);
}
