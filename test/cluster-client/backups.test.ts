/**
 * Backups and membership (CLOUDHSM.md §4.1, §5): the backup store's states and retention with a
 * controllable clock, copies to another region, backups taken by the cluster, adding and removing
 * members under load, and a new cluster made from a backup.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { startLocalCluster, type LocalCluster } from '../../src/index.js';
import { BackupStore } from '../../src/cluster-client/backups.js';
import { refusal } from '../helpers/refusal.js';
import { waitUntil } from '../helpers/wait.js';

const DAY = 86_400_000;
const data = new TextEncoder().encode('backed up');


describe('cluster-client: backups and membership', function () {
  this.timeout(90_000);
  const dirs: string[] = [];
  const dir = (name: string) => {
    const d = mkdtempSync(join(tmpdir(), `strongroom-${name}-`));
    dirs.push(d);
    return d;
  };
  let cluster: LocalCluster | undefined;
  afterEach(async () => {
    await cluster?.close();
    cluster = undefined;
  });
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  const start = (extra: Partial<Parameters<typeof startLocalCluster>[0]>) =>
    startLocalCluster({
      adminPassword: 'admin-password',
      profile: 'unlimited',
      passwordCost: 10,
      users: [{ username: 'app', password: 'app-password', role: 'crypto-user' }],
      ...extra,
    });

  it('the store: retention sweeps with a clock, the newest backup kept, never-expires, delete and restore within 7 days, copies with no retention', async () => {
    cluster = await start({ dataDir: dir('store'), members: 1 });
    let now = Date.now();
    const store = new BackupStore(cluster.backupStore!.dir, { clock: () => new Date(now) });
    const first = store.list()[0]!;
    expect(first.trigger).to.equal('activation');
    expect(first.state).to.equal('READY');
    const clusterId = first.clusterId!;
    expect(store.retention(clusterId)).to.equal(90);
    expect(() => store.setRetention(clusterId, 6)).to.throw(/retention: 7–379 days, got 6/);
    expect(() => store.setRetention(clusterId, 380)).to.throw(/7–379/);
    store.setRetention(clusterId, 10);

    const original = store.read(first.backupId);
    const bytes = () => original;
    now += 5 * DAY;
    const second = await store.add(bytes(), { trigger: 'periodic' });
    const keep = await store.add(bytes(), { trigger: 'periodic' });
    store.modify(keep.backupId, { neverExpires: true, tags: { purpose: 'audit' } });
    now += 11 * DAY; // the first is 16 days old, the second 11
    const newest = await store.add(bytes(), { trigger: 'periodic' });
    const swept = store.sweep();
    expect(swept.markedForDeletion.sort()).to.deep.equal([first.backupId, second.backupId].sort());
    expect(store.get(keep.backupId).state).to.equal('READY');
    expect(store.get(newest.backupId).state).to.equal('READY');

    // A backup marked for deletion is restorable for 7 days, then it is gone.
    expect(store.restore(second.backupId).state).to.equal('READY');
    expect((await refusal(() => store.read(first.backupId))).message).to.match(/PENDING_DELETION; restore it to READY first/);
    now += 8 * DAY;
    expect(store.sweep().deleted).to.deep.equal([first.backupId]);
    expect(store.get(first.backupId).state).to.equal('DELETED');
    expect((await refusal(() => store.restore(first.backupId))).message).to.match(/is DELETED/);

    // The cluster's last READY backup is never deleted, however old.
    const solo = new BackupStore(dir('solo'), { clock: () => new Date(now) });
    const only = await solo.add(bytes(), { trigger: 'periodic' });
    now += 400 * DAY;
    expect(solo.sweep()).to.deep.equal({ markedForDeletion: [], deleted: [] });
    expect(solo.get(only.backupId).state).to.equal('READY');

    // Delete by hand, restore within the window.
    expect(store.delete(newest.backupId).state).to.equal('PENDING_DELETION');
    now += 3 * DAY;
    expect(store.restore(newest.backupId).state).to.equal('READY');

    // A copy to another region has no cluster and no retention.
    const region = new BackupStore(dir('region'), { region: 'eu-west-1', clock: () => new Date(now) });
    const copy = await store.copyTo(keep.backupId, region);
    expect(copy).to.include({ clusterId: null, sourceBackupId: keep.backupId, sourceRegion: 'local', state: 'READY', trigger: 'copy' });
    now += 1000 * DAY;
    await region.add(bytes(), { trigger: 'periodic' });
    expect(region.sweep().markedForDeletion).to.deep.equal([]);
  });

  it('the store\'s listing follows changes another process makes to the folder (the CLI beside the control plane)', async () => {
    const folder = dir('listing');
    const source = await start({ dataDir: dir('listing-source'), members: 1 });
    try {
      const bytes = source.backupStore!.read(source.backupStore!.list()[0]!.backupId);
      const api = new BackupStore(folder);
      const cli = new BackupStore(folder);
      const made = [await api.add(bytes, { trigger: 'periodic' }), await api.add(bytes, { trigger: 'periodic' })];
      // Listed once the folder has settled, so the listing is kept; then the other store changes one and adds one.
      await waitUntil(() => Date.now() - statSync(folder).mtimeMs > 150, 'the folder to settle');
      expect(api.list().map((b) => b.neverExpires)).to.deep.equal([false, false]);
      cli.modify(made[0]!.backupId, { neverExpires: true });
      const third = await cli.add(bytes, { trigger: 'periodic' });
      expect(api.list().find((b) => b.backupId === made[0]!.backupId)!.neverExpires).to.equal(true);
      expect(api.list().map((b) => b.backupId)).to.include(third.backupId);
      // find and records (the control plane's reads) follow the same changes, by id and newest first.
      expect(api.find(made[0]!.backupId)!.neverExpires).to.equal(true);
      expect(api.find(third.backupId)!.backupId).to.equal(third.backupId);
      expect(api.find('backup-aaaaaaaaaaa')).to.equal(undefined);
      expect(api.records().map((b) => b.backupId)).to.deep.equal(api.list().map((b) => b.backupId));
      expect(api.records()).to.have.length(3);
      // What a caller does to a listed or found record stays with the caller.
      api.list()[0]!.tags.mine = 'yes';
      api.find(third.backupId)!.tags.mine = 'yes';
      expect(api.list()[0]!.tags).to.deep.equal({});
      expect(api.find(third.backupId)!.tags).to.deep.equal({});
    } finally {
      await source.close();
    }
  });

  it('takes a backup periodically, at the configured interval', async () => {
    const started = Date.now();
    cluster = await start({ dataDir: dir('periodic'), members: 1, backups: { intervalMs: 100 } });
    const periodic = () => cluster!.backupStore!.list().filter((b) => b.trigger === 'periodic');
    await waitUntil(() => periodic().length >= 2, 'two periodic backups');
    // At the interval, not all at once: no more than one per 100 ms since the start (a loaded
    // machine only makes them fewer).
    expect(periodic().length).to.be.at.most(Math.floor((Date.now() - started) / 100));
    expect(periodic().every((b) => b.state === 'READY' && b.mode === 'non-fips')).to.equal(true); // the default mode of a local cluster
  });

  it('adds and removes members while the cluster serves traffic, with backups taken, and no request failing', async () => {
    cluster = await start({ dataDir: dir('membership'), members: 2, transport: 'worker' });
    const app = await cluster.login('app', 'app-password');
    const { privateHandle } = await app.send({ op: 'generateKeyPair', keyType: 'ec', curve: 'secp256r1', privateAttributes: { sign: true, token: true } });
    let stop = false;
    let done = 0;
    const failures: string[] = [];
    const load = async () => {
      while (!stop) {
        await app.send({ op: 'sign', handle: privateHandle, mechanism: { name: 'ecdsa', hash: 'sha256' }, data }).then(
          () => (done += 1),
          (e: Error) => failures.push(e.message),
        );
      }
    };
    const workers = Array.from({ length: 16 }, load);

    // A key made after the backup that seeds the new member still reaches it.
    const index = await cluster.addMember();
    expect(index).to.equal(2);
    const { handle: later } = await app.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 32, attributes: { token: true, encrypt: true } });
    expect(cluster.status()[2]!.state).to.equal('up');
    await waitUntil(() => cluster!.status()[2]!.counters.requests > 0, 'the new member to take a share of the load');
    expect((await app.sendToMember(2, { op: 'getAttributes', handle: later })).handle).to.equal(later);
    expect((await app.sendToMember(2, { op: 'getAttributes', handle: privateHandle })).handle).to.equal(privateHandle);

    await cluster.removeMember(0);
    const served = done;
    await waitUntil(() => done > served + 100, 'a hundred more signatures after the removal');
    stop = true;
    await Promise.all(workers);
    expect(failures).to.deep.equal([]);
    expect(done).to.be.greaterThan(100);
    expect(cluster.status().map((s) => s.state)).to.deep.equal(['removed', 'up', 'up']);

    const triggers = cluster.backupStore!.list().map((b) => b.trigger).sort();
    expect(triggers).to.deep.equal(['activation', 'member-added', 'member-removed']);

    // The new member's audit log starts as a new HSM's does, then its restore.
    const admin = await cluster.login('admin', 'admin-password');
    const { records } = await admin.sendToMember(2, { op: 'getAuditLog', maxItems: 10 });
    expect(records.slice(0, 5).map((r) => r.opcode)).to.deep.equal(['CN_INIT_TOKEN', 'CN_GEN_PSWD_ENC_KEY', 'CN_CREATE_APPLIANCE_USER', 'CN_INIT_DONE', 'SR_RESTORE_BACKUP']);
    await admin.logout();
    expect((await refusal(cluster.removeMember(0))).message).to.match(/no such member/);
  });

  it('a new cluster from a backup gets its users and keys, a cluster id of its own, and is independent afterwards', async () => {
    const sourceDir = dir('source');
    cluster = await start({ dataDir: sourceDir, members: 2 });
    const app = await cluster.login('app', 'app-password');
    const { handle } = await app.send({ op: 'generateKey', keyType: 'generic-secret', lengthBytes: 32, attributes: { token: true, sign: true } });
    const tag = (await app.send({ op: 'sign', handle, mechanism: { name: 'hmac', hash: 'sha256' }, data })).signature;
    const backup = await cluster.takeBackup();
    const sourceId = (await cluster.hsmInfo())[0]!.clusterId;

    // Same installation (service key) and manufacturer: the new cluster's folder gets both keys.
    const copyDir = dir('from-backup');
    const { copyFileSync } = await import('node:fs');
    for (const file of ['service.key', 'manufacturer.key']) copyFileSync(join(sourceDir, file), join(copyDir, file));
    const clone = await start({ dataDir: copyDir, members: 2, fromBackup: { dir: cluster.backupStore!.dir, backupId: backup.backupId } });
    try {
      const infos = await clone.hsmInfo();
      expect(infos[0]!.clusterId).to.not.equal(sourceId);
      expect(infos[1]!.clusterId).to.equal(infos[0]!.clusterId);
      const app2 = await clone.login('app', 'app-password');
      for (let i = 0; i < 2; i++) expect((await app2.sendToMember(i, { op: 'sign', handle, mechanism: { name: 'hmac', hash: 'sha256' }, data })).signature).to.deep.equal(tag);
      // Independent: a key made in one does not appear in the other.
      const { handle: mine } = await app2.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 16, attributes: { token: true } });
      expect((await refusal(app.send({ op: 'getAttributes', handle: mine }))).code).to.equal('KEY_NOT_FOUND');
      expect(clone.backupStore!.list()[0]!.clusterId).to.equal(infos[0]!.clusterId);
    } finally {
      await clone.close();
    }

    // Another installation (another service key) cannot restore it.
    const foreign = dir('foreign');
    const e = await refusal(start({ dataDir: foreign, fromBackup: { dir: cluster.backupStore!.dir, backupId: backup.backupId } }));
    expect(e.code).to.equal('BACKUP_INVALID');
  });
});
