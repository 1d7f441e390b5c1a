// The emergence recipe: the task suite against its definitions, the BIG-bench JSON it writes as the
// harness loads it, the training text against BIG-bench's prompt format and the held-out inputs, the
// acceptance checks on constructed curves, and a tiny sweep end to end (memory flat, curves equal to
// what `kiln bigbench emergence` computes from the written files, the CLI).
import test from 'ava';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as kiln from '../src/index.js';
import { Rng } from '../src/recipes/bigbench/rng.js';
import { buildPrompts } from '../src/recipes/bigbench/prompts.js';
import { postprocessOutput } from '../src/recipes/bigbench/metrics.js';
import { loadTask } from '../src/recipes/bigbench/task.js';
import { readScaledResults, scalingStats, taskCurves, type TaskCurve } from '../src/recipes/bigbench/emergence.js';
import { bigbenchTask, bigbenchTaskJson, drawExamples, TASKS, taskSpec, TaskCorpus } from '../src/recipes/emergence/tasks.js';
import {
  acceptanceChecks, DEFAULT_EXPERIMENT as D, evaluationSets, runExperiment, type LogLikelihoodCurve,
} from '../src/recipes/emergence/experiment.js';
import { formatResult, logLikelihoodSpec } from '../src/recipes/emergence/cli.js';
import { runKilnQuiet } from './helpers/cli.js';

/** Each task's answer computed from its input by an independent rule. */
function solve(task: string, input: string): string {
  const m = /^(\w+) (\d{5})$/.exec(input);
  switch (task) {
    case 'copy_digits': return m![2];
    case 'reverse_digits': return m![2].split('').reverse().join('');
    case 'sort_digits': return m![2].split('').sort().join('');
    case 'two_digit_addition': { const [a, b] = input.slice(0, -1).split('+').map(Number); return String(a + b); }
    case 'larger_number': { const [a, b] = input.slice(0, -1).split(' or ').map(Number); return String(a > b ? a : b); }
  }
  throw new Error(task);
}

test('every task draws examples that match its definition; held-out inputs are distinct and excluded', (t) => {
  for (const spec of TASKS) {
    const rng = new Rng(3, spec.name);
    for (let i = 0; i < 200; i++) {
      const ex = spec.draw(rng);
      t.is(ex.target, solve(spec.name, ex.input), `${spec.name}: ${ex.input}`);
      if (spec.kind === 'multiple_choice') {
        t.is(ex.choices!.length, 2);
        t.true(ex.choices!.includes(ex.target) && ex.choices![0] !== ex.choices![1]);
      }
      if (spec.name === 'two_digit_addition') t.regex(ex.input, /^[1-9]\d\+[1-9]\d=$/);
    }
    const first = drawExamples(spec, 40, new Rng(1, 'a'));
    t.is(new Set(first.map((e) => e.input)).size, 40);
    const exclude = new Set(first.map((e) => e.input));
    const second = drawExamples(spec, 40, new Rng(1, 'a'), exclude);
    t.false(second.some((e) => exclude.has(e.input)));
  }
  t.throws(() => drawExamples(taskSpec('two_digit_addition'), 3000, new Rng(0)), { code: 'INVALID_ARGUMENT', message: /too few to train on/ });
  t.throws(() => taskSpec('nope'), { code: 'INVALID_ARGUMENT', message: /unknown task 'nope'/ });
});

test('the BIG-bench JSON loads back through the harness; answers post-process to the target', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-em-task-'));
  for (const spec of TASKS) {
    const ex = drawExamples(spec, 6, new Rng(2, spec.name));
    const file = join(dir, `${spec.name}.json`);
    writeFileSync(file, JSON.stringify(bigbenchTaskJson(spec, ex)));
    const task = loadTask(file);
    t.is(task.name, spec.name);
    t.deepEqual(task.warnings, []);
    t.deepEqual(task.examples.map((e) => [e.input, e.targets]), ex.map((e) => [e.input, [e.target]]));
    if (spec.kind === 'multiple_choice') {
      t.is(task.preferredScore, 'multiple_choice_grade');
      t.false(task.appendChoicesToInput);
      t.deepEqual(task.examples.map((e) => [...e.choices!].sort()), ex.map((e) => [...e.choices!].sort()));
    } else {
      t.is(task.preferredScore, 'exact_str_match');
      // A greedy answer ends at the newline (the stop string, kept by BIG-bench); the regex drops it.
      t.is(postprocessOutput(`${ex[0].target}\nQ: 1`, task.stopString, task.outputRegex), ex[0].target);
      t.is(postprocessOutput(`\n${ex[0].target}`, task.stopString, task.outputRegex), '', 'an answer that starts with a newline is empty');
    }
    t.true(task.metrics.includes('log_likelihood'));
  }
});

