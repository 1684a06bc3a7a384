/**
 * How cost grows with the number of token keys (10, 100, 1,000, 10,000, 100,000; BENCH_CURVE_MAX
 * lowers the last), on one durable in-process member of the `unlimited` profile (past CloudHSM's
 * quotas): memory per key (what the keys made since the size before add to the heap; member and
 * client share the process here, and the client holds nothing for a token key it has no CryptoKey
 * of), what a client holds for each key it keeps a CryptoKey of, findKeys with a filter, login, starting the member again from
 * its folder, taking a backup and making a cluster from it, a new member joining, and the audit
 * log's size and verification; for the start, the backup and the join, also the longest the event
 * loop was held meanwhile (an in-process member shares the application's thread). Then latency
 * percentiles of ECDSA P-256 signatures as concurrent callers rise from 1 to 1,024, each level
 * warmed up first.
 *
 * Each figure is one measurement at each size (the median of several where a call is short);
 * anything growing faster than the key count is a bug to fix or a limit to document.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { startLocalCluster, type HsmSession, type LocalCluster } from '../src/index.js';
import { verifyAuditChain, type AuditRecord } from '../src/hsm-core/index.js';
import { installationKeys } from '../src/cluster-client/index.js';
import { median } from './measure.js';
import { progress, table } from './report.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const ADMIN = { password: 'bench-admin-password' };
const USER = { username: 'bench', password: 'bench-password', role: 'crypto-user' as const };

async function timed(work: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await work();
  return performance.now() - t;
}

/**
 * How long `work` takes, and the longest the event loop was held meanwhile: the greatest delay of a
 * 10 ms timer (monitorEventLoopDelay), so within 10 ms, and light enough not to slow the work.
 */
async function timedWithHold(work: () => Promise<unknown>): Promise<{ ms: number; holdMs: number }> {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  try {
    const ms = await timed(work);
    return { ms, holdMs: delay.max / 1e6 };
  } finally {
    delay.disable();
  }
}

/** The heap in use after a full collection (twice: weak references die in the first). */
function heapUsed(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

function folderBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? folderBytes(path) : statSync(path).size;
  }
  return total;
}

async function auditRecords(session: HsmSession): Promise<AuditRecord[]> {
  const records: AuditRecord[] = [];
  for (;;) {
    const page = await session.send({ op: 'getAuditLog', fromSequence: records.length, maxItems: 10_000 });
    records.push(...page.records);
    if (page.records.length === 0 || records.length > page.head.sequence) return records;
  }
}

/**
 * What a client's heap holds for each key it keeps a CryptoKey of: a CryptoKey opened by handle
 * (`keyFromHandle`, 64 in flight) for every key in `handles`, all held at once, and the array
 * that holds them.
 */
async function heldCryptoKeyBytes(user: HsmSession, handles: Float64Array): Promise<number> {
  const before = heapUsed();
  const keys: unknown[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < handles.length) {
        const i = next++;
        keys[i] = await user.crypto.keyFromHandle(handles[i]!, { name: 'AES-GCM' });
      }
    }),
  );
  const bytes = (heapUsed() - before) / handles.length;
  if (keys.length !== handles.length) throw new Error(`${keys.length} CryptoKeys for ${handles.length} keys`);
  return bytes;
}

