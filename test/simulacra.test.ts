// The simulacra recipe: the synthetic world (determinism, the labeller against the generator's own
// flags, the rule and contagion effects against their configured rates), the document format, the
// simulator's prompt chains against a scripted sampler and an OpenAI-compatible stub, a tiny trained
// kiln GPT end to end (memory flat), the acceptance statistics on constructed counts, the page's
// escaping and the CLI.
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as kiln from '../src/index.js';
import { Rng } from '../src/recipes/bigbench/rng.js';
import { loadKilnLanguageModel } from '../src/recipes/bigbench/kiln-model.js';
import { formatDocument, header, parseDocument, trainingCommunities, worldTokenizer } from '../src/recipes/simulacra/corpus.js';
import { DEFAULT_CONFIG, evaluationCommunities, runSimulacra, type SimulacraConfig } from '../src/recipes/simulacra/experiment.js';
import {
  acceptance, countThreads, emptyRates, normalCdf, rate, ruleEffect, twoProportionZ, worldWhatIf, type Rates,
} from '../src/recipes/simulacra/measure.js';
import { escapeHtml, renderPage } from '../src/recipes/simulacra/page.js';
import { OpenAISampler, type SampleRequest, type Sampler } from '../src/recipes/simulacra/sampler.js';
import { Simulator, STOPS } from '../src/recipes/simulacra/simulate.js';
import {
  allCommunities, BASE_RATES, BEHAVIOURS, community, configKey, drawPersonas, drawPost, drawThread, expectedPostRate, labels,
  MODERATION, parsePersona, postLabels, replyInsultRate, TEMPERAMENT_MIX, TOPICS,
} from '../src/recipes/simulacra/world.js';
import { runKiln } from '../src/cli/kiln.js';
import { runKilnQuiet } from './helpers/cli.js';

test('the world is a function of its seed', (t) => {
  const c = community('chess', ['insult']);
  const draw = (seed: number) => {
    const rng = new Rng(seed, 'w');
    const ps = drawPersonas(rng, 4);
    return { ps, th: Array.from({ length: 20 }, () => drawThread(rng, c, ps, 3)) };
  };
  t.deepEqual(draw(1), draw(1));
  t.notDeepEqual(draw(1), draw(2));
  t.is(allCommunities().length, 96);
  t.is(new Set(allCommunities().map(configKey)).size, 96);
  t.throws(() => community('chess', ['nope']), { code: 'INVALID_ARGUMENT', message: /unknown rule 'nope'/ });
});

test('the labeller recovers the generator\'s behaviours and topics exactly; persona lines parse back', (t) => {
  const rng = new Rng(5, 'labels');
  const seen = Object.fromEntries(BEHAVIOURS.map((b) => [b, 0]));
  let messages = 0;
  for (const c of allCommunities()) {
    for (let i = 0; i < 40; i++) {
      const ps = drawPersonas(rng, 4);
      for (const p of ps) t.deepEqual(parsePersona(`${p.name}: ${p.bio}`), p);
      const th = drawThread(rng, c, ps, 3);
      t.deepEqual(postLabels(th.post.text, c), th.flags[0], th.post.text);
      t.is(labels(th.post.text).topic, th.topic);
      th.replies.forEach((r, k) => {
        const l = labels(r.text), f = th.flags[k + 1];
        t.deepEqual([l.insult, l.promo, l.meme], [f.insult, f.promo, f.meme], r.text);
      });
      for (const f of th.flags) for (const b of BEHAVIOURS) if (f[b]) seen[b]++;
      messages += th.flags.length;
    }
  }
  for (const b of BEHAVIOURS) t.true(seen[b] > 100, `${b} generated ${seen[b]} times in ${messages} messages`);
  t.is(parsePersona('Ana: a kind nurse who loves chess and chess.'), null, 'two equal interests');
  t.is(parsePersona('ana: a kind nurse who loves chess and music.'), null);
});

