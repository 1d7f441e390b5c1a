// BLEU and ROUGE as BIG-bench computes them through T5's metrics: sacrebleu's corpus BLEU
// (4-grams, exponential smoothing, the 'intl' tokenizer by default, several references per
// example) and rouge_score's rouge1/rouge2/rougeLsum F-measures (best reference per example),
// both on a 0-100 scale.

export type BleuTokenizer = 'intl' | '13a' | 'none';

/** sacrebleu's international tokenizer: split punctuation off non-digits, and every symbol. */
export function tokenizeIntl(line: string): string[] {
  return line
    .replace(/(\P{Nd})(\p{P})/gu, '$1 $2 ')
    .replace(/(\p{P})(\P{Nd})/gu, ' $1 $2')
    .replace(/(\p{S})/gu, ' $1 ')
    .split(/\s+/u)
    .filter((t) => t.length > 0);
}

/** sacrebleu's 13a tokenizer (mteval-v13a): the default for WMT scoring. */
export function tokenize13a(line: string): string[] {
  let s = line.replace(/<skipped>/g, '').replace(/-\n/g, '').replace(/\n/g, ' ');
  if (s.includes('&')) s = s.replace(/&quot;/g, '"').replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>');
  s = ` ${s} `
    .replace(/([{-~[-` -&(-+:-@\/])/g, ' $1 ')
    .replace(/([^0-9])([.,])/g, '$1 $2 ')
    .replace(/([.,])([^0-9])/g, ' $1 $2')
    .replace(/([0-9])(-)/g, '$1 $2 ');
  return s.split(/\s+/).filter((t) => t.length > 0);
}

function tokenizeFor(kind: BleuTokenizer): (s: string) => string[] {
  return kind === 'intl' ? tokenizeIntl : kind === '13a' ? tokenize13a : (s) => s.split(/\s+/).filter((t) => t.length > 0);
}

function ngramCounts(tokens: readonly string[], n: number): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i + n <= tokens.length; i++) {
    const key = tokens.slice(i, i + n).join('\u0001');
    m.set(key, (m.get(key) ?? 0) + 1);
  }
  return m;
}

export interface BleuResult {
  score: number;
  precisions: number[];
  brevityPenalty: number;
  sysLen: number;
  refLen: number;
}

/**
 * Corpus BLEU over `hypotheses[i]` against the references `references[i]` (one or more per
 * example), as sacrebleu.corpus_bleu(smooth_method='exp', use_effective_order=False).
 */
export function corpusBleu(hypotheses: readonly string[], references: readonly (readonly string[])[], tokenizer: BleuTokenizer = 'intl'): BleuResult {
  const tok = tokenizeFor(tokenizer);
  const order = 4;
  const correct = new Array<number>(order).fill(0);
  const total = new Array<number>(order).fill(0);
  let sysLen = 0;
  let refLen = 0;
  hypotheses.forEach((hyp, i) => {
    const h = tok(hyp);
    const refs = references[i].map(tok);
    sysLen += h.length;
    // Closest reference length, the shorter one on ties (sacrebleu).
    let best = Infinity;
    let bestLen = 0;
    for (const r of refs) {
      const d = Math.abs(r.length - h.length);
      if (d < best || (d === best && r.length < bestLen)) { best = d; bestLen = r.length; }
    }
    refLen += bestLen;
    for (let n = 1; n <= order; n++) {
      const hc = ngramCounts(h, n);
      const maxRef = new Map<string, number>();
      for (const r of refs) for (const [g, c] of ngramCounts(r, n)) maxRef.set(g, Math.max(maxRef.get(g) ?? 0, c));
      for (const [g, c] of hc) {
        correct[n - 1] += Math.min(c, maxRef.get(g) ?? 0);
        total[n - 1] += c;
      }
    }
  });
  const precisions = new Array<number>(order).fill(0);
  let smooth = 1;
  for (let n = 0; n < order; n++) {
    if (total[n] === 0) break;
    if (correct[n] === 0) { smooth *= 2; precisions[n] = 100 / (smooth * total[n]); }
    else precisions[n] = (100 * correct[n]) / total[n];
  }
  const brevityPenalty = sysLen === 0 ? 0 : sysLen < refLen ? Math.exp(1 - refLen / sysLen) : 1;
  const logSum = precisions.reduce((s, p) => s + (p > 0 ? Math.log(p) : -9999999999), 0);
  const score = brevityPenalty * Math.exp(logSum / order);
  return { score: Number.isFinite(score) ? score : 0, precisions, brevityPenalty, sysLen, refLen };
}

/** rouge_score's default tokenizer: lowercase, non-alphanumerics become spaces, no stemming. */
export function rougeTokenize(text: string): string[] {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, ' ').split(' ').filter((t) => /^[a-z0-9]+$/.test(t));
}

interface Prf { precision: number; recall: number; fmeasure: number }
function prf(hits: number, predCount: number, refCount: number): Prf {
  const precision = predCount > 0 ? hits / predCount : 0;
  const recall = refCount > 0 ? hits / refCount : 0;
  const fmeasure = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return { precision, recall, fmeasure };
}

function rougeN(ref: string[], pred: string[], n: number): Prf {
  const r = ngramCounts(ref, n);
  const p = ngramCounts(pred, n);
  let hits = 0;
  for (const [g, c] of p) hits += Math.min(c, r.get(g) ?? 0);
  const count = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  return prf(hits, count(p), count(r));
}

/** Indices into `ref` of one longest common subsequence of `ref` and `cand`. */
function lcsIndices(ref: readonly string[], cand: readonly string[]): number[] {
  const rows = ref.length + 1;
  const cols = cand.length + 1;
  const t = new Uint32Array(rows * cols);
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      t[i * cols + j] = ref[i - 1] === cand[j - 1] ? t[(i - 1) * cols + j - 1] + 1 : Math.max(t[(i - 1) * cols + j], t[i * cols + j - 1]);
    }
  }
  const out: number[] = [];
  let i = ref.length;
  let j = cand.length;
  while (i > 0 && j > 0) {
    if (ref[i - 1] === cand[j - 1]) { out.push(i - 1); i--; j--; }
    else if (t[(i - 1) * cols + j] >= t[i * cols + j - 1]) i--;
    else j--;
  }
  return out.reverse();
}

/** Summary-level LCS (rougeLsum): sentences are split on newlines; union LCS per reference sentence. */
function rougeLsum(refText: string, predText: string): Prf {
  const split = (s: string) => s.split('\n').map(rougeTokenize).filter((x) => x.length > 0);
  const refs = split(refText);
  const preds = split(predText);
  const m = refs.reduce((a, s) => a + s.length, 0);
  const n = preds.reduce((a, s) => a + s.length, 0);
  if (m === 0 || n === 0) return { precision: 0, recall: 0, fmeasure: 0 };
  const countTokens = (ss: string[][]) => { const c = new Map<string, number>(); for (const s of ss) for (const t of s) c.set(t, (c.get(t) ?? 0) + 1); return c; };
  const refCounts = countTokens(refs);
  const predCounts = countTokens(preds);
  let hits = 0;
  for (const r of refs) {
    const union = new Set<number>();
    for (const p of preds) for (const i of lcsIndices(r, p)) union.add(i);
    for (const i of [...union].sort((a, b) => a - b)) {
      const tokn = r[i];
      if ((predCounts.get(tokn) ?? 0) > 0 && (refCounts.get(tokn) ?? 0) > 0) {
        hits++;
        predCounts.set(tokn, predCounts.get(tokn)! - 1);
        refCounts.set(tokn, refCounts.get(tokn)! - 1);
      }
    }
  }
  return prf(hits, n, m);
}

export interface RougeScores { rouge1: number; rouge2: number; rougeLsum: number }

/** ROUGE F-measures of one prediction against one reference (0-1). */
export function rougePair(reference: string, prediction: string): RougeScores {
  // T5 puts each ' . '-ended sentence on its own line so that rougeLsum sees sentences.
  const prep = (s: string) => s.replace(/ \. /g, ' .\n');
  const r = rougeTokenize(reference);
  const p = rougeTokenize(prediction);
  return { rouge1: rougeN(r, p, 1).fmeasure, rouge2: rougeN(r, p, 2).fmeasure, rougeLsum: rougeLsum(prep(reference), prep(prediction)).fmeasure };
}

/** Mean over examples of the best-reference F-measure per ROUGE type, times 100. */
export function corpusRouge(predictions: readonly string[], references: readonly (readonly string[])[]): RougeScores {
  const sum: RougeScores = { rouge1: 0, rouge2: 0, rougeLsum: 0 };
  if (predictions.length === 0) return { rouge1: NaN, rouge2: NaN, rougeLsum: NaN };
  predictions.forEach((pred, i) => {
    const per = references[i].map((ref) => rougePair(ref, pred));
    for (const k of ['rouge1', 'rouge2', 'rougeLsum'] as const) sum[k] += Math.max(...per.map((s) => s[k]));
  });
  const n = predictions.length;
  return { rouge1: (100 * sum.rouge1) / n, rouge2: (100 * sum.rouge2) / n, rougeLsum: (100 * sum.rougeLsum) / n };
}
