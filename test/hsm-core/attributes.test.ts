/**
 * Attribute rules (CLOUDHSM.md §2): defaults, every one-way latch, admin-only `trusted`, computed
 * attributes, usages a key type cannot have, and every operation checking the attribute that
 * permits it.
 */
import { createCipheriv, createHash, createPublicKey } from 'node:crypto';
import { expect } from 'chai';
import type { Template } from '../../src/hsm-core/index.js';
import { activatedMember, bytes, snapshot, type Fixture } from '../helpers/member.js';

async function aesKey(f: Fixture, attributes: Template = {}, session = f.alice): Promise<number> {
  return (await f.m.ok({ op: 'generateKey', session, keyType: 'aes', lengthBytes: 32, attributes })).handle;
}

async function attrs(f: Fixture, handle: number, session = f.alice) {
  return (await f.m.ok({ op: 'getAttributes', session, handle })).attributes;
}

describe('hsm-core: key attributes', () => {
  describe('defaults', () => {
    it('a generated secret key: session key, no usages, extractable, sensitive, modifiable, local', async () => {
      const f = await activatedMember();
      const a = await attrs(f, await aesKey(f));
      expect(a).to.include({
        class: 'secret-key',
        'key-type': 'aes',
        label: '',
        id: '',
        token: false,
        private: true,
        sensitive: true,
        encrypt: false,
        decrypt: false,
        sign: false,
        verify: false,
        wrap: false,
        unwrap: false,
        derive: false,
        extractable: true,
        local: true,
        'never-extractable': false,
        'always-sensitive': true,
        modifiable: true,
        destroyable: true,
        trusted: false,
        'wrap-with-trusted': false,
        'key-length-bytes': 32,
      });
    });

    it('a generated key pair: the public key is never sensitive and always extractable; both halves share the KCV', async () => {
      const f = await activatedMember();
      const pair = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp384r1' });
      const pub = await attrs(f, pair.publicHandle);
      const priv = await attrs(f, pair.privateHandle);
      expect(pub).to.include({ class: 'public-key', sensitive: false, extractable: true, curve: 'secp384r1', local: true });
      expect(priv).to.include({ class: 'private-key', sensitive: true, extractable: true, curve: 'secp384r1', 'always-sensitive': true });
      expect(pub['check-value']).to.match(/^0x[0-9a-f]{6}$/).and.equal(priv['check-value']);
      const spki = (await f.m.ok({ op: 'exportKey', session: f.alice, handle: pair.publicHandle, format: 'spki' })).keyData as Uint8Array;
      expect(pub['check-value']).to.equal(`0x${createHash('sha1').update(spki).digest('hex').slice(0, 6)}`);
      const point = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }).export({ format: 'jwk' });
      const raw = Buffer.concat([Buffer.from([4]), Buffer.from(point.x!, 'base64url'), Buffer.from(point.y!, 'base64url')]);
      expect(pub['ec-point']).to.equal(`0x0461${raw.toString('hex')}`);
    });

    it('RSA keys report modulus, size and exponent', async () => {
      const f = await activatedMember();
      const pair = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'rsa', modulusBits: 2048 });
      const a = await attrs(f, pair.publicHandle);
      expect(a['modulus-size-bits']).to.equal(2048);
      expect(a['public-exponent']).to.equal(65537);
      expect(a.modulus).to.match(/^0x[0-9a-f]{512}$/);
    });

    it('the KCV of an AES key is the first 3 bytes of its encryption of a zero block; generic secrets have none', async () => {
      const f = await activatedMember();
      const handle = await aesKey(f, { sensitive: false });
      const raw = (await f.m.ok({ op: 'exportKey', session: f.alice, handle, format: 'raw' })).keyData as Uint8Array;
      const cipher = createCipheriv('aes-256-ecb', raw, null);
      const expected = cipher.update(Buffer.alloc(16)).subarray(0, 3).toString('hex');
      expect((await attrs(f, handle))['check-value']).to.equal(`0x${expected}`);
      const generic = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'generic-secret', lengthBytes: 20 })).handle;
      expect((await attrs(f, generic))['check-value']).to.equal(null);
    });

    it('local, never-extractable and always-sensitive follow how the key came to be', async () => {
      const f = await activatedMember();
      const generated = await aesKey(f, { extractable: false, derive: true, wrap: true, unwrap: true });
      expect(await attrs(f, generated)).to.include({ local: true, 'never-extractable': true, 'always-sensitive': true });
      const imported = (
        await f.m.ok({ op: 'importKey', session: f.alice, keyClass: 'secret-key', keyType: 'aes', format: 'raw', keyData: new Uint8Array(16), attributes: { extractable: false } })
      ).handle;
      expect(await attrs(f, imported)).to.include({ local: false, 'never-extractable': false, 'always-sensitive': false });
      const payload = await aesKey(f);
      const { wrapped } = await f.m.ok({ op: 'wrapKey', session: f.alice, mechanism: { name: 'aes-no-pad' }, wrappingHandle: generated, payloadHandle: payload });
      const unwrapped = (
        await f.m.ok({ op: 'unwrapKey', session: f.alice, mechanism: { name: 'aes-no-pad' }, unwrappingHandle: generated, wrapped, keyClass: 'secret-key', keyType: 'aes', attributes: { extractable: false } })
      ).handle;
      expect(await attrs(f, unwrapped)).to.include({ local: false, 'never-extractable': false, 'always-sensitive': false });
      const mech = { name: 'sp800-108-counter', prf: 'cmac', label: bytes('01'), context: bytes('02') } as const;
      const derived = (await f.m.ok({ op: 'deriveKey', session: f.alice, baseHandle: generated, mechanism: mech, keyType: 'aes', lengthBytes: 16, attributes: { extractable: false } })).handle;
      expect(await attrs(f, derived)).to.include({ local: false, 'never-extractable': true, 'always-sensitive': true });
      const derivedOut = (await f.m.ok({ op: 'deriveKey', session: f.alice, baseHandle: generated, mechanism: mech, keyType: 'aes', lengthBytes: 16 })).handle;
      expect(await attrs(f, derivedOut)).to.include({ 'never-extractable': false });
    });
  });

  describe('one-way latches and fixed attributes', () => {
    const latches: { name: keyof Template; from: boolean; to: boolean; allowed: boolean; message?: string }[] = [
      { name: 'token', from: false, to: true, allowed: true },
      { name: 'token', from: true, to: false, allowed: false, message: 'attribute token can only change from false to true' },
      { name: 'sensitive', from: false, to: true, allowed: true },
      { name: 'sensitive', from: true, to: false, allowed: false, message: 'attribute sensitive can only change from false to true' },
      { name: 'wrap-with-trusted', from: false, to: true, allowed: true },
      { name: 'wrap-with-trusted', from: true, to: false, allowed: false, message: 'attribute wrap-with-trusted can only change from false to true' },
      { name: 'modifiable', from: true, to: false, allowed: true },
      { name: 'destroyable', from: true, to: false, allowed: true },
      { name: 'destroyable', from: false, to: true, allowed: false, message: 'attribute destroyable can only change from true to false' },
      { name: 'extractable', from: true, to: false, allowed: false, message: 'attribute extractable can never change after the key is created' },
      { name: 'extractable', from: false, to: true, allowed: false, message: 'attribute extractable can never change after the key is created' },
    ];
    for (const l of latches.filter((x) => x.allowed)) {
      it(`${l.name}: ${l.from} → ${l.to} is allowed`, async () => {
        const f = await activatedMember();
        const handle = await aesKey(f, { [l.name]: l.from });
        const info = await f.m.ok({ op: 'setAttributes', session: f.alice, handle, attributes: { [l.name]: l.to } });
        expect(info.attributes[l.name]).to.equal(l.to);
      });
    }
    for (const l of latches.filter((x) => !x.allowed)) {
      it(`${l.name}: ${l.from} → ${l.to} is refused, and nothing changes`, async () => {
        const f = await activatedMember();
        const handle = await aesKey(f, { [l.name]: l.from });
        const before = await snapshot(f);
        const e = await f.m.fail({ op: 'setAttributes', session: f.alice, handle, attributes: { [l.name]: l.to } }, 'ATTRIBUTE_READ_ONLY');
        expect(e.message).to.equal(l.message);
        expect(await snapshot(f)).to.equal(before);
      });
    }

    it('modifiable=false freezes every attribute, even for an admin', async () => {
      const f = await activatedMember();
      const handle = await aesKey(f, { modifiable: false, token: true });
      for (const attributes of [{ label: 'x' }, { encrypt: true }, { token: true, label: 'y' }]) {
        const e = await f.m.fail({ op: 'setAttributes', session: f.alice, handle, attributes }, 'ATTRIBUTE_READ_ONLY');
        expect(e.message).to.include('modifiable=false');
      }
      await f.m.fail({ op: 'setAttributes', session: f.admin, handle, attributes: { trusted: true } }, 'ATTRIBUTE_READ_ONLY');
    });

    it('destroyable=false keeps the key from being deleted', async () => {
      const f = await activatedMember();
      const handle = await aesKey(f, { destroyable: false });
      const e = await f.m.fail({ op: 'deleteKey', session: f.alice, handle }, 'ATTRIBUTE_FORBIDS_OPERATION');
      expect(e.message).to.equal(`key 0x${handle.toString(16).padStart(16, '0')} has destroyable=false`);
      await f.m.ok({ op: 'getAttributes', session: f.alice, handle });
    });

    it('token=true turns a session key into a token key that outlives the session', async () => {
      const f = await activatedMember();
      const handle = await aesKey(f);
      expect((await f.m.ok({ op: 'setAttributes', session: f.alice, handle, attributes: { token: true } })).sessionKey).to.equal(false);
      await f.m.ok({ op: 'logout', session: f.alice });
      const again = await f.m.login('alice', 'alice-password');
      expect((await attrs(f, handle, again)).token).to.equal(true);
    });

    it('a change is all or nothing: one refused attribute refuses the rest', async () => {
      const f = await activatedMember();
      const handle = await aesKey(f, { label: 'before' });
      await f.m.fail({ op: 'setAttributes', session: f.alice, handle, attributes: { label: 'after', extractable: false } }, 'ATTRIBUTE_READ_ONLY');
      expect((await attrs(f, handle)).label).to.equal('before');
    });
  });

  describe('trusted', () => {
    it('only an admin sets it, in either direction; a crypto user cannot', async () => {
      const f = await activatedMember();
      const handle = await aesKey(f, { token: true, wrap: true });
      const e = await f.m.fail({ op: 'setAttributes', session: f.alice, handle, attributes: { trusted: true } }, 'PERMISSION_DENIED');
      expect(e.message).to.equal('only an admin can set trusted');
      expect((await f.m.ok({ op: 'setAttributes', session: f.admin, handle, attributes: { trusted: true } })).attributes.trusted).to.equal(true);
      expect((await f.m.ok({ op: 'setAttributes', session: f.admin, handle, attributes: { trusted: false } })).attributes.trusted).to.equal(false);
    });

    it('cannot be given at creation', async () => {
      const f = await activatedMember();
      const e = await f.m.fail({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { trusted: true } }, 'PERMISSION_DENIED');
      expect(e.message).to.equal('attribute trusted cannot be given at creation: only an admin can set it, afterwards');
    });

    it('is the only attribute an admin may change', async () => {
      const f = await activatedMember();
      const handle = await aesKey(f, { token: true });
      const e = await f.m.fail({ op: 'setAttributes', session: f.admin, handle, attributes: { label: 'x' } }, 'PERMISSION_DENIED');
      expect(e.message).to.equal('an admin may change only the trusted attribute, not label');
    });

    it('applies to secret and public keys, not private keys', async () => {
      const f = await activatedMember();
      const pair = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'rsa', modulusBits: 2048, privateAttributes: { token: true }, publicAttributes: { token: true } });
      await f.m.ok({ op: 'setAttributes', session: f.admin, handle: pair.publicHandle, attributes: { trusted: true } });
      await f.m.fail({ op: 'setAttributes', session: f.admin, handle: pair.privateHandle, attributes: { trusted: true } }, 'ATTRIBUTE_INVALID');
    });
  });

  describe('templates', () => {
    it('computed attributes are read-only, at creation and afterwards', async () => {
      const f = await activatedMember();
      const handle = await aesKey(f);
      for (const name of ['class', 'key-type', 'local', 'never-extractable', 'always-sensitive', 'check-value', 'key-length-bytes']) {
        const e1 = await f.m.fail({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { [name]: true } }, 'ATTRIBUTE_READ_ONLY');
        expect(e1.message).to.equal(`attribute ${name} is read-only: the HSM computes it`);
        await f.m.fail({ op: 'setAttributes', session: f.alice, handle, attributes: { [name]: 1 } }, 'ATTRIBUTE_READ_ONLY');
      }
    });

    it('unknown attribute names and wrong value types are refused by name', async () => {
      const f = await activatedMember();
      const e1 = await f.m.fail({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { encrpyt: true } }, 'BAD_REQUEST');
      expect(e1.message).to.equal('generateKey.attributes: unknown field encrpyt');
      const e2 = await f.m.fail({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { encrypt: 'yes' } }, 'BAD_REQUEST');
      expect(e2.message).to.match(/^generateKey\.attributes\.encrypt: expected boolean/);
      const e3 = await f.m.fail({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { label: 'x'.repeat(128) } }, 'BAD_REQUEST');
      expect(e3.message).to.equal('generateKey.attributes.label: a label has at most 127 characters');
    });

    const impossible: { keyType: 'ec' | 'ed25519' | 'rsa' | 'x25519'; half: 'public' | 'private'; usage: string }[] = [
      { keyType: 'ec', half: 'private', usage: 'decrypt' },
      { keyType: 'ec', half: 'public', usage: 'encrypt' },
      { keyType: 'ec', half: 'public', usage: 'derive' },
      { keyType: 'rsa', half: 'private', usage: 'derive' },
      { keyType: 'rsa', half: 'public', usage: 'sign' },
      { keyType: 'ed25519', half: 'public', usage: 'wrap' },
    ];
    for (const c of impossible) {
      it(`refuses ${c.usage}=true on a ${c.keyType} ${c.half} key`, async () => {
        const f = await activatedMember({ profile: 'unlimited' });
        const params = c.keyType === 'rsa' ? { modulusBits: 1024 } : c.keyType === 'ec' ? { curve: 'secp256r1' as const } : {};
        const e = await f.m.fail(
          { op: 'generateKeyPair', session: f.alice, keyType: c.keyType, ...params, [`${c.half}Attributes`]: { [c.usage]: true } },
          'ATTRIBUTE_INVALID',
        );
        expect(e.message).to.match(new RegExp(`^attribute ${c.usage} cannot be true on an? ${c.keyType} ${c.half}-key \\(possible usages: [a-z, ]+\\)$`));
      });
    }

    it('extractable, sensitive and wrap-with-trusted do not apply to public keys', async () => {
      const f = await activatedMember();
      for (const name of ['extractable', 'sensitive', 'wrap-with-trusted']) {
        const e = await f.m.fail({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp256r1', publicAttributes: { [name]: false } }, 'ATTRIBUTE_INVALID');
        expect(e.message).to.equal(`attribute ${name} does not apply to an ec public-key (it applies to secret-key, private-key)`);
      }
    });
  });

  describe('every operation checks the attribute that permits it', () => {
    it('encrypt, decrypt, sign, verify, wrap, unwrap, derive', async () => {
      const f = await activatedMember();
      const none = await aesKey(f, { token: true });
      const payload = await aesKey(f);
      const generic = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'generic-secret', lengthBytes: 32 })).handle;
      const pair = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp256r1' });
      const gcm = { name: 'aes-gcm', iv: new Uint8Array(12) } as const;
      const hkdf = { name: 'hkdf', hash: 'sha256', salt: bytes(''), info: bytes('') } as const;
      const checks: [Record<string, unknown>, string][] = [
        [{ op: 'encrypt', session: f.alice, handle: none, mechanism: gcm, data: bytes('00') }, 'encrypt'],
        [{ op: 'decrypt', session: f.alice, handle: none, mechanism: gcm, data: new Uint8Array(32) }, 'decrypt'],
        [{ op: 'sign', session: f.alice, handle: none, mechanism: { name: 'cmac' }, data: bytes('00') }, 'sign'],
        [{ op: 'verify', session: f.alice, handle: none, mechanism: { name: 'cmac' }, data: bytes('00'), signature: new Uint8Array(16) }, 'verify'],
        [{ op: 'sign', session: f.alice, handle: pair.privateHandle, mechanism: { name: 'ecdsa', hash: 'sha256' }, data: bytes('00') }, 'sign'],
        [{ op: 'verify', session: f.alice, handle: pair.publicHandle, mechanism: { name: 'ecdsa', hash: 'sha256' }, data: bytes('00'), signature: new Uint8Array(64) }, 'verify'],
        [{ op: 'wrapKey', session: f.alice, mechanism: { name: 'aes-no-pad' }, wrappingHandle: none, payloadHandle: payload }, 'wrap'],
        [{ op: 'unwrapKey', session: f.alice, mechanism: { name: 'aes-no-pad' }, unwrappingHandle: none, wrapped: new Uint8Array(24), keyClass: 'secret-key', keyType: 'aes' }, 'unwrap'],
        [{ op: 'deriveKey', session: f.alice, baseHandle: generic, mechanism: hkdf, keyType: 'aes', lengthBytes: 16 }, 'derive'],
        [{ op: 'deriveBits', session: f.alice, baseHandle: generic, mechanism: hkdf, lengthBits: 128 }, 'derive'],
        [{ op: 'deriveBits', session: f.alice, baseHandle: pair.privateHandle, mechanism: { name: 'ecdh', publicHandle: pair.publicHandle } }, 'derive'],
      ];
      for (const [request, attribute] of checks) {
        const e = await f.m.fail(request, 'ATTRIBUTE_FORBIDS_OPERATION');
        expect(e.message).to.include(`${attribute}=false`);
      }
    });

    it('a mechanism refuses a key of the wrong type', async () => {
      const f = await activatedMember();
      const hmacKey = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'generic-secret', lengthBytes: 32, attributes: { sign: true } })).handle;
      const e = await f.m.fail({ op: 'sign', session: f.alice, handle: hmacKey, mechanism: { name: 'cmac' }, data: bytes('00') }, 'KEY_TYPE_INCONSISTENT');
      expect(e.message).to.match(/takes aes keys/);
      const aes = await aesKey(f, { sign: true });
      const e2 = await f.m.fail({ op: 'sign', session: f.alice, handle: aes, mechanism: { name: 'hmac', hash: 'sha256' }, data: bytes('00') }, 'KEY_TYPE_INCONSISTENT');
      expect(e2.message).to.equal(`mechanism hmac takes generic-secret keys, but key 0x${aes.toString(16).padStart(16, '0')} is aes`);
    });
  });

  describe('wrap and unwrap templates', () => {
    it('the unwrapping key’s unwrap-template is united with the caller’s template; a conflict fails the unwrap', async () => {
      const f = await activatedMember();
      const kek = await aesKey(f, { wrap: true, unwrap: true, 'unwrap-template': { extractable: false, decrypt: true, 'key-type': 'aes' } });
      const payload = await aesKey(f);
      const { wrapped } = await f.m.ok({ op: 'wrapKey', session: f.alice, mechanism: { name: 'aes-zero-pad' }, wrappingHandle: kek, payloadHandle: payload });
      const base = { op: 'unwrapKey', session: f.alice, mechanism: { name: 'aes-zero-pad' }, unwrappingHandle: kek, wrapped, keyClass: 'secret-key', keyType: 'aes' } as const;
      const ok = (await f.m.ok({ ...base, attributes: { label: 'u', encrypt: true } })).handle;
      expect(await attrs(f, ok)).to.include({ label: 'u', encrypt: true, decrypt: true, extractable: false });
      const e = await f.m.fail({ ...base, attributes: { extractable: true } }, 'TEMPLATE_INCONSISTENT');
      expect(e.message).to.equal("attributes.extractable=true conflicts with the unwrapping key's unwrap-template (extractable=false)");
      await f.m.fail({ ...base, keyType: 'generic-secret' }, 'TEMPLATE_INCONSISTENT');
    });

    it('a wrapping key’s wrap-template limits which keys it wraps', async () => {
      const f = await activatedMember();
      const kek = await aesKey(f, { wrap: true, 'wrap-template': { label: 'wrappable' } });
      const yes = await aesKey(f, { label: 'wrappable' });
      const no = await aesKey(f, { label: 'other' });
      await f.m.ok({ op: 'wrapKey', session: f.alice, mechanism: { name: 'aes-no-pad' }, wrappingHandle: kek, payloadHandle: yes });
      await f.m.fail({ op: 'wrapKey', session: f.alice, mechanism: { name: 'aes-no-pad' }, wrappingHandle: kek, payloadHandle: no }, 'TEMPLATE_INCONSISTENT');
    });
  });

  it('filters find keys by attribute, including computed ones, and paginate', async () => {
    const f = await activatedMember();
    const made: number[] = [];
    for (let i = 0; i < 5; i++) made.push(await aesKey(f, { label: 'batch', token: true }));
    await aesKey(f, { label: 'other' });
    const pair = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp256r1' });
    const page1 = await f.m.ok({ op: 'findKeys', session: f.alice, filter: { attributes: { label: 'batch' } }, maxItems: 2 });
    const page2 = await f.m.ok({ op: 'findKeys', session: f.alice, filter: { attributes: { label: 'batch' } }, maxItems: 2, startingToken: page1.nextToken! });
    const page3 = await f.m.ok({ op: 'findKeys', session: f.alice, filter: { attributes: { label: 'batch' } }, maxItems: 2, startingToken: page2.nextToken! });
    expect([...page1.keys, ...page2.keys, ...page3.keys].map((k) => k.handle)).to.deep.equal(made);
    expect(page3.nextToken).to.equal(null);
    const byCurve = await f.m.ok({ op: 'findKeys', session: f.alice, filter: { attributes: { curve: 'prime256v1', class: 'public-key' } } });
    expect(byCurve.keys.map((k) => k.handle)).to.deep.equal([pair.publicHandle]);
    const kcv = (await attrs(f, made[0]!))['check-value']!;
    const byKcv = await f.m.ok({ op: 'findKeys', session: f.alice, filter: { attributes: { 'check-value': kcv.toUpperCase().replace('0X', '0x') } } });
    expect(byKcv.keys.map((k) => k.handle)).to.deep.equal([made[0]]);
    const byHandle = await f.m.ok({ op: 'findKeys', session: f.alice, filter: { handle: made[2]! } });
    expect(byHandle.keys.map((k) => k.keyReference)).to.deep.equal([`0x${made[2]!.toString(16).padStart(16, '0')}`]);
  });
});
