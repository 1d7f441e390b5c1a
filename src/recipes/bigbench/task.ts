// BIG-bench JSON tasks: the schema, BIG-bench's defaults, validation that names the field and the
// example, and loading of files, task folders with subtask folders, and folders of tasks.
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { basename, dirname, join, extname } from 'node:path';
import { compilePythonRegex } from './metrics.js';

/** Metrics kiln computes. `rouge` expands to rouge1, rouge2 and rougeLsum (as in BIG-bench). */
export const MULTIPLE_CHOICE_METRICS = ['multiple_choice_grade', 'calibration_multiple_choice_brier_score', 'expected_calibration_error'] as const;
export const GENERATIVE_METRICS = ['exact_str_match', 'bleu', 'rouge'] as const;
export const SCORING_METRICS = ['log_likelihood'] as const;
export type MetricName = (typeof MULTIPLE_CHOICE_METRICS)[number] | (typeof GENERATIVE_METRICS)[number] | (typeof SCORING_METRICS)[number];
const SUPPORTED: readonly string[] = [...MULTIPLE_CHOICE_METRICS, ...GENERATIVE_METRICS, ...SCORING_METRICS];
/** Metrics BIG-bench knows that kiln does not compute: skipped with a warning, not an error. */
const KNOWN_UNSUPPORTED = ['bleurt', 'sequence_f1', 'numeric_match_with_0_1_relative_error', 'macro_f1', 'case_insensitive_str_match'];

/** BIG-bench's `_DEFAULT_REGEX`: used when a task sets neither output_regex nor stop_string. */
export const DEFAULT_OUTPUT_REGEX = '[^\\.\\?\\!\\;\\n]+';

/** Prompt-format defaults, as in BIG-bench's `bigbench/api/json_task.py`. */
export const BIGBENCH_DEFAULTS = {
  taskPrefix: '',
  exampleInputPrefix: '\nQ: ',
  exampleOutputPrefix: '\nA: ',
  choicePrefix: '\n  choice: ',
  appendChoicesToInput: true,
  fewShotExampleSeparator: '\n',
} as const;

export interface TaskExample {
  /** Position in the file's `examples` array (kept after duplicates are dropped). */
  index: number;
  input: string;
  /** Acceptable answers: `target` as a list, or (when absent) the first highest-scoring choice. */
  targets: string[];
  /** Choices in `target_scores` order, and their scores; absent for generative-only examples. */
  choices?: string[];
  choiceScores?: number[];
}

export interface Task {
  name: string;
  description: string;
  keywords: string[];
  /** The metrics kiln will compute (unsupported BIG-bench metrics removed, see `skippedMetrics`). */
  metrics: MetricName[];
  skippedMetrics: string[];
  preferredScore: string;
  taskPrefix: string;
  exampleInputPrefix: string;
  exampleOutputPrefix: string;
  choicePrefix: string;
  appendChoicesToInput: boolean;
  fewShotExampleSeparator: string;
  stopString?: string;
  /** The effective regex (DEFAULT_OUTPUT_REGEX when the task sets neither it nor stop_string). */
  outputRegex?: string;
  examples: TaskExample[];
  subtasks: Task[];
  source: string;
  warnings: string[];
}

export interface LoadOptions {
  /** Refuse task files larger than this (default 64 MiB). */
  maxFileBytes?: number;
  /** Refuse any input, target or choice longer than this many characters (default 1,000,000). */
  maxStringChars?: number;
}

export class TaskFormatError extends Error {
  constructor(readonly source: string, readonly field: string, detail: string) {
    super(`${source}: ${field}: ${detail}`);
    this.name = 'TaskFormatError';
  }
}

type Json = unknown;
const isObject = (v: Json): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);
const typeName = (v: Json): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/** Python's sorted() on str compares code points; JS's default sort compares UTF-16 units. */
export function codePointCompare(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return x.done && y.done ? 0 : x.done ? -1 : 1;
    const cx = x.value.codePointAt(0)!;
    const cy = y.value.codePointAt(0)!;
    if (cx !== cy) return cx - cy;
  }
}

