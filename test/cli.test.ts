// The `kiln` command line: the shared argument parser, the top-level error handling (exit status,
// one line, no stack for bad usage or a refused input), and the demo and bench commands' checks.
import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { flagInt, flagNumber, flagString, parseArgs, UsageError } from '../src/cli/args.js';
import { runKiln } from '../src/cli/kiln.js';

/** Runs `kiln argv...` in-process; returns the status and what went to stderr. */
async function kiln(...argv: string[]): Promise<{ code: number; err: string }> {
  let err = '';
  const log = console.log;
  console.log = () => {};
  try {
    const code = await runKiln(argv, { err: (s) => { err += s + '\n'; } });
    return { code, err };
  } finally {
    console.log = log;
  }
}

test('parseArgs: a boolean flag given a value is refused, not read as true', (t) => {
  t.throws(() => parseArgs(['--json=false']), { instanceOf: UsageError, message: /--json takes no value/ });
  t.throws(() => parseArgs(['--no-eval=0'], ['no-eval']), { instanceOf: UsageError, message: /--no-eval takes no value/ });
  t.deepEqual(parseArgs(['--json', 'x']).flags, { json: true });
});

test('parseArgs: a value flag given twice is refused, in either form', (t) => {
  t.throws(() => parseArgs(['--seed', '1', '--seed', '2']), { instanceOf: UsageError, message: /--seed is given more than once/ });
  t.throws(() => parseArgs(['--seed=1', '--seed', '1']), { instanceOf: UsageError, message: /--seed is given more than once/ });
  t.deepEqual(parseArgs(['--json', '--json', '--steps=3']).flags, { json: true, steps: '3' });
});

test('flag values: an empty value is missing, not 0; integers are checked for range and fractions', (t) => {
  const f = (...argv: string[]) => parseArgs(argv).flags;
  t.throws(() => flagNumber(f('--steps='), 'steps'), { instanceOf: UsageError, message: /--steps needs a value/ });
  t.throws(() => flagNumber(f('--lr', ' '), 'lr'), { instanceOf: UsageError, message: /--lr needs a value/ });
  t.throws(() => flagString(f('--out='), 'out'), { instanceOf: UsageError, message: /--out needs a value/ });
  t.is(flagNumber(f('--lr=-1e-3'), 'lr'), -1e-3);
  t.throws(() => flagInt(f('--steps', '1.5'), 'steps', 1, 1), { message: /--steps must be an integer >= 1, got 1.5/ });
  t.throws(() => flagInt(f('--seed', '4294967296'), 'seed', 0, 0, 2 ** 32 - 1), { message: /--seed must be an integer in \[0, 4294967295\]/ });
  t.is(flagInt(f(), 'steps', 300, 1), 300);
  t.is(flagInt(f('--steps', '7'), 'steps', 300, 1), 7);
});

test('kiln: bad usage exits 2 with one line and a pointer to --help; a bare kiln is bad usage too', async (t) => {
  for (const argv of [['demo', '--steps', '0'], ['demo', '--steps', '-1'], ['demo', '--steps', '2.5'], ['demo', '--seed', '-3'], ['demo', '--stpes', '5'], ['demo', 'extra']]) {
    const r = await kiln(...argv);
    t.is(r.code, 2, argv.join(' '));
    t.regex(r.err, /^kiln: .*\n\(kiln demo --help for usage\)\n$/, argv.join(' '));
  }
  t.is((await kiln()).code, 2);
  t.is((await kiln('--help')).code, 0);
  t.is((await kiln('nope')).code, 2);
});

test('kiln: a refused input file is one line and status 1, without a stack trace', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-cli-'));
  const cfg = { task: 'linear', taskOptions: {}, d: 2, points: 5, nLayer: 1, nHead: 1, nEmbd: 8, seed: 0, device: 'cpu' };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  writeFileSync(join(dir, 'checkpoint.safetensors'), 'not a checkpoint');
  const r = await kiln('icl', 'eval', '--run', dir);
  t.is(r.code, 1);
  t.regex(r.err, /^kiln: .*checkpoint\.safetensors: .*\n$/);
  t.false(r.err.includes('\n    at '), r.err);
});

