// Convolution and pooling (src/ops/conv.ts) and their modules: forward against plain direct-loop
// references on fixed and random shapes (stride, padding, dilation, groups, odd sizes, batch 1 and
// more), gradients by finite differences (checkOp), max-pool ties and NaN, modules' shapes and
// PyTorch's default init bounds, memory, and the errors bad input gets.
import test from 'ava';
import * as kiln from '../src/index.js';
import { checkOp, normals, prng } from './helpers/checkop.js';
import { numel, type Ref } from './helpers/reference.js';
import { A, N } from '../src/native.js';
import { arg } from '../src/ops/util.js';

// ---------------------------------------------------------------- references (direct loops)

interface ConvRef { stride?: [number, number]; pads?: [number, number, number, number]; dilation?: [number, number]; groups?: number }

/** out[n, o, i, j] = b[o] + sum over c, th, tw of x[n, g Cg + c, i sH - top + th dH, j sW - left + tw dW] w[o, c, th, tw]. */
function refConv2d(x: Ref, w: Ref, b: Ref | null, o: ConvRef = {}): Ref {
  const [N, C, H, W] = x.shape, [Co, Cg, kH, kW] = w.shape;
  const [sH, sW] = o.stride ?? [1, 1], [pt, pb, pl, pr] = o.pads ?? [0, 0, 0, 0], [dH, dW] = o.dilation ?? [1, 1];
  const G = o.groups ?? 1, Cog = Co / G;
  const Ho = Math.floor((H + pt + pb - dH * (kH - 1) - 1) / sH) + 1, Wo = Math.floor((W + pl + pr - dW * (kW - 1) - 1) / sW) + 1;
  const out = new Float64Array(N * Co * Ho * Wo);
  let p = 0;
  for (let n = 0; n < N; n++)
    for (let co = 0; co < Co; co++) {
      const g = Math.floor(co / Cog);
      for (let i = 0; i < Ho; i++)
        for (let j = 0; j < Wo; j++) {
          let s = b ? b.data[co] : 0;
          for (let c = 0; c < Cg; c++)
            for (let th = 0; th < kH; th++)
              for (let tw = 0; tw < kW; tw++) {
                const ih = i * sH - pt + th * dH, iw = j * sW - pl + tw * dW;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                s += x.data[((n * C + g * Cg + c) * H + ih) * W + iw] * w.data[((co * Cg + c) * kH + th) * kW + tw];
              }
          out[p++] = s;
        }
    }
  return { data: out, shape: [N, Co, Ho, Wo] };
}

function refConv1d(x: Ref, w: Ref, b: Ref | null, o: { stride?: number; pad?: [number, number]; dilation?: number; groups?: number } = {}): Ref {
  const [N, C, L] = x.shape, [Co, Cg, k] = w.shape;
  const y = refConv2d({ data: x.data, shape: [N, C, 1, L] }, { data: w.data, shape: [Co, Cg, 1, k] }, b,
    { stride: [1, o.stride ?? 1], pads: [0, 0, ...(o.pad ?? [0, 0])], dilation: [1, o.dilation ?? 1], groups: o.groups });
  return { data: y.data, shape: [N, Co, y.shape[3]] };
}

type Reducer = (vals: number[], inside: number) => number;
/** Windows over H, W (padded positions passed as NaN-free `undefined`, counted separately). */
function refPool(x: Ref, k: [number, number], s: [number, number], p: [number, number], d: [number, number], f: Reducer): Ref {
  const [N, C, H, W] = x.shape;
  const Ho = Math.floor((H + 2 * p[0] - d[0] * (k[0] - 1) - 1) / s[0]) + 1, Wo = Math.floor((W + 2 * p[1] - d[1] * (k[1] - 1) - 1) / s[1]) + 1;
  const out = new Float64Array(N * C * Ho * Wo);
  let q = 0;
  for (let nc = 0; nc < N * C; nc++)
    for (let i = 0; i < Ho; i++)
      for (let j = 0; j < Wo; j++) {
        const vals: number[] = [];
        for (let th = 0; th < k[0]; th++)
          for (let tw = 0; tw < k[1]; tw++) {
            const ih = i * s[0] - p[0] + th * d[0], iw = j * s[1] - p[1] + tw * d[1];
            if (ih >= 0 && ih < H && iw >= 0 && iw < W) vals.push(x.data[(nc * H + ih) * W + iw]);
          }
        out[q++] = f(vals, k[0] * k[1]);
      }
  return { data: out, shape: [N, C, Ho, Wo] };
}
const maxOf: Reducer = (v) => (v.some(Number.isNaN) ? NaN : Math.max(...v));
const meanIncl: Reducer = (v, kk) => v.reduce((a, b) => a + b, 0) / kk;
const meanExcl: Reducer = (v) => v.reduce((a, b) => a + b, 0) / v.length;

