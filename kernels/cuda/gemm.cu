// Matrix products on CUDA (semantics in gemm_api.h, the same as kernels/cpu/gemm.cc).
// Tensor-core path (sm_80+), one kernel template for float16 / bfloat16 (mma.sync m16n8k16) and
// float32 (mma.sync m16n8k8 TF32, once or as 3xTF32): a block computes a BM x BN tile of C,
// streaming BK-deep slices of A and B through a STAGES-deep ring of shared-memory buffers filled
// by cp.async (16-byte copies, zero-filled past the matrix edges; element loads when an operand
// is not 16-byte aligned). Shared tiles keep the operand's global layout (rows padded by 16 bytes,
// or 8 elements on the m/n-contiguous side), so a transposed operand costs no copy: fragments come
// from ldmatrix (.trans for transposed 16-bit tiles) or, for float32, from 32-bit shared loads.
// Warps own WTM x WTN sub-tiles; accumulators stay float32; the epilogue applies alpha and beta
// and writes float32 or the half type. float64 runs a plain shared-memory tiled FMA kernel.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

#include "core_common.cuh"  // core::Scratch: device scratch from the caching allocator
#include "gemm_api.h"
#include "gemm_common.cuh"
#ifdef KILN_GEMM_SM90
#include "gemm_sm90.h"  // the Hopper kernel (default for large half products on cc 9.x), gemm_sm90.cu
#endif

