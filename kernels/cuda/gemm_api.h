// The CUDA matrix product (kernels/cuda/gemm.cu) as seen from native/: plain C++, no CUDA headers.
// Without a CUDA build native/cuda_stub_gemm.cc defines it to report "built without CUDA".
// Same semantics as kiln::cpu::gemm (kernels/cpu/kernels.h): for b in [0, batch),
//   C[b] = alpha * op(A[b]) * op(B[b]) + beta * C[b], row-major, op = transpose when trans*,
//   leading dims lda/ldb/ldc and batch strides in elements (0 broadcasts one matrix);
//   beta == 0 never reads C; K == 0 gives C = beta * C. Pointers are device memory.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <string>

namespace kiln {
namespace cuda {

// Element types of the operands. The codes are those of cpu::DType (kernels/cpu/elementwise.h),
// where F16 = 3 and BF16 = 4 are the half types.
enum class GemmType : int { F32 = 0, F64 = 2, F16 = 3, BF16 = 4 };

// How float32 products use the tensor cores (torch.set_float32_matmul_precision's names):
// Highest: 3xTF32 (each operand split into a TF32 head and a TF32 tail; the tail x tail term is
//   dropped), accurate to float32 tolerances; High: one TF32 product (10-bit mantissa inputs,
//   float32 accumulation). float64 and the half types ignore it.
enum class MatmulPrecision : int { Highest = 0, High = 1 };

struct GemmArgs {
  int64_t batch = 1, M = 0, N = 0, K = 0;
  bool transA = false, transB = false;
  double alpha = 1, beta = 0;
  const void* A = nullptr;
  int64_t lda = 0, strideA = 0;
  const void* B = nullptr;
  int64_t ldb = 0, strideB = 0;
  void* C = nullptr;
  int64_t ldc = 0, strideC = 0;
};

// Supported (ab, c) pairs: (F32, F32), (F64, F64), (F16, F16), (F16, F32), (BF16, BF16),
// (BF16, F32). The half types multiply on tensor cores with float32 accumulation and round once
// when C is a half type. Returns "" or the error message (an unsupported pair, a CUDA error).
std::string gemm(GemmType ab, GemmType c, MatmulPrecision precision, const GemmArgs& args);

// One product C (+)= op(A) op(B) of float (3xTF32: float32 accuracy) or double matrices, for kernels that
// build on gemm() (contrastive losses, nearest rows); accumulate adds into C (beta 1).
template <class T>
std::string gemm_full_precision(int64_t M, int64_t N, int64_t K, bool transA, bool transB, const T* A, int64_t lda,
                                const T* B, int64_t ldb, T* C, int64_t ldc, bool accumulate = false) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "float or double");
  constexpr GemmType t = sizeof(T) == 4 ? GemmType::F32 : GemmType::F64;
  GemmArgs g;
  g.M = M, g.N = N, g.K = K, g.transA = transA, g.transB = transB, g.beta = accumulate ? 1.0 : 0.0;
  g.A = A, g.lda = lda, g.B = B, g.ldb = ldb, g.C = C, g.ldc = ldc;
  return gemm(t, t, MatmulPrecision::Highest, g);
}

// Rows of a [rows, cols] matrix of `elem`-byte entries to build at once when a kernel computes it a band
// of rows at a time with gemm() and never holds it whole (contrastive losses, nearest rows): about
// 64 MiB, at least minRows, at most 65535 (a grid's extent in y) and never more than rows.
// KILN_CUDA_BAND_ROWS sets it (the tests cut small problems into several bands).
inline int64_t band_rows(size_t elem, int64_t cols, int64_t rows, int64_t minRows = 1) {
  int64_t r = (int64_t(64) << 20) / (static_cast<int64_t>(elem) * (cols > 0 ? cols : 1));
  r = r < minRows ? minRows : r;
  if (const char* e = std::getenv("KILN_CUDA_BAND_ROWS")) {
    const long long v = std::atoll(e);
    if (v > 0) r = v;
  }
  r = r > 65535 ? 65535 : r;
  return r < rows ? r : rows;
}

}  // namespace cuda
}  // namespace kiln
