// What the simulated communities show, counted by the labeller, next to the world's own rates:
// behaviour rates per configuration, the what-if contrast, the multiverse's spread, and the
// acceptance checks with their counts and one-sided two-proportion z tests.
import { Rng } from '../bigbench/rng.js';
import type { Check } from '../report.js';
import {
  BEHAVIOURS, drawPersonas, drawThread, injectedReply, labels, postLabels, RULES, TEMPERAMENTS,
  type Behaviour, type Community, type Persona, type Temperament,
} from './world.js';
import type { SimThread } from './simulate.js';

export interface Count {
  k: number;
  n: number;
}
export const rate = (c: Count) => (c.n ? c.k / c.n : NaN);

/** Counts of each behaviour among posts (off-topic: posts only) and among replies. */
export interface Rates {
  posts: Record<Behaviour, Count>;
  replies: Record<Exclude<Behaviour, 'offtopic'>, Count>;
  /** Posts on the community's goal topic. */
  onGoal: Count;
}

const REPLY_BEHAVIOURS = ['insult', 'promo', 'meme'] as const;
const zero = (): Count => ({ k: 0, n: 0 });

export function emptyRates(): Rates {
  return {
    posts: Object.fromEntries(BEHAVIOURS.map((b) => [b, zero()])) as Rates['posts'],
    replies: Object.fromEntries(REPLY_BEHAVIOURS.map((b) => [b, zero()])) as Rates['replies'],
    onGoal: zero(),
  };
}

/** Labels every post and reply of `threads` (replies from index `skip` on) into counts. */
export function countThreads(c: Community, threads: readonly { post: { text: string }; replies: { text: string }[] }[], skip = 0, posts = true): Rates {
  const r = emptyRates();
  for (const t of threads) {
    if (posts) {
      const l = postLabels(t.post.text, c);
      for (const b of BEHAVIOURS) { r.posts[b].n++; if (l[b]) r.posts[b].k++; }
      r.onGoal.n++;
      if (labels(t.post.text).topic === c.goal) r.onGoal.k++;
    }
    for (const m of t.replies.slice(skip)) {
      const l = labels(m.text);
      for (const b of REPLY_BEHAVIOURS) { r.replies[b].n++; if (l[b]) r.replies[b].k++; }
    }
  }
  return r;
}

/** A behaviour over posts and replies together (off-topic: posts only). */
export function messageCount(r: Rates, b: Behaviour): Count {
  if (b === 'offtopic') return r.posts.offtopic;
  return { k: r.posts[b].k + r.replies[b].k, n: r.posts[b].n + r.replies[b].n };
}

/** The standard normal CDF (Abramowitz and Stegun 7.1.26 for erf, error under 1.5e-7). */
export function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const erf = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return z >= 0 ? 0.5 * (1 + erf) : 0.5 * (1 - erf);
}

/** One-sided two-proportion z test of "a's rate is above b's" (pooled variance); z 0 and p 0.5 when undefined. */
export function twoProportionZ(a: Count, b: Count): { z: number; p: number } {
  if (a.n === 0 || b.n === 0) return { z: 0, p: 0.5 };
  const pool = (a.k + b.k) / (a.n + b.n);
  const se = Math.sqrt(pool * (1 - pool) * (1 / a.n + 1 / b.n));
  if (se === 0) return { z: 0, p: 0.5 };
  const z = (a.k / a.n - b.k / b.n) / se;
  return { z, p: 1 - normalCdf(z) };
}

/** The world's own threads in `c` (fresh personas from the world's mix per thread), counted. */
export function worldRates(c: Community, threads: number, replies: number, personas: number, seed: number): Rates {
  const rng = new Rng(seed, 'simulacra-world-rates', c.name);
  const ts = Array.from({ length: threads }, () => drawThread(rng, c, drawPersonas(rng, personas), replies));
  return countThreads(c, ts);
}

/** The world's what-if: its own replies after an injected hostile or friendly reply. */
export function worldWhatIf(c: Community, threads: number, follow: number, personas: number, seed: number): { hostile: Count; friendly: Count } {
  const out = { hostile: zero(), friendly: zero() };
  for (const arm of ['hostile', 'friendly'] as const) {
    const rng = new Rng(seed, 'simulacra-world-whatif', c.name);
    for (let i = 0; i < threads; i++) {
      const ps = drawPersonas(rng, personas);
      const t = drawThread(rng, c, ps, 1 + follow, { author: ps[1].name, text: injectedReply(rng, c.goal, arm === 'hostile') });
      for (const m of t.replies.slice(1)) { out[arm].n++; if (labels(m.text).insult) out[arm].k++; }
    }
  }
  return out;
}