namespace kiln {
namespace cuda {
namespace {

// ------------------------------------------------------------------ launch parameters

struct Params {
  int64_t batch, M, N, K;
  const void* A;
  int64_t lda, sA;
  const void* B;
  int64_t ldb, sB;
  void* C;
  int64_t ldc, sC;
  double alpha, beta;
  int outType;      // GemmType of C
  bool vecA, vecB;  // 16-byte cp.async copies are aligned for this operand
  bool pairs;       // C's element pairs (even column, odd column) are aligned for one store
  bool transA, transB;  // read by the float64 kernel (the tensor-core kernels take them as template arguments)
  int64_t tilesM, tilesN;
};

// ------------------------------------------------------------------ PTX wrappers
// (Under KILN_HOST_MODEL, bench/native/cuda_host's model of each instruction: the kernels compiled for
// the CPU by scripts/build-cuda-host.sh.)

__device__ __forceinline__ uint32_t smem_addr(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

#ifdef KILN_HOST_MODEL
__device__ inline void cp_async_16(void* dst, const void* src, int bytes) { ::kiln_host::cp_async(dst, src, 16, bytes); }
__device__ inline void cp_async_commit() { ::kiln_host::cp_async_commit(); }
template <int N> __device__ inline void cp_async_wait() { ::kiln_host::cp_async_wait_group(N); }
__device__ inline void ldsm_x4(uint32_t (&r)[4], const void* p) { ::kiln_host::ldmatrix_x4(r, smem_addr(p), false); }
__device__ inline void ldsm_x4_trans(uint32_t (&r)[4], const void* p) { ::kiln_host::ldmatrix_x4(r, smem_addr(p), true); }
__device__ inline uint32_t to_tf32(float x) { return ::kiln_host::cvt_rna_tf32(x); }
#else

// Copies `bytes` (0..16) from global memory and zero-fills the rest of the 16-byte destination.
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(p)));
}

__device__ __forceinline__ uint32_t to_tf32(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
}
#endif  // KILN_HOST_MODEL

enum class Mode { BF16, F16, TF32, TF32x3 };

// Shared-memory element type: the half types as raw 16-bit words, float32 as itself.
template <Mode M> struct ModeTraits {
  using S = uint16_t;
};
template <> struct ModeTraits<Mode::TF32> {
  using S = float;
};
template <> struct ModeTraits<Mode::TF32x3> {
  using S = float;
};

template <Mode M>
__device__ __forceinline__ void mma_k16(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#ifdef KILN_HOST_MODEL
  ::kiln_host::mma_m16n8k16(M == Mode::BF16, c, a, b[0], b[1]);
#else
  if constexpr (M == Mode::BF16)
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  else
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

__device__ __forceinline__ void mma_tf32(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#ifdef KILN_HOST_MODEL
  ::kiln_host::mma_m16n8k8_tf32(c, a, b[0], b[1]);
#else
  asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

// x = hi + lo, both TF32: hi is x rounded to TF32, lo the rounded remainder (0 when x is not finite).
__device__ __forceinline__ void split_tf32(float x, uint32_t& hi, uint32_t& lo) {
  hi = to_tf32(x);
  const float h = __uint_as_float(hi);
  lo = isfinite(h) ? to_tf32(x - h) : 0u;
}

// ------------------------------------------------------------------ tile configurations

// BM x BN block tile, WM x WN warps, BKB bytes of K per stage, STAGES buffers, MINB blocks per SM.
template <int BM_, int BN_, int WM_, int WN_, int BKB_, int STAGES_, int MINB_>
struct Cfg {
  static constexpr int BM = BM_, BN = BN_, WM = WM_, WN = WN_, BK_BYTES = BKB_, STAGES = STAGES_, MIN_BLOCKS = MINB_;
  static constexpr int THREADS = WM * WN * 32;
  static constexpr int WTM = BM / WM, WTN = BN / WN;
  static constexpr int MI = WTM / 16, NI = WTN / 8;
  static_assert(WTM % 16 == 0 && WTN % 16 == 0 && STAGES >= 2, "warp tiles are whole 16 x 16 blocks");
};

// Shared-memory layout of one stage. A tile: [BM][BK] (k contiguous) or, transposed, [BK][BM];
// B tile: [BK][BN] or, transposed, [BN][BK]. Rows along k are padded by 16 bytes and rows along
// m/n by 8 elements: every row start stays 16-byte aligned (cp.async, ldmatrix) and the eight
// rows an ldmatrix phase or a fragment load touches fall in distinct banks.
template <class C, class S, bool TA, bool TB>
struct Layout {
  static constexpr int BK = C::BK_BYTES / int(sizeof(S));
  static constexpr int PAD_K = 16 / int(sizeof(S)), PAD_MN = 8;
  static constexpr int A_ROWS = TA ? BK : C::BM, A_COLS = TA ? C::BM : BK, A_LD = A_COLS + (TA ? PAD_MN : PAD_K);
  static constexpr int B_ROWS = TB ? C::BN : BK, B_COLS = TB ? BK : C::BN, B_LD = B_COLS + (TB ? PAD_K : PAD_MN);
  static constexpr int A_ELEMS = A_ROWS * A_LD, B_ELEMS = B_ROWS * B_LD, STAGE_ELEMS = A_ELEMS + B_ELEMS;
  static constexpr size_t SMEM = size_t(STAGE_ELEMS) * sizeof(S) * C::STAGES;
  static_assert((A_ELEMS * sizeof(S)) % 16 == 0 && (STAGE_ELEMS * sizeof(S)) % 16 == 0, "16-byte aligned buffers");
  static_assert(BK % (sizeof(S) == 4 ? 8 : 16) == 0, "whole mma k-steps per stage");
};

using gemm_detail::tile_coords;  // gemm_common.cuh

// Streams one operand through shared memory, one BK-deep tile per call. The operand is a row-major
// matrix (row stride ld); the tile is ROWS x COLS elements with K along the columns (KCOLS: the
// operand is k-contiguous) or along the rows; the other dimension is fixed for the block (m or n).
// Each thread owns PER 16-byte chunks and keeps their source pointers, advanced by one tile per
// call. VEC: cp.async copies, zero-filled past the matrix edges; otherwise element loads (any
// alignment). Calls must come in k order.
template <class S, int ROWS, int COLS, int LD, int THREADS, bool KCOLS, bool VEC>
struct TileLoader {
  static constexpr int V = 16 / int(sizeof(S)), CPR = COLS / V, CHUNKS = ROWS * CPR, PER = CHUNKS / THREADS;
  static constexpr int BK = KCOLS ? COLS : ROWS;
  static_assert(COLS % V == 0 && CHUNKS % THREADS == 0, "whole 16-byte chunks, the same count per thread");
  const S* base;      // a readable address for zero-byte copies
  const S* ptr[PER];  // chunk sources at the current k
  int fixedLeft[PER];  // elements of the chunk inside the fixed dimension (KCOLS: 0 or V)
  int kpos[PER];       // the chunk's k offset inside the tile
  int64_t kstep;

  // g: the operand's matrix; the fixed dimension starts at f0 and has extent fExt.
  __device__ __forceinline__ void init(const S* g, int64_t ld, int64_t f0, int64_t fExt) {
    base = g;
    kstep = KCOLS ? int64_t(BK) : int64_t(BK) * ld;
#pragma unroll
    for (int j = 0; j < PER; ++j) {
      const int i = j * THREADS + int(threadIdx.x);
      const int r = i / CPR, c = (i % CPR) * V;
      if constexpr (KCOLS) {
        fixedLeft[j] = f0 + r < fExt ? V : 0;
        kpos[j] = c;
        ptr[j] = g + (f0 + r) * ld + c;
      } else {
        const int64_t left = fExt - (f0 + c);
        fixedLeft[j] = left <= 0 ? 0 : left >= V ? V : int(left);
        kpos[j] = r;
        ptr[j] = g + int64_t(r) * ld + f0 + c;
      }
    }
  }

  // Fills tile s with the next BK slice of K; kLeft = min(K - k0, BK) >= 1.
  __device__ __forceinline__ void load(S* s, int kLeft) {
    if (VEC && kLeft == BK) {
      // A whole slice: only the fixed dimension's edge can cut a chunk.
#pragma unroll
      for (int j = 0; j < PER; ++j) {
        const int i = j * THREADS + int(threadIdx.x);
        S* const dst = s + (i / CPR) * LD + (i % CPR) * V;
        cp_async_16(dst, fixedLeft[j] > 0 ? ptr[j] : base, fixedLeft[j] * int(sizeof(S)));
        ptr[j] += kstep;
      }
      return;
    }
#pragma unroll
    for (int j = 0; j < PER; ++j) {
      const int i = j * THREADS + int(threadIdx.x);
      S* const dst = s + (i / CPR) * LD + (i % CPR) * V;
      int n;
      if constexpr (KCOLS) {
        const int k = kLeft - kpos[j];
        n = fixedLeft[j] == 0 || k <= 0 ? 0 : k >= V ? V : k;
      } else {
        n = kpos[j] < kLeft ? fixedLeft[j] : 0;
      }
      if constexpr (VEC) {
        cp_async_16(dst, n > 0 ? ptr[j] : base, n * int(sizeof(S)));
      } else {
#pragma unroll
        for (int e = 0; e < V; ++e) dst[e] = e < n ? ptr[j][e] : S(0);
      }
      ptr[j] += kstep;
    }
  }
};

// One k-step's operand fragments of a warp: MI m16 x k tiles of A and NI k x n8 tiles of B, as
// mma.sync wants them (16-bit: packed pairs from ldmatrix; float32: the raw values).
template <Mode MODE, class C>
struct Frags {
  static constexpr bool kHalf = MODE == Mode::BF16 || MODE == Mode::F16;
  static constexpr int KSTEP = kHalf ? 16 : 8;
  using T = typename std::conditional<kHalf, uint32_t, float>::type;
  T a[C::MI][4];
  T b[C::NI][2];
};

// Loads the fragments of k-step kk (element offset along K) of one stage's tiles.
template <Mode MODE, class C, bool TA, bool TB>
__device__ __forceinline__ void load_frags(Frags<MODE, C>& f, const typename ModeTraits<MODE>::S* As,
                                           const typename ModeTraits<MODE>::S* Bs, int kk, int wm0, int wn0, int lane) {
  using L = Layout<C, typename ModeTraits<MODE>::S, TA, TB>;
  if constexpr (Frags<MODE, C>::kHalf) {
    const int j = lane >> 3, r = lane & 7;
#pragma unroll
    for (int mi = 0; mi < C::MI; ++mi) {
      const int m = wm0 + mi * 16;
      if constexpr (!TA) ldsm_x4(f.a[mi], As + (m + (lane & 15)) * L::A_LD + kk + (lane >> 4) * 8);
      else ldsm_x4_trans(f.a[mi], As + (kk + r + (j >> 1) * 8) * L::A_LD + m + (j & 1) * 8);
    }
#pragma unroll
    for (int ni = 0; ni < C::NI; ni += 2) {
      const int n = wn0 + ni * 8;
      uint32_t t[4];
      if constexpr (TB) ldsm_x4(t, Bs + (n + r + (j >> 1) * 8) * L::B_LD + kk + (j & 1) * 8);
      else ldsm_x4_trans(t, Bs + (kk + r + (j & 1) * 8) * L::B_LD + n + (j >> 1) * 8);
      f.b[ni][0] = t[0];
      f.b[ni][1] = t[1];
      f.b[ni + 1][0] = t[2];
      f.b[ni + 1][1] = t[3];
    }
  } else {
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int mi = 0; mi < C::MI; ++mi) {
      const int m = wm0 + mi * 16 + g;
      if constexpr (!TA) {
        f.a[mi][0] = As[m * L::A_LD + kk + t];
        f.a[mi][1] = As[(m + 8) * L::A_LD + kk + t];
        f.a[mi][2] = As[m * L::A_LD + kk + t + 4];
        f.a[mi][3] = As[(m + 8) * L::A_LD + kk + t + 4];
      } else {
        f.a[mi][0] = As[(kk + t) * L::A_LD + m];
        f.a[mi][1] = As[(kk + t) * L::A_LD + m + 8];
        f.a[mi][2] = As[(kk + t + 4) * L::A_LD + m];
        f.a[mi][3] = As[(kk + t + 4) * L::A_LD + m + 8];
      }
    }
#pragma unroll
    for (int ni = 0; ni < C::NI; ++ni) {
      const int n = wn0 + ni * 8 + g;
      if constexpr (TB) {
        f.b[ni][0] = Bs[n * L::B_LD + kk + t];
        f.b[ni][1] = Bs[n * L::B_LD + kk + t + 4];
      } else {
        f.b[ni][0] = Bs[(kk + t) * L::B_LD + n];
        f.b[ni][1] = Bs[(kk + t + 4) * L::B_LD + n];
      }
    }
  }
}

// acc += the k-step's products.
template <Mode MODE, class C>
__device__ __forceinline__ void mma_frags(float (&acc)[C::MI][C::NI][4], const Frags<MODE, C>& f) {
  if constexpr (Frags<MODE, C>::kHalf) {
#pragma unroll
    for (int mi = 0; mi < C::MI; ++mi)
#pragma unroll
      for (int ni = 0; ni < C::NI; ++ni) mma_k16<MODE>(acc[mi][ni], f.a[mi], f.b[ni]);
  } else if constexpr (MODE == Mode::TF32) {
    uint32_t ah[C::MI][4], bh[C::NI][2];
#pragma unroll
    for (int mi = 0; mi < C::MI; ++mi)
#pragma unroll
      for (int q = 0; q < 4; ++q) ah[mi][q] = to_tf32(f.a[mi][q]);
#pragma unroll
    for (int ni = 0; ni < C::NI; ++ni)
#pragma unroll
      for (int q = 0; q < 2; ++q) bh[ni][q] = to_tf32(f.b[ni][q]);
#pragma unroll
    for (int mi = 0; mi < C::MI; ++mi)
#pragma unroll
      for (int ni = 0; ni < C::NI; ++ni) mma_tf32(acc[mi][ni], ah[mi], bh[ni]);
  } else {
    uint32_t ah[C::MI][4], al[C::MI][4], bh[C::NI][2], bl[C::NI][2];
#pragma unroll
    for (int mi = 0; mi < C::MI; ++mi)
#pragma unroll
      for (int q = 0; q < 4; ++q) split_tf32(f.a[mi][q], ah[mi][q], al[mi][q]);
#pragma unroll
    for (int ni = 0; ni < C::NI; ++ni)
#pragma unroll
      for (int q = 0; q < 2; ++q) split_tf32(f.b[ni][q], bh[ni][q], bl[ni][q]);
    // The small cross terms first, then the large one (3xTF32; lo x lo is below float32 rounding).
#pragma unroll
    for (int mi = 0; mi < C::MI; ++mi)
#pragma unroll
      for (int ni = 0; ni < C::NI; ++ni) {
        mma_tf32(acc[mi][ni], al[mi], bh[ni]);
        mma_tf32(acc[mi][ni], ah[mi], bl[ni]);
        mma_tf32(acc[mi][ni], ah[mi], bh[ni]);
      }
  }
}

// ------------------------------------------------------------------ epilogue

using gemm_detail::Out;  // gemm_common.cuh

// C = alpha * acc + beta * C for a warp's sub-tile whose first element (row m, column n) is this
// lane's. `pairs`: C's base, ldc and batch stride keep element pairs (c, c + 1) aligned, so whole
// pairs are stored at once (c is always even). beta == 0 never reads C.
template <class O, class C>
__device__ __forceinline__ void store_tile(const Params& p, int64_t b, int64_t m, int64_t n, const float (&acc)[C::MI][C::NI][4],
                                           bool pairs) {
  using T = Out<O>;
  const float alpha = float(p.alpha), beta = float(p.beta);
  O* const base = static_cast<O*>(p.C) + b * p.sC + m * p.ldc + n;
  if (pairs && m + C::WTM <= p.M && n + C::WTN <= p.N) {
    // A whole sub-tile inside C: no bounds checks, one pair per store.
#pragma unroll
    for (int mi = 0; mi < C::MI; ++mi)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        O* const row = base + (mi * 16 + h * 8) * p.ldc;
#pragma unroll
        for (int ni = 0; ni < C::NI; ++ni) {
          float v0 = alpha * acc[mi][ni][2 * h], v1 = alpha * acc[mi][ni][2 * h + 1];
          auto* const o = reinterpret_cast<typename T::Pair*>(row + ni * 8);
          if (beta != 0.f) {
            const float2 old = T::unpack(*o);
            v0 += beta * old.x;
            v1 += beta * old.y;
          }
          *o = T::pack(v0, v1);
        }
      }
    return;
  }
#pragma unroll
  for (int mi = 0; mi < C::MI; ++mi)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t r = m + mi * 16 + h * 8;
      if (r >= p.M) continue;
      O* const row = base + (mi * 16 + h * 8) * p.ldc;
#pragma unroll
      for (int ni = 0; ni < C::NI; ++ni)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          if (n + ni * 8 + e >= p.N) continue;
          O* const o = row + ni * 8 + e;
          float v = alpha * acc[mi][ni][2 * h + e];
          if (beta != 0.f) v += beta * T::load(o);
          *o = T::from(v);
        }
    }
}

