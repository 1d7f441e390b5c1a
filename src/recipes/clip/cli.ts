// `kiln clip run`: SimCLR against CLIP under several caption regimes on the synthetic world of the
// `ssl` recipe, scored by linear probes; writes results.json, table.txt and probe.svg.
import '../../index.js';
import { flagInt, flagList, flagPositive, MAX_SEED, parseVerb, type Command } from '../../cli/args.js';
import { acceptanceLines, prepareRunDir, pct, probeChart, writeRun } from '../report.js';
import { DEFAULT_EXPERIMENT, runExperiment, type ExperimentConfig, type ExperimentResult } from './experiment.js';

const D = DEFAULT_EXPERIMENT;
const HELP = `usage: kiln clip run [options]

Caption vs image-only supervision (Santurkar et al., arXiv 2207.07635) at small scale, on the
synthetic world of \`kiln ssl\` (${D.world.prototypes} prototype images; the augmentation draws any member of a
prototype's class). The same image encoder is pretrained with SimCLR on pairs of views and with
CLIP on the same views, each with a caption (a bag of words through a small text encoder) that
names the prototype's attributes (its labels on the ${D.coarseTasks} coarse tasks the probes ask about). Caption
regimes (descriptiveness = chance each attribute is named; synonyms per value; filler words):
${D.regimes.map((r) => `  ${r.name.padEnd(20)} ${r.descriptiveness}, ${r.synonyms}, ${r.filler} of ${r.fillerVocab}`).join('\n')}
Each frozen encoder is scored by linear probes, paired by seed against SimCLR.

options:
  --steps N          pretraining steps per method (default ${D.train.steps})
  --batch N          distinct prototypes per batch, two views each (default ${D.train.batchSize})
  --lr X             peak AdamW learning rate (default ${D.train.lr})
  --regimes L        comma-separated subset of ${D.regimes.map((r) => r.name).join(',')} (default all)
  --seeds N          seeds (default ${D.seeds})
  --seed S           first seed; also fixes the world and the attributes (default ${D.seed})
  --out DIR          run folder (default runs/clip-<date>)
  --json             print the results as JSON instead of a table
  -h, --help         this help`;

export function formatResult(r: ExperimentResult): string {
  const c = r.config;
  const lines: string[] = [];
  lines.push(`world: ${c.world.prototypes} prototypes; ${c.train.steps} steps of ${c.train.batchSize} prototypes x 2 views; ${c.seeds} seed(s); ` +
    `probe on ${c.probe.trainPerProto} / ${c.probe.testPerProto} views per prototype`);
  lines.push(`tasks: prototype (${Math.min(c.fineTask, c.world.prototypes)}-way) and ${c.coarseTasks} attributes of ${c.coarseGroups} values (coarse; what captions describe)`);
  lines.push('', `${'method'.padEnd(24)}${'prototype'.padStart(16)}${'coarse'.padStart(16)}   captions`);
  for (const s of r.summary) {
    const reg = c.regimes.find((x) => x.name === s.method);
    const sd = (m: number, v: number) => `${pct(m)} ± ${(100 * v).toFixed(1)}`;
    lines.push(`${(reg ? `clip ${s.method}` : s.method).padEnd(24)}${sd(s.prototypeAcc, s.prototypeSd).padStart(16)}${sd(s.coarseAcc, s.coarseSd).padStart(16)}   ` +
      (reg ? `descriptiveness ${reg.descriptiveness}, ${reg.synonyms} synonym(s), ${reg.filler} filler, vocabulary ${r.vocabSize[reg.name]}` : 'none (image-only)'));
  }
  lines.push('', 'paired by seed, against SimCLR:');
  for (const m of r.comparisons)
    lines.push(`  clip ${m.method.padEnd(20)} ${m.metric === 'prototypeAcc' ? 'prototype' : 'coarse   '} ${m.meanDiff >= 0 ? '+' : ''}${(100 * m.meanDiff).toFixed(1)} points, better on ${m.wins}/${m.seeds} seeds`);
  lines.push(...acceptanceLines(r.acceptance));
  lines.push(`\nfinished in ${r.seconds.toFixed(0)} s`);
  return lines.join('\n');
}

export const command: Command = {
  name: 'clip',
  summary: 'caption vs image-only supervision: CLIP against SimCLR by caption regime (arXiv 2207.07635)',
  async run(argv: string[]): Promise<number> {
    const flags = parseVerb(argv, { command: 'clip', verb: 'run', help: HELP, options: ['steps', 'batch', 'lr', 'regimes', 'seeds', 'seed', 'out', 'json'] });
    if (typeof flags === 'number') return flags;
    const lr = flagPositive(flags, 'lr', D.train.lr, 1);
    const names = flagList(flags, 'regimes', D.regimes.map((r) => r.name)) ?? D.regimes.map((r) => r.name);
    const cfg: ExperimentConfig = {
      ...D,
      train: { ...D.train, steps: flagInt(flags, 'steps', D.train.steps, 1)!, batchSize: flagInt(flags, 'batch', D.train.batchSize, 2, 8192)!, lr },
      regimes: D.regimes.filter((r) => names.includes(r.name)),
      seeds: flagInt(flags, 'seeds', D.seeds, 1, 100)!,
      seed: flagInt(flags, 'seed', D.seed, 0, MAX_SEED - 100)!,
    };
    const out = prepareRunDir(flags, 'clip');
    const result = await runExperiment(cfg, (line) => console.error(`[clip] ${line}`));
    const title = `Linear-probe accuracy: SimCLR vs CLIP by caption regime (${cfg.seeds} seed(s); bars are means, dots seeds)`;
    await writeRun(out, result, formatResult(result), { 'probe.svg': probeChart(title, result.scores, 'coarse (described attributes)') }, !!flags.json);
    return 0;
  },
};
