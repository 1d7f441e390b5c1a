// Statistics, smooth activations, sampling, the extra losses and their modules (src/ops/math-extra.ts,
// src/ops/losses.ts): forward against plain references, gradients by gradcheck (checkOp), sampling by
// fixed-seed statistics.
import test from 'ava';
import * as kiln from '../src/index.js';
import type { Tensor } from '../src/index.js';
import { checkOp } from './helpers/checkop.js';
import * as R from './helpers/reference.js';
import type { Ref } from './helpers/reference.js';

// ---------------------------------------------------------------- references

/** f of each reduced group (as R.reduce, any function of the group). */
function reduceWith(a: Ref, axes: number | number[] | undefined, keepdims: boolean, f: (g: number[]) => number): Ref {
  const ax = R.normAxes(axes, a.shape.length);
  const keepShape = a.shape.map((d, i) => (ax.includes(i) ? 1 : d));
  const groups: number[][] = Array.from({ length: R.numel(keepShape) }, () => []);
  for (let i = 0; i < a.data.length; i++) {
    const idx = R.unravel(i, a.shape).map((v, d) => (ax.includes(d) ? 0 : v));
    groups[R.ravel(idx, keepShape)].push(a.data[i]);
  }
  return { data: Float64Array.from(groups, f), shape: keepdims ? keepShape : a.shape.filter((_, i) => !ax.includes(i)) };
}
const twoPassVar = (correction: number) => (g: number[]) => {
  const mu = g.reduce((p, q) => p + q, 0) / g.length;
  return g.reduce((p, q) => p + (q - mu) ** 2, 0) / Math.max(0, g.length - correction);
};
const pnorm = (p: number) => (g: number[]) => g.reduce((s, v) => s + Math.abs(v) ** p, 0) ** (1 / p);
const softplusRef = (beta: number, thr: number) => (v: number) => (v * beta > thr ? v : Math.log1p(Math.exp(beta * v)) / beta);
const logSigmoidRef = (v: number) => Math.min(v, 0) - Math.log1p(Math.exp(-Math.abs(v)));
const meanOf = (r: Ref, red: 'mean' | 'sum' | 'none' = 'mean'): Ref => {
  if (red === 'none') return r;
  const s = r.data.reduce((p, q) => p + q, 0);
  return R.scalar(red === 'sum' ? s : s / r.data.length);
};

// ---------------------------------------------------------------- statistics

checkOp('var over all (unbiased)', [[3, 4]], (x) => x.var(), (x) => reduceWith(x, undefined, false, twoPassVar(1)));
checkOp('var axis 1 keepdim, correction 0', [[3, 5]], (x) => kiln.variance(x, 1, { correction: 0, keepdim: true }),
  (x) => reduceWith(x, 1, true, twoPassVar(0)));
checkOp('var over axes [0, 2]', [[2, 3, 4]], (x) => x.var([0, 2]), (x) => reduceWith(x, [0, 2], false, twoPassVar(1)));
checkOp('std axis 0', [[5, 3]], (x) => x.std(0), (x) => R.map(reduceWith(x, 0, false, twoPassVar(1)), Math.sqrt));
checkOp('std axis -1 correction 0 keepdim', [[2, 6]], (x) => kiln.std(x, -1, { correction: 0, keepdim: true }),
  (x) => R.map(reduceWith(x, -1, true, twoPassVar(0)), Math.sqrt));
checkOp('prod over all', [{ shape: [2, 3], low: 0.5, high: 1.5 }], (x) => x.prod(), (x) => reduceWith(x, undefined, false, (g) => g.reduce((p, q) => p * q, 1)));
checkOp('prod axis 1 keepdim with zeros (one and two per row)', [{ shape: [3, 4], values: [1.5, 0, -2, 0.5, 0, 3, 0, 2, 1, -1, 2, 0.5] }],
  (x) => x.prod(1, true), (x) => reduceWith(x, 1, true, (g) => g.reduce((p, q) => p * q, 1)));
checkOp('prod axis 0 of a transposed view', [[3, 2]], (x) => kiln.prod(x.T, 0), (x) => reduceWith(R.transpose(x), 0, false, (g) => g.reduce((p, q) => p * q, 1)));
checkOp('norm p=2 over all', [[3, 4]], (x) => x.norm(), (x) => reduceWith(x, undefined, false, pnorm(2)));
checkOp('norm p=1 axis 1', [[3, 4]], (x) => x.norm(1, 1), (x) => reduceWith(x, 1, false, pnorm(1)));
checkOp('norm p=3 axis 0 keepdim', [[4, 3]], (x) => kiln.norm(x, 3, 0, true), (x) => reduceWith(x, 0, true, pnorm(3)));
checkOp('norm p=Infinity axis -1', [[3, 5]], (x) => x.norm(Infinity, -1), (x) => reduceWith(x, -1, false, (g) => Math.max(...g.map(Math.abs))));
checkOp('norm p=0 counts nonzeros', [{ shape: [2, 3], values: [0, 1, -2, 0, 0, 3], noGrad: true }], (x) => x.norm(0, 1),
  (x) => reduceWith(x, 1, false, (g) => g.filter((v) => v !== 0).length));

