// Tests for the `diffusion-lm` recipe (arXiv 2205.14217): E2E parsing and the MR-disjoint split, the
// training objective against a plain float64 recomputation from the same random draws, sampling with
// the clamping trick, the control classifier's guidance (it must raise log p(c | x) and respect the
// fluency term), exact-match scoring, and a tiny end-to-end run of the CLI on a fixture slice of E2E.
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as kiln from '../src/index.js';
import { KilnError } from '../src/errors.js';
import {
  containsRun, encodePadded, fieldLabels, fieldSpace, parseControlTargets, parseE2E, splitByMR, targetClass, verbatimRate, buildTokenizer,
} from '../src/recipes/diffusion-lm/data.js';
import { DiffusionLM, nearestWords, sample } from '../src/recipes/diffusion-lm/model.js';
import { ContentClassifier, contentGuide, controlLogProb, targetMask } from '../src/recipes/diffusion-lm/control.js';
import { perplexity, teacherRows, trainTeacher } from '../src/recipes/diffusion-lm/teacher.js';
import { binomialUpperTail, decodeRows, DEFAULT_EXPERIMENT as D, resolveDataDir, runExperiment, unseenBigramRate } from '../src/recipes/diffusion-lm/experiment.js';
import { runKiln } from '../src/cli/kiln.js';

const FIXTURE = join(process.cwd(), 'test', 'fixtures', 'e2e-mini');
const LINES = [
  'name : Aromi | Type : pub | food : Italian | customer rating : 5 out of 5||Aromi is an Italian pub rated 5 out of 5 .',
  'name : Aromi | Type : pub | food : Italian | customer rating : 5 out of 5||The pub Aromi serves Italian food .',
  'name : The Mill | area : riverside | family friendly : yes||The Mill is a family - friendly place by the riverside .',
  'name : Cocum | food : French||Cocum serves French food .',
].join('\n');

test('parseE2E: fields with spaces, values, text; malformed lines refused with the line number', (t) => {
  const ex = parseE2E(LINES + '\n\n');
  t.is(ex.length, 4);
  t.deepEqual(ex[0].mr, { name: 'Aromi', Type: 'pub', food: 'Italian', 'customer rating': '5 out of 5' });
  t.is(ex[2].mr['family friendly'], 'yes');
  t.is(ex[3].text, 'Cocum serves French food .');
  for (const [bad, why] of [['name : A', "no '||'"], ['name A||x', "no ' : '"], ['name : A||  ', 'empty text'], ['name : A | name : B||x', 'given twice']]) {
    const e = t.throws(() => parseE2E(`${LINES}\n${bad}`), { instanceOf: KilnError });
    t.true(e!.message.includes('line 5') && e!.message.includes(why), e!.message);
  }
});

test('splitByMR: no meaning representation on both sides, seeded, the asked fraction of MRs', (t) => {
  const ex = parseE2E(readFileSync(join(FIXTURE, 'valid.txt'), 'utf8'));
  const mrs = new Set(ex.map((e) => e.mrKey));
  const a = splitByMR(ex, 0.25, 3), b = splitByMR(ex, 0.25, 3), c = splitByMR(ex, 0.25, 4);
  const trainMR = new Set(a.train.map((e) => e.mrKey)), heldMR = new Set(a.heldOut.map((e) => e.mrKey));
  t.is(a.train.length + a.heldOut.length, ex.length);
  t.false([...heldMR].some((k) => trainMR.has(k)));
  t.is(heldMR.size, Math.ceil(0.25 * mrs.size));
  t.deepEqual(b.heldOut.map((e) => e.text), a.heldOut.map((e) => e.text));
  t.notDeepEqual(c.heldOut.map((e) => e.mrKey), a.heldOut.map((e) => e.mrKey));
  t.throws(() => splitByMR(ex, 1, 0), { instanceOf: KilnError });
});

