// Fused optimizer kernels (see optim.h). Elementwise and independent per element, so the result
// does not depend on the thread count; sum_squares reduces per fixed-size chunk, then in order.
#include "optim.h"

#include <cmath>
#include <vector>

#include "parallel.h"

namespace kiln {
namespace cpu {

namespace {
constexpr int64_t kChunk = 16384;

template <class F>
void chunked(int64_t n, int64_t workPerElem, F&& f) {
  int64_t chunks = (n + kChunk - 1) / kChunk;
  parallel_tasks(chunks, n * workPerElem, [&](int64_t c) {
    int64_t lo = c * kChunk, hi = lo + kChunk < n ? lo + kChunk : n;
    f(lo, hi);
  });
}
}  // namespace

template <class T>
KILN_CLONES void adam_rows(T* p, const T* g, T* m, T* v, int64_t lo, int64_t hi, T lr, T b1, T b2, T eps, T wd,
                           T stepSize, T rsqrtBc2, T decay, bool decoupled) {
  const T ob1 = T(1) - b1, ob2 = T(1) - b2;
  for (int64_t i = lo; i < hi; ++i) {
    T pi = p[i];
    T gi = g[i];
    if (decoupled) pi *= decay;
    else gi += wd * pi;
    T mi = b1 * m[i] + ob1 * gi;
    T vi = b2 * v[i] + ob2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    T denom = std::sqrt(vi) * rsqrtBc2 + eps;
    p[i] = pi - stepSize * (mi / denom);
  }
}

template <class T>
void adam_step(T* p, const T* g, T* m, T* v, int64_t n, double lr, double beta1, double beta2, double eps,
               double weightDecay, double bc1, double bc2, bool decoupled) {
  const T stepSize = T(lr / bc1), rsqrtBc2 = T(1.0 / std::sqrt(bc2)), decay = T(1.0 - lr * weightDecay);
  chunked(n, 8, [&](int64_t lo, int64_t hi) {
    adam_rows<T>(p, g, m, v, lo, hi, T(lr), T(beta1), T(beta2), T(eps), T(weightDecay), stepSize, rsqrtBc2, decay, decoupled);
  });
}

template <class T>
void sgd_step(T* p, const T* g, T* buf, int64_t n, double lr, double momentum, double dampening, double weightDecay,
              bool nesterov, bool first) {
  const T tlr = T(lr), mom = T(momentum), damp = T(1.0 - dampening), wd = T(weightDecay);
  chunked(n, 4, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      T gi = g[i] + wd * p[i];
      T d = gi;
      if (buf) {
        T b = first ? gi : mom * buf[i] + damp * gi;
        buf[i] = b;
        d = nesterov ? gi + mom * b : b;
      }
      p[i] -= tlr * d;
    }
  });
}

template <class T>
double sum_squares(const T* x, int64_t n) {
  int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> part(static_cast<size_t>(chunks), 0.0);
  parallel_tasks(chunks, n, [&](int64_t c) {
    int64_t lo = c * kChunk, hi = lo + kChunk < n ? lo + kChunk : n;
    double s = 0;
    for (int64_t i = lo; i < hi; ++i) s += double(x[i]) * double(x[i]);
    part[static_cast<size_t>(c)] = s;
  });
  double s = 0;
  for (double v : part) s += v;
  return s;
}

template <class T>
void scale_inplace(T* x, int64_t n, double s) {
  const T ts = T(s);
  chunked(n, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) x[i] *= ts;
  });
}

template <class T>
void ema_update(T* shadow, const T* p, int64_t n, double decay) {
  const T d = T(decay), od = T(1.0 - decay);
  chunked(n, 2, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) shadow[i] = d * shadow[i] + od * p[i];
  });
}

#define KILN_OPTIM_INSTANTIATE(T)                                                                                  \
  template void adam_step<T>(T*, const T*, T*, T*, int64_t, double, double, double, double, double, double, double, \
                             bool);                                                                               \
  template void sgd_step<T>(T*, const T*, T*, int64_t, double, double, double, double, bool, bool);                \
  template double sum_squares<T>(const T*, int64_t);                                                              \
  template void scale_inplace<T>(T*, int64_t, double);                                                            \
  template void ema_update<T>(T*, const T*, int64_t, double);
KILN_OPTIM_INSTANTIATE(float)
KILN_OPTIM_INSTANTIATE(double)

}  // namespace cpu
}  // namespace kiln
