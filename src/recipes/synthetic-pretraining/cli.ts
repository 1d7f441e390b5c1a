// `kiln synthetic-pretraining run`: natural, Set and LIME pre-training and the Set model's parameter
// statistics against scratch, fine-tuned on two E2E tasks; writes results.json, table.txt and
// recovery.svg.
import '../../index.js';
import { flagInt, flagList, flagString, MAX_SEED, parseVerb, type Command } from '../../cli/args.js';
import type { VegaLiteSpec } from '../../plot/vegalite.js';
import { acceptanceLines, prepareRunDir, writeRun } from '../report.js';
import { DEFAULT_EXPERIMENT, METHODS, runExperiment, type ExperimentConfig, type ExperimentResult, type Method } from './experiment.js';

const D = DEFAULT_EXPERIMENT;
const HELP = `usage: kiln synthetic-pretraining run [options]

Pre-training via simpler synthetic tasks (Wu, Li and Liang, arXiv 2206.10139) at small scale. One
encoder-decoder transformer (${D.model.nLayer}+${D.model.nLayer} layers, width ${D.model.nEmbd}) is pre-trained for the same number of
steps on natural text (E2E restaurant descriptions with ${100 * D.noiseDensity}% of their words dropped in spans,
restored whole), on Set (output the distinct tokens of the input in order) and on LIME (deduct /
abduct / induct over rule strings).
Every initialisation is then fine-tuned the same way on two downstream tasks over meaning
representations held apart from the pre-training text: parse (description -> meaning
representation; slot F1) and generate (meaning representation -> description; BLEU). set-stats
draws each weight tensor afresh from the Set model's per-tensor mean and standard deviation.
The measure: the fraction of natural pre-training's gain over scratch a method recovers.

options:
  --pretrain-steps N     pre-training steps per objective (default ${D.pretrain.steps})
  --finetune-steps N     fine-tuning steps per task (default ${D.finetune.steps})
  --finetune-examples N  fine-tuning examples (default ${D.data.finetuneExamples})
  --test-examples N      test inputs per task (default ${D.data.testExamples})
  --methods L            comma-separated subset of ${METHODS.join(',')} (default all)
  --seeds N              seeds (default ${D.seeds})
  --seed S               first seed; also fixes the data split (default ${D.seed})
  --data DIR             E2E folder (default: shared/data/e2e found above the working directory or kiln)
  --out DIR              run folder (default runs/synthetic-pretraining-<date>)
  --json                 print the results as JSON instead of a table
  -h, --help             this help`;

const TASK_LABEL = { parse: 'parse (slot F1)', generate: 'generate (BLEU)' } as const;

/** A recovered fraction; n/a where natural pre-training gained nothing over scratch (0 / 0). */
const recovered = (v: number) => (Number.isFinite(v) ? `${(100 * v).toFixed(0)}%` : 'n/a');

