/**
 * Asymmetric signatures on libuv's thread pool (node:crypto's callback forms of sign and verify),
 * so that one member uses every core under concurrent load, as Node's own WebCrypto does. Fast
 * symmetric operations stay synchronous: a hop to the pool would cost more than they do.
 *
 * A member that has a thread of its own (a worker, or a `strongroom hsm serve` process) signs on
 * that thread instead: the thread pool is shared by the whole process, so members that all used
 * it would share its cores rather than each bring one. `useThreadPool(false)` says so; it applies
 * to the calling thread's members.
 *
 * @module
 */
import { sign, verify, type KeyObject, type SignKeyObjectInput, type VerifyKeyObjectInput } from 'node:crypto';

let threadPool = true;

/** Whether this thread's members sign and verify on libuv's thread pool (default) or on this thread. */
export function useThreadPool(on: boolean): void {
  threadPool = on;
}

export function signAsync(algorithm: string | null, data: Uint8Array, key: KeyObject | SignKeyObjectInput): Promise<Buffer> {
  if (!threadPool) return new Promise((resolve) => resolve(sign(algorithm, data, key)));
  return new Promise((resolve, reject) => sign(algorithm, data, key, (err, signature) => (err ? reject(err) : resolve(signature))));
}

export function verifyAsync(algorithm: string | null, data: Uint8Array, key: KeyObject | VerifyKeyObjectInput, signature: Uint8Array): Promise<boolean> {
  if (!threadPool) return new Promise((resolve) => resolve(verify(algorithm, data, key, signature)));
  return new Promise((resolve, reject) => verify(algorithm, data, key, signature, (err, valid) => (err ? reject(err) : resolve(valid))));
}
