// kiln.nn: modules, layers, models and initialisers.
export { Module, parameter, buffer, isParameter, copyInto, applyModules } from './module.js';
export type { StateDict, LoadOptions } from './module.js';
export { Linear, Embedding, LayerNorm, BatchNorm1d, Dropout, GELU, ReLU, Tanh, Sequential, MLP } from './layers.js';
export { SiLU, Softplus, LogSigmoid, Mish, Identity, Flatten, RMSNorm } from './layers.js';
export type { LayerOptions, MLPOptions, Layer } from './layers.js';
export { Conv1d, Conv2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d } from './layers.js';
export { MultiheadAttention } from './attention.js';
export type { AttentionLayerOptions, KVSlot } from './attention.js';
export { TransformerBlock, GPT } from './gpt.js';
export type { GPTConfig, BlockOptions, GPTForwardOptions } from './gpt.js';
export { GPTCache } from './gpt-cache.js';
export { linear, scaledDotProductAttention, causalMask, rmsNorm } from './functional.js';
export type { AttentionOptions } from './functional.js';
export { gpt2Init, normal_, uniform_, constant_, parameterStats, reinitFromStats } from './init.js';
export type { ParamStats } from './init.js';
export { TransformerEncoder, ViT, Seq2Seq, Seq2SeqCache, DecoderBlock, timestepEmbedding } from './models.js';
export type { EncoderConfig, ViTConfig, Seq2SeqConfig } from './models.js';
export { saveCheckpoint, loadCheckpoint } from './checkpoint.js';
