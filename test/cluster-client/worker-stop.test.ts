/**
 * How a worker member stops (hosts/worker.ts, WorkerTransport): it is terminated only once it has
 * parked itself between two tasks, never in the middle of one, since a thread stopped inside a
 * call of lmdb's aborts the whole process. A close lets the member close its data folder first;
 * a crash does not.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { expect } from 'chai';
import { startLocalCluster } from '../../src/index.js';
import { workerEntry } from '../../src/cluster-client/transport.js';
import { LOCK_FILE } from '../../src/hsm-core/folder-lock.js';
import { waitUntil } from '../helpers/wait.js';

/** A worker member on `dir`, started as WorkerTransport starts one; every message it posts. */
async function workerMember(dir: string): Promise<{ worker: Worker; messages: unknown[]; exited: Promise<number> }> {
  const { source, eval: isEval } = workerEntry();
  const worker = new Worker(source, { eval: isEval, workerData: { dataDir: dir, passwordCost: 10 } });
  const messages: unknown[] = [];
  worker.on('message', (m) => messages.push(m));
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
  await waitUntil(() => messages.length > 0, 'the worker member to start', 20_000);
  expect(messages).to.deep.equal([{ ready: true }]);
  return { worker, messages, exited };
}

describe('cluster-client: a worker member stops between two of its tasks', function () {
  this.timeout(60_000);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'strongroom-worker-stop-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('on a close, it answers what it was asked, closes its data folder, then parks until it is terminated', async () => {
    const { worker, messages, exited } = await workerMember(dir);
    let exitCode: number | null = null;
    void exited.then((c) => (exitCode = c));
    expect(existsSync(join(dir, LOCK_FILE))).to.equal(true);
    worker.postMessage([{ id: 1, request: { op: 'getHsmInfo' } }]);
    worker.postMessage({ stop: 'close' });
    await waitUntil(() => messages.length === 3, 'the answer and the parked message', 20_000);
    expect((messages[1] as { id: number; response: { ok: boolean } }[]).map((a) => [a.id, a.response.ok])).to.deep.equal([[1, true]]);
    expect(messages[2]).to.deep.equal({ parked: true });
    // Closed: the folder's lock is gone, while the thread is still there, parked.
    expect(existsSync(join(dir, LOCK_FILE))).to.equal(false);
    await new Promise((r) => setImmediate(r));
    expect(exitCode).to.equal(null);
    await worker.terminate();
    expect(await exited).to.equal(1);
  });

  it('on a crash, it parks at once and leaves its data folder as a crash would (still locked, to be taken over)', async () => {
    const { worker, messages, exited } = await workerMember(dir);
    worker.postMessage({ stop: 'crash' });
    await waitUntil(() => messages.length === 2, 'the parked message', 20_000);
    expect(messages[1]).to.deep.equal({ parked: true });
    expect(existsSync(join(dir, LOCK_FILE))).to.equal(true);
    await worker.terminate();
    await exited;
  });

  it('killMember and close stop worker members this way, and a killed member comes back on its folder', async () => {
    const cluster = await startLocalCluster({ members: 2, transport: 'worker', dataDir: dir, passwordCost: 10, adminPassword: 'admin-password', users: [{ username: 'alice', password: 'alice-password', role: 'crypto-user' }], syncIntervalMs: 0 });
    try {
      const alice = await cluster.login('alice', 'alice-password');
      const { handle } = await alice.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 16, attributes: { token: true, encrypt: true } });
      cluster.killMember(1);
      await waitUntil(() => cluster.status()[1]!.state !== 'up', 'member 1 to be down', 20_000);
      await cluster.whenAllUp();
      expect((await alice.sendToMember(1, { op: 'getAttributes', handle })).attributes.token).to.equal(true);
    } finally {
      await cluster.close();
    }
    // Closed: no member holds its folder any more.
    for (const member of ['member-0', 'member-1']) {
      expect(existsSync(join(dir, member, 'store')), member).to.equal(true);
      expect(existsSync(join(dir, member, LOCK_FILE)), member).to.equal(false);
    }
  });
});
