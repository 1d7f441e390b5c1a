// Standalone check and timing of the CUDA matrix products (kernels/cuda/gemm.cu and, on Hopper,
// the opt-in wgmma kernel of kernels/cuda/gemm_sm90.cu), for a GPU machine without Node.js.
// Build (no GPU needed; from the repository root): bash scripts/build-gemm-check.sh
//   (ARCHS="90" for the H100/H200 alone; gemm_sm90.cu is always compiled for sm_90a)
// Usage: gemm_cuda_check [--check] [--time] [--wgmma] [--variants]   (no flag: --check --time --wgmma)
//   --check     every edge case (odd sizes, K = 0, transposes, padded leading dims, misaligned
//               bases, batch strides and broadcasts, beta accumulation, > 65535 batches) for every
//               element-type pair and precision, through the public entry point and through both
//               tile configurations (and the wgmma kernel on compute capability 9.x, which declines
//               the layouts it does not take), against a float64 CPU reference; C is poisoned with
//               NaN when beta = 0 and the padding around C must come back untouched. Exits 1 on a failure.
//   --time      TFLOP/s of the shipped kernels at 4096^3 (every layout for bf16) and 2048^3 f64.
//   --wgmma     (compute capability 9.x) the wgmma kernel alone: its edge cases (ragged M/N/K, K = 16,
//               K = 1, every layout, batches, broadcasts, beta, > 65535 batches), which it must take,
//               against the float64 reference; 4096^3 and 8192^3 against sampled float64 dot
//               products and against the mma.sync kernel; then both kernels' TFLOP/s at 4096^3
//               (every layout) and 8192^3.
//   --variants  bf16 / f32 NN TFLOP/s of other tile configurations (for tuning HalfBig/FloatBig/Tf32Big).
//   --profile   one bf16 and one 3xTF32 launch at 4096^3 (to run under ncu).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "../../kernels/cuda/gemm.cu"
#ifdef KILN_GEMM_SM90
#include "../../kernels/cuda/gemm_sm90.h"
#endif

using namespace kiln::cuda;

// Kernels of the check itself live outside anonymous namespaces (nvcc's launch stubs cannot tell
// this file's anonymous namespace from gemm.cu's).
namespace check_kernels {

// Deterministic values in [-1, 1) from the element index (device-side fill: 8192^2 on the host is slow).
template <class T>
__global__ void fill_uniform(T* p, int64_t n, uint32_t seed) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint64_t x = uint64_t(i) * 0x9E3779B97F4A7C15ull + seed;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    const float v = float(uint32_t(x >> 40)) * (2.0f / 16777216.0f) - 1.0f;
    if constexpr (std::is_same<T, __half>::value) p[i] = __float2half_rn(v);
    else p[i] = __float2bfloat16_rn(v);
  }
}

}  // namespace check_kernels

