// CUDA softmax / log-softmax (forward and backward) and fused cross entropy over [rows, n], with the
// semantics of kernels/cpu/softmax.cc and kernels/cpu/crossentropy.cc: an all -inf row gives 0s
// (log: -inf), NaN spreads to the whole row, a +inf entry makes a softmax row NaN and a cross-entropy
// lse +inf. The forward reads the row once for (max, sum exp) with an online logsumexp in double,
// then once more to write. A warp per row up to kWarpRow elements, else a block per row.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "core_api.h"
#include "rows.cuh"

namespace kiln {
namespace cuda {
namespace {

using namespace core;
using cpu::DType;

template <class T> __device__ __forceinline__ T nan_of() { return T(NAN); }

template <class T, bool kWarp, bool kLog>
__global__ void softmax_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t rows, int64_t n, bool vec) {
  using G = RowGroup<kWarp>;
  const int lane = G::lane(), size = G::size();
  for (int64_t row = G::first(); row < rows; row += G::stride()) {
    const T* xr = x + row * n;
    T* yr = y + row * n;
    typename Lse<T>::S s = Lse<T>::init();
    row_for_each(xr, n, vec, lane, size, [&](int64_t, T v) { Lse<T>::add(s, v); });
    s = group_allreduce<kWarp, Lse<T>>(s);
    const T m = s.m;
    if (m == -pos_inf<T>()) {
      row_map(xr, yr, n, vec, lane, size, [&](int64_t, T) { return kLog ? m : T(0); });
    } else if (kLog) {
      const T lse = m == pos_inf<T>() ? nan_of<T>() : static_cast<T>(static_cast<double>(m) + log(s.s));
      row_map(xr, yr, n, vec, lane, size, [&](int64_t, T v) { return v - lse; });
    } else {
      const T inv = m == pos_inf<T>() ? nan_of<T>() : static_cast<T>(1.0 / s.s);
      row_map(xr, yr, n, vec, lane, size, [&](int64_t, T v) { return dexp(v - m) * inv; });
    }
  }
}

// kLog: dx = dy - exp(y) * sum(dy); else dx = y * (dy - sum(dy * y)).
template <class T, bool kWarp, bool kLog>
__global__ void softmax_backward_kernel(const T* __restrict__ y, const T* __restrict__ dy, T* __restrict__ dx, int64_t rows,
                                        int64_t n, bool vec) {
  using G = RowGroup<kWarp>;
  const int lane = G::lane(), size = G::size();
  for (int64_t row = G::first(); row < rows; row += G::stride()) {
    const T* yr = y + row * n;
    const T* gr = dy + row * n;
    double acc = 0;
    row_for_each2(yr, gr, n, vec, lane, size, [&](int64_t, T yv, T gv) {
      acc += kLog ? static_cast<double>(gv) : static_cast<double>(gv * yv);
    });
    const T s = static_cast<T>(group_allreduce<kWarp, SumD>(acc));
    row_map2(yr, gr, dx + row * n, n, vec, lane, size,
             [&](int64_t, T yv, T gv) { return kLog ? gv - dexp(yv) * s : yv * (gv - s); });
  }
}

template <class T>
struct CeStats {
  struct S {
    typename Lse<T>::S l;
    double sum;
  };
  __device__ static S init() { return S{Lse<T>::init(), 0.0}; }
  __device__ static S merge(S a, S b) { return S{Lse<T>::merge(a.l, b.l), a.sum + b.sum}; }
};

template <class T, bool kWarp>
__global__ void ce_forward_kernel(const T* __restrict__ logits, const int32_t* __restrict__ targets, T* __restrict__ losses,
                                  T* __restrict__ lseOut, int64_t N, int64_t C, int32_t ignore, T smoothing, bool vec) {
  using G = RowGroup<kWarp>;
  using P = CeStats<T>;
  const int lane = G::lane(), size = G::size();
  for (int64_t row = G::first(); row < N; row += G::stride()) {
    const T* xr = logits + row * C;
    typename P::S s = P::init();
    row_for_each(xr, C, vec, lane, size, [&](int64_t, T v) {
      Lse<T>::add(s.l, v);
      s.sum += static_cast<double>(v);
    });
    s = group_allreduce<kWarp, P>(s);
    if (lane != 0) continue;
    const T m = s.l.m;
    const T lse = m - m == T(0) ? static_cast<T>(static_cast<double>(m) + log(s.l.s)) : m;
    lseOut[row] = lse;
    const int32_t t = targets[row];
    T loss;
    if (t == ignore) loss = T(0);
    else if (t < 0 || t >= C) loss = nan_of<T>();  // validated by the caller; never read out of bounds
    else {
      const T nll = lse - xr[t];
      // mean_i(-log p_i) = lse - mean(x), taken in double from the unrounded parts so that a large
      // common offset of the logits does not cancel (as kernels/cpu/crossentropy.cc).
      const double mean = s.sum / static_cast<double>(C);
      const T smooth = m - m == T(0) ? static_cast<T>(log(s.l.s) + (static_cast<double>(m) - mean)) : static_cast<T>(lse - mean);
      loss = smoothing != T(0) ? (T(1) - smoothing) * nll + smoothing * smooth : nll;
    }
    losses[row] = loss;
  }
}

template <class T, bool kWarp>
__global__ void ce_backward_kernel(const T* __restrict__ logits, const int32_t* __restrict__ targets, const T* __restrict__ lse,
                                   const T* __restrict__ dloss, T* __restrict__ dlogits, int64_t N, int64_t C, int32_t ignore,
                                   T smoothing, bool vec) {
  using G = RowGroup<kWarp>;
  const int lane = G::lane(), size = G::size();
  for (int64_t row = G::first(); row < N; row += G::stride()) {
    const int32_t t = targets[row];
    const T* xr = logits + row * C;
    T* dr = dlogits + row * C;
    if (t == ignore) {
      row_map(xr, dr, C, vec, lane, size, [](int64_t, T) { return T(0); });
      continue;
    }
    const T dl = dloss[row], l = lse[row];
    const T off = dl * smoothing / static_cast<T>(C), hit = dl * (T(1) - smoothing);
    row_map(xr, dr, C, vec, lane, size, [&](int64_t k, T v) {
      T d = dl * dexp(v - l) - off;
      if (k == t) d -= hit;
      return d;
    });
  }
}

// Launches kernel<kWarp> over `rows` rows of n elements.
template <class WarpK, class BlockK, class... Args>
std::string launch_rows(WarpK warpK, BlockK blockK, int64_t rows, int64_t n, Args... args) {
  if (rows <= 0) return "";
  if (n <= kWarpRow) warpK<<<grid_for(rows, kWarps), kThreads>>>(args...);
  else blockK<<<grid_for(rows, 1), block_threads_for_row(n)>>>(args...);
  return launched();
}

template <class T>
std::string run_softmax(int kind, const T* in, const T* grad, T* out, int64_t rows, int64_t n) {
  if (n <= 0) return "";
  const bool vec = rows_aligned16<T>(in, n) && rows_aligned16<T>(out, n) && (!grad || rows_aligned16<T>(grad, n));
  switch (kind) {
    case 0:
      return launch_rows(softmax_forward_kernel<T, true, false>, softmax_forward_kernel<T, false, false>, rows, n, in, out, rows, n, vec);
    case 1:
      return launch_rows(softmax_forward_kernel<T, true, true>, softmax_forward_kernel<T, false, true>, rows, n, in, out, rows, n, vec);
    case 2:
      return launch_rows(softmax_backward_kernel<T, true, false>, softmax_backward_kernel<T, false, false>, rows, n, in, grad, out,
                         rows, n, vec);
    case 3:
      return launch_rows(softmax_backward_kernel<T, true, true>, softmax_backward_kernel<T, false, true>, rows, n, in, grad, out,
                         rows, n, vec);
  }
  return "softmax: unknown kind";
}

}  // namespace

std::string softmax(DType dtype, int kind, const void* in, const void* grad, void* out, int64_t rows, int64_t n) {
  if (dtype == DType::F32)
    return run_softmax(kind, static_cast<const float*>(in), static_cast<const float*>(grad), static_cast<float*>(out), rows, n);
  if (dtype == DType::F64)
    return run_softmax(kind, static_cast<const double*>(in), static_cast<const double*>(grad), static_cast<double*>(out), rows, n);
  return "softmax: unsupported dtype";
}

std::string cross_entropy_forward(DType dtype, const void* logits, const int32_t* targets, void* losses, void* lse, int64_t N,
                                  int64_t C, int32_t ignoreIndex, double labelSmoothing) {
  if (C <= 0) return "";
  if (dtype == DType::F32) {
    auto x = static_cast<const float*>(logits);
    return launch_rows(ce_forward_kernel<float, true>, ce_forward_kernel<float, false>, N, C, x, targets,
                       static_cast<float*>(losses), static_cast<float*>(lse), N, C, ignoreIndex,
                       static_cast<float>(labelSmoothing), rows_aligned16<float>(x, C));
  }
  if (dtype == DType::F64) {
    auto x = static_cast<const double*>(logits);
    return launch_rows(ce_forward_kernel<double, true>, ce_forward_kernel<double, false>, N, C, x, targets,
                       static_cast<double*>(losses), static_cast<double*>(lse), N, C, ignoreIndex, labelSmoothing,
                       rows_aligned16<double>(x, C));
  }
  return "crossEntropy: unsupported dtype";
}

std::string cross_entropy_backward(DType dtype, const void* logits, const int32_t* targets, const void* lse, const void* dloss,
                                   void* dlogits, int64_t N, int64_t C, int32_t ignoreIndex, double labelSmoothing) {
  if (C <= 0) return "";
  if (dtype == DType::F32) {
    auto x = static_cast<const float*>(logits);
    auto d = static_cast<float*>(dlogits);
    return launch_rows(ce_backward_kernel<float, true>, ce_backward_kernel<float, false>, N, C, x, targets,
                       static_cast<const float*>(lse), static_cast<const float*>(dloss), d, N, C, ignoreIndex,
                       static_cast<float>(labelSmoothing), rows_aligned16<float>(x, C) && rows_aligned16<float>(d, C));
  }
  if (dtype == DType::F64) {
    auto x = static_cast<const double*>(logits);
    auto d = static_cast<double*>(dlogits);
    return launch_rows(ce_backward_kernel<double, true>, ce_backward_kernel<double, false>, N, C, x, targets,
                       static_cast<const double*>(lse), static_cast<const double*>(dloss), d, N, C, ignoreIndex, labelSmoothing,
                       rows_aligned16<double>(x, C) && rows_aligned16<double>(d, C));
  }
  return "crossEntropy backward: unsupported dtype";
}

}  // namespace cuda
}  // namespace kiln