class Checker {
  constructor(readonly source: string, readonly maxChars: number) {}
  fail(field: string, detail: string): never {
    throw new TaskFormatError(this.source, field, detail);
  }
  str(v: Json, field: string): string {
    if (typeof v !== 'string') this.fail(field, `must be a string, got ${typeName(v)}`);
    if (v.length > this.maxChars) this.fail(field, `is ${v.length} characters long, over the limit of ${this.maxChars}`);
    return v;
  }
  optStr(obj: Record<string, Json>, key: string, dflt: string): string {
    return obj[key] === undefined ? dflt : this.str(obj[key], key);
  }
  strList(v: Json, field: string, allowEmpty = true): string[] {
    if (!Array.isArray(v)) this.fail(field, `must be a list of strings, got ${typeName(v)}`);
    if (!allowEmpty && v.length === 0) this.fail(field, 'must not be empty');
    return v.map((x, i) => this.str(x, `${field}[${i}]`));
  }
}

function parseExample(c: Checker, raw: Json, i: number): TaskExample {
  const at = `examples[${i}]`;
  if (!isObject(raw)) c.fail(at, `must be an object, got ${typeName(raw)}`);
  if (raw.input === undefined) c.fail(`${at}.input`, 'is missing');
  const input = c.str(raw.input, `${at}.input`);
  let targets: string[] | undefined;
  if (raw.target !== undefined) {
    targets = typeof raw.target === 'string' ? [c.str(raw.target, `${at}.target`)] : c.strList(raw.target, `${at}.target`, false);
  }
  let choices: string[] | undefined;
  let choiceScores: number[] | undefined;
  if (raw.target_scores !== undefined) {
    const ts = raw.target_scores;
    if (!isObject(ts)) c.fail(`${at}.target_scores`, `must be an object mapping choices to numbers, got ${typeName(ts)}`);
    choices = Object.keys(ts);
    if (choices.length === 0) c.fail(`${at}.target_scores`, 'must hold at least one choice');
    choiceScores = choices.map((k) => {
      const v = ts[k];
      c.str(k, `${at}.target_scores key`);
      if (typeof v !== 'number' || !Number.isFinite(v)) c.fail(`${at}.target_scores["${k.slice(0, 40)}"]`, `must be a finite number, got ${typeName(v)}`);
      return v;
    });
    if (targets === undefined) {
      // BIG-bench: the target is the first choice with the maximum score.
      const best = Math.max(...choiceScores);
      targets = [choices[choiceScores.indexOf(best)]];
    }
  }
  if (targets === undefined) c.fail(at, 'needs a "target" or a "target_scores" field');
  return { index: i, input, targets, choices, choiceScores };
}

/** Canonical JSON with sorted keys, to drop duplicate examples as BIG-bench does. */
function canonical(v: Json): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (isObject(v)) return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