test('rules divide their behaviour\'s rate by the moderation factor: closed form and large-sample counts', (t) => {
  // Closed form: the temperament mix times the per-temperament rates.
  const none = community('music', []), all = community('music', [...BEHAVIOURS]);
  t.true(Math.abs(expectedPostRate(none, 'insult') - (0.5 * 0.02 + 0.35 * 0.08 + 0.15 * 0.5)) < 1e-12);
  for (const b of BEHAVIOURS) t.true(Math.abs(expectedPostRate(all, b) * MODERATION - expectedPostRate(none, b)) < 1e-12);
  t.true(Math.abs(TEMPERAMENT_MIX.friendly + TEMPERAMENT_MIX.neutral + TEMPERAMENT_MIX.troll - 1) < 1e-12);
  // Counts: 20000 posts per configuration within 5 standard errors of the closed form.
  const N = 20000;
  for (const c of [none, all]) {
    const rng = new Rng(9, c.name);
    const k = Object.fromEntries(BEHAVIOURS.map((b) => [b, 0]));
    for (let i = 0; i < N; i++) {
      const p = drawPersonas(rng, 1)[0];
      const post = drawPost(rng, c, p);
      for (const b of BEHAVIOURS) if (postLabels(post.text, c)[b]) k[b]++;
    }
    for (const b of BEHAVIOURS) {
      const e = expectedPostRate(c, b), se = Math.sqrt(e * (1 - e) / N);
      t.true(Math.abs(k[b] / N - e) < 5 * se, `${c.name} ${b}: ${k[b] / N} vs ${e}`);
    }
  }
  // Contagion: after a hostile message a reply insults more, unless moderated.
  t.is(replyInsultRate(none, 'neutral', true), BASE_RATES.neutral.insult + 0.4);
  const w = worldWhatIf(community('music', ['promo']), 3000, 2, 4, 1);
  t.true(rate(w.hostile) > rate(w.friendly) + 0.2, `${rate(w.hostile)} vs ${rate(w.friendly)}`);
});

test('documents round-trip through the parser and the word tokenizer', (t) => {
  const tok = worldTokenizer();
  const rng = new Rng(3, 'docs');
  for (const c of allCommunities().filter((_, i) => i % 7 === 0)) {
    const ps = drawPersonas(rng, 4);
    const th = drawThread(rng, c, ps, 3);
    const doc = formatDocument(c, ps, th);
    const back = parseDocument(doc);
    t.deepEqual(back.community, c);
    t.deepEqual(back.personas, ps.map((p) => ({ name: p.name, bio: p.bio })));
    t.deepEqual(back.thread, { post: th.post, replies: th.replies });
    const ids = tok.encode(doc);
    t.false(ids.includes(tok.unkId), doc);
    t.is(tok.decode(ids), doc.replace(/\n+/g, ' ').trim(), 'the words come back; only line breaks are lost');
  }
  t.regex(header(community('chess', [])), /^Community: chess \w+\nGoal: a place to talk about chess\.\nRules: none\.\n$/);
  t.throws(() => parseDocument('Community: x\nGoal: a place to talk about knitting.\nRules: none.\n'), { code: 'INVALID_ARGUMENT', message: /unknown goal topic 'knitting'/ });
  t.throws(() => parseDocument('hello'), { code: 'INVALID_ARGUMENT' });
  // The evaluated configurations are held out of the training text.
  const ev = evaluationCommunities('chess');
  const held = new Set([ev.all, ...Object.values(ev.without)].map(configKey));
  const train = trainingCommunities(held);
  t.is(train.length, 91);
  t.false(train.some((c) => held.has(configKey(c))));
});

