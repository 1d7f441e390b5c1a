// Indexing and shape ops after PyTorch: gather, indexSelect, scatterAdd, sort / argsort, flip, roll,
// tril / triu, repeat, chunk, any / all. No kernels of their own: they compose the embedding row
// gather / scatter-add (which gives every index op a deterministic gradient), topk, where and views.
import { KilnError, shapeStr } from '../errors.js';
import { A, N } from '../native.js';
import { noGrad, record } from '../tensor/autograd.js';
import { isHalf, type DType } from '../tensor/dtype.js';
import { contiguousStrides, normAxes, normAxis } from '../tensor/shape.js';
import { Tensor, empty, stridedCopy, view } from '../tensor/tensor.js';
import { arange, fromTyped, zeros } from './creation.js';
import { add, eq, ge, gt, le, mul, ne, sub, where } from './elementwise.js';
import { topk } from './indexing.js';
import { max, min, sum, type Axes } from './reduce.js';
import { detach, reshape, split, narrow, transpose } from './views.js';
import { arg, cast, checkTensor, contig, needDType, prod, sameDevice } from './util.js';

const INT32_MAX = 2147483647;

// ---------------------------------------------------------------- row gather / scatter-add

// The embedding kernel moves rows of float32 / float64; int32 (into float64) and the half dtypes
// (into float32) go through an exact wider copy.
const wideOf = (d: DType): DType => (d === 'int32' ? 'float64' : isHalf(d) ? 'float32' : d);

function narrowTo(t: Tensor, dtype: DType): Tensor {
  if (t.dtype === dtype) return t;
  const out = cast(t, dtype);
  t.dispose();
  return out;
}

/** out[i, :] = src[idx[i], :] for src read as [V, D] rows (idx contiguous int32, already in range). */
function rowGather(src: Tensor, idx: Tensor, D: number, outShape: number[]): Tensor {
  const wide = wideOf(src.dtype);
  const out = empty(outShape, wide, src.device);
  if (idx.size * D > 0) {  // nothing to move: no kernel call (CUDA: no launch)
    const s = src.dtype === wide ? contig(src) : cast(src, wide);
    A[0] = idx.size;
    A[1] = s.size / D;
    A[2] = D;
    A[3] = 0;
    N.embedding(arg(4, s), arg(7, idx), arg(10, out));
    if (s !== src) s.dispose();
  }
  return narrowTo(out, src.dtype);
}

/** zeros of outShape (read as [V, D]) with out[idx[i], :] += src[i, :], summed in index order. */
function rowScatterAdd(src: Tensor, idx: Tensor, D: number, outShape: number[], keepWide = false): Tensor {
  const wide = wideOf(src.dtype);
  const V = prod(outShape) / Math.max(D, 1);
  let out: Tensor;
  if (idx.size * D === 0 || V === 0) out = zeros(outShape, { dtype: wide, device: src.device });
  else {
    const s = src.dtype === wide ? contig(src) : cast(src, wide);
    out = empty(outShape, wide, src.device);
    A[0] = idx.size;
    A[1] = V;
    A[2] = D;
    A[3] = 1;
    N.embedding(arg(4, s), arg(7, idx), arg(10, out));
    if (s !== src) s.dispose();
  }
  return keepWide ? out : narrowTo(out, src.dtype);
}

/** Positions are int32: a tensor with more elements than that cannot be indexed. */
function needIndexable(op: string, x: Tensor): void {
  if (x.size > INT32_MAX) throw new KilnError('INVALID_ARGUMENT', `${op}: input ${shapeStr(x.shape)} has more than 2^31 - 1 elements`);
}

