// Losses beyond crossEntropy and mseLoss (src/ops/nn.ts): binary cross-entropy (on logits and on
// probabilities), NLL, L1, smooth L1, Huber and KL divergence, composed from differentiable ops.
// Reductions are 'mean' (default), 'sum' or 'none', as PyTorch's.
import { KilnError, shapeStr } from '../errors.js';
import { A, N } from '../native.js';
import { noGrad, record } from '../tensor/autograd.js';
import { broadcastShapes, sameShape } from '../tensor/shape.js';
import { tidy } from '../tensor/storage.js';
import type { Tensor } from '../tensor/tensor.js';
import { arange } from './creation.js';
import { abs, add, div, eq, exp, log, log1p, lt, maximum, mul, ne, neg, reciprocal, square, sub, where } from './elementwise.js';
import { logSigmoid } from './math-extra.js';
import { mean, sum } from './reduce.js';
import { arg, cast, checkTensor, contig, needDType, needFloat, sameDevice } from './util.js';

export type Reduction = 'mean' | 'sum' | 'none';

function checkReduction(name: string, r: unknown, extra: readonly string[] = []): void {
  const allowed = ['mean', 'sum', 'none', ...extra];
  if (!allowed.includes(r as string))
    throw new KilnError('INVALID_ARGUMENT', `${name}: reduction must be ${allowed.map((a) => `'${a}'`).join(', ')}, got ${String(r)}`);
}

function reduce(loss: Tensor, reduction: Reduction): Tensor {
  return reduction === 'none' ? loss : reduction === 'sum' ? sum(loss) : mean(loss);
}

/** input and target float tensors on one device; the target broadcasts to the input's shape (never the reverse, as mseLoss). */
function pair(name: string, input: Tensor, target: Tensor, sameShapeOnly = false): void {
  checkTensor(name, input);
  checkTensor(name, target, 'target');
  sameDevice(name, input, target);
  if (input.dtype === 'int32' || target.dtype === 'int32')
    throw new KilnError('DTYPE_MISMATCH', `${name}: input ${input.dtype} ${shapeStr(input.shape)} and target ${target.dtype} ${shapeStr(target.shape)} must be float`);
  if (sameShapeOnly ? !sameShape(input.shape, target.shape) : !sameShape(broadcastShapes(name, input.shape, target.shape), input.shape))
    throw new KilnError('SHAPE_MISMATCH', sameShapeOnly
      ? `${name}: target ${shapeStr(target.shape)} must have the input's shape ${shapeStr(input.shape)}`
      : `${name}: target ${shapeStr(target.shape)} does not broadcast to the input's shape ${shapeStr(input.shape)}`);
}

/** An optional per-element weight that must broadcast to the input's shape. */
function checkWeight(name: string, what: string, w: Tensor | null | undefined, input: Tensor): void {
  if (!w) return;
  checkTensor(name, w, what);
  sameDevice(name, input, w);
  if (w.dtype === 'int32') throw new KilnError('DTYPE_MISMATCH', `${name}: ${what} must be float, got int32 ${shapeStr(w.shape)}`);
  if (!sameShape(broadcastShapes(name, input.shape, w.shape), input.shape))
    throw new KilnError('SHAPE_MISMATCH', `${name}: ${what} ${shapeStr(w.shape)} does not broadcast to the input's shape ${shapeStr(input.shape)}`);
}

export interface BCEOptions {
  /** Rescales each element's loss (broadcasts to the input). */
  weight?: Tensor | null;
  reduction?: Reduction;
}

export interface BCEWithLogitsOptions extends BCEOptions {
  /** Weight of the positive term, per class (broadcasts to the input, e.g. [C] for [N, C]). */
  posWeight?: Tensor | null;
}

/**
 * Sigmoid + binary cross-entropy in one stable expression (torch's BCEWithLogitsLoss):
 * (1 - y) x - (1 + (posWeight - 1) y) logSigmoid(x), times weight. Differentiable in the logits and
 * the targets (soft labels).
 */
export function bceWithLogits(logits: Tensor, targets: Tensor, opts: BCEWithLogitsOptions = {}): Tensor {
  const name = 'bceWithLogits';
  pair(name, logits, targets, true);
  opts ??= {};
  const reduction = opts.reduction ?? 'mean';
  checkReduction(name, reduction);
  checkWeight(name, 'weight', opts.weight, logits);
  checkWeight(name, 'posWeight', opts.posWeight, logits);
  const ls = logSigmoid(logits);
  const pos = opts.posWeight ? add(mul(sub(opts.posWeight, 1), targets), 1) : null;
  let loss = sub(mul(sub(1, targets), logits), pos ? mul(pos, ls) : ls);
  if (opts.weight) loss = mul(loss, opts.weight);
  return reduce(loss, reduction);
}

