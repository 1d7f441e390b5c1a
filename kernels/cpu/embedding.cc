// Embedding gather (forward), scatter-add (backward) and index validation.
// The backward is deterministic without atomics or sorting: threads own disjoint column blocks of
// dweight and each walks the indices in order, so every element is summed in index order exactly
// as the serial loop would, for any thread count.
#include <algorithm>
#include <cstring>

#include "kernels.h"
#include "parallel.h"

namespace kiln {
namespace cpu {

template <class T>
void embedding_forward(const T* weight, const int32_t* idx, T* out, int64_t n, int64_t V, int64_t D) {
  (void)V;
  parallel_tasks(n, n * D, [&](int64_t i) {
    std::memcpy(out + i * D, weight + static_cast<int64_t>(idx[i]) * D, sizeof(T) * D);
  });
}

template <class T>
void embedding_backward(const T* dout, const int32_t* idx, T* dweight, int64_t n, int64_t V, int64_t D) {
  (void)V;
  if (n <= 0 || D <= 0) return;
  const int nt = threads_for(n * D);
  // Column blocks of at least 64 elements (a few cache lines), one or more per thread.
  const int64_t block = std::max<int64_t>(64, (D + nt - 1) / nt);
  const int64_t blocks = (D + block - 1) / block;
  parallel_tasks(blocks, n * D, [&](int64_t b) {
    const int64_t j0 = b * block, w = std::min(block, D - j0);
    for (int64_t i = 0; i < n; ++i) {
      const T* __restrict src = dout + i * D + j0;
      T* __restrict dst = dweight + static_cast<int64_t>(idx[i]) * D + j0;
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) dst[j] += src[j];
    }
  });
}

int64_t find_invalid_index(const int32_t* idx, int64_t n, int32_t lo, int32_t hi, int32_t allowed) {
  constexpr int64_t kBlock = 4096;  // vectorised any-bad test per block, then a scan of the bad one
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t e = std::min(n, b + kBlock);
    int bad = 0;
#pragma omp simd reduction(| : bad)
    for (int64_t i = b; i < e; ++i) bad |= (idx[i] < lo || idx[i] >= hi) && idx[i] != allowed;
    if (!bad) continue;
    for (int64_t i = b; i < e; ++i)
      if ((idx[i] < lo || idx[i] >= hi) && idx[i] != allowed) return i;
  }
  return -1;
}

template void embedding_forward<float>(const float*, const int32_t*, float*, int64_t, int64_t, int64_t);
template void embedding_forward<double>(const double*, const int32_t*, double*, int64_t, int64_t, int64_t);
template void embedding_backward<float>(const float*, const int32_t*, float*, int64_t, int64_t, int64_t);
template void embedding_backward<double>(const double*, const int32_t*, double*, int64_t, int64_t, int64_t);

}  // namespace cpu
}  // namespace kiln
