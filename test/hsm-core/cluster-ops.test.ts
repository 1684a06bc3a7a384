/**
 * What members of one cluster exchange besides keys: masked users, within one cluster only.
 */
import { expect } from 'chai';
import { activatedMember, freshMember } from '../helpers/member.js';

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
});
