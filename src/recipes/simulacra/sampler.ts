// What the simulator samples from: prompts in, `n` sampled continuations per prompt out, at a
// temperature and top-p, from a seed. Two backends: a kiln GPT in-process through src/serve's
// KilnCompleter (the KV-cache decoder and Philox streams of `kiln serve`), or any OpenAI-compatible
// /completions endpoint (`kiln serve` over the trained model, or a real LLM) over fetch.
import { KilnError } from '../../errors.js';
import { KilnCompleter, type CompletionJob } from '../../serve/completions.js';
import type { KilnLanguageModel } from '../bigbench/kiln-model.js';
import { keyRefused, Limiter, unreachable } from '../bigbench/openai.js';

/** An endpoint that fails or answers out of format: a refused input of the run, not a bug. */
const endpointError = (m: string) => new KilnError('ENDPOINT_ERROR', m);

/** A completion job of `kiln serve` without echo or log-probabilities, on a plain number seed. */
export type SampleRequest = Pick<CompletionJob, 'prompts' | 'n' | 'maxTokens' | 'temperature' | 'topP' | 'stop'> & { seed: number };

export interface Sampler {
  readonly name: string;
  /** For each prompt, its n continuations (the stop string not included). */
  sample(req: SampleRequest): Promise<string[][]>;
}

export class KilnSampler implements Sampler {
  readonly name: string;
  private readonly completer: KilnCompleter;

  constructor(lm: KilnLanguageModel, maxBatch = 32) {
    this.completer = new KilnCompleter(lm, { maxBatch });
    this.name = lm.name;
  }

  async sample(req: SampleRequest): Promise<string[][]> {
    const r = this.completer.complete({ ...req, echo: false, logprobs: null });
    return req.prompts.map((_, i) => r.choices.slice(i * req.n, (i + 1) * req.n).map((c) => c.text));
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** POST {baseUrl}/completions with temperature, top_p, n and seed; choices ordered by index (prompt i's j-th is i * n + j). */
export class OpenAISampler implements Sampler {
  readonly name: string;
  private readonly url: string;
  private readonly limiter = new Limiter(4);

  constructor(readonly baseUrl: string, readonly model: string, readonly apiKey?: string, readonly timeoutMs = 120_000) {
    let u: URL;
    try { u = new URL(baseUrl); } catch { throw new KilnError('INVALID_ARGUMENT', `simulacra: --model openai:<url>: invalid URL '${baseUrl}'`); }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new KilnError('INVALID_ARGUMENT', `simulacra: --model openai:<url> must be http(s), got '${baseUrl}'`);
    this.url = baseUrl.replace(/\/+$/, '') + '/completions';
    this.name = `openai:${model}@${baseUrl}`;
  }

  async sample(req: SampleRequest): Promise<string[][]> {
    // A few prompts per request keeps each answer small; requests go out 4 at a time.
    const chunks: number[] = [];
    for (let i = 0; i < req.prompts.length; i += 16) chunks.push(i);
    const parts = await Promise.all(chunks.map((i) => this.limiter.run(() => this.post(req, req.prompts.slice(i, i + 16), i))));
    return parts.flat();
  }

  private async post(req: SampleRequest, prompts: string[], first: number): Promise<string[][]> {
    const body = {
      model: this.model, prompt: prompts, n: req.n, max_tokens: req.maxTokens, temperature: req.temperature, top_p: req.topP,
      stop: req.stop.slice(0, 4), seed: req.seed + first,
    };
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), this.timeoutMs);
    let status: number, text: string;
    try {
      const res = await fetch(this.url, {
        method: 'POST', signal: ctl.signal,
        headers: { 'content-type': 'application/json', ...(this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {}) },
        body: JSON.stringify(body),
      });
      status = res.status;
      text = await res.text();
    } catch (e) {
      throw endpointError(ctl.signal.aborted ? `${this.url}: no answer within ${this.timeoutMs} ms` : unreachable(this.url, e));
    } finally {
      clearTimeout(timer);
    }
    if (status === 401 || status === 403) throw endpointError(keyRefused(this.url, status, text, this.apiKey));
    if (status < 200 || status >= 300) throw endpointError(`${this.url}: HTTP ${status}: ${text.slice(0, 200)}`);
    let json: unknown;
    try { json = JSON.parse(text); } catch { throw endpointError(`${this.url}: the answer is not JSON: ${text.slice(0, 200)}`); }
    if (!isObj(json) || !Array.isArray(json.choices)) throw endpointError(`${this.url}: the answer has no choices list`);
    const choices: unknown[] = json.choices;
    const byIndex = new Map<number, string>();
    choices.forEach((c, k) => {
      if (!isObj(c) || typeof c.text !== 'string') throw endpointError(`${this.url}: choices[${k}] has no text`);
      byIndex.set(typeof c.index === 'number' ? c.index : k, c.text);
    });
    return prompts.map((_, i) => Array.from({ length: req.n }, (_, j) => {
      const t = byIndex.get(i * req.n + j);
      if (t === undefined) throw endpointError(`${this.url}: choice ${i * req.n + j} is missing (${choices.length} returned)`);
      return t;
    }));
  }
}
