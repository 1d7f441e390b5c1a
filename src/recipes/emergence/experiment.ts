// The whole `emergence` run (Wei et al., arXiv 2206.07682, at small scale): a family of character-level
// kiln GPTs of increasing size is trained on the same text (the task suite's examples in BIG-bench's
// few-shot format, the loss on the answers), each model is evaluated few-shot on held-out BIG-bench
// JSON tasks by the `bigbench` harness, and the per-task curves of the preferred metric against scale
// get BIG-bench's linearity and breakthroughness. The target log-likelihood of each task, a continuous
// measure, is given the same statistics: the paper's point that a metric at chance can hide a model
// that is already improving.
import * as kiln from '../../index.js';
import { KilnError } from '../../errors.js';
import { isSeed } from '../seed.js';
import { fitAdamW, type TermsRecord, type TrainConfig } from '../fit.js';
import { kilnLanguageModel } from '../bigbench/kiln-model.js';
import { Rng } from '../bigbench/rng.js';
import { runBigBench, type RunResults } from '../bigbench/runner.js';
import {
  DEFAULT_CRITERIA, meanOverSeeds, scalingStats, taskCurves, type EmergenceCriteria, type ScalingStats, type TaskCurve,
} from '../bigbench/emergence.js';
import { bigbenchTask, bigbenchTaskJson, drawExamples, TASK_NAMES, taskSpec, TaskCorpus, type DrawnExample } from './tasks.js';

export interface ModelSize {
  nLayer: number;
  nHead: number;
  nEmbd: number;
}

export interface ExperimentConfig {
  /** The model family (trained in this order; curves order the models by parameter count). */
  sizes: ModelSize[];
  tasks: string[];
  /** Context length of every model, in characters. */
  blockSize: number;
  /** One training recipe for every size: the same batches, steps and schedule. */
  train: TrainConfig;
  /** Held-out examples per task. */
  evalExamples: number;
  shots: number[];
  /** Sweeps, one per seed (seed, seed + 1, ...); the curves are on the seed-mean scores. */
  seeds: number;
  seed: number;
  criteria: EmergenceCriteria;
}

export const DEFAULT_SIZES: ModelSize[] = [
  { nLayer: 1, nHead: 2, nEmbd: 16 },
  { nLayer: 2, nHead: 2, nEmbd: 32 },
  { nLayer: 2, nHead: 4, nEmbd: 64 },
  { nLayer: 3, nHead: 4, nEmbd: 96 },
  { nLayer: 4, nHead: 4, nEmbd: 128 },
];

export const DEFAULT_EXPERIMENT: ExperimentConfig = {
  sizes: DEFAULT_SIZES,
  tasks: TASK_NAMES,
  blockSize: 96,
  train: { steps: 1000, batchSize: 32, lr: 2e-3, weightDecay: 0.1, warmup: 50 },
  evalExamples: 100,
  shots: [2],
  seeds: 1,
  seed: 0,
  criteria: DEFAULT_CRITERIA,
};

export const sizeLabel = (s: ModelSize) => `L${s.nLayer}-d${s.nEmbd}`;

export interface ModelRun {
  label: string;
  seed: number;
  size: ModelSize;
  params: number;
  /** Characters the loss was taken on, and the usual 6·N·D estimate of training FLOPs over all positions. */
  answerTokens: number;
  trainFlops: number;
  finalLoss: number;
  history: TermsRecord[];
  trainSeconds: number;
  evalSeconds: number;
  /** The harness's results for this model (what `kiln bigbench run` writes), scale = parameters. */
  results: RunResults;
}

export interface LogLikelihoodCurve {
  task: string;
  shots: number;
  /** Mean log-probability of the target per example (nats), one per model, smallest first. */
  values: (number | null)[];
  stats: ScalingStats | null;
}

export interface ExperimentResult {
  kind: 'kiln.emergence.results';
  version: 1;
  config: ExperimentConfig;
  vocabSize: number;
  models: ModelRun[];
  /** The preferred metric (exact match, multiple-choice grade), normalised: 0 = chance, 100 = perfect; the seed mean. */
  curves: TaskCurve[];
  /** With several seeds: each seed's own curves (empty for one seed). */
  seedCurves: TaskCurve[][];
  logLikelihood: LogLikelihoodCurve[];
  acceptance: { name: string; pass: boolean; rule: string }[];
  seconds: number;
}

