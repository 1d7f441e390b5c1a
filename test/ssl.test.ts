// Tests for the `ssl` recipe (arXiv 2209.06235): the synthetic world and its augmentation, the
// paired view batches, the downstream tasks, BatchNorm1d against a float64 twin and finite
// differences, the CISSL and DISSL objectives against plain float64 recomputations from the heads'
// outputs, the linear probe, the qualitative result at small scale, and the CLI.
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as kiln from '../src/index.js';
import { KilnError } from '../src/errors.js';
import { Gaussian } from '../src/recipes/icl/tasks.js';
import { DEFAULT_WORLD, downstreamTasks, World } from '../src/recipes/ssl/data.js';
import { SSLModel, swapViews, DEFAULT_MODEL } from '../src/recipes/ssl/model.js';
import { linearProbe } from '../src/recipes/ssl/probe.js';
import { DEFAULT_EXPERIMENT as D, runExperiment, viewBatch, type ExperimentConfig } from '../src/recipes/ssl/experiment.js';
import { runKilnQuiet } from './helpers/cli.js';

const rows = (t: kiln.Tensor): number[][] => t.toArray() as number[][];

test('World: views are a pure function of the stream; the scene moves with the shift; bad ids and configs are refused', (t) => {
  const w = new World(DEFAULT_WORLD, 3);
  const a = w.render([0, 5, 5], new Gaussian(11)), b = w.render([0, 5, 5], new Gaussian(11));
  t.deepEqual(a.x, b.x);
  t.is(a.dims, 3 * 16 * 16);
  t.is(a.n, 3);
  // Two views of prototype 5 differ (augmented), but are closer to each other than to prototype 0's on average.
  const w0 = new World({ ...DEFAULT_WORLD, noise: 0, distractor: 0, colorJitter: 0, widthJitter: 1, maxShift: 0 }, 3);
  const c = w0.render([5, 5], new Gaussian(1));
  t.deepEqual(c.x.slice(0, c.dims), c.x.slice(c.dims), 'without augmentation the two views are identical');
  const g = new Gaussian(2);
  let same = 0, other = 0;
  for (let k = 0; k < 40; k++) {
    const v = w.render([5, 5, 0], g);
    const d = (i: number, j: number) => { let s = 0; for (let p = 0; p < v.dims; p++) s += (v.x[i * v.dims + p] - v.x[j * v.dims + p]) ** 2; return s; };
    same += d(0, 1);
    other += d(0, 2);
  }
  t.true(same < other, `${same} vs ${other}`);
  const e = t.throws(() => w.render([64], new Gaussian(0)));
  t.true(e instanceof KilnError && e.code === 'INVALID_ARGUMENT' && /prototype 64/.test(e.message));
  t.throws(() => new World({ ...DEFAULT_WORLD, prototypes: 1 }, 0), { instanceOf: KilnError });
  t.throws(() => new World({ ...DEFAULT_WORLD, colorJitter: 1 }, 0), { instanceOf: KilnError });
  t.throws(() => new World({ ...DEFAULT_WORLD, noise: -1 }, 0), { instanceOf: KilnError });
});

