// Strided elementwise kernels. Dimensions are collapsed first, so contiguous and simply
// broadcast cases reach a unit-stride inner loop that the compiler vectorises.
#include "elementwise.h"

#include <cmath>
#include <cstring>
#include <algorithm>
#include <type_traits>

#include "../common/half.h"
#include "../common/intpow.h"
#include "kernels.h"
#include "parallel.h"
#include "vmath.h"

namespace kiln {
namespace cpu {
namespace {

constexpr int64_t kParallelGrain = 1 << 15;

using vmath::verf;
using vmath::vexp;
using vmath::vlog;
using vmath::vtanh;

// Collapsed iteration space for up to 4 operands (out + 3 inputs).
struct Space {
  int ndim = 0;
  int64_t shape[kMaxDims];
  int64_t st[4][kMaxDims];
};

Space collapse(int ndim, const int64_t* shape, int nops, const Operand* ops) {
  Space s;
  for (int d = 0; d < ndim; ++d) {
    if (shape[d] == 1) continue;
    s.shape[s.ndim] = shape[d];
    for (int k = 0; k < nops; ++k) s.st[k][s.ndim] = ops[k].strides[d];
    ++s.ndim;
  }
  // Merge dim i-1 into i when every operand is contiguous across the pair.
  int w = 0;
  for (int i = 0; i < s.ndim; ++i) {
    if (w > 0) {
      bool mergeable = true;
      for (int k = 0; k < nops; ++k)
        if (s.st[k][w - 1] != s.st[k][i] * s.shape[i]) { mergeable = false; break; }
      if (mergeable) {
        s.shape[w - 1] *= s.shape[i];
        for (int k = 0; k < nops; ++k) s.st[k][w - 1] = s.st[k][i];
        continue;
      }
    }
    s.shape[w] = s.shape[i];
    for (int k = 0; k < nops; ++k) s.st[k][w] = s.st[k][i];
    ++w;
  }
  s.ndim = w;
  if (s.ndim == 0) {  // a scalar: one element
    s.ndim = 1;
    s.shape[0] = 1;
    for (int k = 0; k < nops; ++k) s.st[k][0] = 0;
  }
  return s;
}

// Calls inner(offsets[nops], n, innerStrides[nops]) over every innermost row; rows are split
// across threads when the whole space is large.
template <class Inner>
void drive(const Space& s, int nops, Inner inner) {
  const int last = s.ndim - 1;
  const int64_t n = s.shape[last];
  int64_t rows = 1;
  for (int d = 0; d < last; ++d) rows *= s.shape[d];
  int64_t inSt[4];
  for (int k = 0; k < nops; ++k) inSt[k] = s.st[k][last];
  const int64_t total = rows * n;
  const int threads = total >= kParallelGrain ? num_threads() : 1;

  auto run_rows = [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t off[4] = {0, 0, 0, 0};
      int64_t rem = r;
      for (int d = last - 1; d >= 0; --d) {
        int64_t i = rem % s.shape[d];
        rem /= s.shape[d];
        for (int k = 0; k < nops; ++k) off[k] += i * s.st[k][d];
      }
      for (int k = 0; k < nops; ++k) off[k] += c0 * inSt[k];
      inner(off, c1 - c0, inSt);
    }
  };

  if (threads <= 1) {
    run_rows(0, rows, 0, n);
  } else if (rows >= threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int t = 0; t < threads; ++t) run_rows(rows * t / threads, rows * (t + 1) / threads, 0, n);
  } else {  // few long rows: split columns
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int t = 0; t < threads; ++t) {
      int64_t c0 = (n * t / threads) & ~int64_t(15), c1 = t + 1 == threads ? n : (n * (t + 1) / threads) & ~int64_t(15);
      if (c1 > c0) run_rows(0, rows, c0, c1);
    }
  }
}

// ---- unary ----
template <class T>
__attribute__((always_inline)) inline T gelu_tanh(T x) {
  const T k = T(0.7978845608028654), c = T(0.044715);
  return T(0.5) * x * (T(1) + vtanh(k * (x + c * x * x * x)));
}
template <class T>
__attribute__((always_inline)) inline T gelu_erf(T x) { return T(0.5) * x * (T(1) + verf(x * T(0.7071067811865476))); }
template <class T>
__attribute__((always_inline)) inline T gelu_tanh_grad(T g, T x) {
  const T k = T(0.7978845608028654), c = T(0.044715);
  T t = vtanh(k * (x + c * x * x * x));
  T du = k * (T(1) + T(3) * c * x * x);
  return g * (T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * du);
}
template <class T>
__attribute__((always_inline)) inline T gelu_erf_grad(T g, T x) {
  T cdf = T(0.5) * (T(1) + verf(x * T(0.7071067811865476)));
  T pdf = vexp(T(-0.5) * x * x) * T(0.3989422804014327);
  return g * (cdf + x * pdf);
}