/** Refuses an index outside [0, n), naming its value and its position in the index tensor. */
function checkRange(op: string, index: Tensor, n: number, what: string): void {
  if (index.size === 0) return;
  const ic = contig(index);
  let bad: number;
  if (n <= 0) bad = 0;
  else {
    A[0] = ic.size;
    A[1] = 0;
    A[2] = n;
    A[3] = 0;  // `allowed` must not widen the range: 0 is inside it anyway
    bad = N.findInvalidIndex(arg(4, ic));
  }
  const value = bad >= 0 ? ic.dataSync()[bad] : 0;
  if (ic !== index) ic.dispose();
  if (bad < 0) return;
  const pos: number[] = [];
  for (let i = index.ndim - 1, r = bad; i >= 0; i--) {
    pos.unshift(r % index.shape[i]);
    r = Math.floor(r / index.shape[i]);
  }
  throw new KilnError('INDEX_OUT_OF_RANGE', `${op}: index ${value} at position [${pos.join(', ')}] of index ${shapeStr(index.shape)} is outside [0, ${n}) (${what})`);
}

function needIndex(op: string, x: Tensor, index: Tensor): void {
  checkTensor(op, x);
  checkTensor(op, index, 'index');
  sameDevice(op, x, index);
  needDType(op, index, 'int32', 'index');
  needIndexable(op, x);
}

// ---------------------------------------------------------------- gather, scatterAdd

/** For each element of index (its shape): index * stride[dim] + its position along the other dims. */
function flatPositions(shape: number[], dim: number, index: Tensor): Tensor {
  if (index.size === 0) return empty(index.shape.slice(), 'int32', index.device);
  const strides = contiguousStrides(shape);
  let flat = mul(index, strides[dim]);
  for (let d = 0; d < index.ndim; d++) {
    const n = index.shape[d];
    if (d === dim || n <= 1) continue;
    const r = arange(0, n * strides[d], strides[d], { device: index.device });
    const rv = r.reshape(index.shape.map((s, i) => (i === d ? n : 1)));
    const next = add(flat, rv);
    for (const t of [flat, r, rv]) t.dispose();
    flat = next;
  }
  return flat;
}

/** Shape rules shared by gather and scatterAdd: same rank; index no larger than x off `dim`. */
function checkIndexShape(op: string, x: Tensor, a: number, index: Tensor, src?: Tensor): void {
  const tail = src ? ` and src ${shapeStr(src.shape)}` : '';
  if (index.ndim !== x.ndim || (src && src.ndim !== x.ndim))
    throw new KilnError('SHAPE_MISMATCH', `${op}: input ${shapeStr(x.shape)}, index ${shapeStr(index.shape)}${tail} must have the same number of dimensions`);
  for (let d = 0; d < x.ndim; d++) {
    if (d !== a && index.shape[d] > x.shape[d])
      throw new KilnError('SHAPE_MISMATCH', `${op}: index ${shapeStr(index.shape)} is larger than input ${shapeStr(x.shape)} in dimension ${d} (only dimension ${a} may differ)`);
    if (src && index.shape[d] > src.shape[d])
      throw new KilnError('SHAPE_MISMATCH', `${op}: index ${shapeStr(index.shape)} is larger than src ${shapeStr(src.shape)} in dimension ${d}`);
  }
}

/**
 * torch.gather: out[i][j][k] = x[index[i][j][k]][j][k] for dim 0 (likewise for other dims). index is
 * int32 of x's rank, no larger than x outside `dim`; out has index's shape. The gradient scatter-adds.
 */
export function gather(x: Tensor, dim: number, index: Tensor): Tensor {
  needIndex('gather', x, index);
  const a = normAxis('gather', dim, x.ndim);
  checkIndexShape('gather', x, a, index);
  checkRange('gather', index, x.ndim ? x.shape[a] : 1, `dimension ${a} of input ${shapeStr(x.shape)}`);
  return gatherUnchecked(x, a, index);
}

function gatherUnchecked(x: Tensor, a: number, index: Tensor): Tensor {
  const xs = x.ndim ? x.shape : [1];
  const flat = flatPositions(xs, a, index);
  const out = rowGather(x, flat, 1, index.shape.slice());
  record(out, 'gather', [x], (g) => [rowScatterAdd(g, flat, 1, x.shape.slice())]);
  if (!out._node) flat.dispose();
  return out;
}

