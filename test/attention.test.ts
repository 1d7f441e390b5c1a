// scaledDotProductAttention against a naive TypeScript reference that materialises
// softmax(scale q k^T + mask) v (forward and backward), gradcheck in float64, dropout masks against
// the documented Philox formula, memory at T = 4096, and typed errors for bad input.
import test from 'ava';
import * as kiln from '../src/index.js';
import type { Tensor } from '../src/index.js';
import { prng } from './helpers/checkop.js';

interface RefOpts {
  causal?: boolean;
  scale?: number;
  lens?: number[];          // [B]
  mask?: number[];          // [B * Tk], nonzero = attend
  z?: Float64Array;         // dropout scales per score element [B*H*Tq*Tk]: 0 or 1/(1-p)
}

/** Naive attention in float64: returns out and, given dout, dq/dk/dv. */
function naive(q: Float64Array, k: Float64Array, v: Float64Array, shape: [number, number, number, number, number], o: RefOpts,
  dout?: Float64Array) {
  const [B, H, Tq, Tk, D] = shape;
  const scale = o.scale ?? 1 / Math.sqrt(D);
  const out = new Float64Array(B * H * Tq * D);
  const dq = new Float64Array(B * H * Tq * D), dk = new Float64Array(B * H * Tk * D), dv = new Float64Array(B * H * Tk * D);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) {
    const bh = b * H + h;
    const P = new Float64Array(Tq * Tk);
    for (let i = 0; i < Tq; i++) {
      let mx = -Infinity;
      const row = new Float64Array(Tk).fill(-Infinity);
      for (let j = 0; j < Tk; j++) {
        const okCausal = !o.causal || j <= i + Tk - Tq;
        const okLen = !o.lens || j < o.lens[b];
        const okMask = !o.mask || o.mask[b * Tk + j] !== 0;
        if (!(okCausal && okLen && okMask)) continue;
        let s = 0;
        for (let d = 0; d < D; d++) s += q[(bh * Tq + i) * D + d] * k[(bh * Tk + j) * D + d];
        row[j] = s * scale;
        mx = Math.max(mx, row[j]);
      }
      if (mx === -Infinity) continue; // a row that sees no key: P = 0
      let sum = 0;
      for (let j = 0; j < Tk; j++) sum += (P[i * Tk + j] = Math.exp(row[j] - mx));
      for (let j = 0; j < Tk; j++) P[i * Tk + j] /= sum;
    }
    const Z = (i: number, j: number) => (o.z ? o.z[(bh * Tq + i) * Tk + j] : 1);
    for (let i = 0; i < Tq; i++) for (let j = 0; j < Tk; j++) {
      const pz = P[i * Tk + j] * Z(i, j);
      if (pz !== 0) for (let d = 0; d < D; d++) out[(bh * Tq + i) * D + d] += pz * v[(bh * Tk + j) * D + d];
    }
    if (!dout) continue;
    for (let i = 0; i < Tq; i++) {
      const dP = new Float64Array(Tk);
      let rs = 0;
      for (let j = 0; j < Tk; j++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += dout[(bh * Tq + i) * D + d] * v[(bh * Tk + j) * D + d];
        dP[j] = s * Z(i, j);
        rs += P[i * Tk + j] * dP[j];
        const pz = P[i * Tk + j] * Z(i, j);
        for (let d = 0; d < D; d++) dv[(bh * Tk + j) * D + d] += pz * dout[(bh * Tq + i) * D + d];
      }
      for (let j = 0; j < Tk; j++) {
        const ds = P[i * Tk + j] * (dP[j] - rs) * scale;
        if (ds === 0) continue;
        for (let d = 0; d < D; d++) {
          dq[(bh * Tq + i) * D + d] += ds * k[(bh * Tk + j) * D + d];
          dk[(bh * Tk + j) * D + d] += ds * q[(bh * Tq + i) * D + d];
        }
      }
    }
  }
  return { out, dq, dk, dv };
}

function randArray(n: number, rnd: () => number, amp = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = (rnd() * 2 - 1) * amp;
  return a;
}

function maxErr(got: ArrayLike<number>, want: ArrayLike<number>, atol: number, rtol: number) {
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]) - rtol * Math.abs(want[i]);
    if (!(e <= atol)) return { ok: false, i, got: got[i], want: want[i] };
    worst = Math.max(worst, e);
  }
  return { ok: true, worst };
}

/** The KilnError code f throws, 'no error', or what else it threw. */
function code(f: () => unknown): string {
  try {
    f();
    return 'no error';
  } catch (e) {
    return e instanceof kiln.KilnError ? e.code : `not a KilnError: ${e}`;
  }
}

interface Case { B: number; H: number; Tq: number; Tk: number; D: number; causal?: boolean; lens?: number[]; mask?: number[]; scale?: number }

