// Host side of the Hopper kernels' tensor-memory-access (TMA) loads (gemm_sm90.cu defines these;
// gemm_sm90.cu and attention_sm90.cu use them). Internal to kernels/cuda, compiled with KILN_GEMM_SM90.
#pragma once
#include <cuda.h>  // CUtensorMap: a type only, the driver entry point is fetched at run time
#include <cuda_runtime.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace kiln {
namespace cuda {

constexpr int kTmaBox = 64;  // box edge in elements: 64 rows of 128 bytes, the 128-byte swizzle's width

// Whether the driver offers cuTensorMapEncodeTiled (fetched once through the runtime, no libcuda link).
bool tma_available();

// A float16/bfloat16 matrix stack as a 3-d tensor map of 64 x 64-element boxes with the 128-byte
// swizzle: `inner` contiguous elements per row, `outer` rows `ld` elements apart, `batch` matrices
// `stride` elements apart (one matrix when batch == 1 or stride == 0). Reads outside the tensor are
// zero-filled. False when the driver refuses the layout (alignment, strides) or has no entry point.
bool tma_encode_box64(CUtensorMap& map, bool bf16, const void* ptr, int64_t inner, int64_t outer, int64_t ld, int64_t batch,
                      int64_t stride);

// A contiguous float32 [batch, rows, cols] stack as a 3-d tensor map of 32-column x `boxRows`-row boxes
// (128-byte rows) with the 128-byte swizzle: the Hopper attention backward's dQ accumulator, which
// the TMA unit adds into (cp.reduce.async.bulk.tensor). Writes outside the tensor are dropped.
bool tma_encode_f32_rows(CUtensorMap& map, float* ptr, int64_t cols, int64_t rows, int64_t batch, uint32_t boxRows);

// A contiguous [batch, rows, cols] stack (cols elements a row) as such a map.
inline bool tma_encode_rows(CUtensorMap& map, bool bf16, const void* ptr, int64_t cols, int64_t rows, int64_t batch) {
  return tma_encode_box64(map, bf16, ptr, cols, rows, cols, batch, rows * cols);
}

// Whether `Kernel` (a *_sm90.cu kernel) can launch here with `smem` bytes of dynamic shared memory:
// the device has an sm_90a image of it and the shared-memory opt-in is set. Decided once per kernel
// (a CUDA error on the way is cleared and reads as "no": the caller falls back to portable kernels).
template <auto Kernel>
bool sm90_kernel_ready(size_t smem) {
  static std::atomic<int> ready{0};  // 1: ready; -1: no usable image
  int state = ready.load(std::memory_order_acquire);
  if (state == 0) {
    cudaFuncAttributes attr;
    cudaError_t e = cudaFuncGetAttributes(&attr, Kernel);  // fails when there is no sm_90a image for the device
    if (e == cudaSuccess) e = cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    if (e != cudaSuccess) cudaGetLastError();
    state = e == cudaSuccess ? 1 : -1;
    ready.store(state, std::memory_order_release);
  }
  return state > 0;
}

}  // namespace cuda
}  // namespace kiln
