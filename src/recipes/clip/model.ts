// CLIP at small scale: the `ssl` recipe's image encoder with a linear projection into a joint
// space, a bag-of-words text encoder (count vector -> Linear -> ReLU -> Linear), and the symmetric
// contrastive loss with a learned logit scale (started at log(1 / 0.07), as CLIP does) on the
// fused kernel. The linear probe reads the image encoder's representation, as it does for SimCLR.
import { fill } from '../../ops/creation.js';
import { clipLoss } from '../../ops/contrastive.js';
import { Linear, Module, parameter, ReLU, Sequential } from '../../nn/index.js';
import type { Tensor } from '../../tensor/tensor.js';
import { Encoder, type ModelConfig } from '../ssl/model.js';

export interface ClipConfig {
  /** Joint embedding width. */
  jointDim: number;
  /** Hidden width of the text encoder. */
  textHidden: number;
}

export const DEFAULT_CLIP: ClipConfig = { jointDim: 128, textHidden: 256 };

export class ClipModel extends Module {
  encoder: Encoder;
  imageProj: Linear;
  text: Sequential;
  logitScale: Tensor;
  constructor(imageDim: number, vocabSize: number, model: ModelConfig, cfg: ClipConfig) {
    super();
    this.encoder = new Encoder(imageDim, model);
    this.imageProj = new Linear(model.zDim, cfg.jointDim);
    this.text = new Sequential(new Linear(vocabSize, cfg.textHidden), new ReLU(), new Linear(cfg.textHidden, cfg.jointDim));
    this.logitScale = parameter(fill([], Math.log(1 / 0.07)));
  }

  /** The CLIP loss of a batch of images [B, dims] and their captions' count vectors [B, vocab]. */
  terms(images: Tensor, captions: Tensor): { loss: Tensor } {
    return { loss: clipLoss(this.imageProj.forward(this.encoder.forward(images)), this.text.forward(captions), this.logitScale) };
  }
}
