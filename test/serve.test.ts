// `kiln serve`: an OpenAI-compatible /v1/completions endpoint over a kiln GPT, generation in a
// worker thread. Against a tiny random char-level GPT saved to a temp folder: the OpenAI client
// through the server gives KilnLanguageModel's greedy generations, choice log-probabilities and
// BIG-bench scores; sampled tokens are exactly the inverse CDF of softmax(logits / T) (or its
// nucleus) at the seed's Philox numbers, and their frequencies pass a chi-square test that the
// wrong temperature fails; echo + logprobs equal a direct log-softmax; bad requests get the
// right status and error JSON; /v1/models answers during a long generation; stopping `kiln serve`
// mid-generation answers 503 and terminates the worker (and the ava process exits).
import test from 'ava';
import { request } from 'node:http';
import { connect } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as kiln from '../src/index.js';
import { kilnLanguageModel, saveKilnLanguageModel } from '../src/recipes/bigbench/kiln-model.js';
import { OpenAICompletionsModel } from '../src/recipes/bigbench/openai.js';
import { runBigBench } from '../src/recipes/bigbench/runner.js';
import { loadTasks } from '../src/recipes/bigbench/task.js';
import { KilnCompleter } from '../src/serve/completions.js';
import { philox4x32_10, seedKey, uniformAt } from '../src/serve/philox.js';
import { runServe } from '../src/serve/cli.js';
import { startServer, type KilnServer } from '../src/serve/server.js';
import { runKilnQuiet } from './helpers/cli.js';

const TASK = fileURLToPath(new URL('./fixtures/bigbench/kiln/letter_map.json', import.meta.url));
const NAME = 'tiny-char-gpt';
const BLOCK = 32;

// A random GPT whose token embeddings (tied to the LM head) are drawn at std 0.1 instead of
// GPT-2's 0.02, so next-token distributions are far from uniform (entropy ~3.7 nats of ln 62 = 4.1)
// and a wrong sampler shows.
kiln.manualSeed(11);
const tok = kiln.train.CharTokenizer.fromText(readFileSync(TASK, 'utf8') + '\nQ:A abcdefghwzsyuxtv');
const V = tok.vocabSize;
const model = new kiln.nn.GPT({ nLayer: 2, nHead: 2, nEmbd: 32, vocabSize: V, blockSize: BLOCK });
model.loadStateDict({ 'wte.weight': kiln.randn([V, 32], { std: 0.1 }) }, { strict: false });
model.eval();
const lm = kilnLanguageModel(model, tok, { maxBatch: 4 });
const dir = mkdtempSync(join(tmpdir(), 'kiln-serve-'));
const modelDir = join(dir, 'gpt');
saveKilnLanguageModel(modelDir, model, tok);

