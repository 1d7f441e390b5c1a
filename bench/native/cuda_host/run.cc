// Runs kiln's tensor-core kernels — the source of kernels/cuda/gemm_sm90.cu, gemm.cu, attention_{fwd,bwd}_sm90.cu,
// attention_fa2.cu, attention.cu, contrastive.cu and diffusion.cu, host code included — on the host model of model.cc,
// and checks the results against float64 references; softmax.cu and reduce.cu against their CPU twins (kernels/cpu). gemm_sm90 and the fa2 attention kernels passed on an H100
// (bench/results/h100-2026-11-26-s4): the model must reproduce them, or the model is wrong. The
// Hopper attention kernels have never run on a GPU; their backward runs inside fa2's real frame
// (D_i, the dQ accumulator and its conversion: three more kernels).
//
//   bash scripts/build-cuda-host.sh && build/cuda_host/run [--quick] [--seed N] [--only gemm|gemm.cu|fwd|bwd|fa2|dispatch|nce|diffusion|rows|reduce[,...]]
//
// Exit status 1 when a case fails (a wrong result, or a finding of the model: deadlock, operand
// changed in flight, misaligned copy, ...).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "attention.h"  // kernels/cpu: the CPU attention, the dispatch section's reference
#include "attention_api.h"
#include "attention_fa2.h"
#include "cuda_api.h"  // alloc, release (defined below)
#include "attention_sm90.h"
#include "contrastive_api.h"
#include "diffusion.h"  // kernels/cpu: the CPU diffusion kernels, diffusion.cu's twins
#include "diffusion_api.h"
#include "core_api.h"  // softmax.cu, reduce.cu
#include "kernels.h"  // kernels/cpu: softmax.cc, crossentropy.cc and reduce.cc, softmax.cu's and reduce.cu's twins
#include "gemm_api.h"
#include "gemm_sm90.h"
#include "kiln_host_cuda.h"
#include "model.h"

using kiln::cuda::AttnDType;
using kiln::cuda::GemmType;

namespace {

using Half = std::vector<uint16_t>;

float to_float(uint16_t h, bool bf16) { return bf16 ? __bfloat162float(__nv_bfloat16{h}) : __half2float(__half{h}); }
uint16_t to_half(float f, bool bf16) { return bf16 ? __float2bfloat16_rn(f).x : __float2half_rn(f).x; }

Half random_half(size_t n, bool bf16, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  Half h(n);
  for (auto& x : h) x = to_half(u(rng), bf16);
  return h;
}

// 64-byte aligned storage (the kernels' operands and the TMA unit need 16) with 256 guard bytes after
// the n elements: intact() says whether a kernel stored past the end.
template <class T>
struct Buf {
  static constexpr size_t kGuard = 256;
  T* p = nullptr;
  size_t n;
  std::vector<unsigned char> raw;
  explicit Buf(size_t count, T fill = T()) : n(count), raw(count * sizeof(T) + kGuard + 64) {
    uintptr_t a = (reinterpret_cast<uintptr_t>(raw.data()) + 63) & ~uintptr_t(63);
    p = reinterpret_cast<T*>(a);
    for (size_t i = 0; i < n; ++i) p[i] = fill;
    std::memset(reinterpret_cast<unsigned char*>(p + n), 0xA5, kGuard);
  }
  bool intact() const {
    const unsigned char* g = reinterpret_cast<const unsigned char*>(p + n);
    for (size_t i = 0; i < kGuard; ++i)
      if (g[i] != 0xA5) return false;
    return true;
  }
};

// A store past the end of an output is a failure.
bool guarded(const char* what, bool intact, std::string& report) {
  if (!intact) report += std::string(" ") + what + ": stored past the end";
  return intact;
}

int g_failed = 0, g_cases = 0;

// |x - ref| against tol * (max |ref| over the finite references, at least 1e-3) + tol * |ref| elementwise; a
// non-finite reference (the lse of a row that sees no key) must be matched exactly.
bool compare(const char* what, const std::vector<double>& ref, const std::vector<double>& got, double tol, std::string& report) {
  double mref = 0, worst = 0;
  size_t bad = 0, firstBad = 0;
  for (double r : ref)
    if (std::isfinite(r)) mref = std::fmax(mref, std::fabs(r));
  // A tensor that is 0 in exact arithmetic (dQ, dK with one key: dS = P (dP - D_i) = 0) comes out as
  // rounding noise: the scale is at least 1e-3 (inputs and gradients here are of order 1).
  mref = std::fmax(mref, 1e-3);
  for (size_t i = 0; i < ref.size(); ++i) {
    const bool finite = std::isfinite(ref[i]);
    const double e = finite ? std::fabs(got[i] - ref[i]) : (got[i] == ref[i] ? 0.0 : INFINITY);
    const bool ok = e <= tol * mref + tol * std::fabs(finite ? ref[i] : 0.0);  // NaN fails
    if (!ok) {
      if (!bad) firstBad = i;
      ++bad;
    }
    if (!(e <= worst) && finite) worst = e;
  }
  char buf[240];
  if (bad)
    std::snprintf(buf, sizeof buf, " %s: %zu of %zu bad (first at %zu: %.6g vs %.6g; max err %.3g, max |ref| %.3g)", what, bad, ref.size(),
                  firstBad, got[firstBad], ref[firstBad], worst, mref);
  else
    std::snprintf(buf, sizeof buf, " %s %.2g", what, mref > 0 ? worst / mref : worst);
  report += buf;
  return bad == 0;
}

void finish(const std::string& name, bool ok, const std::string& report) {
  std::vector<std::string> f = kiln_host::take_failures();
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) ok = false;
  ++g_cases;
  if (!f.empty()) ok = false;
  if (!ok) ++g_failed;
  std::printf("%s %s:%s\n", ok ? "PASS" : "FAIL", name.c_str(), report.c_str());
  for (const std::string& s : f) std::printf("    model: %s\n", s.c_str());
  if (e != cudaSuccess) std::printf("    CUDA error: %s\n", cudaGetErrorName(e));
  std::fflush(stdout);
}

// ------------------------------------------------------------------ gemm_sm90 (validates the model)

struct GemmCase {
  int64_t batch, M, N, K;
  bool transA, transB, bf16, outF32;
  double alpha, beta;
};

void run_gemm(const GemmCase& g, std::mt19937_64& rng) {
  const bool bf = g.bf16;
  const int64_t rowsA = g.transA ? g.K : g.M, colsA = g.transA ? g.M : g.K;
  const int64_t rowsB = g.transB ? g.N : g.K, colsB = g.transB ? g.K : g.N;
  const int64_t lda = (colsA + 7) / 8 * 8 + 8, ldb = (colsB + 7) / 8 * 8 + 8, ldc = g.N + 2;  // padded rows (TMA: 16-byte multiples)
  const int64_t sA = rowsA * lda, sB = rowsB * ldb, sC = g.M * ldc;
  Half a = random_half(size_t(g.batch * sA), bf, rng), b = random_half(size_t(g.batch * sB), bf, rng);
  Buf<uint16_t> A(a.size()), B(b.size());
  std::memcpy(A.p, a.data(), a.size() * 2);
  std::memcpy(B.p, b.data(), b.size() * 2);
  const size_t nC = size_t(g.batch * sC);
  Buf<float> Cf(nC, 0.5f);
  Buf<uint16_t> Ch(nC, to_half(0.5f, bf));
  kiln::cuda::GemmArgs args;
  args.batch = g.batch;
  args.M = g.M;
  args.N = g.N;
  args.K = g.K;
  args.transA = g.transA;
  args.transB = g.transB;
  args.alpha = g.alpha;
  args.beta = g.beta;
  args.A = A.p;
  args.lda = lda;
  args.strideA = sA;
  args.B = B.p;
  args.ldb = ldb;
  args.strideB = sB;
  args.C = g.outF32 ? static_cast<void*>(Cf.p) : static_cast<void*>(Ch.p);
  args.ldc = ldc;
  args.strideC = sC;
  bool handled = false;
  const std::string err = kiln::cuda::gemm_sm90(bf ? GemmType::BF16 : GemmType::F16, g.outF32 ? GemmType::F32 : (bf ? GemmType::BF16 : GemmType::F16),
                                                args, handled);
  std::vector<double> ref, got;
  for (int64_t z = 0; z < g.batch; ++z)
    for (int64_t m = 0; m < g.M; ++m)
      for (int64_t n = 0; n < g.N; ++n) {
        double s = 0;
        for (int64_t k = 0; k < g.K; ++k) {
          const double x = to_float(a[size_t(z * sA + (g.transA ? k * lda + m : m * lda + k))], bf);
          const double y = to_float(b[size_t(z * sB + (g.transB ? n * ldb + k : k * ldb + n))], bf);
          s += x * y;
        }
        const size_t ci = size_t(z * sC + m * ldc + n);
        const double c0 = g.outF32 ? 0.5 : to_float(to_half(0.5f, bf), bf);
        ref.push_back(g.alpha * s + g.beta * c0);
        got.push_back(g.outF32 ? double(Cf.p[ci]) : double(to_float(Ch.p[ci], bf)));
      }
  // The padding columns of C (ldc = N + 2) keep their 0.5.
  bool padOk = true;
  for (int64_t z = 0; z < g.batch; ++z)
    for (int64_t m = 0; m < g.M; ++m)
      for (int64_t n = g.N; n < ldc; ++n) {
        const size_t ci = size_t(z * sC + m * ldc + n);
        padOk = padOk && (g.outF32 ? Cf.p[ci] == 0.5f : Ch.p[ci] == to_half(0.5f, bf));
      }
  char name[160];
  std::snprintf(name, sizeof name, "gemm %s %s%s b%lld %lldx%lldx%lld -> %s", bf ? "bf16" : "f16", g.transA ? "At" : "A", g.transB ? "Bt" : "B",
                (long long)g.batch, (long long)g.M, (long long)g.N, (long long)g.K, g.outF32 ? "f32" : "half");
  std::string report;
  bool ok = handled && err.empty();
  if (!handled) report += " not handled";
  if (!err.empty()) report += " error: " + err;
  // float32 out: the model sums in float64, the tensor cores in float32 (K <= 300 here).
  ok = compare("C", ref, got, g.outF32 ? 2e-6 : (bf ? 8e-3 : 1e-3), report) && ok;
  if (!padOk) report += " C: padding columns stored";
  ok = padOk && guarded("C", g.outF32 ? Cf.intact() : Ch.intact(), report) && ok;
  finish(name, ok, report);
}

// ------------------------------------------------------------------ gemm.cu (mma.sync: validated on an H100 before split-K)
// kernels/cuda/gemm.cu's dispatch: bf16 / f16 (half or float32 out), float32 as 3xTF32 (highest) or one
// TF32 pass (high), float64; every transpose layout, batches, alpha and beta, ragged edges, leading
// dimensions that rule out 16-byte copies, and split-K (few output tiles, a long K; its last slice
// shorter) with its workspace from the allocator and its reduction kernel.
struct TcCase {
  GemmType ab, c;
  kiln::cuda::MatmulPrecision prec;
  int64_t batch, M, N, K;
  bool transA, transB;
  double alpha, beta;
  int64_t pad;  // extra elements per row of A and B (odd: no 16-byte copies)
};

