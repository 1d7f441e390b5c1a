// A model behind any OpenAI-compatible /completions endpoint (OpenAI, vLLM, llama.cpp server, a
// kiln server): greedy generation, and choice scoring through `echo` + `logprobs`. Requests
// time out (AbortController), are retried with exponential backoff on network errors, timeouts,
// 408/409/429 and 5xx, and at most `concurrency` are in flight at once.
import type { GenerateOptions, LanguageModel } from './model.js';

export interface OpenAIOptions {
  /** e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8000/v1` (the `/completions` is added). */
  baseUrl: string;
  /** Sent as `model` in every request. */
  model: string;
  apiKey?: string;
  /** Per attempt, covering the response body too (default 60 s). */
  timeoutMs?: number;
  /** Retries after the first attempt (default 3). */
  retries?: number;
  /** First backoff delay; doubles each retry, with jitter, capped at 30 s (default 500 ms). */
  backoffMs?: number;
  /** Requests in flight at once (default 4). */
  concurrency?: number;
}

export class EndpointError extends Error {
  constructor(message: string, readonly status?: number, readonly retryable = false) {
    super(message);
    this.name = 'EndpointError';
  }
}

/** A counting semaphore: `run` waits for a free slot. */
export class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`concurrency must be a positive integer, got ${limit}`);
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

interface CompletionChoice {
  index: number;
  text: string;
  logprobs?: { tokens?: unknown; token_logprobs?: unknown; text_offset?: unknown } | null;
}

/** Resolve base URL, key and model name from explicit options, then the environment. */
export function openAIOptionsFrom(flags: { baseUrl?: string; apiKey?: string; model?: string }, env: NodeJS.ProcessEnv = process.env): Partial<OpenAIOptions> {
  return {
    baseUrl: flags.baseUrl || env.OPENAI_BASE_URL || undefined,
    apiKey: flags.apiKey || env.OPENAI_API_KEY || undefined,
    model: flags.model || env.OPENAI_MODEL || undefined,
  };
}

export class OpenAICompletionsModel implements LanguageModel {
  readonly name: string;
  private readonly url: string;
  private readonly limiter: Limiter;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly backoffMs: number;

  constructor(readonly opts: OpenAIOptions) {
    let base: URL;
    try { base = new URL(opts.baseUrl); } catch { throw new EndpointError(`invalid base URL '${opts.baseUrl}'`); }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new EndpointError(`base URL must be http(s), got '${opts.baseUrl}'`);
    this.url = opts.baseUrl.replace(/\/+$/, '') + '/completions';
    this.limiter = new Limiter(opts.concurrency ?? 4);
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.retries = opts.retries ?? 3;
    this.backoffMs = opts.backoffMs ?? 500;
    this.name = `openai:${opts.model}@${opts.baseUrl}`;
  }