/** Validate one task object. `parent` supplies defaults for subtasks (metrics, prefixes, ...). */
export function parseTask(raw: Json, source: string, opts: LoadOptions = {}, parent?: Task): Task {
  const c: Checker = new Checker(source, opts.maxStringChars ?? 1_000_000);
  if (!isObject(raw)) c.fail('(top level)', `a task must be a JSON object, got ${typeName(raw)}`);
  const warnings: string[] = [];
  const name = raw.name === undefined ? defaultName(source, parent) : c.str(raw.name, 'name');
  const description = c.optStr(raw, 'description', '');
  const keywords = raw.keywords === undefined ? [] : c.strList(raw.keywords, 'keywords');
  const p = parent;
  const taskPrefix = c.optStr(raw, 'task_prefix', p?.taskPrefix ?? BIGBENCH_DEFAULTS.taskPrefix);
  const exampleInputPrefix = c.optStr(raw, 'example_input_prefix', p?.exampleInputPrefix ?? BIGBENCH_DEFAULTS.exampleInputPrefix);
  const exampleOutputPrefix = c.optStr(raw, 'example_output_prefix', p?.exampleOutputPrefix ?? BIGBENCH_DEFAULTS.exampleOutputPrefix);
  const choicePrefix = c.optStr(raw, 'choice_prefix', p?.choicePrefix ?? BIGBENCH_DEFAULTS.choicePrefix);
  const fewShotExampleSeparator = c.optStr(raw, 'few_shot_example_separator', p?.fewShotExampleSeparator ?? BIGBENCH_DEFAULTS.fewShotExampleSeparator);
  let appendChoicesToInput: boolean = p?.appendChoicesToInput ?? BIGBENCH_DEFAULTS.appendChoicesToInput;
  if (raw.append_choices_to_input !== undefined) {
    if (typeof raw.append_choices_to_input !== 'boolean') c.fail('append_choices_to_input', `must be true or false, got ${typeName(raw.append_choices_to_input)}`);
    appendChoicesToInput = raw.append_choices_to_input;
  }
  let stopString = raw.stop_string === undefined ? p?.stopString : c.str(raw.stop_string, 'stop_string');
  let outputRegex = raw.output_regex === undefined ? undefined : c.str(raw.output_regex, 'output_regex');
  if (raw.stop_string === undefined && raw.output_regex === undefined && p) outputRegex = p.outputRegex;
  if (stopString === '') stopString = undefined;
  if (outputRegex !== undefined) {
    try { compilePythonRegex(outputRegex); } catch (e) { c.fail('output_regex', `is not a valid regular expression: ${(e as Error).message}`); }
  }
  if (outputRegex === undefined && stopString === undefined) outputRegex = DEFAULT_OUTPUT_REGEX;

  // Examples (optional when the task is only a container of subtasks).
  let examples: TaskExample[] = [];
  if (raw.examples !== undefined) {
    if (!Array.isArray(raw.examples)) c.fail('examples', `must be a list, got ${typeName(raw.examples)}`);
    const seen = new Set<string>();
    raw.examples.forEach((ex, i) => {
      const parsed = parseExample(c, ex, i);
      const key = canonical({ input: parsed.input, target: (ex as Record<string, Json>).target ?? null, target_scores: (ex as Record<string, Json>).target_scores ?? null });
      if (seen.has(key)) { warnings.push(`examples[${i}] duplicates an earlier example and was dropped`); return; }
      seen.add(key);
      examples.push(parsed);
    });
  }
  const subtasksRaw = raw.subtasks;
  if (subtasksRaw !== undefined && !Array.isArray(subtasksRaw)) c.fail('subtasks', `must be a list of task objects, got ${typeName(subtasksRaw)}`);
  if (raw.examples === undefined && subtasksRaw === undefined && !opts_allowsFolderSubtasks(opts)) c.fail('examples', 'is missing (a task needs examples or subtasks)');

  // Metrics: BIG-bench tasks list them; a plain file of input/target examples gets exact match.
  let metricNames: string[];
  if (raw.metrics !== undefined) metricNames = c.strList(raw.metrics, 'metrics', false);
  else if (p) metricNames = [...p.metrics];
  else if (examples.length > 0 && examples.every((e) => e.choices)) metricNames = ['multiple_choice_grade'];
  else metricNames = ['exact_str_match'];
  const metrics: MetricName[] = [];
  const skippedMetrics: string[] = [];
  metricNames.forEach((m, i) => {
    if (SUPPORTED.includes(m)) { if (!metrics.includes(m as MetricName)) metrics.push(m as MetricName); }
    else if (KNOWN_UNSUPPORTED.includes(m)) { skippedMetrics.push(m); warnings.push(`metric '${m}' is not computed by kiln and was skipped`); }
    else c.fail(`metrics[${i}]`, `unknown metric '${m}' (known: ${SUPPORTED.join(', ')})`);
  });
  if (metrics.length === 0) c.fail('metrics', `none of ${JSON.stringify(metricNames)} is computed by kiln`);
  const scoreNames = metrics.flatMap((m) => (m === 'rouge' ? ['rouge1', 'rouge2', 'rougeLsum'] : [m]));
  let preferredScore: string;
  if (raw.preferred_score !== undefined) preferredScore = c.str(raw.preferred_score, 'preferred_score');
  else if (p && scoreNames.includes(p.preferredScore)) preferredScore = p.preferredScore;
  else preferredScore = scoreNames[0];
  if (!scoreNames.includes(preferredScore)) c.fail('preferred_score', `'${preferredScore}' is not one of the computed scores (${scoreNames.join(', ')})`);

  const needsChoices = metrics.some((m) => (MULTIPLE_CHOICE_METRICS as readonly string[]).includes(m));
  if (needsChoices) {
    for (const e of examples) {
      if (!e.choices) c.fail(`examples[${e.index}].target_scores`, `is missing but metric '${metrics.find((m) => (MULTIPLE_CHOICE_METRICS as readonly string[]).includes(m))}' needs it`);
    }
  }

  const task: Task = {
    name, description, keywords, metrics, skippedMetrics, preferredScore, taskPrefix, exampleInputPrefix,
    exampleOutputPrefix, choicePrefix, appendChoicesToInput, fewShotExampleSeparator, stopString, outputRegex,
    examples, subtasks: [], source, warnings,
  };
  if (Array.isArray(subtasksRaw)) {
    subtasksRaw.forEach((st, i) => {
      try {
        task.subtasks.push(parseTask(st, `${source} subtasks[${i}]`, opts, task));
      } catch (e) {
        if (e instanceof TaskFormatError) throw e;
        throw new TaskFormatError(source, `subtasks[${i}]`, (e as Error).message);
      }
    });
  }
  return task;
}

