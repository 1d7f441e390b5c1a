// The experiment: data (a controlled spurious-feature shift), models (standard MLP on all features,
// fully trained; robust member without the spurious ones: by default a linear probe on frozen random
// ReLU features, optionally a fully trained MLP), calibration (one temperature per member, ID validation only),
// ensembling, and evaluation of every system on ID and both OOD splits, over seeds.
import { meanStd, type Summary } from '../stats.js';
import * as kiln from '../../index.js';
import { calibrationReport, accuracy, brierScore, nll, DEFAULT_BINS, TEMPERATURE_METHOD, type Logits } from './calibration.js';
import { calibratedEnsemble, ensembleProbs, type Classifier } from './ensemble.js';
import { DEFAULT_SHIFT, dropColumns, generateShift, SHIFT_SPLITS, type ShiftConfig, type ShiftData, type ShiftSplit } from './shift.js';
import { DEFAULT_TRAIN, trainClassifier, type TrainOptions } from './train.js';

/**
 * The robust member, always without the spurious columns: 'linear-probe' fits only the readout of an
 * MLP whose first layer stays at its random initialisation (the paper's linear probe on frozen
 * features: weaker core features than the fully trained standard model); 'mlp' trains every layer.
 */
export type RobustMember = 'linear-probe' | 'mlp';
export const ROBUST_MEMBERS: readonly RobustMember[] = ['linear-probe', 'mlp'];

export interface ExperimentConfig {
  shift: ShiftConfig;
  train: Omit<TrainOptions, 'seed' | 'frozenEncoder'>;
  robust: RobustMember;
  /**
   * Overrides of `train` for the robust member. Default none: both members get the same optimiser and
   * budget, which leaves the probe underconfident (ID temperature ≈ 0.6, corrected by the calibration);
   * e.g. { lr: 1e-2 } fits it closer to convergence (temperature ≈ 0.9, about half a point more accurate).
   */
  robustTrain: Partial<Omit<TrainOptions, 'seed' | 'frozenEncoder'>>;
  nTrain: number;
  nVal: number;
  nTest: number;
  seeds: number;
  /** First seed; seed s uses data seed s and model seeds derived from it. */
  seed0: number;
  bins: number;
  /** Factor applied to the standard model's logits in the overconfidence stress test. */
  stressScale: number;
}

export const DEFAULT_EXPERIMENT: ExperimentConfig = {
  shift: DEFAULT_SHIFT,
  train: DEFAULT_TRAIN,
  robust: 'linear-probe',
  robustTrain: {},
  nTrain: 2000,
  nVal: 1000,
  nTest: 20000,
  seeds: 10,
  seed0: 0,
  bins: DEFAULT_BINS,
  stressScale: 5,
};

export const SYSTEMS = [
  'standard', 'robust', 'standard (T-scaled)', 'robust (T-scaled)', 'vanilla ensemble', 'calibrated ensemble',
  'vanilla ensemble, standard x5', 'calibrated ensemble, standard x5',
] as const;
export type SystemName = (typeof SYSTEMS)[number];

export interface Metrics {
  accuracy: number;
  eceEqualWidth: number;
  eceEqualMass: number;
  brier: number;
  nll: number;
}

export interface SeedResult {
  seed: number;
  temperatures: { standard: number; robust: number; standardX5: number };
  /** metrics[split][system] */
  metrics: Record<ShiftSplit, Record<SystemName, Metrics>>;
}

export type { Summary } from '../stats.js';

function toTensor(d: { x: Float32Array; n: number; dims: number }): kiln.Tensor {
  return kiln.fromTyped(d.x, [d.n, d.dims]);
}

/** The robust member as a classifier of the full feature vector: it drops the spurious columns first. */
export function withoutColumns(model: Classifier, dims: number, [a, b]: [number, number]): Classifier {
  const f = typeof model === 'function' ? model : (x: kiln.Tensor) => model.forward(x);
  return (x) => {
    const parts = [x.narrow(1, 0, a), x.narrow(1, b, dims - b)].filter((t) => t.shape[1] > 0);
    return f(parts.length === 1 ? parts[0] : kiln.concat(parts, 1));
  };
}

function metricsOf(p: Logits, y: Int32Array, bins: number): Metrics {
  return {
    accuracy: accuracy(p, y),
    eceEqualWidth: calibrationReport(p, y, { bins, binning: 'equal-width' }).ece,
    eceEqualMass: calibrationReport(p, y, { bins, binning: 'equal-mass' }).ece,
    brier: brierScore(p, y),
    nll: nll(p, y),
  };
}

/** Probabilities of every system on one split (also kept for the pooled reliability diagram). */
export type SplitProbs = Record<SystemName, Logits>;

