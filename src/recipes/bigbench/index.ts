// The BIG-bench harness: tasks, prompts, models, metrics, scoring, scaling statistics.
//
// Where kiln knowingly differs from BIG-bench's own code:
//  - shuffling and shot sampling follow BIG-bench's procedure with kiln's PRNG, not numpy's
//    stream: same distribution, different concrete permutations for a given seed;
//  - target_scores keep JavaScript key order (integer-like keys first); this only changes which
//    choice wins an exact tie (tie-breaking itself is BIG-bench's sha256 rule);
//  - an endpoint that honours `stop` drops the stop string, which BIG-bench's post-processing
//    would keep; ROUGE is the mean over examples (T5 reports a bootstrap median of it);
//  - multiple_choice_grade is normalised between chance and the mean best target score (1 for
//    ordinary tasks); the Brier score between a uniform guess and 0; other metrics use
//    BIG-bench's SCORE_RANGES. Metrics kiln lacks (bleurt, ...) are skipped with a warning.
export * from './task.js';
export * from './prompts.js';
export * from './model.js';
export * from './openai.js';
export * from './replay.js';
export * from './kiln-model.js';
export * from './metrics.js';
export * from './text-metrics.js';
export * from './scoring.js';
export * from './runner.js';
export * from './emergence.js';
export { Rng, hashString } from './rng.js';
