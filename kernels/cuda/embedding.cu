// CUDA embedding gather/scatter and index validation (kernels/cpu/embedding.cc semantics).
// The backward is deterministic without float atomics: a stable radix sort of (index, position)
// groups equal indices with their positions ascending, and one thread per (group, column) adds
// the group's rows in that order, exactly the CPU's summation order, so the result is bit-equal to
// the CPU's. Rows are moved as 16-byte vectors when D and the pointers allow.
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <cub/device/device_radix_sort.cuh>

#include "core_api.h"
#include "core_common.cuh"

namespace kiln {
namespace cuda {
namespace {

using namespace core;
using cpu::DType;

template <class U> __device__ __forceinline__ U zero_unit() { return U{}; }
template <class T> __device__ __forceinline__ void add_unit(T& a, const T& b) { a += b; }
template <class T> __device__ __forceinline__ void add_unit(Vec16<T>& a, const Vec16<T>& b) {
#pragma unroll
  for (int i = 0; i < Vec16<T>::kN; ++i) a.v[i] += b.v[i];
}

// out[i, :] = weight[idx[i], :] over units U (T or Vec16<T>), DU units per row.
template <class U>
__global__ void gather_kernel(const U* __restrict__ w, const int32_t* __restrict__ idx, U* __restrict__ out, int64_t n, int64_t V,
                              int64_t DU) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n * DU; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / DU, j = e - i * DU;
    const int32_t v = idx[i];
    out[e] = (v >= 0 && v < V) ? w[int64_t(v) * DU + j] : zero_unit<U>();  // validated upstream; never read outside
  }
}

__global__ void iota_kernel(int32_t* p, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    p[i] = static_cast<int32_t>(i);
}

// keys sorted (stable), pos the original positions. The thread at the first position of a run of
// equal keys sums that run's rows for its column, in position order.
template <class U>
__global__ void segment_sum_kernel(const U* __restrict__ dout, const uint32_t* __restrict__ keys, const int32_t* __restrict__ pos,
                                   U* __restrict__ dweight, int64_t n, int64_t V, int64_t DU) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n * DU; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t s = e / DU, j = e - s * DU;
    const uint32_t key = keys[s];
    if ((s > 0 && keys[s - 1] == key) || key >= V) continue;
    U acc = zero_unit<U>();
    for (int64_t t = s; t < n && keys[t] == key; ++t) add_unit(acc, dout[int64_t(pos[t]) * DU + j]);
    dweight[int64_t(key) * DU + j] = acc;
  }
}

__global__ void find_invalid_kernel(const int32_t* __restrict__ idx, int64_t n, int32_t lo, int32_t hi, int32_t allowed,
                                    unsigned long long* first) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int32_t v = idx[i];
    if ((v < lo || v >= hi) && v != allowed) atomicMin(first, static_cast<unsigned long long>(i));
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

template <class T>
std::string run_forward(const T* w, const int32_t* idx, T* out, int64_t n, int64_t V, int64_t D) {
  if (n <= 0 || D <= 0) return "";
  constexpr int W = Vec16<T>::kN;
  if (D % W == 0 && aligned16(w) && aligned16(out)) {
    const int64_t DU = D / W;
    gather_kernel<Vec16<T>><<<grid_for(n * DU), kThreads>>>(reinterpret_cast<const Vec16<T>*>(w), idx,
                                                             reinterpret_cast<Vec16<T>*>(out), n, V, DU);
  } else {
    gather_kernel<T><<<grid_for(n * D), kThreads>>>(w, idx, out, n, V, D);
  }
  return launched();
}

