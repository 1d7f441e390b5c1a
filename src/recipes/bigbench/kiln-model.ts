// The kiln language-model adapter: a `LanguageModel` backed by a token-mode kiln GPT and a kiln
// tokenizer. Greedy (argmax) decoding and exact log-probabilities from the model's own logits.
//
// On disk (`--model kiln:<path>`):
//  - `<path>` a folder holding `model.safetensors` (written by kiln.nn.saveCheckpoint, its `config`
//    the GPTConfig) and `tokenizer.json` (CharTokenizer/WordTokenizer#save); or
//  - `<path>` a checkpoint file, with `tokenizer.json` next to it.
// Where that tokenizer.json is absent, a tokenizer embedded in the checkpoint's metadata
// (`extra.tokenizer`: the tokenizer's toJSON()) is used instead.
// `saveKilnLanguageModel(dir, model, tokenizer)` writes the folder form (and embeds the tokenizer).
//
// Context handling: every forward sees at most blockSize tokens, cropped from the left. Each
// decoding step or scoring window reads the hidden states only at the positions it needs and
// applies the (tied) LM head there, so the vocabulary projection is not paid for every position.
// Decoding runs on the GPT's KV cache through `kiln serve`'s decoder (src/serve/decode.ts) at
// temperature 0: a prefill of the prompts, then one new token per row per step; a row past blockSize is rebuilt from its last blockSize tokens (kiln.nn.GPT#createCache),
// so the greedy outputs are those of the uncached decoder (`kvCache: false`), which reruns the
// window for every token.
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as kiln from '../../index.js';
import type { Tensor } from '../../index.js';
import { KilnError } from '../../errors.js';
import type { GenerateOptions, LanguageModel } from './model.js';
import { bosId, decodeRows, eosId, headWeight } from '../../serve/decode.js';

type GPT = InstanceType<typeof kiln.nn.GPT>;
type Tokenizer = kiln.train.Tokenizer;

export const MODEL_FILE = 'model.safetensors';
export const TOKENIZER_FILE = 'tokenizer.json';

export interface KilnLanguageModelOptions {
  /** Rows per forward pass (prompts while decoding, scoring windows while scoring; default 8). */
  maxBatch?: number;
  /** Name for results files (default `kiln:gpt(...)`). */
  name?: string;
  /**
   * Decode with the GPT's KV cache (default true); false reruns the whole window for every
   * generated token (the same greedy outputs, for comparison and timing).
   */
  kvCache?: boolean;
}

/** A checkpoint or tokenizer that cannot be used: missing, unreadable, or not matching each other. */
export class KilnModelLoadError extends KilnError {
  constructor(message: string) {
    super('INVALID_ARGUMENT', message);
    this.name = 'KilnModelLoadError';
  }
}

/** One row of a batched forward: input ids, and which of its positions we read. */
interface Row {
  ids: Int32Array;
  /** Positions (indices into ids) whose next-token distribution is needed. */
  positions: number[];
}

export class KilnLanguageModel implements LanguageModel {
  readonly name: string;
  readonly blockSize: number;
  readonly vocabSize: number;
  private readonly maxBatch: number;
  private readonly kvCache: boolean;

  constructor(readonly model: GPT, readonly tokenizer: Tokenizer, opts: KilnLanguageModelOptions = {}) {
    if (!(model instanceof kiln.nn.GPT)) throw new KilnError('INVALID_ARGUMENT', 'kilnLanguageModel: model must be a kiln.nn.GPT');
    const vocab = model.config.vocabSize;
    if (vocab === undefined || !model.wte)
      throw new KilnError('INVALID_ARGUMENT', 'kilnLanguageModel: the GPT is in vector mode (inputDim); a language model needs token mode (vocabSize)');
    if (tokenizer.vocabSize !== vocab)
      throw new KilnError('INVALID_ARGUMENT', `kilnLanguageModel: tokenizer vocabulary (${tokenizer.vocabSize}) does not match the GPT's vocabSize (${vocab})`);
    this.blockSize = model.config.blockSize;
    this.vocabSize = vocab;
    this.maxBatch = Math.max(1, Math.floor(opts.maxBatch ?? 8));
    this.kvCache = opts.kvCache ?? true;
    const c = model.config;
    this.name = opts.name ?? `kiln:gpt(L${c.nLayer} H${c.nHead} d${c.nEmbd} ctx${c.blockSize} V${vocab})`;
  }

