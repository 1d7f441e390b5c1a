// The linear probe: multinomial logistic regression on frozen features, the paper's evaluation.
// Features are standardised with the training rows' mean and standard deviation, then a Linear
// layer is fit full-batch with AdamW on cross-entropy (plus a little weight decay); accuracy is
// read on held-out rows.
import * as kiln from '../../index.js';
import { KilnError } from '../../errors.js';
import { Linear } from '../../nn/index.js';
import { AdamW } from '../../optim/index.js';

export interface ProbeOptions {
  steps: number;
  lr: number;
  weightDecay: number;
  seed: number;
}

export const DEFAULT_PROBE: ProbeOptions = { steps: 300, lr: 0.02, weightDecay: 1e-3, seed: 0 };

export interface Split {
  x: Float32Array;
  n: number;
  dims: number;
}

/** Column means and standard deviations of the rows (a constant column gets std 1). */
export function columnStats(s: Split): { mean: Float64Array; std: Float64Array } {
  const mean = new Float64Array(s.dims), sq = new Float64Array(s.dims);
  for (let i = 0; i < s.n; i++)
    for (let j = 0; j < s.dims; j++) {
      const v = s.x[i * s.dims + j];
      mean[j] += v;
      sq[j] += v * v;
    }
  const std = new Float64Array(s.dims);
  for (let j = 0; j < s.dims; j++) {
    mean[j] /= s.n;
    const v = sq[j] / s.n - mean[j] * mean[j];
    std[j] = v > 1e-12 ? Math.sqrt(v) : 1;
  }
  return { mean, std };
}

function standardise(s: Split, st: { mean: Float64Array; std: Float64Array }): kiln.Tensor {
  const out = new Float32Array(s.n * s.dims);
  for (let i = 0; i < s.n; i++)
    for (let j = 0; j < s.dims; j++) out[i * s.dims + j] = (s.x[i * s.dims + j] - st.mean[j]) / st.std[j];
  return kiln.fromTyped(out, [s.n, s.dims]);
}

function accuracy(logits: kiln.Tensor, y: Int32Array): number {
  const pred = logits.argmax(1).dataSync();
  let ok = 0;
  for (let i = 0; i < y.length; i++) if (pred[i] === y[i]) ok++;
  return ok / y.length;
}

/** Fits the probe on (train, yTrain) and returns its accuracy on both splits. */
export function linearProbe(train: Split, yTrain: Int32Array, test: Split, yTest: Int32Array, classes: number, opts: ProbeOptions = DEFAULT_PROBE): { train: number; test: number } {
  if (train.dims !== test.dims) throw new KilnError('SHAPE_MISMATCH', `linearProbe: train features have ${train.dims} dims, test ${test.dims}`);
  if (yTrain.length !== train.n || yTest.length !== test.n)
    throw new KilnError('SHAPE_MISMATCH', `linearProbe: ${train.n} / ${test.n} rows but ${yTrain.length} / ${yTest.length} labels`);
  return kiln.tidy(() => {
    kiln.manualSeed(opts.seed);
    const st = columnStats(train);
    const xtr = standardise(train, st), xte = standardise(test, st);
    const ytr = kiln.fromTyped(yTrain, [train.n], { dtype: 'int32' });
    const head = new Linear(train.dims, classes);
    const opt = new AdamW(head.parameters(), { lr: opts.lr, weightDecay: opts.weightDecay });
    for (let s = 0; s < opts.steps; s++)
      kiln.tidy(() => {
        opt.zeroGrad();
        kiln.crossEntropy(head.forward(xtr), ytr).backward();
        opt.step();
      });
    const r = kiln.noGrad(() => ({ train: accuracy(head.forward(xtr), yTrain), test: accuracy(head.forward(xte), yTest) }));
    opt.dispose();
    for (const p of head.parameters()) p.dispose();
    return r;
  });
}
