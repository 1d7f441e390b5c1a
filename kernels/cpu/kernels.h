// kiln CPU kernels: pure compute on raw pointers. No Node-API here (see DESIGN.md).
// All tensors are dense and row-major unless a stride argument says otherwise.
// Templates are instantiated for float and double (double serves gradcheck in float64).
#pragma once
#include <cstdint>

namespace kiln {
namespace cpu {

// ---- threads (threads.cc) ----
void set_num_threads(int n);
int num_threads();

// ---- GEMM (gemm.cc) ----
// C[b] = alpha * op(A[b]) * op(B[b]) + beta * C[b] for b in [0, batch), row-major.
// op(A) is M x K: if transA, A[b] is stored K x M (element (i,k) at A[k*lda + i]), else M x K (A[i*lda + k]).
// op(B) is K x N: if transB, B[b] is stored N x K (element (k,j) at B[j*ldb + k]), else K x N (B[k*ldb + j]).
// C is M x N with row stride ldc. strideA/B/C are batch strides in elements (0 broadcasts one matrix).
// beta == 0 means C is write-only (never read, so NaN in C does not propagate).
template <class T>
void gemm(int64_t batch, bool transA, bool transB, int64_t M, int64_t N, int64_t K, T alpha,
          const T* A, int64_t lda, int64_t strideA, const T* B, int64_t ldb, int64_t strideB, T beta,
          T* C, int64_t ldc, int64_t strideC);

// ---- reductions (reduce.cc) ----
// x is a contiguous [outer, r, inner] array reduced over the middle axis into y = [outer, inner].
enum class ReduceOp : int { Sum = 0, Mean = 1, Max = 2, Min = 3, LogSumExp = 4, Prod = 5 };
template <class T>
void reduce(ReduceOp op, const T* x, T* y, int64_t outer, int64_t r, int64_t inner);
// int32 sum (exact, in 128 bits), max or min; op must be Sum/Max/Min. Returns -1, or for a sum the
// smallest output index whose value does not fit int32 (that output is left 0: callers refuse it).
int64_t reduce_i32(ReduceOp op, const int32_t* x, int32_t* y, int64_t outer, int64_t r, int64_t inner);
// Index of the max (or min) over the middle axis; ties give the first index; NaN counts as max.
template <class T>
void arg_reduce(bool isMax, const T* x, int32_t* idx, int64_t outer, int64_t r, int64_t inner);
// Inclusive cumulative sum over the middle axis (same [outer, r, inner] layout in and out).
template <class T>
void cumsum(const T* x, T* y, int64_t outer, int64_t r, int64_t inner, bool reverse);
// int32 cumsum accumulated in int64: returns -1, or the smallest output index whose partial sum
// does not fit int32 (outputs from there on are meaningless: callers refuse them).
int64_t cumsum_i32(const int32_t* x, int32_t* y, int64_t outer, int64_t r, int64_t inner, bool reverse);
// Top-k along the last axis of [rows, n]: k largest (or smallest) values, sorted (largest first
// when largest, smallest first otherwise); ties keep the lower index first. 1 <= k <= n.
template <class T>
void topk(const T* x, T* values, int32_t* indices, int64_t rows, int64_t n, int64_t k, bool largest);

// ---- softmax (softmax.cc): along the last axis of [rows, n], numerically stable ----
template <class T> void softmax_forward(const T* x, T* y, int64_t rows, int64_t n);
template <class T> void log_softmax_forward(const T* x, T* y, int64_t rows, int64_t n);
// dx = y * (dy - sum(dy * y))          (y is the softmax output)
template <class T> void softmax_backward(const T* y, const T* dy, T* dx, int64_t rows, int64_t n);
// dx = dy - exp(y) * sum(dy)           (y is the log-softmax output)
template <class T> void log_softmax_backward(const T* y, const T* dy, T* dx, int64_t rows, int64_t n);

// ---- layer norm (layernorm.cc): over the last axis of [rows, n] ----
// y = (x - mean) * rstd * gamma + beta; gamma and beta may be null (then 1 and 0).
// mean and rstd ([rows]) are written for the backward; rstd = 1/sqrt(var + eps), var biased.
template <class T>
void layernorm_forward(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd,
                       int64_t rows, int64_t n, T eps);
// Writes dx ([rows, n]); dgamma and dbeta ([n]) are overwritten (not accumulated); each may be null.
template <class T>
void layernorm_backward(const T* x, const T* gamma, const T* mean, const T* rstd, const T* dy,
                        T* dx, T* dgamma, T* dbeta, int64_t rows, int64_t n);

// ---- cross entropy (crossentropy.cc): logits [N, C], integer targets [N] ----
// losses[i] = logsumexp(logits[i]) - logits[i, t_i], or 0 where t_i == ignoreIndex; lse[i] is saved.
// With labelSmoothing s: loss = (1-s) * nll + s * mean_c(lse - logits[i,c]).
// Targets are validated beforehand (0 <= t < C or == ignoreIndex).
template <class T>
void cross_entropy_forward(const T* logits, const int32_t* targets, T* losses, T* lse, int64_t N,
                           int64_t C, int32_t ignoreIndex, T labelSmoothing);
// dlogits[i, :] = dloss[i] * (softmax(logits[i]) - smoothed one-hot(t_i)), 0 rows where ignored.
template <class T>
void cross_entropy_backward(const T* logits, const int32_t* targets, const T* lse, const T* dloss,
                            T* dlogits, int64_t N, int64_t C, int32_t ignoreIndex, T labelSmoothing);

// ---- embedding (embedding.cc): weight [V, D], indices [n] (validated beforehand) ----
template <class T>
void embedding_forward(const T* weight, const int32_t* idx, T* out, int64_t n, int64_t V, int64_t D);
// dweight += scatter of dout rows by idx (dweight is zeroed by the caller); deterministic.
template <class T>
void embedding_backward(const T* dout, const int32_t* idx, T* dweight, int64_t n, int64_t V, int64_t D);
// Returns the position of the first index outside [lo, hi) (ignoring `allowed`), or -1 if all are valid.
int64_t find_invalid_index(const int32_t* idx, int64_t n, int32_t lo, int32_t hi, int32_t allowed);

// ---- Philox 4x32-10 random numbers (random.cc, arithmetic in kernels/common/philox.h) ----
// The stream for a seed is a sequence of 32-bit words: word w is lane (w % 4) of
// philox4x32_10(counter = {w/4 low 32 bits, w/4 high 32 bits, 0, 0}, key = {seed low, seed high}).
// uniform: out[i] = lo + (hi - lo) * u(word offset + i), u(x) = (x >> 8) * 2^-24 in [0, 1).
// normal: Box-Muller on pairs: for j = i / 2, u1 = ((word(offset + 2j) >> 8) + 1) * 2^-24 in (0, 1],
//   u2 = u(word(offset + 2j + 1)); r = sqrt(-2 log u1); out[2j] = mean + std * r cos(2 pi u2),
//   out[2j+1] = mean + std * r sin(2 pi u2). Uses 2*ceil(n/2) words.
// randint: out[i] = lo + (word(offset + i) % (hi - lo)) (hi - lo <= 2^24 keeps the bias negligible).
// bernoulli mask: out[i] = u(word(offset + i)) < p ? 1 : 0.
// Each function uses exactly the words [offset, offset + count) and is parallel and deterministic.
template <class T> void philox_uniform(T* out, int64_t n, uint64_t seed, uint64_t offset, T lo, T hi);
template <class T> void philox_normal(T* out, int64_t n, uint64_t seed, uint64_t offset, T mean, T std);
void philox_randint(int32_t* out, int64_t n, uint64_t seed, uint64_t offset, int32_t lo, int32_t hi);

}  // namespace cpu
}  // namespace kiln
