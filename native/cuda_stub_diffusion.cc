// Diffusion CUDA entry points in a build without nvcc: every call says why it cannot run.
#include "../kernels/cuda/diffusion_api.h"

namespace kiln {
namespace cuda {
namespace {
const char* kNotBuilt = "kiln was built without CUDA (nvcc not found or KILN_CUDA=0)";
}
std::string diffusion_step(cpu::DType, const cpu::DiffusionSpec&, const void*, const void*, const void*, const void*, void*, void*,
                           void*) {
  return kNotBuilt;
}
std::string nearest_rows(cpu::DType, const void*, const void*, int64_t, int64_t, int64_t, void*, void*) { return kNotBuilt; }
}  // namespace cuda
}  // namespace kiln
