// `kiln icl train|eval|plot`: transformers that learn function classes in context (arXiv 2208.01066).
import './omp-env.js';
import { join } from 'node:path';
import { checkFlags, flagInt, flagNumber, flagString, MAX_SEED, parseArgs, UsageError, type Command } from '../../cli/args.js';
import * as kiln from '../../index.js';
import { SHIFTS, type Shift } from './evaluate.js';
import { MODEL_SIZES, type ModelSize } from './model.js';
import { formatTable } from './plot.js';
import { evaluateRun, plotRun, runDefault } from './run.js';
import { TASKS, type TaskName } from './tasks.js';
import { planResume, trainIcl, type IclConfigInput } from './train.js';

const HELP = `usage: kiln icl <train|eval|plot|default> [options]

In-context learning of function classes (Garg et al., arXiv 2208.01066): a GPT-2 trained from scratch
on prompts (x_1, f(x_1), ..., x_n, f(x_n)) of freshly drawn functions learns to predict f(x_k) from
the k examples before it, as well as least squares does on linear functions.

verbs:
  default   the small default run: linear, d = 5, 11 points, tiny model (a few minutes on 2 cores),
            then evaluation and the model-vs-least-squares table (runs/icl-default);
            takes --out DIR and --device cpu|cuda (the model trains and is evaluated there)
  train     train a run folder, then evaluate it unless --no-eval; an existing run folder resumes from its
            checkpoint with its saved settings (other values are refused; --steps, --device may change)
  eval      evaluate a run folder: model and baselines, error per k with bootstrap 90% intervals
  plot      re-render the SVG plots from a run folder's eval*.json

train options:
  --task T          ${TASKS.join(' | ')} (default linear)
  --d N             input dimension (default 5)
  --points N        points per prompt (default 2d + 1)
  --model M         tiny (3 layers, 2 heads, 64) | small (6, 4, 128) | standard (12, 8, 256) (default tiny)
  --steps N         training steps (default 5000)
  --lr X            Adam learning rate (default 1e-4, the paper's; short CPU runs want ~1e-3)
  --warmup N        linear lr warmup steps (default 0)
  --decay D         none (the paper's constant lr) | cosine (to 0 at the last step) (default none)
  --batch N         prompts per step (default 64)
  --curriculum-interval N   steps between curriculum increments (default 2000; 0: none)
  --curriculum-hold N       steps at the starting dims/points before the first increment (default: the interval)
  --sparsity N      nonzero weights of sparse linear functions, at most d (default 3, or d if smaller)
  --noise X         output noise std of noisy linear regression (default 1)
  --seed N          (default 0)
  --device cpu|cuda (default cpu)
  --out DIR         run folder (default runs/icl-<task>-d<d>-<model>-<seed>)
  --no-eval         skip the evaluation after training

eval options:
  --run DIR         the run folder (required)
  --shift S         ${SHIFTS.join(' | ')} | all (default none)
  --prompts N       prompts per curve (default 1000)
  --slow-prompts N  prompts for Lasso, trees, boosting and the Adam-trained net (default 100)
  --no-baselines    the model only

common: --threads N (CPU threads), --json, -h/--help`;

const BOOLS = ['json', 'help', 'no-eval', 'no-baselines'];

function decayFlag(f: Record<string, string | boolean>): 'none' | 'cosine' | undefined {
  const v = flagString(f, 'decay');
  if (v === undefined) return undefined;
  if (v !== 'none' && v !== 'cosine') throw new UsageError(`--decay must be none or cosine, got '${String(v)}'`);
  return v;
}

function intFlag(f: Record<string, string | boolean>, name: string, min = 0, max?: number): number | undefined {
  return flagInt(f, name, undefined, min, max);
}

function checkKnown(verb: string, f: Record<string, string | boolean>, known: string[]): void {
  checkFlags(f, [...known, 'json', 'threads'], `icl ${verb}`);
}

function deviceFlag(f: Record<string, string | boolean>): kiln.Device {
  const device = flagString(f, 'device') ?? 'cpu';
  if (device !== 'cpu' && device !== 'cuda') throw new UsageError(`--device must be cpu or cuda, got '${device}'`);
  if (device === 'cuda' && !kiln.cuda.isAvailable())
    throw new UsageError(`--device cuda: CUDA is not available (${kiln.cuda.isCompiled() ? 'no usable GPU' : 'kiln was built without CUDA'})`);
  return device;
}

