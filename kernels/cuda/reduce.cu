// CUDA reductions over the middle axis of [outer, r, inner] (sum, mean, prod, max, min, logsumexp,
// argmax/argmin, int32 sum/max/min) and the inclusive cumsum (int32 too), with the semantics of
// kernels/cpu/reduce.cc. Contiguous rows (inner == 1) get a warp per short row or a block per
// (row, chunk) with 16-byte loads; columns (inner > 1) get a thread per column with coalesced
// reads, the r axis split into chunks when there are too few columns to fill the GPU. Chunk
// partials are combined in chunk order, so every result is deterministic. Float sums and products
// accumulate in double, like the CPU.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>

#include "core_api.h"
#include "core_common.cuh"

namespace kiln {
namespace cuda {
namespace {

using namespace core;
using cpu::DType;
using cpu::ReduceOp;

template <class T> __device__ __forceinline__ T lowest() { return -pos_inf<T>(); }
template <> __device__ __forceinline__ int32_t lowest<int32_t>() { return INT32_MIN; }
template <class T> __device__ __forceinline__ T highest() { return pos_inf<T>(); }
template <> __device__ __forceinline__ int32_t highest<int32_t>() { return INT32_MAX; }

// ---- policies: S state, Out result; add(S&, x, k) sees element x at position k of the r axis ----
template <class T>
struct RSum {
  using S = double;
  using Out = T;
  __device__ static S init() { return 0.0; }
  __device__ static void add(S& s, T x, int64_t) { s += static_cast<double>(x); }
  __device__ static S merge(S a, S b) { return a + b; }
  __device__ static Out fin(S s, int64_t) { return static_cast<T>(s); }
};
template <class T>
struct RMean : RSum<T> {
  __device__ static T fin(double s, int64_t r) { return static_cast<T>(s / static_cast<double>(r)); }
};
template <class T>
struct RProd {
  using S = double;
  using Out = T;
  __device__ static S init() { return 1.0; }
  __device__ static void add(S& s, T x, int64_t) { s *= static_cast<double>(x); }
  __device__ static S merge(S a, S b) { return a * b; }
  __device__ static Out fin(S s, int64_t) { return static_cast<T>(s); }
};
// Max / Min propagate NaN (int32 has none).
template <class T, bool kMax>
struct RExt {
  using S = T;
  using Out = T;
  __device__ static S init() { return kMax ? lowest<T>() : highest<T>(); }
  __device__ static S merge(S a, S b) { return (kMax ? b > a : b < a) || is_nan(b) ? b : a; }
  __device__ static void add(S& s, T x, int64_t) { s = merge(s, x); }
  __device__ static Out fin(S s, int64_t) { return s; }
};
template <class T>
struct RLse : Lse<T> {
  using typename Lse<T>::S;
  using Out = T;
  __device__ static void add(S& s, T x, int64_t) { Lse<T>::add(s, x); }
  __device__ static Out fin(S s, int64_t) {
    return s.m - s.m == T(0) ? static_cast<T>(static_cast<double>(s.m) + log(s.s)) : s.m;
  }
};
// int32 sum into 64 bits: accumulated modulo 2^64, which is the exact sum below 2^32 terms; the
// caller narrows it (narrow_i32_kernel) and refuses sums that do not fit int32.
struct RSumI {
  using S = unsigned long long;
  using Out = long long;
  __device__ static S init() { return 0ull; }
  __device__ static void add(S& s, int32_t x, int64_t) { s += static_cast<unsigned long long>(static_cast<long long>(x)); }
  __device__ static S merge(S a, S b) { return a + b; }
  __device__ static Out fin(S s, int64_t) { return static_cast<long long>(s); }
};
// First index of the extreme; the first NaN wins over everything (kernels/cpu/reduce.cc).
template <class T, bool kMax>
struct RArg {
  struct S {
    T v;
    long long k;  // -1: empty
  };
  using Out = int32_t;
  __device__ static S init() { return S{T(0), -1}; }
  __device__ static bool ahead(const S& a, const S& b) {  // a ranks before b
    const bool an = is_nan(a.v), bn = is_nan(b.v);
    if (an || bn) return an && bn ? a.k < b.k : an;
    if (a.v != b.v) return kMax ? a.v > b.v : a.v < b.v;
    return a.k < b.k;
  }
  __device__ static S merge(S a, S b) {
    if (a.k < 0) return b;
    if (b.k < 0) return a;
    return ahead(b, a) ? b : a;
  }
  __device__ static void add(S& s, T x, int64_t k) { s = merge(s, S{x, k}); }
  __device__ static Out fin(S s, int64_t) { return s.k < 0 ? 0 : static_cast<int32_t>(s.k); }
};

// ---- kernels ----
template <class P, class T>
__global__ void rows_warp_kernel(const T* __restrict__ x, typename P::Out* __restrict__ y, int64_t outer, int64_t r) {
  const int lane = threadIdx.x & 31;
  const int64_t step = int64_t(gridDim.x) * (blockDim.x >> 5);
  for (int64_t row = int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5); row < outer; row += step) {
    const T* xr = x + row * r;
    typename P::S s = P::init();
    for (int64_t k = lane; k < r; k += 32) P::add(s, xr[k], k);
    s = warp_reduce<P>(s);
    if (lane == 0) y[row] = P::fin(s, r);
  }
}

// Task t = (row t % outer, chunk t / outer). With one chunk the result is final; else a partial.
template <class P, class T>
__global__ void rows_block_kernel(const T* __restrict__ x, typename P::Out* __restrict__ y, typename P::S* __restrict__ part,
                                  int64_t outer, int64_t r, int64_t chunk, int64_t nchunks, bool vec) {
  constexpr int W = Vec16<T>::kN;
  for (int64_t t = blockIdx.x; t < outer * nchunks; t += gridDim.x) {
    const int64_t row = t % outer, c = t / outer;
    const int64_t k0 = c * chunk, k1 = min(r, k0 + chunk);
    const T* xr = x + row * r;
    typename P::S s = P::init();
    if (vec) {  // k0 and k1 are multiples of W here
      for (int64_t k = k0 + int64_t(threadIdx.x) * W; k < k1; k += int64_t(blockDim.x) * W) {
        const Vec16<T> v = load16(xr + k);
#pragma unroll
        for (int i = 0; i < W; ++i) P::add(s, v.v[i], k + i);
      }
    } else {
      for (int64_t k = k0 + threadIdx.x; k < k1; k += blockDim.x) P::add(s, xr[k], k);
    }
    s = block_reduce<P>(s);
    if (threadIdx.x == 0) {
      if (nchunks == 1) y[row] = P::fin(s, r);
      else part[c * outer + row] = s;
    }
  }
}

// Thread per column (o, j) of the [outer, inner] result over rows [k0, k1) of chunk blockIdx.y.
template <class P, class T>
__global__ void cols_kernel(const T* __restrict__ x, typename P::Out* __restrict__ y, typename P::S* __restrict__ part,
                            int64_t outer, int64_t r, int64_t inner, int64_t chunk, int64_t nchunks) {
  const int64_t ncols = outer * inner, c = blockIdx.y;
  const int64_t k0 = c * chunk, k1 = min(r, k0 + chunk);
  for (int64_t col = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; col < ncols; col += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = col / inner, j = col - o * inner;
    const T* p = x + o * r * inner + j;
    typename P::S s = P::init();
#pragma unroll 4
    for (int64_t k = k0; k < k1; ++k) P::add(s, p[k * inner], k);
    if (nchunks == 1) y[col] = P::fin(s, r);
    else part[c * ncols + col] = s;
  }
}

// Partials laid out [nchunks, ncols], merged in chunk order.
template <class P>
__global__ void combine_kernel(const typename P::S* __restrict__ part, typename P::Out* __restrict__ y, int64_t ncols,
                               int64_t nchunks, int64_t r) {
  for (int64_t col = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; col < ncols; col += int64_t(gridDim.x) * blockDim.x) {
    typename P::S s = part[col];
    for (int64_t c = 1; c < nchunks; ++c) s = P::merge(s, part[c * ncols + col]);
    y[col] = P::fin(s, r);
  }
}

int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t resident_threads() { return int64_t(sm_count()) * 2048; }

// Column layouts (inner > 1): when the ncols columns give too few threads to fill the GPU, each
// column's r entries are split into nchunks chunks of `chunk` rows (at least 32, at most 65535 chunks).
struct Chunks {
  int64_t nchunks, chunk;
};
Chunks column_chunks(int64_t ncols, int64_t r) {
  if (ncols >= resident_threads() || r <= 64) return {1, r};
  const int64_t n = std::min<int64_t>({cdiv(resident_threads(), ncols), cdiv(r, 32), 65535});
  const int64_t chunk = cdiv(r, n);
  return {cdiv(r, chunk), chunk};
}

template <class P, class T>
std::string run_reduce(const T* x, typename P::Out* y, int64_t outer, int64_t r, int64_t inner) {
  using S = typename P::S;
  if (outer <= 0 || inner <= 0) return "";
  Scratch part;
  if (inner == 1 && r <= 1024) {
    rows_warp_kernel<P, T><<<grid_for(outer, kWarps), kThreads>>>(x, y, outer, r);
    return launched();
  }
  if (inner == 1) {
    constexpr int W = Vec16<T>::kN;
    int64_t nchunks = std::max<int64_t>(1, std::min(cdiv(2 * sm_count(), outer), cdiv(r, 8192)));
    const int64_t chunk = cdiv(cdiv(r, nchunks), 1024) * 1024;  // a multiple of W keeps vector loads aligned
    nchunks = cdiv(r, chunk);
    static_assert(1024 % W == 0, "chunk alignment");
    if (nchunks > 1)
      if (auto err = part.get(sizeof(S) * outer * nchunks); !err.empty()) return err;
    rows_block_kernel<P, T><<<grid_for(outer * nchunks, 1), kThreads>>>(x, y, part.as<S>(), outer, r, chunk, nchunks,
                                                                          rows_aligned16<T>(x, r));
    if (nchunks > 1) combine_kernel<P><<<grid_for(outer), kThreads>>>(part.as<S>(), y, outer, nchunks, r);
    return launched();
  }
  const int64_t ncols = outer * inner;
  const auto [nchunks, chunk] = column_chunks(ncols, r);
  if (nchunks > 1)
    if (auto err = part.get(sizeof(S) * ncols * nchunks); !err.empty()) return err;
  dim3 grid(grid_for(ncols), static_cast<unsigned>(nchunks));
  cols_kernel<P, T><<<grid, kThreads>>>(x, y, part.as<S>(), outer, r, inner, chunk, nchunks);
  if (nchunks > 1) combine_kernel<P><<<grid_for(ncols), kThreads>>>(part.as<S>(), y, ncols, nchunks, r);
  return launched();
}

template <class T>
std::string reduce_float(ReduceOp op, const T* x, T* y, int64_t outer, int64_t r, int64_t inner) {
  switch (op) {
    case ReduceOp::Sum: return run_reduce<RSum<T>, T>(x, y, outer, r, inner);
    case ReduceOp::Mean: return run_reduce<RMean<T>, T>(x, y, outer, r, inner);
    case ReduceOp::Max: return run_reduce<RExt<T, true>, T>(x, y, outer, r, inner);
    case ReduceOp::Min: return run_reduce<RExt<T, false>, T>(x, y, outer, r, inner);
    case ReduceOp::LogSumExp: return run_reduce<RLse<T>, T>(x, y, outer, r, inner);
    case ReduceOp::Prod: return run_reduce<RProd<T>, T>(x, y, outer, r, inner);
  }
  return "reduce: unknown op";
}

// ---- cumsum: inclusive, double accumulator; positions q in scan order are elements reverse ? r-1-q : q ----
constexpr int kScanItems = 8;
constexpr int64_t kScanChunk = int64_t(kThreads) * kScanItems;

// Contiguous rows: block per (row, chunk of kScanChunk positions). write == false only sums the
// chunk into sums[c * outer + row]; write == true scans it from carry[c * outer + row] (or 0).
template <class T, class U>
__global__ void cumsum_rows_kernel(const T* __restrict__ x, U* __restrict__ y, const double* __restrict__ carry,
                                   double* __restrict__ sums, int64_t outer, int64_t r, int64_t nchunks, bool reverse,
                                   bool write) {
  __shared__ U tile[kScanChunk];
  __shared__ double warpTotal[kWarps];
  const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
  for (int64_t t = blockIdx.x; t < outer * nchunks; t += gridDim.x) {
    const int64_t row = t % outer, c = t / outer, q0 = c * kScanChunk;
    const int len = static_cast<int>(min(kScanChunk, r - q0));
    const T* xr = x + row * r;
    for (int i = tid; i < len; i += kThreads) {
      const int64_t q = q0 + i;
      tile[i] = static_cast<U>(xr[reverse ? r - 1 - q : q]);
    }
    __syncthreads();
    double loc[kScanItems], run = 0;
#pragma unroll
    for (int it = 0; it < kScanItems; ++it) {
      const int i = tid * kScanItems + it;
      if (i < len) run += static_cast<double>(tile[i]);
      loc[it] = run;
    }
    if (!write) {
      const double total = block_reduce<SumD>(run);
      if (tid == 0) sums[c * outer + row] = total;
      __syncthreads();
      continue;
    }
    double incl = run;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const double v = __shfl_up_sync(kFull, incl, o);
      if (lane >= o) incl += v;
    }
    double excl = __shfl_up_sync(kFull, incl, 1);
    if (lane == 0) excl = 0;
    if (lane == 31) warpTotal[w] = incl;
    __syncthreads();
    double pre = carry ? carry[c * outer + row] : 0.0;
    for (int i = 0; i < w; ++i) pre += warpTotal[i];
    pre += excl;
#pragma unroll
    for (int it = 0; it < kScanItems; ++it) {
      const int i = tid * kScanItems + it;
      if (i < len) tile[i] = static_cast<U>(pre + loc[it]);
    }
    __syncthreads();
    U* yr = y + row * r;
    for (int i = tid; i < len; i += kThreads) {
      const int64_t q = q0 + i;
      yr[reverse ? r - 1 - q : q] = tile[i];
    }
    __syncthreads();
  }
}

// Columns: thread per (o, j) over positions [c * chunk, ...) of chunk c = blockIdx.y; sums/carry
// laid out [nchunks, ncols].
template <class T, class U>
__global__ void cumsum_cols_kernel(const T* __restrict__ x, U* __restrict__ y, const double* __restrict__ carry,
                                   double* __restrict__ sums, int64_t outer, int64_t r, int64_t inner, int64_t chunk,
                                   bool reverse, bool write) {
  const int64_t ncols = outer * inner, c = blockIdx.y;
  const int64_t q0 = c * chunk, q1 = min(r, q0 + chunk);
  for (int64_t col = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; col < ncols; col += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = col / inner, j = col - o * inner, base = o * r * inner + j;
    double acc = carry ? carry[c * ncols + col] : 0.0;
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t at = base + (reverse ? r - 1 - q : q) * inner;
      acc += static_cast<double>(x[at]);
      if (write) y[at] = static_cast<U>(acc);
    }
    if (!write) sums[c * ncols + col] = acc;
  }
}