// ------------------------------------------------------------------ the tensor-core kernel

template <Mode MODE, class C, bool TA, bool TB, bool VEC>
__global__ void __launch_bounds__(C::THREADS, C::MIN_BLOCKS) gemm_tc_kernel(const Params p) {
  using S = typename ModeTraits<MODE>::S;
  using L = Layout<C, S, TA, TB>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  S* const smem = reinterpret_cast<S*>(smem_raw);
  const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31;
  const int wm0 = (warp % C::WM) * C::WTM, wn0 = (warp / C::WM) * C::WTN;
  const int64_t tiles = p.tilesM * p.tilesN;
  const int64_t numK = (p.K + L::BK - 1) / L::BK;

  for (int64_t b = blockIdx.z; b < p.batch; b += gridDim.z) {
    const S* const gA = static_cast<const S*>(p.A) + b * p.sA;
    const S* const gB = static_cast<const S*>(p.B) + b * p.sB;
    for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
      int64_t tm, tn;
      tile_coords(tile, p.tilesM, p.tilesN, tm, tn);
      const int64_t m0 = tm * C::BM, n0 = tn * C::BN;
      TileLoader<S, L::A_ROWS, L::A_COLS, L::A_LD, C::THREADS, !TA, VEC> ldA;
      TileLoader<S, L::B_ROWS, L::B_COLS, L::B_LD, C::THREADS, TB, VEC> ldB;
      ldA.init(gA, p.lda, m0, p.M);
      ldB.init(gB, p.ldb, n0, p.N);
      auto load = [&](int stage, int64_t kt) {
        S* const As = smem + stage * L::STAGE_ELEMS;
        const int64_t left = p.K - kt * L::BK;
        const int kLeft = left < L::BK ? int(left) : L::BK;
        ldA.load(As, kLeft);
        ldB.load(As + L::A_ELEMS, kLeft);
      };

      float acc[C::MI][C::NI][4];
#pragma unroll
      for (int mi = 0; mi < C::MI; ++mi)
#pragma unroll
        for (int ni = 0; ni < C::NI; ++ni)
#pragma unroll
          for (int q = 0; q < 4; ++q) acc[mi][ni][q] = 0.f;

      // Software pipeline (CUTLASS's multistage main loop): STAGES-1 tiles in flight from global
      // memory, and the fragments of the next k-step loaded from shared memory while the tensor
      // cores work on the current one. The last k-step of a tile first waits for the next tile
      // (and, by the barrier, for every warp to be done with the tile the next copy overwrites).
      constexpr int KSTEPS = L::BK / Frags<MODE, C>::KSTEP;
#pragma unroll
      for (int s = 0; s < C::STAGES - 1; ++s) {
        if (s < numK) load(s, s);
        cp_async_commit();
      }
      if (numK > 0) {
        Frags<MODE, C> frag[2];
        int readStage = 0, writeStage = C::STAGES - 1;
        cp_async_wait<C::STAGES - 2>();
        __syncthreads();
        const S* As = smem;
        load_frags<MODE, C, TA, TB>(frag[0], As, As + L::A_ELEMS, 0, wm0, wn0, lane);
        for (int64_t kt = 0; kt < numK; ++kt) {
#pragma unroll
          for (int ks = 0; ks < KSTEPS; ++ks) {
            if (ks == KSTEPS - 1) {
              cp_async_wait<C::STAGES - 2>();  // tile kt + 1 has landed (this thread's copies) ...
              __syncthreads();                 // ... everyone's, and nobody reads tile kt any more
              readStage = readStage + 1 == C::STAGES ? 0 : readStage + 1;
              As = smem + readStage * L::STAGE_ELEMS;
            }
            const int next = ks + 1 == KSTEPS ? 0 : ks + 1;
            load_frags<MODE, C, TA, TB>(frag[(ks + 1) & 1], As, As + L::A_ELEMS, next * Frags<MODE, C>::KSTEP, wm0, wn0,
                                        lane);
            if (ks == 0) {
              if (kt + C::STAGES - 1 < numK) load(writeStage, kt + C::STAGES - 1);
              cp_async_commit();
              writeStage = writeStage + 1 == C::STAGES ? 0 : writeStage + 1;
            }
            mma_frags<MODE, C>(acc, frag[ks & 1]);
          }
        }
      }
      cp_async_wait<0>();
      __syncthreads();  // the buffers are free for the next tile

      // This lane's first accumulator is row g, column 2t of the warp's sub-tile.
      const int64_t m = m0 + wm0 + (lane >> 2), n = n0 + wn0 + 2 * (lane & 3);
      if constexpr (MODE == Mode::TF32 || MODE == Mode::TF32x3) {
        store_tile<float, C>(p, b, m, n, acc, p.pairs);
      } else {
        if (p.outType == int(GemmType::F32)) store_tile<float, C>(p, b, m, n, acc, p.pairs);
        else if (MODE == Mode::BF16) store_tile<__nv_bfloat16, C>(p, b, m, n, acc, p.pairs);
        else store_tile<__half, C>(p, b, m, n, acc, p.pairs);
      }
    }
  }
}

