// The model: GPT-2 with a linear read-in from R^d and a scalar read-out, reading its predictions at
// the x positions (token 2i predicts f(x_i) from everything before it, causally). The loss is the
// mean squared error over all x positions: every prefix length is trained in one pass.
import * as kiln from '../../index.js';
import type { Device, Tensor } from '../../index.js';
import { encodePrompts, type PromptBatch } from './prompts.js';

export type ModelSize = 'tiny' | 'small' | 'standard';
/** The paper's sizes: (layers, heads, width). */
export const MODEL_SIZES: Record<ModelSize, { nLayer: number; nHead: number; nEmbd: number }> = {
  tiny: { nLayer: 3, nHead: 2, nEmbd: 64 },
  small: { nLayer: 6, nHead: 4, nEmbd: 128 },
  standard: { nLayer: 12, nHead: 8, nEmbd: 256 },
};

export interface ModelSpec {
  nLayer: number;
  nHead: number;
  nEmbd: number;
  /** Input dimension d. */
  d: number;
  /** Most points a prompt holds (the context is 2 × points tokens). */
  points: number;
  device?: Device;
}

export function buildModel(s: ModelSpec): kiln.nn.GPT {
  const model = new kiln.nn.GPT({ nLayer: s.nLayer, nHead: s.nHead, nEmbd: s.nEmbd, inputDim: s.d, outputDim: 1, blockSize: 2 * s.points, device: s.device });
  // The paper's read-in and read-out are plain nn.Linear layers around the GPT-2 backbone, so they
  // keep PyTorch's default init (U(±1/√fan_in)), not GPT-2's N(0, 0.02): the inputs then dominate
  // the position embeddings from the first step, as in the authors' model.
  for (const l of [model.readIn!, model.readOut!]) {
    const bound = 1 / Math.sqrt(l.inFeatures);
    kiln.nn.uniform_(l.weight, -bound, bound);
    if (l.bias) kiln.nn.uniform_(l.bias, -bound, bound);
  }
  return model;
}

/** Predictions [B, n] at the x positions of a batch of prompts. */
export function predict(model: kiln.nn.GPT, batch: PromptBatch, device: Device = 'cpu'): Tensor {
  const { B, n, d } = batch;
  const tokens = kiln.fromTyped(encodePrompts(batch.xs, batch.ys, B, n, d), [B, 2 * n, d], { device });
  const out = model.forward(tokens); // [B, 2n, 1]
  return out.reshape([B, n, 2]).narrow(2, 0, 1).reshape([B, n]);
}

/** Mean squared error over every x position (the paper's training objective). */
export function promptLoss(model: kiln.nn.GPT, batch: PromptBatch, device: Device = 'cpu'): Tensor {
  const target = kiln.fromTyped(batch.ys, [batch.B, batch.n], { device });
  return kiln.mseLoss(predict(model, batch, device), target);
}