test('var / std match the two-pass formula on large-offset data; N - correction <= 0 gives NaN / inf as PyTorch', (t) => {
  const vals = Float64Array.from({ length: 50 }, (_, i) => 1e8 + Math.sin(i));
  const v = kiln.variance(kiln.tensor(vals)).item();
  const want = twoPassVar(1)(Array.from(vals));
  t.true(Math.abs(v - want) <= 1e-9 * want, `${v} vs ${want}`);
  t.true(Number.isNaN(kiln.tensor([3], { dtype: 'float64' }).var().item()));
  t.is(kiln.tensor([1, 2], { dtype: 'float64' }).var(undefined, { correction: 2 }).item(), Infinity);
});

test('prod gradient: one zero gets the product of the rest, two zeros give 0', (t) => {
  const x = kiln.tensor([[2, 0, 3], [0, 0, 5]], { dtype: 'float64', requiresGrad: true });
  x.prod(1).sum().backward();
  t.deepEqual(Array.from(x.grad!.dataSync()), [0, 6, 0, 0, 0, 0]);
});

test('norm gradient is 0 (not NaN) at the zero vector', (t) => {
  for (const p of [2, 3]) {
    const x = kiln.zeros([3], { dtype: 'float64', requiresGrad: true });
    x.norm(p).backward();
    t.deepEqual(Array.from(x.grad!.dataSync()), [0, 0, 0], `p = ${p}`);
  }
});

// ---------------------------------------------------------------- activations

checkOp('erf', [{ shape: [4, 5], low: -3, high: 3 }], (x) => x.erf(), (x) => R.map(x, R.erf));
checkOp('silu', [{ shape: [3, 4], low: -4, high: 4 }], (x) => x.silu(), (x) => R.map(x, (v) => v * R.sigmoid(v)));
checkOp('softplus default', [{ shape: [3, 4], low: -5, high: 5 }], (x) => x.softplus(), (x) => R.map(x, softplusRef(1, 20)));
// beta 2, threshold 1: both branches (x > 0.5 passes through); no input sits at the kink.
checkOp('softplus beta 2 threshold 1', [{ shape: [8], values: [-3, -1, -0.2, 0.1, 0.3, 0.7, 1.5, 4] }], (x) => kiln.softplus(x, 2, 1),
  (x) => R.map(x, softplusRef(2, 1)));
checkOp('logSigmoid', [{ shape: [3, 4], low: -6, high: 6 }], (x) => kiln.logSigmoid(x), (x) => R.map(x, logSigmoidRef));
checkOp('mish', [{ shape: [3, 4], low: -4, high: 4 }], (x) => kiln.mish(x), (x) => R.map(x, (v) => v * Math.tanh(Math.log1p(Math.exp(v)))));

test('erf: float64 within 1e-14 of the high-precision series on [-8, 8], float32 within 1.2e-7; special values', (t) => {
  const xs = Float64Array.from({ length: 3201 }, (_, i) => -8 + i / 200);
  const got64 = kiln.erf(kiln.tensor(xs)).dataSync();
  const got32 = kiln.erf(kiln.tensor(xs, { dtype: 'float32' })).dataSync();
  let e64 = 0, e32 = 0;
  for (let i = 0; i < xs.length; i++) {
    const want = R.erf(xs[i]);
    e64 = Math.max(e64, Math.abs(got64[i] - want));
    e32 = Math.max(e32, Math.abs(got32[i] - R.erf(Math.fround(xs[i]))));
  }
  t.true(e64 < 1e-14, `float64 error ${e64}`);
  t.true(e32 < 1.2e-7, `float32 error ${e32}`);
  // Relative accuracy near 0, and the special values.
  const tiny = kiln.erf(kiln.tensor([1e-10, -1e-200], { dtype: 'float64' })).dataSync();
  t.true(Math.abs(tiny[0] / (1e-10 * 2 / Math.sqrt(Math.PI)) - 1) < 1e-15);
  t.true(Math.abs(tiny[1] / (-1e-200 * 2 / Math.sqrt(Math.PI)) - 1) < 1e-15);
  const sp = kiln.erf(kiln.tensor([Infinity, -Infinity, NaN, -0, 1e300], { dtype: 'float64' })).dataSync();
  t.is(sp[0], 1);
  t.is(sp[1], -1);
  t.true(Number.isNaN(sp[2]));
  t.true(Object.is(sp[3], -0));
  t.is(sp[4], 1);
  const i32 = kiln.erf(kiln.tensor([0, 1], { dtype: 'int32' }));
  t.is(i32.dtype, 'float32');
});

