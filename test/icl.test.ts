// Tests for the `icl` recipe (arXiv 2208.01066): the prompt encoding and causal read-out, the
// curriculum, the function classes, the baselines against closed forms, the bootstrap, and a short
// training run that lowers the error (through the CLI, which writes the whole run folder).
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as kiln from '../src/index.js';
import { command } from '../src/recipes/icl/cli.js';
import {
  averaging, decisionTree, gradientBoosting, lasso, lassoFit, leastSquares, minNormLeastSquares, nearestNeighbours, symmetricEigen,
  type Context,
} from '../src/recipes/icl/baselines.js';
import { baselineErrors, bootstrapCurve, evaluateCurves, type Shift } from '../src/recipes/icl/evaluate.js';
import { buildModel, predict } from '../src/recipes/icl/model.js';
import { curriculumAt, curriculumEnd, defaultCurriculum, encodePrompts, rampAt, samplePrompts } from '../src/recipes/icl/prompts.js';
import { errorScale, Gaussian, mixSeed, sampleFunction } from '../src/recipes/icl/tasks.js';
import { modelErrors, modelFor, readConfig, resolveConfig, trainBatch, trainIcl, type IclConfigInput } from '../src/recipes/icl/train.js';
import { evaluateRun, plotRun } from '../src/recipes/icl/run.js';
import { formatTable } from '../src/recipes/icl/plot.js';
import { UsageError } from '../src/cli/args.js';

const ctxOf = (b: ReturnType<typeof samplePrompts>, p: number, k: number): { ctx: Context; q: Float64Array; y: number } => {
  const { n, d } = b;
  return {
    ctx: { xs: Float64Array.from(b.xs.subarray(p * n * d, (p * n + k) * d)), ys: Float64Array.from(b.ys.subarray(p * n, p * n + k)), k, d },
    q: Float64Array.from(b.xs.subarray((p * n + k) * d, (p * n + k + 1) * d)),
    y: b.clean[p * n + k],
  };
};

test('prompt encoding interleaves x_i and (f(x_i), 0, ..., 0)', (t) => {
  const B = 2, n = 3, d = 4;
  const b = samplePrompts({ task: 'linear', B, n, d, seed: 7 });
  const z = encodePrompts(b.xs, b.ys, B, n, d);
  t.is(z.length, B * 2 * n * d);
  for (let p = 0; p < B; p++)
    for (let i = 0; i < n; i++) {
      const xt = (p * 2 * n + 2 * i) * d, yt = xt + d;
      t.deepEqual(Array.from(z.subarray(xt, xt + d)), Array.from(b.xs.subarray((p * n + i) * d, (p * n + i + 1) * d)));
      t.is(z[yt], b.ys[p * n + i]);
      t.deepEqual(Array.from(z.subarray(yt + 1, yt + d)), [0, 0, 0]);
    }
  // Linear targets are w·x with one w per prompt: recover it by least squares from d points.
  const big = samplePrompts({ task: 'linear', B: 1, n: 8, d, seed: 3 });
  const w = minNormLeastSquares(ctxOf(big, 0, 8).ctx);
  for (let i = 0; i < 8; i++) {
    let y = 0;
    for (let j = 0; j < d; j++) y += w[j] * big.xs[i * d + j];
    t.true(Math.abs(y - big.ys[i]) < 1e-4);
  }
});

test('the model reads predictions at x positions, causally: f(x_k) never sees y_k or later', (t) => {
  kiln.manualSeed(0);
  const d = 3, n = 5;
  const model = buildModel({ nLayer: 1, nHead: 1, nEmbd: 16, d, points: n });
  const b = samplePrompts({ task: 'linear', B: 1, n, d, seed: 1 });
  const p0 = kiln.noGrad(() => predict(model, b).toArray() as number[][])[0];
  t.is(p0.length, n);
  const k = 2;
  const changed = { ...b, ys: Float32Array.from(b.ys) };
  changed.ys[k] += 10;
  const p1 = kiln.noGrad(() => predict(model, changed).toArray() as number[][])[0];
  for (let i = 0; i <= k; i++) t.is(p1[i], p0[i], `prediction ${i} must not depend on y_${k}`);
  for (let i = k + 1; i < n; i++) t.not(p1[i], p0[i], `prediction ${i} must depend on y_${k}`);
});

