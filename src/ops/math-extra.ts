// Statistics (variance, std, prod, norm), smooth activations (erf, silu, softplus, logSigmoid, mish)
// and sampling (multinomial, bernoulli, randperm), composed from the device-generic ops: no kernels
// of their own, so each runs wherever its parts do.
import { KilnError, shapeStr } from '../errors.js';
import { noGrad, record } from '../tensor/autograd.js';
import type { Device, DType } from '../tensor/dtype.js';
import { getRngState, manualSeed, setRngState } from '../tensor/random.js';
import { normAxes } from '../tensor/shape.js';
import { tidy } from '../tensor/storage.js';
import type { Tensor } from '../tensor/tensor.js';
import { arange, rand } from './creation.js';
import {
  abs, add, clamp, div, eq, exp, gelu, gt, isNan, le, log, log1p, lt, minimum, mul, ne, neg, pow, sigmoid,
  sign, sqrt, square, sub, tanh, toDType, where,
} from './elementwise.js';
import { cumsum, topk } from './indexing.js';
import { max, mean, min, prodReduce, sum, type Axes } from './reduce.js';
import { concat } from './views.js';
import { cast, checkTensor, prod as numelOf } from './util.js';

// ---------------------------------------------------------------- helpers

/** int32 input promoted to float32 (as the unary ops do); float inputs as they are. */
function floatOf(name: string, x: Tensor): Tensor {
  checkTensor(name, x);
  return x.dtype === 'int32' ? toDType(x, 'float32') : x;
}

function needFloatDType(name: string, x: Tensor, why = ''): void {
  if (x.dtype === 'int32')
    throw new KilnError('DTYPE_MISMATCH', `${name}: needs a float tensor, got int32 ${shapeStr(x.shape)}${why}`);
}

/** g (reduced over `axes`) reshaped so that it broadcasts against x. */
function keepShapeOf(g: Tensor, x: Tensor, axes: number[]): Tensor {
  return g.reshape(x.shape.map((d, i) => (axes.includes(i) ? 1 : d)));
}

/** Runs fn with the global Philox stream seeded by `seed`, then puts the stream back as it was. */
function withSeed<T>(seed: number | bigint | undefined, fn: () => T): T {
  if (seed === undefined) return fn();
  const prev = getRngState();
  manualSeed(seed);
  try {
    return fn();
  } finally {
    setRngState(prev);
  }
}

// ---------------------------------------------------------------- statistics

export interface VarianceOptions {
  /** Subtracted from the count in the divisor: 1 (default) is Bessel's unbiased estimate, 0 the population variance. */
  correction?: number;
  keepdim?: boolean;
}

/**
 * torch.var: sum((x - mean)^2) / (N - correction) over `dims` (all when omitted), two-pass. As
 * PyTorch, N - correction <= 0 gives inf (or NaN where the sum of squares is 0).
 */
export function variance(x: Tensor, dims?: Axes, opts: VarianceOptions = {}): Tensor {
  checkTensor('var', x);
  needFloatDType('var', x);
  opts ??= {};
  const correction = opts.correction ?? 1;
  if (typeof correction !== 'number' || !Number.isFinite(correction))
    throw new KilnError('INVALID_ARGUMENT', `var: correction must be a finite number, got ${String(correction)} for ${shapeStr(x.shape)}`);
  const axes = normAxes('var', dims, x.ndim);
  const n = numelOf(axes.map((a) => x.shape[a]));
  const d = sub(x, mean(x, axes, true));
  return mul(sum(square(d), axes, opts.keepdim ?? false), 1 / Math.max(0, n - correction));
}

/** torch.std: the square root of `variance` (same options). */
export function std(x: Tensor, dims?: Axes, opts: VarianceOptions = {}): Tensor {
  checkTensor('std', x);
  needFloatDType('std', x);
  return sqrt(variance(x, dims, opts));
}

/**
 * Product over `dims` (all when omitted). The gradient is exact with zeros, as PyTorch's: the
 * product of the other elements (no division), so one zero in a slice gets the product of the rest
 * and the others 0; two or more zeros give 0 everywhere.
 */
