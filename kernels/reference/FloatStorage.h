//===- FloatStorage.h - f16 / bf16 / f32 storage conversions ----*- C++ -*-===//
#ifndef BALANCEKV_KERNELS_REFERENCE_FLOATSTORAGE_H
#define BALANCEKV_KERNELS_REFERENCE_FLOATSTORAGE_H

#include <cstdint>
#include <cstring>

namespace balancekv {

enum class DType { F16, BF16, F32 };

inline int64_t dtypeSize(DType t) { return t == DType::F32 ? 4 : 2; }
const char *dtypeName(DType t);

inline float bitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t floatToBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float bf16ToFloat(uint16_t h) { return bitsToFloat(uint32_t(h) << 16); }

/// Round to nearest even; NaN stays NaN.
inline uint16_t floatToBf16(float f) {
  uint32_t u = floatToBits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

float f16ToFloat(uint16_t h);
uint16_t floatToF16(float f);

/// Element `i` of a buffer of `dtype`, widened exactly to double.
inline double loadElement(const void *data, DType dtype, int64_t i) {
  switch (dtype) {
  case DType::F32:
    return static_cast<const float *>(data)[i];
  case DType::F16:
    return f16ToFloat(static_cast<const uint16_t *>(data)[i]);
  case DType::BF16:
    return bf16ToFloat(static_cast<const uint16_t *>(data)[i]);
  }
  return 0.0;
}

inline void storeElement(void *data, DType dtype, int64_t i, float v) {
  switch (dtype) {
  case DType::F32:
    static_cast<float *>(data)[i] = v;
    return;
  case DType::F16:
    static_cast<uint16_t *>(data)[i] = floatToF16(v);
    return;
  case DType::BF16:
    static_cast<uint16_t *>(data)[i] = floatToBf16(v);
    return;
  }
}

} // namespace balancekv

#endif // BALANCEKV_KERNELS_REFERENCE_FLOATSTORAGE_H
