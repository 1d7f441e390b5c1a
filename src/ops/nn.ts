// Fused neural-network ops: softmax, log-softmax, layer norm, cross-entropy, embedding, dropout, mse.
import { KilnError, shapeStr } from '../errors.js';
import { A, N } from '../native.js';
import { isGradEnabled, record } from '../tensor/autograd.js';
import { broadcastShapes, normAxis, sameShape } from '../tensor/shape.js';
import { Tensor, empty } from '../tensor/tensor.js';
import { fillInPlace, rand } from './creation.js';
import { binaryKernel, mul, square, sub, toDType, where } from './elementwise.js';
import { mean, sum } from './reduce.js';
import { Binary } from '../tensor/opcodes.js';
import { arg, checkTensor, contig, needDType, needFloat, prod, sameDevice, cast } from './util.js';

function lastAxisKernel(kind: 0 | 1, x: Tensor): Tensor {
  const n = x.shape[x.ndim - 1];
  const src = contig(x);
  const out = empty(x.shape.slice(), x.dtype, x.device);
  A[0] = kind;
  A[1] = x.size / Math.max(n, 1);
  A[2] = n;
  N.softmax(arg(4, src), undefined, arg(10, out));
  if (src !== x) src.dispose();
  return out;
}

function softmaxBackwardKernel(kind: 2 | 3, y: Tensor, g: Tensor): Tensor {
  const n = y.shape[y.ndim - 1];
  const gc = contig(g);
  const out = empty(y.shape.slice(), y.dtype, y.device);
  A[0] = kind;
  A[1] = y.size / Math.max(n, 1);
  A[2] = n;
  N.softmax(arg(4, y), arg(7, gc), arg(10, out));
  if (gc !== g) gc.dispose();
  return out;
}

function alongLast(name: string, x: Tensor, axis: number, kind: 0 | 1): Tensor {
  checkTensor(name, x);
  if (x.dtype === 'int32') x = toDType(x, 'float32');
  if (x.ndim === 0) throw new KilnError('SHAPE_MISMATCH', `${name}: needs at least one dimension`);
  const a = normAxis(name, axis, x.ndim);
  if (a !== x.ndim - 1) return alongLast(name, x.transpose(a, -1), -1, kind).transpose(a, -1);
  const out = lastAxisKernel(kind, x);
  return record(out, name, [x], (g) => [softmaxBackwardKernel(kind === 0 ? 2 : 3, out, g)]);
}

export const softmax = (x: Tensor, axis = -1) => alongLast('softmax', x, axis, 0);
export const logSoftmax = (x: Tensor, axis = -1) => alongLast('logSoftmax', x, axis, 1);

