// CUDA diffusion kernels with the semantics of kernels/cpu/diffusion.cc: the fused step is a
// grid-stride loop over normal pairs (each thread draws one Philox block = two pairs, the same words
// and Box-Muller as the CPU, so a seed gives the same noise on both); the nearest-row search scores a
// band of query rows against the whole vocabulary with the tensor-core GEMM (gemm.cu) and reduces
// each row with one block (first index on ties, as the CPU). Both match their CPU twins on an H100
// (test/diffusion.test.ts, session 9) and on the host model (bench/native/cuda_host).
#include <cuda_runtime.h>

#include <cstdint>

#include "../common/philox.h"
#include "cuda_api.h"
#include "diffusion_api.h"
#include "gemm_api.h"

namespace kiln {
namespace cuda {
namespace {

using cpu::DType;
using cpu::DiffusionSpec;
using cpu::NoiseSource;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

std::string launched() {
  cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? "" : std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

__device__ inline void box_muller(uint32_t w1, uint32_t w2, float* z0, float* z1) {
  const float u1 = philox::uniform01_open0(w1), u2 = philox::uniform01(w2);
  const float r = sqrtf(-2.0f * logf(u1));
  float s, c;
  sincospif(2.0f * u2, &s, &c);
  *z0 = r * c;
  *z1 = r * s;
}
__device__ inline void box_muller(uint32_t w1, uint32_t w2, double* z0, double* z1) {
  const double u1 = static_cast<double>((w1 >> 8) + 1u) * 5.9604644775390625e-8;
  const double u2 = static_cast<double>(w2 >> 8) * 5.9604644775390625e-8;
  const double r = sqrt(-2.0 * log(u1));
  *z0 = r * cos(6.283185307179586476925 * u2);
  *z1 = r * sin(6.283185307179586476925 * u2);
}

template <class T>
__device__ inline void step_one(const DiffusionSpec& s, const double* coef, const T* x, const T* y, T z, bool hasZ,
                                T* out, T* x0o, int64_t e) {
  const double* c = coef + (e / s.inner) * 8;
  const T xv = x[e];
  T x0 = T(c[0]) * xv + (y ? T(c[1]) * y[e] : T(0));
  if (s.clip) x0 = fmin(fmax(x0, T(s.lo)), T(s.hi));
  const T eps = T(c[2]) * xv + T(c[3]) * x0;
  T o = T(c[4]) * xv + T(c[5]) * x0 + T(c[6]) * eps;
  const T sigma = T(c[7]);
  if (hasZ && sigma != T(0)) o += sigma * z;
  out[e] = o;
  if (x0o) x0o[e] = x0;
}

// Thread work unit: the pair of elements (2p, 2p + 1), noise from words offset + 2p, + 1.
template <class T>
__global__ void step_kernel(DiffusionSpec s, const double* coef, const T* x, const T* y, const T* noise, T* out, T* x0o,
                            T* zo, int64_t n) {
  const int64_t pairs = (n + 1) / 2;
  for (int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; p < pairs; p += int64_t(gridDim.x) * blockDim.x) {
    const int64_t e = 2 * p;
    T z[2] = {T(0), T(0)};
    bool hasZ = false;
    if (s.noise == NoiseSource::Philox) {
      const uint64_t w = s.offset + static_cast<uint64_t>(e);
      const uint32_t w1 = philox::stream_word(s.seed, w), w2 = philox::stream_word(s.seed, w + 1);
      box_muller(w1, w2, &z[0], &z[1]);
      hasZ = true;
    } else if (s.noise == NoiseSource::Given) {
      z[0] = noise[e];
      if (e + 1 < n) z[1] = noise[e + 1];
      hasZ = true;
    }
    for (int k = 0; k < 2 && e + k < n; ++k) {
      step_one(s, coef, x, y, z[k], hasZ, out, x0o, e + k);
      if (zo && hasZ) zo[e + k] = z[k];
    }
  }
}

template <class T>
__global__ void row_norms_kernel(const T* E, T* en, int64_t v, int64_t d) {
  const int lane = threadIdx.x & 31;
  const int64_t j = blockIdx.x * int64_t(kWarps) + (threadIdx.x >> 5);
  if (j >= v) return;
  T s = 0;
  for (int64_t k = lane; k < d; k += 32) s += E[j * d + k] * E[j * d + k];
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if (lane == 0) en[j] = s;
}

// Row i of a band of scores S = x_band E^T (n x v), as the CPU's nearest_rows: every row whose score
// sc_j = |E_j|^2 - 2 S[a, j] is within the error bounds of the best score so far (each thread's
// own, over j = tid, tid + blockDim, ...) is a candidate, ranked by |x - E_j|^2 summed in double in
// the CPU's order; the merge prefers the lower distance, then the lower index. idx = the winner and
// snapped = E[idx]; a row of x with a NaN or an infinity gets -1 and a NaN row.
template <class T>
__global__ void nearest_kernel(const T* S, const T* x, const T* E, const T* en, int64_t r0, int64_t v, int64_t d, int32_t* idx,
                               T* snapped) {
  __shared__ double best[kThreads];
  __shared__ int64_t arg[kThreads];
  const T* row = S + static_cast<int64_t>(blockIdx.x) * v;
  const int64_t i = r0 + blockIdx.x;
  const T* xr = x + i * d;
  const int tid = static_cast<int>(threadIdx.x);
  double xs = 0;
  for (int64_t k = tid; k < d; k += blockDim.x) xs += double(xr[k]) * double(xr[k]);
  best[tid] = xs;
  __syncthreads();
  for (int w = kThreads / 2; w > 0; w >>= 1) {
    if (tid < w) best[tid] += best[tid + w];
    __syncthreads();
  }
  const double xnorm = sqrt(best[0]);
  const bool ok = isfinite(xnorm);
  __syncthreads();  // everyone has read best[0]
  const T c = T(d + 5) * (sizeof(T) == 4 ? T(1.1920928955078125e-7) : T(2.220446049250313e-16));
  T approx = T(INFINITY), approxTol = T(0);
  double exact = INFINITY;
  int64_t a = -1;
  for (int64_t j = tid; ok && j < v; j += blockDim.x) {
    const T sc = en[j] - T(2) * row[j];
    const T tol = c * (en[j] + T(2 * xnorm) * sqrt(en[j]));
    if (!(sc <= approx + approxTol + tol)) continue;
    double dist = 0;
    for (int64_t k = 0; k < d; ++k) {
      const double t = double(xr[k]) - double(E[j * d + k]);
      dist += t * t;
    }
    if (dist < exact) exact = dist, a = j;
    if (sc < approx) approx = sc, approxTol = tol;
  }
  best[tid] = exact;
  arg[tid] = a;
  __syncthreads();
  for (int w = kThreads / 2; w > 0; w >>= 1) {
    if (tid < w) {
      const double b2 = best[tid + w];
      const int64_t a2 = arg[tid + w], a1 = arg[tid];
      if (a2 >= 0 && (a1 < 0 || b2 < best[tid] || (b2 == best[tid] && a2 < a1))) best[tid] = b2, arg[tid] = a2;
    }
    __syncthreads();
  }
  const int64_t win = arg[0] < 0 ? 0 : arg[0];
  if (threadIdx.x == 0) idx[i] = ok ? static_cast<int32_t>(win) : -1;
  if (snapped)
    for (int64_t k = threadIdx.x; k < d; k += blockDim.x) snapped[i * d + k] = ok ? E[win * d + k] : T(NAN);
}

template <class T>
std::string step_t(const DiffusionSpec& s, const double* coef, const T* x, const T* y, const T* noise, T* out, T* x0o,
                   T* zo) {
  const int64_t n = s.rows * s.inner;
  if (n == 0) return "";
  const int64_t pairs = (n + 1) / 2;
  const int64_t blocks = (pairs + kThreads - 1) / kThreads;
  step_kernel<T><<<static_cast<unsigned>(blocks < 65535 ? blocks : 65535), kThreads>>>(s, coef, x, y, noise, out, x0o, zo, n);
  return launched();
}

// Scores a band of query rows at a time (band_rows: about 64 MiB) with the tensor-core GEMM (3xTF32
// for float32), as the CPU kernel does with its own GEMM.
template <class T>
std::string nearest_t(const T* x, const T* E, int64_t m, int64_t v, int64_t d, int32_t* idx, T* snapped) {
  if (m == 0) return "";
  std::string err;
  T* en = static_cast<T*>(alloc(static_cast<size_t>(v) * sizeof(T), &err));
  if (!en) return err.empty() ? "nearest rows: out of device memory" : err;
  const int64_t R = band_rows(sizeof(T), v, m);
  const size_t bandElems = static_cast<size_t>(R * v);
  T* S = static_cast<T*>(alloc(bandElems * sizeof(T), &err));
  if (!S) {
    release(en, static_cast<size_t>(v) * sizeof(T));
    return err.empty() ? "nearest rows: out of device memory" : err;
  }
  row_norms_kernel<T><<<static_cast<unsigned>((v + kWarps - 1) / kWarps), kThreads>>>(E, en, v, d);
  err = launched();
  for (int64_t r0 = 0; r0 < m && err.empty(); r0 += R) {
    const int64_t n = m - r0 < R ? m - r0 : R;
    err = gemm_full_precision<T>(n, v, d, false, true, x + r0 * d, d, E, d, S, v);
    if (err.empty()) {
      nearest_kernel<T><<<static_cast<unsigned>(n), kThreads>>>(S, x, E, en, r0, v, d, idx, snapped);
      err = launched();
    }
  }
  release(S, bandElems * sizeof(T));
  release(en, static_cast<size_t>(v) * sizeof(T));
  return err;
}

}  // namespace

std::string diffusion_step(DType dt, const DiffusionSpec& s, const void* coef, const void* x, const void* y,
                           const void* noise, void* out, void* x0_out, void* noise_out) {
  const double* c = static_cast<const double*>(coef);
  if (dt == DType::F32)
    return step_t<float>(s, c, static_cast<const float*>(x), static_cast<const float*>(y), static_cast<const float*>(noise),
                         static_cast<float*>(out), static_cast<float*>(x0_out), static_cast<float*>(noise_out));
  return step_t<double>(s, c, static_cast<const double*>(x), static_cast<const double*>(y), static_cast<const double*>(noise),
                        static_cast<double*>(out), static_cast<double*>(x0_out), static_cast<double*>(noise_out));
}

std::string nearest_rows(DType dt, const void* x, const void* E, int64_t m, int64_t v, int64_t d, void* idx, void* snapped) {
  if (dt == DType::F32)
    return nearest_t<float>(static_cast<const float*>(x), static_cast<const float*>(E), m, v, d, static_cast<int32_t*>(idx),
                            static_cast<float*>(snapped));
  return nearest_t<double>(static_cast<const double*>(x), static_cast<const double*>(E), m, v, d, static_cast<int32_t*>(idx),
                           static_cast<double*>(snapped));
}

}  // namespace cuda
}  // namespace kiln
