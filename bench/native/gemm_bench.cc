// Standalone correctness check and benchmark for kiln::cpu::gemm (kernels/cpu/gemm.cc).
// Build (from the repository root):
//   g++ -O3 -fopenmp -std=c++17 -Ikernels/cpu bench/native/gemm_bench.cc kernels/cpu/gemm.cc kernels/cpu/gemm_microkernels.cc kernels/cpu/gemm_gemv.cc kernels/cpu/threads.cc -o /tmp/gemm_bench
//   (add -DKILN_GEMM_TUNING to honour the KILN_GEMM_{PACKA,PACKB,MC,KC,NC} plan overrides)
// Usage:
//   /tmp/gemm_bench --check [--all-kernels]   check against a naive double-precision triple loop;
//                                             exits 1 on any failure. --all-kernels reruns the check
//                                             with KILN_GEMM_KERNEL=avx512, avx2 and generic.
//   /tmp/gemm_bench [--threads 2] [--reps 7] [--shapes bench/gemm_shapes.txt] [--only a,b]
//                   [--json] [--ref torch.json] [--best]
//       times the shared shape list (same file as bench/reference/torch_gemm.py) and prints GFLOP/s;
//       --ref takes that script's JSON output and adds a kiln/reference ratio column; --best
//       reports the fastest repeat instead of the median; --cpu-time times with process CPU time
//       (summed over threads) instead of wall time. Both are for tuning on a busy machine.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gemm_microkernels.h"
#include "kernels.h"

using kiln::cpu::gemm;

namespace {

// ------------------------------------------------------------------ correctness
struct Case {
  int64_t batch, M, N, K;
  bool tA, tB;
  double alpha, beta;
  int64_t padA, padB, padC;        // extra leading-dimension elements
  bool bcastA, bcastB, sharedC;    // batch stride 0
};

template <class T>
struct Checker {
  std::mt19937_64 rng{42};
  int failures = 0, cases = 0;
  double worst = 0;  // largest error / bound seen

  void fill(std::vector<T>& v) {
    std::uniform_real_distribution<double> u(-1, 1);
    for (auto& x : v) x = static_cast<T>(u(rng));
  }

