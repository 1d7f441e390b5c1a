// Recipes mix their seeds as 32-bit unsigned integers (Math.imul, >>> 0): -1 would be 2^32 - 1,
// 2^32 would be 0, NaN and 0.5 would be 0. Every recipe entry point refuses such seeds with this.

/** The largest seed: seeds are mixed as 32-bit unsigned integers. */
export const MAX_SEED = 0xffffffff;

/** True for an integer seed in [0, 2^32). */
export function isSeed(v: unknown): v is number {
  return Number.isInteger(v) && (v as number) >= 0 && (v as number) <= MAX_SEED;
}
