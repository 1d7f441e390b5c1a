// The wgmma kernel's part of gemm_cuda_check (--wgmma): included by gemm_cuda_check.cu inside its
// anonymous namespace, after run_case / time_ms / report, when it is built with KILN_GEMM_SM90
// (scripts/build-gemm-check.sh). Runs only on compute capability 9.x.
#pragma once

// Its own cases: every layout with ragged M, N and K, K = 16 and K = 1, padded leading dims,
// batches with gaps and broadcasts, alpha and beta, > 65535 batches. All are aligned for the TMA
// unit (16-byte bases, leading dims and batch strides in multiples of 8 elements), so the kernel
// must take each one: a decline counts as a failure.
void check_wgmma() {
  const int cases0 = g_cases, fail0 = g_fail;
  std::vector<Case> cases;
  auto add = [&](Case c) {
    c.wgmmaOnly = true;
    cases.push_back(c);
  };
  static const char* const kLayouts[4] = {"NN", "NT", "TN", "TT"};
  static char names[8][48];
  for (int l = 0; l < 4; ++l) {
    std::snprintf(names[l], sizeof names[l], "wgmma one tile 128x256x64 %s", kLayouts[l]);
    add({names[l], 1, 128, 256, 64, bool(l & 2), bool(l & 1)});
    std::snprintf(names[4 + l], sizeof names[4 + l], "wgmma 1024^3 %s", kLayouts[l]);
    add({names[4 + l], 1, 1024, 1024, 1024, bool(l & 2), bool(l & 1)});
  }
  add({"wgmma 131x264x72 NN (ragged M)", 1, 131, 264, 72, false, false});
  add({"wgmma 136x257x72 NT (ragged N, odd ldc)", 1, 136, 257, 72, false, true});
  add({"wgmma 136x200x91 TN (ragged K)", 1, 136, 200, 91, true, false});
  add({"wgmma 264x131x40 TT", 1, 264, 131, 40, true, true});
  add({"wgmma K=16 100x96x16 NN", 1, 100, 96, 16, false, false});
  add({"wgmma K=16 64x72x16 TT", 1, 64, 72, 16, true, true});
  {
    Case c{"wgmma K=1 70x80x1 NN (lda 8)", 1, 70, 80, 1, false, false};
    c.padA = 7;
    add(c);
  }
  {
    Case c{"wgmma 129x257x200 NN padded ld", 1, 129, 257, 200, false, false};
    c.padB = 7;
    c.padC = 3;
    add(c);
  }
  {
    Case c{"wgmma alpha=-0.5 beta=1.5 200x300x120 NT", 1, 200, 300, 120, false, true};
    c.alpha = -0.5;
    c.beta = 1.5;
    add(c);
  }
  {
    Case c{"wgmma batch 3 gaps beta 136x264x72 NN", 3, 136, 264, 72, false, false};
    c.gapA = 8;
    c.gapB = 16;
    c.gapC = 5;
    c.beta = 0.75;
    add(c);
  }
  {
    Case c{"wgmma batch 4 B broadcast 100x256x64 NT", 4, 100, 256, 64, false, true};
    c.bcastB = true;
    add(c);
  }
  {
    Case c{"wgmma batch 3 A broadcast 64x128x96 TN", 3, 64, 128, 96, true, false};
    c.bcastA = true;
    add(c);
  }
  add({"wgmma 2 x 520x776x1000 TN", 2, 520, 776, 1000, true, false});
  add({"wgmma 1x1000 @ 1000x1000 (row)", 1, 1, 1000, 1000, false, false});
  add({"wgmma 1000x1x1000 NT (column)", 1, 1000, 1, 1000, false, true});
  add({"wgmma K=8192 64x64 NN", 1, 64, 64, 8192, false, false});
  add({"wgmma batch 70000 8x8x8 NT (grid z)", 70000, 8, 8, 8, false, true});
  for (const Case& c : cases)
    for (GemmType in : {GemmType::BF16, GemmType::F16}) run_case(c, in, c.batch > 1000);
  std::printf("check wgmma: %d runs, %d failed\n", g_cases - cases0, g_fail - fail0);
}

void fill_device(void* p, int64_t n, GemmType t, uint32_t seed) {
  if (t == GemmType::F16) check_kernels::fill_uniform<<<1024, 256>>>(static_cast<__half*>(p), n, seed);
  else check_kernels::fill_uniform<<<1024, 256>>>(static_cast<__nv_bfloat16*>(p), n, seed);
  CK(cudaGetLastError());
  CK(cudaDeviceSynchronize());
}

