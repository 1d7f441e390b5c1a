// The OpenAI completions protocol: a request body checked field by field into a CompletionJob
// (or an ApiError naming the field), and a CompletionResult written back in OpenAI's JSON.
import { randomBytes } from 'node:crypto';
import type { CompletionJob, CompletionResult } from './completions.js';

/** An answer other than 200: the HTTP status and OpenAI's error object. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type: string = status >= 500 ? 'server_error' : 'invalid_request_error',
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toJSON(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export interface ServeLimits {
  /** Prompts in one request (default 128). */
  maxPrompts: number;
  /** n (default 128). */
  maxN: number;
  /** Prompts x n in one request (default 1024). */
  maxChoices: number;
  /** max_tokens (default 4096). */
  maxTokens: number;
  /** logprobs (default 5, as OpenAI). */
  maxLogprobs: number;
  /** Prompts x n x max_tokens: the tokens one request may ask for (default 262144), so no request holds the worker for long or outgrows its memory. */
  maxTotalTokens: number;
}

export const DEFAULT_LIMITS: ServeLimits = { maxPrompts: 128, maxN: 128, maxChoices: 1024, maxTokens: 4096, maxLogprobs: 5, maxTotalTokens: 262144 };

/** OpenAI's default max_tokens for completions. */
export const DEFAULT_MAX_TOKENS = 16;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const describe = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'string' ? `a string` : `${typeof v} ${JSON.stringify(v)}`);

/** Fields accepted but only with their neutral value (anything else is refused, not ignored). */
const NEUTRAL: Record<string, (v: unknown, body: Record<string, unknown>) => boolean> = {
  stream: (v) => v === false,
  suffix: (v) => v === '',
  presence_penalty: (v) => v === 0,
  frequency_penalty: (v) => v === 0,
  logit_bias: (v) => isObj(v) && Object.keys(v).length === 0,
  best_of: (v, body) => v === 1 || v === (body.n ?? 1),
};
const KNOWN = new Set(['model', 'prompt', 'max_tokens', 'temperature', 'top_p', 'n', 'stop', 'echo', 'logprobs', 'seed', 'user', ...Object.keys(NEUTRAL)]);

const bad = (param: string, message: string) => new ApiError(400, message, param);

function int(body: Record<string, unknown>, param: string, dflt: number, min: number, max: number): number {
  const v = body[param];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw bad(param, `'${param}' must be an integer, got ${describe(v)}`);
  if (v < min || v > max) throw bad(param, `'${param}' must be in [${min}, ${max}], got ${v}`);
  return v;
}

function num(body: Record<string, unknown>, param: string, dflt: number, min: number, max: number): number {
  const v = body[param];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(param, `'${param}' must be a number, got ${describe(v)}`);
  if (v < min || v > max) throw bad(param, `'${param}' must be in [${min}, ${max}], got ${v}`);
  return v;
}

/**
 * A POST /v1/completions body as a CompletionJob, or an ApiError: 400 naming the field for a
 * missing, mistyped or out-of-range one, an unknown field, or an unsupported feature (streaming,
 * penalties, logit_bias, suffix, best_of > n, token-id prompts); 404 for another model's name.
 * Without a seed, one is drawn at random.
 */
