// Hopper (sm_90a) building blocks shared by the *_sm90.cu kernels (gemm_sm90.cu, attention_{fwd,bwd}_sm90.cu):
// PTX wrappers for mbarriers, the tensor-memory-access unit (TMA), warpgroup register reallocation,
// shared-memory matrix descriptors with the 128-byte swizzle, and warpgroup MMA (wgmma.mma_async)
// with both operands in shared memory ("SS", N = 64, 128, 256) or A in registers ("RS", N = 64, 128).
//
// Layout facts the kernels rely on (PTX ISA, "asynchronous warpgroup level matrix multiply"):
// - Accumulator of m64nNk16 (float32, N/2 registers a thread): warp w of the warpgroup holds rows
//   16w..16w+15; lane l holds d[4i + 2h + e] = row 16w + l/4 + 8h, column 8i + 2(l%4) + e.
// - A in registers (m64k16, 4 registers of 2 elements): warp w holds rows 16w..16w+15 in the
//   mma.m16n8k16 A layout: a0 = (l/4, 2(l%4)..+1), a1 = (l/4 + 8, ...), a2 = (l/4, 2(l%4) + 8..),
//   a3 = (l/4 + 8, 2(l%4) + 8..). So accumulator blocks 2c and 2c+1 (columns 16c..16c+15), packed in
//   pairs, are the A operand of k-step c: {pack(d[8c], d[8c+1]), pack(d[8c+2], d[8c+3]),
//   pack(d[8c+4], d[8c+5]), pack(d[8c+6], d[8c+7])}.
// - Shared operands in 64 x 64-element boxes (128-byte rows, 8-row atoms of 1 KiB, 16-byte chunk c of
//   row r stored at chunk c ^ (r % 8)), as the TMA unit writes them with CU_TENSOR_MAP_SWIZZLE_128B:
//   a k-contiguous ("K-major") operand: 8-row groups 1 KiB apart (stride byte offset), a k16 step is
//   32 bytes along the row, the next 64 k is the next box; an m/n-contiguous ("MN-major", transpose
//   bit set) operand: boxes are [64 k][64 m|n], 64-column blocks `lbo` bytes apart (leading byte
//   offset), 8-row k groups 1 KiB apart, a k16 step is 16 rows (2 KiB).
// Every function here exists only in the sm_90a device pass (KILN_SM90_DEVICE).
#pragma once
#include <cstdint>

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define KILN_SM90_DEVICE 1
#endif

#ifdef KILN_SM90_DEVICE
#include <cuda.h>  // CUtensorMap

