// Sampled decoding and prompt scoring on a token-mode kiln GPT, with what an OpenAI-style answer
// reports: each chosen token's log-probability (the model's own, before temperature and top-p)
// and the most probable alternatives.
//
// decodeRows runs the GPT's KV cache exactly as KilnLanguageModel's greedy decoder does (a prefill
// over each context's last blockSize tokens, then one token per active row per step, finished rows
// dropped, a row past blockSize rebuilt from its last blockSize tokens), so at temperature 0 it
// gives KilnLanguageModel#generate's tokens. Each row has its own temperature, top-p, stop
// strings, token budget and random stream: a row's draw at step t is uniformAt(seed, stream, t).
//
// scorePromptTokens gives log p(token_t | tokens before t) for every token of a context after the
// first, in windows of blockSize inputs anchored at the context's end (the windows
// KilnLanguageModel#scoreChoices uses), so echo + logprobs over context + choice reproduce its
// choice scores.
import * as kiln from '../index.js';
import type { Tensor } from '../index.js';
import { KilnError } from '../errors.js';
import { uniformAt } from './philox.js';
import { argmaxFirst, checkSamplingParams, logSoftmax64, sampleToken, topLogprobs, type TokenLogprob } from './sampling.js';
import { commonPrefix } from './tokens.js';

type GPT = InstanceType<typeof kiln.nn.GPT>;
type Tokenizer = kiln.train.Tokenizer;

export interface DecodeRow {
  /** The context's token ids (at least one; the last blockSize are used). */
  context: Int32Array;
  /** Upper bound on decoding steps (an end-of-text token counts as one). */
  maxTokens: number;
  /** 0: greedy (first argmax); > 0: sample softmax(logits / temperature). */
  temperature: number;
  /** Nucleus mass in [0, 1] (1: every token). */
  topP: number;
  /** The random stream: seed (unsigned 64-bit) and stream number. */
  seed: bigint;
  stream: number;
  /** Decoding stops once the generated text holds one of these (non-empty) strings. */
  stop: string[];
  /** Alternatives to report per generated token (top_logprobs); null: none. */
  topK: number | null;
}

export interface DecodedRow {
  /** Generated ids (an end-of-text token is not one of them). */
  ids: number[];
  /** log p of each generated id under the model (temperature 1, no nucleus). */
  logprobs: number[];
  /** Per generated id, the topK most probable tokens plus the chosen one (null when topK is null). */
  top: TokenLogprob[][] | null;
  /** decode(ids), and where in it each generated id's piece starts. */
  text: string;
  starts: number[];
  /** Where the first stop string starts in text (the returned text ends there), else -1. */
  cut: number;
  finishReason: 'stop' | 'length';
  /** Decoding steps run (generated ids, plus the end-of-text token if one was drawn). */
  steps: number;
}

/** The LM head's weight [V, nEmbd] (the tied token embedding unless tieWeights was false). */
export const headWeight = (model: GPT): Tensor => kiln.nn.headWeight(model);

/** The tokenizer's end-of-text id (WordTokenizer's <eos>), or null. */
export function eosId(tokenizer: Tokenizer): number | null {
  return tokenizer instanceof kiln.train.WordTokenizer ? tokenizer.eosId : null;
}

/** The tokenizer's beginning-of-text id (WordTokenizer's <bos>), or null. */
export function bosId(tokenizer: Tokenizer): number | null {
  return tokenizer instanceof kiln.train.WordTokenizer ? tokenizer.bosId : null;
}

function checkLanguageModel(model: GPT, tokenizer: Tokenizer, op: string): number {
  if (!(model instanceof kiln.nn.GPT) || !model.wte || model.config.vocabSize === undefined)
    throw new KilnError('INVALID_ARGUMENT', `${op}: model must be a token-mode kiln.nn.GPT (vocabSize set)`);
  if (tokenizer.vocabSize !== model.config.vocabSize)
    throw new KilnError('INVALID_ARGUMENT', `${op}: tokenizer vocabulary (${tokenizer.vocabSize}) does not match the GPT's vocabSize (${model.config.vocabSize})`);
  return model.config.vocabSize;
}

