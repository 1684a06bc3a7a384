/**
 * Durable members: what survives a restart, what is encrypted at rest, what a member refuses to
 * start from, and a crash test with SIGKILL at random moments.
 */
import type { ChildProcess } from 'node:child_process';
import { constants, createHash, generateKeyPairSync, privateEncrypt } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { open } from 'lmdb';
import { createMember, verifyAuditChain, type Member, type MemberOptions, type Response } from '../../src/hsm-core/index.js';
import { injectStoreFailures } from '../../src/hsm-core/store.js';
import { startCrashMember } from '../helpers/crash-member.js';
import { PASSWORDS, TestMember } from '../helpers/member.js';
import { seeded, testSeed } from '../helpers/random.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'strongroom-store-'));

async function durable(dataDir: string, extra: MemberOptions = {}): Promise<TestMember & { member: Member }> {
  return new TestMember(await createMember({ dataDir, passwordCost: 10, appliancePassword: PASSWORDS.app_user, profile: 'unlimited', ...extra })) as TestMember & { member: Member };
}

async function refusedStart(dataDir: string, extra: MemberOptions = {}): Promise<string> {
  try {
    const m = await durable(dataDir, extra);
    await m.member.close();
  } catch (e) {
    return (e as Error).message;
  }
  return expect.fail('the member should have refused to start');
}

/** Opens a stopped member's store directly, as someone with the folder could, and changes it. */
async function editStore(dir: string, edit: (db: ReturnType<typeof open>) => Promise<unknown>): Promise<void> {
  const db = open({ path: join(dir, 'store'), compression: false });
  try {
    await edit(db);
  } finally {
    await db.close();
  }
}

/** An activated durable member with alice and bob, and alice's token key shared with bob. */
async function populated(dir: string, extra: MemberOptions = {}) {
  const m = await durable(dir, extra);
  await m.ok({ op: 'activateCluster', password: PASSWORDS.admin });
  const admin = await m.login('admin', PASSWORDS.admin);
  await m.ok({ op: 'createUser', session: admin, username: 'alice', password: PASSWORDS.alice, role: 'crypto-user' });
  await m.ok({ op: 'createUser', session: admin, username: 'bob', password: PASSWORDS.bob, role: 'crypto-user' });
  const alice = await m.login('alice', PASSWORDS.alice);
  const token = (await m.ok({ op: 'generateKey', session: alice, keyType: 'aes', lengthBytes: 32, attributes: { token: true, encrypt: true, decrypt: true, label: 'kept', extractable: true, sensitive: false } })).handle;
  await m.ok({ op: 'shareKey', session: alice, handle: token, username: 'bob' });
  const session = (await m.ok({ op: 'generateKey', session: alice, keyType: 'aes', lengthBytes: 16, attributes: { encrypt: true } })).handle;
  return { m, admin, alice, token, session };
}