// Transcendental-heavy float32 ops on contiguous rows: separate functions so they get AVX-512 /
// AVX2 clones (the file is built for the baseline ISA); the lambdas below stay baseline.
using RowFn = void (*)(float*, const float*, int64_t);
using Row2Fn = void (*)(float*, const float*, const float*, int64_t);
KILN_CLONES void row_exp(float* o, const float* a, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) o[i] = vmath::exp_f(a[i]);
}
KILN_CLONES void row_log(float* o, const float* a, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) o[i] = vmath::log_f(a[i]);
}
KILN_CLONES void row_tanh(float* o, const float* a, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) o[i] = vmath::tanh_f(a[i]);
}
KILN_CLONES void row_sigmoid(float* o, const float* a, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) o[i] = 1.0f / (1.0f + vmath::exp_f(-a[i]));
}
KILN_CLONES void row_gelu_tanh(float* o, const float* a, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) o[i] = gelu_tanh(a[i]);
}
KILN_CLONES void row_gelu_erf(float* o, const float* a, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) o[i] = gelu_erf(a[i]);
}
KILN_CLONES void row_gelu_tanh_bwd(float* o, const float* g, const float* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) o[i] = gelu_tanh_grad(g[i], x[i]);
}
KILN_CLONES void row_gelu_erf_bwd(float* o, const float* g, const float* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) o[i] = gelu_erf_grad(g[i], x[i]);
}

// Uses `row` on unit-stride rows and the scalar `f` otherwise.
template <class F>
void unary_rows(const Space& s, float* out, const float* in, RowFn row, F f) {
  drive(s, 2, [&](const int64_t* off, int64_t n, const int64_t* st) {
    if (st[0] == 1 && st[1] == 1) return row(out + off[0], in + off[1], n);
    for (int64_t i = 0; i < n; ++i) out[off[0] + i * st[0]] = f(in[off[1] + i * st[1]]);
  });
}
template <class F>
void binary_rows(const Space& s, float* out, const float* a, const float* b, Row2Fn row, F f) {
  drive(s, 3, [&](const int64_t* off, int64_t n, const int64_t* st) {
    if (st[0] == 1 && st[1] == 1 && st[2] == 1) return row(out + off[0], a + off[1], b + off[2], n);
    if (st[0] == 1 && (st[1] == 0 || st[1] == 1) && (st[2] == 0 || st[2] == 1)) {
      // A broadcast operand (an expanded gradient of ones, say) repeats one value along the row:
      // spread it over a small buffer so the vectorised row function still runs.
      constexpr int64_t B = 512;
      float ca[B], cb[B];
      if (st[1] == 0) std::fill(ca, ca + B, a[off[1]]);
      if (st[2] == 0) std::fill(cb, cb + B, b[off[2]]);
      for (int64_t i = 0; i < n; i += B) {
        const int64_t m = std::min(B, n - i);
        row(out + off[0] + i, st[1] ? a + off[1] + i : ca, st[2] ? b + off[2] + i : cb, m);
      }
      return;
    }
    for (int64_t i = 0; i < n; ++i) out[off[0] + i * st[0]] = f(a[off[1] + i * st[1]], b[off[2] + i * st[2]]);
  });
}

template <class TI, class TO, class F>
void unary_loop(const Space& s, TO* out, const TI* in, F f) {
  drive(s, 2, [&](const int64_t* off, int64_t n, const int64_t* st) {
    TO* __restrict o = out + off[0];
    const TI* __restrict a = in + off[1];
    if (st[0] == 1 && st[1] == 1) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = f(a[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) o[i * st[0]] = f(a[i * st[1]]);
    }
  });
}

