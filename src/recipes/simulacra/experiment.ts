// The whole `simulacra` run (Park et al., arXiv 2208.04024, at small scale): a word-level kiln GPT
// learns the synthetic world's community documents (corpus.ts); the simulator (simulate.ts) then
// prompts it, or an OpenAI-compatible endpoint, to populate held-out community configurations:
// personas from two seed personas, posts, reply chains, what-if injections and multiverse
// versions. The labeller counts what was written, next to the world's own rates (measure.ts).
import * as kiln from '../../index.js';
import { KilnError } from '../../errors.js';
import { isSeed } from '../seed.js';
import { fitAdamW, type TermsRecord, type TrainConfig } from '../fit.js';
import { kilnLanguageModel } from '../bigbench/kiln-model.js';
import { Rng } from '../bigbench/rng.js';
import { batchAt, trainingCommunities, worldTokenizer } from './corpus.js';
import {
  acceptance, countThreads, distinctness, emptyRates, rate, ruleEffect, temperamentMix, worldRates, worldWhatIf,
  type Count, type Distinctness, type Rates, type RuleEffect, type Tolerances,
} from './measure.js';
import { KilnSampler, type Sampler } from './sampler.js';
import { Simulator, type PersonaResult, type SimThread } from './simulate.js';
import {
  BEHAVIOURS, community, configKey, drawPersonas, expectedPostRate, TEMPERAMENTS, TOPICS,
  type Behaviour, type Community, type Message, type Persona, type Temperament, type Topic,
} from './world.js';
import type { Check } from '../report.js';

type GPT = InstanceType<typeof kiln.nn.GPT>;

export interface SimulacraConfig {
  model: { nLayer: number; nHead: number; nEmbd: number; blockSize: number };
  train: TrainConfig;
  /** Personas per training document and thread prompt; replies per training thread. */
  docPersonas: number;
  replies: number;
  /** The evaluated community's goal; its configurations (all rules, and all but one) are held out of training. */
  goal: Topic;
  heldOut: boolean;
  seedPersonas: number;
  /** Personas generated per evaluated community (its members: these and the seeds). */
  personaPool: number;
  threads: number;
  whatIfThreads: number;
  /** Generated replies after an injected one. */
  follow: number;
  multiverseThreads: number;
  versions: number;
  /** World threads per configuration for its reference rates. */
  worldThreads: number;
  temperature: number;
  topP: number;
  maxTokens: number;
  tolerances: Tolerances;
  seed: number;
}

export const DEFAULT_CONFIG: SimulacraConfig = {
  model: { nLayer: 2, nHead: 4, nEmbd: 64, blockSize: 160 },
  train: { steps: 2500, batchSize: 16, lr: 4e-3, weightDecay: 0.1, warmup: 50 },
  docPersonas: 4,
  replies: 3,
  goal: 'chess',
  heldOut: true,
  seedPersonas: 2,
  personaPool: 16,
  threads: 200,
  whatIfThreads: 128,
  follow: 2,
  multiverseThreads: 32,
  versions: 5,
  worldThreads: 4000,
  temperature: 1,
  topP: 1,
  maxTokens: 40,
  tolerances: { alpha: 0.05, rateGap: 0.1 },
  seed: 0,
};

/** The evaluated configurations: every rule, and every rule but one (one per rule). */
export function evaluationCommunities(goal: Topic): { all: Community; without: Record<Behaviour, Community> } {
  return {
    all: community(goal, [...BEHAVIOURS]),
    without: Object.fromEntries(BEHAVIOURS.map((b) => [b, community(goal, BEHAVIOURS.filter((x) => x !== b))])) as Record<Behaviour, Community>,
  };
}

export interface CommunityRun {
  label: string;
  community: Community;
  seeds: Persona[];
  personas: PersonaResult;
  personaMix: Record<Temperament, number>;
  threads: SimThread[];
  rates: Rates;
  world: Rates;
  /** The world's post rates in closed form. */
  worldPostExpected: Record<Behaviour, number>;
}