test('erf gradient is 2/sqrt(pi) exp(-x^2); softplus / logSigmoid stay finite at extreme inputs', (t) => {
  const x = kiln.tensor([-2, -0.3, 0, 0.7, 3], { dtype: 'float64', requiresGrad: true });
  kiln.erf(x).sum().backward();
  const g = x.grad!.dataSync();
  [-2, -0.3, 0, 0.7, 3].forEach((v, i) => t.true(Math.abs(g[i] - (2 / Math.sqrt(Math.PI)) * Math.exp(-v * v)) < 1e-15));
  const big = kiln.tensor([-1000, 1000], { requiresGrad: true });
  const sp = kiln.softplus(big), ls = kiln.logSigmoid(big);
  t.deepEqual(Array.from(sp.dataSync()), [0, 1000]);
  t.deepEqual(Array.from(ls.dataSync()), [-1000, 0]);
  kiln.add(sp, ls).sum().backward();
  t.deepEqual(Array.from(big.grad!.dataSync()), [1, 1]);
});

test('half dtypes: erf / silu / softplus / var compute and keep the dtype', (t) => {
  for (const dtype of ['float16', 'bfloat16'] as const) {
    const x = kiln.tensor([-1, 0.5, 2], { dtype });
    for (const [name, f, ref] of [
      ['erf', (a: Tensor) => a.erf(), R.erf],
      ['silu', (a: Tensor) => a.silu(), (v: number) => v * R.sigmoid(v)],
      ['softplus', (a: Tensor) => a.softplus(), softplusRef(1, 20)],
    ] as const) {
      const y = f(x);
      t.is(y.dtype, dtype, name);
      Array.from(y.dataSync()).forEach((v, i) => t.true(Math.abs(v - ref([-1, 0.5, 2][i])) < 2e-2, `${dtype} ${name}`));
    }
    t.is(x.var().dtype, dtype);
  }
});

// ---------------------------------------------------------------- losses

const bceRef = (x: number, y: number, w = 1, pw = 1) => w * ((1 - y) * x - (1 + (pw - 1) * y) * logSigmoidRef(x));
checkOp('bceWithLogits mean', [[4, 3], { shape: [4, 3], low: 0, high: 1 }], (x, y) => kiln.bceWithLogits(x, y),
  (x, y) => meanOf(R.zip(x, y, (a, b) => bceRef(a, b))));
checkOp('bceWithLogits weight and posWeight, sum', [[4, 3], { shape: [4, 3], low: 0, high: 1 }, { shape: [4, 1], low: 0.5, high: 2, noGrad: true },
  { shape: [3], low: 0.5, high: 3, noGrad: true }],
(x, y, w, pw) => kiln.bceWithLogits(x, y, { weight: w, posWeight: pw, reduction: 'sum' }),
(x, y, w, pw) => meanOf(R.zipN([x, y, w, pw], bceRef), 'sum'));
checkOp('bceWithLogits none', [[5], { shape: [5], low: 0, high: 1 }], (x, y) => kiln.bceWithLogits(x, y, { reduction: 'none' }),
  (x, y) => R.zip(x, y, (a, b) => bceRef(a, b)));
const bceProbRef = (p: number, y: number) => -(y * Math.max(Math.log(p), -100) + (1 - y) * Math.max(Math.log1p(-p), -100));
checkOp('binaryCrossEntropy mean', [{ shape: [3, 4], low: 0.05, high: 0.95 }, { shape: [3, 4], low: 0, high: 1 }],
  (p, y) => kiln.binaryCrossEntropy(p, y), (p, y) => meanOf(R.zip(p, y, bceProbRef)));
checkOp('binaryCrossEntropy weight, none', [{ shape: [6], low: 0.05, high: 0.95 }, { shape: [6], low: 0, high: 1 }, { shape: [6], low: 0, high: 2, noGrad: true }],
  (p, y, w) => kiln.binaryCrossEntropy(p, y, { weight: w, reduction: 'none' }), (p, y, w) => R.zipN([p, y, w], (a, b, c) => c * bceProbRef(a, b)));

const nllRef = (lp: Ref, t: Ref, o: { ignore?: number; weight?: Ref; reduction?: 'mean' | 'sum' | 'none' } = {}): Ref => {
  const C = lp.shape[lp.shape.length - 1], ignore = o.ignore ?? -100;
  const losses = new Float64Array(t.data.length);
  let wsum = 0;
  for (let r = 0; r < t.data.length; r++) {
    const c = t.data[r];
    if (c === ignore) continue;
    const w = o.weight ? o.weight.data[c] : 1;
    losses[r] = -w * lp.data[r * C + c];
    wsum += w;
  }
  if (o.reduction === 'none') return { data: losses, shape: t.shape.slice() };
  const s = losses.reduce((p, q) => p + q, 0);
  return R.scalar(o.reduction === 'sum' ? s : s / wsum);
};
const nllTargets = { ints: [0, 3, -100, 2, 1, 3], shape: [6] };
checkOp('nllLoss mean with an ignored row', [[6, 4], nllTargets], (l, t) => kiln.nllLoss(l, t), (l, t) => nllRef(l, t));
checkOp('nllLoss class weights, mean', [[6, 4], nllTargets, { shape: [4], low: 0.5, high: 2, noGrad: true }],
  (l, t, w) => kiln.nllLoss(l, t, { weight: w }), (l, t, w) => nllRef(l, t, { weight: w }));
