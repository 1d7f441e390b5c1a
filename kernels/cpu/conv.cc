// im2col / col2im for convolution and pooling straight from NCHW (conv.h states the layout).
// im2col: one task per (n, c, tap) row of the column matrix; each output row is a contiguous run of
// copies with padding fills at its ends (a memcpy when the width stride is 1).
// col2im: one task per (n, c) input plane, which it owns outright: zeroed, then every tap's rows
// added in (tap, output row, output column) order, so the sums do not depend on the thread count
// and there are no atomics.
#include <algorithm>
#include <cstring>

#include "conv.h"
#include "parallel.h"

namespace kiln {
namespace cpu {
namespace {

// Output columns [lo, hi) whose input column ow*s - pad + off lies in [0, W).
inline void valid_range(int64_t W, int64_t Wo, int64_t s, int64_t pad, int64_t off, int64_t* lo, int64_t* hi) {
  const int64_t first = pad - off;  // ow*s >= first
  int64_t a = first <= 0 ? 0 : (first + s - 1) / s;
  const int64_t last = W - 1 + pad - off;  // ow*s <= last
  int64_t b = last < 0 ? 0 : last / s + 1;
  a = std::min(a, Wo);
  b = std::min(std::max(b, a), Wo);
  *lo = a;
  *hi = b;
}

}  // namespace

template <class T>
void im2col(const T* x, T* cols, const ConvGeometry& g, T padValue) {
  const int64_t kk = g.kH * g.kW, L = g.Ho * g.Wo, rows = g.N * g.C * kk;
  if (rows == 0 || L == 0) return;
  parallel_tasks(rows, rows * L, [&](int64_t r) {
    const int64_t nc = r / kk, tap = r - nc * kk, th = tap / g.kW, tw = tap - th * g.kW;
    const T* __restrict plane = x + nc * g.H * g.W;
    T* __restrict out = cols + r * L;
    int64_t lo, hi;
    valid_range(g.W, g.Wo, g.sW, g.pW, tw * g.dW, &lo, &hi);
    const int64_t iw0 = lo * g.sW - g.pW + tw * g.dW;  // input column of output column lo
    for (int64_t oh = 0; oh < g.Ho; ++oh, out += g.Wo) {
      const int64_t ih = oh * g.sH - g.pH + th * g.dH;
      if (ih < 0 || ih >= g.H) {
        std::fill(out, out + g.Wo, padValue);
        continue;
      }
      std::fill(out, out + lo, padValue);
      if (hi > lo) {
        const T* __restrict src = plane + ih * g.W + iw0;
        if (g.sW == 1) std::memcpy(out + lo, src, sizeof(T) * (hi - lo));
        else
          for (int64_t ow = lo; ow < hi; ++ow) out[ow] = src[(ow - lo) * g.sW];
      }
      std::fill(out + hi, out + g.Wo, padValue);
    }
  });
}

template <class T>
void col2im(const T* cols, T* dx, const ConvGeometry& g) {
  const int64_t kk = g.kH * g.kW, L = g.Ho * g.Wo, planes = g.N * g.C, HW = g.H * g.W;
  if (planes == 0 || HW == 0) return;
  parallel_tasks(planes, planes * std::max(HW, kk * L), [&](int64_t nc) {
    T* __restrict plane = dx + nc * HW;
    std::fill(plane, plane + HW, T(0));
    if (L == 0) return;
    for (int64_t tap = 0; tap < kk; ++tap) {
      const int64_t th = tap / g.kW, tw = tap - th * g.kW;
      const T* __restrict in = cols + (nc * kk + tap) * L;
      int64_t lo, hi;
      valid_range(g.W, g.Wo, g.sW, g.pW, tw * g.dW, &lo, &hi);
      const int64_t iw0 = lo * g.sW - g.pW + tw * g.dW;
      for (int64_t oh = 0; oh < g.Ho; ++oh, in += g.Wo) {
        const int64_t ih = oh * g.sH - g.pH + th * g.dH;
        if (ih < 0 || ih >= g.H || hi <= lo) continue;
        T* __restrict dst = plane + ih * g.W + iw0;
        if (g.sW == 1) {
#pragma omp simd
          for (int64_t j = 0; j < hi - lo; ++j) dst[j] += in[lo + j];
        } else {
          for (int64_t ow = lo; ow < hi; ++ow) dst[(ow - lo) * g.sW] += in[ow];
        }
      }
    }
  });
}

template void im2col<float>(const float*, float*, const ConvGeometry&, float);
template void im2col<double>(const double*, double*, const ConvGeometry&, double);
template void col2im<float>(const float*, float*, const ConvGeometry&);
template void col2im<double>(const double*, double*, const ConvGeometry&);

}  // namespace cpu
}  // namespace kiln
