// The task suite of `kiln emergence`: few-shot arithmetic and symbol tasks written as BIG-bench JSON
// tasks (the format `kiln bigbench run` reads), and the pre-training text the models learn from: the
// same tasks' examples, formatted exactly as BIG-bench formats a few-shot prompt, on inputs held apart
// from the evaluation examples.
//
// The emergent-abilities paper (Wei et al., arXiv 2206.07682, figure 2) shows few-shot arithmetic
// (3-digit addition and subtraction, 2-digit multiplication) at chance for small models and far above
// it past a scale; the easier tasks here are there to show curves that are not emergent.
import { KilnError } from '../../errors.js';
import { Rng } from '../bigbench/rng.js';
import { formatExample } from '../bigbench/prompts.js';
import { parseTask, type Task } from '../bigbench/task.js';

/** One drawn example: a generative one has a target, a multiple-choice one choices and the right one. */
export interface DrawnExample {
  input: string;
  target: string;
  /** Multiple choice only: the choices (the target among them). */
  choices?: string[];
}

export interface TaskSpec {
  name: string;
  description: string;
  /** Generative tasks are scored by exact match, multiple-choice ones by multiple_choice_grade. */
  kind: 'generative' | 'multiple_choice';
  /** How many distinct inputs exist (an upper bound on examples). */
  size: number;
  draw(rng: Rng): DrawnExample;
}

const between = (rng: Rng, lo: number, hi: number) => lo + rng.int(hi - lo + 1);

const digits = (rng: Rng, n: number) => Array.from({ length: n }, () => String(rng.int(10))).join('');

export const TASKS: readonly TaskSpec[] = [
  {
    name: 'copy_digits', kind: 'generative', size: 100_000,
    description: 'Repeat five digits: "copy 48213" -> "48213".',
    draw: (rng) => { const d = digits(rng, 5); return { input: `copy ${d}`, target: d }; },
  },
  {
    name: 'reverse_digits', kind: 'generative', size: 100_000,
    description: 'Write five digits in reverse order: "reverse 48213" -> "31284".',
    draw: (rng) => { const d = digits(rng, 5); return { input: `reverse ${d}`, target: [...d].reverse().join('') }; },
  },
  {
    name: 'sort_digits', kind: 'generative', size: 100_000,
    description: 'Write five digits in increasing order: "sort 48213" -> "12348".',
    draw: (rng) => { const d = digits(rng, 5); return { input: `sort ${d}`, target: [...d].sort().join('') }; },
  },
  {
    name: 'two_digit_addition', kind: 'generative', size: 90 * 90,
    description: 'Add two 2-digit numbers: "37+45=" -> "82".',
    draw: (rng) => { const a = between(rng, 10, 99), b = between(rng, 10, 99); return { input: `${a}+${b}=`, target: String(a + b) }; },
  },
  {
    name: 'larger_number', kind: 'multiple_choice', size: 900 * 899,
    description: 'Pick the larger of two 3-digit numbers: "372 or 359?" -> "372".',
    draw: (rng) => {
      const a = between(rng, 100, 999);
      let b = between(rng, 100, 998);
      if (b >= a) b++;
      return { input: `${a} or ${b}?`, target: String(Math.max(a, b)), choices: [String(a), String(b)] };
    },
  },
];

export const TASK_NAMES = TASKS.map((t) => t.name);

export function taskSpec(name: string): TaskSpec {
  const t = TASKS.find((s) => s.name === name);
  if (!t) throw new KilnError('INVALID_ARGUMENT', `emergence: unknown task '${name}' (known: ${TASK_NAMES.join(', ')})`);
  return t;
}

/** `n` examples with distinct inputs, none of whose inputs is in `exclude`. */
export function drawExamples(spec: TaskSpec, n: number, rng: Rng, exclude: ReadonlySet<string> = new Set()): DrawnExample[] {
  if (!Number.isInteger(n) || n < 1) throw new KilnError('INVALID_ARGUMENT', `emergence: ${spec.name}: examples must be a positive integer, got ${n}`);
  if (n > spec.size / 4) throw new KilnError('INVALID_ARGUMENT', `emergence: ${spec.name} has ${spec.size} distinct inputs; ${n} held-out examples would leave too few to train on`);
  const seen = new Set<string>();
  const out: DrawnExample[] = [];
  while (out.length < n) {
    const ex = spec.draw(rng);
    if (seen.has(ex.input) || exclude.has(ex.input)) continue;
    seen.add(ex.input);
    out.push(ex);
  }
  return out;
}

