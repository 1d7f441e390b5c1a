// Plug-and-play semantic-content control (the paper's section 5): a classifier p(c | x_t, t) on the
// diffusion latents, trained on noised embeddings of the frozen language model, and a guide that,
// at each denoising step, moves the posterior mean mu of x_{t-1} by a few Adagrad steps on
//   log p(c | x_{t-1}) - lambda ||x_{t-1} - mu||^2 / (2 sigma^2)
// (control plus the fluency term log p(x_{t-1} | x_t)) before the sampler adds sigma z.
// The paper's content classifier is an autoregressive LM scoring the `field : value` tokens given
// x; here it is a bidirectional encoder with one softmax per MR field (its values plus 'absent').
import { KilnError } from '../../errors.js';
import { fromTyped, full, zeros } from '../../ops/creation.js';
import { add, div, mul, sqrt, square, sub } from '../../ops/elementwise.js';
import { crossEntropy, logSoftmax } from '../../ops/nn.js';
import { mean, sum } from '../../ops/reduce.js';
import { concat, detach, narrow } from '../../ops/views.js';
import { TransformerEncoder } from '../../nn/models.js';
import { Module } from '../../nn/module.js';
import { tidy, keep } from '../../tensor/storage.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { FieldSpace } from './data.js';
import type { Guide } from './model.js';

export interface ClassifierConfig {
  seqLen: number;
  embedDim: number;
  nLayer: number;
  nHead: number;
  nEmbd: number;
}

/**
 * p(field = value | x_t, t). With `readThrough`, the classifier reads x_t through the frozen
 * language model's x0 estimate f(x_t, t) (it is still a function of x_t, and its gradient flows
 * through the denoiser); without it, it reads x_t directly, as the paper's classifier does. At this
 * scale the direct classifier barely beats the majority class on noised latents after a minute of
 * training, while the read-through one learns in seconds what the denoiser already recovers.
 */
export class ContentClassifier extends Module {
  encoder: TransformerEncoder;
  private readonly through: ((x: Tensor, t: Tensor) => Tensor) | null;
  constructor(readonly space: FieldSpace, readonly config: ClassifierConfig, readThrough?: { predictX0(x: Tensor, t: Tensor): Tensor }) {
    super();
    this.encoder = new TransformerEncoder({
      nLayer: config.nLayer, nHead: config.nHead, nEmbd: config.nEmbd, maxLen: config.seqLen,
      inputDim: config.embedDim, outputDim: space.width, timestep: true,
    });
    // A closure, not a field: the language model's weights are not this module's parameters.
    this.through = readThrough ? (x, t) => readThrough.predictX0(x, t) : null;
  }

  get readsThrough(): boolean {
    return this.through !== null;
  }

  /** Logits [B, width] of latents x [B, L, d] at model timesteps t (int32 [B]): the encoder's outputs averaged over positions. */
  forward(x: Tensor, t: Tensor): Tensor {
    return mean(this.encoder.forward(this.through ? this.through(x, t) : x, { t }), 1);
  }

  /** Per-field log-probabilities [B, width] (each field's block is a log-softmax over its values and 'absent'). */
  logProbs(x: Tensor, t: Tensor): Tensor {
    const logits = this.forward(x, t);
    return concat(this.space.fields.map((_, k) => logSoftmax(narrow(logits, 1, this.space.offsets[k], this.space.values[k].length + 1), -1)), 1);
  }

  /** Mean over fields of the cross-entropy against labels [B, F] (fieldLabels). */
  loss(x: Tensor, t: Tensor, labels: Tensor): Tensor {
    const logits = this.forward(x, t);
    const F = this.space.fields.length;
    let total: Tensor | null = null;
    for (let k = 0; k < F; k++) {
      const ce = crossEntropy(narrow(logits, 1, this.space.offsets[k], this.space.values[k].length + 1), narrow(labels, 1, k, 1).reshape([-1]));
      total = total ? add(total, ce) : ce;
    }
    return mul(total!, 1 / F);
  }
}

/** A [n, width] one-hot mask of the class each row asks for (field offset + value index). */
export function targetMask(space: FieldSpace, classes: readonly [number, number][]): Tensor {
  const m = new Float32Array(classes.length * space.width);
  classes.forEach(([k, v], i) => {
    if (!(k >= 0 && k < space.fields.length && v >= 0 && v <= space.values[k].length))
      throw new KilnError('INDEX_OUT_OF_RANGE', `targetMask: class [${k}, ${v}] outside the label space`);
    m[i * space.width + space.offsets[k] + v] = 1;
  });
  return fromTyped(m, [classes.length, space.width]);
}

export interface GuidanceConfig {
  /** Adagrad steps per denoising step (3 in the paper). */
  steps: number;
  /** Adagrad learning rate. */
  stepSize: number;
  /** Weight of the fluency term log p(x_{t-1} | x_t) against the control term. */
  fluency: number;
}

/** The summed log p(c_i | x_i, t) over rows and its gradient in x; the gradient is kept (as every .grad is): the caller disposes it. */
export function controlLogProb(clf: ContentClassifier, x: Tensor, modelT: number, mask: Tensor): { value: number; grad: Tensor } {
  return tidy(() => {
    const y = detach(x);
    y.requiresGrad = true;
    const lp = sum(mul(clf.logProbs(y, full([x.shape[0]], modelT, { dtype: 'int32' })), mask));
    lp.backward();
    const grad = y.grad!;
    y.grad = null;
    return { value: lp.item(), grad };
  });
}

/**
 * The guide for model.sample: Adagrad ascent from mu on the control log-probability plus the
 * fluency term; the classifier must be frozen (requiresGrad off) so its weights gather nothing.
 */
export function contentGuide(clf: ContentClassifier, mask: Tensor, cfg: GuidanceConfig): Guide {
  return (mu, sigma, modelT) => {
    let y = keep(detach(mu));
    let G = keep(zeros(mu.shape));
    const w = cfg.fluency / (sigma * sigma);
    for (let k = 0; k < cfg.steps; k++) {
      const next = tidy(() => {
        const { grad } = controlLogProb(clf, y, modelT, mask);
        const g = sub(grad, mul(sub(y, mu), w));
        grad.dispose();  // a gradient is kept past every scope (parameters' must survive a tidy step)
        const G2 = add(G, square(g));
        return { y: add(y, mul(div(g, add(sqrt(G2), 1e-10)), cfg.stepSize)), G: G2 };
      });
      y.dispose();
      G.dispose();
      y = keep(next.y);
      G = keep(next.G);
    }
    G.dispose();
    return y;
  };
}
