// Pieces shared by kiln's GEMM kernels (gemm.cu's mma.sync kernels and gemm_sm90.cu's wgmma kernel):
// the tile order, the epilogue's output element types, and the host's device query (CUDA error text
// from core_common.cuh).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "core_common.cuh"

namespace kiln {
namespace cuda {
namespace gemm_detail {

// The tile at linear index `tile`, in groups of 8 tile rows so that blocks running together
// share A rows and B columns in L2.
__device__ __forceinline__ void tile_coords(int64_t tile, int64_t tilesM, int64_t tilesN, int64_t& tm, int64_t& tn) {
  constexpr int64_t G = 8;
  const int64_t perGroup = G * tilesN;
  const int64_t group = tile / perGroup;
  const int64_t first = group * G;
  const int64_t rows = tilesM - first < G ? tilesM - first : G;
  const int64_t in = tile - group * perGroup;
  tm = first + in % rows;
  tn = in / rows;
}

// Output element types: packing accumulator pairs, reading C for beta, converting from float32.

template <class O> struct Out;
template <> struct Out<float> {
  using Pair = float2;
  __device__ static float2 pack(float a, float b) { return make_float2(a, b); }
  __device__ static float2 unpack(float2 v) { return v; }
  __device__ static float load(const float* p) { return *p; }
  __device__ static float from(float v) { return v; }
};
template <> struct Out<__nv_bfloat16> {
  using Pair = __nv_bfloat162;
  __device__ static __nv_bfloat162 pack(float a, float b) { return __floats2bfloat162_rn(a, b); }
  __device__ static float2 unpack(__nv_bfloat162 v) { return __bfloat1622float2(v); }
  __device__ static float load(const __nv_bfloat16* p) { return __bfloat162float(*p); }
  __device__ static __nv_bfloat16 from(float v) { return __float2bfloat16_rn(v); }
};
template <> struct Out<__half> {
  using Pair = __half2;
  __device__ static __half2 pack(float a, float b) { return __floats2half2_rn(a, b); }
  __device__ static float2 unpack(__half2 v) { return __half22float2(v); }
  __device__ static float load(const __half* p) { return __half2float(*p); }
  __device__ static __half from(float v) { return __float2half_rn(v); }
};

using core::error_string;  // core_common.cuh: a CUDA error's name and text
using core::launched;      // "" or the last launch's error

// The current device's attributes, queried once per process; `error` is set when the query failed.
struct DeviceInfo {
  int sms = 0, major = 0, smemOptin = 0;
  std::string error;
};

inline const DeviceInfo& device_info() {
  static const DeviceInfo info = [] {
    DeviceInfo d;
    int dev = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&d.sms, cudaDevAttrMultiProcessorCount, dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&d.major, cudaDevAttrComputeCapabilityMajor, dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&d.smemOptin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    if (e != cudaSuccess) {
      cudaGetLastError();
      d.error = error_string(e);
    }
    return d;
  }();
  return info;
}

}  // namespace gemm_detail
}  // namespace cuda
}  // namespace kiln