  void run(const Case& c) {
    ++cases;
    const int64_t rowsA = c.tA ? c.K : c.M, colsA = c.tA ? c.M : c.K;
    const int64_t rowsB = c.tB ? c.N : c.K, colsB = c.tB ? c.K : c.N;
    const int64_t lda = colsA + c.padA, ldb = colsB + c.padB, ldc = c.N + c.padC;
    const int64_t sA = c.bcastA ? 0 : rowsA * lda, sB = c.bcastB ? 0 : rowsB * ldb;
    const int64_t sC = c.sharedC ? 0 : c.M * ldc;
    std::vector<T> A(std::max<int64_t>(1, c.bcastA ? rowsA * lda : c.batch * rowsA * lda));
    std::vector<T> B(std::max<int64_t>(1, c.bcastB ? rowsB * ldb : c.batch * rowsB * ldb));
    std::vector<T> C((c.sharedC ? 1 : c.batch) * c.M * ldc);
    fill(A);
    fill(B);
    if (c.beta == 0) std::fill(C.begin(), C.end(), std::numeric_limits<T>::quiet_NaN());
    else fill(C);
    // Reference in double, applied batch entry by batch entry (so a shared C accumulates in order),
    // with the elementwise bound |err| <= 2 (K+2) eps (|alpha| (|A||B|) + |beta| |C_in|),
    // accumulated through the batch for a shared C.
    std::vector<double> ref(C.begin(), C.end()), bound(C.size(), 0.0);
    const double eps = std::numeric_limits<T>::epsilon();
    for (int64_t b = 0; b < c.batch; ++b) {
      const T* a = A.data() + b * sA;
      const T* bb = B.data() + b * sB;
      for (int64_t i = 0; i < c.M; ++i)
        for (int64_t j = 0; j < c.N; ++j) {
          double s = 0, sabs = 0;
          for (int64_t k = 0; k < c.K; ++k) {
            double x = c.tA ? a[k * lda + i] : a[i * lda + k];
            double y = c.tB ? bb[j * ldb + k] : bb[k * ldb + j];
            s += x * y;
            sabs += std::fabs(x * y);
          }
          const int64_t at = b * sC + i * ldc + j;
          const double cin = c.beta == 0 ? 0 : ref[at];
          ref[at] = c.alpha * s + c.beta * cin;
          bound[at] = 2 * (c.K + 2) * eps * (std::fabs(c.alpha) * sabs + std::fabs(c.beta * cin)) +
                      std::fabs(c.beta) * bound[at] + std::numeric_limits<T>::min();
        }
    }
    gemm<T>(c.batch, c.tA, c.tB, c.M, c.N, c.K, static_cast<T>(c.alpha), A.data(), lda, sA,
            B.data(), ldb, sB, static_cast<T>(c.beta), C.data(), ldc, sC);
    int bad = 0;
    for (int64_t b = 0; b < (c.sharedC ? 1 : c.batch); ++b)
      for (int64_t i = 0; i < c.M; ++i)
        for (int64_t j = 0; j < ldc; ++j) {
          const int64_t at = b * sC + i * ldc + j;
          if (j >= c.N) {  // padding between rows must be untouched
            if (!(C[at] == static_cast<T>(ref[at]) || (std::isnan(C[at]) && std::isnan(ref[at]))))
              ++bad;
            continue;
          }
          const double err = std::fabs(C[at] - ref[at]);
          if (!(err <= bound[at])) ++bad;
          else worst = std::max(worst, err / bound[at]);
        }
    if (bad) {
      ++failures;
      if (failures <= 10)
        std::printf("FAIL %s batch=%ld %c%c M=%ld N=%ld K=%ld alpha=%g beta=%g pad=%ld/%ld/%ld "
                    "stride0=%d%d%d: %d bad elements\n",
                    sizeof(T) == 4 ? "float" : "double", long(c.batch), c.tA ? 'T' : 'N',
                    c.tB ? 'T' : 'N', long(c.M), long(c.N), long(c.K), c.alpha, c.beta,
                    long(c.padA), long(c.padB), long(c.padC), c.bcastA, c.bcastB, c.sharedC, bad);
    }
  }
};

std::vector<Case> check_cases() {
  std::vector<Case> cs;
  const int64_t sizes[] = {1, 3, 17, 63, 65, 129};
  int v = 0;
  for (int t = 0; t < 4; ++t)
    for (int64_t M : sizes)
      for (int64_t N : sizes)
        for (int64_t K : sizes) {
          ++v;  // cycle alpha/beta/padding through the grid
          const double alphas[] = {1.0, -0.5, 2.0}, betas[] = {0.0, 1.0, 0.75, 0.0};
          cs.push_back({1, M, N, K, bool(t & 1), bool(t & 2), alphas[v % 3], betas[v % 4],
                        (v % 5 == 0) ? 3 : 0, (v % 7 == 0) ? 5 : 0, (v % 3 == 0) ? 2 : 0,
                        false, false, false});
        }
  // Sizes that cross the cache blocks (kc = 256, nc = 1024, mc = 144 on AVX-512) and the
  // single-thread / per-matrix / split-rows / split-columns paths.
  const int64_t big[][3] = {{300, 1100, 520}, {1, 1030, 700}, {700, 1, 300}, {257, 45, 1031},
                            {2, 2000, 300}, {40, 700, 600}, {1024, 96, 64}, {333, 333, 333},
                            {4, 77, 45}, {4, 2050, 33}, {3, 1100, 9}, {5, 300, 70},
                            {16, 33, 1000}, {9, 1500, 40}, {3, 1500, 800}};
  for (int t = 0; t < 4; ++t)
    for (auto& s : big)
      cs.push_back({1, s[0], s[1], s[2], bool(t & 1), bool(t & 2), t == 2 ? -1.5 : 1.0,
                    t == 3 ? 0.5 : 0.0, t, 2 * t, 1, false, false, false});
  // Batches: plain strides, broadcast A or B (stride 0), a shared C accumulated in order.
  for (int t = 0; t < 4; ++t) {
    const bool tA = t & 1, tB = t & 2;
    cs.push_back({7, 42, 42, 32, tA, tB, 1.0, 0.0, 0, 0, 0, false, false, false});
    cs.push_back({9, 42, 32, 42, tA, tB, 0.5, 1.0, 1, 0, 3, false, false, false});
    cs.push_back({5, 17, 65, 33, tA, tB, 1.0, 0.0, 0, 0, 0, true, false, false});
    cs.push_back({5, 65, 17, 129, tA, tB, 1.0, 0.25, 0, 1, 0, false, true, false});
    cs.push_back({4, 20, 30, 40, tA, tB, 1.0, 1.0, 0, 0, 0, false, false, true});
    cs.push_back({3, 20, 30, 40, tA, tB, 1.0, 0.0, 0, 0, 0, true, true, true});
    cs.push_back({2, 200, 200, 200, tA, tB, 1.0, 0.0, 0, 0, 0, false, false, false});
    cs.push_back({3, 150, 300, 70, tA, tB, 1.0, 0.5, 0, 0, 0, false, true, false});
  }
  // Degenerate: K == 0 and alpha == 0 scale C by beta without reading A or B.
  cs.push_back({2, 5, 7, 0, false, false, 1.0, 0.5, 0, 0, 0, false, false, false});
  cs.push_back({1, 5, 7, 0, false, true, 1.0, 0.0, 0, 0, 0, false, false, false});
  cs.push_back({1, 9, 9, 9, true, false, 0.0, 2.0, 0, 0, 1, false, false, false});
  return cs;
}

int run_checks() {
  int failures = 0;
  const int thread_counts[] = {1, 2, 3};
  for (int nt : thread_counts) {
    kiln::cpu::set_num_threads(nt);
    Checker<float> f;
    Checker<double> d;
    for (const Case& c : check_cases()) {
      f.run(c);
      d.run(c);
    }
    std::printf("check kernel=%s threads=%d: float %d/%d ok (worst err/bound %.3f), "
                "double %d/%d ok (worst err/bound %.3f)\n",
                kiln::cpu::gemm_detail::float_kernels().name, nt, f.cases - f.failures, f.cases,
                f.worst, d.cases - d.failures, d.cases, d.worst);
    failures += f.failures + d.failures;
  }
  return failures;
}

// ------------------------------------------------------------------ timing
struct Shape {
  std::string name;
  int64_t batch, M, N, K;
  bool tA, tB;
};

std::vector<Shape> read_shapes(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "cannot read %s (run from the repository root or pass --shapes)\n",
                 path.c_str());
    std::exit(2);
  }
  std::vector<Shape> out;
  std::string line;
  while (std::getline(in, line)) {
    line = line.substr(0, line.find('#'));
    std::istringstream ss(line);
    Shape s;
    std::string ta, tb;
    if (ss >> s.name >> s.batch >> ta >> tb >> s.M >> s.N >> s.K) {
      s.tA = ta == "T";
      s.tB = tb == "T";
      out.push_back(s);
    }
  }
  return out;
}

