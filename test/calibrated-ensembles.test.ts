// Tests for the `calibrated-ensembles` recipe (arXiv 2207.08977): ECE, Brier and NLL against
// hand-computed values, temperature scaling against closed-form and known optima, the shift
// generator's correlations, model-agnostic ensembling, and a small end-to-end run of the paper's result.
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as kiln from '../src/index.js';
import { KilnError } from '../src/errors.js';
import {
  brierScore, calibrateTemperature, calibrationReport, ece, nll, softmaxRows, binaryLabels, accuracy, scaleLogits,
} from '../src/recipes/calibrated-ensembles/calibration.js';
import { calibratedEnsemble } from '../src/recipes/calibrated-ensembles/ensemble.js';
import { DEFAULT_SHIFT, generateShift, dropColumns, featureColumns, type ShiftConfig } from '../src/recipes/calibrated-ensembles/shift.js';
import { DEFAULT_EXPERIMENT, runExperiment } from '../src/recipes/calibrated-ensembles/experiment.js';
import { command } from '../src/recipes/calibrated-ensembles/cli.js';
import { UsageError } from '../src/cli/args.js';
import { DEFAULT_TRAIN, trainClassifier } from '../src/recipes/calibrated-ensembles/train.js';
import { seededRandom } from '../src/train/data.js';
import { MLP } from '../src/nn/index.js';

const close = (t: { true: (v: boolean, m?: string) => void }, a: number, b: number, tol: number, what = '') =>
  t.true(Math.abs(a - b) <= tol, `${what} ${a} vs ${b} (tol ${tol})`);

// Three binary rows: confidences 0.8 (right), 0.6 (wrong), 0.9 (right).
const P3 = [[0.2, 0.8], [0.4, 0.6], [0.9, 0.1]];
const Y3 = [1, 0, 0];

test('ECE: hand-computed three-row case, equal-width and equal-mass', (t) => {
  // 15 equal-width bins: every row alone in its bin (0.8 sits on the edge of (11/15, 12/15]).
  close(t, ece(P3, Y3), (0.2 + 0.6 + 0.1) / 3, 1e-12, 'ece 15 bins');
  const r = calibrationReport(P3, Y3);
  t.is(r.bins, 15);
  t.deepEqual(r.table.map((b) => b.count).filter((c) => c > 0), [1, 1, 1]);
  t.is(r.table[11].count, 1, '0.8 belongs to (11/15, 12/15]');
  // 2 equal-width bins: all three in (0.5, 1]: accuracy 2/3, confidence 0.7667.
  close(t, ece(P3, Y3, { bins: 2 }), Math.abs(2 / 3 - (0.8 + 0.6 + 0.9) / 3), 1e-12, 'ece 2 bins');
  // Equal mass: 3 bins of one row each = the 15-bin value; 1 bin = the pooled gap.
  close(t, ece(P3, Y3, { bins: 3, binning: 'equal-mass' }), 0.3, 1e-12, 'equal-mass 3');
  close(t, ece(P3, Y3, { bins: 1, binning: 'equal-mass' }), Math.abs(2 / 3 - 2.3 / 3), 1e-12, 'equal-mass 1');
  // Two rows, equal mass into 2 bins: sorted by confidence, each alone.
  close(t, ece([[0.3, 0.7], [0.45, 0.55]], [1, 1], { bins: 2, binning: 'equal-mass' }), (0.3 + 0.45) / 2, 1e-12, 'two rows');
  // A perfectly calibrated table has zero ECE: confidence 0.75, 3 of 4 right.
  t.is(ece([[0.25, 0.75], [0.25, 0.75], [0.25, 0.75], [0.25, 0.75]], [1, 1, 1, 0]), 0);
});