double elem_get(GemmType t, const unsigned char* p, size_t i) {
  switch (t) {
    case GemmType::F32: { float f; std::memcpy(&f, p + 4 * i, 4); return f; }
    case GemmType::F64: { double d; std::memcpy(&d, p + 8 * i, 8); return d; }
    default: { uint16_t h; std::memcpy(&h, p + 2 * i, 2); return to_float(h, t == GemmType::BF16); }
  }
}
void elem_set(GemmType t, unsigned char* p, size_t i, double v) {
  switch (t) {
    case GemmType::F32: { const float f = float(v); std::memcpy(p + 4 * i, &f, 4); break; }
    case GemmType::F64: std::memcpy(p + 8 * i, &v, 8); break;
    default: { const uint16_t h = to_half(float(v), t == GemmType::BF16); std::memcpy(p + 2 * i, &h, 2); }
  }
}
size_t elem_bytes(GemmType t) { return t == GemmType::F64 ? 8 : t == GemmType::F32 ? 4 : 2; }

void run_gemm_tc(const TcCase& g, std::mt19937_64& rng) {
  const int64_t rowsA = g.transA ? g.K : g.M, colsA = g.transA ? g.M : g.K;
  const int64_t rowsB = g.transB ? g.N : g.K, colsB = g.transB ? g.K : g.N;
  const int64_t lda = colsA + g.pad, ldb = colsB + g.pad, ldc = g.N + 3;
  const int64_t sA = rowsA * lda, sB = rowsB * ldb, sC = g.M * ldc;
  const size_t ea = elem_bytes(g.ab), ec = elem_bytes(g.c);
  Buf<unsigned char> A(size_t(g.batch * sA) * ea), B(size_t(g.batch * sB) * ea), C(size_t(g.batch * sC) * ec);
  std::normal_distribution<double> nd(0.0, 1.0);
  for (size_t i = 0; i < size_t(g.batch * sA); ++i) elem_set(g.ab, A.p, i, nd(rng));
  for (size_t i = 0; i < size_t(g.batch * sB); ++i) elem_set(g.ab, B.p, i, nd(rng));
  for (size_t i = 0; i < size_t(g.batch * sC); ++i) elem_set(g.c, C.p, i, 0.5);
  const double c0 = elem_get(g.c, C.p, 0);
  kiln::cuda::GemmArgs args;
  args.batch = g.batch, args.M = g.M, args.N = g.N, args.K = g.K, args.transA = g.transA, args.transB = g.transB;
  args.alpha = g.alpha, args.beta = g.beta;
  args.A = A.p, args.lda = lda, args.strideA = sA, args.B = B.p, args.ldb = ldb, args.strideB = sB;
  args.C = C.p, args.ldc = ldc, args.strideC = sC;
  const std::string err = kiln::cuda::gemm(g.ab, g.c, g.prec, args);
  std::vector<double> ref, got;
  bool padOk = true;
  for (int64_t z = 0; z < g.batch; ++z)
    for (int64_t m = 0; m < g.M; ++m) {
      for (int64_t n = 0; n < g.N; ++n) {
        double s = 0;
        for (int64_t k = 0; k < g.K; ++k)
          s += elem_get(g.ab, A.p, size_t(z * sA + (g.transA ? k * lda + m : m * lda + k))) *
               elem_get(g.ab, B.p, size_t(z * sB + (g.transB ? n * ldb + k : k * ldb + n)));
        ref.push_back(g.alpha * s + g.beta * c0);
        got.push_back(elem_get(g.c, C.p, size_t(z * sC + m * ldc + n)));
      }
      for (int64_t n = g.N; n < ldc; ++n) padOk = padOk && elem_get(g.c, C.p, size_t(z * sC + m * ldc + n)) == c0;
    }
  const bool f32 = g.ab == GemmType::F32, high = g.prec == kiln::cuda::MatmulPrecision::High;
  const double tol = g.ab == GemmType::F64 ? 1e-13
                     : f32                 ? (high ? 3e-3 : 1e-5)
                     : g.c == GemmType::F32 ? 2e-5
                     : g.c == GemmType::BF16 ? 8e-3
                                             : 1e-3;
  static const std::map<GemmType, const char*> names = {{GemmType::F32, "f32"}, {GemmType::F64, "f64"}, {GemmType::F16, "f16"}, {GemmType::BF16, "bf16"}};
  char name[200];
  std::snprintf(name, sizeof name, "gemm.cu %s%s -> %s %s%s b%lld %lldx%lldx%lld pad %lld alpha %g beta %g", names.at(g.ab),
                f32 ? (high ? " tf32" : " 3xtf32") : "", names.at(g.c), g.transA ? "At" : "A", g.transB ? "Bt" : "B", (long long)g.batch,
                (long long)g.M, (long long)g.N, (long long)g.K, (long long)g.pad, g.alpha, g.beta);
  std::string report;
  bool ok = err.empty();
  if (!ok) report += " error: " + err;
  ok = compare("C", ref, got, tol, report) && ok;
  if (!padOk) report += " C: padding columns stored";
  ok = padOk && guarded("operands and C", A.intact() && B.intact() && C.intact(), report) && ok;
  finish(name, ok, report);
}

// ------------------------------------------------------------------ attention

struct AttnCase {
  int64_t B, H, Tq, Tk, D;
  bool causal, bf16;
  int schedule;  // forward: 1 one tile at a time, 2 pipelined, 3 pipelined + pingpong, 4 (D 64) pipelined on 192-row blocks
                 // (three consumers); backward: 1 dQ by columns (D 128), 2 by
                 // keys, both with dV / dK's A from registers (D 128 by keys: shared memory), 3 dQ by columns (D 128) with
                 // dV / dK's A from shared memory, 4 dQ by columns (D 128) issued first, dV / dK's A from registers,
                 // 5 (D 64) dQ issued first and summed over the consumers in shared memory, dV / dK's A from shared memory,
                 // 6 / 7 dQ issued first and added by the TMA unit's bulk reduction, dV / dK's A from registers / shared memory,
                 // 8 (D 64) 128-row query blocks, dQ by query rows, issued first and added by the bulk reduction, A from registers
  std::vector<int32_t> keyLens = {};  // [B] or empty (fa2 only)
  int64_t groupBlocks = 0;  // > 0: sm90 fwd / bwd with the grouped block order, groups of this many blocks
  int64_t persistBlocks = 0;  // > 0: the sm90 backward launched persistent with this many blocks
};

struct Reference {
  std::vector<double> out, lse, dq, dk, dv;
};

// The attention arguments of a case (AttnCase, DispatchCase).
template <class C>
kiln::cpu::AttentionArgs attention_args(const C& c, double scale) {
  kiln::cpu::AttentionArgs a;
  a.B = c.B;
  a.H = c.H;
  a.Tq = c.Tq;
  a.Tk = c.Tk;
  a.D = c.D;
  a.scale = scale;
  a.causal = c.causal;
  return a;
}

// A forward + backward's five results against the reference's (lse to 1e-5, the rest to tol), and
// whether every output's guard bytes are intact.
bool compare_all(const Reference& ref, const Reference& got, double tol, bool intact, std::string& report) {
  bool ok = compare("out", ref.out, got.out, tol, report);
  ok = compare("lse", ref.lse, got.lse, 1e-5, report) && ok;
  ok = compare("dq", ref.dq, got.dq, tol, report) && ok;
  ok = compare("dk", ref.dk, got.dk, tol, report) && ok;
  ok = compare("dv", ref.dv, got.dv, tol, report) && ok;
  return guarded("outputs", intact, report) && ok;
}

// float64 attention on the rounded inputs (bottom-right causal mask), forward and backward.
Reference reference(const AttnCase& c, const Half& q, const Half& k, const Half& v, const Half& dout, double scale) {
  const bool bf = c.bf16;
  const int64_t BH = c.B * c.H, Tq = c.Tq, Tk = c.Tk, D = c.D;
  Reference r;
  r.out.assign(size_t(BH * Tq * D), 0);
  r.lse.assign(size_t(BH * Tq), 0);
  r.dq.assign(size_t(BH * Tq * D), 0);
  r.dk.assign(size_t(BH * Tk * D), 0);
  r.dv.assign(size_t(BH * Tk * D), 0);
  std::vector<double> P(static_cast<size_t>(Tk)), dP(static_cast<size_t>(Tk));
  auto at = [&](const Half& x, int64_t bh, int64_t t, int64_t T, int64_t d) { return double(to_float(x[size_t((bh * T + t) * D + d)], bf)); };
  for (int64_t bh = 0; bh < BH; ++bh)
    for (int64_t i = 0; i < Tq; ++i) {
      int64_t last = c.causal ? i + Tk - Tq : Tk - 1;  // keys 0..last
      if (!c.keyLens.empty()) last = std::min<int64_t>(last, int64_t(c.keyLens[size_t(bh / c.H)]) - 1);
      double mx = -INFINITY;
      for (int64_t j = 0; j < Tk; ++j) {
        if (j > last) {
          P[size_t(j)] = -INFINITY;
          continue;
        }
        double s = 0;
        for (int64_t d = 0; d < D; ++d) s += at(q, bh, i, Tq, d) * at(k, bh, j, Tk, d);
        P[size_t(j)] = s * scale;
        mx = std::fmax(mx, P[size_t(j)]);
      }
      if (last < 0) {
        r.lse[size_t(bh * Tq + i)] = -INFINITY;
        continue;  // out, dq stay 0
      }
      double sum = 0;
      for (int64_t j = 0; j <= last && j < Tk; ++j) sum += std::exp(P[size_t(j)] - mx);
      r.lse[size_t(bh * Tq + i)] = mx + std::log(sum);
      for (int64_t j = 0; j < Tk; ++j) P[size_t(j)] = j <= last ? std::exp(P[size_t(j)] - mx) / sum : 0;
      double Di = 0;
      for (int64_t d = 0; d < D; ++d) {
        double o = 0;
        for (int64_t j = 0; j < Tk; ++j) o += P[size_t(j)] * at(v, bh, j, Tk, d);
        r.out[size_t((bh * Tq + i) * D + d)] = o;
        Di += o * at(dout, bh, i, Tq, d);
      }
      for (int64_t j = 0; j < Tk; ++j) {
        double s = 0;
        for (int64_t d = 0; d < D; ++d) s += at(dout, bh, i, Tq, d) * at(v, bh, j, Tk, d);
        dP[size_t(j)] = P[size_t(j)] * (s - Di);  // dS
      }
      for (int64_t j = 0; j < Tk; ++j) {
        if (P[size_t(j)] == 0) continue;
        for (int64_t d = 0; d < D; ++d) {
          r.dq[size_t((bh * Tq + i) * D + d)] += scale * dP[size_t(j)] * at(k, bh, j, Tk, d);
          r.dk[size_t((bh * Tk + j) * D + d)] += scale * dP[size_t(j)] * at(q, bh, i, Tq, d);
          r.dv[size_t((bh * Tk + j) * D + d)] += P[size_t(j)] * at(dout, bh, i, Tq, d);
        }
      }
    }
  return r;
}