function refAdaptiveAvg(x: Ref, Ho: number, Wo: number): Ref {
  const [N, C, H, W] = x.shape;
  const out = new Float64Array(N * C * Ho * Wo);
  let q = 0;
  for (let nc = 0; nc < N * C; nc++)
    for (let i = 0; i < Ho; i++)
      for (let j = 0; j < Wo; j++) {
        const h0 = Math.floor((i * H) / Ho), h1 = Math.ceil(((i + 1) * H) / Ho), w0 = Math.floor((j * W) / Wo), w1 = Math.ceil(((j + 1) * W) / Wo);
        let s = 0;
        for (let h = h0; h < h1; h++) for (let w = w0; w < w1; w++) s += x.data[(nc * H + h) * W + w];
        out[q++] = s / ((h1 - h0) * (w1 - w0));
      }
  return { data: out, shape: [N, C, Ho, Wo] };
}

/** F.pad constant mode on a 3-D input: pads for the last two dims [wLo, wHi, hLo, hHi]. */
function refPad3(x: Ref, pads: number[], value: number): Ref {
  const [A, H, W] = x.shape;
  const [wl, wh, hl, hh] = [pads[0], pads[1], pads[2] ?? 0, pads[3] ?? 0];
  const Ho = H + hl + hh, Wo = W + wl + wh;
  const out = new Float64Array(A * Ho * Wo);
  for (let a = 0; a < A; a++)
    for (let i = 0; i < Ho; i++)
      for (let j = 0; j < Wo; j++) {
        const h = i - hl, w = j - wl;
        out[(a * Ho + i) * Wo + j] = h >= 0 && h < H && w >= 0 && w < W ? x.data[(a * H + h) * W + w] : value;
      }
  return { data: out, shape: [A, Ho, Wo] };
}

// ---------------------------------------------------------------- forward and gradient (checkOp)

checkOp('conv2d 3x3, padding 1, bias', [[2, 3, 5, 6], [4, 3, 3, 3], [4]], (x, w, b) => kiln.conv2d(x, w, b, { padding: 1 }),
  (x, w, b) => refConv2d(x, w, b, { pads: [1, 1, 1, 1] }));
checkOp('conv2d stride [2, 1], padding [1, 2], dilation [1, 2], groups 2, batch 1', [[1, 4, 7, 6], [6, 2, 3, 2], [6]],
  (x, w, b) => kiln.conv2d(x, w, b, { stride: [2, 1], padding: [1, 2], dilation: [1, 2], groups: 2 }),
  (x, w, b) => refConv2d(x, w, b, { stride: [2, 1], pads: [1, 1, 2, 2], dilation: [1, 2], groups: 2 }));
checkOp('conv2d no bias, stride 2, odd sizes, on a transposed input', [[2, 5, 4, 3], [3, 3, 2, 3]],
  (x, w) => kiln.conv2d(x.transpose(1, 3), w, null, { stride: 2 }),
  (x, w) => refConv2d(transposeNCHW13(x), w, null, { stride: [2, 2] }));
checkOp('conv2d padding same with an even kernel (one more at the end)', [[1, 2, 4, 5], [2, 2, 2, 4], [2]],
  (x, w, b) => kiln.conv2d(x, w, b, { padding: 'same' }), (x, w, b) => refConv2d(x, w, b, { pads: [0, 1, 1, 2] }));
checkOp('conv2d depthwise (groups = channels), 1x1 kernel', [[2, 3, 3, 3], [3, 1, 1, 1], [3]],
  (x, w, b) => kiln.conv2d(x, w, b, { groups: 3 }), (x, w, b) => refConv2d(x, w, b, { groups: 3 }));
checkOp('conv1d stride 2, padding 1, dilation 2, groups 2', [[2, 4, 9], [6, 2, 3], [6]],
  (x, w, b) => kiln.conv1d(x, w, b, { stride: 2, padding: 1, dilation: 2, groups: 2 }),
  (x, w, b) => refConv1d(x, w, b, { stride: 2, pad: [1, 1], dilation: 2, groups: 2 }));
checkOp('conv1d padding same, no bias', [[1, 3, 6], [2, 3, 4]], (x, w) => kiln.conv1d(x, w, null, { padding: 'same' }),
  (x, w) => refConv1d(x, w, null, { pad: [1, 2] }));

checkOp('maxPool2d 2x2', [[2, 3, 4, 6]], (x) => kiln.maxPool2d(x, 2), (x) => refPool(x, [2, 2], [2, 2], [0, 0], [1, 1], maxOf));
checkOp('maxPool2d 3x3 stride 2 padding 1, odd sizes', [[1, 2, 7, 5]], (x) => kiln.maxPool2d(x, 3, { stride: 2, padding: 1 }),
  (x) => refPool(x, [3, 3], [2, 2], [1, 1], [1, 1], maxOf));
checkOp('maxPool2d [2, 3] stride [1, 2] dilation [2, 1], unbatched', [[3, 6, 7]], (x) => kiln.maxPool2d(x, [2, 3], { stride: [1, 2], dilation: [2, 1] }),
  (x) => { const y = refPool({ data: x.data, shape: [1, ...x.shape] }, [2, 3], [1, 2], [0, 0], [2, 1], maxOf); return { data: y.data, shape: y.shape.slice(1) }; });
