// SimReddit's prompt chains (Park et al., arXiv 2208.04024, section 4) over any Sampler: personas
// generated from the community's description and the designer's seed personas; top-level posts by
// those personas; reply chains by other personas; WhatIf (the designer injects a reply and the
// model writes how the thread goes on); Multiverse (k samples of one thread's replies).
//
// Every prompt is a prefix of a training document (corpus.ts): the community header, the thread's
// personas, the thread so far, then "Persona:", "Post by <name>:" or "Reply by <name>:". Who
// posts and who replies is drawn by the simulator (seeded), as the world's generator does; the
// model writes what they say.
import { KilnError } from '../../errors.js';
import { hashString, Rng } from '../bigbench/rng.js';
import { formatDocument } from './corpus.js';
import type { Sampler } from './sampler.js';
import { injectedReply, labels, parsePersona, type Community, type Message, type Persona, type Thread } from './world.js';

/** Stops for one line: a kiln word model never writes "\n", a real LLM does. */
export const STOPS = ['\n', 'Reply by', 'Post by', 'Persona:'];

export interface SimulatorOptions {
  temperature: number;
  topP: number;
  /** Tokens per generated line. */
  maxTokens: number;
  seed: number;
  /** Personas per thread prompt (the training documents' count). */
  threadPersonas: number;
}

export interface SimThread extends Thread {
  personas: Persona[];
}

export interface PersonaResult {
  personas: Persona[];
  /** Continuations sampled, and those that did not read as a persona line (or repeated a name). */
  sampled: number;
  rejected: string[];
}

/** The persona prompt: the community, the personas so far, and "Persona:". */
export const personaPrompt = (c: Community, seeds: readonly Pick<Persona, 'name' | 'bio'>[]) => formatDocument(c, seeds) + 'Persona:';
export const postPrompt = (c: Community, personas: readonly Persona[], author: string) => formatDocument(c, personas) + `\nPost by ${author}:`;
export const replyPrompt = (c: Community, t: SimThread, author: string) => formatDocument(c, t.personas, t) + `Reply by ${author}:`;

export class Simulator {
  private calls = 0;

  constructor(readonly sampler: Sampler, readonly opts: SimulatorOptions) {
    const o = opts;
    if (!(Number.isFinite(o.temperature) && o.temperature >= 0)) throw new KilnError('INVALID_ARGUMENT', `simulacra: temperature must be >= 0, got ${o.temperature}`);
    if (!(o.topP > 0 && o.topP <= 1)) throw new KilnError('INVALID_ARGUMENT', `simulacra: top-p must be in (0, 1], got ${o.topP}`);
    if (!(Number.isInteger(o.maxTokens) && o.maxTokens >= 1)) throw new KilnError('INVALID_ARGUMENT', `simulacra: maxTokens must be a positive integer, got ${o.maxTokens}`);
    if (!(Number.isInteger(o.threadPersonas) && o.threadPersonas >= 2)) throw new KilnError('INVALID_ARGUMENT', `simulacra: threadPersonas must be an integer >= 2, got ${o.threadPersonas}`);
  }

  /** One sampling call; each call of the run gets its own seed (the run's seed, the call's tag and number). */
  private async lines(tag: string, prompts: string[], n = 1): Promise<string[][]> {
    const seed = (Math.imul(this.opts.seed ^ hashString(tag), 0x9e3779b1) + this.calls++) >>> 0;
    const out = await this.sampler.sample({ prompts, n, maxTokens: this.opts.maxTokens, temperature: this.opts.temperature, topP: this.opts.topP, stop: STOPS, seed });
    return out.map((xs) => xs.map((x) => x.replace(/\s+/g, ' ').trim()));
  }

  /** `count` new personas (distinct names, none a seed's), sampled from the community and the seeds. */
  async personas(c: Community, seeds: readonly Persona[], count: number): Promise<PersonaResult> {
    const personas: Persona[] = [];
    const rejected: string[] = [];
    let sampled = 0;
    const taken = new Set(seeds.map((p) => p.name));
    for (let round = 0; round < 4 && personas.length < count; round++) {
      const [texts] = await this.lines(`personas ${c.name}`, [personaPrompt(c, seeds)], 2 * (count - personas.length));
      for (const t of texts) {
        sampled++;
        const p = parsePersona(t);
        if (!p || taken.has(p.name) || personas.length >= count) {
          if (personas.length < count) rejected.push(t);
          continue;
        }
        taken.add(p.name);
        personas.push(p);
      }
    }
    return { personas, sampled, rejected };
  }

