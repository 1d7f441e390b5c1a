// Tensor creation: constants, ranges, data from JavaScript, and Philox random draws.
import { KilnError, shapeStr } from '../errors.js';
import { A, N } from '../native.js';
import { dtypeCode, isDType, isHalf, itemSize, typedArrayFor, type Device, type DType, type TypedArray } from '../tensor/dtype.js';
import { Unary } from '../tensor/opcodes.js';
import { reserve } from '../tensor/random.js';
import { checkShape, numel } from '../tensor/shape.js';
import { Tensor, empty } from '../tensor/tensor.js';
import { checkDevice } from './device.js';
import { arg, cast } from './util.js';

export interface CreateOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

function opts(op: string, o: CreateOptions | undefined, dflt: DType = 'float32'): { dtype: DType; device: Device } {
  const dtype = o?.dtype ?? dflt;
  if (!isDType(dtype)) throw new KilnError('INVALID_ARGUMENT', `${op}: unknown dtype '${String(dtype)}'`);
  const device = checkDevice(op, o?.device ?? 'cpu');
  return { dtype, device };
}

function finish(t: Tensor, o: CreateOptions | undefined): Tensor {
  if (o?.requiresGrad) {
    if (t.dtype === 'int32') throw new KilnError('DTYPE_MISMATCH', 'requiresGrad needs a float tensor, got int32');
    t.requiresGrad = true;
  }
  return t;
}

/** Fills a contiguous tensor with one value. */
export function fillInPlace(t: Tensor, value: number): Tensor {
  // The kernel converts the value to the element type: out of int32's range that is undefined.
  if (t.dtype === 'int32' && !(value > -2147483649 && value < 2147483648))
    throw new KilnError('INVALID_ARGUMENT', `full: ${value} does not fit int32 (shape ${shapeStr(t.shape)}); use a float dtype`);
  A[0] = Unary.Fill;
  A[1] = 1;
  A[2] = value;
  A[3] = 0;
  A[16] = t.size;
  A[24] = 1;
  A[32] = 1;
  const b = arg(4, t);
  arg(7, t);
  N.unary(b, b);
  return t;
}

/** A tensor of `value`; the third argument is a dtype, or options as for zeros ({ dtype, device, requiresGrad }). */
export function full(shape: number[], value: number, dtype: DType | CreateOptions = 'float32', device: Device = 'cpu'): Tensor {
  const o = typeof dtype === 'object' && dtype !== null ? dtype : undefined;
  const { dtype: dt, device: dev } = opts('full', o ?? { dtype: dtype as DType, device });
  return finish(fillInPlace(empty(checkShape('full', shape), dt, dev), value), o);
}

export function zeros(shape: number[], o?: CreateOptions): Tensor {
  const { dtype, device } = opts('zeros', o);
  return finish(full(shape, 0, dtype, device), o);
}
export function ones(shape: number[], o?: CreateOptions): Tensor {
  const { dtype, device } = opts('ones', o);
  return finish(full(shape, 1, dtype, device), o);
}
export function fill(shape: number[], value: number, o?: CreateOptions): Tensor {
  const { dtype, device } = opts('full', o);
  return finish(full(shape, value, dtype, device), o);
}
export const zerosLike = (t: Tensor, o?: CreateOptions) => zeros(t.shape.slice(), { dtype: t.dtype, device: t.device, ...o });
export const onesLike = (t: Tensor, o?: CreateOptions) => ones(t.shape.slice(), { dtype: t.dtype, device: t.device, ...o });
export const fullLike = (t: Tensor, v: number, o?: CreateOptions) => fill(t.shape.slice(), v, { dtype: t.dtype, device: t.device, ...o });

/**
 * Copies host values into a new tensor (on `device`). float16 / bfloat16 values are rounded to
 * nearest even from the exact float32 or float64 values by the native cast.
 */
