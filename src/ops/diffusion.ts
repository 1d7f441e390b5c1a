// Diffusion steps on one fused kernel (kernels/cpu/diffusion.cc): q_sample, the DDPM posterior step,
// the DDIM step, eps <-> x0 conversions, and Diffusion-LM's clamping trick (snap each predicted x0
// vector to its nearest embedding row). The per-row coefficients come from a NoiseSchedule
// (src/sched/noise.ts); Gaussian noise is drawn inside the kernel from the global Philox stream, so
// it equals kiln.randn(x.shape) drawn at the same point of the stream.
import { KilnError, shapeStr } from '../errors.js';
import { A, N } from '../native.js';
import { noGrad, record } from '../tensor/autograd.js';
import { reserve } from '../tensor/random.js';
import { Tensor, empty } from '../tensor/tensor.js';
import { checkNoiseSchedule, type NoiseSchedule } from '../sched/noise.js';
import { fromTyped } from './creation.js';
import { arg, checkTensor, contig, needDType, needFloat, sameDevice } from './util.js';

type B = ArrayBuffer | undefined;
const NA = N as unknown as {
  diffusionStep(x: B, y: B, noise: B, out: B, x0: B, noiseOut: B, coef: B): void;
  nearestRows(x: B, e: B, idx: B, snapped: B): void;
};

/** Timesteps: one for the whole batch, or one per row of the batch (numbers or an int32 tensor). */
export type Timesteps = number | readonly number[] | Tensor;

function timesFor(op: string, t: Timesteps, rows: number, s: NoiseSchedule): Int32Array {
  checkNoiseSchedule(op, s);
  let v: ArrayLike<number>;
  if (typeof t === 'number') v = new Array(rows).fill(t);
  else if (t instanceof Tensor) {
    checkTensor(op, t, 't');
    needDType(op, t, 'int32', 't');
    if (t.ndim !== 1 && t.ndim !== 0) throw new KilnError('SHAPE_MISMATCH', `${op}: t must be [batch], got ${shapeStr(t.shape)}`);
    v = t.ndim === 0 ? new Array(rows).fill(t.dataSync()[0]) : t.dataSync();
  } else if (Array.isArray(t) || ArrayBuffer.isView(t)) v = t as ArrayLike<number>;
  else throw new KilnError('INVALID_ARGUMENT', `${op}: timesteps must be a number, an array of numbers or an int32 tensor, got ${t === null ? 'null' : typeof t}`);
  if (v.length !== rows)
    throw new KilnError('SHAPE_MISMATCH', `${op}: ${v.length} timesteps for a batch of ${rows}`);
  const out = new Int32Array(rows);
  for (let i = 0; i < rows; i++) {
    const x = v[i];
    if (!Number.isInteger(x) || x < 0 || x >= s.T)
      throw new KilnError('INDEX_OUT_OF_RANGE', `${op}: timestep ${x} is outside [0, ${s.T}) of the ${s.kind} schedule`);
    out[i] = x;
  }
  return out;
}

function checkX(op: string, x: Tensor, name = 'x'): void {
  checkTensor(op, x, name);
  needFloat(op, x, name);
  if (x.ndim < 1 || x.shape[0] === 0) throw new KilnError('SHAPE_MISMATCH', `${op}: ${name} must be [batch, ...], got ${shapeStr(x.shape)}`);
}

function checkLike(op: string, x: Tensor, y: Tensor, name: string): void {
  checkTensor(op, y, name);
  sameDevice(op, x, y);
  needDType(op, y, x.dtype, name);
  if (y.ndim !== x.ndim || y.shape.some((d, i) => d !== x.shape[i]))
    throw new KilnError('SHAPE_MISMATCH', `${op}: ${name} ${shapeStr(y.shape)} does not match x ${shapeStr(x.shape)}`);
}

// Coefficient rows a0 a1 b0 b1 c0 c1 c2 sigma (see kernels/cpu/diffusion.h).
type Coefs = [number, number, number, number, number, number, number, number];

interface StepArgs {
  y?: Tensor | null;
  clip?: [number, number] | null;
  noise?: 'philox' | 'none' | Tensor;
  wantX0?: boolean;
  wantNoise?: boolean;
}

