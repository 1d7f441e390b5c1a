// The synthetic world of `kiln simulacra`: communities (a goal topic and rules), personas (a name,
// interests, a temperament and a bio) and a seeded generative process for threads whose behaviours
// are known. It stands in for the Reddit data GPT-3 had absorbed in Social Simulacra (Park et al.,
// arXiv 2208.04024): a designer's inputs (goal, rules, seed personas) shape what the world writes.
//
// The process: a post's author is one of the thread's personas; its topic is the community's goal
// unless it strays (more often for trolls); each behaviour (insult, self-promotion, off-topic, meme)
// has a rate per temperament, divided by MODERATION when the community has the rule against it.
// A reply's insult rate also rises by CONTAGION after a hostile message, the effect a what-if shows.
// Every text is words from a fixed lexicon, and `labels(text)` recovers its behaviours by keywords.
import { KilnError } from '../../errors.js';
import { Rng } from '../bigbench/rng.js';

export const TOPICS = ['gardening', 'cooking', 'cycling', 'astronomy', 'chess', 'music'] as const;
export type Topic = (typeof TOPICS)[number];

/** Nouns that only their topic's texts use (the labeller reads the topic from them). */
const NOUNS: Record<Topic, string[]> = {
  gardening: ['tomatoes', 'roses', 'compost', 'seedlings', 'tulips', 'herbs', 'soil', 'greenhouse'],
  cooking: ['bread', 'soup', 'curry', 'pasta', 'dumplings', 'pancakes', 'sauce', 'oven'],
  cycling: ['bike', 'tyres', 'saddle', 'gears', 'helmet', 'chain', 'commute', 'crankset'],
  astronomy: ['telescope', 'nebula', 'comet', 'eclipse', 'galaxy', 'meteors', 'moon', 'saturn'],
  chess: ['opening', 'endgame', 'gambit', 'bishop', 'knight', 'rook', 'checkmate', 'tournament'],
  music: ['guitar', 'piano', 'chords', 'melody', 'drums', 'album', 'concert', 'violin'],
};

export const BEHAVIOURS = ['insult', 'promo', 'offtopic', 'meme'] as const;
export type Behaviour = (typeof BEHAVIOURS)[number];

/** The rule catalogue: each rule bans one behaviour. */
export const RULES: Record<Behaviour, string> = {
  insult: 'be civil',
  promo: 'no self promotion',
  offtopic: 'stay on topic',
  meme: 'no memes',
};

export const TEMPERAMENTS = ['friendly', 'neutral', 'troll'] as const;
export type Temperament = (typeof TEMPERAMENTS)[number];

/** How often a persona of each temperament shows each behaviour in a post or reply, without rules. */
export const BASE_RATES: Record<Temperament, Record<Behaviour, number>> = {
  friendly: { insult: 0.02, promo: 0.05, offtopic: 0.15, meme: 0.08 },
  neutral: { insult: 0.08, promo: 0.15, offtopic: 0.25, meme: 0.15 },
  troll: { insult: 0.5, promo: 0.15, offtopic: 0.45, meme: 0.4 },
};
/** The share of each temperament among a community's personas. */
export const TEMPERAMENT_MIX: Record<Temperament, number> = { friendly: 0.5, neutral: 0.35, troll: 0.15 };
/** A rule divides its behaviour's rate by this. */
export const MODERATION = 5;
/** Added to a reply's insult rate (before moderation) when the message it answers is hostile. */
export const CONTAGION = 0.4;

const BIO_WORDS: Record<Temperament, string[]> = {
  friendly: ['kind', 'cheerful', 'helpful', 'warm'],
  neutral: ['quiet', 'busy', 'practical', 'curious'],
  troll: ['grumpy', 'bitter', 'rude', 'snarky'],
};
const ROLES = ['student', 'teacher', 'nurse', 'retiree', 'engineer', 'parent', 'baker', 'driver'];
export const NAMES = [
  'Ana', 'Ben', 'Cora', 'Dev', 'Eli', 'Fay', 'Gus', 'Hana', 'Ivo', 'Jade', 'Kai', 'Lena', 'Milo', 'Nia', 'Omar', 'Pia',
  'Quinn', 'Rosa', 'Sami', 'Tess', 'Uma', 'Vic', 'Wren', 'Xan', 'Yara', 'Zed', 'Abel', 'Bea', 'Cal', 'Dina',
];
const COMMUNITY_SUFFIX = ['corner', 'circle', 'club', 'hub', 'den', 'lounge'];

