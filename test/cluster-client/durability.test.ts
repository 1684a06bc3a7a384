/**
 * Nothing acknowledged is lost, and the cluster converges (issue 15): a key a member made but could
 * not copy before it failed reaches every member when it returns; a whole-cluster crash and restart
 * keeps every member's newer objects (keys, shares, passwords, deletions) instead of taking one
 * member's state as the reference; members that missed a copy while up are brought in line by the
 * supervisor; and under random member failures, each acknowledged creation is on every member
 * afterwards, with every audit chain intact.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { startLocalCluster, verifyAuditChain, type HsmSession, type LocalCluster, type LocalClusterOptions } from '../../src/index.js';
import { refusal } from '../helpers/refusal.js';
import { prng, testSeed } from '../helpers/random.js';
import { waitUntil } from '../helpers/wait.js';

const USERS = [
  { username: 'alice', password: 'alice-password', role: 'crypto-user' as const },
  { username: 'bob', password: 'bob-password', role: 'crypto-user' as const },
  { username: 'carol', password: 'carol-password', role: 'crypto-user' as const },
];

/** Whether member `i` holds `handle` (through a session that can see it). */
async function holds(session: HsmSession, i: number, handle: number): Promise<boolean> {
  try {
    await session.sendToMember(i, { op: 'getAttributes', handle });
    return true;
  } catch (e) {
    if ((e as { code?: string }).code === 'KEY_NOT_FOUND') return false;
    throw e;
  }
}

/** Every member's audit chain verifies, from its first record to its last. */
async function auditChainsVerify(cluster: LocalCluster, members: number): Promise<void> {
  const admin = await cluster.login('admin', 'admin-password');
  try {
    for (let i = 0; i < members; i++) {
      const records = [];
      for (let from = 0; ; ) {
        const page = await admin.sendToMember(i, { op: 'getAuditLog', fromSequence: from, maxItems: 10_000 });
        records.push(...page.records);
        if (page.records.length < 10_000) break;
        from += 10_000;
      }
      expect(verifyAuditChain(records), `member ${i}'s audit chain`).to.deep.include({ ok: true });
    }
  } finally {
    await admin.logout();
  }
}

