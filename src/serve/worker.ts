// The model worker (see model-worker.ts): loads the model named in workerData, then answers
// completion jobs. Jobs that arrive while a decode runs wait in a queue; each round takes the
// queued jobs in order, up to maxBatch choices (at least one job), and decodes them together.
import { parentPort, workerData } from 'node:worker_threads';
import * as kiln from '../index.js';
import { KilnError } from '../errors.js';
import { loadKilnLanguageModel } from '../recipes/bigbench/kiln-model.js';
import { KilnCompleter, PromptError, type CompletionJob } from './completions.js';
import { CANCEL_SLOTS, type FromWorker, type ToWorker, type WireError, type WorkerConfig } from './model-worker.js';

const port = parentPort;
if (!port) throw new Error('kiln serve: worker.ts runs inside a worker thread');
const cfg = workerData as WorkerConfig;
const send = (m: FromWorker) => port.postMessage(m);
const cancelled = new Int32Array(cfg.cancelled);
const isCancelled = (id: number) => Atomics.load(cancelled, id % CANCEL_SLOTS) === id;

function errorOf(e: unknown): WireError {
  if (e instanceof PromptError) return { status: 400, message: e.message, param: 'prompt', code: null };
  if (e instanceof KilnError && e.code === 'INVALID_ARGUMENT') return { status: 400, message: e.message, param: null, code: null };
  return { status: 500, message: `the model failed on this request: ${e instanceof Error ? e.message : String(e)}`, param: null, code: null };
}

let completer: KilnCompleter | null = null;
try {
  if (cfg.threads !== null) kiln.setNumThreads(cfg.threads);
  const lm = loadKilnLanguageModel(cfg.model);
  completer = new KilnCompleter(lm, { maxBatch: cfg.maxBatch });
  const c = lm.model.config;
  send({
    type: 'ready',
    info: {
      blockSize: lm.blockSize, vocabSize: lm.vocabSize, tokenizer: (lm.tokenizer.toJSON() as { type?: string }).type ?? 'unknown',
      parameters: lm.model.parameters().reduce((s, p) => s + p.size, 0), config: { nLayer: c.nLayer, nHead: c.nHead, nEmbd: c.nEmbd },
    },
  });
} catch (e) {
  send({ type: 'load-error', message: e instanceof Error ? e.message : String(e) });
}

const queue: { id: number; job: CompletionJob }[] = [];
let scheduled = false;

function schedule(): void {
  if (scheduled || queue.length === 0) return;
  scheduled = true;
  // setImmediate runs after the messages already delivered, so they join this round.
  setImmediate(round);
}

function round(): void {
  scheduled = false;
  const take: typeof queue = [];
  let choices = 0;
  while (queue.length > 0) {
    const size = queue[0].job.prompts.length * queue[0].job.n;
    if (take.length > 0 && choices + size > cfg.maxBatch) break;
    take.push(queue.shift()!);
    choices += size;
  }
  if (take.length > 0) run(take);
  schedule();
}

/** Decodes jobs together; if that fails, each job alone, so one job's failure is its own. */
function run(take: typeof queue): void {
  try {
    const results = completer!.completeMany(take.map((t) => t.job), { stopped: (k) => isCancelled(take[k].id) });
    results.forEach((r, k) => send(r instanceof Error ? { type: 'error', id: take[k].id, error: errorOf(r) } : { type: 'result', id: take[k].id, result: r }));
  } catch (e) {
    if (take.length > 1) for (const t of take) run([t]);
    else send({ type: 'error', id: take[0].id, error: errorOf(e) });
  }
}

if (completer) {
  port.on('message', (m: ToWorker) => {
    if (m.type === 'complete') queue.push({ id: m.id, job: m.job });
    else if (m.type === 'cancel') {
      const i = queue.findIndex((q) => q.id === m.id);
      if (i >= 0) queue.splice(i, 1);
    }
    schedule();
  });
}
