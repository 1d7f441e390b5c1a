// The host model's controls for its driver (bench/native/cuda_host/run.cc): see model.cc.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kiln_host {

struct Options {
  uint32_t smemBase = 0;  // shared address of the dynamic allocation (the kernels align it up to 1 KiB)
  uint64_t seed = 1;      // the scheduler's and the copy completions' random order
  int smemOptin = 232448;  // cudaDevAttrMaxSharedMemoryPerBlockOptin: an H100's (an A100's is 166912)
};
struct Stats {
  uint64_t launches = 0, blocks = 0, switches = 0, copies = 0, wgmmas = 0, mmas = 0;  // mmas: mma.sync (per warp)
};

void set_options(const Options& o);
std::vector<std::string> take_failures();  // the model's findings since the last call
Stats& stats();

}  // namespace kiln_host