test('Brier score and NLL: closed forms', (t) => {
  close(t, brierScore(P3, Y3), (0.08 + 0.72 + 0.02) / 3, 1e-12, 'brier');
  close(t, nll(P3, Y3), -(Math.log(0.8) + Math.log(0.4) + Math.log(0.9)) / 3, 1e-12, 'nll');
  // Uniform predictions over K classes: NLL log K, Brier 1 − 1/K.
  const K = 4;
  const u = Array.from({ length: 5 }, () => new Array(K).fill(1 / K));
  close(t, nll(u, [0, 1, 2, 3, 0]), Math.log(K), 1e-12, 'uniform nll');
  close(t, brierScore(u, [0, 1, 2, 3, 0]), 1 - 1 / K, 1e-12, 'uniform brier');
  t.is(accuracy(P3, Y3), 2 / 3);
  t.deepEqual(Array.from(binaryLabels([1, -1, 1])), [1, 0, 1]);
  t.throws(() => nll([[0.5, 0.7]], [0]), { instanceOf: KilnError }, 'rows must be probabilities');
  t.throws(() => ece(P3, [0, 1]), { instanceOf: KilnError });
  t.throws(() => ece(P3, [0, 2, 0]), { instanceOf: KilnError });
});

test('temperature scaling: closed-form optimum T = s / logit(q)', (t) => {
  // Every row has logits [0, s]; a fraction q of labels is 1. NLL is minimal where sigmoid(s/T) = q.
  const s = 4;
  const logits = [[0, s], [0, s], [0, s], [0, s]];
  const fit = calibrateTemperature(logits, [1, 1, 1, 0]);
  close(t, fit.temperature, s / Math.log(3), 1e-9, 'T');
  t.is(fit.status, 'interior');
  t.true(fit.nllAfter < fit.nllBefore);
  close(t, fit.nllAfter, -(0.75 * Math.log(0.75) + 0.25 * Math.log(0.25)), 1e-12, 'NLL at optimum = entropy');
  // Two rows, one right and one wrong: the optimum is T = ∞ (uniform), reported at the upper bound.
  const tie = calibrateTemperature([[0, 2], [0, 2]], [1, 0]);
  t.is(tie.status, 'upper-bound');
  t.is(tie.temperature, 1e3);
  // All right: sharpen without limit, stopped at the lower bound.
  const sure = calibrateTemperature([[0, 2], [1, 0]], [1, 0]);
  t.is(sure.status, 'lower-bound');
  close(t, sure.temperature, 1e-2, 1e-15);
  // Invariance: scaling the logits by c scales the fitted temperature by c.
  const fit5 = calibrateTemperature(logits.map((r) => r.map((v) => 5 * v)), [1, 1, 1, 0]);
  close(t, fit5.temperature, 5 * fit.temperature, 1e-8, 'T of 5z');
});

test('temperature scaling recovers the temperature that generated the labels', (t) => {
  const rnd = seededRandom(7);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
  for (const trueT of [0.5, 2.5]) {
    const n = 20000, K = 3;
    const z: number[][] = [];
    const y: number[] = [];
    for (let i = 0; i < n; i++) {
      const row = Array.from({ length: K }, () => 3 * gauss());
      const p = softmaxRows([row], trueT).data;
      let u = rnd(), k = 0;
      while (k < K - 1 && (u -= p[k]) > 0) k++;
      z.push(row);
      y.push(k);
    }
    const fit = calibrateTemperature(z, y);
    close(t, fit.temperature, trueT, 0.05 * trueT, `recovered T for ${trueT}`);
    // The fit is the NLL minimum: nudging T either way does not lower the NLL.
    for (const f of [0.97, 1.03]) t.true(nll(softmaxRows(z, fit.temperature * f), y) >= fit.nllAfter - 1e-12);
  }
});

test('tensor inputs: kiln logits and int32 labels', (t) => {
  const logits = kiln.tensor([[0, 4], [0, 4], [0, 4], [0, 4]]);
  const labels = kiln.tensor([1, 1, 1, 0], { dtype: 'int32' });
  close(t, calibrateTemperature(logits, labels).temperature, 4 / Math.log(3), 1e-6, 'T from tensors');
  t.throws(() => calibrateTemperature(kiln.zeros([4]), labels), { instanceOf: KilnError });
  logits.dispose();
  labels.dispose();
});

function corr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0, mb = 0;
  for (let i = 0; i < n; i++) { ma += a[i] / n; mb += b[i] / n; }
  let sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < n; i++) { sab += (a[i] - ma) * (b[i] - mb); saa += (a[i] - ma) ** 2; sbb += (b[i] - mb) ** 2; }
  return sab / Math.sqrt(saa * sbb);
}

