// Runs loaded tasks against a model: for every subtask and shot count, build BIG-bench's prompts,
// ask the model for choice log-probabilities and/or generations, post-process, and score.
// A failing example is recorded with its error and left out of the scores; the run goes on.
import { KilnError } from '../../errors.js';
import { argmaxTieBreak, normalizeLogProbs, postprocessOutput } from './metrics.js';
import type { LanguageModel } from './model.js';
import { buildPrompts, type PromptedExample } from './prompts.js';
import {
  aggregateTasks, shotResult, summarizeTask, type ExampleOutput, type ShotResult, type TaskShotSummary,
} from './scoring.js';
import { GENERATIVE_METRICS, MULTIPLE_CHOICE_METRICS, leafTasks, type Task } from './task.js';
import { isSeed } from '../seed.js';

export const RESULTS_KIND = 'kiln.bigbench.results';

export interface SubtaskResult {
  name: string;
  source: string;
  metrics: string[];
  preferredScore: string;
  perShot: ShotResult[];
}

export interface TaskResult {
  name: string;
  source: string;
  description: string;
  keywords: string[];
  preferredScore: string;
  skippedMetrics: string[];
  warnings: string[];
  subtasks: SubtaskResult[];
  perShot: TaskShotSummary[];
}

export interface RunResults {
  kind: typeof RESULTS_KIND;
  version: 1;
  createdAt: string;
  model: { spec: string; name: string; label: string; scale: number | null };
  settings: { shots: number[]; seed: number; maxExamples: number | null; maxTokens: number };
  tasks: TaskResult[];
  aggregate: { shots: number; normalized: number | null; nTasks: number }[];
  failedExamples: number;
  /** True when the run stopped early (too many failures); the scores cover what did run. */
  incomplete: boolean;
}

export interface RunOptions {
  shots?: number[];
  seed?: number;
  maxExamples?: number;
  /** Upper bound on generated tokens per example (default 64). */
  maxTokens?: number;
  /** Examples in flight at once (the model may limit further; default 8). */
  concurrency?: number;
  /** Stop asking the model after this many failed examples (default 25). */
  maxFailures?: number;
  modelSpec?: string;
  label?: string;
  scale?: number;
  /** Progress lines (the CLI prints them on stderr). */
  onProgress?: (line: string) => void;
  /** Called with the results so far after each (subtask, shots): lets the CLI save partial results. */
  onCheckpoint?: (partial: RunResults) => void;
}

const isMc = (m: string) => (MULTIPLE_CHOICE_METRICS as readonly string[]).includes(m);
const isGen = (m: string) => (GENERATIVE_METRICS as readonly string[]).includes(m);

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function checkLogProbs(values: unknown, n: number, what: string): number[] {
  if (!Array.isArray(values) || values.length !== n) throw new Error(`model returned ${Array.isArray(values) ? values.length : typeof values} ${what} log-probabilities, expected ${n}`);
  values.forEach((v, i) => {
    if (typeof v !== 'number' || Number.isNaN(v) || v > 1e-6) throw new Error(`model returned an invalid log-probability for ${what} ${i}: ${v}`);
  });
  return values as number[];
}

interface FailureBudget { failures: number; max: number }

async function evaluateExample(task: Task, p: PromptedExample, model: LanguageModel, maxTokens: number, budget: FailureBudget): Promise<ExampleOutput> {
  const ex = p.example;
  const out: ExampleOutput = { index: ex.index, prompt: p.prompt, targets: ex.targets, shotIndices: p.shotIndices };
  if (ex.choices) { out.choices = ex.choices; out.choiceScores = ex.choiceScores; out.shownChoices = p.shownChoices; }
  if (budget.failures >= budget.max) {
    out.error = `not run: stopped after ${budget.failures} failed examples`;
    return out;
  }
  try {
    if (task.metrics.some(isMc)) {
      out.choiceLogProbs = checkLogProbs(await model.scoreChoices(p.prompt, ex.choices!), ex.choices!.length, 'choice');
      out.predictedChoice = ex.choices![argmaxTieBreak(normalizeLogProbs(out.choiceLogProbs))];
    }
    if (task.metrics.some(isGen)) {
      const stop = task.stopString ? [task.stopString] : undefined;
      const gen = await model.generate([p.prompt], { maxTokens, stop });
      if (!Array.isArray(gen) || typeof gen[0] !== 'string') throw new Error('model returned no generation');
      out.generation = gen[0];
      out.response = postprocessOutput(gen[0], task.stopString, task.outputRegex);
    }
    if (task.metrics.includes('log_likelihood')) {
      out.targetLogProbs = checkLogProbs(await model.scoreChoices(p.prompt, ex.targets), ex.targets.length, 'target');
    }
  } catch (e) {
    budget.failures++;
    out.error = describe(e);
  }
  return out;
}

