// The server's side of the model worker: a worker_threads thread that loads a `kiln:` model
// folder and runs completion jobs (worker.ts), so the server's event loop only parses, queues and
// answers. Jobs go to the worker as they come; the worker queues them and decodes what is queued
// together. Every job's promise resolves (never rejects): with a result, or with an error status
// for the client.
//
// The worker file sits next to this module: worker.js under dist/ (the `kiln` command), or
// worker.ts when kiln runs from its TypeScript sources under tsx (the tests). Node 20 does not
// carry tsx's hooks into workers, so a .ts worker starts from a small eval'd bootstrap that
// registers tsx's ESM loader in the worker and then imports worker.ts.
import { Worker } from 'node:worker_threads';
import { KilnError } from '../errors.js';
import type { CompletionJob, CompletionResult } from './completions.js';

export interface WorkerConfig {
  /** A `kiln:` model: a folder with model.safetensors and tokenizer.json (or a checkpoint file). */
  model: string;
  /** Decode rows per forward pass, and choices gathered from queued jobs into one decode (default 16). */
  maxBatch: number;
  /** kiln.setNumThreads in the worker (null: leave the default, all cores or KILN_NUM_THREADS). */
  threads: number | null;
  /**
   * Cancelled job ids, shared with the worker: slot id % CANCEL_SLOTS holds id once job id is
   * cancelled, which the worker's decoder checks every step (a job in progress stops early).
   */
  cancelled: SharedArrayBuffer;
}

export const CANCEL_SLOTS = 4096;

export interface ModelInfo {
  blockSize: number;
  vocabSize: number;
  tokenizer: string;
  parameters: number;
  config: { nLayer: number; nHead: number; nEmbd: number };
}

export interface WireError {
  status: number;
  message: string;
  param: string | null;
  code: string | null;
}

export type ToWorker = { type: 'complete'; id: number; job: CompletionJob } | { type: 'cancel'; id: number };
export type FromWorker =
  | { type: 'ready'; info: ModelInfo }
  | { type: 'load-error'; message: string }
  | { type: 'result'; id: number; result: CompletionResult }
  | { type: 'error'; id: number; error: WireError };

export type Outcome = { ok: true; result: CompletionResult } | { ok: false; error: WireError };

function spawn(cfg: WorkerConfig): Worker {
  const self = import.meta.url;
  if (!self.endsWith('.ts')) return new Worker(new URL('./worker.js', self), { workerData: cfg });
  let tsx: string;
  try {
    tsx = import.meta.resolve('tsx/esm/api');
  } catch {
    throw new KilnError('INVALID_ARGUMENT', 'serve: running from the TypeScript sources needs tsx to load the worker (or run the compiled dist/)');
  }
  const entry = new URL('./worker.ts', self).href;
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(boot, { eval: true, workerData: cfg });
}

const serverError = (message: string, status = 500): WireError => ({ status, message, param: null, code: null });

export class ModelWorker {
  private nextId = 1;
  private readonly pendingJobs = new Map<number, (o: Outcome) => void>();
  private exited = false;
  private closing = false;
  private lastError: string | null = null;
  private readonly exitPromise: Promise<void>;

  private constructor(private readonly worker: Worker, readonly info: ModelInfo, exitPromise: Promise<void>, private readonly cancelFlags: Int32Array) {
    this.exitPromise = exitPromise;
    worker.on('message', (m: FromWorker) => {
      if (m.type !== 'result' && m.type !== 'error') return;
      const done = this.pendingJobs.get(m.id);
      if (!done) return; // cancelled
      this.pendingJobs.delete(m.id);
      done(m.type === 'result' ? { ok: true, result: m.result } : { ok: false, error: m.error });
    });
    worker.on('error', (e) => { this.lastError = e instanceof Error ? e.message : String(e); });
    worker.on('exit', (code) => {
      this.exited = true;
      const why = this.closing ? serverError('the server is shutting down', 503) : serverError(`the model worker stopped (exit code ${code}${this.lastError ? `: ${this.lastError}` : ''})`);
      for (const done of this.pendingJobs.values()) done({ ok: false, error: why });
      this.pendingJobs.clear();
    });
  }

  /** Starts the worker and waits until it has loaded the model (a KilnError if it cannot). */
  static async start(cfg: Partial<WorkerConfig> & { model: string }): Promise<ModelWorker> {
    const full: WorkerConfig = { model: cfg.model, maxBatch: cfg.maxBatch ?? 16, threads: cfg.threads ?? null,
      cancelled: new SharedArrayBuffer(4 * CANCEL_SLOTS) };
    const worker = spawn(full);
    const exitPromise = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    const info = await new Promise<ModelInfo>((resolve, reject) => {
      const fail = (message: string) => {
        cleanup();
        void worker.terminate();
        reject(new KilnError('INVALID_ARGUMENT', message));
      };
      const onMessage = (m: FromWorker) => {
        if (m.type === 'ready') {
          cleanup();
          resolve(m.info);
        } else if (m.type === 'load-error') fail(m.message);
      };
      const onError = (e: unknown) => fail(`the model worker failed to start: ${e instanceof Error ? e.message : String(e)}`);
      const onExit = (code: number) => fail(`the model worker exited (code ${code}) before loading the model`);
      const cleanup = () => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    });
    return new ModelWorker(worker, info, exitPromise, new Int32Array(full.cancelled));
  }

  /** Jobs sent and not yet answered. */
  get pending(): number {
    return this.pendingJobs.size;
  }

  /** False once the worker thread has exited. */
  get alive(): boolean {
    return !this.exited;
  }

  /**
   * Queues a job; `cancel` (the client went away) settles it with status 499 and drops it from the
   * worker's queue, or, when the worker is decoding it, stops its rows at their next step.
   */
  submit(job: CompletionJob): { outcome: Promise<Outcome>; cancel: () => void } {
    if (this.exited || this.closing)
      return { outcome: Promise.resolve({ ok: false, error: serverError(this.closing ? 'the server is shutting down' : 'the model worker is not running', 503) }), cancel: () => {} };
    const id = this.nextId++;
    const outcome = new Promise<Outcome>((resolve) => this.pendingJobs.set(id, resolve));
    this.post({ type: 'complete', id, job });
    return {
      outcome,
      cancel: () => {
        const done = this.pendingJobs.get(id);
        if (!done) return;
        this.pendingJobs.delete(id);
        Atomics.store(this.cancelFlags, id % CANCEL_SLOTS, id);
        this.post({ type: 'cancel', id });
        done({ ok: false, error: serverError('cancelled: the client closed the connection', 499) });
      },
    };
  }

  private post(m: ToWorker): void {
    if (!this.exited) this.worker.postMessage(m);
  }

  /** Terminates the worker (a job in progress is abandoned; pending jobs get 503). */
  async close(): Promise<void> {
    this.closing = true;
    if (!this.exited) await this.worker.terminate();
    await this.exitPromise;
  }
}
