// Diffusion noise schedules as data: betas over T steps and everything derived from them, built
// the way improved-diffusion / Diffusion-LM build them (float64), plus respacing to fewer steps.
import { KilnError } from '../errors.js';

export interface NoiseSchedule {
  /** 'linear' | 'cosine' | 'sqrt' (or 'custom'), with ' respaced' appended after respace(). */
  readonly kind: string;
  /** Number of steps of this schedule. */
  readonly T: number;
  readonly betas: Float64Array;
  readonly alphasCumprod: Float64Array;
  /** alphasCumprod[t - 1], with 1 at t = 0. */
  readonly alphasCumprodPrev: Float64Array;
  /** Posterior q(x_{t-1} | x_t, x_0) variance beta_t (1 - abar_{t-1}) / (1 - abar_t). */
  readonly posteriorVariance: Float64Array;
  /** log of the posterior variance, with t = 0 taking t = 1's value (it is 0 there). */
  readonly posteriorLogVarianceClipped: Float64Array;
  /** The original step index of each step (identity unless respaced): what the model is told. */
  readonly timesteps: Int32Array;
}

/** Longest schedule: 2^24 steps (each is a float64 per table). */
const MAX_STEPS = 2 ** 24;

/**
 * A schedule from its betas, each in (0, 1), whose alpha-bars stay strictly between 0 and 1 (the
 * steps divide by sqrt(abar) and by 1 - abar).
 */
export function scheduleFromBetas(betas: ArrayLike<number>, kind = 'custom', timesteps?: Int32Array): NoiseSchedule {
  const who = `${kind} noise schedule`;
  if (typeof betas !== 'object' || betas === null || typeof betas.length !== 'number')
    throw new KilnError('INVALID_ARGUMENT', `${who}: betas must be an array of numbers, got ${betas === null ? 'null' : typeof betas}`);
  const T = betas.length;
  if (T < 1 || T > MAX_STEPS) throw new KilnError('INVALID_ARGUMENT', `${who}: needs 1 to 2^24 steps, got ${T}`);
  if (timesteps !== undefined && !(timesteps instanceof Int32Array && timesteps.length === T))
    throw new KilnError('INVALID_ARGUMENT', `${who}: timesteps must be an Int32Array of ${T} steps`);
  const b = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    const x = betas[t];
    if (typeof x !== 'number' || !(x > 0 && x < 1)) throw new KilnError('INVALID_ARGUMENT', `${who}: beta[${t}] = ${String(x)} is not in (0, 1)`);
    b[t] = x;
  }
  const ac = new Float64Array(T), acp = new Float64Array(T), pv = new Float64Array(T), plv = new Float64Array(T);
  let prod = 1;
  for (let t = 0; t < T; t++) {
    acp[t] = prod;
    prod *= 1 - b[t];
    ac[t] = prod;
    if (!(prod > 0 && prod < 1))
      throw new KilnError('INVALID_ARGUMENT', `${who}: alpha-bar[${t}] = ${prod} is not strictly between 0 and 1 (betas too small to move it, or their product underflows)`);
    pv[t] = (b[t] * (1 - acp[t])) / (1 - ac[t]);
  }
  for (let t = 0; t < T; t++) plv[t] = Math.log(t === 0 ? (T > 1 ? pv[1] : b[0]) : pv[t]);
  const ts = timesteps ?? Int32Array.from({ length: T }, (_, i) => i);
  return { kind, T, betas: b, alphasCumprod: ac, alphasCumprodPrev: acp, posteriorVariance: pv, posteriorLogVarianceClipped: plv, timesteps: ts };
}

/** A NoiseSchedule (its T and alpha-bars), or a KilnError naming op. */
export function checkNoiseSchedule(op: string, s: NoiseSchedule): void {
  if (typeof s !== 'object' || s === null || !Number.isInteger(s.T) || !(s.alphasCumprod instanceof Float64Array) || s.alphasCumprod.length !== s.T)
    throw new KilnError('INVALID_ARGUMENT', `${op}: needs a noise schedule (kiln.sched), got ${s === null ? 'null' : typeof s}`);
}

function checkSteps(name: string, T: number): void {
  if (!Number.isInteger(T) || T < 1 || T > MAX_STEPS) throw new KilnError('INVALID_ARGUMENT', `${name}: T must be an integer in [1, 2^24], got ${String(T)}`);
}

/** betas from a continuous alpha-bar f on [0, 1]: beta_i = min(1 - f((i+1)/T) / f(i/T), maxBeta). */
export function betasForAlphaBar(T: number, f: (t: number) => number, maxBeta = 0.999): Float64Array {
  checkSteps('betasForAlphaBar', T);
  if (typeof f !== 'function') throw new KilnError('INVALID_ARGUMENT', `betasForAlphaBar: f must be a function of t in [0, 1], got ${f === null ? 'null' : typeof f}`);
  if (!(maxBeta > 0 && maxBeta < 1)) throw new KilnError('INVALID_ARGUMENT', `betasForAlphaBar: maxBeta must be in (0, 1), got ${maxBeta}`);
  const out = new Float64Array(T);
  for (let i = 0; i < T; i++) out[i] = Math.min(1 - f((i + 1) / T) / f(i / T), maxBeta);
  return out;
}

