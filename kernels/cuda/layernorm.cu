// CUDA layer norm over the last axis of [rows, n], the semantics of kernels/cpu/layernorm.cc:
// forward saves mean and rstd (two-pass variance, statistics accumulated in double); the backward
// writes dx with a warp or block per row, and dgamma/dbeta with a thread per column over chunks of
// rows whose double partials are added in chunk order (deterministic, no atomics).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core_api.h"
#include "rows.cuh"

namespace kiln {
namespace cuda {
namespace {

using namespace core;
using cpu::DType;

template <class T, bool kWarp>
__global__ void ln_forward_kernel(const T* __restrict__ x, const T* __restrict__ gamma, const T* __restrict__ beta,
                                  T* __restrict__ y, T* __restrict__ meanOut, T* __restrict__ rstdOut, int64_t rows, int64_t n,
                                  double eps, bool vec) {
  using G = RowGroup<kWarp>;
  const int lane = G::lane(), size = G::size();
  for (int64_t row = G::first(); row < rows; row += G::stride()) {
    const T* xr = x + row * n;
    double s = 0;
    row_for_each(xr, n, vec, lane, size, [&](int64_t, T v) { s += static_cast<double>(v); });
    const T mean = static_cast<T>(group_allreduce<kWarp, SumD>(s) / static_cast<double>(n));
    double q = 0;
    row_for_each(xr, n, vec, lane, size, [&](int64_t, T v) {
      const T d = v - mean;
      q += static_cast<double>(d * d);
    });
    const double var = group_allreduce<kWarp, SumD>(q) / static_cast<double>(n);
    const T rstd = static_cast<T>(1.0 / sqrt(var + eps));
    if (lane == 0) {
      meanOut[row] = mean;
      rstdOut[row] = rstd;
    }
    T* yr = y + row * n;
    if (gamma && beta) row_map(xr, yr, n, vec, lane, size, [&](int64_t k, T v) { return (v - mean) * rstd * gamma[k] + beta[k]; });
    else if (gamma) row_map(xr, yr, n, vec, lane, size, [&](int64_t k, T v) { return (v - mean) * rstd * gamma[k]; });
    else if (beta) row_map(xr, yr, n, vec, lane, size, [&](int64_t k, T v) { return (v - mean) * rstd + beta[k]; });
    else row_map(xr, yr, n, vec, lane, size, [&](int64_t, T v) { return (v - mean) * rstd; });
  }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma, xhat = (x - mean) * rstd.
template <class T, bool kWarp>
__global__ void ln_backward_dx_kernel(const T* __restrict__ x, const T* __restrict__ gamma, const T* __restrict__ mean,
                                      const T* __restrict__ rstd, const T* __restrict__ dy, T* __restrict__ dx, int64_t rows,
                                      int64_t n, bool vec) {
  using G = RowGroup<kWarp>;
  const int lane = G::lane(), size = G::size();
  for (int64_t row = G::first(); row < rows; row += G::stride()) {
    const T* xr = x + row * n;
    const T* gr = dy + row * n;
    const T mu = mean[row], rs = rstd[row];
    SumD2::S acc = SumD2::init();
    row_for_each2(xr, gr, n, vec, lane, size, [&](int64_t k, T xv, T gv) {
      const T g = gamma ? gv * gamma[k] : gv;
      acc.a += static_cast<double>(g);
      acc.b += static_cast<double>(g * ((xv - mu) * rs));
    });
    acc = group_allreduce<kWarp, SumD2>(acc);
    const T a = static_cast<T>(acc.a / static_cast<double>(n)), b = static_cast<T>(acc.b / static_cast<double>(n));
    row_map2(xr, gr, dx + row * n, n, vec, lane, size, [&](int64_t k, T xv, T gv) {
      const T g = gamma ? gv * gamma[k] : gv;
      return rs * (g - a - ((xv - mu) * rs) * b);
    });
  }
}

// Column j of dgamma/dbeta over the rows of chunk blockIdx.y; final when nchunks == 1, else partials [nchunks, n].
template <class T>
__global__ void ln_param_grad_kernel(const T* __restrict__ x, const T* __restrict__ mean, const T* __restrict__ rstd,
                                     const T* __restrict__ dy, T* __restrict__ dgamma, T* __restrict__ dbeta,
                                     double* __restrict__ partG, double* __restrict__ partB, int64_t rows, int64_t n,
                                     int64_t chunk, int64_t nchunks) {
  const int64_t c = blockIdx.y, r0 = c * chunk, r1 = min(rows, r0 + chunk);
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < n; j += int64_t(gridDim.x) * blockDim.x) {
    double sg = 0, sb = 0;
    for (int64_t r = r0; r < r1; ++r) {
      const T d = dy[r * n + j];
      sg += static_cast<double>(d * ((x[r * n + j] - mean[r]) * rstd[r]));
      sb += static_cast<double>(d);
    }
    if (nchunks == 1) {
      if (dgamma) dgamma[j] = static_cast<T>(sg);
      if (dbeta) dbeta[j] = static_cast<T>(sb);
    } else {
      partG[c * n + j] = sg;
      partB[c * n + j] = sb;
    }
  }
}

template <class T>
__global__ void ln_param_combine_kernel(const double* __restrict__ partG, const double* __restrict__ partB, T* __restrict__ dgamma,
                                        T* __restrict__ dbeta, int64_t n, int64_t nchunks) {
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < n; j += int64_t(gridDim.x) * blockDim.x) {
    double sg = 0, sb = 0;
    for (int64_t c = 0; c < nchunks; ++c) {
      sg += partG[c * n + j];
      sb += partB[c * n + j];
    }
    if (dgamma) dgamma[j] = static_cast<T>(sg);
    if (dbeta) dbeta[j] = static_cast<T>(sb);
  }
}

int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <class T>
std::string run_forward(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd, int64_t rows, int64_t n, double eps) {
  if (rows <= 0 || n <= 0) return "";
  const bool vec = rows_aligned16<T>(x, n) && rows_aligned16<T>(y, n);
  if (n <= kWarpRow)
    ln_forward_kernel<T, true><<<grid_for(rows, kWarps), kThreads>>>(x, gamma, beta, y, mean, rstd, rows, n, eps, vec);
  else
    ln_forward_kernel<T, false><<<grid_for(rows, 1), block_threads_for_row(n)>>>(x, gamma, beta, y, mean, rstd, rows, n, eps, vec);
  return launched();
}

template <class T>
std::string run_backward(const T* x, const T* gamma, const T* mean, const T* rstd, const T* dy, T* dx, T* dgamma, T* dbeta,
                         int64_t rows, int64_t n) {
  if (n <= 0) return "";
  if (rows > 0) {
    const bool vec = rows_aligned16<T>(x, n) && rows_aligned16<T>(dy, n) && rows_aligned16<T>(dx, n);
    if (n <= kWarpRow)
      ln_backward_dx_kernel<T, true><<<grid_for(rows, kWarps), kThreads>>>(x, gamma, mean, rstd, dy, dx, rows, n, vec);
    else
      ln_backward_dx_kernel<T, false><<<grid_for(rows, 1), block_threads_for_row(n)>>>(x, gamma, mean, rstd, dy, dx, rows, n, vec);
    if (auto err = launched(); !err.empty()) return err;
  }
  if (!dgamma && !dbeta) return "";
  const int64_t resident = int64_t(sm_count()) * 2048;
  int64_t nchunks = 1, chunk = rows;
  if (n < resident && rows > 32) {
    nchunks = std::min<int64_t>({cdiv(resident, n), cdiv(rows, 16), 65535});
    chunk = cdiv(rows, nchunks);
    nchunks = cdiv(rows, chunk);
  }
  Scratch part;
  if (nchunks > 1)
    if (auto err = part.get(2 * sizeof(double) * n * nchunks); !err.empty()) return err;
  double* pg = part.as<double>();
  double* pb = pg ? pg + n * nchunks : nullptr;
  dim3 grid(grid_for(n), static_cast<unsigned>(nchunks));
  ln_param_grad_kernel<T><<<grid, kThreads>>>(x, mean, rstd, dy, dgamma, dbeta, pg, pb, rows, n, chunk, nchunks);
  if (nchunks > 1) ln_param_combine_kernel<T><<<grid_for(n), kThreads>>>(pg, pb, dgamma, dbeta, n, nchunks);
  return launched();
}

}  // namespace

std::string layernorm_forward(DType dtype, const void* x, const void* gamma, const void* beta, void* y, void* mean, void* rstd,
                              int64_t rows, int64_t n, double eps) {
  if (dtype == DType::F32)
    return run_forward(static_cast<const float*>(x), static_cast<const float*>(gamma), static_cast<const float*>(beta),
                       static_cast<float*>(y), static_cast<float*>(mean), static_cast<float*>(rstd), rows, n,
                       static_cast<double>(static_cast<float>(eps)));
  if (dtype == DType::F64)
    return run_forward(static_cast<const double*>(x), static_cast<const double*>(gamma), static_cast<const double*>(beta),
                       static_cast<double*>(y), static_cast<double*>(mean), static_cast<double*>(rstd), rows, n, eps);
  return "layerNorm: unsupported dtype";
}

std::string layernorm_backward(DType dtype, const void* x, const void* gamma, const void* mean, const void* rstd, const void* dy,
                               void* dx, void* dgamma, void* dbeta, int64_t rows, int64_t n) {
  if (dtype == DType::F32)
    return run_backward(static_cast<const float*>(x), static_cast<const float*>(gamma), static_cast<const float*>(mean),
                        static_cast<const float*>(rstd), static_cast<const float*>(dy), static_cast<float*>(dx),
                        static_cast<float*>(dgamma), static_cast<float*>(dbeta), rows, n);
  if (dtype == DType::F64)
    return run_backward(static_cast<const double*>(x), static_cast<const double*>(gamma), static_cast<const double*>(mean),
                        static_cast<const double*>(rstd), static_cast<const double*>(dy), static_cast<double*>(dx),
                        static_cast<double*>(dgamma), static_cast<double*>(dbeta), rows, n);
  return "layerNorm backward: unsupported dtype";
}

}  // namespace cuda
}  // namespace kiln
