// Shared device code of the core CUDA kernels (reduce.cu, softmax.cu, layernorm.cu, embedding.cu,
// random.cu, optim.cu): launch checks, device scratch from the caching allocator, deterministic warp
// and block reductions over a policy type, and 16-byte vector loads. Reductions are fixed trees (no
// atomics), so a result does not change from run to run.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "cuda_api.h"

namespace kiln {
namespace cuda {
namespace core {

constexpr unsigned kFull = 0xffffffffu;
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int64_t kMaxGrid = 2147483647;  // gridDim.x limit

inline std::string error_string(cudaError_t e) { return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e); }
inline std::string launched() {
  cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? "" : error_string(e);
}
inline std::string checked(cudaError_t e) { return e == cudaSuccess ? "" : error_string(e); }

inline int sm_count() {
  static int n = [] {
    int dev = 0, v = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
      cudaGetLastError();
      return 108;
    }
    return v;
  }();
  return n;
}

// Blocks for a grid-stride loop over `items` work items of `per` threads' worth each.
inline unsigned grid_for(int64_t items, int64_t per = kThreads, int64_t cap = kMaxGrid) {
  int64_t g = (items + per - 1) / per;
  if (g < 1) g = 1;
  return static_cast<unsigned>(g < cap ? g : cap);
}

// Device scratch from the caching allocator. Releasing before the queued kernels finish is safe:
// every kernel runs on the one stream, so the next user of the block is ordered after them.
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { release(ptr_, bytes_); }
  // Returns "" or the allocator's error.
  std::string get(size_t bytes) {
    std::string err;
    if (bytes == 0) bytes = 1;
    ptr_ = alloc(bytes, &err);
    if (!ptr_) return err.empty() ? "device allocation failed" : err;
    bytes_ = bytes;
    return "";
  }
  template <class T> T* as() const { return static_cast<T*>(ptr_); }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

template <class T> __device__ __forceinline__ bool is_nan(T v) { return v != v; }
template <class T> __device__ __forceinline__ T pos_inf() { return T(INFINITY); }

__device__ __forceinline__ float dexp(float x) { return expf(x); }
__device__ __forceinline__ double dexp(double x) { return exp(x); }

// A shuffle of any 4-byte-multiple POD state, word by word.
template <class S>
__device__ __forceinline__ S shfl_down_any(const S& v, int off) {
  static_assert(sizeof(S) % 4 == 0, "reduction state must be a multiple of 4 bytes");
  constexpr int kW = sizeof(S) / 4;
  int w[kW];
  memcpy(w, &v, sizeof(S));
#pragma unroll
  for (int i = 0; i < kW; ++i) w[i] = __shfl_down_sync(kFull, w[i], off);
  S r;
  memcpy(&r, w, sizeof(S));
  return r;
}
template <class S>
__device__ __forceinline__ S shfl_idx_any(const S& v, int lane) {
  constexpr int kW = sizeof(S) / 4;
  int w[kW];
  memcpy(w, &v, sizeof(S));
#pragma unroll
  for (int i = 0; i < kW; ++i) w[i] = __shfl_sync(kFull, w[i], lane);
  S r;
  memcpy(&r, w, sizeof(S));
  return r;
}

// A policy P has: using S (POD state); static S init(); static S merge(S, S). Lane 0 gets the result.
template <class P>
__device__ __forceinline__ typename P::S warp_reduce(typename P::S v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = P::merge(v, shfl_down_any(v, o));
  return v;
}
// Every lane gets lane 0's result.
template <class P>
__device__ __forceinline__ typename P::S warp_allreduce(typename P::S v) {
  return shfl_idx_any(warp_reduce<P>(v), 0);
}
// Thread 0 gets the result; every thread of the block must call it.
template <class P>
__device__ __forceinline__ typename P::S block_reduce(typename P::S v) {
  __shared__ typename P::S part[32];
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = warp_reduce<P>(v);
  __syncthreads();  // an earlier call's readers are done with part[]
  if (lane == 0) part[w] = v;
  __syncthreads();
  if (w == 0) {
    v = lane < nw ? part[lane] : P::init();
    v = warp_reduce<P>(v);
  }
  return v;
}
// Every thread gets the result.
template <class P>
__device__ __forceinline__ typename P::S block_allreduce(typename P::S v) {
  __shared__ typename P::S result;
  v = block_reduce<P>(v);
  if (threadIdx.x == 0) result = v;
  __syncthreads();
  v = result;
  __syncthreads();  // result may be overwritten by the next call
  return v;
}
// A row is handled by a warp (kWarp) or by the whole block; every thread of the group gets the result.
template <bool kWarp, class P>
__device__ __forceinline__ typename P::S group_allreduce(typename P::S v) {
  if (kWarp) return warp_allreduce<P>(v);
  return block_allreduce<P>(v);
}

// Sum in double (float sums and the statistics of a row accumulate in double, like the CPU).
struct SumD {
  using S = double;
  __device__ __forceinline__ static S init() { return 0.0; }
  __device__ __forceinline__ static S merge(S a, S b) { return a + b; }
};
struct SumD2 {
  struct S {
    double a, b;
  };
  __device__ __forceinline__ static S init() { return S{0.0, 0.0}; }
  __device__ __forceinline__ static S merge(S x, S y) { return S{x.a + y.a, x.b + y.b}; }
};

// Online logsumexp: running max m (NaN sticky) and s = sum exp(x - m) in double. An all -inf
// input keeps m = -inf; with m = +inf or NaN the sum is meaningless and callers use m alone.
template <class T>
struct Lse {
  struct S {
    double s;
    T m;
  };
  __device__ __forceinline__ static S init() { return S{0.0, -pos_inf<T>()}; }
  __device__ __forceinline__ static void add(S& a, T x) {
    if (is_nan(a.m)) return;
    if (is_nan(x)) { a.m = x; return; }
    if (x == -pos_inf<T>()) return;
    if (x > a.m) {
      a.s = a.m == -pos_inf<T>() ? 1.0 : a.s * static_cast<double>(dexp(a.m - x)) + 1.0;
      a.m = x;
    } else {
      a.s += static_cast<double>(dexp(x - a.m));
    }
  }
  __device__ __forceinline__ static S merge(S a, S b) {
    if (is_nan(a.m)) return a;
    if (is_nan(b.m)) return b;
    if (b.m == -pos_inf<T>()) return a;
    if (a.m == -pos_inf<T>()) return b;
    if (a.m >= b.m) return S{a.s + b.s * static_cast<double>(dexp(b.m - a.m)), a.m};
    return S{b.s + a.s * static_cast<double>(dexp(a.m - b.m)), b.m};
  }
};

// 16-byte vectors of T for aligned rows.
template <class T>
struct alignas(16) Vec16 {
  static constexpr int kN = 16 / sizeof(T);
  T v[kN];
};
template <class T>
__device__ __forceinline__ Vec16<T> load16(const T* p) { return *reinterpret_cast<const Vec16<T>*>(p); }
template <class T>
__device__ __forceinline__ void store16(T* p, const Vec16<T>& v) { *reinterpret_cast<Vec16<T>*>(p) = v; }
// True when every row of `len` elements starting at p is 16-byte aligned.
template <class T>
inline bool rows_aligned16(const void* p, int64_t len) {
  return (reinterpret_cast<uintptr_t>(p) & 15) == 0 && (len * static_cast<int64_t>(sizeof(T))) % 16 == 0;
}

}  // namespace core
}  // namespace cuda
}  // namespace kiln