namespace {

#define CK(x)                                                                           \
  do {                                                                                  \
    cudaError_t e_ = (x);                                                               \
    if (e_ != cudaSuccess) {                                                            \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(2);                                                                     \
    }                                                                                   \
  } while (0)

size_t esize(GemmType t) { return t == GemmType::F64 ? 8 : t == GemmType::F32 ? 4 : 2; }
const char* tname(GemmType t) {
  switch (t) {
    case GemmType::F32: return "f32";
    case GemmType::F64: return "f64";
    case GemmType::F16: return "f16";
    default: return "bf16";
  }
}

// Host-side element conversions (exact for the stored types).
double load_elem(const std::vector<unsigned char>& buf, size_t i, GemmType t) {
  const unsigned char* p = buf.data() + i * esize(t);
  switch (t) {
    case GemmType::F32: { float f; std::memcpy(&f, p, 4); return f; }
    case GemmType::F64: { double d; std::memcpy(&d, p, 8); return d; }
    case GemmType::F16: { __half h; std::memcpy(&h, p, 2); return __half2float(h); }
    default: { __nv_bfloat16 h; std::memcpy(&h, p, 2); return __bfloat162float(h); }
  }
}
void store_elem(std::vector<unsigned char>& buf, size_t i, GemmType t, double v) {
  unsigned char* p = buf.data() + i * esize(t);
  switch (t) {
    case GemmType::F32: { float f = float(v); std::memcpy(p, &f, 4); break; }
    case GemmType::F64: std::memcpy(p, &v, 8); break;
    case GemmType::F16: { __half h = __float2half_rn(float(v)); std::memcpy(p, &h, 2); break; }
    default: { __nv_bfloat16 h = __float2bfloat16_rn(float(v)); std::memcpy(p, &h, 2); break; }
  }
}

struct Case {
  const char* name;
  int64_t batch, M, N, K;
  bool ta, tb;
  int64_t padA = 0, padB = 0, padC = 0;     // extra leading-dimension elements
  int64_t gapA = 0, gapB = 0, gapC = 0;     // extra elements between batch matrices
  bool bcastA = false, bcastB = false;      // batch stride 0
  double alpha = 1, beta = 0;
  int64_t offA = 0, offB = 0, offC = 0;     // base offsets in elements (misalignment)
  bool wgmmaOnly = false;                   // run the wgmma kernel alone, and it must take the case
};

struct Layout2 {
  int64_t rows, ld, stride, total;
};
Layout2 layout(int64_t batch, int64_t rows, int64_t cols, int64_t pad, int64_t gap, bool bcast, int64_t off) {
  Layout2 l;
  l.rows = rows;
  l.ld = cols + pad;
  l.stride = bcast ? 0 : rows * l.ld + gap;
  l.total = off + (batch - 1) * l.stride + rows * l.ld;
  return l;
}

struct Result {
  bool ok = true;
  double worstRatio = 0;  // max |err| / allowed
  double worstAcc = 0;    // max |err| / (|alpha| sum|a b| + |beta c|)
  double normRel = 0;     // ||out - ref|| / ||ref||
  std::string why;
};

struct Tol {
  double acc, out;  // error allowed per unit of sum |a b|, and per unit of |ref| (output rounding)
};

std::mt19937_64 rng(1234);

template <Mode MODE, class Big, class Small>
std::string forced(const Params& p, int which, bool vec) {
  if (which == 3 || !vec) return launch_layout<MODE, Small, false>(p);
  return which == 1 ? launch_layout<MODE, Big, true>(p) : launch_layout<MODE, Small, true>(p);
}

// Runs one case for an input type; `runs` lists (out type, precision, which launcher).
int g_fail = 0, g_cases = 0, g_declined = 0;
bool g_wgmma = false;  // the wgmma kernel is compiled in and the device is compute capability 9.x

void run_case(const Case& cs, GemmType in, bool quick) {
  const Layout2 la = layout(cs.batch, cs.ta ? cs.K : cs.M, cs.ta ? cs.M : cs.K, cs.padA, cs.gapA, cs.bcastA, cs.offA);
  const Layout2 lb = layout(cs.batch, cs.tb ? cs.N : cs.K, cs.tb ? cs.K : cs.N, cs.padB, cs.gapB, cs.bcastB, cs.offB);
  const Layout2 lc = layout(cs.batch, cs.M, cs.N, cs.padC, cs.gapC, false, cs.offC);
  std::uniform_real_distribution<double> U(-1, 1);
  std::vector<unsigned char> hA(std::max<int64_t>(la.total, 1) * esize(in)), hB(std::max<int64_t>(lb.total, 1) * esize(in));
  for (int64_t i = 0; i < la.total; ++i) store_elem(hA, i, in, U(rng));
  for (int64_t i = 0; i < lb.total; ++i) store_elem(hB, i, in, U(rng));
  // op(A) as [batch][M][K] and op(B)^T as [batch][N][K] in double (what the kernel sees, exactly).
  const int64_t bA = cs.bcastA ? 1 : cs.batch, bB = cs.bcastB ? 1 : cs.batch;
  std::vector<double> A(bA * cs.M * cs.K), Bt(bB * cs.N * cs.K);
  for (int64_t b = 0; b < bA; ++b)
    for (int64_t i = 0; i < cs.M; ++i)
      for (int64_t k = 0; k < cs.K; ++k)
        A[(b * cs.M + i) * cs.K + k] =
            load_elem(hA, cs.offA + b * la.stride + (cs.ta ? k * la.ld + i : i * la.ld + k), in);
  for (int64_t b = 0; b < bB; ++b)
    for (int64_t j = 0; j < cs.N; ++j)
      for (int64_t k = 0; k < cs.K; ++k)
        Bt[(b * cs.N + j) * cs.K + k] =
            load_elem(hB, cs.offB + b * lb.stride + (cs.tb ? j * lb.ld + k : k * lb.ld + j), in);
  std::vector<double> dot(cs.batch * cs.M * cs.N), sabs(cs.batch * cs.M * cs.N);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < cs.batch; ++b)
    for (int64_t i = 0; i < cs.M; ++i) {
      const double* a = &A[((cs.bcastA ? 0 : b) * cs.M + i) * cs.K];
      for (int64_t j = 0; j < cs.N; ++j) {
        const double* bt = &Bt[((cs.bcastB ? 0 : b) * cs.N + j) * cs.K];
        double s = 0, sa = 0;
        for (int64_t k = 0; k < cs.K; ++k) {
          s += a[k] * bt[k];
          sa += std::fabs(a[k] * bt[k]);
        }
        dot[(b * cs.M + i) * cs.N + j] = s;
        sabs[(b * cs.M + i) * cs.N + j] = sa;
      }
    }

