// CUDA Philox 4x32-10 streams with the values of kernels/cpu/random.cc: word w of a seed is lane
// w % 4 of the block for counter w / 4 (kernels/common/philox.h, shared with the CPU), and the
// word-to-value maps are the CPU's operation for operation, one rounding each (round-to-nearest
// intrinsics, so nvcc cannot contract them into FMAs): uniform and randint values are bit-equal to
// the CPU's. The float normal transform is the CPU's vmath log and sincos polynomials
// (kernels/cpu/vmath.h); it equals the CPU's baseline and AVX2 clones bit for bit, while GCC's
// AVX-512 clone contracts some of those steps into FMAs (last-ulp differences). float64 normals use
// CUDA's log/sin/cos, within an ulp or two of the CPU's libm.
// A thread draws one Philox block (4 words) per step of a grid-stride loop.
#include <cuda_runtime.h>

#include <cstdint>

#include "../common/philox.h"
#include "core_api.h"
#include "core_common.cuh"

namespace kiln {
namespace cuda {
namespace {

using namespace core;
using cpu::DType;

constexpr float kTwoM24 = 5.9604644775390625e-8f;

__device__ __forceinline__ float unit_f(uint32_t x) { return static_cast<float>(x >> 8) * kTwoM24; }
__device__ __forceinline__ double unit_d(uint32_t x) { return static_cast<double>(x >> 8) * 5.9604644775390625e-8; }
__device__ __forceinline__ float unit_open0_f(uint32_t x) { return static_cast<float>((x >> 8) + 1u) * kTwoM24; }
__device__ __forceinline__ double unit_open0_d(uint32_t x) { return static_cast<double>((x >> 8) + 1u) * 5.9604644775390625e-8; }

// ---- vmath::log_f and vmath::sincos_2pi_f, one rounding per operation ----
__device__ __forceinline__ float mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ float add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ float sub(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ float round_f(float x) { return sub(add(x, 12582912.0f), 12582912.0f); }

__device__ float log_f(float x) {
  const bool subn = x < 1.17549435e-38f;
  const float xs = subn ? mul(x, 8388608.0f) : x;
  const int32_t i = __float_as_int(xs);
  const int32_t e = ((i >> 23) & 0xff) - 126;
  const float m = __int_as_float((i & 0x007fffff) | 0x3f000000);
  const bool lo = m < 0.707106781186547524f;
  const float f = lo ? sub(add(m, m), 1.0f) : sub(m, 1.0f);
  const float ef = sub(static_cast<float>(e - static_cast<int32_t>(lo)), subn ? 23.0f : 0.0f);
  const float z = mul(f, f);
  float p = 7.0376836292e-2f;
  p = sub(mul(p, f), 1.1514610310e-1f);
  p = add(mul(p, f), 1.1676998740e-1f);
  p = sub(mul(p, f), 1.2420140846e-1f);
  p = add(mul(p, f), 1.4249322787e-1f);
  p = sub(mul(p, f), 1.6668057665e-1f);
  p = add(mul(p, f), 2.0000714765e-1f);
  p = sub(mul(p, f), 2.4999993993e-1f);
  p = add(mul(p, f), 3.3333331174e-1f);
  const float y = sub(add(mul(mul(f, z), p), mul(ef, -2.12194440e-4f)), mul(0.5f, z));
  float res = add(add(f, y), mul(ef, 0.693359375f));
  if (x == INFINITY) res = INFINITY;
  if (x == 0.0f) res = -INFINITY;
  if (x < 0.0f) res = NAN;
  return x != x ? x : res;
}

__device__ void sincos_2pi_f(float u, float* sn, float* cs) {
  const float t = sub(u, round_f(u));
  const float q = round_f(mul(t, 4.0f));
  const float a = mul(sub(t, mul(0.25f, q)), 6.28318530717958647692f);
  const float z = mul(a, a);
  const float s = add(mul(mul(sub(mul(add(mul(-1.9515295891e-4f, z), 8.3321608736e-3f), z), 1.6666654611e-1f), z), a), a);
  const float c = add(sub(mul(mul(add(mul(sub(mul(2.443315711809948e-5f, z), 1.388731625493765e-3f), z), 4.166664568298827e-2f),
                                  z), z), mul(0.5f, z)), 1.0f);
  const int32_t k = static_cast<int32_t>(q) & 3;
  const float sv = (k & 1) ? c : s, cv = (k & 1) ? s : c;
  *sn = k >= 2 ? -sv : sv;
  *cs = (k == 1 || k == 2) ? -cv : cv;
}

// kernels/cpu/random_dist.h box_muller, then mean + std * z.
__device__ __forceinline__ void normal_pair(uint32_t w1, uint32_t w2, float mean, float std, float* a, float* b) {
  const float r = __fsqrt_rn(mul(-2.0f, log_f(unit_open0_f(w1))));
  float s, c;
  sincos_2pi_f(unit_f(w2), &s, &c);
  *a = add(mean, mul(std, mul(r, c)));
  *b = add(mean, mul(std, mul(r, s)));
}
__device__ __forceinline__ void normal_pair(uint32_t w1, uint32_t w2, double mean, double std, double* a, double* b) {
  const double kTwoPi = 6.283185307179586476925;
  const double r = __dsqrt_rn(__dmul_rn(-2.0, log(unit_open0_d(w1))));
  const double ang = __dmul_rn(kTwoPi, unit_d(w2));
  *a = __dadd_rn(mean, __dmul_rn(std, __dmul_rn(r, cos(ang))));
  *b = __dadd_rn(mean, __dmul_rn(std, __dmul_rn(r, sin(ang))));
}
__device__ __forceinline__ float lerp_unit(float lo, float span, uint32_t w) { return add(lo, mul(span, unit_f(w))); }
__device__ __forceinline__ double lerp_unit(double lo, double span, uint32_t w) { return __dadd_rn(lo, __dmul_rn(span, unit_d(w))); }

// Thread step: words [4b, 4b + 4) of the stream, b = first block + step; element i is word offset + i.
template <class T>
__global__ void uniform_kernel(T* __restrict__ out, int64_t n, uint64_t seed, uint64_t offset, T lo, T span) {
  const uint64_t b0 = offset >> 2, bEnd = (offset + n + 3) >> 2;
  for (uint64_t b = b0 + uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; b < bEnd; b += uint64_t(gridDim.x) * blockDim.x) {
    const philox::Words4 r = philox::stream_block(seed, b);
#pragma unroll
    for (int l = 0; l < 4; ++l) {
      const uint64_t w = 4 * b + l;
      if (w >= offset && w < offset + n) out[w - offset] = lerp_unit(lo, span, r.v[l]);
    }
  }
}

__global__ void randint_kernel(int32_t* __restrict__ out, int64_t n, uint64_t seed, uint64_t offset, int32_t lo, uint32_t span) {
  const uint64_t b0 = offset >> 2, bEnd = (offset + n + 3) >> 2;
  for (uint64_t b = b0 + uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; b < bEnd; b += uint64_t(gridDim.x) * blockDim.x) {
    const philox::Words4 r = philox::stream_block(seed, b);
#pragma unroll
    for (int l = 0; l < 4; ++l) {
      const uint64_t w = 4 * b + l;
      if (w >= offset && w < offset + n) out[w - offset] = static_cast<int32_t>(static_cast<int64_t>(lo) + r.v[l] % span);
    }
  }
}

// Pair j uses words offset + 2j and offset + 2j + 1; a thread takes the two pairs starting in its
// block (with an odd offset a pair's second word is in the next block: drawn separately).
template <class T>
__global__ void normal_kernel(T* __restrict__ out, int64_t n, uint64_t seed, uint64_t offset, T mean, T std) {
  const uint64_t pairs = (n + 1) / 2;
  const uint64_t wEnd = offset + 2 * pairs;
  const uint64_t b0 = offset >> 2, bEnd = (wEnd + 3) >> 2;
  for (uint64_t b = b0 + uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; b < bEnd; b += uint64_t(gridDim.x) * blockDim.x) {
    const philox::Words4 r = philox::stream_block(seed, b);
#pragma unroll
    for (int l = 0; l < 4; ++l) {
      const uint64_t w = 4 * b + l;
      if (w < offset || w >= wEnd || ((w - offset) & 1)) continue;  // w is the first word of pair (w - offset) / 2
      const uint32_t w2 = l < 3 ? r.v[l + 1] : philox::stream_word(seed, w + 1);
      const uint64_t e = w - offset;
      T a, c;
      normal_pair(r.v[l], w2, mean, std, &a, &c);
      out[e] = a;
      if (e + 1 < static_cast<uint64_t>(n)) out[e + 1] = c;
    }
  }
}

unsigned philox_grid(int64_t blocks) { return grid_for(blocks, kThreads, int64_t(sm_count()) * 16); }

}  // namespace

std::string philox_uniform(DType dtype, void* out, int64_t n, uint64_t seed, uint64_t offset, double lo, double hi) {
  if (n <= 0) return "";
  const unsigned grid = philox_grid(n / 4 + 2);
  if (dtype == DType::F32) {
    const float l = static_cast<float>(lo), h = static_cast<float>(hi);
    uniform_kernel<float><<<grid, kThreads>>>(static_cast<float*>(out), n, seed, offset, l, h - l);
  } else if (dtype == DType::F64) {
    uniform_kernel<double><<<grid, kThreads>>>(static_cast<double*>(out), n, seed, offset, lo, hi - lo);
  } else {
    return "random: unsupported dtype";
  }
  return launched();
}

std::string philox_normal(DType dtype, void* out, int64_t n, uint64_t seed, uint64_t offset, double mean, double std) {
  if (n <= 0) return "";
  const unsigned grid = philox_grid(n / 4 + 2);
  if (dtype == DType::F32)
    normal_kernel<float><<<grid, kThreads>>>(static_cast<float*>(out), n, seed, offset, static_cast<float>(mean), static_cast<float>(std));
  else if (dtype == DType::F64)
    normal_kernel<double><<<grid, kThreads>>>(static_cast<double*>(out), n, seed, offset, mean, std);
  else
    return "random: unsupported dtype";
  return launched();
}

std::string philox_randint(int32_t* out, int64_t n, uint64_t seed, uint64_t offset, int32_t lo, int32_t hi) {
  if (n <= 0) return "";
  if (hi <= lo) return "randint: empty range";
  randint_kernel<<<philox_grid(n / 4 + 2), kThreads>>>(out, n, seed, offset, lo,
                                                       static_cast<uint32_t>(static_cast<int64_t>(hi) - lo));
  return launched();
}

}  // namespace cuda
}  // namespace kiln
