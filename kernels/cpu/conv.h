// im2col / col2im for convolution and pooling (conv.cc), straight from NCHW. Pure compute on raw pointers.
#pragma once
#include <cstdint>

namespace kiln {
namespace cpu {

// x is NCHW [N, C, H, W]; cols is [N, C, kH, kW, Ho, Wo]: cols[n, c, th, tw, oh, ow] =
// x[n, c, oh sH - pH + th dH, ow sW - pW + tw dW], or padValue outside the input. Read as
// [N, G, (C / G) kH kW, Ho Wo] it is each group's GEMM operand, so groups need no argument here.
// pH / pW are the top / left padding (bottom / right follow from Ho / Wo). Every read is bounds-
// checked against H and W, so any geometry is memory-safe; callers check the extents.
struct ConvGeometry {
  int64_t N, C, H, W, kH, kW, sH, sW, pH, pW, dH, dW, Ho, Wo;
};
template <class T> void im2col(const T* x, T* cols, const ConvGeometry& g, T padValue);
// dx = the adjoint of im2col (padding taps dropped), overwritten. Each input element sums its taps
// in (th, tw) order from zero, on any thread count (the CUDA twin adds in the same order: bit-equal).
template <class T> void col2im(const T* cols, T* dx, const ConvGeometry& g);

}  // namespace cpu
}  // namespace kiln
