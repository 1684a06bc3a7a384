/**
 * How versions meet (merge.ts), through the sync operations of two members of one cluster: a
 * newer key, user or settings version is applied, the same one again is `same`, an older one is
 * refused as MASKED_OBJECT_STALE and changes nothing, and a deletion beats every copy of what it
 * deleted.
 */
import { expect } from 'chai';
import { PASSWORDS, activatedMember, bytes, freshMember, type Fixture, type TestMember } from '../helpers/member.js';
import { signDigest, tokenOf, tokenSignKey } from '../helpers/quorum.js';

const SERVICE_KEY = new Uint8Array(32).fill(7);
const keyHex = (handle: number) => `0x${handle.toString(16).padStart(16, '0')}`;

/** A cluster of two members: `f` activated, `g` joined from f's backup (so it holds the same masking key). */
async function pair(): Promise<{ f: Fixture; g: TestMember; gAppliance: string }> {
  const f = await activatedMember({ serviceKey: SERVICE_KEY });
  const g = await freshMember({ serviceKey: SERVICE_KEY, memberIndex: 1 });
  await g.ok({ op: 'restoreBackup', backup: (await f.m.ok({ op: 'createBackup', session: f.admin })).backup });
  return { f, g, gAppliance: await g.login('app_user', PASSWORDS.app_user) };
}

/**
 * Two members given the same index (a misconfiguration, but the only way to get two different
 * versions with one generation on demand): their handle counters and clocks run in step, so each
 * hands out the same handle and stamps the same generation for its next change.
 */
async function twins(): Promise<{ f: Fixture; g: TestMember; gAppliance: string; gAlice: string }> {
  const f = await activatedMember({ serviceKey: SERVICE_KEY });
  const g = await freshMember({ serviceKey: SERVICE_KEY, memberIndex: 0 });
  await g.ok({ op: 'restoreBackup', backup: (await f.m.ok({ op: 'createBackup', session: f.admin })).backup });
  return { f, g, gAppliance: await g.login('app_user', PASSWORDS.app_user), gAlice: await g.login('alice', PASSWORDS.alice) };
}