function checkConfig(c: ExperimentConfig): void {
  const bad = (m: string) => new KilnError('INVALID_ARGUMENT', `emergence: ${m}`);
  if (!Array.isArray(c.sizes) || c.sizes.length < 2) throw bad(`a scaling sweep needs at least 2 model sizes, got ${c.sizes?.length}`);
  for (const s of c.sizes) {
    for (const k of ['nLayer', 'nHead', 'nEmbd'] as const)
      if (!(Number.isInteger(s[k]) && s[k] >= 1 && s[k] <= 4096)) throw bad(`model size ${k} must be an integer in [1, 4096], got ${s[k]}`);
    if (s.nEmbd % s.nHead !== 0) throw bad(`model size ${sizeLabel(s)}: nEmbd ${s.nEmbd} is not a multiple of nHead ${s.nHead}`);
  }
  const labels = c.sizes.map(sizeLabel);
  if (new Set(labels).size !== labels.length) throw bad(`model sizes repeat: ${labels.join(', ')}`);
  if (!Array.isArray(c.tasks) || c.tasks.length === 0) throw bad('no tasks');
  c.tasks.forEach(taskSpec);
  if (!(Number.isInteger(c.blockSize) && c.blockSize >= 16 && c.blockSize <= 4096)) throw bad(`blockSize must be an integer in [16, 4096], got ${c.blockSize}`);
  const t = c.train;
  if (!(Number.isInteger(t.steps) && t.steps >= 1)) throw bad(`train.steps must be a positive integer, got ${t.steps}`);
  if (!(Number.isInteger(t.batchSize) && t.batchSize >= 1)) throw bad(`train.batchSize must be a positive integer, got ${t.batchSize}`);
  if (!(t.lr > 0 && Number.isFinite(t.lr))) throw bad(`train.lr must be positive, got ${t.lr}`);
  if (!(Number.isInteger(c.evalExamples) && c.evalExamples >= 1)) throw bad(`evalExamples must be a positive integer, got ${c.evalExamples}`);
  if (!Array.isArray(c.shots) || c.shots.length === 0 || c.shots.some((n) => !(Number.isInteger(n) && n >= 0 && n < c.evalExamples)))
    throw bad(`shots must be integers in [0, evalExamples), got ${JSON.stringify(c.shots)}`);
  if (!(Number.isInteger(c.seeds) && c.seeds >= 1 && c.seeds <= 100)) throw bad(`seeds must be an integer in [1, 100], got ${c.seeds}`);
  if (!isSeed(c.seed) || !isSeed(c.seed + c.seeds - 1)) throw bad(`seed must be an integer in [0, 2^32 - seeds], got ${c.seed}`);
}

/** The held-out examples of every task (a function of the seed only). */
export function evaluationSets(c: Pick<ExperimentConfig, 'tasks' | 'evalExamples' | 'seed'>): Map<string, DrawnExample[]> {
  return new Map(c.tasks.map((name) => [name, drawExamples(taskSpec(name), c.evalExamples, new Rng(c.seed, 'emergence-eval', name))]));
}

/** The BIG-bench JSON of every task over its held-out examples (what the run folder's tasks/ holds). */
export function taskFiles(c: Pick<ExperimentConfig, 'tasks' | 'evalExamples' | 'seed'>): Map<string, Record<string, unknown>> {
  return new Map([...evaluationSets(c)].map(([name, ex]) => [name, bigbenchTaskJson(taskSpec(name), ex)]));
}

/** Inputs, targets (-100 off the answers) and how many targets are answer characters. */
interface Batch { x: kiln.Tensor; y: kiln.Tensor; answers: number }

