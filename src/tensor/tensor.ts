// The Tensor: a strided view of a Storage, with its place in the autograd graph. Ops live in
// src/ops/ and are attached to the prototype there (see src/ops/methods.ts).
import { inspect } from 'node:util';
import { KilnError, shapeStr } from '../errors.js';
import { A, N } from '../native.js';
import { dtypeCode, isHalf, itemSize, typedArrayFor, type Device, type DType, type HostDType, type TypedArray } from './dtype.js';
import { contiguousStrides, isContiguous, numel } from './shape.js';
import { Storage, track, untrack, ref } from './storage.js';

/** A node of the autograd graph: how to turn the output's gradient into the inputs' gradients. */
export interface GradNode {
  readonly name: string;
  readonly inputs: readonly Tensor[];
  backward(grad: Tensor): readonly (Tensor | null | undefined)[];
}

let nextId = 1;

export class Tensor {
  static peekNextId(): number {
    return nextId;
  }
  readonly id = nextId++;
  readonly shape: number[];
  readonly strides: number[];
  readonly offset: number;
  readonly dtype: DType;
  readonly storage: Storage;
  requiresGrad = false;
  grad: Tensor | null = null;
  _node: GradNode | null = null;
  /**
   * Set when this tensor had a grad node and lost it (its op's name, and whether dispose or a
   * backward without retainGraph freed it): a later backward that reaches it must fail rather than
   * take it for a leaf and silently give its inputs no gradient.
   */
  _freedNode: { name: string; by: 'dispose' | 'backward' } | null = null;
  _disposed = false;
  /** Module-internal activation: backward may free its memory once its own gradient step ran. */
  _internal = false;
  _kept = false;
  _registered = false;

  /** Internal: use the creation functions (kiln.zeros, kiln.tensor, ...) instead. */
  constructor(storage: Storage, shape: number[], strides: number[], offset: number, dtype: DType) {
    this.storage = storage;
    this.shape = shape;
    this.strides = strides;
    this.offset = offset;
    this.dtype = dtype;
    track(this);
  }

  get device(): Device {
    return this.storage.device;
  }
  get ndim(): number {
    return this.shape.length;
  }
  get size(): number {
    return numel(this.shape);
  }
  numel(): number {
    return numel(this.shape);
  }
  get isDisposed(): boolean {
    return this._disposed;
  }
  /** True for tensors no op produced (a backward that freed the graph does not make one a leaf). */
  get isLeaf(): boolean {
    return this._node === null && this._freedNode === null;
  }
  private _contig: boolean | undefined;
  /** Row-major dense (shape and strides never change after construction, so this is cached). */
  isContiguous(): boolean {
    return (this._contig ??= isContiguous(this.shape, this.strides));
  }

