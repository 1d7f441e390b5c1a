// GEMM register-tile micro-kernels: AVX-512 (12x32), AVX2+FMA (6x16) and portable C++ (4x8),
// chosen at run time, so the file is compiled without -march flags and runs on any x86-64 (or
// other) CPU. Row-major C: vectors run along N, elements of A are broadcast.
#include "gemm_microkernels.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>


namespace kiln {
namespace cpu {
namespace gemm_detail {
namespace {

#ifdef KILN_GEMM_X86
// ---------------------------------------------------------------- AVX-512: 12 x 32 tile
// 24 zmm accumulators + 2 for the B row + 1 broadcast: the most the 32 registers allow while
// keeping two FMAs per broadcast element.
constexpr int kMR512 = 12;

template <int MR, bool kPackedA, int NV>  // NV: 16-wide vectors per row (1 for n <= 16)
KILN_TARGET_AVX512 inline void tile_avx512(int64_t K, const float* A, int64_t rsa, int64_t csa,
                                           const float* B, int64_t ldb, float* C, int64_t ldc,
                                           float alpha, float beta, int m, int n) {
  // Masked loads never touch (or fault on) masked-off lanes, so edge columns need no copy.
  const __mmask16 k0 = n >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << n) - 1);
  const __mmask16 k1 = n >= 32 ? 0xFFFF : n > 16 ? static_cast<__mmask16>((1u << (n - 16)) - 1) : 0;
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
  if (kPackedA) {
#pragma GCC unroll 2
    for (int64_t k = 0; k < K; ++k) {
      const __m512 b0 = _mm512_maskz_loadu_ps(k0, B);
      const __m512 b1 = NV > 1 ? _mm512_maskz_loadu_ps(k1, B + 16) : b0;
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const __m512 a = _mm512_set1_ps(A[r]);
        c0[r] = _mm512_fmadd_ps(a, b0, c0[r]);
        if (NV > 1) c1[r] = _mm512_fmadd_ps(a, b1, c1[r]);
      }
      A += MR;
      B += ldb;
    }
  } else {
#pragma GCC unroll 2
    for (int64_t k = 0; k < K; ++k) {
      const __m512 b0 = _mm512_maskz_loadu_ps(k0, B);
      const __m512 b1 = NV > 1 ? _mm512_maskz_loadu_ps(k1, B + 16) : b0;
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const __m512 a = _mm512_set1_ps(A[r * rsa]);
        c0[r] = _mm512_fmadd_ps(a, b0, c0[r]);
        if (NV > 1) c1[r] = _mm512_fmadd_ps(a, b1, c1[r]);
      }
      A += csa;
      B += ldb;
    }
  }
  const __m512 va = _mm512_set1_ps(alpha);
  if (beta == 0.0f) {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      if (kPackedA && r >= m) break;
      _mm512_mask_storeu_ps(C + r * ldc, k0, _mm512_mul_ps(va, c0[r]));
      if (NV > 1) _mm512_mask_storeu_ps(C + r * ldc + 16, k1, _mm512_mul_ps(va, c1[r]));
    }
  } else {
    const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      if (kPackedA && r >= m) break;
      float* c = C + r * ldc;
      _mm512_mask_storeu_ps(c, k0, _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k0, c),
                                                   _mm512_mul_ps(va, c0[r])));
      if (NV > 1)
        _mm512_mask_storeu_ps(c + 16, k1, _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k1, c + 16),
                                                          _mm512_mul_ps(va, c1[r])));
    }
  }
}

KILN_TARGET_AVX512 void packed_avx512(int64_t K, const float* A, const float* B, int64_t ldb,
                                      float* C, int64_t ldc, float alpha, float beta, int m, int n) {
  if (n > 16) tile_avx512<kMR512, true, 2>(K, A, 1, kMR512, B, ldb, C, ldc, alpha, beta, m, n);
  else tile_avx512<kMR512, true, 1>(K, A, 1, kMR512, B, ldb, C, ldc, alpha, beta, m, n);
}
template <int MR>
KILN_TARGET_AVX512 void strided_avx512(int64_t K, const float* A, int64_t rsa, int64_t csa,
                                       const float* B, int64_t ldb, float* C, int64_t ldc,
                                       float alpha, float beta, int n) {
  if (n > 16) tile_avx512<MR, false, 2>(K, A, rsa, csa, B, ldb, C, ldc, alpha, beta, MR, n);
  else tile_avx512<MR, false, 1>(K, A, rsa, csa, B, ldb, C, ldc, alpha, beta, MR, n);
}

