// Contrastive losses without the similarity matrix: row blocks of queries meet column tiles of keys
// through the packed GEMM, a tile at a time; the forward keeps an online logsumexp per row, the
// backward recomputes each tile (the Inf-CL approach), so memory is O(rows * dim + tile).
// Each task owns a fixed block of output rows, so results do not depend on the thread count.
#include "contrastive.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels.h"
#include "parallel.h"
#include "vmath.h"

namespace kiln {
namespace cpu {
namespace {

constexpr int64_t kRowBlock = 128;  // queries per task
constexpr int64_t kColBlock = 256;  // keys per tile

template <class T>
T neg_inf() { return -std::numeric_limits<T>::infinity(); }

// exp that returns 0 instead of a subnormal, and never forms one inside exp_f either: far-off
// logits would otherwise take the slow subnormal path (measured: 3x on dot-product similarities).
inline float exp_flush(float x) {
  const bool tiny = x < -87.0f;
  return vmath::select_f(tiny, 0.0f, vmath::exp_f(vmath::select_f(tiny, 0.0f, x)));
}
inline double exp_flush(double x) { return std::exp(x); }

template <class T>
KILN_CLONES T dot(const T* __restrict a, const T* __restrict b, int64_t n) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

template <class T>
KILN_CLONES T range_max(const T* __restrict x, int64_t lo, int64_t hi, T m) {
#pragma omp simd reduction(max : m)
  for (int64_t j = lo; j < hi; ++j) m = x[j] > m ? x[j] : m;
  return m;
}

// The exp loops compute scale x_j - mx with scale x_j rounded, as the row max mx = scale x_max was:
// contracted into one FMA, the max element's argument is the product's rounding error (up to half
// an ulp of mx, past -87 once |mx| > ~1e9 in float32) instead of 0, its exp flushes to 0 and the
// logsumexp of a finite row becomes -inf.
#define KILN_NO_CONTRACT __attribute__((optimize("fp-contract=off")))

// sum += exp(scale x_j - mx), ssum += exp(scale x_j - mx) * x_j over [lo, hi).
template <class T>
KILN_CLONES KILN_NO_CONTRACT void range_expsum(const T* __restrict x, int64_t lo, int64_t hi, T scale, T mx, T* sum, T* ssum) {
  T s = 0, ss = 0;
#pragma omp simd reduction(+ : s, ss)
  for (int64_t j = lo; j < hi; ++j) {
    T e = exp_flush(scale * x[j] - mx);
    s += e;
    ss += e * x[j];
  }
  *sum += s;
  *ssum += ss;
}

// Online logsumexp of one tile row, skipping column d (d < 0: none).
template <class T>
void row_update(const T* x, int64_t n, int64_t d, T scale, T& mx, T& sum, T& ssum) {
  const int64_t a = d < 0 ? n : d, b = d < 0 ? n : d + 1;
  T tmax = range_max(x, int64_t(0), a, neg_inf<T>());
  tmax = range_max(x, b, n, tmax);
  if (tmax == neg_inf<T>()) return;
  const T mnew = std::max(mx, scale * tmax);
  if (mx != neg_inf<T>()) {
    const T corr = vmath::vexp(mx - mnew);
    sum *= corr;
    ssum *= corr;
  }
  mx = mnew;
  range_expsum(x, int64_t(0), a, scale, mx, &sum, &ssum);
  range_expsum(x, b, n, scale, mx, &sum, &ssum);
}

// g[j] = c * exp(scale x_j - l).
template <class T>
KILN_CLONES void grad_row(const T* __restrict x, T* __restrict g, int64_t n, T scale, T c, T l) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) g[j] = c * exp_flush(scale * x[j] - l);
}

// g[j] = ca exp(scale x_j - la) + cb_j exp(scale x_j - lb_j): row a of dL plus column a of dL^T.
template <class T>
KILN_CLONES void grad_row_sym(const T* __restrict x, T* __restrict g, int64_t n, T scale, T ca, T la,
                              const T* __restrict cb, const T* __restrict lb) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const T sx = scale * x[j];
    g[j] = ca * exp_flush(sx - la) + cb[j] * exp_flush(sx - lb[j]);
  }
}

