// The fused attention op reading k and v as views of bigger buffers (a KV cache's [B, H, capacity,
// D]): on the CPU the kernel walks their heads at the view's head stride without a copy, forward
// and backward, and equals the contiguous result exactly; the native decoder refuses a head stride
// that would read past the storage; on CUDA the op copies (the kernels take dense heads only).
import test from 'ava';
import * as kiln from '../src/index.js';
import { headStride } from '../src/ops/attention.js';

type DType = 'float32' | 'float64';

interface Case { B: number; H: number; Tq: number; Tk: number; D: number; causal: boolean; lens?: number[]; keyMask?: boolean }
const CASES: Case[] = [
  { B: 2, H: 3, Tq: 5, Tk: 9, D: 16, causal: false },
  { B: 2, H: 3, Tq: 5, Tk: 9, D: 16, causal: true },
  { B: 3, H: 2, Tq: 1, Tk: 70, D: 8, causal: true, lens: [70, 33, 0] },  // a decode step; key lengths
  { B: 2, H: 1, Tq: 7, Tk: 7, D: 5, causal: true, keyMask: true },      // one head per batch row
  { B: 1, H: 4, Tq: 3, Tk: 130, D: 24, causal: false, keyMask: true },
  { B: 2, H: 2, Tq: 66, Tk: 80, D: 32, causal: true },                 // several query and key tiles
];

/** q [B, H, Tq, D] and k, v as narrowed views [B, H, Tk, D] of buffers [B, H, Tk + room, D]. */
function inputs(c: Case, dtype: DType, room: number, requiresGrad = false) {
  const q = kiln.randn([c.B, c.H, c.Tq, c.D], { dtype, requiresGrad });
  const kb = kiln.randn([c.B, c.H, c.Tk + room, c.D], { dtype, requiresGrad });
  const vb = kiln.randn([c.B, c.H, c.Tk + room, c.D], { dtype, requiresGrad });
  // k starts part-way into its buffer, v at its start: each has its own offset, same head stride.
  const k = kb.narrow(2, Math.min(room, 3), c.Tk), v = vb.narrow(2, 0, c.Tk);
  return { q, kb, vb, k, v };
}

function options(c: Case): kiln.AttentionOptions {
  const o: kiln.AttentionOptions = { causal: c.causal };
  if (c.lens) o.keyPaddingLengths = kiln.tensor(Int32Array.from(c.lens), { dtype: 'int32', shape: [c.B] });
  if (c.keyMask) o.keyMask = kiln.tensor(Int32Array.from({ length: c.B * c.Tk }, (_, i) => (i % 3 === 1 ? 0 : 1)), { dtype: 'int32', shape: [c.B, c.Tk] });
  return o;
}

test('headStride: the stride of views whose heads are row-major [T, D] blocks one stride apart, else null', (t) => {
  const buf = kiln.zeros([2, 3, 10, 4]);
  t.is(headStride(buf), 40);
  t.is(headStride(buf.narrow(2, 2, 5)), 40);
  t.is(headStride(kiln.zeros([1, 1, 6, 4]).narrow(2, 1, 2)), 8);            // one head: its own size
  t.is(headStride(kiln.zeros([3, 1, 6, 4]).narrow(2, 1, 2)), 24);           // one head per batch row
  t.is(headStride(buf.narrow(3, 0, 2)), null, 'rows not D apart');
  t.is(headStride(buf.permute([1, 0, 2, 3])), null, 'batch and head strides disagree');
  t.is(headStride(buf.transpose(2, 3)), null, 'transposed heads');
  t.is(headStride(kiln.zeros([1, 1, 6, 4]).expand([2, 3, 6, 4])), 0, 'one head broadcast to all');
});

