// Trainer: exact resume from a checkpoint, metrics JSON Lines, evaluation, SIGINT save-and-stop in
// a child process; data utilities (seeded shuffling, batching) and tokenizers with save/load.
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as kiln from '../src/index.js';
const { train } = kiln;

const dir = mkdtempSync(join(tmpdir(), 'kiln-train-'));
const text = 'the quick brown fox jumps over the lazy dog. the dog sleeps, the fox runs! '.repeat(20);

function setup(seed: number) {
  kiln.manualSeed(seed);
  const tok = train.CharTokenizer.fromText(text);
  const model = new kiln.nn.GPT({ nLayer: 1, nHead: 2, nEmbd: 16, vocabSize: tok.vocabSize, blockSize: 8, dropout: 0.1 });
  const optimizer = new kiln.optim.AdamW(model.parameters(), { lr: 3e-3 });
  const data = new train.TokenWindowLoader(tok.encode(text), 8, 4, 123);
  const V = tok.vocabSize;
  const loss = (b: { x: kiln.Tensor; y: kiln.Tensor }) => kiln.crossEntropy(model.forward(b.x).reshape([-1, V]), b.y.reshape([-1]));
  return { model, optimizer, data, loss };
}

// Serial: async tests interleave at awaits, and the global RNG stream (dropout) must not be shared.
test.serial('resuming from a checkpoint reproduces the uninterrupted losses exactly', async (t) => {
  const common = { steps: 12, schedule: kiln.sched.warmupCosine(3, 12, 0.1), clipGradNorm: 1, progress: 'none' as const };
  const full = setup(1);
  const ref = await new train.Trainer({ ...full, ...common }).fit();
  t.is(ref.losses.length, 12);

  const path = join(dir, 'resume', 'ckpt.safetensors');
  const first = setup(1);
  const r1 = await new train.Trainer({ ...first, ...common, steps: 5, checkpointPath: path }).fit();
  t.is(r1.step, 5);
  const second = setup(777); // different init and RNG stream: everything must come from the checkpoint
  const logs: string[] = [];
  const r2 = await new train.Trainer({ ...second, ...common, checkpointPath: path, log: (s) => logs.push(s), progress: 'lines', logEvery: 100 }).fit();
  t.is(r2.startStep, 5);
  t.regex(logs[0], /resumed .* at step 5/);
  t.deepEqual([...r1.losses, ...r2.losses], ref.losses);
  t.true(ref.losses[11] < ref.losses[0]);
});

