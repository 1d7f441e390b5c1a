// The recipes' training runs on the project's Trainer, with named loss terms: `terms` gives a
// batch's scalar terms, the first is minimised, and each is averaged over `logEvery` steps into the
// history (one record per "evaluation", and after the last step). Progress goes to `log`.
import type { Module } from '../nn/module.js';
import type { Optimizer } from '../optim/optimizer.js';
import { AdamW } from '../optim/adam.js';
import { cosine, linearWarmup, product, type Schedule } from '../sched/lr.js';
import type { Tensor } from '../tensor/tensor.js';
import { Trainer, type TrainerOptions } from '../train/trainer.js';

/** A recipe's training run: AdamW at peak lr with decoupled weight decay, `warmup` steps of linear warm-up. */
export interface TrainConfig {
  steps: number;
  /** Examples per step (for ssl and clip: distinct prototypes, two views each). */
  batchSize: number;
  lr: number;
  weightDecay: number;
  warmup: number;
}

export interface TermsRecord {
  step: number;
  [term: string]: number;
}

export async function fitTerms<B>(o: {
  model: Module;
  optimizer: Optimizer<any>;
  data: TrainerOptions<B>['data'];
  steps: number;
  schedule: Schedule;
  clipGradNorm: number;
  logEvery: number;
  terms: (batch: B) => Record<string, Tensor>;
  log: (line: string) => void;
}): Promise<{ history: TermsRecord[]; seconds: number }> {
  let acc: Record<string, number> = {}, count = 0;
  const t0 = performance.now();
  const fit = await new Trainer<B>({
    model: o.model,
    optimizer: o.optimizer,
    data: o.data,
    steps: o.steps,
    schedule: o.schedule,
    clipGradNorm: o.clipGradNorm,
    loss: (batch) => {
      const terms = o.terms(batch);
      for (const [k, v] of Object.entries(terms)) acc[k] = (acc[k] ?? 0) + v.item();
      count++;
      return Object.values(terms)[0];
    },
    evalEvery: o.logEvery,
    evaluate: () => {
      const r = Object.fromEntries(Object.entries(acc).map(([k, v]) => [k, v / count]));
      acc = {};
      count = 0;
      return r;
    },
    logEvery: o.logEvery,
    log: o.log,
    handleSigint: false,
  }).fit();
  o.model.eval();
  return { history: fit.evals as TermsRecord[], seconds: (performance.now() - t0) / 1000 };
}

/**
 * `fitTerms` under a TrainConfig: AdamW at train.lr with train.weightDecay, `warmup` steps of
 * linear warm-up then cosine decay to the last step; the optimizer is freed when the run ends.
 */
export async function fitAdamW<B>(o: {
  model: Module;
  train: TrainConfig;
  data: TrainerOptions<B>['data'];
  clipGradNorm: number;
  logEvery: number;
  terms: (batch: B) => Record<string, Tensor>;
  log: (line: string) => void;
}): Promise<{ history: TermsRecord[]; seconds: number }> {
  const t = o.train;
  const optimizer = new AdamW(o.model.parameters(), { lr: t.lr, weightDecay: t.weightDecay });
  try {
    return await fitTerms<B>({
      model: o.model, optimizer, data: o.data, steps: t.steps, schedule: product(linearWarmup(Math.max(1, t.warmup)), cosine(t.steps)),
      clipGradNorm: o.clipGradNorm, logEvery: o.logEvery, terms: o.terms, log: o.log,
    });
  } finally {
    optimizer.dispose();
  }
}