// ------------------------------------------------------------------ float64

constexpr int kD_BM = 64, kD_BN = 64, kD_BK = 16, kD_THREADS = 256;

// 64 x 64 tiles, 16-deep K slices in shared memory (stored k-major), 4 x 4 outputs per thread.
__global__ void __launch_bounds__(kD_THREADS) gemm_f64_kernel(const Params p) {
  __shared__ double As[kD_BK][kD_BM + 1];
  __shared__ double Bs[kD_BK][kD_BN + 1];
  const int tx = int(threadIdx.x) % 16, ty = int(threadIdx.x) / 16;
  const int64_t tiles = p.tilesM * p.tilesN;
  const double alpha = p.alpha, beta = p.beta;
  for (int64_t b = blockIdx.z; b < p.batch; b += gridDim.z) {
    const double* const A = static_cast<const double*>(p.A) + b * p.sA;
    const double* const B = static_cast<const double*>(p.B) + b * p.sB;
    double* const Cm = static_cast<double*>(p.C) + b * p.sC;
    for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
      int64_t tm, tn;
      tile_coords(tile, p.tilesM, p.tilesN, tm, tn);
      const int64_t m0 = tm * kD_BM, n0 = tn * kD_BN;
      double acc[4][4] = {};
      for (int64_t k0 = 0; k0 < p.K; k0 += kD_BK) {
#pragma unroll
        for (int i = 0; i < kD_BM * kD_BK / kD_THREADS; ++i) {
          // Consecutive threads read consecutive addresses of the stored layout.
          const int idx = int(threadIdx.x) + i * kD_THREADS;
          const int m = p.transA ? idx % kD_BM : idx / kD_BK, k = p.transA ? idx / kD_BM : idx % kD_BK;
          const int64_t gm = m0 + m, gk = k0 + k;
          As[k][m] = gm < p.M && gk < p.K ? (p.transA ? A[gk * p.lda + gm] : A[gm * p.lda + gk]) : 0.0;
        }
#pragma unroll
        for (int i = 0; i < kD_BN * kD_BK / kD_THREADS; ++i) {
          const int idx = int(threadIdx.x) + i * kD_THREADS;
          const int n = p.transB ? idx / kD_BK : idx % kD_BN, k = p.transB ? idx % kD_BK : idx / kD_BN;
          const int64_t gn = n0 + n, gk = k0 + k;
          Bs[k][n] = gn < p.N && gk < p.K ? (p.transB ? B[gn * p.ldb + gk] : B[gk * p.ldb + gn]) : 0.0;
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < kD_BK; ++k) {
          double a[4], bv[4];
#pragma unroll
          for (int i = 0; i < 4; ++i) a[i] = As[k][ty + 16 * i];
#pragma unroll
          for (int j = 0; j < 4; ++j) bv[j] = Bs[k][tx + 16 * j];
#pragma unroll
          for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j) acc[i][j] = fma(a[i], bv[j], acc[i][j]);
        }
        __syncthreads();
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int64_t r = m0 + ty + 16 * i, c = n0 + tx + 16 * j;
          if (r >= p.M || c >= p.N) continue;
          double* const o = Cm + r * p.ldc + c;
          *o = beta != 0.0 ? alpha * acc[i][j] + beta * *o : alpha * acc[i][j];
        }
    }
  }
}

