// The whole Diffusion-LM run: data (E2E, split by meaning representation), the diffusion LM trained
// end to end, the content classifier, then unguided and classifier-guided sampling with clamping,
// scored by the paper's exact-match control success and a bigram fluency check.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KilnError } from '../../errors.js';
import { fromTyped, full } from '../../ops/creation.js';
import { noGrad } from '../../tensor/autograd.js';
import { manualSeed } from '../../tensor/random.js';
import { tidy } from '../../tensor/storage.js';
import type { Tensor } from '../../tensor/tensor.js';
import { seededRandom } from '../../train/data.js';
import { WordTokenizer } from '../../train/tokenizer.js';
import {
  buildTokenizer, containsRun, encodePadded, fieldLabels, fieldSpace, parseControlTargets, readE2E, splitByMR, targetClass,
  targetName, verbatimRate, type ControlTarget, type E2EExample, type FieldSpace,
} from './data.js';
import { ContentClassifier, contentGuide, targetMask, type ClassifierConfig, type GuidanceConfig } from './control.js';
import { DiffusionLM, sample, type DiffusionLMConfig } from './model.js';
import { trainLoop, type TrainConfig, type TrainRecord } from './train.js';
import { loadCheckpoint } from '../../nn/checkpoint.js';
import { perplexity, teacherRows, trainTeacher, type TeacherConfig } from './teacher.js';
import { checkpointConfig } from '../checkpoint-meta.js';

export interface ExperimentConfig {
  /** Folder with valid.txt, test.txt and control_target_attribute.json. */
  dataDir: string;
  heldOutFraction: number;
  seed: number;
  /** Words seen fewer times in the training texts become <unk>. */
  minCount: number;
  seqLen: number;
  model: Omit<DiffusionLMConfig, 'vocabSize' | 'seqLen'>;
  train: Omit<TrainConfig, 'seed'>;
  classifier: Omit<ClassifierConfig, 'seqLen' | 'embedDim'>;
  classifierTrain: Omit<TrainConfig, 'seed'>;
  /** The classifier reads x_t through the LM's x0 estimate ('x0', default) or reads x_t itself ('latent', the paper's). */
  classifierInput: 'x0' | 'latent';
  /** The classifier trains on timesteps uniform in [0, this). */
  classifierMaxT: number;
  /** A run folder whose model.safetensors and vocab.json to reuse instead of training the LM ('' = train). */
  lmFrom: string;
  /** Respaced sampling steps. */
  sampleSteps: number;
  clamp: boolean;
  /** Guided samples per target; the unguided run draws as many samples in all. */
  samplesPerTarget: number;
  guidance: GuidanceConfig;
  /** Targets whose value the training texts with that MR value realise verbatim at least this often. */
  minVerbatimRate: number;
  /** At most this many targets (the first ones of the file that qualify); 0 = all. */
  maxTargets: number;
  /** Only targets of these fields (empty = every field). */
  targetFields: string[];
  /** The teacher LM for the perplexity fluency score (train.steps 0 = no teacher). */
  teacher: TeacherConfig;
}

import { DEFAULT_DATA_DIR, resolveDataDir } from './data.js';
export { DEFAULT_DATA_DIR, resolveDataDir };

export const DEFAULT_EXPERIMENT: ExperimentConfig = {
  dataDir: DEFAULT_DATA_DIR,
  heldOutFraction: 0.1,
  seed: 0,
  minCount: 3,
  seqLen: 40,
  model: { embedDim: 16, nLayer: 4, nHead: 4, nEmbd: 128, diffusionSteps: 2000 },
  train: { steps: 1500, batchSize: 64, lr: 1e-3, warmup: 100, weightDecay: 0, logEvery: 50 },
  classifier: { nLayer: 2, nHead: 4, nEmbd: 64 },
  classifierTrain: { steps: 600, batchSize: 64, lr: 3e-3, warmup: 50, weightDecay: 0, logEvery: 50 },
  classifierInput: 'x0',
  classifierMaxT: 100,
  lmFrom: '',
  sampleSteps: 100,
  clamp: true,
  samplesPerTarget: 4,
  guidance: { steps: 3, stepSize: 0.1, fluency: 0.01 },
  minVerbatimRate: 0.5,
  maxTargets: 0,
  targetFields: [],
  teacher: { nLayer: 2, nHead: 4, nEmbd: 128, train: { steps: 600, batchSize: 64, lr: 1e-3, warmup: 50, weightDecay: 0, logEvery: 100 } },
};

