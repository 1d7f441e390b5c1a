// Convolution and pooling after PyTorch (NCHW / NCL): conv2d, conv1d, maxPool2d, avgPool2d,
// adaptiveAvgPool2d, and pad. conv2d / conv1d and avgPool2d unfold x with the native im2col (read
// in NCHW, no layout copy; its gradient is the deterministic col2im), and convolution is then one
// batched GEMM weight @ cols whose product is already NCHW. maxPool2d and adaptiveAvgPool2d (irregular
// windows) copy x once to channels-last rows and gather every window tap as ONE row of host-computed
// positions (the embedding kernel); the gather's gradient is its deterministic scatter-add.
import { KilnError, shapeStr } from '../errors.js';
import { A, N } from '../native.js';
import { record } from '../tensor/autograd.js';
import { dtypeCode, isHalf, typedArrayFor, type DType } from '../tensor/dtype.js';
import { contiguousStrides } from '../tensor/shape.js';
import { Tensor, empty, stridedCopy, view } from '../tensor/tensor.js';
import { fillInPlace, fromTyped, full } from './creation.js';
import { add, mul } from './elementwise.js';
import { matmul } from './matmul.js';
import { argmax, sum } from './reduce.js';
import { contiguous, expand, narrow, permute, reshape } from './views.js';
import { arg, cast, checkTensor, contig, releaseMade, sameDevice } from './util.js';

const INT32_MAX = 2147483647;

export type Pair = number | [number, number];

export interface Conv2dOptions {
  stride?: Pair;
  /** Zeros added on both sides of each spatial dim; 'same' (stride 1 only) keeps the size, 'valid' is 0. */
  padding?: Pair | 'same' | 'valid';
  dilation?: Pair;
  groups?: number;
}
export interface Conv1dOptions {
  stride?: number;
  padding?: number | 'same' | 'valid';
  dilation?: number;
  groups?: number;
}
export interface MaxPool2dOptions {
  /** Default: the kernel size. */
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
}
export interface AvgPool2dOptions {
  stride?: Pair;
  padding?: Pair;
  /** Whether the zero padding counts in the divisor (default true, as PyTorch). */
  countIncludePad?: boolean;
}

// ---------------------------------------------------------------- argument checks

function pair(op: string, name: string, v: unknown, min: number, x: Tensor): [number, number] {
  const p = typeof v === 'number' ? [v, v] : Array.isArray(v) && v.length === 2 ? v : null;
  if (!p || !p.every((n) => Number.isInteger(n) && n >= min))
    throw new KilnError('INVALID_ARGUMENT', `${op}: ${name} must be an integer >= ${min} or a pair of them, got ${JSON.stringify(v)} for input ${shapeStr(x.shape)}`);
  return [p[0], p[1]];
}

function needFloatInput(op: string, t: Tensor, name: string): void {
  if (t.dtype === 'int32') throw new KilnError('DTYPE_MISMATCH', `${op}: ${name} must be a float tensor, got int32 ${shapeStr(t.shape)}`);
}

/** Output size of one spatial dim, refusing a kernel that does not fit the padded input. */
function outSize(op: string, x: Tensor, w: Tensor | null, n: number, k: number, s: number, padTotal: number, d: number, axis: string): number {
  const span = d * (k - 1) + 1;
  if (n + padTotal < span)
    throw new KilnError('SHAPE_MISMATCH', `${op}: the ${axis} kernel spans ${span} (size ${k}, dilation ${d}) but the padded input has ${n + padTotal} `
      + `(input ${shapeStr(x.shape)}${w ? `, weight ${shapeStr(w.shape)}` : ''}, padding ${padTotal} in all)`);
  return Math.floor((n + padTotal - span) / s) + 1;
}

// ---------------------------------------------------------------- window positions (host, cached)

/** Per output position along one axis: the k input positions its window reads (-1: padding). */
function convTaps(n: number, out: number, k: number, s: number, padLo: number, d: number): Int32Array {
  const taps = new Int32Array(out * k);
  for (let o = 0; o < out; o++)
    for (let t = 0; t < k; t++) {
      const i = o * s - padLo + t * d;
      taps[o * k + t] = i >= 0 && i < n ? i : -1;
    }
  return taps;
}

