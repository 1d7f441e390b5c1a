// Token pieces: where each token of a prompt sits in the prompt's own text (OpenAI's
// `text_offset`, in UTF-16 code units as JavaScript indexes strings), and the string shown for a
// vocabulary entry in `top_logprobs`.
import * as kiln from '../index.js';

type Tokenizer = kiln.train.Tokenizer;

export interface Pieces {
  /** The text each token covers. */
  pieces: string[];
  /** Where each piece starts in the text. */
  offsets: number[];
}

/**
 * The pieces of `text` behind `ids` = tokenizer.encode(text). A CharTokenizer's tokens are the
 * text's code points; a WordTokenizer's are its words and marks, found in order; another
 * tokenizer (or a text the search cannot follow) falls back to decoding token by token.
 */
export function promptPieces(tokenizer: Tokenizer, text: string, ids: ArrayLike<number>): Pieces {
  if (tokenizer instanceof kiln.train.CharTokenizer) {
    const chars = Array.from(text);
    if (chars.length === ids.length) {
      const offsets: number[] = [];
      let at = 0;
      for (const c of chars) {
        offsets.push(at);
        at += c.length;
      }
      return { pieces: chars, offsets };
    }
  }
  if (tokenizer instanceof kiln.train.WordTokenizer) {
    const words = kiln.train.WordTokenizer.split(text, tokenizer.lowercase);
    const hay = tokenizer.lowercase ? text.toLowerCase() : text;
    if (words.length === ids.length && hay.length === text.length) {
      const offsets: number[] = [];
      const pieces: string[] = [];
      let at = 0;
      for (const w of words) {
        const i = hay.indexOf(w, at);
        if (i < 0) break;
        offsets.push(i);
        pieces.push(text.slice(i, i + w.length));
        at = i + w.length;
      }
      if (offsets.length === words.length) return { pieces, offsets };
    }
  }
  return decodedPieces(tokenizer, ids);
}

/** Pieces by incremental decoding: token i covers what decode(ids[..i]) adds to decode(ids[..i-1]). */
export function decodedPieces(tokenizer: Tokenizer, ids: ArrayLike<number>): Pieces {
  const pieces: string[] = [];
  const offsets: number[] = [];
  let prev = '';
  for (let i = 0; i < ids.length; i++) {
    const text = tokenizer.decode(Array.prototype.slice.call(ids, 0, i + 1) as number[]);
    const start = commonPrefix(prev, text);
    offsets.push(start);
    pieces.push(text.slice(start));
    prev = text;
  }
  return { pieces, offsets };
}

export function commonPrefix(a: string, b: string): number {
  if (b.startsWith(a)) return a.length;
  let i = 0;
  while (i < a.length && i < b.length && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

/** The name of a vocabulary entry (its vocab string where the tokenizer has one, else its decoding). */
export function tokenName(tokenizer: Tokenizer, id: number): string {
  const vocab = (tokenizer as { vocab?: unknown }).vocab;
  if (Array.isArray(vocab) && typeof vocab[id] === 'string') return vocab[id] as string;
  return tokenizer.decode([id]);
}
