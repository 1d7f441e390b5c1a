// Hopper (sm_90a) attention backward for float16/bfloat16, head dims 64 and 128: the FlashAttention-2
// algorithm of attention_fa2.cu's backward_kernel (same semantics, same frame: D_i = rowsum(dO o O)
// and the float32 dQ accumulator come from attention_backward_frame) with the five products on
// warpgroup MMA (wgmma) and the operands brought in by the tensor-memory-access unit (TMA), in the
// manner of FlashAttention-3. Also the host-side rules of attention_sm90.h (enabled, unsupported).
//
// A block of 384 threads owns 128 keys of one (batch, head) and walks the query blocks of 64 that
// see them (causal: from the diagonal down; blocks of 128 in operand mode 7, head dim 64 only, see
// kOps). Warpgroup 0 is the producer: thread 0 loads K and V once, then each query block's Q and dO
// (64 x D) into a 2-stage ring with TMA; warp 1 copies the
// block's log-sum-exp (as lse * log2 e, +inf for rows past Tq or that saw no key, so P = 0 there)
// and D_i into the same stage. Warpgroups 1 and 2 are the consumers, 64 keys each; per query block:
//   S^T  = K_c Q^T      (64 keys x 64 queries, both operands from shared memory)
//   dP^T = V_c dO^T
//   P^T  = exp2(S^T scale log2 e - L), dS^T = P^T o (dP^T - D_i)   (in registers, masked)
//   dS^T (and, with shared-memory operands, P^T) -> shared memory (this warpgroup's 64 x 64 boxes,
//                128-byte swizzle; dS^T double-buffered), then a barrier (of both consumers when
//                each reads the other's dS^T);
//   dV_c += P^T dO,  dK_c += dS^T Q   (A: P^T / dS^T from registers, or their boxes read
//                                      k-contiguous; dO, Q read n-contiguous);
//   dQ = dS K (dS read m-contiguous, K n-contiguous), split between the consumers by d columns
//   (D = 128) or by keys (D = 64), added to the float32 accumulator by the TMA unit's bulk
//   reduction (each warp stages its rows in shared memory) or with 16-byte atomics.
// The defaults, measured on an H100 (sessions 9 and 10; the variants are kOps / g_bwdOps below):
// D = 128 takes P^T / dS^T from registers, issues dQ first and hands it to the TMA unit while dV / dK
// are in flight; D = 64 keeps the boxes, issues dQ first and sums the two consumers' dQ in shared
// memory before the atomics (half of them: that backward was L2-bound), except from Tq = 8192,
// where it takes D = 128's schedule.
// The descriptors of the products' k steps are one 32-bit add from a base each (SmemDesc), the
// consumer index warp-uniform so that they stay in uniform registers.
// dK (scaled) and dV leave from the accumulators at the end.
//
// Shared-memory operand layouts (see sm90_common.cuh): every tile is made of 64 x 64-element boxes
// (8 KiB, 1 KiB-aligned). K and V: [d block][64-key row block] (so the 128 keys of one d block are
// contiguous 128-byte rows); Q and dO stages: [d block] (64 rows); dS^T: [consumer] boxes of
// [64 keys][64 queries].
//
// Device code exists only for sm_90a (CMake compiles *_sm90.cu for it alone); the host side never
// launches it off compute capability 9.x, where attention.cu offers it every call first (unless
// KILN_ATTENTION_KERNEL=fa2 or basic). The products' order and operand sources have variants (kOps);
// each head dim's default was chosen on an H100 (sessions 9 and 10; see g_bwdOps).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

#include "attention_fa2.h"  // attention_backward_frame
#include "attention_common.cuh"  // exp2_approx, pack_half2
#include "attention_sm90.h"
#include "attention_sm90_common.h"
#include "gemm_common.cuh"  // device_info, launched
#include "sm90_common.cuh"
#include "sm90_tma.h"

