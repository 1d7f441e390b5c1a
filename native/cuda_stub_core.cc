// Core-op, im2col / col2im, sort / gather / scatter-add and optimizer CUDA entry points in a build
// without nvcc (see kernels/cuda/core_api.h): every call says why it cannot run.
#include "../kernels/cuda/conv_api.h"
#include "../kernels/cuda/core_api.h"
#include "../kernels/cuda/select_api.h"

namespace kiln {
namespace cuda {
namespace {
const char* kNotBuilt = "kiln was built without CUDA (nvcc not found or KILN_CUDA=0)";
}
using cpu::DType;
std::string reduce(DType, cpu::ReduceOp, const void*, void*, int64_t, int64_t, int64_t) { return kNotBuilt; }
std::string arg_reduce(DType, bool, const void*, int32_t*, int64_t, int64_t, int64_t) { return kNotBuilt; }
std::string cumsum(DType, const void*, void*, int64_t, int64_t, int64_t, bool) { return kNotBuilt; }
std::string sum_i32(const int32_t*, int32_t*, int64_t, int64_t, int64_t, int64_t*) { return kNotBuilt; }
std::string cumsum_i32(const int32_t*, int32_t*, int64_t, int64_t, int64_t, bool, int64_t*) { return kNotBuilt; }
std::string topk(DType, const void*, void*, int32_t*, int64_t, int64_t, int64_t, bool) { return kNotBuilt; }
std::string softmax(DType, int, const void*, const void*, void*, int64_t, int64_t) { return kNotBuilt; }
std::string cross_entropy_forward(DType, const void*, const int32_t*, void*, void*, int64_t, int64_t, int32_t, double) {
  return kNotBuilt;
}
std::string cross_entropy_backward(DType, const void*, const int32_t*, const void*, const void*, void*, int64_t, int64_t,
                                   int32_t, double) {
  return kNotBuilt;
}
std::string layernorm_forward(DType, const void*, const void*, const void*, void*, void*, void*, int64_t, int64_t, double) {
  return kNotBuilt;
}
std::string layernorm_backward(DType, const void*, const void*, const void*, const void*, const void*, void*, void*, void*,
                               int64_t, int64_t) {
  return kNotBuilt;
}
std::string embedding_forward(DType, const void*, const int32_t*, void*, int64_t, int64_t, int64_t) { return kNotBuilt; }
std::string embedding_backward(DType, const void*, const int32_t*, void*, int64_t, int64_t, int64_t) { return kNotBuilt; }
std::string find_invalid_index(const int32_t*, int64_t, int32_t, int32_t, int32_t, int64_t*, int32_t*) { return kNotBuilt; }
std::string im2col(DType, const void*, void*, const cpu::ConvGeometry&, double) { return kNotBuilt; }
std::string col2im(DType, const void*, void*, const cpu::ConvGeometry&) { return kNotBuilt; }
std::string sort_rows(DType, const void*, void*, int32_t*, int64_t, int64_t, bool) { return kNotBuilt; }
std::string gather_axis(int, const void*, const int32_t*, void*, const cpu::AxisGeometry&, int64_t*) { return kNotBuilt; }
std::string scatter_add_axis(DType, void*, const int32_t*, const void*, const cpu::AxisGeometry&, int64_t*) { return kNotBuilt; }
std::string philox_uniform(DType, void*, int64_t, uint64_t, uint64_t, double, double) { return kNotBuilt; }
std::string philox_normal(DType, void*, int64_t, uint64_t, uint64_t, double, double) { return kNotBuilt; }
std::string philox_randint(int32_t*, int64_t, uint64_t, uint64_t, int32_t, int32_t) { return kNotBuilt; }
std::string adam_step(DType, void*, const void*, void*, void*, int64_t, double, double, double, double, double, double,
                      double, bool) {
  return kNotBuilt;
}
std::string sgd_step(DType, void*, const void*, void*, int64_t, double, double, double, double, bool, bool) {
  return kNotBuilt;
}
std::string sum_squares(DType, const void*, int64_t, double*) { return kNotBuilt; }
std::string scale_inplace(DType, void*, int64_t, double) { return kNotBuilt; }
std::string ema_update(DType, void*, const void*, int64_t, double) { return kNotBuilt; }
}  // namespace cuda
}  // namespace kiln