std::string attn_name(const std::string& dir, const AttnCase& c) {
  char name[200];
  const std::string sched = dir == "fa2" ? (c.keyLens.empty() ? "" : "key-lengths")
                            : dir == "fwd" ? (c.schedule == 4 ? "M192 pipelined" : c.schedule == 3 ? "pingpong" : c.schedule == 2 ? "pipelined" : "one-tile")
                            : c.schedule == 8 ? "M128 dQ-by-rows A-regs dQ-first dQ-bulk"
                                           : std::string(c.D == 64 || c.schedule == 2 ? "dQ-by-keys" : "dQ-by-columns") +
                                                 (c.schedule == 3 || (c.D == 128 && c.schedule == 2) ? " A-smem"
                                                  : c.schedule == 4                                  ? " A-regs dQ-first"
                                                  : c.schedule == 5                                  ? " A-smem dQ-first dQ-summed"
                                                  : c.schedule == 6                                  ? " A-regs dQ-first dQ-bulk"
                                                  : c.schedule == 7                                  ? " A-smem dQ-first dQ-bulk"
                                                                                                     : " A-regs");
  std::snprintf(name, sizeof name, "%s %s D%lld B%lld H%lld Tq%lld Tk%lld %s %s%s", dir.c_str(), c.bf16 ? "bf16" : "f16", (long long)c.D,
                (long long)c.B, (long long)c.H, (long long)c.Tq, (long long)c.Tk, c.causal ? "causal" : "full", sched.c_str(),
                ((c.groupBlocks > 0 ? " grouped-" + std::to_string(c.groupBlocks) : std::string()) +
                 (c.persistBlocks > 0 ? " persistent-" + std::to_string(c.persistBlocks) : std::string())).c_str());
  return name;
}

std::vector<double> widen(const uint16_t* p, size_t n, bool bf) {
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = to_float(p[i], bf);
  return out;
}

// fwd / bwd: the Hopper kernels' forward / backward; fa2: both fa2 kernels (forward, then the
// backward from the kernel's own out and lse).
void run_attention(const AttnCase& c, const std::string& dir, std::mt19937_64& rng) {
  const bool fwd = dir == "fwd", fa2 = dir == "fa2";
  const bool bf = c.bf16;
  const int64_t BH = c.B * c.H;
  const size_t nq = size_t(BH * c.Tq * c.D), nk = size_t(BH * c.Tk * c.D);
  Half q = random_half(nq, bf, rng), k = random_half(nk, bf, rng), v = random_half(nk, bf, rng), dout = random_half(nq, bf, rng);
  const double scale = 1.0 / std::sqrt(double(c.D)) * 1.7;  // sharper than the default: larger probabilities
  const Reference r = reference(c, q, k, v, dout, scale);
  kiln::cpu::AttentionArgs a = attention_args(c, scale);
  Buf<int32_t> lens(size_t(c.B));
  if (!c.keyLens.empty()) {
    std::memcpy(lens.p, c.keyLens.data(), c.keyLens.size() * 4);
    a.keyLens = lens.p;
  }
  const AttnDType dt = bf ? AttnDType::BF16 : AttnDType::F16;
  Buf<uint16_t> Q(nq), K(nk), V(nk), O(nq), dO(nq), dQ(nq, 0xFFFF), dK(nk, 0xFFFF), dV(nk, 0xFFFF);
  Buf<float> L(size_t(BH * c.Tq), NAN);
  std::memcpy(Q.p, q.data(), nq * 2);
  std::memcpy(K.p, k.data(), nk * 2);
  std::memcpy(V.p, v.data(), nk * 2);
  std::memcpy(dO.p, dout.data(), nq * 2);
  std::string report, err;
  bool handled = false, ok = true;
  const double tol = bf ? 2e-2 : 4e-3;
  if (fa2) {
    for (size_t i = 0; i < nq; ++i) O.p[i] = 0xFFFF;
    handled = true;
    err = kiln::cuda::fa2_attention_forward(dt, a, Q.p, K.p, V.p, O.p, L.p);
    if (err.empty()) err = kiln::cuda::fa2_attention_backward(dt, a, Q.p, K.p, V.p, O.p, dO.p, L.p, dQ.p, dK.p, dV.p);
    const Reference got{widen(O.p, nq, bf), std::vector<double>(L.p, L.p + size_t(BH * c.Tq)), widen(dQ.p, nq, bf),
                        widen(dK.p, nk, bf), widen(dV.p, nk, bf)};
    ok = compare_all(r, got, tol, O.intact() && L.intact() && dQ.intact() && dK.intact() && dV.intact(), report) && err.empty();
  } else if (fwd) {
    for (size_t i = 0; i < nq; ++i) O.p[i] = 0xFFFF;
    kiln::cuda::sm90_attention_set_fwd_pipeline(c.schedule);
    kiln::cuda::sm90_attention_set_order(c.groupBlocks > 0 ? 2 : 1, c.groupBlocks);
    kiln::cuda::sm90_attention_set_persistent(c.persistBlocks > 0 ? 2 : 1, c.persistBlocks);
    err = kiln::cuda::sm90_attention_forward(dt, a, Q.p, K.p, V.p, O.p, L.p, handled);
    ok = handled && err.empty();
    ok = compare("out", r.out, widen(O.p, nq, bf), tol, report) && ok;
    ok = compare("lse", r.lse, std::vector<double>(L.p, L.p + size_t(BH * c.Tq)), 1e-5, report) && ok;
    ok = guarded("out", O.intact(), report) && guarded("lse", L.intact(), report) && ok;
  } else {
    for (size_t i = 0; i < nq; ++i) O.p[i] = to_half(float(r.out[i]), bf);
    for (size_t i = 0; i < size_t(BH * c.Tq); ++i) L.p[i] = float(r.lse[i]);
    kiln::cuda::sm90_attention_set_dq_split(c.schedule == 2 ? 2 : 1);
    kiln::cuda::sm90_attention_set_order(c.groupBlocks > 0 ? 2 : 1, c.groupBlocks);
    kiln::cuda::sm90_attention_set_persistent(c.persistBlocks > 0 ? 2 : 1, c.persistBlocks);
    kiln::cuda::sm90_attention_set_bwd_operands(c.schedule >= 3 ? c.schedule - 1 : 1);  // 3 ... 8: modes 2 ... 7
    err = kiln::cuda::sm90_attention_backward(dt, a, Q.p, K.p, V.p, O.p, dO.p, L.p, dQ.p, dK.p, dV.p, handled);
    ok = handled && err.empty();
    ok = compare("dq", r.dq, widen(dQ.p, nq, bf), tol, report) && ok;
    ok = compare("dk", r.dk, widen(dK.p, nk, bf), tol, report) && ok;
    ok = compare("dv", r.dv, widen(dV.p, nk, bf), tol, report) && ok;
    ok = guarded("dq", dQ.intact(), report) && guarded("dk", dK.intact(), report) && guarded("dv", dV.intact(), report) && ok;
  }
  if (!handled) report += " not handled";
  if (!err.empty()) report += " error: " + err;
  finish(attn_name(dir, c), ok, report);
}

// attention.cu's dispatch (attention_forward / attention_backward; the Hopper kernels first, as on an H100):
// the Hopper kernels where they take the call, else fa2, else the basic kernels (float32, key masks,
// dropout), forward and then backward from the kernel's own out and lse, against the CPU attention
// (kernels/cpu/attention.cc, tested against PyTorch) in float64 on the same rounded inputs, dropout
// mask included (the same Philox stream on both).
struct DispatchCase {
  AttnDType dt;
  int64_t B, H, Tq, Tk, D;
  bool causal;
  int opt;  // 0 none, 1 key lengths, 2 key mask, 3 dropout
  const char* path;  // the kernels expected to take it (for the name)
  bool f32fa2 = false;  // float32 through fa2 (KILN_ATTENTION_F32=fa2's switch) on
  int smemOptin = 0;    // > 0: the device's shared memory per block (the model's option) for this case
};

