// Device helpers shared by the CUDA attention kernels (attention_fa2.cu, attention_fwd_sm90.cu,
// attention_bwd_sm90.cu).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>

namespace kiln {
namespace cuda {

// 2^x on the special-function unit (flush-to-zero): the online softmax runs on exp2.
__device__ __forceinline__ float exp2_approx(float x) {
#ifdef KILN_HOST_MODEL
  return ::kiln_host::ex2_approx(x);  // bench/native/cuda_host: the kernels compiled for the CPU
#else
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
#endif
}

// Two floats rounded to bfloat16 (BF16) or float16 as one register, the first in the low half: a
// tensor-core operand pair.
template <bool BF16>
__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {
  uint32_t u;
  if constexpr (BF16) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    memcpy(&u, &h, 4);
  } else {
    const __half2 h = __floats2half2_rn(lo, hi);
    memcpy(&u, &h, 4);
  }
  return u;
}

}  // namespace cuda
}  // namespace kiln