/** One call of the fused kernel over x [rows, ...] with per-row coefficients. */
function fusedStep(x: Tensor, coefs: Float64Array, a: StepArgs): { out: Tensor; x0: Tensor | null; noise: Tensor | null } {
  const rows = x.shape[0], inner = x.size / rows;
  const xc = contig(x), yc = a.y ? contig(a.y) : null;
  const given = a.noise instanceof Tensor ? contig(a.noise) : null;
  const philox = a.noise === 'philox';
  const out = empty(x.shape.slice(), x.dtype, x.device);
  const x0 = a.wantX0 ? empty(x.shape.slice(), x.dtype, x.device) : null;
  const zOut = a.wantNoise && (philox || given) ? empty(x.shape.slice(), x.dtype, x.device) : null;
  const coef = fromTyped(coefs, [rows, 8], { dtype: 'float64', device: x.device });
  let seed: [number, number, number] = [0, 0, 0];
  if (philox) seed = reserve(x.size + (x.size & 1)); // the words kiln.randn(x.shape) would use
  A[0] = rows;
  A[1] = inner;
  A[2] = (a.clip ? 1 : 0) | (philox ? 2 : 0) | (given ? 4 : 0) | (yc ? 8 : 0) | (x0 ? 16 : 0) | (zOut ? 32 : 0);
  A[3] = a.clip ? a.clip[0] : 0;
  A[4] = a.clip ? a.clip[1] : 0;
  A[5] = seed[0];
  A[6] = seed[1];
  A[7] = seed[2];
  NA.diffusionStep(arg(8, xc), yc ? arg(11, yc) : undefined, given ? arg(14, given) : undefined, arg(17, out),
    x0 ? arg(20, x0) : undefined, zOut ? arg(23, zOut) : undefined, arg(26, coef));
  coef.dispose();
  if (xc !== x) xc.dispose();
  if (yc && yc !== a.y) yc.dispose();
  if (given && given !== a.noise) given.dispose();
  return { out, x0, noise: zOut ?? (given && a.wantNoise ? (a.noise as Tensor) : null) };
}

function table(ts: Int32Array, f: (t: number) => Coefs): Float64Array {
  const c = new Float64Array(ts.length * 8);
  ts.forEach((t, i) => c.set(f(t), i * 8));
  return c;
}

/** Scales each row of g by k(t_row): the gradient of an op linear in one input. */
function scaleRows(g: Tensor, ts: Int32Array, k: (t: number) => number): Tensor {
  return fusedStep(g, table(ts, (t) => [0, 0, 0, 0, k(t), 0, 0, 0]), {}).out;
}

/**
 * q_sample: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps with fresh Philox noise (or `noise`).
 * Returns x_t and the noise used (the eps target). Differentiable in x0.
 */
export function qSample(x0: Tensor, t: Timesteps, s: NoiseSchedule, opts: { noise?: Tensor } = {}): { xt: Tensor; noise: Tensor } {
  const op = 'qSample';
  opts ??= {};
  checkX(op, x0, 'x0');
  if (opts.noise) checkLike(op, x0, opts.noise, 'noise');
  const ts = timesFor(op, t, x0.shape[0], s);
  const ab = s.alphasCumprod;
  const { out, noise } = fusedStep(x0, table(ts, (t) => [0, 0, 0, 0, Math.sqrt(ab[t]), 0, 0, Math.sqrt(1 - ab[t])]), {
    noise: opts.noise ?? 'philox',
    wantNoise: true,
  });
  const xt = record(out, op, [x0], (g) => [scaleRows(g, ts, (t) => Math.sqrt(ab[t]))]);
  return { xt, noise: noise! };
}

const recipSqrt = (s: NoiseSchedule, t: number) => Math.sqrt(1 / s.alphasCumprod[t]);
const recipSqrtM1 = (s: NoiseSchedule, t: number) => Math.sqrt(1 / s.alphasCumprod[t] - 1);

/** x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t). Differentiable in both. */
export function predictX0(xt: Tensor, eps: Tensor, t: Timesteps, s: NoiseSchedule): Tensor {
  const op = 'predictX0';
  checkX(op, xt, 'xt');
  checkLike(op, xt, eps, 'eps');
  const ts = timesFor(op, t, xt.shape[0], s);
  const { out } = fusedStep(xt, table(ts, (t) => [recipSqrt(s, t), -recipSqrtM1(s, t), 0, 0, 0, 1, 0, 0]), { y: eps });
  return record(out, op, [xt, eps], (g) => [
    xt.requiresGrad ? scaleRows(g, ts, (t) => recipSqrt(s, t)) : null,
    eps.requiresGrad ? scaleRows(g, ts, (t) => -recipSqrtM1(s, t)) : null,
  ]);
}