// gflops per shape name from the reference script's JSON (flat scan, no JSON library needed).
std::map<std::string, double> read_ref(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  std::map<std::string, double> out;
  size_t at = 0;
  while ((at = text.find("\"name\"", at)) != std::string::npos) {
    const size_t q0 = text.find('"', text.find(':', at)) + 1, q1 = text.find('"', q0);
    const size_t g = text.find("\"gflops\"", q1);
    if (g == std::string::npos) break;
    out[text.substr(q0, q1 - q0)] = std::atof(text.c_str() + text.find(':', g) + 1);
    at = q1;
  }
  return out;
}

bool cpu_clock = false;

double time_shape(const Shape& s, int reps, bool best, double* gflops) {
  const int64_t sa = s.M * s.K, sb = s.K * s.N, sc = s.M * s.N;
  std::vector<float> A(s.batch * sa), B(s.batch * sb), C(s.batch * sc);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1, 1);
  for (auto& x : A) x = u(rng);
  for (auto& x : B) x = u(rng);
  const int64_t lda = s.tA ? s.M : s.K, ldb = s.tB ? s.K : s.N;
  auto fn = [&] {
    gemm<float>(s.batch, s.tA, s.tB, s.M, s.N, s.K, 1.0f, A.data(), lda, sa, B.data(), ldb, sb,
                0.0f, C.data(), s.N, sc);
  };
  // Wall time, or with --cpu-time the process's CPU time (summed over threads: on a shared,
  // oversubscribed machine it measures the work done rather than the time the OS gave us).
  struct clk {
    static double now() {
      if (cpu_clock) return double(std::clock()) / CLOCKS_PER_SEC;
      return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    }
  };
  auto secs = [](double a, double b) { return b - a; };
  fn();
  auto t0 = clk::now();
  fn();
  const double one = std::max(secs(t0, clk::now()), 1e-7);
  const int inner = std::max(1, std::min(1000, int(0.05 / one)));  // ~50 ms per repeat
  for (int i = 0; i < inner; ++i) fn();
  std::vector<double> times;
  for (int r = 0; r < reps; ++r) {
    t0 = clk::now();
    for (int i = 0; i < inner; ++i) fn();
    times.push_back(secs(t0, clk::now()) / inner);
  }
  std::sort(times.begin(), times.end());
  const double med = best ? times[0] : times[times.size() / 2];
  *gflops = 2.0 * s.batch * s.M * s.N * s.K / med / 1e9;
  return med * 1e3;
}

}  // namespace

