// Character- and word-level tokenizers with JSON save/load. Ids are dense int32s; unknown symbols
// map to <unk> (word level) or are refused (character level, unless an unk id was reserved).
import { readFileSync } from 'node:fs';
import { KilnError } from '../errors.js';
import { writeFileAtomic } from '../io/safetensors.js';

export interface Tokenizer {
  readonly vocabSize: number;
  encode(text: string): Int32Array;
  decode(ids: ArrayLike<number>): string;
  toJSON(): object;
}

function readJSON(path: string, kind: string): any {
  let j: any;
  try {
    j = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new KilnError('INVALID_ARGUMENT', `${kind}.load: cannot read ${path}: ${(e as Error).message}`);
  }
  if (!j || j.type !== kind || !Array.isArray(j.vocab) || !j.vocab.every((s: unknown) => typeof s === 'string'))
    throw new KilnError('INVALID_ARGUMENT', `${kind}.load: ${path} is not a saved ${kind}`);
  if (new Set(j.vocab).size !== j.vocab.length) throw new KilnError('INVALID_ARGUMENT', `${kind}.load: ${path} has duplicate vocabulary entries`);
  return j;
}

function save(path: string, obj: object): void {
  writeFileAtomic(path, Buffer.from(JSON.stringify(obj)));
}

export class CharTokenizer implements Tokenizer {
  private readonly ids: Map<string, number>;
  constructor(readonly vocab: string[], readonly unk: string | null = null) {
    this.ids = new Map(vocab.map((c, i) => [c, i]));
    // encode splits text into code points: any other entry (a foreign or damaged file) could never be produced.
    for (const c of vocab)
      if (c !== unk && (typeof c !== 'string' || [...c].length !== 1))
        throw new KilnError('INVALID_ARGUMENT', `CharTokenizer: vocabulary entry ${JSON.stringify(c)} is not one character (code point)`);
    if (unk !== null && !this.ids.has(unk)) throw new KilnError('INVALID_ARGUMENT', `CharTokenizer: unk '${unk}' is not in the vocabulary`);
  }
  /** Vocabulary = the distinct characters (code points) of `text`, sorted. */
  static fromText(text: string, opts: { unk?: string } = {}): CharTokenizer {
    const chars = [...new Set(Array.from(text))].sort();
    if (opts.unk !== undefined && !chars.includes(opts.unk)) chars.push(opts.unk);
    return new CharTokenizer(chars, opts.unk ?? null);
  }
  get vocabSize(): number {
    return this.vocab.length;
  }
  encode(text: string): Int32Array {
    const chars = Array.from(text);
    const out = new Int32Array(chars.length);
    chars.forEach((c, i) => {
      const id = this.ids.get(c) ?? (this.unk !== null ? this.ids.get(this.unk) : undefined);
      if (id === undefined) throw new KilnError('INVALID_ARGUMENT', `CharTokenizer: character ${JSON.stringify(c)} at ${i} is not in the vocabulary`);
      out[i] = id;
    });
    return out;
  }
  decode(ids: ArrayLike<number>): string {
    let s = '';
    for (let i = 0; i < ids.length; i++) {
      const c = this.vocab[ids[i]];
      if (c === undefined) throw new KilnError('INDEX_OUT_OF_RANGE', `CharTokenizer: id ${ids[i]} outside [0, ${this.vocabSize})`);
      s += c;
    }
    return s;
  }
  toJSON(): object {
    return { type: 'CharTokenizer', vocab: this.vocab, unk: this.unk };
  }
  save(path: string): void {
    save(path, this.toJSON());
  }
  static load(path: string): CharTokenizer {
    const j = readJSON(path, 'CharTokenizer');
    return new CharTokenizer(j.vocab, j.unk ?? null);
  }
}

export const SPECIALS = ['<pad>', '<unk>', '<bos>', '<eos>'];

/** Words and punctuation marks as tokens; optional lower-casing; vocabulary by frequency. */
export class WordTokenizer implements Tokenizer {
  private readonly ids: Map<string, number>;
  readonly padId: number;
  readonly unkId: number;
  readonly bosId: number;
  readonly eosId: number;
  constructor(readonly vocab: string[], readonly lowercase = false) {
    this.ids = new Map(vocab.map((w, i) => [w, i]));
    for (const s of SPECIALS) if (!this.ids.has(s)) throw new KilnError('INVALID_ARGUMENT', `WordTokenizer: vocabulary lacks ${s}`);
    // Where the vocabulary puts them (fromText: 0..3; a hand-made or loaded one may differ).
    [this.padId, this.unkId, this.bosId, this.eosId] = SPECIALS.map((s) => this.ids.get(s)!);
  }
  static split(text: string, lowercase = false): string[] {
    return (lowercase ? text.toLowerCase() : text).match(/[\p{L}\p{M}\p{N}_']+|[^\s\p{L}\p{M}\p{N}_']/gu) ?? [];
  }
  /** Builds the vocabulary: specials first, then words by descending count (ties alphabetical). */
  static fromText(text: string, opts: { maxVocab?: number; minCount?: number; lowercase?: boolean } = {}): WordTokenizer {
    const counts = new Map<string, number>();
    for (const w of WordTokenizer.split(text, opts.lowercase)) counts.set(w, (counts.get(w) ?? 0) + 1);
    let words = [...counts].filter(([w, c]) => c >= (opts.minCount ?? 1) && !SPECIALS.includes(w));
    words.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    if (opts.maxVocab !== undefined) words = words.slice(0, Math.max(0, opts.maxVocab - SPECIALS.length));
    return new WordTokenizer([...SPECIALS, ...words.map(([w]) => w)], opts.lowercase ?? false);
  }
  get vocabSize(): number {
    return this.vocab.length;
  }
  /** The id of one vocabulary entry (a word, or a special such as <pad>), <unk>'s for any other string. */
  tokenId(word: string): number {
    return this.ids.get(word) ?? this.unkId;
  }
  encode(text: string, opts: { bos?: boolean; eos?: boolean } = {}): Int32Array {
    const words = WordTokenizer.split(text, this.lowercase);
    const ids = words.map((w) => this.tokenId(w));
    if (opts.bos) ids.unshift(this.bosId);
    if (opts.eos) ids.push(this.eosId);
    return Int32Array.from(ids);
  }
  /** Words joined by spaces, with no space before punctuation; pad/bos/eos are dropped. */
  decode(ids: ArrayLike<number>): string {
    let s = '';
    for (let i = 0; i < ids.length; i++) {
      const w = this.vocab[ids[i]];
      if (w === undefined) throw new KilnError('INDEX_OUT_OF_RANGE', `WordTokenizer: id ${ids[i]} outside [0, ${this.vocabSize})`);
      if (ids[i] === this.padId || ids[i] === this.bosId || ids[i] === this.eosId) continue;
      const punct = /^[^\p{L}\p{M}\p{N}_'<]$/u.test(w);
      s += s && !punct ? ` ${w}` : w;
    }
    return s;
  }
  toJSON(): object {
    return { type: 'WordTokenizer', vocab: this.vocab, lowercase: this.lowercase };
  }
  save(path: string): void {
    save(path, this.toJSON());
  }
  static load(path: string): WordTokenizer {
    const j = readJSON(path, 'WordTokenizer');
    return new WordTokenizer(j.vocab, j.lowercase === true);
  }
}
