// Shared helpers for the CPU kernels: when to use threads, and the ISA clones of hot loops.
#pragma once
#include <cstdint>

#include "kernels.h"

namespace kiln {
namespace cpu {

// Below this many elements a call stays on one thread: spawning a team costs more than it saves.
constexpr int64_t kParallelGrain = 32768;

inline int threads_for(int64_t work) {
  int nt = num_threads();
  return (work > kParallelGrain && nt > 1) ? nt : 1;
}

// Runs f(t) for t in [0, ntasks), on several threads when `work` (elements touched) is large.
// Each task's result must not depend on which thread runs it, so outputs are thread-count independent.
template <class F>
void parallel_tasks(int64_t ntasks, int64_t work, F&& f) {
  int64_t nt = threads_for(work);
  if (nt > ntasks) nt = ntasks;
#pragma omp parallel for schedule(static) num_threads(static_cast<int>(nt)) if (nt > 1)
  for (int64_t t = 0; t < ntasks; ++t) f(t);
}

}  // namespace cpu
}  // namespace kiln

// The addon is built without -march=native, so hot row loops get AVX-512 / AVX2 clones picked at
// load time. FMA stays off (the avx2 clone has no fma), so every clone rounds the same way per op.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(KILN_NO_CLONES)
#define KILN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define KILN_CLONES
#endif
