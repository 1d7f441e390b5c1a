// The whole `ssl` run: for each seed, the same encoder is pretrained with SimCLR, CISSL and DISSL on
// pairs of augmented views, then frozen and scored by linear probes on augmentation-invariant
// downstream tasks (the prototype itself and random coarse groupings), with raw pixels, an untrained
// encoder and a supervised encoder (cross-entropy on the prototype, same augmentations) as anchors.
import * as kiln from '../../index.js';
import { KilnError } from '../../errors.js';
import { Linear } from '../../nn/index.js';
import { AdamW } from '../../optim/index.js';
import { linearWarmup, product, cosine } from '../../sched/lr.js';
import { fitTerms, type TrainConfig } from '../fit.js';
import { meanStd } from '../stats.js';
import { Gaussian, mixSeed } from '../icl/tasks.js';
import { DEFAULT_WORLD, downstreamTasks, World, type Images, type Task, type WorldConfig } from './data.js';
import { DEFAULT_MODEL, Encoder, OBJECTIVES, SSLModel, type ModelConfig, type Objective } from './model.js';
import { DEFAULT_PROBE, linearProbe, type ProbeOptions } from './probe.js';

export type { TrainConfig };

export type Method = Objective | 'supervised' | 'random-init' | 'pixels';

export interface ExperimentConfig {
  world: WorldConfig;
  model: ModelConfig;
  train: TrainConfig;
  probe: ProbeOptions & { trainPerProto: number; testPerProto: number };
  /** The prototype task covers the first this many prototypes. */
  fineTask: number;
  /** Random coarse tasks and their number of classes. */
  coarseTasks: number;
  coarseGroups: number;
  objectives: Objective[];
  /** Also score raw pixels, the untrained encoder and a supervised encoder. */
  baselines: boolean;
  seeds: number;
  seed: number;
}

export const DEFAULT_EXPERIMENT: ExperimentConfig = {
  world: DEFAULT_WORLD,
  model: DEFAULT_MODEL,
  train: { steps: 2000, batchSize: 64, lr: 2e-3, weightDecay: 1e-4, warmup: 30 },
  probe: { ...DEFAULT_PROBE, trainPerProto: 8, testPerProto: 8 },
  fineTask: 64,
  coarseTasks: 4,
  coarseGroups: 4,
  objectives: OBJECTIVES,
  baselines: true,
  seeds: 3,
  seed: 0,
};

export interface MethodScore {
  method: Method;
  seed: number;
  /** Test accuracy of the linear probe per task. */
  probe: Record<string, number>;
  /** The prototype task and the mean over the coarse ones. */
  prototypeAcc: number;
  coarseAcc: number;
  trainSeconds: number;
  finalLoss: number | null;
  history: { step: number; [term: string]: number }[];
}

export interface Comparison {
  method: Objective;
  against: 'simclr';
  metric: 'prototypeAcc' | 'coarseAcc';
  meanDiff: number;
  wins: number;
  seeds: number;
}

export interface ExperimentResult {
  config: ExperimentConfig;
  params: Record<string, number>;
  scores: MethodScore[];
  summary: SummaryRow<Method>[];
  comparisons: Comparison[];
  acceptance: { name: string; pass: boolean; rule: string }[];
  seconds: number;
}