/** Evaluate one leaf task (one that holds examples) at one shot count. */
export async function evaluateSubtask(task: Task, model: LanguageModel, shots: number, opts: RunOptions = {}, budget: FailureBudget = { failures: 0, max: opts.maxFailures ?? 25 }): Promise<ShotResult> {
  let prompts: PromptedExample[];
  try {
    prompts = buildPrompts(task, shots, { seed: opts.seed, maxExamples: opts.maxExamples });
  } catch (e) {
    return { ...shotResult(shots, task.metrics, task.preferredScore, []), skipped: describe(e) };
  }
  let done = 0;
  let last = Date.now();
  const outputs = await mapLimit(prompts, opts.concurrency ?? 8, async (p) => {
    const o = await evaluateExample(task, p, model, opts.maxTokens ?? 64, budget);
    done++;
    if (opts.onProgress && (Date.now() - last > 2000 || done === prompts.length)) {
      last = Date.now();
      opts.onProgress(`bigbench: ${task.name} ${shots}-shot: ${done}/${prompts.length} examples${budget.failures ? ` (${budget.failures} failed so far)` : ''}`);
    }
    return o;
  });
  return shotResult(shots, task.metrics, task.preferredScore, outputs);
}

/** Refuses options that would run nothing, or something else than asked (a KilnError naming the option). */
function checkRunOptions(opts: RunOptions): void {
  const bad = (what: string, v: unknown) => new KilnError('INVALID_ARGUMENT', `runBigBench: ${what}, got ${Array.isArray(v) ? JSON.stringify(v) : String(v)}`);
  if (opts.shots !== undefined && (!Array.isArray(opts.shots) || opts.shots.length === 0 || opts.shots.some((n) => !Number.isInteger(n) || n < 0)))
    throw bad('shots must be a non-empty list of non-negative integers', opts.shots);
  if (opts.seed !== undefined && !isSeed(opts.seed)) throw bad('seed must be an integer in [0, 2^32)', opts.seed);
  for (const k of ['maxExamples', 'maxTokens', 'concurrency', 'maxFailures'] as const)
    if (opts[k] !== undefined && !(Number.isInteger(opts[k]) && opts[k]! >= 1)) throw bad(`${k} must be a positive integer`, opts[k]);
}

/** Run every task at every shot count. Never throws for a model failure: see `failedExamples`. */
export async function runBigBench(tasks: readonly Task[], model: LanguageModel, opts: RunOptions = {}): Promise<RunResults> {
  checkRunOptions(opts);
  const shotList = opts.shots ?? [0, 1, 2, 3];
  const budget: FailureBudget = { failures: 0, max: opts.maxFailures ?? 25 };
  const results: RunResults = {
    kind: RESULTS_KIND,
    version: 1,
    createdAt: new Date().toISOString(),
    model: { spec: opts.modelSpec ?? model.name, name: model.name, label: opts.label ?? opts.modelSpec ?? model.name, scale: opts.scale ?? null },
    settings: { shots: shotList, seed: opts.seed ?? 42, maxExamples: opts.maxExamples ?? null, maxTokens: opts.maxTokens ?? 64 },
    tasks: [],
    aggregate: [],
    failedExamples: 0,
    incomplete: false,
  };
  const refresh = () => {
    for (const t of results.tasks) t.perShot = summarizeTask(t.subtasks.map((s) => s.perShot), shotList);
    results.aggregate = aggregateTasks(results.tasks, shotList);
    results.failedExamples = results.tasks.reduce((n, t) => n + t.subtasks.reduce((m, s) => m + s.perShot.reduce((k, r) => k + r.nFailed, 0), 0), 0);
    results.incomplete = budget.failures >= budget.max;
  };
  for (const task of tasks) {
    const tr: TaskResult = {
      name: task.name, source: task.source, description: task.description, keywords: task.keywords,
      preferredScore: task.preferredScore, skippedMetrics: task.skippedMetrics,
      warnings: [task, ...task.subtasks].flatMap((t) => t.warnings), subtasks: [], perShot: [],
    };
    results.tasks.push(tr);
    for (const leaf of leafTasks(task)) {
      const sr: SubtaskResult = { name: leaf.name, source: leaf.source, metrics: leaf.metrics, preferredScore: leaf.preferredScore, perShot: [] };
      tr.subtasks.push(sr);
      for (const shots of shotList) {
        const r = await evaluateSubtask(leaf, model, shots, opts, budget);
        if (r.skipped) opts.onProgress?.(`bigbench: ${leaf.name} ${shots}-shot skipped: ${r.skipped}`);
        sr.perShot.push(r);
        refresh();
        opts.onCheckpoint?.(results);
      }
    }
  }
  refresh();
  return results;
}
