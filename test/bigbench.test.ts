// The BIG-bench harness end to end without a network: task loading with BIG-bench's defaults,
// prompts exactly as BIG-bench assembles them, an oracle scoring 100 and a random model scoring
// about 0, replay, the CLI, and the emergence table and plot.
import test from 'ava';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../src/cli/args.js';
import { runBigBenchCli, command } from '../src/recipes/bigbench/cli.js';
import { parseModelSpec, ModelSpecError, RandomModel, type LanguageModel } from '../src/recipes/bigbench/model.js';
import { taskCurves, readScaledResults } from '../src/recipes/bigbench/emergence.js';
import { KilnError } from '../src/errors.js';
import { buildPrompts, NotEnoughExamplesError } from '../src/recipes/bigbench/prompts.js';
import { runBigBench, type RunResults } from '../src/recipes/bigbench/runner.js';
import { DEFAULT_OUTPUT_REGEX, leafTasks, loadTasks, parseTask, type Task } from '../src/recipes/bigbench/task.js';

const FIX = fileURLToPath(new URL('./fixtures/bigbench/', import.meta.url));
const TASKS = join(FIX, 'tasks');
const tmp = () => mkdtempSync(join(tmpdir(), 'kiln-bigbench-'));
const io = () => {
  const o = { out: '', err: '' };
  return { o, io: { out: (s: string) => { o.out += s; }, err: (s: string) => { o.err += s; } } };
};

/** A model that knows every answer: it looks the prompt up among all prompts the harness will build. */
function oracle(tasks: Task[], shots: number[], seed = 42): LanguageModel {
  const byPrompt = new Map<string, { targets: string[]; choices?: string[]; scores?: number[] }>();
  for (const t of tasks) for (const leaf of leafTasks(t)) for (const s of shots) {
    let ps;
    try { ps = buildPrompts(leaf, s, { seed }); } catch { continue; }
    for (const p of ps) byPrompt.set(p.prompt, { targets: p.example.targets, choices: p.example.choices, scores: p.example.choiceScores });
  }
  const find = (prompt: string) => {
    const e = byPrompt.get(prompt);
    if (!e) throw new Error(`oracle: unknown prompt ${JSON.stringify(prompt.slice(-40))}`);
    return e;
  };
  return {
    name: 'oracle',
    async generate(prompts) { return prompts.map((p) => find(p).targets[0]); },
    async scoreChoices(context, choices) {
      const e = find(context);
      const best = e.scores ? e.choices![e.scores.indexOf(Math.max(...e.scores))] : e.targets[0];
      return choices.map((c) => (c === best || (!e.scores && e.targets.includes(c)) ? 0 : -5));
    },
  };
}

test('a folder of tasks loads in name order: task folder with subtask folders, full tasks, a plain file', (t) => {
  const tasks = loadTasks(TASKS);
  t.deepEqual(tasks.map((x) => x.name), ['arith', 'capitals_mc', 'plain', 'translate_gen']);
  const [arith, mc, plain, gen] = tasks;
  t.is(arith.examples.length, 0);
  t.deepEqual(arith.subtasks.map((s) => s.name), ['arith:add', 'arith:compare']);
  t.deepEqual(leafTasks(arith).map((s) => s.name), ['arith:add', 'arith:compare']);
  const compare = arith.subtasks[1];
  t.false(compare.appendChoicesToInput);
  t.is(compare.exampleInputPrefix, '\nQ: ');
  t.is(compare.exampleOutputPrefix, ' Answer: ');
  t.is(arith.subtasks[0].fewShotExampleSeparator, ' | ');
  // Every field of a full task.
  t.is(mc.description, 'Pick the capital city of a country.');
  t.deepEqual(mc.keywords, ['multiple choice', 'zero-shot', 'geography']);
  t.deepEqual(mc.metrics, ['multiple_choice_grade', 'calibration_multiple_choice_brier_score', 'expected_calibration_error', 'log_likelihood']);
  t.deepEqual(mc.skippedMetrics, ['bleurt']);
  t.true(mc.warnings.some((w) => /bleurt/.test(w)));
  t.is(mc.preferredScore, 'multiple_choice_grade');
  t.is(mc.taskPrefix, 'Answer with the capital city.\n');
  t.is(mc.exampleInputPrefix, '\nQuestion: ');
  t.is(mc.exampleOutputPrefix, '\nAnswer: ');
  t.is(mc.choicePrefix, '\n  option: ');
  t.is(mc.fewShotExampleSeparator, '\n\n');
  t.deepEqual(mc.examples[0].targets, ['Paris']); // derived from target_scores
  t.deepEqual(mc.examples[1].targets, ['Tokyo']); // explicit target
  t.deepEqual(mc.examples[0].choices, ['Paris', 'Lyon', 'Marseille', 'Nice']);
  t.is(mc.outputRegex, DEFAULT_OUTPUT_REGEX);
  // A plain file of input/target pairs: BIG-bench's defaults and exact match.
  t.deepEqual(plain.metrics, ['exact_str_match']);
  t.is(plain.preferredScore, 'exact_str_match');
  t.is(plain.exampleInputPrefix, '\nQ: ');
  t.is(plain.exampleOutputPrefix, '\nA: ');
  t.is(plain.choicePrefix, '\n  choice: ');
  t.is(plain.fewShotExampleSeparator, '\n');
  t.true(plain.appendChoicesToInput);
  t.is(plain.taskPrefix, '');
  t.is(plain.outputRegex, DEFAULT_OUTPUT_REGEX);
  t.is(gen.stopString, '\n');
  t.is(gen.outputRegex, '[^\\n]+');
  t.deepEqual(gen.examples[1].targets, ['hello', 'good morning']);
  t.deepEqual(gen.metrics, ['exact_str_match', 'bleu', 'rouge', 'log_likelihood']);
});

