// CUDA sort / gather / scatter-add as seen from native/ (no CUDA headers): kernels/cpu/select.h
// semantics on device pointers. Each returns "" or the CUDA error. CPU-only builds:
// native/cuda_stub_core.cc.
#pragma once
#include <cstdint>
#include <string>

#include "../cpu/elementwise.h"
#include "../cpu/select.h"

namespace kiln {
namespace cuda {

// F32 or F64; n <= 2^31 - 1. The same order as the CPU's sort_rows (a strict total order, so the
// result is unique and equal to the CPU's).
std::string sort_rows(cpu::DType dtype, const void* x, void* values, int32_t* indices, int64_t rows, int64_t n, bool descending);
// elemBytes 2, 4 or 8 (moved as bits). *bad = -1 or the first bad position; waits for the device.
std::string gather_axis(int elemBytes, const void* data, const int32_t* idx, void* dense, const cpu::AxisGeometry& g, int64_t* bad);
// F32 or F64. Deterministic and bit-equal to the CPU: one thread per (outer, inner) position adds its
// contributions in index order, no atomics. Waits for the device (to read *bad).
std::string scatter_add_axis(cpu::DType dtype, void* data, const int32_t* idx, const void* dense, const cpu::AxisGeometry& g,
                             int64_t* bad);

}  // namespace cuda
}  // namespace kiln