/**
 * torch.scatter_add, out of place: a copy of x with out[index[i][j]][j] += src[i][j] (dim 0) for every
 * position of index (src may be larger; its extra elements are unused). Sums run in index order in
 * float32 for the half dtypes (rounded once) and exactly for int32, where a result outside int32 is
 * refused (PyTorch wraps). Gradients: x gets the output's, src the output's gathered at index.
 */
export function scatterAdd(x: Tensor, dim: number, index: Tensor, src: Tensor): Tensor {
  needIndex('scatterAdd', x, index);
  checkTensor('scatterAdd', src, 'src');
  sameDevice('scatterAdd', x, src);
  if (src.dtype !== x.dtype)
    throw new KilnError('DTYPE_MISMATCH', `scatterAdd: src ${src.dtype} ${shapeStr(src.shape)} for input ${x.dtype} ${shapeStr(x.shape)} (the same dtype is needed)`);
  const a = normAxis('scatterAdd', dim, x.ndim);
  checkIndexShape('scatterAdd', x, a, index, src);
  checkRange('scatterAdd', index, x.ndim ? x.shape[a] : 1, `dimension ${a} of input ${shapeStr(x.shape)}`);
  const flat = flatPositions(x.ndim ? x.shape : [1], a, index);
  const part = index.shape.every((d, i) => d === src.shape[i]) ? src : view(src, index.shape.slice(), src.strides.slice(), src.offset);
  const added = rowScatterAdd(part, flat, 1, x.shape.slice(), true);
  if (part !== src) part.dispose();
  let out: Tensor;
  if (added.dtype === x.dtype) out = noGrad(() => add(x, added));
  else {
    const xw = cast(x, added.dtype);
    const wide = add(xw, added);
    xw.dispose();
    if (x.dtype === 'int32' && wide.size > 0) {
      const hi = max(wide), lo = min(wide), h = hi.item(), l = lo.item();
      hi.dispose();
      lo.dispose();
      if (h > INT32_MAX || l < -INT32_MAX - 1) {
        for (const t of [wide, added, flat]) t.dispose();
        throw new KilnError('INVALID_ARGUMENT', `scatterAdd: a sum of int32 input ${shapeStr(x.shape)} and src ${shapeStr(src.shape)} does not fit int32 (${h > INT32_MAX ? h : l}); cast to float64 first`);
      }
    }
    out = narrowTo(wide, x.dtype);
  }
  added.dispose();
  record(out, 'scatterAdd', [x, src], (g) => {
    if (!src.requiresGrad) return [g, null];
    const picked = rowGather(g, flat, 1, index.shape.slice());
    if (picked.size === src.size) return [g, picked];
    const gs = zeros(src.shape.slice(), { dtype: g.dtype, device: g.device });
    const dst = view(gs, index.shape.slice(), gs.strides.slice(), 0);
    stridedCopy(dst, picked);
    dst.dispose();
    return [g, gs];
  });
  if (!out._node) flat.dispose();
  return out;
}

// ---------------------------------------------------------------- re-indexing whole axes

/**
 * out (of outShape, the rank of xs) with out[.., j, ..] = x[.., map[j], ..] along each axis d that has
 * a map (host positions or a 1-D int32 tensor, already in range); x is read as a contiguous xs. One
 * row gather of the trailing unmapped block; the gradient scatter-adds (repeats sum).
 */