// Rows of x scaled to unit L2 norm (norm clamped at 1e-12 like F.normalize); norms kept.
template <class T>
void normalize_rows(const T* x, T* y, T* norms, int64_t rows, int64_t dim) {
  parallel_tasks(rows, rows * dim, [&](int64_t i) {
    const T* xr = x + i * dim;
    T nrm = std::sqrt(dot(xr, xr, dim));
    if (std::isinf(nrm)) {  // the squares overflowed: |x| = m |x / m| with m = max |x_d|
      T m = 0;
      for (int64_t d = 0; d < dim; ++d) m = std::max(m, std::abs(xr[d]));
      if (std::isfinite(m)) {
        T s = 0;
        for (int64_t d = 0; d < dim; ++d) s += (xr[d] / m) * (xr[d] / m);
        nrm = m * std::sqrt(s);
      }
    }
    norms[i] = nrm;
    const T inv = T(1) / std::max(nrm, T(1e-12));
    T* yr = y + i * dim;
    for (int64_t d = 0; d < dim; ++d) yr[d] = xr[d] * inv;
  });
}

// In place: dy (gradient w.r.t. y = x / |x|) becomes the gradient w.r.t. x.
template <class T>
void normalize_backward(const T* y, const T* norms, T* g, int64_t rows, int64_t dim) {
  parallel_tasks(rows, rows * dim, [&](int64_t i) {
    const T* yr = y + i * dim;
    T* gr = g + i * dim;
    const T n = norms[i];
    if (n > T(1e-12)) {
      const T p = dot(yr, gr, dim), inv = T(1) / n;
      for (int64_t d = 0; d < dim; ++d) gr[d] = (gr[d] - yr[d] * p) * inv;
    } else {
      for (int64_t d = 0; d < dim; ++d) gr[d] *= T(1e12);
    }
  });
}

// out [cols, rows] = in [rows, cols] transposed.
template <class T>
void transpose(const T* in, T* out, int64_t rows, int64_t cols) {
  constexpr int64_t kB = 32;
  parallel_tasks((rows + kB - 1) / kB, rows * cols, [&](int64_t b) {
    const int64_t r0 = b * kB, r1 = std::min(rows, r0 + kB);
    for (int64_t c = 0; c < cols; ++c)
      for (int64_t r = r0; r < r1; ++r) out[c * rows + r] = in[r * cols + c];
  });
}

// The operands after normalisation (cosine) or as given (dot), and their transposes [dim, rows]:
// tiles then multiply by a plain (not transposed) B, which the GEMM packs faster.
template <class T>
struct Operands {
  const T* q;
  const T* k;
  const T* qt = nullptr;
  const T* kt = nullptr;
  std::vector<T> qn, kn, qnorm, knorm, qtb, ktb;
  Operands(const NceSpec& s, const T* q0, const T* k0, bool needQt) : q(q0), k(s.shared ? q0 : k0) {
    normalise(s, q0, k0);
    const int64_t n = s.rows * s.dim;
    ktb.resize(n);
    transpose(k, ktb.data(), s.rows, s.dim);
    kt = ktb.data();
    if (needQt && !s.shared) {
      qtb.resize(n);
      transpose(q, qtb.data(), s.rows, s.dim);
      qt = qtb.data();
    }
  }
  void normalise(const NceSpec& s, const T* q0, const T* k0) {
    if (!s.cosine) return;
    const int64_t n = s.rows * s.dim;
    qn.resize(n);
    qnorm.resize(s.rows);
    normalize_rows(q0, qn.data(), qnorm.data(), s.rows, s.dim);
    q = qn.data();
    k = q;
    if (!s.shared) {
      kn.resize(n);
      knorm.resize(s.rows);
      normalize_rows(k0, kn.data(), knorm.data(), s.rows, s.dim);
      k = kn.data();
    }
  }
};

// S[m, n] = A[i0 : i0 + m] * B[j0 : j0 + n]^T on one thread; Bt is B transposed ([dim, rows]).
template <class T>
void tile_sim(const T* A, int64_t i0, int64_t m, const T* Bt, int64_t rows, int64_t j0, int64_t n, int64_t dim, T* S) {
  gemm<T>(1, false, false, m, n, dim, T(1), A + i0 * dim, dim, 0, Bt + j0, rows, 0, T(0), S, n, 0);
}

