// CUDA twins of kernels/cpu/select.cc. sort: one block per row; every element gets an unsigned rank
// (order-preserving bits, -0 as +0, NaN the largest; inverted for ascending) and (rank desc, index
// asc) is a strict total order, so the result is unique and equals the CPU's. Rows of up to
// kSortCap elements are bitonic-sorted in shared memory; longer rows are bitonic-sorted in place in
// the outputs (correct for any length, slower). gather: one thread per index element. scatter-add:
// one thread per (outer, inner) position adding its j contributions in order (the CPU's order, no
// atomics, bit-equal). Both report the first bad index position with one atomicMin and a read-back.
#include <cuda_runtime.h>

#include <cstdint>

#include "core_common.cuh"
#include "select_api.h"

namespace kiln {
namespace cuda {
namespace {

using namespace core;
using cpu::AxisGeometry;
using cpu::DType;

constexpr int kSortCap = 2048;

__device__ __forceinline__ uint64_t rank_of(float v, bool descending) {
  uint32_t u = __float_as_uint(v == 0.0f ? 0.0f : v);
  u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  if (v != v) u = 0xffffffffu;
  return descending ? u : static_cast<uint32_t>(~u);
}
__device__ __forceinline__ uint64_t rank_of(double v, bool descending) {
  uint64_t u = static_cast<uint64_t>(__double_as_longlong(v == 0.0 ? 0.0 : v));
  u = (u & 0x8000000000000000ull) ? ~u : (u | 0x8000000000000000ull);
  if (v != v) u = ~0ull;
  return descending ? u : ~u;
}
__device__ __forceinline__ bool ranks_ahead(uint64_t ra, int32_t ia, uint64_t rb, int32_t ib) {
  return ra > rb || (ra == rb && ia < ib);
}

// Bitonic sort (best first) of n items with the "flip" first step, so any n works: the virtual
// padding up to a power of two ranks last and is never touched. Every thread of the block calls it.
template <class Acc>
__device__ void bitonic_sort(Acc& a, int64_t n) {
  int64_t p = 1;
  while (p < n) p <<= 1;
  for (int64_t size = 2; size <= p; size <<= 1) {
    const int64_t half = size >> 1;
    for (int64_t i = threadIdx.x; i < p / 2; i += blockDim.x) {
      const int64_t blk = i / half, off = i - blk * half;
      const int64_t lo = blk * size + off, hi = blk * size + size - 1 - off;
      if (hi < n && a.ahead(hi, lo)) a.swap(lo, hi);
    }
    __syncthreads();
    for (int64_t stride = half >> 1; stride > 0; stride >>= 1) {
      for (int64_t i = threadIdx.x; i < p / 2; i += blockDim.x) {
        const int64_t lo = (i / stride) * 2 * stride + i % stride, hi = lo + stride;
        if (hi < n && a.ahead(hi, lo)) a.swap(lo, hi);
      }
      __syncthreads();
    }
  }
}

struct SharedKeys {
  uint64_t* key;
  int32_t* id;
  __device__ bool ahead(int64_t i, int64_t j) const { return ranks_ahead(key[i], id[i], key[j], id[j]); }
  __device__ void swap(int64_t i, int64_t j) {
    const uint64_t k = key[i];
    key[i] = key[j];
    key[j] = k;
    const int32_t d = id[i];
    id[i] = id[j];
    id[j] = d;
  }
};

template <class T>
struct GlobalKeys {
  T* val;
  int32_t* id;
  bool descending;
  __device__ bool ahead(int64_t i, int64_t j) const {
    return ranks_ahead(rank_of(val[i], descending), id[i], rank_of(val[j], descending), id[j]);
  }
  __device__ void swap(int64_t i, int64_t j) {
    const T v = val[i];
    val[i] = val[j];
    val[j] = v;
    const int32_t d = id[i];
    id[i] = id[j];
    id[j] = d;
  }
};

template <class T>
__global__ void sort_kernel(const T* __restrict__ x, T* __restrict__ values, int32_t* __restrict__ indices, int64_t rows,
                            int64_t n, bool descending) {
  __shared__ uint64_t skey[kSortCap];
  __shared__ int32_t sid[kSortCap];
  SharedKeys sk{skey, sid};
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * n;
    T* vr = values + row * n;
    int32_t* ir = indices + row * n;
    if (n <= kSortCap) {
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        skey[i] = rank_of(xr[i], descending);
        sid[i] = static_cast<int32_t>(i);
      }
      __syncthreads();
      bitonic_sort(sk, n);
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        vr[i] = xr[sid[i]];
        ir[i] = sid[i];
      }
    } else {
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        vr[i] = xr[i];
        ir[i] = static_cast<int32_t>(i);
      }
      __syncthreads();
      GlobalKeys<T> gk{vr, ir, descending};
      bitonic_sort(gk, n);
    }
    __syncthreads();  // shared keys are reused by the next row
  }
}

