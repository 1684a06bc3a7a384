/**
 * Rollback and replay by one insider (issue 14, items 2 and 3): an old backup restored onto an
 * active member, and old masked users and masked keys inserted again, bring back nothing that was
 * deleted or changed since — not a deleted admin, not an old quorum value, not a deleted key, not
 * a share that was taken away. Each attack runs through the member's public door.
 */
import { expect } from 'chai';
import { PASSWORDS, activatedMember, freshMember, type Fixture } from '../helpers/member.js';

const SERVICE = new Uint8Array(32).fill(4);

/** A member with a backup taken before admin2 was deleted, the quorum values raised, and a key deleted. */
async function afterChanges(): Promise<{ f: Fixture; old: Uint8Array; key: number }> {
  const f = await activatedMember({ serviceKey: SERVICE });
  const key = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { token: true, encrypt: true, decrypt: true } })).handle;
  await f.m.ok({ op: 'shareKey', session: f.alice, handle: key, username: 'bob' });
  const old = (await f.m.ok({ op: 'createBackup', session: f.admin })).backup;
  await f.m.ok({ op: 'deleteUser', session: f.admin, username: 'admin2' });
  await f.m.ok({ op: 'setQuorumTimeouts', session: f.admin, generated: 300 });
  await f.m.ok({ op: 'logout', session: f.carol });
  await f.m.ok({ op: 'changePassword', session: f.admin, username: 'carol', password: 'carol-new-password' });
  await f.m.ok({ op: 'deleteKey', session: f.alice, handle: key });
  return { f, old, key };
}

async function expectNothingCameBack(f: Fixture, key: number): Promise<void> {
  const users = (await f.m.ok({ op: 'listUsers' })).users.map((u) => u.username);
  expect(users).not.to.include('admin2');
  await f.m.fail({ op: 'login', username: 'admin2', password: PASSWORDS.admin2 }, 'USER_NOT_FOUND');
  expect((await f.m.ok({ op: 'getQuorumSettings' })).timeouts.generated).to.equal(300);
  await f.m.fail({ op: 'login', username: 'carol', password: PASSWORDS.carol }, 'LOGIN_FAILED');
  await f.m.fail({ op: 'getAttributes', session: f.alice, handle: key }, 'KEY_NOT_FOUND');
}

describe('security: rollback by restore', () => {
  it('item 2: an old backup restored onto an active member by an admin brings back nothing deleted or changed since', async () => {
    const { f, old, key } = await afterChanges();
    await f.m.ok({ op: 'restoreBackup', session: f.admin, backup: old });
    await expectNothingCameBack(f, key);
  });

  it('item 2: nor by the appliance user', async () => {
    const { f, old, key } = await afterChanges();
    await f.m.ok({ op: 'restoreBackup', session: f.appliance, backup: old });
    await expectNothingCameBack(f, key);
  });

  it('item 2: an active member takes no other cluster\'s backup and is not made a new cluster', async () => {
    const { f, old } = await afterChanges();
    const other = await activatedMember({ serviceKey: SERVICE });
    const foreign = (await other.m.ok({ op: 'createBackup', session: other.admin })).backup;
    expect((await f.m.fail({ op: 'restoreBackup', session: f.admin, backup: foreign }, 'BACKUP_INVALID')).message).to.contain("takes only its own cluster's backups");
    expect((await f.m.fail({ op: 'restoreBackup', session: f.admin, backup: old, asNewCluster: true }, 'BAD_REQUEST')).message).to.contain('already in cluster');
  });

  it('item 2: with quorum on the user service, an admin\'s restore onto an active member needs its approval', async () => {
    const { f, old } = await afterChanges();
    await f.m.ok({ op: 'createUser', session: f.admin, username: 'admin4', password: 'admin4-password', role: 'admin' });
    await f.m.ok({ op: 'setQuorumValue', session: f.admin, service: 'user', value: 2 });
    const e = await f.m.fail({ op: 'restoreBackup', session: f.admin, backup: old }, 'QUORUM_APPROVAL_REQUIRED');
    expect(e.message).to.contain('Quorum approval is required for this operation');
  });
});

