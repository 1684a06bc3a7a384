/**
 * Mechanisms that one user could turn against another (issue 14, item 6 and the smaller items):
 * chosen IVs under a shared wrapping key, data-only modes as wrap mechanisms, short GCM IVs and
 * tags on the HSM's own door, an RSA PKCS #1 v1.5 unwrap that answers padding and length alike,
 * forged byte arrays, and what the audit log keeps of a mistyped username.
 */
import { constants, createPrivateKey, createPublicKey, publicEncrypt } from 'node:crypto';
import { createCipheriv } from 'node:crypto';
import { expect } from 'chai';
import { rsaPkcs8 } from '../helpers/keys.js';
import { activatedMember, bytes, hex, snapshot } from '../helpers/member.js';

const xor = (a: Uint8Array, b: Uint8Array) => a.map((v, i) => v ^ b[i]!);

describe('security: chosen IVs and wrap mechanisms', () => {
  it('item 6: a second user of a shared wrapping key cannot repeat the IV of another user\'s wrap and read the key out', async () => {
    const f = await activatedMember();
    // alice's wrapping key, shared with bob; alice's sensitive key, wrapped under it.
    const w = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { token: true, wrap: true, encrypt: true } })).handle;
    await f.m.ok({ op: 'shareKey', session: f.alice, handle: w, username: 'bob' });
    // (Not sensitive only so that the test can tell whether the attack found it; bob cannot export it.)
    const victim = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { token: true, extractable: true, sensitive: false } })).handle;
    const sealed = await f.m.ok({ op: 'wrapKey', session: f.alice, mechanism: { name: 'aes-gcm' }, wrappingHandle: w, payloadHandle: victim });
    expect(sealed.iv, 'the HSM chose the IV').to.have.length(12);
    // bob knows the bytes of a key of his own, and wraps it under the same IV.
    const known = bytes('11'.repeat(32));
    const mine = (await f.m.ok({ op: 'importKey', session: f.bob, keyClass: 'secret-key', keyType: 'aes', format: 'raw', keyData: known, attributes: { extractable: true } })).handle;
    const before = await snapshot(f);
    const wrap = await f.m.fail({ op: 'wrapKey', session: f.bob, mechanism: { name: 'aes-gcm', iv: sealed.iv! }, wrappingHandle: w, payloadHandle: mine }, 'MECHANISM_PARAM_INVALID');
    expect(wrap.message).to.contain('only the owner of key');
    await f.m.fail({ op: 'encrypt', session: f.bob, handle: w, mechanism: { name: 'aes-gcm', iv: sealed.iv! }, data: new Uint8Array(32) }, 'MECHANISM_PARAM_INVALID');
    expect(await snapshot(f)).to.equal(before);
    // Left to the HSM, his IV is a fresh one, and the keystreams do not cancel.
    const his = await f.m.ok({ op: 'wrapKey', session: f.bob, mechanism: { name: 'aes-gcm' }, wrappingHandle: w, payloadHandle: mine });
    expect(hex(his.iv!)).not.to.equal(hex(sealed.iv!));
    const guess = xor(xor(his.wrapped.subarray(0, 32), sealed.wrapped.subarray(0, 32)), known);
    await f.m.fail({ op: 'exportKey', session: f.bob, handle: victim, format: 'raw' }, 'KEY_NOT_FOUND');
    const truth = (await f.m.ok({ op: 'exportKey', session: f.alice, handle: victim, format: 'raw' })).keyData as Uint8Array;
    expect(hex(guess)).not.to.equal(hex(truth));
  });

  it('item 6: a trusted wrapping key takes only HSM-made IVs, even from its owner', async () => {
    const f = await activatedMember();
    const w = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { token: true, wrap: true, encrypt: true } })).handle;
    await f.m.ok({ op: 'setAttributes', session: f.admin, handle: w, attributes: { trusted: true } });
    const payload = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true, 'wrap-with-trusted': true } })).handle;
    expect((await f.m.fail({ op: 'wrapKey', session: f.alice, mechanism: { name: 'aes-gcm', iv: new Uint8Array(12) }, wrappingHandle: w, payloadHandle: payload }, 'MECHANISM_PARAM_INVALID')).message).to.contain('is trusted');
    await f.m.fail({ op: 'encrypt', session: f.alice, handle: w, mechanism: { name: 'aes-gcm', iv: new Uint8Array(12) }, data: new Uint8Array(16) }, 'MECHANISM_PARAM_INVALID');
    expect((await f.m.ok({ op: 'wrapKey', session: f.alice, mechanism: { name: 'aes-gcm' }, wrappingHandle: w, payloadHandle: payload })).iv).to.have.length(12);
  });

  it('item 6: ECB and CBC without padding do not wrap (or unwrap) keys; CTR does only under the unlimited profile', async () => {
    const f = await activatedMember();
    const w = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { wrap: true, unwrap: true } })).handle;
    const payload = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16 })).handle;
    for (const mechanism of [{ name: 'aes-ecb' }, { name: 'aes-cbc', iv: new Uint8Array(16) }] as const) {
      const e = await f.m.fail({ op: 'wrapKey', session: f.alice, mechanism, wrappingHandle: w, payloadHandle: payload }, 'MECHANISM_PARAM_INVALID');
      expect(e.message).to.contain(`${mechanism.name} does not wrap keys`);
      await f.m.fail({ op: 'unwrapKey', session: f.alice, mechanism, unwrappingHandle: w, wrapped: new Uint8Array(16), keyClass: 'secret-key', keyType: 'aes' }, 'MECHANISM_PARAM_INVALID');
    }
    const ctr = { name: 'aes-ctr', counter: new Uint8Array(16) } as const;
    await f.m.fail({ op: 'wrapKey', session: f.alice, mechanism: ctr, wrappingHandle: w, payloadHandle: payload }, 'NOT_SUPPORTED_BY_PROFILE');
    await f.m.fail({ op: 'unwrapKey', session: f.alice, mechanism: ctr, unwrappingHandle: w, wrapped: new Uint8Array(16), keyClass: 'secret-key', keyType: 'aes' }, 'NOT_SUPPORTED_BY_PROFILE');
  });

  it('item 6: under the unlimited profile CTR wraps (as WebCrypto does) only with a key that cannot encrypt data: its keystream would read what it wraps', async () => {
    const f = await activatedMember({ profile: 'unlimited' });
    const ctr = { name: 'aes-ctr', counter: new Uint8Array(16).fill(7), counterBits: 64 } as const;
    const payload = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { extractable: true, sensitive: false } })).handle;
    // A wrapping key that also encrypts: another user of it would encrypt zeros under the same
    // counter and XOR the result with the wrapped key.
    const both = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { wrap: true, unwrap: true, encrypt: true } })).handle;
    const refused = await f.m.fail({ op: 'wrapKey', session: f.alice, mechanism: ctr, wrappingHandle: both, payloadHandle: payload }, 'ATTRIBUTE_FORBIDS_OPERATION');
    expect(refused.message).to.contain('has encrypt=true, so it cannot wrap with aes-ctr');
    await f.m.fail({ op: 'unwrapKey', session: f.alice, mechanism: ctr, unwrappingHandle: both, wrapped: new Uint8Array(16), keyClass: 'secret-key', keyType: 'aes' }, 'ATTRIBUTE_FORBIDS_OPERATION');
    // A key that only wraps: the key round trips, and the wrapped bytes are the payload under AES-CTR.
    const w = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { wrap: true, unwrap: true, extractable: true, sensitive: false } })).handle;
    const { wrapped } = await f.m.ok({ op: 'wrapKey', session: f.alice, mechanism: ctr, wrappingHandle: w, payloadHandle: payload });
    const raw = async (handle: number) => Buffer.from((await f.m.ok({ op: 'exportKey', session: f.alice, handle, format: 'raw' })).keyData as Uint8Array);
    const expected = createCipheriv('aes-256-ctr', await raw(w), Buffer.from(ctr.counter)).update(await raw(payload));
    expect(Buffer.from(wrapped).equals(expected)).to.equal(true);
    const back = (await f.m.ok({ op: 'unwrapKey', session: f.alice, mechanism: ctr, unwrappingHandle: w, wrapped, keyClass: 'secret-key', keyType: 'aes', attributes: { extractable: true, sensitive: false } })).handle;
    expect((await raw(back)).equals(await raw(payload))).to.equal(true);
  });
});

