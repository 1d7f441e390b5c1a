// `kiln serve`'s HTTP server (node:http): GET /v1/models, GET /v1/models/<id> and POST
// /v1/completions in OpenAI's format, generation in a worker thread (model-worker.ts). The event
// loop here only reads bodies, checks fields, queues jobs and writes answers, so it answers
// /v1/models while a long completion computes. Every failure becomes an OpenAI-style error
// answer: 400 bad field, 401 missing or wrong key, 404 unknown route or model, 405 wrong method,
// 413 body too large, 503 queue full or shutting down, 500 a model failure.
import { createHash, timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, resolve } from 'node:path';
import { KilnError } from '../errors.js';
import { ModelWorker, type ModelInfo } from './model-worker.js';
import {
  ApiError, completionResponse, DEFAULT_LIMITS, modelObject, modelsResponse, parseCompletionRequest, type ServeLimits,
} from './protocol.js';

export interface ServeOptions {
  /** The `kiln:` model folder (model.safetensors + tokenizer.json) or checkpoint file. */
  model: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 8000; 0 picks a free port. */
  port?: number;
  /** Require `Authorization: Bearer <apiKey>` on /v1 routes. */
  apiKey?: string;
  /** The model id clients send (default: the model folder's name). */
  modelName?: string;
  /** Request bodies above this are refused with 413 (default 1 MiB). */
  maxBodyBytes?: number;
  /** Completions queued or running at once; more are refused with 503 (default 256). */
  maxPending?: number;
  /** Decode rows per forward pass in the worker (default 16). */
  maxBatch?: number;
  /** CPU threads for the worker's kernels (default: kiln's default). */
  threads?: number | null;
  limits?: Partial<ServeLimits>;
  /** One line per request (method, path, status, milliseconds); default none. */
  log?: (line: string) => void;
}

export interface KilnServer {
  /** e.g. http://127.0.0.1:8000/v1 (the base URL an OpenAI client takes). */
  readonly baseUrl: string;
  readonly host: string;
  readonly port: number;
  readonly modelName: string;
  readonly info: ModelInfo;
  readonly http: Server;
  readonly worker: ModelWorker;
  /** Stops accepting, answers queued completions with 503, terminates the worker, closes every connection. */
  close(): Promise<void>;
}

const DEFAULT_BODY_LIMIT = 1 << 20;

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

function sendError(res: ServerResponse, e: ApiError, headers: Record<string, string> = {}): void {
  sendJson(res, e.status, e.toJSON(), headers);
}

