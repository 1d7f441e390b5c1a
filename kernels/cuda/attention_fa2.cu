// FlashAttention-2 for float16/bfloat16 on tensor-core fragments (mma.sync m16n8k16, float
// accumulation), the fast path behind kernels/cuda/attention_api.h (dispatch in attention.cu).
// Same semantics as kernels/cpu/attention.h for what it supports: causal (bottom-right aligned),
// key padding lengths, dropout (the same Philox mask as the CPU and attention.cu's basic kernels:
// the forward scales P by the mask after the row sum, the backward redraws it; separate kernel
// instantiations, so calls without dropout run the code they ran before), head dims 32/64/128, lse
// saved as float32 in natural-log units. float32 (opt-in: KILN_ATTENTION_F32=fa2) runs the same two
// kernels with 3xTF32 products on mma.sync m16n8k8 (see "float32" below).
//
// Forward: one CTA of 4 warps per (128 query rows, batch*head); each warp owns 32 rows (two m16
// tiles, so every K/V fragment read from shared memory feeds two mma). K and V tiles stream through
// shared memory with cp.async: V(j) loads while S = Q K(j)^T runs, K(j+1) while O += P V(j) runs.
// The online softmax lives in the S accumulators (row max/sum across the 4-lane quad); P becomes
// the A operand of P V straight from registers. Causal tiles past the diagonal are never visited.
//
// Backward: one CTA of 8 warps per (128 keys, batch*head); each warp owns 16 keys and computes
// S^T = K Q^T and dP^T = V dO^T directly, so P^T and dS^T are already A operands for dV += P^T dO
// and dK += dS^T Q (accumulated in registers over all query blocks). dS^T goes to shared memory
// once for dQ = dS K, added with float atomics into a float32 buffer; Q/dO/lse/D_i blocks are
// double-buffered. D_i = rowsum(dO o O) comes from a preprocessing kernel, dQ's conversion after.
//
// Fragment layouts (PTX ISA, mma.m16n8k16 .bf16/.f16; g = lane / 4, t = lane % 4):
//   A 16x16: a0 = (g, 2t..2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..), a3 = (g+8, 2t+8..)
//   B 16x8:  b0 = (k 2t..2t+1, n g), b1 = (k 2t+8.., n g)
//   C 16x8:  c0,c1 = (g, 2t..2t+1), c2,c3 = (g+8, 2t..2t+1)
//   ldmatrix x4: lanes 8i..8i+7 give the row addresses of matrix i; register i of lane l holds
//   matrix i's (row l/4, cols 2(l%4)..+1), or with .trans its (rows 2(l%4)..+1, col l/4).
// Shared tiles are row-major with rows padded by 8 elements (16 bytes), so the 8 row addresses of
// an ldmatrix land in 8 different 16-byte bank groups.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

#include "../common/philox.h"
#include "attention_common.cuh"  // exp2_approx, pack_half2
#include "attention_fa2.h"
#include "cuda_api.h"

namespace kiln {
namespace cuda {
namespace fa2 {

constexpr float kLog2e = 1.4426950408889634f;

struct Params {
  int64_t BH, H, Tq, Tk;
  float scale;      // natural units
  float scaleLog2;  // scale * log2(e): softmax runs on exp2
  const int32_t* keyLens;
  // Dropout on P (attention.cu's semantics): element (bh, i, j) is kept iff word offset + ((bh Tq + i) Tk + j)
  // of the kiln Philox stream has (word >> 8) >= dropThreshold, and then scaled by keepScale = 1 / (1 - p).
  bool dropout;
  float keepScale;
  uint32_t dropThreshold;
  uint64_t seed, offset;
};

// The dropout factor (0 or keepScale) of stream word x.
__device__ inline float drop_factor(const Params& p, uint32_t x) { return philox::dropout_keeps(x, p.dropThreshold) ? p.keepScale : 0.f; }
// The factors of words w and w + 1 (two keys of one query row): one Philox block unless w ends a block.
__device__ inline void drop_factor_pair(const Params& p, uint64_t w, float& z0, float& z1) {
  const philox::Words4 b = philox::stream_block(p.seed, w >> 2);
  const unsigned i = unsigned(w & 3);
  z0 = drop_factor(p, philox::word(b, i));
  z1 = drop_factor(p, i != 3 ? philox::word(b, i + 1) : philox::stream_block(p.seed, (w >> 2) + 1).v[0]);
}

// ---- element types ----------------------------------------------------------------------------

template <class T> struct Elem;
template <> struct Elem<__nv_bfloat16> {
  __device__ static uint32_t pack(float lo, float hi) { return pack_half2<true>(lo, hi); }
  __device__ static float2 unpack(uint32_t u) {
    __nv_bfloat162 h;
    memcpy(&h, &u, 4);
    return __bfloat1622float2(h);
  }
  // D += A B, bf16 operands, float accumulators.
  __device__ static void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#ifdef KILN_HOST_MODEL
    ::kiln_host::mma_m16n8k16(true, c, a, b0, b1);  // bench/native/cuda_host
#else
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
  }
};
template <> struct Elem<__half> {
  __device__ static uint32_t pack(float lo, float hi) { return pack_half2<false>(lo, hi); }
  __device__ static float2 unpack(uint32_t u) {
    __half2 h;
    memcpy(&h, &u, 4);
    return __half22float2(h);
  }
  __device__ static void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#ifdef KILN_HOST_MODEL
    ::kiln_host::mma_m16n8k16(false, c, a, b0, b1);
#else
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
  }
};

// ---- PTX helpers ------------------------------------------------------------------------------
// (Under KILN_HOST_MODEL, bench/native/cuda_host's model of each instruction: the kernels compiled
// for the CPU by scripts/build-cuda-host.sh.)
#ifdef KILN_HOST_MODEL
__device__ inline uint32_t smem_u32(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }
__device__ inline void ldsm_x4(uint32_t (&r)[4], uint32_t addr) { ::kiln_host::ldmatrix_x4(r, addr, false); }
__device__ inline void ldsm_x4_t(uint32_t (&r)[4], uint32_t addr) { ::kiln_host::ldmatrix_x4(r, addr, true); }
__device__ inline void cp_async16(void* dst, const void* src, bool valid) { ::kiln_host::cp_async(dst, src, 16, valid ? 16 : 0); }
__device__ inline void cp_async4(void* dst, const void* src, bool valid) { ::kiln_host::cp_async(dst, src, 4, valid ? 4 : 0); }
__device__ inline void cp_async_commit() { ::kiln_host::cp_async_commit(); }
__device__ inline void cp_async_wait_all() { ::kiln_host::cp_async_wait_all(); }
__device__ inline uint32_t to_tf32(float x) { return ::kiln_host::cvt_rna_tf32(x); }
__device__ inline void mma_tf32(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  ::kiln_host::mma_m16n8k8_tf32(c, a, b0, b1);
}
#else

__device__ inline uint32_t smem_u32(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

__device__ inline void ldsm_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ inline void ldsm_x4_t(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// 16 bytes global -> shared, zero-filled (nothing read) when !valid.
__device__ inline void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src), "r"(valid ? 16 : 0)
               : "memory");
}
__device__ inline void cp_async4(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_u32(dst)), "l"(src), "r"(valid ? 4 : 0)
               : "memory");
}
__device__ inline void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ inline void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

// x rounded to the nearest TF32 value (ties away from zero), as a 32-bit register.
__device__ inline uint32_t to_tf32(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
}
// D += A B, TF32 operands, float accumulators (m16n8k8).
__device__ inline void mma_tf32(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
#endif  // KILN_HOST_MODEL


__device__ inline int64_t key_end(const Params& p, int64_t b) {
  if (!p.keyLens) return p.Tk;
  const int64_t n = p.keyLens[b];
  return n < 0 ? 0 : (n > p.Tk ? p.Tk : n);
}

// Clamps x into [lo, hi] as an int (tile-relative limits stay small whatever the sequence length).
__device__ inline int clamp_int(int64_t x, int lo, int hi) { return x < lo ? lo : (x > hi ? hi : static_cast<int>(x)); }

// Rows [r0, r0 + ROWS) of a row-major [*, D] matrix into a shared tile with rows padded by 16 bytes
// (row stride D + 8 for the half types, D + 4 for float32); rows at or past `limit` are zero-filled
// (src itself stays a valid address). Each thread keeps one 16-byte column and steps down the rows,
// so the addresses are one base plus constants.
template <class T, int D, int ROWS, int THREADS>
__device__ inline void load_rows_async(T* dst, const T* src, int64_t r0, int64_t limit) {
  constexpr int kPer = 16 / sizeof(T), kChunks = D / kPer, LD = D + kPer, kStep = THREADS / kChunks;
  static_assert(THREADS % kChunks == 0 && ROWS % kStep == 0, "tile copy shape");
  const int r = threadIdx.x / kChunks, cc = threadIdx.x % kChunks;
  const int left = clamp_int(limit - r0 - r, 0, ROWS);  // rows r, r + kStep, ... below this are valid
  const T* s = src + (r0 + r) * D + cc * kPer;
  T* d = dst + r * LD + cc * kPer;
#pragma unroll
  for (int u = 0; u < ROWS / kStep; ++u) {
    const bool ok = u * kStep < left;
    cp_async16(d + u * kStep * LD, ok ? s + static_cast<int64_t>(u) * kStep * D : src, ok);
  }
}

// ---- pieces the half-type and float32 kernels share ------------------------------------------

// A forward block's place: its batch*head, its first query row (the longest causal rows start
// first), the key offset Tk - Tq, its keys' end and how many key tiles it visits.
struct FwdBlock {
  int64_t bh, i0, off, kend, nkb;
};
template <bool kCausal, int Br, int Bc>
__device__ inline FwdBlock forward_block(const Params& p) {
  FwdBlock f;
  const int64_t nqb = (p.Tq + Br - 1) / Br;
  f.bh = blockIdx.x % p.BH;
  f.i0 = (nqb - 1 - blockIdx.x / p.BH) * Br;
  f.off = p.Tk - p.Tq;
  f.kend = key_end(p, f.bh / p.H);
  int64_t kstop = f.kend;
  if (kCausal) {  // keys [0, i0 + Br + off) may be seen by this block's rows
    const int64_t lim = f.i0 + Br + f.off;
    if (lim < kstop) kstop = lim > 0 ? lim : 0;
  }
  f.nkb = (kstop + Bc - 1) / Bc;
  return f;
}

// The forward's running state: O = 0, row maxima -inf, row sums 0.
template <int MT, int DT>
__device__ inline void forward_init(float (&o)[MT][DT][4], float (&mrow)[MT][2], float (&lrow)[MT][2]) {
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int dt = 0; dt < DT; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[mt][dt][e] = 0.f;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      mrow[mt][h] = -INFINITY;
      lrow[mt][h] = 0.f;
    }
  }
}

