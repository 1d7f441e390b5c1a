// Bidirectional encoder (with a timestep-embedding hook for diffusion denoisers), a small Vision
// Transformer, and an encoder-decoder Seq2Seq with cross-attention. All pre-LN, GPT-2 initialised.
import { KilnError, shapeStr } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import { arange, zeros } from '../ops/creation.js';
import { add, cos, exp, mul, sin } from '../ops/elementwise.js';
import { concat } from '../ops/views.js';
import { isGradEnabled, noGrad } from '../tensor/autograd.js';
import { tidy } from '../tensor/storage.js';
import { embedding } from '../ops/nn.js';
import { MultiheadAttention, type KVSlot } from './attention.js';
import { activeDropout, TransformerBlock, type BlockOptions } from './gpt.js';
import { gpt2Init } from './init.js';
import { checkConfig, checkDim, Embedding, LayerNorm, Linear, MLP, type LayerOptions } from './layers.js';
import { checkTensor } from '../ops/util.js';
import { Module, parameter } from './module.js';

/** Sinusoidal embedding of (float) timesteps t [B] -> [B, dim] (sin half, then cos half). */
export function timestepEmbedding(t: Tensor, dim: number, maxPeriod = 10000): Tensor {
  checkTensor('timestepEmbedding', t, 't');
  checkDim('timestepEmbedding', 'dim', dim);
  if (!(maxPeriod > 0 && Number.isFinite(maxPeriod)))
    throw new KilnError('INVALID_ARGUMENT', `timestepEmbedding: maxPeriod must be a positive number, got ${maxPeriod}`);
  if (t.ndim !== 1) throw new KilnError('SHAPE_MISMATCH', `timestepEmbedding: t must be [B], got ${shapeStr(t.shape)}`);
  const half = Math.floor(dim / 2);
  const freqs = exp(mul(arange(0, half, 1, { dtype: t.dtype === 'float64' ? 'float64' : 'float32', device: t.device }), -Math.log(maxPeriod) / half));
  const args = mul(t.reshape([-1, 1]).to(freqs.dtype), freqs.reshape([1, half]));
  const e = concat([sin(args), cos(args)], 1);
  return dim % 2 ? concat([e, zeros([t.shape[0], 1], { dtype: e.dtype, device: e.device })], 1) : e;
}

export interface EncoderConfig {
  nLayer: number;
  nHead: number;
  nEmbd: number;
  /** Longest sequence (learned position embeddings). */
  maxLen: number;
  /** Token input, or vector input of inputDim; output is the hidden state, or a linear read-out of outputDim. */
  vocabSize?: number;
  inputDim?: number;
  outputDim?: number;
  /** Adds an MLP of the sinusoidal embedding of a timestep t [B] to every position (diffusion denoisers). */
  timestep?: boolean;
  dropout?: number;
  dtype?: LayerOptions['dtype'];
  device?: LayerOptions['device'];
}

/** Bidirectional transformer encoder. */
export class TransformerEncoder extends Module {
  wte: Embedding | null = null;
  readIn: Linear | null = null;
  wpe: Embedding;
  timeMlp: MLP | null = null;
  h: TransformerBlock[];
  lnF: LayerNorm;
  readOut: Linear | null = null;
  constructor(readonly config: EncoderConfig) {
    super();
    const { nLayer, nHead, nEmbd, maxLen } = checkConfig('TransformerEncoder', config, ['nLayer', 'nHead', 'nEmbd', 'maxLen']);
    const o = { dtype: config.dtype, device: config.device };
    if ((config.vocabSize === undefined) === (config.inputDim === undefined))
      throw new KilnError('INVALID_ARGUMENT', 'TransformerEncoder: give either vocabSize or inputDim');
    if (config.vocabSize !== undefined) this.wte = new Embedding(config.vocabSize, nEmbd, o);
    else this.readIn = new Linear(config.inputDim!, nEmbd, o);
    this.wpe = new Embedding(maxLen, nEmbd, o);
    if (config.timestep) this.timeMlp = new MLP(nEmbd, { ...o, activation: 'gelu' });
    const bo: BlockOptions = { ...o, causal: false, dropout: config.dropout };
    this.h = Array.from({ length: nLayer }, () => new TransformerBlock(nEmbd, nHead, bo));
    this.lnF = new LayerNorm(nEmbd, o);
    if (config.outputDim !== undefined) this.readOut = new Linear(nEmbd, config.outputDim, o);
    gpt2Init(this, { nLayer });
  }

