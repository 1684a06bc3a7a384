/**
 * Quorum tokens on one member: the 1,024-token limit (expired tokens purged first), expiry after
 * the generated timeout, tokens of other members refused, refusals that change nothing, and
 * quorum settings and token-sign keys that survive a restart and travel in backups.
 */
import { expect } from 'chai';
import { constants, createHash, generateKeyPairSync, privateEncrypt, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMember } from '../../src/hsm-core/index.js';
import { PASSWORDS, TEST_PASSWORD_COST, TestMember, activatedMember, snapshot } from '../helpers/member.js';

const DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');
const signDigest = (key: KeyObject, digest: Uint8Array) => privateEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, Buffer.concat([DIGEST_INFO, digest]));
const sha256 = (d: Uint8Array) => createHash('sha256').update(d).digest();
const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
const PUBLIC_PEM = new TextEncoder().encode(pair.publicKey.export({ type: 'spki', format: 'pem' }) as string);

async function register(m: TestMember, session: string): Promise<void> {
  const { approvalData } = await m.ok({ op: 'generateQuorumToken', session, service: 'registration' });
  await m.ok({ op: 'registerQuorumKey', session, publicKey: PUBLIC_PEM, registration: { approvalData, signature: signDigest(pair.privateKey, sha256(approvalData)) } });
}

