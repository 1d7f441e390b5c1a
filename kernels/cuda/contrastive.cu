// CUDA contrastive kernels with the semantics of kernels/cpu/contrastive.cc: one block per output
// row, a warp per similarity (lanes split the dot product, reads coalesced), an online logsumexp per
// warp merged in shared memory; the backward recomputes similarities a chunk of columns at a time
// and accumulates the row's gradient in shared memory. The similarity matrix is never stored.
// Compiled in every CUDA build; not yet run on a GPU in this repository's history (see issue 6).
#include <cuda_runtime.h>

#include <cstdint>

#include "contrastive_api.h"
#include "cuda_api.h"

namespace kiln {
namespace cuda {
namespace {

using cpu::DType;
using cpu::NceSpec;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kChunk = 64;  // columns per backward chunk

std::string launched() {
  cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? "" : std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

template <class T> __device__ inline T dexp(T x) { return exp(x); }
template <class T> __device__ inline T dlog(T x) { return log(x); }
template <class T> __device__ inline T neg_inf() { return -INFINITY; }

template <class T>
__device__ inline T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// <a, b> over dim by one warp; every lane returns the sum.
template <class T>
__device__ inline T warp_dot(const T* a, const T* b, int64_t dim, int lane) {
  T s = 0;
  for (int64_t d = lane; d < dim; d += 32) s += a[d] * b[d];
  return warp_sum(s);
}

// The sum over the block of v (all threads get it); scratch holds kWarps values.
template <class T>
__device__ inline T block_sum(T v, T* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T s = 0;
  for (int w = 0; w < kWarps; ++w) s += scratch[w];
  return s;
}

template <class T>
__global__ void normalize_rows_kernel(const T* x, T* y, T* norms, int64_t dim) {
  __shared__ T scratch[kWarps];
  const T* xr = x + blockIdx.x * dim;
  T s = 0;
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) s += xr[d] * xr[d];
  const T n = sqrt(block_sum(s, scratch));
  const T inv = T(1) / (n > T(1e-12) ? n : T(1e-12));
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) y[blockIdx.x * dim + d] = xr[d] * inv;
  if (threadIdx.x == 0) norms[blockIdx.x] = n;
}

template <class T>
__global__ void normalize_backward_kernel(const T* y, const T* norms, T* g, int64_t dim) {
  __shared__ T scratch[kWarps];
  const T* yr = y + blockIdx.x * dim;
  T* gr = g + blockIdx.x * dim;
  T s = 0;
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) s += yr[d] * gr[d];
  const T p = block_sum(s, scratch), n = norms[blockIdx.x];
  __syncthreads();
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x)
    gr[d] = n > T(1e-12) ? (gr[d] - yr[d] * p) / n : gr[d] * T(1e12);
}

struct Params {
  int64_t rows, dim, shift;
  bool mask_self;
  double scale, w_pos, w_self;
};

__device__ inline int64_t pos_of(const Params& p, int64_t i) { return (i + p.shift) % p.rows; }

