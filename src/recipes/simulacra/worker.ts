// The generation side of `kiln simulacra serve`: one SimReddit job (personas, threads, a WhatIf
// or a Multiverse) run through a fresh Simulator seeded by the job, so a job's answer depends on
// its fields and seed only. `runJob` is plain; the rest of this file is the worker thread that
// holds the sampler (a kiln GPT loaded from the run's model/, or an OpenAI-compatible endpoint)
// and runs the jobs the server sends it, one at a time, so the server's event loop stays free.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import * as kiln from '../../index.js';
import { KilnError } from '../../errors.js';
import { Rng } from '../bigbench/rng.js';
import { loadKilnLanguageModel } from '../bigbench/kiln-model.js';
import { KilnSampler, OpenAISampler, type Sampler } from './sampler.js';
import { Simulator, type PersonaResult, type SimThread } from './simulate.js';
import { injectedReply, labels, type Community, type Message, type Persona } from './world.js';

export interface Sampling {
  temperature: number;
  topP: number;
  maxTokens: number;
  seed: number;
}

export type Injection = Message | { kind: 'hostile' | 'friendly' };

export type SimJob = Sampling & { community: Community } & (
  | { kind: 'personas'; seeds: Persona[]; count: number }
  | { kind: 'threads'; personas: Persona[]; n: number; replies: number; threadPersonas: number }
  /** The thread's first `at` replies are kept, the injected reply follows, then `replies` generated ones. */
  | { kind: 'whatif'; thread: SimThread; at: number; inject: Injection; replies: number }
  | { kind: 'multiverse'; thread: SimThread; k: number; replies: number }
);

export type JobResult =
  | { kind: 'personas'; result: PersonaResult }
  | { kind: 'threads'; threads: SimThread[] }
  | { kind: 'whatif'; thread: SimThread; injected: Message; at: number }
  | { kind: 'multiverse'; versions: SimThread[] };

/** Runs one job on `sampler` (the same job and seed give the same answer). */
export async function runJob(sampler: Sampler, job: SimJob): Promise<JobResult> {
  const c = job.community;
  const opts = { temperature: job.temperature, topP: job.topP, maxTokens: job.maxTokens, seed: job.seed };
  switch (job.kind) {
    case 'personas': {
      const sim = new Simulator(sampler, { ...opts, threadPersonas: 2 });
      return { kind: 'personas', result: await sim.personas(c, job.seeds, job.count) };
    }
    case 'threads': {
      const sim = new Simulator(sampler, { ...opts, threadPersonas: job.threadPersonas });
      return { kind: 'threads', threads: await sim.threads(c, job.personas, job.n, job.replies) };
    }
    case 'whatif': {
      const sim = new Simulator(sampler, { ...opts, threadPersonas: 2 });
      const t = job.thread;
      const kept = t.replies.slice(0, job.at);
      const rng = new Rng(job.seed, 'simulacra-serve-whatif', c.name);
      let injected: Message;
      if ('kind' in job.inject) {
        const prev = kept.length ? kept[kept.length - 1].author : t.post.author;
        const author = rng.choice(t.personas.filter((p) => p.name !== prev)).name;
        injected = { author, text: injectedReply(rng, labels(t.post.text).topic ?? c.goal, job.inject.kind === 'hostile') };
      } else injected = job.inject;
      const [thread] = await sim.continueThreads(c, [{ personas: t.personas, post: t.post, replies: [...kept, injected] }], job.replies, rng, 'whatif');
      return { kind: 'whatif', thread, injected, at: job.at };
    }
    case 'multiverse': {
      const sim = new Simulator(sampler, { ...opts, threadPersonas: 2 });
      const [versions] = await sim.multiverse(c, [{ personas: job.thread.personas, post: job.thread.post, replies: [] }], job.k, job.replies);
      return { kind: 'multiverse', versions };
    }
  }
}

/** What the server gives the worker: a kiln model folder, or an OpenAI-compatible endpoint. */
export type SamplerSpec =
  | { type: 'kiln'; model: string; threads: number | null }
  | { type: 'openai'; url: string; model: string; apiKey?: string };

export interface WorkerData {
  kind: 'kiln.simulacra.worker';
  sampler: SamplerSpec;
}

export type ToWorker = { type: 'job'; id: number; job: SimJob };
export type FromWorker =
  | { type: 'ready'; name: string }
  | { type: 'load-error'; message: string }
  | { type: 'result'; id: number; result: JobResult }
  | { type: 'error'; id: number; status: number; message: string };

function samplerOf(spec: SamplerSpec): Sampler {
  if (spec.type === 'openai') return new OpenAISampler(spec.url, spec.model, spec.apiKey);
  if (spec.threads !== null) kiln.setNumThreads(spec.threads);
  return new KilnSampler(loadKilnLanguageModel(spec.model, { name: `kiln:${spec.model}` }));
}

function workerMain(): void {
  const port = parentPort!;
  const data = workerData as WorkerData;
  const send = (m: FromWorker) => port.postMessage(m);
  let sampler: Sampler;
  try {
    sampler = samplerOf(data.sampler);
  } catch (e) {
    send({ type: 'load-error', message: e instanceof Error ? e.message : String(e) });
    return;
  }
  send({ type: 'ready', name: sampler.name });
  // Jobs arrive one at a time (the server queues them); each is answered, never thrown.
  port.on('message', (m: ToWorker) => {
    if (m.type !== 'job') return;
    runJob(sampler, m.job).then(
      (result) => send({ type: 'result', id: m.id, result }),
      (e: unknown) => {
        const status = e instanceof KilnError && e.code === 'INVALID_ARGUMENT' ? 400 : e instanceof KilnError && (e.code as string) === 'ENDPOINT_ERROR' ? 502 : 500;
        send({ type: 'error', id: m.id, status, message: e instanceof Error ? e.message : String(e) });
      },
    );
  });
}

if (!isMainThread && (workerData as WorkerData | undefined)?.kind === 'kiln.simulacra.worker') workerMain();
