// CUDA backend: device queries, a caching allocator, copies and the elementwise kernels, with the
// same semantics as kernels/cpu/elementwise.cc. All work goes to one stream, so a freed block can
// be handed out again at once (stream-ordered reuse).
#include <cuda_runtime.h>

#include <cmath>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "cuda_api.h"

namespace kiln {
namespace cuda {
namespace {

std::string err_string(cudaError_t e) { return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e); }

int probe_devices() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" / "no device" error
    return 0;
  }
  return n;
}

int devices() {
  static int n = probe_devices();
  return n;
}

size_t size_class(size_t bytes) {
  if (bytes <= 512) return 512;
  if (bytes <= (size_t(1) << 20)) return (bytes + 511) & ~size_t(511);
  return (bytes + (size_t(1) << 20) - 1) & ~((size_t(1) << 20) - 1);  // 1 MiB granules
}

struct Cache {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free;
  size_t cached = 0;
  size_t reserved = 0;
};

Cache& cache() {
  static Cache* c = new Cache();
  return *c;
}

void free_cached_locked(Cache& c) {
  for (auto& kv : c.free)
    for (void* p : kv.second) {
      cudaFree(p);
      c.reserved -= kv.first;
    }
  c.free.clear();
  c.cached = 0;
}

}  // namespace

bool compiled() { return true; }
bool available() { return devices() > 0; }
int device_count() { return devices(); }

std::string device_name(int device) {
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) return "";
  return prop.name;
}

void* alloc(size_t bytes, std::string* err) {
  if (!available()) {
    *err = "no CUDA device is available";
    return nullptr;
  }
  size_t cls = size_class(bytes);
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  auto it = c.free.find(cls);
  if (it != c.free.end() && !it->second.empty()) {
    void* p = it->second.back();
    it->second.pop_back();
    c.cached -= cls;
    return p;
  }
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, cls);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    free_cached_locked(c);
    e = cudaMalloc(&p, cls);
  }
  if (e != cudaSuccess) {
    cudaGetLastError();
    *err = "cudaMalloc of " + std::to_string(cls) + " bytes failed: " + err_string(e);
    return nullptr;
  }
  c.reserved += cls;
  return p;
}

void release(void* ptr, size_t bytes) {
  if (!ptr) return;
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  size_t cls = size_class(bytes);
  c.free[cls].push_back(ptr);
  c.cached += cls;
}

void empty_cache() {
  if (!available()) return;
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  cudaDeviceSynchronize();
  free_cached_locked(c);
}

size_t cached_bytes() { return cache().cached; }
size_t reserved_bytes() { return cache().reserved; }

std::string copy_to_device(void* dst, const void* src, size_t bytes) {
  cudaError_t e = cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice);
  return e == cudaSuccess ? "" : err_string(e);
}
std::string copy_to_host(void* dst, const void* src, size_t bytes) {
  cudaError_t e = cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost);
  return e == cudaSuccess ? "" : err_string(e);
}
std::string copy_device_to_device(void* dst, const void* src, size_t bytes) {
  cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, 0);
  return e == cudaSuccess ? "" : err_string(e);
}
std::string synchronize() {
  cudaError_t e = cudaDeviceSynchronize();
  return e == cudaSuccess ? "" : err_string(e);
}

}  // namespace cuda
}  // namespace kiln
