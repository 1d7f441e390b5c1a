// Fused attention, FlashAttention-2 style (Dao 2023): the forward walks key tiles with an online
// softmax per query tile; the backward walks query tiles per key tile, recomputing the scores
// from the saved logsumexp, with D_i = rowsum(dO o O). Tiles are Br x Bc (Bc = four SIMD vectors),
// multiplied by register-blocked micro-kernels on GCC vector types; AVX-512/AVX2 clones are picked
// at load time. Scratch per task is a few tiles, plus O(T * D) per head: linear in T.
#include "attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../common/philox.h"
#include "parallel.h"
#include "vmath.h"

namespace kiln {
namespace cpu {
namespace {

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
// and anything below it gives exactly 0.
KILN_AI float exp_softmax(float x) { return sel(x > -87.0f, vmath::exp_f(sel(x > -87.0f, x, -87.0f)), 0.0f); }
KILN_AI double exp_softmax(double x) { return sel(x > -700.0, std::exp(sel(x > -700.0, x, -700.0)), 0.0); }

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

// Number of keys batch b can see at all (padding lengths cut the key range short).
inline int64_t key_end(const AttentionArgs& a, int64_t b) {
  if (!a.keyLens) return a.Tk;
  return std::max<int64_t>(0, std::min<int64_t>(a.Tk, a.keyLens[b]));
}

// Columns [0, limit) of tile row (query i, keys from j0) pass the causal rule.
inline int64_t causal_limit(const AttentionArgs& a, int64_t i, int64_t j0, int64_t nc) {
  if (!a.causal) return nc;
  return std::max<int64_t>(0, std::min<int64_t>(nc, i + (a.Tk - a.Tq) - j0 + 1));
}

// z[c] = 1/(1 - p) where element c of the row is kept, 0 where it is dropped, for c < n;
// `word` is the Philox word of column 0.
template <class T>
void dropout_scales(T* z, int64_t n, uint64_t seed, uint64_t word, uint32_t threshold, T keepScale) {
  philox::Words4 blk{};
  uint64_t cur = ~uint64_t(0);
  for (int64_t c = 0; c < n; ++c) {
    uint64_t w = word + static_cast<uint64_t>(c);
    if ((w >> 2) != cur) {
      cur = w >> 2;
      blk = philox::stream_block(seed, cur);
    }
    z[c] = (blk.v[w & 3] >> 8) >= threshold ? keepScale : T(0);
  }
}

// Per key tile: colok[c] = 1 where column c exists (c < nc) and the key mask lets it through, else 0;
// cidx[c] = c. Both as T so the per-row loops compare floats only and vectorise.
template <class T>
KILN_AI void column_flags(const int32_t* km, int64_t nc, T* colok, T* cidx) {
  constexpr int Bc = kBc<T>;
  for (int c = 0; c < Bc; ++c) {
    colok[c] = (c < nc && (!km || km[c] != 0)) ? T(1) : T(0);
    cidx[c] = T(c);
  }
}

uint32_t dropout_threshold(double p) { return static_cast<uint32_t>(std::ceil(p * 16777216.0)); }

// Forward over the query tiles of one head assigned to group g (tiles g, g + G, ...), FlashAttention
// loop order inverted so each key tile is packed once per task: for each key tile, every query
// tile of the group updates its running max m, normaliser l and unnormalised output O.
template <class T>
KILN_AI void forward_task(const AttentionArgs& a, const T* q, const T* k, const T* v, T* out, T* lse, int64_t G,
                          int64_t task, T* scratch) {
  constexpr int64_t Bc = kBc<T>;
  const int64_t D = a.D, Dp = round_up(D, kLanes<T>), nqb = ceil_div(a.Tq, kBr);
  const int64_t bh = task / G, g = task % G, b = bh / a.H, off = a.Tk - a.Tq;
  const T* Qh = q + bh * a.Tq * D;
  const T* K = k + bh * a.Tk * D;
  const T* V = v + bh * a.Tk * D;
  const T scale = T(a.scale), ninf = -std::numeric_limits<T>::infinity();
  T* O = scratch;            // Tq x Dp (rows of this group's tiles only are used)
  T* m = O + a.Tq * Dp;      // Tq
  T* l = m + a.Tq;           // Tq
  T* S = l + a.Tq;           // kBr x Bc
  T* KT = S + kBr * Bc;      // D x Bc
  T* Vb = KT + D * Bc;       // Bc x Dp
  int64_t lastRow = -1;
  for (int64_t qb = g; qb < nqb; qb += G) {
    const int64_t i0 = qb * kBr, nr = std::min(kBr, a.Tq - i0);
    std::fill(O + i0 * Dp, O + (i0 + nr) * Dp, T(0));
    std::fill(m + i0, m + i0 + nr, ninf);
    std::fill(l + i0, l + i0 + nr, T(0));
    lastRow = i0 + nr - 1;
  }
  int64_t kend = key_end(a, b);
  if (a.causal) kend = std::min(kend, std::max<int64_t>(0, lastRow + 1 + off));
  const uint32_t thr = dropout_threshold(a.dropout);
  const T keepScale = T(1) / T(1 - a.dropout);
  for (int64_t j0 = 0; j0 < kend; j0 += Bc) {
    const int64_t nc = std::min(Bc, kend - j0);
    pack_transposed(K, D, j0, nc, KT);
    pack_rows(V, D, Dp, j0, nc, Vb);
    const int32_t* km = a.keyMask ? a.keyMask + b * a.Tk + j0 : nullptr;
    T colok[Bc], cidx[Bc];
    column_flags(km, nc, colok, cidx);
    // Causal: query i sees this tile iff i + off >= j0.
    const int64_t qbFirst = a.causal ? std::max<int64_t>(0, j0 - off) / kBr : 0;
    for (int64_t qb = g + ceil_div(std::max<int64_t>(0, qbFirst - g), G) * G; qb < nqb; qb += G) {
      const int64_t i0 = qb * kBr, nr = std::min(kBr, a.Tq - i0);
      const int64_t diag = a.causal ? i0 + off - j0 + 1 : kNoBand;
      tile_abt(Qh + i0 * D, D, KT, D, S, nr, diag);
      // Row maxima, then the running max, rescale factor and normaliser vectorised over the rows.
      T mx[kBr], alpha[kBr], muse[kBr], rsum[kBr];
      for (int64_t r = 0; r < nr; ++r) {
        T* s = S + r * Bc;
        const T lim = T(clamp64(diag + r, 0, nc));
        T x = ninf;
#pragma omp simd reduction(max : x)
        for (int c = 0; c < Bc; ++c) {
          T y = sel(cidx[c] < lim && colok[c] != T(0), s[c] * scale, ninf);
          s[c] = y;
          x = std::max(x, y);
        }
        mx[r] = x;
      }
      T* mi = m + i0;
#pragma omp simd
      for (int64_t r = 0; r < nr; ++r) {
        const T mnew = std::max(mi[r], mx[r]);
        const T mu = sel(mnew == ninf, T(0), mnew);  // a row with no key yet: keep every exp at 0
        alpha[r] = exp_softmax(mi[r] - mu);
        muse[r] = mu;
        mi[r] = mnew;
      }
      for (int64_t r = 0; r < nr; ++r) {
        T* s = S + r * Bc;
        const T mu = muse[r];
        T sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int c = 0; c < Bc; ++c) {
          T p = exp_softmax(s[c] - mu);
          s[c] = p;
          sum += p;
        }
        rsum[r] = sum;
        if (a.dropout > 0) {
          T z[Bc];
          dropout_scales(z, nc, a.seed, a.offset + static_cast<uint64_t>((bh * a.Tq + i0 + r) * a.Tk + j0), thr, keepScale);
          for (int64_t c = 0; c < nc; ++c) s[c] *= z[c];
        }
      }
      T* li = l + i0;
#pragma omp simd
      for (int64_t r = 0; r < nr; ++r) li[r] = li[r] * alpha[r] + rsum[r];
      tile_acc(S, Bc, 1, Vb, Dp, nc, O + i0 * Dp, Dp, Dp, nr, a.causal ? Band::QueryRows : Band::None, diag, alpha);
    }
  }
  for (int64_t qb = g; qb < nqb; qb += G) {
    const int64_t i0 = qb * kBr, nr = std::min(kBr, a.Tq - i0);
    for (int64_t i = i0; i < i0 + nr; ++i) {
      const T inv = l[i] > T(0) ? T(1) / l[i] : T(0);
      T* o = out + (bh * a.Tq + i) * D;
      for (int64_t d = 0; d < D; ++d) o[d] = O[i * Dp + d] * inv;
      lse[bh * a.Tq + i] = l[i] > T(0) ? m[i] + std::log(l[i]) : ninf;
    }
  }
}

template <class T>
int64_t forward_scratch(const AttentionArgs& a) {
  const int64_t Dp = round_up(a.D, kLanes<T>);
  return a.Tq * Dp + 2 * a.Tq + kBr * kBc<T> + a.D * kBc<T> + kBc<T> * Dp;
}

// Backward over the key tiles of one head assigned to group g (tiles g, g + G, ...): owns those
// rows of dk and dv, and adds its share of dq into its own partial buffer dqp [Tq x Dp].
template <class T>
KILN_AI void backward_task(const AttentionArgs& a, const T* q, const T* k, const T* v, const T* dout, const T* lse,
                           const T* out, T* dq_part, T* dq, T* dk, T* dv, int64_t G, int64_t task,
                           T* scratch) {
  constexpr int64_t Bc = kBc<T>;
  const int64_t D = a.D, Dp = round_up(D, kLanes<T>);
  const int64_t bh = task / G, g = task % G, b = bh / a.H;
  const int64_t off = a.Tk - a.Tq;
  const T* Qh = q + bh * a.Tq * D;
  const T* dOh = dout + bh * a.Tq * D;
  const T* K = k + bh * a.Tk * D;
  const T* V = v + bh * a.Tk * D;
  const T* L = lse + bh * a.Tq;
  const T scale = T(a.scale), ninf = -std::numeric_limits<T>::infinity();
  T* KT = scratch;          // D x Bc
  T* VT = KT + D * Bc;      // D x Bc
  T* Kb = VT + D * Bc;      // Bc x Dp
  T* dK = Kb + Bc * Dp;     // Bc x Dp
  T* dV = dK + Bc * Dp;     // Bc x Dp
  T* Qb = dV + Bc * Dp;     // kBr x Dp
  T* dOb = Qb + kBr * Dp;   // kBr x Dp
  T* P = dOb + kBr * Dp;    // kBr x Bc
  T* dP = P + kBr * Bc;     // kBr x Bc
  T* PZ = dP + kBr * Bc;    // kBr x Bc (dropped and rescaled P)
  T* Dh = PZ + kBr * Bc;    // Tq: D_i = rowsum(dO o O) of this head
  for (int64_t i = 0; i < a.Tq; ++i) {
    const T* o = out + (bh * a.Tq + i) * D;
    const T* g = dOh + i * D;
    T sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t d = 0; d < D; ++d) sum += o[d] * g[d];
    Dh[i] = sum;
  }
  // dq accumulates here: in scratch when this task is the head's only one, else in its partial buffer.
  T* dQ = G == 1 ? Dh + a.Tq : dq_part + task * a.Tq * Dp;
  std::fill(dQ, dQ + a.Tq * Dp, T(0));
  const int64_t kend = key_end(a, b);
  const uint32_t thr = dropout_threshold(a.dropout);
  const T keepScale = T(1) / T(1 - a.dropout);
  const bool drop = a.dropout > 0;
  const int64_t nkb = ceil_div(a.Tk, Bc);
  for (int64_t kb = g; kb < nkb; kb += G) {
    const int64_t j0 = kb * Bc, ncAll = std::min(Bc, a.Tk - j0);
    const int64_t nc = std::max<int64_t>(0, std::min(ncAll, kend - j0));  // keys this batch can see
    std::fill(dK, dK + Bc * Dp, T(0));
    std::fill(dV, dV + Bc * Dp, T(0));
    // Causal: query i sees key j iff i >= j - off, so the first query tile is where i = j0 - off lies.
    const int64_t iFirst = a.causal ? std::max<int64_t>(0, j0 - off) : 0;
    if (nc > 0 && iFirst < a.Tq) {
      pack_transposed(K, D, j0, nc, KT);
      pack_transposed(V, D, j0, nc, VT);
      pack_rows(K, D, Dp, j0, nc, Kb);
      const int32_t* km = a.keyMask ? a.keyMask + b * a.Tk + j0 : nullptr;
      T colok[Bc], cidx[Bc];
      column_flags(km, nc, colok, cidx);
      for (int64_t i0 = (iFirst / kBr) * kBr; i0 < a.Tq; i0 += kBr) {
        const int64_t nr = std::min(kBr, a.Tq - i0);
        pack_rows(Qh, D, Dp, i0, nr, Qb);
        pack_rows(dOh, D, Dp, i0, nr, dOb);
        const int64_t diag = a.causal ? i0 + off - j0 + 1 : kNoBand;
        tile_abt(Qb, Dp, KT, D, P, nr, diag);
        tile_abt(dOb, Dp, VT, D, dP, nr, diag);
        for (int64_t r = 0; r < nr; ++r) {
          const int64_t i = i0 + r;
          T* p = P + r * Bc;
          T* dp = dP + r * Bc;
          const T li = L[i];
          const T lim = li == ninf ? T(0) : T(clamp64(diag + r, 0, nc));
          const T lu = li == ninf ? T(0) : li;
#pragma omp simd
          for (int c = 0; c < Bc; ++c) {
            T e = exp_softmax(p[c] * scale - lu);
            p[c] = sel(cidx[c] < lim && colok[c] != T(0), e, T(0));
          }
          T* pz = p;
          if (drop) {
            pz = PZ + r * Bc;
            T z[Bc];
            dropout_scales(z, nc, a.seed, a.offset + static_cast<uint64_t>((bh * a.Tq + i) * a.Tk + j0), thr, keepScale);
            // The gradient reaches the undropped probabilities through the same mask and 1/(1-p).
            for (int64_t c = 0; c < nc; ++c) {
              pz[c] = p[c] * z[c];
              dp[c] *= z[c];
            }
            for (int64_t c = nc; c < Bc; ++c) pz[c] = T(0);
          }
          const T di = Dh[i];
#pragma omp simd
          for (int c = 0; c < Bc; ++c) dp[c] = p[c] * (dp[c] - di) * scale;  // dS, already scaled
        }
        // dV += PZ^T dO, dQ += dS K, dK += dS^T Q.
        const Band qrows = a.causal ? Band::QueryRows : Band::None, krows = a.causal ? Band::KeyRows : Band::None;
        tile_acc(drop ? PZ : P, 1, Bc, dOb, Dp, nr, dV, Dp, Dp, nc, krows, diag);
        tile_acc(dP, Bc, 1, Kb, Dp, nc, dQ + i0 * Dp, Dp, Dp, nr, qrows, diag);
        tile_acc(dP, 1, Bc, Qb, Dp, nr, dK, Dp, Dp, nc, krows, diag);
      }
    }
    for (int64_t c = 0; c < ncAll; ++c) {
      T* __restrict ok = dk + (bh * a.Tk + j0 + c) * D;
      T* __restrict ov = dv + (bh * a.Tk + j0 + c) * D;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) {
        ok[d] = dK[c * Dp + d];
        ov[d] = dV[c * Dp + d];
      }
    }
  }
  if (G == 1)  // this task is the head's only one: its partial dq is the answer
    for (int64_t i = 0; i < a.Tq; ++i) std::memcpy(dq + (bh * a.Tq + i) * D, dQ + i * Dp, sizeof(T) * D);
}

