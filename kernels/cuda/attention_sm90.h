// The Hopper (sm_90a) attention kernels: warpgroup MMA (wgmma) fed by the tensor-memory-access unit,
// FlashAttention-3 style, for float16/bfloat16 with head dims 64 and 128, causal or not (no key
// padding lengths or dropout: those calls stay with fa2; boolean key masks go to the basic kernels). Forward: kernels/cuda/attention_fwd_sm90.cu;
// backward: kernels/cuda/attention_bwd_sm90.cu. Compiled only where the CUDA build defines
// KILN_ATTENTION_SM90 (CMake's sm_90a object library; nvcc 12 or newer). No CUDA headers here.
//
// Status: opt-in (KILN_ATTENTION_KERNEL=wgmma) until a GPU run shows it correct and faster than the
// fa2 kernels; attention.cu's dispatch offers it the calls first only then.
#pragma once
#include <string>

#include "attention_api.h"

namespace kiln {
namespace cuda {

// KILN_ATTENTION_KERNEL=wgmma, compute capability 9.x, the driver's TMA entry point (read once).
bool sm90_attention_enabled();

// "" when the Hopper kernels take the call (dtype, head dim, options, 16-byte aligned tensors whose
// rows the TMA unit can address), otherwise why not.
std::string sm90_attention_unsupported(AttnDType dtype, const cpu::AttentionArgs& a, const void* const* ptrs, int nptrs);

// How the backward splits dQ = dS K between its two consumer warpgroups for head dim 128 (64 always
// splits by keys): 1 by d columns (the default), 2 by keys, 0 back to the process default
// (KILN_ATTENTION_SM90_DQ=keys|cols). For measuring both; see attention_bwd_sm90.cu.
void sm90_attention_set_dq_split(int mode);
// The forward consumers' schedule: 1 one tile at a time (the default), 2 pipelined (the softmax of
// tile j overlaps P V of tile j - 1, as FlashAttention-3), 3 pipelined with the two consumers taking
// turns to issue their products ("pingpong", as FlashAttention-3), 0 back to the process default
// (KILN_ATTENTION_SM90_FWD=pipe|pingpong|simple). For measuring them; see attention_fwd_sm90.cu.
void sm90_attention_set_fwd_pipeline(int mode);

// Same contracts as attention_api.h's entry points. `handled` is false, and nothing ran, when the
// call is not supported or the device has no sm_90a image: the caller then runs the fa2 kernels.
std::string sm90_attention_forward(AttnDType dtype, const cpu::AttentionArgs& a, const void* q, const void* k,
                                   const void* v, void* out, float* lse, bool& handled);
std::string sm90_attention_backward(AttnDType dtype, const cpu::AttentionArgs& a, const void* q, const void* k,
                                    const void* v, const void* out, const void* dout, const float* lse, void* dq, void* dk,
                                    void* dv, bool& handled);

}  // namespace cuda
}  // namespace kiln
