// GPT's key/value cache (GPT#createCache): cached outputs against the uncached forward at every
// new position, for rows of different lengths (padding holes, idle rows, dropped and reordered
// rows) that cross blockSize, in token and vector mode, float32 and float64; greedy generation of
// the BIG-bench kiln language model with and without the cache; flat memory; refused misuse; and
// the nn-level attention's bottom-right causal alignment that the cache relies on.
import test from 'ava';
import * as kiln from '../src/index.js';
import { kilnLanguageModel } from '../src/recipes/bigbench/kiln-model.js';
const { nn } = kiln;

type GPT = InstanceType<typeof nn.GPT>;
type DType = 'float32' | 'float64';

const N = 10; // blockSize of the models below
const V = 13, IN = 3, OUT = 2;

/** Deterministic pseudo-random numbers in [0, 1). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

interface Mode {
  name: string;
  make(dtype: DType): GPT;
  /** Row b's j-th input: a token id or an IN-vector. */
  item(b: number, j: number): number | number[];
  /** [rows, T] ids or [rows, T, IN] vectors, each row right-padded with junk. */
  input(rows: (number | number[])[][], T: number, dtype: DType): kiln.Tensor;
  outDim: number;
}

const junk = lcg(99);
const tokenMode: Mode = {
  name: 'token',
  make: (dtype) => new nn.GPT({ nLayer: 2, nHead: 2, nEmbd: 16, vocabSize: V, blockSize: N, dtype, init: false }),
  item: (b, j) => (j * 7 + b * 5 + ((j * j) % 3)) % V,
  input: (rows, T) => {
    const flat = new Int32Array(rows.length * T);
    rows.forEach((r, b) => { for (let t = 0; t < T; t++) flat[b * T + t] = t < r.length ? (r[t] as number) : Math.floor(junk() * V); });
    return kiln.tensor(flat, { dtype: 'int32', shape: [rows.length, T] });
  },
  outDim: V,
};
const vectorMode: Mode = {
  name: 'vector',
  make: (dtype) => new nn.GPT({ nLayer: 2, nHead: 2, nEmbd: 16, inputDim: IN, outputDim: OUT, blockSize: N, dtype, init: false }),
  item: (b, j) => Array.from({ length: IN }, (_, i) => Math.sin(1.3 * j + 0.7 * b + 2.1 * i)),
  input: (rows, T, dtype) => {
    const flat = new Float64Array(rows.length * T * IN);
    rows.forEach((r, b) => {
      for (let t = 0; t < T; t++) for (let i = 0; i < IN; i++) flat[(b * T + t) * IN + i] = t < r.length ? (r[t] as number[])[i] : 4 * junk() - 2;
    });
    return kiln.tensor(flat, { dtype, shape: [rows.length, T, IN] });
  },
  outDim: OUT,
};

/** Outputs [W, outDim] of the uncached forward over one row's inputs. */
function fullForward(model: GPT, mode: Mode, items: (number | number[])[], dtype: DType): Float64Array {
  return kiln.tidy(() => kiln.noGrad(() => Float64Array.from(model.forward(mode.input([items], items.length, dtype)).dataSync())));
}

/**
 * A schedule of cached calls: per row, how many new inputs (0 = idle), or a selectRows. It starts
 * with 4 rows; the reference follows each row's window the way the cache documents it: the row's
 * whole sequence until it would pass blockSize, then its last blockSize inputs.
 */
type Call = { lengths: number[] } | { select: number[] };
const SCHEDULE: Call[] = [
  { lengths: [4, 9, 1, 6] },         // prefill, right-padded: row 2 leaves 8 holes
  { lengths: [1, 1, 1, 1] },
  { select: [2, 0, 3] },             // drop row 1 and reorder the others, at different positions
  { lengths: [3, 2, 0] },            // several new positions per row; one row idle
  { lengths: [1, 1, 1] },
  { lengths: [4, 3, 1] },            // row 0 reaches blockSize; row 1 passes it with 3 new inputs (rebuilt)
  { lengths: [0, 1, 1] },            // row 0 idle at blockSize; row 1 rebuilt while row 2 steps
  ...Array.from({ length: 6 }, () => ({ lengths: [1, 1, 1] })),
  { lengths: [N, 0, 1] },            // a whole window of new inputs
  { select: [2, 0] },
  ...Array.from({ length: 5 }, () => ({ lengths: [1, 1] })),
  { lengths: [2, 1] },
  ...Array.from({ length: 4 }, () => ({ lengths: [1, 1] })),
];