/** Answers every request from `answer(prompt, j)` and records the requests. */
class ScriptedSampler implements Sampler {
  readonly name = 'scripted';
  readonly requests: SampleRequest[] = [];
  constructor(private readonly answer: (prompt: string, j: number) => string) {}
  async sample(req: SampleRequest): Promise<string[][]> {
    this.requests.push(req);
    return req.prompts.map((p) => Array.from({ length: req.n }, (_, j) => this.answer(p, j)));
  }
}

const PERSONAS = ['Ana: a kind nurse who loves chess and music.', 'Ana: a rude baker who loves chess and cooking.', 'garbage', 'Ben: a rude baker who loves chess and cooking.',
  'Cora: a quiet student who loves music and chess.', 'Dev: a warm parent who loves gardening and chess.'];

test('the simulator\'s prompt chains, exactly, against a scripted sampler', async (t) => {
  const c = community('chess', ['insult', 'meme']);
  const seeds = [{ name: 'Zed', interests: ['chess', 'music'] as const, temperament: 'friendly' as const, bio: 'a kind nurse who loves chess and music.' }].map((p) => ({ ...p, interests: [...p.interests] }));
  const s = new ScriptedSampler((prompt, j) => {
    if (prompt.endsWith('Persona:')) return ` ${PERSONAS[j % PERSONAS.length]}`;
    if (prompt.endsWith('Post by Ana:')) return ' What is your favourite opening?';
    return /Reply by (\w+):$/.test(prompt) ? `  Only fools would  say that. ${prompt.length}` : ' Hello.';
  });
  const sim = new Simulator(s, { temperature: 0.9, topP: 0.95, maxTokens: 30, seed: 4, threadPersonas: 3 });
  const pr = await sim.personas(c, seeds, 4);
  t.is(s.requests[0].prompts[0], `Community: ${c.name}\nGoal: a place to talk about chess.\nRules: be civil; no memes.\n\nPersona: Zed: a kind nurse who loves chess and music.\nPersona:`);
  t.deepEqual([s.requests[0].n, s.requests[0].temperature, s.requests[0].topP, s.requests[0].maxTokens, s.requests[0].stop], [8, 0.9, 0.95, 30, STOPS]);
  t.deepEqual(pr.personas.map((p) => p.name), ['Ana', 'Ben', 'Cora', 'Dev'], 'the first of each name, unreadable lines rejected');
  t.deepEqual(pr.rejected.slice(0, 2), [PERSONAS[1], 'garbage']);
  t.is(pr.personas[1].temperament, 'troll');
  const threads = await sim.threads(c, pr.personas, 2, 2);
  const postReq = s.requests[s.requests.length - 3];
  threads.forEach((th, i) => {
    t.is(postReq.prompts[i], formatDocument(c, th.personas) + `\nPost by ${th.post.author}:`);
    t.is(th.personas.length, 3);
  });
  // A thread whose author is not Ana got the fallback answer; every reply prompt carries the thread so far.
  const last = s.requests[s.requests.length - 1];
  threads.forEach((th, i) => {
    t.is(last.prompts[i], formatDocument(c, th.personas, { post: th.post, replies: th.replies.slice(0, 1) }) + `Reply by ${th.replies[1].author}:`);
    t.not(th.replies[0].author, th.post.author);
    t.not(th.replies[1].author, th.replies[0].author);
    t.regex(th.replies[0].text, /^Only fools would say that\. \d+$/, 'whitespace collapsed and trimmed');
  });
  t.not(s.requests[s.requests.length - 2].seed, last.seed, 'each call its own seed');
  const w = await sim.whatIf(c, threads, 1);
  t.true(labels(w.injected[0].hostile.text).insult && !labels(w.injected[0].friendly.text).insult);
  t.deepEqual(w.hostile.map((x) => x.replies.map((r) => r.author)), w.friendly.map((x) => x.replies.map((r) => r.author)), 'both arms, the same repliers');
  t.is(w.hostile[0].replies[0], w.injected[0].hostile);
  const mv = await sim.multiverse(c, threads, 3, 2);
  t.is(mv.length, 2);
  for (const vs of mv) t.deepEqual(new Set(vs.map((v) => v.replies.map((r) => r.author).join())).size, 1, 'versions share the repliers');
  await t.throwsAsync(() => sim.multiverse(c, threads, 1, 2), { code: 'INVALID_ARGUMENT' });
  t.throws(() => new Simulator(s, { temperature: -1, topP: 1, maxTokens: 5, seed: 0, threadPersonas: 3 }), { code: 'INVALID_ARGUMENT', message: /temperature/ });
});