namespace kiln {
namespace cuda {
namespace {

constexpr int kKeys = 128, kRows = 64, kBox = 64, kBoxBytes = kBox * kBox * 2, kStages = 2;
constexpr int kThreads = 384;
constexpr int kProducerRegs = 24, kConsumerRegs = 240;  // 128 * 24 + 256 * 240 <= 65536
constexpr float kLog2e = 1.4426950408889634f;
static_assert(kRows == kBox && kKeys == 2 * kBox, "one 64-row box per consumer and per query block");

// Shared-memory plan for head dim D and query blocks of M rows (byte offsets from the 1 KiB-aligned
// base). M = 128 (kOps 7) only for head dim 64, whose P^T stays in registers there.
template <int D, int M = kRows>
struct Smem {
  static_assert(M == kRows || (M == 2 * kRows && D == 64), "128-row query blocks: head dim 64 only");
  static constexpr int kDB = D / 64;                      // 64-column d blocks
  static constexpr int kMB = M / kRows;                   // 64-row blocks of a query block
  static constexpr int kKV = kDB * 2 * kBoxBytes;         // K or V: d blocks x 2 key row blocks
  static constexpr int kQ = kMB * kDB * kBoxBytes;        // one Q or dO stage: [row block][d block]
  static constexpr int kDS = kMB * kBoxBytes;             // one consumer's dS^T: [query row block] boxes
  static constexpr int K = 0, V = kKV, Q = 2 * kKV, dO = Q + kStages * kQ;
  static constexpr int dS = dO + kStages * kQ;           // [2 buffers][2 consumers] of kDS
  static constexpr int P = dS + 2 * 2 * kDS;              // [2 consumers] boxes (M = 64 only)
  static constexpr int L = P + (M == kRows ? 2 * kBoxBytes : 0);  // [kStages][M] float: lse * log2 e
  static constexpr int Di = L + kStages * M * 4;          // [kStages][M] float
  static constexpr int Bars = Di + kStages * M * 4;       // kvFull, full[kStages], empty[kStages], kvEmpty
  static constexpr int kBytes = Bars + (2 + 2 * kStages) * 8;
  static constexpr size_t kAlloc = size_t(kBytes) + 1024;  // + slack to align the base
  // kOps 4 only (head dim 64): the consumers' dQ partials, [2 buffers][2 consumers][64 rows] of
  // kDqStride floats (64 + 8: the float2 stores of a warp fall in two wavefronts), after the rest.
  static constexpr int kDqStride = D + 8;
  static constexpr int DQ = (kBytes + 15) & ~15;
  static constexpr size_t kAllocDq = kAlloc + size_t(DQ - kBytes) + size_t(2 * 2 * kRows * kDqStride * 4);
  // kOps 5, 6 and 7: each consumer warp's dQ rows (16 rows of 64 columns) staged for the TMA unit's
  // reduction as two boxes of 16 rows x 32 float columns (128-byte rows, the 128-byte swizzle, each
  // box 1 KiB-aligned), after the rest.
  static constexpr int kStgWarp = 2 * 16 * 128;  // bytes per consumer warp
  static constexpr int DQB = (kBytes + 1023) & ~1023;
  static constexpr size_t kAllocBulk = kAlloc + size_t(DQB - kBytes) + size_t(8 * kStgWarp);
  // What the kernel with these operand modes (kOps) allocates.
  static constexpr size_t for_ops(int ops) { return ops == 4 ? kAllocDq : ops >= 5 ? kAllocBulk : kAlloc; }
};

// Rows of a query block under operand mode kOps: 128 for 7, else 64.
__host__ __device__ constexpr int rows_for_ops(int ops) { return ops == 7 ? 2 * kRows : kRows; }

struct Params : Sm90AttnShape {
  const float* lse;  // [BH, Tq], natural log
  const float* Di;   // [BH, Tq]
  float* dqAcc;      // [BH, Tq, D], unscaled
  void* dk;
  void* dv;
};

#ifdef KILN_SM90_DEVICE

using namespace sm90;  // PTX wrappers

// acc = A B^T over d for this warpgroup's 64 key rows and the 64 query rows of a stage (S^T = K_c Q^T,
// dP^T = V_c dO^T), issued and committed, not waited. Both operands k-contiguous: a k16 step is 32
// bytes along the rows, the next 64 d the next box (A: key rows of box (d block, c), starting at a0;
// B: the stage's query rows, starting at b0).
template <int D, bool BF16, int M>
__device__ __forceinline__ void issue_rows_by_queries(float (&acc)[M / 2], uint32_t a0, uint32_t b0) {
  const SmemDesc da(a0, 16, 1024), db(b0, 16, 1024);
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk)
    wgmma_ss<M, BF16, 0, 0>(acc, da.at(uint32_t(kk / 4) * 2 * kBoxBytes + (kk % 4) * 32),
                                db.at(uint32_t(kk / 4) * kBoxBytes + (kk % 4) * 32), kk > 0);
  wgmma_commit();
}

// Adds accumulator block i (rows r0 + l/4 and r0 + l/4 + 8, columns c0 + 2(l%4), +1: d[4i..4i+3] of
// the m64nN layout, for this warp's rows) into the float [*, D] matrix at base, rows below `rows`:
// lanes l and l^1 trade halves so each issues one 16-byte atomic (even lane: row l/4, odd: row + 8).
template <int D>
__device__ __forceinline__ void atomic_add_block(float* base, float c0v, float c1v, float c2v, float c3v, int r0, int c0, int rows,
                                                 int lane) {
  const int g = lane >> 2, t4 = lane & 3;
  const bool odd = t4 & 1;
  const float s0 = odd ? c0v : c2v, s1 = odd ? c1v : c3v;
  const float x0 = __shfl_xor_sync(0xffffffffu, s0, 1), x1 = __shfl_xor_sync(0xffffffffu, s1, 1);
  const int row = r0 + g + (odd ? 8 : 0);
  const int col = c0 + (t4 & 2) * 2;
  const float4 val = odd ? make_float4(x0, x1, c2v, c3v) : make_float4(c0v, c1v, x0, x1);
  if (row < rows) atomicAdd(reinterpret_cast<float4*>(base + int64_t(row) * D + col), val);
}

#endif  // KILN_SM90_DEVICE

// tmQ, tmK, tmV, tmO: 3-d tensor maps (d, row, batch*head) of q, k, v, dout with 64 x 64 boxes.
// kKeySplit: dQ split between the consumers by keys (else by d columns; D = 64 always splits by keys).
// kOps, the modes of g_bwdOps below: 1 and 3: dV += P^T dO and dK += dS^T Q take P^T and dS^T from
// registers (the S^T / dP^T accumulators packed in pairs are already wgmma's A fragments), so P^T
// never goes to shared memory and neither product reads its A operand from there; 2 and 4: both
// are read from their shared-memory boxes. 1 issues dV / dK before the consumers' barrier, then dQ,
// and waits for all three; 3 and 4 issue dQ first and add it to the accumulator (the atomics) while
// dV / dK are still in flight. 4 (head dim 64, whose consumers both compute all of dQ over their own
// keys) sums the two consumers' dQ in shared memory first, each consumer then adding half the rows:
// half the atomics. 5 (registers) and 6 (shared memory) issue dQ first too, but no thread adds it:
// each consumer warp stages its 16 rows of dQ in shared memory and one lane hands them to the TMA
// unit as two boxes of the float32 accumulator's tensor map tmDQ (cp.reduce.async.bulk.tensor add),
// which adds them into the accumulator, as FlashAttention-3 does; the warp waits for the unit to
// have read its rows before it stages the next block's. For a dQ of 64 columns per consumer (head
// dim 64, and 128 split by columns). 7 (head dim 64): query blocks of 128 rows, P^T / dS^T from
// registers, dQ split between the consumers by query rows (each reads both consumers' dS^T, so the
// consumers meet at the column split's barrier) and added by the bulk reduction as 5. (Session 10's
// first version handed the rows over one by one, 16 lanes each a 256-byte non-tensor reduction: its operands must be warp-uniform, so the
// compiler issued them one lane at a time, ~20% of the consumers' samples.)
template <bool BF16, int D, bool kCausal, bool kKeySplit, int kOps, bool kPersist>
__global__ void __launch_bounds__(kThreads, 1)
    attention_bwd_sm90_kernel(const __grid_constant__ CUtensorMap tmQ, const __grid_constant__ CUtensorMap tmK,
                              const __grid_constant__ CUtensorMap tmV, const __grid_constant__ CUtensorMap tmO,
                              const __grid_constant__ CUtensorMap tmDQ, const Params p) {
#ifdef KILN_SM90_DEVICE
  constexpr int M = rows_for_ops(kOps);  // query rows per block
  using S = Smem<D, M>;
  using T = std::conditional_t<BF16, __nv_bfloat16, __half>;
  // dQ = dS K, split between the consumers by columns (each its 64-column d block over all 128 keys:
  // the consumers meet at a barrier every query block, as each reads the other's dS^T) or by keys
  // (each all D columns over its own 64 keys, both adding into dQ: twice the atomics, no barrier
  // between the consumers). D = 64 always splits by keys, so that every operand descriptor starts
  // on a whole 64-column swizzle atom. Which is faster for D = 128 is for a GPU to say
  // (sm90_attention_set_dq_split, KILN_ATTENTION_SM90_DQ).
  // kOps 7 (head dim 64, 128-row query blocks) splits it by query rows instead: consumer c computes
  // rows 64c ... 64c + 63 of the block's dQ over all 128 keys (reading both consumers' dS^T, as the
  // column split does), so no dQ element is added twice.
  constexpr bool kRowSplit = kOps == 7;
  constexpr bool kSplitKeys = !kRowSplit && (kKeySplit || D == 64);
  constexpr bool kRS = kOps == 1 || kOps == 3 || kOps == 5 || kOps == 7, kDqFirst = kOps >= 3, kDqSum = kOps == 4,
                 kDqBulk = kOps >= 5;
  static_assert(!kDqSum || (kSplitKeys && D == 64), "dQ summed in shared memory: head dim 64 (dQ split by keys) only");
  static_assert(!kRowSplit || (D == 64 && kKeySplit), "dQ split by query rows: head dim 64 only");
  constexpr int DB = S::kDB, NQ = kSplitKeys || kRowSplit ? D : D / 2;  // NQ: dQ columns per consumer
  static_assert(!kDqBulk || NQ == 64, "dQ through the bulk reduction: 64 columns per consumer");
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  const uint32_t base = (smem_u32(smem_raw) + 1023u) & ~1023u;
  unsigned char* const gbase = smem_raw + (base - smem_u32(smem_raw));  // the same address, generic
  float* const Ls = reinterpret_cast<float*>(gbase + S::L);
  float* const Dis = reinterpret_cast<float*>(gbase + S::Di);
  const uint32_t kvFull = base + S::Bars;
  auto full = [&](uint32_t s) { return base + S::Bars + 8u * (1 + s); };
  auto empty = [&](uint32_t s) { return base + S::Bars + 8u * (1 + kStages + s); };
  const uint32_t kvEmpty = base + S::Bars + 8u * (1 + 2 * kStages);

  // Sequence positions fit in int (sm90_attention_unsupported refuses 2^31 - 1024 and more).
  const int Tq = int(p.Tq), Tk = int(p.Tk), off = Tk - Tq;
  // The block takes tiles blockIdx.x, + gridDim.x, ... (one, unless the launch is persistent: fewer
  // blocks than tiles). Tile b is key block t of head bh (sm90_tile: the block order); causal: the
  // first key blocks see the most queries, so their tile numbers come first. Every role walks the
  // same tiles and query blocks, so the stage rings' phases carry on from tile to tile.
  // (32-bit: the launch keeps the tiles below 2^31.)
  const uint32_t nKeyBlocks = uint32_t((Tk + kKeys - 1) / kKeys), nTiles = uint32_t(p.BH) * nKeyBlocks;
  struct Work {
    int bh, j0, kend, iStart, nIter;
  };
  auto work_of = [&](uint32_t b) {
    Work w;
    const Sm90Tile tile = sm90_tile(b, uint32_t(p.BH), uint32_t(p.group), nKeyBlocks);
    w.bh = tile.bh;
    w.j0 = tile.t * kKeys;
    w.kend = Tk;
    if (p.keyLens) {
      const int n = p.keyLens[w.bh / p.H];
      w.kend = n < 0 ? 0 : (n > Tk ? Tk : n);
    }
    const int f = w.j0 - off;  // causal: query i sees key j iff i >= j - off
    w.iStart = kCausal && f > 0 ? (f / M) * M : 0;
    w.nIter = w.j0 < w.kend && w.iStart < Tq ? (Tq - w.iStart + M - 1) / M : 0;
    return w;
  };

  const int wg = int(threadIdx.x) / 128, warp = (int(threadIdx.x) / 32) % 4, lane = int(threadIdx.x) % 32;
  if (threadIdx.x == 0) {
    mbar_init(kvFull, 1);
    for (uint32_t s = 0; s < uint32_t(kStages); ++s) {
      mbar_init(full(s), 1 + 32);  // the TMA thread's expect_tx arrival + the 32 lanes of the lse/D_i warp
      mbar_init(empty(s), 2 * 4);  // one arrival per consumer warp
    }
    mbar_init(kvEmpty, 2 * 4);  // one arrival per consumer warp: done with a tile's K and V
    mbar_init_fence();
  }
  __syncthreads();

  if (wg == 0) {
    setmaxnreg_dec<kProducerRegs>();
    if (threadIdx.x == 0) {
      tma_prefetch_map(&tmQ);
      tma_prefetch_map(&tmO);
      uint32_t s = 0, phase = 0, kvn = 0;
      for_tiles<kPersist>(nTiles, [&](uint32_t b) {
        const Work w = work_of(b);
        if (w.nIter == 0) return;
        // K and V once a tile: boxes (d block, key row block); rows past Tk arrive as zeros (a row
        // block wholly past Tk reloads block 0's rows, masked like them: see tma_row_block).
        wait_tile_buffer<kPersist>(kvEmpty, kvn);
        mbar_arrive_expect_tx(kvFull, uint32_t(2 * S::kKV));
#pragma unroll
        for (int d = 0; d < DB; ++d)
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            const uint32_t o = uint32_t(d * 2 + r) * kBoxBytes;
            tma_load(base + S::K + o, &tmK, d * kBox, tma_row_block(w.j0, r, Tk), w.bh, kvFull);
            tma_load(base + S::V + o, &tmV, d * kBox, tma_row_block(w.j0, r, Tk), w.bh, kvFull);
          }
        for (int it = 0; it < w.nIter; ++it) {
          const int i0 = w.iStart + it * M;
          mbar_wait(empty(s), phase ^ 1u);  // a fresh barrier passes parity 1: every stage starts free
          mbar_arrive_expect_tx(full(s), uint32_t(2 * S::kQ));
#pragma unroll
          for (int rb = 0; rb < S::kMB; ++rb)
#pragma unroll
            for (int d = 0; d < DB; ++d) {
              // (a row block wholly past Tq reloads the first one's rows: their P and dS are 0)
              const uint32_t o = uint32_t(rb * DB + d) * kBoxBytes;
              tma_load(base + S::Q + s * S::kQ + o, &tmQ, d * kBox, tma_row_block(i0, rb, Tq), w.bh, full(s));
              tma_load(base + S::dO + s * S::kQ + o, &tmO, d * kBox, tma_row_block(i0, rb, Tq), w.bh, full(s));
            }
          if (++s == uint32_t(kStages)) {
            s = 0;
            phase ^= 1u;
          }
        }
      });
    } else if (threadIdx.x >= 32 && threadIdx.x < 64) {
      // Warp 1: lse (as log2 units; +inf where P must be 0) and D_i of each query block.
      uint32_t s = 0, phase = 0;
      for_tiles<kPersist>(nTiles, [&](uint32_t b) {
        const Work w = work_of(b);
        const float* lseh = p.lse + int64_t(w.bh) * Tq;
        const float* Dih = p.Di + int64_t(w.bh) * Tq;
        for (int it = 0; it < w.nIter; ++it) {
          const int i0 = w.iStart + it * M;
          mbar_wait(empty(s), phase ^ 1u);
#pragma unroll
          for (int u = 0; u < M / 32; ++u) {
            const int r = lane + 32 * u;
            const int i = i0 + r;
            float l = INFINITY, di = 0.f;
            if (i < Tq) {
              const float x = lseh[i];
              l = x == -INFINITY ? INFINITY : x * kLog2e;
              di = Dih[i];
            }
            Ls[s * M + r] = l;
            Dis[s * M + r] = di;
          }
          mbar_arrive(full(s));
          if (++s == uint32_t(kStages)) {
            s = 0;
            phase ^= 1u;
          }
        }
      });
    }
    return;
  }

