// Captions for the synthetic world of the `ssl` recipe, with the two properties that Santurkar et
// al. (arXiv 2207.07635) find decide whether a caption is worth more than an image:
// - descriptiveness: the chance that a caption names each of the image's attributes (here, the
//   prototype's labels on the coarse tasks, the content the downstream probes ask about);
// - variability: how many different words name the same attribute value (synonyms drawn at random
//   per caption) and how many unrelated filler words come along.
// A caption is a bag of words, fed to the text encoder as a count vector over the vocabulary.
import { KilnError } from '../../errors.js';
import type { Gaussian } from '../icl/tasks.js';
import type { Task } from '../ssl/data.js';

export interface CaptionConfig {
  /** Probability that a caption names each attribute (0..1). */
  descriptiveness: number;
  /** Words per attribute value, one drawn per mention (1: the same word every time). */
  synonyms: number;
  /** Unrelated words per caption, drawn from `fillerVocab` words. */
  filler: number;
  fillerVocab: number;
}

export class Captioner {
  readonly vocabSize: number;
  private readonly valueBase: number[];
  constructor(readonly attributes: readonly Task[], readonly config: CaptionConfig) {
    const c = config;
    if (!(c.descriptiveness >= 0 && c.descriptiveness <= 1)) throw new KilnError('INVALID_ARGUMENT', `clip Captioner: descriptiveness must be in [0, 1], got ${c.descriptiveness}`);
    for (const [k, v, lo] of [['synonyms', c.synonyms, 1], ['filler', c.filler, 0], ['fillerVocab', c.fillerVocab, 1]] as const)
      if (!(Number.isInteger(v) && v >= lo)) throw new KilnError('INVALID_ARGUMENT', `clip Captioner: ${k} must be an integer >= ${lo}, got ${v}`);
    this.valueBase = [];
    let n = 0;
    for (const a of attributes) {
      this.valueBase.push(n);
      n += a.classes * c.synonyms;
    }
    this.vocabSize = n + c.fillerVocab;
  }

  /** Word id of synonym `s` of value `v` of attribute `k`. */
  word(k: number, v: number, s: number): number {
    return this.valueBase[k] + v * this.config.synonyms + s;
  }

  /** The word ids of one caption of prototype `p`. */
  caption(p: number, g: Gaussian): number[] {
    const c = this.config, words: number[] = [];
    this.attributes.forEach((a, k) => {
      if (g.uniform() < c.descriptiveness) words.push(this.word(k, a.labelOf[p], g.int(c.synonyms)));
    });
    const fillerBase = this.vocabSize - c.fillerVocab;
    for (let i = 0; i < c.filler; i++) words.push(fillerBase + g.int(c.fillerVocab));
    return words;
  }

  /** Count vectors [n, vocabSize] of one caption per listed prototype. */
  bagOfWords(protoIds: ArrayLike<number>, g: Gaussian): Float32Array {
    const V = this.vocabSize, out = new Float32Array(protoIds.length * V);
    for (let i = 0; i < protoIds.length; i++) for (const w of this.caption(protoIds[i], g)) out[i * V + w] += 1;
    return out;
  }
}
