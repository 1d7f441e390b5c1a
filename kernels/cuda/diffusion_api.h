// CUDA diffusion kernels as seen from native/ (no CUDA headers). Same semantics as
// kernels/cpu/diffusion.h; pointers are device pointers (coef is float64 [rows, 8] on the device).
// Each returns "" on success or the CUDA error message. CPU-only builds: native/cuda_stub_diffusion.cc.
#pragma once
#include <cstdint>
#include <string>

#include "../cpu/diffusion.h"
#include "../cpu/elementwise.h"

namespace kiln {
namespace cuda {

std::string diffusion_step(cpu::DType dt, const cpu::DiffusionSpec& s, const void* coef, const void* x, const void* y,
                           const void* noise, void* out, void* x0_out, void* noise_out);
std::string nearest_rows(cpu::DType dt, const void* x, const void* E, int64_t m, int64_t v, int64_t d, void* idx,
                         void* snapped);

}  // namespace cuda
}  // namespace kiln
