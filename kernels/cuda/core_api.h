// The CUDA twins of the core CPU kernels (kernels/cpu/kernels.h, kernels/cpu/optim.h) as seen from
// native/: plain C++, no CUDA headers. Without a CUDA build native/cuda_stub_core.cc defines them to
// report "built without CUDA". Pointers are device memory, dense and row-major; `dtype` is F32 or F64
// for the float operands (the decoders refuse anything else). Semantics, edge cases and tie orders
// are the CPU kernels'. Everything is queued on the legacy default stream and returns "" or an error
// message; only find_invalid_index, sum_squares, sum_i32 and cumsum_i32 wait for the device (they
// return a value).
#pragma once
#include <cstdint>
#include <string>

#include "../cpu/elementwise.h"
#include "../cpu/kernels.h"

namespace kiln {
namespace cuda {

// ---- reductions (reduce.cu): x is [outer, r, inner], reduced over r ----
// int32 input supports Max and Min here; its Sum goes through sum_i32.
std::string reduce(cpu::DType dtype, cpu::ReduceOp op, const void* x, void* y, int64_t outer, int64_t r, int64_t inner);
// int32 sum accumulated in 64 bits (exact below 2^32 terms per output); *overflowAt is -1, or the
// smallest output index whose sum does not fit int32 (that output is left 0: callers refuse it).
std::string sum_i32(const int32_t* x, int32_t* y, int64_t outer, int64_t r, int64_t inner, int64_t* overflowAt);
std::string arg_reduce(cpu::DType dtype, bool isMax, const void* x, int32_t* idx, int64_t outer, int64_t r, int64_t inner);
std::string cumsum(cpu::DType dtype, const void* x, void* y, int64_t outer, int64_t r, int64_t inner, bool reverse);
// int32 cumsum, exact (through double partial sums, exact while they fit int32); *overflowAt is -1,
// or the smallest output index whose partial sum does not fit int32 (callers refuse the result).
std::string cumsum_i32(const int32_t* x, int32_t* y, int64_t outer, int64_t r, int64_t inner, bool reverse,
                       int64_t* overflowAt);
// Sorted top-k of each row of [rows, n] (NaN ranks largest; ties keep the lower index first).
std::string topk(cpu::DType dtype, const void* x, void* values, int32_t* indices, int64_t rows, int64_t n, int64_t k,
                 bool largest);

// ---- softmax and cross entropy (softmax.cu) ----
// kind 0 softmax(in), 1 log-softmax(in), 2 softmax backward (in = y, grad = dy), 3 log-softmax backward.
std::string softmax(cpu::DType dtype, int kind, const void* in, const void* grad, void* out, int64_t rows, int64_t n);
std::string cross_entropy_forward(cpu::DType dtype, const void* logits, const int32_t* targets, void* losses, void* lse,
                                  int64_t N, int64_t C, int32_t ignoreIndex, double labelSmoothing);
std::string cross_entropy_backward(cpu::DType dtype, const void* logits, const int32_t* targets, const void* lse,
                                   const void* dloss, void* dlogits, int64_t N, int64_t C, int32_t ignoreIndex,
                                   double labelSmoothing);

// ---- layer norm (layernorm.cu); gamma, beta, dgamma, dbeta may be null ----
std::string layernorm_forward(cpu::DType dtype, const void* x, const void* gamma, const void* beta, void* y, void* mean,
                              void* rstd, int64_t rows, int64_t n, double eps);
std::string layernorm_backward(cpu::DType dtype, const void* x, const void* gamma, const void* mean, const void* rstd,
                               const void* dy, void* dx, void* dgamma, void* dbeta, int64_t rows, int64_t n);

// ---- embedding and index checks (embedding.cu); indices are validated beforehand ----
std::string embedding_forward(cpu::DType dtype, const void* weight, const int32_t* idx, void* out, int64_t n, int64_t V,
                              int64_t D);
// dweight = scatter-add of dout rows by idx (overwritten, not accumulated); each element sums its
// rows in index order, so the result is deterministic and equals the CPU's. n < 2^31.
std::string embedding_backward(cpu::DType dtype, const void* dout, const int32_t* idx, void* dweight, int64_t n,
                               int64_t V, int64_t D);
// Sets *pos to the first position whose index is outside [lo, hi) and not `allowed` (and *value to
// that index), or *pos = -1. Waits for the device.
std::string find_invalid_index(const int32_t* idx, int64_t n, int32_t lo, int32_t hi, int32_t allowed, int64_t* pos,
                               int32_t* value);

// ---- Philox 4x32-10 (random.cu): the CPU streams word for word (kernels/cpu/kernels.h) ----
std::string philox_uniform(cpu::DType dtype, void* out, int64_t n, uint64_t seed, uint64_t offset, double lo, double hi);
std::string philox_normal(cpu::DType dtype, void* out, int64_t n, uint64_t seed, uint64_t offset, double mean,
                          double std);
std::string philox_randint(int32_t* out, int64_t n, uint64_t seed, uint64_t offset, int32_t lo, int32_t hi);

// ---- fused optimizer kernels (optim.cu), kernels/cpu/optim.h semantics ----
std::string adam_step(cpu::DType dtype, void* p, const void* g, void* m, void* v, int64_t n, double lr, double beta1,
                      double beta2, double eps, double weightDecay, double bc1, double bc2, bool decoupled);
std::string sgd_step(cpu::DType dtype, void* p, const void* g, void* buf, int64_t n, double lr, double momentum,
                     double dampening, double weightDecay, bool nesterov, bool first);
// Sum of squares accumulated in double; waits for the device to return it in *out.
std::string sum_squares(cpu::DType dtype, const void* x, int64_t n, double* out);
std::string scale_inplace(cpu::DType dtype, void* x, int64_t n, double s);
std::string ema_update(cpu::DType dtype, void* shadow, const void* p, int64_t n, double decay);

}  // namespace cuda
}  // namespace kiln
