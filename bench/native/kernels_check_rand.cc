// Philox known-answer tests and moments, vmath accuracy sweep, and quick kernel timings
// (part of the kernels_check harness; see the build line in kernels_check.cc).
#include <cstring>

#include "kernels.h"
#include "kernels_check_ref.h"
#include "philox.h"
#include "vmath.h"

using namespace kiln::cpu;

void check_random_and_vmath() {
  // Random123 known-answer vectors for philox4x32_10: counter[4], key[2] -> out[4].
  const uint32_t kat[3][10] = {
      {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
      {~0u, ~0u, ~0u, ~0u, ~0u, ~0u, 0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
      {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb,
       0x5001e420, 0x24126ea1}};
  for (auto& v : kat) {
    auto o = kiln::philox::philox4x32_10(v[0], v[1], v[2], v[3], v[4], v[5]);
    char name[96];
    std::snprintf(name, sizeof name, "philox4x32_10 known answer ctr=%08x.. key=%08x.. -> %08x %08x %08x %08x",
                  v[0], v[4], o.v[0], o.v[1], o.v[2], o.v[3]);
    ref::expect(name, o.v[0] == v[6] && o.v[1] == v[7] && o.v[2] == v[8] && o.v[3] == v[9]);
  }
  // The stream layout of kernels.h: word w = lane w%4 of counter {w/4 lo, w/4 hi, 0, 0}, key = seed.
  const uint64_t seed = 0x0123456789abcdefull;
  {
    std::vector<double> u(11);
    philox_uniform(u.data(), 11, seed, 5, 0.0, 1.0);
    std::vector<int32_t> ri(9);
    philox_randint(ri.data(), 9, seed, (1ull << 34) + 3, -5, 7);
    bool ok = true;
    for (int i = 0; i < 11; ++i) {
      uint64_t w = 5 + i;
      auto b = kiln::philox::philox4x32_10(static_cast<uint32_t>(w / 4), static_cast<uint32_t>(w / 4 >> 32), 0, 0,
                                           static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
      ok &= u[i] == (b.v[w % 4] >> 8) * std::ldexp(1.0, -24);
    }
    for (int i = 0; i < 9; ++i) {
      uint64_t w = (1ull << 34) + 3 + i;  // counter high word in use
      auto b = kiln::philox::philox4x32_10(static_cast<uint32_t>(w / 4), static_cast<uint32_t>(w / 4 >> 32), 0, 0,
                                           static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
      ok &= ri[i] == -5 + static_cast<int32_t>(b.v[w % 4] % 12);
    }
    ref::expect("philox stream layout (uniform at offset 5, randint at offset 2^34+3)", ok);
  }
  // Moments, offsets and thread-count independence.
  const int64_t n = 2000001;  // odd: the last normal uses half a pair
  std::vector<float> uf(n), nf(n), nf1(n), part(1001);
  std::vector<double> nd(n);
  philox_uniform(uf.data(), n, 7, 0, -1.0f, 3.0f);
  philox_normal(nf.data(), n, 7, 10, 2.0f, 0.5f);
  philox_normal(nd.data(), n, 7, 10, 2.0, 0.5);
  int keep = num_threads();
  set_num_threads(1);
  philox_normal(nf1.data(), n, 7, 10, 2.0f, 0.5f);
  set_num_threads(keep);
  philox_normal(part.data(), 1001, 7, 10 + 2 * 500, 2.0f, 0.5f);  // pair 500 onwards
  double m = 0, v = 0, nm = 0, nv = 0, sk = 0, ku = 0, fmax = 0, mn = 1e9, mx = -1e9;
  for (int64_t i = 0; i < n; ++i) { m += uf[i]; mn = std::min(mn, (double)uf[i]); mx = std::max(mx, (double)uf[i]); }
  m /= n;
  for (int64_t i = 0; i < n; ++i) v += (uf[i] - m) * (uf[i] - m);
  v /= n;
  for (int64_t i = 0; i < n; ++i) nm += nd[i];
  nm /= n;
  for (int64_t i = 0; i < n; ++i) {
    double z = (nd[i] - nm) / 0.5;
    nv += z * z; sk += z * z * z; ku += z * z * z * z;
    fmax = std::max(fmax, std::fabs(nf[i] - nd[i]));
  }
  nv /= n; sk /= n; ku /= n;
  std::printf("    uniform[-1,3): mean %.5f (expected 1.0) var %.5f (16/12=1.33333) min %.6f max %.6f\n", m, v, mn, mx);
  std::printf("    normal(2,0.5): mean %.5f var/0.25 %.5f skew %.4f kurtosis %.4f; |f32 - f64| max %.2e\n", nm, nv, sk, ku, fmax);
  ref::expect("philox uniform moments within 5 sigma", std::fabs(m - 1.0) < 5 * std::sqrt(16.0 / 12 / n) &&
                                                           std::fabs(v - 16.0 / 12) < 0.01 && mn >= -1 && mx < 3);
  ref::expect("philox normal moments (mean, var, skew, kurtosis)", std::fabs(nm - 2) < 5 * 0.5 / std::sqrt(n) &&
                                                                       std::fabs(nv - 1) < 0.01 && std::fabs(sk) < 0.01 &&
                                                                       std::fabs(ku - 3) < 0.03);
  ref::expect("philox normal f32 within 2e-6 of f64 (same words)", fmax < 2e-6);
  ref::expect("philox normal identical with 1 and N threads", nf == nf1);
  ref::expect("philox normal at an offset continues the same stream",
              std::memcmp(part.data(), nf.data() + 1000, sizeof(float) * 1001) == 0);

  // vmath against libm over a sweep of float bit patterns (every 97th positive float, both signs).
  double e[5] = {0, 0, 0, 0, 0};
  for (uint32_t bits = 0x00800000u; bits < 0x7f800000u; bits += 97) {
    float a;
    std::memcpy(&a, &bits, 4);
    for (float x : {a, -a}) {
      double r;
      if (std::fabs(x) < 88 && (r = std::exp((double)x)) > 1.2e-38) e[0] = std::max(e[0], std::fabs(kiln::vmath::exp_f(x) - r) / r);
      if (x > 0 && (r = std::log((double)x)) != 0) e[1] = std::max(e[1], std::fabs(kiln::vmath::log_f(x) - r) / std::fabs(r));
      if ((r = std::tanh((double)x)) != 0) e[2] = std::max(e[2], std::fabs(kiln::vmath::tanh_f(x) - r) / std::fabs(r));
      if ((r = std::erf((double)x)) != 0) e[3] = std::max(e[3], std::fabs(kiln::vmath::erf_f(x) - r) / std::fabs(r));
      if (std::fabs(x) < 1) {
        float s, c;
        kiln::vmath::sincos_2pi_f(x, &s, &c);
        double ang = 6.283185307179586 * x;
        e[4] = std::max(e[4], std::max(std::fabs(s - std::sin(ang)), std::fabs(c - std::cos(ang))));
      }
    }
  }
  std::printf("    vmath max rel err: exp %.2e log %.2e tanh %.2e erf %.2e; sincos_2pi max abs err %.2e\n", e[0], e[1], e[2], e[3], e[4]);
  ref::expect("vmath exp/log/tanh/erf relative error < 1e-6, sincos abs error < 2e-7",
              e[0] < 1e-6 && e[1] < 1e-6 && e[2] < 1e-6 && e[3] < 1e-6 && e[4] < 2e-7);
  const float inf = std::numeric_limits<float>::infinity();
  ref::expect("vmath special values", kiln::vmath::exp_f(-inf) == 0 && kiln::vmath::exp_f(inf) == inf &&
                                          kiln::vmath::log_f(0) == -inf && kiln::vmath::log_f(inf) == inf &&
                                          std::isnan(kiln::vmath::log_f(-1)) && std::isnan(kiln::vmath::exp_f(NAN)) &&
                                          kiln::vmath::tanh_f(inf) == 1 && kiln::vmath::erf_f(-inf) == -1);
}

// ---- timings: the kernels against plain scalar loops (std::exp, one thread) in the same run ----
namespace {
template <class F>
double best_of(int reps, F&& f) {
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, ref::seconds_since(t0));
  }
  return best;
}
void naive_softmax(const float* x, float* y, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* a = x + r * n;
    float m = a[0], s = 0;
    for (int64_t i = 1; i < n; ++i) m = std::max(m, a[i]);
    for (int64_t i = 0; i < n; ++i) s += (y[r * n + i] = std::exp(a[i] - m));
    for (int64_t i = 0; i < n; ++i) y[r * n + i] /= s;
  }
}
void naive_layernorm(const float* x, const float* g, const float* b, float* y, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* a = x + r * n;
    float m = 0, v = 0;
    for (int64_t i = 0; i < n; ++i) m += a[i];
    m /= n;
    for (int64_t i = 0; i < n; ++i) v += (a[i] - m) * (a[i] - m);
    float rs = 1 / std::sqrt(v / n + 1e-5f);
    for (int64_t i = 0; i < n; ++i) y[r * n + i] = (a[i] - m) * rs * g[i] + b[i];
  }
}
void naive_ce(const float* x, const int32_t* t, float* loss, int64_t N, int64_t C) {
  for (int64_t r = 0; r < N; ++r) {
    const float* a = x + r * C;
    float m = a[0], s = 0;
    for (int64_t i = 1; i < C; ++i) m = std::max(m, a[i]);
    for (int64_t i = 0; i < C; ++i) s += std::exp(a[i] - m);
    loss[r] = m + std::log(s) - a[t[r]];
  }
}
}  // namespace

