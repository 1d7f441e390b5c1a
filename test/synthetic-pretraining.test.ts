// Tests for the `synthetic-pretraining` recipe (arXiv 2206.10139): the Set and LIME generators against
// their definitions, T5 span corruption (the input and target put back give the text), the meaning-
// representation round trip and slot F1, batches, greedy decoding against an uncached argmax loop,
// the parameter-statistics initialisation, a small whole run and the CLI.
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as kiln from '../src/index.js';
import { Gaussian } from '../src/recipes/icl/tasks.js';
import { parseE2E } from '../src/recipes/diffusion-lm/data.js';
import { buildVocab, collate, denoisePair, linearizeMR, parseMRIds, SENTINELS, spanCorrupt, type Vocab } from '../src/recipes/synthetic-pretraining/data.js';
import { DEFAULT_LIME, dedupe, limeAlphabet, limePair, limeTriple, setPair } from '../src/recipes/synthetic-pretraining/synthetic.js';
import { buildModel, greedyDecode, initFromStatistics } from '../src/recipes/synthetic-pretraining/model.js';
import { DEFAULT_EXPERIMENT as D, parseScores, runExperiment, summarizeInto, type ExperimentResult } from '../src/recipes/synthetic-pretraining/experiment.js';
import { formatResult } from '../src/recipes/synthetic-pretraining/cli.js';
import { runKilnQuiet } from './helpers/cli.js';

// The recipe's data is ../shared/data/e2e; the tests run on the checked-in slice of it.
const FIXTURE = join(process.cwd(), 'test', 'fixtures', 'e2e-mini');

const LINES = [
  'name : Alimentum | area : city centre | family friendly : no||Alimentum is not family - friendly , in the city centre .',
  'name : Aromi | Type : coffee shop | food : Chinese | customer rating : low | near : The Sorrento||Aromi is a coffee shop near The Sorrento serving Chinese food with a low rating .',
  'name : Bibimbap House | price : high | area : riverside||Bibimbap House is a high priced place by the riverside .',
];
const examples = parseE2E(LINES.join('\n'));
const vocab: Vocab = buildVocab(examples);

test('Set: the output is the distinct input tokens in first-appearance order, all words of the vocabulary', (t) => {
  const g = new Gaussian(1);
  let repeats = 0;
  for (let n = 0; n < 300; n++) {
    const { src, tgt } = setPair(vocab, { minLen: 3, maxLen: 12, repeat: 0.3 }, g);
    t.true(src.length >= 3 && src.length <= 12);
    for (const x of src) t.true(x >= vocab.firstWord && x < vocab.endWord);
    const want: number[] = [];
    for (const x of src) if (!want.includes(x)) want.push(x);
    t.deepEqual(Array.from(tgt), want);
    repeats += src.length - tgt.length;
  }
  t.true(repeats > 100, `inputs repeat tokens (${repeats} repeats)`);
  t.deepEqual(Array.from(dedupe([5, 5, 7, 5, 6, 7])), [5, 7, 6]);
});

test('LIME: the result is the rule with the case substituted, and each mode asks for the missing part', (t) => {
  const g = new Gaussian(2);
  const cfg = { ...DEFAULT_LIME, ruleSymbols: 5, mathSymbols: 8 };
  const a = limeAlphabet(vocab, cfg, g);
  t.is(new Set([...a.rule, ...a.math]).size, 13, 'the two alphabets are disjoint');
  const is = vocab.id('<is>'), and = vocab.id('<and>'), sep = vocab.id('<sep>');
  for (let n = 0; n < 200; n++) {
    const { rule, kase, result } = limeTriple(vocab, a, cfg, g);
    t.true(rule.length >= cfg.ruleLen[0] && rule.length <= cfg.ruleLen[1]);
    // Read the case back: symbol <is> string (<and> symbol <is> string)*.
    const subst = new Map<number, number[]>();
    let i = 0;
    while (i < kase.length) {
      t.true(a.rule.includes(kase[i]));
      t.is(kase[i + 1], is);
      let j = i + 2;
      while (j < kase.length && kase[j] !== and) j++;
      const s = kase.slice(i + 2, j);
      t.true(s.length >= cfg.substLen[0] && s.length <= cfg.substLen[1] && s.every((x) => a.math.includes(x)));
      subst.set(kase[i], s);
      i = j + 1;
    }
    t.deepEqual([...subst.keys()].sort(), [...new Set(rule.filter((x) => a.rule.includes(x)))].sort(), 'the case covers exactly the rule symbols used');
    t.deepEqual(result, rule.flatMap((x) => subst.get(x) ?? [x]));
  }
  for (const mode of ['deduct', 'abduct', 'induct'] as const) {
    const p = limePair(vocab, a, cfg, new Gaussian(9), mode);
    const { rule, kase, result } = limeTriple(vocab, a, cfg, new Gaussian(9));
    t.is(p.src[0], vocab.id(`<${mode}>`));
    const [x, y, out] = mode === 'deduct' ? [rule, kase, result] : mode === 'abduct' ? [rule, result, kase] : [kase, result, rule];
    t.deepEqual(Array.from(p.src.subarray(1)), [...x, sep, ...y]);
    t.deepEqual(Array.from(p.tgt), out);
  }
});