checkOp('nllLoss sum, custom ignoreIndex, 3-D', [[2, 3, 4], { ints: [0, 3, 1, 2, 1, 3], shape: [2, 3] }],
  (l, t) => kiln.nllLoss(l, t, { ignoreIndex: 3, reduction: 'sum' }), (l, t) => nllRef(l, t, { ignore: 3, reduction: 'sum' }));
checkOp('nllLoss none', [[3, 5], { ints: [4, 0, 2], shape: [3] }], (l, t) => kiln.nllLoss(l, t, { reduction: 'none' }),
  (l, t) => nllRef(l, t, { reduction: 'none' }));

// Differences kept away from 0 and from the beta / delta kinks, where the derivative jumps.
const diffs = { shape: [2, 5], values: [-2.5, -1.2, -0.6, -0.3, -0.05, 0.1, 0.4, 0.8, 1.4, 3] };
const zerosIn = { shape: [2, 5], values: new Array(10).fill(0), noGrad: true };
const smoothRef = (beta: number) => (d: number) => (Math.abs(d) < beta ? (0.5 * d * d) / beta : Math.abs(d) - 0.5 * beta);
checkOp('l1Loss mean', [diffs, zerosIn], (a, b) => kiln.l1Loss(a, b), (a, b) => meanOf(R.zip(a, b, (x, y) => Math.abs(x - y))));
checkOp('l1Loss sum, broadcast target', [[3, 4], [4]], (a, b) => kiln.l1Loss(a, b, 'sum'), (a, b) => meanOf(R.zip(a, b, (x, y) => Math.abs(x - y)), 'sum'));
checkOp('smoothL1Loss beta 1', [diffs, zerosIn], (a, b) => kiln.smoothL1Loss(a, b), (a, b) => meanOf(R.zip(a, b, (x, y) => smoothRef(1)(x - y))));
checkOp('smoothL1Loss beta 0.5, none', [diffs, zerosIn], (a, b) => kiln.smoothL1Loss(a, b, { beta: 0.5, reduction: 'none' }),
  (a, b) => R.zip(a, b, (x, y) => smoothRef(0.5)(x - y)));
checkOp('huberLoss delta 0.7, sum', [diffs, zerosIn], (a, b) => kiln.huberLoss(a, b, { delta: 0.7, reduction: 'sum' }),
  (a, b) => meanOf(R.zip(a, b, (x, y) => 0.7 * smoothRef(0.7)(x - y)), 'sum'));
// A zero target has no two-sided derivative: that input is not differentiated here.
const klTarget = { shape: [3, 4], values: [0.1, 0.2, 0.3, 0.4, 0, 0.5, 0.25, 0.25, 0.7, 0.1, 0.1, 0.1], noGrad: true };
const klRef = (x: number, y: number) => (y === 0 ? 0 : y * (Math.log(y) - x));
checkOp('klDiv batchmean (a zero target)', [[3, 4], klTarget], (x, y) => kiln.klDiv(x, y, { reduction: 'batchmean' }),
  (x, y) => R.scalar(meanOf(R.zip(x, y, klRef), 'sum').data[0] / 3));
checkOp('klDiv mean', [[3, 4], klTarget], (x, y) => kiln.klDiv(x, y), (x, y) => meanOf(R.zip(x, y, klRef)));
checkOp('klDiv target gradient, sum', [[2, 3], { shape: [2, 3], low: 0.1, high: 1 }], (x, y) => kiln.klDiv(x, y, { reduction: 'sum' }),
  (x, y) => meanOf(R.zip(x, y, klRef), 'sum'));
checkOp('klDiv logTarget, none', [[3, 4], [3, 4]], (x, y) => kiln.klDiv(x, y, { logTarget: true, reduction: 'none' }),
  (x, y) => R.zip(x, y, (a, b) => Math.exp(b) * (b - a)));

