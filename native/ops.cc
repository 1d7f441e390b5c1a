// Decoders for the non-elementwise kernels: kernels/cpu/kernels.h on the CPU, kernels/cuda/core_api.h
// on CUDA. Every operand is dense and row-major (TypeScript makes views contiguous first); sizes are
// re-checked against the storage here, and all operands of a call must be on one device.
#include <cstring>
#include <initializer_list>

#include "../kernels/cpu/conv.h"
#include "../kernels/cpu/kernels.h"
#include "../kernels/cpu/select.h"
#include "../kernels/cuda/conv_api.h"
#include "../kernels/cuda/core_api.h"
#include "../kernels/cuda/select_api.h"
#include "context.h"

namespace kiln {
namespace native {
namespace {

constexpr int64_t kMaxSize = int64_t(1) << 46;

const char* device_name(Device d) { return d == kCpu ? "cpu" : "cuda"; }

// The operands of one call: the first fixes the device, the others must be on it.
struct Operands {
  const Napi::CallbackInfo& info;
  Context& c;
  const char* op;
  bool any = false;
  Device device = kCpu;
  const char* first = "";

  TensorRef get(int jsArg, int pos, const char* name) {
    TensorRef t = tensor_arg(info, c, jsArg, pos, op, name);
    if (!any) {
      any = true;
      device = t.device;
      first = name;
    } else if (t.device != device) {
      fail("DEVICE_MISMATCH", std::string(op) + ": " + name + " is on " + device_name(t.device) + " but " + first + " is on " +
                                  device_name(device));
    }
    return t;
  }
  TensorRef like(int jsArg, int pos, const char* name, cpu::DType dtype) {
    TensorRef t = get(jsArg, pos, name);
    need_dtype(t, dtype, op, name);
    return t;
  }
  bool cuda() const { return device != kCpu; }
};

// Throws CUDA_ERROR when a CUDA entry point reported one.
void cuda_check(const std::string& err, const char* op) {
  if (!err.empty()) fail("CUDA_ERROR", std::string(op) + ": " + err);
}

void need_float(const TensorRef& t, const char* op, const char* name) {
  if (t.dtype != cpu::DType::F32 && t.dtype != cpu::DType::F64)
    fail("DTYPE_MISMATCH", std::string(op) + ": " + name + " must be float32 or float64");
}

template <class T> T* P(const TensorRef& t) { return reinterpret_cast<T*>(t.ptr); }

#define KILN_FLOAT_DISPATCH(dtype, op, ...)                                        \
  do {                                                                             \
    if ((dtype) == cpu::DType::F32) { using T = float; __VA_ARGS__; }              \
    else if ((dtype) == cpu::DType::F64) { using T = double; __VA_ARGS__; }        \
    else fail("DTYPE_MISMATCH", std::string(op) + ": needs float32 or float64"); \
  } while (0)

Napi::Value reduce(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "reduce";
  auto rop = static_cast<cpu::ReduceOp>(int_arg(c, 0, op, "op", 0, 5));
  int64_t outer = int_arg(c, 1, op, "outer", 0, kMaxSize), r = int_arg(c, 2, op, "r", 0, kMaxSize), inner = int_arg(c, 3, op, "inner", 0, kMaxSize);
  Operands a{info, c, op};
  TensorRef x = a.get(0, 4, "input");
  TensorRef y = a.like(1, 7, "output", x.dtype);
  need_elems(x, outer * r * inner, op, "input");
  need_elems(y, outer * inner, op, "output");
  // -1, or (an int32 sum) the first output index whose exact sum does not fit int32.
  int64_t overflowAt = -1;
  if (x.dtype == cpu::DType::I32) {
    if (rop != cpu::ReduceOp::Sum && rop != cpu::ReduceOp::Max && rop != cpu::ReduceOp::Min)
      fail("DTYPE_MISMATCH", "reduce: int32 supports sum, max and min only");
    if (!a.cuda()) overflowAt = cpu::reduce_i32(rop, P<int32_t>(x), P<int32_t>(y), outer, r, inner);
    else if (rop == cpu::ReduceOp::Sum) cuda_check(cuda::sum_i32(P<int32_t>(x), P<int32_t>(y), outer, r, inner, &overflowAt), op);
    else cuda_check(cuda::reduce(x.dtype, rop, x.ptr, y.ptr, outer, r, inner), op);
  } else if (a.cuda()) {
    need_float(x, op, "input");
    cuda_check(cuda::reduce(x.dtype, rop, x.ptr, y.ptr, outer, r, inner), op);
  } else {
    KILN_FLOAT_DISPATCH(x.dtype, op, cpu::reduce<T>(rop, P<T>(x), P<T>(y), outer, r, inner));
  }
  return Napi::Number::New(info.Env(), static_cast<double>(overflowAt));
}

Napi::Value arg_reduce(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "argmax";
  int64_t outer = int_arg(c, 1, op, "outer", 0, kMaxSize), r = int_arg(c, 2, op, "r", 1, kMaxSize), inner = int_arg(c, 3, op, "inner", 0, kMaxSize);
  Operands a{info, c, op};
  TensorRef x = a.get(0, 4, "input");
  TensorRef y = a.like(1, 7, "output", cpu::DType::I32);
  need_elems(x, outer * r * inner, op, "input");
  need_elems(y, outer * inner, op, "output");
  if (a.cuda()) {
    need_float(x, op, "input");
    cuda_check(cuda::arg_reduce(x.dtype, c.args[0] != 0, x.ptr, P<int32_t>(y), outer, r, inner), op);
  } else {
    KILN_FLOAT_DISPATCH(x.dtype, op, cpu::arg_reduce<T>(c.args[0] != 0, P<T>(x), P<int32_t>(y), outer, r, inner));
  }
  return info.Env().Undefined();
}

Napi::Value cumsum(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "cumsum";
  int64_t outer = int_arg(c, 1, op, "outer", 0, kMaxSize), r = int_arg(c, 2, op, "r", 0, kMaxSize), inner = int_arg(c, 3, op, "inner", 0, kMaxSize);
  Operands a{info, c, op};
  TensorRef x = a.get(0, 4, "input");
  TensorRef y = a.like(1, 7, "output", x.dtype);
  need_elems(x, outer * r * inner, op, "input");
  need_elems(y, outer * r * inner, op, "output");
  const bool reverse = c.args[0] != 0;
  // -1, or (int32) the first output index whose partial sum does not fit int32.
  int64_t overflowAt = -1;
  if (x.dtype == cpu::DType::I32) {
    if (a.cuda()) cuda_check(cuda::cumsum_i32(P<int32_t>(x), P<int32_t>(y), outer, r, inner, reverse, &overflowAt), op);
    else overflowAt = cpu::cumsum_i32(P<int32_t>(x), P<int32_t>(y), outer, r, inner, reverse);
  } else if (a.cuda()) {
    need_float(x, op, "input");
    cuda_check(cuda::cumsum(x.dtype, x.ptr, y.ptr, outer, r, inner, reverse), op);
  } else {
    KILN_FLOAT_DISPATCH(x.dtype, op, cpu::cumsum<T>(P<T>(x), P<T>(y), outer, r, inner, reverse));
  }
  return Napi::Number::New(info.Env(), static_cast<double>(overflowAt));
}

Napi::Value topk(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "topk";
  // k = 0 or no rows (an empty result, as torch.topk) reaches the kernels, which then do nothing.
  int64_t rows = int_arg(c, 1, op, "rows", 0, kMaxSize), n = int_arg(c, 2, op, "n", 0, kMaxSize);
  int64_t k = int_arg(c, 3, op, "k", 0, n);
  Operands a{info, c, op};
  TensorRef x = a.get(0, 4, "input");
  TensorRef v = a.like(1, 7, "values", x.dtype);
  TensorRef ix = a.like(2, 10, "indices", cpu::DType::I32);
  need_elems(x, rows * n, op, "input");
  need_elems(v, rows * k, op, "values");
  need_elems(ix, rows * k, op, "indices");
  if (a.cuda()) {
    need_float(x, op, "input");
    if (n > INT32_MAX) fail("INVALID_ARGUMENT", "topk: rows longer than 2^31 - 1 elements");
    cuda_check(cuda::topk(x.dtype, x.ptr, v.ptr, P<int32_t>(ix), rows, n, k, c.args[0] != 0), op);
  } else {
    KILN_FLOAT_DISPATCH(x.dtype, op, cpu::topk<T>(P<T>(x), P<T>(v), P<int32_t>(ix), rows, n, k, c.args[0] != 0));
  }
  return info.Env().Undefined();
}

// kind 0 softmax, 1 log-softmax, 2 softmax backward, 3 log-softmax backward.
Napi::Value softmax(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "softmax";
  int64_t kind = int_arg(c, 0, op, "kind", 0, 3);
  int64_t rows = int_arg(c, 1, op, "rows", 0, kMaxSize), n = int_arg(c, 2, op, "n", 0, kMaxSize);
  Operands a{info, c, op};
  TensorRef in = a.get(0, 4, "input");
  TensorRef o = a.like(2, 10, "output", in.dtype);
  need_elems(in, rows * n, op, "input");
  need_elems(o, rows * n, op, "output");
  TensorRef g;
  if (kind >= 2) {
    g = a.like(1, 7, "grad", in.dtype);
    need_elems(g, rows * n, op, "grad");
  }
  if (a.cuda()) {
    need_float(in, op, "input");
    cuda_check(cuda::softmax(in.dtype, static_cast<int>(kind), in.ptr, g.ptr, o.ptr, rows, n), op);
  } else if (kind < 2) {
    KILN_FLOAT_DISPATCH(in.dtype, op, (kind == 0 ? cpu::softmax_forward<T> : cpu::log_softmax_forward<T>)(P<T>(in), P<T>(o), rows, n));
  } else {
    KILN_FLOAT_DISPATCH(in.dtype, op,
                        (kind == 2 ? cpu::softmax_backward<T> : cpu::log_softmax_backward<T>)(P<T>(in), P<T>(g), P<T>(o), rows, n));
  }
  return info.Env().Undefined();
}

// JS args: x, gamma, beta, y, mean, rstd.
Napi::Value layernorm_forward(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "layerNorm";
  int64_t rows = int_arg(c, 0, op, "rows", 0, kMaxSize), n = int_arg(c, 1, op, "n", 1, kMaxSize);
  bool hasG = c.args[3] != 0, hasB = c.args[4] != 0;
  Operands a{info, c, op};
  TensorRef x = a.get(0, 5, "input");
  need_elems(x, rows * n, op, "input");
  TensorRef g, b;
  if (hasG) { g = a.like(1, 8, "weight", x.dtype); need_elems(g, n, op, "weight"); }
  if (hasB) { b = a.like(2, 11, "bias", x.dtype); need_elems(b, n, op, "bias"); }
  TensorRef y = a.like(3, 14, "output", x.dtype);
  TensorRef mean = a.like(4, 17, "mean", x.dtype);
  TensorRef rstd = a.like(5, 20, "rstd", x.dtype);
  need_elems(y, rows * n, op, "output");
  need_elems(mean, rows, op, "mean");
  need_elems(rstd, rows, op, "rstd");
  if (a.cuda()) {
    need_float(x, op, "input");
    cuda_check(cuda::layernorm_forward(x.dtype, x.ptr, g.ptr, b.ptr, y.ptr, mean.ptr, rstd.ptr, rows, n, c.args[2]), op);
    return info.Env().Undefined();
  }
  KILN_FLOAT_DISPATCH(x.dtype, op,
                      cpu::layernorm_forward<T>(P<T>(x), hasG ? P<T>(g) : nullptr, hasB ? P<T>(b) : nullptr, P<T>(y),
                                                P<T>(mean), P<T>(rstd), rows, n, T(c.args[2])));
  return info.Env().Undefined();
}

// JS args: x, gamma, mean, rstd, dy, dx, dgamma, dbeta.
Napi::Value layernorm_backward(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "layerNorm backward";
  int64_t rows = int_arg(c, 0, op, "rows", 0, kMaxSize), n = int_arg(c, 1, op, "n", 1, kMaxSize);
  bool hasG = c.args[3] != 0, wantDg = c.args[4] != 0, wantDb = c.args[5] != 0;
  Operands a{info, c, op};
  TensorRef x = a.get(0, 6, "input");
  need_elems(x, rows * n, op, "input");
  TensorRef g, dg, db;
  if (hasG) { g = a.like(1, 9, "weight", x.dtype); need_elems(g, n, op, "weight"); }
  TensorRef mean = a.like(2, 12, "mean", x.dtype);
  TensorRef rstd = a.like(3, 15, "rstd", x.dtype);
  TensorRef dy = a.like(4, 18, "grad", x.dtype);
  TensorRef dx = a.like(5, 21, "dx", x.dtype);
  if (wantDg) { dg = a.like(6, 24, "dweight", x.dtype); need_elems(dg, n, op, "dweight"); }
  if (wantDb) { db = a.like(7, 27, "dbias", x.dtype); need_elems(db, n, op, "dbias"); }
  need_elems(mean, rows, op, "mean");
  need_elems(rstd, rows, op, "rstd");
  need_elems(dy, rows * n, op, "grad");
  need_elems(dx, rows * n, op, "dx");
  if (a.cuda()) {
    need_float(x, op, "input");
    cuda_check(cuda::layernorm_backward(x.dtype, x.ptr, g.ptr, mean.ptr, rstd.ptr, dy.ptr, dx.ptr, dg.ptr, db.ptr, rows, n), op);
    return info.Env().Undefined();
  }
  KILN_FLOAT_DISPATCH(x.dtype, op,
                      cpu::layernorm_backward<T>(P<T>(x), hasG ? P<T>(g) : nullptr, P<T>(mean), P<T>(rstd), P<T>(dy), P<T>(dx),
                                                 wantDg ? P<T>(dg) : nullptr, wantDb ? P<T>(db) : nullptr, rows, n));
  return info.Env().Undefined();
}

// INDEX_OUT_OF_RANGE for the first index outside [lo, hi) that is not `allowed` (on CUDA the check
// runs on the device and only its result is read back).
void check_indices(const TensorRef& idx, int64_t n, int32_t lo, int32_t hi, int32_t allowed, const char* op) {
  int64_t bad = -1;
  int32_t value = 0;
  if (idx.device == kCpu) {
    bad = cpu::find_invalid_index(P<int32_t>(idx), n, lo, hi, allowed);
    if (bad >= 0) value = P<int32_t>(idx)[bad];
  } else {
    cuda_check(cuda::find_invalid_index(P<int32_t>(idx), n, lo, hi, allowed, &bad, &value), op);
  }
  if (bad >= 0)
    fail("INDEX_OUT_OF_RANGE", std::string(op) + ": index " + std::to_string(value) + " at position " + std::to_string(bad) +
                                   " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + ")");
}

Napi::Value cross_entropy_forward(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "crossEntropy";
  int64_t N = int_arg(c, 0, op, "N", 0, kMaxSize), C = int_arg(c, 1, op, "C", 1, INT32_MAX);
  int32_t ignore = static_cast<int32_t>(int_arg(c, 2, op, "ignoreIndex", INT32_MIN, INT32_MAX));
  Operands a{info, c, op};
  TensorRef logits = a.get(0, 4, "logits");
  TensorRef t = a.like(1, 7, "targets", cpu::DType::I32);
  TensorRef losses = a.like(2, 10, "losses", logits.dtype);
  TensorRef lse = a.like(3, 13, "lse", logits.dtype);
  need_elems(logits, N * C, op, "logits");
  need_elems(t, N, op, "targets");
  need_elems(losses, N, op, "losses");
  need_elems(lse, N, op, "lse");
  need_float(logits, op, "logits");
  check_indices(t, N, 0, static_cast<int32_t>(C), ignore, op);
  if (a.cuda()) {
    cuda_check(cuda::cross_entropy_forward(logits.dtype, logits.ptr, P<int32_t>(t), losses.ptr, lse.ptr, N, C, ignore, c.args[3]), op);
    return info.Env().Undefined();
  }
  KILN_FLOAT_DISPATCH(logits.dtype, op,
                      cpu::cross_entropy_forward<T>(P<T>(logits), P<int32_t>(t), P<T>(losses), P<T>(lse), N, C, ignore, T(c.args[3])));
  return info.Env().Undefined();
}

Napi::Value cross_entropy_backward(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "crossEntropy backward";
  int64_t N = int_arg(c, 0, op, "N", 0, kMaxSize), C = int_arg(c, 1, op, "C", 1, INT32_MAX);
  int32_t ignore = static_cast<int32_t>(int_arg(c, 2, op, "ignoreIndex", INT32_MIN, INT32_MAX));
  Operands a{info, c, op};
  TensorRef logits = a.get(0, 4, "logits");
  TensorRef t = a.like(1, 7, "targets", cpu::DType::I32);
  TensorRef lse = a.like(2, 10, "lse", logits.dtype);
  TensorRef dl = a.like(3, 13, "grad", logits.dtype);
  TensorRef dx = a.like(4, 16, "dlogits", logits.dtype);
  need_elems(logits, N * C, op, "logits");
  need_elems(t, N, op, "targets");
  need_elems(lse, N, op, "lse");
  need_elems(dl, N, op, "grad");
  need_elems(dx, N * C, op, "dlogits");
  need_float(logits, op, "logits");
  check_indices(t, N, 0, static_cast<int32_t>(C), ignore, op);
  if (a.cuda()) {
    cuda_check(cuda::cross_entropy_backward(logits.dtype, logits.ptr, P<int32_t>(t), lse.ptr, dl.ptr, dx.ptr, N, C, ignore, c.args[3]),
               op);
    return info.Env().Undefined();
  }
  KILN_FLOAT_DISPATCH(logits.dtype, op,
                      cpu::cross_entropy_backward<T>(P<T>(logits), P<int32_t>(t), P<T>(lse), P<T>(dl), P<T>(dx), N, C, ignore,
                                                     T(c.args[3])));
  return info.Env().Undefined();
}

Napi::Value embedding(const Napi::CallbackInfo& info, Context& c) {
  bool backward = c.args[3] != 0;
  const char* op = backward ? "embedding backward" : "embedding";
  int64_t n = int_arg(c, 0, op, "n", 0, kMaxSize), V = int_arg(c, 1, op, "V", 1, INT32_MAX), D = int_arg(c, 2, op, "D", 0, kMaxSize);
  Operands a{info, c, op};
  TensorRef src = a.get(0, 4, backward ? "grad" : "weight");
  TensorRef idx = a.like(1, 7, "indices", cpu::DType::I32);
  TensorRef dst = a.like(2, 10, backward ? "dweight" : "output", src.dtype);
  need_elems(idx, n, op, "indices");
  need_elems(src, backward ? n * D : V * D, op, backward ? "grad" : "weight");
  need_elems(dst, backward ? V * D : n * D, op, backward ? "dweight" : "output");
  need_float(src, op, backward ? "grad" : "weight");
  if (a.cuda() && backward && n > INT32_MAX) fail("INVALID_ARGUMENT", std::string(op) + ": more than 2^31 - 1 indices on cuda");
  check_indices(idx, n, 0, static_cast<int32_t>(V), INT32_MIN, op);
  if (a.cuda()) {
    cuda_check(backward ? cuda::embedding_backward(src.dtype, src.ptr, P<int32_t>(idx), dst.ptr, n, V, D)
                        : cuda::embedding_forward(src.dtype, src.ptr, P<int32_t>(idx), dst.ptr, n, V, D),
               op);
  } else if (backward) {
    std::memset(dst.ptr, 0, static_cast<size_t>(V * D) * dtype_size(dst.dtype));
    KILN_FLOAT_DISPATCH(src.dtype, op, cpu::embedding_backward<T>(P<T>(src), P<int32_t>(idx), P<T>(dst), n, V, D));
  } else {
    KILN_FLOAT_DISPATCH(src.dtype, op, cpu::embedding_forward<T>(P<T>(src), P<int32_t>(idx), P<T>(dst), n, V, D));
  }
  return info.Env().Undefined();
}

// The product of non-negative extents, refused past kMaxSize (so it cannot overflow int64).
int64_t extent(std::initializer_list<int64_t> dims, const char* op, const char* name) {
  int64_t p = 1;
  for (int64_t d : dims) if (d == 0) return 0;
  for (int64_t d : dims) {
    if (p > kMaxSize / d) fail("INVALID_ARGUMENT", std::string(op) + ": " + name + " has more than 2^46 elements");
    p *= d;
  }
  return p;
}

// JS args: A[0..13] = N, C, H, W, kH, kW, sH, sW, pH, pW, dH, dW, Ho, Wo (kernels/cpu/conv.h);
// A[14] = the padding value (im2col); tensors at 16 (source) and 19 (destination), one float dtype.
// im2col: x [N, C, H, W] -> cols [N, C, kH, kW, Ho, Wo]; col2im: cols -> dx [N, C, H, W] (overwritten).
Napi::Value conv_columns(const Napi::CallbackInfo& info, Context& c, bool backward) {
  const char* op = backward ? "col2im" : "im2col";
  constexpr int64_t kDim = INT32_MAX;
  cpu::ConvGeometry g;
  g.N = int_arg(c, 0, op, "N", 0, kDim);
  g.C = int_arg(c, 1, op, "C", 0, kDim);
  g.H = int_arg(c, 2, op, "H", 0, kDim);
  g.W = int_arg(c, 3, op, "W", 0, kDim);
  g.kH = int_arg(c, 4, op, "kH", 1, kDim);
  g.kW = int_arg(c, 5, op, "kW", 1, kDim);
  g.sH = int_arg(c, 6, op, "stride H", 1, kDim);
  g.sW = int_arg(c, 7, op, "stride W", 1, kDim);
  g.pH = int_arg(c, 8, op, "padding H", 0, kDim);
  g.pW = int_arg(c, 9, op, "padding W", 0, kDim);
  g.dH = int_arg(c, 10, op, "dilation H", 1, kDim);
  g.dW = int_arg(c, 11, op, "dilation W", 1, kDim);
  g.Ho = int_arg(c, 12, op, "Ho", 0, kDim);
  g.Wo = int_arg(c, 13, op, "Wo", 0, kDim);
  const int64_t xElems = extent({g.N, g.C, g.H, g.W}, op, "the input");
  const int64_t colElems = extent({g.N, g.C, g.kH, g.kW, g.Ho, g.Wo}, op, "the column matrix");
  Operands a{info, c, op};
  TensorRef src = a.get(0, 16, backward ? "columns" : "input");
  TensorRef dst = a.like(1, 19, backward ? "dx" : "columns", src.dtype);
  need_float(src, op, backward ? "columns" : "input");
  need_elems(src, backward ? colElems : xElems, op, backward ? "columns" : "input");
  need_elems(dst, backward ? xElems : colElems, op, backward ? "dx" : "columns");
  const double padValue = c.args[14];
  if (a.cuda()) {
    cuda_check(backward ? cuda::col2im(src.dtype, src.ptr, dst.ptr, g) : cuda::im2col(src.dtype, src.ptr, dst.ptr, g, padValue), op);
  } else if (backward) {
    KILN_FLOAT_DISPATCH(src.dtype, op, cpu::col2im<T>(P<T>(src), P<T>(dst), g));
  } else {
    KILN_FLOAT_DISPATCH(src.dtype, op, cpu::im2col<T>(P<T>(src), P<T>(dst), g, T(padValue)));
  }
  return info.Env().Undefined();
}
Napi::Value im2col(const Napi::CallbackInfo& info, Context& c) { return conv_columns(info, c, false); }
Napi::Value col2im(const Napi::CallbackInfo& info, Context& c) { return conv_columns(info, c, true); }

// JS args: A[0] descending (0 / 1), A[1] rows, A[2] n; tensors x [rows, n] at 4, values at 7 (x's
// dtype, float32 or float64) and int32 indices at 10, both [rows, n].
Napi::Value sort_rows(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "sort";
  const bool descending = int_arg(c, 0, op, "descending", 0, 1) != 0;
  int64_t rows = int_arg(c, 1, op, "rows", 0, kMaxSize), n = int_arg(c, 2, op, "n", 0, INT32_MAX);
  const int64_t elems = extent({rows, n}, op, "the input");
  Operands a{info, c, op};
  TensorRef x = a.get(0, 4, "input");
  TensorRef v = a.like(1, 7, "values", x.dtype);
  TensorRef ix = a.like(2, 10, "indices", cpu::DType::I32);
  need_float(x, op, "input");
  need_elems(x, elems, op, "input");
  need_elems(v, elems, op, "values");
  need_elems(ix, elems, op, "indices");
  if (a.cuda()) {
    cuda_check(cuda::sort_rows(x.dtype, x.ptr, v.ptr, P<int32_t>(ix), rows, n, descending), op);
  } else {
    KILN_FLOAT_DISPATCH(x.dtype, op, cpu::sort_rows<T>(P<T>(x), P<T>(v), P<int32_t>(ix), rows, n, descending));
  }
  return info.Env().Undefined();
}

// A strided view of t over `shape`: every (extent - 1) * stride term within kMaxSize (so the sum
// cannot overflow), then the farthest element inside the allocation.
void need_view(const TensorRef& t, int ndim, const int64_t* shape, const int64_t* stride, const char* op, const char* name) {
  for (int d = 0; d < ndim; ++d)
    if (shape[d] > 1 && stride[d] > kMaxSize / (shape[d] - 1))
      fail("INVALID_ARGUMENT", std::string(op) + ": " + name + " spans more than 2^46 elements");
  need_strided(t, ndim, shape, stride, op, name);
}

// JS args: A[0] ndim (1-8), A[1] axis, A[2] n (data's extent along axis: indices must be in [0, n)),
// A[3..10] the index's shape, A[11..18] data strides, A[19..26] index strides, A[27..34] dense strides
// (elements, >= 0); tensors data at 36, int32 index at 39, dense at 42 (kernels/cpu/select.h).
// gather: dense[p] = data[p, p[axis] = index[p]], any dtype; scatterAdd: data[...] += dense[p], float32
// or float64. Returns -1, or the first row-major position of the shape whose index is out of range.
Napi::Value along_axis(const Napi::CallbackInfo& info, Context& c, bool scatter) {
  const char* op = scatter ? "scatterAdd" : "gather";
  cpu::AxisGeometry g{};
  g.ndim = static_cast<int>(int_arg(c, 0, op, "ndim", 1, 8));
  g.axis = static_cast<int>(int_arg(c, 1, op, "axis", 0, g.ndim - 1));
  g.n = int_arg(c, 2, op, "n", 0, INT32_MAX);
  int64_t dataShape[8];
  for (int d = 0; d < g.ndim; ++d) {
    g.shape[d] = int_arg(c, 3 + d, op, "shape", 0, kMaxSize);
    g.dataStride[d] = int_arg(c, 11 + d, op, "data stride", 0, kMaxSize);
    g.idxStride[d] = int_arg(c, 19 + d, op, "index stride", 0, kMaxSize);
    g.denseStride[d] = int_arg(c, 27 + d, op, "dense stride", 0, kMaxSize);
    dataShape[d] = d == g.axis ? g.n : g.shape[d];
  }
  int64_t total = 1;
  for (int d = 0; d < g.ndim; ++d) {
    if (g.shape[d] == 0) { total = 0; break; }
    if (total > kMaxSize / g.shape[d]) fail("INVALID_ARGUMENT", std::string(op) + ": the index has more than 2^46 elements");
    total *= g.shape[d];
  }
  Operands a{info, c, op};
  TensorRef data = a.get(0, 36, scatter ? "output" : "input");
  TensorRef idx = a.like(1, 39, "index", cpu::DType::I32);
  TensorRef dense = a.like(2, 42, scatter ? "src" : "output", data.dtype);
  if (scatter) need_float(data, op, "output");
  if (total > 0) {
    need_view(data, g.ndim, dataShape, g.dataStride, op, scatter ? "output" : "input");
    need_view(idx, g.ndim, g.shape, g.idxStride, op, "index");
    need_view(dense, g.ndim, g.shape, g.denseStride, op, scatter ? "src" : "output");
  }
  int64_t bad = -1;
  if (total == 0) {
  } else if (a.cuda()) {
    cuda_check(scatter ? cuda::scatter_add_axis(data.dtype, data.ptr, P<int32_t>(idx), dense.ptr, g, &bad)
                       : cuda::gather_axis(static_cast<int>(dtype_size(data.dtype)), data.ptr, P<int32_t>(idx), dense.ptr, g, &bad),
               op);
  } else if (scatter) {
    KILN_FLOAT_DISPATCH(data.dtype, op, bad = cpu::scatter_add_axis<T>(P<T>(data), P<int32_t>(idx), P<T>(dense), g));
  } else if (dtype_size(data.dtype) == 2) {
    bad = cpu::gather_axis<uint16_t>(P<uint16_t>(data), P<int32_t>(idx), P<uint16_t>(dense), g);
  } else if (dtype_size(data.dtype) == 4) {
    bad = cpu::gather_axis<uint32_t>(P<uint32_t>(data), P<int32_t>(idx), P<uint32_t>(dense), g);
  } else {
    bad = cpu::gather_axis<uint64_t>(P<uint64_t>(data), P<int32_t>(idx), P<uint64_t>(dense), g);
  }
  return Napi::Number::New(info.Env(), static_cast<double>(bad));
}
Napi::Value gather_axis(const Napi::CallbackInfo& info, Context& c) { return along_axis(info, c, false); }
Napi::Value scatter_add_axis(const Napi::CallbackInfo& info, Context& c) { return along_axis(info, c, true); }

// kind 0 uniform(a, b), 1 normal(mean a, std b), 2 randint [a, b); seed = lo + hi * 2^32; offset in words.
Napi::Value random(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "random";
  int64_t kind = int_arg(c, 0, op, "kind", 0, 2);
  int64_t n = int_arg(c, 1, op, "n", 0, kMaxSize);
  uint64_t seed = uint64_t(int_arg(c, 2, op, "seedLo", 0, UINT32_MAX)) | (uint64_t(int_arg(c, 3, op, "seedHi", 0, UINT32_MAX)) << 32);
  uint64_t offset = static_cast<uint64_t>(int_arg(c, 4, op, "offset", 0, int64_t(1) << 53));
  TensorRef o = tensor_arg(info, c, 0, 7, op, "output");
  need_elems(o, n, op, "output");
  const bool onCuda = o.device != kCpu;
  if (kind == 2) {
    need_dtype(o, cpu::DType::I32, op, "output");
    int64_t lo = int_arg(c, 5, op, "low", INT32_MIN, INT32_MAX), hi = int_arg(c, 6, op, "high", lo + 1, int64_t(INT32_MAX) + 1);
    if (hi - lo > (int64_t(1) << 24)) fail("INVALID_ARGUMENT", "randint: high - low must be at most 2^24");
    if (onCuda) cuda_check(cuda::philox_randint(P<int32_t>(o), n, seed, offset, static_cast<int32_t>(lo), static_cast<int32_t>(hi)), op);
    else cpu::philox_randint(P<int32_t>(o), n, seed, offset, static_cast<int32_t>(lo), static_cast<int32_t>(hi));
  } else if (onCuda) {
    need_float(o, op, "output");
    cuda_check(kind == 0 ? cuda::philox_uniform(o.dtype, o.ptr, n, seed, offset, c.args[5], c.args[6])
                         : cuda::philox_normal(o.dtype, o.ptr, n, seed, offset, c.args[5], c.args[6]),
               op);
  } else if (kind == 0) {
    KILN_FLOAT_DISPATCH(o.dtype, op, cpu::philox_uniform<T>(P<T>(o), n, seed, offset, T(c.args[5]), T(c.args[6])));
  } else {
    KILN_FLOAT_DISPATCH(o.dtype, op, cpu::philox_normal<T>(P<T>(o), n, seed, offset, T(c.args[5]), T(c.args[6])));
  }
  return info.Env().Undefined();
}

// Returns the first position whose index is outside [lo, hi) (and not `allowed`), or -1.
Napi::Value find_invalid(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "indices";
  int64_t n = int_arg(c, 0, op, "n", 0, kMaxSize);
  TensorRef idx = tensor_arg(info, c, 0, 4, op, "indices");
  need_dtype(idx, cpu::DType::I32, op, "indices");
  need_elems(idx, n, op, "indices");
  const int32_t lo = static_cast<int32_t>(int_arg(c, 1, op, "lo", INT32_MIN, INT32_MAX));
  const int32_t hi = static_cast<int32_t>(int_arg(c, 2, op, "hi", INT32_MIN, int64_t(INT32_MAX)));
  const int32_t allowed = static_cast<int32_t>(int_arg(c, 3, op, "allowed", INT32_MIN, INT32_MAX));
  int64_t bad = -1;
  if (idx.device == kCpu) {
    bad = cpu::find_invalid_index(P<int32_t>(idx), n, lo, hi, allowed);
  } else {
    int32_t value = 0;
    cuda_check(cuda::find_invalid_index(P<int32_t>(idx), n, lo, hi, allowed, &bad, &value), op);
  }
  return Napi::Number::New(info.Env(), static_cast<double>(bad));
}

}  // namespace

void register_ops(Napi::Env env, Napi::Object exports) {
  KILN_EXPORT(exports, "reduce", reduce);
  KILN_EXPORT(exports, "argReduce", arg_reduce);
  KILN_EXPORT(exports, "cumsum", cumsum);
  KILN_EXPORT(exports, "topk", topk);
  KILN_EXPORT(exports, "sort", sort_rows);
  KILN_EXPORT(exports, "gather", gather_axis);
  KILN_EXPORT(exports, "scatterAdd", scatter_add_axis);
  KILN_EXPORT(exports, "softmax", softmax);
  KILN_EXPORT(exports, "layerNormForward", layernorm_forward);
  KILN_EXPORT(exports, "layerNormBackward", layernorm_backward);
  KILN_EXPORT(exports, "crossEntropyForward", cross_entropy_forward);
  KILN_EXPORT(exports, "crossEntropyBackward", cross_entropy_backward);
  KILN_EXPORT(exports, "embedding", embedding);
  KILN_EXPORT(exports, "im2col", im2col);
  KILN_EXPORT(exports, "col2im", col2im);
  KILN_EXPORT(exports, "random", random);
  KILN_EXPORT(exports, "findInvalidIndex", find_invalid);
}

}  // namespace native
}  // namespace kiln
