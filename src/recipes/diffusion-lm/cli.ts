// `kiln diffusion-lm run`: train a Diffusion-LM on E2E, a content classifier on its latents, then
// compare classifier-guided with unguided sampling on exact-match control success; writes
// results.json, table.txt, samples.txt, control.svg, the model (safetensors) and its vocabulary.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { flagInt, flagList, flagNumber, flagPositive, flagString, MAX_SEED, parseVerb, UsageError, type Command } from '../../cli/args.js';
import { saveCheckpoint } from '../../nn/checkpoint.js';
import type { VegaLiteSpec } from '../../plot/vegalite.js';
import { acceptanceLines, prepareRunDir, pct, writeRun } from '../report.js';
import { DEFAULT_EXPERIMENT, runExperiment, type ExperimentConfig, type ExperimentResult } from './experiment.js';

const D = DEFAULT_EXPERIMENT;
const HELP = `usage: kiln diffusion-lm run [options]

Diffusion-LM (Li et al., arXiv 2205.14217) at small scale on the E2E restaurant corpus: a continuous
diffusion over learned ${D.model.embedDim}-d word embeddings (sqrt noise schedule, ${D.model.diffusionSteps} steps), trained end to
end (x0 regression + prior + rounding), sampled with the clamping trick; then a classifier
p(field = value | x_t) on its latents guides sampling (Adagrad steps on log p(c | x_{t-1}) plus the
fluency term at every step) and is scored, as in the paper, by exact-match control success
against unguided samples. Data: valid.txt + test.txt split by meaning representation.

options:
  --data DIR            E2E folder (default: shared/data/e2e found above the working directory or kiln)
  --steps N             diffusion-LM training steps (default ${D.train.steps})
  --lr X                its peak learning rate (AdamW, warm-up then linear decay; default ${D.train.lr})
  --classifier-steps N  classifier training steps (default ${D.classifierTrain.steps})
  --classifier-input K  x0: the classifier reads x_t through the LM's x0 estimate (default);
                        latent: it reads x_t itself, as the paper's does
  --lm DIR              reuse the LM of an earlier run folder (its model.safetensors and vocab.json)
                        instead of training one; the data, seed and vocabulary must match
  --batch N             batch size of both (default ${D.train.batchSize})
  --seq-len N           sequence length in words; longer sentences are dropped (default ${D.seqLen})
  --sample-steps N      respaced sampling steps (default ${D.sampleSteps})
  --samples N           guided samples per target (default ${D.samplesPerTarget}; as many unguided in all)
  --targets N           at most N control targets (default all that qualify; 0 = all)
  --fields F,G          only targets of these fields (e.g. Type,food; default every field)
  --guide-steps N       Adagrad steps per denoising step (default ${D.guidance.steps})
  --step-size X         Adagrad learning rate (default ${D.guidance.stepSize})
  --fluency X           weight of the fluency term (default ${D.guidance.fluency})
  --no-clamp            sample without the clamping trick
  --teacher-steps N     training steps of the teacher GPT whose perplexity scores fluency
                        (default ${D.teacher.train.steps}; 0 = no teacher)
  --seed S              seed (default ${D.seed})
  --out DIR             run folder (default runs/diffusion-lm-<date>)
  --json                print the results as JSON instead of a table
  -h, --help            this help`;

