// `kiln simulacra serve`: the designer web UI over a run's model. Against a tiny word-level GPT
// over the world's vocabulary, saved as a run folder's model/: the page is one self-contained
// document whose script compiles and calls the API; every endpoint returns well-formed objects
// whose labels and counts are the labeller's on the returned text; a seed gives the same answer;
// WhatIf keeps the thread head, puts the injected reply where asked and continues after it;
// Multiverse returns K versions of the same post; bad input is a 400 naming the field; the event
// loop answers GET /api/world while a long generation runs in the worker; the server stops cleanly.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Script } from 'node:vm';
import * as kiln from '../src/index.js';
import { saveKilnLanguageModel } from '../src/recipes/bigbench/kiln-model.js';
import { worldTokenizer } from '../src/recipes/simulacra/corpus.js';
import { countsOf, labelMessage, runSimulacraServe, startSimulacraServer, type SimulacraServer } from '../src/recipes/simulacra/server.js';
import { BEHAVIOURS, community, labels, parsePersona, TOPICS, type Community } from '../src/recipes/simulacra/world.js';
import { runKilnQuiet } from './helpers/cli.js';

kiln.setNumThreads(1);
kiln.manualSeed(5);
const dir = mkdtempSync(join(tmpdir(), 'kiln-sim-serve-'));
{
  const tok = worldTokenizer();
  const model = new kiln.nn.GPT({ nLayer: 1, nHead: 2, nEmbd: 16, vocabSize: tok.vocabSize, blockSize: 160 });
  saveKilnLanguageModel(join(dir, 'model'), model, tok, { recipe: 'simulacra' });
  for (const p of model.parameters()) p.dispose();
}

