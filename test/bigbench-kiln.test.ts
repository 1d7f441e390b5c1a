// The kiln language-model adapter behind `--model kiln:<path>`: exact log-probabilities and greedy
// decoding checked against the model's own logits, an end-to-end run of a tiny trained char-level
// GPT through `kiln bigbench run`, and the loading errors.
import test from 'ava';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as kiln from '../src/index.js';
import { runBigBenchCli } from '../src/recipes/bigbench/cli.js';
import {
  KilnModelLoadError, kilnLanguageModel, loadKilnLanguageModel, saveKilnLanguageModel,
} from '../src/recipes/bigbench/kiln-model.js';
import type { RunResults } from '../src/recipes/bigbench/runner.js';

const TASK = fileURLToPath(new URL('./fixtures/bigbench/kiln/letter_map.json', import.meta.url));
const IN = 'abcdefgh';
const OUT = 'wzsyuxtv'; // the mapping in letter_map.json: a->w, b->z, ...

const io = () => {
  const o = { out: '', err: '' };
  return { o, io: { out: (s: string) => { o.out += s; }, err: (s: string) => { o.err += s; } } };
};

function tinyModel(seed: number, blockSize = 8) {
  kiln.manualSeed(seed);
  const tok = kiln.train.CharTokenizer.fromText('abcdefgh ');
  const model = new kiln.nn.GPT({ nLayer: 2, nHead: 2, nEmbd: 16, vocabSize: tok.vocabSize, blockSize });
  return { tok, model };
}

/** Log-softmax rows of the model's full forward over `ids`, in float64, computed here. */
function logSoftmaxRows(model: InstanceType<typeof kiln.nn.GPT>, ids: ArrayLike<number>): number[][] {
  return kiln.tidy(() => kiln.noGrad(() => {
    const logits = model.forward(kiln.tensor(Int32Array.from(ids), { dtype: 'int32', shape: [1, ids.length] }));
    const [, T, V] = logits.shape;
    const d = logits.dataSync();
    const rows: number[][] = [];
    for (let t = 0; t < T; t++) {
      const r = Array.from(d.subarray(t * V, (t + 1) * V));
      const m = Math.max(...r);
      const lse = m + Math.log(r.reduce((s, x) => s + Math.exp(x - m), 0));
      rows.push(r.map((x) => x - lse));
    }
    return rows;
  }));
}

/** Sum of log p(target) where the input window is full[start, end) and the targets full[lo, end]. */
function windowLogProb(model: InstanceType<typeof kiln.nn.GPT>, full: Int32Array, start: number, lo: number, hiExclusive: number): number {
  const rows = logSoftmaxRows(model, full.slice(start, hiExclusive - 1));
  let s = 0;
  for (let p = lo; p < hiExclusive; p++) s += rows[p - 1 - start][full[p]];
  return s;
}

test('scoreChoices: the sum of log-softmax entries of the model\'s own logits, context cropped from the left', async (t) => {
  const { tok, model } = tinyModel(1);
  const lm = kilnLanguageModel(model, tok, { maxBatch: 3 });
  const B = model.config.blockSize;
  for (const context of ['ab', 'abcdefgh hgfedcba']) {
    const choices = ['c', 'dd', 'e f', 'ghhg', 'a b c'];
    const got = await lm.scoreChoices(context, choices);
    choices.forEach((choice, i) => {
      const full = tok.encode(context + choice);
      // One forward over (context + choice) minus its last token, cropped to blockSize from the left.
      const start = Math.max(0, full.length - 1 - B);
      const want = windowLogProb(model, full, start, context.length, full.length);
      t.true(Math.abs(got[i] - want) < 1e-4, `${JSON.stringify(context)} + ${JSON.stringify(choice)}: ${got[i]} vs ${want}`);
      t.true(got[i] < 0);
    });
  }
  // A choice longer than blockSize: the last blockSize targets from one window, the rest from the
  // window before it (documented behaviour).
  const context = 'abc';
  const choice = 'defgh abcdeh'; // 12 tokens; blockSize 8
  const [got] = await lm.scoreChoices(context, [choice]);
  const full = tok.encode(context + choice); // 15 tokens
  const want = windowLogProb(model, full, 6, 7, 15) + windowLogProb(model, full, 0, 3, 7);
  t.true(Math.abs(got - want) < 1e-4, `${got} vs ${want}`);
  // Empty choice: log 1.
  t.deepEqual(await lm.scoreChoices('ab', ['']), [0]);
});

