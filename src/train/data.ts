// Data utilities: a seeded shuffle that does not touch the global tensor RNG, a stateless batch
// sampler (the batch of step s is a pure function of the seed and s, so a resumed run sees exactly
// the batches the uninterrupted one would), and helpers that gather rows into tensors.
import { KilnError } from '../errors.js';
import type { DType, TypedArray } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import { fromTyped } from '../ops/creation.js';

/** SplitMix32-style integer hash stream: small, fast and well mixed. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return ((z ^ (z >>> 16)) >>> 0) / 4294967296;
  };
}

/** A permutation of [0, n) from (seed, epoch), by Fisher-Yates. */
export function shuffledIndices(n: number, seed: number, epoch = 0): Int32Array {
  if (!Number.isInteger(n) || n < 0) throw new KilnError('INVALID_ARGUMENT', `shuffledIndices: n must be an integer >= 0, got ${n}`);
  const idx = new Int32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  const rnd = seededRandom((Math.imul(seed >>> 0, 0x27d4eb2d) ^ Math.imul(epoch + 1, 0x165667b1)) >>> 0);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    const t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
  }
  return idx;
}

export interface SamplerOptions {
  shuffle?: boolean;
  seed?: number;
  /** Drop the last, smaller batch of each epoch (default true: every batch has batchSize rows). */
  dropLast?: boolean;
}

/** Which example indices form the batch at each step; epochs reshuffle with (seed, epoch). */
export class BatchSampler {
  readonly batchesPerEpoch: number;
  private cache: { epoch: number; order: Int32Array } | null = null;
  constructor(readonly size: number, readonly batchSize: number, readonly opts: SamplerOptions = {}) {
    if (!Number.isInteger(size) || size < 1) throw new KilnError('INVALID_ARGUMENT', `BatchSampler: size must be a positive integer, got ${size}`);
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new KilnError('INVALID_ARGUMENT', `BatchSampler: batchSize must be a positive integer, got ${batchSize}`);
    const dropLast = opts.dropLast ?? true;
    if (dropLast && batchSize > size) throw new KilnError('INVALID_ARGUMENT', `BatchSampler: batchSize ${batchSize} exceeds the ${size} examples`);
    this.batchesPerEpoch = dropLast ? Math.floor(size / batchSize) : Math.ceil(size / batchSize);
  }

  epochOf(step: number): number {
    return Math.floor(step / this.batchesPerEpoch);
  }

  indicesAt(step: number): Int32Array {
    if (!Number.isInteger(step) || step < 0) throw new KilnError('INVALID_ARGUMENT', `BatchSampler: step must be an integer >= 0, got ${step}`);
    const epoch = this.epochOf(step);
    if (!this.cache || this.cache.epoch !== epoch) {
      const order = this.opts.shuffle === false ? shuffledIndicesIdentity(this.size) : shuffledIndices(this.size, this.opts.seed ?? 0, epoch);
      this.cache = { epoch, order };
    }
    const b = step % this.batchesPerEpoch;
    const lo = b * this.batchSize;
    return this.cache.order.subarray(lo, Math.min(lo + this.batchSize, this.size));
  }
}

function shuffledIndicesIdentity(n: number): Int32Array {
  const idx = new Int32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  return idx;
}

