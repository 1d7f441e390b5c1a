// bench/native/cuda_host: the warp matrix API (nvcuda::wmma) of CUDA's <mma.h>, as attention.cu's
// basic kernels use it (16 x 16 x 16 tiles, half inputs, float accumulators). A fragment's
// distribution over the warp's lanes is unspecified by CUDA, so here every lane holds the whole tile;
// each call is still a warp collective (all 32 lanes must make it, as on the device).
#pragma once
#include "kiln_host_cuda.h"

namespace nvcuda {
namespace wmma {

struct row_major {};
struct col_major {};
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static_assert(M == 16 && N == 16 && K == 16, "host wmma: 16 x 16 x 16 only");
  static constexpr int num_elements = 256;
  using element_type = T;
  T x[256];  // row-major (rows of A: m, of B: k, of the accumulator: m)
};

namespace detail {
inline float to_f(float v) { return v; }
inline float to_f(__half v) { return __half2float(v); }
inline float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
}  // namespace detail

template <class Use, class T, class L>
inline void load_matrix_sync(fragment<Use, 16, 16, 16, T, L>& f, const T* p, unsigned ld) {
  __syncwarp();
  constexpr bool col = std::is_same<L, col_major>::value;
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c) f.x[r * 16 + c] = col ? p[c * ld + r] : p[r * ld + c];
  __syncwarp();
}
inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float>& f, const float* p, unsigned ld, layout_t l) {
  __syncwarp();
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c) f.x[r * 16 + c] = l == mem_col_major ? p[c * ld + r] : p[r * ld + c];
  __syncwarp();
}
inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ld, layout_t l) {
  __syncwarp();
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c) (l == mem_col_major ? p[c * ld + r] : p[r * ld + c]) = f.x[r * 16 + c];
  __syncwarp();
}
template <class Use, class T, class L>
inline void fill_fragment(fragment<Use, 16, 16, 16, T, L>& f, T v) {
  for (int i = 0; i < 256; ++i) f.x[i] = v;
}
template <class T, class LA, class LB>
inline void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, const fragment<matrix_a, 16, 16, 16, T, LA>& a,
                     const fragment<matrix_b, 16, 16, 16, T, LB>& b, const fragment<accumulator, 16, 16, 16, float>& c) {
  __syncwarp();
  float out[256];
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 16; ++n) {
      double s = c.x[m * 16 + n];
      for (int k = 0; k < 16; ++k) s += double(detail::to_f(a.x[m * 16 + k])) * double(detail::to_f(b.x[k * 16 + n]));
      out[m * 16 + n] = float(s);
    }
  for (int i = 0; i < 256; ++i) d.x[i] = out[i];
  __syncwarp();
}

}  // namespace wmma
}  // namespace nvcuda
