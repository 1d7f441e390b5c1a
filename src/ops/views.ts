// Views share storage (reshape of contiguous data, transpose, permute, expand, narrow, squeeze);
// concat/stack/split build on them. Each has its gradient.
import { KilnError, shapeStr } from '../errors.js';
import { record } from '../tensor/autograd.js';
import { checkShape, contiguousStrides, normAxis, numel, sameShape } from '../tensor/shape.js';
import { Tensor, empty, stridedCopy, view } from '../tensor/tensor.js';
import { zeros } from './creation.js';
import { resultType, sumTo } from './elementwise.js';
import { cast, checkTensor, contig, sameDevice } from './util.js';

export function reshape(x: Tensor, shape: number[]): Tensor {
  checkTensor('reshape', x);
  if (!Array.isArray(shape)) throw new KilnError('INVALID_ARGUMENT', `reshape: shape must be an array of integers, got ${shape === null ? 'null' : typeof shape} for ${shapeStr(x.shape)}`);
  const n = x.size;
  const neg = shape.indexOf(-1);
  let target = shape.slice();
  if (neg >= 0) {
    if (shape.indexOf(-1, neg + 1) >= 0) throw new KilnError('INVALID_ARGUMENT', `reshape: more than one -1 in ${shapeStr(shape)}`);
    const rest = numel(shape.filter((_, i) => i !== neg));
    if (rest === 0 || n % rest !== 0)
      throw new KilnError('SHAPE_MISMATCH', `reshape: cannot reshape ${shapeStr(x.shape)} into ${shapeStr(shape)}`);
    target[neg] = n / rest;
  }
  target = checkShape('reshape', target);
  if (numel(target) !== n)
    throw new KilnError('SHAPE_MISMATCH', `reshape: cannot reshape ${shapeStr(x.shape)} (${n} elements) into ${shapeStr(shape)}`);
  let out: Tensor;
  if (x.isContiguous()) out = view(x, target, contiguousStrides(target), x.offset);
  else {
    const c = contig(x);
    out = view(c, target, contiguousStrides(target), c.offset);
    c.dispose();
  }
  return record(out, 'reshape', [x], (g) => [reshape(g, x.shape.slice())]);
}

export function permute(x: Tensor, dims: number[]): Tensor {
  checkTensor('permute', x);
  if (!Array.isArray(dims)) throw new KilnError('INVALID_ARGUMENT', `permute: dims must be an array, got ${dims === null ? 'null' : typeof dims} for ${shapeStr(x.shape)}`);
  if (dims.length !== x.ndim) throw new KilnError('INVALID_ARGUMENT', `permute: ${dims.length} dims for a ${x.ndim}-d tensor`);
  const d = dims.map((a) => normAxis('permute', a, x.ndim));
  if (new Set(d).size !== d.length) throw new KilnError('INVALID_ARGUMENT', `permute: repeated dimension in [${dims}]`);
  const out = view(x, d.map((i) => x.shape[i]), d.map((i) => x.strides[i]), x.offset);
  const inv = new Array<number>(d.length);
  d.forEach((p, i) => (inv[p] = i));
  return record(out, 'permute', [x], (g) => [permute(g, inv)]);
}

export function transpose(x: Tensor, dim0 = -2, dim1 = -1): Tensor {
  checkTensor('transpose', x);
  // A new view even when nothing moves: disposing the result must not dispose x.
  if (x.ndim < 2 && dim0 === -2 && dim1 === -1) return permute(x, [...Array(x.ndim).keys()]);
  const a = normAxis('transpose', dim0, x.ndim), b = normAxis('transpose', dim1, x.ndim);
  const dims = [...Array(x.ndim).keys()];
  dims[a] = b;
  dims[b] = a;
  return permute(x, dims);
}

export function expand(x: Tensor, shape: number[]): Tensor {
  checkTensor('expand', x);
  if (!Array.isArray(shape)) throw new KilnError('INVALID_ARGUMENT', `expand: shape must be an array, got ${shape === null ? 'null' : typeof shape} for ${shapeStr(x.shape)}`);
  if (shape.length < x.ndim) throw new KilnError('SHAPE_MISMATCH', `expand: ${shapeStr(x.shape)} to fewer dims ${shapeStr(shape)}`);
  const off = shape.length - x.ndim;
  const strides = new Array<number>(shape.length).fill(0);
  const target = shape.slice();
  for (let i = 0; i < shape.length; i++) {
    if (i < off) continue;
    const d = x.shape[i - off];
    if (target[i] === -1) target[i] = d;
    if (d === target[i]) strides[i] = x.strides[i - off];
    else if (d !== 1) throw new KilnError('SHAPE_MISMATCH', `expand: cannot expand ${shapeStr(x.shape)} to ${shapeStr(shape)}`);
  }
  checkShape('expand', target);
  const out = view(x, target, strides, x.offset);
  return record(out, 'expand', [x], (g) => [contig(sumTo(g, x.shape))]);
}