  /** Ask the server which models it serves (`GET /models`) and return the first id. */
  static async firstServedModel(baseUrl: string, apiKey?: string, timeoutMs = 10_000): Promise<string> {
    const url = baseUrl.replace(/\/+$/, '') + '/models';
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs);
    let status: number;
    let text: string;
    try {
      const res = await fetch(url, { headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {}, signal: ctl.signal });
      status = res.status;
      text = await res.text();
    } catch (e) {
      if (ctl.signal.aborted) throw new EndpointError(`${url}: no answer within ${timeoutMs} ms (timed out)`);
      throw new EndpointError(unreachable(url, e));
    } finally {
      clearTimeout(timer);
    }
    if (status === 401 || status === 403) throw new EndpointError(keyRefused(url, status, text, apiKey), status);
    let body: unknown;
    try { body = JSON.parse(text); } catch { body = undefined; }
    const data = isObj(body) && Array.isArray(body.data) ? body.data : [];
    const id = isObj(data[0]) && typeof data[0].id === 'string' ? data[0].id : undefined;
    if (status >= 200 && status < 300 && id) return id;
    const why = status >= 200 && status < 300 ? `no model id in the answer: ${excerpt(text)}` : `HTTP ${status}: ${excerpt(errorMessage(text))}`;
    throw new EndpointError(`no model name given (--model-name or OPENAI_MODEL) and ${url} did not name one (${why})`, status);
  }

  async generate(prompts: string[], opts: GenerateOptions): Promise<string[]> {
    if (prompts.length === 0) return [];
    const body: Record<string, unknown> = { model: this.opts.model, prompt: prompts, max_tokens: opts.maxTokens, temperature: 0 };
    if (opts.stop && opts.stop.length > 0) body.stop = opts.stop.slice(0, 4); // the API takes at most 4
    const choices = await this.complete(body, prompts.length);
    return choices.map((c, i) => {
      if (typeof c.text !== 'string') throw new EndpointError(`${this.url}: choices[${i}].text is not a string`);
      return c.text;
    });
  }

  async scoreChoices(context: string, choices: string[]): Promise<number[]> {
    if (choices.length === 0) return [];
    const prompts = choices.map((c) => context + c);
    // echo returns the prompt's own tokens with their log-probabilities; one extra generated
    // token (max_tokens 1) keeps servers that refuse max_tokens 0 happy and is ignored.
    const body = { model: this.opts.model, prompt: prompts, max_tokens: 1, temperature: 0, echo: true, logprobs: 0 };
    const out = await this.complete(body, prompts.length);
    return out.map((c, i) => this.choiceLogProb(c, i, context.length, prompts[i].length));
  }

  private choiceLogProb(c: CompletionChoice, i: number, contextLen: number, promptLen: number): number {
    const lp = c.logprobs;
    const where = `${this.url}: choices[${i}].logprobs`;
    if (!isObj(lp)) throw new EndpointError(`${where} is missing: the endpoint must support echo with logprobs to score choices`);
    const tokenLps = lp.token_logprobs;
    const offsets = lp.text_offset;
    if (!Array.isArray(tokenLps) || !Array.isArray(offsets) || tokenLps.length !== offsets.length) {
      throw new EndpointError(`${where} needs token_logprobs and text_offset lists of the same length`);
    }
    let sum = 0;
    let counted = 0;
    for (let t = 0; t < offsets.length; t++) {
      const start = offsets[t];
      if (typeof start !== 'number') throw new EndpointError(`${where}.text_offset[${t}] is not a number`);
      if (start >= promptLen) break; // the generated token
      const end = t + 1 < offsets.length ? (offsets[t + 1] as number) : promptLen;
      if (end <= contextLen) continue; // a context token
      const v = tokenLps[t];
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        if (v === null && start === 0) continue; // the first token of the text has no log-prob
        throw new EndpointError(`${where}.token_logprobs[${t}] is ${JSON.stringify(v)}, not a finite number`);
      }
      sum += v;
      counted++;
    }
    if (counted === 0 && promptLen > contextLen) throw new EndpointError(`${where}: no tokens cover the choice text`);
    return sum;
  }

  /** POST with retries; returns `choices` sorted by `index`, checked to be `expected` long. */
  private async complete(body: Record<string, unknown>, expected: number): Promise<CompletionChoice[]> {
    return this.limiter.run(async () => {
      let lastError: EndpointError | undefined;
      for (let attempt = 0; attempt <= this.retries; attempt++) {
        if (attempt > 0) {
          const delay = Math.min(30_000, this.backoffMs * 2 ** (attempt - 1));
          await sleep(delay * (0.5 + Math.random() * 0.5));
        }
        try {
          return this.parseChoices(await this.postOnce(body), expected);
        } catch (e) {
          lastError = e instanceof EndpointError ? e : new EndpointError(`${this.url}: ${(e as Error).message}`, undefined, true);
          if (!lastError.retryable) throw lastError;
        }
      }
      throw new EndpointError(`${lastError!.message} (gave up after ${this.retries + 1} attempts)`, lastError!.status);
    });
  }

  private async postOnce(body: Record<string, unknown>): Promise<unknown> {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), this.timeoutMs);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.opts.apiKey) headers.authorization = `Bearer ${this.opts.apiKey}`;
    let status = 0;
    let text: string;
    try {
      const res = await fetch(this.url, { method: 'POST', headers, body: JSON.stringify(body), signal: ctl.signal });
      status = res.status;
      text = await res.text(); // still under the timer: a server that stalls mid-body times out too
    } catch (e) {
      if (ctl.signal.aborted) throw new EndpointError(`${this.url}: no complete answer within ${this.timeoutMs} ms (timed out)`, undefined, true);
      throw new EndpointError(unreachable(this.url, e), undefined, true);
    } finally {
      clearTimeout(timer);
    }
    if (status === 401 || status === 403) throw new EndpointError(keyRefused(this.url, status, text, this.opts.apiKey), status);
    if (status < 200 || status >= 300) {
      const retryable = status === 408 || status === 409 || status === 429 || status >= 500;
      throw new EndpointError(`${this.url}: HTTP ${status}: ${excerpt(errorMessage(text))}`, status, retryable);
    }
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new EndpointError(`${this.url}: malformed JSON in the answer (${(e as Error).message}); it starts: ${excerpt(text)}`, status);
    }
  }

  private parseChoices(json: unknown, expected: number): CompletionChoice[] {
    if (!isObj(json) || !Array.isArray(json.choices)) throw new EndpointError(`${this.url}: the answer has no choices list: ${excerpt(JSON.stringify(json))}`);
    const byIndex = new Map<number, CompletionChoice>();
    json.choices.forEach((c, i) => {
      if (!isObj(c)) throw new EndpointError(`${this.url}: choices[${i}] is not an object`);
      const index = typeof c.index === 'number' ? c.index : i;
      byIndex.set(index, c as unknown as CompletionChoice);
    });
    const out: CompletionChoice[] = [];
    for (let i = 0; i < expected; i++) {
      const c = byIndex.get(i);
      if (!c) throw new EndpointError(`${this.url}: the answer has ${json.choices.length} choices, expected ${expected} (index ${i} is missing)`);
      out.push(c);
    }
    return out;
  }
}

/** A fetch that failed before any answer: which URL could not be reached, and the system's reason. */
export function unreachable(url: string, e: unknown): string {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  return `cannot reach ${url}: ${cause?.code ?? cause?.message ?? (e as Error).message}`;
}

/** A 401 / 403: the endpoint refused the key (or its absence), whatever else was asked. */
export function keyRefused(url: string, status: number, text: string, apiKey: string | undefined): string {
  const msg = excerpt(errorMessage(text));
  return `${url} refused the API key (HTTP ${status}${msg ? `: ${msg}` : ''}); ${apiKey ? 'check' : 'none was given: pass'} --api-key or OPENAI_API_KEY`;
}

function errorMessage(text: string): string {
  try {
    const j = JSON.parse(text) as unknown;
    if (isObj(j) && isObj(j.error) && typeof j.error.message === 'string') return j.error.message;
  } catch { /* not JSON: show the raw text */ }
  return text;
}

function excerpt(s: string, n = 200): string {
  const flat = s.replace(/\s+/g, ' ').trim();
  return flat.length > n ? `${flat.slice(0, n)}...` : flat;
}
