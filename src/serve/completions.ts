// Completions over a KilnLanguageModel, in the shape of OpenAI's /v1/completions but free of HTTP:
// prompts in, for each prompt n choices (text, finish reason, optional log-probabilities with
// their token pieces and offsets), and token counts out. The server's worker runs this; so can a
// script, in-process.
//
// Choice i * n + j is prompt i's j-th sample, drawn from random stream i * n + j of the job's
// seed, so a job's answer depends on its own fields only. At temperature 0 the n choices of a
// prompt are one greedy decode, copied. Text offsets index the choice's returned text (which
// starts with the prompt when echo is set); the returned text ends before the first stop string.
import { KilnError } from '../errors.js';
import type { KilnLanguageModel } from '../recipes/bigbench/kiln-model.js';
import { bosId, decodeRows, scorePromptTokens, type DecodedRow, type DecodeRow, type ScoredTokens } from './decode.js';
import { seedKey } from './philox.js';
import { checkSamplingParams, type TokenLogprob } from './sampling.js';
import { promptPieces, tokenName, type Pieces } from './tokens.js';

export interface CompletionJob {
  prompts: string[];
  /** Choices per prompt (>= 1). */
  n: number;
  /** Tokens to generate per choice (>= 0). */
  maxTokens: number;
  /** 0: greedy. */
  temperature: number;
  topP: number;
  stop: string[];
  /** The prompt is part of the returned text (and of the log-probabilities). */
  echo: boolean;
  /** null: no log-probabilities; k >= 0: the chosen tokens' log-probabilities and top k alternatives. */
  logprobs: number | null;
  seed: number | bigint;
}

export interface ChoiceLogprobs {
  tokens: string[];
  tokenLogprobs: (number | null)[];
  /** Per token: name -> log-probability of the top k tokens plus the token itself; null for the first echoed token. */
  topLogprobs: (Record<string, number> | null)[];
  textOffset: number[];
}

export interface CompletionChoice {
  index: number;
  text: string;
  finishReason: 'stop' | 'length';
  logprobs: ChoiceLogprobs | null;
}

export interface CompletionResult {
  choices: CompletionChoice[];
  /** Tokens in the prompts (each counted once, not per choice). */
  promptTokens: number;
  /** Decoding steps over all choices. */
  completionTokens: number;
}

/** A prompt the tokenizer refuses (a character outside its vocabulary, an empty prompt without BOS). */
export class PromptError extends KilnError {
  constructor(readonly promptIndex: number, message: string) {
    super('INVALID_ARGUMENT', message);
    this.name = 'PromptError';
  }
}

export interface CompleterOptions {
  /** Rows per forward pass (default 8). */
  maxBatch?: number;
}

interface Prepared {
  job: CompletionJob;
  seed: bigint;
  contexts: Int32Array[];
}

export class KilnCompleter {
  private readonly maxBatch: number;

  constructor(readonly lm: KilnLanguageModel, opts: CompleterOptions = {}) {
    this.maxBatch = Math.max(1, Math.floor(opts.maxBatch ?? 8));
  }

  complete(job: CompletionJob): CompletionResult {
    const [r] = this.completeMany([job]);
    if (r instanceof Error) throw r;
    return r;
  }

  /**
   * Several jobs decoded together (their rows share forward passes); a job whose prompts cannot
   * be encoded gets its error in its slot and the others go on.
   */
  completeMany(jobs: CompletionJob[], opts: { stopped?: (job: number) => boolean } = {}): (CompletionResult | KilnError)[] {
    const prepared: (Prepared | KilnError)[] = jobs.map((job) => {
      try {
        return this.prepare(job);
      } catch (e) {
        if (e instanceof KilnError) return e;
        throw e;
      }
    });
    // One decode row per distinct choice: greedy choices of a prompt are computed once.
    const rows: DecodeRow[] = [];
    const jobOfRow: number[] = [];
    const rowOf: number[][][] = prepared.map((p, k) => {
      if (p instanceof KilnError) return [];
      const { job } = p;
      return p.contexts.map((context, i) => {
        const greedy = job.temperature === 0;
        let shared = -1;
        return Array.from({ length: job.n }, (_, j) => {
          if (greedy && shared >= 0) return shared;
          rows.push({
            context, maxTokens: job.maxTokens, temperature: job.temperature, topP: job.topP, seed: p.seed, stream: i * job.n + j,
            stop: job.stop, topK: job.logprobs,
          });
          jobOfRow.push(k);
          shared = rows.length - 1;
          return shared;
        });
      });
    });
    const stopped = opts.stopped;
    const decoded = decodeRows(this.lm.model, this.lm.tokenizer, rows, { maxBatch: this.maxBatch, stopped: stopped && ((r) => stopped(jobOfRow[r])) });
    return prepared.map((p, k) => (p instanceof KilnError ? p : this.assemble(p, rowOf[k], decoded)));
  }