void run_dispatch(const DispatchCase& c, std::mt19937_64& rng) {
  const bool f32 = c.dt == AttnDType::F32, bf = c.dt == AttnDType::BF16;
  const size_t es = f32 ? 4 : 2;
  const int64_t BH = c.B * c.H;
  const size_t nq = size_t(BH * c.Tq * c.D), nk = size_t(BH * c.Tk * c.D);
  // Inputs rounded to the element type, kept as float64 for the reference.
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  auto make = [&](size_t n, Buf<unsigned char>& dev, std::vector<double>& ref) {
    ref.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const float x = u(rng);
      if (f32) {
        std::memcpy(dev.p + 4 * i, &x, 4);
        ref[i] = x;
      } else {
        const uint16_t h = to_half(x, bf);
        std::memcpy(dev.p + 2 * i, &h, 2);
        ref[i] = to_float(h, bf);
      }
    }
  };
  auto widen_any = [&](const Buf<unsigned char>& dev, size_t n) {
    if (!f32) return widen(reinterpret_cast<const uint16_t*>(dev.p), n, bf);
    std::vector<double> out(n);
    for (size_t i = 0; i < n; ++i) {
      float x;
      std::memcpy(&x, dev.p + 4 * i, 4);
      out[i] = x;
    }
    return out;
  };
  Buf<unsigned char> Q(nq * es), K(nk * es), V(nk * es), dO(nq * es), O(nq * es, 0xFF), dQ(nq * es, 0xFF), dK(nk * es, 0xFF),
      dV(nk * es, 0xFF);
  std::vector<double> q, k, v, g;
  make(nq, Q, q);
  make(nk, K, k);
  make(nk, V, v);
  make(nq, dO, g);
  Buf<float> L(size_t(BH * c.Tq), NAN);
  kiln::cpu::AttentionArgs a = attention_args(c, 1.0 / std::sqrt(double(c.D)) * 1.7);
  Buf<int32_t> lens(size_t(c.B)), mask(size_t(c.B * c.Tk));
  if (c.opt == 1) {
    for (int64_t b = 0; b < c.B; ++b) lens.p[b] = int32_t(b == 0 ? c.Tk / 2 + 3 : 0);  // a short one and an empty one
    a.keyLens = lens.p;
  } else if (c.opt == 2) {
    for (int64_t i = 0; i < c.B * c.Tk; ++i) mask.p[i] = (rng() % 3) != 0;
    for (int64_t j = 0; j < c.Tk; ++j) mask.p[j] = 0;  // batch 0 sees no key at all
    a.keyMask = mask.p;
    // The hidden keys' K and V rows become NaN / Inf (the reference keeps the clean values, which it
    // never reads): nothing of them may reach an output or a gradient.
    const uint16_t nanBits = bf ? 0x7FC0 : 0x7E00, infBits = bf ? 0x7F80 : 0x7C00;
    for (int64_t bh = 0; bh < BH; ++bh)
      for (int64_t j = 0; j < c.Tk; ++j)
        if (mask.p[(bh / c.H) * c.Tk + j] == 0)
          for (int64_t d = 0; d < c.D; ++d) {
            const size_t i = size_t((bh * c.Tk + j) * c.D + d);
            if (f32) {
              const float kx = NAN, vx = d % 2 ? INFINITY : -INFINITY;
              std::memcpy(K.p + 4 * i, &kx, 4);
              std::memcpy(V.p + 4 * i, &vx, 4);
            } else {
              std::memcpy(K.p + 2 * i, &nanBits, 2);
              std::memcpy(V.p + 2 * i, d % 2 ? &infBits : &nanBits, 2);
            }
          }
  } else if (c.opt == 3) {
    a.dropout = 0.2;
    a.seed = 1234;
    a.offset = 77;
  }
  std::string report;
  kiln::cuda::fa2_attention_set_f32(c.f32fa2 ? 2 : 1);
  const kiln_host::Stats before = kiln_host::stats();
  std::string err = kiln::cuda::attention_forward(c.dt, a, Q.p, K.p, V.p, O.p, L.p);
  if (err.empty()) err = kiln::cuda::attention_backward(c.dt, a, Q.p, K.p, V.p, O.p, dO.p, L.p, dQ.p, dK.p, dV.p);
  bool ok = err.empty();
  if (!ok) report += " error: " + err;
  // The path taken, from the instructions it ran: wgmma (sm90), mma.sync only (fa2), neither (basic).
  const bool wg = kiln_host::stats().wgmmas > before.wgmmas, mma = kiln_host::stats().mmas > before.mmas;
  const std::string took = wg && mma ? "sm90+fa2" : wg ? "sm90" : mma ? "fa2" : "basic";
  if (took != c.path) {
    report += " ran " + took;
    ok = false;
  }
  Reference r{std::vector<double>(nq), std::vector<double>(size_t(BH * c.Tq)), std::vector<double>(nq), std::vector<double>(nk),
              std::vector<double>(nk)};
  kiln::cpu::attention_forward<double>(a, q.data(), k.data(), v.data(), r.out.data(), r.lse.data());
  kiln::cpu::attention_backward<double>(a, q.data(), k.data(), v.data(), r.out.data(), g.data(), r.lse.data(), r.dq.data(),
                                        r.dk.data(), r.dv.data());
  const Reference got{widen_any(O, nq), std::vector<double>(L.p, L.p + size_t(BH * c.Tq)), widen_any(dQ, nq), widen_any(dK, nk),
                      widen_any(dV, nk)};
  // float32: 3xTF32 products reach float32-level error (a few 1e-7 here); one TF32 pass would be ~1e-3.
  ok = compare_all(r, got, f32 ? 1e-5 : bf ? 2e-2 : 4e-3, O.intact() && L.intact() && dQ.intact() && dK.intact() && dV.intact(), report) &&
       ok;
  static const char* const optName[] = {"", "key-lengths", "key-mask", "dropout"};
  char name[200];
  std::snprintf(name, sizeof name, "dispatch %s D%lld B%lld H%lld Tq%lld Tk%lld %s %s%s%s -> %s", f32 ? "f32" : bf ? "bf16" : "f16",
                (long long)c.D, (long long)c.B, (long long)c.H, (long long)c.Tq, (long long)c.Tk, c.causal ? "causal" : "full",
                optName[c.opt], c.f32fa2 ? " (f32 fa2 on)" : "", c.smemOptin > 0 ? (" smem " + std::to_string(c.smemOptin)).c_str() : "", c.path);
  finish(name, ok, report);
}

// ------------------------------------------------------------------ contrastive.cu (InfoNCE / NT-Xent / CLIP)
// contrastive.cu's own code (bands of the similarity matrix, the row reductions, dL/dsim in place, the
// products back, the cosine normalisation and its backward) against a plain float64 twin of
// kernels/cpu/contrastive.h's semantics, its products done by kernels/cuda/gemm.cu on the model too.
struct NceCase {
  bool f32;
  int64_t rows, dim, shift;
  bool cosine, maskSelf, shared;
  double scale, wPos, wSelf;
  int64_t band;  // KILN_CUDA_BAND_ROWS (0: the default)
  double amp = 1;  // inputs' scale (1e20: float32 squares overflow, which cosine rows must survive)
};

struct NceRef {
  std::vector<double> loss, lse, esim, tsim, dq, dk;
};

NceRef nce_reference(const NceCase& c, const std::vector<double>& q0, const std::vector<double>& k0, const std::vector<double>& grow) {
  const int64_t R = c.rows, D = c.dim;
  auto normalise = [&](const std::vector<double>& x, std::vector<double>& y, std::vector<double>& n) {
    y = x;
    n.assign(size_t(R), 0);
    if (!c.cosine) return;
    for (int64_t i = 0; i < R; ++i) {
      double s = 0;
      for (int64_t d = 0; d < D; ++d) s += x[i * D + d] * x[i * D + d];
      n[i] = std::sqrt(s);
      for (int64_t d = 0; d < D; ++d) y[i * D + d] = x[i * D + d] / std::fmax(n[i], 1e-12);
    }
  };
  std::vector<double> q, k, nq, nk;
  normalise(q0, q, nq);
  if (c.shared) k = q, nk = nq;
  else normalise(k0, k, nk);
  std::vector<double> S(size_t(R * R));
  for (int64_t i = 0; i < R; ++i)
    for (int64_t j = 0; j < R; ++j) {
      double s = 0;
      for (int64_t d = 0; d < D; ++d) s += q[i * D + d] * k[j * D + d];
      S[i * R + j] = s;
    }
  NceRef r{std::vector<double>(R), std::vector<double>(R), std::vector<double>(R), std::vector<double>(R),
           std::vector<double>(size_t(R * D), 0.0), std::vector<double>(size_t(R * D), 0.0)};
  for (int64_t i = 0; i < R; ++i) {
    double m = -INFINITY;
    for (int64_t j = 0; j < R; ++j)
      if (!(c.maskSelf && j == i)) m = std::fmax(m, c.scale * S[i * R + j]);
    double z = 0, e = 0;
    for (int64_t j = 0; j < R; ++j)
      if (!(c.maskSelf && j == i)) {
        const double w = std::exp(c.scale * S[i * R + j] - m);
        z += w;
        e += w * S[i * R + j];
      }
    r.lse[i] = m + std::log(z);
    r.esim[i] = e / z;
    r.tsim[i] = c.wPos * S[i * R + (i + c.shift) % R] + c.wSelf * S[i * R + i];
    r.loss[i] = (c.wPos + c.wSelf) * r.lse[i] - c.scale * r.tsim[i];
  }
  auto dl = [&](int64_t a, int64_t j) {
    if (c.maskSelf && a == j) return 0.0;
    const double g = grow[a] * c.scale;
    double v = g * (c.wPos + c.wSelf) * std::exp(c.scale * S[a * R + j] - r.lse[a]);
    if (j == (a + c.shift) % R) v -= g * c.wPos;
    if (j == a) v -= g * c.wSelf;
    return v;
  };
  std::vector<double> gq(size_t(R * D), 0.0), gk(size_t(R * D), 0.0);  // d loss / d (normalised) q, k
  for (int64_t a = 0; a < R; ++a)
    for (int64_t j = 0; j < R; ++j) {
      const double v = dl(a, j);
      for (int64_t d = 0; d < D; ++d) {
        gq[a * D + d] += v * k[j * D + d];
        gk[j * D + d] += v * q[a * D + d];
      }
    }
  if (c.shared)
    for (size_t i = 0; i < gq.size(); ++i) gq[i] += gk[i];
  auto unnormalise = [&](const std::vector<double>& y, const std::vector<double>& n, std::vector<double>& g, std::vector<double>& out) {
    out = g;
    if (!c.cosine) return;
    for (int64_t i = 0; i < R; ++i) {
      double p = 0;
      for (int64_t d = 0; d < D; ++d) p += y[i * D + d] * g[i * D + d];
      for (int64_t d = 0; d < D; ++d) out[i * D + d] = n[i] > 1e-12 ? (g[i * D + d] - y[i * D + d] * p) / n[i] : g[i * D + d] * 1e12;
    }
  };
  unnormalise(q, nq, gq, r.dq);
  if (!c.shared) unnormalise(k, nk, gk, r.dk);
  return r;
}

void run_nce(const NceCase& c, std::mt19937_64& rng) {
  const size_t es = c.f32 ? 4 : 8, n = size_t(c.rows * c.dim), R = size_t(c.rows);
  std::normal_distribution<double> nd(0.0, 1.0);
  auto make = [&](size_t count, Buf<unsigned char>& dev, std::vector<double>& ref, double amp) {
    ref.resize(count);
    for (size_t i = 0; i < count; ++i) {
      const double x = nd(rng) * amp;
      if (c.f32) {
        const float f = float(x);
        std::memcpy(dev.p + 4 * i, &f, 4);
        ref[i] = f;
      } else {
        std::memcpy(dev.p + 8 * i, &x, 8);
        ref[i] = x;
      }
    }
  };
  auto widen_any = [&](const Buf<unsigned char>& dev, size_t count) {
    std::vector<double> out(count);
    for (size_t i = 0; i < count; ++i) {
      if (c.f32) {
        float f;
        std::memcpy(&f, dev.p + 4 * i, 4);
        out[i] = f;
      } else {
        std::memcpy(&out[i], dev.p + 8 * i, 8);
      }
    }
    return out;
  };
  Buf<unsigned char> Q(n * es), K(n * es), G(R * es), loss(R * es, 0xFF), lse(R * es, 0xFF), esim(R * es, 0xFF), tsim(R * es, 0xFF),
      dQ(n * es, 0xFF), dK(n * es, 0xFF);
  std::vector<double> q, k, g;
  make(n, Q, q, c.amp);
  make(n, K, k, c.amp);
  make(R, G, g, 1);
  kiln::cpu::NceSpec s;
  s.rows = c.rows, s.dim = c.dim, s.shift = c.shift, s.cosine = c.cosine, s.mask_self = c.maskSelf, s.shared = c.shared;
  s.scale = c.scale, s.w_pos = c.wPos, s.w_self = c.wSelf;
  const kiln::cpu::DType dt = c.f32 ? kiln::cpu::DType::F32 : kiln::cpu::DType::F64;
  if (c.band) setenv("KILN_CUDA_BAND_ROWS", std::to_string(c.band).c_str(), 1);
  else unsetenv("KILN_CUDA_BAND_ROWS");
  std::string err = kiln::cuda::nce_forward(dt, s, Q.p, c.shared ? nullptr : K.p, loss.p, lse.p, esim.p, tsim.p);
  if (err.empty()) err = kiln::cuda::nce_backward(dt, s, Q.p, c.shared ? nullptr : K.p, lse.p, G.p, dQ.p, c.shared ? nullptr : dK.p);
  unsetenv("KILN_CUDA_BAND_ROWS");
  bool ok = err.empty();
  std::string report;
  if (!ok) report += " error: " + err;
  const NceRef r = nce_reference(c, q, k, g);
  const double tol = c.f32 ? 1e-5 : 1e-11;
  ok = compare("loss", r.loss, widen_any(loss, R), tol, report) && ok;
  ok = compare("lse", r.lse, widen_any(lse, R), tol, report) && ok;
  ok = compare("esim", r.esim, widen_any(esim, R), tol, report) && ok;
  ok = compare("tsim", r.tsim, widen_any(tsim, R), tol, report) && ok;
  ok = compare("dq", r.dq, widen_any(dQ, n), tol, report) && ok;
  if (!c.shared) ok = compare("dk", r.dk, widen_any(dK, n), tol, report) && ok;
  const bool intact = Q.intact() && K.intact() && loss.intact() && lse.intact() && esim.intact() && tsim.intact() && dQ.intact() &&
                      (c.shared || dK.intact());
  ok = guarded("outputs", intact, report) && ok;
  char name[200];
  std::snprintf(name, sizeof name, "nce %s rows%lld dim%lld %s%s%s w_pos %.2g w_self %.2g band %lld%s", c.f32 ? "f32" : "f64",
                (long long)c.rows, (long long)c.dim, c.cosine ? "cosine" : "dot", c.maskSelf ? " mask-self" : "", c.shared ? " shared" : "",
                c.wPos, c.wSelf, (long long)c.band, c.amp != 1 ? " rows x1e20" : "");
  finish(name, ok, report);
}

