// Evaluation as in the paper: squared error against the number of in-context examples k,
// normalised (÷d for linear and ReLU nets, ÷sparsity for sparse linear, ÷1 for trees) so the zero
// predictor scores about 1, averaged over many prompts with a bootstrap 90% interval; for the
// model and for every baseline, on the training distribution and under the distribution shifts.
import * as kiln from '../../index.js';
import type { Device } from '../../index.js';
import { adamNetPredictions } from './adam-net.js';
import { averaging, decisionTree, gradientBoosting, lasso, leastSquares, nearestNeighbours, type Baseline } from './baselines.js';
import { samplePrompts, type InputDistribution, type PromptBatch } from './prompts.js';
import { errorScale, mixSeed, type TaskName, type TaskOptions } from './tasks.js';
import { modelErrors } from './train.js';

export interface Interval {
  mean: number;
  lo: number;
  hi: number;
}

/** One predictor's curve: an interval per k = 0..n-1, over `prompts` prompts. */
export interface Curve {
  prompts: number;
  errors: Interval[];
}

export type Shift = 'none' | 'skewed' | 'orthant' | 'noisy-output' | 'scaled';
export const SHIFTS: readonly Shift[] = ['none', 'skewed', 'orthant', 'noisy-output', 'scaled'];

export interface EvalReport {
  task: TaskName;
  d: number;
  points: number;
  shift: Shift;
  /** Training step of the model evaluated (absent: baselines only). */
  step?: number;
  curves: Record<string, Curve>;
}

/** Mean and bootstrap (percentile) 90% interval of each column of a [P, n] error matrix. */
export function bootstrapCurve(err: Float64Array, P: number, n: number, resamples = 1000, seed = 0): Curve {
  const g = kiln.train.seededRandom(seed);
  const idx = new Int32Array(P);
  const errors: Interval[] = [];
  const draws = Array.from({ length: resamples }, () => {
    for (let i = 0; i < P; i++) idx[i] = Math.floor(g() * P);
    return Int32Array.from(idx);
  });
  for (let k = 0; k < n; k++) {
    let mean = 0;
    for (let p = 0; p < P; p++) mean += err[p * n + k];
    mean /= P;
    const ms = new Float64Array(resamples);
    draws.forEach((ix, r) => {
      let s = 0;
      for (let i = 0; i < P; i++) s += err[ix[i] * n + k];
      ms[r] = s / P;
    });
    ms.sort();
    errors.push({ mean, lo: ms[Math.floor(0.05 * (resamples - 1))], hi: ms[Math.ceil(0.95 * (resamples - 1))] });
  }
  return { prompts: P, errors };
}

/** The paper's baselines for a task; `cheap` ones run on every prompt, the rest on fewer. */
export function baselinesFor(task: TaskName): { cheap: Baseline[]; slow: Baseline[]; adamNet: boolean } {
  const cheap = [leastSquares, averaging, nearestNeighbours(3)];
  if (task === 'sparse') return { cheap, slow: [1, 0.1, 0.01, 0.001].map((a) => lasso(a)), adamNet: false };
  if (task === 'tree') return { cheap, slow: [decisionTree(4), decisionTree(Infinity), gradientBoosting(50, 4, 0.1)], adamNet: false };
  if (task === 'relu2nn') return { cheap, slow: [], adamNet: true };
  return { cheap, slow: [], adamNet: false };
}

export interface EvalOptions {
  task: TaskName;
  taskOptions?: TaskOptions;
  d: number;
  points: number;
  shift?: Shift;
  /** Input scale of the 'scaled' shift (default 2). */
  scale?: number;
  /** Output noise std of the 'noisy-output' shift (default 1, as a fraction of nothing: absolute). */
  outputNoise?: number;
  prompts?: number;
  /** Prompts for the slow baselines (Lasso, trees, boosting, the Adam-trained net). */
  slowPrompts?: number;
  seed?: number;
  model?: kiln.nn.GPT | null;
  step?: number;
  device?: Device;
  baselines?: boolean;
  log?: (s: string) => void;
}

/** Errors [P, n] of a baseline over a batch (position k uses examples 0..k-1 and queries x_k). */
export function baselineErrors(bl: Baseline, batch: PromptBatch, scale: number, P = batch.B): Float64Array {
  const { n, d } = batch;
  const err = new Float64Array(P * n);
  const xs = Float64Array.from(batch.xs.subarray(0, P * n * d)), ys = Float64Array.from(batch.ys.subarray(0, P * n));
  for (let p = 0; p < P; p++)
    for (let k = 0; k < n; k++) {
      const ctx = { xs: xs.subarray(p * n * d, (p * n + k) * d), ys: ys.subarray(p * n, p * n + k), k, d };
      const q = xs.subarray((p * n + k) * d, (p * n + k + 1) * d);
      err[p * n + k] = (bl.predict(ctx, q) - batch.clean[p * n + k]) ** 2 / scale;
    }
  return err;
}

