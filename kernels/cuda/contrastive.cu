// CUDA contrastive kernels with the semantics of kernels/cpu/contrastive.cc.
// InfoNCE / NT-Xent / CLIP: the similarity matrix is computed a band of rows at a time (about 64 MiB
// of it) by kiln's tensor-core GEMM (gemm.cu: 3xTF32 for float32, so float32-level accuracy; float64
// as float64) and never held whole. The forward reduces each row of the band (online logsumexp, the
// expected and the target similarity); the backward recomputes the band, turns it in place into
// dL/dsim and multiplies it back: dq = G k for the band's rows, dk += G^T q for every key.
// DISSL terms: one block per row.
#include <cuda_runtime.h>

#include <cstdint>

#include "contrastive_api.h"
#include "cuda_api.h"
#include "gemm_api.h"

namespace kiln {
namespace cuda {
namespace {

using cpu::DType;
using cpu::NceSpec;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

std::string launched() {
  cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? "" : std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

template <class T> __device__ inline T dexp(T x) { return exp(x); }
template <class T> __device__ inline T dlog(T x) { return log(x); }
template <class T> __device__ inline T neg_inf() { return -INFINITY; }
// scale * sim rounded, never fused into the subtraction that follows: the row max was rounded the
// same way, so the max element's exp argument is exactly 0 (fused, it is the product's rounding
// error, which flushes the exp to 0 once |scale * sim| is past ~1e9 in float32).
__device__ inline float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ inline double mul_rn(double a, double b) { return __dmul_rn(a, b); }

template <class T>
__device__ inline T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
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
  T n = sqrt(block_sum(s, scratch));
  if (isinf(n)) {  // the squares overflowed (block-uniform): |x| = m |x / m| with m = max |x_d|, as the CPU
    T m = 0;
    for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) m = fmax(m, fabs(xr[d]));
    for (int o = 16; o > 0; o >>= 1) m = fmax(m, __shfl_xor_sync(0xffffffffu, m, o));
    __syncthreads();
    if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = m;
    __syncthreads();
    for (int w = 0; w < kWarps; ++w) m = fmax(m, scratch[w]);
    if (isfinite(m)) {
      T q = 0;
      for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) q += (xr[d] / m) * (xr[d] / m);
      n = m * sqrt(block_sum(q, scratch));
    }
  }
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

// One row of the similarity band: the online logsumexp of scale * sim over the row's columns (the
// self column dropped when masked), the expected similarity sum_j p_ij sim_ij and the target
// similarity; every thread's running (max, sum, sum * sim) merged in a fixed order (deterministic).
template <class T>
__device__ inline void lse_merge(T& m, T& s, T& ss, T m2, T s2, T ss2) {
  if (m2 == neg_inf<T>()) return;
  if (m == neg_inf<T>()) {
    m = m2, s = s2, ss = ss2;
    return;
  }
  const T M = m > m2 ? m : m2, c1 = dexp(m - M), c2 = dexp(m2 - M);
  m = M;
  s = s * c1 + s2 * c2;
  ss = ss * c1 + ss2 * c2;
}

template <class T>
__global__ void nce_rows_kernel(Params p, const T* S, int64_t r0, T* loss, T* lse, T* esim, T* tsim) {
  __shared__ T sm[kWarps], ss[kWarps], sss[kWarps];
  const int64_t i = r0 + blockIdx.x;
  const T* row = S + static_cast<int64_t>(blockIdx.x) * p.rows;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const T scale = T(p.scale);
  T m = neg_inf<T>(), sum = 0, ssum = 0;
  for (int64_t j = threadIdx.x; j < p.rows; j += blockDim.x) {
    if (p.mask_self && j == i) continue;
    const T s = row[j], l = mul_rn(scale, s);
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
  for (int o = 16; o > 0; o >>= 1) {
    const T m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, sum, o),
            ss2 = __shfl_xor_sync(0xffffffffu, ssum, o);
    lse_merge(m, sum, ssum, m2, s2, ss2);
  }
  if (lane == 0) sm[warp] = m, ss[warp] = sum, sss[warp] = ssum;
  __syncthreads();
  if (threadIdx.x == 0) {
    T M = neg_inf<T>(), Sum = 0, SS = 0;
    for (int w = 0; w < kWarps; ++w) lse_merge(M, Sum, SS, sm[w], ss[w], sss[w]);
    const T l = M + dlog(Sum);
    T t = 0;
    if (p.w_pos != 0) t += T(p.w_pos) * row[pos_of(p, i)];
    if (p.w_self != 0) t += T(p.w_self) * row[i];
    lse[i] = l;
    esim[i] = SS / Sum;
    tsim[i] = t;
    loss[i] = T(p.w_pos + p.w_self) * l - scale * t;
  }
}

// dL entry for (row a, column j): c_a (wsum p_aj - w_aj), the self pair zeroed when masked.
template <class T>
__device__ inline T dl_entry(const Params& p, int64_t a, int64_t j, T sim, const T* lse, const T* grow) {
  if (p.mask_self && a == j) return 0;
  const T c = grow[a] * T(p.scale);
  T g = c * T(p.w_pos + p.w_self) * dexp(mul_rn(T(p.scale), sim) - lse[a]);
  if (j == pos_of(p, a)) g -= c * T(p.w_pos);
  if (j == a) g -= c * T(p.w_self);
  return g;
}

// The band's similarities (rows r0 + blockIdx.y) become G = dL, plus dL^T when k is q (the matrix is
// then symmetric, so sim(j, a) is the same entry).
template <class T>
__global__ void nce_dl_kernel(Params p, T* S, int64_t r0, const T* lse, const T* grow, bool shared) {
  const int64_t a = r0 + blockIdx.y;
  T* row = S + static_cast<int64_t>(blockIdx.y) * p.rows;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < p.rows;
       j += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const T s = row[j];
    T g = dl_entry(p, a, j, s, lse, grow);
    if (shared) g += dl_entry(p, j, a, s, lse, grow);
    row[j] = g;
  }
}

template <class T>
T* scratch(size_t elems, std::string* err) {
  return static_cast<T*>(alloc(elems * sizeof(T), err));
}

// L2-normalised copies of q and k for the cosine similarity (k's only when it is not q); make()
// points q and k at what the products should read (k at q when the keys are the queries).
template <class T>
struct Normalized {
  T *qn = nullptr, *kn = nullptr, *qnorm = nullptr, *knorm = nullptr;
  size_t rd = 0, r = 0;
  std::string make(const NceSpec& s, const T*& q, const T*& k) {
    rd = static_cast<size_t>(s.rows * s.dim), r = static_cast<size_t>(s.rows);
    if (!s.cosine) {
      if (s.shared) k = q;
      return "";
    }
    std::string err;
    qn = scratch<T>(rd, &err);
    if (qn) qnorm = scratch<T>(r, &err);
    if (!s.shared && qnorm) {
      kn = scratch<T>(rd, &err);
      if (kn) knorm = scratch<T>(r, &err);
    }
    if (!err.empty()) return err;
    normalize_rows_kernel<T><<<s.rows, kThreads>>>(q, qn, qnorm, s.dim);
    if (!s.shared) normalize_rows_kernel<T><<<s.rows, kThreads>>>(k, kn, knorm, s.dim);
    q = qn;
    k = s.shared ? qn : kn;
    return launched();
  }
  ~Normalized() {
    if (qn) release(qn, rd * sizeof(T));
    if (qnorm) release(qnorm, r * sizeof(T));
    if (kn) release(kn, rd * sizeof(T));
    if (knorm) release(knorm, r * sizeof(T));
  }
};

// Runs each(r0, n, band) over the similarity matrix a band of rows at a time, band = sim(q[r0, r0 + n), k)
// (n x rows, row-major); q and k point at the normalised copies afterwards when the similarity is cosine.
template <class T, class Each>
std::string over_bands(const NceSpec& s, Normalized<T>& nz, const T*& q, const T*& k, Each each) {
  std::string err = nz.make(s, q, k);
  if (!err.empty()) return err;
  const int64_t R = band_rows(sizeof(T), s.rows, s.rows, 64);
  const size_t elems = static_cast<size_t>(R * s.rows);
  T* band = scratch<T>(elems, &err);
  if (!band) return err.empty() ? "contrastive: out of device memory" : err;
  for (int64_t r0 = 0; r0 < s.rows && err.empty(); r0 += R) {
    const int64_t n = s.rows - r0 < R ? s.rows - r0 : R;
    err = gemm_full_precision<T>(n, s.rows, s.dim, false, true, q + r0 * s.dim, s.dim, k, s.dim, band, s.rows);
    if (err.empty()) err = each(r0, n, band);
  }
  release(band, elems * sizeof(T));
  return err;
}

template <class T>
std::string forward_t(const NceSpec& s, const T* q, const T* k, T* loss, T* lse, T* esim, T* tsim) {
  if (s.rows == 0) return "";
  const Params p{s.rows, s.dim, s.shift, s.mask_self, s.scale, s.w_pos, s.w_self};
  Normalized<T> nz;
  return over_bands<T>(s, nz, q, k, [&](int64_t r0, int64_t n, T* band) {
    nce_rows_kernel<T><<<static_cast<unsigned>(n), kThreads>>>(p, band, r0, loss, lse, esim, tsim);
    return launched();
  });
}

template <class T>
std::string backward_t(const NceSpec& s, const T* q, const T* k, const T* lse, const T* grow, T* dq, T* dk) {
  if (s.rows == 0) return "";
  const Params p{s.rows, s.dim, s.shift, s.mask_self, s.scale, s.w_pos, s.w_self};
  Normalized<T> nz;
  const int64_t colBlocks = (s.rows + kThreads - 1) / kThreads;
  std::string err = over_bands<T>(s, nz, q, k, [&](int64_t r0, int64_t n, T* G) {
    nce_dl_kernel<T><<<dim3(static_cast<unsigned>(colBlocks < 65535 ? colBlocks : 65535), static_cast<unsigned>(n)), kThreads>>>(
        p, G, r0, lse, grow, s.shared);
    std::string e = launched();
    // dq rows of the band = G k; unless k is q, dk += G^T q_band.
    if (e.empty()) e = gemm_full_precision<T>(n, s.dim, s.rows, false, false, G, s.rows, k, s.dim, dq + r0 * s.dim, s.dim);
    if (e.empty() && !s.shared)
      e = gemm_full_precision<T>(s.rows, s.dim, n, true, false, G, s.rows, q + r0 * s.dim, s.dim, dk, s.dim, r0 > 0);
    return e;
  });
  if (!err.empty()) return err;
  if (s.cosine) {
    normalize_backward_kernel<T><<<s.rows, kThreads>>>(q, nz.qnorm, dq, s.dim);
    if (!s.shared) normalize_backward_kernel<T><<<s.rows, kThreads>>>(k, nz.knorm, dk, s.dim);
  }
  return launched();
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