/** Adaptive pooling windows [floor(o n / out), ceil((o + 1) n / out)), padded to the widest. */
function adaptiveTaps(n: number, out: number): { taps: Int32Array; k: number } {
  const lo = (o: number) => Math.floor((o * n) / out), hi = (o: number) => Math.ceil(((o + 1) * n) / out);
  let k = 1;
  for (let o = 0; o < out; o++) k = Math.max(k, hi(o) - lo(o));
  const taps = new Int32Array(out * k).fill(-1);
  for (let o = 0; o < out; o++) for (let i = lo(o); i < hi(o); i++) taps[o * k + i - lo(o)] = i;
  return { taps, k };
}

interface Windows {
  key: string;
  Ho: number;
  Wo: number;
  kH: number;
  kW: number;
  rows: Int32Array;  // [Ho, kH]
  cols: Int32Array;  // [Wo, kW]
}

// Host memory only (the device copy is made per call): bounded in bytes, least recently used first out.
const positionCache = new Map<string, Int32Array>();
const CACHE_BYTES = 64 << 20;
let cachedBytes = 0;

/**
 * Row numbers [G, N, Ho, Wo, kH, kW] into x read as channels-last rows of C / G channels
 * (row ((n H + h) W + w) G + g), with padding taps at the pad row N H W G. Computed once per shape.
 */
function positions(op: string, x: Tensor, G: number, win: Windows): Int32Array {
  const [Nb, , H, W] = x.shape;
  const key = `${win.key}|${Nb},${H},${W},${G}`;
  const hit = positionCache.get(key);
  if (hit) {
    positionCache.delete(key);  // most recently used last
    positionCache.set(key, hit);
    return hit;
  }
  const { Ho, Wo, kH, kW, rows, cols } = win;
  const total = G * Nb * Ho * Wo * kH * kW;
  if (total > INT32_MAX || Nb * H * W * G >= INT32_MAX)
    throw new KilnError('INVALID_ARGUMENT', `${op}: input ${shapeStr(x.shape)} needs ${total} window positions, more than 2^31 - 1`);
  const out = new Int32Array(total);
  const pad = Nb * H * W * G;
  let p = 0;
  for (let g = 0; g < G; g++)
    for (let n = 0; n < Nb; n++)
      for (let oh = 0; oh < Ho; oh++)
        for (let ow = 0; ow < Wo; ow++)
          for (let th = 0; th < kH; th++) {
            const ih = rows[oh * kH + th];
            for (let tw = 0; tw < kW; tw++) {
              const iw = cols[ow * kW + tw];
              out[p++] = ih < 0 || iw < 0 ? pad : ((n * H + ih) * W + iw) * G + g;
            }
          }
  if (out.byteLength > CACHE_BYTES / 4) return out;
  positionCache.set(key, out);
  cachedBytes += out.byteLength;
  for (const [k, v] of positionCache) {
    if (cachedBytes <= CACHE_BYTES) break;
    positionCache.delete(k);
    cachedBytes -= v.byteLength;
  }
  return out;
}

/** Positions as an int32 tensor on x's device (built in range here, so without fromTyped's per-element check). */
function upload(pos: Int32Array, x: Tensor): Tensor {
  const t = empty([pos.length], 'int32', x.device);
  if (pos.length === 0) return t;
  if (t.storage.buf) typedArrayFor('int32', t.storage.buf, 0, pos.length).set(pos);
  else {
    const bytes = pos.byteOffset === 0 && pos.buffer.byteLength === pos.byteLength ? pos.buffer : pos.slice().buffer;
    arg(0, t);
    A[3] = 0;
    A[4] = 0;
    A[5] = dtypeCode.int32;
    A[6] = pos.byteLength;
    N.copy(undefined, bytes as ArrayBuffer);
  }
  return t;
}

// ---------------------------------------------------------------- the gather (im2col) and its scatter-add (col2im)

// The embedding kernel moves float32 / float64 rows; the half dtypes go through float32.
const wideOf = (d: DType): DType => (isHalf(d) ? 'float32' : d);

function embeddingCall(src: Tensor, idx: Tensor, out: Tensor, V: number, D: number, backward: boolean): void {
  A[0] = idx.size;
  A[1] = V;
  A[2] = D;
  A[3] = backward ? 1 : 0;
  N.embedding(arg(4, src), arg(7, idx), arg(10, out));
}