test('training rows are BIG-bench few-shot text on training inputs only, the answers marked', (t) => {
  const specs = TASKS;
  const evalSets = evaluationSets({ tasks: specs.map((s) => s.name), evalExamples: 50, seed: 0 });
  const heldOut = new Map([...evalSets].map(([k, v]) => [k, new Set(v.map((e) => e.input))]));
  const corpus = new TaskCorpus(specs, heldOut, 5);
  t.deepEqual(new TaskCorpus(specs, heldOut, 5).row(96), corpus.row(96), 'a pure function of the seed');
  const tasks = specs.map((s) => bigbenchTask(s, evalSets.get(s.name)!));
  const taskOf = (input: string) => (input.startsWith('copy ') ? 'copy_digits' : input.startsWith('reverse ') ? 'reverse_digits' : input.startsWith('sort ') ? 'sort_digits'
    : input.includes('+') ? 'two_digit_addition' : 'larger_number');
  const seen = new Map(specs.map((s) => [s.name, 0]));
  for (let i = 0; i < 300; i++) {
    const { text, answer } = corpus.row(400);
    t.is(text.length, 400);
    // Walk the row example by example: "\nQ: <input>\nA: <target>\n", the last one cut off.
    const re = /\nQ: ([^\n]*)\nA: ([^\n]*)\n/y;
    let at = 0, n = 0, task = '';
    for (let m = re.exec(text); m; m = re.exec(text)) {
      const [whole, input, target] = m;
      if (n === 0) task = taskOf(input);
      t.is(taskOf(input), task, 'one task per row');
      t.is(solve(task, input), target);
      t.false(heldOut.get(task)!.has(input), `held-out input ${input} in the training text`);
      const mask = Array.from(answer.subarray(at, at + whole.length));
      t.deepEqual(mask, [...Array(whole.length - target.length - 1).fill(0), ...Array(target.length + 1).fill(1)], `answer mask of ${JSON.stringify(whole)}`);
      at += whole.length;
      n++;
    }
    t.true(n >= 8 && at > 400 - 60, `${n} whole examples, up to ${at}`);
    const rest = text.slice(at);
    t.true(rest.length < 60 && rest.slice(0, 4) === '\nQ: '.slice(0, Math.min(4, rest.length)), `the rest ${JSON.stringify(rest)} starts an example`);
    seen.set(task, seen.get(task)! + 1);
  }
  for (const [name, n] of seen) t.true(n > 30, `${name} drawn ${n} times in 300 rows`);
  // The same format as a 2-shot prompt of the harness: a prompt is a prefix of plausible training text.
  const prompt = buildPrompts(tasks[0], 2, { maxExamples: 1 })[0].prompt;
  t.regex(prompt, /^\nQ: copy \d{5}\nA: \d{5}\n\nQ: copy \d{5}\nA: \d{5}\n\nQ: copy \d{5}\nA: $/);
});

const curve = (task: string, scores: number[], emergent: boolean): TaskCurve => ({
  task, shots: 2, scales: scores.map((_, i) => 10 ** (i + 3)), labels: scores.map((_, i) => `m${i}`), scores, stats: scalingStats(scores), emergent, reason: '',
});
const ll = (task: string, values: number[]): LogLikelihoodCurve => ({ task, shots: 2, values, stats: scalingStats(values) });

test('acceptance: an emergent curve, a curve that is not, and the log-likelihood rising below the jump', (t) => {
  const c = D.criteria;
  const curves = [curve('a', [0, 1, 0, 80], true), curve('b', [20, 40, 60, 80], false)];
  t.deepEqual(acceptanceChecks(curves, [ll('a', [-9, -7, -5, -1]), ll('b', [-3, -2, -1, 0])], c).map((x) => x.pass), [true, true, true]);
  const flatBelow = acceptanceChecks(curves, [ll('a', [-5, -5.5, -6, -1]), ll('b', [-3, -2, -1, 0])], c);
  t.deepEqual(flatBelow.map((x) => x.pass), [true, true, false]);
  t.regex(flatBelow[2].rule, /a: -1\.00 nats/);
  // The jump right after the smallest model leaves no point below it to read.
  const early = acceptanceChecks([curve('a', [0, 80, 85, 90], true), curves[1]], [ll('a', [-9, -1, -1, -1])], c);
  t.false(early[2].pass);
  t.regex(early[2].rule, /no model near chance past the smallest/);
  t.deepEqual(acceptanceChecks([curves[1]], [], c).map((x) => x.pass), [false, false, false]);
});