const RAW_AES = bytes('00112233445566778899aabbccddeeff');

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

  it('a deletion alone tells two members apart: one that holds a key\'s or a user\'s tombstone and one that never heard of them give two summaries', async () => {
    const { f, g, gAppliance } = await pair();
    const { handle } = await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } });
    await f.m.ok({ op: 'deleteKey', session: f.alice, handle });
    const summary = async (m: TestMember, session: string) => (await m.ok({ op: 'getSyncStatus', session, summaryOnly: true })).summary;
    expect(await summary(g, gAppliance)).to.not.equal(await summary(f.m, f.appliance));
    const { maskedObject, deleted } = await f.m.ok({ op: 'extractMaskedObject', session: f.appliance, handle });
    expect(deleted).to.equal(true);
    await g.ok({ op: 'insertMaskedObject', session: gAppliance, maskedObject });
    expect(await summary(g, gAppliance)).to.equal(await summary(f.m, f.appliance));
    // The same for a user.
    await f.m.ok({ op: 'createUser', session: f.admin, username: 'brief', password: 'brief-password', role: 'crypto-user' });
    await f.m.ok({ op: 'deleteUser', session: f.admin, username: 'brief' });
    expect(await summary(g, gAppliance)).to.not.equal(await summary(f.m, f.appliance));
    await g.ok({ op: 'insertMaskedUser', session: gAppliance, maskedUser: (await f.m.ok({ op: 'extractMaskedUser', session: f.appliance, username: 'brief' })).maskedUser });
    expect(await summary(g, gAppliance)).to.equal(await summary(f.m, f.appliance));
  });

  it('two versions with one generation settle on the same one on both members (keys, users, settings)', async () => {
    const { f, g, gAppliance, gAlice } = await twins();
    const gAdmin = await g.login('admin', PASSWORDS.admin);
    const handle = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
    await g.ok({ op: 'insertMaskedObject', session: gAppliance, maskedObject: (await f.m.ok({ op: 'extractMaskedObject', session: f.appliance, handle })).maskedObject });
    const status = (m: TestMember, session: string) => m.ok({ op: 'getSyncStatus', session });

    await f.m.ok({ op: 'setAttributes', session: f.alice, handle, attributes: { label: 'from f' } });
    await g.ok({ op: 'setAttributes', session: gAlice, handle, attributes: { label: 'from g' } });
    await f.m.ok({ op: 'logout', session: f.carol });
    await f.m.ok({ op: 'changePassword', session: f.admin, username: 'carol', password: 'carol-password-f' });
    await g.ok({ op: 'changePassword', session: gAdmin, username: 'carol', password: 'carol-password-g' });
    await f.m.ok({ op: 'setQuorumTimeouts', session: f.admin, generated: 300 });
    await g.ok({ op: 'setQuorumTimeouts', session: gAdmin, generated: 400 });
    const [fs, gs] = [await status(f.m, f.appliance), await status(g, gAppliance)];
    const keyOf = (s: typeof fs) => s.keys.find((k) => k.handle === handle)!;
    const carolOf = (s: typeof fs) => s.users.find((u) => u.username === 'carol')!;
    expect([keyOf(gs).gen, carolOf(gs).gen, gs.settingsGen]).to.deep.equal([keyOf(fs).gen, carolOf(fs).gen, fs.settingsGen]);
    expect(keyOf(gs).digest).to.not.equal(keyOf(fs).digest);
    expect(carolOf(gs).digest).to.not.equal(carolOf(fs).digest);
    expect(gs.settings).to.not.equal(fs.settings);

    // Each member is offered the other's version: exactly one of the two takes it.
    const exchange = async (extract: (m: TestMember, session: string) => Promise<Uint8Array>, insert: (m: TestMember, session: string, v: Uint8Array) => Promise<string>) => {
      const [fromF, fromG] = [await extract(f.m, f.appliance), await extract(g, gAppliance)];
      return [await insert(g, gAppliance, fromF), await insert(f.m, f.appliance, fromG)].sort();
    };
    expect(
      await exchange(
        async (m, session) => (await m.ok({ op: 'extractMaskedObject', session, handle })).maskedObject,
        async (m, session, maskedObject) => (await m.ok({ op: 'insertMaskedObject', session, maskedObject })).merged,
      ),
    ).to.deep.equal(['applied', 'stale']);
    expect(
      await exchange(
        async (m, session) => (await m.ok({ op: 'extractMaskedUser', session, username: 'carol' })).maskedUser,
        async (m, session, maskedUser) => (await m.ok({ op: 'insertMaskedUser', session, maskedUser })).merged,
      ),
    ).to.deep.equal(['applied', 'stale']);
    expect(
      await exchange(
        async (m, session) => (await m.ok({ op: 'extractMaskedSettings', session })).maskedSettings,
        async (m, session, maskedSettings) => (await m.ok({ op: 'insertMaskedSettings', session, maskedSettings })).merged,
      ),
    ).to.deep.equal(['applied', 'stale']);

    const [fa, ga] = [await status(f.m, f.appliance), await status(g, gAppliance)];
    expect([keyOf(ga), carolOf(ga), ga.settings]).to.deep.equal([keyOf(fa), carolOf(fa), fa.settings]);
    const labels = [(await f.m.ok({ op: 'getAttributes', session: f.alice, handle })).attributes.label, (await g.ok({ op: 'getAttributes', session: gAlice, handle })).attributes.label];
    expect(labels[0]).to.equal(labels[1]);
    expect((await f.m.ok({ op: 'getQuorumSettings' })).timeouts).to.deep.equal((await g.ok({ op: 'getQuorumSettings' })).timeouts);
  });

  it('a copy never replaces a different key under its handle: another owner\'s, another type, other material, a session key', async () => {
    const { f, g, gAppliance, gAlice } = await twins();
    const gBob = await g.login('bob', PASSWORDS.bob);
    const importAes = (m: TestMember, session: string, token: boolean, keyType: 'aes' | 'generic-secret' = 'aes') =>
      m.ok({ op: 'importKey', session, keyClass: 'secret-key', keyType, format: 'raw', keyData: RAW_AES, attributes: { token } });
    const onG: [string, () => Promise<{ handle: number }>][] = [
      ['another owner', () => importAes(g, gBob, true)],
      ['another type', () => importAes(g, gAlice, true, 'generic-secret')],
      ['other material', () => g.ok({ op: 'generateKey', session: gAlice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })],
      ['a session key', () => importAes(g, gAlice, false)],
    ];
    for (const [what, make] of onG) {
      const handle = (await importAes(f.m, f.alice, true)).handle;
      const theirs = (await make()).handle;
      expect(theirs, what).to.equal(handle);
      const before = await g.ok({ op: 'findKeys', session: gAlice, maxItems: 1000 });
      const copy = (await f.m.ok({ op: 'extractMaskedObject', session: f.appliance, handle })).maskedObject;
      const e = await g.fail({ op: 'insertMaskedObject', session: gAppliance, maskedObject: copy }, 'HANDLE_IN_USE');
      expect(e.message, what).to.match(/^key handle 0x[0-9a-f]+ holds a different key on this member$/);
      expect(await g.ok({ op: 'findKeys', session: gAlice, maxItems: 1000 }), what).to.deep.equal(before);
    }
    // Nor does a deletion take away a session key that holds the handle here.
    const handle = (await importAes(f.m, f.alice, true)).handle;
    expect((await importAes(g, gAlice, false)).handle).to.equal(handle);
    await f.m.ok({ op: 'deleteKey', session: f.alice, handle });
    const tombstone = (await f.m.ok({ op: 'extractMaskedObject', session: f.appliance, handle })).maskedObject;
    const e = await g.fail({ op: 'insertMaskedObject', session: gAppliance, maskedObject: tombstone }, 'HANDLE_IN_USE');
    expect(e.message).to.match(/^key handle 0x[0-9a-f]+ holds a session key on this member$/);
    expect((await g.ok({ op: 'getAttributes', session: gAlice, handle })).attributes.token).to.equal(false);
    expect((await g.ok({ op: 'getSyncStatus', session: gAppliance })).deletedKeys.map((d) => d.handle)).to.not.include(handle);
  });

  it('two members that delete the same key settle on the later deletion; a deletion of a key never seen retires its handle', async () => {
    const { f, g, gAppliance } = await pair();
    const handle = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
    await g.ok({ op: 'insertMaskedObject', session: gAppliance, maskedObject: (await f.m.ok({ op: 'extractMaskedObject', session: f.appliance, handle })).maskedObject });
    await f.m.ok({ op: 'deleteKey', session: f.alice, handle });
    await g.ok({ op: 'deleteKey', session: await g.login('alice', PASSWORDS.alice), handle });
    const deletedAt = async (m: TestMember, session: string) => (await m.ok({ op: 'getSyncStatus', session })).deletedKeys.find((d) => d.handle === handle)!.gen;
    const [onF, onG] = [await deletedAt(f.m, f.appliance), await deletedAt(g, gAppliance)];
    expect(onF).to.not.equal(onG);
    const tombstone = async (m: TestMember, session: string) => (await m.ok({ op: 'extractMaskedObject', session, handle })).maskedObject;
    const [fromF, fromG] = [await tombstone(f.m, f.appliance), await tombstone(g, gAppliance)];
    expect((await g.ok({ op: 'insertMaskedObject', session: gAppliance, maskedObject: fromF })).merged).to.equal('same');
    expect((await f.m.ok({ op: 'insertMaskedObject', session: f.appliance, maskedObject: fromG })).merged).to.equal('same');
    expect([await deletedAt(f.m, f.appliance), await deletedAt(g, gAppliance)]).to.deep.equal([Math.max(onF, onG), Math.max(onF, onG)]);

    const unseen = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
    await f.m.ok({ op: 'deleteKey', session: f.alice, handle: unseen });
    const retired = (await f.m.ok({ op: 'getSyncStatus', session: f.appliance })).deletedKeys.find((d) => d.handle === unseen);
    await g.ok({ op: 'insertMaskedObject', session: gAppliance, maskedObject: (await f.m.ok({ op: 'extractMaskedObject', session: f.appliance, handle: unseen })).maskedObject });
    expect((await g.ok({ op: 'getSyncStatus', session: gAppliance })).deletedKeys.find((d) => d.handle === unseen)).to.deep.equal(retired);
  });

  it('an old deletion of a user who was created again since is stale and removes nobody', async () => {
    const { f, g, gAppliance } = await pair();
    await f.m.ok({ op: 'createUser', session: f.admin, username: 'dave', password: 'dave-password', role: 'crypto-user' });
    await f.m.ok({ op: 'deleteUser', session: f.admin, username: 'dave' });
    const deletion = (await f.m.ok({ op: 'extractMaskedUser', session: f.appliance, username: 'dave' })).maskedUser;
    await f.m.ok({ op: 'createUser', session: f.admin, username: 'dave', password: 'dave-second-password', role: 'crypto-user' });
    const again = (await f.m.ok({ op: 'extractMaskedUser', session: f.appliance, username: 'dave' })).maskedUser;
    expect(await g.ok({ op: 'insertMaskedUser', session: gAppliance, maskedUser: again })).to.deep.equal({ username: 'dave', deleted: false, merged: 'applied' });
    const e = await g.fail({ op: 'insertMaskedUser', session: gAppliance, maskedUser: deletion }, 'MASKED_OBJECT_STALE');
    expect(e.message).to.equal('maskedUser: this member holds a newer version of dave; an older copy never replaces a newer one');
    await g.login('dave', 'dave-second-password');
    expect((await g.ok({ op: 'getSyncStatus', session: gAppliance })).deletedUsers.map((d) => d.username)).to.not.include('dave');
  });

  it('a key\'s shares with users who are not crypto users on the receiving member are left behind', async () => {
    const { f, g, gAppliance } = await pair();
    await g.ok({ op: 'createUser', session: await g.login('admin', PASSWORDS.admin), username: 'dave', password: 'dave-password', role: 'admin' });
    for (const name of ['dave', 'erin']) await f.m.ok({ op: 'createUser', session: f.admin, username: name, password: `${name}-password`, role: 'crypto-user' });
    const handle = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
    for (const name of ['bob', 'dave', 'erin']) await f.m.ok({ op: 'shareKey', session: f.alice, handle, username: name });
    await g.ok({ op: 'insertMaskedObject', session: gAppliance, maskedObject: (await f.m.ok({ op: 'extractMaskedObject', session: f.appliance, handle })).maskedObject });
    expect((await g.ok({ op: 'getAttributes', session: await g.login('alice', PASSWORDS.alice), handle })).sharedUsers).to.deep.equal(['bob']);
  });

  it('a new user arrives with their registered quorum key', async () => {
    const { f, g, gAppliance } = await pair();
    await f.m.ok({ op: 'createUser', session: f.admin, username: 'dave', password: 'dave-password', role: 'crypto-user' });
    const dave = await f.m.login('dave', 'dave-password');
    const { approvalData } = await f.m.ok({ op: 'generateQuorumToken', session: dave, service: 'registration' });
    const key = tokenSignKey('dave');
    await f.m.ok({ op: 'registerQuorumKey', session: dave, publicKey: key.publicPem, registration: { approvalData, signature: signDigest(key.privateKey, tokenOf(approvalData)) } });
    await g.ok({ op: 'insertMaskedUser', session: gAppliance, maskedUser: (await f.m.ok({ op: 'extractMaskedUser', session: f.appliance, username: 'dave' })).maskedUser });
    const onG = (await g.ok({ op: 'listUsers' })).users.find((u) => u.username === 'dave');
    expect(onG).to.include({ role: 'crypto-user', quorum: true, mfa: false });
  });

  it('a newer backup of its own cluster restored onto an active member brings in everything newer', async () => {
    const { f, g, gAppliance } = await pair();
    const gone = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
    await g.ok({ op: 'insertMaskedObject', session: gAppliance, maskedObject: (await f.m.ok({ op: 'extractMaskedObject', session: f.appliance, handle: gone })).maskedObject });
    // f moves on: a new key, a new user, a deleted user, a deleted key, new timeouts.
    const added = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true, label: 'new' } })).handle;
    await f.m.ok({ op: 'createUser', session: f.admin, username: 'dave', password: 'dave-password', role: 'crypto-user' });
    await f.m.ok({ op: 'deleteUser', session: f.admin, username: 'admin2' });
    await f.m.ok({ op: 'deleteKey', session: f.alice, handle: gone });
    await f.m.ok({ op: 'setQuorumTimeouts', session: f.admin, approved: 900 });
    const backup = (await f.m.ok({ op: 'createBackup', session: f.admin })).backup;
    await g.ok({ op: 'restoreBackup', session: gAppliance, backup });
    const gAlice = await g.login('alice', PASSWORDS.alice);
    expect((await g.ok({ op: 'getAttributes', session: gAlice, handle: added })).attributes.label).to.equal('new');
    await g.fail({ op: 'getAttributes', session: gAlice, handle: gone }, 'KEY_NOT_FOUND');
    await g.login('dave', 'dave-password');
    await g.fail({ op: 'login', username: 'admin2', password: PASSWORDS.admin2 }, 'USER_NOT_FOUND');
    expect((await g.ok({ op: 'getQuorumSettings' })).timeouts).to.deep.equal({ generated: 600, approved: 900 });
    const [fs, gs] = [await f.m.ok({ op: 'getSyncStatus', session: f.appliance }), await g.ok({ op: 'getSyncStatus', session: gAppliance })];
    expect(gs.summary).to.equal(fs.summary);
  });
});