export interface SimulacraResult {
  kind: 'kiln.simulacra.results';
  version: 1;
  config: SimulacraConfig;
  model: { spec: string; params?: number; vocabSize?: number; trainSeconds?: number; finalLoss?: number; history?: TermsRecord[] };
  heldOut: string[];
  communities: CommunityRun[];
  whatIf: {
    label: string;
    community: Community;
    injected: { hostile: Message; friendly: Message }[];
    hostile: SimThread[];
    friendly: SimThread[];
    counts: { hostile: Count; friendly: Count };
    world: { hostile: Count; friendly: Count };
  };
  multiverse: { label: string; community: Community; versions: SimThread[][]; distinct: Distinctness; rates: Rates; world: Rates };
  ruleEffects: RuleEffect[];
  onGoal: { generated: Count; world: number };
  acceptance: Check[];
  seconds: number;
}

export function checkConfig(c: SimulacraConfig): void {
  const bad = (m: string) => new KilnError('INVALID_ARGUMENT', `simulacra: ${m}`);
  const int = (v: number, name: string, lo: number, hi = 1e9) => { if (!(Number.isInteger(v) && v >= lo && v <= hi)) throw bad(`${name} must be an integer in [${lo}, ${hi}], got ${v}`); };
  int(c.model.nLayer, 'model.nLayer', 1, 64); int(c.model.nHead, 'model.nHead', 1, 64); int(c.model.nEmbd, 'model.nEmbd', 1, 4096); int(c.model.blockSize, 'model.blockSize', 32, 4096);
  if (c.model.nEmbd % c.model.nHead !== 0) throw bad(`model.nEmbd ${c.model.nEmbd} is not a multiple of nHead ${c.model.nHead}`);
  int(c.train.steps, 'train.steps', 1); int(c.train.batchSize, 'train.batchSize', 1, 4096);
  if (!(c.train.lr > 0 && Number.isFinite(c.train.lr))) throw bad(`train.lr must be positive, got ${c.train.lr}`);
  int(c.docPersonas, 'docPersonas', 2, 8); int(c.replies, 'replies', 1, 8);
  if (!TOPICS.includes(c.goal)) throw bad(`unknown goal '${c.goal}' (known: ${TOPICS.join(', ')})`);
  int(c.seedPersonas, 'seedPersonas', 1, 8);
  int(c.personaPool, 'personaPool', 1, 28);
  // Names must stay distinct: the seeds and the pool come from the world's 30 names.
  if (c.seedPersonas + c.personaPool > 30) throw bad(`seedPersonas + personaPool must be at most 30, got ${c.seedPersonas + c.personaPool}`);
  int(c.threads, 'threads', 1, 10000); int(c.whatIfThreads, 'whatIfThreads', 1, 10000); int(c.follow, 'follow', 1, 8);
  int(c.multiverseThreads, 'multiverseThreads', 1, 1000); int(c.versions, 'versions', 2, 100); int(c.worldThreads, 'worldThreads', 100, 1e6);
  if (!(Number.isFinite(c.temperature) && c.temperature >= 0)) throw bad(`temperature must be >= 0, got ${c.temperature}`);
  if (!(c.topP > 0 && c.topP <= 1)) throw bad(`topP must be in (0, 1], got ${c.topP}`);
  int(c.maxTokens, 'maxTokens', 1, 1000);
  if (!isSeed(c.seed)) throw bad(`seed must be an integer in [0, 2^32), got ${c.seed}`);
}

