// `kiln simulacra serve`: SimReddit's designer loop (Park et al., arXiv 2208.04024) as a local web
// app over a finished run's model (or an OpenAI-compatible endpoint). GET / is the page (ui.ts);
// the JSON API generates personas, threads, WhatIf continuations and Multiverse versions, each
// answer carrying the keyword labeller's labels and counts. Generation runs in a worker thread
// (worker.ts), one job at a time in arrival order, so the event loop only parses, checks, queues
// and answers: GET /api/world stays fast while a long generation runs. Bad input is a 400 naming
// the field (OpenAI-style error JSON), never a crash.
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { checkFlags, flagInt, flagString, MAX_SEED, parseArgs, UsageError } from '../../cli/args.js';
import { KilnError } from '../../errors.js';
import * as kiln from '../../index.js';
import { ApiError } from '../../serve/protocol.js';
import { tokenizerFromJSON } from '../bigbench/kiln-model.js';
import { EndpointError, OpenAICompletionsModel, openAIOptionsFrom } from '../bigbench/openai.js';
import { Rng } from '../bigbench/rng.js';
import { countThreads, messageCount } from './measure.js';
import type { SimThread } from './simulate.js';
import { renderApp } from './ui.js';
import type { FromWorker, Injection, JobResult, SamplerSpec, SimJob, ToWorker, WorkerData } from './worker.js';
import {
  BEHAVIOURS, community, drawPersonas, labels, NAMES, parsePersona, postLabels, RULES, TEMPERAMENTS, TOPICS,
  type Behaviour, type Community, type Message, type Persona, type Topic,
} from './world.js';

/** Request limits: each keeps one job to seconds on a 2-core CPU with the recipe's model. */
export const LIMITS = {
  personas: 12, seeds: 8, pool: 16, threads: 8, replies: 6, versions: 8, maxTokens: 60, threadReplies: 16, text: 300, bio: 200, queue: 16,
};
/** Personas per thread prompt: the training documents' count (experiment.ts docPersonas). */
const THREAD_PERSONAS = 4;

// ---------------------------------------------------------------- the worker and its queue

type Pending = { id: number; job: SimJob; done: (o: Outcome) => void };
export type Outcome = { ok: true; result: JobResult } | { ok: false; status: number; message: string };

function spawn(data: WorkerData): Worker {
  const self = import.meta.url;
  if (!self.endsWith('.ts')) return new Worker(new URL('./worker.js', self), { workerData: data });
  // Under tsx (the tests): Node 20 does not carry tsx's hooks into workers, so register them there first.
  const tsx = import.meta.resolve('tsx/esm/api');
  const entry = new URL('./worker.ts', self).href;
  return new Worker(`import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`, { eval: true, workerData: data });
}

/** The generation thread: jobs queue here and go to the worker one at a time. */
export class SimulacraWorker {
  private nextId = 1;
  private readonly queue: Pending[] = [];
  private running: Pending | null = null;
  private exited = false;
  private closing = false;
  private readonly exit: Promise<void>;

  private constructor(private readonly worker: Worker, readonly samplerName: string) {
    this.exit = new Promise((r) => worker.once('exit', () => r()));
    worker.on('message', (m: FromWorker) => {
      if ((m.type !== 'result' && m.type !== 'error') || this.running?.id !== m.id) return;
      const p = this.running;
      this.running = null;
      p.done(m.type === 'result' ? { ok: true, result: m.result } : { ok: false, status: m.status, message: m.message });
      this.pump();
    });
    worker.on('error', () => {});
    worker.on('exit', (code) => {
      this.exited = true;
      const o: Outcome = { ok: false, status: this.closing ? 503 : 500, message: this.closing ? 'the server is shutting down' : `the generation worker stopped (exit code ${code})` };
      for (const p of [...(this.running ? [this.running] : []), ...this.queue.splice(0)]) p.done(o);
      this.running = null;
    });
  }

