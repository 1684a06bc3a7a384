/**
 * Elliptic-curve mechanisms: ECDSA (P1363 or DER signatures), Ed25519, and ECDH / X25519 key
 * agreement. node:crypto does the arithmetic.
 *
 * @module
 */
import { diffieHellman, type KeyObject } from 'node:crypto';
import { HsmError } from '../errors.js';
import type { HashName } from '../protocol.js';
import { NODE_HASH } from './hash.js';
import { curveLabel } from './keys.js';
import { signAsync, verifyAsync } from './pool.js';

export function ecdsaSign(privateKey: KeyObject, hash: HashName, format: 'p1363' | 'der', data: Uint8Array): Promise<Buffer> {
  return signAsync(NODE_HASH[hash], data, { key: privateKey, dsaEncoding: format === 'der' ? 'der' : 'ieee-p1363' });
}

export async function ecdsaVerify(publicKey: KeyObject, hash: HashName, format: 'p1363' | 'der', data: Uint8Array, signature: Uint8Array): Promise<boolean> {
  try {
    return await verifyAsync(NODE_HASH[hash], data, { key: publicKey, dsaEncoding: format === 'der' ? 'der' : 'ieee-p1363' }, signature);
  } catch {
    return false; // a malformed signature is an invalid one
  }
}

/** Ed25519 or Ed448 (pure EdDSA: the key says which). */
export function eddsaSign(privateKey: KeyObject, data: Uint8Array): Promise<Buffer> {
  return signAsync(null, data, privateKey);
}

export async function eddsaVerify(publicKey: KeyObject, data: Uint8Array, signature: Uint8Array): Promise<boolean> {
  try {
    return await verifyAsync(null, data, publicKey, signature);
  } catch {
    return false;
  }
}

/** The raw shared secret of ECDH (EC curves) or X25519. */
export function agree(privateKey: KeyObject, peer: KeyObject): Buffer {
  const mine = curveLabel(privateKey);
  const theirs = curveLabel(peer);
  if (mine !== theirs) {
    throw new HsmError('KEY_TYPE_INCONSISTENT', `mechanism: the peer's public key is on ${theirs}, but the base key is on ${mine}`);
  }
  try {
    return diffieHellman({ privateKey, publicKey: peer });
  } catch (e) {
    throw new HsmError('DATA_INVALID', `mechanism: key agreement failed with this peer public key (${(e as Error).message})`, { cause: e });
  }
}
