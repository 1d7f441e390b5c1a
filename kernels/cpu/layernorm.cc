// Layer norm over the last axis of [rows, n]: forward saves mean and rstd; backward writes dx and
// dgamma/dbeta. dgamma/dbeta are deterministic and independent of the thread count: rows are cut
// into a fixed number of contiguous chunks (a function of the shape only), each chunk sums its rows
// in order into its own double buffer, and the buffers are added in chunk order.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels.h"
#include "parallel.h"

namespace kiln {
namespace cpu {
namespace {

constexpr int64_t kMaxChunks = 16;

template <class T>
KILN_CLONES void ln_forward_row(const T* __restrict x, const T* __restrict gamma,
                                const T* __restrict beta, T* __restrict y, T* mean_out,
                                T* rstd_out, int64_t n, T eps) {
  double s = 0;  // float lanes within a block, blocks added in double: long rows stay accurate
  for (int64_t b = 0; b < n; b += 2048) {
    const int64_t e = n - b < 2048 ? n : b + 2048;
    T bs = 0;
#pragma omp simd reduction(+ : bs)
    for (int64_t i = b; i < e; ++i) bs += x[i];
    s += bs;
  }
  const T mean = static_cast<T>(s / static_cast<double>(n));
  double v = 0;  // two-pass variance: no cancellation when |mean| >> std
  for (int64_t b = 0; b < n; b += 2048) {
    const int64_t e = n - b < 2048 ? n : b + 2048;
    T bv = 0;
#pragma omp simd reduction(+ : bv)
    for (int64_t i = b; i < e; ++i) { T d = x[i] - mean; bv += d * d; }
    v += bv;
  }
  const T rstd = static_cast<T>(1.0 / std::sqrt(v / static_cast<double>(n) + static_cast<double>(eps)));
  *mean_out = mean;
  *rstd_out = rstd;
  if (gamma && beta) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mean) * rstd * gamma[i] + beta[i];
  } else if (gamma) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mean) * rstd * gamma[i];
  } else if (beta) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mean) * rstd + beta[i];
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mean) * rstd;
  }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma, xhat = (x - mean) * rstd.
// pg/pb (may be null) accumulate dy * xhat and dy for dgamma/dbeta.
template <class T>
KILN_CLONES void ln_backward_row(const T* __restrict x, const T* __restrict gamma,
                                 const T* __restrict dy, T* __restrict dx, double* __restrict pg,
                                 double* __restrict pb, T mean, T rstd, int64_t n) {
  T sg = 0, sgx = 0;
  if (gamma) {
#pragma omp simd reduction(+ : sg, sgx)
    for (int64_t i = 0; i < n; ++i) {
      T g = dy[i] * gamma[i];
      sg += g;
      sgx += g * ((x[i] - mean) * rstd);
    }
  } else {
#pragma omp simd reduction(+ : sg, sgx)
    for (int64_t i = 0; i < n; ++i) {
      sg += dy[i];
      sgx += dy[i] * ((x[i] - mean) * rstd);
    }
  }
  const T a = sg / static_cast<T>(n), b = sgx / static_cast<T>(n);
  if (gamma) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      T xhat = (x[i] - mean) * rstd;
      dx[i] = rstd * (dy[i] * gamma[i] - a - xhat * b);
    }
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      T xhat = (x[i] - mean) * rstd;
      dx[i] = rstd * (dy[i] - a - xhat * b);
    }
  }
  if (pg) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) pg[i] += static_cast<double>(dy[i] * ((x[i] - mean) * rstd));
  }
  if (pb) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) pb[i] += static_cast<double>(dy[i]);
  }
}

}  // namespace

template <class T>
void layernorm_forward(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd,
                       int64_t rows, int64_t n, T eps) {
  if (n <= 0) return;
  parallel_tasks(rows, rows * n * 3, [&](int64_t r) {
    ln_forward_row(x + r * n, gamma, beta, y + r * n, mean + r, rstd + r, n, eps);
  });
}

template <class T>
void layernorm_backward(const T* x, const T* gamma, const T* mean, const T* rstd, const T* dy,
                        T* dx, T* dgamma, T* dbeta, int64_t rows, int64_t n) {
  if (n <= 0) return;
  if (rows <= 0) {
    if (dgamma) std::fill(dgamma, dgamma + n, T(0));
    if (dbeta) std::fill(dbeta, dbeta + n, T(0));
    return;
  }
  const int64_t work = rows * n * 4;
  const int64_t chunks = work > kParallelGrain ? std::min(kMaxChunks, rows) : 1;
  std::vector<double> pg(dgamma ? chunks * n : 0), pb(dbeta ? chunks * n : 0);
  parallel_tasks(chunks, work, [&](int64_t c) {
    const int64_t r0 = c * rows / chunks, r1 = (c + 1) * rows / chunks;
    double* g = dgamma ? &pg[c * n] : nullptr;
    double* b = dbeta ? &pb[c * n] : nullptr;
    for (int64_t r = r0; r < r1; ++r)
      ln_backward_row(x + r * n, gamma, dy + r * n, dx + r * n, g, b, mean[r], rstd[r], n);
  });
  // Chunk order is fixed, so the sum is the same however many threads ran the chunks.
  const int64_t cols = (n + 255) / 256;
  parallel_tasks(cols, chunks * n, [&](int64_t t) {
    const int64_t j0 = t * 256, j1 = std::min(n, j0 + 256);
    for (int64_t j = j0; j < j1; ++j) {
      double sg = 0, sb = 0;
      for (int64_t c = 0; c < chunks; ++c) {
        if (dgamma) sg += pg[c * n + j];
        if (dbeta) sb += pb[c * n + j];
      }
      if (dgamma) dgamma[j] = static_cast<T>(sg);
      if (dbeta) dbeta[j] = static_cast<T>(sb);
    }
  });
}

template void layernorm_forward<float>(const float*, const float*, const float*, float*, float*,
                                       float*, int64_t, int64_t, float);
template void layernorm_forward<double>(const double*, const double*, const double*, double*,
                                        double*, double*, int64_t, int64_t, double);
template void layernorm_backward<float>(const float*, const float*, const float*, const float*,
                                        const float*, float*, float*, float*, int64_t, int64_t);
template void layernorm_backward<double>(const double*, const double*, const double*,
                                         const double*, const double*, double*, double*, double*,
                                         int64_t, int64_t);

}  // namespace cpu
}  // namespace kiln