// In place: sums[c * ncols + col] becomes the exclusive prefix over chunks c' < c.
__global__ void exclusive_scan_chunks(double* sums, int64_t ncols, int64_t nchunks) {
  for (int64_t col = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; col < ncols; col += int64_t(gridDim.x) * blockDim.x) {
    double run = 0;
    for (int64_t c = 0; c < nchunks; ++c) {
      const double v = sums[c * ncols + col];
      sums[c * ncols + col] = run;
      run += v;
    }
  }
}

// x's T in, U out (U = T, or double for int32 input).
template <class T, class U>
std::string run_cumsum(const T* x, U* y, int64_t outer, int64_t r, int64_t inner, bool reverse) {
  if (outer <= 0 || r <= 0 || inner <= 0) return "";
  Scratch sums;
  if (inner == 1 && r > 64) {
    const int64_t nchunks = cdiv(r, kScanChunk);
    const unsigned grid = grid_for(outer * nchunks, 1);
    if (nchunks > 1) {
      if (auto err = sums.get(sizeof(double) * outer * nchunks); !err.empty()) return err;
      cumsum_rows_kernel<T, U><<<grid, kThreads>>>(x, y, nullptr, sums.as<double>(), outer, r, nchunks, reverse, false);
      exclusive_scan_chunks<<<grid_for(outer), kThreads>>>(sums.as<double>(), outer, nchunks);
    }
    cumsum_rows_kernel<T, U><<<grid, kThreads>>>(x, y, sums.as<double>(), nullptr, outer, r, nchunks, reverse, true);
    return launched();
  }
  const int64_t ncols = outer * inner;
  const auto [nchunks, chunk] = column_chunks(ncols, r);
  dim3 grid(grid_for(ncols), static_cast<unsigned>(nchunks));
  if (nchunks > 1) {
    if (auto err = sums.get(sizeof(double) * ncols * nchunks); !err.empty()) return err;
    cumsum_cols_kernel<T, U><<<grid, kThreads>>>(x, y, nullptr, sums.as<double>(), outer, r, inner, chunk, reverse, false);
    exclusive_scan_chunks<<<grid_for(ncols), kThreads>>>(sums.as<double>(), ncols, nchunks);
  }
  cumsum_cols_kernel<T, U><<<grid, kThreads>>>(x, y, sums.as<double>(), nullptr, outer, r, inner, chunk, reverse, true);
  return launched();
}

