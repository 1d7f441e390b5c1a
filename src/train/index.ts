// kiln.train: the training loop, data utilities and tokenizers.
export { Trainer } from './trainer.js';
export type { TrainerOptions, FitResult, StepRecord } from './trainer.js';
export { seededRandom, shuffledIndices, BatchSampler, gatherRows, ArrayDataLoader, TokenWindowLoader } from './data.js';
export type { SamplerOptions } from './data.js';
export { CharTokenizer, WordTokenizer, SPECIALS } from './tokenizer.js';
export type { Tokenizer } from './tokenizer.js';