template <class T>
void unary_float(UnaryOp op, const Space& s, T* o, const T* a, T p0, T p1) {
  if constexpr (std::is_same_v<T, float>) {
    switch (op) {
      case UnaryOp::Exp: return unary_rows(s, o, a, row_exp, [](float x) { return vexp(x); });
      case UnaryOp::Log: return unary_rows(s, o, a, row_log, [](float x) { return vlog(x); });
      case UnaryOp::Tanh: return unary_rows(s, o, a, row_tanh, [](float x) { return vtanh(x); });
      case UnaryOp::Sigmoid: return unary_rows(s, o, a, row_sigmoid, [](float x) { return 1.0f / (1.0f + vexp(-x)); });
      case UnaryOp::GeluTanh: return unary_rows(s, o, a, row_gelu_tanh, gelu_tanh<float>);
      case UnaryOp::GeluErf: return unary_rows(s, o, a, row_gelu_erf, gelu_erf<float>);
      default: break;
    }
  }
  switch (op) {
    case UnaryOp::Copy: return unary_loop(s, o, a, [](T x) { return x; });
    case UnaryOp::Neg: return unary_loop(s, o, a, [](T x) { return -x; });
    case UnaryOp::Exp: return unary_loop(s, o, a, [](T x) { return vexp(x); });
    case UnaryOp::Log: return unary_loop(s, o, a, [](T x) { return vlog(x); });
    case UnaryOp::Sqrt: return unary_loop(s, o, a, [](T x) { return std::sqrt(x); });
    case UnaryOp::Rsqrt: return unary_loop(s, o, a, [](T x) { return T(1) / std::sqrt(x); });
    case UnaryOp::Abs: return unary_loop(s, o, a, [](T x) { return std::fabs(x); });
    case UnaryOp::Tanh: return unary_loop(s, o, a, [](T x) { return vtanh(x); });
    case UnaryOp::Sigmoid: return unary_loop(s, o, a, [](T x) { return T(1) / (T(1) + vexp(-x)); });
    // NaN and -0 pass through, as PyTorch's clamp_min(x, 0) (relu(-0.0) is -0.0).
    case UnaryOp::Relu: return unary_loop(s, o, a, [](T x) { return x < T(0) ? T(0) : x; });
    case UnaryOp::GeluTanh: return unary_loop(s, o, a, [](T x) { return gelu_tanh(x); });
    case UnaryOp::GeluErf: return unary_loop(s, o, a, [](T x) { return gelu_erf(x); });
    case UnaryOp::Sin: return unary_loop(s, o, a, [](T x) { return std::sin(x); });
    case UnaryOp::Cos: return unary_loop(s, o, a, [](T x) { return std::cos(x); });
    case UnaryOp::Sign: return unary_loop(s, o, a, [](T x) { return T((x > T(0)) - (x < T(0))); });
    case UnaryOp::Square: return unary_loop(s, o, a, [](T x) { return x * x; });
    case UnaryOp::Reciprocal: return unary_loop(s, o, a, [](T x) { return T(1) / x; });
    case UnaryOp::Affine: return unary_loop(s, o, a, [=](T x) { return x * p0 + p1; });
    case UnaryOp::PowScalar:
      if (p0 == T(2)) return unary_loop(s, o, a, [](T x) { return x * x; });
      if (p0 == T(0.5)) return unary_loop(s, o, a, [](T x) { return std::sqrt(x); });
      return unary_loop(s, o, a, [=](T x) { return std::pow(x, p0); });
    case UnaryOp::Clamp:
      return unary_loop(s, o, a, [=](T x) { return x != x ? x : (x < p0 ? p0 : (x > p1 ? p1 : x)); });
    case UnaryOp::Log1p: return unary_loop(s, o, a, [](T x) { return std::log1p(x); });
    case UnaryOp::Expm1: return unary_loop(s, o, a, [](T x) { return std::expm1(x); });
    case UnaryOp::Floor: return unary_loop(s, o, a, [](T x) { return std::floor(x); });
    case UnaryOp::Ceil: return unary_loop(s, o, a, [](T x) { return std::ceil(x); });
    case UnaryOp::Round: return unary_loop(s, o, a, [](T x) { return std::nearbyint(x); });
    case UnaryOp::Fill: return unary_loop(s, o, a, [=](T) { return p0; });
    default: return;
  }
}

void unary_i32(UnaryOp op, const Space& s, int32_t* o, const int32_t* a, double p0, double p1) {
  using T = int32_t;
  switch (op) {
    case UnaryOp::Copy: return unary_loop(s, o, a, [](T x) { return x; });
    case UnaryOp::Neg: return unary_loop(s, o, a, [](T x) { return -x; });
    case UnaryOp::Abs: return unary_loop(s, o, a, [](T x) { return x < 0 ? -x : x; });
    case UnaryOp::Sign: return unary_loop(s, o, a, [](T x) { return T((x > 0) - (x < 0)); });
    case UnaryOp::Square: return unary_loop(s, o, a, [](T x) { return x * x; });
    case UnaryOp::Affine: {
      T m = T(p0), c = T(p1);
      return unary_loop(s, o, a, [=](T x) { return x * m + c; });
    }
    case UnaryOp::Clamp: {
      T lo = T(std::max(p0, -2147483648.0)), hi = T(std::min(p1, 2147483647.0));
      return unary_loop(s, o, a, [=](T x) { return x < lo ? lo : (x > hi ? hi : x); });
    }
    case UnaryOp::Fill: {
      T v = T(p0);
      return unary_loop(s, o, a, [=](T) { return v; });
    }
    default: return;
  }
}

