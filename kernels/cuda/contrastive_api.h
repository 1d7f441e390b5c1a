// CUDA contrastive kernels as seen from native/ (no CUDA headers). Same semantics as
// kernels/cpu/contrastive.h; pointers are device pointers of dtype `dt` (float32 or float64).
// Each returns "" on success or the CUDA error message. CPU-only builds: native/cuda_stub_contrastive.cc.
#pragma once
#include <cstdint>
#include <string>

#include "../cpu/contrastive.h"
#include "../cpu/elementwise.h"

namespace kiln {
namespace cuda {

std::string nce_forward(cpu::DType dt, const cpu::NceSpec& s, const void* q, const void* k, void* loss, void* lse,
                        void* esim, void* tsim);
std::string nce_backward(cpu::DType dt, const cpu::NceSpec& s, const void* q, const void* k, const void* lse,
                         const void* grow, void* dq, void* dk);
std::string dissl_ce_forward(cpu::DType dt, const void* t, const void* s, void* loss, int64_t n, int64_t c, double tau_t,
                             double tau_s);
std::string dissl_ce_backward(cpu::DType dt, const void* t, const void* s, const void* g, void* dt_out, void* ds_out,
                              int64_t n, int64_t c, double tau_t, double tau_s);
std::string mean_entropy_forward(cpu::DType dt, const void* t, void* pbar, void* h, int64_t n, int64_t c, double tau);
std::string mean_entropy_backward(cpu::DType dt, const void* t, const void* pbar, double g, void* dt_out, int64_t n,
                                  int64_t c, double tau);

}  // namespace cuda
}  // namespace kiln