template <class T>
int64_t backward_scratch(const AttentionArgs& a) {
  const int64_t Dp = round_up(a.D, kLanes<T>), Bc = kBc<T>;
  return 2 * a.D * Bc + 3 * Bc * Dp + 2 * kBr * Dp + 3 * kBr * Bc + a.Tq + a.Tq * Dp;
}

// The ISA clones: one entry per (direction, type), the tile code inlined into each.
KILN_ATTN_CLONES void forward_task_f32(const AttentionArgs& a, const float* q, const float* k, const float* v,
                                       float* out, float* lse, int64_t G, int64_t task, float* scratch) {
  forward_task<float>(a, q, k, v, out, lse, G, task, scratch);
}
KILN_ATTN_CLONES void forward_task_f64(const AttentionArgs& a, const double* q, const double* k, const double* v,
                                       double* out, double* lse, int64_t G, int64_t task, double* scratch) {
  forward_task<double>(a, q, k, v, out, lse, G, task, scratch);
}
KILN_ATTN_CLONES void backward_task_f32(const AttentionArgs& a, const float* q, const float* k, const float* v,
                                        const float* dout, const float* lse, const float* out, float* dqp, float* dq, float* dk,
                                        float* dv, int64_t G, int64_t task, float* scratch) {
  backward_task<float>(a, q, k, v, dout, lse, out, dqp, dq, dk, dv, G, task, scratch);
}
KILN_ATTN_CLONES void backward_task_f64(const AttentionArgs& a, const double* q, const double* k, const double* v,
                                        const double* dout, const double* lse, const double* out, double* dqp, double* dq,
                                        double* dk, double* dv, int64_t G, int64_t task, double* scratch) {
  backward_task<double>(a, q, k, v, dout, lse, out, dqp, dq, dk, dv, G, task, scratch);
}
inline void forward_task_t(const AttentionArgs& a, const float* q, const float* k, const float* v, float* out,
                           float* lse, int64_t G, int64_t task, float* s) { forward_task_f32(a, q, k, v, out, lse, G, task, s); }