inline int64_t pos_of(const NceSpec& s, int64_t i) { return (i + s.shift) % s.rows; }
inline bool in(int64_t x, int64_t lo, int64_t n) { return x >= lo && x < lo + n; }

}  // namespace

template <class T>
void nce_forward(const NceSpec& s, const T* q0, const T* k0, T* loss, T* lse, T* esim, T* tsim) {
  const int64_t R = s.rows, D = s.dim;
  if (R == 0) return;
  Operands<T> o(s, q0, k0, false);
  const T scale = T(s.scale), wpos = T(s.w_pos), wself = T(s.w_self), wsum = wpos + wself;
  const int64_t tasks = (R + kRowBlock - 1) / kRowBlock;
  parallel_tasks(tasks, R * R * D / 8, [&](int64_t task) {
    const int64_t i0 = task * kRowBlock, m = std::min(kRowBlock, R - i0);
    std::vector<T> S(static_cast<size_t>(kRowBlock * std::min(kColBlock, R)));
    T mx[kRowBlock], sum[kRowBlock], ssum[kRowBlock];
    for (int64_t a = 0; a < m; ++a) mx[a] = neg_inf<T>(), sum[a] = 0, ssum[a] = 0;
    for (int64_t j0 = 0; j0 < R; j0 += kColBlock) {
      const int64_t n = std::min(kColBlock, R - j0);
      tile_sim(o.q, i0, m, o.kt, R, j0, n, D, S.data());
      for (int64_t a = 0; a < m; ++a) {
        const int64_t i = i0 + a;
        const int64_t d = (s.mask_self && in(i, j0, n)) ? i - j0 : -1;
        row_update(S.data() + a * n, n, d, scale, mx[a], sum[a], ssum[a]);
      }
    }
    for (int64_t a = 0; a < m; ++a) {
      const int64_t i = i0 + a;
      const T l = mx[a] + vmath::vlog(sum[a]);
      const T* qi = o.q + i * D;
      T t = 0;
      if (wpos != T(0)) t += wpos * dot(qi, o.k + pos_of(s, i) * D, D);
      if (wself != T(0)) t += wself * dot(qi, o.k + i * D, D);
      lse[i] = l;
      esim[i] = ssum[a] / sum[a];
      tsim[i] = t;
      loss[i] = wsum * l - scale * t;
    }
  });
}