describe('hsm-core: quorum tokens', function () {
  this.timeout(30_000);

  it('holds at most 1,024 live tokens; an expired one is purged to make room', async () => {
    const f = await activatedMember();
    await f.m.ok({ op: 'setQuorumTimeouts', session: f.admin, generated: 1 });
    const first = await f.m.ok({ op: 'generateQuorumToken', session: f.alice, service: 'registration' });
    await f.m.ok({ op: 'setQuorumTimeouts', session: f.admin, generated: 600 });
    for (let i = 1; i < 1024; i++) await f.m.ok({ op: 'generateQuorumToken', session: f.alice, service: 'registration' });
    expect((await f.m.ok({ op: 'listQuorumTokens' })).tokens).to.have.length(1024);
    await new Promise((r) => setTimeout(r, 1100));
    // The first token expired: it is purged, and the new one fits.
    await f.m.ok({ op: 'generateQuorumToken', session: f.alice, service: 'registration' });
    const full = await f.m.fail({ op: 'generateQuorumToken', session: f.alice, service: 'registration' }, 'QUOTA_EXCEEDED');
    expect(full.message).to.contain('1024 live quorum tokens');
    // The expired token no longer registers anything.
    const late = await f.m.fail(
      { op: 'registerQuorumKey', session: f.alice, publicKey: PUBLIC_PEM, registration: { approvalData: first.approvalData, signature: signDigest(pair.privateKey, sha256(first.approvalData)) } },
      'QUORUM_TOKEN_INVALID',
    );
    expect(late.message).to.contain('expired');
    const deleted = await f.m.ok({ op: 'deleteQuorumTokens', session: f.alice });
    expect(deleted.deleted).to.equal(1024);
  });

  it('refuses a token another member issued, a forged segment, and a non-RSA-2048 key, changing nothing', async () => {
    const f = await activatedMember();
    const other = await activatedMember();
    const before = await snapshot(f);
    const foreign = await other.m.ok({ op: 'generateQuorumToken', session: other.alice, service: 'registration' });
    await f.m.fail({ op: 'registerQuorumKey', session: f.alice, publicKey: PUBLIC_PEM, registration: { approvalData: foreign.approvalData, signature: signDigest(pair.privateKey, sha256(foreign.approvalData)) } }, 'QUORUM_TOKEN_INVALID');
    await f.m.fail({ op: 'registerQuorumKey', session: f.alice, publicKey: PUBLIC_PEM, registration: { approvalData: new Uint8Array(71), signature: new Uint8Array(256) } }, 'QUORUM_TOKEN_INVALID');
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const { approvalData } = await f.m.ok({ op: 'generateQuorumToken', session: f.alice, service: 'registration' });
    const e = await f.m.fail({ op: 'registerQuorumKey', session: f.alice, publicKey: new TextEncoder().encode(ec), registration: { approvalData, signature: new Uint8Array(64) } }, 'KEY_INVALID');
    expect(e.message).to.contain('RSA 2048');
    await f.m.fail({ op: 'setQuorumValue', session: f.admin, service: 'user', value: 9 }, 'BAD_REQUEST');
    await f.m.fail({ op: 'generateQuorumToken', session: f.admin, service: 'quorum' }, 'QUORUM_NOT_ENABLED');
    await f.m.fail({ op: 'generateQuorumToken', session: f.admin, service: 'key-usage' }, 'PERMISSION_DENIED');
    expect(await snapshot(f)).to.equal(before);
    expect((await f.m.ok({ op: 'listUsers' })).users.every((u) => !u.quorum && !u.mfa)).to.equal(true);
  });

  it('a token approves only what it was made for: its service, its key, its session, and a well-formed approval_data', async () => {
    const f = await activatedMember();
    await register(f.m, f.alice);
    await register(f.m, f.bob);
    const signingKey = async () => {
      const { privateHandle } = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp256r1', privateAttributes: { token: true, sign: true, 'use-key-quorum-value': 2 }, publicAttributes: {} });
      await f.m.ok({ op: 'shareKey', session: f.alice, handle: privateHandle, username: 'bob' });
      return privateHandle;
    };
    const [k1, k2] = [await signingKey(), await signingKey()];
    const approval = (approvalData: Uint8Array) => ({ approvalData, signatures: ['alice', 'bob'].map((username) => ({ username, signature: signDigest(pair.privateKey, sha256(approvalData)) })) });
    const sign = (handle: number, approvalData: Uint8Array, session = f.alice) => ({ op: 'sign', session, handle, mechanism: { name: 'ecdsa', hash: 'sha256' }, data: new Uint8Array(4), approval: approval(approvalData) }) as const;
    const { approvalData: usage } = await f.m.ok({ op: 'generateQuorumToken', session: f.alice, service: 'key-usage', handle: k1 });
    const { approvalData: management } = await f.m.ok({ op: 'generateQuorumToken', session: f.alice, service: 'key-management', handle: k1 });
    const refusals = [
      await f.m.fail(sign(k2, usage), 'QUORUM_TOKEN_INVALID'),
      await f.m.fail(sign(k1, management), 'QUORUM_TOKEN_INVALID'),
      await f.m.fail(sign(k1, usage, f.bob), 'QUORUM_TOKEN_INVALID'),
      await f.m.fail(sign(k1, new Uint8Array(0)), 'QUORUM_TOKEN_INVALID'),
      await f.m.fail(sign(k1, Buffer.concat([usage, usage.subarray(0, 10)])), 'QUORUM_TOKEN_INVALID'),
      await f.m.fail(sign(k1, new Uint8Array(72 * 33)), 'QUORUM_TOKEN_INVALID'),
      await f.m.fail(sign(k1, new Uint8Array(72)), 'QUORUM_TOKEN_INVALID'),
    ].map((e) => e.message.replace(/0x[0-9a-f]+/g, 'KEY'));
    expect(refusals).to.deep.equal([
      'approval: the token was generated for key KEY, not key KEY',
      'approval: the token is for the key-management service, and this operation needs a key-usage token',
      'approval: the token belongs to another login session of alice; a token is valid only in the session that generated it',
      'approval: approval_data is not a quorum token (0 bytes; a token is a multiple of 72)',
      'approval: approval_data is not a quorum token (82 bytes; a token is a multiple of 72)',
      'approval: approval_data is not a quorum token (2376 bytes; a token is a multiple of 72)',
      'approval: approval_data is not a quorum token',
    ]);
    // None of the refusals used the token up.
    await f.m.ok(sign(k1, usage));
    await f.m.fail(sign(k1, usage), 'QUORUM_TOKEN_INVALID');
    // One live user-service token per admin at a time.
    await f.m.ok({ op: 'generateQuorumToken', session: f.admin, service: 'user' });
    const twice = await f.m.fail({ op: 'generateQuorumToken', session: f.admin, service: 'user' }, 'QUORUM_TOKEN_EXISTS');
    expect(twice.message).to.match(/^admin already has an active user token/);
  });

  it('who may generate, list and delete which tokens, and the settings an admin changes', async () => {
    const f = await activatedMember();
    const { privateHandle: key } = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp256r1', privateAttributes: { token: true, sign: true, 'use-key-quorum-value': 2 }, publicAttributes: {} });
    await f.m.ok({ op: 'shareKey', session: f.alice, handle: key, username: 'bob' });
    const refused = async (request: Record<string, unknown>, code: Parameters<typeof f.m.fail>[1]) => (await f.m.fail(request, code)).message.replace(/0x[0-9a-f]+/, 'KEY');
    expect([
      await refused({ op: 'generateQuorumToken', session: f.alice, service: 'key-usage' }, 'BAD_REQUEST'),
      await refused({ op: 'generateQuorumToken', session: f.carol, service: 'key-usage', handle: key }, 'KEY_NOT_FOUND'),
      await refused({ op: 'generateQuorumToken', session: f.admin, service: 'user', handle: key }, 'BAD_REQUEST'),
      await refused({ op: 'generateQuorumToken', session: f.alice, service: 'user' }, 'PERMISSION_DENIED'),
      await refused({ op: 'generateQuorumToken', session: f.alice, service: 'quorum' }, 'PERMISSION_DENIED'),
      await refused({ op: 'generateQuorumToken', session: f.admin, service: 'key-usage', handle: key }, 'PERMISSION_DENIED'),
    ]).to.deep.equal([
      'handle: a key-usage token names the key it is for',
      'no key KEY that carol owns or shares',
      'handle: only key-management and key-usage tokens name a key',
      'a user token is for admins',
      'a quorum token is for admins',
      'a key-usage token is for crypto users',
    ]);

    await f.m.ok({ op: 'generateQuorumToken', session: f.alice, service: 'key-usage', handle: key });
    await f.m.ok({ op: 'generateQuorumToken', session: f.bob, service: 'key-usage', handle: key });
    await f.m.ok({ op: 'generateQuorumToken', session: f.bob, service: 'registration' });
    await f.m.ok({ op: 'generateQuorumToken', session: f.admin, service: 'user' });
    const listed = (await f.m.ok({ op: 'listQuorumTokens', session: f.admin })).tokens.map((t) => [t.username, t.service, t.handle, t.approvalsRequired]);
    expect(listed).to.have.deep.members([['alice', 'key-usage', key, 2], ['bob', 'key-usage', key, 2], ['bob', 'registration', null, 1], ['admin', 'user', null, 1]]);

    expect(await refused({ op: 'deleteQuorumTokens', session: f.alice, username: 'bob' }, 'PERMISSION_DENIED')).to.equal("only an admin can delete another user's tokens");
    // A crypto user's deletion reaches only their own tokens; a service narrows it.
    expect(await f.m.ok({ op: 'deleteQuorumTokens', session: f.bob, service: 'registration' })).to.deep.equal({ deleted: 1 });
    expect(await f.m.ok({ op: 'deleteQuorumTokens', session: f.alice })).to.deep.equal({ deleted: 1 });
    expect(await f.m.ok({ op: 'deleteQuorumTokens', session: f.admin, username: 'bob' })).to.deep.equal({ deleted: 1 });
    expect((await f.m.ok({ op: 'listQuorumTokens', session: f.admin })).tokens.map((t) => t.username)).to.deep.equal(['admin']);

    expect(await refused({ op: 'setQuorumTimeouts', session: f.admin }, 'BAD_REQUEST')).to.equal('name --generated or --approved (seconds)');
    expect(await f.m.ok({ op: 'setQuorumTimeouts', session: f.admin, approved: 120 })).to.deep.equal({ generated: 600, approved: 120 });
    expect(await f.m.ok({ op: 'setQuorumValue', session: f.admin, service: 'user', value: 2 })).to.deep.equal({ service: 'user', value: 2 });
    expect(await refused({ op: 'setQuorumValue', session: f.admin, service: 'user', value: 3 }, 'QUORUM_VALUE_INVALID')).to.equal(
      'value: 3 approvals would need 3 admins, and the cluster has 2; create more admins first (best practice: M+1)',
    );
    expect((await f.m.ok({ op: 'getQuorumSettings', session: f.admin })).values).to.deep.equal({ user: 2, quorum: 1, cluster: 1 });
  });

  it('a registration takes an RSA 2048 public key as PEM or DER, signed over its token, and nothing else', async () => {
    const f = await activatedMember();
    const attempt = async (publicKey: Uint8Array, sign: (approvalData: Uint8Array) => Uint8Array) => {
      const { approvalData } = await f.m.ok({ op: 'generateQuorumToken', session: f.alice, service: 'registration' });
      return f.m.raw({ op: 'registerQuorumKey', session: f.alice, publicKey, registration: { approvalData, signature: sign(approvalData) } });
    };
    const good = (approvalData: Uint8Array) => signDigest(pair.privateKey, sha256(approvalData));
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const answers = [
      await attempt(new TextEncoder().encode('not a key'), good),
      await attempt(new TextEncoder().encode(small), good),
      await attempt(PUBLIC_PEM, (d) => signDigest(pair.privateKey, sha256(Buffer.concat([d, Buffer.from('x')])))),
      await attempt(PUBLIC_PEM, () => privateEncrypt({ key: pair.privateKey, padding: constants.RSA_PKCS1_PADDING }, Buffer.from('too short'))),
    ];
    expect(answers.map((a) => (a.ok ? 'registered' : `${a.error.code}: ${a.error.message}`))).to.deep.equal([
      'KEY_INVALID: publicKey: not a PEM or DER public key',
      'KEY_INVALID: publicKey: the token-sign key must be RSA 2048 (sha256WithRSAEncryption), got rsa 1024',
      'QUORUM_TOKEN_INVALID: registration: the signed token does not verify under the public key (sign the base64-decoded unsigned token with the matching private key, SHA-256, RSA PKCS #1 v1.5)',
      'QUORUM_TOKEN_INVALID: registration: the signed token does not verify under the public key (sign the base64-decoded unsigned token with the matching private key, SHA-256, RSA PKCS #1 v1.5)',
    ]);
    expect((await f.m.ok({ op: 'listUsers' })).users.find((u) => u.username === 'alice')).to.include({ quorum: false });
    const der = new Uint8Array(pair.publicKey.export({ type: 'spki', format: 'der' }));
    expect((await attempt(der, good)).ok).to.equal(true);
    expect((await f.m.ok({ op: 'listUsers' })).users.find((u) => u.username === 'alice')).to.include({ quorum: true });
  });

  it('MFA: who may change it, one key for MFA and quorum, and challenges that are single-use and per user', async () => {
    const f = await activatedMember();
    const registration = async (session: string) => {
      const { approvalData } = await f.m.ok({ op: 'generateQuorumToken', session, service: 'registration' });
      return { approvalData, signature: signDigest(pair.privateKey, sha256(approvalData)) };
    };
    const refused = async (request: Record<string, unknown>, code: Parameters<typeof f.m.fail>[1]) => (await f.m.fail(request, code)).message;
    expect([
      await refused({ op: 'changeMfa', session: f.alice, username: 'bob', deregister: true }, 'PERMISSION_DENIED'),
      await refused({ op: 'changeMfa', session: f.admin, username: 'nobody', deregister: true }, 'USER_NOT_FOUND'),
      await refused({ op: 'changeMfa', session: f.admin, username: 'app_user', deregister: true }, 'PERMISSION_DENIED'),
      await refused({ op: 'changeMfa', session: f.alice, username: 'alice', role: 'admin', deregister: true }, 'USER_NOT_FOUND'),
      await refused({ op: 'changeMfa', session: f.alice, username: 'alice', deregister: true, publicKey: PUBLIC_PEM }, 'BAD_REQUEST'),
      await refused({ op: 'changeMfa', session: f.alice, username: 'alice', publicKey: PUBLIC_PEM }, 'BAD_REQUEST'),
    ]).to.deep.equal([
      "only an admin can change another user's MFA",
      'no user named nobody on this member',
      'app_user is appliance; MFA is for admins and crypto users',
      'alice is a crypto-user, not an admin',
      'give either --deregister or a key with its signed token, not both',
      'publicKey and registration: give the token-sign public key and the signed registration token, or deregister',
    ]);

    // MFA with alice's key; then quorum must use the same key.
    expect(await f.m.ok({ op: 'changeMfa', session: f.alice, username: 'alice', publicKey: PUBLIC_PEM, registration: await registration(f.alice) })).to.deep.equal({ username: 'alice', role: 'crypto-user', mfa: true, quorum: false });
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const { approvalData } = await f.m.ok({ op: 'generateQuorumToken', session: f.alice, service: 'registration' });
    const otherKey = await refused(
      { op: 'registerQuorumKey', session: f.alice, publicKey: new TextEncoder().encode(other.publicKey.export({ type: 'spki', format: 'pem' }) as string), registration: { approvalData, signature: signDigest(other.privateKey, sha256(approvalData)) } },
      'KEY_INVALID',
    );
    expect(otherKey).to.equal('alice uses another key for MFA; the same token-sign key serves MFA and quorum, so register that key (or change MFA first)');
    await f.m.ok({ op: 'registerQuorumKey', session: f.alice, publicKey: PUBLIC_PEM, registration: await registration(f.alice) });
    expect((await f.m.ok({ op: 'listUsers' })).users.find((u) => u.username === 'alice')).to.include({ mfa: true, quorum: true });

    // A challenge answers once, for the user it was issued to.
    await f.m.ok({ op: 'logout', session: f.alice });
    const { unsigned } = await f.m.ok({ op: 'getMfaToken', username: 'alice', password: PASSWORDS.alice });
    const answer = { unsigned, signature: signDigest(pair.privateKey, Buffer.from(unsigned)) };
    await f.m.ok({ op: 'login', username: 'alice', password: PASSWORDS.alice, mfa: answer });
    const reused = await refused({ op: 'login', username: 'alice', password: PASSWORDS.alice, mfa: answer }, 'LOGIN_FAILED');
    expect(reused).to.equal('the MFA token did not verify for alice; 4 more failed logins lock the user');
  });

  it('quorum values and token-sign keys survive a restart and travel in backups; tokens do not', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'strongroom-quorum-'));
    const serviceKey = new Uint8Array(32).fill(3);
    try {
      let m = new TestMember(await createMember({ dataDir: dir, passwordCost: TEST_PASSWORD_COST, serviceKey }));
      await m.ok({ op: 'activateCluster', password: PASSWORDS.admin });
      let admin = await m.login('admin', PASSWORDS.admin);
      await m.ok({ op: 'createUser', session: admin, username: 'admin2', password: PASSWORDS.admin2, role: 'admin' });
      await register(m, admin);
      await m.ok({ op: 'setQuorumValue', session: admin, service: 'user', value: 2 });
      await m.ok({ op: 'setQuorumTimeouts', session: admin, approved: 120 });
      await m.ok({ op: 'generateQuorumToken', session: admin, service: 'user' });
      const { backup } = await m.ok({ op: 'createBackup', session: admin });
      await m.member.close();

      m = new TestMember(await createMember({ dataDir: dir, passwordCost: TEST_PASSWORD_COST, serviceKey }));
      admin = await m.login('admin', PASSWORDS.admin);
      expect(await m.ok({ op: 'getQuorumSettings' })).to.deep.equal({ values: { user: 2, quorum: 1, cluster: 1 }, timeouts: { generated: 600, approved: 120 } });
      expect((await m.ok({ op: 'listUsers' })).users.find((u) => u.username === 'admin')).to.include({ quorum: true });
      expect((await m.ok({ op: 'listQuorumTokens' })).tokens).to.deep.equal([]);
      await m.member.close();

      const fresh = new TestMember(await createMember({ passwordCost: TEST_PASSWORD_COST, serviceKey }));
      await fresh.ok({ op: 'restoreBackup', backup });
      expect((await fresh.ok({ op: 'getQuorumSettings' })).values.user).to.equal(2);
      expect((await fresh.ok({ op: 'listUsers' })).users.find((u) => u.username === 'admin')).to.include({ quorum: true });
      await fresh.member.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
