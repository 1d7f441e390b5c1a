// The BIG-bench harness: tasks, prompts, models, metrics, scoring, scaling statistics.
export * from './task.js';
export * from './prompts.js';
export * from './model.js';
export * from './openai.js';
export * from './replay.js';
export * from './metrics.js';
export * from './text-metrics.js';
export * from './scoring.js';
export * from './runner.js';
export * from './emergence.js';
export { Rng, hashString } from './rng.js';
