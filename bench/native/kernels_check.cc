// Correctness harness for the CPU kernel families (reduce, softmax, layernorm, cross entropy,
// embedding, Philox) against the plain double twins in kernels_check_ref.h, plus quick timings.
// Build and run from the repository root:
//   g++ -O3 -fopenmp -fno-math-errno -std=c++17 -Ikernels/cpu -Ikernels/common \
//     bench/native/kernels_check.cc bench/native/kernels_check_rand.cc \
//     kernels/cpu/{reduce,softmax,layernorm,crossentropy,embedding,random,threads}.cc -o /tmp/kcheck
//   /tmp/kcheck            # exits non-zero on any failure; `--no-bench` skips timings, `--bench-only` only times
#include <cstring>

#include "kernels.h"
#include "kernels_check_ref.h"

using namespace kiln::cpu;
using ref::Vec;

void check_random_and_vmath();                 // kernels_check_rand.cc
void bench_kernels();                          // kernels_check_rand.cc

template <class T> const char* tname() { return sizeof(T) == 4 ? "f32" : "f64"; }
// Tolerances: float kernels vs a double reference; double kernels vs the same reference.
template <class T> double tol(double f32, double f64) { return sizeof(T) == 4 ? f32 : f64; }
static std::string shape(int64_t a, int64_t b, int64_t c = -1) {
  char s[64];
  if (c < 0) std::snprintf(s, sizeof s, "[%lld,%lld]", (long long)a, (long long)b);
  else std::snprintf(s, sizeof s, "[%lld,%lld,%lld]", (long long)a, (long long)b, (long long)c);
  return s;
}

template <class T>
void check_reduce() {
  const char* names[] = {"sum", "mean", "max", "min", "logsumexp", "prod"};
  const int64_t shapes[][3] = {{1, 1, 1}, {1, 7, 1}, {3, 1, 5}, {5, 37, 1}, {4, 33, 3}, {2, 300, 257},
                               {1, 5, 1000}, {1, 100003, 1}, {3, 70001, 1}, {7, 13, 300}};
  for (auto& s : shapes) {
    const int64_t o = s[0], r = s[1], in = s[2];
    for (int op = 0; op < 6; ++op) {
      auto x = op == 5 ? ref::randu<T>(o * r * in, 0.99, 1.01) : ref::randu<T>(o * r * in, -3, 3);
      std::vector<T> y(o * in);
      reduce(static_cast<ReduceOp>(op), x.data(), y.data(), o, r, in);
      // Sums accumulate in double, so the error is the final rounding plus the scale of the terms.
      double atol = (op <= 1 ? tol<T>(1e-6, 1e-12) * std::sqrt((double)r) : 0);
      ref::compare(std::string("reduce ") + names[op] + " " + tname<T>() + " " + shape(o, r, in),
                   y.data(), ref::reduce(op, x, o, r, in), atol, tol<T>(2e-6, 1e-12));
    }
    // arg max/min with heavy ties (small integers): exact indices, ties -> first
    auto x = ref::randu<T>(o * r * in, 0, 4);
    for (auto& v : x) v = std::floor(v);
    for (int isMax = 0; isMax < 2; ++isMax) {
      std::vector<int32_t> idx(o * in);
      arg_reduce(isMax != 0, x.data(), idx.data(), o, r, in);
      bool ok = true;
      for (int64_t a = 0; a < o; ++a)
        for (int64_t j = 0; j < in; ++j) {
          int64_t best = 0;
          for (int64_t k = 1; k < r; ++k) {
            T v = x[(a * r + k) * in + j], b = x[(a * r + best) * in + j];
            if (isMax ? v > b : v < b) best = k;
          }
          ok &= idx[a * in + j] == best;
        }
      ref::expect(std::string(isMax ? "argmax " : "argmin ") + tname<T>() + " " + shape(o, r, in) +
                      " (ties -> first index)", ok);
    }
    for (int rev = 0; rev < 2; ++rev) {
      auto xc = ref::randu<T>(o * r * in, -1, 1);
      std::vector<T> y(xc.size());
      cumsum(xc.data(), y.data(), o, r, in, rev != 0);
      Vec want(xc.size());
      for (int64_t a = 0; a < o; ++a)
        for (int64_t j = 0; j < in; ++j) {
          double acc = 0;
          for (int64_t q = 0; q < r; ++q) {
            int64_t k = rev ? r - 1 - q : q;
            acc += xc[(a * r + k) * in + j];
            want[(a * r + k) * in + j] = acc;
          }
        }
      ref::compare(std::string("cumsum ") + (rev ? "reverse " : "") + tname<T>() + " " + shape(o, r, in),
                   y.data(), want, tol<T>(1e-6, 1e-12) * std::sqrt((double)r), tol<T>(1e-6, 1e-12));
    }
  }
  // NaN propagation, all -inf slices, argmax of NaN
  const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
  std::vector<T> x = {1, nan, 3, -inf, -inf, -inf, 2, 5, 5};
  std::vector<T> y(3);
  reduce(ReduceOp::Max, x.data(), y.data(), 3, 3, 1);
  bool ok = y[0] != y[0] && y[1] == -inf && y[2] == 5;
  reduce(ReduceOp::Min, x.data(), y.data(), 3, 3, 1);
  ok &= y[0] != y[0] && y[1] == -inf && y[2] == 2;
  reduce(ReduceOp::LogSumExp, x.data(), y.data(), 3, 3, 1);
  ok &= y[0] != y[0] && y[1] == -inf;
  std::vector<int32_t> ix(3);
  arg_reduce(true, x.data(), ix.data(), 3, 3, 1);
  ok &= ix[0] == 1 && ix[1] == 0 && ix[2] == 1;
  arg_reduce(true, x.data(), ix.data(), 1, 3, 3);  // column path: NaN in column 1 row 0
  ok &= ix[0] == 2 && ix[1] == 0 && ix[2] == 2;
  ref::expect(std::string("reduce/argmax NaN propagation and all -inf slices ") + tname<T>(), ok);
}