/** Runs kiln forward + backward (float32 or float64) and compares with the naive reference. */
function compare(tc: import('ava').ExecutionContext, c: Case, dtype: 'float32' | 'float64', seed: number) {
  const rnd = prng(seed);
  const { B, H, Tq, Tk, D } = c;
  const q = randArray(B * H * Tq * D, rnd, 1.5), k = randArray(B * H * Tk * D, rnd, 1.5), v = randArray(B * H * Tk * D, rnd);
  const g = randArray(B * H * Tq * D, rnd);
  const ref = naive(q, k, v, [B, H, Tq, Tk, D], c, g);
  kiln.tidy(() => {
    const mk = (a: Float64Array, T: number) => kiln.fromTyped(a, [B, H, T, D], { dtype, requiresGrad: true });
    const qt = mk(q, Tq), kt = mk(k, Tk), vt = mk(v, Tk);
    const opts: kiln.AttentionOptions = { causal: c.causal, scale: c.scale };
    if (c.lens) opts.keyPaddingLengths = kiln.fromTyped(Int32Array.from(c.lens), [B], { dtype: 'int32' });
    if (c.mask) opts.keyMask = kiln.fromTyped(Int32Array.from(c.mask), [B, Tk], { dtype: 'int32' });
    const out = kiln.scaledDotProductAttention(qt, kt, vt, opts);
    out.backward(kiln.fromTyped(g, [B, H, Tq, D], { dtype }));
    const tol = dtype === 'float32' ? { atol: 2e-5, rtol: 2e-4 } : { atol: 1e-11, rtol: 1e-9 };
    const gtol = dtype === 'float32' ? { atol: 1e-4, rtol: 1e-3 } : { atol: 1e-10, rtol: 1e-8 };
    const label = `${JSON.stringify(c)} ${dtype}`;
    for (const [name, got, want, tl] of [['out', out, ref.out, tol], ['dq', qt.grad!, ref.dq, gtol], ['dk', kt.grad!, ref.dk, gtol],
      ['dv', vt.grad!, ref.dv, gtol]] as const) {
      const vals = got.dataSync();
      tc.true(Array.from(vals).every(Number.isFinite), `${name} has NaN/inf for ${label}`);
      const r = maxErr(vals, want, tl.atol, tl.rtol);
      tc.true(r.ok, `${name} differs for ${label}: ${JSON.stringify(r)}`);
    }
  });
}

test('forward and backward match the naive reference over random shapes', (t) => {
  const rnd = prng(1234);
  const pick = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)];
  const cases: Case[] = [
    { B: 1, H: 1, Tq: 1, Tk: 1, D: 8 },
    { B: 2, H: 3, Tq: 70, Tk: 70, D: 16, causal: true },
    { B: 1, H: 2, Tq: 65, Tk: 130, D: 32, causal: true },   // Tq < Tk: bottom-right causal
    { B: 1, H: 2, Tq: 100, Tk: 37, D: 64, causal: true },   // Tq > Tk: the first rows see no key
    { B: 1, H: 1, Tq: 33, Tk: 200, D: 128 },
    { B: 2, H: 1, Tq: 64, Tk: 64, D: 64, causal: true, scale: 0.3 },
    { B: 1, H: 1, Tq: 5, Tk: 129, D: 24 },                  // D not a multiple of the vector width
  ];
  for (let i = 0; i < 8; i++) {
    const Tq = 1 + Math.floor(rnd() * 150), Tk = pick([Tq, 1 + Math.floor(rnd() * 150)]);
    cases.push({ B: 1 + Math.floor(rnd() * 2), H: 1 + Math.floor(rnd() * 3), Tq, Tk, D: pick([8, 16, 32, 64, 128]), causal: rnd() < 0.5 });
  }
  let s = 0;
  for (const c of cases) for (const dt of ['float32', 'float64'] as const) compare(t, c, dt, ++s);
});