/** One seed: train both members, calibrate on ID validation, evaluate every system on every split. */
export function runSeed(cfg: ExperimentConfig, seed: number): { result: SeedResult; probs: Record<ShiftSplit, SplitProbs>; labels: Record<ShiftSplit, Int32Array> } {
  const sh = cfg.shift;
  const dataSeed = (k: number) => seed * 16 + k;
  const train = generateShift(sh, 'id', cfg.nTrain, dataSeed(0));
  const val = generateShift(sh, 'id', cfg.nVal, dataSeed(1));
  const tests = Object.fromEntries(SHIFT_SPLITS.map((s, i) => [s, generateShift(sh, s, cfg.nTest, dataSeed(2 + i))])) as Record<ShiftSplit, ShiftData>;
  const spur = train.columns.spurious;
  const robustTrain = dropColumns(train, spur);

  const standard = trainClassifier(train, train.y, sh.classes, { ...cfg.train, seed: 2 * seed });
  const robustMlp = trainClassifier(robustTrain, train.y, sh.classes, { ...cfg.train, ...cfg.robustTrain, seed: 2 * seed + 1, frozenEncoder: cfg.robust === 'linear-probe' });
  const robust = withoutColumns(robustMlp, train.dims, spur);
  const scale = cfg.stressScale;
  const standardX5: Classifier = (x) => standard.forward(x).mul(scale);

  return kiln.tidy(() => {
    const xVal = toTensor(val);
    const ens = calibratedEnsemble([{ name: 'standard', model: standard }, { name: 'robust', model: robust }], { x: xVal, y: val.y });
    const ensX5 = calibratedEnsemble([{ name: 'standard x5', model: standardX5 }, { name: 'robust', model: robust }], { x: xVal, y: val.y });
    const [tS, tR] = ens.members.map((m) => m.temperature);
    const tS5 = ensX5.members[0].temperature;
    const metrics = {} as SeedResult['metrics'];
    const probs = {} as Record<ShiftSplit, SplitProbs>;
    const labels = {} as Record<ShiftSplit, Int32Array>;
    for (const split of SHIFT_SPLITS) {
      const d = tests[split];
      const x = toTensor(d);
      const [zS, zR] = ens.memberLogits(x);
      const zS5 = ensX5.memberLogits(x)[0];
      const p: SplitProbs = {
        standard: ensembleProbs([zS]),
        robust: ensembleProbs([zR]),
        'standard (T-scaled)': ensembleProbs([zS], [tS]),
        'robust (T-scaled)': ensembleProbs([zR], [tR]),
        'vanilla ensemble': ensembleProbs([zS, zR]),
        'calibrated ensemble': ensembleProbs([zS, zR], [tS, tR]),
        'vanilla ensemble, standard x5': ensembleProbs([zS5, zR]),
        'calibrated ensemble, standard x5': ensembleProbs([zS5, zR], [tS5, tR]),
      };
      probs[split] = p;
      labels[split] = d.y;
      metrics[split] = Object.fromEntries(SYSTEMS.map((s) => [s, metricsOf(p[s], d.y, cfg.bins)])) as Record<SystemName, Metrics>;
    }
    for (const prm of [...standard.parameters(), ...robustMlp.parameters()]) prm.dispose();
    return { result: { seed, temperatures: { standard: tS, robust: tR, standardX5: tS5 }, metrics }, probs, labels };
  });
}

export { meanStd };

export interface AcceptanceCheck {
  name: string;
  /** Per-seed values of the compared difference (in accuracy points, i.e. ×100), mean ± std. */
  difference: Summary;
  pass: boolean;
  rule: string;
}

export interface ExperimentResult {
  config: ExperimentConfig;
  calibration: { temperatureFit: string; eceBins: number; eceBinnings: string[]; brier: string; ensemble: string };
  seeds: SeedResult[];
  summary: Record<ShiftSplit, Record<SystemName, Record<keyof Metrics, Summary>>>;
  temperatures: { standard: Summary; robust: Summary; standardX5: Summary };
  acceptance: AcceptanceCheck[];
  seconds: number;
}

const acc = (r: SeedResult, split: ShiftSplit, s: SystemName) => 100 * r.metrics[split][s].accuracy;

