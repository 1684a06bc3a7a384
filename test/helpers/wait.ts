/**
 * Waiting for a condition instead of sleeping: polls every 10 ms and fails, naming what it waited
 * for, when the time is up (generous: a loaded two-core machine is slow, and a condition that
 * holds ends the wait at once).
 */
export async function waitUntil(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
