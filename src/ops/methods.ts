// Tensor methods: thin forwards to the ops, so `x.matmul(w).relu()` reads like PyTorch.
import { KilnError } from '../errors.js';
import { backward, type BackwardOptions } from '../tensor/autograd.js';
import { isDType, type Device, type DType } from '../tensor/dtype.js';
import { Tensor } from '../tensor/tensor.js';
import * as ew from './elementwise.js';
import * as red from './reduce.js';
import * as v from './views.js';
import * as nn from './nn.js';
import * as ix from './indexing.js';
import * as mx from './math-extra.js';
import * as sel from './select.js';
import { matmul } from './matmul.js';
import { toDevice } from './device.js';
import type { TensorLike } from './elementwise.js';
import type { Axes } from './reduce.js';

declare module '../tensor/tensor.js' {
  interface Tensor {
    add(o: TensorLike): Tensor;
    sub(o: TensorLike): Tensor;
    mul(o: TensorLike): Tensor;
    div(o: TensorLike): Tensor;
    pow(o: TensorLike): Tensor;
    maximum(o: TensorLike): Tensor;
    minimum(o: TensorLike): Tensor;
    eq(o: TensorLike): Tensor;
    ne(o: TensorLike): Tensor;
    lt(o: TensorLike): Tensor;
    le(o: TensorLike): Tensor;
    gt(o: TensorLike): Tensor;
    ge(o: TensorLike): Tensor;
    neg(): Tensor;
    exp(): Tensor;
    log(): Tensor;
    sqrt(): Tensor;
    rsqrt(): Tensor;
    abs(): Tensor;
    tanh(): Tensor;
    sigmoid(): Tensor;
    relu(): Tensor;
    gelu(approximate?: 'tanh' | 'none'): Tensor;
    square(): Tensor;
    clamp(min?: number, max?: number): Tensor;
    maskedFill(mask: Tensor, value: number): Tensor;
    sum(axis?: Axes, keepdims?: boolean): Tensor;
    mean(axis?: Axes, keepdims?: boolean): Tensor;
    max(axis?: Axes, keepdims?: boolean): Tensor;
    min(axis?: Axes, keepdims?: boolean): Tensor;
    logsumexp(axis?: Axes, keepdims?: boolean): Tensor;
    argmax(axis?: number, keepdims?: boolean): Tensor;
    argmin(axis?: number, keepdims?: boolean): Tensor;
    matmul(o: Tensor): Tensor;
    softmax(axis?: number): Tensor;
    logSoftmax(axis?: number): Tensor;
    reshape(shape: number[]): Tensor;
    view(shape: number[]): Tensor;
    permute(dims: number[]): Tensor;
    transpose(dim0?: number, dim1?: number): Tensor;
    readonly T: Tensor;
    expand(shape: number[]): Tensor;
    narrow(axis: number, start: number, length: number): Tensor;
    slice(axis: number, start?: number, end?: number): Tensor;
    squeeze(axis?: number): Tensor;
    unsqueeze(axis: number): Tensor;
    flatten(startDim?: number, endDim?: number): Tensor;
    contiguous(): Tensor;
    clone(): Tensor;
    detach(): Tensor;
    /** Moves to a device or converts to a dtype. */
    to(target: Device | DType): Tensor;
    float(): Tensor;
    int(): Tensor;
    cumsum(axis: number): Tensor;
    topk(k: number, largest?: boolean): { values: Tensor; indices: Tensor };
    backward(grad?: Tensor, opts?: BackwardOptions): void;
    requiresGrad_(on?: boolean): Tensor;
  }
}

const P = Tensor.prototype;
P.add = function (o) { return ew.add(this, o); };
P.sub = function (o) { return ew.sub(this, o); };
P.mul = function (o) { return ew.mul(this, o); };
P.div = function (o) { return ew.div(this, o); };
P.pow = function (o) { return ew.pow(this, o); };
P.maximum = function (o) { return ew.maximum(this, o); };
P.minimum = function (o) { return ew.minimum(this, o); };
P.eq = function (o) { return ew.eq(this, o); };
P.ne = function (o) { return ew.ne(this, o); };
P.lt = function (o) { return ew.lt(this, o); };
P.le = function (o) { return ew.le(this, o); };
P.gt = function (o) { return ew.gt(this, o); };
P.ge = function (o) { return ew.ge(this, o); };
P.neg = function () { return ew.neg(this); };
P.exp = function () { return ew.exp(this); };
P.log = function () { return ew.log(this); };
P.sqrt = function () { return ew.sqrt(this); };
P.rsqrt = function () { return ew.rsqrt(this); };
P.abs = function () { return ew.abs(this); };
P.tanh = function () { return ew.tanh(this); };
P.sigmoid = function () { return ew.sigmoid(this); };
P.relu = function () { return ew.relu(this); };
P.gelu = function (a) { return ew.gelu(this, a); };
P.square = function () { return ew.square(this); };
P.clamp = function (lo, hi) { return ew.clamp(this, lo, hi); };
P.maskedFill = function (m, val) { return ew.maskedFill(this, m, val); };
P.sum = function (a, k) { return red.sum(this, a, k); };
P.mean = function (a, k) { return red.mean(this, a, k); };
P.max = function (a, k) { return red.max(this, a, k); };
P.min = function (a, k) { return red.min(this, a, k); };
P.logsumexp = function (a, k) { return red.logsumexp(this, a, k); };
P.argmax = function (a, k) { return red.argmax(this, a, k); };
P.argmin = function (a, k) { return red.argmin(this, a, k); };
P.matmul = function (o) { return matmul(this, o); };
P.softmax = function (a) { return nn.softmax(this, a); };
P.logSoftmax = function (a) { return nn.logSoftmax(this, a); };
P.reshape = function (s) { return v.reshape(this, s); };
P.view = function (s) {
  if (!this.isContiguous()) throw new KilnError('INVALID_ARGUMENT', 'view: the tensor is not contiguous (use reshape)');
  return v.reshape(this, s);
};
P.permute = function (d) { return v.permute(this, d); };
P.transpose = function (a, b) { return v.transpose(this, a, b); };
Object.defineProperty(P, 'T', { get(this: Tensor) { return v.permute(this, [...Array(this.ndim).keys()].reverse()); } });
P.expand = function (s) { return v.expand(this, s); };
P.narrow = function (a, s, l) { return v.narrow(this, a, s, l); };
P.slice = function (a, s, e) { return v.slice(this, a, s, e); };
P.squeeze = function (a) { return v.squeeze(this, a); };
P.unsqueeze = function (a) { return v.unsqueeze(this, a); };
P.flatten = function (s, e) { return v.flatten(this, s, e); };
P.contiguous = function () { return v.contiguous(this); };
P.clone = function () { return v.clone(this); };
P.detach = function () { return v.detach(this); };
P.to = function (target) { return isDType(target) ? ew.toDType(this, target) : toDevice(this, target); };
P.float = function () { return ew.toDType(this, 'float32'); };
P.int = function () { return ew.toDType(this, 'int32'); };
P.cumsum = function (a) { return ix.cumsum(this, a); };
P.topk = function (k, l) { return ix.topk(this, k, l); };
P.backward = function (g, o) { backward(this, g, o); };
P.requiresGrad_ = function (on = true) {
  if (on && this.dtype === 'int32') throw new KilnError('DTYPE_MISMATCH', 'requiresGrad needs a float tensor, got int32');
  this.requiresGrad = on;
  return this;
};

