// From per-example outputs to BIG-bench's scores: each metric per (subtask, shots), the preferred
// score normalised as 100·(s − low)/(high − low) with chance as `low`, and the normalised
// aggregate averaged over subtasks (per task) and then over tasks.
import {
  brierScore, chanceBrierScore, chanceMultipleChoiceGrade, exactStrMatch, expectedCalibrationError,
  logLikelihood, multipleChoiceGrade, normalizeLogProbs, type ChoiceRecord,
} from './metrics.js';
import { corpusBleu, corpusRouge } from './text-metrics.js';
import type { MetricName } from './task.js';

/** What the harness records for one example at one shot count. */
export interface ExampleOutput {
  /** `examples[index]` in the task file. */
  index: number;
  prompt: string;
  targets: string[];
  shotIndices: number[];
  /** Multiple choice: choices in target_scores order, their scores, and the model's absolute log-probs. */
  choices?: string[];
  choiceScores?: number[];
  shownChoices?: string[];
  choiceLogProbs?: number[];
  /** The model's top choice (deterministic tie-breaking). */
  predictedChoice?: string;
  /** Raw generation and the post-processed response the generative metrics compare. */
  generation?: string;
  response?: string;
  /** log P(target | prompt) for each target (log_likelihood). */
  targetLogProbs?: number[];
  /** Set when this example failed; it is left out of the scores. */
  error?: string;
}

/** BIG-bench's score ranges (json_task.py SCORE_RANGES); `low` is the worst end. */
export const SCORE_RANGES: Record<string, { low: number; high: number }> = {
  exact_str_match: { low: 0, high: 1 },
  multiple_choice_grade: { low: 0, high: 1 },
  calibration_multiple_choice_brier_score: { low: 1, high: 0 },
  expected_calibration_error: { low: 1, high: 0 },
  bleu: { low: 0, high: 100 },
  rouge1: { low: 0, high: 100 },
  rouge2: { low: 0, high: 100 },
  rougeLsum: { low: 0, high: 100 },
  log_likelihood: { low: -10, high: 0 },
};

export interface ScoreSet {
  scores: Record<string, number>;
  /** Examples that produced output (failed ones are excluded from `scores`). */
  nScored: number;
}

/** Compute every metric of a (sub)task over its successful examples. */
export function computeScores(metrics: readonly MetricName[], outputs: readonly ExampleOutput[]): ScoreSet {
  const ok = outputs.filter((o) => o.error === undefined);
  const scores: Record<string, number> = {};
  const choiceRecords = (): ChoiceRecord[] => ok.map((o) => ({ choices: o.choices!, scores: o.choiceScores!, logProbs: normalizeLogProbs(o.choiceLogProbs!) }));
  for (const m of metrics) {
    switch (m) {
      case 'multiple_choice_grade': scores[m] = multipleChoiceGrade(choiceRecords()); break;
      case 'calibration_multiple_choice_brier_score': scores[m] = brierScore(choiceRecords()); break;
      case 'expected_calibration_error': scores[m] = expectedCalibrationError(choiceRecords()); break;
      case 'exact_str_match': scores[m] = exactStrMatch(ok.map((o) => o.response!), ok.map((o) => o.targets)); break;
      case 'bleu': scores[m] = ok.length ? corpusBleu(ok.map((o) => o.response!), ok.map((o) => o.targets)).score : NaN; break;
      case 'rouge': Object.assign(scores, corpusRouge(ok.map((o) => o.response!), ok.map((o) => o.targets))); break;
      case 'log_likelihood': scores[m] = logLikelihood(ok.map((o) => o.targetLogProbs!)); break;
    }
  }
  return { scores, nScored: ok.length };
}

/** The (low, high) a preferred score is normalised between: chance where chance is defined. */
export function scoreRange(score: string, outputs: readonly ExampleOutput[]): { low: number; high: number } {
  const mc = outputs.filter((o) => o.choiceScores).map((o) => ({ scores: o.choiceScores! }));
  if (score === 'multiple_choice_grade' && mc.length > 0) {
    // Chance: the expected grade of a uniform guess; best: the mean best achievable grade.
    const high = mc.reduce((s, r) => s + Math.max(...r.scores), 0) / mc.length;
    return { low: chanceMultipleChoiceGrade(mc), high };
  }
  if (score === 'calibration_multiple_choice_brier_score' && mc.length > 0) return { low: chanceBrierScore(mc), high: 0 };
  const r = SCORE_RANGES[score];
  if (!r) throw new Error(`no score range known for '${score}'`);
  return r;
}

export function normalize(s: number, low: number, high: number): number | null {
  if (!Number.isFinite(s) || high === low) return null;
  return (100 * (s - low)) / (high - low);
}

const finite = (xs: (number | null | undefined)[]): number[] => xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
export const mean = (xs: number[]): number | null => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

/** One (sub)task at one shot count, as written to the results file. */
export interface ShotResult {
  shots: number;
  scores: Record<string, number | null>;
  preferredScore: string;
  low: number | null;
  high: number | null;
  normalized: number | null;
  nExamples: number;
  nScored: number;
  nFailed: number;
  /** Why this shot count produced no scores (e.g. too few examples for the shots). */
  skipped?: string;
  examples: ExampleOutput[];
}

export function shotResult(shots: number, metrics: readonly MetricName[], preferred: string, outputs: ExampleOutput[]): ShotResult {
  const { scores, nScored } = computeScores(metrics, outputs);
  const ok = outputs.filter((o) => o.error === undefined);
  const s = scores[preferred];
  const range = nScored > 0 ? scoreRange(preferred, ok) : null;
  const clean: Record<string, number | null> = {};
  for (const [k, v] of Object.entries(scores)) clean[k] = Number.isFinite(v) ? v : null;
  return {
    shots, scores: clean, preferredScore: preferred, low: range?.low ?? null, high: range?.high ?? null,
    normalized: range && s !== undefined ? normalize(s, range.low, range.high) : null,
    nExamples: outputs.length, nScored, nFailed: outputs.length - nScored, examples: outputs,
  };
}

/** Per-task summary at one shot count: the mean over subtasks (BIG-bench's aggregation). */
export interface TaskShotSummary {
  shots: number;
  normalized: number | null;
  /** Each raw score averaged over the subtasks that have it. */
  scores: Record<string, number | null>;
  nSubtasks: number;
}

export function summarizeTask(perSubtask: readonly (readonly ShotResult[])[], shotList: readonly number[]): TaskShotSummary[] {
  return shotList.map((shots) => {
    const rows = perSubtask.map((r) => r.find((x) => x.shots === shots)).filter((x): x is ShotResult => x !== undefined);
    const names = [...new Set(rows.flatMap((r) => Object.keys(r.scores)))];
    const scores: Record<string, number | null> = {};
    for (const n of names) scores[n] = mean(finite(rows.map((r) => r.scores[n])));
    return { shots, normalized: mean(finite(rows.map((r) => r.normalized))), scores, nSubtasks: rows.filter((r) => r.normalized !== null).length };
  });
}

/** The normalised aggregate over tasks, per shot count. */
export function aggregateTasks(tasks: readonly { perShot: readonly TaskShotSummary[] }[], shotList: readonly number[]): { shots: number; normalized: number | null; nTasks: number }[] {
  return shotList.map((shots) => {
    const vals = finite(tasks.map((t) => t.perShot.find((p) => p.shots === shots)?.normalized));
    return { shots, normalized: mean(vals), nTasks: vals.length };
  });
}