test('encodePadded: words then <pad>, unknown words as <unk>, long texts dropped whole', (t) => {
  const tok = buildTokenizer(['a b c', 'a b', 'a'], 2);  // c is seen once: <unk>
  const { ids, kept, dropped } = encodePadded(tok, ['a b c', 'a a a a a', 'b'], 4);
  t.deepEqual(kept, [0, 2]);
  t.deepEqual(dropped, [1]);
  const id = (w: string) => tok.vocab.indexOf(w);
  t.deepEqual(Array.from(ids), [id('a'), id('b'), tok.unkId, tok.padId, id('b'), tok.padId, tok.padId, tok.padId]);
  t.deepEqual(decodeRows(tok, ids, 4), [['a', 'b', '<unk>'], ['b']]);
});

test('control targets: parsing, exact matching, verbatim rate, label space and one-hot masks', (t) => {
  const targets = parseControlTargets('["food", ":", "Italian"]\n["customer", "rating", ":", "5", "out", "of", "5"]\n["price", ":", "\\u00a3", "20", "-", "25"]\n');
  t.deepEqual(targets.map((c) => [c.field, c.value]), [['food', 'Italian'], ['customer rating', '5 out of 5'], ['price', '£ 20 - 25']]);
  t.deepEqual(targets[2].tokens, ['£', '20', '-', '25']);
  t.throws(() => parseControlTargets('["food", "Italian"]'), { instanceOf: KilnError });
  t.throws(() => parseControlTargets('{"food": 1}'), { instanceOf: KilnError });
  t.true(containsRun(['rated', '5', 'out', 'of', '5', '.'], ['5', 'out', 'of', '5']));
  t.false(containsRun(['5', 'out', 'of', '4', '5'], ['5', 'out', 'of', '5']));
  const ex = parseE2E(LINES);
  t.deepEqual(verbatimRate(ex, targets[0]), { rate: 1, count: 2 });
  t.deepEqual(verbatimRate(ex, targets[1]), { rate: 0.5, count: 2 });
  const space = fieldSpace(ex);
  t.deepEqual(space.fields, ['Type', 'area', 'customer rating', 'family friendly', 'food', 'name']);
  t.deepEqual(space.values[4], ['French', 'Italian']);
  t.deepEqual(space.offsets, [0, 2, 4, 6, 8, 11]);
  t.is(space.width, 15);
  const y = fieldLabels(space, ex);
  t.deepEqual(Array.from(y.subarray(18, 24)), [1, 1, 1, 1, 0, 1]);  // Cocum: every field absent but food = French, name = Cocum
  t.deepEqual(targetClass(space, targets[0]), [4, 1]);
  t.is(targetClass(space, targets[2]), null);
  const m = targetMask(space, [[4, 1], [0, 1]]);
  const md = m.toArray() as number[][];
  t.is(md[0][9], 1);
  t.is(md[1][1], 1);
  t.is(md.flat().reduce((a, b) => a + b, 0), 2);
  t.throws(() => targetMask(space, [[4, 3]]), { instanceOf: KilnError });
});

const tiny = () => new DiffusionLM({ vocabSize: 11, seqLen: 6, embedDim: 4, nLayer: 1, nHead: 2, nEmbd: 16, diffusionSteps: 50 });

