// A controlled distribution shift with core and spurious features (the stylized setting of
// Kumar et al., arXiv 2207.08977). Each example has a label y, and:
//   core      informative with probability ρ: then it is μ_c·v_y + σ_c·ε, otherwise pure noise σ_c·ε.
//             Its law given y is the same in every split, so a model of the core alone transfers.
//             'signed' (default): K core dimensions, v_y = ±e_y with a fair random sign, so the class
//             means are all zero and the core is read through |x_k|: it needs a nonlinear feature, which
//             a trained MLP learns and a linear probe on frozen random features only approximates (the
//             paper's complementary members: the standard model has the better core features).
//             'linear': v_y = e_y (the d signal dimensions below), linearly decodable.
//   spurious  μ_s·e_s + σ_s·ε, where the class s it points to agrees with y with probability
//             `agreement`: high in distribution, 1/K (independent of y) or below 1/K (anticorrelated) OOD.
//   nuisance  standard-normal dimensions that carry nothing, so an over-parametrised MLP can overfit.
// For K = 2 the class directions are e_y = y ∈ {−1, +1} in one dimension; for K > 2, one-hot in K.
import { KilnError } from '../../errors.js';
import { seededRandom } from '../../train/data.js';
import { isSeed } from '../seed.js';

export type ShiftSplit = 'id' | 'ood-independent' | 'ood-anticorrelated';
export const SHIFT_SPLITS: readonly ShiftSplit[] = ['id', 'ood-independent', 'ood-anticorrelated'];

export type CoreShape = 'signed' | 'linear';

export interface ShiftConfig {
  classes: number;
  /** How the core encodes y: 'signed' (±e_y in K dims, nonlinear) or 'linear' (e_y in d dims). */
  coreShape: CoreShape;
  /** P(core informative). */
  rho: number;
  coreMean: number;
  coreNoise: number;
  /** P(spurious points to y) in distribution; OOD: 1/K (independent) and 1 − this (anticorrelated, binary) */
  spuriousAgreement: number;
  spuriousMean: number;
  spuriousNoise: number;
  nuisanceDims: number;
}

// Defaults (the paper's premise: both members see a real core signal, the standard one also leans on
// a spurious shortcut). The core is signed (nonlinear) and informative with probability ρ = 0.9 at
// μ_c = 3σ_c: the main signal in distribution (Bayes accuracy from the core alone ≈ 92%). The spurious
// feature is a clean pointer that agrees with y 90% of the time in distribution, worth
// log(0.9/0.1) ≈ 2.2 nats, so it adds to the core ID (Bayes ≈ 97% with both) rather than replacing
// it: with agreement 0.98 the shortcut alone explains almost every training label and the standard
// model's core is learned only from the rare disagreements. 8 nuisance dimensions carry nothing: a
// trained first layer learns to ignore them, a frozen random one mixes them into every feature.
export const DEFAULT_SHIFT: ShiftConfig = {
  classes: 2,
  coreShape: 'signed',
  rho: 0.9,
  coreMean: 3,
  coreNoise: 1,
  spuriousAgreement: 0.9,
  spuriousMean: 2,
  spuriousNoise: 0.5,
  nuisanceDims: 8,
};

export interface ShiftData {
  /** Row-major features [n, dims]: core, then spurious, then nuisance columns. */
  x: Float32Array;
  n: number;
  dims: number;
  /** Class indices in [0, K); for K = 2 class 1 is y = +1 and class 0 is y = −1. */
  y: Int32Array;
  /** Whether each row's core feature was informative, and the class its spurious feature points to. */
  informative: Uint8Array;
  spuriousClass: Int32Array;
  /** Column ranges of each feature group. */
  columns: { core: [number, number]; spurious: [number, number]; nuisance: [number, number] };
  split: ShiftSplit;
  config: ShiftConfig;
}

export function signalDims(classes: number): number {
  return classes === 2 ? 1 : classes;
}

/** Core columns: K for the signed core (one per class, even for K = 2), d = signalDims(K) for the linear one. */
export function coreDims(cfg: Pick<ShiftConfig, 'classes' | 'coreShape'>): number {
  return cfg.coreShape === 'signed' ? cfg.classes : signalDims(cfg.classes);
}

export function featureColumns(cfg: ShiftConfig): ShiftData['columns'] {
  const c = coreDims(cfg);
  const d = signalDims(cfg.classes);
  return { core: [0, c], spurious: [c, c + d], nuisance: [c + d, c + d + cfg.nuisanceDims] };
}

/** P(spurious class = y) in each split. */
export function spuriousAgreementOf(cfg: ShiftConfig, split: ShiftSplit): number {
  if (split === 'id') return cfg.spuriousAgreement;
  if (split === 'ood-independent') return 1 / cfg.classes;
  return (1 - cfg.spuriousAgreement) / (cfg.classes - 1);
}

