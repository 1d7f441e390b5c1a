// kiln.optim: optimizers with fused native updates, gradient clipping and weight EMA.
export { Optimizer } from './optimizer.js';
export type { GroupOptions, ParamGroup, ParamsArg, OptimizerState } from './optimizer.js';
export { SGD } from './sgd.js';
export type { SGDOptions } from './sgd.js';
export { Adam, AdamW } from './adam.js';
export type { AdamOptions } from './adam.js';
export { clipGradNorm, gradNorm, EMA } from './clip.js';