checkOp('avgPool2d 2x2', [[2, 3, 4, 5]], (x) => kiln.avgPool2d(x, 2), (x) => refPool(x, [2, 2], [2, 2], [0, 0], [1, 1], meanIncl));
checkOp('avgPool2d 3x3 stride 2 padding 1 countIncludePad', [[1, 2, 6, 5]], (x) => kiln.avgPool2d(x, 3, { stride: 2, padding: 1 }),
  (x) => refPool(x, [3, 3], [2, 2], [1, 1], [1, 1], meanIncl));
checkOp('avgPool2d [3, 2] stride [2, 1] padding 1 without the padding in the count', [[2, 2, 5, 4]],
  (x) => kiln.avgPool2d(x, [3, 2], { stride: [2, 1], padding: 1, countIncludePad: false }),
  (x) => refPool(x, [3, 2], [2, 1], [1, 1], [1, 1], meanExcl));
checkOp('adaptiveAvgPool2d to [3, 2] (overlapping windows)', [[2, 2, 5, 7]], (x) => kiln.adaptiveAvgPool2d(x, [3, 2]), (x) => refAdaptiveAvg(x, 3, 2));
checkOp('adaptiveAvgPool2d to 1 (global average)', [[2, 3, 4, 4]], (x) => kiln.adaptiveAvgPool2d(x, 1), (x) => refAdaptiveAvg(x, 1, 1));
checkOp('pad last two dims, with a crop', [[2, 3, 4]], (x) => kiln.pad(x, [1, 2, -1, 2], 0.5), (x) => refPad3(R3crop(x), [1, 2, 0, 2], 0.5));
checkOp('pad last dim only', [[2, 3, 4]], (x) => kiln.pad(x, [2, 0]), (x) => refPad3(x, [2, 0], 0));

function transposeNCHW13(x: Ref): Ref {
  const [a, b, c, d] = x.shape;  // x [a, b, c, d] -> [a, d, c, b]
  const out = new Float64Array(x.data.length);
  let p = 0;
  for (let i = 0; i < a; i++) for (let l = 0; l < d; l++) for (let k = 0; k < c; k++) for (let j = 0; j < b; j++) out[p++] = x.data[((i * b + j) * c + k) * d + l];
  return { data: out, shape: [a, d, c, b] };
}
/** Drops the first row of dimension 1 of a 3-D ref (the -1 of the pad test). */
function R3crop(x: Ref): Ref {
  const [A, H, W] = x.shape;
  const out: number[] = [];
  for (let a = 0; a < A; a++) for (let h = 1; h < H; h++) for (let w = 0; w < W; w++) out.push(x.data[(a * H + h) * W + w]);
  return { data: Float64Array.from(out), shape: [A, H - 1, W] };
}

// ---------------------------------------------------------------- random shapes (forward, float64)

const fromRef = (r: Ref) => kiln.tensor(Float64Array.from(r.data), { shape: r.shape.slice() });
const randRef = (rng: () => number, shape: number[]): Ref => ({ data: Float64Array.from(normals(rng, numel(shape))), shape });
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return a.length === b.length ? m : Infinity;
};

test('conv2d and conv1d match the direct loop on random shapes', (t) => {
  const rng = prng(7);
  const ri = (lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));
  const before = kiln.memory().tensors;
  for (let trial = 0; trial < 40; trial++) {
    const G = [1, 1, 2, 3][ri(0, 3)];
    const Cg = ri(1, 3), Cog = ri(1, 3), N = ri(1, 3);
    const kH = ri(1, 4), kW = ri(1, 4), sH = ri(1, 3), sW = ri(1, 3), dH = ri(1, 2), dW = ri(1, 2), pH = ri(0, 2), pW = ri(0, 2);
    const H = Math.max(1, dH * (kH - 1) + 1 - 2 * pH + ri(0, 5)), W = Math.max(1, dW * (kW - 1) + 1 - 2 * pW + ri(0, 5));
    const x = randRef(rng, [N, G * Cg, H, W]), w = randRef(rng, [G * Cog, Cg, kH, kW]), b = rng() < 0.5 ? randRef(rng, [G * Cog]) : null;
    const want = refConv2d(x, w, b, { stride: [sH, sW], pads: [pH, pH, pW, pW], dilation: [dH, dW], groups: G });
    kiln.tidy(() => {
      const y = kiln.conv2d(fromRef(x), fromRef(w), b && fromRef(b), { stride: [sH, sW], padding: [pH, pW], dilation: [dH, dW], groups: G });
      const cfg = JSON.stringify({ x: x.shape, w: w.shape, s: [sH, sW], p: [pH, pW], d: [dH, dW], G });
      t.deepEqual(y.shape, want.shape, cfg);
      t.true(maxDiff(y.dataSync(), want.data) < 1e-12, cfg);
    });
    if (trial % 4 === 0) {
      const L = dW * (kW - 1) + 1 + ri(0, 6);
      const x1 = randRef(rng, [N, G * Cg, L]), w1 = randRef(rng, [G * Cog, Cg, kW]);
      const want1 = refConv1d(x1, w1, b, { stride: sW, pad: [pW, pW], dilation: dW, groups: G });
      kiln.tidy(() => {
        const y = kiln.conv1d(fromRef(x1), fromRef(w1), b && fromRef(b), { stride: sW, padding: pW, dilation: dW, groups: G });
        t.deepEqual(y.shape, want1.shape);
        t.true(maxDiff(y.dataSync(), want1.data) < 1e-12);
      });
    }
  }
  t.is(kiln.memory().tensors, before);
});