test('kiln bench: unknown options, bad thread counts, an --only that names no case or that the benchmark ignores are usage errors', async (t) => {
  t.regex((await kiln('bench', 'gemm', '--bogus', '1')).err, /unknown option --bogus/);
  t.regex((await kiln('bench', 'gemm', 'extra')).err, /unexpected argument 'extra'/);
  for (const n of ['0', '-2', '1.5']) {
    const r = await kiln('bench', 'gemm', '--threads', n);
    t.is(r.code, 2);
    t.regex(r.err, /--threads must be an integer in \[1, 1024\]/);
  }
  t.regex((await kiln('bench', 'overhead', '--only', 'add16')).err, /kiln bench overhead: takes no --only/);
  const r = await kiln('bench', 'gemm', '--only', 'no-such-case');
  t.is(r.code, 2);
  t.regex(r.err, /--only no-such-case names no case/);
});

test('kiln: an unwritable --out is one line naming the path, status 1, before the run starts', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-cli-'));
  const file = join(dir, 'f');
  writeFileSync(file, '');
  const cases: [string, string[]][] = [
    ['calibrated-ensembles', ['calibrated-ensembles', 'run', '--steps', '100000', '--out', file]],
    ['decentralized', ['decentralized', 'plan', '--scenario', '1', '--out', file]],
    ['ssl', ['ssl', 'run', '--steps', '100000', '--out', file]],
    ['bigbench', ['bigbench', 'emergence', 'a.json', 'b.json', '--out', file]],
    ['bench', ['bench', 'overhead', '--json', join(file, 'x.json')]],
  ];
  for (const [name, argv] of cases) {
    const t0 = Date.now();
    const r = await kiln(...argv);
    t.is(r.code, 1, argv.join(' '));
    t.regex(r.err, new RegExp(`^kiln ${name}: cannot write ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .+\\n$`), argv.join(' '));
    // The runs themselves take 10 s (decentralized plan) to hours; the refusal about 1 s, more on a busy machine.
    t.true(Date.now() - t0 < 6000, `${argv.join(' ')} failed only after ${Date.now() - t0} ms`);
  }
});

test.serial('flags: number flags take decimal and exponent forms only; kiln help <cmd> is kiln <cmd> --help', async (t) => {
  const f = (...argv: string[]) => parseArgs(argv).flags;
  for (const s of ['0x3', '0b11', '0o7', 'Infinity', '1_000']) t.throws(() => flagNumber(f('--n', s), 'n'), { instanceOf: UsageError, message: /--n must be a number/ }, s);
  for (const [s, v] of [['3', 3], ['-2.5', -2.5], ['1e-3', 1e-3], ['.5', 0.5], ['+4E2', 400]] as const) t.is(flagNumber(f('--n', s), 'n'), v);
  const logs: string[] = [];
  const log = console.log;
  console.log = (s: string) => logs.push(String(s));
  try {
    t.is(await runKiln(['help', 'bench']), 0);
  } finally {
    console.log = log;
  }
  t.false(logs.join('\n').includes('usage: kiln <command>'));
  t.true(logs.join('\n').includes('usage: kiln bench <name>'));
});

test('kiln: misleading messages: --threads past 1024 and a shot count past --examples are usage errors naming the flag', async (t) => {
  const threads = await kiln('icl', 'train', '--threads', '99999');
  t.is(threads.code, 2);
  t.regex(threads.err, /--threads must be an integer in \[1, 1024\], got 99999/);
  const shots = await kiln('emergence', 'run', '--shots', '0,9', '--examples', '2');
  t.is(shots.code, 2);
  t.regex(shots.err, /--shots 9 needs more --examples than 2/);
  const data = await kiln('synthetic-pretraining', 'run', '--data', join(tmpdir(), 'kiln-no-such-dir'), '--out', mkdtempSync(join(tmpdir(), 'kiln-cli-')));
  t.is(data.code, 1);
  t.regex(data.err, /^kiln: synthetic-pretraining: cannot read /);
});