test('defaults: a stop_string alone turns the default regex off; duplicates are dropped; inline subtasks', (t) => {
  const a = parseTask({ stop_string: '.', examples: [{ input: 'a', target: 'b' }, { input: 'a', target: 'b' }, { input: 'c', target: 'd' }] }, 'inline.json');
  t.is(a.outputRegex, undefined);
  t.is(a.examples.length, 2);
  t.deepEqual(a.examples.map((e) => e.index), [0, 2]);
  t.true(a.warnings.some((w) => /examples\[1\] duplicates/.test(w)));
  const b = parseTask({ name: 'p', metrics: ['multiple_choice_grade'], example_input_prefix: 'IN ', subtasks: [
    { examples: [{ input: 'x', target_scores: { y: 1, z: 0 } }] },
    { name: 'named', example_input_prefix: 'OTHER ', examples: [{ input: 'x', target_scores: { y: 1, z: 0 } }] },
  ] }, 'p.json');
  t.deepEqual(b.subtasks.map((s) => [s.name, s.exampleInputPrefix, s.metrics[0]]), [['p:subtask0', 'IN ', 'multiple_choice_grade'], ['named', 'OTHER ', 'multiple_choice_grade']]);
});

test('few-shot prompts match the expected strings exactly', (t) => {
  // Two examples, one shot: the only other example is the shot, so the prompts are fixed.
  const two = parseTask({ examples: [{ input: 'a', target: 'x' }, { input: 'b', target: 'y' }] }, 'two.json');
  t.deepEqual(buildPrompts(two, 1).map((p) => p.prompt), ['\nQ: b\nA: y\n\nQ: a\nA: ', '\nQ: a\nA: x\n\nQ: b\nA: ']);
  t.deepEqual(buildPrompts(two, 0).map((p) => p.prompt), ['\nQ: a\nA: ', '\nQ: b\nA: ']);

  const [arith, mc] = loadTasks(TASKS);
  const [add, compare] = arith.subtasks;
  for (const p of buildPrompts(add, 2)) {
    const shots = p.shotIndices.map((i) => add.examples.find((e) => e.index === i)!);
    t.is(p.prompt, `Q: ${shots[0].input} A: ${shots[0].targets[0]} | Q: ${shots[1].input} A: ${shots[1].targets[0]} | Q: ${p.example.input} A: `);
  }
  // Choices not appended: the prompt is the bare question; the shot's answer is its best choice.
  t.is(buildPrompts(compare, 0)[0].prompt, '\nQ: 3 or 9 Answer: ');
  const one = buildPrompts(compare, 1)[0];
  const shot = compare.examples[one.shotIndices[0]];
  const best = shot.choices![shot.choiceScores!.indexOf(1)];
  t.is(one.prompt, `\nQ: ${shot.input} Answer: ${best}\n\nQ: 3 or 9 Answer: `);

  // Choices appended in a seeded random order of the sorted choices, after the task prefix.
  const zero = buildPrompts(mc, 0);
  for (const p of zero) {
    t.deepEqual([...p.shownChoices!].sort(), [...p.example.choices!].sort());
    t.is(p.prompt, `Answer with the capital city.\n\nQuestion: ${p.example.input}${p.shownChoices!.map((c) => `\n  option: ${c}`).join('')}\nAnswer: `);
  }
  t.true(zero.some((p) => p.shownChoices!.join() !== [...p.example.choices!].sort().join()), 'choices are shuffled');
  t.deepEqual(zero[0].shownChoices, ['Lyon', 'Paris', 'Marseille', 'Nice']); // golden: seed 42
  // A shot shows the same choice order it has as a query, then one of its targets.
  const three = buildPrompts(mc, 3);
  const p = three[0];
  const shotsText = p.shotIndices.map((i) => {
    const q = three.find((z) => z.example.index === i)!; // same build: same choice order as a shot
    return `\nQuestion: ${q.example.input}${q.shownChoices!.map((c) => `\n  option: ${c}`).join('')}\nAnswer: ${q.example.targets[0]}`;
  });
  const query = `\nQuestion: ${p.example.input}${p.shownChoices!.map((c) => `\n  option: ${c}`).join('')}\nAnswer: `;
  t.is(p.prompt, `Answer with the capital city.\n${shotsText.join('\n\n')}\n\n${query}`);
});

