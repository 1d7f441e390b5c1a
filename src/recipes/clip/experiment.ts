// The whole `clip` run: on the `ssl` recipe's synthetic world, the same image encoder is pretrained
// with SimCLR on pairs of augmented views and with CLIP on the same views paired with captions
// under several caption regimes (descriptive or not, low or high variability); each frozen encoder
// is scored by the same linear probes, paired by seed against SimCLR.
import * as kiln from '../../index.js';
import { KilnError } from '../../errors.js';
import { Gaussian, mixSeed } from '../icl/tasks.js';
import { DEFAULT_WORLD, downstreamTasks, World, type WorldConfig } from '../ssl/data.js';
import {
  DEFAULT_EXPERIMENT as SSL, pairedBySeed, pretrainEncoder, probeData, scoreFeatures, summarize, viewBatch, type SummaryRow, type TrainConfig,
} from '../ssl/experiment.js';
import { DEFAULT_MODEL, SSLModel, type ModelConfig } from '../ssl/model.js';
import type { ProbeOptions } from '../ssl/probe.js';
import { Captioner, type CaptionConfig } from './captions.js';
import { ClipModel, DEFAULT_CLIP, type ClipConfig } from './model.js';

export interface CaptionRegime extends CaptionConfig {
  name: string;
}

/**
 * The default regimes: captions that name every attribute with one word each (descriptive, low
 * variability); the same content through 64 synonyms per value among 8 filler words from 2,000
 * (descriptive, high variability); and captions that name each attribute 5% of the time (barely
 * descriptive).
 */
export const DEFAULT_REGIMES: CaptionRegime[] = [
  { name: 'descriptive', descriptiveness: 1, synonyms: 1, filler: 2, fillerVocab: 200 },
  { name: 'high-variability', descriptiveness: 1, synonyms: 64, filler: 8, fillerVocab: 2000 },
  { name: 'low-descriptiveness', descriptiveness: 0.05, synonyms: 1, filler: 2, fillerVocab: 200 },
];

export interface ExperimentConfig {
  world: WorldConfig;
  model: ModelConfig;
  clip: ClipConfig;
  train: TrainConfig;
  probe: ProbeOptions & { trainPerProto: number; testPerProto: number };
  fineTask: number;
  /** The coarse tasks are the attributes the captions describe. */
  coarseTasks: number;
  coarseGroups: number;
  regimes: CaptionRegime[];
  seeds: number;
  seed: number;
}

export const DEFAULT_EXPERIMENT: ExperimentConfig = {
  world: DEFAULT_WORLD,
  model: DEFAULT_MODEL,
  clip: DEFAULT_CLIP,
  train: SSL.train,
  probe: SSL.probe,
  fineTask: SSL.fineTask,
  coarseTasks: SSL.coarseTasks,
  coarseGroups: SSL.coarseGroups,
  regimes: DEFAULT_REGIMES,
  seeds: 3,
  seed: 0,
};

export interface Score {
  method: string;
  seed: number;
  probe: Record<string, number>;
  prototypeAcc: number;
  coarseAcc: number;
  trainSeconds: number;
  finalLoss: number;
}

export interface ExperimentResult {
  config: ExperimentConfig;
  vocabSize: Record<string, number>;
  scores: Score[];
  summary: SummaryRow[];
  /** Each CLIP regime minus SimCLR, paired by seed. */
  comparisons: { method: string; metric: 'prototypeAcc' | 'coarseAcc'; meanDiff: number; wins: number; seeds: number }[];
  acceptance: { name: string; pass: boolean; rule: string }[];
  seconds: number;
}

export function checkConfig(c: ExperimentConfig): void {
  const bad = (m: string): never => { throw new KilnError('INVALID_ARGUMENT', `clip: ${m}`); };
  if (!Number.isInteger(c.seeds) || c.seeds < 1) bad(`seeds must be an integer >= 1, got ${c.seeds}`);
  if (!c.regimes.length) bad('needs at least one caption regime');
  if (new Set(c.regimes.map((r) => r.name)).size !== c.regimes.length || c.regimes.some((r) => r.name === 'simclr'))
    bad('caption regimes need distinct names other than simclr');
  if (c.coarseTasks < 1) bad(`the captions describe the coarse tasks: needs at least one, got ${c.coarseTasks}`);
}

