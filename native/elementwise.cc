// Decoders for the elementwise kernels. Argument layout in the shared buffer:
//   0 op, 1 ndim, 2 p0, 3 p1, 4-6 out ref, 7-9 / 10-12 / 13-15 input refs,
//   16-23 shape, then 8 strides each for out (24), in1 (32), in2 (40), in3 (48).
#include "../kernels/cuda/cuda_api.h"
#include "context.h"

namespace kiln {
namespace native {
namespace {

constexpr int kShape = 16, kStrides = 24;

struct Decoded {
  int ndim;
  int64_t shape[cpu::kMaxDims];
  cpu::Operand ops[4];
  Device device;
};

Decoded decode(const Napi::CallbackInfo& info, Context& c, int nin, const char* op) {
  Decoded d;
  d.ndim = static_cast<int>(int_arg(c, 1, op, "ndim", 0, cpu::kMaxDims));
  for (int i = 0; i < d.ndim; ++i) d.shape[i] = int_arg(c, kShape + i, op, "shape", 0, int64_t(1) << 46);
  static const char* names[] = {"output", "input", "second input", "third input"};
  for (int k = 0; k <= nin; ++k) {
    TensorRef t = tensor_arg(info, c, k, 4 + 3 * k, op, names[k]);
    cpu::Operand& o = d.ops[k];
    o.data = t.ptr;
    o.dtype = t.dtype;
    for (int i = 0; i < d.ndim; ++i) o.strides[i] = int_arg(c, kStrides + 8 * k + i, op, "stride", 0, int64_t(1) << 46);
    need_strided(t, d.ndim, d.shape, o.strides, op, names[k]);
    if (k == 0) d.device = t.device;
    else if (t.device != d.device) fail("DEVICE_MISMATCH", std::string(op) + ": operands are on different devices");
  }
  return d;
}

Napi::Value unary(const Napi::CallbackInfo& info, Context& c) {
  auto op = static_cast<cpu::UnaryOp>(int_arg(c, 0, "unary", "op", 0, int(cpu::UnaryOp::Count) - 1));
  Decoded d = decode(info, c, 1, "unary");
  if (!cpu::unary_supported(op, d.ops[1].dtype, d.ops[0].dtype))
    fail("DTYPE_MISMATCH", "unary op " + std::to_string(int(op)) + ": unsupported dtype combination");
  if (d.device == kCpu) cpu::unary(op, d.ndim, d.shape, d.ops[0], d.ops[1], c.args[2], c.args[3]);
  else if (auto err = cuda::unary(op, d.ndim, d.shape, d.ops[0], d.ops[1], c.args[2], c.args[3]); !err.empty())
    fail("CUDA_ERROR", "unary: " + err);
  return info.Env().Undefined();
}

Napi::Value binary(const Napi::CallbackInfo& info, Context& c) {
  auto op = static_cast<cpu::BinaryOp>(int_arg(c, 0, "binary", "op", 0, int(cpu::BinaryOp::Count) - 1));
  Decoded d = decode(info, c, 2, "binary");
  if (d.ops[1].dtype != d.ops[2].dtype) fail("DTYPE_MISMATCH", "binary: inputs have different dtypes");
  bool cmp = op >= cpu::BinaryOp::Eq && op <= cpu::BinaryOp::Ge;
  if (d.ops[0].dtype != (cmp ? cpu::DType::I32 : d.ops[1].dtype)) fail("DTYPE_MISMATCH", "binary: wrong output dtype");
  if (!cpu::binary_supported(op, d.ops[1].dtype))
    fail("DTYPE_MISMATCH", "binary op " + std::to_string(int(op)) + ": unsupported for this dtype");
  if (d.device == kCpu) cpu::binary(op, d.ndim, d.shape, d.ops[0], d.ops[1], d.ops[2]);
  else if (auto err = cuda::binary(op, d.ndim, d.shape, d.ops[0], d.ops[1], d.ops[2]); !err.empty())
    fail("CUDA_ERROR", "binary: " + err);
  return info.Env().Undefined();
}

Napi::Value ternary(const Napi::CallbackInfo& info, Context& c) {
  auto op = static_cast<cpu::TernaryOp>(int_arg(c, 0, "where", "op", 0, int(cpu::TernaryOp::Count) - 1));
  Decoded d = decode(info, c, 3, "where");
  if (d.ops[0].dtype != d.ops[2].dtype || d.ops[2].dtype != d.ops[3].dtype)
    fail("DTYPE_MISMATCH", "where: the two branches and the output must share a dtype");
  if (d.device == kCpu) cpu::ternary(op, d.ndim, d.shape, d.ops[0], d.ops[1], d.ops[2], d.ops[3]);
  else if (auto err = cuda::ternary(op, d.ndim, d.shape, d.ops[0], d.ops[1], d.ops[2], d.ops[3]); !err.empty())
    fail("CUDA_ERROR", "where: " + err);
  return info.Env().Undefined();
}

}  // namespace

void register_elementwise(Napi::Env env, Napi::Object exports) {
  KILN_EXPORT(exports, "unary", unary);
  KILN_EXPORT(exports, "binary", binary);
  KILN_EXPORT(exports, "ternary", ternary);
}

}  // namespace native
}  // namespace kiln