test('losses against hand-computed values', (t) => {
  const close = (a: number, b: number, what: string) => t.true(Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);
  const f64 = (v: number[]) => kiln.tensor(v, { dtype: 'float64' });
  // bce(0, 1) = log 2; bce(2, 0) = 2 + log(1 + e^-2)
  close(kiln.bceWithLogits(f64([0, 2]), f64([1, 0]), { reduction: 'sum' }).item(), Math.LN2 + 2 + Math.log1p(Math.exp(-2)), 'bceWithLogits');
  close(kiln.binaryCrossEntropy(f64([0.5, 0.9]), f64([1, 0])).item(), (Math.LN2 - Math.log(0.1)) / 2, 'binaryCrossEntropy');
  close(kiln.l1Loss(f64([1, -2]), f64([0, 0])).item(), 1.5, 'l1Loss');
  close(kiln.smoothL1Loss(f64([0.5, 3]), f64([0, 0])).item(), (0.125 + 2.5) / 2, 'smoothL1Loss');
  close(kiln.huberLoss(f64([0.5, 3]), f64([0, 0]), { delta: 2 }).item(), (0.125 + 2 * (3 - 1)) / 2, 'huberLoss');
  close(kiln.nllLoss(f64([-1, -2, -3]), kiln.tensor(1, { dtype: 'int32' }).reshape([])).item(), 2, 'nllLoss 0-d target');
  // KL(p || q) for p = [0.5, 0.5], q = [0.25, 0.75] over a batch of one.
  const kl = kiln.klDiv(f64([Math.log(0.25), Math.log(0.75)]).reshape([1, 2]), f64([0.5, 0.5]).reshape([1, 2]), { reduction: 'batchmean' }).item();
  close(kl, 0.5 * Math.log(0.5 / 0.25) + 0.5 * Math.log(0.5 / 0.75), 'klDiv');
});

test('nllLoss of logSoftmax equals crossEntropy (ignored rows, 3-D)', (t) => {
  kiln.manualSeed(1);
  const x = kiln.randn([2, 3, 5], { dtype: 'float64' });
  const tg = kiln.tensor([[0, 4, -100], [2, 2, 1]], { dtype: 'int32' });
  for (const reduction of ['mean', 'sum'] as const) {
    const a = kiln.nllLoss(x.logSoftmax(), tg, { reduction }).item(), b = kiln.crossEntropy(x, tg, { reduction }).item();
    t.true(Math.abs(a - b) < 1e-12, `${reduction}: ${a} vs ${b}`);
  }
});

test('binaryCrossEntropy at p = 0 and 1 is finite, with finite gradients (clamped log, as PyTorch)', (t) => {
  const p = kiln.tensor([0, 1, 0, 1], { dtype: 'float64', requiresGrad: true });
  const y = kiln.tensor([0, 1, 1, 0], { dtype: 'float64', requiresGrad: true });
  const loss = kiln.binaryCrossEntropy(p, y, { reduction: 'sum' });
  t.is(loss.item(), 200);
  loss.backward();
  for (const g of [...p.grad!.dataSync(), ...y.grad!.dataSync()]) t.true(Number.isFinite(g));
  const big = kiln.tensor([-200, 200], { requiresGrad: true });
  const l2 = kiln.bceWithLogits(big, kiln.tensor([1, 0]), { reduction: 'sum' });
  t.is(l2.item(), 400);
  l2.backward();
  t.deepEqual(Array.from(big.grad!.dataSync()), [-1, 1]);
});

// ---------------------------------------------------------------- sampling

/** Pearson chi-square of observed counts against expected probabilities. */
function chiSquare(counts: number[], probs: number[], n: number): number {
  let s = 0;
  probs.forEach((p, i) => { if (p > 0) s += (counts[i] - n * p) ** 2 / (n * p); });
  return s;
}
const countsOf = (xs: ArrayLike<number>, k: number) => {
  const c = new Array(k).fill(0);
  for (const v of Array.from(xs)) c[v]++;
  return c;
};

test('multinomial with replacement: frequencies match the weights (chi-square), zero weight never drawn', (t) => {
  kiln.manualSeed(1234);
  const w = [1, 2, 3, 4, 0];
  const n = 20000;
  const s = kiln.multinomial(kiln.tensor(w), n, { replacement: true });
  t.deepEqual(s.shape, [n]);
  t.is(s.dtype, 'int32');
  const c = countsOf(s.dataSync(), 5);
  t.is(c[4], 0);
  // 3 degrees of freedom: P(chi2 > 30) < 2e-6 (and the seed is fixed).
  t.true(chiSquare(c, w.map((v) => v / 10), n) < 30, JSON.stringify(c));
  // Batched rows sample from their own distributions.
  const rows = kiln.multinomial(kiln.tensor([[0, 0, 1], [1, 0, 0]], { dtype: 'float64' }), 7, { replacement: true });
  t.deepEqual(Array.from(rows.dataSync()), [2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0]);
});

test('multinomial with replacement searches in chunks when [B, n, C] is large; zero weights still never drawn', (t) => {
  kiln.manualSeed(5);
  const w = Float64Array.from({ length: 2000 }, (_, i) => (i % 2 === 0 ? 1 + (i % 7) : 0));
  const s = kiln.multinomial(kiln.tensor(w), 5000, { replacement: true }).dataSync();  // 10M comparisons: 3 chunks
  t.true(Array.from(s).every((v) => v >= 0 && v < 2000 && v % 2 === 0));
  t.true(new Set(s).size > 900);
});