test('curriculum: the paper schedule (d = 20: dims 5→20 by 1, points 11→41 by 2, every 2000 steps) and zeroed inactive coordinates', (t) => {
  const c = defaultCurriculum(20, 41);
  t.deepEqual(curriculumAt(c, 0), { dims: 5, points: 11 });
  t.deepEqual(curriculumAt(c, 1999), { dims: 5, points: 11 });
  t.deepEqual(curriculumAt(c, 2000), { dims: 6, points: 13 });
  t.deepEqual(curriculumAt(c, 29999), { dims: 19, points: 39 });
  t.deepEqual(curriculumAt(c, 30000), { dims: 20, points: 41 });
  t.deepEqual(curriculumAt(c, 1e6), { dims: 20, points: 41 });
  t.is(curriculumEnd(c), 30000);
  t.is(rampAt({ start: 1, end: 4, inc: 2, interval: 10 }, 25), 4);
  // A longer first stage (hold), then the usual increments.
  const held = defaultCurriculum(10, 21, 300, 2500);
  t.deepEqual(curriculumAt(held, 2499), { dims: 5, points: 11 });
  t.deepEqual(curriculumAt(held, 2500), { dims: 6, points: 13 });
  t.deepEqual(curriculumAt(held, 2800), { dims: 7, points: 15 });
  t.is(curriculumEnd(held), 2500 + 4 * 300);
  const cfg = resolveConfig({ d: 10, points: 21, curriculumInterval: 100, batchSize: 8 });
  const b = trainBatch(cfg, 150); // dims 6, points 13
  t.is(b.n, 13);
  for (let i = 0; i < b.B * b.n; i++) {
    for (let j = 0; j < 6; j++) t.not(b.xs[i * 10 + j], 0);
    for (let j = 6; j < 10; j++) t.is(b.xs[i * 10 + j], 0);
  }
  t.is(resolveConfig({ d: 5, points: 11 }).curriculum, null, 'd = 5, 11 points: nothing to grow');
  // The batch of a step is a pure function of (seed, step): exact resume.
  t.deepEqual(trainBatch(cfg, 150).xs, b.xs);
});

test('function classes: sparse support, tree evaluation, ReLU-net scale, noisy targets', (t) => {
  const g = new Gaussian(5);
  const d = 10;
  const e = new Float64Array(d);
  for (let trial = 0; trial < 20; trial++) {
    const f = sampleFunction('sparse', g, d, 6, { sparsity: 3 });
    const support: number[] = [];
    for (let i = 0; i < d; i++) {
      e.fill(0);
      e[i] = 1;
      if (f.f(e, 0) !== 0) support.push(i);
    }
    t.is(support.length, 3);
    t.true(support.every((i) => i < 6), 'support among the active coordinates');
  }
  // Trees: a depth-4 tree takes at most 16 values, and each is one of its leaves.
  const tree = sampleFunction('tree', g, 5, 5, { depth: 4 });
  const vals = new Set<number>();
  const x = new Float64Array(5);
  for (let s = 0; s < 2000; s++) {
    for (let i = 0; i < 5; i++) x[i] = g.normal();
    vals.add(tree.f(x, 0));
  }
  t.true(vals.size <= 16 && vals.size >= 2);
  // ReLU nets are scaled by sqrt(2/100): E[y²] = d.
  const b = samplePrompts({ task: 'relu2nn', B: 400, n: 20, d: 4, seed: 2 });
  let ms = 0;
  for (const y of b.ys) ms += y * y;
  ms /= b.ys.length;
  t.true(Math.abs(ms / 4 - 1) < 0.2, `E[y²]/d = ${ms / 4}`);
  t.is(errorScale('relu2nn', 4), 4);
  t.is(errorScale('sparse', 20, { sparsity: 3 }), 3);
  t.is(errorScale('tree', 20), 1);
  const nb = samplePrompts({ task: 'noisy', taskOptions: { noiseStd: 0.5 }, B: 200, n: 10, d: 3, seed: 4 });
  let v = 0;
  for (let i = 0; i < nb.ys.length; i++) v += (nb.ys[i] - nb.clean[i]) ** 2;
  t.true(Math.abs(v / nb.ys.length - 0.25) < 0.05);
});