export function temperamentMix(ps: readonly Persona[]): Record<Temperament, number> {
  return Object.fromEntries(TEMPERAMENTS.map((t) => [t, ps.filter((p) => p.temperament === t).length])) as Record<Temperament, number>;
}

export interface RuleEffect {
  rule: Behaviour;
  /** The behaviour's count in the community with the rule and in the same one without it. */
  withRule: Count;
  withoutRule: Count;
  worldWith: number;
  worldWithout: number;
  z: number;
  p: number;
}

export function ruleEffect(rule: Behaviour, withRule: Rates, withoutRule: Rates, worldWith: Rates, worldWithout: Rates): RuleEffect {
  const a = messageCount(withoutRule, rule), b = messageCount(withRule, rule);
  const { z, p } = twoProportionZ(a, b);
  return { rule, withRule: b, withoutRule: a, worldWith: rate(messageCount(worldWith, rule)), worldWithout: rate(messageCount(worldWithout, rule)), z, p };
}

export interface Distinctness {
  /** Versions per thread, and how many distinct reply chains each thread's versions hold. */
  k: number;
  distinct: number[];
}

export function distinctness(versions: readonly SimThread[][]): Distinctness {
  return { k: versions[0]?.length ?? 0, distinct: versions.map((vs) => new Set(vs.map((v) => v.replies.map((m) => m.text).join('\n'))).size) };
}

export interface Tolerances {
  /** One-sided p below which a difference counts. */
  alpha: number;
  /** Largest allowed gap between a generated rate and the world's. */
  rateGap: number;
}

const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : '-');
const frac = (c: Count) => `${c.k}/${c.n}`;

export function acceptance(o: {
  rules: RuleEffect[];
  onGoal: { generated: Count; world: number };
  whatIf: { hostile: Count; friendly: Count; worldHostile: number; worldFriendly: number };
  /** The versions' rates, the same community's simulated threads' rates, and the world's. */
  multiverse: { d: Distinctness; generated: Rates; community: Rates; world: Rates };
  tol: Tolerances;
}): Check[] {
  const { tol } = o;
  const checks: Check[] = o.rules.map((e) => ({
    name: `rule '${RULES[e.rule]}' lowers ${e.rule} in the simulated community`,
    pass: rate(e.withRule) < rate(e.withoutRule) && e.p < tol.alpha,
    rule: `with ${frac(e.withRule)} = ${f3(rate(e.withRule))} (world ${f3(e.worldWith)}), without ${frac(e.withoutRule)} = ${f3(rate(e.withoutRule))} (world ${f3(e.worldWithout)}); z ${e.z.toFixed(2)}, one-sided p ${e.p.toExponential(1)} < ${tol.alpha}`,
  }));
  const g = rate(o.onGoal.generated);
  checks.push({
    name: 'posts follow the goal topic at the world\'s rate',
    pass: Math.abs(g - o.onGoal.world) <= tol.rateGap,
    rule: `${frac(o.onGoal.generated)} = ${f3(g)} on the goal, world ${f3(o.onGoal.world)}; gap <= ${tol.rateGap}`,
  });
  const w = o.whatIf, wz = twoProportionZ(w.hostile, w.friendly);
  checks.push({
    name: 'what-if: a hostile reply makes the following replies more hostile than a friendly one',
    pass: rate(w.hostile) > rate(w.friendly) && wz.p < tol.alpha,
    rule: `insults after hostile ${frac(w.hostile)} = ${f3(rate(w.hostile))} (world ${f3(w.worldHostile)}), after friendly ${frac(w.friendly)} = ${f3(rate(w.friendly))} (world ${f3(w.worldFriendly)}); z ${wz.z.toFixed(2)}, p ${wz.p.toExponential(1)} < ${tol.alpha}`,
  });
  const m = o.multiverse;
  const totalDistinct = m.d.distinct.reduce((a, b) => a + b, 0), versions = m.d.k * m.d.distinct.length;
  // Re-sampling must not drift from what the simulator writes for the community (the world's rates shown too).
  const gaps = REPLY_BEHAVIOURS.map((b) => Math.abs(rate(m.generated.replies[b]) - rate(m.community.replies[b])));
  checks.push({
    name: 'multiverse: versions of a thread differ and keep the community\'s reply statistics',
    pass: versions > 0 && totalDistinct >= 0.9 * versions && gaps.every((x) => x <= tol.rateGap),
    rule: `${totalDistinct}/${versions} distinct reply chains (>= 90%); reply rates of the versions vs the community's threads (world): ` +
      `${REPLY_BEHAVIOURS.map((b) => `${b} ${f3(rate(m.generated.replies[b]))} vs ${f3(rate(m.community.replies[b]))} (${f3(rate(m.world.replies[b]))})`).join(', ')}; gaps <= ${tol.rateGap}`,
  });
  return checks;
}
