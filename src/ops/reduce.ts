// Reductions over any set of axes: adjacent axes go to the kernel as one [outer, r, inner] pass,
// scattered ones are first permuted to the end.
import { KilnError, shapeStr } from '../errors.js';
import { A, N } from '../native.js';
import { record } from '../tensor/autograd.js';
import { isHalf } from '../tensor/dtype.js';
import { Binary, Reduce } from '../tensor/opcodes.js';
import { normAxes, normAxis } from '../tensor/shape.js';
import { Tensor, empty } from '../tensor/tensor.js';
import { fillInPlace } from './creation.js';
import { binaryKernel, div, exp, mul, sub } from './elementwise.js';
import { arg, cast, checkTensor, contig, prod } from './util.js';

export type Axes = number | number[] | undefined;

function reduceKernel(op: Reduce, name: string, x: Tensor, axes: number[], keepdims: boolean): Tensor {
  if (isHalf(x.dtype)) {
    // float16 / bfloat16 accumulate in float32; the result is rounded back once.
    const wide = cast(x, 'float32');
    const r = reduceKernel(op, name, wide, axes, keepdims);
    wide.dispose();
    const out = cast(r, x.dtype);
    r.dispose();
    return out;
  }
  const nd = x.ndim;
  const outShapeKeep = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const outShape = keepdims ? outShapeKeep : x.shape.filter((_, i) => !axes.includes(i));
  if ((op === Reduce.Max || op === Reduce.Min) && axes.some((a) => x.shape[a] === 0))
    throw new KilnError('INVALID_ARGUMENT', `${name}: cannot reduce an empty dimension of ${shapeStr(x.shape)}`);
  let src = contig(x);
  let outer: number, r: number, inner: number;
  const adjacent = axes.length === 0 || axes[axes.length - 1] - axes[0] === axes.length - 1;
  if (adjacent) {
    const a0 = axes.length ? axes[0] : nd, a1 = axes.length ? axes[axes.length - 1] : nd - 1;
    outer = prod(x.shape.slice(0, a0));
    r = prod(x.shape.slice(a0, a1 + 1));
    inner = prod(x.shape.slice(a1 + 1));
  } else {
    const kept = [...Array(nd).keys()].filter((i) => !axes.includes(i));
    const perm = src.permute([...kept, ...axes]);
    const p = contig(perm);
    if (src !== x) src.dispose();
    if (perm !== p) perm.dispose();
    src = p;
    outer = prod(kept.map((i) => x.shape[i]));
    r = prod(axes.map((i) => x.shape[i]));
    inner = 1;
  }
  const out = empty(outShape, x.dtype, x.device);
  if (r === 0) {
    fillInPlace(out, op === Reduce.Prod ? 1 : op === Reduce.LogSumExp ? -Infinity : op === Reduce.Mean ? NaN : 0);
  } else {
    A[0] = op;
    A[1] = outer;
    A[2] = r;
    A[3] = inner;
    const overflowAt = N.reduce(arg(4, src), arg(7, out));
    if (overflowAt >= 0) {
      if (src !== x) src.dispose();
      out.dispose();
      throw int32Overflow(name, x.shape, `over axes [${axes.join(', ')}]`, outShape, overflowAt);
    }
  }
  if (src !== x) src.dispose();
  return out;
}

/**
 * An int32 sum (or cumsum) whose exact value does not fit int32: PyTorch returns int64, which kiln
 * does not have, so the op refuses rather than wrap. `at` is the flat index of the first such output.
 */
export function int32Overflow(name: string, shape: readonly number[], where: string, outShape: readonly number[], at: number): KilnError {
  const index: number[] = [];
  for (let i = outShape.length - 1, r = at; i >= 0; i--) {
    index.unshift(r % outShape[i]);
    r = Math.floor(r / outShape[i]);
  }
  return new KilnError('INVALID_ARGUMENT', `${name}: the sum of int32 ${shapeStr(shape)} ${where} does not fit int32 `
    + `(output [${index.join(', ')}] of ${shapeStr(outShape)}; PyTorch would give int64, which kiln does not have); cast to float64 first`);
}

/** g (reduced shape) broadcast back over x's shape, as a contiguous tensor. */
function expandBack(g: Tensor, x: Tensor, axes: number[]): Tensor {
  const keepShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const gk = g.reshape(keepShape);
  return contig(gk.expand(x.shape.slice()));
}

export function sum(x: Tensor, axis?: Axes, keepdims = false): Tensor {
  checkTensor('sum', x);
  const axes = normAxes('sum', axis, x.ndim);
  const out = reduceKernel(Reduce.Sum, 'sum', x, axes, keepdims);
  return record(out, 'sum', [x], (g) => [expandBack(g, x, axes)]);
}

