// The part of CUDA that kiln's Hopper kernels and their host code use, for compiling them with g++
// and running them on the host model (bench/native/cuda_host/model.cc, scripts/build-cuda-host.sh):
// the qualifiers (__global__, __device__, ... as nothing), the built-in variables and device
// functions (threadIdx, __syncthreads, __shfl_xor_sync, atomicAdd, ...), the half types with
// round-to-nearest-even conversions, and the runtime / driver calls the host code makes (an H100:
// 132 SMs, compute capability 9.0, 227 KiB of opt-in shared memory per block; the driver's
// cuTensorMapEncodeTiled checks its arguments as the CUDA driver documents and records the map).
// Nothing here touches a GPU.
#pragma once
#include <immintrin.h>  // F16C: float <-> float16 conversions

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __grid_constant__
// A block's threads are fibers of one OS thread and blocks run one at a time, so a static local is
// what a static __shared__ variable is: one per block, shared by its threads, uninitialised between
// blocks (the dynamic array `extern __shared__ ... smem_raw[]` is rewritten by the build script).
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define CUDART_VERSION 13000
// CUDA's device math puts the classification functions in the global namespace.
using std::isfinite;
using std::isinf;
using std::isnan;
inline float __uint_as_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t __float_as_uint(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
// sin(pi x) and cos(pi x), correctly rounded here (CUDA: within 1 ulp).
inline void sincospif(float x, float* s, float* c) {
  const double a = 3.14159265358979323846 * double(x);
  *s = float(std::sin(a));
  *c = float(std::cos(a));
}

// ---- vector types
struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct float2 {
  float x, y;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
inline float2 make_float2(float x, float y) { return float2{x, y}; }
// Rounded products (never contracted on the device): volatile keeps g++ from fusing them here too.
inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
inline double __dmul_rn(double a, double b) { volatile double r = a * b; return r; }
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

// ---- half types (storage and the conversions the kernels use)
struct __nv_bfloat16 {
  uint16_t x;
};
struct __nv_bfloat162 {
  __nv_bfloat16 x, y;
};
struct __half {
  uint16_t x;
};
struct __half2 {
  __half x, y;
};
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return __nv_bfloat16{uint16_t((u >> 16) | 0x40)};  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return __nv_bfloat16{uint16_t(u >> 16)};
}
inline float __bfloat162float(__nv_bfloat16 h) {
  const uint32_t u = uint32_t(h.x) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline __half __float2half_rn(float f) { return __half{uint16_t(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT))}; }
inline float __half2float(__half h) { return _cvtsh_ss(h.x); }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { return __nv_bfloat162{__float2bfloat16_rn(a), __float2bfloat16_rn(b)}; }
inline __half2 __floats2half2_rn(float a, float b) { return __half2{__float2half_rn(a), __float2half_rn(b)}; }
inline float2 __bfloat1622float2(__nv_bfloat162 v) { return float2{__bfloat162float(v.x), __bfloat162float(v.y)}; }
inline float2 __half22float2(__half2 v) { return float2{__half2float(v.x), __half2float(v.y)}; }

// ---- the host model's side of the device built-ins (bench/native/cuda_host/model.cc)
namespace kiln_host {
const uint3& thread_idx();
const uint3& block_idx();
const uint3& grid_dim();
const uint3& block_dim();
unsigned char* dynamic_smem();  // this block's dynamic shared memory (the kernels' smem_raw)
size_t dynamic_smem_bytes();     // and its size
uint32_t shared_address(const void* p);
void syncthreads();
void syncwarp(unsigned mask);
uint32_t shfl(unsigned mask, uint32_t v, int lane, int mode);  // mode 0: index, 1: xor, 2: down, 3: up
void fail(const char* what);
float ex2_approx(float x);
// The sm_80 tensor-core instructions of attention_fa2.cu: mma.sync m16n8k16 (c += a b, float32
// accumulators), ldmatrix x4 (.trans), cp.async (bytes copied, srcBytes of them read, the rest zero).
void mma_m16n8k16(bool bf16, float* c, const uint32_t* a, uint32_t b0, uint32_t b1);
void ldmatrix_x4(uint32_t* r, uint32_t addr, bool trans);
void cp_async(void* dst, const void* src, int bytes, int srcBytes);
void cp_async_commit();
void cp_async_wait_all();
void cp_async_wait_group(int n);  // all but this thread's newest n committed groups have landed
// gemm.cu's float32 path: mma.sync m16n8k8 .tf32 and cvt.rna.tf32.f32.
void mma_m16n8k8_tf32(float* c, const uint32_t* a, uint32_t b0, uint32_t b1);
uint32_t cvt_rna_tf32(float x);
}  // namespace kiln_host

#define threadIdx (::kiln_host::thread_idx())
#define blockIdx (::kiln_host::block_idx())
#define gridDim (::kiln_host::grid_dim())
#define blockDim (::kiln_host::block_dim())

inline void __syncthreads() { kiln_host::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { kiln_host::syncwarp(mask); }
inline void __trap() { kiln_host::fail("__trap()"); }
inline size_t __cvta_generic_to_shared(const void* p) { return kiln_host::shared_address(p); }
// 4- and 8-byte values (an 8-byte one moves as two 32-bit shuffles, as on the device).
template <class T>
inline T kiln_host_shfl(unsigned mask, T v, int lane, int mode) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "4- and 8-byte shuffles only");
  uint32_t u[sizeof(T) / 4];
  std::memcpy(u, &v, sizeof(T));
  for (uint32_t& w : u) w = kiln_host::shfl(mask, w, lane, mode);
  std::memcpy(&v, u, sizeof(T));
  return v;
}
template <class T> inline T __shfl_sync(unsigned mask, T v, int lane) { return kiln_host_shfl(mask, v, lane, 0); }
template <class T> inline T __shfl_xor_sync(unsigned mask, T v, int m) { return kiln_host_shfl(mask, v, m, 1); }
template <class T> inline T __shfl_down_sync(unsigned mask, T v, int d) { return kiln_host_shfl(mask, v, d, 2); }
template <class T> inline T __shfl_up_sync(unsigned mask, T v, int d) { return kiln_host_shfl(mask, v, d, 3); }
// Fibers of one OS thread: read-modify-write is atomic here.
inline float atomicAdd(float* p, float v) {
  const float old = *p;
  *p = old + v;
  return old;
}
inline float4 atomicAdd(float4* p, float4 v) {
  if (reinterpret_cast<uintptr_t>(p) % 16) kiln_host::fail("atomicAdd(float4*): address not 16-byte aligned");
  const float4 old = *p;
  p->x += v.x;
  p->y += v.y;
  p->z += v.z;
  p->w += v.w;
  return old;
}
inline unsigned long long atomicMin(unsigned long long* p, unsigned long long v) {
  if (reinterpret_cast<uintptr_t>(p) % 8) kiln_host::fail("atomicMin(unsigned long long*): address not 8-byte aligned");
  const unsigned long long old = *p;
  if (v < old) *p = v;
  return old;
}
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }

// ---- runtime API
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorLaunchFailure = 719, cudaErrorNotSupported = 801 };
enum cudaDeviceAttr {
  cudaDevAttrMaxSharedMemoryPerBlock = 8,
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrComputeCapabilityMajor = 75,
  cudaDevAttrComputeCapabilityMinor = 76,
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaDriverEntryPointQueryResult { cudaDriverEntryPointSuccess = 0, cudaDriverEntryPointSymbolNotFound = 1 };
enum { cudaEnableDefault = 0 };
struct cudaFuncAttributes {
  size_t sharedSizeBytes = 0;
  int maxThreadsPerBlock = 1024, numRegs = 0, maxDynamicSharedSizeBytes = 48 * 1024;
};
typedef struct CUstream_st* cudaStream_t;

namespace kiln_host {
cudaError_t last_error(bool clear);
void set_error(cudaError_t e);
int device_attribute(cudaDeviceAttr a);
int kernel_smem_limit(const void* fn);
void set_kernel_smem_limit(const void* fn, int bytes);
void* driver_entry_point(const char* name);
}  // namespace kiln_host

inline const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    default: return "cudaErrorNotSupported";
  }
}
inline const char* cudaGetErrorString(cudaError_t e) {
  return e == cudaSuccess ? "no error" : e == cudaErrorLaunchFailure ? "the host model stopped the kernel" : "host model error";
}
inline cudaError_t cudaGetLastError() { return kiln_host::last_error(true); }
inline cudaError_t cudaMemset(void* p, int v, size_t n) {
  std::memset(p, v, n);  // host memory stands for device memory
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t = nullptr) {
  std::memset(p, v, n);  // host memory stands for device memory
  return cudaSuccess;
}
// Host memory stands for device memory, and a grid has run to completion when its launch returns, so
// a copy either way is a memcpy (cudaMemcpy waits for the stream's kernels on the device).
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};
inline cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind) {
  std::memcpy(dst, src, n);
  return cudaSuccess;
}
inline cudaError_t cudaPeekAtLastError() { return kiln_host::last_error(false); }
inline cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int) {
  *v = kiln_host::device_attribute(a);
  return cudaSuccess;
}
template <class F>
inline cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, F fn) {
  *attr = cudaFuncAttributes{};
  attr->maxDynamicSharedSizeBytes = kiln_host::kernel_smem_limit(reinterpret_cast<const void*>(fn));
  return cudaSuccess;
}
template <class F>
inline cudaError_t cudaFuncSetAttribute(F fn, cudaFuncAttribute a, int v) {
  if (a != cudaFuncAttributeMaxDynamicSharedMemorySize || v < 0 || v > kiln_host::device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin)) {
    kiln_host::set_error(cudaErrorInvalidValue);
    return cudaErrorInvalidValue;
  }
  kiln_host::set_kernel_smem_limit(reinterpret_cast<const void*>(fn), v);
  return cudaSuccess;
}
inline cudaError_t cudaGetDriverEntryPointByVersion(const char* name, void** fn, unsigned, unsigned long long,
                                                    cudaDriverEntryPointQueryResult* q) {
  *fn = kiln_host::driver_entry_point(name);
  if (q) *q = *fn ? cudaDriverEntryPointSuccess : cudaDriverEntryPointSymbolNotFound;
  return cudaSuccess;
}