test('key padding lengths and key masks, with fully masked rows: output 0, gradient 0, no NaN', (t) => {
  // Lengths: batch 1 sees no key at all; causal + lengths leaves early rows of batch 0 empty too.
  compare(t, { B: 3, H: 2, Tq: 40, Tk: 90, D: 16, lens: [70, 0, 90] }, 'float32', 7);
  compare(t, { B: 2, H: 2, Tq: 90, Tk: 40, D: 32, lens: [3, 40], causal: true }, 'float64', 8);
  // Mask: batch 0 has every key masked, batch 1 a random pattern.
  const Tk = 77, rnd = prng(9);
  const mask = [...new Array(Tk).fill(0), ...Array.from({ length: Tk }, () => (rnd() < 0.6 ? 1 : 0))];
  compare(t, { B: 2, H: 2, Tq: 50, Tk, D: 64, mask }, 'float32', 10);
  compare(t, { B: 2, H: 1, Tq: 50, Tk, D: 8, mask, causal: true }, 'float64', 11);
  // A float mask means the same as its nonzero pattern; an all-masked row gives exact zeros.
  kiln.tidy(() => {
    const q = kiln.randn([2, 1, 4, 8], { requiresGrad: true }), k = kiln.randn([2, 1, 6, 8], { requiresGrad: true });
    const v = kiln.randn([2, 1, 6, 8], { requiresGrad: true });
    const fm = kiln.tensor([[0, 0, 0, 0, 0, 0], [1, 0.5, 0, 1, 1, 0]]);
    const out = kiln.scaledDotProductAttention(q, k, v, { keyMask: fm });
    const im = kiln.scaledDotProductAttention(q, k, v, { keyMask: kiln.ne(fm, 0) });
    t.deepEqual(Array.from(out.dataSync()), Array.from(im.dataSync()));
    t.true(Array.from(out.dataSync()).slice(0, 32).every((x) => x === 0));
    out.sum().backward();
    for (const x of [q, k, v]) t.true(Array.from(x.grad!.dataSync()).every(Number.isFinite));
    t.true(Array.from(q.grad!.dataSync()).slice(0, 32).every((x) => x === 0));
  });
});

test('non-finite input: NaN in q or k stays NaN (as in PyTorch); NaN or Inf in keys a key mask hides reaches nothing', (t) => {
  for (const dtype of ['float32', 'float64'] as const) {
    const B = 2, H = 2, Tq = 5, Tk = 70, D = 8, rnd = prng(21);
    const q = randArray(B * H * Tq * D, rnd), k = randArray(B * H * Tk * D, rnd), v = randArray(B * H * Tk * D, rnd);
    const g = randArray(B * H * Tq * D, rnd);
    // Batch 0 hides keys 3 and 66 (66 lies in the second key tile), batch 1 hides every key.
    const mask = [...Array.from({ length: Tk }, (_, j) => (j === 3 || j === 66 ? 0 : 1)), ...new Array(Tk).fill(0)];
    const run = (qa: Float64Array, ka: Float64Array, va: Float64Array, withMask: boolean) => kiln.tidy(() => {
      const mk = (a: Float64Array, T: number) => kiln.fromTyped(a, [B, H, T, D], { dtype, requiresGrad: true });
      const qt = mk(qa, Tq), kt = mk(ka, Tk), vt = mk(va, Tk);
      const keyMask = withMask ? kiln.fromTyped(Int32Array.from(mask), [B, Tk], { dtype: 'int32' }) : undefined;
      const out = kiln.scaledDotProductAttention(qt, kt, vt, { keyMask });
      out.backward(kiln.fromTyped(g, [B, H, Tq, D], { dtype }));
      return [out, qt.grad!, kt.grad!, vt.grad!].map((x) => Array.from(x.dataSync()));
    });
    const clean = run(q, k, v, true);
    // Poison the hidden keys' rows of K and V (every head of both batches for batch 1).
    const kp = Float64Array.from(k), vp = Float64Array.from(v);
    for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let j = 0; j < Tk; j++) {
      if (mask[b * Tk + j] !== 0) continue;
      for (let d = 0; d < D; d++) {
        kp[((b * H + h) * Tk + j) * D + d] = d % 2 ? NaN : Infinity;
        vp[((b * H + h) * Tk + j) * D + d] = d % 2 ? -Infinity : NaN;
      }
    }
    const poisoned = run(q, kp, vp, true);
    ['out', 'dq', 'dk', 'dv'].forEach((name, i) => {
      const bad = poisoned[i].findIndex((x, e) => !(x === clean[i][e] || (x === 0 && clean[i][e] === 0)));
      t.is(bad, -1, `${dtype} ${name}: hidden keys' NaN/Inf changed element ${bad} (${poisoned[i][bad]} vs ${clean[i][bad]})`);
    });
    const half = B * H * Tq * D / 2;
    t.true(clean[0].slice(half).every((x) => x === 0), `${dtype}: batch 1 sees no key, so its output is 0`);
    // A NaN in one query row: that row's output is NaN, the other rows are unchanged.
    const qn = Float64Array.from(q);
    qn[2 * D + 5] = NaN;  // (b 0, h 0, row 2)
    const noMask = run(q, k, v, false), nanQ = run(qn, k, v, false);
    for (let r = 0; r < B * H * Tq; r++) {
      const rows = [noMask[0].slice(r * D, r * D + D), nanQ[0].slice(r * D, r * D + D)];
      if (r === 2) t.true(rows[1].every(Number.isNaN), `${dtype}: the NaN row's output is NaN`);
      else t.deepEqual(rows[1], rows[0], `${dtype}: row ${r} changed`);
    }
    // A NaN in one key: every row of that head sees it, so all of them are NaN.
    const kn = Float64Array.from(k);
    kn[40 * D] = NaN;  // (b 0, h 0, key 40)
    const nanK = run(q, kn, v, false);
    t.true(nanK[0].slice(0, Tq * D).every(Number.isNaN), `${dtype}: rows that see a NaN key are NaN`);
    t.deepEqual(nanK[0].slice(Tq * D), noMask[0].slice(Tq * D), `${dtype}: other heads unchanged`);
  }
});