// Serial: the memory check counts live tensors process-wide.
test.serial('generate: greedy decoding equals step-by-step argmax of the full forward, batched, cropped, with stop strings; memory stays flat', async (t) => {
  const { tok, model } = tinyModel(2);
  const B = model.config.blockSize;
  const reference = (prompt: string, n: number): string => {
    const ids = Array.from(tok.encode(prompt));
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const rows = logSoftmaxRows(model, ids.slice(-B));
      const last = rows[rows.length - 1];
      const next = last.indexOf(Math.max(...last));
      ids.push(next);
      out.push(next);
    }
    return tok.decode(out);
  };
  const prompts = ['a', 'hg', 'abcdefgh hgfedcba', 'bad cab'];
  const lm = kilnLanguageModel(model, tok, { maxBatch: 3 });
  const want = prompts.map((p) => reference(p, 12));
  const before = kiln.memory().tensors;
  t.deepEqual(await lm.generate(prompts, { maxTokens: 12 }), want);
  t.deepEqual(await lm.generate(prompts, { maxTokens: 0 }), ['', '', '', '']);
  // Stop: generation ends right after the first stop string (kept, as BIG-bench keeps it).
  const stop = want[2][4];
  const cut = want[2].slice(0, want[2].indexOf(stop) + 1);
  t.deepEqual(await lm.generate([prompts[2]], { maxTokens: 12, stop: [stop] }), [cut]);
  await lm.scoreChoices('abc', ['d', 'ee']);
  t.is(kiln.memory().tensors, before, 'no tensors left behind');
  t.true(model.training, 'the caller\'s train/eval mode is restored');
});