test('viewBatch: N distinct prototypes, rows i and i + N are views of the same one; labelled views cycle through prototypes', (t) => {
  const w = new World({ ...DEFAULT_WORLD, prototypes: 10 }, 0);
  const b = viewBatch(w, 6, 4, 7);
  t.is(b.ids.length, 12);
  t.is(new Set(b.ids.slice(0, 6)).size, 6);
  for (let i = 0; i < 6; i++) t.is(b.ids[i], b.ids[i + 6]);
  t.deepEqual(viewBatch(w, 6, 4, 7).views.x, b.views.x);
  t.notDeepEqual(viewBatch(w, 6, 4, 8).ids, b.ids);
  t.is(viewBatch(w, 50, 4, 7).ids.length, 20, 'the batch is capped at the number of prototypes');
  const l = w.labelled(3, new Gaussian(0));
  t.deepEqual([...l.ids.slice(0, 12)], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
  t.is(l.images.n, 30);
});

test('downstreamTasks: the prototype task over the first prototypes and balanced random groupings of all', (t) => {
  const tasks = downstreamTasks(12, 5, 3, 4, 0);
  t.is(tasks.length, 4);
  t.is(tasks[0].classes, 5);
  t.deepEqual([...tasks[0].labelOf], [0, 1, 2, 3, 4, -1, -1, -1, -1, -1, -1, -1]);
  for (const task of tasks.slice(1)) {
    t.is(task.classes, 4);
    const counts = [0, 0, 0, 0];
    for (const l of task.labelOf) counts[l]++;
    t.deepEqual(counts, [3, 3, 3, 3]);
  }
  t.notDeepEqual([...tasks[1].labelOf], [...tasks[2].labelOf]);
  t.deepEqual(downstreamTasks(12, 5, 3, 4, 0), tasks, 'seeded');
  t.throws(() => downstreamTasks(12, 13, 1, 2, 0), { instanceOf: KilnError });
});

test('BatchNorm1d: batch statistics, running statistics (unbiased variance) and eval mode against a float64 twin', (t) => {
  kiln.manualSeed(0);
  const bn = new kiln.nn.BatchNorm1d(3, { dtype: 'float64', momentum: 0.25 });
  const x = kiln.randn([5, 3], { dtype: 'float64' }).mul(2).add(1);
  const xs = rows(x);
  const y = rows(bn.forward(x));
  for (let j = 0; j < 3; j++) {
    const col = xs.map((r) => r[j]);
    const m = col.reduce((a, b) => a + b, 0) / 5;
    const v = col.reduce((a, b) => a + (b - m) ** 2, 0) / 5;
    for (let i = 0; i < 5; i++) t.true(Math.abs(y[i][j] - (col[i] - m) / Math.sqrt(v + 1e-5)) < 1e-12);
    t.true(Math.abs((bn.runningMean.toArray() as number[])[j] - 0.25 * m) < 1e-12);
    t.true(Math.abs((bn.runningVar.toArray() as number[])[j] - (0.75 + 0.25 * v * 5 / 4)) < 1e-12);
  }
  bn.eval();
  const rm = bn.runningMean.toArray() as number[], rv = bn.runningVar.toArray() as number[];
  const ye = rows(bn.forward(x));
  for (let i = 0; i < 5; i++) for (let j = 0; j < 3; j++) t.true(Math.abs(ye[i][j] - (xs[i][j] - rm[j]) / Math.sqrt(rv[j] + 1e-5)) < 1e-12);
  t.deepEqual(bn.runningMean.toArray(), rm, 'eval mode leaves the running statistics alone');
  t.true(Object.keys(bn.stateDict()).includes('runningVar'));
  t.throws(() => bn.forward(kiln.zeros([2, 4], { dtype: 'float64' })), { instanceOf: KilnError, message: /BatchNorm1d.*\[2, 4\]/ });
  bn.train();
  t.throws(() => bn.forward(kiln.zeros([1, 3], { dtype: 'float64' })), { instanceOf: KilnError });
});

test('BatchNorm1d: gradients through the batch statistics match finite differences', (t) => {
  kiln.manualSeed(1);
  const bn = new kiln.nn.BatchNorm1d(4, { dtype: 'float64' });
  kiln.noGrad(() => {
    kiln.nn.copyInto(bn.weight!, kiln.randn([4], { dtype: 'float64' }));
    kiln.nn.copyInto(bn.bias!, kiln.randn([4], { dtype: 'float64' }));
  });
  const x = kiln.randn([6, 4], { dtype: 'float64', requiresGrad: true });
  const w = kiln.randn([6, 4], { dtype: 'float64' });
  const r = kiln.gradcheck((a) => bn.forward(a).mul(w).sum(), [x], { atol: 1e-6, rtol: 1e-4 });
  t.true(r.ok, JSON.stringify(r.worst));
});

const logSoftmax = (v: number[]): number[] => {
  const m = Math.max(...v);
  const l = Math.log(v.reduce((a, b) => a + Math.exp(b - m), 0)) + m;
  return v.map((x) => x - l);
};
const unit = (v: number[]) => { const n = Math.hypot(...v); return v.map((x) => x / n); };

test('CISSL objective: the linear predictor against the MLP projector, self pair kept, targets 0.5 / 0.5 (float64 recomputation)', (t) => {
  kiln.manualSeed(2);
  const cfg = { ...DEFAULT_MODEL, hidden: 8, zDim: 6, headHidden: 8, projDim: 5, temperature: 0.3 };
  const m = new SSLModel('cissl', 10, cfg);
  m.to('float64');
  const views = kiln.randn([8, 10], { dtype: 'float64' });
  const loss = m.terms(views).loss.item();
  const z = m.encoder.forward(views);
  const q = rows(m.predictor!.forward(z)).map(unit), k = rows(m.projector.forward(z)).map(unit);
  let ref = 0;
  for (let i = 0; i < 8; i++) {
    const lp = logSoftmax(k.map((kj) => q[i].reduce((s, v, d) => s + v * kj[d], 0) / 0.3));
    ref += -0.5 * (lp[i] + lp[(i + 4) % 8]);
  }
  t.true(Math.abs(loss - ref / 8) < 1e-10, `${loss} vs ${ref / 8}`);
  t.throws(() => m.terms(kiln.randn([3, 10], { dtype: 'float64' })), { instanceOf: KilnError });
});

test('DISSL objective: distillation - lambda * maximality + beta * determinism/invariance (float64 recomputation)', (t) => {
  kiln.manualSeed(3);
  const cfg = { ...DEFAULT_MODEL, hidden: 8, zDim: 6, headHidden: 8, classes: 7, disslTemperature: 0.8, lambdaMaximality: 1.7, betaDetInv: 0.6 };
  const m = new SSLModel('dissl', 10, cfg);
  m.to('float64');
  const views = kiln.randn([6, 10], { dtype: 'float64' });
  const terms = m.terms(views);
  const z = m.encoder.forward(views);
  const T = rows(m.projector.forward(z)), S = rows(m.predictor!.forward(z));
  const n = 3, tauT = 0.4, tauS = 0.8;
  const p = T.map((r) => logSoftmax(r.map((v) => v / tauT)).map(Math.exp));
  const ce = (pi: number[], logits: number[], tau: number) => { const l = logSoftmax(logits.map((v) => v / tau)); return -pi.reduce((s, v, c) => s + v * l[c], 0); };
  let distill = 0, det = 0;
  for (let i = 0; i < 2 * n; i++) {
    const j = (i + n) % (2 * n);
    distill += ce(p[i], S[j], tauS) / (2 * n);
    det += ce(p[i], T[j], tauT) / (2 * n);
  }
  let hm = 0;
  for (const half of [p.slice(0, n), p.slice(n)]) {
    const bar = half[0].map((_, c) => half.reduce((s, r) => s + r[c], 0) / n);
    hm += -bar.reduce((s, v) => s + (v > 0 ? v * Math.log(v) : 0), 0) / 2;
  }
  const close = (a: number, b: number) => Math.abs(a - b) < 1e-10;
  t.true(close(terms.distill.item(), distill));
  t.true(close(terms.detInv.item(), det));
  t.true(close(terms.maximality.item(), hm));
  t.true(close(terms.loss.item(), distill - 1.7 * hm + 0.6 * det));
  t.deepEqual(rows(swapViews(kiln.tensor([[1], [2], [3], [4]]))), [[3], [4], [1], [2]]);
  t.throws(() => new SSLModel('byol' as never, 10, cfg), { instanceOf: KilnError });
});

test('linearProbe: near-perfect on linearly separable classes, chance on random labels', (t) => {
  const g = new Gaussian(5);
  const make = (n: number, random: boolean) => {
    const x = new Float32Array(n * 6), y = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      y[i] = i % 3;
      for (let d = 0; d < 6; d++) x[i * 6 + d] = 3 * g.normal() + (random ? 0 : (d === y[i] ? 12 : 0));
      if (random) y[i] = g.int(3);
    }
    return { s: { x, n, dims: 6 }, y };
  };
  const a = make(150, false), b = make(150, false);
  const r = linearProbe(a.s, a.y, b.s, b.y, 3);
  t.true(r.test > 0.95, String(r.test));
  const c = make(300, true), d = make(300, true);
  const q = linearProbe(c.s, c.y, d.s, d.y, 3);
  t.true(q.test < 0.5, String(q.test));
  t.throws(() => linearProbe(a.s, a.y.slice(1), b.s, b.y, 3), { instanceOf: KilnError });
});