// ------------------------------------------------------------------ host side

using gemm_detail::error_string;  // gemm_common.cuh
using gemm_detail::device_info;
using gemm_detail::DeviceInfo;
using gemm_detail::launched;

unsigned grid_x(int64_t tiles) { return static_cast<unsigned>(tiles < 0x7fffffffLL ? tiles : 0x7fffffffLL); }
unsigned grid_z(int64_t batch) { return static_cast<unsigned>(batch < 65535 ? batch : 65535); }

template <Mode MODE, class C, bool TA, bool TB, bool VEC>
std::string launch_tc(Params p) {
  using L = Layout<C, typename ModeTraits<MODE>::S, TA, TB>;
  auto kernel = gemm_tc_kernel<MODE, C, TA, TB, VEC>;
  static std::atomic<bool> ready{false};  // the dynamic shared-memory opt-in, once per kernel
  if (!ready.load(std::memory_order_acquire)) {
    if (L::SMEM > size_t(device_info().smemOptin))
      return "matmul: the kernel needs " + std::to_string(L::SMEM) + " bytes of shared memory per block, the device has " +
             std::to_string(device_info().smemOptin);
    const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(L::SMEM));
    if (e != cudaSuccess) {
      cudaGetLastError();
      return error_string(e);
    }
    ready.store(true, std::memory_order_release);
  }
  p.tilesM = (p.M + C::BM - 1) / C::BM;
  p.tilesN = (p.N + C::BN - 1) / C::BN;
  kernel<<<dim3(grid_x(p.tilesM * p.tilesN), 1, grid_z(p.batch)), C::THREADS, L::SMEM>>>(p);
  return launched();
}