test('shift generator: core and spurious correlations with y per split (binary, linear core)', (t) => {
  const c: ShiftConfig = { ...DEFAULT_SHIFT, coreShape: 'linear', rho: 0.5, coreMean: 2, spuriousAgreement: 0.9, spuriousNoise: 1, nuisanceDims: 2 };
  const n = 40000;
  const col = (d: ReturnType<typeof generateShift>, j: number) => Array.from({ length: d.n }, (_, i) => d.x[i * d.dims + j]);
  const coreCorr = (c.rho * c.coreMean) / Math.sqrt(c.rho * c.coreMean ** 2 + c.coreNoise ** 2);
  const spurCorr = (a: number) => ((2 * a - 1) * c.spuriousMean) / Math.sqrt(c.spuriousMean ** 2 + c.spuriousNoise ** 2);
  for (const [split, agree] of [['id', 0.9], ['ood-independent', 0.5], ['ood-anticorrelated', 0.1]] as const) {
    const d = generateShift(c, split, n, 3);
    const ys = Array.from(d.y, (k) => (k === 1 ? 1 : -1));
    close(t, corr(col(d, d.columns.core[0]), ys), coreCorr, 0.015, `${split} core corr`);
    close(t, corr(col(d, d.columns.spurious[0]), ys), spurCorr(agree), 0.015, `${split} spurious corr`);
    close(t, corr(col(d, d.columns.nuisance[0]), ys), 0, 0.015, `${split} nuisance corr`);
    close(t, d.informative.reduce((a, b) => a + b, 0) / n, c.rho, 0.01, 'informative rate');
    close(t, d.spuriousClass.reduce((a, s, i) => a + (s === d.y[i] ? 1 : 0), 0) / n, agree, 0.01, 'agreement');
  }
  // Seeded: the same arguments give the same rows; another seed does not.
  t.deepEqual(generateShift(c, 'id', 50, 1).x, generateShift(c, 'id', 50, 1).x);
  t.notDeepEqual(generateShift(c, 'id', 50, 1).x, generateShift(c, 'id', 50, 2).x);
  const r = dropColumns(generateShift(c, 'id', 10, 1), [1, 2]);
  t.is(r.dims, 1 + c.nuisanceDims, 'core + nuisance columns remain');
  t.throws(() => generateShift({ ...c, rho: 2 }, 'id', 10, 0), { instanceOf: KilnError });
});

test('shift generator: signed (nonlinear) core: zero linear signal, |x_y| carries the label, same law in every split', (t) => {
  const c = DEFAULT_SHIFT;
  t.is(c.coreShape, 'signed');
  const cols = featureColumns(c);
  t.deepEqual(cols, { core: [0, 2], spurious: [2, 3], nuisance: [3, 3 + c.nuisanceDims] }, 'K = 2: two core columns, one spurious');
  const n = 40000;
  for (const split of ['id', 'ood-independent', 'ood-anticorrelated'] as const) {
    const d = generateShift(c, split, n, 4);
    t.is(d.dims, 3 + c.nuisanceDims);
    const ys = Array.from(d.y, (k) => (k === 1 ? 1 : -1));
    const x0 = Array.from({ length: n }, (_, i) => d.x[i * d.dims]);
    const x1 = Array.from({ length: n }, (_, i) => d.x[i * d.dims + 1]);
    // Each class's core is ±μ on its own column with a fair sign: no linear correlation with y ...
    close(t, corr(x0, ys), 0, 0.015, `${split} core col 0 linear corr`);
    close(t, corr(x1, ys), 0, 0.015, `${split} core col 1 linear corr`);
    // ... but |x_1| − |x_0| does carry it, with the same strength in every split.
    const mag = x0.map((v, i) => Math.abs(x1[i]) - Math.abs(v));
    t.true(corr(mag, ys) > 0.6, `${split} |x1| − |x0| corr ${corr(mag, ys)}`);
    let hit = 0, inf = 0, signs = 0;
    for (let i = 0; i < n; i++) {
      if (!d.informative[i]) continue;
      inf++;
      if ((Math.abs(x1[i]) > Math.abs(x0[i]) ? 1 : 0) === d.y[i]) hit++;
      if ((d.y[i] === 1 ? x1[i] : x0[i]) > 0) signs++;
    }
    close(t, inf / n, c.rho, 0.01, 'informative rate');
    close(t, signs / inf, 0.5, 0.015, 'fair sign');
    t.true(hit / inf > 0.95, `${split}: larger |core| finds y on informative rows (${hit / inf})`);
  }
  t.throws(() => generateShift({ ...c, coreShape: 'cubic' as never }, 'id', 10, 0), { instanceOf: KilnError });
  // The linear core keeps its old layout and random stream.
  t.deepEqual(featureColumns({ ...c, coreShape: 'linear' }).core, [0, 1]);
});