test('least squares: exact at k >= d on noiseless data, the min-norm interpolant below, and 1 - k/d on average', (t) => {
  const d = 6, n = 13;
  const b = samplePrompts({ task: 'linear', B: 600, n, d, seed: 11 });
  for (let k = d; k < n; k++) {
    const { ctx, q, y } = ctxOf(b, 0, k);
    t.true(Math.abs(leastSquares.predict(ctx, q) - y) < 1e-6, `k = ${k}`);
  }
  // k < d: X w = y and w in the row space of X (so it has the least norm).
  const { ctx } = ctxOf(b, 1, 3);
  const w = minNormLeastSquares(ctx);
  for (let r = 0; r < 3; r++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += ctx.xs[r * d + j] * w[j];
    t.true(Math.abs(s - ctx.ys[r]) < 1e-8);
  }
  const err = baselineErrors(leastSquares, b, d);
  const curve = bootstrapCurve(err, b.B, n, 200);
  for (let k = 0; k < d - 1; k++) t.true(Math.abs(curve.errors[k].mean - (1 - k / d)) < 0.12, `k = ${k}: ${curve.errors[k].mean} vs ${1 - k / d}`);
  t.true(curve.errors[d].mean < 1e-8);
  // Jacobi eigen-decomposition reconstructs its matrix.
  const a = Float64Array.from([4, 1, 2, 1, 3, 0, 2, 0, 5]);
  const { w: ev, v } = symmetricEigen(a, 3);
  for (let i = 0; i < 3; i++)
    for (let j = 0; j < 3; j++) {
      let s = 0;
      for (let e = 0; e < 3; e++) s += v[i * 3 + e] * ev[e] * v[j * 3 + e];
      t.true(Math.abs(s - a[i * 3 + j]) < 1e-10);
    }
});

test('averaging, 3-NN and Lasso against closed forms', (t) => {
  const ctx: Context = { xs: Float64Array.from([1, 0, 0, 2, 3, 3, 10, 10]), ys: Float64Array.from([1, 2, 3, 4]), k: 4, d: 2 };
  const q = Float64Array.from([1, 1]);
  // w = mean(x_i y_i) = ([1,0] + [0,4] + [9,9] + [40,40]) / 4
  t.is(averaging.predict(ctx, q), (1 + 0 + 9 + 40 + 0 + 4 + 9 + 40) / 4);
  t.is(nearestNeighbours(3).predict(ctx, q), (1 + 2 + 3) / 3);
  t.is(nearestNeighbours(3).predict({ ...ctx, k: 2 }, q), 1.5, 'fewer than 3 examples: all of them');
  t.is(averaging.predict({ ...ctx, k: 0 }, q), 0);
  // Lasso: zero above alpha_max = max|Xᵀy|/k, least squares as alpha -> 0, KKT in between.
  const b = samplePrompts({ task: 'sparse', B: 1, n: 12, d: 5, taskOptions: { sparsity: 2 }, seed: 9 });
  const c = ctxOf(b, 0, 12).ctx;
  const xty = new Float64Array(5);
  for (let r = 0; r < 12; r++) for (let j = 0; j < 5; j++) xty[j] += c.xs[r * 5 + j] * c.ys[r];
  const amax = Math.max(...xty.map(Math.abs)) / 12;
  t.true(lassoFit(c, amax * 1.01).every((v) => v === 0));
  const ls = minNormLeastSquares(c), l0 = lassoFit(c, 1e-9);
  for (let j = 0; j < 5; j++) t.true(Math.abs(ls[j] - l0[j]) < 1e-5);
  const alpha = 0.1, wl = lassoFit(c, alpha);
  for (let j = 0; j < 5; j++) {
    let grad = 0; // (1/k) X_jᵀ (y − Xw)
    for (let r = 0; r < 12; r++) {
      let pr = 0;
      for (let l = 0; l < 5; l++) pr += c.xs[r * 5 + l] * wl[l];
      grad += c.xs[r * 5 + j] * (c.ys[r] - pr);
    }
    grad /= 12;
    if (wl[j] !== 0) t.true(Math.abs(grad - alpha * Math.sign(wl[j])) < 1e-5);
    else t.true(Math.abs(grad) <= alpha + 1e-6);
  }
  t.true(Number.isFinite(lasso(0.01).predict(c, q.length === 5 ? q : new Float64Array(5))));
});

