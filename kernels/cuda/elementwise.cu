// Elementwise CUDA kernels: a grid-stride loop over the output, strided operands addressed through
// collapsed shapes, with the CPU kernels' semantics (kernels/cpu/elementwise.cc).
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "../common/half.h"
#include "../common/intpow.h"
#include "cuda_api.h"

namespace kiln {
namespace cuda {
namespace {

using cpu::BinaryOp;
using cpu::DType;
using cpu::kMaxDims;
using cpu::Operand;
using cpu::TernaryOp;
using cpu::UnaryOp;

template <int N>
struct Geometry {
  int ndim;
  int64_t numel;
  int64_t shape[kMaxDims];
  int64_t strides[N][kMaxDims];
  bool contiguous;  // every operand is dense row-major: index i is offset i
  bool idx32;       // every index and offset fits in 32 bits: cheaper index arithmetic
};

// Drops size-1 dimensions and merges neighbours that every operand walks as one (a [B, T, C] + [C]
// bias becomes [B*T, C]), so the per-element index arithmetic has as few divisions as possible.
template <int N>
Geometry<N> make_geometry(int ndim, const int64_t* shape, const Operand* ops) {
  Geometry<N> g;
  g.numel = 1;
  for (int d = 0; d < ndim; ++d) g.numel *= shape[d];
  int m = 0;
  for (int d = 0; d < ndim; ++d) {
    if (shape[d] == 1) continue;
    bool merge = m > 0;
    for (int k = 0; k < N && merge; ++k) merge = g.strides[k][m - 1] == ops[k].strides[d] * shape[d];
    if (merge) {
      g.shape[m - 1] *= shape[d];
      for (int k = 0; k < N; ++k) g.strides[k][m - 1] = ops[k].strides[d];
    } else {
      g.shape[m] = shape[d];
      for (int k = 0; k < N; ++k) g.strides[k][m] = ops[k].strides[d];
      ++m;
    }
  }
  g.ndim = m;
  g.contiguous = true;
  for (int k = 0; k < N; ++k)
    if (m > 1 || (m == 1 && g.strides[k][0] != 1)) g.contiguous = false;
  const int64_t kMax32 = 0x7fffffff;
  g.idx32 = g.numel <= kMax32;
  for (int k = 0; k < N; ++k) {
    int64_t extent = 0;
    for (int d = 0; d < m; ++d) extent += (g.shape[d] - 1) * g.strides[k][d];
    if (extent > kMax32) g.idx32 = false;
  }
  return g;
}

// Element offsets of item i of the geometry (an item is kVec consecutive elements, see vec4_geometry).
template <int N, int kVec = 1>
__device__ __forceinline__ void offsets(const Geometry<N>& g, int64_t i, int64_t* off) {
  if (g.contiguous) {
    for (int k = 0; k < N; ++k) off[k] = i * kVec;
    return;
  }
  if (g.idx32) {
    uint32_t r = static_cast<uint32_t>(i), o[N];
    for (int k = 0; k < N; ++k) o[k] = 0;
    for (int d = g.ndim - 1; d >= 0; --d) {
      const uint32_t n = static_cast<uint32_t>(g.shape[d]), q = r / n, idx = r - q * n;
      r = q;
      for (int k = 0; k < N; ++k) o[k] += idx * static_cast<uint32_t>(g.strides[k][d]);
    }
    for (int k = 0; k < N; ++k) off[k] = o[k];
    return;
  }
  for (int k = 0; k < N; ++k) off[k] = 0;
  for (int d = g.ndim - 1; d >= 0; --d) {
    int64_t idx = i % g.shape[d];
    i /= g.shape[d];
    for (int k = 0; k < N; ++k) off[k] += idx * g.strides[k][d];
  }
}

// Each thread takes kUnroll elements one block-width apart (coalesced): `load(u, off)` runs for all
// of them before any `store(u, off)`, so a thread has kUnroll independent loads in flight; one
// load per thread leaves an H100 at about half its memory bandwidth.
constexpr int kUnroll = 4;
constexpr int kBlock = 256;

template <int N, int kVec = 1, class Load, class Store>
__device__ __forceinline__ void ew_loop(const Geometry<N>& g, Load load, Store store) {
  const int64_t n = g.numel, bd = blockDim.x, step = int64_t(gridDim.x) * bd * kUnroll;
  for (int64_t base = int64_t(blockIdx.x) * bd * kUnroll + threadIdx.x; base < n; base += step) {
    int64_t off[kUnroll][N];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (base + u * bd < n) {
        offsets<N, kVec>(g, base + u * bd, off[u]);
        load(u, off[u]);
      }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (base + u * bd < n) store(u, off[u]);
  }
}

template <class T> __device__ inline T dsqrt(T x) { return sqrt(x); }

template <class T>
__device__ inline T apply_unary(UnaryOp op, T x, double p0, double p1) {
  using TI = T;
  using TO = T;
  const TI k = TI(0.7978845608028654), c = TI(0.044715);
  switch (op) {
    case UnaryOp::Copy: return static_cast<TO>(x);
    case UnaryOp::Neg: return static_cast<TO>(-x);
    case UnaryOp::Exp: return static_cast<TO>(exp(x));
    case UnaryOp::Log: return static_cast<TO>(log(x));
    case UnaryOp::Sqrt: return static_cast<TO>(sqrt(x));
    case UnaryOp::Rsqrt: return static_cast<TO>(TI(1) / sqrt(x));
    case UnaryOp::Abs: return static_cast<TO>(fabs(x));
    case UnaryOp::Tanh: return static_cast<TO>(tanh(x));
    case UnaryOp::Sigmoid: return static_cast<TO>(TI(1) / (TI(1) + exp(-x)));
    case UnaryOp::Relu: return static_cast<TO>(x < TI(0) ? TI(0) : x);  // NaN and -0 pass, as PyTorch
    case UnaryOp::GeluTanh: return static_cast<TO>(TI(0.5) * x * (TI(1) + tanh(k * (x + c * x * x * x))));
    case UnaryOp::GeluErf: return static_cast<TO>(TI(0.5) * x * (TI(1) + erf(x * TI(0.7071067811865476))));
    case UnaryOp::Sin: return static_cast<TO>(sin(x));
    case UnaryOp::Cos: return static_cast<TO>(cos(x));
    case UnaryOp::Sign: return static_cast<TO>(TI((x > TI(0)) - (x < TI(0))));
    case UnaryOp::Square: return static_cast<TO>(x * x);
    case UnaryOp::Reciprocal: return static_cast<TO>(TI(1) / x);
    case UnaryOp::Affine: return static_cast<TO>(x * TI(p0) + TI(p1));
    case UnaryOp::PowScalar: return static_cast<TO>(pow(x, TI(p0)));
    case UnaryOp::Clamp: return static_cast<TO>(x != x ? x : (x < TI(p0) ? TI(p0) : (x > TI(p1) ? TI(p1) : x)));
    case UnaryOp::Log1p: return static_cast<TO>(log1p(x));
    case UnaryOp::Expm1: return static_cast<TO>(expm1(x));
    case UnaryOp::Floor: return static_cast<TO>(floor(x));
    case UnaryOp::Ceil: return static_cast<TO>(ceil(x));
    case UnaryOp::Round: return static_cast<TO>(nearbyint(x));
    case UnaryOp::Fill: return static_cast<TO>(p0);
    default: return TO(0);
  }
}

template <>
__device__ inline int32_t apply_unary<int32_t>(UnaryOp op, int32_t x, double p0, double p1) {
  switch (op) {
    case UnaryOp::Copy: return x;
    case UnaryOp::Neg: return -x;
    case UnaryOp::Abs: return x < 0 ? -x : x;
    case UnaryOp::Sign: return (x > 0) - (x < 0);
    case UnaryOp::Square: return x * x;
    case UnaryOp::Affine: return x * int32_t(p0) + int32_t(p1);
    case UnaryOp::Clamp: {
      int32_t lo = int32_t(fmax(p0, -2147483648.0)), hi = int32_t(fmin(p1, 2147483647.0));
      return x < lo ? lo : (x > hi ? hi : x);
    }
    case UnaryOp::Fill: return int32_t(p0);
    default: return 0;
  }
}

template <class T>
__global__ void unary_kernel(UnaryOp op, Geometry<2> g, T* out, const T* in, double p0, double p1) {
  T v[kUnroll];
  ew_loop(g, [&](int u, const int64_t* off) { v[u] = in[off[1]]; },
          [&](int u, const int64_t* off) { out[off[0]] = apply_unary<T>(op, v[u], p0, p1); });
}

template <class TI, class TO>
__global__ void cast_kernel(Geometry<2> g, TO* out, const TI* in) {
  TI v[kUnroll];
  ew_loop(g, [&](int u, const int64_t* off) { v[u] = in[off[1]]; },
          [&](int u, const int64_t* off) { out[off[0]] = static_cast<TO>(v[u]); });
}

template <class T>
__global__ void classify_kernel(UnaryOp op, Geometry<2> g, int32_t* out, const T* in) {
  T v[kUnroll];
  ew_loop(g, [&](int u, const int64_t* off) { v[u] = in[off[1]]; },
          [&](int u, const int64_t* off) {
            const T x = v[u];
            out[off[0]] = op == UnaryOp::IsNan ? int32_t(x != x) : op == UnaryOp::IsInf ? int32_t(isinf(x)) : int32_t(isfinite(x));
          });
}

// ---- float16 / bfloat16: 2-byte storage computed in float32, converted by kernels/common/half.h
// (the CPU kernels use the same functions, so both devices give the same bits for a cast).
struct F16Codec {
  static constexpr uint16_t kInf = 0x7c00;
  static __device__ __forceinline__ float load(uint16_t h) { return half::f16_to_f32(h); }
  static __device__ __forceinline__ uint16_t store(float x) { return half::f32_to_f16(x); }
  static __device__ __forceinline__ uint16_t store(double x) { return half::f64_to_f16(x); }
};
struct BF16Codec {
  static constexpr uint16_t kInf = 0x7f80;
  static __device__ __forceinline__ float load(uint16_t h) { return half::bf16_to_f32(h); }
  static __device__ __forceinline__ uint16_t store(float x) { return half::f32_to_bf16(x); }
  static __device__ __forceinline__ uint16_t store(double x) { return half::f64_to_bf16(x); }
};

// Conversions for cast_kernel: into a half format (from float, double or int32 through double)...
template <class C, class TI>
struct ToHalf {
  __device__ __forceinline__ uint16_t operator()(TI x) const {
    if constexpr (std::is_same_v<TI, float>) return C::store(x);
    else return C::store(static_cast<double>(x));
  }
};
// ... out of one (widening is exact; int32 truncates like float32 -> int32) ...
template <class C, class TO>
struct FromHalf {
  __device__ __forceinline__ TO operator()(uint16_t h) const { return static_cast<TO>(C::load(h)); }
};
// ... and between the two.
template <class CI, class CO>
struct HalfToHalf {
  __device__ __forceinline__ uint16_t operator()(uint16_t h) const { return CO::store(CI::load(h)); }
};

template <class TI, class TO, class F>
__global__ void convert_kernel(Geometry<2> g, TO* out, const TI* in, F f) {
  TI v[kUnroll];
  ew_loop(g, [&](int u, const int64_t* off) { v[u] = in[off[1]]; },
          [&](int u, const int64_t* off) { out[off[0]] = f(v[u]); });
}

template <class C>
__global__ void unary_half_kernel(UnaryOp op, Geometry<2> g, uint16_t* out, const uint16_t* in, double p0, double p1) {
  const uint16_t fill = C::store(p0);  // rounded once from the double, like the CPU
  uint16_t v[kUnroll];
  ew_loop(g, [&](int u, const int64_t* off) { v[u] = in[off[1]]; }, [&](int u, const int64_t* off) {
    const uint16_t h = v[u];
    uint16_t r;
    switch (op) {  // exact on the bits, like the CPU
      case UnaryOp::Copy: r = h; break;
      case UnaryOp::Neg: r = h ^ 0x8000u; break;
      case UnaryOp::Abs: r = h & 0x7fffu; break;
      case UnaryOp::Fill: r = fill; break;
      default: r = C::store(apply_unary<float>(op, C::load(h), p0, p1)); break;
    }
    out[off[0]] = r;
  });
}

template <class C>
__global__ void classify_half_kernel(UnaryOp op, Geometry<2> g, int32_t* out, const uint16_t* in) {
  uint16_t v[kUnroll];
  ew_loop(g, [&](int u, const int64_t* off) { v[u] = in[off[1]]; },
          [&](int u, const int64_t* off) {
            const uint32_t a = v[u] & 0x7fffu;
            out[off[0]] = op == UnaryOp::IsNan ? int32_t(a > C::kInf) : op == UnaryOp::IsInf ? int32_t(a == C::kInf) : int32_t(a < C::kInf);
          });
}

template <class T>
__device__ inline T apply_binary(BinaryOp op, T a, T b) {
  const T k = T(0.7978845608028654), c = T(0.044715);
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Div: return a / b;
    case BinaryOp::Pow: return pow(a, b);
    case BinaryOp::Maximum: return (a != a || a > b) ? a : (b != b ? b : (a == b ? a : b));
    case BinaryOp::Minimum: return (a != a || a < b) ? a : (b != b ? b : (a == b ? a : b));
    case BinaryOp::ReluBackward: return !(b <= T(0)) ? a : T(0);  // NaN passes the gradient, as PyTorch
    case BinaryOp::GeluTanhBackward: {
      T t = tanh(k * (b + c * b * b * b));
      return a * (T(0.5) * (T(1) + t) + T(0.5) * b * (T(1) - t * t) * k * (T(1) + T(3) * c * b * b));
    }
    case BinaryOp::GeluErfBackward:
      return a * (T(0.5) * (T(1) + erf(b * T(0.7071067811865476))) + b * exp(T(-0.5) * b * b) * T(0.3989422804014327));
    case BinaryOp::SigmoidBackward: return a * b * (T(1) - b);
    case BinaryOp::TanhBackward: return a * (T(1) - b * b);
    default: return T(0);
  }
}

template <>
__device__ inline int32_t apply_binary<int32_t>(BinaryOp op, int32_t a, int32_t b) {
  switch (op) {
    case BinaryOp::Add: return int32_t(uint32_t(a) + uint32_t(b));
    case BinaryOp::Sub: return int32_t(uint32_t(a) - uint32_t(b));
    case BinaryOp::Mul: return int32_t(uint32_t(a) * uint32_t(b));
    case BinaryOp::Maximum: return a > b ? a : b;
    case BinaryOp::Minimum: return a < b ? a : b;
    case BinaryOp::Pow: return int_pow(a, b);
    default: return 0;
  }
}

template <class T>
__device__ inline int32_t apply_compare(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::Eq: return a == b;
    case BinaryOp::Ne: return a != b;
    case BinaryOp::Lt: return a < b;
    case BinaryOp::Le: return a <= b;
    case BinaryOp::Gt: return a > b;
    case BinaryOp::Ge: return a >= b;
    default: return 0;
  }
}

template <class T>
__global__ void binary_kernel(BinaryOp op, Geometry<3> g, T* out, const T* a, const T* b) {
  T va[kUnroll], vb[kUnroll];
  ew_loop(g, [&](int u, const int64_t* off) { va[u] = a[off[1]]; vb[u] = b[off[2]]; },
          [&](int u, const int64_t* off) { out[off[0]] = apply_binary<T>(op, va[u], vb[u]); });
}

template <class T>
__global__ void compare_kernel(BinaryOp op, Geometry<3> g, int32_t* out, const T* a, const T* b) {
  T va[kUnroll], vb[kUnroll];
  ew_loop(g, [&](int u, const int64_t* off) { va[u] = a[off[1]]; vb[u] = b[off[2]]; },
          [&](int u, const int64_t* off) { out[off[0]] = apply_compare<T>(op, va[u], vb[u]); });
}

// ---- float32 in 16-byte vectors. Where the innermost (merged) dimension is a multiple of 4 and
// every operand walks it with stride 1, or 0 (an input broadcast along it, read once per vector),
// each item is four consecutive elements: one index computation and one 16-byte access per operand
// instead of four. The item geometry has the inner extent / 4 and the same (element) strides, the
// inner one times 4; vec[k] says which operands are read as vectors.
template <int N>
bool vec4_geometry(const Geometry<N>& g, const Operand* ops, Geometry<N>& v, bool* vec) {
  if (g.ndim < 1 || g.shape[g.ndim - 1] % 4) return false;
  const int last = g.ndim - 1;
  for (int k = 0; k < N; ++k) {
    const int64_t s = g.strides[k][last];
    if (!(s == 1 || (s == 0 && k > 0))) return false;  // the output is always written as vectors
    vec[k] = s == 1;
    if (!vec[k]) continue;
    if (reinterpret_cast<uintptr_t>(ops[k].data) % 16) return false;
    for (int d = 0; d < last; ++d)
      if (g.strides[k][d] % 4) return false;
  }
  v = g;
  v.shape[last] /= 4;
  v.numel = g.numel / 4;
  for (int k = 0; k < N; ++k) v.strides[k][last] *= 4;
  return true;
}

__device__ __forceinline__ float4 load4(const float* p, int64_t off, bool vec) {
  if (vec) return *reinterpret_cast<const float4*>(p + off);
  const float x = p[off];
  return make_float4(x, x, x, x);
}

__global__ void unary_vec4_kernel(UnaryOp op, Geometry<2> g, float* out, const float* in, bool inVec, double p0, double p1) {
  float4 v[kUnroll];
  ew_loop<2, 4>(g, [&](int u, const int64_t* off) { v[u] = load4(in, off[1], inVec); }, [&](int u, const int64_t* off) {
    const float4 x = v[u];
    *reinterpret_cast<float4*>(out + off[0]) = make_float4(apply_unary<float>(op, x.x, p0, p1), apply_unary<float>(op, x.y, p0, p1),
                                                           apply_unary<float>(op, x.z, p0, p1), apply_unary<float>(op, x.w, p0, p1));
  });
}

__global__ void binary_vec4_kernel(BinaryOp op, Geometry<3> g, float* out, const float* a, const float* b, bool aVec, bool bVec) {
  float4 va[kUnroll], vb[kUnroll];
  ew_loop<3, 4>(g, [&](int u, const int64_t* off) { va[u] = load4(a, off[1], aVec); vb[u] = load4(b, off[2], bVec); },
                [&](int u, const int64_t* off) {
                  const float4 x = va[u], y = vb[u];
                  *reinterpret_cast<float4*>(out + off[0]) =
                      make_float4(apply_binary<float>(op, x.x, y.x), apply_binary<float>(op, x.y, y.y),
                                  apply_binary<float>(op, x.z, y.z), apply_binary<float>(op, x.w, y.w));
                });
}

template <class C>
__global__ void binary_half_kernel(BinaryOp op, Geometry<3> g, uint16_t* out, const uint16_t* a, const uint16_t* b) {
  uint16_t va[kUnroll], vb[kUnroll];
  ew_loop(g, [&](int u, const int64_t* off) { va[u] = a[off[1]]; vb[u] = b[off[2]]; },
          [&](int u, const int64_t* off) { out[off[0]] = C::store(apply_binary<float>(op, C::load(va[u]), C::load(vb[u]))); });
}

template <class C>
__global__ void compare_half_kernel(BinaryOp op, Geometry<3> g, int32_t* out, const uint16_t* a, const uint16_t* b) {
  uint16_t va[kUnroll], vb[kUnroll];
  ew_loop(g, [&](int u, const int64_t* off) { va[u] = a[off[1]]; vb[u] = b[off[2]]; },
          [&](int u, const int64_t* off) { out[off[0]] = apply_compare<float>(op, C::load(va[u]), C::load(vb[u])); });
}

// The condition is true where nonzero; a half condition (uint16_t bits) is zero for +-0.
template <class TC> __device__ inline bool nonzero(TC v) { return v != TC(0); }
__device__ inline bool nonzero(uint16_t v) { return (v & 0x7fffu) != 0; }

template <class TC, class T>
__global__ void where_kernel(Geometry<4> g, T* out, const TC* cond, const T* a, const T* b) {
  bool vc[kUnroll];
  T va[kUnroll], vb[kUnroll];
  ew_loop(g, [&](int u, const int64_t* off) { vc[u] = nonzero(cond[off[1]]); va[u] = a[off[2]]; vb[u] = b[off[3]]; },
          [&](int u, const int64_t* off) { out[off[0]] = vc[u] ? va[u] : vb[u]; });
}

dim3 grid_for(int64_t n) {
  int64_t blocks = (n + kBlock * kUnroll - 1) / (kBlock * kUnroll);
  return dim3(static_cast<unsigned>(blocks < 65535 * 8 ? blocks : 65535 * 8));
}

std::string launched() {
  cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? "" : std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

template <class T> T* ptr(const Operand& o) { return static_cast<T*>(o.data); }

}  // namespace

std::string unary(UnaryOp op, int ndim, const int64_t* shape, Operand out, Operand in, double p0, double p1) {
  Operand ops[2] = {out, in};
  Geometry<2> g = make_geometry<2>(ndim, shape, ops);
  if (g.numel == 0) return "";
  dim3 grid = grid_for(g.numel);
  using U = uint16_t;
  if (op == UnaryOp::IsNan || op == UnaryOp::IsInf || op == UnaryOp::IsFinite) {
    switch (in.dtype) {
      case DType::F32: classify_kernel<float><<<grid, 256>>>(op, g, ptr<int32_t>(out), ptr<float>(in)); break;
      case DType::F64: classify_kernel<double><<<grid, 256>>>(op, g, ptr<int32_t>(out), ptr<double>(in)); break;
      case DType::F16: classify_half_kernel<F16Codec><<<grid, 256>>>(op, g, ptr<int32_t>(out), ptr<U>(in)); break;
      case DType::BF16: classify_half_kernel<BF16Codec><<<grid, 256>>>(op, g, ptr<int32_t>(out), ptr<U>(in)); break;
      default: return "unsupported dtype combination";
    }
    return launched();
  }
  if (in.dtype == DType::F32 && out.dtype == DType::F32) {
    Geometry<2> v;
    bool vec[2];
    if (vec4_geometry<2>(g, ops, v, vec)) {
      unary_vec4_kernel<<<grid_for(v.numel), 256>>>(op, v, ptr<float>(out), ptr<float>(in), vec[1], p0, p1);
      return launched();
    }
  }
  if (in.dtype == out.dtype) {
    switch (in.dtype) {
      case DType::F32: unary_kernel<float><<<grid, 256>>>(op, g, ptr<float>(out), ptr<float>(in), p0, p1); break;
      case DType::F64: unary_kernel<double><<<grid, 256>>>(op, g, ptr<double>(out), ptr<double>(in), p0, p1); break;
      case DType::I32: unary_kernel<int32_t><<<grid, 256>>>(op, g, ptr<int32_t>(out), ptr<int32_t>(in), p0, p1); break;
      case DType::F16: unary_half_kernel<F16Codec><<<grid, 256>>>(op, g, ptr<U>(out), ptr<U>(in), p0, p1); break;
      case DType::BF16: unary_half_kernel<BF16Codec><<<grid, 256>>>(op, g, ptr<U>(out), ptr<U>(in), p0, p1); break;
    }
    return launched();
  }
#define KILN_CONVERT(TI, DI, TO, DO, ...) \
  if (in.dtype == DI && out.dtype == DO) { convert_kernel<<<grid, 256>>>(g, ptr<TO>(out), ptr<TI>(in), __VA_ARGS__{}); return launched(); }
  KILN_CONVERT(float, DType::F32, U, DType::F16, ToHalf<F16Codec, float>)
  KILN_CONVERT(float, DType::F32, U, DType::BF16, ToHalf<BF16Codec, float>)
  KILN_CONVERT(double, DType::F64, U, DType::F16, ToHalf<F16Codec, double>)
  KILN_CONVERT(double, DType::F64, U, DType::BF16, ToHalf<BF16Codec, double>)
  KILN_CONVERT(int32_t, DType::I32, U, DType::F16, ToHalf<F16Codec, int32_t>)
  KILN_CONVERT(int32_t, DType::I32, U, DType::BF16, ToHalf<BF16Codec, int32_t>)
  KILN_CONVERT(U, DType::F16, float, DType::F32, FromHalf<F16Codec, float>)
  KILN_CONVERT(U, DType::BF16, float, DType::F32, FromHalf<BF16Codec, float>)
  KILN_CONVERT(U, DType::F16, double, DType::F64, FromHalf<F16Codec, double>)
  KILN_CONVERT(U, DType::BF16, double, DType::F64, FromHalf<BF16Codec, double>)
  KILN_CONVERT(U, DType::F16, int32_t, DType::I32, FromHalf<F16Codec, int32_t>)
  KILN_CONVERT(U, DType::BF16, int32_t, DType::I32, FromHalf<BF16Codec, int32_t>)
  KILN_CONVERT(U, DType::F16, U, DType::BF16, HalfToHalf<F16Codec, BF16Codec>)
  KILN_CONVERT(U, DType::BF16, U, DType::F16, HalfToHalf<BF16Codec, F16Codec>)
#undef KILN_CONVERT
#define KILN_UNARY(TI, DI, TO, DO) \
  if (in.dtype == DI && out.dtype == DO) { cast_kernel<TI, TO><<<grid, 256>>>(g, ptr<TO>(out), ptr<TI>(in)); return launched(); }
  KILN_UNARY(float, DType::F32, int32_t, DType::I32)
  KILN_UNARY(double, DType::F64, int32_t, DType::I32)
  KILN_UNARY(float, DType::F32, double, DType::F64)
  KILN_UNARY(double, DType::F64, float, DType::F32)
  KILN_UNARY(int32_t, DType::I32, float, DType::F32)
  KILN_UNARY(int32_t, DType::I32, double, DType::F64)
#undef KILN_UNARY
  return "unsupported dtype combination";
}

std::string binary(BinaryOp op, int ndim, const int64_t* shape, Operand out, Operand a, Operand b) {
  Operand ops[3] = {out, a, b};
  Geometry<3> g = make_geometry<3>(ndim, shape, ops);
  if (g.numel == 0) return "";
  dim3 grid = grid_for(g.numel);
  bool cmp = op >= BinaryOp::Eq && op <= BinaryOp::Ge;
  if (a.dtype == DType::F32 && !cmp) {
    Geometry<3> v;
    bool vec[3];
    if (vec4_geometry<3>(g, ops, v, vec)) {
      binary_vec4_kernel<<<grid_for(v.numel), 256>>>(op, v, ptr<float>(out), ptr<float>(a), ptr<float>(b), vec[1], vec[2]);
      return launched();
    }
  }
  switch (a.dtype) {
    case DType::F32:
      if (cmp) compare_kernel<float><<<grid, 256>>>(op, g, ptr<int32_t>(out), ptr<float>(a), ptr<float>(b));
      else binary_kernel<float><<<grid, 256>>>(op, g, ptr<float>(out), ptr<float>(a), ptr<float>(b));
      break;
    case DType::F64:
      if (cmp) compare_kernel<double><<<grid, 256>>>(op, g, ptr<int32_t>(out), ptr<double>(a), ptr<double>(b));
      else binary_kernel<double><<<grid, 256>>>(op, g, ptr<double>(out), ptr<double>(a), ptr<double>(b));
      break;
    case DType::I32:
      if (cmp) compare_kernel<int32_t><<<grid, 256>>>(op, g, ptr<int32_t>(out), ptr<int32_t>(a), ptr<int32_t>(b));
      else binary_kernel<int32_t><<<grid, 256>>>(op, g, ptr<int32_t>(out), ptr<int32_t>(a), ptr<int32_t>(b));
      break;
    case DType::F16:
      if (cmp) compare_half_kernel<F16Codec><<<grid, 256>>>(op, g, ptr<int32_t>(out), ptr<uint16_t>(a), ptr<uint16_t>(b));
      else binary_half_kernel<F16Codec><<<grid, 256>>>(op, g, ptr<uint16_t>(out), ptr<uint16_t>(a), ptr<uint16_t>(b));
      break;
    case DType::BF16:
      if (cmp) compare_half_kernel<BF16Codec><<<grid, 256>>>(op, g, ptr<int32_t>(out), ptr<uint16_t>(a), ptr<uint16_t>(b));
      else binary_half_kernel<BF16Codec><<<grid, 256>>>(op, g, ptr<uint16_t>(out), ptr<uint16_t>(a), ptr<uint16_t>(b));
      break;
  }
  return launched();
}

std::string ternary(TernaryOp, int ndim, const int64_t* shape, Operand out, Operand c, Operand a, Operand b) {
  Operand ops[4] = {out, c, a, b};
  Geometry<4> g = make_geometry<4>(ndim, shape, ops);
  if (g.numel == 0) return "";
  dim3 grid = grid_for(g.numel);
#define KILN_WHERE(TC, DC, T, D) \
  if (c.dtype == DC && out.dtype == D) { where_kernel<TC, T><<<grid, 256>>>(g, ptr<T>(out), ptr<TC>(c), ptr<T>(a), ptr<T>(b)); return launched(); }
  KILN_WHERE(int32_t, DType::I32, float, DType::F32)
  KILN_WHERE(int32_t, DType::I32, double, DType::F64)
  KILN_WHERE(int32_t, DType::I32, int32_t, DType::I32)
  KILN_WHERE(float, DType::F32, float, DType::F32)
  KILN_WHERE(float, DType::F32, double, DType::F64)
  KILN_WHERE(float, DType::F32, int32_t, DType::I32)
  KILN_WHERE(double, DType::F64, float, DType::F32)
  KILN_WHERE(double, DType::F64, double, DType::F64)
  KILN_WHERE(double, DType::F64, int32_t, DType::I32)
  // Half branches are selected as bits; a half condition is tested on its bits.
  using U = uint16_t;
  const bool halfCond = c.dtype == DType::F16 || c.dtype == DType::BF16;
  if (out.dtype == DType::F16 || out.dtype == DType::BF16) {
    if (halfCond) where_kernel<U, U><<<grid, 256>>>(g, ptr<U>(out), ptr<U>(c), ptr<U>(a), ptr<U>(b));
    else if (c.dtype == DType::I32) where_kernel<int32_t, U><<<grid, 256>>>(g, ptr<U>(out), ptr<int32_t>(c), ptr<U>(a), ptr<U>(b));
    else if (c.dtype == DType::F32) where_kernel<float, U><<<grid, 256>>>(g, ptr<U>(out), ptr<float>(c), ptr<U>(a), ptr<U>(b));
    else where_kernel<double, U><<<grid, 256>>>(g, ptr<U>(out), ptr<double>(c), ptr<U>(a), ptr<U>(b));
    return launched();
  }
  if (halfCond) {
    if (out.dtype == DType::F32) where_kernel<U, float><<<grid, 256>>>(g, ptr<float>(out), ptr<U>(c), ptr<float>(a), ptr<float>(b));
    else if (out.dtype == DType::F64) where_kernel<U, double><<<grid, 256>>>(g, ptr<double>(out), ptr<U>(c), ptr<double>(a), ptr<double>(b));
    else where_kernel<U, int32_t><<<grid, 256>>>(g, ptr<int32_t>(out), ptr<U>(c), ptr<int32_t>(a), ptr<int32_t>(b));
    return launched();
  }
#undef KILN_WHERE
  return "unsupported dtype combination";
}

}  // namespace cuda
}  // namespace kiln