  // Consumers: warpgroup c owns keys j0 + 64c ... j0 + 64c + 63. c from lane 0, so that the
  // compiler knows it is the same across the warp: the descriptors built from it stay in uniform
  // registers.
  setmaxnreg_inc<kConsumerRegs>();
  const int c = __shfl_sync(0xffffffffu, wg - 1, 0), g = lane >> 2, t4 = lane & 3;
  const float sl2 = p.scaleLog2;
  uint32_t s = 0, phase = 0, kvn = 0;
  uint32_t blk = 0;  // query blocks done over all tiles: the parity of the double buffers
  for_tiles<kPersist>(nTiles, [&](uint32_t b) {
    const Work w = work_of(b);
    const int bh = w.bh, kend = w.kend, iStart = w.iStart, nIter = w.nIter;
    float dka[D / 2], dva[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; ++i) {
      dka[i] = 0.f;
      dva[i] = 0.f;
    }
    const int key0 = w.j0 + 64 * c;  // this warpgroup's first key
    if (nIter > 0) mbar_wait(kvFull, kvn & 1u);
    for (int it = 0; it < nIter; ++it, ++blk) {
      const int i0 = iStart + it * M;
      // Shared addresses laundered each block: the descriptors below are rebuilt from them with a
      // few integer operations instead of being hoisted out of the loop (they would hold ~50 registers).
      uint32_t sbase = base;
      asm volatile("" : "+r"(sbase));
      const uint32_t qs = sbase + S::Q + s * S::kQ, os = sbase + S::dO + s * S::kQ;
      mbar_wait(full(s), phase);
      __syncwarp();  // the wait loop may leave lanes apart; the .aligned wgmma instructions need them together

      // S^T = K_c Q^T and dP^T = V_c dO^T, both in flight.
      float st[M / 2], dpt[M / 2];
      wgmma_fence();
      issue_rows_by_queries<D, BF16, M>(st, sbase + S::K + uint32_t(c) * kBoxBytes, qs);
      issue_rows_by_queries<D, BF16, M>(dpt, sbase + S::V + uint32_t(c) * kBoxBytes, os);

      // P^T: this thread holds st[4i + 2h + e] = key row r = 16 warp + g + 8h of the warpgroup, query
      // column q = 8i + 2 t4 + e of the block.
      const float* Lb = Ls + s * M;
      const float* Db = Dis + s * M;
      wgmma_wait<1>();
      fence_acc(st);
      // (int64 where a difference of positions may leave int.)
      const bool needMask = i0 + M > Tq || key0 + 64 > kend || (kCausal && int64_t(key0) + 63 > int64_t(i0) + off);
      // Tile-relative: query q, key r hidden iff q >= qLimit, r >= kLimit, or r - q > diag.
      const int qLimit = Tq - i0 < M ? Tq - i0 : M;
      const int kl = kend - key0;
      const int kLimit = kl < 0 ? 0 : (kl > 64 ? 64 : kl);
      const int64_t dg = int64_t(i0) + off - key0;
      const int diag = int(dg < -2 * M ? -2 * M : (dg > 2 * M ? 2 * M : dg));
      // Two copies of the loop, the masked one for the blocks that need it: with one, the compiler
      // computed the mask's predicates for every element of every block (session 10's profile).
      auto probabilities = [&](auto masked) {
#pragma unroll
        for (int i = 0; i < M / 8; ++i)
#pragma unroll
          for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const int q = 8 * i + 2 * t4 + e, r = 16 * warp + g + 8 * h;
              float pv = exp2_approx(fmaf(st[4 * i + 2 * h + e], sl2, -Lb[q]));
              if constexpr (decltype(masked)::value)
                if (q >= qLimit || r >= kLimit || (kCausal && r - q > diag)) pv = 0.f;
              st[4 * i + 2 * h + e] = pv;
            }
      };
      if (needMask) probabilities(std::true_type{});
      else probabilities(std::false_type{});
      wgmma_wait<0>();
      fence_acc(dpt);
      // P^T and dS^T = P^T o (dP^T - D_i) to this warpgroup's boxes (P^T: one box; dS^T: buffer blk & 1,
      // which the other consumer also reads): element (key r, query q) at byte
      // r * 128 + ((q / 8) ^ (r % 8)) * 16 + (q % 8) * 2, the layout of the TMA unit's 128-byte swizzle.
      // st[x], st[x + 1] (x = 4i + 2h) are key r = 16 warp + g + 8h, queries q = 8i + 2 t4 and q + 1.
      unsigned char* const pBox = gbase + S::P + c * kBoxBytes;
      unsigned char* const dsBox = gbase + S::dS + ((blk & 1) * 2 + c) * S::kDS;
      // kRS: P^T and dS^T packed as A fragments, pa[kc] / dsa[kc] for queries 16 kc ... 16 kc + 15:
      // register u = 2 (i % 2) + h holds st[x], st[x + 1] with x = 4i + 2h (i = 2 kc + u / 2).
      uint32_t pa[M / 16][4], dsa[M / 16][4];
#pragma unroll
      for (int i = 0; i < M / 8; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int x = 4 * i + 2 * h, q = 8 * i + 2 * t4, r = 16 * warp + g + 8 * h;
          const int at = (i / 8) * kBoxBytes + r * 128 + (((i % 8) ^ (r & 7)) << 4) + 4 * t4;  // (i / 8: the query row block)
          const uint32_t pp = pack_half2<BF16>(st[x], st[x + 1]);
          const uint32_t dd = pack_half2<BF16>(st[x] * (dpt[x] - Db[q]), st[x + 1] * (dpt[x + 1] - Db[q + 1]));
          if constexpr (kRS) {
            pa[i / 2][2 * (i % 2) + h] = pp;
            dsa[i / 2][2 * (i % 2) + h] = dd;
          } else {
            *reinterpret_cast<uint32_t*>(pBox + at) = pp;
          }
          *reinterpret_cast<uint32_t*>(dsBox + at) = dd;
        }
      fence_proxy_async();  // the generic-proxy stores above, before the async proxy (wgmma) reads them

      // dV_c += P^T dO and dK_c += dS^T Q: B = dO / Q n-contiguous (d), k = 16 query rows a step
      // (2 KiB), the next 64 d columns the next box (leading byte offset); A = P^T / dS^T from
      // registers (kRS: issued before the barrier, they need nothing another thread wrote) or the box
      // read k-contiguous (k = 16 queries a step, 32 bytes along the rows).
      const uint32_t pA = sbase + S::P + uint32_t(c) * kBoxBytes;
      const uint32_t dsA = sbase + S::dS + uint32_t((blk & 1) * 2 + c) * S::kDS;
      const SmemDesc dO_n(os, kBoxBytes, 1024), Q_n(qs, kBoxBytes, 1024);  // n-contiguous, k = 16 rows a step
      auto issue_dv_dk_rs = [&] {
#pragma unroll
        for (int kc = 0; kc < M / 16; ++kc) {
          wgmma_rs<D, BF16, 1>(dva, pa[kc], dO_n.at(kc * 2048), 1);
          wgmma_rs<D, BF16, 1>(dka, dsa[kc], Q_n.at(kc * 2048), 1);
        }
        wgmma_commit();
      };
      if constexpr (kRS && !kDqFirst) {
        wgmma_fence();
        issue_dv_dk_rs();
      }
      // The boxes are written (and fenced) before any reader multiplies them: both consumers' when
      // each reads the other's dS^T (column split), else this warpgroup's own.
      if (kSplitKeys) named_barrier(2 + c, 128);
      else named_barrier(1, 256);
      wgmma_fence();
      auto issue_dv_dk_ss = [&] {
        const SmemDesc P_k(pA, 16, 1024), dS_k(dsA, 16, 1024);
#pragma unroll
        for (int kc = 0; kc < M / 16; ++kc) {
          const uint32_t ka = uint32_t(kc / 4) * kBoxBytes + (kc % 4) * 32;  // (kc / 4: the next query row block)
          wgmma_ss<D, BF16, 0, 1>(dva, P_k.at(ka), dO_n.at(kc * 2048), 1);
          wgmma_ss<D, BF16, 0, 1>(dka, dS_k.at(ka), Q_n.at(kc * 2048), 1);
        }
        wgmma_commit();
      };
      if constexpr (!kRS && !kDqFirst) issue_dv_dk_ss();

      // dQ[:, cols] = dS K: A = dS m-contiguous (the dS^T boxes, k = 16 keys a step; with the column
      // and row splits the next 64 keys are the other consumer's box); B = K n-contiguous (box (d block,
      // key row block)), k = 16 key rows a step.
      float dqa[NQ / 2];
      const uint32_t dsb = sbase + S::dS + uint32_t(blk & 1) * 2 * S::kDS;
      constexpr int kSteps = kSplitKeys ? 4 : kKeys / 16;
      {
        // Key split: this consumer's key box (c) of dS^T and of K, all d blocks; column split: both key
        // boxes, K's d block c; row split: both key boxes' query row block c, all of K.
        const uint32_t keyBox0 = kSplitKeys ? uint32_t(c) : 0u, dblk = kSplitKeys || kRowSplit ? 0u : uint32_t(c);
        const uint32_t rowBlk = kRowSplit ? uint32_t(c) : 0u;
        const SmemDesc dS_m(dsb + keyBox0 * S::kDS + rowBlk * kBoxBytes, kBoxBytes, 1024);
        const SmemDesc K_n(sbase + S::K + (dblk * 2 + keyBox0) * kBoxBytes, 2 * kBoxBytes, 1024);
#pragma unroll
        for (int kk = 0; kk < kSteps; ++kk) {
          const uint32_t step = (kk % 4) * 2048;  // (kk / 4: the next key box, column and row splits)
          wgmma_ss<NQ, BF16, 1, 1>(dqa, dS_m.at(uint32_t(kk / 4) * S::kDS + step), K_n.at(uint32_t(kk / 4) * kBoxBytes + step), kk > 0);
        }
      }
      wgmma_commit();
      float* const dqh = p.dqAcc + int64_t(bh) * Tq * D;
      const int rowOff = kRowSplit ? kRows * c : 0, colOff = kSplitKeys || kRowSplit ? 0 : NQ * c;  // this consumer's part of dQ
      auto add_dq = [&] {
#pragma unroll
        for (int i = 0; i < NQ / 8; ++i)
          atomic_add_block<D>(dqh, dqa[4 * i], dqa[4 * i + 1], dqa[4 * i + 2], dqa[4 * i + 3], i0 + rowOff + 16 * warp,
                              colOff + 8 * i, Tq, lane);
      };
      // kDqSum: this consumer's dQ (all 64 columns over its 64 keys) to its buffer, a barrier of both
      // consumers, then consumer c adds rows 32c ... 32c + 31 of the two partials to the accumulator,
      // a row of 16 float4 per 16 threads. Buffer blk & 1: the next write to it (block blk + 2) follows
      // this block's barrier and the next, which the other consumer reaches only after its reads here.
      auto add_dq_summed = [&] {
        float* const dqs = reinterpret_cast<float*>(gbase + S::DQ) + (blk & 1) * 2 * kRows * S::kDqStride;
        float* const mine = dqs + c * kRows * S::kDqStride;
#pragma unroll
        for (int i = 0; i < NQ / 8; ++i)
#pragma unroll
          for (int h = 0; h < 2; ++h)
            *reinterpret_cast<float2*>(mine + (16 * warp + g + 8 * h) * S::kDqStride + 8 * i + 2 * t4) =
                make_float2(dqa[4 * i + 2 * h], dqa[4 * i + 2 * h + 1]);
        named_barrier(1, 256);
        const int tid = int(threadIdx.x) - 128 * (1 + c);
#pragma unroll
        for (int u = 0; u < (kRows / 2) * D / 4 / 128; ++u) {
          const int idx = u * 128 + tid, row = (kRows / 2) * c + idx / (D / 4), col = (idx % (D / 4)) * 4;
          const float4 x = *reinterpret_cast<const float4*>(dqs + row * S::kDqStride + col);
          const float4 y = *reinterpret_cast<const float4*>(dqs + (kRows + row) * S::kDqStride + col);
          if (i0 + row < Tq)
            atomicAdd(reinterpret_cast<float4*>(dqh + int64_t(i0 + row) * D + col), make_float4(x.x + y.x, x.y + y.y, x.z + y.z, x.w + y.w));
        }
      };
      // kDqBulk: this warp's 16 dQ rows (the accumulator's rows 16 warp ... + 15, NQ = 64 columns) to
      // its two staging boxes (columns 32 b ... 32 b + 31 in box b; row r's 16-byte chunk k at chunk
      // k ^ (r % 8), the 128-byte swizzle), then lane 0 hands both to the TMA unit (rows past Tq are
      // dropped by it; a warp whose rows all are skips). The unit reads shared memory through the async
      // proxy: each lane fences its stores, and the warp meets before the copies.
      auto add_dq_bulk = [&] {
        const uint32_t stg = sbase + uint32_t(S::DQB + (c * 4 + warp) * S::kStgWarp);
        unsigned char* const stgp = gbase + (S::DQB + (c * 4 + warp) * S::kStgWarp);
        bulk_wait_read<0>();  // the unit has read this warp's rows of the last block
        __syncwarp();
#pragma unroll
        for (int i = 0; i < NQ / 8; ++i)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int r = g + 8 * h, chunk = 2 * (i % 4) + (t4 >> 1);
            *reinterpret_cast<float2*>(stgp + (i / 4) * 2048 + r * 128 + ((chunk ^ (r & 7)) << 4) + (t4 & 1) * 8) =
                make_float2(dqa[4 * i + 2 * h], dqa[4 * i + 2 * h + 1]);
          }
        fence_proxy_async();
        __syncwarp();
        const int row0 = i0 + rowOff + 16 * warp;
        if (lane == 0 && row0 < Tq) {
          tma_reduce_add(&tmDQ, stg, colOff, row0, bh);
          tma_reduce_add(&tmDQ, stg + 2048, colOff + 32, row0, bh);
        }
        bulk_commit();
      };
      if constexpr (kDqFirst) {
        if constexpr (kRS) issue_dv_dk_rs();
        else issue_dv_dk_ss();
        wgmma_wait<1>();  // dQ done (groups complete in order); dV / dK still in flight
        fence_acc(dqa);
        if constexpr (kDqSum) add_dq_summed();
        else if constexpr (kDqBulk) add_dq_bulk();
        else add_dq();
        wgmma_wait<0>();
      } else {
        wgmma_wait<0>();
        fence_acc(dqa);
      }
      fence_acc(dva);
      fence_acc(dka);
      if constexpr (kRS) {
        fence_regs(pa);  // the products that read them are done: their registers live until here
        fence_regs(dsa);
      }
      // Q, dO, L, D_i of this stage are no longer read.
      if (lane == 0) mbar_arrive(empty(s));
      if constexpr (!kDqFirst) add_dq();
      if (++s == uint32_t(kStages)) {
        s = 0;
        phase ^= 1u;
      }
    }