/**
 * Evaluates the model (if given) and the task's baselines under one shift. The orthant shift needs
 * the query alone in the opposite orthant, so there each k gets its own prompts of k + 1 points.
 */
export function evaluateCurves(o: EvalOptions): EvalReport {
  const shift = o.shift ?? 'none';
  const P = o.prompts ?? 1000, Ps = Math.min(P, o.slowPrompts ?? 100), n = o.points, d = o.d;
  const seed = o.seed ?? 12345;
  const log = o.log ?? (() => {});
  const inputScale = shift === 'scaled' ? (o.scale ?? 2) : 1;
  const scale = errorScale(o.task, d, o.taskOptions) * (o.task === 'tree' ? 1 : inputScale * inputScale);
  const inputs: InputDistribution =
    shift === 'skewed' ? { kind: 'skewed' } : shift === 'scaled' ? { kind: 'scaled', scale: inputScale } : shift === 'orthant' ? { kind: 'orthant' } : { kind: 'standard' };
  const sample = (points: number, s: number) =>
    samplePrompts({ task: o.task, taskOptions: o.taskOptions, B: P, n: points, d, inputs, outputNoise: shift === 'noisy-output' ? (o.outputNoise ?? 1) : 0, seed: s });
  // batches[k]: the prompts whose position k is scored (one batch for all k unless orthant).
  const batches: PromptBatch[] = shift === 'orthant' ? Array.from({ length: n }, (_, k) => sample(k + 1, mixSeed(seed, 3, k))) : [sample(n, mixSeed(seed, 3))];
  const batchOf = (k: number) => (shift === 'orthant' ? batches[k] : batches[0]);
  const gather = (errOf: (b: PromptBatch) => Float64Array, rows: number): Float64Array => {
    const out = new Float64Array(rows * n);
    const cache = new Map<PromptBatch, Float64Array>();
    for (let k = 0; k < n; k++) {
      const b = batchOf(k);
      let e = cache.get(b);
      if (!e) cache.set(b, (e = errOf(b)));
      const pos = shift === 'orthant' ? k : k, bn = b.n;
      for (let p = 0; p < rows; p++) out[p * n + k] = e[p * bn + pos];
    }
    return out;
  };
  const curves: Record<string, Curve> = {};
  const t = () => performance.now();
  if (o.model) {
    const t0 = t();
    curves.transformer = bootstrapCurve(gather((b) => modelErrors(o.model!, b, scale, o.device), P), P, n, 1000, seed);
    log(`transformer: ${((t() - t0) / 1000).toFixed(1)} s`);
  }
  if (o.baselines !== false) {
    const bl = baselinesFor(o.task);
    for (const b of bl.cheap) {
      const t0 = t();
      curves[b.name] = bootstrapCurve(gather((bt) => baselineErrors(b, bt, scale, P), P), P, n, 1000, seed);
      log(`${b.name}: ${((t() - t0) / 1000).toFixed(1)} s`);
    }
    for (const b of bl.slow) {
      const t0 = t();
      curves[b.name] = bootstrapCurve(gather((bt) => baselineErrors(b, bt, scale, Ps), Ps), Ps, n, 1000, seed);
      log(`${b.name}: ${((t() - t0) / 1000).toFixed(1)} s`);
    }
    if (bl.adamNet) {
      const t0 = t();
      const errOf = (bt: PromptBatch) => {
        const sub: PromptBatch = { ...bt, B: Ps };
        const positions = Array.from({ length: bt.n }, (_, k) => k);
        const pred = adamNetPredictions(sub, positions, { seed });
        const e = new Float64Array(Ps * bt.n);
        for (let p = 0; p < Ps; p++) for (let k = 0; k < bt.n; k++) e[p * bt.n + k] = (pred[p * bt.n + k] - bt.clean[p * bt.n + k]) ** 2 / scale;
        return e;
      };
      curves['2-layer net (Adam)'] = bootstrapCurve(gather(errOf, Ps), Ps, n, 1000, seed);
      log(`2-layer net (Adam): ${((t() - t0) / 1000).toFixed(1)} s`);
    }
  }
  return { task: o.task, d, points: n, shift, step: o.step, curves };
}