test('span corruption: 15% of the tokens in spans; filling the sentinels with their spans gives the text back; the natural pair restores it whole', (t) => {
  const g = new Gaussian(3);
  const sentinel = new Set(SENTINELS.map((s) => vocab.id(s)));
  for (let n = 0; n < 200; n++) {
    const len = 2 + g.int(40);
    const ids = Int32Array.from({ length: len }, () => vocab.firstWord + g.int(vocab.endWord - vocab.firstWord));
    const { src, tgt } = spanCorrupt(vocab, ids, g);
    const noise = tgt.length - tgt.filter((x) => sentinel.has(x)).length;
    t.is(noise, Math.min(len - 1, Math.max(1, Math.round(0.15 * len))));
    const spans = new Map<number, number[]>();
    let cur = -1;
    for (const x of tgt) {
      if (sentinel.has(x)) spans.set((cur = x), []);
      else spans.get(cur)!.push(x);
    }
    for (const s of spans.values()) t.true(s.length >= 1, 'no empty span');
    t.deepEqual(Array.from(src).flatMap((x) => (sentinel.has(x) ? spans.get(x)! : [x])), Array.from(ids));
  }
  // The natural objective: the same corrupted input, the whole text as the target.
  const ids = Int32Array.from({ length: 20 }, (_, i) => vocab.firstWord + i);
  const d = denoisePair(vocab, ids, new Gaussian(4), 0.3), c = spanCorrupt(vocab, ids, new Gaussian(4), 0.3);
  t.deepEqual(d.src, c.src);
  t.deepEqual(d.tgt, ids);
  t.is(c.tgt.filter((x) => !sentinel.has(x)).length, 6);
});

test('meaning representations: field tokens in canonical order, parsed back to slots; slot F1 and exact match', (t) => {
  const ids = linearizeMR(vocab, examples[1].mr);
  t.is(vocab.tok.decode(ids.filter((x) => x < vocab.endWord)), 'Aromi coffee shop Chinese low The Sorrento');
  t.deepEqual([...parseMRIds(vocab, ids)], [['name', 'Aromi'], ['Type', 'coffee shop'], ['food', 'Chinese'], ['customer rating', 'low'], ['near', 'The Sorrento']]);
  const gold = [examples[0], examples[1]];
  // Perfect on the first; on the second: 4 of 5 slots, one wrong value and one extra slot.
  const wrong = linearizeMR(vocab, { ...examples[1].mr, near: 'Aromi', area: 'riverside' });
  const r = parseScores(vocab, [linearizeMR(vocab, examples[0].mr), wrong], gold);
  const tp = 3 + 4, np = 3 + 6, ng = 3 + 5;
  const p = tp / np, rc = tp / ng;
  t.true(Math.abs(r.f1 - (2 * p * rc) / (p + rc)) < 1e-12);
  t.is(r.exact, 0.5);
  t.deepEqual(parseScores(vocab, [new Int32Array(0)], [examples[0]]), { f1: 0, exact: 0 });
});