/** Runs SCHEDULE; returns the largest |cached - uncached| over every new position of every call. */
function cachedVsFull(mode: Mode, dtype: DType, schedule: Call[] = SCHEDULE): { worst: number; compared: number; crossed: boolean; maxSlots: number } {
  kiln.manualSeed(7);
  const model = mode.make(dtype).eval();
  // Each cache row is a stream: its id, how many inputs it has consumed, where its window starts.
  let rows = [0, 1, 2, 3].map((id) => ({ id, n: 0, start: 0 }));
  const cache = model.createCache();
  let worst = 0, compared = 0, crossed = false, maxSlots = 0;
  try {
    for (const call of schedule) {
      if ('select' in call) {
        cache.selectRows(call.select);
        rows = call.select.map((r) => rows[r]);
        continue;
      }
      const T = Math.max(...call.lengths);
      const fresh = rows.map((r, b) => Array.from({ length: call.lengths[b] }, (_, t) => mode.item(r.id, r.n + t)));
      const got = kiln.tidy(() => kiln.noGrad(() =>
        Float64Array.from(model.forward(mode.input(fresh, T, dtype), { cache, lengths: call.lengths }).dataSync())));
      rows.forEach((r, b) => {
        const m = call.lengths[b];
        if (m === 0) return;
        const end = r.n + m;
        if (end - r.start > N) {
          r.start = end - N;
          crossed = true;
        }
        const window = Array.from({ length: end - r.start }, (_, j) => mode.item(r.id, r.start + j));
        const want = fullForward(model, mode, window, dtype);
        for (let t = 0; t < m; t++) {
          const w = end - m + t - r.start; // the new input's index in the window
          for (let o = 0; o < mode.outDim; o++) {
            worst = Math.max(worst, Math.abs(got[(b * T + t) * mode.outDim + o] - want[w * mode.outDim + o]));
            compared++;
          }
        }
        r.n = end;
      });
      maxSlots = Math.max(maxSlots, cache.length);
      const wantPos = rows.map((r) => r.n - r.start);
      if (cache.positions.join() !== wantPos.join()) throw new Error(`cache positions ${cache.positions} != ${wantPos}`);
    }
  } finally {
    cache.dispose();
  }
  return { worst, compared, crossed, maxSlots };
}

for (const mode of [tokenMode, vectorMode])
  for (const [dtype, tol] of [['float32', 2e-5], ['float64', 1e-11]] as const)
    test(`cached ${mode.name}-mode GPT outputs equal the uncached forward at every new position (${dtype}): padded prefill, idle and dropped rows, several positions per call, crossing blockSize`, (t) => {
      const { worst, compared, crossed } = cachedVsFull(mode, dtype);
      t.true(crossed, 'the schedule crosses blockSize');
      t.true(compared > 100 * mode.outDim / 2, `${compared} values compared`);
      t.true(worst < tol, `max |cached - uncached| = ${worst}`);
      t.log(`${compared} values, max |cached - uncached| = ${worst.toExponential(2)}`);
    });

test('the cache compacts the holes of idle rows while other rows keep crossing blockSize, and the idle rows still match', (t) => {
  // Rows 1 and 2 stay idle while rows 0 and 3 are rebuilt every call: no call starts afresh, so
  // each one leaves blockSize slots of holes in the idle rows.
  const schedule: Call[] = [
    { lengths: [2, 1, 3, 1] },
    ...Array.from({ length: 30 }, () => ({ lengths: [1, 0, 0, 1] })),
    { lengths: [1, 1, 1, 1] },
    { lengths: [1, 2, 1, 1] },
  ];
  const { worst, maxSlots, crossed } = cachedVsFull(tokenMode, 'float64', schedule);
  t.true(crossed);
  t.true(worst < 1e-11, `max |cached - uncached| = ${worst}`);
  t.true(maxSlots <= 2 * N + 8, `${maxSlots} slots for windows of ${N}`);
});

// Serial: the memory checks count live tensors process-wide.
test.serial('memory stays flat over a long cached decode and returns to where it was after dispose', (t) => {
  kiln.manualSeed(4);
  const model = tokenMode.make('float32').eval();
  const before = kiln.memory();
  const cache = model.createCache();
  const live = () => {
    const m = kiln.memory();
    return `${m.tensors} tensors ${m.bytes} bytes`;
  };
  const step = (s: number, lengths: number[]) => kiln.tidy(() => {
    model.forward(kiln.tensor(Int32Array.of(s % V, (s + 1) % V, (s + 2) % V), { dtype: 'int32', shape: [3, 1] }), { cache, lengths });
  });
  // Every row steps (past blockSize each call is a fresh window), then row 2 idles while the
  // others keep crossing (holes, compacted).
  const phases = [[1, 1, 1], [1, 1, 0]].map((lengths) => {
    const seen: string[] = [];
    for (let s = 0; s < 40; s++) {
      kiln.noGrad(() => step(s, lengths));
      if (s >= 15) seen.push(live());
    }
    return [...new Set(seen)];
  });
  phases.forEach((seen, i) => t.is(seen.length, 1, `phase ${i}: ${seen.join('; ')}`));
  t.log(`live past blockSize: ${phases.map((p) => p[0]).join(' / ')} (before the cache: ${before.tensors} tensors ${before.bytes} bytes)`);
  cache.dispose();
  const after = kiln.memory();
  t.is(after.tensors, before.tensors);
  t.is(after.bytes, before.bytes);
});