  static async start(spec: SamplerSpec): Promise<SimulacraWorker> {
    const worker = spawn({ kind: 'kiln.simulacra.worker', sampler: spec });
    const name = await new Promise<string>((res, rej) => {
      const fail = (m: string) => { void worker.terminate(); rej(new KilnError('INVALID_ARGUMENT', `simulacra serve: ${m}`)); };
      worker.on('message', (m: FromWorker) => (m.type === 'ready' ? res(m.name) : m.type === 'load-error' ? fail(m.message) : undefined));
      worker.once('error', (e) => fail(`the generation worker failed to start: ${e.message}`));
      worker.once('exit', (code) => fail(`the generation worker exited (code ${code}) before it was ready`));
    });
    return new SimulacraWorker(worker, name);
  }

  /** Jobs queued, not counting the running one. */
  get queued(): number { return this.queue.length; }
  get busy(): string | null { return this.running?.job.kind ?? null; }

  /** Queues a job; `cancel` drops it if it has not started (the client went away). */
  submit(job: SimJob): { outcome: Promise<Outcome>; cancel: () => void } {
    if (this.exited || this.closing) return { outcome: Promise.resolve({ ok: false, status: 503, message: 'the server is shutting down' }), cancel: () => {} };
    const id = this.nextId++;
    let p!: Pending;
    const outcome = new Promise<Outcome>((done) => { p = { id, job, done }; });
    this.queue.push(p);
    this.pump();
    return { outcome, cancel: () => { const i = this.queue.indexOf(p); if (i >= 0) this.queue.splice(i, 1); } };
  }

  private pump(): void {
    if (this.running || this.exited || this.queue.length === 0) return;
    this.running = this.queue.shift()!;
    this.worker.postMessage({ type: 'job', id: this.running.id, job: this.running.job } satisfies ToWorker);
  }

  async close(): Promise<void> {
    this.closing = true;
    if (!this.exited) await this.worker.terminate();
    await this.exit;
  }
}

// ---------------------------------------------------------------- request checks

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const bad = (field: string, message: string) => new ApiError(400, `${field}: ${message}`, field, 'invalid_field');
const show = (v: unknown) => (v === undefined ? 'nothing' : v === null ? 'null' : Array.isArray(v) ? 'an array' : `${typeof v} ${JSON.stringify(v)?.slice(0, 40)}`);

function only(o: Record<string, unknown>, keys: string[], where: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw bad(where ? `${where}.${k}` : k, `unknown field (expected ${keys.join(', ')})`);
}

function int(o: Record<string, unknown>, key: string, dflt: number | undefined, lo: number, hi: number): number {
  const v = o[key];
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw bad(key, `must be an integer in [${lo}, ${hi}], got ${show(v)}`);
  if (v < lo || v > hi) throw bad(key, `must be in [${lo}, ${hi}], got ${v}`);
  return v;
}

function num(o: Record<string, unknown>, key: string, dflt: number, lo: number, hi: number, openLo = false): number {
  const v = o[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v > hi || (openLo ? v <= lo : v < lo)) throw bad(key, `must be a number in ${openLo ? '(' : '['}${lo}, ${hi}], got ${show(v)}`);
  return v;
}

/** One line of text (the documents are line-based: a newline would forge a "Reply by" line). */
function text(v: unknown, field: string, max: number): string {
  if (typeof v !== 'string') throw bad(field, `must be a string, got ${show(v)}`);
  const s = v.replace(/\s+/g, ' ').trim();
  if (!s) throw bad(field, 'must not be empty');
  if (s.length > max) throw bad(field, `at most ${max} characters, got ${s.length}`);
  return s;
}

function name(v: unknown, field: string): string {
  if (typeof v !== 'string' || !/^[A-Z][a-z]{1,19}$/.test(v)) throw bad(field, `a name is one capitalised word of letters (like ${NAMES[0]}), got ${show(v)}`);
  return v;
}