/** The batch of `step`: a pure function of (seed, step), the same for every model size. */
function batchAt(corpus: (step: number) => TaskCorpus, tok: kiln.train.Tokenizer, step: number, B: number, T: number): Batch {
  const c = corpus(step);
  const x = new Int32Array(B * T), y = new Int32Array(B * T);
  let answers = 0;
  for (let b = 0; b < B; b++) {
    const { text, answer } = c.row(T + 1);
    const ids = tok.encode(text);
    x.set(ids.subarray(0, T), b * T);
    for (let i = 0; i < T; i++) {
      y[b * T + i] = answer[i + 1] ? ids[i + 1] : -100;
      answers += answer[i + 1];
    }
  }
  return { x: kiln.tensor(x, { dtype: 'int32', shape: [B, T] }), y: kiln.tensor(y, { dtype: 'int32', shape: [B * T] }), answers };
}

/** Which of the preferred-metric curves and log-likelihood curves the checks read, and the checks. */
export function acceptanceChecks(curves: readonly TaskCurve[], ll: readonly LogLikelihoodCurve[], c: EmergenceCriteria): ExperimentResult['acceptance'] {
  const emergent = curves.filter((k) => k.emergent);
  const other = curves.filter((k) => !k.emergent && k.stats !== null);
  const checks: ExperimentResult['acceptance'] = [];
  checks.push({
    name: 'some task is emergent: near chance for the small models, then a sharp rise',
    pass: emergent.length > 0,
    rule: `${emergent.length} of ${curves.length} curves: near chance (within ${c.nearChance}) at the smallest model, gain >= ${c.minGain}, breakthroughness >= ${c.breakthroughOverLinearity} x linearity` +
      (emergent.length ? ` (${emergent.map((k) => k.task).join(', ')})` : ''),
  });
  checks.push({
    name: 'the statistics tell emergent curves from the others',
    pass: emergent.length > 0 && other.length > 0,
    rule: `${other.length} curve(s) not emergent${other.length ? ` (${other.map((k) => `${k.task}: ${k.reason}`).join('; ')})` : ''}`,
  });
  // For each emergent curve: the models whose score is still near chance, past the smallest one.
  const before = emergent.map((k) => {
    const scores = k.scores as number[];
    let last = 0;
    while (last + 1 < scores.length && Math.abs(scores[last + 1]) <= c.nearChance) last++;
    const l = ll.find((x) => x.task === k.task && x.shots === k.shots);
    const v = l?.values ?? [];
    return { task: k.task, last, gain: last > 0 && v[0] !== null && v[last] !== null ? (v[last] as number) - (v[0] as number) : null };
  });
  const rising = before.filter((b) => b.gain !== null && b.gain > 0);
  checks.push({
    name: 'below the jump the target log-likelihood already improves',
    pass: before.length > 0 && rising.length === before.length,
    rule: before.length === 0 ? 'no emergent curve' : before.map((b) => (b.gain === null
      ? `${b.task}: no model near chance past the smallest`
      : `${b.task}: ${b.gain >= 0 ? '+' : ''}${b.gain.toFixed(2)} nats from the smallest model to the last near chance`)).join('; '),
  });
  return checks;
}

/** Log-likelihood curves from the per-model results (models ordered by scale). */
export function logLikelihoodCurves(runs: readonly { results: RunResults }[]): LogLikelihoodCurve[] {
  const out: LogLikelihoodCurve[] = [];
  const first = runs[0].results;
  for (const t of first.tasks) for (const p of t.perShot) {
    const values = runs.map((r) => {
      const v = r.results.tasks.find((x) => x.name === t.name)?.perShot.find((x) => x.shots === p.shots)?.scores.log_likelihood;
      return typeof v === 'number' && Number.isFinite(v) ? v : null;
    });
    const complete = values.every((v): v is number => v !== null);
    out.push({ task: t.name, shots: p.shots, values, stats: complete ? scalingStats(values as number[]) : null });
  }
  return out;
}

/** Called with each trained model before it is freed (to save it). */
export type OnModel = (label: string, model: InstanceType<typeof kiln.nn.GPT>, tokenizer: kiln.train.Tokenizer) => void;