/** eps = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t). Differentiable in both. */
export function predictEps(xt: Tensor, x0: Tensor, t: Timesteps, s: NoiseSchedule): Tensor {
  const op = 'predictEps';
  checkX(op, xt, 'xt');
  checkLike(op, xt, x0, 'x0');
  const ts = timesFor(op, t, xt.shape[0], s);
  const b0 = (t: number) => recipSqrt(s, t) / recipSqrtM1(s, t), b1 = (t: number) => -1 / recipSqrtM1(s, t);
  const { out } = fusedStep(xt, table(ts, (t) => [0, 1, b0(t), b1(t), 0, 0, 1, 0]), { y: x0 });
  return record(out, op, [xt, x0], (g) => [
    xt.requiresGrad ? scaleRows(g, ts, b0) : null,
    x0.requiresGrad ? scaleRows(g, ts, b1) : null,
  ]);
}

/** For each row of x [..., D]: the nearest row of E [V, D] (squared L2, first on ties), tiled over V. */
/** x [..., D] (float) and E a non-empty [V, D] of its dtype and device: nearestRows' operands. */
function checkNearest(op: string, x: Tensor, E: Tensor, xName: string, eName: string): void {
  checkTensor(op, x, xName);
  needFloat(op, x, xName);
  checkTensor(op, E, eName);
  sameDevice(op, x, E);
  needDType(op, E, x.dtype, eName);
  if (E.ndim !== 2 || E.shape[0] === 0) throw new KilnError('SHAPE_MISMATCH', `${op}: ${eName} must be a non-empty [V, D], got ${shapeStr(E.shape)}`);
  const D = E.shape[1];
  if (x.ndim < 1 || x.shape[x.ndim - 1] !== D)
    throw new KilnError('SHAPE_MISMATCH', `${op}: ${xName} ${shapeStr(x.shape)} must end in the ${eName} dim ${D}`);
  if (D === 0) throw new KilnError('SHAPE_MISMATCH', `${op}: ${eName} ${shapeStr(E.shape)} has no columns to compare`);
}

export function nearestRows(x: Tensor, E: Tensor): { indices: Tensor; rows: Tensor } {
  const op = 'nearestRows';
  checkNearest(op, x, E, 'x', 'embedding');
  const D = E.shape[1];
  const m = x.size / D;
  const xc = contig(x), ec = contig(E);
  const indices = empty(x.shape.slice(0, -1), 'int32', x.device), rows = empty(x.shape.slice(), x.dtype, x.device);
  A[0] = m;
  A[1] = E.shape[0];
  A[2] = D;
  A[3] = 1;
  NA.nearestRows(arg(8, xc), arg(11, ec), arg(14, indices), arg(17, rows));
  if (xc !== x) xc.dispose();
  if (ec !== E) ec.dispose();
  return { indices, rows };
}

export interface StepOptions {
  /** What the model predicts: the noise (default) or x0. */
  prediction?: 'eps' | 'x0';
  /** Clamp the predicted x0 to [lo, hi] ([-1, 1] for true). */
  clip?: boolean | [number, number];
  /** Diffusion-LM's clamping trick: snap each predicted x0 vector (last dim) to its nearest row of this [V, D] matrix. */
  clampTo?: Tensor;
  /** Noise to use instead of drawing it (tests, references). */
  noise?: Tensor;
}

function predictedX0Coefs(s: NoiseSchedule, t: number, prediction: 'eps' | 'x0'): [number, number] {
  return prediction === 'eps' ? [recipSqrt(s, t), -recipSqrtM1(s, t)] : [0, 1];
}

function prepareStep(op: string, xt: Tensor, modelOut: Tensor, t: Timesteps, s: NoiseSchedule, o: StepOptions) {
  checkX(op, xt, 'xt');
  checkLike(op, xt, modelOut, 'model output');
  if (o.noise) checkLike(op, xt, o.noise, 'noise');
  const prediction = o.prediction ?? 'eps';
  if (prediction !== 'eps' && prediction !== 'x0') throw new KilnError('INVALID_ARGUMENT', `${op}: prediction must be 'eps' or 'x0'`);
  if (!(o.clip === undefined || o.clip === null || typeof o.clip === 'boolean' || Array.isArray(o.clip)))
    throw new KilnError('INVALID_ARGUMENT', `${op}: clip must be true, false or a [lo, hi] range, got ${String(o.clip)}`);
  const clip: [number, number] | null = o.clip === true ? [-1, 1] : Array.isArray(o.clip) ? o.clip : null;
  if (clip && !(clip.length === 2 && typeof clip[0] === 'number' && typeof clip[1] === 'number' && clip[0] <= clip[1]))
    throw new KilnError('INVALID_ARGUMENT', `${op}: clip range [${clip}] for xt ${shapeStr(xt.shape)} must be two numbers lo <= hi`);
  if (o.clampTo) checkNearest(op, xt, o.clampTo, 'xt', 'clampTo');  // before the step allocates anything
  const ts = timesFor(op, t, xt.shape[0], s);
  // The clamping trick runs before the step: x0 from the model, snapped, then the step reads it as x0.
  if (o.clampTo) {
    const { out: x0 } = fusedStep(xt, table(ts, (t) => { const [a0, a1] = predictedX0Coefs(s, t, prediction); return [a0, a1, 0, 0, 0, 1, 0, 0]; }), {
      y: modelOut,
      clip,
    });
    const { indices, rows } = nearestRows(x0, o.clampTo);
    x0.dispose();
    indices.dispose();
    return { ts, y: rows, owned: true, a: (_t: number): [number, number] => [0, 1], clip: null as [number, number] | null };
  }
  return { ts, y: modelOut, owned: false, a: (t: number) => predictedX0Coefs(s, t, prediction), clip };
}