test('multinomial without replacement: distinct draws, first draw ~ weights, all of C is a permutation', (t) => {
  kiln.manualSeed(99);
  const w = [0.5, 0.3, 0.2, 0];
  const B = 6000;
  const probs = kiln.tensor(w, { dtype: 'float64' }).reshape([1, 4]).expand([B, 4]).contiguous();
  const s = kiln.multinomial(probs, 3);
  t.deepEqual(s.shape, [B, 3]);
  const v = s.dataSync();
  const first: number[] = [];
  for (let r = 0; r < B; r++) {
    const row = [v[3 * r], v[3 * r + 1], v[3 * r + 2]];
    if (new Set(row).size !== 3 || row.includes(3)) return t.fail(`row ${r}: ${row}`);
    first.push(row[0]);
  }
  t.true(chiSquare(countsOf(first, 4), w, B) < 25, JSON.stringify(countsOf(first, 4)));
  // Second draw given the first is 0: 0.3 / 0.5 vs 0.2 / 0.5.
  const second = v.filter((_, i) => i % 3 === 1 && v[i - 1] === 0);
  const c2 = countsOf(second, 4);
  t.true(chiSquare(c2, [0, 0.6, 0.4, 0], second.length) < 20, JSON.stringify(c2));
  const perm = Array.from(kiln.multinomial(kiln.tensor([1, 1, 1, 1, 1]), 5).dataSync()).sort();
  t.deepEqual(perm, [0, 1, 2, 3, 4]);
});

test('sampling is reproducible under manualSeed, and a seed option leaves the global stream alone', (t) => {
  const probs = kiln.tensor([0.2, 0.3, 0.5]);
  const draw = () => [
    ...kiln.multinomial(probs, 10, { replacement: true }).dataSync(), ...kiln.multinomial(probs, 2).dataSync(),
    ...kiln.bernoulli(kiln.full([10], 0.5)).dataSync(), ...kiln.randperm(10).dataSync(),
  ];
  kiln.manualSeed(7);
  const a = draw();
  kiln.manualSeed(7);
  t.deepEqual(draw(), a);
  const before = kiln.getRngState();
  const s1 = kiln.randperm(20, { seed: 5 }).dataSync(), s2 = kiln.randperm(20, { seed: 5 }).dataSync();
  t.deepEqual(Array.from(s1), Array.from(s2));
  t.deepEqual(kiln.multinomial(probs, 8, { replacement: true, seed: 3 }).dataSync(), kiln.multinomial(probs, 8, { replacement: true, seed: 3 }).dataSync());
  t.deepEqual(kiln.getRngState(), before);
});

