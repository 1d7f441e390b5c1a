// GEMM micro-kernels (gemm_microkernels.cc) and the blocking parameters that go with them.
// Internal to gemm.cc: not part of the kernel API in kernels.h.
#pragma once
#include <cstdint>

// ISA targets of the hand-written x86 kernels (the files are built for the baseline ISA).
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KILN_GEMM_X86 1
#define KILN_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,fma")))
#define KILN_TARGET_AVX2 __attribute__((target("avx2,fma")))
#endif

namespace kiln {
namespace cpu {
namespace gemm_detail {

// Every micro-kernel computes one register tile:
//   C[r*ldc + c] = alpha * sum_k a(r, k) * b(k, c) + beta * C[r*ldc + c],  0 <= r < m, 0 <= c < n,
// with beta == 0 meaning C is not read. b(k, c) = B[k*ldb + c] (a packed panel has ldb == nr and
// is zero-padded to nr columns; an unpacked row-major B is read in place, columns >= n never touched).
//
// Packed A: a(r, k) = A[k*mr + r], zero-padded to mr rows; only the first m rows of C are written.
template <class T>
using PackedKernel = void (*)(int64_t K, const T* A, const T* B, int64_t ldb, T* C, int64_t ldc,
                              T alpha, T beta, int m, int n);
// Strided (unpacked) A: a(r, k) = A[r*rsa + k*csa]; the row count m is fixed by the table slot,
// so rows past m are never read.
template <class T>
using StridedKernel = void (*)(int64_t K, const T* A, int64_t rsa, int64_t csa, const T* B,
                               int64_t ldb, T* C, int64_t ldc, T alpha, T beta, int n);

// Few-row products (matrix-vector and the like), memory-bound, so B is streamed once in its own
// layout. a holds op(A) as m <= kMaxGemvRows contiguous rows of K, already scaled by alpha.
// Rows:  C[i*ldc + j] = sum_k a[i*K + k] * B[k*ldb + j] + beta * C[i*ldc + j]    (B is K x n)
// Dots:  C[i*ldc + j] = sum_k a[i*K + k] * B[j*ldb + k] + beta * C[i*ldc + j]    (B is n x K)
template <class T>
using GemvKernel = void (*)(int m, int64_t K, const T* a, const T* B, int64_t ldb, T* C,
                            int64_t ldc, T beta, int64_t n);
constexpr int kMaxGemvRows = 4;

// Packs one nr-wide panel of a transposed B: dst[k*nr + c] = B[c*ldb + k] for c < cols, zero for
// cols <= c < nr (null in a set: gemm.cc's portable loop does it).
template <class T>
using PackTransposedKernel = void (*)(const T* B, int64_t ldb, int64_t kc, int cols, T* dst);

constexpr int kMaxMR = 16;

template <class T>
struct KernelSet {
  const char* name;
  int mr, nr;          // register tile: mr rows of C by nr columns
  int64_t mc, kc, nc;  // cache blocks: packed A is mc x kc, packed B is kc x nc
  PackedKernel<T> packed;
  StridedKernel<T> strided[kMaxMR + 1];  // strided[m] for 1 <= m <= mr
  GemvKernel<T> gemv_rows, gemv_dots;
  PackTransposedKernel<T> pack_bt;
};

// gemm_gemv.cc
template <class T>
void gemv_rows_generic(int m, int64_t K, const T* a, const T* B, int64_t ldb, T* C, int64_t ldc,
                       T beta, int64_t n);
template <class T>
void gemv_dots_generic(int m, int64_t K, const T* a, const T* B, int64_t ldb, T* C, int64_t ldc,
                       T beta, int64_t n);
void gemv_rows_avx512(int m, int64_t K, const float* a, const float* B, int64_t ldb, float* C,
                      int64_t ldc, float beta, int64_t n);
void gemv_dots_avx512(int m, int64_t K, const float* a, const float* B, int64_t ldb, float* C,
                      int64_t ldc, float beta, int64_t n);
void gemv_rows_avx2(int m, int64_t K, const float* a, const float* B, int64_t ldb, float* C,
                    int64_t ldc, float beta, int64_t n);
void gemv_dots_avx2(int m, int64_t K, const float* a, const float* B, int64_t ldb, float* C,
                    int64_t ldc, float beta, int64_t n);

// The few-rows plan (gemm_gemv.cc): C = alpha op(A) op(B) + beta C for M <= 16 or so, using
// the set's gemv kernels, on nt threads split over columns; a is scratch for M * K elements.
template <class T>
void gemv_few_rows(const KernelSet<T>& ks, bool transA, bool transB, int64_t M, int64_t N,
                   int64_t K, T alpha, const T* A, int64_t lda, const T* B, int64_t ldb, T beta,
                   T* C, int64_t ldc, int nt, T* a);

// Chosen once from the CPU's features (AVX-512, then AVX2+FMA, then portable C++).
// KILN_GEMM_KERNEL=avx512|avx2|generic overrides the choice (for tests and benchmarks).
const KernelSet<float>& float_kernels();
const KernelSet<double>& double_kernels();

}  // namespace gemm_detail
}  // namespace cpu
}  // namespace kiln