/**
 * Binary cross-entropy of probabilities in [0, 1]: -(y log p + (1 - y) log(1 - p)) with each log
 * clamped at -100, as PyTorch (so p = 0 or 1 gives a finite loss). The gradient is PyTorch's,
 * (p - y) / max(p (1 - p), 1e-12), finite at 0 and 1. Probabilities outside [0, 1] give NaN (not
 * checked: that would read the tensor back).
 */
export function binaryCrossEntropy(probs: Tensor, targets: Tensor, opts: BCEOptions = {}): Tensor {
  const name = 'binaryCrossEntropy';
  pair(name, probs, targets, true);
  opts ??= {};
  const reduction = opts.reduction ?? 'mean';
  checkReduction(name, reduction);
  checkWeight(name, 'weight', opts.weight, probs);
  const p = probs, y = targets;
  const [value, logP, log1mP] = noGrad(() => tidy(() => {
    const lp = maximum(log(p), -100), l1p = maximum(log1p(neg(p)), -100);
    return [neg(add(mul(y, lp), mul(sub(1, y), l1p))), lp, l1p];
  }));
  const pointwise = record(value, name, [p, y], (g) => [
    p.requiresGrad ? mul(g, div(sub(p, y), maximum(mul(p, sub(1, p)), 1e-12))) : null,
    y.requiresGrad ? mul(g, sub(log1mP, logP)) : null,
  ]);
  const loss = opts.weight ? mul(pointwise, opts.weight) : pointwise;
  return reduce(loss, reduction);
}

export interface NLLOptions {
  /** Targets equal to this contribute nothing (default -100). */
  ignoreIndex?: number;
  reduction?: Reduction;
  /** Per-class weights [C]; 'mean' then divides by the summed weights of the counted targets. */
  weight?: Tensor | null;
}

/**
 * Negative log-likelihood of log-probabilities [..., C] (classes on the last axis, as kiln's
 * crossEntropy) at int32 targets [...]. nllLoss(logSoftmax(x), t) equals crossEntropy(x, t).
 */
export function nllLoss(logProbs: Tensor, targets: Tensor, opts: NLLOptions = {}): Tensor {
  const name = 'nllLoss';
  checkTensor(name, logProbs, 'logProbs');
  checkTensor(name, targets, 'targets');
  sameDevice(name, logProbs, targets);
  needFloat(name, logProbs, 'logProbs');
  needDType(name, targets, 'int32', 'targets');
  opts ??= {};
  const ignore = opts.ignoreIndex ?? -100;
  const reduction = opts.reduction ?? 'mean';
  checkReduction(name, reduction);
  if (!Number.isInteger(ignore)) throw new KilnError('INVALID_ARGUMENT', `${name}: ignoreIndex must be an integer, got ${ignore}`);
  if (logProbs.ndim < 1 || logProbs.ndim !== targets.ndim + 1 || targets.shape.some((d, i) => d !== logProbs.shape[i]))
    throw new KilnError('SHAPE_MISMATCH', `${name}: logProbs ${shapeStr(logProbs.shape)} and targets ${shapeStr(targets.shape)} (want [..., C] and [...])`);
  const C = logProbs.shape[logProbs.ndim - 1];
  const w = opts.weight;
  if (w) {
    checkTensor(name, w, 'weight');
    sameDevice(name, logProbs, w);
    needDType(name, w, logProbs.dtype, 'weight');
    if (w.ndim !== 1 || w.shape[0] !== C)
      throw new KilnError('SHAPE_MISMATCH', `${name}: weight ${shapeStr(w.shape)} for ${C} classes (logProbs ${shapeStr(logProbs.shape)})`);
  }
  checkTargets(name, targets, C, ignore);
  const hit = eq(targets.unsqueeze(-1), arange(0, C, 1, { device: targets.device }));  // [..., C]; none on ignored rows
  const picked = sum(where(hit, logProbs, 0), -1);
  const wt = w ? sum(where(hit, w, 0), -1) : cast(ne(targets, ignore), logProbs.dtype);
  const loss = neg(mul(picked, wt));
  if (reduction === 'none') return loss;
  const total = sum(loss);
  return reduction === 'sum' ? total : mul(total, reciprocal(sum(wt)));
}