template <class T>
void nce_backward(const NceSpec& s, const T* q0, const T* k0, const T* lse, const T* grow, T* dq, T* dk) {
  const int64_t R = s.rows, D = s.dim;
  if (R == 0) return;
  Operands<T> o(s, q0, k0, true);
  const T scale = T(s.scale), wpos = T(s.w_pos), wself = T(s.w_self), wsum = wpos + wself;
  // c[i] = d total / d sim(i, .) per unit of probability: grow_i * scale.
  std::vector<T> c(static_cast<size_t>(R)), cw(static_cast<size_t>(R));
  for (int64_t i = 0; i < R; ++i) c[i] = grow[i] * scale, cw[i] = c[i] * wsum;
  const int64_t tasks = (R + kRowBlock - 1) / kRowBlock;
  const int64_t cb = std::min(kColBlock, R);

  // Row pass: dq_I = sum_J G_IJ k_J, with G = dL (+ dL^T when k is q).
  parallel_tasks(tasks, R * R * D / 4, [&](int64_t task) {
    const int64_t i0 = task * kRowBlock, m = std::min(kRowBlock, R - i0);
    std::vector<T> S(static_cast<size_t>(kRowBlock * cb)), G(static_cast<size_t>(kRowBlock * cb));
    for (int64_t j0 = 0; j0 < R; j0 += kColBlock) {
      const int64_t n = std::min(kColBlock, R - j0);
      tile_sim(o.q, i0, m, o.kt, R, j0, n, D, S.data());
      for (int64_t a = 0; a < m; ++a) {
        const int64_t i = i0 + a;
        T* g = G.data() + a * n;
        if (s.shared) grad_row_sym(S.data() + a * n, g, n, scale, cw[i], lse[i], cw.data() + j0, lse + j0);
        else grad_row(S.data() + a * n, g, n, scale, cw[i], lse[i]);
        if (s.mask_self && in(i, j0, n)) g[i - j0] = 0;
        const int64_t p = pos_of(s, i);
        if (in(p, j0, n)) g[p - j0] -= c[i] * wpos;
        if (in(i, j0, n)) g[i - j0] -= c[i] * wself;
      }
      if (s.shared) {  // the dL^T half: column j's own targets land in rows of this block
        for (int64_t b = 0; b < n; ++b) {
          const int64_t j = j0 + b, p = pos_of(s, j);
          if (in(p, i0, m)) G[(p - i0) * n + b] -= c[j] * wpos;
          if (in(j, i0, m)) G[(j - i0) * n + b] -= c[j] * wself;
        }
      }
      gemm<T>(1, false, false, m, D, n, T(1), G.data(), n, 0, o.k + j0 * D, D, 0, j0 == 0 ? T(0) : T(1),
              dq + i0 * D, D, 0);
    }
  });
  if (s.cosine) normalize_backward(o.q, o.qnorm.data(), dq, R, D);
  if (s.shared) return;

  // Column pass: dk_J = sum_I dL_IJ^T q_I, the tiles recomputed transposed.
  parallel_tasks(tasks, R * R * D / 4, [&](int64_t task) {
    const int64_t j0 = task * kRowBlock, n = std::min(kRowBlock, R - j0);
    std::vector<T> S(static_cast<size_t>(kRowBlock * cb)), G(static_cast<size_t>(kRowBlock * cb));
    for (int64_t i0 = 0; i0 < R; i0 += kColBlock) {
      const int64_t m = std::min(kColBlock, R - i0);
      tile_sim(o.k, j0, n, o.qt, R, i0, m, D, S.data());  // S[b, a] = sim(q_{i0+a}, k_{j0+b})
      for (int64_t b = 0; b < n; ++b) {
        T* g = G.data() + b * m;
        const T* x = S.data() + b * m;
#pragma omp simd
        for (int64_t a = 0; a < m; ++a) g[a] = cw[i0 + a] * exp_flush(scale * x[a] - lse[i0 + a]);
      }
      for (int64_t a = 0; a < m; ++a) {
        const int64_t i = i0 + a, p = pos_of(s, i);
        if (s.mask_self && in(i, j0, n)) G[(i - j0) * m + a] = 0;
        if (in(p, j0, n)) G[(p - j0) * m + a] -= c[i] * wpos;
        if (in(i, j0, n)) G[(i - j0) * m + a] -= c[i] * wself;
      }
      gemm<T>(1, false, false, n, D, m, T(1), G.data(), m, 0, o.q + i0 * D, D, 0, i0 == 0 ? T(0) : T(1),
              dk + j0 * D, D, 0);
    }
  });
  if (s.cosine) normalize_backward(o.k, o.knorm.data(), dk, R, D);
}

// ---- DISSL terms: rows of [n, c] logits ----

namespace {
// p = softmax(x / tau) into p, returns nothing; lp = log_softmax(x / tau) when lp is not null.
template <class T>
KILN_CLONES KILN_NO_CONTRACT void softmax_tau(const T* __restrict x, T* __restrict p, T* __restrict lp, int64_t c, T tau) {
  const T inv = T(1) / tau;
  T m = neg_inf<T>();
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < c; ++j) m = std::max(m, x[j] * inv);
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < c; ++j) {
    T e = vmath::vexp(x[j] * inv - m);
    p[j] = e;
    s += e;
  }
  const T rs = T(1) / s, ls = m + vmath::vlog(s);
#pragma omp simd
  for (int64_t j = 0; j < c; ++j) p[j] *= rs;
  if (lp) {
#pragma omp simd
    for (int64_t j = 0; j < c; ++j) lp[j] = x[j] * inv - ls;
  }
}
}  // namespace

template <class T>
void dissl_ce_forward(const T* t, const T* s, T* loss, int64_t n, int64_t c, T tau_t, T tau_s) {
  parallel_tasks(n, n * c * 4, [&](int64_t i) {
    std::vector<T> p(c), q(c), lq(c);
    softmax_tau(t + i * c, p.data(), static_cast<T*>(nullptr), c, tau_t);
    softmax_tau(s + i * c, q.data(), lq.data(), c, tau_s);
    loss[i] = -dot(p.data(), lq.data(), c);
  });
}