template <class T>
void unary_classify(UnaryOp op, const Space& s, int32_t* o, const T* a) {
  switch (op) {
    case UnaryOp::IsNan: return unary_loop(s, o, a, [](T x) { return int32_t(x != x); });
    case UnaryOp::IsInf: return unary_loop(s, o, a, [](T x) { return int32_t(std::isinf(x)); });
    case UnaryOp::IsFinite: return unary_loop(s, o, a, [](T x) { return int32_t(std::isfinite(x)); });
    default: return;
  }
}

template <class TI, class TO>
void cast(const Space& s, TO* o, const TI* a) {
  unary_loop(s, o, a, [](TI x) { return static_cast<TO>(x); });
}

// ---- float16 / bfloat16: 2-byte storage, computed in float32 ----
bool is_half(DType d) { return d == DType::F16 || d == DType::BF16; }

// Half values are widened to float32 (exact), narrowed with round-to-nearest-even.
float half_load(DType d, uint16_t h) { return d == DType::F16 ? half::f16_to_f32(h) : half::bf16_to_f32(h); }

// Casts from or to a half dtype (in and out differ; at least one is half).
void cast_half(const Space& s, const Operand& out, const Operand& in) {
  using U = uint16_t;
  void* o = out.data;
  const void* a = in.data;
  const bool f16out = out.dtype == DType::F16, f16in = in.dtype == DType::F16;
  if (is_half(out.dtype)) {
    U* ho = static_cast<U*>(o);
    switch (in.dtype) {
      case DType::F32:
        if (f16out) return unary_loop(s, ho, static_cast<const float*>(a), [](float x) { return half::f32_to_f16(x); });
        return unary_loop(s, ho, static_cast<const float*>(a), [](float x) { return half::f32_to_bf16(x); });
      case DType::F64:
        if (f16out) return unary_loop(s, ho, static_cast<const double*>(a), [](double x) { return half::f64_to_f16(x); });
        return unary_loop(s, ho, static_cast<const double*>(a), [](double x) { return half::f64_to_bf16(x); });
      case DType::I32:  // through double: exact, so a single rounding
        if (f16out) return unary_loop(s, ho, static_cast<const int32_t*>(a), [](int32_t x) { return half::f64_to_f16(x); });
        return unary_loop(s, ho, static_cast<const int32_t*>(a), [](int32_t x) { return half::f64_to_bf16(x); });
      case DType::F16:
        return unary_loop(s, ho, static_cast<const U*>(a), [](U h) { return half::f32_to_bf16(half::f16_to_f32(h)); });
      case DType::BF16:
        return unary_loop(s, ho, static_cast<const U*>(a), [](U h) { return half::f32_to_f16(half::bf16_to_f32(h)); });
    }
    return;
  }
  const U* ha = static_cast<const U*>(a);
  switch (out.dtype) {
    case DType::F32:
      if (f16in) return unary_loop(s, static_cast<float*>(o), ha, [](U h) { return half::f16_to_f32(h); });
      return unary_loop(s, static_cast<float*>(o), ha, [](U h) { return half::bf16_to_f32(h); });
    case DType::F64:
      if (f16in) return unary_loop(s, static_cast<double*>(o), ha, [](U h) { return double(half::f16_to_f32(h)); });
      return unary_loop(s, static_cast<double*>(o), ha, [](U h) { return double(half::bf16_to_f32(h)); });
    case DType::I32:  // as float32 -> int32 (truncation)
      if (f16in) return unary_loop(s, static_cast<int32_t*>(o), ha, [](U h) { return static_cast<int32_t>(half::f16_to_f32(h)); });
      return unary_loop(s, static_cast<int32_t*>(o), ha, [](U h) { return static_cast<int32_t>(half::bf16_to_f32(h)); });
    default: return;
  }
}

constexpr int64_t kHalfChunk = 256;

// A dense 1-d space of n elements (for running a float32 kernel on a chunk).
Space dense_space(int64_t n, int nops) {
  Space c;
  c.ndim = 1;
  c.shape[0] = n;
  for (int k = 0; k < nops; ++k) c.st[k][0] = 1;
  return c;
}

template <class T>
void unary_float(UnaryOp op, const Space& s, T* o, const T* a, T p0, T p1);
template <class T>
void binary_float(BinaryOp op, const Space& s, T* o, const T* a, const T* b);
template <class T>
void binary_cmp(BinaryOp op, const Space& s, int32_t* o, const T* a, const T* b);

