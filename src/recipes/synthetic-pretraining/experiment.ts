// The whole `synthetic-pretraining` run (Wu, Li and Liang, arXiv 2206.10139, at small scale): for
// each seed, one encoder-decoder is pre-trained three ways for the same number of steps (natural:
// span-corrupted E2E descriptions restored whole; Set; LIME), and five initialisations are fine-tuned on
// each downstream task with the same recipe: random (scratch), the three pre-trained models, and a
// fresh draw from the Set model's per-tensor statistics. The measure is the paper's: the fraction of
// natural pre-training's gain over scratch that a method recovers, averaged over the tasks.
import * as kiln from '../../index.js';
import { KilnError } from '../../errors.js';
import { isSeed } from '../seed.js';
import { meanStd } from '../stats.js';
import { corpusBleu } from '../bigbench/text-metrics.js';
import { Gaussian, mixSeed } from '../icl/tasks.js';
import { DEFAULT_DATA_DIR, readE2E, resolveDataDir, type E2EExample } from '../diffusion-lm/data.js';
import { join } from 'node:path';
import { buildVocab, denoisePair, downstreamPair, DOWNSTREAM, linearizeMR, parseMRIds, type DownstreamTask, type Pair, type Vocab } from './data.js';
import { buildModel, DEFAULT_MODEL, greedyDecode, initFromStatistics, trainSeq2Seq, type ModelConfig, type TrainConfig } from './model.js';
import { DEFAULT_LIME, DEFAULT_SET, limeAlphabet, limePair, setPair, type LimeConfig, type SetConfig } from './synthetic.js';

export type Pretraining = 'natural' | 'set' | 'lime';
export type Method = 'scratch' | Pretraining | 'set-stats';
export const METHODS: Method[] = ['scratch', 'natural', 'set', 'lime', 'set-stats'];

export interface DataConfig {
  /** The E2E folder (valid.txt and test.txt in Diffusion-LM's one-line form, pooled then split by meaning representation); '' finds shared/data/e2e. */
  dir: string;
  /** Descriptions longer than this many words are left out. */
  maxWords: number;
  /** Fractions of the meaning representations held out for the downstream test and for natural pre-training (the rest is the fine-tuning pool). */
  testFraction: number;
  pretrainFraction: number;
  /** Fine-tuning examples drawn from the pool (the low-resource regime where pre-training matters). */
  finetuneExamples: number;
  /** Test inputs per downstream task (descriptions to parse; distinct meaning representations to describe). */
  testExamples: number;
}

export interface ExperimentConfig {
  data: DataConfig;
  model: ModelConfig;
  pretrain: TrainConfig;
  finetune: TrainConfig;
  /** Fraction of a description's tokens the natural objective drops (in spans of mean length 3). */
  noiseDensity: number;
  set: SetConfig;
  lime: LimeConfig;
  methods: Method[];
  seeds: number;
  /** Fixes the data split and fine-tuning set; seed k of the run uses seed + k for everything else. */
  seed: number;
}

export const DEFAULT_DATA: DataConfig = {
  dir: DEFAULT_DATA_DIR,
  maxWords: 40,
  testFraction: 0.2,
  pretrainFraction: 0.5,
  finetuneExamples: 100,
  testExamples: 300,
};

export const DEFAULT_EXPERIMENT: ExperimentConfig = {
  data: DEFAULT_DATA,
  model: DEFAULT_MODEL,
  pretrain: { steps: 1500, batchSize: 32, lr: 2e-3, weightDecay: 0.01, warmup: 50 },
  finetune: { steps: 200, batchSize: 32, lr: 1e-3, weightDecay: 0.01, warmup: 20 },
  noiseDensity: 0.3,
  set: DEFAULT_SET,
  lime: DEFAULT_LIME,
  methods: METHODS,
  seeds: 1,
  seed: 0,
};

/** The E2E pool split by meaning representation into natural pre-training text, a fine-tuning set and test sets. */
export interface Split {
  vocab: Vocab;
  pretrainTexts: Int32Array[];
  finetune: E2EExample[];
  /** parse: descriptions and their meaning representations; generate: one input per test MR with all its descriptions as references. */
  testParse: E2EExample[];
  testGenerate: { mr: Record<string, string>; references: string[] }[];
}