/** Rows `indices` of a row-major array of rows shaped `rowShape`, as a tensor [indices.length, ...rowShape]. */
export function gatherRows(data: TypedArray | number[], rowShape: number[], indices: ArrayLike<number>, dtype?: DType): Tensor {
  const row = rowShape.reduce((a, b) => a * b, 1);
  if (data.length % row !== 0) throw new KilnError('SHAPE_MISMATCH', `gatherRows: ${data.length} values are not a whole number of rows of ${row}`);
  const rows = data.length / row;
  const Ctor = dtype === 'int32' || (dtype === undefined && data instanceof Int32Array) ? Int32Array
    : dtype === 'float64' || (dtype === undefined && data instanceof Float64Array) ? Float64Array : Float32Array;
  const out = new Ctor(indices.length * row);
  for (let i = 0; i < indices.length; i++) {
    const r = indices[i];
    if (!(Number.isInteger(r) && r >= 0 && r < rows)) throw new KilnError('INDEX_OUT_OF_RANGE', `gatherRows: row ${r} of ${rows}`);
    if (Array.isArray(data)) for (let j = 0; j < row; j++) out[i * row + j] = data[r * row + j];
    else out.set((data as TypedArray).subarray(r * row, (r + 1) * row), i * row);
  }
  // float16 / bfloat16 rows are gathered in float32 and rounded once.
  return fromTyped(out, [indices.length, ...rowShape], dtype === 'float16' || dtype === 'bfloat16' ? { dtype } : undefined);
}

/** A dataset of parallel arrays (inputs, targets, ...) served in seeded batches by step. */
export class ArrayDataLoader {
  readonly sampler: BatchSampler;
  constructor(
    readonly fields: Record<string, { data: TypedArray | number[]; rowShape: number[]; dtype?: DType }>,
    readonly batchSize: number,
    opts: SamplerOptions = {},
  ) {
    const sizes = Object.entries(fields).map(([k, f]) => [k, f.data.length / f.rowShape.reduce((a, b) => a * b, 1)] as const);
    if (sizes.length === 0) throw new KilnError('INVALID_ARGUMENT', 'ArrayDataLoader: needs at least one field');
    for (const [k, n] of sizes)
      if (n !== sizes[0][1]) throw new KilnError('SHAPE_MISMATCH', `ArrayDataLoader: field '${k}' has ${n} rows, '${sizes[0][0]}' has ${sizes[0][1]}`);
    this.sampler = new BatchSampler(sizes[0][1], batchSize, opts);
  }
  batchAt(step: number): Record<string, Tensor> {
    const idx = this.sampler.indicesAt(step);
    const out: Record<string, Tensor> = {};
    for (const [k, f] of Object.entries(this.fields)) out[k] = gatherRows(f.data, f.rowShape, idx, f.dtype);
    return out;
  }
}

/**
 * Language-model batches from one token stream: at each step, batchSize windows of blockSize + 1
 * tokens at seeded random offsets; x is the window without its last token, y without its first.
 */
export class TokenWindowLoader {
  constructor(readonly tokens: Int32Array, readonly blockSize: number, readonly batchSize: number, readonly seed = 0) {
    if (!Number.isInteger(blockSize) || blockSize < 1) throw new KilnError('INVALID_ARGUMENT', `TokenWindowLoader: blockSize must be a positive integer, got ${blockSize}`);
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new KilnError('INVALID_ARGUMENT', `TokenWindowLoader: batchSize must be a positive integer, got ${batchSize}`);
    if (tokens.length < blockSize + 1)
      throw new KilnError('INVALID_ARGUMENT', `TokenWindowLoader: ${tokens.length} tokens are fewer than blockSize + 1 = ${blockSize + 1}`);
  }
  batchAt(step: number): { x: Tensor; y: Tensor } {
    if (!Number.isInteger(step) || step < 0) throw new KilnError('INVALID_ARGUMENT', `TokenWindowLoader: step must be an integer >= 0, got ${step}`);
    const rnd = seededRandom((Math.imul(this.seed >>> 0, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca77)) >>> 0);
    const T = this.blockSize, B = this.batchSize;
    const x = new Int32Array(B * T), y = new Int32Array(B * T);
    const span = this.tokens.length - T;
    for (let b = 0; b < B; b++) {
      const off = Math.floor(rnd() * span);
      x.set(this.tokens.subarray(off, off + T), b * T);
      y.set(this.tokens.subarray(off + 1, off + T + 1), b * T);
    }
    return { x: fromTyped(x, [B, T]), y: fromTyped(y, [B, T]) };
  }
}
