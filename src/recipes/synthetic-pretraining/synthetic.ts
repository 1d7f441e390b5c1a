// The synthetic pre-training tasks of Wu, Li and Liang (arXiv 2206.10139), drawn fresh each step over
// the shared vocabulary's word ids, whose meaning they never use:
// - Set: the input is a token sequence with repeats; the output is its distinct tokens in the order
//   they first appear (the paper's simplest generic task).
// - LIME (Wu et al. 2021): a rule string over rule symbols and math symbols, a case mapping each rule
//   symbol to a string of math symbols, and the result of substituting the case into the rule;
//   Deduct gives rule and case and asks for the result, Abduct rule and result -> case, Induct case and
//   result -> rule. The three modes are mixed evenly.
import { KilnError } from '../../errors.js';
import { Gaussian } from '../icl/tasks.js';
import type { Pair, Vocab } from './data.js';

export interface SetConfig {
  /** Input length, uniform in [minLen, maxLen]. */
  minLen: number;
  maxLen: number;
  /** Chance that a token repeats an earlier one (else it is a fresh draw). */
  repeat: number;
}

/**
 * The paper's inputs run to 220 tokens; at this scale a 2+2-layer model learns Set on 3-12 tokens in
 * about 1,000 steps (loss 1.1) but barely on 5-30 (3.6 after 1,000 steps, lr 3e-3).
 */
export const DEFAULT_SET: SetConfig = { minLen: 3, maxLen: 12, repeat: 0.2 };

/** Distinct tokens of `ids` in first-appearance order. */
export function dedupe(ids: ArrayLike<number>): Int32Array {
  const seen = new Set<number>(), out: number[] = [];
  for (let i = 0; i < ids.length; i++) if (!seen.has(ids[i])) { seen.add(ids[i]); out.push(ids[i]); }
  return Int32Array.from(out);
}

/**
 * One Set example, as in the paper's data: length L, each token a uniform draw from the whole word
 * vocabulary, or with probability `repeat` a repeat of an earlier one.
 */
export function setPair(v: Vocab, cfg: SetConfig, g: Gaussian): Pair {
  const L = cfg.minLen + g.int(cfg.maxLen - cfg.minLen + 1);
  const src = new Int32Array(L);
  for (let i = 0; i < L; i++) src[i] = i > 0 && g.uniform() < cfg.repeat ? src[g.int(i)] : v.firstWord + g.int(v.endWord - v.firstWord);
  return { src, tgt: dedupe(src) };
}

/** `k` distinct integers of [lo, hi). */
function distinct(lo: number, hi: number, k: number, g: Gaussian): number[] {
  if (k > hi - lo) throw new KilnError('INVALID_ARGUMENT', `synthetic-pretraining: cannot draw ${k} distinct tokens from ${hi - lo}`);
  const picked = new Set<number>();
  while (picked.size < k) picked.add(lo + g.int(hi - lo));
  return [...picked];
}

export interface LimeConfig {
  /** Sizes of the two symbol alphabets (drawn once per run from the word ids, disjoint). */
  ruleSymbols: number;
  mathSymbols: number;
  /** Rule length, distinct rule symbols in a rule, and substitution length, each uniform in its range. */
  ruleLen: [number, number];
  ruleVars: [number, number];
  substLen: [number, number];
}

export const DEFAULT_LIME: LimeConfig = { ruleSymbols: 20, mathSymbols: 40, ruleLen: [5, 10], ruleVars: [1, 4], substLen: [1, 3] };

export type LimeMode = 'deduct' | 'abduct' | 'induct';
export const LIME_MODES: LimeMode[] = ['deduct', 'abduct', 'induct'];

/** LIME's two alphabets, fixed for a run. */
export interface LimeAlphabet {
  rule: number[];
  math: number[];
}

export function limeAlphabet(v: Vocab, cfg: LimeConfig, g: Gaussian): LimeAlphabet {
  const all = distinct(v.firstWord, v.endWord, cfg.ruleSymbols + cfg.mathSymbols, g);
  return { rule: all.slice(0, cfg.ruleSymbols), math: all.slice(cfg.ruleSymbols) };
}

const inRange = (r: [number, number], g: Gaussian) => r[0] + g.int(r[1] - r[0] + 1);

/** A rule, its case and result, as token arrays (the case as `symbol <is> string <and> ...` in first-use order). */
export function limeTriple(v: Vocab, a: LimeAlphabet, cfg: LimeConfig, g: Gaussian): { rule: number[]; kase: number[]; result: number[] } {
  const vars = distinct(0, a.rule.length, Math.min(inRange(cfg.ruleVars, g), a.rule.length), g).map((i) => a.rule[i]);
  const len = Math.max(inRange(cfg.ruleLen, g), vars.length);
  const rule: number[] = [];
  for (let i = 0; i < len; i++) rule.push(i < vars.length ? vars[i] : g.uniform() < 0.5 ? vars[g.int(vars.length)] : a.math[g.int(a.math.length)]);
  for (let i = len - 1; i > 0; i--) {
    const j = g.int(i + 1);
    [rule[i], rule[j]] = [rule[j], rule[i]];
  }
  const subst = new Map<number, number[]>();
  for (const s of vars) subst.set(s, Array.from({ length: inRange(cfg.substLen, g) }, () => a.math[g.int(a.math.length)]));
  const kase: number[] = [];
  for (const s of dedupe(rule.filter((t) => subst.has(t)))) {
    if (kase.length) kase.push(v.id('<and>'));
    kase.push(s, v.id('<is>'), ...subst.get(s)!);
  }
  return { rule, kase, result: rule.flatMap((t) => subst.get(t) ?? [t]) };
}

/** One LIME example of `mode` (random when not given). */
export function limePair(v: Vocab, a: LimeAlphabet, cfg: LimeConfig, g: Gaussian, mode?: LimeMode): Pair {
  const m = mode ?? LIME_MODES[g.int(3)];
  const { rule, kase, result } = limeTriple(v, a, cfg, g);
  const [x, y, out] = m === 'deduct' ? [rule, kase, result] : m === 'abduct' ? [rule, result, kase] : [kase, result, rule];
  return { src: Int32Array.from([v.id(`<${m}>`), ...x, v.id('<sep>'), ...y]), tgt: Int32Array.from(out) };
}