// The paper's qualitative result at small scale: with the same encoder, steps and probe, CISSL's
// representation is linearly better than SimCLR's. The default run shows it on 3 of 3 seeds
// (README); the test runs one seed of a narrower, shorter configuration (about 40 s on 2 threads;
// seeds 0 and 1 gave +1.5 / +3.2 points on the prototype / coarse tasks).
const SMALL: ExperimentConfig = {
  ...D,
  model: { ...D.model, hidden: 256, headHidden: 256 },
  train: { ...D.train, steps: 1000 },
  objectives: ['simclr', 'cissl'],
  baselines: false,
  seeds: 1,
};

test.serial('small-scale result: CISSL beats SimCLR in linear-probe accuracy; no tensor outlives the run', async (t) => {
  const before = kiln.memory().tensors;
  const r = await runExperiment(SMALL);
  t.is(kiln.memory().tensors, before);
  const diff = (metric: string) => r.comparisons.find((x) => x.method === 'cissl' && x.metric === metric)!.meanDiff;
  t.true(diff('coarseAcc') > 0.015, JSON.stringify(r.summary));
  t.true(diff('prototypeAcc') > 0, JSON.stringify(r.summary));
  for (const s of r.summary) t.true(s.prototypeAcc > 0.8, `${s.method} learned the prototypes: ${s.prototypeAcc}`);
  t.deepEqual(r.acceptance.map((a) => a.pass), [true]);
});