template <class T>
__global__ void nce_forward_kernel(Params p, const T* q, const T* k, T* loss, T* lse, T* esim, T* tsim) {
  __shared__ T sm[kWarps], ss[kWarps], sss[kWarps];
  const int64_t i = blockIdx.x;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const T scale = T(p.scale);
  const T* qi = q + i * p.dim;
  T m = neg_inf<T>(), sum = 0, ssum = 0;
  for (int64_t j = warp; j < p.rows; j += kWarps) {
    if (p.mask_self && j == i) continue;
    const T s = warp_dot(qi, k + j * p.dim, p.dim, lane);
    const T l = scale * s;
    if (l > m) {
      const T corr = m == neg_inf<T>() ? T(0) : dexp(m - l);
      sum *= corr;
      ssum *= corr;
      m = l;
    }
    const T e = dexp(l - m);
    sum += e;
    ssum += e * s;
  }
  if (lane == 0) sm[warp] = m, ss[warp] = sum, sss[warp] = ssum;
  __syncthreads();
  if (threadIdx.x == 0) {
    T M = neg_inf<T>();
    for (int w = 0; w < kWarps; ++w) M = sm[w] > M ? sm[w] : M;
    T S = 0, SS = 0;
    for (int w = 0; w < kWarps; ++w) {
      if (sm[w] == neg_inf<T>()) continue;
      const T c = dexp(sm[w] - M);
      S += ss[w] * c;
      SS += sss[w] * c;
    }
    lse[i] = M + dlog(S);
    esim[i] = SS / S;
  }
  // Target similarities, one warp each.
  if (warp == 0) {
    T t = 0;
    if (p.w_pos != 0) t += T(p.w_pos) * warp_dot(qi, k + pos_of(p, i) * p.dim, p.dim, lane);
    if (p.w_self != 0) t += T(p.w_self) * warp_dot(qi, k + i * p.dim, p.dim, lane);
    if (lane == 0) tsim[i] = t;
  }
  __syncthreads();
  if (threadIdx.x == 0) loss[i] = T(p.w_pos + p.w_self) * lse[i] - scale * tsim[i];
}

// dL entry for (row a, column j): c_a (wsum p_aj - w_aj), the self pair zeroed when masked.
template <class T>
__device__ inline T dl_entry(const Params& p, int64_t a, int64_t j, T sim, const T* lse, const T* grow) {
  if (p.mask_self && a == j) return 0;
  const T c = grow[a] * T(p.scale);
  T g = c * T(p.w_pos + p.w_self) * dexp(T(p.scale) * sim - lse[a]);
  if (j == pos_of(p, a)) g -= c * T(p.w_pos);
  if (j == a) g -= c * T(p.w_self);
  return g;
}

// Block `a` accumulates out_a = sum_j G(a, j) v_j, G = dL (transposed when `columns`), plus dL^T when shared.
template <class T>
__global__ void nce_grad_kernel(Params p, const T* u, const T* v, const T* lse, const T* grow, T* out, bool columns,
                                bool shared) {
  extern __shared__ unsigned char smem_raw[];
  T* acc = reinterpret_cast<T*>(smem_raw);
  T* g = acc + p.dim;
  const int64_t a = blockIdx.x;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const T* ua = u + a * p.dim;
  for (int64_t d = threadIdx.x; d < p.dim; d += blockDim.x) acc[d] = 0;
  for (int64_t j0 = 0; j0 < p.rows; j0 += kChunk) {
    const int64_t n = p.rows - j0 < kChunk ? p.rows - j0 : kChunk;
    for (int64_t c = warp; c < n; c += kWarps) {
      const int64_t j = j0 + c;
      const T s = warp_dot(ua, v + j * p.dim, p.dim, lane);
      T val;
      if (columns) val = dl_entry(p, j, a, s, lse, grow);  // entry (row j, column a)
      else {
        val = dl_entry(p, a, j, s, lse, grow);
        if (shared) val += dl_entry(p, j, a, s, lse, grow);
      }
      if (lane == 0) g[c] = val;
    }
    __syncthreads();
    for (int64_t d = threadIdx.x; d < p.dim; d += blockDim.x) {
      T s = acc[d];
      for (int64_t c = 0; c < n; ++c) s += g[c] * v[(j0 + c) * p.dim + d];
      acc[d] = s;
    }
    __syncthreads();
  }
  for (int64_t d = threadIdx.x; d < p.dim; d += blockDim.x) out[a * p.dim + d] = acc[d];
}

template <class T>
T* scratch(size_t elems, std::string* err) {
  return static_cast<T*>(alloc(elems * sizeof(T), err));
}