// Hides (-inf) the scores of key tile j0 a warp's rows (from wrow0) may not see. Tile-relative: key c
// (0..Bc) of row r (0..32) is hidden iff c >= kLimit or c - r > diag.
template <bool kCausal, int MT, int NT>
__device__ inline void mask_scores(float (&s)[MT][NT][4], int64_t kend, int64_t j0, int64_t wrow0, int64_t off, int g, int t4) {
  constexpr int Bc = NT * 8;
  const int kLimit = clamp_int(kend - j0, 0, Bc);
  const int diag = clamp_int(wrow0 + off - j0, -2 * Bc, 2 * Bc);
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = mt * 16 + g + (e >> 1) * 8, c = nt * 8 + t4 * 2 + (e & 1);
        if (c >= kLimit || (kCausal && c - r > diag)) s[mt][nt][e] = -INFINITY;
      }
}

// Online softmax of key tile j0 on exp2 (scale > 0 is guaranteed by the dispatch, so max(s) gives
// max(scale s)): S becomes P in place, O is rescaled, the row maxima and per-lane partial sums move
// on. With dropout, l sums the kept and the dropped alike and only P V sees the mask.
template <bool kDrop, int MT, int NT, int DT>
__device__ inline void online_softmax(const Params& p, float (&s)[MT][NT][4], float (&o)[MT][DT][4], float (&mrow)[MT][2],
                                      float (&lrow)[MT][2], int64_t bh, int64_t wrow0, int64_t j0, int g, int t4) {
  const float sl2 = p.scaleLog2;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) mx = fmaxf(mx, fmaxf(s[mt][nt][2 * h], s[mt][nt][2 * h + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float mnew = fmaxf(mrow[mt][h], mx);
      const float mu = mnew == -INFINITY ? 0.f : mnew;  // nothing seen yet: every exp stays 0
      const float alpha = exp2_approx((mrow[mt][h] - mu) * sl2);
      mrow[mt][h] = mnew;
      const float ms = mu * sl2;
      float sum = 0.f;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 2 * h; e < 2 * h + 2; ++e) {
          const float pv = exp2_approx(fmaf(s[mt][nt][e], sl2, -ms));
          s[mt][nt][e] = pv;
          sum += pv;
        }
      if constexpr (kDrop) {
        const int64_t i = wrow0 + mt * 16 + g + h * 8;
        const uint64_t w0 = p.offset + static_cast<uint64_t>((bh * p.Tq + i) * p.Tk + j0 + t4 * 2);
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
          float z0, z1;
          drop_factor_pair(p, w0 + nt * 8, z0, z1);
          s[mt][nt][2 * h] *= z0;
          s[mt][nt][2 * h + 1] *= z1;
        }
      }
      lrow[mt][h] = lrow[mt][h] * alpha + sum;  // per-lane partial sum, reduced over the quad at the end
#pragma unroll
      for (int dt = 0; dt < DT; ++dt) {
        o[mt][dt][2 * h] *= alpha;
        o[mt][dt][2 * h + 1] *= alpha;
      }
    }
}

// A backward block's place: its batch*head, its first key (causal: the first key blocks see the most
// queries, so start first), the key offset, its keys' end, the first query block that sees any of its
// keys and how many query blocks it walks.
struct BwdBlock {
  int64_t bh, j0, off, kend, iStart;
  int nIter;
};
template <bool kCausal, int Br, int Bc>
__device__ inline BwdBlock backward_block(const Params& p) {
  BwdBlock f;
  f.bh = blockIdx.x % p.BH;
  f.j0 = (blockIdx.x / p.BH) * Bc;
  f.off = p.Tk - p.Tq;
  f.kend = key_end(p, f.bh / p.H);
  f.iStart = 0;
  if (kCausal) {  // query i sees key j iff i >= j - off
    const int64_t first = f.j0 - f.off;
    f.iStart = first > 0 ? (first / Br) * Br : 0;
  }
  f.nIter = f.j0 < f.kend && f.iStart < p.Tq ? static_cast<int>((p.Tq - f.iStart + Br - 1) / Br) : 0;
  return f;
}

// P^T in place of a warp's S^T (16 keys from key0 x Br queries from i0), recomputed from the saved
// lse. Tile-relative: query c (0..Br) and key r (0..16) are hidden iff c >= qLimit, r >= kLimit, or
// r - c > diag; a row that saw nothing (lse -inf) has P = 0.
template <bool kCausal, int Br>
__device__ inline void probs_from_scores(const Params& p, float (&st)[Br / 8][4], const float* lseb, int64_t i0, int64_t key0,
                                         int64_t kend, int64_t off, int g, int t4) {
  const bool needMask = i0 + Br > p.Tq || key0 + 16 > kend || (kCausal && key0 + 15 > i0 + off);
  const int qLimit = clamp_int(p.Tq - i0, 0, Br), kLimit = clamp_int(kend - key0, 0, 16);
  const int diag = clamp_int(i0 + off - key0, -2 * Br, 2 * Br);
  const float sl2 = p.scaleLog2;
#pragma unroll
  for (int nt = 0; nt < Br / 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int c = nt * 8 + t4 * 2 + (e & 1), r = g + (e >> 1) * 8;
      const float l = lseb[c];
      const float L = l == -INFINITY ? INFINITY : l * kLog2e;
      float pv = exp2_approx(fmaf(st[nt][e], sl2, -L));
      if (needMask && (c >= qLimit || r >= kLimit || (kCausal && r - c > diag))) pv = 0.f;
      st[nt][e] = pv;
    }
}

// Two adjacent outputs into shared memory: a packed pair of the half type, or two floats.
template <class T>
__device__ inline void store_pair(T* dst, float a, float b) { *reinterpret_cast<uint32_t*>(dst) = Elem<T>::pack(a, b); }
__device__ inline void store_pair(float* dst, float a, float b) { *reinterpret_cast<float2*>(dst) = make_float2(a, b); }

// ---- forward ----------------------------------------------------------------------------------

constexpr int kFwdRows = 128, kFwdThreads = 128;

// The end of a forward block (every product is done with Qs, every copy has landed): each warp's 32
// output rows normalised by their row sums (reduced over the quad), staged in its own rows of Qs,
// then written with 16-byte stores; lse = m scale + log l, -inf for a row that saw no key.
template <class T, int D, int LD, int MT, int DT>
__device__ inline void store_output(T* Qs, const float (&o)[MT][DT][4], const float (&mrow)[MT][2], const float (&lrow)[MT][2],
                                    const Params& p, int64_t bh, int64_t wrow0, T* out, float* lse, int warp, int lane) {
  constexpr int V = 16 / sizeof(T);  // elements per 16 bytes
  const int g = lane >> 2, t4 = lane & 3;
  T* stage = Qs + warp * 32 * LD;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float l = lrow[mt][h];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const float inv = l > 0.f ? 1.f / l : 0.f;
      const int r = mt * 16 + g + h * 8;
#pragma unroll
      for (int dt = 0; dt < DT; ++dt) store_pair(stage + r * LD + dt * 8 + t4 * 2, o[mt][dt][2 * h] * inv, o[mt][dt][2 * h + 1] * inv);
      const int64_t i = wrow0 + r;
      if (t4 == 0 && i < p.Tq) lse[bh * p.Tq + i] = l > 0.f ? mrow[mt][h] * p.scale + logf(l) : -INFINITY;
    }
  __syncwarp();
  T* Oh = out + bh * p.Tq * D;
#pragma unroll
  for (int c = lane; c < 32 * (D / V); c += 32) {
    const int r = c / (D / V), cc = c % (D / V);
    const int64_t i = wrow0 + r;
    if (i < p.Tq) *reinterpret_cast<uint4*>(Oh + i * D + cc * V) = *reinterpret_cast<const uint4*>(stage + r * LD + cc * V);
  }
}

template <class T, int D, int Bc>
constexpr size_t forward_smem() {
  return size_t(kFwdRows + 2 * Bc) * (D + 8) * sizeof(T);
}

