/**
 * Threads of this module's own for RSA's private-key operations that node:crypto has only in a
 * synchronous form: `privateEncrypt` over bytes already padded (a signature over a digest the
 * caller made, PKCS #11's CKM_RSA_PKCS and CKM_RSA_PKCS_PSS, raw PKCS #1 v1.5) and
 * `privateDecrypt` (the decrypt operation's RSA-OAEP and PKCS #1 v1.5; key unwrapping stays on the
 * member's thread, so that no unwrapped key is ever in another thread's memory). On the member's
 * thread each held the event loop for half a millisecond (RSA-2048; 4 ms for RSA-4096) and a member
 * made them one at a time on one core, whatever the machine had. Here
 * each goes to the least busy of up to four threads (one per core), as signatures over data go to
 * libuv's pool; pool.ts decides which go here (several at once) and which stay on the member's
 * thread (one alone, for which the hop costs more than it saves).
 *
 * A job carries the KeyObject, which node:crypto clones to the thread as a handle to the same
 * native key: its bytes never enter JavaScript. A thread keeps nothing between jobs. The threads
 * start on first use and never keep the process alive while idle.
 *
 * @module
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { KeyObject, RsaPrivateKey } from 'node:crypto';
import { detachBytes } from '../detach.js';

/** The options of privateEncrypt / privateDecrypt but the key. */
export type RsaOptions = Omit<RsaPrivateKey, 'key' | 'passphrase'>;

/** A thread's code: plain CommonJS, so that it runs alike under tsx and from dist. */
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

type Answer = { id: number; ok: true; value: Uint8Array } | { id: number; ok: false; message: string; code?: string };

class RsaThread {
  readonly #worker = new Worker(SOURCE, { eval: true });
  /** Jobs sent and not answered, by id: each answer goes to its own job's caller, whatever happens to another. */
  readonly #waiting = new Map<number, { resolve: (b: Buffer) => void; reject: (e: Error) => void }>();
  #next = 0;
  failed = false;

  constructor() {
    this.#worker.unref();
    this.#worker.on('message', (a: Answer) => {
      const waiter = this.#waiting.get(a.id);
      if (!waiter) return;
      this.#waiting.delete(a.id);
      if (this.#waiting.size === 0) this.#worker.unref();
      if (a.ok) waiter.resolve(Buffer.from(a.value.buffer, a.value.byteOffset, a.value.byteLength));
      else waiter.reject(Object.assign(new Error(a.message), a.code ? { code: a.code } : {}));
    });
    const stop = (why: string) => {
      this.failed = true;
      const e = new Error(`an RSA thread stopped (${why}); try again`);
      for (const w of this.#waiting.values()) w.reject(e);
      this.#waiting.clear();
    };
    this.#worker.on('error', (e) => stop(e.message));
    this.#worker.on('exit', (code) => stop(`exit code ${code}`));
  }

  get load(): number {
    return this.#waiting.size;
  }

  run(decrypt: boolean, key: KeyObject, options: RsaOptions, data: Uint8Array): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const id = this.#next++;
      // Posted first: a job that cannot be posted (it throws) leaves nothing waiting. The bytes go
      // detached: a view would take all of its buffer (Node's 8 KiB pool, say) to the thread.
      this.#worker.postMessage({ id, decrypt, key, options: detachBytes(options), data: detachBytes(data) });
      if (this.#waiting.size === 0) this.#worker.ref();
      this.#waiting.set(id, { resolve, reject });
    });
  }
}

const threads: RsaThread[] = [];
const COUNT = Math.max(1, Math.min(4, availableParallelism()));

/** `privateDecrypt` (or `privateEncrypt`) of `{ ...options, key }` on the least busy RSA thread (a failed one is replaced). */
export function onRsaThread(decrypt: boolean, key: KeyObject, options: RsaOptions, data: Uint8Array): Promise<Buffer> {
  for (let i = 0; i < COUNT; i++) if (!threads[i] || threads[i]!.failed) threads[i] = new RsaThread();
  let best = threads[0]!;
  for (const t of threads) if (t.load < best.load) best = t;
  return best.run(decrypt, key, options, data);
}