/** Layer norm over the trailing dimensions `normalizedShape` (a number means the last one). */
export function layerNorm(x: Tensor, normalizedShape: number | number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  checkTensor('layerNorm', x);
  needFloat('layerNorm', x);
  const ns = typeof normalizedShape === 'number' ? [normalizedShape] : normalizedShape;
  if (!Array.isArray(ns)) throw new KilnError('INVALID_ARGUMENT', `layerNorm: normalizedShape must be a number or an array, got ${typeof normalizedShape} for ${shapeStr(x.shape)}`);
  const n = prod(ns);
  if (n === 0) throw new KilnError('SHAPE_MISMATCH', `layerNorm: normalized shape ${shapeStr(ns)} of ${shapeStr(x.shape)} has no elements to normalize`);
  const tail = x.shape.slice(x.ndim - ns.length);
  if (ns.length > x.ndim || tail.some((d, i) => d !== ns[i]))
    throw new KilnError('SHAPE_MISMATCH', `layerNorm: normalized shape ${shapeStr(ns)} does not end ${shapeStr(x.shape)}`);
  for (const [p, name] of [[weight, 'weight'], [bias, 'bias']] as const) {
    if (!p) continue;
    checkTensor('layerNorm', p, name);
    sameDevice('layerNorm', x, p);
    needDType('layerNorm', p, x.dtype, name);
    if (p.size !== n) throw new KilnError('SHAPE_MISMATCH', `layerNorm: ${name} ${shapeStr(p.shape)} for normalized shape ${shapeStr(ns)}`);
  }
  if (!(eps >= 0)) throw new KilnError('INVALID_ARGUMENT', `layerNorm: eps must be >= 0, got ${eps}`);
  const rows = x.size / n;
  const xc = contig(x);
  const w = weight ? contig(weight) : null, b = bias ? contig(bias) : null;
  const y = empty(x.shape.slice(), x.dtype, x.device);
  const meanT = empty([rows], x.dtype, x.device), rstd = empty([rows], x.dtype, x.device);
  A[0] = rows;
  A[1] = n;
  A[2] = eps;
  A[3] = w ? 1 : 0;
  A[4] = b ? 1 : 0;
  N.layerNormForward(arg(5, xc), w ? arg(8, w) : undefined, b ? arg(11, b) : undefined, arg(14, y), arg(17, meanT), arg(20, rstd));
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  if (!isGradEnabled() || !inputs.some((t) => t.requiresGrad)) {
    meanT.dispose();
    rstd.dispose();
    if (xc !== x) xc.dispose();
    return y;
  }
  return record(y, 'layerNorm', inputs, (g) => {
    const gc = contig(g);
    const dx = empty(x.shape.slice(), x.dtype, x.device);
    const dw = weight?.requiresGrad ? empty([n], x.dtype, x.device) : null;
    const db = bias?.requiresGrad ? empty([n], x.dtype, x.device) : null;
    A[0] = rows;
    A[1] = n;
    A[3] = w ? 1 : 0;
    A[4] = dw ? 1 : 0;
    A[5] = db ? 1 : 0;
    N.layerNormBackward(arg(6, xc), w ? arg(9, w) : undefined, arg(12, meanT), arg(15, rstd), arg(18, gc), arg(21, dx),
      dw ? arg(24, dw) : undefined, db ? arg(27, db) : undefined);
    if (gc !== g) gc.dispose();
    const out: (Tensor | null)[] = [dx];
    if (weight) out.push(dw ? dw.reshape(weight.shape.slice()) : null);
    if (bias) out.push(db ? db.reshape(bias.shape.slice()) : null);
    return out;
  });
}

export interface CrossEntropyOptions {
  ignoreIndex?: number;
  reduction?: 'mean' | 'sum' | 'none';
  labelSmoothing?: number;
}

/** Fused log-softmax + NLL over the last axis of logits [..., C] with int32 targets [...]. */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  opts ??= {};
  checkTensor('crossEntropy', logits, 'logits');
  checkTensor('crossEntropy', targets, 'targets');
  sameDevice('crossEntropy', logits, targets);
  needFloat('crossEntropy', logits, 'logits');
  needDType('crossEntropy', targets, 'int32', 'targets');
  const ignore = opts.ignoreIndex ?? -100;
  const reduction = opts.reduction ?? 'mean';
  const smoothing = opts.labelSmoothing ?? 0;
  if (!(smoothing >= 0 && smoothing <= 1)) throw new KilnError('INVALID_ARGUMENT', `crossEntropy: labelSmoothing must be in [0, 1]`);
  if (!['mean', 'sum', 'none'].includes(reduction)) throw new KilnError('INVALID_ARGUMENT', `crossEntropy: unknown reduction '${reduction}'`);
  if (logits.ndim < 1 || logits.ndim !== targets.ndim + 1 || targets.shape.some((d, i) => d !== logits.shape[i]))
    throw new KilnError('SHAPE_MISMATCH', `crossEntropy: logits ${shapeStr(logits.shape)} and targets ${shapeStr(targets.shape)} (want [..., C] and [...])`);
  const C = logits.shape[logits.ndim - 1];
  const Nr = targets.size;
  const lc = contig(logits), tc = contig(targets);
  const losses = empty(targets.shape.slice(), logits.dtype, logits.device);
  const lse = empty([Nr], logits.dtype, logits.device);
  A[0] = Nr;
  A[1] = C;
  A[2] = ignore;
  A[3] = smoothing;
  N.crossEntropyForward(arg(4, lc), arg(7, tc), arg(10, losses), arg(13, lse));
  let count = Nr;
  if (reduction === 'mean') {
    const valid = binaryKernel(Binary.Ne, 'crossEntropy', tc, fillInPlace(empty([], 'int32', tc.device), ignore), 'int32');
    count = sum(valid).item();
    valid.dispose();
  }
  let out: Tensor;
  if (reduction === 'none') out = losses;
  else {
    const s = sum(losses);
    out = reduction === 'mean' ? mul(s, 1 / count) : s;
    if (s !== out) s.dispose();
    losses.dispose();
  }
  return record(out, 'crossEntropy', [logits], (g) => {
    // Per-row upstream gradient: g / count (mean), g (sum) or g[i] (none).
    const dl = reduction === 'none' ? contig(g) : fillInPlace(empty([Nr], logits.dtype, logits.device), g.item() / (reduction === 'mean' ? count : 1));
    const dx = empty(logits.shape.slice(), logits.dtype, logits.device);
    A[0] = Nr;
    A[1] = C;
    A[2] = ignore;
    A[3] = smoothing;
    N.crossEntropyBackward(arg(4, lc), arg(7, tc), arg(10, lse), arg(13, dl), arg(16, dx));
    if (dl !== g) dl.dispose();
    return [dx];
  });
}

