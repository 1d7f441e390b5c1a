// Next-token choice from one row of logits, on the host in float64: greedy (the first maximum,
// as kiln.argmax), or temperature + nucleus (top-p) sampling by inverse CDF on one uniform
// number, and the log-probabilities reported with the choice. The logits are read back once per
// step anyway (a row is V floats), so none of this needs a kernel.
import { KilnError } from '../errors.js';

export interface TokenLogprob {
  id: number;
  logprob: number;
}

/** Index of the first maximum (NaN never wins). */
export function argmaxFirst(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best] || Number.isNaN(x[best])) best = i;
  return best;
}

function checkFinite(logits: ArrayLike<number>, op: string): void {
  for (let i = 0; i < logits.length; i++)
    if (!Number.isFinite(logits[i])) throw new KilnError('NON_FINITE', `${op}: logit ${i} is ${logits[i]}; the model's output is not finite`);
}

/** log softmax(logits) in float64. */
export function logSoftmax64(logits: ArrayLike<number>): Float64Array {
  checkFinite(logits, 'logSoftmax64');
  let m = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > m) m = logits[i];
  let z = 0;
  for (let i = 0; i < logits.length; i++) z += Math.exp(logits[i] - m);
  const lse = m + Math.log(z);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - lse;
  return out;
}

/** Token ids by descending value, ties by ascending id. */
function byValueDesc(x: ArrayLike<number>): number[] {
  return Array.from({ length: x.length }, (_, i) => i).sort((a, b) => x[b] - x[a] || a - b);
}

/**
 * The `k` most probable tokens of a log-probability row (descending, ties by id), plus `chosen`
 * when it is not among them: OpenAI's top_logprobs, which always hold the sampled token.
 */
export function topLogprobs(lp: ArrayLike<number>, k: number, chosen?: number): TokenLogprob[] {
  const ids = k >= lp.length ? byValueDesc(lp) : partialTop(lp, k);
  const out = ids.map((id) => ({ id, logprob: lp[id] }));
  if (chosen !== undefined && !ids.includes(chosen)) out.push({ id: chosen, logprob: lp[chosen] });
  return out;
}

/** The k largest entries' ids (descending, ties by id) without sorting the whole row. */
function partialTop(x: ArrayLike<number>, k: number): number[] {
  const top: number[] = [];
  const before = (a: number, b: number) => x[a] > x[b] || (x[a] === x[b] && a < b);
  for (let i = 0; i < x.length && k > 0; i++) {
    if (top.length === k && !before(i, top[k - 1])) continue;
    let j = top.length === k ? k - 1 : top.length;
    if (top.length < k) top.push(i);
    while (j > 0 && before(i, top[j - 1])) {
      top[j] = top[j - 1];
      j--;
    }
    top[j] = i;
  }
  return top;
}

/**
 * The sampling distribution of softmax(logits / temperature) restricted to its nucleus: the
 * fewest most probable tokens (ties by id) whose probability sums to at least topP (at least one
 * token; topP 1 keeps every token). Ids in descending probability, probabilities renormalised.
 */
export function nucleus(logits: ArrayLike<number>, temperature: number, topP: number): { ids: number[]; probs: number[] } {
  checkSamplingParams(temperature, topP, 'nucleus');
  if (temperature === 0) return { ids: [argmaxFirst(logits)], probs: [1] };
  const p = scaledProbs(logits, temperature);
  const order = byValueDesc(p);
  const total = p.reduce((s, v) => s + v, 0);
  const ids: number[] = [];
  let mass = 0;
  for (const id of order) {
    ids.push(id);
    mass += p[id];
    if (mass >= topP * total * (1 - 1e-12)) break;
  }
  return { ids, probs: ids.map((id) => p[id] / mass) };
}

/** exp(logits / T - max), unnormalised, in float64. */
function scaledProbs(logits: ArrayLike<number>, temperature: number): Float64Array {
  checkFinite(logits, 'sampleToken');
  let m = -Infinity;
  for (let i = 0; i < logits.length; i++) m = Math.max(m, logits[i] / temperature);
  const p = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) p[i] = Math.exp(logits[i] / temperature - m);
  return p;
}

export function checkSamplingParams(temperature: number, topP: number, op: string): void {
  if (!(Number.isFinite(temperature) && temperature >= 0))
    throw new KilnError('INVALID_ARGUMENT', `${op}: temperature must be a finite number >= 0, got ${temperature}`);
  if (!(topP >= 0 && topP <= 1)) throw new KilnError('INVALID_ARGUMENT', `${op}: topP must be in [0, 1], got ${topP}`);
}

/**
 * One token from a row of logits: the first argmax at temperature 0, else the inverse CDF at `u`
 * (uniform in [0, 1)) of softmax(logits / temperature) over the nucleus (see `nucleus`), walked
 * in id order when topP is 1 and in descending probability otherwise.
 */
export function sampleToken(logits: ArrayLike<number>, temperature: number, topP: number, u: number): number {
  if (temperature === 0) {
    checkFinite(logits, 'sampleToken');
    return argmaxFirst(logits);
  }
  let ids: ArrayLike<number>, probs: ArrayLike<number>;
  if (topP >= 1) {
    checkSamplingParams(temperature, topP, 'sampleToken');
    const p = scaledProbs(logits, temperature);
    const total = p.reduce((s, v) => s + v, 0);
    ids = Array.from({ length: p.length }, (_, i) => i);
    probs = p.map((v) => v / total);
  } else ({ ids, probs } = nucleus(logits, temperature, topP));
  let acc = 0;
  for (let j = 0; j < ids.length; j++) {
    acc += probs[j];
    if (u < acc) return ids[j];
  }
  // Rounding left the probabilities summing to a hair under u: the last token with mass.
  for (let j = ids.length - 1; j >= 0; j--) if (probs[j] > 0) return ids[j];
  return ids[0];
}
