// Training: Adam on fresh prompts every step (the batch of step s is a pure function of the seed
// and s), the curriculum over active dimensions and points, and a run folder holding config.json,
// metrics.jsonl and checkpoint.safetensors (written by kiln.train.Trainer, so a run resumes exactly).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as kiln from '../../index.js';
import type { Device } from '../../index.js';
import { KilnError } from '../../errors.js';
import { buildModel, MODEL_SIZES, predict, promptLoss, type ModelSize } from './model.js';
import { curriculumAt, defaultCurriculum, samplePrompts, type Curriculum } from './prompts.js';
import { errorScale, mixSeed, TASKS, type TaskName, type TaskOptions } from './tasks.js';
import { checkpointMeta } from '../checkpoint-meta.js';
import { isSeed } from '../seed.js';

export interface IclConfig {
  task: TaskName;
  taskOptions: TaskOptions;
  /** Input dimension d. */
  d: number;
  /** Points per prompt at the end of the curriculum (the model sees 2 × points tokens). */
  points: number;
  model: ModelSize | 'custom';
  nLayer: number;
  nHead: number;
  nEmbd: number;
  batchSize: number;
  lr: number;
  /** Linear lr warmup steps (0: none, as the paper). */
  warmup: number;
  /** Learning-rate decay after warm-up: 'none' (the paper's constant lr) or 'cosine' to 0 at the last step. */
  decay: 'none' | 'cosine';
  steps: number;
  /** null: every prompt has all d dimensions and all points from the start. */
  curriculum: Curriculum | null;
  seed: number;
  evalEvery: number;
  evalPrompts: number;
  checkpointEvery: number;
  device: Device;
}

export type IclConfigInput = Partial<Omit<IclConfig, 'curriculum'>> & {
  curriculum?: Curriculum | null;
  /** Shorthand: the paper's curriculum scaled to (d, points) with this interval (0: none). */
  curriculumInterval?: number;
  /** Steps at the starting dims/points before the first increment (default: the interval). */
  curriculumHold?: number;
};

/** Fills in the defaults: the paper's recipe (Adam, lr 1e-4, batch 64) on linear functions, d = 5, 11 points, tiny model. */
export function resolveConfig(c: IclConfigInput = {}): IclConfig {
  const task = c.task ?? 'linear';
  const d = c.d ?? 5;
  const points = c.points ?? 2 * d + 1;
  const model = c.model ?? 'tiny';
  if (model !== 'custom' && !Object.hasOwn(MODEL_SIZES, model))
    throw new KilnError('INVALID_ARGUMENT', `icl config: model must be one of ${Object.keys(MODEL_SIZES).join(', ')} or custom, got '${model}'`);
  const size = model === 'custom' ? { nLayer: c.nLayer ?? 3, nHead: c.nHead ?? 2, nEmbd: c.nEmbd ?? 64 } : MODEL_SIZES[model];
  const interval = c.curriculumInterval ?? 2000;
  let curriculum = c.curriculum !== undefined ? c.curriculum : interval > 0 ? defaultCurriculum(d, points, interval, c.curriculumHold ?? interval) : null;
  if (curriculum && curriculum.dims.start === curriculum.dims.end && curriculum.points.start === curriculum.points.end) curriculum = null;
  const taskOptions: TaskOptions = { ...c.taskOptions };
  if (task === 'sparse') taskOptions.sparsity ??= Math.min(3, d); // errorScale divides by it: at most d nonzeros
  if (task === 'noisy') taskOptions.noiseStd ??= 1;
  if (task === 'tree') taskOptions.depth ??= 4;
  if (task === 'relu2nn') taskOptions.hidden ??= 100;
  return checkConfig({
    task, taskOptions, d, points, model,
    nLayer: c.nLayer ?? size.nLayer, nHead: c.nHead ?? size.nHead, nEmbd: c.nEmbd ?? size.nEmbd,
    batchSize: c.batchSize ?? 64, lr: c.lr ?? 1e-4, warmup: c.warmup ?? 0, decay: c.decay ?? 'none', steps: c.steps ?? 5000,
    curriculum, seed: c.seed ?? 0, evalEvery: c.evalEvery ?? 500, evalPrompts: c.evalPrompts ?? 256,
    checkpointEvery: c.checkpointEvery ?? 500, device: c.device ?? 'cpu',
  });
}