/**
 * One DDPM reverse step p(x_{t-1} | x_t): the posterior mean from the predicted x0, plus
 * exp(0.5 log variance) * z for rows with t > 0 (variance 'small' = the posterior's, 'large' = beta).
 * Returns x_{t-1} and the predicted x0. A sampling op: no gradient.
 */
export function ddpmStep(xt: Tensor, modelOut: Tensor, t: Timesteps, s: NoiseSchedule, o: StepOptions & { variance?: 'small' | 'large' } = {}): { prev: Tensor; x0: Tensor } {
  const op = 'ddpmStep';
  o ??= {};
  if (!(o.variance === undefined || o.variance === 'small' || o.variance === 'large'))
    throw new KilnError('INVALID_ARGUMENT', `${op}: variance must be 'small' or 'large', got ${String(o.variance)}`);
  const p = prepareStep(op, xt, modelOut, t, s, o);
  const { betas: b, alphasCumprod: ab, alphasCumprodPrev: abp } = s;
  const large = o.variance === 'large';
  const res = noGrad(() =>
    fusedStep(xt, table(p.ts, (t) => {
      const [a0, a1] = p.a(t);
      const c1 = (b[t] * Math.sqrt(abp[t])) / (1 - ab[t]);
      const c0 = ((1 - abp[t]) * Math.sqrt(1 - b[t])) / (1 - ab[t]);
      const logVar = large ? Math.log(t === 0 ? s.posteriorVariance[Math.min(1, s.T - 1)] : b[t]) : s.posteriorLogVarianceClipped[t];
      return [a0, a1, 0, 0, c0, c1, 0, t > 0 ? Math.exp(0.5 * logVar) : 0];
    }), { y: p.y, clip: p.clip, noise: o.noise ?? 'philox', wantX0: true }),
  );
  if (p.owned) p.y.dispose();
  return { prev: res.out, x0: res.x0! };
}

/**
 * One DDIM step (Song et al.) with eta: sigma = eta sqrt((1 - abar_prev) / (1 - abar)) sqrt(1 - abar / abar_prev),
 * x_{t-1} = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma^2) eps + sigma z (z only for t > 0),
 * eps re-derived from the (clipped or snapped) x0. A sampling op: no gradient.
 */
export function ddimStep(xt: Tensor, modelOut: Tensor, t: Timesteps, s: NoiseSchedule, o: StepOptions & { eta?: number } = {}): { prev: Tensor; x0: Tensor } {
  const op = 'ddimStep';
  o ??= {};
  const eta = o.eta ?? 0;
  if (!(Number.isFinite(eta) && eta >= 0)) throw new KilnError('INVALID_ARGUMENT', `${op}: eta must be finite and >= 0, got ${eta}`);
  const p = prepareStep(op, xt, modelOut, t, s, o);
  const { alphasCumprod: ab, alphasCumprodPrev: abp } = s;
  const res = noGrad(() =>
    fusedStep(xt, table(p.ts, (t) => {
      const [a0, a1] = p.a(t);
      const sigma = eta * Math.sqrt((1 - abp[t]) / (1 - ab[t])) * Math.sqrt(1 - ab[t] / abp[t]);
      const b1 = -1 / recipSqrtM1(s, t), b0 = recipSqrt(s, t) / recipSqrtM1(s, t);
      return [a0, a1, b0, b1, 0, Math.sqrt(abp[t]), Math.sqrt(Math.max(0, 1 - abp[t] - sigma * sigma)), t > 0 ? sigma : 0];
    }), { y: p.y, clip: p.clip, noise: o.noise ?? (eta > 0 ? 'philox' : 'none'), wantX0: true }),
  );
  if (p.owned) p.y.dispose();
  return { prev: res.out, x0: res.x0! };
}