/** Trains the word-level GPT on the world's documents (seen configurations only). */
export async function trainModel(c: SimulacraConfig, heldOut: ReadonlySet<string>, log: (l: string) => void): Promise<{ model: GPT; tok: kiln.train.WordTokenizer; history: TermsRecord[]; seconds: number }> {
  const tok = worldTokenizer();
  const communities = trainingCommunities(heldOut);
  kiln.manualSeed(c.seed);
  const model = new kiln.nn.GPT({ ...c.model, vocabSize: tok.vocabSize, dropout: 0 });
  const B = c.train.batchSize, T = c.model.blockSize;
  try {
    const fit = await fitAdamW<ReturnType<typeof batchAt>>({
      model, train: c.train, clipGradNorm: 1,
      data: (step) => batchAt(c.seed, step, B, T, tok, communities, { personas: c.docPersonas, replies: c.replies, heldOut }),
      logEvery: Math.max(1, Math.floor(c.train.steps / 5)),
      terms: (b) => ({ loss: kiln.crossEntropy(kiln.reshape(model.forward(b.x), [B * T, tok.vocabSize]), b.y) }),
      log,
    });
    return { model, tok, history: fit.history, seconds: fit.seconds };
  } catch (e) {
    for (const p of model.parameters()) p.dispose();
    throw e;
  }
}

const ruleLabel = (c: Community) => (c.rules.length === BEHAVIOURS.length ? 'all rules' : `all rules but ${BEHAVIOURS.find((b) => !c.rules.includes(b))}`);

/** The simulation and measurement over any sampler. */
export async function simulate(c: SimulacraConfig, sampler: Sampler, log: (l: string) => void): Promise<Omit<SimulacraResult, 'kind' | 'version' | 'config' | 'model' | 'heldOut' | 'seconds'>> {
  const sim = new Simulator(sampler, { temperature: c.temperature, topP: c.topP, maxTokens: c.maxTokens, seed: c.seed, threadPersonas: c.docPersonas });
  const evalSet = evaluationCommunities(c.goal);
  const configs = [evalSet.all, ...BEHAVIOURS.map((b) => evalSet.without[b])];
  // The designer's seed personas: the same for every configuration.
  const seeds = drawPersonas(new Rng(c.seed, 'simulacra-seed-personas'), c.seedPersonas);
  const runs: CommunityRun[] = [];
  for (const com of configs) {
    const personas = await sim.personas(com, seeds, c.personaPool);
    // The community's members: the designer's seeds and the generated personas.
    const pool = [...seeds, ...personas.personas];
    if (pool.length < c.docPersonas)
      throw new KilnError('INVALID_ARGUMENT', `simulacra: the model wrote ${personas.personas.length} readable personas for '${com.name}' (of ${personas.sampled} sampled); with ${seeds.length} seed personas that is fewer than the ${c.docPersonas} a thread needs`);
    const threads = await sim.threads(com, pool, c.threads, c.replies);
    const run: CommunityRun = {
      label: ruleLabel(com), community: com, seeds, personas, personaMix: temperamentMix(personas.personas), threads,
      rates: countThreads(com, threads), world: worldRates(com, c.worldThreads, c.replies, c.docPersonas, c.seed),
      worldPostExpected: Object.fromEntries(BEHAVIOURS.map((b) => [b, expectedPostRate(com, b)])) as Record<Behaviour, number>,
    };
    runs.push(run);
    log(`${run.label}: ${personas.personas.length} personas (${personas.rejected.length} rejected), ${threads.length} threads; ` +
      BEHAVIOURS.map((b) => `${b} ${rate(run.rates.posts[b]).toFixed(2)}`).join(', '));
  }
  const ruleEffects = BEHAVIOURS.map((b) => ruleEffect(b, runs[0].rates, runs[1 + BEHAVIOURS.indexOf(b)].rates, runs[0].world, runs[1 + BEHAVIOURS.indexOf(b)].world));
  const onGoal = runs.reduce((a, r) => ({ k: a.k + r.rates.onGoal.k, n: a.n + r.rates.onGoal.n }), { k: 0, n: 0 });
  const worldOnGoal = runs.reduce((s, r) => s + r.rates.onGoal.n * (1 - r.worldPostExpected.offtopic), 0) / Math.max(1, onGoal.n);
  // What-if and multiverse in the community without the civility rule, where hostility is not moderated away.
  const wi = runs[1 + BEHAVIOURS.indexOf('insult')];
  const bases = await sim.posts(wi.community, [...wi.seeds, ...wi.personas.personas], c.whatIfThreads, 'whatif-posts');
  const w = await sim.whatIf(wi.community, bases, c.follow);
  const insults = (ts: SimThread[]) => countThreads(wi.community, ts, 1, false).replies.insult;
  const whatIf = {
    label: wi.label, community: wi.community, injected: w.injected, hostile: w.hostile, friendly: w.friendly,
    counts: { hostile: insults(w.hostile), friendly: insults(w.friendly) },
    world: worldWhatIf(wi.community, c.worldThreads, c.follow, c.docPersonas, c.seed),
  };
  log(`what-if (${wi.label}): insults after a hostile reply ${rate(whatIf.counts.hostile).toFixed(2)}, after a friendly one ${rate(whatIf.counts.friendly).toFixed(2)}`);
  const versions = await sim.multiverse(wi.community, wi.threads.slice(0, c.multiverseThreads), c.versions, c.replies);
  const mvRates = versions.reduce((acc, vs) => {
    const r = countThreads(wi.community, vs, 0, false);
    for (const b of ['insult', 'promo', 'meme'] as const) { acc.replies[b].k += r.replies[b].k; acc.replies[b].n += r.replies[b].n; }
    return acc;
  }, emptyRates());
  const multiverse = { label: wi.label, community: wi.community, versions, distinct: distinctness(versions), rates: mvRates, world: wi.world };
  return {
    communities: runs, whatIf, multiverse, ruleEffects, onGoal: { generated: onGoal, world: worldOnGoal },
    acceptance: acceptance({
      rules: ruleEffects, onGoal: { generated: onGoal, world: worldOnGoal },
      whatIf: { ...whatIf.counts, worldHostile: rate(whatIf.world.hostile), worldFriendly: rate(whatIf.world.friendly) },
      multiverse: { d: multiverse.distinct, generated: mvRates, community: wi.rates, world: wi.world }, tol: c.tolerances,
    }),
  };
}