test.serial('metrics JSON Lines, periodic evaluation, log lines and periodic checkpoints', async (t) => {
  const s = setup(2);
  const metricsPath = join(dir, 'm', 'metrics.jsonl');
  const ckpt = join(dir, 'm', 'c.safetensors');
  const lines: string[] = [];
  const evalCalls: number[] = [];
  const res = await new train.Trainer({
    ...s, steps: 6, logEvery: 2, evalEvery: 3, metricsPath, checkpointPath: ckpt, checkpointEvery: 4, resume: false,
    progress: 'lines', log: (l) => lines.push(l),
    evaluate: (step) => {
      evalCalls.push(step);
      t.false(s.model.training);
      return { val: kiln.tidy(() => kiln.noGrad(() => s.loss(s.data.batchAt(10_000)).item())) };
    },
  }).fit();
  t.deepEqual(evalCalls, [3, 6]);
  t.true(s.model.training);
  const recs = readFileSync(metricsPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.deepEqual(recs.filter((r) => 'loss' in r).map((r) => r.step), [2, 4, 6]);
  t.deepEqual(recs.filter((r) => 'eval' in r).map((r) => r.step), [3, 6]);
  t.is(recs.find((r) => r.step === 4 && 'loss' in r).loss, res.losses[3]);
  t.true(lines.some((l) => /^step 2\/6 loss \d+\.\d{4} lr /.test(l)));
  t.true(lines.some((l) => /^eval at step 3: val /.test(l)));
  t.is(kiln.io.loadCheckpoint(ckpt, { restoreRng: false }).meta.step, 6);
});

test.serial('a Trainer stopped early runs on to the end on its next fit, as if never stopped', async (t) => {
  const common = { steps: 9, schedule: kiln.sched.warmupCosine(2, 9, 0.1), clipGradNorm: 1, progress: 'none' as const, handleSigint: false, evalEvery: 3 };
  const full = setup(3);
  const ref = await new train.Trainer({ ...full, ...common, evaluate: () => ({}) }).fit();
  const s = setup(3);
  const path = join(dir, 'stop', 'ckpt.safetensors');
  const trainer: kiln.train.Trainer<{ x: kiln.Tensor; y: kiln.Tensor }> = new train.Trainer({
    ...s, ...common, checkpointPath: path, log: () => {},
    evaluate: (step) => {
      if (step === 3) trainer.stop(); // early stopping from an evaluation
      return {};
    },
  });
  const r1 = await trainer.fit();
  t.deepEqual([r1.step, r1.interrupted], [3, true]);
  const r2 = await trainer.fit();  // resumes from the checkpoint it saved when it stopped
  t.deepEqual([r2.startStep, r2.step, r2.interrupted], [3, 9, false]);
  t.deepEqual([...r1.losses, ...r2.losses], ref.losses);
  s.model.parameters().forEach((p, i) => t.deepEqual(p.dataSync(), full.model.parameters()[i].dataSync()));
});

test.serial('bad Trainer options are refused with a KilnError before any step runs', async (t) => {
  const s = setup(4);
  const before = s.model.parameters().map((p) => p.dataSync().slice());
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['no options', { __null: true }, /needs an options object, got null/],
    ['no model', { model: undefined }, /model must be a kiln\.nn\.Module/],
    ['no optimizer', { optimizer: {} }, /optimizer must be a kiln\.optim optimizer/],
    ['loss not a function', { loss: 5 }, /loss must be a function/],
    ['no data', { data: undefined }, /data must be a function of the step or have batchAt/],
    ['data without batchAt', { data: {} }, /data must be a function of the step or have batchAt/],
    ['schedule not a function', { schedule: 0.5 }, /schedule must be a function, got number/],
    ['evaluate not a function', { evaluate: 3, evalEvery: 1 }, /evaluate must be a function/],
    ['evalEvery without evaluate', { evalEvery: 2 }, /evalEvery needs evaluate/],
    ['clipGradNorm NaN', { clipGradNorm: NaN }, /clipGradNorm must be a number > 0/],
    ['clipGradNorm negative', { clipGradNorm: -1 }, /clipGradNorm must be a number > 0/],
    ['clipGradNorm a string', { clipGradNorm: '1' }, /clipGradNorm must be a number > 0/],
    ['checkpointPath a number', { checkpointPath: 5 }, /checkpointPath must be a non-empty string/],
    ['metricsPath a number', { metricsPath: 7 }, /metricsPath must be a non-empty string/],
    ['progress unknown', { progress: 'fancy' }, /progress must be 'auto', 'bar', 'lines' or 'none'/],
  ];
  for (const [what, over, re] of cases) {
    const opts = over.__null ? null : { ...s, steps: 2, progress: 'none', handleSigint: false, ...over };
    const e = await t.throwsAsync(async () => new train.Trainer(opts as never).fit(), { instanceOf: kiln.KilnError }, what);
    t.is((e as kiln.KilnError).code, 'INVALID_ARGUMENT', what);
    t.regex(e!.message, re, what);
  }
  s.model.parameters().forEach((p, i) => t.deepEqual(p.dataSync(), before[i], 'no step ran'));
  // evaluate must give named numbers (the log line formats them).
  const e = await t.throwsAsync(new train.Trainer({ ...s, steps: 2, progress: 'lines', log: () => {}, evalEvery: 1, evaluate: () => ({ acc: 'high' }) as never }).fit(),
    { instanceOf: kiln.KilnError });
  t.regex(e!.message, /evaluate must return an object of named numbers, got \{"acc":"high"\} at step 1/);
});

