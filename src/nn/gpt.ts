// GPT-2, read top to bottom like its block diagram: embeddings, a stack of pre-LN blocks
// (x + attn(ln1(x)), then x + mlp(ln2(x))), a final layer norm and a head. Tokens in with a tied
// LM head, or vectors in and out (linear read-in/read-out, for regression prompts as in the
// in-context-learning paper).
import { KilnError, shapeStr } from '../errors.js';
import { internal, isGradEnabled, noGrad } from '../tensor/autograd.js';
import { tidy } from '../tensor/storage.js';
import { Tensor } from '../tensor/tensor.js';
import { tensor } from '../ops/creation.js';
import { add } from '../ops/elementwise.js';
import { embedding } from '../ops/nn.js';
import { MultiheadAttention, type KVSlot } from './attention.js';
import { GPTCache } from './gpt-cache.js';
import { generate, type GenerateOptions } from './generate.js';
import { linear } from './functional.js';
import { gpt2Init } from './init.js';
import { checkConfig, Dropout, Embedding, LayerNorm, Linear, MLP, type LayerOptions } from './layers.js';
import { checkTensor } from '../ops/util.js';
import { Module } from './module.js';

export interface BlockOptions extends LayerOptions {
  dropout?: number;
  causal?: boolean;
  eps?: number;
  activation?: 'gelu' | 'gelu_tanh' | 'relu';
}

/** Pre-LN transformer block (GPT-2). */
export class TransformerBlock extends Module {
  ln1: LayerNorm;
  attn: MultiheadAttention;
  ln2: LayerNorm;
  mlp: MLP;
  constructor(nEmbd: number, nHead: number, opts: BlockOptions = {}) {
    super();
    const o = { dtype: opts.dtype, device: opts.device };
    this.ln1 = new LayerNorm(nEmbd, { ...o, eps: opts.eps });
    this.attn = new MultiheadAttention(nEmbd, nHead, { ...o, causal: opts.causal ?? true, dropout: opts.dropout });
    this.ln2 = new LayerNorm(nEmbd, { ...o, eps: opts.eps });
    this.mlp = new MLP(nEmbd, { ...o, activation: opts.activation ?? 'gelu_tanh', dropout: opts.dropout });
  }
  /** `kv`: this block's slot of a KV cache (x then holds the new positions only; see GPT#createCache). */
  forward(x: Tensor, mask?: Tensor | null, kv?: KVSlot | null): Tensor {
    const h1 = internal(this.ln1.forward(x));
    const a = internal(this.attn.forward(h1, null, mask, kv));
    const x1 = internal(add(x, a));
    const h2 = internal(this.ln2.forward(x1));
    return add(x1, internal(this.mlp.forward(h2)));
  }
}

export interface GPTConfig {
  nLayer: number;
  nHead: number;
  nEmbd: number;
  blockSize: number;
  /** Token mode: vocabulary size (input int32 [B, T], output logits [B, T, vocabSize]). */
  vocabSize?: number;
  /** Vector mode: input float [B, T, inputDim], output [B, T, outputDim]. */
  inputDim?: number;
  outputDim?: number;
  dropout?: number;
  /** Tie the LM head to the token embedding (token mode; default true). */
  tieWeights?: boolean;
  /** Apply GPT-2 initialisation (default true). */
  init?: boolean;
  dtype?: LayerOptions['dtype'];
  device?: LayerOptions['device'];
}

export interface GPTForwardOptions {
  /**
   * A KV cache from this model's createCache(). The input then holds each row's new positions
   * only (at most blockSize): they run at the row's next positions, attending to the row's cached
   * keys and values and to each other causally, and are appended to the cache; the output at a
   * new position equals the uncached forward's over the row's whole sequence. A row that would
   * pass blockSize is rebuilt from its last blockSize inputs at positions 0 .. blockSize - 1 (the
   * learned position embeddings are absolute), which is the uncached forward over the sequence
   * cropped from the left, so its later positions cost a whole window each. Under kiln.noGrad only.
   */
  cache?: GPTCache | null;
  /**
   * With a cache: per row, how many of the input's T positions are real (right padding after
   * them); default T for every row. Outputs at padded positions are unspecified. A row may add 0.
   */
  lengths?: ArrayLike<number> | null;
}

