// The KV cache's capacity buffers (src/nn/gpt-cache.ts): decode steps write their keys and values
// in place; the buffers grow geometrically up to blockSize, so a long decode moves the cache a few
// times only and keeps a flat tensor count; a call that fails after a growth (or after writing in
// place) leaves the cache as it was; selectRows and compaction keep the capacity.
import test from 'ava';
import * as kiln from '../src/index.js';
import { grownCapacity } from '../src/nn/gpt-cache.js';
const { nn } = kiln;

type GPT = InstanceType<typeof nn.GPT>;
const V = 11;

function makeModel(blockSize: number): GPT {
  kiln.manualSeed(21);
  return new nn.GPT({ nLayer: 2, nHead: 2, nEmbd: 16, vocabSize: V, blockSize, init: false }).eval();
}

const tokenOf = (row: number, j: number) => (j * 5 + row * 3 + ((j * j) % 4)) % V;
const ids = (rows: number[][]) => kiln.tensor(Int32Array.from(rows.flat()), { dtype: 'int32', shape: [rows.length, rows[0].length] });

/** The uncached logits [V] at the last position of one row's sequence. */
function lastLogits(model: GPT, seq: number[]): number[] {
  return kiln.tidy(() => kiln.noGrad(() => Array.from(model.forward(ids([seq])).dataSync()).slice(-V)));
}

/** One cached step: each row's next token; returns the logits [rows][V] at the new position. */
function step(model: GPT, cache: ReturnType<GPT['createCache']>, tokens: number[][]): number[][] {
  return kiln.tidy(() => kiln.noGrad(() => {
    const out = Array.from(model.forward(ids(tokens), { cache }).dataSync());
    const T = tokens[0].length;
    return tokens.map((_, b) => out.slice((b * T + T - 1) * V, (b * T + T) * V));
  }));
}

function maxDiff(a: number[], b: number[]): number {
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
}

test('grownCapacity: room for as many again, up to blockSize (twice that once holes pass it), never below the need', (t) => {
  t.is(grownCapacity(4, 100), 8);
  t.is(grownCapacity(60, 100), 100);
  t.is(grownCapacity(100, 100), 100);
  t.is(grownCapacity(101, 100), 200);
  t.is(grownCapacity(250, 100), 250);
  for (const [need, N] of [[1, 1], [7, 3], [33, 64], [64, 64], [65, 64]])
    t.true(grownCapacity(need, N) >= need);
});

test.serial('a 300-step decode grows the buffers geometrically, writes in place, keeps the tensor count flat and matches the uncached forward', (t) => {
  const N = 400;
  const model = makeModel(N);
  const cache = model.createCache();
  const seqs = [0, 1].map((b) => Array.from({ length: 4 }, (_, j) => tokenOf(b, j)));
  step(model, cache, seqs);
  const counts = new Set<number>();
  const caps: number[] = [cache.capacity];
  let moves = 0, prevK = cache.slots[0].k, worst = 0;
  for (let s = 0; s < 300; s++) {
    const next = seqs.map((q, b) => tokenOf(b, q.length));
    seqs.forEach((q, b) => q.push(next[b]));
    const got = step(model, cache, next.map((x) => [x]));
    t.true(cache.capacity >= cache.length, `capacity ${cache.capacity} holds length ${cache.length}`);
    if (cache.slots[0].k !== prevK) {
      moves++;
      caps.push(cache.capacity);
      prevK = cache.slots[0].k;
    }
    counts.add(kiln.memory().tensors);
    if (s % 60 === 59 || s === 299) seqs.forEach((q, b) => { worst = Math.max(worst, maxDiff(got[b], lastLogits(model, q))); });
  }
  t.is(cache.length, 304);
  t.is(counts.size, 1, `live tensors over the decode: ${[...counts].join(', ')}`);
  // Each move at least doubles the capacity, except the last, which stops at blockSize.
  caps.slice(1).forEach((c, i) => t.true(c >= 2 * caps[i] || c === N, `capacities ${caps.join(' -> ')}`));
  t.true(moves <= Math.ceil(Math.log2(304 / 4)) + 1, `${moves} moves for 300 steps: ${caps.join(' -> ')}`);
  t.log(`capacities ${caps.join(' -> ')} (${moves} moves in 300 steps)`);
  t.true(worst < 1e-4, `max |cached - uncached| = ${worst}`);
  cache.dispose();
});