test('scale: past float32 range is refused for float32 inputs; a huge finite scale keeps finite gradients', (t) => {
  kiln.tidy(() => {
    const q = kiln.randn([1, 2, 6, 16]);
    t.is(code(() => kiln.scaledDotProductAttention(q, q, q, { scale: 1e39 })), 'INVALID_ARGUMENT');
    const q64 = q.to('float64');
    t.is(code(() => kiln.scaledDotProductAttention(q64, q64, q64, { scale: 1e39 })), 'no error', 'float64 takes it');
    for (const [dtype, scale] of [['float32', 1e9], ['float64', 1e30]] as const) {
      const qa = kiln.randn([1, 2, 40, 16], { dtype, requiresGrad: true }), ka = kiln.randn([1, 2, 40, 16], { dtype, requiresGrad: true });
      const va = kiln.randn([1, 2, 40, 16], { dtype, requiresGrad: true });
      const out = kiln.scaledDotProductAttention(qa, ka, va, { scale, causal: true });
      out.sum().backward();
      for (const [name, x] of [['out', out], ['dq', qa.grad!], ['dk', ka.grad!], ['dv', va.grad!]] as const)
        t.true(Array.from(x.dataSync()).every(Number.isFinite), `${dtype} scale ${scale}: ${name} has NaN/Inf`);
    }
  });
});

test('empty inputs (B, H, T or D = 0, empty views) and a refused draw that leaves the random stream alone', (t) => {
  kiln.tidy(() => {
    const sdpa = kiln.scaledDotProductAttention;
    // Head dim 0: an empty output and empty gradients.
    const q0 = kiln.zeros([2, 1, 3, 0], { requiresGrad: true }), k0 = kiln.zeros([2, 1, 4, 0], { requiresGrad: true });
    const o0 = sdpa(q0, k0, k0);
    t.deepEqual(o0.shape, [2, 1, 3, 0]);
    o0.sum().backward();
    t.deepEqual(q0.grad!.shape, [2, 1, 3, 0]);
    // An empty view narrowed out of an empty tensor (its offset would lie past its storage).
    const kv = kiln.zeros([1, 2, 0, 3, 8]);
    const k = kv.narrow(3, 2, 1).squeeze(3);
    t.deepEqual(sdpa(kiln.randn([1, 2, 4, 8]), k, k).dataSync().every((x: number) => x === 0), true, 'no key: output 0');
    // MultiheadAttention with T = 0, and cross-attention to an empty memory.
    const self = new kiln.nn.MultiheadAttention(8, 2, { causal: true });
    const y = self.forward(kiln.randn([2, 0, 8], { requiresGrad: true }));
    t.deepEqual(y.shape, [2, 0, 8]);
    y.sum().backward();
    const cross = new kiln.nn.MultiheadAttention(8, 2, { cross: true, kvDim: 6 });
    const x = kiln.randn([2, 3, 8], { requiresGrad: true });
    const yc = cross.forward(x, kiln.randn([2, 0, 6]));
    t.deepEqual(yc.shape, [2, 3, 8]);
    yc.sum().backward();
    t.true(Array.from(x.grad!.dataSync()).every(Number.isFinite));
  });
  // A dropout call refused for its size must not move the stream (nor leave it past its end).
  const saved = kiln.getRngState();
  kiln.manualSeed(5);
  const before = kiln.getRngState();
  const big = kiln.randn([1, 1, 1, 1]).expand([1, 1, 2 ** 40, 1]);
  t.throws(() => kiln.scaledDotProductAttention(big, big, big, { dropout: 0.1 }), { instanceOf: kiln.KilnError });
  t.deepEqual(kiln.getRngState(), { ...before, offset: before.offset + 4 }, 'only randn\'s four words were drawn');
  const a = Array.from(kiln.rand([3]).dataSync());
  kiln.manualSeed(5);
  kiln.randn([1, 1, 1, 1]);
  t.deepEqual(Array.from(kiln.rand([3]).dataSync()), a, 'the stream goes on where it was');
  // The stream's end: a draw past 2^53 words is refused and leaves the offset.
  kiln.setRngState({ seed: '7', offset: 2 ** 53 - 8 });
  t.throws(() => kiln.rand([9]), { instanceOf: kiln.KilnError, message: /2\^53/ });
  t.is(kiln.getRngState().offset, 2 ** 53 - 8);
  t.notThrows(() => kiln.rand([8]));
  kiln.setRngState(saved);
});

