/**
 * Backups inside the member: EBK under PBK (MKBK + AKBK + mode), restore rules and tampering.
 */
import { expect } from 'chai';
import { readBackupHeader } from '../../src/hsm-core/index.js';
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

  it('refuses a member of another manufacturer, another mode or another installation', async () => {
    const { backup } = await backedUp();
    const manufacturer = await freshMember({ serviceKey: SERVICE, manufacturerKey: OTHER_MANUFACTURER });
    expect((await manufacturer.fail({ op: 'restoreBackup', backup }, 'BACKUP_INVALID')).message).to.match(/another manufacturer/);
    const mode = await freshMember({ serviceKey: SERVICE, mode: 'non-fips' });
    expect((await mode.fail({ op: 'restoreBackup', backup }, 'BACKUP_INVALID')).message).to.match(/fips cluster and this member runs in non-fips mode/);
    const installation = await freshMember({ serviceKey: OTHER_SERVICE });
    expect((await installation.fail({ op: 'restoreBackup', backup }, 'BACKUP_INVALID')).message).to.match(/another installation's service key/);
    const none = await freshMember();
    expect((await none.fail({ op: 'restoreBackup', backup }, 'BAD_REQUEST')).message).to.match(/no service key/);
    // None of them changed.
    for (const m of [manufacturer, mode, installation, none]) expect((await m.ok({ op: 'getHsmInfo' })).clusterId).to.equal(null);
  });

  it('detects a flipped bit anywhere: header, wrapped backup key or content', async () => {
    const { backup } = await backedUp();
    const target = await freshMember({ serviceKey: SERVICE });
    const headerLength = Buffer.from(backup).readUInt32BE(5);
    const positions = [9 + 12, 9 + headerLength + 3, 9 + headerLength + 40 + 5, backup.length - 1];
    for (const at of positions) {
      const altered = new Uint8Array(backup);
      altered[at]! ^= 0x04;
      await target.fail({ op: 'restoreBackup', backup: altered }, 'BACKUP_INVALID');
    }
    expect((await target.ok({ op: 'getHsmInfo' })).clusterId).to.equal(null);
    expect(readBackupHeader(backup).header.v).to.equal(1);
    await target.ok({ op: 'restoreBackup', backup });
  });

  it('a member in a cluster takes only its own cluster\'s backups, from its managers, and only what is newer', async () => {
    const { f, backup, token } = await backedUp();
    const other = await activatedMember({ serviceKey: SERVICE });
    await other.m.fail({ op: 'restoreBackup', session: other.alice, backup }, 'PERMISSION_DENIED');
    await other.m.fail({ op: 'restoreBackup', backup }, 'NOT_LOGGED_IN');
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
    expect((await f.m.fail({ op: 'createBackup', session: f.admin }, 'BAD_REQUEST')).message).to.match(/no service key \(AKBK\)/);
  });
});