template <class T, int D, int Bc, bool kCausal, bool kDrop>
__global__ void __launch_bounds__(kFwdThreads, 2)
    forward_kernel(Params p, const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                   T* __restrict__ out, float* __restrict__ lse) {
  constexpr int Br = kFwdRows, MT = 2, LD = D + 8, NT = Bc / 8, DT = D / 8, KD = D / 16, KC = Bc / 16;
  static_assert(Br == 4 * 32, "4 warps of 32 rows");
  static_assert(D % 32 == 0 && Bc % 16 == 0, "tile shape");
  using E = Elem<T>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* Qs = reinterpret_cast<T*>(smem_raw);
  T* Ks = Qs + Br * LD;
  T* Vs = Ks + Bc * LD;

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
  const FwdBlock fb = forward_block<kCausal, Br, Bc>(p);
  const int64_t bh = fb.bh, i0 = fb.i0, off = fb.off, kend = fb.kend, nkb = fb.nkb;
  const T* Qh = q + bh * p.Tq * D;
  const T* Kh = k + bh * p.Tk * D;
  const T* Vh = v + bh * p.Tk * D;

  load_rows_async<T, D, Br, kFwdThreads>(Qs, Qh, i0, p.Tq);
  if (nkb > 0) load_rows_async<T, D, Bc, kFwdThreads>(Ks, Kh, 0, kend);
  cp_async_commit();

  const int64_t wrow0 = i0 + warp * 32;  // this warp's first query row
  float o[MT][DT][4];
  float mrow[MT][2], lrow[MT][2];
  forward_init(o, mrow, lrow);
  // Per-lane ldmatrix row addresses (see the layout note at the top).
  const uint32_t qAddr = smem_u32(Qs + (warp * 32 + (lane & 15)) * LD + (lane >> 4) * 8);
  const uint32_t kAddr = smem_u32(Ks + ((lane & 7) + ((lane >> 4) << 3)) * LD + ((lane >> 3) & 1) * 8);
  const uint32_t vAddr = smem_u32(Vs + ((lane & 7) + (((lane >> 3) & 1) << 3)) * LD + (lane >> 4) * 8);

  for (int64_t jb = 0; jb < nkb; ++jb) {
    const int64_t j0 = jb * Bc;
    cp_async_wait_all();  // K(j) (and Q) landed; everyone is done with V(j-1)
    __syncthreads();
    load_rows_async<T, D, Bc, kFwdThreads>(Vs, Vh, j0, kend);
    cp_async_commit();
    // A warp past the last row, or (causal) whose last row sees none of these keys, skips the
    // products (not the barriers).
    const bool active = wrow0 < p.Tq && (!kCausal || j0 <= wrow0 + 31 + off);
    float s[MT][NT][4];
    if (active) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) s[mt][nt][e] = 0.f;
#pragma unroll
      for (int kk = 0; kk < KD; ++kk) {
        uint32_t a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) ldsm_x4(a[mt], qAddr + (mt * 16 * LD + kk * 16) * sizeof(T));
#pragma unroll
        for (int np = 0; np < NT / 2; ++np) {
          uint32_t bf[4];
          ldsm_x4(bf, kAddr + (np * 16 * LD + kk * 16) * sizeof(T));
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            E::mma(s[mt][2 * np], a[mt], bf[0], bf[1]);
            E::mma(s[mt][2 * np + 1], a[mt], bf[2], bf[3]);
          }
        }
      }
      const bool needMask = j0 + Bc > kend || (kCausal && j0 + Bc - 1 > wrow0 + off);
      if (needMask) mask_scores<kCausal>(s, kend, j0, wrow0, off, g, t4);
      online_softmax<kDrop>(p, s, o, mrow, lrow, bh, wrow0, j0, g, t4);
    }
    cp_async_wait_all();  // V(j) landed; everyone is done with K(j)
    __syncthreads();
    if (jb + 1 < nkb) {
      load_rows_async<T, D, Bc, kFwdThreads>(Ks, Kh, j0 + Bc, kend);
      cp_async_commit();
    }
    if (active) {
#pragma unroll
      for (int kc = 0; kc < KC; ++kc) {
        uint32_t a[MT][4];  // P as the A operand: the accumulators of n-tiles 2kc and 2kc+1
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          a[mt][0] = E::pack(s[mt][2 * kc][0], s[mt][2 * kc][1]);
          a[mt][1] = E::pack(s[mt][2 * kc][2], s[mt][2 * kc][3]);
          a[mt][2] = E::pack(s[mt][2 * kc + 1][0], s[mt][2 * kc + 1][1]);
          a[mt][3] = E::pack(s[mt][2 * kc + 1][2], s[mt][2 * kc + 1][3]);
        }
#pragma unroll
        for (int dp = 0; dp < D / 16; ++dp) {
          uint32_t bf[4];
          ldsm_x4_t(bf, vAddr + (kc * 16 * LD + dp * 16) * sizeof(T));
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            E::mma(o[mt][2 * dp], a[mt], bf[0], bf[1]);
            E::mma(o[mt][2 * dp + 1], a[mt], bf[2], bf[3]);
          }
        }
      }
    }
  }
  cp_async_wait_all();
  __syncthreads();  // every copy into Qs has landed (also when there was no key tile)
  store_output<T, D, LD>(Qs, o, mrow, lrow, p, bh, wrow0, out, lse, warp, lane);
}

// ---- backward ---------------------------------------------------------------------------------

constexpr int kBwdKeys = 128, kBwdThreads = 256;

// A backward block's shared memory (rows padded by 16 bytes, which spreads ldmatrix's rows over the
// banks): K and V (its keys), two buffers of Q and dO rows, dS^T (keys by queries), two buffers of lse
// and D_i. Also the rows of its (batch, head) that it reads, and the loads that start it.
template <class T, int D, int Br>
struct BwdTiles {
  static constexpr int Bc = kBwdKeys, LD = D + 16 / sizeof(T), LDS = Br + 16 / sizeof(T);
  static constexpr size_t bytes() {
    return (size_t(2 * Bc) * LD + size_t(4 * Br) * LD + size_t(Bc) * LDS) * sizeof(T) + size_t(4 * Br) * sizeof(float);
  }
  T *Ks, *Vs, *Qs, *dOs, *dSs;  // Qs, dOs: [2][Br][LD]; dSs: [Bc][LDS]
  float *lses, *Dis;            // [2][Br]
  const T *Qh, *dOh;
  const float *lseh, *Dih;

  __device__ BwdTiles(unsigned char* raw, const Params& p, int64_t bh, const T* q, const T* dout, const float* lse,
                      const float* Di)
      : Ks(reinterpret_cast<T*>(raw)), Vs(Ks + Bc * LD), Qs(Vs + Bc * LD), dOs(Qs + 2 * Br * LD), dSs(dOs + 2 * Br * LD),
        lses(reinterpret_cast<float*>(dSs + Bc * LDS)), Dis(lses + 2 * Br), Qh(q + bh * p.Tq * D), dOh(dout + bh * p.Tq * D),
        lseh(lse + bh * p.Tq), Dih(Di + bh * p.Tq) {}

  // Query block i0's Q and dO rows, lse and D_i into buffer buf (cp.async; the caller commits).
  __device__ void load_query(int buf, int64_t i0, int64_t Tq) const {
    load_rows_async<T, D, Br, kBwdThreads>(Qs + buf * Br * LD, Qh, i0, Tq);
    load_rows_async<T, D, Br, kBwdThreads>(dOs + buf * Br * LD, dOh, i0, Tq);
    const int r = threadIdx.x;
    if (r < Br) {
      const bool ok = i0 + r < Tq;
      cp_async4(lses + buf * Br + r, ok ? lseh + i0 + r : lseh, ok);
    } else if (r < 2 * Br) {
      const bool ok = i0 + r - Br < Tq;
      cp_async4(Dis + buf * Br + r - Br, ok ? Dih + i0 + r - Br : Dih, ok);
    }
  }
  // The block's K and V rows and its first query block, as one commit group.
  __device__ void start(const Params& p, const BwdBlock& kb, const T* k, const T* v) const {
    load_rows_async<T, D, Bc, kBwdThreads>(Ks, k + kb.bh * p.Tk * D, kb.j0, kb.kend);
    load_rows_async<T, D, Bc, kBwdThreads>(Vs, v + kb.bh * p.Tk * D, kb.j0, kb.kend);
    if (kb.nIter > 0) load_query(0, kb.iStart, p.Tq);
    cp_async_commit();
  }
};

template <int N>
__device__ inline void zero_tiles(float (&a)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) a[i][e] = 0.f;
}

// The end of a backward block: each warp's dK (times kScale) and dV rows (16 keys from key0) staged
// in its own rows of Ks / Vs (every product is done with them), then written with 16-byte stores.
template <class T, int D, int LD, int DT>
__device__ inline void store_key_grads(T* Ks, T* Vs, const float (&dka)[DT][4], const float (&dva)[DT][4], float kScale, T* dKh,
                                       T* dVh, int64_t key0, int64_t Tk, int warp, int lane) {
  constexpr int V = 16 / sizeof(T);  // elements per 16 bytes
  const int g = lane >> 2, t4 = lane & 3;
#pragma unroll
  for (int dt = 0; dt < DT; ++dt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = warp * 16 + g + h * 8, c = dt * 8 + t4 * 2;
      store_pair(Ks + r * LD + c, dka[dt][2 * h] * kScale, dka[dt][2 * h + 1] * kScale);
      store_pair(Vs + r * LD + c, dva[dt][2 * h], dva[dt][2 * h + 1]);
    }
  __syncwarp();
#pragma unroll
  for (int c = lane; c < 16 * (D / V); c += 32) {
    const int r = c / (D / V), cc = c % (D / V);
    const int64_t j = key0 + r;
    if (j < Tk) {
      const int sr = (warp * 16 + r) * LD + cc * V;
      *reinterpret_cast<uint4*>(dKh + j * D + cc * V) = *reinterpret_cast<const uint4*>(Ks + sr);
      *reinterpret_cast<uint4*>(dVh + j * D + cc * V) = *reinterpret_cast<const uint4*>(Vs + sr);
    }
  }
}

// D_i = rowsum(dO o O) in float; 8 threads per row, 16-byte loads.
template <class T, int D>
__global__ void prep_kernel(int64_t rows, const T* __restrict__ out, const T* __restrict__ dout, float* __restrict__ Di) {
  using E = Elem<T>;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t row = tid >> 3;
  const int sub = static_cast<int>(tid & 7);
  float s = 0.f;
  if constexpr (std::is_same_v<T, float>) {
    if (row < rows) {
#pragma unroll
      for (int c = sub; c < D / 4; c += 8) {
        const float4 a = *reinterpret_cast<const float4*>(out + row * D + c * 4);
        const float4 d = *reinterpret_cast<const float4*>(dout + row * D + c * 4);
        s = fmaf(a.x, d.x, fmaf(a.y, d.y, fmaf(a.z, d.z, fmaf(a.w, d.w, s))));
      }
    }
  } else if (row < rows) {
#pragma unroll
    for (int c = sub; c < D / 8; c += 8) {
      const uint4 a = *reinterpret_cast<const uint4*>(out + row * D + c * 8);
      const uint4 d = *reinterpret_cast<const uint4*>(dout + row * D + c * 8);
      const uint32_t av[4] = {a.x, a.y, a.z, a.w}, dv[4] = {d.x, d.y, d.z, d.w};
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const float2 x = E::unpack(av[u]), y = E::unpack(dv[u]);
        s = fmaf(x.x, y.x, fmaf(x.y, y.y, s));
      }
    }
  }
  s += __shfl_xor_sync(0xffffffffu, s, 1);
  s += __shfl_xor_sync(0xffffffffu, s, 2);
  s += __shfl_xor_sync(0xffffffffu, s, 4);
  if (row < rows && sub == 0) Di[row] = s;
}

