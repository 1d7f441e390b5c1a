// Fused attention on CUDA, FlashAttention-2's algorithm (same semantics as kernels/cpu/attention.h):
// the forward keeps a query tile in shared memory and streams key/value tiles with an online
// softmax; the backward keeps a key/value tile, streams query tiles, recomputes P from the saved
// logsumexp with D_i = rowsum(dO o O), owns dK and dV and adds dQ atomically into a float buffer.
// Tile products run on tensor cores with float accumulation: WMMA m16n16k16 for float16/bfloat16,
// 3xTF32 WMMA m16n16k8 for float32 (float32-level accuracy, like kiln's float32 matmul). Scores, softmax and
// gradients of the score are float32 in shared memory. Head dims 32, 64, 128.
// These are the general kernels ("basic"); float16/bfloat16 calls without a boolean key mask go to
// the FlashAttention-2 fast path in attention_fa2.cu (dispatch at the end of this file).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

#include "../common/philox.h"
#include "attention_api.h"
#include "attention_fa2.h"
#ifdef KILN_ATTENTION_SM90
#include "attention_sm90.h"
#endif
#include "cuda_api.h"

namespace kiln {
namespace cuda {
namespace {

constexpr int kThreads = 128;  // four warps per block
constexpr int kWarps = kThreads / 32;

__device__ inline float to_f(float x) { return x; }
__device__ inline float to_f(__half x) { return __half2float(x); }
__device__ inline float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
template <class T> __device__ inline T from_f(float x);
template <> __device__ inline float from_f<float>(float x) { return x; }
template <> __device__ inline __half from_f<__half>(float x) { return __float2half_rn(x); }
template <> __device__ inline __nv_bfloat16 from_f<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

// The parameters a kernel needs, passed by value.
struct Params {
  int64_t BH, H, Tq, Tk;
  float scale;
  bool causal;
  const int32_t* keyLens;
  const int32_t* keyMask;
  float dropout;
  float keepScale;
  uint32_t dropThreshold;
  uint64_t seed, offset;
};

// Tile sizes per (element type, head dim): Br query rows x Bc keys in the forward; the backward
// uses 32-row query tiles. Rows of shared tiles are padded by 8 elements (bank spread; leading
// dimensions stay multiples of 16 bytes and every WMMA fragment start 32-byte aligned, as WMMA requires).
template <int D> struct Tiles {
  static constexpr int Br = 64;
  static constexpr int Bc = D <= 64 ? 64 : 32;
  static constexpr int BrBwd = 32;
};
constexpr int kPad = 8;

__device__ inline int64_t key_end(const Params& p, int64_t b) {
  if (!p.keyLens) return p.Tk;
  int64_t n = p.keyLens[b];
  return n < 0 ? 0 : (n > p.Tk ? p.Tk : n);
}

// Whether query i sees key j (j < key_end already checked by the caller).
__device__ inline bool visible(const Params& p, int64_t b, int64_t i, int64_t j) {
  if (p.causal && j > i + (p.Tk - p.Tq)) return false;
  if (p.keyMask && p.keyMask[b * p.Tk + j] == 0) return false;
  return true;
}

// Dropout scale of element (bh, i, j): the kiln Philox stream, word offset + ((bh Tq + i) Tk + j).
__device__ inline float dropout_scale(const Params& p, int64_t bh, int64_t i, int64_t j) {
  if (p.dropout <= 0.f) return 1.f;
  uint64_t w = p.offset + static_cast<uint64_t>((bh * p.Tq + i) * p.Tk + j);
  uint32_t x = philox::stream_word(p.seed, w);
  return philox::dropout_keeps(x, p.dropThreshold) ? p.keepScale : 0.f;
}

// One k-step of a warp's tile product for element type T: float16/bfloat16 as WMMA m16n16k16; float32
// as 3xTF32 WMMA m16n16k8: each operand x is split into hi = x rounded to TF32 and lo = (x - hi)
// rounded to TF32, and lo*hi + hi*lo + hi*hi (the small terms first; lo*lo is below float32 rounding)
// gives float32-level accuracy, as kernels/cuda/gemm.cu's float32 products do.
__device__ inline float tf32_round(float x) { return nvcuda::wmma::__float_to_tf32(x); }

template <class Frag>
__device__ inline void split_tf32(Frag& hi, Frag& lo) {
  for (int e = 0; e < hi.num_elements; ++e) {
    const float x = hi.x[e], h = tf32_round(x);
    hi.x[e] = h;
    lo.x[e] = isfinite(h) ? tf32_round(x - h) : 0.f;
  }
}

template <class T>
struct WmmaStep {
  static constexpr int kK = 16;
  using In = T;
  template <class C, class A, class B>
  __device__ static void mma(C& acc, A& a, B& b) {
    nvcuda::wmma::mma_sync(acc, a, b, acc);
  }
};
template <>
struct WmmaStep<float> {
  static constexpr int kK = 8;
  using In = nvcuda::wmma::precision::tf32;
  template <class C, class A, class B>
  __device__ static void mma(C& acc, A& ah, B& bh) {
    using namespace nvcuda;
    A al;
    B bl;
    split_tf32(ah, al);
    split_tf32(bh, bl);
    wmma::mma_sync(acc, al, bh, acc);
    wmma::mma_sync(acc, ah, bl, acc);
    wmma::mma_sync(acc, ah, bh, acc);
  }
};

// C (M x N, float, row stride ldc) (+)= op(A) (M x K) * op(B) (K x N), all in shared memory, on the
// tensor cores (WmmaStep). A(m, k) = TA ? A[k * lda + m] : A[m * lda + k]; B(k, n) = TB ? B[n * ldb + k] :
// B[k * ldb + n]. M, N, K are multiples of 16. Called by the whole block; the caller synchronises around it.
template <class T, bool TA, bool TB>
__device__ inline void tile_gemm(float* C, int ldc, const T* A, int lda, const T* B, int ldb, int M, int N, int K,
                                 bool accumulate) {
  using namespace nvcuda;
  using S = WmmaStep<T>;
  using LA = typename std::conditional<TA, wmma::col_major, wmma::row_major>::type;
  using LB = typename std::conditional<TB, wmma::col_major, wmma::row_major>::type;
  const int warp = threadIdx.x / 32;
  const int tilesN = N / 16, tiles = (M / 16) * tilesN;
  for (int t = warp; t < tiles; t += kWarps) {
    const int m0 = (t / tilesN) * 16, n0 = (t % tilesN) * 16;
    wmma::fragment<wmma::accumulator, 16, 16, S::kK, float> acc;
    if (accumulate) wmma::load_matrix_sync(acc, C + m0 * ldc + n0, ldc, wmma::mem_row_major);
    else wmma::fill_fragment(acc, 0.f);
    for (int k0 = 0; k0 < K; k0 += S::kK) {
      wmma::fragment<wmma::matrix_a, 16, 16, S::kK, typename S::In, LA> fa;
      wmma::fragment<wmma::matrix_b, 16, 16, S::kK, typename S::In, LB> fb;
      wmma::load_matrix_sync(fa, TA ? A + k0 * lda + m0 : A + m0 * lda + k0, lda);
      wmma::load_matrix_sync(fb, TB ? B + n0 * ldb + k0 : B + k0 * ldb + n0, ldb);
      S::mma(acc, fa, fb);
    }
    wmma::store_matrix_sync(C + m0 * ldc + n0, acc, ldc, wmma::mem_row_major);
  }
}

// Copies rows [r0, r0 + rows) of a [T x D] matrix into a shared tile (row stride ld), zero past `limit`
// and, given a batch's key mask, zero for the keys it hides: their NaN or Inf must not reach an output
// through a zero weight (0 * NaN), as on the CPU.
template <class T, int D>
__device__ inline void load_rows(T* dst, int ld, const T* src, int64_t r0, int rows, int64_t limit,
                                 const int32_t* hidden = nullptr) {
  for (int e = threadIdx.x; e < rows * D; e += blockDim.x) {
    const int r = e / D, d = e % D;
    const bool ok = r0 + r < limit && (!hidden || hidden[r0 + r] != 0);
    dst[r * ld + d] = ok ? src[(r0 + r) * D + d] : from_f<T>(0.f);
  }
}

// Shared-memory carving with 128-byte alignment per region.
struct Carve {
  char* base;
  size_t used = 0;
  template <class U> __host__ __device__ U* take(size_t n) {
    used = (used + 127) & ~size_t(127);
    U* p = reinterpret_cast<U*>(base + used);
    used += n * sizeof(U);
    return p;
  }
};

template <class T, int D>
size_t forward_smem() {
  using Tl = Tiles<D>;
  Carve c{nullptr};
  c.take<T>(size_t(Tl::Br) * (D + kPad));        // Q
  c.take<T>(size_t(Tl::Bc) * (D + kPad));        // K
  c.take<T>(size_t(Tl::Bc) * (D + kPad));        // V
  c.take<float>(size_t(Tl::Br) * (Tl::Bc + kPad));  // S
  c.take<T>(size_t(Tl::Br) * (Tl::Bc + kPad));   // P
  c.take<float>(size_t(Tl::Br) * (D + kPad));    // O
  c.take<float>(3 * Tl::Br);                     // m, l, alpha
  return c.used + 128;
}

template <class T, int D>
__global__ void __launch_bounds__(kThreads) attention_forward_kernel(Params p, const T* __restrict__ q,
                                                                     const T* __restrict__ k, const T* __restrict__ v,
                                                                     T* __restrict__ out, float* __restrict__ lse) {
  using Tl = Tiles<D>;
  constexpr int Br = Tl::Br, Bc = Tl::Bc, ldT = D + kPad, ldS = Bc + kPad, ldP = Bc + kPad, ldO = D + kPad;
  extern __shared__ __align__(128) char smem[];
  Carve cv{smem};
  T* Qs = cv.take<T>(size_t(Br) * ldT);
  T* Ks = cv.take<T>(size_t(Bc) * ldT);
  T* Vs = cv.take<T>(size_t(Bc) * ldT);
  float* Ss = cv.take<float>(size_t(Br) * ldS);
  T* Ps = cv.take<T>(size_t(Br) * ldP);
  float* Os = cv.take<float>(size_t(Br) * ldO);
  float* ms = cv.take<float>(3 * Br);
  float* ls = ms + Br;
  float* as = ls + Br;

  const int64_t nqb = (p.Tq + Br - 1) / Br;
  const int64_t bh = blockIdx.x / nqb, i0 = (blockIdx.x % nqb) * Br;
  const int64_t b = bh / p.H, off = p.Tk - p.Tq;
  const T* Qh = q + bh * p.Tq * D;
  const T* Kh = k + bh * p.Tk * D;
  const T* Vh = v + bh * p.Tk * D;
  const int32_t* keys = p.keyMask ? p.keyMask + b * p.Tk : nullptr;
  load_rows<T, D>(Qs, ldT, Qh, i0, Br, p.Tq);
  for (int e = threadIdx.x; e < Br * ldO; e += blockDim.x) Os[e] = 0.f;
  for (int r = threadIdx.x; r < Br; r += blockDim.x) {
    ms[r] = -INFINITY;
    ls[r] = 0.f;
  }
  int64_t kend = key_end(p, b);
  if (p.causal) {
    const int64_t lastSeen = i0 + Br + off;  // keys [0, lastSeen) may be seen by this tile
    kend = kend < lastSeen ? kend : (lastSeen > 0 ? lastSeen : 0);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int64_t j0 = 0; j0 < kend; j0 += Bc) {
    __syncthreads();  // the previous tile's products are done with K, V, P
    load_rows<T, D>(Ks, ldT, Kh, j0, Bc, kend, keys);
    load_rows<T, D>(Vs, ldT, Vh, j0, Bc, kend, keys);
    __syncthreads();
    tile_gemm<T, false, true>(Ss, ldS, Qs, ldT, Ks, ldT, Br, Bc, D, false);
    __syncthreads();
    // Online softmax, one warp per row; each lane owns columns lane, lane + 32, ...
    for (int r = warp; r < Br; r += kWarps) {
      const int64_t i = i0 + r;
      float x[Bc / 32];
      float mx = -INFINITY;
#pragma unroll
      for (int u = 0; u < Bc / 32; ++u) {
        const int c = lane + 32 * u;
        const int64_t j = j0 + c;
        const bool ok = i < p.Tq && j < kend && visible(p, b, i, j);
        x[u] = ok ? Ss[r * ldS + c] * p.scale : -INFINITY;
        mx = fmaxf(mx, x[u]);
      }
      for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      const float mold = ms[r];
      const float mnew = fmaxf(mold, mx);
      const float mu = mnew == -INFINITY ? 0.f : mnew;  // no key seen yet: every exp stays 0
      float sum = 0.f;
#pragma unroll
      for (int u = 0; u < Bc / 32; ++u) {
        const int c = lane + 32 * u;
        const float e = x[u] == -INFINITY ? 0.f : expf(x[u] - mu);
        sum += e;
        const float z = e != 0.f ? dropout_scale(p, bh, i, j0 + c) : 1.f;
        Ps[r * ldP + c] = from_f<T>(e * z);
      }
      for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      __syncwarp();
      if (lane == 0) {
        const float alpha = mold == -INFINITY ? 0.f : expf(mold - mu);
        as[r] = alpha;
        ls[r] = ls[r] * alpha + sum;
        ms[r] = mnew;
      }
    }
    __syncthreads();
    for (int e = threadIdx.x; e < Br * D; e += blockDim.x) {
      const int r = e / D, d = e % D;
      Os[r * ldO + d] *= as[r];
    }
    __syncthreads();
    tile_gemm<T, false, false>(Os, ldO, Ps, ldP, Vs, ldT, Br, D, Bc, true);
  }
  __syncthreads();
  for (int e = threadIdx.x; e < Br * D; e += blockDim.x) {
    const int r = e / D, d = e % D;
    const int64_t i = i0 + r;
    if (i >= p.Tq) continue;
    const float l = ls[r];
    out[(bh * p.Tq + i) * D + d] = from_f<T>(l > 0.f ? Os[r * ldO + d] / l : 0.f);
  }
  for (int r = threadIdx.x; r < Br; r += blockDim.x) {
    const int64_t i = i0 + r;
    if (i < p.Tq) lse[bh * p.Tq + i] = ls[r] > 0.f ? ms[r] + logf(ls[r]) : -INFINITY;
  }
}

// D_i = rowsum(dO o O) in float, one warp per row; dq_acc rows zeroed on the way.
template <class T, int D>
__global__ void attention_prep_kernel(int64_t rows, const T* __restrict__ out, const T* __restrict__ dout,
                                      float* __restrict__ Di, float* __restrict__ dq_acc) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  float s = 0.f;
  for (int d = lane; d < D; d += 32) {
    s += to_f(out[row * D + d]) * to_f(dout[row * D + d]);
    dq_acc[row * D + d] = 0.f;
  }
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if (lane == 0) Di[row] = s;
}

template <class T>
__global__ void attention_dq_kernel(int64_t n, const float* __restrict__ acc, T* __restrict__ dq) {
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dq[e] = from_f<T>(acc[e]);
}

template <class T, int D>
size_t backward_smem() {
  using Tl = Tiles<D>;
  constexpr int Br = Tl::BrBwd, Bc = Tl::Bc;
  Carve c{nullptr};
  c.take<T>(size_t(Bc) * (D + kPad));         // K
  c.take<T>(size_t(Bc) * (D + kPad));         // V
  c.take<T>(size_t(Br) * (D + kPad));         // Q
  c.take<T>(size_t(Br) * (D + kPad));         // dO
  c.take<float>(size_t(Br) * (Bc + kPad));    // S, then P
  c.take<float>(size_t(Br) * (Bc + kPad));    // dP
  c.take<T>(size_t(Br) * (Bc + kPad));        // P o Z (dropped P) in T
  c.take<T>(size_t(Br) * (Bc + kPad));        // dS in T
  c.take<float>(size_t(Bc) * (D + kPad));     // dK
  c.take<float>(size_t(Bc) * (D + kPad));     // dV
  c.take<float>(size_t(Br) * (D + kPad));     // dQ of this tile pair
  c.take<float>(2 * Br);                      // lse, D_i
  return c.used + 128;
}

template <class T, int D>
__global__ void __launch_bounds__(kThreads) attention_backward_kernel(
    Params p, const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, const T* __restrict__ dout,
    const float* __restrict__ lse, const float* __restrict__ Di, float* __restrict__ dq_acc, T* __restrict__ dk,
    T* __restrict__ dv) {
  using Tl = Tiles<D>;
  constexpr int Br = Tl::BrBwd, Bc = Tl::Bc, ldT = D + kPad, ldS = Bc + kPad, ldF = D + kPad;
  extern __shared__ __align__(128) char smem[];
  Carve cv{smem};
  T* Ks = cv.take<T>(size_t(Bc) * ldT);
  T* Vs = cv.take<T>(size_t(Bc) * ldT);
  T* Qs = cv.take<T>(size_t(Br) * ldT);
  T* dOs = cv.take<T>(size_t(Br) * ldT);
  float* Ss = cv.take<float>(size_t(Br) * ldS);
  float* dPs = cv.take<float>(size_t(Br) * ldS);
  T* PZs = cv.take<T>(size_t(Br) * ldS);
  T* dSs = cv.take<T>(size_t(Br) * ldS);
  float* dKs = cv.take<float>(size_t(Bc) * ldF);
  float* dVs = cv.take<float>(size_t(Bc) * ldF);
  float* dQs = cv.take<float>(size_t(Br) * ldF);
  float* lses = cv.take<float>(2 * Br);
  float* Dis = lses + Br;

  const int64_t nkb = (p.Tk + Bc - 1) / Bc;
  const int64_t bh = blockIdx.x / nkb, j0 = (blockIdx.x % nkb) * Bc;
  const int64_t b = bh / p.H, off = p.Tk - p.Tq;
  const int64_t kend = key_end(p, b);
  const T* Kh = k + bh * p.Tk * D;
  const T* Vh = v + bh * p.Tk * D;
  const T* Qh = q + bh * p.Tq * D;
  const T* dOh = dout + bh * p.Tq * D;
  const int32_t* keys = p.keyMask ? p.keyMask + b * p.Tk : nullptr;
  load_rows<T, D>(Ks, ldT, Kh, j0, Bc, kend, keys);
  load_rows<T, D>(Vs, ldT, Vh, j0, Bc, kend, keys);
  for (int e = threadIdx.x; e < Bc * ldF; e += blockDim.x) {
    dKs[e] = 0.f;
    dVs[e] = 0.f;
  }
  // Causal: query i sees key j iff i >= j - off; the first query tile holds i = j0 - off.
  int64_t iFirst = p.causal ? j0 - off : 0;
  if (iFirst < 0) iFirst = 0;
  const int64_t iStart = j0 < kend ? (iFirst / Br) * Br : p.Tq;  // a tile past the keys' end: nothing to do
  for (int64_t i0 = iStart; i0 < p.Tq; i0 += Br) {
    __syncthreads();  // the previous pair's products are done with Q, dO, PZ, dS, dQ
    load_rows<T, D>(Qs, ldT, Qh, i0, Br, p.Tq);
    load_rows<T, D>(dOs, ldT, dOh, i0, Br, p.Tq);
    for (int r = threadIdx.x; r < Br; r += blockDim.x) {
      const int64_t i = i0 + r;
      lses[r] = i < p.Tq ? lse[bh * p.Tq + i] : -INFINITY;
      Dis[r] = i < p.Tq ? Di[bh * p.Tq + i] : 0.f;
    }
    __syncthreads();
    tile_gemm<T, false, true>(Ss, ldS, Qs, ldT, Ks, ldT, Br, Bc, D, false);    // S = Q K^T
    tile_gemm<T, false, true>(dPs, ldS, dOs, ldT, Vs, ldT, Br, Bc, D, false);  // dP = dO V^T
    __syncthreads();
    for (int e = threadIdx.x; e < Br * Bc; e += blockDim.x) {
      const int r = e / Bc, c = e % Bc;
      const int64_t i = i0 + r, j = j0 + c;
      const float l = lses[r];
      const bool ok = i < p.Tq && j < kend && l != -INFINITY && visible(p, b, i, j);
      const float pr = ok ? expf(Ss[r * ldS + c] * p.scale - l) : 0.f;
      const float z = ok ? dropout_scale(p, bh, i, j) : 0.f;
      PZs[r * ldS + c] = from_f<T>(pr * z);
      dSs[r * ldS + c] = from_f<T>(pr * (dPs[r * ldS + c] * z - Dis[r]) * p.scale);
    }
    __syncthreads();
    tile_gemm<T, true, false>(dVs, ldF, PZs, ldS, dOs, ldT, Bc, D, Br, true);  // dV += (P o Z)^T dO
    tile_gemm<T, true, false>(dKs, ldF, dSs, ldS, Qs, ldT, Bc, D, Br, true);   // dK += dS^T Q
    tile_gemm<T, false, false>(dQs, ldF, dSs, ldS, Ks, ldT, Br, D, Bc, false); // dQ_i (this key tile's share)
    __syncthreads();
    for (int e = threadIdx.x; e < Br * D; e += blockDim.x) {
      const int r = e / D, d = e % D;
      const int64_t i = i0 + r;
      if (i < p.Tq) atomicAdd(dq_acc + (bh * p.Tq + i) * D + d, dQs[r * ldF + d]);
    }
  }
  __syncthreads();
  for (int e = threadIdx.x; e < Bc * D; e += blockDim.x) {
    const int c = e / D, d = e % D;
    const int64_t j = j0 + c;
    if (j >= p.Tk) continue;
    dk[(bh * p.Tk + j) * D + d] = from_f<T>(dKs[c * ldF + d]);
    dv[(bh * p.Tk + j) * D + d] = from_f<T>(dVs[c * ldF + d]);
  }
}

std::string last_error() {
  cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? "" : std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

Params make_params(const cpu::AttentionArgs& a) {
  Params p;
  p.BH = a.B * a.H;
  p.H = a.H;
  p.Tq = a.Tq;
  p.Tk = a.Tk;
  p.scale = static_cast<float>(a.scale);
  p.causal = a.causal;
  p.keyLens = a.keyLens;
  p.keyMask = a.keyMask;
  p.dropout = static_cast<float>(a.dropout);
  p.keepScale = a.dropout > 0 ? static_cast<float>(1.0 / (1.0 - a.dropout)) : 1.f;
  p.dropThreshold = philox::dropout_threshold(a.dropout);
  p.seed = a.seed;
  p.offset = a.offset;
  return p;
}

// Opts a kernel into `bytes` of dynamic shared memory, if the device has that much.
template <class K>
std::string prepare(K kernel, size_t bytes) {
  int dev = 0, optin = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  if (e != cudaSuccess) return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
  if (bytes > static_cast<size_t>(optin))
    return "attention: needs " + std::to_string(bytes) + " bytes of shared memory per block, the device has " +
           std::to_string(optin);
  e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  return e == cudaSuccess ? "" : std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

std::string grid_size(int64_t blocks, unsigned* out) {
  if (blocks > 0x7fffffffLL) return "attention: too many blocks for one launch";
  *out = static_cast<unsigned>(blocks);
  return "";
}

template <class T, int D>
std::string forward_impl(const cpu::AttentionArgs& a, const void* q, const void* k, const void* v, void* out,
                         float* lse) {
  const Params p = make_params(a);
  if (p.BH == 0 || p.Tq == 0) return "";
  const size_t smem = forward_smem<T, D>();
  auto kernel = attention_forward_kernel<T, D>;
  if (std::string err = prepare(kernel, smem); !err.empty()) return err;
  unsigned grid = 0;
  if (std::string err = grid_size(p.BH * ((p.Tq + Tiles<D>::Br - 1) / Tiles<D>::Br), &grid); !err.empty()) return err;
  kernel<<<grid, kThreads, smem>>>(p, static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v),
                                   static_cast<T*>(out), lse);
  return last_error();
}

template <class T, int D>
std::string backward_impl(const cpu::AttentionArgs& a, const void* q, const void* k, const void* v, const void* out,
                          const void* dout, const float* lse, void* dq, void* dk, void* dv) {
  const Params p = make_params(a);
  if (p.BH == 0) return "";
  const int64_t rowsQ = p.BH * p.Tq, nq = rowsQ * D, nk = p.BH * p.Tk * D;
  if (p.Tq == 0 || p.Tk == 0) {
    cudaMemset(dq, 0, sizeof(T) * nq);
    cudaMemset(dk, 0, sizeof(T) * nk);
    cudaMemset(dv, 0, sizeof(T) * nk);
    return last_error();
  }
  // Scratch: D_i (float [rows]) and the float dQ accumulator, from the caching allocator.
  const size_t bytes = sizeof(float) * static_cast<size_t>(rowsQ + nq);
  std::string err;
  void* scratch = alloc(bytes, &err);
  if (!scratch) return err.empty() ? "attention: out of device memory" : err;
  float* Di = static_cast<float*>(scratch);
  float* dqAcc = Di + rowsQ;
  unsigned grid = 0;
  if (err = grid_size((rowsQ * 32 + 255) / 256, &grid); err.empty()) {
    attention_prep_kernel<T, D><<<grid, 256>>>(rowsQ, static_cast<const T*>(out), static_cast<const T*>(dout), Di, dqAcc);
    const size_t smem = backward_smem<T, D>();
    auto kernel = attention_backward_kernel<T, D>;
    err = prepare(kernel, smem);
    if (err.empty()) err = grid_size(p.BH * ((p.Tk + Tiles<D>::Bc - 1) / Tiles<D>::Bc), &grid);
    if (err.empty()) {
      kernel<<<grid, kThreads, smem>>>(p, static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v),
                                       static_cast<const T*>(dout), lse, Di, dqAcc, static_cast<T*>(dk),
                                       static_cast<T*>(dv));
      const int64_t blocks = (nq + 255) / 256;
      attention_dq_kernel<T><<<static_cast<unsigned>(blocks < 65535 ? blocks : 65535), 256>>>(nq, dqAcc,
                                                                                               static_cast<T*>(dq));
      err = last_error();
    }
  }
  // The allocator's blocks are reused only after the work queued on the default stream, which
  // runs in order, so releasing here (before the kernels finish) is safe for later launches.
  release(scratch, bytes);
  return err;
}

template <class T>
std::string forward_for(const cpu::AttentionArgs& a, const void* q, const void* k, const void* v, void* out,
                        float* lse) {
  switch (a.D) {
    case 32: return forward_impl<T, 32>(a, q, k, v, out, lse);
    case 64: return forward_impl<T, 64>(a, q, k, v, out, lse);
    case 128: return forward_impl<T, 128>(a, q, k, v, out, lse);
    default: return "attention: head dim " + std::to_string(a.D) + " is not supported on CUDA (32, 64, 128)";
  }
}

template <class T>
std::string backward_for(const cpu::AttentionArgs& a, const void* q, const void* k, const void* v, const void* out,
                         const void* dout, const float* lse, void* dq, void* dk, void* dv) {
  switch (a.D) {
    case 32: return backward_impl<T, 32>(a, q, k, v, out, dout, lse, dq, dk, dv);
    case 64: return backward_impl<T, 64>(a, q, k, v, out, dout, lse, dq, dk, dv);
    case 128: return backward_impl<T, 128>(a, q, k, v, out, dout, lse, dq, dk, dv);
    default: return "attention: head dim " + std::to_string(a.D) + " is not supported on CUDA (32, 64, 128)";
  }
}

}  // namespace

std::string basic_attention_forward(AttnDType dtype, const cpu::AttentionArgs& a, const void* q, const void* k,
                                    const void* v, void* out, float* lse) {
  switch (dtype) {
    case AttnDType::F32: return forward_for<float>(a, q, k, v, out, lse);
    case AttnDType::F16: return forward_for<__half>(a, q, k, v, out, lse);
    case AttnDType::BF16: return forward_for<__nv_bfloat16>(a, q, k, v, out, lse);
  }
  return "attention: unknown dtype";
}

std::string basic_attention_backward(AttnDType dtype, const cpu::AttentionArgs& a, const void* q, const void* k,
                                     const void* v, const void* out, const void* dout, const float* lse, void* dq,
                                     void* dk, void* dv) {
  switch (dtype) {
    case AttnDType::F32: return backward_for<float>(a, q, k, v, out, dout, lse, dq, dk, dv);
    case AttnDType::F16: return backward_for<__half>(a, q, k, v, out, dout, lse, dq, dk, dv);
    case AttnDType::BF16: return backward_for<__nv_bfloat16>(a, q, k, v, out, dout, lse, dq, dk, dv);
  }
  return "attention: unknown dtype";
}

// KILN_ATTENTION_KERNEL=basic sends every call to the kernels above; fa2 sends the calls
// attention_fa2.cu supports there; by default, on compute capability 9.x, the Hopper kernels of
// attention_sm90.h take every call they support first (sm90_attention_enabled), then fa2. Read once
// per process.
static bool fa2_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("KILN_ATTENTION_KERNEL");
    return !(e && std::strcmp(e, "basic") == 0);
  }();
  return on;
}