void bench_kernels() {
  std::printf("timings (float32, best of 3, %d threads; naive = scalar loops with std::exp, 1 thread)\n", num_threads());
  const int64_t shapes[][2] = {{2688, 512}, {256, 50257}};
  for (auto& s : shapes) {
    const int64_t rows = s[0], n = s[1];
    auto x = ref::randu<float>(rows * n, -5, 5), g = ref::randu<float>(n, 0.5, 1.5), b = ref::randu<float>(n, -1, 1);
    std::vector<float> y(rows * n), dx(rows * n), mean(rows), rstd(rows), loss(rows), lse(rows), dg(n), db(n), dl(rows, 1);
    std::vector<int32_t> t(rows);
    for (auto& v : t) v = static_cast<int32_t>(ref::rng()() % n);
    double gb = rows * n * 4 / 1e9;
    auto line = [&](const char* name, double tk, double tn) {
      std::printf("  %-30s [%lld,%lld]  kernel %8.3f ms (%5.1f GB/s of input)", name, (long long)rows, (long long)n,
                  tk * 1e3, gb / tk);
      if (tn > 0) std::printf("  naive %8.3f ms  speedup x%.1f", tn * 1e3, tn / tk);
      std::printf("\n");
    };
    line("softmax fwd", best_of(3, [&] { softmax_forward(x.data(), y.data(), rows, n); }),
         best_of(3, [&] { naive_softmax(x.data(), y.data(), rows, n); }));
    line("softmax bwd", best_of(3, [&] { softmax_backward(y.data(), x.data(), dx.data(), rows, n); }), 0);
    line("layernorm fwd", best_of(3, [&] {
           layernorm_forward(x.data(), g.data(), b.data(), y.data(), mean.data(), rstd.data(), rows, n, 1e-5f);
         }), best_of(3, [&] { naive_layernorm(x.data(), g.data(), b.data(), y.data(), rows, n); }));
    line("layernorm bwd (dx,dgamma,dbeta)", best_of(3, [&] {
           layernorm_backward(x.data(), g.data(), mean.data(), rstd.data(), y.data(), dx.data(), dg.data(), db.data(), rows, n);
         }), 0);
    line("cross_entropy fwd", best_of(3, [&] {
           cross_entropy_forward(x.data(), t.data(), loss.data(), lse.data(), rows, n, -100, 0.0f);
         }), best_of(3, [&] { naive_ce(x.data(), t.data(), loss.data(), rows, n); }));
    line("cross_entropy bwd", best_of(3, [&] {
           cross_entropy_backward(x.data(), t.data(), lse.data(), dl.data(), dx.data(), rows, n, -100, 0.0f);
         }), 0);
  }
}
