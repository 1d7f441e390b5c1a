// int32 x ** y as PyTorch computes it for integer tensors (aten's powi), for the CPU and (under nvcc)
// the GPU: exponentiation by squaring with int32 products that wrap modulo 2^32 (like kiln's int32
// add and mul); a negative exponent gives 1 for base 1, +-1 for base -1 and 0 for any other base.
#pragma once
#include <cstdint>

#include "half.h"  // KILN_HD

namespace kiln {

KILN_HD int32_t int_pow(int32_t a, int32_t b) {
  if (b < 0) return a == 1 ? 1 : a == -1 ? ((b & 1) ? -1 : 1) : 0;
  uint32_t r = 1, base = static_cast<uint32_t>(a), e = static_cast<uint32_t>(b);
  while (e) {
    if (e & 1u) r *= base;
    e >>= 1;
    base *= base;
  }
  return static_cast<int32_t>(r);
}

}  // namespace kiln