template <class T>
std::string forward_t(const NceSpec& s, const T* q, const T* k, T* loss, T* lse, T* esim, T* tsim) {
  if (s.rows == 0) return "";
  Params p{s.rows, s.dim, s.shift, s.mask_self, s.scale, s.w_pos, s.w_self};
  std::string err;
  T *qn = nullptr, *kn = nullptr, *norms = nullptr;
  const size_t rd = static_cast<size_t>(s.rows * s.dim);
  if (s.cosine) {
    qn = scratch<T>(rd, &err);
    norms = scratch<T>(static_cast<size_t>(s.rows), &err);
    if (!s.shared) kn = scratch<T>(rd, &err);
    if (!err.empty()) return err;
    normalize_rows_kernel<T><<<s.rows, kThreads>>>(q, qn, norms, s.dim);
    if (!s.shared) normalize_rows_kernel<T><<<s.rows, kThreads>>>(k, kn, norms, s.dim);
    q = qn;
    k = s.shared ? qn : kn;
  } else if (s.shared) {
    k = q;
  }
  nce_forward_kernel<T><<<s.rows, kThreads>>>(p, q, k, loss, lse, esim, tsim);
  err = launched();
  if (qn) release(qn, rd * sizeof(T));
  if (kn) release(kn, rd * sizeof(T));
  if (norms) release(norms, static_cast<size_t>(s.rows) * sizeof(T));
  return err;
}

template <class T>
std::string backward_t(const NceSpec& s, const T* q, const T* k, const T* lse, const T* grow, T* dq, T* dk) {
  if (s.rows == 0) return "";
  Params p{s.rows, s.dim, s.shift, s.mask_self, s.scale, s.w_pos, s.w_self};
  const size_t smem = static_cast<size_t>(s.dim + kChunk) * sizeof(T);
  if (smem > 48 * 1024) return "contrastive CUDA kernel: dim " + std::to_string(s.dim) + " is too large";
  std::string err;
  T *qn = nullptr, *kn = nullptr, *qnorm = nullptr, *knorm = nullptr;
  const size_t rd = static_cast<size_t>(s.rows * s.dim), r = static_cast<size_t>(s.rows);
  if (s.cosine) {
    qn = scratch<T>(rd, &err);
    qnorm = scratch<T>(r, &err);
    if (!s.shared) kn = scratch<T>(rd, &err), knorm = scratch<T>(r, &err);
    if (!err.empty()) return err;
    normalize_rows_kernel<T><<<s.rows, kThreads>>>(q, qn, qnorm, s.dim);
    if (!s.shared) normalize_rows_kernel<T><<<s.rows, kThreads>>>(k, kn, knorm, s.dim);
  }
  const T* qq = s.cosine ? qn : q;
  const T* kk = s.shared ? qq : (s.cosine ? kn : k);
  nce_grad_kernel<T><<<s.rows, kThreads, smem>>>(p, qq, kk, lse, grow, dq, false, s.shared);
  if (s.cosine) normalize_backward_kernel<T><<<s.rows, kThreads>>>(qq, qnorm, dq, s.dim);
  if (!s.shared) {
    nce_grad_kernel<T><<<s.rows, kThreads, smem>>>(p, kk, qq, lse, grow, dk, true, false);
    if (s.cosine) normalize_backward_kernel<T><<<s.rows, kThreads>>>(kk, knorm, dk, s.dim);
  }
  err = launched();
  if (qn) release(qn, rd * sizeof(T)), release(qnorm, r * sizeof(T));
  if (kn) release(kn, rd * sizeof(T)), release(knorm, r * sizeof(T));
  return err;
}

// ---- DISSL terms: one block per row ----

// Row softmax of x / tau into p (and log-softmax into lp when not null); returns nothing.
template <class T>
__device__ void block_softmax(const T* x, T* p, T* lp, int64_t c, T tau, T* scratch) {
  T m = neg_inf<T>();
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) m = x[j] / tau > m ? x[j] / tau : m;
  for (int o = 16; o > 0; o >>= 1) {
    T other = __shfl_xor_sync(0xffffffffu, m, o);
    m = other > m ? other : m;
  }
  __syncthreads();
  if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = m;
  __syncthreads();
  T M = neg_inf<T>();
  for (int w = 0; w < kWarps; ++w) M = scratch[w] > M ? scratch[w] : M;
  T s = 0;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) s += dexp(x[j] / tau - M);
  const T S = block_sum(s, scratch);
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
    p[j] = dexp(x[j] / tau - M) / S;
    if (lp) lp[j] = x[j] / tau - M - dlog(S);
  }
  __syncthreads();
}