export function parseCommunity(v: unknown): Community {
  if (!isObj(v)) throw bad('community', `must be an object {goal, rules}, got ${show(v)}`);
  only(v, ['goal', 'rules', 'name'], 'community');
  if (typeof v.goal !== 'string' || !TOPICS.includes(v.goal as Topic)) throw bad('community.goal', `unknown goal ${show(v.goal)} (known: ${TOPICS.join(', ')})`);
  const rules = v.rules ?? [];
  if (!Array.isArray(rules)) throw bad('community.rules', `must be a list of rule ids, got ${show(rules)}`);
  rules.forEach((r, i) => { if (typeof r !== 'string' || !BEHAVIOURS.includes(r as Behaviour)) throw bad(`community.rules[${i}]`, `unknown rule ${show(r)} (known: ${BEHAVIOURS.join(', ')})`); });
  return community(v.goal as Topic, rules as string[]);
}

/** A persona: name and bio (free text), its temperament and interests read from the bio where it reads as the world's. */
function parsePersonaField(v: unknown, field: string): Persona {
  if (!isObj(v)) throw bad(field, `must be an object {name, bio}, got ${show(v)}`);
  only(v, ['name', 'bio', 'temperament', 'interests'], field);
  const n = name(v.name, `${field}.name`), bio = text(v.bio, `${field}.bio`, LIMITS.bio);
  const read = parsePersona(`${n}: ${bio}`);
  return read ?? ({ name: n, bio, interests: [], temperament: undefined } as unknown as Persona);
}

function personaList(v: unknown, field: string, min: number, max: number): Persona[] {
  if (!Array.isArray(v)) throw bad(field, `must be a list of personas, got ${show(v)}`);
  if (v.length < min || v.length > max) throw bad(field, `needs ${min} to ${max} personas, got ${v.length}`);
  const ps = v.map((p, i) => parsePersonaField(p, `${field}[${i}]`));
  const seen = new Set<string>();
  ps.forEach((p, i) => { if (seen.has(p.name)) throw bad(`${field}[${i}].name`, `'${p.name}' appears twice`); seen.add(p.name); });
  return ps;
}

function message(v: unknown, field: string): Message {
  if (!isObj(v)) throw bad(field, `must be an object {author, text}, got ${show(v)}`);
  only(v, ['author', 'text', 'labels'], field);
  return { author: name(v.author, `${field}.author`), text: text(v.text, `${field}.text`, LIMITS.text) };
}

function parseThread(v: unknown): SimThread {
  if (!isObj(v)) throw bad('thread', `must be an object {personas, post, replies}, got ${show(v)}`);
  only(v, ['personas', 'post', 'replies', 'injectedAt'], 'thread');
  const personas = personaList(v.personas, 'thread.personas', 2, LIMITS.pool);
  const replies = v.replies ?? [];
  if (!Array.isArray(replies) || replies.length > LIMITS.threadReplies) throw bad('thread.replies', `must be a list of at most ${LIMITS.threadReplies} messages`);
  return { personas, post: message(v.post, 'thread.post'), replies: replies.map((r, i) => message(r, `thread.replies[${i}]`)) };
}

type Defaults = { temperature: number; topP: number; maxTokens: number };

/** A request body as a job (the seed drawn from `nextSeed` when absent), or a 400 naming the field. */
export function parseJob(kind: SimJob['kind'], body: unknown, d: Defaults, nextSeed: () => number): SimJob {
  if (!isObj(body)) throw new ApiError(400, `the request body must be a JSON object, got ${show(body)}`, null, 'invalid_body');
  const common = ['community', 'seed', 'temperature', 'topP', 'maxTokens'];
  const fields = { personas: ['seeds', 'count'], threads: ['personas', 'n', 'replies'], whatif: ['thread', 'at', 'inject', 'replies'], multiverse: ['thread', 'k', 'replies'] }[kind];
  only(body, [...common, ...fields], '');
  const base = {
    community: parseCommunity(body.community),
    seed: body.seed === undefined ? nextSeed() : int(body, 'seed', undefined, 0, MAX_SEED),
    temperature: num(body, 'temperature', d.temperature, 0, 2),
    topP: num(body, 'topP', d.topP, 0, 1, true),
    maxTokens: int(body, 'maxTokens', d.maxTokens, 1, LIMITS.maxTokens),
  };
  switch (kind) {
    case 'personas':
      return { ...base, kind, seeds: personaList(body.seeds ?? [], 'seeds', 0, LIMITS.seeds), count: int(body, 'count', 4, 1, LIMITS.personas) };
    case 'threads': {
      const personas = personaList(body.personas, 'personas', 2, LIMITS.pool);
      return { ...base, kind, personas, n: int(body, 'n', 2, 1, LIMITS.threads), replies: int(body, 'replies', 3, 0, LIMITS.replies), threadPersonas: Math.min(THREAD_PERSONAS, personas.length) };
    }
    case 'whatif': {
      const thread = parseThread(body.thread);
      const at = int(body, 'at', 0, 0, thread.replies.length);
      const inj = body.inject;
      let inject: Injection;
      if (isObj(inj) && 'kind' in inj) {
        only(inj, ['kind'], 'inject');
        if (inj.kind !== 'hostile' && inj.kind !== 'friendly') throw bad('inject.kind', `must be 'hostile' or 'friendly', got ${show(inj.kind)}`);
        inject = { kind: inj.kind };
      } else inject = message(inj, 'inject');
      return { ...base, kind, thread, at, inject, replies: int(body, 'replies', 2, 1, LIMITS.replies) };
    }
    case 'multiverse':
      return { ...base, kind, thread: parseThread(body.thread), k: int(body, 'k', 3, 2, LIMITS.versions), replies: int(body, 'replies', 3, 1, LIMITS.replies) };
  }
}

