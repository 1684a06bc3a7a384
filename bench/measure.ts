/**
 * Measuring, shared by every table: a rate with calls in flight, several rates taking turns, and
 * the median of rounds.
 *
 * @module
 */

/** The median (the mean of the middle two for an even count). */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** One stretch of `op` with `inFlight` callers for `ms` milliseconds: the calls made and the time taken. */
async function stretch(op: () => Promise<unknown>, inFlight: number, ms: number): Promise<Stretch> {
  const start = performance.now();
  const deadline = start + ms;
  let count = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < deadline) {
        await op();
        count += 1;
      }
    }),
  );
  return { count, ms: performance.now() - start };
}

/** Calls of `op` per second over `seconds`, with `inFlight` callers, after `warmup` calls one by one. */
export async function rate(op: () => Promise<unknown>, inFlight: number, seconds: number, warmup = 20): Promise<number> {
  for (let i = 0; i < warmup; i++) await op();
  const { count, ms } = await stretch(op, inFlight, seconds * 1000);
  return count / (ms / 1000);
}

/** What a stretch of measuring gave: calls made and the time they took. */
export interface Stretch {
  count: number;
  ms: number;
}

/**
 * Calls per second of several measurers, each given `seconds` in all but in `slices` stretches
 * that take turns with the others' (each slice in another order), so that the drift of a shared
 * machine touches them alike. On the 2-core VM these figures come from, the spread of a door ÷
 * native ratio between rounds (ECDSA P-256 sign, 32 in flight, standard deviation of 10 rounds)
 * was 0.17 measuring each for 1 s in turn, and 0.06 in 8 slices of 125 ms.
 */
export async function takingTurns(measurers: readonly ((ms: number) => Promise<Stretch>)[], seconds: number, slices = 8): Promise<number[]> {
  const counts = measurers.map(() => 0);
  const times = measurers.map(() => 0);
  for (let slice = 0; slice < slices; slice++) {
    for (let i = 0; i < measurers.length; i++) {
      const which = (i + slice) % measurers.length;
      const { count, ms } = await measurers[which]!((seconds * 1000) / slices);
      counts[which]! += count;
      times[which]! += ms;
    }
  }
  return counts.map((count, k) => count / (times[k]! / 1000));
}

/** {@link takingTurns} of runs (an operation and its callers in flight), after `warmup` calls of each one by one. */
export async function interleaved(runs: readonly { op: () => Promise<unknown>; inFlight: number }[], seconds: number, slices = 8, warmup = 20): Promise<number[]> {
  for (const { op } of runs) for (let i = 0; i < warmup; i++) await op();
  return takingTurns(
    runs.map(({ op, inFlight }) => (ms: number) => stretch(op, inFlight, ms)),
    seconds,
    slices,
  );
}
