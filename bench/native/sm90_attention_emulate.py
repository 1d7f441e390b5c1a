#!/usr/bin/env python3
# Host emulation of the Hopper (sm_90a) attention kernels' shared-memory data path, thread by thread:
# kernels/cuda/attention_fwd_sm90.cu and attention_bwd_sm90.cu replayed block by block in float64 (no
# bf16 rounding) against a plain float64 reference. The hardware model uses only these facts
# (sm90_common.cuh's header; PTX ISA / CUTLASS):
#  1. a TMA 64x64 box (128-byte swizzle) at 1 KiB-aligned B puts element (r, c) at B + swz(r*128 + 2c),
#     swz(x) = x ^ (((x >> 7) & 7) << 4); elements outside the tensor are zero;
#  2. a wgmma descriptor (start S, LBO, SBO, 128B swizzle, k16 step) reads K-major element (row i, k j)
#     at swz(S + (i//8)*SBO + (i%8)*128 + 2j), MN-major (mn i, k j) at
#     swz(S + (i//64)*LBO + (j//8)*SBO + (j%8)*128 + 2*(i%64)), swizzling the absolute address;
#  3. m64nNk16 accumulator: thread 32w + l holds d[4i + 2h + e] = row 16w + l//4 + 8h, col 8i + 2(l%4) + e;
#  4. register A operand: the mma.m16n8k16 A fragment per warp.
# The model is first checked on the GPU-validated gemm_sm90.cu (all transpose layouts, ragged shapes):
# it must give A @ B exactly. (That checks the descriptor reads against the TMA writes; whether the TMA unit
# really swizzles, which the backward's hand-swizzled P^T / dS^T stores rely on, rests on fact 1 alone.)
# Shared memory starts as NaN (stale), so reading a byte nothing wrote shows.
# Structural rules are checked too: 1 KiB-aligned TMA destinations inside their buffers, no TMA box wholly
# outside its tensor, expect_tx bytes equal to the bytes delivered, descriptor fields without carries,
# accesses inside the shared-memory plan, aligned vector stores, every output element stored once.
# Producer and consumers run in the most run-ahead order the mbarriers and named barriers allow.
#
# Run: python3 bench/native/sm90_attention_emulate.py [--quick]   (numpy; exits 1 on any mismatch)
import argparse
import math
import sys
import time

import numpy as np

BOX, BOX_BYTES = 64, 64 * 64 * 2
SMEM_OPTIN_MAX = 232448  # H100: 227 KiB of dynamic shared memory per block
LOG2E = 1.4426950408889634
SMEM_RAW = [16]  # shared address of the dynamic allocation (the kernels align it up to 1 KiB): varied per case
T = np.arange(128)  # thread of a warpgroup
WARP, LANE = T // 32, T % 32
G4, T4 = LANE >> 2, LANE & 3


