// BIG-bench's metrics for multiple choice, exact match and log-likelihood, and its post-processing
// of generated text. BLEU and ROUGE live in text-metrics.ts.
import { createHash } from 'node:crypto';

/**
 * BIG-bench's post-processing of a generation: cut after the first stop string (the stop string is
 * kept, as BIG-bench keeps it; a stop string at position 0 is ignored, also as BIG-bench does),
 * then keep the first match of output_regex ('' when nothing matches). A regex with one capture
 * group yields that group; more than one group is refused, as BIG-bench refuses it.
 */
export function postprocessOutput(text: string, stopString?: string, outputRegex?: string): string {
  let out = text;
  if (stopString) {
    const at = out.indexOf(stopString);
    if (at > 0) out = out.slice(0, at + stopString.length);
  }
  if (outputRegex !== undefined) {
    const re = compilePythonRegex(outputRegex, 'g');
    const groups = compilePythonRegex(`${outputRegex}|`).exec('')!.length - 1;
    if (groups > 1) throw new Error(`output_regex ${outputRegex} has ${groups} capture groups; use non-capturing groups (?:...)`);
    const m = re.exec(out);
    out = m === null ? '' : groups === 1 ? (m[1] ?? '') : m[0];
  }
  return out;
}

/**
 * Compile a task's (Python) regex: with the `u` flag where it parses (Unicode classes as in
 * Python 3), else without it, since Python accepts escapes such as `\;` that `u` mode refuses.
 */
export function compilePythonRegex(source: string, flags = ''): RegExp {
  try {
    return new RegExp(source, flags + 'u');
  } catch {
    return new RegExp(source, flags);
  }
}

export function logSumExp(xs: readonly number[]): number {
  const m = Math.max(...xs);
  if (m === -Infinity) return -Infinity;
  let s = 0;
  for (const x of xs) s += Math.exp(x - m);
  return m + Math.log(s);
}

/** Log-probabilities renormalised over the choices (BIG-bench's `normalized_log_prob`). */
export function normalizeLogProbs(absolute: readonly number[]): number[] {
  const z = logSumExp(absolute);
  // Every choice impossible: no preference at all, so uniform.
  if (z === -Infinity) return absolute.map(() => -Math.log(absolute.length));
  return absolute.map((x) => x - z);
}

/**
 * argmax with BIG-bench's deterministic tie-breaking: among the maxima, pick the one indexed by
 * sha256(float64 bytes of the array) mod the number of maxima, so ties never favour position 0.
 */
export function argmaxTieBreak(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('argmax of an empty list');
  if (values.some(Number.isNaN)) throw new RangeError('argmax of a list holding NaN');
  const max = Math.max(...values);
  const maxima: number[] = [];
  values.forEach((v, i) => { if (v === max) maxima.push(i); });
  if (maxima.length === 1) return maxima[0];
  const bytes = Buffer.from(new Float64Array(values).buffer); // little-endian, like numpy on x86/arm
  const digest = BigInt('0x' + createHash('sha256').update(bytes).digest('hex'));
  return maxima[Number(digest % BigInt(maxima.length))];
}

/** What the metrics need from one scored multiple-choice example. */
export interface ChoiceRecord {
  /** Choices in target_scores order, their scores, and normalised log-probs in the same order. */
  choices: string[];
  scores: number[];
  logProbs: number[];
}

/** Mean over examples of the target score of the model's top choice. */
export function multipleChoiceGrade(records: readonly ChoiceRecord[]): number {
  if (records.length === 0) return NaN;
  let total = 0;
  for (const r of records) total += r.scores[argmaxTieBreak(r.logProbs)];
  return total / records.length;
}

/**
 * Multi-class Brier score, averaged over choices then examples: mean_k (p_k − y_k)², with p the
 * normalised choice probabilities and y the target scores clipped to [0, 1]. Lower is better.
 */
export function brierScore(records: readonly ChoiceRecord[]): number {
  if (records.length === 0) return NaN;
  let total = 0;
  for (const r of records) {
    let s = 0;
    r.logProbs.forEach((lp, k) => { const y = Math.min(1, Math.max(0, r.scores[k])); s += (Math.exp(lp) - y) ** 2; });
    total += s / r.choices.length;
  }
  return total / records.length;
}

/** The Brier score of a model that puts 1/K on every choice: the chance level. */
export function chanceBrierScore(records: readonly Pick<ChoiceRecord, 'scores'>[]): number {
  if (records.length === 0) return NaN;
  const uniform = records.map((r) => ({ choices: r.scores.map(String), scores: r.scores, logProbs: r.scores.map(() => -Math.log(r.scores.length)) }));
  return brierScore(uniform);
}

/**
 * Expected calibration error over `bins` equal-width confidence bins: the example's confidence is
 * its top choice's probability, its accuracy the target score of that choice (1 for correct).
 */
export function expectedCalibrationError(records: readonly ChoiceRecord[], bins = 10): number {
  if (records.length === 0) return NaN;
  const conf = new Array<number>(bins).fill(0);
  const acc = new Array<number>(bins).fill(0);
  const count = new Array<number>(bins).fill(0);
  for (const r of records) {
    const top = argmaxTieBreak(r.logProbs);
    const p = Math.exp(r.logProbs[top]);
    const b = Math.min(bins - 1, Math.floor(p * bins));
    conf[b] += p;
    acc[b] += Math.min(1, Math.max(0, r.scores[top]));
    count[b]++;
  }
  let ece = 0;
  for (let b = 0; b < bins; b++) if (count[b] > 0) ece += Math.abs(acc[b] - conf[b]) / records.length;
  return ece;
}

/** Expected multiple_choice_grade of a uniformly random guess: mean over examples of mean score. */
export function chanceMultipleChoiceGrade(records: readonly Pick<ChoiceRecord, 'scores'>[]): number {
  if (records.length === 0) return NaN;
  return records.reduce((s, r) => s + r.scores.reduce((a, b) => a + b, 0) / r.scores.length, 0) / records.length;
}

/** Fraction of responses equal to one of their targets (no normalisation, as in BIG-bench). */
export function exactStrMatch(responses: readonly string[], targets: readonly (readonly string[])[]): number {
  if (responses.length === 0) return NaN;
  let n = 0;
  responses.forEach((r, i) => { if (targets[i].includes(r)) n++; });
  return n / responses.length;
}

/** Mean over examples of the mean absolute log-probability of the targets given the prompt. */
export function logLikelihood(targetLogProbs: readonly (readonly number[])[]): number {
  if (targetLogProbs.length === 0) return NaN;
  return targetLogProbs.reduce((s, lps) => s + lps.reduce((a, b) => a + b, 0) / lps.length, 0) / targetLogProbs.length;
}
