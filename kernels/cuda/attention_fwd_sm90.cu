// Hopper (sm_90a) attention forward for float16/bfloat16, head dims 64 and 128: the online-softmax
// algorithm of attention_fa2.cu's forward_kernel (same semantics: bottom-right aligned causal mask,
// key padding lengths, lse in natural-log units, a row that sees no key gives 0 and lse = -inf)
// with both products on warpgroup MMA (wgmma) and the operands brought in by the
// tensor-memory-access unit (TMA), in the manner of FlashAttention-3.
//
// A block of 384 threads owns 128 query rows of one (batch, head). Warpgroup 0 is the producer:
// it loads the Q tile once, then each 128-key tile of K and of V into a 2-stage ring, K and V of a
// stage on their own "full" and "empty" mbarriers (so S = Q K^T starts before V has landed; an
// empty barrier takes one arrival per consumer warp once its products have read the tile).
// Warpgroups 1 and 2 are the consumers, 64 query rows each; per key tile:
//   S = Q_c K^T     (64 x 128, float32, wgmma m64n128k16: Q and K both k-contiguous in shared memory)
//   mask, online softmax on exp2 in the accumulators (row max / sum across the 4 lanes of a quad)
//   O += P V        (64 x D, wgmma m64nDk16 with P from registers: an accumulator tile packed in
//                    pairs is already the A operand; V is read n-contiguous, the transpose bit set)
// and at the end O / l goes straight from the accumulators to global memory, lse from lane 0 of a quad.
// Three consumer schedules (KILN_ATTENTION_SM90_FWD, sm90_attention_set_fwd_pipeline; a GPU run is to
// pick): one tile at a time; pipelined as FlashAttention-3 does within a warpgroup (S(j) and
// P(j-1) V(j-1) in flight together, the softmax of S(j) beside the latter); and pipelined with
// FlashAttention-3's "pingpong" between the two consumers: they take turns to issue their products
// (named barrier 1 + c opens consumer c's turn, the other's arrival after its own issue opens it),
// so that one's softmax runs while the other's products keep the tensor cores busy. K and V stages are
// released separately (emptyK / emptyV), so K(j+1) can load while V(j) is still being read; thread
// 0 of the producer loads Q and the K ring, thread 32 the V ring. A fourth schedule (head dim 64
// only) is the pipelined one on blocks of 192 query rows: 512 threads, three consumers (kM, Block).
//
// Shared-memory layout (see sm90_common.cuh): every tile is 128 (Q: kM) rows x D of 64 x 64-element
// boxes (8 KiB each, 1 KiB-aligned, 128-byte swizzle), box (d block, 64-row block r) at (2 d + r) *
// 8 KiB (Q: (kM / 64 d + r) * 8 KiB), so the rows of one d block are contiguous 128-byte rows
// (8-row groups 1 KiB apart). Q (box (d, c) is consumer c's), then stage s's K and V, then the mbarriers.
//
// Rows past Tq or Tk are zero-filled by the TMA unit and masked, as are keys past the causal diagonal
// (P = 0 exactly). Key padding lengths are not taken (sm90_attention_unsupported): V rows in
// [kend, Tk) would be loaded and a non-finite value there would reach O as 0 * inf = NaN; fa2 never
// loads them. The kernel still masks keys at or past kend. Device code exists only for sm_90a
// (CMake compiles *_sm90.cu for it alone); the host side never launches it off compute capability 9.x.
#include <cuda.h>  // CUtensorMap (a type only)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>

#include "attention_common.cuh"  // exp2_approx, pack_half2
#include "attention_sm90.h"
#include "attention_sm90_common.h"
#include "gemm_common.cuh"  // device_info, launched
#include "sm90_common.cuh"
#include "sm90_tma.h"