  void *dA = nullptr, *dB = nullptr, *dC = nullptr;
  CK(cudaMalloc(&dA, hA.size()));
  CK(cudaMalloc(&dB, hB.size()));
  CK(cudaMemcpy(dA, hA.data(), hA.size(), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dB, hB.data(), hB.size(), cudaMemcpyHostToDevice));

  struct Run {
    GemmType out;
    MatmulPrecision prec;
    int which;  // 0 public entry, 1 big tiles, 2 small tiles, 3 element loads, 4 wgmma
  };
  std::vector<Run> runs;
  std::vector<GemmType> outs = {in};
  if (in == GemmType::F16 || in == GemmType::BF16) outs.push_back(GemmType::F32);
  std::vector<MatmulPrecision> precs = {MatmulPrecision::Highest};
  if (in == GemmType::F32) precs.push_back(MatmulPrecision::High);
  for (GemmType o : outs)
    for (MatmulPrecision pr : precs)
      for (int w = cs.wgmmaOnly ? 4 : 0; w < (in == GemmType::F64 || quick ? 1 : 4); ++w) runs.push_back({o, pr, w});
  if (g_wgmma && (in == GemmType::BF16 || in == GemmType::F16))
    for (GemmType o : outs) runs.push_back({o, MatmulPrecision::Highest, 4});

