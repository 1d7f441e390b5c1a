// The Hopper (sm_90a) half-precision matrix product of kernels/cuda/gemm_sm90.cu (the default for
// large float16/bfloat16 products on compute capability 9.x), as gemm.cu's
// dispatch sees it. Internal to kernels/cuda (native/ only sees gemm_api.h), so CPU-only builds
// need no stub. Compiled only where the CUDA build defines KILN_GEMM_SM90 (nvcc 12 or newer).
#pragma once
#include <string>

#include "gemm_api.h"

namespace kiln {
namespace cuda {

// When gemm() offers its float16/bfloat16 calls to gemm_sm90 first (read once per process): Never
// off compute capability 9.x or with KILN_GEMM_KERNEL=mma; Always with KILN_GEMM_KERNEL=wgmma;
// otherwise (the default) Large: the products gemm_sm90_pays_off accepts (K >= 256 and at least
// a third of a wave of 128 x 256 tiles: where it measured faster than mma.sync on an H100).
enum class Sm90Choice { Never, Large, Always };
Sm90Choice gemm_sm90_choice();
bool gemm_sm90_pays_off(const GemmArgs& args);

// "" when gemm_sm90 takes the call, otherwise why not (element types, alignment of the operands
// for the tensor-memory-access unit, K = 0, the device, the driver entry point).
std::string gemm_sm90_unsupported(GemmType ab, GemmType c, const GemmArgs& args);

// C = alpha * op(A) * op(B) + beta * C (gemm_api.h's semantics) with warpgroup MMA fed by TMA.
// `handled` is false, and nothing ran, when the call is not supported: the caller then runs the
// portable kernels. Otherwise returns "" or the CUDA error of the launch.
std::string gemm_sm90(GemmType ab, GemmType c, const GemmArgs& args, bool& handled);

}  // namespace cuda
}  // namespace kiln
