// The scheduler's search (paper Section 3.3): a steady-state genetic algorithm over balanced
// partitions whose offspring are polished by circular Kernighan–Lin local search (a hybrid in the
// style of Kim & Moon's GCMA), and the random-layout baseline it is compared against.
import { groupsOf, layoutCost, partitionCost, type CostModel, type Layout } from './cost.js';
import { circularKL, type GainKind } from './localsearch.js';
import { Rng } from './rng.js';

export interface SearchOptions {
  gain: GainKind;
  seed: number;
  /** Random partitions the algorithm starts from. */
  population?: number;
  /** Offspring produced (one crossover + local search; costed before and after the local search). */
  trials?: number;
  /** Devices whose group label the crossover copies from the first parent. */
  crossoverPoints?: number;
  /** Called every `progressEvery` trials. */
  onProgress?: (trial: number, best: number) => void;
  progressEvery?: number;
}

export interface SearchResult {
  gain: GainKind;
  /** labels[device] = group of the best partition found. */
  labels: Int32Array;
  total: number;
  dp: number;
  pp: number;
  /** Best total cost after each evaluated candidate (population first, then offspring, two each). */
  convergence: number[];
  evaluations: number;
}

/** A uniformly random balanced partition into `stages` groups of `replicas` devices. */
export function randomLabels(rng: Rng, stages: number, replicas: number): Int32Array {
  const perm = rng.permutation(stages * replicas);
  const labels = new Int32Array(stages * replicas);
  perm.forEach((device, k) => { labels[device] = Math.floor(k / replicas); });
  return labels;
}

/**
 * Crossover: start from the second parent, copy the first parent's group label at a few random
 * devices, then repair the sizes by moving random non-copied devices out of overfull groups into
 * underfull ones.
 */
export function crossover(rng: Rng, a: Int32Array, b: Int32Array, stages: number, replicas: number, points: number): Int32Array {
  const n = a.length;
  const child = Int32Array.from(b);
  const copied = new Uint8Array(n);
  const order = rng.permutation(n);
  for (let k = 0; k < Math.min(points, n); k++) { child[order[k]] = a[order[k]]; copied[order[k]] = 1; }
  const size = new Int32Array(stages);
  for (let v = 0; v < n; v++) size[child[v]]++;
  const under: number[] = [];
  for (let g = 0; g < stages; g++) for (let k = size[g]; k < replicas; k++) under.push(g);
  rng.shuffle(under);
  for (const v of rng.permutation(n)) {
    if (!under.length) break;
    if (copied[v] || size[child[v]] <= replicas) continue;
    size[child[v]]--;
    child[v] = under.pop()!;
    size[child[v]]++;
  }
  return child;
}

export function evaluateLabels(m: CostModel, labels: Int32Array) {
  return partitionCost(m, groupsOf(labels, m.stages));
}

/** The hybrid genetic algorithm. Deterministic for a given seed. */
export function geneticSearch(m: CostModel, opts: SearchOptions): SearchResult {
  const rng = new Rng(opts.seed);
  const popSize = Math.max(2, opts.population ?? 100);
  const trials = opts.trials ?? 4900; // the authors' budget: 100 + 4900 candidates
  const points = opts.crossoverPoints ?? 5;
  const pop: Int32Array[] = [];
  const score: number[] = [];
  const convergence: number[] = [];
  let best = { labels: new Int32Array(0), total: Infinity, dp: 0, pp: 0 };
  const consider = (labels: Int32Array) => {
    const c = evaluateLabels(m, labels);
    if (c.total < best.total) best = { labels: Int32Array.from(labels), ...c };
    convergence.push(best.total);
    return c.total;
  };
  for (let i = 0; i < popSize; i++) {
    const labels = randomLabels(rng, m.stages, m.replicas);
    pop.push(labels);
    score.push(consider(labels));
  }
  const keys = new Map<string, number>(); // partition → copies in the population
  const count = (key: string, d: number) => keys.set(key, (keys.get(key) ?? 0) + d);
  for (const p of pop) count(partitionKey(p, m.stages), 1);
  for (let t = 0; t < trials; t++) {
    const i = rng.int(popSize);
    let j = rng.int(popSize - 1);
    if (j >= i) j++;
    // The local search's gain is a heuristic, not the cost model, so the offspring is costed before
    // and after it and the better of the two kept.
    const raw = crossover(rng, pop[i], pop[j], m.stages, m.replicas, points);
    const polished = Int32Array.from(raw);
    circularKL(m, polished, opts.gain);
    const rawCost = consider(raw);
    const polishedCost = consider(polished);
    const child = rawCost < polishedCost ? raw : polished;
    const c = Math.min(rawCost, polishedCost);
    // It replaces the worse parent unless it is worse still or already in the population (copies
    // would let the population collapse onto one partition).
    const worse = score[i] >= score[j] ? i : j;
    const key = partitionKey(child, m.stages);
    if (c <= score[worse] && !keys.get(key)) {
      count(partitionKey(pop[worse], m.stages), -1);
      count(key, 1);
      pop[worse] = child;
      score[worse] = c;
    }
    if (opts.onProgress && (t + 1) % (opts.progressEvery ?? 500) === 0) opts.onProgress(t + 1, best.total);
  }
  return { gain: opts.gain, labels: best.labels, total: best.total, dp: best.dp, pp: best.pp, convergence, evaluations: convergence.length };
}

/** A random layout: every (stage, replica) slot gets a device uniformly at random. */
export function randomLayout(rng: Rng, stages: number, replicas: number): Layout {
  const perm = rng.permutation(stages * replicas);
  return Array.from({ length: stages }, (_, s) => perm.slice(s * replicas, (s + 1) * replicas));
}

export interface RandomBaseline {
  samples: number;
  mean: number;
  best: number;
  bestLayout: Layout;
  /** Best-so-far cost after each sample. */
  convergence: number[];
}

/**
 * Best of N random layouts, each costed as laid out (its own stage order and replica chains, as the
 * authors' random scheduler does): what a planner that ignores the network gets.
 */
export function randomBaseline(m: CostModel, samples: number, seed: number): RandomBaseline {
  const rng = new Rng(seed);
  let sum = 0;
  let best = Infinity;
  let bestLayout: Layout = [];
  const convergence: number[] = [];
  for (let k = 0; k < samples; k++) {
    const layout = randomLayout(rng, m.stages, m.replicas);
    const c = layoutCost(m, layout).total;
    sum += c;
    if (c < best) { best = c; bestLayout = layout; }
    convergence.push(best);
  }
  return { samples, mean: sum / samples, best, bestLayout, convergence };
}

/** The same string for every labelling of the same partition. */
export function partitionKey(labels: Int32Array, stages: number): string {
  const first = new Int32Array(stages).fill(-1);
  const rename = new Int32Array(stages);
  let next = 0;
  let key = '';
  for (let v = 0; v < labels.length; v++) {
    const g = labels[v];
    if (first[g] < 0) { first[g] = v; rename[g] = next++; }
    key += String.fromCharCode(65 + rename[g]);
  }
  return key;
}