    // Every product of the tile has been waited for: K and V are free for the next tile's.
    if (nIter > 0) {
      if constexpr (kPersist)
        if (lane == 0) mbar_arrive(kvEmpty);
      ++kvn;
    }
    // dK = scale * dka, dV = dva: key row key0 + 16 warp + g + 8h, column 8i + 2 t4 (+1).
    T* const dKh = static_cast<T*>(p.dk) + int64_t(bh) * Tk * D;
    T* const dVh = static_cast<T*>(p.dv) + int64_t(bh) * Tk * D;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int j = key0 + 16 * warp + g + 8 * h;
      if (j >= Tk) continue;
#pragma unroll
      for (int i = 0; i < D / 8; ++i) {
        const int col = 8 * i + 2 * t4;
        *reinterpret_cast<uint32_t*>(dKh + int64_t(j) * D + col) = pack_half2<BF16>(dka[4 * i + 2 * h] * p.scale, dka[4 * i + 2 * h + 1] * p.scale);
        *reinterpret_cast<uint32_t*>(dVh + int64_t(j) * D + col) = pack_half2<BF16>(dva[4 * i + 2 * h], dva[4 * i + 2 * h + 1]);
      }
    }
  });
  // The unit has read this warp's staging rows before the block's shared memory goes: its additions
  // into global memory complete by the kernel's end (as a TMA store's do; CUTLASS's epilogues wait
  // the same way). Waiting for them too would add the reductions' round trip to every block (a
  // suspect for head dim 64's loss at T = 1k in session 10's run 3).
  if constexpr (kDqBulk) bulk_wait_read<0>();