inline void forward_task_t(const AttentionArgs& a, const double* q, const double* k, const double* v, double* out,
                           double* lse, int64_t G, int64_t task, double* s) { forward_task_f64(a, q, k, v, out, lse, G, task, s); }
inline void backward_task_t(const AttentionArgs& a, const float* q, const float* k, const float* v, const float* dout,
                            const float* lse, const float* out, float* dqp, float* dq, float* dk, float* dv, int64_t G,
                            int64_t task, float* s) { backward_task_f32(a, q, k, v, dout, lse, out, dqp, dq, dk, dv, G, task, s); }
inline void backward_task_t(const AttentionArgs& a, const double* q, const double* k, const double* v,
                            const double* dout, const double* lse, const double* out, double* dqp, double* dq, double* dk,
                            double* dv, int64_t G, int64_t task, double* s) {
  backward_task_f64(a, q, k, v, dout, lse, out, dqp, dq, dk, dv, G, task, s);
}

inline int omp_thread() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

int team_size(int64_t tasks, int64_t work) {
  int64_t nt = threads_for(work);
  return static_cast<int>(std::max<int64_t>(1, std::min(nt, tasks)));
}

}  // namespace

// Groups per head: enough tasks to keep 8 threads busy, a function of the shape only (so results do
// not depend on the thread count).
inline int64_t groups_per_head(int64_t BH, int64_t tiles) {
  return std::max<int64_t>(1, std::min(tiles, ceil_div(8, BH)));
}