  /**
   * One forward over `rows` (right-padded: causal attention means padding after a row's tokens
   * changes nothing before them); returns logits [sum of positions, V] for the requested
   * positions, row by row. Call inside tidy + noGrad.
   */
  private logitsAt(rows: Row[]): Tensor {
    const B = rows.length;
    const T = Math.max(...rows.map((r) => r.ids.length));
    if (T > this.blockSize) throw new KilnError('INTERNAL', `kilnLanguageModel: a row of ${T} tokens exceeds blockSize ${this.blockSize}`);
    const flat = new Int32Array(B * T);
    const gather: number[] = [];
    rows.forEach((r, b) => {
      flat.set(r.ids, b * T);
      for (const p of r.positions) gather.push(b * T + p);
    });
    const device = this.model.wte!.weight.device;
    const hidden = this.model.hidden(kiln.tensor(flat, { dtype: 'int32', shape: [B, T], device }));
    const E = hidden.shape[2];
    const picked = kiln.embedding(kiln.reshape(hidden, [B * T, E]), kiln.tensor(Int32Array.from(gather), { dtype: 'int32', device }));
    return kiln.nn.linear(picked, headWeight(this.model));
  }

  private withEval<T>(fn: () => T): T {
    const was = this.model.training;
    this.model.eval();
    try {
      return fn();
    } finally {
      this.model.train(was);
    }
  }

  /** The token ids of a prompt/context; an empty one becomes [BOS] when the tokenizer has one. */
  private encodeContext(text: string, what: string): Int32Array {
    const ids = this.tokenizer.encode(text);
    if (ids.length > 0) return ids;
    const bos = bosId(this.tokenizer);
    if (bos === null) throw new KilnError('INVALID_ARGUMENT', `kilnLanguageModel: empty ${what}: the tokenizer has no BOS token to condition the first token on`);
    return Int32Array.of(bos);
  }

  async generate(prompts: string[], opts: GenerateOptions): Promise<string[]> {
    const maxTokens = Math.max(0, Math.floor(opts.maxTokens));
    const stops = (opts.stop ?? []).filter((s) => s.length > 0);
    if (this.kvCache) return this.generateCached(prompts, maxTokens, stops);
    const eos = eosId(this.tokenizer);
    const out: string[] = [];
    for (let i = 0; i < prompts.length; i += this.maxBatch)
      out.push(...this.withEval(() => this.generateBatchUncached(prompts.slice(i, i + this.maxBatch), maxTokens, stops, eos)));
    return out;
  }

  /**
   * Greedy decoding with a KV cache: `kiln serve`'s decoder at temperature 0 (a prefill over each
   * prompt's last blockSize tokens, then one token per active row per step, finished rows dropped,
   * a row past blockSize rebuilt from its last blockSize tokens, which is the cropped forward the
   * uncached decoder runs). The whole generated text, stop string included.
   */
  private generateCached(prompts: string[], maxTokens: number, stops: string[]): string[] {
    const rows = prompts.map((p, i) => ({
      context: this.encodeContext(p, 'prompt'), maxTokens, temperature: 0, topP: 1, seed: 0n, stream: i, stop: stops, topK: null,
    }));
    return decodeRows(this.model, this.tokenizer, rows, { maxBatch: this.maxBatch }).map((r) => r.text);
  }

  /** Greedy decoding without a cache: every step reruns each active row's last blockSize tokens. */
  private generateBatchUncached(prompts: string[], maxTokens: number, stops: string[], eos: number | null): string[] {
    const seqs = prompts.map((p) => Array.from(this.encodeContext(p, 'prompt')));
    const generated: number[][] = prompts.map(() => []);
    const texts = prompts.map(() => '');
    const active = new Set(prompts.map((_, i) => i));
    if (maxTokens === 0) active.clear();
    for (let step = 0; step < maxTokens && active.size > 0; step++) {
      const order = [...active];
      const rows: Row[] = order.map((i) => {
        const ids = Int32Array.from(seqs[i].slice(-this.blockSize));
        return { ids, positions: [ids.length - 1] };
      });
      const next = kiln.tidy(() => kiln.noGrad(() => Array.from(kiln.argmax(this.logitsAt(rows), -1).dataSync())));
      order.forEach((i, k) => {
        const id = next[k];
        seqs[i].push(id);
        if (eos !== null && id === eos) {
          active.delete(i);
          return;
        }
        generated[i].push(id);
        texts[i] = this.tokenizer.decode(generated[i]);
        if (stops.some((s) => texts[i].includes(s))) active.delete(i);
      });
    }
    return texts;
  }