describe('hsm-core: what travels between members', () => {
  it('extractMaskedObject gives a live token key, a session key only to its session (never as a token key), and refuses a key the caller cannot see', async () => {
    const f = await activatedMember({ serviceKey: SERVICE_KEY });
    const token = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
    const session = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16 })).handle;
    expect((await f.m.ok({ op: 'extractMaskedObject', session: f.alice, handle: token })).deleted).to.equal(false);
    // A session key's blob is sealed apart: the sync path (the appliance user merging token keys) never takes it as a token key.
    const sessionBlob = (await f.m.ok({ op: 'extractMaskedObject', session: f.alice, handle: session })).maskedObject;
    const other = await freshMember({ serviceKey: SERVICE_KEY, memberIndex: 1 });
    await other.ok({ op: 'restoreBackup', backup: (await f.m.ok({ op: 'createBackup', session: f.admin })).backup });
    await other.fail({ op: 'insertMaskedObject', session: await other.login('app_user', PASSWORDS.app_user), maskedObject: sessionBlob }, 'PERMISSION_DENIED');
    const aliceAgain = await f.m.login('alice', PASSWORDS.alice);
    const refusals = [
      [await f.m.fail({ op: 'extractMaskedObject', session: aliceAgain, handle: session }, 'KEY_NOT_FOUND'), `no key ${keyHex(session)} that alice can see`],
      [await f.m.fail({ op: 'extractMaskedObject', session: f.bob, handle: token }, 'KEY_NOT_FOUND'), `no key ${keyHex(token)} that bob can see`],
      [await f.m.fail({ op: 'extractMaskedObject', session: f.alice, handle: 999_999 }, 'KEY_NOT_FOUND'), `no key ${keyHex(999_999)} that alice can see`],
    ] as const;
    for (const [e, message] of refusals) expect(e.message).to.equal(message);
  });

  it('sync status lists token keys and the users that travel, with their generations; never session keys or the appliance user', async () => {
    const f = await activatedMember();
    const token = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
    await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16 });
    const status = await f.m.ok({ op: 'getSyncStatus', session: f.appliance });
    expect(status.keys.map((k) => k.handle)).to.deep.equal([token]);
    expect(status.users.map((u) => u.username)).to.deep.equal(['admin', 'admin2', 'alice', 'bob', 'carol']);
    await f.m.ok({ op: 'logout', session: f.carol });
    await f.m.ok({ op: 'changePassword', session: f.admin, username: 'carol', password: 'carol-new-password' });
    const carolGen = (s: typeof status) => s.users.find((u) => u.username === 'carol')!.gen;
    const after = await f.m.ok({ op: 'getSyncStatus', session: f.appliance });
    expect(carolGen(status)).to.be.greaterThan(0);
    expect(carolGen(after)).to.be.greaterThan(carolGen(status));
  });

  it('a masked object, user or settings that is cut short, altered, of another kind or from another cluster is refused by name and changes nothing', async () => {
    const { f, g, gAppliance } = await pair();
    const stranger = await activatedMember();
    const handle = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
    const object = (await f.m.ok({ op: 'extractMaskedObject', session: f.appliance, handle })).maskedObject;
    const user = (await f.m.ok({ op: 'extractMaskedUser', session: f.appliance, username: 'carol' })).maskedUser;
    const settings = (await f.m.ok({ op: 'extractMaskedSettings', session: f.appliance })).maskedSettings;
    const altered = (blob: Uint8Array) => {
      const copy = new Uint8Array(blob);
      copy[copy.length - 1]! ^= 1;
      return copy;
    };
    // The shortest blob that can be one: 5 bytes of magic, a 12-byte IV and a 16-byte tag.
    const shortest = new Uint8Array([...new TextEncoder().encode('SRMO1'), ...new Uint8Array(28)]);
    const notOurs = 'it was not masked by a member of this cluster, or it was altered';
    const cases: [string, Record<string, unknown>, string][] = [
      ['cut short', { op: 'insertMaskedObject', maskedObject: shortest.subarray(0, 32) }, 'maskedObject: not a Strongroom masked object'],
      ['another magic', { op: 'insertMaskedObject', maskedObject: new Uint8Array([0x53, 0x52, 0x4d, 0x4f, 0x32, ...object.subarray(5)]) }, 'maskedObject: not a Strongroom masked object'],
      ['nothing but a header', { op: 'insertMaskedObject', maskedObject: shortest }, `maskedObject: ${notOurs}`],
      ['an altered object', { op: 'insertMaskedObject', maskedObject: altered(object) }, `maskedObject: ${notOurs}`],
      ['a user as an object', { op: 'insertMaskedObject', maskedObject: user }, `maskedObject: ${notOurs}`],
      ['an altered user', { op: 'insertMaskedUser', maskedUser: altered(user) }, `maskedUser: ${notOurs}`],
      ['settings as a user', { op: 'insertMaskedUser', maskedUser: settings }, `maskedUser: ${notOurs}`],
      ['altered settings', { op: 'insertMaskedSettings', maskedSettings: altered(settings) }, `maskedSettings: ${notOurs}`],
      ['another cluster\'s settings', { op: 'insertMaskedSettings', maskedSettings: (await stranger.m.ok({ op: 'extractMaskedSettings', session: stranger.appliance })).maskedSettings }, `maskedSettings: ${notOurs}`],
    ];
    const before = await g.ok({ op: 'getSyncStatus', session: gAppliance });
    for (const [what, request, message] of cases) {
      expect((await g.fail({ ...request, session: gAppliance }, 'MASKED_OBJECT_INVALID')).message, what).to.equal(message);
    }
    expect(await g.ok({ op: 'getSyncStatus', session: gAppliance })).to.deep.equal(before);
  });
  it('the sync summary a member keeps between calls follows every change: keys, shares, users, settings, deletions, merges', async () => {
    const { f, g, gAppliance } = await pair();
    const summary = async () => (await f.m.ok({ op: 'getSyncStatus', session: f.appliance, summaryOnly: true })).summary;
    const recomputed = async () => (await f.m.ok({ op: 'getSyncStatus', session: f.appliance })).summary;
    const seen = new Set<string>([await recomputed()]);
    const step = async (what: string, change: () => Promise<unknown>) => {
      const before = await summary();
      expect(await summary(), what).to.equal(before);
      await change();
      const after = await summary();
      expect(seen.has(after), what).to.equal(false);
      expect(await recomputed(), what).to.equal(after);
      seen.add(after);
    };
    let handle = 0;
    await step('a token key made', async () => (handle = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true, label: 'a' } })).handle));
    await step('its label changed', () => f.m.ok({ op: 'setAttributes', session: f.alice, handle, attributes: { label: 'b' } }));
    await step('shared with bob', () => f.m.ok({ op: 'shareKey', session: f.alice, handle, username: 'bob' }));
    await step('a user made', () => f.m.ok({ op: 'createUser', session: f.admin, username: 'erin', password: 'erin-password', role: 'crypto-user' }));
    await step('her password changed', () => f.m.ok({ op: 'changePassword', session: f.admin, username: 'erin', password: 'erin-password-2' }));
    await step('the key deleted', () => f.m.ok({ op: 'deleteKey', session: f.alice, handle }));
    await step('a user deleted', () => f.m.ok({ op: 'deleteUser', session: f.admin, username: 'erin' }));
    await step('a key merged from the other member', async () => {
      const gAlice = await g.login('alice', PASSWORDS.alice);
      const theirs = (await g.ok({ op: 'generateKey', session: gAlice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
      const copy = (await g.ok({ op: 'extractMaskedObject', session: gAppliance, handle: theirs })).maskedObject;
      await f.m.ok({ op: 'insertMaskedObject', session: f.appliance, maskedObject: copy });
    });
    await step('a quorum value set', () => f.m.ok({ op: 'setQuorumValue', session: f.admin, service: 'user', value: 2 }));
    // A session key is no member's to sync: the summary is made again, and is the same.
    const before = await summary();
    await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { label: 'session' } });
    expect(await summary()).to.equal(before);
  });
});