  for (const Run& r : runs) {
    ++g_cases;
    const GemmType out = r.out;
    std::vector<unsigned char> hC(std::max<int64_t>(lc.total, 1) * esize(out));
    std::vector<char> inMatrix(lc.total, 0);
    const double sentinel = 1234.5;
    for (int64_t i = 0; i < lc.total; ++i) store_elem(hC, i, out, sentinel);
    for (int64_t b = 0; b < cs.batch; ++b)
      for (int64_t i = 0; i < cs.M; ++i)
        for (int64_t j = 0; j < cs.N; ++j) {
          const int64_t at = cs.offC + b * lc.stride + i * lc.ld + j;
          inMatrix[at] = 1;
          store_elem(hC, at, out, cs.beta == 0 ? std::nan("") : U(rng));
        }
    std::vector<unsigned char> hC0 = hC;
    CK(cudaMalloc(&dC, hC.size()));
    CK(cudaMemcpy(dC, hC.data(), hC.size(), cudaMemcpyHostToDevice));
    GemmArgs g;
    g.batch = cs.batch;
    g.M = cs.M;
    g.N = cs.N;
    g.K = cs.K;
    g.transA = cs.ta;
    g.transB = cs.tb;
    g.alpha = cs.alpha;
    g.beta = cs.beta;
    g.A = static_cast<unsigned char*>(dA) + cs.offA * esize(in);
    g.lda = la.ld;
    g.strideA = la.stride;
    g.B = static_cast<unsigned char*>(dB) + cs.offB * esize(in);
    g.ldb = lb.ld;
    g.strideB = lb.stride;
    g.C = static_cast<unsigned char*>(dC) + cs.offC * esize(out);
    g.ldc = lc.ld;
    g.strideC = lc.stride;
    std::string err;
    if (r.which == 0) {
      err = gemm(in, out, r.prec, g);
    } else if (r.which == 4) {
#ifdef KILN_GEMM_SM90
      bool handled = false;
      err = gemm_sm90(in, out, g, handled);
      if (!handled) {
        // Declined: fine for layouts it does not take (the dispatch falls back), a failure for its own cases.
        const std::string why = gemm_sm90_unsupported(in, out, g);
        CK(cudaFree(dC));
        if (cs.wgmmaOnly) ++g_fail;
        else ++g_declined;
        std::printf("%-4s %-34s %4s->%-4s%-8s wgmma  declined: %s\n", cs.wgmmaOnly ? "FAIL" : "skip", cs.name, tname(in),
                    tname(out), "", why.empty() ? "no sm_90a image or the TMA unit refused the layout" : why.c_str());
        continue;
      }
#endif
    } else {
      // 1: big tiles (16-byte copies when the operands allow them, else small tiles with element
      // loads, as the entry point does); 2: small tiles, same rule; 3: element loads forced.
      Params p = make_params(in, out, g);
      const bool vec = p.vecA && p.vecB;
      switch (in) {
        case GemmType::BF16: err = forced<Mode::BF16, HalfBig, HalfSmall>(p, r.which, vec); break;
        case GemmType::F16: err = forced<Mode::F16, HalfBig, HalfSmall>(p, r.which, vec); break;
        default:
          err = r.prec == MatmulPrecision::High ? forced<Mode::TF32, Tf32Big, FloatSmall>(p, r.which, vec)
                                                : forced<Mode::TF32x3, FloatBig, FloatSmall>(p, r.which, vec);
      }
    }
    if (err.empty()) {
      const cudaError_t e = cudaDeviceSynchronize();
      if (e != cudaSuccess) err = cudaGetErrorString(e);
    }
    Result res;
    if (!err.empty()) {
      res.ok = false;
      res.why = "error: " + err;
    } else {
      CK(cudaMemcpy(hC.data(), dC, hC.size(), cudaMemcpyDeviceToHost));
      Tol tol{1e-5, 0};
      if (in == GemmType::F64) tol = {1e-13, 0};
      if (in == GemmType::F32 && r.prec == MatmulPrecision::High) tol = {4e-3, 0};
      if (out == GemmType::BF16) tol.out = 1.0 / 256;
      if (out == GemmType::F16) tol.out = 1.0 / 1024;
      const double tiny = out == GemmType::F16 ? std::ldexp(1.0, -25) : 1e-30;  // half a float16 subnormal step
      double num = 0, den = 0;
      for (int64_t at = 0; at < lc.total; ++at) {
        const double got = load_elem(hC, at, out);
        if (!inMatrix[at]) {
          if (std::memcmp(&hC[at * esize(out)], &hC0[at * esize(out)], esize(out)) != 0 && res.ok) {
            res.ok = false;
            res.why = "wrote outside C at element " + std::to_string(at);
          }
          continue;
        }
        const int64_t rel = at - cs.offC;
        const int64_t b = rel / (lc.stride ? lc.stride : 1), inb = rel - b * lc.stride;
        const int64_t i = inb / lc.ld, j = inb % lc.ld;
        const int64_t o = (b * cs.M + i) * cs.N + j;
        const double old = cs.beta == 0 ? 0 : load_elem(hC0, at, out);
        const double want = cs.alpha * dot[o] + cs.beta * old;
        const double scale = std::fabs(cs.alpha) * sabs[o] + std::fabs(cs.beta * old);
        const double allowed = tol.acc * scale + tol.out * std::fabs(want) + tiny;
        const double diff = std::fabs(got - want);
        num += diff * diff;
        den += want * want;
        if (!(diff <= allowed)) {
          if (res.ok) {
            char buf[256];
            std::snprintf(buf, sizeof buf, "C[b=%lld,i=%lld,j=%lld] = %.9g, want %.9g (allowed %.3g)", (long long)b,
                          (long long)i, (long long)j, got, want, allowed);
            res.why = buf;
          }
          res.ok = false;
        }
        if (std::isfinite(diff)) {
          res.worstRatio = std::max(res.worstRatio, diff / allowed);
          if (scale > 0) res.worstAcc = std::max(res.worstAcc, diff / scale);
        }
      }
      res.normRel = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
    }
    CK(cudaFree(dC));
    const char* which = r.which == 0 ? "auto" : r.which == 1 ? "big" : r.which == 2 ? "small" : r.which == 3 ? "elem" : "wgmma";
    const char* prec = in != GemmType::F32 ? "" : r.prec == MatmulPrecision::High ? " high" : " highest";
    if (!res.ok) ++g_fail;
    std::printf("%-4s %-34s %4s->%-4s%-8s %-5s  err/sum|ab| %.2e  norm-rel %.2e  %s\n", res.ok ? "ok" : "FAIL", cs.name,
                tname(in), tname(out), prec, which, res.worstAcc, res.normRel, res.ok ? "" : res.why.c_str());
  }
  CK(cudaFree(dA));
  CK(cudaFree(dB));
}

