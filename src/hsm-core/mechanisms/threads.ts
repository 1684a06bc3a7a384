/**
 * A thread of hsm-core's own that does one kind of job (rsa-threads.ts, ecdsa-nonces.ts): its code
 * is plain CommonJS given as a string, so that it runs alike under tsx and from dist. A job is a
 * message with an id; the thread answers `{ id, ok: true, value }` or `{ id, ok: false, message,
 * code? }`, and each answer goes to its own job's caller, whatever happens to another. The thread
 * starts when made, keeps the process alive only while a job is out, and once it stops (an error,
 * an exit) every job still out is refused and {@link JobThread.failed} says to make another.
 *
 * @module
 */
import { Worker } from 'node:worker_threads';
import { withField } from '../face.js';

type Answer<V> = { id: number; ok: true; value: V } | { id: number; ok: false; message: string; code?: string };

export class JobThread<V> {
  readonly #worker: Worker;
  readonly #waiting = new Map<number, { resolve: (v: V) => void; reject: (e: Error) => void }>();
  #next = 0;
  failed = false;

  /** `what` names the thread in the error its callers get if it stops ("an RSA thread"). */
  constructor(source: string, what: string) {
    this.#worker = new Worker(source, { eval: true });
    this.#worker.unref();
    this.#worker.on('message', (a: Answer<V>) => {
      const waiter = this.#waiting.get(a.id);
      if (!waiter) return;
      this.#waiting.delete(a.id);
      if (this.#waiting.size === 0) this.#worker.unref();
      if (a.ok) waiter.resolve(a.value);
      else waiter.reject(Object.assign(new Error(a.message), a.code ? { code: a.code } : {}));
    });
    const stop = (why: string) => {
      this.failed = true;
      const e = new Error(`${what} stopped (${why}); try again`);
      for (const w of this.#waiting.values()) w.reject(e);
      this.#waiting.clear();
    };
    this.#worker.on('error', (e) => stop(e.message));
    this.#worker.on('exit', (code) => stop(`exit code ${code}`));
  }

  /** Jobs out. */
  get load(): number {
    return this.#waiting.size;
  }

  /** Posts `job` (with an id added, and `transfer`'s buffers moved, not copied); its answer's value. Bytes in `job` should be detached (detach.ts). */
  run(job: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<V> {
    return new Promise((resolve, reject) => {
      const id = this.#next++;
      // Posted first: a job that cannot be posted (it throws) leaves nothing waiting.
      this.#worker.postMessage(withField(job, 'id', id), transfer);
      if (this.#waiting.size === 0) this.#worker.ref();
      this.#waiting.set(id, { resolve, reject });
    });
  }
}