/** INDEX_OUT_OF_RANGE for a target outside [0, C) that is not ignoreIndex. */
function checkTargets(name: string, targets: Tensor, C: number, ignore: number): void {
  if (targets.size === 0) return;
  const tc = contig(targets);
  A[0] = tc.size;
  A[1] = 0;
  A[2] = C;
  // An ignoreIndex outside int32 matches no target: 0 (inside the range) then widens nothing.
  A[3] = Number.isInteger(ignore) && ignore >= -2147483648 && ignore <= 2147483647 ? ignore : 0;
  const bad = N.findInvalidIndex(arg(4, tc));
  const value = bad >= 0 ? tc.dataSync()[bad] : 0;
  if (tc !== targets) tc.dispose();
  if (bad >= 0)
    throw new KilnError('INDEX_OUT_OF_RANGE', `${name}: target ${value} at position ${bad} of ${shapeStr(targets.shape)} is outside [0, ${C}) and not ignoreIndex ${ignore}`);
}

/** Mean (or sum, or each) |input - target|; the target broadcasts to the input. */
export function l1Loss(input: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  pair('l1Loss', input, target);
  checkReduction('l1Loss', reduction);
  return reduce(abs(sub(input, target)), reduction);
}

/** 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target); beta = 0 is l1Loss. */
export function smoothL1Loss(input: Tensor, target: Tensor, opts: { beta?: number; reduction?: Reduction } = {}): Tensor {
  const name = 'smoothL1Loss';
  pair(name, input, target);
  opts ??= {};
  const beta = opts.beta ?? 1;
  const reduction = opts.reduction ?? 'mean';
  checkReduction(name, reduction);
  if (typeof beta !== 'number' || !(beta >= 0) || !Number.isFinite(beta))
    throw new KilnError('INVALID_ARGUMENT', `${name}: beta must be a finite number >= 0, got ${String(beta)}`);
  if (beta === 0) return l1Loss(input, target, reduction);
  return reduce(piecewise(sub(input, target), beta, 0.5 / beta, 1, 0.5 * beta), reduction);
}

/** 0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta): delta times smoothL1Loss with beta = delta. */
export function huberLoss(input: Tensor, target: Tensor, opts: { delta?: number; reduction?: Reduction } = {}): Tensor {
  const name = 'huberLoss';
  pair(name, input, target);
  opts ??= {};
  const delta = opts.delta ?? 1;
  const reduction = opts.reduction ?? 'mean';
  checkReduction(name, reduction);
  if (typeof delta !== 'number' || !(delta > 0) || !Number.isFinite(delta))
    throw new KilnError('INVALID_ARGUMENT', `${name}: delta must be a finite number > 0, got ${String(delta)}`);
  return reduce(piecewise(sub(input, target), delta, 0.5, delta, 0.5 * delta * delta), reduction);
}

/** q d^2 where |d| < at, else s |d| - c. */
function piecewise(d: Tensor, at: number, q: number, s: number, c: number): Tensor {
  const ad = abs(d);
  return where(lt(ad, at), mul(square(d), q), sub(mul(ad, s), c));
}

export interface KLDivOptions {
  /** 'batchmean' divides the sum by the input's first dimension (the mathematically correct mean). */
  reduction?: Reduction | 'batchmean';
  /** The target is given as log-probabilities. */
  logTarget?: boolean;
}

/**
 * KL(target || exp(input)) pointwise, with input log-probabilities (torch's kl_div): target (log
 * target - input), 0 where target = 0; or exp(t) (t - input) with logTarget. Default reduction
 * 'mean' averages over every element, as PyTorch (use 'batchmean' for the true KL per sample).
 */
export function klDiv(input: Tensor, target: Tensor, opts: KLDivOptions = {}): Tensor {
  const name = 'klDiv';
  pair(name, input, target);
  opts ??= {};
  const reduction = opts.reduction ?? 'mean';
  checkReduction(name, reduction, ['batchmean']);
  let pointwise: Tensor;
  if (opts.logTarget) pointwise = mul(exp(target), sub(target, input));
  else {
    // log(1) where target = 0: the term is 0 there, and its gradient stays finite.
    const safeLog = log(where(eq(target, 0), 1, target));
    pointwise = mul(target, sub(safeLog, input));
  }
  if (reduction === 'batchmean') {
    const s = sum(pointwise);
    return input.ndim === 0 ? s : mul(s, 1 / input.shape[0]);
  }
  return reduce(pointwise, reduction as Reduction);
}