namespace kiln {
namespace cuda {
namespace sm90 {

// Address arithmetic (no PTX): the same code in the device pass and in the host model.
__device__ __forceinline__ uint32_t smem_u32(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

// The first row to load for 64-row block r of a tile starting at row0 (< T) of a T-row matrix. A
// block wholly past T loads block 0's rows again (data the kernels mask out: finite, unlike stale
// shared memory), so that no TMA box lies wholly outside the tensor: only boxes partly outside it
// (zero-filled past the edge) have been exercised on the hardware (gemm_sm90 skips the rest).
__device__ __forceinline__ int tma_row_block(int row0, int r, int T) {
  const int x = row0 + 64 * r;
  return x < T ? x : row0;
}

// Block b's (batch-head, tile) when the BH heads of `tiles` tiles each go in groups of G (the blocks
// of group k are k G tiles ... ; within a group the tile index is slowest and the head fastest). G = BH
// is one group: b % BH, b / BH, every head's tile t before any tile t + 1.
// In 32-bit arithmetic: the launches keep BH * tiles below 2^31 (64-bit divisions are long
// subroutines, and the backward's producer, which walks the tiles too, has 24 registers).
struct Sm90Tile {
  int bh, t;
};
__host__ __device__ __forceinline__ Sm90Tile sm90_tile(uint32_t b, uint32_t BH, uint32_t G, uint32_t tiles) {
  const uint32_t per = G * tiles, g0 = (b / per) * G, r = b % per;
  const uint32_t gs = BH - g0 < G ? BH - g0 : G;  // the last group may be short
  return {int(g0 + r % gs), int(r / gs)};
}

// Calls f(b) for the tiles a block takes: tile blockIdx.x alone, or (kPersist, a persistent launch
// of fewer blocks than tiles) blockIdx.x, + gridDim.x, ... below n.
template <bool kPersist, class F>
__device__ __forceinline__ void for_tiles(uint32_t n, F&& f) {
  if constexpr (kPersist) {
    for (uint32_t b = blockIdx.x; b < n; b += gridDim.x) f(b);
  } else {
    f(uint32_t(blockIdx.x));
  }
}

// Shared-memory matrix descriptor: start address, leading / stride byte offsets (all >> 4, 14 bits),
// base offset 0 (every box starts on a 1 KiB boundary), 128-byte swizzle (mode 1, bits 62-63), as two
// 32-bit halves built once per base address: at(bytes) is the descriptor of addr + bytes for
// addr + bytes below 2^18 (every shared address is), with one 32-bit add (the address field is the
// low 14 bits, addr >> 4, so adding bytes >> 4 never carries into the leading byte offset). The
// products' k steps differ by constant byte offsets: rebuilding each descriptor with the masks and
// shifts cost the Hopper attention backward ~8 instructions per wgmma (session 10's profile: ~15% of
// its consumers' instructions).
struct SmemDesc {
  uint32_t lo, hi;
  __host__ __device__ __forceinline__ SmemDesc(uint32_t addr, uint32_t lbo, uint32_t sbo)
      : lo(((addr & 0x3FFFF) >> 4) | (((lbo & 0x3FFFF) >> 4) << 16)), hi(((sbo & 0x3FFFF) >> 4) | (1u << 30)) {}
  __host__ __device__ __forceinline__ uint64_t at(uint32_t bytes) const { return (uint64_t(hi) << 32) | (lo + (bytes >> 4)); }
};
// One descriptor (no base to step from).
__device__ __forceinline__ uint64_t smem_desc(uint32_t addr, uint32_t lbo, uint32_t sbo) { return SmemDesc(addr, lbo, sbo).at(0); }

}  // namespace sm90
}  // namespace cuda
}  // namespace kiln

#ifdef KILN_HOST_MODEL
// bench/native/cuda_host (scripts/build-cuda-host.sh): the kernels compiled for the CPU, every PTX
// wrapper below replaced by a host model of the hardware with the same names and signatures.
#include "sm90_host_model.h"
#else
namespace kiln {
namespace cuda {
namespace sm90 {

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
// Makes the initialised barriers visible to the async proxy (the TMA unit) and the other threads.
__device__ __forceinline__ void mbar_init_fence() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// The producer's arrival, announcing the bytes the stage's copies will deliver.
__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
// Waits for the phase of parity `parity` to complete. A barrier that stays incomplete for 20 s is
// a bug (a copy that never lands): trap, so the launch fails instead of hanging the process. The
// spin loop and the watchdog are one asm block: written as a C++ loop around __trap(), inside a
// setmaxnreg.inc region, it made ptxas keep the warpgroup at the launch bound's 168 registers
// (the attention backward's consumers spilled ~460 bytes).
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      ".reg .u64 t0, t1, dt;\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
      "@p bra KILN_WAIT_DONE;\n"
      "mov.u64 t0, %%globaltimer;\n"
      "KILN_WAIT_LOOP:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
      "@p bra KILN_WAIT_DONE;\n"
      "mov.u64 t1, %%globaltimer;\n"
      "sub.u64 dt, t1, t0;\n"
      "setp.gt.u64 p, dt, 20000000000;\n"
      "@!p bra KILN_WAIT_LOOP;\n"
      "trap;\n"
      "KILN_WAIT_DONE:\n"
      "}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}

// One box of a 3-d tensor map (coordinates innermost first) into shared memory at dst.
__device__ __forceinline__ void tma_load(uint32_t dst, const CUtensorMap* map, int c0, int c1, int c2, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(bar)
      : "memory");
}
__device__ __forceinline__ void tma_prefetch_map(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

template <int R> __device__ __forceinline__ void setmaxnreg_inc() { asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(R)); }
template <int R> __device__ __forceinline__ void setmaxnreg_dec() { asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(R)); }

// Makes this thread's generic-proxy shared-memory writes visible to the async proxy (wgmma operands
// read through descriptors, TMA stores); pair with a barrier among the writing and reading threads.
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// Named barrier `id` (1..15; 0 is __syncthreads) over `count` threads (a multiple of 32).
__device__ __forceinline__ void named_barrier(int id, int count) { asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(count) : "memory"); }
// An arrival at named barrier `id` that does not wait (the barrier completes when `count` threads
// have arrived or synced).
__device__ __forceinline__ void named_barrier_arrive(int id, int count) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}

