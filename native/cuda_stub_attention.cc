// CUDA attention entry points of a build without nvcc (see kernels/cuda/attention_api.h).
#include "../kernels/cuda/attention_api.h"

namespace kiln {
namespace cuda {
namespace {
const char* kNotBuilt = "kiln was built without CUDA (nvcc not found or KILN_CUDA=0)";
}
std::string attention_forward(AttnDType, const cpu::AttentionArgs&, const void*, const void*, const void*, void*,
                              float*) {
  return kNotBuilt;
}
std::string attention_backward(AttnDType, const cpu::AttentionArgs&, const void*, const void*, const void*,
                               const void*, const void*, const float*, void*, void*, void*) {
  return kNotBuilt;
}
}  // namespace cuda
}  // namespace kiln