test.serial('greedy generation with the KV cache equals the uncached decoder: prompts longer than blockSize, generations crossing it, stop strings, batches', async (t) => {
  kiln.manualSeed(6); // a seed whose untrained model does not settle on one character at once
  const tok = kiln.train.CharTokenizer.fromText('abcdefgh ');
  const model = new nn.GPT({ nLayer: 2, nHead: 2, nEmbd: 16, vocabSize: tok.vocabSize, blockSize: 8, tieWeights: false });
  const prompts = ['a', 'hgf', 'abcdefgh', 'bad cab ahead', 'hhgg ffee ddcc bbaa'];
  const cached = kilnLanguageModel(model, tok, { maxBatch: 3 });
  const uncached = kilnLanguageModel(model, tok, { maxBatch: 3, kvCache: false });
  // An independent reference: argmax of the full forward over the last blockSize tokens.
  const reference = (prompt: string, n: number): string => {
    const ids = Array.from(tok.encode(prompt));
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const w = ids.slice(-8);
      const logits = kiln.tidy(() => kiln.noGrad(() => Array.from(model.forward(kiln.tensor(Int32Array.from(w), { dtype: 'int32', shape: [1, w.length] })).dataSync()).slice(-tok.vocabSize)));
      const next = logits.indexOf(Math.max(...logits));
      ids.push(next);
      out.push(next);
    }
    return tok.decode(out);
  };
  const want = prompts.map((p) => reference(p, 20));
  t.true(new Set(want).size > 1 && want.every((w) => new Set(w).size > 1), `the model's outputs are not degenerate: ${JSON.stringify(want)}`);
  const before = kiln.memory();
  t.deepEqual(await cached.generate(prompts, { maxTokens: 20 }), want);
  t.deepEqual(await uncached.generate(prompts, { maxTokens: 20 }), want);
  // Stop strings end rows at different steps, so rows leave the cache while others go on.
  const stops = [want[0][5], want[3][2]];
  const a = await cached.generate(prompts, { maxTokens: 20, stop: stops });
  t.deepEqual(a, await uncached.generate(prompts, { maxTokens: 20, stop: stops }));
  t.true(new Set(a.map((s) => s.length)).size > 1, `rows stop at different steps: ${JSON.stringify(a)}`);
  t.deepEqual(await cached.generate(prompts, { maxTokens: 0 }), prompts.map(() => ''));
  const after = kiln.memory();
  t.is(after.tensors, before.tensors, 'no tensors left behind');
  t.is(after.bytes, before.bytes);
});