test('shots are drawn without replacement from the other examples, reproducibly, and vary', (t) => {
  const [, mc] = loadTasks(TASKS);
  const a = buildPrompts(mc, 3, { seed: 42 });
  t.deepEqual(a.map((p) => p.prompt), buildPrompts(mc, 3, { seed: 42 }).map((p) => p.prompt));
  t.notDeepEqual(a.map((p) => p.prompt), buildPrompts(mc, 3, { seed: 7 }).map((p) => p.prompt));
  for (const p of a) {
    t.is(new Set(p.shotIndices).size, 3);
    t.false(p.shotIndices.includes(p.example.index));
  }
  t.true(new Set(a.map((p) => p.shotIndices.join())).size > 1);
  const sub = buildPrompts(mc, 1, { maxExamples: 3 });
  t.is(sub.length, 3);
  t.is(new Set(sub.map((p) => p.example.index)).size, 3);
  const plain = loadTasks(join(TASKS, 'plain.json'))[0];
  t.throws(() => buildPrompts(plain, 4), { instanceOf: NotEnoughExamplesError, message: /4 distinct examples, too few for 4-shot/ });
});

test('an oracle model scores 100 normalised on every task, subtask and shot count', async (t) => {
  const tasks = loadTasks(TASKS);
  const shots = [0, 1, 2, 3];
  const r = await runBigBench(tasks, oracle(tasks, shots), { shots });
  t.is(r.failedExamples, 0);
  for (const task of r.tasks) for (const p of task.perShot) t.is(p.normalized, 100, `${task.name} ${p.shots}-shot`);
  t.deepEqual(r.aggregate.map((a) => a.normalized), [100, 100, 100, 100]);
  const gen = r.tasks.find((x) => x.name === 'translate_gen')!.perShot[1].scores;
  t.is(gen.exact_str_match, 1);
  t.true(Math.abs(gen.bleu! - 100) < 1e-9);
  t.is(gen.rouge1, 100);
  t.is(gen.rougeLsum, 100);
  t.is(gen.log_likelihood, 0);
  const mc = r.tasks.find((x) => x.name === 'capitals_mc')!.subtasks[0].perShot[0];
  t.true(mc.scores.calibration_multiple_choice_brier_score! < 0.01);
  t.is(mc.examples[0].predictedChoice, 'Paris');
  t.is(mc.examples.length, 8);
});

test('a uniformly random model scores about 0 normalised on multiple choice', async (t) => {
  const examples = Array.from({ length: 1000 }, (_, i) => ({ input: `question ${i}`, target_scores: { [`right ${i}`]: 1, [`wrong a ${i}`]: 0, [`wrong b ${i}`]: 0, [`wrong c ${i}`]: 0 } }));
  const task = parseTask({ name: 'four_way', metrics: ['multiple_choice_grade'], examples }, 'four_way.json');
  const r = await runBigBench([task], new RandomModel(7), { shots: [0, 1] });
  for (const p of r.tasks[0].perShot) {
    t.true(Math.abs(p.normalized!) < 8, `normalised ${p.normalized}`);
  }
  t.is(r.tasks[0].subtasks[0].perShot[0].low, 0.25);
});

