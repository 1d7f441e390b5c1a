// Contrastive-loss kernels (contrastive.cc): InfoNCE / NT-Xent / CLIP over a similarity matrix that
// is never stored whole, and the DISSL distillation terms. Pure compute on raw pointers.
#pragma once
#include <cstdint>

namespace kiln {
namespace cpu {

// A square InfoNCE problem: `rows` queries q and `rows` keys k (both [rows, dim], row-major).
// logit(i, j) = scale * sim(q_i, k_j), sim = dot or cosine (rows L2-normalised, eps 1e-12).
// Row i's targets: weight w_pos on column (i + shift) % rows and w_self on column i; mask_self
// drops column i from row i's softmax (then w_self must be 0). shared: k is q (SimCLR), and
// the backward writes the whole gradient into dq.
// loss_i = (w_pos + w_self) * lse_i - w_pos * logit(i, pos) - w_self * logit(i, i).
struct NceSpec {
  int64_t rows = 0;
  int64_t dim = 0;
  int64_t shift = 0;
  bool cosine = true;
  bool mask_self = true;
  bool shared = true;
  double scale = 1.0;
  double w_pos = 1.0;
  double w_self = 0.0;
};

// Tiled forward with an online logsumexp: writes loss, lse, esim (sum_j p_ij sim_ij) and tsim
// (w_pos sim(i, pos) + w_self sim(i, i)), each [rows]; esim and tsim give d loss / d scale.
template <class T>
void nce_forward(const NceSpec& s, const T* q, const T* k, T* loss, T* lse, T* esim, T* tsim);
// Recomputes the tiles: grow[i] is d total / d loss_i. Writes dq (and dk unless shared), [rows, dim].
template <class T>
void nce_backward(const NceSpec& s, const T* q, const T* k, const T* lse, const T* grow, T* dq, T* dk);

// DISSL: loss_i = -sum_c softmax(t_i / tau_t)_c * log_softmax(s_i / tau_s)_c over [n, c] logits.
template <class T>
void dissl_ce_forward(const T* t, const T* s, T* loss, int64_t n, int64_t c, T tau_t, T tau_s);
// g[i] = d total / d loss_i; dt and ds are [n, c] (either may be null).
template <class T>
void dissl_ce_backward(const T* t, const T* s, const T* g, T* dt, T* ds, int64_t n, int64_t c, T tau_t, T tau_s);
// H = entropy of pbar = mean_i softmax(t_i / tau); writes pbar [c] and *h.
template <class T>
void mean_entropy_forward(const T* t, T* pbar, T* h, int64_t n, int64_t c, T tau);
// dt [n, c] = g * dH / dt.
template <class T>
void mean_entropy_backward(const T* t, const T* pbar, T g, T* dt, int64_t n, int64_t c, T tau);

}  // namespace cpu
}  // namespace kiln