test('pools match the direct loop on random shapes', (t) => {
  const rng = prng(11);
  const ri = (lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));
  for (let trial = 0; trial < 30; trial++) {
    const k: [number, number] = [ri(1, 4), ri(1, 4)], s: [number, number] = [ri(1, 3), ri(1, 3)], d: [number, number] = [ri(1, 2), ri(1, 2)];
    const p: [number, number] = [ri(0, Math.floor((d[0] * (k[0] - 1) + 1) / 2)), ri(0, Math.floor((d[1] * (k[1] - 1) + 1) / 2))];
    const x = randRef(rng, [ri(1, 3), ri(1, 4), d[0] * (k[0] - 1) + 1 + ri(0, 6), d[1] * (k[1] - 1) + 1 + ri(0, 6)]);
    const cfg = JSON.stringify({ x: x.shape, k, s, p, d });
    kiln.tidy(() => {
      const xt = fromRef(x);
      const m = kiln.maxPool2d(xt, k, { stride: s, padding: p, dilation: d });
      t.true(maxDiff(m.dataSync(), refPool(x, k, s, p, d, maxOf).data) === 0, `max ${cfg}`);
      const pa: [number, number] = [Math.min(p[0], k[0] >> 1), Math.min(p[1], k[1] >> 1)];  // no dilation: at most half the kernel
      const a = kiln.avgPool2d(xt, k, { stride: s, padding: pa });
      t.true(maxDiff(a.dataSync(), refPool(x, k, s, pa, [1, 1], meanIncl).data) < 1e-12, `avg ${cfg}`);
      const e = kiln.avgPool2d(xt, k, { stride: s, padding: pa, countIncludePad: false });
      t.true(maxDiff(e.dataSync(), refPool(x, k, s, pa, [1, 1], meanExcl).data) < 1e-12, `avg excl ${cfg}`);
      const [Ho, Wo] = [ri(1, x.shape[2] + 2), ri(1, x.shape[3] + 2)];
      const ad = kiln.adaptiveAvgPool2d(xt, [Ho, Wo]);
      t.true(maxDiff(ad.dataSync(), refAdaptiveAvg(x, Ho, Wo).data) < 1e-12, `adaptive ${cfg} -> ${Ho}, ${Wo}`);
    });
  }
});

// ---------------------------------------------------------------- max-pool ties and NaN; half dtypes

test('maxPool2d sends the gradient to the first maximum of a tie, and propagates NaN', (t) => {
  kiln.tidy(() => {
    // Two channels (the second all ties), so the tap search runs across channels as well.
    const x = kiln.tensor([[[[1, 3, 3], [3, 0, 2], [1, 1, 1]], [[4, 4, 4], [4, 4, 4], [4, 4, 4]]]], { requiresGrad: true });
    const y = kiln.maxPool2d(x, 2, { stride: 1 });
    t.deepEqual(Array.from(y.dataSync()), [3, 3, 3, 2, 4, 4, 4, 4]);
    y.sum().backward();
    // Channel 0 windows: (0,0) first 3 at [0,1]; (0,1) at [0,1]; (1,0) at [1,0]; (1,1) the 2 at [1,2].
    // Channel 1: every window's first element (its top-left).
    t.deepEqual(Array.from(x.grad!.dataSync()), [0, 2, 0, 1, 0, 1, 0, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 0]);
    const n = kiln.maxPool2d(kiln.tensor([[[[1, NaN], [5, 2]]]]), 2);
    t.true(Number.isNaN(n.dataSync()[0]));
  });
});

test('float16 and bfloat16 inputs run through float32 and come back in their dtype', (t) => {
  kiln.tidy(() => {
    kiln.manualSeed(3);
    const x = kiln.randn([2, 4, 5, 5]), w = kiln.randn([3, 4, 3, 3]);
    const want = kiln.conv2d(x, w, null, { padding: 1 }).dataSync();
    for (const d of ['float16', 'bfloat16'] as const) {
      const y = kiln.conv2d(x.to(d), w.to(d), null, { padding: 1 });
      t.is(y.dtype, d);
      const got = y.to('float32').dataSync();
      t.true(maxDiff(got, want) < (d === 'float16' ? 0.05 : 0.4), d);
      t.is(kiln.maxPool2d(x.to(d), 2).dtype, d);
    }
  });
});