export function prod(x: Tensor, dims?: Axes, keepdim = false): Tensor {
  checkTensor('prod', x);
  needFloatDType('prod', x, ' (PyTorch would give int64, which kiln does not have; cast to float64 first)');
  const axes = normAxes('prod', dims, x.ndim);
  const out = prodReduce(x, axes, keepdim);
  return record(out, 'prod', [x], (g) => {
    const isZero = cast(eq(x, 0), x.dtype);
    const zeros = sum(isZero, axes, true);
    const nonZero = where(isZero, 1, x);
    const rest = prodReduce(nonZero, axes, true);  // product of the nonzero elements of each slice
    const noZeros = div(rest, nonZero);             // prod / x_i where the slice has no zero
    const oneZero = mul(mul(isZero, cast(eq(zeros, 1), x.dtype)), rest);
    return [mul(where(eq(zeros, 0), noZeros, oneZero), keepShapeOf(g, x, axes))];
  });
}

/**
 * Vector p-norm over `dims` (all when omitted), as torch.linalg.vector_norm: p = 2 (default), 1,
 * Infinity (max |x|), -Infinity (min |x|), 0 (count of nonzeros), or any other p as
 * (sum |x|^p)^(1/p). 'fro' is 2. The gradient is 0 where the norm is 0 (PyTorch's subgradient).
 */
export function norm(x: Tensor, p: number | 'fro' = 2, dims?: Axes, keepdim = false): Tensor {
  checkTensor('norm', x);
  needFloatDType('norm', x);
  const q = p === 'fro' ? 2 : p;
  if (typeof q !== 'number' || Number.isNaN(q))
    throw new KilnError('INVALID_ARGUMENT', `norm: p must be a number or 'fro', got ${String(p)} for ${shapeStr(x.shape)}`);
  const axes = normAxes('norm', dims, x.ndim);
  if (q === 1) return sum(abs(x), axes, keepdim);
  if (q === Infinity) return max(abs(x), axes, keepdim);
  if (q === -Infinity) return min(abs(x), axes, keepdim);
  if (q === 0) return noGrad(() => tidy(() => sum(cast(ne(x, 0), x.dtype), axes, keepdim)));
  const out = noGrad(() => tidy(() =>
    q === 2 ? sqrt(sum(square(x), axes, keepdim)) : pow(sum(pow(abs(x), q), axes, keepdim), 1 / q)));
  return record(out, 'norm', [x], (g) => {
    const nk = keepShapeOf(out, x, axes);
    // d||x||/dx = sign(x) |x|^(p-1) / ||x||^(p-1); x / ||x|| for p = 2.
    const num = q === 2 ? x : mul(sign(x), pow(abs(x), q - 1));
    const den = q === 2 ? nk : pow(nk, q - 1);
    return [where(eq(nk, 0), 0, div(mul(num, keepShapeOf(g, x, axes)), den))];
  });
}

// ---------------------------------------------------------------- activations

// erf(x) / x = sum_n c_n x^(2n): the Maclaurin series, used for |x| < 0.5 where 14 terms reach
// 1e-19 relative and 1 + erf would lose the relative accuracy of small results.
const ERF_SERIES = Array.from({ length: 14 }, (_, n) => {
  let c = 2 / Math.sqrt(Math.PI);
  for (let k = 1; k <= n; k++) c /= -k;
  return c / (2 * n + 1);
});

/**
 * The error function. No erf kernel exists, so it is built in float64 (and rounded once to the
 * input's dtype): the Maclaurin series for |x| < 0.5, and above it the exact-GELU kernel,
 * erf(z) = 2 gelu(sqrt2 z) / (sqrt2 z) - 1, whose float64 path is the C library's erf (CPU) or
 * CUDA's. Error: ~2e-16 absolute in float64 (relative near 0), and the one rounding in float32.
 * The gradient is 2/sqrt(pi) exp(-x^2).
 */
export function erf(input: Tensor): Tensor {
  const x = floatOf('erf', input);
  const out = noGrad(() => tidy(() => {
    const w = x.dtype === 'float64' ? x : cast(x, 'float64');
    const t = square(w);
    const L = ERF_SERIES.length;
    let series = add(mul(t, ERF_SERIES[L - 1]), ERF_SERIES[L - 2]);
    for (let n = L - 3; n >= 0; n--) series = add(mul(series, t), ERF_SERIES[n]);
    const small = mul(series, w);
    // erf saturates (erf(6) = 1 - 2e-17): the clamp keeps sqrt2 z finite, so gelu / z is never inf / inf.
    const y = mul(clamp(w, -8, 8), Math.SQRT2);
    const large = sub(mul(div(gelu(y, 'none'), y), 2), 1);
    const r = where(isNan(w), w, where(lt(abs(w), 0.5), small, large));
    return r.dtype === x.dtype ? r : cast(r, x.dtype);
  }));
  return record(out, 'erf', [x], (g) => [mul(g, mul(exp(neg(square(x))), 2 / Math.sqrt(Math.PI)))]);
}

