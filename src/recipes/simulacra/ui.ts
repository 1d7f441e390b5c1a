// The page of `kiln simulacra serve`: one self-contained HTML document (inline CSS and script, no
// external assets, no build step) for SimReddit's designer loop: describe the community (goal and
// rules from the world's catalogue, since a word-level model knows only its vocabulary; seed
// personas as free text), generate personas, generate threads, and on each thread a WhatIf or a
// Multiverse. Every text from the model or the designer reaches the page through textContent,
// never as markup (the script has no innerHTML).

const CSS = `body{font-family:system-ui,sans-serif;max-width:1200px;margin:1em auto;padding:0 1em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.2em;border-bottom:1px solid #ddd}
fieldset{border:1px solid #ccc;border-radius:6px;margin:.5em 0}label{margin-right:1em}
input[type=text]{width:24em}input.name{width:7em}input[type=number]{width:4em}button{margin:.15em}
.thread{border:1px solid #ccc;border-radius:6px;padding:.5em;margin:.6em 0;background:#fafafa}
.replies{margin-left:1.5em;border-left:2px solid #ddd;padding-left:.5em}.msg{margin:.2em 0}.post{font-weight:500}
.injected{background:#fff3cd}.tag{font-size:.75em;padding:0 .4em;margin-left:.3em;border-radius:3px;color:#fff;background:#888}
.tag.insult{background:#c0392b}.tag.promo{background:#2980b9}.tag.meme{background:#8e44ad}.tag.offtopic{background:#d35400}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:.6em}.sub{margin:.4em 0 .4em 1em}
.counts{font-size:.85em;color:#555}.warn{color:#a65e00}.err{color:#c0392b}#status{position:sticky;top:0;background:#fff;padding:.3em 0}
.tools{font-size:.9em;margin-top:.3em}ul.personas{margin:.2em 0}`;

