// End to end against real HTTP servers on 127.0.0.1 that speak the OpenAI completions protocol
// with scripted answers, including servers that hang, stall mid-body, fail, and send malformed
// JSON: clear errors, no hang, partial results kept.
import test from 'ava';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runBigBenchCli } from '../src/recipes/bigbench/cli.js';
import { EndpointError, OpenAICompletionsModel, openAIOptionsFrom } from '../src/recipes/bigbench/openai.js';
import { runBigBench, type RunResults } from '../src/recipes/bigbench/runner.js';
import { loadTasks } from '../src/recipes/bigbench/task.js';

const TASKS = fileURLToPath(new URL('./fixtures/bigbench/tasks/', import.meta.url));
const ANSWERS: Record<string, string> = {
  'le chat noir': 'the black cat', bonjour: 'hello', 'merci beaucoup': 'thank you very much', 'la maison bleue': 'the blue house',
  'un petit chien': 'a small dog', 'bonne nuit': 'good night', France: 'Paris', Japan: 'Tokyo', Italy: 'Rome', Spain: 'Madrid',
  Canada: 'Ottawa', Australia: 'Canberra', Germany: 'Berlin', Brazil: 'Brasilia', '2 + 2 =': '4', '3 + 5 =': '8', '10 - 7 =': '3', '6 * 7 =': '42',
};

/** The answer to the last question in a prompt (the query), and where the question ends. */
function lastQuestion(prompt: string): { answer: string; end: number } | undefined {
  let best: { answer: string; end: number; at: number } | undefined;
  for (const [q, a] of Object.entries(ANSWERS)) {
    const at = prompt.lastIndexOf(q);
    if (at >= 0 && (!best || at > best.at)) best = { answer: a, end: at + q.length, at };
  }
  return best;
}

interface Log { requests: Record<string, unknown>[]; headers: IncomingMessage['headers'][]; inFlight: number; maxInFlight: number }
type Handler = (body: Record<string, unknown>, res: ServerResponse, n: number) => void | Promise<void>;

async function serve(t: { teardown: (fn: () => void) => void }, handler: Handler): Promise<{ url: string; log: Log }> {
  const log: Log = { requests: [], headers: [], inFlight: 0, maxInFlight: 0 };
  const server = createServer((req, res) => {
    let data = '';
    req.on('data', (c) => { data += c; });
    req.on('end', async () => {
      log.inFlight++;
      log.maxInFlight = Math.max(log.maxInFlight, log.inFlight);
      res.on('close', () => { log.inFlight--; });
      const body = JSON.parse(data || '{}') as Record<string, unknown>;
      log.requests.push(body);
      log.headers.push(req.headers);
      await handler(body, res, log.requests.length);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => { server.closeAllConnections(); server.close(); });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, log };
}

/** A scripted completions endpoint: per-character tokens, echo + logprobs, stop sequences. */
const scripted: Handler = async (body, res) => {
  await new Promise((r) => setTimeout(r, 5)); // keep requests overlapping so the limit shows
  const prompts = body.prompt as string[];
  const choices = prompts.map((p, index) => {
    if (body.echo) {
      // The scripted model is confident in the right answer right after the question.
      const q = lastQuestion(p);
      const tail = q ? p.slice(p.lastIndexOf(': ') + 2) : '';
      const right = q !== undefined && tail === q.answer;
      const tokens = [...p].concat([' ']);
      const offsets = tokens.map((_, i) => i);
      const token_logprobs = tokens.map((_, i) => (i === 0 ? null : i >= p.length - tail.length && i < p.length ? (right ? -0.01 : -1) : -0.5));
      return { index, text: p + ' ', finish_reason: 'length', logprobs: { tokens, token_logprobs, text_offset: offsets, top_logprobs: null } };
    }
    let text = `${lastQuestion(p)?.answer ?? '???'}\nQ: more text the model rambles on with`;
    for (const s of (body.stop as string[] | undefined) ?? []) { const at = text.indexOf(s); if (at >= 0) text = text.slice(0, at); }
    return { index, text, finish_reason: 'stop', logprobs: null };
  });
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ id: 'cmpl-test', object: 'text_completion', model: body.model, choices: choices.reverse() }));
};

