// Calibration metrics and temperature scaling on any classifier's logits. Everything here works in
// float64 on the host: validation sets are small, and the 1-D fit must not lose digits to float32.
import { KilnError } from '../../errors.js';
import { Tensor } from '../../tensor/tensor.js';

/** Logits [n, K] as a tensor, nested arrays, or a flat row-major array with K given by `classes`. */
export type LogitsLike = Tensor | number[][];
/** Class indices [n] (int32 tensor or array); for binary ±1 labels use `binaryLabels` first. */
export type LabelsLike = Tensor | ArrayLike<number>;

/** Row-major float64 logits with their shape. */
export interface Logits {
  data: Float64Array;
  n: number;
  classes: number;
}

export const DEFAULT_BINS = 15;
export const MAX_BINS = 10_000;

export function asLogits(logits: LogitsLike | Logits, op = 'logits'): Logits {
  if (!(logits instanceof Tensor) && !Array.isArray(logits)) return logits;
  if (logits instanceof Tensor) {
    if (logits.ndim !== 2) throw new KilnError('SHAPE_MISMATCH', `${op}: logits must be [n, K], got [${logits.shape.join(', ')}]`);
    const [n, classes] = logits.shape;
    return { data: Float64Array.from(logits.dataSync() as ArrayLike<number>), n, classes };
  }
  const n = logits.length;
  if (!logits.every((row) => Array.isArray(row))) throw new KilnError('SHAPE_MISMATCH', `${op}: logits must be [n, K] (an array of rows), got a flat array`);
  const classes = n ? logits[0].length : 0;
  if (n && classes === 0) throw new KilnError('SHAPE_MISMATCH', `${op}: logits must be [n, K] with K >= 1, got [${n}, 0]`);
  const data = new Float64Array(n * classes);
  logits.forEach((row, i) => {
    if (row.length !== classes) throw new KilnError('SHAPE_MISMATCH', `${op}: row ${i} has ${row.length} logits, row 0 has ${classes}`);
    data.set(row, i * classes);
  });
  return { data, n, classes };
}

export function asLabels(labels: LabelsLike, n: number, classes: number, op = 'labels'): Int32Array {
  const arr = labels instanceof Tensor ? labels.dataSync() : labels;
  if (arr.length !== n) throw new KilnError('SHAPE_MISMATCH', `${op}: ${arr.length} labels for ${n} rows of logits`);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const y = arr[i];
    if (!Number.isInteger(y) || y < 0 || y >= classes)
      throw new KilnError('INVALID_ARGUMENT', `${op}: label ${y} at row ${i} is not a class index in [0, ${classes})`);
    out[i] = y;
  }
  return out;
}

/** Maps binary labels y = ±1 to class indices (−1 → 0, +1 → 1). */
export function binaryLabels(ys: ArrayLike<number>): Int32Array {
  return Int32Array.from(ys, (y, i) => {
    if (y !== 1 && y !== -1) throw new KilnError('INVALID_ARGUMENT', `binaryLabels: label ${y} at row ${i} is not ±1`);
    return y > 0 ? 1 : 0;
  });
}

/** Row-wise softmax(z / T) in float64, as probabilities [n, K]. */
export function softmaxRows(logits: LogitsLike | Logits, temperature = 1): Logits {
  const z = asLogits(logits);
  if (!(temperature > 0)) throw new KilnError('INVALID_ARGUMENT', `softmaxRows: temperature must be > 0, got ${temperature}`);
  const { n, classes: K } = z;
  const p = new Float64Array(n * K);
  for (let i = 0; i < n; i++) {
    let m = -Infinity;
    for (let k = 0; k < K; k++) m = Math.max(m, z.data[i * K + k] / temperature);
    let s = 0;
    for (let k = 0; k < K; k++) s += (p[i * K + k] = Math.exp(z.data[i * K + k] / temperature - m));
    for (let k = 0; k < K; k++) p[i * K + k] /= s;
  }
  return { data: p, n, classes: K };
}

