# CPU emulation of kernels/cuda/gemm_sm90.cu's shared-memory data path, for checking its layout
# arithmetic without a GPU: TMA 64x64 boxes written with the 128-byte swizzle, then wgmma operands read
# through the descriptors (start, LBO, SBO, k16 steps) by the PTX ISA's canonical-layout formulas, for
# every transpose layout, ragged tiles and skipped out-of-range boxes (stale shared memory = NaN).
# Run: python3 bench/native/gemm_sm90_layout_emulation.py  (numpy; prints ALL OK)
import numpy as np
rng = np.random.default_rng(0)
kBM, kBN, kBK, kBox = 128, 256, 64, 64
kBoxBytes = kBox * kBox * 2
kABytes = kBM * kBK * 2

def swz(addr):  # 128B swizzle on absolute byte addresses: bits [4,7) ^= bits [7,10)
    return addr ^ ((addr & 0x380) >> 3)

def tma_box(smem, dst, G, c0, c1):
    # G: 2-d global array [outer][inner]; box inner 64 x outer 64 at coords (c0 inner, c1 outer)
    for o in range(kBox):
        for i in range(kBox):
            gi, go = c0 + i, c1 + o
            v = G[go, gi] if (0 <= go < G.shape[0] and 0 <= gi < G.shape[1]) else 0
            addr = dst + o * 128 + i * 2
            smem[swz(addr) // 2] = v  # smem as an array of 16-bit elements (values exact small ints)

def desc_read(smem, start, lbo, sbo, mn_major, MN):
    # returns matrix [MN][16] read through the canonical 128B layouts (T = 8 elements)
    out = np.zeros((MN, 16))
    for mn in range(MN):
        for k in range(16):
            if not mn_major:   # ((8,m),(T,2k)):((8T,SBO),(1,T))
                r, mm = mn % 8, mn // 8
                t, kc = k % 8, k // 8
                off = r * 64 + mm * (sbo // 2) + t + kc * 8
            else:              # ((T,8,m),(8,k)):((1,T,LBO),(8T,SBO))
                t, c, mm = mn % 8, (mn // 8) % 8, mn // 64
                r, kk = k % 8, k // 8
                off = t + 8 * c + mm * (lbo // 2) + 64 * r + kk * (sbo // 2)
            addr = start + 2 * off
            out[mn, k] = smem[swz(addr) // 2]
    return out

def run(M, N, K, TA, TB, m0, n0, base=2048):
    A = rng.integers(-3, 4, size=(M, K)).astype(float)
    B = rng.integers(-3, 4, size=(K, N)).astype(float)
    GA = A.T.copy() if TA else A            # stored layout: [outer][inner]
    GB = B.copy() if not TB else B.T.copy()
    acc = np.zeros((kBM, kBN))
    numK = (K + kBK - 1) // kBK
    leftM, leftN = (M - m0 + 63) // 64, (N - n0 + 63) // 64
    boxesA, boxesB = min(leftM, 2), min(leftN, 4)
    for kb in range(numK):
        smem = np.full((base + 4 * 49152) // 2 + 64, np.nan)  # stale = NaN
        sa, sb = base, base + kABytes
        k0 = kb * kBK
        for j in range(boxesA):
            if TA: tma_box(smem, sa + j * kBoxBytes, GA, m0 + 64 * j, k0)
            else:  tma_box(smem, sa + j * kBoxBytes, GA, k0, m0 + 64 * j)
        for j in range(boxesB):
            if TB: tma_box(smem, sb + j * kBoxBytes, GB, k0, n0 + 64 * j)
            else:  tma_box(smem, sb + j * kBoxBytes, GB, n0 + 64 * j, k0)
        kStepA = 2048 if TA else 32; kStepB = 32 if TB else 2048
        lboA = kBoxBytes if TA else 16; lboB = 16 if TB else kBoxBytes
        for c in range(2):
            for kk in range(4):
                a = desc_read(smem, sa + c * kBoxBytes + kk * kStepA, lboA, 1024, TA, 64)      # [64][16]
                b = desc_read(smem, sb + kk * kStepB, lboB, 1024, not TB, 256)                  # [256][16] (n, k)
                acc[64 * c:64 * c + 64] += a @ b.T
    ref = A @ B
    rows, cols = min(kBM, M - m0), min(kBN, N - n0)
    got = acc[:rows, :cols]
    want = ref[m0:m0 + rows, n0:n0 + cols]
    ok = np.array_equal(got, want)
    print(f"M={M} N={N} K={K} TA={TA} TB={TB} tile=({m0},{n0}) boxes A {boxesA} B {boxesB}: {'ok' if ok else 'MISMATCH'}")
    return ok

allok = True
for TA in (False, True):
    for TB in (False, True):
        allok &= run(128, 256, 64, TA, TB, 0, 0)
        allok &= run(200, 300, 91, TA, TB, 128, 256)   # ragged tile, partial boxes, ragged K
        allok &= run(60, 70, 16, TA, TB, 0, 0)          # one box each, K=16
print("ALL OK" if allok else "FAILURES")