#endif  // KILN_SM90_DEVICE
}

// ------------------------------------------------------------------ host side

using gemm_detail::device_info;
using gemm_detail::launched;

// Persistent launches (kPersist; g_sm90Persist; for the operand modes 4, 5 and 7, the others launch
// one block per tile): one block per multiprocessor, each walking tiles blockIdx.x, + gridDim.x, ...
// (heaviest first, as the tile order has them), so that one tile's K / V and first query blocks load
// while the consumers still store the last tile's dK / dV, and the blocks are set up once. Its
// producer, which walks the tiles in 24 registers, spills 16-32 bytes (ptxas -v).

template <bool BF16, int D, bool kCausal, bool kKeySplit, int kOps, bool kPersist = false>
std::string launch(const CUtensorMap& tmQ, const CUtensorMap& tmK, const CUtensorMap& tmV, const CUtensorMap& tmO,
                   const CUtensorMap& tmDQ, const Params& p, bool& ran) {
  constexpr bool kCanPersist = kOps == 4 || kOps == 5 || kOps == 7;
  if constexpr (kCanPersist && !kPersist) {
    if (g_sm90Persist.get() == 2) return launch<BF16, D, kCausal, kKeySplit, kOps, true>(tmQ, tmK, tmV, tmO, tmDQ, p, ran);
  }
  auto kernel = attention_bwd_sm90_kernel<BF16, D, kCausal, kKeySplit, kOps, kPersist>;
  constexpr size_t smem = Smem<D, rows_for_ops(kOps)>::for_ops(kOps);
  if (!sm90_kernel_ready<attention_bwd_sm90_kernel<BF16, D, kCausal, kKeySplit, kOps, kPersist>>(smem)) return "";
  const int64_t tiles = p.BH * ((p.Tk + kKeys - 1) / kKeys);
  if (tiles > 0x7fffffffLL) return "attention (sm90): grid of " + std::to_string(tiles) + " blocks";
  int64_t blocks = tiles;
  if constexpr (kPersist) blocks = sm90_persistent_blocks(tiles, device_info().sms);
  ran = true;
  kernel<<<unsigned(blocks), kThreads, smem>>>(tmQ, tmK, tmV, tmO, tmDQ, p);
  return launched();
}