// Unary ops on a half tensor: exact ones on the bits, the rest through float32 chunks.
void unary_half(UnaryOp op, const Space& s, const Operand& out, const Operand& in, double p0, double p1) {
  using U = uint16_t;
  U* o = static_cast<U*>(out.data);
  const U* a = static_cast<const U*>(in.data);
  const DType d = in.dtype;
  switch (op) {
    case UnaryOp::Copy: return unary_loop(s, o, a, [](U h) { return h; });
    case UnaryOp::Neg: return unary_loop(s, o, a, [](U h) { return U(h ^ 0x8000u); });
    case UnaryOp::Abs: return unary_loop(s, o, a, [](U h) { return U(h & 0x7fffu); });
    case UnaryOp::Fill: {
      const U v = d == DType::F16 ? half::f64_to_f16(p0) : half::f64_to_bf16(p0);
      return unary_loop(s, o, a, [=](U) { return v; });
    }
    case UnaryOp::IsNan: case UnaryOp::IsInf: case UnaryOp::IsFinite: {
      const U inf = d == DType::F16 ? 0x7c00u : 0x7f80u;
      int32_t* oi = static_cast<int32_t*>(out.data);
      if (op == UnaryOp::IsNan) return unary_loop(s, oi, a, [=](U h) { return int32_t((h & 0x7fffu) > inf); });
      if (op == UnaryOp::IsInf) return unary_loop(s, oi, a, [=](U h) { return int32_t((h & 0x7fffu) == inf); });
      return unary_loop(s, oi, a, [=](U h) { return int32_t((h & 0x7fffu) < inf); });
    }
    default: break;
  }
  const Space chunk0 = dense_space(kHalfChunk, 2);
  drive(s, 2, [&](const int64_t* off, int64_t n, const int64_t* st) {
    float x[kHalfChunk], y[kHalfChunk];
    for (int64_t c0 = 0; c0 < n; c0 += kHalfChunk) {
      const int64_t m = std::min(kHalfChunk, n - c0);
      const U* src = a + off[1] + c0 * st[1];
      for (int64_t i = 0; i < m; ++i) x[i] = half_load(d, src[i * st[1]]);
      Space c = chunk0;
      c.shape[0] = m;
      unary_float<float>(op, c, y, x, float(p0), float(p1));
      U* dst = o + off[0] + c0 * st[0];
      if (d == DType::F16) for (int64_t i = 0; i < m; ++i) dst[i * st[0]] = half::f32_to_f16(y[i]);
      else for (int64_t i = 0; i < m; ++i) dst[i * st[0]] = half::f32_to_bf16(y[i]);
    }
  });
}

// Binary ops on half inputs through float32 chunks (comparisons write int32, the rest half).
void binary_half(BinaryOp op, bool cmp, const Space& s, const Operand& out, const Operand& a, const Operand& b) {
  using U = uint16_t;
  const U* pa = static_cast<const U*>(a.data);
  const U* pb = static_cast<const U*>(b.data);
  const DType d = a.dtype;
  const Space chunk0 = dense_space(kHalfChunk, 3);
  drive(s, 3, [&](const int64_t* off, int64_t n, const int64_t* st) {
    float x[kHalfChunk], y[kHalfChunk], r[kHalfChunk];
    int32_t ri[kHalfChunk];
    for (int64_t c0 = 0; c0 < n; c0 += kHalfChunk) {
      const int64_t m = std::min(kHalfChunk, n - c0);
      const U* sa = pa + off[1] + c0 * st[1];
      const U* sb = pb + off[2] + c0 * st[2];
      for (int64_t i = 0; i < m; ++i) x[i] = half_load(d, sa[i * st[1]]);
      for (int64_t i = 0; i < m; ++i) y[i] = half_load(d, sb[i * st[2]]);
      Space c = chunk0;
      c.shape[0] = m;
      if (cmp) {
        binary_cmp<float>(op, c, ri, x, y);
        int32_t* dst = static_cast<int32_t*>(out.data) + off[0] + c0 * st[0];
        for (int64_t i = 0; i < m; ++i) dst[i * st[0]] = ri[i];
        continue;
      }
      binary_float<float>(op, c, r, x, y);
      U* dst = static_cast<U*>(out.data) + off[0] + c0 * st[0];
      if (d == DType::F16) for (int64_t i = 0; i < m; ++i) dst[i * st[0]] = half::f32_to_f16(r[i]);
      else for (int64_t i = 0; i < m; ++i) dst[i * st[0]] = half::f32_to_bf16(r[i]);
    }
  });
}

// ---- binary ----
template <class TI, class TO, class F>
void binary_loop(const Space& s, TO* out, const TI* A, const TI* B, F f) {
  drive(s, 3, [&](const int64_t* off, int64_t n, const int64_t* st) {
    TO* __restrict o = out + off[0];
    const TI* __restrict a = A + off[1];
    const TI* __restrict b = B + off[2];
    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], b[i]);
    } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {
      const TI bv = b[0];
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], bv);
    } else if (st[0] == 1 && st[1] == 0 && st[2] == 1) {
      const TI av = a[0];
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = f(av, b[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) o[i * st[0]] = f(a[i * st[1]], b[i * st[2]]);
    }
  });
}

