// Turning Philox words into distributions, shared by every CPU kernel that draws (random.cc,
// diffusion.cc), so fused noise is operation-for-operation the same as kiln.rand / kiln.randn.
#pragma once
#include <cmath>
#include <cstdint>

#include "vmath.h"

namespace kiln {
namespace cpu {

// u(x) = (x >> 8) * 2^-24 in [0, 1); the open-at-0 variant ((x >> 8) + 1) * 2^-24 is in (0, 1].
template <class T>
inline T unit(uint32_t x) { return static_cast<T>(x >> 8) * static_cast<T>(5.9604644775390625e-8); }
template <class T>
inline T unit_open0(uint32_t x) { return static_cast<T>((x >> 8) + 1u) * static_cast<T>(5.9604644775390625e-8); }

// Box-Muller on one pair of uniforms: r = sqrt(-2 log u1), (r cos 2 pi u2, r sin 2 pi u2).
inline void box_muller(float u1, float u2, float* z0, float* z1) {
  float r = std::sqrt(-2.0f * vmath::log_f(u1));
  float s, c;
  vmath::sincos_2pi_f(u2, &s, &c);
  *z0 = r * c;
  *z1 = r * s;
}
inline void box_muller(double u1, double u2, double* z0, double* z1) {
  const double kTwoPi = 6.283185307179586476925;
  double r = std::sqrt(-2.0 * std::log(u1));
  *z0 = r * std::cos(kTwoPi * u2);
  *z1 = r * std::sin(kTwoPi * u2);
}

}  // namespace cpu
}  // namespace kiln