test('wrong argument types are KilnErrors: options, dropout, tensors, and MultiheadAttention inputs', (t) => {
  kiln.tidy(() => {
    const q = kiln.randn([1, 2, 4, 8]);
    const sdpa = kiln.scaledDotProductAttention, nsdpa = kiln.nn.scaledDotProductAttention;
    t.is(code(() => sdpa(q, q, q, null as never)), 'no error', 'null options mean none');
    t.is(code(() => sdpa(q, q, q, { dropout: 0n as never })), 'INVALID_ARGUMENT', 'bigint dropout');
    t.is(code(() => sdpa(q, q, q, { scale: '1' as never })), 'INVALID_ARGUMENT', 'string scale');
    t.is(code(() => nsdpa(null as never, q, q)), 'INVALID_ARGUMENT', 'nn: q not a tensor');
    t.is(code(() => nsdpa(q, q, q, { dropout: NaN, training: true })), 'INVALID_ARGUMENT', 'nn: dropout NaN');
    t.is(code(() => nsdpa(q, q, q, { dropout: 1, training: false })), 'INVALID_ARGUMENT', 'nn: dropout 1');
    const general = kiln.zeros([4, 4]);
    t.is(code(() => nsdpa(q, q, q, { mask: general, scale: NaN })), 'INVALID_ARGUMENT', 'nn: NaN scale on the composed path');
    const mha = new kiln.nn.MultiheadAttention(8, 2);
    t.is(code(() => mha.forward([[1]] as never)), 'INVALID_ARGUMENT', 'MHA: not a tensor');
    t.is(code(() => mha.forward(kiln.randn([1, 3, 8]), kiln.randn([1, 2, 8]))), 'INVALID_ARGUMENT', 'MHA: self-attention given a memory');
    t.is(code(() => new kiln.nn.MultiheadAttention(8, 2, { dropout: 1 })), 'INVALID_ARGUMENT', 'MHA: dropout 1');
    const cross = new kiln.nn.MultiheadAttention(8, 2, { cross: true });
    t.is(code(() => cross.forward(kiln.randn([2, 3, 8]), kiln.randn([3, 2, 8]))), 'SHAPE_MISMATCH', 'MHA: memory batch');
    t.is(code(() => cross.forward(kiln.randn([2, 3, 8]), kiln.randn([2, 2, 5]))), 'SHAPE_MISMATCH', 'MHA: memory width');
    const qg = kiln.randn([1, 2, 4, 8], { requiresGrad: true }), kg = kiln.randn([1, 2, 4, 8], { requiresGrad: true });
    const o = sdpa(qg, kg, kg);
    kg.dispose();
    t.throws(() => o.sum().backward(), { instanceOf: kiln.KilnError, message: /backward: k \[1, 2, 4, 8\] was disposed/ }, 'k disposed before backward');
    t.is(code(() => kiln.nn.causalMask(-1)), 'INVALID_ARGUMENT', 'causalMask(-1)');
  });
});

test('gradcheck in float64 on small shapes (causal, masks, Tq != Tk)', (t) => {
  const rnd = prng(77);
  for (const c of [{ Tq: 3, Tk: 5, causal: true }, { Tq: 6, Tk: 4, causal: false }, { Tq: 5, Tk: 5, causal: true }]) {
    const B = 2, H = 1, D = 3;
    const w = kiln.fromTyped(randArray(B * H * c.Tq * D, rnd), [B, H, c.Tq, D], { dtype: 'float64' });
    const lens = kiln.fromTyped(Int32Array.from([c.Tk, c.Tk - 2]), [B], { dtype: 'int32' });
    const f = (q: Tensor, k: Tensor, v: Tensor) =>
      kiln.mul(kiln.scaledDotProductAttention(q, k, v, { causal: c.causal, keyPaddingLengths: lens }), w);
    const ins = [[B, H, c.Tq, D], [B, H, c.Tk, D], [B, H, c.Tk, D]].map((s) =>
      kiln.fromTyped(randArray(s.reduce((a, b) => a * b), rnd), s, { dtype: 'float64' }));
    const r = kiln.gradcheck(f, ins, { atol: 1e-6, rtol: 1e-4 });
    t.true(r.ok, `gradcheck ${JSON.stringify(c)}: ${JSON.stringify(r.worst)}`);
  }
});

