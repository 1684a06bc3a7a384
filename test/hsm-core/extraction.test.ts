/**
 * Extraction attacks (CLOUDHSM.md §2.5): every way to get the bytes of a key that must not leave
 * the HSM is refused, and a refusal leaves the member unchanged.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { expect } from 'chai';
import type { HsmErrorCode, WrapMechanism } from '../../src/hsm-core/index.js';
import { rsaPkcs8 } from '../helpers/keys.js';
import { PASSWORDS, activatedMember, bytes, freshMember, hex, snapshot, type Fixture } from '../helpers/member.js';

/** Every wrap mechanism is tried, RSA PKCS #1 v1.5 too, which FIPS mode refuses (profiles.test.ts): non-FIPS members. */
const NON_FIPS = { mode: 'non-fips' as const };

/** Every wrap mechanism, with the wrapping key type it needs (CTR, ECB and CBC without padding do not wrap: test/security). */
const MECHANISMS: { mechanism: WrapMechanism; kek: 'aes' | 'rsa' }[] = [
  { mechanism: { name: 'aes-gcm' }, kek: 'aes' },
  { mechanism: { name: 'cloudhsm-aes-gcm' }, kek: 'aes' },
  { mechanism: { name: 'aes-cbc-pad', iv: new Uint8Array(16) }, kek: 'aes' },
  { mechanism: { name: 'aes-no-pad' }, kek: 'aes' },
  { mechanism: { name: 'aes-pkcs5-pad' }, kek: 'aes' },
  { mechanism: { name: 'aes-zero-pad' }, kek: 'aes' },
  { mechanism: { name: 'rsa-oaep', hash: 'sha256' }, kek: 'rsa' },
  { mechanism: { name: 'rsa-pkcs' }, kek: 'rsa' },
  { mechanism: { name: 'rsa-aes', hash: 'sha256' }, kek: 'rsa' },
];

interface Keks {
  aes: number;
  rsa: number;
}

async function keks(f: Fixture, owner = f.alice, extra: { trusted?: boolean } = {}): Promise<Keks> {
  const aes = (await f.m.ok({ op: 'generateKey', session: owner, keyType: 'aes', lengthBytes: 32, attributes: { wrap: true, token: true } })).handle;
  const rsa = (
    await f.m.ok({ op: 'importKey', session: owner, keyClass: 'public-key', keyType: 'rsa', format: 'spki', keyData: spkiOf(rsaPkcs8(2048)), attributes: { wrap: true, token: true } })
  ).handle;
  if (extra.trusted) {
    for (const handle of [aes, rsa]) await f.m.ok({ op: 'setAttributes', session: f.admin, handle, attributes: { trusted: true } });
  }
  return { aes, rsa };
}

function spkiOf(pkcs8: Buffer): Uint8Array {
  return createPublicKey(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })).export({ format: 'der', type: 'spki' });
}

async function refused(f: Fixture, request: Record<string, unknown>, code: HsmErrorCode): Promise<string> {
  const before = await snapshot(f);
  const e = await f.m.fail(request, code);
  expect(await snapshot(f), 'a refusal must change nothing').to.equal(before);
  return e.message;
}