/** The acceptance checks, each on the per-seed paired difference of accuracies (points). */
export function acceptanceChecks(seeds: SeedResult[]): AcceptanceCheck[] {
  const diff = (f: (r: SeedResult) => number) => meanStd(seeds.map(f));
  const idGap = diff((r) => acc(r, 'id', 'calibrated ensemble') - acc(r, 'id', 'standard'));
  const oodGap = diff((r) => acc(r, 'ood-independent', 'calibrated ensemble') - acc(r, 'ood-independent', 'robust'));
  const vanDrop = diff((r) => acc(r, 'ood-independent', 'vanilla ensemble, standard x5') - acc(r, 'ood-independent', 'vanilla ensemble'));
  const calDrop = diff((r) => acc(r, 'ood-independent', 'calibrated ensemble, standard x5') - acc(r, 'ood-independent', 'calibrated ensemble'));
  const antiGap = diff((r) => acc(r, 'ood-anticorrelated', 'calibrated ensemble') - acc(r, 'ood-anticorrelated', 'robust'));
  return [
    { name: 'ID: calibrated ensemble within 1 point of standard', difference: idGap, pass: Math.abs(idGap.mean) <= 1, rule: '|mean(cal − standard)| ≤ 1 point' },
    { name: 'OOD independent: calibrated ensemble at or above robust', difference: oodGap, pass: oodGap.mean >= 0, rule: 'mean(cal − robust) ≥ 0' },
    { name: 'standard x5, OOD independent: vanilla ensemble degrades', difference: vanDrop, pass: vanDrop.mean < 0, rule: 'mean(vanilla x5 − vanilla) < 0' },
    { name: 'standard x5, OOD independent: calibrated ensemble unchanged', difference: calDrop, pass: Math.abs(calDrop.mean) < 0.05, rule: '|mean(cal x5 − cal)| < 0.05 points' },
    { name: 'OOD anticorrelated: calibrated ensemble below robust', difference: antiGap, pass: antiGap.mean < 0, rule: 'mean(cal − robust) < 0' },
  ];
}

/** Concatenation of probability tables (rows) from several seeds. */
export function concatProbs(tables: Logits[]): Logits {
  const n = tables.reduce((s, t) => s + t.n, 0);
  const data = new Float64Array(n * tables[0].classes);
  let o = 0;
  for (const t of tables) {
    data.set(t.data, o);
    o += t.data.length;
  }
  return { data, n, classes: tables[0].classes };
}

export interface RunOutput {
  result: ExperimentResult;
  /** Probabilities and labels of every seed, pooled, for the reliability diagram. */
  pooled: Record<ShiftSplit, { probs: SplitProbs; labels: Int32Array }>;
}

export function runExperiment(cfg: ExperimentConfig, log?: (line: string) => void): RunOutput {
  const t0 = performance.now();
  const seeds: SeedResult[] = [];
  const allProbs: Record<ShiftSplit, SplitProbs>[] = [];
  const allLabels: Record<ShiftSplit, Int32Array>[] = [];
  for (let i = 0; i < cfg.seeds; i++) {
    const seed = cfg.seed0 + i;
    const { result, probs, labels } = runSeed(cfg, seed);
    seeds.push(result);
    allProbs.push(probs);
    allLabels.push(labels);
    const m = result.metrics;
    log?.(`seed ${seed}: T_std ${result.temperatures.standard.toFixed(2)} T_rob ${result.temperatures.robust.toFixed(2)}; ` +
      `ID acc std ${acc(result, 'id', 'standard').toFixed(1)} cal-ens ${acc(result, 'id', 'calibrated ensemble').toFixed(1)}; ` +
      `OOD-ind acc rob ${acc(result, 'ood-independent', 'robust').toFixed(1)} cal-ens ${acc(result, 'ood-independent', 'calibrated ensemble').toFixed(1)} ` +
      `(ECE ${(100 * m['ood-independent']['calibrated ensemble'].eceEqualWidth).toFixed(1)}) [${((performance.now() - t0) / 1000).toFixed(1)} s]`);
  }
  const summary = Object.fromEntries(SHIFT_SPLITS.map((split) => [split, Object.fromEntries(SYSTEMS.map((s) => {
    const keys = Object.keys(seeds[0].metrics[split][s]) as (keyof Metrics)[];
    return [s, Object.fromEntries(keys.map((k) => [k, meanStd(seeds.map((r) => r.metrics[split][s][k]))]))];
  }))])) as ExperimentResult['summary'];
  const pooled = Object.fromEntries(SHIFT_SPLITS.map((split) => [split, {
    probs: Object.fromEntries(SYSTEMS.map((s) => [s, concatProbs(allProbs.map((p) => p[split][s]))])) as SplitProbs,
    labels: Int32Array.from(allLabels.flatMap((l) => Array.from(l[split]))),
  }])) as RunOutput['pooled'];
  const result: ExperimentResult = {
    config: cfg,
    calibration: {
      temperatureFit: TEMPERATURE_METHOD,
      eceBins: cfg.bins,
      eceBinnings: ['equal-width', 'equal-mass'],
      brier: 'multi-class: mean over rows of Σ_k (p_k − 1[k = y])²',
      ensemble: 'mean of the members\u2019 probabilities; calibrated: each member at its own temperature fit on ID validation only',
    },
    seeds,
    summary,
    temperatures: {
      standard: meanStd(seeds.map((r) => r.temperatures.standard)),
      robust: meanStd(seeds.map((r) => r.temperatures.robust)),
      standardX5: meanStd(seeds.map((r) => r.temperatures.standardX5)),
    },
    acceptance: acceptanceChecks(seeds),
    seconds: (performance.now() - t0) / 1000,
  };
  return { result, pooled };
}