/**
 * x [N, C, H, W] copied once to rows of D = C / G channels (channels-last, one extra row of padValue),
 * as a flat wide-dtype tensor of (N H W G + 1) D elements.
 */
function channelsLastRows(x: Tensor, G: number, padValue: number): Tensor {
  const [Nb, C, H, W] = x.shape;
  const D = C / G, V = Nb * H * W * G + 1;
  const buf = empty([V * D], wideOf(x.dtype), x.device);
  const dst = view(buf, [Nb, H, W, C], contiguousStrides([Nb, H, W, C]), 0);
  const src = view(x, [Nb, H, W, C], [x.strides[0], x.strides[2], x.strides[3], x.strides[1]], x.offset);
  if (src.size > 0) stridedCopy(dst, src);  // converts half to float32
  const padRow = view(buf, [D], [1], (V - 1) * D);
  if (D > 0) fillInPlace(padRow, padValue);
  for (const t of [dst, src, padRow]) t.dispose();
  return buf;
}

/**
 * The gradient of a gather from channelsLastRows(x): g's rows of D elements scatter-added into the
 * V rows of that buffer, which (its pad row dropped) is read back in x's layout.
 */
function rowsToInput(g: Tensor, idx: Tensor, x: Tensor, D: number, V: number): Tensor {
  const [Nb, C, H, W] = x.shape;
  const wide = wideOf(g.dtype);
  const gs = g.dtype === wide ? contig(g) : cast(g, wide);
  const acc = empty([V * D], wide, g.device);
  if (idx.size * D > 0) embeddingCall(gs, idx, acc, V, D, true);
  else fillInPlace(acc, 0);
  if (gs !== g) gs.dispose();
  const gx = empty(x.shape.slice(), x.dtype, x.device);
  const nhwc = view(acc, [Nb, C, H, W], [H * W * C, 1, W * C, C], 0);
  if (gx.size > 0) stridedCopy(gx, nhwc);
  nhwc.dispose();
  acc.dispose();
  return gx;
}

/**
 * Gathers rows of C / G channels of x at the window positions `pos` into outShape (whose product is
 * pos.length * C / G); padding taps read padValue. The gradient scatter-adds back (col2im).
 */
function unfoldRows(op: string, x: Tensor, G: number, pos: Int32Array, outShape: number[], padValue: number): Tensor {
  const D = x.shape[1] / G;
  const V = x.shape[0] * x.shape[2] * x.shape[3] * G + 1;
  const buf = channelsLastRows(x, G, padValue);
  const idx = upload(pos, x);
  const wide = empty(outShape, buf.dtype, x.device);
  if (idx.size * D > 0) embeddingCall(buf, idx, wide, V, D, false);
  buf.dispose();
  let out = wide;
  if (wide.dtype !== x.dtype) {
    out = cast(wide, x.dtype);
    wide.dispose();
  }
  record(out, op, [x], (g) => [rowsToInput(g, idx, x, D, V)]);
  if (!out._node) idx.dispose();
  return out;
}

// ---------------------------------------------------------------- native im2col / col2im (kernels/cpu/conv.h)

/** Top / left padding only: the bottom and right follow from Ho and Wo. */
interface ColumnGeometry {
  N: number; C: number; H: number; W: number; kH: number; kW: number; sH: number; sW: number;
  pH: number; pW: number; dH: number; dW: number; Ho: number; Wo: number;
}

function columnsCall(backward: boolean, src: Tensor, dst: Tensor, g: ColumnGeometry, padValue: number): void {
  const v = [g.N, g.C, g.H, g.W, g.kH, g.kW, g.sH, g.sW, g.pH, g.pW, g.dH, g.dW, g.Ho, g.Wo, padValue];
  for (let i = 0; i < v.length; i++) A[i] = v[i];
  if (backward) N.col2im(arg(16, src), arg(19, dst));
  else N.im2col(arg(16, src), arg(19, dst));
}

/** The adjoint of im2colOp: column gradients [N, C, kH, kW, Ho, Wo] summed back into x's shape. */
function col2imOp(g: Tensor, x: Tensor, geom: ColumnGeometry): Tensor {
  const wide = wideOf(g.dtype);
  const gs = g.dtype === wide ? contig(g) : cast(g, wide);
  const dx = empty(x.shape.slice(), wide, x.device);
  if (dx.size > 0) {
    if (gs.size > 0) columnsCall(true, gs, dx, geom, 0);
    else fillInPlace(dx, 0);
  }
  if (gs !== g) gs.dispose();
  if (wide === x.dtype) return dx;
  const out = cast(dx, x.dtype);
  dx.dispose();
  return out;
}

