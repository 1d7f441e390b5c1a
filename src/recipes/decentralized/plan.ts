// The planning API: given a network, search a layout with the paper's scheduler, cost it, compare it
// with the baselines (best of N random layouts, the same search with the standard KL gain, and
// Megatron-LM's default placement), and simulate one training iteration of each.
import { readFileSync } from 'node:fs';
import { KilnError } from '../../errors.js';
import { costModel, gpt3XL, groupsOf, layoutCost, partitionCost, type CostBreakdown, type Layout, type Workload } from './cost.js';
import { networkFromSpec, NetworkSpecError, type Network } from './network.js';
import { SCENARIOS } from './scenarios.js';
import { geneticSearch, randomBaseline, randomLayout, type SearchResult } from './search.js';
import { megatronLayout, simulateIteration, type SimulationResult } from './simulate.js';
import { Rng } from './rng.js';
import { isSeed } from '../seed.js';

export interface PlanOptions {
  seed?: number;
  /** GA population (default 100) and offspring (default 4900), as in the authors' runs. */
  population?: number;
  trials?: number;
  /** Random layouts sampled for the random baseline (default: as many as the search evaluates). */
  randomSamples?: number;
  /** Random layouts whose iteration is simulated (default 10). */
  simulatedRandom?: number;
  /** Weight of the pipeline term in the total (default 2, the authors' code). */
  ppWeight?: number;
  workload?: Workload;
  /** Progress lines. */
  log?: (line: string) => void;
}

export interface SearchSummary extends CostBreakdown {
  evaluations: number;
  seconds: number;
  /** Best total after each evaluated candidate. */
  convergence: number[];
}

export interface Plan {
  network: { name: string; devices: number; stages: number; replicas: number };
  workload: Workload;
  ppWeight: number;
  seed: number;
  /** layout[stage][replica] = device id. */
  layout: Layout;
  /** The same with each device's region/node label, where the network has them. */
  layoutRegions?: string[][];
  cost: CostBreakdown;
  search: SearchSummary;
  baselines: {
    random: { samples: number; mean: number; best: number; convergence: number[] };
    standardKL: SearchSummary;
    megatron: CostBreakdown;
  };
  simulation: {
    scheduled: SimulationResult;
    megatron: SimulationResult;
    random: { samples: number; meanIteration: number; meanPipelineDone: number };
  };
  seconds: number;
}

/** A built-in scenario ('1'..'5') or a path to a custom network JSON file. */
export function loadNetwork(scenario: string): Network {
  const builtin = SCENARIOS[scenario];
  if (builtin) return builtin();
  let text: string;
  try {
    text = readFileSync(scenario, 'utf8');
  } catch (e) {
    throw new NetworkSpecError('scenario', `'${scenario}' is neither a scenario 1..5 nor a readable JSON file (${(e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new NetworkSpecError('network', `${scenario} is not valid JSON: ${(e as Error).message}`);
  }
  return networkFromSpec(json, scenario.replace(/^.*[\\/]/, '').replace(/\.json$/i, ''));
}

function summarise(r: SearchResult, seconds: number): SearchSummary {
  return { dp: r.dp, pp: r.pp, total: r.total, evaluations: r.evaluations, seconds, convergence: r.convergence };
}

/**
 * Refuses options that would give NaN costs or means (a NaN population or weight, zero random
 * samples), a search other than asked (a fractional or negative trial count, a population under 2),
 * or a seed that the 32-bit generator would alias with a smaller one.
 */
function checkPlanOptions(o: PlanOptions): void {
  const bad = (what: string, v: unknown) => new KilnError('INVALID_ARGUMENT', `planLayout: ${what}, got ${String(v)}`);
  const int = (v: number | undefined, min: number) => v === undefined || (Number.isInteger(v) && v >= min);
  if (o.seed !== undefined && !isSeed(o.seed)) throw bad('seed must be an integer in [0, 2^32)', o.seed);
  if (!int(o.trials, 0)) throw bad('trials must be an integer >= 0', o.trials);
  if (!int(o.population, 2)) throw bad('population must be an integer >= 2', o.population);
  if (!int(o.randomSamples, 1)) throw bad('randomSamples must be a positive integer', o.randomSamples);
  if (!int(o.simulatedRandom, 1)) throw bad('simulatedRandom must be a positive integer', o.simulatedRandom);
  if (o.ppWeight !== undefined && !(o.ppWeight >= 0 && o.ppWeight < Infinity)) throw bad('ppWeight must be a finite number >= 0', o.ppWeight);
}

/** Plan a layout for `net`. Deterministic for a given seed. */
export function planLayout(net: Network, opts: PlanOptions = {}): Plan {
  checkPlanOptions(opts);
  const t0 = performance.now();
  const seed = opts.seed ?? 0;
  const log = opts.log ?? (() => {});
  const workload = opts.workload ?? gpt3XL(net.stages);
  const m = costModel(net, workload, opts.ppWeight ?? 2);
  const search = { seed, population: opts.population, trials: opts.trials };
  const trials = opts.trials ?? 4900;
  const progress = (label: string) => (t: number, best: number) => log(`${label}: ${t}/${trials} offspring, best cost ${best.toFixed(3)} s`);

  log(`${net.name}: ${net.n} devices, ${m.stages} stages × ${m.replicas} replicas; searching with the paper's gain`);
  let t = performance.now();
  const ours = geneticSearch(m, { ...search, gain: 'paper', onProgress: progress('scheduler') });
  const oursSummary = summarise(ours, (performance.now() - t) / 1e3);

  log('baseline: the same search with the standard Kernighan–Lin gain');
  t = performance.now();
  const std = geneticSearch(m, { ...search, gain: 'standard', onProgress: progress('standard KL') });
  const stdSummary = summarise(std, (performance.now() - t) / 1e3);

  const samples = opts.randomSamples ?? ours.evaluations;
  log(`baseline: ${samples} random layouts`);
  const random = randomBaseline(m, samples, seed ^ 0x5eed);

  const best = partitionCost(m, groupsOf(ours.labels, m.stages), true);
  const megatron = megatronLayout(m.stages, m.replicas);

  log('simulating one GPipe iteration of each layout');
  const rng = new Rng(seed ^ 0x51a1);
  const k = opts.simulatedRandom ?? 10;
  let sumIter = 0;
  let sumPipe = 0;
  for (let i = 0; i < k; i++) {
    const s = simulateIteration(m, randomLayout(rng, m.stages, m.replicas));
    sumIter += s.iteration;
    sumPipe += s.pipelineDone;
  }
  const regions = net.regions;
  return {
    network: { name: net.name, devices: net.n, stages: m.stages, replicas: m.replicas },
    workload,
    ppWeight: m.ppWeight,
    seed,
    layout: best.layout,
    layoutRegions: regions ? best.layout.map((row) => row.map((d) => regions[d])) : undefined,
    cost: { dp: best.dp, pp: best.pp, total: best.total },
    search: oursSummary,
    baselines: {
      random: { samples, mean: random.mean, best: random.best, convergence: random.convergence },
      standardKL: stdSummary,
      megatron: layoutCost(m, megatron),
    },
    simulation: {
      scheduled: simulateIteration(m, best.layout),
      megatron: simulateIteration(m, megatron),
      random: { samples: k, meanIteration: sumIter / k, meanPipelineDone: sumPipe / k },
    },
    seconds: (performance.now() - t0) / 1e3,
  };
}