/** Philox 4x32-10 word w of a seed (kernels/common/philox.h), written independently with BigInt. */
function philoxWord(seed: bigint, w: bigint): number {
  const M = 0xffffffffn;
  let c = [(w >> 2n) & M, (w >> 34n) & M, 0n, 0n];
  let k0 = seed & M, k1 = (seed >> 32n) & M;
  for (let r = 0; r < 10; r++) {
    if (r > 0) { k0 = (k0 + 0x9e3779b9n) & M; k1 = (k1 + 0xbb67ae85n) & M; }
    const p0 = 0xd2511f53n * c[0], p1 = 0xcd9e8d57n * c[2];
    c = [((p1 >> 32n) ^ c[1] ^ k0) & M, p1 & M, ((p0 >> 32n) ^ c[3] ^ k1) & M, p0 & M];
  }
  return Number(c[Number(w & 3n)]);
}

test('dropout: the mask is the documented Philox stream, p is respected, same seed same mask', (t) => {
  // With q = 0 every visible key gets weight 1/Tk, and v = identity reads the scaled mask out.
  const B = 2, H = 2, Tq = 24, Tk = 40, p = 0.3;
  const run = () => kiln.tidy(() => {
    const q = kiln.zeros([B, H, Tq, Tk], { requiresGrad: true });
    const eye = kiln.fromTyped(Float32Array.from({ length: B * H * Tk * Tk }, (_, i) => (Math.floor(i / Tk) % Tk === i % Tk ? 1 : 0)), [B, H, Tk, Tk]);
    return kiln.keep(kiln.scaledDotProductAttention(q, kiln.zeros([B, H, Tk, Tk]), eye, { dropout: p }));
  });
  kiln.manualSeed(42);
  const before = kiln.getRngState();
  const a = run().dataSync();
  const after = kiln.getRngState();
  t.is(after.offset - before.offset, B * H * Tq * Tk, 'one Philox word per score element');
  kiln.manualSeed(42);
  const b = run().dataSync();
  t.deepEqual(Array.from(a), Array.from(b), 'same seed gives the same mask');
  const c = run().dataSync();
  t.notDeepEqual(Array.from(a), Array.from(c), 'the stream moves on');
  let dropped = 0;
  const thr = Math.ceil(p * 2 ** 24);
  for (let e = 0; e < a.length; e++) {
    const keep = (philoxWord(42n, BigInt(before.offset + e)) >>> 8) >= thr;
    const want = keep ? 1 / ((1 - p) * Tk) : 0;
    if (Math.abs(a[e] - want) > 1e-6) return t.fail(`element ${e}: ${a[e]} vs ${want}`);
    if (!keep) dropped++;
  }
  const frac = dropped / a.length, sd = Math.sqrt(p * (1 - p) / a.length);
  t.true(Math.abs(frac - p) < 5 * sd, `dropped fraction ${frac} for p = ${p}`);
});

test('dropout: backward matches the naive reference with the same mask', (t) => {
  const B = 1, H = 2, Tq = 70, Tk = 90, D = 16, p = 0.25;
  kiln.manualSeed(5);
  const off = kiln.getRngState().offset;
  const z = new Float64Array(B * H * Tq * Tk);
  for (let e = 0; e < z.length; e++) z[e] = (philoxWord(5n, BigInt(off + e)) >>> 8) >= Math.ceil(p * 2 ** 24) ? 1 / (1 - p) : 0;
  const rnd = prng(3);
  const q = randArray(B * H * Tq * D, rnd), k = randArray(B * H * Tk * D, rnd), v = randArray(B * H * Tk * D, rnd), g = randArray(B * H * Tq * D, rnd);
  const ref = naive(q, k, v, [B, H, Tq, Tk, D], { causal: true, z }, g);
  kiln.tidy(() => {
    const mk = (a: Float64Array, T: number) => kiln.fromTyped(a, [B, H, T, D], { dtype: 'float64', requiresGrad: true });
    const qt = mk(q, Tq), kt = mk(k, Tk), vt = mk(v, Tk);
    const out = kiln.scaledDotProductAttention(qt, kt, vt, { causal: true, dropout: p });
    out.backward(kiln.fromTyped(g, [B, H, Tq, D], { dtype: 'float64' }));
    for (const [name, got, want] of [['out', out, ref.out], ['dq', qt.grad!, ref.dq], ['dk', kt.grad!, ref.dk], ['dv', vt.grad!, ref.dv]] as const) {
      const r = maxErr(got.dataSync(), want, 1e-10, 1e-8);
      t.true(r.ok, `${name}: ${JSON.stringify(r)}`);
    }
  });
});