// dq = scale * acc in T, 8 elements per step.
template <class T>
__global__ void dq_convert_kernel(int64_t n8, const float* __restrict__ acc, T* __restrict__ dq, float scale) {
  using E = Elem<T>;
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < n8;
       c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float4 x = *reinterpret_cast<const float4*>(acc + c * 8);
    const float4 y = *reinterpret_cast<const float4*>(acc + c * 8 + 4);
    uint4 o;
    o.x = E::pack(x.x * scale, x.y * scale);
    o.y = E::pack(x.z * scale, x.w * scale);
    o.z = E::pack(y.x * scale, y.y * scale);
    o.w = E::pack(y.z * scale, y.w * scale);
    *reinterpret_cast<uint4*>(dq + c * 8) = o;
  }
}

// Adds a 16x8 accumulator tile (rows r0 + g, r0 + g + 8; cols c0 + 2t..) into a float [*, D] matrix,
// skipping rows at or past `rows`.
template <int D>
__device__ inline void atomic_add_tile(float* base, const float (&c)[4], int64_t r0, int c0, int64_t rows, int lane) {
  const int g = lane >> 2, t4 = lane & 3;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  // Pair lanes (t, t^1) so each issues one 16-byte atomic: even t takes row g, odd t row g + 8.
  const bool odd = t4 & 1;
  const float s0 = odd ? c[0] : c[2], s1 = odd ? c[1] : c[3];
  const float r0v = __shfl_xor_sync(0xffffffffu, s0, 1), r1v = __shfl_xor_sync(0xffffffffu, s1, 1);
  const int64_t row = r0 + g + (odd ? 8 : 0);
  const int col = c0 + (t4 & 2) * 2;
  const float4 val = odd ? make_float4(r0v, r1v, c[2], c[3]) : make_float4(c[0], c[1], r0v, r1v);
  if (row < rows) atomicAdd(reinterpret_cast<float4*>(base + row * D + col), val);
#else
  const int col = c0 + t4 * 2;
  if (r0 + g < rows) {
    atomicAdd(base + (r0 + g) * D + col, c[0]);
    atomicAdd(base + (r0 + g) * D + col + 1, c[1]);
  }
  if (r0 + g + 8 < rows) {
    atomicAdd(base + (r0 + g + 8) * D + col, c[2]);
    atomicAdd(base + (r0 + g + 8) * D + col + 1, c[3]);
  }
#endif
}

template <class T, int D, int Br, bool kCausal, bool kDrop>
__global__ void __launch_bounds__(kBwdThreads, 1)
    backward_kernel(Params p, const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                    const T* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ Di,
                    float* __restrict__ dqAcc, T* __restrict__ dk, T* __restrict__ dv) {
  using Tiles = BwdTiles<T, D, Br>;
  constexpr int Bc = Tiles::Bc, LD = Tiles::LD, LDS = Tiles::LDS, NQ = Br / 8, DT = D / 8, KD = D / 16, KQ = Br / 16;
  constexpr int WM = Br / 16, WN = 8 / WM, DW = D / WN, NDW = DW / 8;  // dQ = dS K: warps as WM x WN
  static_assert(Bc == 8 * 16, "8 warps of 16 keys");
  static_assert((Br == 64 || Br == 128) && D % 32 == 0 && NDW % 2 == 0, "tile shape");
  using E = Elem<T>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
  const BwdBlock kb = backward_block<kCausal, Br, Bc>(p);
  const int64_t bh = kb.bh, j0 = kb.j0, off = kb.off, kend = kb.kend, iStart = kb.iStart;
  const int nIter = kb.nIter;
  const Tiles tiles(smem_raw, p, bh, q, dout, lse, Di);
  T *Ks = tiles.Ks, *Vs = tiles.Vs, *Qs = tiles.Qs, *dOs = tiles.dOs, *dSs = tiles.dSs;
  const float *lses = tiles.lses, *Dis = tiles.Dis;
  float* dqh = dqAcc + bh * p.Tq * D;
  tiles.start(p, kb, k, v);

  float dka[DT][4], dva[DT][4];
  zero_tiles(dka);
  zero_tiles(dva);
  const int64_t key0 = j0 + warp * 16;  // this warp's first key
  // Per-lane ldmatrix row addresses. A operands (K, V rows of this warp), B operands non-transposed
  // (Q, dO rows as the n index) and transposed (Q, dO, K rows as the k index), dS^T transposed as A.
  const uint32_t kA = smem_u32(Ks + (warp * 16 + (lane & 15)) * LD + (lane >> 4) * 8);
  const uint32_t vA = smem_u32(Vs + (warp * 16 + (lane & 15)) * LD + (lane >> 4) * 8);
  const int rowN = (lane & 7) + ((lane >> 4) << 3), colN = ((lane >> 3) & 1) * 8;  // non-transposed B
  const int rowT = (lane & 7) + (((lane >> 3) & 1) << 3), colT = (lane >> 4) * 8;  // transposed B
  const uint32_t qB = smem_u32(Qs + rowN * LD + colN), doB = smem_u32(dOs + rowN * LD + colN);
  const uint32_t qBt = smem_u32(Qs + rowT * LD + colT), doBt = smem_u32(dOs + rowT * LD + colT);
  const uint32_t kBt = smem_u32(Ks + rowT * LD + colT);
  const int m0 = (warp % WM) * 16, n0 = (warp / WM) * DW;  // this warp's dQ tile
  const uint32_t dsA = smem_u32(dSs + rowN * LDS + colN + m0);
  constexpr uint32_t kBufBytes = Br * LD * sizeof(T);

  for (int it = 0; it < nIter; ++it) {
    const int buf = it & 1;
    const int64_t i0 = iStart + static_cast<int64_t>(it) * Br;
    cp_async_wait_all();  // this block's Q, dO, lse, D_i landed; everyone is done with the other buffer and dS
    __syncthreads();
    if (it + 1 < nIter) {
      tiles.load_query(buf ^ 1, i0 + Br, p.Tq);
      cp_async_commit();
    }
    const float* lseb = lses + buf * Br;
    const float* Dib = Dis + buf * Br;
    // S^T = K Q^T (16 keys x Br queries per warp), then P^T in place.
    float st[NQ][4];
#pragma unroll
    for (int nt = 0; nt < NQ; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) st[nt][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KD; ++kk) {
      uint32_t a[4];
      ldsm_x4(a, kA + kk * 16 * sizeof(T));
#pragma unroll
      for (int np = 0; np < NQ / 2; ++np) {
        uint32_t bf[4];
        ldsm_x4(bf, qB + buf * kBufBytes + (np * 16 * LD + kk * 16) * sizeof(T));
        E::mma(st[2 * np], a, bf[0], bf[1]);
        E::mma(st[2 * np + 1], a, bf[2], bf[3]);
      }
    }
    probs_from_scores<kCausal, Br>(p, st, lseb, i0, key0, kend, off, g, t4);
    // Dropout: bit nt * 4 + e of `kept` is element (query i0 + c, key key0 + r)'s mask; st keeps the
    // undropped P (dS needs it), P o Z goes into dV.
    uint64_t kept = 0;
    if constexpr (kDrop) {
#pragma unroll
      for (int nt = 0; nt < NQ; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int c = nt * 8 + t4 * 2 + (e & 1), r = g + (e >> 1) * 8;
          const uint64_t w = p.offset + static_cast<uint64_t>((bh * p.Tq + i0 + c) * p.Tk + key0 + r);
          if (philox::dropout_keeps(philox::stream_word(p.seed, w), p.dropThreshold)) kept |= uint64_t(1) << (nt * 4 + e);
        }
    }
    // dP^T = V dO^T, then dS^T = P^T o (dP^T - D_i) in place (the scale is applied to dK, dQ at the end).
    float dpt[NQ][4];
#pragma unroll
    for (int nt = 0; nt < NQ; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) dpt[nt][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KD; ++kk) {
      uint32_t a[4];
      ldsm_x4(a, vA + kk * 16 * sizeof(T));
#pragma unroll
      for (int np = 0; np < NQ / 2; ++np) {
        uint32_t bf[4];
        ldsm_x4(bf, doB + buf * kBufBytes + (np * 16 * LD + kk * 16) * sizeof(T));
        E::mma(dpt[2 * np], a, bf[0], bf[1]);
        E::mma(dpt[2 * np + 1], a, bf[2], bf[3]);
      }
    }
    // With dropout, dS = P o (dP o Z - D_i) and dV takes P o Z (Z = kept / (1 - p)).
#pragma unroll
    for (int nt = 0; nt < NQ; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        if constexpr (kDrop) {
          const float z = (kept >> (nt * 4 + e)) & 1 ? p.keepScale : 0.f;
          dpt[nt][e] = st[nt][e] * (dpt[nt][e] * z - Dib[nt * 8 + t4 * 2 + (e & 1)]);
          st[nt][e] *= z;
        } else {
          dpt[nt][e] = st[nt][e] * (dpt[nt][e] - Dib[nt * 8 + t4 * 2 + (e & 1)]);
        }
      }
    // P^T and dS^T as A fragments (keys x queries, k = 16 queries per step).
    uint32_t pa[KQ][4], da[KQ][4];
#pragma unroll
    for (int kc = 0; kc < KQ; ++kc) {
      pa[kc][0] = E::pack(st[2 * kc][0], st[2 * kc][1]);
      pa[kc][1] = E::pack(st[2 * kc][2], st[2 * kc][3]);
      pa[kc][2] = E::pack(st[2 * kc + 1][0], st[2 * kc + 1][1]);
      pa[kc][3] = E::pack(st[2 * kc + 1][2], st[2 * kc + 1][3]);
      da[kc][0] = E::pack(dpt[2 * kc][0], dpt[2 * kc][1]);
      da[kc][1] = E::pack(dpt[2 * kc][2], dpt[2 * kc][3]);
      da[kc][2] = E::pack(dpt[2 * kc + 1][0], dpt[2 * kc + 1][1]);
      da[kc][3] = E::pack(dpt[2 * kc + 1][2], dpt[2 * kc + 1][3]);
    }
    // dV += P^T dO, dK += dS^T Q.
#pragma unroll
    for (int kc = 0; kc < KQ; ++kc)
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t bf[4];
        ldsm_x4_t(bf, doBt + buf * kBufBytes + (kc * 16 * LD + dp * 16) * sizeof(T));
        E::mma(dva[2 * dp], pa[kc], bf[0], bf[1]);
        E::mma(dva[2 * dp + 1], pa[kc], bf[2], bf[3]);
        ldsm_x4_t(bf, qBt + buf * kBufBytes + (kc * 16 * LD + dp * 16) * sizeof(T));
        E::mma(dka[2 * dp], da[kc], bf[0], bf[1]);
        E::mma(dka[2 * dp + 1], da[kc], bf[2], bf[3]);
      }
    // dS^T rows of this warp to shared memory for dQ.
#pragma unroll
    for (int kc = 0; kc < KQ; ++kc)
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const int r = warp * 16 + g + (u & 1) * 8, c = (2 * kc + (u >> 1)) * 8 + t4 * 2;
        *reinterpret_cast<uint32_t*>(dSs + r * LDS + c) = da[kc][u];
      }
    __syncthreads();
    // dQ(rows m0.., cols n0..) += dS K over this block's 128 keys, into the float buffer.
    float dqa[NDW][4];