// select.ts methods
declare module '../tensor/tensor.js' {
  interface Tensor {
    gather(dim: number, index: Tensor): Tensor;
    indexSelect(dim: number, index: Tensor): Tensor;
    scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor;
    sort(dim?: number, descending?: boolean): { values: Tensor; indices: Tensor };
    argsort(dim?: number, descending?: boolean): Tensor;
    /** x.flip(0, 1) or x.flip([0, 1]). */
    flip(...dims: number[] | [number[]]): Tensor;
    roll(shifts: number | number[], dims?: number | number[]): Tensor;
    tril(diagonal?: number): Tensor;
    triu(diagonal?: number): Tensor;
    /** x.repeat(2, 3) or x.repeat([2, 3]). */
    repeat(...reps: number[] | [number[]]): Tensor;
    chunk(chunks: number, dim?: number): Tensor[];
    any(dim?: Axes, keepdim?: boolean): Tensor;
    all(dim?: Axes, keepdim?: boolean): Tensor;
  }
}
const listArg = (xs: number[] | [number[]]): number[] => (Array.isArray(xs[0]) ? xs[0] : (xs as number[]));
P.gather = function (d, i) { return sel.gather(this, d, i); };
P.indexSelect = function (d, i) { return sel.indexSelect(this, d, i); };
P.scatterAdd = function (d, i, s) { return sel.scatterAdd(this, d, i, s); };
P.sort = function (d, desc) { return sel.sort(this, d, desc); };
P.argsort = function (d, desc) { return sel.argsort(this, d, desc); };
P.flip = function (...d) { return sel.flip(this, listArg(d)); };
P.roll = function (s, d) { return sel.roll(this, s, d); };
P.tril = function (k) { return sel.tril(this, k); };
P.triu = function (k) { return sel.triu(this, k); };
P.repeat = function (...r) { return sel.repeat(this, listArg(r)); };
P.chunk = function (c, d) { return sel.chunk(this, c, d); };
P.any = function (d, k) { return sel.any(this, d, k); };
P.all = function (d, k) { return sel.all(this, d, k); };

// math-extra.ts methods
declare module '../tensor/tensor.js' {
  interface Tensor {
    var(dims?: Axes, opts?: mx.VarianceOptions): Tensor;
    std(dims?: Axes, opts?: mx.VarianceOptions): Tensor;
    prod(dims?: Axes, keepdim?: boolean): Tensor;
    norm(p?: number | 'fro', dims?: Axes, keepdim?: boolean): Tensor;
    erf(): Tensor;
    silu(): Tensor;
    softplus(beta?: number, threshold?: number): Tensor;
    sin(): Tensor;
    cos(): Tensor;
    reciprocal(): Tensor;
    log1p(): Tensor;
    expm1(): Tensor;
    sign(): Tensor;
    floor(): Tensor;
    double(): Tensor;
  }
}
P.var = function (d, o) { return mx.variance(this, d, o); };
P.std = function (d, o) { return mx.std(this, d, o); };
P.prod = function (d, k) { return mx.prod(this, d, k); };
P.norm = function (p, d, k) { return mx.norm(this, p, d, k); };
P.erf = function () { return mx.erf(this); };
P.silu = function () { return mx.silu(this); };
P.softplus = function (b, t) { return mx.softplus(this, b, t); };
P.sin = function () { return ew.sin(this); };
P.cos = function () { return ew.cos(this); };
P.reciprocal = function () { return ew.reciprocal(this); };
P.log1p = function () { return ew.log1p(this); };
P.expm1 = function () { return ew.expm1(this); };
P.sign = function () { return ew.sign(this); };
P.floor = function () { return ew.floor(this); };
P.double = function () { return ew.toDType(this, 'float64'); };