function checkConfig(c: ShiftConfig): void {
  const bad = (m: string) => { throw new KilnError('INVALID_ARGUMENT', `shift generator: ${m}`); };
  if (!Number.isInteger(c.classes) || c.classes < 2) bad(`classes must be an integer >= 2, got ${c.classes}`);
  if (c.coreShape !== 'signed' && c.coreShape !== 'linear') bad(`coreShape must be 'signed' or 'linear', got '${c.coreShape}'`);
  if (!(c.rho >= 0 && c.rho <= 1)) bad(`rho must be in [0, 1], got ${c.rho}`);
  if (!(c.spuriousAgreement >= 1 / c.classes && c.spuriousAgreement <= 1)) bad(`spuriousAgreement must be in [1/K, 1], got ${c.spuriousAgreement}`);
  for (const k of ['coreMean', 'coreNoise', 'spuriousMean', 'spuriousNoise'] as const) if (!(c[k] >= 0)) bad(`${k} must be >= 0, got ${c[k]}`);
  if (!Number.isInteger(c.nuisanceDims) || c.nuisanceDims < 0) bad(`nuisanceDims must be an integer >= 0, got ${c.nuisanceDims}`);
}

/**
 * n examples of one split, a pure function of (config, split, n, seed). In the anticorrelated split
 * the spurious feature points to y with probability (1 − agreement)/(K − 1), i.e. to each wrong class
 * as often as it pointed to y in distribution (for K = 2: s = −y with probability `agreement`).
 */
export function generateShift(cfg: ShiftConfig, split: ShiftSplit, n: number, seed: number): ShiftData {
  checkConfig(cfg);
  if (!SHIFT_SPLITS.includes(split)) throw new KilnError('INVALID_ARGUMENT', `shift generator: unknown split '${split}'`);
  if (!Number.isInteger(n) || n < 1) throw new KilnError('INVALID_ARGUMENT', `shift generator: n must be a positive integer, got ${n}`);
  // The seed is mixed as a 32-bit unsigned integer: -1 would be 2^32 - 1, NaN and 0.5 would be 0.
  if (!isSeed(seed)) throw new KilnError('INVALID_ARGUMENT', `shift generator: seed must be an integer in [0, 2^32), got ${seed}`);
  const K = cfg.classes;
  const splitIndex = SHIFT_SPLITS.indexOf(split);
  const rnd = seededRandom((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(splitIndex + 1, 0x85ebca77) ^ 0x5bd1e995) >>> 0);
  let spare: number | null = null;
  const gauss = (): number => {
    if (spare !== null) { const s = spare; spare = null; return s; }
    const u = 1 - rnd(), v = rnd();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
  const columns = featureColumns(cfg);
  const dims = columns.nuisance[1];
  const d = signalDims(K);
  const dc = coreDims(cfg);
  const signed = cfg.coreShape === 'signed';
  const x = new Float32Array(n * dims);
  const y = new Int32Array(n);
  const informative = new Uint8Array(n);
  const spuriousClass = new Int32Array(n);
  const agree = spuriousAgreementOf(cfg, split);
  const otherClass = (c: number) => (c + 1 + Math.floor(rnd() * (K - 1))) % K;
  // Adds mean·e_c to the d signal columns starting at `col` (e_c = ±1 for K = 2, one-hot otherwise).
  const put = (row: number, col: number, c: number, mean: number) => {
    if (K === 2) x[row * dims + col] += c === 1 ? mean : -mean;
    else x[row * dims + col + c] += mean;
  };
  for (let i = 0; i < n; i++) {
    const yi = Math.floor(rnd() * K);
    y[i] = yi;
    const o = i * dims;
    for (let j = 0; j < dc; j++) x[o + columns.core[0] + j] = cfg.coreNoise * gauss();
    for (let j = 0; j < d; j++) x[o + columns.spurious[0] + j] = cfg.spuriousNoise * gauss();
    for (let j = columns.nuisance[0]; j < dims; j++) x[o + j] = gauss();
    if (rnd() < cfg.rho) {
      informative[i] = 1;
      if (signed) x[o + columns.core[0] + yi] += rnd() < 0.5 ? cfg.coreMean : -cfg.coreMean;
      else put(i, columns.core[0], yi, cfg.coreMean);
    }
    const s = rnd() < agree ? yi : otherClass(yi);
    spuriousClass[i] = s;
    put(i, columns.spurious[0], s, cfg.spuriousMean);
  }
  return { x, n, dims, y, informative, spuriousClass, columns, split, config: cfg };
}

/** The rows' features without the given column range (e.g. the robust model's input: no spurious columns). */
export function dropColumns(data: { x: Float32Array; n: number; dims: number }, range: [number, number]): { x: Float32Array; n: number; dims: number } {
  const [a, b] = range;
  if (!(Number.isInteger(a) && Number.isInteger(b) && a >= 0 && a <= b && b <= data.dims))
    throw new KilnError('INVALID_ARGUMENT', `dropColumns: range [${a}, ${b}] is not a column range within [0, ${data.dims}]`);
  const keep = data.dims - (b - a);
  const x = new Float32Array(data.n * keep);
  for (let i = 0; i < data.n; i++) {
    const src = data.x.subarray(i * data.dims, (i + 1) * data.dims);
    x.set(src.subarray(0, a), i * keep);
    x.set(src.subarray(b), i * keep + a);
  }
  return { x, n: data.n, dims: keep };
}
