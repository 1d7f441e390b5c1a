// kiln: tensors with autograd on fused C++/CUDA kernels, for Node.js and TypeScript.
import './ops/methods.js';
import { setAutogradOps } from './tensor/autograd.js';
import { N } from './native.js';
import { onesLike } from './ops/creation.js';
import { add } from './ops/elementwise.js';
import { clone } from './ops/views.js';
import { KilnError } from './errors.js';

setAutogradOps({ onesLike: (t) => onesLike(t), add: (a, b) => add(a, b), clone: (t) => clone(t) });

export { KilnError } from './errors.js';
export type { KilnErrorCode } from './errors.js';
export { Tensor } from './tensor/tensor.js';
export type { DType, HalfDType, Device, TypedArray } from './tensor/dtype.js';
export { tidy, keep, memory } from './tensor/storage.js';
export type { MemoryInfo } from './tensor/storage.js';
export { noGrad, enableGrad, isGradEnabled } from './tensor/autograd.js';
export { autocast, autocastScope } from './tensor/autocast.js';
export type { AutocastOptions } from './tensor/autocast.js';
export { manualSeed, getRngState, setRngState } from './tensor/random.js';
export type { RngState } from './tensor/random.js';
export * from './ops/creation.js';
export {
  add, sub, mul, div, pow, maximum, minimum, eq, ne, lt, le, gt, ge, neg, exp, log, sqrt, rsqrt, abs, tanh,
  sigmoid, relu, gelu, sin, cos, square, reciprocal, log1p, expm1, sign, floor, isNan, isFinite, clamp, where,
  maskedFill, toDType, castTo as cast, resultType,
} from './ops/elementwise.js';
export type { TensorLike } from './ops/elementwise.js';
export { sum, mean, max, min, logsumexp, argmax, argmin } from './ops/reduce.js';
export { matmul } from './ops/matmul.js';
export { reshape, permute, transpose, expand, narrow, slice, squeeze, unsqueeze, flatten, contiguous, clone, detach, concat, stack, split } from './ops/views.js';
export { softmax, logSoftmax, layerNorm, crossEntropy, embedding, dropout, mseLoss } from './ops/nn.js';
export { variance, std, prod, norm, erf, silu, softplus, logSigmoid, mish, multinomial, bernoulli, randperm } from './ops/math-extra.js';
export type { VarianceOptions, SampleOptions, MultinomialOptions, RandpermOptions } from './ops/math-extra.js';
export { bceWithLogits, binaryCrossEntropy, nllLoss, l1Loss, smoothL1Loss, huberLoss, klDiv } from './ops/losses.js';
export type { Reduction, BCEOptions, BCEWithLogitsOptions, NLLOptions, KLDivOptions } from './ops/losses.js';
export type { CrossEntropyOptions } from './ops/nn.js';
export { cumsum, topk, oneHot } from './ops/indexing.js';
export { gather, indexSelect, scatterAdd, sort, argsort, flip, roll, tril, triu, repeat, chunk, any, all } from './ops/select.js';
export { conv1d, conv2d, maxPool2d, avgPool2d, adaptiveAvgPool2d, pad } from './ops/conv.js';
export type { Pair, Conv1dOptions, Conv2dOptions, MaxPool2dOptions, AvgPool2dOptions } from './ops/conv.js';
export { cuda, toDevice } from './ops/device.js';
export { gradcheck } from './gradcheck.js';

/** Sets the number of CPU threads the kernels use (default: all cores, or KILN_NUM_THREADS). */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new KilnError('INVALID_ARGUMENT', `setNumThreads: n must be a positive integer, got ${n}`);
  N.setNumThreads(n);
}
export function getNumThreads(): number {
  return N.numThreads();
}
export * as nn from './nn/index.js';
export * as optim from './optim/index.js';
export * as sched from './sched/index.js';
export * as io from './io/index.js';
export * as train from './train/index.js';
export { infoNCE, ntXent, cisslLoss, clipLoss, disslCrossEntropy, meanEntropy } from './ops/contrastive.js';
export type { InfoNCEOptions, DisslOptions } from './ops/contrastive.js';
export { qSample, predictX0, predictEps, nearestRows, ddpmStep, ddimStep } from './ops/diffusion.js';
export type { Timesteps, StepOptions } from './ops/diffusion.js';
export { scaledDotProductAttention } from './ops/attention.js';
export type { AttentionOptions } from './ops/attention.js';
export * as calibration from './recipes/calibrated-ensembles/index.js';