template <class T>
void check_topk() {
  const int64_t shapes[][3] = {{1, 1, 1}, {3, 10, 10}, {5, 37, 4}, {2, 1000, 17}, {70, 1000, 5}};
  for (auto& s : shapes) {
    const int64_t rows = s[0], n = s[1], k = s[2];
    auto x = ref::randu<T>(rows * n, 0, 20);
    for (auto& v : x) v = std::floor(v);  // many ties
    if (rows * n > 20) x[7] = std::numeric_limits<T>::quiet_NaN();
    for (int largest = 0; largest < 2; ++largest) {
      std::vector<T> val(rows * k);
      std::vector<int32_t> idx(rows * k);
      topk(x.data(), val.data(), idx.data(), rows, n, k, largest != 0);
      bool ok = true;
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<int32_t> order(n);
        std::iota(order.begin(), order.end(), 0);
        auto key = [&](int32_t i) {  // NaN ranks as the largest value
          double v = x[r * n + i];
          return v != v ? (largest ? 1e300 : -1e300) : v;
        };
        std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
          return largest ? key(a) > key(b) : key(a) < key(b);
        });
        if (!largest) {  // smallest-first: NaN goes last (it is the largest)
          std::stable_partition(order.begin(), order.end(), [&](int32_t i) { return x[r * n + i] == x[r * n + i]; });
        }
        for (int64_t q = 0; q < k; ++q) ok &= idx[r * k + q] == order[q];
      }
      ref::expect(std::string("topk ") + (largest ? "largest " : "smallest ") + tname<T>() + " " +
                      shape(rows, n, k) + " (exact indices, ties -> lower index)", ok);
    }
  }
}