template <class T>
void binary_cmp(BinaryOp op, const Space& s, int32_t* o, const T* a, const T* b) {
  switch (op) {
    case BinaryOp::Eq: return binary_loop(s, o, a, b, [](T x, T y) { return int32_t(x == y); });
    case BinaryOp::Ne: return binary_loop(s, o, a, b, [](T x, T y) { return int32_t(x != y); });
    case BinaryOp::Lt: return binary_loop(s, o, a, b, [](T x, T y) { return int32_t(x < y); });
    case BinaryOp::Le: return binary_loop(s, o, a, b, [](T x, T y) { return int32_t(x <= y); });
    case BinaryOp::Gt: return binary_loop(s, o, a, b, [](T x, T y) { return int32_t(x > y); });
    case BinaryOp::Ge: return binary_loop(s, o, a, b, [](T x, T y) { return int32_t(x >= y); });
    default: return;
  }
}

template <class T>
void binary_float(BinaryOp op, const Space& s, T* o, const T* a, const T* b) {
  switch (op) {
    case BinaryOp::Add: return binary_loop(s, o, a, b, [](T x, T y) { return x + y; });
    case BinaryOp::Sub: return binary_loop(s, o, a, b, [](T x, T y) { return x - y; });
    case BinaryOp::Mul: return binary_loop(s, o, a, b, [](T x, T y) { return x * y; });
    case BinaryOp::Div: return binary_loop(s, o, a, b, [](T x, T y) { return x / y; });
    case BinaryOp::Pow: return binary_loop(s, o, a, b, [](T x, T y) { return std::pow(x, y); });
    case BinaryOp::Maximum:
      return binary_loop(s, o, a, b, [](T x, T y) { return (x != x || x > y) ? x : (y != y ? y : (x == y ? x : y)); });
    case BinaryOp::Minimum:
      return binary_loop(s, o, a, b, [](T x, T y) { return (x != x || x < y) ? x : (y != y ? y : (x == y ? x : y)); });
    case BinaryOp::ReluBackward: return binary_loop(s, o, a, b, [](T g, T x) { return !(x <= T(0)) ? g : T(0); });  // NaN passes g, as PyTorch
    case BinaryOp::GeluTanhBackward:
      if constexpr (std::is_same_v<T, float>) return binary_rows(s, o, a, b, row_gelu_tanh_bwd, gelu_tanh_grad<float>);
      return binary_loop(s, o, a, b, gelu_tanh_grad<T>);
    case BinaryOp::GeluErfBackward:
      if constexpr (std::is_same_v<T, float>) return binary_rows(s, o, a, b, row_gelu_erf_bwd, gelu_erf_grad<float>);
      return binary_loop(s, o, a, b, gelu_erf_grad<T>);
    case BinaryOp::SigmoidBackward: return binary_loop(s, o, a, b, [](T g, T y) { return g * y * (T(1) - y); });
    case BinaryOp::TanhBackward: return binary_loop(s, o, a, b, [](T g, T y) { return g * (T(1) - y * y); });
    default: return;
  }
}

void binary_i32(BinaryOp op, const Space& s, int32_t* o, const int32_t* a, const int32_t* b) {
  using T = int32_t;
  switch (op) {
    case BinaryOp::Add: return binary_loop(s, o, a, b, [](T x, T y) { return T(uint32_t(x) + uint32_t(y)); });
    case BinaryOp::Sub: return binary_loop(s, o, a, b, [](T x, T y) { return T(uint32_t(x) - uint32_t(y)); });
    case BinaryOp::Mul: return binary_loop(s, o, a, b, [](T x, T y) { return T(uint32_t(x) * uint32_t(y)); });
    case BinaryOp::Maximum: return binary_loop(s, o, a, b, [](T x, T y) { return x > y ? x : y; });
    case BinaryOp::Minimum: return binary_loop(s, o, a, b, [](T x, T y) { return x < y ? x : y; });
    case BinaryOp::Pow: return binary_loop(s, o, a, b, [](T x, T y) { return int_pow(x, y); });
    default: return;
  }
}

// The condition is true where nonzero; a half condition (uint16_t bits) is zero for +-0.
template <class TC> inline bool nonzero(TC v) { return v != TC(0); }
template <> inline bool nonzero<uint16_t>(uint16_t v) { return (v & 0x7fffu) != 0; }

template <class TC, class T>
void where_loop(const Space& s, T* out, const TC* C, const T* A, const T* B) {
  drive(s, 4, [&](const int64_t* off, int64_t n, const int64_t* st) {
    T* o = out + off[0];
    const TC* c = C + off[1];
    const T* a = A + off[2];
    const T* b = B + off[3];
    for (int64_t i = 0; i < n; ++i) o[i * st[0]] = nonzero(c[i * st[1]]) ? a[i * st[2]] : b[i * st[3]];
  });
}

