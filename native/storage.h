// Native memory: a caching host allocator (shared by every worker thread) and, per addon
// instance, a table of live allocations addressed by generation-checked handles, so a stale or
// forged handle from JavaScript is refused instead of dereferenced.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace kiln {
namespace native {

enum Device : int { kCpu = 0, kCuda = 1 };

void* host_alloc(size_t bytes);  // 64-byte aligned, from the cache when possible; nullptr on OOM
void host_release(void* p, size_t bytes);
size_t host_cached_bytes();
size_t host_peak_bytes();  // high-water mark of the bytes handed out by host_alloc (size classes)
void host_empty_cache();

struct Allocation {
  void* ptr = nullptr;
  size_t bytes = 0;
  uint32_t gen = 0;
  Device device = kCpu;
};

class HandleTable {
 public:
  // Handles are (gen << 24 | slot) + 1 as a double-exact integer; 0 is never a handle.
  double insert(void* ptr, size_t bytes, Device device);
  const Allocation* find(double handle) const {
    if (!(handle >= 1 && handle < 9007199254740992.0)) return nullptr;
    uint64_t h = static_cast<uint64_t>(handle);
    if (static_cast<double>(h) != handle) return nullptr;
    h -= 1;
    uint32_t slot = static_cast<uint32_t>(h & 0xFFFFFF);
    if (slot >= slots_.size()) return nullptr;
    const Allocation& a = slots_[slot];
    return (a.ptr == nullptr || a.gen != static_cast<uint32_t>(h >> 24)) ? nullptr : &a;
  }
  bool erase(double handle, Allocation* out);
  std::vector<Allocation> drain();  // removes and returns every live allocation
  size_t live_bytes(Device d) const { return live_[d]; }
  size_t live_count(Device d) const { return count_[d]; }

 private:
  std::vector<Allocation> slots_;
  std::vector<uint32_t> free_;
  size_t live_[2] = {0, 0};
  size_t count_[2] = {0, 0};
};

}  // namespace native
}  // namespace kiln
