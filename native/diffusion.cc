// Decoders for the diffusion kernels (kernels/cpu/diffusion.h, kernels/cuda/diffusion_api.h).
// Operands are dense row-major on one device; sizes, dtypes and the coefficient table are checked here.
#include <cmath>
#include <string>

#include "../kernels/cpu/diffusion.h"
#include "../kernels/cuda/diffusion_api.h"
#include "context.h"

namespace kiln {
namespace native {
namespace {

constexpr int64_t kMaxSize = int64_t(1) << 46;

TensorRef like_arg(const Napi::CallbackInfo& info, Context& c, int jsArg, int pos, const char* op, const char* name,
                   int64_t elems, const TensorRef& like, cpu::DType dt) {
  TensorRef t = tensor_arg(info, c, jsArg, pos, op, name);
  need_dtype(t, dt, op, name);
  if (t.device != like.device) fail("DEVICE_MISMATCH", std::string(op) + ": " + name + " is on another device");
  need_elems(t, elems, op, name);
  return t;
}

// A[0] rows, A[1] inner, A[2] flags (1 clip, 2 Philox noise, 4 given noise, 8 y, 16 x0 out,
// 32 noise out), A[3] lo, A[4] hi,
// A[5] seed low, A[6] seed high, A[7] offset.
// JS args: x, y, noise, out, x0, noiseOut, coef (float64 [rows, 8]); y, noise, x0, noiseOut optional.
Napi::Value diffusion_step(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "diffusionStep";
  cpu::DiffusionSpec s;
  s.rows = int_arg(c, 0, op, "rows", 0, kMaxSize);
  s.inner = int_arg(c, 1, op, "inner", 0, kMaxSize);
  if (s.inner > 0 && s.rows > kMaxSize / s.inner) fail("INVALID_ARGUMENT", std::string(op) + ": too large");
  int64_t flags = int_arg(c, 2, op, "flags", 0, 63);
  if ((flags & 6) == 6) fail("INVALID_ARGUMENT", std::string(op) + ": noise is either drawn or given, not both");
  s.clip = flags & 1;
  s.noise = (flags & 2) ? cpu::NoiseSource::Philox : (flags & 4) ? cpu::NoiseSource::Given : cpu::NoiseSource::None;
  s.lo = c.args[3];
  s.hi = c.args[4];
  if (s.clip && !(s.lo <= s.hi)) fail("INVALID_ARGUMENT", std::string(op) + ": clip range is empty");
  s.seed = uint64_t(int_arg(c, 5, op, "seedLo", 0, UINT32_MAX)) | (uint64_t(int_arg(c, 6, op, "seedHi", 0, UINT32_MAX)) << 32);
  s.offset = static_cast<uint64_t>(int_arg(c, 7, op, "offset", 0, int64_t(1) << 53));
  const int64_t n = s.rows * s.inner;
  TensorRef x = tensor_arg(info, c, 0, 8, op, "x");
  if (x.dtype != cpu::DType::F32 && x.dtype != cpu::DType::F64) fail("DTYPE_MISMATCH", std::string(op) + ": x must be float32 or float64");
  need_elems(x, n, op, "x");
  const bool hasY = flags & 8, hasX0 = flags & 16, hasNoiseOut = flags & 32;
  TensorRef y, z, x0o, zo;
  if (hasY) y = like_arg(info, c, 1, 11, op, "model output", n, x, x.dtype);
  if (s.noise == cpu::NoiseSource::Given) z = like_arg(info, c, 2, 14, op, "noise", n, x, x.dtype);
  TensorRef out = like_arg(info, c, 3, 17, op, "out", n, x, x.dtype);
  if (hasX0) x0o = like_arg(info, c, 4, 20, op, "x0", n, x, x.dtype);
  if (hasNoiseOut) zo = like_arg(info, c, 5, 23, op, "noise out", n, x, x.dtype);
  TensorRef coef = like_arg(info, c, 6, 26, op, "coefficients", s.rows * 8, x, cpu::DType::F64);
  if (x.device != kCpu) {
    std::string err = cuda::diffusion_step(x.dtype, s, coef.ptr, x.ptr, y.ptr, z.ptr, out.ptr, x0o.ptr, zo.ptr);
    if (!err.empty()) fail("CUDA_ERROR", std::string(op) + ": " + err);
  } else if (x.dtype == cpu::DType::F32) {
    using T = float;
    cpu::diffusion_step<T>(s, (const double*)coef.ptr, (T*)x.ptr, (T*)y.ptr, (T*)z.ptr, (T*)out.ptr, (T*)x0o.ptr, (T*)zo.ptr);
  } else {
    using T = double;
    cpu::diffusion_step<T>(s, (const double*)coef.ptr, (T*)x.ptr, (T*)y.ptr, (T*)z.ptr, (T*)out.ptr, (T*)x0o.ptr, (T*)zo.ptr);
  }
  return info.Env().Undefined();
}

// A[0] rows m, A[1] vocabulary v, A[2] dim d, A[3] 1 to write the snapped rows. JS args: x [m, d], E [v, d], idx int32 [m], snapped [m, d] (optional).
Napi::Value nearest_rows(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "nearestRows";
  int64_t m = int_arg(c, 0, op, "rows", 0, kMaxSize), v = int_arg(c, 1, op, "vocabulary", 1, INT32_MAX);
  int64_t d = int_arg(c, 2, op, "dim", 1, kMaxSize);
  TensorRef x = tensor_arg(info, c, 0, 8, op, "x");
  if (x.dtype != cpu::DType::F32 && x.dtype != cpu::DType::F64) fail("DTYPE_MISMATCH", std::string(op) + ": x must be float32 or float64");
  need_elems(x, m * d, op, "x");
  TensorRef E = like_arg(info, c, 1, 11, op, "embedding", v * d, x, x.dtype);
  TensorRef idx = like_arg(info, c, 2, 14, op, "indices", m, x, cpu::DType::I32);
  const bool hasSnap = c.args[3] != 0;
  TensorRef snap;
  if (hasSnap) snap = like_arg(info, c, 3, 17, op, "snapped", m * d, x, x.dtype);
  if (x.device != kCpu) {
    std::string err = cuda::nearest_rows(x.dtype, x.ptr, E.ptr, m, v, d, idx.ptr, snap.ptr);
    if (!err.empty()) fail("CUDA_ERROR", std::string(op) + ": " + err);
  } else if (x.dtype == cpu::DType::F32) {
    cpu::nearest_rows<float>((float*)x.ptr, (float*)E.ptr, m, v, d, (int32_t*)idx.ptr, (float*)snap.ptr);
  } else {
    cpu::nearest_rows<double>((double*)x.ptr, (double*)E.ptr, m, v, d, (int32_t*)idx.ptr, (double*)snap.ptr);
  }
  return info.Env().Undefined();
}

}  // namespace

void register_diffusion(Napi::Env env, Napi::Object exports) {
  KILN_EXPORT(exports, "diffusionStep", diffusion_step);
  KILN_EXPORT(exports, "nearestRows", nearest_rows);
}
KILN_REGISTER(register_diffusion);

}  // namespace native
}  // namespace kiln