test('too few examples for a shot count: that shot is skipped with a reason, the rest runs', async (t) => {
  const plain = loadTasks(join(TASKS, 'plain.json'));
  const r = await runBigBench(plain, oracle(plain, [0, 5]), { shots: [0, 5] });
  const [zero, five] = r.tasks[0].subtasks[0].perShot;
  t.is(zero.normalized, 100);
  t.regex(five.skipped!, /too few for 5-shot/);
  t.is(five.normalized, null);
});

test('CLI run with a replay model writes per-shot scores and per-example outputs; results replay', async (t) => {
  const dir = tmp();
  const tasks = loadTasks(TASKS);
  // Record the oracle's answers as JSON Lines.
  const o = oracle(tasks, [0, 1]);
  const lines: string[] = [];
  for (const task of tasks) for (const leaf of leafTasks(task)) for (const s of [0, 1]) for (const p of buildPrompts(leaf, s)) {
    const cont = [...new Set([...(p.example.choices ?? []), ...p.example.targets])];
    const lps = await o.scoreChoices(p.prompt, cont);
    lines.push(JSON.stringify({ prompt: p.prompt, completion: (await o.generate([p.prompt], { maxTokens: 8 }))[0], logprobs: Object.fromEntries(cont.map((c, i) => [c, lps[i]])) }));
  }
  writeFileSync(join(dir, 'oracle.jsonl'), lines.join('\n') + '\n');
  const out = join(dir, 'results.json');
  const c = io();
  const code = await runBigBenchCli(['run', '--task', TASKS, '--model', `replay:${join(dir, 'oracle.jsonl')}`, '--shots', '0,1', '--out', out, '--scale', '1e6', '--label', 'oracle'], c.io);
  t.is(code, 0, c.o.err);
  const r = JSON.parse(readFileSync(out, 'utf8')) as RunResults;
  t.is(r.kind, 'kiln.bigbench.results');
  t.deepEqual(r.settings.shots, [0, 1]);
  t.deepEqual(r.aggregate.map((a) => a.normalized), [100, 100]);
  t.is(r.model.scale, 1e6);
  const ex = r.tasks.find((x) => x.name === 'translate_gen')!.subtasks[0].perShot[1].examples[0];
  t.true(ex.prompt.startsWith('Translate French to English.\nFrench: ') && ex.prompt.endsWith('\nEnglish: '));
  t.is(typeof ex.generation, 'string');
  t.is(ex.response, ex.targets[0]);
  t.regex(c.o.out, /aggregate\s+100\.0\s+100\.0/);
  t.regex(c.o.err, /capitals_mc 1-shot: 8\/8 examples/);
  // A results file is itself a replay file.
  const c2 = io();
  const code2 = await runBigBenchCli(['run', '--task', TASKS, '--model', `replay:${out}`, '--shots', '0,1', '--out', join(dir, 'again.json'), '--json'], c2.io);
  t.is(code2, 0, c2.o.err);
  t.deepEqual((JSON.parse(c2.o.out) as RunResults).aggregate.map((a) => a.normalized), [100, 100]);
  // A replay without the needed record fails those examples clearly, keeps the rest, exits 1.
  writeFileSync(join(dir, 'partial.jsonl'), lines.slice(0, 3).join('\n'));
  const c3 = io();
  const code3 = await runBigBenchCli(['run', '--task', TASKS, '--model', `replay:${join(dir, 'partial.jsonl')}`, '--shots', '0', '--out', join(dir, 'partial.json'), '--max-failures', '1000'], c3.io);
  t.is(code3, 1);
  const partial = JSON.parse(readFileSync(join(dir, 'partial.json'), 'utf8')) as RunResults;
  const exs = partial.tasks.flatMap((x) => x.subtasks.flatMap((s) => s.perShot.flatMap((p) => p.examples)));
  t.true(exs.some((e) => e.error === undefined));
  t.regex(exs.find((e) => e.error)!.error!, /has no recorded (completion|log-probability)/);
});

test('CLI: a missing kiln checkpoint is a clear error; help; usage errors', async (t) => {
  const k = io();
  t.is(await runBigBenchCli(['run', '--task', TASKS, '--model', 'kiln:no-such-gpt.safetensors'], k.io), 1);
  t.regex(k.o.err, /no-such-gpt\.safetensors: no such file or folder/);
  await t.throwsAsync(runBigBenchCli(['run', '--task', TASKS, '--model', 'gpt4'], io().io), { instanceOf: UsageError, message: /unknown model/ });
  await t.throwsAsync(runBigBenchCli(['run', '--model', 'random:1'], io().io), { instanceOf: UsageError, message: /--task/ });
  await t.throwsAsync(runBigBenchCli(['run', '--task', TASKS, '--model', 'random:1', '--shots', '0,x'], io().io), { instanceOf: UsageError });
  const h = io();
  t.is(await runBigBenchCli(['run', '--help'], h.io), 0);
  t.regex(h.o.out, /kiln bigbench run --task/);
  t.is(command.name, 'bigbench');
});