// ---------------------------------------------------------------- modules

test('Conv2d / Conv1d: shapes, parameters and PyTorch default init bounds', (t) => {
  kiln.tidy(() => {
    kiln.manualSeed(0);
    const c = new kiln.nn.Conv2d(4, 8, 3, { padding: 1, stride: 2 });
    t.deepEqual(c.weight.shape, [8, 4, 3, 3]);
    t.deepEqual(c.bias!.shape, [8]);
    const bound = 1 / Math.sqrt(4 * 9);
    const wv = Array.from(c.weight.dataSync()), bv = Array.from(c.bias!.dataSync());
    t.true(wv.every((v) => Math.abs(v) <= bound) && bv.every((v) => Math.abs(v) <= bound));
    t.true(Math.max(...wv) > 0.8 * bound && Math.min(...wv) < -0.8 * bound, 'uniform over the whole range');
    t.deepEqual(c.forward(kiln.randn([2, 4, 9, 8])).shape, [2, 8, 5, 4]);
    t.is(c.parameters().length, 2);

    const g = new kiln.nn.Conv2d(6, 4, [1, 3], { groups: 2, bias: false, dtype: 'float64' });
    t.deepEqual(g.weight.shape, [4, 3, 1, 3]);
    t.is(g.bias, null);
    t.is(g.weight.dtype, 'float64');
    t.true(Array.from(g.weight.dataSync()).every((v) => Math.abs(v) <= 1 / Math.sqrt(9)));
    t.deepEqual(g.forward(kiln.randn([1, 6, 2, 5], { dtype: 'float64' })).shape, [1, 4, 2, 3]);

    const c1 = new kiln.nn.Conv1d(3, 5, 4, { padding: 'same' });
    t.deepEqual(c1.weight.shape, [5, 3, 4]);
    t.true(Array.from(c1.weight.dataSync()).every((v) => Math.abs(v) <= 1 / Math.sqrt(12)));
    t.deepEqual(c1.forward(kiln.randn([2, 3, 10])).shape, [2, 5, 10]);

    t.throws(() => new kiln.nn.Conv2d(3, 4, 3, { groups: 2 }), { instanceOf: kiln.KilnError, message: /Conv2d: inChannels 3 and outChannels 4 must be divisible by groups 2/ });
    t.throws(() => new kiln.nn.Conv2d(3, 4, 0), { instanceOf: kiln.KilnError, message: /Conv2d: kernelSize/ });
  });
});

test('pool modules and a small conv net trains', (t) => {
  kiln.tidy(() => {
    const x = kiln.randn([2, 3, 8, 7]);
    t.deepEqual(new kiln.nn.MaxPool2d(2).forward(x).shape, [2, 3, 4, 3]);
    t.deepEqual(new kiln.nn.AvgPool2d(3, { stride: 2, padding: 1 }).forward(x).shape, [2, 3, 4, 4]);
    t.deepEqual(new kiln.nn.AdaptiveAvgPool2d([2, 1]).forward(x).shape, [2, 3, 2, 1]);
    kiln.manualSeed(1);
    const net = new kiln.nn.Sequential(new kiln.nn.Conv2d(3, 6, 3, { padding: 1 }), new kiln.nn.ReLU(), new kiln.nn.MaxPool2d(2),
      new kiln.nn.Conv2d(6, 4, 3, { padding: 1 }), new kiln.nn.AdaptiveAvgPool2d(1), new kiln.nn.Flatten(), new kiln.nn.Linear(4, 2));
    const opt = new kiln.optim.AdamW(net.parameters(), { lr: 0.02, weightDecay: 0 });
    const target = kiln.tensor(Int32Array.from([0, 1]));
    const losses: number[] = [];
    for (let i = 0; i < 15; i++)
      kiln.tidy(() => {
        const loss = kiln.crossEntropy(net.forward(x), target);
        opt.zeroGrad();
        loss.backward();
        opt.step();
        losses.push(loss.item());
      });
    t.true(losses[losses.length - 1] < losses[0] * 0.5, `loss ${losses[0]} -> ${losses[losses.length - 1]}`);
  });
});

// ---------------------------------------------------------------- memory

test('forward and backward leave no tensors behind', (t) => {
  const x = kiln.randn([2, 4, 6, 6], { requiresGrad: true }), w = kiln.randn([6, 2, 3, 3], { requiresGrad: true }), b = kiln.randn([6], { requiresGrad: true });
  const run = () => kiln.tidy(() => {
    const y = kiln.conv2d(x, w, b, { padding: 1, groups: 2 });
    const z = kiln.maxPool2d(y, 2).add(kiln.avgPool2d(y, 2)).add(kiln.adaptiveAvgPool2d(y, [3, 3])).add(kiln.pad(y, [-1, -2, 0, -3]).narrow(3, 0, 3));
    z.sum().backward();
    for (const p of [x, w, b]) { p.grad!.dispose(); p.grad = null; }
  });
  run();
  const before = kiln.memory().tensors;
  for (let i = 0; i < 3; i++) run();
  t.is(kiln.memory().tensors, before);
  kiln.noGrad(() => kiln.conv2d(x, w, b, { groups: 2 }).dispose());
  t.is(kiln.memory().tensors, before);
  for (const p of [x, w, b]) p.dispose();
});

