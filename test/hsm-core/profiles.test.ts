/**
 * Profiles (CLOUDHSM.md §3.2 data limits, §8 quotas, §3.1 key types): `cloudhsm` refuses what
 * CloudHSM refuses, naming the limit and the option that lifts it; `unlimited` does not.
 */
import { constants, createPublicKey, generateKeyPairSync, publicEncrypt } from 'node:crypto';
import { expect } from 'chai';
import type { HashName } from '../../src/hsm-core/index.js';
import { rsaPkcs8 } from '../helpers/keys.js';
import { HsmError } from '../../src/hsm-core/index.js';
import { activatedMember, freshMember, type Fixture } from '../helpers/member.js';

/** The error a member's creation ends in. */
async function refusedMember(options: Parameters<typeof freshMember>[0]): Promise<HsmError> {
  try {
    await freshMember(options);
  } catch (e) {
    expect(e).to.be.instanceOf(HsmError);
    expect((e as HsmError).code).to.equal('BAD_REQUEST');
    return e as HsmError;
  }
  throw new Error('the member was created; a refusal was expected');
}

const HINT = "(CloudHSM's limit; start the cluster with profile: 'unlimited' to lift it)";

describe('hsm-core: profiles', () => {
  describe('per-call data limits', () => {
    const limits: { what: string; max: number; request: (f: Fixture, key: number, data: Uint8Array) => Record<string, unknown>; keyType: 'aes' | 'generic-secret'; op: string }[] = [
      { what: 'aes-gcm encrypt', max: 16_224, keyType: 'aes', op: 'encrypt', request: (f, handle, data) => ({ op: 'encrypt', session: f.alice, handle, mechanism: { name: 'aes-gcm' }, data }) },
      { what: 'cloudhsm-aes-gcm encrypt', max: 16_224, keyType: 'aes', op: 'encrypt', request: (f, handle, data) => ({ op: 'encrypt', session: f.alice, handle, mechanism: { name: 'cloudhsm-aes-gcm' }, data }) },
      { what: 'aes-cbc encrypt', max: 16_272, keyType: 'aes', op: 'encrypt', request: (f, handle, data) => ({ op: 'encrypt', session: f.alice, handle, mechanism: { name: 'aes-cbc', iv: new Uint8Array(16) }, data }) },
      { what: 'aes-cbc-pad encrypt', max: 16_272, keyType: 'aes', op: 'encrypt', request: (f, handle, data) => ({ op: 'encrypt', session: f.alice, handle, mechanism: { name: 'aes-cbc-pad', iv: new Uint8Array(16) }, data }) },
      ...(
        [
          ['sha1', 16_288],
          ['sha224', 16_256],
          ['sha256', 16_288],
          ['sha384', 16_224],
          ['sha512', 16_224],
        ] as [HashName, number][]
      ).map(([hash, max]) => ({
        what: `hmac-${hash} sign`,
        max,
        keyType: 'generic-secret' as const,
        op: 'sign',
        request: (f: Fixture, handle: number, data: Uint8Array) => ({ op: 'sign', session: f.alice, handle, mechanism: { name: 'hmac', hash }, data }),
      })),
    ];

    for (const l of limits) {
      it(`${l.what}: ${l.max} bytes under cloudhsm, more under unlimited`, async () => {
        for (const profile of ['cloudhsm', 'unlimited'] as const) {
          const f = await activatedMember({ profile });
          const attributes = l.keyType === 'aes' ? { encrypt: true } : { sign: true };
          const handle = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: l.keyType, lengthBytes: 32, attributes })).handle;
          const alignedMax = l.what.startsWith('aes-cbc ') ? l.max - (l.max % 16) : l.max;
          await f.m.ok(l.request(f, handle, new Uint8Array(alignedMax)) as never);
          const over = l.what.startsWith('aes-cbc ') ? alignedMax + 16 : l.max + 1;
          if (profile === 'cloudhsm') {
            const e = await f.m.fail(l.request(f, handle, new Uint8Array(over)), 'LIMIT_EXCEEDED');
            expect(e.message).to.equal(`data is ${over} bytes; the cloudhsm profile allows at most ${l.max} bytes per ${l.what.split(' ')[0]!.replace('cloudhsm-', '').replace('aes-cbc-pad', 'aes-cbc')} call ${HINT}`);
          } else {
            await f.m.ok(l.request(f, handle, new Uint8Array(over * 4)) as never);
          }
        }
      });
    }

    it('decryption is capped like encryption', async () => {
      const f = await activatedMember();
      const handle = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { decrypt: true } })).handle;
      await f.m.fail({ op: 'decrypt', session: f.alice, handle, mechanism: { name: 'aes-gcm', iv: new Uint8Array(12) }, data: new Uint8Array(16_225) }, 'LIMIT_EXCEEDED');
    });

    it('random bytes: 65,536 per call under cloudhsm', async () => {
      const f = await activatedMember();
      await f.m.ok({ op: 'generateRandom', session: f.alice, length: 65_536 });
      const e = await f.m.fail({ op: 'generateRandom', session: f.alice, length: 65_537 }, 'LIMIT_EXCEEDED');
      expect(e.message).to.equal(`length: at most 65536 random bytes per call under the cloudhsm profile, not 65537 ${HINT}`);
    });
  });

  describe('key types and sizes', () => {
    it('X25519 is not an hsm2m.medium key type: refused under cloudhsm, allowed under unlimited', async () => {
      const f = await activatedMember();
      const e = await f.m.fail({ op: 'generateKeyPair', session: f.alice, keyType: 'x25519' }, 'NOT_SUPPORTED_BY_PROFILE');
      expect(e.message).to.equal(`x25519 keys are not an hsm2m.medium key type, so the cloudhsm profile refuses them ${HINT}`);
      const u = await activatedMember({ profile: 'unlimited' });
      await u.m.ok({ op: 'generateKeyPair', session: u.alice, keyType: 'x25519' });
    });

    it('RSA: 2048–4096 bits in steps of 256, exponent odd and at least 65537, for generated and imported keys', async () => {
      const f = await activatedMember();
      for (const modulusBits of [1024, 2047, 2100, 4352]) {
        await f.m.fail({ op: 'generateKeyPair', session: f.alice, keyType: 'rsa', modulusBits }, 'KEY_SIZE_INVALID');
      }
      const e = await f.m.fail({ op: 'generateKeyPair', session: f.alice, keyType: 'rsa', modulusBits: 2048, publicExponent: 3 }, 'KEY_SIZE_INVALID');
      expect(e.message).to.equal(`an RSA public exponent must be odd and at least 65537 under the cloudhsm profile, not 3 ${HINT}`);
      const small = rsaPkcs8(1024);
      await f.m.fail({ op: 'importKey', session: f.alice, keyClass: 'private-key', keyType: 'rsa', format: 'pkcs8', keyData: small }, 'KEY_SIZE_INVALID');
      await f.m.ok({ op: 'importKey', session: f.alice, keyClass: 'private-key', keyType: 'rsa', format: 'pkcs8', keyData: rsaPkcs8(2048) });
      const u = await activatedMember({ profile: 'unlimited' });
      await u.m.ok({ op: 'importKey', session: u.alice, keyClass: 'private-key', keyType: 'rsa', format: 'pkcs8', keyData: small });
    });

    it('generic secrets: 1–800 bytes under cloudhsm', async () => {
      const f = await activatedMember();
      await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'generic-secret', lengthBytes: 800 });
      await f.m.fail({ op: 'generateKey', session: f.alice, keyType: 'generic-secret', lengthBytes: 801 }, 'KEY_SIZE_INVALID');
      await f.m.fail({ op: 'generateKey', session: f.alice, keyType: 'generic-secret', lengthBytes: 0 }, 'KEY_SIZE_INVALID');
      const u = await activatedMember({ profile: 'unlimited' });
      await u.m.ok({ op: 'generateKey', session: u.alice, keyType: 'generic-secret', lengthBytes: 4096 });
    });

    it('every supported curve, including secp224r1 and secp256k1, and Ed25519 in non-FIPS mode', async () => {
      const f = await activatedMember({ mode: 'non-fips' });
      for (const curve of ['secp224r1', 'secp256r1', 'prime256v1', 'secp384r1', 'secp521r1', 'secp256k1'] as const) {
        const pair = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve });
        expect((await f.m.ok({ op: 'getAttributes', session: f.alice, handle: pair.publicHandle })).attributes.curve).to.equal(curve === 'prime256v1' ? 'secp256r1' : curve);
      }
      await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ed25519' });
    });
  });

  describe('modes (CloudHSM\'s FIPS and non-FIPS clusters)', function () {
    it('FIPS mode refuses Ed25519 keys and RSA PKCS #1 v1.5 encryption and wrapping, naming the mode; decryption and unwrapping stay; non-FIPS mode and the unlimited profile allow them', async () => {
      const fips = await activatedMember();
      const ed = "ed25519 keys are for clusters in non-FIPS mode; this cluster is in FIPS mode (create it with mode non-fips, Mode NON_FIPS in the CloudHSM V2 API)";
      expect((await fips.m.fail({ op: 'generateKeyPair', session: fips.alice, keyType: 'ed25519' }, 'NOT_SUPPORTED_BY_PROFILE')).message).to.equal(ed);
      const edSpki = createPublicKey(generateKeyPairSync('ed25519').privateKey).export({ format: 'der', type: 'spki' });
      expect((await fips.m.fail({ op: 'importKey', session: fips.alice, keyClass: 'public-key', keyType: 'ed25519', format: 'spki', keyData: edSpki }, 'NOT_SUPPORTED_BY_PROFILE')).message).to.equal(ed);
      // RSA PKCS #1 v1.5: what a non-FIPS member encrypted and wrapped, a FIPS member still decrypts and unwraps (the same key, restored).
      const pair = await fips.m.ok({ op: 'generateKeyPair', session: fips.alice, keyType: 'rsa', modulusBits: 2048, publicAttributes: { encrypt: true, wrap: true }, privateAttributes: { decrypt: true, unwrap: true, token: true } });
      const payload = (await fips.m.ok({ op: 'generateKey', session: fips.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true, extractable: true } })).handle;
      expect((await fips.m.fail({ op: 'encrypt', session: fips.alice, handle: pair.publicHandle, mechanism: { name: 'rsa-pkcs' }, data: new Uint8Array(16) }, 'NOT_SUPPORTED_BY_PROFILE')).message).to.equal(
        'rsa-pkcs (PKCS #1 v1.5) encryption is not allowed in FIPS mode since 2024; use rsa-oaep, or a cluster in non-FIPS mode',
      );
      expect((await fips.m.fail({ op: 'wrapKey', session: fips.alice, mechanism: { name: 'rsa-pkcs' }, wrappingHandle: pair.publicHandle, payloadHandle: payload }, 'NOT_SUPPORTED_BY_PROFILE')).message).to.equal(
        'rsa-pkcs (PKCS #1 v1.5) wrapping is not allowed in FIPS mode since 2024; use rsa-oaep, or a cluster in non-FIPS mode',
      );
      const { keyData } = await fips.m.ok({ op: 'exportKey', session: fips.alice, handle: pair.publicHandle, format: 'spki' });
      const ciphertext = publicEncrypt({ key: createPublicKey({ key: Buffer.from(keyData as Uint8Array), format: 'der', type: 'spki' }), padding: constants.RSA_PKCS1_PADDING }, Buffer.from('made elsewhere'));
      expect(Buffer.from((await fips.m.ok({ op: 'decrypt', session: fips.alice, handle: pair.privateHandle, mechanism: { name: 'rsa-pkcs' }, data: ciphertext })).data).toString()).to.equal('made elsewhere');
      for (const options of [{ mode: 'non-fips' as const }, { profile: 'unlimited' as const }]) {
        const f = await activatedMember(options);
        await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ed25519' });
        const rsa = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'rsa', modulusBits: 2048, publicAttributes: { encrypt: true } });
        await f.m.ok({ op: 'encrypt', session: f.alice, handle: rsa.publicHandle, mechanism: { name: 'rsa-pkcs' }, data: new Uint8Array(16) });
      }
    });
  });

  describe('hsm1.medium (the cloudhsm-hsm1 profile)', function () {
    this.timeout(60_000);

    it('3,300 keys of any class, no Ed25519, FIPS mode only; 250 users', async () => {
      expect((await refusedMember({ profile: 'cloudhsm-hsm1', mode: 'non-fips' })).message).to.equal(
        'mode: hsm1.medium clusters run in FIPS mode only (the cloudhsm-hsm1 profile); non-fips is for hsm2m.medium (the cloudhsm profile)',
      );
      const f = await activatedMember({ profile: 'cloudhsm-hsm1' });
      expect((await f.m.ok({ op: 'getHsmInfo' })).mode).to.equal('fips');
      expect((await f.m.fail({ op: 'generateKeyPair', session: f.alice, keyType: 'ed25519' }, 'NOT_SUPPORTED_BY_PROFILE')).message).to.equal(`ed25519 keys are not an hsm1.medium key type, so the cloudhsm-hsm1 profile refuses them ${HINT}`);
      // 3,300 keys of any class fill the HSM.
      const held = (await f.m.ok({ op: 'getHsmInfo' })).keys;
      for (let i = held; i < 3_300; i++) await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16 });
      for (const request of [{ op: 'generateKey', keyType: 'aes', lengthBytes: 16 }, { op: 'generateKeyPair', keyType: 'ec', curve: 'secp256r1' }] as const) {
        expect((await f.m.fail({ ...request, session: f.alice }, 'QUOTA_EXCEEDED')).message).to.equal(`the member holds 3300 keys; the cloudhsm-hsm1 profile allows 3300 ${HINT}`);
      }
      const start = (await f.m.ok({ op: 'listUsers' })).users.length;
      for (let i = start; i < 250; i++) await f.m.ok({ op: 'createUser', session: f.admin, username: `user${i}`, password: 'user-password', role: 'crypto-user' });
      expect((await f.m.fail({ op: 'createUser', session: f.admin, username: 'one_too_many', password: 'user-password', role: 'crypto-user' }, 'QUOTA_EXCEEDED')).message).to.equal(`the member has 250 users; the cloudhsm-hsm1 profile allows 250 ${HINT}`);
    });
  });

  describe('quotas', function () {
    this.timeout(120_000);

    it('16,666 keys per member under cloudhsm; the next one is refused until one is deleted', async () => {
      const f = await activatedMember();
      let last = 0;
      for (let i = 0; i < 16_666; i++) {
        last = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16 })).handle;
      }
      const e = await f.m.fail({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16 }, 'QUOTA_EXCEEDED');
      expect(e.message).to.equal(`the member holds 16666 keys; the cloudhsm profile allows 16666 ${HINT}`);
      await f.m.ok({ op: 'deleteKey', session: f.alice, handle: last });
      await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16 });
    });

    it('3,333 public and private keys under cloudhsm; secret keys still fit', async () => {
      const f = await activatedMember();
      const spki = createPublicKey(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey).export({ format: 'der', type: 'spki' });
      for (let i = 0; i < 3_333; i++) {
        await f.m.ok({ op: 'importKey', session: f.alice, keyClass: 'public-key', keyType: 'ec', format: 'spki', keyData: spki });
      }
      const e = await f.m.fail({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp256r1' }, 'QUOTA_EXCEEDED');
      expect(e.message).to.equal(`the member holds 3333 public and private keys; the cloudhsm profile allows 3333 ${HINT}`);
      await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16 });
    });

    it('1,024 users under cloudhsm (the built-in ones count)', async () => {
      const f = await activatedMember();
      const start = (await f.m.ok({ op: 'listUsers' })).users.length;
      for (let i = start; i < 1_024; i++) {
        await f.m.ok({ op: 'createUser', session: f.admin, username: `user${i}`, password: 'user-password', role: 'crypto-user' });
      }
      const e = await f.m.fail({ op: 'createUser', session: f.admin, username: 'one_too_many', password: 'user-password', role: 'crypto-user' }, 'QUOTA_EXCEEDED');
      expect(e.message).to.equal(`the member has 1024 users; the cloudhsm profile allows 1024 ${HINT}`);
    });

    it('2,048 sessions under cloudhsm; logging out frees one', async () => {
      const f = await activatedMember();
      const open = (await f.m.ok({ op: 'getHsmInfo' })).sessions;
      let last = '';
      for (let i = open; i < 2_048; i++) last = await f.m.login('bob', 'bob-password');
      await f.m.fail({ op: 'login', username: 'bob', password: 'bob-password' }, 'QUOTA_EXCEEDED');
      await f.m.ok({ op: 'logout', session: last });
      await f.m.login('bob', 'bob-password');
    });
  });
});