// n^3 in one layout, float32 out: the wgmma result against float64 dot products at 1024 sampled
// entries (err / sum|ab| <= 1e-5, as run_case) and against the mma.sync kernel over all of C.
void check_wgmma_large(int64_t n, void* A, void* B, void* C, void* C2, bool ta, bool tb) {
  ++g_cases;
  const GemmType in = GemmType::BF16;
  GemmArgs g = square(n, Bufs{A, B, C}, ta, tb);
  bool handled = false;
  std::string err = gemm_sm90(in, GemmType::F32, g, handled);
  if (!handled) err = "declined: " + gemm_sm90_unsupported(in, GemmType::F32, g);
  if (err.empty()) {
    const cudaError_t e = cudaDeviceSynchronize();
    if (e != cudaSuccess) err = cudaGetErrorString(e);
  }
  char what[64];
  std::snprintf(what, sizeof what, "wgmma %lld^3 %c%c bf16->f32", (long long)n, ta ? 'T' : 'N', tb ? 'T' : 'N');
  if (!err.empty()) {
    ++g_fail;
    std::printf("FAIL %-34s error %s\n", what, err.c_str());
    return;
  }
  GemmArgs g2 = g;
  g2.C = C2;
  err = launch_mode<Mode::BF16, HalfBig, HalfSmall>(make_params(in, GemmType::F32, g2));
  CK(cudaDeviceSynchronize());
  const size_t elems = size_t(n) * size_t(n);
  std::vector<unsigned char> hA(elems * 2), hB(elems * 2);
  std::vector<float> hC(elems), hC2(elems);
  CK(cudaMemcpy(hA.data(), A, hA.size(), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(hB.data(), B, hB.size(), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(hC.data(), C, elems * 4, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(hC2.data(), C2, elems * 4, cudaMemcpyDeviceToHost));
  constexpr int kSamples = 1024;
  std::vector<int64_t> si(kSamples), sj(kSamples);
  std::uniform_int_distribution<int64_t> pick(0, n - 1);
  for (int s = 0; s < kSamples; ++s) {
    si[s] = s < 4 ? (s & 1 ? n - 1 : 0) : pick(rng);  // the four corners, then random entries
    sj[s] = s < 4 ? (s & 2 ? n - 1 : 0) : pick(rng);
  }
  std::vector<double> relErr(kSamples);
  std::vector<char> off(kSamples);
#pragma omp parallel for schedule(static)
  for (int s = 0; s < kSamples; ++s) {
    const int64_t i = si[s], j = sj[s];
    double dot = 0, sabs = 0;
    for (int64_t k = 0; k < n; ++k) {
      const double a = load_elem(hA, ta ? k * n + i : i * n + k, in), b = load_elem(hB, tb ? j * n + k : k * n + j, in);
      dot += a * b;
      sabs += std::fabs(a * b);
    }
    const double diff = std::fabs(double(hC[i * n + j]) - dot);
    off[s] = !(diff <= 1e-5 * sabs + 1e-30);  // NaN counts as off
    relErr[s] = sabs > 0 ? diff / sabs : diff;
  }
  double worst = 0;
  int bad = 0;
  for (int s = 0; s < kSamples; ++s) {
    if (std::isfinite(relErr[s])) worst = std::max(worst, relErr[s]);
    bad += off[s];
  }
  double num = 0, den = 0;
  for (size_t e = 0; e < elems; ++e) {
    const double d = double(hC[e]) - double(hC2[e]);
    num += d * d;
    den += double(hC2[e]) * double(hC2[e]);
  }
  const double vsMma = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  const bool ok = bad == 0 && err.empty() && vsMma <= 1e-4;
  if (!ok) ++g_fail;
  std::printf("%-4s %-34s sampled err/sum|ab| %.2e (%d of %d off)  norm-rel vs mma.sync %.2e%s%s\n", ok ? "ok" : "FAIL", what,
              worst, bad, kSamples, vsMma, err.empty() ? "" : "  mma.sync error: ", err.c_str());
}

// Both kernels' TFLOP/s (alpha 1, beta 0, C of the input type) and their ratio, on a line that starts
// with `tag`; `dispatch` adds which kernel gemm.cu's default dispatch picks for the shape.
void time_pair(const char* tag, const char* what, GemmType in, const GemmArgs& g, bool dispatch = false) {
  std::string errOld, errNew;
  const Params p = make_params(in, in, g);
  const double msOld = time_ms([&] {
    errOld = in == GemmType::BF16 ? launch_mode<Mode::BF16, HalfBig, HalfSmall>(p) : launch_mode<Mode::F16, HalfBig, HalfSmall>(p);
  });
  bool handled = true;
  const double msNew = time_ms([&] {
    bool h = false;
    errNew = gemm_sm90(in, in, g, h);
    handled = handled && h;
  });
  if (!handled) errNew = "declined: " + gemm_sm90_unsupported(in, in, g);
  const double flop = 2.0 * double(g.M) * double(g.N) * double(g.K);
  if (!errOld.empty() || !errNew.empty()) {
    std::printf("%s %-30s error: mma.sync '%s', wgmma '%s'\n", tag, what, errOld.c_str(), errNew.c_str());
    return;
  }
  std::printf("%s %-30s mma.sync %8.4f ms %7.1f TF/s   wgmma %8.4f ms %7.1f TF/s   wgmma/mma %.2fx%s%s\n", tag, what, msOld,
              flop / (msOld * 1e9), msNew, flop / (msNew * 1e9), msOld / msNew, dispatch ? "   default " : "",
              dispatch ? (gemm_sm90_pays_off(g) ? "wgmma" : "mma.sync") : "");
}

// Where the wgmma kernel starts to beat mma.sync: bf16 products from small to large, both kernels
// timed on the same operands (row-major, no transposes), and whether gemm.cu's default dispatch
// would pick wgmma for the shape (gemm_sm90_pays_off).
void wgmma_crossover() {
  struct Shape { int64_t M, N, K; const char* what; };
  const Shape shapes[] = {
      {512, 512, 512, "512^3"}, {1024, 1024, 1024, "1024^3"}, {2048, 2048, 2048, "2048^3"},
      {2048, 2048, 512, "2048x2048x512"}, {4096, 4096, 1024, "4096x4096x1024"},
      {2816, 192, 64, "ICL qkv 2816x192x64"}, {2816, 64, 256, "ICL mlp-out 2816x64x256"},
      {64, 256, 2816, "ICL dW 64x256x2816"}, {2688, 384, 128, "bench small qkv 2688x384x128"},
      {2688, 768, 256, "bench paper qkv 2688x768x256"}, {8192, 3072, 768, "GPT-2 mlp 8192x3072x768"},
      {8192, 768, 3072, "GPT-2 mlp-out 8192x768x3072"}};
  for (const Shape& s : shapes) {
    void *A, *B, *C;
    CK(cudaMalloc(&A, size_t(s.M * s.K) * 2));
    CK(cudaMalloc(&B, size_t(s.K * s.N) * 2));
    CK(cudaMalloc(&C, size_t(s.M * s.N) * 2));
    fill_device(A, s.M * s.K, GemmType::BF16, 5);
    fill_device(B, s.K * s.N, GemmType::BF16, 6);
    GemmArgs g;
    g.M = s.M;
    g.N = s.N;
    g.K = s.K;
    g.A = A;
    g.B = B;
    g.C = C;
    g.lda = s.K;
    g.ldb = s.N;
    g.ldc = s.N;
    time_pair("cross", s.what, GemmType::BF16, g, true);
    CK(cudaFree(A));
    CK(cudaFree(B));
    CK(cudaFree(C));
  }
}

void wgmma_large_and_timing() {
  for (int64_t n : {int64_t(4096), int64_t(8192)}) {
    const size_t elems = size_t(n) * size_t(n);
    void *A, *B, *C, *C2;
    CK(cudaMalloc(&A, elems * 2));
    CK(cudaMalloc(&B, elems * 2));
    CK(cudaMalloc(&C, elems * 4));
    CK(cudaMalloc(&C2, elems * 4));
    fill_device(A, int64_t(elems), GemmType::BF16, 1);
    fill_device(B, int64_t(elems), GemmType::BF16, 2);
    const int layouts = n == 4096 ? 4 : 1;
    for (int l = 0; l < layouts; ++l) check_wgmma_large(n, A, B, C, C2, l & 2, l & 1);
    for (int l = 0; l < layouts; ++l) {
      char what[48];
      std::snprintf(what, sizeof what, "bf16->bf16 %c%c %lld^3", l & 2 ? 'T' : 'N', l & 1 ? 'T' : 'N', (long long)n);
      time_pair("time", what, GemmType::BF16, square(n, Bufs{A, B, C}, l & 2, l & 1));
    }
    if (n == 4096) {
      fill_device(A, int64_t(elems), GemmType::F16, 3);
      fill_device(B, int64_t(elems), GemmType::F16, 4);
      time_pair("time", "f16->f16 NN 4096^3", GemmType::F16, square(n, Bufs{A, B, C}, false, false));
    }
    CK(cudaFree(A));
    CK(cudaFree(B));
    CK(cudaFree(C));
    CK(cudaFree(C2));
  }
}