/** The first module that would apply dropout (training mode, p > 0), by name, or null. */
export function activeDropout(model: Module): string | null {
  for (const [name, m] of model.namedModules()) {
    if (!m.training) continue;
    if (m instanceof Dropout && m.p > 0) return `${name || 'the model'} (Dropout p = ${m.p})`;
    if (m instanceof MultiheadAttention && m.attnDropout > 0) return `${name} (attention dropout ${m.attnDropout})`;
  }
  return null;
}

export class GPT extends Module {
  readonly config: Required<Pick<GPTConfig, 'nLayer' | 'nHead' | 'nEmbd' | 'blockSize'>> & GPTConfig;
  wte: Embedding | null = null;
  readIn: Linear | null = null;
  wpe: Embedding;
  drop: Dropout;
  h: TransformerBlock[];
  lnF: LayerNorm;
  lmHead: Linear | null = null;
  readOut: Linear | null = null;

  constructor(config: GPTConfig) {
    super();
    const { nLayer, nHead, nEmbd, blockSize, vocabSize, inputDim, outputDim } = checkConfig('GPT', config, []);
    for (const [k, v] of Object.entries({ nLayer, nHead, nEmbd, blockSize }))
      if (!Number.isInteger(v) || v < 1) throw new KilnError('INVALID_ARGUMENT', `GPT: ${k} must be a positive integer, got ${v}`);
    if ((vocabSize === undefined) === (inputDim === undefined))
      throw new KilnError('INVALID_ARGUMENT', 'GPT: give either vocabSize (tokens) or inputDim (vectors)');
    this.config = { ...config };
    const o = { dtype: config.dtype, device: config.device };
    if (vocabSize !== undefined) this.wte = new Embedding(vocabSize, nEmbd, o);
    else this.readIn = new Linear(inputDim!, nEmbd, o);
    this.wpe = new Embedding(blockSize, nEmbd, o);
    this.drop = new Dropout(config.dropout ?? 0);
    this.h = Array.from({ length: nLayer }, () => new TransformerBlock(nEmbd, nHead, { ...o, dropout: config.dropout }));
    this.lnF = new LayerNorm(nEmbd, o);
    if (vocabSize !== undefined) {
      if (config.tieWeights === false) this.lmHead = new Linear(nEmbd, vocabSize, { ...o, bias: false });
    } else this.readOut = new Linear(nEmbd, outputDim ?? 1, o);
    if (config.init !== false) gpt2Init(this);
  }

  /**
   * A key/value cache for incremental decoding: `hidden(x, { cache })` / `forward(x, { cache })`
   * then run only the new positions, attending to the cached keys and values of the earlier ones
   * (see GPTForwardOptions). Only under kiln.noGrad and without active dropout (eval mode, or
   * dropout 0); a cache serves this model only and holds a fixed number of rows (selectRows
   * changes it). Dispose it when done (or `using`); the model's weights must not change while it
   * is in use.
   */
  createCache(): GPTCache {
    return new GPTCache(this, this.config.nLayer, this.config.blockSize);
  }

  private checkInput(input: Tensor): void {
    if (this.wte) {
      if (input.ndim !== 2 || input.dtype !== 'int32')
        throw new KilnError('SHAPE_MISMATCH', `GPT: token input must be int32 [B, T], got ${input.dtype} ${shapeStr(input.shape)}`);
    } else if (input.ndim !== 3 || input.shape[2] !== this.config.inputDim)
      throw new KilnError('SHAPE_MISMATCH', `GPT: vector input must be [B, T, ${this.config.inputDim}], got ${shapeStr(input.shape)}`);
  }

  private embedInput(input: Tensor): Tensor {
    this.checkInput(input);
    return this.wte ? this.wte.forward(input) : this.readIn!.forward(input);
  }

  /** The final hidden states [B, T, nEmbd] (with a cache: of the new positions; see GPTForwardOptions). */
  hidden(input: Tensor, opts?: GPTForwardOptions): Tensor {
    checkTensor('GPT', input, 'input');
    if (opts?.cache != null) return this.hiddenCached(input, opts.cache, opts.lengths);
    if (opts?.lengths != null) throw new KilnError('INVALID_ARGUMENT', `GPT: lengths are for cached decoding (give a cache too); input ${shapeStr(input.shape)}`);
    const T = input.shape[1];
    if (T > this.config.blockSize)
      throw new KilnError('SHAPE_MISMATCH', `GPT: sequence length ${T} exceeds blockSize ${this.config.blockSize}`);
    let x = this.embedInput(input);
    const pos = this.wpe.positions(T);
    x = this.drop.forward(add(x, pos));
    for (const block of this.h) x = block.forward(x);
    return this.lnF.forward(x);
  }

