// kiln.sched: learning-rate schedules.
export { constant, linearWarmup, cosine, linearDecay, inverseSqrt, stepDecay, sequential, product, warmupCosine, LRScheduler } from './lr.js';
export type { Schedule, LrTarget } from './lr.js';
export { scheduleFromBetas, betasForAlphaBar, linearNoiseSchedule, cosineNoiseSchedule, sqrtNoiseSchedule, sqrtAlphaBar, noiseSchedule, respace } from './noise.js';
export type { NoiseSchedule } from './noise.js';
