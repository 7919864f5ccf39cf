//===- CompressParamsC.h - C API params <=> CompressParams --------*- C++ -*-===//
//
// The C struct `balancekv_compress_params` names its fields as the parameter
// table of CompressParams.h does, so both directions are generated from the
// table: a new parameter needs no code here.
//
//===----------------------------------------------------------------------===//
#ifndef BALANCEKV_RUNTIME_COMPRESSPARAMSC_H
#define BALANCEKV_RUNTIME_COMPRESSPARAMSC_H

#include "balancekv/Runtime/BalanceKVRuntime.h"
#include "balancekv/Support/CompressParams.h"

#include <cstring>

namespace balancekv {

/// The value of a C enum argument as an int: a C caller may pass any int,
/// and loading an out-of-range value through the C++ enum type is undefined.
template <typename Enum> int enumValue(const Enum &e) {
  static_assert(sizeof(Enum) == sizeof(int), "C enums are int-sized");
  int v;
  std::memcpy(&v, &e, sizeof v);
  return v;
}

/// The parameters of a C struct (its `method` aside).
inline CompressParams fromC(const balancekv_compress_params &p) {
  CompressParams c;
#define BALANCEKV_FROM_C(type, member, name, dflt, doc) c.member = p.name;
  BALANCEKV_COMPRESS_PARAMS(BALANCEKV_FROM_C)
#undef BALANCEKV_FROM_C
  return c;
}

/// A C struct holding `c` and `method`.
inline balancekv_compress_params toC(const CompressParams &c,
                                     balancekv_method method) {
  balancekv_compress_params p{};
  p.method = method;
#define BALANCEKV_TO_C(type, member, name, dflt, doc) p.name = c.member;
  BALANCEKV_COMPRESS_PARAMS(BALANCEKV_TO_C)
#undef BALANCEKV_TO_C
  return p;
}

} // namespace balancekv

#endif // BALANCEKV_RUNTIME_COMPRESSPARAMSC_H
