// Tests for the `clip` recipe (arXiv 2207.07635): captions (descriptiveness, synonyms, filler), the
// CLIP objective against a float64 recomputation, the qualitative result at small scale, the CLI.
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as kiln from '../src/index.js';
import { KilnError } from '../src/errors.js';
import { Gaussian } from '../src/recipes/icl/tasks.js';
import { downstreamTasks } from '../src/recipes/ssl/data.js';
import { DEFAULT_MODEL } from '../src/recipes/ssl/model.js';
import { Captioner } from '../src/recipes/clip/captions.js';
import { ClipModel } from '../src/recipes/clip/model.js';
import { DEFAULT_EXPERIMENT as D, DEFAULT_REGIMES, runExperiment, type ExperimentConfig } from '../src/recipes/clip/experiment.js';
import { runKilnQuiet } from './helpers/cli.js';

const attributes = downstreamTasks(8, 2, 3, 2, 0).slice(1);

test('Captioner: descriptive captions name every attribute; synonyms vary the word, not the content; filler only from its own words', (t) => {
  const c = new Captioner(attributes, { descriptiveness: 1, synonyms: 1, filler: 0, fillerVocab: 5 });
  t.is(c.vocabSize, 3 * 2 + 5);
  const g = new Gaussian(0);
  for (let p = 0; p < 8; p++) t.deepEqual(c.caption(p, g), attributes.map((a, k) => c.word(k, a.labelOf[p], 0)));
  const v = new Captioner(attributes, { descriptiveness: 1, synonyms: 4, filler: 3, fillerVocab: 5 });
  t.is(v.vocabSize, 3 * 2 * 4 + 5);
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const words = v.caption(3, g);
    t.is(words.length, 6);
    attributes.forEach((a, k) => {
      const w = words[k];
      t.true(w >= v.word(k, a.labelOf[3], 0) && w <= v.word(k, a.labelOf[3], 3));
      seen.add(w);
    });
    for (const w of words.slice(3)) t.true(w >= 24 && w < 29);
  }
  t.is(seen.size, 12, 'every synonym of every attribute value shows up');
  const none = new Captioner(attributes, { descriptiveness: 0, synonyms: 1, filler: 2, fillerVocab: 5 });
  for (let i = 0; i < 50; i++) for (const w of none.caption(i % 8, g)) t.true(w >= 6);
  let named = 0;
  const some = new Captioner(attributes, { descriptiveness: 0.25, synonyms: 1, filler: 0, fillerVocab: 1 });
  for (let i = 0; i < 4000; i++) named += some.caption(i % 8, g).length;
  t.true(Math.abs(named / (4000 * 3) - 0.25) < 0.02, String(named));
  const bow = v.bagOfWords([0, 5], new Gaussian(1));
  t.is(bow.length, 2 * v.vocabSize);
  t.is(bow.slice(0, v.vocabSize).reduce((a, b) => a + b, 0), 6);
  t.throws(() => new Captioner(attributes, { descriptiveness: 1.5, synonyms: 1, filler: 0, fillerVocab: 1 }), { instanceOf: KilnError });
  t.throws(() => new Captioner(attributes, { descriptiveness: 1, synonyms: 0, filler: 0, fillerVocab: 1 }), { instanceOf: KilnError });
});

test('ClipModel: the symmetric loss of exp(logit scale) * cosine similarities (float64 recomputation)', (t) => {
  kiln.manualSeed(4);
  const m = new ClipModel(10, 7, { ...DEFAULT_MODEL, hidden: 8, zDim: 6 }, { jointDim: 5, textHidden: 9 });
  m.to('float64');
  const images = kiln.randn([6, 10], { dtype: 'float64' }), captions = kiln.rand([6, 7], { dtype: 'float64' });
  const loss = m.terms(images, captions).loss.item();
  const unit = (v: number[]) => { const n = Math.hypot(...v); return v.map((x) => x / n); };
  const I = (m.imageProj.forward(m.encoder.forward(images)).toArray() as number[][]).map(unit);
  const T = (m.text.forward(captions).toArray() as number[][]).map(unit);
  const s = Math.exp(m.logitScale.item());
  t.true(Math.abs(s - 1 / 0.07) < 1e-4, "starts at 1 / 0.07 (float32)");
  const ce = (a: number[][], b: number[][]) => a.reduce((tot, ai, i) => {
    const l = b.map((bj) => s * ai.reduce((x, v, d) => x + v * bj[d], 0));
    const mx = Math.max(...l);
    return tot + Math.log(l.reduce((x, v) => x + Math.exp(v - mx), 0)) + mx - l[i];
  }, 0) / a.length;
  const ref = (ce(I, T) + ce(T, I)) / 2;
  t.true(Math.abs(loss - ref) < 1e-10, `${loss} vs ${ref}`);
});

// The paper's qualitative result at small scale, one seed of a narrower, shorter configuration
// (about 30 s on 2 threads; the default run's three seeds are in the README): CLIP with
// descriptive captions beats SimCLR on the attributes its captions name (+11.4 points here); with
// captions that rarely name them it does not (-17.9).
const SMALL: ExperimentConfig = {
  ...D,
  model: { ...D.model, hidden: 256, headHidden: 256 },
  train: { ...D.train, steps: 500 },
  regimes: DEFAULT_REGIMES.filter((r) => r.name !== 'high-variability'),
  seeds: 1,
};

test.serial('small-scale result: descriptive captions beat image-only SSL, barely descriptive ones do not; no tensor outlives the run', async (t) => {
  const before = kiln.memory().tensors;
  const r = await runExperiment(SMALL);
  t.is(kiln.memory().tensors, before);
  const diff = (m: string) => r.comparisons.find((c) => c.method === m && c.metric === 'coarseAcc')!.meanDiff;
  t.true(diff('descriptive') > 0.03, JSON.stringify(r.summary));
  t.true(diff('low-descriptiveness') < 0, JSON.stringify(r.summary));
  t.deepEqual(r.acceptance.map((a) => a.pass), [true, true]);
});

test('kiln clip run: a tiny end-to-end run writes its results; bad options are usage errors', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'kiln-clip-'));
  const bad = [['--regimes', 'noisy'], ['--steps', '0'], ['--lr', '0'], ['--bogus', '1']].map((argv) => ['clip', 'run', ...argv, '--out', out]);
  const { codes: [code, ...badCodes], logs } = await runKilnQuiet(['clip', 'run', '--steps', '3', '--batch', '4', '--seeds', '1', '--regimes', 'descriptive,low-descriptiveness', '--out', out], ...bad);
  t.is(code, 0, logs.join('\n'));
  for (const f of ['results.json', 'table.txt', 'probe.svg']) t.true(existsSync(join(out, f)), f);
  const r = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  t.deepEqual(r.summary.map((s: { method: string }) => s.method), ['simclr', 'descriptive', 'low-descriptiveness']);
  t.is(r.acceptance.length, 2);
  t.true(/clip descriptive/.test(readFileSync(join(out, 'table.txt'), 'utf8')));
  t.deepEqual(badCodes, [2, 2, 2, 2]);
});
