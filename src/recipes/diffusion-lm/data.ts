// The E2E restaurant corpus in Diffusion-LM's one-line form (`field : value | ...||text`), split by
// meaning representation (no MR in both splits), a word vocabulary, fixed-length padded sequences,
// and the semantic-content control targets (`field : value`) with their labels per sentence.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KilnError } from '../../errors.js';
import { seededRandom } from '../../train/data.js';
import { WordTokenizer } from '../../train/tokenizer.js';

export interface E2EExample {
  /** The meaning representation: field -> value, e.g. food -> Italian. */
  mr: Record<string, string>;
  /** The MR line as given (the split key). */
  mrKey: string;
  /** The tokenized description (tokens separated by single spaces). */
  text: string;
}

/** Parses `field : value | field : value ...||text` lines; blank lines are skipped, a malformed one refused. */
export function parseE2E(source: string, name = 'e2e'): E2EExample[] {
  const out: E2EExample[] = [];
  const lines = source.split('\n');
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    const bar = line.indexOf('||');
    const bad = (why: string) => new KilnError('INVALID_ARGUMENT', `diffusion-lm: ${name} line ${i + 1}: ${why}: '${line.slice(0, 80)}'`);
    if (bar < 0) throw bad("no '||' between the meaning representation and the text");
    const mrKey = line.slice(0, bar).trim();
    const text = line.slice(bar + 2).trim().split(/\s+/).join(' ');
    if (!text) throw bad('empty text');
    const mr: Record<string, string> = {};
    for (const part of mrKey.split('|')) {
      const colon = part.indexOf(' : ');
      if (colon < 0) throw bad(`field '${part.trim()}' has no ' : '`);
      const field = part.slice(0, colon).trim(), value = part.slice(colon + 3).trim();
      if (!field || !value) throw bad(`empty field or value in '${part.trim()}'`);
      if (field in mr) throw bad(`field '${field}' given twice`);
      mr[field] = value;
    }
    out.push({ mr, mrKey, text });
  });
  return out;
}

export function readE2E(path: string): E2EExample[] {
  let src: string;
  try {
    src = readFileSync(path, 'utf8');
  } catch (e) {
    throw new KilnError('INVALID_ARGUMENT', `diffusion-lm: cannot read ${path}: ${(e as Error).message}`);
  }
  return parseE2E(src, path);
}

/** '' = find `shared/data/e2e` in the working directory, the package's folder or one above either. */
export const DEFAULT_DATA_DIR = '';

/** The E2E folder: the given one, or the first `shared/data/e2e` found walking up from the working directory and from kiln's own folder. */
export function resolveDataDir(dir: string, op = 'diffusion-lm'): string {
  if (dir) return dir;
  const starts = [process.cwd(), dirname(fileURLToPath(import.meta.url))];
  for (const start of starts) {
    for (let d = resolve(start); ; d = dirname(d)) {
      const c = join(d, 'shared', 'data', 'e2e');
      if (existsSync(join(c, 'valid.txt'))) return c;
      if (dirname(d) === d) break;
    }
  }
  throw new KilnError('INVALID_ARGUMENT', `${op}: no shared/data/e2e folder found above the working directory or kiln; give one with --data DIR`);
}

/**
 * Splits examples by meaning representation: a seeded shuffle of the distinct MRs, the first
 * ceil(fraction * #MR) held out, so no MR has sentences on both sides.
 */
export function splitByMR(examples: readonly E2EExample[], heldOutFraction: number, seed: number): { train: E2EExample[]; heldOut: E2EExample[] } {
  if (!(heldOutFraction >= 0 && heldOutFraction < 1))
    throw new KilnError('INVALID_ARGUMENT', `diffusion-lm: held-out fraction must be in [0, 1), got ${heldOutFraction}`);
  const keys = [...new Set(examples.map((e) => e.mrKey))].sort();
  const rnd = seededRandom(seed);
  for (let i = keys.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [keys[i], keys[j]] = [keys[j], keys[i]];
  }
  const held = new Set(keys.slice(0, Math.ceil(heldOutFraction * keys.length)));
  return { train: examples.filter((e) => !held.has(e.mrKey)), heldOut: examples.filter((e) => held.has(e.mrKey)) };
}

/** A word vocabulary over the training texts (case kept: control values such as 'Italian' are matched exactly). */
export function buildTokenizer(texts: readonly string[], minCount: number): WordTokenizer {
  return WordTokenizer.fromText(texts.join('\n'), { minCount });
}

/**
 * Each text as `seqLen` ids: its words (unknown ones as <unk>) then <pad> to the end. Texts longer
 * than seqLen are dropped (their indices are returned in `dropped`), never cut mid-sentence.
 */