// ---------------------------------------------------------------- errors

test('bad input is a KilnError naming the op and the shapes', (t) => {
  kiln.tidy(() => {
    const x = kiln.randn([2, 4, 5, 5]), w = kiln.randn([6, 4, 3, 3]);
    const err = (f: () => unknown, code: string, msg: RegExp) => {
      const e = t.throws(f, { instanceOf: kiln.KilnError });
      t.is(e?.code as string, code, e?.message);
      t.regex(e?.message ?? '', msg);
    };
    err(() => kiln.conv2d(kiln.randn([4, 5, 5]), w), 'SHAPE_MISMATCH', /conv2d: input must be 4-D \[N, C, H, W\], got input \[4, 5, 5\], weight \[6, 4, 3, 3\]/);
    err(() => kiln.conv2d(x, kiln.randn([6, 4, 3])), 'SHAPE_MISMATCH', /conv2d: weight must be 4-D/);
    err(() => kiln.conv2d(x, kiln.randn([6, 3, 3, 3])), 'SHAPE_MISMATCH', /conv2d: input has 4 channels but weight expects 3 .*input \[2, 4, 5, 5\], weight \[6, 3, 3, 3\]/);
    err(() => kiln.conv2d(x, kiln.randn([6, 2, 3, 3]), null, { groups: 3 }), 'SHAPE_MISMATCH', /conv2d: input channels 4 and output channels 6 must both be divisible by groups 3/);
    err(() => kiln.conv2d(x, kiln.randn([6, 4, 7, 3])), 'SHAPE_MISMATCH', /conv2d: the height kernel spans 7 .* padded input has 5 \(input \[2, 4, 5, 5\], weight \[6, 4, 7, 3\]/);
    err(() => kiln.conv2d(x, w, null, { dilation: 3 }), 'SHAPE_MISMATCH', /conv2d: the height kernel spans 7 \(size 3, dilation 3\)/);
    err(() => kiln.conv2d(x, w, null, { stride: 0 }), 'INVALID_ARGUMENT', /conv2d: stride must be an integer >= 1 or a pair of them, got 0 for input \[2, 4, 5, 5\]/);
    err(() => kiln.conv2d(x, w, null, { padding: -1 }), 'INVALID_ARGUMENT', /conv2d: padding must be an integer >= 0/);
    err(() => kiln.conv2d(x, w, null, { padding: 'same', stride: 2 }), 'INVALID_ARGUMENT', /conv2d: padding 'same' needs stride 1/);
    err(() => kiln.conv2d(x, w, kiln.randn([5])), 'SHAPE_MISMATCH', /conv2d: bias must be \[6\] \(input \[2, 4, 5, 5\], weight \[6, 4, 3, 3\], bias \[5\]\)/);
    err(() => kiln.conv2d(x, w.to('float64')), 'DTYPE_MISMATCH', /conv2d: input float32, weight float64 must have one dtype/);
    err(() => kiln.conv2d(kiln.zeros([1, 4, 3, 3], { dtype: 'int32' }), w), 'DTYPE_MISMATCH', /conv2d: input must be a float tensor/);
    err(() => kiln.conv1d(kiln.randn([2, 4, 2]), kiln.randn([6, 4, 3])), 'SHAPE_MISMATCH', /conv1d: input \[2, 4, 2\], weight \[6, 4, 3\] .*kernel spans 3/);
    err(() => kiln.conv1d(x, kiln.randn([6, 4, 3])), 'SHAPE_MISMATCH', /conv1d: input must be 3-D/);
    err(() => kiln.conv1d(kiln.randn([2, 4, 9]), kiln.randn([6, 4, 3]), null, { stride: 0 }), 'INVALID_ARGUMENT', /conv1d: stride must be an integer >= 1/);
    err(() => kiln.maxPool2d(x, 2, { padding: 2 }), 'INVALID_ARGUMENT', /maxPool2d: padding \[2, 2\] must be at most half the kernel span/);
    err(() => kiln.maxPool2d(x, 6), 'SHAPE_MISMATCH', /maxPool2d: the height kernel spans 6 .*input \[2, 4, 5, 5\]/);
    err(() => kiln.avgPool2d(kiln.randn([5, 5]), 2), 'SHAPE_MISMATCH', /avgPool2d: input must be \[N, C, H, W\] or \[C, H, W\], got \[5, 5\]/);
    err(() => kiln.avgPool2d(x, 2, { stride: [1, 0] }), 'INVALID_ARGUMENT', /avgPool2d: stride must be an integer >= 1/);
    err(() => kiln.adaptiveAvgPool2d(x, 0), 'INVALID_ARGUMENT', /adaptiveAvgPool2d: output size must be an integer >= 1/);
    err(() => kiln.pad(x, [1, 2, 3]), 'INVALID_ARGUMENT', /pad: pads must be an even number/);
    err(() => kiln.pad(x, [-3, -3]), 'SHAPE_MISMATCH', /pad: padding \[-3, -3\] of dimension 3 leaves a negative size for \[2, 4, 5, 5\]/);
  });
});

// ---------------------------------------------------------------- the native im2col / col2im kernels

// Geometry in the addon's order: N, C, H, W, kH, kW, sH, sW, pH (top), pW (left), dH, dW, Ho, Wo.
type Geo = [number, number, number, number, number, number, number, number, number, number, number, number, number, number];

/** cols[n, c, th, tw, oh, ow] = x[n, c, oh sH - pH + th dH, ow sW - pW + tw dW], or pad outside. */
function refIm2col(x: ArrayLike<number>, g: Geo, pad: number): Float64Array {
  const [N, C, H, W, kH, kW, sH, sW, pH, pW, dH, dW, Ho, Wo] = g;
  const out = new Float64Array(N * C * kH * kW * Ho * Wo);
  let q = 0;
  for (let nc = 0; nc < N * C; nc++)
    for (let th = 0; th < kH; th++)
      for (let tw = 0; tw < kW; tw++)
        for (let oh = 0; oh < Ho; oh++)
          for (let ow = 0; ow < Wo; ow++) {
            const ih = oh * sH - pH + th * dH, iw = ow * sW - pW + tw * dW;
            out[q++] = ih >= 0 && ih < H && iw >= 0 && iw < W ? x[(nc * H + ih) * W + iw] : pad;
          }
  return out;
}

/** The adjoint: every column element added into the input element it was read from (padding dropped). */
function refCol2im(cols: ArrayLike<number>, g: Geo): Float64Array {
  const [N, C, H, W, kH, kW, sH, sW, pH, pW, dH, dW, Ho, Wo] = g;
  const dx = new Float64Array(N * C * H * W);
  let q = 0;
  for (let nc = 0; nc < N * C; nc++)
    for (let th = 0; th < kH; th++)
      for (let tw = 0; tw < kW; tw++)
        for (let oh = 0; oh < Ho; oh++)
          for (let ow = 0; ow < Wo; ow++, q++) {
            const ih = oh * sH - pH + th * dH, iw = ow * sW - pW + tw * dW;
            if (ih >= 0 && ih < H && iw >= 0 && iw < W) dx[(nc * H + ih) * W + iw] += cols[q];
          }
  return dx;
}

function columnsCall(fn: 'im2col' | 'col2im', src: kiln.Tensor, dst: kiln.Tensor, g: Geo, pad = 0): void {
  g.forEach((v, i) => { A[i] = v; });
  A[14] = pad;
  N[fn](arg(16, src), arg(19, dst));
}

test('native im2col / col2im match the direct loops (odd shapes, stride, dilation, asymmetric padding, float32 and float64)', (t) => {
  const rng = prng(23);
  const ri = (lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));
  const before = kiln.memory().tensors;
  for (let trial = 0; trial < 30; trial++) {
    const n = ri(1, 3), C = ri(1, 5), kH = ri(1, 4), kW = ri(1, 4), sH = ri(1, 3), sW = ri(1, 3), dH = ri(1, 3), dW = ri(1, 3);
    const pH = ri(0, 3), pW = ri(0, 3), extraH = ri(0, 2), extraW = ri(0, 2);  // extra: bottom / right padding
    const H = Math.max(1, dH * (kH - 1) + 1 - pH - extraH + ri(0, 6)), W = Math.max(1, dW * (kW - 1) + 1 - pW - extraW + ri(0, 6));
    const Ho = Math.floor((H + pH + extraH - dH * (kH - 1) - 1) / sH) + 1, Wo = Math.floor((W + pW + extraW - dW * (kW - 1) - 1) / sW) + 1;
    const g: Geo = [n, C, H, W, kH, kW, sH, sW, pH, pW, dH, dW, Ho, Wo];
    const pad = trial % 3 === 0 ? -Infinity : trial % 3 === 1 ? 0 : 0.5;
    const cfg = JSON.stringify({ g, pad });
    const xv = normals(rng, n * C * H * W), cv = normals(rng, n * C * kH * kW * Ho * Wo);
    const wantCols = refIm2col(xv, g, pad), wantDx = refCol2im(cv, g);
    for (const dtype of ['float32', 'float64'] as const) {
      kiln.tidy(() => {
        const x = kiln.tensor(xv, { shape: [n, C, H, W], dtype });
        const cols = kiln.zeros([wantCols.length], { dtype });
        columnsCall('im2col', x, cols, g, pad);
        t.deepEqual(Array.from(cols.dataSync()), Array.from(wantCols), `im2col ${dtype} ${cfg}`);  // copies: exact
        const c = kiln.tensor(cv, { shape: [cv.length], dtype });
        const dx = kiln.full([xv.length], 123, dtype);  // overwritten, not accumulated
        columnsCall('col2im', c, dx, g);
        t.true(maxDiff(dx.dataSync(), wantDx) < (dtype === 'float64' ? 1e-12 : 1e-5), `col2im ${dtype} ${cfg}`);
      });
    }
  }
  t.is(kiln.memory().tensors, before);
});

