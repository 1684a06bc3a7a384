/**
 * Seeded randomness for fuzz, crash and chaos tests, so that a failure can be replayed: each test
 * names its seed in its title; `STRONGROOM_TEST_SEED=n` runs them all with another one.
 */

/** The seed of this run: STRONGROOM_TEST_SEED, or the test's own default. */
export function testSeed(fallback: number): number {
  const given = process.env.STRONGROOM_TEST_SEED;
  return given === undefined ? fallback : Number.parseInt(given, 10) >>> 0;
}

/** mulberry32: a small deterministic generator of numbers in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Integers below `n` and random bytes from one seeded generator. */
export function seeded(seed: number): { next: () => number; below: (n: number) => number; bytes: (n: number) => Buffer } {
  const next = prng(seed);
  const below = (n: number) => Math.floor(next() * n);
  return { next, below, bytes: (n) => Buffer.from(Array.from({ length: n }, () => below(256))) };
}
