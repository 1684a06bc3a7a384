/**
 * How versions meet (merge.ts), through the sync operations of two members of one cluster: a
 * newer key, user or settings version is applied, the same one again is `same`, an older one is
 * refused as MASKED_OBJECT_STALE and changes nothing, and a deletion beats every copy of what it
 * deleted.
 */
import { expect } from 'chai';
import { PASSWORDS, activatedMember, freshMember, type Fixture, type TestMember } from '../helpers/member.js';

const SERVICE_KEY = new Uint8Array(32).fill(7);

/** A cluster of two members: `f` activated, `g` joined from f's backup (so it holds the same masking key). */
async function pair(): Promise<{ f: Fixture; g: TestMember; gAppliance: string }> {
  const f = await activatedMember({ serviceKey: SERVICE_KEY });
  const g = await freshMember({ serviceKey: SERVICE_KEY, memberIndex: 1 });
  await g.ok({ op: 'restoreBackup', backup: (await f.m.ok({ op: 'createBackup', session: f.admin })).backup });
  return { f, g, gAppliance: await g.login('app_user', PASSWORDS.app_user) };
}

describe('hsm-core: merging versions from another member', () => {
  it('keys: a newer version is applied, the same one is same, an older one is stale and changes nothing', async () => {
    const { f, g, gAppliance } = await pair();
    const handle = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true, label: 'v1' } })).handle;
    const v1 = (await f.m.ok({ op: 'extractMaskedObject', session: f.appliance, handle })).maskedObject;
    expect(await g.ok({ op: 'insertMaskedObject', session: gAppliance, maskedObject: v1 })).to.deep.equal({ handle, deleted: false, merged: 'applied' });

    await f.m.ok({ op: 'setAttributes', session: f.alice, handle, attributes: { label: 'v2' } });
    const v2 = (await f.m.ok({ op: 'extractMaskedObject', session: f.appliance, handle })).maskedObject;
    expect(await g.ok({ op: 'insertMaskedObject', session: gAppliance, maskedObject: v2 })).to.deep.equal({ handle, deleted: false, merged: 'applied' });
    expect(await g.ok({ op: 'insertMaskedObject', session: gAppliance, maskedObject: v2 })).to.deep.equal({ handle, deleted: false, merged: 'same' });
    const gAlice = await g.login('alice', PASSWORDS.alice);
    expect((await g.ok({ op: 'getAttributes', session: gAlice, handle })).attributes.label).to.equal('v2');

    const e = await g.fail({ op: 'insertMaskedObject', session: gAppliance, maskedObject: v1 }, 'MASKED_OBJECT_STALE');
    expect(e.message).to.match(/^maskedObject: this member holds a newer version of key 0x[0-9a-f]+; an older copy never replaces a newer one$/);
    expect((await g.ok({ op: 'getAttributes', session: gAlice, handle })).attributes.label).to.equal('v2');
  });

  it('key deletions: the tombstone removes the key once (applied, then same), and no copy brings it back', async () => {
    const { f, g, gAppliance } = await pair();
    const handle = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
    const copy = (await f.m.ok({ op: 'extractMaskedObject', session: f.appliance, handle })).maskedObject;
    await g.ok({ op: 'insertMaskedObject', session: gAppliance, maskedObject: copy });
    await f.m.ok({ op: 'deleteKey', session: f.alice, handle });
    const tombstone = await f.m.ok({ op: 'extractMaskedObject', session: f.appliance, handle });
    expect(tombstone.deleted).to.equal(true);
    expect(await g.ok({ op: 'insertMaskedObject', session: gAppliance, maskedObject: tombstone.maskedObject })).to.deep.equal({ handle, deleted: true, merged: 'applied' });
    expect(await g.ok({ op: 'insertMaskedObject', session: gAppliance, maskedObject: tombstone.maskedObject })).to.deep.equal({ handle, deleted: true, merged: 'same' });
    const e = await g.fail({ op: 'insertMaskedObject', session: gAppliance, maskedObject: copy }, 'MASKED_OBJECT_STALE');
    expect(e.message).to.contain('was deleted on this member; a deleted key never comes back');
    expect((await g.ok({ op: 'getSyncStatus', session: gAppliance })).deletedKeys.map((d) => d.handle)).to.include(handle);
    // A tombstone for a key this member never had retires the handle too.
    const other = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
    await f.m.ok({ op: 'deleteKey', session: f.alice, handle: other });
    const unseen = (await f.m.ok({ op: 'extractMaskedObject', session: f.appliance, handle: other })).maskedObject;
    expect(await g.ok({ op: 'insertMaskedObject', session: gAppliance, maskedObject: unseen })).to.deep.equal({ handle: other, deleted: true, merged: 'applied' });
  });

  it('a key whose owner is not a crypto user on this member is refused until users are synchronised', async () => {
    const { f, g, gAppliance } = await pair();
    const gAdmin = await g.login('admin', PASSWORDS.admin);
    await f.m.ok({ op: 'createUser', session: f.admin, username: 'erin', password: 'erin-password', role: 'crypto-user' });
    const erin = await f.m.login('erin', 'erin-password');
    const handle = (await f.m.ok({ op: 'generateKey', session: erin, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
    const copy = (await f.m.ok({ op: 'extractMaskedObject', session: f.appliance, handle })).maskedObject;
    const before = await g.ok({ op: 'getSyncStatus', session: gAppliance });
    const e = await g.fail({ op: 'insertMaskedObject', session: gAppliance, maskedObject: copy }, 'MASKED_OBJECT_INVALID');
    expect(e.message).to.equal('maskedObject: its owner erin is not a crypto user on this member; synchronise users first');
    expect(await g.ok({ op: 'getSyncStatus', session: gAppliance })).to.deep.equal(before);
    // An admin of the same name does not own it either.
    await g.ok({ op: 'createUser', session: gAdmin, username: 'erin', password: 'erin-password', role: 'admin' });
    await g.fail({ op: 'insertMaskedObject', session: gAppliance, maskedObject: copy }, 'MASKED_OBJECT_INVALID');
  });

  it('users: a newer version (a new password) is applied, the same is same, an older one is stale', async () => {
    const { f, g, gAppliance } = await pair();
    await f.m.ok({ op: 'createUser', session: f.admin, username: 'dave', password: 'dave-password', role: 'crypto-user' });
    const v1 = (await f.m.ok({ op: 'extractMaskedUser', session: f.appliance, username: 'dave' })).maskedUser;
    expect(await g.ok({ op: 'insertMaskedUser', session: gAppliance, maskedUser: v1 })).to.deep.equal({ username: 'dave', deleted: false, merged: 'applied' });
    expect(await g.ok({ op: 'insertMaskedUser', session: gAppliance, maskedUser: v1 })).to.deep.equal({ username: 'dave', deleted: false, merged: 'same' });
    await f.m.ok({ op: 'changePassword', session: f.admin, username: 'dave', password: 'dave-new-password' });
    const v2 = (await f.m.ok({ op: 'extractMaskedUser', session: f.appliance, username: 'dave' })).maskedUser;
    expect(await g.ok({ op: 'insertMaskedUser', session: gAppliance, maskedUser: v2 })).to.deep.equal({ username: 'dave', deleted: false, merged: 'applied' });
    expect(await g.ok({ op: 'insertMaskedUser', session: gAppliance, maskedUser: v2 })).to.deep.equal({ username: 'dave', deleted: false, merged: 'same' });
    const e = await g.fail({ op: 'insertMaskedUser', session: gAppliance, maskedUser: v1 }, 'MASKED_OBJECT_STALE');
    expect(e.message).to.equal('maskedUser: this member holds a newer version of dave; an older copy never replaces a newer one');
    await g.fail({ op: 'login', username: 'dave', password: 'dave-password' }, 'LOGIN_FAILED');
    await g.login('dave', 'dave-new-password');
  });

  it('user deletions: applied once, then same; they end the user\'s sessions and shares there; an older copy of the user is stale', async () => {
    const { f, g, gAppliance } = await pair();
    await f.m.ok({ op: 'createUser', session: f.admin, username: 'dave', password: 'dave-password', role: 'crypto-user' });
    const old = (await f.m.ok({ op: 'extractMaskedUser', session: f.appliance, username: 'dave' })).maskedUser;
    await g.ok({ op: 'insertMaskedUser', session: gAppliance, maskedUser: old });
    const gAlice = await g.login('alice', PASSWORDS.alice);
    const handle = (await g.ok({ op: 'generateKey', session: gAlice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
    await g.ok({ op: 'shareKey', session: gAlice, handle, username: 'dave' });
    const gDave = await g.login('dave', 'dave-password');
    await f.m.ok({ op: 'deleteUser', session: f.admin, username: 'dave' });
    const deletion = await f.m.ok({ op: 'extractMaskedUser', session: f.appliance, username: 'dave' });
    expect(deletion.deleted).to.equal(true);
    expect(await g.ok({ op: 'insertMaskedUser', session: gAppliance, maskedUser: deletion.maskedUser })).to.deep.equal({ username: 'dave', deleted: true, merged: 'applied' });
    expect(await g.ok({ op: 'insertMaskedUser', session: gAppliance, maskedUser: deletion.maskedUser })).to.deep.equal({ username: 'dave', deleted: true, merged: 'same' });
    await g.fail({ op: 'findKeys', session: gDave }, 'NOT_LOGGED_IN');
    expect((await g.ok({ op: 'getAttributes', session: gAlice, handle })).sharedUsers).to.deep.equal([]);
    const e = await g.fail({ op: 'insertMaskedUser', session: gAppliance, maskedUser: old }, 'MASKED_OBJECT_STALE');
    expect(e.message).to.equal('maskedUser: this member holds a newer version of dave (its deletion); an older copy never replaces a newer one');
    expect((await g.ok({ op: 'listUsers' })).users.map((u) => u.username)).not.to.include('dave');
  });

  it('the appliance user never travels', async () => {
    const { f } = await pair();
    const e = await f.m.fail({ op: 'extractMaskedUser', session: f.appliance, username: 'app_user' }, 'PERMISSION_DENIED');
    expect(e.message).to.equal('the appliance user is per member and does not travel');
  });

  it('settings: newer quorum values are applied, the same are same, older ones are stale and change nothing', async () => {
    const { f, g, gAppliance } = await pair();
    const v1 = (await f.m.ok({ op: 'extractMaskedSettings', session: f.appliance })).maskedSettings;
    expect(await g.ok({ op: 'insertMaskedSettings', session: gAppliance, maskedSettings: v1 })).to.deep.equal({ merged: 'same' });
    await f.m.ok({ op: 'setQuorumTimeouts', session: f.admin, generated: 300 });
    const v2 = (await f.m.ok({ op: 'extractMaskedSettings', session: f.appliance })).maskedSettings;
    expect(await g.ok({ op: 'insertMaskedSettings', session: gAppliance, maskedSettings: v2 })).to.deep.equal({ merged: 'applied' });
    expect(await g.ok({ op: 'insertMaskedSettings', session: gAppliance, maskedSettings: v2 })).to.deep.equal({ merged: 'same' });
    const e = await g.fail({ op: 'insertMaskedSettings', session: gAppliance, maskedSettings: v1 }, 'MASKED_OBJECT_STALE');
    expect(e.message).to.equal('maskedSettings: this member holds newer cluster settings; an older copy never replaces a newer one');
    expect((await g.ok({ op: 'getQuorumSettings', session: gAppliance })).timeouts).to.deep.equal({ generated: 300, approved: 600 });
  });

  it('sync digests follow every change (a key\'s attributes and shares, a user\'s password) and agree once both members hold the same versions', async () => {
    const { f, g, gAppliance } = await pair();
    const handle = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
    const push = async () => {
      await g.ok({ op: 'insertMaskedObject', session: gAppliance, maskedObject: (await f.m.ok({ op: 'extractMaskedObject', session: f.appliance, handle })).maskedObject });
      await g.ok({ op: 'insertMaskedUser', session: gAppliance, maskedUser: (await f.m.ok({ op: 'extractMaskedUser', session: f.appliance, username: 'carol' })).maskedUser });
    };
    const digests = async (m: TestMember, session: string) => {
      const status = await m.ok({ op: 'getSyncStatus', session });
      return { key: status.keys.find((k) => k.handle === handle)!.digest, carol: status.users.find((u) => u.username === 'carol')!.digest };
    };
    await push();
    const first = await digests(f.m, f.appliance);
    expect(await digests(g, gAppliance)).to.deep.equal(first);

    await f.m.ok({ op: 'setAttributes', session: f.alice, handle, attributes: { label: 'changed' } });
    const labelled = await digests(f.m, f.appliance);
    expect(labelled.key).to.not.equal(first.key);
    await f.m.ok({ op: 'shareKey', session: f.alice, handle, username: 'bob' });
    const shared = await digests(f.m, f.appliance);
    expect(shared.key).to.not.equal(labelled.key);
    await f.m.ok({ op: 'logout', session: f.carol });
    await f.m.ok({ op: 'changePassword', session: f.admin, username: 'carol', password: 'carol-new-password' });
    const changed = await digests(f.m, f.appliance);
    expect(changed.carol).to.not.equal(first.carol);
    expect(await digests(g, gAppliance)).to.deep.equal(first);

    await push();
    expect(await digests(g, gAppliance)).to.deep.equal(changed);

    // Deleting a user drops their shares without a new key version: the key's digest still follows.
    await f.m.ok({ op: 'logout', session: f.bob });
    await f.m.ok({ op: 'deleteUser', session: f.admin, username: 'bob' });
    expect((await digests(f.m, f.appliance)).key).to.not.equal(changed.key);
  });

  it('members that hold the same things give the same sync summary, whatever order they learned them in', async () => {
    const { f, g, gAppliance } = await pair();
    const made: number[] = [];
    for (let i = 0; i < 4; i++) made.push((await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle);
    for (const name of ['zoe', 'yann', 'xavier', 'walt']) await f.m.ok({ op: 'createUser', session: f.admin, username: name, password: `${name}-password`, role: 'crypto-user' });
    await f.m.ok({ op: 'deleteKey', session: f.alice, handle: made[0]! });
    await f.m.ok({ op: 'deleteKey', session: f.alice, handle: made[1]! });
    for (const name of ['zoe', 'yann']) await f.m.ok({ op: 'deleteUser', session: f.admin, username: name });
    // g learns it all backwards: the last key first, the users and deletions in the other order.
    const key = async (handle: number) => (await f.m.ok({ op: 'extractMaskedObject', session: f.appliance, handle })).maskedObject;
    const user = async (username: string) => (await f.m.ok({ op: 'extractMaskedUser', session: f.appliance, username })).maskedUser;
    for (const name of ['walt', 'xavier', 'yann', 'zoe']) await g.ok({ op: 'insertMaskedUser', session: gAppliance, maskedUser: await user(name) });
    for (const handle of [...made].reverse()) await g.ok({ op: 'insertMaskedObject', session: gAppliance, maskedObject: await key(handle) });
    const full = await f.m.ok({ op: 'getSyncStatus', session: f.appliance });
    const theirs = await g.ok({ op: 'getSyncStatus', session: gAppliance });
    expect(theirs).to.deep.equal(full);
    expect(full.deletedKeys.map((d) => d.handle)).to.deep.equal([made[0], made[1]]);
    expect(full.deletedUsers.map((d) => d.username)).to.deep.equal(['yann', 'zoe']);
    // The summary alone: the same digest, and none of the lists.
    expect(await g.ok({ op: 'getSyncStatus', session: gAppliance, summaryOnly: true })).to.deep.equal({
      summary: full.summary,
      keys: [],
      users: [],
      settings: full.settings,
      settingsGen: full.settingsGen,
      deletedKeys: [],
      deletedUsers: [],
    });
  });
});