describe('hsm-core: durable members', function () {
  this.timeout(60_000);
  const dirs: string[] = [];
  const dir = () => {
    const d = tmp();
    dirs.push(d);
    return d;
  };
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('a refused option leaves the folder as it was: nothing written, nothing held open', async () => {
    const d = dir();
    for (const [extra, message] of [
      [{ queueLimit: 0 }, 'queueLimit: a positive integer, got 0'],
      [{ queueLimit: 2.5 }, 'queueLimit: a positive integer, got 2.5'],
      [{ mode: 'lax' }, 'mode: expected fips or non-fips, got "lax"'],
      [{ serviceKey: new Uint8Array(16) }, 'serviceKey: 32 bytes'],
    ] as const) {
      expect(await refusedStart(d, extra as MemberOptions)).to.equal(message);
      expect(readdirSync(d), JSON.stringify(extra)).to.deep.equal([]);
    }
    // Nothing holds the folder: a member with good options starts on it.
    const m = await durable(d);
    expect(await m.login('app_user', PASSWORDS.app_user)).to.be.a('string');
    await m.member.close();
    expect(readdirSync(d)).to.not.deep.equal([]);
  });

  it('keeps token keys, users, shares, cluster id and the audit log across a restart; session keys go', async () => {
    const d = dir();
    const { m, alice, token, session } = await populated(d);
    const before = await m.ok({ op: 'getHsmInfo' });
    const ciphertext = await m.ok({ op: 'encrypt', session: alice, handle: token, mechanism: { name: 'aes-gcm' }, data: new Uint8Array(16) });
    await m.member.close();

    const again = await durable(d);
    const info = await again.ok({ op: 'getHsmInfo' });
    expect(info.clusterId).to.equal(before.clusterId);
    expect(info.serialNumber).to.equal(before.serialNumber);
    expect(info.state).to.equal('active');
    const bob = await again.login('bob', PASSWORDS.bob);
    const plain = await again.ok({ op: 'decrypt', session: bob, handle: token, mechanism: { name: 'aes-gcm', iv: ciphertext.iv! }, data: ciphertext.data });
    expect(plain.data).to.deep.equal(new Uint8Array(16));
    const alice2 = await again.login('alice', PASSWORDS.alice);
    const attrs = await again.ok({ op: 'getAttributes', session: alice2, handle: token });
    expect(attrs.attributes.label).to.equal('kept');
    expect(attrs.sharedUsers).to.deep.equal(['bob']);
    await again.fail({ op: 'getAttributes', session: alice2, handle: session }, 'KEY_NOT_FOUND');

    // New handles never repeat an old one, even after the newest was deleted.
    await again.ok({ op: 'deleteKey', session: alice2, handle: token });
    await again.member.close();
    const third = await durable(d);
    const alice3 = await third.login('alice', PASSWORDS.alice);
    const fresh = (await third.ok({ op: 'generateKey', session: alice3, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
    expect(fresh).to.be.greaterThan(session);
    await third.fail({ op: 'getAttributes', session: alice3, handle: token }, 'KEY_NOT_FOUND');

    const admin = await third.login('admin', PASSWORDS.admin);
    const { records } = await third.ok({ op: 'getAuditLog', session: admin, maxItems: 10_000 });
    expect(verifyAuditChain(records)).to.deep.equal({ ok: true, records: records.length });
    expect(new Set(records.map((r) => r.rebootCounter))).to.deep.equal(new Set([0, 1, 2]));
    expect(records.filter((r) => r.opcode === 'CN_INIT_TOKEN')).to.have.length(1);
    await third.member.close();
  });

  it('a restart writes its own record (meta, with the reboot counter), not every key and the masking key again', async () => {
    const d = dir();
    const { m } = await populated(d);
    await m.member.close();
    // Each sealing draws a new IV, so a record written again would not read back the same bytes.
    const sealed = async () => {
      const out = new Map<string, string>();
      await editStore(d, async (db) => {
        for (const { key, value } of db.getRange({ start: 'key/', end: 'key0' })) out.set(String(key), Buffer.from(value as Uint8Array).toString('hex'));
        out.set('masking', Buffer.from(db.get('masking') as Uint8Array).toString('hex'));
        out.set('reboots', String((db.get('meta') as { rebootCounter: number }).rebootCounter));
      });
      return out;
    };
    const before = await sealed();
    expect([...before.keys()].filter((k) => k.startsWith('key/'))).to.have.length(1);
    const again = await durable(d);
    await again.member.close();
    const after = await sealed();
    expect(Number(after.get('reboots'))).to.equal(Number(before.get('reboots')) + 1);
    after.delete('reboots');
    before.delete('reboots');
    expect(after).to.deep.equal(before);
  });

  it('reads its audit log from the folder: the same records before and after a restart, in pages of any size', async () => {
    const d = dir();
    const { m, admin } = await populated(d);
    const before = (await m.ok({ op: 'getAuditLog', session: admin, maxItems: 10_000 })).records;
    await m.member.close();
    const again = await durable(d);
    const admin2 = await again.login('admin', PASSWORDS.admin);
    for (let i = 0; i < 5; i++) await again.login('alice', PASSWORDS.alice);
    const { records: all, head } = await again.ok({ op: 'getAuditLog', session: admin2, maxItems: 10_000 });
    expect(all.slice(0, before.length)).to.deep.equal(before);
    expect(all.length).to.be.greaterThan(before.length + 5);
    expect(head).to.deep.equal({ sequence: all.length - 1, hash: all.at(-1)!.hash });
    expect(verifyAuditChain(all)).to.deep.equal({ ok: true, records: all.length });
    for (const size of [1, 5, before.length]) {
      const paged = [];
      for (let from = 0; from < all.length; from += size) paged.push(...(await again.ok({ op: 'getAuditLog', session: admin2, fromSequence: from, maxItems: size })).records);
      expect(paged, `pages of ${size}`).to.deep.equal(all);
    }
    await again.member.close();
  });

  it('keeps every change to a user across a restart: failed logins and a lock, a new password, a quorum key, a deletion and a re-creation', async () => {
    const d = dir();
    const { m, admin, alice } = await populated(d);
    await m.ok({ op: 'createUser', session: admin, username: 'carl', password: 'carl-password', role: 'crypto-user' });
    await m.ok({ op: 'createUser', session: admin, username: 'dora', password: 'dora-password', role: 'crypto-user' });
    await m.ok({ op: 'createUser', session: admin, username: 'erin', password: 'erin-password', role: 'crypto-user' });
    for (let i = 0; i < 2; i++) await m.fail({ op: 'login', username: 'bob', password: 'not-bobs-password' }, 'LOGIN_FAILED');
    for (let i = 0; i < 5; i++) await m.fail({ op: 'login', username: 'carl', password: 'not-carls-password' }, 'LOGIN_FAILED');
    await m.ok({ op: 'changePassword', session: admin, username: 'erin', password: 'erin-second-password' });
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const { approvalData } = await m.ok({ op: 'generateQuorumToken', session: alice, service: 'registration' });
    const signature = privateEncrypt({ key: pair.privateKey, padding: constants.RSA_PKCS1_PADDING }, Buffer.concat([Buffer.from('3031300d060960864801650304020105000420', 'hex'), createHash('sha256').update(approvalData).digest()]));
    const publicKey = new TextEncoder().encode(pair.publicKey.export({ type: 'spki', format: 'pem' }) as string);
    await m.ok({ op: 'registerQuorumKey', session: alice, publicKey, registration: { approvalData, signature } });
    await m.ok({ op: 'deleteUser', session: admin, username: 'dora' });
    const before = await m.ok({ op: 'listUsers', session: admin });
    expect(before.users.find((u) => u.username === 'bob')).to.include({ failedLogins: 2, locked: false });
    expect(before.users.find((u) => u.username === 'carl')).to.include({ locked: true });
    expect(before.users.find((u) => u.username === 'alice')).to.include({ quorum: true });
    await m.member.close();

    const again = await durable(d);
    const admin2 = await again.login('admin', PASSWORDS.admin);
    expect(await again.ok({ op: 'listUsers', session: admin2 })).to.deep.equal(before);
    await again.fail({ op: 'login', username: 'erin', password: 'erin-password' }, 'LOGIN_FAILED');
    await again.login('erin', 'erin-second-password');
    await again.fail({ op: 'login', username: 'carl', password: 'carl-password' }, 'USER_LOCKED');
    // Bob's count went back to 0 with his login; dora comes back as a new user.
    await again.login('bob', PASSWORDS.bob);
    await again.ok({ op: 'createUser', session: admin2, username: 'dora', password: 'dora-second-password', role: 'crypto-user' });
    const changed = await again.ok({ op: 'listUsers', session: admin2 });
    await again.member.close();
    const third = await durable(d);
    expect(await third.ok({ op: 'listUsers', session: await third.login('admin', PASSWORDS.admin) })).to.deep.equal(changed);
    expect(changed.users.find((u) => u.username === 'bob')).to.include({ failedLogins: 0 });
    await third.login('dora', 'dora-second-password');
    await third.member.close();
  });

  it('gives the same sync digests after a restart (shares added out of order, every attribute kept)', async () => {
    const d = dir();
    const { m, admin, alice, token } = await populated(d);
    for (const name of ['zoe', 'amy']) {
      await m.ok({ op: 'createUser', session: admin, username: name, password: `${name}-password`, role: 'crypto-user' });
      await m.ok({ op: 'shareKey', session: alice, handle: token, username: name });
    }
    const appliance = await m.login('app_user', PASSWORDS.app_user);
    const before = await m.ok({ op: 'getSyncStatus', session: appliance });
    await m.member.close();
    const again = await durable(d);
    expect(await again.ok({ op: 'getSyncStatus', session: await again.login('app_user', PASSWORDS.app_user) })).to.deep.equal(before);
  });

  it('keeps deletions, a user created again, quorum settings, addresses and the clock across restarts', async () => {
    const d = dir();
    const { m, admin, alice, token } = await populated(d);
    const appliance = await m.login('app_user', PASSWORDS.app_user);
    await m.ok({ op: 'setClusterAddresses', session: appliance, addresses: ['127.0.0.1:2400'] });
    await m.ok({ op: 'setQuorumTimeouts', session: admin, generated: 240 });
    for (const name of ['dave', 'erin']) await m.ok({ op: 'createUser', session: admin, username: name, password: `${name}-password`, role: 'crypto-user' });
    await m.ok({ op: 'deleteUser', session: admin, username: 'dave' });
    await m.ok({ op: 'deleteUser', session: admin, username: 'erin' });
    await m.ok({ op: 'createUser', session: admin, username: 'erin', password: 'erin-second-password', role: 'crypto-user' });
    await m.ok({ op: 'deleteKey', session: alice, handle: token });
    const before = await m.ok({ op: 'getSyncStatus', session: appliance });
    expect(before.deletedUsers.map((u) => u.username)).to.deep.equal(['dave']);
    await m.member.close();

    const again = await durable(d);
    const appliance2 = await again.login('app_user', PASSWORDS.app_user);
    expect(await again.ok({ op: 'getSyncStatus', session: appliance2 })).to.deep.equal(before);
    expect((await again.ok({ op: 'getQuorumSettings' })).timeouts.generated).to.equal(240);
    expect((await again.ok({ op: 'getHsmInfo' })).clusterAddresses).to.deep.equal(['127.0.0.1:2400']);
    await again.login('erin', 'erin-second-password');
    await again.fail({ op: 'login', username: 'dave', password: 'dave-password' }, 'USER_NOT_FOUND');
    // What it stamps next is newer than anything it stamped before the restart.
    const admin2 = await again.login('admin', PASSWORDS.admin);
    await again.ok({ op: 'createUser', session: admin2, username: 'fred', password: 'fred-password', role: 'crypto-user' });
    const after = await again.ok({ op: 'getSyncStatus', session: appliance2 });
    const newest = Math.max(...before.users.map((u) => u.gen), ...before.deletedUsers.map((u) => u.gen), ...before.deletedKeys.map((k) => k.gen), before.settingsGen);
    expect(after.users.find((u) => u.username === 'fred')!.gen).to.be.greaterThan(newest);
    // Dave created again here: his deletion goes from the folder too.
    await again.ok({ op: 'createUser', session: admin2, username: 'dave', password: 'dave-second-password', role: 'crypto-user' });
    await again.member.close();
    const third = await durable(d);
    expect((await third.ok({ op: 'getSyncStatus', session: await third.login('app_user', PASSWORDS.app_user) })).deletedUsers).to.deep.equal([]);
    await third.login('dave', 'dave-second-password');
    await third.member.close();
  });

  it('refuses a folder whose audit log lost a record past the first 10,000 (a start checks them a piece a turn)', async () => {
    const d = dir();
    const { m } = await populated(d);
    await m.member.close();
    const name = (n: number) => `audit/${String(n).padStart(12, '0')}`;
    // Records up to 10,002 (those past the member's own hold only a sequence: the check reads names).
    await editStore(d, async (db) => {
      const count = [...db.getKeys({ start: 'audit/', end: 'audit0' })].length;
      await db.transaction(() => {
        for (let n = count; n <= 10_002; n++) void db.put(name(n), { sequence: n });
      });
    });
    for (const missing of [9_999, 10_000, 10_001]) {
      await editStore(d, async (db) => {
        await db.transaction(() => {
          for (let n = 9_999; n <= 10_002; n++) void db.put(name(n), { sequence: n });
          void db.remove(name(missing));
        });
      });
      expect(await refusedStart(d)).to.equal(`data folder ${d}: the audit log has a gap; nothing was changed`);
    }
  });

  it('refuses a folder whose audit log lost a record', async () => {
    const d = dir();
    const { m } = await populated(d);
    await m.member.close();
    await editStore(d, (db) => db.remove(`audit/${String(3).padStart(12, '0')}`));
    expect(await refusedStart(d)).to.equal(`data folder ${d}: the audit log has a gap; nothing was changed`);
  });

  /** What a restart must give back: the token keys (with their digests), users and tombstones, and the audit log up to now. */
  async function kept(m: TestMember, admin: string) {
    const sync = await m.ok({ op: 'getSyncStatus', session: admin });
    const audit = await m.ok({ op: 'getAuditLog', session: admin, maxItems: 10_000 });
    return { sync: { ...sync, summary: undefined }, audit: audit.records };
  }

  async function afterRestart(d: string, before: Awaited<ReturnType<typeof kept>>, options: MemberOptions = {}) {
    const again = await durable(d, options);
    const after = await kept(again, await again.login('admin', PASSWORDS.admin));
    await again.member.close();
    expect(verifyAuditChain(after.audit)).to.deep.equal({ ok: true, records: after.audit.length });
    expect(after.audit.slice(0, before.audit.length)).to.deep.equal(before.audit);
    return after;
  }

  const failedWrite = /^the change was made in memory but could not be written to the data folder \(the data folder refused a write \(injected by a test\)\); the member's next change writes it again/;

  it('a change whose write the folder refused is written by the next change: after a restart nothing is missing, nothing deleted is back, and the audit log has no gap', async () => {
    const d = dir();
    const { m, admin, alice, token } = await populated(d);
    injectStoreFailures(4);
    // A token key made, one deleted, a user made and one deleted (which takes bob off every share): each refused.
    for (const request of [
      { op: 'generateKey', session: alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true, label: 'made-while-refused' } },
      { op: 'deleteKey', session: alice, handle: token },
      { op: 'createUser', session: admin, username: 'carol', password: PASSWORDS.carol, role: 'crypto-user' },
      { op: 'deleteUser', session: admin, username: 'bob' },
    ]) {
      expect((await m.fail(request, 'INTERNAL_ERROR')).message).to.match(failedWrite);
    }
    await m.ok({ op: 'generateKey', session: alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true, label: 'made-after' } });
    const before = await kept(m, admin);
    await m.member.close();
    const after = await afterRestart(d, before);
    expect(after.sync.keys).to.deep.equal(before.sync.keys);
    expect(after.sync.users).to.deep.equal(before.sync.users);
    expect(after.sync.deletedKeys).to.deep.equal(before.sync.deletedKeys);
    expect(after.sync.deletedUsers).to.deep.equal(before.sync.deletedUsers);
    expect(after.sync.deletedKeys.map((k) => k.handle)).to.deep.equal([token]);
    expect(after.sync.deletedUsers.map((u) => u.username)).to.deep.equal(['bob']);
    expect(after.sync.users.map((u) => u.username)).to.include('carol');
    expect(after.sync.keys).to.have.length(2);
  });

  it('every record a commit seals has an IV of its own, across more records than one draw of IVs holds', async () => {
    // 520 keys refused by the folder one by one, then written by the next change in one commit:
    // each sealed there, with IVs drawn 500 at a time (store.ts). A repeated IV under the storage
    // key would give away both records' plaintext.
    const d = dir();
    const { m, alice } = await populated(d);
    injectStoreFailures(520);
    for (let i = 0; i < 520; i++) {
      expect((await m.fail({ op: 'generateKey', session: alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true, label: `held-${i}` } }, 'INTERNAL_ERROR')).message).to.match(failedWrite);
    }
    await m.ok({ op: 'generateKey', session: alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true, label: 'written-with-them' } });
    await m.member.close();
    const ivs: string[] = [];
    await editStore(d, async (db) => {
      for (const { key, value } of db.getRange({ start: 'key/', end: 'key0' })) {
        expect(String(key)).to.match(/^key\/\d+$/);
        ivs.push(Buffer.from(value as Uint8Array).subarray(0, 12).toString('hex'));
      }
    });
    expect(ivs).to.have.length(520 + 2);
    expect(new Set(ivs).size).to.equal(ivs.length);
  });

  it('a member started from a folder of more keys than it takes in a turn has every one of them', async () => {
    // More than two pieces of KEYS_A_TURN (500), read and taken in turns.
    const d = dir();
    const { m, alice } = await populated(d);
    for (let i = 0; i <= 1_100; i += 100) {
      await Promise.all(Array.from({ length: Math.min(100, 1_101 - i) }, (_, j) => m.ok({ op: 'generateKey', session: alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true, label: `key-${i + j}` } })));
    }
    await m.member.close();
    const again = await durable(d);
    const session = await again.login('alice', PASSWORDS.alice);
    const labels: string[] = [];
    for (let startingToken: string | undefined; ; ) {
      const page = await again.ok({ op: 'findKeys', session, maxItems: 10_000, ...(startingToken ? { startingToken } : {}) });
      labels.push(...page.keys.map((k) => String(k.attributes.label)));
      if (!page.nextToken) break;
      startingToken = page.nextToken;
    }
    for (let i = 0; i <= 1_100; i++) expect(labels, `key-${i}`).to.include(`key-${i}`);
    await again.member.close();
  });

  it('a change queued behind one whose write failed fails too, and the change after both writes all three', async () => {
    const d = dir();
    const { m, alice } = await populated(d);
    injectStoreFailures(1);
    const make = (label: string) => m.raw({ op: 'generateKey', session: alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true, label } });
    const [first, second] = await Promise.all([make('first'), make('second')]);
    expect(first.ok || first.error.message).to.match(failedWrite);
    expect(second.ok || second.error.message).to.match(/could not be written to the data folder \(a write to the data folder queued before this one failed\)/);
    await m.ok({ op: 'generateKey', session: alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true, label: 'third' } });
    const admin = await m.login('admin', PASSWORDS.admin);
    const before = await kept(m, admin);
    await m.member.close();
    const after = await afterRestart(d, before);
    expect(after.sync.keys).to.deep.equal(before.sync.keys);
  });

  it('a restore whose write failed is written by the next change: the member starts again with the backup\'s keys and masking key', async () => {
    const serviceKey = new Uint8Array(32).fill(7);
    const { m: source, alice, token } = await populated(dir(), { serviceKey });
    const { backup } = await source.ok({ op: 'createBackup', session: await source.login('app_user', PASSWORDS.app_user) });
    const { maskedObject } = await source.ok({ op: 'extractMaskedObject', session: alice, handle: token });
    const d = dir();
    const m = await durable(d, { memberIndex: 1, serviceKey });
    injectStoreFailures(1);
    expect((await m.fail({ op: 'restoreBackup', backup }, 'INTERNAL_ERROR')).message).to.match(failedWrite);
    const admin = await m.login('admin', PASSWORDS.admin);
    const before = await kept(m, admin);
    await m.member.close();
    const after = await afterRestart(d, before, { serviceKey });
    expect(after.sync.keys.map((k) => k.handle)).to.deep.equal([token]);
    // The backup's masking key came back: the member opens an object the source cluster masked.
    const again = await durable(d, { serviceKey });
    expect((await again.ok({ op: 'getHsmInfo' })).state).to.equal('active');
    expect(await again.ok({ op: 'insertMaskedObject', session: await again.login('alice', PASSWORDS.alice), maskedObject })).to.deep.include({ handle: token, merged: 'same' });
    await again.member.close();
    await source.member.close();
  });

  it('a key or user deleted after a restart leaves the folder; a user\'s deletion takes their shares off every stored key', async () => {
    const d = dir();
    const { m, admin, alice, token } = await populated(d);
    const other = (await m.ok({ op: 'generateKey', session: alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
    await m.ok({ op: 'shareKey', session: alice, handle: other, username: 'bob' });
    await m.ok({ op: 'createUser', session: admin, username: 'dave', password: 'dave-password', role: 'crypto-user' });
    await m.member.close();

    const again = await durable(d);
    const alice2 = await again.login('alice', PASSWORDS.alice);
    const admin2 = await again.login('admin', PASSWORDS.admin);
    await again.ok({ op: 'deleteKey', session: alice2, handle: token });
    await again.ok({ op: 'deleteUser', session: admin2, username: 'dave' });
    await again.ok({ op: 'deleteUser', session: admin2, username: 'bob' });
    await again.member.close();
    const db = open({ path: join(d, 'store'), compression: false });
    const names = [...db.getKeys({ start: 'key/', end: 'user0' })].map(String);
    await db.close();
    expect(names.filter((n) => /^(key|user)\//.test(n))).to.have.members([`key/${other}`, 'user/admin', 'user/alice', 'user/app_user']);

    const third = await durable(d);
    expect((await third.ok({ op: 'getAttributes', session: await third.login('alice', PASSWORDS.alice), handle: other })).sharedUsers).to.deep.equal([]);
    await third.member.close();
  });

  it('refuses a folder whose masking key record was altered', async () => {
    const d = dir();
    const { m } = await populated(d);
    await m.member.close();
    await editStore(d, (db) => {
      const sealed = Buffer.from(db.get('masking') as Uint8Array);
      sealed[sealed.length - 1]! ^= 1;
      return db.put('masking', sealed);
    });
    expect(await refusedStart(d)).to.equal(`data folder ${d}: record masking is corrupted (it does not authenticate under the storage key); nothing was changed`);
  });

  it('names what is wrong with a storage key: wrong length, a damaged or incomplete passphrase file, a missing key, a short passphrase', async () => {
    const short = dir();
    await (await durable(short)).member.close();
    writeFileSync(join(short, 'storage-key'), Buffer.alloc(31), { mode: 0o600 });
    expect(await refusedStart(short)).to.equal(`data folder ${short}: storage-key is not a 32-byte key; nothing was changed`);

    const missing = dir();
    await (await durable(missing)).member.close();
    unlinkSync(join(missing, 'storage-key'));
    expect(await refusedStart(missing)).to.equal(`data folder ${missing}: the store exists but its storage key file is missing; nothing was changed`);

    const wrapped = dir();
    await (await durable(wrapped, { passphrase: 'correct horse battery' })).member.close();
    const file = join(wrapped, 'storage-key.json');
    const good = readFileSync(file, 'utf8');
    writeFileSync(file, '{ not json');
    expect(await refusedStart(wrapped, { passphrase: 'correct horse battery' })).to.equal(`data folder ${wrapped}: storage-key.json is not valid JSON; nothing was changed`);
    writeFileSync(file, JSON.stringify({ format: 1, wrapped: (JSON.parse(good) as { wrapped: string }).wrapped }));
    expect(await refusedStart(wrapped, { passphrase: 'correct horse battery' })).to.equal(`data folder ${wrapped}: storage-key.json lacks its kdf or wrapped key; nothing was changed`);
    writeFileSync(file, good);
    await (await durable(wrapped, { passphrase: 'correct horse battery' })).member.close();

    // Refused at its first start, a folder is still new: the next start with a good passphrase makes it.
    const first = dir();
    expect(await refusedStart(first, { passphrase: 'short' })).to.equal('passphrase: at least 8 characters');
    await (await durable(first, { passphrase: 'long enough now' })).member.close();
  });

  it('stores passwords as scrypt hashes at N = 2^15, r = 8, p = 1 by default (the documented cost, docs/model.md), each with its own salt', async () => {
    const d = dir();
    const m = new TestMember(await createMember({ dataDir: d, appliancePassword: PASSWORDS.app_user }));
    await m.ok({ op: 'activateCluster', password: PASSWORDS.admin });
    await m.member.close();
    const db = open({ path: join(d, 'store'), compression: false });
    try {
      const stored = ['admin', 'app_user'].map((name) => (db.get(`user/${name}`) as { password: { algorithm: string; log2N: number; r: number; p: number; salt: string } }).password);
      for (const hash of stored) expect(hash).to.include({ algorithm: 'scrypt', log2N: 15, r: 8, p: 1 });
      expect(stored[0]!.salt).to.not.equal(stored[1]!.salt);
    } finally {
      await db.close();
    }
  });

  it('stores no key material in the clear', async () => {
    const d = dir();
    const { m, alice, token } = await populated(d);
    const raw = (await m.ok({ op: 'exportKey', session: alice, handle: token, format: 'raw' })).keyData as Uint8Array;
    await m.member.close();
    const files = readdirSync(join(d, 'store')).map((f) => readFileSync(join(d, 'store', f)));
    for (const bytes of files) expect(bytes.indexOf(Buffer.from(raw)), 'the key bytes appear in the store').to.equal(-1);
    expect(statSync(join(d, 'storage-key')).mode & 0o777).to.equal(0o600);
  });

  it('with a passphrase: refuses a wrong one, a missing one, and changes nothing', async () => {
    const d = dir();
    const { m } = await populated(d, { passphrase: 'correct horse battery' });
    await m.member.close();
    const snapshot = () => readdirSync(d).map((f) => [f, statSync(join(d, f)).mtimeMs]);
    const before = JSON.stringify(snapshot());
    expect(await refusedStart(d, { passphrase: 'wrong horse battery' })).to.match(/wrong passphrase.*nothing was changed/);
    expect(await refusedStart(d)).to.match(/protected by a passphrase; set STRONGROOM_MASTER_PASSPHRASE/);
    expect(JSON.stringify(snapshot())).to.equal(before);
    const again = await durable(d, { passphrase: 'correct horse battery' });
    await again.login('alice', PASSWORDS.alice);
    await again.member.close();

    const plain = dir();
    await (await durable(plain)).member.close();
    expect(await refusedStart(plain, { passphrase: 'some passphrase' })).to.match(/not protected by a passphrase, but one was given/);
  });

  it('refuses a folder from a newer format, a corrupted or moved record, or a storage key others can read', async () => {
    const d = dir();
    const { m, token } = await populated(d);
    await m.member.close();

    const db = open({ path: join(d, 'store'), compression: false });
    const original = Buffer.from(db.get(`key/${token}`) as Uint8Array);
    const corrupted = Buffer.from(original);
    corrupted[20]! ^= 0x01;
    await db.put(`key/${token}`, corrupted);
    await db.close();
    expect(await refusedStart(d)).to.match(new RegExp(`record key/${token} is corrupted.*nothing was changed`));

    // A record is bound to its name: moved under another handle, it no longer opens.
    const moved = open({ path: join(d, 'store'), compression: false });
    await moved.remove(`key/${token}`);
    await moved.put(`key/${token + 1}`, original);
    await moved.close();
    expect(await refusedStart(d)).to.match(new RegExp(`record key/${token + 1} is corrupted.*nothing was changed`));

    const db2 = open({ path: join(d, 'store'), compression: false });
    await db2.remove(`key/${token + 1}`);
    await db2.put(`key/${token}`, original);
    const meta = db2.get('meta') as { format: number };
    await db2.put('meta', { ...meta, format: 2 });
    await db2.close();
    expect(await refusedStart(d)).to.match(/written by a newer Strongroom \(store format 2; this one reads 1\)/);
    const db3 = open({ path: join(d, 'store'), compression: false });
    expect((db3.get('meta') as { format: number }).format).to.equal(2); // not overwritten
    await db3.put('meta', meta);
    await db3.close();

    chmodSync(join(d, 'storage-key'), 0o644);
    expect(await refusedStart(d)).to.match(/storage-key is readable by others \(mode 644\)/);
    chmodSync(join(d, 'storage-key'), 0o600);
    await (await durable(d)).member.close();
  });

  const CRASH_SEED = testSeed(20261202);
  it(`crash test: SIGKILL at random moments during key creations and deletions loses no acknowledged change (seed ${CRASH_SEED})`, async function () {
    this.timeout(120_000);
    const rand = seeded(CRASH_SEED);
    const d = dir();
    const { m } = await populated(d);
    await m.member.close();
    /** What the member acknowledged: handle → exists. */
    const acknowledged = new Map<number, boolean>();
    /** Deletions sent but not acknowledged when the member died: either outcome is allowed. */
    const unsure = new Set<number>();

    const start = () =>
      new Promise<{ child: ChildProcess; send: (request: unknown) => Promise<Response> }>((resolve, reject) => {
        const child = startCrashMember(d);
        let err = '';
        child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
        const pending = new Map<number, (r: Response) => void>();
        let next = 1;
        child.on('message', (msg: { ready?: boolean; id?: number; response?: Response }) => {
          if (msg.ready) {
            resolve({
              child,
              send: (request) =>
                new Promise((r) => {
                  const id = next++;
                  pending.set(id, r);
                  child.send({ id, request });
                }),
            });
          } else pending.get(msg.id!)?.(msg.response!);
        });
        child.once('exit', (code, signal) => {
          if (signal !== 'SIGKILL') reject(new Error(`member process exited (${signal ?? code}): ${err}`));
        });
      });

    /** Everything acknowledged so far is there, and nothing acknowledged as deleted is; an unsure deletion goes either way. */
    const check = async (send: (request: unknown) => Promise<Response>, round: number): Promise<string> => {
      const login = await send({ op: 'login', username: 'alice', password: PASSWORDS.alice });
      expect(login.ok, `round ${round}: alice logs in`).to.equal(true);
      const session = ((login as Extract<Response, { ok: true }>).result as { session: string }).session;
      for (const [handle, exists] of acknowledged) {
        const r = await send({ op: 'getAttributes', session, handle });
        if (unsure.has(handle)) acknowledged.set(handle, r.ok);
        else expect(r.ok, `round ${round}: key ${handle} should ${exists ? '' : 'not '}exist`).to.equal(exists);
      }
      unsure.clear();
      return session;
    };

    const rounds = 12;
    for (let round = 0; round < rounds; round++) {
      const { child, send } = await start();
      const session = await check(send, round);

      let stop = false;
      const stream = async () => {
        while (!stop) {
          const live = [...acknowledged].filter(([h, e]) => e && !unsure.has(h)).map(([h]) => h);
          if (live.length > 3 && rand.next() < 0.4) {
            const handle = live[rand.below(live.length)]!;
            unsure.add(handle);
            const r = await send({ op: 'deleteKey', session, handle });
            if (stop) return;
            if (!r.ok) expect.fail(`deleteKey refused: ${r.error.message}`);
            acknowledged.set(handle, false);
            unsure.delete(handle);
          } else {
            const r = await send({ op: 'generateKey', session, keyType: 'aes', lengthBytes: 16, attributes: { token: true, label: `round-${round}` } });
            if (stop) return;
            if (r.ok) acknowledged.set((r.result as { handle: number }).handle, true);
          }
        }
      };
      const streams = [stream(), stream(), stream()];
      await new Promise((r) => setTimeout(r, 20 + rand.below(120)));
      // Answers that arrive after the kill signal was sent are not counted: only what was acknowledged before it.
      const exited = new Promise((r) => child.once('exit', r));
      stop = true;
      child.kill('SIGKILL');
      await exited;
      await Promise.race([Promise.all(streams), new Promise((r) => setTimeout(r, 50))]);
    }
    expect([...acknowledged.values()].filter(Boolean).length).to.be.greaterThan(10);
    // The last round's acknowledged changes too, on a member opened once more.
    const last = await durable(d);
    await check((request) => last.raw(request), rounds);
    const admin = await last.login('admin', PASSWORDS.admin);
    const { records } = await last.ok({ op: 'getAuditLog', session: admin, maxItems: 10_000 });
    expect(verifyAuditChain(records).ok).to.equal(true);
    await last.member.close();
  });
});

describe('hsm-core: the tombstone maps a commit reads changes from', () => {
  it('tell the keys set, deleted or cleared since they were last asked, each once', async () => {
    const { TrackedMap } = await import('../../src/hsm-core/state.js');
    const map = new TrackedMap<string, number>();
    map.set('a', 1);
    map.set('b', 2);
    map.set('a', 3);
    expect(map.takeChanges()).to.deep.equal(['a', 'b']);
    expect(map.takeChanges()).to.deep.equal([]);
    map.delete('b');
    map.set('c', 4);
    expect(map.takeChanges()).to.deep.equal(['b', 'c']);
    map.clear();
    expect(map.takeChanges().sort()).to.deep.equal(['a', 'c']);
    expect([...map]).to.deep.equal([]);
  });
});

describe('hsm-core: a durable member that shares its thread, starting', () => {
  it('reads 1,200 token keys from its folder a slice a turn of the event loop, every one of them', async () => {
    const [{ MemberStore }, { turnCounter }] = await Promise.all([import('../../src/hsm-core/store.js'), import('../helpers/turns.js')]);
    const d = tmp();
    try {
      const { m, alice } = await populated(d);
      const made = new Set<number>();
      for (let i = 0; i < 1199; i++) made.add((await m.ok({ op: 'generateKey', session: alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true, label: `k${i}`, encrypt: true } })).handle);
      await m.member.close();
      const store = await MemberStore.open(d);
      const counter = turnCounter();
      const loaded = await store.load();
      counter.stop();
      await store.close();
      expect(counter.turns(), 'turns of the event loop while 1,200 keys were read').to.be.greaterThan(0);
      expect(loaded!.keys).to.have.length(1200);
      const read = new Set(loaded!.keys.map((k) => k.handle));
      expect([...made].filter((handle) => !read.has(handle)), 'keys made and not read').to.deep.equal([]);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});

describe('hsm-core: key records sealed ahead of the commit that writes them', () => {
  it('are sealed a slice a turn, and a commit writes each key as it is then: one changed since is sealed again', async () => {
    const [{ MemberStore }, { MemberState }, { keyFromContent }, { getProfile }, { turnCounter }] = await Promise.all([
      import('../../src/hsm-core/store.js'),
      import('../../src/hsm-core/state.js'),
      import('../../src/hsm-core/masking.js'),
      import('../../src/hsm-core/profiles.js'),
      import('../helpers/turns.js'),
    ]);
    const d = tmp();
    try {
      const store = await MemberStore.open(d);
      const m = new MemberState(getProfile('unlimited'), 0, 'sealed-ahead', 10);
      const random = seeded(testSeed(0x5ea1ed));
      const records = Array.from({ length: 1200 }, (_, i) =>
        keyFromContent({ handle: i + 1, gen: 1, cls: 'secret-key', type: 'aes', owner: 'alice', shared: [], attrs: { label: `k${i}`, encrypt: true } as never, material: random.bytes(16).toString('base64') }),
      );
      const counter = turnCounter();
      await store.sealAhead(records);
      counter.stop();
      expect(counter.turns(), 'turns of the event loop while 1,200 records were sealed').to.be.greaterThan(0);
      // Changed after it was sealed, before it is the member's and written: a new version.
      const changed = records[700]!;
      m.keys.setAttributes(changed, { ...changed.attrs, label: 'changed' });
      changed.gen = 2;
      for (const r of records) m.keys.add(r);
      await store.commit(m, { keys: 'all', masking: true });
      await store.close();
      const reopened = await MemberStore.open(d);
      const loaded = new Map((await reopened.load())!.keys.map((k) => [k.handle, k]));
      await reopened.close();
      expect(loaded.size).to.equal(1200);
      expect([loaded.get(700)!.attrs.label, loaded.get(701)!.attrs.label, loaded.get(701)!.gen]).to.deep.equal(['k699', 'changed', 2]);
      expect(Buffer.compare(loaded.get(1)!.material.export(), records[0]!.material.export())).to.equal(0);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