/** x * sigmoid(x) (swish); the gradient s (1 + x (1 - s)) recomputes s rather than keeping it. */
export function silu(input: Tensor): Tensor {
  const x = floatOf('silu', input);
  const out = noGrad(() => tidy(() => mul(x, sigmoid(x))));
  return record(out, 'silu', [x], (g) => {
    const s = sigmoid(x);
    return [mul(g, mul(s, add(mul(x, sub(1, s)), 1)))];
  });
}

/**
 * log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (torch.nn.functional.softplus);
 * the exponent is clamped at the threshold, so nothing overflows.
 */
export function softplus(input: Tensor, beta = 1, threshold = 20): Tensor {
  const x = floatOf('softplus', input);
  if (typeof beta !== 'number' || !Number.isFinite(beta) || beta === 0)
    throw new KilnError('INVALID_ARGUMENT', `softplus: beta must be a finite nonzero number, got ${String(beta)} for ${shapeStr(x.shape)}`);
  if (typeof threshold !== 'number' || Number.isNaN(threshold))
    throw new KilnError('INVALID_ARGUMENT', `softplus: threshold must be a number, got ${String(threshold)} for ${shapeStr(x.shape)}`);
  const out = noGrad(() => tidy(() => {
    const z = mul(x, beta);
    const soft = mul(log1p(exp(minimum(z, threshold))), 1 / beta);
    return where(gt(z, threshold), x, soft);
  }));
  return record(out, 'softplus', [x], (g) => {
    const z = mul(x, beta);
    return [where(gt(z, threshold), g, mul(g, sigmoid(z)))];
  });
}

/** log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|)), finite for every finite x. */
export function logSigmoid(input: Tensor): Tensor {
  const x = floatOf('logSigmoid', input);
  const out = noGrad(() => tidy(() => sub(minimum(x, 0), log1p(exp(neg(abs(x)))))));
  return record(out, 'logSigmoid', [x], (g) => [mul(g, sigmoid(neg(x)))]);
}

/** x * tanh(softplus(x)) (Mish). */
export function mish(input: Tensor): Tensor {
  const x = floatOf('mish', input);
  return mul(x, tanh(softplus(x)));
}

// ---------------------------------------------------------------- sampling

export interface SampleOptions {
  /** Draw from a stream seeded with this value and leave the global stream untouched (a local generator). */
  seed?: number | bigint;
}

export interface MultinomialOptions extends SampleOptions {
  replacement?: boolean;
}

/** The number of elements of x (float) for which bad(x) is nonzero, read back. */
function countWhere(x: Tensor, bad: (x: Tensor) => Tensor): number {
  return noGrad(() => tidy(() => sum(cast(bad(x), 'float64')).item()));
}

// [B, n, C] comparisons of the with-replacement search are made this many at a time.
const SEARCH_CHUNK = 1 << 22;

/**
 * numSamples int32 category indices per row of probs [C] or [B, C] (non-negative weights, not
 * necessarily normalised), drawn from the global Philox stream (kiln.manualSeed makes them
 * reproducible; `seed` uses a local one). With replacement: inverse-CDF search of uniforms in the
 * float64 cumulative sums. Without: Gumbel-top-k (the top numSamples of log p + Gumbel noise), which
 * has the law of sequential draws without replacement, in drawing order.
 */