/** A BIG-bench JSON task (the schema of bigbench/api/json_task.py) holding `examples`. */
export function bigbenchTaskJson(spec: TaskSpec, examples: readonly DrawnExample[]): Record<string, unknown> {
  const mc = spec.kind === 'multiple_choice';
  return {
    name: spec.name,
    description: spec.description,
    keywords: ['arithmetic', 'mathematics', 'kiln emergence'],
    metrics: mc ? ['multiple_choice_grade', 'log_likelihood'] : ['exact_str_match', 'log_likelihood'],
    preferred_score: mc ? 'multiple_choice_grade' : 'exact_str_match',
    // The input names both numbers: the choices are scored, not listed again in the prompt.
    // Generation stops at the newline that ends an answer; BIG-bench keeps the stop string in the
    // response, so output_regex takes the answer line without it.
    ...(mc ? { append_choices_to_input: false } : { stop_string: '\n', output_regex: '[^\n]*' }),
    examples: examples.map((e) => (e.choices
      ? { input: e.input, target_scores: Object.fromEntries(e.choices.map((c) => [c, c === e.target ? 1 : 0])), target: e.target }
      : { input: e.input, target: e.target })),
  };
}

/** The parsed task, as `kiln bigbench run` would load it from the JSON. */
export function bigbenchTask(spec: TaskSpec, examples: readonly DrawnExample[]): Task {
  return parseTask(bigbenchTaskJson(spec, examples), `emergence:${spec.name}`);
}

/**
 * Pre-training text: rows of `length` characters, each the start of a run of one task's examples
 * formatted as in a BIG-bench few-shot prompt (input prefix, input, choices in a random order,
 * output prefix, target; examples joined by the separator), never on an input in `heldOut`.
 */
export class TaskCorpus {
  private readonly formats: Task[];
  private readonly rng: Rng;

  constructor(readonly specs: readonly TaskSpec[], readonly heldOut: ReadonlyMap<string, ReadonlySet<string>>, seed: number) {
    if (specs.length === 0) throw new KilnError('INVALID_ARGUMENT', 'emergence: the corpus needs at least one task');
    this.rng = new Rng(seed, 'emergence-corpus');
    // Only the prompt format matters here: one placeholder example per task.
    this.formats = specs.map((s) => bigbenchTask(s, [s.draw(new Rng(0, s.name))]));
  }

  /** One formatted example of task `t` with a training input: the prompt part and the answer part (target and separator). */
  private example(t: number): [prompt: string, answer: string] {
    const spec = this.specs[t];
    const held = this.heldOut.get(spec.name);
    let ex = spec.draw(this.rng);
    while (held?.has(ex.input)) ex = spec.draw(this.rng);
    const task = this.formats[t];
    const f = formatExample(task, { index: 0, input: ex.input, targets: [ex.target], choices: ex.choices }, this.rng);
    return [f.text, ex.target + task.fewShotExampleSeparator];
  }

  /**
   * A row of exactly `length` characters from one task chosen uniformly, and which of them belong to
   * an answer (the target and the separator after it).
   */
  row(length: number): { text: string; answer: Uint8Array } {
    const t = this.rng.int(this.specs.length);
    let text = this.formats[t].taskPrefix;
    const answer = new Uint8Array(length);
    while (text.length < length) {
      const [prompt, ans] = this.example(t);
      const start = text.length + prompt.length;
      answer.fill(1, Math.min(start, length), Math.min(start + ans.length, length));
      text += prompt + ans;
    }
    return { text: text.slice(0, length), answer };
  }

  /** Every character the corpus and the prompts can contain. */
  alphabet(): string {
    const rng = new Rng(1, 'alphabet');
    let s = '0123456789';
    this.specs.forEach((spec, t) => {
      const task = this.formats[t];
      s += task.taskPrefix + task.exampleInputPrefix + task.exampleOutputPrefix + task.choicePrefix + task.fewShotExampleSeparator;
      for (let i = 0; i < 50; i++) s += spec.draw(rng).input;
    });
    return s;
  }
}
