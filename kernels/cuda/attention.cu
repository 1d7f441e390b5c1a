// Placeholder while the CUDA attention kernels are written (see kernels/cuda/attention_api.h).
#include "attention_api.h"

namespace kiln {
namespace cuda {
std::string attention_forward(AttnDType, const cpu::AttentionArgs&, const void*, const void*, const void*, void*,
                              float*) {
  return "the CUDA attention kernel is not built yet";
}
std::string attention_backward(AttnDType, const cpu::AttentionArgs&, const void*, const void*, const void*,
                               const void*, const void*, const float*, void*, void*, void*) {
  return "the CUDA attention kernel is not built yet";
}
}  // namespace cuda
}  // namespace kiln