describe('hsm-core: extraction attacks on a non-extractable key', () => {
  const payloads = ['aes', 'generic-secret', 'ec private', 'rsa private'] as const;

  async function victim(f: Fixture, kind: (typeof payloads)[number]): Promise<number> {
    if (kind === 'aes' || kind === 'generic-secret') {
      return (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: kind, lengthBytes: 32, attributes: { extractable: false, token: true } })).handle;
    }
    if (kind === 'ec private') {
      return (await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp256r1', privateAttributes: { extractable: false, token: true } })).privateHandle;
    }
    return (
      await f.m.ok({ op: 'importKey', session: f.alice, keyClass: 'private-key', keyType: 'rsa', format: 'pkcs8', keyData: rsaPkcs8(2048, 1), attributes: { extractable: false, token: true } })
    ).handle;
  }

  for (const kind of payloads) {
    describe(`a non-extractable ${kind} key`, () => {
      it('cannot be exported in any format', async () => {
        const f = await activatedMember(NON_FIPS);
        const handle = await victim(f, kind);
        for (const format of ['raw', 'pkcs8', 'jwk', 'spki']) {
          const message = await refused(f, { op: 'exportKey', session: f.alice, handle, format }, 'KEY_NOT_EXTRACTABLE');
          expect(message).to.include('extractable=false');
        }
      });

      it('cannot be wrapped under any mechanism', async () => {
        const f = await activatedMember(NON_FIPS);
        const handle = await victim(f, kind);
        const k = await keks(f);
        for (const { mechanism, kek } of MECHANISMS) {
          for (const format of [undefined, 'jwk']) {
            await refused(
              f,
              { op: 'wrapKey', session: f.alice, mechanism, wrappingHandle: k[kek], payloadHandle: handle, ...(format ? { format } : {}) },
              'KEY_NOT_EXTRACTABLE',
            );
          }
        }
      });

      it('cannot be made extractable again', async () => {
        const f = await activatedMember(NON_FIPS);
        const handle = await victim(f, kind);
        await refused(f, { op: 'setAttributes', session: f.alice, handle, attributes: { extractable: true } }, 'ATTRIBUTE_READ_ONLY');
        await refused(f, { op: 'setAttributes', session: f.admin, handle, attributes: { extractable: true } }, 'PERMISSION_DENIED');
      });
    });
  }

  it('an admin can neither export nor wrap any key', async () => {
    const f = await activatedMember(NON_FIPS);
    const handle = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { token: true, wrap: true } })).handle;
    await refused(f, { op: 'exportKey', session: f.admin, handle, format: 'raw' }, 'PERMISSION_DENIED');
    await refused(f, { op: 'wrapKey', session: f.admin, mechanism: { name: 'aes-no-pad' }, wrappingHandle: handle, payloadHandle: handle }, 'PERMISSION_DENIED');
  });
});