describe('security: replayed masked users and masked keys', () => {
  it('item 3: a deleted admin does not come back from their old masked user', async () => {
    const f = await activatedMember();
    const masked = (await f.m.ok({ op: 'extractMaskedUser', session: f.admin, username: 'admin2' })).maskedUser;
    await f.m.ok({ op: 'deleteUser', session: f.admin, username: 'admin2' });
    for (const session of [f.admin, f.appliance]) {
      expect((await f.m.fail({ op: 'insertMaskedUser', session, maskedUser: masked }, 'MASKED_OBJECT_STALE')).message).to.contain('newer version of admin2');
    }
    expect((await f.m.ok({ op: 'listUsers' })).users.map((u) => u.username)).not.to.include('admin2');
    // Nor does an old password: carol's masked user before her password changed.
    const carol = (await f.m.ok({ op: 'extractMaskedUser', session: f.admin, username: 'carol' })).maskedUser;
    await f.m.ok({ op: 'logout', session: f.carol });
    await f.m.ok({ op: 'changePassword', session: f.admin, username: 'carol', password: 'carol-new-password' });
    await f.m.fail({ op: 'insertMaskedUser', session: f.admin, maskedUser: carol }, 'MASKED_OBJECT_STALE');
    await f.m.fail({ op: 'login', username: 'carol', password: PASSWORDS.carol }, 'LOGIN_FAILED');
  });

  it('item 3: a user unshared from a key cannot bring the key (or their share) back from an old masked object', async () => {
    const f = await activatedMember();
    const key = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { token: true, encrypt: true, decrypt: true } })).handle;
    await f.m.ok({ op: 'shareKey', session: f.alice, handle: key, username: 'bob' });
    // bob keeps a copy of the key as it was while it was shared with him.
    const old = (await f.m.ok({ op: 'extractMaskedObject', session: f.bob, handle: key })).maskedObject;
    await f.m.ok({ op: 'unshareKey', session: f.alice, handle: key, username: 'bob' });
    await f.m.fail({ op: 'insertMaskedObject', session: f.bob, maskedObject: old }, 'MASKED_OBJECT_STALE');
    await f.m.fail({ op: 'encrypt', session: f.bob, handle: key, mechanism: { name: 'aes-gcm' }, data: new Uint8Array(1) }, 'KEY_NOT_FOUND');
    // Deleted, it stays deleted.
    await f.m.ok({ op: 'deleteKey', session: f.alice, handle: key });
    expect((await f.m.fail({ op: 'insertMaskedObject', session: f.bob, maskedObject: old }, 'MASKED_OBJECT_STALE')).message).to.contain('a deleted key never comes back');
    await f.m.fail({ op: 'encrypt', session: f.bob, handle: key, mechanism: { name: 'aes-gcm' }, data: new Uint8Array(1) }, 'KEY_NOT_FOUND');
    await f.m.fail({ op: 'getAttributes', session: f.alice, handle: key }, 'KEY_NOT_FOUND');
  });

  it('item 3: deletions survive a restart and travel to a member that missed them', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'strongroom-tomb-'));
    try {
      const f = await activatedMember({ serviceKey: SERVICE, dataDir: join(dir, 'a') });
      const b = await freshMember({ serviceKey: SERVICE, memberIndex: 1 });
      await b.ok({ op: 'restoreBackup', backup: (await f.m.ok({ op: 'createBackup', session: f.admin })).backup });
      const key = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
      const copy = (await f.m.ok({ op: 'extractMaskedObject', session: f.alice, handle: key })).maskedObject;
      await f.m.ok({ op: 'deleteKey', session: f.alice, handle: key });
      const tombstone = await f.m.ok({ op: 'extractMaskedObject', session: f.admin, handle: key });
      expect(tombstone.deleted).to.equal(true);
      await f.m.member.close();
      // After a restart the member still refuses the old copy.
      const again = await activatedMemberAt(join(dir, 'a'));
      const appliance = await again.login('app_user', PASSWORDS.app_user);
      await again.fail({ op: 'insertMaskedObject', session: appliance, maskedObject: copy }, 'MASKED_OBJECT_STALE');
      expect((await again.ok({ op: 'getSyncStatus', session: appliance })).deletedKeys.map((d) => d.handle)).to.include(key);
      // A member that had the key takes its deletion, and then refuses the old copy too.
      const bApp = await b.login('app_user', PASSWORDS.app_user);
      await b.ok({ op: 'insertMaskedObject', session: bApp, maskedObject: copy });
      expect((await b.ok({ op: 'insertMaskedObject', session: bApp, maskedObject: tombstone.maskedObject })).merged).to.equal('applied');
      await b.fail({ op: 'insertMaskedObject', session: bApp, maskedObject: copy }, 'MASKED_OBJECT_STALE');
      await again.member.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

async function activatedMemberAt(dataDir: string) {
  return freshMember({ serviceKey: SERVICE, dataDir });
}
