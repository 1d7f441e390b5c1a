// Indexing and shape ops after PyTorch: gather, indexSelect, scatterAdd, sort / argsort, flip, roll,
// tril / triu, repeat, chunk, any / all. sort, gather, indexSelect and scatterAdd are one native call
// each (kernels/cpu/select.h: the gather kernels check the index range as they go; scatter-add sums in
// index order, so every index op has a deterministic gradient); flip, roll and repeat compose the
// embedding row gather / scatter-add; the rest are where, reductions and views.
import { KilnError, shapeStr } from '../errors.js';
import { A, N } from '../native.js';
import { isGradEnabled, record } from '../tensor/autograd.js';
import { isHalf, type DType } from '../tensor/dtype.js';
import { contiguousStrides, normAxes, normAxis } from '../tensor/shape.js';
import { Tensor, empty, stridedCopy, view } from '../tensor/tensor.js';
import { arange, fromTyped, zeros } from './creation.js';
import { add, eq, ge, gt, le, ne, sub, where } from './elementwise.js';
import { max, min, sum, type Axes } from './reduce.js';
import { reshape, split, narrow } from './views.js';
import { arg, cast, checkTensor, contig, needDType, prod, sameDevice } from './util.js';

const INT32_MAX = 2147483647;

// ---------------------------------------------------------------- row gather / scatter-add (flip, roll, repeat)

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
function rowScatterAdd(src: Tensor, idx: Tensor, D: number, outShape: number[]): Tensor {
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
  return narrowTo(out, src.dtype);
}

/** Positions are int32: a tensor with more elements than that cannot be indexed. */
function needIndexable(op: string, x: Tensor): void {
  if (x.size > INT32_MAX) throw new KilnError('INVALID_ARGUMENT', `${op}: input ${shapeStr(x.shape)} has more than 2^31 - 1 elements`);
}

/** INDEX_OUT_OF_RANGE for the element at row-major position `pos` of index, naming its value and position. */
function rangeError(op: string, index: Tensor, pos: number, n: number, what: string): KilnError {
  const ic = contig(index);
  const value = ic.dataSync()[pos];
  if (ic !== index) ic.dispose();
  const at: number[] = [];
  for (let i = index.ndim - 1, r = pos; i >= 0; i--) {
    at.unshift(r % index.shape[i]);
    r = Math.floor(r / index.shape[i]);
  }
  return new KilnError('INDEX_OUT_OF_RANGE', `${op}: index ${value} at position [${at.join(', ')}] of index ${shapeStr(index.shape)} is outside [0, ${n}) (${what})`);
}

/** Refuses an index outside [0, n) in its own pass (where no kernel call checks it). */
function checkRange(op: string, index: Tensor, n: number, what: string): void {
  if (index.size === 0) return;
  const ic = contig(index);
  let bad = 0;
  if (n > 0) {
    A[0] = ic.size;
    A[1] = 0;
    A[2] = n;
    A[3] = 0;  // `allowed` must not widen the range: 0 is inside it anyway
    bad = N.findInvalidIndex(arg(4, ic));
  }
  if (ic !== index) ic.dispose();
  if (bad >= 0) throw rangeError(op, index, bad, n, what);
}

function needIndex(op: string, x: Tensor, index: Tensor): void {
  checkTensor(op, x);
  checkTensor(op, index, 'index');
  sameDevice(op, x, index);
  needDType(op, index, 'int32', 'index');
  needIndexable(op, x);
}

// ---------------------------------------------------------------- the axis kernels

const orOne = (shape: number[]) => (shape.length ? shape : [1]);  // a 0-d operand is read as [1]
const stridesOf = (t: Tensor) => (t.ndim ? t.strides : [0]);

/**
 * One native gather (dense[p] = data[p with p[a] = index[p]]) or scatter-add (data[...] += dense[p])
 * over the positions p of `shape` (kernels/cpu/select.h). Each operand is read with its own strides
 * (0 broadcasts). Returns -1, or the first row-major position of shape whose index is outside [0, n).
 */
function axisCall(kernel: 'gather' | 'scatterAdd', a: number, n: number, shape: number[], data: Tensor, dataStrides: number[],
  index: Tensor, idxStrides: number[], dense: Tensor, denseStrides: number[]): number {
  A[0] = shape.length;
  A[1] = a;
  A[2] = n;
  for (let d = 0; d < shape.length; d++) {
    A[3 + d] = shape[d];
    A[11 + d] = dataStrides[d];
    A[19 + d] = idxStrides[d];
    A[27 + d] = denseStrides[d];
  }
  return N[kernel](arg(36, data), arg(39, index), arg(42, dense));
}

/** out (outShape, x's dtype) with out[p] = x[p with p[a] = index[p]] over the positions of shape. */
function gatherKernel(x: Tensor, a: number, index: Tensor, idxStrides: number[], shape: number[], outShape: number[]): { out: Tensor; bad: number } {
  const out = empty(outShape.slice(), x.dtype, x.device);
  if (out.size === 0) return { out, bad: -1 };
  const g = orOne(shape);
  const bad = axisCall('gather', a, x.ndim ? x.shape[a] : 1, g, x, stridesOf(x), index, orOne(idxStrides).map((v) => (idxStrides.length ? v : 0)),
    out, contiguousStrides(g));
  return { out, bad };
}