export function fromTyped(data: TypedArray | number[], shape: number[], o?: CreateOptions): Tensor {
  const { dtype, device } = opts('tensor', o, data instanceof Int32Array ? 'int32' : data instanceof Float64Array ? 'float64' : 'float32');
  checkShape('tensor', shape);
  const n = numel(shape);
  if (data.length !== n)
    throw new KilnError('SHAPE_MISMATCH', `tensor: ${data.length} values do not fill shape ${shapeStr(shape)} (${n} elements)`);
  if (isHalf(dtype)) {
    const exact = data instanceof Float32Array ? data : Float64Array.from(data as ArrayLike<number>);
    const wide = fromTyped(exact, shape, { dtype: exact instanceof Float32Array ? 'float32' : 'float64' });
    const h = cast(wide, dtype);
    wide.dispose();
    if (device === 'cpu') return finish(h, o);
    const moved = h.to(device);
    h.dispose();
    return finish(moved, o);
  }
  if (dtype === 'int32')  // Int32Array.set wraps silently (3e9 became -1294967296)
    for (let i = 0; i < n; i++) {
      const v = (data as ArrayLike<number>)[i];
      if (!(v >= -2147483648 && v <= 2147483647))
        throw new KilnError('INVALID_ARGUMENT', `tensor: ${v} does not fit int32 (shape ${shapeStr(shape)})`);
    }
  const t = empty(shape, dtype, device);
  const isz = itemSize[dtype];
  if (t.storage.buf) {
    typedArrayFor(dtype, t.storage.buf, 0, n).set(data as ArrayLike<number>);
  } else if (n > 0) {
    let src = data instanceof Array || !(sameKind(data, dtype)) ? typedArrayFor(dtype, new ArrayBuffer(n * isz), 0, n) : data;
    if (src !== data) src.set(data as ArrayLike<number>);
    const buf = src.byteOffset === 0 && src.buffer.byteLength === n * isz ? src.buffer : src.slice().buffer;
    arg(0, t);
    A[3] = 0;
    A[4] = 0;
    A[5] = dtypeCode[t.dtype];
    A[6] = n * isz;
    N.copy(undefined, buf as ArrayBuffer);
  }
  return finish(t, o);
}

/** A tensor holding `bytes` as stored elements of `dtype` (little-endian; half dtypes: 16-bit patterns). */
export function fromBytes(bytes: Uint8Array, shape: number[], dtype: DType, device: Device = 'cpu'): Tensor {
  checkShape('tensor', shape);
  const n = numel(shape);
  if (bytes.byteLength !== n * itemSize[dtype])
    throw new KilnError('SHAPE_MISMATCH', `tensor: ${bytes.byteLength} bytes do not hold ${dtype} ${shapeStr(shape)}`);
  const t = empty(shape, dtype, device);
  if (n === 0) return t;
  if (t.storage.buf) new Uint8Array(t.storage.buf, 0, bytes.byteLength).set(bytes);
  else {
    // A copy that owns its buffer (Buffer#slice would return a view of the whole file).
    const src = bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.byteLength ? bytes.buffer : new Uint8Array(bytes).buffer;
    arg(0, t);
    A[3] = 0;
    A[4] = 0;
    A[5] = dtypeCode[dtype];
    A[6] = bytes.byteLength;
    N.copy(undefined, src as ArrayBuffer);
  }
  return t;
}

function sameKind(d: TypedArray, dtype: DType): boolean {
  return (dtype === 'float32' && d instanceof Float32Array) || (dtype === 'int32' && d instanceof Int32Array) ||
    (dtype === 'float64' && d instanceof Float64Array);
}

type Nested = number | boolean | Nested[];

/** kiln.tensor([[1, 2], [3, 4]]): nested arrays or a typed array (flat, with `shape`). */
export function tensor(data: Nested | TypedArray, o?: CreateOptions & { shape?: number[] }): Tensor {
  if (ArrayBuffer.isView(data)) return fromTyped(data as TypedArray, o?.shape ?? [(data as TypedArray).length], o);
  const shape: number[] = [];
  let probe: Nested = data;
  while (Array.isArray(probe)) {
    shape.push(probe.length);
    probe = probe[0] as Nested;
    if (shape.length > 8) throw new KilnError('INVALID_ARGUMENT', 'tensor: more than 8 nested levels');
  }
  const flat: number[] = [];
  const walk = (x: Nested, d: number) => {
    if (d === shape.length) {
      if (Array.isArray(x)) throw new KilnError('SHAPE_MISMATCH', 'tensor: ragged nested array');
      const v = typeof x === 'boolean' ? Number(x) : x;
      if (typeof v !== 'number') throw new KilnError('INVALID_ARGUMENT', `tensor: element ${String(x)} is not a number`);
      flat.push(v);
      return;
    }
    if (!Array.isArray(x) || x.length !== shape[d]) throw new KilnError('SHAPE_MISMATCH', 'tensor: ragged nested array');
    for (const v of x) walk(v, d + 1);
  };
  walk(data, 0);
  return fromTyped(flat, o?.shape ?? shape, o);
}