test('emergence: per-task curves, linearity/breakthroughness table flagging emergent tasks, SVG plot', async (t) => {
  const dir = tmp();
  const curves: Record<string, number[]> = { smooth: [0, 20, 40, 60], sudden: [1, 0, 2, 70], cliff: [0, 0, 0, 50], flat: [0, 1, -1, 0] };
  const scales = [1e7, 1e8, 1e9, 1e10];
  const files = scales.map((scale, m) => {
    const r = {
      kind: 'kiln.bigbench.results', version: 1, model: { label: `m${m}`, scale: m === 3 ? null : scale },
      tasks: Object.entries(curves).map(([name, ys]) => ({ name, perShot: [{ shots: 0, normalized: ys[m] }, { shots: 1, normalized: ys[m] / 2 }] })),
    };
    const f = join(dir, `m${m}.json`);
    writeFileSync(f, JSON.stringify(r));
    return m === 3 ? `${f}@1e10` : f; // the last one gets its scale on the command line
  });
  const out = join(dir, 'em');
  const c = io();
  t.is(await runBigBenchCli(['emergence', files[2], files[0], files[3], files[1], '--out', out], c.io), 0, c.o.err);
  const table = readFileSync(join(out, 'emergence.md'), 'utf8');
  t.regex(table, /\| sudden \| 0 \| 1\.0 \| 0\.0 \| 2\.0 \| 70\.0 \| 70\.0 \| 1\.78 \| 35\.00 \| YES \|/);
  t.regex(table, /\| cliff \| 0 .* \| \+inf \| YES \|/);
  t.regex(table, /\| smooth \| 0 \| 0\.0 \| 20\.0 \| 40\.0 \| 60\.0 \| 60\.0 \| 3\.00 \| 3\.00 \| no \|/);
  t.regex(table, /\| flat \| 0 .* no \|/);
  const json = JSON.parse(readFileSync(join(out, 'emergence.json'), 'utf8'));
  const cliff = json.curves.find((x: { task: string; shots: number }) => x.task === 'cliff' && x.shots === 0);
  t.is(cliff.stats.breakthroughness, 'Infinity');
  t.deepEqual(cliff.scales, scales);
  t.deepEqual(cliff.labels, ['m0', 'm1', 'm2', 'm3']);
  const svg = readFileSync(join(out, 'emergence.svg'), 'utf8');
  t.true(svg.startsWith('<svg'));
  t.true(svg.includes('sudden (emergent)'));
  t.true(existsSync(join(out, 'emergence.vl.json')));
  // A results file without a scale is a refused input: one line on stderr and status 1, not a stack trace.
  const noScale = io();
  t.is(await runBigBenchCli(['emergence', join(dir, 'm0.json'), join(dir, 'm3.json'), '--out', out], noScale.io), 1);
  t.regex(noScale.o.err, /^kiln bigbench: .*m3\.json: no model scale/);
  await t.throwsAsync(runBigBenchCli(['emergence', join(dir, 'm0.json')], io().io), { instanceOf: UsageError });
});

test('CLI: unknown options, zero counts, aliasing seeds and an overflowing timeout are usage errors, checked before any example runs', async (t) => {
  const run = (...args: string[]) => runBigBenchCli(['run', '--task', join(TASKS, 'plain.json'), '--model', 'random:1', '--out', join(tmp(), 'r.json'), ...args], io().io);
  const bad = async (args: string[], message: RegExp) => t.throwsAsync(run(...args), { instanceOf: UsageError, message }, args.join(' '));
  await bad(['--shot', '1'], /bigbench run: unknown option --shot/);
  for (const name of ['max-examples', 'max-tokens', 'concurrency', 'max-failures'])
    await bad([`--${name}`, '0'], new RegExp(`--${name} must be an integer >= 1, got 0`));
  await bad(['--max-examples='], /--max-examples needs a value/);
  await bad(['--seed', '4294967296'], /--seed must be an integer in \[0, 4294967295\]/);
  await bad(['--json=no'], /--json takes no value/);
  await t.throwsAsync(runBigBenchCli(['run', '--task', TASKS, '--model', 'random:-1'], io().io), { instanceOf: UsageError, message: /random:<seed> needs an integer seed in \[0, 4294967295\]/ });
  t.throws(() => parseModelSpec('random:4294967296'), { instanceOf: ModelSpecError });
  await t.throwsAsync(runBigBenchCli(['run', '--task', TASKS, '--model', 'openai:http://127.0.0.1:9', '--model-name', 'm', '--timeout-ms', '3000000000'], io().io),
    { instanceOf: UsageError, message: /--timeout-ms must be an integer in \[1, 2147483647\]/ });
  await t.throwsAsync(runBigBenchCli(['run', '--task', TASKS, '--model', 'kiln:x', '--batch-size', '0'], io().io), { instanceOf: UsageError, message: /--batch-size must be an integer >= 1/ });
});