const ADJ = ['great', 'strange', 'lovely', 'tricky', 'slow', 'amazing', 'messy', 'simple', 'huge', 'small'];
const INSULT_NOUNS = ['idiots', 'clowns', 'fools', 'losers', 'morons'];
const INSULT_ADJ = ['pathetic', 'clueless', 'useless'];
const PROMO_THINGS = ['shop', 'channel', 'blog', 'podcast', 'store'];
const MEMES = ['this is fine', 'big if true', 'press f', 'much wow', 'it is what it is'];

export interface Community {
  name: string;
  goal: Topic;
  /** The behaviours the community has a rule against, in catalogue order. */
  rules: Behaviour[];
}

export interface Persona {
  name: string;
  interests: Topic[];
  temperament: Temperament;
  bio: string;
}

export interface Message {
  author: string;
  text: string;
}

export interface Thread {
  post: Message;
  replies: Message[];
}

/** A community's behaviours in catalogue order, refusing unknown ones. */
export function ruleSet(rules: readonly string[]): Behaviour[] {
  for (const r of rules) if (!(BEHAVIOURS as readonly string[]).includes(r)) throw new KilnError('INVALID_ARGUMENT', `simulacra: unknown rule '${r}' (known: ${BEHAVIOURS.join(', ')})`);
  return BEHAVIOURS.filter((b) => rules.includes(b));
}

export function community(goal: Topic, rules: readonly string[]): Community {
  if (!TOPICS.includes(goal)) throw new KilnError('INVALID_ARGUMENT', `simulacra: unknown goal topic '${goal}' (known: ${TOPICS.join(', ')})`);
  const rs = ruleSet(rules);
  // The name is a function of the configuration, so the header alone identifies it.
  const suffix = COMMUNITY_SUFFIX[rs.reduce((m, b) => m | (1 << BEHAVIOURS.indexOf(b)), 0) % COMMUNITY_SUFFIX.length];
  return { name: `${goal} ${suffix}`, goal, rules: rs };
}

/** Every (goal, rules) configuration: 6 goals x 16 rule sets. */
export function allCommunities(): Community[] {
  return TOPICS.flatMap((g) => Array.from({ length: 16 }, (_, m) => community(g, BEHAVIOURS.filter((_, i) => m & (1 << i)))));
}

export const configKey = (c: Community) => `${c.goal}|${c.rules.join(',') || '-'}`;

/** The rate of behaviour `b` in a post by temperament `t` in community `c`. */
export function postRate(c: Community, t: Temperament, b: Behaviour): number {
  return BASE_RATES[t][b] / (c.rules.includes(b) ? MODERATION : 1);
}

/** The expected rate of `b` among posts by personas drawn from TEMPERAMENT_MIX (closed form). */
export function expectedPostRate(c: Community, b: Behaviour): number {
  return TEMPERAMENTS.reduce((s, t) => s + TEMPERAMENT_MIX[t] * postRate(c, t, b), 0);
}

/** The insult rate of a reply by `t`, after a hostile message or not. */
export function replyInsultRate(c: Community, t: Temperament, afterHostile: boolean): number {
  return Math.min(1, BASE_RATES[t].insult + (afterHostile ? CONTAGION : 0)) / (c.rules.includes('insult') ? MODERATION : 1);
}

export function drawTemperament(rng: Rng): Temperament {
  let u = rng.next();
  for (const t of TEMPERAMENTS) if ((u -= TEMPERAMENT_MIX[t]) < 0) return t;
  return 'troll';
}

export function bioOf(p: Omit<Persona, 'bio'>, rng: Rng): string {
  const [a, b] = p.interests;
  return `a ${rng.choice(BIO_WORDS[p.temperament])} ${rng.choice(ROLES)} who loves ${a} and ${b}.`;
}

/** `n` personas with distinct names. */
export function drawPersonas(rng: Rng, n: number, exclude: readonly string[] = []): Persona[] {
  const names = rng.sample(NAMES.filter((x) => !exclude.includes(x)), n);
  return names.map((name) => {
    const interests = rng.sample(TOPICS, 2);
    const temperament = drawTemperament(rng);
    return { name, interests, temperament, bio: bioOf({ name, interests, temperament }, rng) };
  });
}