test('collate: padded inputs with a key mask, <bos>-shifted decoder input, labels ending in <eos> and -100 after', (t) => {
  const b = collate(vocab, [{ src: Int32Array.from([7, 8, 9]), tgt: Int32Array.from([5]) }, { src: Int32Array.from([6]), tgt: Int32Array.from([4, 5, 6]) }]);
  const { bosId: bos, eosId: eos, padId: pad } = vocab.tok;
  t.deepEqual(b.src.toArray(), [[7, 8, 9], [6, pad, pad]]);
  t.deepEqual(b.srcMask.reshape([2, 3]).toArray(), [[0, 0, 0], [0, 1, 1]]);
  t.deepEqual(b.tgtIn.toArray(), [[bos, 5, pad, pad], [bos, 4, 5, 6]]);
  t.deepEqual(b.labels.toArray(), [[5, eos, -100, -100], [4, 5, 6, eos]]);
});

test('greedy decoding with the KV cache gives what an uncached argmax loop gives', (t) => {
  kiln.manualSeed(5);
  const m = buildModel(vocab, { ...D.model, nEmbd: 32, nHead: 2, maxLen: 16 }).eval();
  const srcs = [Int32Array.from([9, 10, 11]), Int32Array.from([12]), Int32Array.from([13, 14, 15, 16, 17])];
  const got = greedyDecode(m, vocab, srcs, 6, 2);
  const want = srcs.map((src) => kiln.tidy(() => kiln.noGrad(() => {
    const mem = m.encode(kiln.fromTyped(src, [1, src.length], { dtype: 'int32' }));
    const out: number[] = [vocab.tok.bosId];
    for (let k = 0; k < 6; k++) {
      const logits = m.decode(kiln.fromTyped(Int32Array.from(out), [1, out.length], { dtype: 'int32' }), mem);
      const next = logits.narrow(1, out.length - 1, 1).argmax(-1).dataSync()[0];
      if (next === vocab.tok.eosId) break;
      out.push(next);
    }
    return out.slice(1);
  })));
  t.deepEqual(got.map((x) => Array.from(x)), want);
  t.true(got.every((x) => x.length <= 6));
});

test('parameter statistics: each tensor drawn afresh with the source tensor mean and std, none of its values', (t) => {
  kiln.manualSeed(6);
  const src = buildModel(vocab, { ...D.model, nEmbd: 64 });
  // Give the source tensors distinct statistics.
  const shifted = Object.fromEntries(src.namedParameters().map(([name, p], i) => [name, kiln.add(kiln.mul(kiln.randn(p.shape), 0.05 * (1 + (i % 5))), 0.1 * (i % 3))]));
  src.loadStateDict(shifted, { strict: false });
  const m = buildModel(vocab, { ...D.model, nEmbd: 64 });
  const stats = initFromStatistics(m, src.stateDict());
  const mine = new Map(m.namedParameters());
  t.is(stats.length, mine.size);
  for (const s of stats) {
    const x = Array.from(mine.get(s.name)!.dataSync()), y = Array.from(src.stateDict()[s.name].dataSync());
    if (x.length < 1000) continue;
    const mean = x.reduce((a, b) => a + b, 0) / x.length;
    const sd = Math.sqrt(x.reduce((a, b) => a + (b - mean) ** 2, 0) / x.length);
    t.true(Math.abs(mean - s.mean) < 5 * s.std / Math.sqrt(x.length) + 1e-6, `${s.name} mean ${mean} vs ${s.mean}`);
    t.true(Math.abs(sd - s.std) < 0.1 * s.std, `${s.name} std ${sd} vs ${s.std}`);
    t.true(Math.abs(x[0] - y[0]) > 0 || Math.abs(x[1] - y[1]) > 0);
  }
});

