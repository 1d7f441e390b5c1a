// Plain double-precision twins of the CPU kernels and the comparison helpers used by
// kernels_check.cc. Written for obviousness, not speed.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace ref {

using Vec = std::vector<double>;
constexpr double kInf = std::numeric_limits<double>::infinity();
inline bool isnan_(double v) { return v != v; }

// ---- reporting ----
inline int& failures() { static int f = 0; return f; }

// Pass when |got - want| <= atol + rtol * |want| everywhere (NaN matches NaN, inf matches inf).
template <class G>
bool compare(const std::string& name, const G* got, const Vec& want, double atol, double rtol) {
  double maxAbs = 0, maxRel = 0;
  bool ok = true;
  for (size_t i = 0; i < want.size(); ++i) {
    double g = static_cast<double>(got[i]), w = want[i];
    if (isnan_(w) || isnan_(g) || std::isinf(w) || std::isinf(g)) {
      bool same = (isnan_(w) && isnan_(g)) || (g == w);
      if (!same) {
        if (ok) std::printf("    first bad at %zu: got %g want %g\n", i, g, w);
        ok = false;
      }
      continue;
    }
    double e = std::fabs(g - w);
    maxAbs = std::max(maxAbs, e);
    if (w != 0) maxRel = std::max(maxRel, e / std::fabs(w));
    if (e > atol + rtol * std::fabs(w)) {
      if (ok) std::printf("    first bad at %zu: got %.9g want %.9g\n", i, g, w);
      ok = false;
    }
  }
  std::printf("  %-4s %-58s max abs %.2e  max rel %.2e  (atol %.0e rtol %.0e)\n", ok ? "ok" : "FAIL",
              name.c_str(), maxAbs, maxRel, atol, rtol);
  if (!ok) ++failures();
  return ok;
}

inline bool expect(const std::string& name, bool cond) {
  std::printf("  %-4s %s\n", cond ? "ok" : "FAIL", name.c_str());
  if (!cond) ++failures();
  return cond;
}

template <class T>
Vec to_vec(const std::vector<T>& v) { return Vec(v.begin(), v.end()); }

inline std::mt19937_64& rng() { static std::mt19937_64 g(12345); return g; }
template <class T>
std::vector<T> randu(int64_t n, double lo, double hi) {
  std::uniform_real_distribution<double> d(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(d(rng()));
  return v;
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// ---- reductions ----
// op: 0 sum, 1 mean, 2 max, 3 min, 4 logsumexp, 5 prod (the ReduceOp order)
template <class T>
Vec reduce(int op, const std::vector<T>& x, int64_t outer, int64_t r, int64_t inner) {
  Vec y(outer * inner);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      Vec s(r);
      for (int64_t k = 0; k < r; ++k) s[k] = x[(o * r + k) * inner + j];
      double acc = op == 5 ? 1 : 0, m = s[0];
      bool nan = false;
      for (double v : s) {
        nan |= isnan_(v);
        if (op == 5) acc *= v; else acc += v;
        if (op == 3) m = std::min(m, v); else m = std::max(m, v);
      }
      double out = acc;
      if (op == 1) out = acc / r;
      if (op == 2 || op == 3) out = nan ? NAN : m;
      if (op == 4) {
        if (nan) out = NAN;
        else if (std::isinf(m)) out = m;
        else { double e = 0; for (double v : s) e += std::exp(v - m); out = m + std::log(e); }
      }
      y[o * inner + j] = out;
    }
  return y;
}

// Softmax of one row in double; all -inf rows give zeros (matching the kernel's documented rule).
inline Vec softmax_row(const double* x, int64_t n, bool logOut) {
  double m = -kInf;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  Vec y(n);
  if (m == -kInf) { std::fill(y.begin(), y.end(), logOut ? -kInf : 0.0); return y; }
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(x[i] - m);
  for (int64_t i = 0; i < n; ++i) y[i] = logOut ? x[i] - m - std::log(s) : std::exp(x[i] - m) / s;
  return y;
}

// Layer norm forward of all rows in double (gamma/beta empty = absent).
inline void layernorm(const Vec& x, const Vec& g, const Vec& b, Vec& y, Vec& mean, Vec& rstd,
                      int64_t rows, int64_t n, double eps) {
  y.assign(rows * n, 0); mean.assign(rows, 0); rstd.assign(rows, 0);
  for (int64_t r = 0; r < rows; ++r) {
    double m = 0, v = 0;
    for (int64_t i = 0; i < n; ++i) m += x[r * n + i];
    m /= n;
    for (int64_t i = 0; i < n; ++i) v += (x[r * n + i] - m) * (x[r * n + i] - m);
    double rs = 1 / std::sqrt(v / n + eps);
    mean[r] = m; rstd[r] = rs;
    for (int64_t i = 0; i < n; ++i)
      y[r * n + i] = (x[r * n + i] - m) * rs * (g.empty() ? 1 : g[i]) + (b.empty() ? 0 : b[i]);
  }
}

// Cross-entropy losses in double, straight from the definition.
inline Vec cross_entropy(const Vec& x, const std::vector<int32_t>& t, int64_t N, int64_t C,
                         int32_t ignore, double s) {
  Vec loss(N);
  for (int64_t i = 0; i < N; ++i) {
    if (t[i] == ignore) continue;
    Vec ls = softmax_row(&x[i * C], C, true);
    double smooth = 0;
    for (int64_t c = 0; c < C; ++c) smooth -= ls[c];
    loss[i] = (1 - s) * -ls[t[i]] + s * smooth / C;
  }
  return loss;
}

// Central finite difference of a scalar function f around x[i] (x restored afterwards).
template <class F>
double central_diff(Vec& x, int64_t i, double h, F&& f) {
  double keep = x[i];
  x[i] = keep + h; double fp = f();
  x[i] = keep - h; double fm = f();
  x[i] = keep;
  return (fp - fm) / (2 * h);
}

}  // namespace ref
