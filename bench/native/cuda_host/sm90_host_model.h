// The PTX wrappers of kernels/cuda/sm90_common.cuh (same names, same signatures) on the host model
// of bench/native/cuda_host/model.cc. sm90_common.cuh includes this instead of its inline PTX when
// KILN_HOST_MODEL is defined (scripts/build-cuda-host.sh); nothing else includes it.
#pragma once
#include <cstdint>

namespace kiln_host {
void mbar_init(uint32_t bar, uint32_t count);
void mbar_arrive(uint32_t bar);
void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes);
void mbar_wait(uint32_t bar, uint32_t parity);
void tma_load(uint32_t dst, const void* map, int c0, int c1, int c2, uint32_t bar);
void setmaxnreg(int regs, bool inc);
void fence_proxy_async();
void named_barrier(int id, int count);
void named_barrier_arrive(int id, int count);
void tma_reduce_add(const void* map, uint32_t src, int c0, int c1, int c2);
void bulk_commit();
void bulk_wait(int n, bool readOnly);
void wgmma_fence();
void wgmma_commit();
void wgmma_wait(int n);
// One wgmma.mma_async m64nNk16 with float32 accumulators d (N / 2 a thread): A through descriptor da
// (a == nullptr) or from the 4 registers at a; B through db; mnA / mnB the transpose bits.
void wgmma(int N, bool bf16, int mnA, int mnB, float* d, uint64_t da, const uint32_t* a, uint64_t db, int accumulate);
}  // namespace kiln_host

namespace kiln {
namespace cuda {
namespace sm90 {

inline void mbar_init(uint32_t bar, uint32_t count) { kiln_host::mbar_init(bar, count); }
inline void mbar_init_fence() {}
inline void mbar_arrive(uint32_t bar) { kiln_host::mbar_arrive(bar); }
inline void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) { kiln_host::mbar_arrive_expect_tx(bar, bytes); }
inline void mbar_wait(uint32_t bar, uint32_t parity) { kiln_host::mbar_wait(bar, parity); }
inline void tma_load(uint32_t dst, const CUtensorMap* map, int c0, int c1, int c2, uint32_t bar) {
  kiln_host::tma_load(dst, map, c0, c1, c2, bar);
}
inline void tma_prefetch_map(const CUtensorMap*) {}
template <int R> inline void setmaxnreg_inc() { kiln_host::setmaxnreg(R, true); }
template <int R> inline void setmaxnreg_dec() { kiln_host::setmaxnreg(R, false); }
inline void fence_proxy_async() { kiln_host::fence_proxy_async(); }
inline void named_barrier(int id, int count) { kiln_host::named_barrier(id, count); }
inline void named_barrier_arrive(int id, int count) { kiln_host::named_barrier_arrive(id, count); }
inline void tma_reduce_add(const CUtensorMap* map, uint32_t src, int c0, int c1, int c2) { kiln_host::tma_reduce_add(map, src, c0, c1, c2); }
inline void bulk_commit() { kiln_host::bulk_commit(); }
template <int N> inline void bulk_wait_read() { kiln_host::bulk_wait(N, true); }
inline void wgmma_fence() { kiln_host::wgmma_fence(); }
inline void wgmma_commit() { kiln_host::wgmma_commit(); }
template <int N> inline void wgmma_wait() { kiln_host::wgmma_wait(N); }
// Register fences order the compiler's accesses on the device; the model's calls are opaque already.
template <int R> inline void fence_acc(float (&)[R]) {}
template <int R> inline void fence_regs(uint32_t (&)[R]) {}
template <int R> inline void fence_regs64(uint64_t (&)[R]) {}
template <int R, int C> inline void fence_regs(uint32_t (&)[R][C]) {}

template <int N, bool BF16, int MN_A, int MN_B>
inline void wgmma_ss(float (&d)[N / 2], uint64_t da, uint64_t db, int accumulate) {
  static_assert(N == 64 || N == 128 || N == 256, "wgmma_ss: N");
  kiln_host::wgmma(N, BF16, MN_A, MN_B, d, da, nullptr, db, accumulate);
}
template <int N, bool BF16, int MN_B>
inline void wgmma_rs(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t db, int accumulate) {
  static_assert(N == 64 || N == 128, "wgmma_rs: N");
  kiln_host::wgmma(N, BF16, 0, MN_B, d, 0, a, db, accumulate);
}

}  // namespace sm90
}  // namespace cuda
}  // namespace kiln