export interface TargetResult {
  target: string;
  field: string;
  /** How often the training texts whose MR has this value contain it verbatim. */
  verbatimRate: number;
  guided: number;
  unguided: number;
  /** Fraction of the guided samples the classifier assigns to the target at t = 0. */
  classifierAgreement: number;
  examples: string[];
}

export interface ExperimentResult {
  config: ExperimentConfig;
  data: { train: number; heldOut: number; trainMRs: number; heldOutMRs: number; vocab: number; droppedTooLong: number };
  lm: { params: number; history: TrainRecord[]; seconds: number; heldOut: Record<string, number>; loadedFrom?: string };
  classifier: { params: number; history: TrainRecord[]; seconds: number; heldOutAccuracy: { t: number; accuracy: number }[] };
  targets: TargetResult[];
  summary: {
    targets: number;
    guided: number;
    unguided: number;
    /** Targets where guided success beats / ties / trails unguided. */
    better: number;
    ties: number;
    worse: number;
  };
  fluency: {
    unseenBigramRate: { guided: number; unguided: number; heldOutText: number };
    meanLength: { guided: number; unguided: number; heldOutText: number };
    /** Perplexity under the teacher GPT trained on the training split (absent without a teacher). */
    teacherPerplexity?: { guided: number; unguided: number; heldOutText: number };
  };
  teacher?: { params: number; steps: number; seconds: number; finalLoss: number };
  unguidedExamples: string[];
  acceptance: { name: string; pass: boolean; rule: string }[];
  samplingSeconds: { unguided: number; guided: number };
  seconds: number;
}

export interface Prepared {
  train: E2EExample[];
  heldOut: E2EExample[];
  tok: WordTokenizer;
  trainIds: Int32Array;
  trainKept: E2EExample[];
  heldOutIds: Int32Array;
  heldOutKept: E2EExample[];
  dropped: number;
  space: FieldSpace;
  targets: ControlTarget[];
}

export function prepare(cfg: ExperimentConfig): Prepared {
  const dir = resolveDataDir(cfg.dataDir);
  const examples = [...readE2E(join(dir, 'valid.txt')), ...readE2E(join(dir, 'test.txt'))];
  const { train, heldOut } = splitByMR(examples, cfg.heldOutFraction, cfg.seed);
  const tok = buildTokenizer(train.map((e) => e.text), cfg.minCount);
  const tr = encodePadded(tok, train.map((e) => e.text), cfg.seqLen);
  const ho = encodePadded(tok, heldOut.map((e) => e.text), cfg.seqLen);
  const trainKept = tr.kept.map((i) => train[i]);
  const space = fieldSpace(trainKept);
  let src: string;
  try {
    src = readFileSync(join(dir, 'control_target_attribute.json'), 'utf8');
  } catch (e) {
    throw new KilnError('INVALID_ARGUMENT', `diffusion-lm: cannot read the control targets: ${(e as Error).message}`);
  }
  const unknownFields = cfg.targetFields.filter((f) => !space.fields.includes(f));
  if (unknownFields.length)
    throw new KilnError('INVALID_ARGUMENT', `diffusion-lm: --fields: unknown field${unknownFields.length > 1 ? 's' : ''} ${unknownFields.map((f) => `'${f}'`).join(', ')} (the data's fields: ${space.fields.join(', ')})`);
  let targets = parseControlTargets(src).filter((c) => targetClass(space, c) && verbatimRate(trainKept, c).rate >= cfg.minVerbatimRate &&
    (cfg.targetFields.length === 0 || cfg.targetFields.includes(c.field)));
  if (cfg.maxTargets > 0) targets = targets.slice(0, cfg.maxTargets);
  if (targets.length === 0) throw new KilnError('INVALID_ARGUMENT', `diffusion-lm: no control target qualifies (verbatim rate >= ${cfg.minVerbatimRate})`);
  return {
    train, heldOut, tok, trainIds: tr.ids, trainKept, heldOutIds: ho.ids, heldOutKept: ho.kept.map((i) => heldOut[i]),
    dropped: tr.dropped.length + ho.dropped.length, space, targets,
  };
}