template <Mode MODE, class C, bool VEC>
std::string launch_layout(const Params& p) {
  if (!p.transA && !p.transB) return launch_tc<MODE, C, false, false, VEC>(p);
  if (!p.transA && p.transB) return launch_tc<MODE, C, false, true, VEC>(p);
  if (p.transA && !p.transB) return launch_tc<MODE, C, true, false, VEC>(p);
  return launch_tc<MODE, C, true, true, VEC>(p);
}

// Large tiles when they alone fill the GPU, small tiles otherwise; operands that cp.async cannot
// copy (unaligned base, leading dim or batch stride) take the small tiles with element loads.
template <Mode MODE, class Big, class Small>
std::string launch_mode(const Params& p) {
  if (!p.vecA || !p.vecB) return launch_layout<MODE, Small, false>(p);
  const int64_t bigTiles = ((p.M + Big::BM - 1) / Big::BM) * ((p.N + Big::BN - 1) / Big::BN) * p.batch;
  if (bigTiles >= device_info().sms) return launch_layout<MODE, Big, true>(p);
  return launch_layout<MODE, Small, true>(p);
}

// 16-bit inputs: 128 x 256 tiles of 8 warps (64 x 64 each), 32-deep K, 4 stages (120 KiB).
using HalfBig = Cfg<128, 256, 2, 4, 64, 4, 1>;
using HalfSmall = Cfg<64, 64, 2, 2, 64, 4, 2>;
// float32: 3xTF32 on 128 x 128 tiles of 8 warps (64 x 32 each), 16-deep K, 4 stages (80 KiB);
// plain TF32 on 128 x 256 tiles (64 x 64 per warp), 3 stages (81 KiB). 3xTF32 needs the
// registers of its split operands: 128 x 256 spills there.
using FloatBig = Cfg<128, 128, 2, 4, 64, 4, 1>;
using Tf32Big = Cfg<128, 256, 2, 4, 64, 3, 1>;
using FloatSmall = Cfg<64, 64, 2, 2, 64, 4, 2>;