test('DiffusionLM.losses: mse, prior and rounding equal a float64 recomputation from the same draws; gradients reach the embeddings', (t) => {
  kiln.manualSeed(7);
  const model = tiny();
  const ids = kiln.tensor([[1, 2, 3, 0, 0, 0], [4, 5, 6, 7, 8, 9], [10, 1, 1, 1, 0, 0]], { dtype: 'int32' });
  const ts = Int32Array.from([0, 17, 49]);
  kiln.manualSeed(11);
  const got = model.losses(ids, ts);
  // The same stream: z0 (x0's noise), then eps (qSample's), then the model sees x_t.
  kiln.manualSeed(11);
  const B = 3, L = 6, d = 4, V = 11;
  const z0 = kiln.randn([B, L, d]).dataSync() as Float32Array;
  const eps = kiln.randn([B, L, d]).dataSync() as Float32Array;
  const E = model.wordEmb.weight.dataSync() as Float32Array, bias = model.lmBias.dataSync() as Float32Array;
  const s = model.schedule, sigma0 = Math.sqrt(1 - s.alphasCumprod[0]);
  const idv = ids.dataSync() as Int32Array;
  const x0 = new Float64Array(B * L * d), xt = new Float32Array(B * L * d), target = new Float64Array(B * L * d);
  for (let b = 0; b < B; b++) for (let j = 0; j < L; j++) for (let k = 0; k < d; k++) {
    const i = (b * L + j) * d + k, e = E[idv[b * L + j] * d + k];
    x0[i] = e + sigma0 * z0[i];
    target[i] = ts[b] === 0 ? e : x0[i];
    xt[i] = Math.sqrt(s.alphasCumprod[ts[b]]) * x0[i] + Math.sqrt(1 - s.alphasCumprod[ts[b]]) * eps[i];
  }
  const out = kiln.noGrad(() => model.predictX0(kiln.fromTyped(xt, [B, L, d]), kiln.fromTyped(ts, [B]))).dataSync() as Float32Array;
  let mse = 0, sq = 0, nll = 0;
  for (let i = 0; i < x0.length; i++) {
    mse += (out[i] - target[i]) ** 2;
    sq += x0[i] ** 2;
  }
  for (let r = 0; r < B * L; r++) {
    const logits = Array.from({ length: V }, (_, v) => bias[v] + Array.from({ length: d }, (_, k) => x0[r * d + k] * E[v * d + k]).reduce((a, c) => a + c, 0));
    const mx = Math.max(...logits);
    nll += mx + Math.log(logits.reduce((a, l) => a + Math.exp(l - mx), 0)) - logits[idv[r]];
  }
  const n = x0.length;
  t.true(Math.abs(got.mse.item() - mse / n) < 1e-4 * (1 + mse / n), `mse ${got.mse.item()} vs ${mse / n}`);
  t.true(Math.abs(got.prior.item() - (s.alphasCumprod[s.T - 1] * sq) / n) < 1e-9 + 1e-5 * got.prior.item(), `prior ${got.prior.item()}`);
  t.true(Math.abs(got.rounding.item() - nll / (B * L)) < 1e-4 * (1 + nll / (B * L)), `rounding ${got.rounding.item()} vs ${nll / (B * L)}`);
  t.true(Math.abs(got.loss.item() - (got.mse.item() + got.prior.item() + got.rounding.item())) < 1e-5);
  got.loss.backward();
  const g = model.wordEmb.weight.grad!.toArray() as number[][];
  t.true(g[1].some((v) => v !== 0) && g[10].some((v) => v !== 0), 'used rows get a gradient');
  t.true((model.lmBias.grad!.toArray() as number[]).some((v) => v !== 0));
  t.true(model.denoiser.parameters().every((p) => p.grad !== null));
  t.throws(() => model.losses(ids, Int32Array.from([0, 1])), { instanceOf: KilnError });
  t.throws(() => model.losses(kiln.zeros([3, 5], { dtype: 'int32' }), ts), { instanceOf: KilnError });
});

test('sample: seeded, every final x0 vector is an embedding row under clamping, and no tensor is left behind', (t) => {
  kiln.manualSeed(3);
  const model = tiny().eval();
  for (const p of model.parameters()) p.requiresGrad = false;
  const before = kiln.memory().tensors;
  kiln.manualSeed(5);
  const a = sample(model, 3, { steps: 8 });
  const E = model.wordEmb.weight.toArray() as number[][];
  const rows = a.x0.toArray() as number[][][];
  const nearest = nearestWords(model, a.x0);
  rows.flat().forEach((v, i) => t.deepEqual(v, E[nearest[i]]));
  kiln.manualSeed(5);
  const b = sample(model, 3, { steps: 8 });
  t.deepEqual(Array.from(b.ids), Array.from(a.ids));
  t.is(a.ids.length, 18);
  const c = sample(model, 3, { steps: 8, clamp: false });
  t.false((c.x0.toArray() as number[][][]).flat().every((v: number[]) => E.some((e) => e.every((x, k) => x === v[k]))), 'unclamped x0 is off the rows');
  for (const r of [a, b, c]) r.x0.dispose();
  t.is(kiln.memory().tensors, before);
});