function remapAxes(op: string, x: Tensor, xs: number[], maps: (number[] | Tensor | null)[], outShape: number[], finalShape = outShape): Tensor {
  needIndexable(op, x);
  if (prod(outShape) === 0) {
    const out = empty(finalShape.slice(), x.dtype, x.device);
    return record(out, op, [x], (g) => [zeros(x.shape.slice(), { dtype: g.dtype, device: g.device })]);
  }
  let last = -1;
  maps.forEach((m, d) => { if (m) last = d; });
  const rows = outShape.slice(0, last + 1);
  const rs = contiguousStrides(xs.slice(0, last + 1));
  const D = prod(xs.slice(last + 1));
  let flat = zeros(rows, { dtype: 'int32', device: x.device });
  for (let d = 0; d <= last; d++) {
    const m = maps[d];
    if (xs[d] === 1) continue;  // a size-1 axis has only position 0
    // Positions along d (an unmapped axis keeps its own), scaled to rows of the flattened x.
    const scaled = m instanceof Tensor ? mul(m, rs[d]) : m ? fromTyped(Int32Array.from(m, (v) => v * rs[d]), [m.length], { device: x.device })
      : arange(0, xs[d] * rs[d], rs[d], { device: x.device });
    const sv = scaled.reshape(rows.map((s, i) => (i === d ? s : 1)));
    const next = add(flat, sv);
    for (const t of [flat, scaled, sv]) t.dispose();
    flat = next;
  }
  const out = rowGather(x, flat, D, finalShape.slice());
  record(out, op, [x], (g) => [rowScatterAdd(g, flat, D, x.shape.slice())]);
  if (!out._node) flat.dispose();
  return out;
}

/**
 * torch.index_select: the slices of x at the int32 positions `index` (1-D, or 0-d for one) along
 * `dim`, in order, repeats allowed. The gradient accumulates over repeated positions.
 */
export function indexSelect(x: Tensor, dim: number, index: Tensor): Tensor {
  needIndex('indexSelect', x, index);
  const a = normAxis('indexSelect', dim, x.ndim);
  if (index.ndim > 1) throw new KilnError('SHAPE_MISMATCH', `indexSelect: index must be 1-D, got ${shapeStr(index.shape)} for input ${shapeStr(x.shape)}`);
  const xs = x.ndim ? x.shape.slice() : [1];
  if (x.ndim === 0 && index.size !== 1)
    throw new KilnError('SHAPE_MISMATCH', `indexSelect: a 0-d input takes one index, got ${shapeStr(index.shape)}`);
  checkRange('indexSelect', index, xs[a], `dimension ${a} of input ${shapeStr(x.shape)}`);
  const maps: (Tensor | null)[] = xs.map(() => null);
  const idx = index.ndim === 1 ? index : index.reshape([1]);
  maps[a] = idx;
  const outShape = xs.slice();
  outShape[a] = idx.size;
  try {
    return remapAxes('indexSelect', x, xs, maps, outShape, x.ndim ? outShape : []);
  } finally {
    if (idx !== index) idx.dispose();
  }
}

function axisList(op: string, dims: number | number[], x: Tensor): number[] {
  if (typeof dims === 'number') dims = [dims];
  if (!Array.isArray(dims)) throw new KilnError('INVALID_ARGUMENT', `${op}: dims must be a number or an array, got ${dims === null ? 'null' : typeof dims} for ${shapeStr(x.shape)}`);
  return dims.map((d) => normAxis(op, d, x.ndim));
}

/** torch.flip: x reversed along each of `dims` (a copy). */
export function flip(x: Tensor, dims: number | number[]): Tensor {
  checkTensor('flip', x);
  const ds = axisList('flip', dims, x);
  if (new Set(ds).size !== ds.length) throw new KilnError('INVALID_ARGUMENT', `flip: dimension repeated in [${ds}] for ${shapeStr(x.shape)}`);
  const xs = x.shape.slice();
  const maps = xs.map((n, d) => (ds.includes(d) && x.ndim ? Array.from({ length: n }, (_, j) => n - 1 - j) : null));
  return remapAxes('flip', x, xs, maps, xs);
}

/**
 * torch.roll: out[(j + shift) mod n] = x[j] along each dim (shifts and dims pair up; a dim named
 * twice rolls twice). Without dims, x is rolled as if flattened, then keeps its shape.
 */