/** `maxTokens`: the model's maxLen; an example whose tokenized text or MR (with <bos> / <eos>) would not fit is left out too. */
export function splitData(examples: readonly E2EExample[], d: DataConfig, seed: number, maxTokens: number): Split {
  const words = examples.filter((e) => e.text.split(' ').length <= d.maxWords);
  const vocab = buildVocab(words);
  const kept = words.filter((e) => vocab.tok.encode(e.text).length < maxTokens && linearizeMR(vocab, e.mr).length < maxTokens);
  const keys = [...new Set(kept.map((e) => e.mrKey))].sort();
  const g = new Gaussian(mixSeed(seed, 0x5b11));
  shuffle(keys, g);
  const nTest = Math.ceil(d.testFraction * keys.length), nPre = Math.ceil(d.pretrainFraction * keys.length);
  if (nTest + nPre >= keys.length) throw new KilnError('INVALID_ARGUMENT', `synthetic-pretraining: test (${d.testFraction}) and pre-training (${d.pretrainFraction}) fractions leave no meaning representation to fine-tune on`);
  const role = new Map(keys.map((k, i) => [k, i < nTest ? 'test' : i < nTest + nPre ? 'pretrain' : 'finetune']));
  const by = (r: string) => kept.filter((e) => role.get(e.mrKey) === r);
  const pool = by('finetune'), test = by('test');
  if (pool.length < d.finetuneExamples) throw new KilnError('INVALID_ARGUMENT', `synthetic-pretraining: ${d.finetuneExamples} fine-tuning examples asked, the pool has ${pool.length}`);
  shuffle(pool, g);
  shuffle(test, g);
  const refs = new Map<string, E2EExample[]>();
  for (const e of test) refs.set(e.mrKey, [...(refs.get(e.mrKey) ?? []), e]);
  return {
    vocab,
    pretrainTexts: by('pretrain').map((e) => vocab.tok.encode(e.text)),
    finetune: pool.slice(0, d.finetuneExamples),
    testParse: test.slice(0, d.testExamples),
    testGenerate: [...refs.values()].slice(0, d.testExamples).map((es) => ({ mr: es[0].mr, references: es.map((e) => e.text) })),
  };
}

function shuffle<T>(a: T[], g: Gaussian): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = g.int(i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
}

/** The batches of a pre-training objective: fresh synthetic examples, or span-corrupted descriptions, per step. */
export function pretrainBatches(kind: Pretraining, s: Split, cfg: ExperimentConfig, seed: number): (step: number) => Pair[] {
  const v = s.vocab, B = cfg.pretrain.batchSize;
  const alphabet = limeAlphabet(v, cfg.lime, new Gaussian(mixSeed(seed, 0x11fe)));
  return (step) => {
    const g = new Gaussian(mixSeed(seed, 0x9e7, step));
    return Array.from({ length: B }, () =>
      kind === 'set' ? setPair(v, cfg.set, g)
        : kind === 'lime' ? limePair(v, alphabet, cfg.lime, g)
          : denoisePair(v, s.pretrainTexts[g.int(s.pretrainTexts.length)], g, cfg.noiseDensity));
  };
}

export interface TaskScore {
  task: DownstreamTask;
  /** parse: micro F1 over (field, value) slots; generate: corpus BLEU (0-100) against every description of the MR. */
  score: number;
  /** parse: exact match of the whole meaning representation; generate: mean output length in words. */
  secondary: number;
  finalLoss: number;
  seconds: number;
}

export interface MethodScore {
  method: Method;
  seed: number;
  tasks: TaskScore[];
}

/** Scores of the parse task: micro F1 over slots and exact match. */
export function parseScores(v: Vocab, outputs: readonly Int32Array[], gold: readonly E2EExample[]): { f1: number; exact: number } {
  let tp = 0, np = 0, ng = 0, exact = 0;
  outputs.forEach((o, i) => {
    const pred = parseMRIds(v, o), want = parseMRIds(v, linearizeMR(v, gold[i].mr));
    let hit = 0;
    for (const [f, val] of pred) if (want.get(f) === val) hit++;
    tp += hit;
    np += pred.size;
    ng += want.size;
    if (hit === want.size && pred.size === want.size) exact++;
  });
  const p = np ? tp / np : 0, r = ng ? tp / ng : 0;
  return { f1: p + r > 0 ? (2 * p * r) / (p + r) : 0, exact: outputs.length ? exact / outputs.length : 0 };
}