test('kiln ssl run: a tiny end-to-end run writes its results; bad options are usage errors', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'kiln-ssl-'));
  const bad = [['--objectives', 'byol'], ['--noise', '-1'], ['--steps', '0'], ['--lr', '2'], ['--bogus', '1'], ['--batch', '8', '--prototypes', '6']].map((argv) => ['ssl', 'run', ...argv, '--out', out]);
  const { codes: [code, ...badCodes], logs } = await runKilnQuiet(['ssl', 'run', '--steps', '3', '--batch', '4', '--prototypes', '6', '--seeds', '1', '--z-dim', '8', '--classes', '5', '--out', out], ...bad);
  t.is(code, 0, logs.join('\n'));
  for (const f of ['results.json', 'table.txt', 'probe.svg']) t.true(existsSync(join(out, f)), f);
  const r = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  t.deepEqual(r.summary.map((s: { method: string }) => s.method), ['simclr', 'cissl', 'dissl', 'supervised', 'random-init', 'pixels']);
  t.is(r.acceptance.length, 2);
  for (const s of r.scores) t.true(s.prototypeAcc >= 0 && s.prototypeAcc <= 1);
  t.true(/paired by seed, against SimCLR/.test(readFileSync(join(out, 'table.txt'), 'utf8')));
  t.deepEqual(badCodes, [2, 2, 2, 2, 2, 2]);
  t.regex(readFileSync(join(out, 'table.txt'), 'utf8'), /3 steps of 4 prototypes x 2 views/);
});