template <class T>
void check_softmax() {
  const int64_t shapes[][2] = {{1, 1}, {1, 7}, {5, 1}, {3, 1000}, {65, 513}, {2, 50257}};
  for (auto& s : shapes) {
    const int64_t rows = s[0], n = s[1];
    auto x = ref::randu<T>(rows * n, -8, 8);
    if (rows > 2) for (int64_t i = 0; i < n; ++i) x[n + i] = -std::numeric_limits<T>::infinity();
    Vec xd = ref::to_vec(x), sm(rows * n), lsm(rows * n);
    for (int64_t r = 0; r < rows; ++r) {
      Vec a = ref::softmax_row(&xd[r * n], n, false), b = ref::softmax_row(&xd[r * n], n, true);
      std::copy(a.begin(), a.end(), sm.begin() + r * n);
      std::copy(b.begin(), b.end(), lsm.begin() + r * n);
    }
    std::vector<T> y(rows * n), ly(rows * n), dx(rows * n);
    softmax_forward(x.data(), y.data(), rows, n);
    log_softmax_forward(x.data(), ly.data(), rows, n);
    std::string sh = std::string(tname<T>()) + " " + shape(rows, n) + (rows > 2 ? " (row 1 all -inf)" : "");
    ref::compare("softmax fwd " + sh, y.data(), sm, tol<T>(1e-8, 1e-15), tol<T>(2e-6, 1e-13));
    ref::compare("log_softmax fwd " + sh, ly.data(), lsm, tol<T>(2e-6, 1e-13), tol<T>(1e-6, 1e-13));
    auto dy = ref::randu<T>(rows * n, -1, 1);
    Vec want(rows * n);
    for (int64_t r = 0; r < rows; ++r) {
      double dot = 0, sum = 0;
      for (int64_t i = 0; i < n; ++i) { dot += dy[r * n + i] * (double)y[r * n + i]; sum += dy[r * n + i]; }
      for (int64_t i = 0; i < n; ++i) want[r * n + i] = (double)y[r * n + i] * (dy[r * n + i] - dot);
    }
    softmax_backward(y.data(), dy.data(), dx.data(), rows, n);
    ref::compare("softmax bwd " + sh, dx.data(), want, tol<T>(1e-7, 1e-15), tol<T>(1e-5, 1e-12));
    for (int64_t r = 0; r < rows; ++r) {
      double sum = 0;
      for (int64_t i = 0; i < n; ++i) sum += dy[r * n + i];
      for (int64_t i = 0; i < n; ++i) want[r * n + i] = dy[r * n + i] - std::exp((double)ly[r * n + i]) * sum;
    }
    log_softmax_backward(ly.data(), dy.data(), dx.data(), rows, n);
    ref::compare("log_softmax bwd " + sh, dx.data(), want, tol<T>(2e-6, 1e-13), tol<T>(1e-5, 1e-12));
  }
}

// Gradients of L = sum(w * f(x)) against central differences, double only.
void check_softmax_fd() {
  const int64_t rows = 3, n = 9;
  Vec x(rows * n), w(rows * n);
  for (auto& v : x) v = ref::randu<double>(1, -3, 3)[0];
  for (auto& v : w) v = ref::randu<double>(1, -1, 1)[0];
  for (int lg = 0; lg < 2; ++lg) {
    auto L = [&]() {
      Vec y(rows * n);
      (lg ? log_softmax_forward<double> : softmax_forward<double>)(x.data(), y.data(), rows, n);
      double s = 0;
      for (int64_t i = 0; i < rows * n; ++i) s += w[i] * y[i];
      return s;
    };
    Vec y(rows * n), dx(rows * n), fd(rows * n);
    (lg ? log_softmax_forward<double> : softmax_forward<double>)(x.data(), y.data(), rows, n);
    (lg ? log_softmax_backward<double> : softmax_backward<double>)(y.data(), w.data(), dx.data(), rows, n);
    for (int64_t i = 0; i < rows * n; ++i) fd[i] = ref::central_diff(x, i, 1e-5, L);
    ref::compare(std::string(lg ? "log_softmax" : "softmax") + " bwd vs central differences f64 [3,9]",
                 dx.data(), fd, 1e-8, 1e-6);
  }
}

