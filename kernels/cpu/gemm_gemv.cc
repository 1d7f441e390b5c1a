// Few-row GEMM (matrix-vector products and the like) and its kernels: memory-bound, so instead
// of packing, B is streamed in its own layout. AVX-512 and AVX2 versions are picked at run time
// with the micro-kernels (gemm_microkernels.cc); the portable versions also serve float64.
#include <algorithm>

#include "gemm_microkernels.h"
#ifdef _OPENMP
#include <omp.h>
#endif


namespace kiln {
namespace cpu {
namespace gemm_detail {
namespace {
// Columns of C kept in L1 (4 rows x 4 KiB) while rows of B stream past.
constexpr int64_t kChunk = 1024;

template <class T>
void scale_rows(int m, T* C, int64_t ldc, int64_t n, T beta) {
  for (int i = 0; i < m; ++i) {
    T* c = C + i * ldc;
    for (int64_t j = 0; j < n; ++j) c[j] = beta == T(0) ? T(0) : beta * c[j];
  }
}

#ifdef KILN_GEMM_X86
inline __mmask16 KILN_TARGET_AVX512 tail_mask(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
}

// Horizontal sum through memory: GCC 12's shuffle/reduce intrinsics trip -Wuninitialized.
inline float KILN_TARGET_AVX512 hsum512(__m512 v) {
  alignas(64) float t[16];
  _mm512_store_ps(t, v);
  const __m128 q = _mm_add_ps(_mm_add_ps(_mm_load_ps(t), _mm_load_ps(t + 4)),
                              _mm_add_ps(_mm_load_ps(t + 8), _mm_load_ps(t + 12)));
  const __m128 h = _mm_add_ps(q, _mm_movehl_ps(q, q));
  return _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 1)));
}

template <int M>
KILN_TARGET_AVX512 void rows_avx512(int64_t K, const float* a, const float* B, int64_t ldb,
                                    float* C, int64_t ldc, float beta, int64_t n) {
  for (int64_t j0 = 0; j0 < n; j0 += kChunk) {
    const int64_t nb = std::min(kChunk, n - j0);
    float* c0 = C + j0;
    scale_rows(M, c0, ldc, nb, beta);
    int64_t k = 0;
    for (; k + 4 <= K; k += 4) {  // four rows of B per pass over the C chunk
      const float* b = B + k * ldb + j0;
      __m512 av[M][4];
      for (int i = 0; i < M; ++i)
        for (int q = 0; q < 4; ++q) av[i][q] = _mm512_set1_ps(a[i * K + k + q]);
      for (int64_t j = 0; j < nb; j += 16) {
        const __mmask16 mk = tail_mask(nb - j);
        const __m512 x0 = _mm512_maskz_loadu_ps(mk, b + j);
        const __m512 x1 = _mm512_maskz_loadu_ps(mk, b + ldb + j);
        const __m512 x2 = _mm512_maskz_loadu_ps(mk, b + 2 * ldb + j);
        const __m512 x3 = _mm512_maskz_loadu_ps(mk, b + 3 * ldb + j);
        for (int i = 0; i < M; ++i) {
          float* c = c0 + i * ldc + j;
          __m512 y = _mm512_maskz_loadu_ps(mk, c);
          y = _mm512_fmadd_ps(av[i][0], x0, y);
          y = _mm512_fmadd_ps(av[i][1], x1, y);
          y = _mm512_fmadd_ps(av[i][2], x2, y);
          y = _mm512_fmadd_ps(av[i][3], x3, y);
          _mm512_mask_storeu_ps(c, mk, y);
        }
      }
    }
    for (; k < K; ++k) {
      const float* b = B + k * ldb + j0;
      for (int i = 0; i < M; ++i) {
        const __m512 ai = _mm512_set1_ps(a[i * K + k]);
        float* c = c0 + i * ldc;
        for (int64_t j = 0; j < nb; j += 16) {
          const __mmask16 mk = tail_mask(nb - j);
          _mm512_mask_storeu_ps(c + j, mk, _mm512_fmadd_ps(ai, _mm512_maskz_loadu_ps(mk, b + j),
                                                           _mm512_maskz_loadu_ps(mk, c + j)));
        }
      }
    }
  }
}

template <int M, int J>
KILN_TARGET_AVX512 void dots_avx512_block(int64_t K, const float* a, const float* B, int64_t ldb,
                                          float* C, int64_t ldc, float beta) {
  __m512 acc[M][J];
  for (int i = 0; i < M; ++i)
    for (int q = 0; q < J; ++q) acc[i][q] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 mk = tail_mask(K - k);
    __m512 x[J];
    for (int q = 0; q < J; ++q) x[q] = _mm512_maskz_loadu_ps(mk, B + q * ldb + k);
    for (int i = 0; i < M; ++i) {
      const __m512 ai = _mm512_maskz_loadu_ps(mk, a + i * K + k);
      for (int q = 0; q < J; ++q) acc[i][q] = _mm512_fmadd_ps(ai, x[q], acc[i][q]);
    }
  }
  for (int i = 0; i < M; ++i)
    for (int q = 0; q < J; ++q) {
      float* c = C + i * ldc + q;
      const float s = hsum512(acc[i][q]);
      *c = beta == 0.0f ? s : s + beta * *c;
    }
}

