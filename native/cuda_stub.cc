// The CUDA backend of a build without nvcc: nothing is available, every call says why.
#include "../kernels/cuda/cuda_api.h"

namespace kiln {
namespace cuda {
namespace {
const char* kNotBuilt = "kiln was built without CUDA (nvcc not found or KILN_CUDA=0)";
}
bool compiled() { return false; }
bool available() { return false; }
int device_count() { return 0; }
std::string device_name(int) { return ""; }
void* alloc(size_t, std::string* err) { *err = kNotBuilt; return nullptr; }
void release(void*, size_t) {}
void empty_cache() {}
size_t cached_bytes() { return 0; }
size_t reserved_bytes() { return 0; }
std::string copy_to_device(void*, const void*, size_t) { return kNotBuilt; }
std::string copy_to_host(void*, const void*, size_t) { return kNotBuilt; }
std::string copy_device_to_device(void*, const void*, size_t) { return kNotBuilt; }
std::string synchronize() { return kNotBuilt; }
std::string unary(cpu::UnaryOp, int, const int64_t*, cpu::Operand, cpu::Operand, double, double) { return kNotBuilt; }
std::string binary(cpu::BinaryOp, int, const int64_t*, cpu::Operand, cpu::Operand, cpu::Operand) { return kNotBuilt; }
std::string ternary(cpu::TernaryOp, int, const int64_t*, cpu::Operand, cpu::Operand, cpu::Operand, cpu::Operand) { return kNotBuilt; }
}  // namespace cuda
}  // namespace kiln
