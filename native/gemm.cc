// Decoder for matrix products (kernels/cpu/gemm.h on the CPU). Every operand is a strided batch of
// row-major matrices; sizes are re-checked against the storage here.
#include "../kernels/cpu/kernels.h"
#include "context.h"

namespace kiln {
namespace native {
namespace {

constexpr int64_t kMaxSize = int64_t(1) << 46;
template <class T> T* P(const TensorRef& t) { return reinterpret_cast<T*>(t.ptr); }

// A stored matrix of rows x cols with row stride ld, repeated `batch` times at `stride`.
void need_matrix(const TensorRef& t, int64_t batch, int64_t rows, int64_t cols, int64_t ld, int64_t stride, const char* name) {
  if (batch == 0 || rows == 0 || cols == 0) return;
  if (ld < cols) fail("INVALID_ARGUMENT", std::string("matmul: leading dimension of ") + name + " is smaller than its columns");
  need_elems(t, (batch - 1) * stride + (rows - 1) * ld + cols, "matmul", name);
}

Napi::Value gemm(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "matmul";
  int64_t batch = int_arg(c, 0, op, "batch", 0, kMaxSize);
  bool ta = c.args[1] != 0, tb = c.args[2] != 0;
  int64_t M = int_arg(c, 3, op, "M", 0, kMaxSize), N = int_arg(c, 4, op, "N", 0, kMaxSize), K = int_arg(c, 5, op, "K", 0, kMaxSize);
  TensorRef a = tensor_arg(info, c, 0, 8, op, "a");
  need_cpu(a, op, "a");
  TensorRef b = tensor_arg(info, c, 1, 11, op, "b");
  need_cpu(b, op, "b");
  need_dtype(b, a.dtype, op, "b");
  TensorRef o = tensor_arg(info, c, 2, 14, op, "out");
  need_cpu(o, op, "out");
  need_dtype(o, a.dtype, op, "out");
  int64_t lda = int_arg(c, 17, op, "lda", 0, kMaxSize), ldb = int_arg(c, 18, op, "ldb", 0, kMaxSize), ldc = int_arg(c, 19, op, "ldc", 0, kMaxSize);
  int64_t sa = int_arg(c, 20, op, "strideA", 0, kMaxSize), sb = int_arg(c, 21, op, "strideB", 0, kMaxSize), sc = int_arg(c, 22, op, "strideC", 0, kMaxSize);
  need_matrix(a, batch, ta ? K : M, ta ? M : K, lda, sa, "a");
  need_matrix(b, batch, tb ? N : K, tb ? K : N, ldb, sb, "b");
  need_matrix(o, batch, M, N, ldc, sc, "out");
  if (batch == 0 || M == 0 || N == 0) return info.Env().Undefined();
  if (a.dtype == cpu::DType::F32)
    cpu::gemm<float>(batch, ta, tb, M, N, K, float(c.args[6]), P<float>(a), lda, sa, P<float>(b), ldb, sb, float(c.args[7]),
                     P<float>(o), ldc, sc);
  else if (a.dtype == cpu::DType::F64)
    cpu::gemm<double>(batch, ta, tb, M, N, K, c.args[6], P<double>(a), lda, sa, P<double>(b), ldb, sb, c.args[7], P<double>(o),
                      ldc, sc);
  else
    fail("DTYPE_MISMATCH", std::string(op) + ": needs float32 or float64");
  return info.Env().Undefined();
}

}  // namespace

void register_gemm(Napi::Env env, Napi::Object exports) { KILN_EXPORT(exports, "gemm", gemm); }
KILN_REGISTER(register_gemm);

}  // namespace native
}  // namespace kiln