template <int M>
KILN_TARGET_AVX512 void dots_avx512(int64_t K, const float* a, const float* B, int64_t ldb,
                                    float* C, int64_t ldc, float beta, int64_t n) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) dots_avx512_block<M, 4>(K, a, B + j * ldb, ldb, C + j, ldc, beta);
  for (; j < n; ++j) dots_avx512_block<M, 1>(K, a, B + j * ldb, ldb, C + j, ldc, beta);
}

template <int M>
KILN_TARGET_AVX2 void rows_avx2(int64_t K, const float* a, const float* B, int64_t ldb, float* C,
                                int64_t ldc, float beta, int64_t n) {
  for (int64_t j0 = 0; j0 < n; j0 += kChunk) {
    const int64_t nb = std::min(kChunk, n - j0), nv = nb / 8 * 8;
    float* c0 = C + j0;
    scale_rows(M, c0, ldc, nb, beta);
    int64_t k = 0;
    for (; k + 2 <= K; k += 2) {  // two rows of B per pass over the C chunk
      const float* b = B + k * ldb + j0;
      __m256 av[M][2];
      for (int i = 0; i < M; ++i)
        for (int q = 0; q < 2; ++q) av[i][q] = _mm256_set1_ps(a[i * K + k + q]);
      for (int64_t j = 0; j < nv; j += 8) {
        const __m256 x0 = _mm256_loadu_ps(b + j), x1 = _mm256_loadu_ps(b + ldb + j);
        for (int i = 0; i < M; ++i) {
          float* c = c0 + i * ldc + j;
          __m256 y = _mm256_fmadd_ps(av[i][0], x0, _mm256_loadu_ps(c));
          _mm256_storeu_ps(c, _mm256_fmadd_ps(av[i][1], x1, y));
        }
      }
      for (int i = 0; i < M; ++i)
        for (int64_t j = nv; j < nb; ++j)
          c0[i * ldc + j] += a[i * K + k] * b[j] + a[i * K + k + 1] * b[ldb + j];
    }
    for (; k < K; ++k)
      for (int i = 0; i < M; ++i)
        for (int64_t j = 0; j < nb; ++j) c0[i * ldc + j] += a[i * K + k] * B[k * ldb + j0 + j];
  }
}

template <int M>
KILN_TARGET_AVX2 void dots_avx2(int64_t K, const float* a, const float* B, int64_t ldb, float* C,
                                int64_t ldc, float beta, int64_t n) {
  const int64_t kv = K / 8 * 8;
  for (int64_t j = 0; j < n; ++j) {
    const float* b = B + j * ldb;
    __m256 acc[M];
    for (int i = 0; i < M; ++i) acc[i] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kv; k += 8) {
      const __m256 x = _mm256_loadu_ps(b + k);
      for (int i = 0; i < M; ++i) acc[i] = _mm256_fmadd_ps(_mm256_loadu_ps(a + i * K + k), x, acc[i]);
    }
    for (int i = 0; i < M; ++i) {
      alignas(32) float lanes[8];
      _mm256_store_ps(lanes, acc[i]);
      float s = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
      for (int64_t k = kv; k < K; ++k) s += a[i * K + k] * b[k];
      float* c = C + i * ldc + j;
      *c = beta == 0.0f ? s : s + beta * *c;
    }
  }
}
#endif  // KILN_GEMM_X86

}  // namespace

template <class T>
void gemv_rows_generic(int m, int64_t K, const T* a, const T* B, int64_t ldb, T* C, int64_t ldc,
                       T beta, int64_t n) {
  for (int64_t j0 = 0; j0 < n; j0 += kChunk) {
    const int64_t nb = std::min(kChunk, n - j0);
    scale_rows(m, C + j0, ldc, nb, beta);
    for (int64_t k = 0; k < K; ++k) {
      const T* b = B + k * ldb + j0;
      for (int i = 0; i < m; ++i) {
        const T ai = a[i * K + k];
        T* c = C + i * ldc + j0;
        for (int64_t j = 0; j < nb; ++j) c[j] += ai * b[j];
      }
    }
  }
}

