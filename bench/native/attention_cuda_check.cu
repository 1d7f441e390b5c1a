// Standalone check and timing of the CUDA attention kernels (kernels/cuda/attention_fa2.cu, the
// FlashAttention-2 fast path, attention.cu's general "basic" kernels and, built with
// KILN_CHECK_SM90, the Hopper wgmma kernels of attention_{fwd,bwd}_sm90.cu), for a GPU machine
// without Node.js. Build: scripts/build-attention-check.sh (no GPU needed) -> build/attention_cuda_check
// Usage: attention_cuda_check [--cpu-only] [--no-check] [--no-time] [--basic-time] [--no-wgmma]
//                             [--sm90-only] [--paths wg-f,wg-fp,wg-fpp,wg-b,wg-bk,wg-bs,wg-bq,wg-br,wg-bm,wg-bu,wg-bv,wg-bt,wg-g,wg-fn,wg-bp,wg-ba,wg-f3,wg-f3a,wg]
//                             [--shape B,H,T,D,causal]
//   (default)     correctness on edge shapes against a float64 CPU reference, then timings; the
//                 Hopper kernels last (checked, then timed beside fa2).
//   --cpu-only    only validates the CPU reference's gradients by finite differences and the
//                 failure diagnosis on planted faults (no GPU needed).
//   --no-check / --no-time  skip a part; --basic-time times the basic kernels at every shape
//                 (default: only at the first shape of each head dim, they are slow).
//   --no-wgmma / --sm90-only  without the Hopper kernels / only them (fa2 still times as the baseline);
//   --shape       only the timings at one shape (B,H,T,D,causal), e.g. under a profiler;
//   --paths       which Hopper check paths run (scripts/gpu-check.sh runs each in its own process, so
//                 that a kernel that faults cannot hide the others' results).
// Correctness: for each case (odd T, Tq != Tk, causal and not, key lengths incl. 0, D 32/64/128,
// bf16 and f16) both paths run forward (out, lse) and backward (dq, dk, dv) on NaN-poisoned outputs;
// each is compared with the reference on the same rounded inputs by ||x - ref|| / ||ref|| and max
// |x - ref|; a failure is diagnosed (bad elements per batch*head, a block map, a constant factor,
// moved rows or columns). Also: the public entry point picks fa2, or on compute capability 9.x the
// default dispatch's sm90 / fa2 mix (out, dK, dV bitwise equal), and falls back to
// basic for a misaligned tensor. Timing: cudaEvent, median of 10 after warm-up; FLOPs = 4 B H T^2 D
// (x 0.5 when causal) for the forward, 2.5x that for the backward. Exit code 1 on any FAIL, 2 on a
// CUDA error.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../../kernels/cuda/attention_fa2.h"
#ifdef KILN_CHECK_SM90
#include "../../kernels/cuda/attention_sm90.h"
#endif

using kiln::cpu::AttentionArgs;
using kiln::cuda::AttnDType;