// ------------------------------------------------------------------ diffusion.cu (fused steps, nearest rows)
// diffusion.cu's kernels against their CPU twins (kernels/cpu/diffusion.cc) in the same element type on
// the same inputs: the fused step with no noise, given noise and Philox noise (which must be the same
// numbers as the CPU's, a float32 Box-Muller's last bits aside), clipping, an odd element count (the
// last pair half used), x0 and the noise used written back; and the nearest-row search.
template <class T>
void run_diffusion_step(int64_t rows, int64_t inner, bool clip, kiln::cpu::NoiseSource noise, std::mt19937_64& rng) {
  const size_t n = size_t(rows * inner);
  std::normal_distribution<double> nd(0.0, 1.0);
  std::uniform_real_distribution<double> ud(0.0, 1.0);
  Buf<double> coef(size_t(rows) * 8);
  for (int64_t r = 0; r < rows; ++r)
    for (int k = 0; k < 8; ++k) coef.p[r * 8 + k] = k == 7 && r % 3 == 0 ? 0.0 : (k == 7 ? ud(rng) : nd(rng));
  Buf<T> x(n), y(n), z(n), out(n, T(NAN)), x0(n, T(NAN)), zo(n, T(NAN));
  for (size_t i = 0; i < n; ++i) x.p[i] = T(nd(rng)), y.p[i] = T(nd(rng)), z.p[i] = T(nd(rng));
  kiln::cpu::DiffusionSpec s;
  s.rows = rows, s.inner = inner, s.clip = clip, s.lo = -0.8, s.hi = 1.1, s.noise = noise, s.seed = 4321, s.offset = 1001;
  const kiln::cpu::DType dt = sizeof(T) == 4 ? kiln::cpu::DType::F32 : kiln::cpu::DType::F64;
  const std::string err = kiln::cuda::diffusion_step(dt, s, coef.p, x.p, y.p, z.p, out.p, x0.p, zo.p);
  std::vector<T> rout(n), rx0(n), rzo(n, T(0));
  kiln::cpu::diffusion_step<T>(s, coef.p, x.p, y.p, z.p, rout.data(), rx0.data(), noise == kiln::cpu::NoiseSource::None ? nullptr : rzo.data());
  std::string report;
  bool ok = err.empty();
  if (!ok) report += " error: " + err;
  auto d = [](const T* p, size_t m) { return std::vector<double>(p, p + m); };
  const double tol = sizeof(T) == 4 ? 2e-6 : 1e-13;
  ok = compare("out", d(rout.data(), n), d(out.p, n), tol, report) && ok;
  ok = compare("x0", d(rx0.data(), n), d(x0.p, n), tol, report) && ok;
  if (noise != kiln::cpu::NoiseSource::None) ok = compare("noise", d(rzo.data(), n), d(zo.p, n), tol, report) && ok;
  ok = guarded("outputs", out.intact() && x0.intact() && zo.intact(), report) && ok;
  static const char* const src[] = {"no noise", "philox noise", "given noise"};
  char name[160];
  std::snprintf(name, sizeof name, "diffusion step %s rows%lld inner%lld %s%s", sizeof(T) == 4 ? "f32" : "f64", (long long)rows,
                (long long)inner, src[int(noise)], clip ? " clip" : "");
  finish(name, ok, report);
}

// ------------------------------------------------------------------ softmax.cu (against the CPU twins)

// ref and got with their NaNs at the same places (then zeroed for compare(), which needs finite or equal values).
bool compare_nan(const char* what, std::vector<double> ref, std::vector<double> got, double tol, std::string& report) {
  for (size_t i = 0; i < ref.size(); ++i) {
    if (std::isnan(ref[i]) != std::isnan(got[i])) {
      char buf[160];
      std::snprintf(buf, sizeof buf, " %s: NaN mismatch at %zu (%.6g vs %.6g)", what, i, got[i], ref[i]);
      report += buf;
      return false;
    }
    if (std::isnan(ref[i])) ref[i] = got[i] = 0;
  }
  return compare(what, ref, got, tol, report);
}

// Softmax, log-softmax (forward and backward) and cross entropy over [rows, n] (n <= 1024: a warp per
// row, else a block; n % 4 == 0: 16-byte vectors) against kernels/cpu. Rows 0-4 are special: all
// -inf, one NaN, one +inf, a few -inf, logits 1e6 + N(0, 1) (the label smoothing term's offset);
// every 5th target from row 5 on is ignored.
template <class T>
void run_rows(int64_t rows, int64_t n, double smoothing, std::mt19937_64& rng) {
  const size_t m = size_t(rows * n);
  std::normal_distribution<double> nd(0.0, 1.0);
  Buf<T> x(m), dy(m), y(m, T(NAN)), dx(m, T(NAN)), loss(static_cast<size_t>(rows), T(NAN)), lse(static_cast<size_t>(rows), T(NAN)), dl(static_cast<size_t>(rows));
  Buf<int32_t> tg(static_cast<size_t>(rows));
  for (size_t i = 0; i < m; ++i) x.p[i] = T(3 * nd(rng)), dy.p[i] = T(nd(rng));
  const T inf = std::numeric_limits<T>::infinity();
  for (int64_t k = 0; k < n; ++k) {
    if (rows > 0) x.p[k] = -inf;
    if (rows > 4) x.p[4 * n + k] = T(1e6 + nd(rng));
  }
  if (rows > 1) x.p[n + n / 2] = T(NAN);
  if (rows > 2) x.p[2 * n + n / 3] = inf;
  if (rows > 3) x.p[3 * n] = x.p[3 * n + n - 1] = -inf;
  for (int64_t r = 0; r < rows; ++r) {
    tg.p[r] = r >= 5 && r % 5 == 0 ? -100 : int32_t((r * 7919 + 13) % n);
    dl.p[r] = T(0.5 + 0.1 * double(r % 7));
  }
  if (rows > 3) tg.p[3] = 0;  // the target is a -inf logit: an infinite loss
  const kiln::cpu::DType dt = sizeof(T) == 4 ? kiln::cpu::DType::F32 : kiln::cpu::DType::F64;
  const double tol = sizeof(T) == 4 ? 1e-5 : 1e-12;
  auto d = [](const T* p, size_t k) { return std::vector<double>(p, p + k); };
  std::string report;
  bool ok = true;
  std::vector<T> ry(m), rdx(m);
  for (int kind = 0; kind < 4; ++kind) {
    std::string err;
    if (kind < 2) {
      (kind == 0 ? kiln::cpu::softmax_forward<T> : kiln::cpu::log_softmax_forward<T>)(x.p, ry.data(), rows, n);
      err = kiln::cuda::softmax(dt, kind, x.p, nullptr, y.p, rows, n);
      ok = compare_nan(kind == 0 ? "softmax" : "log-softmax", d(ry.data(), m), d(y.p, m), tol, report) && ok;
    } else {
      // The backward of kind - 2 at the CPU's forward output.
      (kind == 2 ? kiln::cpu::softmax_forward<T> : kiln::cpu::log_softmax_forward<T>)(x.p, ry.data(), rows, n);
      (kind == 2 ? kiln::cpu::softmax_backward<T> : kiln::cpu::log_softmax_backward<T>)(ry.data(), dy.p, rdx.data(), rows, n);
      err = kiln::cuda::softmax(dt, kind, ry.data(), dy.p, dx.p, rows, n);
      ok = compare_nan(kind == 2 ? "softmax bwd" : "log-softmax bwd", d(rdx.data(), m), d(dx.p, m), tol, report) && ok;
    }
    if (!err.empty()) ok = false, report += " error: " + err;
  }
  std::vector<T> rloss(static_cast<size_t>(rows)), rlse(static_cast<size_t>(rows));
  kiln::cpu::cross_entropy_forward<T>(x.p, tg.p, rloss.data(), rlse.data(), rows, n, -100, T(smoothing));
  kiln::cpu::cross_entropy_backward<T>(x.p, tg.p, rlse.data(), dl.p, rdx.data(), rows, n, -100, T(smoothing));
  std::string err = kiln::cuda::cross_entropy_forward(dt, x.p, tg.p, loss.p, lse.p, rows, n, -100, smoothing);
  if (err.empty()) err = kiln::cuda::cross_entropy_backward(dt, x.p, tg.p, lse.p, dl.p, dx.p, rows, n, -100, smoothing);
  if (!err.empty()) ok = false, report += " error: " + err;
  // The label-smoothing term takes the mean of a row's logits, summed in double in an order that
  // differs between the kernels: a row's losses may differ by smoothing * n * eps(double) * max |x|
  // (3e-9 on the 1e6-offset float64 row, where they differ by ~2e-11), which counts as equal before
  // the relative comparison. The float32 rows keep their tolerance (the slack is ~1e-9 there).
  auto within_mean_rounding = [&](const std::vector<double>& ref, std::vector<double> got) {
    for (int64_t r = 0; r < rows; ++r) {
      double xs = 0;
      for (int64_t k = 0; k < n; ++k)
        if (std::isfinite(double(x.p[r * n + k]))) xs = std::fmax(xs, std::fabs(double(x.p[r * n + k])));
      const double slack = smoothing * double(n) * std::numeric_limits<double>::epsilon() * xs;
      const size_t i = size_t(r);
      if (std::isfinite(ref[i]) && std::isfinite(got[i]) && std::fabs(got[i] - ref[i]) <= slack) got[i] = ref[i];
    }
    return got;
  };
  const std::vector<double> rl = d(rloss.data(), size_t(rows));
  ok = compare_nan("ce loss", rl, within_mean_rounding(rl, d(loss.p, size_t(rows))), tol, report) && ok;
  ok = compare_nan("ce lse", d(rlse.data(), size_t(rows)), d(lse.p, size_t(rows)), tol, report) && ok;
  ok = compare_nan("ce dlogits", d(rdx.data(), m), d(dx.p, m), tol, report) && ok;
  ok = guarded("outputs", y.intact() && dx.intact() && loss.intact() && lse.intact(), report) && ok;
  char name[160];
  std::snprintf(name, sizeof name, "rows %s %lldx%lld smoothing %g", sizeof(T) == 4 ? "f32" : "f64", (long long)rows, (long long)n, smoothing);
  finish(name, ok, report);
}