test('runBigBench and buildPrompts: options that would run nothing or something else are refused', async (t) => {
  const tasks = loadTasks(join(TASKS, 'plain.json'));
  const model = new RandomModel(1);
  const bad = (opts: Parameters<typeof runBigBench>[2], message: RegExp) => t.throwsAsync(runBigBench(tasks, model, opts), { instanceOf: KilnError, message }, JSON.stringify(opts));
  await bad({ concurrency: 0 }, /concurrency must be a positive integer, got 0/);
  await bad({ concurrency: NaN }, /concurrency must be a positive integer, got NaN/);
  await bad({ maxExamples: -1 }, /maxExamples must be a positive integer/);
  await bad({ maxTokens: 0 }, /maxTokens must be a positive integer/);
  await bad({ maxFailures: 0 }, /maxFailures must be a positive integer/);
  await bad({ shots: [] }, /shots must be a non-empty list/);
  await bad({ shots: [1.5] }, /shots must be a non-empty list of non-negative integers, got \[1.5\]/);
  await bad({ seed: -1 }, /seed must be an integer in \[0, 2\^32\)/);
  t.throws(() => buildPrompts(tasks[0], 0, { maxExamples: -1 }), { instanceOf: RangeError, message: /maxExamples must be a positive integer, got -1/ });
  t.is(buildPrompts(tasks[0], 0, { maxExamples: 2 }).length, 2);
});

test('emergence: unknown options and negative criteria are usage errors; unreadable files are one-line refusals; files of one scale are averaged', async (t) => {
  const dir = tmp();
  const f = (name: string, scale: number, normalized = scale) => {
    const p = join(dir, `${name}.json`);
    writeFileSync(p, JSON.stringify({ kind: 'kiln.bigbench.results', version: 1, model: { label: name, scale }, tasks: [{ name: 't', perShot: [{ shots: 0, normalized }] }] }));
    return p;
  };
  const a = f('a', 1), b = f('b', 2), c = f('c', 2, 4);
  await t.throwsAsync(runBigBenchCli(['emergence', a, b, '--bogus'], io().io), { instanceOf: UsageError, message: /bigbench emergence: unknown option --bogus/ });
  for (const name of ['min-gain', 'near-chance', 'breakthrough-ratio'])
    await t.throwsAsync(runBigBenchCli(['emergence', a, b, `--${name}`, '-1'], io().io), { instanceOf: UsageError, message: new RegExp(`--${name} must be >= 0`) });
  writeFileSync(join(dir, 'garbage.json'), 'garbage');
  const g = io();
  t.is(await runBigBenchCli(['emergence', join(dir, 'garbage.json@1'), b, '--out', join(dir, 'em')], g.io), 1);
  t.regex(g.o.err, /^kiln bigbench: .*garbage\.json: cannot read results/);
  t.throws(() => readScaledResults(join(dir, 'missing.json@3')), { instanceOf: KilnError, message: /missing\.json: cannot read results/ });
  // Two models at one scale make the curve's order, and so its statistics, depend on the argument order.
  t.throws(() => taskCurves([readScaledResults(b), readScaledResults(c), readScaledResults(a)]), { instanceOf: KilnError, message: /have the same scale 2/ });
  // The CLI averages files of one scale (the seeds of a size, as `kiln emergence --seeds N` writes them).
  const e = io();
  t.is(await runBigBenchCli(['emergence', a, b, c, '--out', join(dir, 'em'), '--json'], e.io), 0, e.o.err);
  const curve = JSON.parse(e.o.out).curves[0];
  t.deepEqual(curve.scales, [1, 2]);
  t.deepEqual(curve.scores, [1, 3], 'the seed mean of 2 and 4');
  t.deepEqual(curve.labels, ['a', 'b (mean of 2)']);
});