void check() {
  std::vector<Case> cases;
  auto add = [&](Case c) { cases.push_back(c); };
  add({"1x1x1", 1, 1, 1, 1, false, false});
  add({"1x1x1 TT", 1, 1, 1, 1, true, true});
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      static char names[4][40];
      std::snprintf(names[ta * 2 + tb], 40, "127x129x65 %c%c", ta ? 'T' : 'N', tb ? 'T' : 'N');
      add({names[ta * 2 + tb], 1, 127, 129, 65, bool(ta), bool(tb)});
    }
  {
    Case c{"K=0 beta=0", 2, 5, 7, 0, false, false};
    add(c);
    c.name = "K=0 beta=0.5";
    c.beta = 0.5;
    add(c);
  }
  {
    Case c{"64x64x64 alpha=-0.5 beta=1.5 NT", 1, 64, 64, 64, false, true};
    c.alpha = -0.5;
    c.beta = 1.5;
    add(c);
  }
  {
    Case c{"padded ld (aligned) 100x72x40", 1, 100, 72, 40, false, false};
    c.padA = 8;
    c.padB = 16;
    c.padC = 8;
    add(c);
    c.name = "padded ld (odd) 100x72x40 TN";
    c.ta = true;
    c.padA = 3;
    c.padB = 5;
    c.padC = 1;
    add(c);
  }
  {
    Case c{"misaligned bases 70x90x50", 1, 70, 90, 50, false, false};
    c.offA = 1;
    c.offB = 3;
    c.offC = 1;
    add(c);
  }
  {
    Case c{"batch 5 gaps + B broadcast, beta", 5, 33, 47, 29, false, false};
    c.gapA = 7;
    c.gapC = 3;
    c.bcastB = true;
    c.beta = -1;
    add(c);
    c.name = "batch 4 A broadcast TT, aligned gaps";
    c.batch = 4;
    c.ta = c.tb = true;
    c.gapA = 0;
    c.gapB = 8;
    c.gapC = 8;
    c.bcastA = true;
    c.bcastB = false;
    c.beta = 0;
    add(c);
  }
  add({"batch 70000 2x3x4 (grid z loop)", 70000, 2, 3, 4, false, true});
  add({"K=1 300x500", 1, 300, 500, 1, false, false});
  add({"1x1024 @ 1024x1000 (row)", 1, 1, 1000, 1024, false, false});
  add({"1024x1x1024 (column)", 1, 1024, 1, 1024, false, true});
  add({"1024x1024x1024", 1, 1024, 1024, 1024, false, false});
  add({"2304x2304x136 (big tiles)", 1, 2304, 2304, 136, false, false});
  add({"2305x2311x137 TN (big, odd)", 1, 2305, 2311, 137, true, false});
  add({"2304x2312x144 NT (big, edges)", 1, 2304, 2312, 144, false, true});
  add({"4 x 512x640x96 TT (big via batch)", 4, 512, 640, 96, true, true});
  add({"K=4096 40x48", 1, 40, 48, 4096, false, false});
  for (const Case& c : cases)
    for (GemmType in : {GemmType::F32, GemmType::BF16, GemmType::F16, GemmType::F64})
      run_case(c, in, c.batch > 1000);
  std::printf("check: %d runs, %d failed, %d declined by the wgmma kernel (layouts it leaves to mma.sync)\n", g_cases, g_fail,
              g_declined);
}

// ------------------------------------------------------------------ timing

template <class F>
double time_ms(F launch) {
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  for (int i = 0; i < 3; ++i) launch();
  CK(cudaDeviceSynchronize());
  std::vector<float> ts;
  for (int r = 0; r < 7; ++r) {
    CK(cudaEventRecord(e0));
    for (int i = 0; i < 5; ++i) launch();
    CK(cudaEventRecord(e1));
    CK(cudaEventSynchronize(e1));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    ts.push_back(ms / 5);
  }
  CK(cudaEventDestroy(e0));
  CK(cudaEventDestroy(e1));
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2];
}

