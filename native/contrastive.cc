// Decoders for the contrastive kernels (kernels/cpu/contrastive.h, kernels/cuda/contrastive_api.h).
// Operands are dense row-major and share one device and one float dtype; sizes and ranges are
// re-checked here before a kernel runs.
#include <cmath>
#include <string>

#include "../kernels/cpu/contrastive.h"
#include "../kernels/cuda/contrastive_api.h"
#include "context.h"

namespace kiln {
namespace native {
namespace {

constexpr int64_t kMaxSize = int64_t(1) << 46;

// Operand `name` with `elems` elements, on the device and of the dtype of `like` (when given).
TensorRef operand(const Napi::CallbackInfo& info, Context& c, int jsArg, int pos, const char* op, const char* name,
                  int64_t elems, const TensorRef* like) {
  TensorRef t = tensor_arg(info, c, jsArg, pos, op, name);
  if (like) {
    need_dtype(t, like->dtype, op, name);
    if (t.device != like->device) fail("DEVICE_MISMATCH", std::string(op) + ": " + name + " is on another device");
  } else if (t.dtype != cpu::DType::F32 && t.dtype != cpu::DType::F64) {
    fail("DTYPE_MISMATCH", std::string(op) + ": " + name + " must be float32 or float64");
  }
  need_elems(t, elems, op, name);
  return t;
}

double finite_arg(const Context& c, int pos, const char* op, const char* name, bool positive) {
  double v = c.args[pos];
  if (!std::isfinite(v) || (positive ? !(v > 0) : !(v >= 0)))
    fail("INVALID_ARGUMENT", std::string(op) + ": " + name + " must be " + (positive ? "> 0" : ">= 0") + " and finite, got " +
                                 std::to_string(v));
  return v;
}

void check_cuda(const std::string& err, const char* op) {
  if (!err.empty()) fail("CUDA_ERROR", std::string(op) + ": " + err);
}

// A[0] rows, A[1] dim, A[2] shift, A[3] flags (1 cosine, 2 mask self, 4 shared), A[4] scale,
// A[5] w_pos, A[6] w_self.
cpu::NceSpec nce_spec(const Context& c, const char* op) {
  cpu::NceSpec s;
  s.rows = int_arg(c, 0, op, "rows", 0, INT32_MAX);
  s.dim = int_arg(c, 1, op, "dim", 1, kMaxSize);
  s.shift = int_arg(c, 2, op, "shift", 0, s.rows > 0 ? s.rows - 1 : 0);
  int64_t flags = int_arg(c, 3, op, "flags", 0, 7);
  s.cosine = flags & 1;
  s.mask_self = flags & 2;
  s.shared = flags & 4;
  s.scale = finite_arg(c, 4, op, "scale (1 / temperature)", true);
  s.w_pos = finite_arg(c, 5, op, "positive weight", false);
  s.w_self = finite_arg(c, 6, op, "self weight", false);
  if (s.mask_self && s.w_self != 0) fail("INVALID_ARGUMENT", std::string(op) + ": the self pair is masked but has a target weight");
  if (s.mask_self && s.rows == 1) fail("SHAPE_MISMATCH", std::string(op) + ": one row with its self pair masked has no logits");
  if (s.mask_self && s.shift == 0 && s.w_pos != 0) fail("INVALID_ARGUMENT", std::string(op) + ": the positive is the masked self pair");
  if (s.rows * s.dim > kMaxSize) fail("INVALID_ARGUMENT", std::string(op) + ": too large");
  return s;
}

// JS args: q, k (undefined when shared), loss, lse, esim, tsim.
Napi::Value nce_forward(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "infoNCE";
  cpu::NceSpec s = nce_spec(c, op);
  const int64_t rd = s.rows * s.dim;
  TensorRef q = operand(info, c, 0, 8, op, "queries", rd, nullptr);
  TensorRef k = s.shared ? q : operand(info, c, 1, 11, op, "keys", rd, &q);
  TensorRef loss = operand(info, c, 2, 14, op, "loss", s.rows, &q);
  TensorRef lse = operand(info, c, 3, 17, op, "lse", s.rows, &q);
  TensorRef esim = operand(info, c, 4, 20, op, "esim", s.rows, &q);
  TensorRef tsim = operand(info, c, 5, 23, op, "tsim", s.rows, &q);
  if (q.device != kCpu) {
    check_cuda(cuda::nce_forward(q.dtype, s, q.ptr, k.ptr, loss.ptr, lse.ptr, esim.ptr, tsim.ptr), op);
  } else if (q.dtype == cpu::DType::F32) {
    using T = float;
    cpu::nce_forward<T>(s, (T*)q.ptr, (T*)k.ptr, (T*)loss.ptr, (T*)lse.ptr, (T*)esim.ptr, (T*)tsim.ptr);
  } else {
    using T = double;
    cpu::nce_forward<T>(s, (T*)q.ptr, (T*)k.ptr, (T*)loss.ptr, (T*)lse.ptr, (T*)esim.ptr, (T*)tsim.ptr);
  }
  return info.Env().Undefined();
}

// JS args: q, k (undefined when shared), lse, grow, dq, dk (undefined when shared).
Napi::Value nce_backward(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "infoNCE backward";
  cpu::NceSpec s = nce_spec(c, op);
  const int64_t rd = s.rows * s.dim;
  TensorRef q = operand(info, c, 0, 8, op, "queries", rd, nullptr);
  TensorRef k = s.shared ? q : operand(info, c, 1, 11, op, "keys", rd, &q);
  TensorRef lse = operand(info, c, 2, 14, op, "lse", s.rows, &q);
  TensorRef grow = operand(info, c, 3, 17, op, "grad", s.rows, &q);
  TensorRef dq = operand(info, c, 4, 20, op, "dqueries", rd, &q);
  TensorRef dk = s.shared ? dq : operand(info, c, 5, 23, op, "dkeys", rd, &q);
  if (q.device != kCpu) {
    check_cuda(cuda::nce_backward(q.dtype, s, q.ptr, k.ptr, lse.ptr, grow.ptr, dq.ptr, s.shared ? nullptr : dk.ptr), op);
  } else if (q.dtype == cpu::DType::F32) {
    using T = float;
    cpu::nce_backward<T>(s, (T*)q.ptr, (T*)k.ptr, (T*)lse.ptr, (T*)grow.ptr, (T*)dq.ptr, s.shared ? nullptr : (T*)dk.ptr);
  } else {
    using T = double;
    cpu::nce_backward<T>(s, (T*)q.ptr, (T*)k.ptr, (T*)lse.ptr, (T*)grow.ptr, (T*)dq.ptr, s.shared ? nullptr : (T*)dk.ptr);
  }
  return info.Env().Undefined();
}

// A[0] n, A[1] classes, A[2] tau_t, A[3] tau_s, A[4] kind (0 forward, 1 backward), A[5] flags (1 dt, 2 ds).
// JS args: teacher, student, loss | grad, dt, ds.
Napi::Value dissl_ce(const Napi::CallbackInfo& info, Context& c) {
  const bool bwd = c.args[4] != 0;
  const char* op = bwd ? "disslCrossEntropy backward" : "disslCrossEntropy";
  int64_t n = int_arg(c, 0, op, "n", 0, kMaxSize), C = int_arg(c, 1, op, "classes", 1, INT32_MAX);
  double tt = finite_arg(c, 2, op, "teacher temperature", true), ts = finite_arg(c, 3, op, "student temperature", true);
  int64_t flags = int_arg(c, 5, op, "flags", 0, 3);
  TensorRef t = operand(info, c, 0, 8, op, "teacher", n * C, nullptr);
  TensorRef st = operand(info, c, 1, 11, op, "student", n * C, &t);
  TensorRef l = operand(info, c, 2, 14, op, bwd ? "grad" : "loss", n, &t);
  TensorRef dt, ds;
  if (bwd && (flags & 1)) dt = operand(info, c, 3, 17, op, "dteacher", n * C, &t);
  if (bwd && (flags & 2)) ds = operand(info, c, 4, 20, op, "dstudent", n * C, &t);
  if (t.device != kCpu) {
    check_cuda(bwd ? cuda::dissl_ce_backward(t.dtype, t.ptr, st.ptr, l.ptr, dt.ptr, ds.ptr, n, C, tt, ts)
                   : cuda::dissl_ce_forward(t.dtype, t.ptr, st.ptr, l.ptr, n, C, tt, ts),
               op);
  } else if (t.dtype == cpu::DType::F32) {
    using T = float;
    if (bwd) cpu::dissl_ce_backward<T>((T*)t.ptr, (T*)st.ptr, (T*)l.ptr, (T*)dt.ptr, (T*)ds.ptr, n, C, T(tt), T(ts));
    else cpu::dissl_ce_forward<T>((T*)t.ptr, (T*)st.ptr, (T*)l.ptr, n, C, T(tt), T(ts));
  } else {
    using T = double;
    if (bwd) cpu::dissl_ce_backward<T>((T*)t.ptr, (T*)st.ptr, (T*)l.ptr, (T*)dt.ptr, (T*)ds.ptr, n, C, T(tt), T(ts));
    else cpu::dissl_ce_forward<T>((T*)t.ptr, (T*)st.ptr, (T*)l.ptr, n, C, T(tt), T(ts));
  }
  return info.Env().Undefined();
}

// A[0] n, A[1] classes, A[2] tau, A[3] kind (0 forward, 1 backward), A[4] upstream gradient.
// JS args: teacher, pbar, h (forward) | dteacher (backward).
Napi::Value mean_entropy(const Napi::CallbackInfo& info, Context& c) {
  const bool bwd = c.args[3] != 0;
  const char* op = bwd ? "meanEntropy backward" : "meanEntropy";
  int64_t n = int_arg(c, 0, op, "n", 1, kMaxSize), C = int_arg(c, 1, op, "classes", 1, INT32_MAX);
  double tau = finite_arg(c, 2, op, "temperature", true);
  double g = c.args[4];
  TensorRef t = operand(info, c, 0, 8, op, "teacher", n * C, nullptr);
  TensorRef pbar = operand(info, c, 1, 11, op, "pbar", C, &t);
  TensorRef o = operand(info, c, 2, 14, op, bwd ? "dteacher" : "entropy", bwd ? n * C : 1, &t);
  if (t.device != kCpu) {
    check_cuda(bwd ? cuda::mean_entropy_backward(t.dtype, t.ptr, pbar.ptr, g, o.ptr, n, C, tau)
                   : cuda::mean_entropy_forward(t.dtype, t.ptr, pbar.ptr, o.ptr, n, C, tau),
               op);
  } else if (t.dtype == cpu::DType::F32) {
    using T = float;
    if (bwd) cpu::mean_entropy_backward<T>((T*)t.ptr, (T*)pbar.ptr, T(g), (T*)o.ptr, n, C, T(tau));
    else cpu::mean_entropy_forward<T>((T*)t.ptr, (T*)pbar.ptr, (T*)o.ptr, n, C, T(tau));
  } else {
    using T = double;
    if (bwd) cpu::mean_entropy_backward<T>((T*)t.ptr, (T*)pbar.ptr, T(g), (T*)o.ptr, n, C, T(tau));
    else cpu::mean_entropy_forward<T>((T*)t.ptr, (T*)pbar.ptr, (T*)o.ptr, n, C, T(tau));
  }
  return info.Env().Undefined();
}

}  // namespace

void register_contrastive(Napi::Env env, Napi::Object exports) {
  KILN_EXPORT(exports, "nceForward", nce_forward);
  KILN_EXPORT(exports, "nceBackward", nce_backward);
  KILN_EXPORT(exports, "disslCrossEntropy", dissl_ce);
  KILN_EXPORT(exports, "meanEntropy", mean_entropy);
}
KILN_REGISTER(register_contrastive);

}  // namespace native
}  // namespace kiln
