#include "context.h"

#include <new>
#include <stdexcept>

#include "../kernels/cuda/cuda_api.h"

namespace kiln {
namespace native {

Context::~Context() {
  // The environment is going away (process exit or a worker ending): return what is still live.
  for (const Allocation& a : table.drain()) {
    if (a.device == kCpu) host_release(a.ptr, a.bytes);
    else cuda::release(a.ptr, a.bytes);
  }
}

Context& ctx(Napi::Env env) { return *env.GetInstanceData<Context>(); }

Napi::Value guard(const Napi::CallbackInfo& info, Napi::Value (*fn)(const Napi::CallbackInfo&, Context&)) {
  Napi::Env env = info.Env();
  const char* code = nullptr;
  std::string message;
  try {
    return fn(info, ctx(env));
  } catch (const Fail& f) {
    code = f.code;
    message = f.message;
  } catch (const std::bad_alloc&) {
    code = "OUT_OF_MEMORY";
    message = "native allocation failed";
  } catch (const Napi::Error& e) {
    // A wrong JavaScript type reached node-addon-api (e.g. a string where a number belongs).
    code = "INVALID_ARGUMENT";
    message = e.Message();
  } catch (const std::exception& e) {
    code = "INTERNAL";
    message = e.what();
  }
  Context& c = ctx(env);
  if (c.errorCtor.IsEmpty()) throw Napi::Error::New(env, std::string(code) + ": " + message);
  Napi::Object err = c.errorCtor.New({Napi::String::New(env, code), Napi::String::New(env, message)});
  throw Napi::Error(env, err);
}


TensorRef tensor_arg(const Napi::CallbackInfo& info, Context& c, int jsArg, int pos, const char* op, const char* name) {
  TensorRef t;
  double off = c.args[pos + 1];
  if (!(off >= 0 && off < 9007199254740992.0) || off != static_cast<double>(static_cast<int64_t>(off)))
    fail("INVALID_ARGUMENT", std::string(op) + ": bad byte offset for " + name);
  t.dtype = dtype_arg(c.args[pos + 2], op);
  // One N-API call: an ArrayBuffer argument yields its memory, anything else means "use the handle".
  void* data = nullptr;
  size_t len = 0;
  if (info.Length() > static_cast<size_t>(jsArg) &&
      napi_get_arraybuffer_info(info.Env(), info[jsArg], &data, &len) == napi_ok) {
    if (off > static_cast<double>(len)) fail("INVALID_ARGUMENT", std::string(op) + ": offset past the end of " + name);
    t.ptr = static_cast<char*>(data) + static_cast<size_t>(off);
    t.avail = len - static_cast<size_t>(off);
    t.device = kCpu;
    return t;
  }
  const Allocation* a = c.table.find(c.args[pos]);
  if (!a) fail("DISPOSED", std::string(op) + ": " + name + " refers to freed or unknown memory");
  if (off > static_cast<double>(a->bytes)) fail("INVALID_ARGUMENT", std::string(op) + ": offset past the end of " + name);
  t.ptr = static_cast<char*>(a->ptr) + static_cast<size_t>(off);
  t.avail = a->bytes - static_cast<size_t>(off);
  t.device = a->device;
  return t;
}



void fail_dtype_code(double v, const char* op) {
  fail("INVALID_ARGUMENT", std::string(op) + ": unknown dtype code " + std::to_string(v));
}

void fail_elems(const TensorRef& t, int64_t elems, const char* op, const char* name) {
  fail("INVALID_ARGUMENT", std::string(op) + ": " + name + " needs " + std::to_string(elems) +
                               " elements but its storage holds " + std::to_string(t.avail / dtype_size(t.dtype)));
}

void fail_negative(const char* op, const char* name) {
  fail("INVALID_ARGUMENT", std::string(op) + ": negative size or stride in " + name);
}

void fail_int_arg(double v, const char* op, const char* name, int64_t lo, int64_t hi) {
  fail("INVALID_ARGUMENT", std::string(op) + ": " + name + " = " + std::to_string(v) + " is out of range [" +
                               std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

void need_dtype(const TensorRef& t, cpu::DType d, const char* op, const char* name) {
  static const char* names[] = {"float32", "int32", "float64", "float16", "bfloat16"};
  if (t.dtype != d)
    fail("DTYPE_MISMATCH", std::string(op) + ": " + name + " must be " + names[int(d)] + ", got " + names[int(t.dtype)]);
}

void need_cpu(const TensorRef& t, const char* op, const char* name) {
  if (t.device != kCpu)
    fail("DEVICE_MISMATCH", std::string(op) + ": " + name + " is on cuda but this op has no CUDA kernel yet");
}


void adjust_external(Napi::Env env, Context& c, int64_t delta) {
  c.pendingExternal += delta;
  // Report in 1 MiB steps: cheap per call, and V8 still sees the pressure.
  if (c.pendingExternal > (1 << 20) || c.pendingExternal < -(1 << 20)) {
    int64_t result = 0;
    napi_adjust_external_memory(env, c.pendingExternal, &result);
    c.pendingExternal = 0;
  }
}

}  // namespace native
}  // namespace kiln
