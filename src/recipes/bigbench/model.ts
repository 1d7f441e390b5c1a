// The one interface every model behind the harness implements, and the `--model` spec parser.
import { Rng } from './rng.js';
import { isSeed } from '../seed.js';

export interface GenerateOptions {
  /** Upper bound on generated tokens. */
  maxTokens: number;
  /** Generation may stop at the first of these strings (post-processing cuts there anyway). */
  stop?: string[];
}

export interface LanguageModel {
  /** A short description for results files, e.g. `openai:gpt-3.5-turbo-instruct@http://...`. */
  readonly name: string;
  /** Greedy continuations of each prompt (the text after the prompt only). */
  generate(prompts: string[], opts: GenerateOptions): Promise<string[]>;
  /**
   * log P(choice | context) for each choice: the sum of the log-probabilities of the choice's
   * tokens, unnormalised (the harness renormalises over the choices itself).
   */
  scoreChoices(context: string, choices: string[]): Promise<number[]>;
  /** Release connections, workers, device memory. */
  close?(): Promise<void>;
}

/** What `--model` names: `kiln:<checkpoint>`, `openai:<base URL>`, `replay:<file>` or `random:<seed>`. */
export type ModelSpec =
  | { kind: 'kiln'; checkpoint: string }
  | { kind: 'openai'; baseUrl?: string }
  | { kind: 'replay'; file: string }
  | { kind: 'random'; seed: number };

export class ModelSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelSpecError';
  }
}

export function parseModelSpec(spec: string): ModelSpec {
  const colon = spec.indexOf(':');
  const kind = colon < 0 ? spec : spec.slice(0, colon);
  const rest = colon < 0 ? '' : spec.slice(colon + 1);
  switch (kind) {
    case 'kiln':
      if (!rest) throw new ModelSpecError('--model kiln:<checkpoint> needs a checkpoint path');
      return { kind: 'kiln', checkpoint: rest };
    case 'openai':
      return { kind: 'openai', baseUrl: rest || undefined };
    case 'replay':
      if (!rest) throw new ModelSpecError('--model replay:<file> needs a file of recorded outputs');
      return { kind: 'replay', file: rest };
    case 'random': {
      const seed = rest === '' ? 0 : Number(rest);
      // Rng mixes the seed as a 32-bit unsigned integer: random:-1 would be random:4294967295.
      if (!isSeed(seed)) throw new ModelSpecError(`--model random:<seed> needs an integer seed in [0, 4294967295], got '${rest}'`);
      return { kind: 'random', seed };
    }
    default:
      throw new ModelSpecError(`unknown model '${spec}': use kiln:<checkpoint>, openai:<base URL>, replay:<file> or random:<seed>`);
  }
}

/**
 * A uniformly random model: random choice scores and empty generations. Its
 * multiple_choice_grade is chance, so its normalised score is about 0 (a baseline and a test).
 */
export class RandomModel implements LanguageModel {
  readonly name: string;
  private readonly seed: number;
  constructor(seed = 0) {
    this.seed = seed;
    this.name = `random:${seed}`;
  }
  async generate(prompts: string[]): Promise<string[]> {
    return prompts.map(() => '');
  }
  async scoreChoices(context: string, choices: string[]): Promise<number[]> {
    // Seeded by the context so the answer does not depend on the order requests arrive in.
    const rng = new Rng(this.seed, context);
    return choices.map(() => Math.log(rng.next() + 1e-12));
  }
}
