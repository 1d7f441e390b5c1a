// The model of `synthetic-pretraining`: one small encoder-decoder transformer (kiln's Seq2Seq, a
// T5-like shape with one shared token embedding) for every pre-training and downstream task; its
// training run on the project's Trainer, greedy decoding, and the paper's "parameter statistics"
// initialisation.
import * as kiln from '../../index.js';
import { KilnError } from '../../errors.js';
import { Seq2Seq } from '../../nn/index.js';
import type { Module, StateDict } from '../../nn/module.js';
import { fitAdamW, type TermsRecord, type TrainConfig } from '../fit.js';
import { collate, type Batch, type Pair, type Vocab } from './data.js';

export type { TrainConfig };

export interface ModelConfig {
  nLayer: number;
  nHead: number;
  nEmbd: number;
  /** Longest input or output (with <bos> / <eos>). */
  maxLen: number;
  /**
   * Init std of the shared token embedding. The output logits are h . e_w with h layer-normed (norm
   * about sqrt(nEmbd)), so GPT-2's 0.02 caps a logit near 0.02 * nEmbd = 2.6 and a 1,300-word softmax
   * cannot get sharp until the embeddings grow: copying words would take thousands of steps.
   */
  embedStd: number;
}

export const DEFAULT_MODEL: ModelConfig = { nLayer: 2, nHead: 4, nEmbd: 128, maxLen: 64, embedStd: 0.05 };

export function buildModel(v: Vocab, cfg: ModelConfig): Seq2Seq {
  const { embedStd, ...shape } = cfg;
  const m = new Seq2Seq({ srcVocabSize: v.tok.vocabSize, tgtVocabSize: v.tok.vocabSize, shareEmbeddings: true, ...shape });
  const fresh = kiln.randn(m.tgtEmbed.weight.shape, { std: embedStd });
  m.loadStateDict({ 'encoder.wte.weight': fresh }, { strict: false });
  fresh.dispose();
  return m;
}

/** Mean token cross-entropy of the labels (padding ignored) under teacher forcing. */
export function seqLoss(m: Seq2Seq, b: Batch): kiln.Tensor {
  const logits = m.decode(b.tgtIn, m.encode(b.src, b.srcMask), b.srcMask);
  const [B, T, V] = logits.shape;
  return kiln.crossEntropy(logits.reshape([B * T, V]), b.labels.reshape([B * T]));
}

/**
 * Trains `m` on `pairsAt(step)` (a batch of examples per step) with AdamW, linear warm-up then cosine
 * decay and clipping at norm 1; the loss is averaged over tenths of the run into the history.
 */
export async function trainSeq2Seq(name: string, m: Seq2Seq, v: Vocab, pairsAt: (step: number) => Pair[], t: TrainConfig, log: (l: string) => void): Promise<{ history: TermsRecord[]; seconds: number; finalLoss: number }> {
  const { history, seconds } = await fitAdamW<Batch>({
    model: m, train: t, data: (step) => collate(v, pairsAt(step)), clipGradNorm: 1,
    logEvery: Math.max(1, Math.floor(t.steps / 10)), terms: (b) => ({ loss: seqLoss(m, b) }), log: (l) => log(`${name}: ${l}`),
  });
  return { history, seconds, finalLoss: history.length ? history[history.length - 1].loss : NaN };
}

/**
 * Greedy decoding of each input (batches of `batch`), up to `maxOut` tokens or <eos>; the outputs
 * without <bos> / <eos>.
 */
export function greedyDecode(m: Seq2Seq, v: Vocab, srcs: readonly Int32Array[], maxOut: number, batch = 128): Int32Array[] {
  if (!(Number.isInteger(maxOut) && maxOut >= 1 && maxOut < m.config.maxLen))
    throw new KilnError('INVALID_ARGUMENT', `synthetic-pretraining: maxOut must be an integer in [1, ${m.config.maxLen - 1}], got ${maxOut}`);
  const out: Int32Array[] = [];
  const wasTraining = m.training;
  m.eval();
  try {
    for (let s = 0; s < srcs.length; s += batch) {
      const chunk = srcs.slice(s, s + batch), B = chunk.length;
      const rows: number[][] = chunk.map(() => []);
      const done = new Uint8Array(B);
      const cache = m.createCache();
      try {
        kiln.tidy(() => kiln.noGrad(() => {
          const b = collate(v, chunk.map((src) => ({ src, tgt: new Int32Array(0) })));
          const memory = m.encode(b.src, b.srcMask);
          let last = new Int32Array(B).fill(v.tok.bosId);
          for (let t = 0; t < maxOut && done.some((d) => !d); t++) {
            const next = kiln.tidy(() => Int32Array.from(m.decodeCached(kiln.fromTyped(last, [B, 1], { dtype: 'int32' }), memory, b.srcMask, cache).argmax(-1).dataSync()));
            for (let i = 0; i < B; i++) {
              if (done[i]) continue;
              if (next[i] === v.tok.eosId) done[i] = 1;
              else rows[i].push(next[i]);
            }
            last = next;
          }
        }));
      } finally {
        cache.dispose();
      }
      for (const r of rows) out.push(Int32Array.from(r));
    }
  } finally {
    m.train(wasTraining);
  }
  return out;
}

/**
 * The paper's third experiment: each parameter tensor of `model` drawn afresh from a normal with the
 * mean and standard deviation of the same tensor in `from` (the pre-trained weights' statistics,
 * none of their values). Draws from the global generator (seed it first).
 */
export function initFromStatistics(model: Module, from: StateDict): { name: string; mean: number; std: number }[] {
  const src = new Map(Object.entries(from));
  const stats: { name: string; mean: number; std: number }[] = [];
  const fresh: Record<string, kiln.Tensor> = {};
  for (const [name, p] of model.namedParameters()) {
    const q = src.get(name);
    if (!q || q.shape.length !== p.shape.length || q.shape.some((d, i) => d !== p.shape[i]))
      throw new KilnError('SHAPE_MISMATCH', `synthetic-pretraining: no parameter '${name}' of the same shape to take statistics from`);
    const x = q.dataSync();
    let s = 0, s2 = 0;
    for (let i = 0; i < x.length; i++) s += x[i];
    const mean = s / x.length;
    for (let i = 0; i < x.length; i++) s2 += (x[i] - mean) ** 2;
    const std = x.length > 1 ? Math.sqrt(s2 / (x.length - 1)) : 0;
    stats.push({ name, mean, std });
    fresh[name] = kiln.randn(p.shape, { mean, std, dtype: p.dtype });
  }
  try {
    model.loadStateDict(fresh, { strict: false });
  } finally {
    for (const t of Object.values(fresh)) t.dispose();
  }
  return stats;
}