// The dQ split for D = 128: 1 columns (the default), 2 keys (KILN_ATTENTION_SM90_DQ=keys,
// sm90_attention_set_dq_split; the check program times both).
Sm90AttnSwitch g_dqSplit("KILN_ATTENTION_SM90_DQ", "keys", nullptr, "cols");
// Where dV / dK's products take P^T and dS^T from, the order of the products and how dQ reaches
// the accumulator (the kernel's kOps, the same numbers): 1 registers, 2 shared memory, 3 registers
// with dQ issued first, 4 (head dim 64; 128 takes 3) shared memory with dQ issued first and summed
// over the consumers in shared memory, 5 / 6 registers / shared memory with dQ issued first and
// added by the TMA unit's bulk reduction (KILN_ATTENTION_SM90_BWD=rs|ss|dqfirst|dqsum|bulk|bulkss,
// sm90_attention_set_bwd_operands; the check program times each; head dim 128's dQ split by keys
// always takes 2). Session 9's H100 runs chose 3 for 128 (385 TFLOP/s at T = 8k causal against 346
// for 1 and 320 for 2) and 4 for 64 (its backward was bound by L2: the dQ atomics). Session 10's
// per-instruction profile found the dQ atomics (their shuffles and the 16-byte REDs waiting on each
// other's registers) ~20% of head dim 128's consumer samples and the summed dQ ~12% of head dim 64's.
// Its runs 3 and 4 (attention_cuda_check, backward TFLOP/s, causal T = 1k / 4k / 8k; run 4 at the
// shipped code):
//   head dim 128: 5 171 / 413 / 477 (4k full: 469) against 3's 159 / 345 / 399 (385): 5 is its default;
//   head dim 64: 4 171 / 281 / 302 (4k full: 307) against 5's 150 / 278 / 352 (302), and in run 3
//   4 172 / 279 / 310 (305) against 5's 150 / 279 / 351 (297): 5 gains with the query blocks a key
//   block walks (its per-block cost is higher, its per-block-pair cost lower; why is not measured),
//   so head dim 64 takes 5 from Tq = 8192 (the one length measured where it wins: `kiln bench
//   attention` fwd+bwd 347 against 327 TFLOP/s in run 4, 334 against 321 in run 3) and 4 below.
// 7 (head dim 64; 128 takes 5; session 11, compiled and checked on the host model, not yet run on a
// GPU: no default) walks query blocks of 128 rows instead of 64, FlashAttention-3's tile for this head
// dim: S^T and dP^T become m64n128 products (less shared-memory traffic per flop than n64), the
// per-block costs (barriers, waits, lse / D_i, fences) are paid half as often, and dQ is split between
// the consumers by query rows, each reading both consumers' dS^T, so no dQ element is reduced twice
// (as 4's sum, without its shared-memory pass); P^T / dS^T from registers, dQ by the bulk reduction.
Sm90AttnSwitch g_bwdOps("KILN_ATTENTION_SM90_BWD", "ss", "dqfirst", "rs", "dqsum", "bulk", "bulkss", "m128");