size_t elem_size(GemmType t) { return t == GemmType::F64 ? 8 : t == GemmType::F32 ? 4 : 2; }

// cp.async moves 16 bytes: the operand's base, leading dim and batch stride must all keep them aligned.
bool vec_ok(const void* ptr, int64_t ld, int64_t stride, int64_t batch, size_t elem) {
  const int64_t v = int64_t(16 / elem);
  return (reinterpret_cast<uintptr_t>(ptr) & 15) == 0 && ld % v == 0 && (batch <= 1 || stride % v == 0);
}

// The kernels' parameters for a call (tile counts are set at launch, per configuration).
Params make_params(GemmType ab, GemmType c, const GemmArgs& a) {
  Params p{};
  p.batch = a.batch;
  p.M = a.M;
  p.N = a.N;
  p.K = a.K;
  p.A = a.A;
  p.lda = a.lda;
  p.sA = a.strideA;
  p.B = a.B;
  p.ldb = a.ldb;
  p.sB = a.strideB;
  p.C = a.C;
  p.ldc = a.ldc;
  p.sC = a.strideC;
  p.alpha = a.alpha;
  p.beta = a.beta;
  p.outType = int(c);
  p.transA = a.transA;
  p.transB = a.transB;
  p.vecA = vec_ok(a.A, a.lda, a.strideA, a.batch, elem_size(ab));
  p.vecB = vec_ok(a.B, a.ldb, a.strideB, a.batch, elem_size(ab));
  const size_t pair = 2 * elem_size(c);
  p.pairs = (reinterpret_cast<uintptr_t>(a.C) % pair) == 0 && a.ldc % 2 == 0 && (a.batch <= 1 || a.strideC % 2 == 0);
  return p;
}

// The tensor-core kernels for one call (float64 is launched by gemm() itself).
std::string launch_tc_call(GemmType ab, MatmulPrecision precision, const Params& p) {
  switch (ab) {
    case GemmType::BF16: return launch_mode<Mode::BF16, HalfBig, HalfSmall>(p);
    case GemmType::F16: return launch_mode<Mode::F16, HalfBig, HalfSmall>(p);
    default:
      return precision == MatmulPrecision::High ? launch_mode<Mode::TF32, Tf32Big, FloatSmall>(p)
                                                : launch_mode<Mode::TF32x3, FloatBig, FloatSmall>(p);
  }
}

// ------------------------------------------------------------------ split-K
// A product with few output tiles and a long K (the weight gradients of a linear layer: [in, out]
// summed over batch x positions rows) leaves most SMs idle, each block walking all of K. Split-K
// cuts K into S slices, runs them as a batch of S products into a float32 workspace [S, M, N]
// (the batch stride of A and B is one slice), then one kernel sums the slices in a fixed order
// (deterministic) and applies alpha, beta and the output type. The workspace comes from the
// caching allocator. KILN_GEMM_SPLITK=0 turns it off.

constexpr int64_t kSplitMinK = 512;       // below this the extra pass costs more than it saves
constexpr int64_t kSplitMaxSlices = 16;
constexpr int64_t kSplitMinSliceK = 256;  // each slice keeps the pipeline busy for a while
constexpr int64_t kSplitMaxFloats = int64_t(16) << 20;  // workspace cap: 64 MiB

bool split_k_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("KILN_GEMM_SPLITK");
    return !(e && std::strcmp(e, "0") == 0);
  }();
  return on;
}

// Slices for a single (batch 1) product: enough blocks of the small tiles to fill the SMs, 1 = no split.
int64_t split_slices(const Params& p, int sms) {
  if (p.batch != 1 || p.K < kSplitMinK || !split_k_enabled()) return 1;
  static_assert(HalfSmall::BM == FloatSmall::BM && HalfSmall::BN == FloatSmall::BN, "one small-tile size for every mode");
  const int64_t tiles = ((p.M + FloatSmall::BM - 1) / FloatSmall::BM) * ((p.N + FloatSmall::BN - 1) / FloatSmall::BN);
  if (tiles * 2 > sms) return 1;
  int64_t S = std::min<int64_t>({sms / tiles, p.K / kSplitMinSliceK, kSplitMaxSlices, kSplitMaxFloats / (p.M * p.N)});
  return S >= 2 ? S : 1;
}

template <class O>
__global__ void split_k_reduce(const float* __restrict__ ws, int64_t slices, int64_t M, int64_t N, O* C, int64_t ldc, float alpha,
                               float beta) {
  using T = Out<O>;
  const int64_t MN = M * N;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < MN; i += int64_t(gridDim.x) * blockDim.x) {
    float sum = 0.f;
    for (int64_t s = 0; s < slices; ++s) sum += ws[s * MN + i];
    const int64_t r = i / N;
    O* const o = C + r * ldc + (i - r * N);
    float v = alpha * sum;
    if (beta != 0.f) v += beta * T::load(o);
    *o = T::from(v);
  }
}

