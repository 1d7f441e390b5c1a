// A model that answers from recorded outputs: re-score a past run (a results file written by
// `kiln bigbench run`) or outputs recorded elsewhere, without calling any model.
//
// Accepted files:
//   - a kiln results JSON (`kind: "kiln.bigbench.results"`): every example's prompt, generation
//     and choice/target log-probabilities are replayed;
//   - JSON Lines, or a JSON list, of records `{"prompt": "...", "completion": "...",
//     "logprobs": {"<continuation>": <log P(continuation | prompt)>, ...}}` (either field optional).
import { readFileSync, statSync } from 'node:fs';
import type { GenerateOptions, LanguageModel } from './model.js';

interface Recorded { completion?: string; logprobs: Map<string, number> }

export class ReplayError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReplayError';
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const show = (s: string) => JSON.stringify(s.length > 80 ? `...${s.slice(-77)}` : s);

export class ReplayModel implements LanguageModel {
  readonly name: string;
  private readonly byPrompt = new Map<string, Recorded>();

  constructor(readonly file: string, records?: unknown[]) {
    this.name = `replay:${file}`;
    for (const [i, r] of (records ?? readRecords(file)).entries()) this.add(r, i);
  }

  private entry(prompt: string): Recorded {
    let e = this.byPrompt.get(prompt);
    if (!e) { e = { logprobs: new Map() }; this.byPrompt.set(prompt, e); }
    return e;
  }

  private add(r: unknown, i: number): void {
    const where = `${this.file}: record ${i}`;
    if (!isObj(r) || typeof r.prompt !== 'string') throw new ReplayError(`${where} needs a string "prompt"`);
    const e = this.entry(r.prompt);
    if (r.completion !== undefined) {
      if (typeof r.completion !== 'string') throw new ReplayError(`${where}: "completion" must be a string`);
      e.completion = r.completion;
    }
    if (r.logprobs !== undefined) {
      if (!isObj(r.logprobs)) throw new ReplayError(`${where}: "logprobs" must map continuations to numbers`);
      for (const [k, v] of Object.entries(r.logprobs)) {
        if (typeof v !== 'number') throw new ReplayError(`${where}: logprobs[${JSON.stringify(k)}] must be a number`);
        e.logprobs.set(k, v);
      }
    }
  }

  async generate(prompts: string[], _opts: GenerateOptions): Promise<string[]> {
    return prompts.map((p) => {
      const c = this.byPrompt.get(p)?.completion;
      if (c === undefined) throw new ReplayError(`${this.file} has no recorded completion for the prompt ending ${show(p)}`);
      return c;
    });
  }

  async scoreChoices(context: string, choices: string[]): Promise<number[]> {
    const e = this.byPrompt.get(context);
    return choices.map((c) => {
      const v = e?.logprobs.get(c);
      if (v === undefined) throw new ReplayError(`${this.file} has no recorded log-probability of ${show(c)} after the prompt ending ${show(context)}`);
      return v;
    });
  }
}

/** Flatten a results file, a JSON list or JSON Lines into prompt records. */
function readRecords(file: string): unknown[] {
  let text: string;
  try {
    if (statSync(file).size > 1024 * 1024 * 1024) throw new Error('file is over 1 GiB');
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ReplayError(`cannot read replay file ${file}: ${(e as Error).message}`);
  }
  let whole: unknown;
  try { whole = JSON.parse(text); } catch { whole = undefined; }
  if (Array.isArray(whole)) return whole;
  if (isObj(whole) && whole.kind === 'kiln.bigbench.results') return recordsFromResults(whole);
  if (isObj(whole)) return [whole];
  return text.split('\n').flatMap((line, i) => {
    if (line.trim() === '') return [];
    try { return [JSON.parse(line) as unknown]; } catch (e) { throw new ReplayError(`${file}:${i + 1}: not JSON: ${(e as Error).message}`); }
  });
}

function recordsFromResults(results: Record<string, unknown>): unknown[] {
  const out: unknown[] = [];
  const tasks = Array.isArray(results.tasks) ? results.tasks : [];
  for (const t of tasks) {
    for (const sub of (isObj(t) && Array.isArray(t.subtasks) ? t.subtasks : [])) {
      for (const shot of (isObj(sub) && Array.isArray(sub.perShot) ? sub.perShot : [])) {
        for (const ex of (isObj(shot) && Array.isArray(shot.examples) ? shot.examples : [])) {
          if (!isObj(ex) || typeof ex.prompt !== 'string') continue;
          const logprobs: Record<string, number> = {};
          const put = (keys: unknown, vals: unknown) => {
            if (Array.isArray(keys) && Array.isArray(vals)) keys.forEach((k, i) => { if (typeof k === 'string' && typeof vals[i] === 'number') logprobs[k] = vals[i]; });
          };
          put(ex.choices, ex.choiceLogProbs);
          put(ex.targets, ex.targetLogProbs);
          out.push({ prompt: ex.prompt, ...(typeof ex.generation === 'string' ? { completion: ex.generation } : {}), logprobs });
        }
      }
    }
  }
  return out;
}