// ---------------------------------------------------------------- answers with labels

export interface LabelledMessage extends Message {
  labels: { insult: boolean; promo: boolean; meme: boolean; offtopic: boolean; topic: Topic | null };
}
type Counts = Record<Behaviour, { k: number; n: number }>;

/** The labeller's labels on a post (off-topic against the goal) or a reply (never off-topic). */
export function labelMessage(c: Community, m: Message, post: boolean): LabelledMessage {
  const l = labels(m.text);
  return { author: m.author, text: m.text, labels: { insult: l.insult, promo: l.promo, meme: l.meme, offtopic: post ? postLabels(m.text, c).offtopic : false, topic: l.topic } };
}

const labelThread = (c: Community, t: SimThread) => ({ personas: t.personas, post: labelMessage(c, t.post, true), replies: t.replies.map((r) => labelMessage(c, r, false)) });

/** Each behaviour's count over the threads' messages (off-topic: posts only), as measure.ts counts. */
export function countsOf(c: Community, threads: readonly SimThread[], skip = 0, posts = true): Counts {
  const r = countThreads(c, threads, skip, posts);
  return Object.fromEntries(BEHAVIOURS.map((b) => [b, messageCount(r, b)])) as Counts;
}

function answer(job: SimJob, r: JobResult): Record<string, unknown> {
  const c = job.community;
  const head = { community: c, seed: job.seed };
  switch (r.kind) {
    case 'personas':
      return { ...head, personas: r.result.personas, sampled: r.result.sampled, rejected: r.result.rejected };
    case 'threads':
      return { ...head, threads: r.threads.map((t) => labelThread(c, t)), counts: countsOf(c, r.threads) };
    case 'whatif':
      // Counts over the generated replies after the injected one.
      return { ...head, thread: { ...labelThread(c, r.thread), injectedAt: r.at }, injected: labelMessage(c, r.injected, false), injectedAt: r.at, counts: countsOf(c, [r.thread], r.at + 1, false) };
    case 'multiverse':
      return { ...head, versions: r.versions.map((t) => labelThread(c, t)), distinct: new Set(r.versions.map((v) => v.replies.map((m) => m.text).join('\n'))).size, counts: countsOf(c, r.versions, 0, false) };
  }
}

// ---------------------------------------------------------------- the HTTP server

export interface SimulacraServeOptions {
  /** A finished `kiln simulacra run` folder (its model/ is loaded), or `openai` below. */
  run?: string;
  openai?: { url: string; model: string; apiKey?: string };
  host?: string;
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Seeds of requests that give none are drawn from this (default 0), so a session replays. */
  seed?: number;
  maxBodyBytes?: number;
  threads?: number | null;
  log?: (line: string) => void;
}