test('recovery: the fraction of natural pre-training gain, averaged over tasks; none when natural does not help', (t) => {
  const row = (method: string, seed: number, parse: number, generate: number) => ({
    method, seed, tasks: [{ task: 'parse', score: parse, secondary: 0, finalLoss: 0, seconds: 0 }, { task: 'generate', score: generate, secondary: 0, finalLoss: 0, seconds: 0 }],
  });
  const r = {
    config: { ...D, seeds: 2, seed: 10 },
    scores: [row('scratch', 10, 20, 10), row('natural', 10, 60, 30), row('set', 10, 40, 25), row('lime', 10, 20, 10), row('set-stats', 10, 30, 10),
      row('scratch', 11, 30, 10), row('natural', 11, 70, 20), row('set', 11, 50, 10), row('lime', 11, 70, 20), row('set-stats', 11, 30, 20)],
  } as unknown as ExperimentResult;
  summarizeInto(r);
  const rec = (m: string) => r.recovery.find((x) => x.method === m)!;
  t.deepEqual(rec('set').perTask, { parse: 0.5, generate: 0.5 });
  t.is(rec('set').mean, 0.5);
  t.deepEqual(rec('set').perSeed, [(0.5 + 0.75) / 2, (0.5 + 0) / 2]);
  t.deepEqual(rec('lime').perSeed, [0, 1]);
  t.true(Math.abs(rec('lime').mean - (0.5 + 1 / 3) / 2) < 1e-12);
  t.true(Math.abs(rec('set-stats').mean - (0.125 + 1 / 3) / 2) < 1e-12);
  t.deepEqual(r.acceptance.map((a) => a.pass), [true, true, true]);
  const gen = (i: number) => r.scores[i].tasks[1] as { score: number };
  gen(1).score = 10;
  summarizeInto(r);
  t.true(Number.isNaN(rec('set').perSeed[0]), 'no gain to recover on seed 10 generate');
  t.is(rec('set').perTask.generate, 7.5 / 5);
  gen(6).score = 10;
  summarizeInto(r);
  t.true(Number.isNaN(rec('set').mean), 'no gain to recover at all on generate');
  t.deepEqual(r.acceptance.map((a) => a.pass), [false, false, false]);
  t.deepEqual(r.acceptance.map((a) => !!a.unjudged), [false, true, true], 'a ratio over no gain cannot be judged');
  Object.assign(r, { params: 1, vocabSize: 1, seconds: 0, sizes: { finetune: 1, pretrainTexts: 1, testParse: 1, testGenerate: 1 } });
  const table = formatResult(r);
  t.false(table.includes('NaN'), table);
  t.regex(table, /\[n\/a\] Set or LIME recovers a large fraction of the gain {3}\(cannot be judged: /);
  t.regex(table, /set +.* n\/a\n/);
});

test.serial('a small run: every method scored on both tasks, finite, memory flat; the CLI writes its folder', async (t) => {
  const cfg = {
    ...D, data: { ...D.data, dir: FIXTURE, finetuneExamples: 24, testExamples: 16, maxWords: 20 }, model: { ...D.model, nEmbd: 32, nHead: 2, maxLen: 24 },
    pretrain: { ...D.pretrain, steps: 6, batchSize: 8 }, finetune: { ...D.finetune, steps: 4, batchSize: 8 },
    set: { ...D.set, maxLen: 12 }, lime: { ...D.lime, ruleLen: [3, 5] as [number, number], ruleVars: [1, 2] as [number, number], substLen: [1, 2] as [number, number] },
  };
  const before = kiln.memory().tensors;
  const r = await runExperiment(cfg);
  t.is(kiln.memory().tensors, before, 'models, pre-trained states and optimizer state are freed');
  t.deepEqual(r.scores.map((s) => s.method), ['scratch', 'natural', 'set', 'lime', 'set-stats']);
  for (const s of r.scores) for (const x of s.tasks) t.true(Number.isFinite(x.score) && x.score >= 0 && x.score <= 100 && Number.isFinite(x.finalLoss));
  t.deepEqual(r.pretraining.map((p) => p.kind), ['natural', 'set', 'lime']);
  t.is(r.sizes.finetune, 24);
  t.is(r.sizes.testParse, 16);
  const out = mkdtempSync(join(tmpdir(), 'kiln-sp-'));
  const { codes, logs } = await runKilnQuiet(
    ['synthetic-pretraining', 'run', '--pretrain-steps', '3', '--finetune-steps', '2', '--finetune-examples', '20', '--test-examples', '8', '--data', FIXTURE, '--methods', 'scratch,set-stats', '--out', out],
    ['synthetic-pretraining', 'run', '--methods', 'set,bogus'],
    ['synthetic-pretraining', '--help'],
  );
  t.deepEqual(codes, [0, 2, 0]);
  for (const f of ['results.json', 'table.txt', 'recovery.svg']) t.true(existsSync(join(out, f)), f);
  const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  t.deepEqual(res.scores.map((s: { method: string }) => s.method), ['scratch', 'set-stats']);
  t.deepEqual(res.pretraining.map((p: { kind: string }) => p.kind), ['set'], 'set-stats needs the Set model only');
  t.true(logs.some((l) => l.includes('usage: kiln synthetic-pretraining run')));
});