std::string attention_forward(AttnDType dtype, const cpu::AttentionArgs& a, const void* q, const void* k,
                              const void* v, void* out, float* lse) {
  const void* ptrs[] = {q, k, v, out};
#ifdef KILN_ATTENTION_SM90
  if (sm90_attention_enabled()) {
    bool handled = false;
    std::string err = sm90_attention_forward(dtype, a, q, k, v, out, lse, handled);
    if (handled) return err;
  }
#endif
  if (fa2_enabled() && fa2_attention_supports(dtype, a, ptrs, 4)) return fa2_attention_forward(dtype, a, q, k, v, out, lse);
  return basic_attention_forward(dtype, a, q, k, v, out, lse);
}

std::string attention_backward(AttnDType dtype, const cpu::AttentionArgs& a, const void* q, const void* k,
                               const void* v, const void* out, const void* dout, const float* lse, void* dq, void* dk,
                               void* dv) {
  const void* ptrs[] = {q, k, v, out, dout, dq, dk, dv};
#ifdef KILN_ATTENTION_SM90
  if (sm90_attention_enabled()) {
    bool handled = false;
    std::string err = sm90_attention_backward(dtype, a, q, k, v, out, dout, lse, dq, dk, dv, handled);
    if (handled) return err;
  }
#endif
  if (fa2_enabled() && fa2_attention_supports(dtype, a, ptrs, 8))
    return fa2_attention_backward(dtype, a, q, k, v, out, dout, lse, dq, dk, dv);
  return basic_attention_backward(dtype, a, q, k, v, out, dout, lse, dq, dk, dv);
}

}  // namespace cuda
}  // namespace kiln