template <class T>
void dissl_ce_backward(const T* t, const T* s, const T* g, T* dt, T* ds, int64_t n, int64_t c, T tau_t, T tau_s) {
  parallel_tasks(n, n * c * 4, [&](int64_t i) {
    std::vector<T> p(c), q(c), lq(c);
    softmax_tau(t + i * c, p.data(), static_cast<T*>(nullptr), c, tau_t);
    softmax_tau(s + i * c, q.data(), lq.data(), c, tau_s);
    const T gi = g[i];
    if (ds) {
      T* d = ds + i * c;
      for (int64_t j = 0; j < c; ++j) d[j] = gi * (q[j] - p[j]) / tau_s;
    }
    if (dt) {  // d(-sum p log q)/dt = -(1/tau_t) p (log q - sum p log q)
      const T e = dot(p.data(), lq.data(), c);
      T* d = dt + i * c;
      for (int64_t j = 0; j < c; ++j) d[j] = -gi * p[j] * (lq[j] - e) / tau_t;
    }
  });
}

template <class T>
void mean_entropy_forward(const T* t, T* pbar, T* h, int64_t n, int64_t c, T tau) {
  // Fixed row chunks summed in order: the same result on any thread count.
  constexpr int64_t kRows = 64;
  const int64_t chunks = (n + kRows - 1) / kRows;
  std::vector<T> part(static_cast<size_t>(chunks * c), T(0));
  parallel_tasks(chunks, n * c * 4, [&](int64_t k) {
    std::vector<T> p(c);
    T* acc = part.data() + k * c;
    for (int64_t i = k * kRows; i < std::min(n, (k + 1) * kRows); ++i) {
      softmax_tau(t + i * c, p.data(), static_cast<T*>(nullptr), c, tau);
      for (int64_t j = 0; j < c; ++j) acc[j] += p[j];
    }
  });
  T H = 0;
  for (int64_t j = 0; j < c; ++j) {
    T v = 0;
    for (int64_t k = 0; k < chunks; ++k) v += part[k * c + j];
    v /= T(n);
    pbar[j] = v;
    if (!(v <= T(0))) H -= v * std::log(v);  // a NaN in the logits stays NaN
  }
  *h = H;
}

template <class T>
void mean_entropy_backward(const T* t, const T* pbar, T g, T* dt, int64_t n, int64_t c, T tau) {
  // dH/dpbar_j = -(log pbar_j + 1); pbar = mean_i p_i; dp_i/dt_i = (diag p_i - p_i p_i^T) / tau.
  std::vector<T> u(c);
  for (int64_t j = 0; j < c; ++j) u[j] = !(pbar[j] <= T(0)) ? -g * (std::log(pbar[j]) + T(1)) / T(n) : T(0);
  parallel_tasks(n, n * c * 4, [&](int64_t i) {
    T* d = dt + i * c;
    softmax_tau(t + i * c, d, static_cast<T*>(nullptr), c, tau);
    const T e = dot(d, u.data(), c);
    for (int64_t j = 0; j < c; ++j) d[j] = d[j] * (u[j] - e) / tau;
  });
}

#define KILN_INSTANTIATE(T)                                                                              \
  template void nce_forward<T>(const NceSpec&, const T*, const T*, T*, T*, T*, T*);                    \
  template void nce_backward<T>(const NceSpec&, const T*, const T*, const T*, const T*, T*, T*);       \
  template void dissl_ce_forward<T>(const T*, const T*, T*, int64_t, int64_t, T, T);                   \
  template void dissl_ce_backward<T>(const T*, const T*, const T*, T*, T*, int64_t, int64_t, T, T);    \
  template void mean_entropy_forward<T>(const T*, T*, T*, int64_t, int64_t, T);                        \
  template void mean_entropy_backward<T>(const T*, const T*, T, T*, int64_t, int64_t, T);
KILN_INSTANTIATE(float)
KILN_INSTANTIATE(double)
#undef KILN_INSTANTIATE

}  // namespace cpu
}  // namespace kiln