/** The page's script: plain ES2020, DOM built with createElement and textContent only. */
const SCRIPT = String.raw`
'use strict';
const $ = (id) => document.getElementById(id);
function h(tag, props, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === 'class') e.className = v; else if (k.startsWith('on')) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of kids.flat()) if (c !== null && c !== undefined && c !== false) e.append(typeof c === 'string' ? document.createTextNode(c) : c);
  return e;
}
let world = null, pool = [];
const status = (text, cls) => { const s = $('status'); s.textContent = text; s.className = cls || ''; };

async function api(path, body) {
  status('generating (' + path + ') ...');
  const res = await fetch(path, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = await res.json().catch(() => ({ error: { message: 'HTTP ' + res.status } }));
  if (!res.ok) { status('error: ' + json.error.message, 'err'); throw new Error(json.error.message); }
  status((json.warnings || []).length ? 'done, with warnings: ' + json.warnings.join('; ') : 'done (seed ' + json.seed + ')', (json.warnings || []).length ? 'warn' : '');
  return json;
}

function communityOf() {
  return { goal: $('goal').value, rules: world.rules.filter((r) => $('rule-' + r.id).checked).map((r) => r.id) };
}
function sampling() {
  const o = {};
  const seed = $('seed').value.trim();
  if (seed !== '') o.seed = Number(seed);
  o.temperature = Number($('temperature').value);
  return o;
}

function seedRow(p) {
  const row = h('div', { class: 'seed' },
    h('input', { class: 'name', type: 'text', value: p.name, title: 'name: one capitalised word' }), ': ',
    h('input', { class: 'bio', type: 'text', value: p.bio, title: 'bio, e.g. a kind nurse who loves chess and music.' }),
    h('button', { onclick: () => row.remove() }, 'remove'));
  return row;
}
function seedsOf() {
  return [...document.querySelectorAll('#seeds .seed')].map((r) => ({ name: r.querySelector('.name').value.trim(), bio: r.querySelector('.bio').value.trim() }));
}

function tags(l) {
  return ['insult', 'promo', 'offtopic', 'meme'].filter((b) => l && l[b]).map((b) => h('span', { class: 'tag ' + b }, b));
}
function msg(kind, m, extra) {
  return h('div', { class: 'msg ' + kind + (extra ? ' ' + extra : '') }, h('b', {}, m.author), ': ', m.text, tags(m.labels));
}
function counts(c) {
  if (!c) return null;
  return h('div', { class: 'counts' }, 'labeller: ' + ['insult', 'promo', 'offtopic', 'meme'].map((b) => b + ' ' + c[b].k + '/' + c[b].n).join(', '));
}
function threadView(t, injectedAt) {
  return h('div', {}, msg('post', t.post), h('div', { class: 'replies' }, t.replies.map((r, i) => msg('reply', r, i === injectedAt ? 'injected' : ''))));
}
function personaList(ps) {
  return h('ul', { class: 'personas' }, ps.map((p) => h('li', {}, h('b', {}, p.name), ' (' + (p.temperament || 'free text') + '): ' + p.bio)));
}

function threadCard(t) {
  const out = h('div', { class: 'sub' });
  const at = h('select', {}, h('option', { value: '0' }, 'after the post'), t.replies.map((r, i) => h('option', { value: String(i + 1) }, 'after reply ' + (i + 1))));
  const author = h('select', {}, t.personas.map((p) => h('option', { value: p.name }, p.name)));
  const text = h('input', { type: 'text', placeholder: 'your reply (words the model knows)' });
  const follow = h('input', { type: 'number', min: '1', max: String(world.limits.replies), value: '2' });
  const k = h('input', { type: 'number', min: '2', max: String(world.limits.versions), value: '3' });
  const bare = { personas: t.personas, post: { author: t.post.author, text: t.post.text }, replies: t.replies.map((r) => ({ author: r.author, text: r.text })) };
  const whatIf = async (inject) => {
    const r = await api('/api/whatif', { community: communityOf(), thread: bare, at: Number(at.value), inject, replies: Number(follow.value), ...sampling() });
    out.prepend(h('div', { class: 'thread' }, h('b', {}, 'WhatIf: ' + ('kind' in inject ? inject.kind : 'custom') + ' reply injected ' + at.selectedOptions[0].textContent),
      threadView(r.thread, r.injectedAt), counts(r.counts)));
  };
  const multiverse = async () => {
    const r = await api('/api/multiverse', { community: communityOf(), thread: bare, k: Number(k.value), replies: Math.max(1, t.replies.length), ...sampling() });
    out.prepend(h('div', { class: 'thread' }, h('b', {}, 'Multiverse: ' + r.versions.length + ' versions (' + r.distinct + ' distinct)'),
      h('div', { class: 'cols' }, r.versions.map((v, i) => h('div', {}, h('i', {}, 'version ' + (i + 1)), threadView(v, -1)))), counts(r.counts)));
  };
  return h('div', { class: 'thread' }, threadView(t, -1),
    h('div', { class: 'tools' },
      'WhatIf ', at, ' then ', follow, ' replies: ',
      h('button', { onclick: () => whatIf({ kind: 'hostile' }).catch(() => {}) }, 'hostile'),
      h('button', { onclick: () => whatIf({ kind: 'friendly' }).catch(() => {}) }, 'friendly'),
      ' or ', author, text, h('button', { onclick: () => whatIf({ author: author.value, text: text.value }).catch(() => {}) }, 'inject'),
      ' | Multiverse K=', k, h('button', { onclick: () => multiverse().catch(() => {}) }, 'regenerate replies')),
    out);
}

async function genPersonas() {
  const r = await api('/api/personas', { community: communityOf(), seeds: seedsOf(), count: Number($('count').value), ...sampling() });
  pool = r.personas;
  $('personas').replaceChildren(personaList(pool), h('div', { class: 'counts' }, r.personas.length + ' personas from ' + r.sampled + ' samples; ' + r.rejected.length + ' lines did not read as personas'));
}
async function genThreads() {
  const personas = [...seedsOf(), ...pool.filter((p) => !seedsOf().some((s) => s.name === p.name))].slice(0, world.limits.pool);
  const r = await api('/api/threads', { community: communityOf(), personas: personas.map((p) => ({ name: p.name, bio: p.bio })), n: Number($('n').value), replies: Number($('replies').value), ...sampling() });
  $('threads').replaceChildren(counts(r.counts), ...r.threads.map(threadCard));
}

async function init() {
  world = await api('/api/world');
  $('model').textContent = world.model;
  $('goal').replaceChildren(...world.goals.map((g) => h('option', { value: g }, g)));
  $('rules').replaceChildren(...world.rules.map((r) => h('label', {}, h('input', { type: 'checkbox', id: 'rule-' + r.id }), ' ' + r.text)));
  $('seeds').replaceChildren(...world.examplePersonas.slice(0, 2).map(seedRow));
  $('temperature').value = String(world.defaults.temperature);
  $('add-seed').addEventListener('click', () => $('seeds').append(seedRow({ name: '', bio: '' })));
  $('gen-personas').addEventListener('click', () => genPersonas().catch(() => {}));
  $('gen-threads').addEventListener('click', () => genThreads().catch(() => {}));
  status('ready');
}
init().catch((e) => status('cannot reach the server: ' + e.message, 'err'));
`;

const BODY = `<h1>Social simulacra designer <small>(kiln, SimReddit at small scale)</small></h1>
<div id="status">loading ...</div>
<p>Model: <span id="model"></span>. The model only knows its training vocabulary, so goal and rules come from the world's catalogue; seed personas are free text (unknown words are warned about).</p>
<h2>1. Community</h2>
<fieldset><label>goal <select id="goal"></select></label> rules: <span id="rules"></span></fieldset>
<fieldset><legend>seed personas</legend><div id="seeds"></div><button id="add-seed">add a seed persona</button></fieldset>
<fieldset><label>seed <input id="seed" type="number" min="0" placeholder="auto"></label><label>temperature <input id="temperature" type="number" min="0" max="2" step="0.1"></label></fieldset>
<h2>2. Personas</h2>
<p><label>how many <input id="count" type="number" min="1" max="12" value="6"></label><button id="gen-personas">generate personas</button></p>
<div id="personas"></div>
<h2>3. Threads</h2>
<p><label>threads <input id="n" type="number" min="1" max="8" value="3"></label><label>replies each <input id="replies" type="number" min="0" max="6" value="3"></label>
<button id="gen-threads">generate threads</button> (by the seed and generated personas)</p>
<div id="threads"></div>`;

/** The page, as GET / serves it. */
export function renderApp(): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>kiln simulacra serve</title><style>${CSS}</style></head><body>${BODY}<script>${SCRIPT}</script></body></html>\n`;
}