/**
 * Refuses a config that would train on nonsense: an unknown task (a TypeError deep in sampling), an
 * empty batch or a zero-unit function class (NaN losses), a sparsity of 0 or past d (mis-normalised
 * errors), a negative noise or warm-up, an unknown decay (silently none), or a seed that the 32-bit
 * mixing would alias with a smaller one.
 */
function checkConfig(c: IclConfig): IclConfig {
  const bad = (what: string, v: unknown) => new KilnError('INVALID_ARGUMENT', `icl config: ${what}, got ${typeof v === 'string' ? `'${v}'` : String(v)}`);
  const int = (v: number, min: number) => Number.isInteger(v) && v >= min;
  if (!TASKS.includes(c.task)) throw bad(`task must be one of ${TASKS.join(', ')}`, c.task);
  for (const k of ['d', 'points', 'batchSize', 'evalPrompts'] as const) if (!int(c[k], 1)) throw bad(`${k} must be a positive integer`, c[k]);
  // One batch of prompts (2 points per example, d + 1 numbers each) must fit a typed array.
  for (const k of ['batchSize', 'evalPrompts'] as const)
    if (c[k] * 2 * c.points * (c.d + 1) > 2 ** 31 - 1) throw bad(`${k} x 2 points x (d + 1) must stay below 2^31 numbers (d ${c.d}, points ${c.points})`, c[k]);
  if (!int(c.warmup, 0)) throw bad('warmup must be an integer >= 0', c.warmup);
  if (c.decay !== 'none' && c.decay !== 'cosine') throw bad("decay must be 'none' or 'cosine'", c.decay);
  if (!isSeed(c.seed)) throw bad('seed must be an integer in [0, 2^32)', c.seed);
  const o = c.taskOptions;
  if (o.sparsity !== undefined && !(int(o.sparsity, 1) && o.sparsity <= c.d)) throw bad(`taskOptions.sparsity must be an integer in [1, d = ${c.d}]`, o.sparsity);
  if (o.noiseStd !== undefined && !(o.noiseStd >= 0 && o.noiseStd < Infinity)) throw bad('taskOptions.noiseStd must be a finite number >= 0', o.noiseStd);
  if (o.depth !== undefined && !(int(o.depth, 1) && o.depth <= 20)) throw bad('taskOptions.depth must be an integer in [1, 20]', o.depth);
  if (o.hidden !== undefined && !int(o.hidden, 1)) throw bad('taskOptions.hidden must be a positive integer', o.hidden);
  return c;
}

/** The training batch of a step: fresh functions and inputs at the curriculum's dims and points. */
export function trainBatch(cfg: IclConfig, step: number) {
  const { dims, points } = cfg.curriculum ? curriculumAt(cfg.curriculum, step) : { dims: cfg.d, points: cfg.points };
  return samplePrompts({ task: cfg.task, taskOptions: cfg.taskOptions, B: cfg.batchSize, n: points, d: cfg.d, active: dims, seed: mixSeed(cfg.seed, 1, step) });
}

export function modelFor(cfg: IclConfig): kiln.nn.GPT {
  kiln.manualSeed(cfg.seed);
  return buildModel({ nLayer: cfg.nLayer, nHead: cfg.nHead, nEmbd: cfg.nEmbd, d: cfg.d, points: cfg.points, device: cfg.device });
}

export const runPaths = (dir: string) => ({
  config: join(dir, 'config.json'),
  metrics: join(dir, 'metrics.jsonl'),
  checkpoint: join(dir, 'checkpoint.safetensors'),
  eval: join(dir, 'eval.json'),
  plot: join(dir, 'eval.svg'),
  log: join(dir, 'train.log'),
});

/** A run folder's config.json; a missing, corrupt or foreign one is a KilnError naming the file. */
export function readConfig(dir: string): IclConfig {
  const p = runPaths(dir).config;
  if (!existsSync(p)) throw new KilnError('INVALID_ARGUMENT', `${dir}: no config.json (not an icl run folder?)`);
  let cfg: IclConfig;
  try {
    cfg = JSON.parse(readFileSync(p, 'utf8')) as IclConfig;
  } catch (e) {
    throw new KilnError('INVALID_ARGUMENT', `${p}: cannot read the run config: ${(e as Error).message}`);
  }
  const bad = (what: string) => new KilnError('INVALID_ARGUMENT', `${p}: ${what} (not an icl run config?)`);
  if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg)) throw bad('not a JSON object');
  if (!TASKS.includes(cfg.task)) throw bad(`task ${JSON.stringify(cfg.task)} is not one of ${TASKS.join(', ')}`);
  for (const k of ['d', 'points', 'nLayer', 'nHead', 'nEmbd', 'seed'] as const)
    if (!Number.isInteger(cfg[k]) || cfg[k] < (k === 'seed' ? 0 : 1)) throw bad(`${k} is ${JSON.stringify(cfg[k])}, not an integer >= ${k === 'seed' ? 0 : 1}`);
  if (cfg.device !== 'cpu' && cfg.device !== 'cuda') throw bad(`device ${JSON.stringify(cfg.device)} is not cpu or cuda`);
  return cfg;
}

