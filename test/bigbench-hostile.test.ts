// Hostile task files (huge inputs, missing fields, wrong types, broken JSON): a clear error that
// names the file, the field and the example index; never a crash.
import test from 'ava';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runBigBenchCli } from '../src/recipes/bigbench/cli.js';
import { ReplayError, ReplayModel } from '../src/recipes/bigbench/replay.js';
import { TaskFormatError, loadTasks } from '../src/recipes/bigbench/task.js';

const HOSTILE = fileURLToPath(new URL('./fixtures/bigbench/hostile/', import.meta.url));
const tmp = () => mkdtempSync(join(tmpdir(), 'kiln-bigbench-hostile-'));

const cases: [string, RegExp][] = [
  ['not_object.json', /\(top level\): a task must be a JSON object, got array/],
  ['examples_not_list.json', /examples: must be a list, got object/],
  ['missing_input.json', /examples\[1\]\.input: is missing/],
  ['input_number.json', /examples\[2\]\.input: must be a string, got number/],
  ['target_wrong_type.json', /examples\[0\]\.target: must be a list of strings, got object/],
  ['target_list_number.json', /examples\[0\]\.target\[1\]: must be a string, got number/],
  ['missing_target.json', /examples\[1\]: needs a "target" or a "target_scores" field/],
  ['scores_not_number.json', /examples\[0\]\.target_scores\["y"\]: must be a finite number, got string/],
  ['mc_without_scores.json', /examples\[1\]\.target_scores: is missing but metric 'multiple_choice_grade' needs it/],
  ['unknown_metric.json', /metrics\[1\]: unknown metric 'accuracy_of_vibes'/],
  ['bad_regex.json', /output_regex: is not a valid regular expression/],
  ['prefix_wrong_type.json', /example_input_prefix: must be a string, got number/],
  ['append_wrong_type.json', /append_choices_to_input: must be true or false, got string/],
  ['preferred_not_computed.json', /preferred_score: 'bleu' is not one of the computed scores \(exact_str_match\)/],
  ['example_null.json', /examples\[1\]: must be an object, got null/],
  ['truncated.json', /\(file\): is not valid JSON/],
];

for (const [file, message] of cases) {
  test(`hostile task ${file}: a clear error naming the field`, (t) => {
    const e = t.throws(() => loadTasks(join(HOSTILE, file)), { instanceOf: TaskFormatError });
    t.regex(e!.message, message);
    t.true(e!.message.startsWith(join(HOSTILE, file)), e!.message);
  });
}

test('huge inputs and huge files are refused with the field and the limit', (t) => {
  const dir = tmp();
  const big = join(dir, 'huge_input.json');
  writeFileSync(big, JSON.stringify({ examples: [{ input: 'ok', target: 'x' }, { input: 'a'.repeat(2_000_000), target: 'b' }] }));
  t.throws(() => loadTasks(big), { instanceOf: TaskFormatError, message: /examples\[1\]\.input: is 2000000 characters long, over the limit of 1000000/ });
  t.throws(() => loadTasks(big, { maxFileBytes: 1000 }), { message: /\(file\): is \d+ bytes, over the limit of 1000 bytes/ });
  const bigChoice = join(dir, 'huge_choice.json');
  writeFileSync(bigChoice, JSON.stringify({ examples: [{ input: 'q', target_scores: { ['c'.repeat(1_100_000)]: 1, d: 0 } }] }));
  t.throws(() => loadTasks(bigChoice), { message: /examples\[0\]\.target_scores key: is 1100000 characters long/ });
  // Many examples are fine.
  const many = join(dir, 'many.json');
  writeFileSync(many, JSON.stringify({ examples: Array.from({ length: 50_000 }, (_, i) => ({ input: `q${i}`, target: `a${i}` })) }));
  t.is(loadTasks(many)[0].examples.length, 50_000);
});

test('deeply nested JSON in a task file does not blow the stack', (t) => {
  const dir = tmp();
  const deep = join(dir, 'deep.json');
  const nest = '['.repeat(100_000) + ']'.repeat(100_000);
  writeFileSync(deep, `{"examples": [{"input": "a", "target": "b", "comment": ${nest}}, {"input": "c", "target": ${nest}}]}`);
  const e = t.throws(() => loadTasks(deep));
  t.true(e instanceof TaskFormatError, String(e));
  t.regex(e!.message, /(examples\[1\]\.target|not valid JSON)/);
});

test('folders: missing task.json, empty folders, broken subtasks name the file', (t) => {
  const dir = tmp();
  mkdirSync(join(dir, 'empty'));
  t.throws(() => loadTasks(join(dir, 'empty')), { message: /holds no task files/ });
  t.throws(() => loadTasks(join(dir, 'nope')), { message: /does not exist/ });
  const parent = join(dir, 'parent');
  mkdirSync(join(parent, 'good'), { recursive: true });
  mkdirSync(join(parent, 'bad'), { recursive: true });
  writeFileSync(join(parent, 'task.json'), JSON.stringify({ name: 'parent', metrics: ['exact_str_match'] }));
  writeFileSync(join(parent, 'good', 'task.json'), JSON.stringify({ examples: [{ input: 'a', target: 'b' }] }));
  writeFileSync(join(parent, 'bad', 'task.json'), JSON.stringify({ examples: [{ input: 'a', target: 'b' }, { input: ['x'], target: 'y' }] }));
  t.throws(() => loadTasks(parent), { message: new RegExp(`${join(parent, 'bad', 'task.json').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: examples\\[1\\]\\.input: must be a string, got array`) });
  const onlyMeta = join(dir, 'meta');
  mkdirSync(onlyMeta);
  writeFileSync(join(onlyMeta, 'task.json'), JSON.stringify({ name: 'meta' }));
  t.throws(() => loadTasks(onlyMeta), { message: /examples: is missing or empty, and the folder has no subtask folders/ });
  const inline = join(dir, 'inline.json');
  writeFileSync(inline, JSON.stringify({ name: 'x', subtasks: [{ examples: [{ input: 'a', target: 'b' }] }, { examples: [{ input: 5, target: 'b' }] }] }));
  t.throws(() => loadTasks(inline), { message: /subtasks\[1\]: examples\[0\]\.input: must be a string, got number/ });
});

test('the CLI reports a hostile task file and exits 1 without a stack trace', async (t) => {
  const err: string[] = [];
  const code = await runBigBenchCli(['run', '--task', join(HOSTILE, 'input_number.json'), '--model', 'random:0'], { out: () => {}, err: (s) => err.push(s) });
  t.is(code, 1);
  t.regex(err.join(''), /^kiln bigbench: .*input_number\.json: examples\[2\]\.input: must be a string, got number\n$/);
});

test('hostile replay files are refused clearly', (t) => {
  const dir = tmp();
  const f = join(dir, 'bad.jsonl');
  writeFileSync(f, '{"prompt": "a", "completion": "b"}\nnot json\n');
  t.throws(() => new ReplayModel(f), { instanceOf: ReplayError, message: /bad\.jsonl:2: not JSON/ });
  writeFileSync(f, '{"prompt": 3}\n');
  t.throws(() => new ReplayModel(f), { message: /record 0 needs a string "prompt"/ });
  writeFileSync(f, '{"prompt": "a", "logprobs": {"x": "high"}}\n');
  t.throws(() => new ReplayModel(f), { message: /logprobs\["x"\] must be a number/ });
  t.throws(() => new ReplayModel(join(dir, 'missing.jsonl')), { message: /cannot read replay file/ });
});
