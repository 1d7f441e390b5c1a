#!/usr/bin/env python3
# Can the host model (model.cc, run.cc) catch a broken tensor-core kernel? Each mutant below plants one
# bug of a kind a GPU run would show — a race, a wrong descriptor, a barrier phase, a mask, a
# swizzle — into a copy of one kernel source (as scripts/build-cuda-host.sh rewrote it), rebuilds the
# driver with it and runs the part of the check that covers it. Every mutant must fail; the first
# failure line is printed. Exits 1 if any mutant passes.
#
#   bash scripts/build-cuda-host.sh && python3 bench/native/cuda_host/mutants.py [--quick] [name ...]
# (--quick: run.cc's --quick case set; fine for the mutants every case catches, fewer catch the races.)
import os
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
OUT = os.path.join(ROOT, "build", "cuda_host")

# (name, file, old text, new text, --only part of run.cc, what it breaks); old / new may be tuples of
# edits, each of which must apply exactly once.
MUTANTS = [
    ("fwd-early-release", "attention_fwd_sm90",
     "      turn_end();\n      wgmma_wait<0>();\n      fence_acc(sc);\n      release(emptyK(sK));\n",
     "      turn_end();\n      release(emptyK(sK));\n      wgmma_wait<0>();\n      fence_acc(sc);\n",
     "fwd", "a K stage handed back to the producer while S = Q K^T still reads it"),
    ("fwd-v-lbo", "attention_fwd_sm90",
     "SmemDesc descV(sv, 2 * kBoxBytes, 1024)", "SmemDesc descV(sv, kBoxBytes, 1024)",
     "fwd", "V's leading byte offset (the second 64 d columns, D = 128)"),
    ("fwd-no-wait", "attention_fwd_sm90",
     "        softmax(sc, jb * kKeys, alpha);  // in place: S(j) has landed, and no product in flight reads sc\n        wgmma_wait<0>();\n",
     "        softmax(sc, jb * kKeys, alpha);  // in place: S(j) has landed, and no product in flight reads sc\n",
     "fwd", "pipelined schedule: O rescaled and P(j) packed while P(j-1) V(j-1) is in flight"),
    ("fwd-parity", "attention_fwd_sm90",
     "mbar_wait(empty(s), phase ^ 1u);  // a fresh barrier passes parity 1: both stages start free",
     "mbar_wait(empty(s), phase);",
     "fwd", "the producer waits on the wrong phase of a stage's empty barrier"),
    ("fwd-causal-mask", "attention_fwd_sm90",
     "if (8 * i + e >= lim) sc", "if (8 * i + e > lim) sc",
     "fwd", "the causal / key-length mask lets one more key through"),
    ("bwd-full-count", "attention_bwd_sm90",
     "mbar_init(full(s), 1 + 32);", "mbar_init(full(s), 1);",
     "bwd", "a stage's full barrier counts only the TMA thread's arrival, not the lse / D_i warp's"),
    ("bwd-no-barrier", "attention_bwd_sm90",
     "      if (kSplitKeys) named_barrier(2 + c, 128);\n      else named_barrier(1, 256);\n", "",
     "bwd", "no barrier between writing P^T / dS^T and the products that read them"),
    ("bwd-swizzle", "attention_bwd_sm90",
     "r * 128 + (((i % 8) ^ (r & 7)) << 4) + 4 * t4;", "r * 128 + ((i % 8) << 4) + 4 * t4;",
     "bwd", "P^T / dS^T stored without the 128-byte swizzle the descriptors read with"),
    ("bwd-no-proxy-fence", "attention_bwd_sm90",
     "    fence_proxy_async();  // the generic-proxy stores above, before the async proxy (wgmma) reads them\n", "",
     "bwd", "P^T / dS^T stored by the generic proxy, read by wgmma without fence.proxy.async"),
    ("fwd-no-wgmma-fence", "attention_fwd_sm90",
     "    auto issue_pv = [&](const uint32_t (&pa)[kKeys / 16][4], const uint64_t (&dv)[kKeys / 16]) {\n      wgmma_fence();\n",
     "    auto issue_pv = [&](const uint32_t (&pa)[kKeys / 16][4], const uint64_t (&dv)[kKeys / 16]) {\n",
     "fwd", "O += P V issued without wgmma.fence after P was packed into the A registers"),
    ("fwd-pingpong-opener", "attention_fwd_sm90",
     "  if (kPing && c == 1) named_barrier_arrive(1, 256);\n", "",
     "fwd", "pingpong: consumer 1 never opens consumer 0's first turn"),
    ("fwd-pingpong-skipped-turns", "attention_fwd_sm90",
     "      turn_begin();\n      turn_end();\n      mbar_wait(fullK(sK), phK);", "      mbar_wait(fullK(sK), phK);",
     "fwd", "pingpong: no turns for the key tiles a consumer does not compute (causal: the consumers' counts differ)"),
    ("fwd-lse-empty-row", "attention_fwd_sm90",
     "p.lse[bh * p.Tq + i] = l > 0.f ? mrow[h] * p.scale + logf(l) : -INFINITY;",
     "p.lse[bh * p.Tq + i] = l > 0.f ? mrow[h] * p.scale + logf(l) : -1e30f;",
     "fwd", "a row that sees no key gets a finite log-sum-exp instead of -inf"),
    ("fwd-no-dec", "attention_fwd_sm90",
     "    setmaxnreg_dec<Block<kM>::kProducerRegs>();\n    // Thread 0 loads Q", "    // Thread 0 loads Q",
     "fwd", "the producer keeps its registers, so the consumers' setmaxnreg.inc can never be granted"),
    ("bwd-rs-fragment", "attention_bwd_sm90",
     "pa[i / 2][2 * (i % 2) + h] = pp;", "pa[i / 2][2 * h + (i % 2)] = pp;",
     "bwd", "P^T packed into dV's A fragments in the wrong register order (rows and k halves swapped)"),
    ("bwd-dqfirst-no-wait", "attention_bwd_sm90",
     "      wgmma_wait<1>();  // dQ done", "      wgmma_wait<2>();  // dQ done",
     "bwd", "dQ issued first: its atomics read the accumulators before the product is done"),
    ("bwd-dqsum-no-barrier", "attention_bwd_sm90",
     "                make_float2(dqa[4 * i + 2 * h], dqa[4 * i + 2 * h + 1]);\n        named_barrier(1, 256);\n",
     "                make_float2(dqa[4 * i + 2 * h], dqa[4 * i + 2 * h + 1]);\n",
     "bwd", "head dim 64's summed dQ: a consumer reads the other's partial without waiting for it"),
    ("bwd-single-ds-buffer", "attention_bwd_sm90",
     ("gbase + S::dS + ((blk & 1) * 2 + c) * S::kDS", "sbase + S::dS + uint32_t((blk & 1) * 2 + c) * S::kDS",
      "sbase + S::dS + uint32_t(blk & 1) * 2 * S::kDS"),
     ("gbase + S::dS + (c) * S::kDS", "sbase + S::dS + uint32_t(c) * S::kDS", "sbase + S::dS"),
     "bwd", "one dS^T buffer: the next block's dS^T overwrites the box the other consumer's dQ product may still read"),
    ("bwd-fence-early", "attention_bwd_sm90",
     ("    unsigned char* const pBox = gbase + S::P + c * kBoxBytes;\n",
      "    fence_proxy_async();  // the generic-proxy stores above, before the async proxy (wgmma) reads them\n"),
     ("    fence_proxy_async();\n    unsigned char* const pBox = gbase + S::P + c * kBoxBytes;\n", ""),
     "bwd", "fence.proxy.async before the P^T / dS^T stores instead of after them"),
    ("bwd-bulk-no-wait-read", "attention_bwd_sm90",
     "        bulk_wait_read<0>();  // the unit has read this warp's rows of the last block\n        __syncwarp();\n", "",
     "bwd", "dQ by bulk reduction: a warp stages the next block's rows before the TMA unit has read the last ones"),
    ("bwd-bulk-no-proxy-fence", "attention_bwd_sm90",
     "                make_float2(dqa[4 * i + 2 * h], dqa[4 * i + 2 * h + 1]);\n          }\n        fence_proxy_async();\n",
     "                make_float2(dqa[4 * i + 2 * h], dqa[4 * i + 2 * h + 1]);\n          }\n",
     "bwd", "dQ by bulk reduction: the staged rows handed to the TMA unit without fence.proxy.async"),
    ("bwd-bulk-no-final-wait", "attention_bwd_sm90",
     "  if constexpr (kDqBulk) bulk_wait_read<0>();", "",
     "bwd", "dQ by bulk reduction: the consumers exit before the TMA unit has read their last staged rows"),
    ("bwd-bulk-swizzle", "attention_bwd_sm90",
     "r * 128 + ((chunk ^ (r & 7)) << 4) + (t4 & 1) * 8)", "r * 128 + (chunk << 4) + (t4 & 1) * 8)",
     "bwd", "dQ by bulk reduction: rows staged without the 128-byte swizzle the tensor map reads them with"),
    ("bwd-m128-row-offset", "attention_bwd_sm90",
     "const int rowOff = kRowSplit ? kRows * c : 0,", "const int rowOff = 0,",
     "bwd", "128-row query blocks: consumer 1's dQ rows added at consumer 0's"),
    ("bwd-m128-ds-row-block", "attention_bwd_sm90",
     "const uint32_t rowBlk = kRowSplit ? uint32_t(c) : 0u;", "const uint32_t rowBlk = 0u;",
     "bwd", "128-row query blocks: consumer 1's dQ product reads dS of the first 64 query rows"),
    ("bwd-m128-q-row-block", "attention_bwd_sm90",
     "&tmQ, d * kBox, tma_row_block(i0, rb, Tq)", "&tmQ, d * kBox, i0",
     "bwd", "128-row query blocks: the second 64-row box of Q loaded from the first one's rows"),
    ("bwd-m128-lse-rows", "attention_bwd_sm90",
     "for (int u = 0; u < M / 32; ++u) {", "for (int u = 0; u < 2; ++u) {",
     "bwd", "128-row query blocks: the lse / D_i warp fills only the first 64 rows of a stage"),
    ("bwd-persist-kv-early", "attention_bwd_sm90",
     "wait_tile_buffer<kPersist>(kvEmpty, kvn);", "++kvn;",
     "bwd", "persistent backward: the next tile's K / V loaded while the consumers still multiply the last tile's"),
    ("bwd-persist-kv-parity", "attention_bwd_sm90",
     "if (nIter > 0) mbar_wait(kvFull, kvn & 1u);", "if (nIter > 0) mbar_wait(kvFull, 0);",
     "bwd", "persistent backward: the consumers wait for a tile's K / V on the first tile's phase, so later tiles read stale ones"),
    ("fwd-persist-q-early", "attention_fwd_sm90",
     "wait_tile_buffer<kPersist>(qEmpty, qn);", "++qn;",
     "fwd", "persistent forward: the next tile's Q loaded while the consumers still multiply the last tile's"),
    ("fwd-persist-q-parity", "attention_fwd_sm90",
     "      mbar_wait(qFull, qn & 1u);", "      mbar_wait(qFull, 0);",
     "fwd", "persistent forward: the consumers wait for a tile's Q on the first tile's phase, so later tiles read a stale one"),
    ("fwd-m192-empty-count", "attention_fwd_sm90",
     "      mbar_init(emptyK(s), kConsumers * 4);  // one arrival per consumer warp",
     "      mbar_init(emptyK(s), 8);",
     "fwd", "192-row forward: a K stage's empty barrier counts two consumers' warps, so it is handed back before the third is done"),
    ("fwd-m192-q-bytes", "attention_fwd_sm90",
     "mbar_arrive_expect_tx(qFull, S::kTileQ);", "mbar_arrive_expect_tx(qFull, S::kTile);",
     "fwd", "192-row forward: the Q barrier expects a 128-row tile's bytes, so it completes before the third row block lands"),
    ("fa2-no-sync", "attention_fa2",
     "    __syncthreads();\n    if (jb + 1 < nkb) {\n      load_rows_async<T, D, Bc, kFwdThreads>(Ks, Kh, j0 + Bc, kend);",
     "    if (jb + 1 < nkb) {\n      load_rows_async<T, D, Bc, kFwdThreads>(Ks, Kh, j0 + Bc, kend);",
     "fa2", "fa2 forward: no barrier after V(j)'s copies, so a warp reads rows another thread's cp.async has not landed"),
    ("fa2-f32-no-sync", "attention_fa2",
     "    __syncthreads();\n    if (jb + 1 < nkb) {\n      load_rows_async<float, D, Bc, kFwdThreads>(Ks, Kh, j0 + Bc, kend);",
     "    if (jb + 1 < nkb) {\n      load_rows_async<float, D, Bc, kFwdThreads>(Ks, Kh, j0 + Bc, kend);",
     "dispatch", "fa2 float32 forward: no barrier after V(j)'s copies (the half types' race, in the float32 kernel)"),
    ("fa2-ldmatrix-trans", "attention_fa2",
     "ldsm_x4_t(bf, vAddr + (kc * 16 * LD + dp * 16) * sizeof(T));", "ldsm_x4(bf, vAddr + (kc * 16 * LD + dp * 16) * sizeof(T));",
     "fa2", "fa2 forward: V's fragments loaded without .trans"),
    ("f32-one-tf32-pass", "attention",
     "    wmma::mma_sync(acc, al, bh, acc);\n    wmma::mma_sync(acc, ah, bl, acc);\n", "",
     "dispatch", "float32 attention products as one TF32 pass (the 3xTF32 small terms dropped)"),
    ("f32-split-unrounded", "attention",
     "const float x = hi.x[e], h = tf32_round(x);", "const float x = hi.x[e], h = x;",
     "dispatch", "float32 attention: the high part not rounded to TF32, so the remainder is 0 and the tensor cores truncate"),
    ("basic-pad", "attention",
     "constexpr int kPad = 8;", "constexpr int kPad = 4;",
     "dispatch", "basic kernels: rows padded by 4 elements, so a half tile's leading dimension is not a multiple of 16 bytes (WMMA)"),
    ("basic-hidden-keys", "attention",
     "r0 + r < limit && (!hidden || hidden[r0 + r] != 0)", "r0 + r < limit",
     "dispatch", "basic kernels: the keys a key mask hides loaded as they are, so their NaN / Inf reaches outputs through zero weights"),
    ("nce-dk-overwrite", "contrastive",
     "q + r0 * s.dim, s.dim, dk, s.dim, r0 > 0);", "q + r0 * s.dim, s.dim, dk, s.dim, false);",
     "nce", "contrastive backward: each band's G^T q overwrites dk instead of adding to it"),
    ("nce-band-row", "contrastive",
     "const int64_t a = r0 + blockIdx.y;", "const int64_t a = blockIdx.y;",
     "nce", "contrastive backward: dL/dsim of a band computed with the first band's row indices"),
    ("diffusion-noise-words", "diffusion",
     "const uint64_t w = s.offset + static_cast<uint64_t>(e);", "const uint64_t w = s.offset + static_cast<uint64_t>(p);",
     "diffusion", "diffusion step: a pair's Philox words taken at the pair index, not the element index (noise differs from randn)"),
    ("nce-norm-overflow", "contrastive",
     "  if (isinf(n)) {", "  if (false) {",
     "nce", "cosine rows whose float32 squares overflow normalised by an infinite norm (the loss turns into log(2N - 1))"),
    ("nearest-score-only", "diffusion",
     "    if (dist < exact) exact = dist, a = j;", "    if (sc < approx) exact = double(sc), a = j;",
     "diffusion", "nearest rows ranked by the GEMM's score alone (float32 cancellation picks a neighbour in crowded rows)"),
    ("nearest-merge-half", "diffusion",
     "for (int w = kThreads / 2; w > 0; w >>= 1) {\n    if (tid < w) {\n      const double b2",
     "for (int w = kThreads / 4; w > 0; w >>= 1) {\n    if (tid < w) {\n      const double b2",
     "diffusion", "nearest rows: the block's argmin merge never looks at the upper half of its threads"),
    ("nearest-band-row", "diffusion",
     "const int64_t i = r0 + blockIdx.x;", "const int64_t i = blockIdx.x;",
     "diffusion", "nearest rows: a later band writes its results over the first band's rows"),
    ("gemm-cu-wait-group", "gemm",
     "              cp_async_wait<C::STAGES - 2>();  // tile kt + 1 has landed", "              cp_async_wait<C::STAGES - 1>();  // tile kt + 1 has landed",
     "gemm.cu", "gemm.cu main loop: waits for one cp.async group too few, so tile kt + 1 may not have landed"),
    ("gemm-cu-no-tf32-tail", "gemm",
     "lo = isfinite(h) ? to_tf32(x - h) : 0u;", "lo = 0u;",
     "gemm.cu", "gemm.cu float32: the 3xTF32 tails dropped (one TF32 pass where float32 accuracy is promised)"),
    ("gemm-cu-splitk-slices", "gemm",
     "for (int64_t s = 0; s < slices; ++s) sum += ws[s * MN + i];", "for (int64_t s = 0; s + 1 < slices; ++s) sum += ws[s * MN + i];",
     "gemm.cu", "gemm.cu split-K: the reduction drops the last slice"),
    ("fa2-dropout-bwd-words", "attention_fa2",
     "(bh * p.Tq + i0 + c) * p.Tk + key0 + r", "(bh * p.Tq + key0 + r) * p.Tk + i0 + c",
     "dispatch", "fa2 dropout: the backward draws its mask at (key, query) instead of (query, key), so it is not the forward's"),
    ("fa2-dropout-ds", "attention_fa2",
     "dpt[nt][e] = st[nt][e] * (dpt[nt][e] * z - Dib[nt * 8 + t4 * 2 + (e & 1)]);",
     "dpt[nt][e] = st[nt][e] * (dpt[nt][e] - Dib[nt * 8 + t4 * 2 + (e & 1)]) * z;",
     "dispatch", "fa2 dropout: dS = P o Z o (dP - D_i) instead of P o (dP o Z - D_i)"),
    ("fa2-f32-perm", "attention_fa2",
     "  p[4] = c[1];\n  p[8 * LDP] = c[2];", "  p[4] = c[2];\n  p[8 * LDP] = c[1];",
     "dispatch", "fa2 float32: P / dS stored with rows and key slots crossed (a0..a3 not the A fragment of the slots B uses)"),
    ("fa2-f32-one-pass", "attention_fa2",
     "  mma_tf32(c, a.l, b.h[j0], b.h[j1]);\n  mma_tf32(c, a.h, b.l[j0], b.l[j1]);\n", "",
     "dispatch", "fa2 float32: one TF32 pass instead of 3xTF32"),
    ("fa2-f32-dq-slots", "attention_fa2",
     "m0 + (g >> 1) + 4 * (g & 1);", "m0 + g;",
     "dispatch", "fa2 float32 backward: dQ reads dS^T's queries in stored order, not the permuted slots they were written to"),
    ("fa2-f32-b-rows", "attention_fa2",
     "  b.set(1, lds_f32(p + LD));", "  b.set(1, lds_f32(p + 4 * LD));",
     "dispatch", "fa2 float32: B's second register from row t + 4 (the unpermuted layout) while A's slots are permuted"),
    ("fa2-f32-no-smem-fallback", "attention_fa2",
     "  if (static_cast<size_t>(optin) < BwdTiles<float, D, Br>::bytes())\n    return basic_attention_backward(", "  if (false)\n    return basic_attention_backward(",
     "dispatch", "fa2 float32 backward on a device with too little shared memory per block (an A100) instead of the basic kernels"),
    ("ce-smoothing-float", "softmax",
     "static_cast<T>(log(s.l.s) + (static_cast<double>(m) - mean))", "static_cast<T>(lse - static_cast<T>(mean))",
     "rows", "cross entropy's label-smoothing term as lse - mean(x) in the element type (a large common offset of the logits cancels)"),
    ("softmax-masked-row", "softmax",
     "    if (m == -pos_inf<T>()) {\n      row_map(xr, yr, n, vec, lane, size, [&](int64_t, T) { return kLog ? m : T(0); });",
     "    if (false) {\n      row_map(xr, yr, n, vec, lane, size, [&](int64_t, T) { return kLog ? m : T(0); });",
     "rows", "softmax of an all -inf row (a fully masked one) comes out NaN instead of 0 (log-softmax: -inf)"),
    ("sum-i32-wrapped", "reduce",
     "  __device__ static Out fin(S s, int64_t) { return static_cast<long long>(s); }",
     "  __device__ static Out fin(S s, int64_t) { return static_cast<long long>(static_cast<int32_t>(static_cast<uint32_t>(s))); }",
     "reduce", "int32 sum: the overflow check sees the sum wrapped to 32 bits, so a sum past int32 is returned wrapped instead of refused"),
    ("narrow-i32-edges", "reduce",
     "const bool fits = v >= W(INT32_MIN) && v <= W(INT32_MAX);", "const bool fits = v > W(INT32_MIN) && v < W(INT32_MAX);",
     "reduce", "int32 sum / cumsum: INT32_MIN and INT32_MAX themselves refused as past int32"),
    ("narrow-i32-last-store", "reduce",
     "    if (!fits) atomicMin(first, static_cast<unsigned long long>(i));", "    if (!fits) *first = static_cast<unsigned long long>(i);",
     "reduce", "int32 sum / cumsum: the overflow index stored by whichever thread writes last, not the smallest (atomicMin)"),
    ("cumsum-carry-dropped", "reduce",
     "    double pre = carry ? carry[c * outer + row] : 0.0;", "    double pre = 0.0;",
     "reduce", "cumsum of rows past 2048 elements: a chunk's scan starts from 0, not from the earlier chunks' carry"),
    ("gemm-kstep", "gemm_sm90",
     "kStepA = TA ? 16 * 128 : 32", "kStepA = TA ? 8 * 128 : 32",
     "gemm", "the k16 step of an m-contiguous A (8 rows instead of 16)"),
]


