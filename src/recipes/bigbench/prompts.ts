// Prompts assembled as BIG-bench's json_task does (default_format_fn + make_nshot_dataset):
//   formatted(x) = example_input_prefix + input [+ choice_prefix + choices in a seeded random order]
//                  + example_output_prefix
//   prompt       = task_prefix + [shot_1 + sep + ... + shot_n + sep] + formatted(query)
// where shot_i = formatted(other example) + one of its targets, drawn without replacement.
import { Rng } from './rng.js';
import { codePointCompare, type Task, type TaskExample } from './task.js';

export interface PromptedExample {
  example: TaskExample;
  prompt: string;
  /** Choices in the order they appear in the prompt (a seeded permutation of the sorted choices). */
  shownChoices?: string[];
  /** `examples[i].index` of the examples used as shots, in prompt order. */
  shotIndices: number[];
}

export interface PromptOptions {
  /** Base seed (BIG-bench uses 42); mixed with the task name and the shot count. */
  seed?: number;
  /** Evaluate a random subset of this many query examples (drawn without replacement). */
  maxExamples?: number;
}

export class NotEnoughExamplesError extends Error {
  constructor(task: string, have: number, shots: number) {
    super(`task '${task}' has ${have} distinct examples, too few for ${shots}-shot prompts (needs ${shots + 1})`);
    this.name = 'NotEnoughExamplesError';
  }
}

interface Formatted { text: string; shownChoices?: string[] }

/** One example in BIG-bench's format; draws one permutation from `rng` for multiple-choice inputs. */
export function formatExample(task: Task, ex: TaskExample, rng: Rng): Formatted {
  let body = ex.input;
  let shownChoices: string[] | undefined;
  if (ex.choices && task.appendChoicesToInput) {
    shownChoices = rng.permutation([...ex.choices].sort(codePointCompare));
    body += task.choicePrefix + shownChoices.join(task.choicePrefix);
  }
  return { text: task.exampleInputPrefix + body + task.exampleOutputPrefix, shownChoices };
}

/** Build the `shots`-shot prompt for every (or `maxExamples` sampled) example of a leaf task. */
export function buildPrompts(task: Task, shots: number, opts: PromptOptions = {}): PromptedExample[] {
  if (!Number.isInteger(shots) || shots < 0) throw new RangeError(`shots must be a non-negative integer, got ${shots}`);
  if (opts.maxExamples !== undefined && !(Number.isInteger(opts.maxExamples) && opts.maxExamples >= 1))
    throw new RangeError(`maxExamples must be a positive integer, got ${opts.maxExamples}`);
  const rng = new Rng(opts.seed ?? 42, task.name, String(shots));
  const examples = task.examples;
  // Every example is formatted first, in file order, as BIG-bench does: the choice order of an
  // example is the same whether it appears as the query or as a shot.
  const formatted = examples.map((ex) => formatExample(task, ex, rng));
  if (shots > 0 && examples.length < shots + 1) throw new NotEnoughExamplesError(task.name, examples.length, shots);
  const all = examples.map((_, i) => i);
  const max = opts.maxExamples;
  const queries = max !== undefined && max < examples.length ? rng.sample(all, max) : all;
  return queries.map((q) => {
    const others = all.filter((i) => i !== q);
    const shotIdx = shots > 0 ? rng.sample(others, shots) : [];
    const context = shotIdx.map((i) => formatted[i].text + rng.choice(examples[i].targets));
    const head = shots > 0 ? context.join(task.fewShotExampleSeparator) + task.fewShotExampleSeparator : '';
    return {
      example: examples[q],
      prompt: task.taskPrefix + head + formatted[q].text,
      shownChoices: formatted[q].shownChoices,
      shotIndices: shotIdx.map((i) => examples[i].index),
    };
  });
}
