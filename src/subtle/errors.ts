/**
 * The one place where errors become WebCrypto errors. Every SubtleCrypto method runs through
 * {@link webCryptoError} as it returns, so callers see the `DOMException` names that the Web
 * Crypto spec and Node's own `crypto.webcrypto` raise: `NotSupportedError`, `InvalidAccessError`,
 * `DataError`, `OperationError`, `SyntaxError`, and plain `TypeError` for arguments of the wrong
 * type.
 *
 * Two sources need mapping. The HSM refuses with an `HsmError` code; webcrypto-core validates
 * arguments with error classes that carry no `name`, recognised here by class. Where its class is
 * not the spec's (a TypeError for a usage the algorithm lacks), the door's providers make that
 * check themselves and throw the spec's name (providers/base.ts), so no message is ever read.
 * The original error stays reachable as `cause`: an HSM refusal's stable `code` is
 * `error.cause.code`.
 *
 * @module
 */
import { HsmError, type HsmErrorCode } from '../hsm-core/face.js';
import { AlgorithmError, CryptoError, OperationError as CoreOperationError, RequiredPropertyError, UnsupportedOperationError } from 'webcrypto-core';

export type WebCryptoErrorName = 'NotSupportedError' | 'InvalidAccessError' | 'DataError' | 'OperationError' | 'SyntaxError' | 'QuotaExceededError';

/** The SubtleCrypto methods, for errors whose meaning depends on where they arise. */
export type Method =
  | 'encrypt'
  | 'decrypt'
  | 'sign'
  | 'verify'
  | 'digest'
  | 'generateKey'
  | 'deriveKey'
  | 'deriveBits'
  | 'importKey'
  | 'exportKey'
  | 'wrapKey'
  | 'unwrapKey';

/** A key that arrives from outside (import, unwrap) is "data"; elsewhere the same code is an operation failure. */
const KEY_INPUT: ReadonlySet<Method> = new Set(['importKey', 'unwrapKey']);

/** HSM refusal code → WebCrypto name. `data` means DataError for key input and OperationError elsewhere. */
const HSM_CODES: Readonly<Record<HsmErrorCode, WebCryptoErrorName | 'data'>> = {
  BAD_REQUEST: 'OperationError',
  UNKNOWN_OPERATION: 'NotSupportedError',
  NOT_LOGGED_IN: 'OperationError',
  LOGIN_FAILED: 'OperationError',
  USER_LOCKED: 'OperationError',
  USER_NOT_FOUND: 'OperationError',
  USER_EXISTS: 'OperationError',
  USER_OWNS_KEYS: 'OperationError',
  USER_LOGGED_IN: 'OperationError',
  INVALID_USERNAME: 'OperationError',
  INVALID_PASSWORD: 'OperationError',
  PERMISSION_DENIED: 'InvalidAccessError',
  CLUSTER_ALREADY_ACTIVATED: 'OperationError',
  CLUSTER_NOT_ACTIVE: 'OperationError',
  QUORUM_APPROVAL_REQUIRED: 'InvalidAccessError',
  QUORUM_TOKEN_INVALID: 'InvalidAccessError',
  QUORUM_TOKEN_EXISTS: 'OperationError',
  QUORUM_NOT_ENABLED: 'OperationError',
  QUORUM_VALUE_INVALID: 'OperationError',
  MFA_REQUIRED: 'OperationError',
  MFA_NOT_ENABLED: 'OperationError',
  KEY_INVALID: 'data',
  KEY_NOT_FOUND: 'InvalidAccessError',
  NOT_KEY_OWNER: 'InvalidAccessError',
  ATTRIBUTE_FORBIDS_OPERATION: 'InvalidAccessError',
  ATTRIBUTE_READ_ONLY: 'InvalidAccessError',
  ATTRIBUTE_INVALID: 'SyntaxError',
  TEMPLATE_INCONSISTENT: 'SyntaxError',
  KEY_NOT_EXTRACTABLE: 'InvalidAccessError',
  WRAPPING_KEY_NOT_TRUSTED: 'InvalidAccessError',
  KEY_NOT_SHAREABLE: 'InvalidAccessError',
  KEY_TYPE_INCONSISTENT: 'data',
  KEY_SIZE_INVALID: 'data',
  KEY_DATA_INVALID: 'data',
  HANDLE_IN_USE: 'OperationError',
  MASKED_OBJECT_INVALID: 'OperationError',
  MASKED_OBJECT_STALE: 'OperationError',
  BACKUP_INVALID: 'OperationError',
  KEY_NOT_AVAILABLE: 'OperationError',
  MECHANISM_PARAM_INVALID: 'OperationError',
  DATA_INVALID: 'data',
  DECRYPTION_FAILED: 'OperationError',
  NOT_SUPPORTED_BY_PROFILE: 'NotSupportedError',
  LIMIT_EXCEEDED: 'OperationError',
  QUOTA_EXCEEDED: 'OperationError',
  MEMBER_CLOSED: 'OperationError',
  FOLDER_IN_USE: 'OperationError',
  MEMBER_BUSY: 'OperationError',
  MEMBER_UNAVAILABLE: 'OperationError',
  INTERNAL_ERROR: 'OperationError',
};

function domException(name: WebCryptoErrorName, message: string, cause: unknown): DOMException {
  const e = new DOMException(message, name);
  if (cause !== undefined) Object.defineProperty(e, 'cause', { value: cause, configurable: true, writable: true });
  return e;
}

function firstLine(text: string): string {
  const line = text.split('\n', 1)[0] ?? '';
  return line.length > 0 ? line : 'the operation failed';
}

/** Turns anything thrown inside a SubtleCrypto method into what WebCrypto callers expect. */
export function webCryptoError(e: unknown, method: Method): Error {
  if (e instanceof DOMException && e.name !== 'Error') return e;
  if (e instanceof HsmError) {
    const mapped = HSM_CODES[e.code];
    const name = mapped === 'data' ? (KEY_INPUT.has(method) ? 'DataError' : 'OperationError') : mapped;
    return domException(name, e.message, e);
  }
  const message = firstLine(e instanceof Error ? e.message : String(e));
  if (e instanceof AlgorithmError || e instanceof UnsupportedOperationError) return domException('NotSupportedError', message, e);
  if (e instanceof CoreOperationError) return domException('OperationError', message, e);
  if (e instanceof RequiredPropertyError) return new TypeError(message, { cause: e });
  if (e instanceof CryptoError) return domException('OperationError', message, e);
  if (e instanceof TypeError || e instanceof RangeError) return new TypeError(message, { cause: e });
  if (e instanceof SyntaxError) return domException('SyntaxError', message, e);
  if (e instanceof DOMException) return domException('InvalidAccessError', message, e);
  return domException('OperationError', message, e);
}

/** The error a door check raises itself, already in WebCrypto's terms. */
export function refusal(name: WebCryptoErrorName, message: string): DOMException {
  return new DOMException(message, name);
}
