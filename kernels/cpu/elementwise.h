// Elementwise kernels over strided N-d views: the output is written through its own strides, so
// the same kernel serves fresh outputs, in-place updates and writes into slices (concat, stack).
// Op codes are mirrored in src/tensor/opcodes.ts: keep the two lists in the same order.
#pragma once
#include <cstdint>

namespace kiln {
namespace cpu {

// F16 (IEEE binary16) and BF16 are 2-byte storage types (kernels/common/half.h converts them);
// kernels compute on them in float32.
enum class DType : int { F32 = 0, I32 = 1, F64 = 2, F16 = 3, BF16 = 4 };

enum class UnaryOp : int {
  Copy = 0, Neg, Exp, Log, Sqrt, Rsqrt, Abs, Tanh, Sigmoid, Relu, GeluTanh, GeluErf, Sin, Cos,
  Sign, Square, Reciprocal, Affine /* x*p0+p1 */, PowScalar /* x^p0 */, Clamp /* [p0,p1] */,
  Log1p, Expm1, Floor, Ceil, Round, IsNan, IsInf, IsFinite, Fill /* p0 */, Count
};

enum class BinaryOp : int {
  Add = 0, Sub, Mul, Div, Pow, Maximum, Minimum, Eq, Ne, Lt, Le, Gt, Ge,
  // fused gradients: out = f(a = upstream gradient, b = saved forward value)
  ReluBackward /* b = x */, GeluTanhBackward /* b = x */, GeluErfBackward /* b = x */,
  SigmoidBackward /* b = y */, TanhBackward /* b = y */, Count
};

enum class TernaryOp : int { Where = 0 /* a != 0 ? b : c */, Count };

constexpr int kMaxDims = 8;

// One strided operand: base pointer (already offset) and element strides per dimension.
struct Operand {
  void* data;
  DType dtype;
  int64_t strides[kMaxDims];
};

// out[idx] = op(in[idx]) for every idx of `shape` (ndim <= kMaxDims; ndim 0 is a scalar).
// Supported dtypes: float/double for every op (input and output dtypes may differ only for Copy,
// which casts), int32 for Copy/Neg/Abs/Sign/Square/Fill/Clamp/Affine(integral p0,p1).
// IsNan/IsInf/IsFinite write int32.
void unary(UnaryOp op, int ndim, const int64_t* shape, Operand out, Operand in, double p0, double p1);
// Binary: a and b share a dtype; comparisons write int32, everything else writes the input dtype.
void binary(BinaryOp op, int ndim, const int64_t* shape, Operand out, Operand a, Operand b);
// Ternary where: cond may be int32 or float; b, c and out share a dtype.
void ternary(TernaryOp op, int ndim, const int64_t* shape, Operand out, Operand a, Operand b, Operand c);

bool unary_supported(UnaryOp op, DType in, DType out);
bool binary_supported(BinaryOp op, DType in);

}  // namespace cpu
}  // namespace kiln