/** Probabilities [n, K] (rows summing to 1) from a tensor, arrays, or a Logits-shaped record. */
function asProbs(probs: LogitsLike | Logits, op: string): Logits {
  const p = asLogits(probs, op);
  for (let i = 0; i < p.n; i++) {
    let s = 0;
    for (let k = 0; k < p.classes; k++) {
      const v = p.data[i * p.classes + k];
      if (!(v >= 0 && v <= 1)) throw new KilnError('INVALID_ARGUMENT', `${op}: probability ${v} at row ${i} is outside [0, 1]`);
      s += v;
    }
    if (Math.abs(s - 1) > 1e-4) throw new KilnError('INVALID_ARGUMENT', `${op}: row ${i} sums to ${s}, not 1 (pass probabilities, not logits)`);
  }
  return p;
}

/** Mean negative log-likelihood −log p_y of probabilities (clamped at 1e-300 so a zero gives a finite ~690). */
export function nll(probs: LogitsLike | Logits, labels: LabelsLike): number {
  const p = asProbs(probs, 'nll');
  const y = asLabels(labels, p.n, p.classes, 'nll');
  if (p.n === 0) throw new KilnError('INVALID_ARGUMENT', 'nll: no rows');
  let s = 0;
  for (let i = 0; i < p.n; i++) s -= Math.log(Math.max(p.data[i * p.classes + y[i]], 1e-300));
  return s / p.n;
}

/** Multi-class Brier score: mean over rows of Σ_k (p_k − 1[k = y])². For K = 2 it is twice the binary (p − y)² form. */
export function brierScore(probs: LogitsLike | Logits, labels: LabelsLike): number {
  const p = asProbs(probs, 'brierScore');
  const y = asLabels(labels, p.n, p.classes, 'brierScore');
  if (p.n === 0) throw new KilnError('INVALID_ARGUMENT', 'brierScore: no rows');
  let s = 0;
  for (let i = 0; i < p.n; i++)
    for (let k = 0; k < p.classes; k++) {
      const d = p.data[i * p.classes + k] - (k === y[i] ? 1 : 0);
      s += d * d;
    }
  return s / p.n;
}

/** Top-1 accuracy; ties go to the lowest class index (as argmax everywhere in kiln). */
export function accuracy(probsOrLogits: LogitsLike | Logits, labels: LabelsLike): number {
  const p = asLogits(probsOrLogits, 'accuracy');
  const y = asLabels(labels, p.n, p.classes, 'accuracy');
  if (p.n === 0) throw new KilnError('INVALID_ARGUMENT', 'accuracy: no rows');
  let c = 0;
  for (let i = 0; i < p.n; i++) if (argmaxRow(p, i) === y[i]) c++;
  return c / p.n;
}

function argmaxRow(p: Logits, i: number): number {
  let best = 0;
  for (let k = 1; k < p.classes; k++) if (p.data[i * p.classes + k] > p.data[i * p.classes + best]) best = k;
  return best;
}

export type Binning = 'equal-width' | 'equal-mass';

export interface ReliabilityBin {
  /** Confidence range covered: equal-width edges, or the min/max confidence in an equal-mass bin. */
  lo: number;
  hi: number;
  count: number;
  /** Mean top-1 confidence and accuracy of the bin's rows (NaN when empty). */
  confidence: number;
  accuracy: number;
}

export interface CalibrationReport {
  binning: Binning;
  bins: number;
  ece: number;
  /** Largest |accuracy − confidence| over non-empty bins. */
  mce: number;
  table: ReliabilityBin[];
}

/**
 * Expected calibration error of the top-1 prediction: Σ_b (n_b / n)·|acc_b − conf_b|.
 * Equal-width bins split [0, 1] into `bins` intervals (lo, hi], the first one closed at 0; equal-mass
 * bins sort rows by confidence and cut them into `bins` runs of ⌊n·b/B⌋ boundaries (sizes differ by ≤ 1).
 */