  /**
   * x: int32 [B, T] or float [B, T, inputDim]; t: timesteps [B] or [1] (needs `timestep`); cond: an extra
   * [B, nEmbd] vector added to every position; mask: nonzero = hidden, broadcastable to [B, H, T, T].
   */
  forward(x: Tensor, opts: { t?: Tensor; cond?: Tensor; mask?: Tensor } = {}): Tensor {
    checkTensor('TransformerEncoder', x, 'input');
    opts ??= {};
    const { inputDim, nEmbd } = this.config;
    if (this.wte ? x.ndim !== 2 || x.dtype !== 'int32' : x.ndim !== 3 || x.shape[2] !== inputDim)
      throw new KilnError('SHAPE_MISMATCH', `TransformerEncoder: input must be ${this.wte ? 'int32 [B, T]' : `[B, T, ${inputDim}]`}, got ${x.dtype} ${shapeStr(x.shape)}`);
    const [B, T] = x.shape;
    if (T > this.config.maxLen) throw new KilnError('SHAPE_MISMATCH', `TransformerEncoder: length ${T} exceeds maxLen ${this.config.maxLen}`);
    // t broadcasts over the batch only from [1]: a longer t would grow the output's batch.
    if (opts.t && (checkTensor('TransformerEncoder', opts.t, 't').ndim !== 1 || (opts.t.shape[0] !== B && opts.t.shape[0] !== 1)))
      throw new KilnError('SHAPE_MISMATCH', `TransformerEncoder: t ${shapeStr(opts.t.shape)} for input ${shapeStr(x.shape)}, want [${B}] (or [1] for the whole batch)`);
    if (opts.cond && (checkTensor('TransformerEncoder', opts.cond, 'cond').ndim !== 2 || opts.cond.shape[0] !== B || opts.cond.shape[1] !== nEmbd))
      throw new KilnError('SHAPE_MISMATCH', `TransformerEncoder: cond ${shapeStr(opts.cond.shape)} for input ${shapeStr(x.shape)}, want [${B}, ${nEmbd}]`);
    let h = this.wte ? this.wte.forward(x) : this.readIn!.forward(x);
    h = add(h, this.wpe.positions(T));
    if (opts.t) {
      if (!this.timeMlp) throw new KilnError('INVALID_ARGUMENT', 'TransformerEncoder: built without timestep: true');
      // A float64 model embeds its timesteps in float64 (timestepEmbedding takes int32 ones in float32).
      const te = this.timeMlp.forward(timestepEmbedding(h.dtype === 'float64' ? opts.t.to('float64') : opts.t, this.config.nEmbd).to(h.dtype));
      h = add(h, te.unsqueeze(1));
    }
    if (opts.cond) h = add(h, opts.cond.unsqueeze(1));
    for (const b of this.h) h = b.forward(h, opts.mask);
    h = this.lnF.forward(h);
    return this.readOut ? this.readOut.forward(h) : h;
  }
}

export interface ViTConfig {
  imageSize: number;
  patchSize: number;
  channels: number;
  numClasses: number;
  nLayer: number;
  nHead: number;
  nEmbd: number;
  dtype?: LayerOptions['dtype'];
  device?: LayerOptions['device'];
}

