// Decoder for matrix products: kernels/cpu/kernels.h (cpu::gemm) on the CPU, kernels/cuda/gemm_api.h
// on CUDA. Every operand is a strided batch of row-major matrices; sizes are re-checked against the
// storage here. Argument slots:
//   0 batch, 1 transA, 2 transB, 3 M, 4 N, 5 K, 6 alpha, 7 beta,
//   8..10 A, 11..13 B, 14..16 C (handle, byte offset, dtype code each; JS args a, b, out),
//   17 lda, 18 ldb, 19 ldc, 20 strideA, 21 strideB, 22 strideC (elements; stride 0 broadcasts),
//   23 float32 precision on CUDA: 0 'highest' (3xTF32), 1 'high' (TF32); ignored elsewhere.
// CPU: float32 and float64, C of A's dtype. CUDA: also float16 / bfloat16 A and B, with C of the
// same half type or float32 (float32 accumulation either way).
#include "../kernels/cpu/kernels.h"
#include "../kernels/cuda/gemm_api.h"
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

bool is_half(cpu::DType d) { return d == cpu::DType::F16 || d == cpu::DType::BF16; }

Napi::Value gemm(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "matmul";
  int64_t batch = int_arg(c, 0, op, "batch", 0, kMaxSize);
  bool ta = c.args[1] != 0, tb = c.args[2] != 0;
  int64_t M = int_arg(c, 3, op, "M", 0, kMaxSize), N = int_arg(c, 4, op, "N", 0, kMaxSize), K = int_arg(c, 5, op, "K", 0, kMaxSize);
  TensorRef a = tensor_arg(info, c, 0, 8, op, "a");
  TensorRef b = tensor_arg(info, c, 1, 11, op, "b");
  TensorRef o = tensor_arg(info, c, 2, 14, op, "out");
  if (b.device != a.device || o.device != a.device)
    fail("DEVICE_MISMATCH", std::string(op) + ": a, b and out must be on one device");
  need_dtype(b, a.dtype, op, "b");
  const bool cuda = a.device == kCuda;
  if (!(a.dtype == cpu::DType::F32 || a.dtype == cpu::DType::F64 || (cuda && is_half(a.dtype))))
    fail("DTYPE_MISMATCH", std::string(op) + (cuda ? ": needs float32, float64, float16 or bfloat16" : ": needs float32 or float64"));
  if (!(o.dtype == a.dtype || (is_half(a.dtype) && o.dtype == cpu::DType::F32)))
    need_dtype(o, a.dtype, op, "out");
  int64_t lda = int_arg(c, 17, op, "lda", 0, kMaxSize), ldb = int_arg(c, 18, op, "ldb", 0, kMaxSize), ldc = int_arg(c, 19, op, "ldc", 0, kMaxSize);
  int64_t sa = int_arg(c, 20, op, "strideA", 0, kMaxSize), sb = int_arg(c, 21, op, "strideB", 0, kMaxSize), sc = int_arg(c, 22, op, "strideC", 0, kMaxSize);
  need_matrix(a, batch, ta ? K : M, ta ? M : K, lda, sa, "a");
  need_matrix(b, batch, tb ? N : K, tb ? K : N, ldb, sb, "b");
  need_matrix(o, batch, M, N, ldc, sc, "out");
  if (cuda) {
    const int64_t precision = int_arg(c, 23, op, "precision", 0, 1);
    cuda::GemmArgs g;
    g.batch = batch;
    g.M = M;
    g.N = N;
    g.K = K;
    g.transA = ta;
    g.transB = tb;
    g.alpha = c.args[6];
    g.beta = c.args[7];
    g.A = a.ptr;
    g.lda = lda;
    g.strideA = sa;
    g.B = b.ptr;
    g.ldb = ldb;
    g.strideB = sb;
    g.C = o.ptr;
    g.ldc = ldc;
    g.strideC = sc;
    // GemmType uses the cpu::DType codes.
    std::string err = cuda::gemm(static_cast<cuda::GemmType>(a.dtype), static_cast<cuda::GemmType>(o.dtype),
                                 precision == 1 ? cuda::MatmulPrecision::High : cuda::MatmulPrecision::Highest, g);
    if (!err.empty()) fail("CUDA_ERROR", std::string(op) + ": " + err);
    return info.Env().Undefined();
  }
  if (batch == 0 || M == 0 || N == 0) return info.Env().Undefined();
  if (a.dtype == cpu::DType::F32)
    cpu::gemm<float>(batch, ta, tb, M, N, K, float(c.args[6]), P<float>(a), lda, sa, P<float>(b), ldb, sb, float(c.args[7]),
                     P<float>(o), ldc, sc);
  else
    cpu::gemm<double>(batch, ta, tb, M, N, K, c.args[6], P<double>(a), lda, sa, P<double>(b), ldb, sb, c.args[7], P<double>(o),
                      ldc, sc);
  return info.Env().Undefined();
}

}  // namespace

void register_gemm(Napi::Env env, Napi::Object exports) { KILN_EXPORT(exports, "gemm", gemm); }
KILN_REGISTER(register_gemm);

}  // namespace native
}  // namespace kiln