  /** Frees this tensor's reference to its memory now (views keep shared memory alive). */
  dispose(): void {
    if (this._disposed) return;
    this._disposed = true;
    if (this._node) this._freedNode = { name: this._node.name, by: 'dispose' };
    this._node = null;
    untrack(this);
    if (this.grad) {
      this.grad.dispose();
      this.grad = null;
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Throws a KilnError DISPOSED when the tensor was freed. */
  assertLive(op: string): void {
    if (this._disposed || this.storage.freed)
      throw new KilnError('DISPOSED', `${op}: tensor of shape ${shapeStr(this.shape)} was disposed`);
  }

  /**
   * A flat copy of the elements in logical (row-major) order. float16 and bfloat16 tensors read
   * back as a Float32Array (widening is exact); `rawSync` gives their 16-bit patterns.
   */
  dataSync(): TypedArray {
    this.assertLive('dataSync');
    if (isHalf(this.dtype)) {
      const wide = contiguousCopy(this, 'float32');
      try {
        return wide.dataSync();
      } finally {
        wide.dispose();
      }
    }
    const bytes = readBytes(this);
    return typedArrayFor(this.dtype as HostDType, bytes.buffer as ArrayBuffer, 0, this.size);
  }

  /** Asynchronous read-back (resolves after pending device work). */
  async data(): Promise<TypedArray> {
    return this.dataSync();
  }

  /** The elements as nested arrays (a number for a 0-d tensor). */
  toArray(): any {
    const flat = this.dataSync();
    if (this.ndim === 0) return flat[0];
    const build = (dim: number, off: number): any[] => {
      const n = this.shape[dim];
      const out = new Array(n);
      if (dim === this.ndim - 1) {
        for (let i = 0; i < n; i++) out[i] = flat[off + i];
        return out;
      }
      const step = numel(this.shape.slice(dim + 1));
      for (let i = 0; i < n; i++) out[i] = build(dim + 1, off + i * step);
      return out;
    };
    return build(0, 0);
  }

  /** The value of a one-element tensor. */
  item(): number {
    if (this.size !== 1)
      throw new KilnError('SHAPE_MISMATCH', `item: needs a tensor with one element, got shape ${shapeStr(this.shape)}`);
    return this.dataSync()[0];
  }

  toString(): string {
    if (this._disposed) return `tensor(<disposed>, shape=${shapeStr(this.shape)})`;
    const flat = this.dataSync();
    const fmt = valueFormat(flat, this.dtype === 'int32');
    const maxItems = 6;
    const render = (dim: number, off: number, indent: string): string => {
      if (this.ndim === 0) return fmt(flat[0]);
      const n = this.shape[dim];
      const step = numel(this.shape.slice(dim + 1));
      const idx = n > maxItems ? [0, 1, 2, -1, n - 3, n - 2, n - 1] : Array.from({ length: n }, (_, i) => i);
      if (dim === this.ndim - 1) return '[' + idx.map((i) => (i < 0 ? '...' : fmt(flat[off + i]))).join(', ') + ']';
      const parts = idx.map((i) => (i < 0 ? '...' : render(dim + 1, off + i * step, indent + ' ')));
      return '[' + parts.join(',\n' + indent + ' ') + ']';
    };
    const extras = [`shape=${shapeStr(this.shape)}`, `dtype=${this.dtype}`];
    if (this.device !== 'cpu') extras.push(`device=${this.device}`);
    if (this.requiresGrad) extras.push(this._node ? `grad_fn=${this._node.name}` : 'requiresGrad=true');
    return `tensor(${render(0, 0, '       ')}, ${extras.join(', ')})`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/**
 * One format for every printed element, as PyTorch picks it: integers as `2.`; values whose
 * magnitudes all lie in [1e-4, 1e8) with 4 decimals; otherwise scientific with 4; right-aligned to
 * one width. NaN and ±inf print as nan / inf / -inf.
 */
function valueFormat(values: ArrayLike<number>, isInt: boolean): (v: number) => string {
  let lo = Infinity, hi = 0, allInt = true;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    const a = Math.abs(v);
    if (a > hi) hi = a;
    if (a > 0 && a < lo) lo = a;
    if (!Number.isInteger(v)) allInt = false;
  }
  const special = (v: number) => (Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf');
  let one: (v: number) => string;
  if (isInt) one = (v) => String(v);
  else if (allInt && hi < 1e8) one = (v) => (Number.isFinite(v) ? `${Object.is(v, -0) ? '-0' : v}.` : special(v));
  else if (hi < 1e8 && (lo === Infinity || lo >= 1e-4)) one = (v) => (Number.isFinite(v) ? v.toFixed(4) : special(v));
  else one = (v) => (Number.isFinite(v) ? v.toExponential(4) : special(v));
  let width = 0;
  for (let i = 0; i < values.length; i++) width = Math.max(width, one(values[i]).length);
  return (v) => one(v).padStart(width);
}

/** The elements' bytes in logical (row-major) order, as stored (half dtypes: their 16-bit patterns). */
export function rawSync(t: Tensor): Uint8Array {
  t.assertLive('rawSync');
  return readBytes(t);
}

function readBytes(t: Tensor): Uint8Array {
  const n = t.size;
  const isz = itemSize[t.dtype];
  const out = new Uint8Array(n * isz);
  if (n === 0) return out;
  const src: Tensor = t.isContiguous() ? t : contiguousCopy(t);
  try {
    if (src.storage.buf) {
      out.set(new Uint8Array(src.storage.buf, src.offset * isz, n * isz));
    } else {
      ref(0, { handle: 0, buf: out.buffer } as Storage, 0, dtypeCode[t.dtype]);
      ref(3, src.storage, src.offset * isz, dtypeCode[t.dtype]);
      A[6] = n * isz;
      N.copy(out.buffer as ArrayBuffer, undefined);
    }
    return out;
  } finally {
    if (src !== t) src.dispose();
  }
}

/**
 * A fresh, uninitialised, contiguous tensor. Shape and strides arrays are never mutated after a
 * tensor is made, so callers may pass arrays shared with another contiguous tensor of that shape.
 */
export function empty(shape: number[], dtype: DType, device: Device, strides?: number[]): Tensor {
  const storage = Storage.alloc(device, numel(shape) * itemSize[dtype]);
  return new Tensor(storage, shape, strides ?? contiguousStrides(shape), 0, dtype);
}

/**
 * A view sharing `base`'s storage. An empty view reads nothing, so it starts at 0: its offset (from
 * narrowing an empty tensor, say) could otherwise lie past the end of its storage.
 */
export function view(base: Tensor, shape: number[], strides: number[], offset: number): Tensor {
  return new Tensor(base.storage, shape, strides, numel(shape) === 0 ? 0 : offset, base.dtype);
}

/** A contiguous copy through the strided copy kernel (no autograd). */
export function contiguousCopy(t: Tensor, dtype: DType = t.dtype): Tensor {
  const out = empty([...t.shape], dtype, t.device);
  stridedCopy(out, t);
  return out;
}

/** out[...] = src[...] for two views of one shape (any strides, any dtypes: a cast). */
export function stridedCopy(out: Tensor, src: Tensor): void {
  const nd = src.ndim;
  A[0] = 0; // UnaryOp.Copy
  A[1] = nd;
  A[2] = 0;
  A[3] = 0;
  const ob = ref(4, out.storage, out.offset * itemSize[out.dtype], dtypeCode[out.dtype]);
  const sb = ref(7, src.storage, src.offset * itemSize[src.dtype], dtypeCode[src.dtype]);
  for (let i = 0; i < nd; i++) {
    A[16 + i] = src.shape[i];
    A[24 + i] = out.strides[i];
    A[32 + i] = src.strides[i];
  }
  N.unary(ob, sb);
}
