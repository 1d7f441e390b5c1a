// The CUDA backend as seen from native/: plain C++ declarations, no CUDA headers, so the glue
// compiles the same with and without nvcc. Without a CUDA build, native/cuda_stub.cc defines
// these (available() is false). Errors are returned as messages, never thrown across the boundary.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "../cpu/elementwise.h"

namespace kiln {
namespace cuda {

bool compiled();                 // true when the addon was built with CUDA kernels
bool available();                // compiled and at least one usable device
int device_count();
std::string device_name(int device);
// Caching device allocator: returns nullptr and sets *err on failure.
void* alloc(size_t bytes, std::string* err);
void release(void* ptr, size_t bytes);
void empty_cache();
size_t cached_bytes();
size_t reserved_bytes();
// Copies; each returns "" on success or the CUDA error message.
std::string copy_to_device(void* dst, const void* src, size_t bytes);
std::string copy_to_host(void* dst, const void* src, size_t bytes);
std::string copy_device_to_device(void* dst, const void* src, size_t bytes);
std::string synchronize();
// Elementwise kernels with the CPU semantics of kernels/cpu/elementwise.h.
std::string unary(cpu::UnaryOp op, int ndim, const int64_t* shape, cpu::Operand out, cpu::Operand in, double p0, double p1);
std::string binary(cpu::BinaryOp op, int ndim, const int64_t* shape, cpu::Operand out, cpu::Operand a, cpu::Operand b);
std::string ternary(cpu::TernaryOp op, int ndim, const int64_t* shape, cpu::Operand out, cpu::Operand c, cpu::Operand a, cpu::Operand b);

}  // namespace cuda
}  // namespace kiln