template <class T>
void check_layernorm() {
  const int64_t shapes[][2] = {{1, 1}, {1, 7}, {5, 1}, {3, 768}, {100, 513}, {3, 40000}};
  for (auto& s : shapes) {
    const int64_t rows = s[0], n = s[1];
    for (int affine = 0; affine < 2; ++affine) {
      auto x = ref::randu<T>(rows * n, -2, 6), g = ref::randu<T>(n, 0.5, 1.5), b = ref::randu<T>(n, -1, 1);
      const T* gp = affine ? g.data() : nullptr;
      const T* bp = affine ? b.data() : nullptr;
      const double eps = 1e-5;
      Vec yw, mw, rw;
      ref::layernorm(ref::to_vec(x), affine ? ref::to_vec(g) : Vec(), affine ? ref::to_vec(b) : Vec(), yw,
                     mw, rw, rows, n, eps);
      std::vector<T> y(rows * n), mean(rows), rstd(rows);
      layernorm_forward(x.data(), gp, bp, y.data(), mean.data(), rstd.data(), rows, n, static_cast<T>(eps));
      std::string sh = std::string(tname<T>()) + " " + shape(rows, n) + (affine ? " affine" : " no affine");
      ref::compare("layernorm fwd y " + sh, y.data(), yw, tol<T>(1e-5, 1e-12), tol<T>(1e-5, 1e-12));
      ref::compare("layernorm fwd rstd " + sh, rstd.data(), rw, 0, tol<T>(1e-5, 1e-12));
      // backward vs the closed form in double (from the kernel's saved mean/rstd)
      auto dy = ref::randu<T>(rows * n, -1, 1);
      std::vector<T> dx(rows * n), dg(n, 7), db(n, 7);
      layernorm_backward(x.data(), gp, mean.data(), rstd.data(), dy.data(), dx.data(), dg.data(), db.data(), rows, n);
      Vec wdx(rows * n), wdg(n), wdb(n);
      for (int64_t r = 0; r < rows; ++r) {
        double a = 0, c = 0, m = mean[r], rs = rstd[r];
        for (int64_t i = 0; i < n; ++i) {
          double gi = dy[r * n + i] * (affine ? (double)g[i] : 1.0), xh = (x[r * n + i] - m) * rs;
          a += gi; c += gi * xh;
          wdg[i] += dy[r * n + i] * xh; wdb[i] += dy[r * n + i];
        }
        for (int64_t i = 0; i < n; ++i) {
          double gi = dy[r * n + i] * (affine ? (double)g[i] : 1.0), xh = (x[r * n + i] - m) * rs;
          wdx[r * n + i] = rs * (gi - a / n - xh * c / n);
        }
      }
      ref::compare("layernorm bwd dx " + sh, dx.data(), wdx, tol<T>(2e-5, 1e-11), tol<T>(1e-4, 1e-10));
      ref::compare("layernorm bwd dgamma " + sh, dg.data(), wdg, tol<T>(1e-5, 1e-12) * std::sqrt((double)rows), tol<T>(1e-5, 1e-12));
      ref::compare("layernorm bwd dbeta " + sh, db.data(), wdb, tol<T>(1e-6, 1e-12) * std::sqrt((double)rows), tol<T>(1e-6, 1e-12));
      if (rows * n > 40000) {  // thread-count independence of the dgamma reduction
        std::vector<T> dg1(n), db1(n), dx1(rows * n);
        int keep = num_threads();
        set_num_threads(1);
        layernorm_backward(x.data(), gp, mean.data(), rstd.data(), dy.data(), dx1.data(), dg1.data(), db1.data(), rows, n);
        set_num_threads(keep);
        ref::expect("layernorm bwd bit-identical with 1 and " + std::to_string(keep) + " threads " + sh,
                    dg1 == dg && db1 == db && dx1 == dx);
      }
    }
  }
  // finite differences in double of L = sum(w * layernorm(x; g, b)) for x, gamma, beta
  const int64_t rows = 3, n = 6;
  Vec x = ref::randu<double>(rows * n, -2, 2), g = ref::randu<double>(n, 0.5, 1.5),
      b = ref::randu<double>(n, -1, 1), w = ref::randu<double>(rows * n, -1, 1);
  auto L = [&]() {
    Vec y(rows * n), m(rows), rs(rows);
    layernorm_forward(x.data(), g.data(), b.data(), y.data(), m.data(), rs.data(), rows, n, 1e-5);
    double s = 0;
    for (int64_t i = 0; i < rows * n; ++i) s += w[i] * y[i];
    return s;
  };
  Vec y(rows * n), m(rows), rs(rows), dx(rows * n), dg(n), db(n), fx(rows * n), fg(n), fb(n);
  layernorm_forward(x.data(), g.data(), b.data(), y.data(), m.data(), rs.data(), rows, n, 1e-5);
  layernorm_backward(x.data(), g.data(), m.data(), rs.data(), w.data(), dx.data(), dg.data(), db.data(), rows, n);
  for (int64_t i = 0; i < rows * n; ++i) fx[i] = ref::central_diff(x, i, 1e-5, L);
  for (int64_t i = 0; i < n; ++i) { fg[i] = ref::central_diff(g, i, 1e-5, L); fb[i] = ref::central_diff(b, i, 1e-5, L); }
  ref::compare("layernorm bwd dx vs central differences f64 [3,6]", dx.data(), fx, 1e-8, 1e-6);
  ref::compare("layernorm bwd dgamma vs central differences f64 [3,6]", dg.data(), fg, 1e-8, 1e-6);
  ref::compare("layernorm bwd dbeta vs central differences f64 [3,6]", db.data(), fb, 1e-8, 1e-6);
}

