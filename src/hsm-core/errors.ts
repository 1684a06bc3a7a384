/**
 * HsmError: the one error type of Strongroom. Every refusal carries a stable `code` (the union
 * below, which callers may switch on) and a one-line message that says what was wrong and what
 * to do about it. Errors cross process and network boundaries as `{ code, message }` and are
 * rebuilt with {@link HsmError.fromWire}.
 *
 * @module
 */

/** Every code an HSM member can answer with. Codes are stable; messages may improve. */
export const HSM_ERROR_CODES = [
  // the request itself
  'BAD_REQUEST',
  'UNKNOWN_OPERATION',
  // sessions and users
  'NOT_LOGGED_IN',
  'LOGIN_FAILED',
  'USER_LOCKED',
  'USER_NOT_FOUND',
  'USER_EXISTS',
  'USER_OWNS_KEYS',
  'USER_LOGGED_IN',
  'INVALID_USERNAME',
  'INVALID_PASSWORD',
  'PERMISSION_DENIED',
  'CLUSTER_ALREADY_ACTIVATED',
  'CLUSTER_NOT_ACTIVE',
  // quorum and MFA
  /** CloudHSM's "Quorum approval is required for this operation": no approval, or too few valid ones. */
  'QUORUM_APPROVAL_REQUIRED',
  'QUORUM_TOKEN_INVALID',
  'QUORUM_TOKEN_EXISTS',
  'QUORUM_NOT_ENABLED',
  'QUORUM_VALUE_INVALID',
  'MFA_REQUIRED',
  'MFA_NOT_ENABLED',
  // keys and attributes
  'KEY_NOT_FOUND',
  'NOT_KEY_OWNER',
  'ATTRIBUTE_FORBIDS_OPERATION',
  'ATTRIBUTE_READ_ONLY',
  'ATTRIBUTE_INVALID',
  'TEMPLATE_INCONSISTENT',
  'KEY_NOT_EXTRACTABLE',
  'WRAPPING_KEY_NOT_TRUSTED',
  'KEY_NOT_SHAREABLE',
  'KEY_TYPE_INCONSISTENT',
  'KEY_SIZE_INVALID',
  'KEY_DATA_INVALID',
  /** A token-sign (MFA/quorum) public key that is not RSA 2048, or not a key at all. */
  'KEY_INVALID',
  'HANDLE_IN_USE',
  'MASKED_OBJECT_INVALID',
  /** A masked object, user or settings (or a backup's) older than what the member holds: never applied. */
  'MASKED_OBJECT_STALE',
  'BACKUP_INVALID',
  'KEY_NOT_AVAILABLE',
  // mechanisms and data
  'MECHANISM_PARAM_INVALID',
  'DATA_INVALID',
  'DECRYPTION_FAILED',
  // profile limits and quotas
  'NOT_SUPPORTED_BY_PROFILE',
  'LIMIT_EXCEEDED',
  'QUOTA_EXCEEDED',
  // the member itself
  'MEMBER_CLOSED',
  /** A data or cluster folder that another process has open (it names the process). */
  'FOLDER_IN_USE',
  /** CloudHSM's 0xBB: the member's queue is full; retry later or add members. */
  'MEMBER_BUSY',
  /** The member could not be reached or stopped answering. */
  'MEMBER_UNAVAILABLE',
  'INTERNAL_ERROR',
] as const;

export type HsmErrorCode = (typeof HSM_ERROR_CODES)[number];

const KNOWN_CODES: ReadonlySet<string> = new Set(HSM_ERROR_CODES);

/** The shape in which an error crosses a process or network boundary. */
export interface WireError {
  code: HsmErrorCode;
  message: string;
}

/**
 * A refusal by an HSM member (or by a client on its behalf).
 *
 * @example
 * ```ts
 * try { await session.send({ op: 'exportKey', handle, format: 'raw' }); }
 * catch (e) { if (e instanceof HsmError && e.code === 'KEY_NOT_EXTRACTABLE') { ... } }
 * ```
 */
export class HsmError extends Error {
  override readonly name = 'HsmError';
  readonly code: HsmErrorCode;

  constructor(code: HsmErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  /** The serialisable form of this error. */
  toWire(): WireError {
    return { code: this.code, message: this.message };
  }

  /** Rebuilds an error received from a member; an unknown code becomes INTERNAL_ERROR. */
  static fromWire(wire: { code?: unknown; message?: unknown }): HsmError {
    const message = typeof wire.message === 'string' ? wire.message : 'the member gave no message';
    if (typeof wire.code === 'string' && KNOWN_CODES.has(wire.code)) {
      return new HsmError(wire.code as HsmErrorCode, message);
    }
    return new HsmError('INTERNAL_ERROR', `unrecognised error code ${String(wire.code)}: ${message}`);
  }
}

/**
 * Each of `limits` (its name → its value) is a positive whole number, or BAD_REQUEST naming the
 * first that is not: the limits a member, a TLS member host, the relay and the PKCS #11 door are
 * started with.
 */
export function checkPositiveIntegers(limits: Record<string, unknown>): void {
  for (const [name, v] of Object.entries(limits)) {
    if (!Number.isSafeInteger(v) || (v as number) < 1) throw new HsmError('BAD_REQUEST', `${name}: a positive integer, got ${String(v)}`);
  }
}

/** Formats a key handle the way CloudHSM prints key references. */
export function keyRef(handle: number): string {
  return `0x${handle.toString(16).padStart(16, '0')}`;
}

/** A role or kind of key with its article, for messages: "an admin", "a crypto-user", "an rsa private-key". */
export const withArticle = (noun: string): string => `${/^(?:[aeiou]|rsa|x25519|x448|hmac|hkdf)/i.test(noun) ? 'an' : 'a'} ${noun}`;
