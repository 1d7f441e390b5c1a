// CUDA fused optimizer kernels with the semantics of kernels/cpu/optim.cc: AdamW/Adam, SGD with
// momentum, scale and EMA are each one elementwise pass (16-byte vectors when every operand is
// aligned) that updates the parameter and its state in place; the step-only scalars come
// precomputed like on the CPU. sum_squares is a two-stage double reduction with a fixed grid, so it
// is deterministic; it is the only one that waits for the device (its caller needs the number).
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "core_api.h"
#include "core_common.cuh"

namespace kiln {
namespace cuda {
namespace {

using namespace core;
using cpu::DType;

template <class T>
struct AdamOp {
  T b1, b2, ob1, ob2, eps, wd, stepSize, rsqrtBc2, decay;
  bool decoupled;
  __device__ void operator()(T& p, T g, T& m, T& v) const {
    if (decoupled) p *= decay;
    else g += wd * p;
    m = b1 * m + ob1 * g;
    v = b2 * v + ob2 * g * g;
    const T denom = sqrt(v) * rsqrtBc2 + eps;
    p = p - stepSize * (m / denom);
  }
};

template <class T>
struct SgdOp {
  T lr, mom, damp, wd;
  bool nesterov, first, hasBuf;
  __device__ void operator()(T& p, T g, T& buf, T&) const {
    const T gi = g + wd * p;
    T d = gi;
    if (hasBuf) {
      const T b = first ? gi : mom * buf + damp * gi;
      buf = b;
      d = nesterov ? gi + mom * b : b;
    }
    p -= lr * d;
  }
};

template <class T>
struct ScaleOp {
  T s;
  __device__ void operator()(T& x, T, T&, T&) const { x *= s; }
};

template <class T>
struct EmaOp {
  T d, od;
  __device__ void operator()(T& shadow, T p, T&, T&) const { shadow = d * shadow + od * p; }
};

// a is updated in place, b read (may be null), c and d updated in place (may be null).
template <class T, class Op>
__global__ void update_kernel(T* __restrict__ a, const T* __restrict__ b, T* __restrict__ c, T* __restrict__ d, int64_t n, Op op,
                              bool vec) {
  constexpr int W = Vec16<T>::kN;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, stride = int64_t(gridDim.x) * blockDim.x;
  int64_t done = 0;
  if (vec) {
    const int64_t nv = n / W;
    for (int64_t q = tid; q < nv; q += stride) {
      const int64_t i = q * W;
      Vec16<T> A = load16(a + i), B{}, C{}, D{};
      if (b) B = load16(b + i);
      if (c) C = load16(c + i);
      if (d) D = load16(d + i);
#pragma unroll
      for (int l = 0; l < W; ++l) op(A.v[l], B.v[l], C.v[l], D.v[l]);
      store16(a + i, A);
      if (c) store16(c + i, C);
      if (d) store16(d + i, D);
    }
    done = nv * W;
  }
  for (int64_t i = done + tid; i < n; i += stride) {
    T A = a[i], B = b ? b[i] : T(0), C = c ? c[i] : T(0), D = d ? d[i] : T(0);
    op(A, B, C, D);
    a[i] = A;
    if (c) c[i] = C;
    if (d) d[i] = D;
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

template <class T, class Op>
std::string run_update(T* a, const T* b, T* c, T* d, int64_t n, const Op& op) {
  if (n <= 0) return "";
  const bool vec = aligned16(a) && aligned16(b) && aligned16(c) && aligned16(d);  // null is aligned
  const int64_t items = vec ? n / Vec16<T>::kN + Vec16<T>::kN : n;
  update_kernel<T, Op><<<grid_for(items, kThreads, int64_t(sm_count()) * 16), kThreads>>>(a, b, c, d, n, op, vec);
  return launched();
}

template <class T>
__global__ void sum_squares_kernel(const T* __restrict__ x, int64_t n, double* __restrict__ part) {
  double s = 0;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const double v = static_cast<double>(x[i]);
    s += v * v;
  }
  s = block_reduce<SumD>(s);
  if (threadIdx.x == 0) part[blockIdx.x] = s;
}

__global__ void sum_parts_kernel(const double* __restrict__ part, int n, double* __restrict__ out) {
  double s = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) s += part[i];
  s = block_reduce<SumD>(s);
  if (threadIdx.x == 0) *out = s;
}

template <class T>
std::string run_sum_squares(const T* x, int64_t n, double* out) {
  *out = 0;
  if (n <= 0) return "";
  const unsigned blocks = grid_for(n, int64_t(kThreads) * 8, int64_t(sm_count()) * 4);
  Scratch part;
  if (auto err = part.get(sizeof(double) * (blocks + 1)); !err.empty()) return err;
  double* p = part.as<double>();
  sum_squares_kernel<T><<<blocks, kThreads>>>(x, n, p);
  sum_parts_kernel<<<1, kThreads>>>(p, static_cast<int>(blocks), p + blocks);
  if (auto err = launched(); !err.empty()) return err;
  return checked(cudaMemcpy(out, p + blocks, sizeof(double), cudaMemcpyDeviceToHost));
}

template <class T>
std::string adam_typed(void* p, const void* g, void* m, void* v, int64_t n, double lr, double beta1, double beta2, double eps,
                       double weightDecay, double bc1, double bc2, bool decoupled) {
  AdamOp<T> op;
  op.b1 = T(beta1);
  op.b2 = T(beta2);
  op.ob1 = T(1) - op.b1;
  op.ob2 = T(1) - op.b2;
  op.eps = T(eps);
  op.wd = T(weightDecay);
  op.stepSize = T(lr / bc1);
  op.rsqrtBc2 = T(1.0 / std::sqrt(bc2));
  op.decay = T(1.0 - lr * weightDecay);
  op.decoupled = decoupled;
  return run_update(static_cast<T*>(p), static_cast<const T*>(g), static_cast<T*>(m), static_cast<T*>(v), n, op);
}

template <class T>
std::string sgd_typed(void* p, const void* g, void* buf, int64_t n, double lr, double momentum, double dampening,
                      double weightDecay, bool nesterov, bool first) {
  SgdOp<T> op;
  op.lr = T(lr);
  op.mom = T(momentum);
  op.damp = T(1.0 - dampening);
  op.wd = T(weightDecay);
  op.nesterov = nesterov;
  op.first = first;
  op.hasBuf = buf != nullptr;
  return run_update(static_cast<T*>(p), static_cast<const T*>(g), static_cast<T*>(buf), static_cast<T*>(nullptr), n, op);
}

}  // namespace

std::string adam_step(DType dtype, void* p, const void* g, void* m, void* v, int64_t n, double lr, double beta1, double beta2,
                      double eps, double weightDecay, double bc1, double bc2, bool decoupled) {
  if (dtype == DType::F32) return adam_typed<float>(p, g, m, v, n, lr, beta1, beta2, eps, weightDecay, bc1, bc2, decoupled);
  if (dtype == DType::F64) return adam_typed<double>(p, g, m, v, n, lr, beta1, beta2, eps, weightDecay, bc1, bc2, decoupled);
  return "adam: unsupported dtype";
}

std::string sgd_step(DType dtype, void* p, const void* g, void* buf, int64_t n, double lr, double momentum, double dampening,
                     double weightDecay, bool nesterov, bool first) {
  if (dtype == DType::F32) return sgd_typed<float>(p, g, buf, n, lr, momentum, dampening, weightDecay, nesterov, first);
  if (dtype == DType::F64) return sgd_typed<double>(p, g, buf, n, lr, momentum, dampening, weightDecay, nesterov, first);
  return "sgd: unsupported dtype";
}

std::string sum_squares(DType dtype, const void* x, int64_t n, double* out) {
  if (dtype == DType::F32) return run_sum_squares(static_cast<const float*>(x), n, out);
  if (dtype == DType::F64) return run_sum_squares(static_cast<const double*>(x), n, out);
  return "sumSquares: unsupported dtype";
}

std::string scale_inplace(DType dtype, void* x, int64_t n, double s) {
  if (dtype == DType::F32)
    return run_update(static_cast<float*>(x), static_cast<const float*>(nullptr), static_cast<float*>(nullptr),
                      static_cast<float*>(nullptr), n, ScaleOp<float>{static_cast<float>(s)});
  if (dtype == DType::F64)
    return run_update(static_cast<double*>(x), static_cast<const double*>(nullptr), static_cast<double*>(nullptr),
                      static_cast<double*>(nullptr), n, ScaleOp<double>{s});
  return "scale: unsupported dtype";
}

std::string ema_update(DType dtype, void* shadow, const void* p, int64_t n, double decay) {
  if (dtype == DType::F32)
    return run_update(static_cast<float*>(shadow), static_cast<const float*>(p), static_cast<float*>(nullptr),
                      static_cast<float*>(nullptr), n, EmaOp<float>{static_cast<float>(decay), static_cast<float>(1.0 - decay)});
  if (dtype == DType::F64)
    return run_update(static_cast<double*>(shadow), static_cast<const double*>(p), static_cast<double*>(nullptr),
                      static_cast<double*>(nullptr), n, EmaOp<double>{decay, 1.0 - decay});
  return "ema: unsupported dtype";
}

}  // namespace cuda
}  // namespace kiln