class EmuError(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise EmuError(msg)


def swz(x):
    return x ^ (((x >> 7) & 7) << 4)


# ------------------------------------------------------------------ hardware model


class Bar:
    """An mbarrier's transaction count for one phase (expect_tx vs bytes the TMA unit delivered)."""

    def __init__(self, name):
        self.name, self.expected, self.delivered = name, 0, 0

    def expect(self, n):  # the producer's arrive.expect_tx, opening a phase
        self.expected, self.delivered = n, 0

    def complete(self):  # a consumer's wait: the phase completes only when every expected byte landed
        need(self.expected == self.delivered, f"{self.name}: expect_tx {self.expected} B, copies deliver {self.delivered} B")


class Smem:
    """Shared memory as 16-bit slots holding float64 values; NaN = never written in this block."""

    def __init__(self, raw, alloc):
        self.raw, self.alloc = raw, alloc
        self.base = (raw + 1023) & ~1023
        self.mem = np.full((raw + alloc) // 2, np.nan)
        self.lo, self.hi = self.base, raw + alloc  # data window, narrowed by the kernel's plan

    def window(self, lo, hi):
        need(lo >= self.raw and hi <= self.raw + self.alloc, f"shared plan [{lo}, {hi}) outside the allocation")
        self.lo, self.hi = lo, hi

    def touch(self, addr, nbytes, what):
        a = np.asarray(addr)
        need(a.min() >= self.lo and a.max() + nbytes <= self.hi, f"{what}: bytes [{a.min()}, {a.max() + nbytes}) outside [{self.lo}, {self.hi})")
        need(np.all(a % nbytes == 0), f"{what}: misaligned {nbytes}-byte access")

    def tma_load(self, dst, G, c0, c1, c2, bar, region):
        """One 64x64 box of G [batch][rows][inner] at coordinates (inner c0, row c1, batch c2)."""
        nb, nr, ni = G.shape
        need(dst % 1024 == 0, f"TMA destination {dst} not 1 KiB aligned")
        need(region[0] <= dst and dst + BOX_BYTES <= region[1], f"TMA box at {dst} outside its buffer {region}")
        need(0 <= c2 < nb and c1 < nr and c1 + BOX > 0 and c0 < ni and c0 + BOX > 0,
             f"TMA box ({c0}, {c1}, {c2}) wholly outside a ({ni}, {nr}, {nb}) tensor")
        box = np.zeros((BOX, BOX))
        r1, i1 = min(nr, c1 + BOX), min(ni, c0 + BOX)
        r0, i0 = max(0, c1), max(0, c0)
        box[r0 - c1:r1 - c1, i0 - c0:i1 - c0] = G[c2, r0:r1, i0:i1]
        r, c = np.meshgrid(np.arange(BOX), np.arange(BOX), indexing="ij")
        addr = dst + swz(r * 128 + 2 * c)
        self.touch(addr, 2, "TMA")
        self.mem[addr // 2] = box
        bar.delivered += BOX_BYTES

    def store32(self, addr, lo, hi, what):
        """A 4-byte generic store of two 16-bit values (lo at the lower address); addr per thread."""
        self.touch(addr, 4, what)
        self.mem[addr // 2] = lo
        self.mem[addr // 2 + 1] = hi

    def store_f32(self, addr, v, what):
        self.touch(addr, 4, what)
        self.mem[addr // 2] = v
        self.mem[addr // 2 + 1] = v

    def load_f32(self, addr, what):
        self.touch(addr, 4, what)
        return self.mem[np.asarray(addr) // 2]


def smem_desc(addr, lbo, sbo):  # sm90_common.cuh smem_desc, bit for bit
    return ((addr & 0x3FFFF) >> 4) | (((lbo & 0x3FFFF) >> 4) << 16) | (((sbo & 0x3FFFF) >> 4) << 32) | (1 << 62)


def decode(desc):
    need(0 <= desc < 1 << 64 and (desc >> 14) & 3 == 0 and (desc >> 30) & 3 == 0 and desc >> 46 == 1 << 16,
         f"descriptor {desc:#x}: a field carried into reserved bits, or not the 128B swizzle with base offset 0")
    return (desc & 0x3FFF) << 4, ((desc >> 16) & 0x3FFF) << 4, ((desc >> 32) & 0x3FFF) << 4


_jj = np.arange(16)[None, :]


def operand(sm, desc, extent, mn_major, what):
    """The [extent][16] operand (rows m or n, 16 k) a descriptor addresses (fact 2)."""
    S, lbo, sbo = decode(desc)
    i = np.arange(extent)[:, None]
    if mn_major:
        logical = S + (i // 64) * lbo + (_jj // 8) * sbo + (_jj % 8) * 128 + 2 * (i % 64)
    else:
        logical = S + (i // 8) * sbo + (i % 8) * 128 + 2 * _jj
    phys = swz(logical)
    sm.touch(phys, 2, what)
    return sm.mem[phys // 2]


_maps = {}


def acc_maps(N):  # fact 3: (thread, register) -> (row, column) of the 64 x N accumulator
    if N not in _maps:
        x = np.arange(N // 2)[None, :]
        i, h, e = x // 4, (x // 2) % 2, x % 2
        _maps[N] = (16 * WARP[:, None] + G4[:, None] + 8 * h, 8 * i + 2 * T4[:, None] + e)
    return _maps[N]


def wgmma_ss(sm, d, N, da, db, mn_a, mn_b, accumulate, what):
    A = operand(sm, da, 64, mn_a, what + " A")
    B = operand(sm, db, N, mn_b, what + " B")
    rm, cm = acc_maps(N)
    prod = (A @ B.T)[rm, cm]
    return d + prod if accumulate else prod


def _rs_maps():  # fact 4: register r (0..3), half e of thread t -> (row, k) of the 64 x 16 A operand
    reg = np.arange(4)[None, :, None]
    e = np.arange(2)[None, None, :]
    rows = 16 * WARP[:, None, None] + G4[:, None, None] + 8 * (reg % 2) + 0 * e
    ks = 2 * T4[:, None, None] + 8 * (reg // 2) + e
    cover = np.zeros((64, 16), int)
    np.add.at(cover, (rows, ks), 1)
    assert np.all(cover == 1)
    return rows, ks


RS_ROWS, RS_KS = _rs_maps()


def wgmma_rs(sm, d, N, a, db, mn_b, what):
    """a: [128 threads][4 registers][2 halves] (pack2 of float64 values, no rounding)."""
    A = np.empty((64, 16))
    A[RS_ROWS, RS_KS] = a
    B = operand(sm, db, N, mn_b, what + " B")
    rm, cm = acc_maps(N)
    return d + (A @ B.T)[rm, cm]


def shfl_xor(v, m):
    return v[T ^ m]


def tma_row_block(row0, r, T_):  # sm90_common.cuh
    x = row0 + 64 * r
    return x if x < T_ else row0


class Once:
    """Counts the stores to each element of an output; every element must be stored exactly once."""

    def __init__(self, shape):
        self.n = np.zeros(shape, int)

    def check(self, name):
        need(np.all(self.n == 1), f"{name}: {np.sum(self.n == 0)} elements never stored, {np.sum(self.n > 1)} stored more than once")


def run_schedule(ready_load, steps, load, first):
    """Greedy scheduler: the producer first (it runs as far ahead as its barriers let it), then the
    consumers in the order `first`; steps[c] is a list of (ready(), run()) items per consumer."""
    pos = [0] * len(steps)
    while True:
        if ready_load():
            load()
            continue
        for c in first:
            if pos[c] < len(steps[c]) and steps[c][pos[c]][0]():
                steps[c][pos[c]][1]()
                pos[c] += 1
                break
        else:
            need(all(pos[c] == len(steps[c]) for c in range(len(steps))), "deadlock in the emulated schedule")
            return


# ------------------------------------------------------------------ model check: gemm_sm90.cu


def tile_coords(tile, tilesM, tilesN):  # gemm_common.cuh
    G = 8
    group = tile // (G * tilesN)
    first = group * G
    rows = min(tilesM - first, G)
    inn = tile - group * G * tilesN
    return first + inn % rows, inn // rows


def gemm_check(M, N, K, TA, TB, gx, rng):
    kBM, kBN, kBK, kStages = 128, 256, 64, 4
    kABytes, kBBytes = kBM * kBK * 2, kBN * kBK * 2
    kStageBytes = kABytes + kBBytes
    kSmem = kStages * kStageBytes + 2 * kStages * 8 + 1024
    A = rng.integers(-4, 5, (M, K)).astype(float)
    B = rng.integers(-4, 5, (K, N)).astype(float)
    GA = (A.T if TA else A)[None].copy()  # stored [outer][inner]
    GB = (B.T if TB else B)[None].copy()
    C = np.full((M, N), np.nan)
    once = Once((M, N))
    tilesM, tilesN, numK = -(-M // kBM), -(-N // kBN), -(-K // kBK)
    kStepA, kStepB = (2048 if TA else 32), (32 if TB else 2048)
    kLboA, kLboB = (BOX_BYTES if TA else 16), (16 if TB else BOX_BYTES)
    for bx in range(min(gx, tilesM * tilesN)):
        sm = Smem(SMEM_RAW[0], kSmem)
        base = sm.base
        sm.window(base, base + kStages * kStageBytes)
        full = [Bar(f"full{s}") for s in range(kStages)]
        s = 0
        for tile in range(bx, tilesM * tilesN, gx):
            tm, tn = tile_coords(tile, tilesM, tilesN)
            m0, n0 = tm * kBM, tn * kBN
            boxesA, boxesB = min(-(-(M - m0) // BOX), 2), min(-(-(N - n0) // BOX), 4)
            d = [np.zeros((128, 128)), np.zeros((128, 128))]
            for kb in range(numK):
                sa, sb = base + s * kStageBytes, base + s * kStageBytes + kABytes
                reg = (sa, sa + kStageBytes)
                full[s].expect((boxesA + boxesB) * BOX_BYTES)
                k0 = kb * kBK
                for j in range(boxesA):
                    if TA: sm.tma_load(sa + j * BOX_BYTES, GA, m0 + j * BOX, k0, 0, full[s], reg)
                    else: sm.tma_load(sa + j * BOX_BYTES, GA, k0, m0 + j * BOX, 0, full[s], reg)
                for j in range(boxesB):
                    if TB: sm.tma_load(sb + j * BOX_BYTES, GB, k0, n0 + j * BOX, 0, full[s], reg)
                    else: sm.tma_load(sb + j * BOX_BYTES, GB, n0 + j * BOX, k0, 0, full[s], reg)
                full[s].complete()
                for c in range(2):
                    a0 = base + s * kStageBytes + c * BOX_BYTES
                    for kk in range(kBK // 16):
                        d[c] = wgmma_ss(sm, d[c], 256, smem_desc(a0 + kk * kStepA, kLboA, 1024), smem_desc(sb + kk * kStepB, kLboB, 1024),
                                        1 if TA else 0, 0 if TB else 1, 1, "gemm")
                s = (s + 1) % kStages
            for c in range(2):  # store_acc
                row = tm * kBM + 64 * c + 16 * WARP + G4
                col = tn * kBN + 2 * T4
                for h in range(2):
                    for i in range(32):
                        for e in range(2):
                            r, cc = row + 8 * h, col + 8 * i + e
                            ok = (r < M) & (cc < N)
                            C[r[ok], cc[ok]] = d[c][ok, 4 * i + 2 * h + e]
                            np.add.at(once.n, (r[ok], cc[ok]), 1)
    once.check("C")
    need(np.array_equal(C, A @ B), f"C != A @ B: max |diff| {np.nanmax(np.abs(C - A @ B))}")


# ------------------------------------------------------------------ reference


def reference(Q, K, V, dO, scale, causal, kend):
    BH, Tq, D = Q.shape
    Tk = K.shape[1]
    S = scale * np.einsum("bid,bjd->bij", Q, K)
    i, j = np.arange(Tq)[:, None], np.arange(Tk)[None, :]
    vis = np.broadcast_to((j < np.asarray(kend)[:, None, None]), (BH, Tq, Tk)).copy()
    if causal:
        vis &= (j <= i + Tk - Tq)[None]
    Sm = np.where(vis, S, -np.inf)
    m = Sm.max(-1, keepdims=True)
    any_ = vis.any(-1, keepdims=True)
    mz = np.where(any_, m, 0.0)
    P = np.where(vis, np.exp(Sm - mz), 0.0)
    l = P.sum(-1, keepdims=True)
    O = np.where(any_, P @ V / np.where(any_, l, 1.0), 0.0)
    lse = np.where(any_[..., 0], mz[..., 0] + np.log(np.where(any_[..., 0], l[..., 0], 1.0)), -np.inf)
    Pn = np.where(vis, np.exp(S - np.where(any_, lse[..., None], 0.0)), 0.0)
    dV = np.einsum("bij,bid->bjd", Pn, dO)
    dP = np.einsum("bid,bjd->bij", dO, V)
    Di = (dO * O).sum(-1)
    dS = Pn * (dP - Di[..., None])
    dQ = scale * dS @ K
    dK = scale * np.einsum("bij,bid->bjd", dS, Q)
    return O, lse, dQ, dK, dV


# ------------------------------------------------------------------ attention_fwd_sm90.cu


def forward(Q, K, V, scale, causal, H, keyLens, first, pipe=False):
    BH, Tq, D = Q.shape
    Tk = K.shape[1]
    kRows = kKeys = 128
    kStages, kDB = 2, D // 64
    kTile = kDB * 2 * BOX_BYTES                      # Smem<D>
    kQ, kK0, kBars = 0, kTile, kTile * (1 + 2 * kStages)
    kAlloc = kBars + 8 * (1 + 4 * kStages) + 1024
    need(kAlloc <= SMEM_OPTIN_MAX, f"forward D={D}: {kAlloc} B of shared memory")
    sl2 = scale * LOG2E
    out, lse = np.full(BH * Tq * D, np.nan), np.full(BH * Tq, np.nan)
    once_o, once_l = Once(BH * Tq * D), Once(BH * Tq)
    nqb = -(-Tq // kRows)
    for bx in range(BH * nqb):
        sm = Smem(SMEM_RAW[0], kAlloc)
        base = sm.base
        sm.window(base, base + kBars)
        bh = bx % BH
        i0 = (nqb - 1 - bx // BH) * kRows
        off = Tk - Tq
        kend = Tk if keyLens is None else min(max(keyLens[bh // H], 0), Tk)
        kstop = kend
        if causal:
            lim = min(i0 + kRows, Tq) + off
            if lim < kstop: kstop = max(lim, 0)
        nkb = -(-kstop // kKeys)
        qFull = Bar("qFull")
        fullK = [Bar(f"fullK{s}") for s in range(kStages)]
        fullV = [Bar(f"fullV{s}") for s in range(kStages)]
        stageK = lambda s: base + kK0 + 2 * s * kTile
        if nkb > 0:  # producer: Q once
            qFull.expect(kTile)
            for d in range(kDB):
                for r in range(2):
                    sm.tma_load(base + kQ + (2 * d + r) * BOX_BYTES, Q, d * 64, tma_row_block(i0, r, Tq), bh, qFull,
                                (base + kQ, base + kQ + kTile))
        loadedK, loadedV, doneK, doneV = [0], [0], [0, 0], [0, 0]

        def readyK():  # emptyK(s) completes when both consumers released K of tile n - kStages
            n = loadedK[0]
            return n < nkb and (n < kStages or min(doneK) >= n - kStages + 1)

        def readyV():
            n = loadedV[0]
            return n < nkb and (n < kStages or min(doneV) >= n - kStages + 1)

        def load():  # producer: thread 0 the K ring, thread 32 the V ring (whichever may go)
            if readyK():
                jb = loadedK[0]
                s, j0 = jb % kStages, jb * kKeys
                sk = stageK(s)
                fullK[s].expect(kTile)
                for d in range(kDB):
                    for r in range(2):
                        sm.tma_load(sk + (2 * d + r) * BOX_BYTES, K, d * 64, tma_row_block(j0, r, Tk), bh, fullK[s], (sk, sk + kTile))
                loadedK[0] += 1
            else:
                jb = loadedV[0]
                s, j0 = jb % kStages, jb * kKeys
                sv = stageK(s) + kTile
                fullV[s].expect(kTile)
                for d in range(kDB):
                    for r in range(2):
                        sm.tma_load(sv + (2 * d + r) * BOX_BYTES, V, d * 64, tma_row_block(j0, r, Tk), bh, fullV[s], (sv, sv + kTile))
                loadedV[0] += 1

        cons = []
        for c in range(2):
            row0 = i0 + 64 * c
            lastSeen = min(row0 + 63, Tq - 1) + off
            rowsLive = row0 < Tq
            nAct = 0 if (not rowsLive or (causal and lastSeen < 0)) else (min(nkb, lastSeen // kKeys + 1) if causal else nkb)
            cons.append(dict(c=c, o=np.zeros((128, D // 2)), mrow=np.full((128, 2), -np.inf), lrow=np.zeros((128, 2)),
                             row0=row0, diag0=row0 + off, nAct=nAct, qA=base + kQ + c * BOX_BYTES, pa=None, alpha=None))
        rq = 16 * WARP + G4

        def s_step(st, jb):  # S(jb) = Q K(jb)^T, K released, softmax (alpha pending), P packed
            c, s, j0 = st["c"], jb % kStages, jb * kKeys
            sk = stageK(s)
            qFull.complete()
            fullK[s].complete()
            diag0 = st["diag0"]
            sc = np.zeros((128, kKeys // 2))
            descQ, descK = smem_desc(st["qA"], 16, 1024), smem_desc(sk, 16, 1024)
            for kk in range(D // 16):
                stp = (kk // 4) * 2 * BOX_BYTES + (kk % 4) * 32
                sc = wgmma_ss(sm, sc, kKeys, descQ + (stp >> 4), descK + (stp >> 4), 0, 0, kk > 0, f"fwd S (c{c} jb{jb} kk{kk})")
            doneK[c] += 1  # emptyK(s): the S product has read K(jb)
            if j0 + kKeys > kend or (causal and j0 + kKeys - 1 > diag0):
                kLimit = min(kend - j0, kKeys)
                for h in range(2):
                    lim = np.full(128, kLimit)
                    if causal: lim = np.minimum(lim, min(diag0 - j0, 2 * kKeys) + rq + 8 * h + 1)
                    lim = lim - 2 * T4
                    for i in range(kKeys // 8):
                        for e in range(2):
                            x = 4 * i + 2 * h + e
                            sc[:, x] = np.where(8 * i + e >= lim, -np.inf, sc[:, x])
            mrow, lrow = st["mrow"], st["lrow"]
            alpha = np.zeros((128, 2))
            for h in range(2):
                mx = np.full(128, -np.inf)
                for i in range(kKeys // 8):
                    mx = np.fmax(mx, np.fmax(sc[:, 4 * i + 2 * h], sc[:, 4 * i + 2 * h + 1]))
                mx = np.fmax(mx, shfl_xor(mx, 1))
                mx = np.fmax(mx, shfl_xor(mx, 2))
                mnew = np.fmax(mrow[:, h], mx)
                mu = np.where(mnew == -np.inf, 0.0, mnew)
                alpha[:, h] = np.exp2((mrow[:, h] - mu) * sl2)
                mrow[:, h] = mnew
                ms = mu * sl2
                tot = np.zeros(128)
                for i in range(kKeys // 8):
                    for e in range(2):
                        x = 4 * i + 2 * h + e
                        sc[:, x] = np.exp2(sc[:, x] * sl2 - ms)
                        tot = tot + sc[:, x]
                lrow[:, h] = lrow[:, h] * alpha[:, h] + tot
            # pa[kc] = {pack(sc[8kc], sc[8kc+1]), ..., pack(sc[8kc+6], sc[8kc+7])}
            return alpha, [np.stack([sc[:, 8 * kc + 2 * u:8 * kc + 2 * u + 2] for u in range(4)], axis=1) for kc in range(kKeys // 16)]

        def rescale(st, alpha):
            o = st["o"]
            for i in range(D // 8):
                for h in range(2):
                    o[:, 4 * i + 2 * h] *= alpha[:, h]
                    o[:, 4 * i + 2 * h + 1] *= alpha[:, h]

        def pv_step(st, jb, pa):  # O += P(jb) V(jb), V released
            c, s = st["c"], jb % kStages
            sv = stageK(s) + kTile
            fullV[s].complete()
            descV = smem_desc(sv, 2 * BOX_BYTES, 1024)
            o = st["o"]
            for kc in range(kKeys // 16):
                o = wgmma_rs(sm, o, D, pa[kc], descV + (((kc // 4) * BOX_BYTES + (kc % 4) * 2048) >> 4), 1, f"fwd PV (c{c} jb{jb} kc{kc})")
            st["o"] = o
            doneV[c] += 1

        def simple(st, jb):
            alpha, pa = s_step(st, jb)
            rescale(st, alpha)
            st["pa"] = pa

        def pipe_s(st, jb):  # S(jb) and its softmax; P(jb - 1) V(jb - 1) follows before the rescale
            st["alpha"], st["pn"] = s_step(st, jb)

        def pipe_pv(st, jb):  # P(jb) V(jb), then (pipelined) O *= alpha(jb + 1) and P(jb + 1) takes over
            pv_step(st, jb, st["pa"])
            if jb + 1 < st["nAct"]:
                rescale(st, st["alpha"])
                st["pa"] = st["pn"]

        def skip_k(st, jb):
            fullK[jb % kStages].complete()
            doneK[st["c"]] += 1

        def skip_v(st, jb):
            fullV[jb % kStages].complete()
            doneV[st["c"]] += 1

        def rk(jb): return lambda: loadedK[0] > jb
        def rv(jb): return lambda: loadedV[0] > jb
        steps = []
        for st in cons:
            n, seq = st["nAct"], []
            if not pipe:
                for jb in range(n):
                    seq += [(rk(jb), lambda jb=jb, st=st: simple(st, jb)), (rv(jb), lambda jb=jb, st=st: pv_step(st, jb, st["pa"]))]
            elif n > 0:
                seq.append((rk(0), lambda st=st: (lambda a, p_: (st.update(pa=p_)))(*s_step(st, 0))))
                for jb in range(1, n):
                    seq += [(rk(jb), lambda jb=jb, st=st: pipe_s(st, jb)), (rv(jb - 1), lambda jb=jb, st=st: pipe_pv(st, jb - 1))]
                seq.append((rv(n - 1), lambda st=st, n=n: pipe_pv(st, n - 1)))
            for jb in range(n, nkb):
                seq += [(rk(jb), lambda jb=jb, st=st: skip_k(st, jb)), (rv(jb), lambda jb=jb, st=st: skip_v(st, jb))]
            steps.append(seq)
        ready_load = lambda: readyK() or readyV()
        run_schedule(ready_load, steps, load, first)
        for st in cons:  # epilogue: O / l and lse straight from the accumulators
            for h in range(2):
                l = st["lrow"][:, h]
                l = l + shfl_xor(l, 1)
                l = l + shfl_xor(l, 2)
                inv = np.where(l > 0, 1.0 / np.where(l > 0, l, 1.0), 0.0)
                i = st["row0"] + rq + 8 * h
                live = i < Tq
                e0 = (bh * Tq + i) * D + 2 * T4
                need(np.all(e0 % 2 == 0), "fwd: misaligned 4-byte store of O")
                dst = e0 // 2  # uint32 index
                for k in range(D // 8):
                    el = 2 * (dst + 4 * k)
                    need(np.all(el[live] + 1 < out.size), "fwd: O store out of range")
                    for e in range(2):
                        out[el[live] + e] = (st["o"][:, 4 * k + 2 * h + e] * inv)[live]
                        np.add.at(once_o.n, el[live] + e, 1)
                w = live & (T4 == 0)
                li = (bh * Tq + i)[w]
                lse[li] = np.where(l > 0, st["mrow"][:, h] * scale + np.log(np.where(l > 0, l, 1.0)), -np.inf)[w]
                np.add.at(once_l.n, li, 1)
    once_o.check("fwd out")
    once_l.check("fwd lse")
    return out.reshape(BH, Tq, D), lse.reshape(BH, Tq)


# ------------------------------------------------------------------ attention_bwd_sm90.cu


def bwd_plan(D):  # Smem<D> of attention_bwd_sm90.cu
    kStages, kRows = 2, 64
    S = dict(kDB=D // 64)
    S["kKV"] = S["kDB"] * 2 * BOX_BYTES
    S["kQ"] = S["kDB"] * BOX_BYTES
    S["K"], S["V"], S["Q"] = 0, S["kKV"], 2 * S["kKV"]
    S["dO"] = S["Q"] + kStages * S["kQ"]
    S["dS"] = S["dO"] + kStages * S["kQ"]
    S["P"] = S["dS"] + 2 * 2 * BOX_BYTES
    S["L"] = S["P"] + 2 * BOX_BYTES
    S["Di"] = S["L"] + kStages * kRows * 4
    S["Bars"] = S["Di"] + kStages * kRows * 4
    S["kBytes"] = S["Bars"] + (1 + 2 * kStages) * 8
    S["kAlloc"] = S["kBytes"] + 1024
    return S


def first_query_block(Tq, Tk, j0, causal):
    if not causal: return 0
    f = j0 - (Tk - Tq)
    return (f // 64) * 64 if f > 0 else 0


def backward(Q, K, V, dO, lse_in, Di_in, scale, causal, H, keyLens, first, keySplit=False):
    BH, Tq, D = Q.shape
    Tk = K.shape[1]
    kKeys, kRows, kStages = 128, 64, 2
    S = bwd_plan(D)
    need(S["kAlloc"] <= SMEM_OPTIN_MAX, f"backward D={D}: {S['kAlloc']} B of shared memory")
    kSplitKeys = keySplit or D == 64  # the kernel's kKeySplit || D == 64
    DB, NQ = S["kDB"], (D if kSplitKeys else D // 2)
    sl2 = scale * LOG2E
    dqAcc = np.zeros(BH * Tq * D)  # the frame's cudaMemset
    dk, dv = np.full(BH * Tk * D, np.nan), np.full(BH * Tk * D, np.nan)
    once_k, once_v = Once(BH * Tk * D), Once(BH * Tk * D)
    for bx in range(BH * (-(-Tk // kKeys))):
        sm = Smem(SMEM_RAW[0], S["kAlloc"])
        base = sm.base
        sm.window(base, base + S["Bars"])
        bh, j0 = bx % BH, (bx // BH) * kKeys
        off = Tk - Tq
        kend = Tk if keyLens is None else min(max(keyLens[bh // H], 0), Tk)
        iStart = first_query_block(Tq, Tk, j0, causal)
        nIter = (Tq - iStart + kRows - 1) // kRows if (j0 < kend and iStart < Tq) else 0
        kvFull = Bar("kvFull")
        full = [Bar(f"full{s}") for s in range(kStages)]
        if nIter > 0:  # producer: K and V once
            kvFull.expect(2 * S["kKV"])
            for d in range(DB):
                for r in range(2):
                    o = (d * 2 + r) * BOX_BYTES
                    sm.tma_load(base + S["K"] + o, K, d * 64, tma_row_block(j0, r, Tk), bh, kvFull, (base + S["K"], base + S["K"] + S["kKV"]))
                    sm.tma_load(base + S["V"] + o, V, d * 64, tma_row_block(j0, r, Tk), bh, kvFull, (base + S["V"], base + S["V"] + S["kKV"]))
        loaded, doneA, doneB = [0], [0, 0], [0, 0]

        def load():  # thread 0: Q and dO of query block it; warp 1: its L and D_i
            it = loaded[0]
            s, i0 = it % kStages, iStart + it * kRows
            full[s].expect(2 * S["kQ"])
            qreg = (base + S["Q"] + s * S["kQ"], base + S["Q"] + (s + 1) * S["kQ"])
            oreg = (base + S["dO"] + s * S["kQ"], base + S["dO"] + (s + 1) * S["kQ"])
            for d in range(DB):
                sm.tma_load(base + S["Q"] + s * S["kQ"] + d * BOX_BYTES, Q, d * 64, i0, bh, full[s], qreg)
                sm.tma_load(base + S["dO"] + s * S["kQ"] + d * BOX_BYTES, dO, d * 64, i0, bh, full[s], oreg)
            for u in range(2):
                r = np.arange(32) + 32 * u
                i = i0 + r
                inside = i < Tq
                ic = np.minimum(i, Tq - 1)
                x = lse_in[bh, ic]
                l = np.where(inside, np.where(x == -np.inf, np.inf, x * LOG2E), np.inf)
                di = np.where(inside, Di_in[bh, ic], 0.0)
                sm.store_f32(base + S["L"] + 4 * (s * kRows + r), l, "L store")
                sm.store_f32(base + S["Di"] + 4 * (s * kRows + r), di, "D_i store")
            loaded[0] += 1

        def ready_load():  # empty(s) completes when both consumers finished query block it - kStages
            n = loaded[0]
            return n < nIter and (n < kStages or min(doneB) >= n - kStages + 1)

        cons = [dict(c=c, key0=j0 + 64 * c, dka=np.zeros((128, D // 2)), dva=np.zeros((128, D // 2))) for c in range(2)]
        r_thr = 16 * WARP + G4

        def phase_a(st, it):  # S^T, dP^T, P^T, dS^T to shared memory, up to the named barrier
            c, key0 = st["c"], st["key0"]
            s, i0 = it % kStages, iStart + it * kRows
            kvFull.complete()
            full[s].complete()
            qs, os_ = base + S["Q"] + s * S["kQ"], base + S["dO"] + s * S["kQ"]
            st_ = dpt = None
            for kk in range(D // 16):
                ka = base + S["K"] + ((kk // 4) * 2 + c) * BOX_BYTES + (kk % 4) * 32
                qb = qs + (kk // 4) * BOX_BYTES + (kk % 4) * 32
                st_ = wgmma_ss(sm, st_, kRows, smem_desc(ka, 16, 1024), smem_desc(qb, 16, 1024), 0, 0, kk > 0, f"bwd S^T (c{c} it{it} kk{kk})")
            for kk in range(D // 16):
                va = base + S["V"] + ((kk // 4) * 2 + c) * BOX_BYTES + (kk % 4) * 32
                ob = os_ + (kk // 4) * BOX_BYTES + (kk % 4) * 32
                dpt = wgmma_ss(sm, dpt, kRows, smem_desc(va, 16, 1024), smem_desc(ob, 16, 1024), 0, 0, kk > 0, f"bwd dP^T (c{c} it{it} kk{kk})")
            Lb, Db = base + S["L"] + 4 * s * kRows, base + S["Di"] + 4 * s * kRows
            needMask = i0 + kRows > Tq or key0 + 64 > kend or (causal and key0 + 63 > i0 + off)
            qLimit = min(Tq - i0, kRows)
            kLimit = min(max(kend - key0, 0), 64)
            diag = min(max(i0 + off - key0, -2 * kRows), 2 * kRows)
            for i in range(kRows // 8):
                for h in range(2):
                    for e in range(2):
                        q, r = 8 * i + 2 * T4 + e, r_thr + 8 * h
                        x = 4 * i + 2 * h + e
                        pv = np.exp2(st_[:, x] * sl2 - sm.load_f32(Lb + 4 * q, "L read"))
                        if needMask:
                            pv = np.where((q >= qLimit) | (r >= kLimit) | (causal & (r - q > diag)), 0.0, pv)
                        st_[:, x] = pv
            pBox = base + S["P"] + c * BOX_BYTES
            dsBox = base + S["dS"] + ((it & 1) * 2 + c) * BOX_BYTES
            for i in range(kRows // 8):
                for h in range(2):
                    x, q, r = 4 * i + 2 * h, 8 * i + 2 * T4, r_thr + 8 * h
                    at = r * 128 + ((i ^ (r & 7)) << 4) + 4 * T4
                    need(np.all((at >= 0) & (at + 4 <= BOX_BYTES)), "P^T/dS^T store outside its box")
                    sm.store32(pBox + at, st_[:, x], st_[:, x + 1], "P^T store")
                    sm.store32(dsBox + at, st_[:, x] * (dpt[:, x] - sm.load_f32(Db + 4 * q, "D_i read")),
                               st_[:, x + 1] * (dpt[:, x + 1] - sm.load_f32(Db + 4 * (q + 1), "D_i read")), "dS^T store")
            doneA[c] += 1

        def phase_b(st, it):  # after the named barrier: dV, dK, dQ
            c = st["c"]
            s, i0 = it % kStages, iStart + it * kRows
            qs, os_ = base + S["Q"] + s * S["kQ"], base + S["dO"] + s * S["kQ"]
            pA = base + S["P"] + c * BOX_BYTES
            dsA = base + S["dS"] + ((it & 1) * 2 + c) * BOX_BYTES
            for kc in range(kRows // 16):
                st["dva"] = wgmma_ss(sm, st["dva"], D, smem_desc(pA + kc * 32, 16, 1024), smem_desc(os_ + kc * 2048, BOX_BYTES, 1024), 0, 1, 1,
                                     f"bwd dV (c{c} it{it} kc{kc})")
                st["dka"] = wgmma_ss(sm, st["dka"], D, smem_desc(dsA + kc * 32, 16, 1024), smem_desc(qs + kc * 2048, BOX_BYTES, 1024), 0, 1, 1,
                                     f"bwd dK (c{c} it{it} kc{kc})")
            dsb = base + S["dS"] + (it & 1) * 2 * BOX_BYTES
            dqa = None
            for kk in range(4 if kSplitKeys else kKeys // 16):
                keyBox, dblk = (c, 0) if kSplitKeys else (kk // 4, c)
                aa = dsb + keyBox * BOX_BYTES + (kk % 4) * 2048
                kb = base + S["K"] + (dblk * 2 + keyBox) * BOX_BYTES + (kk % 4) * 2048
                dqa = wgmma_ss(sm, dqa, NQ, smem_desc(aa, BOX_BYTES, 1024), smem_desc(kb, 2 * BOX_BYTES, 1024), 1, 1, kk > 0, f"bwd dQ (c{c} it{it} kk{kk})")
            doneB[c] += 1  # empty(s) arrival (lane 0 of each warp)
            for i in range(NQ // 8):  # atomic_add_block<D>
                c0v, c1v, c2v, c3v = (dqa[:, 4 * i + u] for u in range(4))
                r0, col0, rows = i0 + 16 * WARP, (0 if kSplitKeys else NQ * c) + 8 * i, Tq
                odd = (T4 & 1) == 1
                s0, s1 = np.where(odd, c0v, c2v), np.where(odd, c1v, c3v)
                x0, x1 = shfl_xor(s0, 1), shfl_xor(s1, 1)
                row = r0 + G4 + np.where(odd, 8, 0)
                col = col0 + (T4 & 2) * 2
                val = np.where(odd[:, None], np.stack([x0, x1, c2v, c3v], 1), np.stack([c0v, c1v, x0, x1], 1))
                w = row < rows
                need(np.all(col % 4 == 0) and np.all(col + 4 <= D), "dQ atomic: misaligned or past D")
                idx = (bh * Tq + row[w]) * D + col[w]
                for u in range(4):
                    np.add.at(dqAcc, idx + u, val[w, u])

        steps = [[x for it in range(nIter) for x in ((lambda it=it: loaded[0] > it, lambda it=it, st=st: phase_a(st, it)),
                                                       (lambda it=it, st=st: (doneA[st["c"]] if kSplitKeys else min(doneA)) > it,
                                                        lambda it=it, st=st: phase_b(st, it)))]
                 for st in cons]
        run_schedule(ready_load, steps, load, first)
        for st in cons:  # dK = scale * dka, dV = dva
            for h in range(2):
                j = st["key0"] + r_thr + 8 * h
                live = j < Tk
                for i in range(D // 8):
                    idx = ((bh * Tk + j) * D + 8 * i + 2 * T4)[live]
                    need(np.all(idx % 2 == 0) and np.all(idx + 1 < dk.size), "dK/dV store misaligned or out of range")
                    for e in range(2):
                        dk[idx + e] = st["dka"][live, 4 * i + 2 * h + e] * scale
                        dv[idx + e] = st["dva"][live, 4 * i + 2 * h + e]
                        np.add.at(once_k.n, idx + e, 1)
                        np.add.at(once_v.n, idx + e, 1)
    once_k.check("bwd dK")
    once_v.check("bwd dV")
    dq = scale * dqAcc  # the frame's dq_convert
    return dq.reshape(BH, Tq, D), dk.reshape(BH, Tk, D), dv.reshape(BH, Tk, D)


# ------------------------------------------------------------------ driver


def compare(name, got, want, tol=1e-10):
    both_inf = np.isinf(want) & (got == want)
    with np.errstate(invalid="ignore"):
        diff = np.where(both_inf, 0.0, np.abs(got - want))
    bad = ~(diff <= tol * max(1.0, float(np.max(np.abs(np.where(np.isinf(want), 0, want))))))
    if not bad.any():
        return float(np.max(diff)) if diff.size else 0.0, None
    idx = tuple(np.argwhere(bad)[0])
    return float(np.max(diff)), \
        f"{name}: {bad.sum()} of {bad.size} wrong ({int(np.isnan(got).sum())} NaN), first at {idx}: got {got[idx]!r} want {want[idx]!r}"


def attention_case(D, Tq, Tk, causal, B, H, keyLens, first, rng, keySplit=False):
    BH = B * H
    Q, K, V, dO = (rng.standard_normal((BH, T_, D)) for T_ in (Tq, Tk, Tk, Tq))
    scale = 1.0 / math.sqrt(D)
    kend = [Tk if keyLens is None else min(max(keyLens[b // H], 0), Tk) for b in range(BH)]
    O, lse, dQ, dK, dV = reference(Q, K, V, dO, scale, causal, kend)
    out, lse_e = forward(Q, K, V, scale, causal, H, keyLens, first)
    outp, lsep = forward(Q, K, V, scale, causal, H, keyLens, first, pipe=True)  # the kPipe schedule
    dq, dk, dv = backward(Q, K, V, dO, lse, (dO * O).sum(-1), scale, causal, H, keyLens, first, keySplit)
    worst, errs = 0.0, []
    for name, g, w in (("out", out, O), ("lse", lse_e, lse), ("out (pipelined)", outp, O), ("lse (pipelined)", lsep, lse),
                       ("dq", dq, dQ), ("dk", dk, dK), ("dv", dv, dV)):
        m, e = compare(name, g, w)
        worst = max(worst, m) if not math.isnan(m) else m
        if e: errs.append(e)
    return worst, errs


def main():
    ap = argparse.ArgumentParser(description="Emulate the sm_90a attention kernels against a float64 reference (model checked on gemm_sm90 first).")
    ap.add_argument("--quick", action="store_true", help="a handful of shapes (< 60 s)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    t0 = time.time()
    failures = 0

    def report(label, fn):
        nonlocal failures
        t = time.time()
        try:
            res = fn()
        except EmuError as e:
            failures += 1
            print(f"FAIL {label}: {e}")
            return
        worst, errs = res if res else (0.0, [])
        if errs:
            failures += 1
            print(f"FAIL {label}: max |err| {worst:.3g}")
            for e in errs: print("     " + e)
        else:
            print(f"ok   {label}" + (f": max |err| {worst:.3g}" if res else "") + f" ({time.time() - t:.1f} s)")

    # 1. the model on the GPU-validated GEMM: exact A @ B in every layout, ragged M, N, K.
    gemm_shapes = [(200, 300, 150, 3)] if args.quick else [(200, 300, 150, 3), (128, 256, 64, 1), (60, 70, 16, 1), (300, 520, 200, 2)]
    for M, N, K, gx in gemm_shapes:
        for TA in (False, True):
            for TB in (False, True):
                report(f"gemm_sm90 M={M} N={N} K={K} transA={int(TA)} transB={int(TB)} blocks={gx}",
                       lambda: gemm_check(M, N, K, TA, TB, gx, rng))
    # 2. the attention kernels.
    if args.quick:
        shapes = [(64, 130, 130, True), (128, 65, 65, False), (64, 77, 200, True), (128, 200, 77, True), (128, 1, 1, False),
                  (128, 257, 257, True), (64, 37, 37, False)]
        cases = [(D, Tq, Tk, cz, 1, 2, None) for D, Tq, Tk, cz in shapes]
    else:
        pairs = [(t, t) for t in (1, 37, 64, 65, 130, 257)] + [(77, 200), (200, 77), (130, 64)]
        cases = [(D, Tq, Tk, cz, 1, 2, None) for D in (64, 128) for cz in (False, True) for Tq, Tk in pairs]
        # key padding lengths: masked by the kernels, not dispatched to them (sm90_attention_unsupported)
        cases += [(D, 150, 150, cz, 2, 1, [100, 0]) for D in (64, 128) for cz in (False, True)]
    # D = 128 again with the backward's dQ split by keys (kKeySplit; barrier local to each consumer).
    cases = [c + (False,) for c in cases] + [c + (True,) for c in cases if c[0] == 128 and not c[6]]
    orders = [(0, 1)] if args.quick else [(0, 1), (1, 0)]
    for n, ((D, Tq, Tk, cz, B, H, kl, ks), first) in enumerate((c, o) for c in cases for o in orders):
        SMEM_RAW[0] = (16, 0, 1008)[n % 3]
        report(f"attention D={D} Tq={Tq} Tk={Tk} causal={int(cz)} B*H={B * H}" + (f" keyLens={kl}" if kl else "") + (" dQ-by-keys" if ks else "")
               + f" order={first} smem@{SMEM_RAW[0]}",
               lambda: attention_case(D, Tq, Tk, cz, B, H, kl, first, rng, ks))
    print(f"{'ALL OK' if failures == 0 else f'{failures} FAILED'} in {time.time() - t0:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
