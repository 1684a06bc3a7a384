/**
 * A member in a `worker_threads` worker: one member per worker, its keys in the worker's heap
 * only. The parent posts arrays of `{ id, request }` (the requests of one tick); the worker
 * answers with arrays of `{ id, response }` (those finished in one tick, at most
 * {@link BATCH_LIMIT}`.frames` to a message, as over TLS: the parent starts on the first answers
 * while the member makes the rest) — structured clone: byte arrays are copied, never shared. It
 * posts `{ ready: true }` once the member exists. On `{ stop: 'crash' }` at once, and on
 * `{ stop: 'close' }` once the member has closed, it posts `{ parked: true }` and blocks until the
 * parent terminates it.
 *
 * Started by the cluster client's WorkerTransport with the member's options as workerData.
 *
 * @module
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createMember, type MemberOptions } from '../member.js';
import { useThreadPool } from '../mechanisms/pool.js';
import { perTurn } from '../face.js';
import { BATCH_LIMIT } from '../wire.js';

if (!parentPort) throw new Error('hsm-core/hosts/worker.js runs only as a worker thread');
// This worker is the member's core: sign here rather than on the process's shared thread pool.
useThreadPool(false);
const port = parentPort;
const member = await createMember(workerData as MemberOptions);
const answer = perTurn<{ id: number; response: unknown }>((answers) => port.postMessage(answers), undefined, BATCH_LIMIT.frames);
port.on('message', (message: { id: number; request: unknown }[] | { stop: 'crash' | 'close' }) => {
  if (Array.isArray(message)) {
    for (const { id, request } of message) void member.handle(request).then((response) => answer({ id, response }));
    return;
  }
  // Stopping (WorkerTransport#stop): parked from here, between two tasks, so that no call into
  // lmdb is cut in two when the parent terminates this thread. A crash forgets what is only in
  // memory; a close lets the store finish writing and close first.
  if (message.stop === 'crash') park();
  else void member.close().finally(park);
});
port.postMessage({ ready: true });

/** Tells the parent that this thread is parked, and blocks it until the parent terminates it. */
function park(): never {
  port.postMessage({ parked: true });
  for (;;) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
}
