// topk, cumsum, oneHot, and the row-wise scatter they need for gradients.
import { KilnError, shapeStr } from '../errors.js';
import { A, N } from '../native.js';
import { record } from '../tensor/autograd.js';
import { isHalf } from '../tensor/dtype.js';
import { normAxis } from '../tensor/shape.js';
import { Tensor, empty } from '../tensor/tensor.js';
import { arange, zeros } from './creation.js';
import { add, eq, mul } from './elementwise.js';
import { int32Overflow } from './reduce.js';
import { arg, cast, checkTensor, contig, needDType, prod } from './util.js';

/**
 * Inclusive cumulative sum along `axis` (from the end when `reverse`). int32 stays int32 and is
 * exact: a partial sum that does not fit int32 is refused (PyTorch gives int64; kiln has none).
 */
export function cumsum(x: Tensor, axis: number, reverse = false): Tensor {
  checkTensor('cumsum', x);
  const a = normAxis('cumsum', axis, x.ndim);
  const src = contig(x);
  const out = empty(x.shape.slice(), x.dtype, x.device);
  A[0] = reverse ? 1 : 0;
  A[1] = prod(x.shape.slice(0, a));
  A[2] = x.ndim ? x.shape[a] : 1;
  A[3] = prod(x.shape.slice(a + 1));
  const overflowAt = N.cumsum(arg(4, src), arg(7, out));
  if (src !== x) src.dispose();
  if (overflowAt >= 0) {
    out.dispose();
    throw int32Overflow('cumsum', x.shape, `along axis ${a}`, x.shape, overflowAt);
  }
  return record(out, 'cumsum', [x], (g) => [cumsum(g, a, !reverse)]);
}

/**
 * The k largest (or smallest) entries along the last axis, sorted, with their int32 indices. As
 * torch.topk: 0 <= k <= the axis size, k = 0 or an input with no rows gives empty results, and a 0-d
 * input is its own top-1 (for k = 0 too, as PyTorch returns it).
 */
export function topk(x: Tensor, k: number, largest = true): { values: Tensor; indices: Tensor } {
  checkTensor('topk', x);
  if (isHalf(x.dtype)) throw new KilnError('DTYPE_MISMATCH', `topk: needs float32, float64 or int32, got ${x.dtype} ${shapeStr(x.shape)}`);
  if (x.ndim === 0) {
    if (k !== 0 && k !== 1) throw new KilnError('INVALID_ARGUMENT', `topk: k = ${k} for a 0-d tensor (0 or 1)`);
    const row = x.reshape([1]);
    const r = topk(row, 1, largest);
    const out = { values: r.values.reshape([]), indices: r.indices.reshape([]) };
    // The [1]-shaped pieces are in the graph (the backward reads the indices) when one is recorded.
    if (!out.values._node) for (const t of [row, r.values, r.indices]) t.dispose();
    return out;
  }
  const n = x.shape[x.ndim - 1];
  if (!Number.isInteger(k) || k < 0 || k > n) throw new KilnError('INVALID_ARGUMENT', `topk: k = ${k} for a last dimension of ${n}`);
  const rows = prod(x.shape.slice(0, -1));
  const shape = [...x.shape.slice(0, -1), k];
  if (rows === 0 || k === 0) {  // nothing to select: no kernel call (CUDA: no launch)
    const values = empty(shape, x.dtype, x.device), indices = empty(shape, 'int32', x.device);
    record(values, 'topk', [x], (g) => [zeros(x.shape.slice(), { dtype: g.dtype, device: g.device })]);
    return { values, indices };
  }
  const src = x.dtype === 'int32' ? cast(x, 'float64') : contig(x);
  const vals = empty(shape, src.dtype, x.device);
  const idx = empty(shape, 'int32', x.device);
  A[0] = largest ? 1 : 0;
  A[1] = rows;
  A[2] = n;
  A[3] = k;
  N.topk(arg(4, src), arg(7, vals), arg(10, idx));
  if (src !== x) src.dispose();
  const values = x.dtype === 'int32' ? cast(vals, 'int32') : vals;
  if (values !== vals) vals.dispose();
  record(values, 'topk', [x], (g) => [scatterRows(g, idx, rows, n)]);
  return { values, indices: idx };
}

/** out[r, idx[r, j]] += g[r, j] for rows r of a [rows, n] result (deterministic). */
function scatterRows(g: Tensor, idx: Tensor, rows: number, n: number): Tensor {
  const k = idx.shape[idx.ndim - 1];
  const base = mul(arange(0, rows, 1, { device: idx.device }).reshape([rows, 1]), n);
  const flat = contig(add(idx.reshape([rows, k]), base));
  const gc = contig(g);
  const out = empty([rows * n, 1], g.dtype, g.device);
  A[0] = rows * k;
  A[1] = rows * n;
  A[2] = 1;
  A[3] = 1;
  N.embedding(arg(4, gc), arg(7, flat), arg(10, out));
  return out.reshape([...g.shape.slice(0, -1), n]);
}

/** One-hot float32 encoding of int32 indices [...] -> [..., numClasses]. */
export function oneHot(indices: Tensor, numClasses: number): Tensor {
  checkTensor('oneHot', indices, 'indices');
  needDType('oneHot', indices, 'int32', 'indices');
  if (!Number.isInteger(numClasses) || numClasses < 1)
    throw new KilnError('INVALID_ARGUMENT', `oneHot: numClasses must be a positive integer, got ${numClasses}`);
  A[0] = indices.size;
  A[1] = 0;
  A[2] = numClasses;
  A[3] = 0;  // "allowed": a value inside the range, so every index is checked
  const ic = contig(indices);
  const bad = N.findInvalidIndex(arg(4, ic));
  const badValue = bad >= 0 ? ic.dataSync()[bad] : 0;
  if (ic !== indices) ic.dispose();
  if (bad >= 0)
    throw new KilnError('INDEX_OUT_OF_RANGE', `oneHot: index ${badValue} at position ${bad} of ${shapeStr(indices.shape)} is outside [0, ${numClasses})`);
  const col = indices.unsqueeze(-1), classes = arange(0, numClasses, 1, { device: indices.device });
  const hit = eq(col, classes);
  col.dispose();
  classes.dispose();
  const out = cast(hit, 'float32');
  hit.dispose();
  return out;
}