test('contentGuide: raises log p(c | x) from the posterior mean; a heavy fluency weight keeps it near the mean', (t) => {
  kiln.manualSeed(9);
  const ex = parseE2E(LINES);
  const space = fieldSpace(ex);
  const clf = new ContentClassifier(space, { seqLen: 6, embedDim: 4, nLayer: 1, nHead: 2, nEmbd: 16 }).eval();
  for (const p of clf.parameters()) p.requiresGrad = false;
  const mask = targetMask(space, [[4, 0], [4, 1]]);
  const mu = kiln.randn([2, 6, 4]);
  const lp0 = controlLogProb(clf, mu, 10, mask);
  lp0.grad.dispose();
  const before = kiln.memory().tensors;  // after a first call: the modules' position tables are built
  const free = contentGuide(clf, mask, { steps: 5, stepSize: 0.05, fluency: 0 })(mu, 0.5, 10);
  const lp1 = controlLogProb(clf, free, 10, mask);
  lp1.grad.dispose();
  t.true(lp1.value > lp0.value + 1e-3, `log p: ${lp0.value} -> ${lp1.value}`);
  const tied = contentGuide(clf, mask, { steps: 5, stepSize: 0.05, fluency: 1e6 })(mu, 0.5, 10);
  const dist = (a: kiln.Tensor) => Math.sqrt(kiln.tidy(() => kiln.sum(kiln.square(kiln.sub(a, mu))).item()));
  t.true(dist(tied) < 0.2 * dist(free), `moved ${dist(tied)} with heavy fluency vs ${dist(free)} without`);
  free.dispose();
  tied.dispose();
  t.is(kiln.memory().tensors, before);
  // The gradient is the classifier's: a finite difference along it agrees.
  const { value, grad } = controlLogProb(clf, mu, 10, mask);
  const h = 1e-2;
  const step = kiln.tidy(() => kiln.mul(grad, h / Math.sqrt(kiln.sum(kiln.square(grad)).item())));
  const up = controlLogProb(clf, kiln.add(mu, step), 10, mask);
  const slope = (up.value - value) / h, norm = Math.sqrt(kiln.sum(kiln.square(grad)).item());
  t.true(Math.abs(slope - norm) < 0.05 * norm, `directional derivative ${slope} vs |grad| ${norm}`);
});

test('contentGuide through the LM: the gradient reaches x_t through the frozen denoiser and agrees with a finite difference', (t) => {
  kiln.manualSeed(4);
  const lm = tiny().eval();
  for (const p of lm.parameters()) p.requiresGrad = false;
  const space = fieldSpace(parseE2E(LINES));
  const clf = new ContentClassifier(space, { seqLen: 6, embedDim: 4, nLayer: 1, nHead: 2, nEmbd: 16 }, lm).eval();
  t.true(clf.readsThrough);
  t.is(clf.parameters().length, new ContentClassifier(space, { seqLen: 6, embedDim: 4, nLayer: 1, nHead: 2, nEmbd: 16 }).parameters().length, 'the LM is not part of the classifier');
  for (const p of clf.parameters()) p.requiresGrad = false;
  const mask = targetMask(space, [[5, 0], [0, 1]]);
  const mu = kiln.randn([2, 6, 4]);
  const { value, grad } = controlLogProb(clf, mu, 20, mask);
  const norm = Math.sqrt(kiln.sum(kiln.square(grad)).item());
  t.true(norm > 0);
  const h = 1e-2;
  const up = controlLogProb(clf, kiln.add(mu, kiln.mul(grad, h / norm)), 20, mask);
  t.true(Math.abs((up.value - value) / h - norm) < 0.05 * norm, `directional derivative ${(up.value - value) / h} vs |grad| ${norm}`);
  const moved = contentGuide(clf, mask, { steps: 4, stepSize: 0.05, fluency: 0 })(mu, 0.5, 20);
  t.true(controlLogProb(clf, moved, 20, mask).value > value);
  t.true(lm.parameters().every((p) => p.grad === null), 'the frozen LM gathers no gradient');
});