test.serial('a call that fails after growing the buffers, or after writing in place, leaves the cache as it was', (t) => {
  const model = makeModel(64);
  const cache = model.createCache();
  const seqs = [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 0, 1]];
  step(model, cache, seqs);
  // Fill the room so that the next call must grow.
  while (cache.length < cache.capacity) {
    const next = seqs.map((q, b) => tokenOf(b, q.length));
    seqs.forEach((q, b) => q.push(next[b]));
    step(model, cache, next.map((x) => [x]));
  }
  const block = model.h[1];
  const forward = block.forward;
  block.forward = () => { throw new Error('injected failure in layer 1'); };
  const next = seqs.map((q, b) => tokenOf(b, q.length));
  for (const growing of [true, false]) {
    const state = { length: cache.length, capacity: cache.capacity, positions: cache.positions, k: cache.slots.map((s) => [s.k, s.v]) };
    const mem = kiln.memory();
    // Layer 0 grows (or writes in place) before layer 1 fails.
    t.throws(() => step(model, cache, next.map((x) => [x])), { message: /injected failure/ });
    t.is(cache.length, state.length);
    t.is(cache.capacity, state.capacity, growing ? 'the grown buffers were dropped' : 'same buffers');
    t.deepEqual(cache.positions, state.positions);
    cache.slots.forEach((s, i) => t.true(s.k === state.k[i][0] && s.v === state.k[i][1] && !s.k!.isDisposed, `layer ${i} keeps its buffers`));
    t.true(cache.slots.every((s) => s.nextK === null && s.nextV === null));
    t.is(kiln.memory().tensors, mem.tensors, 'nothing left behind');
    t.is(kiln.memory().bytes, mem.bytes);
    if (growing) {
      // Next round: room is there, so layer 0 writes in place before layer 1 fails.
      block.forward = forward;
      seqs.forEach((q, b) => q.push(next[b]));
      step(model, cache, next.map((x) => [x]));
      t.true(cache.capacity > cache.length);
      block.forward = () => { throw new Error('injected failure in layer 1'); };
      next.splice(0, next.length, ...seqs.map((q, b) => tokenOf(b, q.length)));
    }
  }
  block.forward = forward;
  // The cache goes on as if the failed calls never happened.
  let worst = 0;
  for (let s = 0; s < 3; s++) {
    const n = seqs.map((q, b) => tokenOf(b, q.length));
    seqs.forEach((q, b) => q.push(n[b]));
    const got = step(model, cache, n.map((x) => [x]));
    seqs.forEach((q, b) => { worst = Math.max(worst, maxDiff(got[b], lastLogits(model, q))); });
  }
  t.true(worst < 1e-4, `max |cached - uncached| after the failures = ${worst}`);
  cache.dispose();
});

test.serial('selectRows and compaction keep the capacity; decoding then continues in place and matches', (t) => {
  const N = 32;
  const model = makeModel(N);
  const cache = model.createCache();
  const seqs = [[1, 2, 3], [4, 5, 6], [7, 8, 9]];
  step(model, cache, seqs);
  for (let s = 0; s < 5; s++) {
    const next = seqs.map((q, b) => tokenOf(b, q.length));
    seqs.forEach((q, b) => q.push(next[b]));
    step(model, cache, next.map((x) => [x]));
  }
  const cap = cache.capacity;
  cache.selectRows([2, 0]);
  const rows = [seqs[2], seqs[0]];
  t.is(cache.capacity, cap);
  const before = cache.slots[0].k;
  const n = rows.map((q, b) => tokenOf(b + 5, q.length));
  rows.forEach((q, b) => q.push(n[b]));
  const got = step(model, cache, n.map((x) => [x]));
  t.is(cache.slots[0].k, before, 'the step after selectRows wrote in place');
  let worst = Math.max(...rows.map((q, b) => maxDiff(got[b], lastLogits(model, q))));
  // Row 1 idles while row 0 takes 8 positions a call and crosses blockSize: each call that rebuilds
  // row 0 over a fresh window turns its old slots into holes, until the cache compacts them.
  let compacted = false;
  for (let s = 0; s < 8 && !compacted; s++) {
    const len0 = cache.length, rebuilt = cache.positions[0] + 8 > N;
    const fresh = Array.from({ length: 8 }, (_, j) => tokenOf(9, rows[0].length + j));
    rows[0].push(...fresh);
    const out = kiln.tidy(() => kiln.noGrad(() => Array.from(model.forward(ids([fresh, new Array<number>(8).fill(0)]), { cache, lengths: [8, 0] }).dataSync())));
    worst = Math.max(worst, maxDiff(out.slice(7 * V, 8 * V), lastLogits(model, rows[0].slice(-N))));
    const appended = len0 + (rebuilt ? N : 8);
    if (cache.length < appended) {
      compacted = true;
      t.true(cache.capacity >= appended && cache.capacity > cache.length, `compaction kept the room: capacity ${cache.capacity}, length ${cache.length}`);
    }
  }
  t.true(compacted, 'the cache compacted');
  const m = rows.map((q, b) => tokenOf(b, q.length));
  rows.forEach((q, b) => q.push(m[b]));
  const last = step(model, cache, m.map((x) => [x]));
  rows.forEach((q, b) => { worst = Math.max(worst, maxDiff(last[b], lastLogits(model, q.slice(-N)))); });
  t.true(worst < 1e-4, `max |cached - uncached| = ${worst}`);
  const mem = kiln.memory();
  cache.dispose();
  t.is(kiln.memory().tensors, mem.tensors - 2 * 2, 'dispose freed the key and value buffers of both layers');
});
