/**
 * Asymmetric signatures on libuv's thread pool (node:crypto's callback forms of sign and verify),
 * so that one member uses every core under concurrent load, as Node's own WebCrypto does. Fast
 * symmetric operations stay synchronous: a hop to the pool would cost more than they do.
 *
 * @module
 */
import { sign, verify, type KeyObject, type SignKeyObjectInput, type VerifyKeyObjectInput } from 'node:crypto';

export function signAsync(algorithm: string | null, data: Uint8Array, key: KeyObject | SignKeyObjectInput): Promise<Buffer> {
  return new Promise((resolve, reject) => sign(algorithm, data, key, (err, signature) => (err ? reject(err) : resolve(signature))));
}

export function verifyAsync(algorithm: string | null, data: Uint8Array, key: KeyObject | VerifyKeyObjectInput, signature: Uint8Array): Promise<boolean> {
  return new Promise((resolve, reject) => verify(algorithm, data, key, signature, (err, valid) => (err ? reject(err) : resolve(valid))));
}
