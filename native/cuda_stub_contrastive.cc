// Contrastive CUDA entry points in a build without nvcc: every call says why it cannot run.
#include "../kernels/cuda/contrastive_api.h"

namespace kiln {
namespace cuda {
namespace {
const char* kNotBuilt = "kiln was built without CUDA (nvcc not found or KILN_CUDA=0)";
}
std::string nce_forward(cpu::DType, const cpu::NceSpec&, const void*, const void*, void*, void*, void*, void*) { return kNotBuilt; }
std::string nce_backward(cpu::DType, const cpu::NceSpec&, const void*, const void*, const void*, const void*, void*, void*) {
  return kNotBuilt;
}
std::string dissl_ce_forward(cpu::DType, const void*, const void*, void*, int64_t, int64_t, double, double) { return kNotBuilt; }
std::string dissl_ce_backward(cpu::DType, const void*, const void*, const void*, void*, void*, int64_t, int64_t, double, double) {
  return kNotBuilt;
}
std::string mean_entropy_forward(cpu::DType, const void*, void*, void*, int64_t, int64_t, double) { return kNotBuilt; }
std::string mean_entropy_backward(cpu::DType, const void*, const void*, double, void*, int64_t, int64_t, double) { return kNotBuilt; }
}  // namespace cuda
}  // namespace kiln
