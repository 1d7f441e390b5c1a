// `kiln ssl run`: pretrain the same encoder with SimCLR, CISSL and DISSL on the synthetic world's
// augmented views, score each by linear probes on augmentation-invariant tasks, and write
// results.json, table.txt and probe.svg.
import '../../index.js';
import { flagInt, flagList, flagNumber, flagPositive, MAX_SEED, parseVerb, UsageError, type Command } from '../../cli/args.js';
import { acceptanceLines, prepareRunDir, pct, probeChart, writeRun } from '../report.js';
import { DEFAULT_EXPERIMENT, runExperiment, type ExperimentConfig, type ExperimentResult } from './experiment.js';
import { OBJECTIVES, type Objective } from './model.js';

const D = DEFAULT_EXPERIMENT;
const HELP = `usage: kiln ssl run [options]

Idealized self-supervised learning (Dubois et al., arXiv 2209.06235) at small scale. A synthetic
world of ${D.world.prototypes} prototype images (coloured blobs, ${D.world.size}x${D.world.size} RGB) whose augmentation
(shift, blob scale, colour jitter, a distractor blob, pixel noise) draws any member of a prototype's
equivalence class, so every augmentation-invariant task is a function of the prototype. The same
encoder is pretrained with SimCLR (shared MLP projector, self pair masked), CISSL (linear predictor
against an MLP projector, self pair kept) and DISSL (teacher/student distillation with maximality
and determinism), then frozen and scored by linear probes on the prototype task and on random coarse
groupings of prototypes. Raw pixels, the untrained encoder and a supervised encoder are anchors.

options:
  --steps N          pretraining steps per method (default ${D.train.steps})
  --batch N          distinct prototypes per batch, two views each, at most --prototypes (default ${D.train.batchSize}, or P if fewer)
  --lr X             peak AdamW learning rate (warm-up then cosine; default ${D.train.lr})
  --objectives L     comma-separated subset of ${OBJECTIVES.join(',')} (default all)
  --no-baselines     skip the pixel, untrained and supervised anchors
  --prototypes P     number of prototypes (default ${D.world.prototypes})
  --noise X          pixel noise of the augmentation (default ${D.world.noise})
  --z-dim N          representation dimension (default ${D.model.zDim})
  --classes C        DISSL's number of equivalence classes (default ${D.model.classes})
  --temperature X    contrastive temperature (default ${D.model.temperature})
  --seeds N          seeds (default ${D.seeds}); comparisons are paired by seed
  --seed S           first seed; also fixes the world and the tasks (default ${D.seed})
  --out DIR          run folder (default runs/ssl-<date>)
  --json             print the results as JSON instead of a table
  -h, --help         this help`;

export function formatResult(r: ExperimentResult): string {
  const c = r.config;
  const lines: string[] = [];
  lines.push(`world: ${c.world.prototypes} prototypes, ${c.world.size}x${c.world.size} RGB, noise ${c.world.noise}; ` +
    `${c.train.steps} steps of ${c.train.batchSize} prototypes x 2 views; ${c.seeds} seed(s); probe on ${c.probe.trainPerProto} / ${c.probe.testPerProto} views per prototype`);
  lines.push(`tasks: prototype (${c.world.prototypes}-way) and ${c.coarseTasks} random groupings into ${c.coarseGroups} classes (coarse)`);
  lines.push('', `${'method'.padEnd(13)}${'prototype'.padStart(16)}${'coarse'.padStart(16)}${'params'.padStart(10)}`);
  for (const s of r.summary) {
    const sd = (m: number, v: number) => `${pct(m)} ± ${(100 * v).toFixed(1)}`;
    lines.push(`${s.method.padEnd(13)}${sd(s.prototypeAcc, s.prototypeSd).padStart(16)}${sd(s.coarseAcc, s.coarseSd).padStart(16)}${String(r.params[s.method] ?? '').padStart(10)}`);
  }
  if (r.comparisons.length) {
    lines.push('', 'paired by seed, against SimCLR:');
    for (const m of r.comparisons)
      lines.push(`  ${m.method.padEnd(6)} ${m.metric === 'prototypeAcc' ? 'prototype' : 'coarse   '} ${m.meanDiff >= 0 ? '+' : ''}${(100 * m.meanDiff).toFixed(1)} points, better on ${m.wins}/${m.seeds} seeds`);
  }
  lines.push(...acceptanceLines(r.acceptance));
  lines.push(`\nfinished in ${r.seconds.toFixed(0)} s`);
  return lines.join('\n');
}

export const command: Command = {
  name: 'ssl',
  summary: 'idealized SSL: CISSL and DISSL against SimCLR by linear probes (arXiv 2209.06235)',
  async run(argv: string[]): Promise<number> {
    const flags = parseVerb(argv, { command: 'ssl', verb: 'run', help: HELP, booleans: ['no-baselines'], options: ['steps', 'batch', 'lr', 'objectives', 'no-baselines', 'prototypes', 'noise', 'z-dim', 'classes', 'temperature', 'seeds', 'seed', 'out', 'json'] });
    if (typeof flags === 'number') return flags;
    const noise = flagNumber(flags, 'noise', D.world.noise)!;
    if (!(noise >= 0 && noise <= 10)) throw new UsageError(`--noise must be a number in [0, 10], got ${noise}`);
    const prototypes = flagInt(flags, 'prototypes', D.world.prototypes, 4, 4096)!;
    // A batch holds distinct prototypes (the rest of the batch are a view's negatives), so at most all of them.
    const batch = flagInt(flags, 'batch', Math.min(D.train.batchSize, prototypes), 2, 8192)!;
    if (batch > prototypes) throw new UsageError(`--batch ${batch} exceeds --prototypes ${prototypes}: a batch holds distinct prototypes, so at most ${prototypes}`);
    const cfg: ExperimentConfig = {
      ...D,
      world: { ...D.world, prototypes, noise },
      model: {
        ...D.model, zDim: flagInt(flags, 'z-dim', D.model.zDim, 1, 8192)!, classes: flagInt(flags, 'classes', D.model.classes, 2, 1 << 16)!,
        temperature: flagPositive(flags, 'temperature', D.model.temperature, 100),
      },
      train: { ...D.train, steps: flagInt(flags, 'steps', D.train.steps, 1)!, batchSize: batch, lr: flagPositive(flags, 'lr', D.train.lr, 1) },
      objectives: (flagList(flags, 'objectives', OBJECTIVES) ?? D.objectives) as Objective[],
      baselines: !flags['no-baselines'],
      coarseGroups: Math.min(D.coarseGroups, prototypes),
      seeds: flagInt(flags, 'seeds', D.seeds, 1, 100)!,
      seed: flagInt(flags, 'seed', D.seed, 0, MAX_SEED - 100)!,
    };
    const out = prepareRunDir(flags, 'ssl');
    const result = await runExperiment(cfg, (line) => console.error(`[ssl] ${line}`));
    const title = `Linear-probe accuracy after pretraining (${cfg.seeds} seed(s); bars are means, dots seeds)`;
    await writeRun(out, result, formatResult(result), { 'probe.svg': probeChart(title, result.scores, 'coarse (mean)') }, !!flags.json);
    return 0;
  },
};