test('native col2im is the same bit for bit on 1 and 2 threads', (t) => {
  const g: Geo = [2, 8, 21, 19, 3, 3, 1, 2, 1, 1, 2, 1, 17, 10];
  const cv = normals(prng(5), 2 * 8 * 9 * 17 * 10);
  const threads = kiln.getNumThreads();
  try {
    const run = (n: number) => kiln.tidy(() => {
      kiln.setNumThreads(n);
      const c = kiln.tensor(Float32Array.from(cv), { shape: [cv.length] }), dx = kiln.zeros([2 * 8 * 21 * 19]);
      columnsCall('col2im', c, dx, g);
      return Array.from(dx.dataSync());
    });
    t.deepEqual(run(2), run(1));
  } finally {
    kiln.setNumThreads(threads);
  }
});

test('raw addon: im2col / col2im refuse bad geometry, extents and dtypes with KilnErrors', (t) => {
  const stats0 = N.memoryStats();
  const h = N.alloc(0, 64), h2 = N.alloc(0, 64);  // 16 floats each
  const refAt = (pos: number, handle: number, dtype = 0) => { A[pos] = handle; A[pos + 1] = 0; A[pos + 2] = dtype; };
  const call = (fn: 'im2col' | 'col2im', g: number[], d1 = 0, d2 = 0) => () => {
    g.forEach((v, i) => { A[i] = v; });
    A[14] = 0;
    refAt(16, h, d1);
    refAt(19, h2, d2);
    N[fn](undefined, undefined);
  };
  const throwsCode = (fn: () => void, code: kiln.KilnErrorCode, what: string) => {
    const e = t.throws(fn, { instanceOf: kiln.KilnError }, what) as kiln.KilnError | undefined;
    if (e) t.is(e.code, code, `${what}: ${e.message}`);
  };
  const ok: Geo = [1, 1, 4, 4, 1, 1, 1, 1, 0, 0, 1, 1, 4, 4];  // 16 in, 16 out: fits
  try {
    t.notThrows(call('im2col', ok));
    t.notThrows(call('col2im', ok));
    const bad = (i: number, v: number) => ok.map((x, j) => (j === i ? v : x));
    for (const fn of ['im2col', 'col2im'] as const) {
      throwsCode(call(fn, bad(12, 5)), 'INVALID_ARGUMENT', `${fn}: columns past the end`);
      throwsCode(call(fn, bad(2, 5)), 'INVALID_ARGUMENT', `${fn}: input past the end`);
      throwsCode(call(fn, bad(4, 0)), 'INVALID_ARGUMENT', `${fn}: kernel size 0`);
      throwsCode(call(fn, bad(6, 0)), 'INVALID_ARGUMENT', `${fn}: stride 0`);
      throwsCode(call(fn, bad(11, -1)), 'INVALID_ARGUMENT', `${fn}: negative dilation`);
      throwsCode(call(fn, bad(8, -2)), 'INVALID_ARGUMENT', `${fn}: negative padding`);
      throwsCode(call(fn, bad(0, NaN)), 'INVALID_ARGUMENT', `${fn}: NaN batch`);
      throwsCode(call(fn, bad(1, 1.5)), 'INVALID_ARGUMENT', `${fn}: fractional channels`);
      throwsCode(call(fn, bad(3, 2 ** 40)), 'INVALID_ARGUMENT', `${fn}: width past int32`);
      throwsCode(call(fn, [2 ** 31 - 1, 2 ** 31 - 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 2 ** 31 - 1, 2 ** 31 - 1]), 'INVALID_ARGUMENT', `${fn}: extent overflowing int64`);
      throwsCode(call(fn, ok, 1, 1), 'DTYPE_MISMATCH', `${fn}: int32 operands`);
      throwsCode(call(fn, ok, 0, 2), 'DTYPE_MISMATCH', `${fn}: mixed float dtypes`);
      throwsCode(call(fn, ok, 2, 2), 'INVALID_ARGUMENT', `${fn}: float64 past the end of 64 bytes`);
    }
  } finally {
    t.true(N.free(h));
    t.true(N.free(h2));
  }
  A[16] = 987654321;
  throwsCode(() => { ok.forEach((v, i) => { A[i] = v; }); N.im2col(undefined, undefined); }, 'DISPOSED', 'forged handle');
  t.is(N.memoryStats().hostAllocations, stats0.hostAllocations, 'no native allocation leaked');
  t.deepEqual(kiln.tidy(() => kiln.conv1d(kiln.ones([1, 1, 3]), kiln.ones([1, 1, 2])).toArray()), [[[2, 2]]]);
});
