// The CUDA attention kernels (kernels/cuda/attention.cu) as seen from native/: no CUDA headers.
// Without a CUDA build native/cuda_stub_attention.cc defines them to report "built without CUDA".
// Pointers are device memory; q, k, v, out, dout, dq, dk, dv have the element type `dtype`; lse is
// float32 [B, H, Tq]. Same semantics as kernels/cpu/attention.h. Returns "" or the error message.
#pragma once
#include <cstdint>
#include <string>

#include "../cpu/attention.h"

namespace kiln {
namespace cuda {

enum class AttnDType : int { F32 = 0, F16 = 1, BF16 = 2 };

// Head dims the CUDA kernels are instantiated for.
inline bool attention_head_dim_supported(int64_t D) { return D == 32 || D == 64 || D == 128; }

std::string attention_forward(AttnDType dtype, const cpu::AttentionArgs& a, const void* q, const void* k,
                              const void* v, void* out, float* lse);
std::string attention_backward(AttnDType dtype, const cpu::AttentionArgs& a, const void* q, const void* k,
                               const void* v, const void* out, const void* dout, const float* lse, void* dq, void* dk,
                               void* dv);

}  // namespace cuda
}  // namespace kiln