test('bernoulli: mean matches p, values 0 / 1 in p\'s dtype, p = 0 and 1 exact', (t) => {
  kiln.manualSeed(2024);
  const n = 20000;
  const p = kiln.concat([kiln.full([n], 0.3, 'float64'), kiln.zeros([5], { dtype: 'float64' }), kiln.ones([5], { dtype: 'float64' })]);
  const b = kiln.bernoulli(p);
  t.is(b.dtype, 'float64');
  const v = b.dataSync();
  t.true(Array.from(v).every((x) => x === 0 || x === 1));
  const m = Array.from(v.subarray(0, n)).reduce((s, x) => s + x, 0) / n;
  t.true(Math.abs(m - 0.3) < 5 * Math.sqrt(0.3 * 0.7 / n), `mean ${m}`);
  t.deepEqual(Array.from(v.subarray(n)), [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
  t.is(kiln.bernoulli(kiln.full([3], 0.5, 'float16')).dtype, 'float16');
});

test('randperm: a permutation, uniform over the 24 orders of 4 (chi-square)', (t) => {
  kiln.manualSeed(11);
  t.deepEqual(Array.from(kiln.randperm(1000).dataSync()).sort((a, b) => a - b), Array.from({ length: 1000 }, (_, i) => i));
  t.deepEqual(kiln.randperm(0).shape, [0]);
  // 2400 permutations of 4 at once: the order of each row of uniforms is randperm's construction.
  const counts = new Map<string, number>();
  for (let i = 0; i < 2400; i++) {
    const key = Array.from(kiln.randperm(4).dataSync()).join('');
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  t.is(counts.size, 24);
  // 23 degrees of freedom: P(chi2 > 70) < 1e-6.
  t.true(chiSquare([...counts.values()], new Array(24).fill(1 / 24), 2400) < 70);
});

// ---------------------------------------------------------------- modules and methods

test('modules: SiLU, Softplus, LogSigmoid, Mish, Identity, Flatten forward', (t) => {
  const x = kiln.tensor([[-1, 0.5], [2, -3]]);
  const close = (y: Tensor, f: (v: number) => number, what: string) =>
    Array.from(y.dataSync()).forEach((v, i) => t.true(Math.abs(v - f([-1, 0.5, 2, -3][i])) < 1e-6, what));
  close(new kiln.nn.SiLU().forward(x), (v) => v * R.sigmoid(v), 'SiLU');
  close(new kiln.nn.Softplus(2, 3).forward(x), softplusRef(2, 3), 'Softplus');
  close(new kiln.nn.LogSigmoid().forward(x), logSigmoidRef, 'LogSigmoid');
  close(new kiln.nn.Mish().forward(x), (v) => v * Math.tanh(Math.log1p(Math.exp(v))), 'Mish');
  t.is(new kiln.nn.Identity().forward(x), x);
  const z = kiln.zeros([2, 3, 4, 5]);
  t.deepEqual(new kiln.nn.Flatten().forward(z).shape, [2, 60]);
  t.deepEqual(new kiln.nn.Flatten(0, 2).forward(z).shape, [24, 5]);
  t.deepEqual(new kiln.nn.Sequential(new kiln.nn.Flatten(), new kiln.nn.Linear(60, 3), new kiln.nn.SiLU()).forward(z).shape, [2, 3]);
});

checkOp('rmsNorm with weight over two trailing dims', [[2, 3, 4], [3, 4]], (x, w) => kiln.nn.rmsNorm(x, [3, 4], w, 1e-6), (x, w) => {
  const out = new Float64Array(x.data.length);
  for (let r = 0; r < 2; r++) {
    const row = x.data.subarray(r * 12, r * 12 + 12);
    const rms = 1 / Math.sqrt(row.reduce((s, v) => s + v * v, 0) / 12 + 1e-6);
    for (let j = 0; j < 12; j++) out[r * 12 + j] = row[j] * rms * w.data[j];
  }
  return { data: out, shape: x.shape.slice() };
});

test('RMSNorm and LayerNorm modules take a number or an array', (t) => {
  const rms = new kiln.nn.RMSNorm([3, 4]);
  t.deepEqual(rms.weight!.shape, [3, 4]);
  t.is(rms.parameters().length, 1);
  kiln.manualSeed(3);
  const x = kiln.randn([2, 3, 4], { dtype: 'float32' });
  const y = rms.forward(x);
  const row = Array.from(x.dataSync()).slice(0, 12);
  const scale = 1 / Math.sqrt(row.reduce((s, v) => s + v * v, 0) / 12 + 2 ** -23);
  t.true(Math.abs(y.dataSync()[0] - row[0] * scale) < 1e-5);
  t.is(new kiln.nn.RMSNorm(4, { elementwiseAffine: false }).parameters().length, 0);
  const ln = new kiln.nn.LayerNorm([3, 4]);
  t.deepEqual(ln.weight!.shape, [3, 4]);
  t.deepEqual(ln.forward(x).shape, [2, 3, 4]);
  t.deepEqual(new kiln.nn.LayerNorm(4).weight!.shape, [4]);
});

test('tensor methods: sin, cos, reciprocal, log1p, expm1, sign, floor, double', (t) => {
  const x = kiln.tensor([0.5, -0.5, 2]);
  const v = [0.5, -0.5, 2];
  const same = (y: Tensor, f: (a: number) => number, what: string) =>
    Array.from(y.dataSync()).forEach((g, i) => t.true(Math.abs(g - Math.fround(f(v[i]))) < 1e-6, what));
  same(x.sin(), Math.sin, 'sin');
  same(x.cos(), Math.cos, 'cos');
  same(x.reciprocal(), (a) => 1 / a, 'reciprocal');
  same(x.log1p(), Math.log1p, 'log1p');
  same(x.expm1(), Math.expm1, 'expm1');
  same(x.sign(), Math.sign, 'sign');
  same(x.floor(), Math.floor, 'floor');
  t.is(x.double().dtype, 'float64');
  t.is(x.double().float().dtype, 'float32');
});

// ---------------------------------------------------------------- errors

test('bad input is a KilnError naming the op', (t) => {
  const f = kiln.tensor([[0.2, 0.8], [0.5, 0.5]]);
  const cases: [() => unknown, string, RegExp][] = [
    [() => kiln.variance(kiln.tensor([1, 2], { dtype: 'int32' })), 'DTYPE_MISMATCH', /^var: .*int32 \[2\]/],
    [() => kiln.variance(f, 0, { correction: NaN }), 'INVALID_ARGUMENT', /^var: correction/],
    [() => kiln.prod(kiln.tensor([1, 2], { dtype: 'int32' })), 'DTYPE_MISMATCH', /^prod: .*int64/],
    [() => kiln.norm(f, 'nuc' as never), 'INVALID_ARGUMENT', /^norm: p must be/],
    [() => f.var(5), 'INVALID_ARGUMENT', /var/],
    [() => kiln.softplus(f, 0), 'INVALID_ARGUMENT', /^softplus: beta/],
    [() => kiln.multinomial(kiln.tensor([0.5, -0.1]), 1), 'INVALID_ARGUMENT', /^multinomial: .*non-negative/],
    [() => kiln.multinomial(kiln.tensor([[0, 0], [1, 1]]), 1), 'INVALID_ARGUMENT', /^multinomial: .*sums to 0/],
    [() => kiln.multinomial(kiln.tensor([1, NaN]), 1), 'INVALID_ARGUMENT', /finite/],
    [() => kiln.multinomial(f, 3), 'INVALID_ARGUMENT', /without replacement from 2 categories/],
    [() => kiln.multinomial(kiln.tensor([1, 0, 1]), 3), 'INVALID_ARGUMENT', /2 nonzero categories/],
    [() => kiln.multinomial(kiln.zeros([2, 2, 2]), 1), 'SHAPE_MISMATCH', /^multinomial: probs must be \[C\] or \[B, C\], got \[2, 2, 2\]/],
    [() => kiln.multinomial(f, 0, { replacement: true }), 'INVALID_ARGUMENT', /numSamples/],
    [() => kiln.bernoulli(kiln.tensor([0.5, 1.5])), 'INVALID_ARGUMENT', /^bernoulli: p \[2\] must lie in \[0, 1\]/],
    [() => kiln.randperm(-1), 'INVALID_ARGUMENT', /^randperm/],
    [() => kiln.bceWithLogits(f, kiln.zeros([2])), 'SHAPE_MISMATCH', /^bceWithLogits: target \[2\] must have the input's shape \[2, 2\]/],
    [() => kiln.bceWithLogits(f, f, { reduction: 'avg' as never }), 'INVALID_ARGUMENT', /^bceWithLogits: reduction/],
    [() => kiln.bceWithLogits(f, f, { posWeight: kiln.ones([3]) }), 'SHAPE_MISMATCH', /^bceWithLogits: shapes \[2, 2\] and \[3\]/],
    [() => kiln.binaryCrossEntropy(f, kiln.tensor([[1, 0], [0, 1]], { dtype: 'int32' })), 'DTYPE_MISMATCH', /^binaryCrossEntropy/],
    [() => kiln.nllLoss(f, kiln.tensor([0, 2], { dtype: 'int32' })), 'INDEX_OUT_OF_RANGE', /^nllLoss: target 2 at position 1 of \[2\] is outside \[0, 2\)/],
    [() => kiln.nllLoss(f, kiln.tensor([0, 1, 1], { dtype: 'int32' })), 'SHAPE_MISMATCH', /^nllLoss: logProbs \[2, 2\] and targets \[3\]/],
    [() => kiln.nllLoss(f, kiln.tensor([0, 1])), 'DTYPE_MISMATCH', /targets must be int32/],
    [() => kiln.nllLoss(f, kiln.tensor([0, 1], { dtype: 'int32' }), { weight: kiln.ones([3]) }), 'SHAPE_MISMATCH', /weight \[3\] for 2 classes/],
    [() => kiln.l1Loss(kiln.zeros([2]), kiln.zeros([3, 2])), 'SHAPE_MISMATCH', /^l1Loss: target \[3, 2\] does not broadcast/],
    [() => kiln.smoothL1Loss(f, f, { beta: -1 }), 'INVALID_ARGUMENT', /^smoothL1Loss: beta/],
    [() => kiln.huberLoss(f, f, { delta: 0 }), 'INVALID_ARGUMENT', /^huberLoss: delta/],
    [() => kiln.klDiv(f, f, { reduction: 'batch' as never }), 'INVALID_ARGUMENT', /'batchmean'/],
    [() => kiln.nn.rmsNorm(f, 3), 'SHAPE_MISMATCH', /^rmsNorm: normalized shape \[3\] does not end \[2, 2\]/],
    [() => kiln.nn.rmsNorm(f, 2, kiln.ones([3])), 'SHAPE_MISMATCH', /^rmsNorm: weight \[3\]/],
    [() => new kiln.nn.RMSNorm([2, 0]), 'INVALID_ARGUMENT', /^RMSNorm: normalizedShape/],
    [() => new kiln.nn.LayerNorm([]), 'INVALID_ARGUMENT', /^LayerNorm: normalizedShape/],
    [() => new kiln.nn.Flatten(0.5), 'INVALID_ARGUMENT', /^Flatten/],
  ];
  for (const [fn, code, msg] of cases) {
    const e = t.throws(fn, { instanceOf: kiln.KilnError }, String(msg));
    t.is((e as kiln.KilnError | undefined)?.code, code as kiln.KilnError['code'], `${msg}: ${e?.message}`);
    t.regex(e?.message ?? '', msg);
  }
});