/** Words of each sampled row (pads and other specials dropped). */
export function decodeRows(tok: WordTokenizer, ids: Int32Array, L: number): string[][] {
  const out: string[][] = [];
  for (let r = 0; r < ids.length / L; r++) {
    const words: string[] = [];
    for (let j = 0; j < L; j++) {
      const id = ids[r * L + j];
      if (id === tok.padId || id === tok.bosId || id === tok.eosId) continue;
      words.push(tok.vocab[id]);
    }
    out.push(words);
  }
  return out;
}

function bigrams(words: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < words.length; i++) out.push(`${words[i]}\u0000${words[i + 1]}`);
  return out;
}

/** Fraction of the rows' adjacent word pairs never seen in the reference texts. */
export function unseenBigramRate(rows: readonly (readonly string[])[], seen: Set<string>): number {
  let n = 0, unseen = 0;
  for (const r of rows) for (const b of bigrams(r)) {
    n++;
    if (!seen.has(b)) unseen++;
  }
  return n ? unseen / n : 0;
}

const meanOf = (v: readonly number[]) => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : 0);

export async function runExperiment(cfg: ExperimentConfig, log: (line: string) => void = () => {}): Promise<{ result: ExperimentResult; model: DiffusionLM; classifier: ContentClassifier; tok: WordTokenizer }> {
  const t0 = performance.now();
  const p = prepare(cfg);
  const L = cfg.seqLen;
  const nTrain = p.trainIds.length / L, nHeld = p.heldOutIds.length / L;
  log(`data: ${nTrain} training and ${nHeld} held-out sentences (${p.dropped} longer than ${L} words dropped), vocabulary ${p.tok.vocabSize}, ${p.targets.length} control targets`);

  // 1. The diffusion LM, end to end (or a saved one).
  manualSeed(cfg.seed);
  const model = new DiffusionLM({ ...cfg.model, vocabSize: p.tok.vocabSize, seqLen: L });
  const T = model.schedule.T;
  let lmRun: { history: TrainRecord[]; seconds: number } = { history: [], seconds: 0 };
  if (cfg.lmFrom) loadLM(model, p.tok, cfg.lmFrom);
  else lmRun = await trainLoop(model, { ids: { data: p.trainIds, rowShape: [L], dtype: 'int32' } }, T, { ...cfg.train, seed: cfg.seed },
    (b, ts) => model.losses(b.ids, ts), (line) => log(`lm ${line}`));
  model.eval();
  for (const q of model.parameters()) q.requiresGrad = false;
  const heldOut = heldOutLosses(model, p.heldOutIds, L, cfg.seed);
  log(`lm${cfg.lmFrom ? ` from ${cfg.lmFrom}` : ''} held-out: ${Object.entries(heldOut).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ')} (${lmRun.seconds.toFixed(0)} s)`);

  // 2. The content classifier on noised latents of the frozen embeddings.
  manualSeed(cfg.seed + 1);
  const clf = new ContentClassifier(p.space, { ...cfg.classifier, seqLen: L, embedDim: cfg.model.embedDim }, cfg.classifierInput === 'x0' ? model : undefined);
  const labels = fieldLabels(p.space, p.trainKept);
  const noised = (ids: Tensor, ts: Int32Array) => model.noise(ids, ts).xt;
  const clfRun = await trainLoop(clf, { ids: { data: p.trainIds, rowShape: [L], dtype: 'int32' }, y: { data: labels, rowShape: [p.space.fields.length], dtype: 'int32' } }, Math.min(T, cfg.classifierMaxT),
    { ...cfg.classifierTrain, seed: cfg.seed + 1 },
    (b, ts) => ({ loss: clf.loss(noised(b.ids, ts), fromTyped(ts, [ts.length]), b.y) }), (line) => log(`classifier ${line}`));
  for (const q of clf.parameters()) q.requiresGrad = false;
  const heldLabels = fieldLabels(p.space, p.heldOutKept);
  const heldOutAccuracy = [0, Math.floor(T / 4), Math.floor(T / 2), Math.floor((3 * T) / 4)].map((t) => ({
    t, accuracy: classifierAccuracy(clf, p.heldOutIds, heldLabels, L, noised, t, cfg.seed + 2),
  }));
  log(`classifier held-out field accuracy: ${heldOutAccuracy.map((a) => `t=${a.t} ${(100 * a.accuracy).toFixed(1)}%`).join(', ')} (${clfRun.seconds.toFixed(0)} s)`);

  // 3. Sampling: unguided, then every target's guided samples in one batch.
  const n = p.targets.length * cfg.samplesPerTarget;
  manualSeed(cfg.seed + 3);
  let ts = performance.now();
  const ung = sample(model, n, { steps: cfg.sampleSteps, clamp: cfg.clamp });
  ung.x0.dispose();
  const unguidedSeconds = (performance.now() - ts) / 1000;
  const unguidedRows = decodeRows(p.tok, ung.ids, L);
  log(`unguided: ${n} samples in ${unguidedSeconds.toFixed(0)} s`);

  const classes = p.targets.flatMap((c) => new Array(cfg.samplesPerTarget).fill(targetClass(p.space, c)!) as [number, number][]);
  const mask = targetMask(p.space, classes);
  manualSeed(cfg.seed + 4);
  ts = performance.now();
  const gd = sample(model, n, { steps: cfg.sampleSteps, clamp: cfg.clamp, guide: contentGuide(clf, mask, cfg.guidance) });
  const guidedSeconds = (performance.now() - ts) / 1000;
  const guidedRows = decodeRows(p.tok, gd.ids, L);
  // Does the classifier think the final x0 carries the target? (control reached the latent, if not the words)
  const predicted = fieldPredictions(clf, gd.x0, 0);
  const F = p.space.fields.length;
  const agree = classes.map(([k, v], i) => (predicted[i * F + k] === v ? 1 : 0));
  gd.x0.dispose();
  mask.dispose();
  log(`guided: ${n} samples in ${guidedSeconds.toFixed(0)} s`);

  const targets: TargetResult[] = p.targets.map((c, j) => {
    const rows = guidedRows.slice(j * cfg.samplesPerTarget, (j + 1) * cfg.samplesPerTarget);
    return {
      target: targetName(c),
      field: c.field,
      verbatimRate: verbatimRate(p.trainKept, c).rate,
      guided: meanOf(rows.map((r) => (containsRun(r, c.tokens) ? 1 : 0))),
      unguided: meanOf(unguidedRows.map((r) => (containsRun(r, c.tokens) ? 1 : 0))),
      classifierAgreement: meanOf(agree.slice(j * cfg.samplesPerTarget, (j + 1) * cfg.samplesPerTarget)),
      examples: rows.slice(0, 2).map((r) => r.join(' ')),
    };
  });
  const better = targets.filter((t) => t.guided > t.unguided).length, worse = targets.filter((t) => t.guided < t.unguided).length;
  const summary = {
    targets: targets.length, guided: meanOf(targets.map((t) => t.guided)), unguided: meanOf(targets.map((t) => t.unguided)),
    better, ties: targets.length - better - worse, worse,
  };

  const seen = new Set(p.trainKept.flatMap((e) => bigrams(WordTokenizer.split(e.text))));
  const heldRows = p.heldOutKept.map((e) => WordTokenizer.split(e.text));
  const fluency: ExperimentResult['fluency'] = {
    unseenBigramRate: { guided: unseenBigramRate(guidedRows, seen), unguided: unseenBigramRate(unguidedRows, seen), heldOutText: unseenBigramRate(heldRows, seen) },
    meanLength: { guided: meanOf(guidedRows.map((r) => r.length)), unguided: meanOf(unguidedRows.map((r) => r.length)), heldOutText: meanOf(heldRows.map((r) => r.length)) },
  };
  // Guided successes out of all guided samples against the unguided rate of the same targets: an
  // exact one-sided binomial test (the per-target rates from a few samples each are too coarse to compare one by one).
  const hits = Math.round(summary.guided * targets.length * cfg.samplesPerTarget), trials = targets.length * cfg.samplesPerTarget;
  const pValue = binomialUpperTail(hits, trials, summary.unguided);
  let teacher: ExperimentResult['teacher'];
  if (cfg.teacher.train.steps > 0) {
    const width = L + 2;
    const tr = await trainTeacher(p.tok, teacherRows(p.tok, p.trainKept.map((e) => WordTokenizer.split(e.text)), width), width, cfg.teacher, cfg.seed + 5,
      (line) => log(`teacher ${line}`));
    fluency.teacherPerplexity = {
      guided: perplexity(tr.gpt, p.tok, guidedRows, width), unguided: perplexity(tr.gpt, p.tok, unguidedRows, width), heldOutText: perplexity(tr.gpt, p.tok, heldRows, width),
    };
    teacher = { params: tr.gpt.numParameters(), steps: cfg.teacher.train.steps, seconds: tr.seconds, finalLoss: tr.history[tr.history.length - 1].loss };
    log(`teacher perplexity: guided ${fluency.teacherPerplexity.guided.toFixed(1)}, unguided ${fluency.teacherPerplexity.unguided.toFixed(1)}, held-out text ${fluency.teacherPerplexity.heldOutText.toFixed(1)} (${tr.seconds.toFixed(0)} s)`);
  }
  const acceptance = [
    { name: 'guided control beats unguided sampling', pass: summary.guided > summary.unguided, rule: 'mean exact-match success over targets: guided > unguided' },
    {
      name: 'the gain is significant', pass: pValue < 0.01,
      rule: `one-sided exact binomial test of ${hits} guided successes in ${trials} against the unguided rate ${(100 * summary.unguided).toFixed(1)}%: p = ${pValue.toExponential(2)} < 0.01`,
    },
  ];
  const result: ExperimentResult = {
    config: cfg,
    data: { train: nTrain, heldOut: nHeld, trainMRs: new Set(p.train.map((e) => e.mrKey)).size, heldOutMRs: new Set(p.heldOut.map((e) => e.mrKey)).size, vocab: p.tok.vocabSize, droppedTooLong: p.dropped },
    lm: { params: model.numParameters(), history: lmRun.history, seconds: lmRun.seconds, heldOut, ...(cfg.lmFrom ? { loadedFrom: cfg.lmFrom } : {}) },
    classifier: { params: clf.numParameters(), history: clfRun.history, seconds: clfRun.seconds, heldOutAccuracy },
    targets,
    summary,
    fluency,
    ...(teacher ? { teacher } : {}),
    unguidedExamples: unguidedRows.slice(0, 8).map((r) => r.join(' ')),
    acceptance,
    samplingSeconds: { unguided: unguidedSeconds, guided: guidedSeconds },
    seconds: (performance.now() - t0) / 1000,
  };
  return { result, model, classifier: clf, tok: p.tok };
}

