// kiln.sched: learning-rate schedules.
export { constant, linearWarmup, cosine, linearDecay, inverseSqrt, stepDecay, sequential, product, warmupCosine, LRScheduler } from './lr.js';
export type { Schedule, LrTarget } from './lr.js';