constexpr int default_ops(int D, int64_t Tq) { return D == 128 || Tq >= 8192 ? 5 : 4; }

template <bool BF16, int D, bool kCausal, bool kKeySplit>
std::string launch_ops(const CUtensorMap& tmQ, const CUtensorMap& tmK, const CUtensorMap& tmV, const CUtensorMap& tmO,
                       const CUtensorMap& tmDQ, const Params& p, bool& ran) {
  // Head dim 128 with dQ split by keys holds 64 dQ accumulators per thread: with the A fragments too,
  // ptxas serializes the products (C7512), so that schedule keeps the shared-memory operands.
  if constexpr (D == 128 && kKeySplit) {
    return launch<BF16, D, kCausal, kKeySplit, 2>(tmQ, tmK, tmV, tmO, tmDQ, p, ran);
  } else {
    switch (g_bwdOps.get(default_ops(D, p.Tq))) {
      case 2: return launch<BF16, D, kCausal, kKeySplit, 2>(tmQ, tmK, tmV, tmO, tmDQ, p, ran);
      case 3: return launch<BF16, D, kCausal, kKeySplit, 3>(tmQ, tmK, tmV, tmO, tmDQ, p, ran);
      case 4: return launch<BF16, D, kCausal, kKeySplit, D == 64 ? 4 : 3>(tmQ, tmK, tmV, tmO, tmDQ, p, ran);
      case 5: return launch<BF16, D, kCausal, kKeySplit, 5>(tmQ, tmK, tmV, tmO, tmDQ, p, ran);
      case 6: return launch<BF16, D, kCausal, kKeySplit, 6>(tmQ, tmK, tmV, tmO, tmDQ, p, ran);
      case 7: return launch<BF16, D, kCausal, kKeySplit, D == 64 ? 7 : 5>(tmQ, tmK, tmV, tmO, tmDQ, p, ran);
      default: return launch<BF16, D, kCausal, kKeySplit, 1>(tmQ, tmK, tmV, tmO, tmDQ, p, ran);
    }
  }
}