// In-register 16 x 16 transpose (64 shuffles for 256 floats, against one scalar move each).
// GCC 12's shuffle intrinsics raise a false -Wmaybe-uninitialized (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
KILN_TARGET_AVX512 inline void transpose16x16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {  // lane L: [a(4L) b(4L) a(4L+1) b(4L+1)], [a(4L+2) ...]
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {  // r[4i+j], lane L: rows 4i..4i+3 of column 4L+j
    const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  __m512 out[16];
  for (int j = 0; j < 4; ++j) {  // gather lane L of the four row groups into column 4L+j
    const __m512 t0 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x44);
    const __m512 t1 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xEE);
    const __m512 t2 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x44);
    const __m512 t3 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xEE);
    out[j] = _mm512_shuffle_f32x4(t0, t2, 0x88);
    out[4 + j] = _mm512_shuffle_f32x4(t0, t2, 0xDD);
    out[8 + j] = _mm512_shuffle_f32x4(t1, t3, 0x88);
    out[12 + j] = _mm512_shuffle_f32x4(t1, t3, 0xDD);
  }
  for (int i = 0; i < 16; ++i) r[i] = out[i];
}

KILN_TARGET_AVX512 void pack_bt_avx512(const float* B, int64_t ldb, int64_t kc, int cols,
                                       float* dst) {
  constexpr int NR = 32;
  for (int64_t k = 0; k < kc; k += 16) {
    const int64_t kn = std::min<int64_t>(16, kc - k);
    const __mmask16 km = kn == 16 ? 0xFFFF : static_cast<__mmask16>((1u << kn) - 1);
    for (int cb = 0; cb < NR; cb += 16) {
      __m512 r[16];
      for (int c = 0; c < 16; ++c)
        r[c] = cb + c < cols ? _mm512_maskz_loadu_ps(km, B + (cb + c) * ldb + k) : _mm512_setzero_ps();
      transpose16x16(r);
      for (int64_t kk = 0; kk < kn; ++kk) _mm512_storeu_ps(dst + (k + kk) * NR + cb, r[kk]);
    }
  }
}
#pragma GCC diagnostic pop

// ---------------------------------------------------------------- AVX2 + FMA: 6 x 16 tile
// 12 ymm accumulators + 2 B vectors + 1 broadcast of the 16 registers.
constexpr int kMR2 = 6;

template <int MR, bool kPackedA, bool kFull>
KILN_TARGET_AVX2 inline void tile_avx2(int64_t K, const float* A, int64_t rsa, int64_t csa,
                                       const float* B, int64_t ldb, float* C, int64_t ldc,
                                       float alpha, float beta, int m, int n) {
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i k0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), iota);
  const __m256i k1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n - 8), iota);
  __m256 c0[MR], c1[MR];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) c0[r] = c1[r] = _mm256_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const __m256 b0 = kFull ? _mm256_loadu_ps(B) : _mm256_maskload_ps(B, k0);
    const __m256 b1 = kFull ? _mm256_loadu_ps(B + 8) : _mm256_maskload_ps(B + 8, k1);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m256 a = _mm256_broadcast_ss(kPackedA ? A + r : A + r * rsa);
      c0[r] = _mm256_fmadd_ps(a, b0, c0[r]);
      c1[r] = _mm256_fmadd_ps(a, b1, c1[r]);
    }
    A += kPackedA ? MR : csa;
    B += ldb;
  }
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    if (kPackedA && r >= m) break;
    float* c = C + r * ldc;
    __m256 x0 = _mm256_mul_ps(va, c0[r]), x1 = _mm256_mul_ps(va, c1[r]);
    if (beta != 0.0f) {
      x0 = _mm256_fmadd_ps(vb, kFull ? _mm256_loadu_ps(c) : _mm256_maskload_ps(c, k0), x0);
      x1 = _mm256_fmadd_ps(vb, kFull ? _mm256_loadu_ps(c + 8) : _mm256_maskload_ps(c + 8, k1), x1);
    }
    if (kFull) {
      _mm256_storeu_ps(c, x0);
      _mm256_storeu_ps(c + 8, x1);
    } else {
      _mm256_maskstore_ps(c, k0, x0);
      _mm256_maskstore_ps(c + 8, k1, x1);
    }
  }
}

KILN_TARGET_AVX2 void packed_avx2(int64_t K, const float* A, const float* B, int64_t ldb, float* C,
                                  int64_t ldc, float alpha, float beta, int m, int n) {
  if (n == 16) tile_avx2<kMR2, true, true>(K, A, 1, kMR2, B, ldb, C, ldc, alpha, beta, m, n);
  else tile_avx2<kMR2, true, false>(K, A, 1, kMR2, B, ldb, C, ldc, alpha, beta, m, n);
}
template <int MR>
KILN_TARGET_AVX2 void strided_avx2(int64_t K, const float* A, int64_t rsa, int64_t csa,
                                   const float* B, int64_t ldb, float* C, int64_t ldc, float alpha,
                                   float beta, int n) {
  if (n == 16) tile_avx2<MR, false, true>(K, A, rsa, csa, B, ldb, C, ldc, alpha, beta, MR, n);
  else tile_avx2<MR, false, false>(K, A, rsa, csa, B, ldb, C, ldc, alpha, beta, MR, n);
}
#endif  // KILN_GEMM_X86