let server: SimulacraServer;
test.before(async () => {
  server = await startSimulacraServer({ run: dir, port: 0, seed: 1, threads: 1, maxBodyBytes: 16 * 1024 });
});
test.after.always(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function call(path: string, body?: unknown, method?: string): Promise<{ status: number; json: any; text: string; type: string | null }> {
  const res = await fetch(server.url.replace(/\/$/, '') + path, {
    method: method ?? (body === undefined ? 'GET' : 'POST'), headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: any = null;
  try { json = JSON.parse(text); } catch { /* the page */ }
  return { status: res.status, json, text, type: res.headers.get('content-type') };
}

const COMMUNITY = { goal: 'chess', rules: ['promo'] };
const C: Community = community('chess', ['promo']);
const SEEDS = [
  { name: 'Ana', bio: 'a kind nurse who loves chess and music.' },
  { name: 'Ben', bio: 'a rude baker who loves chess and cooking.' },
  { name: 'Cora', bio: 'a quiet student who loves music and chess.' },
  { name: 'Dev', bio: 'a warm parent who loves gardening and chess.' },
];
const SMALL = { maxTokens: 8 };

/** Every message's labels are labelMessage's on its text; the counts are the labeller's. */
function checkThreads(t: any, threads: any[], skip = 0, posts = true) {
  for (const th of threads) {
    t.deepEqual(th.post, labelMessage(C, th.post, true));
    t.is(th.post.labels.insult, labels(th.post.text).insult);
    for (const r of th.replies) t.deepEqual(r, labelMessage(C, r, false));
    for (const m of [th.post, ...th.replies]) t.true(typeof m.text === 'string' && !m.text.includes('\n') && /^[A-Z][a-z]+$/.test(m.author));
  }
  return countsOf(C, threads, skip, posts);
}

test('GET / is one self-contained page whose script compiles and calls the API', async (t) => {
  const r = await call('/');
  t.is(r.status, 200);
  t.regex(r.type!, /^text\/html/);
  t.regex(r.text, /^<!doctype html>/);
  for (const p of ['/api/world', '/api/personas', '/api/threads', '/api/whatif', '/api/multiverse']) t.true(r.text.includes(p), p);
  t.false(/<(link|img|iframe|object)\b|<script\s+src|url\(|@import|https?:\/\//i.test(r.text), 'no external assets');
  t.false(r.text.includes('innerHTML'), 'text reaches the page through textContent only');
  const scripts = [...r.text.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]);
  t.is(scripts.length, 1);
  t.notThrows(() => new Script(scripts[0]));
});

test('GET /api/world: the catalogue the UI offers', async (t) => {
  const r = await call('/api/world');
  t.is(r.status, 200);
  t.deepEqual(r.json.goals, [...TOPICS]);
  t.deepEqual(r.json.rules.map((x: any) => x.id), [...BEHAVIOURS]);
  t.is(r.json.examplePersonas.length, 4);
  for (const p of r.json.examplePersonas) t.deepEqual(parsePersona(`${p.name}: ${p.bio}`), p);
  t.true(r.json.vocabularyChecked);
});

test('POST /api/personas: personas that parse, reproducible for a seed', async (t) => {
  const body = { community: COMMUNITY, seeds: SEEDS.slice(0, 2), count: 3, seed: 7, ...SMALL };
  const a = await call('/api/personas', body), b = await call('/api/personas', body);
  t.is(a.status, 200, a.text);
  t.deepEqual(a.json, b.json);
  t.is(a.json.seed, 7);
  t.true(a.json.sampled >= 6 && a.json.personas.length <= 3);
  for (const p of a.json.personas) t.deepEqual(parsePersona(`${p.name}: ${p.bio}`), p);
  t.true(a.json.rejected.every((s: unknown) => typeof s === 'string'));
  t.deepEqual(a.json.warnings, []);
});

test('POST /api/threads: n threads with labels and counts the labeller\'s; seeds reproduce', async (t) => {
  const body = { community: COMMUNITY, personas: SEEDS, n: 3, replies: 2, seed: 11, ...SMALL };
  const a = await call('/api/threads', body), b = await call('/api/threads', body), c = await call('/api/threads', { ...body, seed: 12 });
  t.is(a.status, 200, a.text);
  t.deepEqual(a.json, b.json, 'the same seed, the same answer');
  t.notDeepEqual(a.json.threads, c.json.threads);
  t.is(a.json.threads.length, 3);
  for (const th of a.json.threads) {
    t.is(th.replies.length, 2);
    t.is(th.personas.length, 4);
    t.true(th.personas.some((p: any) => p.name === th.post.author));
  }
  t.deepEqual(a.json.counts, checkThreads(t, a.json.threads));
  t.is(a.json.counts.insult.n, 9);
  // A free-text seed persona is accepted, with a warning for words the model does not know.
  const w = await call('/api/threads', { ...body, personas: [...SEEDS.slice(0, 3), { name: 'Zed', bio: 'a wizard who loves chess and music.' }] });
  t.is(w.status, 200);
  t.true(w.json.warnings.some((x: string) => x.includes("'wizard'")), JSON.stringify(w.json.warnings));
});

test('POST /api/whatif: the thread head kept, the injected reply at its place, replies after it', async (t) => {
  const base = (await call('/api/threads', { community: COMMUNITY, personas: SEEDS, n: 1, replies: 2, seed: 3, ...SMALL })).json.threads[0];
  const body = { community: COMMUNITY, thread: base, at: 1, inject: { kind: 'hostile' }, replies: 2, seed: 5, ...SMALL };
  const a = await call('/api/whatif', body), b = await call('/api/whatif', body);
  t.is(a.status, 200, a.text);
  t.deepEqual(a.json, b.json);
  const th = a.json.thread;
  t.deepEqual(th.post, base.post);
  t.deepEqual(th.replies[0], base.replies[0], 'the first reply kept');
  t.is(a.json.injectedAt, 1);
  t.deepEqual(th.replies[1], a.json.injected);
  t.true(a.json.injected.labels.insult, 'a hostile injection insults');
  t.not(a.json.injected.author, base.replies[0].author);
  t.is(th.replies.length, 4, 'one kept, the injected one, two generated');
  t.not(th.replies[2].author, th.replies[1].author);
  t.deepEqual(a.json.counts, checkThreads(t, [th], 2, false));
  t.is(a.json.counts.insult.n, 2);
  const f = await call('/api/whatif', { ...body, at: 0, inject: { kind: 'friendly' } });
  t.false(f.json.injected.labels.insult);
  t.is(f.json.thread.replies.length, 3);
  const custom = await call('/api/whatif', { ...body, at: 2, inject: { author: 'Ben', text: 'only fools would say that.' } });
  t.is(custom.status, 200, custom.text);
  t.deepEqual(custom.json.thread.replies.slice(0, 3).map((r: any) => [r.author, r.text]), [...base.replies.map((r: any) => [r.author, r.text]), ['Ben', 'only fools would say that.']]);
  t.true(custom.json.thread.replies[2].labels.insult);
  t.is(custom.json.thread.replies.length, 5);
});

test('POST /api/multiverse: K versions of the same post, by the same repliers', async (t) => {
  const base = (await call('/api/threads', { community: COMMUNITY, personas: SEEDS, n: 1, replies: 2, seed: 4, ...SMALL })).json.threads[0];
  const body = { community: COMMUNITY, thread: base, k: 3, replies: 2, seed: 9, ...SMALL };
  const a = await call('/api/multiverse', body), b = await call('/api/multiverse', body);
  t.is(a.status, 200, a.text);
  t.deepEqual(a.json, b.json);
  t.is(a.json.versions.length, 3);
  for (const v of a.json.versions) {
    t.deepEqual(v.post, base.post);
    t.is(v.replies.length, 2);
  }
  t.is(new Set(a.json.versions.map((v: any) => v.replies.map((r: any) => r.author).join())).size, 1);
  t.true(a.json.distinct >= 1 && a.json.distinct <= 3);
  t.deepEqual(a.json.counts, checkThreads(t, a.json.versions, 0, false));
});

test('bad input: 400 naming the field; 404, 405, 413; the server keeps answering', async (t) => {
  const thread = { personas: SEEDS, post: { author: 'Ana', text: 'hello' }, replies: [] };
  const cases: [string, unknown, string | null][] = [
    ['/api/threads', '{not json', null],
    ['/api/threads', [1, 2], null],
    ['/api/threads', { community: COMMUNITY, personas: SEEDS, n: 2, bogus: 1 }, 'bogus'],
    ['/api/threads', { personas: SEEDS }, 'community'],
    ['/api/threads', { community: { goal: 'knitting', rules: [] }, personas: SEEDS }, 'community.goal'],
    ['/api/threads', { community: { goal: 'chess', rules: ['no swearing'] }, personas: SEEDS }, 'community.rules[0]'],
    ['/api/threads', { community: { goal: 'chess', rules: 'insult' }, personas: SEEDS }, 'community.rules'],
    ['/api/threads', { community: COMMUNITY, personas: SEEDS, n: 1000 }, 'n'],
    ['/api/threads', { community: COMMUNITY, personas: SEEDS, n: '2' }, 'n'],
    ['/api/threads', { community: COMMUNITY, personas: SEEDS, n: 2, replies: 99 }, 'replies'],
    ['/api/threads', { community: COMMUNITY, personas: SEEDS.slice(0, 1) }, 'personas'],
    ['/api/threads', { community: COMMUNITY, personas: [SEEDS[0], SEEDS[0]] }, 'personas[1].name'],
    ['/api/threads', { community: COMMUNITY, personas: [SEEDS[0], { name: '<b>x</b>', bio: 'a' }] }, 'personas[1].name'],
    ['/api/threads', { community: COMMUNITY, personas: [SEEDS[0], { name: 'Eve', bio: 7 }] }, 'personas[1].bio'],
    ['/api/threads', { community: COMMUNITY, personas: SEEDS, seed: -1 }, 'seed'],
    ['/api/threads', { community: COMMUNITY, personas: SEEDS, temperature: 9 }, 'temperature'],
    ['/api/threads', { community: COMMUNITY, personas: SEEDS, maxTokens: 10000 }, 'maxTokens'],
    ['/api/personas', { community: COMMUNITY, count: 0 }, 'count'],
    ['/api/multiverse', { community: COMMUNITY, thread, k: 50 }, 'k'],
    ['/api/multiverse', { community: COMMUNITY, thread, k: 1 }, 'k'],
    ['/api/multiverse', { community: COMMUNITY, thread: { ...thread, post: null } }, 'thread.post'],
    ['/api/whatif', { community: COMMUNITY, thread, inject: { kind: 'rude' } }, 'inject.kind'],
    ['/api/whatif', { community: COMMUNITY, thread, inject: { author: 'Ana', text: '' } }, 'inject.text'],
    ['/api/whatif', { community: COMMUNITY, thread, inject: { kind: 'hostile' }, at: 3 }, 'at'],
  ];
  for (const [path, body, field] of cases) {
    const r = await call(path, body);
    t.is(r.status, 400, `${path} ${JSON.stringify(body)}: ${r.text}`);
    t.is(r.json.error.param, field, r.json.error.message);
    if (field) t.true(r.json.error.message.startsWith(field), r.json.error.message);
  }
  t.is((await call('/api/nope')).status, 404);
  t.is((await call('/api/threads')).status, 405);
  const m = await call('/api/world', {}, 'POST');
  t.is(m.status, 405);
  t.is(m.json.error.code, 'method_not_allowed');
  t.is((await call('/api/threads', { community: COMMUNITY, personas: SEEDS, pad: 'x'.repeat(20000) })).status, 413);
  t.is((await call('/api/world')).status, 200, 'still up');
});

test.serial('the event loop answers GET /api/world while long generations run in the worker', async (t) => {
  const long = { community: COMMUNITY, personas: SEEDS, n: 8, replies: 6, maxTokens: 60, seed: 1 };
  let finished = 0;
  const jobs = [1, 2].map((s) => call('/api/threads', { ...long, seed: s }).then((r) => { finished = Date.now(); return r; }));
  // Wait until the worker is busy, then time the catalogue while it generates.
  let w = await call('/api/world');
  for (let i = 0; i < 200 && w.json.queue.running === null; i++) w = await call('/api/world');
  t.is(w.json.queue.running, 'threads');
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const r = await call('/api/world');
    times.push(performance.now() - t0);
    t.is(r.status, 200);
  }
  const answered = Date.now();
  const [a, b] = await Promise.all(jobs);
  t.is(a.status, 200);
  t.is(b.status, 200);
  t.true(answered < finished, 'the catalogue answered before the generations finished');
  t.true(Math.max(...times) < 200, `GET /api/world took ${times.map((x) => x.toFixed(0)).join(', ')} ms`);
});

test.serial('the command: --help, usage errors, and a server that stops on its signal', async (t) => {
  const { codes, logs } = await runKilnQuiet(['simulacra', 'serve', '--help'], ['simulacra', 'serve'], ['simulacra', 'serve', '--run', dir, '--bogus', '1'],
    ['simulacra', 'serve', '--run', join(dir, 'nothing')], ['simulacra', 'serve', '--run', dir, '--model', 'openai:http://x']);
  t.deepEqual(codes, [0, 2, 2, 1, 2]);
  t.true(logs.some((l) => l.includes('usage: kiln simulacra serve')));
  const ctl = new AbortController();
  let url = '';
  const lines: string[] = [];
  const done = runSimulacraServe(['--run', dir, '--port', '0', '--threads', '1'], ctl.signal, {
    out: (s) => lines.push(s), err: (s) => lines.push(s),
    onListening: (s) => { url = s.url; },
  });
  while (!url) await new Promise((r) => setTimeout(r, 20));
  t.is((await fetch(url + 'api/world')).status, 200);
  ctl.abort();
  t.is(await done, 0);
  t.true(lines.some((l) => l.includes('shutting down')));
  await t.throwsAsync(() => fetch(url + 'api/world'), undefined, 'the port is closed');
});

/** A minimal DOM (elements, text, ids, class lookups, click listeners): enough to drive the page's script. */
class FakeNode {
  children: FakeNode[] = [];
  parent: FakeNode | null = null;
  attrs: Record<string, string> = {};
  listeners: Record<string, ((e: unknown) => void)[]> = {};
  className = '';
  checked = false;
  private val: string | undefined;
  constructor(readonly tagName: string, readonly doc: FakeDocument | null, private text = '') {}
  get textContent(): string { return this.tagName === '#text' ? this.text : this.children.map((c) => c.textContent).join(''); }
  set textContent(s: string) { this.children = []; this.append(s); }
  get value(): string { return this.val ?? (this.tagName === 'SELECT' ? this.all((n) => n.tagName === 'OPTION')[0]?.attrs.value ?? '' : this.attrs.value ?? ''); }
  set value(v: string) { this.val = v; }
  get selectedOptions() { return this.all((n) => n.tagName === 'OPTION' && n.attrs.value === this.value); }
  setAttribute(k: string, v: string) { this.attrs[k] = String(v); if (k === 'id') this.doc!.ids.set(v, this); }
  addEventListener(k: string, f: (e: unknown) => void) { (this.listeners[k] ??= []).push(f); }
  append(...xs: (FakeNode | string)[]) { for (const x of xs) { const n = typeof x === 'string' ? new FakeNode('#text', null, x) : x; n.parent = this; this.children.push(n); } }
  prepend(x: FakeNode) { this.append(x); this.children.unshift(this.children.pop()!); }
  replaceChildren(...xs: (FakeNode | string)[]) { this.children = []; this.append(...xs.filter((x) => x !== null && x !== undefined)); }
  remove() { if (this.parent) this.parent.children = this.parent.children.filter((c) => c !== this); }
  all(pred: (n: FakeNode) => boolean): FakeNode[] { return this.children.flatMap((c) => [...(pred(c) ? [c] : []), ...c.all(pred)]); }
  querySelector(sel: string) { return this.all((n) => n.className.split(' ').includes(sel.slice(1)))[0] ?? null; }
  click() { for (const f of this.listeners.click ?? []) f({}); }
}
class FakeDocument {
  ids = new Map<string, FakeNode>();
  createElement(tag: string) { return new FakeNode(tag.toUpperCase(), this); }
  createTextNode(s: string) { return new FakeNode('#text', null, s); }
  getElementById(id: string) { if (!this.ids.has(id)) this.createElement('div').setAttribute('id', id); return this.ids.get(id)!; }
  querySelectorAll(sel: string) { const [id, cls] = sel.split(' '); return this.getElementById(id.slice(1)).all((n) => n.className.split(' ').includes(cls.slice(1))); }
}

test.serial('the page\'s script drives the designer loop against the server', async (t) => {
  const html = (await call('/')).text;
  const doc = new FakeDocument();
  for (const [id, v] of Object.entries({ count: '2', n: '2', replies: '1', seed: '3', temperature: '1' })) doc.getElementById(id).value = v;
  const base = server.url.replace(/\/$/, '');
  const ctx = { document: doc, fetch: (p: string, init: RequestInit) => fetch(base + p, init), console, Object, Number, String, Error, JSON };
  new Script(/<script>([\s\S]*?)<\/script>/.exec(html)![1]).runInNewContext(ctx);
  const status = doc.getElementById('status');
  const settled = async (what: string) => {
    for (let i = 0; i < 500 && !/^(done|ready|error)/.test(status.textContent); i++) await new Promise((r) => setTimeout(r, 10));
    t.regex(status.textContent, /^(done|ready)/, `${what}: ${status.textContent}`);
    status.textContent = '';
  };
  await settled('init');
  t.is(doc.getElementById('goal').children.length, TOPICS.length);
  t.is(doc.querySelectorAll('#seeds .seed').length, 2);
  doc.getElementById('goal').value = 'music';
  doc.getElementById('rule-insult').checked = true;
  doc.getElementById('add-seed').click();
  const rows = doc.querySelectorAll('#seeds .seed');
  rows[2].querySelector('.name')!.value = 'Quinn';
  rows[2].querySelector('.bio')!.value = 'a <script>alert(1)</script> fan of music.';
  doc.getElementById('gen-personas').click();
  await settled('personas');
  doc.getElementById('gen-threads').click();
  await settled('threads');
  const threads = doc.getElementById('threads');
  const cards = threads.children.filter((c) => c.className === 'thread');
  t.is(cards.length, 2);
  const button = (card: FakeNode, label: string) => card.all((n) => n.tagName === 'BUTTON' && n.textContent === label)[0];
  button(cards[0], 'hostile').click();
  await settled('whatif');
  button(cards[0], 'regenerate replies').click();
  await settled('multiverse');
  const results = cards[0].all((n) => n.className === 'sub')[0].children;
  t.is(results.length, 2);
  t.regex(results[0].textContent, /^Multiverse: 3 versions/);
  t.regex(results[1].textContent, /^WhatIf: hostile reply injected after the post/);
  t.is(results[1].all((n) => n.className.includes('injected')).length, 1);
  t.true(results[1].all((n) => n.className === 'tag insult').length >= 1, 'the injected insult is tagged');
  // The designer's markup stays text: the script never made a script element.
  t.is(threads.all((n) => n.tagName === 'SCRIPT').length, 0);
});
