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
#include "attention_tiles.h"
#include "parallel.h"

namespace kiln {
namespace cpu {
namespace {

using namespace attention_tiles;

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
    z[c] = philox::dropout_keeps(philox::word(blk, unsigned(w & 3)), threshold) ? keepScale : T(0);
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
  const T* K = k + bh * a.k_head_stride();
  const T* V = v + bh * a.v_head_stride();
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
  const uint32_t thr = philox::dropout_threshold(a.dropout);
  const T keepScale = T(1) / T(1 - a.dropout);
  for (int64_t j0 = 0; j0 < kend; j0 += Bc) {
    const int64_t nc = std::min(Bc, kend - j0);
    pack_transposed(K, D, j0, nc, KT);
    pack_rows(V, D, Dp, j0, nc, Vb);
    const int32_t* km = a.keyMask ? a.keyMask + b * a.Tk + j0 : nullptr;
    zero_masked_keys(km, nc, Vb, Dp, D, 1);
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
      // l = 0: the row saw no key (output 0, lse -inf); l NaN: a NaN score, which stays NaN.
      const T inv = l[i] > T(0) ? T(1) / l[i] : (l[i] == T(0) ? T(0) : l[i]);
      T* o = out + (bh * a.Tq + i) * D;
      for (int64_t d = 0; d < D; ++d) o[d] = O[i * Dp + d] * inv;
      lse[bh * a.Tq + i] = l[i] > T(0) ? m[i] + std::log(l[i]) : (l[i] == T(0) ? ninf : l[i]);
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
  const T* K = k + bh * a.k_head_stride();
  const T* V = v + bh * a.v_head_stride();
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
  const uint32_t thr = philox::dropout_threshold(a.dropout);
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
      zero_masked_keys(km, nc, VT, 1, D, Bc);  // dP = dO V^T, then dQ = dS K
      zero_masked_keys(km, nc, Kb, Dp, D, 1);
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
            T e = exp_softmax(std::min(p[c] * scale - lu, T(0)));  // P <= 1 (rounding; NaN stays)
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