/**
 * x [N, C, H, W] (NCHW, read in place) unfolded to cols [N, C kH kW, Ho Wo] in one native pass;
 * padding taps read padValue. The half dtypes go through float32. The gradient is col2im.
 */
function im2colOp(op: string, x: Tensor, geom: ColumnGeometry, padValue: number): Tensor {
  const wide = wideOf(x.dtype);
  const xs = x.dtype === wide ? contig(x) : cast(x, wide);
  const cols = empty([geom.N, geom.C * geom.kH * geom.kW, geom.Ho * geom.Wo], wide, x.device);
  if (cols.size > 0) columnsCall(false, xs, cols, geom, padValue);
  if (xs !== x) xs.dispose();
  let out = cols;
  if (wide !== x.dtype) {
    out = cast(cols, x.dtype);
    cols.dispose();
  }
  return record(out, op, [x], (g) => [col2imOp(g, x, geom)]);
}

// ---------------------------------------------------------------- conv2d, conv1d

/**
 * torch.nn.functional.conv2d: x [N, Cin, H, W], weight [Cout, Cin / groups, kH, kW], bias [Cout] or
 * null; stride, padding ('same' needs stride 1; an odd total pads one more at the end, as PyTorch)
 * and dilation are numbers or [h, w] pairs. Out [N, Cout, Ho, Wo].
 */
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, opts: Conv2dOptions = {}): Tensor {
  const op = 'conv2d';
  checkTensor(op, x);
  checkTensor(op, weight, 'weight');
  sameDevice(op, x, weight);
  if (bias !== null && bias !== undefined) {
    checkTensor(op, bias, 'bias');
    sameDevice(op, x, bias);
  }
  const shapes = `input ${shapeStr(x.shape)}, weight ${shapeStr(weight.shape)}${bias ? `, bias ${shapeStr(bias.shape)}` : ''}`;
  if (x.ndim !== 4) throw new KilnError('SHAPE_MISMATCH', `${op}: input must be 4-D [N, C, H, W], got ${shapes}`);
  if (weight.ndim !== 4) throw new KilnError('SHAPE_MISMATCH', `${op}: weight must be 4-D [Cout, Cin / groups, kH, kW], got ${shapes}`);
  needFloatInput(op, x, 'input');
  needFloatInput(op, weight, 'weight');
  if (weight.dtype !== x.dtype || (bias && bias.dtype !== x.dtype))
    throw new KilnError('DTYPE_MISMATCH', `${op}: input ${x.dtype}, weight ${weight.dtype}${bias ? `, bias ${bias.dtype}` : ''} must have one dtype (${shapes})`);
  const G = opts.groups ?? 1;
  if (!Number.isInteger(G) || G < 1) throw new KilnError('INVALID_ARGUMENT', `${op}: groups must be a positive integer, got ${G} (${shapes})`);
  const [Nb, Cin, H, W] = x.shape;
  const [Cout, Cg, kH, kW] = weight.shape;
  if (Cin % G !== 0 || Cout % G !== 0)
    throw new KilnError('SHAPE_MISMATCH', `${op}: input channels ${Cin} and output channels ${Cout} must both be divisible by groups ${G} (${shapes})`);
  if (Cg * G !== Cin)
    throw new KilnError('SHAPE_MISMATCH', `${op}: input has ${Cin} channels but weight expects ${Cg * G} (${Cg} per group x ${G} groups) (${shapes})`);
  if (kH < 1 || kW < 1 || Cout < 1) throw new KilnError('SHAPE_MISMATCH', `${op}: weight must have non-empty kernel and output channels (${shapes})`);
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== Cout))
    throw new KilnError('SHAPE_MISMATCH', `${op}: bias must be [${Cout}] (${shapes})`);
  const [sH, sW] = pair(op, 'stride', opts.stride ?? 1, 1, x);
  const [dH, dW] = pair(op, 'dilation', opts.dilation ?? 1, 1, x);
  let pads: [number, number, number, number];  // top, bottom, left, right
  const padding = opts.padding ?? 0;
  if (padding === 'valid') pads = [0, 0, 0, 0];
  else if (padding === 'same') {
    if (sH !== 1 || sW !== 1) throw new KilnError('INVALID_ARGUMENT', `${op}: padding 'same' needs stride 1, got [${sH}, ${sW}] (${shapes})`);
    const th = dH * (kH - 1), tw = dW * (kW - 1);
    pads = [th >> 1, th - (th >> 1), tw >> 1, tw - (tw >> 1)];
  } else {
    const [pH, pW] = pair(op, 'padding', padding, 0, x);
    pads = [pH, pH, pW, pW];
  }
  const Ho = outSize(op, x, weight, H, kH, sH, pads[0] + pads[1], dH, 'height');
  const Wo = outSize(op, x, weight, W, kW, sW, pads[2] + pads[3], dW, 'width');
  const geom: ColumnGeometry = { N: Nb, C: Cin, H, W, kH, kW, sH, sW, pH: pads[0], pW: pads[2], dH, dW, Ho, Wo };
  const L = Ho * Wo, Kg = Cg * kH * kW, Coutg = Cout / G;
  const made: Tensor[] = [];
  const keep = <T extends Tensor>(t: T): T => (made.push(t), t);
  // out[n, g] = weight[g] as [Cout / G, Kg] @ cols[n, g] as [Kg, L]: the product is already NCHW.
  const cols = keep(im2colOp(op, x, geom, 0));
  const c4 = keep(reshape(cols, G === 1 ? [Nb, Kg, L] : [Nb, G, Kg, L]));
  let wm = keep(reshape(weight, G === 1 ? [Cout, Kg] : [G, Coutg, Kg]));
  // A [G] weight batch against [N, G] does not collapse to one GEMM batch stride: expand it first.
  if (G > 1 && Nb > 1) wm = keep(contiguous(keep(expand(wm, [Nb, G, Coutg, Kg]))));
  const y = keep(matmul(wm, c4));
  const y4 = keep(reshape(y, [Nb, Cout, Ho, Wo]));
  if (!bias) return releaseMade(y4, made, [x, weight, bias]);
  const b3 = keep(reshape(bias, [Cout, 1, 1]));
  return releaseMade(add(y4, b3), made, [x, weight, bias]);
}