test('the OpenAI-compatible sampler sends the sampling fields and orders choices by index', async (t) => {
  const bodies: any[] = [];
  const server = createServer((req, res) => {
    let data = '';
    req.on('data', (d) => (data += d));
    req.on('end', () => {
      const body = JSON.parse(data);
      bodies.push(body);
      const choices = body.prompt.flatMap((p: string, i: number) => Array.from({ length: body.n }, (_, j) => ({ index: i * body.n + j, text: `${p.length}-${j}` }))).reverse();
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(req.url === '/v1/completions' ? { choices } : { error: { message: 'no' } }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
    const s = new OpenAISampler(url, 'm');
    const out = await s.sample({ prompts: ['a', 'bbb'], n: 2, maxTokens: 7, temperature: 0.7, topP: 0.9, stop: STOPS, seed: 11 });
    t.deepEqual(out, [['1-0', '1-1'], ['3-0', '3-1']]);
    t.like(bodies[0], { model: 'm', prompt: ['a', 'bbb'], n: 2, max_tokens: 7, temperature: 0.7, top_p: 0.9, seed: 11 });
    t.deepEqual(bodies[0].stop, STOPS.slice(0, 4));
    await t.throwsAsync(() => new OpenAISampler(`${url}/x`, 'm').sample({ prompts: ['a'], n: 1, maxTokens: 1, temperature: 1, topP: 1, stop: [], seed: 0 }), { code: 'ENDPOINT_ERROR' });
  } finally {
    server.close();
  }
  t.throws(() => new OpenAISampler('ftp://x', 'm'), { code: 'INVALID_ARGUMENT' });
});

test('acceptance statistics on constructed counts', (t) => {
  t.true(Math.abs(normalCdf(1.959964) - 0.975) < 1e-6);
  t.true(Math.abs(normalCdf(-1) - 0.158655) < 1e-6);
  const z = twoProportionZ({ k: 30, n: 100 }, { k: 10, n: 100 });
  t.true(Math.abs(z.z - 0.2 / Math.sqrt(0.2 * 0.8 * 0.02)) < 1e-12);
  t.true(z.p < 0.001);
  t.deepEqual(twoProportionZ({ k: 0, n: 0 }, { k: 1, n: 2 }), { z: 0, p: 0.5 });
  const rates = (insult: [number, number], onGoal: [number, number]): Rates => {
    const r = emptyRates();
    r.posts.insult = { k: insult[0], n: insult[1] };
    r.replies.insult = { k: 0, n: 0 };
    r.onGoal = { k: onGoal[0], n: onGoal[1] };
    return r;
  };
  const strong = ruleEffect('insult', rates([2, 100], [90, 100]), rates([20, 100], [90, 100]), rates([3, 100], [0, 0]), rates([11, 100], [0, 0]));
  const weak = ruleEffect('insult', rates([8, 100], [0, 0]), rates([11, 100], [0, 0]), rates([3, 100], [0, 0]), rates([11, 100], [0, 0]));
  t.deepEqual([strong.withRule, strong.withoutRule, strong.worldWith, strong.worldWithout], [{ k: 2, n: 100 }, { k: 20, n: 100 }, 0.03, 0.11]);
  const mv = emptyRates();
  mv.replies.insult = { k: 10, n: 100 };
  mv.replies.promo = { k: 5, n: 100 };
  mv.replies.meme = { k: 5, n: 100 };
  const world = emptyRates();
  world.replies.insult = { k: 12, n: 100 };
  world.replies.promo = { k: 6, n: 100 };
  world.replies.meme = { k: 9, n: 100 };
  const tol = { alpha: 0.05, rateGap: 0.1 };
  const checks = acceptance({
    rules: [strong, weak], onGoal: { generated: { k: 85, n: 100 }, world: 0.9 },
    whatIf: { hostile: { k: 30, n: 100 }, friendly: { k: 10, n: 100 }, worldHostile: 0.4, worldFriendly: 0.1 },
    multiverse: { d: { k: 5, distinct: [5, 5, 4] }, generated: mv, community: world, world: emptyRates() }, tol,
  });
  t.deepEqual(checks.map((c) => c.pass), [true, false, true, true, true]);
  t.regex(checks[0].rule, /with 2\/100 = 0\.020 \(world 0\.030\), without 20\/100 = 0\.200 \(world 0\.110\); z 4\.\d\d/);
  const failing = acceptance({
    rules: [], onGoal: { generated: { k: 50, n: 100 }, world: 0.9 },
    whatIf: { hostile: { k: 10, n: 100 }, friendly: { k: 10, n: 100 }, worldHostile: 0.4, worldFriendly: 0.1 },
    multiverse: { d: { k: 5, distinct: [1, 1] }, generated: mv, community: world, world: emptyRates() }, tol,
  });
  t.deepEqual(failing.map((c) => c.pass), [false, false, false]);
  const hostileCommunity = emptyRates();
  hostileCommunity.replies = { insult: { k: 25, n: 100 }, promo: { k: 5, n: 100 }, meme: { k: 5, n: 100 } };
  const drift = acceptance({
    rules: [], onGoal: { generated: { k: 90, n: 100 }, world: 0.9 }, whatIf: { hostile: { k: 30, n: 100 }, friendly: { k: 10, n: 100 }, worldHostile: 0.4, worldFriendly: 0.1 },
    multiverse: { d: { k: 5, distinct: [5, 5] }, generated: mv, community: hostileCommunity, world: emptyRates() }, tol,
  });
  t.deepEqual(drift.map((c) => c.pass), [true, true, false], 'versions that drift 0.15 from the community fail');
});

const tiny = (over: Partial<SimulacraConfig> = {}): SimulacraConfig => ({
  ...DEFAULT_CONFIG, model: { nLayer: 1, nHead: 2, nEmbd: 16, blockSize: 160 }, train: { ...DEFAULT_CONFIG.train, steps: 6, batchSize: 4, warmup: 2 },
  seedPersonas: 4, personaPool: 2, threads: 3, whatIfThreads: 2, follow: 1, multiverseThreads: 1, versions: 2, worldThreads: 200, maxTokens: 12, seed: 3, ...over,
});

test.serial('a tiny trained kiln GPT end to end: parsed outputs, memory flat, the page escapes text', async (t) => {
  kiln.setNumThreads(2);
  const before = kiln.memory().tensors;
  const r = await runSimulacra(tiny());
  t.is(kiln.memory().tensors, before, 'model, optimizer and caches freed');
  t.is(r.communities.length, 5);
  t.true(r.model.params! > 0 && Number.isFinite(r.model.finalLoss!));
  for (const c of r.communities) {
    t.is(c.threads.length, 3);
    for (const th of c.threads) {
      t.is(th.replies.length, DEFAULT_CONFIG.replies);
      for (const m of [th.post, ...th.replies]) t.true(typeof m.text === 'string' && !m.text.includes('\n'));
      t.true(th.personas.some((p) => p.name === th.post.author));
    }
    t.deepEqual(c.rates, countThreads(c.community, c.threads), 'the counts are the labeller\'s over the threads');
  }
  t.is(r.whatIf.hostile.length, 2);
  t.is(r.multiverse.versions[0].length, 2);
  t.is(r.acceptance.length, 7);
  t.is(r.heldOut.length, 5);
  // Escaping: a designer's seed persona with markup.
  const evil = structuredClone(r);
  evil.communities[0].seeds[0] = { ...evil.communities[0].seeds[0], bio: '<script>alert("x")</script> & co' };
  evil.communities[0].threads[0].post.text = '<img src=x onerror=alert(1)>';
  const html = renderPage(evil);
  t.false(html.includes('<script'), 'no script element');
  t.false(html.includes('<img'));
  t.true(html.includes(escapeHtml('<script>alert("x")</script> & co')));
  t.is(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  t.false(/<(link|img|iframe|object|script)\b|url\(|@import/i.test(html), 'no external assets, no scripts');
});

test.serial('the CLI: help, bad flags, and a tiny run writes its files and a servable model', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'kiln-sim-'));
  const { codes, logs } = await runKilnQuiet(
    ['simulacra', '--help'],
    ['simulacra', 'run', '--bogus', '1'],
    ['simulacra', 'run', '--goal', 'knitting'],
    ['simulacra', 'run', '--width', '15', '--heads', '4'],
    ['simulacra', 'run', '--model', 'file:/x'],
    ['simulacra', 'run', '--top-p', '1.5'],
    ['simulacra', 'run', '--steps', '4', '--batch', '2', '--layers', '1', '--width', '16', '--heads', '2', '--threads', '2', '--personas', '1', '--seed-personas', '4',
      '--whatif', '2', '--versions', '2', '--multiverse', '1', '--out', out],
  );
  t.deepEqual(codes, [0, 2, 2, 2, 2, 2, 0]);
  t.true(logs.some((l) => l.includes('usage: kiln simulacra run')));
  for (const f of ['results.json', 'table.txt', 'index.html', 'model/model.safetensors']) t.true(existsSync(join(out, f)), f);
  const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  t.is(res.kind, 'kiln.simulacra.results');
  t.is(res.config.threads, 2);
  t.regex(readFileSync(join(out, 'table.txt'), 'utf8'), /acceptance:\n {2}\[(pass|FAIL)\] rule 'be civil'/);
  t.regex(readFileSync(join(out, 'index.html'), 'utf8'), /^<!doctype html>/);
  const lm = loadKilnLanguageModel(join(out, 'model'));
  t.is(lm.vocabSize, worldTokenizer().vocabSize);
  for (const p of lm.model.parameters()) p.dispose();
});

test.serial('the CLI: an unreachable endpoint or a refused API key is one line naming the URL, not a stack', async (t) => {
  const server = createServer((req, res) => {
    if (req.headers.authorization === 'Bearer good') { res.writeHead(404); res.end('nope'); return; }
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end('{"error": {"message": "Incorrect API key provided"}}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => { server.closeAllConnections(); server.close(); });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  const run = async (...argv: string[]) => {
    let err = '';
    const code = await runKiln(['simulacra', 'run', ...argv], { err: (s) => { err += s + '\n'; } });
    return { code, err };
  };
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));
  const refused = await run('--model', `openai:http://127.0.0.1:${port}/v1`);
  t.is(refused.code, 1);
  t.is(refused.err, `kiln: simulacra: cannot reach http://127.0.0.1:${port}/v1/models: ECONNREFUSED\n`);
  const key = await run('--model', `openai:${url}`, '--api-key', 'bad');
  t.is(key.code, 1);
  t.regex(key.err, /^kiln: simulacra: http:\S+\/models refused the API key \(HTTP 401: Incorrect API key provided\); check --api-key or OPENAI_API_KEY\n$/);
  const missing = await run('--model', `openai:${url}`, '--api-key', 'good');
  t.regex(missing.err, /^kiln: simulacra: no model name given .* \(HTTP 404: nope\)\n$/);
});