test('a scripted OpenAI-compatible server: every metric path, oracle-level scores, key, model name, concurrency limit', async (t) => {
  const { url, log } = await serve(t, scripted);
  const model = new OpenAICompletionsModel({ baseUrl: url, model: 'scripted-1', apiKey: 'sk-test', concurrency: 2, timeoutMs: 5000 });
  const tasks = loadTasks(TASKS).filter((x) => x.name === 'capitals_mc' || x.name === 'translate_gen' || x.name === 'plain');
  const r = await runBigBench(tasks, model, { shots: [0, 1], concurrency: 8 });
  t.is(r.failedExamples, 0, JSON.stringify(r.tasks.flatMap((x) => x.subtasks.flatMap((s) => s.perShot.flatMap((p) => p.examples.map((e) => e.error)))).filter(Boolean).slice(0, 3)));
  for (const task of r.tasks) for (const p of task.perShot) t.is(p.normalized, 100, `${task.name} ${p.shots}-shot`);
  const gen = r.tasks.find((x) => x.name === 'translate_gen')!.subtasks[0].perShot[0];
  t.is(gen.examples[0].generation, 'the black cat'); // the server honoured the stop sequence
  // 'the black cat' at -0.01 a character; 'bonjour' averages 'hello' (right) and 'good morning' (wrong)
  t.true(Math.abs(gen.examples[0].targetLogProbs![0] - -0.13) < 1e-9);
  t.deepEqual(gen.examples[1].targetLogProbs!.map((x) => Math.round(x * 100) / 100), [-0.05, -12]);
  const mc = r.tasks.find((x) => x.name === 'capitals_mc')!.subtasks[0].perShot[1].examples[0];
  t.is(mc.predictedChoice, 'Paris');
  // log P('Paris' | prompt) = 5 characters at -0.01
  t.true(Math.abs(mc.choiceLogProbs![mc.choices!.indexOf('Paris')] - -0.05) < 1e-9);
  t.true(Math.abs(mc.choiceLogProbs![mc.choices!.indexOf('Marseille')] - -9) < 1e-9);
  t.true(log.maxInFlight <= 2, `max in flight ${log.maxInFlight}`);
  t.true(log.maxInFlight >= 2);
  t.is(log.headers[0].authorization, 'Bearer sk-test');
  t.is(log.requests[0].model, 'scripted-1');
  const genReq = log.requests.find((b) => !b.echo && String(b.prompt).includes('French'))!;
  t.deepEqual(genReq.stop, ['\n']);
  t.is(genReq.temperature, 0);
  const echoReq = log.requests.find((b) => b.echo)!;
  t.is(echoReq.logprobs, 0);
});

test('a server that never answers: each request times out, retries are bounded, results are kept', async (t) => {
  const { url, log } = await serve(t, () => { /* never respond */ });
  const model = new OpenAICompletionsModel({ baseUrl: url, model: 'm', timeoutMs: 150, retries: 1, backoffMs: 10, concurrency: 4 });
  const tasks = loadTasks(join(TASKS, 'plain.json'));
  const started = Date.now();
  const r = await runBigBench(tasks, model, { shots: [0] });
  t.true(Date.now() - started < 5000);
  const shot = r.tasks[0].subtasks[0].perShot[0];
  t.is(shot.nFailed, 4);
  t.is(shot.normalized, null);
  t.regex(shot.examples[0].error!, /no complete answer within 150 ms \(timed out\).*gave up after 2 attempts/);
  // 4 examples x 2 attempts at most (the server may not see an attempt aborted early under load)
  t.true(log.requests.length <= 8 && log.requests.length >= 4, String(log.requests.length));
});

test('a server that stalls in the middle of the body times out too', async (t) => {
  const { url } = await serve(t, (_b, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.write('{"choices": ['); });
  const model = new OpenAICompletionsModel({ baseUrl: url, model: 'm', timeoutMs: 150, retries: 0 });
  await t.throwsAsync(model.generate(['x'], { maxTokens: 4 }), { instanceOf: EndpointError, message: /timed out/ });
});