/** Vision Transformer: non-overlapping patches -> linear embedding, a class token, encoder, head. */
export class ViT extends Module {
  patchEmbed: Linear;
  clsToken: Tensor;
  wpe: Embedding;
  h: TransformerBlock[];
  lnF: LayerNorm;
  head: Linear;
  readonly nPatches: number;
  constructor(readonly config: ViTConfig) {
    super();
    const { imageSize: S, patchSize: P, channels: C, nEmbd } = checkConfig('ViT', config,
      ['imageSize', 'patchSize', 'channels', 'numClasses', 'nLayer', 'nHead', 'nEmbd']);
    if (S % P !== 0) throw new KilnError('INVALID_ARGUMENT', `ViT: imageSize ${S} is not a multiple of patchSize ${P}`);
    const o = { dtype: config.dtype, device: config.device };
    this.nPatches = (S / P) ** 2;
    this.patchEmbed = new Linear(C * P * P, nEmbd, o);
    this.clsToken = parameter(zeros([1, 1, nEmbd], o));
    this.wpe = new Embedding(this.nPatches + 1, nEmbd, o);
    this.h = Array.from({ length: config.nLayer }, () => new TransformerBlock(nEmbd, config.nHead, { ...o, causal: false, activation: 'gelu' }));
    this.lnF = new LayerNorm(nEmbd, o);
    this.head = new Linear(nEmbd, config.numClasses, o);
    gpt2Init(this, { nLayer: config.nLayer });
  }

  /** images [B, C, H, W] -> patches [B, N, C*P*P] (each patch flattened channel-major). */
  patchify(x: Tensor): Tensor {
    checkTensor('ViT', x, 'images');
    const { imageSize: S, patchSize: P, channels: C } = this.config;
    if (x.ndim !== 4 || x.shape[1] !== C || x.shape[2] !== S || x.shape[3] !== S)
      throw new KilnError('SHAPE_MISMATCH', `ViT: images must be [B, ${C}, ${S}, ${S}], got ${shapeStr(x.shape)}`);
    const B = x.shape[0], g = S / P;
    return x.reshape([B, C, g, P, g, P]).permute([0, 2, 4, 1, 3, 5]).reshape([B, g * g, C * P * P]);
  }

  /** Class logits [B, numClasses]; `features` returns the class token's final state instead. */
  forward(x: Tensor, features = false): Tensor {
    let h = this.patchEmbed.forward(this.patchify(x));
    const B = x.shape[0];
    h = concat([this.clsToken.expand([B, 1, this.config.nEmbd]), h], 1);
    h = add(h, this.wpe.positions(this.nPatches + 1));
    for (const b of this.h) h = b.forward(h);
    const cls = this.lnF.forward(h).narrow(1, 0, 1).squeeze(1);
    return features ? cls : this.head.forward(cls);
  }
}

/** Decoder block: causal self-attention, cross-attention to the encoder memory, MLP (all pre-LN). */
export class DecoderBlock extends Module {
  ln1: LayerNorm;
  selfAttn: MultiheadAttention;
  ln2: LayerNorm;
  crossAttn: MultiheadAttention;
  ln3: LayerNorm;
  mlp: MLP;
  constructor(nEmbd: number, nHead: number, opts: LayerOptions & { dropout?: number } = {}) {
    super();
    const o = { dtype: opts.dtype, device: opts.device };
    this.ln1 = new LayerNorm(nEmbd, o);
    this.selfAttn = new MultiheadAttention(nEmbd, nHead, { ...o, causal: true, dropout: opts.dropout });
    this.ln2 = new LayerNorm(nEmbd, o);
    this.crossAttn = new MultiheadAttention(nEmbd, nHead, { ...o, cross: true, dropout: opts.dropout });
    this.ln3 = new LayerNorm(nEmbd, o);
    this.mlp = new MLP(nEmbd, { ...o, activation: 'gelu_tanh', dropout: opts.dropout });
  }
  /** `kv`: this block's slot of a Seq2SeqCache (x then holds the new target positions only). */
  forward(x: Tensor, memory: Tensor, memoryMask?: Tensor | null, kv?: KVSlot | null): Tensor {
    x = add(x, this.selfAttn.forward(this.ln1.forward(x), null, null, kv));
    x = add(x, this.crossAttn.forward(this.ln2.forward(x), memory, memoryMask));
    return add(x, this.mlp.forward(this.ln3.forward(x)));
  }
}