test('the KV cache refuses misuse with KilnErrors, and a refused or failed call leaves it as it was', (t) => {
  kiln.manualSeed(6);
  const model = tokenMode.make('float32').eval();
  const other = tokenMode.make('float32').eval();
  const ids = (B: number, T: number, v = 1) => kiln.tensor(new Int32Array(B * T).fill(v), { dtype: 'int32', shape: [B, T] });
  const cache = model.createCache();
  const code = (fn: () => unknown, c: kiln.KilnErrorCode, re: RegExp) => {
    const e = t.throws(fn, { instanceOf: kiln.KilnError, message: re });
    t.is((e as kiln.KilnError).code, c, e?.message);
  };
  code(() => model.forward(ids(2, 3), { cache }), 'INVALID_ARGUMENT', /noGrad/);
  kiln.noGrad(() => {
    model.forward(ids(2, 3), { cache, lengths: [3, 2] });
    const positions = cache.positions, slots = cache.length;
    code(() => model.forward(ids(3, 1), { cache }), 'SHAPE_MISMATCH', /3 rows but the KV cache holds 2/);
    code(() => other.forward(ids(2, 1), { cache }), 'INVALID_ARGUMENT', /another model/);
    code(() => model.forward(ids(2, 2), { cache, lengths: [1] }), 'INVALID_ARGUMENT', /lengths \[1\] must be 2 integers in \[0, 2\]/);
    code(() => model.forward(ids(2, 2), { cache, lengths: [1, 3] }), 'INVALID_ARGUMENT', /lengths/);
    code(() => model.forward(ids(2, 2), { cache, lengths: [1, 0.5] }), 'INVALID_ARGUMENT', /lengths/);
    code(() => model.forward(ids(2, N + 1), { cache }), 'SHAPE_MISMATCH', /1 to blockSize 10/);
    code(() => model.forward(kiln.randn([2, 1, 3]), { cache }), 'SHAPE_MISMATCH', /token input must be int32/);
    code(() => model.forward(ids(2, 2), { lengths: [1, 2] }), 'INVALID_ARGUMENT', /lengths are for cached decoding/);
    code(() => cache.selectRows([0, 2]), 'INDEX_OUT_OF_RANGE', /row 2 is not in \[0, 2\)/);
    // A token id out of range fails inside the forward: nothing of that call is kept.
    const bad = ids(2, 1, V + 5), mem = kiln.memory();
    t.throws(() => model.forward(bad, { cache }), { instanceOf: kiln.KilnError });
    t.deepEqual(cache.positions, positions);
    t.is(cache.length, slots);
    t.is(kiln.memory().tensors, mem.tensors, 'the failed call left no tensors behind');
    // Dropout would make cached keys differ from a recomputation: refused in training mode.
    const dropped = new nn.GPT({ nLayer: 1, nHead: 2, nEmbd: 8, vocabSize: V, blockSize: N, dropout: 0.1 });
    const dc = dropped.createCache();
    code(() => dropped.forward(ids(1, 2), { cache: dc }), 'INVALID_ARGUMENT', /drop \(Dropout p = 0\.1\) would drop in training mode.*model\.eval\(\)/);
    dropped.eval();
    t.deepEqual(dropped.forward(ids(1, 2), { cache: dc }).shape, [1, 2, V]);
    dc.dispose();
    // A model moved to another dtype no longer matches the keys and values it cached.
    const moved = tokenMode.make('float32').eval();
    const mc = moved.createCache();
    moved.forward(ids(1, 2), { cache: mc });
    moved.to('float64');
    code(() => moved.forward(ids(1, 1), { cache: mc }), 'INVALID_ARGUMENT', /float32 keys on cpu but the model is now float64/);
    mc.dispose();
    // The layer refuses a cache for cross-attention or non-causal attention.
    const x = kiln.randn([1, 2, 8]);
    const slot = { k: null, v: null, nextK: null, nextV: null };
    code(() => new nn.MultiheadAttention(8, 2).forward(x, null, null, slot), 'INVALID_ARGUMENT', /needs causal attention/);
    code(() => new nn.MultiheadAttention(8, 2, { causal: true, cross: true }).forward(x, x, null, slot), 'INVALID_ARGUMENT', /self-attention/);
  });
  cache.dispose();
  code(() => kiln.noGrad(() => model.forward(ids(2, 1), { cache })), 'DISPOSED', /disposed/);
  code(() => cache.selectRows([0]), 'DISPOSED', /disposed/);
});

test('nn.scaledDotProductAttention aligns causal masking bottom-right when Tq != Tk, in the composed path as in the fused op', (t) => {
  kiln.manualSeed(8);
  for (const [Tq, Tk] of [[3, 7], [1, 5], [6, 4]]) {
    const q = kiln.randn([2, 2, Tq, 4], { dtype: 'float64' });
    const k = kiln.randn([2, 2, Tk, 4], { dtype: 'float64' });
    const v = kiln.randn([2, 2, Tk, 4], { dtype: 'float64' });
    const fused = nn.scaledDotProductAttention(q, k, v, { causal: true }).dataSync();
    // A mask that depends on the query ([Tq, Tk], here hiding nothing) takes the composed path.
    const composed = nn.scaledDotProductAttention(q, k, v, { causal: true, mask: kiln.zeros([Tq, Tk], { dtype: 'int32' }) }).dataSync();
    // Reference: query i sees keys j <= i + Tk - Tq; a query that sees none gives 0.
    const qa = q.dataSync(), ka = k.dataSync(), va = v.dataSync();
    let worst = 0, worstComposed = 0;
    for (let bh = 0; bh < 4; bh++)
      for (let i = 0; i < Tq; i++) {
        const s: number[] = [];
        for (let j = 0; j <= i + Tk - Tq && j < Tk; j++) {
          let d = 0;
          for (let c = 0; c < 4; c++) d += qa[(bh * Tq + i) * 4 + c] * ka[(bh * Tk + j) * 4 + c];
          s.push(d / 2);
        }
        const m = Math.max(...s), e = s.map((x) => Math.exp(x - m)), z = e.reduce((a, b) => a + b, 0);
        for (let c = 0; c < 4; c++) {
          const want = e.reduce((a, w, j) => a + (w / z) * va[(bh * Tk + j) * 4 + c], 0);
          const at = (bh * Tq + i) * 4 + c;
          worst = Math.max(worst, Math.abs(fused[at] - want));
          worstComposed = Math.max(worstComposed, Math.abs(composed[at] - want));
        }
      }
    t.true(worst < 1e-12, `fused Tq ${Tq} Tk ${Tk}: ${worst}`);
    t.true(worstComposed < 1e-12, `composed Tq ${Tq} Tk ${Tk}: ${worstComposed}`);
  }
});
