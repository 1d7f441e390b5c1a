// Decoder for the fused attention kernels (kernels/cpu/attention.h, kernels/cuda/attention_api.h).
// Argument slots: 0 B, 1 H, 2 Tq, 3 Tk, 4 D, 5 scale, 6 causal, 7 mask kind (0 none, 1 key
// lengths [B], 2 key mask [B, Tk]), 8 dropout p, 9 seed low, 10 seed high, 11 Philox word offset;
// then the tensors (handle, byte offset, dtype) from slot 12 on, three slots each; after them, in
// both calls, 42 and 43: the elements between consecutive (b, h) heads of k and of v (Tk * D when
// dense; another stride reads them as views of bigger buffers, on the CPU only).
#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "../kernels/cpu/attention.h"
#include "../kernels/cuda/attention_api.h"
#include "context.h"

namespace kiln {
namespace native {
namespace {

constexpr int64_t kMaxSize = int64_t(1) << 46;
constexpr int64_t kMaxHeadDimCpu = 512;

struct Decoded {
  cpu::AttentionArgs a;
  int64_t maskKind = 0;
};

Decoded header(Context& c, const char* op) {
  Decoded r;
  cpu::AttentionArgs& a = r.a;
  a.B = int_arg(c, 0, op, "B", 0, kMaxSize);
  a.H = int_arg(c, 1, op, "H", 0, kMaxSize);
  a.Tq = int_arg(c, 2, op, "Tq", 0, kMaxSize);
  a.Tk = int_arg(c, 3, op, "Tk", 0, kMaxSize);
  a.D = int_arg(c, 4, op, "D", 1, kMaxSize);
  if (a.B * a.H > kMaxSize / std::max<int64_t>(1, std::max(a.Tq, a.Tk) * a.D))
    fail("INVALID_ARGUMENT", std::string(op) + ": tensor too large");
  a.scale = c.args[5];
  if (!std::isfinite(a.scale)) fail("INVALID_ARGUMENT", std::string(op) + ": scale must be finite");
  a.causal = c.args[6] != 0;
  r.maskKind = int_arg(c, 7, op, "mask kind", 0, 2);
  a.dropout = c.args[8];
  if (!(a.dropout >= 0 && a.dropout < 1)) fail("INVALID_ARGUMENT", std::string(op) + ": dropout must be in [0, 1)");
  uint64_t lo = static_cast<uint64_t>(int_arg(c, 9, op, "seed", 0, 0xffffffffLL));
  uint64_t hi = static_cast<uint64_t>(int_arg(c, 10, op, "seed", 0, 0xffffffffLL));
  a.seed = lo | (hi << 32);
  a.offset = static_cast<uint64_t>(int_arg(c, 11, op, "offset", 0, int64_t(1) << 53));
  return r;
}

void need_same(const TensorRef& t, const TensorRef& like, const char* op, const char* name) {
  if (t.device != like.device) fail("DEVICE_MISMATCH", std::string(op) + ": " + name + " is on another device than q");
  need_dtype(t, like.dtype, op, name);
}

// The mask operand (int32, same device as q), when there is one.
void mask_arg(const Napi::CallbackInfo& info, Context& c, Decoded& d, int jsArg, int pos, const TensorRef& q,
              const char* op) {
  if (d.maskKind == 0) return;
  TensorRef m = tensor_arg(info, c, jsArg, pos, op, "mask");
  if (m.device != q.device) fail("DEVICE_MISMATCH", std::string(op) + ": the mask is on another device than q");
  need_dtype(m, cpu::DType::I32, op, "mask");
  if (d.maskKind == 1) {
    need_elems(m, d.a.B, op, "keyPaddingLengths");
    d.a.keyLens = reinterpret_cast<const int32_t*>(m.ptr);
  } else {
    need_elems(m, d.a.B * d.a.Tk, op, "key mask");
    d.a.keyMask = reinterpret_cast<const int32_t*>(m.ptr);
  }
}

// Head dim and element type: the CUDA kernels take float32, float16 and bfloat16 (lse is always
// float32 there); the CPU kernel float32 and float64 (lse in q's dtype).
void check_head_dim(const Decoded& d, const TensorRef& q, const char* op) {
  if (q.device == kCuda) {
    if (!cuda::attention_head_dim_supported(d.a.D))
      fail("INVALID_ARGUMENT", std::string(op) + ": the CUDA kernel supports head dims 32, 64 and 128, got " +
                                   std::to_string(d.a.D));
    if (q.dtype != cpu::DType::F32 && q.dtype != cpu::DType::F16 && q.dtype != cpu::DType::BF16)
      fail("DTYPE_MISMATCH", std::string(op) + ": the CUDA kernel needs float32, float16 or bfloat16");
    return;
  }
  if (d.a.D > kMaxHeadDimCpu)
    fail("INVALID_ARGUMENT", std::string(op) + ": head dim " + std::to_string(d.a.D) + " is larger than " +
                                 std::to_string(kMaxHeadDimCpu));
  if (q.dtype != cpu::DType::F32 && q.dtype != cpu::DType::F64)
    fail("DTYPE_MISMATCH", std::string(op) + ": the CPU kernel needs float32 or float64");
}

// Every kernel but the CPU's float64 one computes in float32: the scale must be a float32 number.
void check_scale(const Decoded& d, const TensorRef& q, const char* op) {
  if (q.dtype != cpu::DType::F64 && !(std::fabs(d.a.scale) <= 3.4028234663852886e38))
    fail("INVALID_ARGUMENT", std::string(op) + ": scale " + std::to_string(d.a.scale) + " is past float32's range");
}

cuda::AttnDType attn_dtype(const TensorRef& q) {
  if (q.dtype == cpu::DType::F16) return cuda::AttnDType::F16;
  return q.dtype == cpu::DType::BF16 ? cuda::AttnDType::BF16 : cuda::AttnDType::F32;
}

void need_lse(const TensorRef& lse, const TensorRef& q, const char* op) {
  if (lse.device != q.device) fail("DEVICE_MISMATCH", std::string(op) + ": lse is on another device than q");
  need_dtype(lse, q.device == kCuda ? cpu::DType::F32 : q.dtype, op, "lse");
}

template <class T> T* P(const TensorRef& t) { return reinterpret_cast<T*>(t.ptr); }

constexpr int kHeadStrideSlot = 42;

// k and v's head strides (slots 42, 43). CUDA kernels assume dense heads: any other stride there is
// refused rather than read wrongly.
void head_strides(Context& c, Decoded& d, const TensorRef& q, const char* op) {
  cpu::AttentionArgs& a = d.a;
  a.kHeadStride = int_arg(c, kHeadStrideSlot, op, "k head stride", 0, kMaxSize);
  a.vHeadStride = int_arg(c, kHeadStrideSlot + 1, op, "v head stride", 0, kMaxSize);
  const int64_t dense = a.Tk * a.D;
  if (q.device == kCuda && (a.kHeadStride != dense || a.vHeadStride != dense))
    fail("INVALID_ARGUMENT", std::string(op) + ": the CUDA kernels take dense k and v (head stride " +
                                 std::to_string(dense) + "), got head strides " + std::to_string(a.kHeadStride) +
                                 " and " + std::to_string(a.vHeadStride));
}

// k or v [B*H heads of Tk x D, `stride` apart]: the last element read, (B*H - 1) * stride + Tk * D - 1,
// must lie in the storage (checked without overflow: stride and B*H are each below 2^47).
void need_heads(const TensorRef& t, const cpu::AttentionArgs& a, int64_t stride, const char* op, const char* name) {
  const int64_t BH = a.B * a.H, rows = a.Tk * a.D;
  if (BH == 0 || rows == 0) return;
  const int64_t avail = static_cast<int64_t>(t.avail / dtype_size(t.dtype));
  if (rows > avail || (BH > 1 && stride > 0 && BH - 1 > (avail - rows) / stride))
    fail("INVALID_ARGUMENT", std::string(op) + ": " + name + " with " + std::to_string(BH) + " heads of " +
                                 std::to_string(a.Tk) + " x " + std::to_string(a.D) + " elements, " +
                                 std::to_string(stride) + " apart, reads past its storage of " +
                                 std::to_string(avail) + " elements");
}

// JS args: q, k, v, out, lse, mask.
Napi::Value attention_forward(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "scaledDotProductAttention";
  Decoded d = header(c, op);
  const cpu::AttentionArgs& a = d.a;
  TensorRef q = tensor_arg(info, c, 0, 12, op, "q");
  check_head_dim(d, q, op);
  check_scale(d, q, op);
  TensorRef k = tensor_arg(info, c, 1, 15, op, "k"), v = tensor_arg(info, c, 2, 18, op, "v");
  TensorRef o = tensor_arg(info, c, 3, 21, op, "out"), lse = tensor_arg(info, c, 4, 24, op, "lse");
  for (auto [t, name] : {std::pair{&k, "k"}, {&v, "v"}, {&o, "out"}}) need_same(*t, q, op, name);
  need_lse(lse, q, op);
  mask_arg(info, c, d, 5, 27, q, op);
  head_strides(c, d, q, op);
  need_elems(q, a.B * a.H * a.Tq * a.D, op, "q");
  need_heads(k, a, a.kHeadStride, op, "k");
  need_heads(v, a, a.vHeadStride, op, "v");
  need_elems(o, a.B * a.H * a.Tq * a.D, op, "out");
  need_elems(lse, a.B * a.H * a.Tq, op, "lse");
  if (q.device == kCuda) {
    std::string err = cuda::attention_forward(attn_dtype(q), a, q.ptr, k.ptr, v.ptr, o.ptr, P<float>(lse));
    if (!err.empty()) fail("CUDA_ERROR", std::string(op) + ": " + err);
  } else if (q.dtype == cpu::DType::F32) {
    cpu::attention_forward<float>(a, P<float>(q), P<float>(k), P<float>(v), P<float>(o), P<float>(lse));
  } else {
    cpu::attention_forward<double>(a, P<double>(q), P<double>(k), P<double>(v), P<double>(o), P<double>(lse));
  }
  return info.Env().Undefined();
}

// JS args: q, k, v, out, dout, lse, mask, dq, dk, dv.
Napi::Value attention_backward(const Napi::CallbackInfo& info, Context& c) {
  const char* op = "scaledDotProductAttention backward";
  Decoded d = header(c, op);
  const cpu::AttentionArgs& a = d.a;
  TensorRef q = tensor_arg(info, c, 0, 12, op, "q");
  check_head_dim(d, q, op);
  check_scale(d, q, op);
  TensorRef k = tensor_arg(info, c, 1, 15, op, "k"), v = tensor_arg(info, c, 2, 18, op, "v");
  TensorRef o = tensor_arg(info, c, 3, 21, op, "out"), g = tensor_arg(info, c, 4, 24, op, "grad");
  TensorRef lse = tensor_arg(info, c, 5, 27, op, "lse");
  TensorRef dq = tensor_arg(info, c, 7, 33, op, "dq"), dk = tensor_arg(info, c, 8, 36, op, "dk");
  TensorRef dv = tensor_arg(info, c, 9, 39, op, "dv");
  for (auto [t, name] : {std::pair{&k, "k"}, {&v, "v"}, {&o, "out"}, {&g, "grad"}, {&dq, "dq"}, {&dk, "dk"}, {&dv, "dv"}})
    need_same(*t, q, op, name);
  need_lse(lse, q, op);
  mask_arg(info, c, d, 6, 30, q, op);
  head_strides(c, d, q, op);
  const int64_t nq = a.B * a.H * a.Tq * a.D, nk = a.B * a.H * a.Tk * a.D;
  need_elems(q, nq, op, "q");
  need_heads(k, a, a.kHeadStride, op, "k");
  need_heads(v, a, a.vHeadStride, op, "v");
  need_elems(o, nq, op, "out");
  need_elems(g, nq, op, "grad");
  need_elems(lse, a.B * a.H * a.Tq, op, "lse");
  need_elems(dq, nq, op, "dq");
  need_elems(dk, nk, op, "dk");
  need_elems(dv, nk, op, "dv");
  if (q.device == kCuda) {
    std::string err = cuda::attention_backward(attn_dtype(q), a, q.ptr, k.ptr, v.ptr, o.ptr, g.ptr,
                                               P<float>(lse), dq.ptr, dk.ptr, dv.ptr);
    if (!err.empty()) fail("CUDA_ERROR", std::string(op) + ": " + err);
  } else if (q.dtype == cpu::DType::F32) {
    cpu::attention_backward<float>(a, P<float>(q), P<float>(k), P<float>(v), P<float>(o), P<float>(g), P<float>(lse),
                                   P<float>(dq), P<float>(dk), P<float>(dv));
  } else {
    cpu::attention_backward<double>(a, P<double>(q), P<double>(k), P<double>(v), P<double>(o), P<double>(g),
                                    P<double>(lse), P<double>(dq), P<double>(dk), P<double>(dv));
  }
  return info.Env().Undefined();
}

}  // namespace

void register_attention(Napi::Env env, Napi::Object exports) {
  KILN_EXPORT(exports, "attentionForward", attention_forward);
  KILN_EXPORT(exports, "attentionBackward", attention_backward);
}
KILN_REGISTER(register_attention);

}  // namespace native
}  // namespace kiln
