// Fused optimizer kernels: one pass over a parameter tensor updates the parameter and its state in
// place (no temporaries). Scalars that depend only on the step (bias corrections) come precomputed.
#pragma once
#include <cstdint>

namespace kiln {
namespace cpu {

// Adam / AdamW, PyTorch semantics. decoupled: p *= 1 - lr*wd (AdamW); else g += wd*p (Adam, L2).
// m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
// p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps), with bc1 = 1 - b1^t and bc2 = 1 - b2^t.
template <class T>
void adam_step(T* p, const T* g, T* m, T* v, int64_t n, double lr, double beta1, double beta2, double eps,
               double weightDecay, double bc1, double bc2, bool decoupled);

// SGD with momentum (PyTorch semantics): g += wd*p; buf = first ? g : momentum*buf + (1-dampening)*g;
// d = nesterov ? g + momentum*buf : buf; p -= lr*d. buf may be null when momentum == 0.
template <class T>
void sgd_step(T* p, const T* g, T* buf, int64_t n, double lr, double momentum, double dampening, double weightDecay,
              bool nesterov, bool first);

// Sum of squares in double (for the global gradient norm).
template <class T>
double sum_squares(const T* x, int64_t n);

// x *= s in place.
template <class T>
void scale_inplace(T* x, int64_t n, double s);

// EMA of weights: shadow = decay*shadow + (1-decay)*p.
template <class T>
void ema_update(T* shadow, const T* p, int64_t n, double decay);

}  // namespace cpu
}  // namespace kiln
