// CUDA top-k along the last axis of [rows, n], the order of kernels/cpu/reduce.cc: values sorted
// best first, NaN ranked largest, ties by lower index. Each element gets an unsigned rank (the
// order-preserving bit pattern of its value; -0 equals +0; inverted for smallest), and (rank desc,
// index asc) is a strict total order, so the result is unique. One block per row: rows of up to
// kSortCap elements are sorted whole in shared memory; longer rows first find the k-th rank by an
// 8-bit radix select, gather the k winners (ties by index order) into the outputs, then sort those.
#include <cuda_runtime.h>

#include <cstdint>

#include "core_api.h"
#include "core_common.cuh"

namespace kiln {
namespace cuda {
namespace {

using namespace core;
using cpu::DType;

constexpr int kSortCap = 2048;

__device__ __forceinline__ uint64_t rank_of(float v, bool largest) {
  uint32_t u = __float_as_uint(v == 0.0f ? 0.0f : v);
  u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  if (v != v) u = 0xffffffffu;
  return largest ? u : static_cast<uint32_t>(~u);
}
__device__ __forceinline__ uint64_t rank_of(double v, bool largest) {
  uint64_t u = static_cast<uint64_t>(__double_as_longlong(v == 0.0 ? 0.0 : v));
  u = (u & 0x8000000000000000ull) ? ~u : (u | 0x8000000000000000ull);
  if (v != v) u = ~0ull;
  return largest ? u : ~u;
}

__device__ __forceinline__ bool ranks_ahead(uint64_t ra, int64_t ia, uint64_t rb, int64_t ib) {
  return ra > rb || (ra == rb && ia < ib);
}

// Bitonic sort (best first) of n items with the "flip" first step, so any n works: the virtual
// padding up to a power of two ranks last and never moves, and comparisons against it are skipped.
// Acc: bool ahead(i, j); void swap(i, j). Every thread of the block calls it.
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
  bool largest;
  __device__ bool ahead(int64_t i, int64_t j) const {
    return ranks_ahead(rank_of(val[i], largest), id[i], rank_of(val[j], largest), id[j]);
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
__global__ void topk_kernel(const T* __restrict__ x, T* __restrict__ values, int32_t* __restrict__ indices, int64_t rows,
                            int64_t n, int64_t k, bool largest) {
  __shared__ uint64_t skey[kSortCap];
  __shared__ int32_t sid[kSortCap];
  __shared__ unsigned hist[256];
  __shared__ unsigned warpGt[kWarps], warpEq[kWarps];
  __shared__ uint64_t sPrefix;
  __shared__ int64_t sRemain;
  constexpr int kBits = sizeof(T) * 8;
  const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
  SharedKeys sk{skey, sid};
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * n;
    T* vr = values + row * k;
    int32_t* ir = indices + row * k;
    if (n <= kSortCap) {
      for (int64_t i = tid; i < n; i += blockDim.x) {
        skey[i] = rank_of(xr[i], largest);
        sid[i] = static_cast<int32_t>(i);
      }
      __syncthreads();
      bitonic_sort(sk, n);
      for (int64_t i = tid; i < k; i += blockDim.x) {
        vr[i] = xr[sid[i]];
        ir[i] = sid[i];
      }
      __syncthreads();
      continue;
    }
    // Radix select: the rank R of the k-th best element and how many elements of rank R to take.
    if (tid == 0) {
      sPrefix = 0;
      sRemain = k;
    }
    uint64_t mask = 0;
    for (int shift = kBits - 8; shift >= 0; shift -= 8) {
      for (int i = tid; i < 256; i += blockDim.x) hist[i] = 0;
      __syncthreads();
      const uint64_t prefix = sPrefix;
      for (int64_t i = tid; i < n; i += blockDim.x) {
        const uint64_t r = rank_of(xr[i], largest);
        if ((r & mask) == prefix) atomicAdd(&hist[(r >> shift) & 255], 1u);
      }
      __syncthreads();
      if (tid == 0) {
        int64_t remain = sRemain, above = 0;
        int d = 255;
        for (; d > 0; --d) {
          if (above + hist[d] >= remain) break;
          above += hist[d];
        }
        sRemain = remain - above;
        sPrefix = prefix | (static_cast<uint64_t>(d) << shift);
      }
      mask |= uint64_t(255) << shift;
      __syncthreads();
    }
    const uint64_t R = sPrefix;
    const int64_t ties = sRemain, above = k - ties;
    // Gather: every element ranked above R, and the first `ties` elements of rank R in index order.
    int64_t gtBase = 0, eqBase = 0;
    const unsigned lt = (1u << lane) - 1u;
    for (int64_t base = 0; base < n; base += blockDim.x) {
      const int64_t i = base + tid;
      const uint64_t r = i < n ? rank_of(xr[i], largest) : 0;
      const bool gt = i < n && r > R, eq = i < n && r == R;
      const unsigned bg = __ballot_sync(kFull, gt), be = __ballot_sync(kFull, eq);
      if (lane == 0) {
        warpGt[w] = __popc(bg);
        warpEq[w] = __popc(be);
      }
      __syncthreads();
      int64_t preG = 0, preE = 0, totG = 0, totE = 0;
      for (int j = 0; j < kWarps; ++j) {
        if (j < w) {
          preG += warpGt[j];
          preE += warpEq[j];
        }
        totG += warpGt[j];
        totE += warpEq[j];
      }
      if (gt) {
        const int64_t slot = gtBase + preG + __popc(bg & lt);
        vr[slot] = xr[i];
        ir[slot] = static_cast<int32_t>(i);
      } else if (eq) {
        const int64_t ord = eqBase + preE + __popc(be & lt);
        if (ord < ties) {
          vr[above + ord] = xr[i];
          ir[above + ord] = static_cast<int32_t>(i);
        }
      }
      gtBase += totG;
      eqBase += totE;
      __syncthreads();
    }
    // Sort the k winners (global writes above are visible to the block after the barrier).
    if (k <= kSortCap) {
      for (int64_t i = tid; i < k; i += blockDim.x) {
        skey[i] = rank_of(vr[i], largest);
        sid[i] = ir[i];
      }
      __syncthreads();
      bitonic_sort(sk, k);
      for (int64_t i = tid; i < k; i += blockDim.x) {
        vr[i] = xr[sid[i]];
        ir[i] = sid[i];
      }
    } else {
      GlobalKeys<T> gk{vr, ir, largest};
      bitonic_sort(gk, k);
    }
    __syncthreads();
  }
}

template <class T>
std::string run_topk(const T* x, T* values, int32_t* indices, int64_t rows, int64_t n, int64_t k, bool largest) {
  if (rows <= 0 || n <= 0 || k <= 0) return "";
  if (k > n) return "topk: k > n";
  if (n > INT32_MAX) return "topk: rows longer than 2^31 - 1 elements";
  topk_kernel<T><<<grid_for(rows, 1), kThreads>>>(x, values, indices, rows, n, k, largest);
  return launched();
}

}  // namespace

std::string topk(DType dtype, const void* x, void* values, int32_t* indices, int64_t rows, int64_t n, int64_t k,
                 bool largest) {
  if (dtype == DType::F32)
    return run_topk(static_cast<const float*>(x), static_cast<float*>(values), indices, rows, n, k, largest);
  if (dtype == DType::F64)
    return run_topk(static_cast<const double*>(x), static_cast<double*>(values), indices, rows, n, k, largest);
  return "topk: unsupported dtype";
}

}  // namespace cuda
}  // namespace kiln
