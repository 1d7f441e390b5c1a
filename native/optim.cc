// Decoders for the fused optimizer kernels (kernels/cpu/optim.h, kernels/cuda/core_api.h). Every
// operand is a dense tensor updated in place, all on the device of the first; sizes, dtypes and
// aliasing are checked here before a kernel runs.
#include <cmath>

#include "../kernels/cpu/optim.h"
#include "../kernels/cuda/core_api.h"
#include "context.h"

namespace kiln {
namespace native {
namespace {

constexpr int64_t kMaxSize = int64_t(1) << 46;

TensorRef dense_arg(const Napi::CallbackInfo& info, Context& c, int jsArg, int pos, int64_t n, const char* op,
                    const char* name, const TensorRef* like) {
  TensorRef t = tensor_arg(info, c, jsArg, pos, op, name);
  if (like) {
    need_dtype(t, like->dtype, op, name);
    if (t.device != like->device)
      fail("DEVICE_MISMATCH", std::string(op) + ": " + name + " is on " + (t.device == kCpu ? "cpu" : "cuda") + " but the first operand is on " +
                                  (like->device == kCpu ? "cpu" : "cuda"));
  } else if (t.dtype != cpu::DType::F32 && t.dtype != cpu::DType::F64) {
    fail("DTYPE_MISMATCH", std::string(op) + ": " + name + " must be float32 or float64");
  }
  need_elems(t, n, op, name);
  return t;
}

void need_distinct(const TensorRef& a, const TensorRef& b, const char* op, const char* what) {
  if (a.ptr == b.ptr) fail("INVALID_ARGUMENT", std::string(op) + ": " + what + " share memory");
}

double finite_arg(const Context& c, int pos, const char* op, const char* name) {
  double v = c.args[pos];
  if (!std::isfinite(v)) fail("INVALID_ARGUMENT", std::string(op) + ": " + name + " must be finite");
  return v;
}

template <class T> T* P(const TensorRef& t) { return reinterpret_cast<T*>(t.ptr); }

void cuda_check(const std::string& err, const char* op) {
  if (!err.empty()) fail("CUDA_ERROR", std::string(op) + ": " + err);
}

#define KILN_OPTIM_DISPATCH(dtype, ...)                              \
  do {                                                               \
    if ((dtype) == cpu::DType::F32) { using T = float; __VA_ARGS__; } \
    else { using T = double; __VA_ARGS__; }                          \
  } while (0)

// args: 0 n, 1 lr, 2 beta1, 3 beta2, 4 eps, 5 weightDecay, 6 bc1, 7 bc2, 8 decoupled; refs p 10, g 13, m 16, v 19.
Napi::Value adam_step(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "adam";
  int64_t n = int_arg(c, 0, op, "n", 0, kMaxSize);
  double lr = finite_arg(c, 1, op, "lr"), b1 = finite_arg(c, 2, op, "beta1"), b2 = finite_arg(c, 3, op, "beta2");
  double eps = finite_arg(c, 4, op, "eps"), wd = finite_arg(c, 5, op, "weightDecay");
  double bc1 = finite_arg(c, 6, op, "bc1"), bc2 = finite_arg(c, 7, op, "bc2");
  if (!(bc1 > 0 && bc2 > 0)) fail("INVALID_ARGUMENT", "adam: bias corrections must be positive");
  TensorRef p = dense_arg(info, c, 0, 10, n, op, "param", nullptr);
  TensorRef g = dense_arg(info, c, 1, 13, n, op, "grad", &p);
  TensorRef m = dense_arg(info, c, 2, 16, n, op, "exp_avg", &p);
  TensorRef v = dense_arg(info, c, 3, 19, n, op, "exp_avg_sq", &p);
  need_distinct(p, m, op, "param and exp_avg");
  need_distinct(p, v, op, "param and exp_avg_sq");
  need_distinct(m, v, op, "exp_avg and exp_avg_sq");
  need_distinct(g, p, op, "grad and param");
  if (n == 0) return info.Env().Undefined();
  if (p.device != kCpu) {
    cuda_check(cuda::adam_step(p.dtype, p.ptr, g.ptr, m.ptr, v.ptr, n, lr, b1, b2, eps, wd, bc1, bc2, c.args[8] != 0), op);
    return info.Env().Undefined();
  }
  KILN_OPTIM_DISPATCH(p.dtype, cpu::adam_step<T>(P<T>(p), P<T>(g), P<T>(m), P<T>(v), n, lr, b1, b2, eps, wd, bc1, bc2,
                                                 c.args[8] != 0));
  return info.Env().Undefined();
}

// args: 0 n, 1 lr, 2 momentum, 3 dampening, 4 weightDecay, 5 nesterov, 6 first, 7 hasBuf; refs p 10, g 13, buf 16.
Napi::Value sgd_step(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "sgd";
  int64_t n = int_arg(c, 0, op, "n", 0, kMaxSize);
  double lr = finite_arg(c, 1, op, "lr"), mom = finite_arg(c, 2, op, "momentum");
  double damp = finite_arg(c, 3, op, "dampening"), wd = finite_arg(c, 4, op, "weightDecay");
  bool hasBuf = c.args[7] != 0;
  TensorRef p = dense_arg(info, c, 0, 10, n, op, "param", nullptr);
  TensorRef g = dense_arg(info, c, 1, 13, n, op, "grad", &p);
  need_distinct(g, p, op, "grad and param");
  TensorRef b;
  if (hasBuf) {
    b = dense_arg(info, c, 2, 16, n, op, "momentum_buffer", &p);
    need_distinct(b, p, op, "momentum_buffer and param");
  }
  if (n == 0) return info.Env().Undefined();
  if (p.device != kCpu) {
    cuda_check(cuda::sgd_step(p.dtype, p.ptr, g.ptr, hasBuf ? b.ptr : nullptr, n, lr, mom, damp, wd, c.args[5] != 0, c.args[6] != 0),
               op);
    return info.Env().Undefined();
  }
  KILN_OPTIM_DISPATCH(p.dtype, cpu::sgd_step<T>(P<T>(p), P<T>(g), hasBuf ? P<T>(b) : nullptr, n, lr, mom, damp, wd,
                                                c.args[5] != 0, c.args[6] != 0));
  return info.Env().Undefined();
}

// args: 0 n; ref x 4. Returns the sum of squares as a double.
Napi::Value sum_squares(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "sumSquares";
  int64_t n = int_arg(c, 0, op, "n", 0, kMaxSize);
  TensorRef x = dense_arg(info, c, 0, 4, n, op, "input", nullptr);
  double s = 0;
  if (x.device != kCpu) cuda_check(cuda::sum_squares(x.dtype, x.ptr, n, &s), op);
  else KILN_OPTIM_DISPATCH(x.dtype, s = cpu::sum_squares<T>(P<T>(x), n));
  return Napi::Number::New(info.Env(), s);
}

// args: 0 n, 1 scale; ref x 4.
Napi::Value scale_inplace(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "scale";
  int64_t n = int_arg(c, 0, op, "n", 0, kMaxSize);
  double s = finite_arg(c, 1, op, "scale");
  TensorRef x = dense_arg(info, c, 0, 4, n, op, "input", nullptr);
  if (x.device != kCpu) cuda_check(cuda::scale_inplace(x.dtype, x.ptr, n, s), op);
  else KILN_OPTIM_DISPATCH(x.dtype, cpu::scale_inplace<T>(P<T>(x), n, s));
  return info.Env().Undefined();
}

// args: 0 n, 1 decay; refs shadow 4, param 7.
Napi::Value ema_update(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "ema";
  int64_t n = int_arg(c, 0, op, "n", 0, kMaxSize);
  double decay = finite_arg(c, 1, op, "decay");
  TensorRef s = dense_arg(info, c, 0, 4, n, op, "shadow", nullptr);
  TensorRef p = dense_arg(info, c, 1, 7, n, op, "param", &s);
  if (s.device != kCpu) cuda_check(cuda::ema_update(s.dtype, s.ptr, p.ptr, n, decay), op);
  else KILN_OPTIM_DISPATCH(s.dtype, cpu::ema_update<T>(P<T>(s), P<T>(p), n, decay));
  return info.Env().Undefined();
}

}  // namespace

void register_optim(Napi::Env env, Napi::Object exports) {
  KILN_EXPORT(exports, "adamStep", adam_step);
  KILN_EXPORT(exports, "sgdStep", sgd_step);
  KILN_EXPORT(exports, "sumSquares", sum_squares);
  KILN_EXPORT(exports, "scaleInplace", scale_inplace);
  KILN_EXPORT(exports, "emaUpdate", ema_update);
}

}  // namespace native
}  // namespace kiln