#pragma unroll
    for (int nt = 0; nt < NDW; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) dqa[nt][e] = 0.f;
#pragma unroll
    for (int kc = 0; kc < Bc / 16; ++kc) {
      uint32_t a[4];
      ldsm_x4_t(a, dsA + kc * 16 * LDS * sizeof(T));
#pragma unroll
      for (int dp = 0; dp < NDW / 2; ++dp) {
        uint32_t bf[4];
        ldsm_x4_t(bf, kBt + (kc * 16 * LD + n0 + dp * 16) * sizeof(T));
        E::mma(dqa[2 * dp], a, bf[0], bf[1]);
        E::mma(dqa[2 * dp + 1], a, bf[2], bf[3]);
      }
    }
#pragma unroll
    for (int nt = 0; nt < NDW; ++nt) atomic_add_tile<D>(dqh, dqa[nt], i0 + m0, n0 + nt * 8, p.Tq, lane);
  }
  cp_async_wait_all();
  __syncthreads();  // all products are done with Ks/Vs (and every copy has landed)

  store_key_grads<T, D, LD>(Ks, Vs, dka, dva, p.scale, dk + bh * p.Tk * D, dv + bh * p.Tk * D, key0, p.Tk, warp, lane);
}

// ---- float32: 3xTF32 on mma.sync m16n8k8 -------------------------------------------------------
// The same two kernels for float32 (opt-in, see fa2_attention_supports): every product is 3xTF32,
// x = hi + lo with hi = x rounded to TF32 and lo = the rounded remainder, and A B = lo_A hi_B +
// hi_A lo_B + hi_A hi_B (lo lo is below float32 rounding), as kernels/cuda/gemm.cu's float32
// matmul: float32-level accuracy, like the basic kernels' 3xTF32 WMMA and PyTorch's float32 SDPA.
// Fragment layouts (PTX ISA, mma.m16n8k8 .tf32; g = lane / 4, t = lane % 4):
//   A 16x8: a0 = (g, t), a1 = (g+8, t), a2 = (g, t+4), a3 = (g+8, t+4);  B 8x8: b0 = (k t, n g), b1 = (k t+4, n g)
//   C 16x8 as m16n8k16's.
// ldmatrix on 32-bit data: each 8x8 b16 matrix is 8 rows of 4 floats and register i of lane l holds
// matrix i's (row l/4, float l%4), so a tile whose k index runs along its rows' floats (Q and K in
// S = Q K^T, K and V in the backward's S^T and dP^T) loads as with the half types, at half the
// columns per matrix. Where k runs down a tile's rows (V in P V, dO and Q in dV and dK, K in dQ),
// each k step's 8 slots are permuted: slot t is row 2t, slot t + 4 is row 2t + 1, so B's b0 / b1 are
// single 32-bit loads (b_rows) in banks (2t LD + g) mod 32 = 8t + g, all different (LD = 4 mod 32).
// The A operands that come from accumulators (P; P^T and dS^T in the backward) take the same
// permutation on their way through shared memory (ps_store), where accumulator columns 2t, 2t + 1
// land at t, t + 4 and ldmatrix reads them back as A. Float tiles are row-major with rows padded by
// 4 floats (16 bytes), which also spreads ldmatrix's rows over the banks.

// A float from shared memory, kept in program order with the other shared-memory loads (ldmatrix):
// left free, the compiler hoists a whole tile's operand loads and runs out of registers.
#ifdef KILN_HOST_MODEL
__device__ inline float lds_f32(const float* p) { return *p; }
#else
__device__ inline float lds_f32(const float* p) {
  float x;
  asm volatile("ld.shared.f32 %0, [%1];\n" : "=f"(x) : "r"(smem_u32(p)));
  return x;
}
#endif

// x = hi + lo, both TF32 (lo is 0 when x is not finite).
__device__ inline void split_tf32(float x, uint32_t& hi, uint32_t& lo) {
  hi = to_tf32(x);
  const float h = __uint_as_float(hi);
  lo = isfinite(h) ? to_tf32(x - h) : 0u;
}

// A 3xTF32 operand: four A registers or two B registers, each as hi and lo.
template <int N>
struct Split {
  uint32_t h[N], l[N];
  __device__ void set(int i, float x) { split_tf32(x, h[i], l[i]); }
};

// c += A B in 3xTF32, the small cross terms first. b0 / b1: B registers j0 / j1 of `b` (so one
// ldmatrix x4 of two n-tiles' B feeds two calls).
template <int NB>
__device__ inline void mma3(float (&c)[4], const Split<4>& a, const Split<NB>& b, int j0, int j1) {
  mma_tf32(c, a.l, b.h[j0], b.h[j1]);
  mma_tf32(c, a.h, b.l[j0], b.l[j1]);
  mma_tf32(c, a.h, b.h[j0], b.h[j1]);
}

// Stores accumulator tile c (rows g, g + 8; columns 2t, 2t + 1) into a shared tile at p = row g,
// column t of the tile, with the permuted slots: column 2t at t, 2t + 1 at t + 4, so ldmatrix reads it
// back as the A operand of one k step (registers (g, t) and (g, t + 4) = columns 2t and 2t + 1),
// matching B's rows 2t, 2t + 1. The A operands go through shared memory rather than straight from
// the accumulators because a k loop over registers must be unrolled, and unrolled, the compiler
// hoists every k step's B loads and splits and runs out of registers. With LDP = 4 (mod 8) the 32
// lanes of each store hit 32 different banks.
template <int LDP>
__device__ inline void ps_store(float* p, const float (&c)[4]) {
  p[0] = c[0];
  p[4] = c[1];
  p[8 * LDP] = c[2];
  p[8 * LDP + 4] = c[3];
}

// An A operand (16 rows x 8 k) or two n-tiles' B operands (16 n x 8 k) by one ldmatrix x4.
__device__ inline Split<4> ldsm_split(uint32_t addr) {
  uint32_t r[4];
  ldsm_x4(r, addr);
  Split<4> x;
#pragma unroll
  for (int i = 0; i < 4; ++i) x.set(i, __uint_as_float(r[i]));
  return x;
}

// B for one k step and n-tile from a tile whose k index runs down its rows: p points at row 2t of the
// k step, column g of the n-tile.
template <int LD>
__device__ inline Split<2> b_rows(const float* p) {
  Split<2> b;
  b.set(0, lds_f32(p));
  b.set(1, lds_f32(p + LD));
  return b;
}

constexpr int kF32Pad = 4;

template <int D, int Bc>
constexpr size_t forward_smem_f32() {
  return (size_t(kFwdRows + 2 * Bc) * (D + kF32Pad) + size_t(kFwdRows) * (Bc + kF32Pad)) * sizeof(float);
}

