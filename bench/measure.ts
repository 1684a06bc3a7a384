/**
 * Measuring, shared by every table: a rate with calls in flight, and the median of rounds.
 *
 * @module
 */

/** The median (the mean of the middle two for an even count). */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Calls of `op` per second over `seconds`, with `inFlight` callers, after `warmup` calls one by one. */
export async function rate(op: () => Promise<unknown>, inFlight: number, seconds: number, warmup = 20): Promise<number> {
  for (let i = 0; i < warmup; i++) await op();
  const deadline = performance.now() + seconds * 1000;
  let count = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < deadline) {
        await op();
        count += 1;
      }
    }),
  );
  return count / ((performance.now() - start) / 1000);
}
