#include "storage.h"

#include <sys/mman.h>

#include <cstdlib>
#include <mutex>
#include <unordered_map>

namespace kiln {
namespace native {
namespace {

// Size classes: 64-byte granules below 4 KiB, then 8 steps per power of two (<= 12.5% waste).
size_t size_class(size_t bytes) {
  if (bytes <= 4096) return (bytes + 63) & ~size_t(63);
  size_t p = 4096;
  while (p * 2 < bytes) p *= 2;
  size_t step = p / 8;
  return (bytes + step - 1) / step * step;
}

// Blocks of at least kLargeBlock bytes are mapped with mmap and unmapped when they leave the cache,
// so their memory really goes back to the system (glibc would keep freed large chunks in its heap
// once its dynamic mmap threshold has grown, and fragment it).
constexpr size_t kLargeBlock = size_t(1) << 20;

struct HostCache {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free;
  size_t cached = 0;
  size_t live = 0;       // bytes handed out and not yet released (by size class)
  size_t liveHigh = 0;   // high-water mark of `live`
  // Cached bytes kept at most (KILN_HOST_CACHE_MB, default 2048).
  size_t limit = [] {
    const char* env = std::getenv("KILN_HOST_CACHE_MB");
    long mb = env ? std::atol(env) : 2048;
    return static_cast<size_t>(mb < 0 ? 0 : mb) << 20;
  }();
};

HostCache& cache() {
  static HostCache* c = new HostCache();  // never destroyed: workers may outlive main's statics
  return *c;
}

void* system_alloc(size_t cls) {
  if (cls < kLargeBlock) return std::aligned_alloc(64, cls);
  void* p = mmap(nullptr, cls, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

void system_free(void* p, size_t cls) {
  if (cls < kLargeBlock) std::free(p);
  else munmap(p, cls);
}

// Exact size classes make the footprint (live + cached) the sum of every class's own high-water
// mark, which a training step's mix of activation and gradient sizes pushes well above the live
// high-water mark. So the footprint is held to the live high-water mark plus a slack of 1/8: the
// budget follows what the program really holds at its peak.
size_t budget_locked(const HostCache& c) { return c.liveHigh + c.liveHigh / 8; }

// A miss for a large class with the footprint at its budget takes a cached large block of another
// class (the closest size, larger ones first) and resizes it with mremap instead of unmapping one
// block and mapping another: the pages it keeps stay mapped, so a steady loop whose per-class
// high-waters do not fit the budget no longer faults its blocks in afresh every step (measured on
// the d = 5 ICL step, batch 128: 5000 page faults and ~11 ms of system time per step before).
void* take_donor_locked(HostCache& c, size_t cls, size_t* donorCls) {
  if (c.live + c.cached <= budget_locked(c)) return nullptr;  // c.live already counts cls
  auto best = c.free.end();
  for (auto it = c.free.begin(); it != c.free.end(); ++it) {
    if (it->first < kLargeBlock || it->second.empty()) continue;
    if (best == c.free.end()) { best = it; continue; }
    const bool itUp = it->first >= cls, bestUp = best->first >= cls;
    if (itUp != bestUp ? itUp : (itUp ? it->first < best->first : it->first > best->first)) best = it;
  }
  if (best == c.free.end()) return nullptr;
  void* p = best->second.back();
  best->second.pop_back();
  c.cached -= best->first;
  *donorCls = best->first;
  return p;
}

// Unmaps cached large blocks of other classes until live + cached fits the budget.
void trim_locked(HostCache& c) {
  const size_t budget = budget_locked(c);
  for (auto it = c.free.begin(); it != c.free.end() && c.live + c.cached > budget; ++it) {
    if (it->first < kLargeBlock) continue;
    while (!it->second.empty() && c.live + c.cached > budget) {
      munmap(it->second.back(), it->first);
      it->second.pop_back();
      c.cached -= it->first;
    }
  }
}

void* resize_block(void* p, size_t from, size_t to) {
#ifdef __linux__
  void* q = mremap(p, from, to, MREMAP_MAYMOVE);
  if (q != MAP_FAILED) return q;
#endif
  munmap(p, from);
  return system_alloc(to);
}

}  // namespace

void* host_alloc(size_t bytes) {
  size_t cls = size_class(bytes == 0 ? 1 : bytes);
  HostCache& c = cache();
  void* donor = nullptr;
  size_t donorCls = 0;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    c.live += cls;
    if (c.live > c.liveHigh) c.liveHigh = c.live;
    auto it = c.free.find(cls);
    if (it != c.free.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.cached -= cls;
      return p;
    }
    if (cls >= kLargeBlock) {
      donor = take_donor_locked(c, cls, &donorCls);
      trim_locked(c);
    }
  }
  void* p = donor ? resize_block(donor, donorCls, cls) : system_alloc(cls);
  if (!p) {
    host_empty_cache();
    p = system_alloc(cls);
  }
  if (!p) {
    std::lock_guard<std::mutex> lock(c.mu);
    c.live -= cls;
  }
  return p;
}

void host_release(void* p, size_t bytes) {
  if (!p) return;
  size_t cls = size_class(bytes == 0 ? 1 : bytes);
  HostCache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    c.live -= cls;
    if (c.cached + cls <= c.limit) {
      c.free[cls].push_back(p);
      c.cached += cls;
      return;
    }
  }
  system_free(p, cls);
}

size_t host_peak_bytes() {
  std::lock_guard<std::mutex> lock(cache().mu);
  return cache().liveHigh;
}

size_t host_cached_bytes() {
  std::lock_guard<std::mutex> lock(cache().mu);
  return cache().cached;
}

void host_empty_cache() {
  HostCache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  for (auto& kv : c.free)
    for (void* p : kv.second) system_free(p, kv.first);
  c.free.clear();
  c.cached = 0;
}

double HandleTable::insert(void* ptr, size_t bytes, Device device) {
  uint32_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.push_back(Allocation{});
  }
  Allocation& a = slots_[slot];
  a.ptr = ptr;
  a.bytes = bytes;
  a.device = device;
  a.gen = (a.gen + 1) & 0x1FFFFFFF;
  live_[device] += bytes;
  count_[device] += 1;
  return static_cast<double>((uint64_t(a.gen) << 24 | slot) + 1);
}


bool HandleTable::erase(double handle, Allocation* out) {
  const Allocation* a = find(handle);
  if (!a) return false;
  *out = *a;
  uint32_t slot = static_cast<uint32_t>((static_cast<uint64_t>(handle) - 1) & 0xFFFFFF);
  slots_[slot].ptr = nullptr;
  live_[out->device] -= out->bytes;
  count_[out->device] -= 1;
  free_.push_back(slot);
  return true;
}

std::vector<Allocation> HandleTable::drain() {
  std::vector<Allocation> out;
  for (Allocation& a : slots_)
    if (a.ptr) {
      out.push_back(a);
      a.ptr = nullptr;
    }
  live_[0] = live_[1] = count_[0] = count_[1] = 0;
  return out;
}

}  // namespace native
}  // namespace kiln