template <bool BF16, int D>
std::string run(const cpu::AttentionArgs& a, const void* q, const void* k, const void* v, const void* dout, const float* lse,
                const float* Di, float* dqAcc, void* dk, void* dv, bool& ran) {
  const int64_t BH = a.B * a.H;
  CUtensorMap tmQ, tmK, tmV, tmO, tmDQ;
  if (!tma_encode_f32_rows(tmDQ, dqAcc, D, a.Tq, BH, 16) || !tma_encode_rows(tmQ, BF16, q, D, a.Tq, BH) ||
      !tma_encode_rows(tmO, BF16, dout, D, a.Tq, BH) ||
      !tma_encode_rows(tmK, BF16, k, D, a.Tk, BH) || !tma_encode_rows(tmV, BF16, v, D, a.Tk, BH))
    return "";  // ran stays false
  Params p{};
  static_cast<Sm90AttnShape&>(p) = sm90_attn_shape(a);
  p.group = sm90_group_heads(BH, (a.Tk + kKeys - 1) / kKeys, device_info().sms);
  p.lse = lse;
  p.Di = Di;
  p.dqAcc = dqAcc;
  p.dk = dk;
  p.dv = dv;
  if constexpr (D == 64) {  // always split by keys
    return a.causal ? launch_ops<BF16, D, true, true>(tmQ, tmK, tmV, tmO, tmDQ, p, ran)
                    : launch_ops<BF16, D, false, true>(tmQ, tmK, tmV, tmO, tmDQ, p, ran);
  } else {
    const bool keys = g_dqSplit.get() == 2;
    if (a.causal)
      return keys ? launch_ops<BF16, D, true, true>(tmQ, tmK, tmV, tmO, tmDQ, p, ran) : launch_ops<BF16, D, true, false>(tmQ, tmK, tmV, tmO, tmDQ, p, ran);
    return keys ? launch_ops<BF16, D, false, true>(tmQ, tmK, tmV, tmO, tmDQ, p, ran) : launch_ops<BF16, D, false, false>(tmQ, tmK, tmV, tmO, tmDQ, p, ran);
  }
}

template <bool BF16, int D>
bool has_image() {
  return sm90_kernel_ready<attention_bwd_sm90_kernel<BF16, D, false, D == 64, 1, false>>(Smem<D>::kAlloc) &&
         sm90_kernel_ready<attention_bwd_sm90_kernel<BF16, D, true, D == 64, 1, false>>(Smem<D>::kAlloc);
}

}  // namespace

void sm90_attention_set_dq_split(int mode) { g_dqSplit.set(mode); }
void sm90_attention_set_bwd_operands(int mode) { g_bwdOps.set(mode); }
void sm90_attention_set_persistent(int mode, int64_t blocks) {
  g_sm90Persist.set(mode);
  g_sm90PersistBlocks.store(blocks > 0 ? blocks : 0, std::memory_order_relaxed);
}

bool sm90_attention_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("KILN_ATTENTION_KERNEL");
    if (e && (std::strcmp(e, "fa2") == 0 || std::strcmp(e, "basic") == 0)) return false;
    return device_info().error.empty() && device_info().major == 9 && tma_available();
  }();
  return on;
}

std::string sm90_attention_unsupported(AttnDType dtype, const cpu::AttentionArgs& a, const void* const* ptrs, int nptrs) {
  if (dtype != AttnDType::F16 && dtype != AttnDType::BF16) return "float16 and bfloat16 only";
  if (a.D != 64 && a.D != 128) return "head dims 64 and 128 only";
  if (a.keyMask || a.dropout > 0) return "no key mask or dropout";
  // Key padding lengths go to fa2: these kernels load whole 128-key tiles, and a non-finite value in
  // a padded K / V row would reach the results as 0 * inf (fa2 zero-fills those rows instead).
  if (a.keyLens) return "no key padding lengths";
  if (!(a.scale > 0)) return "the scale must be positive";
  if (a.B <= 0 || a.H <= 0 || a.Tq <= 0 || a.Tk <= 0) return "empty sequences";
  if (a.Tq > kSm90AttnMaxRows || a.Tk > kSm90AttnMaxRows || a.B * a.H > kSm90AttnMaxRows) return "a dimension is 2^31 or more";
  for (int i = 0; i < nptrs; ++i)
    if (reinterpret_cast<uintptr_t>(ptrs[i]) % 16 != 0) return "a tensor is not 16-byte aligned";
  const gemm_detail::DeviceInfo& d = device_info();
  if (!d.error.empty() || d.major != 9) return "the device is not compute capability 9.x";
  // The largest of the variants' shared memory (head dim 128's bulk-reduction staging, 211 KiB).
  constexpr size_t kMostSmem = std::max({Smem<128>::for_ops(1), Smem<128>::for_ops(5), Smem<64>::for_ops(4), Smem<64>::for_ops(5),
                                         Smem<64, rows_for_ops(7)>::for_ops(7)});
  if (size_t(d.smemOptin) < kMostSmem) return "not enough shared memory per block";
  if (!tma_available()) return "cuTensorMapEncodeTiled is not available from the driver";
  return "";
}

std::string sm90_attention_backward(AttnDType dtype, const cpu::AttentionArgs& a, const void* q, const void* k, const void* v,
                                    const void* out, const void* dout, const float* lse, void* dq, void* dk, void* dv,
                                    bool& handled) {
  handled = false;
  const void* ptrs[] = {q, k, v, out, dout, dq, dk, dv};
  if (!sm90_attention_unsupported(dtype, a, ptrs, 8).empty()) return "";
  const bool bf16 = dtype == AttnDType::BF16;
  const bool image = bf16 ? (a.D == 64 ? has_image<true, 64>() : has_image<true, 128>())
                          : (a.D == 64 ? has_image<false, 64>() : has_image<false, 128>());
  if (!image) return "";
  // Past this point the call is ours: any refusal below is an error, not a fallback.
  handled = true;
  return attention_backward_frame(dtype, a, out, dout, dq, [&](const float* Di, float* dqAcc) -> std::string {
    bool ran = false;
    std::string err;
    if (bf16) err = a.D == 64 ? run<true, 64>(a, q, k, v, dout, lse, Di, dqAcc, dk, dv, ran)
                              : run<true, 128>(a, q, k, v, dout, lse, Di, dqAcc, dk, dv, ran);
    else err = a.D == 64 ? run<false, 64>(a, q, k, v, dout, lse, Di, dqAcc, dk, dv, ran)
                         : run<false, 128>(a, q, k, v, dout, lse, Di, dqAcc, dk, dv, ran);
    if (err.empty() && !ran) err = "attention (sm90): the TMA unit refused a tensor layout";
    return err;
  });
}

}  // namespace cuda
}  // namespace kiln
