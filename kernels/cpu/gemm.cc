// kiln's GEMM: C[b] = alpha * op(A[b]) * op(B[b]) + beta * C[b] (semantics in kernels.h).
// GotoBLAS/BLIS structure: for each nc-column block and kc-deep slice, op(B) is packed once into
// nr-wide micro-panels shared by all threads (kept in L2); threads take mr-row tiles of op(A) and
// sweep each over the B block with a register-tile micro-kernel (gemm_microkernels.cc), whose
// A micro-panel stays in L1. Packing reads any trans combination, so transposes cost no extra copy.
// Plans by shape (gemm_one): a few rows stream B (gemm_gemv.cc); a long K against a small C is
// split over K; a row-major A and a small B are read in place; small batched products run one
// matrix per thread.
#include "gemm_microkernels.h"
#include "kernels.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <memory>
#include <new>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace kiln {
namespace cpu {
namespace {
using gemm_detail::KernelSet;

// Per-thread 64-byte-aligned scratch, grown on demand and reused across calls.
template <class T>
T* scratch(int slot, int64_t count) {
  struct Buffer {
    void* p = nullptr;
    size_t bytes = 0;
    ~Buffer() { std::free(p); }
  };
  static thread_local Buffer buffers[3];  // 0: packed B, 1: packed A, 2: partial C
  Buffer& b = buffers[slot];
  size_t need = (static_cast<size_t>(count) * sizeof(T) + 63) / 64 * 64;
  if (need > b.bytes) {
    std::free(b.p);
    b.p = std::aligned_alloc(64, need);
    b.bytes = b.p ? need : 0;
    if (!b.p) throw std::bad_alloc();
  }
  return static_cast<T*>(b.p);
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Splits n into ceil(n / max_block) nearly equal blocks, each a multiple of `align`.
inline int64_t balanced_block(int64_t n, int64_t max_block, int64_t align) {
  int64_t blocks = ceil_div(n, max_block);
  return std::min(max_block, ceil_div(ceil_div(n, blocks), align) * align);
}

inline void barrier() {
#ifdef _OPENMP
#pragma omp barrier
#endif
}

// An exception must not leave an OpenMP region (that aborts the process): the first one thrown
// inside (only scratch allocation can throw) is kept and rethrown after the region.
struct RegionError {
  std::atomic<bool> set{false};
  std::exception_ptr error;
  void capture() {
    bool expected = false;
    if (set.compare_exchange_strong(expected, true)) error = std::current_exception();
  }
  void rethrow() {
    if (set.load()) std::rethrow_exception(error);
  }
};

// One matrix of the batch, with its blocking plan.
template <class T>
struct Plan {
  const KernelSet<T>* ks;
  bool transA, transB;
  int64_t M, N, K;
  T alpha;
  const T* A;
  int64_t lda;
  const T* B;
  int64_t ldb;
  T beta;
  T* C;
  int64_t ldc;
  bool packA, packB;  // false: the micro-kernel reads that operand in place
  bool splitM;        // threads split rows (private A packs) or columns (shared A packs)
  int64_t mc, kc, nc;

  const T* a_at(int64_t i, int64_t k) const { return transA ? A + k * lda + i : A + i * lda + k; }
};

// Packs op(A)[i0 : i0+m, k0 : k0+kc] as mr-row micro-panels, dst[p*mr*kc + k*mr + r], rows past m
// zeroed; only micro-panels p = first, first+step, ... (threads share the work).
template <class T>
void pack_a(const Plan<T>& g, int64_t i0, int64_t m, int64_t k0, int64_t kc, int64_t first,
            int64_t step, T* dst) {
  const int MR = g.ks->mr;
  for (int64_t p = first; p < ceil_div(m, MR); p += step) {
    T* d = dst + p * MR * kc;
    const int64_t i = i0 + p * MR;
    const int rows = static_cast<int>(std::min<int64_t>(MR, m - p * MR));
    if (g.transA) {  // rows of a micro-panel are contiguous in A
      for (int64_t k = 0; k < kc; ++k) {
        const T* s = g.A + (k0 + k) * g.lda + i;
        for (int r = 0; r < rows; ++r) d[k * MR + r] = s[r];
        for (int r = rows; r < MR; ++r) d[k * MR + r] = T(0);
      }
    } else {
      for (int r = 0; r < rows; ++r) {
        const T* s = g.A + (i + r) * g.lda + k0;
        for (int64_t k = 0; k < kc; ++k) d[k * MR + r] = s[k];
      }
      for (int r = rows; r < MR; ++r)
        for (int64_t k = 0; k < kc; ++k) d[k * MR + r] = T(0);
    }
  }
}

// Packs op(B)[k0 : k0+kc, j0 : j0+n] as nr-column micro-panels, dst[q*nr*kc + k*nr + c], columns
// past n zeroed; only micro-panels q = first, first+step, ...
template <class T>
void pack_b(const Plan<T>& g, int64_t k0, int64_t kc, int64_t j0, int64_t n, int64_t first,
            int64_t step, T* dst) {
  const int NR = g.ks->nr;
  for (int64_t q = first; q < ceil_div(n, NR); q += step) {
    T* d = dst + q * NR * kc;
    const int64_t j = j0 + q * NR;
    const int cols = static_cast<int>(std::min<int64_t>(NR, n - q * NR));
    if (!g.transB) {  // columns of a micro-panel are contiguous in B
      for (int64_t k = 0; k < kc; ++k) {
        const T* s = g.B + (k0 + k) * g.ldb + j;
        for (int c = 0; c < cols; ++c) d[k * NR + c] = s[c];
        for (int c = cols; c < NR; ++c) d[k * NR + c] = T(0);
      }
    } else if (g.ks->pack_bt) {
      g.ks->pack_bt(g.B + j * g.ldb + k0, g.ldb, kc, cols, d);
    } else {  // a transpose: gather each k row of the panel from `cols` rows of B
      const T* s = g.B + j * g.ldb + k0;
      for (int64_t k = 0; k < kc; ++k) {
        for (int c = 0; c < cols; ++c) d[k * NR + c] = s[c * g.ldb + k];
        for (int c = cols; c < NR; ++c) d[k * NR + c] = T(0);
      }
    }
  }
}

// C[ic : ic+m, jc + q0*nr : jc + q1*nr (clipped to nc)] over one kc slice.
template <class T>
void macro_tile(const Plan<T>& g, int64_t ic, int64_t m, int64_t pc, int64_t kc, int64_t jc,
                int64_t nc, int64_t q0, int64_t q1, const T* Ap, const T* Bp, T beta) {
  const KernelSet<T>& ks = *g.ks;
  const int MR = ks.mr, NR = ks.nr;
  const int64_t rsa = g.transA ? 1 : g.lda, csa = g.transA ? g.lda : 1;
  // The A micro-panel (mr x kc) stays in L1 while the loop below streams B panels from L2.
  for (int64_t ir = 0; ir < m; ir += MR) {
    const int mr = static_cast<int>(std::min<int64_t>(MR, m - ir));
    T* crow = g.C + (ic + ir) * g.ldc + jc;
    for (int64_t q = q0; q < q1; ++q) {
      const int nr = static_cast<int>(std::min<int64_t>(NR, nc - q * NR));
      const T* b = g.packB ? Bp + q * NR * kc : g.B + pc * g.ldb + jc + q * NR;
      const int64_t ldb = g.packB ? NR : g.ldb;
      if (g.packA) {
        ks.packed(kc, Ap + ir * kc, b, ldb, crow + q * NR, g.ldc, g.alpha, beta, mr, nr);
      } else {
        ks.strided[mr](kc, g.a_at(ic + ir, pc), rsa, csa, b, ldb, crow + q * NR, g.ldc, g.alpha,
                       beta, nr);
      }
    }
  }
}

// The whole product as seen by thread `tid` of `nth` (nth == 1: no parallel region around it).
// Ap is this thread's A buffer (row split) or the shared one (column split).
// Row split: the mc-row blocks of each (jc, pc) slice are handed out through next_block[slice], so
// a thread that the OS preempts (the machine is shared) does not hold up the others.
template <class T>
void run_blocked(const Plan<T>& g, T* Bp, T* Ap, std::atomic<int64_t>* next_block, int tid,
                 int nth) {
  const int NR = g.ks->nr;
  const int64_t row_blocks = ceil_div(g.M, g.mc);
  int64_t slice = 0;
  for (int64_t jc = 0; jc < g.N; jc += g.nc) {
    const int64_t nc = std::min(g.nc, g.N - jc), panels = ceil_div(nc, NR);
    const int64_t q0 = g.splitM ? 0 : panels * tid / nth;
    const int64_t q1 = g.splitM ? panels : panels * (tid + 1) / nth;
    for (int64_t pc = 0; pc < g.K; pc += g.kc, ++slice) {
      const int64_t kc = std::min(g.kc, g.K - pc);
      const T beta = pc == 0 ? g.beta : T(1);  // later slices accumulate into C
      if (g.packB) {
        pack_b(g, pc, kc, jc, nc, tid, nth, Bp);
        if (nth > 1) barrier();
      }
      if (g.splitM) {
        auto next = [&](int64_t b) {
          return nth > 1 ? next_block[slice].fetch_add(1, std::memory_order_relaxed) : b + 1;
        };
        for (int64_t b = next(-1); b < row_blocks; b = next(b)) {
          const int64_t ic = b * g.mc, mc = std::min(g.mc, g.M - ic);
          if (g.packA) pack_a(g, ic, mc, pc, kc, 0, 1, Ap);
          macro_tile(g, ic, mc, pc, kc, jc, nc, q0, q1, Ap, Bp, beta);
        }
      } else {
        for (int64_t ic = 0; ic < g.M; ic += g.mc) {
          const int64_t mc = std::min(g.mc, g.M - ic);
          if (g.packA) {
            pack_a(g, ic, mc, pc, kc, tid, nth, Ap);
            if (nth > 1) barrier();
          }
          macro_tile(g, ic, mc, pc, kc, jc, nc, q0, q1, Ap, Bp, beta);
          if (g.packA && nth > 1) barrier();  // before the shared A block is overwritten
        }
      }
      // Before the shared B block is overwritten, and before the next slice updates C rows that
      // another thread may still be accumulating.
      if (nth > 1 && (g.packB || (g.splitM && pc + g.kc < g.K))) barrier();
    }
  }
}

// Below this many flops a matrix runs on one thread (a parallel region costs a few microseconds).
constexpr double kParallelFlops = 4e6;
// With a transposed B, up to this many rows stream B once per 4 rows rather than transposing it
// into packed panels that only one or two row tiles would use (measured 1.5-2.5x faster).
constexpr int64_t kGemvRowsTransB = 16;

template <class T>
void gemm_one(const KernelSet<T>& ks, bool transA, bool transB, int64_t M, int64_t N, int64_t K,
              T alpha, const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C,
              int64_t ldc, int nt);

// Long K against a small C (weight gradients: K is batch x tokens): each thread multiplies its
// own K range on its own, with no barrier and nothing packed twice, then the partial products
// are summed into C.
template <class T>
void gemm_split_k(const KernelSet<T>& ks, bool transA, bool transB, int64_t M, int64_t N,
                  int64_t K, T alpha, const T* A, int64_t lda, const T* B, int64_t ldb, T beta,
                  T* C, int64_t ldc, int nt) {
#ifdef _OPENMP
  std::vector<T*> parts(nt, nullptr);
  RegionError err;
#pragma omp parallel num_threads(nt)
  {
    const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
    const int64_t k0 = K * tid / nth, k1 = K * (tid + 1) / nth;
    const T* a = transA ? A + k0 * lda : A + k0;
    const T* b = transB ? B + k0 : B + k0 * ldb;
    try {
      if (tid == 0) {  // the first range goes straight into C, with beta
        gemm_one(ks, transA, transB, M, N, k1 - k0, alpha, a, lda, b, ldb, beta, C, ldc, 1);
      } else {
        parts[tid] = scratch<T>(2, M * N);
        gemm_one(ks, transA, transB, M, N, k1 - k0, alpha, a, lda, b, ldb, T(0), parts[tid], N, 1);
      }
    } catch (...) {
      err.capture();
    }
#pragma omp barrier
    if (!err.set.load())
      for (int64_t i = M * tid / nth; i < M * (tid + 1) / nth; ++i) {
      T* c = C + i * ldc;
      for (int t = 1; t < nth; ++t) {
        const T* p = parts[t] + i * N;
        for (int64_t j = 0; j < N; ++j) c[j] += p[j];
      }
    }
  }
  err.rethrow();
#else
  (void)nt;
  gemm_one(ks, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, 1);
#endif
}

template <class T>
void gemm_one(const KernelSet<T>& ks, bool transA, bool transB, int64_t M, int64_t N, int64_t K,
              T alpha, const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C,
              int64_t ldc, int nt) {
  if (M <= gemm_detail::kMaxGemvRows || (transB && M <= kGemvRowsTransB)) {
    gemm_detail::gemv_few_rows(ks, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                               nt, scratch<T>(1, M * K));
    return;
  }
  if (nt > 1 && 2.0 * M * N * K >= kParallelFlops && K >= 2 * std::max(M, N) &&
      M * N <= (int64_t(1) << 22)) {
    gemm_split_k(ks, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nt);
    return;
  }
  Plan<T> g{&ks, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
            true, true, true, 0, 0, 0};
  const int MR = ks.mr, NR = ks.nr;
  // Packing B pays when its panels are reused by several row tiles and B does not sit in L1
  // anyway (then in-place rows cost TLB misses and defeat the prefetchers), or to transpose it.
  // A row-major A is read in place: its mr rows stream well and the mr x kc micro-panel stays in
  // L1 across the column panels, so packing it measured slower. A transposed A is packed (a
  // contiguous copy) when more than one column panel reuses it.
  g.packB = transB || (M > 2 * MR && K * N * int64_t(sizeof(T)) > 48 * 1024);
  g.packA = transA && N > NR;
  int64_t mc = ks.mc, kc = ks.kc, nc = ks.nc;
#ifdef KILN_GEMM_TUNING  // experiments only: KILN_GEMM_{PACKA,PACKB,MC,KC,NC} override the plan
  auto env = [](const char* name, int64_t dflt) {
    const char* v = std::getenv(name);
    return v ? std::atoll(v) : dflt;
  };
  g.packA = env("KILN_GEMM_PACKA", g.packA);
  if (!transB) g.packB = env("KILN_GEMM_PACKB", g.packB);
  mc = env("KILN_GEMM_MC", mc), kc = env("KILN_GEMM_KC", kc), nc = env("KILN_GEMM_NC", nc);
#endif
  if (2.0 * M * N * K < kParallelFlops) nt = 1;
  g.kc = balanced_block(K, kc, 1);
  g.nc = balanced_block(N, nc, NR);
  g.mc = balanced_block(M, mc, MR);
  if (nt > 1) {
    // Split the dimension whose tiles divide more evenly among the threads (rows on a tie).
    const int64_t tilesM = ceil_div(M, MR), tilesN = ceil_div(std::min(N, g.nc), NR);
    const double effM = double(tilesM) / (ceil_div(tilesM, nt) * nt);
    const double effN = double(tilesN) / (ceil_div(tilesN, nt) * nt);
    g.splitM = effM >= effN;
    if (!g.splitM && g.packA) g.mc = balanced_block(M, 4 * ks.mc, MR);  // fewer barriers
  }
  T* Bp = g.packB ? scratch<T>(0, g.kc * ceil_div(g.nc, NR) * NR) : nullptr;
  T* Ap_shared = g.packA && (nt <= 1 || !g.splitM) ? scratch<T>(1, g.mc * g.kc) : nullptr;
  if (nt <= 1) {
    run_blocked(g, Bp, Ap_shared, nullptr, 0, 1);
    return;
  }
#ifdef _OPENMP
  const int64_t slices = ceil_div(N, g.nc) * ceil_div(K, g.kc);
  std::unique_ptr<std::atomic<int64_t>[]> next_block(new std::atomic<int64_t>[slices]);
  for (int64_t i = 0; i < slices; ++i) next_block[i].store(0, std::memory_order_relaxed);
  RegionError err;
#pragma omp parallel num_threads(nt)
  {
    T* Ap = Ap_shared;
    if (g.packA && g.splitM) {
      try {
        Ap = scratch<T>(1, g.mc * g.kc);
      } catch (...) {
        err.capture();
      }
    }
#pragma omp barrier
    if (!err.set.load())  // every thread takes the same branch, so the barriers inside match
      run_blocked(g, Bp, Ap, next_block.get(), omp_get_thread_num(), omp_get_num_threads());
  }
  err.rethrow();
#else
  run_blocked(g, Bp, Ap_shared, nullptr, 0, 1);
#endif
}

// C = beta * C (alpha == 0 or K == 0: A and B are not read).
template <class T>
void scale_c(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    T* c = C + i * ldc;
    if (beta == T(0)) std::fill(c, c + N, T(0));
    else for (int64_t j = 0; j < N; ++j) c[j] *= beta;
  }
}

template <class T>
void gemm_batched(const KernelSet<T>& ks, int64_t batch, bool transA, bool transB, int64_t M,
                  int64_t N, int64_t K, T alpha, const T* A, int64_t lda, int64_t strideA,
                  const T* B, int64_t ldb, int64_t strideB, T beta, T* C, int64_t ldc,
                  int64_t strideC) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == T(0)) {
    for (int64_t b = 0; b < batch; ++b) scale_c(M, N, beta, C + b * strideC, ldc);
    return;
  }
  const int nt = std::max(1, num_threads());
  const double flops = 2.0 * M * N * K;
  // One matrix per thread when the matrices are small or split evenly; never when every batch
  // entry writes the same C (strideC == 0), whose updates must stay in order.
  const bool perMatrix = nt > 1 && batch > 1 && strideC != 0 &&
                         (flops < kParallelFlops || batch % nt == 0 || batch >= 4 * nt);
  if (perMatrix) {
    RegionError err;
#ifdef _OPENMP
    // Dynamic chunks: a thread that the OS preempts does not hold up the others.
    const int64_t chunk = std::max<int64_t>(1, batch / (8 * nt));
#pragma omp parallel for num_threads(static_cast<int>(std::min<int64_t>(nt, batch))) \
    schedule(dynamic, chunk)
#endif
    for (int64_t b = 0; b < batch; ++b) {
      try {
        gemm_one(ks, transA, transB, M, N, K, alpha, A + b * strideA, lda, B + b * strideB, ldb,
                 beta, C + b * strideC, ldc, 1);
      } catch (...) {
        err.capture();
      }
    }
    err.rethrow();
    return;
  }
  for (int64_t b = 0; b < batch; ++b) {
    gemm_one(ks, transA, transB, M, N, K, alpha, A + b * strideA, lda, B + b * strideB, ldb, beta,
             C + b * strideC, ldc, nt);
  }
}

inline const KernelSet<float>& kernels_for(float) { return gemm_detail::float_kernels(); }
inline const KernelSet<double>& kernels_for(double) { return gemm_detail::double_kernels(); }

}  // namespace

template <class T>
void gemm(int64_t batch, bool transA, bool transB, int64_t M, int64_t N, int64_t K, T alpha,
          const T* A, int64_t lda, int64_t strideA, const T* B, int64_t ldb, int64_t strideB, T beta,
          T* C, int64_t ldc, int64_t strideC) {
  gemm_batched(kernels_for(T()), batch, transA, transB, M, N, K, alpha, A, lda, strideA, B, ldb,
               strideB, beta, C, ldc, strideC);
}

template void gemm<float>(int64_t, bool, bool, int64_t, int64_t, int64_t, float, const float*,
                          int64_t, int64_t, const float*, int64_t, int64_t, float, float*, int64_t,
                          int64_t);
template void gemm<double>(int64_t, bool, bool, int64_t, int64_t, int64_t, double, const double*,
                           int64_t, int64_t, const double*, int64_t, int64_t, double, double*,
                           int64_t, int64_t);

}  // namespace cpu
}  // namespace kiln
