//===- Datasets.h - inputs for balancekv-eval --------------------*- C++ -*-===//
#ifndef BALANCEKV_TOOLS_EVAL_DATASETS_H
#define BALANCEKV_TOOLS_EVAL_DATASETS_H

#include "kernels/reference/Reference.h"

#include <string>

namespace balancekv::eval {

/// One evaluation instance: queries `[1, Hq, Q, D]` attend non-causally to
/// the cache `[1, Hkv, N, D|Dv]`. Real caches also keep every query they
/// were given (`allQueries` `[1, Hq, T, D]`, the last T positions), for
/// protocols that observe other queries than the evaluated ones.
struct Instance {
  reference::Tensor query, key, value;
  reference::Tensor allQueries;
};

/// Rows [begin, end) of dim 2 of a `[1, H, S, D]` tensor.
reference::Tensor sliceRows(const reference::Tensor &t, int64_t begin,
                            int64_t end);
/// `a` then `b` along dim 2 (same dtype, batch 1, heads and dim).
reference::Tensor concatRows(const reference::Tensor &a,
                             const reference::Tensor &b);

/// i.i.d. standard normal queries, keys and values.
Instance makeGaussian(int64_t heads, int64_t tokens, int64_t dim,
                      int64_t queries, uint64_t seed);

/// The documented imitation of real attention heads (docs/quality.md):
/// partial rotary embeddings, key norms ~15 and value norms ~3, attention
/// sinks, topic segments with AR(1) drift, and heavy-hitter tokens. The
/// queries are the sequence's last `queries` positions.
Instance makeSyntheticLLM(int64_t heads, int64_t tokens, int64_t dim,
                          int64_t queries, uint64_t seed);

/// Reads PREFIX_{q,k,v}.npy (each `[heads, tokens, dim]`, f16 or f32, C
/// order; q may hold only the last positions); the queries are the last
/// `queries` rows of q. Returns an error message, empty on success.
std::string loadKV(const std::string &prefix, int64_t queries, Instance &out);

/// Reads one .npy array (f2/f4, little endian, C order).
std::string readNpy(const std::string &path, reference::Tensor &out);
/// Writes one f32 or f16 .npy array.
std::string writeNpy(const std::string &path, const reference::Tensor &t);

} // namespace balancekv::eval

#endif // BALANCEKV_TOOLS_EVAL_DATASETS_H