/**
 * torch.nn.functional.conv1d: x [N, Cin, L], weight [Cout, Cin / groups, k], bias [Cout] or null.
 * Runs as conv2d over a height of 1.
 */
export function conv1d(x: Tensor, weight: Tensor, bias: Tensor | null = null, opts: Conv1dOptions = {}): Tensor {
  const op = 'conv1d';
  checkTensor(op, x);
  checkTensor(op, weight, 'weight');
  if (x.ndim !== 3) throw new KilnError('SHAPE_MISMATCH', `${op}: input must be 3-D [N, C, L], got ${shapeStr(x.shape)} (weight ${shapeStr(weight.shape)})`);
  if (weight.ndim !== 3) throw new KilnError('SHAPE_MISMATCH', `${op}: weight must be 3-D [Cout, Cin / groups, k], got ${shapeStr(weight.shape)} (input ${shapeStr(x.shape)})`);
  const one = (name: string, v: unknown, min: number) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
      throw new KilnError('INVALID_ARGUMENT', `${op}: ${name} must be an integer >= ${min}, got ${JSON.stringify(v)} for input ${shapeStr(x.shape)}`);
    return v;
  };
  const p = opts.padding ?? 0;
  const padding: Conv2dOptions['padding'] = p === 'same' || p === 'valid' ? p : [0, one('padding', p, 0)];
  const x4 = reshape(x, [x.shape[0], x.shape[1], 1, x.shape[2]]);
  const w4 = reshape(weight, [weight.shape[0], weight.shape[1], 1, weight.shape[2]]);
  const made = [x4, w4];
  try {
    const y = conv2d(x4, w4, bias, { stride: [1, one('stride', opts.stride ?? 1, 1)], dilation: [1, one('dilation', opts.dilation ?? 1, 1)], padding, groups: opts.groups });
    made.push(y);
    return releaseMade(reshape(y, [y.shape[0], y.shape[1], y.shape[3]]), made, [x, weight, bias]);
  } catch (e) {
    for (const t of made) t.dispose();
    if (!(e instanceof KilnError) || !e.message.startsWith('conv2d:')) throw e;
    throw new KilnError(e.code, `${op}: input ${shapeStr(x.shape)}, weight ${shapeStr(weight.shape)} (run as conv2d over a height of 1):${e.message.slice(7)}`);
  }
}