  private prepare(job: CompletionJob): Prepared {
    checkJob(job);
    const tok = this.lm.tokenizer;
    const contexts = job.prompts.map((prompt, i) => {
      let ids: Int32Array;
      try {
        ids = tok.encode(prompt);
      } catch (e) {
        throw new PromptError(i, `prompt${job.prompts.length > 1 ? `[${i}]` : ''}: ${(e as Error).message}`);
      }
      if (ids.length > 0) return ids;
      const bos = bosId(tok);
      if (bos === null) throw new PromptError(i, `prompt${job.prompts.length > 1 ? `[${i}]` : ''} is empty and the tokenizer has no BOS token to condition the first token on`);
      return Int32Array.of(bos);
    });
    return { job, seed: seedKey(job.seed), contexts };
  }

  private assemble(p: Prepared, rowOf: number[][], decoded: DecodedRow[]): CompletionResult {
    const { job } = p;
    const tok = this.lm.tokenizer;
    const names = new Map<number, string>();
    const name = (id: number) => {
      let s = names.get(id);
      if (s === undefined) names.set(id, (s = tokenName(tok, id)));
      return s;
    };
    const topRecord = (list: TokenLogprob[] | null) => (list ? Object.fromEntries(list.map((e) => [name(e.id), e.logprob])) : null);
    const choices: CompletionChoice[] = [];
    let completionTokens = 0;
    p.contexts.forEach((context, i) => {
      const prompt = job.prompts[i];
      let echoed: { pieces: Pieces; scored: ScoredTokens } | null = null;
      if (job.echo && job.logprobs !== null) {
        // An empty prompt's context is [BOS]: one empty piece.
        const pieces = prompt.length === 0 ? { pieces: [''], offsets: [0] } : promptPieces(tok, prompt, context);
        echoed = { pieces, scored: scorePromptTokens(this.lm.model, tok, context, { topK: job.logprobs, maxBatch: this.maxBatch }) };
      }
      for (let j = 0; j < job.n; j++) {
        const d = decoded[rowOf[i][j]];
        completionTokens += d.steps;
        const kept = d.cut < 0 ? d.ids.length : d.starts.filter((s) => s < d.cut).length;
        const generated = d.cut < 0 ? d.text : d.text.slice(0, d.cut);
        const base = job.echo ? prompt.length : 0;
        let logprobs: ChoiceLogprobs | null = null;
        if (job.logprobs !== null) {
          const genPieces = d.starts.slice(0, kept).map((s, t) => generated.slice(s, t + 1 < kept ? d.starts[t + 1] : generated.length));
          logprobs = {
            tokens: [...(echoed?.pieces.pieces ?? []), ...genPieces],
            tokenLogprobs: [...(echoed?.scored.logprobs ?? []), ...d.logprobs.slice(0, kept)],
            topLogprobs: [...(echoed?.scored.top ?? []).map(topRecord), ...(d.top ?? []).slice(0, kept).map(topRecord)],
            textOffset: [...(echoed?.pieces.offsets ?? []), ...d.starts.slice(0, kept).map((s) => base + s)],
          };
        }
        choices.push({ index: i * job.n + j, text: (job.echo ? prompt : '') + generated, finishReason: d.finishReason, logprobs });
      }
    });
    return { choices, promptTokens: p.contexts.reduce((s, c) => s + c.length, 0), completionTokens };
  }
}

function checkJob(job: CompletionJob): void {
  const bad = (m: string) => new KilnError('INVALID_ARGUMENT', `KilnCompleter: ${m}`);
  if (!Array.isArray(job.prompts) || job.prompts.length === 0 || !job.prompts.every((p) => typeof p === 'string')) throw bad('prompts must be a non-empty list of strings');
  if (!(Number.isInteger(job.n) && job.n >= 1)) throw bad(`n must be an integer >= 1, got ${job.n}`);
  if (job.prompts.length * job.n > 2 ** 32) throw bad('too many choices for one seed\'s streams');
  if (!(Number.isInteger(job.maxTokens) && job.maxTokens >= 0)) throw bad(`maxTokens must be an integer >= 0, got ${job.maxTokens}`);
  checkSamplingParams(job.temperature, job.topP, 'KilnCompleter');
  if (!Array.isArray(job.stop) || !job.stop.every((s) => typeof s === 'string')) throw bad('stop must be a list of strings');
  if (job.logprobs !== null && !(Number.isInteger(job.logprobs) && job.logprobs >= 0)) throw bad(`logprobs must be null or an integer >= 0, got ${job.logprobs}`);
}
