// The basic layers: Linear, Embedding, LayerNorm, BatchNorm1d, Dropout, activations, Sequential and MLP.
// Default initialisations follow PyTorch's, so a freshly built layer behaves like its torch twin.
import { internal, noGrad } from '../tensor/autograd.js';
import { KilnError, shapeStr } from '../errors.js';
import type { Device, DType } from '../tensor/dtype.js';
import { Tensor } from '../tensor/tensor.js';
import { arange, ones, rand, randn, zeros } from '../ops/creation.js';
import { add, gelu, mul, relu, rsqrt, sub, tanh } from '../ops/elementwise.js';
import { mean } from '../ops/reduce.js';
import { dropout, embedding, layerNorm } from '../ops/nn.js';
import { linear, rmsNorm } from './functional.js';
import { logSigmoid, mish, silu, softplus } from '../ops/math-extra.js';
import { flatten } from '../ops/views.js';
import { adaptiveAvgPool2d, avgPool2d, conv1d, conv2d, maxPool2d, type AvgPool2dOptions, type Conv1dOptions, type Conv2dOptions, type MaxPool2dOptions, type Pair } from '../ops/conv.js';
import { buffer, copyInto, Module, parameter } from './module.js';

export interface LayerOptions {
  dtype?: DType;
  device?: Device;
}

export function checkDim(layer: string, name: string, n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new KilnError('INVALID_ARGUMENT', `${layer}: ${name} must be a positive integer, got ${n}`);
}

/** A model's config: an object whose listed fields are positive integers. */
export function checkConfig<C>(model: string, config: C, dims: (keyof C & string)[]): C {
  if (typeof config !== 'object' || config === null)
    throw new KilnError('INVALID_ARGUMENT', `${model}: needs a config object, got ${config === null ? 'null' : typeof config}`);
  for (const k of dims) checkDim(model, k, config[k] as number);
  return config;
}

export class Linear extends Module {
  weight: Tensor;
  bias: Tensor | null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: LayerOptions & { bias?: boolean } = {}) {
    super();
    checkDim('Linear', 'inFeatures', inFeatures);
    checkDim('Linear', 'outFeatures', outFeatures);
    const bound = 1 / Math.sqrt(inFeatures);
    const o = { dtype: opts.dtype ?? 'float32', device: opts.device ?? 'cpu', low: -bound, high: bound } as const;
    this.weight = parameter(rand([outFeatures, inFeatures], o));
    this.bias = opts.bias === false ? null : parameter(rand([outFeatures], o));
  }
  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}

export class Embedding extends Module {
  weight: Tensor;
  constructor(readonly numEmbeddings: number, readonly embeddingDim: number, opts: LayerOptions = {}) {
    super();
    checkDim('Embedding', 'numEmbeddings', numEmbeddings);
    checkDim('Embedding', 'embeddingDim', embeddingDim);
    this.weight = parameter(randn([numEmbeddings, embeddingDim], { dtype: opts.dtype ?? 'float32', device: opts.device ?? 'cpu' }));
  }
  forward(indices: Tensor): Tensor {
    return embedding(this.weight, indices);
  }
  /** Rows 0 .. T-1 [T, embeddingDim] (learned position embeddings), looked up on the weight's device. */
  positions(T: number): Tensor {
    return embedding(this.weight, arange(0, T, 1, { device: this.weight.device }));
  }
}

/** A normalizedShape (a number or a non-empty array of positive integers) as an array. */
export function trailingShape(layer: string, normalizedShape: number | readonly number[]): number[] {
  const shape = typeof normalizedShape === 'number' ? [normalizedShape] : Array.isArray(normalizedShape) ? normalizedShape.slice() : null;
  if (!shape || shape.length === 0)
    throw new KilnError('INVALID_ARGUMENT', `${layer}: normalizedShape must be a positive integer or a non-empty array of them, got ${JSON.stringify(normalizedShape)}`);
  for (const d of shape) checkDim(layer, 'normalizedShape', d);
  return shape;
}

export class LayerNorm extends Module {
  weight: Tensor | null;
  bias: Tensor | null;
  /** normalizedShape: the trailing dimensions to normalise (a number means the last one), as PyTorch. */
  constructor(readonly normalizedShape: number | number[], opts: LayerOptions & { eps?: number; elementwiseAffine?: boolean; bias?: boolean } = {}) {
    super();
    const shape = trailingShape('LayerNorm', normalizedShape);
    this.eps = opts.eps ?? 1e-5;
    const o = { dtype: opts.dtype ?? 'float32', device: opts.device ?? 'cpu' } as const;
    const affine = opts.elementwiseAffine ?? true;
    this.weight = affine ? parameter(ones(shape, o)) : null;
    this.bias = affine && opts.bias !== false ? parameter(zeros(shape, o)) : null;
  }
  readonly eps: number;
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}

