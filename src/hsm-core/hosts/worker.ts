/**
 * A member in a `worker_threads` worker: one member per worker, its keys in the worker's heap
 * only. The parent posts arrays of `{ id, request }` (the requests of one tick); the worker
 * answers with arrays of `{ id, response }` (those finished in one tick, at most
 * {@link BATCH_LIMIT}`.frames` to a message, as over TLS: the parent starts on the first answers
 * while the member makes the rest) — structured clone: byte arrays are copied, never shared. It
 * posts `{ ready: true }` once the member exists.
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
port.on('message', (batch: { id: number; request: unknown }[]) => {
  for (const { id, request } of batch) void member.handle(request).then((response) => answer({ id, response }));
});
port.postMessage({ ready: true });