export function parseCompletionRequest(body: unknown, servedModel: string, limits: ServeLimits = DEFAULT_LIMITS): CompletionJob {
  if (!isObj(body)) throw new ApiError(400, `the request body must be a JSON object, got ${describe(body)}`);
  for (const k of Object.keys(body)) {
    if (!KNOWN.has(k)) throw bad(k, `Unrecognized request argument supplied: ${k}`);
    const v = body[k];
    if (k in NEUTRAL && v !== null && !NEUTRAL[k](v, body))
      throw bad(k, `'${k}' = ${JSON.stringify(v)} is not supported by this server (only ${k === 'best_of' ? 'best_of = n' : 'its default'})`);
  }
  const model = body.model;
  if (model === undefined || model === null) throw bad('model', `you must provide a model parameter ('${servedModel}')`);
  if (typeof model !== 'string') throw bad('model', `'model' must be a string, got ${describe(model)}`);
  if (model !== servedModel) throw new ApiError(404, `The model '${model}' does not exist (this server serves '${servedModel}')`, 'model', 'model_not_found');

  const p = body.prompt;
  let prompts: string[];
  if (typeof p === 'string') prompts = [p];
  else if (Array.isArray(p)) {
    if (p.length === 0) throw bad('prompt', `'prompt' must not be an empty list`);
    if (p.some((x) => typeof x === 'number' || Array.isArray(x))) throw bad('prompt', `token-id prompts are not supported: 'prompt' must be a string or a list of strings`);
    const i = p.findIndex((x) => typeof x !== 'string');
    if (i >= 0) throw bad('prompt', `'prompt[${i}]' must be a string, got ${describe(p[i])}`);
    if (p.length > limits.maxPrompts) throw bad('prompt', `at most ${limits.maxPrompts} prompts per request, got ${p.length}`);
    prompts = p as string[];
  } else if (p === undefined || p === null) throw bad('prompt', `you must provide a prompt (a string or a list of strings)`);
  else throw bad('prompt', `'prompt' must be a string or a list of strings, got ${describe(p)}`);

  const n = int(body, 'n', 1, 1, limits.maxN);
  if (prompts.length * n > limits.maxChoices) throw bad('n', `prompts x n is ${prompts.length * n}; at most ${limits.maxChoices} choices per request`);
  const maxTokens = int(body, 'max_tokens', DEFAULT_MAX_TOKENS, 0, limits.maxTokens);
  if (prompts.length * n * maxTokens > limits.maxTotalTokens)
    throw bad('max_tokens', `prompts x n x max_tokens is ${prompts.length * n * maxTokens}; at most ${limits.maxTotalTokens} tokens per request`);
  const temperature = num(body, 'temperature', 1, 0, 2);
  const topP = num(body, 'top_p', 1, 0, 1);
  const logprobs = body.logprobs === undefined || body.logprobs === null ? null : int(body, 'logprobs', 0, 0, limits.maxLogprobs);

  const echo = body.echo ?? false;
  if (typeof echo !== 'boolean') throw bad('echo', `'echo' must be a boolean, got ${describe(echo)}`);

  let stop: string[] = [];
  const s = body.stop;
  if (typeof s === 'string') stop = [s];
  else if (Array.isArray(s)) {
    if (s.length > 4) throw bad('stop', `'stop' takes at most 4 sequences, got ${s.length}`);
    const i = s.findIndex((x) => typeof x !== 'string');
    if (i >= 0) throw bad('stop', `'stop[${i}]' must be a string, got ${describe(s[i])}`);
    stop = s as string[];
  } else if (s !== undefined && s !== null) throw bad('stop', `'stop' must be a string or a list of up to 4 strings, got ${describe(s)}`);
  stop = stop.filter((x) => x.length > 0);

  const sd = body.seed;
  let seed: number | bigint;
  if (sd === undefined || sd === null) seed = randomBytes(8).readBigUInt64LE();
  else if (typeof sd !== 'number' || !Number.isSafeInteger(sd)) throw bad('seed', `'seed' must be an integer (|seed| < 2^53), got ${describe(sd)}`);
  else seed = sd;

  if (body.user !== undefined && body.user !== null && typeof body.user !== 'string') throw bad('user', `'user' must be a string, got ${describe(body.user)}`);
  return { prompts, n, maxTokens, temperature, topP, stop, echo, logprobs, seed };
}

/** The OpenAI text_completion object for a result. */
export function completionResponse(model: string, result: CompletionResult, now = Date.now()): Record<string, unknown> {
  return {
    id: `cmpl-${randomBytes(12).toString('hex')}`,
    object: 'text_completion',
    created: Math.floor(now / 1000),
    model,
    choices: result.choices.map((c) => ({
      index: c.index,
      text: c.text,
      logprobs: c.logprobs && {
        tokens: c.logprobs.tokens,
        token_logprobs: c.logprobs.tokenLogprobs,
        top_logprobs: c.logprobs.topLogprobs,
        text_offset: c.logprobs.textOffset,
      },
      finish_reason: c.finishReason,
    })),
    usage: { prompt_tokens: result.promptTokens, completion_tokens: result.completionTokens, total_tokens: result.promptTokens + result.completionTokens },
  };
}

/** The GET /v1/models list. */
export function modelsResponse(model: string, created: number): Record<string, unknown> {
  return { object: 'list', data: [modelObject(model, created)] };
}

export function modelObject(model: string, created: number): Record<string, unknown> {
  return { id: model, object: 'model', created: Math.floor(created / 1000), owned_by: 'kiln' };
}