namespace {

#define CK(x)                                                                                 \
  do {                                                                                        \
    cudaError_t e_ = (x);                                                                     \
    if (e_ != cudaSuccess) {                                                                  \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(2);                                                                           \
    }                                                                                         \
  } while (0)

void need(const std::string& err, const char* what) {
  if (!err.empty()) {
    std::fprintf(stderr, "%s: %s\n", what, err.c_str());
    std::exit(2);
  }
}

// ---- float64 reference ------------------------------------------------------------------------

struct Problem {
  int64_t B, H, Tq, Tk, D;
  bool causal;
  std::vector<int32_t> lens;  // empty or [B]
  double scale;
};

struct Grads {
  std::vector<double> out, lse, dq, dk, dv;
};

// Plain attention with explicit score rows, one (b, h) at a time.
Grads reference(const Problem& P, const std::vector<double>& q, const std::vector<double>& k,
                const std::vector<double>& v, const std::vector<double>& dout) {
  const int64_t BH = P.B * P.H, Tq = P.Tq, Tk = P.Tk, D = P.D, off = Tk - Tq;
  Grads r;
  r.out.assign(BH * Tq * D, 0);
  r.lse.assign(BH * Tq, -INFINITY);
  r.dq.assign(BH * Tq * D, 0);
  r.dk.assign(BH * Tk * D, 0);
  r.dv.assign(BH * Tk * D, 0);
#pragma omp parallel for schedule(dynamic)
  for (int64_t bh = 0; bh < BH; ++bh) {
    const int64_t b = bh / P.H;
    const int64_t kend = P.lens.empty() ? Tk : std::min<int64_t>(Tk, std::max<int32_t>(0, P.lens[b]));
    const double* Q = &q[bh * Tq * D];
    const double* K = &k[bh * Tk * D];
    const double* V = &v[bh * Tk * D];
    const double* dO = &dout[bh * Tq * D];
    std::vector<double> p(Tk), dp(Tk);
    for (int64_t i = 0; i < Tq; ++i) {
      double m = -INFINITY;
      for (int64_t j = 0; j < Tk; ++j) {
        const bool vis = j < kend && (!P.causal || j <= i + off);
        double s = -INFINITY;
        if (vis) {
          s = 0;
          for (int64_t d = 0; d < D; ++d) s += Q[i * D + d] * K[j * D + d];
          s *= P.scale;
        }
        p[j] = s;
        m = std::max(m, s);
      }
      if (m == -INFINITY) continue;  // sees no key: out 0, lse -inf, no gradient
      double l = 0;
      for (int64_t j = 0; j < Tk; ++j) l += p[j] == -INFINITY ? 0 : std::exp(p[j] - m);
      const double lse = m + std::log(l);
      r.lse[bh * Tq + i] = lse;
      for (int64_t j = 0; j < Tk; ++j) p[j] = p[j] == -INFINITY ? 0 : std::exp(p[j] - lse);
      double Di = 0;
      for (int64_t j = 0; j < Tk; ++j) {
        double o = 0;
        for (int64_t d = 0; d < D; ++d) o += dO[i * D + d] * V[j * D + d];
        dp[j] = o;
        Di += p[j] * o;
      }
      for (int64_t d = 0; d < D; ++d) {
        double o = 0;
        for (int64_t j = 0; j < Tk; ++j) o += p[j] * V[j * D + d];
        r.out[(bh * Tq + i) * D + d] = o;
      }
      for (int64_t j = 0; j < Tk; ++j) {
        if (p[j] == 0) continue;
        const double ds = p[j] * (dp[j] - Di) * P.scale;
        for (int64_t d = 0; d < D; ++d) {
          r.dq[(bh * Tq + i) * D + d] += ds * K[j * D + d];
          r.dk[(bh * Tk + j) * D + d] += ds * Q[i * D + d];  // rows of one bh belong to one thread
          r.dv[(bh * Tk + j) * D + d] += p[j] * dO[i * D + d];
        }
      }
    }
  }
  return r;
}

// The reference's gradients against central differences of L = sum(out o dout) (CPU only).
int check_reference() {
  Problem P{1, 2, 5, 7, 4, true, {6}, 0.7};
  std::mt19937_64 rng(7);
  std::normal_distribution<double> N(0, 1);
  auto fill = [&](int64_t n) {
    std::vector<double> x(n);
    for (auto& e : x) e = N(rng);
    return x;
  };
  const int64_t nq = P.B * P.H * P.Tq * P.D, nk = P.B * P.H * P.Tk * P.D;
  std::vector<double> q = fill(nq), k = fill(nk), v = fill(nk), dout = fill(nq);
  const Grads g = reference(P, q, k, v, dout);
  auto loss = [&]() {
    const Grads r = reference(P, q, k, v, dout);
    double s = 0;
    for (size_t i = 0; i < r.out.size(); ++i) s += r.out[i] * dout[i];
    return s;
  };
  double worst = 0;
  auto fd = [&](std::vector<double>& x, const std::vector<double>& grad) {
    for (size_t i = 0; i < x.size(); ++i) {
      const double keep = x[i], h = 1e-5;
      x[i] = keep + h;
      const double up = loss();
      x[i] = keep - h;
      const double dn = loss();
      x[i] = keep;
      worst = std::max(worst, std::fabs((up - dn) / (2 * h) - grad[i]));
    }
  };
  fd(q, g.dq);
  fd(k, g.dk);
  fd(v, g.dv);
  const bool ok = worst < 1e-6;
  std::printf("reference gradients vs finite differences: max |diff| %.2e  %s\n", worst, ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}

// ---- device buffers ---------------------------------------------------------------------------

uint16_t to_bits(double x, AttnDType t) {
  if (t == AttnDType::BF16) return __nv_bfloat16_raw(__float2bfloat16_rn(static_cast<float>(x))).x;
  return __half_raw(__float2half_rn(static_cast<float>(x))).x;
}
double from_bits(uint16_t u, AttnDType t) {
  if (t == AttnDType::BF16) {
    __nv_bfloat16_raw r;
    r.x = u;
    return __bfloat162float(__nv_bfloat16(r));
  }
  __half_raw r;
  r.x = u;
  return __half2float(__half(r));
}

struct Dev {
  void* p = nullptr;
  size_t bytes = 0;
  explicit Dev(size_t n) : bytes(std::max<size_t>(n, 16)) { CK(cudaMalloc(&p, bytes)); }
  ~Dev() { cudaFree(p); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  void poison() { CK(cudaMemset(p, 0xff, bytes)); }  // NaN in every float type
};

std::vector<double> fetch_half(const Dev& d, size_t n, AttnDType t) {
  std::vector<uint16_t> h(n);
  CK(cudaMemcpy(h.data(), d.p, n * 2, cudaMemcpyDeviceToHost));
  std::vector<double> r(n);
  for (size_t i = 0; i < n; ++i) r[i] = from_bits(h[i], t);
  return r;
}
std::vector<double> fetch_float(const Dev& d, size_t n) {
  std::vector<float> h(n);
  CK(cudaMemcpy(h.data(), d.p, n * 4, cudaMemcpyDeviceToHost));
  return std::vector<double>(h.begin(), h.end());
}

// ||x - ref|| / ||ref|| (or the plain norm of x when ref is 0) and max |x - ref|; NaN -> inf.
struct Err {
  double rel = 0, maxAbs = 0;
};
Err compare(const std::vector<double>& x, const std::vector<double>& ref, bool lse = false) {
  double num = 0, den = 0, mx = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (lse && std::isinf(ref[i])) {  // a row that sees nothing must say -inf
      if (!(std::isinf(x[i]) && x[i] < 0)) return {INFINITY, INFINITY};
      continue;
    }
    if (!std::isfinite(x[i])) return {INFINITY, INFINITY};
    const double d = x[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
    mx = std::max(mx, std::fabs(d));
  }
  return {den > 0 ? std::sqrt(num / den) : std::sqrt(num), mx};
}

// ---- failure diagnosis ------------------------------------------------------------------------
// When a path fails, where and how: which (batch*head) slices hold the bad elements, a map of one
// slice (rows x columns in blocks), whether the output is the reference times a constant, and
// whether a bad row or column is another reference row or column (a row/column indexing, swizzle or
// fragment-layout error shows up as a permutation). x and ref are [BH, T, D] (lse: D = 1).

struct Diagnosis {
  int64_t bad = 0, nan = 0, firstBh = -1;
  std::vector<int64_t> badPerBh;
  double scale = 1, scaledRel = 0;  // least-squares x ~ scale * ref over firstBh, and what remains
  std::vector<std::string> map;     // firstBh: a line per row block, a char per column block
  int64_t rowBlock = 16, colBlock = 8;
  struct Match {
    int64_t index = -1, bh = -1, refIndex = -1;  // x's row/column, matched ref row/column (and bh for rows)
    double err = INFINITY;                       // relative error of the best match
  };
  std::vector<Match> rows, cols;  // a few bad rows/columns of firstBh and their best reference match
};

// An element is bad when |x - ref| > 3 tolRel rms(ref) (or > tolAbs when given), or x is not finite.
Diagnosis diagnose(const std::vector<double>& x, const std::vector<double>& ref, int64_t BH, int64_t T, int64_t D,
                   double tolRel, double tolAbsGiven = 0) {
  Diagnosis g;
  g.badPerBh.assign(BH, 0);
  double rms = 0;
  int64_t finite = 0;
  for (double r : ref)
    if (std::isfinite(r)) rms += r * r, ++finite;
  rms = std::sqrt(rms / std::max<int64_t>(finite, 1));
  const double tolAbs = tolAbsGiven > 0 ? tolAbsGiven : std::max(3 * tolRel * rms, 1e-6);
  auto badAt = [&](size_t i) {
    if (std::isinf(ref[i])) return !(x[i] == ref[i]);
    return !std::isfinite(x[i]) || std::fabs(x[i] - ref[i]) > tolAbs;
  };
  for (int64_t bh = 0; bh < BH; ++bh)
    for (int64_t i = bh * T * D; i < (bh + 1) * T * D; ++i)
      if (badAt(i)) {
        ++g.bad, ++g.badPerBh[bh];
        if (!std::isfinite(x[i]) && !std::isinf(ref[i])) ++g.nan;
        if (g.firstBh < 0) g.firstBh = bh;
      }
  if (g.firstBh < 0) return g;
  const int64_t b0 = g.firstBh * T * D;
  double xx = 0, xr = 0, rr = 0;
  for (int64_t i = b0; i < b0 + T * D; ++i)
    if (std::isfinite(x[i]) && std::isfinite(ref[i])) xx += x[i] * x[i], xr += x[i] * ref[i], rr += ref[i] * ref[i];
  g.scale = rr > 0 ? xr / rr : 1;
  // ||x - scale ref||^2 = xx - xr^2 / rr at the least-squares scale.
  g.scaledRel = rr > 0 ? std::sqrt(std::max(0.0, xx - xr * xr / rr) / rr) : 0;
  while (T / g.rowBlock > 32) g.rowBlock *= 2;
  if (D == 1) g.colBlock = 1;
  for (int64_t r0 = 0; r0 < T; r0 += g.rowBlock) {
    std::string line;
    for (int64_t c0 = 0; c0 < D; c0 += g.colBlock) {
      int64_t n = 0, bad = 0, nan = 0;
      for (int64_t r = r0; r < std::min(T, r0 + g.rowBlock); ++r)
        for (int64_t c = c0; c < std::min(D, c0 + g.colBlock); ++c, ++n) {
          const size_t i = b0 + r * D + c;
          if (badAt(i)) ++bad, nan += !std::isfinite(x[i]);
        }
      line += nan ? 'n' : bad == 0 ? '.' : 2 * bad >= n ? 'x' : 'o';
    }
    g.map.push_back(line);
  }
  if (D == 1) return g;
  // ||x[xi(k)] - ref[ri(k)]|| / ||ref[ri(k)]|| over k < n; inf where an element is not finite.
  auto dist = [&](int64_t n, auto xi, auto ri) {
    double num = 0, den = 0;
    for (int64_t k = 0; k < n; ++k) {
      const double a = x[xi(k)], b = ref[ri(k)];
      if (!std::isfinite(a) || !std::isfinite(b)) return double(INFINITY);
      num += (a - b) * (a - b), den += b * b;
    }
    return den > 0 ? std::sqrt(num / den) : (num > 0 ? double(INFINITY) : 0.0);
  };
  for (int64_t r = 0; r < T && g.rows.size() < 3; ++r) {
    bool bad = false;
    for (int64_t c = 0; c < D && !bad; ++c) bad = badAt(b0 + r * D + c);
    if (!bad) continue;
    Diagnosis::Match m;
    m.index = r;
    for (int64_t bh = 0; bh < BH; ++bh)
      for (int64_t rr2 = 0; rr2 < T; ++rr2) {
        const double e = dist(D, [&](int64_t k) { return b0 + r * D + k; },
                              [&](int64_t k) { return (bh * T + rr2) * D + k; });
        if (e < m.err) m.err = e, m.bh = bh, m.refIndex = rr2;
      }
    g.rows.push_back(m);
  }
  // A bad column is compared with every reference column over the rows where it is bad.
  for (int64_t c = 0; c < D && g.cols.size() < 3; ++c) {
    std::vector<int64_t> badRows;
    for (int64_t r = 0; r < T; ++r)
      if (badAt(b0 + r * D + c)) badRows.push_back(r);
    if (badRows.empty()) continue;
    Diagnosis::Match m;
    m.index = c;
    m.bh = g.firstBh;
    for (int64_t c2 = 0; c2 < D; ++c2) {
      const double e = dist(int64_t(badRows.size()), [&](int64_t k) { return b0 + badRows[k] * D + c; },
                            [&](int64_t k) { return b0 + badRows[k] * D + c2; });
      if (e < m.err) m.err = e, m.refIndex = c2;
    }
    g.cols.push_back(m);
  }
  return g;
}

int g_explained = 0;  // diagnoses printed so far (capped, so that a broken kernel cannot flood the log)

void explain(const char* what, const std::vector<double>& x, const std::vector<double>& ref, int64_t BH, int64_t T,
             int64_t D, double tolRel, double tolAbs = 0) {
  if (g_explained >= 12) return;
  const Diagnosis g = diagnose(x, ref, BH, T, D, tolRel, tolAbs);
  if (g.bad == 0) return;
  ++g_explained;
  std::printf("    %s: %lld of %lld bad (%lld not finite); bad per bh:", what, (long long)g.bad,
              (long long)(BH * T * D), (long long)g.nan);
  for (int64_t bh = 0; bh < BH && bh < 16; ++bh) std::printf(" %lld", (long long)g.badPerBh[bh]);
  std::printf("\n    bh %lld: x = %.4f * ref + rest (rest %.2e of ref); rows by %lld, cols by %lld "
              "(. ok, o some bad, x half or more bad, n not finite):\n",
              (long long)g.firstBh, g.scale, g.scaledRel, (long long)g.rowBlock, (long long)g.colBlock);
  for (size_t i = 0; i < g.map.size(); ++i)
    std::printf("      %5lld %s\n", (long long)(i * g.rowBlock), g.map[i].c_str());
  for (const auto& m : g.rows)
    std::printf("    bad row %lld: nearest ref row %lld of bh %lld (rel %.1e)%s\n", (long long)m.index,
                (long long)m.refIndex, (long long)m.bh, m.err,
                m.err < 0.1 && !(m.refIndex == m.index && m.bh == g.firstBh) ? "  <- moved row" : "");
  for (const auto& m : g.cols)
    std::printf("    bad col %lld: nearest ref col %lld (rel %.1e)%s\n", (long long)m.index, (long long)m.refIndex,
                m.err, m.err < 0.1 && m.refIndex != m.index ? "  <- moved column" : "");
}

// --cpu-only: the diagnosis finds planted faults (a moved row block, a swizzled column block, a
// scaled slice, NaN) and stays quiet on rounding noise.
int check_diagnosis() {
  const int64_t BH = 3, T = 70, D = 64;
  std::mt19937_64 rng(11);
  std::normal_distribution<double> N(0, 1);
  std::vector<double> ref(BH * T * D);
  for (auto& e : ref) e = N(rng);
  auto noisy = [&]() {
    std::vector<double> x(ref);
    for (auto& e : x) e *= 1 + 2e-3 * N(rng);
    return x;
  };
  int fails = 0;
  auto expect = [&](bool ok, const char* what) {
    if (!ok) ++fails;
    std::printf("diagnosis: %-52s %s\n", what, ok ? "PASS" : "FAIL");
  };
  const Diagnosis quiet = diagnose(noisy(), ref, BH, T, D, 1.5e-2);
  expect(quiet.bad == 0 && quiet.firstBh < 0, "rounding noise: nothing bad");
  std::vector<double> x = noisy();  // bh 1: rows 16..31 hold the reference's rows 32..47
  for (int64_t r = 16; r < 32; ++r)
    for (int64_t c = 0; c < D; ++c) x[(1 * T + r) * D + c] = ref[(1 * T + r + 16) * D + c];
  Diagnosis g = diagnose(x, ref, BH, T, D, 1.5e-2);
  expect(g.firstBh == 1 && g.badPerBh[0] == 0 && g.badPerBh[2] == 0 && g.bad > 16 * D * 9 / 10 &&
             g.map.size() == 5 && g.map[1] == "xxxxxxxx" && g.map[0] == "........" && g.map[2] == "........" &&
             g.rows.size() == 3 &&
             g.rows[0].index == 16 && g.rows[0].refIndex == 32 && g.rows[0].bh == 1 && g.rows[0].err < 0.01,
         "moved row block: found, mapped, matched to row 32");
  x = noisy();  // bh 0, rows 0..63: columns 8..15 hold columns 0..7 (an XOR-8 swizzle slip)
  for (int64_t r = 0; r < 64; ++r)
    for (int64_t c = 8; c < 16; ++c) x[r * D + c] = ref[r * D + (c ^ 8)];
  g = diagnose(x, ref, BH, T, D, 1.5e-2);
  expect(g.firstBh == 0 && g.map[0] == ".x......" && g.map[4] == "........" && !g.cols.empty() &&
             g.cols[0].index == 8 && g.cols[0].refIndex == 0 && g.cols[0].err < 0.01 && g.rows.size() == 3 &&
             g.rows[0].err > 0.1,
         "swizzled columns: mapped to rows 0-63, cols 8-15");
  x = noisy();  // bh 2 scaled by 1.4427 (a missing log2(e)), one NaN in bh 0
  for (int64_t i = 2 * T * D; i < 3 * T * D; ++i) x[i] *= 1.4427;
  x[5 * D + 3] = NAN;
  g = diagnose(x, ref, BH, T, D, 1.5e-2);
  expect(g.nan == 1 && g.firstBh == 0 && g.map[0][0] == 'n' && g.badPerBh[1] == 0 && g.badPerBh[2] > T * D / 2,
         "NaN and a scaled slice: counted per bh");
  const Diagnosis s = diagnose(std::vector<double>(x.begin() + 2 * T * D, x.end()),
                               std::vector<double>(ref.begin() + 2 * T * D, ref.end()), 1, T, D, 1.5e-2);
  expect(std::fabs(s.scale - 1.4427) < 1e-2 && s.scaledRel < 1e-2, "scaled slice: scale 1.4427 recovered");
  return fails;
}

int g_fail = 0;

struct Case {
  const char* name;
  int64_t B, H, Tq, Tk, D;
  bool causal;
  std::vector<int32_t> lens;
  AttnDType dtype;
  double qGain = 1;  // sharper softmax when > 1
};

struct Outputs {
  std::vector<double> out, lse, dq, dk, dv;
};

using FwdFn = std::string (*)(AttnDType, const AttentionArgs&, const void*, const void*, const void*, void*, float*);
using BwdFn = std::string (*)(AttnDType, const AttentionArgs&, const void*, const void*, const void*, const void*,
                              const void*, const float*, void*, void*, void*);

// The Hopper kernels (attention_sm90.h) as FwdFn / BwdFn; kNotTaken when they decline the call.
const char* const kNotTaken = "not taken by the sm90 kernels";
#ifdef KILN_CHECK_SM90
std::string sm90_fwd(AttnDType t, const AttentionArgs& a, const void* q, const void* k, const void* v, void* out, float* lse) {
  bool handled = false;
  std::string err = kiln::cuda::sm90_attention_forward(t, a, q, k, v, out, lse, handled);
  return handled ? err : std::string(kNotTaken);
}
std::string sm90_bwd(AttnDType t, const AttentionArgs& a, const void* q, const void* k, const void* v, const void* out,
                     const void* dout, const float* lse, void* dq, void* dk, void* dv) {
  bool handled = false;
  std::string err = kiln::cuda::sm90_attention_backward(t, a, q, k, v, out, dout, lse, dq, dk, dv, handled);
  return handled ? err : std::string(kNotTaken);
}
// What attention.cu's default dispatch should run on compute capability 9.x (sm90_attention_enabled):
// the sm90 kernels where they take the call, else fa2.
std::string default_fwd(AttnDType t, const AttentionArgs& a, const void* q, const void* k, const void* v, void* out, float* lse) {
  bool handled = false;
  std::string err = kiln::cuda::sm90_attention_forward(t, a, q, k, v, out, lse, handled);
  return handled ? err : kiln::cuda::fa2_attention_forward(t, a, q, k, v, out, lse);
}
std::string default_bwd(AttnDType t, const AttentionArgs& a, const void* q, const void* k, const void* v, const void* out,
                        const void* dout, const float* lse, void* dq, void* dk, void* dv) {
  bool handled = false;
  std::string err = kiln::cuda::sm90_attention_backward(t, a, q, k, v, out, dout, lse, dq, dk, dv, handled);
  if (handled) return err;
  return kiln::cuda::fa2_attention_backward(t, a, q, k, v, out, dout, lse, dq, dk, dv);
}
// The kernels with sessions 11 and 12's launch settings for the call (each 0: the process default):
// the block order (sm90_attention_set_order: 2 grouped), persistent launches
// (sm90_attention_set_persistent: 2 on), the backward's operand mode (sm90_attention_set_bwd_operands)
// and the forward's schedule (sm90_attention_set_fwd_pipeline: 1 one tile at a time, 2 pipelined (the
// softmax of tile j beside P V of tile j - 1), 3 pipelined with the two consumers taking turns to
// issue their products (pingpong), 4 head dim 64's 192-row blocks).
struct Sm90Settings {
  Sm90Settings(int order, int persist, int ops, int fwd = 0) {
    kiln::cuda::sm90_attention_set_order(order);
    kiln::cuda::sm90_attention_set_persistent(persist);
    kiln::cuda::sm90_attention_set_bwd_operands(ops);
    kiln::cuda::sm90_attention_set_fwd_pipeline(fwd);
  }
  ~Sm90Settings() {
    kiln::cuda::sm90_attention_set_order(0);
    kiln::cuda::sm90_attention_set_persistent(0);
    kiln::cuda::sm90_attention_set_bwd_operands(0);
    kiln::cuda::sm90_attention_set_fwd_pipeline(0);
  }
};
template <int kOrder, int kPersist, int kSched = 0>
std::string sm90_fwd_with(AttnDType t, const AttentionArgs& a, const void* q, const void* k, const void* v, void* out, float* lse) {
  const Sm90Settings set(kOrder, kPersist, 0, kSched);
  return sm90_fwd(t, a, q, k, v, out, lse);
}
template <int kOrder, int kPersist, int kOps>
std::string sm90_bwd_with(AttnDType t, const AttentionArgs& a, const void* q, const void* k, const void* v, const void* out,
                          const void* dout, const float* lse, void* dq, void* dk, void* dv) {
  const Sm90Settings set(kOrder, kPersist, kOps);
  return sm90_bwd(t, a, q, k, v, out, dout, lse, dq, dk, dv);
}
// The backward's operand modes (sm90_attention_set_bwd_operands): dV / dK's A operands from registers,
// dQ issued last (1); from shared memory (2); from registers with dQ issued first and added while
// dV / dK are in flight (3); head dim 64: from shared memory, dQ issued first and summed over the
// consumers in shared memory, half the atomics (4); dQ issued first and added by the TMA unit's bulk
// reduction from shared memory, dV / dK's A from registers (5) or from shared memory (6); head dim
// 64: 128-row query blocks, dQ split by query rows, issued first and added by the bulk reduction,
// dV / dK's A from registers (7).
constexpr auto sm90_bwd_rs = &sm90_bwd_with<0, 0, 1>;
constexpr auto sm90_bwd_ss = &sm90_bwd_with<0, 0, 2>;
constexpr auto sm90_bwd_dqfirst = &sm90_bwd_with<0, 0, 3>;
constexpr auto sm90_bwd_dqsum = &sm90_bwd_with<0, 0, 4>;
constexpr auto sm90_bwd_bulk = &sm90_bwd_with<0, 0, 5>;
constexpr auto sm90_bwd_bulkss = &sm90_bwd_with<0, 0, 6>;
constexpr auto sm90_bwd_m128 = &sm90_bwd_with<0, 0, 7>;
// The backward with dQ split by keys between the consumers (head dim 128; 64 always splits so).
std::string sm90_bwd_keys(AttnDType t, const AttentionArgs& a, const void* q, const void* k, const void* v, const void* out,
                          const void* dout, const float* lse, void* dq, void* dk, void* dv) {
  kiln::cuda::sm90_attention_set_dq_split(2);
  std::string err = sm90_bwd(t, a, q, k, v, out, dout, lse, dq, dk, dv);
  kiln::cuda::sm90_attention_set_dq_split(0);  // back to the process default
  return err;
}
#endif

std::vector<std::string> g_sm90Paths;  // --paths: the sm90 check paths to run (empty: all)

// sm90: instead of fa2 and basic, check the Hopper kernels: forward alone (with fa2's backward),
// backward alone (with fa2's forward), then both; a case they decline prints "skip".

void run_case(const Case& c, std::mt19937_64& rng, bool sm90) {
  const AttnDType t = c.dtype;
  const int64_t BH = c.B * c.H, nq = BH * c.Tq * c.D, nk = BH * c.Tk * c.D;
  Problem P{c.B, c.H, c.Tq, c.Tk, c.D, c.causal, c.lens, 1.0 / std::sqrt(double(c.D))};
  std::normal_distribution<double> N(0, 1);
  auto make = [&](int64_t n, double gain, std::vector<uint16_t>& bits) {
    bits.resize(n);
    std::vector<double> x(n);
    for (int64_t i = 0; i < n; ++i) {
      bits[i] = to_bits(N(rng) * gain, t);
      x[i] = from_bits(bits[i], t);
    }
    return x;
  };
  std::vector<uint16_t> bq, bk, bv, bo;
  const std::vector<double> q = make(nq, c.qGain, bq), k = make(nk, 1, bk), v = make(nk, 1, bv),
                            dout = make(nq, 1, bo);
  const Grads ref = reference(P, q, k, v, dout);

  Dev dq_in(nq * 2), dk_in(nk * 2), dv_in(nk * 2), ddo(nq * 2), dlens(std::max<size_t>(c.lens.size(), 1) * 4);
  CK(cudaMemcpy(dq_in.p, bq.data(), nq * 2, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dk_in.p, bk.data(), nk * 2, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dv_in.p, bv.data(), nk * 2, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(ddo.p, bo.data(), nq * 2, cudaMemcpyHostToDevice));
  AttentionArgs a;
  a.B = c.B;
  a.H = c.H;
  a.Tq = c.Tq;
  a.Tk = c.Tk;
  a.D = c.D;
  a.scale = P.scale;
  a.causal = c.causal;
  if (!c.lens.empty()) {
    CK(cudaMemcpy(dlens.p, c.lens.data(), c.lens.size() * 4, cudaMemcpyHostToDevice));
    a.keyLens = static_cast<const int32_t*>(dlens.p);
  }
  Dev out(nq * 2), lse(BH * c.Tq * 4), gq(nq * 2), gk(nk * 2), gv(nk * 2);
  const void* ptrs[] = {dq_in.p, dk_in.p, dv_in.p, out.p, ddo.p, gq.p, gk.p, gv.p};
  if (!kiln::cuda::fa2_attention_supports(t, a, ptrs, 8)) {
    std::printf("%-28s FAIL (fa2 does not take this case)\n", c.name);
    ++g_fail;
    return;
  }
  bool declined = false;
  auto run = [&](FwdFn fwd, BwdFn bwd, const char* what) {
    out.poison();
    lse.poison();
    gq.poison();
    gk.poison();
    gv.poison();
    const std::string ef = fwd(t, a, dq_in.p, dk_in.p, dv_in.p, out.p, static_cast<float*>(lse.p));
    declined = ef == kNotTaken;
    if (!declined) need(ef, what);
    const std::string eb =
        declined ? "" : bwd(t, a, dq_in.p, dk_in.p, dv_in.p, out.p, ddo.p, static_cast<const float*>(lse.p), gq.p, gk.p, gv.p);
    declined = declined || eb == kNotTaken;
    if (!declined) need(eb, what);
    CK(cudaDeviceSynchronize());
    Outputs o;
    o.out = fetch_half(out, nq, t);
    o.lse = fetch_float(lse, BH * c.Tq);
    o.dq = fetch_half(gq, nq, t);
    o.dk = fetch_half(gk, nk, t);
    o.dv = fetch_half(gv, nk, t);
    return o;
  };
  const bool bf = t == AttnDType::BF16;
  const double tolOut = bf ? 1.5e-2 : 4e-3, tolGrad = bf ? 3e-2 : 1e-2, tolLse = 2e-3;
  struct Path {
    const char* name;
    FwdFn fwd;
    BwdFn bwd;
  };
  std::vector<Path> paths = {{"fa2", kiln::cuda::fa2_attention_forward, kiln::cuda::fa2_attention_backward},
                             {"basic", kiln::cuda::basic_attention_forward, kiln::cuda::basic_attention_backward}};
#ifdef KILN_CHECK_SM90
  if (sm90)
    paths = {{"wg-f", sm90_fwd, kiln::cuda::fa2_attention_backward},
             {"wg-fp", sm90_fwd_with<0, 0, 2>, kiln::cuda::fa2_attention_backward},
             {"wg-fpp", sm90_fwd_with<0, 0, 3>, kiln::cuda::fa2_attention_backward},
             {"wg-b", kiln::cuda::fa2_attention_forward, sm90_bwd},
             {"wg-bk", kiln::cuda::fa2_attention_forward, sm90_bwd_keys},
             {"wg-bs", kiln::cuda::fa2_attention_forward, sm90_bwd_ss},
             {"wg-bq", kiln::cuda::fa2_attention_forward, sm90_bwd_dqfirst},
             {"wg-br", kiln::cuda::fa2_attention_forward, sm90_bwd_rs},
             {"wg-bm", kiln::cuda::fa2_attention_forward, sm90_bwd_dqsum},
             {"wg-bu", kiln::cuda::fa2_attention_forward, sm90_bwd_bulk},
             {"wg-bv", kiln::cuda::fa2_attention_forward, sm90_bwd_bulkss},
             {"wg", sm90_fwd, sm90_bwd}};
  if (sm90 && c.D == 64) paths.insert(paths.end() - 1, {"wg-bt", kiln::cuda::fa2_attention_forward, sm90_bwd_m128});
  if (sm90) paths.insert(paths.end() - 1, {"wg-g", sm90_fwd_with<2, 0>, sm90_bwd_with<2, 0, 0>});
  if (sm90) paths.insert(paths.end() - 1, {"wg-fn", sm90_fwd_with<0, 2>, kiln::cuda::fa2_attention_backward});
  if (sm90) paths.insert(paths.end() - 1, {"wg-bp", kiln::cuda::fa2_attention_forward, sm90_bwd_with<0, 2, 0>});
  if (sm90 && c.D == 64) paths.insert(paths.end() - 1, {"wg-ba", sm90_fwd_with<2, 2>, sm90_bwd_with<2, 2, 7>});
  if (sm90 && c.D == 64) paths.insert(paths.end() - 1, {"wg-f3", sm90_fwd_with<0, 0, 4>, kiln::cuda::fa2_attention_backward});
  if (sm90 && c.D == 64) paths.insert(paths.end() - 1, {"wg-f3a", sm90_fwd_with<2, 2, 4>, kiln::cuda::fa2_attention_backward});
#endif
  for (size_t path = 0; path < paths.size(); ++path) {
    if (sm90 && !g_sm90Paths.empty() &&
        std::find(g_sm90Paths.begin(), g_sm90Paths.end(), paths[path].name) == g_sm90Paths.end())
      continue;
    const Outputs o = run(paths[path].fwd, paths[path].bwd, paths[path].name);
    if (declined) {
      std::printf("%-28s %-5s skip (%s)\n", c.name, paths[path].name, kNotTaken);
      continue;
    }
    const Err eo = compare(o.out, ref.out), el = compare(o.lse, ref.lse, true), eq = compare(o.dq, ref.dq),
              ek = compare(o.dk, ref.dk), ev = compare(o.dv, ref.dv);
    const bool ok = eo.rel <= tolOut && el.maxAbs <= tolLse && eq.rel <= tolGrad && ek.rel <= tolGrad &&
                    ev.rel <= tolGrad;
    if (!ok) ++g_fail;
    std::printf("%-28s %-5s out %.1e/%.1e lse %.1e dq %.1e/%.1e dk %.1e/%.1e dv %.1e/%.1e  %s\n", c.name,
                paths[path].name, eo.rel, eo.maxAbs, el.maxAbs, eq.rel, eq.maxAbs, ek.rel, ek.maxAbs,
                ev.rel, ev.maxAbs, ok ? "PASS" : "FAIL");
    if (!ok) {
      explain("out", o.out, ref.out, BH, c.Tq, c.D, tolOut);
      explain("lse", o.lse, ref.lse, BH, c.Tq, 1, 0, tolLse);
      explain("dq", o.dq, ref.dq, BH, c.Tq, c.D, tolGrad);
      explain("dk", o.dk, ref.dk, BH, c.Tk, c.D, tolGrad);
      explain("dv", o.dv, ref.dv, BH, c.Tk, c.D, tolGrad);
    }
    if (path == 0 && !sm90) {
      // The public entry point takes fa2 here (on compute capability 9.x by default: the sm90 kernels
      // where they take the call, else fa2), unless KILN_ATTENTION_KERNEL picks another: out, dK and
      // dV bitwise equal (dQ is summed with atomics in the sm90 backward).
      const char* env = std::getenv("KILN_ATTENTION_KERNEL");
      const bool wantDefault = !(env && (std::strcmp(env, "basic") == 0 || std::strcmp(env, "wgmma") == 0));
      const Outputs pub = run(kiln::cuda::attention_forward, kiln::cuda::attention_backward, "public");
      Outputs want = o;
      const char* wantName = "fa2";
#ifdef KILN_CHECK_SM90
      if (kiln::cuda::sm90_attention_enabled()) {
        want = run(default_fwd, default_bwd, "default");
        wantName = "the default dispatch (sm90 where it takes the call, else fa2)";
      }
#endif
      const bool same = pub.out == want.out && pub.dk == want.dk && pub.dv == want.dv;
      if (wantDefault && !same) {
        ++g_fail;
        std::printf("%-28s public entry point differs from %s  FAIL\n", c.name, wantName);
      }
    }
  }
}

// A misaligned tensor must go to the basic kernels through the public entry point.
void check_misaligned_fallback() {
  const int64_t B = 1, H = 2, T = 70, D = 64, n = B * H * T * D;
  AttentionArgs a;
  a.B = B;
  a.H = H;
  a.Tq = a.Tk = T;
  a.D = D;
  a.scale = 0.125;
  a.causal = true;
  std::vector<uint16_t> h(n + 8);
  std::mt19937_64 rng(3);
  std::normal_distribution<double> N(0, 1);
  for (auto& e : h) e = to_bits(N(rng), AttnDType::BF16);
  Dev in(2 * (n + 8)), o1(2 * n), o2(2 * n), l1(4 * B * H * T), l2(4 * B * H * T);
  CK(cudaMemcpy(in.p, h.data(), 2 * (n + 8), cudaMemcpyHostToDevice));
  const void* q = static_cast<const char*>(in.p) + 2;  // 2-byte offset: not 16-byte aligned
  const void* ptrs[] = {q};
  const bool refused = !kiln::cuda::fa2_attention_supports(AttnDType::BF16, a, ptrs, 1);
  need(kiln::cuda::attention_forward(AttnDType::BF16, a, q, q, q, o1.p, static_cast<float*>(l1.p)), "public");
  need(kiln::cuda::basic_attention_forward(AttnDType::BF16, a, q, q, q, o2.p, static_cast<float*>(l2.p)), "basic");
  CK(cudaDeviceSynchronize());
  std::vector<uint16_t> r1(n), r2(n);
  CK(cudaMemcpy(r1.data(), o1.p, 2 * n, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(r2.data(), o2.p, 2 * n, cudaMemcpyDeviceToHost));
  const bool ok = refused && r1 == r2;
  if (!ok) ++g_fail;
  std::printf("misaligned q goes to the basic kernels                        %s\n", ok ? "PASS" : "FAIL");
}

// ---- timing -----------------------------------------------------------------------------------

__global__ void fill_random(uint16_t* x, int64_t n, uint32_t seed, bool bf16) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 0x9E3779B1u ^ seed;
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    const float u = (h >> 8) * (1.f / 16777216.f) * 3.4641016f - 1.7320508f;  // uniform, variance 1
    x[i] = bf16 ? __nv_bfloat16_raw(__float2bfloat16_rn(u)).x : __half_raw(__float2half_rn(u)).x;
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Times fa2, then basic (withBasic) or the Hopper kernels (withSm90), on the same inputs.
void time_shape(int64_t B, int64_t H, int64_t T, int64_t D, bool causal, bool withBasic, bool withSm90 = false) {
  const AttnDType t = AttnDType::BF16;
  const int64_t n = B * H * T * D;
  Dev q(n * 2), k(n * 2), v(n * 2), dout(n * 2), out(n * 2), lse(B * H * T * 4), dq(n * 2), dk(n * 2), dv(n * 2);
  void* bufs[] = {q.p, k.p, v.p, dout.p};
  for (int i = 0; i < 4; ++i) {
    fill_random<<<1024, 256>>>(static_cast<uint16_t*>(bufs[i]), n, 1234u + i, true);
    CK(cudaGetLastError());
  }
  AttentionArgs a;
  a.B = B;
  a.H = H;
  a.Tq = a.Tk = T;
  a.D = D;
  a.scale = 1.0 / std::sqrt(double(D));
  a.causal = causal;
  const double fwdFlops = 4.0 * B * H * double(T) * T * D * (causal ? 0.5 : 1.0);
  cudaEvent_t e0, e1, e2;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  CK(cudaEventCreate(&e2));
  double fa2Total = 0;
  struct Path {
    const char* name;
    FwdFn fwd;
    BwdFn bwd;
  };
  std::vector<Path> paths = {{"fa2", kiln::cuda::fa2_attention_forward, kiln::cuda::fa2_attention_backward}};
  if (withBasic) paths.push_back({"basic", kiln::cuda::basic_attention_forward, kiln::cuda::basic_attention_backward});
#ifdef KILN_CHECK_SM90
  if (withSm90) {
    paths.push_back({"wg", sm90_fwd, sm90_bwd});                          // the defaults
    paths.push_back({"wg-1", sm90_fwd_with<0, 0, 1>, sm90_bwd});          // one tile at a time
    paths.push_back({"wg-p", sm90_fwd_with<0, 0, 2>, sm90_bwd});          // pipelined forward
    paths.push_back({"wg-pp", sm90_fwd_with<0, 0, 3>, sm90_bwd});         // pipelined + pingpong forward
    if (D == 128) paths.push_back({"wg-k", sm90_fwd, sm90_bwd_keys});  // dQ split by keys
    paths.push_back({"wg-s", sm90_fwd, sm90_bwd_ss});                      // dV / dK's A operands from shared memory
    paths.push_back({"wg-q", sm90_fwd, sm90_bwd_dqfirst});                 // dQ first, its atomics beside dV / dK
    paths.push_back({"wg-r", sm90_fwd, sm90_bwd_rs});                      // dV / dK's A from registers, dQ last
    if (D == 64) paths.push_back({"wg-m", sm90_fwd, sm90_bwd_dqsum});      // dQ summed over the consumers first
    paths.push_back({"wg-u", sm90_fwd, sm90_bwd_bulk});                    // dQ by the TMA unit's bulk reduction
    paths.push_back({"wg-v", sm90_fwd, sm90_bwd_bulkss});                  // the same, dV / dK's A from shared memory
    if (D == 64) paths.push_back({"wg-t", sm90_fwd, sm90_bwd_m128});       // 128-row query blocks, dQ by rows (bulk)
    paths.push_back({"wg-o", sm90_fwd_with<2, 0>, sm90_bwd_with<2, 0, 0>});        // the grouped block order, both kernels
    if (D == 64) paths.push_back({"wg-ot", sm90_fwd_with<2, 0>, sm90_bwd_with<2, 0, 7>});  // grouped, 128-row query blocks
    paths.push_back({"wg-n", sm90_fwd_with<0, 2>, sm90_bwd_with<0, 2, 0>});         // persistent launches
    paths.push_back({"wg-on", sm90_fwd_with<2, 2>, sm90_bwd_with<2, 2, 0>});  // grouped and persistent
    if (D == 64) paths.push_back({"wg-a", sm90_fwd_with<2, 2>, sm90_bwd_with<2, 2, 7>});  // grouped, persistent, 128-row blocks
    if (D == 64) paths.push_back({"wg-3", sm90_fwd_with<0, 0, 4>, sm90_bwd});               // 192-row forward blocks
    if (D == 64) paths.push_back({"wg-3t", sm90_fwd_with<0, 0, 4>, sm90_bwd_m128});         // FlashAttention-3's tiles: 192 / 128
    if (D == 64) paths.push_back({"wg-3a", sm90_fwd_with<2, 2, 4>, sm90_bwd_with<2, 2, 7>});  // those, grouped and persistent
    // The defaults again, last: a kernel's time drifts by its position in the run (up to ~12% in
    // session 9, ~6% between two timings of one kernel in session 10), so compare a path with the
    // default timed nearest to it.
    paths.push_back({"wg-z", sm90_fwd, sm90_bwd});
  }
#else
  (void)withSm90;
#endif
  for (size_t path = 0; path < paths.size(); ++path) {
    const FwdFn fwd = paths[path].fwd;
    const BwdFn bwd = paths[path].bwd;
    const bool slow = std::strcmp(paths[path].name, "basic") == 0;
    const int warm = slow ? 1 : 3, reps = slow ? 3 : 10;
    std::vector<double> tf, tb;
    bool declined = false;
    for (int r = 0; r < warm + reps && !declined; ++r) {
      CK(cudaEventRecord(e0));
      const std::string ef = fwd(t, a, q.p, k.p, v.p, out.p, static_cast<float*>(lse.p));
      declined = ef == kNotTaken;
      if (!declined) need(ef, "forward");
      CK(cudaEventRecord(e1));
      const std::string eb =
          declined ? "" : bwd(t, a, q.p, k.p, v.p, out.p, dout.p, static_cast<const float*>(lse.p), dq.p, dk.p, dv.p);
      declined = declined || eb == kNotTaken;
      if (!declined) need(eb, "backward");
      CK(cudaEventRecord(e2));
      CK(cudaEventSynchronize(e2));
      float f = 0, b = 0;
      CK(cudaEventElapsedTime(&f, e0, e1));
      CK(cudaEventElapsedTime(&b, e1, e2));
      if (r >= warm) {
        tf.push_back(f);
        tb.push_back(b);
      }
    }
    if (declined) {
      std::printf("time %-5s skip (%s)\n", paths[path].name, kNotTaken);
      continue;
    }
    const double mf = median(tf), mb = median(tb), total = mf + mb;
    if (path == 0) fa2Total = total;
    std::printf("time %-5s B=%-2lld H=%-2lld T=%-5lld D=%-3lld %-6s fwd %8.3f ms %6.1f TF/s  bwd %8.3f ms %6.1f TF/s  "
                "fwd+bwd %8.3f ms %6.1f TF/s%s\n",
                paths[path].name, (long long)B, (long long)H, (long long)T, (long long)D,
                causal ? "causal" : "full", mf, fwdFlops / mf * 1e-9, mb, 2.5 * fwdFlops / mb * 1e-9, total,
                3.5 * fwdFlops / total * 1e-9,
                path == 0 ? ""
                          : (" (" + std::to_string(fa2Total / total).substr(0, 5) + "x the speed of fa2)").c_str());
  }
  CK(cudaEventDestroy(e0));
  CK(cudaEventDestroy(e1));
  CK(cudaEventDestroy(e2));
}

}  // namespace

int main(int argc, char** argv) {
  bool cpuOnly = false, check = true, timing = true, basicAll = false, wgmma = true, sm90Only = false;
  std::vector<int64_t> oneShape;  // --shape B,H,T,D,causal: time only this shape (for a profiler)
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    if (s == "--cpu-only") cpuOnly = true;
    else if (s == "--no-check") check = false;
    else if (s == "--no-time") timing = false;
    else if (s == "--basic-time") basicAll = true;
    else if (s == "--no-wgmma") wgmma = false;
    else if (s == "--sm90-only") sm90Only = true;
    else if (s == "--shape" && i + 1 < argc) {
      long long b, h, t, d, c;
      if (std::sscanf(argv[++i], "%lld,%lld,%lld,%lld,%lld", &b, &h, &t, &d, &c) != 5) {
        std::fprintf(stderr, "--shape: B,H,T,D,causal\n");
        return 2;
      }
      oneShape = {b, h, t, d, c};
    }
    else if (s == "--paths" && i + 1 < argc) {
      const std::string list = argv[++i];
      for (size_t b = 0, e; b <= list.size(); b = e + 1) {
        e = std::min(list.find(',', b), list.size());
        if (e > b) g_sm90Paths.push_back(list.substr(b, e - b));
      }
      for (const std::string& name : g_sm90Paths)
        if (name != "wg-f" && name != "wg-fp" && name != "wg-fpp" && name != "wg-b" && name != "wg-bk" && name != "wg-bs" && name != "wg-bq" && name != "wg-br" && name != "wg-bm" && name != "wg-bu" && name != "wg-bv" && name != "wg-bt" && name != "wg-g" && name != "wg-bp" && name != "wg-ba" && name != "wg-fn" && name != "wg-f3" && name != "wg-f3a" && name != "wg") {
          std::fprintf(stderr, "--paths: unknown path %s\n", name.c_str());
          return 2;
        }
    } else {
      std::fprintf(stderr,
                   "usage: %s [--cpu-only] [--no-check] [--no-time] [--basic-time] [--no-wgmma] [--sm90-only]"
                   " [--paths wg-f,wg-fp,wg-fpp,wg-b,wg-bk,wg-bs,wg-bq,wg-br,wg-bm,wg-bu,wg-bv,wg-bt,wg-g,wg-fn,wg-bp,wg-ba,wg-f3,wg-f3a,wg] [--shape B,H,T,D,causal]\n",
                   argv[0]);
      return 2;
    }
  }
  int fails = check_reference();
  fails += check_diagnosis();
  if (cpuOnly) return fails ? 1 : 0;
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "no CUDA device\n");
    return 2;
  }
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s (sm_%d%d, %d SMs)  KILN_ATTENTION_KERNEL=%s\n", prop.name, prop.major, prop.minor,
              prop.multiProcessorCount, std::getenv("KILN_ATTENTION_KERNEL") ? std::getenv("KILN_ATTENTION_KERNEL") : "");
  if (!oneShape.empty()) {  // timings of fa2 and (built with them) the Hopper kernels at one shape only
    time_shape(oneShape[0], oneShape[1], oneShape[2], oneShape[3], oneShape[4] != 0, false, wgmma);
    return 0;
  }
  const AttnDType BF = AttnDType::BF16, F16 = AttnDType::F16;
  const std::vector<Case> cases = {
      {"T=1 D=64 causal", 1, 1, 1, 1, 64, true, {}, BF},
      {"T=100 D=64 full", 2, 3, 100, 100, 64, false, {}, BF},
      {"T=100 D=64 causal", 2, 3, 100, 100, 64, true, {}, BF},
      {"Tq=77 Tk=200 D=64 causal", 1, 2, 77, 200, 64, true, {}, BF},
      {"Tq=200 Tk=77 D=128 causal", 2, 2, 200, 77, 128, true, {}, BF},
      {"Tq=200 Tk=77 D=128 full", 2, 2, 200, 77, 128, false, {}, BF},
      {"T=257 D=128 full", 2, 2, 257, 257, 128, false, {}, BF},
      {"T=257 D=128 causal", 2, 2, 257, 257, 128, true, {}, BF},
      {"T=130 D=32 causal", 1, 3, 130, 130, 32, true, {}, BF},
      {"T=150 D=64 lens causal", 3, 2, 150, 150, 64, true, {150, 37, 0}, BF},
      {"Tq=90 Tk=300 D=128 lens", 2, 2, 90, 300, 128, false, {129, 300}, BF},
      {"T=300 D=64 causal sharp", 1, 2, 300, 300, 64, true, {}, BF, 4.0},
      {"T=1000 D=64 causal", 2, 4, 1000, 1000, 64, true, {}, BF},
      {"T=1000 D=128 causal", 1, 4, 1000, 1000, 128, true, {}, BF},
      {"f16 T=100 D=64 causal", 2, 3, 100, 100, 64, true, {}, F16},
      {"f16 Tq=200 Tk=77 D=128", 2, 2, 200, 77, 128, true, {}, F16},
      {"f16 T=513 D=128 full", 1, 2, 513, 513, 128, false, {}, F16},
  };
  if (check) std::printf("errors: rel = ||x-ref||/||ref||, then max |x-ref| (lse: max abs only)\n");
  if (check && !sm90Only) {
    std::mt19937_64 rng(42);
    for (const Case& c : cases) run_case(c, rng, false);
    check_misaligned_fallback();
  }
  const std::vector<std::vector<int64_t>> shapes = {{16, 16, 1024, 64}, {4, 16, 4096, 64},  {2, 16, 8192, 64},
                                                    {16, 8, 1024, 128}, {4, 8, 4096, 128}, {2, 8, 8192, 128}};
  if (timing && !sm90Only) {
    for (int i = 0; i < 6; ++i)
      time_shape(shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3], true, basicAll || i == 0 || i == 3);
    time_shape(4, 16, 4096, 64, false, false);
    time_shape(4, 8, 4096, 128, false, false);
  }
