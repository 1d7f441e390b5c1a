// CUDA im2col / col2im (kernels/cpu/conv.cc semantics): plain grid-stride loops. im2col has one
// thread per column-matrix element; col2im one thread per input element, which adds its taps in
// (th, tw) order from zero, the CPU's order, so the result is bit-equal and needs no atomics.
#include <cuda_runtime.h>

#include <cstdint>

#include "conv_api.h"
#include "core_common.cuh"

namespace kiln {
namespace cuda {
namespace {

using namespace core;
using cpu::ConvGeometry;
using cpu::DType;

template <class T>
__global__ void im2col_kernel(const T* __restrict__ x, T* __restrict__ cols, ConvGeometry g, T padValue, int64_t total) {
  const int64_t L = g.Ho * g.Wo, kk = g.kH * g.kW;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = e / L, l = e - r * L, oh = l / g.Wo, ow = l - oh * g.Wo;
    const int64_t nc = r / kk, tap = r - nc * kk, th = tap / g.kW, tw = tap - th * g.kW;
    const int64_t ih = oh * g.sH - g.pH + th * g.dH, iw = ow * g.sW - g.pW + tw * g.dW;
    cols[e] = (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W) ? x[(nc * g.H + ih) * g.W + iw] : padValue;
  }
}

template <class T>
__global__ void col2im_kernel(const T* __restrict__ cols, T* __restrict__ dx, ConvGeometry g, int64_t total) {
  const int64_t HW = g.H * g.W, kk = g.kH * g.kW;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t nc = e / HW, p = e - nc * HW, ih = p / g.W, iw = p - ih * g.W;
    T acc = T(0);
    for (int64_t th = 0; th < g.kH; ++th) {
      const int64_t a = ih + g.pH - th * g.dH;  // = oh sH
      if (a < 0 || a % g.sH != 0 || a / g.sH >= g.Ho) continue;
      const int64_t oh = a / g.sH;
      for (int64_t tw = 0; tw < g.kW; ++tw) {
        const int64_t b = iw + g.pW - tw * g.dW;  // = ow sW
        if (b < 0 || b % g.sW != 0 || b / g.sW >= g.Wo) continue;
        acc += cols[((nc * kk + th * g.kW + tw) * g.Ho + oh) * g.Wo + b / g.sW];
      }
    }
    dx[e] = acc;
  }
}

template <class T>
std::string run_im2col(const T* x, T* cols, const ConvGeometry& g, double padValue) {
  const int64_t total = g.N * g.C * g.kH * g.kW * g.Ho * g.Wo;
  if (total <= 0) return "";
  im2col_kernel<T><<<grid_for(total, kThreads, int64_t(sm_count()) * 32), kThreads>>>(x, cols, g, T(padValue), total);
  return launched();
}

template <class T>
std::string run_col2im(const T* cols, T* dx, const ConvGeometry& g) {
  const int64_t total = g.N * g.C * g.H * g.W;
  if (total <= 0) return "";
  col2im_kernel<T><<<grid_for(total, kThreads, int64_t(sm_count()) * 32), kThreads>>>(cols, dx, g, total);
  return launched();
}

}  // namespace

std::string im2col(DType dtype, const void* x, void* cols, const ConvGeometry& g, double padValue) {
  if (dtype == DType::F32) return run_im2col(static_cast<const float*>(x), static_cast<float*>(cols), g, padValue);
  if (dtype == DType::F64) return run_im2col(static_cast<const double*>(x), static_cast<double*>(cols), g, padValue);
  return "im2col: unsupported dtype";
}

std::string col2im(DType dtype, const void* cols, void* dx, const ConvGeometry& g) {
  if (dtype == DType::F32) return run_col2im(static_cast<const float*>(cols), static_cast<float*>(dx), g);
  if (dtype == DType::F64) return run_col2im(static_cast<const double*>(cols), static_cast<double*>(dx), g);
  return "col2im: unsupported dtype";
}

}  // namespace cuda
}  // namespace kiln
