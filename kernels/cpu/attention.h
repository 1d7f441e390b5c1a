// Fused scaled-dot-product attention on the CPU (kernels/cpu/attention.cc): FlashAttention-2's
// algorithm on tiles, so no Tq x Tk matrix is ever stored; memory is linear in the sequence length.
// q [B, H, Tq, D], k and v [B, H, Tk, D], out [B, H, Tq, D], lse [B, H, Tq]: row-major; q, out and
// lse dense, k and v dense within each (b, h) head, heads kHeadStride / vHeadStride elements apart.
#pragma once
#include <cstdint>

namespace kiln {
namespace cpu {

struct AttentionArgs {
  int64_t B = 0, H = 0, Tq = 0, Tk = 0, D = 0;
  double scale = 1;
  // Bottom-right aligned (FlashAttention-2, PyTorch 2's causal_lower_right): query i sees key j
  // iff j <= i + (Tk - Tq), so the last query sees every key; rows with i + Tk - Tq < 0 see none.
  bool causal = false;
  const int32_t* keyLens = nullptr;  // [B] or null: key j of batch b is seen iff j < keyLens[b]
  const int32_t* keyMask = nullptr;  // [B, Tk] or null: key j of batch b is seen iff keyMask != 0
  // Dropout on the attention probabilities: element (b, h, i, j) is dropped iff
  // u(word(offset + ((b * H + h) * Tq + i) * Tk + j)) < p (kernels/common/philox.h), so the mask
  // depends on the seed and the element only, not on tiling, threads or device.
  double dropout = 0;
  uint64_t seed = 0, offset = 0;
  // Elements between consecutive (b, h) heads of k and v, whose rows stay D apart; -1: dense
  // (Tk * D). A larger stride reads k and v as views of bigger buffers (a KV cache's [B, H,
  // capacity, D]) without a copy. The CPU kernels honour it; the CUDA ones take dense heads only.
  int64_t kHeadStride = -1, vHeadStride = -1;
  int64_t k_head_stride() const { return kHeadStride < 0 ? Tk * D : kHeadStride; }
  int64_t v_head_stride() const { return vHeadStride < 0 ? Tk * D : vHeadStride; }
};

// out = dropout(softmax(scale * q k^T + mask)) v; lse = log of the softmax normaliser per row
// (-inf for a row that sees no key: its output is 0).
template <class T>
void attention_forward(const AttentionArgs& a, const T* q, const T* k, const T* v, T* out, T* lse);

// Gradients from the saved out and lse, recomputing score tiles. dq, dk, dv are overwritten.
template <class T>
void attention_backward(const AttentionArgs& a, const T* q, const T* k, const T* v, const T* out, const T* dout,
                        const T* lse, T* dq, T* dk, T* dv);

}  // namespace cpu
}  // namespace kiln
