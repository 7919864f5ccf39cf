//===- FloatStorage.cpp - IEEE half conversions ---------------------------===//

#include "kernels/reference/FloatStorage.h"

#include <cmath>

namespace balancekv {

const char *dtypeName(DType t) {
  switch (t) {
  case DType::F16:
    return "f16";
  case DType::BF16:
    return "bf16";
  case DType::F32:
    return "f32";
  }
  return "?";
}

float f16ToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0) { // zero or subnormal: man * 2^-24
    float v = std::ldexp(float(man), -24);
    return sign ? -v : v;
  }
  if (exp == 31)
    return bitsToFloat(sign | 0x7f800000u | (man << 13));
  return bitsToFloat(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t floatToF16(float f) {
  uint32_t u = floatToBits(f);
  uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  uint32_t absu = u & 0x7fffffffu;
  if (absu > 0x7f800000u)
    return sign | 0x7e00u; // NaN
  if (absu >= 0x477ff000u)  // rounds to >= 65520: infinity
    return sign | 0x7c00u;
  float a = bitsToFloat(absu);
  if (absu < 0x38800000u) { // below 2^-14: subnormal half, step 2^-24
    float q = std::nearbyint(a * 16777216.0f); // round half to even
    return sign | uint16_t(q);
  }
  // Normal: keep 10 mantissa bits, round to nearest even.
  uint32_t rounded = absu + 0xfffu + ((absu >> 13) & 1u);
  return sign | uint16_t(((rounded >> 13) - (112u << 10)) & 0x7fffu);
}

} // namespace balancekv
