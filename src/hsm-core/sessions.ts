/**
 * Sessions: a login yields a session token (24 random bytes, base64url) that every later request
 * names. The token is a secret capability and is never written to the audit log; the log uses the
 * session's small numeric handle instead.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { UserRole } from './protocol.js';

export interface SessionRecord {
  readonly token: string;
  /** The number the audit log knows the session by. */
  readonly handle: number;
  readonly username: string;
  role: UserRole;
}

export class SessionTable {
  readonly #byToken = new Map<string, SessionRecord>();
  #nextHandle = 1;

  open(username: string, role: UserRole): SessionRecord {
    const session: SessionRecord = { token: randomBytes(24).toString('base64url'), handle: this.#nextHandle++, username, role };
    this.#byToken.set(session.token, session);
    return session;
  }

  get(token: string): SessionRecord | undefined {
    return this.#byToken.get(token);
  }

  close(token: string): void {
    this.#byToken.delete(token);
  }

  /** Whether `username` has at least one open session. */
  isLoggedIn(username: string): boolean {
    for (const s of this.#byToken.values()) if (s.username === username) return true;
    return false;
  }

  ofUser(username: string): SessionRecord[] {
    return [...this.#byToken.values()].filter((s) => s.username === username);
  }

  get size(): number {
    return this.#byToken.size;
  }

  clear(): void {
    this.#byToken.clear();
  }
}
