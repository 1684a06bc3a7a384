/**
 * A member in a `worker_threads` worker: one member per worker, its keys in the worker's heap
 * only. The parent posts `{ id, request }`; the worker answers `{ id, response }` (structured
 * clone: byte arrays are copied, never shared). It posts `{ ready: true }` once the member
 * exists.
 *
 * Started by the cluster client's WorkerTransport with the member's options as workerData.
 *
 * @module
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createMember, type MemberOptions } from '../member.js';
import { useThreadPool } from '../mechanisms/pool.js';

if (!parentPort) throw new Error('hsm-core/hosts/worker.js runs only as a worker thread');
// This worker is the member's core: sign here rather than on the process's shared thread pool.
useThreadPool(false);
const port = parentPort;
const member = await createMember(workerData as MemberOptions);
port.on('message', (message: { id: number; request: unknown }) => {
  void member.handle(message.request).then((response) => port.postMessage({ id: message.id, response }));
});
port.postMessage({ ready: true });