// ---------------------------------------------------------------- pooling

/** A 3-D [C, H, W] input as [1, C, H, W] (PyTorch's unbatched form); the result is squeezed back. */
function batched(op: string, x: Tensor, fn: (x4: Tensor) => Tensor): Tensor {
  checkTensor(op, x);
  needFloatInput(op, x, 'input');
  if (x.ndim === 4) return fn(x);
  if (x.ndim !== 3) throw new KilnError('SHAPE_MISMATCH', `${op}: input must be [N, C, H, W] or [C, H, W], got ${shapeStr(x.shape)}`);
  const x4 = reshape(x, [1, ...x.shape]);
  const y = fn(x4);
  return releaseMade(reshape(y, y.shape.slice(1)), [x4, y], [x]);
}

function poolWindows(op: string, x: Tensor, kernel: Pair, stride: Pair | undefined, padding: Pair, dilation: Pair): Windows {
  const [kH, kW] = pair(op, 'kernel size', kernel, 1, x);
  const [sH, sW] = pair(op, 'stride', stride ?? [kH, kW], 1, x);
  const [pH, pW] = pair(op, 'padding', padding, 0, x);
  const [dH, dW] = pair(op, 'dilation', dilation, 1, x);
  if (2 * pH > dH * (kH - 1) + 1 || 2 * pW > dW * (kW - 1) + 1)
    throw new KilnError('INVALID_ARGUMENT', `${op}: padding [${pH}, ${pW}] must be at most half the kernel span [${dH * (kH - 1) + 1}, ${dW * (kW - 1) + 1}] (input ${shapeStr(x.shape)})`);
  const [, , H, W] = x.shape;
  const Ho = outSize(op, x, null, H, kH, sH, 2 * pH, dH, 'height');
  const Wo = outSize(op, x, null, W, kW, sW, 2 * pW, dW, 'width');
  return {
    key: `pool ${kH},${kW},${sH},${sW},${pH},${pW},${dH},${dW}`, Ho, Wo, kH, kW,
    rows: convTaps(H, Ho, kH, sH, pH, dH), cols: convTaps(W, Wo, kW, sW, pW, dW),
  };
}

/**
 * torch.nn.functional.max_pool2d over x [N, C, H, W] (or [C, H, W]); padding reads -Infinity. The
 * gradient goes to the window's maximum (the first one on ties, a NaN if there is one, as PyTorch).
 */
export function maxPool2d(x: Tensor, kernel: Pair, opts: MaxPool2dOptions = {}): Tensor {
  return batched('maxPool2d', x, (x4) => {
    const win = poolWindows('maxPool2d', x4, kernel, opts.stride, opts.padding ?? 0, opts.dilation ?? 1);
    const [Nb, C, H, W] = x4.shape;
    const { Ho, Wo } = win, kk = win.kH * win.kW, R = Nb * Ho * Wo;
    const pos = positions('maxPool2d', x4, 1, win);
    const buf = channelsLastRows(x4, 1, -Infinity);
    const V = Nb * H * W + 1;
    const idx = upload(pos, x4);
    // Which tap holds each (window, channel)'s maximum, then that element's flat position in buf,
    // laid out [N, C, Ho, Wo] so that one element gather gives the output in place.
    const colsT = empty([R, kk, C], buf.dtype, x4.device);
    if (R * kk * C > 0) embeddingCall(buf, idx, colsT, V, C, false);
    const tap = argmax(colsT, 1);  // [R, C]
    colsT.dispose();
    const flatHost = new Int32Array(R * C);
    const tapHost = tap.dataSync() as Int32Array;
    tap.dispose();
    idx.dispose();
    const L = Ho * Wo;
    for (let n = 0, q = 0; n < Nb; n++)
      for (let c = 0; c < C; c++)
        for (let l = 0; l < L; l++) {
          const r = n * L + l;
          flatHost[q++] = pos[r * kk + tapHost[r * C + c]] * C + c;
        }
    const flat = upload(flatHost, x4);
    const wide = empty([Nb, C, Ho, Wo], buf.dtype, x4.device);
    if (R * C > 0) embeddingCall(buf, flat, wide, V * C, 1, false);
    buf.dispose();
    let out = wide;
    if (wide.dtype !== x4.dtype) {
      out = cast(wide, x4.dtype);
      wide.dispose();
    }
    record(out, 'maxPool2d', [x4], (g) => [rowsToInput(g, flat, x4, 1, V * C)]);
    if (!out._node) flat.dispose();
    return out;
  });
}