export function calibrationReport(probs: LogitsLike | Logits, labels: LabelsLike, opts: { bins?: number; binning?: Binning } = {}): CalibrationReport {
  const p = asProbs(probs, 'ece');
  const y = asLabels(labels, p.n, p.classes, 'ece');
  const B = opts.bins ?? DEFAULT_BINS;
  const binning = opts.binning ?? 'equal-width';
  // Each bin is a row of the report: a billion of them would exhaust the heap and abort the process.
  if (!Number.isInteger(B) || B < 1 || B > MAX_BINS) throw new KilnError('INVALID_ARGUMENT', `ece: bins must be an integer in [1, ${MAX_BINS}], got ${B}`);
  if (binning !== 'equal-width' && binning !== 'equal-mass') throw new KilnError('INVALID_ARGUMENT', `ece: unknown binning '${binning}'`);
  if (p.n === 0) throw new KilnError('INVALID_ARGUMENT', 'ece: no rows');
  const conf = new Float64Array(p.n);
  const hit = new Uint8Array(p.n);
  for (let i = 0; i < p.n; i++) {
    const k = argmaxRow(p, i);
    conf[i] = p.data[i * p.classes + k];
    hit[i] = k === y[i] ? 1 : 0;
  }
  const members: number[][] = Array.from({ length: B }, () => []);
  if (binning === 'equal-width') {
    for (let i = 0; i < p.n; i++) {
      // Bin b covers (b/B, (b+1)/B]; the second test keeps a confidence on an edge (0.8 with 15 bins) out of the bin above.
      let b = Math.ceil(conf[i] * B) - 1;
      if (b > 0 && conf[i] <= b / B) b--;
      members[Math.min(B - 1, Math.max(0, b))].push(i);
    }
  } else {
    const order = Array.from({ length: p.n }, (_, i) => i).sort((a, b) => conf[a] - conf[b] || a - b);
    for (let b = 0; b < B; b++) members[b] = order.slice(Math.floor((p.n * b) / B), Math.floor((p.n * (b + 1)) / B));
  }
  let ece = 0;
  let mce = 0;
  const table = members.map((rows, b): ReliabilityBin => {
    let c = 0;
    let a = 0;
    for (const i of rows) {
      c += conf[i];
      a += hit[i];
    }
    const count = rows.length;
    const confidence = count ? c / count : NaN;
    const acc = count ? a / count : NaN;
    if (count) {
      ece += (count / p.n) * Math.abs(acc - confidence);
      mce = Math.max(mce, Math.abs(acc - confidence));
    }
    const lo = binning === 'equal-width' ? b / B : count ? conf[rows[0]] : NaN;
    const hi = binning === 'equal-width' ? (b + 1) / B : count ? conf[rows[count - 1]] : NaN;
    return { lo, hi, count, confidence, accuracy: acc };
  });
  return { binning, bins: B, ece, mce, table };
}

/** ECE with `bins` bins (15 by default), equal-width unless told otherwise. */
export function ece(probs: LogitsLike | Logits, labels: LabelsLike, opts: { bins?: number; binning?: Binning } = {}): number {
  return calibrationReport(probs, labels, opts).ece;
}

export interface TemperatureFit {
  temperature: number;
  /** NLL of softmax(z) and of softmax(z / T) on the fitting set. */
  nllBefore: number;
  nllAfter: number;
  iterations: number;
  /** 'interior' at a stationary point; 'lower-bound'/'upper-bound' when the optimum lies beyond the allowed range of T. */
  status: 'interior' | 'lower-bound' | 'upper-bound';
  method: string;
}

export const TEMPERATURE_METHOD =
  'minimise validation NLL over the inverse temperature b = 1/T, where NLL(b) = mean[logsumexp(b·z) − b·z_y] is convex: ' +
  'Newton steps (f\u2032 = mean[E_p z − z_y], f\u2033 = mean[Var_p z]) safeguarded by bisection on the sign of f\u2032 inside a bracket';