template <int D, int Bc, bool kCausal>
__global__ void __launch_bounds__(kFwdThreads, 2)
    forward_f32_kernel(Params p, const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                       float* __restrict__ out, float* __restrict__ lse) {
  constexpr int Br = kFwdRows, MT = 2, LD = D + kF32Pad, LDP = Bc + kF32Pad, NT = Bc / 8, DT = D / 8, KD = D / 8,
                KC = Bc / 8;
  static_assert(Br == 4 * 32, "4 warps of 32 rows");
  static_assert(D % 32 == 0 && Bc % 16 == 0 && LD % 32 == 4 && LDP % 8 == 4, "tile shape");
  extern __shared__ __align__(16) unsigned char smem_raw[];
  float* Qs = reinterpret_cast<float*>(smem_raw);
  float* Ks = Qs + Br * LD;
  float* Vs = Ks + Bc * LD;
  float* Ps = Vs + Bc * LD;  // [Br][LDP]: each warp's P, key slots permuted (see ps_store)

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
  const FwdBlock fb = forward_block<kCausal, Br, Bc>(p);
  const int64_t bh = fb.bh, i0 = fb.i0, off = fb.off, kend = fb.kend, nkb = fb.nkb;
  const float* Qh = q + bh * p.Tq * D;
  const float* Kh = k + bh * p.Tk * D;
  const float* Vh = v + bh * p.Tk * D;

  load_rows_async<float, D, Br, kFwdThreads>(Qs, Qh, i0, p.Tq);
  if (nkb > 0) load_rows_async<float, D, Bc, kFwdThreads>(Ks, Kh, 0, kend);
  cp_async_commit();

  const int64_t wrow0 = i0 + warp * 32;  // this warp's first query row
  float o[MT][DT][4];
  float mrow[MT][2], lrow[MT][2];
  forward_init(o, mrow, lrow);
  // ldmatrix row addresses: Q as A (matrices: rows 0-7 / 8-15 x floats 0-3, then x floats 4-7), K as
  // two n-tiles' B (keys 0-7 x floats 0-3 / 4-7, then keys 8-15).
  const uint32_t qAddr = smem_u32(Qs + (warp * 32 + (lane & 15)) * LD + (lane >> 4) * 4);
  const uint32_t kAddr = smem_u32(Ks + ((lane & 7) + ((lane >> 4) << 3)) * LD + ((lane >> 3) & 1) * 4);
  const float* vRow = Vs + 2 * t4 * LD + g;  // V as B of P V: row 2t of a k step, column g of an n-tile
  float* pRow = Ps + (warp * 32 + g) * LDP + t4;  // this lane's P stores
  const uint32_t pAddr = smem_u32(Ps + (warp * 32 + (lane & 15)) * LDP + (lane >> 4) * 4);  // P as A

  for (int64_t jb = 0; jb < nkb; ++jb) {
    const int64_t j0 = jb * Bc;
    cp_async_wait_all();  // K(j) (and Q) landed; everyone is done with V(j-1)
    __syncthreads();
    load_rows_async<float, D, Bc, kFwdThreads>(Vs, Vh, j0, kend);
    cp_async_commit();
    const bool active = wrow0 < p.Tq && (!kCausal || j0 <= wrow0 + 31 + off);
    float s[MT][NT][4];
    if (active) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) s[mt][nt][e] = 0.f;
#pragma unroll 1
      for (int kk = 0; kk < KD; ++kk) {
        Split<4> a[MT];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) a[mt] = ldsm_split(qAddr + (mt * 16 * LD + kk * 8) * 4);
#pragma unroll
        for (int np = 0; np < NT / 2; ++np) {
          const Split<4> bf = ldsm_split(kAddr + (np * 16 * LD + kk * 8) * 4);
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            mma3(s[mt][2 * np], a[mt], bf, 0, 1);
            mma3(s[mt][2 * np + 1], a[mt], bf, 2, 3);
          }
        }
      }
      const bool needMask = j0 + Bc > kend || (kCausal && j0 + Bc - 1 > wrow0 + off);
      if (needMask) mask_scores<kCausal>(s, kend, j0, wrow0, off, g, t4);
      online_softmax<false>(p, s, o, mrow, lrow, bh, wrow0, j0, g, t4);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) ps_store<LDP>(pRow + mt * 16 * LDP + nt * 8, s[mt][nt]);
      __syncwarp();
    }
    cp_async_wait_all();  // V(j) landed; everyone is done with K(j)
    __syncthreads();
    if (jb + 1 < nkb) {
      load_rows_async<float, D, Bc, kFwdThreads>(Ks, Kh, j0 + Bc, kend);
      cp_async_commit();
    }
    if (active) {
#pragma unroll 1
      for (int kc = 0; kc < KC; ++kc) {  // keys 8kc.. as one k step
        Split<4> a[MT];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) a[mt] = ldsm_split(pAddr + (mt * 16 * LDP + kc * 8) * 4);
#pragma unroll
        for (int dt = 0; dt < DT; ++dt) {
          const Split<2> bv = b_rows<LD>(vRow + kc * 8 * LD + dt * 8);
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) mma3(o[mt][dt], a[mt], bv, 0, 1);
        }
      }
    }
  }
  cp_async_wait_all();
  __syncthreads();  // every copy into Qs has landed (also when there was no key tile)

  store_output<float, D, LD>(Qs, o, mrow, lrow, p, bh, wrow0, out, lse, warp, lane);
}

// The float32 backward: the half types' kernel with 3xTF32 products, and dQ added straight into the
// (zeroed) float32 dq, already scaled (dS is scaled on its way to shared memory), so no accumulator
// and no conversion pass.
template <int D, int Br, bool kCausal>
__global__ void __launch_bounds__(kBwdThreads, 1)
    backward_f32_kernel(Params p, const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                        const float* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ Di,
                        float* __restrict__ dq, float* __restrict__ dk, float* __restrict__ dv) {
  using Tiles = BwdTiles<float, D, Br>;  // dSs: P^T, then scale dS^T, keys by (permuted) queries
  constexpr int Bc = Tiles::Bc, LD = Tiles::LD, LDS = Tiles::LDS, NQ = Br / 8, DT = D / 8, KD = D / 8, KQ = Br / 8;
  constexpr int WM = Br / 16, WN = 8 / WM, DW = D / WN, NDW = DW / 8;  // dQ = dS K: warps as WM x WN
  static_assert(Bc == 8 * 16, "8 warps of 16 keys");
  static_assert((Br == 32 || Br == 64 || Br == 128) && D % 32 == 0 && DW % 8 == 0 && LD % 32 == 4 && LDS % 32 == 4,
                "tile shape");
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
  const BwdBlock kb = backward_block<kCausal, Br, Bc>(p);
  const int64_t bh = kb.bh, j0 = kb.j0, off = kb.off, kend = kb.kend, iStart = kb.iStart;
  const int nIter = kb.nIter;
  const Tiles tiles(smem_raw, p, bh, q, dout, lse, Di);
  float *Ks = tiles.Ks, *Vs = tiles.Vs, *Qs = tiles.Qs, *dOs = tiles.dOs, *dSs = tiles.dSs;
  const float *lses = tiles.lses, *Dis = tiles.Dis;
  float* dqh = dq + bh * p.Tq * D;
  tiles.start(p, kb, k, v);

  float dka[DT][4], dva[DT][4];
  zero_tiles(dka);
  zero_tiles(dva);
  const int64_t key0 = j0 + warp * 16;
  // ldmatrix row addresses: this warp's K and V rows as A; Q and dO rows as two n-tiles' B.
  const uint32_t kA = smem_u32(Ks + (warp * 16 + (lane & 15)) * LD + (lane >> 4) * 4);
  const uint32_t vA = smem_u32(Vs + (warp * 16 + (lane & 15)) * LD + (lane >> 4) * 4);
  const int rowN = (lane & 7) + ((lane >> 4) << 3), colN = ((lane >> 3) & 1) * 4;
  const uint32_t qB = smem_u32(Qs + rowN * LD + colN), doB = smem_u32(dOs + rowN * LD + colN);
  const int m0 = (warp % WM) * 16, n0 = (warp / WM) * DW;  // this warp's dQ tile
  constexpr uint32_t kBufBytes = Br * LD * sizeof(float);
  float* sRow = dSs + (warp * 16 + g) * LDS + t4;  // this lane's P^T / dS^T stores
  const uint32_t sA = smem_u32(dSs + (warp * 16 + (lane & 15)) * LDS + (lane >> 4) * 4);  // and A reads

  for (int it = 0; it < nIter; ++it) {
    const int buf = it & 1;
    const int64_t i0 = iStart + static_cast<int64_t>(it) * Br;
    cp_async_wait_all();  // this block's Q, dO, lse, D_i landed; everyone is done with the other buffer and dS
    __syncthreads();
    if (it + 1 < nIter) {
      tiles.load_query(buf ^ 1, i0 + Br, p.Tq);
      cp_async_commit();
    }
    const float* lseb = lses + buf * Br;
    const float* Dib = Dis + buf * Br;
    // S^T = K Q^T (16 keys x Br queries per warp), then P^T in place.
    float st[NQ][4];
#pragma unroll
    for (int nt = 0; nt < NQ; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) st[nt][e] = 0.f;
#pragma unroll 1
    for (int kk = 0; kk < KD; ++kk) {
      const Split<4> a = ldsm_split(kA + kk * 8 * 4);
#pragma unroll
      for (int np = 0; np < NQ / 2; ++np) {
        const Split<4> bf = ldsm_split(qB + buf * kBufBytes + (np * 16 * LD + kk * 8) * 4);
        mma3(st[2 * np], a, bf, 0, 1);
        mma3(st[2 * np + 1], a, bf, 2, 3);
      }
    }
    probs_from_scores<kCausal, Br>(p, st, lseb, i0, key0, kend, off, g, t4);
    // dP^T = V dO^T, then dS^T = P^T o (dP^T - D_i) in place.
    float dpt[NQ][4];
#pragma unroll
    for (int nt = 0; nt < NQ; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) dpt[nt][e] = 0.f;
#pragma unroll 1
    for (int kk = 0; kk < KD; ++kk) {
      const Split<4> a = ldsm_split(vA + kk * 8 * 4);
#pragma unroll
      for (int np = 0; np < NQ / 2; ++np) {
        const Split<4> bf = ldsm_split(doB + buf * kBufBytes + (np * 16 * LD + kk * 8) * 4);
        mma3(dpt[2 * np], a, bf, 0, 1);
        mma3(dpt[2 * np + 1], a, bf, 2, 3);
      }
    }
#pragma unroll
    for (int nt = 0; nt < NQ; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) dpt[nt][e] = st[nt][e] * (dpt[nt][e] - Dib[nt * 8 + t4 * 2 + (e & 1)]);
    // dV += P^T dO, then dK += (scale dS^T) Q: A (this warp's keys x k = queries) from its rows of dSs,
    // written there with the query slots permuted (ps_store), B = rows 2t, 2t + 1 of dO / Q.
    const float* dOrow = dOs + buf * Br * LD + 2 * t4 * LD + g;
    const float* qRow = Qs + buf * Br * LD + 2 * t4 * LD + g;
#pragma unroll
    for (int nt = 0; nt < NQ; ++nt) ps_store<LDS>(sRow + nt * 8, st[nt]);
    __syncwarp();
#pragma unroll 1
    for (int kc = 0; kc < KQ; ++kc) {
      const Split<4> pa = ldsm_split(sA + kc * 8 * 4);
#pragma unroll
      for (int dt = 0; dt < DT; ++dt) mma3(dva[dt], pa, b_rows<LD>(dOrow + kc * 8 * LD + dt * 8), 0, 1);
    }
    __syncwarp();  // the warp's reads of P^T are done
#pragma unroll
    for (int nt = 0; nt < NQ; ++nt) {
      const float sc[4] = {dpt[nt][0] * p.scale, dpt[nt][1] * p.scale, dpt[nt][2] * p.scale, dpt[nt][3] * p.scale};
      ps_store<LDS>(sRow + nt * 8, sc);
    }
    __syncwarp();
#pragma unroll 1
    for (int kc = 0; kc < KQ; ++kc) {
      const Split<4> da = ldsm_split(sA + kc * 8 * 4);
#pragma unroll
      for (int dt = 0; dt < DT; ++dt) mma3(dka[dt], da, b_rows<LD>(qRow + kc * 8 * LD + dt * 8), 0, 1);
    }
    __syncthreads();  // every warp's scale dS^T is in dSs
    // dq(rows m0.., cols n0..) += (scale dS) K over this block's 128 keys: A(query, key) = dSs[key][slot of
    // query] (query 2u + b of a group of 8 sits at u + 4b), B(key, d) = Ks[key][d], both with the
    // permuted key slots.
    float dqa[NDW][4];
#pragma unroll
    for (int nt = 0; nt < NDW; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) dqa[nt][e] = 0.f;
    const float* dsRow = dSs + 2 * t4 * LDS + m0 + (g >> 1) + 4 * (g & 1);
    const float* kRow = Ks + 2 * t4 * LD + n0 + g;
#pragma unroll 2
    for (int kc = 0; kc < Bc / 8; ++kc) {
      const float* d0 = dsRow + kc * 8 * LDS;
      Split<4> a;
      a.set(0, lds_f32(d0));
      a.set(1, lds_f32(d0 + 8));
      a.set(2, lds_f32(d0 + LDS));
      a.set(3, lds_f32(d0 + LDS + 8));
#pragma unroll
      for (int nt = 0; nt < NDW; ++nt) mma3(dqa[nt], a, b_rows<LD>(kRow + kc * 8 * LD + nt * 8), 0, 1);
    }
#pragma unroll
    for (int nt = 0; nt < NDW; ++nt) atomic_add_tile<D>(dqh, dqa[nt], i0 + m0, n0 + nt * 8, p.Tq, lane);
  }
  cp_async_wait_all();
  __syncthreads();  // all products are done with Ks/Vs (and every copy has landed)

  // (the scale is in dS already)
  store_key_grads<float, D, LD>(Ks, Vs, dka, dva, 1.f, dk + bh * p.Tk * D, dv + bh * p.Tk * D, key0, p.Tk, warp, lane);
}