template <class T>
std::string run_sort(const T* x, T* values, int32_t* indices, int64_t rows, int64_t n, bool descending) {
  if (rows <= 0 || n <= 0) return "";
  if (n > INT32_MAX) return "sort: rows longer than 2^31 - 1 elements";
  sort_kernel<T><<<grid_for(rows, 1), kThreads>>>(x, values, indices, rows, n, descending);
  return launched();
}

// The offsets of the position `rem` of dims [lo, hi) under three stride sets.
__device__ __forceinline__ void split_offsets(const AxisGeometry& g, int lo, int hi, int64_t rem, int64_t* data, int64_t* idx,
                                              int64_t* dense) {
  for (int d = hi - 1; d >= lo; --d) {
    const int64_t c = rem % g.shape[d];
    rem /= g.shape[d];
    *data += c * g.dataStride[d];
    *idx += c * g.idxStride[d];
    *dense += c * g.denseStride[d];
  }
}

template <class T>
__global__ void gather_kernel(const T* __restrict__ data, const int32_t* __restrict__ idx, T* __restrict__ dense, AxisGeometry g,
                              int64_t total, unsigned long long* firstBad) {
  const int a = g.axis;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    int64_t od = 0, oi = 0, os = 0;
    split_offsets(g, 0, g.ndim, e, &od, &oi, &os);  // od includes p[a] * stride: removed below
    int64_t inner = 1;
    for (int d = a + 1; d < g.ndim; ++d) inner *= g.shape[d];
    const int64_t j = (e / inner) % g.shape[a];
    const int32_t v = idx[oi];
    if (static_cast<uint32_t>(v) >= static_cast<uint64_t>(g.n)) {
      atomicMin(firstBad, static_cast<unsigned long long>(e));
      continue;
    }
    dense[os] = data[od + (v - j) * g.dataStride[a]];
  }
}

template <class T>
__global__ void scatter_add_kernel(T* __restrict__ data, const int32_t* __restrict__ idx, const T* __restrict__ dense, AxisGeometry g,
                                   int64_t pairs, int64_t inner, unsigned long long* firstBad) {
  const int a = g.axis;
  const int64_t m = g.shape[a];
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < pairs; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = t / inner, i = t - r * inner;
    int64_t od = 0, oi = 0, os = 0;
    split_offsets(g, 0, a, r, &od, &oi, &os);
    split_offsets(g, a + 1, g.ndim, i, &od, &oi, &os);
    for (int64_t j = 0; j < m; ++j) {
      const int32_t v = idx[oi + j * g.idxStride[a]];
      if (static_cast<uint32_t>(v) >= static_cast<uint64_t>(g.n)) {
        atomicMin(firstBad, static_cast<unsigned long long>((r * m + j) * inner + i));
        continue;
      }
      data[od + v * g.dataStride[a]] += dense[os + j * g.denseStride[a]];
    }
  }
}

