// Philox 4x32-10 streams (uniform, normal, randint). Word i of an output depends only on (seed,
// offset + i), so results are identical for any thread count and match the CUDA kernels.
#include <cmath>
#include <cstdint>

#include "random_dist.h"
#include "kernels.h"
#include "parallel.h"
#include "philox.h"
#include "vmath.h"

namespace kiln {
namespace cpu {
namespace {

constexpr int64_t kChunk = 1024;  // words per task; even, so normal pairs never straddle tasks

// buf[i] = word(w0 + i) for i in [0, count), count <= kChunk.
KILN_CLONES void fill_words(uint64_t seed, uint64_t w0, int64_t count, uint32_t* buf) {
  int64_t i = 0;
  for (; i < count && ((w0 + i) & 3); ++i) buf[i] = philox::stream_word(seed, w0 + i);
  const uint64_t b0 = (w0 + i) >> 2;
  const int64_t nblocks = (count - i) >> 2;
  uint32_t* dst = buf + i;
#pragma omp simd
  for (int64_t b = 0; b < nblocks; ++b) {
    philox::Words4 r = philox::stream_block(seed, b0 + b);
    dst[4 * b + 0] = r.v[0];
    dst[4 * b + 1] = r.v[1];
    dst[4 * b + 2] = r.v[2];
    dst[4 * b + 3] = r.v[3];
  }
  for (i += 4 * nblocks; i < count; ++i) buf[i] = philox::stream_word(seed, w0 + i);
}

template <class T>
KILN_CLONES void normal_chunk(const uint32_t* w, T* out, int64_t npairs, T mean, T std) {
#pragma omp simd
  for (int64_t j = 0; j < npairs; ++j) {
    T z0, z1;
    box_muller(unit_open0<T>(w[2 * j]), unit<T>(w[2 * j + 1]), &z0, &z1);
    out[2 * j] = mean + std * z0;
    out[2 * j + 1] = mean + std * z1;
  }
}

template <class F>
void for_each_chunk(int64_t n, F&& body) {
  const int64_t nchunks = (n + kChunk - 1) / kChunk;
  const int nt = threads_for(n * 4);  // a Philox word costs a few elementwise ops
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
  for (int64_t c = 0; c < nchunks; ++c) {
    const int64_t begin = c * kChunk;
    const int64_t count = n - begin < kChunk ? n - begin : kChunk;
    body(begin, count);
  }
}

}  // namespace

template <class T>
void philox_uniform(T* out, int64_t n, uint64_t seed, uint64_t offset, T lo, T hi) {
  const T span = hi - lo;
  for_each_chunk(n, [&](int64_t begin, int64_t count) {
    uint32_t w[kChunk];
    fill_words(seed, offset + begin, count, w);
    T* o = out + begin;
#pragma omp simd
    for (int64_t i = 0; i < count; ++i) o[i] = lo + span * unit<T>(w[i]);
  });
}

template <class T>
void philox_normal(T* out, int64_t n, uint64_t seed, uint64_t offset, T mean, T std) {
  for_each_chunk(n, [&](int64_t begin, int64_t count) {
    uint32_t w[kChunk];
    const int64_t words = (count + 1) & ~int64_t(1);  // an odd tail still consumes its pair
    fill_words(seed, offset + begin, words, w);
    const int64_t full = count / 2;
    normal_chunk(w, out + begin, full, mean, std);
    if (count & 1) {
      T z0, z1;
      box_muller(unit_open0<T>(w[2 * full]), unit<T>(w[2 * full + 1]), &z0, &z1);
      out[begin + 2 * full] = mean + std * z0;
    }
  });
}

void philox_randint(int32_t* out, int64_t n, uint64_t seed, uint64_t offset, int32_t lo, int32_t hi) {
  const uint32_t span = static_cast<uint32_t>(static_cast<int64_t>(hi) - lo);
  if (hi <= lo) {  // validated upstream; never divide by zero here
    for (int64_t i = 0; i < n; ++i) out[i] = lo;
    return;
  }
  for_each_chunk(n, [&](int64_t begin, int64_t count) {
    uint32_t w[kChunk];
    fill_words(seed, offset + begin, count, w);
    int32_t* o = out + begin;
#pragma omp simd
    for (int64_t i = 0; i < count; ++i)
      o[i] = static_cast<int32_t>(static_cast<int64_t>(lo) + w[i] % span);
  });
}

template void philox_uniform<float>(float*, int64_t, uint64_t, uint64_t, float, float);
template void philox_uniform<double>(double*, int64_t, uint64_t, uint64_t, double, double);
template void philox_normal<float>(float*, int64_t, uint64_t, uint64_t, float, float);
template void philox_normal<double>(double*, int64_t, uint64_t, uint64_t, double, double);

}  // namespace cpu
}  // namespace kiln
