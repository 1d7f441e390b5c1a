// The training loop, written the way a user would write it by hand: for each step, set the lr from
// the schedule, fetch the batch for that step, zero the gradients, forward + backward inside a
// memory scope, clip, update. Around it: a progress bar on a terminal (plain log lines otherwise),
// metrics as JSON Lines, periodic evaluation, checkpoints every N steps, and SIGINT handling that
// saves a checkpoint and returns cleanly. Because batches are a function of the step and the RNG
// state is checkpointed, a resumed run reproduces the uninterrupted run's losses exactly.
import { appendFileSync, existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { KilnError } from '../errors.js';
import { tidy } from '../tensor/storage.js';
import type { Tensor } from '../tensor/tensor.js';
import { Module } from '../nn/module.js';
import { loadCheckpoint, saveCheckpoint } from '../nn/checkpoint.js';
import { Optimizer } from '../optim/optimizer.js';
import { clipGradNorm } from '../optim/clip.js';
import type { Schedule } from '../sched/lr.js';

export interface TrainerOptions<B> {
  model: Module;
  optimizer: Optimizer<any>;
  /** The batch for a step: a loader with batchAt(step) or a function of the step. */
  data: { batchAt(step: number): B } | ((step: number) => B);
  /** Forward pass: returns the scalar loss for a batch. */
  loss: (batch: B, step: number) => Tensor;
  steps: number;
  /** Learning-rate factor per step (multiplies each group's initial lr). */
  schedule?: Schedule;
  clipGradNorm?: number;
  /** Evaluate every N steps (and after the last step); returns named metrics. */
  evalEvery?: number;
  evaluate?: (step: number) => Record<string, number>;
  /** Save a checkpoint every N steps (and on SIGINT and at the end) to checkpointPath. */
  checkpointEvery?: number;
  checkpointPath?: string;
  /** Continue from checkpointPath when it exists (default true when a path is given). */
  resume?: boolean;
  config?: unknown;
  /** Append one JSON object per logged step / evaluation to this file. */
  metricsPath?: string;
  logEvery?: number;
  /** 'auto': a bar on a TTY, log lines otherwise. */
  progress?: 'auto' | 'bar' | 'lines' | 'none';
  log?: (line: string) => void;
  /** Save and stop on SIGINT (default true). */
  handleSigint?: boolean;
}

export interface StepRecord {
  step: number;
  loss: number;
  lr: number;
  gradNorm?: number;
}

export interface FitResult {
  /** Completed steps (including those before a resume). */
  step: number;
  /** Loss of every step run in this call, in order. */
  losses: number[];
  startStep: number;
  interrupted: boolean;
  evals: Record<string, number>[];
}

interface Bar {
  start(total: number, value: number, payload?: object): void;
  update(value: number, payload?: object): void;
  stop(): void;
}

function makeBar(): Bar {
  const require = createRequire(import.meta.url);
  const cp = require('cli-progress');
  return new cp.SingleBar(
    { format: 'train |{bar}| {value}/{total} | loss {loss} | lr {lr} | {rate} steps/s | eta {eta_formatted}', hideCursor: true },
    cp.Presets.shades_classic,
  );
}

export class Trainer<B> {
  private stopRequested = false;
  constructor(readonly opts: TrainerOptions<B>) {
    const bad = (msg: string): never => {
      throw new KilnError('INVALID_ARGUMENT', `Trainer: ${msg}`);
    };
    // Everything is checked here, so a bad option is refused before a step runs (not a TypeError
    // or a refusal from inside the loop, after steps were taken).
    if (opts === null || typeof opts !== 'object') bad(`needs an options object, got ${opts === null ? 'null' : typeof opts}`);
    if (!(opts.model instanceof Module)) bad('model must be a kiln.nn.Module');
    if (!(opts.optimizer instanceof Optimizer)) bad('optimizer must be a kiln.optim optimizer');
    if (typeof opts.loss !== 'function') bad('loss must be a function (batch, step) => scalar Tensor');
    const d = opts.data as unknown;
    if (typeof d !== 'function' && !(d !== null && typeof d === 'object' && typeof (d as { batchAt?: unknown }).batchAt === 'function'))
      bad('data must be a function of the step or have batchAt(step)');
    for (const k of ['schedule', 'evaluate', 'log'] as const)
      if (opts[k] !== undefined && typeof opts[k] !== 'function') bad(`${k} must be a function, got ${typeof opts[k]}`);
    for (const k of ['checkpointPath', 'metricsPath'] as const)
      if (opts[k] !== undefined && (typeof opts[k] !== 'string' || opts[k] === '')) bad(`${k} must be a non-empty string, got ${JSON.stringify(opts[k])}`);
    if (opts.progress !== undefined && !['auto', 'bar', 'lines', 'none'].includes(opts.progress))
      bad(`progress must be 'auto', 'bar', 'lines' or 'none', got ${JSON.stringify(opts.progress)}`);
    if (opts.clipGradNorm !== undefined && !(typeof opts.clipGradNorm === 'number' && opts.clipGradNorm > 0))
      bad(`clipGradNorm must be a number > 0 (leave it out for no clipping), got ${opts.clipGradNorm}`);
    if (!Number.isInteger(opts.steps) || opts.steps < 0) bad(`steps must be an integer >= 0, got ${opts.steps}`);
    for (const k of ['evalEvery', 'checkpointEvery', 'logEvery'] as const) {
      const v = opts[k];
      if (v !== undefined && (!Number.isInteger(v) || v < 1)) bad(`${k} must be a positive integer, got ${v}`);
    }
    if (opts.checkpointEvery && !opts.checkpointPath) bad('checkpointEvery needs checkpointPath');
    if (opts.evalEvery && !opts.evaluate) bad('evalEvery needs evaluate');
  }

  /** Asks the running fit() to save and stop after the current step (what SIGINT does). */
  stop(): void {
    this.stopRequested = true;
  }

  private batch(step: number): B {
    const d = this.opts.data;
    return typeof d === 'function' ? d(step) : d.batchAt(step);
  }

  save(step: number): void {
    const o = this.opts;
    if (!o.checkpointPath) return;
    mkdirSync(dirname(o.checkpointPath), { recursive: true });
    saveCheckpoint(o.checkpointPath, { model: o.model, optimizer: o.optimizer, step, config: o.config });
  }

  /** Runs from the current (or resumed) step up to `steps`. */
  async fit(): Promise<FitResult> {
    const o = this.opts;
    const log = o.log ?? ((s: string) => process.stderr.write(s + '\n'));
    // A stop asked of an earlier fit() is done: this one runs until its own stop (or the end).
    this.stopRequested = false;
    let step = 0;
    if (o.checkpointPath && (o.resume ?? true) && existsSync(o.checkpointPath)) {
      const loaded = loadCheckpoint(o.checkpointPath, { model: o.model, optimizer: o.optimizer });
      step = loaded.meta.step;
      for (const t of Object.values(loaded.tensors)) t.dispose();  // copied into the model and optimizer
      log(`resumed from ${o.checkpointPath} at step ${step}`);
    }
    const startStep = step;
    const mode = o.progress ?? 'auto';
    const useBar = mode === 'bar' || (mode === 'auto' && process.stderr.isTTY === true);
    const logEvery = o.logEvery ?? Math.max(1, Math.floor(o.steps / 20));
    const bar = useBar ? makeBar() : null;
    const onSigint = () => {
      if (this.stopRequested) return;
      this.stopRequested = true;
      log('SIGINT: saving a checkpoint after this step and stopping');
    };
    const sigint = o.handleSigint ?? true;
    if (sigint) process.on('SIGINT', onSigint);
    if (o.metricsPath) mkdirSync(dirname(o.metricsPath), { recursive: true });
    const writeMetric = (rec: object) => {
      if (o.metricsPath) appendFileSync(o.metricsPath, JSON.stringify(rec) + '\n');
    };
    const losses: number[] = [];
    const evals: Record<string, number>[] = [];
    let interrupted = false;
    const t0 = performance.now();
    bar?.start(o.steps, step, { loss: '-', lr: '-', rate: '-' });
    try {
      o.model.train();
      while (step < o.steps) {
        if (o.schedule) o.optimizer.setLrFactor(o.schedule(step));
        const rec = this.trainStep(step);
        losses.push(rec.loss);
        step++;
        const rate = (step - startStep) / ((performance.now() - t0) / 1000);
        if (step % logEvery === 0 || step === o.steps) {
          writeMetric({ ...rec, step, time: Date.now() / 1000 });
          if (!bar && mode !== 'none')
            log(`step ${step}/${o.steps} loss ${rec.loss.toFixed(4)} lr ${rec.lr.toExponential(2)} (${rate.toFixed(2)} steps/s)`);
        }
        bar?.update(step, { loss: rec.loss.toFixed(4), lr: rec.lr.toExponential(2), rate: rate.toFixed(2) });
        if (o.evaluate && ((o.evalEvery && step % o.evalEvery === 0) || step === o.steps)) {
          o.model.eval();
          const m = o.evaluate(step);
          o.model.train();
          if (m === null || typeof m !== 'object' || !Object.values(m).every((v) => typeof v === 'number'))
            throw new KilnError('INVALID_ARGUMENT', `Trainer: evaluate must return an object of named numbers, got ${JSON.stringify(m)} at step ${step}`);
          evals.push({ step, ...m });
          writeMetric({ step, eval: m, time: Date.now() / 1000 });
          if (!bar && mode !== 'none') log(`eval at step ${step}: ${Object.entries(m).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ')}`);
        }
        if (o.checkpointEvery && step % o.checkpointEvery === 0) this.save(step);
        // Let signals and other events in between steps.
        await new Promise((r) => setImmediate(r));
        if (this.stopRequested) {
          interrupted = true;
          break;
        }
      }
      if (o.checkpointPath && (interrupted || step === o.steps) && step > startStep) this.save(step);
    } finally {
      bar?.stop();
      if (sigint) process.off('SIGINT', onSigint);
    }
    if (interrupted) log(`stopped at step ${step}${o.checkpointPath ? `; checkpoint saved to ${o.checkpointPath}` : ''}`);
    return { step, losses, startStep, interrupted, evals };
  }

  /** One optimisation step on the batch of `step`; returns its loss and lr. */
  trainStep(step: number): StepRecord {
    const o = this.opts;
    o.optimizer.zeroGrad();
    const loss = tidy(() => {
      const l = o.loss(this.batch(step), step);
      if (l.size !== 1) throw new KilnError('SHAPE_MISMATCH', `Trainer: the loss must be a scalar, got ${l.size} elements`);
      l.backward();
      return l.item();
    });
    if (!Number.isFinite(loss)) throw new KilnError('NON_FINITE', `Trainer: loss is ${loss} at step ${step}`);
    const rec: StepRecord = { step, loss, lr: o.optimizer.lr };
    if (o.clipGradNorm) rec.gradNorm = clipGradNorm(o.optimizer.params, o.clipGradNorm);
    o.optimizer.step();
    return rec;
  }
}