export function formatResult(r: ExperimentResult): string {
  const c = r.config, sz = r.sizes;
  const lines: string[] = [];
  lines.push(`model: ${r.params} parameters, vocabulary ${r.vocabSize}; pre-training ${c.pretrain.steps} steps x ${c.pretrain.batchSize}; ` +
    `fine-tuning ${c.finetune.steps} steps x ${c.finetune.batchSize} on ${sz.finetune} examples; ${c.seeds} seed(s)`);
  lines.push(`data: ${sz.pretrainTexts} descriptions for natural pre-training; tests: ${sz.testParse} descriptions to parse, ${sz.testGenerate} meaning representations to describe`);
  lines.push('', `${'init'.padEnd(12)}${TASK_LABEL.parse.padStart(20)}${'exact'.padStart(9)}${TASK_LABEL.generate.padStart(20)}${'recovered'.padStart(12)}`);
  for (const method of c.methods) {
    const p = r.summary.find((s) => s.method === method && s.task === 'parse')!, g = r.summary.find((s) => s.method === method && s.task === 'generate')!;
    const rec = r.recovery.find((x) => x.method === method);
    const sd = (m: number, s: number) => `${m.toFixed(1)}${c.seeds > 1 ? ` ± ${s.toFixed(1)}` : ''}`;
    lines.push(`${method.padEnd(12)}${sd(p.mean, p.std).padStart(20)}${`${(100 * p.secondary).toFixed(1)}%`.padStart(9)}${sd(g.mean, g.std).padStart(20)}` +
      `${(rec ? recovered(rec.mean) : method === 'natural' ? '100%' : method === 'scratch' ? '0%' : '-').padStart(12)}`);
  }
  if (r.recovery.length) {
    lines.push('', 'recovered = (method - scratch) / (natural - scratch), averaged over the two tasks; per task:');
    for (const x of r.recovery) lines.push(`  ${x.method.padEnd(10)} ${Object.entries(x.perTask).map(([t, v]) => `${t} ${recovered(v)}`).join(', ')}` +
      (x.perSeed.length > 1 ? `; per seed ${x.perSeed.map(recovered).join(' ')}` : ''));
  }
  lines.push(...acceptanceLines(r.acceptance));
  lines.push(`\nfinished in ${r.seconds.toFixed(0)} s`);
  return lines.join('\n');
}

/** Bars: the fraction of natural pre-training's gain each method recovers, per task and on average. */
export function recoveryChart(r: ExperimentResult): VegaLiteSpec {
  const values = r.recovery.flatMap((x) => [
    ...Object.entries(x.perTask).map(([task, v]) => ({ method: x.method, task, recovered: v })),
    { method: x.method, task: 'mean', recovered: x.mean },
  ]);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `Fraction of natural pre-training's gain over scratch recovered (${r.config.seeds} seed(s))`,
    data: { values },
    mark: 'bar',
    encoding: {
      x: { field: 'method', type: 'nominal', sort: null, title: null },
      xOffset: { field: 'task', type: 'nominal', sort: null },
      color: { field: 'task', type: 'nominal', sort: null },
      y: { field: 'recovered', type: 'quantitative', axis: { format: '%' }, title: 'recovered' },
    },
    width: 300,
  } as VegaLiteSpec;
}

export const command: Command = {
  name: 'synthetic-pretraining',
  summary: 'pre-training via simpler synthetic tasks: Set, LIME and parameter statistics against natural (arXiv 2206.10139)',
  async run(argv: string[]): Promise<number> {
    const flags = parseVerb(argv, {
      command: 'synthetic-pretraining', verb: 'run', help: HELP,
      options: ['pretrain-steps', 'finetune-steps', 'finetune-examples', 'test-examples', 'methods', 'seeds', 'seed', 'data', 'out', 'json'],
    });
    if (typeof flags === 'number') return flags;
    const methods = (flagList(flags, 'methods', METHODS) ?? METHODS) as Method[];
    const cfg: ExperimentConfig = {
      ...D,
      data: { ...D.data, dir: flagString(flags, 'data') ?? D.data.dir, finetuneExamples: flagInt(flags, 'finetune-examples', D.data.finetuneExamples, 1)!,
        testExamples: flagInt(flags, 'test-examples', D.data.testExamples, 1)! },
      pretrain: { ...D.pretrain, steps: flagInt(flags, 'pretrain-steps', D.pretrain.steps, 1)! },
      finetune: { ...D.finetune, steps: flagInt(flags, 'finetune-steps', D.finetune.steps, 1)! },
      methods: METHODS.filter((m) => methods.includes(m)),
      seeds: flagInt(flags, 'seeds', D.seeds, 1, 100)!,
      seed: flagInt(flags, 'seed', D.seed, 0, MAX_SEED - 100)!,
    };
    const out = prepareRunDir(flags, 'synthetic-pretraining');
    const result = await runExperiment(cfg, (line) => console.error(`[synthetic-pretraining] ${line}`));
    await writeRun(out, result, formatResult(result), { 'recovery.svg': recoveryChart(result) }, !!flags.json);
    return 0;
  },
};