/** NLL at inverse temperature b and its first two derivatives in b. */
function nllDerivs(z: Logits, y: Int32Array, b: number): [number, number, number] {
  const { n, classes: K } = z;
  let f = 0, g = 0, h = 0;
  for (let i = 0; i < n; i++) {
    let m = -Infinity;
    for (let k = 0; k < K; k++) m = Math.max(m, b * z.data[i * K + k]);
    let s = 0, e1 = 0, e2 = 0;
    for (let k = 0; k < K; k++) {
      const v = z.data[i * K + k];
      const w = Math.exp(b * v - m);
      s += w;
      e1 += w * v;
      e2 += w * v * v;
    }
    e1 /= s;
    e2 /= s;
    f += m + Math.log(s) - b * z.data[i * K + y[i]];
    g += e1 - z.data[i * K + y[i]];
    h += Math.max(0, e2 - e1 * e1);
  }
  return [f / n, g / n, h / n];
}

/**
 * Temperature scaling (Guo et al. 2017): the T > 0 minimising the NLL of softmax(logits / T) on
 * held-out data. T is kept in [minT, maxT] (default [1e-2, 1e3]); an optimum outside is reported by `status`.
 */
export function calibrateTemperature(logits: LogitsLike | Logits, labels: LabelsLike, opts: { minT?: number; maxT?: number; tol?: number } = {}): TemperatureFit {
  const z = asLogits(logits, 'calibrateTemperature');
  const y = asLabels(labels, z.n, z.classes, 'calibrateTemperature');
  if (z.n === 0) throw new KilnError('INVALID_ARGUMENT', 'calibrateTemperature: no rows');
  for (const v of z.data) if (!Number.isFinite(v)) throw new KilnError('INVALID_ARGUMENT', 'calibrateTemperature: logits must be finite');
  const minT = opts.minT ?? 1e-2, maxT = opts.maxT ?? 1e3, tol = opts.tol ?? 1e-12;
  if (!(minT > 0 && maxT > minT)) throw new KilnError('INVALID_ARGUMENT', `calibrateTemperature: need 0 < minT < maxT, got ${minT}, ${maxT}`);
  let lo = 1 / maxT, hi = 1 / minT;
  const nllBefore = nllDerivs(z, y, 1)[0];
  const done = (b: number, iterations: number, status: TemperatureFit['status']): TemperatureFit =>
    ({ temperature: 1 / b, nllBefore, nllAfter: nllDerivs(z, y, b)[0], iterations, status, method: TEMPERATURE_METHOD });
  // f' is non-decreasing in b (convexity): the optimum is at a bound when f' has one sign on the range.
  if (nllDerivs(z, y, lo)[1] >= 0) return done(lo, 0, 'upper-bound');
  if (nllDerivs(z, y, hi)[1] <= 0) return done(hi, 0, 'lower-bound');
  let b = Math.min(Math.max(1, lo), hi);
  for (let it = 1; it <= 200; it++) {
    const [, g, h] = nllDerivs(z, y, b);
    if (g < 0) lo = b;
    else hi = b;
    let next = h > 0 ? b - g / h : NaN;
    if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
    if (Math.abs(next - b) <= tol * Math.max(1, b) || hi - lo <= tol * Math.max(1, b)) return done(next, it, 'interior');
    b = next;
  }
  return done(b, 200, 'interior');
}

/** Logits divided by T (a new Logits record). */
export function scaleLogits(logits: LogitsLike | Logits, temperature: number): Logits {
  const z = asLogits(logits);
  if (!(temperature > 0 && temperature < Infinity)) throw new KilnError('INVALID_ARGUMENT', `scaleLogits: temperature must be a finite number > 0, got ${temperature}`);
  return { data: z.data.map((v) => v / temperature), n: z.n, classes: z.classes };
}
