// The key/value cache of a GPT's incremental decoding (GPT#createCache). It holds, per layer, the
// keys and values of every position a row has seen, and the host-side bookkeeping that lets rows
// of one batch have different lengths: which cached slots are real positions of which row (the
// others are holes, hidden by a per-key mask), each row's next position id, and each row's last
// blockSize inputs, from which a row that passes blockSize is rebuilt.
//
// Layout: keys and values are [B, H, L, D] per layer, L slots shared by the rows, held in capacity
// buffers [B, H, C, D] (C >= L). A call appends T' slots to every row (its new positions,
// right-padded to the call's width; the padding becomes holes), so rows advance at their own pace;
// the layers write them into the buffers' room in place, and a call that does not fit moves the
// cache once into buffers about twice as large (up to blockSize), so a decode step copies only its
// new keys and values, not the cache. When dead slots pile up (padding, rebuilt rows) the
// cache is compacted: each row's real slots are gathered to the front, in order. A call in which
// every row is rebuilt starts the slots afresh.
import { KilnError, shapeStr } from '../errors.js';
import { noGrad } from '../tensor/autograd.js';
import type { DType, Device, TypedArray } from '../tensor/dtype.js';
import { keep, tidy } from '../tensor/storage.js';
import { Tensor } from '../tensor/tensor.js';
import { tensor } from '../ops/creation.js';
import { embedding } from '../ops/nn.js';
import type { KVSlot } from './attention.js';

/** One row's input at one position: a token id (token mode) or an inputDim vector (vector mode). */
type Input = number | TypedArray;

const emptySlot = (): KVSlot => ({ k: null, v: null, length: 0, growTo: 0, nextK: null, nextV: null });

/**
 * Buffer capacity for `need` slots: room for as many again, up to blockSize N (2N once holes take
 * the cache past N), so a decode of n steps moves the cache O(log n) times and holds at most ~2x.
 */
export function grownCapacity(need: number, N: number): number {
  return Math.max(need, Math.min(2 * need, need <= N ? N : 2 * N));
}

/** What one cached call computes, from the rows' state and the new inputs (see GPTCache#plan). */
export interface CachePlan {
  /** Width of the forward: T, or blockSize when a row is rebuilt. */
  width: number;
  /** The forward's input [B, width] (tokens) or [B, width, inputDim] (vectors) when a row is rebuilt, else null (the caller's input as is). */
  input: TypedArray | null;
  /** Position ids [B, width]. */
  positions: Int32Array;
  /** Cached slots the new positions attend to: L, or 0 when every row is rebuilt (nothing cached is reused). */
  keysBefore: number;
  /** The layers' slots for this call: the cache's own, or empty ones when keysBefore is 0. */
  slots: KVSlot[];
  /** Hiding mask [B, keysBefore + width] (nonzero = hidden), or null when no key is hidden. */
  hide: Int32Array | null;
  /** For each output row and position, the row of the [B * width] hidden states it reads, or null when that is the identity. */
  gather: Int32Array | null;
  /** The state after the call. */
  next: { valid: Uint8Array[]; pos: number[]; hist: Input[][] };
}

/**
 * Made by GPT#createCache and passed to its hidden/forward; check, plan, commit and abort are the
 * model's side of that exchange, not for callers. Callers read batchSize, positions and length,
 * and call selectRows and dispose.
 */
export class GPTCache {
  /** One slot per layer, in order. */
  readonly slots: KVSlot[];
  private rows: number | null = null;
  private L = 0;
  private valid: Uint8Array[] = [];
  private pos: number[] = [];
  private hist: Input[][] = [];
  private dtype: DType | null = null;
  private device: Device | null = null;
  private disposed = false;

  /** Made by GPT#createCache; `owner` is the model it serves. */
  constructor(readonly owner: object, nLayer: number, readonly blockSize: number) {
    this.slots = Array.from({ length: nLayer }, emptySlot);
  }

  /** The batch size fixed by the first call (and changed by selectRows), or null before it. */
  get batchSize(): number | null {
    return this.rows;
  }

  /** Per row: the positions in its window, which is also the position id its next token gets. */
  get positions(): number[] {
    return this.pos.slice();
  }

  /** Key/value slots held per layer (each row's positions plus holes). */
  get length(): number {
    return this.L;
  }

