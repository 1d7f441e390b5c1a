// bench/native/cuda_host: the warp matrix API (nvcuda::wmma) of CUDA's <mma.h>, as attention.cu's
// basic kernels use it: 16 x 16 x 16 tiles of half inputs and 16 x 16 x 8 tiles of TF32 inputs
// (precision::tf32, float storage), float accumulators. A fragment's distribution over the warp's
// lanes is unspecified by CUDA, so here every lane holds the whole tile; each call is still a warp
// collective (all 32 lanes must make it, as on the device). TF32 inputs are used as the tensor cores
// use them: only their top 19 bits (sign, exponent, 10 mantissa bits) count, so a float that was not
// rounded with __float_to_tf32 first loses its low 13 bits. Loads and stores check CUDA's alignment
// rules (pointer 32-byte aligned, leading dimension a multiple of 16 bytes). Each product is summed in
// float64 and rounded once, more accurately than the hardware's float32 accumulation.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

#include "kiln_host_cuda.h"

namespace nvcuda {
namespace wmma {

struct row_major {};
struct col_major {};
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
namespace precision {
struct tf32 {};
}  // namespace precision
enum layout_t { mem_row_major, mem_col_major };

namespace detail {
template <class T> struct storage { using type = T; };
template <> struct storage<precision::tf32> { using type = float; };
template <class Use, int M, int N, int K> struct dims;
template <int M, int N, int K> struct dims<matrix_a, M, N, K> { static constexpr int rows = M, cols = K; };
template <int M, int N, int K> struct dims<matrix_b, M, N, K> { static constexpr int rows = K, cols = N; };
template <int M, int N, int K> struct dims<accumulator, M, N, K> { static constexpr int rows = M, cols = N; };
inline float to_f(float v) { return v; }
inline float to_f(__half v) { return __half2float(v); }
inline float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
// What a tensor core reads of an operand: TF32 keeps the top 19 bits of the float.
template <class T> inline float operand(typename storage<T>::type v) { return to_f(v); }
template <> inline float operand<precision::tf32>(float v) { return __uint_as_float(__float_as_uint(v) & 0xffffe000u); }
}  // namespace detail

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static_assert(M == 16 && N == 16 && (K == 16 || K == 8), "host wmma: 16 x 16 x 16 and 16 x 16 x 8 only");
  static_assert(std::is_same<Use, accumulator>::value || (std::is_same<T, precision::tf32>::value == (K == 8)),
                "host wmma: k = 8 takes TF32 inputs, k = 16 half inputs");
  static constexpr int rows = detail::dims<Use, M, N, K>::rows, cols = detail::dims<Use, M, N, K>::cols;
  static constexpr int num_elements = rows * cols;
  using element_type = typename detail::storage<T>::type;
  element_type x[num_elements];  // row-major (rows of A: m, of B: k, of the accumulator: m)
};

// cvt.rna.tf32.f32: to the nearest TF32 value, ties away from zero; infinities and NaN pass.
inline float __float_to_tf32(float v) {
  return __uint_as_float(kiln_host::cvt_rna_tf32(v));
}

namespace detail {
// CUDA's rules for a WMMA load or store: the pointer 256-bit (32-byte) aligned, the leading dimension a
// multiple of 16 bytes. In shared memory the offset from the dynamic allocation counts (attention.cu
// declares that 128-byte aligned; the model's allocation may start anywhere).
template <class E>
inline void check_layout(const E* p, unsigned ld, const char* what) {
  const unsigned char* c = reinterpret_cast<const unsigned char*>(p);
  const unsigned char* s = kiln_host::dynamic_smem();
  const uintptr_t at = c >= s && c < s + kiln_host::dynamic_smem_bytes() ? uintptr_t(c - s) : reinterpret_cast<uintptr_t>(c);
  if (at % 32 != 0) kiln_host::fail((std::string(what) + ": pointer not 32-byte aligned").c_str());
  if ((ld * sizeof(E)) % 16 != 0) kiln_host::fail((std::string(what) + ": leading dimension not a multiple of 16 bytes").c_str());
}
}  // namespace detail

template <class Use, int M, int N, int K, class T, class L>
inline void load_matrix_sync(fragment<Use, M, N, K, T, L>& f, const typename detail::storage<T>::type* p, unsigned ld) {
  using F = fragment<Use, M, N, K, T, L>;
  detail::check_layout(p, ld, "wmma::load_matrix_sync");
  __syncwarp();
  constexpr bool col = std::is_same<L, col_major>::value;
  for (int r = 0; r < F::rows; ++r)
    for (int c = 0; c < F::cols; ++c) f.x[r * F::cols + c] = col ? p[c * ld + r] : p[r * ld + c];
  __syncwarp();
}
template <int K>
inline void load_matrix_sync(fragment<accumulator, 16, 16, K, float>& f, const float* p, unsigned ld, layout_t l) {
  detail::check_layout(p, ld, "wmma::load_matrix_sync (accumulator)");
  __syncwarp();
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c) f.x[r * 16 + c] = l == mem_col_major ? p[c * ld + r] : p[r * ld + c];
  __syncwarp();
}
template <int K>
inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, K, float>& f, unsigned ld, layout_t l) {
  detail::check_layout(p, ld, "wmma::store_matrix_sync");
  __syncwarp();
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c) (l == mem_col_major ? p[c * ld + r] : p[r * ld + c]) = f.x[r * 16 + c];
  __syncwarp();
}
template <class Use, int M, int N, int K, class T, class L>
inline void fill_fragment(fragment<Use, M, N, K, T, L>& f, typename detail::storage<T>::type v) {
  for (int i = 0; i < fragment<Use, M, N, K, T, L>::num_elements; ++i) f.x[i] = v;
}
template <int K, class T, class LA, class LB>
inline void mma_sync(fragment<accumulator, 16, 16, K, float>& d, const fragment<matrix_a, 16, 16, K, T, LA>& a,
                     const fragment<matrix_b, 16, 16, K, T, LB>& b, const fragment<accumulator, 16, 16, K, float>& c) {
  __syncwarp();
  float out[256];
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 16; ++n) {
      double s = c.x[m * 16 + n];
      for (int k = 0; k < K; ++k)
        s += double(detail::operand<T>(a.x[m * K + k])) * double(detail::operand<T>(b.x[k * 16 + n]));
      out[m * 16 + n] = float(s);
    }
  for (int i = 0; i < 256; ++i) d.x[i] = out[i];
  __syncwarp();
}

}  // namespace wmma
}  // namespace nvcuda