export interface Seq2SeqConfig {
  srcVocabSize: number;
  tgtVocabSize: number;
  nLayer: number;
  nHead: number;
  nEmbd: number;
  maxLen: number;
  /** One token embedding for the encoder input, the decoder input and the output projection, as in T5 (needs srcVocabSize === tgtVocabSize). */
  shareEmbeddings?: boolean;
  dropout?: number;
  dtype?: LayerOptions['dtype'];
  device?: LayerOptions['device'];
}

/** Encoder-decoder transformer; the output projection is tied to the target embedding. */
export class Seq2Seq extends Module {
  encoder: TransformerEncoder;
  tgtEmbed: Embedding;
  tgtPos: Embedding;
  decoder: DecoderBlock[];
  lnF: LayerNorm;
  constructor(readonly config: Seq2SeqConfig) {
    super();
    const { nLayer, nHead, nEmbd, maxLen } = checkConfig('Seq2Seq', config, ['srcVocabSize', 'tgtVocabSize', 'nLayer', 'nHead', 'nEmbd', 'maxLen']);
    const o = { dtype: config.dtype, device: config.device };
    this.encoder = new TransformerEncoder({ nLayer, nHead, nEmbd, maxLen, vocabSize: config.srcVocabSize, dropout: config.dropout, dtype: config.dtype, device: config.device });
    this.tgtEmbed = new Embedding(config.tgtVocabSize, nEmbd, o);
    if (config.shareEmbeddings) {
      if (config.srcVocabSize !== config.tgtVocabSize)
        throw new KilnError('INVALID_ARGUMENT', `Seq2Seq: shareEmbeddings needs srcVocabSize === tgtVocabSize, got ${config.srcVocabSize} and ${config.tgtVocabSize}`);
      const own = this.tgtEmbed.weight;
      this.tgtEmbed.weight = this.encoder.wte!.weight;
      own.dispose();
    }
    this.tgtPos = new Embedding(maxLen, nEmbd, o);
    this.decoder = Array.from({ length: nLayer }, () => new DecoderBlock(nEmbd, nHead, { ...o, dropout: config.dropout }));
    this.lnF = new LayerNorm(nEmbd, o);
    gpt2Init(this, { nLayer: 2 * nLayer });
  }
  encode(src: Tensor, srcMask?: Tensor): Tensor {
    return this.encoder.forward(src, { mask: srcMask });
  }
  /** Logits [B, T, tgtVocabSize] for target prefix tgt [B, T] given the encoder memory. */
  decode(tgt: Tensor, memory: Tensor, memoryMask?: Tensor | null): Tensor {
    checkTensor('Seq2Seq', tgt, 'target');
    checkTensor('Seq2Seq', memory, 'memory');
    if (tgt.ndim !== 2 || tgt.dtype !== 'int32')
      throw new KilnError('SHAPE_MISMATCH', `Seq2Seq: target must be int32 [B, T], got ${tgt.dtype} ${shapeStr(tgt.shape)}`);
    const T = tgt.shape[1];
    if (T > this.config.maxLen) throw new KilnError('SHAPE_MISMATCH', `Seq2Seq: target length ${T} exceeds maxLen ${this.config.maxLen}`);
    let h = add(this.tgtEmbed.forward(tgt), this.tgtPos.positions(T));
    for (const b of this.decoder) h = b.forward(h, memory, memoryMask);
    h = this.lnF.forward(h);
    return h.matmul(this.tgtEmbed.weight.transpose(0, 1));
  }
  forward(src: Tensor, tgt: Tensor): Tensor {
    return this.decode(tgt, this.encode(src));
  }

  /** A key/value cache for incremental decoding with decodeCached (eval mode, under kiln.noGrad). */
  createCache(): Seq2SeqCache {
    return new Seq2SeqCache(this.decoder.length, this.config.maxLen);
  }

