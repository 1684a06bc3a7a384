/**
 * WebCrypto's key usages — the same words as a JWK's `key_ops` (RFC 7517 §4.3) — and the HSM
 * attribute each needs. The WebCrypto door makes templates with it; a member checks an
 * unwrapped JWK's `key_ops` with it. No imports: the browser bundle carries it.
 *
 * @module
 */
export const USAGE_ATTRIBUTE = {
  encrypt: 'encrypt',
  decrypt: 'decrypt',
  sign: 'sign',
  verify: 'verify',
  wrapKey: 'wrap',
  unwrapKey: 'unwrap',
  deriveKey: 'derive',
  deriveBits: 'derive',
} as const;

/** A WebCrypto key usage, or a JWK `key_ops` word. */
export type KeyOp = keyof typeof USAGE_ATTRIBUTE;