for (const dtype of ['float32', 'float64'] as const) {
  test(`forward on k and v views of bigger buffers equals the contiguous result exactly, with no copy (${dtype})`, (t) => {
    kiln.manualSeed(11);
    for (const c of CASES) {
      kiln.tidy(() => {
        const { q, k, v } = inputs(c, dtype, 11);
        t.true(!k.isContiguous() && headStride(k) === (c.Tk + 11) * c.D, 'the case really passes a strided view');
        const kc = k.contiguous(), vc = v.contiguous();
        const o = options(c);
        let id = kiln.Tensor.peekNextId();
        const want = kiln.scaledDotProductAttention(q, kc, vc, o);
        const madeDense = kiln.Tensor.peekNextId() - id;
        id = kiln.Tensor.peekNextId();
        const got = kiln.scaledDotProductAttention(q, k, v, o);
        const madeViews = kiln.Tensor.peekNextId() - id;
        t.deepEqual(Array.from(got.dataSync()), Array.from(want.dataSync()), JSON.stringify(c));
        t.is(madeViews, madeDense, `the views were read in place, not copied: ${JSON.stringify(c)}`);
      });
    }
  });

  test(`forward and backward on k and v views equal the contiguous run, gradients reaching the buffers (${dtype})`, (t) => {
    kiln.manualSeed(12);
    for (const c of CASES) {
      kiln.tidy(() => {
        const room = 6;
        const a = inputs(c, dtype, room, true);
        const g = kiln.randn([c.B, c.H, c.Tq, c.D], { dtype });
        kiln.scaledDotProductAttention(a.q, a.k, a.v, options(c)).backward(g);
        // The same values as dense leaves.
        const q = kiln.detach(a.q).clone(), k = kiln.detach(a.k).contiguous(), v = kiln.detach(a.v).contiguous();
        for (const x of [q, k, v]) x.requiresGrad = true;
        kiln.scaledDotProductAttention(q, k, v, options(c)).backward(g);
        const at = (x: kiln.Tensor) => Array.from(x.dataSync());
        t.deepEqual(at(a.q.grad!), at(q.grad!), `dq ${JSON.stringify(c)}`);
        t.deepEqual(at(a.kb.grad!.narrow(2, Math.min(room, 3), c.Tk)), at(k.grad!), `dk ${JSON.stringify(c)}`);
        t.deepEqual(at(a.vb.grad!.narrow(2, 0, c.Tk)), at(v.grad!), `dv ${JSON.stringify(c)}`);
        // Outside the views the buffers get no gradient.
        const kOutside = a.kb.grad!.narrow(2, 0, Math.min(room, 3));
        t.true(at(kOutside).every((x) => x === 0), 'dk before the view is 0');
        t.true(at(a.vb.grad!.narrow(2, c.Tk, room)).every((x) => x === 0), 'dv after the view is 0');
      });
    }
  });
}

test('a float64 gradcheck through k and v views of bigger buffers (finite differences)', (t) => {
  kiln.manualSeed(13);
  for (const causal of [true, false]) {
    const c: Case = { B: 2, H: 2, Tq: 3, Tk: 4, D: 3, causal };
    const { q, kb, vb } = inputs(c, 'float64', 3);
    const w = kiln.randn([c.B, c.H, c.Tq, c.D], { dtype: 'float64' });
    const f = (qq: kiln.Tensor, kk: kiln.Tensor, vv: kiln.Tensor) =>
      kiln.mul(kiln.scaledDotProductAttention(qq, kk.narrow(2, 3, c.Tk), vv.narrow(2, 1, c.Tk), { causal }), w);
    const r = kiln.gradcheck(f, [q, kb, vb], { atol: 1e-6, rtol: 1e-4 });
    t.true(r.ok, `gradcheck causal ${causal}: ${JSON.stringify(r.worst)}`);
  }
});

