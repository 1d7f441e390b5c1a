// The global Philox 4x32-10 stream: a 64-bit seed and a word offset that every draw advances.
// A draw of n values uses words [offset, offset + n) (normal: rounded up to even), then the
// offset moves to the next multiple of 4, so each draw starts on a fresh Philox block.
import { KilnError } from '../errors.js';

const state = { seed: 0n, offset: 0 };

/** Seeds the generator: the same seed gives the same numbers on every device. */
export function manualSeed(seed: number | bigint): void {
  if (!(typeof seed === 'bigint' || (typeof seed === 'number' && Number.isSafeInteger(seed))))
    throw new KilnError('INVALID_ARGUMENT', `manualSeed: seed must be an integer (a safe-integer number or a bigint), got ${typeof seed === 'number' ? seed : typeof seed}`);
  const s = BigInt(seed);
  if (s < 0n || s >= 1n << 64n) throw new KilnError('INVALID_ARGUMENT', `manualSeed: seed must be in [0, 2^64), got ${seed}`);
  state.seed = s;
  state.offset = 0;
}

export interface RngState {
  seed: string;
  offset: number;
}

export function getRngState(): RngState {
  return { seed: state.seed.toString(), offset: state.offset };
}

/** The seed and offset of an RNG state, checked (a KilnError names what is wrong); changes nothing. */
export function checkRngState(s: RngState, where = 'setRngState'): { seed: bigint; offset: number } {
  if (typeof s !== 'object' || s === null) throw new KilnError('INVALID_ARGUMENT', `${where}: needs { seed, offset }, got ${s === null ? 'null' : typeof s}`);
  let seed: bigint;
  try {
    seed = BigInt(s.seed);
  } catch {
    throw new KilnError('INVALID_ARGUMENT', `${where}: seed ${JSON.stringify(s.seed)} is not an integer`);
  }
  if (seed < 0n || seed >= 1n << 64n) throw new KilnError('INVALID_ARGUMENT', `${where}: seed must be in [0, 2^64), got ${seed}`);
  if (!(Number.isSafeInteger(s.offset) && s.offset >= 0 && s.offset <= 2 ** 53))
    throw new KilnError('INVALID_ARGUMENT', `${where}: offset must be an integer in [0, 2^53], got ${JSON.stringify(s.offset)}`);
  return { seed, offset: s.offset };
}

export function setRngState(s: RngState): void {
  const c = checkRngState(s);
  state.seed = c.seed;
  state.offset = c.offset;
}

/**
 * Reserves `words` words of the stream; returns [seedLo, seedHi, offset]. The offset stays below
 * 2^53 (the kernels' limit): a draw that would pass it is refused and leaves the stream as it was.
 */
export function reserve(words: number): [number, number, number] {
  const off = state.offset;
  const next = off + Math.ceil(words / 4) * 4;
  if (!(Number.isSafeInteger(words) && words >= 0 && next <= 2 ** 53))
    throw new KilnError('INVALID_ARGUMENT',
      `random: a draw of ${words} words at offset ${off} would pass the stream's 2^53 words (call manualSeed to restart it)`);
  state.offset = next;
  return [Number(state.seed & 0xffffffffn), Number(state.seed >> 32n), off];
}
initialSeed();
function initialSeed(): void {
  // Unseeded runs differ from each other, like PyTorch's default generator.
  state.seed = BigInt(Date.now()) ^ (BigInt(process.pid) << 32n);
}