export interface SimulacraServer {
  readonly url: string;
  readonly port: number;
  readonly http: Server;
  readonly worker: SimulacraWorker;
  close(): Promise<void>;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const s = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(s)), ...headers });
  res.end(s);
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  if (Number(req.headers['content-length']) > limit) return Promise.resolve(null);
  return new Promise((res, rej) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => { size += c.length; if (size <= limit) chunks.push(c); });
    let ended = false;
    req.on('end', () => { ended = true; res(size <= limit ? Buffer.concat(chunks) : null); });
    req.on('error', rej);
    req.on('close', () => { if (!ended) rej(new Error('the client went away mid-body')); });
  });
}

/** Words of `s` the model's word vocabulary lacks (none when the vocabulary is not known). */
type UnknownWords = (s: string) => string[];

function vocabularyCheck(run: string | undefined): UnknownWords {
  if (!run) return () => [];
  try {
    const tok = tokenizerFromJSON(JSON.parse(readFileSync(join(run, 'model', 'tokenizer.json'), 'utf8')), 'tokenizer.json');
    if (!(tok instanceof kiln.train.WordTokenizer)) return () => [];
    return (s) => [...new Set(s.split(/[^\p{L}']+/u).filter((w) => w && tok.tokenId(tok.lowercase ? w.toLowerCase() : w) === tok.unkId))];
  } catch {
    return () => [];
  }
}

function warningsOf(job: SimJob, unknown: UnknownWords): string[] {
  const out: string[] = [];
  const check = (what: string, s: string) => { const u = unknown(s); if (u.length) out.push(`${what}: the model does not know ${u.map((w) => `'${w}'`).join(', ')}`); };
  const ps = job.kind === 'personas' ? job.seeds : job.kind === 'threads' ? job.personas : [];
  for (const p of ps) { check(`persona ${p.name}`, `${p.name} ${p.bio}`); if (!p.temperament) out.push(`persona ${p.name}: the bio is not in the world's form ("a <kind> <role> who loves <topic> and <topic>."), so the model has seen nothing like it`); }
  if (job.kind === 'whatif' && !('kind' in job.inject)) check('the injected reply', `${job.inject.author} ${job.inject.text}`);
  return out;
}

/** Run defaults from results.json (the sampling it was measured with), else the recipe's. */
function runDefaults(run: string | undefined): Defaults {
  const d = { temperature: 1, topP: 1, maxTokens: 40 };
  try {
    const c = JSON.parse(readFileSync(join(run ?? '', 'results.json'), 'utf8')).config;
    return { temperature: c.temperature ?? d.temperature, topP: c.topP ?? d.topP, maxTokens: Math.min(LIMITS.maxTokens, c.maxTokens ?? d.maxTokens) };
  } catch {
    return d;
  }
}

export async function startSimulacraServer(o: SimulacraServeOptions): Promise<SimulacraServer> {
  const host = o.host ?? '127.0.0.1', port = o.port ?? 8080, seed = o.seed ?? 0, bodyLimit = o.maxBodyBytes ?? 64 * 1024, log = o.log ?? (() => {});
  if (!(Number.isInteger(port) && port >= 0 && port <= 65535)) throw new KilnError('INVALID_ARGUMENT', `simulacra serve: port must be in [0, 65535], got ${port}`);
  let spec: SamplerSpec;
  if (o.openai) spec = { type: 'openai', ...o.openai };
  else if (o.run) {
    const model = resolve(o.run, 'model');
    if (!existsSync(join(model, 'model.safetensors'))) throw new KilnError('INVALID_ARGUMENT', `simulacra serve: ${o.run} is not a finished \`kiln simulacra run\` folder (no model/model.safetensors)`);
    spec = { type: 'kiln', model, threads: o.threads ?? null };
  } else throw new KilnError('INVALID_ARGUMENT', 'simulacra serve: give a run folder (--run DIR) or --model openai:URL');
  const worker = await SimulacraWorker.start(spec);
  const defaults = runDefaults(o.run), unknown = vocabularyCheck(o.run);
  const seeds = new Rng(seed, 'simulacra-serve-seeds');
  const page = renderApp();
  const world = () => ({
    model: worker.samplerName,
    goals: TOPICS,
    rules: BEHAVIOURS.map((b) => ({ id: b, text: RULES[b] })),
    temperaments: TEMPERAMENTS,
    names: NAMES,
    examplePersonas: drawPersonas(new Rng(seed, 'simulacra-serve-examples'), 4),
    defaults, limits: LIMITS, vocabularyChecked: !!o.run,
    queue: { running: worker.busy, queued: worker.queued },
  });

  const generate = async (kind: SimJob['kind'], req: IncomingMessage, res: ServerResponse) => {
    const raw = await readBody(req, bodyLimit);
    if (raw === null) return sendJson(res, 413, new ApiError(413, `the request body is larger than ${bodyLimit} bytes`, null, 'request_too_large').toJSON(), { connection: 'close' });
    let body: unknown;
    try { body = JSON.parse(raw.toString('utf8')); } catch (e) { throw new ApiError(400, `the body is not JSON: ${(e as Error).message}`, null, 'invalid_json'); }
    const job = parseJob(kind, body, defaults, () => seeds.nextU32());
    if (worker.queued >= LIMITS.queue) throw new ApiError(503, `busy: ${worker.queued} generations queued; retry later`, null, 'server_busy');
    const warnings = warningsOf(job, unknown);
    const { outcome, cancel } = worker.submit(job);
    res.on('close', () => { if (!res.writableFinished) cancel(); });
    const out = await outcome;
    if (!out.ok) throw new ApiError(out.status, out.message);
    sendJson(res, 200, { ...answer(job, out.result), warnings });
  };

  const routes: Record<string, { method: string; handle: (req: IncomingMessage, res: ServerResponse) => Promise<void> | void }> = {
    '/': { method: 'GET', handle: (_q, res) => { res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'" }); res.end(page); } },
    '/api/world': { method: 'GET', handle: (_q, res) => sendJson(res, 200, world()) },
    '/api/personas': { method: 'POST', handle: (q, r) => generate('personas', q, r) },
    '/api/threads': { method: 'POST', handle: (q, r) => generate('threads', q, r) },
    '/api/whatif': { method: 'POST', handle: (q, r) => generate('whatif', q, r) },
    '/api/multiverse': { method: 'POST', handle: (q, r) => generate('multiverse', q, r) },
  };

  const http = createServer((req, res) => {
    const t0 = Date.now();
    res.on('finish', () => log(`${req.method} ${req.url} ${res.statusCode} ${Date.now() - t0} ms`));
    const path = (req.url ?? '/').split('?')[0];
    const r = routes[path];
    const fail = (e: unknown) => {
      if (req.destroyed && res.destroyed) return;
      const err = e instanceof ApiError ? e : new ApiError(500, `internal error: ${e instanceof Error ? e.message : String(e)}`);
      sendJson(res, err.status, err.toJSON(), err.status === 405 ? { allow: r!.method } : {});
    };
    if (!r) return fail(new ApiError(404, `no such page: ${req.method} ${path}`, null, 'unknown_url'));
    if (req.method !== r.method) return fail(new ApiError(405, `${req.method} is not allowed on ${path} (use ${r.method})`, null, 'method_not_allowed'));
    Promise.resolve().then(() => r.handle(req, res)).catch(fail);
  });
  try {
    await new Promise<void>((ok, no) => { http.once('error', no); http.listen(port, host, () => { http.off('error', no); ok(); }); });
  } catch (e) {
    await worker.close();
    throw new KilnError('INVALID_ARGUMENT', `simulacra serve: cannot listen on ${host}:${port}: ${(e as Error).message}`);
  }
  const addr = http.address() as AddressInfo;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}/`, port: addr.port, http, worker,
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((r) => http.close(() => r()));
        http.closeIdleConnections();
        await worker.close(); // waiting requests are answered 503
        await new Promise((r) => setTimeout(r, 20));
        http.closeAllConnections();
        await closed;
      })();
      return closing;
    },
  };
}

// ---------------------------------------------------------------- the command

const HELP = `usage: kiln simulacra serve [--run DIR | --model openai:URL] [options]

The social-simulacra designer tool (SimReddit, Park et al. 2022) as a local web page: pick a
community's goal and rules, edit seed personas, generate member personas and threads, then on any
thread a WhatIf (inject a hostile, friendly or custom reply and see how the next replies go) or a
Multiverse (K versions of its replies side by side), each with the keyword labeller's counts
(insults, self promotion, off-topic, memes). Generation runs in a worker thread, one job at a time.
JSON API: GET /api/world, POST /api/personas, /api/threads, /api/whatif, /api/multiverse.

options:
  --run DIR          a finished \`kiln simulacra run\` folder (its model/ is loaded)
  --model openai:URL generate with an OpenAI-compatible /completions endpoint instead
  --model-name NAME  the endpoint's model name (default OPENAI_MODEL, else its first /models entry)
  --api-key KEY      the endpoint's API key (default OPENAI_API_KEY)
  --host H           address to listen on (default 127.0.0.1)
  --port N           port (default 8080; 0 picks a free one)
  --seed S           seeds of requests that give none come from this (default 0)
  --threads N        CPU threads for the model (default: all cores, or KILN_NUM_THREADS)
  --quiet            no log line per request
  -h, --help         this help`;

export interface ServeIO { out: (s: string) => void; err: (s: string) => void; onListening?: (s: SimulacraServer) => void }

/** Runs the server until `stop` aborts; returns the exit status. */
export async function runSimulacraServe(argv: string[], stop: AbortSignal, io: ServeIO = { out: console.log, err: console.error }): Promise<number> {
  const { positional, flags } = parseArgs(argv, ['help', 'quiet']);
  if (flags.help) { io.out(HELP); return 0; }
  if (positional.length) throw new UsageError(`simulacra serve: unexpected argument '${positional[0]}'`);
  checkFlags(flags, ['run', 'model', 'model-name', 'api-key', 'host', 'port', 'seed', 'threads', 'quiet'], 'simulacra serve');
  const run = flagString(flags, 'run'), spec = flagString(flags, 'model');
  if ((run === undefined) === (spec === undefined)) {
    if (run === undefined) { io.out(HELP); return 2; }
    throw new UsageError('simulacra serve: give --run DIR or --model openai:URL, not both');
  }
  if (spec === undefined && (flags['model-name'] !== undefined || flags['api-key'] !== undefined)) throw new UsageError('--model-name and --api-key need --model openai:<url>');
  let openai: SimulacraServeOptions['openai'];
  if (spec !== undefined) {
    const url = spec.startsWith('openai:') ? spec.slice('openai:'.length) : '';
    if (!/^https?:\/\//.test(url)) throw new UsageError(`--model: expected openai:<http(s) url>, got '${spec}'`);
    const oo = openAIOptionsFrom({ apiKey: flagString(flags, 'api-key'), model: flagString(flags, 'model-name') });
    let model = oo.model;
    try { model ??= await OpenAICompletionsModel.firstServedModel(url, oo.apiKey); } catch (e) {
      if (e instanceof EndpointError) throw new KilnError('ENDPOINT_ERROR', `simulacra: ${e.message}`);
      throw e;
    }
    openai = { url, model, apiKey: oo.apiKey };
  }
  const server = await startSimulacraServer({
    run, openai, host: flagString(flags, 'host', '127.0.0.1'), port: flagInt(flags, 'port', 8080, 0, 65535), seed: flagInt(flags, 'seed', 0, 0, MAX_SEED),
    threads: flagInt(flags, 'threads', undefined, 1, 1024) ?? null, log: flags.quiet ? undefined : (l) => io.err(`[simulacra serve] ${l}`),
  });
  io.out(`kiln simulacra serve: ${server.worker.samplerName} at ${server.url}`);
  io.onListening?.(server);
  if (!stop.aborted) await new Promise<void>((r) => stop.addEventListener('abort', () => r(), { once: true }));
  io.err('kiln simulacra serve: shutting down');
  await server.close();
  return 0;
}

/** `kiln simulacra serve ...` until SIGINT or SIGTERM. */
export async function serveCommand(argv: string[]): Promise<number> {
  const ctl = new AbortController();
  const onSignal = () => ctl.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await runSimulacraServe(argv, ctl.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