// Bulk asynchronous reduction (TMA unit): adds one box of a float32 tensor map (coordinates
// innermost first; elements outside the tensor are dropped) from shared memory at src (laid out as
// the map's swizzle puts it, 1 KiB-aligned) into global memory, element-wise atomically, in this
// thread's current bulk group. commit closes the group; wait_read<N> waits until all but the newest
// N groups have read their shared source (it may be overwritten, and the block may exit).
__device__ __forceinline__ void tma_reduce_add(const CUtensorMap* map, uint32_t src, int c0, int c1, int c2) {
  asm volatile("cp.reduce.async.bulk.tensor.3d.global.shared::cta.add.tile.bulk_group [%0, {%2, %3, %4}], [%1];\n" ::"l"(
                   reinterpret_cast<uint64_t>(map)),
               "r"(src), "r"(c0), "r"(c1), "r"(c2)
               : "memory");
}
__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void bulk_wait_read() { asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(N) : "memory"); }

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }
// Keeps the compiler from moving accesses of the accumulators across the asynchronous MMAs.
template <int R> __device__ __forceinline__ void fence_acc(float (&d)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
template <int R> __device__ __forceinline__ void fence_regs(uint32_t (&a)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+r"(a[i])::"memory");
}
// Materialises 64-bit values (descriptors) here, so the compiler cannot recompute them later.
template <int R> __device__ __forceinline__ void fence_regs64(uint64_t (&a)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+l"(a[i])::"memory");
}
template <int R, int C> __device__ __forceinline__ void fence_regs(uint32_t (&a)[R][C]) {
#pragma unroll
  for (int i = 0; i < R; ++i) fence_regs(a[i]);
}

// ---- wgmma.mma_async m64nNk16, float32 accumulators -------------------------------------------
// d (64 x N of this warpgroup) = A (64 x 16) * B (16 x N) + (accumulate ? d : 0).
// ss: A and B through descriptors; MN_A / MN_B are the transpose bits (1: the operand is m- / n-
// contiguous in shared memory, 0: k-contiguous). rs: A from registers (layout above), B through
// its descriptor.
#define KILN_ACC4(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3])
#define KILN_ACC16(i) KILN_ACC4(i), KILN_ACC4(i + 4), KILN_ACC4(i + 8), KILN_ACC4(i + 12)
#define KILN_ACC32(i) KILN_ACC16(i), KILN_ACC16(i + 16)
#define KILN_ACC64(i) KILN_ACC32(i), KILN_ACC32(i + 32)
#define KILN_ACC128(i) KILN_ACC64(i), KILN_ACC64(i + 64)

#define KILN_WGMMA_SS_N64(TYPE) \
  "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n" \
  "wgmma.mma_async.sync.aligned.m64n64k16.f32." TYPE "." TYPE " {" \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31" \
  "}, %32, %33, p, 1, 1, %35, %36;\n}\n"

#define KILN_WGMMA_RS_N64(TYPE) \
  "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n" \
  "wgmma.mma_async.sync.aligned.m64n64k16.f32." TYPE "." TYPE " {" \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31" \
  "}, {%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"

#define KILN_WGMMA_SS_N128(TYPE) \
  "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n" \
  "wgmma.mma_async.sync.aligned.m64n128k16.f32." TYPE "." TYPE " {" \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63" \
  "}, %64, %65, p, 1, 1, %67, %68;\n}\n"