/** Seeded batches of `batchSize` distinct prototypes, two independent augmentations each: rows i and i + N pair up. */
export function viewBatch(world: World, batchSize: number, seed: number, step: number): { views: Images; ids: Int32Array } {
  const P = world.config.prototypes, N = Math.min(batchSize, P);
  const g = new Gaussian(mixSeed(seed, 0xba7c, step));
  const perm = Int32Array.from({ length: P }, (_, i) => i);
  for (let i = 0; i < N; i++) {
    const j = i + g.int(P - i);
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  const ids = new Int32Array(2 * N);
  for (let i = 0; i < N; i++) ids[i] = ids[i + N] = perm[i];
  return { views: world.render(ids, g), ids };
}

function features(encoder: Encoder | null, imgs: Images): Images {
  if (!encoder) return imgs;
  return kiln.tidy(() => kiln.noGrad(() => {
    const z = encoder.forward(kiln.fromTyped(imgs.x, [imgs.n, imgs.dims]));
    return { x: Float32Array.from(z.dataSync() as Float32Array), n: imgs.n, dims: z.shape[1] };
  }));
}

export interface ProbeData {
  train: { images: Images; ids: Int32Array };
  test: { images: Images; ids: Int32Array };
}

/** The rows of the prototypes that are part of the task, with their labels. */
function taskRows(f: Images, ids: Int32Array, t: Task): { x: Images; y: Int32Array } {
  const keep: number[] = [];
  for (let i = 0; i < ids.length; i++) if (t.labelOf[ids[i]] >= 0) keep.push(i);
  if (keep.length === ids.length) return { x: f, y: Int32Array.from(ids, (p) => t.labelOf[p]) };
  const x = new Float32Array(keep.length * f.dims);
  keep.forEach((r, k) => x.set(f.x.subarray(r * f.dims, (r + 1) * f.dims), k * f.dims));
  return { x: { x, n: keep.length, dims: f.dims }, y: Int32Array.from(keep, (r) => t.labelOf[ids[r]]) };
}

export function scoreFeatures(encoder: Encoder | null, data: ProbeData, tasks: Task[], probe: ProbeOptions): { probe: Record<string, number>; prototypeAcc: number; coarseAcc: number } {
  const ftr = features(encoder, data.train.images), fte = features(encoder, data.test.images);
  const out: Record<string, number> = {};
  for (const t of tasks) {
    const [tr, te] = [[ftr, data.train.ids], [fte, data.test.ids]].map(([f, ids]) => taskRows(f as Images, ids as Int32Array, t));
    out[t.name] = linearProbe(tr.x, tr.y, te.x, te.y, t.classes, probe).test;
  }
  const coarse = tasks.filter((t) => t.name !== 'prototype').map((t) => out[t.name]);
  return { probe: out, prototypeAcc: out.prototype, coarseAcc: coarse.length ? coarse.reduce((a, b) => a + b, 0) / coarse.length : NaN };
}

/** A supervised anchor: the encoder with a linear head on the prototype label, the same views. */
class Supervised extends kiln.nn.Module {
  encoder: Encoder;
  head: Linear;
  constructor(inDim: number, cfg: ModelConfig, classes: number) {
    super();
    this.encoder = new Encoder(inDim, cfg);
    this.head = new Linear(cfg.zDim, classes);
  }
}

export interface Pretrained {
  encoder: Encoder;
  seconds: number;
  finalLoss: number;
  history: MethodScore['history'];
  params: number;
  /** Frees the model's parameters and buffers and the optimizer's state. */
  dispose(): void;
}

/**
 * Pretrains `model` (built by the caller after seeding) on the project's Trainer: AdamW, linear
 * warm-up then cosine decay, clipping at norm 3; `terms` gives the named scalar terms of a batch
 * (`loss` is minimised), averaged over tenths of the run into the history.
 */
export async function pretrainEncoder<B>(
  name: string, model: kiln.nn.Module & { encoder: Encoder }, batchAt: (step: number) => B,
  terms: (batch: B) => Record<string, kiln.Tensor> & { loss: kiln.Tensor }, t: TrainConfig, log: (l: string) => void,
): Promise<Pretrained> {
  const optimizer = new AdamW(model.parameters(), { lr: t.lr, weightDecay: t.weightDecay });
  const { history, seconds } = await fitTerms<B>({
    model, optimizer, data: batchAt, steps: t.steps, schedule: product(linearWarmup(Math.max(1, t.warmup)), cosine(t.steps)),
    clipGradNorm: 3, logEvery: Math.max(1, Math.floor(t.steps / 10)), terms, log: (l) => log(`${name}: ${l}`),
  });
  return {
    encoder: model.encoder, seconds, finalLoss: history.length ? history[history.length - 1].loss : NaN, history,
    params: model.numParameters(),
    dispose: () => {
      optimizer.dispose();
      for (const x of Object.values(model.stateDict())) x.dispose();
    },
  };
}

function pretrain(method: Objective | 'supervised', world: World, cfg: ExperimentConfig, seed: number, log: (l: string) => void): Promise<Pretrained> {
  kiln.manualSeed(mixSeed(seed, 0x1417));
  const batchAt = (step: number) => {
    const b = viewBatch(world, cfg.train.batchSize, mixSeed(seed, 0xda7a), step);
    return { views: kiln.fromTyped(b.views.x, [b.views.n, b.views.dims]), ids: kiln.fromTyped(b.ids, [b.ids.length], { dtype: 'int32' }) };
  };
  if (method === 'supervised') {
    const m = new Supervised(world.dims, cfg.model, world.config.prototypes);
    return pretrainEncoder(method, m, batchAt, (b) => ({ loss: kiln.crossEntropy(m.head.forward(m.encoder.forward(b.views)), b.ids) }), cfg.train, log);
  }
  const m = new SSLModel(method, world.dims, cfg.model);
  return pretrainEncoder(method, m, batchAt, (b) => m.terms(b.views), cfg.train, log);
}

/** Seed `seed`'s labelled views for the probes: trainPerProto then testPerProto views of every prototype. */
export function probeData(world: World, probe: { trainPerProto: number; testPerProto: number }, seed: number): ProbeData {
  const g = new Gaussian(mixSeed(seed, 0x9b0e));
  return { train: world.labelled(probe.trainPerProto, g), test: world.labelled(probe.testPerProto, g) };
}

type Scored = { method: string; seed: number; prototypeAcc: number; coarseAcc: number };

/** One method's probe accuracies, mean and std over seeds. */
export interface SummaryRow<M extends string = string> {
  method: M;
  prototypeAcc: number;
  prototypeSd: number;
  coarseAcc: number;
  coarseSd: number;
}

/** Mean and std over seeds of each method's two probe accuracies, methods in first-seen order. */
export function summarize(scores: readonly Scored[]): SummaryRow[] {
  return [...new Set(scores.map((s) => s.method))].map((method) => {
    const rows = scores.filter((s) => s.method === method);
    const p = meanStd(rows.map((r) => r.prototypeAcc)), c = meanStd(rows.map((r) => r.coarseAcc));
    return { method, prototypeAcc: p.mean, prototypeSd: p.std, coarseAcc: c.mean, coarseSd: c.std };
  });
}

/** `method` minus `against` on `metric`, paired by seed over seeds seed0 .. seed0 + seeds - 1. */
export function pairedBySeed(scores: readonly Scored[], method: string, against: string, metric: 'prototypeAcc' | 'coarseAcc', seed0: number, seeds: number) {
  const d: number[] = [];
  for (let k = 0; k < seeds; k++) {
    const a = scores.find((s) => s.method === method && s.seed === seed0 + k)!, b = scores.find((s) => s.method === against && s.seed === seed0 + k)!;
    d.push(a[metric] - b[metric]);
  }
  return { method, metric, meanDiff: meanStd(d).mean, wins: d.filter((x) => x > 0).length, seeds: d.length };
}

export function checkConfig(c: ExperimentConfig): void {
  const bad = (m: string): never => { throw new KilnError('INVALID_ARGUMENT', `ssl: ${m}`); };
  if (!Number.isInteger(c.seeds) || c.seeds < 1) bad(`seeds must be an integer >= 1, got ${c.seeds}`);
  if (!Number.isInteger(c.train.batchSize) || c.train.batchSize < 2) bad(`batch size must be an integer >= 2, got ${c.train.batchSize}`);
  if (!c.objectives.length) bad('needs at least one objective');
  for (const o of c.objectives) if (!OBJECTIVES.includes(o)) bad(`unknown objective '${o}' (expected ${OBJECTIVES.join(', ')})`);
  if (!Number.isInteger(c.coarseGroups) || c.coarseGroups < 2 || c.coarseGroups > c.world.prototypes)
    bad(`coarse tasks need between 2 and ${c.world.prototypes} groups, got ${c.coarseGroups}`);
}

export async function runExperiment(cfg: ExperimentConfig, log: (l: string) => void = () => {}): Promise<ExperimentResult> {
  checkConfig(cfg);
  const t0 = performance.now();
  const world = new World(cfg.world, cfg.seed);
  const tasks = downstreamTasks(cfg.world.prototypes, Math.min(cfg.fineTask, cfg.world.prototypes), cfg.coarseTasks, cfg.coarseGroups, cfg.seed);
  const scores: MethodScore[] = [];
  const params: Record<string, number> = {};
  for (let k = 0; k < cfg.seeds; k++) {
    const seed = cfg.seed + k;
    const data = probeData(world, cfg.probe, seed);
    const methods: (Objective | 'supervised')[] = [...cfg.objectives, ...(cfg.baselines ? ['supervised' as const] : [])];
    for (const m of methods) {
      const r = await pretrain(m, world, cfg, seed, log);
      params[m] = r.params;
      const s = scoreFeatures(r.encoder, data, tasks, { ...cfg.probe, seed });
      r.dispose();
      scores.push({ method: m, seed, ...s, trainSeconds: r.seconds, finalLoss: r.finalLoss, history: r.history });
      log(`seed ${seed} ${m}: probe ${Object.entries(s.probe).map(([t, a]) => `${t} ${(100 * a).toFixed(1)}%`).join(', ')}`);
    }
    if (cfg.baselines) {
      kiln.manualSeed(mixSeed(seed, 0x1417));
      const untrained = new Encoder(world.dims, cfg.model).eval();
      for (const [m, enc] of [['random-init', untrained], ['pixels', null]] as const) {
        const s = scoreFeatures(enc, data, tasks, { ...cfg.probe, seed });
        scores.push({ method: m, seed, ...s, trainSeconds: 0, finalLoss: null, history: [] });
      }
      for (const x of Object.values(untrained.stateDict())) x.dispose();
    }
  }
  const summary = summarize(scores) as ExperimentResult['summary'];
  const comparisons: Comparison[] = [];
  if (cfg.objectives.includes('simclr'))
    for (const m of cfg.objectives.filter((o) => o !== 'simclr'))
      for (const metric of ['prototypeAcc', 'coarseAcc'] as const) {
        const { meanDiff, wins, seeds } = pairedBySeed(scores, m, 'simclr', metric, cfg.seed, cfg.seeds);
        comparisons.push({ method: m, against: 'simclr', metric, meanDiff, wins, seeds });
      }
  const acceptance = comparisons.filter((c) => c.metric === 'prototypeAcc').map((c) => ({
    name: `${c.method.toUpperCase()} beats SimCLR in linear-probe accuracy`,
    pass: c.meanDiff > 0 && c.wins > c.seeds / 2,
    rule: `prototype-task probe accuracy higher on average over ${c.seeds} seed(s) (by ${(100 * c.meanDiff).toFixed(1)} points) and on a majority of seeds (${c.wins}/${c.seeds})`,
  }));
  return { config: cfg, params, scores, summary, comparisons, acceptance, seconds: (performance.now() - t0) / 1000 };
}