  async scoreChoices(context: string, choices: string[]): Promise<number[]> {
    const ctx = this.encodeContext(context, 'context');
    // Each choice becomes one or more windows of at most blockSize input tokens. The target at
    // position p of (context + choice) is predicted by the logits at p - 1, so a window that
    // scores up to p needs inputs up to p - 1 only. Normally one window per choice holds the whole
    // choice (context cropped from the left); a choice of blockSize tokens or more is scored in
    // several windows, later windows conditioning its first tokens on less context.
    const windows: { choice: number; row: Row; targets: number[] }[] = [];
    for (let c = 0; c < choices.length; c++) {
      const ch = this.tokenizer.encode(choices[c]);
      const full = new Int32Array(ctx.length + ch.length);
      full.set(ctx);
      full.set(ch, ctx.length);
      const first = ctx.length;
      let hi = full.length; // score targets [lo, hi)
      while (hi > first) {
        const start = Math.max(0, hi - 1 - this.blockSize);
        const lo = Math.max(start + 1, first);
        const ids = full.slice(start, hi - 1);
        const positions: number[] = [];
        const targets: number[] = [];
        for (let p = lo; p < hi; p++) {
          positions.push(p - 1 - start);
          targets.push(full[p]);
        }
        windows.push({ choice: c, row: { ids, positions }, targets });
        hi = lo;
      }
    }
    const scores = new Float64Array(choices.length);
    for (let i = 0; i < windows.length; i += this.maxBatch) {
      const batch = windows.slice(i, i + this.maxBatch);
      const logp = this.withEval(() =>
        kiln.tidy(() => kiln.noGrad(() => kiln.logSoftmax(this.logitsAt(batch.map((w) => w.row)), -1).dataSync() as Float32Array)),
      );
      let k = 0;
      for (const w of batch) for (const t of w.targets) scores[w.choice] += logp[k++ * this.vocabSize + t];
    }
    return Array.from(scores);
  }
}

/** A `LanguageModel` over an in-memory GPT (token mode) and its tokenizer. */
export function kilnLanguageModel(model: GPT, tokenizer: Tokenizer, opts: KilnLanguageModelOptions = {}): KilnLanguageModel {
  return new KilnLanguageModel(model, tokenizer, opts);
}

/** A tokenizer from its toJSON() form (CharTokenizer or WordTokenizer), checked. */
export function tokenizerFromJSON(j: unknown, source: string): Tokenizer {
  const o = j as { type?: unknown; vocab?: unknown; unk?: unknown; lowercase?: unknown } | null;
  if (!o || typeof o !== 'object' || (o.type !== 'CharTokenizer' && o.type !== 'WordTokenizer'))
    throw new KilnModelLoadError(`${source}: not a saved kiln tokenizer (want {"type": "CharTokenizer" | "WordTokenizer", "vocab": [...]})`);
  if (!Array.isArray(o.vocab) || !o.vocab.every((s) => typeof s === 'string'))
    throw new KilnModelLoadError(`${source}: tokenizer "vocab" must be an array of strings`);
  if (new Set(o.vocab).size !== o.vocab.length) throw new KilnModelLoadError(`${source}: tokenizer vocabulary has duplicate entries`);
  try {
    if (o.type === 'CharTokenizer') return new kiln.train.CharTokenizer(o.vocab as string[], typeof o.unk === 'string' ? o.unk : null);
    return new kiln.train.WordTokenizer(o.vocab as string[], o.lowercase === true);
  } catch (e) {
    throw new KilnModelLoadError(`${source}: ${(e as Error).message}`);
  }
}

function readTokenizerFile(path: string): Tokenizer {
  let j: unknown;
  try {
    j = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new KilnModelLoadError(`${path}: cannot read the tokenizer: ${(e as Error).message}`);
  }
  return tokenizerFromJSON(j, path);
}

const GPT_KEYS = ['nLayer', 'nHead', 'nEmbd', 'blockSize'] as const;

