// GPT-2, read top to bottom like its block diagram: embeddings, a stack of pre-LN blocks
// (x + attn(ln1(x)), then x + mlp(ln2(x))), a final layer norm and a head. Tokens in with a tied
// LM head, or vectors in and out (linear read-in/read-out, for regression prompts as in the
// in-context-learning paper).
import { KilnError, shapeStr } from '../errors.js';
import { internal } from '../tensor/autograd.js';
import { Tensor } from '../tensor/tensor.js';
import { add } from '../ops/elementwise.js';
import { MultiheadAttention } from './attention.js';
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
  forward(x: Tensor, mask?: Tensor | null): Tensor {
    const h1 = internal(this.ln1.forward(x));
    const a = internal(this.attn.forward(h1, null, mask));
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

  /** The final hidden states [B, T, nEmbd]. */
  hidden(input: Tensor): Tensor {
    checkTensor('GPT', input, 'input');
    const T = input.shape[1];
    if (T > this.config.blockSize)
      throw new KilnError('SHAPE_MISMATCH', `GPT: sequence length ${T} exceeds blockSize ${this.config.blockSize}`);
    let x: Tensor;
    if (this.wte) {
      if (input.ndim !== 2 || input.dtype !== 'int32')
        throw new KilnError('SHAPE_MISMATCH', `GPT: token input must be int32 [B, T], got ${input.dtype} ${shapeStr(input.shape)}`);
      x = this.wte.forward(input);
    } else {
      if (input.ndim !== 3 || input.shape[2] !== this.config.inputDim)
        throw new KilnError('SHAPE_MISMATCH', `GPT: vector input must be [B, T, ${this.config.inputDim}], got ${shapeStr(input.shape)}`);
      x = this.readIn!.forward(input);
    }
    const pos = this.wpe.positions(T);
    x = this.drop.forward(add(x, pos));
    for (const block of this.h) x = block.forward(x);
    return this.lnF.forward(x);
  }

  /** Logits [B, T, vocabSize] (tokens) or predictions [B, T, outputDim] (vectors). */
  forward(input: Tensor): Tensor {
    const x = this.hidden(input);
    if (this.readOut) return this.readOut.forward(x);
    return linear(x, this.lmHead ? this.lmHead.weight : this.wte!.weight);
  }
}
