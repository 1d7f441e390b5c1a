// float16 (IEEE binary16) and bfloat16 conversions as plain integer arithmetic, compiled for the
// CPU and (under nvcc) the GPU alike, so both devices produce the same bits. Narrowing rounds to
// nearest, ties to even; overflow gives infinity; float16 keeps subnormals; a NaN becomes the
// canonical quiet NaN of the format with its sign kept (0x7fc0 / 0x7e00). float64 narrows through
// a round-to-odd float32, which is exact double -> half rounding (no double rounding).
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define KILN_HD __host__ __device__ __forceinline__
#else
#define KILN_HD inline __attribute__((always_inline))
#endif

namespace kiln {
namespace half {

KILN_HD uint32_t f32_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}
KILN_HD float f32_from_bits(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

KILN_HD uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>(((u >> 16) & 0x8000u) | 0x7fc0u);
  u += 0x7fffu + ((u >> 16) & 1u);  // carries into the exponent where it must (up to infinity)
  return static_cast<uint16_t>(u >> 16);
}

KILN_HD float bf16_to_f32(uint16_t h) { return f32_from_bits(static_cast<uint32_t>(h) << 16); }

KILN_HD uint16_t f32_to_f16(float f) {
  uint32_t u = f32_bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  u &= 0x7fffffffu;
  if (u > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN
  if (u >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520 (65504 + half an ulp, odd) and inf
  if (u < 0x38800000u) {                                                 // below 2^-14: subnormal or zero
    if (u <= 0x33000000u) return static_cast<uint16_t>(sign);            // <= 2^-25 (the tie goes to even 0)
    const uint32_t e = u >> 23;                                          // 102..112
    const uint32_t mant = (u & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - e;                                     // 14..24: value / 2^-24 = mant >> shift
    const uint32_t halfway = 1u << (shift - 1), rem = mant & ((1u << shift) - 1u);
    uint32_t m = mant >> shift;
    if (rem > halfway || (rem == halfway && (m & 1u))) ++m;              // may carry into the smallest normal
    return static_cast<uint16_t>(sign | m);
  }
  u += 0x0fffu + ((u >> 13) & 1u);
  return static_cast<uint16_t>(sign | ((u >> 13) - (112u << 10)));      // rebias 127 -> 15
}

KILN_HD float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0x1fu) return f32_from_bits(sign | 0x7f800000u | (m << 13) | (m ? 0x400000u : 0u));  // NaN comes back quiet
  if (e == 0) {
    const float v = static_cast<float>(m) * 5.9604644775390625e-8f;  // m * 2^-24, exact
    return f32_from_bits(sign | f32_bits(v));
  }
  return f32_from_bits(sign | ((e + 112u) << 23) | (m << 13));
}

// float64 -> float32 rounded to odd: truncate, then set the last bit when inexact. Narrowing that
// to a format with at least two fewer significand bits rounds exactly as narrowing the double would.
KILN_HD float f64_to_f32_odd(double d) {
  const float f = static_cast<float>(d);
  const double back = static_cast<double>(f);
  if (back == d || d != d) return f;
  uint32_t u = f32_bits(f);
  if ((back < 0 ? -back : back) > (d < 0 ? -d : d)) --u;  // rounded away from zero (even to inf): step back
  return f32_from_bits(u | 1u);
}

KILN_HD uint16_t f64_to_bf16(double d) { return f32_to_bf16(f64_to_f32_odd(d)); }
KILN_HD uint16_t f64_to_f16(double d) { return f32_to_f16(f64_to_f32_odd(d)); }

}  // namespace half
}  // namespace kiln