const cap = (s: string) => s[0].toUpperCase() + s.slice(1);

function topicSentence(rng: Rng, t: Topic): string {
  const n = NOUNS[t];
  switch (rng.int(5)) {
    case 0: return `I just tried ${rng.choice(n)} for the first time and it was ${rng.choice(ADJ)}.`;
    case 1: return `does anyone have tips for ${rng.choice(n)}?`;
    case 2: return `what is your favourite ${rng.choice(n)}?`;
    case 3: return `my ${rng.choice(n)} turned out ${rng.choice(ADJ)} this week.`;
    default: return `thinking about ${t} today, the ${rng.choice(n)} is ${rng.choice(ADJ)}.`;
  }
}

function replyBody(rng: Rng, t: Topic, friendly: boolean): string {
  const opener = friendly ? `${rng.choice(['thanks for sharing', 'great point', 'love this', 'welcome'])}! ` : '';
  switch (rng.int(4)) {
    case 0: return `${opener}have you tried ${rng.choice(NOUNS[t])}?`;
    case 1: return `${opener}I agree, the ${rng.choice(NOUNS[t])} is ${rng.choice(ADJ)}.`;
    case 2: return `${opener}not sure about that.`;
    default: return `${opener}my ${rng.choice(NOUNS[t])} was ${rng.choice(ADJ)} too.`;
  }
}

/** A sentence that insults (it names one of the insult nouns). */
export function insultSentence(rng: Rng): string {
  switch (rng.int(3)) {
    case 0: return `you are all ${rng.choice(INSULT_ADJ)} ${rng.choice(INSULT_NOUNS)}.`;
    case 1: return `only ${rng.choice(INSULT_NOUNS)} would say that.`;
    default: return `what a bunch of ${rng.choice(INSULT_ADJ)} ${rng.choice(INSULT_NOUNS)}.`;
  }
}

const promoSentence = (rng: Rng) => (rng.int(2) === 0 ? `check out my ${rng.choice(PROMO_THINGS)} for more.` : `subscribe to my ${rng.choice(PROMO_THINGS)} today.`);
const memeSentence = (rng: Rng) => `${rng.choice(MEMES)} lol.`;

function withBehaviours(rng: Rng, body: string, has: { insult: boolean; promo: boolean; meme: boolean }): string {
  const parts = [body];
  if (has.insult) parts.push(insultSentence(rng));
  if (has.promo) parts.push(promoSentence(rng));
  if (has.meme) parts.push(memeSentence(rng));
  return cap(parts.join(' '));
}

export interface PostDraw {
  text: string;
  topic: Topic;
  flags: Record<Behaviour, boolean>;
}

/** A post by `p` in community `c`. */
export function drawPost(rng: Rng, c: Community, p: Persona): PostDraw {
  const off = rng.next() < postRate(c, p.temperament, 'offtopic');
  // Off topic: one of the persona's interests other than the goal, else any other topic.
  const others = p.interests.filter((x) => x !== c.goal);
  const topic = off ? (others.length ? rng.choice(others) : rng.choice(TOPICS.filter((x) => x !== c.goal))) : c.goal;
  const flags = { offtopic: off, insult: rng.next() < postRate(c, p.temperament, 'insult'), promo: rng.next() < postRate(c, p.temperament, 'promo'), meme: rng.next() < postRate(c, p.temperament, 'meme') };
  return { text: withBehaviours(rng, topicSentence(rng, topic), flags), topic, flags };
}

/** A reply by `p` to a thread on `topic`, the message before it hostile or not. */
export function drawReply(rng: Rng, c: Community, p: Persona, topic: Topic, afterHostile: boolean): { text: string; flags: Record<Behaviour, boolean> } {
  const flags = {
    offtopic: false,
    insult: rng.next() < replyInsultRate(c, p.temperament, afterHostile),
    promo: rng.next() < postRate(c, p.temperament, 'promo'),
    meme: rng.next() < postRate(c, p.temperament, 'meme'),
  };
  return { text: withBehaviours(rng, replyBody(rng, topic, p.temperament === 'friendly' && !flags.insult), flags), flags };
}

/** A reply a designer injects in a what-if: hostile (an insult) or friendly. */
export function injectedReply(rng: Rng, topic: Topic, hostile: boolean): string {
  return hostile ? cap(`${replyBody(rng, topic, false)} ${insultSentence(rng)}`) : cap(replyBody(rng, topic, true));
}