template <class T>
__global__ void dissl_kernel(const T* t, const T* s, const T* g, T* loss, T* dt, T* ds, T* work, int64_t c, T tt, T ts) {
  __shared__ T scratch[kWarps];
  const int64_t i = blockIdx.x;
  T* p = work + i * 3 * c;
  T* q = p + c;
  T* lq = q + c;
  block_softmax(t + i * c, p, static_cast<T*>(nullptr), c, tt, scratch);
  block_softmax(s + i * c, q, lq, c, ts, scratch);
  T e = 0;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) e += p[j] * lq[j];
  const T E = block_sum(e, scratch);
  if (loss) {
    if (threadIdx.x == 0) loss[i] = -E;
    return;
  }
  const T gi = g[i];
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
    if (ds) ds[i * c + j] = gi * (q[j] - p[j]) / ts;
    if (dt) dt[i * c + j] = -gi * p[j] * (lq[j] - E) / tt;
  }
}

template <class T>
__global__ void softmax_rows_kernel(const T* t, T* p, int64_t c, T tau) {
  __shared__ T scratch[kWarps];
  block_softmax(t + blockIdx.x * c, p + blockIdx.x * c, static_cast<T*>(nullptr), c, tau, scratch);
}

// pbar_j = mean_i p_ij, rows summed in order (deterministic).
template <class T>
__global__ void column_mean_kernel(const T* p, T* pbar, int64_t n, int64_t c) {
  const int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (j >= c) return;
  T s = 0;
  for (int64_t i = 0; i < n; ++i) s += p[i * c + j];
  pbar[j] = s / T(n);
}

template <class T>
__global__ void entropy_kernel(const T* pbar, T* h, int64_t c) {
  __shared__ T scratch[kWarps];
  T s = 0;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) s -= pbar[j] > T(0) ? pbar[j] * dlog(pbar[j]) : T(0);
  const T H = block_sum(s, scratch);
  if (threadIdx.x == 0) *h = H;
}

template <class T>
__global__ void entropy_backward_kernel(const T* pbar, T* dt, int64_t n, int64_t c, T g, T tau) {
  __shared__ T scratch[kWarps];
  T* d = dt + blockIdx.x * c;  // holds p_i on entry
  T e = 0;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
    const T u = pbar[j] > T(0) ? -g * (dlog(pbar[j]) + T(1)) / T(n) : T(0);
    e += d[j] * u;
  }
  const T E = block_sum(e, scratch);
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
    const T u = pbar[j] > T(0) ? -g * (dlog(pbar[j]) + T(1)) / T(n) : T(0);
    d[j] = d[j] * (u - E) / tau;
  }
}

template <class T>
std::string dissl_t(const T* t, const T* s, const T* g, T* loss, T* dt, T* ds, int64_t n, int64_t c, T tt, T ts) {
  if (n == 0) return "";
  std::string err;
  const size_t elems = static_cast<size_t>(n * c * 3);
  T* work = scratch<T>(elems, &err);
  if (!err.empty()) return err;
  dissl_kernel<T><<<n, kThreads>>>(t, s, g, loss, dt, ds, work, c, tt, ts);
  err = launched();
  release(work, elems * sizeof(T));
  return err;
}