struct Bufs {
  void *A, *B, *C;
};
Bufs make_bufs(int64_t n, GemmType in) {
  Bufs b;
  std::vector<float> h(n * n);
  std::uniform_real_distribution<float> U(-1, 1);
  for (auto& x : h) x = U(rng);
  std::vector<unsigned char> raw(n * n * esize(in));
  for (int64_t i = 0; i < n * n; ++i) store_elem(raw, i, in, h[i]);
  CK(cudaMalloc(&b.A, raw.size()));
  CK(cudaMalloc(&b.B, raw.size()));
  CK(cudaMalloc(&b.C, n * n * 8));
  CK(cudaMemcpy(b.A, raw.data(), raw.size(), cudaMemcpyHostToDevice));
  for (auto& x : h) x = U(rng);
  for (int64_t i = 0; i < n * n; ++i) store_elem(raw, i, in, h[i]);
  CK(cudaMemcpy(b.B, raw.data(), raw.size(), cudaMemcpyHostToDevice));
  return b;
}
void free_bufs(Bufs b) {
  CK(cudaFree(b.A));
  CK(cudaFree(b.B));
  CK(cudaFree(b.C));
}
GemmArgs square(int64_t n, Bufs b, bool ta, bool tb) {
  GemmArgs g;
  g.M = g.N = g.K = n;
  g.transA = ta;
  g.transB = tb;
  g.A = b.A;
  g.B = b.B;
  g.C = b.C;
  g.lda = g.ldb = g.ldc = n;
  return g;
}

void report(const char* what, int64_t n, double ms) {
  std::printf("time %-40s %8.3f ms  %7.1f TFLOP/s\n", what, ms, 2.0 * n * n * n / (ms * 1e9));
}

void timing() {
  const int64_t n = 4096;
  for (GemmType in : {GemmType::BF16, GemmType::F16}) {
    Bufs b = make_bufs(n, in);
    for (int l = 0; l < 4; ++l) {
      const bool ta = l & 2, tb = l & 1;
      for (GemmType out : {in, GemmType::F32}) {
        if (in == GemmType::F16 && (l != 0 || out != in)) continue;
        GemmArgs g = square(n, b, ta, tb);
        std::string err;
        const double ms = time_ms([&] { err = gemm(in, out, MatmulPrecision::Highest, g); });
        char what[80];
        std::snprintf(what, sizeof what, "%s->%s %c%c 4096^3", tname(in), tname(out), ta ? 'T' : 'N', tb ? 'T' : 'N');
        if (!err.empty()) std::printf("time %s: error %s\n", what, err.c_str());
        else report(what, n, ms);
      }
    }
    free_bufs(b);
  }
  {
    Bufs b = make_bufs(n, GemmType::F32);
    for (MatmulPrecision pr : {MatmulPrecision::Highest, MatmulPrecision::High})
      for (int l = 0; l < 4; ++l) {
        const bool ta = l & 2, tb = l & 1;
        if (pr == MatmulPrecision::High && l != 0) continue;
        GemmArgs g = square(n, b, ta, tb);
        std::string err;
        const double ms = time_ms([&] { err = gemm(GemmType::F32, GemmType::F32, pr, g); });
        char what[80];
        std::snprintf(what, sizeof what, "f32 %s %c%c 4096^3", pr == MatmulPrecision::High ? "high (tf32)" : "highest (3xtf32)",
                      ta ? 'T' : 'N', tb ? 'T' : 'N');
        if (!err.empty()) std::printf("time %s: error %s\n", what, err.c_str());
        else report(what, n, ms);
      }
    GemmArgs g = square(1024, b, false, false);
    report("f32 highest 1024^3", 1024, time_ms([&] { gemm(GemmType::F32, GemmType::F32, MatmulPrecision::Highest, g); }));
    report("f32 high 1024^3", 1024, time_ms([&] { gemm(GemmType::F32, GemmType::F32, MatmulPrecision::High, g); }));
    free_bufs(b);
  }
  {
    Bufs b = make_bufs(2048, GemmType::F64);
    GemmArgs g = square(2048, b, false, false);
    report("f64 2048^3", 2048, time_ms([&] { gemm(GemmType::F64, GemmType::F64, MatmulPrecision::Highest, g); }));
    free_bufs(b);
  }
}

