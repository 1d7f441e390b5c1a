// Training for the recipe's three models (the diffusion LM end to end, the content classifier, the
// teacher GPT) on the project's Trainer: AdamW, seeded batches and timesteps, linear warm-up then
// linear decay to 0.1, gradient clipping at norm 1; each loss term is averaged over logEvery steps.
import { AdamW } from '../../optim/adam.js';
import { linearDecay, linearWarmup, product } from '../../sched/lr.js';
import { manualSeed } from '../../tensor/random.js';
import { ArrayDataLoader, seededRandom } from '../../train/data.js';
import { Trainer } from '../../train/trainer.js';
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

export interface TrainRecord {
  step: number;
  [term: string]: number;
}

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
  let acc: Record<string, number> = {}, count = 0;
  const t0 = performance.now();
  const fit = await new Trainer<Record<string, Tensor>>({
    model,
    optimizer: new AdamW(model.parameters().filter((p) => p.requiresGrad), { lr: cfg.lr, weightDecay: cfg.weightDecay }),
    data: new ArrayDataLoader(fields, cfg.batchSize, { seed: cfg.seed }),
    steps: cfg.steps,
    schedule: product(linearWarmup(Math.max(1, cfg.warmup)), linearDecay(cfg.steps, 0.1)),
    clipGradNorm: 1,
    loss: (batch) => {
      const B = Object.values(batch)[0].shape[0];
      const terms = loss(batch, Int32Array.from({ length: B }, () => Math.floor(rnd() * T)));
      for (const [k, v] of Object.entries(terms)) acc[k] = (acc[k] ?? 0) + v.item();
      count++;
      return Object.values(terms)[0];
    },
    // The records: each "evaluation" averages the terms since the last one (and after the last step).
    evalEvery: cfg.logEvery,
    evaluate: () => {
      const r = Object.fromEntries(Object.entries(acc).map(([k, v]) => [k, v / count]));
      acc = {};
      count = 0;
      return r;
    },
    logEvery: cfg.logEvery,
    log,
    handleSigint: false,
  }).fit();
  model.eval();
  return { history: fit.evals as TrainRecord[], seconds: (performance.now() - t0) / 1000 };
}