describe('hsm-core: extraction rules for extractable keys', () => {
  it('a shared user can use a key but not wrap or export it, under their own wrapping key either', async () => {
    const f = await activatedMember(NON_FIPS);
    const secret = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { token: true, encrypt: true } })).handle;
    await f.m.ok({ op: 'shareKey', session: f.alice, handle: secret, username: 'bob' });
    const bobs = await keks(f, f.bob);
    await f.m.ok({ op: 'encrypt', session: f.bob, handle: secret, mechanism: { name: 'aes-gcm' }, data: bytes('00') });
    for (const { mechanism, kek } of MECHANISMS) {
      const message = await refused(f, { op: 'wrapKey', session: f.bob, mechanism, wrappingHandle: bobs[kek], payloadHandle: secret }, 'NOT_KEY_OWNER');
      expect(message).to.include('only the owner');
    }
    await refused(f, { op: 'exportKey', session: f.bob, handle: secret, format: 'raw' }, 'NOT_KEY_OWNER');
  });

  it('another crypto user cannot even see the key', async () => {
    const f = await activatedMember(NON_FIPS);
    const secret = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { token: true } })).handle;
    const carols = await keks(f, f.carol);
    await refused(f, { op: 'wrapKey', session: f.carol, mechanism: { name: 'aes-zero-pad' }, wrappingHandle: carols.aes, payloadHandle: secret }, 'KEY_NOT_FOUND');
    await refused(f, { op: 'exportKey', session: f.carol, handle: secret, format: 'raw' }, 'KEY_NOT_FOUND');
  });

  it('a sensitive key is never exported in plaintext, even when extractable; it still wraps', async () => {
    const f = await activatedMember(NON_FIPS);
    const kek = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { wrap: true } })).handle;
    const secret = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { sensitive: false } })).handle;
    await f.m.ok({ op: 'exportKey', session: f.alice, handle: secret, format: 'raw' });
    await f.m.ok({ op: 'setAttributes', session: f.alice, handle: secret, attributes: { sensitive: true } });
    const message = await refused(f, { op: 'exportKey', session: f.alice, handle: secret, format: 'jwk' }, 'KEY_NOT_EXTRACTABLE');
    expect(message).to.include('sensitive=true');
    await refused(f, { op: 'setAttributes', session: f.alice, handle: secret, attributes: { sensitive: false } }, 'ATTRIBUTE_READ_ONLY');
    await f.m.ok({ op: 'wrapKey', session: f.alice, mechanism: { name: 'aes-zero-pad' }, wrappingHandle: kek, payloadHandle: secret });
  });

  it('a wrapping key needs wrap=true', async () => {
    const f = await activatedMember(NON_FIPS);
    const kek = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { encrypt: true } })).handle;
    const payload = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32 })).handle;
    await refused(f, { op: 'wrapKey', session: f.alice, mechanism: { name: 'aes-gcm' }, wrappingHandle: kek, payloadHandle: payload }, 'ATTRIBUTE_FORBIDS_OPERATION');
  });

  describe('wrap-with-trusted', () => {
    it('is wrapped only under a trusted key, for every mechanism', async () => {
      const f = await activatedMember(NON_FIPS);
      const payload = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { 'wrap-with-trusted': true } })).handle;
      const untrusted = await keks(f);
      const trusted = await keks(f, f.alice, { trusted: true });
      for (const { mechanism, kek } of MECHANISMS) {
        const message = await refused(f, { op: 'wrapKey', session: f.alice, mechanism, wrappingHandle: untrusted[kek], payloadHandle: payload }, 'WRAPPING_KEY_NOT_TRUSTED');
        expect(message).to.include('trusted=false');
        await f.m.ok({ op: 'wrapKey', session: f.alice, mechanism, wrappingHandle: trusted[kek], payloadHandle: payload });
      }
    });

    it('is never exported in plaintext, even when not sensitive, nor under a password', async () => {
      const f = await activatedMember(NON_FIPS);
      const payload = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { 'wrap-with-trusted': true, sensitive: false } })).handle;
      const message = await refused(f, { op: 'exportKey', session: f.alice, handle: payload, format: 'raw' }, 'KEY_NOT_EXTRACTABLE');
      expect(message).to.include('wrap-with-trusted=true');
      const { privateHandle } = await f.m.ok({
        op: 'generateKeyPair',
        session: f.alice,
        keyType: 'ec',
        curve: 'secp256r1',
        privateAttributes: { 'wrap-with-trusted': true, sign: true },
        publicAttributes: { verify: true },
      });
      const encrypted = await refused(f, { op: 'exportEncryptedKey', session: f.alice, handle: privateHandle, password: 'long-enough-password' }, 'KEY_NOT_EXTRACTABLE');
      expect(encrypted).to.include('wrap-with-trusted=true');
    });

    it('cannot be switched off', async () => {
      const f = await activatedMember(NON_FIPS);
      const payload = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { 'wrap-with-trusted': true } })).handle;
      await refused(f, { op: 'setAttributes', session: f.alice, handle: payload, attributes: { 'wrap-with-trusted': false } }, 'ATTRIBUTE_READ_ONLY');
    });
  });

  it('a masked object carries no key bytes in the clear and opens only on a member of the same cluster', async () => {
    const f = await activatedMember(NON_FIPS);
    const handle = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'generic-secret', lengthBytes: 64, attributes: { token: true, sensitive: false } })).handle;
    const raw = (await f.m.ok({ op: 'exportKey', session: f.alice, handle, format: 'raw' })).keyData as Uint8Array;
    const { maskedObject } = await f.m.ok({ op: 'extractMaskedObject', session: f.alice, handle });
    const blob = Buffer.from(maskedObject);
    for (const form of [Buffer.from(raw), Buffer.from(Buffer.from(raw).toString('base64')), Buffer.from(hex(raw))]) {
      expect(blob.includes(form.subarray(0, 16))).to.equal(false);
    }
    const other = await activatedMember(NON_FIPS);
    await other.m.fail({ op: 'insertMaskedObject', session: other.alice, maskedObject }, 'MASKED_OBJECT_INVALID');
    const flipped = Buffer.from(maskedObject);
    flipped[flipped.length - 20]! ^= 1;
    await f.m.fail({ op: 'insertMaskedObject', session: f.alice, maskedObject: flipped }, 'MASKED_OBJECT_INVALID');
  });

  it('no answer shares memory with anything else, so no key bytes are reachable through a result’s .buffer', async () => {
    const f = await activatedMember(NON_FIPS);
    const secret = bytes('5a'.repeat(32));
    const payload = (await f.m.ok({ op: 'importKey', session: f.alice, keyClass: 'secret-key', keyType: 'aes', format: 'raw', keyData: secret, attributes: { token: true, encrypt: true, sign: true } })).handle;
    const k = await keks(f);
    const answers: unknown[] = [];
    for (const { mechanism, kek } of MECHANISMS) {
      answers.push(await f.m.ok({ op: 'wrapKey', session: f.alice, mechanism, wrappingHandle: k[kek], payloadHandle: payload }));
    }
    answers.push(await f.m.ok({ op: 'encrypt', session: f.alice, handle: payload, mechanism: { name: 'aes-gcm' }, data: bytes('00') }));
    answers.push(await f.m.ok({ op: 'sign', session: f.alice, handle: payload, mechanism: { name: 'cmac' }, data: bytes('00') }));
    answers.push(await f.m.ok({ op: 'digest', session: f.alice, hash: 'sha256', data: bytes('00') }));
    answers.push(await f.m.ok({ op: 'generateRandom', session: f.alice, length: 16 }));
    answers.push(await f.m.ok({ op: 'extractMaskedObject', session: f.alice, handle: payload }));
    const arrays: Uint8Array[] = [];
    const collect = (v: unknown): void => {
      if (v instanceof Uint8Array) arrays.push(v);
      else if (v && typeof v === 'object') Object.values(v).forEach(collect);
    };
    answers.forEach(collect);
    expect(arrays.length).to.be.greaterThan(MECHANISMS.length);
    for (const a of arrays) {
      expect(a.byteOffset).to.equal(0);
      expect(a.byteLength).to.equal(a.buffer.byteLength);
      expect(Buffer.from(a.buffer).includes(Buffer.from(secret))).to.equal(false);
    }
  });

  it('a session key leaves its member only masked for its own session, and joins only that user\'s session on another member of the cluster', async () => {
    const serviceKey = new Uint8Array(32).fill(6);
    const f = await activatedMember({ serviceKey });
    const g = await freshMember({ serviceKey, memberIndex: 1 });
    await g.ok({ op: 'restoreBackup', backup: (await f.m.ok({ op: 'createBackup', session: f.admin })).backup });
    const handle = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { encrypt: true, decrypt: true } })).handle;
    // Another session, even of the same user, does not see it, so cannot take it out.
    const aliceAgain = await f.m.login('alice', PASSWORDS.alice);
    await refused(f, { op: 'extractMaskedObject', session: aliceAgain, handle }, 'KEY_NOT_FOUND');
    await refused(f, { op: 'extractMaskedObject', session: f.bob, handle }, 'KEY_NOT_FOUND');
    const { maskedObject } = await f.m.ok({ op: 'extractMaskedObject', session: f.alice, handle });
    // On the other member: not for another user, nor the appliance user.
    const gBob = await g.login('bob', PASSWORDS.bob);
    const gAppliance = await g.login('app_user', PASSWORDS.app_user);
    expect((await g.fail({ op: 'insertMaskedObject', session: gBob, maskedObject }, 'PERMISSION_DENIED')).message).to.contain("belongs to alice's session");
    await g.fail({ op: 'insertMaskedObject', session: gAppliance, maskedObject }, 'PERMISSION_DENIED');
    // Alice's session there takes it, under its handle, as a session key that works the same.
    const gAlice = await g.login('alice', PASSWORDS.alice);
    expect(await g.ok({ op: 'insertMaskedObject', session: gAlice, maskedObject })).to.deep.equal({ handle, deleted: false, merged: 'applied' });
    await g.fail({ op: 'insertMaskedObject', session: gAlice, maskedObject }, 'HANDLE_IN_USE');
    expect((await g.ok({ op: 'getAttributes', session: gAlice, handle })).attributes).to.include({ token: false, encrypt: true });
    const sealed = await f.m.ok({ op: 'encrypt', session: f.alice, handle, mechanism: { name: 'aes-gcm' }, data: bytes('0102') });
    expect(hex((await g.ok({ op: 'decrypt', session: gAlice, handle, mechanism: { name: 'aes-gcm', iv: sealed.iv! }, data: sealed.data })).data)).to.equal('0102');
    // It is no token key: the members' sync leaves it out, and it ends with the session.
    expect((await g.ok({ op: 'getSyncStatus', session: gAppliance })).keys.map((k) => k.handle)).to.not.include(handle);
    await g.ok({ op: 'logout', session: gAlice });
    const gAlice2 = await g.login('alice', PASSWORDS.alice);
    await g.fail({ op: 'getAttributes', session: gAlice2, handle }, 'KEY_NOT_FOUND');
  });

  it('a masked key arrives on another member with its handle, owner, shares and attributes, and never after its deletion', async () => {
    const serviceKey = new Uint8Array(32).fill(5);
    const f = await activatedMember({ serviceKey });
    // A second member of the same cluster: joined by restoring a backup (it gets the masking key).
    const g = await freshMember({ serviceKey, memberIndex: 1 });
    await g.ok({ op: 'restoreBackup', backup: (await f.m.ok({ op: 'createBackup', session: f.admin })).backup });
    const gAppliance = await g.login('app_user', PASSWORDS.app_user);
    const handle = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { token: true, encrypt: true, decrypt: true, label: 'm' } })).handle;
    await f.m.ok({ op: 'shareKey', session: f.alice, handle, username: 'bob' });
    const before = await f.m.ok({ op: 'getAttributes', session: f.alice, handle });
    const digest = (await f.m.ok({ op: 'getSyncStatus', session: f.appliance })).keys.find((k) => k.handle === handle)!.digest;
    const enc = await f.m.ok({ op: 'encrypt', session: f.alice, handle, mechanism: { name: 'aes-gcm' }, data: bytes('0102') });
    const { maskedObject } = await f.m.ok({ op: 'extractMaskedObject', session: f.appliance, handle });
    expect(await g.ok({ op: 'insertMaskedObject', session: gAppliance, maskedObject })).to.deep.equal({ handle, deleted: false, merged: 'applied' });
    expect(await g.ok({ op: 'insertMaskedObject', session: gAppliance, maskedObject })).to.deep.equal({ handle, deleted: false, merged: 'same' });
    const gAlice = await g.login('alice', PASSWORDS.alice);
    expect(await g.ok({ op: 'getAttributes', session: gAlice, handle })).to.deep.equal(before);
    expect((await g.ok({ op: 'getSyncStatus', session: gAppliance })).keys.find((k) => k.handle === handle)!.digest).to.equal(digest);
    const dec = await g.ok({ op: 'decrypt', session: await g.login('bob', PASSWORDS.bob), handle, mechanism: { name: 'aes-gcm', iv: enc.iv! }, data: enc.data });
    expect(hex(dec.data)).to.equal('0102');
    // Deleted on the first member, the copy taken before is stale there: a deleted key never comes back.
    await f.m.ok({ op: 'deleteKey', session: f.alice, handle });
    expect((await f.m.fail({ op: 'insertMaskedObject', session: f.appliance, maskedObject }, 'MASKED_OBJECT_STALE')).message).to.match(/was deleted on this member/);
    await f.m.fail({ op: 'getAttributes', session: f.alice, handle }, 'KEY_NOT_FOUND');
  });

  it('the unactivated admin and an unauthenticated caller reach no key at all', async () => {
    const m = await freshMember();
    const preco = await m.login('admin', 'password');
    await m.fail({ op: 'findKeys', session: preco }, 'PERMISSION_DENIED');
    await m.fail({ op: 'exportKey', handle: 32, format: 'raw' }, 'NOT_LOGGED_IN');
  });
});