template <class T>
void attention_forward(const AttentionArgs& a, const T* q, const T* k, const T* v, T* out, T* lse) {
  const int64_t BH = a.B * a.H;
  if (BH == 0 || a.Tq == 0) return;
  const int64_t G = groups_per_head(BH, ceil_div(a.Tq, kBr)), tasks = BH * G;
  const int nt = team_size(tasks, BH * a.Tq * std::max<int64_t>(a.Tk, 1) * a.D / 16);
  const int64_t per = forward_scratch<T>(a);
  std::vector<T> scratch(static_cast<size_t>(per * nt));
  // Dynamic: causal tiles differ in cost and the machine may be shared; outputs do not depend on it.
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    T* s = scratch.data() + per * omp_thread();
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) forward_task_t(a, q, k, v, out, lse, G, t, s);
  }
}

template <class T>
void attention_backward(const AttentionArgs& a, const T* q, const T* k, const T* v, const T* out, const T* dout,
                        const T* lse, T* dq, T* dk, T* dv) {
  const int64_t BH = a.B * a.H, D = a.D, Dp = round_up(D, kLanes<T>);
  if (BH == 0) return;
  if (a.Tq == 0 || a.Tk == 0) {
    std::fill(dq, dq + BH * a.Tq * D, T(0));
    std::fill(dk, dk + BH * a.Tk * D, T(0));
    std::fill(dv, dv + BH * a.Tk * D, T(0));
    return;
  }
  const int64_t work = BH * a.Tq * a.Tk * D / 16;
  // Few heads: split each head's key tiles over G groups (a function of the shape only, so the
  // summation order of dq does not depend on the thread count).
  const int64_t nkb = ceil_div(a.Tk, kBc<T>);
  const int64_t G = groups_per_head(BH, nkb);
  const int64_t tasks = BH * G;
  std::vector<T> dqp(G > 1 ? static_cast<size_t>(tasks * a.Tq * Dp) : 0);
  const int nt = team_size(tasks, work);
  const int64_t per = backward_scratch<T>(a);
  std::vector<T> scratch(static_cast<size_t>(per * nt));
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    T* s = scratch.data() + per * omp_thread();
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) backward_task_t(a, q, k, v, dout, lse, out, dqp.data(), dq, dk, dv, G, t, s);
  }
  if (G == 1) return;  // each head's task wrote dq itself
  parallel_tasks(BH, BH * a.Tq * D * G, [&](int64_t bh) {
    for (int64_t i = 0; i < a.Tq; ++i) {
      T* o = dq + (bh * a.Tq + i) * D;
      const T* p0 = dqp.data() + (bh * G * a.Tq + i) * Dp;
      for (int64_t d = 0; d < D; ++d) o[d] = p0[d];
      for (int64_t g = 1; g < G; ++g) {
        const T* p = p0 + g * a.Tq * Dp;
        for (int64_t d = 0; d < D; ++d) o[d] += p[d];
      }
    }
  });
}

template void attention_forward<float>(const AttentionArgs&, const float*, const float*, const float*, float*, float*);
template void attention_forward<double>(const AttentionArgs&, const double*, const double*, const double*, double*,
                                        double*);
template void attention_backward<float>(const AttentionArgs&, const float*, const float*, const float*, const float*,
                                        const float*, const float*, float*, float*, float*);
template void attention_backward<double>(const AttentionArgs&, const double*, const double*, const double*,
                                         const double*, const double*, const double*, double*, double*, double*);

}  // namespace cpu
}  // namespace kiln