test('raw addon: a head stride that would read past the view storage is refused with a KilnError', async (t) => {
  const { A, N } = await import('../src/native.js');
  const { arg } = await import('../src/ops/util.js');
  const NA = N as unknown as { attentionForward(...xs: unknown[]): void; attentionBackward(...xs: unknown[]): void };
  // k and v: [1, 2, 4, 8] views starting at position 6 of [1, 2, 10, 8] buffers (160 elements):
  // heads 80 apart, so the last element read is 48 + 80 + 31 = 159, the buffer's last.
  const buf = kiln.randn([1, 2, 10, 8]), k = buf.narrow(2, 6, 4);
  const q = kiln.randn([1, 2, 4, 8]), out = kiln.zeros([1, 2, 4, 8]), lse = kiln.zeros([1, 2, 4]);
  const dq = kiln.zeros([1, 2, 4, 8]), dk = kiln.zeros([1, 2, 4, 8]), dv = kiln.zeros([1, 2, 4, 8]);
  const header = (ks: number, vs: number) => {
    [1, 2, 4, 4, 8, 0.35, 1, 0, 0, 0, 0, 0].forEach((x, i) => (A[i] = x));
    A[42] = ks;
    A[43] = vs;
  };
  const result = (f: () => void) => {
    try {
      f();
      return 'ok';
    } catch (e) {
      return e instanceof kiln.KilnError ? e.code : `not a KilnError: ${e}`;
    }
  };
  const forward = (ks: number, vs: number) => result(() => {
    header(ks, vs);
    NA.attentionForward(arg(12, q), arg(15, k), arg(18, k), arg(21, out), arg(24, lse), undefined);
  });
  const backward = (ks: number, vs: number) => result(() => {
    header(ks, vs);
    NA.attentionBackward(arg(12, q), arg(15, k), arg(18, k), arg(21, out), arg(24, out), arg(27, lse), undefined,
      arg(33, dq), arg(36, dk), arg(39, dv));
  });
  t.is(forward(80, 80), 'ok');
  t.is(forward(81, 80), 'INVALID_ARGUMENT', 'k one element past the storage');
  t.is(forward(80, 81), 'INVALID_ARGUMENT', 'v one element past the storage');
  t.is(forward(2 ** 46, 80), 'INVALID_ARGUMENT', 'a stride past every storage');
  t.is(backward(80, 80), 'ok');
  t.is(backward(81, 80), 'INVALID_ARGUMENT', 'backward: k past the storage');
  t.is(backward(80, 81), 'INVALID_ARGUMENT', 'backward: v past the storage');
  // The kernel read the right heads: the op on the view agrees with the forged call.
  header(80, 80);
  NA.attentionForward(arg(12, q), arg(15, k), arg(18, k), arg(21, out), arg(24, lse), undefined);
  const want = kiln.scaledDotProductAttention(q, k.contiguous(), k.contiguous(), { causal: true, scale: 0.35 });
  t.deepEqual(Array.from(out.dataSync()), Array.from(want.dataSync()));
});

test('CUDA: k and v views give the contiguous result (the op copies them); a forged head stride is refused', async (t) => {
  if (!kiln.cuda.isAvailable()) {
    t.log('skipped: no CUDA device');
    t.pass();
    return;
  }
  kiln.manualSeed(14);
  const c: Case = { B: 2, H: 2, Tq: 3, Tk: 40, D: 32, causal: true };
  const { q, k, v } = inputs(c, 'float32', 24);
  const gq = q.to('cuda'), gk = k.contiguous().to('cuda'), gv = v.contiguous().to('cuda');
  const kbuf = kiln.zeros([c.B, c.H, c.Tk + 24, c.D], { device: 'cuda' });
  const kview = kbuf.narrow(2, 5, c.Tk);
  kiln.noGrad(() => kiln.nn.copyInto(kview, gk));
  const got = kiln.scaledDotProductAttention(gq, kview, gv, { causal: true }).to('cpu').dataSync();
  const want = kiln.scaledDotProductAttention(gq, gk, gv, { causal: true }).to('cpu').dataSync();
  t.deepEqual(Array.from(got), Array.from(want));
  const { A, N } = await import('../src/native.js');
  const { arg } = await import('../src/ops/util.js');
  const NA = N as unknown as { attentionForward(...xs: unknown[]): void };
  const out = kiln.zeros([c.B, c.H, c.Tq, c.D], { device: 'cuda' }), lse = kiln.zeros([c.B, c.H, c.Tq], { device: 'cuda' });
  [c.B, c.H, c.Tq, c.Tk, c.D, 0.2, 1, 0, 0, 0, 0, 0].forEach((x, i) => (A[i] = x));
  A[42] = (c.Tk + 24) * c.D;
  A[43] = c.Tk * c.D;
  const e = t.throws(() => NA.attentionForward(arg(12, gq), arg(15, kview), arg(18, gv), arg(21, out), arg(24, lse), undefined), { instanceOf: kiln.KilnError });
  t.is((e as kiln.KilnError).code, 'INVALID_ARGUMENT');
  t.regex(e!.message, /dense k and v/);
});
