// Memory and runtime entry points: setup, allocation, copies between JavaScript, host and device,
// statistics, threads and the CUDA runtime queries.
#include <cstring>

#include "../kernels/cpu/kernels.h"
#include "../kernels/cuda/cuda_api.h"
#include "context.h"

namespace kiln {
namespace native {
namespace {

// setup(KilnErrorClass) -> { args: ArrayBuffer, cudaCompiled: boolean }
Napi::Value setup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Context& c = ctx(env);
  if (info.Length() < 1 || !info[0].IsFunction()) {
    Napi::TypeError::New(env, "setup(KilnError) expects the error class").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  c.errorCtor = Napi::Persistent(info[0].As<Napi::Function>());
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, c.args, sizeof(c.args));
  c.argsRef = Napi::Persistent(ab);
  Napi::Object out = Napi::Object::New(env);
  out.Set("args", ab);
  out.Set("cudaCompiled", Napi::Boolean::New(env, cuda::compiled()));
  return out;
}

// alloc(device, bytes) -> handle
Napi::Value alloc(const Napi::CallbackInfo& info, Context& c) {
  Napi::Env env = info.Env();
  int device = info[0].As<Napi::Number>().Int32Value();
  double bytesD = info[1].As<Napi::Number>().DoubleValue();
  if (!(bytesD >= 0 && bytesD <= 1.0e15)) fail("INVALID_ARGUMENT", "alloc: bad byte count " + std::to_string(bytesD));
  size_t bytes = static_cast<size_t>(bytesD);
  void* p = nullptr;
  if (device == kCpu) {
    p = host_alloc(bytes);
    if (!p) fail("OUT_OF_MEMORY", "alloc: could not allocate " + std::to_string(bytes) + " bytes of host memory");
    adjust_external(env, c, static_cast<int64_t>(bytes));
  } else if (device == kCuda) {
    std::string err;
    p = cuda::alloc(bytes, &err);
    if (!p) fail(cuda::available() ? "OUT_OF_MEMORY" : "DEVICE_UNAVAILABLE", "alloc: cuda: " + err);
  } else {
    fail("INVALID_ARGUMENT", "alloc: unknown device " + std::to_string(device));
  }
  return Napi::Number::New(env, c.table.insert(p, bytes, static_cast<Device>(device)));
}

// free(handle) -> boolean (false when it was already freed)
Napi::Value release(const Napi::CallbackInfo& info, Context& c) {
  Allocation a;
  if (!c.table.erase(info[0].As<Napi::Number>().DoubleValue(), &a)) return Napi::Boolean::New(info.Env(), false);
  if (a.device == kCpu) {
    host_release(a.ptr, a.bytes);
    adjust_external(info.Env(), c, -static_cast<int64_t>(a.bytes));
  } else {
    cuda::release(a.ptr, a.bytes);
  }
  return Napi::Boolean::New(info.Env(), true);
}

void check_cuda(const std::string& err, const char* op) {
  if (!err.empty()) fail("CUDA_ERROR", std::string(op) + ": " + err);
}

// copy(dstBuf?, srcBuf?) with args[0..2] = dst ref, args[3..5] = src ref, args[6] = bytes.
// Either side may be a JS ArrayBuffer (host) or a native handle (host or device).
Napi::Value copy(const Napi::CallbackInfo& info, Context& c) {
  TensorRef dst = tensor_arg(info, c, 0, 0, "copy", "destination");
  TensorRef src = tensor_arg(info, c, 1, 3, "copy", "source");
  double bytesD = c.args[6];
  if (!(bytesD >= 0) || bytesD > static_cast<double>(dst.avail) || bytesD > static_cast<double>(src.avail))
    fail("INVALID_ARGUMENT", "copy: " + std::to_string(bytesD) + " bytes do not fit the source or destination");
  size_t bytes = static_cast<size_t>(bytesD);
  if (bytes == 0) return info.Env().Undefined();
  if (dst.device == kCpu && src.device == kCpu) std::memmove(dst.ptr, src.ptr, bytes);
  else if (dst.device == kCuda && src.device == kCpu) check_cuda(cuda::copy_to_device(dst.ptr, src.ptr, bytes), "copy");
  else if (dst.device == kCpu && src.device == kCuda) check_cuda(cuda::copy_to_host(dst.ptr, src.ptr, bytes), "copy");
  else check_cuda(cuda::copy_device_to_device(dst.ptr, src.ptr, bytes), "copy");
  return info.Env().Undefined();
}

Napi::Value memory_stats(const Napi::CallbackInfo& info, Context& c) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("hostBytes", Napi::Number::New(env, static_cast<double>(c.table.live_bytes(kCpu))));
  o.Set("hostAllocations", Napi::Number::New(env, static_cast<double>(c.table.live_count(kCpu))));
  o.Set("hostCachedBytes", Napi::Number::New(env, static_cast<double>(host_cached_bytes())));
  o.Set("hostPeakBytes", Napi::Number::New(env, static_cast<double>(host_peak_bytes())));
  o.Set("cudaBytes", Napi::Number::New(env, static_cast<double>(c.table.live_bytes(kCuda))));
  o.Set("cudaAllocations", Napi::Number::New(env, static_cast<double>(c.table.live_count(kCuda))));
  o.Set("cudaCachedBytes", Napi::Number::New(env, static_cast<double>(cuda::cached_bytes())));
  o.Set("cudaReservedBytes", Napi::Number::New(env, static_cast<double>(cuda::reserved_bytes())));
  return o;
}

Napi::Value empty_cache(const Napi::CallbackInfo& info, Context&) {
  host_empty_cache();
  cuda::empty_cache();
  return info.Env().Undefined();
}

Napi::Value set_threads(const Napi::CallbackInfo& info, Context&) {
  int n = info[0].As<Napi::Number>().Int32Value();
  if (n < 1 || n > 1024) fail("INVALID_ARGUMENT", "setNumThreads: n must be in [1, 1024], got " + std::to_string(n));
  cpu::set_num_threads(n);
  return info.Env().Undefined();
}

Napi::Value get_threads(const Napi::CallbackInfo& info, Context&) {
  return Napi::Number::New(info.Env(), cpu::num_threads());
}

Napi::Value cuda_info(const Napi::CallbackInfo& info, Context&) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("compiled", Napi::Boolean::New(env, cuda::compiled()));
  bool avail = cuda::available();
  o.Set("available", Napi::Boolean::New(env, avail));
  int n = avail ? cuda::device_count() : 0;
  o.Set("deviceCount", Napi::Number::New(env, n));
  Napi::Array names = Napi::Array::New(env, n);
  for (int i = 0; i < n; ++i) names.Set(uint32_t(i), Napi::String::New(env, cuda::device_name(i)));
  o.Set("names", names);
  return o;
}

Napi::Value cuda_sync(const Napi::CallbackInfo& info, Context&) {
  check_cuda(cuda::synchronize(), "cuda.synchronize");
  return info.Env().Undefined();
}

}  // namespace

void register_memory(Napi::Env env, Napi::Object exports) {
  exports.Set("setup", Napi::Function::New(env, setup, "setup"));
  KILN_EXPORT(exports, "alloc", alloc);
  KILN_EXPORT(exports, "free", release);
  KILN_EXPORT(exports, "copy", copy);
  KILN_EXPORT(exports, "memoryStats", memory_stats);
  KILN_EXPORT(exports, "emptyCache", empty_cache);
  KILN_EXPORT(exports, "setNumThreads", set_threads);
  KILN_EXPORT(exports, "numThreads", get_threads);
  KILN_EXPORT(exports, "cudaInfo", cuda_info);
  KILN_EXPORT(exports, "cudaSynchronize", cuda_sync);
}

}  // namespace native
}  // namespace kiln