function evaluate(task: DownstreamTask, m: kiln.nn.Seq2Seq, s: Split): { score: number; secondary: number } {
  const v = s.vocab, maxOut = m.config.maxLen - 1;
  if (task === 'parse') {
    const outs = greedyDecode(m, v, s.testParse.map((e) => downstreamPair(v, 'parse', e).src), maxOut);
    const r = parseScores(v, outs, s.testParse);
    return { score: r.f1, secondary: r.exact };
  }
  const outs = greedyDecode(m, v, s.testGenerate.map((t) => linearizeMR(v, t.mr)), maxOut).map((o) => v.tok.decode(o));
  const bleu = corpusBleu(outs, s.testGenerate.map((t) => t.references.map((r) => v.tok.decode(v.tok.encode(r)))), 'none');
  return { score: bleu.score, secondary: outs.reduce((a, o) => a + (o ? o.split(' ').length : 0), 0) / Math.max(1, outs.length) };
}

export interface Recovery {
  method: Method;
  /** Per task, (method - scratch) / (natural - scratch) on the seed means; NaN where natural does not beat scratch. */
  perTask: Record<string, number>;
  /** The mean of perTask: the paper's "fraction of the benefits". */
  mean: number;
  /** The same from each seed's scores alone. */
  perSeed: number[];
}

export interface ExperimentResult {
  config: ExperimentConfig;
  params: number;
  vocabSize: number;
  sizes: { pretrainTexts: number; finetune: number; testParse: number; testGenerate: number };
  pretraining: { kind: Pretraining; seed: number; finalLoss: number; seconds: number; history: { step: number; [k: string]: number }[] }[];
  scores: MethodScore[];
  /** Per method and task: mean and std over seeds of the score. */
  summary: { method: Method; task: DownstreamTask; mean: number; std: number; secondary: number }[];
  recovery: Recovery[];
  acceptance: { name: string; pass: boolean; unjudged?: boolean; rule: string }[];
  seconds: number;
}

export function checkConfig(c: ExperimentConfig): void {
  const bad = (m: string): never => { throw new KilnError('INVALID_ARGUMENT', `synthetic-pretraining: ${m}`); };
  if (!Number.isInteger(c.seeds) || c.seeds < 1) bad(`seeds must be an integer >= 1, got ${c.seeds}`);
  if (!isSeed(c.seed)) bad(`seed must be an integer in [0, 2^32), got ${c.seed}`);
  if (!c.methods.length) bad('needs at least one method');
  for (const m of c.methods) if (!METHODS.includes(m)) bad(`unknown method '${m}' (expected ${METHODS.join(', ')})`);
  for (const [n, t] of [['pretrain', c.pretrain], ['finetune', c.finetune]] as const)
    if (!Number.isInteger(t.steps) || t.steps < 1 || !Number.isInteger(t.batchSize) || t.batchSize < 1 || !(t.lr > 0))
      bad(`${n}: steps and batch size must be integers >= 1 and lr > 0`);
  if (c.data.maxWords + 1 >= c.model.maxLen) bad(`maxWords ${c.data.maxWords} needs model maxLen > ${c.data.maxWords + 1}`);
  if (c.set.maxLen + 1 >= c.model.maxLen || c.set.minLen < 1 || c.set.minLen > c.set.maxLen) bad(`Set lengths [${c.set.minLen}, ${c.set.maxLen}] must fit model maxLen ${c.model.maxLen}`);
  const { ruleLen: [, rule], ruleVars: [, vars], substLen: [, sub] } = c.lime;
  const kase = vars * (2 + sub) - 1, res = rule * sub;
  const limeMax = Math.max(2 + Math.max(rule + kase, rule + res, kase + res), 1 + Math.max(rule, kase, res));
  if (limeMax > c.model.maxLen) bad(`LIME examples reach ${limeMax} tokens, over model maxLen ${c.model.maxLen}`);
}