test('malformed JSON: a clear error, not retried, earlier answers kept; the CLI writes partial results and exits 1', async (t) => {
  const { url, log } = await serve(t, (body, res, n) => {
    if (n <= 2) return scripted(body, res, n);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"choices": [{"text": "4", "index": 0');
  });
  const dir = mkdtempSync(join(tmpdir(), 'kiln-bigbench-http-'));
  const out = join(dir, 'results.json');
  const err: string[] = [];
  const stdout: string[] = [];
  const code = await runBigBenchCli(['run', '--task', join(TASKS, 'plain.json'), '--model', `openai:${url}`, '--model-name', 'm', '--shots', '0',
    '--concurrency', '1', '--retries', '3', '--backoff-ms', '10', '--timeout-ms', '2000', '--out', out], { out: (s) => stdout.push(s), err: (s) => err.push(s) });
  t.is(code, 1);
  const r = JSON.parse(readFileSync(out, 'utf8')) as RunResults;
  const shot = r.tasks[0].subtasks[0].perShot[0];
  t.is(shot.nScored, 2);
  t.is(shot.nFailed, 2);
  t.is(shot.scores.exact_str_match, 1);
  t.is(shot.normalized, 100);
  const failed = shot.examples.filter((e) => e.error);
  t.regex(failed[0].error!, /malformed JSON in the answer .*it starts: \{"choices": \[\{"text": "4"/);
  t.is(log.requests.length, 4); // malformed answers are not retried
  t.regex(stdout.join(''), /2 example\(s\) failed/);
});

test('HTTP errors: 503 then success is retried with backoff; 401 fails at once with the server message', async (t) => {
  const { url, log } = await serve(t, (body, res, n) => {
    if (body.model === 'auth') { res.writeHead(401, { 'content-type': 'application/json' }); res.end('{"error": {"message": "Incorrect API key provided"}}'); return; }
    if (n <= 2) { res.writeHead(503); res.end('busy'); return; }
    return scripted(body, res, n);
  });
  const ok = new OpenAICompletionsModel({ baseUrl: url, model: 'm', retries: 3, backoffMs: 5 });
  t.deepEqual(await ok.generate(['\nQ: bonjour\nA: '], { maxTokens: 5, stop: ['\n'] }), ['hello']);
  t.is(log.requests.length, 3);
  const bad = new OpenAICompletionsModel({ baseUrl: url, model: 'auth', retries: 3, backoffMs: 5 });
  await t.throwsAsync(bad.scoreChoices('ctx', ['a']), { instanceOf: EndpointError, message: /HTTP 401: Incorrect API key provided/ });
  t.is(log.requests.length, 4);
});

test('answers with the wrong shape are refused clearly', async (t) => {
  const { url } = await serve(t, (body, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    if (body.echo) res.end(JSON.stringify({ choices: [{ index: 0, text: 'x', logprobs: null }] }));
    else res.end(JSON.stringify({ result: 'no choices here' }));
  });
  const m = new OpenAICompletionsModel({ baseUrl: url, model: 'm', retries: 0 });
  await t.throwsAsync(m.generate(['x'], { maxTokens: 1 }), { message: /the answer has no choices list/ });
  await t.throwsAsync(m.scoreChoices('x', ['a']), { message: /logprobs is missing: the endpoint must support echo with logprobs/ });
  await t.throwsAsync(m.scoreChoices('x', ['a', 'b']), { message: /expected 2 \(index 1 is missing\)/ });
});

test('a refused connection fails fast and clearly; base URL, key and model come from flags or the environment', async (t) => {
  const { url } = await serve(t, scripted);
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const freePort = (probe.address() as AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const closedPort = `http://127.0.0.1:${freePort}/v1`;
  const m = new OpenAICompletionsModel({ baseUrl: closedPort, model: 'm', retries: 1, backoffMs: 5 });
  await t.throwsAsync(m.generate(['x'], { maxTokens: 1 }), { message: /cannot reach http.*: ECONNREFUSED.*gave up after 2 attempts/ });
  t.throws(() => new OpenAICompletionsModel({ baseUrl: 'ftp://127.0.0.1/', model: 'm' }), { message: /must be http/ });
  const env = { OPENAI_BASE_URL: 'http://127.0.0.1:9/v1', OPENAI_API_KEY: 'sk-env', OPENAI_MODEL: 'env-model' };
  t.deepEqual(openAIOptionsFrom({}, env), { baseUrl: 'http://127.0.0.1:9/v1', apiKey: 'sk-env', model: 'env-model' });
  t.deepEqual(openAIOptionsFrom({ baseUrl: url, apiKey: 'sk-flag', model: 'flag-model' }, env), { baseUrl: url, apiKey: 'sk-flag', model: 'flag-model' });
});

test('without a model name the server is asked (GET /models)', async (t) => {
  const models = createServer((req, res) => {
    if (req.url === '/v1/models') { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{"data": [{"id": "served-model"}]}'); return; }
    if (req.url === '/denied/models') { res.writeHead(401, { 'content-type': 'application/json' }); res.end('{"error": {"message": "no"}}'); return; }
    if (req.url === '/missing/models') { res.writeHead(404); res.end('gone'); return; }
    let d = ''; req.on('data', (c) => { d += c; }); req.on('end', () => { void scripted(JSON.parse(d), res, 0); });
  });
  await new Promise<void>((r) => models.listen(0, '127.0.0.1', r));
  t.teardown(() => { models.closeAllConnections(); models.close(); });
  t.is(await OpenAICompletionsModel.firstServedModel(`http://127.0.0.1:${(models.address() as AddressInfo).port}/v1`), 'served-model');
  await t.throwsAsync(OpenAICompletionsModel.firstServedModel('http://127.0.0.1:9/v1', undefined, 500), { message: /^cannot reach http:\/\/127\.0\.0\.1:9\/v1\/models: / });
  const base = `http://127.0.0.1:${(models.address() as AddressInfo).port}`;
  await t.throwsAsync(OpenAICompletionsModel.firstServedModel(`${base}/denied`, 'sk-x', 500), { message: /\/denied\/models refused the API key \(HTTP 401: no\); check --api-key/ });
  await t.throwsAsync(OpenAICompletionsModel.firstServedModel(`${base}/missing`, undefined, 500), { message: /no model name given .*\(HTTP 404: gone\)/ });
});