#define KILN_WGMMA_RS_N128(TYPE) \
  "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n" \
  "wgmma.mma_async.sync.aligned.m64n128k16.f32." TYPE "." TYPE " {" \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63" \
  "}, {%64, %65, %66, %67}, %68, p, 1, 1, %70;\n}\n"

#define KILN_WGMMA_SS_N256(TYPE) \
  "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n" \
  "wgmma.mma_async.sync.aligned.m64n256k16.f32." TYPE "." TYPE " {" \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, " \
  "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, " \
  "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, " \
  "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, " \
  "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127" \
  "}, %128, %129, p, 1, 1, %131, %132;\n}\n"

// One wgmma for either half type (the PTX type is part of the instruction text).
#define KILN_WGMMA_ASM(SHAPE, ACC, ...)                       \
  if constexpr (BF16) asm volatile(SHAPE("bf16") : ACC : __VA_ARGS__); \
  else asm volatile(SHAPE("f16") : ACC : __VA_ARGS__)

template <int N, bool BF16, int MN_A, int MN_B>
__device__ __forceinline__ void wgmma_ss(float (&d)[N / 2], uint64_t da, uint64_t db, int accumulate) {
  static_assert(N == 64 || N == 128 || N == 256, "wgmma_ss: N");
  if constexpr (N == 64) {
    KILN_WGMMA_ASM(KILN_WGMMA_SS_N64, KILN_ACC32(0), "l"(da), "l"(db), "r"(accumulate), "n"(MN_A), "n"(MN_B));
  } else if constexpr (N == 128) {
    KILN_WGMMA_ASM(KILN_WGMMA_SS_N128, KILN_ACC64(0), "l"(da), "l"(db), "r"(accumulate), "n"(MN_A), "n"(MN_B));
  } else {
    KILN_WGMMA_ASM(KILN_WGMMA_SS_N256, KILN_ACC128(0), "l"(da), "l"(db), "r"(accumulate), "n"(MN_A), "n"(MN_B));
  }
}

template <int N, bool BF16, int MN_B>
__device__ __forceinline__ void wgmma_rs(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t db, int accumulate) {
  static_assert(N == 64 || N == 128, "wgmma_rs: N");
  if constexpr (N == 64) {
    KILN_WGMMA_ASM(KILN_WGMMA_RS_N64, KILN_ACC32(0), "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(accumulate), "n"(MN_B));
  } else {
    KILN_WGMMA_ASM(KILN_WGMMA_RS_N128, KILN_ACC64(0), "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(accumulate), "n"(MN_B));
  }
}

#undef KILN_WGMMA_ASM
#undef KILN_WGMMA_SS_N64
#undef KILN_WGMMA_RS_N64
#undef KILN_WGMMA_SS_N128
#undef KILN_WGMMA_RS_N128
#undef KILN_WGMMA_SS_N256
#undef KILN_ACC4
#undef KILN_ACC16
#undef KILN_ACC32
#undef KILN_ACC64
#undef KILN_ACC128

}  // namespace sm90
}  // namespace cuda
}  // namespace kiln
#endif  // KILN_HOST_MODEL

// Before a tile's once-per-tile load into a buffer the consumers free through emptyBar (Q, or K and
// V): a persistent block's producer waits for them to be done with the last tile's (a fresh barrier
// passes parity 1). n counts the tiles loaded so far.
namespace kiln {
namespace cuda {
namespace sm90 {
template <bool kPersist>
__device__ __forceinline__ void wait_tile_buffer(uint32_t emptyBar, uint32_t& n) {
  if constexpr (kPersist) mbar_wait(emptyBar, (n & 1u) ^ 1u);
  ++n;
}
}  // namespace sm90
}  // namespace cuda
}  // namespace kiln

#endif  // KILN_SM90_DEVICE