/**
 * The adjoint of gatherKernel: zeros of xShape with g[p] added at x's position for p (g has shape's
 * elements), summed in index order (deterministic), in g's dtype.
 */
function gatherGrad(g: Tensor, xShape: number[], a: number, index: Tensor, idxStrides: number[], shape: number[]): Tensor {
  const wide = wideOf(g.dtype);
  const out = zeros(xShape.slice(), { dtype: wide, device: g.device });
  if (out.size > 0 && prod(shape) > 0) {
    const gs = g.dtype === wide ? g : cast(g, wide);
    scatterKernel(out, a, index, idxStrides, shape, gs);
    if (gs !== g) gs.dispose();
  }
  return narrowTo(out, g.dtype);
}

/** out (contiguous float32 / float64, changed in place) with out[p with p[a] = index[p]] += src[p]. */
function scatterKernel(out: Tensor, a: number, index: Tensor, idxStrides: number[], shape: number[], src: Tensor): number {
  return axisCall('scatterAdd', a, out.ndim ? out.shape[a] : 1, orOne(shape), out, stridesOf(out), index,
    idxStrides.length ? idxStrides : [0], src, stridesOf(src));
}

/** The graph's own copy of an index (the caller may dispose theirs before backward), when a graph is recorded. */
function savedIndex(index: Tensor, ...inputs: Tensor[]): Tensor | null {
  return isGradEnabled() && inputs.some((t) => t.requiresGrad) ? cast(index, 'int32') : null;
}

// ---------------------------------------------------------------- gather, scatterAdd

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
 * One kernel call, which also checks the range.
 */
export function gather(x: Tensor, dim: number, index: Tensor): Tensor {
  needIndex('gather', x, index);
  const a = normAxis('gather', dim, x.ndim);
  checkIndexShape('gather', x, a, index);
  const { out, bad } = gatherKernel(x, a, index, index.strides, index.shape, index.shape);
  if (bad >= 0) {
    out.dispose();
    throw rangeError('gather', index, bad, x.ndim ? x.shape[a] : 1, `dimension ${a} of input ${shapeStr(x.shape)}`);
  }
  const saved = savedIndex(index, x);
  if (!saved) return out;
  return record(out, 'gather', [x], (g) => [gatherGrad(g, x.shape, a, saved, saved.strides, saved.shape)]);
}

/**
 * torch.scatter_add, out of place: a copy of x with out[index[i][j]][j] += src[i][j] (dim 0) for every
 * position of index (src may be larger; its extra elements are unused). Sums run in index order onto
 * x's value, in float32 for the half dtypes (rounded once) and exactly for int32, where a result outside
 * int32 is refused (PyTorch wraps). Gradients: x gets the output's, src the output's gathered at index.
 */
export function scatterAdd(x: Tensor, dim: number, index: Tensor, src: Tensor): Tensor {
  needIndex('scatterAdd', x, index);
  checkTensor('scatterAdd', src, 'src');
  sameDevice('scatterAdd', x, src);
  if (src.dtype !== x.dtype)
    throw new KilnError('DTYPE_MISMATCH', `scatterAdd: src ${src.dtype} ${shapeStr(src.shape)} for input ${x.dtype} ${shapeStr(x.shape)} (the same dtype is needed)`);
  const a = normAxis('scatterAdd', dim, x.ndim);
  checkIndexShape('scatterAdd', x, a, index, src);
  const wide = wideOf(x.dtype);
  const sum = cast(x, wide);  // the kernel adds into this contiguous copy
  if (index.size > 0) {
    const s = src.dtype === wide ? src : cast(src, wide);
    const bad = scatterKernel(sum, a, index, index.strides, index.shape, s);
    if (s !== src) s.dispose();
    if (bad >= 0) {
      sum.dispose();
      throw rangeError('scatterAdd', index, bad, x.ndim ? x.shape[a] : 1, `dimension ${a} of input ${shapeStr(x.shape)}`);
    }
  }
  if (x.dtype === 'int32' && sum.size > 0) {
    const hi = max(sum), lo = min(sum), h = hi.item(), l = lo.item();
    hi.dispose();
    lo.dispose();
    if (h > INT32_MAX || l < -INT32_MAX - 1) {
      sum.dispose();
      throw new KilnError('INVALID_ARGUMENT', `scatterAdd: a sum of int32 input ${shapeStr(x.shape)} and src ${shapeStr(src.shape)} does not fit int32 (${h > INT32_MAX ? h : l}); cast to float64 first`);
    }
  }
  const out = narrowTo(sum, x.dtype);
  const saved = savedIndex(index, src);
  return record(out, 'scatterAdd', [x, src], (g) => {
    if (!saved) return [g, null];
    const picked = gatherKernel(g, a, saved, saved.strides, saved.shape, saved.shape).out;
    if (picked.size === src.size) return [g, picked];
    const gs = zeros(src.shape.slice(), { dtype: g.dtype, device: g.device });
    const dst = view(gs, index.shape.slice(), gs.strides.slice(), 0);
    stridedCopy(dst, picked);
    dst.dispose();
    picked.dispose();
    return [g, gs];
  });
}

