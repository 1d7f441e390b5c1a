// `kiln emergence run`: a scaling sweep of character-level kiln GPTs on few-shot BIG-bench JSON tasks;
// writes results.json, table.txt, emergence.svg, loglik.svg, the tasks (tasks/*.json), each model's
// harness results (bigbench/<size>.json, or <size>-seed<k>.json with --seeds N; `kiln bigbench
// emergence bigbench/*.json` averages a size's seeds) and, with --save-models, the models
// (models/<size>/ or models/<size>-seed<k>/, usable as `kiln bigbench run --model kiln:<folder>`).
import '../../index.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { flagInt, flagList, flagPositive, flagString, MAX_SEED, parseVerb, UsageError, type Command } from '../../cli/args.js';
import type { VegaLiteSpec } from '../../plot/vegalite.js';
import { acceptanceLines, prepareRunDir, writeRun } from '../report.js';
import { emergenceSpec, emergenceTable, jsonWithInfinity } from '../bigbench/emergence.js';
import { saveKilnLanguageModel } from '../bigbench/kiln-model.js';
import {
  DEFAULT_EXPERIMENT, runExperiment, sizeLabel, taskFiles, type ExperimentConfig, type ExperimentResult, type ModelSize,
} from './experiment.js';
import { TASK_NAMES } from './tasks.js';

const D = DEFAULT_EXPERIMENT;
const HELP = `usage: kiln emergence run [options]

Emergent abilities of language models (Wei et al., arXiv 2206.07682) at small scale. A family of
character-level GPTs (${D.sizes.map(sizeLabel).join(', ')}: layers and width) is trained on the
same text: examples of ${D.tasks.length} tasks in BIG-bench's few-shot format (${D.train.steps} steps of ${D.train.batchSize} rows of
${D.blockSize} characters, the loss on the answers). Each model is then evaluated ${D.shots.join('/')}-shot on held-out
examples written as BIG-bench JSON tasks, by the bigbench harness. Per task: the preferred score
(exact match or multiple-choice grade, normalised: 0 = chance, 100 = perfect) against parameters,
with BIG-bench's linearity and breakthroughness and a flag for emergent curves; and the same
statistics of the target's log-likelihood, which can rise while the score is still at chance.

options:
  --sizes L          comma-separated layers:heads:width, e.g. 1:2:16,2:4:64 (default the five above)
  --steps N          training steps per model (default ${D.train.steps})
  --batch N          rows per step (default ${D.train.batchSize})
  --lr X             peak learning rate (default ${D.train.lr})
  --tasks L          comma-separated subset of ${TASK_NAMES.join(',')} (default all)
  --examples N       held-out examples per task (default ${D.evalExamples})
  --shots L          comma-separated shot counts (default ${D.shots.join(',')})
  --seeds N          sweeps with seeds S, S+1, ... (own training text and initialisation, the same
                     held-out examples); the curves are on the mean scores (default ${D.seeds})
  --seed S           first seed; also fixes the held-out examples and the prompts' shots (default ${D.seed})
  --min-gain X, --near-chance X, --breakthrough-ratio X
                     the emergence criteria (defaults ${D.criteria.minGain}, ${D.criteria.nearChance}, ${D.criteria.breakthroughOverLinearity})
  --save-models      also write each model to models/<size>/ in the run folder (models/<size>-seed<k>/
                     with --seeds N > 1)
  --out DIR          run folder (default runs/emergence-<date>): results.json, table.txt, the charts, tasks/
                     and each model's harness results bigbench/<size>.json (<size>-seed<k>.json with --seeds N)
  --json             print the results as JSON instead of a table
  -h, --help         this help`;

function parseSizes(s: string): ModelSize[] {
  return s.split(',').map((x) => x.trim()).filter(Boolean).map((x) => {
    const parts = x.split(':').map(Number);
    if (parts.length !== 3 || parts.some((n) => !Number.isInteger(n) || n < 1))
      throw new UsageError(`--sizes: '${x}' is not layers:heads:width (three positive integers)`);
    return { nLayer: parts[0], nHead: parts[1], nEmbd: parts[2] };
  });
}