let server: KilnServer;
test.before(async () => {
  server = await startServer({ model: modelDir, port: 0, modelName: NAME, maxBodyBytes: 64 * 1024, maxBatch: 64 });
});
test.after.always(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Answer { status: number; json: any; headers: Headers }

async function call(path: string, init: { method?: string; body?: unknown; headers?: Record<string, string>; base?: string } = {}): Promise<Answer> {
  const body = init.body === undefined ? undefined : typeof init.body === 'string' ? init.body : JSON.stringify(init.body);
  const res = await fetch((init.base ?? server.baseUrl) + path, {
    method: init.method ?? (body === undefined ? 'GET' : 'POST'), body, headers: { 'content-type': 'application/json', ...init.headers },
  });
  const text = await res.text();
  let json: any;
  try { json = JSON.parse(text); } catch { json = text; }
  return { status: res.status, json, headers: res.headers };
}

const complete = (body: Record<string, unknown>, base?: string, headers?: Record<string, string>) =>
  call('/completions', { body: { model: NAME, ...body }, base, headers });

/** Log-softmax rows (float64) of the full forward over ids, computed here. */
function logSoftmaxRows(ids: ArrayLike<number>, m: InstanceType<typeof kiln.nn.GPT> = model): number[][] {
  const Vm = m.config.vocabSize!;
  return kiln.tidy(() => kiln.noGrad(() => {
    const logits = m.forward(kiln.tensor(Int32Array.from(ids), { dtype: 'int32', shape: [1, ids.length] }));
    const d = logits.dataSync();
    return Array.from({ length: ids.length }, (_, t) => {
      const r = Array.from(d.subarray(t * Vm, (t + 1) * Vm));
      const mx = Math.max(...r);
      const lse = mx + Math.log(r.reduce((s, x) => s + Math.exp(x - mx), 0));
      return r.map((x) => x - lse);
    });
  }));
}

/** softmax(logits / T) of the next token after `prompt` (logits = log-softmax rows, up to a constant). */
function nextTokenProbs(prompt: string, T: number): number[] {
  const rows = logSoftmaxRows(tok.encode(prompt));
  const z = rows[rows.length - 1].map((x) => x / T);
  const m = Math.max(...z);
  const e = z.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

/** Pearson chi-square of counts against probabilities (bins expecting < 5 pooled) and its degrees of freedom. */
function chiSquare(counts: number[], probs: number[]): { chi2: number; df: number } {
  const N = counts.reduce((a, b) => a + b, 0);
  let chi2 = 0, bins = 0, poolE = 0, poolO = 0;
  probs.forEach((p, i) => {
    if (N * p >= 5) {
      chi2 += (counts[i] - N * p) ** 2 / (N * p);
      bins++;
    } else {
      poolE += N * p;
      poolO += counts[i];
    }
  });
  if (poolE > 0) {
    chi2 += (poolO - poolE) ** 2 / poolE;
    bins++;
  }
  return { chi2, df: bins - 1 };
}

/** The chi-square quantile at 1 - 1e-4 (Wilson-Hilferty). */
const chiCritical = (df: number) => df * (1 - 2 / (9 * df) + 3.719 * Math.sqrt(2 / (9 * df))) ** 3;

test('Philox 4x32-10 gives Random123\'s known answers; uniformAt is counter-based per seed, stream and step', (t) => {
  const hex = (w: number[]) => w.map((v) => v.toString(16).padStart(8, '0'));
  t.deepEqual(hex(philox4x32_10(0, 0, 0, 0, 0, 0)), ['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']);
  t.deepEqual(hex(philox4x32_10(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff)), ['408f276d', '41c83b0e', 'a20bc7c6', '6d5451fd']);
  t.deepEqual(hex(philox4x32_10(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0)), ['d16cfe09', '94fdcceb', '5001e420', '24126ea1']);
  const [w0, w1] = philox4x32_10(3, 5, 0, 0, 7, 0);
  t.is(uniformAt(7n, 5, 3), ((w0 >>> 5) * 2 ** 26 + (w1 >>> 6)) / 2 ** 53);
  const us = [uniformAt(7n, 5, 3), uniformAt(7n, 5, 4), uniformAt(7n, 6, 3), uniformAt(8n, 5, 3)];
  t.is(new Set(us).size, 4);
  for (const u of us) t.true(u >= 0 && u < 1);
  t.is(seedKey(-1), 2n ** 64n - 1n);
});

test('the OpenAI client through the server: KilnLanguageModel\'s greedy generations, choice log-probs and BIG-bench scores', async (t) => {
  const client = new OpenAICompletionsModel({ baseUrl: server.baseUrl, model: NAME, timeoutMs: 30_000, retries: 0 });
  const long = 'Q: abcdefgh\nA: wzsyuxtv\nQ: hgfedcba\nA: '; // 39 characters: past blockSize 32
  t.true(long.length > BLOCK);
  const prompts = ['a', 'Q: c\nA: ', long, 'hg fe'];
  const want = await lm.generate(prompts, { maxTokens: 40 });
  t.deepEqual(await client.generate(prompts, { maxTokens: 40 }), want);
  // A stop string: OpenAI returns the text before it; KilnLanguageModel keeps it.
  const stop = want[2][5];
  const cut = want[2].slice(0, want[2].indexOf(stop));
  t.deepEqual(await client.generate([long], { maxTokens: 40, stop: [stop] }), [cut]);
  t.deepEqual(await lm.generate([long], { maxTokens: 40, stop: [stop] }), [cut + stop]);

  for (const context of ['Q: a\nA: ', long, long + long]) {
    const choices = ['w', 'zz', ' y u', 'abcdefgh hgfedcba', ''];
    const [a, b] = [await client.scoreChoices(context, choices), await lm.scoreChoices(context, choices)];
    a.forEach((x, i) => t.true(Math.abs(x - b[i]) < 1e-5, `${JSON.stringify(context)} + ${JSON.stringify(choices[i])}: ${x} vs ${b[i]}`));
    t.true(a[3] < -5, 'a long choice has a large negative log-probability');
  }

  const tasks = loadTasks(TASK);
  const [viaHttp, direct] = [await runBigBench(tasks, client, { shots: [0, 1], maxTokens: 3 }), await runBigBench(tasks, lm, { shots: [0, 1], maxTokens: 3 })];
  t.is(viaHttp.failedExamples, 0);
  viaHttp.tasks[0].subtasks[0].perShot.forEach((shot, s) => {
    const ref = direct.tasks[0].subtasks[0].perShot[s];
    t.deepEqual(shot.scores, ref.scores);
    t.is(shot.normalized, ref.normalized);
    shot.examples.forEach((e, i) => {
      t.is(e.predictedChoice, ref.examples[i].predictedChoice);
      t.is(e.generation, ref.examples[i].generation);
      e.choiceLogProbs!.forEach((x, c) => t.true(Math.abs(x - ref.examples[i].choiceLogProbs![c]) < 1e-5));
    });
  });
});

test('sampling: a seed repeats, other seeds and choices differ, temperature -> 0 is greedy', async (t) => {
  const body = { prompt: ['Q: a\nA: ', 'hgf'], max_tokens: 24, temperature: 1, n: 3 };
  const a = await complete({ ...body, seed: 7 });
  const b = await complete({ ...body, seed: 7 });
  const c = await complete({ ...body, seed: 8 });
  t.is(a.status, 200);
  const texts = (r: Answer) => r.json.choices.map((x: { text: string }) => x.text);
  t.is(a.json.choices.length, 6);
  t.deepEqual(a.json.choices.map((x: { index: number }) => x.index), [0, 1, 2, 3, 4, 5]);
  t.deepEqual(texts(a), texts(b));
  t.is(new Set(texts(a)).size, 6, 'each choice has its own stream');
  t.true(texts(a).every((s: string, i: number) => s !== texts(c)[i]), 'another seed, other samples');
  t.deepEqual(a.json.usage, { prompt_tokens: 11, completion_tokens: 6 * 24, total_tokens: 11 + 6 * 24 });

  const greedy = await complete({ prompt: ['Q: a\nA: ', 'hgf'], max_tokens: 24, temperature: 0, n: 2 });
  t.deepEqual(texts(greedy), [...Array(2).fill((await lm.generate(['Q: a\nA: '], { maxTokens: 24 }))[0]), ...Array(2).fill((await lm.generate(['hgf'], { maxTokens: 24 }))[0])]);
  for (const seed of [1, 2, 3]) {
    const cold = await complete({ prompt: ['Q: a\nA: ', 'hgf'], max_tokens: 24, temperature: 1e-4, n: 2, seed });
    t.deepEqual(texts(cold), texts(greedy), `seed ${seed}`);
  }
});

test('sampling: each first token is the inverse CDF of softmax(logits / T) at the seed\'s Philox number; frequencies pass chi-square, the wrong T fails', async (t) => {
  const prompt = 'Q: b\nA: ';
  const T = 0.7;
  const p = nextTokenProbs(prompt, T);
  const counts = new Array(V).fill(0);
  let exact = 0, nearEdge = 0, total = 0;
  for (let seed = 100; seed < 116; seed++) {
    const r = await complete({ prompt, max_tokens: 1, temperature: T, n: 128, seed });
    t.is(r.status, 200);
    r.json.choices.forEach((ch: { index: number; text: string }) => {
      const id = tok.encode(ch.text)[0];
      counts[id]++;
      total++;
      // Inverse CDF in id order at u = uniformAt(seed, choice, step 0). The server's logits come
      // from its own forward, equal to these up to float32 rounding: a u within 1e-6 of a CDF
      // step may fall on either side of it.
      const u = uniformAt(BigInt(seed), ch.index, 0);
      let acc = 0, want = -1, edge = Infinity;
      for (let v = 0; v < V; v++) {
        acc += p[v];
        edge = Math.min(edge, Math.abs(u - acc));
        if (want < 0 && u < acc) want = v;
      }
      if ((want < 0 ? V - 1 : want) === id) exact++;
      else if (edge < 1e-6) nearEdge++;
    });
  }
  t.is(total, 2048);
  t.is(exact + nearEdge, total, 'every sample is the reference inverse CDF at its Philox number');
  t.true(nearEdge <= 2);
  const fit = chiSquare(counts, p);
  t.true(fit.df >= 4, `df ${fit.df}: the distribution is spread over several tokens`);
  t.true(fit.chi2 < chiCritical(fit.df), `chi2 ${fit.chi2.toFixed(1)} >= ${chiCritical(fit.df).toFixed(1)} (df ${fit.df})`);
  // The same samples are far from softmax at T = 1 and from uniform: the test can fail.
  for (const wrong of [nextTokenProbs(prompt, 1), new Array(V).fill(1 / V)]) {
    const bad = chiSquare(counts, wrong);
    t.true(bad.chi2 > 3 * chiCritical(bad.df), `a wrong distribution gives chi2 ${bad.chi2.toFixed(1)} (df ${bad.df})`);
  }
});

test('top_p: only the nucleus is sampled, in its renormalised proportions', async (t) => {
  const prompt = 'Q: b\nA: ';
  const T = 1.3, topP = 0.5;
  const p = nextTokenProbs(prompt, T);
  const order = p.map((_, i) => i).sort((a, b) => p[b] - p[a] || a - b);
  const nucleus: number[] = [];
  let mass = 0;
  for (const id of order) {
    nucleus.push(id);
    mass += p[id];
    if (mass >= topP) break;
  }
  t.true(nucleus.length >= 3 && nucleus.length < V / 2, `nucleus of ${nucleus.length} tokens`);
  t.true(1 - mass > 0.3, `the tokens left out hold ${(1 - mass).toFixed(2)} of the mass`);
  const counts = new Array(V).fill(0);
  for (let seed = 0; seed < 8; seed++) {
    const r = await complete({ prompt, max_tokens: 1, temperature: T, top_p: topP, n: 128, seed });
    for (const ch of r.json.choices) counts[tok.encode(ch.text)[0]]++;
  }
  const outside = counts.reduce((s, c, id) => s + (nucleus.includes(id) ? 0 : c), 0);
  t.is(outside, 0, 'no token outside the nucleus');
  const fit = chiSquare(nucleus.map((id) => counts[id]), nucleus.map((id) => p[id] / mass));
  t.true(fit.chi2 < chiCritical(fit.df), `chi2 ${fit.chi2.toFixed(1)} (df ${fit.df})`);
  // top_p 0 keeps the most probable token only: greedy.
  const zero = await complete({ prompt, max_tokens: 6, temperature: 1, top_p: 0, seed: 3 });
  t.is(zero.json.choices[0].text, (await lm.generate([prompt], { maxTokens: 6 }))[0]);
});

test('echo + logprobs: token_logprobs are a direct forward\'s log-softmax; top_logprobs, text_offset, finish_reason, usage', async (t) => {
  const prompt = 'Q: d\nA: y';
  const r = await complete({ prompt, max_tokens: 5, temperature: 0, echo: true, logprobs: 3 });
  t.is(r.status, 200);
  t.is(r.json.object, 'text_completion');
  t.is(r.json.model, NAME);
  t.regex(r.json.id, /^cmpl-/);
  t.true(Math.abs(r.json.created - Date.now() / 1000) < 60);
  const ch = r.json.choices[0];
  const gen = (await lm.generate([prompt], { maxTokens: 5 }))[0];
  t.is(ch.text, prompt + gen);
  t.is(ch.finish_reason, 'length');
  const lp = ch.logprobs;
  t.deepEqual(lp.tokens, [...prompt, ...gen]);
  t.deepEqual(lp.text_offset, [...prompt + gen].map((_, i) => i));
  const ids = tok.encode(prompt + gen);
  const rows = logSoftmaxRows(ids.subarray(0, ids.length - 1));
  t.is(lp.token_logprobs[0], null);
  t.is(lp.top_logprobs[0], null);
  for (let i = 1; i < ids.length; i++) {
    t.true(Math.abs(lp.token_logprobs[i] - rows[i - 1][ids[i]]) < 1e-5, `token ${i}: ${lp.token_logprobs[i]} vs ${rows[i - 1][ids[i]]}`);
    const top3 = rows[i - 1].map((v, id) => [id, v]).sort((a, b) => b[1] - a[1]).slice(0, 3);
    const got = lp.top_logprobs[i] as Record<string, number>;
    for (const [id, v] of top3) t.true(Math.abs(got[tok.vocab[id]] - v) < 1e-5);
    t.true(tok.vocab[ids[i]] in got, 'the chosen token is always listed');
    t.is(Object.keys(got).length, top3.some(([id]) => id === ids[i]) ? 3 : 4);
  }
  t.deepEqual(r.json.usage, { prompt_tokens: prompt.length, completion_tokens: 5, total_tokens: prompt.length + 5 });
  // Without echo: offsets index the returned text; logprobs 0 lists the chosen token only.
  const plain = await complete({ prompt, max_tokens: 5, temperature: 0, logprobs: 0 });
  const pl = plain.json.choices[0].logprobs;
  t.deepEqual(pl.tokens, [...gen]);
  t.deepEqual(pl.text_offset, [0, 1, 2, 3, 4]);
  pl.token_logprobs.forEach((v: number, i: number) => t.true(Math.abs(v - lp.token_logprobs[prompt.length + i]) < 1e-5));
  pl.top_logprobs.forEach((o: Record<string, number>, i: number) => t.deepEqual(Object.keys(o), [gen[i]]));
  // A stop string ends the text before it, with finish_reason "stop"; no logprobs: null; echo with max_tokens 0.
  const stopped = await complete({ prompt, max_tokens: 5, temperature: 0, stop: [gen[2]], logprobs: 0 });
  t.is(stopped.json.choices[0].text, gen.slice(0, gen.indexOf(gen[2])));
  t.is(stopped.json.choices[0].finish_reason, 'stop');
  t.is(stopped.json.choices[0].logprobs.tokens.join(''), stopped.json.choices[0].text);
  t.is((await complete({ prompt, max_tokens: 2 })).json.choices[0].logprobs, null);
  const echoOnly = await complete({ prompt, max_tokens: 0, echo: true, logprobs: 0 });
  t.is(echoOnly.json.choices[0].text, prompt);
  t.is(echoOnly.json.choices[0].logprobs.tokens.length, prompt.length);
  t.is(echoOnly.json.usage.completion_tokens, 0);
});

test('bad requests get OpenAI-style errors naming the field; the server answers afterwards', async (t) => {
  const cases: [unknown, number, string | null][] = [
    ['{"model": "x", ', 400, null],
    ['[1, 2]', 400, null],
    [{ model: 'gpt-4', prompt: 'a' }, 404, 'model'],
    [{ prompt: 'a' }, 400, 'model'],
    [{ model: 5, prompt: 'a' }, 400, 'model'],
    [{ model: NAME }, 400, 'prompt'],
    [{ model: NAME, prompt: 5 }, 400, 'prompt'],
    [{ model: NAME, prompt: [] }, 400, 'prompt'],
    [{ model: NAME, prompt: [1, 2, 3] }, 400, 'prompt'],
    [{ model: NAME, prompt: ['a', null] }, 400, 'prompt'],
    [{ model: NAME, prompt: 'a€' }, 400, 'prompt'], // not in the vocabulary: refused by the worker
    [{ model: NAME, prompt: 'a', max_tokens: -1 }, 400, 'max_tokens'],
    [{ model: NAME, prompt: 'a', max_tokens: 2.5 }, 400, 'max_tokens'],
    [{ model: NAME, prompt: 'a', max_tokens: '5' }, 400, 'max_tokens'],
    [{ model: NAME, prompt: 'a', max_tokens: 1e9 }, 400, 'max_tokens'],
    [{ model: NAME, prompt: Array(100).fill('a'), n: 10, max_tokens: 4000 }, 400, 'max_tokens'],
    [{ model: NAME, prompt: 'a', temperature: 3 }, 400, 'temperature'],
    [{ model: NAME, prompt: 'a', temperature: 'hot' }, 400, 'temperature'],
    [{ model: NAME, prompt: 'a', top_p: 1.5 }, 400, 'top_p'],
    [{ model: NAME, prompt: 'a', n: 0 }, 400, 'n'],
    [{ model: NAME, prompt: Array(20).fill('a'), n: 100 }, 400, 'n'],
    [{ model: NAME, prompt: 'a', stop: ['a', 'b', 'c', 'd', 'e'] }, 400, 'stop'],
    [{ model: NAME, prompt: 'a', stop: [1] }, 400, 'stop'],
    [{ model: NAME, prompt: 'a', echo: 'yes' }, 400, 'echo'],
    [{ model: NAME, prompt: 'a', logprobs: 6 }, 400, 'logprobs'],
    [{ model: NAME, prompt: 'a', logprobs: -1 }, 400, 'logprobs'],
    [{ model: NAME, prompt: 'a', seed: 0.5 }, 400, 'seed'],
    [{ model: NAME, prompt: 'a', stream: true }, 400, 'stream'],
    [{ model: NAME, prompt: 'a', presence_penalty: 0.5 }, 400, 'presence_penalty'],
    [{ model: NAME, prompt: 'a', frobnicate: 1 }, 400, 'frobnicate'],
  ];
  for (const [body, status, param] of cases) {
    const r = await call('/completions', { body });
    const what = JSON.stringify(body).slice(0, 60);
    t.is(r.status, status, what);
    t.is(typeof r.json.error?.message, 'string', what);
    t.is(r.json.error.param, param, what);
    t.is(r.json.error.type, 'invalid_request_error', what);
    t.true('code' in r.json.error, what);
    if (param && status === 400 && param !== 'prompt') t.true(r.json.error.message.includes(param), `${what}: ${r.json.error.message}`);
  }
  // Neutral values of unsupported fields, and nulls, are accepted.
  t.is((await complete({ prompt: 'a', max_tokens: 1, stream: false, presence_penalty: 0, logit_bias: {}, best_of: 1, user: 'u', stop: null, seed: null })).status, 200);

  // Routes and methods.
  t.is((await call('/nope')).status, 404);
  t.is((await call('/v1/chat/completions', { body: {} })).json.error.code, 'unknown_url');
  t.is((await call('/completions')).status, 405);
  t.is((await call('/models', { method: 'POST', body: {} })).status, 405);
  t.is((await call(`/models/${NAME}`)).json.id, NAME);
  t.is((await call('/models/other')).status, 404);
  const models = await call('/models');
  t.deepEqual(models.json.data.map((m: { id: string }) => m.id), [NAME]);
  t.is(await OpenAICompletionsModel.firstServedModel(server.baseUrl), NAME);

  // Bodies over the limit (64 KiB here): with a content-length, and streamed without one.
  const big = { model: NAME, prompt: 'a'.repeat(100_000) };
  const r413 = await call('/completions', { body: big });
  t.is(r413.status, 413);
  t.is(r413.json.error.code, 'request_too_large');
  const streamed = await new Promise<number>((resolve, reject) => {
    const req = request(`${server.baseUrl}/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('error', reject);
    for (let i = 0; i < 20; i++) req.write('x'.repeat(8192));
    req.end();
  });
  t.is(streamed, 413);

  // A client that hangs up mid-body, and one that hangs up mid-generation.
  await new Promise<void>((resolve) => {
    const s = connect(server.port, '127.0.0.1', () => {
      s.write(`POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{"model": "${NAME}", "pro`);
      setTimeout(() => { s.destroy(); resolve(); }, 50);
    });
  });
  const ctl = new AbortController();
  const gone = fetch(`${server.baseUrl}/completions`, { method: 'POST', body: JSON.stringify({ model: NAME, prompt: 'a', max_tokens: 400 }), signal: ctl.signal });
  setTimeout(() => ctl.abort(), 50);
  await t.throwsAsync(gone, { any: true });

  const ok = await complete({ prompt: 'abc', max_tokens: 4, temperature: 0 });
  t.is(ok.status, 200);
  t.is(ok.json.choices[0].text, (await lm.generate(['abc'], { maxTokens: 4 }))[0]);
  t.true(server.worker.alive);
});

test.serial('a client that goes away mid-decode stops its job: the next request does not wait for it', async (t) => {
  // 64 choices of 2,000 tokens: many seconds of decoding if it ran to the end.
  const ctl = new AbortController();
  const gone = fetch(`${server.baseUrl}/completions`, {
    method: 'POST', signal: ctl.signal, headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: NAME, prompt: 'a', n: 64, max_tokens: 2000, temperature: 1, seed: 3 }),
  });
  await new Promise((r) => setTimeout(r, 300));
  ctl.abort();
  await t.throwsAsync(gone, { any: true });
  const t0 = Date.now();
  const ok = await complete({ prompt: 'abc', max_tokens: 4, temperature: 0 });
  const waited = Date.now() - t0;
  t.is(ok.status, 200);
  t.is(ok.json.choices[0].text, (await lm.generate(['abc'], { maxTokens: 4 }))[0]);
  t.log(`the next request answered ${waited} ms after the abort`);
  t.true(waited < 3000, `waited ${waited} ms`);
});