/**
 * Batch normalisation over the rows of [N, C] features (PyTorch's BatchNorm1d): in training mode
 * each feature is normalised by the batch mean and biased variance, and the running statistics move
 * by `momentum` toward them (the variance unbiased, as torch does); in eval mode the running
 * statistics are used. Built from differentiable ops, so the gradient flows through the batch
 * statistics.
 */
export class BatchNorm1d extends Module {
  weight: Tensor | null;
  bias: Tensor | null;
  runningMean: Tensor;
  runningVar: Tensor;
  readonly eps: number;
  readonly momentum: number;
  constructor(readonly numFeatures: number, opts: LayerOptions & { eps?: number; momentum?: number; affine?: boolean } = {}) {
    super();
    checkDim('BatchNorm1d', 'numFeatures', numFeatures);
    this.eps = opts.eps ?? 1e-5;
    this.momentum = opts.momentum ?? 0.1;
    if (!(this.eps > 0)) throw new KilnError('INVALID_ARGUMENT', `BatchNorm1d: eps must be > 0, got ${this.eps}`);
    if (!(this.momentum >= 0 && this.momentum <= 1)) throw new KilnError('INVALID_ARGUMENT', `BatchNorm1d: momentum must be in [0, 1], got ${this.momentum}`);
    const o = { dtype: opts.dtype ?? 'float32', device: opts.device ?? 'cpu' } as const;
    const affine = opts.affine ?? true;
    this.weight = affine ? parameter(ones([numFeatures], o)) : null;
    this.bias = affine ? parameter(zeros([numFeatures], o)) : null;
    this.runningMean = buffer(zeros([numFeatures], o));
    this.runningVar = buffer(ones([numFeatures], o));
  }
  forward(x: Tensor): Tensor {
    const C = this.numFeatures;
    if (!(x instanceof Tensor) || x.ndim !== 2 || x.shape[1] !== C)
      throw new KilnError('SHAPE_MISMATCH', `BatchNorm1d: input must be [N, ${C}], got ${x instanceof Tensor ? shapeStr(x.shape) : typeof x}`);
    let y: Tensor;
    if (this.training) {
      const n = x.shape[0];
      if (n < 2) throw new KilnError('SHAPE_MISMATCH', `BatchNorm1d: training needs more than one row per feature, got ${shapeStr(x.shape)}`);
      const mu = mean(x, 0, true);
      const xc = sub(x, mu);
      const v = mean(mul(xc, xc), 0, true);
      y = mul(xc, rsqrt(add(v, this.eps)));
      const m = this.momentum;
      noGrad(() => {
        const nm = add(mul(this.runningMean, 1 - m), mul(mu.detach().reshape([C]), m));
        const nv = add(mul(this.runningVar, 1 - m), mul(v.detach().reshape([C]), (m * n) / (n - 1)));
        copyInto(this.runningMean, nm);
        copyInto(this.runningVar, nv);
        nm.dispose();
        nv.dispose();
      });
    } else {
      y = mul(sub(x, this.runningMean), rsqrt(add(this.runningVar, this.eps)));
    }
    if (this.weight) y = mul(y, this.weight);
    if (this.bias) y = add(y, this.bias);
    return y;
  }
}

export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
    if (!(p >= 0 && p <= 1)) throw new KilnError('INVALID_ARGUMENT', `Dropout: p must be in [0, 1], got ${p}`);
  }
  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training);
  }
}

export class GELU extends Module {
  /** approximate 'tanh' is GPT-2's gelu; 'none' is the exact erf form (PyTorch's default). */
  constructor(readonly approximate: 'tanh' | 'none' = 'none') {
    super();
  }
  forward(x: Tensor): Tensor {
    return gelu(x, this.approximate);
  }
}

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return relu(x);
  }
}

export class Tanh extends Module {
  forward(x: Tensor): Tensor {
    return tanh(x);
  }
}

/** Anything with a forward of one tensor. */
export interface Layer {
  forward(x: Tensor): Tensor;
}