export function encodePadded(tok: WordTokenizer, texts: readonly string[], seqLen: number): { ids: Int32Array; kept: number[]; dropped: number[] } {
  const rows: Int32Array[] = [], kept: number[] = [], dropped: number[] = [];
  texts.forEach((t, i) => {
    const ids = tok.encode(t);
    if (ids.length > seqLen) dropped.push(i);
    else {
      const row = new Int32Array(seqLen).fill(tok.padId);
      row.set(ids);
      rows.push(row);
      kept.push(i);
    }
  });
  const ids = new Int32Array(rows.length * seqLen);
  rows.forEach((r, i) => ids.set(r, i * seqLen));
  return { ids, kept, dropped };
}

/** One semantic-content target: a field and its value, with the value's words (WordTokenizer.split) for exact matching. */
export interface ControlTarget {
  field: string;
  value: string;
  tokens: string[];
}

export const targetName = (c: { field: string; value: string }) => `${c.field} : ${c.value}`;

/** Parses control_target_attribute.json: one JSON array of tokens a line, `field ... : value ...`. */
export function parseControlTargets(source: string, name = 'control targets'): ControlTarget[] {
  const out: ControlTarget[] = [];
  source.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let toks: unknown;
    try {
      toks = JSON.parse(line);
    } catch {
      throw new KilnError('INVALID_ARGUMENT', `diffusion-lm: ${name} line ${i + 1} is not JSON`);
    }
    const colon = Array.isArray(toks) ? toks.indexOf(':') : -1;
    if (!Array.isArray(toks) || !toks.every((t) => typeof t === 'string') || colon < 1 || colon === toks.length - 1)
      throw new KilnError('INVALID_ARGUMENT', `diffusion-lm: ${name} line ${i + 1} must be an array of strings 'field ... : value ...'`);
    const value = (toks.slice(colon + 1) as string[]).join(' ');
    out.push({ field: toks.slice(0, colon).join(' '), value, tokens: WordTokenizer.split(value) });
  });
  return out;
}

/** True when `needle` occurs as a contiguous run of `words`. */
export function containsRun(words: readonly string[], needle: readonly string[]): boolean {
  if (needle.length === 0) return true;
  outer: for (let i = 0; i + needle.length <= words.length; i++) {
    for (let j = 0; j < needle.length; j++) if (words[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

/** The semantic-content label space: for each field, its values (sorted) plus a last 'absent' class. */
export interface FieldSpace {
  fields: string[];
  values: string[][];
  /** Offset of each field's logits in the classifier's output (each field has values + 1 classes). */
  offsets: number[];
  width: number;
}

export function fieldSpace(examples: readonly E2EExample[]): FieldSpace {
  const byField = new Map<string, Set<string>>();
  for (const e of examples) for (const [f, v] of Object.entries(e.mr)) {
    if (!byField.has(f)) byField.set(f, new Set());
    byField.get(f)!.add(v);
  }
  const fields = [...byField.keys()].sort();
  const values = fields.map((f) => [...byField.get(f)!].sort());
  const offsets: number[] = [];
  let width = 0;
  for (const v of values) {
    offsets.push(width);
    width += v.length + 1;
  }
  return { fields, values, offsets, width };
}

/** Per example, per field: the class index (value's index, or values.length when the field is absent). */
export function fieldLabels(space: FieldSpace, examples: readonly E2EExample[]): Int32Array {
  const F = space.fields.length;
  const out = new Int32Array(examples.length * F);
  examples.forEach((e, i) => space.fields.forEach((f, k) => {
    const v = e.mr[f];
    const idx = v === undefined ? -1 : space.values[k].indexOf(v);
    out[i * F + k] = idx < 0 ? space.values[k].length : idx;
  }));
  return out;
}

/** The class a target asks for: [field index, value index], or null when the label space lacks it. */
export function targetClass(space: FieldSpace, c: ControlTarget): [number, number] | null {
  const k = space.fields.indexOf(c.field);
  if (k < 0) return null;
  const v = space.values[k].indexOf(c.value);
  return v < 0 ? null : [k, v];
}

/**
 * How often a target's value occurs verbatim in the texts whose MR carries it: the fraction of
 * sentences with MR field = value whose words contain the value's tokens. Exact-match control
 * success (the paper's metric) is only meaningful for targets the data itself realises verbatim
 * (`family friendly : yes` almost never appears as 'yes').
 */
export function verbatimRate(examples: readonly E2EExample[], c: ControlTarget): { rate: number; count: number } {
  let n = 0, hit = 0;
  for (const e of examples) {
    if (e.mr[c.field] !== c.value) continue;
    n++;
    if (containsRun(WordTokenizer.split(e.text), c.tokens)) hit++;
  }
  return { rate: n ? hit / n : 0, count: n };
}
