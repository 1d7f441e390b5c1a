// Text generation from a token-mode GPT on its KV cache: `decodeSteps` is the loop (kiln serve's
// decoder runs on it too), `generate` the user-facing call (greedy, or temperature / top-k / top-p
// sampling on Philox streams, so a seed gives the same tokens on every run and device).
import { KilnError } from '../errors.js';
import { noGrad } from '../tensor/autograd.js';
import { reserve } from '../tensor/random.js';
import { tidy } from '../tensor/storage.js';
import type { Tensor } from '../tensor/tensor.js';
import { tensor } from '../ops/creation.js';
import { embedding } from '../ops/nn.js';
import { reshape } from '../ops/views.js';
import { philox4x32_10, seedKey, uniformAt } from '../serve/philox.js';
import { checkSamplingParams, sampleToken } from '../serve/sampling.js';
import { linear } from './functional.js';
import type { GPT } from './gpt.js';

/** The LM head's weight [V, nEmbd] (the tied token embedding unless tieWeights was false). */
export function headWeight(model: GPT): Tensor {
  return model.lmHead ? model.lmHead.weight : model.wte!.weight;
}

export interface StepRow {
  /** The context's token ids (at least one; the last blockSize are fed). */
  context: ArrayLike<number>;
  /** Upper bound on the tokens decoded for this row. */
  maxTokens: number;
}

/**
 * The KV-cache decoding loop: a prefill over each row's last blockSize context tokens, then one token
 * per active row per forward, finished rows dropped from the cache (a row past blockSize is rebuilt
 * by the cache from its last blockSize tokens). `next(i, logits, step)` gets row i's next-token
 * logits (a view, valid during the call) and its step (0 first) and returns the chosen id and whether
 * the row goes on; a row also stops after maxTokens. Rows run in forwards of at most `maxBatch`.
 * Runs in eval mode under noGrad (the model's mode is restored).
 */
export function decodeSteps(model: GPT, rows: readonly StepRow[], next: (i: number, logits: Float32Array, step: number) => { id: number; more: boolean },
  maxBatch = 8): void {
  const V = model.config.vocabSize;
  if (!model.wte || V === undefined) throw new KilnError('INVALID_ARGUMENT', 'decodeSteps: model must be a token-mode kiln.nn.GPT (vocabSize set)');
  const was = model.training;
  model.eval();
  try {
    for (let s = 0; s < rows.length; s += maxBatch) chunk(model, V, rows.slice(s, s + maxBatch), s, next);
  } finally {
    model.train(was);
  }
}

function chunk(model: GPT, V: number, rows: readonly StepRow[], first: number,
  next: (i: number, logits: Float32Array, step: number) => { id: number; more: boolean }): void {
  const B = model.config.blockSize;
  const device = model.wte!.weight.device;
  // order[k]: the row whose sequence is the cache's row k.
  let order = rows.map((_, i) => i).filter((i) => rows[i].maxTokens > 0);
  if (order.length === 0) return;
  const seqs = rows.map((r) => Array.from(r.context));
  const steps = rows.map(() => 0);
  const cache = model.createCache();
  try {
    let feed = order.map((i) => seqs[i].slice(-B));
    while (order.length > 0) {
      const lengths = feed.map((f) => f.length);
      const T = Math.max(...lengths);
      const flat = new Int32Array(order.length * T);
      feed.forEach((f, k) => flat.set(f, k * T));
      const logits = tidy(() => noGrad(() => {
        const hidden = model.hidden(tensor(flat, { dtype: 'int32', shape: [order.length, T], device }), { cache, lengths });
        const E = hidden.shape[2];
        const last = tensor(Int32Array.from(lengths, (m, k) => k * T + m - 1), { dtype: 'int32', device });
        return linear(embedding(reshape(hidden, [order.length * T, E]), last), headWeight(model)).dataSync() as Float32Array;
      }));
      const keep: number[] = [];
      order.forEach((i, k) => {
        const { id, more } = next(first + i, logits.subarray(k * V, (k + 1) * V), steps[i]);
        steps[i]++;
        seqs[i].push(id);
        if (more && steps[i] < rows[i].maxTokens) keep.push(k);
      });
      if (keep.length < order.length) {
        if (keep.length > 0) cache.selectRows(keep);
        order = keep.map((k) => order[k]);
      }
      feed = order.map((i) => [seqs[i][seqs[i].length - 1]]);
    }
  } finally {
    cache.dispose();
  }
}

