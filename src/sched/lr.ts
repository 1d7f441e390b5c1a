// Learning-rate schedules as pure functions of the step (0-based) that return a factor of the base
// lr, like torch's LambdaLR. They compose: `sequential` runs schedules one after another (warm-up
// then cosine), `product` multiplies them. `LRScheduler` applies one to an optimizer.
import { KilnError } from '../errors.js';

export type Schedule = (step: number) => number;

function needSteps(name: string, n: number, min = 1): void {
  if (!Number.isInteger(n) || n < min) throw new KilnError('INVALID_ARGUMENT', `${name}: steps must be an integer >= ${min}, got ${n}`);
}

export const constant = (factor = 1): Schedule => () => factor;

/** Ramps from startFactor to 1: factor(step) = start + (1 - start) * min(1, (step + 1) / warmupSteps). */
export function linearWarmup(warmupSteps: number, startFactor = 0): Schedule {
  needSteps('linearWarmup', warmupSteps);
  return (s) => startFactor + (1 - startFactor) * Math.min(1, (s + 1) / warmupSteps);
}

/** Half-cosine from 1 at step 0 to minFactor at totalSteps (and after). */
export function cosine(totalSteps: number, minFactor = 0): Schedule {
  needSteps('cosine', totalSteps);
  return (s) => (s >= totalSteps ? minFactor : minFactor + (1 - minFactor) * 0.5 * (1 + Math.cos((Math.PI * s) / totalSteps)));
}

/** Straight line from 1 at step 0 to endFactor at totalSteps (and after). */
export function linearDecay(totalSteps: number, endFactor = 0): Schedule {
  needSteps('linearDecay', totalSteps);
  return (s) => 1 - (1 - endFactor) * Math.min(1, s / totalSteps);
}

/** Linear warm-up, then 1/sqrt decay (the Transformer paper's): sqrt(warmup / (step + 1)) after warm-up. */
export function inverseSqrt(warmupSteps: number): Schedule {
  needSteps('inverseSqrt', warmupSteps);
  return (s) => (s + 1 < warmupSteps ? (s + 1) / warmupSteps : Math.sqrt(warmupSteps / (s + 1)));
}

/** Multiplies by gamma every stepSize steps (torch's StepLR). */
export function stepDecay(stepSize: number, gamma = 0.1): Schedule {
  needSteps('stepDecay', stepSize);
  return (s) => Math.pow(gamma, Math.floor(s / stepSize));
}

/** Runs schedules[i] from milestones[i-1] on, each seeing steps counted from its own start. */
export function sequential(schedules: Schedule[], milestones: number[]): Schedule {
  if (schedules.length === 0 || milestones.length !== schedules.length - 1)
    throw new KilnError('INVALID_ARGUMENT', `sequential: ${schedules.length} schedules need ${schedules.length - 1} milestones, got ${milestones.length}`);
  for (let i = 0; i < milestones.length; i++)
    if (!Number.isInteger(milestones[i]) || milestones[i] < 0) throw new KilnError('INVALID_ARGUMENT', `sequential: milestone ${milestones[i]} is not an integer step >= 0`);
  for (let i = 1; i < milestones.length; i++)
    if (!(milestones[i] > milestones[i - 1])) throw new KilnError('INVALID_ARGUMENT', 'sequential: milestones must increase');
  return (s) => {
    let i = 0;
    while (i < milestones.length && s >= milestones[i]) i++;
    return schedules[i](s - (i > 0 ? milestones[i - 1] : 0));
  };
}

export const product = (...schedules: Schedule[]): Schedule => (s) => schedules.reduce((f, sc) => f * sc(s), 1);

/** Linear warm-up over warmupSteps, then cosine to minFactor at totalSteps (the GPT recipe). */
export function warmupCosine(warmupSteps: number, totalSteps: number, minFactor = 0): Schedule {
  needSteps('warmupCosine', totalSteps, warmupSteps + 1);
  if (warmupSteps === 0) return cosine(totalSteps, minFactor);
  return sequential([linearWarmup(warmupSteps), cosine(totalSteps - warmupSteps, minFactor)], [warmupSteps]);
}

/** Anything with lr factors to set (an Optimizer). */
export interface LrTarget {
  setLrFactor(f: number): void;
}

/** Applies a schedule to an optimizer: the factor for step 0 is set at construction; step() advances. */
export class LRScheduler {
  step_ = 0;
  constructor(readonly optimizer: LrTarget, readonly schedule: Schedule, startStep = 0) {
    this.step_ = startStep;
    this.apply();
  }
  get lastFactor(): number {
    return this.schedule(this.step_);
  }
  step(): void {
    this.setStep(this.step_ + 1);  // a refused factor leaves the step where it was
  }
  /** Jumps to a step (resuming). */
  setStep(step: number): void {
    this.factorAt(step);  // checked before anything changes
    this.step_ = step;
    this.apply();
  }
  /** The schedule's factor at step, or a KilnError (a bad step, or a factor that is not finite and >= 0). */
  factorAt(step: number): number {
    if (!(Number.isInteger(step) && step >= 0)) throw new KilnError('INVALID_ARGUMENT', `LRScheduler: step must be an integer >= 0, got ${JSON.stringify(step)}`);
    const f = this.schedule(step);
    if (!Number.isFinite(f) || f < 0) throw new KilnError('INVALID_ARGUMENT', `LRScheduler: schedule gave factor ${f} at step ${step}`);
    return f;
  }
  private apply(): void {
    this.optimizer.setLrFactor(this.factorAt(this.step_));
  }
  stateDict(): { step: number } {
    return { step: this.step_ };
  }
  loadStateDict(s: { step: number }): void {
    if (typeof s !== 'object' || s === null) throw new KilnError('INVALID_ARGUMENT', `LRScheduler loadStateDict: needs { step }, got ${s === null ? 'null' : typeof s}`);
    this.setStep(s.step);
  }
}
