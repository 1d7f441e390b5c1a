// The paper's fluency score: perplexity of generated sentences under a teacher language model
// trained on the same training texts (the paper fine-tunes GPT-2 on E2E; here a small kiln GPT
// learns the training split from scratch). Human held-out sentences give the reference level.
import { fromTyped } from '../../ops/creation.js';
import { crossEntropy } from '../../ops/nn.js';
import { GPT } from '../../nn/gpt.js';
import { noGrad } from '../../tensor/autograd.js';
import { manualSeed } from '../../tensor/random.js';
import { tidy } from '../../tensor/storage.js';
import type { WordTokenizer } from '../../train/tokenizer.js';
import { trainLoop, type TrainConfig, type TrainRecord } from './train.js';

export interface TeacherConfig {
  nLayer: number;
  nHead: number;
  nEmbd: number;
  train: Omit<TrainConfig, 'seed'>;
}

/** Each row of words as <bos> w1 .. wn <eos> <pad>...: `width` ids (rows longer than width - 2 words are cut). */
export function teacherRows(tok: WordTokenizer, rows: readonly (readonly string[])[], width: number): Int32Array {
  const out = new Int32Array(rows.length * width).fill(tok.padId);
  rows.forEach((words, r) => {
    const ids = [tok.bosId, ...words.slice(0, width - 2).map((w) => tok.tokenId(w)), tok.eosId];
    out.set(ids, r * width);
  });
  return out;
}

/** Next-token cross-entropy over the real tokens of rows [B, width] (<pad> targets ignored). */
function nextTokenLoss(gpt: GPT, ids: Int32Array, B: number, width: number, padId: number, reduction: 'mean' | 'sum') {
  const x = new Int32Array(B * (width - 1)), y = new Int32Array(B * (width - 1));
  for (let b = 0; b < B; b++) {
    x.set(ids.subarray(b * width, b * width + width - 1), b * (width - 1));
    y.set(ids.subarray(b * width + 1, (b + 1) * width), b * (width - 1));
  }
  const logits = gpt.forward(fromTyped(x, [B, width - 1]));
  return crossEntropy(logits, fromTyped(y, [B, width - 1]), { ignoreIndex: padId, reduction });
}

export async function trainTeacher(tok: WordTokenizer, rows: Int32Array, width: number, cfg: TeacherConfig, seed: number,
  log?: (line: string) => void): Promise<{ gpt: GPT; history: TrainRecord[]; seconds: number }> {
  manualSeed(seed);
  const gpt = new GPT({ nLayer: cfg.nLayer, nHead: cfg.nHead, nEmbd: cfg.nEmbd, blockSize: width - 1, vocabSize: tok.vocabSize });
  const run = await trainLoop(gpt, { ids: { data: rows, rowShape: [width], dtype: 'int32' } }, 1, { ...cfg.train, seed },
    (b) => ({ loss: nextTokenLoss(gpt, b.ids.dataSync() as Int32Array, b.ids.shape[0], width, tok.padId, 'mean') }), log);
  for (const p of gpt.parameters()) p.requiresGrad = false;
  return { gpt, ...run };
}

/** exp(mean next-token NLL) of the rows (their <eos> included) under the teacher; NaN for no rows. */
export function perplexity(gpt: GPT, tok: WordTokenizer, rows: readonly (readonly string[])[], width: number): number {
  if (rows.length === 0) return NaN;
  const ids = teacherRows(tok, rows, width);
  let nll = 0, tokens = 0;
  for (let s = 0; s < rows.length; s += 64) {
    const B = Math.min(64, rows.length - s);
    const part = ids.subarray(s * width, (s + B) * width);
    nll += tidy(() => noGrad(() => nextTokenLoss(gpt, part, B, width, tok.padId, 'sum').item()));
    for (let i = 0; i < part.length; i++) if (i % width > 0 && part[i] !== tok.padId) tokens++;
  }
  return Math.exp(nll / tokens);
}
