// The two CUDA attention implementations behind kernels/cuda/attention_api.h, as seen by
// attention.cu's dispatch and by bench/native/attention_cuda_check.cu (no CUDA headers here).
//   fa2:   kernels/cuda/attention_fa2.cu, FlashAttention-2 on mma.sync tensor-core fragments, for
//          float16/bfloat16, head dims 32/64/128, causal or not, optional key padding lengths, dropout;
//          float32 too (3xTF32 m16n8k8) where opted in with KILN_ATTENTION_F32=fa2 (not yet run on a
//          GPU, so float32 goes to basic by default).
//   basic: kernels/cuda/attention.cu's general kernels (every dtype, key masks, dropout).
// attention_forward/attention_backward take fa2 whenever fa2_attention_supports() says so and the
// Hopper kernels of attention_sm90.h (compute capability 9.x) did not take the call, unless
// KILN_ATTENTION_KERNEL=basic (read once per process).
#pragma once
#include <functional>
#include <string>

#include "attention_api.h"

namespace kiln {
namespace cuda {

// Whether the fast path computes this call exactly as specified (dtype: float32 only when opted in;
// head dim, no key mask, positive scale, non-empty sequences, 16-byte aligned tensors).
bool fa2_attention_supports(AttnDType dtype, const cpu::AttentionArgs& a, const void* const* ptrs, int nptrs);

// float32 through fa2 (fa2_attention_supports): KILN_ATTENTION_F32=fa2 (read once) turns it on, any
// other value off (unset: off for now); fa2_attention_set_f32 overrides that for tests (0 the
// environment's choice, 1 off, 2 on).
void fa2_attention_set_f32(int mode);
bool fa2_attention_f32_enabled();

std::string fa2_attention_forward(AttnDType dtype, const cpu::AttentionArgs& a, const void* q, const void* k,
                                  const void* v, void* out, float* lse);
std::string fa2_attention_backward(AttnDType dtype, const cpu::AttentionArgs& a, const void* q, const void* k,
                                   const void* v, const void* out, const void* dout, const float* lse, void* dq,
                                   void* dk, void* dv);

// The frame of a FlashAttention-2 style backward, shared by fa2 and the Hopper kernels
// (attention_sm90.h): scratch for a zeroed float32 dQ accumulator [B*H*Tq, D] and D_i =
// rowsum(dO o O) (float32 [B*H*Tq]), then `main(Di, dqAcc)` (the per-key-block kernel: dK, dV and
// the unscaled dQ sums), then dq = scale * dqAcc in the input type. float16/bfloat16, D 32/64/128.
using AttentionBackwardMain = std::function<std::string(const float* Di, float* dqAcc)>;
std::string attention_backward_frame(AttnDType dtype, const cpu::AttentionArgs& a, const void* out, const void* dout,
                                     void* dq, const AttentionBackwardMain& main);

std::string basic_attention_forward(AttnDType dtype, const cpu::AttentionArgs& a, const void* q, const void* k,
                                    const void* v, void* out, float* lse);
std::string basic_attention_backward(AttnDType dtype, const cpu::AttentionArgs& a, const void* q, const void* k,
                                     const void* v, const void* out, const void* dout, const float* lse, void* dq,
                                     void* dk, void* dv);

}  // namespace cuda
}  // namespace kiln
