/**
 * The permission matrix of CLOUDHSM.md §1.2, table-driven: every role against every operation,
 * allowed and refused, and a refusal leaves the member as it was. The expected table is written
 * out here from the documentation, independently of the operations table's `who` column (operations.ts).
 */
import { expect } from 'chai';
import { generateKeyPairSync } from 'node:crypto';
import { OPS, type HsmErrorCode, type Op } from '../../src/hsm-core/index.js';
import { PASSWORDS, activatedMember, bytes, freshMember, snapshot, type Fixture, type TestMember } from '../helpers/member.js';

type Role = 'none' | 'unactivated-admin' | 'admin' | 'crypto-user' | 'appliance';
const ROLES: Role[] = ['none', 'unactivated-admin', 'admin', 'crypto-user', 'appliance'];

/** A row of the matrix: the operation (plus a variant) and which roles may do it. */
interface Row {
  name: string;
  op: Op;
  allowed: readonly Role[];
  /** The answer an allowed role gets when the operation itself cannot apply (not a permission refusal). */
  allowedAnswer?: (role: Role) => HsmErrorCode | undefined;
  request: (c: Context) => Record<string, unknown>;
}

interface Keys {
  aes: number;
  payload: number;
  victim: number;
  ecPrivate: number;
  ecPublic: number;
  secret: number;
  masked: Uint8Array;
  maskedUser: Uint8Array;
  maskedSettings: Uint8Array;
  wrapped: Uint8Array;
  ciphertext: { data: Uint8Array; iv: Uint8Array };
  signature: Uint8Array;
}

interface Context {
  role: Role;
  session: string | undefined;
  self: string;
  keys: Keys;
}

const ALL: Role[] = ROLES;
const LOGGED_IN: Role[] = ['unactivated-admin', 'admin', 'crypto-user', 'appliance'];
const ADMIN: Role[] = ['admin'];
const CU: Role[] = ['crypto-user'];
const ADMIN_CU: Role[] = ['admin', 'crypto-user'];
const ADMIN_CU_AU: Role[] = ['admin', 'crypto-user', 'appliance'];

const SERVICE_KEY = new Uint8Array(32).fill(7);
const s = (c: Context) => (c.session === undefined ? {} : { session: c.session });

/** A token-sign public key and a registration that no member issued. */
const QUORUM_KEY = new TextEncoder().encode(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }) as string);
const FOREIGN_TOKEN = (() => {
  const t = new Uint8Array(72);
  t.set(new TextEncoder().encode('SRQ'), 0);
  return t;
})();