test('greedy trees fit a sign tree exactly and boosting lowers the training error', (t) => {
  // f(x) = 3 if x0 > 0 else (x1 > 0 ? 1 : -2): a depth-2 tree over signs.
  const g = new Gaussian(1);
  const k = 60, d = 3;
  const xs = new Float64Array(k * d), ys = new Float64Array(k);
  const f = (x: ArrayLike<number>, o: number) => (x[o] > 0 ? 3 : x[o + 1] > 0 ? 1 : -2);
  for (let r = 0; r < k; r++) {
    for (let j = 0; j < d; j++) xs[r * d + j] = g.normal();
    ys[r] = f(xs, r * d);
  }
  const ctx = { xs, ys, k, d };
  for (let s = 0; s < 50; s++) {
    const q = Float64Array.from([g.normal(), g.normal(), g.normal()]);
    if (Math.abs(q[0]) < 0.3 || Math.abs(q[1]) < 0.3) continue; // near a threshold the learned split may differ
    t.is(decisionTree(4).predict(ctx, q), f(q, 0));
  }
  const boosted = gradientBoosting(50, 4, 0.1);
  let e = 0;
  for (let r = 0; r < k; r++) e += (boosted.predict(ctx, xs.subarray(r * d, r * d + d)) - ys[r]) ** 2;
  t.true(e / k < 0.05 * 4, `boosted training MSE ${e / k}`); // (1 - 0.1)^50 of the initial residual
});

test('bootstrap intervals bracket the mean and collapse for constant errors', (t) => {
  const P = 200, n = 3;
  const err = new Float64Array(P * n);
  const g = new Gaussian(3);
  for (let i = 0; i < P * n; i++) err[i] = i % n === 2 ? 0.5 : Math.abs(g.normal());
  const c = bootstrapCurve(err, P, n, 500, 1);
  for (const e of c.errors) t.true(e.lo <= e.mean && e.mean <= e.hi);
  t.is(c.errors[2].lo, 0.5);
  t.is(c.errors[2].hi, 0.5);
  t.true(c.errors[0].hi - c.errors[0].lo < 0.3);
});

test('evaluation under the orthant shift puts the query in the opposite orthant', (t) => {
  const b = samplePrompts({ task: 'linear', B: 4, n: 5, d: 3, inputs: { kind: 'orthant' }, seed: 2 });
  for (let p = 0; p < 4; p++)
    for (let j = 0; j < 3; j++) {
      const s0 = Math.sign(b.xs[(p * 5) * 3 + j]);
      for (let i = 1; i < 4; i++) t.is(Math.sign(b.xs[(p * 5 + i) * 3 + j]), s0);
      t.is(Math.sign(b.xs[(p * 5 + 4) * 3 + j]), -s0);
    }
  const r = evaluateCurves({ task: 'linear', d: 3, points: 5, shift: 'orthant', prompts: 50 });
  t.true(r.curves['least squares'].errors[4].mean < 1e-6, 'least squares is exact at k > d whatever the inputs');
});

test('a short training run lowers the error; eval and plot write the run folder', async (t) => {
  // d = 1 leaves the loss plateau within a few hundred steps; d = 5 needs thousands (runDefault).
  const dir = mkdtempSync(join(tmpdir(), 'kiln-icl-'));
  const cfg = { d: 1, points: 5, model: 'custom' as const, nLayer: 2, nHead: 1, nEmbd: 32, lr: 1e-3, steps: 400, evalEvery: 400, evalPrompts: 512 };
  const before = (() => {
    const m = modelFor(resolveConfig(cfg));
    const e = modelErrors(m, samplePrompts({ task: 'linear', B: 512, n: 5, d: 1, seed: mixSeed(0, 2) }), 1);
    let s = 0;
    for (let p = 0; p < 512; p++) s += e[p * 5 + 1] + e[p * 5 + 2];
    return s / 1024;
  })();
  const r = await trainIcl(cfg, dir, { progress: 'none' });
  t.is(r.step, 400);
  const last = r.evals[r.evals.length - 1];
  const after = (last.err_k1 + last.err_k2) / 2;
  t.true(after < 0.7 * before, `error at k = 1, 2: ${after} after 400 steps vs ${before} at init`);
  for (const f of ['config.json', 'metrics.jsonl', 'checkpoint.safetensors']) t.true(existsSync(join(dir, f)), f);
  const logs: string[] = [];
  const orig = console.log;
  console.log = (s: string) => logs.push(s);
  try {
    t.is(await command.run(['eval', '--run', dir, '--prompts', '300', '--json']), 0);
    const rep = JSON.parse(logs.pop()!)[0];
    t.is(rep.step, 400);
    t.deepEqual(Object.keys(rep.curves), ['transformer', 'least squares', 'averaging', '3-NN']);
    t.true(rep.curves.transformer.errors[1].mean < rep.curves.averaging.errors[1].mean);
    t.true(readFileSync(join(dir, 'eval.svg'), 'utf8').startsWith('<svg'));
    t.true(JSON.parse(readFileSync(join(dir, 'eval.json'), 'utf8')).curves['least squares'].errors.length === 5);
    t.is(await command.run(['plot', '--run', dir]), 0);
    await t.throwsAsync(command.run(['eval']), { message: /--run DIR is required/ });
    await t.throwsAsync(command.run(['train', '--task', 'quadratic']), { message: /--task must be one of/ });
  } finally {
    console.log = orig;
  }
  // Training again resumes from the checkpoint: nothing left to do.
  t.is((await trainIcl(cfg, dir, { progress: 'none' })).step, 400);
});