export async function runExperiment(cfg: ExperimentConfig, log: (l: string) => void = () => {}): Promise<ExperimentResult> {
  checkConfig(cfg);
  const t0 = performance.now();
  const world = new World(cfg.world, cfg.seed);
  const tasks = downstreamTasks(cfg.world.prototypes, Math.min(cfg.fineTask, cfg.world.prototypes), cfg.coarseTasks, cfg.coarseGroups, cfg.seed);
  const attributes = tasks.slice(1);
  const captioners = cfg.regimes.map((r) => new Captioner(attributes, r));
  const scores: Score[] = [];
  for (let k = 0; k < cfg.seeds; k++) {
    const seed = cfg.seed + k;
    const data = probeData(world, cfg.probe, seed);
    // Every method sees the same views at every step: SimCLR pairs them, CLIP captions each one.
    const views = (step: number) => viewBatch(world, cfg.train.batchSize, mixSeed(seed, 0xda7a), step);
    const runs: [string, () => Promise<Awaited<ReturnType<typeof pretrainEncoder>>>][] = [
      ['simclr', () => {
        kiln.manualSeed(mixSeed(seed, 0x1417));
        const m = new SSLModel('simclr', world.dims, cfg.model);
        return pretrainEncoder('simclr', m, (step) => {
          const b = views(step);
          return kiln.fromTyped(b.views.x, [b.views.n, b.views.dims]);
        }, (x) => m.terms(x), cfg.train, log);
      }],
      ...cfg.regimes.map((r, i): [string, () => ReturnType<typeof pretrainEncoder>] => [r.name, () => {
        kiln.manualSeed(mixSeed(seed, 0x1417));
        const cap = captioners[i];
        const m = new ClipModel(world.dims, cap.vocabSize, cfg.model, cfg.clip);
        return pretrainEncoder(`clip ${r.name}`, m, (step) => {
          const b = views(step);
          const words = cap.bagOfWords(b.ids, new Gaussian(mixSeed(seed, 0xc4a9, step)));
          return { images: kiln.fromTyped(b.views.x, [b.views.n, b.views.dims]), captions: kiln.fromTyped(words, [b.ids.length, cap.vocabSize]) };
        }, (b) => m.terms(b.images, b.captions), cfg.train, log);
      }]),
    ];
    for (const [method, run] of runs) {
      const r = await run();
      const s = scoreFeatures(r.encoder, data, tasks, { ...cfg.probe, seed });
      r.dispose();
      scores.push({ method, seed, ...s, trainSeconds: r.seconds, finalLoss: r.finalLoss });
      log(`seed ${seed} ${method}: probe ${Object.entries(s.probe).map(([t, a]) => `${t} ${(100 * a).toFixed(1)}%`).join(', ')}`);
    }
  }
  const summary = summarize(scores);
  const paired = (m: string, metric: 'prototypeAcc' | 'coarseAcc') => pairedBySeed(scores, m, 'simclr', metric, cfg.seed, cfg.seeds);
  const comparisons = cfg.regimes.flatMap((r) => [paired(r.name, 'coarseAcc'), paired(r.name, 'prototypeAcc')]);
  const coarse = (name: string) => comparisons.find((c) => c.method === name && c.metric === 'coarseAcc');
  const acceptance: ExperimentResult['acceptance'] = [];
  const desc = coarse('descriptive'), varied = coarse('high-variability'), sparse = coarse('low-descriptiveness');
  if (desc) acceptance.push({
    name: 'CLIP with descriptive, low-variability captions beats image-only SSL (SimCLR)',
    pass: desc.meanDiff > 0 && desc.wins > desc.seeds / 2,
    rule: `coarse-task probe accuracy higher on average (by ${(100 * desc.meanDiff).toFixed(1)} points) and on a majority of seeds (${desc.wins}/${desc.seeds})`,
  });
  if (desc && sparse) acceptance.push({
    name: 'CLIP with barely descriptive captions does not beat SimCLR',
    pass: sparse.meanDiff <= 0 && sparse.meanDiff < desc.meanDiff,
    rule: `coarse-task advantage ${(100 * sparse.meanDiff).toFixed(1)} points (<= 0), against ${(100 * desc.meanDiff).toFixed(1)} with descriptive captions`,
  });
  if (desc && varied) acceptance.push({
    name: "high-variability captions shrink CLIP's advantage over SimCLR",
    pass: varied.meanDiff < desc.meanDiff,
    rule: `coarse-task advantage ${(100 * varied.meanDiff).toFixed(1)} points against ${(100 * desc.meanDiff).toFixed(1)} with low-variability captions`,
  });
  return {
    config: cfg, vocabSize: Object.fromEntries(cfg.regimes.map((r, i) => [r.name, captioners[i].vocabSize])), scores, summary, comparisons, acceptance,
    seconds: (performance.now() - t0) / 1000,
  };
}