test.serial('the event loop answers /v1/models while a long completion computes in the worker', async (t) => {
  const started = Date.now();
  let done = 0;
  const long = complete({ prompt: 'a', max_tokens: 2000, temperature: 1, seed: 5 }).then((r) => { done = Date.now(); return r; });
  const latencies: number[] = [];
  await new Promise((r) => setTimeout(r, 100));
  while (!done) {
    const t0 = Date.now();
    const r = await call('/models');
    if (done) break;
    t.is(r.status, 200);
    latencies.push(Date.now() - t0);
    await new Promise((r) => setTimeout(r, 20));
  }
  const r = await long;
  t.is(r.status, 200);
  t.is(r.json.usage.completion_tokens, 2000);
  const took = done - started;
  latencies.sort((a, b) => a - b);
  const median = latencies[Math.floor(latencies.length / 2)];
  t.log(`completion ${took} ms; ${latencies.length} /v1/models answers during it: median ${median} ms, max ${latencies[latencies.length - 1]} ms`);
  t.true(latencies.length >= 8, `${latencies.length} answers`);
  t.true(median < 100, `median ${median} ms`);
  t.true(latencies[latencies.length - 1] < took / 4, `max ${latencies[latencies.length - 1]} ms of a ${took} ms completion`);
});

test('`kiln serve` in-process: usage errors, the URL printed, the key required; stopping mid-generation answers it 503, terminates the worker, frees the port', async (t) => {
  const help = await runKilnQuiet(['serve', '--help'], ['serve', '--model', modelDir, '--port', 'http'], ['serve', '--model', join(dir, 'nope')], ['serve', '--model', modelDir, '--bogus', '1']);
  t.deepEqual(help.codes, [0, 2, 1, 2]);
  t.regex(help.logs.join('\n'), /usage: kiln serve --model <dir>/);

  const lines: string[] = [], errs: string[] = [];
  const stop = new AbortController();
  let own: KilnServer | undefined;
  let listening!: (s: KilnServer) => void;
  const started = new Promise<KilnServer>((resolve) => { listening = resolve; });
  const io = { out: (s: string) => lines.push(s), err: (s: string) => errs.push(s), onListening: (s: KilnServer) => { own = s; listening(s); } };
  const exited = runServe(['--model', `kiln:${modelDir}`, '--port', '0', '--api-key', 'sk-kiln', '--model-name', 'cli-model', '--max-batch', '4'], stop.signal, io);
  const early = exited.then((c) => new Error(`kiln serve returned ${c}: ${errs.join('\n')}`), (e: Error) => e);
  const first = await Promise.race([started, early]);
  if (first instanceof Error) return t.fail(first.message);
  const base = first.baseUrl;
  t.regex(lines[0], new RegExp(`'cli-model' \\(GPT L2 H2 d32 ctx32, ${V} CharTokenizer tokens, \\d+ parameters\\) at http://127\\.0\\.0\\.1:\\d+/v1$`));
  const key = { authorization: 'Bearer sk-kiln' };
  t.is((await call('/models', { base })).status, 401);
  const wrong = await call('/models', { base, headers: { authorization: 'Bearer sk-other' } });
  t.is(wrong.status, 401);
  t.is(wrong.json.error.code, 'invalid_api_key');
  t.is((await call('/models', { base, headers: key })).json.data[0].id, 'cli-model');
  t.is((await call('/completions', { base, body: { model: 'cli-model', prompt: 'a' } })).status, 401);
  const ok = await call('/completions', { base, headers: key, body: { model: 'cli-model', prompt: 'Q: a\nA: ', max_tokens: 8, temperature: 0 } });
  t.is(ok.json.choices[0].text, (await lm.generate(['Q: a\nA: '], { maxTokens: 8 }))[0]);
  const client = new OpenAICompletionsModel({ baseUrl: base, model: 'cli-model', apiKey: 'sk-kiln', retries: 0 });
  const [x, y] = [await client.scoreChoices('Q: a\nA: ', ['w', 'z']), await lm.scoreChoices('Q: a\nA: ', ['w', 'z'])];
  x.forEach((v, i) => t.true(Math.abs(v - y[i]) < 1e-5));
  t.true(errs.some((l) => /^\[serve\] POST \/v1\/completions 200 \d+ ms$/.test(l)), 'one log line per request');

  // Stop (what SIGINT / SIGTERM do) while a long generation runs.
  const pending = call('/completions', { base, headers: key, body: { model: 'cli-model', prompt: 'a', max_tokens: 4000 } }).catch((e: Error) => e);
  await new Promise((r) => setTimeout(r, 300));
  const t0 = Date.now();
  stop.abort();
  t.is(await exited, 0);
  t.true(Date.now() - t0 < 3000, `shutdown took ${Date.now() - t0} ms`);
  t.is(((await pending) as Answer).status, 503);
  t.true(errs.includes('kiln serve: shutting down'));
  t.false(own!.worker.alive, 'the worker thread has exited');
  t.false(own!.http.listening);
  await t.throwsAsync(fetch(`${base}/models`), { any: true });
});

