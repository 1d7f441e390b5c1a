// Prompts: n points x_i with their values f(x_i) under a fresh function per prompt, the curriculum
// that grows the active dimensions and the number of points, and the token encoding the model reads
// (x_1, (f(x_1), 0, ..., 0), x_2, ...), as in the paper's code (`_combine`).
import { Gaussian, mixSeed, sampleFunction, type TaskName, type TaskOptions } from './tasks.js';

/** A value that starts at `start` and grows by `inc` every `interval` steps up to `end`. */
export interface Ramp {
  start: number;
  end: number;
  inc: number;
  interval: number;
  /** Steps before the first increment (default `interval`, the paper's schedule). */
  hold?: number;
}

export interface Curriculum {
  dims: Ramp;
  points: Ramp;
}

export function rampAt(r: Ramp, step: number): number {
  if (r.interval <= 0 || r.inc === 0) return r.end;
  const hold = r.hold ?? r.interval;
  if (step < hold) return r.start;
  return Math.min(r.end, r.start + r.inc * (1 + Math.floor((step - hold) / r.interval)));
}

/** Active dimensions and points at a training step. */
export function curriculumAt(c: Curriculum, step: number): { dims: number; points: number } {
  return { dims: rampAt(c.dims, step), points: rampAt(c.points, step) };
}

/**
 * The paper's curriculum scaled to (d, n): dims from min(d, 5) up by 1, points from 2·dims + 1
 * up by 2, both every `interval` steps (the paper: d = 20, dims 5→20, points 11→41, interval 2000).
 */
export function defaultCurriculum(d: number, n: number, interval = 2000, hold = interval): Curriculum {
  const d0 = Math.min(d, 5);
  const n0 = Math.min(n, 2 * d0 + 1);
  return { dims: { start: d0, end: d, inc: 1, interval, hold }, points: { start: n0, end: n, inc: 2, interval, hold } };
}

/** The step at which the curriculum reaches its end. */
export function curriculumEnd(c: Curriculum): number {
  const steps = (r: Ramp) => (r.inc === 0 || r.interval <= 0 || r.end === r.start ? 0 : (r.hold ?? r.interval) + (Math.ceil((r.end - r.start) / r.inc) - 1) * r.interval);
  return Math.max(steps(c.dims), steps(c.points));
}

/** How in-context inputs are drawn: the training distribution and the paper's shifts. */
export type InputDistribution =
  | { kind: 'standard' }
  /** N(0, Σ), Σ with a random eigenbasis and eigenvalues ∝ 1/i², trace d (one Σ per prompt). */
  | { kind: 'skewed' }
  /** Every x scaled by `scale`. */
  | { kind: 'scaled'; scale: number }
  /** In-context x in one random orthant, the query (the last point) in the opposite one. */
  | { kind: 'orthant' };

export interface PromptBatch {
  B: number;
  n: number;
  d: number;
  /** [B, n, d] inputs. */
  xs: Float32Array;
  /** [B, n] targets as the model sees them (noisy for noisy tasks or a noisy-output shift). */
  ys: Float32Array;
  /** [B, n] noiseless f(x_i), what errors are measured against at evaluation. */
  clean: Float32Array;
}

export interface SampleOptions {
  task: TaskName;
  taskOptions?: TaskOptions;
  B: number;
  n: number;
  d: number;
  /** Coordinates beyond `active` are zero (curriculum); default d. */
  active?: number;
  inputs?: InputDistribution;
  /** Extra output noise on every target the model sees (the noisy-output shift). */
  outputNoise?: number;
  seed: number;
}

/** A random orthogonal matrix (Gram-Schmidt on a Gaussian matrix), row-major d×d. */
function randomOrthogonal(g: Gaussian, d: number): Float64Array {
  const q = new Float64Array(d * d);
  for (let i = 0; i < d * d; i++) q[i] = g.normal();
  for (let r = 0; r < d; r++) {
    for (let p = 0; p < r; p++) {
      let dot = 0;
      for (let j = 0; j < d; j++) dot += q[r * d + j] * q[p * d + j];
      for (let j = 0; j < d; j++) q[r * d + j] -= dot * q[p * d + j];
    }
    let nrm = 0;
    for (let j = 0; j < d; j++) nrm += q[r * d + j] ** 2;
    nrm = Math.sqrt(nrm);
    for (let j = 0; j < d; j++) q[r * d + j] /= nrm;
  }
  return q;
}

/** Samples B prompts of n points; the same options and seed give the same batch. */
export function samplePrompts(o: SampleOptions): PromptBatch {
  const { B, n, d } = o;
  const active = o.active ?? d;
  const inputs = o.inputs ?? { kind: 'standard' };
  const xs = new Float32Array(B * n * d), ys = new Float32Array(B * n), clean = new Float32Array(B * n);
  const x = new Float64Array(d), z = new Float64Array(d);
  for (let b = 0; b < B; b++) {
    const g = new Gaussian(mixSeed(o.seed, b));
    const fn = sampleFunction(o.task, g, d, active, o.taskOptions);
    let rot: Float64Array | null = null, sd: Float64Array | null = null, signs: Float64Array | null = null;
    if (inputs.kind === 'skewed') {
      rot = randomOrthogonal(g, d);
      sd = new Float64Array(d);
      let tr = 0;
      for (let i = 0; i < d; i++) tr += 1 / (i + 1) ** 2;
      for (let i = 0; i < d; i++) sd[i] = Math.sqrt(d / tr) / (i + 1);
    } else if (inputs.kind === 'orthant') {
      signs = new Float64Array(d);
      for (let i = 0; i < d; i++) signs[i] = g.uniform() < 0.5 ? -1 : 1;
    }
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < d; j++) z[j] = j < active ? g.normal() : 0;
      if (rot && sd) {
        x.fill(0);
        for (let k = 0; k < d; k++) for (let j = 0; j < d; j++) x[j] += rot[k * d + j] * sd[k] * z[k];
      } else if (signs) {
        const flip = i === n - 1 ? -1 : 1;
        for (let j = 0; j < d; j++) x[j] = flip * signs[j] * Math.abs(z[j]);
      } else {
        const s = inputs.kind === 'scaled' ? inputs.scale : 1;
        for (let j = 0; j < d; j++) x[j] = s * z[j];
      }
      const off = (b * n + i) * d;
      for (let j = 0; j < d; j++) xs[off + j] = x[j];
      const y = fn.f(xs, off);
      clean[b * n + i] = y;
      let noisy = y;
      if (fn.noiseStd > 0) noisy += fn.noiseStd * g.normal();
      if (o.outputNoise) noisy += o.outputNoise * g.normal();
      ys[b * n + i] = noisy;
    }
  }
  return { B, n, d, xs, ys, clean };
}

/** Interleaves [B, n, d] inputs and [B, n] values into [B, 2n, d] tokens, each y zero-padded to d. */
export function encodePrompts(xs: Float32Array, ys: Float32Array, B: number, n: number, d: number): Float32Array {
  const z = new Float32Array(B * 2 * n * d);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < n; i++) {
      const src = (b * n + i) * d, dst = (b * 2 * n + 2 * i) * d;
      z.set(xs.subarray(src, src + d), dst);
      z[dst + d] = ys[b * n + i];
    }
  return z;
}