/** Loads a trained model from a run folder. */
export function loadModel(dir: string): { cfg: IclConfig; model: kiln.nn.GPT; step: number } {
  const cfg = readConfig(dir);
  const model = modelFor(cfg);
  const { meta, tensors } = kiln.nn.loadCheckpoint(runPaths(dir).checkpoint, { model, restoreRng: false });
  for (const t of Object.values(tensors)) t.dispose();  // copied into the model
  model.eval();
  return { cfg, model, step: meta.step };
}

/** Normalised squared error of the model per position (k in-context examples at position k), noGrad. */
export function modelErrors(model: kiln.nn.GPT, batch: ReturnType<typeof samplePrompts>, scale: number, device: Device = 'cpu', chunk = 256): Float64Array {
  const { B, n, d } = batch;
  const err = new Float64Array(B * n);
  kiln.noGrad(() => {
    for (let b0 = 0; b0 < B; b0 += chunk) {
      const nb = Math.min(chunk, B - b0);
      const sub = { B: nb, n, d, xs: batch.xs.subarray(b0 * n * d, (b0 + nb) * n * d), ys: batch.ys.subarray(b0 * n, (b0 + nb) * n), clean: batch.clean.subarray(b0 * n, (b0 + nb) * n) };
      kiln.tidy(() => {
        const p = predict(model, sub, device).toArray() as number[][];
        for (let b = 0; b < nb; b++) for (let i = 0; i < n; i++) err[(b0 + b) * n + i] = (p[b][i] - sub.clean[b * n + i]) ** 2 / scale;
      });
    }
  });
  return err;
}

export interface TrainResult {
  dir: string;
  step: number;
  stepsPerSecond: number;
  losses: number[];
  evals: Record<string, number>[];
}

/** The settings that make up a run's training recipe, with the `kiln icl train` flag of each. */
const RECIPE_FLAGS: [keyof IclConfig, string][] = [
  ['task', '--task'], ['d', '--d'], ['points', '--points'], ['model', '--model'], ['nLayer', 'nLayer'], ['nHead', 'nHead'], ['nEmbd', 'nEmbd'],
  ['batchSize', '--batch'], ['lr', '--lr'], ['warmup', '--warmup'], ['decay', '--decay'], ['curriculum', '--curriculum-interval/--curriculum-hold'],
  ['taskOptions', '--sparsity/--noise'], ['seed', '--seed'],
];

/** The step of a checkpoint, read from its safetensors header only (0 when there is none). */
export function checkpointStep(path: string): number {
  const step = checkpointMeta(path)?.step; // a corrupt checkpoint is reported by the load that follows
  return typeof step === 'number' && Number.isSafeInteger(step) && step >= 0 ? step : 0;
}

export interface ResumePlan {
  /** The config the run continues with: the saved recipe, with steps, device and eval settings as given. */
  cfg: IclConfig;
  /** The checkpoint's step (0: a fresh run). */
  step: number;
  /** Given settings that differ from the saved recipe, e.g. "--batch 64 (the run has 16)". */
  differing: string[];
  /** Recipe settings taken from the saved config because none were given. */
  inherited: string[];
}

/**
 * What training `dir` with `c` would do. A fresh folder: `c` with its defaults. A run folder: its
 * saved recipe (batch, lr, model, curriculum, ...), so a resume trains the same run; the settings
 * `c` gives must match it (else they are listed in `differing`), and only steps, device and the
 * eval/checkpoint intervals may change.
 */