  /** Slots the layers' key/value buffers have room for (>= length; 0 when empty). */
  get capacity(): number {
    return this.slots[0]?.k?.shape[2] ?? 0;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Refuses use after dispose, by another model, or on a model whose dtype or device changed since the cache was filled. */
  check(op: string, owner: object, nLayer: number, dtype: DType, device: Device): void {
    if (this.disposed) throw new KilnError('DISPOSED', `${op}: the KV cache was disposed`);
    if (owner !== this.owner || nLayer !== this.slots.length)
      throw new KilnError('INVALID_ARGUMENT', `${op}: the KV cache was made by another model (each GPT makes its own with createCache())`);
    if (this.dtype !== null && (this.dtype !== dtype || this.device !== device))
      throw new KilnError('INVALID_ARGUMENT',
        `${op}: the KV cache holds ${this.dtype} keys on ${this.device} but the model is now ${dtype} on ${device}; make a new cache`);
  }

  /**
   * Plans a call of B rows, `width` T, row b adding its first lens[b] inputs (read from `data`, [B,
   * T] ids or [B, T, inputDim] vectors). A row whose window stays within blockSize continues at its
   * next position; a row that would pass it is rebuilt: its old slots become holes and it is run
   * afresh over its last blockSize inputs at positions 0 .. blockSize - 1, which is the forward the
   * uncached model sees after cropping from the left.
   */
  plan(op: string, data: TypedArray, shape: readonly number[], lens: number[], inputDim: number): CachePlan {
    const [B, T] = shape;
    if (this.rows !== null && B !== this.rows)
      throw new KilnError('SHAPE_MISMATCH', `${op}: input ${shapeStr(shape)} has ${B} rows but the KV cache holds ${this.rows} (selectRows changes its rows)`);
    const N = this.blockSize, L = this.L, w = Math.max(inputDim, 1);
    const at = (b: number, t: number): Input => (inputDim === 0 ? data[b * T + t] : data.slice((b * T + t) * w, (b * T + t + 1) * w));
    const pos0 = this.rows === null ? new Array<number>(B).fill(0) : this.pos;
    const hist0 = this.rows === null ? Array.from({ length: B }, () => [] as Input[]) : this.hist;
    const rebuild = lens.map((m, b) => pos0[b] + m > N);
    const anyRebuild = rebuild.includes(true);
    // When every row is rebuilt, no cached key is visible to any new position: start afresh
    // rather than carry them as holes.
    const reset = rebuild.every((r) => r);
    const K = reset ? 0 : L;
    const width = anyRebuild ? N : T;
    const positions = new Int32Array(B * width);
    const gather = anyRebuild ? new Int32Array(B * T) : null;
    const input = anyRebuild ? (inputDim === 0 ? new Int32Array(B * width) : new (data.constructor as new (n: number) => TypedArray)(B * width * w)) : null;
    const next = { valid: [] as Uint8Array[], pos: [] as number[], hist: [] as Input[][] };
    let hidden = false;
    for (let b = 0; b < B; b++) {
      const m = lens[b];
      const fresh: Input[] = [];
      for (let t = 0; t < m; t++) fresh.push(at(b, t));
      const hist = hist0[b].concat(fresh).slice(-N);
      const valid = new Uint8Array(K + width);
      if (!rebuild[b]) {
        if (K > 0) valid.set(this.valid[b]);
        for (let t = 0; t < m; t++) positions[b * width + t] = pos0[b] + t;
        if (input) input.set(data.subarray(b * T * w, (b + 1) * T * w), b * width * w);
        if (gather) for (let t = 0; t < T; t++) gather[b * T + t] = b * width + t;
        valid.fill(1, K, K + m);
        next.pos.push(pos0[b] + m);
      } else {
        // The window is full: blockSize inputs, the new ones at its end.
        for (let t = 0; t < N; t++) {
          positions[b * width + t] = t;
          const x = hist[t];
          if (inputDim === 0) input![b * width + t] = x as number;
          else input!.set(x as TypedArray, (b * width + t) * w);
        }
        for (let t = 0; t < T; t++) gather![b * T + t] = b * width + Math.min(N - m + t, N - 1);
        valid.fill(1, K, K + N);
        next.pos.push(N);
      }
      if (valid.includes(0)) hidden = true;
      next.valid.push(valid);
      next.hist.push(hist);
    }
    let hide: Int32Array | null = null;
    if (hidden) {
      hide = new Int32Array(B * (K + width));
      next.valid.forEach((v, b) => v.forEach((x, j) => { hide![b * (K + width) + j] = x ? 0 : 1; }));
    }
    const slots = reset ? this.slots.map(emptySlot) : this.slots;
    // Past blockSize every row restarts each call (reset): its buffers then need no room.
    const growTo = reset ? width : grownCapacity(K + width, N);
    for (const s of slots) s.growTo = growTo;
    return { width, input, positions, keysBefore: K, slots, hide, gather, next };
  }

  /** Takes the layers' buffers (the same ones written in place, or new ones) and the planned state; disposes what they replace. */
  commit(plan: CachePlan, dtype: DType, device: Device): void {
    this.slots.forEach((s, i) => {
      const n = plan.slots[i];
      if (s.k !== n.nextK) s.k?.dispose();
      if (s.v !== n.nextV) s.v?.dispose();
      s.k = n.nextK;
      s.v = n.nextV;
      n.nextK = n.nextV = null;
    });
    this.rows = plan.next.pos.length;
    this.valid = plan.next.valid;
    this.pos = plan.next.pos;
    this.hist = plan.next.hist;
    this.setLength(plan.keysBefore + plan.width);
    this.dtype = dtype;
    this.device = device;
    // Dead slots cost every later step attention work: compact once they are a quarter of the cache.
    const keepLen = Math.max(0, ...this.valid.map(countOnes));
    const dead = this.L - keepLen;
    if (dead >= 8 && 4 * dead > this.L) this.compact(keepLen);
  }

  /**
   * Disposes the new buffers of a call that failed; the cache stays as it was (what the call wrote
   * in place lies past its length, in room the next call overwrites).
   */
  abort(plan?: CachePlan): void {
    for (const s of plan ? plan.slots : this.slots) {
      for (const t of [s.nextK, s.nextV]) if (t && t !== s.k && t !== s.v) t.dispose();
      s.nextK = s.nextV = null;
    }
  }

  /** Gathers each row's real slots to the front (in order); the rest of the row becomes holes. keepLen: the most real slots of a row. */
  private compact(keepLen: number): void {
    const B = this.rows!;
    if (keepLen === 0) return this.clearSlots();
    const order: number[][] = this.valid.map((v) => {
      const idx: number[] = [];
      v.forEach((x, j) => { if (x) idx.push(j); });
      return idx;
    });
    // The capacity stays; the room after keepLen gets copies of each head's slot 0 (never read).
    this.gatherSlots((H, C) => {
      const idx = new Int32Array(B * H * C);
      for (let b = 0; b < B; b++)
        for (let h = 0; h < H; h++) {
          const head = (b * H + h) * C;
          for (let j = 0; j < keepLen; j++) idx[head + j] = head + (order[b][j] ?? 0);
          idx.fill(head, head + keepLen, head + C);
        }
      return idx;
    }, ([, H, C, D]) => [B * H * C, D], (shape) => shape);
    this.setLength(keepLen);
    this.valid = order.map((o) => {
      const v = new Uint8Array(keepLen);
      v.fill(1, 0, o.length);
      return v;
    });
  }

  /**
   * Keeps only the given rows (indices into the current batch, in the order given): the cache then
   * serves a batch of rows.length rows, e.g. once some rows of a generation have finished. An
   * empty list empties the cache, which then takes any batch size again.
   */
  selectRows(rows: ArrayLike<number>): void {
    const op = 'GPTCache.selectRows';
    if (this.disposed) throw new KilnError('DISPOSED', `${op}: the KV cache was disposed`);
    const B = this.rows;
    const list = Array.from(rows ?? []);
    if (B === null) {
      if (list.length === 0) return;
      throw new KilnError('INVALID_ARGUMENT', `${op}: the KV cache holds no rows yet (got rows [${list.join(', ')}])`);
    }
    for (const r of list)
      if (!Number.isInteger(r) || r < 0 || r >= B)
        throw new KilnError('INDEX_OUT_OF_RANGE', `${op}: row ${String(r)} is not in [0, ${B}) (the KV cache holds ${B} rows)`);
    if (list.length === 0) return this.clearSlots();
    if (this.L > 0) {
      // Whole rows, room included (the capacity stays).
      this.gatherSlots(() => Int32Array.from(list), ([, H, C, D]) => [B, H * C * D], ([, H, C, D]) => [list.length, H, C, D]);
    }
    this.rows = list.length;
    this.valid = list.map((r) => this.valid[r]);
    this.pos = list.map((r) => this.pos[r]);
    this.hist = list.map((r) => this.hist[r]);
  }

  /**
   * Replaces every slot's key/value buffers [B, H, C, D] by rows of them (an embedding lookup on a
   * 2-d view `flat` of the buffer, reshaped to `shape`).
   */
  private gatherSlots(indices: (H: number, C: number) => Int32Array, flat: (shape: number[]) => number[], shape: (shape: number[]) => number[]): void {
    // Every layer's buffers have one shape and device: one index tensor serves them all.
    const first = this.slots[0].k!;
    noGrad(() => tidy(() => {
      const idx = tensor(indices(first.shape[1], first.shape[2]), { dtype: 'int32', device: first.device });
      for (const s of this.slots) {
        const [k, v] = [s.k!, s.v!].map((t) => keep(embedding(t.reshape(flat(t.shape)), idx).reshape(shape(t.shape))));
        s.k!.dispose();
        s.v!.dispose();
        s.k = k;
        s.v = v;
      }
    }));
  }

  private clearSlots(): void {
    for (const s of this.slots) {
      s.k?.dispose();
      s.v?.dispose();
      s.k = s.v = null;
    }
    this.rows = null;
    this.setLength(0);
    this.valid = [];
    this.pos = [];
    this.hist = [];
  }

  private setLength(L: number): void {
    this.L = L;
    for (const s of this.slots) s.length = L;
  }

  /** Frees the cached keys and values; the cache refuses further use. */
  dispose(): void {
    if (this.disposed) return;
    this.abort();
    this.clearSlots();
    this.disposed = true;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

function countOnes(v: Uint8Array): number {
  let n = 0;
  for (const x of v) n += x;
  return n;
}