function trainConfig(f: Record<string, string | boolean>): IclConfigInput {
  // Absent flags stay undefined: a resumed run takes them from its saved config (trainIcl).
  const task = flagString(f, 'task') as TaskName | undefined;
  if (task !== undefined && !TASKS.includes(task)) throw new UsageError(`--task must be one of ${TASKS.join(', ')}, got '${task}'`);
  const model = flagString(f, 'model') as ModelSize | undefined;
  if (model !== undefined && !Object.hasOwn(MODEL_SIZES, model)) throw new UsageError(`--model must be tiny, small or standard, got '${model}'`);
  const device = f.device === undefined ? undefined : deviceFlag(f);
  const lr = flagNumber(f, 'lr');
  if (lr !== undefined && !(lr > 0)) throw new UsageError(`--lr must be > 0, got ${lr}`);
  const noise = flagNumber(f, 'noise');
  if (noise !== undefined && !(noise >= 0)) throw new UsageError(`--noise must be >= 0, got ${noise}`);
  const c: IclConfigInput = {
    task, model, device, lr,
    d: intFlag(f, 'd', 1), points: intFlag(f, 'points', 2), steps: intFlag(f, 'steps', 1), warmup: intFlag(f, 'warmup'), decay: decayFlag(f),
    batchSize: intFlag(f, 'batch', 1), curriculumInterval: intFlag(f, 'curriculum-interval'), curriculumHold: intFlag(f, 'curriculum-hold'), seed: intFlag(f, 'seed', 0, MAX_SEED),
    taskOptions: { sparsity: intFlag(f, 'sparsity', 1), noiseStd: noise },
  };
  // The cosine schedule decays to 0 at the last step, after the warm-up (defaults: steps 5000, warmup 0).
  if (c.decay === 'cosine' && (c.warmup ?? 0) >= (c.steps ?? 5000))
    throw new UsageError(`--warmup (${c.warmup ?? 0}) must be less than --steps (${c.steps ?? 5000}) with --decay cosine`);
  // errorScale normalises by the sparsity; more nonzeros than dimensions would mis-scale every error.
  if (c.task === 'sparse' && c.taskOptions!.sparsity !== undefined && c.taskOptions!.sparsity > (c.d ?? 5))
    throw new UsageError(`--sparsity (${c.taskOptions!.sparsity}) must be at most --d (${c.d ?? 5})`);
  for (const k of Object.keys(c) as (keyof IclConfigInput)[]) if (c[k] === undefined) delete c[k];
  return c;
}

export const command: Command = {
  name: 'icl',
  summary: 'transformers learn function classes in context (arXiv 2208.01066)',
  async run(argv: string[]): Promise<number> {
    const { positional, flags: f } = parseArgs(argv, BOOLS);
    if (f.help || positional.length === 0) {
      console.log(HELP);
      return f.help ? 0 : 2;
    }
    const [verb, ...extra] = positional;
    if (extra.length) throw new UsageError(`icl ${verb}: unexpected argument '${extra[0]}'`);
    const threads = intFlag(f, 'threads', 1, 1024);
    if (threads) kiln.setNumThreads(threads);
    const log = (s: string) => process.stderr.write(`[icl] ${s}\n`);
    if (verb === 'default') {
      checkKnown(verb, f, ['out', 'device']);
      const r = await runDefault({ dir: flagString(f, 'out'), config: { device: deviceFlag(f) }, log, print: f.json ? () => {} : undefined });
      if (f.json) console.log(JSON.stringify(r.report));
      return 0;
    }
    if (verb === 'train') {
      checkKnown(verb, f, ['task', 'd', 'points', 'model', 'steps', 'lr', 'warmup', 'decay', 'batch', 'curriculum-interval', 'curriculum-hold', 'sparsity', 'noise', 'seed', 'device', 'out', 'no-eval']);
      const c = trainConfig(f);
      const d = c.d ?? 5;
      const out = flagString(f, 'out') ?? join('runs', `icl-${c.task ?? 'linear'}-d${d}-${c.model ?? 'tiny'}-${c.seed ?? 0}`);
      const plan = planResume(c, out);
      if (plan.differing.length) throw new UsageError(`icl train: ${out} holds a run trained with other settings: ${plan.differing.join(', ')} (drop them to resume it, or use another --out)`);
      if (plan.step > plan.cfg.steps) throw new UsageError(`icl train: ${out} is already trained to step ${plan.step}; --steps ${plan.cfg.steps} would train nothing (give more steps to continue)`);
      const r = await trainIcl(c, out, { log });
      log(`trained to step ${r.step} (${r.stepsPerSecond.toFixed(2)} steps/s) in ${out}`);
      if (f['no-eval']) {
        if (f.json) console.log(JSON.stringify({ dir: out, step: r.step, stepsPerSecond: r.stepsPerSecond, evals: r.evals }));
        return 0;
      }
      const [rep] = await evaluateRun(out, { log });
      console.log(f.json ? JSON.stringify(rep) : formatTable(rep));
      return 0;
    }
    if (verb === 'eval') {
      checkKnown(verb, f, ['run', 'shift', 'prompts', 'slow-prompts', 'no-baselines']);
      const dir = flagString(f, 'run');
      if (!dir) throw new UsageError('icl eval: --run DIR is required');
      const s = flagString(f, 'shift') ?? 'none';
      if (s !== 'all' && !SHIFTS.includes(s as Shift)) throw new UsageError(`--shift must be one of ${SHIFTS.join(', ')} or all, got '${s}'`);
      const reps = await evaluateRun(dir, {
        shifts: s === 'all' ? [...SHIFTS] : [s as Shift], prompts: intFlag(f, 'prompts', 1), slowPrompts: intFlag(f, 'slow-prompts', 1),
        baselines: !f['no-baselines'], log,
      });
      console.log(f.json ? JSON.stringify(reps) : reps.map((r) => formatTable(r)).join('\n\n'));
      return 0;
    }
    if (verb === 'plot') {
      checkKnown(verb, f, ['run']);
      const dir = flagString(f, 'run');
      if (!dir) throw new UsageError('icl plot: --run DIR is required');
      const files = await plotRun(dir);
      if (!files.length) throw new UsageError(`icl plot: no eval*.json in ${dir} (run kiln icl eval --run ${dir} first)`);
      console.log(f.json ? JSON.stringify(files) : `wrote ${files.join(', ')}`);
      return 0;
    }
    throw new UsageError(`icl: unknown verb '${verb}' (expected default, train, eval or plot)`);
  },
};