test('teacher perplexity: near 1 on the sentence it learned, far above on its reversal; rows are <bos> words <eos> <pad>', async (t) => {
  const tok = buildTokenizer(['a b c d .'], 1);
  const rows = teacherRows(tok, [['a', 'b', 'zz']], 6);
  const id = (w: string) => tok.vocab.indexOf(w);
  t.deepEqual(Array.from(rows), [tok.bosId, id('a'), id('b'), tok.unkId, tok.eosId, tok.padId]);
  const width = 8;
  const data = teacherRows(tok, new Array(64).fill(['a', 'b', 'c', 'd', '.']), width);
  const { gpt, history } = await trainTeacher(tok, data, width, { nLayer: 1, nHead: 2, nEmbd: 16, train: { steps: 150, batchSize: 16, lr: 1e-2, warmup: 10, weightDecay: 0, logEvery: 50 } }, 1);
  t.true(history[history.length - 1].loss < history[0].loss);
  const learned = perplexity(gpt, tok, [['a', 'b', 'c', 'd', '.']], width);
  const reversed = perplexity(gpt, tok, [['.', 'd', 'c', 'b', 'a']], width);
  t.true(learned < 1.3, `learned ${learned}`);
  t.true(reversed > 5 * learned, `reversed ${reversed}`);
  t.true(Number.isNaN(perplexity(gpt, tok, [], width)));
});

test('binomialUpperTail: closed forms', (t) => {
  t.true(Math.abs(binomialUpperTail(8, 10, 0.5) - 56 / 1024) < 1e-12);
  t.is(binomialUpperTail(0, 10, 0.3), 1);
  t.true(Math.abs(binomialUpperTail(1, 20, 0.1) - (1 - 0.9 ** 20)) < 1e-12);
  t.true(Math.abs(binomialUpperTail(3, 3, 0.2) - 0.008) < 1e-14);
  t.is(binomialUpperTail(2, 5, 0), 0);
});

test('unseenBigramRate: counts adjacent pairs absent from the reference', (t) => {
  const seen = new Set(['a\u0000b', 'b\u0000c']);
  t.is(unseenBigramRate([['a', 'b', 'c'], ['c', 'a']], seen), 1 / 3);
  t.is(unseenBigramRate([['a']], seen), 0);
});

test('resolveDataDir: an explicit folder wins; the default finds shared/data/e2e or says how to give one', (t) => {
  t.is(resolveDataDir(FIXTURE), FIXTURE);
  try {
    const dir = resolveDataDir('');
    t.true(existsSync(join(dir, 'valid.txt')));
  } catch (e) {
    t.true(e instanceof KilnError && e.message.includes('--data'));
  }
});

