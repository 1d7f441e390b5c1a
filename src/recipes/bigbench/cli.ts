// `kiln bigbench run|emergence`: run BIG-bench JSON tasks few-shot against a model, and make the
// scaling table and plot from several runs.
import { mkdirSync, writeFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { checkFlags, flagInt, flagNumber, flagString, MAX_SEED, parseArgs, prepareOutDir, prepareOutFile, UsageError, type Command } from '../../cli/args.js';
import { writeVegaLiteSvg } from '../../plot/vegalite.js';
import {
  averageSameScale, DEFAULT_CRITERIA, emergenceSpec, emergenceTable, jsonWithInfinity, readScaledResults, taskCurves,
} from './emergence.js';
import { KilnError } from '../../errors.js';
import { ModelSpecError, RandomModel, parseModelSpec, type LanguageModel } from './model.js';
import { EndpointError, OpenAICompletionsModel, openAIOptionsFrom } from './openai.js';
import { ReplayError, ReplayModel } from './replay.js';
import { runBigBench, type RunResults } from './runner.js';
import { TaskFormatError, loadTasks } from './task.js';

const HELP = `usage:
  kiln bigbench run --task <file|dir> --model <spec> [options]
  kiln bigbench emergence <results.json[@scale]>... [--out dir] [--json]

run: evaluate BIG-bench JSON tasks few-shot and write a results JSON (per-shot scores, per-example
outputs). --task is a task file, a task folder (task.json + subtask folders) or a folder of tasks.
  --model kiln:<path>         a kiln GPT (token mode) + tokenizer, greedy decoding, exact log-probs:
                              <path> is a folder holding model.safetensors (kiln.nn.saveCheckpoint,
                              its config the GPTConfig, or {gpt: GPTConfig}) and tokenizer.json
                              (CharTokenizer/WordTokenizer save), or a checkpoint file with
                              tokenizer.json beside it; a tokenizer embedded in the checkpoint as
                              extra.tokenizer stands in for a missing tokenizer.json
                              (saveKilnLanguageModel writes this layout)
          openai:<base URL>   an OpenAI-compatible /completions endpoint (URL may come from OPENAI_BASE_URL)
          replay:<file>       recorded outputs (a previous results file, or JSON Lines of
                              {"prompt", "completion", "logprobs": {continuation: logprob}})
          random:<seed>       uniformly random choices: a chance baseline
  --shots 0,1,2,3             shot counts (default 0,1,2,3)
  --out <file>                results file (default runs/bigbench/results-<time>.json)
  --json                      print the results JSON on stdout instead of a summary
  --max-examples <n>          evaluate n examples per subtask, sampled with the seed
  --seed <n>                  prompt shuffling and shot sampling seed (default 42, as BIG-bench)
  --max-tokens <n>            generation limit per example (default 64)
  --concurrency <n>           requests in flight (default 4 for openai, 8 otherwise)
  --batch-size <n>            kiln: rows per forward pass (default 8)
  --timeout-ms <n>            per request (default 60000), --retries <n> (default 3),
  --backoff-ms <n>            first retry delay, doubling (default 500)
  --max-failures <n>          stop asking the model after n failed examples (default 25)
  --base-url, --api-key       endpoint and key (else OPENAI_BASE_URL, OPENAI_API_KEY)
  --model-name <name>         the "model" field sent (else OPENAI_MODEL, else the server's first model)
  --scale <n>, --label <s>    model size (parameters or FLOPs; a kiln: model's default is its
                              parameter count) and name, for 'emergence'
exit status: 0 all examples ran, 1 some failed (partial results are still written), 2 bad usage.

emergence: per-task curves of the normalised preferred score against model scale, linearity and
breakthroughness, a table flagging emergent tasks (emergence.md), emergence.json and emergence.svg.
Files of the same scale (the seeds of one size, e.g. kiln emergence --seeds N's bigbench/*.json) are
averaged into one point, their seed mean.
  --out <dir>                 output folder (default runs/bigbench/emergence)
  --min-gain <points>         (default ${DEFAULT_CRITERIA.minGain}), --near-chance <points> (default ${DEFAULT_CRITERIA.nearChance}),
  --breakthrough-ratio <r>    emergent needs breakthroughness >= r * linearity (default ${DEFAULT_CRITERIA.breakthroughOverLinearity})
`;

export interface CliIO {
  out: (s: string) => void;
  err: (s: string) => void;
}

const processIO: CliIO = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

/** A count that must be at least 1 (0 examples, tokens, requests in flight or failures allowed is nonsense). */
function positiveInt(f: Record<string, string | boolean>, name: string, dflt?: number): number | undefined {
  return flagInt(f, name, dflt, 1);
}

/** setTimeout takes at most 2^31 - 1 ms; a longer --timeout-ms would fire at once. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

const RUN_FLAGS = ['task', 'model', 'shots', 'out', 'json', 'max-examples', 'seed', 'max-tokens', 'concurrency', 'batch-size', 'timeout-ms', 'retries',
  'backoff-ms', 'max-failures', 'base-url', 'api-key', 'model-name', 'scale', 'label'];
const EMERGENCE_FLAGS = ['out', 'json', 'min-gain', 'near-chance', 'breakthrough-ratio'];

function criterion(f: Record<string, string | boolean>, name: string, dflt: number): number {
  const v = flagNumber(f, name, dflt)!;
  if (!(v >= 0)) throw new UsageError(`--${name} must be >= 0, got ${v}`);
  return v;
}

export function parseShots(s: string): number[] {
  const shots = s.split(',').map((x) => x.trim()).filter((x) => x !== '').map(Number);
  if (shots.length === 0 || shots.some((n) => !Number.isInteger(n) || n < 0 || n > 64)) throw new UsageError(`--shots must be a comma-separated list of integers 0-64, got '${s}'`);
  return [...new Set(shots)];
}

async function makeModel(spec: string, f: Record<string, string | boolean>): Promise<LanguageModel> {
  const parsed = parseModelSpec(spec);
  switch (parsed.kind) {
    case 'kiln': {
      // Loaded lazily: the rest of the harness does not need the native tensor library.
      const { loadKilnLanguageModel } = await import('./kiln-model.js');
      return loadKilnLanguageModel(parsed.checkpoint, { maxBatch: positiveInt(f, 'batch-size', 8) });
    }
    case 'replay':
      return new ReplayModel(parsed.file);
    case 'random':
      return new RandomModel(parsed.seed);
    case 'openai': {
      const o = openAIOptionsFrom({ baseUrl: parsed.baseUrl ?? flagString(f, 'base-url'), apiKey: flagString(f, 'api-key'), model: flagString(f, 'model-name') });
      if (!o.baseUrl) throw new UsageError('--model openai:<base URL> needs a URL (or --base-url, or OPENAI_BASE_URL)');
      const timeoutMs = flagInt(f, 'timeout-ms', 60_000, 1, MAX_TIMEOUT_MS)!;
      const model = o.model ?? (await OpenAICompletionsModel.firstServedModel(o.baseUrl, o.apiKey, timeoutMs));
      return new OpenAICompletionsModel({
        baseUrl: o.baseUrl, apiKey: o.apiKey, model, timeoutMs,
        retries: flagInt(f, 'retries', 3), backoffMs: flagInt(f, 'backoff-ms', 500, 0, MAX_TIMEOUT_MS), concurrency: positiveInt(f, 'concurrency', 4),
      });
    }
  }
}

function writeJsonAtomic(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

const pct = (x: number | null | undefined) => (x === null || x === undefined ? '   -  ' : x.toFixed(1).padStart(6));

export function summaryTable(r: RunResults): string {
  const shots = r.settings.shots;
  const width = Math.max(24, ...r.tasks.map((t) => t.name.length + 2));
  const lines = [`model: ${r.model.label}`, `normalised preferred score (0 = chance, 100 = best):`, `${'task'.padEnd(width)}${shots.map((s) => `${s}-shot`.padStart(8)).join('')}`];
  for (const t of r.tasks) lines.push(`${t.name.padEnd(width)}${t.perShot.map((p) => pct(p.normalized).padStart(8)).join('')}   (${t.preferredScore})`);
  lines.push(`${'aggregate'.padEnd(width)}${r.aggregate.map((a) => pct(a.normalized).padStart(8)).join('')}`);
  if (r.failedExamples) lines.push(`${r.failedExamples} example(s) failed${r.incomplete ? ' (run stopped early)' : ''}; see "error" in the results file`);
  return lines.join('\n') + '\n';
}

async function runCommand(argv: string[], io: CliIO): Promise<number> {
  const { flags: f, positional } = parseArgs(argv);
  if (f.help) { io.out(HELP); return 0; }
  if (positional.length) throw new UsageError(`unexpected argument '${positional[0]}'`);
  checkFlags(f, RUN_FLAGS, 'bigbench run');
  const taskPath = flagString(f, 'task');
  const spec = flagString(f, 'model');
  if (!taskPath) throw new UsageError('bigbench run needs --task <file|dir>');
  if (!spec) throw new UsageError('bigbench run needs --model <kiln:checkpoint|openai:URL|replay:file|random:seed>');
  const shots = parseShots(flagString(f, 'shots', '0,1,2,3')!);
  const scale = flagNumber(f, 'scale');
  if (scale !== undefined && !(scale > 0)) throw new UsageError(`--scale must be positive, got ${scale}`);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const out = flagString(f, 'out', join('runs', 'bigbench', `results-${stamp}.json`))!;
  parseModelSpec(spec); // a bad spec is a usage error before the tasks are read
  prepareOutFile(out); // an unwritable --out fails now, not after the run
  // The run's counts are checked before the tasks and the model are loaded.
  const seed = flagInt(f, 'seed', 42, 0, MAX_SEED), maxExamples = positiveInt(f, 'max-examples'), maxTokens = positiveInt(f, 'max-tokens', 64);
  const concurrency = positiveInt(f, 'concurrency', 8), maxFailures = positiveInt(f, 'max-failures', 25);
  const tasks = loadTasks(taskPath);
  for (const t of tasks) for (const w of [t, ...t.subtasks].flatMap((x) => x.warnings)) io.err(`bigbench: ${t.name}: warning: ${w}\n`);
  const model = await makeModel(spec, f);
  // A kiln model's scale, unless given, is its parameter count (what kiln emergence records), so
  // `bigbench emergence` can read the file without an @scale.
  const kilnModel = (model as { model?: { numParameters?: () => number } }).model;
  const ownScale = scale ?? (spec.startsWith('kiln:') && typeof kilnModel?.numParameters === 'function' ? kilnModel.numParameters() : undefined);
  try {
    const results = await runBigBench(tasks, model, {
      shots, seed, maxExamples, maxTokens, concurrency, maxFailures,
      modelSpec: spec, label: flagString(f, 'label'), scale: ownScale,
      onProgress: (line) => io.err(line + '\n'),
      onCheckpoint: (partial) => writeJsonAtomic(out, JSON.stringify(partial, null, 1)),
    });
    writeJsonAtomic(out, JSON.stringify(results, null, 1));
    io.err(`bigbench: wrote ${out}\n`);
    io.out(f.json ? JSON.stringify(results, null, 1) + '\n' : summaryTable(results));
    return results.failedExamples > 0 ? 1 : 0;
  } finally {
    await model.close?.();
  }
}

async function emergenceCommand(argv: string[], io: CliIO): Promise<number> {
  const { flags: f, positional } = parseArgs(argv);
  if (f.help) { io.out(HELP); return 0; }
  if (positional.length < 2) throw new UsageError('bigbench emergence needs at least 2 results files (of at least 2 model sizes)');
  checkFlags(f, EMERGENCE_FLAGS, 'bigbench emergence');
  const criteria = {
    minGain: criterion(f, 'min-gain', DEFAULT_CRITERIA.minGain),
    nearChance: criterion(f, 'near-chance', DEFAULT_CRITERIA.nearChance),
    breakthroughOverLinearity: criterion(f, 'breakthrough-ratio', DEFAULT_CRITERIA.breakthroughOverLinearity),
  };
  const outDir = flagString(f, 'out', join('runs', 'bigbench', 'emergence'))!;
  prepareOutDir(outDir);
  const series = averageSameScale(positional.map(readScaledResults));
  const curves = taskCurves(series, criteria);
  const table = emergenceTable(curves);
  const json = jsonWithInfinity({ kind: 'kiln.bigbench.emergence', version: 1, criteria, models: series.map((s) => ({ file: s.file, label: s.label, scale: s.scale })), curves });
  writeFileSync(join(outDir, 'emergence.md'), table);
  writeFileSync(join(outDir, 'emergence.json'), json + '\n');
  await writeVegaLiteSvg(join(outDir, 'emergence.svg'), emergenceSpec(curves));
  io.err(`bigbench: wrote ${join(outDir, 'emergence.{md,json,svg}')}\n`);
  io.out(f.json ? json + '\n' : table);
  return 0;
}

/** Entry point with injectable output, for tests. */
export async function runBigBenchCli(argv: string[], io: CliIO = processIO): Promise<number> {
  const [verb, ...rest] = argv;
  try {
    if (!verb || verb === '--help' || verb === '-h' || verb === 'help') { io.out(HELP); return verb ? 0 : 2; }
    if (verb === 'run') return await runCommand(rest, io);
    if (verb === 'emergence') return await emergenceCommand(rest, io);
    throw new UsageError(`unknown bigbench verb '${verb}' (run, emergence)`);
  } catch (e) {
    if (e instanceof ModelSpecError) throw new UsageError(e.message);
    if (e instanceof TaskFormatError || e instanceof EndpointError || e instanceof ReplayError || e instanceof KilnError) {
      io.err(`kiln bigbench: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

export const command: Command = {
  name: 'bigbench',
  summary: 'run BIG-bench JSON tasks few-shot; scaling statistics (emergence)',
  run: (argv) => runBigBenchCli(argv),
};