/** P(X >= k) for X ~ Binomial(n, p): the terms from j = k up, each from the last by C(n, j+1) = C(n, j) (n - j) / (j + 1), in log space. */
export function binomialUpperTail(k: number, n: number, p: number): number {
  if (k <= 0) return 1;
  if (k > n || p <= 0) return 0;
  if (p >= 1) return 1;
  let logC = 0;
  for (let i = 1; i <= k; i++) logC += Math.log((n - k + i) / i);
  let total = 0;
  for (let j = k; j <= n; j++) {
    total += Math.exp(logC + j * Math.log(p) + (n - j) * Math.log1p(-p));
    logC += Math.log((n - j) / (j + 1));
  }
  return Math.min(1, total);
}

/** Loads a run folder's model.safetensors into model, after checking its vocab.json is this run's vocabulary. */
export function loadLM(model: DiffusionLM, tok: WordTokenizer, dir: string): void {
  // The sequence length first: another one also drops other sentences, so the vocabulary differs too.
  const savedLen = (checkpointConfig(join(dir, 'model.safetensors')) as { seqLen?: unknown } | undefined)?.seqLen;
  if (typeof savedLen === 'number' && savedLen !== model.config.seqLen)
    throw new KilnError('INVALID_ARGUMENT', `diffusion-lm: the LM in ${dir} was trained with --seq-len ${savedLen}; run with --seq-len ${savedLen} to reuse it (got ${model.config.seqLen})`);
  const saved = WordTokenizer.load(join(dir, 'vocab.json'));
  if (saved.vocab.length !== tok.vocab.length || saved.vocab.some((w, i) => w !== tok.vocab[i]))
    throw new KilnError('INVALID_ARGUMENT', `diffusion-lm: ${join(dir, 'vocab.json')} is not this run's vocabulary (${saved.vocabSize} vs ${tok.vocabSize} words): same data, seed and min count are needed`);
  const ck = loadCheckpoint(join(dir, 'model.safetensors'), { model, restoreRng: false });
  for (const t of Object.values(ck.tensors)) t.dispose();
}