export async function runExperiment(config: ExperimentConfig, log: (line: string) => void = () => {}, onModel?: OnModel): Promise<ExperimentResult> {
  checkConfig(config);
  const t0 = performance.now();
  const specs = config.tasks.map(taskSpec);
  // The held-out examples and the prompts' shots are fixed by config.seed; seed k of the run draws
  // its own training text and initialisation.
  const evalSets = evaluationSets(config);
  const heldOut = new Map([...evalSets].map(([k, v]) => [k, new Set(v.map((e) => e.input))]));
  const tasks = specs.map((spec) => bigbenchTask(spec, evalSets.get(spec.name)!));
  const corpusOf = (seed: number) => (step: number) => new TaskCorpus(specs, heldOut, (Math.imul(seed, 0x9e3779b1) + step) >>> 0);
  const tok = kiln.train.CharTokenizer.fromText(corpusOf(config.seed)(0).alphabet());
  const { blockSize: T, train } = config;
  const models: ModelRun[] = [];
  for (let k = 0; k < config.seeds; k++) for (const size of config.sizes) {
    const seed = config.seed + k;
    const corpus = corpusOf(seed);
    const label = sizeLabel(size);
    const tag = config.seeds > 1 ? `${label} seed ${seed}` : label;
    kiln.manualSeed(seed);
    const model = new kiln.nn.GPT({ ...size, blockSize: T, vocabSize: tok.vocabSize, dropout: 0 });
    const params = model.parameters().reduce((n, p) => n + p.size, 0);
    let answerTokens = 0;
    try {
      log(`${tag}: ${params} parameters, ${train.steps} steps x ${train.batchSize}`);
      const fit = await fitAdamW<Batch>({
        model, train, clipGradNorm: 1,
        data: (step) => batchAt(corpus, tok, step, train.batchSize, T),
        logEvery: Math.max(1, Math.floor(train.steps / 5)),
        terms: (b) => {
          const logits = model.forward(b.x);
          answerTokens += b.answers;
          return { loss: kiln.crossEntropy(kiln.reshape(logits, [train.batchSize * T, tok.vocabSize]), b.y) };
        },
        log: (l) => log(`${tag}: ${l}`),
      });
      model.eval();
      onModel?.(config.seeds > 1 ? `${label}-seed${seed}` : label, model, tok);
      const te = performance.now();
      const results = await runBigBench(tasks, kilnLanguageModel(model, tok, { maxBatch: 32, name: `kiln:emergence ${label}` }), {
        shots: config.shots, seed: config.seed, maxTokens: 8, concurrency: 32,
        modelSpec: `kiln:emergence/${label}`, label, scale: params,
      });
      const evalSeconds = (performance.now() - te) / 1000;
      const flops = 6 * params * train.steps * train.batchSize * T;
      log(`${tag}: ` + results.tasks.map((t) => `${t.name} ${t.perShot.map((p) => p.normalized?.toFixed(0) ?? '-').join('/')}`).join(', '));
      models.push({
        label, seed, size, params, answerTokens, trainFlops: flops, history: fit.history, trainSeconds: fit.seconds, evalSeconds, results,
        finalLoss: fit.history.length ? fit.history[fit.history.length - 1].loss : NaN,
      });
    } finally {
      for (const p of model.parameters()) p.dispose();
    }
  }
  models.sort((a, b) => a.params - b.params || a.seed - b.seed);
  const bySize = config.sizes.map((size) => models.filter((m) => m.label === sizeLabel(size))).sort((a, b) => a[0].params - b[0].params);
  const perSize = bySize.map((runs) => ({ params: runs[0].params, label: runs[0].label, results: runs.length > 1 ? meanOverSeeds(runs.map((r) => r.results)) : runs[0].results }));
  const curvesOf = (runs: readonly { label: string; params: number; results: RunResults }[]) =>
    taskCurves(runs.map((m) => ({ file: m.label, results: m.results, scale: m.params, label: m.label })), config.criteria);
  const curves = curvesOf(perSize);
  const logLikelihood = logLikelihoodCurves(perSize);
  const seedCurves = config.seeds > 1 ? Array.from({ length: config.seeds }, (_, k) => curvesOf(bySize.map((runs) => runs[k]))) : [];
  return {
    kind: 'kiln.emergence.results', version: 1, config, vocabSize: tok.vocabSize, models, curves, logLikelihood, seedCurves,
    acceptance: acceptanceChecks(curves, logLikelihood, config.criteria), seconds: (performance.now() - t0) / 1000,
  };
}