describe('hsm-core: the sync status of a member that shares its thread with the application', () => {
  it('makes the digests of 1,200 keys a slice a turn: a request asked meanwhile is answered first, and the status holds every key', async () => {
    const f = await activatedMember({ serviceKey: SERVICE_KEY });
    for (let i = 0; i < 1200; i++) await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true, label: `k${i}`, encrypt: true } });
    const answered: string[] = [];
    const status = f.m.ok({ op: 'getSyncStatus', session: f.appliance }).then((s) => {
      answered.push('status');
      return s;
    });
    const info = f.m.ok({ op: 'getHsmInfo' }).then(() => answered.push('info'));
    const [first] = await Promise.all([status, info]);
    expect(answered).to.deep.equal(['info', 'status']);
    expect(first.keys).to.have.length(1200);
    // Asked again, from the digests kept: the same status.
    expect(await f.m.ok({ op: 'getSyncStatus', session: f.appliance })).to.deep.equal(first);
  });

  it('makes the statuses of two members asked at once in two turns of the event loop, one after the other', async () => {
    const { turnCounter } = await import('../helpers/turns.js');
    const { f, g, gAppliance } = await pair();
    // Their digests are made: what is left is each status, in one piece.
    await Promise.all([f.m.ok({ op: 'getSyncStatus', session: f.appliance }), g.ok({ op: 'getSyncStatus', session: gAppliance })]);
    const counter = turnCounter();
    const turns = await Promise.all([f.m.ok({ op: 'getSyncStatus', session: f.appliance }), g.ok({ op: 'getSyncStatus', session: gAppliance })].map((p) => p.then(() => counter.turns())));
    counter.stop();
    expect(turns[1], 'the turn of the second status').to.be.greaterThan(turns[0]!);
  });
});