// crowded: every row of E near (100, ..., 100), 0.01 apart along the diagonal, where float32's
// |E|^2 - 2 <x, E> cancels and ranks neighbours wrongly; each query sits 0.002 from row (37 i + 5)
// mod v, whose index is checked as well; query 1 holds a NaN (index -1, a NaN row).
template <class T>
void run_nearest(int64_t m, int64_t v, int64_t d, int64_t band, std::mt19937_64& rng, bool crowded = false) {
  std::normal_distribution<double> nd(0.0, 1.0);
  Buf<T> x(size_t(m * d)), E(size_t(v * d)), snapped(size_t(m * d), T(NAN));
  Buf<int32_t> idx(size_t(m), -1);
  for (size_t i = 0; i < size_t(v * d); ++i) E.p[i] = crowded ? T(100 + 0.01 * double(i / size_t(d))) : T(nd(rng));
  // Each query near row (37 i + 5) mod v (a clear winner, every one of the block's eight warps owning some)
  // or far from all of them; query 0 is an exact copy of row v - 1.
  for (int64_t i = 0; i < m; ++i) {
    const int64_t near = (37 * i + 5) % v;
    for (int64_t k = 0; k < d; ++k)
      x.p[i * d + k] = crowded ? (i == 1 && k == 2 ? T(NAN) : T(double(E.p[near * d + k]) + (k % 2 ? 0.002 : -0.002)))
                       : i == 0 ? E.p[(v - 1) * d + k] : T(i % 2 ? E.p[near * d + k] + 0.3 * nd(rng) : 2 * nd(rng));
  }
  const kiln::cpu::DType dt = sizeof(T) == 4 ? kiln::cpu::DType::F32 : kiln::cpu::DType::F64;
  if (band) setenv("KILN_CUDA_BAND_ROWS", std::to_string(band).c_str(), 1);
  const std::string err = kiln::cuda::nearest_rows(dt, x.p, E.p, m, v, d, idx.p, snapped.p);
  unsetenv("KILN_CUDA_BAND_ROWS");
  std::vector<int32_t> ridx(static_cast<size_t>(m));
  std::vector<T> rsn(static_cast<size_t>(m * d));
  kiln::cpu::nearest_rows<T>(x.p, E.p, m, v, d, ridx.data(), rsn.data());
  std::string report;
  bool ok = err.empty();
  if (!ok) report += " error: " + err;
  size_t badIdx = 0, badRow = 0;
  for (int64_t i = 0; i < m; ++i) {
    badIdx += idx.p[i] != ridx[size_t(i)];
    if (crowded) badIdx += ridx[size_t(i)] != (i == 1 ? -1 : int32_t((37 * i + 5) % v));  // the CPU twin's answer is the truth too
    for (int64_t k = 0; k < d; ++k) badRow += std::memcmp(&snapped.p[i * d + k], &rsn[size_t(i * d + k)], sizeof(T)) != 0;
  }
  char buf[120];
  std::snprintf(buf, sizeof buf, " indices %zu of %lld differ, snapped elements %zu differ", badIdx, (long long)m, badRow);
  report += buf;
  ok = ok && badIdx == 0 && badRow == 0;
  ok = guarded("outputs", idx.intact() && snapped.intact(), report) && ok;
  char name[120];
  std::snprintf(name, sizeof name, "nearest rows %s m%lld v%lld d%lld band %lld%s", sizeof(T) == 4 ? "f32" : "f64", (long long)m, (long long)v,
                (long long)d, (long long)band, crowded ? " crowded, a NaN query" : "");
  finish(name, ok, report);
}

// ------------------------------------------------------------------ reduce.cu (against the CPU twins)

// x is [outer, r, inner], reduced over r: slice s = (o, j) = (s / inner, s % inner) holds x[o r inner + k inner + j].
struct Slices {
  int64_t outer, r, inner;
  size_t at(int64_t s, int64_t k) const { return size_t((s / inner) * r * inner + k * inner + s % inner); }
  int64_t count() const { return outer * inner; }
};

// Every float reduction of reduce.cu (sum, mean, max, min, logsumexp, prod, argmax, argmin) and the
// cumsum, forward and reverse, against kernels/cpu/reduce.cc in the same element type. x is uniform
// in [-1, 1] (prod's input: 1 + 0.02 u, so that long products stay in range), with special slices:
// 1 holds two NaNs, 2 a +inf, 3 is all -inf, 4 all 0.25 (ties), 5 its max twice. Sums, means, the
// logsumexp and the cumsum are compared with tolerances (the device's order of summation is not the
// CPU's; both accumulate in double), extremes and indices exactly, NaNs in the same places.
template <class T>
void run_reduce_float(int64_t outer, int64_t r, int64_t inner, std::mt19937_64& rng) {
  using kiln::cpu::ReduceOp;
  const Slices sl{outer, r, inner};
  const size_t n = size_t(outer * r * inner), m = size_t(outer * inner);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  Buf<T> x(n), xp(n), y(m, T(-7)), yc(n, T(-7));
  Buf<int32_t> idx(m, -7);
  for (size_t i = 0; i < n; ++i) {
    x.p[i] = T(u(rng));
    xp.p[i] = T(1 + 0.02 * u(rng));
  }
  const T inf = std::numeric_limits<T>::infinity();
  for (int64_t s = 1; s < std::min<int64_t>(sl.count(), 6) && r > 0; ++s)
    for (Buf<T>* b : {&x, &xp}) {
      if (s == 1) b->p[sl.at(s, r / 3)] = b->p[sl.at(s, r / 2)] = T(NAN);
      if (s == 2) b->p[sl.at(s, r - 1)] = inf;
      for (int64_t k = 0; k < r; ++k) {
        if (s == 3) b->p[sl.at(s, k)] = -inf;
        if (s == 4) b->p[sl.at(s, k)] = T(0.25);
      }
      if (s == 5) b->p[sl.at(s, r / 4)] = b->p[sl.at(s, r - 1)] = T(2);
    }
  const kiln::cpu::DType dt = sizeof(T) == 4 ? kiln::cpu::DType::F32 : kiln::cpu::DType::F64;
  const double tol = sizeof(T) == 4 ? 1e-6 : 1e-13;
  auto d = [](const T* p, size_t k) { return std::vector<double>(p, p + k); };
  std::string report, err;
  bool ok = true;
  std::vector<T> ry(std::max(n, m));
  const struct { ReduceOp op; const char* name; bool exact; } ops[] = {
      {ReduceOp::Sum, "sum", false}, {ReduceOp::Mean, "mean", false}, {ReduceOp::Max, "max", true},
      {ReduceOp::Min, "min", true},  {ReduceOp::LogSumExp, "lse", false}, {ReduceOp::Prod, "prod", false}};
  for (const auto& o : ops) {
    const T* in = o.op == ReduceOp::Prod ? xp.p : x.p;
    kiln::cpu::reduce<T>(o.op, in, ry.data(), outer, r, inner);
    std::fill(y.p, y.p + m, T(-7));
    const std::string e = kiln::cuda::reduce(dt, o.op, in, y.p, outer, r, inner);
    if (!e.empty()) err += std::string(" ") + o.name + ": " + e;
    ok = compare_nan(o.name, d(ry.data(), m), d(y.p, m), o.exact ? 0.0 : tol, report) && ok;
  }
  std::vector<int32_t> ridx(m);
  for (int isMax = 1; isMax >= 0; --isMax) {
    kiln::cpu::arg_reduce<T>(isMax, x.p, ridx.data(), outer, r, inner);
    std::fill(idx.p, idx.p + m, -7);
    const std::string e = kiln::cuda::arg_reduce(dt, isMax, x.p, idx.p, outer, r, inner);
    if (!e.empty()) err += std::string(isMax ? " argmax: " : " argmin: ") + e;
    size_t bad = 0;
    for (size_t i = 0; i < m; ++i) bad += idx.p[i] != ridx[i];
    report += std::string(isMax ? " argmax" : " argmin") + (bad ? " " + std::to_string(bad) + " differ" : "");
    ok = ok && bad == 0;
  }
  for (int rev = 0; rev < 2; ++rev) {
    kiln::cpu::cumsum<T>(x.p, ry.data(), outer, r, inner, rev);
    std::fill(yc.p, yc.p + n, T(-7));
    const std::string e = kiln::cuda::cumsum(dt, x.p, yc.p, outer, r, inner, rev);
    if (!e.empty()) err += std::string(" cumsum: ") + e;
    ok = compare_nan(rev ? "cumsum rev" : "cumsum", d(ry.data(), n), d(yc.p, n), tol, report) && ok;
  }
  if (!err.empty()) ok = false, report += " error:" + err;
  ok = guarded("outputs", y.intact() && yc.intact() && idx.intact(), report) && ok;
  char name[120];
  std::snprintf(name, sizeof name, "reduce %s [%lld, %lld, %lld]", sizeof(T) == 4 ? "f32" : "f64", (long long)outer, (long long)r,
                (long long)inner);
  finish(name, ok, report);
}

