/**
 * Backups inside the member: EBK under PBK (MKBK + AKBK + mode), restore rules and tampering.
 */
import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { readBackupHeader } from '../../src/hsm-core/index.js';
import { wrapThreadUse } from '../../src/hsm-core/mechanisms/wrap-thread.js';
import { activatedMember, freshMember, PASSWORDS, type Fixture } from '../helpers/member.js';

const SERVICE = new Uint8Array(32).fill(1);
const OTHER_SERVICE = new Uint8Array(32).fill(2);
const OTHER_MANUFACTURER = new Uint8Array(32).fill(3);

async function backedUp(): Promise<{ f: Fixture; backup: Uint8Array; token: number }> {
  const f = await activatedMember({ serviceKey: SERVICE });
  const token = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { token: true, encrypt: true, decrypt: true } })).handle;
  await f.m.ok({ op: 'shareKey', session: f.alice, handle: token, username: 'bob' });
  await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { encrypt: true } }); // a session key
  const { backup, header } = await f.m.ok({ op: 'createBackup', session: f.appliance });
  expect(header.clusterId).to.equal((await f.m.ok({ op: 'getHsmInfo' })).clusterId);
  expect(header.mode).to.equal('fips');
  return { f, backup, token };
}

/**
 * A backup of format `v` made by an earlier version (test/fixtures), restored onto a new member of
 * its installation: its users and keys are there, bob decrypts what alice encrypted with the AES
 * key (shared with him), and alice signs with the key pair. The fixture's JSON says what it holds.
 */
async function restoredFixture(v: 1 | 2) {
  const fixture = JSON.parse(readFileSync(new URL(`../fixtures/backup-format-${v}.json`, import.meta.url), 'utf8')) as { aesHandle: number; ecPrivateHandle: number; ecPublicHandle: number; deletedHandle?: number; plaintext: string; iv: string; ciphertext: string };
  const backup = new Uint8Array(readFileSync(new URL(`../fixtures/backup-format-${v}.backup`, import.meta.url)));
  expect(readBackupHeader(backup).header.v).to.equal(v);
  const target = await freshMember({ serviceKey: SERVICE, manufacturerKey: new Uint8Array(32).fill(9), profile: 'unlimited' });
  expect(await target.ok({ op: 'restoreBackup', backup })).to.deep.include({ users: 5, keys: 3, merged: false });
  const bob = await target.login('bob', PASSWORDS.bob);
  const plain = await target.ok({ op: 'decrypt', session: bob, handle: fixture.aesHandle, mechanism: { name: 'aes-gcm', iv: Buffer.from(fixture.iv, 'hex') }, data: Buffer.from(fixture.ciphertext, 'hex') });
  expect(Buffer.from(plain.data).toString()).to.equal(fixture.plaintext);
  const alice = await target.login('alice', PASSWORDS.alice);
  const data = new Uint8Array(8);
  const { signature } = await target.ok({ op: 'sign', session: alice, handle: fixture.ecPrivateHandle, mechanism: { name: 'ecdsa', hash: 'sha256' }, data });
  expect((await target.ok({ op: 'verify', session: alice, handle: fixture.ecPublicHandle, mechanism: { name: 'ecdsa', hash: 'sha256' }, data, signature })).valid).to.equal(true);
  return { fixture, target, alice };
}

