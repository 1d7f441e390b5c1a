// Diffusion-step kernels (diffusion.cc): one fused elementwise family with Philox noise, and the
// nearest-embedding-row search behind Diffusion-LM's clamping trick. Pure compute on raw pointers.
#pragma once
#include <cstdint>

namespace kiln {
namespace cpu {

enum class NoiseSource : int { None = 0, Philox = 1, Given = 2 };

// x and y are [rows, inner]; coef is [rows, 8] (float64): a0 a1 b0 b1 c0 c1 c2 sigma. Per element:
//   x0  = a0 x + a1 y, clamped to [lo, hi] when clip
//   eps = b0 x + b1 x0
//   out = c0 x + c1 x0 + c2 eps + sigma z
// z is element e of the Philox normal stream at (seed, offset) exactly as philox_normal lays it out
// (so it equals kiln.randn for the same seed and offset), or noise[e] when given. This covers
// q_sample, the DDPM posterior step, the DDIM step and the eps <-> x0 conversions.
struct DiffusionSpec {
  int64_t rows = 0;
  int64_t inner = 0;
  bool clip = false;
  double lo = -1, hi = 1;
  NoiseSource noise = NoiseSource::None;
  uint64_t seed = 0, offset = 0;
};

// y may be null when every a1 is 0; x0_out and noise_out (the z used) may be null.
template <class T>
void diffusion_step(const DiffusionSpec& s, const double* coef, const T* x, const T* y, const T* noise, T* out,
                    T* x0_out, T* noise_out);

// For each of the m rows of x [m, d]: idx = argmin_v |x - E_v|^2 over E [v, d] (first on ties),
// and snapped = E[idx] when not null. Tiled over the vocabulary: no [m, v] matrix is stored.
template <class T>
void nearest_rows(const T* x, const T* E, int64_t m, int64_t v, int64_t d, int32_t* idx, T* snapped);

}  // namespace cpu
}  // namespace kiln