export class Sequential extends Module {
  layers: (Module & Layer)[];
  constructor(...layers: (Module & Layer)[]) {
    super();
    this.layers = layers;
  }
  forward(x: Tensor): Tensor {
    for (const l of this.layers) x = l.forward(x);
    return x;
  }
}

export interface MLPOptions extends LayerOptions {
  /** Hidden width (default 4 * inFeatures, GPT-2's). */
  hidden?: number;
  outFeatures?: number;
  activation?: 'gelu' | 'gelu_tanh' | 'relu' | 'tanh';
  dropout?: number;
  bias?: boolean;
}

/** Two-layer perceptron: cFc -> activation -> cProj -> dropout (GPT-2's names for the two layers). */
export class MLP extends Module {
  cFc: Linear;
  cProj: Linear;
  drop: Dropout;
  readonly activation: NonNullable<MLPOptions['activation']>;
  constructor(inFeatures: number, opts: MLPOptions = {}) {
    super();
    const hidden = opts.hidden ?? 4 * inFeatures;
    const o = { dtype: opts.dtype, device: opts.device, bias: opts.bias };
    this.cFc = new Linear(inFeatures, hidden, o);
    this.cProj = new Linear(hidden, opts.outFeatures ?? inFeatures, o);
    this.drop = new Dropout(opts.dropout ?? 0);
    this.activation = opts.activation ?? 'gelu';
    if (!['gelu', 'gelu_tanh', 'relu', 'tanh'].includes(this.activation))
      throw new KilnError('INVALID_ARGUMENT', `MLP: activation must be gelu, gelu_tanh, relu or tanh, got ${String(this.activation)}`);
  }
  forward(x: Tensor): Tensor {
    let h = internal(this.cFc.forward(x));
    const a = this.activation;
    h = internal(a === 'relu' ? relu(h) : a === 'tanh' ? tanh(h) : gelu(h, a === 'gelu_tanh' ? 'tanh' : 'none'));
    return this.drop.forward(this.cProj.forward(h));
  }
}

// ---------------------------------------------------------------- math-extra modules

export class SiLU extends Module {
  forward(x: Tensor): Tensor {
    return silu(x);
  }
}

export class Softplus extends Module {
  constructor(readonly beta = 1, readonly threshold = 20) {
    super();
    if (typeof beta !== 'number' || !Number.isFinite(beta) || beta === 0)
      throw new KilnError('INVALID_ARGUMENT', `Softplus: beta must be a finite nonzero number, got ${String(beta)}`);
  }
  forward(x: Tensor): Tensor {
    return softplus(x, this.beta, this.threshold);
  }
}

export class LogSigmoid extends Module {
  forward(x: Tensor): Tensor {
    return logSigmoid(x);
  }
}

export class Mish extends Module {
  forward(x: Tensor): Tensor {
    return mish(x);
  }
}

/** Returns its input (a placeholder layer, as torch.nn.Identity). */
export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}

/** Flattens dimensions startDim .. endDim into one (by default all but the batch dimension). */
export class Flatten extends Module {
  constructor(readonly startDim = 1, readonly endDim = -1) {
    super();
    if (!Number.isInteger(startDim) || !Number.isInteger(endDim))
      throw new KilnError('INVALID_ARGUMENT', `Flatten: startDim and endDim must be integers, got ${startDim} and ${endDim}`);
  }
  forward(x: Tensor): Tensor {
    return flatten(x, this.startDim, this.endDim);
  }
}

/**
 * Root-mean-square normalisation over the trailing normalizedShape (torch.nn.RMSNorm):
 * x / sqrt(mean(x^2) + eps) * weight. eps defaults to the machine epsilon of the input's dtype.
 */
export class RMSNorm extends Module {
  weight: Tensor | null;
  readonly eps: number | undefined;
  readonly normalizedShape: number[];
  constructor(normalizedShape: number | number[], opts: LayerOptions & { eps?: number; elementwiseAffine?: boolean } = {}) {
    super();
    this.normalizedShape = trailingShape('RMSNorm', normalizedShape);
    this.eps = opts.eps;
    if (this.eps !== undefined && !(this.eps >= 0))
      throw new KilnError('INVALID_ARGUMENT', `RMSNorm: eps must be >= 0, got ${String(this.eps)}`);
    const o = { dtype: opts.dtype ?? 'float32', device: opts.device ?? 'cpu' } as const;
    this.weight = opts.elementwiseAffine ?? true ? parameter(ones(this.normalizedShape, o)) : null;
  }
  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.normalizedShape, this.weight, this.eps);
  }
}

// ---------------------------------------------------------------- convolution and pooling modules