#ifdef KILN_CHECK_SM90
  // Last, so that a fault in them cannot cost the figures above: the Hopper kernels (kiln's default
  // on compute capability 9.x), checked against the same references, then timed beside fa2.
  if (wgmma) {
    if (check) {
      std::printf("wgmma (sm90) kernels: wg-f = sm90 forward + fa2 backward (wg-fp: the pipelined forward, wg-fpp: pipelined +\n"
                  "pingpong), wg-b = fa2\n"
                  "forward + sm90 backward (wg-bk: dQ split by keys, wg-bs: dV / dK's A from shared memory, wg-bq: from\n"
                  "registers with dQ issued first, wg-br: from registers, dQ last, wg-bm: head dim 64's dQ summed over the\n"
                  "consumers in shared memory, wg-bu / wg-bv: dQ added by the TMA unit's bulk reduction, dV / dK's A from\n"
                  "registers / shared memory, wg-bt: head dim 64's 128-row query blocks with dQ split by query rows), wg-g =\n"
                  "both sm90 with the grouped block order, wg-fn: the persistent sm90 forward + fa2 backward, wg-bp: fa2\n"
                  "forward + the persistent sm90 backward, wg-ba: head dim 64, both grouped and persistent, the backward\n"
                  "with 128-row query blocks, wg-f3: head dim 64's 192-row forward blocks + fa2 backward, wg-f3a: that\n"
                  "forward grouped and persistent, wg = both sm90 (timing: wg\n"
                  "with the default schedules, wg-1 with\n"
                  "the forward one tile at a time, wg-p pipelined, wg-pp pipelined + pingpong, wg-k with dQ split by keys,\n"
                  "wg-s / wg-q / wg-r / wg-m / wg-u / wg-v / wg-t with the backward of wg-bs / wg-bq / wg-br / wg-bm / wg-bu /\n"
                  "wg-bv / wg-bt, wg-o both with the grouped block order, wg-ot that with wg-bt's backward, wg-n both\n"
                  "persistent, wg-on grouped and persistent, wg-a that with 128-row query blocks, wg-3 the 192-row\n"
                  "forward, wg-3t that with wg-bt's backward, wg-3a those grouped and persistent, wg-z the\n"
                  "defaults again, last)\n");
      std::mt19937_64 rng(42);
      for (const Case& c : cases) run_case(c, rng, true);
    }
    if (timing) {
      for (const auto& sh : shapes) time_shape(sh[0], sh[1], sh[2], sh[3], true, false, true);
      time_shape(4, 16, 4096, 64, false, false, true);
      time_shape(4, 8, 4096, 128, false, false, true);
    }
  }
#else
  (void)wgmma;
#endif
  fails += g_fail;
  std::printf("%s: %d failure(s)\n", fails ? "FAIL" : "PASS", fails);
  return fails ? 1 : 0;
}
