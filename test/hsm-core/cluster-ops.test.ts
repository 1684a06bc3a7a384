/**
 * Joining a cluster inside the members: join keys, sealed clones, masked users, and what a member
 * refuses (altered clones, clones from another cluster, users from another cluster).
 */
import { expect } from 'chai';
import { activatedMember, freshMember, PASSWORDS, type Fixture, type TestMember } from '../helpers/member.js';

async function join(source: Fixture, target: TestMember, targetSession?: string): Promise<Uint8Array> {
  const s = targetSession ? { session: targetSession } : {};
  const { joinKey } = await target.ok({ op: 'getJoinKey', ...s });
  return (await source.m.ok({ op: 'cloneMember', session: source.appliance, joinKey })).clone;
}

describe('hsm-core: joining a cluster', () => {
  it('a clone brings the cluster id, users (same password hashes), token keys and handles, but no session keys', async () => {
    const f = await activatedMember();
    const token = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { token: true, encrypt: true, decrypt: true } })).handle;
    const session = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { encrypt: true } })).handle;
    const target = await freshMember({ memberIndex: 1 });
    const clone = await join(f, target);
    const installed = await target.ok({ op: 'installClone', clone });
    const info = await f.m.ok({ op: 'getHsmInfo' });
    expect(installed.clusterId).to.equal(info.clusterId);
    expect((await target.ok({ op: 'getHsmInfo' })).state).to.equal('active');

    const alice = await target.login('alice', PASSWORDS.alice);
    const enc = await f.m.ok({ op: 'encrypt', session: f.alice, handle: token, mechanism: { name: 'aes-gcm' }, data: new Uint8Array(8) });
    const dec = await target.ok({ op: 'decrypt', session: alice, handle: token, mechanism: { name: 'aes-gcm', iv: enc.iv! }, data: enc.data });
    expect(dec.data).to.deep.equal(new Uint8Array(8));
    await target.fail({ op: 'getAttributes', session: alice, handle: session }, 'KEY_NOT_FOUND');

    // Same digests on both: keys and users (password hashes travel as they are).
    const appliance = await target.login('app_user', PASSWORDS.app_user);
    expect(await target.ok({ op: 'getSyncStatus', session: appliance })).to.deep.equal(await f.m.ok({ op: 'getSyncStatus', session: f.appliance }));
    // Audit: the clone is recorded on both sides.
    const log = await f.m.ok({ op: 'getAuditLog', session: f.admin });
    expect(log.records.map((r) => r.opcode)).to.include('SR_CLONE_MEMBER');
  });

  it('refuses an altered clone, one sealed to another join key, and one without a join key offered', async () => {
    const f = await activatedMember();
    const target = await freshMember();
    await target.fail({ op: 'installClone', clone: new Uint8Array(100) }, 'CLONE_INVALID');
    const clone = await join(f, target);
    const flipped = new Uint8Array(clone);
    flipped[flipped.length - 20]! ^= 1;
    const e = await target.fail({ op: 'installClone', clone: flipped }, 'CLONE_INVALID');
    expect(e.message).to.match(/altered/);
    const elsewhere = await freshMember();
    const wrongTarget = await join(f, elsewhere);
    await target.fail({ op: 'installClone', clone: wrongTarget }, 'CLONE_INVALID');
    // Nothing changed: still a fresh, unactivated member.
    expect((await target.ok({ op: 'getHsmInfo' })).clusterId).to.equal(null);
    await target.ok({ op: 'installClone', clone });
  });

  it('a member in a cluster takes a clone only from its own cluster, and only from an admin or the appliance user', async () => {
    const a = await activatedMember();
    const b = await activatedMember();
    const { joinKey } = await b.m.ok({ op: 'getJoinKey', session: b.appliance });
    await b.m.fail({ op: 'getJoinKey' }, 'NOT_LOGGED_IN');
    await b.m.fail({ op: 'getJoinKey', session: b.alice }, 'PERMISSION_DENIED');
    const foreign = (await a.m.ok({ op: 'cloneMember', session: a.appliance, joinKey })).clone;
    const e = await b.m.fail({ op: 'installClone', session: b.appliance, clone: foreign }, 'CLONE_INVALID');
    expect(e.message).to.match(/comes from cluster cluster-[0-9a-f]+; this member belongs to cluster-/);
    await b.m.fail({ op: 'installClone', clone: foreign }, 'NOT_LOGGED_IN');
    // b is untouched: alice's session still works.
    await b.m.ok({ op: 'generateRandom', session: b.alice, length: 4 });
  });

  it('masked users travel only within a cluster; a crypto user may move only itself', async () => {
    const a = await activatedMember();
    const b = await activatedMember();
    const masked = (await a.m.ok({ op: 'extractMaskedUser', session: a.admin, username: 'bob' })).maskedUser;
    const e = await b.m.fail({ op: 'insertMaskedUser', session: b.admin, maskedUser: masked }, 'MASKED_OBJECT_INVALID');
    expect(e.message).to.match(/^maskedUser: it was not masked by a member of this cluster/);
    await a.m.fail({ op: 'extractMaskedUser', session: a.alice, username: 'bob' }, 'PERMISSION_DENIED');
    await a.m.fail({ op: 'extractMaskedUser', session: a.admin, username: 'app_user' }, 'PERMISSION_DENIED');
    const own = (await a.m.ok({ op: 'extractMaskedUser', session: a.alice, username: 'alice' })).maskedUser;
    await a.m.ok({ op: 'insertMaskedUser', session: a.alice, maskedUser: own });
    await a.m.fail({ op: 'insertMaskedUser', session: a.alice, maskedUser: masked }, 'PERMISSION_DENIED');
  });
});