export function mean(x: Tensor, axis?: Axes, keepdims = false): Tensor {
  checkTensor('mean', x);
  const axes = normAxes('mean', axis, x.ndim);
  if (x.dtype === 'int32') return int32Copy(x, (f) => mean(f, axes, keepdims));  // no gradient
  const out = reduceKernel(Reduce.Mean, 'mean', x, axes, keepdims);
  const count = prod(axes.map((a) => x.shape[a]));
  return record(out, 'mean', [x], (g) => [expandBack(mul(g, 1 / count), x, axes)]);
}

/** fn of a float64 copy of an int32 tensor (exact), rounded once to a float32 result; copies freed. */
function int32Copy(x: Tensor, fn: (f: Tensor) => Tensor): Tensor {
  const f = cast(x, 'float64');
  try {
    const r = fn(f);
    const out = cast(r, 'float32');
    r.dispose();
    return out;
  } finally {
    f.dispose();
  }
}

function extremum(op: Reduce.Max | Reduce.Min, name: string, x: Tensor, axis: Axes, keepdims: boolean): Tensor {
  checkTensor(name, x);
  const axes = normAxes(name, axis, x.ndim);
  const out = reduceKernel(op, name, x, axes, keepdims);
  return record(out, name, [x], (g) => {
    // Every position equal to the extremum shares the gradient evenly (like torch.amax).
    const keepShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const hit = cast(binaryKernel(Binary.Eq, name, x, out.reshape(keepShape), 'int32'), g.dtype);
    const count = reduceKernel(Reduce.Sum, name, hit, axes, true);
    return [mul(hit, div(g.reshape(keepShape), count))];
  });
}
export const max = (x: Tensor, axis?: Axes, keepdims = false) => extremum(Reduce.Max, 'max', x, axis, keepdims);
export const min = (x: Tensor, axis?: Axes, keepdims = false) => extremum(Reduce.Min, 'min', x, axis, keepdims);

export function logsumexp(x: Tensor, axis?: Axes, keepdims = false): Tensor {
  checkTensor('logsumexp', x);
  const axes = normAxes('logsumexp', axis, x.ndim);
  if (x.dtype === 'int32') return int32Copy(x, (f) => logsumexp(f, axes, keepdims));  // no gradient
  const out = reduceKernel(Reduce.LogSumExp, 'logsumexp', x, axes, keepdims);
  return record(out, 'logsumexp', [x], (g) => {
    const keepShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    return [mul(exp(sub(x, out.reshape(keepShape))), g.reshape(keepShape))];
  });
}

export function prodReduce(x: Tensor, axis?: Axes, keepdims = false): Tensor {
  checkTensor('prod', x);
  const axes = normAxes('prod', axis, x.ndim);
  return reduceKernel(Reduce.Prod, 'prod', x, axes, keepdims);
}

/** Index of the largest (or smallest) value along `axis` (int32); the whole tensor when omitted. */
export function argReduce(x: Tensor, isMax: boolean, axis?: number, keepdims = false): Tensor {
  const name = isMax ? 'argmax' : 'argmin';
  checkTensor(name, x);
  let src = x.dtype === 'int32' ? cast(x, 'float64') : isHalf(x.dtype) ? cast(x, 'float32') : contig(x);
  let ax: number;
  if (axis === undefined) {
    const flat = src.reshape([x.size]);
    if (src !== x) src.dispose();
    src = flat;
    ax = 0;
  } else if (x.ndim === 0) {  // a scalar along its only "axis": index 0, as in PyTorch
    if (src !== x) src.dispose();
    normAxis(name, axis, 0);
    return fillInPlace(empty([], 'int32', x.device), 0);
  } else ax = normAxis(name, axis, x.ndim);
  const shape = src.shape;
  if (shape[ax] === 0) throw new KilnError('INVALID_ARGUMENT', `${name}: empty dimension in ${shapeStr(x.shape)}`);
  const outShape = axis === undefined ? [] : keepdims ? shape.map((d, i) => (i === ax ? 1 : d)) : shape.filter((_, i) => i !== ax);
  const out = empty(outShape, 'int32', x.device);
  A[0] = isMax ? 1 : 0;
  A[1] = prod(shape.slice(0, ax));
  A[2] = shape[ax];
  A[3] = prod(shape.slice(ax + 1));
  N.argReduce(arg(4, src), arg(7, out));
  if (src !== x) src.dispose();
  return out;
}
export const argmax = (x: Tensor, axis?: number, keepdims = false) => argReduce(x, true, axis, keepdims);
export const argmin = (x: Tensor, axis?: number, keepdims = false) => argReduce(x, false, axis, keepdims);