// int32: sum_i32, cumsum_i32 (forward and reverse) and max / min against kernels/cpu/reduce.cc,
// exactly: the values, and the first output that does not fit int32 (-1: none; an output past it
// is refused, so its value is not compared). Inputs by mode:
//   0: small (|x| <= 1000), nothing overflows;
//   1: large and mostly positive, the sums and the partial sums overflow;
//   2: pairs (v, -v) of large v along r: every sum fits, but a lane's or a chunk's partial of a
//      strided or split sum is far outside int32 before the pairs meet (must not be refused);
//   3 (r >= 7; else zeros): the edges, by slice s % 3 (zeros elsewhere): 0: INT32_MIN, ..., INT32_MAX, INT32_MAX, 1, ..., -INT32_MAX
//      (the forward partials touch INT32_MIN and INT32_MAX exactly, the reverse ones pass INT32_MAX
//      by 1); 1: INT32_MAX, ..., INT32_MIN, -INT32_MAX, 0, ..., INT32_MAX (every partial fits, one is
//      INT32_MIN); 2: as 0 with 2 for the 1 (both directions overflow by 1 once); the sums fit;
//   4: near INT32_MAX with alternating signs;
//   5: large v in the first half of r, -v mirrored in the second: every sum fits (0), while the
//      partials of the first half's threads and chunks are far outside int32; the cumsums overflow.
void run_reduce_i32(int64_t outer, int64_t r, int64_t inner, int mode, std::mt19937_64& rng) {
  using kiln::cpu::ReduceOp;
  const Slices sl{outer, r, inner};
  const size_t n = size_t(outer * r * inner), m = size_t(outer * inner);
  Buf<int32_t> x(n), y(m, 7), yc(n, 7);
  for (size_t i = 0; i < n; ++i) {
    if (mode == 0) x.p[i] = int32_t(rng() % 2001) - 1000;
    else if (mode == 1) x.p[i] = int32_t(int64_t(rng() % 2000000001ull) - 900000000);
    else if (mode == 4) x.p[i] = int32_t(INT32_MAX - int64_t(rng() % 100));
    else x.p[i] = 0;
  }
  for (int64_t s = 0; s < sl.count(); ++s)
    for (int64_t k = 0; k < r; ++k) {
      int32_t& v = x.p[sl.at(s, k)];
      if (mode == 2) v = k % 2 ? -x.p[sl.at(s, k - 1)] : int32_t(rng() % 2147483648ull);
      if (mode == 4 && k % 2) v = -v;
      if (mode == 5 && k < r / 2) v = int32_t(rng() % 2147483648ull), x.p[sl.at(s, r - 1 - k)] = -v;
    }
  if (mode == 3 && r >= 7)
    for (int64_t s = 0; s < sl.count(); ++s) {
      const int64_t h = r / 2;
      auto at = [&](int64_t k) -> int32_t& { return x.p[sl.at(s, k)]; };
      if (s % 3 == 1) {
        at(0) = INT32_MAX, at(h) = INT32_MIN, at(h + 1) = -INT32_MAX, at(r - 1) = INT32_MAX;
      } else {
        at(0) = INT32_MIN, at(h) = INT32_MAX, at(h + 1) = INT32_MAX, at(h + 2) = s % 3 ? 2 : 1, at(r - 1) = -INT32_MAX;
      }
    }
  std::string report, err;
  bool ok = true;
  char buf[160];
  auto diff = [](const int32_t* a, const int32_t* b, size_t k) {
    size_t bad = 0;
    for (size_t i = 0; i < k; ++i) bad += a[i] != b[i];
    return bad;
  };
  std::vector<int32_t> ry(std::max(n, m));
  {
    const int64_t want = kiln::cpu::reduce_i32(ReduceOp::Sum, x.p, ry.data(), outer, r, inner);
    int64_t got = -2;
    const std::string e = kiln::cuda::sum_i32(x.p, y.p, outer, r, inner, &got);
    if (!e.empty()) err += " sum: " + e;
    const size_t bad = diff(ry.data(), y.p, m);  // an output that overflows is 0 on both sides
    std::snprintf(buf, sizeof buf, " sum overflow at %lld (cpu %lld)%s", (long long)got, (long long)want, bad ? " values differ" : "");
    report += buf;
    ok = ok && got == want && bad == 0;
  }
  for (int rev = 0; rev < 2; ++rev) {
    const int64_t want = kiln::cpu::cumsum_i32(x.p, ry.data(), outer, r, inner, rev);
    int64_t got = -2;
    std::fill(yc.p, yc.p + n, 7);
    const std::string e = kiln::cuda::cumsum_i32(x.p, yc.p, outer, r, inner, rev, &got);
    if (!e.empty()) err += " cumsum: " + e;
    const size_t bad = want < 0 ? diff(ry.data(), yc.p, n) : 0;
    std::snprintf(buf, sizeof buf, " cumsum%s overflow at %lld (cpu %lld)%s", rev ? " rev" : "", (long long)got, (long long)want,
                  bad ? " values differ" : "");
    report += buf;
    ok = ok && got == want && bad == 0;
  }
  for (ReduceOp op : {ReduceOp::Max, ReduceOp::Min}) {
    kiln::cpu::reduce_i32(op, x.p, ry.data(), outer, r, inner);
    std::fill(y.p, y.p + m, 7);
    const std::string e = kiln::cuda::reduce(kiln::cpu::DType::I32, op, x.p, y.p, outer, r, inner);
    if (!e.empty()) err += " max / min: " + e;
    const size_t bad = diff(ry.data(), y.p, m);
    if (bad) report += op == ReduceOp::Max ? " max differs" : " min differs";
    ok = ok && bad == 0;
  }
  if (!err.empty()) ok = false, report += " error:" + err;
  ok = guarded("outputs", y.intact() && yc.intact(), report) && ok;
  char name[120];
  std::snprintf(name, sizeof name, "reduce i32 [%lld, %lld, %lld] mode %d", (long long)outer, (long long)r, (long long)inner, mode);
  finish(name, ok, report);
}

}  // namespace

// The device allocator of kernels/cuda/backend.cu (attention_fa2.cu's scratch), on the host.
namespace kiln {
namespace cuda {
void* alloc(size_t bytes, std::string*) { return std::aligned_alloc(256, (bytes + 255) / 256 * 256); }
void release(void* p, size_t) { std::free(p); }

}  // namespace cuda
// Stand-in for kernels/cpu/gemm.cc (the CPU nearest-row search's products; the real one is tested
// against PyTorch and is not in this build): float64 sums rounded to T.
namespace cpu {
template <class T>
void gemm(int64_t batch, bool transA, bool transB, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, int64_t strideA,
          const T* B, int64_t ldb, int64_t strideB, T beta, T* C, int64_t ldc, int64_t strideC) {
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k)
          s += double(A[b * strideA + (transA ? k * lda + m : m * lda + k)]) * double(B[b * strideB + (transB ? n * ldb + k : k * ldb + n)]);
        T& c = C[b * strideC + m * ldc + n];
        c = T(double(alpha) * s + (beta != T(0) ? double(beta) * double(c) : 0.0));
      }
}
template void gemm<float>(int64_t, bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, int64_t, const float*, int64_t,
                          int64_t, float, float*, int64_t, int64_t);
template void gemm<double>(int64_t, bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, int64_t, const double*,
                           int64_t, int64_t, double, double*, int64_t, int64_t);
}  // namespace cpu
namespace cuda {

}  // namespace cuda
}  // namespace kiln

