// The training text of `kiln simulacra`: one document per world thread, in the plain prompt format
// the simulator writes its prompts in (community header, personas, the post, its replies):
//
//   Community: chess club
//   Goal: a place to talk about chess.
//   Rules: be civil; stay on topic.
//
//   Persona: Ana: a kind nurse who loves chess and music.
//   ...
//
//   Post by Ana: What is your favourite opening?
//   Reply by Ben: I agree, the bishop is tricky.
//
// A word tokenizer drops whitespace, so a model sees the lines run together; the markers
// ("Persona:", "Post by", "Reply by") are what separate them.
import * as kiln from '../../index.js';
import { KilnError } from '../../errors.js';
import { Rng } from '../bigbench/rng.js';
import {
  allCommunities, BEHAVIOURS, configKey, drawPersonas, drawThread, lexicon, RULES, TOPICS,
  type Community, type Message, type Persona, type Thread, type Topic,
} from './world.js';

export function header(c: Community): string {
  const rules = c.rules.length ? c.rules.map((b) => RULES[b]).join('; ') : 'none';
  return `Community: ${c.name}\nGoal: a place to talk about ${c.goal}.\nRules: ${rules}.\n`;
}

export const personaLine = (p: Pick<Persona, 'name' | 'bio'>) => `Persona: ${p.name}: ${p.bio}\n`;
export const postLine = (m: Message) => `Post by ${m.author}: ${m.text}\n`;
export const replyLine = (m: Message) => `Reply by ${m.author}: ${m.text}\n`;

/** The whole document of a thread (a prompt of the simulator is a prefix of one). */
export function formatDocument(c: Community, personas: readonly Pick<Persona, 'name' | 'bio'>[], thread?: Thread): string {
  let s = header(c) + '\n' + personas.map(personaLine).join('');
  if (thread) s += '\n' + postLine(thread.post) + thread.replies.map(replyLine).join('');
  return s;
}

export interface ParsedDocument {
  community: Community;
  personas: { name: string; bio: string }[];
  thread: Thread | null;
}

/** Reads a document back (the format above; refuses anything else with a KilnError). */
export function parseDocument(text: string): ParsedDocument {
  const bad = (m: string) => new KilnError('INVALID_ARGUMENT', `simulacra: not a community document: ${m}`);
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const head = /^Community: (.+)$/.exec(lines[0] ?? '');
  const goal = /^Goal: a place to talk about (\w+)\.$/.exec(lines[1] ?? '');
  const rules = /^Rules: (.+)\.$/.exec(lines[2] ?? '');
  if (!head || !goal || !rules) throw bad('the first three lines must be Community:, Goal: and Rules:');
  if (!TOPICS.includes(goal[1] as Topic)) throw bad(`unknown goal topic '${goal[1]}'`);
  const ruleNames = rules[1] === 'none' ? [] : rules[1].split('; ');
  const behaviours = ruleNames.map((r) => {
    const b = BEHAVIOURS.find((x) => RULES[x] === r);
    if (!b) throw bad(`unknown rule '${r}'`);
    return b;
  });
  const community = { name: head[1], goal: goal[1] as Topic, rules: BEHAVIOURS.filter((b) => behaviours.includes(b)) };
  const personas: ParsedDocument['personas'] = [];
  let thread: Thread | null = null;
  for (const l of lines.slice(3)) {
    let m: RegExpExecArray | null;
    if ((m = /^Persona: ([A-Z][a-z]+): (.+)$/.exec(l))) {
      if (thread) throw bad('a persona after the post');
      personas.push({ name: m[1], bio: m[2] });
    } else if ((m = /^Post by ([A-Z][a-z]+): (.+)$/.exec(l))) {
      if (thread) throw bad('a second post');
      thread = { post: { author: m[1], text: m[2] }, replies: [] };
    } else if ((m = /^Reply by ([A-Z][a-z]+): (.+)$/.exec(l))) {
      if (!thread) throw bad('a reply before the post');
      thread.replies.push({ author: m[1], text: m[2] });
    } else throw bad(`unreadable line ${JSON.stringify(l)}`);
  }
  return { community, personas, thread };
}

/** The word tokenizer of the world's lexicon (every world text encodes without <unk>). */
export function worldTokenizer(): kiln.train.WordTokenizer {
  return kiln.train.WordTokenizer.fromText(lexicon());
}

export interface CorpusConfig {
  /** Personas per document (the thread's author and repliers are among them). */
  personas: number;
  replies: number;
  /** Configurations never written into the training text (configKey). */
  heldOut: ReadonlySet<string>;
}

/** A training document: a random seen configuration, its personas and one thread. */
export function drawDocument(rng: Rng, communities: readonly Community[], cfg: Pick<CorpusConfig, 'personas' | 'replies'>): string {
  const c = rng.choice(communities);
  const personas = drawPersonas(rng, cfg.personas);
  return formatDocument(c, personas, drawThread(rng, c, personas, cfg.replies));
}

/** The configurations the training text draws from. */
export function trainingCommunities(heldOut: ReadonlySet<string>): Community[] {
  const cs = allCommunities().filter((c) => !heldOut.has(configKey(c)));
  if (cs.length === 0) throw new KilnError('INVALID_ARGUMENT', 'simulacra: every configuration is held out');
  return cs;
}

/**
 * A batch of `B` documents, one per row of T tokens: the document, <eos>, then padding (targets
 * -100). A document longer than T + 1 tokens is cut (the model then never sees its end).
 */
export function batchAt(seed: number, step: number, B: number, T: number, tok: kiln.train.WordTokenizer, communities: readonly Community[], cfg: CorpusConfig): { x: kiln.Tensor; y: kiln.Tensor; tokens: number } {
  const rng = new Rng(seed, 'simulacra-corpus', String(step));
  const x = new Int32Array(B * T).fill(tok.padId), y = new Int32Array(B * T).fill(-100);
  let tokens = 0;
  for (let b = 0; b < B; b++) {
    const ids = tok.encode(drawDocument(rng, communities, cfg), { eos: true });
    const n = Math.min(T, ids.length - 1);
    x.set(ids.subarray(0, n), b * T);
    y.set(ids.subarray(1, n + 1), b * T);
    tokens += n;
  }
  return { x: kiln.tensor(x, { dtype: 'int32', shape: [B, T] }), y: kiln.tensor(y, { dtype: 'int32', shape: [B * T] }), tokens };
}