template <class T>
void where_dispatch(const Space& s, const Operand& out, const Operand& c, const Operand& a, const Operand& b) {
  T* o = static_cast<T*>(out.data);
  const T* pa = static_cast<const T*>(a.data);
  const T* pb = static_cast<const T*>(b.data);
  switch (c.dtype) {
    case DType::I32: return where_loop(s, o, static_cast<const int32_t*>(c.data), pa, pb);
    case DType::F32: return where_loop(s, o, static_cast<const float*>(c.data), pa, pb);
    case DType::F64: return where_loop(s, o, static_cast<const double*>(c.data), pa, pb);
    case DType::F16: case DType::BF16: return where_loop(s, o, static_cast<const uint16_t*>(c.data), pa, pb);
  }
}

bool is_classify(UnaryOp op) { return op == UnaryOp::IsNan || op == UnaryOp::IsInf || op == UnaryOp::IsFinite; }
bool is_compare(BinaryOp op) { return op >= BinaryOp::Eq && op <= BinaryOp::Ge; }

}  // namespace

bool unary_supported(UnaryOp op, DType in, DType out) {
  if (op < UnaryOp::Copy || op >= UnaryOp::Count) return false;
  if (op == UnaryOp::Copy) return true;  // any cast
  if (is_classify(op)) return in != DType::I32 && out == DType::I32;
  if (in != out) return false;
  if (in == DType::I32)
    return op == UnaryOp::Neg || op == UnaryOp::Abs || op == UnaryOp::Sign || op == UnaryOp::Square ||
           op == UnaryOp::Affine || op == UnaryOp::Clamp || op == UnaryOp::Fill;
  return true;
}

bool binary_supported(BinaryOp op, DType in) {
  if (op < BinaryOp::Add || op >= BinaryOp::Count) return false;
  if (in != DType::I32 || is_compare(op)) return true;
  return op == BinaryOp::Add || op == BinaryOp::Sub || op == BinaryOp::Mul || op == BinaryOp::Maximum ||
         op == BinaryOp::Minimum || op == BinaryOp::Pow;
}

// A same-dtype copy whose input runs along another dimension than the output (a transpose made
// contiguous): the element-by-element loop reads the input with a large stride, one cache line per
// element. Tiles of the two dimensions keep both sides in L1. Returns false when the layout is not
// a transpose (the generic loop runs).
template <class E>
void tiled_transpose(const Space& s, int j, E* out, const E* in) {
  // Tiles go through a small contiguous buffer: the input's column of a tile is one contiguous read
  // into a buffer row, then each output row of the tile reads the buffer down a column. Reading the
  // input tile directly would touch TB lines a power-of-two stride apart (one L1 set) and thrash.
  constexpr int64_t TB = 32;
  const int last = s.ndim - 1;
  const int64_t J = s.shape[j], C = s.shape[last];
  const int64_t oj = s.st[0][j], il = s.st[1][last];
  int64_t outer = 1;
  for (int d = 0; d < last; ++d) if (d != j) outer *= s.shape[d];
  const int64_t jt = (J + TB - 1) / TB, tasks = outer * jt;
  auto task = [&](int64_t t) {
    alignas(64) E buf[TB * TB];
    int64_t r = t / jt, ib = (t - r * jt) * TB;
    int64_t oo = 0, io = 0;
    for (int d = last - 1; d >= 0; --d) {
      if (d == j) continue;
      const int64_t i = r % s.shape[d];
      r /= s.shape[d];
      oo += i * s.st[0][d];
      io += i * s.st[1][d];
    }
    const int64_t ni = std::min(J, ib + TB) - ib;
    for (int64_t cb = 0; cb < C; cb += TB) {
      const int64_t nc = std::min(C, cb + TB) - cb;
      for (int64_t c = 0; c < nc; ++c) {
        const E* __restrict a = in + io + ib + (cb + c) * il;
        E* __restrict b = buf + c * TB;
        for (int64_t i = 0; i < ni; ++i) b[i] = a[i];
      }
      for (int64_t i = 0; i < ni; ++i) {
        E* __restrict o = out + oo + (ib + i) * oj + cb;
        const E* __restrict b = buf + i;
        for (int64_t c = 0; c < nc; ++c) o[c] = b[c * TB];
      }
    }
  };
  const int threads = tasks > 1 && outer * J * C >= (int64_t(1) << 15) ? num_threads() : 1;
  if (threads <= 1) {
    for (int64_t t = 0; t < tasks; ++t) task(t);
  } else {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t t = 0; t < tasks; ++t) task(t);
  }
}