test('kiln diffusion-lm run: a tiny end-to-end run on the fixture writes its results; bad options are usage errors', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'kiln-dlm-'));
  const argv = ['diffusion-lm', 'run', '--data', FIXTURE, '--steps', '6', '--classifier-steps', '4', '--batch', '8', '--sample-steps', '3',
    '--samples', '2', '--targets', '3', '--seq-len', '24', '--teacher-steps', '3', '--out', out];
  const logs: string[] = [];
  const log = console.log, err = console.error;
  console.log = (s: string) => logs.push(String(s));
  console.error = () => {};
  let code: number;
  try {
    code = await runKiln(argv);
  } finally {
    console.log = log;
    console.error = err;
  }
  t.is(code, 0, logs.join('\n'));
  for (const f of ['results.json', 'table.txt', 'samples.txt', 'control.svg', 'model.safetensors', 'vocab.json']) t.true(existsSync(join(out, f)), f);
  const r = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  t.is(r.targets.length, 3);
  t.is(r.lm.history[r.lm.history.length - 1].step, 6);
  for (const x of r.targets) t.true(x.guided >= 0 && x.guided <= 1 && x.unguided >= 0 && x.unguided <= 1);
  t.true(Number.isFinite(r.lm.heldOut.mse) && Number.isFinite(r.lm.heldOut.rounding));
  t.is(r.acceptance.length, 2);
  t.is(r.teacher.steps, 3);
  for (const k of ['guided', 'unguided', 'heldOutText']) t.true(r.fluency.teacherPerplexity[k] > 1, k);
  // --lm reuses the run's LM (same data, seed and vocabulary); another seed splits differently and is refused.
  const out2 = mkdtempSync(join(tmpdir(), 'kiln-dlm-'));
  console.log = () => {};
  console.error = () => {};
  let reuse: number;
  try {
    reuse = await runKiln([...argv.slice(0, -1), out2, '--lm', out]);
  } finally {
    console.log = log;
    console.error = err;
  }
  t.is(reuse, 0);
  const r2 = JSON.parse(readFileSync(join(out2, 'results.json'), 'utf8'));
  t.is(r2.lm.loadedFrom, out);
  t.deepEqual(r2.lm.history, []);
  t.is(r2.lm.heldOut.mse, r.lm.heldOut.mse, 'the same LM gives the same held-out loss');
  const errs: string[] = [];
  for (const bad of [['--steps', '0'], ['--step-size', '-1'], ['--bogus', '1'], ['--seed', '-1'], ['--lr', '0'], ['--classifier-input', 'x1']]) {
    const c = await runKiln(['diffusion-lm', 'run', ...bad], { err: (s) => errs.push(s) });
    t.is(c, 2, bad.join(' '));
  }
  t.is(await runKiln(['diffusion-lm', 'sample'], { err: (s) => errs.push(s) }), 2);
  t.is(await runKiln([...argv, '--seed', '1', '--lm', out], { err: (s) => errs.push(s) }), 1);
  t.true(errs[errs.length - 1].includes('not this run'), errs[errs.length - 1]);
  t.is(await runKiln([...argv.map((a, i) => (argv[i - 1] === '--seq-len' ? '20' : a === out ? out2 : a)), '--lm', out], { err: (s) => errs.push(s) }), 1);
  t.regex(errs[errs.length - 1], /the LM in .* was trained with --seq-len 24; run with --seq-len 24 to reuse it \(got 20\)/);
  t.is(await runKiln([...argv, '--fields', 'Type,nosuch'], { err: (s) => errs.push(s) }), 1);
  t.regex(errs[errs.length - 1], /--fields: unknown field 'nosuch' \(the data's fields: .*Type.*\)/);
  const miss = await runKiln(['diffusion-lm', 'run', '--data', join(out, 'nowhere')], { err: (s) => errs.push(s) });
  t.is(miss, 1);
  t.true(errs[errs.length - 1].includes('cannot read'));
});

test('the qualitative result of the paper at fixture scale: classifier-guided sampling hits its targets more often than unguided sampling', async (t) => {
  // 258 training sentences of the fixture, a 2-layer LM (600 steps), a 1-layer read-through
  // classifier, 9 Type / food targets x 8 guided samples against 72 unguided (about 40 s on 2 threads).
  // Seeds 0, 1 and 2 gave guided 22 / 15 / 15% against unguided 10 / 6 / 6% (p = 0.001 / 0.006 / 0.003).
  const { result: r } = await runExperiment({
    ...D, dataDir: FIXTURE, seqLen: 32, minCount: 2, seed: 0,
    model: { ...D.model, nLayer: 2, nHead: 2, nEmbd: 64 },
    train: { ...D.train, steps: 600, lr: 2e-3, logEvery: 100 },
    classifier: { nLayer: 1, nHead: 2, nEmbd: 32 },
    classifierTrain: { ...D.classifierTrain, steps: 600 },
    sampleSteps: 40, samplesPerTarget: 8, targetFields: ['Type', 'food'],
    teacher: { ...D.teacher, train: { ...D.teacher.train, steps: 0 } },
  });
  t.is(r.fluency.teacherPerplexity, undefined);
  t.is(r.targets.length, 9);
  t.true(r.summary.guided > 1.5 * r.summary.unguided, `guided ${r.summary.guided} vs unguided ${r.summary.unguided}`);
  const hits = Math.round(r.summary.guided * 72);
  t.true(binomialUpperTail(hits, 72, r.summary.unguided) < 0.05, r.acceptance.map((a) => a.rule).join('; '));
  t.true(r.lm.heldOut.rounding < 0.1, `held-out rounding loss ${r.lm.heldOut.rounding}`);
});