test('shift generator: multi-class version', (t) => {
  const c: ShiftConfig = { ...DEFAULT_SHIFT, coreShape: 'linear', rho: 0.5, coreMean: 5, nuisanceDims: 2, classes: 4, spuriousAgreement: 0.85 };
  const n = 20000;
  for (const [split, agree] of [['id', 0.85], ['ood-independent', 0.25], ['ood-anticorrelated', 0.05]] as const) {
    const d = generateShift(c, split, n, 5);
    t.is(d.dims, 4 + 4 + c.nuisanceDims);
    close(t, d.spuriousClass.reduce((a, s, i) => a + (s === d.y[i] ? 1 : 0), 0) / n, agree, 0.012, `${split} agreement`);
    // The core argmax finds y on informative rows (mean 5σ above the noise).
    let hit = 0, inf = 0;
    for (let i = 0; i < n; i++) {
      if (!d.informative[i]) continue;
      inf++;
      const row = Array.from(d.x.subarray(i * d.dims, i * d.dims + 4));
      if (row.indexOf(Math.max(...row)) === d.y[i]) hit++;
    }
    t.true(hit / inf > 0.99, `${split}: core argmax accuracy ${hit / inf}`);
  }
});

test('calibratedEnsemble: any kiln classifier; invariant to rescaled member logits', (t) => {
  kiln.manualSeed(0);
  const c = DEFAULT_SHIFT;
  const val = generateShift(c, 'id', 400, 11);
  const test_ = generateShift(c, 'ood-independent', 300, 12);
  const train = generateShift(c, 'id', 400, 10);
  const a = trainClassifier(train, train.y, 2, { ...DEFAULT_TRAIN, hidden: 8, steps: 60, seed: 1 });
  const b = new kiln.nn.Linear(val.dims, 2); // untrained: its optimum may sit at a bound, which is fine
  const xv = kiln.fromTyped(val.x, [val.n, val.dims]);
  const xt = kiln.fromTyped(test_.x, [test_.n, test_.dims]);
  const ens = calibratedEnsemble([{ name: 'mlp', model: a }, b], { x: xv, y: val.y });
  const ens5 = calibratedEnsemble([(x) => a.forward(x).mul(5), b], { x: xv, y: val.y });
  t.deepEqual(ens.members.map((m) => m.name), ['mlp', 'member1']);
  t.is(ens.members[0].fit.status, 'interior');
  close(t, ens5.members[0].temperature, 5 * ens.members[0].temperature, 1e-6 * ens5.members[0].temperature, 'T scales');
  const p = ens.predictProba(xt).data, p5 = ens5.predictProba(xt).data;
  let maxDiff = 0;
  for (let i = 0; i < p.length; i++) maxDiff = Math.max(maxDiff, Math.abs(p[i] - p5[i]));
  t.true(maxDiff < 1e-5, `calibrated probabilities unchanged by x5 (max diff ${maxDiff})`);
  t.true(ens.vanillaProba(xt).n === test_.n);
  t.throws(() => calibratedEnsemble([], { x: xv, y: val.y }), { instanceOf: KilnError });
  xv.dispose();
  xt.dispose();
});