export function planResume(c: IclConfigInput, dir: string): ResumePlan {
  const paths = runPaths(dir);
  if (!existsSync(paths.config)) return { cfg: resolveConfig(c), step: 0, differing: [], inherited: [] };
  const old = readConfig(dir);
  const given = Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined)) as IclConfigInput;
  const newCurriculum = c.curriculum !== undefined || c.curriculumInterval !== undefined || c.curriculumHold !== undefined;
  const cfg = resolveConfig({
    ...old, ...given,
    taskOptions: { ...old.taskOptions, ...Object.fromEntries(Object.entries(c.taskOptions ?? {}).filter(([, v]) => v !== undefined)) },
    curriculum: newCurriculum ? c.curriculum : old.curriculum,
    curriculumInterval: c.curriculumInterval, curriculumHold: c.curriculumHold,
  });
  const isGiven = (k: keyof IclConfig) => k === 'curriculum' ? newCurriculum
    : k === 'taskOptions' ? Object.values(c.taskOptions ?? {}).some((v) => v !== undefined) : given[k as keyof IclConfigInput] !== undefined;
  const show = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));
  const differing: string[] = [], inherited: string[] = [];
  for (const [k, flag] of RECIPE_FLAGS) {
    if (JSON.stringify(cfg[k]) !== JSON.stringify(old[k])) differing.push(`${flag} ${show(cfg[k])} (the run has ${show(old[k])})`);
    else if (!isGiven(k) && flag.startsWith('--') && !flag.includes('/')) inherited.push(`${flag} ${show(old[k])}`);
  }
  return { cfg, step: checkpointStep(paths.checkpoint), differing, inherited };
}

/** Trains (or resumes) the run in `dir`; a resume keeps the saved recipe (see planResume). */
export async function trainIcl(cfgIn: IclConfigInput, dir: string, opts: { progress?: 'auto' | 'bar' | 'lines' | 'none'; log?: (s: string) => void; logEvery?: number } = {}): Promise<TrainResult> {
  const paths = runPaths(dir);
  mkdirSync(dir, { recursive: true });
  const plan = planResume(cfgIn, dir);
  const cfg = plan.cfg;
  if (plan.differing.length)
    throw new KilnError('INVALID_ARGUMENT', `${dir} holds a run with a different recipe: ${plan.differing.join(', ')}; use the run's settings or another --out`);
  if (cfg.steps < plan.step)
    throw new KilnError('INVALID_ARGUMENT', `${dir}: the checkpoint is at step ${plan.step}, past steps ${cfg.steps}; give a larger --steps to train further`);
  if (existsSync(paths.config)) opts.log?.(`resuming ${dir} at step ${plan.step} of ${cfg.steps} with its saved recipe${plan.inherited.length ? ` (${plan.inherited.join(', ')})` : ''}`);
  writeFileSync(paths.config, JSON.stringify(cfg, null, 2) + '\n');
  const model = modelFor(cfg);
  const optimizer = new kiln.optim.Adam(model.parameters(), { lr: cfg.lr });
  const evalBatch = samplePrompts({ task: cfg.task, taskOptions: cfg.taskOptions, B: cfg.evalPrompts, n: cfg.points, d: cfg.d, seed: mixSeed(cfg.seed, 2) });
  const scale = errorScale(cfg.task, cfg.d, cfg.taskOptions);
  const ks = [...new Set([Math.floor(cfg.d / 2), cfg.d, Math.min(2 * cfg.d, cfg.points - 1), cfg.points - 1])].filter((k) => k < cfg.points);
  const t0 = performance.now();
  const trainer = new kiln.train.Trainer({
    model, optimizer, steps: cfg.steps,
    data: (step: number) => trainBatch(cfg, step),
    loss: (batch) => promptLoss(model, batch, cfg.device),
    schedule: cfg.decay === 'cosine' ? kiln.sched.warmupCosine(cfg.warmup, cfg.steps)
      : cfg.warmup > 0 ? kiln.sched.linearWarmup(cfg.warmup, 0.01) : undefined,
    evalEvery: cfg.evalEvery,
    evaluate: () => {
      const e = modelErrors(model, evalBatch, scale, cfg.device);
      const out: Record<string, number> = {};
      for (const k of ks) {
        let s = 0;
        for (let b = 0; b < evalBatch.B; b++) s += e[b * cfg.points + k];
        out[`err_k${k}`] = s / evalBatch.B;
      }
      return out;
    },
    checkpointEvery: cfg.checkpointEvery, checkpointPath: paths.checkpoint, config: cfg,
    metricsPath: paths.metrics, logEvery: opts.logEvery ?? Math.max(1, Math.min(50, Math.floor(cfg.steps / 20))), progress: opts.progress, log: opts.log,
  });
  const r = await trainer.fit();
  const secs = (performance.now() - t0) / 1000;
  return { dir, step: r.step, stepsPerSecond: (r.step - r.startStep) / secs, losses: r.losses, evals: r.evals };
}