test('KilnCompleter in-process with a WordTokenizer: prompt offsets follow the words, <bos> for an empty prompt, <eos> ends a choice', async (t) => {
  kiln.manualSeed(3);
  const words = kiln.train.WordTokenizer.fromText('the cat sat on the mat . a dog ran');
  const W = words.vocabSize, E = 16;
  const gpt = new kiln.nn.GPT({ nLayer: 1, nHead: 2, nEmbd: E, vocabSize: W, blockSize: 16, tieWeights: false });
  gpt.eval();
  const wordLm = kilnLanguageModel(gpt, words);
  const completer = new KilnCompleter(wordLm);
  const prompt = 'the  cat sat, on the mat.'; // ',' is not in the vocabulary: <unk>, shown as ','
  const before = kiln.memory().tensors;
  const r = completer.complete({ prompts: [prompt, ''], n: 1, maxTokens: 3, temperature: 0, topP: 1, stop: [], echo: true, logprobs: 1, seed: 0 });
  completer.complete({ prompts: [prompt.repeat(3)], n: 3, maxTokens: 20, temperature: 1, topP: 0.9, stop: ['mat'], echo: true, logprobs: 2, seed: 0 });
  t.is(kiln.memory().tensors, before, 'no tensors left behind');
  const lp = r.choices[0].logprobs!;
  t.deepEqual(lp.tokens.slice(0, 8), ['the', 'cat', 'sat', ',', 'on', 'the', 'mat', '.']);
  t.deepEqual(lp.textOffset.slice(0, 8), [0, 5, 9, 12, 14, 17, 21, 24]);
  const ids = words.encode(prompt);
  const rows = logSoftmaxRows(ids, gpt);
  for (let i = 1; i < 8; i++) t.true(Math.abs(lp.tokenLogprobs[i]! - rows[i - 1][ids[i]]) < 1e-5);
  const gen = (await wordLm.generate([prompt], { maxTokens: 3 }))[0];
  t.is(r.choices[0].text, prompt + gen);
  // Generated words start after the prompt; a word after a word carries its space.
  t.is(lp.tokens.slice(8).join(''), gen);
  t.is(lp.textOffset[8], prompt.length);
  // The empty prompt is conditioned on <bos> (an empty piece without a log-probability).
  t.deepEqual(r.choices[1].logprobs!.tokens.slice(0, 1), ['']);
  t.is(r.choices[1].logprobs!.tokenLogprobs[0], null);
  t.is(r.promptTokens, 8 + 1);

  // Make <eos> all but certain: the final LayerNorm outputs its bias alone (gain 0), which only
  // <eos>'s head row reads.
  const head = new Float32Array(W * E);
  head[words.eosId * E] = 8;
  const bias = new Float32Array(E);
  bias[0] = 1;
  gpt.loadStateDict({ 'lnF.weight': kiln.zeros([E]), 'lnF.bias': kiln.tensor(bias), 'lmHead.weight': kiln.tensor(head, { shape: [W, E] }) }, { strict: false });
  const ended = completer.complete({ prompts: ['the cat'], n: 4, maxTokens: 5, temperature: 0.5, topP: 1, stop: [], echo: false, logprobs: 0, seed: 1 });
  for (const c of ended.choices) {
    t.is(c.text, '');
    t.is(c.finishReason, 'stop');
    t.deepEqual(c.logprobs!.tokens, []);
  }
  t.is(ended.completionTokens, 4, 'one step (the <eos>) per choice');
  t.deepEqual(await wordLm.generate(['the cat'], { maxTokens: 5 }), ['']);
});
