// Fused log-softmax + NLL over logits [N, C] with integer targets, forward and backward.
// Forward makes two passes over a row (max and sum of logits; then sum of exp(x - max)) and saves
// lse for the backward, which is then one pass: dlogits = dloss * (exp(x - lse) - smoothed one-hot).
// Ignored rows (target == ignoreIndex) have loss 0 and zero gradient; their lse is still written.
// An all -inf row has lse = -inf (its loss is then NaN: no class has any probability).
#include <cmath>
#include <limits>

#include "kernels.h"
#include "parallel.h"
#include "vmath.h"

namespace kiln {
namespace cpu {
namespace {

template <class T>
KILN_CLONES void ce_forward_row(const T* __restrict x, int32_t t, T* loss, T* lse_out, int64_t C,
                                int32_t ignoreIndex, T s) {
  T m = -std::numeric_limits<T>::infinity(), sum = 0;
  int nan = 0;
#pragma omp simd reduction(max : m) reduction(+ : sum) reduction(| : nan)
  for (int64_t i = 0; i < C; ++i) {
    m = x[i] > m ? x[i] : m;
    sum += x[i];
    nan |= x[i] != x[i];
  }
  if (nan) m = std::numeric_limits<T>::quiet_NaN();
  T lse = m;
  // The smoothing term mean_i(-log p_i) = lse - mean(x); with a finite max it is taken as
  // log(se) - mean(x - m), so that a large common offset of the logits does not cancel.
  T smooth = lse - sum / static_cast<T>(C);
  if (m - m == 0) {  // finite max: the usual stable path; otherwise lse is +-inf or NaN already
    double se = 0, sd = 0;  // float lanes within a block, blocks added in double
    for (int64_t b = 0; b < C; b += 2048) {
      const int64_t e = C - b < 2048 ? C : b + 2048;
      T bs = 0, bd = 0;
      if (s != T(0)) {
#pragma omp simd reduction(+ : bs, bd)
        for (int64_t i = b; i < e; ++i) {
          bs += vmath::vexp(x[i] - m);
          bd += x[i] - m;
        }
      } else {
#pragma omp simd reduction(+ : bs)
        for (int64_t i = b; i < e; ++i) bs += vmath::vexp(x[i] - m);
      }
      se += bs;
      sd += bd;
    }
    lse = static_cast<T>(m + std::log(se));
    smooth = static_cast<T>(std::log(se) - sd / static_cast<double>(C));
  }
  *lse_out = lse;
  if (t == ignoreIndex) {
    *loss = T(0);
    return;
  }
  const T nll = lse - x[t];
  *loss = s != T(0) ? (T(1) - s) * nll + s * smooth : nll;
}

template <class T>
KILN_CLONES void ce_backward_row(const T* __restrict x, int32_t t, T lse, T dl, T* __restrict dx,
                                 int64_t C, int32_t ignoreIndex, T s) {
  if (t == ignoreIndex) {
    for (int64_t i = 0; i < C; ++i) dx[i] = T(0);
    return;
  }
  const T off = dl * s / static_cast<T>(C);  // smoothing mass spread over every class
#pragma omp simd
  for (int64_t i = 0; i < C; ++i) dx[i] = dl * vmath::vexp(x[i] - lse) - off;
  dx[t] -= dl * (T(1) - s);
}

}  // namespace

template <class T>
void cross_entropy_forward(const T* logits, const int32_t* targets, T* losses, T* lse, int64_t N,
                           int64_t C, int32_t ignoreIndex, T labelSmoothing) {
  parallel_tasks(N, N * C * 4, [&](int64_t i) {
    ce_forward_row(logits + i * C, targets[i], losses + i, lse + i, C, ignoreIndex, labelSmoothing);
  });
}

template <class T>
void cross_entropy_backward(const T* logits, const int32_t* targets, const T* lse, const T* dloss,
                            T* dlogits, int64_t N, int64_t C, int32_t ignoreIndex, T labelSmoothing) {
  parallel_tasks(N, N * C * 4, [&](int64_t i) {
    ce_backward_row(logits + i * C, targets[i], lse[i], dloss[i], dlogits + i * C, C, ignoreIndex,
                    labelSmoothing);
  });
}

template void cross_entropy_forward<float>(const float*, const int32_t*, float*, float*, int64_t,
                                           int64_t, int32_t, float);
template void cross_entropy_forward<double>(const double*, const int32_t*, double*, double*,
                                            int64_t, int64_t, int32_t, double);
template void cross_entropy_backward<float>(const float*, const int32_t*, const float*,
                                            const float*, float*, int64_t, int64_t, int32_t, float);
template void cross_entropy_backward<double>(const double*, const int32_t*, const double*,
                                             const double*, double*, int64_t, int64_t, int32_t,
                                             double);

}  // namespace cpu
}  // namespace kiln