export interface GenerateOptions {
  /** Tokens to add to each prompt at most. */
  maxNewTokens: number;
  /** 0 (the default): greedy, the first most probable token; > 0: sample softmax(logits / temperature). */
  temperature?: number;
  /** Sample only among the k most probable tokens (0, the default: all). */
  topK?: number;
  /** Nucleus mass in (0, 1] (1, the default: every token). */
  topP?: number;
  /**
   * The sampling seed (an integer): prompt i samples stream i of it, so a seed gives the same tokens
   * on every run, batch split and device. Default: drawn from kiln's global generator (manualSeed
   * makes it reproducible).
   */
  seed?: number | bigint;
  /** A token that ends a prompt's generation (not included in its output). */
  eosId?: number;
  /** Prompts per forward (default 8). */
  maxBatch?: number;
}

/** A seed from the global Philox stream (4 words of it), so successive calls differ and manualSeed repeats them. */
function globalSeed(): bigint {
  const [lo, hi, off] = reserve(4);
  const [w0, w1] = philox4x32_10(off % 2 ** 32, Math.floor(off / 2 ** 32), 0x67656e, 0, lo, hi);
  return (BigInt(w1 >>> 0) << 32n) | BigInt(w0 >>> 0);
}

/**
 * Continues each prompt (token ids) by up to maxNewTokens tokens on the model's KV cache and returns
 * the new tokens per prompt. Greedy by default; with a temperature, samples (after top-k, then top-p)
 * from a Philox stream per prompt (see GenerateOptions.seed).
 */
export function generate(model: GPT, prompts: readonly ArrayLike<number>[], opts: GenerateOptions): number[][] {
  const op = 'generate';
  const V = model.config.vocabSize;
  if (!model.wte || V === undefined) throw new KilnError('INVALID_ARGUMENT', `${op}: needs a token-mode GPT (vocabSize set)`);
  if (opts === null || typeof opts !== 'object') throw new KilnError('INVALID_ARGUMENT', `${op}: needs options { maxNewTokens, ... }`);
  const { maxNewTokens, temperature = 0, topK = 0, topP = 1, eosId, maxBatch = 8 } = opts;
  if (!(Number.isInteger(maxNewTokens) && maxNewTokens >= 0)) throw new KilnError('INVALID_ARGUMENT', `${op}: maxNewTokens must be an integer >= 0, got ${maxNewTokens}`);
  checkSamplingParams(temperature, topP, op);
  if (!(Number.isInteger(topK) && topK >= 0)) throw new KilnError('INVALID_ARGUMENT', `${op}: topK must be an integer >= 0, got ${topK}`);
  if (eosId !== undefined && !(Number.isInteger(eosId) && eosId >= 0 && eosId < V))
    throw new KilnError('INVALID_ARGUMENT', `${op}: eosId must be a token id in [0, ${V}), got ${eosId}`);
  if (!(Number.isInteger(maxBatch) && maxBatch >= 1)) throw new KilnError('INVALID_ARGUMENT', `${op}: maxBatch must be a positive integer, got ${maxBatch}`);
  if (!Array.isArray(prompts) || prompts.length >= 2 ** 32) throw new KilnError('INVALID_ARGUMENT', `${op}: prompts must be an array of token-id arrays`);
  prompts.forEach((p, i) => {
    if (p === null || typeof p !== 'object' || typeof p.length !== 'number' || p.length === 0)
      throw new KilnError('INVALID_ARGUMENT', `${op}: prompt ${i} must be a non-empty array of token ids`);
    for (let j = 0; j < p.length; j++)
      if (!(Number.isInteger(p[j]) && p[j] >= 0 && p[j] < V))
        throw new KilnError('INDEX_OUT_OF_RANGE', `${op}: prompt ${i} token ${j} is ${p[j]}, outside [0, ${V})`);
  });
  const seed = temperature === 0 ? 0n : opts.seed === undefined ? globalSeed() : seedKey(opts.seed);
  const out: number[][] = prompts.map(() => []);
  const keepK = topK > 0 && topK < V ? topK : 0;
  decodeSteps(model, prompts.map((context) => ({ context, maxTokens: maxNewTokens })), (i, logits, step) => {
    let id: number;
    if (temperature === 0) id = sampleToken(logits, 0, 1, 0);
    else if (!keepK) id = sampleToken(logits, temperature, topP, uniformAt(seed, i, step));
    else {
      // Among the tokens at or above the k-th largest logit (ties at it kept, as torch's
      // topk-then-mask keeps them), in id order; then top-p and the draw as without top-k.
      for (let j = 0; j < V; j++)
        if (!Number.isFinite(logits[j])) throw new KilnError('NON_FINITE', `${op}: logit ${j} is ${logits[j]}; the model's output is not finite`);
      const cut = Float32Array.from(logits).sort()[V - keepK];
      const ids: number[] = [];
      for (let j = 0; j < V; j++) if (logits[j] >= cut) ids.push(j);
      id = ids[sampleToken(Float32Array.from(ids, (j) => logits[j]), temperature, topP, uniformAt(seed, i, step))];
    }
    if (eosId !== undefined && id === eosId) return { id, more: false };
    out[i].push(id);
    return { id, more: true };
  }, maxBatch);
  return out;
}
