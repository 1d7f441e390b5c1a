// Diffusion-LM (Li et al., arXiv 2205.14217) at small scale: a continuous diffusion over learned word
// embeddings, trained end to end with the x0-parametrised objective
//   mse(f(x_t, t), x0) + prior(sqrt(abar_T) x0) + rounding -log p(w | x0),
// where x0 = EMB(w) + sqrt(1 - abar_0) z and the t = 0 rows regress onto EMB(w) itself; the rounding
// head p(w | x) = softmax(x EMB^T + b) shares the embedding matrix. The noise schedule is the sqrt
// schedule, the denoiser a bidirectional transformer with a timestep embedding, and sampling snaps
// every predicted x0 to its nearest embedding (the clamping trick) before the DDPM posterior step.
import '../../index.js';  // installs the Tensor methods and autograd's ops (the CLI loads this recipe without the package entry)
import { KilnError } from '../../errors.js';
import { fromTyped, full, randn, zeros } from '../../ops/creation.js';
import { ddpmStep, nearestRows, qSample } from '../../ops/diffusion.js';
import { add, mul, square } from '../../ops/elementwise.js';
import { matmul } from '../../ops/matmul.js';
import { crossEntropy, mseLoss } from '../../ops/nn.js';
import { argmax, mean } from '../../ops/reduce.js';
import { Embedding } from '../../nn/layers.js';
import { TransformerEncoder } from '../../nn/models.js';
import { Module, parameter } from '../../nn/module.js';
import { respace, sqrtNoiseSchedule, type NoiseSchedule } from '../../sched/noise.js';
import { noGrad } from '../../tensor/autograd.js';
import { tidy, keep } from '../../tensor/storage.js';
import type { Tensor } from '../../tensor/tensor.js';

export interface DiffusionLMConfig {
  vocabSize: number;
  seqLen: number;
  /** Word-embedding (diffusion space) width: 16 in the paper's E2E runs. */
  embedDim: number;
  nLayer: number;
  nHead: number;
  nEmbd: number;
  /** Diffusion steps of the sqrt schedule (2000 in the paper). */
  diffusionSteps: number;
  dropout?: number;
}

/** The loss terms (a type, not an interface, so it is a Record<string, Tensor>; loss comes first). */
export type LossTerms = {
  loss: Tensor;
  mse: Tensor;
  prior: Tensor;
  rounding: Tensor;
};

export class DiffusionLM extends Module {
  wordEmb: Embedding;
  /** Bias of the rounding head (its weight is wordEmb.weight). */
  lmBias: Tensor;
  denoiser: TransformerEncoder;
  readonly schedule: NoiseSchedule;

  constructor(readonly config: DiffusionLMConfig) {
    super();
    const c = config;
    this.wordEmb = new Embedding(c.vocabSize, c.embedDim);
    this.lmBias = parameter(zeros([c.vocabSize]));
    this.denoiser = new TransformerEncoder({
      nLayer: c.nLayer, nHead: c.nHead, nEmbd: c.nEmbd, maxLen: c.seqLen, inputDim: c.embedDim, outputDim: c.embedDim,
      timestep: true, dropout: c.dropout,
    });
    this.schedule = sqrtNoiseSchedule(c.diffusionSteps);
  }

  /** p(w | x) logits [..., V] of vectors x [..., embedDim]: x EMB^T + b. */
  logits(x: Tensor): Tensor {
    return add(matmul(x, this.wordEmb.weight.transpose(0, 1)), this.lmBias);
  }

  /** The denoiser's x0 prediction for x_t [B, L, d] at the model timesteps t (int32 [B]). */
  predictX0(xt: Tensor, t: Tensor): Tensor {
    return this.denoiser.forward(xt, { t });
  }

  /**
   * The forward process from words: EMB(w) [B, L, d], x0 = EMB(w) + sqrt(1 - abar_0) z0, and x_t at
   * timesteps ts (one per row, in [0, T)). What the loss trains on and the classifier reads.
   */
  noise(ids: Tensor, ts: Int32Array): { emb: Tensor; z0: Tensor; x0: Tensor; xt: Tensor } {
    const [B, L] = ids.shape;
    if (ids.ndim !== 2 || L !== this.config.seqLen)
      throw new KilnError('SHAPE_MISMATCH', `DiffusionLM: ids must be int32 [B, ${this.config.seqLen}], got [${ids.shape}]`);
    if (ts.length !== B) throw new KilnError('SHAPE_MISMATCH', `DiffusionLM: ${ts.length} timesteps for a batch of ${B}`);
    const emb = this.wordEmb.forward(ids);
    const z0 = randn(emb.shape);
    const x0 = add(emb, mul(z0, this.sigma0));
    return { emb, z0, x0, xt: qSample(x0, Array.from(ts), this.schedule).xt };
  }