/** The GPT config in checkpoint metadata: `config` itself, or `config.gpt` / `config.model`. */
function gptConfigFrom(config: unknown, path: string): kiln.nn.GPTConfig {
  const looks = (c: any) => c && typeof c === 'object' && GPT_KEYS.every((k) => typeof c[k] === 'number');
  const c = config as any;
  const found = looks(c) ? c : looks(c?.gpt) ? c.gpt : looks(c?.model) ? c.model : null;
  if (!found)
    throw new KilnModelLoadError(
      `${path}: the checkpoint metadata holds no GPT config (saveCheckpoint's config must be the GPTConfig, or hold it as .gpt or .model, with ${GPT_KEYS.join(', ')} and vocabSize)`,
    );
  if (typeof found.vocabSize !== 'number')
    throw new KilnModelLoadError(`${path}: the GPT config has no vocabSize: a vector-mode GPT is not a language model`);
  return found as kiln.nn.GPTConfig;
}

/**
 * Loads `kiln:<path>`: a folder with model.safetensors and tokenizer.json, or a checkpoint file
 * with tokenizer.json beside it; a tokenizer embedded in the checkpoint stands in for a missing
 * tokenizer.json.
 */
export function loadKilnLanguageModel(path: string, opts: KilnLanguageModelOptions = {}): KilnLanguageModel {
  if (!existsSync(path)) throw new KilnModelLoadError(`kiln:${path}: no such file or folder (want a folder with ${MODEL_FILE} and ${TOKENIZER_FILE}, or a checkpoint file)`);
  const isDir = statSync(path).isDirectory();
  const ckpt = isDir ? join(path, MODEL_FILE) : path;
  if (!existsSync(ckpt)) throw new KilnModelLoadError(`kiln:${path}: the folder has no ${MODEL_FILE} (a checkpoint written by kiln.nn.saveCheckpoint)`);
  let loaded: ReturnType<typeof kiln.nn.loadCheckpoint>;
  try {
    // Read the metadata and tensors first; the model is built from the config, then filled.
    loaded = kiln.nn.loadCheckpoint(ckpt, { restoreRng: false });
  } catch (e) {
    throw new KilnModelLoadError(`${ckpt}: cannot read the checkpoint: ${(e as Error).message}`);
  }
  let model: GPT;
  let tokenizer: Tokenizer;
  try {
    const config = gptConfigFrom(loaded.meta.config, ckpt);
    const embedded = (loaded.meta.extra as { tokenizer?: unknown } | null | undefined)?.tokenizer;
    const tokPath = join(isDir ? path : dirname(path), TOKENIZER_FILE);
    if (existsSync(tokPath)) tokenizer = readTokenizerFile(tokPath);
    else if (embedded !== undefined) tokenizer = tokenizerFromJSON(embedded, `${ckpt} (embedded tokenizer)`);
    else throw new KilnModelLoadError(`kiln:${path}: no tokenizer: ${tokPath} is missing and the checkpoint embeds none (extra.tokenizer)`);
    if (tokenizer.vocabSize !== config.vocabSize)
      throw new KilnModelLoadError(`kiln:${path}: the tokenizer has ${tokenizer.vocabSize} tokens but the GPT's vocabSize is ${config.vocabSize}`);
    try {
      model = new kiln.nn.GPT({ ...config, init: false, dropout: 0, device: undefined });
      const own: Record<string, Tensor> = {};
      for (const [k, t] of Object.entries(loaded.tensors)) if (!k.startsWith('optimizer.')) own[k] = t;
      model.loadStateDict(own, { strict: true });
    } catch (e) {
      throw new KilnModelLoadError(`${ckpt}: the weights do not fit the GPT config in its metadata: ${(e as Error).message}`);
    }
  } finally {
    for (const t of Object.values(loaded.tensors)) t.dispose();
  }
  model.eval();
  return new KilnLanguageModel(model, tokenizer, { ...opts, name: opts.name ?? `kiln:${path}` });
}

/**
 * Writes the folder form of `kiln:<dir>`: dir/model.safetensors (the GPT config as metadata, the
 * tokenizer embedded as extra.tokenizer) and dir/tokenizer.json.
 */
export function saveKilnLanguageModel(dir: string, model: GPT, tokenizer: Tokenizer, extra: Record<string, unknown> = {}): void {
  new KilnLanguageModel(model, tokenizer); // checks token mode and matching vocabularies
  mkdirSync(dir, { recursive: true });
  const { device: _device, ...config } = model.config;
  kiln.nn.saveCheckpoint(join(dir, MODEL_FILE), { model, config, extra: { ...extra, tokenizer: tokenizer.toJSON() } });
  writeFileSync(join(dir, TOKENIZER_FILE), JSON.stringify(tokenizer.toJSON()));
}