/** Window sums [N, Ho, Wo, C] times per-position scales [Ho, Wo, 1] (or one scale), as NCHW. */
function windowMean(op: string, x4: Tensor, win: Windows, scale: number | Float64Array): Tensor {
  const [Nb, C] = x4.shape;
  const { Ho, Wo } = win, kk = win.kH * win.kW;
  const pos = positions(op, x4, 1, win);
  const made: Tensor[] = [];
  const cols = unfoldRows(op, x4, 1, pos, [Nb, Ho, Wo, kk, C], 0);
  const s = sum(cols, 3);
  made.push(cols, s);
  let m: Tensor;
  if (typeof scale === 'number') m = mul(s, scale);
  else {
    const sc = fromTyped(x4.dtype === 'float64' ? scale : Float32Array.from(scale), [Ho, Wo, 1], { device: x4.device });
    const sct = sc.dtype === x4.dtype ? sc : cast(sc, x4.dtype);
    if (sct !== sc) made.push(sc);
    made.push(sct);
    m = mul(s, sct);
  }
  const mp = permute(m, [0, 3, 1, 2]);
  made.push(m, mp);
  return releaseMade(contiguous(mp), made, [x4]);
}

/**
 * torch.nn.functional.avg_pool2d over x [N, C, H, W] (or [C, H, W]); with countIncludePad false the
 * divisor counts only the input elements under the window.
 */
export function avgPool2d(x: Tensor, kernel: Pair, opts: AvgPool2dOptions = {}): Tensor {
  return batched('avgPool2d', x, (x4) => {
    const win = poolWindows('avgPool2d', x4, kernel, opts.stride, opts.padding ?? 0, 1);
    const kk = win.kH * win.kW;
    const [sH, sW] = pair('avgPool2d', 'stride', opts.stride ?? [win.kH, win.kW], 1, x4);
    const [pH, pW] = pair('avgPool2d', 'padding', opts.padding ?? 0, 0, x4);
    const [Nb, C, H, W] = x4.shape, { Ho, Wo } = win;
    const geom: ColumnGeometry = { N: Nb, C, H, W, kH: win.kH, kW: win.kW, sH, sW, pH, pW, dH: 1, dW: 1, Ho, Wo };
    return columnMean('avgPool2d', x4, geom, (opts.countIncludePad ?? true) ? 1 / kk : windowScales(win));
  });
}

/** Window means from native columns: cols [N, C, kH kW, Ho Wo] summed over the taps, times the scales. */
function columnMean(op: string, x4: Tensor, geom: ColumnGeometry, scale: number | Float64Array): Tensor {
  const { N: Nb, C, Ho, Wo } = geom, kk = geom.kH * geom.kW;
  const made: Tensor[] = [];
  const keep = <T extends Tensor>(t: T): T => (made.push(t), t);
  const cols = keep(im2colOp(op, x4, geom, 0));
  const c4 = keep(reshape(cols, [Nb, C, kk, Ho * Wo]));
  const s = keep(sum(c4, 2));
  let m: Tensor;
  if (typeof scale === 'number') m = keep(mul(s, scale));
  else {
    const sc = keep(fromTyped(x4.dtype === 'float64' ? scale : Float32Array.from(scale), [Ho * Wo], { device: x4.device }));
    m = keep(mul(s, sc.dtype === x4.dtype ? sc : keep(cast(sc, x4.dtype))));
  }
  return releaseMade(reshape(m, [Nb, C, Ho, Wo]), made, [x4]);
}

