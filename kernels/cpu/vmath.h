// Vectorisable float math for CPU kernels: inline, branch-free (selects, no calls), so loops under
// `#pragma omp simd` that call these compile to packed code. Relative error < 1e-6 over the full
// range (checked against libm in bench/native/kernels_check.cc). Special values follow libm:
// exp(-inf) = 0, exp(+inf) = inf, log(0) = -inf, log(x < 0) = NaN, NaN in gives NaN out.
// The double overloads use std:: (accuracy first; double serves gradcheck).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

// Forced inline: callers are ISA clones (target_clones), and a call would break vectorisation.
#define KILN_VINLINE __attribute__((always_inline)) inline

namespace kiln {
namespace vmath {

KILN_VINLINE float bits_to_float(int32_t i) { float f; std::memcpy(&f, &i, sizeof f); return f; }
KILN_VINLINE int32_t float_to_bits(float f) { int32_t i; std::memcpy(&i, &f, sizeof i); return i; }

// Round to nearest integer (|x| < 2^22) with the 1.5 * 2^23 trick: one add and one subtract.
KILN_VINLINE float round_f(float x) { return (x + 12582912.0f) - 12582912.0f; }

// c ? a : b as bit operations. A plain ?: between computed values defeats the vectoriser under the
// default -ftrapping-math (it sinks the computation into a branch), so every select goes through here.
KILN_VINLINE float select_f(bool c, float a, float b) {
  int32_t m = -static_cast<int32_t>(c);
  return bits_to_float((float_to_bits(a) & m) | (float_to_bits(b) & ~m));
}

// 2^n for integer n in [-126, 127], built from the exponent bits.
KILN_VINLINE float pow2i_f(int32_t n) { return bits_to_float((n + 127) << 23); }

// exp: x = n ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln2), degree-6 polynomial for e^r.
KILN_VINLINE float exp_f(float x) {
  const float kInf = std::numeric_limits<float>::infinity();
  const float kHi = 88.72283935546875f;  // expf overflows above this
  float xc = select_f(x < -104.0f, -104.0f, x);  // below -104 the result rounds to 0 anyway
  xc = select_f(xc > kHi, kHi, xc);
  xc = select_f(x != x, 0.0f, xc);                // keep the integer conversion defined for NaN
  float n = round_f(xc * 1.44269504088896341f);
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float y = p * (r * r) + r + 1.0f;
  int32_t ni = static_cast<int32_t>(n);  // in [-150, 128]: scale in two steps to stay normal
  int32_t n1 = ni >> 1;
  y = y * pow2i_f(n1) * pow2i_f(ni - n1);
  y = select_f(x > kHi, kInf, y);
  return select_f(x != x, x, y);
}

// log: x = m 2^e with m in [sqrt(1/2), sqrt(2)), f = m - 1, log(1+f) = f - f^2/2 + f^3 P(f).
KILN_VINLINE float log_f(float x) {
  const float kInf = std::numeric_limits<float>::infinity();
  bool sub = x < 1.17549435e-38f;          // subnormal (or <= 0): rescale by 2^23 first
  float xs = select_f(sub, x * 8388608.0f, x);
  int32_t i = float_to_bits(xs);
  int32_t e = ((i >> 23) & 0xff) - 126;
  float m = bits_to_float((i & 0x007fffff) | 0x3f000000);  // in [0.5, 1)
  bool lo = m < 0.707106781186547524f;
  float f = select_f(lo, (m + m) - 1.0f, m - 1.0f);
  float ef = static_cast<float>(e - static_cast<int32_t>(lo)) - select_f(sub, 23.0f, 0.0f);
  float z = f * f;
  float p = 7.0376836292e-2f;
  p = p * f - 1.1514610310e-1f;
  p = p * f + 1.1676998740e-1f;
  p = p * f - 1.2420140846e-1f;
  p = p * f + 1.4249322787e-1f;
  p = p * f - 1.6668057665e-1f;
  p = p * f + 2.0000714765e-1f;
  p = p * f - 2.4999993993e-1f;
  p = p * f + 3.3333331174e-1f;
  float y = f * z * p + ef * -2.12194440e-4f - 0.5f * z;
  float res = (f + y) + ef * 0.693359375f;
  res = select_f(x == kInf, kInf, res);
  res = select_f(x == 0.0f, -kInf, res);
  res = select_f(x < 0.0f, std::numeric_limits<float>::quiet_NaN(), res);
  return select_f(x != x, x, res);
}

// tanh: odd polynomial below 0.625, 1 - 2 / (e^{2|x|} + 1) above (no cancellation there).
KILN_VINLINE float tanh_f(float x) {
  float a = std::fabs(x);
  float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  float small = x + x * z * p;
  float big = 1.0f - 2.0f / (exp_f(a + a) + 1.0f);
  big = select_f(x < 0.0f, -big, big);
  // tanh is odd: the sign is x's, so tanh(-0) is -0 (x + x z p rounds -0 to +0).
  return std::copysign(select_f(a < 0.625f, small, big), x);
}

// erf: Maclaurin series below 1; above, erf = 1 - erfc with the Chebyshev-fitted
// erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z/2) (fractional error ~1.2e-7).
KILN_VINLINE float erf_f(float x) {
  float a = std::fabs(x);
  float z = x * x;
  float s = -1.0f / 918086400.0f;
  s = s * z + 1.0f / 76204800.0f;
  s = s * z - 1.0f / 6894720.0f;
  s = s * z + 1.0f / 685440.0f;
  s = s * z - 1.0f / 75600.0f;
  s = s * z + 1.0f / 9360.0f;
  s = s * z - 1.0f / 1320.0f;
  s = s * z + 1.0f / 216.0f;
  s = s * z - 1.0f / 42.0f;
  s = s * z + 1.0f / 10.0f;
  s = s * z - 1.0f / 3.0f;
  float small = 1.1283791670955126f * (x + x * z * s);
  float t = 1.0f / (1.0f + 0.5f * a);
  float q = 0.17087277f;
  q = q * t - 0.82215223f;
  q = q * t + 1.48851587f;
  q = q * t - 1.13520398f;
  q = q * t + 0.27886807f;
  q = q * t - 0.18628806f;
  q = q * t + 0.09678418f;
  q = q * t + 0.37409196f;
  q = q * t + 1.00002368f;
  q = q * t - 1.26551223f;
  float big = 1.0f - t * exp_f(q - a * a);
  big = select_f(x < 0.0f, -big, big);
  return select_f(a < 1.0f, small, big);
}

// sin(2 pi u) and cos(2 pi u) for any finite u; exact reduction when u is a multiple of 2^-24
// (Philox uniforms), then minimax polynomials on [-pi/4, pi/4] and a quadrant rotation.
KILN_VINLINE void sincos_2pi_f(float u, float* sn, float* cs) {
  float t = u - round_f(u);                // [-1/2, 1/2]
  float q = round_f(t * 4.0f);             // quadrant in {-2..2}
  float a = (t - 0.25f * q) * 6.28318530717958647692f;  // [-pi/4, pi/4]
  float z = a * a;
  float s = ((-1.9515295891e-4f * z + 8.3321608736e-3f) * z - 1.6666654611e-1f) * z * a + a;
  float c = ((2.443315711809948e-5f * z - 1.388731625493765e-3f) * z + 4.166664568298827e-2f) *
                z * z - 0.5f * z + 1.0f;
  int32_t k = static_cast<int32_t>(q) & 3;
  float sv = select_f(k & 1, c, s);
  float cv = select_f(k & 1, s, c);
  *sn = select_f(k >= 2, -sv, sv);
  *cs = select_f(k == 1 || k == 2, -cv, cv);
}

// Overloads that kernels templated on T call: float -> the approximations, double -> libm.
KILN_VINLINE float vexp(float x) { return exp_f(x); }
KILN_VINLINE double vexp(double x) { return std::exp(x); }
KILN_VINLINE float vlog(float x) { return log_f(x); }
KILN_VINLINE double vlog(double x) { return std::log(x); }
KILN_VINLINE float vtanh(float x) { return tanh_f(x); }
KILN_VINLINE double vtanh(double x) { return std::tanh(x); }
KILN_VINLINE float verf(float x) { return erf_f(x); }
KILN_VINLINE double verf(double x) { return std::erf(x); }

}  // namespace vmath
}  // namespace kiln