/** Called with the trained model before it is freed (to save it). */
export type OnModel = (model: GPT, tokenizer: kiln.train.WordTokenizer) => void;

/** Trains a kiln GPT and simulates with it, or (given `sampler`) simulates with that sampler only. */
export async function runSimulacra(c: SimulacraConfig, log: (l: string) => void = () => {}, o: { sampler?: Sampler; onModel?: OnModel } = {}): Promise<SimulacraResult> {
  checkConfig(c);
  const t0 = performance.now();
  const ev = evaluationCommunities(c.goal);
  const heldOut = new Set(c.heldOut ? [ev.all, ...Object.values(ev.without)].map(configKey) : []);
  let model: GPT | null = null;
  let info: SimulacraResult['model'];
  let sampler = o.sampler;
  try {
    if (!sampler) {
      const t = await trainModel(c, heldOut, (l) => log(`train: ${l}`));
      model = t.model;
      o.onModel?.(t.model, t.tok);
      const lm = kilnLanguageModel(t.model, t.tok, { name: `kiln:simulacra L${c.model.nLayer}-d${c.model.nEmbd}` });
      sampler = new KilnSampler(lm);
      info = {
        spec: lm.name, params: t.model.parameters().reduce((n, p) => n + p.size, 0), vocabSize: t.tok.vocabSize, trainSeconds: t.seconds,
        finalLoss: t.history.length ? t.history[t.history.length - 1].loss : NaN, history: t.history,
      };
    } else info = { spec: sampler.name };
    const r = await simulate(c, sampler, log);
    return { kind: 'kiln.simulacra.results', version: 1, config: c, model: info, heldOut: [...heldOut], ...r, seconds: (performance.now() - t0) / 1000 };
  } finally {
    if (model) for (const p of model.parameters()) p.dispose();
  }
}