const ROWS: Row[] = [
  // Basic cluster info and user list: everyone, even before login.
  { name: 'getHsmInfo', op: 'getHsmInfo', allowed: ALL, request: () => ({ op: 'getHsmInfo' }) },
  { name: 'listUsers', op: 'listUsers', allowed: ALL, request: (c) => ({ op: 'listUsers', ...s(c) }) },
  { name: 'login', op: 'login', allowed: ALL, request: () => ({ op: 'login', username: 'app_user', password: PASSWORDS.app_user }) },
  {
    name: 'activateCluster',
    op: 'activateCluster',
    allowed: ALL,
    allowedAnswer: (role) => (role === 'unactivated-admin' ? undefined : 'CLUSTER_ALREADY_ACTIVATED'),
    request: () => ({ op: 'activateCluster', password: 'new-admin-password' }),
  },
  // Quorum and MFA (CLOUDHSM.md §1.5, §1.6).
  { name: 'listQuorumTokens', op: 'listQuorumTokens', allowed: ALL, request: (c) => ({ op: 'listQuorumTokens', ...s(c) }) },
  { name: 'getQuorumSettings', op: 'getQuorumSettings', allowed: ALL, request: (c) => ({ op: 'getQuorumSettings', ...s(c) }) },
  {
    name: 'getMfaToken',
    op: 'getMfaToken',
    allowed: ALL,
    allowedAnswer: () => 'MFA_NOT_ENABLED',
    request: () => ({ op: 'getMfaToken', username: 'app_user', password: PASSWORDS.app_user }),
  },
  {
    name: 'generateQuorumToken (registration)',
    op: 'generateQuorumToken',
    allowed: ADMIN_CU,
    request: (c) => ({ op: 'generateQuorumToken', ...s(c), service: 'registration' }),
  },
  { name: 'deleteQuorumTokens', op: 'deleteQuorumTokens', allowed: ADMIN_CU, request: (c) => ({ op: 'deleteQuorumTokens', ...s(c) }) },
  { name: 'setQuorumValue', op: 'setQuorumValue', allowed: ADMIN, request: (c) => ({ op: 'setQuorumValue', ...s(c), service: 'user', value: 1 }) },
  { name: 'setQuorumTimeouts', op: 'setQuorumTimeouts', allowed: ADMIN, request: (c) => ({ op: 'setQuorumTimeouts', ...s(c), generated: 300 }) },
  // mTLS (hsm2m): admins change it; anyone reads it (the TLS host does, unauthenticated).
  { name: 'registerTrustAnchor', op: 'registerTrustAnchor', allowed: ADMIN, allowedAnswer: () => 'BAD_REQUEST', request: (c) => ({ op: 'registerTrustAnchor', ...s(c), certificate: 'not a certificate' }) },
  { name: 'deregisterTrustAnchor', op: 'deregisterTrustAnchor', allowed: ADMIN, allowedAnswer: () => 'BAD_REQUEST', request: (c) => ({ op: 'deregisterTrustAnchor', ...s(c), reference: 1 }) },
  { name: 'getMtlsSettings', op: 'getMtlsSettings', allowed: ALL, request: (c) => ({ op: 'getMtlsSettings', ...s(c) }) },
  { name: 'setMtlsEnforcement', op: 'setMtlsEnforcement', allowed: ADMIN, request: (c) => ({ op: 'setMtlsEnforcement', ...s(c), level: 'none' }) },
  {
    name: 'registerQuorumKey',
    op: 'registerQuorumKey',
    allowed: ADMIN_CU,
    allowedAnswer: () => 'QUORUM_TOKEN_INVALID',
    request: (c) => ({ op: 'registerQuorumKey', ...s(c), publicKey: QUORUM_KEY, registration: { approvalData: FOREIGN_TOKEN, signature: new Uint8Array(256) } }),
  },
  { name: 'changeMfa (own, deregister)', op: 'changeMfa', allowed: ADMIN_CU, request: (c) => ({ op: 'changeMfa', ...s(c), username: c.self, deregister: true }) },
  // Own session and password.
  { name: 'logout', op: 'logout', allowed: LOGGED_IN, request: (c) => ({ op: 'logout', ...s(c) }) },
  { name: 'closeSession', op: 'closeSession', allowed: LOGGED_IN, request: (c) => ({ op: 'closeSession', ...s(c) }) },
  {
    name: 'changePassword (own)',
    op: 'changePassword',
    allowed: LOGGED_IN,
    request: (c) => ({ op: 'changePassword', ...s(c), username: c.self, password: 'a-new-password' }),
  },
  {
    name: "changePassword (another user's)",
    op: 'changePassword',
    allowed: ADMIN,
    request: (c) => ({ op: 'changePassword', ...s(c), username: 'dave', password: 'a-new-password' }),
  },
  { name: 'generateRandom', op: 'generateRandom', allowed: LOGGED_IN, request: (c) => ({ op: 'generateRandom', ...s(c), length: 16 }) },
  // User management: admins.
  {
    name: 'createUser',
    op: 'createUser',
    allowed: ADMIN,
    request: (c) => ({ op: 'createUser', ...s(c), username: 'erin', password: 'erin-password', role: 'crypto-user' }),
  },
  { name: 'deleteUser', op: 'deleteUser', allowed: ADMIN, request: (c) => ({ op: 'deleteUser', ...s(c), username: 'dave' }) },
  // The appliance user reads it for CloudHSM's side, which sends it to CloudWatch Logs.
  { name: 'getAuditLog', op: 'getAuditLog', allowed: ['admin', 'appliance'], request: (c) => ({ op: 'getAuditLog', ...s(c) }) },
  // Key listing: admins and crypto users.
  { name: 'findKeys', op: 'findKeys', allowed: ADMIN_CU, request: (c) => ({ op: 'findKeys', ...s(c) }) },
  { name: 'getAttributes', op: 'getAttributes', allowed: ADMIN_CU, request: (c) => ({ op: 'getAttributes', ...s(c), handle: c.keys.aes }) },
  // Attributes: trusted is admin-only; everything else is the owner's.
  {
    name: 'setAttributes (trusted)',
    op: 'setAttributes',
    allowed: ADMIN,
    request: (c) => ({ op: 'setAttributes', ...s(c), handle: c.keys.aes, attributes: { trusted: true } }),
  },
  {
    name: 'setAttributes (label)',
    op: 'setAttributes',
    allowed: CU,
    request: (c) => ({ op: 'setAttributes', ...s(c), handle: c.keys.aes, attributes: { label: 'renamed' } }),
  },
  // Sync status and masked objects: admins, crypto users, the appliance user.
  { name: 'getSyncStatus', op: 'getSyncStatus', allowed: ADMIN_CU_AU, request: (c) => ({ op: 'getSyncStatus', ...s(c) }) },
  {
    name: 'extractMaskedObject',
    op: 'extractMaskedObject',
    allowed: ADMIN_CU_AU,
    request: (c) => ({ op: 'extractMaskedObject', ...s(c), handle: c.keys.aes }),
  },
  {
    name: 'insertMaskedObject',
    op: 'insertMaskedObject',
    allowed: ADMIN_CU_AU,
    request: (c) => ({ op: 'insertMaskedObject', ...s(c), maskedObject: c.keys.masked }),
  },
  // Users travel between members as masked users: admins and the appliance user; a crypto user only itself.
  {
    name: 'extractMaskedUser',
    op: 'extractMaskedUser',
    allowed: ADMIN_CU_AU,
    request: (c) => ({ op: 'extractMaskedUser', ...s(c), username: 'alice' }),
  },
  {
    name: 'insertMaskedUser',
    op: 'insertMaskedUser',
    allowed: ADMIN_CU_AU,
    request: (c) => ({ op: 'insertMaskedUser', ...s(c), maskedUser: c.keys.maskedUser }),
  },
  // The cluster settings travel as masked settings: admins and the appliance user.
  { name: 'extractMaskedSettings', op: 'extractMaskedSettings', allowed: ADMIN.concat('appliance'), request: (c) => ({ op: 'extractMaskedSettings', ...s(c) }) },
  {
    name: 'insertMaskedSettings',
    op: 'insertMaskedSettings',
    allowed: ADMIN.concat('appliance'),
    request: (c) => ({ op: 'insertMaskedSettings', ...s(c), maskedSettings: c.keys.maskedSettings }),
  },
  {
    name: 'setClusterAddresses',
    op: 'setClusterAddresses',
    allowed: ADMIN.concat('appliance'),
    request: (c) => ({ op: 'setClusterAddresses', ...s(c), addresses: ['127.0.0.1:2223'] }),
  },
  // Backups: taken by admins and the appliance user; a restore onto a member in a cluster likewise.
  {
    name: 'createBackup',
    op: 'createBackup',
    allowed: ADMIN.concat('appliance'),
    request: (c) => ({ op: 'createBackup', ...s(c) }),
  },
  {
    name: 'restoreBackup',
    op: 'restoreBackup',
    allowed: ['unactivated-admin', 'admin', 'appliance'],
    allowedAnswer: () => 'BACKUP_INVALID',
    request: (c) => ({ op: 'restoreBackup', ...s(c), backup: new Uint8Array(64) }),
  },
  // Key management: crypto users only.
  {
    name: 'generateKey',
    op: 'generateKey',
    allowed: CU,
    request: (c) => ({ op: 'generateKey', ...s(c), keyType: 'aes', lengthBytes: 16 }),
  },
  {
    name: 'generateKeyPair',
    op: 'generateKeyPair',
    allowed: CU,
    request: (c) => ({ op: 'generateKeyPair', ...s(c), keyType: 'ec', curve: 'secp256r1' }),
  },
  {
    name: 'importKey',
    op: 'importKey',
    allowed: CU,
    request: (c) => ({ op: 'importKey', ...s(c), keyClass: 'secret-key', keyType: 'aes', format: 'raw', keyData: new Uint8Array(16) }),
  },
  { name: 'copyKey', op: 'copyKey', allowed: CU, request: (c) => ({ op: 'copyKey', ...s(c), handle: c.keys.payload, attributes: { label: 'copy' } }) },
  {
    name: 'exportEncryptedKey',
    op: 'exportEncryptedKey',
    allowed: CU,
    request: (c) => ({ op: 'exportEncryptedKey', ...s(c), handle: c.keys.ecPrivate, password: 'p12-password' }),
  },
  {
    name: 'importEncryptedKey',
    op: 'importEncryptedKey',
    allowed: CU,
    allowedAnswer: () => 'KEY_DATA_INVALID',
    request: (c) => ({ op: 'importEncryptedKey', ...s(c), encryptedPrivateKeyInfo: new Uint8Array(40), password: 'p12-password' }),
  },
  { name: 'exportKey', op: 'exportKey', allowed: CU, request: (c) => ({ op: 'exportKey', ...s(c), handle: c.keys.payload, format: 'raw' }) },
  {
    name: 'wrapKey',
    op: 'wrapKey',
    allowed: CU,
    request: (c) => ({ op: 'wrapKey', ...s(c), mechanism: { name: 'aes-zero-pad' }, wrappingHandle: c.keys.aes, payloadHandle: c.keys.payload }),
  },
  {
    name: 'unwrapKey',
    op: 'unwrapKey',
    allowed: CU,
    request: (c) => ({
      op: 'unwrapKey',
      ...s(c),
      mechanism: { name: 'aes-zero-pad' },
      unwrappingHandle: c.keys.aes,
      wrapped: c.keys.wrapped,
      keyClass: 'secret-key',
      keyType: 'aes',
    }),
  },
  {
    name: 'deriveKey',
    op: 'deriveKey',
    allowed: CU,
    request: (c) => ({
      op: 'deriveKey',
      ...s(c),
      baseHandle: c.keys.secret,
      mechanism: { name: 'hkdf', hash: 'sha256', salt: new Uint8Array(0), info: new Uint8Array(0) },
      keyType: 'aes',
      lengthBytes: 32,
    }),
  },
  { name: 'deleteKey', op: 'deleteKey', allowed: CU, request: (c) => ({ op: 'deleteKey', ...s(c), handle: c.keys.victim }) },
  { name: 'shareKey', op: 'shareKey', allowed: CU, request: (c) => ({ op: 'shareKey', ...s(c), handle: c.keys.aes, username: 'bob' }) },
  { name: 'unshareKey', op: 'unshareKey', allowed: CU, request: (c) => ({ op: 'unshareKey', ...s(c), handle: c.keys.aes, username: 'bob' }) },
  // Cryptographic operations: crypto users only.
  {
    name: 'encrypt',
    op: 'encrypt',
    allowed: CU,
    request: (c) => ({ op: 'encrypt', ...s(c), handle: c.keys.aes, mechanism: { name: 'aes-gcm' }, data: bytes('00') }),
  },
  {
    name: 'decrypt',
    op: 'decrypt',
    allowed: CU,
    request: (c) => ({ op: 'decrypt', ...s(c), handle: c.keys.aes, mechanism: { name: 'aes-gcm', iv: c.keys.ciphertext.iv }, data: c.keys.ciphertext.data }),
  },
  {
    name: 'sign',
    op: 'sign',
    allowed: CU,
    request: (c) => ({ op: 'sign', ...s(c), handle: c.keys.ecPrivate, mechanism: { name: 'ecdsa', hash: 'sha256' }, data: bytes('01') }),
  },
  {
    name: 'verify',
    op: 'verify',
    allowed: CU,
    request: (c) => ({
      op: 'verify',
      ...s(c),
      handle: c.keys.ecPublic,
      mechanism: { name: 'ecdsa', hash: 'sha256' },
      data: bytes('01'),
      signature: c.keys.signature,
    }),
  },
  { name: 'digest', op: 'digest', allowed: CU, request: (c) => ({ op: 'digest', ...s(c), hash: 'sha256', data: bytes('01') }) },
  {
    name: 'deriveBits',
    op: 'deriveBits',
    allowed: CU,
    request: (c) => ({
      op: 'deriveBits',
      ...s(c),
      baseHandle: c.keys.secret,
      mechanism: { name: 'hkdf', hash: 'sha256', salt: new Uint8Array(0), info: new Uint8Array(0) },
      lengthBits: 256,
    }),
  },
];