bool transpose_copy(const Space& s, const Operand& out, const Operand& in) {
  const int last = s.ndim - 1;
  if (last < 1 || s.st[0][last] != 1 || s.st[1][last] == 1 || s.shape[last] < 8) return false;
  int j = -1;
  for (int d = 0; d < last; ++d) if (s.st[1][d] == 1) j = d;
  if (j < 0 || s.shape[j] < 8) return false;
  switch (out.dtype) {
    case DType::F32: case DType::I32: tiled_transpose(s, j, static_cast<uint32_t*>(out.data), static_cast<const uint32_t*>(in.data)); return true;
    case DType::F64: tiled_transpose(s, j, static_cast<uint64_t*>(out.data), static_cast<const uint64_t*>(in.data)); return true;
    case DType::F16: case DType::BF16: tiled_transpose(s, j, static_cast<uint16_t*>(out.data), static_cast<const uint16_t*>(in.data)); return true;
  }
  return false;
}

void unary(UnaryOp op, int ndim, const int64_t* shape, Operand out, Operand in, double p0, double p1) {
  Operand ops[2] = {out, in};
  Space s = collapse(ndim, shape, 2, ops);
  if (op == UnaryOp::Copy && in.dtype == out.dtype && transpose_copy(s, out, in)) return;
  if (op == UnaryOp::Copy && in.dtype != out.dtype) {
    if (is_half(in.dtype) || is_half(out.dtype)) return cast_half(s, out, in);
#define KILN_CAST(TI, DI, TO, DO) \
  if (in.dtype == DI && out.dtype == DO) return cast(s, static_cast<TO*>(out.data), static_cast<const TI*>(in.data));
    KILN_CAST(float, DType::F32, int32_t, DType::I32)
    KILN_CAST(float, DType::F32, double, DType::F64)
    KILN_CAST(int32_t, DType::I32, float, DType::F32)
    KILN_CAST(int32_t, DType::I32, double, DType::F64)
    KILN_CAST(double, DType::F64, float, DType::F32)
    KILN_CAST(double, DType::F64, int32_t, DType::I32)
#undef KILN_CAST
    return;
  }
  if (is_half(in.dtype)) return unary_half(op, s, out, in, p0, p1);
  if (is_classify(op)) {
    if (in.dtype == DType::F32) unary_classify(op, s, static_cast<int32_t*>(out.data), static_cast<const float*>(in.data));
    else unary_classify(op, s, static_cast<int32_t*>(out.data), static_cast<const double*>(in.data));
    return;
  }
  switch (in.dtype) {
    case DType::F32:
      return unary_float<float>(op, s, static_cast<float*>(out.data), static_cast<const float*>(in.data), float(p0), float(p1));
    case DType::F64:
      return unary_float<double>(op, s, static_cast<double*>(out.data), static_cast<const double*>(in.data), p0, p1);
    case DType::I32:
      return unary_i32(op, s, static_cast<int32_t*>(out.data), static_cast<const int32_t*>(in.data), p0, p1);
    default: return;  // half: handled above
  }
}

void binary(BinaryOp op, int ndim, const int64_t* shape, Operand out, Operand a, Operand b) {
  Operand ops[3] = {out, a, b};
  Space s = collapse(ndim, shape, 3, ops);
  if (is_half(a.dtype)) return binary_half(op, is_compare(op), s, out, a, b);
  if (is_compare(op)) {
    int32_t* o = static_cast<int32_t*>(out.data);
    switch (a.dtype) {
      case DType::F32: return binary_cmp(op, s, o, static_cast<const float*>(a.data), static_cast<const float*>(b.data));
      case DType::F64: return binary_cmp(op, s, o, static_cast<const double*>(a.data), static_cast<const double*>(b.data));
      case DType::I32: return binary_cmp(op, s, o, static_cast<const int32_t*>(a.data), static_cast<const int32_t*>(b.data));
      default: return;
    }
  }
  switch (a.dtype) {
    case DType::F32:
      return binary_float<float>(op, s, static_cast<float*>(out.data), static_cast<const float*>(a.data), static_cast<const float*>(b.data));
    case DType::F64:
      return binary_float<double>(op, s, static_cast<double*>(out.data), static_cast<const double*>(a.data), static_cast<const double*>(b.data));
    case DType::I32:
      return binary_i32(op, s, static_cast<int32_t*>(out.data), static_cast<const int32_t*>(a.data), static_cast<const int32_t*>(b.data));
    default: return;
  }
}

void ternary(TernaryOp, int ndim, const int64_t* shape, Operand out, Operand c, Operand a, Operand b) {
  Operand ops[4] = {out, c, a, b};
  Space s = collapse(ndim, shape, 4, ops);
  switch (out.dtype) {
    case DType::F32: return where_dispatch<float>(s, out, c, a, b);
    case DType::F64: return where_dispatch<double>(s, out, c, a, b);
    case DType::I32: return where_dispatch<int32_t>(s, out, c, a, b);
    case DType::F16: case DType::BF16: return where_dispatch<uint16_t>(s, out, c, a, b);  // a selection: bits suffice
  }
}

}  // namespace cpu
}  // namespace kiln
