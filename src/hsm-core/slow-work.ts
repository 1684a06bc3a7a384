/**
 * Slow work (PBKDF2 derivations, and the password-based encryption of exported and imported
 * private keys) shares libuv's thread pool with what every user needs to stay quick: password
 * hashing at login, signatures. So one user's derivations must not take the pool:
 *
 * - each call's work is bounded (iterations × output blocks, the profile's `maxKdfWork`), and
 *   a call above it is refused with LIMIT_EXCEEDED before anything runs;
 * - at most {@link SlowWork.slots} such jobs run at once on a member (half the cores, at least
 *   one), and a session has at most one running; the others wait, served round-robin across
 *   sessions, so a session that queues a hundred derivations delays its own, not others';
 * - a session that ends takes its waiting jobs with it.
 *
 * @module
 */
import { availableParallelism } from 'node:os';
import { HsmError } from './errors.js';
import { liftHint, type Profile } from './profiles.js';

const HASH_BLOCK_BYTES: Readonly<Record<string, number>> = { sha1: 20, sha224: 28, sha256: 32, sha384: 48, sha512: 64 };

/** Refuses a PBKDF2 call whose work (iterations × output blocks) is above the profile's bound. */
export function checkKdfWork(profile: Profile, hash: string, iterations: number, lengthBytes: number, field = 'mechanism.iterations'): void {
  const blocks = Math.max(1, Math.ceil(lengthBytes / (HASH_BLOCK_BYTES[hash] ?? 32)));
  const work = iterations * blocks;
  if (work > profile.maxKdfWork) {
    throw new HsmError(
      'LIMIT_EXCEEDED',
      `${field}: ${iterations} iterations × ${blocks} output block${blocks === 1 ? '' : 's'} is ${work} PBKDF2 block-iterations; the ${profile.name} profile allows ${profile.maxKdfWork} per call${liftHint(profile)}`,
    );
  }
}

interface Waiter {
  start: () => void;
  cancel: (why: HsmError) => void;
}

export class SlowWork {
  /** Jobs that run at once on this member. */
  readonly slots: number;
  #running = 0;
  readonly #busySessions = new Set<string>();
  /** Sessions with waiting jobs, in the order they are served (round-robin). */
  readonly #waiting = new Map<string, Waiter[]>();

  constructor(slots = Math.max(1, Math.floor(availableParallelism() / 2))) {
    this.slots = slots;
  }

  /** Runs `job` for `session` when a slot is free and the session has no other job running. */
  async run<T>(session: string, job: () => Promise<T>): Promise<T> {
    if (this.#running >= this.slots || this.#busySessions.has(session)) {
      await new Promise<void>((start, cancel) => {
        const queue = this.#waiting.get(session);
        if (queue) queue.push({ start, cancel });
        else this.#waiting.set(session, [{ start, cancel }]);
      });
    } else {
      this.#running += 1;
      this.#busySessions.add(session);
    }
    try {
      return await job();
    } finally {
      this.#running -= 1;
      this.#busySessions.delete(session);
      this.#next();
    }
  }

  /** Refuses the jobs a session still has waiting (it logged out): they never run. */
  cancel(session: string): void {
    const queue = this.#waiting.get(session);
    if (!queue) return;
    this.#waiting.delete(session);
    for (const w of queue) w.cancel(new HsmError('NOT_LOGGED_IN', 'the session ended before this derivation ran; nothing was derived'));
  }

  #next(): void {
    while (this.#running < this.slots) {
      // The first session in line with nothing running goes next; it moves to the back of the line.
      let chosen: string | undefined;
      for (const session of this.#waiting.keys()) {
        if (!this.#busySessions.has(session)) {
          chosen = session;
          break;
        }
      }
      if (chosen === undefined) return;
      const queue = this.#waiting.get(chosen)!;
      const waiter = queue.shift()!;
      this.#waiting.delete(chosen);
      if (queue.length) this.#waiting.set(chosen, queue);
      this.#running += 1;
      this.#busySessions.add(chosen);
      waiter.start();
    }
  }
}