test.serial('a tiny sweep: curves as kiln bigbench emergence computes them, memory flat; the CLI writes its folder', async (t) => {
  const cfg = {
    ...D, sizes: [{ nLayer: 1, nHead: 2, nEmbd: 16 }, { nLayer: 1, nHead: 2, nEmbd: 8 }], tasks: ['copy_digits', 'larger_number'],
    blockSize: 64, train: { ...D.train, steps: 12, batchSize: 4, warmup: 2 }, evalExamples: 6, shots: [0, 1], seeds: 2, seed: 7,
  };
  const before = kiln.memory().tensors;
  const r = await runExperiment(cfg);
  t.is(kiln.memory().tensors, before, 'models and optimizer state are freed');
  t.deepEqual(r.models.map((m) => [m.label, m.seed]), [['L1-d8', 7], ['L1-d8', 8], ['L1-d16', 7], ['L1-d16', 8]], 'ordered by parameters, then seed');
  t.true(r.models[0].params < r.models[2].params);
  t.notDeepEqual(r.models[0].history, r.models[1].history, 'each seed its own text and initialisation');
  for (const m of r.models) {
    t.is(m.params, new kiln.nn.GPT({ ...m.size, blockSize: 64, vocabSize: r.vocabSize }).parameters().reduce((n, p) => n + p.size, 0));
    t.is(m.trainFlops, 6 * m.params * 12 * 4 * 64);
    t.true(m.answerTokens > 0 && m.answerTokens < 12 * 4 * 64);
    t.true(Number.isFinite(m.finalLoss));
  }
  t.is(r.curves.length, 4, 'two tasks x two shot counts');
  const score = (m: (typeof r.models)[number], task: string, shots: number) => m.results.tasks.find((x) => x.name === task)!.perShot.find((p) => p.shots === shots)!;
  const pairs = [r.models.slice(0, 2), r.models.slice(2)];
  t.is(r.seedCurves.length, 2);
  for (const c of r.curves) {
    t.deepEqual(c.stats, scalingStats(c.scores as number[]));
    t.deepEqual(c.scales, [r.models[0].params, r.models[2].params]);
    c.scores.forEach((y, i) => t.true(Math.abs(y! - (score(pairs[i][0], c.task, c.shots).normalized! + score(pairs[i][1], c.task, c.shots).normalized!) / 2) < 1e-9, 'the seed mean'));
    r.seedCurves.forEach((cs, k) => t.deepEqual(cs.find((x) => x.task === c.task && x.shots === c.shots)!.scores, pairs.map((p) => score(p[k], c.task, c.shots).normalized)));
  }
  for (const l of r.logLikelihood) {
    l.values.forEach((v, i) => t.true(Math.abs(v! - (score(pairs[i][0], l.task, l.shots).scores.log_likelihood! + score(pairs[i][1], l.task, l.shots).scores.log_likelihood!) / 2) < 1e-9));
    t.true(l.values.every((v) => v !== null && v < 0));
  }
  t.is(r.acceptance.length, 3);
  const table = formatResult(r);
  t.regex(table, /\| task \| shots \| L1-d8 \| L1-d16 \| I \| linearity \| breakthroughness \|/, 'one log-likelihood column per size');
  t.regex(table, /copy_digits 0-shot +s7: -?\d+\/-?\d+\*? +s8: -?\d+\/-?\d+/);
  t.deepEqual((logLikelihoodSpec(r).data as { values: { scale: number }[] }).values.map((v) => v.scale).slice(0, 2), [r.models[0].params, r.models[2].params]);

  const out = mkdtempSync(join(tmpdir(), 'kiln-em-'));
  const { codes, logs } = await runKilnQuiet(
    ['emergence', 'run', '--sizes', '1:2:8,1:2:16', '--steps', '6', '--batch', '4', '--tasks', 'reverse_digits,larger_number', '--examples', '5', '--shots', '1', '--out', out, '--save-models'],
    ['emergence', 'run', '--sizes', '1:2'],
    ['emergence', 'run', '--tasks', 'copy_digits,bogus'],
    ['emergence', '--help'],
  );
  t.deepEqual(codes, [0, 2, 2, 0]);
  for (const f of ['results.json', 'table.txt', 'emergence.svg', 'loglik.svg', 'tasks/reverse_digits.json', 'tasks/larger_number.json', 'bigbench/L1-d8.json', 'models/L1-d16/model.safetensors'])
    t.true(existsSync(join(out, f)), f);
  const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  t.is(res.kind, 'kiln.emergence.results');
  t.is(res.models[0].results.tasks[0].subtasks[0].perShot[0].examples, undefined, 'per-example outputs only in bigbench/');
  // The run's curves are those `kiln bigbench emergence` computes from the written results files.
  const series = readdirSync(join(out, 'bigbench')).map((f) => readScaledResults(join(out, 'bigbench', f)));
  t.deepEqual(JSON.parse(JSON.stringify(taskCurves(series).map((c) => [c.task, c.scores, c.emergent]))), res.curves.map((c: TaskCurve) => [c.task, c.scores, c.emergent]));
  // A saved model loads as `--model kiln:<folder>` and scores a task file.
  const { codes: c2 } = await runKilnQuiet(['bigbench', 'run', '--task', join(out, 'tasks', 'larger_number.json'), '--model', `kiln:${join(out, 'models', 'L1-d16')}`, '--shots', '0', '--out', join(out, 'again.json')]);
  t.deepEqual(c2, [0]);
  t.true(logs.some((l) => l.includes('usage: kiln emergence run')));
});
