/**
 * The one rule for a member that answers MEMBER_BUSY (CloudHSM's 0xBB): in the `standard` retry
 * mode (SDK 5's), the request is retried up to 3 times, after an exponential backoff with jitter;
 * in the `off` mode never. Every path that sends (to one member, balanced, the session's fast
 * path) asks this module.
 *
 * @module
 */
import type { MemberLink } from './member-link.js';

/** How many times the standard retry mode retries a member that answered MEMBER_BUSY (CloudHSM's SDK: 3). */
export const BUSY_RETRIES = 3;

export type RetryMode = 'standard' | 'off';

/** Exponential backoff with jitter: about 10, 20, 40 ms for the 1st, 2nd, 3rd retry. */
const backoff = (retry: number) => Math.min(1000, 5 * 2 ** retry) * (0.5 + Math.random());

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether a busy answer gets another try, after `used` retries. */
export function retriesBusy(mode: RetryMode, used: number): boolean {
  return mode === 'standard' && used < BUSY_RETRIES;
}

/** Counts retry number `retry` (1-based) on the member, and waits its backoff. */
export async function waitToRetry(link: MemberLink, retry: number): Promise<void> {
  link.counters.retries += 1;
  await sleep(backoff(retry));
}