test('a tiny char-level GPT trained on letter_map scores far above chance through `kiln bigbench run --model kiln:<dir>`', async (t) => {
  kiln.manualSeed(0);
  const tok = kiln.train.CharTokenizer.fromText('\nQ: A' + IN + OUT);
  const V = tok.vocabSize;
  const model = new kiln.nn.GPT({ nLayer: 2, nHead: 2, nEmbd: 32, vocabSize: V, blockSize: 32 });
  const opt = new kiln.optim.AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0 });
  const rnd = kiln.train.seededRandom(7);
  // Training text in the task's own prompt format: "\nQ: <in>\nA: <out>" pairs, "\n"-separated.
  const pair = () => {
    const i = Math.floor(rnd() * IN.length);
    return `\nQ: ${IN[i]}\nA: ${OUT[i]}`;
  };
  const rows = 24, T = 31;
  let loss = Infinity;
  for (let step = 0; step < 300; step++) {
    const x = new Int32Array(rows * T), y = new Int32Array(rows * T);
    for (let b = 0; b < rows; b++) {
      const ids = tok.encode(pair() + '\n' + pair() + '\n' + pair());
      x.set(ids.subarray(0, T), b * T);
      y.set(ids.subarray(1, T + 1), b * T);
    }
    loss = kiln.tidy(() => {
      opt.zeroGrad();
      const l = kiln.crossEntropy(model.forward(kiln.tensor(x, { dtype: 'int32', shape: [rows, T] })).reshape([-1, V]), kiln.tensor(y, { dtype: 'int32' }));
      l.backward();
      opt.step();
      return l.item();
    });
  }
  t.true(loss < 0.6, `training loss ${loss}`);

  const dir = mkdtempSync(join(tmpdir(), 'kiln-bigbench-kiln-'));
  try {
    saveKilnLanguageModel(join(dir, 'gpt'), model, tok);
    const out = join(dir, 'results.json');
    const c = io();
    const code = await runBigBenchCli(['run', '--task', TASK, '--model', `kiln:${join(dir, 'gpt')}`, '--shots', '0,1', '--max-tokens', '3', '--out', out], c.io);
    t.is(code, 0, c.o.err);
    t.regex(c.o.out, /letter_map/);
    const r = JSON.parse(readFileSync(out, 'utf8')) as RunResults;
    t.is(r.model.scale, model.numParameters(), 'a kiln: model records its parameter count as its scale');
    const task = r.tasks[0];
    for (const s of task.perShot) t.true((s.normalized ?? -1) >= 75, `${s.shots}-shot normalised score ${s.normalized} (chance 0)`);
    const leaf = task.subtasks[0].perShot[0];
    t.is(leaf.nFailed, 0);
    // Greedy generations answer the mapping too (exact_str_match after the default output_regex).
    t.true((leaf.scores.exact_str_match ?? 0) >= 0.75, JSON.stringify(leaf.scores));
    t.log(c.o.out.trim());

    // The file form (checkpoint with tokenizer.json beside it) loads the same model.
    const lm = loadKilnLanguageModel(join(dir, 'gpt', 'model.safetensors'));
    const ref = kilnLanguageModel(model, tok);
    const prompt = '\nQ: c\nA: ';
    const [a, b] = [await lm.scoreChoices(prompt, OUT.split('')), await ref.scoreChoices(prompt, OUT.split(''))];
    a.forEach((x, i) => t.true(Math.abs(x - b[i]) < 1e-5));
    t.deepEqual(await lm.generate([prompt], { maxTokens: 1 }), ['s']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loading errors: missing checkpoint, missing or mismatched tokenizer, non-GPT metadata, corrupt files', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-bigbench-kiln-err-'));
  try {
    const { tok, model } = tinyModel(3);
    const load = (p: string) => t.throws(() => loadKilnLanguageModel(p), { instanceOf: KilnModelLoadError });

    t.regex(load(join(dir, 'nope')).message, /no such file or folder/);
    mkdirSync(join(dir, 'empty'));
    t.regex(load(join(dir, 'empty')).message, /has no model\.safetensors/);

    // A checkpoint saved by hand with the GPT config but no tokenizer anywhere.
    const { device: _d, ...config } = model.config;
    mkdirSync(join(dir, 'notok'));
    kiln.nn.saveCheckpoint(join(dir, 'notok', 'model.safetensors'), { model, config });
    t.regex(load(join(dir, 'notok')).message, /no tokenizer: .*tokenizer\.json is missing/);
    // ... then a tokenizer of the wrong size beside it.
    kiln.train.CharTokenizer.fromText('xyz').save(join(dir, 'notok', 'tokenizer.json'));
    t.regex(load(join(dir, 'notok')).message, /tokenizer has 3 tokens but the GPT's vocabSize is 9/);
    writeFileSync(join(dir, 'notok', 'tokenizer.json'), '{"type": "BPE"');
    t.regex(load(join(dir, 'notok')).message, /cannot read the tokenizer/);
    writeFileSync(join(dir, 'notok', 'tokenizer.json'), '{"type": "BPE", "vocab": []}');
    t.regex(load(join(dir, 'notok')).message, /not a saved kiln tokenizer/);
    // The right tokenizer makes the hand-saved checkpoint loadable (file form too).
    tok.save(join(dir, 'notok', 'tokenizer.json'));
    t.is(loadKilnLanguageModel(join(dir, 'notok')).vocabSize, 9);
    t.is(loadKilnLanguageModel(join(dir, 'notok', 'model.safetensors')).blockSize, 8);

    // Metadata without a GPT config, and weights that do not fit the config.
    mkdirSync(join(dir, 'nocfg'));
    kiln.nn.saveCheckpoint(join(dir, 'nocfg', 'model.safetensors'), { model, config: { lr: 1 } });
    tok.save(join(dir, 'nocfg', 'tokenizer.json'));
    t.regex(load(join(dir, 'nocfg')).message, /holds no GPT config/);
    mkdirSync(join(dir, 'wrong'));
    kiln.nn.saveCheckpoint(join(dir, 'wrong', 'model.safetensors'), { model, config: { gpt: { ...config, nEmbd: 32 } } });
    tok.save(join(dir, 'wrong', 'tokenizer.json'));
    t.regex(load(join(dir, 'wrong')).message, /weights do not fit the GPT config/);
    writeFileSync(join(dir, 'wrong', 'model.safetensors'), 'not a safetensors file');
    t.regex(load(join(dir, 'wrong')).message, /cannot read the checkpoint/);

    // In memory: vector-mode GPTs and mismatched tokenizers are refused.
    t.throws(() => kilnLanguageModel(new kiln.nn.GPT({ nLayer: 1, nHead: 1, nEmbd: 8, blockSize: 4, inputDim: 2 }), tok), { message: /vector mode/ });
    t.throws(() => kilnLanguageModel(model, kiln.train.CharTokenizer.fromText('ab')), { message: /does not match/ });
    // Characters the tokenizer lacks fail that example only, with the tokenizer's message.
    await t.throwsAsync(kilnLanguageModel(model, tok).scoreChoices('xyz', ['a']), { message: /not in the vocabulary/ });

    // Through the CLI: a clear message and exit status 1, not a crash.
    const c = io();
    t.is(await runBigBenchCli(['run', '--task', TASK, '--model', `kiln:${join(dir, 'empty')}`, '--out', join(dir, 'r.json')], c.io), 1);
    t.regex(c.o.err, /kiln bigbench: kiln:.*empty: the folder has no model\.safetensors/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