test('linear-probe member: the first layer stays at its random initialisation, the readout is trained', (t) => {
  const train = generateShift(DEFAULT_SHIFT, 'id', 300, 21);
  const opts = { ...DEFAULT_TRAIN, hidden: 16, steps: 30, seed: 5 };
  kiln.manualSeed(opts.seed);
  const init = new MLP(train.dims, { hidden: 16, outFeatures: 2, activation: 'relu' });
  const [w0, b0, r0] = [init.cFc.weight, init.cFc.bias!, init.cProj.weight].map((p) => Array.from(p.dataSync() as ArrayLike<number>));
  const probe = trainClassifier(train, train.y, 2, { ...opts, frozenEncoder: true });
  t.deepEqual(Array.from(probe.cFc.weight.dataSync() as ArrayLike<number>), w0, 'frozen weight = seeded init');
  t.deepEqual(Array.from(probe.cFc.bias!.dataSync() as ArrayLike<number>), b0, 'frozen bias = seeded init');
  t.false(probe.cFc.weight.requiresGrad);
  t.notDeepEqual(Array.from(probe.cProj.weight.dataSync() as ArrayLike<number>), r0, 'readout trained');
  const full = trainClassifier(train, train.y, 2, opts);
  t.notDeepEqual(Array.from(full.cFc.weight.dataSync() as ArrayLike<number>), w0, 'standard member trains its first layer');
  for (const p of [...init.parameters(), ...probe.parameters(), ...full.parameters()]) p.dispose();
});

test('end to end (3 seeds, small): the calibrated ensemble gets ID of standard and beats both members OOD', (t) => {
  const cfg = { ...DEFAULT_EXPERIMENT, seeds: 3, nTrain: 1500, nVal: 600, nTest: 6000, train: { ...DEFAULT_EXPERIMENT.train, steps: 400 } };
  t.is(cfg.robust, 'linear-probe');
  const { result: r } = runExperiment(cfg);
  const m = (split: 'id' | 'ood-independent' | 'ood-anticorrelated', s: Parameters<typeof pick>[0]) => pick(s, r.summary[split]);
  function pick(s: 'standard' | 'robust' | 'vanilla ensemble' | 'calibrated ensemble' | 'vanilla ensemble, standard x5' | 'calibrated ensemble, standard x5', x: (typeof r.summary)['id']) {
    return 100 * x[s].accuracy.mean;
  }
  // Complementary members: standard better ID (core + shortcut), robust better under the anticorrelated shift.
  t.true(m('id', 'standard') > m('id', 'robust') + 5);
  t.true(m('ood-anticorrelated', 'robust') > m('ood-anticorrelated', 'standard') + 5);
  // Best of both: near standard ID, above both members OOD with an independent spurious feature.
  t.true(m('id', 'calibrated ensemble') >= m('id', 'standard') - 1.5, 'ID');
  t.true(m('ood-independent', 'calibrated ensemble') > m('ood-independent', 'robust'), 'OOD independent vs robust');
  t.true(m('ood-independent', 'calibrated ensemble') > m('ood-independent', 'standard'), 'OOD independent vs standard');
  // Overconfident standard (x5): the vanilla ensemble follows it, the calibrated one is unchanged.
  t.true(m('ood-independent', 'vanilla ensemble, standard x5') < m('ood-independent', 'calibrated ensemble, standard x5'));
  close(t, m('ood-independent', 'calibrated ensemble, standard x5'), m('ood-independent', 'calibrated ensemble'), 0.05, 'x5 invariance');
  // Anticorrelated spurious features break it.
  t.true(m('ood-anticorrelated', 'calibrated ensemble') < m('ood-anticorrelated', 'robust') - 2);
  t.is(r.calibration.eceBins, 15);
});