template <class T>
void check_cross_entropy() {
  const int64_t shapes[][2] = {{1, 1}, {1, 7}, {5, 1}, {37, 1000}, {8, 50257}};
  const int32_t ignore = -100;
  for (auto& s : shapes) {
    const int64_t N = s[0], C = s[1];
    for (double smooth : {0.0, 0.1}) {
      auto x = ref::randu<T>(N * C, -10, 10);
      std::vector<int32_t> t(N);
      for (int64_t i = 0; i < N; ++i) t[i] = (i % 3 == 2) ? ignore : static_cast<int32_t>(ref::rng()() % C);
      std::vector<T> loss(N), lse(N), dl = ref::randu<T>(N, 0.5, 2), dx(N * C);
      cross_entropy_forward(x.data(), t.data(), loss.data(), lse.data(), N, C, ignore, static_cast<T>(smooth));
      Vec xd = ref::to_vec(x);
      std::string sh = std::string(tname<T>()) + " " + shape(N, C) + " smoothing " + (smooth ? "0.1" : "0");
      ref::compare("cross_entropy fwd loss " + sh, loss.data(), ref::cross_entropy(xd, t, N, C, ignore, smooth),
                   tol<T>(2e-6, 1e-12), tol<T>(1e-6, 1e-12));
      cross_entropy_backward(x.data(), t.data(), lse.data(), dl.data(), dx.data(), N, C, ignore, static_cast<T>(smooth));
      Vec want(N * C);
      for (int64_t i = 0; i < N; ++i) {
        if (t[i] == ignore) continue;
        Vec p = ref::softmax_row(&xd[i * C], C, false);
        for (int64_t c = 0; c < C; ++c)
          want[i * C + c] = dl[i] * (p[c] - smooth / C - (c == t[i] ? 1 - smooth : 0));
      }
      // atol scales with dloss (<= 2): p - onehot cancels to ~0 on the target when C is 1
      ref::compare("cross_entropy bwd " + sh, dx.data(), want, tol<T>(4e-7, 1e-15), tol<T>(1e-5, 1e-12));
    }
  }
  // finite differences in double of L = sum(dloss * loss)
  const int64_t N = 4, C = 5;
  Vec x = ref::randu<double>(N * C, -3, 3), dl = ref::randu<double>(N, 0.5, 2);
  std::vector<int32_t> t = {1, ignore, 4, 0};
  for (double smooth : {0.0, 0.2}) {
    auto L = [&]() {
      Vec loss(N), lse(N);
      cross_entropy_forward(x.data(), t.data(), loss.data(), lse.data(), N, C, ignore, smooth);
      double s = 0;
      for (int64_t i = 0; i < N; ++i) s += dl[i] * loss[i];
      return s;
    };
    Vec loss(N), lse(N), dx(N * C), fd(N * C);
    cross_entropy_forward(x.data(), t.data(), loss.data(), lse.data(), N, C, ignore, smooth);
    cross_entropy_backward(x.data(), t.data(), lse.data(), dl.data(), dx.data(), N, C, ignore, smooth);
    for (int64_t i = 0; i < N * C; ++i) fd[i] = ref::central_diff(x, i, 1e-5, L);
    ref::compare(std::string("cross_entropy bwd vs central differences f64 [4,5] smoothing ") + (smooth ? "0.2" : "0"),
                 dx.data(), fd, 1e-8, 1e-6);
  }
}