// y[i] = wide[i] where it fits int32 (else 0, with *first lowered to i); first starts at ~0.
template <class W>
__global__ void narrow_i32_kernel(const W* __restrict__ wide, int32_t* __restrict__ y, int64_t n,
                                  unsigned long long* __restrict__ first) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const W v = wide[i];
    const bool fits = v >= W(INT32_MIN) && v <= W(INT32_MAX);
    y[i] = fits ? static_cast<int32_t>(v) : 0;
    if (!fits) atomicMin(first, static_cast<unsigned long long>(i));
  }
}

// Narrows the n values of `wide` into y and reads back the first that did not fit (-1: none).
template <class W>
std::string narrow_i32(const W* wide, int32_t* y, int64_t n, int64_t* overflowAt) {
  Scratch first;
  if (auto err = first.get(sizeof(unsigned long long)); !err.empty()) return err;
  if (auto err = checked(cudaMemsetAsync(first.as<void>(), 0xff, sizeof(unsigned long long), 0)); !err.empty()) return err;
  narrow_i32_kernel<W><<<grid_for(n), kThreads>>>(wide, y, n, first.as<unsigned long long>());
  if (auto err = launched(); !err.empty()) return err;
  unsigned long long at = 0;
  if (auto err = checked(cudaMemcpy(&at, first.as<void>(), sizeof at, cudaMemcpyDeviceToHost)); !err.empty()) return err;
  *overflowAt = at == ~0ull ? -1 : static_cast<int64_t>(at);
  return "";
}

}  // namespace

