/**
 * HSM users: CloudHSM's roles, username and password rules, password hashing and lockout.
 *
 * Passwords are stored only as scrypt hashes (memory-hard; N = 2^15, r = 8, p = 1 by default,
 * 32 MiB per hash), each with its own salt and its parameters, so the cost can rise later
 * without breaking existing users. Comparison is constant-time.
 *
 * @module
 */
import { randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { HsmError } from './errors.js';
import type { UserRole } from './protocol.js';
import type { TokenSign } from './quorum.js';

/** Failed logins after which a user is locked until an admin resets the password (cloudhsm_cli-login.md). */
export const LOCKOUT_THRESHOLD = 5;
export const PASSWORD_MIN = 8;
export const PASSWORD_MAX = 32;
export const USERNAME_MAX = 31;

export interface PasswordHash {
  algorithm: 'scrypt';
  log2N: number;
  r: number;
  p: number;
  salt: string;
  hash: string;
}

/**
 * A user as a member holds it. Change a field by assigning it a new value (a new password hash, a
 * new token-sign object); never change a nested value inside: a durable member's store writes the
 * users whose fields differ from what it wrote, compared by value (store.ts).
 */
export interface UserRecord {
  username: string;
  role: UserRole;
  password: PasswordHash;
  failedLogins: number;
  /** The registered token-sign key (MFA and quorum), if any. */
  tokenSign?: TokenSign | null;
  /**
   * The generation of this version of the user (see MemberState.stamp): it grows with every change
   * that travels (role, password, token-sign key). 0 for users older than generations. Failed
   * logins are per member and do not count.
   */
  gen?: number;
}

function scrypt(password: string, salt: Buffer, length: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scryptCallback(password, salt, length, options, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

function scryptOptions(h: Pick<PasswordHash, 'log2N' | 'r' | 'p'>): ScryptOptions {
  const N = 2 ** h.log2N;
  return { N, r: h.r, p: h.p, maxmem: 256 * N * h.r + 16 * 1024 * 1024 };
}

export async function hashPassword(password: string, log2N: number): Promise<PasswordHash> {
  const salt = randomBytes(16);
  const params = { log2N, r: 8, p: 1 };
  const hash = await scrypt(password, salt, 32, scryptOptions(params));
  return { algorithm: 'scrypt', ...params, salt: salt.toString('base64'), hash: hash.toString('base64') };
}

export async function verifyPassword(password: string, stored: PasswordHash): Promise<boolean> {
  const expected = Buffer.from(stored.hash, 'base64');
  const actual = await scrypt(password, Buffer.from(stored.salt, 'base64'), expected.length, scryptOptions(stored));
  return timingSafeEqual(actual, expected);
}

/** Checks a username and returns it in lowercase (usernames are case-insensitive). */
export function normaliseUsername(name: string): string {
  if (!/^[A-Za-z0-9_]+$/.test(name) || name.length > USERNAME_MAX) {
    throw new HsmError(
      'INVALID_USERNAME',
      `username: 1–${USERNAME_MAX} characters of letters, digits and _, got ${JSON.stringify(name.slice(0, 40))}`,
    );
  }
  return name.toLowerCase();
}

export function checkPasswordRule(password: string): void {
  if (password.length < PASSWORD_MIN || password.length > PASSWORD_MAX) {
    throw new HsmError('INVALID_PASSWORD', `password: ${PASSWORD_MIN}–${PASSWORD_MAX} characters, got ${password.length}`);
  }
}

export function isLocked(user: UserRecord): boolean {
  return user.failedLogins >= LOCKOUT_THRESHOLD;
}