test('cli: zero steps, a warm-up as long as a cosine run, a sparsity past d, an aliasing seed and a missing value are usage errors', async (t) => {
  const bad = async (args: string[], message: RegExp) => t.throwsAsync(command.run(['train', ...args]), { instanceOf: UsageError, message }, args.join(' '));
  await bad(['--steps', '0'], /--steps must be an integer >= 1, got 0/);
  await bad(['--decay', 'cosine', '--warmup', '10', '--steps', '10'], /--warmup \(10\) must be less than --steps \(10\)/);
  await bad(['--decay', 'cosine', '--warmup', '5000'], /--warmup \(5000\) must be less than --steps \(5000\)/);
  await bad(['--task', 'sparse', '--d', '4', '--sparsity', '5'], /--sparsity \(5\) must be at most --d \(4\)/);
  await bad(['--seed', '4294967296'], /--seed must be an integer in \[0, 4294967295\]/);
  await bad(['--decay'], /--decay needs a value/);
  await bad(['--model', 'toString'], /--model must be tiny, small or standard/);
  if (!kiln.cuda.isAvailable()) await bad(['--device', 'cuda'], /--device cuda: CUDA is not available/);
});

test('config: bad options are KilnErrors naming the option (were TypeErrors, NaN losses or silent); a sparse default fits d', (t) => {
  const bad = (c: IclConfigInput, message: RegExp) => t.throws(() => resolveConfig(c), { instanceOf: kiln.KilnError, message }, JSON.stringify(c));
  bad({ task: 'quadratic' as never }, /icl config: task must be one of/);
  bad({ model: 'huge' as never }, /icl config: model must be one of tiny, small, standard or custom, got 'huge'/);
  bad({ batchSize: 0 }, /batchSize must be a positive integer, got 0/);
  bad({ batchSize: 1e9 }, /batchSize x 2 points x \(d \+ 1\) must stay below 2\^31 numbers/);
  bad({ evalPrompts: 0 }, /evalPrompts must be a positive integer/);
  bad({ d: 1.5 }, /d must be a positive integer/);
  bad({ warmup: -1 }, /warmup must be an integer >= 0/);
  bad({ decay: 'linear' as never }, /decay must be 'none' or 'cosine', got 'linear'/);
  bad({ seed: -1 }, /seed must be an integer in \[0, 2\^32\)/);
  bad({ task: 'sparse', d: 4, taskOptions: { sparsity: 0 } }, /sparsity must be an integer in \[1, d = 4\]/);
  bad({ task: 'noisy', taskOptions: { noiseStd: -1 } }, /noiseStd must be a finite number >= 0/);
  bad({ task: 'tree', taskOptions: { depth: 0 } }, /depth must be an integer in \[1, 20\]/);
  bad({ task: 'relu2nn', taskOptions: { hidden: 0 } }, /hidden must be a positive integer/);
  // errorScale divides by the sparsity: with d = 2 the default 3 would normalise by 3 nonzeros out of 2.
  t.is(resolveConfig({ task: 'sparse', d: 2 }).taskOptions.sparsity, 2);
  t.is(resolveConfig({ task: 'sparse', d: 5 }).taskOptions.sparsity, 3);
});