function kernelPair(layer: string, k: Pair): [number, number] {
  const p = typeof k === 'number' ? [k, k] : Array.isArray(k) && k.length === 2 ? k : null;
  if (!p || !p.every((n) => Number.isInteger(n) && n >= 1))
    throw new KilnError('INVALID_ARGUMENT', `${layer}: kernelSize must be a positive integer or a pair of them, got ${JSON.stringify(k)}`);
  return [p[0], p[1]];
}

/** Weight and bias as PyTorch's conv layers: kaiming_uniform(a = sqrt(5)), i.e. U(-1/sqrt(fanIn), 1/sqrt(fanIn)). */
function convParams(layer: string, inC: number, outC: number, groups: number, kernel: number[], opts: LayerOptions & { bias?: boolean }) {
  checkDim(layer, 'inChannels', inC);
  checkDim(layer, 'outChannels', outC);
  checkDim(layer, 'groups', groups);
  if (inC % groups !== 0 || outC % groups !== 0)
    throw new KilnError('INVALID_ARGUMENT', `${layer}: inChannels ${inC} and outChannels ${outC} must be divisible by groups ${groups}`);
  const fanIn = (inC / groups) * kernel.reduce((a, b) => a * b, 1);
  const bound = 1 / Math.sqrt(fanIn);
  const o = { dtype: opts.dtype ?? 'float32', device: opts.device ?? 'cpu', low: -bound, high: bound } as const;
  return {
    weight: parameter(rand([outC, inC / groups, ...kernel], o)),
    bias: opts.bias === false ? null : parameter(rand([outC], o)),
  };
}

/** torch.nn.Conv2d: [N, inChannels, H, W] -> [N, outChannels, Ho, Wo]. */
export class Conv2d extends Module {
  weight: Tensor;
  bias: Tensor | null;
  readonly kernelSize: [number, number];
  readonly options: Conv2dOptions;
  constructor(readonly inChannels: number, readonly outChannels: number, kernelSize: Pair, opts: LayerOptions & Conv2dOptions & { bias?: boolean } = {}) {
    super();
    this.kernelSize = kernelPair('Conv2d', kernelSize);
    const { stride, padding, dilation, groups = 1 } = opts;
    this.options = { stride, padding, dilation, groups };
    ({ weight: this.weight, bias: this.bias } = convParams('Conv2d', inChannels, outChannels, groups, this.kernelSize, opts));
  }
  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, this.options);
  }
}

/** torch.nn.Conv1d: [N, inChannels, L] -> [N, outChannels, Lo]. */
export class Conv1d extends Module {
  weight: Tensor;
  bias: Tensor | null;
  readonly options: Conv1dOptions;
  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernelSize: number, opts: LayerOptions & Conv1dOptions & { bias?: boolean } = {}) {
    super();
    checkDim('Conv1d', 'kernelSize', kernelSize);
    const { stride, padding, dilation, groups = 1 } = opts;
    this.options = { stride, padding, dilation, groups };
    ({ weight: this.weight, bias: this.bias } = convParams('Conv1d', inChannels, outChannels, groups, [kernelSize], opts));
  }
  forward(x: Tensor): Tensor {
    return conv1d(x, this.weight, this.bias, this.options);
  }
}

/** torch.nn.MaxPool2d (stride defaults to the kernel size). */
export class MaxPool2d extends Module {
  constructor(readonly kernelSize: Pair, readonly options: MaxPool2dOptions = {}) {
    super();
    kernelPair('MaxPool2d', kernelSize);
  }
  forward(x: Tensor): Tensor {
    return maxPool2d(x, this.kernelSize, this.options);
  }
}

/** torch.nn.AvgPool2d (stride defaults to the kernel size; countIncludePad to true). */
export class AvgPool2d extends Module {
  constructor(readonly kernelSize: Pair, readonly options: AvgPool2dOptions = {}) {
    super();
    kernelPair('AvgPool2d', kernelSize);
  }
  forward(x: Tensor): Tensor {
    return avgPool2d(x, this.kernelSize, this.options);
  }
}

/** torch.nn.AdaptiveAvgPool2d: any [N, C, H, W] to [N, C, outputSize]. */
export class AdaptiveAvgPool2d extends Module {
  constructor(readonly outputSize: Pair) {
    super();
    kernelPair('AdaptiveAvgPool2d', outputSize);
  }
  forward(x: Tensor): Tensor {
    return adaptiveAvgPool2d(x, this.outputSize);
  }
}