const fmt = (x: number | null | undefined, d = 2) => (x === null || x === undefined ? '-' : Number.isFinite(x) ? x.toFixed(d) : x > 0 ? '+inf' : '-inf');

export function formatResult(r: ExperimentResult): string {
  const c = r.config;
  const lines: string[] = [];
  lines.push(`models (vocabulary ${r.vocabSize} characters, context ${c.blockSize}; ${c.train.steps} steps x ${c.train.batchSize} rows, lr ${c.train.lr}` +
    `${c.seeds > 1 ? `; seeds ${c.seed}-${c.seed + c.seeds - 1}, scores are seed means` : ''}):`);
  for (const m of r.models)
    lines.push(`  ${(c.seeds > 1 ? `${m.label} s${m.seed}` : m.label).padEnd(14)} ${String(m.params).padStart(9)} parameters  ${m.trainFlops.toExponential(2)} training FLOPs  final loss ${m.finalLoss.toFixed(3)}  ` +
      `train ${m.trainSeconds.toFixed(0)} s, eval ${m.evalSeconds.toFixed(0)} s`);
  lines.push('', 'preferred score, normalised (0 = chance, 100 = perfect):', emergenceTable(r.curves).trimEnd());
  if (r.seedCurves.length) {
    lines.push('', 'per seed (normalised score, smallest model first; emergent marked *):');
    for (const k of r.curves)
      lines.push(`  ${`${k.task} ${k.shots}-shot`.padEnd(26)} ` + r.seedCurves.map((cs, i) => {
        const x = cs.find((y) => y.task === k.task && y.shots === k.shots)!;
        return `s${c.seed + i}: ${x.scores.map((v) => (v === null ? '-' : v.toFixed(0))).join('/')}${x.emergent ? '*' : ''}`;
      }).join('  '));
  }
  lines.push('', 'target log-likelihood (mean nats per example):');
  const head = ['task', 'shots', ...(r.curves[0]?.labels ?? []), 'I', 'linearity', 'breakthroughness'];
  const row = (cells: string[]) => `| ${cells.join(' | ')} |`;
  lines.push(row(head), row(head.map(() => '---')));
  for (const l of r.logLikelihood)
    lines.push(row([l.task, String(l.shots), ...l.values.map((v) => fmt(v)), fmt(l.stats?.improvement), fmt(l.stats?.linearity), fmt(l.stats?.breakthroughness)]));
  lines.push('', 'emergent = near chance at the smallest model, a rise of at least the minimum gain, and breakthroughness >= ratio x linearity');
  lines.push(...acceptanceLines(r.acceptance));
  lines.push(`\nfinished in ${r.seconds.toFixed(0)} s`);
  return lines.join('\n');
}

/** The target log-likelihood against parameters, one line per task. */
export function logLikelihoodSpec(r: ExperimentResult): VegaLiteSpec {
  // One point per model size (the seed mean with several seeds), at the curves' scales.
  const { scales = [], labels = [] } = r.curves[0] ?? {};
  const values = r.logLikelihood.flatMap((l) => l.values.map((v, i) => ({
    task: l.task, shots: `${l.shots}-shot`, scale: scales[i], model: labels[i], loglik: v,
  }))).filter((v) => v.loglik !== null);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'Target log-likelihood against model scale',
    data: { values },
    facet: { column: { field: 'shots', type: 'ordinal', title: null } },
    spec: {
      width: 260,
      height: 200,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'scale', type: 'quantitative', scale: { type: 'log' }, axis: { format: '.0e', tickCount: 5, labelAngle: -30 }, title: 'parameters' },
        y: { field: 'loglik', type: 'quantitative', title: 'mean log P(target) (nats)' },
        color: { field: 'task', type: 'nominal' },
        tooltip: [{ field: 'model' }, { field: 'loglik', type: 'quantitative', format: '.2f' }],
      },
    },
  } as VegaLiteSpec;
}