test('run folders: a missing, corrupt or foreign config, a mismatched resume and a garbage eval.json are KilnErrors', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-icl-bad-'));
  t.throws(() => readConfig(dir), { instanceOf: kiln.KilnError, message: /no config\.json/ });
  writeFileSync(join(dir, 'config.json'), '{ "task": ');
  t.throws(() => readConfig(dir), { instanceOf: kiln.KilnError, message: /config\.json: cannot read the run config/ });
  writeFileSync(join(dir, 'config.json'), '[1]');
  t.throws(() => readConfig(dir), { instanceOf: kiln.KilnError, message: /config\.json: not a JSON object/ });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ task: 'linear' }));
  t.throws(() => readConfig(dir), { instanceOf: kiln.KilnError, message: /config\.json: d is undefined, not an integer >= 1/ });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(resolveConfig({ d: 2 })));
  await t.throwsAsync(trainIcl({ d: 3 }, dir, { progress: 'none' }), { instanceOf: kiln.KilnError, message: /holds a run with a different recipe: --d 3 \(the run has 2\);/ });
  writeFileSync(join(dir, 'eval.json'), 'garbage');
  await t.throwsAsync(plotRun(dir), { instanceOf: kiln.KilnError, message: /eval\.json: cannot read the evaluation/ });
  writeFileSync(join(dir, 'eval.json'), JSON.stringify({ task: 'linear' }));
  await t.throwsAsync(plotRun(dir), { instanceOf: kiln.KilnError, message: /eval\.json: not an icl evaluation/ });
  await t.throwsAsync(evaluateRun(dir, { prompts: 0 }), { instanceOf: kiln.KilnError, message: /prompts must be a positive integer, got 0/ });
  await t.throwsAsync(evaluateRun(dir, { slowPrompts: 1.5 }), { instanceOf: kiln.KilnError, message: /slowPrompts must be a positive integer/ });
  await t.throwsAsync(evaluateRun(dir, { shifts: ['sideways' as Shift] }), { instanceOf: kiln.KilnError, message: /unknown shift 'sideways'/ });
});

test('cli: resuming a run folder keeps its saved recipe; other values and fewer steps than the checkpoint are refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-icl-resume-'));
  const train = (...args: string[]) => command.run(['train', '--no-eval', '--json', '--out', dir, ...args]);
  const log = console.log, err = process.stderr.write;
  const notes: string[] = [];
  console.log = () => {};
  process.stderr.write = ((s: string) => { notes.push(String(s)); return true; }) as typeof process.stderr.write;
  try {
    t.is(await train('--d', '1', '--points', '3', '--model', 'tiny', '--batch', '4', '--lr', '1e-3', '--curriculum-interval', '0', '--steps', '2'), 0);
    await t.throwsAsync(train('--steps', '3', '--lr', '5', '--batch', '8'), { instanceOf: UsageError, message: /other settings: --batch 8 \(the run has 4\), --lr 5 \(the run has 0\.001\)/ });
    await t.throwsAsync(train('--steps', '1'), { instanceOf: UsageError, message: /already trained to step 2; --steps 1 would train nothing/ });
    t.is(await train('--steps', '3', '--lr', '1e-3'), 0);
  } finally {
    console.log = log;
    process.stderr.write = err;
  }
  t.true(notes.some((s) => /resuming .* at step 2 of 3 with its saved recipe \(.*--batch 4.*\)/.test(s)), notes.join(''));
  const cfg = readConfig(dir);
  t.like(cfg, { steps: 3, batchSize: 4, lr: 1e-3, d: 1, points: 3, model: 'tiny', curriculum: null });
});

test('formatTable: columns as wide as their widest cell, so large errors under a shift stay apart', (t) => {
  const e = (m: number) => ({ mean: m, lo: m * 0.5, hi: m * 2 });
  const r = { task: 'linear_regression', d: 2, points: 3, shift: 'scale-x', curves: {
    transformer: { errors: [0, 1, 2].map((k) => e(445.271 * (k + 1))) }, least_squares: { errors: [0, 1, 2].map(() => e(0.805)) } } };
  const lines = formatTable(r as unknown as Parameters<typeof formatTable>[0]).split('\n').slice(1);
  t.true(lines.every((l) => l.length === lines[0].length), lines.join('\n'));
  for (const l of lines.slice(1)) t.regex(l, /\] +\d/, 'two cells never touch');
});