function checkRow(r: DecodeRow, i: number, V: number): void {
  const op = `decodeRows: row ${i}`;
  if (!(r.context instanceof Int32Array) || r.context.length === 0) throw new KilnError('INVALID_ARGUMENT', `${op}: context must be a non-empty Int32Array`);
  for (const id of r.context) if (id < 0 || id >= V) throw new KilnError('INDEX_OUT_OF_RANGE', `${op}: token id ${id} outside [0, ${V})`);
  if (!(Number.isInteger(r.maxTokens) && r.maxTokens >= 0)) throw new KilnError('INVALID_ARGUMENT', `${op}: maxTokens must be an integer >= 0, got ${r.maxTokens}`);
  checkSamplingParams(r.temperature, r.topP, op);
  if (typeof r.seed !== 'bigint' || r.seed < 0n || r.seed >= 1n << 64n) throw new KilnError('INVALID_ARGUMENT', `${op}: seed must be a bigint in [0, 2^64)`);
  if (!(Number.isInteger(r.stream) && r.stream >= 0 && r.stream < 2 ** 32)) throw new KilnError('INVALID_ARGUMENT', `${op}: stream must be an integer in [0, 2^32)`);
  if (r.topK !== null && !(Number.isInteger(r.topK) && r.topK >= 0)) throw new KilnError('INVALID_ARGUMENT', `${op}: topK must be null or an integer >= 0`);
}

function withEval<T>(model: GPT, fn: () => T): T {
  const was = model.training;
  model.eval();
  try {
    return fn();
  } finally {
    model.train(was);
  }
}

/** The earliest start of any of `stops` in `text` at or after `from`, or -1. */
function firstStop(text: string, stops: string[], from: number): number {
  let cut = -1;
  for (const s of stops) {
    if (s.length === 0) continue;
    const at = text.indexOf(s, from);
    if (at >= 0 && (cut < 0 || at < cut)) cut = at;
  }
  return cut;
}

/**
 * Decodes every row (in forwards of at most maxBatch rows, default 8); see the file comment. A row
 * for which `stopped(i)` turns true ends at its next step (kiln serve: the client went away).
 */
export function decodeRows(model: GPT, tokenizer: Tokenizer, rows: DecodeRow[], opts: { maxBatch?: number; stopped?: (row: number) => boolean } = {}): DecodedRow[] {
  const V = checkLanguageModel(model, tokenizer, 'decodeRows');
  rows.forEach((r, i) => checkRow(r, i, V));
  const maxBatch = Math.max(1, Math.floor(opts.maxBatch ?? 8));
  const chars = tokenizer instanceof kiln.train.CharTokenizer;
  const eos = eosId(tokenizer);
  const out: DecodedRow[] = rows.map((r) => ({
    ids: [], logprobs: [], top: r.topK === null ? null : [], text: '', starts: [], cut: -1, finishReason: 'length', steps: 0,
  }));
  kiln.nn.decodeSteps(model, rows, (i, row) => {
    const r = rows[i], o = out[i];
    if (opts.stopped?.(i)) return { id: 0, more: false };
    const id = r.temperature === 0 ? argmaxFirst(row) : sampleToken(row, r.temperature, r.topP, uniformAt(r.seed, r.stream, o.steps));
    o.steps++;
    if (eos !== null && id === eos) {
      o.finishReason = 'stop';
      return { id, more: false };
    }
    const lp = logSoftmax64(row);
    o.ids.push(id);
    o.logprobs.push(lp[id]);
    if (o.top) o.top.push(topLogprobs(lp, r.topK!, id));
    // A character tokenizer's text grows by one piece; another tokenizer's text is decoded
    // whole (a word tokenizer's spacing depends on the neighbours).
    const text = chars ? o.text + tokenizer.decode([id]) : tokenizer.decode(o.ids);
    const start = chars ? o.text.length : commonPrefix(o.text, text);
    o.starts.push(start);
    // Text before `start` held no stop string, so only a stop that ends past it can be new.
    o.cut = firstStop(text, r.stop, start === o.text.length ? Math.max(0, start - maxStop(r.stop) + 1) : 0);
    o.text = text;
    if (o.cut >= 0) o.finishReason = 'stop';
    return { id, more: o.cut < 0 };
  }, maxBatch);
  return out;
}