/** A task without a name is named after its file (or its folder, for task.json). */
function defaultName(source: string, parent?: Task): string {
  const inline = /subtasks\[(\d+)\]$/.exec(source);
  const own = inline ? `subtask${inline[1]}` : basename(source) === 'task.json' ? basename(dirname(source)) : basename(source, '.json');
  return parent ? `${parent.name}:${own}` : own;
}

// A folder's task.json may hold only metadata: its subtasks come from the subfolders.
const FOLDER = Symbol('folder');
function opts_allowsFolderSubtasks(opts: LoadOptions): boolean {
  return (opts as { [FOLDER]?: boolean })[FOLDER] === true;
}

function readJson(path: string, opts: LoadOptions): Json {
  const max = opts.maxFileBytes ?? 64 * 1024 * 1024;
  const size = statSync(path).size;
  if (size > max) throw new TaskFormatError(path, '(file)', `is ${size} bytes, over the limit of ${max} bytes`);
  const text = readFileSync(path, 'utf8');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TaskFormatError(path, '(file)', `is not valid JSON: ${(e as Error).message}`);
  }
}

/** Load a task file, or a task folder (task.json plus subtask folders each holding a task.json). */
export function loadTask(path: string, opts: LoadOptions = {}, parent?: Task, depth = 0): Task {
  if (depth > 4) throw new TaskFormatError(path, '(folder)', 'subtasks nest deeper than 4 levels');
  const st = statSync(path);
  if (!st.isDirectory()) {
    const task = parseTask(readJson(path, opts), path, opts, parent);
    if (task.examples.length === 0 && task.subtasks.length === 0) throw new TaskFormatError(path, 'examples', 'is empty');
    return task;
  }
  const main = join(path, 'task.json');
  if (!existsSync(main)) throw new TaskFormatError(path, '(folder)', 'has no task.json');
  const task = parseTask(readJson(main, opts), main, { ...opts, [FOLDER]: true } as LoadOptions, parent);
  for (const entry of readdirSync(path, { withFileTypes: true }).sort((a, b) => codePointCompare(a.name, b.name))) {
    if (entry.isDirectory() && existsSync(join(path, entry.name, 'task.json'))) {
      task.subtasks.push(loadTask(join(path, entry.name), opts, task, depth + 1));
    }
  }
  if (task.examples.length === 0 && task.subtasks.length === 0) throw new TaskFormatError(main, 'examples', 'is missing or empty, and the folder has no subtask folders');
  return task;
}

/**
 * `--task` accepts a task file, a task folder (with task.json), or a folder of tasks
 * (its *.json files and its subfolders that hold a task.json), loaded in name order.
 */
export function loadTasks(path: string, opts: LoadOptions = {}): Task[] {
  if (!existsSync(path)) throw new TaskFormatError(path, '(path)', 'does not exist');
  const st = statSync(path);
  if (!st.isDirectory() || existsSync(join(path, 'task.json'))) return [loadTask(path, opts)];
  const tasks: Task[] = [];
  for (const entry of readdirSync(path, { withFileTypes: true }).sort((a, b) => codePointCompare(a.name, b.name))) {
    const p = join(path, entry.name);
    if (entry.isFile() && extname(entry.name) === '.json') tasks.push(loadTask(p, opts));
    else if (entry.isDirectory() && existsSync(join(p, 'task.json'))) tasks.push(loadTask(p, opts));
  }
  if (tasks.length === 0) throw new TaskFormatError(path, '(folder)', 'holds no task files (*.json) and no task folders (with task.json)');
  return tasks;
}

/** The tasks that hold examples, depth first: a task with subtasks is scored through them. */
export function leafTasks(task: Task): Task[] {
  const own = task.examples.length > 0 ? [task] : [];
  return [...own, ...task.subtasks.flatMap(leafTasks)];
}