export function multinomial(probs: Tensor, numSamples: number, opts: MultinomialOptions = {}): Tensor {
  const name = 'multinomial';
  checkTensor(name, probs, 'probs');
  needFloatDType(name, probs);
  opts ??= {};
  const replacement = opts.replacement ?? false;
  if (probs.ndim !== 1 && probs.ndim !== 2)
    throw new KilnError('SHAPE_MISMATCH', `${name}: probs must be [C] or [B, C], got ${shapeStr(probs.shape)}`);
  const C = probs.shape[probs.ndim - 1];
  const B = probs.ndim === 2 ? probs.shape[0] : 1;
  if (!Number.isInteger(numSamples) || numSamples < 1)
    throw new KilnError('INVALID_ARGUMENT', `${name}: numSamples must be a positive integer, got ${numSamples} for ${shapeStr(probs.shape)}`);
  if (C === 0) throw new KilnError('SHAPE_MISMATCH', `${name}: probs ${shapeStr(probs.shape)} has no categories`);
  if (!replacement && numSamples > C)
    throw new KilnError('INVALID_ARGUMENT', `${name}: cannot draw ${numSamples} samples without replacement from ${C} categories (probs ${shapeStr(probs.shape)})`);
  return noGrad(() => tidy(() => {
    const p = cast(probs, 'float64').reshape([B, C]);
    if (countWhere(p, (v) => add(lt(v, 0), add(isNan(v), eq(abs(v), Infinity)))) > 0)
      throw new KilnError('INVALID_ARGUMENT', `${name}: probs ${shapeStr(probs.shape)} must be finite and non-negative`);
    const positive = sum(gt(p, 0), 1);
    const fewest = min(positive).item();
    if (fewest === 0) throw new KilnError('INVALID_ARGUMENT', `${name}: a row of probs ${shapeStr(probs.shape)} sums to 0`);
    if (!replacement && fewest < numSamples)
      throw new KilnError('INVALID_ARGUMENT', `${name}: a row of probs ${shapeStr(probs.shape)} has ${fewest} nonzero categories, fewer than the ${numSamples} samples to draw without replacement`);
    let idx: Tensor;
    if (replacement) {
      const u = withSeed(opts.seed, () => rand([B, numSamples], { dtype: 'float64', device: probs.device }));
      const cdf = cumsum(p, 1);
      const target = mul(u, cdf.narrow(1, C - 1, 1));  // u * total < total: u < 1 in float64
      const cdfRow = cdf.reshape([B, 1, C]);
      // The first category whose cumulative sum exceeds the target = how many do not exceed it.
      const step = Math.max(1, Math.floor(SEARCH_CHUNK / Math.max(1, B * C)));
      const parts: Tensor[] = [];
      for (let s = 0; s < numSamples; s += step) {
        const n = Math.min(step, numSamples - s);
        parts.push(sum(le(cdfRow, target.narrow(1, s, n).reshape([B, n, 1])), 2));
      }
      idx = minimum(parts.length === 1 ? parts[0] : concat(parts, 1), C - 1);
    } else {
      // u in (0, 1): -log(u) is finite, so a positive weight always outranks a zero one (-inf).
      const u = withSeed(opts.seed, () => rand([B, C], { dtype: 'float64', device: probs.device, low: Number.MIN_VALUE }));
      idx = topk(sub(log(p), log(neg(log(u)))), numSamples).indices;
    }
    return probs.ndim === 1 ? idx.reshape([numSamples]) : idx;
  }));
}

/**
 * 0 / 1 draws with probabilities p (same shape and dtype as p): 1 where a uniform from the global
 * Philox stream is below p. p must lie in [0, 1]. Not differentiable (no gradient, as PyTorch).
 */
export function bernoulli(p: Tensor, opts: SampleOptions = {}): Tensor {
  checkTensor('bernoulli', p, 'p');
  needFloatDType('bernoulli', p);
  if (countWhere(p, (v) => add(isNan(v), add(lt(v, 0), gt(v, 1)))) > 0)
    throw new KilnError('INVALID_ARGUMENT', `bernoulli: p ${shapeStr(p.shape)} must lie in [0, 1]`);
  const uDtype: DType = p.dtype === 'float64' ? 'float64' : 'float32';
  return noGrad(() => tidy(() => {
    const u = withSeed(opts?.seed, () => rand(p.shape.slice(), { dtype: uDtype, device: p.device }));
    return cast(lt(u, p), p.dtype);
  }));
}

export interface RandpermOptions extends SampleOptions {
  device?: Device;
}

/** A uniformly random permutation of 0 .. n-1 (int32): the order of n float64 uniforms. */
export function randperm(n: number, opts: RandpermOptions = {}): Tensor {
  if (!Number.isInteger(n) || n < 0 || n > 2 ** 31 - 1)
    throw new KilnError('INVALID_ARGUMENT', `randperm: n must be an integer in [0, 2^31), got ${n}`);
  const device = opts?.device ?? 'cpu';
  if (n === 0) return arange(0, 0, 1, { device });
  return noGrad(() => tidy(() => {
    const keys = withSeed(opts?.seed, () => rand([n], { dtype: 'float64', device }));
    return topk(keys, n).indices;
  }));
}
