// Per-instance state of the addon (one per Node environment, so it loads in worker_threads too)
// and the helpers every op decoder uses: the shared argument buffer, tensor references and
// KilnError translation.
#pragma once
#define NAPI_VERSION 8
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../kernels/cpu/elementwise.h"
#include "storage.h"

namespace kiln {
namespace native {

constexpr int kArgSlots = 1024;

// Arguments travel through a Float64Array shared with JavaScript (integers and handles are exact
// in a double), so a call costs one N-API crossing instead of one per argument.
struct Context {
  double args[kArgSlots] = {};
  Napi::Reference<Napi::ArrayBuffer> argsRef;
  Napi::FunctionReference errorCtor;
  HandleTable table;
  int64_t pendingExternal = 0;  // bytes not yet reported to V8
  ~Context();
};

Context& ctx(Napi::Env env);

struct Fail {
  const char* code;
  std::string message;
};
[[noreturn]] inline void fail(const char* code, std::string message) { throw Fail{code, std::move(message)}; }

// Wraps an exported function: a Fail or any C++ exception becomes a thrown KilnError, never an abort.
Napi::Value guard(const Napi::CallbackInfo& info, Napi::Value (*fn)(const Napi::CallbackInfo&, Context&));

inline size_t dtype_size(cpu::DType d) {
  static constexpr uint8_t kSize[] = {4, 4, 8, 2, 2};  // indexed by the code dtype_arg validated
  return kSize[static_cast<int>(d)];
}
[[noreturn]] void fail_dtype_code(double v, const char* op);
inline cpu::DType dtype_arg(double v, const char* op) {
  if (v == 0) return cpu::DType::F32;
  if (v == 1) return cpu::DType::I32;
  if (v == 2) return cpu::DType::F64;
  if (v == 3) return cpu::DType::F16;
  if (v == 4) return cpu::DType::BF16;
  fail_dtype_code(v, op);
}

// A tensor operand: JS argument `jsArg` is either an ArrayBuffer (small CPU tensors live in the
// V8 heap) or undefined, in which case args[pos] is a native handle; args[pos+1] is the byte
// offset and args[pos+2] the dtype code.
struct TensorRef {
  char* ptr = nullptr;
  size_t avail = 0;  // bytes from ptr to the end of the allocation
  Device device = kCpu;
  cpu::DType dtype = cpu::DType::F32;
};
TensorRef tensor_arg(const Napi::CallbackInfo& info, Context& c, int jsArg, int pos, const char* op, const char* name);
// Checks that `elems` elements (or a strided extent) fit in the allocation. The checks run on every
// call, so they are inline; the failure paths (which build messages) are not.
[[noreturn]] void fail_elems(const TensorRef& t, int64_t elems, const char* op, const char* name);
[[noreturn]] void fail_negative(const char* op, const char* name);
inline void need_elems(const TensorRef& t, int64_t elems, const char* op, const char* name) {
  if (__builtin_expect(elems < 0 || static_cast<uint64_t>(elems) * dtype_size(t.dtype) > t.avail, 0)) fail_elems(t, elems, op, name);
}
inline void need_strided(const TensorRef& t, int ndim, const int64_t* shape, const int64_t* strides, const char* op, const char* name) {
  int64_t maxIndex = 0;
  for (int d = 0; d < ndim; ++d) {
    if (__builtin_expect(shape[d] < 0 || strides[d] < 0, 0)) fail_negative(op, name);
    if (shape[d] == 0) return;  // empty: nothing is touched
    maxIndex += (shape[d] - 1) * strides[d];
  }
  need_elems(t, maxIndex + 1, op, name);
}
void need_dtype(const TensorRef& t, cpu::DType d, const char* op, const char* name);
void need_cpu(const TensorRef& t, const char* op, const char* name);

[[noreturn]] void fail_int_arg(double v, const char* op, const char* name, int64_t lo, int64_t hi);
inline int64_t int_arg(const Context& c, int pos, const char* op, const char* name, int64_t lo, int64_t hi) {
  double v = c.args[pos];
  if (__builtin_expect(!(v >= static_cast<double>(lo) && v <= static_cast<double>(hi)), 0)) fail_int_arg(v, op, name, lo, hi);
  int64_t i = static_cast<int64_t>(v);
  if (__builtin_expect(static_cast<double>(i) != v, 0)) fail_int_arg(v, op, name, lo, hi);
  return i;
}

void adjust_external(Napi::Env env, Context& c, int64_t delta);

void register_memory(Napi::Env env, Napi::Object exports);
void register_elementwise(Napi::Env env, Napi::Object exports);
void register_ops(Napi::Env env, Napi::Object exports);
void register_optim(Napi::Env, Napi::Object);

// Op families register themselves at load: a new native/*.cc file adds
// `KILN_REGISTER(register_xyz);` after defining `void register_xyz(Napi::Env, Napi::Object)`,
// with no edit to addon.cc.
using Registrar = void (*)(Napi::Env, Napi::Object);
std::vector<Registrar>& registrars();
struct AutoRegister {
  explicit AutoRegister(Registrar r) { registrars().push_back(r); }
};
#define KILN_REGISTER(fn) static ::kiln::native::AutoRegister kiln_auto_register_##fn(fn)

#define KILN_EXPORT(exports, name, fn) \
  exports.Set(name, Napi::Function::New(env, [](const Napi::CallbackInfo& info) { return ::kiln::native::guard(info, fn); }, name))

}  // namespace native
}  // namespace kiln