std::string sum_i32(const int32_t* x, int32_t* y, int64_t outer, int64_t r, int64_t inner, int64_t* overflowAt) {
  *overflowAt = -1;
  if (outer <= 0 || inner <= 0) return "";
  Scratch wide;
  if (auto err = wide.get(sizeof(long long) * outer * inner); !err.empty()) return err;
  if (auto err = run_reduce<RSumI, int32_t>(x, wide.as<long long>(), outer, r, inner); !err.empty()) return err;
  return narrow_i32(wide.as<long long>(), y, outer * inner, overflowAt);
}

std::string cumsum_i32(const int32_t* x, int32_t* y, int64_t outer, int64_t r, int64_t inner, bool reverse,
                       int64_t* overflowAt) {
  *overflowAt = -1;
  if (outer <= 0 || r <= 0 || inner <= 0) return "";
  Scratch wide;
  if (auto err = wide.get(sizeof(double) * outer * r * inner); !err.empty()) return err;
  if (auto err = run_cumsum<int32_t, double>(x, wide.as<double>(), outer, r, inner, reverse); !err.empty()) return err;
  return narrow_i32(wide.as<double>(), y, outer * r * inner, overflowAt);
}

std::string reduce(DType dtype, ReduceOp op, const void* x, void* y, int64_t outer, int64_t r, int64_t inner) {
  if (dtype == DType::F32) return reduce_float(op, static_cast<const float*>(x), static_cast<float*>(y), outer, r, inner);
  if (dtype == DType::F64) return reduce_float(op, static_cast<const double*>(x), static_cast<double*>(y), outer, r, inner);
  if (dtype != DType::I32) return "reduce: unsupported dtype";
  auto xi = static_cast<const int32_t*>(x);
  auto yi = static_cast<int32_t*>(y);
  switch (op) {
    case ReduceOp::Max: return run_reduce<RExt<int32_t, true>, int32_t>(xi, yi, outer, r, inner);
    case ReduceOp::Min: return run_reduce<RExt<int32_t, false>, int32_t>(xi, yi, outer, r, inner);
    default: return "reduce: int32 supports max and min here (sums go through sum_i32)";
  }
}

std::string arg_reduce(DType dtype, bool isMax, const void* x, int32_t* idx, int64_t outer, int64_t r, int64_t inner) {
  if (dtype == DType::F32) {
    auto xf = static_cast<const float*>(x);
    return isMax ? run_reduce<RArg<float, true>, float>(xf, idx, outer, r, inner)
                 : run_reduce<RArg<float, false>, float>(xf, idx, outer, r, inner);
  }
  if (dtype == DType::F64) {
    auto xd = static_cast<const double*>(x);
    return isMax ? run_reduce<RArg<double, true>, double>(xd, idx, outer, r, inner)
                 : run_reduce<RArg<double, false>, double>(xd, idx, outer, r, inner);
  }
  return "argmax: unsupported dtype";
}

std::string cumsum(DType dtype, const void* x, void* y, int64_t outer, int64_t r, int64_t inner, bool reverse) {
  if (dtype == DType::F32) return run_cumsum(static_cast<const float*>(x), static_cast<float*>(y), outer, r, inner, reverse);
  if (dtype == DType::F64) return run_cumsum(static_cast<const double*>(x), static_cast<double*>(y), outer, r, inner, reverse);
  return "cumsum: unsupported dtype";
}

}  // namespace cuda
}  // namespace kiln
