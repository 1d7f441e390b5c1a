// Philox 4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC 2011).
// Shared by the CPU kernels and the CUDA kernels: the same (counter, key) gives the same four words
// on host and device, which is what makes a seed reproduce across devices.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define KILN_PHILOX_FN __host__ __device__ inline
#else
#define KILN_PHILOX_FN inline
#endif

namespace kiln {
namespace philox {

struct Words4 {
  uint32_t v[4];
};

constexpr uint32_t kMul0 = 0xD2511F53u;
constexpr uint32_t kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u;  // golden ratio
constexpr uint32_t kWeyl1 = 0xBB67AE85u;  // sqrt(3) - 1

// One round: two 32x32->64 multiplies, the high halves mixed with the other lanes and the key.
KILN_PHILOX_FN void round4x32(uint32_t& c0, uint32_t& c1, uint32_t& c2, uint32_t& c3, uint32_t k0,
                              uint32_t k1) {
  uint64_t p0 = static_cast<uint64_t>(kMul0) * c0;
  uint64_t p1 = static_cast<uint64_t>(kMul1) * c2;
  uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
  uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
  uint32_t n0 = hi1 ^ c1 ^ k0;
  uint32_t n2 = hi0 ^ c3 ^ k1;
  c0 = n0;
  c1 = lo1;
  c2 = n2;
  c3 = lo0;
}

// Ten rounds, the key bumped by the Weyl constants between rounds.
KILN_PHILOX_FN Words4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                    uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      k0 += kWeyl0;
      k1 += kWeyl1;
    }
    round4x32(c0, c1, c2, c3, k0, k1);
  }
  Words4 out;
  out.v[0] = c0;
  out.v[1] = c1;
  out.v[2] = c2;
  out.v[3] = c3;
  return out;
}

// The kiln stream: word w of a seed is lane w % 4 of the block for counter w / 4 (see kernels.h).
KILN_PHILOX_FN Words4 stream_block(uint64_t seed, uint64_t block) {
  return philox4x32_10(static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), 0u, 0u,
                       static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// Word i (0..3) of a block, chosen without indexing the array by a run-time value (which would put
// the block in local memory on a GPU).
KILN_PHILOX_FN uint32_t word(const Words4& b, unsigned i) { return i == 0 ? b.v[0] : i == 1 ? b.v[1] : i == 2 ? b.v[2] : b.v[3]; }

KILN_PHILOX_FN uint32_t stream_word(uint64_t seed, uint64_t w) { return word(stream_block(seed, w >> 2), unsigned(w & 3)); }

// Attention dropout with probability p (CPU and CUDA alike): a word x keeps its element iff
// (x >> 8) >= threshold, threshold = ceil(p 2^24) (host side).
inline uint32_t dropout_threshold(double p) { return static_cast<uint32_t>(std::ceil(p * 16777216.0)); }
KILN_PHILOX_FN bool dropout_keeps(uint32_t x, uint32_t threshold) { return (x >> 8) >= threshold; }

// u(x) = (x >> 8) * 2^-24 in [0, 1); the open-at-zero variant ((x >> 8) + 1) * 2^-24 in (0, 1].
KILN_PHILOX_FN float uniform01(uint32_t x) { return static_cast<float>(x >> 8) * 5.9604644775390625e-8f; }
KILN_PHILOX_FN float uniform01_open0(uint32_t x) {
  return static_cast<float>((x >> 8) + 1u) * 5.9604644775390625e-8f;
}

}  // namespace philox
}  // namespace kiln

#undef KILN_PHILOX_FN
