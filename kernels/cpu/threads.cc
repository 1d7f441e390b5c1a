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
  if (const char* env = std::getenv("KILN_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n;
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