namespace kiln {
namespace cuda {
namespace {

constexpr int kKeys = 128;  // keys per tile
constexpr int kStages = 2;
constexpr int kBoxBytes = kTmaBox * kTmaBox * 2;
static_assert(kKeys == 2 * kTmaBox, "a key tile is two 64-row boxes per d block");

// A block of kM query rows (128, or 192 for head dim 64's KILN_ATTENTION_SM90_FWD=m192): kM / 64
// consumer warpgroups and the producer. Registers as FlashAttention-3 splits them: 128 x 24 + 256 x 240
// and 128 x 32 + 384 x 160, each at most the 65536 of the register file.
template <int kM>
struct Block {
  static_assert(kM == 128 || kM == 192, "128 or 192 query rows");
  static constexpr int kConsumers = kM / 64;
  static constexpr int kThreads = 128 * (1 + kConsumers);
  static constexpr int kProducerRegs = kM == 128 ? 24 : 32;
  static constexpr int kConsumerRegs = kM == 128 ? 240 : 160;
  static_assert(128 * kProducerRegs + 128 * kConsumers * kConsumerRegs <= 65536, "setmaxnreg stays inside the register file");
};

// Shared-memory plan for head dim D and kM query rows (byte offsets from the 1 KiB-aligned base).
template <int D, int kM = 128>
struct Smem {
  static constexpr uint32_t kQRowBlocks = kM / kTmaBox;
  static constexpr uint32_t kTileQ = uint32_t(D / kTmaBox) * kQRowBlocks * kBoxBytes;  // kM rows x D
  static constexpr uint32_t kTile = uint32_t(D / kTmaBox) * 2 * kBoxBytes;              // 128 keys x D
  static constexpr uint32_t kQ = 0;
  static constexpr uint32_t kK0 = kTileQ;                 // stage s: K at kK0 + 2 s kTile, V kTile after it
  static constexpr uint32_t kBars = kTileQ + 2 * kStages * kTile;
  static constexpr int kNumBars = 2 + 4 * kStages;        // qFull, fullK[s], fullV[s], emptyK[s], emptyV[s], qEmpty
  static constexpr size_t kAlloc = size_t(kBars) + 8 * kNumBars + 1024;  // + slack to align the base
};

struct Params : Sm90AttnShape {
  void* out;
  float* lse;
};

#ifdef KILN_SM90_DEVICE

using namespace sm90;  // PTX wrappers (sm90_common.cuh)

#endif  // KILN_SM90_DEVICE

// tmQ: (D, Tq, B*H), tmK / tmV: (D, Tk, B*H), 64 x 64 boxes with the 128-byte swizzle (sm90_tma.h).
// kSched: 1 one tile at a time, 2 each tile's softmax beside the previous tile's P V, 3 that and the
// consumers' turns (pingpong, two consumers only). kPersist: the block walks tiles blockIdx.x, +
// gridDim.x, ... (a persistent launch); else it takes tile blockIdx.x alone. kM: query rows per block.
template <bool BF16, int D, bool kCausal, int kSched, bool kPersist, int kM>
__global__ void __launch_bounds__(Block<kM>::kThreads, 1)
    attention_fwd_sm90_kernel(const __grid_constant__ CUtensorMap tmQ, const __grid_constant__ CUtensorMap tmK,
                              const __grid_constant__ CUtensorMap tmV, const Params p) {
#ifdef KILN_SM90_DEVICE
  using S = Smem<D, kM>;
  constexpr int kDB = D / kTmaBox;  // 64-column blocks of the head dim
  constexpr int kQRB = int(S::kQRowBlocks);  // 64-row blocks of the Q tile: Q box (d, r) at (kQRB d + r) boxes
  constexpr int kConsumers = Block<kM>::kConsumers;
  constexpr bool kPipe = kSched >= 2, kPing = kSched == 3;
  static_assert(!kPing || kConsumers == 2, "the pingpong turns are between two consumers");
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  const uint32_t base = (smem_u32(smem_raw) + 1023u) & ~1023u;
  const uint32_t bars = base + S::kBars;
  const uint32_t qFull = bars;
  auto fullK = [&](uint32_t s) { return bars + 8u * (1 + s); };
  auto fullV = [&](uint32_t s) { return bars + 8u * (1 + kStages + s); };
  auto emptyK = [&](uint32_t s) { return bars + 8u * (1 + 2 * kStages + s); };
  auto emptyV = [&](uint32_t s) { return bars + 8u * (1 + 3 * kStages + s); };
  auto stageK = [&](uint32_t s) { return base + S::kK0 + 2u * s * S::kTile; };
  const uint32_t qEmpty = bars + 8u * (1 + 4 * kStages);

  const int wg = int(threadIdx.x) / 128;
  const int64_t off = p.Tk - p.Tq;
  // Tile b: query block i0 of head bh (sm90_tile: the block order; the longest causal rows first),
  // and the key tiles it visits, nkb (producer and consumers alike).
  const uint32_t nqb = uint32_t((p.Tq + kM - 1) / kM), nTiles = uint32_t(p.BH) * nqb;
  struct Work {
    int64_t bh, i0, kend;
    int nkb;
  };
  auto work_of = [&](uint32_t b) {
    Work w;
    const Sm90Tile tile = sm90_tile(b, uint32_t(p.BH), uint32_t(p.group), nqb);
    w.bh = tile.bh;
    w.i0 = int64_t(nqb - 1 - uint32_t(tile.t)) * kM;
    w.kend = p.Tk;
    if (p.keyLens) {
      const int64_t n = p.keyLens[w.bh / p.H];
      w.kend = n < 0 ? 0 : (n > p.Tk ? p.Tk : n);
    }
    int64_t kstop = w.kend;
    if (kCausal) {  // keys [0, last row + 1 + off) may be seen by this block's rows
      const int64_t lim = (w.i0 + kM < p.Tq ? w.i0 + kM : p.Tq) + off;
      if (lim < kstop) kstop = lim > 0 ? lim : 0;
    }
    w.nkb = int((kstop + kKeys - 1) / kKeys);
    return w;
  };

  if (threadIdx.x == 0) {
    mbar_init(qFull, 1);
    for (uint32_t s = 0; s < uint32_t(kStages); ++s) {
      mbar_init(fullK(s), 1);
      mbar_init(fullV(s), 1);
      mbar_init(emptyK(s), kConsumers * 4);  // one arrival per consumer warp
      mbar_init(emptyV(s), kConsumers * 4);
    }
    mbar_init(qEmpty, kConsumers * 4);  // one arrival per consumer warp: done with a tile's Q
    mbar_init_fence();
  }
  __syncthreads();

  if (wg == 0) {
    // Producer. Every box is loaded whole (rows past Tq / Tk arrive as zeros; a row block wholly past
    // the end reloads block 0, see tma_row_block), so each barrier expects the full tile's bytes.
    setmaxnreg_dec<Block<kM>::kProducerRegs>();
    // Thread 0 loads Q, then the K ring; thread 32 the V ring. K and V stages are released apart
    // (emptyK / emptyV): with the pipelined consumers K(j) is done one tile before V(j). The rings'
    // positions carry on from tile to tile.
    const int Tk = int(p.Tk);
    // A tile's key tiles into one ring (`map`, stage s at stageK(s) + `off`) as its consumers free the stages.
    auto load_ring = [&](const CUtensorMap* map, uint32_t off, auto full, auto empty, const Work& w, uint32_t& s, uint32_t& phase) {
      const int z = int(w.bh);
      for (int jb = 0; jb < w.nkb; ++jb) {
        mbar_wait(empty(s), phase ^ 1u);  // a fresh barrier passes parity 1: both stages start free
        const int j0 = jb * kKeys;
        const uint32_t dst = stageK(s) + off;
        mbar_arrive_expect_tx(full(s), S::kTile);
#pragma unroll
        for (int d = 0; d < kDB; ++d)
#pragma unroll
          for (int r = 0; r < 2; ++r) tma_load(dst + (2 * d + r) * kBoxBytes, map, d * kTmaBox, tma_row_block(j0, r, Tk), z, full(s));
        if (++s == uint32_t(kStages)) {
          s = 0;
          phase ^= 1u;
        }
      }
    };
    if (threadIdx.x == 0) {
      tma_prefetch_map(&tmQ);
      tma_prefetch_map(&tmK);
      uint32_t s = 0, phase = 0, qn = 0;
      for_tiles<kPersist>(nTiles, [&](uint32_t b) {
        const Work w = work_of(b);
        if (w.nkb == 0) return;
        wait_tile_buffer<kPersist>(qEmpty, qn);  // Q once a tile
        const int r0 = int(w.i0), Tq = int(p.Tq), z = int(w.bh);
        mbar_arrive_expect_tx(qFull, S::kTileQ);
#pragma unroll
        for (int d = 0; d < kDB; ++d)
#pragma unroll
          for (int r = 0; r < kQRB; ++r)
            tma_load(base + S::kQ + (kQRB * d + r) * kBoxBytes, &tmQ, d * kTmaBox, tma_row_block(r0, r, Tq), z, qFull);
        load_ring(&tmK, 0, fullK, emptyK, w, s, phase);
      });
    } else if (threadIdx.x == 32) {
      tma_prefetch_map(&tmV);
      uint32_t s = 0, phase = 0;
      for_tiles<kPersist>(nTiles, [&](uint32_t b) {
        const Work w = work_of(b);
        load_ring(&tmV, S::kTile, fullV, emptyV, w, s, phase);
      });
    }
    return;
  }

  // Consumers: warpgroup c owns query rows [row0, row0 + 64). This thread's accumulator element
  // 4i + 2h + e is row 16 warp + lane/4 + 8h of them, column 8i + 2(lane%4) + e (sm90_common.cuh).
  setmaxnreg_inc<Block<kM>::kConsumerRegs>();
  // c from lane 0, so that the compiler knows it is the same across the warp (the descriptors built
  // from it stay in uniform registers).
  const int c = __shfl_sync(0xffffffffu, wg - 1, 0), warp = (int(threadIdx.x) / 32) % 4, lane = int(threadIdx.x) % 32, t4 = lane & 3;
  const int rq = 16 * warp + (lane >> 2);  // this thread's rows: rq and rq + 8 of the warpgroup's
  const float sl2 = p.scaleLog2;
  const uint32_t qA = base + S::kQ + uint32_t(c) * kBoxBytes;  // box (d 0, row block c)
  // The K and V rings' positions (stage, parity), each advanced once per key tile.
  uint32_t sK = 0, phK = 0, sV = 0, phV = 0;
  auto next = [](uint32_t& st, uint32_t& ph) {
    if (++st == uint32_t(kStages)) {
      st = 0;
      ph ^= 1u;
    }
  };
  auto release = [&](uint32_t bar) {
    __syncwarp();
    if (lane == 0) mbar_arrive(bar);
  };
  uint32_t qn = 0;  // tiles with key tiles so far: the parity of qFull
  // Pingpong turns (kPing, below): consumer 1 opens consumer 0's first turn, and consumer 0 takes up
  // the last arrival after the block's last tile (the turns run on from tile to tile).
  if (kPing && c == 1) named_barrier_arrive(1, 256);
  for_tiles<kPersist>(nTiles, [&](uint32_t b) {
    const Work w = work_of(b);
    const int64_t bh = w.bh, i0 = w.i0, kend = w.kend;
    const int nkb = w.nkb;
    const int64_t row0 = i0 + 64 * c;
    // Key positions as int (all below Tk + 128 < 2^31): kendI, and (causal) diag0 = row0 + off, so that
    // row r sees key j iff j <= diag0 + r, and lastSeen, the last key the warpgroup's last row sees.
    const bool rowsLive = row0 < p.Tq;
    const int kendI = int(kend);
    const int diag0 = int(row0 + off);
    const int lastSeen = int((row0 + 63 < p.Tq ? row0 + 63 : p.Tq - 1) + off);
    float o[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; ++i) o[i] = 0.f;
    float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f};  // per-lane partial sums (reduced at the end)
    if (nkb > 0) {
      mbar_wait(qFull, qn & 1u);
      __syncwarp();
    }
    // S = Q_c K^T into sc (issued, not waited): k16 step kk is 32 bytes along the rows of d block kk / 4
    // (both operands k-contiguous; a d block is kQRB boxes of Q, two of K).
    auto issue_s = [&](float (&sc)[kKeys / 2], uint32_t sk) {
      const SmemDesc descQ(qA, 16, 1024), descK(sk, 16, 1024);
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const uint32_t col = uint32_t(kk % 4) * 32, db = uint32_t(kk / 4) * kBoxBytes;
        sm90::wgmma_ss<kKeys, BF16, 0, 0>(sc, descQ.at(db * kQRB + col), descK.at(db * 2 + col), kk > 0 ? 1 : 0);
      }
      wgmma_commit();
    };
    // O += P V (issued, not waited): V is n-contiguous (d within a row), a k16 step is 16 key rows
    // (2 KiB) of row block kc / 4, the next 64 d columns are the next d block's boxes (leading byte
    // offset). The descriptors are computed first (pv_descs) and the caller has fenced o (fence_acc),
    // both at a point where no other product is in flight: ptxas serializes the MMAs when a register a
    // product reads is written while another product is pending.
    auto pv_descs = [&](uint32_t sv, uint64_t (&dv)[kKeys / 16]) {
      const SmemDesc descV(sv, 2 * kBoxBytes, 1024);
#pragma unroll
      for (int kc = 0; kc < kKeys / 16; ++kc) dv[kc] = descV.at(uint32_t(kc / 4) * kBoxBytes + uint32_t(kc % 4) * 2048);
    };
    auto issue_pv = [&](const uint32_t (&pa)[kKeys / 16][4], const uint64_t (&dv)[kKeys / 16]) {
      wgmma_fence();
#pragma unroll
      for (int kc = 0; kc < kKeys / 16; ++kc) sm90::wgmma_rs<D, BF16, 1>(o, pa[kc], dv[kc], 1);
      wgmma_commit();
    };
    // Mask and online softmax on exp2 (scale > 0, so max(s) gives max(scale s)) for the tile at key
    // j0: sc becomes P in place; alpha[h] is the factor O's row h must be scaled by before P V of this
    // tile is added.
    auto softmax = [&](float (&sc)[kKeys / 2], int j0, float (&alpha)[2]) {
      const bool needMask = j0 + kKeys > kendI || (kCausal && j0 + kKeys - 1 > diag0);
      if (needMask) {
        // Key column col of row r (0..63) is hidden iff col >= kendI - j0 or (causal) col - r > diag0 - j0,
        // so iff col >= lim(r); per row, lim less this lane's column offset 2 t4 is compared with 8i + e.
        // Both differences fit an int: j0 < kendI, and an active warpgroup has diag0 - j0 >= -63.
        const int kLimit = min(kendI - j0, kKeys);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          int lim = kLimit;
          if (kCausal) lim = min(lim, min(diag0 - j0, 2 * kKeys) + rq + 8 * h + 1);
          lim -= 2 * t4;
#pragma unroll
          for (int i = 0; i < kKeys / 8; ++i)
#pragma unroll
            for (int e = 0; e < 2; ++e)
              if (8 * i + e >= lim) sc[4 * i + 2 * h + e] = -INFINITY;
        }
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float mx = -INFINITY;
#pragma unroll
        for (int i = 0; i < kKeys / 8; ++i) mx = fmaxf(mx, fmaxf(sc[4 * i + 2 * h], sc[4 * i + 2 * h + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float mnew = fmaxf(mrow[h], mx);
        const float mu = mnew == -INFINITY ? 0.f : mnew;  // nothing seen yet: every exp stays 0
        alpha[h] = exp2_approx((mrow[h] - mu) * sl2);
        mrow[h] = mnew;
        const float ms = mu * sl2;
        float sum = 0.f;
#pragma unroll
        for (int i = 0; i < kKeys / 8; ++i)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const float pv = exp2_approx(fmaf(sc[4 * i + 2 * h + e], sl2, -ms));
            sc[4 * i + 2 * h + e] = pv;
            sum += pv;
          }
        lrow[h] = lrow[h] * alpha[h] + sum;  // per-lane partial sum, reduced over the quad at the end
      }
    };
    // P as the A operand of k-step kc (keys 16kc..16kc+15): accumulator blocks 2kc and 2kc + 1.
    auto pack = [&](const float (&sc)[kKeys / 2], uint32_t (&pa)[kKeys / 16][4]) {
#pragma unroll
      for (int kc = 0; kc < kKeys / 16; ++kc)
#pragma unroll
        for (int u = 0; u < 4; ++u) pa[kc][u] = pack_half2<BF16>(sc[8 * kc + 2 * u], sc[8 * kc + 2 * u + 1]);
    };
    auto rescale = [&](const float (&alpha)[2]) {
#pragma unroll
      for (int i = 0; i < D / 8; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          o[4 * i + 2 * h] *= alpha[h];
          o[4 * i + 2 * h + 1] *= alpha[h];
        }
    };
    auto wait_full = [&](uint32_t bar, uint32_t ph) {
      mbar_wait(bar, ph);
      __syncwarp();  // the wait loop may leave lanes apart; the .aligned wgmma instructions need them together
    };
    // Pingpong turns (kPing): this warpgroup issues its products between turn_begin and turn_end. Both
    // consumers take one turn per key tile of the block (nkb, computed or not), alternating from
    // consumer 0: consumer 1 opens consumer 0's first turn, and consumer 0 takes up the last arrival
    // (before the block's first tile and after its last: a persistent block's turns run on).
    auto turn_begin = [&]() {
      if constexpr (kPing) named_barrier(1 + c, 256);
    };
    auto turn_end = [&]() {
      if constexpr (kPing) named_barrier_arrive(2 - c, 256);
    };

    // The tiles this warpgroup computes: a prefix of the block's tiles (none past the last row; causal:
    // none whose first key its last row does not see). It still waits for and releases the others,
    // which keeps its view of the rings' phases in step with the producer's. Uniform per warpgroup.
    const int nAct = !rowsLive || (kCausal && lastSeen < 0) ? 0 : (kCausal ? min(nkb, lastSeen / kKeys + 1) : nkb);
    float sc[kKeys / 2];  // the first S product overwrites it (scale-d 0); zeroed so it is never read unset
#pragma unroll
    for (int i = 0; i < kKeys / 2; ++i) sc[i] = 0.f;
    uint32_t pa[kKeys / 16][4];
    float alpha[2];
    // S of tile jb with nothing else in flight: product, K back, softmax, P into pa.
    auto s_alone = [&](int jb) {
      wait_full(fullK(sK), phK);
      turn_begin();
      issue_s(sc, stageK(sK));
      turn_end();
      wgmma_wait<0>();
      fence_acc(sc);
      release(emptyK(sK));
      next(sK, phK);
      softmax(sc, jb * kKeys, alpha);
      pack(sc, pa);
    };
    // P V of the next V tile with nothing else in flight (o already fenced), then V back.
    auto pv_alone = [&]() {
      uint64_t dv[kKeys / 16];
      pv_descs(stageK(sV) + S::kTile, dv);
      wait_full(fullV(sV), phV);
      issue_pv(pa, dv);
      wgmma_wait<0>();
      fence_acc(o);
      release(emptyV(sV));
      next(sV, phV);
    };
    if (!kPipe) {
      // One tile at a time: S, softmax, P V, then the stage goes back.
      for (int jb = 0; jb < nAct; ++jb) {
        s_alone(jb);
        rescale(alpha);
        fence_acc(o);
        pv_alone();
      }
    } else if (nAct > 0) {
      // FlashAttention-3's intra-warpgroup overlap: S(j) = Q K(j)^T and O += P(j-1) V(j-1) are in flight
      // together, and the softmax of S(j) runs while P(j-1) V(j-1) is still on the tensor cores; O is
      // rescaled by alpha(j) once that product has landed.
      s_alone(0);  // O is still 0: no rescale
      fence_acc(o);
      for (int jb = 1; jb < nAct; ++jb) {
        uint64_t dv[kKeys / 16];
        pv_descs(stageK(sV) + S::kTile, dv);
        sm90::fence_regs64(dv);
        wait_full(fullK(sK), phK);
        if constexpr (kPing) wait_full(fullV(sV), phV);  // both tiles here before the turn
        turn_begin();
        issue_s(sc, stageK(sK));
        if constexpr (!kPing) wait_full(fullV(sV), phV);
        issue_pv(pa, dv);
        turn_end();
        wgmma_wait<1>();  // S(j) has landed; P(j-1) V(j-1) may still run
        fence_acc(sc);
        release(emptyK(sK));
        next(sK, phK);
        softmax(sc, jb * kKeys, alpha);  // in place: S(j) has landed, and no product in flight reads sc
        wgmma_wait<0>();
        fence_acc(o);
        fence_acc(sc);         // the P(j) packing below stays after the wait (else ptxas serializes, C7513)
        sm90::fence_regs(pa);  // and P(j-1) keeps its registers until the product reading it is done
        release(emptyV(sV));
        next(sV, phV);
        // P(j) into the A registers only now: writing them (or any register a pending product reads)
        // while a product is in flight makes ptxas serialize the MMAs.
        rescale(alpha);
        pack(sc, pa);
        fence_acc(o);
      }
      pv_alone();
    }
    for (int jb = nAct; jb < nkb; ++jb) {  // tiles this warpgroup does not compute
      turn_begin();
      turn_end();
      mbar_wait(fullK(sK), phK);
      release(emptyK(sK));
      next(sK, phK);
      mbar_wait(fullV(sV), phV);
      release(emptyV(sV));
      next(sV, phV);
    }
    // Every product of the tile is done: Q is free for the next tile's.
    if (nkb > 0) {
      if constexpr (kPersist) release(qEmpty);
      ++qn;
    }

    // O / l straight from the accumulators: each quad writes 16 contiguous bytes of a row per step.
    uint32_t* const out = static_cast<uint32_t*>(p.out);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float l = lrow[h];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const float inv = l > 0.f ? 1.f / l : 0.f;
      const int64_t i = row0 + rq + 8 * h;
      if (i < p.Tq) {
        uint32_t* const dst = out + ((bh * p.Tq + i) * D + 2 * t4) / 2;
#pragma unroll
        for (int k = 0; k < D / 8; ++k) dst[4 * k] = pack_half2<BF16>(o[4 * k + 2 * h] * inv, o[4 * k + 2 * h + 1] * inv);
        if (t4 == 0 && p.lse) p.lse[bh * p.Tq + i] = l > 0.f ? mrow[h] * p.scale + logf(l) : -INFINITY;
      }
    }
  });
  if (kPing && c == 0) named_barrier(1, 256);  // consumer 1's arrival after its last turn
#endif  // KILN_SM90_DEVICE
}

// ------------------------------------------------------------------ host side

using gemm_detail::device_info;
using gemm_detail::launched;

// The consumers' schedule (kSched): 1 one tile at a time, 2 pipelined, 3 pipelined with pingpong
// (KILN_ATTENTION_SM90_FWD=simple|pipe|pingpong|m192, sm90_attention_set_fwd_pipeline; the check program
// times each). The default by head dim, from H100 runs (attention_cuda_check, T = 1k-8k causal):
// pipelined for 128 (session 9: forward 1.02-1.08x one tile at a time, and at or above pingpong;
// session 10's run 3: 630 TFLOP/s at T = 8k against 569 for pingpong); pingpong for 64 (session 9,
// with the descriptors rebuilt per product: 0.99-1.01x one tile at a time; session 10's runs 2 and
// 3, descriptors from SmemDesc: 372 / 364 against 349 / 342 at T = 4k, 413 / 428 against 388 / 385
// at 8k, 216 / 208 against 216 / 212 at 1k).
// 4 (head dim 64; 128 takes its default; session 12, compiled and checked on the host model, not yet
// run on a GPU: no default) is the pipelined schedule on blocks of 192 query rows with three consumer
// warpgroups, FlashAttention-3's tile for this head dim: at head dim 64 each exp of the softmax
// stands for only 256 flops of the products, so the multiprocessor's exp units are about as busy as
// its tensor cores, and a third warpgroup's softmax and products fill the gaps of the other two.
Sm90AttnSwitch g_fwdPipe("KILN_ATTENTION_SM90_FWD", "pipe", "pingpong", "simple", "m192");

// kPersist (KILN_ATTENTION_SM90_PERSIST=on, sm90_attention_set_persistent; session 11, not yet run on
// a GPU; the pipelined schedules only): one block per multiprocessor, each walking tiles, so that a
// tile's Q and first key tiles load while the last tile's O is stored, and the blocks are set up once.
template <bool BF16, int D, bool kCausal, int kSched, int kM, bool kPersist = false>
std::string launch(const CUtensorMap& tmQ, const CUtensorMap& tmK, const CUtensorMap& tmV, const Params& p, unsigned grid,
                   bool& handled) {
  if constexpr (kSched >= 2 && !kPersist) {
    if (g_sm90Persist.get() == 2)
      return launch<BF16, D, kCausal, kSched, kM, true>(tmQ, tmK, tmV, p, unsigned(sm90_persistent_blocks(grid, device_info().sms)),
                                                        handled);
  }
  auto kernel = attention_fwd_sm90_kernel<BF16, D, kCausal, kSched, kPersist, kM>;
  constexpr size_t smem = Smem<D, kM>::kAlloc;
  if (!sm90_kernel_ready<attention_fwd_sm90_kernel<BF16, D, kCausal, kSched, kPersist, kM>>(smem)) return "";  // handled stays false: the fa2 kernels run
  handled = true;
  kernel<<<grid, Block<kM>::kThreads, smem>>>(tmQ, tmK, tmV, p);
  const std::string err = launched();
  return err.empty() ? err : "attention forward (sm90): " + err;
}

template <bool BF16, int D, int kSched, int kM>
std::string run_rows(const cpu::AttentionArgs& a, const CUtensorMap& tmQ, const CUtensorMap& tmK, const CUtensorMap& tmV, void* out,
                     float* lse, bool& handled) {
  const int64_t BH = a.B * a.H, nqb = (a.Tq + kM - 1) / kM, blocks = BH * nqb;
  if (blocks < 1 || blocks > 0x7fffffffLL) return "";
  Params p{};
  static_cast<Sm90AttnShape&>(p) = sm90_attn_shape(a);
  p.group = sm90_group_heads(BH, nqb, device_info().sms);
  p.out = out;
  p.lse = lse;
  const unsigned grid = unsigned(blocks);
  return a.causal ? launch<BF16, D, true, kSched, kM>(tmQ, tmK, tmV, p, grid, handled)
                  : launch<BF16, D, false, kSched, kM>(tmQ, tmK, tmV, p, grid, handled);
}

template <bool BF16, int D>
std::string run(const cpu::AttentionArgs& a, const void* q, const void* k, const void* v, void* out, float* lse,
                bool& handled) {
  const int64_t BH = a.B * a.H;
  CUtensorMap tmQ, tmK, tmV;
  if (!tma_encode_rows(tmQ, BF16, q, D, a.Tq, BH) || !tma_encode_rows(tmK, BF16, k, D, a.Tk, BH) ||
      !tma_encode_rows(tmV, BF16, v, D, a.Tk, BH))
    return "";  // a layout the TMA unit refuses: the fa2 kernels run
  constexpr int dflt = D == 128 ? 2 : 3;
  switch (g_fwdPipe.get(dflt)) {
    case 2: return run_rows<BF16, D, 2, 128>(a, tmQ, tmK, tmV, out, lse, handled);
    case 3: return run_rows<BF16, D, 3, 128>(a, tmQ, tmK, tmV, out, lse, handled);
    case 4:  // head dim 64 only: 128 runs its default
      if constexpr (D == 64) return run_rows<BF16, D, 2, 192>(a, tmQ, tmK, tmV, out, lse, handled);
      else return run_rows<BF16, D, dflt, 128>(a, tmQ, tmK, tmV, out, lse, handled);
    default: return run_rows<BF16, D, 1, 128>(a, tmQ, tmK, tmV, out, lse, handled);
  }
}

}  // namespace

void sm90_attention_set_fwd_pipeline(int mode) { g_fwdPipe.set(mode); }
void sm90_attention_set_order(int mode, int64_t groupBlocks) {
  g_sm90Order.set(mode);
  g_sm90GroupBlocks.store(groupBlocks > 0 ? groupBlocks : 0, std::memory_order_relaxed);
}

std::string sm90_attention_forward(AttnDType dtype, const cpu::AttentionArgs& a, const void* q, const void* k, const void* v,
                                   void* out, float* lse, bool& handled) {
  handled = false;
  const void* ptrs[] = {q, k, v, out};
  if (!sm90_attention_unsupported(dtype, a, ptrs, 4).empty()) return "";  // the one rule for what these kernels take
  if (size_t(device_info().smemOptin) < (a.D == 64 ? Smem<64>::kAlloc : Smem<128>::kAlloc)) return "";
  if (dtype == AttnDType::BF16) return a.D == 64 ? run<true, 64>(a, q, k, v, out, lse, handled) : run<true, 128>(a, q, k, v, out, lse, handled);
  return a.D == 64 ? run<false, 64>(a, q, k, v, out, lse, handled) : run<false, 128>(a, q, k, v, out, lse, handled);
}

}  // namespace cuda
}  // namespace kiln