test('SIGINT saves a checkpoint and the process exits cleanly', async (t) => {
  const src = fileURLToPath(new URL('../src/index.ts', import.meta.url));
  const ckpt = join(dir, 'sigint.safetensors');
  const script = join(dir, 'sigint-child.mts');
  writeFileSync(script, `
import * as kiln from ${JSON.stringify(src)};
kiln.manualSeed(0);
const model = new kiln.nn.GPT({ nLayer: 1, nHead: 2, nEmbd: 16, inputDim: 3, outputDim: 1, blockSize: 8 });
const optimizer = new kiln.optim.Adam(model.parameters(), { lr: 1e-3 });
const res = await new kiln.train.Trainer({
  model, optimizer, steps: 100000, checkpointPath: ${JSON.stringify(ckpt)}, progress: 'lines', logEvery: 1,
  data: () => kiln.randn([4, 8, 3]),
  loss: (x) => kiln.mseLoss(model.forward(x), x.narrow(2, 0, 1)),
}).fit();
console.log(JSON.stringify({ step: res.step, interrupted: res.interrupted }));
`);
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stdout.on('data', (d) => (out += d));
  const sent = new Promise<void>((resolve) => {
    child.stderr.on('data', (d) => {
      err += d;
      if (/step 3\//.test(err) && !child.killed) {
        child.kill('SIGINT');
        resolve();
      }
    });
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  await sent;
  t.is(code, 0, err);
  const res = JSON.parse(out.trim().split('\n').pop()!);
  t.true(res.interrupted);
  t.true(res.step >= 3 && res.step < 100000);
  t.true(existsSync(ckpt));
  t.is(kiln.io.loadCheckpoint(ckpt, { restoreRng: false }).meta.step, res.step);
  t.regex(err, /checkpoint saved/);
});

test('seeded shuffling and batching', (t) => {
  const a = train.shuffledIndices(50, 7, 0), b = train.shuffledIndices(50, 7, 0), c = train.shuffledIndices(50, 7, 1);
  t.deepEqual(a, b);
  t.notDeepEqual(a, c);
  t.deepEqual([...a].sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i));
  const s = new train.BatchSampler(10, 3, { seed: 1 });
  t.is(s.batchesPerEpoch, 3);
  const epoch0 = [0, 1, 2].flatMap((st) => [...s.indicesAt(st)]);
  t.is(new Set(epoch0).size, 9);
  t.deepEqual([...new train.BatchSampler(5, 2, { shuffle: false, dropLast: false }).indicesAt(2)], [4]);
  const xs = Float32Array.from({ length: 12 }, (_, i) => i);
  const ys = Int32Array.from([0, 1, 2, 3]);
  const dl = new train.ArrayDataLoader({ x: { data: xs, rowShape: [3] }, y: { data: ys, rowShape: [] } }, 2, { seed: 3 });
  const batch = dl.batchAt(0);
  t.deepEqual(batch.x.shape, [2, 3]);
  t.is(batch.y.dtype, 'int32');
  const rows = batch.y.toArray() as number[];
  t.deepEqual(batch.x.toArray(), rows.map((r) => [3 * r, 3 * r + 1, 3 * r + 2]));
  const tw = new train.TokenWindowLoader(Int32Array.from({ length: 100 }, (_, i) => i), 5, 2, 9);
  const { x, y } = tw.batchAt(4);
  const xa = x.toArray() as number[][], ya = y.toArray() as number[][];
  xa.forEach((row, i) => t.deepEqual(ya[i], row.map((v) => v + 1)));
  t.deepEqual(tw.batchAt(4).x.toArray(), xa);
  t.throws(() => new train.BatchSampler(2, 3), { code: 'INVALID_ARGUMENT' } as any);
});

test('character and word tokenizers round trip and save/load', (t) => {
  const ch = train.CharTokenizer.fromText('hello world');
  t.is(ch.vocabSize, 8);
  t.is(ch.decode(ch.encode('low')), 'low');
  t.throws(() => ch.encode('z'), { code: 'INVALID_ARGUMENT' } as any);
  const p = join(dir, 'char.json');
  ch.save(p);
  t.deepEqual(train.CharTokenizer.load(p).encode('hello'), ch.encode('hello'));

  const w = train.WordTokenizer.fromText('The cat sat. The cat ran! A dog sat.', { lowercase: true, maxVocab: 9 });
  t.deepEqual(w.vocab.slice(0, 4), train.SPECIALS);
  t.deepEqual(w.vocab.slice(4), ['.', 'cat', 'sat', 'the', '!']);
  const ids = w.encode('the cat ran.', { bos: true, eos: true });
  t.deepEqual(Array.from(ids), [2, 7, 5, 1, 4, 3]);
  t.is(w.decode(ids), 'the cat <unk>.');
  const wp = join(dir, 'word.json');
  w.save(wp);
  const w2 = train.WordTokenizer.load(wp);
  t.deepEqual(w2.encode('The dog.'), w.encode('the dog.'));
  writeFileSync(join(dir, 'bad.json'), '{"type":"WordTokenizer","vocab":[1,2]}');
  t.throws(() => train.WordTokenizer.load(join(dir, 'bad.json')), { code: 'INVALID_ARGUMENT' } as any);
});

test('word tokenizer keeps combining marks inside words (Devanagari, decomposed accents)', (t) => {
  const hindi = 'हिन्दी भाषा';
  const nfd = 'naïve café'.normalize('NFD');
  t.deepEqual(train.WordTokenizer.split(hindi), ['हिन्दी', 'भाषा']);
  t.deepEqual(train.WordTokenizer.split(nfd), nfd.split(' '));
  t.deepEqual(train.WordTokenizer.split('İstanbul', true), ['i̇stanbul']);
  for (const s of [hindi, nfd]) {
    const tok = train.WordTokenizer.fromText(s);
    t.is(tok.decode(tok.encode(s)), s);
  }
});

test('word tokenizer special ids follow the vocabulary, wherever it puts them', (t) => {
  const tok = new train.WordTokenizer(['hi', '<eos>', '<bos>', '<unk>', '<pad>']);
  t.deepEqual([tok.padId, tok.unkId, tok.bosId, tok.eosId], [4, 3, 2, 1]);
  t.deepEqual([...tok.encode('zz hi', { bos: true, eos: true })], [2, 3, 0, 1]);
  t.is(tok.decode([4, 2, 0, 3, 1]), 'hi <unk>');
  const p = join(dir, 'reordered-word-tok.json');
  writeFileSync(p, JSON.stringify({ type: 'WordTokenizer', vocab: tok.vocab }));
  t.is(train.WordTokenizer.load(p).unkId, 3);
});

test('char tokenizer refuses a vocabulary entry that is not one code point', (t) => {
  const p = join(dir, 'foreign-char-tok.json');
  for (const vocab of [['ab', 'c'], ['', 'c'], ['a\u0301']]) {
    writeFileSync(p, JSON.stringify({ type: 'CharTokenizer', vocab, unk: null }));
    t.throws(() => train.CharTokenizer.load(p), { code: 'INVALID_ARGUMENT' } as any, JSON.stringify(vocab));
  }
  const withUnk = train.CharTokenizer.fromText('a😀\u0301', { unk: '<unk>' });
  const back = new train.CharTokenizer(withUnk.vocab, withUnk.unk);
  t.deepEqual([...back.encode('a😀\u0301z')], [...withUnk.encode('a😀\u0301z')]);
});

test('gatherRows refuses a fractional row and honours half dtypes; bad loader options are refused', (t) => {
  t.throws(() => train.gatherRows([1, 2, 3, 4, 5, 6], [2], [1.5]), { code: 'INDEX_OUT_OF_RANGE' } as any);
  t.throws(() => train.gatherRows(new Float32Array(6), [2], [0.5]), { code: 'INDEX_OUT_OF_RANGE' } as any);
  for (const dtype of ['float16', 'bfloat16'] as const) {
    const g = train.gatherRows([1, 2, 3, 4], [2], [1], dtype);
    t.is(g.dtype, dtype);
    t.deepEqual(g.toArray(), [[3, 4]]);
    g.dispose();
  }
  const toks = new Int32Array(10);
  for (const [block, batch] of [[3, 0], [3, -1], [0, 2], [1.5, 2], [3, 2.5]])
    t.throws(() => new train.TokenWindowLoader(toks, block, batch), { code: 'INVALID_ARGUMENT' } as any, `${block} ${batch}`);
  const L = new train.TokenWindowLoader(toks, 3, 2);
  for (const step of [-1, 1.5, NaN]) t.throws(() => L.batchAt(step), { code: 'INVALID_ARGUMENT' } as any, String(step));
  t.throws(() => train.shuffledIndices(-1, 0), { code: 'INVALID_ARGUMENT' } as any);
  t.throws(() => train.shuffledIndices(2.5, 0), { code: 'INVALID_ARGUMENT' } as any);
});