  /** One post per thread: thread i's personas are drawn from the pool, its author the first of them. */
  async posts(c: Community, pool: readonly Persona[], count: number, tag = 'posts'): Promise<SimThread[]> {
    if (pool.length < this.opts.threadPersonas) throw new KilnError('INVALID_ARGUMENT', `simulacra: ${pool.length} personas, a thread needs ${this.opts.threadPersonas}`);
    const rng = new Rng(this.opts.seed, 'simulacra-cast', c.name, tag);
    const casts = Array.from({ length: count }, () => rng.sample(pool, this.opts.threadPersonas));
    const texts = await this.lines(`${tag} ${c.name}`, casts.map((ps) => postPrompt(c, ps, ps[0].name)));
    return casts.map((ps, i) => ({ personas: ps, post: { author: ps[0].name, text: texts[i][0] }, replies: [] }));
  }

  /**
   * `rounds` more replies on every thread: each by one of the thread's personas other than the
   * previous speaker, drawn from `rng` (so two arms given equal rngs get the same repliers).
   */
  async continueThreads(c: Community, threads: SimThread[], rounds: number, rng: Rng, tag = 'replies'): Promise<SimThread[]> {
    const out = threads.map((t) => ({ ...t, replies: [...t.replies] }));
    for (let r = 0; r < rounds; r++) {
      const authors = out.map((t) => {
        const prev = t.replies.length ? t.replies[t.replies.length - 1].author : t.post.author;
        return rng.choice(t.personas.filter((p) => p.name !== prev)).name;
      });
      const texts = await this.lines(`${tag} ${c.name} ${r}`, out.map((t, i) => replyPrompt(c, t, authors[i])));
      out.forEach((t, i) => t.replies.push({ author: authors[i], text: texts[i][0] }));
    }
    return out;
  }

  /** Posts and their reply chains. */
  async threads(c: Community, pool: readonly Persona[], count: number, replies: number): Promise<SimThread[]> {
    const posts = await this.posts(c, pool, count);
    return this.continueThreads(c, posts, replies, new Rng(this.opts.seed, 'simulacra-repliers', c.name));
  }

  /**
   * WhatIf: on each base thread's post, a designer's hostile reply and, in the other arm, a friendly
   * one (the same injecting persona), then `follow` generated replies by the same repliers.
   */
  async whatIf(c: Community, bases: readonly SimThread[], follow: number): Promise<{ hostile: SimThread[]; friendly: SimThread[]; injected: { hostile: Message; friendly: Message }[] }> {
    const rng = new Rng(this.opts.seed, 'simulacra-whatif', c.name);
    const injected = bases.map((t) => {
      const author = rng.choice(t.personas.filter((p) => p.name !== t.post.author)).name;
      const topic = labels(t.post.text).topic ?? c.goal;
      return { hostile: { author, text: injectedReply(rng, topic, true) }, friendly: { author, text: injectedReply(rng, topic, false) } };
    });
    const arm = (k: 'hostile' | 'friendly') => bases.map((t, i) => ({ personas: t.personas, post: t.post, replies: [injected[i][k]] }));
    const hostile = await this.continueThreads(c, arm('hostile'), follow, new Rng(this.opts.seed, 'simulacra-whatif-repliers', c.name), 'whatif-hostile');
    const friendly = await this.continueThreads(c, arm('friendly'), follow, new Rng(this.opts.seed, 'simulacra-whatif-repliers', c.name), 'whatif-friendly');
    return { hostile, friendly, injected };
  }

  /** Multiverse: `k` versions of each base thread's replies after the same post, by the same repliers. */
  async multiverse(c: Community, bases: readonly SimThread[], k: number, replies: number): Promise<SimThread[][]> {
    if (!(Number.isInteger(k) && k >= 2)) throw new KilnError('INVALID_ARGUMENT', `simulacra: multiverse needs k >= 2 versions, got ${k}`);
    const copies = bases.flatMap((t) => Array.from({ length: k }, () => ({ personas: t.personas, post: t.post, replies: [] as Message[] })));
    // One replier sequence per base thread, replayed in every version: versions differ by sampling only.
    const rng = new Rng(this.opts.seed, 'simulacra-multiverse', c.name);
    const seq = bases.map(() => rng.nextU32());
    for (let r = 0; r < replies; r++) {
      const authors = copies.map((t, i) => {
        const b = Math.floor(i / k);
        const pick = new Rng(seq[b], 'round', String(r));
        const prev = t.replies.length ? t.replies[t.replies.length - 1].author : t.post.author;
        return pick.choice(t.personas.filter((p) => p.name !== prev)).name;
      });
      const texts = await this.lines(`multiverse ${c.name} ${r}`, copies.map((t, i) => replyPrompt(c, t, authors[i])));
      copies.forEach((t, i) => t.replies.push({ author: authors[i], text: texts[i][0] }));
    }
    return bases.map((_, b) => copies.slice(b * k, (b + 1) * k));
  }
}