describe('hsm-core: backups', () => {
  it('restores users, token keys, shares and the cluster onto a new member of the same manufacturer; session keys are not in it', async () => {
    const { f, backup, token } = await backedUp();
    const target = await freshMember({ serviceKey: SERVICE, memberIndex: 1 });
    const restored = await target.ok({ op: 'restoreBackup', backup });
    expect(restored.keys).to.equal(1);
    expect(restored.clusterId).to.equal((await f.m.ok({ op: 'getHsmInfo' })).clusterId);
    const bob = await target.login('bob', PASSWORDS.bob);
    const enc = await f.m.ok({ op: 'encrypt', session: f.alice, handle: token, mechanism: { name: 'aes-gcm' }, data: new Uint8Array(4) });
    expect((await target.ok({ op: 'decrypt', session: bob, handle: token, mechanism: { name: 'aes-gcm', iv: enc.iv! }, data: enc.data })).data).to.deep.equal(new Uint8Array(4));
    // Its audit log starts as a new HSM's does, then records the restore.
    const admin = await target.login('admin', PASSWORDS.admin);
    const { records } = await target.ok({ op: 'getAuditLog', session: admin });
    expect(records.slice(0, 5).map((r) => r.opcode)).to.deep.equal(['CN_INIT_TOKEN', 'CN_GEN_PSWD_ENC_KEY', 'CN_CREATE_APPLIANCE_USER', 'CN_INIT_DONE', 'SR_RESTORE_BACKUP']);
    // Masked objects of the source cluster now open on it.
    const masked = (await f.m.ok({ op: 'extractMaskedObject', session: f.alice, handle: token })).maskedObject;
    const alice = await target.login('alice', PASSWORDS.alice);
    expect((await target.ok({ op: 'insertMaskedObject', session: alice, maskedObject: masked })).handle).to.equal(token);
  });

  it('a restored key has every attribute, share and generation it had, for each class and type', async () => {
    const f = await activatedMember({ serviceKey: SERVICE });
    const handles = [
      (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 24, attributes: { token: true, wrap: true, unwrap: true, label: 'kek', id: 'k-1', 'wrap-template': { extractable: false }, 'unwrap-template': { decrypt: true, 'key-type': 'aes' } } })).handle,
      (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'generic-secret', lengthBytes: 40, attributes: { token: true, sign: true, verify: true, extractable: false } })).handle,
      ...Object.values(await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp384r1', privateAttributes: { token: true, sign: true, label: 'ec' }, publicAttributes: { token: true, verify: true, label: 'ec' } })),
      ...Object.values(await f.m.ok({ op: 'generateKeyPair', session: f.bob, keyType: 'rsa', modulusBits: 2048, privateAttributes: { token: true, decrypt: true, sensitive: true }, publicAttributes: { token: true, encrypt: true } })),
    ] as number[];
    await f.m.ok({ op: 'shareKey', session: f.alice, handle: handles[0]!, username: 'carol' });
    await f.m.ok({ op: 'setAttributes', session: f.alice, handle: handles[0]!, attributes: { label: 'kek, renamed' } });
    const described = async (m: typeof f.m, alice: string, bob: string) =>
      Promise.all(handles.map((handle, i) => m.ok({ op: 'getAttributes', session: i < 4 ? alice : bob, handle })));
    const before = await described(f.m, f.alice, f.bob);
    const { backup } = await f.m.ok({ op: 'createBackup', session: f.appliance });
    const target = await freshMember({ serviceKey: SERVICE, memberIndex: 1 });
    expect((await target.ok({ op: 'restoreBackup', backup })).keys).to.equal(handles.length);
    expect(await described(target, await target.login('alice', PASSWORDS.alice), await target.login('bob', PASSWORDS.bob))).to.deep.equal(before);
    expect(before[0]!.attributes.label).to.equal('kek, renamed');
    expect(before[0]!.sharedUsers).to.deep.equal(['carol']);
    // The same sync digests: the cluster's repair finds nothing to copy between the two.
    const digests = async (m: typeof f.m) => m.ok({ op: 'getSyncStatus', session: await m.login('app_user', PASSWORDS.app_user) });
    expect(await digests(target)).to.deep.equal(await digests(f.m));
  });

  it('a new member takes a backup of 1,200 keys (made a slice a turn) whole: outside a cluster until the restore ends, then with the source\'s sync digests', async () => {
    const f = await activatedMember({ serviceKey: SERVICE });
    for (let i = 0; i < 1200; i++) await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true, label: `k${i}`, encrypt: true } });
    const { backup } = await f.m.ok({ op: 'createBackup', session: f.appliance });
    const target = await freshMember({ serviceKey: SERVICE, memberIndex: 1 });
    const restoring = target.ok({ op: 'restoreBackup', backup });
    // Asked while the restore runs: the member answers, and nothing of the backup is on it yet.
    const during = await target.ok({ op: 'getHsmInfo' });
    expect(await restoring).to.deep.include({ keys: 1200, merged: false });
    const after = await target.ok({ op: 'getHsmInfo' });
    expect([during.clusterId, after.clusterId]).to.deep.equal([null, (await f.m.ok({ op: 'getHsmInfo' })).clusterId]);
    const digests = async (m: typeof f.m) => m.ok({ op: 'getSyncStatus', session: await m.login('app_user', PASSWORDS.app_user) });
    const [mine, theirs] = [await digests(target), await digests(f.m)];
    expect(mine.keys).to.have.length(1200);
    expect(mine).to.deep.equal(theirs);
  });

  it('packs a backup of 1,200 keys a slice a turn: changes asked meanwhile are answered before it is packed, and it holds every key as it was when it began', async () => {
    const f = await activatedMember({ serviceKey: SERVICE });
    const handles: number[] = [];
    for (let i = 0; i < 1200; i++) handles.push((await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true, label: `k${i}`, encrypt: true } })).handle);
    // In the second and third slices: the first is packed as the backup begins.
    const [renamed, shared, deleted] = [handles[700]!, handles[600]!, handles[1199]!];
    const wraps = wrapThreadUse().away;
    const backingUp = f.m.ok({ op: 'createBackup', session: f.appliance });
    await Promise.all([
      f.m.ok({ op: 'setAttributes', session: f.alice, handle: renamed, attributes: { label: 'renamed' } }),
      f.m.ok({ op: 'shareKey', session: f.alice, handle: shared, username: 'bob' }),
      f.m.ok({ op: 'deleteKey', session: f.alice, handle: deleted }),
    ]);
    // Its content goes to the wrap once it is packed: not yet.
    expect(wrapThreadUse().away, 'backups wrapped when the changes were answered').to.equal(wraps);
    const { backup } = await backingUp;
    expect(wrapThreadUse().away).to.equal(wraps + 1);
    const target = await freshMember({ serviceKey: SERVICE, memberIndex: 1 });
    expect(await target.ok({ op: 'restoreBackup', backup })).to.deep.include({ keys: 1200, merged: false });
    const alice = await target.login('alice', PASSWORDS.alice);
    const described = await Promise.all([renamed, shared, deleted].map((handle) => target.ok({ op: 'getAttributes', session: alice, handle })));
    expect(described.map((d) => [d.attributes.label, d.sharedUsers])).to.deep.equal([
      ['k700', []],
      ['k600', []],
      ['k1199', []],
    ]);
  });

  it('restores a format 1 backup (JSON content), made by an earlier version', async () => {
    const { fixture, target, alice } = await restoredFixture(1);
    expect((await target.ok({ op: 'getAttributes', session: alice, handle: fixture.aesHandle })).attributes.label).to.equal('v1-aes');
  });

  it('restores a format 2 backup (keys as rows in one MessagePack map), made by an earlier version: keys, shares and deletions', async () => {
    const { fixture, target, alice } = await restoredFixture(2);
    expect((await target.ok({ op: 'getAttributes', session: alice, handle: fixture.ecPrivateHandle })).attributes.label).to.equal('v2-ec');
    const status = await target.ok({ op: 'getSyncStatus', session: await target.login('app_user', PASSWORDS.app_user) });
    expect(status.deletedKeys.map((d) => d.handle)).to.deep.equal([fixture.deletedHandle]);
  });

  it('refuses a member of another manufacturer, another mode or another installation', async () => {
    const { backup } = await backedUp();
    const manufacturer = await freshMember({ serviceKey: SERVICE, manufacturerKey: OTHER_MANUFACTURER });
    expect((await manufacturer.fail({ op: 'restoreBackup', backup }, 'BACKUP_INVALID')).message).to.match(/another manufacturer/);
    const mode = await freshMember({ serviceKey: SERVICE, mode: 'non-fips' });
    expect((await mode.fail({ op: 'restoreBackup', backup }, 'BACKUP_INVALID')).message).to.match(/fips cluster and this member runs in non-fips mode/);
    const installation = await freshMember({ serviceKey: OTHER_SERVICE });
    expect((await installation.fail({ op: 'restoreBackup', backup }, 'BACKUP_INVALID')).message).to.match(/another installation's service key/);
    const none = await freshMember();
    expect((await none.fail({ op: 'restoreBackup', backup }, 'BAD_REQUEST')).message).to.equal('restoreBackup: this member has no service key (AKBK) configured, so it cannot make or open backups');
    // None of them changed.
    for (const m of [manufacturer, mode, installation, none]) expect((await m.ok({ op: 'getHsmInfo' })).clusterId).to.equal(null);
  });

  it('detects a flipped bit anywhere: header, wrapped backup key or content', async () => {
    const { backup } = await backedUp();
    const target = await freshMember({ serviceKey: SERVICE });
    const headerLength = Buffer.from(backup).readUInt32BE(5);
    const positions: [number, string][] = [
      [9 + 12, 'backup: its header was altered'],
      [9 + headerLength + 3, "backup: its backup key does not unwrap (another installation's service key, or it was altered)"],
      [9 + headerLength + 40 + 5, 'backup: its content fails the key-wrap integrity check (it was altered)'],
      [backup.length - 1, 'backup: its content fails the key-wrap integrity check (it was altered)'],
    ];
    for (const [at, message] of positions) {
      const altered = new Uint8Array(backup);
      altered[at]! ^= 0x04;
      expect((await target.fail({ op: 'restoreBackup', backup: altered }, 'BACKUP_INVALID')).message, `byte ${at}`).to.equal(message);
    }
    expect((await target.ok({ op: 'getHsmInfo' })).clusterId).to.equal(null);
    expect(readBackupHeader(backup).header.v).to.equal(2);
    await target.ok({ op: 'restoreBackup', backup });
  });

  it('a member in a cluster takes only its own cluster\'s backups, from its managers, and only what is newer', async () => {
    const { f, backup, token } = await backedUp();
    const other = await activatedMember({ serviceKey: SERVICE });
    expect((await other.m.fail({ op: 'restoreBackup', session: other.alice, backup }, 'PERMISSION_DENIED')).message).to.equal(
      'restoreBackup is not allowed for a crypto-user on a member that is in a cluster; it needs an admin or the appliance user',
    );
    expect((await other.m.fail({ op: 'restoreBackup', backup }, 'NOT_LOGGED_IN')).message).to.equal('restoreBackup: this member is in a cluster; log in first as an admin or the appliance user');
    expect((await other.m.fail({ op: 'restoreBackup', session: other.appliance, backup }, 'BACKUP_INVALID')).message).to.match(/an active member takes only its own cluster's backups/);
    // Its own cluster's backup is merged in: the key deleted since stays deleted, sessions stay.
    await f.m.ok({ op: 'deleteKey', session: f.alice, handle: token });
    const merged = await f.m.ok({ op: 'restoreBackup', session: f.appliance, backup });
    expect(merged.merged).to.equal(true);
    await f.m.fail({ op: 'getAttributes', session: f.alice, handle: token }, 'KEY_NOT_FOUND');
    await f.m.ok({ op: 'generateRandom', session: f.alice, length: 1 });
  });

  it('a member without a service key makes no backups', async () => {
    const f = await activatedMember();
    expect((await f.m.fail({ op: 'createBackup', session: f.admin }, 'BAD_REQUEST')).message).to.equal('createBackup: this member has no service key (AKBK) configured, so it cannot make or open backups');
  });

  it('names what is wrong with a backup that is not one, is cut short, has a damaged or newer header, and changes nothing', async () => {
    const { backup } = await backedUp();
    const target = await freshMember({ serviceKey: SERVICE });
    const data = Buffer.from(backup);
    const headerLength = data.readUInt32BE(5);
    const withHeader = (header: Buffer) => {
      const length = Buffer.alloc(4);
      length.writeUInt32BE(header.length);
      return new Uint8Array(Buffer.concat([data.subarray(0, 5), length, header, data.subarray(9 + headerLength)]));
    };
    const header = JSON.parse(data.subarray(9, 9 + headerLength).toString('utf8')) as Record<string, unknown>;
    const cases: [string, Uint8Array, string][] = [
      ['nine bytes of magic and length only', new Uint8Array(data.subarray(0, 8)), 'backup: not a Strongroom backup'],
      ['another magic', new Uint8Array(Buffer.concat([Buffer.from('SRBK2'), data.subarray(5)])), 'backup: not a Strongroom backup'],
      ['no room for the wrapped backup key and content', new Uint8Array(data.subarray(0, 9 + headerLength + 55)), 'backup: it is truncated'],
      ['a header longer than 4 KiB', withHeader(Buffer.alloc(4097, 0x20)), 'backup: it is truncated'],
      ['a header that is not JSON', withHeader(Buffer.from('{"v":1,')), 'backup: its header is damaged'],
      ['a newer format', withHeader(Buffer.from(JSON.stringify({ ...header, v: 3 }))), 'backup: it has format 3; this member reads 1 and 2'],
      ['a header changed after the backup was made', withHeader(Buffer.from(JSON.stringify({ ...header, createdAt: '2020-01-01T00:00:00.000Z' }))), 'backup: its header was altered'],
    ];
    for (const [what, blob, message] of cases) {
      expect((await target.fail({ op: 'restoreBackup', backup: blob }, 'BACKUP_INVALID')).message, what).to.equal(message);
    }
    // The shortest blob that is not cut short passes the length check and fails on its key.
    const shortest = new Uint8Array(data.subarray(0, 9 + headerLength + 56));
    expect((await target.fail({ op: 'restoreBackup', backup: shortest }, 'BACKUP_INVALID')).message).to.not.equal('backup: it is truncated');
    expect((await target.ok({ op: 'getHsmInfo' })).clusterId).to.equal(null);
    expect((await target.ok({ op: 'listUsers' })).users.map((u) => u.username)).to.deep.equal(['admin', 'app_user']);
  });

  it('a member takes backups of its own profile only, and only an active member is backed up', async () => {
    const { backup } = await backedUp();
    const unlimited = await freshMember({ serviceKey: SERVICE, profile: 'unlimited' });
    expect((await unlimited.fail({ op: 'restoreBackup', backup }, 'BACKUP_INVALID')).message).to.equal('backup: it comes from a cloudhsm member and this one runs the unlimited profile');
    // An hsm2m.medium backup does not restore onto an hsm1.medium HSM (the type is in its clear header).
    expect(readBackupHeader(backup).header.profile).to.equal('cloudhsm');
    const hsm1 = await freshMember({ serviceKey: SERVICE, profile: 'cloudhsm-hsm1' });
    expect((await hsm1.fail({ op: 'restoreBackup', backup }, 'BACKUP_INVALID')).message).to.equal('backup: it comes from a cloudhsm member and this one runs the cloudhsm-hsm1 profile');
    for (const m of [unlimited, hsm1]) expect((await m.ok({ op: 'getHsmInfo' })).clusterId).to.equal(null);
    const fresh = await freshMember({ serviceKey: SERVICE });
    const appliance = await fresh.login('app_user', PASSWORDS.app_user);
    expect((await fresh.fail({ op: 'createBackup', session: appliance }, 'CLUSTER_NOT_ACTIVE')).message).to.equal('only a member of an active cluster can be backed up');
  });

  it('restored onto a new member: every user with their failed logins, the deletions, quorum settings and addresses; the member keeps its own appliance user', async () => {
    const f = await activatedMember({ serviceKey: SERVICE });
    await f.m.ok({ op: 'setClusterAddresses', session: f.appliance, addresses: ['127.0.0.1:2300'] });
    await f.m.ok({ op: 'setQuorumTimeouts', session: f.admin, generated: 120 });
    await f.m.fail({ op: 'login', username: 'bob', password: 'not-bobs-password' }, 'LOGIN_FAILED');
    await f.m.ok({ op: 'createUser', session: f.admin, username: 'dave', password: 'dave-password', role: 'crypto-user' });
    await f.m.ok({ op: 'deleteUser', session: f.admin, username: 'dave' });
    const gone = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
    await f.m.ok({ op: 'deleteKey', session: f.alice, handle: gone });
    const { backup } = await f.m.ok({ op: 'createBackup', session: f.admin });

    const target = await freshMember({ serviceKey: SERVICE, memberIndex: 1, appliancePassword: 'target-appliance-password' });
    expect(await target.ok({ op: 'restoreBackup', backup })).to.deep.equal({ clusterId: (await f.m.ok({ op: 'getHsmInfo' })).clusterId, users: 5, keys: 0, merged: false });
    const byName = Object.fromEntries((await target.ok({ op: 'listUsers' })).users.map((u) => [u.username, u]));
    expect(Object.keys(byName)).to.deep.equal(['admin', 'admin2', 'alice', 'app_user', 'bob', 'carol']);
    expect(byName.bob!.failedLogins).to.equal(1);
    const appliance = await target.login('app_user', 'target-appliance-password');
    const [mine, theirs] = [await target.ok({ op: 'getSyncStatus', session: appliance }), await f.m.ok({ op: 'getSyncStatus', session: f.appliance })];
    expect(mine.summary).to.equal(theirs.summary);
    expect(mine.deletedUsers.map((d) => d.username)).to.deep.equal(['dave']);
    expect(mine.deletedKeys.map((d) => d.handle)).to.deep.equal([gone]);
    expect((await target.ok({ op: 'getQuorumSettings' })).timeouts.generated).to.equal(120);
    expect((await target.ok({ op: 'getHsmInfo' })).clusterAddresses).to.deep.equal(['127.0.0.1:2300']);
    // Its clock has caught up: what it stamps next is newer than anything in the backup.
    const handle = (await target.ok({ op: 'generateKey', session: await target.login('alice', PASSWORDS.alice), keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
    const stamped = (await target.ok({ op: 'getSyncStatus', session: appliance })).keys.find((k) => k.handle === handle)!.gen;
    expect(stamped).to.be.greaterThan(Math.max(...theirs.deletedKeys.map((d) => d.gen), ...theirs.deletedUsers.map((d) => d.gen), theirs.settingsGen));
  });

  it('asNewCluster makes a new cluster from a backup: a new id, no addresses, the same users and keys', async () => {
    const { f, token } = await backedUp();
    await f.m.ok({ op: 'setClusterAddresses', session: f.appliance, addresses: ['127.0.0.1:2300'] });
    const { backup: withAddresses } = await f.m.ok({ op: 'createBackup', session: f.admin });
    const target = await freshMember({ serviceKey: SERVICE });
    const restored = await target.ok({ op: 'restoreBackup', backup: withAddresses, asNewCluster: true });
    const source = (await f.m.ok({ op: 'getHsmInfo' })).clusterId;
    expect(restored.clusterId).to.match(/^cluster-[0-9a-f]{16}$/).and.not.equal(source);
    const info = await target.ok({ op: 'getHsmInfo' });
    expect([info.clusterId, info.clusterAddresses, info.state]).to.deep.equal([restored.clusterId, [], 'active']);
    await target.ok({ op: 'getAttributes', session: await target.login('alice', PASSWORDS.alice), handle: token });
  });

  it('with quorum on the user service, the appliance user still restores onto an active member without approvals (the cluster\'s own repair)', async () => {
    const { f, backup } = await backedUp();
    await f.m.ok({ op: 'createUser', session: f.admin, username: 'admin3', password: 'admin3-password', role: 'admin' });
    await f.m.ok({ op: 'setQuorumValue', session: f.admin, service: 'user', value: 2 });
    expect((await f.m.ok({ op: 'restoreBackup', session: f.appliance, backup })).merged).to.equal(true);
    await f.m.fail({ op: 'restoreBackup', session: f.admin, backup }, 'QUORUM_APPROVAL_REQUIRED');
  });
});