// Launches `launch(firstBad)` and reads the first bad position back into *bad.
template <class F>
std::string with_bad_flag(int64_t* bad, F launch) {
  Scratch first;
  if (auto err = first.get(sizeof(unsigned long long)); !err.empty()) return err;
  if (auto err = checked(cudaMemsetAsync(first.as<void>(), 0xff, sizeof(unsigned long long), 0)); !err.empty()) return err;
  launch(first.as<unsigned long long>());
  if (auto err = launched(); !err.empty()) return err;
  unsigned long long at = 0;
  if (auto err = checked(cudaMemcpy(&at, first.as<void>(), sizeof at, cudaMemcpyDeviceToHost)); !err.empty()) return err;
  *bad = at == ~0ull ? -1 : static_cast<int64_t>(at);
  return "";
}

void split_counts(const AxisGeometry& g, int64_t* rows, int64_t* inner) {
  *rows = 1;
  *inner = 1;
  for (int d = 0; d < g.axis; ++d) *rows *= g.shape[d];
  for (int d = g.axis + 1; d < g.ndim; ++d) *inner *= g.shape[d];
}

template <class T>
std::string run_gather(const T* data, const int32_t* idx, T* dense, const AxisGeometry& g, int64_t* bad) {
  int64_t rows, inner;
  split_counts(g, &rows, &inner);
  const int64_t total = rows * g.shape[g.axis] * inner;
  if (total <= 0) return "";
  return with_bad_flag(bad, [&](unsigned long long* first) {
    gather_kernel<T><<<grid_for(total, kThreads, int64_t(sm_count()) * 32), kThreads>>>(data, idx, dense, g, total, first);
  });
}

template <class T>
std::string run_scatter_add(T* data, const int32_t* idx, const T* dense, const AxisGeometry& g, int64_t* bad) {
  int64_t rows, inner;
  split_counts(g, &rows, &inner);
  const int64_t pairs = rows * inner;
  if (pairs <= 0 || g.shape[g.axis] <= 0) return "";
  return with_bad_flag(bad, [&](unsigned long long* first) {
    scatter_add_kernel<T><<<grid_for(pairs, kThreads, int64_t(sm_count()) * 32), kThreads>>>(data, idx, dense, g, pairs, inner, first);
  });
}

}  // namespace

std::string sort_rows(DType dtype, const void* x, void* values, int32_t* indices, int64_t rows, int64_t n, bool descending) {
  if (dtype == DType::F32)
    return run_sort(static_cast<const float*>(x), static_cast<float*>(values), indices, rows, n, descending);
  if (dtype == DType::F64)
    return run_sort(static_cast<const double*>(x), static_cast<double*>(values), indices, rows, n, descending);
  return "sort: unsupported dtype";
}

std::string gather_axis(int elemBytes, const void* data, const int32_t* idx, void* dense, const AxisGeometry& g, int64_t* bad) {
  *bad = -1;
  if (elemBytes == 2) return run_gather(static_cast<const uint16_t*>(data), idx, static_cast<uint16_t*>(dense), g, bad);
  if (elemBytes == 4) return run_gather(static_cast<const uint32_t*>(data), idx, static_cast<uint32_t*>(dense), g, bad);
  if (elemBytes == 8)
    return run_gather(static_cast<const unsigned long long*>(data), idx, static_cast<unsigned long long*>(dense), g, bad);
  return "gather: unsupported element size";
}

std::string scatter_add_axis(DType dtype, void* data, const int32_t* idx, const void* dense, const AxisGeometry& g, int64_t* bad) {
  *bad = -1;
  if (dtype == DType::F32) return run_scatter_add(static_cast<float*>(data), idx, static_cast<const float*>(dense), g, bad);
  if (dtype == DType::F64) return run_scatter_add(static_cast<double*>(data), idx, static_cast<const double*>(dense), g, bad);
  return "scatterAdd: unsupported dtype";
}

}  // namespace cuda
}  // namespace kiln
