//===- ReferenceC.cpp - C entry point to the reference for tools/benches -===//
//
// Lets a benchmark in any language (ctypes, cffi) check GPU results against
// the CPU reference without C++ bindings.
//
//===----------------------------------------------------------------------===//

#include "balancekv/Runtime/CompressParamsC.h"
#include "kernels/reference/Reference.h"

using namespace balancekv;
using namespace balancekv::reference;

extern "C" {

/// Kept positions [B, H, M] (int32) and log-weights [B, H, M] of the
/// reference for contiguous host key/value. Returns 0, or -1 with
/// balancekv_reference_error() set.
int balancekv_reference_compress(balancekv_dtype dtype, const void *key,
                                 const void *value, int64_t batch,
                                 int64_t heads, int64_t n, int64_t d,
                                 int64_t dv,
                                 const balancekv_compress_params *params,
                                 int32_t *outIndices, float *outLogWeights);
const char *balancekv_reference_error(void);
}

static thread_local std::string referenceError;

const char *balancekv_reference_error(void) { return referenceError.c_str(); }

int balancekv_reference_compress(balancekv_dtype dtype, const void *key,
                                 const void *value, int64_t batch,
                                 int64_t heads, int64_t n, int64_t d,
                                 int64_t dv,
                                 const balancekv_compress_params *params,
                                 int32_t *outIndices, float *outLogWeights) {
  if (!params || !key || !value || !outIndices || !outLogWeights) {
    referenceError = "null argument";
    return -1;
  }
  DType t = dtype == BALANCEKV_DTYPE_F16    ? DType::F16
            : dtype == BALANCEKV_DTYPE_BF16 ? DType::BF16
                                            : DType::F32;
  CompressOptions o;
  o.method = params->method == BALANCEKV_METHOD_UNIFORM ? Method::Uniform
                                                        : Method::Balance;
  static_cast<CompressParams &>(o) = fromC(*params);
  Selection sel;
  Status st = compress({key, t, {batch, heads, n, d}},
                       {value, t, {batch, heads, n, dv}}, o, sel);
  if (!st.ok) {
    referenceError = st.message;
    return -1;
  }
  for (size_t i = 0; i < sel.indices.size(); ++i) {
    outIndices[i] = int32_t(sel.indices[i]);
    outLogWeights[i] = sel.logWeights[i];
  }
  return 0;
}