// ---- host side --------------------------------------------------------------------------------

std::string cuda_error(cudaError_t e) { return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e); }

std::string last_error() {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? "" : cuda_error(e);
}

// Opts a kernel into `bytes` of dynamic shared memory; *readyDevice caches the device it was done for
// (one cache per kernel instantiation: kernels of one signature share a function-pointer type).
template <class K>
std::string allow_smem(K kernel, size_t bytes, int* readyDevice) {
  int dev = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e != cudaSuccess) return cuda_error(e);
  if (dev == *readyDevice) return "";
  int optin = 0;
  e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  if (e != cudaSuccess) return cuda_error(e);
  if (bytes > static_cast<size_t>(optin))
    return "attention (fa2): needs " + std::to_string(bytes) + " bytes of shared memory per block, the device has " +
           std::to_string(optin);
  e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (e != cudaSuccess) return cuda_error(e);
  *readyDevice = dev;
  return "";
}

Params make_params(const cpu::AttentionArgs& a) {
  Params p;
  p.BH = a.B * a.H;
  p.H = a.H;
  p.Tq = a.Tq;
  p.Tk = a.Tk;
  p.scale = static_cast<float>(a.scale);
  p.scaleLog2 = static_cast<float>(a.scale * 1.4426950408889634);
  p.keyLens = a.keyLens;
  p.dropout = a.dropout > 0;
  p.keepScale = a.dropout > 0 ? static_cast<float>(1.0 / (1.0 - a.dropout)) : 1.f;
  p.dropThreshold = philox::dropout_threshold(a.dropout);
  p.seed = a.seed;
  p.offset = a.offset;
  return p;
}

std::string blocks_1d(int64_t blocks, unsigned* out) {
  if (blocks <= 0 || blocks > 0x7fffffffLL) return "attention (fa2): grid of " + std::to_string(blocks) + " blocks";
  *out = static_cast<unsigned>(blocks);
  return "";
}

// Launches kKernel on `blocks` blocks of `threads` threads with `smem` bytes of dynamic shared memory
// (the opt-in done once per device for each kernel: its own readyDevice).
template <auto kKernel, class... Args>
std::string launch_kernel(size_t smem, int64_t blocks, int threads, Args... args) {
  static thread_local int readyDevice = -1;
  if (std::string err = allow_smem(kKernel, smem, &readyDevice); !err.empty()) return err;
  unsigned grid = 0;
  if (std::string err = blocks_1d(blocks, &grid); !err.empty()) return err;
  kKernel<<<grid, threads, smem>>>(args...);
  return last_error();
}

template <class T, int D, int Bc, bool kCausal, bool kDrop>
std::string launch_forward(const Params& p, const void* q, const void* k, const void* v, void* out, float* lse) {
  return launch_kernel<forward_kernel<T, D, Bc, kCausal, kDrop>>(
      forward_smem<T, D, Bc>(), p.BH * ((p.Tq + kFwdRows - 1) / kFwdRows), kFwdThreads, p, static_cast<const T*>(q),
      static_cast<const T*>(k), static_cast<const T*>(v), static_cast<T*>(out), lse);
}

template <class T, int D, int Bc>
std::string run_forward(const cpu::AttentionArgs& a, const void* q, const void* k, const void* v, void* out,
                        float* lse) {
  const Params p = make_params(a);
  if (p.dropout)
    return a.causal ? launch_forward<T, D, Bc, true, true>(p, q, k, v, out, lse)
                    : launch_forward<T, D, Bc, false, true>(p, q, k, v, out, lse);
  return a.causal ? launch_forward<T, D, Bc, true, false>(p, q, k, v, out, lse)
                  : launch_forward<T, D, Bc, false, false>(p, q, k, v, out, lse);
}

template <class T, int D, int Br, bool kCausal, bool kDrop>
std::string launch_backward(const Params& p, const void* q, const void* k, const void* v, const void* dout,
                            const float* lse, const float* Di, float* dqAcc, void* dk, void* dv) {
  return launch_kernel<backward_kernel<T, D, Br, kCausal, kDrop>>(
      BwdTiles<T, D, Br>::bytes(), p.BH * ((p.Tk + kBwdKeys - 1) / kBwdKeys), kBwdThreads, p, static_cast<const T*>(q),
      static_cast<const T*>(k), static_cast<const T*>(v), static_cast<const T*>(dout), lse, Di, dqAcc, static_cast<T*>(dk),
      static_cast<T*>(dv));
}

// The backward's frame (see attention_fa2.h): a zeroed float dQ accumulator and D_i, `main`, then dq =
// scale * accumulator in T. For float32 the accumulator is dq itself, and main adds scale dS K there
// (the float32 kernel scales dS on its way to shared memory): no accumulator, no conversion pass.
template <class T, int D>
std::string backward_frame(const cpu::AttentionArgs& a, const void* out, const void* dout, void* dq,
                           const AttentionBackwardMain& main) {
  constexpr bool kDirect = std::is_same_v<T, float>;
  const Params p = make_params(a);
  const int64_t rowsQ = p.BH * p.Tq, nq = rowsQ * D;
  // Scratch: the float dQ accumulator (first, so it stays 16-byte aligned), then D_i.
  const size_t bytes = sizeof(float) * static_cast<size_t>(kDirect ? rowsQ : nq + rowsQ);
  std::string err;
  void* scratch = alloc(bytes, &err);
  if (!scratch) return err.empty() ? "attention (fa2): out of device memory" : err;
  float* dqAcc = kDirect ? static_cast<float*>(dq) : static_cast<float*>(scratch);
  float* Di = kDirect ? static_cast<float*>(scratch) : dqAcc + nq;
  const cudaError_t ce = cudaMemsetAsync(dqAcc, 0, sizeof(float) * static_cast<size_t>(nq), 0);
  if (ce != cudaSuccess) err = cuda_error(ce);
  unsigned prepGrid = 0;
  if (err.empty()) err = blocks_1d((rowsQ * 8 + 255) / 256, &prepGrid);
  if (err.empty()) {
    prep_kernel<T, D><<<prepGrid, 256>>>(rowsQ, static_cast<const T*>(out), static_cast<const T*>(dout), Di);
    err = last_error();
  }
  if (err.empty()) err = main(Di, dqAcc);
  if constexpr (!kDirect) {
    if (err.empty()) {
      const int64_t n8 = nq / 8, blocks = (n8 + 255) / 256;
      dq_convert_kernel<T><<<static_cast<unsigned>(blocks < 8192 ? blocks : 8192), 256>>>(n8, dqAcc, static_cast<T*>(dq),
                                                                                         p.scale);
      err = last_error();
    }
  }
  // The allocator hands blocks out again only to work queued after this on the same (default)
  // stream, so releasing before the kernels finish is safe.
  release(scratch, bytes);
  return err;
}