/** DDPM's linear betas, scaled to T steps as in improved-diffusion (1e-4 .. 0.02 at T = 1000). */
export function linearNoiseSchedule(T: number, opts: { betaStart?: number; betaEnd?: number } = {}): NoiseSchedule {
  checkSteps('linearNoiseSchedule', T);
  opts ??= {};
  const scale = 1000 / T;
  const lo = opts.betaStart ?? scale * 1e-4, hi = opts.betaEnd ?? scale * 0.02;
  for (const [name, v] of T === 1 ? [['betaStart', lo] as const] : [['betaStart', lo], ['betaEnd', hi]] as const)
    if (typeof v !== 'number' || !(v > 0 && v < 1))
      throw new KilnError('INVALID_ARGUMENT', `linearNoiseSchedule: ${name} = ${String(v)} for T = ${T} is not in (0, 1)` +
        (name === 'betaEnd' && opts.betaEnd === undefined ? ' (the default 20 / T needs T >= 50: give betaEnd)' : ''));
  const b = Float64Array.from({ length: T }, (_, i) => (T === 1 ? lo : lo + ((hi - lo) * i) / (T - 1)));
  return scheduleFromBetas(b, 'linear');
}

/** Nichol & Dhariwal's cosine schedule: abar(t) = cos^2(((t/T + s) / (1 + s)) pi/2), beta <= 0.999. */
export function cosineNoiseSchedule(T: number, s = 0.008): NoiseSchedule {
  checkSteps('cosineNoiseSchedule', T);
  if (typeof s !== 'number' || !(s >= 0 && Number.isFinite(s))) throw new KilnError('INVALID_ARGUMENT', `cosineNoiseSchedule: offset s must be a finite number >= 0, got ${String(s)}`);
  const f = (t: number) => Math.cos(((t + s) / (1 + s)) * (Math.PI / 2)) ** 2;
  return scheduleFromBetas(betasForAlphaBar(T, f), 'cosine');
}

/** Diffusion-LM's sqrt schedule: abar(t) = 1 - sqrt(t/T + 1e-4), beta capped at 0.999. */
export function sqrtNoiseSchedule(T: number): NoiseSchedule {
  checkSteps('sqrtNoiseSchedule', T);
  // abar(t) = 1 - sqrt(t + 1e-4) reaches 0 at t = 0.9999: past T = 10000 a step before the last lands beyond it.
  if (T > 10000) throw new KilnError('INVALID_ARGUMENT', `sqrtNoiseSchedule: T = ${T} is past 10000, where alpha-bar 1 - sqrt(t/T + 1e-4) turns negative before the last step`);
  return scheduleFromBetas(betasForAlphaBar(T, sqrtAlphaBar), 'sqrt');
}

/** The continuous alpha-bar of the sqrt schedule, t in [0, 1]. */
export const sqrtAlphaBar = (t: number) => 1 - Math.sqrt(t + 1e-4);

export function noiseSchedule(kind: 'linear' | 'cosine' | 'sqrt', T: number): NoiseSchedule {
  if (kind === 'linear') return linearNoiseSchedule(T);
  if (kind === 'cosine') return cosineNoiseSchedule(T);
  if (kind === 'sqrt') return sqrtNoiseSchedule(T);
  throw new KilnError('INVALID_ARGUMENT', `noiseSchedule: unknown kind '${kind}' (linear, cosine or sqrt)`);
}

/**
 * Respacing (improved-diffusion's space_timesteps): keep a subset of the steps, evenly strided
 * when given a count, and re-derive betas so the kept steps have the same alpha-bar:
 * beta'_i = 1 - abar[t_i] / abar[t_{i-1}].
 */
export function respace(s: NoiseSchedule, steps: number | readonly number[]): NoiseSchedule {
  checkNoiseSchedule('respace', s);
  if (typeof steps !== 'number' && !Array.isArray(steps))
    throw new KilnError('INVALID_ARGUMENT', `respace: steps must be a count or an array of timesteps, got ${typeof steps}`);
  let keep: number[];
  if (typeof steps === 'number') {
    if (!Number.isInteger(steps) || steps < 1 || steps > s.T)
      throw new KilnError('INVALID_ARGUMENT', `respace: steps must be an integer in [1, ${s.T}], got ${steps}`);
    const stride = steps === 1 ? 0 : (s.T - 1) / (steps - 1);
    keep = Array.from({ length: steps }, (_, i) => Math.round(i * stride));
  } else {
    keep = [...new Set(steps)].sort((a, b) => a - b);
    if (keep.length === 0 || keep.some((t) => !Number.isInteger(t) || t < 0 || t >= s.T))
      throw new KilnError('INDEX_OUT_OF_RANGE', `respace: timesteps must be integers in [0, ${s.T})`);
  }
  const betas = new Float64Array(keep.length);
  let last = 1;
  keep.forEach((t, i) => {
    betas[i] = 1 - s.alphasCumprod[t] / last;
    last = s.alphasCumprod[t];
  });
  const ts = Int32Array.from(keep, (t) => s.timesteps[t]);
  return scheduleFromBetas(betas, s.kind.endsWith(' respaced') ? s.kind : `${s.kind} respaced`, ts);
}