// ---- driver API: tensor maps
typedef uint64_t cuuint64_t;
typedef uint32_t cuuint32_t;
enum CUresult { CUDA_SUCCESS = 0, CUDA_ERROR_INVALID_VALUE = 1 };
enum CUtensorMapDataType { CU_TENSOR_MAP_DATA_TYPE_FLOAT16 = 6, CU_TENSOR_MAP_DATA_TYPE_FLOAT32 = 7, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 = 9 };
enum CUtensorMapInterleave { CU_TENSOR_MAP_INTERLEAVE_NONE = 0 };
enum CUtensorMapSwizzle { CU_TENSOR_MAP_SWIZZLE_NONE = 0, CU_TENSOR_MAP_SWIZZLE_32B, CU_TENSOR_MAP_SWIZZLE_64B, CU_TENSOR_MAP_SWIZZLE_128B };
enum CUtensorMapL2promotion { CU_TENSOR_MAP_L2_PROMOTION_NONE = 0, CU_TENSOR_MAP_L2_PROMOTION_L2_64B, CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B };
enum CUtensorMapFloatOOBfill { CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE = 0 };
// Opaque to the kernels, as on the device (128 bytes, 64-byte aligned); model.cc keeps its fields in it.
struct alignas(64) CUtensorMap {
  unsigned char opaque[128];
};
typedef CUresult (*PFN_cuTensorMapEncodeTiled_v12000)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                                      const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                                      CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

// ---- launches: `kernel<<<grid, block, smem>>>(args)` reads `::kiln_host::Launcher(kernel, grid, block,
// smem)(args)` after scripts/build-cuda-host.sh's rewrite; the grid runs to completion on the model.
#include <functional>
namespace kiln_host {
void run_grid(const void* fn, dim3 grid, dim3 block, size_t smem, const std::function<void()>& body);
template <class F>
struct Launcher {
  F fn;
  dim3 grid, block;
  size_t smem;
  Launcher(F f, dim3 g, dim3 b, size_t s = 0) : fn(f), grid(g), block(b), smem(s) {}
  template <class... A>
  void operator()(const A&... args) const {
    F f = fn;
    run_grid(reinterpret_cast<const void*>(fn), grid, block, smem, [&]() { f(args...); });
  }
};
}  // namespace kiln_host