def main():
    args = sys.argv[1:]
    quick = "--quick" in args
    pick = set(a for a in args if a != "--quick")
    flags = open(os.path.join(OUT, "flags")).read().split("\n")
    flags = [f for f in flags if f]
    objs = {f: os.path.join(OUT, f + ".o") for f in ("gemm_sm90", "gemm", "attention_fwd_sm90", "attention_bwd_sm90", "attention_fa2", "attention", "contrastive", "diffusion", "softmax", "reduce", "model", "run",
                                                   "cpu_attention", "cpu_diffusion", "cpu_softmax", "cpu_crossentropy", "cpu_reduce", "cpu_threads")}
    mdir = os.path.join(OUT, "mutant")
    os.makedirs(mdir, exist_ok=True)
    missed = 0
    for name, f, old, new, only, what in MUTANTS:
        if pick and name not in pick:
            continue
        src = open(os.path.join(OUT, "src", f + ".cc")).read()
        olds, news = (old, new) if isinstance(old, tuple) else ((old,), (new,))
        counts = [src.count(o) for o in olds]
        if counts != [1] * len(olds):
            print(f"ERROR {name}: the texts to mutate occur {counts} times in {f} (the kernel changed: update mutants.py)")
            missed += 1
            continue
        for o, n_ in zip(olds, news):
            src = src.replace(o, n_)
        msrc = os.path.join(mdir, f + ".cc")
        with open(msrc, "w") as fh:
            fh.write(src)
        t0 = time.time()
        mobj = os.path.join(mdir, f + ".o")
        subprocess.run(["g++", *flags, "-c", msrc, "-o", mobj], cwd=ROOT, check=True)
        exe = os.path.join(mdir, "run")
        subprocess.run(["g++", *[mobj if k == f else o for k, o in objs.items()], "-fopenmp", "-o", exe], cwd=ROOT, check=True)
        r = subprocess.run([exe, "--only", only, *(["--quick"] if quick else [])], cwd=ROOT, capture_output=True, text=True, timeout=600)
        lines = r.stdout.splitlines()
        fails = [l for l in lines if l.startswith("FAIL")]
        model = [l.strip() for l in lines if l.strip().startswith("model:")]
        dt = time.time() - t0
        if r.returncode != 0 and fails:
            first = model[0] if model else fails[0]
            print(f"caught {name} ({what}): {len(fails)} of {len(fails) + sum(l.startswith('PASS') for l in lines)} cases fail; first: {first[:220]}  [{dt:.0f} s]")
        else:
            missed += 1
            print(f"MISSED {name} ({what}): exit {r.returncode}, {lines[-1] if lines else ''}")
        sys.stdout.flush()
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