const maxStop = (stops: string[]) => stops.reduce((m, s) => Math.max(m, s.length), 0);

export interface ScoredTokens {
  /** log p(token_t | earlier tokens) for t >= 1; null for the first token (nothing conditions it). */
  logprobs: (number | null)[];
  /** Per token, the topK most probable tokens at its position plus the token itself (null for the first, or when topK is null). */
  top: (TokenLogprob[] | null)[] | null;
}

/** Log-probabilities of a context's own tokens (see the file comment for the windows). */
export function scorePromptTokens(model: GPT, tokenizer: Tokenizer, ids: Int32Array, opts: { topK?: number | null; maxBatch?: number } = {}): ScoredTokens {
  const V = checkLanguageModel(model, tokenizer, 'scorePromptTokens');
  for (const id of ids) if (id < 0 || id >= V) throw new KilnError('INDEX_OUT_OF_RANGE', `scorePromptTokens: token id ${id} outside [0, ${V})`);
  const topK = opts.topK ?? null;
  const maxBatch = Math.max(1, Math.floor(opts.maxBatch ?? 8));
  const B = model.config.blockSize;
  const logprobs: (number | null)[] = Array.from({ length: ids.length }, () => null);
  const top: (TokenLogprob[] | null)[] | null = topK === null ? null : Array.from({ length: ids.length }, () => null);
  // Window: inputs ids[start, hi - 1), predicting targets [lo, hi); from the end backwards.
  const windows: { start: number; lo: number; hi: number }[] = [];
  for (let hi = ids.length; hi > 1;) {
    const start = Math.max(0, hi - 1 - B);
    const lo = start + 1;
    windows.push({ start, lo, hi });
    hi = lo;
  }
  const device = model.wte!.weight.device;
  withEval(model, () => {
    for (let w0 = 0; w0 < windows.length; w0 += maxBatch) {
      const batch = windows.slice(w0, w0 + maxBatch);
      const T = Math.max(...batch.map((w) => w.hi - 1 - w.start));
      const flat = new Int32Array(batch.length * T);
      const gather: number[] = [];
      batch.forEach((w, b) => {
        flat.set(ids.subarray(w.start, w.hi - 1), b * T);
        for (let p = w.lo; p < w.hi; p++) gather.push(b * T + p - 1 - w.start);
      });
      const logits = kiln.tidy(() => kiln.noGrad(() => {
        const hidden = model.hidden(kiln.tensor(flat, { dtype: 'int32', shape: [batch.length, T], device }));
        const E = hidden.shape[2];
        const picked = kiln.embedding(kiln.reshape(hidden, [batch.length * T, E]), kiln.tensor(Int32Array.from(gather), { dtype: 'int32', device }));
        return kiln.nn.linear(picked, headWeight(model)).dataSync() as Float32Array;
      }));
      let k = 0;
      for (const w of batch) {
        for (let p = w.lo; p < w.hi; p++, k++) {
          const lp = logSoftmax64(logits.subarray(k * V, (k + 1) * V));
          logprobs[p] = lp[ids[p]];
          if (top) top[p] = topLogprobs(lp, topK!, ids[p]);
        }
      }
    }
  });
  return { logprobs, top };
}
