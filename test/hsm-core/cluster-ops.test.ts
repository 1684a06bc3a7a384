/**
 * What members of one cluster exchange besides keys: masked users, within one cluster only.
 */
import { expect } from 'chai';
import { PASSWORDS, activatedMember, freshMember } from '../helpers/member.js';

describe('hsm-core: masked users', () => {
  it('travel only within a cluster; a crypto user may move only itself; the appliance user never travels', async () => {
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

  it('carry the password hash: a user changed on one member logs in with the new password on another', async () => {
    const a = await activatedMember({ serviceKey: new Uint8Array(32).fill(9) });
    const b = await freshMember({ serviceKey: new Uint8Array(32).fill(9), memberIndex: 1 });
    await b.ok({ op: 'restoreBackup', backup: (await a.m.ok({ op: 'createBackup', session: a.appliance })).backup });
    await a.m.ok({ op: 'logout', session: a.carol });
    await a.m.ok({ op: 'changePassword', session: a.admin, username: 'carol', password: 'carol-new-password' });
    const masked = (await a.m.ok({ op: 'extractMaskedUser', session: a.admin, username: 'carol' })).maskedUser;
    const appliance = await b.login('app_user', 'appliance-password');
    await b.ok({ op: 'insertMaskedUser', session: appliance, maskedUser: masked });
    await b.login('carol', 'carol-new-password');
    const [sa, sb] = [await a.m.ok({ op: 'getSyncStatus', session: a.appliance }), await b.ok({ op: 'getSyncStatus', session: appliance })];
    expect(sb.users).to.deep.equal(sa.users);
  });

  it('a crypto user cannot raise their own role with a masked copy of a namesake admin, nor bring in a deletion', async () => {
    const serviceKey = new Uint8Array(32).fill(9);
    const a = await activatedMember({ serviceKey });
    const b = await freshMember({ serviceKey, memberIndex: 1 });
    await b.ok({ op: 'restoreBackup', backup: (await a.m.ok({ op: 'createBackup', session: a.appliance })).backup });
    // On a, alice is deleted and created again as an admin; on b she is still a crypto user, logged in.
    await a.m.ok({ op: 'logout', session: a.alice });
    await a.m.ok({ op: 'deleteUser', session: a.admin, username: 'alice' });
    await a.m.ok({ op: 'createUser', session: a.admin, username: 'alice', password: PASSWORDS.alice, role: 'admin' });
    const asAdmin = (await a.m.ok({ op: 'extractMaskedUser', session: a.admin, username: 'alice' })).maskedUser;
    const bAlice = await b.login('alice', PASSWORDS.alice);
    const e = await b.fail({ op: 'insertMaskedUser', session: bAlice, maskedUser: asAdmin }, 'PERMISSION_DENIED');
    expect(e.message).to.equal('alice cannot change their own role');
    expect((await b.ok({ op: 'listUsers' })).users.find((u) => u.username === 'alice')!.role).to.equal('crypto-user');

    await a.m.ok({ op: 'logout', session: a.carol });
    await a.m.ok({ op: 'deleteUser', session: a.admin, username: 'carol' });
    const deletion = await a.m.ok({ op: 'extractMaskedUser', session: a.appliance, username: 'carol' });
    expect(deletion.deleted).to.equal(true);
    const refused = await b.fail({ op: 'insertMaskedUser', session: bAlice, maskedUser: deletion.maskedUser }, 'PERMISSION_DENIED');
    expect(refused.message).to.equal('only an admin or the appliance user may delete users');
    await b.login('carol', PASSWORDS.carol);
    // An admin brings it in.
    expect(await b.ok({ op: 'insertMaskedUser', session: await b.login('admin', PASSWORDS.admin), maskedUser: deletion.maskedUser })).to.deep.equal({ username: 'carol', deleted: true, merged: 'applied' });
  });

  it('extractMaskedUser names what it refuses: another user for a crypto user, an unknown user, a deletion for a crypto user, the appliance user', async () => {
    const a = await activatedMember();
    await a.m.ok({ op: 'createUser', session: a.admin, username: 'dave', password: 'dave-password', role: 'crypto-user' });
    await a.m.ok({ op: 'deleteUser', session: a.admin, username: 'dave' });
    const cases: [Record<string, unknown>, string, string][] = [
      [{ session: a.alice, username: 'bob' }, 'PERMISSION_DENIED', 'only an admin, the appliance user or bob may extract bob'],
      [{ session: a.admin, username: 'nobody' }, 'USER_NOT_FOUND', 'no user named nobody on this member'],
      [{ session: a.appliance, username: 'nobody' }, 'USER_NOT_FOUND', 'no user named nobody on this member'],
      [{ session: a.admin, username: 'app_user' }, 'PERMISSION_DENIED', 'the appliance user is per member and does not travel'],
    ];
    for (const [request, code, message] of cases) {
      expect((await a.m.fail({ op: 'extractMaskedUser', ...request }, code as 'USER_NOT_FOUND')).message).to.equal(message);
    }
    const own = (await a.m.ok({ op: 'extractMaskedUser', session: a.bob, username: 'bob' })).maskedUser;
    expect((await a.m.fail({ op: 'insertMaskedUser', session: a.alice, maskedUser: own }, 'PERMISSION_DENIED')).message).to.equal('only an admin, the appliance user or bob may insert bob');
    expect((await a.m.ok({ op: 'extractMaskedUser', session: a.admin, username: 'dave' })).deleted).to.equal(true);
  });

  it('cluster addresses are set once each, and every member reports them', async () => {
    const a = await activatedMember();
    const set = await a.m.ok({ op: 'setClusterAddresses', session: a.appliance, addresses: ['127.0.0.1:2223', '127.0.0.1:2224', '127.0.0.1:2223'] });
    expect(set).to.deep.equal({ addresses: ['127.0.0.1:2223', '127.0.0.1:2224'] });
    expect((await a.m.ok({ op: 'getHsmInfo' })).clusterAddresses).to.deep.equal(['127.0.0.1:2223', '127.0.0.1:2224']);
  });
});
