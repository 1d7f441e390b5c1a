// The two members: MLP classifiers trained with kiln (AdamW, seeded mini-batches, cross-entropy).
// The standard member trains every layer ("fine-tuning"); the robust member can be a linear probe on
// frozen features: the same MLP with its first layer frozen at its seeded random initialisation, so
// only the readout is fit (the paper's LP member: it cannot reshape its features around the data).
import * as kiln from '../../index.js';
import { MLP } from '../../nn/index.js';
import { AdamW } from '../../optim/index.js';
import { ArrayDataLoader } from '../../train/index.js';

export interface TrainOptions {
  hidden: number;
  steps: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  seed: number;
  /** Freeze the first layer at its random initialisation and fit only the readout (a linear probe). */
  frozenEncoder?: boolean;
}

export const DEFAULT_TRAIN: Omit<TrainOptions, 'seed'> = { hidden: 64, steps: 600, batchSize: 64, lr: 3e-3, weightDecay: 0 };

export interface Features {
  x: Float32Array;
  n: number;
  dims: number;
}

/**
 * A ReLU MLP (dims → hidden → classes) fit by mini-batch cross-entropy; returns it in eval mode. With
 * `frozenEncoder` the first layer keeps its random initialisation (no gradient) and only the readout
 * is trained: logistic regression on `hidden` frozen random ReLU features.
 */
export function trainClassifier(data: Features, y: Int32Array, classes: number, opts: TrainOptions): MLP {
  kiln.manualSeed(opts.seed);
  const model = new MLP(data.dims, { hidden: opts.hidden, outFeatures: classes, activation: 'relu' });
  let trained = model.parameters();
  if (opts.frozenEncoder) {
    const frozen = model.cFc.parameters();
    for (const p of frozen) p.requiresGrad = false;
    trained = trained.filter((p) => !frozen.includes(p));
  }
  const opt = new AdamW(trained, { lr: opts.lr, weightDecay: opts.weightDecay });
  const loader = new ArrayDataLoader(
    { x: { data: data.x, rowShape: [data.dims] }, y: { data: y, rowShape: [], dtype: 'int32' } },
    Math.min(opts.batchSize, data.n),
    { seed: opts.seed },
  );
  for (let step = 0; step < opts.steps; step++) {
    kiln.tidy(() => {
      const b = loader.batchAt(step);
      opt.zeroGrad();
      kiln.crossEntropy(model.forward(b.x), b.y).backward();
      opt.step();
    });
  }
  return model.eval();
}

/** The model's logits on every row, as a float64 copy [n, K]. */
export function predictLogits(model: { forward(x: kiln.Tensor): kiln.Tensor }, data: Features): Float64Array {
  return kiln.tidy(() => kiln.noGrad(() => {
    const out = model.forward(kiln.fromTyped(data.x, [data.n, data.dims]));
    return Float64Array.from(out.dataSync() as ArrayLike<number>);
  }));
}
