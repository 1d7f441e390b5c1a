// The encoder and the three objectives compared by the recipe, each as a Module holding its heads:
// - SimCLR: one MLP projector shared by both branches, NT-Xent with the self pair masked.
// - CISSL: the paper's contrastive ISSL: a linear predictor on the source branch against an MLP
//   projector on the target branch (the critic is linear in the representation the probe reads),
//   and the self pair kept with soft targets 0.5 / 0.5 on the two views.
// - DISSL: the paper's distillation ISSL: an MLP teacher assigns each view to one of C equivalence
//   classes (at half the student's temperature), a linear student predicts the other view's
//   assignment; loss = CE(teacher, student) - lambda * H(mean teacher) + beta * CE(teacher, teacher'),
//   i.e. distillation + maximality + determinism/invariance.
// Heads follow the paper's code: MLP projectors with batch norm, linear predictors (with a final
// batch norm on the contrastive heads).
import { KilnError } from '../../errors.js';
import { BatchNorm1d, Linear, Module, ReLU, Sequential } from '../../nn/index.js';
import { cisslLoss, disslCrossEntropy, meanEntropy, ntXent } from '../../ops/contrastive.js';
import { add, mul, sub } from '../../ops/elementwise.js';
import { concat } from '../../ops/views.js';
import type { Tensor } from '../../tensor/tensor.js';

export type Objective = 'simclr' | 'cissl' | 'dissl';
export const OBJECTIVES: Objective[] = ['simclr', 'cissl', 'dissl'];

export interface ModelConfig {
  /** Hidden width of the encoder. */
  hidden: number;
  /** Representation dimension (what the linear probe reads). */
  zDim: number;
  /** Hidden width of the MLP heads. */
  headHidden: number;
  /** Output width of the contrastive heads. */
  projDim: number;
  /** DISSL: number of equivalence classes C. */
  classes: number;
  /** Contrastive temperature; DISSL's student temperature (its teacher uses half). */
  temperature: number;
  disslTemperature: number;
  /** DISSL weights of maximality (lambda) and determinism/invariance (beta). */
  lambdaMaximality: number;
  betaDetInv: number;
}

export const DEFAULT_MODEL: ModelConfig = {
  hidden: 512, zDim: 256, headHidden: 512, projDim: 128, classes: 128,
  temperature: 0.1, disslTemperature: 1, lambdaMaximality: 2.3, betaDetInv: 0.8,
};

const bnRelu = (i: number, o: number) => [new Linear(i, o), new BatchNorm1d(o), new ReLU()];

/** Images [B, dims] -> representation [B, zDim]: two Linear-BN-ReLU blocks (non-negative, like a ResNet's pooled output). */
export class Encoder extends Module {
  net: Sequential;
  constructor(inDim: number, readonly cfg: ModelConfig) {
    super();
    this.net = new Sequential(...bnRelu(inDim, cfg.hidden), ...bnRelu(cfg.hidden, cfg.zDim));
  }
  forward(x: Tensor): Tensor {
    return this.net.forward(x);
  }
}

const mlpHead = (i: number, h: number, o: number, finalBN: boolean) =>
  new Sequential(...bnRelu(i, h), new Linear(h, o), ...(finalBN ? [new BatchNorm1d(o)] : []));

/** The two halves of a [2N, D] batch swapped: row i pairs with row (i + N) mod 2N. */
export function swapViews(t: Tensor): Tensor {
  const n = t.shape[0] / 2;
  return concat([t.narrow(0, n, n), t.narrow(0, 0, n)], 0);
}

/** Scalar terms of one step; `loss` is minimised. */
export type Terms = Record<string, Tensor> & { loss: Tensor };

export class SSLModel extends Module {
  encoder: Encoder;
  projector: Sequential;
  predictor: Sequential | null;
  constructor(readonly objective: Objective, inDim: number, readonly cfg: ModelConfig) {
    super();
    if (!OBJECTIVES.includes(objective)) throw new KilnError('INVALID_ARGUMENT', `ssl: objective must be one of ${OBJECTIVES.join(', ')}, got '${objective}'`);
    this.encoder = new Encoder(inDim, cfg);
    const z = cfg.zDim, h = cfg.headHidden;
    if (objective === 'dissl') {
      this.projector = mlpHead(z, h, cfg.classes, false);
      this.predictor = new Sequential(new Linear(z, cfg.classes));
    } else {
      this.projector = mlpHead(z, h, cfg.projDim, true);
      this.predictor = objective === 'cissl' ? new Sequential(new Linear(z, cfg.projDim), new BatchNorm1d(cfg.projDim)) : null;
    }
  }

  /** The objective on two views: rows i and i + N of `views` ([2N, dims]) are the same prototype. */
  terms(views: Tensor): Terms {
    const n2 = views.shape[0];
    if (n2 < 4 || n2 % 2 !== 0) throw new KilnError('SHAPE_MISMATCH', `ssl ${this.objective}: needs an even number >= 4 of view rows, got ${n2}`);
    const z = this.encoder.forward(views);
    const c = this.cfg;
    if (this.objective === 'simclr') return { loss: ntXent(this.projector.forward(z), { temperature: c.temperature }) };
    if (this.objective === 'cissl') return { loss: cisslLoss(this.predictor!.forward(z), this.projector.forward(z), { temperature: c.temperature }) };
    const tau = c.disslTemperature, tauT = tau / 2;
    const teacher = this.projector.forward(z), student = this.predictor!.forward(z);
    const distill = disslCrossEntropy(teacher, swapViews(student), { teacherTemperature: tauT, studentTemperature: tau });
    const detInv = disslCrossEntropy(teacher, swapViews(teacher), { teacherTemperature: tauT, studentTemperature: tauT });
    const n = n2 / 2;
    const hMarginal = mul(add(meanEntropy(teacher.narrow(0, 0, n), { temperature: tauT }), meanEntropy(teacher.narrow(0, n, n), { temperature: tauT })), 0.5);
    const loss = add(sub(distill, mul(hMarginal, c.lambdaMaximality)), mul(detInv, c.betaDetInv));
    return { loss, distill, maximality: hMarginal, detInv };
  }
}