test('CLI: writes results.json, table and reliability SVG; rejects bad options', async (t) => {
  const out = join(mkdtempSync(join(tmpdir(), 'kiln-ce-')), 'run');
  const log = console.log;
  const err = console.error;
  let printed = '';
  console.log = (s: string) => { printed += s; };
  console.error = () => {};
  try {
    t.is(await command.run(['run', '--seeds', '1', '--steps', '100', '--n-train', '400', '--n-val', '200', '--n-test', '500', '--out', out, '--json']), 0);
  } finally {
    console.log = log;
    console.error = err;
  }
  const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  t.deepEqual(JSON.parse(printed).acceptance.length, res.acceptance.length);
  t.is(res.calibration.eceBins, 15);
  t.true(readFileSync(join(out, 'reliability.svg'), 'utf8').startsWith('<svg'));
  t.true(existsSync(join(out, 'table.txt')));
  await t.throwsAsync(() => command.run(['run', '--bogus']), { message: /unknown option/ });
  await t.throwsAsync(() => command.run(['run', '--agreement', '0.2']), { message: /agreement/ });
  await t.throwsAsync(() => command.run(['fit']), { message: /unknown verb/ });
  await t.throwsAsync(() => command.run(['run', '--robust', 'svm']), { message: /--robust/ });
  await t.throwsAsync(() => command.run(['run', '--core', 'cubic']), { message: /--core/ });
});

test('CLI: seeds whose data seeds would wrap past 2^32 and bin counts that would exhaust the heap are usage errors', async (t) => {
  // Seed s draws data with the 32-bit seeds 16 s + k: seed 2^28 would repeat seed 0's data sets.
  await t.throwsAsync(() => command.run(['run', '--seed', '268435456', '--seeds', '1']), { instanceOf: UsageError, message: /--seed must be an integer in \[0, 268435455\]/ });
  await t.throwsAsync(() => command.run(['run', '--seed', '268435455', '--seeds', '2']), { instanceOf: UsageError, message: /--seed must be an integer in \[0, 268435454\]/ });
  await t.throwsAsync(() => command.run(['run', '--bins', '1e9']), { instanceOf: UsageError, message: /--bins must be an integer in \[1, 10000\]/ });
  await t.throwsAsync(() => command.run(['run', '--rho=']), { instanceOf: UsageError, message: /--rho needs a value/ });
});

test('calibration tools: flat or zero-class logits, empty sets, huge bin counts, bad temperatures, seeds and column ranges are KilnErrors', (t) => {
  const P = [[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]];
  t.throws(() => accuracy([0.2, 0.8] as never, [0, 1]), { instanceOf: KilnError, message: /accuracy: logits must be \[n, K\] \(an array of rows\), got a flat array/ });
  t.throws(() => calibrateTemperature([0.2, 0.8] as never, [0, 1]), { instanceOf: KilnError, message: /flat array/ });
  t.throws(() => softmaxRows([[], []]), { instanceOf: KilnError, message: /K >= 1, got \[2, 0\]/ });
  t.throws(() => nll([], []), { instanceOf: KilnError, message: /nll: no rows/ });
  t.throws(() => brierScore([], []), { instanceOf: KilnError, message: /brierScore: no rows/ });
  t.throws(() => accuracy([], []), { instanceOf: KilnError, message: /accuracy: no rows/ });
  // A billion bins used to fill the heap until V8 aborted the process.
  t.throws(() => ece(P, [1, 0, 0], { bins: 1e9 }), { instanceOf: KilnError, message: /ece: bins must be an integer in \[1, 10000\]/ });
  t.is(calibrationReport(P, [1, 0, 0], { bins: 10_000 }).table.length, 10_000);
  for (const T of [0, -1, NaN, Infinity]) t.throws(() => scaleLogits(P, T), { instanceOf: KilnError, message: /scaleLogits: temperature must be a finite number > 0/ }, String(T));
  for (const seed of [-1, 0.5, NaN, 2 ** 32]) t.throws(() => generateShift(DEFAULT_SHIFT, 'id', 2, seed), { instanceOf: KilnError, message: /seed must be an integer in \[0, 2\^32\)/ }, String(seed));
  const data = generateShift(DEFAULT_SHIFT, 'id', 2, 0);
  t.throws(() => dropColumns(data, [100, 200]), { instanceOf: KilnError, message: /dropColumns: range \[100, 200\] is not a column range/ });
  t.throws(() => dropColumns(data, [3, 2]), { instanceOf: KilnError, message: /dropColumns/ });
  t.is(dropColumns(data, [2, 3]).dims, data.dims - 1);
});
