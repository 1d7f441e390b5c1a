// Pieces shared by kiln's GEMM kernels (gemm.cu's mma.sync kernels and gemm_sm90.cu's wgmma kernel):
// the tile order and the epilogue's output element types.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

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

}  // namespace gemm_detail
}  // namespace cuda
}  // namespace kiln