std::string gemm_split_k(GemmType ab, GemmType c, MatmulPrecision precision, const Params& p, int64_t S) {
  const size_t elem = elem_size(ab);
  // Slice depth: a multiple of 32 (the deepest K step of a tile); a divisor of K when one is close,
  // so one batched launch covers every slice, else the last, shorter slice is a launch of its own.
  int64_t Ks = ((p.K + S - 1) / S + 31) / 32 * 32;
  for (int64_t s = S; s >= std::max<int64_t>(2, S / 2); --s)
    if (p.K % s == 0 && (p.K / s) % 32 == 0) {
      Ks = p.K / s;
      break;
    }
  S = (p.K + Ks - 1) / Ks;
  const int64_t lastK = p.K - (S - 1) * Ks;
  core::Scratch scratch;
  std::string err = scratch.get(size_t(S) * size_t(p.M) * size_t(p.N) * sizeof(float));
  if (!err.empty()) return "matmul: split-K workspace: " + err;
  float* const ws = scratch.as<float>();
  Params q = p;
  q.K = Ks;
  q.sA = p.transA ? Ks * p.lda : Ks;  // one slice further along K
  q.sB = p.transB ? Ks : Ks * p.ldb;
  q.C = ws;
  q.ldc = p.N;
  q.sC = p.M * p.N;
  q.alpha = 1.0;
  q.beta = 0.0;
  q.outType = int(GemmType::F32);
  q.pairs = p.N % 2 == 0;  // the workspace comes from cudaMalloc: 256-byte aligned
  q.batch = lastK == Ks ? S : S - 1;
  q.vecA = vec_ok(q.A, q.lda, q.sA, q.batch, elem);
  q.vecB = vec_ok(q.B, q.ldb, q.sB, q.batch, elem);
  err = launch_tc_call(ab, precision, q);
  if (!err.empty()) return err;
  if (lastK != Ks) {
    Params r = q;
    r.batch = 1;
    r.K = lastK;
    r.A = static_cast<const char*>(p.A) + size_t((S - 1) * q.sA) * elem;
    r.B = static_cast<const char*>(p.B) + size_t((S - 1) * q.sB) * elem;
    r.C = ws + (S - 1) * p.M * p.N;
    r.sA = r.sB = r.sC = 0;
    r.vecA = vec_ok(r.A, r.lda, 0, 1, elem);
    r.vecB = vec_ok(r.B, r.ldb, 0, 1, elem);
    err = launch_tc_call(ab, precision, r);
    if (!err.empty()) return err;
  }
  const int64_t MN = p.M * p.N;
  const unsigned blocks = unsigned(std::min<int64_t>((MN + 255) / 256, int64_t(device_info().sms) * 8));
  const float alpha = float(p.alpha), beta = float(p.beta);
  if (c == GemmType::BF16)
    split_k_reduce<__nv_bfloat16><<<blocks, 256>>>(ws, S, p.M, p.N, static_cast<__nv_bfloat16*>(p.C), p.ldc, alpha, beta);
  else if (c == GemmType::F16)
    split_k_reduce<__half><<<blocks, 256>>>(ws, S, p.M, p.N, static_cast<__half*>(p.C), p.ldc, alpha, beta);
  else
    split_k_reduce<float><<<blocks, 256>>>(ws, S, p.M, p.N, static_cast<float*>(p.C), p.ldc, alpha, beta);
  return launched();
}

}  // namespace

std::string gemm(GemmType ab, GemmType c, MatmulPrecision precision, const GemmArgs& a) {
  const bool half = ab == GemmType::F16 || ab == GemmType::BF16;
  if (!(c == ab || (half && c == GemmType::F32)) || !(ab == GemmType::F32 || ab == GemmType::F64 || half))
    return "matmul: unsupported element types (A/B code " + std::to_string(int(ab)) + ", C code " + std::to_string(int(c)) + ")";
  if (a.batch <= 0 || a.M <= 0 || a.N <= 0) return "";
  const DeviceInfo& dev = device_info();
  if (!dev.error.empty()) return dev.error;
  Params p = make_params(ab, c, a);
  if (ab == GemmType::F64) {
    p.tilesM = (p.M + kD_BM - 1) / kD_BM;
    p.tilesN = (p.N + kD_BN - 1) / kD_BN;
    gemm_f64_kernel<<<dim3(grid_x(p.tilesM * p.tilesN), 1, grid_z(p.batch)), kD_THREADS>>>(p);
    return launched();
  }
  if (dev.major < 8) return "matmul: the CUDA tensor-core kernels need compute capability 8.0 or newer";
#ifdef KILN_GEMM_SM90
  const Sm90Choice sm90 = half ? gemm_sm90_choice() : Sm90Choice::Never;
  if (sm90 == Sm90Choice::Always || (sm90 == Sm90Choice::Large && gemm_sm90_pays_off(a))) {
    bool handled = false;  // false: a layout or alignment the Hopper kernel does not take
    std::string err = gemm_sm90(ab, c, a, handled);
    if (handled) return err;
  }
#endif
  const int64_t slices = split_slices(p, dev.sms);
  if (slices > 1) return gemm_split_k(ab, c, precision, p, slices);
  return launch_tc_call(ab, precision, p);
}

}  // namespace cuda
}  // namespace kiln