int main(int argc, char** argv) {
  bool quick = false;
  std::string only;
  kiln_host::Options opt;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--seed") && i + 1 < argc) opt.seed = std::strtoull(argv[++i], nullptr, 10);
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--quick] [--seed N] [--only gemm|gemm.cu|fwd|bwd|fa2|dispatch|nce|diffusion|rows|reduce[,...]]\n", argv[0]);
      return 2;
    }
  }
  std::mt19937_64 rng(opt.seed);
  // attention.cu offers calls to the Hopper kernels first (read once, at the first call).
  setenv("KILN_ATTENTION_KERNEL", "wgmma", 0);  // unless the caller chose (basic, fa2: the path checks then fail)
  const uint32_t bases[] = {0, 16, 528, 1024};
  int bi = 0;
  auto next_base = [&] {
    opt.smemBase = bases[bi++ % 4];
    kiln_host::set_options(opt);
  };

  // Whether --only names this group of cases (or names none): a comma-separated list.
  auto wanted = [&](const std::string& name) { return only.empty() || ("," + only + ",").find("," + name + ",") != std::string::npos; };
  // One group of cases: skipped unless wanted; --quick keeps its first quickCount.
  auto section = [&](const char* name, auto cases, size_t quickCount, auto run) {
    if (!wanted(name)) return;
    if (quick && cases.size() > quickCount) cases.resize(quickCount);
    for (const auto& c : cases) {
      next_base();
      run(c);
    }
  };
  {
    std::vector<GemmCase> gc = {
        {1, 200, 300, 130, false, false, true, true, 1.0, 0.0},  {1, 200, 300, 130, false, true, true, true, 1.0, 0.0},
        {1, 200, 300, 130, true, false, true, true, 1.0, 0.0},   {1, 200, 300, 130, true, true, true, true, 1.0, 0.0},
        {2, 70, 260, 72, false, true, false, false, 0.5, 1.0},  {2, 130, 64, 200, true, false, true, false, 2.0, -1.0},
    };
    section("gemm", gc, 4, [&](const GemmCase& g) { run_gemm(g, rng); });
  }
  {
    using kiln::cuda::MatmulPrecision;
    const MatmulPrecision hi = MatmulPrecision::Highest, tf = MatmulPrecision::High;
    std::vector<TcCase> tc = {  // --quick: the first three
        {GemmType::BF16, GemmType::BF16, hi, 1, 130, 200, 72, false, false, 1.0, 0.0, 8},
        {GemmType::F32, GemmType::F32, hi, 1, 150, 130, 70, false, false, 1.0, 0.0, 4},
        {GemmType::F32, GemmType::F32, hi, 1, 100, 70, 1300, false, false, 1.0, 0.0, 4},  // split-K, a short last slice
        {GemmType::F16, GemmType::F32, hi, 2, 70, 90, 40, true, true, 0.5, 1.0, 8},
        {GemmType::BF16, GemmType::F32, hi, 1, 33, 260, 100, false, true, 1.0, 0.0, 3},   // odd leading dims: 4-byte copies
        {GemmType::F32, GemmType::F32, hi, 2, 60, 70, 50, true, false, 2.0, -1.0, 1},
        {GemmType::F32, GemmType::F32, tf, 1, 140, 270, 45, false, true, 1.0, 0.0, 4},
        {GemmType::F64, GemmType::F64, hi, 2, 50, 40, 30, true, true, 1.0, 0.5, 0},
        {GemmType::BF16, GemmType::BF16, hi, 1, 64, 64, 1024, true, false, 1.0, 1.0, 8},  // split-K into C with beta
    };
    section("gemm.cu", tc, 3, [&](const TcCase& c) { run_gemm_tc(c, rng); });
  }
  std::vector<AttnCase> ac;
  for (int D : {64, 128})
    for (bool causal : {false, true})
      for (int sched : {1, 2, 3, 4, 5, 6, 7, 8}) {
        ac.push_back({1, 2, 200, 200, D, causal, true, sched});   // ragged T: partial tiles
        if (!quick) {
          ac.push_back({1, 1, 130, 300, D, causal, true, sched});  // Tq < Tk
          ac.push_back({2, 1, 300, 130, D, causal, false, sched});  // Tq > Tk (causal: leading rows see no key), f16
          if (causal) ac.push_back({1, 1, 640, 640, D, causal, true, sched});  // 5 key tiles, 10 query blocks: the rings wrap
          if (sched == 1) {  // edges: one query and one key, decoding (one query, many keys), whole tiles
            ac.push_back({1, 1, 1, 1, D, causal, true, sched});
            ac.push_back({1, 3, 1, 257, D, causal, true, sched});
            ac.push_back({1, 1, 128, 128, D, causal, false, sched});
          }
        }
      }
  // The grouped block order (sm90_tile): 5 heads of 3 tiles each (forward: 128-row query blocks,
  // backward: 128-key blocks), groups of 2 heads (4 blocks) or 3 (9), the last group short.
  if (!quick)
    for (int D : {64, 128}) {
      ac.push_back({1, 5, 300, 300, D, true, true, 3, {}, 4});
      ac.push_back({1, 5, 300, 300, D, false, true, 3, {}, 9});
      ac.push_back({1, 5, 300, 300, D, true, true, 6, {}, 9});
      if (D == 64) ac.push_back({1, 5, 300, 300, D, true, true, 8, {}, 4});
    }
  // The persistent backward (operand modes 4, 5 and 7: schedules 5, 6 and 8): 2 or 3 blocks walking
  // 15 tiles (so the K / V buffer, the stage rings and the double buffers carry on over tiles of
  // different lengths), with the default order and the grouped one; Tq > Tk (some tiles see few
  // query blocks).
  if (!quick)
    for (int D : {64, 128})
      for (int sched : {5, 6, 8}) {
        if (D == 128 && sched != 6) continue;
        ac.push_back({1, 5, 300, 300, D, true, true, sched, {}, 0, 2});
        ac.push_back({1, 5, 300, 300, D, false, true, sched, {}, 9, 3});
        ac.push_back({3, 1, 450, 200, D, true, false, sched, {}, 0, 2});
      }
  // The persistent forward (the pipelined schedules 2, 3 and 4; 3's pingpong turns run on from tile to
  // tile): the same launches over 15 (10) tiles of 128 query rows (4: 10 (6) of 192).
  if (!quick)
    for (int D : {64, 128})
      for (int sched : {2, 3, 4}) {
        if (D == 128 && sched == 4) continue;
        ac.push_back({1, 5, 300, 300, D, true, true, sched, {}, 0, 2});
        ac.push_back({1, 5, 300, 300, D, false, true, sched, {}, 9, 3});
        ac.push_back({3, 1, 450, 200, D, true, false, sched, {}, 0, 2});
      }
  for (const char* dir : {"fwd", "bwd"}) {
    const bool fwd = std::string(dir) == "fwd";
    if (!wanted(dir)) continue;
    for (const AttnCase& c : ac) {
      // D 64 always splits dQ by keys (or by query rows, 8); the summed dQ, the 128-row query blocks of
      // the backward and the 192-row ones of the forward are D 64's alone
      if (fwd ? c.schedule >= 5 || (c.schedule == 4 && c.D != 64) : (c.D == 64 && c.schedule == 2) || (c.D == 128 && (c.schedule == 5 || c.schedule == 8))) continue;
      // persistent launches: the forward's pipelined schedules, the backward's schedules 5, 6 and 8
      if (c.persistBlocks > 0 && (fwd ? c.schedule < 2 : c.schedule < 5 || c.schedule == 7)) continue;
      // The backward schedules no head dim takes by default (3: A from shared memory, 4: dQ first
      // with atomics, 7: bulk reduction with A from shared memory) run the ragged and Tq < Tk cases
      // only (the suite's time limit).
      if (!fwd && (c.schedule == 3 || c.schedule == 4 || c.schedule == 7) && (c.Tq == 640 || c.Tq > c.Tk)) continue;
      next_base();
      run_attention(c, dir, rng);
    }
  }
  {
    std::vector<AttnCase> fc;
    for (int D : {32, 64, 128})
      for (bool causal : {false, true}) {
        fc.push_back({1, 2, 200, 200, D, causal, true, 1});
        if (!quick) {
          fc.push_back({1, 1, 130, 300, D, causal, false, 1});
          fc.push_back({2, 1, 300, 130, D, causal, true, 1, {97, 0}});  // key lengths: a short one and an empty one
          fc.push_back({1, 2, 1, 257, D, causal, true, 1});                // decoding: one query, many keys
          fc.push_back({1, 1, 128, 128, D, causal, false, 1});             // whole tiles
        }
      }
    section("fa2", fc, fc.size(), [&](const AttnCase& c) { run_attention(c, "fa2", rng); });
  }
  {
    std::vector<DispatchCase> dc = {
        {AttnDType::BF16, 1, 2, 200, 200, 64, true, 0, "sm90"},        {AttnDType::F16, 1, 1, 130, 300, 128, false, 0, "sm90"},
        {AttnDType::BF16, 1, 2, 200, 200, 32, true, 0, "fa2"},         {AttnDType::BF16, 2, 1, 150, 150, 64, true, 1, "fa2"},
        {AttnDType::BF16, 2, 1, 100, 140, 64, false, 2, "basic"},      {AttnDType::F16, 1, 2, 120, 120, 64, true, 3, "fa2"},
        {AttnDType::BF16, 1, 2, 90, 200, 128, true, 3, "fa2"},         {AttnDType::BF16, 2, 1, 150, 70, 32, false, 3, "fa2"},
        {AttnDType::F32, 1, 2, 150, 150, 64, true, 0, "basic"},        {AttnDType::F32, 2, 1, 90, 130, 32, false, 2, "basic"},
        {AttnDType::F32, 1, 1, 100, 100, 128, true, 3, "basic"},      {AttnDType::BF16, 1, 2, 170, 170, 64, false, 0, "sm90"},
        // float32 on fa2's 3xTF32 kernels (opted in): every head dim, causal and not, Tq != Tk both ways
        // (causal rows that see no key), key lengths, one query, whole tiles; key masks and dropout stay basic.
        {AttnDType::F32, 1, 2, 150, 150, 64, true, 0, "fa2", true},   {AttnDType::F32, 1, 1, 130, 300, 128, false, 0, "fa2", true},
        {AttnDType::F32, 1, 2, 300, 130, 32, true, 0, "fa2", true},   {AttnDType::F32, 2, 1, 90, 130, 32, false, 1, "fa2", true},
        {AttnDType::F32, 2, 1, 140, 140, 128, true, 1, "fa2", true},  {AttnDType::F32, 1, 2, 1, 257, 64, true, 0, "fa2", true},
        {AttnDType::F32, 1, 1, 128, 128, 64, false, 0, "fa2", true},  {AttnDType::F32, 1, 1, 200, 90, 128, true, 0, "fa2", true},
        {AttnDType::F32, 2, 1, 100, 140, 64, false, 2, "basic", true}, {AttnDType::F32, 1, 1, 100, 100, 32, true, 3, "basic", true},
        // On an A100's 163 KiB of shared memory per block, head dims 64 / 128's float32 backward runs on the basic kernels
        // (the forward, still fa2's, makes the path "fa2").
        {AttnDType::F32, 1, 1, 130, 150, 128, true, 0, "fa2", true, 166912}, {AttnDType::F32, 2, 1, 100, 100, 64, false, 1, "fa2", true, 166912},
    };
    section("dispatch", dc, 4, [&](const DispatchCase& c) {
      if (c.smemOptin > 0) {
        kiln_host::Options o = opt;
        o.smemOptin = c.smemOptin;
        kiln_host::set_options(o);
      }
      run_dispatch(c, rng);
      kiln_host::set_options(opt);
    });
  }
  {
    // NT-Xent (shared, cosine, the self column masked, positives half a batch away), CLIP-like (two
    // towers, targets on the diagonal), soft targets on both, a dot-product one; float32 and float64;
    // the default band (one) and forced small bands (several, the last one short).
    std::vector<NceCase> nc = {
        {true, 130, 37, 65, true, true, true, 5.0, 1.0, 0.0, 0},      {true, 130, 37, 65, true, true, true, 5.0, 1.0, 0.0, 48},
        {true, 97, 20, 0, true, false, false, 3.0, 1.0, 0.0, 40},     {false, 97, 20, 0, true, false, false, 3.0, 1.0, 0.0, 40},
        {false, 70, 9, 35, true, false, true, 2.0, 0.5, 0.5, 16},     {true, 60, 300, 7, false, false, false, 0.05, 0.75, 0.25, 25},
        {true, 64, 24, 32, true, true, true, 5.0, 1.0, 0.0, 0, 1e20},  // rows past float32's largest square
    };
    section("nce", nc, 3, [&](const NceCase& c) { run_nce(c, rng); });
  }
  if (wanted("diffusion")) {
    using kiln::cpu::NoiseSource;
    next_base();
    run_diffusion_step<float>(7, 37, false, NoiseSource::Philox, rng);  // 259 elements: the last pair is half used
    run_diffusion_step<double>(7, 37, true, NoiseSource::Philox, rng);
    run_diffusion_step<float>(5, 64, true, NoiseSource::Given, rng);
    run_diffusion_step<double>(3, 10, false, NoiseSource::None, rng);
    run_nearest<float>(40, 300, 24, 0, rng);
    run_nearest<double>(24, 70, 33, 7, rng);  // bands of 7 query rows, the last one short
    run_nearest<float>(30, 200, 24, 0, rng, true);   // crowded rows (float32 cancellation) and a NaN query
    run_nearest<double>(20, 90, 16, 6, rng, true);
  }
  if (wanted("rows")) {
    next_base();
    run_rows<float>(37, 100, 0.1, rng);  // a warp per row, 16-byte vectors
    run_rows<float>(9, 33, 0.0, rng);    // a warp per row, scalar loads
    run_rows<double>(11, 64, 0.2, rng);
    run_rows<float>(6, 3000, 0.1, rng);  // a block per row
    run_rows<double>(7, 2051, 0.0, rng);
    run_rows<float>(6, 1027, 0.3, rng);
  }
  if (wanted("reduce")) {
    next_base();
    // The paths of reduce.cu's run_reduce (inner 1: a warp per row up to 1024, else a block per row,
    // with 16-byte loads when rows allow and chunks past 8192 combined in order; inner > 1: a thread
    // per column, r split into chunks when the columns are few and r > 64) and run_cumsum (inner 1 and
    // r > 64: a block per 2048-element chunk of a row, carries scanned between chunks; else a thread
    // per column, chunked like the reductions); r = 0 and 1.
    run_reduce_float<float>(7, 100, 1, rng);
    run_reduce_float<double>(6, 37, 1, rng);
    run_reduce_float<float>(3, 3001, 1, rng);
    run_reduce_float<float>(2, 20000, 1, rng);
    run_reduce_float<double>(2, 9001, 1, rng);
    run_reduce_float<double>(2, 4096, 1, rng);
    run_reduce_float<float>(3, 40, 5, rng);
    run_reduce_float<double>(2, 300, 3, rng);
    run_reduce_float<float>(1, 1000, 7, rng);
    run_reduce_float<float>(4, 0, 3, rng);
    run_reduce_float<double>(5, 1, 1, rng);
    const struct { int64_t o, r, i; int mode; } ic[] = {
        {3, 1030, 1, 0}, {2, 5000, 1, 5}, {2, 20000, 1, 5}, {2, 9000, 1, 1}, {1, 20000, 1, 3}, {3, 2100, 1, 3},
        {5, 300, 1, 2},  {1, 50, 1, 3},   {2, 7, 3, 0},     {1, 300, 2, 1},  {1, 3000, 2, 5},  {2, 70, 33, 3},
        {2, 9, 4, 3},    {1, 6000, 1, 4}, {1, 100, 40, 4},  {1, 1, 1, 1},    {4, 3, 5, 2},     {3, 0, 2, 0}};
    for (const auto& c : ic) run_reduce_i32(c.o, c.r, c.i, c.mode, rng);
  }
  const kiln_host::Stats& s = kiln_host::stats();
  std::printf("%d of %d cases passed (%llu launches, %llu blocks, %llu wgmma, %llu async copies (TMA boxes, cp.async), %llu fiber switches)\n", g_cases - g_failed, g_cases,
              (unsigned long long)s.launches, (unsigned long long)s.blocks, (unsigned long long)s.wgmmas, (unsigned long long)s.copies,
              (unsigned long long)s.switches);
  return g_failed ? 1 : 0;
}