/** The LM's loss terms on held-out sentences at seeded uniform timesteps (batches of 64). */
export function heldOutLosses(model: DiffusionLM, ids: Int32Array, L: number, seed: number): Record<string, number> {
  const n = ids.length / L;
  const rnd = seededRandom((seed * 7919 + 17) >>> 0);
  manualSeed(seed + 100);
  const acc: Record<string, number> = {};
  let rows = 0;
  for (let s = 0; s < n; s += 64) {
    const B = Math.min(64, n - s);
    tidy(() => noGrad(() => {
      const ts = Int32Array.from({ length: B }, () => Math.floor(rnd() * model.schedule.T));
      const terms = model.losses(fromTyped(ids.subarray(s * L, (s + B) * L), [B, L]), ts);
      for (const [k, v] of Object.entries(terms)) acc[k] = (acc[k] ?? 0) + v.item() * B;
    }));
    rows += B;
  }
  for (const k of Object.keys(acc)) acc[k] /= rows;
  return acc;
}

/** The classifier's most likely class of every field for each row of x at model time t: [B * F] (row-major). */
export function fieldPredictions(clf: ContentClassifier, x: Tensor, t: number): Int32Array {
  const { offsets, values, width } = clf.space, F = values.length, B = x.shape[0];
  const lp = tidy(() => noGrad(() => clf.logProbs(x, full([B], t, { dtype: 'int32' })).dataSync() as Float32Array));
  const out = new Int32Array(B * F);
  for (let i = 0; i < B; i++)
    for (let k = 0; k < F; k++) {
      let best = 0;  // the first of ties, as argmax
      for (let v = 1; v <= values[k].length; v++) if (lp[i * width + offsets[k] + v] > lp[i * width + offsets[k] + best]) best = v;
      out[i * F + k] = best;
    }
  return out;
}

/** Mean over fields and sentences of the classifier's accuracy on latents noised to model time t. */
export function classifierAccuracy(clf: ContentClassifier, ids: Int32Array, labels: Int32Array, L: number,
  noised: (ids: Tensor, ts: Int32Array) => Tensor, t: number, seed: number): number {
  const n = ids.length / L, F = clf.space.fields.length;
  manualSeed(seed);
  let hit = 0;
  for (let s = 0; s < n; s += 64) {
    const B = Math.min(64, n - s);
    const pred = tidy(() => noGrad(() => fieldPredictions(clf, noised(fromTyped(ids.subarray(s * L, (s + B) * L), [B, L]), new Int32Array(B).fill(t)), t)));
    for (let i = 0; i < B * F; i++) if (pred[i] === labels[s * F + i]) hit++;
  }
  return hit / (n * F);
}