/** Elements [start, start + length) along `axis`, as a view. */
export function narrow(x: Tensor, axis: number, start: number, length: number): Tensor {
  checkTensor('narrow', x);
  if (x.ndim === 0) throw new KilnError('INVALID_ARGUMENT', 'narrow: a 0-d tensor has no dimension to narrow');
  const a = normAxis('narrow', axis, x.ndim);
  const size = x.shape[a];
  if (start < 0) start += size;
  if (!Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length < 0 || start + length > size)
    throw new KilnError('INDEX_OUT_OF_RANGE', `narrow: [${start}, ${start + length}) is outside dimension ${a} of ${shapeStr(x.shape)}`);
  const shape = x.shape.slice();
  shape[a] = length;
  const out = view(x, shape, x.strides.slice(), x.offset + start * x.strides[a]);
  return record(out, 'narrow', [x], (g) => {
    const gx = zeros(x.shape.slice(), { dtype: g.dtype, device: g.device });
    const dst = view(gx, shape, gx.strides.slice(), start * gx.strides[a]);
    stridedCopy(dst, g);
    dst.dispose();
    return [gx];
  });
}

/** Python-style slice along an axis: [start, end) with negative indices counted from the end. */
export function slice(x: Tensor, axis: number, start = 0, end?: number): Tensor {
  checkTensor('slice', x);
  const a = normAxis('slice', axis, x.ndim);
  const n = x.shape[a];
  const s = Math.min(Math.max(start < 0 ? start + n : start, 0), n);
  const e = Math.min(Math.max(end === undefined ? n : end < 0 ? end + n : end, s), n);
  return narrow(x, a, s, e - s);
}

export function squeeze(x: Tensor, axis?: number): Tensor {
  checkTensor('squeeze', x);
  if (axis === undefined) return reshape(x, x.shape.filter((d) => d !== 1));
  const a = normAxis('squeeze', axis, x.ndim);
  // A dimension that is not 1 stays: still a new view, so that disposing it leaves x alone.
  if (x.shape[a] !== 1) return reshape(x, x.shape.slice());
  return reshape(x, x.shape.filter((_, i) => i !== a));
}

export function unsqueeze(x: Tensor, axis: number): Tensor {
  checkTensor('unsqueeze', x);
  const a = normAxis('unsqueeze', axis, x.ndim + 1);
  const shape = x.shape.slice();
  shape.splice(a, 0, 1);
  return reshape(x, shape);
}

export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  checkTensor('flatten', x);
  if (x.ndim === 0) return reshape(x, [1]);
  const s = normAxis('flatten', startDim, x.ndim), e = normAxis('flatten', endDim, x.ndim);
  if (s > e) throw new KilnError('INVALID_ARGUMENT', `flatten: startDim ${startDim} comes after endDim ${endDim} for ${shapeStr(x.shape)}`);
  const shape = [...x.shape.slice(0, s), numel(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)];
  return reshape(x, shape);
}

export function contiguous(x: Tensor): Tensor {
  checkTensor('contiguous', x);
  if (x.isContiguous()) return x;
  const out = contig(x);
  return record(out, 'contiguous', [x], (g) => [g]);
}

export function clone(x: Tensor): Tensor {
  checkTensor('clone', x);
  const out = empty(x.shape.slice(), x.dtype, x.device);
  stridedCopy(out, x);
  return record(out, 'clone', [x], (g) => [g]);
}

/** Shares storage, cut from the graph. */
export function detach(x: Tensor): Tensor {
  checkTensor('detach', x);
  return view(x, x.shape.slice(), x.strides.slice(), x.offset);
}

/**
 * Joins tensors along an existing axis. Mixed dtypes promote as torch.cat (int32 with float32 gives
 * float32, bfloat16 with float32 float32); each input's gradient comes back in its own dtype.
 */