describe('security: the HSM door\'s own bounds', () => {
  it('AES-GCM takes IVs of at least 12 bytes and tags of at least 96 bits, unless the caller asks for WebCrypto\'s bounds', async () => {
    const f = await activatedMember();
    const key = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { encrypt: true, decrypt: true } })).handle;
    const data = bytes('00112233');
    expect((await f.m.fail({ op: 'encrypt', session: f.alice, handle: key, mechanism: { name: 'aes-gcm', iv: new Uint8Array(1) }, data }, 'MECHANISM_PARAM_INVALID')).message).to.contain('at least 12 bytes');
    expect((await f.m.fail({ op: 'encrypt', session: f.alice, handle: key, mechanism: { name: 'aes-gcm', tagLengthBits: 32 }, data }, 'MECHANISM_PARAM_INVALID')).message).to.contain('at least 96 bits');
    await f.m.fail({ op: 'decrypt', session: f.alice, handle: key, mechanism: { name: 'aes-gcm', iv: new Uint8Array(8) }, data: new Uint8Array(20) }, 'MECHANISM_PARAM_INVALID');
    // The WebCrypto door asks for the spec's bounds, and gets them.
    const short = { name: 'aes-gcm', iv: new Uint8Array(1), tagLengthBits: 32, webcrypto: true } as const;
    const sealed = await f.m.ok({ op: 'encrypt', session: f.alice, handle: key, mechanism: short, data });
    expect(hex((await f.m.ok({ op: 'decrypt', session: f.alice, handle: key, mechanism: short, data: sealed.data })).data)).to.equal('00112233');
  });

  it('an RSA PKCS #1 v1.5 unwrap answers a bad padding and a key of the wrong length alike', async () => {
    const f = await activatedMember({ profile: 'unlimited' });
    const pkcs8 = rsaPkcs8(2048);
    const rsa = (await f.m.ok({ op: 'importKey', session: f.alice, keyClass: 'private-key', keyType: 'rsa', format: 'pkcs8', keyData: pkcs8, attributes: { unwrap: true } })).handle;
    const publicKey = createPublicKey(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }));
    const unwrap = (wrapped: Uint8Array) => f.m.fail({ op: 'unwrapKey', session: f.alice, mechanism: { name: 'rsa-pkcs' }, unwrappingHandle: rsa, wrapped, keyClass: 'secret-key', keyType: 'aes' });
    // Random bytes (bad padding), and a well-padded 5-byte "AES key" (wrong length).
    const badPadding = await unwrap(new Uint8Array(256).fill(0x5a));
    const wrongLength = await unwrap(publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, Buffer.alloc(5, 1)));
    expect(wrongLength).to.deep.equal(badPadding);
    expect(badPadding.code).to.equal('DECRYPTION_FAILED');
    // A good one unwraps.
    const good = await f.m.ok({ op: 'unwrapKey', session: f.alice, mechanism: { name: 'rsa-pkcs' }, unwrappingHandle: rsa, wrapped: publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, Buffer.alloc(16, 1)), keyClass: 'secret-key', keyType: 'aes' });
    expect(good.key.attributes['key-length-bytes']).to.equal(16);
  });

  it('a forged byte array, or a request that throws when read, is a bad request, not a member failure', async () => {
    const f = await activatedMember();
    const key = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 16, attributes: { encrypt: true } })).handle;
    const forged = Object.create(Uint8Array.prototype) as Uint8Array;
    const e = await f.m.fail({ op: 'encrypt', session: f.alice, handle: key, mechanism: { name: 'aes-gcm' }, data: forged }, 'BAD_REQUEST');
    expect(e.message).to.equal('encrypt.data: expected bytes (a Uint8Array), got object');
    const throwing = { op: 'encrypt', session: f.alice, handle: key, mechanism: { name: 'aes-gcm' }, get data(): Uint8Array { throw new Error('boom'); } };
    expect((await f.m.fail(throwing, 'BAD_REQUEST')).message).to.contain('the request could not be read');
    // A subclass with methods of its own is not taken either.
    class Sly extends Uint8Array {
      override subarray(): Uint8Array<ArrayBuffer> {
        throw new Error('no');
      }
    }
    await f.m.fail({ op: 'encrypt', session: f.alice, handle: key, mechanism: { name: 'aes-gcm' }, data: new Sly(4) }, 'BAD_REQUEST');
    expect((await f.m.ok({ op: 'encrypt', session: f.alice, handle: key, mechanism: { name: 'aes-gcm' }, data: Buffer.alloc(4) })).data).to.have.length(20);
  });

  it('the audit log keeps no text typed as a username that is no user (a password typed in the wrong field)', async () => {
    const f = await activatedMember();
    for (const typed of ['Correct-Horse-Battery!', 'hunter2hunter2']) {
      await f.m.fail({ op: 'login', username: typed, password: 'whatever' });
    }
    const { records } = await f.m.ok({ op: 'getAuditLog', session: f.admin });
    const logins = records.filter((r) => r.opcode === 'CN_LOGIN' && r.response !== 'SUCCESS');
    expect(logins.map((r) => r.user)).to.deep.equal(['(no such user: 22 characters)', '(no such user: 14 characters)']);
    expect(JSON.stringify(records)).not.to.match(/Correct-Horse|hunter2/);
    // A real user's failed login is recorded by name.
    await f.m.fail({ op: 'login', username: 'Carol', password: 'wrong-password' }, 'LOGIN_FAILED');
    expect((await f.m.ok({ op: 'getAuditLog', session: f.admin })).records.at(-1)!.user).to.equal('carol');
  });
});
