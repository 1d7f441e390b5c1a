// Philox 4x32-10 on the host, for sampling: the generator behind kiln's random tensors
// (kernels/common/philox.h), here counter-based per (seed, stream, step), so a sampled token
// depends on its request's seed, its choice and its position only, never on which other requests
// shared the batch or in what order they arrived.
import { KilnError } from '../errors.js';

const M0 = 0xd2511f53, M1 = 0xcd9e8d57, W0 = 0x9e3779b9, W1 = 0xbb67ae85;
const TWO16 = 65536, TWO32 = 4294967296;

/** The high 32 bits of the 64-bit product of two 32-bit unsigned integers (exact in doubles). */
function mulhi(a: number, b: number): number {
  const lo = a * (b & 0xffff); // < 2^48, exact
  const hi = a * (b >>> 16); // < 2^48, exact
  return (Math.floor(hi / TWO16) + Math.floor(((hi % TWO16) * TWO16 + lo) / TWO32)) >>> 0;
}

/** philox4x32_10(counter, key): four 32-bit words (Salmon et al., SC 2011). */
export function philox4x32_10(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number): [number, number, number, number] {
  c0 >>>= 0; c1 >>>= 0; c2 >>>= 0; c3 >>>= 0; k0 >>>= 0; k1 >>>= 0;
  for (let r = 0; r < 10; r++) {
    if (r > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const hi0 = mulhi(M0, c0), lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi(M1, c2), lo1 = Math.imul(M1, c2) >>> 0;
    const n0 = (hi1 ^ c1 ^ k0) >>> 0, n2 = (hi0 ^ c3 ^ k1) >>> 0;
    c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
  }
  return [c0, c1, c2, c3];
}

/** A seed as the unsigned 64-bit key Philox takes (negative integers wrap, as in two's complement). */
export function seedKey(seed: number | bigint): bigint {
  if (typeof seed === 'number' && !Number.isSafeInteger(seed)) throw new KilnError('INVALID_ARGUMENT', `sampling seed must be an integer, got ${seed}`);
  const s = BigInt(seed);
  if (s < -(1n << 63n) || s >= 1n << 64n) throw new KilnError('INVALID_ARGUMENT', `sampling seed must be in [-2^63, 2^64), got ${s}`);
  return BigInt.asUintN(64, s);
}

/**
 * A uniform number in [0, 1) with 53 random bits for draw `step` of stream `stream` under `seed`:
 * words 0 and 1 of the Philox block at counter (step, stream, 0, 0), key = the seed.
 */
export function uniformAt(seed: bigint, stream: number, step: number): number {
  if (!(Number.isInteger(stream) && stream >= 0 && stream < TWO32 && Number.isInteger(step) && step >= 0 && step < TWO32))
    throw new KilnError('INVALID_ARGUMENT', `uniformAt: stream ${stream} and step ${step} must be integers in [0, 2^32)`);
  const [w0, w1] = philox4x32_10(step, stream, 0, 0, Number(seed & 0xffffffffn), Number((seed >> 32n) & 0xffffffffn));
  return ((w0 >>> 5) * 67108864 + (w1 >>> 6)) / 9007199254740992;
}