export function formatResult(r: ExperimentResult): string {
  const c = r.config;
  const lines: string[] = [];
  lines.push(`Diffusion-LM on E2E: ${r.data.train} training / ${r.data.heldOut} held-out sentences (${r.data.trainMRs} / ${r.data.heldOutMRs} meaning representations, disjoint), ` +
    `vocabulary ${r.data.vocab}, length ${c.seqLen}`);
  const last = r.lm.history[r.lm.history.length - 1];
  lines.push(`LM: ${r.lm.params} parameters, ${r.lm.loadedFrom ? `loaded from ${r.lm.loadedFrom}` : `${c.train.steps} steps in ${r.lm.seconds.toFixed(0)} s; final train loss ${last.loss.toFixed(4)}`}; ` +
    `held-out mse ${r.lm.heldOut.mse.toFixed(4)}, rounding ${r.lm.heldOut.rounding.toFixed(4)}`);
  lines.push(`classifier (reads ${c.classifierInput === 'x0' ? "x_t through the LM's x0 estimate" : 'x_t'}; trained at t < ${c.classifierMaxT}): ${r.classifier.params} parameters, ` +
    `${c.classifierTrain.steps} steps in ${r.classifier.seconds.toFixed(0)} s; held-out field accuracy ` +
    r.classifier.heldOutAccuracy.map((a) => `t=${a.t}: ${pct(a.accuracy)}`).join(', '));
  lines.push(`sampling: ${c.sampleSteps} steps, clamping ${c.clamp ? 'on' : 'off'}; guidance ${c.guidance.steps} Adagrad steps of ${c.guidance.stepSize}, fluency ${c.guidance.fluency}; ` +
    `${c.samplesPerTarget} guided samples per target, ${r.targets.length * c.samplesPerTarget} unguided`);
  lines.push('', `exact-match control success (value's words in the sample)`);
  lines.push(`${'target'.padEnd(34)}${'guided'.padStart(9)}${'unguided'.padStart(10)}${'clf agrees'.padStart(12)}`);
  for (const t of r.targets) lines.push(`${t.target.padEnd(34)}${pct(t.guided).padStart(9)}${pct(t.unguided).padStart(10)}${pct(t.classifierAgreement).padStart(12)}`);
  lines.push(`${'mean over targets'.padEnd(34)}${pct(r.summary.guided).padStart(9)}${pct(r.summary.unguided).padStart(10)}`);
  lines.push(`guided better on ${r.summary.better}, tied on ${r.summary.ties}, worse on ${r.summary.worse} of ${r.summary.targets} targets ` +
    `(${c.samplesPerTarget} guided samples each against ${r.targets.length * c.samplesPerTarget} unguided)`);
  const f = r.fluency;
  lines.push(`fluency proxy (bigrams never seen in training): guided ${pct(f.unseenBigramRate.guided)}, unguided ${pct(f.unseenBigramRate.unguided)}, held-out human text ${pct(f.unseenBigramRate.heldOutText)}; ` +
    `mean length ${f.meanLength.guided.toFixed(1)} / ${f.meanLength.unguided.toFixed(1)} / ${f.meanLength.heldOutText.toFixed(1)} words`);
  if (f.teacherPerplexity && r.teacher)
    lines.push(`teacher perplexity (a ${r.teacher.params}-parameter GPT trained ${r.teacher.steps} steps on the training split): guided ${f.teacherPerplexity.guided.toFixed(1)}, ` +
      `unguided ${f.teacherPerplexity.unguided.toFixed(1)}, held-out human text ${f.teacherPerplexity.heldOutText.toFixed(1)}`);
  lines.push('', 'unguided samples:', ...r.unguidedExamples.slice(0, 4).map((s) => `  ${s}`));
  lines.push(...acceptanceLines(r.acceptance));
  lines.push(`\nfinished in ${r.seconds.toFixed(0)} s`);
  return lines.join('\n');
}

export function controlSpec(r: ExperimentResult): VegaLiteSpec {
  const values = r.targets.flatMap((t) => [
    { target: t.target, sampling: 'guided', success: t.guided },
    { target: t.target, sampling: 'unguided', success: t.unguided },
  ]);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `Diffusion-LM control success on E2E (${r.config.samplesPerTarget} guided samples per target)`,
    data: { values },
    mark: 'bar',
    encoding: {
      y: { field: 'target', type: 'nominal', sort: null, title: null },
      yOffset: { field: 'sampling' },
      x: { field: 'success', type: 'quantitative', title: 'exact-match success', scale: { domain: [0, 1] } },
      color: { field: 'sampling', type: 'nominal', title: null },
    },
    width: 420,
  } as VegaLiteSpec;
}