/** readE2E, its refusals named after this recipe (the reader is diffusion-lm's). */
function readE2EAs(path: string): ReturnType<typeof readE2E> {
  try {
    return readE2E(path);
  } catch (e) {
    if (e instanceof KilnError && e.message.startsWith('diffusion-lm: ')) throw new KilnError(e.code, `synthetic-pretraining: ${e.message.slice('diffusion-lm: '.length)}`);
    throw e;
  }
}

export async function runExperiment(cfg: ExperimentConfig, log: (l: string) => void = () => {}): Promise<ExperimentResult> {
  checkConfig(cfg);
  const t0 = performance.now();
  const dir = resolveDataDir(cfg.data.dir, 'synthetic-pretraining');
  const split = splitData(['valid.txt', 'test.txt'].flatMap((f) => readE2EAs(join(dir, f))), cfg.data, cfg.seed, cfg.model.maxLen);
  const v = split.vocab;
  log(`vocabulary ${v.tok.vocabSize}; ${split.pretrainTexts.length} descriptions for natural pre-training, ${split.finetune.length} fine-tuning examples, ` +
    `${split.testParse.length} descriptions to parse and ${split.testGenerate.length} meaning representations to describe`);
  const needs = new Set<Pretraining>(cfg.methods.flatMap((m) => (m === 'set-stats' ? ['set'] : m === 'scratch' ? [] : [m])) as Pretraining[]);
  const result: ExperimentResult = {
    config: cfg, params: 0, vocabSize: v.tok.vocabSize,
    sizes: { pretrainTexts: split.pretrainTexts.length, finetune: split.finetune.length, testParse: split.testParse.length, testGenerate: split.testGenerate.length },
    pretraining: [], scores: [], summary: [], recovery: [], acceptance: [], seconds: 0,
  };
  for (let k = 0; k < cfg.seeds; k++) {
    const seed = cfg.seed + k;
    const states = new Map<Pretraining, kiln.nn.StateDict>();
    try {
      for (const kind of (['natural', 'set', 'lime'] as Pretraining[]).filter((p) => needs.has(p))) {
        kiln.manualSeed(mixSeed(seed, 0x1417));
        const m = buildModel(v, cfg.model);
        result.params = m.numParameters();
        const r = await trainSeq2Seq(`seed ${seed} pretrain ${kind}`, m, v, pretrainBatches(kind, split, cfg, mixSeed(seed, 0x7a5c)), cfg.pretrain, log);
        result.pretraining.push({ kind, seed, ...r });
        states.set(kind, m.stateDict());
      }
      for (const method of cfg.methods) {
        const tasks: TaskScore[] = [];
        for (const task of DOWNSTREAM) {
          kiln.manualSeed(mixSeed(seed, 0xf1e7));
          const m = buildModel(v, cfg.model);
          if (method === 'set-stats') initFromStatistics(m, states.get('set')!);
          else if (method !== 'scratch') m.loadStateDict(states.get(method)!);
          const pairs = split.finetune.map((e) => downstreamPair(v, task, e));
          const batchAt = (step: number) => {
            const g = new Gaussian(mixSeed(seed, 0xba7c, step));
            return Array.from({ length: cfg.finetune.batchSize }, () => pairs[g.int(pairs.length)]);
          };
          const r = await trainSeq2Seq(`seed ${seed} ${method} -> ${task}`, m, v, batchAt, cfg.finetune, () => {});
          const t1 = performance.now();
          const e = evaluate(task, m, split);
          log(`seed ${seed} ${method} -> ${task}: ${task === 'parse' ? `slot F1 ${(100 * e.score).toFixed(1)}%, exact ${(100 * e.secondary).toFixed(1)}%` : `BLEU ${e.score.toFixed(1)}`} ` +
            `(fine-tune loss ${r.finalLoss.toFixed(3)}, ${r.seconds.toFixed(0)} s + ${((performance.now() - t1) / 1000).toFixed(0)} s decoding)`);
          tasks.push({ task, score: task === 'parse' ? 100 * e.score : e.score, secondary: e.secondary, finalLoss: r.finalLoss, seconds: r.seconds });
          disposeModel(m);
        }
        result.scores.push({ method, seed, tasks });
      }
    } finally {
      for (const sd of states.values()) for (const t of Object.values(sd)) t.dispose();
    }
  }
  summarizeInto(result);
  result.seconds = (performance.now() - t0) / 1000;
  return result;
}