test('memory stays linear in T: T = 4096 forward + backward', (t) => {
  const B = 1, H = 2, T = 4096, D = 64;
  kiln.tidy(() => {
    const q = kiln.randn([B, H, T, D], { requiresGrad: true }), k = kiln.randn([B, H, T, D], { requiresGrad: true });
    const v = kiln.randn([B, H, T, D], { requiresGrad: true });
    const inputBytes = 3 * B * H * T * D * 4;
    const rss0 = process.memoryUsage().rss;
    const out = kiln.scaledDotProductAttention(q, k, v, { causal: true });
    out.sum().backward();
    const m = kiln.memory();
    const rssGrowth = process.memoryUsage().rss - rss0;
    const scoreBytes = B * H * T * T * 4; // 128 MiB: one score matrix
    t.true(m.bytes < 6 * inputBytes, `tracked bytes ${m.bytes}`);
    t.true(rssGrowth < scoreBytes / 2, `RSS grew by ${rssGrowth} bytes (a T x T float matrix per head is ${scoreBytes})`);
    t.true(Array.from(q.grad!.dataSync().slice(0, 1000)).every(Number.isFinite));
  });
});

test('bad input is a KilnError with the right code', (t) => {
  const q = kiln.randn([1, 2, 4, 8]);
  const sdpa = kiln.scaledDotProductAttention;
  t.is(code(() => sdpa(q, kiln.randn([1, 3, 4, 8]), kiln.randn([1, 3, 4, 8]))), 'SHAPE_MISMATCH', 'mismatched heads');
  t.is(code(() => sdpa(q, kiln.randn([1, 2, 5, 8]), kiln.randn([1, 2, 6, 8]))), 'SHAPE_MISMATCH', 'k and v lengths');
  t.is(code(() => sdpa(q, kiln.randn([1, 2, 4, 7]), kiln.randn([1, 2, 4, 7]))), 'SHAPE_MISMATCH', 'head dims');
  t.is(code(() => sdpa(kiln.randn([2, 4, 8]), q, q)), 'SHAPE_MISMATCH', 'rank');
  t.is(code(() => sdpa(q, kiln.randn([1, 2, 4, 8], { dtype: 'float64' }), q)), 'DTYPE_MISMATCH', 'mixed dtypes');
  t.is(code(() => sdpa(kiln.zeros([1, 2, 4, 8], { dtype: 'int32' }), q, q)), 'DTYPE_MISMATCH', 'int32 q');
  const big = kiln.randn([1, 1, 2, 600]);
  t.is(code(() => sdpa(big, big, big)), 'INVALID_ARGUMENT', 'D too large');
  t.is(code(() => sdpa(q, q, q, { dropout: 1 })), 'INVALID_ARGUMENT', 'dropout 1');
  t.is(code(() => sdpa(q, q, q, { scale: NaN })), 'INVALID_ARGUMENT', 'scale NaN');
  t.is(code(() => sdpa(q, q, q, { keyPaddingLengths: kiln.tensor([1, 2]) })), 'DTYPE_MISMATCH', 'float lengths');
  t.is(code(() => sdpa(q, q, q, { keyPaddingLengths: kiln.fromTyped(Int32Array.from([1, 2]), [2], { dtype: 'int32' }) })), 'SHAPE_MISMATCH', 'lengths shape');
  t.is(code(() => sdpa(q, q, q, { keyMask: kiln.ones([1, 5]) })), 'SHAPE_MISMATCH', 'mask shape');
  const lens = kiln.fromTyped(Int32Array.from([1]), [1], { dtype: 'int32' });
  t.is(code(() => sdpa(q, q, q, { keyPaddingLengths: lens, keyMask: kiln.ones([1, 4]) })), 'INVALID_ARGUMENT', 'both masks');
  if (!kiln.cuda.isAvailable()) t.log('no CUDA device: the CUDA head-dim check (32/64/128) is not exercised here');
  else {
    const g = kiln.randn([1, 1, 4, 48]).to('cuda');
    t.is(code(() => sdpa(g, g, g)), 'INVALID_ARGUMENT', 'CUDA head dim 48');
  }
});

test('the output does not depend on the thread count', (t) => {
  const prev = kiln.getNumThreads();
  const rnd = prng(21);
  const [B, H, T, D] = [1, 2, 300, 32];
  const mk = () => kiln.fromTyped(randArray(B * H * T * D, rnd), [B, H, T, D], { requiresGrad: true });
  const q = mk(), k = mk(), v = mk();
  const run = () => kiln.tidy(() => {
    for (const x of [q, k, v]) x.grad = null;
    const o = kiln.scaledDotProductAttention(q, k, v, { causal: true });
    o.sum().backward();
    return [o, q.grad!, k.grad!, v.grad!].map((x) => Array.from(x.dataSync()));
  });
  kiln.setNumThreads(1);
  const one = run();
  kiln.setNumThreads(Math.max(2, prev));
  const many = run();
  kiln.setNumThreads(prev);
  t.deepEqual(one, many);
});