export function roll(x: Tensor, shifts: number | number[], dims?: number | number[]): Tensor {
  checkTensor('roll', x);
  const sh = typeof shifts === 'number' ? [shifts] : shifts;
  if (!Array.isArray(sh) || sh.some((s) => !Number.isInteger(s)))
    throw new KilnError('INVALID_ARGUMENT', `roll: shifts must be an integer or an array of integers, got ${String(shifts)} for ${shapeStr(x.shape)}`);
  if (dims === undefined) {
    if (sh.length !== 1) throw new KilnError('INVALID_ARGUMENT', `roll: ${sh.length} shifts without dims for ${shapeStr(x.shape)} (one shift rolls the flattened tensor)`);
    const flat = reshape(x, [x.size]);
    const rolled = roll(flat, sh[0], 0);
    const out = reshape(rolled, x.shape.slice());
    if (!out._node) { flat.dispose(); rolled.dispose(); }
    return out;
  }
  const ds = axisList('roll', dims, x);
  if (ds.length !== sh.length) throw new KilnError('INVALID_ARGUMENT', `roll: ${sh.length} shifts for ${ds.length} dims of ${shapeStr(x.shape)}`);
  const xs = x.shape.slice();
  const total = xs.map(() => 0);
  ds.forEach((d, i) => (total[d] += sh[i]));
  const maps = xs.map((n, d) => {
    if (!x.ndim || n === 0 || total[d] % n === 0) return null;
    const s = ((total[d] % n) + n) % n;
    return Array.from({ length: n }, (_, j) => (j - s + n) % n);
  });
  return remapAxes('roll', x, xs, maps, xs);
}

/**
 * torch.Tensor.repeat: x tiled reps[i] times along each dim; reps may be longer than x's rank (x gains
 * leading dims of 1). Always a copy; the gradient sums the tiles.
 */
export function repeat(x: Tensor, reps: number[]): Tensor {
  checkTensor('repeat', x);
  if (!Array.isArray(reps) || reps.some((r) => !Number.isInteger(r) || r < 0))
    throw new KilnError('INVALID_ARGUMENT', `repeat: reps must be an array of non-negative integers, got ${String(reps)} for ${shapeStr(x.shape)}`);
  if (reps.length < x.ndim)
    throw new KilnError('INVALID_ARGUMENT', `repeat: ${reps.length} repeats for ${shapeStr(x.shape)} (at least one per dimension)`);
  if (reps.length > 8) throw new KilnError('INVALID_ARGUMENT', `repeat: at most 8 dimensions are supported, got ${reps.length} repeats`);
  const xs = [...Array<number>(reps.length - x.ndim).fill(1), ...x.shape];
  const outShape = xs.map((n, d) => n * reps[d]);
  const maps = xs.map((n, d) => (reps[d] === 1 ? null : Array.from({ length: n * reps[d] }, (_, j) => j % n)));
  return remapAxes('repeat', x, xs, maps, outShape);
}

// ---------------------------------------------------------------- sort

/**
 * Ascending (or descending) sort along `dim`, with the int32 positions each value came from. Stable:
 * equal values keep their order (in both directions, as torch.sort(stable=True)); NaN sorts as the
 * largest value (last ascending, first descending). The gradient of values scatters back.
 */
export function sort(x: Tensor, dim = -1, descending = false): { values: Tensor; indices: Tensor } {
  checkTensor('sort', x);
  const a = normAxis('sort', dim, x.ndim);
  const indices = sortIndices('sort', x, a, descending);
  return { values: gatherUnchecked(x, a, indices), indices };
}

/** The int32 positions that sort x along `dim` (as sort's indices). */
export function argsort(x: Tensor, dim = -1, descending = false): Tensor {
  checkTensor('argsort', x);
  return sortIndices('argsort', x, normAxis('argsort', dim, x.ndim), descending);
}

function sortIndices(op: string, x: Tensor, a: number, descending: boolean): Tensor {
  if (typeof descending !== 'boolean') throw new KilnError('INVALID_ARGUMENT', `${op}: descending must be a boolean, got ${typeof descending}`);
  needIndexable(op, x);
  // topk along the last axis with k = n: its order is total (ties by lower index, NaN largest).
  const made: Tensor[] = [detach(x)];
  if (x.ndim > 1 && a !== x.ndim - 1) made.push(transpose(made[0], a, -1));
  if (isHalf(x.dtype)) made.push(cast(made[made.length - 1], 'float32'));
  const src = made[made.length - 1];
  const { values, indices } = topk(src, x.ndim ? x.shape[a] : 1, descending);
  values.dispose();
  let out = indices;
  if (x.ndim > 1 && a !== x.ndim - 1) {
    const back = transpose(indices, a, -1);
    out = contig(back);  // back itself when its transposed strides are contiguous ([n, 1], say)
    if (out !== back) back.dispose();
    indices.dispose();
  }
  for (const t of made) t.dispose();
  return out;
}