  /** sqrt(1 - abar_0): the noise x0 carries around EMB(w). */
  get sigma0(): number {
    return Math.sqrt(1 - this.schedule.alphasCumprod[0]);
  }

  /**
   * The training objective on a batch of ids [B, L] at timesteps t (one per row, in [0, T)). Every
   * term is a mean, as in the paper's code (mean over positions and dims for the two squared
   * errors, over tokens for the rounding term).
   */
  losses(ids: Tensor, ts: Int32Array): LossTerms {
    const { emb, z0, x0, xt } = this.noise(ids, ts);
    const B = ids.shape[0], s = this.schedule;
    // The target: x0, but EMB(w) itself for rows at t = 0 (the paper's ||f(x_1, 1) - EMB(w)||^2 term).
    const keepNoise = fromTyped(Float32Array.from(ts, (v) => (v === 0 ? 0 : this.sigma0)), [B, 1, 1]);
    const target = add(emb, mul(z0, keepNoise));
    const out = this.predictX0(xt, fromTyped(ts, [B]));
    const mse = mseLoss(out, target);
    const prior = mul(mean(square(x0)), s.alphasCumprod[s.T - 1]);
    const rounding = crossEntropy(this.logits(x0), ids);
    return { loss: add(add(mse, prior), rounding), mse, prior, rounding };
  }

  /** Rounds vectors [..., d] to words: argmax of the rounding head. */
  round(x: Tensor): Tensor {
    return noGrad(() => argmax(this.logits(x), -1));
  }
}

/** Gradient-based control, applied to x_{t-1} after each posterior step (see control.ts). */
export type Guide = (mean: Tensor, sigma: number, modelT: number) => Tensor;

export interface SampleOptions {
  /** Sampling steps: the schedule respaced to this many (the paper samples 2000 -> 200). */
  steps: number;
  /** The clamping trick at every step (default true). */
  clamp?: boolean;
  /** Called with the posterior mean of x_{t-1} for t > 0; returns the controlled mean (no gradient needed outside). */
  guide?: Guide;
}

/**
 * Draws n sequences: x_T ~ N(0, I), then for each respaced step the denoiser's x0 (snapped to the
 * nearest embedding when clamping), the DDPM posterior mean, an optional control update of that
 * mean, plus sigma_t z; the final x0 is rounded to words. Returns the ids [n, L] and the last x0.
 */
export function sample(model: DiffusionLM, n: number, o: SampleOptions): { ids: Int32Array; x0: Tensor } {
  const { seqLen: L, embedDim: d } = model.config;
  const s = respace(model.schedule, o.steps);
  const E = model.wordEmb.weight;
  let x = keep(randn([n, L, d]));
  let x0: Tensor | null = null;
  for (let i = s.T - 1; i >= 0; i--) {
    const next = tidy(() => {
      const pred = noGrad(() => model.predictX0(x, full([n], s.timesteps[i], { dtype: 'int32' })));
      const clampTo = o.clamp === false ? undefined : E.detach();
      if (!o.guide || i === 0) {
        const r = ddpmStep(x, pred, i, s, { prediction: 'x0', clampTo });
        return { prev: r.prev, x0: r.x0 };
      }
      const r = ddpmStep(x, pred, i, s, { prediction: 'x0', clampTo, noise: zeros(x.shape) });
      const sigma = Math.exp(0.5 * s.posteriorLogVarianceClipped[i]);
      const m = o.guide(r.prev, sigma, s.timesteps[i - 1]);
      const prev = add(m, mul(randn(m.shape), sigma));
      if (m !== r.prev) m.dispose();  // a guide's result may be kept outside every scope
      return { prev, x0: r.x0 };
    });
    x.dispose();
    x0?.dispose();
    x = keep(next.prev);
    x0 = keep(next.x0);
  }
  x.dispose();
  const ids = tidy(() => model.round(x0!).dataSync() as Int32Array);
  return { ids: Int32Array.from(ids), x0: x0! };
}

/** Indices of the nearest embedding rows (the clamping map), for tests and diagnostics. */
export function nearestWords(model: DiffusionLM, x: Tensor): Int32Array {
  return tidy(() => Int32Array.from(nearestRows(x, model.wordEmb.weight.detach()).indices.dataSync() as Int32Array));
}
