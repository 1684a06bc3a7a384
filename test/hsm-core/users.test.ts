/**
 * Users and sessions (CLOUDHSM.md §1.1, §1.4): activation, username and password rules, lockout,
 * the rules for deleting users and changing passwords, and session keys.
 */
import { expect } from 'chai';
import { createMember, LOCKOUT_THRESHOLD } from '../../src/hsm-core/index.js';
import { PASSWORDS, TEST_PASSWORD_COST, TestMember, activatedMember, freshMember, snapshot } from '../helpers/member.js';
import { signDigest, tokenOf, tokenSignKey } from '../helpers/quorum.js';

/** Registers `username`'s own token-sign key for MFA and quorum (the session is theirs). */
async function registerMfaAndQuorum(m: TestMember, session: string, username: string): Promise<void> {
  const key = tokenSignKey(username);
  const { approvalData } = await m.ok({ op: 'generateQuorumToken', session, service: 'registration' });
  const registration = { approvalData, signature: signDigest(key.privateKey, tokenOf(approvalData)) };
  await m.ok({ op: 'changeMfa', session, username, publicKey: key.publicPem, registration, changeQuorum: true });
}

describe('hsm-core: users and sessions', () => {
  describe('activation', () => {
    it('a new member has only the unactivated admin (password "password") and the appliance user', async () => {
      const m = await freshMember();
      expect((await m.ok({ op: 'getHsmInfo' })).state).to.equal('initialized');
      expect((await m.ok({ op: 'listUsers' })).users.map((u) => [u.username, u.role])).to.deep.equal([
        ['admin', 'unactivated-admin'],
        ['app_user', 'appliance'],
      ]);
      const preco = await m.login('admin', 'password');
      await m.fail({ op: 'createUser', session: preco, username: 'x', password: 'x-password', role: 'crypto-user' }, 'PERMISSION_DENIED');
    });

    it('changing the unactivated admin’s password activates the member and makes it an admin', async () => {
      const m = await freshMember();
      const preco = await m.login('admin', 'password');
      expect(await m.ok({ op: 'changePassword', session: preco, username: 'admin', password: PASSWORDS.admin })).to.deep.equal({ username: 'admin', role: 'admin' });
      expect((await m.ok({ op: 'getHsmInfo' })).state).to.equal('active');
      await m.ok({ op: 'createUser', session: preco, username: 'alice', password: PASSWORDS.alice, role: 'crypto-user' });
      await m.fail({ op: 'login', username: 'admin', password: 'password' }, 'LOGIN_FAILED');
    });

    it('activateCluster sets the admin password once; a second activation is refused', async () => {
      const m = await freshMember();
      await m.fail({ op: 'activateCluster', password: 'short' }, 'INVALID_PASSWORD');
      expect((await m.ok({ op: 'getHsmInfo' })).state).to.equal('initialized');
      await m.ok({ op: 'activateCluster', password: PASSWORDS.admin });
      await m.login('admin', PASSWORDS.admin);
      const e = await m.fail({ op: 'activateCluster', password: 'another-password' }, 'CLUSTER_ALREADY_ACTIVATED');
      expect(e.message).to.equal('the cluster is already active');
      await m.login('admin', PASSWORDS.admin);
    });

    it('two activations at once: one wins, the other is refused and sets nothing', async () => {
      const m = await freshMember();
      const passwords = ['first-password', 'second-password'];
      // Both hash their password on the thread pool; whichever finishes first activates.
      const answers = await Promise.all(passwords.map((password) => m.raw({ op: 'activateCluster', password })));
      const winner = answers.findIndex((a) => a.ok);
      expect(answers.map((a) => (a.ok ? a.result : [a.error.code, a.error.message])).sort()).to.deep.equal(
        [{ activated: true }, ['CLUSTER_ALREADY_ACTIVATED', 'the cluster is already active']].sort(),
      );
      await m.login('admin', passwords[winner]!);
      await m.fail({ op: 'login', username: 'admin', password: passwords[1 - winner]! }, 'LOGIN_FAILED');
    });

    it('getHsmInfo describes the member', async () => {
      const m = await freshMember();
      expect(await m.ok({ op: 'getHsmInfo' })).to.include({ model: 'hsm2m.medium', firmware: 'strongroom-emulated', state: 'initialized', clusterId: null, users: 2, keys: 0 });
    });
  });

  describe('names and passwords', () => {
    it('usernames: at most 31 letters, digits and underscores, case-insensitive, shown in lowercase', async () => {
      const f = await activatedMember();
      const create = (username: string) => ({ op: 'createUser', session: f.admin, username, password: 'some-password', role: 'crypto-user' });
      await f.m.ok(create(`A${'b'.repeat(30)}`) as never);
      for (const bad of ['', 'x'.repeat(32), 'has space', 'dash-ed', 'ümlaut']) {
        const e = await f.m.fail(create(bad), 'INVALID_USERNAME');
        expect(e.message).to.match(/^username: 1–31 characters of letters, digits and _/);
      }
      await f.m.ok(create('Mixed_Case_1') as never);
      await f.m.fail(create('MIXED_case_1'), 'USER_EXISTS');
      expect((await f.m.ok({ op: 'listUsers' })).users.map((u) => u.username)).to.include('mixed_case_1');
      await f.m.login('MIXED_CASE_1', 'some-password');
    });

    it('passwords: 8 to 32 characters', async () => {
      const f = await activatedMember();
      for (const [password, ok] of [
        ['1234567', false],
        ['12345678', true],
        ['x'.repeat(32), true],
        ['x'.repeat(33), false],
      ] as const) {
        const request = { op: 'createUser', session: f.admin, username: `u${password.length}`, password, role: 'crypto-user' } as const;
        if (ok) await f.m.ok(request);
        else expect((await f.m.fail(request, 'INVALID_PASSWORD')).message).to.equal(`password: 8–32 characters, got ${password.length}`);
      }
    });

    it('a login with the wrong role is refused', async () => {
      const f = await activatedMember();
      const e = await f.m.fail({ op: 'login', username: 'alice', password: PASSWORDS.alice, role: 'admin' }, 'LOGIN_FAILED');
      expect(e.message).to.equal('alice is a crypto-user, not an admin');
      await f.m.ok({ op: 'login', username: 'alice', password: PASSWORDS.alice, role: 'crypto-user' });
    });
  });

  describe('lockout', () => {
    it(`locks a user after ${LOCKOUT_THRESHOLD} failed logins, until an admin resets the password`, async () => {
      const f = await activatedMember();
      await f.m.ok({ op: 'createUser', session: f.admin, username: 'dave', password: 'dave-password', role: 'crypto-user' });
      for (let i = 1; i <= LOCKOUT_THRESHOLD; i++) {
        const e = await f.m.fail({ op: 'login', username: 'dave', password: 'wrong-password' }, 'LOGIN_FAILED');
        expect(e.message).to.include(i < LOCKOUT_THRESHOLD ? `${LOCKOUT_THRESHOLD - i} more failed login` : 'now locked');
      }
      const listed = (await f.m.ok({ op: 'listUsers' })).users.find((u) => u.username === 'dave')!;
      expect(listed).to.include({ locked: true, failedLogins: LOCKOUT_THRESHOLD });
      const e = await f.m.fail({ op: 'login', username: 'dave', password: 'dave-password' }, 'USER_LOCKED');
      expect(e.message).to.equal('dave is locked after 5 failed logins; an admin must reset the password');
      await f.m.fail({ op: 'changePassword', session: f.alice, username: 'dave', password: 'new-password' }, 'PERMISSION_DENIED');
      await f.m.ok({ op: 'changePassword', session: f.admin, username: 'dave', password: 'new-password' });
      await f.m.login('dave', 'new-password');
    });

    it('a successful login clears the count of failures', async () => {
      const f = await activatedMember();
      for (let i = 0; i < LOCKOUT_THRESHOLD - 1; i++) await f.m.fail({ op: 'login', username: 'bob', password: 'nope-nope' }, 'LOGIN_FAILED');
      await f.m.login('bob', PASSWORDS.bob);
      for (let i = 0; i < LOCKOUT_THRESHOLD - 1; i++) await f.m.fail({ op: 'login', username: 'bob', password: 'nope-nope' }, 'LOGIN_FAILED');
      await f.m.login('bob', PASSWORDS.bob);
    });

    it('concurrent wrong passwords cannot slip past the threshold', async () => {
      const f = await activatedMember();
      const answers = await Promise.all(Array.from({ length: 12 }, () => f.m.raw({ op: 'login', username: 'carol', password: 'wrong-password' })));
      expect(answers.every((a) => !a.ok)).to.equal(true);
      await f.m.fail({ op: 'login', username: 'carol', password: PASSWORDS.carol }, 'USER_LOCKED');
    });

    it('the right password sent behind concurrent wrong ones is refused once they have locked the user', async () => {
      const f = await activatedMember();
      // Password checks run on the thread pool in order; the right one finishes after the wrong ones
      // have locked carol, so the lock must be checked again once the password has been verified.
      const wrong = Array.from({ length: 12 }, () => f.m.raw({ op: 'login', username: 'carol', password: 'wrong-password' }));
      const right = f.m.raw({ op: 'login', username: 'carol', password: PASSWORDS.carol });
      await Promise.all(wrong);
      const answer = await right;
      expect(answer.ok ? 'logged in' : answer.error.code).to.equal('USER_LOCKED');
      expect((await f.m.ok({ op: 'listUsers' })).users.find((u) => u.username === 'carol')).to.include({ locked: true });
    });

    it('an unknown user is reported as such', async () => {
      const f = await activatedMember();
      expect((await f.m.fail({ op: 'login', username: 'nobody', password: 'whatever1' }, 'USER_NOT_FOUND')).message).to.equal('no user named nobody on this member');
    });
  });

  describe('user management rules', () => {
    it('a crypto user who owns keys cannot be deleted; one who only shares keys can', async () => {
      const f = await activatedMember();
      const key = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
      await f.m.ok({ op: 'shareKey', session: f.alice, handle: key, username: 'bob' });
      await f.m.ok({ op: 'logout', session: f.alice });
      await f.m.ok({ op: 'logout', session: f.bob });
      const e = await f.m.fail({ op: 'deleteUser', session: f.admin, username: 'alice' }, 'USER_OWNS_KEYS');
      expect(e.message).to.equal('alice owns 1 key; delete them before deleting the user');
      await f.m.ok({ op: 'deleteUser', session: f.admin, username: 'bob' });
      const alice = await f.m.login('alice', PASSWORDS.alice);
      expect((await f.m.ok({ op: 'getAttributes', session: alice, handle: key })).sharedUsers).to.deep.equal([]);
    });

    it('a logged-in user can be neither deleted nor have their password changed by an admin', async () => {
      const f = await activatedMember();
      await f.m.fail({ op: 'deleteUser', session: f.admin, username: 'carol' }, 'USER_LOGGED_IN');
      await f.m.fail({ op: 'changePassword', session: f.admin, username: 'carol', password: 'new-password' }, 'USER_LOGGED_IN');
      await f.m.ok({ op: 'changePassword', session: f.carol, username: 'carol', password: 'new-password' });
      await f.m.ok({ op: 'logout', session: f.carol });
      await f.m.ok({ op: 'deleteUser', session: f.admin, username: 'carol' });
      await f.m.fail({ op: 'login', username: 'carol', password: 'new-password' }, 'USER_NOT_FOUND');
    });

    it('the appliance user cannot be deleted, and an admin cannot delete themself (so an admin always remains)', async () => {
      const m = await freshMember();
      await m.ok({ op: 'activateCluster', password: PASSWORDS.admin });
      const admin = await m.login('admin', PASSWORDS.admin);
      await m.fail({ op: 'deleteUser', session: admin, username: 'app_user' }, 'PERMISSION_DENIED');
      await m.ok({ op: 'createUser', session: admin, username: 'second', password: 'second-password', role: 'admin' });
      const second = await m.login('second', 'second-password');
      await m.ok({ op: 'logout', session: admin });
      await m.ok({ op: 'deleteUser', session: second, username: 'admin' });
      await m.fail({ op: 'deleteUser', session: second, username: 'second' }, 'USER_LOGGED_IN');
    });

    it('crypto users change only their own password', async () => {
      const f = await activatedMember();
      await f.m.ok({ op: 'logout', session: f.bob });
      await f.m.fail({ op: 'changePassword', session: f.alice, username: 'bob', password: 'new-password' }, 'PERMISSION_DENIED');
      await f.m.ok({ op: 'changePassword', session: f.alice, username: 'ALICE', password: 'new-password' });
      await f.m.login('alice', 'new-password');
    });

    it('refusals leave users as they were', async () => {
      const f = await activatedMember();
      const before = await snapshot(f);
      await f.m.fail({ op: 'createUser', session: f.admin, username: 'alice', password: 'x-password', role: 'crypto-user' }, 'USER_EXISTS');
      await f.m.fail({ op: 'deleteUser', session: f.admin, username: 'ghost' }, 'USER_NOT_FOUND');
      await f.m.fail({ op: 'createUser', session: f.admin, username: 'new', password: 'x', role: 'crypto-user' }, 'INVALID_PASSWORD');
      expect(await snapshot(f)).to.equal(before);
    });
  });

  describe('changing a password', () => {
    it('keeps MFA and the quorum key unless asked; deregistering quorum keeps MFA; deregistering MFA takes both (one key serves both)', async () => {
      const f = await activatedMember();
      const flags = async () => {
        const u = (await f.m.ok({ op: 'listUsers' })).users.find((x) => x.username === 'carol')!;
        return { mfa: u.mfa, quorum: u.quorum };
      };
      await registerMfaAndQuorum(f.m, f.carol, 'carol');
      await f.m.ok({ op: 'logout', session: f.carol });
      await f.m.ok({ op: 'changePassword', session: f.admin, username: 'carol', password: 'carol-password-2' });
      expect(await flags()).to.deep.equal({ mfa: true, quorum: true });
      await f.m.ok({ op: 'changePassword', session: f.admin, username: 'carol', password: 'carol-password-3', deregisterQuorum: true });
      expect(await flags()).to.deep.equal({ mfa: true, quorum: false });
      await f.m.ok({ op: 'changePassword', session: f.admin, username: 'carol', password: 'carol-password-4', deregisterMfa: true });
      expect(await flags()).to.deep.equal({ mfa: false, quorum: false });
      await f.m.login('carol', 'carol-password-4');

      const bob = f.bob;
      await registerMfaAndQuorum(f.m, bob, 'bob');
      await f.m.ok({ op: 'changePassword', session: bob, username: 'bob', password: 'bob-password-2', deregisterMfa: true });
      expect((await f.m.ok({ op: 'listUsers' })).users.find((x) => x.username === 'bob')).to.include({ mfa: false, quorum: false });
      // Deregistering what a user does not have changes only the password.
      await f.m.ok({ op: 'changePassword', session: bob, username: 'bob', password: 'bob-password-3', deregisterQuorum: true });
      await f.m.login('bob', 'bob-password-3');
    });

    it('names each refusal: another user by a crypto user, the appliance user, a logged-in user, an unknown user', async () => {
      const f = await activatedMember();
      const before = await snapshot(f);
      const cases: [string, Record<string, unknown>, string, string][] = [
        ['another user', { session: f.alice, username: 'bob' }, 'PERMISSION_DENIED', "only an admin can change another user's password"],
        ['the appliance user', { session: f.admin, username: 'app_user' }, 'PERMISSION_DENIED', 'app_user is the internal appliance user; its password cannot be changed'],
        ['logged in', { session: f.admin, username: 'carol' }, 'USER_LOGGED_IN', 'carol is logged in; their password cannot change until they log out'],
        ['unknown', { session: f.admin, username: 'nobody' }, 'USER_NOT_FOUND', 'no user named nobody on this member'],
      ];
      for (const [what, request, code, message] of cases) {
        const e = await f.m.fail({ op: 'changePassword', ...request, password: 'a-new-password' }, code as 'USER_NOT_FOUND');
        expect(e.message, what).to.equal(message);
      }
      expect(await snapshot(f)).to.equal(before);
    });
  });

  describe('messages', () => {
    it('a wrong password says how many tries are left; a user without MFA is told to log in with the password alone', async () => {
      const f = await activatedMember();
      const e = await f.m.fail({ op: 'login', username: 'bob', password: 'wrong-password' }, 'LOGIN_FAILED');
      expect(e.message).to.equal(`wrong password for bob; ${LOCKOUT_THRESHOLD - 1} more failed logins lock the user`);
      for (let i = 2; i < LOCKOUT_THRESHOLD - 1; i++) await f.m.fail({ op: 'login', username: 'bob', password: 'wrong-password' }, 'LOGIN_FAILED');
      expect((await f.m.fail({ op: 'login', username: 'bob', password: 'wrong-password' }, 'LOGIN_FAILED')).message).to.equal('wrong password for bob; 1 more failed login locks the user');
      expect((await f.m.fail({ op: 'login', username: 'bob', password: 'wrong-password' }, 'LOGIN_FAILED')).message).to.equal(
        'wrong password for bob; the user is now locked until an admin resets the password',
      );
      const mfa = await f.m.fail({ op: 'getMfaToken', username: 'alice', password: PASSWORDS.alice }, 'MFA_NOT_ENABLED');
      expect(mfa.message).to.equal('alice has no MFA registered; log in with the password alone');
    });

    it('user management refusals say what to do', async () => {
      const f = await activatedMember();
      const cases: [Record<string, unknown>, string, string][] = [
        [{ op: 'createUser', session: f.admin, username: 'Alice', password: 'x-password', role: 'crypto-user' }, 'USER_EXISTS', 'a user named alice already exists'],
        [{ op: 'deleteUser', session: f.admin, username: 'app_user' }, 'PERMISSION_DENIED', 'app_user is the internal appliance user and cannot be deleted'],
        [{ op: 'deleteUser', session: f.admin, username: 'carol' }, 'USER_LOGGED_IN', 'carol is logged in; they must log out before they can be deleted'],
      ];
      for (const [request, code, message] of cases) expect((await f.m.fail(request, code as 'USER_EXISTS')).message).to.equal(message);
      for (let i = 0; i < 2; i++) await f.m.ok({ op: 'generateKey', session: f.bob, keyType: 'aes', lengthBytes: 16, attributes: { token: true } });
      await f.m.ok({ op: 'logout', session: f.bob });
      expect((await f.m.fail({ op: 'deleteUser', session: f.admin, username: 'bob' }, 'USER_OWNS_KEYS')).message).to.equal('bob owns 2 keys; delete them before deleting the user');
    });
  });

  describe('sessions', () => {
    it('session keys die with their session and are invisible to the user’s other sessions; token keys stay', async () => {
      const f = await activatedMember();
      const other = await f.m.login('alice', PASSWORDS.alice);
      const sessionKey = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16 })).handle;
      const tokenKey = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
      await f.m.fail({ op: 'getAttributes', session: other, handle: sessionKey }, 'KEY_NOT_FOUND');
      await f.m.ok({ op: 'getAttributes', session: other, handle: tokenKey });
      await f.m.ok({ op: 'logout', session: f.alice });
      await f.m.fail({ op: 'findKeys', session: f.alice }, 'NOT_LOGGED_IN');
      expect((await f.m.ok({ op: 'findKeys', session: other })).keys.map((k) => k.handle)).to.deep.equal([tokenKey]);
      expect((await f.m.ok({ op: 'getHsmInfo' })).keys).to.equal(1);
    });

    it('a key whose session ends while it is being generated is not stored', async () => {
      const f = await activatedMember({ profile: 'unlimited' });
      const pending = f.m.raw({ op: 'generateKeyPair', session: f.alice, keyType: 'rsa', modulusBits: 2048 });
      await f.m.ok({ op: 'logout', session: f.alice });
      const answer = await pending;
      expect(answer.ok).to.equal(false);
      if (!answer.ok) expect(answer.error).to.deep.equal({ code: 'NOT_LOGGED_IN', message: 'the session of alice ended before the key was stored; nothing was created' });
      expect((await f.m.ok({ op: 'getHsmInfo' })).keys).to.equal(0);
    });

    it('closeSession ends the session as logout does: its session keys go with it', async () => {
      const f = await activatedMember();
      const handle = (await f.m.ok({ op: 'generateKey', session: f.bob, keyType: 'aes', lengthBytes: 16 })).handle;
      expect(await f.m.ok({ op: 'closeSession', session: f.bob })).to.deep.equal({ loggedOut: true });
      await f.m.fail({ op: 'findKeys', session: f.bob }, 'NOT_LOGGED_IN');
      await f.m.fail({ op: 'getAttributes', session: await f.m.login('bob', PASSWORDS.bob), handle }, 'KEY_NOT_FOUND');
    });

    it('a logout takes its own session keys only: not those of the same user\'s other session, not token keys, not one made a token key', async () => {
      const f = await activatedMember();
      const gen = (session: string, attributes = {}) => f.m.ok({ op: 'generateKey', session, keyType: 'aes', lengthBytes: 16, attributes }).then((r) => r.handle);
      const second = await f.m.login('bob', PASSWORDS.bob);
      const [gone, gone2, promoted, token, other] = [await gen(f.bob), await gen(f.bob), await gen(f.bob), await gen(f.bob, { token: true }), await gen(second)];
      await f.m.ok({ op: 'setAttributes', session: f.bob, handle: promoted, attributes: { token: true } });
      await f.m.ok({ op: 'deleteKey', session: f.bob, handle: gone2 });
      await f.m.ok({ op: 'logout', session: f.bob });
      for (const handle of [gone, gone2]) await f.m.fail({ op: 'getAttributes', session: second, handle }, 'KEY_NOT_FOUND');
      for (const handle of [promoted, token, other]) await f.m.ok({ op: 'getAttributes', session: second, handle });
      expect((await f.m.ok({ op: 'getHsmInfo' })).keys).to.equal(3);
      await f.m.ok({ op: 'logout', session: second });
      expect((await f.m.ok({ op: 'getHsmInfo' })).keys).to.equal(2);
    });

    it('a made-up or ended session is not logged in', async () => {
      const f = await activatedMember();
      const e = await f.m.fail({ op: 'findKeys', session: 'not-a-session' }, 'NOT_LOGGED_IN');
      expect(e.message).to.equal('session: not logged in (the session ended, or it never existed on this member)');
      await f.m.fail({ op: 'findKeys' }, 'NOT_LOGGED_IN');
    });

    it('a closed member refuses everything', async () => {
      const m = new TestMember(await createMember({ passwordCost: TEST_PASSWORD_COST }));
      m.member.close();
      await m.fail({ op: 'getHsmInfo' }, 'MEMBER_CLOSED');
    });
  });
});