export function arange(start: number, stop?: number, step = 1, o?: CreateOptions): Tensor {
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0 || !Number.isFinite(step)) throw new KilnError('INVALID_ARGUMENT', 'arange: step must be finite and nonzero');
  const allInt = Number.isInteger(start) && Number.isInteger(stop) && Number.isInteger(step);
  const dtype = o?.dtype ?? (allInt ? 'int32' : 'float32');
  const n = Math.max(0, Math.ceil((stop - start) / step));
  if (!(n <= 2 ** 31)) throw new KilnError('INVALID_ARGUMENT', `arange: [${start}, ${stop}) by ${step} has ${n} values (at most 2^31)`);
  const vals = new Float64Array(n);
  for (let i = 0; i < n; i++) vals[i] = start + i * step;
  return fromTyped(vals, [n], { ...o, dtype });
}

export function linspace(start: number, stop: number, steps: number, o?: CreateOptions): Tensor {
  if (!(Number.isInteger(steps) && steps >= 0 && steps <= 2 ** 31))
    throw new KilnError('INVALID_ARGUMENT', `linspace: steps must be an integer in [0, 2^31], got ${steps}`);
  const vals = new Float64Array(steps);
  for (let i = 0; i < steps; i++) vals[i] = steps === 1 ? start : start + ((stop - start) * i) / (steps - 1);
  return fromTyped(vals, [steps], { dtype: 'float32', ...o });
}

function draw(kind: 0 | 1 | 2, shape: number[], a: number, b: number, dtype: DType, device: Device): Tensor {
  checkShape(kind === 2 ? 'randint' : kind === 1 ? 'randn' : 'rand', shape);
  if (isHalf(dtype)) {
    // Half draws are the float32 draws rounded: the same seed gives the same values everywhere.
    const wide = draw(kind, shape, a, b, 'float32', 'cpu');
    const h = cast(wide, dtype);
    wide.dispose();
    if (device === 'cpu') return h;
    const moved = h.to(device);
    h.dispose();
    return moved;
  }
  // Philox on the tensor's own device: the same seed and offset give the same values on every device.
  const t = empty(shape, dtype, device);
  const n = t.size;
  const [lo, hi, off] = reserve(kind === 1 ? n + (n & 1) : n);
  A[0] = kind;
  A[1] = n;
  A[2] = lo;
  A[3] = hi;
  A[4] = off;
  A[5] = a;
  A[6] = b;
  N.random(arg(7, t));
  return t;
}

export function rand(shape: number[], o?: CreateOptions & { low?: number; high?: number }): Tensor {
  const { dtype, device } = opts('rand', o);
  if (dtype === 'int32') throw new KilnError('DTYPE_MISMATCH', 'rand: dtype must be float');
  return finish(draw(0, shape, o?.low ?? 0, o?.high ?? 1, dtype, device), o);
}

export function randn(shape: number[], o?: CreateOptions & { mean?: number; std?: number }): Tensor {
  const { dtype, device } = opts('randn', o);
  if (dtype === 'int32') throw new KilnError('DTYPE_MISMATCH', 'randn: dtype must be float');
  return finish(draw(1, shape, o?.mean ?? 0, o?.std ?? 1, dtype, device), o);
}

/** Integers uniform in [low, high). */
export function randint(low: number, high: number, shape: number[], o?: CreateOptions): Tensor {
  const { device } = opts('randint', o, 'int32');
  if (!Number.isInteger(low) || !Number.isInteger(high) || high <= low)
    throw new KilnError('INVALID_ARGUMENT', `randint: need integers low < high, got [${low}, ${high})`);
  return draw(2, shape, low, high, 'int32', device);
}
