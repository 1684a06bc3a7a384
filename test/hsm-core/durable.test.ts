/**
 * Files that must outlive a crash of the machine: each is written beside its place, flushed,
 * renamed into place, and its folder flushed after (hsm-core/durable.ts). A power cut cannot be
 * made here, so these tests watch the file system calls that make the difference: without the
 * flushes, or with the file written in place, they fail.
 */
import fs, { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { expect } from 'chai';
import { cloneClusterIdentity, createMember, ensureClusterCsr, truncateFileDurably, writeFileDurably, writeFileDurablyAsync } from '../../src/hsm-core/index.js';
import { startLocalCluster } from '../../src/index.js';
import { SideStore, completeObject } from '../../src/pkcs11/side-store.js';
import { CKA, CKO } from '../../src/pkcs11/constants.js';
import { configure } from '../../src/cli/cli-context.js';
import { up } from '../../src/cli/up.js';
import { openDemoCa } from '../../src/relay/index.js';
import { installationKeys } from '../../src/cluster-client/installation.js';
import { BackupStore } from '../../src/cluster-client/backups.js';
import { prepareTlsCluster } from '../../src/cluster-client/local-tls.js';
import { TrustAnchor } from '../../src/cluster-client/tls.js';
import { ControlPlane } from '../../src/control-plane/service.js';
import { folderCredentials } from '../../src/control-plane/sigv4.js';
import { AuditLogExporter } from '../../src/control-plane/audit-logs.js';
import { PASSWORDS } from '../helpers/member.js';
import { rejection } from '../helpers/refusal.js';
import { waitUntil } from '../helpers/wait.js';

type Event = { call: 'fsync'; path: string } | { call: 'rename'; from: string; to: string } | { call: 'truncate'; path: string; length: number };

/**
 * The fsyncs and truncations (by the path their descriptor or file handle was opened with) and
 * renames that `work` makes, through node:fs and node:fs/promises.
 */
async function watchFileSystem(work: () => unknown): Promise<Event[]> {
  const events: Event[] = [];
  const paths = new Map<number, string>();
  const { openSync, fsyncSync, renameSync, ftruncateSync } = fs;
  const { open, rename } = fs.promises;
  fs.promises.open = (async (path: fs.PathLike, ...rest: unknown[]) => {
    const handle = await (open as (...a: unknown[]) => Promise<fs.promises.FileHandle>)(path, ...rest);
    const sync = handle.sync.bind(handle);
    handle.sync = () => {
      events.push({ call: 'fsync', path: resolve(String(path)) });
      return sync();
    };
    return handle;
  }) as typeof fs.promises.open;
  fs.promises.rename = (from: fs.PathLike, to: fs.PathLike) => {
    events.push({ call: 'rename', from: resolve(String(from)), to: resolve(String(to)) });
    return rename(from, to);
  };
  fs.openSync = ((path: fs.PathLike, ...rest: unknown[]) => {
    const fd = (openSync as (...a: unknown[]) => number)(path, ...rest);
    paths.set(fd, resolve(String(path)));
    return fd;
  }) as typeof fs.openSync;
  fs.fsyncSync = (fd: number) => {
    events.push({ call: 'fsync', path: paths.get(fd) ?? `fd ${fd}` });
    fsyncSync(fd);
  };
  fs.ftruncateSync = (fd: number, length?: number) => {
    events.push({ call: 'truncate', path: paths.get(fd) ?? `fd ${fd}`, length: length ?? 0 });
    ftruncateSync(fd, length);
  };
  fs.renameSync = (from: fs.PathLike, to: fs.PathLike) => {
    events.push({ call: 'rename', from: resolve(String(from)), to: resolve(String(to)) });
    renameSync(from, to);
  };
  syncBuiltinESMExports();
  try {
    await work();
  } finally {
    Object.assign(fs, { openSync, fsyncSync, renameSync, ftruncateSync });
    Object.assign(fs.promises, { open, rename });
    syncBuiltinESMExports();
  }
  return events;
}

/**
 * Whether `file` was written durably among `events`: renamed into place from a file flushed before
 * the rename, and its folder flushed after. Says what is missing otherwise.
 */
function howWritten(events: Event[], file: string): string {
  const target = resolve(file);
  const at = events.findIndex((e) => e.call === 'rename' && e.to === target);
  if (at < 0) return `${file}: not renamed into place`;
  const { from } = events[at] as { from: string };
  if (!events.slice(0, at).some((e) => e.call === 'fsync' && e.path === from)) return `${file}: not flushed before its rename`;
  if (!events.slice(at + 1).some((e) => e.call === 'fsync' && e.path === dirname(target))) return `${file}: its folder not flushed after the rename`;
  return 'durably';
}

describe('hsm-core: files written durably', function () {
  this.timeout(60_000);
  const dirs: string[] = [];
  const tmp = () => {
    const dir = mkdtempSync(join(tmpdir(), 'strongroom-durable-'));
    dirs.push(dir);
    return dir;
  };
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('writes aside, flushes, renames into place and flushes the folder; a new file is 0600; nothing is left beside it', async () => {
    const dir = tmp();
    const file = join(dir, 'settings.json');
    const events = await watchFileSystem(() => writeFileDurably(file, '{"a":1}\n'));
    expect(howWritten(events, file)).to.equal('durably');
    expect(readFileSync(file, 'utf8')).to.equal('{"a":1}\n');
    expect(statSync(file).mode & 0o777).to.equal(0o600);
    expect(readdirSync(dir)).to.deep.equal(['settings.json']);
  });

  it('cuts a file to a length and flushes it before returning', async () => {
    const file = join(tmp(), 'stream.jsonl');
    writeFileSync(file, '{"a":1}\n{"a":');
    const events = await watchFileSystem(() => truncateFileDurably(file, 8));
    expect(events).to.deep.equal([
      { call: 'truncate', path: resolve(file), length: 8 },
      { call: 'fsync', path: resolve(file) },
    ]);
    expect(readFileSync(file, 'utf8')).to.equal('{"a":1}\n');
  });

  it('leaves the file as it was, and nothing beside it, when the write fails', async () => {
    const dir = tmp();
    const file = join(dir, 'settings.json');
    writeFileSync(file, 'old');
    const { writeSync } = fs;
    fs.writeSync = (() => {
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    }) as typeof fs.writeSync;
    syncBuiltinESMExports();
    try {
      expect(() => writeFileDurably(file, 'new')).to.throw('ENOSPC');
    } finally {
      fs.writeSync = writeSync;
      syncBuiltinESMExports();
    }
    expect(readFileSync(file, 'utf8')).to.equal('old');
    expect(readdirSync(dir)).to.deep.equal(['settings.json']);
  });

  it('writes off the event loop the same way (writeFileDurablyAsync), and leaves the file as it was when that fails', async () => {
    const dir = tmp();
    const file = join(dir, 'big.backup');
    const events = await watchFileSystem(() => writeFileDurablyAsync(file, Buffer.from('new')));
    expect(howWritten(events, file)).to.equal('durably');
    expect(statSync(file).mode & 0o777).to.equal(0o600);
    writeFileSync(file, 'old');
    const { rename } = fs.promises;
    fs.promises.rename = () => Promise.reject(Object.assign(new Error('EIO: i/o error, rename'), { code: 'EIO' }));
    try {
      expect(((await rejection(writeFileDurablyAsync(file, Buffer.from('newer')))) as NodeJS.ErrnoException).code).to.equal('EIO');
    } finally {
      fs.promises.rename = rename;
    }
    expect(readFileSync(file, 'utf8')).to.equal('old');
    expect(readdirSync(dir)).to.deep.equal(['big.backup']);
  });

  it("a new member's storage key, with or without a passphrase, and the member's folder in its parent", async () => {
    for (const passphrase of [undefined, 'a long passphrase']) {
      const dataDir = join(tmp(), 'member');
      const events = await watchFileSystem(async () => {
        const m = await createMember({ dataDir, passwordCost: 10, appliancePassword: PASSWORDS.app_user, ...(passphrase ? { passphrase } : {}) });
        await m.close();
      });
      const keyFile = join(dataDir, passphrase ? 'storage-key.json' : 'storage-key');
      expect(howWritten(events, keyFile)).to.equal('durably');
      expect(events.some((e) => e.call === 'fsync' && e.path === dirname(resolve(dataDir)))).to.equal(true, 'the parent folder flushed');
    }
  });

  it("a member's TLS key and CSR, made or cloned into another member's folder", async () => {
    const first = join(tmp(), 'member-0');
    const made = await watchFileSystem(() => ensureClusterCsr(first, 'member-0'));
    expect(howWritten(made, join(first, 'member.key'))).to.equal('durably');
    expect(howWritten(made, join(first, 'member.csr'))).to.equal('durably');
    expect(statSync(join(first, 'member.key')).mode & 0o777).to.equal(0o600);
    writeFileSync(join(first, 'member.crt'), 'certificate');
    const second = join(tmp(), 'member-1');
    const cloned = await watchFileSystem(() => cloneClusterIdentity(first, second));
    for (const f of ['member.key', 'member.csr', 'member.crt']) {
      expect(howWritten(cloned, join(second, f))).to.equal('durably');
      expect(readFileSync(join(second, f))).to.deep.equal(readFileSync(join(first, f)));
    }
    expect(statSync(join(second, 'member.key')).mode & 0o777).to.equal(0o600);
  });

  it('a backup and its record, and a copy of it in another store', async () => {
    const cluster = await startLocalCluster({ adminPassword: PASSWORDS.admin, passwordCost: 10, backups: { dir: tmp() } });
    try {
      let backupId = '';
      const events = await watchFileSystem(async () => (backupId = (await cluster.takeBackup()).backupId));
      const dir = cluster.backupStore!.dir;
      expect(howWritten(events, join(dir, `${backupId}.backup`))).to.equal('durably');
      expect(howWritten(events, join(dir, `${backupId}.json`))).to.equal('durably');
      // A copy to another region's store (CopyBackupToRegion, strongroom backup copy-to-region).
      const region = new BackupStore(tmp(), { region: 'eu-west-1' });
      let copyId = '';
      const copied = await watchFileSystem(async () => (copyId = (await cluster.backupStore!.copyTo(backupId, region)).backupId));
      expect(howWritten(copied, join(region.dir, `${copyId}.backup`))).to.equal('durably');
      expect(howWritten(copied, join(region.dir, `${copyId}.json`))).to.equal('durably');
    } finally {
      await cluster.close();
    }
  });

  it("strongroom up's cluster.json (here made from a backup, which runs no sample)", async () => {
    const source = join(tmp(), 'source');
    const cluster = await startLocalCluster({ adminPassword: PASSWORDS.admin, passwordCost: 10, dataDir: source });
    let backupId: string;
    const dir = cluster.backupStore!.dir;
    try {
      backupId = (await cluster.takeBackup()).backupId;
    } finally {
      await cluster.close();
    }
    // The same installation (its service and manufacturer keys), as CloudHSM restores only onto its own HSMs.
    const dataDir = join(tmp(), 'up');
    fs.mkdirSync(dataDir);
    for (const file of ['service.key', 'manufacturer.key']) fs.copyFileSync(join(source, file), join(dataDir, file));
    const lines: string[] = [];
    const events = await watchFileSystem(() => up({ profile: 'cloudhsm', members: 1, transport: 'tls', dataDir, once: true, fromBackup: { dir, backupId }, passwordCost: 10, log: (l) => lines.push(l) }));
    expect(lines).to.include('Stopped (--once).');
    expect(howWritten(events, join(dataDir, 'cluster.json'))).to.equal('durably');
    expect(JSON.parse(readFileSync(join(dataDir, 'cluster.json'), 'utf8')).members).to.have.length(1);
  });

  it("the CLI's settings (strongroom configure)", async () => {
    const dir = tmp();
    const ca = join(dir, 'customerCA.crt');
    for (const f of [ca, join(dir, 'client.crt'), join(dir, 'client.key')]) writeFileSync(f, 'pem');
    const path = join(dir, 'config', 'strongroom.json');
    const events = await watchFileSystem(() => configure(path, { id: 'cluster-1', cluster: '127.0.0.1:2223', ca }));
    expect(howWritten(events, path)).to.equal('durably');
    expect(JSON.parse(readFileSync(path, 'utf8')).clusters[0].id).to.equal('cluster-1');
  });

  it("the demo CA's certificate (strongroom up)", async () => {
    const cluster = await startLocalCluster({ adminPassword: PASSWORDS.admin, passwordCost: 10, users: [{ username: 'demo_ca', password: PASSWORDS.alice, role: 'crypto-user' }] });
    try {
      const session = await cluster.login('demo_ca', PASSWORDS.alice);
      const certFile = join(tmp(), 'demo-ca.crt');
      const events = await watchFileSystem(() => openDemoCa(session, certFile));
      expect(howWritten(events, certFile)).to.equal('durably');
      expect(readFileSync(certFile, 'utf8')).to.match(/^-----BEGIN CERTIFICATE-----/);
      await session.logout();
    } finally {
      await cluster.close();
    }
  });

  it("a cluster folder's installation keys (the backups' keys), with or without a passphrase", async () => {
    const plain = tmp();
    const made = await watchFileSystem(() => installationKeys(plain, undefined));
    for (const f of ['service.key', 'manufacturer.key']) expect(howWritten(made, join(plain, f))).to.equal('durably');
    const wrapped = tmp();
    const madeWrapped = await watchFileSystem(() => installationKeys(wrapped, 'a long passphrase'));
    expect(howWritten(madeWrapped, join(wrapped, 'installation-keys.json'))).to.equal('durably');
  });

  it("a local TLS cluster's trust anchor, client certificates and members' certificates", async () => {
    const dir = tmp();
    const events = await watchFileSystem(() => prepareTlsCluster(dir, 1));
    for (const f of ['customerCA.key', 'customerCA.crt', 'client.key', 'client.crt', 'appliance.key', 'appliance.crt', 'member-0/member.crt', 'member-0/customerCA.crt']) {
      expect(howWritten(events, join(dir, f))).to.equal('durably');
    }
  });

  it("a cluster certificate installed on a local TLS cluster (InitializeCluster)", async () => {
    const dataDir = tmp();
    const cluster = await startLocalCluster({ dataDir, transport: 'tls', members: 1, adminPassword: PASSWORDS.admin, passwordCost: 10 });
    try {
      const customer = await TrustAnchor.openOrCreate(tmp(), 'a customer trust anchor');
      const certificate = await customer.signClusterCsr(readFileSync(join(dataDir, 'member-0', 'member.csr'), 'utf8'));
      const events = await watchFileSystem(() => cluster.installClusterCertificate(certificate, customer.pem));
      for (const f of ['member-0/member.crt', 'trustAnchor.crt', 'clusterCertificate.crt']) expect(howWritten(events, join(dataDir, f))).to.equal('durably');
    } finally {
      await cluster.close();
    }
  });

  it("the control plane's records, development credentials and a cluster's cluster.json", async () => {
    const dataDir = join(tmp(), 'plane');
    let plane: ControlPlane | undefined;
    const made = await watchFileSystem(() => {
      plane = new ControlPlane({ dataDir, passwordCost: 10 });
      folderCredentials(dataDir);
    });
    expect(howWritten(made, join(dataDir, 'credentials.json'))).to.equal('durably');
    try {
      const caller = { accessKeyId: 'AKIATEST', region: 'us-east-1' };
      let cluster: { ClusterId: string; SubnetMapping: Record<string, string> } | undefined;
      const created = await watchFileSystem(async () => ({ Cluster: cluster } = (await plane!.CreateCluster(caller, { HsmType: 'hsm2m.medium', SubnetIds: ['subnet-0a1b2c3d4e5f60718'] })) as { Cluster: typeof cluster }));
      expect(howWritten(created, join(dataDir, 'control-plane.json'))).to.equal('durably');
      const id = cluster!.ClusterId;
      type Described = { State: string; Hsms: { State: string }[] };
      const described = async () => ((await plane!.DescribeClusters(caller, {})) as { Clusters: (Described & { ClusterId: string })[] }).Clusters.find((c) => c.ClusterId === id)!;
      await waitUntil(async () => (await described()).State === 'UNINITIALIZED', 'the cluster to be UNINITIALIZED');
      const hsmMade = await watchFileSystem(async () => {
        await plane!.CreateHsm(caller, { ClusterId: id, AvailabilityZone: Object.keys(cluster!.SubnetMapping)[0] });
        await waitUntil(async () => (await described()).Hsms[0]?.State === 'ACTIVE', 'its first HSM to be ACTIVE');
      });
      expect(howWritten(hsmMade, join(plane!.clusterDir(id), 'cluster.json'))).to.equal('durably');
    } finally {
      await plane!.close();
    }
  });

  it('the audit export: events flushed before the position that counts them; a position cut short by a crash is read past, not refused', async () => {
    const cluster = await startLocalCluster({ adminPassword: PASSWORDS.admin, passwordCost: 10 });
    try {
      const folder = tmp();
      const streams = () => [{ clusterId: 'cluster-1', hsmId: 'hsm-1', member: 0, live: cluster }];
      const exporter = new AuditLogExporter(folder);
      const file = exporter.streamFile('cluster-1', 'hsm-1');
      const events = await watchFileSystem(() => exporter.export(streams));
      const flushed = events.findIndex((e) => e.call === 'fsync' && e.path === file);
      const position = events.findIndex((e) => e.call === 'rename' && e.to === `${file}.position`);
      expect(flushed).to.be.at.least(0);
      expect(position).to.be.above(flushed);
      expect(howWritten(events, `${file}.position`)).to.equal('durably');
      const sequences = () => readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => /Sequence No : (0x[0-9a-f]+)/.exec(JSON.parse(l).message)![1]);
      const first = sequences();
      // An earlier version wrote the position in place: a crash could leave it empty.
      writeFileSync(`${file}.position`, '');
      const admin = await cluster.login('admin', PASSWORDS.admin);
      await admin.logout();
      await new AuditLogExporter(folder).export(streams);
      const after = sequences();
      expect(after.slice(0, first.length)).to.deep.equal(first);
      expect(after.length).to.be.above(first.length);
      expect(new Set(after).size).to.equal(after.length);
    } finally {
      await cluster.close();
    }
  });

  it('the audit export after a crash during an append, or between an append and its position: no event twice, no half event', async () => {
    const cluster = await startLocalCluster({ adminPassword: PASSWORDS.admin, passwordCost: 10 });
    try {
      const folder = tmp();
      const streams = () => [{ clusterId: 'cluster-1', hsmId: 'hsm-1', member: 0, live: cluster }];
      const file = new AuditLogExporter(folder).streamFile('cluster-1', 'hsm-1');
      /** Exports with a new exporter (a restarted control plane); the stream's sequence numbers after. */
      const exportAfterRestart = async () => {
        const admin = await cluster.login('admin', PASSWORDS.admin);
        await admin.logout();
        await new AuditLogExporter(folder).export(streams);
        return readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => parseInt(/Sequence No : 0x([0-9a-f]+)/.exec(JSON.parse(l).message)![1]!, 16));
      };
      const whole = (sequences: number[]) => expect(sequences).to.deep.equal(sequences.map((_, i) => i));
      whole(await exportAfterRestart());
      const firstPosition = readFileSync(`${file}.position`, 'utf8');
      const firstLength = statSync(file).size;
      whole(await exportAfterRestart());

      // The second pass's events reached the disk, its position did not.
      writeFileSync(`${file}.position`, firstPosition);
      expect(statSync(file).size).to.be.above(firstLength);
      whole(await exportAfterRestart());

      // The machine stopped in the middle of an append.
      const lastLine = readFileSync(file, 'utf8').trimEnd().split('\n').at(-1)!;
      fs.appendFileSync(file, lastLine.slice(0, lastLine.length >> 1));
      whole(await exportAfterRestart());

      // The same with a position from an earlier version (no length), and with none at all.
      const { next, lastHash } = JSON.parse(firstPosition) as { next: number; lastHash: string };
      writeFileSync(`${file}.position`, JSON.stringify({ next, lastHash }));
      fs.appendFileSync(file, lastLine.slice(0, 20));
      whole(await exportAfterRestart());
      rmSync(`${file}.position`);
      fs.appendFileSync(file, lastLine.slice(0, 20));
      whole(await exportAfterRestart());
    } finally {
      await cluster.close();
    }
  });

  it("the PKCS #11 door's objects beside the keys", async () => {
    const folder = tmp();
    const store = new SideStore(folder, 'cluster-1', 'alice');
    const { attributes } = completeObject([{ type: CKA.CLASS, value: { ulong: BigInt(CKO.DATA) }, length: 8 }]);
    const events = await watchFileSystem(() => store.add({ handle: store.nextHandle([]), token: true, attributes }));
    expect(howWritten(events, join(folder, 'cluster-1--alice.json'))).to.equal('durably');
    expect(new SideStore(folder, 'cluster-1', 'alice').objects).to.have.length(1);
  });
});