export async function benchCurves(): Promise<void> {
  const max = Number(process.env.BENCH_CURVE_MAX ?? 100_000);
  const sizes = [10, 100, 1_000, 10_000, 100_000].filter((n) => n <= max);
  const root = mkdtempSync(join(tmpdir(), 'strongroom-bench-curves-'));
  const dataDir = join(root, 'cluster');
  const start = () => startLocalCluster({ dataDir, adminPassword: ADMIN.password, profile: 'unlimited', passwordCost: 10, users: [USER] });
  let cluster: LocalCluster = await start();
  let user = await cluster.login(USER.username, USER.password);
  // The keys' handles, outside the heap (a typed array's bytes are not in it), so as not to count them as the member's.
  const handles = new Float64Array(max);
  // The heap with a member of no token keys, logged in to: what a member started from a folder
  // of N keys holds beyond it is what its keys take, as a long-running member restarted holds them.
  const empty = heapUsed();
  let made = 0;
  const rows: string[][] = [];
  try {
    for (const size of sizes) {
      progress('curves', `${size} token keys: making them`);
      // Memory per key is what the keys made in this step add: the heap before them is that of a
      // member started from the folder with the keys of the steps before (so it holds what a
      // running member holds), not of the first, empty one.
      const baseline = heapUsed();
      // 64 in flight; labels key-<n>, so a filter finds exactly one.
      let next = made;
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          while (next < size) {
            const n = next++;
            handles[n] = (await user.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 16, attributes: { token: true, label: `key-${n}`, encrypt: true } })).handle;
          }
        }),
      );
      const bytesPerKey = (heapUsed() - baseline) / (size - made);
      made = size;
      progress('curves', `${size} token keys: measuring`);
      let probe = 0;
      const find = median(await sequential(9, () => timed(() => user.send({ op: 'findKeys', filter: { attributes: { label: `key-${(probe++ * 7919) % size}` } } }))));
      const login = median(await sequential(5, () => timed(async () => (await cluster.login(USER.username, USER.password)).logout())));
      progress('curves', `${size} token keys: a CryptoKey of each`);
      const cryptoKeyBytes = await heldCryptoKeyBytes(user, handles.subarray(0, size));
      // Start again from the folder: every key read and checked. The closed cluster's keys are
      // collected first, as a process starting afresh has none to collect meanwhile.
      await user.logout();
      await cluster.close();
      gc();
      const starting = await timedWithHold(async () => (cluster = await start()));
      user = await cluster.login(USER.username, USER.password);
      const startedBytesPerKey = (heapUsed() - empty) / size;
      let backupId = '';
      const backup = await timedWithHold(async () => (backupId = (await cluster.takeBackup()).backupId));
      const restoreDir = join(root, `restored-${size}`);
      const restoreMs = await timed(async () => {
        // Another cluster of the same installation (its backup keys), as the control plane makes one.
        const restored = await startLocalCluster({ dataDir: restoreDir, fromBackup: { dir: cluster.backupStore!.dir, backupId }, installationKeys: installationKeys(dataDir, undefined), profile: 'unlimited', passwordCost: 10 });
        await restored.close();
      });
      rmSync(restoreDir, { recursive: true, force: true });
      const joining = await timedWithHold(() => cluster.addMember());
      await cluster.removeMember(cluster.cluster.size - 1);
      const admin = await cluster.login('admin', ADMIN.password);
      let records: AuditRecord[] = [];
      const verifyMs = await timed(async () => {
        records = await auditRecords(admin);
        const verdict = verifyAuditChain(records);
        if (!verdict.ok) throw new Error(`audit chain broken at ${verdict.sequence}: ${verdict.reason}`);
      });
      await admin.logout();
      const auditBytes = Buffer.byteLength(JSON.stringify(records));
      const folder = folderBytes(join(dataDir, 'member-0'));
      rows.push([
        String(size),
        bytesPerKey.toFixed(0),
        startedBytesPerKey.toFixed(0),
        cryptoKeyBytes.toFixed(0),
        (folder / size).toFixed(0),
        find.toFixed(2),
        login.toFixed(1),
        starting.ms.toFixed(0),
        starting.holdMs.toFixed(0),
        backup.ms.toFixed(0),
        backup.holdMs.toFixed(0),
        restoreMs.toFixed(0),
        joining.ms.toFixed(0),
        joining.holdMs.toFixed(0),
        String(records.length),
        (auditBytes / 1024).toFixed(0),
        verifyMs.toFixed(0),
      ]);
    }
    console.log('\nHow cost grows with token keys (one durable in-process member, unlimited profile; AES keys made 64 at a time):\n');
    table(
      ['token keys', 'heap bytes/key', 'heap bytes/key after a start', 'client heap bytes/CryptoKey', 'folder bytes/key', 'findKeys by label ms', 'login ms', 'start from folder ms', 'start: longest hold ms', 'backup ms', 'backup: longest hold ms', 'cluster from backup ms', 'member join ms', 'join: longest hold ms', 'audit records', 'audit KiB', 'audit read + verify ms'],
      rows,
      { id: 'curves', title: 'How cost grows with the number of token keys' },
    );
    await user.logout();
    await cluster.close();
    await latencies();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

async function sequential(n: number, work: () => Promise<number>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await work());
  return out;
}

/** p50 and p99 of ECDSA P-256 signing latency as concurrent callers rise. */
async function latencies(): Promise<void> {
  const cluster = await startLocalCluster({ adminPassword: ADMIN.password, passwordCost: 10, users: [USER] });
  const user = await cluster.login(USER.username, USER.password);
  const { privateHandle } = await user.send({ op: 'generateKeyPair', keyType: 'ec', curve: 'secp256r1', privateAttributes: { sign: true } });
  const data = new Uint8Array(1024);
  const rows: string[][] = [];
  const levels = [1, 4, 16, 64, 256, 1024];
  // `callers` callers making `total` signatures between them; the time each took.
  const run = async (callers: number, total: number) => {
    const samples: number[] = [];
    const perCaller = Math.max(4, Math.ceil(total / callers));
    await Promise.all(
      Array.from({ length: callers }, async () => {
        for (let i = 0; i < perCaller; i++) {
          const s = performance.now();
          await user.send({ op: 'sign', handle: privateHandle, mechanism: { name: 'ecdsa', hash: 'sha256' }, data });
          samples.push(performance.now() - s);
        }
      }),
    );
    return samples;
  };
  for (const callers of levels) {
    progress('curves', `sign latency, ${callers} concurrent callers`);
    // Each level warmed up first at its own concurrency (its first signatures are the pool's and
    // the JIT's first at it: with 4 callers, a p99 of 1.35 ms cold against 0.26 warm), then
    // 16,384 signatures, so that one pause of the process is not the p99 by itself.
    await run(callers, 1024);
    const t = performance.now();
    const samples = await run(callers, 16_384);
    const rate = samples.length / ((performance.now() - t) / 1000);
    samples.sort((a, b) => a - b);
    const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!;
    rows.push([String(callers), String(samples.length), at(0.5).toFixed(2), at(0.99).toFixed(2), rate.toFixed(0)]);
  }
  console.log('\nECDSA P-256 sign latency under concurrent callers (one in-process member, session requests):\n');
  table(['callers', 'signatures', 'p50 ms', 'p99 ms', 'signatures/s'], rows, { id: 'latency', title: 'Sign latency under concurrent callers' });
  await user.logout();
  await cluster.close();
}