template <class T>
std::string run_backward(const T* dout, const int32_t* idx, T* dweight, int64_t n, int64_t V, int64_t D) {
  if (V <= 0 || D <= 0) return "";
  if (auto err = checked(cudaMemsetAsync(dweight, 0, sizeof(T) * V * D, 0)); !err.empty()) return err;
  if (n <= 0) return "";
  if (n > INT32_MAX) return "embedding backward: more than 2^31 - 1 indices";
  int endBit = 1;
  while (endBit < 32 && (uint64_t(1) << endBit) < uint64_t(V)) ++endBit;
  const int items = static_cast<int>(n);
  const uint32_t* keysIn = reinterpret_cast<const uint32_t*>(idx);  // validated: non-negative
  size_t tempBytes = 0;
  if (auto err = checked(cub::DeviceRadixSort::SortPairs(nullptr, tempBytes, keysIn, static_cast<uint32_t*>(nullptr),
                                                         static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr),
                                                         items, 0, endBit, cudaStream_t(0)));
      !err.empty())
    return err;
  Scratch keys, posIn, posOut, temp;
  for (auto err : {keys.get(sizeof(uint32_t) * n), posIn.get(sizeof(int32_t) * n), posOut.get(sizeof(int32_t) * n),
                   temp.get(tempBytes)})
    if (!err.empty()) return err;
  iota_kernel<<<grid_for(n), kThreads>>>(posIn.as<int32_t>(), n);
  if (auto err = checked(cub::DeviceRadixSort::SortPairs(temp.as<void>(), tempBytes, keysIn, keys.as<uint32_t>(),
                                                         posIn.as<int32_t>(), posOut.as<int32_t>(), items, 0, endBit,
                                                         cudaStream_t(0)));
      !err.empty())
    return err;
  constexpr int W = Vec16<T>::kN;
  if (D % W == 0 && aligned16(dout) && aligned16(dweight)) {
    const int64_t DU = D / W;
    segment_sum_kernel<Vec16<T>><<<grid_for(n * DU), kThreads>>>(reinterpret_cast<const Vec16<T>*>(dout), keys.as<uint32_t>(),
                                                                  posOut.as<int32_t>(), reinterpret_cast<Vec16<T>*>(dweight),
                                                                  n, V, DU);
  } else {
    segment_sum_kernel<T><<<grid_for(n * D), kThreads>>>(dout, keys.as<uint32_t>(), posOut.as<int32_t>(), dweight, n, V, D);
  }
  return launched();
}

}  // namespace

std::string embedding_forward(DType dtype, const void* weight, const int32_t* idx, void* out, int64_t n, int64_t V, int64_t D) {
  if (dtype == DType::F32) return run_forward(static_cast<const float*>(weight), idx, static_cast<float*>(out), n, V, D);
  if (dtype == DType::F64) return run_forward(static_cast<const double*>(weight), idx, static_cast<double*>(out), n, V, D);
  return "embedding: unsupported dtype";
}

std::string embedding_backward(DType dtype, const void* dout, const int32_t* idx, void* dweight, int64_t n, int64_t V, int64_t D) {
  if (dtype == DType::F32) return run_backward(static_cast<const float*>(dout), idx, static_cast<float*>(dweight), n, V, D);
  if (dtype == DType::F64) return run_backward(static_cast<const double*>(dout), idx, static_cast<double*>(dweight), n, V, D);
  return "embedding backward: unsupported dtype";
}

std::string find_invalid_index(const int32_t* idx, int64_t n, int32_t lo, int32_t hi, int32_t allowed, int64_t* pos,
                               int32_t* value) {
  *pos = -1;
  if (n <= 0) return "";
  Scratch first;
  if (auto err = first.get(sizeof(unsigned long long)); !err.empty()) return err;
  if (auto err = checked(cudaMemsetAsync(first.as<void>(), 0xff, sizeof(unsigned long long), 0)); !err.empty()) return err;
  find_invalid_kernel<<<grid_for(n, kThreads, int64_t(sm_count()) * 8), kThreads>>>(idx, n, lo, hi, allowed,
                                                                                  first.as<unsigned long long>());
  if (auto err = launched(); !err.empty()) return err;
  unsigned long long at = 0;
  if (auto err = checked(cudaMemcpy(&at, first.as<void>(), sizeof at, cudaMemcpyDeviceToHost)); !err.empty()) return err;
  if (at == ~0ull) return "";
  *pos = static_cast<int64_t>(at);
  return checked(cudaMemcpy(value, idx + at, sizeof(int32_t), cudaMemcpyDeviceToHost));
}

}  // namespace cuda
}  // namespace kiln
