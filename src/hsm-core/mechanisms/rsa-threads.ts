/**
 * Threads of this module's own for RSA's private-key operations that node:crypto has only in a
 * synchronous form: `privateEncrypt` over bytes already padded (a signature over a digest the
 * caller made, PKCS #11's CKM_RSA_PKCS and CKM_RSA_PKCS_PSS, raw PKCS #1 v1.5) and
 * `privateDecrypt` (the decrypt operation's RSA-OAEP and PKCS #1 v1.5; key unwrapping stays on the
 * member's thread, so that no unwrapped key is ever in another thread's memory). On the member's
 * thread each held the event loop for half a millisecond (RSA-2048; 4 ms for RSA-4096) and a member
 * made them one at a time on one core, whatever the machine had. Here each goes to the least busy
 * of up to four threads (one per core), as signatures over data go to libuv's pool; pool.ts
 * decides which go here (several at once, or a key over 2048 bits) and which stay on the member's
 * thread (one alone with a key of at most 2048 bits, for which the hop costs more than it saves).
 *
 * A job carries the KeyObject, which node:crypto clones to the thread as a handle to the same
 * native key: its bytes never enter JavaScript. A thread keeps nothing between jobs. The threads
 * start on first use and never keep the process alive while idle.
 *
 * @module
 */
import { availableParallelism } from 'node:os';
import type { KeyObject, RsaPrivateKey } from 'node:crypto';
import { detachBytes } from '../detach.js';
import { JobThread } from './threads.js';

/** The options of privateEncrypt / privateDecrypt but the key. */
export type RsaOptions = Omit<RsaPrivateKey, 'key' | 'passphrase'>;

/** A thread's code (threads.ts). */
const SOURCE = `
const { parentPort } = require('node:worker_threads');
const { privateDecrypt, privateEncrypt } = require('node:crypto');
parentPort.on('message', ({ id, decrypt, key, options, data }) => {
  let answer;
  try {
    answer = { id, ok: true, value: (decrypt ? privateDecrypt : privateEncrypt)({ ...options, key }, data) };
  } catch (e) {
    answer = { id, ok: false, message: String((e && e.message) || e), code: e && e.code };
  }
  parentPort.postMessage(answer);
  // What was decrypted is the caller's now (the message holds a copy): none is left here.
  if (answer.ok && decrypt) answer.value.fill(0);
});
`;

const threads: JobThread<Uint8Array>[] = [];
const COUNT = Math.max(1, Math.min(4, availableParallelism()));

/** `privateDecrypt` (or `privateEncrypt`) of `{ ...options, key }` on the least busy RSA thread (a failed one is replaced). */
export async function onRsaThread(decrypt: boolean, key: KeyObject, options: RsaOptions, data: Uint8Array): Promise<Buffer> {
  for (let i = 0; i < COUNT; i++) if (!threads[i] || threads[i]!.failed) threads[i] = new JobThread(SOURCE, 'an RSA thread');
  let best = threads[0]!;
  for (const t of threads) if (t.load < best.load) best = t;
  // The bytes go detached: a view would take all of its buffer (Node's 8 KiB pool, say) to the thread.
  const value = await best.run({ decrypt, key, options: detachBytes(options), data: detachBytes(data) });
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}
