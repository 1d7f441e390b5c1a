// `kiln serve` as a library: the HTTP server, its model worker, and the completions, sampling
// and decoding it is built on (usable in-process without the server).
export { startServer, type KilnServer, type ServeOptions } from './server.js';
export { ModelWorker, type ModelInfo, type Outcome, type WorkerConfig } from './model-worker.js';
export { KilnCompleter, PromptError, type CompletionChoice, type CompletionJob, type CompletionResult, type ChoiceLogprobs } from './completions.js';
export { ApiError, DEFAULT_LIMITS, parseCompletionRequest, completionResponse, type ServeLimits } from './protocol.js';
export { decodeRows, scorePromptTokens, type DecodeRow, type DecodedRow, type ScoredTokens } from './decode.js';
export { argmaxFirst, logSoftmax64, nucleus, sampleToken, topLogprobs, type TokenLogprob } from './sampling.js';
export { philox4x32_10, seedKey, uniformAt } from './philox.js';
