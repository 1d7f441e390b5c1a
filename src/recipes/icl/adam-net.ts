// The "2-layer net trained by gradient descent on the prompt" baseline: for each prefix length k,
// one ReLU net per prompt (d → hidden → 1, PyTorch's Linear init) is fit by Adam to the k
// in-context examples and predicts the query. All prompts train at once as parallel networks
// (batched matmuls over the prompt axis), in kiln; the paper used Adam, lr 5e-3, 100 steps.
import * as kiln from '../../index.js';
import type { Tensor } from '../../index.js';
import type { PromptBatch } from './prompts.js';

export interface AdamNetOptions {
  hidden?: number;
  lr?: number;
  steps?: number;
  seed?: number;
}

/** Predictions [B, positions.length]: at position k, a net trained on examples 0..k-1 (0 when k = 0). */
export function adamNetPredictions(batch: PromptBatch, positions: number[], o: AdamNetOptions = {}): Float64Array {
  const { B, n, d } = batch;
  const H = o.hidden ?? 100, lr = o.lr ?? 5e-3, steps = o.steps ?? 100;
  const out = new Float64Array(B * positions.length);
  const saved = kiln.getRngState();
  kiln.manualSeed(o.seed ?? 0);
  try {
    positions.forEach((k, pi) => {
      if (k === 0) return;
      const ctxX = new Float32Array(B * k * d), ctxY = new Float32Array(B * k), qX = new Float32Array(B * d);
      for (let b = 0; b < B; b++) {
        ctxX.set(batch.xs.subarray(b * n * d, (b * n + k) * d), b * k * d);
        ctxY.set(batch.ys.subarray(b * n, b * n + k), b * k);
        qX.set(batch.xs.subarray((b * n + k) * d, (b * n + k + 1) * d), b * d);
      }
      kiln.tidy(() => {
        const X = kiln.fromTyped(ctxX, [B, k, d]), Y = kiln.fromTyped(ctxY, [B, k, 1]), Q = kiln.fromTyped(qX, [B, 1, d]);
        const u = (shape: number[], fanIn: number) => kiln.rand(shape, { low: -1 / Math.sqrt(fanIn), high: 1 / Math.sqrt(fanIn), requiresGrad: true });
        const params = [u([B, d, H], d), u([B, 1, H], d), u([B, H, 1], H), u([B, 1, 1], H)];
        const [w1, b1, w2, b2] = params;
        const net = (x: Tensor) => kiln.add(kiln.matmul(kiln.relu(kiln.add(kiln.matmul(x, w1), b1)), w2), b2);
        const opt = new kiln.optim.Adam(params, { lr });
        for (let s = 0; s < steps; s++) {
          opt.zeroGrad();
          kiln.tidy(() => {
            // Sum over prompts of each prompt's MSE: every net gets the gradient of its own loss.
            kiln.mul(kiln.mseLoss(net(X), Y), B).backward();
          });
          opt.step();
        }
        const p = kiln.noGrad(() => net(Q)).toArray() as number[][][];
        for (let b = 0; b < B; b++) out[b * positions.length + pi] = p[b][0][0];
        for (const s of opt.stateDict().state) for (const t of Object.values(s)) t.dispose();
        opt.zeroGrad();
      });
    });
  } finally {
    kiln.setRngState(saved);
  }
  return out;
}