export function concat(tensors: Tensor[], axis = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) throw new KilnError('INVALID_ARGUMENT', 'concat: needs at least one tensor');
  for (const t of tensors)
    if (t instanceof Tensor && t.ndim === 0) throw new KilnError('INVALID_ARGUMENT', 'concat: 0-d tensors cannot be concatenated (unsqueeze them, or use stack)');
  // An index loop, not forEach: a hole in a sparse array is checked too.
  for (let i = 0; i < tensors.length; i++) checkTensor('concat', tensors[i], `tensor ${i}`);
  const first = tensors[0];
  const a = normAxis('concat', axis, first.ndim);
  let total = 0;
  for (const t of tensors) {
    sameDevice('concat', first, t);
    if (t.ndim !== first.ndim || t.shape.some((d, i) => i !== a && d !== first.shape[i]))
      throw new KilnError('SHAPE_MISMATCH', `concat: ${shapeStr(first.shape)} and ${shapeStr(t.shape)} differ outside axis ${a}`);
    total += t.shape[a];
  }
  const shape = first.shape.slice();
  shape[a] = total;
  const out = empty(shape, resultType(...tensors), first.device);
  let off = 0;
  const starts: number[] = [];
  for (const t of tensors) {
    starts.push(off);
    const s = shape.slice();
    s[a] = t.shape[a];
    const dst = view(out, s, out.strides.slice(), off * out.strides[a]);
    stridedCopy(dst, t);  // converts to out's dtype
    dst.dispose();
    off += t.shape[a];
  }
  return record(out, 'concat', tensors, (g) => tensors.map((t, i) => {
    if (!t.requiresGrad) return null;
    const part = narrow(g, a, starts[i], t.shape[a]);
    const gi = part.dtype === t.dtype ? contig(part) : cast(part, t.dtype);
    if (gi !== part) part.dispose();
    return gi;
  }));
}

/** Joins tensors along a new axis; mixed dtypes promote as in concat. */
export function stack(tensors: Tensor[], axis = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) throw new KilnError('INVALID_ARGUMENT', 'stack: needs at least one tensor');
  for (let i = 0; i < tensors.length; i++) checkTensor('stack', tensors[i], `tensor ${i}`);
  const a = normAxis('stack', axis, tensors[0].ndim + 1);
  for (let i = 1; i < tensors.length; i++)
    if (!sameShape(tensors[i].shape, tensors[0].shape))
      throw new KilnError('SHAPE_MISMATCH', `stack: tensor ${i} is ${shapeStr(tensors[i].shape)}, tensor 0 ${shapeStr(tensors[0].shape)}: stack needs equal shapes`);
  const parts: Tensor[] = [];
  let out: Tensor | null = null;
  try {
    for (const t of tensors) parts.push(unsqueeze(t, a));
    return (out = concat(parts, a));
  } finally {
    // The unsqueezed views are inputs of the graph when one is recorded; otherwise nothing needs them.
    if (!out?._node) for (const p of parts) p.dispose();
  }
}

/** Splits along `axis` into chunks of `size` (the last may be smaller) or of the given sizes. */
export function split(x: Tensor, sizes: number | number[], axis = 0): Tensor[] {
  checkTensor('split', x);
  if (x.ndim === 0) throw new KilnError('INVALID_ARGUMENT', 'split: a 0-d tensor has no dimension to split');
  if (typeof sizes !== 'number' && !Array.isArray(sizes))
    throw new KilnError('INVALID_ARGUMENT', `split: sizes must be a number or an array of numbers, got ${sizes === null ? 'null' : typeof sizes} for ${shapeStr(x.shape)}`);
  const a = normAxis('split', axis, x.ndim);
  const n = x.shape[a];
  let parts: number[];
  if (typeof sizes === 'number') {
    if (!Number.isInteger(sizes) || sizes <= 0) throw new KilnError('INVALID_ARGUMENT', `split: size must be a positive integer`);
    parts = [];
    for (let s = 0; s < n; s += sizes) parts.push(Math.min(sizes, n - s));
  } else {
    parts = sizes;
    if (parts.reduce((p, q) => p + q, 0) !== n)
      throw new KilnError('SHAPE_MISMATCH', `split: sizes [${parts}] do not add up to ${n} (axis ${a} of ${shapeStr(x.shape)})`);
  }
  const out: Tensor[] = [];
  let off = 0;
  for (const p of parts) {
    out.push(narrow(x, a, off, p));
    off += p;
  }
  return out;
}