test('CUDA matches the CPU kernel, forward and backward (float32), dropout mask included', (t) => {
  if (!kiln.cuda.isAvailable()) {
    t.log('skipped: no CUDA device (the CUDA kernels are compiled but were not run here)');
    t.pass();
    return;
  }
  const rnd = prng(99);
  for (const c of [
    { B: 2, H: 2, Tq: 70, Tk: 70, D: 32, causal: true, p: 0 },
    { B: 1, H: 3, Tq: 33, Tk: 130, D: 64, causal: true, p: 0.2 },
    { B: 2, H: 1, Tq: 129, Tk: 40, D: 128, causal: false, p: 0, lens: [17, 40] },
    { B: 1, H: 2, Tq: 150, Tk: 200, D: 64, causal: true, p: 0 },
  ]) {
    const mk = (T: number) => kiln.fromTyped(Float32Array.from(randArray(c.B * c.H * T * c.D, rnd)), [c.B, c.H, T, c.D]);
    const host = [mk(c.Tq), mk(c.Tk), mk(c.Tk)], g = mk(c.Tq);
    const lens = c.lens ? kiln.fromTyped(Int32Array.from(c.lens), [c.B], { dtype: 'int32' }) : undefined;
    const run = (device: 'cpu' | 'cuda') => kiln.tidy(() => {
      const xs = host.map((x) => kiln.detach(device === 'cpu' ? x : x.to('cuda')));
      for (const x of xs) x.requiresGrad = true;
      kiln.manualSeed(1234);
      const out = kiln.scaledDotProductAttention(xs[0], xs[1], xs[2], {
        causal: c.causal, dropout: c.p, keyPaddingLengths: lens && (device === 'cpu' ? lens : lens.to('cuda')),
      });
      out.backward(device === 'cpu' ? g : g.to('cuda'));
      return [out, ...xs.map((x) => x.grad!)].map((x) => Array.from(x.to('cpu').dataSync()));
    });
    const cpu = run('cpu'), gpu = run('cuda');
    ['out', 'dq', 'dk', 'dv'].forEach((name, i) => {
      const r = maxErr(gpu[i], cpu[i], 1e-4, 1e-3);
      t.true(r.ok, `${name} ${JSON.stringify(c)}: ${JSON.stringify(r)}`);
    });
  }
});

test('raw addon: forged sizes and options are refused by the native decoder, never a crash', async (t) => {
  const { A, N } = await import('../src/native.js');
  const { arg } = await import('../src/ops/util.js');
  const NA = N as unknown as { attentionForward(...xs: unknown[]): void };
  const q = kiln.randn([1, 2, 4, 8]), out = kiln.zeros([1, 2, 4, 8]), lse = kiln.zeros([1, 2, 4]);
  const call = (over: Record<number, number>) => {
    const h = [1, 2, 4, 4, 8, 0.35, 0, 0, 0, 0, 0, 0];
    for (const [i, v] of Object.entries(over)) h[+i] = v;
    h.forEach((v, i) => (A[i] = v));
    A[27] = 0; // no mask handle
    A[42] = over[42] ?? 32; // k and v head strides: dense, Tk * D
    A[43] = over[43] ?? 32;
    try {
      NA.attentionForward(arg(12, q), arg(15, q), arg(18, q), arg(21, out), arg(24, lse), undefined);
      return 'ok';
    } catch (e) {
      return e instanceof kiln.KilnError ? e.code : `not a KilnError: ${e}`;
    }
  };
  t.is(call({}), 'ok');
  t.is(call({ 2: 400 }), 'INVALID_ARGUMENT', 'Tq past the storage');
  t.is(call({ 3: 400 }), 'INVALID_ARGUMENT', 'Tk past the storage');
  t.is(call({ 4: 0 }), 'INVALID_ARGUMENT', 'D = 0');
  t.is(call({ 4: 4096 }), 'INVALID_ARGUMENT', 'D too large');
  t.is(call({ 7: 3 }), 'INVALID_ARGUMENT', 'mask kind');
  t.is(call({ 7: 1 }), 'DISPOSED', 'mask kind without a mask operand');
  t.is(call({ 8: 1 }), 'INVALID_ARGUMENT', 'dropout 1');
  t.is(call({ 5: Infinity }), 'INVALID_ARGUMENT', 'scale inf');
  t.is(call({ 0: -1 }), 'INVALID_ARGUMENT', 'negative batch');
  t.is(call({ 42: 0, 43: 0 }), 'ok', 'heads sharing one block of k and v');
  t.is(call({ 42: 33 }), 'INVALID_ARGUMENT', 'k head stride one past the storage');
  t.is(call({ 43: 33 }), 'INVALID_ARGUMENT', 'v head stride one past the storage');
  t.is(call({ 42: -1 }), 'INVALID_ARGUMENT', 'negative head stride');
  t.is(call({ 42: 2 ** 60 }), 'INVALID_ARGUMENT', 'huge head stride');
  t.is(call({ 43: 1.5 }), 'INVALID_ARGUMENT', 'fractional head stride');
});
