// Training for the recipe's three models (the diffusion LM end to end, the content classifier, the
// teacher GPT) on the project's Trainer: AdamW, seeded batches and timesteps, linear warm-up then
// linear decay to 0.1, gradient clipping at norm 1; each loss term is averaged over logEvery steps.
import { AdamW } from '../../optim/adam.js';
import { linearDecay, linearWarmup, product } from '../../sched/lr.js';
import { manualSeed } from '../../tensor/random.js';
import { ArrayDataLoader, seededRandom } from '../../train/data.js';
import { fitTerms, type TermsRecord } from '../fit.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { Module } from '../../nn/module.js';

export interface TrainConfig {
  steps: number;
  batchSize: number;
  lr: number;
  warmup: number;
  weightDecay: number;
  seed: number;
  /** Record the loss terms every this many steps (averaged over the steps since the last record). */
  logEvery: number;
}

export type TrainRecord = TermsRecord;

/**
 * Each step draws a batch of rows and one timestep per row (uniform in [0, T)) and calls `loss` for
 * named scalar terms, of which the first is minimised. Returns the averaged history and the wall
 * time. Progress goes to `log` (a bar on a terminal), one line per record otherwise.
 */
export async function trainLoop(
  model: Module,
  fields: ConstructorParameters<typeof ArrayDataLoader>[0],
  T: number,
  cfg: TrainConfig,
  loss: (batch: Record<string, Tensor>, ts: Int32Array) => Record<string, Tensor>,
  log: (line: string) => void = () => {},
): Promise<{ history: TrainRecord[]; seconds: number }> {
  manualSeed(cfg.seed);
  const rnd = seededRandom((cfg.seed * 2654435761 + 1) >>> 0);
  return fitTerms<Record<string, Tensor>>({
    model,
    optimizer: new AdamW(model.parameters().filter((p) => p.requiresGrad), { lr: cfg.lr, weightDecay: cfg.weightDecay }),
    data: new ArrayDataLoader(fields, cfg.batchSize, { seed: cfg.seed }),
    steps: cfg.steps,
    schedule: product(linearWarmup(Math.max(1, cfg.warmup)), linearDecay(cfg.steps, 0.1)),
    clipGradNorm: 1,
    logEvery: cfg.logEvery,
    terms: (batch) => loss(batch, Int32Array.from({ length: Object.values(batch)[0].shape[0] }, () => Math.floor(rnd() * T))),
    log,
  });
}