  private hiddenCached(input: Tensor, cache: GPTCache, lengths: ArrayLike<number> | null | undefined): Tensor {
    const op = 'GPT (KV cache)';
    if (!(cache instanceof GPTCache)) throw new KilnError('INVALID_ARGUMENT', `${op}: cache must come from model.createCache()`);
    const w = this.wpe.weight;
    cache.check(op, this, this.h.length, w.dtype, w.device);
    if (isGradEnabled())
      throw new KilnError('INVALID_ARGUMENT',
        `${op}: runs under kiln.noGrad only (the cached keys and values are reused across calls, so no graph spans them); input ${shapeStr(input.shape)}`);
    const drop = activeDropout(this);
    if (drop) throw new KilnError('INVALID_ARGUMENT', `${op}: ${drop} would drop in training mode, so cached keys would not match a recomputation; call model.eval()`);
    this.checkInput(input);
    const [B, T] = input.shape;
    const N = this.config.blockSize;
    if (B < 1 || T < 1 || T > N)
      throw new KilnError('SHAPE_MISMATCH', `${op}: input ${shapeStr(input.shape)} must have at least one row and 1 to blockSize ${N} new positions`);
    let lens: number[];
    if (lengths == null) lens = new Array<number>(B).fill(T);
    else {
      lens = Array.from(lengths as ArrayLike<number>);
      if (lens.length !== B || lens.some((m) => !Number.isInteger(m) || m < 0 || m > T))
        throw new KilnError('INVALID_ARGUMENT', `${op}: lengths [${lens.join(', ')}] must be ${B} integers in [0, ${T}] for input ${shapeStr(input.shape)}`);
    }
    const data = input.dataSync();
    const plan = cache.plan(op, data, input.shape, lens, this.wte ? 0 : this.config.inputDim!);
    const Tn = plan.width, L = plan.keysBefore, dev = w.device;
    try {
      const out = noGrad(() => tidy(() => {
        const x0 = plan.input ? tensor(plan.input, { dtype: input.dtype, device: input.device, shape: this.wte ? [B, Tn] : [B, Tn, this.config.inputDim!] }) : input;
        const pos = this.wpe.forward(tensor(plan.positions, { dtype: 'int32', device: dev, shape: [B, Tn] }));
        let x = this.drop.forward(add(this.embedInput(x0), pos));
        const mask = plan.hide ? tensor(plan.hide, { dtype: 'int32', device: dev, shape: [B, 1, 1, L + Tn] }) : null;
        this.h.forEach((block, i) => { x = block.forward(x, mask, plan.slots[i]); });
        const h = this.lnF.forward(x);
        if (!plan.gather) return h;
        // Rebuilt rows ran over their whole window: read each row's new positions back out.
        const C = h.shape[2];
        return embedding(h.reshape([B * Tn, C]), tensor(plan.gather, { dtype: 'int32', device: dev, shape: [B, T] }));
      }));
      cache.commit(plan, w.dtype, w.device);
      return out;
    } catch (e) {
      cache.abort(plan);
      throw e;
    }
  }

  /**
   * Continues each prompt (token ids) by up to opts.maxNewTokens tokens on a KV cache: greedy by
   * default, or sampled with temperature / topK / topP from a seeded Philox stream per prompt; returns
   * the new tokens per prompt (see nn.generate).
   */
  generate(prompts: readonly ArrayLike<number>[], opts: GenerateOptions): number[][] {
    return generate(this, prompts, opts);
  }

  /** Logits [B, T, vocabSize] (tokens) or predictions [B, T, outputDim] (vectors). */
  forward(input: Tensor, opts?: GPTForwardOptions): Tensor {
    const x = this.hidden(input, opts);
    if (this.readOut) return this.readOut.forward(x);
    return linear(x, this.lmHead ? this.lmHead.weight : this.wte!.weight);
  }
}
