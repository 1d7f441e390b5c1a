// The CUDA matrix product of a build without nvcc (see kernels/cuda/gemm_api.h).
#include "../kernels/cuda/gemm_api.h"

namespace kiln {
namespace cuda {
std::string gemm(GemmType, GemmType, MatmulPrecision, const GemmArgs&) {
  return "kiln was built without CUDA (nvcc not found or KILN_CUDA=0)";
}
}  // namespace cuda
}  // namespace kiln