function disposeModel(m: kiln.nn.Module): void {
  for (const t of Object.values(m.stateDict())) if (!t.isDisposed) t.dispose();
}

/** Fills summary, recovery and acceptance from the scores. */
export function summarizeInto(r: ExperimentResult): void {
  const { seeds, seed: seed0, methods } = r.config;
  const score = (m: Method, s: number, t: DownstreamTask) => r.scores.find((x) => x.method === m && x.seed === s)!.tasks.find((x) => x.task === t)!;
  r.summary = methods.flatMap((method) => DOWNSTREAM.map((task) => {
    const rows = Array.from({ length: seeds }, (_, k) => score(method, seed0 + k, task));
    const s = meanStd(rows.map((x) => x.score));
    return { method, task, mean: s.mean, std: s.std, secondary: meanStd(rows.map((x) => x.secondary)).mean };
  }));
  // Per task, the ratio of seed-mean gains (undefined, NaN, where natural pre-training gains nothing);
  // per seed, the same from that seed's scores alone.
  const ratio = (m: number, base: number, nat: number) => (nat > base ? (m - base) / (nat - base) : NaN);
  const mean = (m: Method, t: DownstreamTask) => r.summary.find((x) => x.method === m && x.task === t)!.mean;
  r.recovery = [];
  if (methods.includes('scratch') && methods.includes('natural')) {
    for (const method of methods.filter((m) => m !== 'scratch' && m !== 'natural')) {
      const perTask = DOWNSTREAM.map((t) => ratio(mean(method, t), mean('scratch', t), mean('natural', t)));
      const perSeed = Array.from({ length: seeds }, (_, k) => DOWNSTREAM.reduce((a, t) =>
        a + ratio(score(method, seed0 + k, t).score, score('scratch', seed0 + k, t).score, score('natural', seed0 + k, t).score), 0) / DOWNSTREAM.length);
      r.recovery.push({ method, perSeed, mean: perTask.reduce((a, b) => a + b, 0) / DOWNSTREAM.length, perTask: Object.fromEntries(DOWNSTREAM.map((t, i) => [t, perTask[i]])) });
    }
  }
  const gain = DOWNSTREAM.map((task) => {
    const a = r.summary.find((x) => x.method === 'natural' && x.task === task), b = r.summary.find((x) => x.method === 'scratch' && x.task === task);
    return a && b ? a.mean - b.mean : NaN;
  });
  const rec = (m: Method) => r.recovery.find((x) => x.method === m)?.mean;
  r.acceptance = [];
  if (gain.every(Number.isFinite))
    r.acceptance.push({ name: 'natural pre-training beats scratch on every downstream task', pass: gain.every((x) => x > 0), rule: `gains ${gain.map((x) => x.toFixed(1)).join(' / ')}` });
  // A recovery is NaN where natural pre-training gains nothing over scratch: there is no gain to recover.
  const noGain = 'cannot be judged: natural pre-training does not beat scratch on every task, so there is no gain to recover';
  const best = (['set', 'lime'] as Method[]).map(rec).filter((x): x is number => x !== undefined);
  if (best.length) {
    const b = Math.max(...best);
    r.acceptance.push(Number.isFinite(b)
      ? { name: 'Set or LIME recovers a large fraction of the gain', pass: b >= 0.5, rule: `best ${(100 * b).toFixed(0)}% >= 50% (paper: LIME 67%, Set 65%)` }
      : { name: 'Set or LIME recovers a large fraction of the gain', pass: false, unjudged: true, rule: noGain });
  }
  const st = rec('set-stats');
  if (st !== undefined)
    r.acceptance.push(Number.isFinite(st)
      ? { name: 'parameter statistics alone recover part of it', pass: st > 0.1, rule: `${(100 * st).toFixed(0)}% > 10% (paper: 39%)` }
      : { name: 'parameter statistics alone recover part of it', pass: false, unjudged: true, rule: noGain });
}