// ---------------------------------------------------------------- tril, triu

function triangle(op: 'tril' | 'triu', x: Tensor, diagonal: number): Tensor {
  checkTensor(op, x);
  if (x.ndim < 2) throw new KilnError('INVALID_ARGUMENT', `${op}: needs at least 2 dimensions, got ${shapeStr(x.shape)}`);
  if (!Number.isInteger(diagonal)) throw new KilnError('INVALID_ARGUMENT', `${op}: diagonal must be an integer, got ${diagonal} for ${shapeStr(x.shape)}`);
  const [R, C] = x.shape.slice(-2);
  const k = Math.max(-R - 1, Math.min(C + 1, diagonal));  // beyond the matrix it changes nothing; keeps it int32
  const r = arange(0, R, 1, { device: x.device }), rows = r.reshape([R, 1]);
  const cols = arange(0, C, 1, { device: x.device });
  const offset = sub(cols, rows);  // column - row: which diagonal each element is on
  const keep = op === 'tril' ? le(offset, k) : ge(offset, k);
  for (const t of [r, rows, cols, offset]) t.dispose();
  const out = where(keep, x, 0);
  if (!out._node) keep.dispose();  // where's backward reads it
  return out;
}

/** torch.tril: the elements on and below diagonal `diagonal` of the last two dims; the rest 0. */
export const tril = (x: Tensor, diagonal = 0) => triangle('tril', x, diagonal);
/** torch.triu: the elements on and above diagonal `diagonal` of the last two dims; the rest 0. */
export const triu = (x: Tensor, diagonal = 0) => triangle('triu', x, diagonal);

// ---------------------------------------------------------------- chunk, any, all

/**
 * torch.chunk: views of ceil(n / chunks) elements along `dim` (the last may be smaller, and fewer than
 * `chunks` may come back); a dimension of size 0 gives `chunks` empty views.
 */
export function chunk(x: Tensor, chunks: number, dim = 0): Tensor[] {
  checkTensor('chunk', x);
  if (!Number.isInteger(chunks) || chunks < 1) throw new KilnError('INVALID_ARGUMENT', `chunk: chunks must be a positive integer, got ${chunks} for ${shapeStr(x.shape)}`);
  if (x.ndim === 0) throw new KilnError('INVALID_ARGUMENT', 'chunk: a 0-d tensor has no dimension to chunk');
  const a = normAxis('chunk', dim, x.ndim);
  const n = x.shape[a];
  if (n === 0) return Array.from({ length: chunks }, () => narrow(x, a, 0, 0));
  return split(x, Math.ceil(n / chunks), a);
}

function truth(op: 'any' | 'all', x: Tensor, dim: Axes, keepdim: boolean): Tensor {
  checkTensor(op, x);
  const axes = normAxes(op, dim, x.ndim);
  // any: some element is nonzero; all: no element is zero (NaN counts as true, as in PyTorch).
  const hits = op === 'any' ? ne(x, 0) : eq(x, 0);
  const count = sum(hits, axes, keepdim);
  const out = op === 'any' ? gt(count, 0) : eq(count, 0);
  hits.dispose();
  count.dispose();
  return out;
}

/** Whether any element (along `dim` when given) is nonzero: int32 0 / 1, as kiln's comparisons. */
export const any = (x: Tensor, dim?: Axes, keepdim = false) => truth('any', x, dim, keepdim);
/** Whether every element (along `dim` when given) is nonzero: int32 0 / 1, as kiln's comparisons. */
export const all = (x: Tensor, dim?: Axes, keepdim = false) => truth('all', x, dim, keepdim);