/** Rows of weight [V, D] picked by int32 indices [...] -> [..., D]. */
export function embedding(weight: Tensor, indices: Tensor): Tensor {
  checkTensor('embedding', weight, 'weight');
  checkTensor('embedding', indices, 'indices');
  sameDevice('embedding', weight, indices);
  needFloat('embedding', weight, 'weight');
  needDType('embedding', indices, 'int32', 'indices');
  if (weight.ndim !== 2) throw new KilnError('SHAPE_MISMATCH', `embedding: weight must be [V, D], got ${shapeStr(weight.shape)}`);
  const [V, D] = weight.shape;
  if (V === 0 && indices.size > 0)
    throw new KilnError('INDEX_OUT_OF_RANGE', `embedding: weight ${shapeStr(weight.shape)} has no rows to look up ${shapeStr(indices.shape)} indices in`);
  const w = contig(weight), idx = contig(indices);
  const out = empty([...indices.shape, D], weight.dtype, weight.device);
  A[0] = indices.size;
  A[1] = V;
  A[2] = D;
  A[3] = 0;
  N.embedding(arg(4, w), arg(7, idx), arg(10, out));
  if (w !== weight) w.dispose();
  return record(out, 'embedding', [weight], (g) => {
    const gc = contig(g);
    const dw = empty([V, D], weight.dtype, weight.device);
    A[0] = indices.size;
    A[1] = V;
    A[2] = D;
    A[3] = 1;
    N.embedding(arg(4, gc), arg(7, idx), arg(10, dw));
    if (gc !== g) gc.dispose();
    return [dw];
  });
}

/** Inverted dropout with a Philox mask: zeroes with probability p, scales the rest by 1/(1-p). */
export function dropout(x: Tensor, p = 0.5, training = true): Tensor {
  checkTensor('dropout', x);
  if (!(p >= 0 && p <= 1)) throw new KilnError('INVALID_ARGUMENT', `dropout: p must be in [0, 1], got ${p}`);
  if (!training || p === 0) return x;
  needFloat('dropout', x);
  const u = rand(x.shape.slice(), { dtype: x.dtype, device: x.device });
  const keepMask = binaryKernel(Binary.Ge, 'dropout', u, fillInPlace(empty([], x.dtype, x.device), p), 'int32');
  u.dispose();
  const scale = p === 1 ? 0 : 1 / (1 - p);
  const out = where(keepMask, mul(x, scale), 0);
  return out;
}

export function mseLoss(a: Tensor, b: Tensor, reduction: 'mean' | 'sum' | 'none' = 'mean'): Tensor {
  checkTensor('mseLoss', a);
  checkTensor('mseLoss', b, 'target');
  if (reduction !== 'mean' && reduction !== 'sum' && reduction !== 'none')
    throw new KilnError('INVALID_ARGUMENT', `mseLoss: reduction must be 'mean', 'sum' or 'none', got ${String(reduction)}`);
  // The target may broadcast to the input's shape, never the other way: [N, 1] against [N] would
  // silently average an N x N matrix of differences.
  if (!sameShape(broadcastShapes('mseLoss', a.shape, b.shape), a.shape))
    throw new KilnError('SHAPE_MISMATCH', `mseLoss: target ${shapeStr(b.shape)} does not broadcast to the input's shape ${shapeStr(a.shape)}`);
  const d = square(sub(a, b));
  if (reduction === 'none') return d;
  return reduction === 'mean' ? mean(d) : sum(d);
}

export { cast };
