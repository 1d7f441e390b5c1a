// Training loops: the diffusion LM (end to end: embeddings, rounding head and denoiser together) and
// the semantic-content classifier on noised latents of the frozen embeddings. AdamW, seeded batches
// and timesteps, linear warm-up then linear decay, gradient clipping at norm 1.
import { AdamW } from '../../optim/adam.js';
import { clipGradNorm } from '../../optim/clip.js';
import { LRScheduler, linearDecay, linearWarmup, product } from '../../sched/lr.js';
import { manualSeed } from '../../tensor/random.js';
import { tidy } from '../../tensor/storage.js';
import { ArrayDataLoader, seededRandom } from '../../train/data.js';
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
 * A generic loop: each step draws a batch of rows and one timestep per row (uniform in [0, T)),
 * calls `loss` for the scalar terms (the first is minimised), clips, steps. Returns the averaged
 * history and the wall time.
 */
export function trainLoop(
  model: Module,
  fields: ConstructorParameters<typeof ArrayDataLoader>[0],
  T: number,
  cfg: TrainConfig,
  loss: (batch: Record<string, Tensor>, ts: Int32Array) => Record<string, Tensor>,
  onRecord?: (r: TrainRecord) => void,
): { history: TrainRecord[]; seconds: number } {
  manualSeed(cfg.seed);
  const rnd = seededRandom((cfg.seed * 2654435761 + 1) >>> 0);
  const params = model.parameters().filter((p) => p.requiresGrad);
  const opt = new AdamW(params, { lr: cfg.lr, weightDecay: cfg.weightDecay });
  const sched = new LRScheduler(opt, product(linearWarmup(Math.max(1, cfg.warmup)), linearDecay(cfg.steps, 0.1)));
  const loader = new ArrayDataLoader(fields, cfg.batchSize, { seed: cfg.seed });
  const history: TrainRecord[] = [];
  let acc: Record<string, number> = {}, count = 0;
  const t0 = performance.now();
  model.train();
  for (let step = 0; step < cfg.steps; step++) {
    tidy(() => {
      const batch = loader.batchAt(step);
      const B = Object.values(batch)[0].shape[0];
      const ts = Int32Array.from({ length: B }, () => Math.floor(rnd() * T));
      opt.zeroGrad();
      const terms = loss(batch, ts);
      const names = Object.keys(terms);
      terms[names[0]].backward();
      clipGradNorm(params, 1);
      opt.step();
      sched.step();
      for (const k of names) acc[k] = (acc[k] ?? 0) + terms[k].item();
      count++;
    });
    if ((step + 1) % cfg.logEvery === 0 || step === cfg.steps - 1) {
      const r: TrainRecord = { step: step + 1 };
      for (const [k, v] of Object.entries(acc)) r[k] = v / count;
      history.push(r);
      onRecord?.(r);
      acc = {};
      count = 0;
    }
  }
  model.eval();
  return { history, seconds: (performance.now() - t0) / 1000 };
}
