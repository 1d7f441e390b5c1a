// CUDA im2col / col2im as seen from native/ (no CUDA headers): kernels/cpu/conv.h semantics on device
// pointers, F32 or F64. Each returns "" or the CUDA error. CPU-only builds: native/cuda_stub_core.cc.
#pragma once
#include <string>

#include "../cpu/conv.h"
#include "../cpu/elementwise.h"

namespace kiln {
namespace cuda {

std::string im2col(cpu::DType dtype, const void* x, void* cols, const cpu::ConvGeometry& g, double padValue);
// dx overwritten; bit-equal to the CPU's col2im.
std::string col2im(cpu::DType dtype, const void* cols, void* dx, const cpu::ConvGeometry& g);

}  // namespace cuda
}  // namespace kiln