/** The body, or null when it is larger than `limit` (the rest is then discarded unread). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve(null);
  return new Promise((resolvePromise, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size <= limit) return void chunks.push(c);
      req.off('data', onData);
      req.resume();
      resolvePromise(null);
    };
    req.on('data', onData);
    req.on('end', () => resolvePromise(size <= limit ? Buffer.concat(chunks) : null));
    req.on('error', reject);
    req.on('aborted', () => reject(new Error('the client aborted the request')));
  });
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Starts the worker (loading the model), then listens; resolves once both are ready. */
export async function startServer(opts: ServeOptions): Promise<KilnServer> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 8000;
  if (!(Number.isInteger(port) && port >= 0 && port <= 65535)) throw new KilnError('INVALID_ARGUMENT', `startServer: port must be an integer in [0, 65535], got ${port}`);
  if (opts.apiKey !== undefined && opts.apiKey.length === 0) throw new KilnError('INVALID_ARGUMENT', 'startServer: the API key must not be empty');
  const modelName = opts.modelName ?? basename(resolve(opts.model));
  if (modelName.length === 0) throw new KilnError('INVALID_ARGUMENT', 'startServer: the model name must not be empty');
  const limits: ServeLimits = { ...DEFAULT_LIMITS, ...opts.limits };
  const bodyLimit = opts.maxBodyBytes ?? DEFAULT_BODY_LIMIT;
  const maxPending = opts.maxPending ?? 256;
  const log = opts.log ?? (() => {});
  const keyDigest = opts.apiKey === undefined ? null : digest(opts.apiKey);
  const created = Date.now();

  if (!existsSync(opts.model))
    throw new KilnError('INVALID_ARGUMENT', `serve: no model at ${opts.model} (want a folder with model.safetensors and tokenizer.json, or a checkpoint file)`);
  const worker = await ModelWorker.start({ model: opts.model, maxBatch: opts.maxBatch, threads: opts.threads ?? null });

  const authorized = (req: IncomingMessage): ApiError | null => {
    if (!keyDigest) return null;
    const h = req.headers.authorization;
    const m = typeof h === 'string' ? /^Bearer\s+(.+)$/i.exec(h.trim()) : null;
    if (!m) return new ApiError(401, 'You didn\'t provide an API key: send it as "Authorization: Bearer <key>"', null, 'invalid_api_key');
    if (!timingSafeEqual(digest(m[1]), keyDigest)) return new ApiError(401, 'Incorrect API key provided', null, 'invalid_api_key');
    return null;
  };

  const completions = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const raw = await readBody(req, bodyLimit);
    if (raw === null) return sendError(res, new ApiError(413, `the request body is larger than ${bodyLimit} bytes`, null, 'request_too_large'), { connection: 'close' });
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch (e) {
      return sendError(res, new ApiError(400, `We could not parse the JSON body of your request: ${(e as Error).message}`, null, 'invalid_json'));
    }
    const job = parseCompletionRequest(body, modelName, limits);
    if (worker.pending >= maxPending)
      return sendError(res, new ApiError(503, `the server is busy (${worker.pending} completions queued); retry later`, null, 'server_busy'), { 'retry-after': '1' });
    const { outcome, cancel } = worker.submit(job);
    res.on('close', () => { if (!res.writableFinished) cancel(); });
    const o = await outcome;
    if (o.ok) return sendJson(res, 200, completionResponse(modelName, o.result));
    if (o.error.status !== 499) sendError(res, new ApiError(o.error.status, o.error.message, o.error.param, o.error.code));
  };

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = req.method ?? 'GET';
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/v1' || path.startsWith('/v1/')) {
      const denied = authorized(req);
      if (denied) return sendError(res, denied, { 'www-authenticate': 'Bearer' });
    }
    const only = (allowed: string) => {
      sendError(res, new ApiError(405, `${method} is not allowed on ${path} (use ${allowed})`, null, 'method_not_allowed'), { allow: allowed });
    };
    if (path === '/v1/models') return method === 'GET' ? sendJson(res, 200, modelsResponse(modelName, created)) : only('GET');
    if (path.startsWith('/v1/models/')) {
      if (method !== 'GET') return only('GET');
      let id: string | null;
      try {
        id = decodeURIComponent(path.slice('/v1/models/'.length));
      } catch {
        id = null;
      }
      if (id === modelName) return sendJson(res, 200, modelObject(modelName, created));
      return sendError(res, new ApiError(404, `The model '${id ?? path}' does not exist (this server serves '${modelName}')`, 'model', 'model_not_found'));
    }
    if (path === '/v1/completions') return method === 'POST' ? completions(req, res) : only('POST');
    sendError(res, new ApiError(404, `Unknown request URL: ${method} ${path}`, null, 'unknown_url'));
  };

  const inFlight = new Set<ServerResponse>();
  const http = createServer((req, res) => {
    const t0 = Date.now();
    inFlight.add(res);
    res.on('close', () => inFlight.delete(res));
    res.on('finish', () => log(`${req.method} ${req.url} ${res.statusCode} ${Date.now() - t0} ms`));
    res.on('close', () => { if (!res.writableFinished) log(`${req.method} ${req.url} cancelled: the client closed the connection after ${Date.now() - t0} ms`); });
    route(req, res).catch((e: unknown) => {
      if (e instanceof ApiError) return sendError(res, e);
      if (req.destroyed || res.destroyed) return; // the client went away mid-body
      sendError(res, new ApiError(500, `internal error: ${e instanceof Error ? e.message : String(e)}`));
    });
  });

  try {
    await new Promise<void>((resolveListen, reject) => {
      http.once('error', reject);
      http.listen(port, host, () => {
        http.off('error', reject);
        resolveListen();
      });
    });
  } catch (e) {
    await worker.close();
    throw new KilnError('INVALID_ARGUMENT', `serve: cannot listen on ${host}:${port}: ${(e as Error).message}`);
  }
  const addr = http.address() as AddressInfo;
  const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;

  let closing: Promise<void> | null = null;
  return {
    baseUrl: `http://${shown}:${addr.port}/v1`,
    host: addr.address,
    port: addr.port,
    modelName,
    info: worker.info,
    http,
    worker,
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((r) => http.close(() => r()));
        http.closeIdleConnections();
        await worker.close(); // queued completions are answered 503
        // Let those answers go out (briefly), then cut whatever is left.
        for (let waited = 0; inFlight.size > 0 && waited < 1000; waited += 10) await new Promise((r) => setTimeout(r, 10));
        http.closeAllConnections();
        await closed;
      })();
      return closing;
    },
  };
}
