// Thread count shared by every CPU kernel: all cores by default, KILN_NUM_THREADS or
// kiln.setNumThreads(n) change it.
#include "kernels.h"

#include <cstdlib>
#include <thread>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace kiln {
namespace cpu {
namespace {
int initial_threads() {
  // Only a whole decimal number in [1, 1024] (setNumThreads' range) counts; anything else (the
  // TypeScript side warns about it) leaves the default: 99999 would ask OpenMP for 99999 threads.
  if (const char* env = std::getenv("KILN_NUM_THREADS")) {
    char* end = nullptr;
    long n = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && n >= 1 && n <= 1024) return static_cast<int>(n);
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}
int g_threads = initial_threads();
}  // namespace

void set_num_threads(int n) {
  g_threads = n > 0 ? n : 1;
#ifdef _OPENMP
  omp_set_num_threads(g_threads);
#endif
}

int num_threads() { return g_threads; }

}  // namespace cpu
}  // namespace kiln
