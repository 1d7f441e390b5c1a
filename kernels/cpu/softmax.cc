// Softmax and log-softmax along the last axis of [rows, n], forward and backward.
// Stable: x - max before exp. A row that is entirely -inf has no mass to normalise: softmax
// gives 0s there and log-softmax gives -inf (lse = -inf), never NaN. A NaN anywhere in a row
// makes that row NaN. Rows are independent tasks; one row's passes stay in cache.
#include <cmath>
#include <limits>

#include "kernels.h"
#include "parallel.h"
#include "vmath.h"

namespace kiln {
namespace cpu {
namespace {

constexpr int64_t kSumBlock = 2048;

template <class T>
KILN_CLONES T row_max(const T* __restrict x, int64_t n) {
  T m = -std::numeric_limits<T>::infinity();
  int nan = 0;
#pragma omp simd reduction(max : m) reduction(| : nan)
  for (int64_t i = 0; i < n; ++i) { m = x[i] > m ? x[i] : m; nan |= x[i] != x[i]; }
  return nan ? std::numeric_limits<T>::quiet_NaN() : m;
}

template <class T>
KILN_CLONES void softmax_row(const T* __restrict x, T* __restrict y, int64_t n) {
  const T m = row_max(x, n);
  if (m == -std::numeric_limits<T>::infinity()) {
    for (int64_t i = 0; i < n; ++i) y[i] = T(0);
    return;
  }
  double s = 0;  // float lanes within a block, blocks added in double: long rows stay accurate
  for (int64_t b = 0; b < n; b += kSumBlock) {
    const int64_t e = n - b < kSumBlock ? n : b + kSumBlock;
    T bs = 0;
#pragma omp simd reduction(+ : bs)
    for (int64_t i = b; i < e; ++i) {
      T v = vmath::vexp(x[i] - m);
      y[i] = v;
      bs += v;
    }
    s += bs;
  }
  const T inv = static_cast<T>(1.0 / s);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] *= inv;
}

template <class T>
KILN_CLONES void log_softmax_row(const T* __restrict x, T* __restrict y, int64_t n) {
  const T m = row_max(x, n);
  if (m == -std::numeric_limits<T>::infinity()) {
    for (int64_t i = 0; i < n; ++i) y[i] = m;
    return;
  }
  double s = 0;
  for (int64_t b = 0; b < n; b += kSumBlock) {
    const int64_t e = n - b < kSumBlock ? n : b + kSumBlock;
    T bs = 0;
#pragma omp simd reduction(+ : bs)
    for (int64_t i = b; i < e; ++i) bs += vmath::vexp(x[i] - m);
    s += bs;
  }
  const T lse = static_cast<T>(m + std::log(s));
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] - lse;
}

template <class T>
KILN_CLONES void softmax_backward_row(const T* __restrict y, const T* __restrict dy,
                                      T* __restrict dx, int64_t n) {
  T dot = 0;
#pragma omp simd reduction(+ : dot)
  for (int64_t i = 0; i < n; ++i) dot += dy[i] * y[i];
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dx[i] = y[i] * (dy[i] - dot);
}

template <class T>
KILN_CLONES void log_softmax_backward_row(const T* __restrict y, const T* __restrict dy,
                                          T* __restrict dx, int64_t n) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += dy[i];
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] - vmath::vexp(y[i]) * s;
}

}  // namespace

template <class T>
void softmax_forward(const T* x, T* y, int64_t rows, int64_t n) {
  parallel_tasks(rows, rows * n * 4, [&](int64_t r) { softmax_row(x + r * n, y + r * n, n); });
}

template <class T>
void log_softmax_forward(const T* x, T* y, int64_t rows, int64_t n) {
  parallel_tasks(rows, rows * n * 4, [&](int64_t r) { log_softmax_row(x + r * n, y + r * n, n); });
}

template <class T>
void softmax_backward(const T* y, const T* dy, T* dx, int64_t rows, int64_t n) {
  parallel_tasks(rows, rows * n, [&](int64_t r) {
    softmax_backward_row(y + r * n, dy + r * n, dx + r * n, n);
  });
}

template <class T>
void log_softmax_backward(const T* y, const T* dy, T* dx, int64_t rows, int64_t n) {
  parallel_tasks(rows, rows * n * 4, [&](int64_t r) {
    log_softmax_backward_row(y + r * n, dy + r * n, dx + r * n, n);
  });
}

#define KILN_SOFTMAX_INSTANTIATE(T)                                                      \
  template void softmax_forward<T>(const T*, T*, int64_t, int64_t);                     \
  template void log_softmax_forward<T>(const T*, T*, int64_t, int64_t);                 \
  template void softmax_backward<T>(const T*, const T*, T*, int64_t, int64_t);          \
  template void log_softmax_backward<T>(const T*, const T*, T*, int64_t, int64_t);
KILN_SOFTMAX_INSTANTIATE(float)
KILN_SOFTMAX_INSTANTIATE(double)
#undef KILN_SOFTMAX_INSTANTIATE

}  // namespace cpu
}  // namespace kiln