// ---------------------------------------------------------------- re-indexing whole axes

/**
 * out (of outShape, the rank of xs) with out[.., j, ..] = x[.., map[j], ..] along each axis d that has
 * a map (host positions, in range); x is read as a contiguous xs. One
 * row gather of the trailing unmapped block; the gradient scatter-adds (repeats sum).
 */
function remapAxes(op: string, x: Tensor, xs: number[], maps: (number[] | null)[], outShape: number[], finalShape = outShape): Tensor {
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
    const scaled = m ? fromTyped(Int32Array.from(m, (v) => v * rs[d]), [m.length], { device: x.device })
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
 * `dim`, in order, repeats allowed. One gather with the index broadcast over the other dims; the
 * gradient accumulates over repeated positions.
 */
export function indexSelect(x: Tensor, dim: number, index: Tensor): Tensor {
  needIndex('indexSelect', x, index);
  const a = normAxis('indexSelect', dim, x.ndim);
  if (index.ndim > 1) throw new KilnError('SHAPE_MISMATCH', `indexSelect: index must be 1-D, got ${shapeStr(index.shape)} for input ${shapeStr(x.shape)}`);
  const xs = orOne(x.shape);
  if (x.ndim === 0 && index.size !== 1)
    throw new KilnError('SHAPE_MISMATCH', `indexSelect: a 0-d input takes one index, got ${shapeStr(index.shape)}`);
  const what = `dimension ${a} of input ${shapeStr(x.shape)}`;
  const shape = xs.slice();
  shape[a] = index.size;
  const outShape = x.ndim ? shape : [];
  const idxStrides = (t: Tensor) => xs.map((_, d) => (d === a && t.ndim ? t.strides[0] : 0));
  if (prod(shape) === 0) checkRange('indexSelect', index, xs[a], what);  // no kernel call to check it
  const { out, bad } = gatherKernel(x, a, index, idxStrides(index), shape, outShape);
  if (bad >= 0) {
    out.dispose();
    throw rangeError('indexSelect', index, Math.floor(bad / prod(shape.slice(a + 1))) % index.size, xs[a], what);
  }
  const saved = savedIndex(index, x);
  if (!saved) return out;
  return record(out, 'indexSelect', [x], (g) => [gatherGrad(g, x.shape, a, saved, idxStrides(saved), shape)]);
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
  const { values, indices } = sortAlong('sort', x, a, descending);
  const saved = savedIndex(indices, x);
  if (saved) record(values, 'sort', [x], (g) => [gatherGrad(g, x.shape, a, saved, saved.strides, saved.shape)]);
  return { values, indices };
}

/** The int32 positions that sort x along `dim` (as sort's indices). */
export function argsort(x: Tensor, dim = -1, descending = false): Tensor {
  checkTensor('argsort', x);
  const { values, indices } = sortAlong('argsort', x, normAxis('argsort', dim, x.ndim), descending);
  values.dispose();
  return indices;
}

/** x sorted along a (no graph): the native row sort on a contiguous [rows, n] float32 / float64 copy with a last. */
function sortAlong(op: string, x: Tensor, a: number, descending: boolean): { values: Tensor; indices: Tensor } {
  if (typeof descending !== 'boolean') throw new KilnError('INVALID_ARGUMENT', `${op}: descending must be a boolean, got ${typeof descending}`);
  needIndexable(op, x);
  const last = x.ndim === 0 || a === x.ndim - 1;
  const perm = [...Array(x.ndim).keys()];
  if (!last) [perm[a], perm[x.ndim - 1]] = [perm[x.ndim - 1], perm[a]];
  const moved = last ? x : view(x, perm.map((d) => x.shape[d]), perm.map((d) => x.strides[d]), x.offset);
  const work: DType = x.dtype === 'float64' || x.dtype === 'int32' ? 'float64' : 'float32';  // int32 is exact in float64
  const src = moved.dtype === work && moved.isContiguous() ? moved : cast(moved, work);
  const n = x.ndim ? x.shape[a] : 1;
  let values = empty(src.shape.slice(), work, x.device), indices = empty(src.shape.slice(), 'int32', x.device);
  if (src.size > 0) {
    A[0] = descending ? 1 : 0;
    A[1] = src.size / n;
    A[2] = n;
    N.sort(arg(4, src), arg(7, values), arg(10, indices));
  }
  if (src !== moved) src.dispose();
  if (moved !== x) moved.dispose();
  values = narrowTo(values, x.dtype);
  if (!last) {
    const back = (t: Tensor) => {
      const v = view(t, perm.map((d) => t.shape[d]), perm.map((d) => t.strides[d]), t.offset);
      const c = cast(v, t.dtype);
      v.dispose();
      t.dispose();
      return c;
    };
    values = back(values);
    indices = back(indices);
  }
  return { values, indices };
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