/** 1 / (the number of input elements under each output's window), [Ho, Wo]. */
function windowScales(win: Windows): Float64Array {
  const count = (taps: Int32Array, o: number, k: number) => {
    let c = 0;
    for (let t = 0; t < k; t++) if (taps[o * k + t] >= 0) c++;
    return c;
  };
  const sc = new Float64Array(win.Ho * win.Wo);
  for (let oh = 0; oh < win.Ho; oh++)
    for (let ow = 0; ow < win.Wo; ow++) sc[oh * win.Wo + ow] = 1 / (count(win.rows, oh, win.kH) * count(win.cols, ow, win.kW));
  return sc;
}

/**
 * torch.nn.functional.adaptive_avg_pool2d: x [N, C, H, W] (or [C, H, W]) averaged over the windows
 * [floor(i H / Ho), ceil((i + 1) H / Ho)) (likewise for width) into [.., Ho, Wo].
 */
export function adaptiveAvgPool2d(x: Tensor, outputSize: Pair): Tensor {
  return batched('adaptiveAvgPool2d', x, (x4) => {
    const [Ho, Wo] = pair('adaptiveAvgPool2d', 'output size', outputSize, 1, x4);
    const [, , H, W] = x4.shape;
    if (H < 1 || W < 1) throw new KilnError('SHAPE_MISMATCH', `adaptiveAvgPool2d: input ${shapeStr(x.shape)} has an empty spatial dim`);
    const r = adaptiveTaps(H, Ho), c = adaptiveTaps(W, Wo);
    const win: Windows = { key: `adaptive ${Ho},${Wo}`, Ho, Wo, kH: r.k, kW: c.k, rows: r.taps, cols: c.taps };
    return windowMean('adaptiveAvgPool2d', x4, win, windowScales(win));
  });
}

// ---------------------------------------------------------------- pad

/**
 * torch.nn.functional.pad, constant mode: pads = [lastLo, lastHi, prevLo, prevHi, ...] pairs from the
 * last dimension backwards; negative amounts crop. New elements are `value`.
 */
export function pad(x: Tensor, pads: number[], value = 0): Tensor {
  checkTensor('pad', x);
  if (!Array.isArray(pads) || pads.length % 2 !== 0 || pads.length > 2 * x.ndim || pads.some((p) => !Number.isInteger(p)))
    throw new KilnError('INVALID_ARGUMENT', `pad: pads must be an even number (at most ${2 * x.ndim}) of integers, got ${JSON.stringify(pads)} for ${shapeStr(x.shape)}`);
  const lo = x.shape.map(() => 0), hi = x.shape.map(() => 0);
  for (let i = 0; i < pads.length / 2; i++) {
    const d = x.ndim - 1 - i;
    lo[d] = pads[2 * i];
    hi[d] = pads[2 * i + 1];
    if (x.shape[d] + lo[d] + hi[d] < 0)
      throw new KilnError('SHAPE_MISMATCH', `pad: padding [${lo[d]}, ${hi[d]}] of dimension ${d} leaves a negative size for ${shapeStr(x.shape)}`);
  }
  // Cropping first (negative amounts), as views with their gradients.
  const made: Tensor[] = [];
  let c = x;
  for (let d = 0; d < x.ndim; d++) {
    if (lo[d] >= 0 && hi[d] >= 0) continue;
    const a = Math.max(0, -lo[d]), b = Math.max(0, -hi[d]);
    c = narrow(c, d, Math.min(a, c.shape[d]), Math.max(0, c.shape[d] - a - b));
    made.push(c);
  }
  const plo = lo.map((v) => Math.max(v, 0)), phi = hi.map((v) => Math.max(v, 0));
  const outShape = c.shape.map((n, d) => n + plo[d] + phi[d]);
  if (x.dtype === 'int32' && !(Number.isInteger(value)))
    throw new KilnError('INVALID_ARGUMENT', `pad: value ${value} for an int32 input ${shapeStr(x.shape)}`);
  const out = full(outShape, value, x.dtype, x.device);
  const strides = contiguousStrides(outShape);
  const interior = (t: Tensor, st: number[], base: number) => view(t, c.shape.slice(), st, base + plo.reduce((s, p, d) => s + p * st[d], 0));
  const dst = interior(out, strides, 0);
  if (c.size > 0) stridedCopy(dst, c);
  dst.dispose();
  const src = c;
  record(out, 'pad', [src], (g) => {
    const part = interior(g, g.strides, g.offset);
    const gi = contig(part);
    if (gi !== part) part.dispose();
    return [gi];
  });
  return releaseMade(out, made, [x]);
}