  /**
   * Logits [B, T, tgtVocabSize] for the next T target tokens [B, T], which run at positions
   * cache.length .. cache.length + T - 1 and attend to the cached keys and values of the earlier
   * ones (all rows advance together); the same numbers as decode() over the whole prefix. The
   * new positions are appended to the cache; a call that fails leaves it as it was.
   */
  decodeCached(tgt: Tensor, memory: Tensor, memoryMask: Tensor | null | undefined, cache: Seq2SeqCache): Tensor {
    const op = 'Seq2Seq (KV cache)';
    if (!(cache instanceof Seq2SeqCache) || cache.slots.length !== this.decoder.length || cache.isDisposed)
      throw new KilnError('INVALID_ARGUMENT', `${op}: cache must be a live one from this model's createCache()`);
    if (isGradEnabled())
      throw new KilnError('INVALID_ARGUMENT', `${op}: runs under kiln.noGrad only (the cached keys and values are reused across calls)`);
    const drop = activeDropout(this);
    if (drop) throw new KilnError('INVALID_ARGUMENT', `${op}: ${drop} would drop in training mode; call model.eval()`);
    checkTensor('Seq2Seq', tgt, 'target');
    checkTensor('Seq2Seq', memory, 'memory');
    if (tgt.ndim !== 2 || tgt.dtype !== 'int32' || tgt.shape[1] < 1)
      throw new KilnError('SHAPE_MISMATCH', `${op}: target must be int32 [B, T] with T >= 1, got ${tgt.dtype} ${shapeStr(tgt.shape)}`);
    const [B, T] = tgt.shape, L = cache.length;
    if (cache.batchSize !== null && cache.batchSize !== B)
      throw new KilnError('SHAPE_MISMATCH', `${op}: the cache holds ${cache.batchSize} rows, target ${shapeStr(tgt.shape)}`);
    if (L + T > this.config.maxLen)
      throw new KilnError('SHAPE_MISMATCH', `${op}: positions ${L} .. ${L + T - 1} exceed maxLen ${this.config.maxLen}`);
    try {
      const out = noGrad(() => tidy(() => {
        const pos = embedding(this.tgtPos.weight, arange(L, L + T, 1, { device: this.tgtPos.weight.device }));
        let h = add(this.tgtEmbed.forward(tgt), pos);
        this.decoder.forEach((b, i) => { h = b.forward(h, memory, memoryMask, cache.slots[i]); });
        return this.lnF.forward(h).matmul(this.tgtEmbed.weight.transpose(0, 1));
      }));
      cache.commit(B, T);
      return out;
    } catch (e) {
      cache.abort();
      throw e;
    }
  }
}

/**
 * The decoder self-attention's keys and values per layer for Seq2Seq#decodeCached: capacity
 * buffers of maxLen positions made on the first call, written in place after that.
 */
export class Seq2SeqCache {
  readonly slots: KVSlot[];
  /** Target positions cached so far. */
  length = 0;
  /** Rows, fixed by the first call (null before it). */
  batchSize: number | null = null;
  isDisposed = false;
  constructor(nLayer: number, capacity: number) {
    this.slots = Array.from({ length: nLayer }, () => ({ k: null, v: null, length: 0, growTo: capacity, nextK: null, nextV: null }));
  }
  /** The model's side: the call's new buffers (if any) become the cache's, and its T positions count. */
  commit(B: number, T: number): void {
    for (const s of this.slots) {
      if (s.nextK && s.nextK !== s.k) {
        s.k?.dispose();
        s.v?.dispose();
        s.k = s.nextK;
        s.v = s.nextV;
      }
      s.nextK = s.nextV = null;
      s.length = this.length + T;
    }
    this.length += T;
    this.batchSize = B;
  }
  /** The model's side: frees buffers a failed call made. */
  abort(): void {
    for (const s of this.slots) {
      if (s.nextK && s.nextK !== s.k) s.nextK.dispose();
      if (s.nextV && s.nextV !== s.v) s.nextV.dispose();
      s.nextK = s.nextV = null;
    }
  }
  dispose(): void {
    for (const s of this.slots) {
      s.k?.dispose();
      s.v?.dispose();
      s.k = s.v = null;
    }
    this.isDisposed = true;
  }
}