// ---------------------------------------------------------------- portable C++: 4 x 8 tile
// Plain loops the compiler vectorizes for whatever the baseline ISA is; also serves float64.
constexpr int kMRg = 4, kNRg = 8;

template <class T, int MR, bool kPackedA>
void tile_generic(int64_t K, const T* A, int64_t rsa, int64_t csa, const T* B, int64_t ldb, T* C,
                  int64_t ldc, T alpha, T beta, int m, int n) {
  T acc[MR][kNRg] = {};
  T b[kNRg];
  for (int64_t k = 0; k < K; ++k) {
    if (n == kNRg) {
      for (int c = 0; c < kNRg; ++c) b[c] = B[c];
    } else {
      for (int c = 0; c < kNRg; ++c) b[c] = c < n ? B[c] : T(0);
    }
    for (int r = 0; r < MR; ++r) {
      const T a = kPackedA ? A[r] : A[r * rsa];
      for (int c = 0; c < kNRg; ++c) acc[r][c] += a * b[c];
    }
    A += kPackedA ? MR : csa;
    B += ldb;
  }
  for (int r = 0; r < MR && r < m; ++r) {
    T* crow = C + r * ldc;
    for (int c = 0; c < n; ++c) {
      crow[c] = beta == T(0) ? alpha * acc[r][c] : alpha * acc[r][c] + beta * crow[c];
    }
  }
}

template <class T>
void packed_generic(int64_t K, const T* A, const T* B, int64_t ldb, T* C, int64_t ldc, T alpha,
                    T beta, int m, int n) {
  tile_generic<T, kMRg, true>(K, A, 1, kMRg, B, ldb, C, ldc, alpha, beta, m, n);
}
template <class T, int MR>
void strided_generic(int64_t K, const T* A, int64_t rsa, int64_t csa, const T* B, int64_t ldb,
                     T* C, int64_t ldc, T alpha, T beta, int n) {
  tile_generic<T, MR, false>(K, A, rsa, csa, B, ldb, C, ldc, alpha, beta, MR, n);
}

template <class T>
KernelSet<T> generic_set(const char* name) {
  KernelSet<T> ks{name, kMRg, kNRg, 128, 256, 2048, packed_generic<T>, {},
                  gemv_rows_generic<T>, gemv_dots_generic<T>, nullptr};
  ks.strided[1] = strided_generic<T, 1>;
  ks.strided[2] = strided_generic<T, 2>;
  ks.strided[3] = strided_generic<T, 3>;
  ks.strided[4] = strided_generic<T, 4>;
  return ks;
}

const KernelSet<float>* choose_float() {
  const char* force = std::getenv("KILN_GEMM_KERNEL");
  auto want = [&](const char* name) { return !force || std::strcmp(force, name) == 0; };
#ifdef KILN_GEMM_X86
  __builtin_cpu_init();
  if (want("avx512") && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma")) {
    // kc x 32 B micro-panels stream from L2 while the 12 x kc A micro-panel (12 KiB) stays in L1;
    // the shared kc x nc block of B (1 MiB) fits the 2 MiB L2 of each core.
    static KernelSet<float> ks{"avx512-12x32", kMR512, 32, 96, 256, 1024, packed_avx512, {},
                                 gemv_rows_avx512, gemv_dots_avx512, pack_bt_avx512};
    ks.strided[1] = strided_avx512<1>;
    ks.strided[2] = strided_avx512<2>;
    ks.strided[3] = strided_avx512<3>;
    ks.strided[4] = strided_avx512<4>;
    ks.strided[5] = strided_avx512<5>;
    ks.strided[6] = strided_avx512<6>;
    ks.strided[7] = strided_avx512<7>;
    ks.strided[8] = strided_avx512<8>;
    ks.strided[9] = strided_avx512<9>;
    ks.strided[10] = strided_avx512<10>;
    ks.strided[11] = strided_avx512<11>;
    ks.strided[12] = strided_avx512<12>;
    return &ks;
  }
  if (want("avx2") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    static KernelSet<float> ks{"avx2-6x16", kMR2, 16, 120, 256, 1024, packed_avx2, {},
                                 gemv_rows_avx2, gemv_dots_avx2, nullptr};
    ks.strided[1] = strided_avx2<1>;
    ks.strided[2] = strided_avx2<2>;
    ks.strided[3] = strided_avx2<3>;
    ks.strided[4] = strided_avx2<4>;
    ks.strided[5] = strided_avx2<5>;
    ks.strided[6] = strided_avx2<6>;
    return &ks;
  }
#endif
  static KernelSet<float> ks = generic_set<float>("generic-4x8");
  return &ks;
}

}  // namespace

const KernelSet<float>& float_kernels() {
  static const KernelSet<float>* ks = choose_float();
  return *ks;
}

const KernelSet<double>& double_kernels() {
  static const KernelSet<double> ks = generic_set<double>("generic-4x8");
  return ks;
}

}  // namespace gemm_detail
}  // namespace cpu
}  // namespace kiln