template <Mode MODE, class C>
void variant(const char* name, Bufs b, GemmType in, GemmType out) {
  GemmArgs g = square(4096, b, false, false);
  Params p = make_params(in, out, g);
  std::string err;
  const double ms = time_ms([&] { err = launch_tc<MODE, C, false, false, true>(p); });
  if (!err.empty()) std::printf("variant %s: error %s\n", name, err.c_str());
  else report(name, 4096, ms);
}

void variants() {
  Bufs b = make_bufs(4096, GemmType::BF16);
  variant<Mode::BF16, HalfBig>("bf16 shipped (HalfBig 128x256 8w BK32 s4)", b, GemmType::BF16, GemmType::BF16);
  variant<Mode::BF16, Cfg<128, 256, 2, 4, 64, 3, 1>>("bf16 128x256 8w BK32 s3", b, GemmType::BF16, GemmType::BF16);
  variant<Mode::BF16, Cfg<256, 128, 4, 2, 64, 4, 1>>("bf16 256x128 8w BK32 s4", b, GemmType::BF16, GemmType::BF16);
  variant<Mode::BF16, Cfg<128, 128, 2, 2, 64, 4, 2>>("bf16 128x128 4w BK32 s4", b, GemmType::BF16, GemmType::BF16);
  free_bufs(b);
  Bufs f = make_bufs(4096, GemmType::F32);
  variant<Mode::TF32x3, FloatBig>("3xtf32 shipped (FloatBig 128x128 8w s4)", f, GemmType::F32, GemmType::F32);
  variant<Mode::TF32x3, Cfg<128, 256, 2, 4, 64, 3, 1>>("3xtf32 128x256 8w BK16 s3", f, GemmType::F32, GemmType::F32);
  variant<Mode::TF32, Tf32Big>("tf32 shipped (Tf32Big 128x256 8w s3)", f, GemmType::F32, GemmType::F32);
  variant<Mode::TF32, FloatBig>("tf32 128x128 8w BK16 s4", f, GemmType::F32, GemmType::F32);
  free_bufs(f);
}

// One launch each of the shipped bf16 and 3xTF32 kernels at 4096^3 NN (for a profiler).
void profile() {
  for (GemmType in : {GemmType::BF16, GemmType::F32}) {
    Bufs b = make_bufs(4096, in);
    GemmArgs g = square(4096, b, false, false);
    const std::string err = gemm(in, in, MatmulPrecision::Highest, g);
    CK(cudaDeviceSynchronize());
    if (!err.empty()) std::printf("profile: %s\n", err.c_str());
    free_bufs(b);
  }
}

#ifdef KILN_GEMM_SM90
#include "gemm_sm90_check.cuh"
#endif

}  // namespace

int main(int argc, char** argv) {
  bool doCheck = false, doTime = false, doWgmma = false, doVariants = false, doProfile = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--check")) doCheck = true;
    else if (!std::strcmp(argv[i], "--time")) doTime = true;
    else if (!std::strcmp(argv[i], "--wgmma")) doWgmma = true;
    else if (!std::strcmp(argv[i], "--variants")) doVariants = true;
    else if (!std::strcmp(argv[i], "--profile")) doProfile = true;
  }
  if (!doCheck && !doTime && !doWgmma && !doVariants && !doProfile) doCheck = doTime = doWgmma = true;
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s (sm_%d%d, %d SMs)\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount);
#ifdef KILN_GEMM_SM90
  g_wgmma = prop.major == 9;
  std::printf("wgmma kernel: compiled, %s\n", g_wgmma ? "checked on this device" : "skipped (needs compute capability 9.x)");
#else
  std::printf("wgmma kernel: not compiled in (build with scripts/build-gemm-check.sh)\n");
#endif
  if (doCheck) check();
  if (doTime) timing();
#ifdef KILN_GEMM_SM90
  if (doWgmma && g_wgmma) {
    check_wgmma();
    wgmma_large_and_timing();
    wgmma_crossover();
  }
#endif
  if (doVariants) variants();
  if (doProfile) profile();
  std::fflush(stdout);
  return g_fail ? 1 : 0;
}
