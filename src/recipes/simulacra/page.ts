// The run's browsable page: one self-contained index.html (inline CSS, no scripts, no external
// assets; every text from the model or the designer HTML-escaped) with the communities, their
// personas and threads, the what-if arms and the multiverse versions side by side, and the rates.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { rate, type Count } from './measure.js';
import type { SimulacraResult } from './experiment.js';
import type { SimThread } from './simulate.js';
import { labels, RULES, type Community, type Message, type Persona } from './world.js';

export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

const e = escapeHtml;
const pc = (c: Count) => (c.n ? `${(100 * rate(c)).toFixed(1)}% <small>(${c.k}/${c.n})</small>` : '-');
const pw = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : '-');

function tags(text: string): string {
  const l = labels(text);
  return (['insult', 'promo', 'meme'] as const).filter((b) => l[b]).map((b) => ` <span class="tag ${b}">${b}</span>`).join('');
}

function message(kind: string, m: Message, extra = ''): string {
  return `<div class="msg ${kind}${extra}"><b>${e(m.author)}</b>: ${e(m.text)}${tags(m.text)}</div>`;
}

function thread(t: Pick<SimThread, 'post' | 'replies'>, injectedAt = -1): string {
  return `<div class="thread">${message('post', t.post)}<div class="replies">${t.replies.map((r, i) => message('reply', r, i === injectedAt ? ' injected' : '')).join('')}</div></div>`;
}

function header(c: Community): string {
  return `<p class="head"><b>${e(c.name)}</b>: a place to talk about ${e(c.goal)}. Rules: ${e(c.rules.map((b) => RULES[b]).join('; ') || 'none')}.</p>`;
}

const personaList = (ps: readonly Persona[]) => `<ul class="personas">${ps.map((p) => `<li><b>${e(p.name)}</b> (${e(p.temperament)}): ${e(p.bio)}</li>`).join('')}</ul>`;

function ratesTable(r: SimulacraResult): string {
  const rows = r.communities.map((c) => {
    const cell = (b: 'insult' | 'promo' | 'meme') => `<td>${pc(c.rates.posts[b])}</td><td>${pw(rate(c.world.posts[b]))}</td><td>${pc(c.rates.replies[b])}</td><td>${pw(rate(c.world.replies[b]))}</td>`;
    return `<tr><td>${e(c.label)}</td>${cell('insult')}${cell('promo')}${cell('meme')}<td>${pc(c.rates.posts.offtopic)}</td><td>${pw(c.worldPostExpected.offtopic)}</td></tr>`;
  }).join('');
  const h = (b: string) => `<th colspan="4">${b}: posts (world), replies (world)</th>`;
  return `<table><tr><th>configuration</th>${h('insult')}${h('promo')}${h('meme')}<th colspan="2">off-topic posts (world)</th></tr>${rows}</table>`;
}

const verdicts = (r: SimulacraResult) => `<ul>${r.acceptance.map((a) => `<li class="${a.pass ? 'pass' : 'fail'}">[${a.pass ? 'pass' : 'FAIL'}] ${e(a.name)}<br><small>${e(a.rule)}</small></li>`).join('')}</ul>`;

const CSS = `body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
.thread{border:1px solid #ccc;border-radius:6px;padding:.5em;margin:.5em 0;background:#fafafa}
.replies{margin-left:1.5em;border-left:2px solid #ddd;padding-left:.5em}.msg{margin:.2em 0}.post{font-weight:500}
.injected{background:#fff3cd}.tag{font-size:.75em;padding:0 .4em;border-radius:3px;color:#fff;background:#888}
.tag.insult{background:#c0392b}.tag.promo{background:#2980b9}.tag.meme{background:#8e44ad}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(280px,1fr));gap:1em}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ccc;padding:.2em .4em}.pass{color:#1e7e34}.fail{color:#c0392b}
details{margin:.5em 0}summary{cursor:pointer;font-weight:600}`;

/** The page's HTML. */
export function renderPage(r: SimulacraResult, shownThreads = 6): string {
  const parts: string[] = [];
  parts.push(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>kiln simulacra</title><style>${CSS}</style></head><body>`);
  parts.push(`<h1>Social simulacra (kiln, synthetic world)</h1><p>Model: ${e(r.model.spec)}. Held-out configurations: ${e(r.heldOut.join(', ') || 'none')}.</p>`);
  parts.push(`<h2>Measured rates</h2><p>Generated rates with counts, next to the world's own rates (world threads for replies, closed form for posts' off-topic).</p>${ratesTable(r)}`);
  parts.push(`<h2>Acceptance</h2>${verdicts(r)}`);
  for (const c of r.communities) {
    parts.push(`<details${c === r.communities[0] ? ' open' : ''}><summary>${e(c.label)}</summary>${header(c.community)}`);
    parts.push(`<h4>Seed personas</h4>${personaList(c.seeds)}<h4>Generated personas</h4>${personaList(c.personas.personas)}`);
    parts.push(`<h4>Threads (${Math.min(shownThreads, c.threads.length)} of ${c.threads.length})</h4>${c.threads.slice(0, shownThreads).map((t) => thread(t)).join('')}</details>`);
  }
  const w = r.whatIf;
  parts.push(`<h2>What if (${e(w.label)})</h2>${header(w.community)}<p>Insults in the replies after an injected hostile reply: ${pc(w.counts.hostile)} (world ${pw(rate(w.world.hostile))}); after a friendly one: ${pc(w.counts.friendly)} (world ${pw(rate(w.world.friendly))}).</p>`);
  for (let i = 0; i < Math.min(shownThreads, w.hostile.length); i++)
    parts.push(`<div class="cols"><div><h4>hostile injection</h4>${thread(w.hostile[i], 0)}</div><div><h4>friendly injection</h4>${thread(w.friendly[i], 0)}</div></div>`);
  const m = r.multiverse;
  parts.push(`<h2>Multiverse (${e(m.label)})</h2><p>${m.distinct.k} versions of each thread's replies; distinct per thread: ${m.distinct.distinct.join(', ')}.</p>`);
  for (const vs of m.versions.slice(0, shownThreads)) parts.push(`<div class="cols">${vs.map((v, j) => `<div><h4>version ${j + 1}</h4>${thread(v)}</div>`).join('')}</div>`);
  parts.push('</body></html>\n');
  return parts.join('\n');
}

export function writePage(dir: string, r: SimulacraResult): string {
  const path = join(dir, 'index.html');
  writeFileSync(path, renderPage(r));
  return path;
}