export interface WorldThread extends Thread {
  topic: Topic;
  /** The generator's own flags, post first, then each reply. */
  flags: Record<Behaviour, boolean>[];
}

/** A thread among `personas` (the author and then repliers, never the previous speaker twice running). */
export function drawThread(rng: Rng, c: Community, personas: readonly Persona[], replies: number, injected?: Message): WorldThread {
  const author = rng.choice(personas);
  const post = drawPost(rng, c, author);
  const thread: WorldThread = { post: { author: author.name, text: post.text }, replies: [], topic: post.topic, flags: [post.flags] };
  let prev = author.name, hostile = post.flags.insult;
  if (injected) {
    thread.replies.push(injected);
    prev = injected.author;
    hostile = labels(injected.text).insult;
  }
  while (thread.replies.length < replies) {
    const p = rng.choice(personas.filter((x) => x.name !== prev));
    const r = drawReply(rng, c, p, post.topic, hostile);
    thread.replies.push({ author: p.name, text: r.text });
    thread.flags.push(r.flags);
    prev = p.name;
    hostile = r.flags.insult;
  }
  return thread;
}

export interface TextLabels {
  insult: boolean;
  promo: boolean;
  meme: boolean;
  /** The topic whose nouns the text names (the first found), or null. */
  topic: Topic | null;
}

const words = (text: string): string[] => text.toLowerCase().match(/[a-z']+/g) ?? [];
const INSULT_SET = new Set(INSULT_NOUNS);

/** Behaviours read from a text by keywords alone (exact on world text; see the file comment). */
export function labels(text: string): TextLabels {
  const w = words(text);
  let topic: Topic | null = null;
  for (const x of w) {
    topic = TOPICS.find((t) => NOUNS[t].includes(x)) ?? null;
    if (topic) break;
  }
  const lower = w.join(' ');
  return {
    insult: w.some((x) => INSULT_SET.has(x)),
    promo: /\b(check out|subscribe to) my (shop|channel|blog|podcast|store)\b/.test(lower),
    meme: w.includes('lol'),
    topic,
  };
}

/** A post's behaviours in community `c`: off topic when its topic is known and not the goal. */
export function postLabels(text: string, c: Community): Record<Behaviour, boolean> {
  const l = labels(text);
  return { insult: l.insult, promo: l.promo, meme: l.meme, offtopic: l.topic !== null && l.topic !== c.goal };
}

/** A persona line's fields read back ("<Name>: a <adjective> <role> who loves <a> and <b>."), or null. */
export function parsePersona(line: string): Persona | null {
  const m = /^\s*([A-Z][a-z]+)\s*:\s*a (\w+) (\w+) who loves (\w+) and (\w+)\.\s*$/.exec(line);
  if (!m) return null;
  const temperament = TEMPERAMENTS.find((t) => BIO_WORDS[t].includes(m[2]));
  const interests = [m[4], m[5]] as Topic[];
  if (!temperament || !ROLES.includes(m[3]) || !interests.every((t) => TOPICS.includes(t)) || interests[0] === interests[1]) return null;
  return { name: m[1], interests, temperament, bio: line.slice(line.indexOf(':') + 1).trim() };
}

/** Every word the world writes, for the tokenizer's vocabulary. */
export function lexicon(): string {
  return [
    ...TOPICS, ...Object.values(NOUNS).flat(), ...Object.values(BIO_WORDS).flat(), ...ROLES, ...NAMES, ...COMMUNITY_SUFFIX, ...ADJ,
    ...INSULT_NOUNS, ...INSULT_ADJ, ...PROMO_THINGS, ...MEMES, ...Object.values(RULES),
    'I just tried for the first time and it was. Does does anyone have tips for? What what is your favourite? My my turned out this week.',
    'Thinking thinking about today, the is. Have have you tried? I agree, the is. Not not sure about that. My was too. Thanks thanks for sharing great point love this welcome!',
    'You you are all. Only only would say that. What a bunch of. Check check out my for more. Subscribe subscribe to my today. lol. This Big Press Much It',
    'a who loves and. Community: Goal: a place to talk about. Rules: none; Persona: Post by Reply by Great Love Welcome',
  ].join(' ');
}
