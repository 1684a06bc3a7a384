/**
 * Digests and HMAC. SHA-1/224/256/384/512 by CloudHSM's names; node:crypto computes.
 *
 * @module
 */
import { createHash, createHmac, type KeyObject } from 'node:crypto';
import type { HashName } from '../protocol.js';

/** CloudHSM hash name → OpenSSL digest name. */
export const NODE_HASH: Readonly<Record<HashName, string>> = {
  sha1: 'sha1',
  sha224: 'sha224',
  sha256: 'sha256',
  sha384: 'sha384',
  sha512: 'sha512',
};

export const HASH_BYTES: Readonly<Record<HashName, number>> = { sha1: 20, sha224: 28, sha256: 32, sha384: 48, sha512: 64 };

export function digest(hash: HashName, data: Uint8Array): Buffer {
  return createHash(NODE_HASH[hash]).update(data).digest();
}

export function hmac(key: KeyObject | Uint8Array, hash: HashName, data: Uint8Array): Buffer {
  return createHmac(NODE_HASH[hash], key).update(data).digest();
}
