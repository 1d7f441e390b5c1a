// Row-wise kernels' scaffolding (softmax.cu, layernorm.cu): a row of [rows, n] is handled by one
// warp (short rows, several rows per block) or by one block (long rows); element loops use 16-byte
// vectors when every row of every operand is aligned.
#pragma once
#include "core_common.cuh"

namespace kiln {
namespace cuda {
namespace core {

template <bool kWarp>
struct RowGroup {
  __device__ __forceinline__ static int lane() { return kWarp ? (threadIdx.x & 31) : threadIdx.x; }
  __device__ __forceinline__ static int size() { return kWarp ? 32 : blockDim.x; }
  __device__ __forceinline__ static int64_t first() {
    return kWarp ? int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5) : int64_t(blockIdx.x);
  }
  __device__ __forceinline__ static int64_t stride() {
    return kWarp ? int64_t(gridDim.x) * (blockDim.x >> 5) : int64_t(gridDim.x);
  }
};

// Rows up to this length get a warp each.
constexpr int64_t kWarpRow = 1024;

// At most 512 threads, so a kernel may use up to 128 registers per thread.
inline int block_threads_for_row(int64_t n) { return n > 4096 ? 512 : kThreads; }

// f(k, x[k]) for the group's share of the row.
template <class T, class F>
__device__ __forceinline__ void row_for_each(const T* __restrict__ x, int64_t n, bool vec, int lane, int size, F&& f) {
  constexpr int W = Vec16<T>::kN;
  if (vec) {
    for (int64_t v = lane; v < n / W; v += size) {
      const Vec16<T> a = load16(x + v * W);
#pragma unroll
      for (int i = 0; i < W; ++i) f(v * W + i, a.v[i]);
    }
  } else {
    for (int64_t k = lane; k < n; k += size) f(k, x[k]);
  }
}
// f(k, a[k], b[k]).
template <class T, class F>
__device__ __forceinline__ void row_for_each2(const T* __restrict__ a, const T* __restrict__ b, int64_t n, bool vec,
                                              int lane, int size, F&& f) {
  constexpr int W = Vec16<T>::kN;
  if (vec) {
    for (int64_t v = lane; v < n / W; v += size) {
      const Vec16<T> va = load16(a + v * W), vb = load16(b + v * W);
#pragma unroll
      for (int i = 0; i < W; ++i) f(v * W + i, va.v[i], vb.v[i]);
    }
  } else {
    for (int64_t k = lane; k < n; k += size) f(k, a[k], b[k]);
  }
}
// out[k] = f(k, a[k]).
template <class T, class F>
__device__ __forceinline__ void row_map(const T* __restrict__ a, T* __restrict__ out, int64_t n, bool vec, int lane, int size,
                                        F&& f) {
  constexpr int W = Vec16<T>::kN;
  if (vec) {
    for (int64_t v = lane; v < n / W; v += size) {
      const Vec16<T> va = load16(a + v * W);
      Vec16<T> o;
#pragma unroll
      for (int i = 0; i < W; ++i) o.v[i] = f(v * W + i, va.v[i]);
      store16(out + v * W, o);
    }
  } else {
    for (int64_t k = lane; k < n; k += size) out[k] = f(k, a[k]);
  }
}
// out[k] = f(k, a[k], b[k]).
template <class T, class F>
__device__ __forceinline__ void row_map2(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ out, int64_t n,
                                         bool vec, int lane, int size, F&& f) {
  constexpr int W = Vec16<T>::kN;
  if (vec) {
    for (int64_t v = lane; v < n / W; v += size) {
      const Vec16<T> va = load16(a + v * W), vb = load16(b + v * W);
      Vec16<T> o;
#pragma unroll
      for (int i = 0; i < W; ++i) o.v[i] = f(v * W + i, va.v[i], vb.v[i]);
      store16(out + v * W, o);
    }
  } else {
    for (int64_t k = lane; k < n; k += size) out[k] = f(k, a[k], b[k]);
  }
}

}  // namespace core
}  // namespace cuda
}  // namespace kiln