describe('cluster-client: nothing acknowledged is lost, and members converge', function () {
  this.timeout(90_000);
  let dir: string;
  let cluster: LocalCluster | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'strongroom-durable-'));
  });
  afterEach(async () => {
    await cluster?.close();
    cluster = undefined;
    rmSync(dir, { recursive: true, force: true });
  });
  const start = (extra: Partial<LocalClusterOptions> = {}) =>
    startLocalCluster({ members: 3, dataDir: dir, passwordCost: 10, adminPassword: 'admin-password', users: USERS, syncIntervalMs: 0, ...extra });

  it('a key a member made but could not copy before it failed reaches every member when it returns', async () => {
    cluster = await start();
    const alice = await cluster.login('alice', 'alice-password');
    // Made on member 0 alone: as if it failed before the copies went out.
    const { handle } = await alice.sendToMember(0, { op: 'generateKey', keyType: 'aes', lengthBytes: 32, attributes: { token: true, encrypt: true } });
    cluster.killMember(0);
    await cluster.whenAllUp();
    for (let i = 0; i < 3; i++) expect(await holds(alice, i, handle), `member ${i}`).to.equal(true);
  });

  it('a whole-cluster crash and restart keeps every member\'s newer keys, shares, passwords and deletions', async () => {
    cluster = await start();
    let alice = await cluster.login('alice', 'alice-password');
    const admin = await cluster.login('admin', 'admin-password');
    const make = async () => (await alice.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 32, attributes: { token: true, encrypt: true } })).handle;
    const shared = await make();
    const doomed = await make();
    // Changes each made on one member only (their copies lost in the crash).
    const onlyOn1 = (await alice.sendToMember(1, { op: 'generateKey', keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
    await alice.sendToMember(2, { op: 'shareKey', handle: shared, username: 'bob' });
    await cluster.login('carol', 'carol-password').then((s) => s.logout());
    await admin.sendToMember(2, { op: 'changePassword', username: 'carol', password: 'carol-new-password' });
    await alice.sendToMember(0, { op: 'deleteKey', handle: doomed }); // the last change: member 0 changed last
    // Every member crashes at once; the cluster starts again on the same folder.
    for (let i = 0; i < 3; i++) cluster.killMember(i, { restart: false });
    await cluster.close();
    cluster = await start();
    alice = await cluster.login('alice', 'alice-password');
    const bob = await cluster.login('bob', 'bob-password');
    for (let i = 0; i < 3; i++) {
      expect(await holds(alice, i, onlyOn1), `member ${i} holds the key made on member 1`).to.equal(true);
      expect(await holds(alice, i, doomed), `member ${i} holds the key deleted on member 0`).to.equal(false);
      expect((await bob.sendToMember(i, { op: 'getAttributes', handle: shared })).sharedUsers).to.deep.equal(['bob']);
    }
    const carol = await cluster.login('carol', 'carol-new-password');
    await carol.logout();
    expect((await refusal(cluster.login('carol', 'carol-password'))).code).to.equal('LOGIN_FAILED');
    await auditChainsVerify(cluster, 3);
  });

  it('members that missed a copy while up are brought in line, and until then listKeys says so', async () => {
    cluster = await start();
    const alice = await cluster.login('alice', 'alice-password');
    const { handle } = await alice.sendToMember(2, { op: 'generateKey', keyType: 'aes', lengthBytes: 32, attributes: { token: true, encrypt: true, label: 'missed' } });
    const before = await alice.listKeys({ filter: { attributes: { label: 'missed' } } });
    expect(before.keys.map((k) => k.clusterCoverage)).to.deep.equal(['inconsistent']);
    expect((await cluster.sync()).inSync).to.equal(true);
    for (let i = 0; i < 3; i++) {
      const sealed = await alice.sendToMember(i, { op: 'encrypt', handle, mechanism: { name: 'aes-gcm' }, data: new Uint8Array(4) });
      expect(sealed.iv).to.have.length(12);
    }
    const after = await alice.listKeys({ filter: { attributes: { label: 'missed' } } });
    expect(after.keys.map((k) => k.clusterCoverage)).to.deep.equal(['full']);
  });

  for (const transport of ['worker', 'tls'] as const) {
    const seed = testSeed(0x5eed) + (transport === 'tls' ? 1 : 0);
    it(`chaos (${transport} members): random member failures under load, then a whole-cluster crash; every acknowledged key is on every member (seed ${seed})`, async () => {
      const random = prng(seed);
      cluster = await start({ transport, syncIntervalMs: 300 });
      const acknowledged: number[] = [];
      let stop = false;
      const loop = async (session: HsmSession) => {
        while (!stop) {
          try {
            acknowledged.push((await session.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 16, attributes: { token: true, encrypt: true } })).handle);
          } catch {
            // a refused creation promised nothing
          }
        }
      };
      // And keys made on one member only, as by a member that fails before its copies go out:
      // they are on its disk, and must reach every member too.
      const kept: number[] = [];
      const single = async (session: HsmSession) => {
        while (!stop) {
          try {
            kept.push((await session.sendToMember(Math.floor(random() * 3), { op: 'generateKey', keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle);
          } catch {
            await new Promise((r) => setTimeout(r, 20)); // that member is down
          }
        }
      };
      const sessions = await Promise.all(Array.from({ length: 6 }, () => cluster!.login('alice', 'alice-password')));
      const load = Promise.all([...sessions.map(loop), single(await cluster.login('alice', 'alice-password'))]);
      // Two members fail while keys are being made (after 20 and 40 acknowledged creations), and
      // the load goes on to 60 and 6 single-member keys: counted, not timed, so that a slow
      // machine tests the same thing as a fast one.
      for (const made of [20, 40]) {
        await waitUntil(() => acknowledged.length >= made, `${made} acknowledged creations`, 60_000);
        cluster.killMember(Math.floor(random() * 3));
      }
      await waitUntil(() => acknowledged.length > 60 && kept.length > 5, 'over 60 acknowledged creations and 5 single-member keys', 60_000);
      stop = true;
      await load;
      // Then every member crashes at once, and the cluster starts again on the same folder.
      for (let i = 0; i < 3; i++) cluster.killMember(i, { restart: false });
      await cluster.close();
      cluster = await start({ transport, syncIntervalMs: 300 });
      await cluster.whenAllUp();
      const alice = await cluster.login('alice', 'alice-password');
      // The supervisor brings the members together on its own (every 300 ms here).
      const admin = await cluster.login('admin', 'admin-password');
      await waitUntil(async () => {
        const statuses = await Promise.all([0, 1, 2].map((i) => admin.sendToMember(i, { op: 'getSyncStatus' })));
        const view = (x: (typeof statuses)[number]) => JSON.stringify([x.keys, x.users, x.settings]);
        return statuses.every((x) => view(x) === view(statuses[0]!));
      }, 'every member to agree', 10_000);
      await admin.logout();
      for (let i = 0; i < 3; i++) {
        const { keys } = await alice.sendToMember(i, { op: 'findKeys', maxItems: 10_000 });
        const present = new Set(keys.map((k) => k.handle));
        const lost = acknowledged.filter((h) => !present.has(h));
        expect(lost, `member ${i} lost acknowledged keys`).to.deep.equal([]);
        expect(kept.filter((h) => !present.has(h)), `member ${i} lacks keys made on one member`).to.deep.equal([]);
      }
      await auditChainsVerify(cluster, 3);
    });
  }
});