template <class T>
void check_embedding() {
  const int64_t cases[][3] = {{1, 1, 1}, {7, 5, 3}, {300, 50, 129}, {2688, 1000, 96}};  // n, V, D
  for (auto& c : cases) {
    const int64_t n = c[0], V = c[1], D = c[2];
    auto w = ref::randu<T>(V * D, -1, 1), dout = ref::randu<T>(n * D, -1, 1);
    std::vector<int32_t> idx(n);
    for (auto& i : idx) i = static_cast<int32_t>(ref::rng()() % (V > 3 ? V / 3 : V));  // repeats
    std::vector<T> out(n * D), dw(V * D, 0), want(V * D, 0);
    embedding_forward(w.data(), idx.data(), out.data(), n, V, D);
    bool ok = true;
    for (int64_t i = 0; i < n; ++i) ok &= std::memcmp(&out[i * D], &w[idx[i] * D], sizeof(T) * D) == 0;
    ref::expect(std::string("embedding fwd exact ") + tname<T>() + " n,V,D=" + shape(n, V, D), ok);
    embedding_backward(dout.data(), idx.data(), dw.data(), n, V, D);
    for (int64_t i = 0; i < n; ++i)  // the serial loop in index order, same precision: must match bitwise
      for (int64_t j = 0; j < D; ++j) want[idx[i] * D + j] += dout[i * D + j];
    ref::expect(std::string("embedding bwd bit-identical to the serial index-order sum ") + tname<T>() +
                    " n,V,D=" + shape(n, V, D), dw == want);
  }
}

void check_find_invalid() {
  std::vector<int32_t> idx(10000);
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int32_t>(i % 50);
  bool ok = find_invalid_index(idx.data(), 10000, 0, 50, -100) == -1;
  idx[7000] = -100;
  ok &= find_invalid_index(idx.data(), 10000, 0, 50, -100) == -1;
  idx[9001] = 50; idx[9500] = -1;
  ok &= find_invalid_index(idx.data(), 10000, 0, 50, -100) == 9001;
  ok &= find_invalid_index(idx.data(), 10000, 0, 50, -100) == 9001;
  ok &= find_invalid_index(idx.data(), 0, 0, 50, -100) == -1;
  ok &= find_invalid_index(idx.data(), 10000, 0, 10, -100) == 10;
  ref::expect("find_invalid_index (allowed value, first bad position, n = 0)", ok);
}

template <class T>
void check_all_t() {
  check_reduce<T>();
  check_topk<T>();
  check_softmax<T>();
  check_layernorm<T>();
  check_cross_entropy<T>();
  check_embedding<T>();
}

int main(int argc, char** argv) {
  bool bench = !(argc > 1 && std::strcmp(argv[1], "--no-bench") == 0);
  if (argc > 1 && std::strcmp(argv[1], "--bench-only") == 0) {
    bench_kernels();
    return 0;
  }
  std::printf("kiln CPU kernel check (%d threads)\n", num_threads());
  check_all_t<float>();
  check_all_t<double>();
  check_softmax_fd();
  check_find_invalid();
  {
    std::vector<int32_t> x = {3, -1, 7, 2, 2, 9}, y(2);
    reduce_i32(ReduceOp::Sum, x.data(), y.data(), 2, 3, 1);
    bool ok = y[0] == 9 && y[1] == 13;
    reduce_i32(ReduceOp::Max, x.data(), y.data(), 1, 3, 2);
    ok &= y[0] == 7 && y[1] == 9;
    reduce_i32(ReduceOp::Min, x.data(), y.data(), 1, 3, 2);
    ok &= y[0] == 2 && y[1] == -1;
    ref::expect("reduce_i32 sum/max/min", ok);
    // Exact sums: a partial past INT32_MAX that comes back fits; a total past it is reported.
    std::vector<int32_t> big = {INT32_MAX, 1, -1, 5, INT32_MAX, 1};
    int64_t at = reduce_i32(ReduceOp::Sum, big.data(), y.data(), 2, 3, 1);
    ref::expect("reduce_i32 sum overflow reported", at == 1 && y[0] == INT32_MAX);
    std::vector<int32_t> cs(6);
    at = cumsum_i32(big.data(), cs.data(), 1, 6, 1, false);
    ref::expect("cumsum_i32 overflow at the first partial past INT32_MAX", at == 1);
    std::vector<int32_t> small = {1, 2, 3, 4, 5, 6};
    at = cumsum_i32(small.data(), cs.data(), 1, 3, 2, true);
    ref::expect("cumsum_i32 reverse columns", at == -1 && cs[0] == 9 && cs[1] == 12 && cs[4] == 5 && cs[5] == 6);
  }
  check_random_and_vmath();
  if (bench) bench_kernels();
  std::printf("%s: %d failure(s)\n", ref::failures() ? "FAILED" : "PASSED", ref::failures());
  return ref::failures() ? 1 : 0;
}