function positive(flags: Record<string, string | boolean>, name: string, dflt: number, max?: number): number {
  return flagInt(flags, name, dflt, 1, max)!;
}

function nonNegative(flags: Record<string, string | boolean>, name: string, dflt: number): number {
  const v = flagNumber(flags, name, dflt)!;
  if (!(v >= 0 && Number.isFinite(v))) throw new UsageError(`--${name} must be a finite number >= 0, got ${v}`);
  return v;
}

function classifierInput(v: string): 'x0' | 'latent' {
  if (v !== 'x0' && v !== 'latent') throw new UsageError(`--classifier-input must be 'x0' or 'latent', got '${v}'`);
  return v;
}

export const command: Command = {
  name: 'diffusion-lm',
  summary: 'Diffusion-LM: continuous diffusion over word embeddings with classifier-guided control (arXiv 2205.14217)',
  async run(argv: string[]): Promise<number> {
    const flags = parseVerb(argv, { command: 'diffusion-lm', verb: 'run', help: HELP, booleans: ['no-clamp'], options: ['data', 'lm', 'classifier-input', 'steps', 'lr', 'classifier-steps', 'batch', 'seq-len', 'sample-steps', 'samples', 'targets', 'fields', 'guide-steps', 'step-size', 'fluency', 'no-clamp', 'teacher-steps', 'seed', 'out', 'json'] });
    if (typeof flags === 'number') return flags;
    const batchSize = positive(flags, 'batch', D.train.batchSize, 4096);
    const stepSize = nonNegative(flags, 'step-size', D.guidance.stepSize);
    const cfg: ExperimentConfig = {
      ...D,
      dataDir: flagString(flags, 'data') ?? D.dataDir,
      seqLen: positive(flags, 'seq-len', D.seqLen, 512),
      train: { ...D.train, steps: positive(flags, 'steps', D.train.steps), batchSize, lr: flagPositive(flags, 'lr', D.train.lr, 1) },
      classifierTrain: { ...D.classifierTrain, steps: positive(flags, 'classifier-steps', D.classifierTrain.steps), batchSize },
      sampleSteps: positive(flags, 'sample-steps', D.sampleSteps, D.model.diffusionSteps),
      samplesPerTarget: positive(flags, 'samples', D.samplesPerTarget, 1024),
      maxTargets: flagInt(flags, 'targets', D.maxTargets, 0)!,
      targetFields: flagList(flags, 'fields') ?? [],
      guidance: { steps: flagInt(flags, 'guide-steps', D.guidance.steps, 0, 100)!, stepSize, fluency: nonNegative(flags, 'fluency', D.guidance.fluency) },
      clamp: !flags['no-clamp'],
      lmFrom: flagString(flags, 'lm') ?? '',
      teacher: { ...D.teacher, train: { ...D.teacher.train, steps: flagInt(flags, 'teacher-steps', D.teacher.train.steps, 0)!, batchSize } },
      classifierInput: classifierInput(flagString(flags, 'classifier-input') ?? D.classifierInput),
      seed: flagInt(flags, 'seed', D.seed, 0, MAX_SEED - 100)!,
    };
    const out = prepareRunDir(flags, 'diffusion-lm');
    const { result, model, tok } = await runExperiment(cfg, (line) => console.error(`[diffusion-lm] ${line}`));
    mkdirSync(out, { recursive: true });
    const samples = [
      '# unguided', ...result.unguidedExamples,
      ...result.targets.flatMap((t) => [`# guided: ${t.target}`, ...t.examples]),
    ];
    writeFileSync(join(out, 'samples.txt'), samples.join('\n') + '\n');
    saveCheckpoint(join(out, 'model.safetensors'), { model, step: cfg.train.steps, config: { ...cfg.model, vocabSize: tok.vocabSize, seqLen: cfg.seqLen } });
    tok.save(join(out, 'vocab.json'));
    await writeRun(out, result, formatResult(result), { 'control.svg': controlSpec(result) }, !!flags.json, ['samples.txt', 'model.safetensors', 'vocab.json']);
    return 0;
  },
};