template <class T, int D, int Br>
std::string run_backward(const cpu::AttentionArgs& a, const void* q, const void* k, const void* v, const void* out,
                         const void* dout, const float* lse, void* dq, void* dk, void* dv) {
  const Params p = make_params(a);
  return backward_frame<T, D>(a, out, dout, dq, [&](const float* Di, float* dqAcc) {
    if (p.dropout)
      return a.causal ? launch_backward<T, D, Br, true, true>(p, q, k, v, dout, lse, Di, dqAcc, dk, dv)
                      : launch_backward<T, D, Br, false, true>(p, q, k, v, dout, lse, Di, dqAcc, dk, dv);
    return a.causal ? launch_backward<T, D, Br, true, false>(p, q, k, v, dout, lse, Di, dqAcc, dk, dv)
                    : launch_backward<T, D, Br, false, false>(p, q, k, v, dout, lse, Di, dqAcc, dk, dv);
  });
}

// float32 (3xTF32) launches. Tiles per head dim (forward key tile Bc, backward query tile Br) keep
// two forward blocks per multiprocessor and the backward within 227 KiB of shared memory.
template <int D, int Bc, bool kCausal>
std::string launch_forward_f32(const Params& p, const float* q, const float* k, const float* v, float* out, float* lse) {
  return launch_kernel<forward_f32_kernel<D, Bc, kCausal>>(forward_smem_f32<D, Bc>(), p.BH * ((p.Tq + kFwdRows - 1) / kFwdRows),
                                                          kFwdThreads, p, q, k, v, out, lse);
}

template <int D, int Bc>
std::string run_forward_f32(const cpu::AttentionArgs& a, const void* q, const void* k, const void* v, void* out, float* lse) {
  const Params p = make_params(a);
  const float *qf = static_cast<const float*>(q), *kf = static_cast<const float*>(k), *vf = static_cast<const float*>(v);
  float* of = static_cast<float*>(out);
  if (p.dropout) return "attention (fa2): float32 with dropout runs on the basic kernels";
  return a.causal ? launch_forward_f32<D, Bc, true>(p, qf, kf, vf, of, lse) : launch_forward_f32<D, Bc, false>(p, qf, kf, vf, of, lse);
}

template <int D, int Br, bool kCausal>
std::string launch_backward_f32(const Params& p, const float* q, const float* k, const float* v, const float* dout,
                                const float* lse, const float* Di, float* dq, float* dk, float* dv) {
  return launch_kernel<backward_f32_kernel<D, Br, kCausal>>(BwdTiles<float, D, Br>::bytes(), p.BH * ((p.Tk + kBwdKeys - 1) / kBwdKeys),
                                                           kBwdThreads, p, q, k, v, dout, lse, Di, dq, dk, dv);
}

// In backward_frame, which zeroes dq and computes D_i, the backward adds scale dS K straight into dq. A
// device with less shared memory per block than the kernel needs (head dims 64 / 128 want 171 / 217
// KiB; an A100 has 163) runs the basic kernels' backward instead.
template <int D, int Br>
std::string run_backward_f32(const cpu::AttentionArgs& a, const void* q, const void* k, const void* v, const void* out,
                             const void* dout, const float* lse, void* dq, void* dk, void* dv) {
  const Params p = make_params(a);
  if (p.dropout) return "attention (fa2): float32 with dropout runs on the basic kernels";
  int dev = 0, optin = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  if (e != cudaSuccess) return cuda_error(e);
  if (static_cast<size_t>(optin) < BwdTiles<float, D, Br>::bytes())
    return basic_attention_backward(AttnDType::F32, a, q, k, v, out, dout, lse, dq, dk, dv);
  const float *qf = static_cast<const float*>(q), *kf = static_cast<const float*>(k), *vf = static_cast<const float*>(v);
  const float* gf = static_cast<const float*>(dout);
  float *dkf = static_cast<float*>(dk), *dvf = static_cast<float*>(dv);
  return backward_frame<float, D>(a, out, dout, dq, [&](const float* Di, float* dqf) {
    return a.causal ? launch_backward_f32<D, Br, true>(p, qf, kf, vf, gf, lse, Di, dqf, dkf, dvf)
                    : launch_backward_f32<D, Br, false>(p, qf, kf, vf, gf, lse, Di, dqf, dkf, dvf);
  });
}

std::string forward_f32_for(const cpu::AttentionArgs& a, const void* q, const void* k, const void* v, void* out,
                            float* lse) {
  switch (a.D) {
    case 32: return run_forward_f32<32, 64>(a, q, k, v, out, lse);
    case 64: return run_forward_f32<64, 64>(a, q, k, v, out, lse);
    case 128: return run_forward_f32<128, 16>(a, q, k, v, out, lse);
    default: return "attention (fa2): head dim " + std::to_string(a.D) + " is not supported";
  }
}

std::string backward_f32_for(const cpu::AttentionArgs& a, const void* q, const void* k, const void* v, const void* out,
                             const void* dout, const float* lse, void* dq, void* dk, void* dv) {
  switch (a.D) {
    case 32: return run_backward_f32<32, 64>(a, q, k, v, out, dout, lse, dq, dk, dv);
    case 64: return run_backward_f32<64, 64>(a, q, k, v, out, dout, lse, dq, dk, dv);
    case 128: return run_backward_f32<128, 32>(a, q, k, v, out, dout, lse, dq, dk, dv);
    default: return "attention (fa2): head dim " + std::to_string(a.D) + " is not supported";
  }
}

// Tile choices per head dim: forward key tile Bc, backward query tile Br.
template <class T>
std::string forward_for(const cpu::AttentionArgs& a, const void* q, const void* k, const void* v, void* out,
                        float* lse) {
  switch (a.D) {
    case 32: return run_forward<T, 32, 128>(a, q, k, v, out, lse);
    case 64: return run_forward<T, 64, 128>(a, q, k, v, out, lse);
    case 128: return run_forward<T, 128, 64>(a, q, k, v, out, lse);
    default: return "attention (fa2): head dim " + std::to_string(a.D) + " is not supported";
  }
}

template <class T>
std::string backward_for(const cpu::AttentionArgs& a, const void* q, const void* k, const void* v, const void* out,
                         const void* dout, const float* lse, void* dq, void* dk, void* dv) {
  switch (a.D) {
    case 32: return run_backward<T, 32, 128>(a, q, k, v, out, dout, lse, dq, dk, dv);
    case 64: return run_backward<T, 64, 128>(a, q, k, v, out, dout, lse, dq, dk, dv);
    case 128: return run_backward<T, 128, 64>(a, q, k, v, out, dout, lse, dq, dk, dv);
    default: return "attention (fa2): head dim " + std::to_string(a.D) + " is not supported";
  }
}

}  // namespace fa2

// float32 through fa2: 0 as KILN_ATTENTION_F32 says (read once: "fa2" on, anything else off; unset:
// kF32ByDefault, false until a GPU run has checked and timed these kernels), 1 off, 2 on.
constexpr bool kF32ByDefault = false;
static int g_f32_mode = 0;
void fa2_attention_set_f32(int mode) { g_f32_mode = mode; }
bool fa2_attention_f32_enabled() {
  static const bool env = [] {
    const char* e = std::getenv("KILN_ATTENTION_F32");
    return e ? std::strcmp(e, "fa2") == 0 : kF32ByDefault;
  }();
  return g_f32_mode == 0 ? env : g_f32_mode == 2;
}

bool fa2_attention_supports(AttnDType dtype, const cpu::AttentionArgs& a, const void* const* ptrs, int nptrs) {
  if (dtype == AttnDType::F32 ? !fa2_attention_f32_enabled() || a.dropout > 0 : dtype != AttnDType::F16 && dtype != AttnDType::BF16)
    return false;
  if (a.D != 32 && a.D != 64 && a.D != 128) return false;
  if (a.keyMask || !(a.scale > 0)) return false;
  if (a.B <= 0 || a.H <= 0 || a.Tq <= 0 || a.Tk <= 0) return false;
  for (int i = 0; i < nptrs; ++i)
    if (reinterpret_cast<uintptr_t>(ptrs[i]) % 16 != 0) return false;
  return true;
}

std::string fa2_attention_forward(AttnDType dtype, const cpu::AttentionArgs& a, const void* q, const void* k,
                                  const void* v, void* out, float* lse) {
  if (dtype == AttnDType::BF16) return fa2::forward_for<__nv_bfloat16>(a, q, k, v, out, lse);
  if (dtype == AttnDType::F16) return fa2::forward_for<__half>(a, q, k, v, out, lse);
  return fa2::forward_f32_for(a, q, k, v, out, lse);
}

std::string attention_backward_frame(AttnDType dtype, const cpu::AttentionArgs& a, const void* out, const void* dout,
                                     void* dq, const AttentionBackwardMain& main) {
  auto frame = [&](auto tag) -> std::string {
    using T = decltype(tag);
    switch (a.D) {
      case 32: return fa2::backward_frame<T, 32>(a, out, dout, dq, main);
      case 64: return fa2::backward_frame<T, 64>(a, out, dout, dq, main);
      case 128: return fa2::backward_frame<T, 128>(a, out, dout, dq, main);
      default: return "attention (fa2): head dim " + std::to_string(a.D) + " is not supported";
    }
  };
  if (dtype == AttnDType::BF16) return frame(__nv_bfloat16{});
  if (dtype == AttnDType::F16) return frame(__half{});
  return "attention (fa2): float16 and bfloat16 only";
}

std::string fa2_attention_backward(AttnDType dtype, const cpu::AttentionArgs& a, const void* q, const void* k,
                                   const void* v, const void* out, const void* dout, const float* lse, void* dq,
                                   void* dk, void* dv) {
  if (dtype == AttnDType::BF16) return fa2::backward_for<__nv_bfloat16>(a, q, k, v, out, dout, lse, dq, dk, dv);
  if (dtype == AttnDType::F16) return fa2::backward_for<__half>(a, q, k, v, out, dout, lse, dq, dk, dv);
  return fa2::backward_f32_for(a, q, k, v, out, dout, lse, dq, dk, dv);
}

}  // namespace cuda
}  // namespace kiln
