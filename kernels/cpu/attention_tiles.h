// Tile machinery of the CPU attention kernel (kernels/cpu/attention.cc, its only includer):
// register-blocked micro-kernels on GCC vector types (four 64-byte vectors per tile row), the
// banded variants causal tiles use, tile packing, and the softmax's exp. Everything is
// always-inline so it compiles into each ISA clone of the tile loops.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "vmath.h"

namespace kiln {
namespace cpu {
namespace attention_tiles {

// The tile helpers are always inlined into the ISA clones, so vector-argument ABI notes do not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
#define KILN_AI __attribute__((always_inline)) inline
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(KILN_NO_CLONES)
// Unlike KILN_CLONES these clones use FMA: attention sums in tile order anyway, so bitwise
// agreement across ISAs is not promised (results agree to rounding).
#define KILN_ATTN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define KILN_ATTN_CLONES
#endif

template <class T> struct VecOf { typedef T type __attribute__((vector_size(64))); };
template <class T> using Vec = typename VecOf<T>::type;
template <class T> constexpr int kLanes = 64 / int(sizeof(T));
template <class T> constexpr int kBc = 4 * kLanes<T>;  // key columns per tile
constexpr int64_t kBr = 64;                            // query rows per tile

template <class T> KILN_AI Vec<T> vload(const T* p) { Vec<T> v; std::memcpy(&v, p, sizeof v); return v; }
template <class T> KILN_AI void vstore(T* p, Vec<T> v) { std::memcpy(p, &v, sizeof v); }

KILN_AI float exp_t(float x) { return vmath::exp_f(x); }
KILN_AI double exp_t(double x) { return std::exp(x); }
KILN_AI float sel(bool c, float a, float b) { return vmath::select_f(c, a, b); }
KILN_AI double sel(bool c, double a, double b) {
  int64_t m = -static_cast<int64_t>(c), ia, ib;
  std::memcpy(&ia, &a, 8);
  std::memcpy(&ib, &b, 8);
  int64_t r = (ia & m) | (ib & ~m);
  double out;
  std::memcpy(&out, &r, 8);
  return out;
}

// e^x for the softmax, where x <= 0 and -inf means masked: arguments are kept above the point
// where e^x leaves the normal range (denormal arithmetic costs ~100 cycles per operation on x86),
// and anything below it gives exactly 0. NaN (a NaN in q or k) stays NaN, as in PyTorch.
KILN_AI float exp_softmax(float x) {
  const bool live = !(x <= -87.0f);
  return sel(live, vmath::exp_f(sel(live, x, -87.0f)), 0.0f);
}
KILN_AI double exp_softmax(double x) {
  const bool live = !(x <= -700.0);
  return sel(live, std::exp(sel(live, x, -700.0)), 0.0);
}

// Zeroes the packed rows (or, with stride 1 and rows Bc apart, columns) of the keys a key mask
// hides, so that a NaN or Inf there cannot reach an output through a zero weight (0 * NaN).
template <class T>
inline void zero_masked_keys(const int32_t* km, int64_t nc, T* p, int64_t keyStride, int64_t len, int64_t elemStride) {
  if (!km) return;
  for (int64_t c = 0; c < nc; ++c)
    if (km[c] == 0)
      for (int64_t e = 0; e < len; ++e) p[c * keyStride + e * elemStride] = T(0);
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// Causal tiles are banded: row r of a tile sees columns [0, diag + r), so row groups skip the
// columns (and the products) that the mask would zero anyway. kNoBand means no band.
constexpr int64_t kNoBand = int64_t(1) << 40;
inline int64_t clamp64(int64_t x, int64_t lo, int64_t hi) { return std::max(lo, std::min(hi, x)); }

// C[r][0, NV*L) = sum_d A[r * lda + d] * BT[d * Bc + (0, NV*L)] for r < NR (BT: a packed transposed tile).
template <class T, int NR, int NV>
KILN_AI void tile_abt_block(const T* A, int64_t lda, const T* BT, int64_t D, T* C) {
  constexpr int L = kLanes<T>, Bc = kBc<T>;
  Vec<T> acc[NR][NV];
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
    for (int u = 0; u < NV; ++u) acc[r][u] = Vec<T>{};
  for (int64_t d = 0; d < D; ++d) {
    Vec<T> bv[NV];
#pragma GCC unroll 4
    for (int u = 0; u < NV; ++u) bv[u] = vload(BT + d * Bc + u * L);
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
      T x = A[r * lda + d];
#pragma GCC unroll 4
      for (int u = 0; u < NV; ++u) acc[r][u] += x * bv[u];
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
    for (int u = 0; u < NV; ++u) vstore(C + r * Bc + u * L, acc[r][u]);
}

template <class T, int NR>
KILN_AI void tile_abt_rows(const T* A, int64_t lda, const T* BT, int64_t D, T* C, int64_t ncols) {
  constexpr int L = kLanes<T>;
  switch ((ncols + L - 1) / L) {
    case 4: tile_abt_block<T, NR, 4>(A, lda, BT, D, C); break;
    case 3: tile_abt_block<T, NR, 3>(A, lda, BT, D, C); break;
    case 2: tile_abt_block<T, NR, 2>(A, lda, BT, D, C); break;
    case 1: tile_abt_block<T, NR, 1>(A, lda, BT, D, C); break;
    default: break;
  }
}

// C [nr x Bc] (row stride Bc) = A [nr x D] (row stride lda) times the packed BT [D x Bc]; with a
// band, row r's columns from diag + r on are left unwritten (the caller masks them).
template <class T>
KILN_AI void tile_abt(const T* A, int64_t lda, const T* BT, int64_t D, T* C, int64_t nr, int64_t diag) {
  constexpr int64_t Bc = kBc<T>;
  int64_t r = 0;
  for (; r + 4 <= nr; r += 4) tile_abt_rows<T, 4>(A + r * lda, lda, BT, D, C + r * Bc, clamp64(diag + r + 3, 0, Bc));
  const int64_t n = clamp64(diag + nr - 1, 0, Bc);
  switch (nr - r) {
    case 3: tile_abt_rows<T, 3>(A + r * lda, lda, BT, D, C + r * Bc, n); break;
    case 2: tile_abt_rows<T, 2>(A + r * lda, lda, BT, D, C + r * Bc, n); break;
    case 1: tile_abt_rows<T, 1>(A + r * lda, lda, BT, D, C + r * Bc, n); break;
    default: break;
  }
}

// C[r][c0, c0 + NV*L) += sum_k W[r * wr + k * wk] * M[k * ldm + (c0, ...)] for r < NR, k < K.
// With rs, C's rows are first multiplied by rs[r] (the online softmax's rescaling of O).
template <class T, int NR, int NV>
KILN_AI void tile_acc_block(const T* W, int64_t wr, int64_t wk, const T* M, int64_t ldm, int64_t K, T* C,
                            int64_t ldc, const T* rs) {
  constexpr int L = kLanes<T>;
  Vec<T> acc[NR][NV];
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
    for (int u = 0; u < NV; ++u) acc[r][u] = rs ? vload(C + r * ldc + u * L) * rs[r] : vload(C + r * ldc + u * L);
  for (int64_t k = 0; k < K; ++k) {
    Vec<T> m[NV];
#pragma GCC unroll 4
    for (int u = 0; u < NV; ++u) m[u] = vload(M + k * ldm + u * L);
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
      T w = W[r * wr + k * wk];
#pragma GCC unroll 4
      for (int u = 0; u < NV; ++u) acc[r][u] += w * m[u];
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
    for (int u = 0; u < NV; ++u) vstore(C + r * ldc + u * L, acc[r][u]);
}

template <class T, int NR>
KILN_AI void tile_acc_rows(const T* W, int64_t wr, int64_t wk, const T* M, int64_t ldm, int64_t k0, int64_t k1,
                           T* C, int64_t ldc, int64_t Dp, const T* rs) {
  constexpr int L = kLanes<T>;
  if (k1 <= k0 && !rs) return;
  W += k0 * wk;
  M += k0 * ldm;
  const int64_t K = std::max<int64_t>(0, k1 - k0);
  int64_t c0 = 0;
  for (; c0 + 4 * L <= Dp; c0 += 4 * L) tile_acc_block<T, NR, 4>(W, wr, wk, M + c0, ldm, K, C + c0, ldc, rs);
  switch ((Dp - c0) / L) {
    case 3: tile_acc_block<T, NR, 3>(W, wr, wk, M + c0, ldm, K, C + c0, ldc, rs); break;
    case 2: tile_acc_block<T, NR, 2>(W, wr, wk, M + c0, ldm, K, C + c0, ldc, rs); break;
    case 1: tile_acc_block<T, NR, 1>(W, wr, wk, M + c0, ldm, K, C + c0, ldc, rs); break;
    default: break;
  }
}

// Which products a band keeps: none (every k), rows are queries and k keys (k < diag + r), or rows
// are keys and k queries (k >= r - diag + 1).
enum class Band { None, QueryRows, KeyRows };

// C [nr x Dp] (row stride ldc) += W [nr x K] (element (r, k) at W[r * wr + k * wk]) times M [K x Dp].
// Dp is a multiple of the vector width; M and C rows hold Dp readable/writable elements.
template <class T>
KILN_AI void tile_acc(const T* W, int64_t wr, int64_t wk, const T* M, int64_t ldm, int64_t K, T* C, int64_t ldc,
                      int64_t Dp, int64_t nr, Band band, int64_t diag, const T* rs = nullptr) {
  auto range = [&](int64_t r, int64_t last, int64_t* k0, int64_t* k1) {
    *k0 = 0;
    *k1 = K;
    if (band == Band::QueryRows) *k1 = clamp64(diag + last, 0, K);
    if (band == Band::KeyRows) *k0 = clamp64(r - diag + 1, 0, K);
  };
  int64_t r = 0, k0, k1;
  for (; r + 4 <= nr; r += 4) {
    range(r, r + 3, &k0, &k1);
    tile_acc_rows<T, 4>(W + r * wr, wr, wk, M, ldm, k0, k1, C + r * ldc, ldc, Dp, rs ? rs + r : nullptr);
  }
  range(r, nr - 1, &k0, &k1);
  switch (nr - r) {
    case 3: tile_acc_rows<T, 3>(W + r * wr, wr, wk, M, ldm, k0, k1, C + r * ldc, ldc, Dp, rs ? rs + r : nullptr); break;
    case 2: tile_acc_rows<T, 2>(W + r * wr, wr, wk, M, ldm, k0, k1, C + r * ldc, ldc, Dp, rs ? rs + r : nullptr); break;
    case 1: tile_acc_rows<T, 1>(W + r * wr, wr, wk, M, ldm, k0, k1, C + r * ldc, ldc, Dp, rs ? rs + r : nullptr); break;
    default: break;
  }
}

// Packs rows [j0, j0 + nc) of X [T x D] transposed into XT [D x Bc], zero beyond nc.
template <class T>
KILN_AI void pack_transposed(const T* __restrict X, int64_t D, int64_t j0, int64_t nc, T* __restrict XT) {
  constexpr int Bc = kBc<T>;
  const int n = static_cast<int>(nc), ld = static_cast<int>(D);
  const T* __restrict x0 = X + j0 * D;
  for (int64_t d = 0; d < D; ++d) {
    T* __restrict o = XT + d * Bc;
    const T* __restrict x = x0 + d;
    if (n == Bc) {
#pragma omp simd
      for (int c = 0; c < Bc; ++c) o[c] = x[c * ld];  // gathers
    } else {
      for (int c = 0; c < n; ++c) o[c] = x[c * ld];
      for (int c = n; c < Bc; ++c) o[c] = T(0);
    }
  }
}

// float, full tiles: 4 x 4 blocks transposed in registers (the strided scalar copy above costs as
// much as the products for short sequences).
typedef float V4f __attribute__((vector_size(16)));
typedef int V4i __attribute__((vector_size(16)));
template <>
KILN_AI void pack_transposed<float>(const float* __restrict X, int64_t D, int64_t j0, int64_t nc,
                                    float* __restrict XT) {
  constexpr int Bc = kBc<float>;
  if (nc != Bc || D % 4 != 0) {
    for (int64_t d = 0; d < D; ++d) {
      for (int64_t c = 0; c < nc; ++c) XT[d * Bc + c] = X[(j0 + c) * D + d];
      for (int64_t c = nc; c < Bc; ++c) XT[d * Bc + c] = 0.0f;
    }
    return;
  }
  const float* x0 = X + j0 * D;
  auto ld = [](const float* p) { V4f v; std::memcpy(&v, p, sizeof v); return v; };
  auto st = [](float* p, V4f v) { std::memcpy(p, &v, sizeof v); };
  for (int64_t c = 0; c < Bc; c += 4)
    for (int64_t d = 0; d < D; d += 4) {
      V4f r0 = ld(x0 + c * D + d), r1 = ld(x0 + (c + 1) * D + d), r2 = ld(x0 + (c + 2) * D + d),
          r3 = ld(x0 + (c + 3) * D + d);
      V4f t0 = __builtin_shuffle(r0, r1, V4i{0, 4, 1, 5}), t1 = __builtin_shuffle(r0, r1, V4i{2, 6, 3, 7});
      V4f t2 = __builtin_shuffle(r2, r3, V4i{0, 4, 1, 5}), t3 = __builtin_shuffle(r2, r3, V4i{2, 6, 3, 7});
      st(XT + d * Bc + c, __builtin_shuffle(t0, t2, V4i{0, 1, 4, 5}));
      st(XT + (d + 1) * Bc + c, __builtin_shuffle(t0, t2, V4i{2, 3, 6, 7}));
      st(XT + (d + 2) * Bc + c, __builtin_shuffle(t1, t3, V4i{0, 1, 4, 5}));
      st(XT + (d + 3) * Bc + c, __builtin_shuffle(t1, t3, V4i{2, 3, 6, 7}));
    }
}

// Copies rows [j0, j0 + n) of X [T x D] into P [n x Dp], zero in the padding columns.
template <class T>
KILN_AI void pack_rows(const T* X, int64_t D, int64_t Dp, int64_t j0, int64_t n, T* P) {
  for (int64_t r = 0; r < n; ++r) {
    T* __restrict o = P + r * Dp;
    const T* __restrict x = X + (j0 + r) * D;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) o[d] = x[d];  // rows are short: an inline copy beats a memcpy call
    for (int64_t d = D; d < Dp; ++d) o[d] = T(0);
  }
}

}  // namespace attention_tiles
}  // namespace cpu
}  // namespace kiln
