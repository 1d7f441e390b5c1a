import { fail, shapeStr } from '../errors.js';

export type Shape = readonly number[];

export function numel(shape: Shape): number {
  let n = 1;
  for (let i = 0; i < shape.length; i++) n *= shape[i];
  return n;
}

export function contiguousStrides(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

export function isContiguous(shape: Shape, strides: readonly number[]): boolean {
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && strides[i] !== acc) return false;
    acc *= shape[i];
  }
  return true;
}

export function sameShape(a: Shape, b: Shape): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** NumPy broadcasting of two shapes. */
export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = i < n - a.length ? 1 : a[i - (n - a.length)];
    const db = i < n - b.length ? 1 : b[i - (n - b.length)];
    if (da !== db && da !== 1 && db !== 1)
      fail('SHAPE_MISMATCH', `${op}: shapes ${shapeStr(a)} and ${shapeStr(b)} do not broadcast (dimension ${i}: ${da} vs ${db})`);
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides that read a tensor of `shape`/`strides` as if it had `target` shape (0 where broadcast). */
export function broadcastStrides(shape: Shape, strides: readonly number[], target: Shape): number[] {
  const out = new Array<number>(target.length).fill(0);
  const off = target.length - shape.length;
  for (let i = 0; i < shape.length; i++) out[i + off] = shape[i] === 1 ? 0 : strides[i];
  return out;
}

export function normAxis(op: string, axis: number, ndim: number): number {
  if (!Number.isInteger(axis)) fail('INVALID_ARGUMENT', `${op}: axis ${axis} is not an integer`);
  if (axis < -Math.max(ndim, 1) || axis >= Math.max(ndim, 1))
    fail('INVALID_ARGUMENT', `${op}: axis ${axis} is out of range for a tensor with ${ndim} dimensions`);
  return axis < 0 ? axis + Math.max(ndim, 1) : axis;
}

export function normAxes(op: string, axes: number | readonly number[] | undefined, ndim: number): number[] {
  if (axes === undefined) return Array.from({ length: ndim }, (_, i) => i);
  if (typeof axes !== 'number' && !Array.isArray(axes))
    fail('INVALID_ARGUMENT', `${op}: axes must be a number or an array of numbers, got ${axes === null ? 'null' : typeof axes}`);
  const list = typeof axes === 'number' ? [axes] : axes;
  const out = [...new Set(list.map((a) => normAxis(op, a, ndim)))].sort((x, y) => x - y);
  return out;
}

export function checkShape(op: string, shape: readonly number[]): number[] {
  if (!Array.isArray(shape)) fail('INVALID_ARGUMENT', `${op}: shape must be an array of integers`);
  if (shape.length > 8) fail('INVALID_ARGUMENT', `${op}: at most 8 dimensions are supported, got ${shape.length}`);
  for (const d of shape)
    if (!Number.isInteger(d) || d < 0) fail('INVALID_ARGUMENT', `${op}: bad shape ${shapeStr(shape)}`);
  // Each dimension too (an empty shape's product is 0 whatever its other dims are).
  if (numel(shape) > 2 ** 46 || shape.some((d) => d > 2 ** 46)) fail('INVALID_ARGUMENT', `${op}: shape ${shapeStr(shape)} is too large`);
  return [...shape];
}
