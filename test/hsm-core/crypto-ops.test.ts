/**
 * The cryptographic operations' own checks (crypto-ops.ts): a mechanism takes only its key type,
 * random bytes stop at the profile's limit, and derived bits come in the length asked for.
 */
import { createHash, createPublicKey, verify } from 'node:crypto';
import { expect } from 'chai';
import { activatedMember, bytes } from '../helpers/member.js';
import { nonceBatches } from '../../src/hsm-core/mechanisms/ecdsa-nonces.js';

const ref = (handle: number) => `0x${handle.toString(16).padStart(16, '0')}`;

describe('hsm-core: cryptographic operations', () => {
  it('a mechanism refuses a key of another type, by name, for each of encrypt, decrypt, sign and verify', async () => {
    const f = await activatedMember();
    const aes = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { encrypt: true, decrypt: true, sign: true, verify: true } })).handle;
    const oaep = { name: 'rsa-oaep', hash: 'sha256' } as const;
    const hmac = { name: 'hmac', hash: 'sha256' } as const;
    const cases: [Record<string, unknown>, string][] = [
      [{ op: 'encrypt', handle: aes, mechanism: oaep, data: bytes('00') }, `mechanism rsa-oaep takes rsa keys, but key ${ref(aes)} is aes`],
      [{ op: 'decrypt', handle: aes, mechanism: oaep, data: new Uint8Array(32) }, `mechanism rsa-oaep takes rsa keys, but key ${ref(aes)} is aes`],
      [{ op: 'sign', handle: aes, mechanism: hmac, data: bytes('00') }, `mechanism hmac takes generic-secret keys, but key ${ref(aes)} is aes`],
      [{ op: 'verify', handle: aes, mechanism: hmac, data: bytes('00'), signature: new Uint8Array(32) }, `mechanism hmac takes generic-secret keys, but key ${ref(aes)} is aes`],
    ];
    for (const [request, message] of cases) {
      expect((await f.m.fail({ ...request, session: f.alice }, 'KEY_TYPE_INCONSISTENT')).message, String(request.op)).to.equal(message);
    }
  });

  it('signing a digest the caller computed (prehashed) makes what signing the message makes, on every curve; the digest must be the hash\'s length', async () => {
    const f = await activatedMember();
    const message = Buffer.from('pay 100 to bob');
    for (const curve of ['secp224r1', 'secp256r1', 'secp384r1', 'secp521r1', 'secp256k1'] as const) {
      const pair = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve, privateAttributes: { sign: true }, publicAttributes: { verify: true } });
      const digest = createHash('sha384').update(message).digest();
      const signed = await f.m.ok({ op: 'sign', session: f.alice, handle: pair.privateHandle, mechanism: { name: 'ecdsa', hash: 'sha384', prehashed: true }, data: digest });
      // node:crypto's verification of the message accepts the signature of its digest, and the other way round.
      const spki = (await f.m.ok({ op: 'exportKey', session: f.alice, handle: pair.publicHandle, format: 'spki' })).keyData as Uint8Array;
      const publicKey = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
      expect(verify('sha384', message, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signed.signature), curve).to.equal(true);
      const ofMessage = await f.m.ok({ op: 'sign', session: f.alice, handle: pair.privateHandle, mechanism: { name: 'ecdsa', hash: 'sha384' }, data: message });
      expect((await f.m.ok({ op: 'verify', session: f.alice, handle: pair.publicHandle, mechanism: { name: 'ecdsa', hash: 'sha384', prehashed: true }, data: digest, signature: ofMessage.signature })).valid, curve).to.equal(true);
    }
    const ec = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp256r1', privateAttributes: { sign: true } });
    // Nonces come in batches (of 64 from their thread, 16 on the member's): 150 signatures run through several, each signature valid and each r new.
    const spki = (await f.m.ok({ op: 'exportKey', session: f.alice, handle: ec.publicHandle, format: 'spki' })).keyData as Uint8Array;
    const publicKey = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
    const rs = new Set<string>();
    for (let i = 0; i < 150; i++) {
      const m = Buffer.from(`message ${i}`);
      const { signature } = await f.m.ok({ op: 'sign', session: f.alice, handle: ec.privateHandle, mechanism: { name: 'ecdsa', hash: 'sha256', prehashed: true }, data: createHash('sha256').update(m).digest() });
      expect(verify('sha256', m, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature), `signature ${i}`).to.equal(true);
      rs.add(Buffer.from(signature).subarray(0, 32).toString('hex'));
    }
    expect(rs.size).to.equal(150);
    const e = await f.m.fail({ op: 'sign', session: f.alice, handle: ec.privateHandle, mechanism: { name: 'ecdsa', hash: 'sha256', prehashed: true }, data: message }, 'DATA_INVALID');
    expect(e.message).to.equal('data: a sha256 digest is 32 bytes, not 14 (give the digest, not the data, with prehashed)');
  });

  it('ECDSA over a digest takes its nonces from their thread; a burst that empties the reserve makes a few on the member\'s thread; every r is new', async () => {
    const f = await activatedMember();
    const ec = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp256r1', privateAttributes: { sign: true } });
    const spki = (await f.m.ok({ op: 'exportKey', session: f.alice, handle: ec.publicHandle, format: 'spki' })).keyData as Uint8Array;
    const publicKey = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
    const rs = new Set<string>();
    let signed = 0;
    const sign = async () => {
      const m = Buffer.from(`message ${signed++}`);
      const { signature } = await f.m.ok({ op: 'sign', session: f.alice, handle: ec.privateHandle, mechanism: { name: 'ecdsa', hash: 'sha256', prehashed: true }, data: createHash('sha256').update(m).digest() });
      expect(verify('sha256', m, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature), m.toString()).to.equal(true);
      rs.add(Buffer.from(signature).subarray(0, 32).toString('hex'));
    };
    // 300 at once: more than the reserve ever holds, so the member's thread makes some.
    const before = nonceBatches('prime256v1');
    await Promise.all(Array.from({ length: 300 }, sign));
    const afterBurst = nonceBatches('prime256v1');
    expect(afterBurst.here).to.be.greaterThan(before.here);
    // The batch asked of the thread during the burst arrives; from then on, signatures at one
    // caller's pace all take theirs from the reserve.
    const deadline = Date.now() + 10_000;
    while (nonceBatches('prime256v1').thread === afterBurst.thread) {
      expect(Date.now(), 'a batch from the nonce thread').to.be.below(deadline);
      await new Promise((resolve) => setImmediate(resolve));
    }
    const refilled = nonceBatches('prime256v1');
    for (let i = 0; i < 32; i++) await sign();
    expect(nonceBatches('prime256v1').here).to.equal(refilled.here);
    expect(rs.size).to.equal(332);
  });

  it('Ed25519ph (RFC 8032 §7.3 "abc"): of the message or of its SHA-512, the same signature; Ed25519 verification refuses it', async () => {
    const f = await activatedMember({ mode: 'non-fips' }) // Ed25519: non-FIPS clusters only;
    const seed = bytes('833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42');
    const x = bytes('ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf');
    const jwk = { kty: 'OKP', crv: 'Ed25519', d: Buffer.from(seed).toString('base64url'), x: Buffer.from(x).toString('base64url') };
    const { handle } = await f.m.ok({ op: 'importKey', session: f.alice, keyClass: 'private-key', keyType: 'ed25519', format: 'jwk', keyData: jwk, attributes: { sign: true } });
    const pub = await f.m.ok({ op: 'importKey', session: f.alice, keyClass: 'public-key', keyType: 'ed25519', format: 'raw', keyData: x, attributes: { verify: true } });
    const expected = '98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae4131f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406';
    const abc = Buffer.from('abc');
    const signed = await f.m.ok({ op: 'sign', session: f.alice, handle, mechanism: { name: 'ed25519ph' }, data: abc });
    expect(Buffer.from(signed.signature).toString('hex')).to.equal(expected);
    const digest = createHash('sha512').update(abc).digest();
    expect(Buffer.from((await f.m.ok({ op: 'sign', session: f.alice, handle, mechanism: { name: 'ed25519ph', prehashed: true }, data: digest })).signature).toString('hex')).to.equal(expected);
    expect((await f.m.ok({ op: 'verify', session: f.alice, handle: pub.handle, mechanism: { name: 'ed25519ph', prehashed: true }, data: digest, signature: signed.signature })).valid).to.equal(true);
    expect((await f.m.ok({ op: 'verify', session: f.alice, handle: pub.handle, mechanism: { name: 'ed25519' }, data: abc, signature: signed.signature })).valid).to.equal(false);
  });

  it('random bytes: up to the profile\'s limit per call, and a refusal that names it', async () => {
    const f = await activatedMember();
    expect((await f.m.ok({ op: 'generateRandom', session: f.alice, length: 65_536 })).data).to.have.length(65_536);
    const e = await f.m.fail({ op: 'generateRandom', session: f.alice, length: 65_537 }, 'LIMIT_EXCEEDED');
    expect(e.message).to.equal("length: at most 65536 random bytes per call under the cloudhsm profile, not 65537 (CloudHSM's limit; start the cluster with profile: 'unlimited' to lift it)");
  });

  it('derived bits: a KDF needs a length in whole bytes; ECDH gives its natural length, or the first lengthBits bits', async () => {
    const f = await activatedMember();
    const secret = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'generic-secret', lengthBytes: 32, attributes: { derive: true } })).handle;
    const hkdf = { name: 'hkdf', hash: 'sha256', salt: bytes(''), info: bytes('') } as const;
    expect((await f.m.fail({ op: 'deriveBits', session: f.alice, baseHandle: secret, mechanism: hkdf }, 'BAD_REQUEST')).message).to.equal('lengthBits: required for hkdf');
    expect((await f.m.fail({ op: 'deriveBits', session: f.alice, baseHandle: secret, mechanism: hkdf, lengthBits: 12 }, 'DATA_INVALID')).message).to.equal('lengthBits: hkdf derives whole bytes, so a multiple of 8, not 12');
    expect((await f.m.ok({ op: 'deriveBits', session: f.alice, baseHandle: secret, mechanism: hkdf, lengthBits: 24 })).bits).to.have.length(3);

    const ours = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp256r1', privateAttributes: { derive: true } });
    const theirs = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp256r1' });
    const ecdh = { name: 'ecdh', publicHandle: theirs.publicHandle } as const;
    const whole = (await f.m.ok({ op: 'deriveBits', session: f.alice, baseHandle: ours.privateHandle, mechanism: ecdh })).bits;
    expect(whole).to.have.length(32);
    const twelve = (await f.m.ok({ op: 'deriveBits', session: f.alice, baseHandle: ours.privateHandle, mechanism: ecdh, lengthBits: 12 })).bits;
    expect([...twelve]).to.deep.equal([whole[0], whole[1]! & 0xf0]);
    const sixteen = (await f.m.ok({ op: 'deriveBits', session: f.alice, baseHandle: ours.privateHandle, mechanism: ecdh, lengthBits: 16 })).bits;
    expect([...sixteen]).to.deep.equal([whole[0], whole[1]]);
  });
});
