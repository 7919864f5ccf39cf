//===- Philox.h - Philox-4x32-10 counter-based RNG --------------*- C++ -*-===//
//
// The spec's random numbers: word 0 of Philox-4x32-10 (Salmon et al., SC'11)
// with a 4-word counter and 2-word key, mapped to [0, 1) as (x >> 8) * 2^-24.
// Header-only and host/device-callable so that every backend shares it.
//
//===----------------------------------------------------------------------===//
#ifndef BALANCEKV_KERNELS_REFERENCE_PHILOX_H
#define BALANCEKV_KERNELS_REFERENCE_PHILOX_H

#include <cstdint>

#if defined(__CUDACC__)
#define BALANCEKV_HD __host__ __device__ inline
#else
#define BALANCEKV_HD inline
#endif

namespace balancekv {

struct Philox4x32 {
  uint32_t v[4];
};

BALANCEKV_HD Philox4x32 philox4x32_10(Philox4x32 ctr, uint32_t key0,
                                      uint32_t key1) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = uint64_t(kMul0) * ctr.v[0];
    uint64_t p1 = uint64_t(kMul1) * ctr.v[2];
    uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
    uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
    ctr = {{hi1 ^ ctr.v[1] ^ key0, lo1, hi0 ^ ctr.v[3] ^ key1, lo0}};
    key0 += kWeyl0;
    key1 += kWeyl1;
  }
  return ctr;
}

/// u in [0, 1) with 24 random bits: exactly representable in float.
BALANCEKV_HD float philoxToUnit(uint32_t x) {
  return float(x >> 8) * (1.0f / 16777216.0f);
}

/// Word 0 for counter [i, block, round, (batch << 16) | kvHead] and key
/// [seed & 0xffffffff, seed >> 32]: the spec's one counter layout.
BALANCEKV_HD uint32_t specPhiloxBits(uint64_t seed, uint32_t i, uint32_t block,
                                     uint32_t round, uint32_t batch,
                                     uint32_t kvHead) {
  Philox4x32 c{{i, block, round, (batch << 16) | kvHead}};
  return philox4x32_10(c, uint32_t(seed), uint32_t(seed >> 32)).v[0];
}

/// The walk's u_i for token i of `block` in `round` (spec section 3).
BALANCEKV_HD float walkUniform(uint64_t seed, uint32_t i, uint32_t block,
                               uint32_t round, uint32_t batch,
                               uint32_t kvHead) {
  return philoxToUnit(specPhiloxBits(seed, i, block, round, batch, kvHead));
}

/// The uniform baseline's raw draw for middle token i (spec section 4).
BALANCEKV_HD uint32_t uniformBaselineBits(uint64_t seed, uint32_t i,
                                          uint32_t batch, uint32_t kvHead) {
  return specPhiloxBits(seed, i, 0, 0xffffffffu, batch, kvHead);
}

/// ... as u in [0, 1).
BALANCEKV_HD float uniformBaselineDraw(uint64_t seed, uint32_t i,
                                       uint32_t batch, uint32_t kvHead) {
  return philoxToUnit(uniformBaselineBits(seed, i, batch, kvHead));
}

} // namespace balancekv

#endif // BALANCEKV_KERNELS_REFERENCE_PHILOX_H