template <class T>
std::string entropy_forward_t(const T* t, T* pbar, T* h, int64_t n, int64_t c, T tau) {
  std::string err;
  const size_t elems = static_cast<size_t>(n * c);
  T* p = scratch<T>(elems, &err);
  if (!err.empty()) return err;
  softmax_rows_kernel<T><<<n, kThreads>>>(t, p, c, tau);
  column_mean_kernel<T><<<(c + kThreads - 1) / kThreads, kThreads>>>(p, pbar, n, c);
  entropy_kernel<T><<<1, kThreads>>>(pbar, h, c);
  err = launched();
  release(p, elems * sizeof(T));
  return err;
}

template <class T>
std::string entropy_backward_t(const T* t, const T* pbar, T g, T* dt, int64_t n, int64_t c, T tau) {
  softmax_rows_kernel<T><<<n, kThreads>>>(t, dt, c, tau);
  entropy_backward_kernel<T><<<n, kThreads>>>(pbar, dt, n, c, g, tau);
  return launched();
}

template <class T> const T* C(const void* p) { return static_cast<const T*>(p); }
template <class T> T* M(void* p) { return static_cast<T*>(p); }

}  // namespace

std::string nce_forward(DType dt, const NceSpec& s, const void* q, const void* k, void* loss, void* lse, void* esim,
                        void* tsim) {
  if (dt == DType::F32) return forward_t<float>(s, C<float>(q), C<float>(k), M<float>(loss), M<float>(lse), M<float>(esim), M<float>(tsim));
  return forward_t<double>(s, C<double>(q), C<double>(k), M<double>(loss), M<double>(lse), M<double>(esim), M<double>(tsim));
}

std::string nce_backward(DType dt, const NceSpec& s, const void* q, const void* k, const void* lse, const void* grow,
                         void* dq, void* dk) {
  if (dt == DType::F32) return backward_t<float>(s, C<float>(q), C<float>(k), C<float>(lse), C<float>(grow), M<float>(dq), M<float>(dk));
  return backward_t<double>(s, C<double>(q), C<double>(k), C<double>(lse), C<double>(grow), M<double>(dq), M<double>(dk));
}

std::string dissl_ce_forward(DType dt, const void* t, const void* s, void* loss, int64_t n, int64_t c, double tau_t,
                             double tau_s) {
  if (dt == DType::F32)
    return dissl_t<float>(C<float>(t), C<float>(s), nullptr, M<float>(loss), nullptr, nullptr, n, c, float(tau_t), float(tau_s));
  return dissl_t<double>(C<double>(t), C<double>(s), nullptr, M<double>(loss), nullptr, nullptr, n, c, tau_t, tau_s);
}

std::string dissl_ce_backward(DType dt, const void* t, const void* s, const void* g, void* dt_out, void* ds_out,
                              int64_t n, int64_t c, double tau_t, double tau_s) {
  if (dt == DType::F32)
    return dissl_t<float>(C<float>(t), C<float>(s), C<float>(g), nullptr, M<float>(dt_out), M<float>(ds_out), n, c, float(tau_t),
                          float(tau_s));
  return dissl_t<double>(C<double>(t), C<double>(s), C<double>(g), nullptr, M<double>(dt_out), M<double>(ds_out), n, c, tau_t, tau_s);
}

std::string mean_entropy_forward(DType dt, const void* t, void* pbar, void* h, int64_t n, int64_t c, double tau) {
  if (dt == DType::F32) return entropy_forward_t<float>(C<float>(t), M<float>(pbar), M<float>(h), n, c, float(tau));
  return entropy_forward_t<double>(C<double>(t), M<double>(pbar), M<double>(h), n, c, tau);
}

std::string mean_entropy_backward(DType dt, const void* t, const void* pbar, double g, void* dt_out, int64_t n, int64_t c,
                                  double tau) {
  if (dt == DType::F32) return entropy_backward_t<float>(C<float>(t), C<float>(pbar), float(g), M<float>(dt_out), n, c, float(tau));
  return entropy_backward_t<double>(C<double>(t), C<double>(pbar), g, M<double>(dt_out), n, c, tau);
}

}  // namespace cuda
}  // namespace kiln