/** alice's keys, which every role's request points at. */
async function makeKeys(f: Fixture): Promise<Keys> {
  const { m, alice } = f;
  const all = { encrypt: true, decrypt: true, sign: true, verify: true, wrap: true, unwrap: true, derive: true, token: true };
  const aes = (await m.ok({ op: 'generateKey', session: alice, keyType: 'aes', lengthBytes: 32, attributes: all })).handle;
  const payload = (await m.ok({ op: 'generateKey', session: alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true, sensitive: false } })).handle;
  const victim = (await m.ok({ op: 'generateKey', session: alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
  const pair = await m.ok({
    op: 'generateKeyPair',
    session: alice,
    keyType: 'ec',
    curve: 'secp256r1',
    privateAttributes: { sign: true, token: true },
    publicAttributes: { verify: true, token: true },
  });
  const secret = (
    await m.ok({ op: 'generateKey', session: alice, keyType: 'generic-secret', lengthBytes: 32, attributes: { derive: true, token: true } })
  ).handle;
  const masked = (await m.ok({ op: 'extractMaskedObject', session: alice, handle: aes })).maskedObject;
  const maskedUser = (await m.ok({ op: 'extractMaskedUser', session: alice, username: 'alice' })).maskedUser;
  const maskedSettings = (await m.ok({ op: 'extractMaskedSettings', session: f.admin })).maskedSettings;
  const wrapped = (await m.ok({ op: 'wrapKey', session: alice, mechanism: { name: 'aes-zero-pad' }, wrappingHandle: aes, payloadHandle: payload })).wrapped;
  const enc = await m.ok({ op: 'encrypt', session: alice, handle: aes, mechanism: { name: 'aes-gcm' }, data: bytes('00') });
  const { signature } = await m.ok({
    op: 'sign',
    session: alice,
    handle: pair.privateHandle,
    mechanism: { name: 'ecdsa', hash: 'sha256' },
    data: bytes('01'),
  });
  return {
    aes,
    payload,
    victim,
    ecPrivate: pair.privateHandle,
    ecPublic: pair.publicHandle,
    secret,
    masked,
    maskedUser,
    maskedSettings,
    wrapped,
    ciphertext: { data: enc.data, iv: enc.iv! },
    signature,
  };
}

async function contextFor(role: Role): Promise<{ m: TestMember; c: Context; fixture: Fixture | null }> {
  if (role === 'unactivated-admin') {
    const m = await freshMember({ serviceKey: SERVICE_KEY });
    const session = await m.login('admin', 'password');
    const none = new Uint8Array(0);
    const keys: Keys = {
      aes: 32,
      payload: 64,
      victim: 96,
      ecPrivate: 128,
      ecPublic: 160,
      secret: 192,
      masked: none,
      maskedUser: none,
      maskedSettings: none,
      wrapped: none,
      ciphertext: { data: none, iv: new Uint8Array(12) },
      signature: none,
    };
    return { m, c: { role, session, self: 'admin', keys }, fixture: null };
  }
  const f = await activatedMember({ serviceKey: SERVICE_KEY });
  await f.m.ok({ op: 'createUser', session: f.admin, username: 'dave', password: 'dave-password', role: 'crypto-user' });
  const keys = await makeKeys(f);
  const session = { none: undefined, admin: f.admin, 'crypto-user': f.alice, appliance: f.appliance }[role];
  const self = { none: 'alice', admin: 'admin', 'crypto-user': 'alice', appliance: 'app_user' }[role];
  return { m: f.m, c: { role, session, self, keys }, fixture: f };
}

describe('hsm-core: the permission matrix (CLOUDHSM.md §1.2)', () => {
  it('has a row for every operation of the protocol', () => {
    const covered = new Set(ROWS.map((r) => r.op));
    expect(OPS.filter((op) => !covered.has(op))).to.deep.equal([]);
  });

  it('tells the unactivated admin to activate the cluster first, and no one else', async () => {
    const preco = await contextFor('unactivated-admin');
    const refused = await preco.m.fail({ op: 'createUser', session: preco.c.session, username: 'bob', password: 'bob-password', role: 'crypto-user' }, 'PERMISSION_DENIED');
    expect(refused.message).to.equal('createUser is not allowed for the unactivated admin (activate the cluster first); it needs an admin');
    const cu = await contextFor('crypto-user');
    const other = await cu.m.fail({ op: 'createUser', session: cu.c.session, username: 'bob', password: 'bob-password', role: 'crypto-user' }, 'PERMISSION_DENIED');
    expect(other.message).to.equal('createUser is not allowed for a crypto user; it needs an admin');
  });

  for (const row of ROWS) {
    describe(row.name, () => {
      for (const role of ROLES) {
        const allowed = row.allowed.includes(role);
        it(`${allowed ? 'allows' : 'refuses'} ${role === 'none' ? 'a caller who is not logged in' : `the ${role}`}`, async () => {
          const { m, c, fixture } = await contextFor(role);
          const before = fixture ? await snapshot(fixture) : null;
          const response = await m.raw(row.request(c));
          if (allowed) {
            const expected = row.allowedAnswer?.(role);
            if (expected) {
              expect(response.ok).to.equal(false);
              if (!response.ok) expect(response.error.code).to.equal(expected);
            } else if (!response.ok) {
              expect.fail(`refused with ${response.error.code}: ${response.error.message}`);
            }
          } else {
            expect(response.ok, 'the operation should have been refused').to.equal(false);
            if (!response.ok) {
              expect(response.error.code).to.equal(role === 'none' ? 'NOT_LOGGED_IN' : 'PERMISSION_DENIED');
              expect(response.error.message).to.match(role === 'none' ? /log in/ : /not allowed for|only an admin|may change only/);
              if (fixture) expect(await snapshot(fixture)).to.equal(before);
            }
          }
        });
      }
    });
  }
});

describe('hsm-core: key ownership and sharing (CLOUDHSM.md §1.3)', () => {
  /** Each action a crypto user may attempt on a key, with what each relation to the key gets. */
  type Relation = 'owner' | 'shared' | 'other';
  const cases: { action: string; request: (k: { secret: number; pub: number }, session: string) => Record<string, unknown>; expect: Record<Relation, HsmErrorCode | 'ok'> }[] = [
    {
      action: 'use (encrypt)',
      request: (k, session) => ({ op: 'encrypt', session, handle: k.secret, mechanism: { name: 'aes-gcm' }, data: bytes('00') }),
      expect: { owner: 'ok', shared: 'ok', other: 'KEY_NOT_FOUND' },
    },
    {
      action: 'see (getAttributes)',
      request: (k, session) => ({ op: 'getAttributes', session, handle: k.secret }),
      expect: { owner: 'ok', shared: 'ok', other: 'KEY_NOT_FOUND' },
    },
    {
      action: 'change attributes',
      request: (k, session) => ({ op: 'setAttributes', session, handle: k.secret, attributes: { label: 'x' } }),
      expect: { owner: 'ok', shared: 'NOT_KEY_OWNER', other: 'KEY_NOT_FOUND' },
    },
    {
      action: 'export',
      request: (k, session) => ({ op: 'exportKey', session, handle: k.secret, format: 'raw' }),
      expect: { owner: 'ok', shared: 'NOT_KEY_OWNER', other: 'KEY_NOT_FOUND' },
    },
    {
      action: 'wrap (as the payload)',
      request: (k, session) => ({ op: 'wrapKey', session, mechanism: { name: 'aes-zero-pad' }, wrappingHandle: k.secret, payloadHandle: k.secret }),
      expect: { owner: 'ok', shared: 'NOT_KEY_OWNER', other: 'KEY_NOT_FOUND' },
    },
    {
      action: 'share',
      request: (k, session) => ({ op: 'shareKey', session, handle: k.secret, username: 'carol' }),
      expect: { owner: 'ok', shared: 'NOT_KEY_OWNER', other: 'KEY_NOT_FOUND' },
    },
    {
      action: 'unshare',
      request: (k, session) => ({ op: 'unshareKey', session, handle: k.secret, username: 'bob' }),
      expect: { owner: 'ok', shared: 'NOT_KEY_OWNER', other: 'KEY_NOT_FOUND' },
    },
    {
      action: 'delete',
      request: (k, session) => ({ op: 'deleteKey', session, handle: k.secret }),
      expect: { owner: 'ok', shared: 'NOT_KEY_OWNER', other: 'KEY_NOT_FOUND' },
    },
    {
      action: 'use a public key (verify)',
      request: (k, session) => ({ op: 'verify', session, handle: k.pub, mechanism: { name: 'ecdsa', hash: 'sha256' }, data: bytes('00'), signature: new Uint8Array(64) }),
      expect: { owner: 'ok', shared: 'ok', other: 'ok' },
    },
    {
      action: 'export a public key',
      request: (k, session) => ({ op: 'exportKey', session, handle: k.pub, format: 'spki' }),
      expect: { owner: 'ok', shared: 'ok', other: 'ok' },
    },
    {
      action: 'share a public key',
      request: (k, session) => ({ op: 'shareKey', session, handle: k.pub, username: 'carol' }),
      expect: { owner: 'KEY_NOT_SHAREABLE', shared: 'NOT_KEY_OWNER', other: 'NOT_KEY_OWNER' },
    },
    {
      action: 'delete a public key',
      request: (k, session) => ({ op: 'deleteKey', session, handle: k.pub }),
      expect: { owner: 'ok', shared: 'NOT_KEY_OWNER', other: 'NOT_KEY_OWNER' },
    },
  ];

  for (const c of cases) {
    for (const relation of ['owner', 'shared', 'other'] as const) {
      const want = c.expect[relation];
      it(`${c.action}: the ${relation === 'other' ? 'other crypto user' : relation === 'shared' ? 'shared user' : 'owner'} ${want === 'ok' ? 'may' : `is refused (${want})`}`, async () => {
        const f = await activatedMember();
        const secret = (
          await f.m.ok({
            op: 'generateKey',
            session: f.alice,
            keyType: 'aes',
            lengthBytes: 32,
            attributes: { token: true, encrypt: true, wrap: true, sensitive: false },
          })
        ).handle;
        const pair = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp256r1', publicAttributes: { verify: true, token: true } });
        await f.m.ok({ op: 'shareKey', session: f.alice, handle: secret, username: 'bob' });
        const session = { owner: f.alice, shared: f.bob, other: f.carol }[relation];
        const before = await snapshot(f);
        const response = await f.m.raw(c.request({ secret, pub: pair.publicHandle }, session));
        if (want === 'ok') {
          if (!response.ok) expect.fail(`refused: ${response.error.code}: ${response.error.message}`);
        } else {
          expect(response.ok).to.equal(false);
          if (!response.ok) expect(response.error.code, response.error.message).to.equal(want);
          expect(await snapshot(f)).to.equal(before);
        }
      });
    }
  }

  it('lists the keys a crypto user owns or shares, plus every public key, and nothing else', async () => {
    const f = await activatedMember();
    const mine = (await f.m.ok({ op: 'generateKey', session: f.bob, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
    const shared = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
    const hidden = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
    const pair = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp256r1', publicAttributes: { token: true }, privateAttributes: { token: true } });
    await f.m.ok({ op: 'shareKey', session: f.alice, handle: shared, username: 'bob' });
    const seen = (await f.m.ok({ op: 'findKeys', session: f.bob })).keys.map((k) => k.handle);
    expect(seen).to.have.members([mine, shared, pair.publicHandle]);
    expect(seen).to.not.include(hidden);
    expect(seen).to.not.include(pair.privateHandle);
    const adminSees = (await f.m.ok({ op: 'findKeys', session: f.admin })).keys.map((k) => k.handle);
    expect(adminSees).to.include.members([mine, shared, hidden, pair.publicHandle, pair.privateHandle]);
  });

  it('shares only with crypto users, and never a session key', async () => {
    const f = await activatedMember();
    const token = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
    const session = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16 })).handle;
    const toAdmin = await f.m.fail({ op: 'shareKey', session: f.alice, handle: token, username: 'admin2' }, 'KEY_NOT_SHAREABLE');
    expect(toAdmin.message).to.match(/crypto users only/);
    await f.m.fail({ op: 'shareKey', session: f.alice, handle: token, username: 'nobody' }, 'USER_NOT_FOUND');
    const sessionKey = await f.m.fail({ op: 'shareKey', session: f.alice, handle: session, username: 'bob' }, 'KEY_NOT_SHAREABLE');
    expect(sessionKey.message).to.match(/token=true/);
    const shared = await f.m.ok({ op: 'shareKey', session: f.alice, handle: token, username: 'BOB' });
    expect(shared.sharedUsers).to.deep.equal(['bob']);
  });

  it('admins never create or use keys', async () => {
    const f = await activatedMember();
    const e = await f.m.fail({ op: 'generateKey', session: f.admin, keyType: 'aes', lengthBytes: 16 }, 'PERMISSION_DENIED');
    expect(e.message).to.equal('generateKey is not allowed for an admin; it needs a crypto user');
    const two = await f.m.fail({ op: 'extractMaskedSettings', session: f.alice }, 'PERMISSION_DENIED');
    expect(two.message).to.equal('extractMaskedSettings is not allowed for a crypto user; it needs an admin or the appliance user');
  });

  it('sharing one key shares no other, through shares, unshares, copies and a user\'s deletion', async () => {
    // Keys shared with nobody hold one empty set between them (key-store.ts's NO_SHARES): a change
    // made to it in place would share every such key at once.
    const f = await activatedMember();
    const make = async (shareWith?: string[]) =>
      (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true }, ...(shareWith ? { shareWith } : {}) })).handle;
    const [a, b, c, d] = [await make(), await make(), await make(), await make(['bob'])];
    const users = async (handle: number) => (await f.m.ok({ op: 'getAttributes', session: f.alice, handle })).sharedUsers;
    expect((await f.m.ok({ op: 'shareKey', session: f.alice, handle: a, username: 'bob' })).sharedUsers).to.deep.equal(['bob']);
    expect(await users(b)).to.deep.equal([]);
    const copyOfA = (await f.m.ok({ op: 'copyKey', session: f.alice, handle: a })).handle;
    const copyOfB = (await f.m.ok({ op: 'copyKey', session: f.alice, handle: b })).handle;
    await f.m.ok({ op: 'shareKey', session: f.alice, handle: copyOfA, username: 'carol' });
    expect(await users(a)).to.deep.equal(['bob']);
    expect(await users(copyOfA)).to.deep.equal(['bob', 'carol']);
    await f.m.ok({ op: 'unshareKey', session: f.alice, handle: d, username: 'bob' });
    expect(await users(d)).to.deep.equal([]);
    await f.m.ok({ op: 'shareKey', session: f.alice, handle: b, username: 'carol' });
    await f.m.ok({ op: 'logout', session: f.carol });
    await f.m.ok({ op: 'deleteUser', session: f.admin, username: 'carol' });
    expect(await users(b)).to.deep.equal([]);
    expect(await users(copyOfA)).to.deep.equal(['bob']);
    for (const handle of [c, copyOfB]) expect(await users(handle)).to.deep.equal([]);
    const bobSees = (await f.m.ok({ op: 'findKeys', session: f.bob })).keys.map((k) => k.handle);
    expect(bobSees).to.have.members([a, copyOfA]);
  });

  it('a shared user is told who owns the key when they try to manage it', async () => {
    const f = await activatedMember();
    const handle = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
    await f.m.ok({ op: 'shareKey', session: f.alice, handle, username: 'bob' });
    const e = await f.m.fail({ op: 'deleteKey', session: f.bob, handle }, 'NOT_KEY_OWNER');
    expect(e.message.replace(/0x[0-9a-f]+/, 'KEY')).to.equal('only the owner of key KEY (alice) can delete it');
  });
});