template <class T>
void gemv_dots_generic(int m, int64_t K, const T* a, const T* B, int64_t ldb, T* C, int64_t ldc,
                       T beta, int64_t n) {
  for (int64_t j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      T s = 0;
      for (int64_t k = 0; k < K; ++k) s += a[i * K + k] * B[j * ldb + k];
      T* c = C + i * ldc + j;
      *c = beta == T(0) ? s : s + beta * *c;
    }
}
template void gemv_rows_generic<float>(int, int64_t, const float*, const float*, int64_t, float*,
                                       int64_t, float, int64_t);
template void gemv_rows_generic<double>(int, int64_t, const double*, const double*, int64_t,
                                        double*, int64_t, double, int64_t);
template void gemv_dots_generic<float>(int, int64_t, const float*, const float*, int64_t, float*,
                                       int64_t, float, int64_t);
template void gemv_dots_generic<double>(int, int64_t, const double*, const double*, int64_t,
                                        double*, int64_t, double, int64_t);

#ifdef KILN_GEMM_X86
#define KILN_GEMV_SWITCH(fn)                                       \
  switch (m) {                                                     \
    case 1: return fn<1>(K, a, B, ldb, C, ldc, beta, n);           \
    case 2: return fn<2>(K, a, B, ldb, C, ldc, beta, n);           \
    case 3: return fn<3>(K, a, B, ldb, C, ldc, beta, n);           \
    default: return fn<4>(K, a, B, ldb, C, ldc, beta, n);          \
  }
void gemv_rows_avx512(int m, int64_t K, const float* a, const float* B, int64_t ldb, float* C,
                      int64_t ldc, float beta, int64_t n) {
  KILN_GEMV_SWITCH(rows_avx512)
}
void gemv_dots_avx512(int m, int64_t K, const float* a, const float* B, int64_t ldb, float* C,
                      int64_t ldc, float beta, int64_t n) {
  KILN_GEMV_SWITCH(dots_avx512)
}
void gemv_rows_avx2(int m, int64_t K, const float* a, const float* B, int64_t ldb, float* C,
                    int64_t ldc, float beta, int64_t n) {
  KILN_GEMV_SWITCH(rows_avx2)
}
void gemv_dots_avx2(int m, int64_t K, const float* a, const float* B, int64_t ldb, float* C,
                    int64_t ldc, float beta, int64_t n) {
  KILN_GEMV_SWITCH(dots_avx2)
}
#undef KILN_GEMV_SWITCH
#endif

// Few rows: memory-bound, so B is streamed in its own layout (packing it would double the
// traffic) once per kMaxGemvRows rows, and only op(A), a few rows, is copied (scaled by alpha).
template <class T>
void gemv_few_rows(const KernelSet<T>& ks, bool transA, bool transB, int64_t M, int64_t N,
                   int64_t K, T alpha, const T* A, int64_t lda, const T* B, int64_t ldb, T beta,
                   T* C, int64_t ldc, int nt, T* a) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t k = 0; k < K; ++k) a[i * K + k] = alpha * (transA ? A[k * lda + i] : A[i * lda + k]);
  const auto kernel = transB ? ks.gemv_dots : ks.gemv_rows;
  auto columns = [&](int64_t j0, int64_t j1) {  // rows in groups the kernel takes at once
    for (int64_t i = 0; i < M; i += kMaxGemvRows) {
      const int m = static_cast<int>(std::min<int64_t>(kMaxGemvRows, M - i));
      kernel(m, K, a + i * K, transB ? B + j0 * ldb : B + j0, ldb, C + i * ldc + j0, ldc, beta,
             j1 - j0);
    }
  };
  // Threads only when B is large (over 4 MiB of float): a matrix-vector product of a few MiB
  // is done in ~0.1 ms by one thread, less than a parallel region can cost on a busy machine.
  if (nt > 1 && N * K > (int64_t(1) << 20) && N >= 32) {
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
    {
      const int64_t vecs = (N + 15) / 16, tid = omp_get_thread_num(), nth = omp_get_num_threads();
      const int64_t j0 = std::min(N, vecs * tid / nth * 16), j1 = std::min(N, vecs * (tid + 1) / nth * 16);
      if (j1 > j0) columns(j0, j1);
    }
    return;
#endif
  }
  columns(0, N);
}

template void gemv_few_rows<float>(const KernelSet<float>&, bool, bool, int64_t, int64_t, int64_t,
                                   float, const float*, int64_t, const float*, int64_t, float,
                                   float*, int64_t, int, float*);
template void gemv_few_rows<double>(const KernelSet<double>&, bool, bool, int64_t, int64_t,
                                    int64_t, double, const double*, int64_t, const double*,
                                    int64_t, double, double*, int64_t, int, double*);

}  // namespace gemm_detail
}  // namespace cpu
}  // namespace kiln
