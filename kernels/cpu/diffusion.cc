// Fused diffusion steps: one pass over x (and the model output) per step, the Gaussian noise drawn
// in place from the Philox stream in chunks, so a step reads its inputs once and writes once.
// Chunks are fixed ranges of elements, so results do not depend on the thread count.
#include "random_dist.h"
#include "diffusion.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels.h"
#include "parallel.h"
#include "philox.h"
#include "vmath.h"

namespace kiln {
namespace cpu {
namespace {

constexpr int64_t kChunk = 2048;  // elements per task; even, so normal pairs never straddle tasks

// z[i] = normal element (e0 + i) of the stream, i in [0, count); e0 even, count even.
template <class T>
KILN_CLONES void normals(uint64_t seed, uint64_t offset, int64_t e0, int64_t count, uint32_t* w, T* z) {
  const uint64_t w0 = offset + static_cast<uint64_t>(e0);
  if ((w0 & 3) == 0) {
    const uint64_t b0 = w0 >> 2;
    const int64_t nb = count >> 2;
#pragma omp simd
    for (int64_t b = 0; b < nb; ++b) {
      philox::Words4 r = philox::stream_block(seed, b0 + b);
      w[4 * b + 0] = r.v[0];
      w[4 * b + 1] = r.v[1];
      w[4 * b + 2] = r.v[2];
      w[4 * b + 3] = r.v[3];
    }
    for (int64_t i = 4 * nb; i < count; ++i) w[i] = philox::stream_word(seed, w0 + i);
  } else {
    for (int64_t i = 0; i < count; ++i) w[i] = philox::stream_word(seed, w0 + i);
  }
  const int64_t pairs = count / 2;
#pragma omp simd
  for (int64_t j = 0; j < pairs; ++j) {
    T z0, z1;
    box_muller(unit_open0<T>(w[2 * j]), unit<T>(w[2 * j + 1]), &z0, &z1);
    z[2 * j] = z0;
    z[2 * j + 1] = z1;
  }
}

template <class T>
struct Coef {
  T a0, a1, b0, b1, c0, c1, c2, sigma;
};

// One run of elements that share a row's coefficients.
template <class T>
KILN_CLONES void step_run(const Coef<T> k, bool clip, T lo, T hi, const T* __restrict x, const T* __restrict y,
                          const T* __restrict z, T* __restrict out, T* __restrict x0o, int64_t n) {
  const bool hasY = y != nullptr, hasZ = z != nullptr;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const T xv = x[i];
    T x0 = k.a0 * xv + (hasY ? k.a1 * y[i] : T(0));
    if (clip) x0 = std::min(std::max(x0, lo), hi);
    const T e = k.b0 * xv + k.b1 * x0;
    T o = k.c0 * xv + k.c1 * x0 + k.c2 * e;
    if (hasZ) o += k.sigma * z[i];
    out[i] = o;
    if (x0o) x0o[i] = x0;
  }
}

}  // namespace

template <class T>
void diffusion_step(const DiffusionSpec& s, const double* coef, const T* x, const T* y, const T* noise, T* out,
                    T* x0_out, T* noise_out) {
  const int64_t n = s.rows * s.inner;
  if (n == 0) return;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  parallel_tasks(chunks, n * 6, [&](int64_t ch) {
    const int64_t e0 = ch * kChunk, count = std::min(kChunk, n - e0);
    uint32_t w[kChunk];
    T zbuf[kChunk];
    const T* z = nullptr;
    // Rows in this chunk that need noise decide whether it is drawn at all.
    bool need = false;
    for (int64_t r = e0 / s.inner; r <= (e0 + count - 1) / s.inner && !need; ++r) need = coef[r * 8 + 7] != 0;
    if (s.noise == NoiseSource::Given) {
      z = noise + e0;
    } else if (s.noise == NoiseSource::Philox && (need || noise_out)) {
      normals<T>(s.seed, s.offset, e0, (count + 1) & ~int64_t(1), w, zbuf);
      z = zbuf;
    }
    if (noise_out && z) std::copy(z, z + count, noise_out + e0);
    for (int64_t i = e0; i < e0 + count;) {
      const int64_t r = i / s.inner, end = std::min(e0 + count, (r + 1) * s.inner);
      const double* c = coef + r * 8;
      Coef<T> k{T(c[0]), T(c[1]), T(c[2]), T(c[3]), T(c[4]), T(c[5]), T(c[6]), T(c[7])};
      const bool useZ = z && k.sigma != T(0);
      step_run(k, s.clip, T(s.lo), T(s.hi), x + i, y ? y + i : nullptr, useZ ? z + (i - e0) : nullptr, out + i,
               x0_out ? x0_out + i : nullptr, end - i);
      i = end;
    }
  });
}

namespace {
constexpr int64_t kQueryBlock = 64;
constexpr int64_t kVocabBlock = 512;

// One query row's search state. The scores sc_j = |E_j|^2 - 2 <x, E_j> come from a GEMM whose
// rounding can reorder rows that lie close together (in float32, |E|^2 and 2 <x, E> cancel): every
// row whose score is within the two scores' error bounds of the best score so far is a candidate,
// and candidates are ranked by the squared distance |x - E_j|^2 summed in double. The nearest row
// is always a candidate when its turn comes (its score is at most the best so far plus both
// bounds), so the answer is the row of least distance, the first one on ties.
template <class T>
struct Nearest {
  T approx = std::numeric_limits<T>::infinity();  // least score so far
  T approxTol = 0;                                // its error bound
  double exact = std::numeric_limits<double>::infinity();
  int64_t arg = 0;
};

template <class T>
KILN_CLONES void tile_nearest(const T* __restrict dotv, const T* __restrict en, int64_t n, int64_t base, const T* __restrict xr,
                              const T* __restrict E, int64_t d, double xnorm, Nearest<T>& st) {
  // |error of a score| <= (d + 5) eps (|E_j|^2 + 2 |x| |E_j|): the dot product's and the norm's sums
  // of d terms, and the subtraction.
  const T c = T(d + 5) * std::numeric_limits<T>::epsilon();
  Nearest<T> s = st;
  for (int64_t j = 0; j < n; ++j) {
    const T sc = en[j] - T(2) * dotv[j];
    const T tol = c * (en[j] + T(2 * xnorm) * std::sqrt(en[j]));
    if (!(sc <= s.approx + s.approxTol + tol)) continue;  // NaN scores (a NaN in E_j) never win
    const T* e = E + (base + j) * d;
    double dist = 0;
    for (int64_t k = 0; k < d; ++k) {
      const double t = double(xr[k]) - double(e[k]);
      dist += t * t;
    }
    if (dist < s.exact) s.exact = dist, s.arg = base + j;
    if (sc < s.approx) s.approx = sc, s.approxTol = tol;
  }
  st = s;
}
}  // namespace

template <class T>
void nearest_rows(const T* x, const T* E, int64_t m, int64_t v, int64_t d, int32_t* idx, T* snapped) {
  if (m == 0) return;
  std::vector<T> en(static_cast<size_t>(v));
  parallel_tasks(v, v * d, [&](int64_t j) {
    const T* e = E + j * d;
    T s = 0;
    for (int64_t k = 0; k < d; ++k) s += e[k] * e[k];
    en[j] = s;
  });
  const int64_t tasks = (m + kQueryBlock - 1) / kQueryBlock;
  parallel_tasks(tasks, m * v * d / 8, [&](int64_t task) {
    const int64_t i0 = task * kQueryBlock, rows = std::min(kQueryBlock, m - i0);
    const int64_t vb = std::min(kVocabBlock, v);
    std::vector<T> S(static_cast<size_t>(kQueryBlock * vb));
    Nearest<T> st[kQueryBlock];
    double xn[kQueryBlock];
    for (int64_t a = 0; a < rows; ++a) {
      const T* xr = x + (i0 + a) * d;
      double s = 0;
      for (int64_t k = 0; k < d; ++k) s += double(xr[k]) * double(xr[k]);
      xn[a] = std::sqrt(s);
    }
    for (int64_t j0 = 0; j0 < v; j0 += kVocabBlock) {
      const int64_t n = std::min(kVocabBlock, v - j0);
      gemm<T>(1, false, true, rows, n, d, T(1), x + i0 * d, d, 0, E + j0 * d, d, 0, T(0), S.data(), n, 0);
      for (int64_t a = 0; a < rows; ++a)
        if (std::isfinite(xn[a])) tile_nearest(S.data() + a * n, en.data() + j0, n, j0, x + (i0 + a) * d, E, d, xn[a], st[a]);
    }
    for (int64_t a = 0; a < rows; ++a) {
      // A row of x with a NaN or an infinity has no nearest row: index -1 and a NaN row.
      const bool ok = std::isfinite(xn[a]);
      idx[i0 + a] = ok ? static_cast<int32_t>(st[a].arg) : -1;
      if (!snapped) continue;
      if (ok) std::copy(E + st[a].arg * d, E + (st[a].arg + 1) * d, snapped + (i0 + a) * d);
      else std::fill(snapped + (i0 + a) * d, snapped + (i0 + a + 1) * d, std::numeric_limits<T>::quiet_NaN());
    }
  });
}

template void diffusion_step<float>(const DiffusionSpec&, const double*, const float*, const float*, const float*,
                                    float*, float*, float*);
template void diffusion_step<double>(const DiffusionSpec&, const double*, const double*, const double*,
                                     const double*, double*, double*, double*);
template void nearest_rows<float>(const float*, const float*, int64_t, int64_t, int64_t, int32_t*, float*);
template void nearest_rows<double>(const double*, const double*, int64_t, int64_t, int64_t, int32_t*, double*);

}  // namespace cpu
}  // namespace kiln