/** results.json without the per-example outputs (those are in bigbench/<size>.json, or <size>-seed<k>.json). */
function summaryOf(r: ExperimentResult): unknown {
  return JSON.parse(jsonWithInfinity({
    ...r,
    models: r.models.map((m) => ({
      ...m,
      results: { ...m.results, tasks: m.results.tasks.map((t) => ({ ...t, subtasks: t.subtasks.map((s) => ({ ...s, perShot: s.perShot.map(({ examples: _e, ...p }) => p) })) })) },
    })),
  }));
}

export const command: Command = {
  name: 'emergence',
  summary: 'emergent abilities: a scaling sweep of kiln GPTs on few-shot BIG-bench tasks (arXiv 2206.07682)',
  async run(argv: string[]): Promise<number> {
    const flags = parseVerb(argv, {
      command: 'emergence', verb: 'run', help: HELP, booleans: ['save-models'],
      options: ['sizes', 'steps', 'batch', 'lr', 'tasks', 'examples', 'shots', 'seeds', 'seed', 'min-gain', 'near-chance', 'breakthrough-ratio', 'save-models', 'out', 'json'],
    });
    if (typeof flags === 'number') return flags;
    const sizes = flagString(flags, 'sizes');
    const shots = flagList(flags, 'shots');
    const cfg: ExperimentConfig = {
      ...D,
      sizes: sizes === undefined ? D.sizes : parseSizes(sizes),
      tasks: flagList(flags, 'tasks', TASK_NAMES) ?? D.tasks,
      train: { ...D.train, steps: flagInt(flags, 'steps', D.train.steps, 1)!, batchSize: flagInt(flags, 'batch', D.train.batchSize, 1, 4096)!, lr: flagPositive(flags, 'lr', D.train.lr, 1) },
      evalExamples: flagInt(flags, 'examples', D.evalExamples, 1)!,
      shots: shots === undefined ? D.shots : shots.map((s) => {
        const n = Number(s);
        if (!Number.isInteger(n) || n < 0) throw new UsageError(`--shots: '${s}' is not a non-negative integer`);
        return n;
      }),
      seeds: flagInt(flags, 'seeds', D.seeds, 1, 100)!,
      seed: flagInt(flags, 'seed', D.seed, 0, MAX_SEED - 100)!,
      criteria: {
        minGain: flagPositive(flags, 'min-gain', D.criteria.minGain, 100),
        nearChance: flagPositive(flags, 'near-chance', D.criteria.nearChance, 100),
        breakthroughOverLinearity: flagPositive(flags, 'breakthrough-ratio', D.criteria.breakthroughOverLinearity),
      },
    };
    // A k-shot prompt draws its k shots from the other held-out examples.
    const tooMany = cfg.shots.filter((s) => s >= cfg.evalExamples);
    if (tooMany.length) throw new UsageError(`--shots ${tooMany.join(',')} needs more --examples than ${cfg.evalExamples} (each shot count must be below --examples)`);
    const out = prepareRunDir(flags, 'emergence');
    const saveModels = flags['save-models'] === true;
    const result = await runExperiment(cfg, (line) => console.error(`[emergence] ${line}`), saveModels
      ? (label, model, tok) => saveKilnLanguageModel(join(out, 'models', label), model, tok, { recipe: 'emergence', seed: cfg.seed })
      : undefined);
    mkdirSync(join(out, 'tasks'), { recursive: true });
    for (const [name, json] of taskFiles(cfg)) writeFileSync(join(out, 'tasks', `${name}.json`), JSON.stringify(json, null, 1) + '\n');
    mkdirSync(join(out, 'bigbench'), { recursive: true });
    for (const m of result.models) writeFileSync(join(out, 'bigbench', `${cfg.seeds > 1 ? `${m.label}-seed${m.seed}` : m.label}.json`), JSON.stringify(m.results) + '\n');
    await writeRun(out, summaryOf(result), formatResult(result), { 'emergence.svg': emergenceSpec(result.curves), 'loglik.svg': logLikelihoodSpec(result) }, !!flags.json,
      ['tasks/', 'bigbench/', ...(saveModels ? ['models/'] : [])]);
    return 0;
  },
};
