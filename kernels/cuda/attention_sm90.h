// The Hopper (sm_90a) attention kernels: warpgroup MMA (wgmma) fed by the tensor-memory-access unit,
// FlashAttention-3 style, for float16/bfloat16 with head dims 64 and 128, causal or not (no key
// padding lengths or dropout: those calls stay with fa2; boolean key masks go to the basic kernels). Forward: kernels/cuda/attention_fwd_sm90.cu;
// backward: kernels/cuda/attention_bwd_sm90.cu. Compiled only where the CUDA build defines
// KILN_ATTENTION_SM90 (CMake's sm_90a object library; nvcc 12 or newer). No CUDA headers here.
//
// Status: the default on compute capability 9.x since the H100 runs of session 9 passed every check
// and test through them and measured them faster than fa2 at every timed shape (forward and
// backward, head dims 64 and 128, causal or not, T = 1k-8k; bench/results/h100-2026-11-27-s9).
// KILN_ATTENTION_KERNEL=fa2 (or basic) turns them off.
#pragma once
#include <string>

#include "attention_api.h"

namespace kiln {
namespace cuda {

// Compute capability 9.x, the driver's TMA entry point, and not KILN_ATTENTION_KERNEL=fa2 or basic
// (read once): attention.cu's dispatch then offers every call to these kernels first.
bool sm90_attention_enabled();

// "" when the Hopper kernels take the call (dtype, head dim, options, 16-byte aligned tensors whose
// rows the TMA unit can address), otherwise why not.
std::string sm90_attention_unsupported(AttnDType dtype, const cpu::AttentionArgs& a, const void* const* ptrs, int nptrs);

// How the backward splits dQ = dS K between its two consumer warpgroups for head dim 128 (64 always
// splits by keys): 1 by d columns (the default), 2 by keys, 0 back to the process default
// (KILN_ATTENTION_SM90_DQ=keys|cols). For measuring both; see attention_bwd_sm90.cu.
void sm90_attention_set_dq_split(int mode);
// Where the backward's dV += P^T dO and dK += dS^T Q read P^T and dS^T, and how dQ = dS K reaches the
// float32 accumulator: 1 registers, 2 shared memory, 3 registers with dQ issued first and added with
// atomics while dV / dK are in flight, 4 (head dim 64; the default there below Tq = 8192) shared
// memory with dQ issued first and summed over the two consumers in shared memory before the atomics,
// 5 (the default for head dim 128, and for 64 from Tq = 8192) registers with dQ issued first and added
// by the TMA unit's bulk reduction, 6 the same with shared memory, 7 (head dim 64; 128 takes 5) 5 with
// query blocks of 128 rows and dQ split between the consumers by rows (not yet run on a GPU); 0 back
// to the process default (KILN_ATTENTION_SM90_BWD=rs|ss|dqfirst|dqsum|bulk|bulkss|m128).
void sm90_attention_set_bwd_operands(int mode);
// The forward consumers' schedule: 1 one tile at a time, 2 pipelined (the softmax of tile j overlaps
// P V of tile j - 1, as FlashAttention-3; the default for head dim 128), 3 pipelined with the two
// consumers taking turns to issue their products ("pingpong", as FlashAttention-3; the default for
// 64), 0 back to the process default (KILN_ATTENTION_SM90_FWD=simple|pipe|pingpong).
// For measuring them; see attention_fwd_sm90.cu.
void sm90_attention_set_fwd_pipeline(int mode);
// The order of both kernels' blocks: 1 heads fastest (the default), 2 heads in groups of about two
// waves of blocks (groupBlocks > 0: groups of that many blocks instead, for tests), 0 back to the
// process default (KILN_ATTENTION_SM90_ORDER=heads|grouped). Not yet run on a GPU; see
// attention_sm90_common.h.
void sm90_attention_set_order(int mode, int64_t groupBlocks = 0);
// Both kernels' launch: 1 one block per tile (the default), 2 persistent, one block per
// multiprocessor walking tiles (blocks > 0: that many blocks, for tests; the forward's pipelined
// schedules and the backward's operand modes 4, 5 and 7), 0 back to the process default
// (KILN_ATTENTION_SM90_PERSIST=off|on). Not yet run on a GPU; see attention_sm90_common.h.
void sm90_attention_set_persistent(int mode, int64_t blocks = 0);

// Same contracts as attention_api.h's entry points. `handled` is false, and nothing ran, when the
// call is not supported or the device has no sm_90a image: the caller then runs the fa2 kernels.
std::string sm90_attention_forward(AttnDType dtype, const cpu::AttentionArgs& a, const void* q, const void* k,
                                   const void* v, void* out, float* lse, bool& handled);
std::string sm90_attention_backward(AttnDType dtype, const cpu::AttentionArgs& a, const void* q, const void* k,
                                    const void* v, const void* out, const void* dout, const float* lse, void* dq, void* dk,
                                    void* dv, bool& handled);

}  // namespace cuda
}  // namespace kiln