int main(int argc, char** argv) {
  bool check = false, all_kernels = false, json = false, best = false;
  int threads = 2, reps = 7;
  std::string shapes_path = "bench/gemm_shapes.txt", only, ref_path;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--check") check = true;
    else if (a == "--all-kernels") all_kernels = true;
    else if (a == "--json") json = true;
    else if (a == "--best") best = true;
    else if (a == "--cpu-time") cpu_clock = true;
    else if (a == "--threads") threads = std::atoi(next().c_str());
    else if (a == "--reps") reps = std::max(1, std::atoi(next().c_str()));
    else if (a == "--shapes") shapes_path = next();
    else if (a == "--only") only = next();
    else if (a == "--ref") ref_path = next();
    else {
      std::fprintf(stderr, "unknown option %s (see the comment at the top of gemm_bench.cc)\n",
                   a.c_str());
      return 2;
    }
  }
  if (check) {
    if (all_kernels) {
      int rc = 0;
      for (const char* k : {"avx512", "avx2", "generic"}) {
        const std::string cmd = std::string("KILN_GEMM_KERNEL=") + k + " '" + argv[0] + "' --check";
        rc |= std::system(cmd.c_str());
      }
      std::printf(rc ? "gemm check: FAILED\n" : "gemm check: all kernels passed\n");
      return rc ? 1 : 0;
    }
    const int failures = run_checks();
    std::printf(failures ? "gemm check: %d FAILED cases\n" : "gemm check: passed\n", failures);
    return failures ? 1 : 0;
  }

  kiln::cpu::set_num_threads(threads);
  const auto ref = ref_path.empty() ? std::map<std::string, double>() : read_ref(ref_path);
  const char* kernel = kiln::cpu::gemm_detail::float_kernels().name;
  if (json) std::printf("{\"library\": \"kiln\", \"kernel\": \"%s\", \"threads\": %d, \"results\": [",
                        kernel, threads);
  else std::printf("kiln sgemm, kernel %s, %d threads, %s of %d\n%-20s %6s %6s %6s %6s %3s "
                   "%10s %9s%s\n", kernel, threads, best ? "best" : "median", reps, "shape", "batch", "M", "N", "K", "op",
                   "ms", "GFLOP/s", ref.empty() ? "" : "    ref  ratio");
  bool first = true;
  for (const Shape& s : read_shapes(shapes_path)) {
    if (!only.empty() && ("," + only + ",").find("," + s.name + ",") == std::string::npos) continue;
    double gf = 0;
    const double ms = time_shape(s, reps, best, &gf);
    auto r = ref.find(s.name);
    if (json) {
      std::printf("%s\n {\"name\": \"%s\", \"batch\": %ld, \"transA\": %s, \"transB\": %s, \"M\": %ld, "
                  "\"N\": %ld, \"K\": %ld, \"ms\": %.4f, \"gflops\": %.2f",
                  first ? "" : ",", s.name.c_str(), long(s.batch), s.tA ? "true" : "false",
                  s.tB ? "true" : "false", long(s.M), long(s.N), long(s.K), ms, gf);
      if (r != ref.end()) std::printf(", \"ref_gflops\": %.2f, \"ratio\": %.3f", r->second, gf / r->second);
      std::printf("}");
    } else {
      std::printf("%-20s %6ld %6ld %6ld %6ld  %c%c %10.4f %9.2f", s.name.c_str(), long(s.batch),
                  long(s.M), long(s.N), long(s.K), s.tA ? 'T' : 'N', s.tB ? 'T' : 'N', ms, gf);
      if (r != ref.end()) std::printf(" %6.2f %6.2fx", r->second, gf / r->second);
      std::printf("\n");
    }
    first = false;
  }
  if (json) std::printf("\n]}\n");
  return 0;
}
