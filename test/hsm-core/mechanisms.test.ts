/**
 * Mechanisms, checked against an independent computation: Node's WebCrypto (`crypto.webcrypto`,
 * a separate code path from the member's node:crypto calls), published known-answer vectors
 * (RFC 4493, RFC 3394, RFC 5649), or a direct computation in the test where neither exists.
 */
import { ECDH, constants, createDecipheriv, createHash, createHmac, createPrivateKey, createPublicKey, generateKeyPairSync, privateDecrypt, publicDecrypt, publicEncrypt, sign as nodeSign, verify as nodeVerify, webcrypto } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { expect } from 'chai';
import type { HashName } from '../../src/hsm-core/index.js';
import { answersInLaterTurns, poolUse, signAsync } from '../../src/hsm-core/mechanisms/pool.js';
import { rsaPkcs8 } from '../helpers/keys.js';
import { rejection } from '../helpers/refusal.js';
import { activatedMember, bytes, hex, type Fixture } from '../helpers/member.js';
import { turnCounter } from '../helpers/turns.js';

const subtle = webcrypto.subtle;
const WEB_HASH: Record<HashName, string> = { sha1: 'SHA-1', sha224: 'SHA-224', sha256: 'SHA-256', sha384: 'SHA-384', sha512: 'SHA-512' };
const WEB_HASHES: HashName[] = ['sha1', 'sha256', 'sha384', 'sha512'];

const all = { encrypt: true, decrypt: true, sign: true, verify: true, wrap: true, unwrap: true, derive: true };
const u8 = (b: ArrayBuffer | Uint8Array) => new Uint8Array(b);
const rand = (n: number) => webcrypto.getRandomValues(new Uint8Array(n));

let f: Fixture;
before(async () => {
  f = await activatedMember({ profile: 'unlimited' });
});

async function importSecret(raw: Uint8Array, keyType: 'aes' | 'generic-secret' = 'aes'): Promise<number> {
  const attributes = keyType === 'aes' ? all : { sign: true, verify: true, derive: true };
  return (await f.m.ok({ op: 'importKey', session: f.alice, keyClass: 'secret-key', keyType, format: 'raw', keyData: raw, attributes })).handle;
}

async function importPair(pkcs8: Uint8Array, keyType: 'rsa' | 'ec' | 'ed25519' | 'x25519') {
  const priv = createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(priv).export({ format: 'der', type: 'spki' });
  const usages = keyType === 'rsa' ? { decrypt: true, sign: true, unwrap: true } : keyType === 'ec' ? { sign: true, derive: true } : keyType === 'ed25519' ? { sign: true } : { derive: true };
  const privAttrs = { ...usages, sensitive: false };
  const pubAttrs = keyType === 'rsa' ? { encrypt: true, verify: true, wrap: true } : keyType === 'x25519' ? {} : { verify: true };
  const privateHandle = (await f.m.ok({ op: 'importKey', session: f.alice, keyClass: 'private-key', keyType, format: 'pkcs8', keyData: pkcs8, attributes: privAttrs })).handle;
  const publicHandle = (await f.m.ok({ op: 'importKey', session: f.alice, keyClass: 'public-key', keyType, format: 'spki', keyData: spki, attributes: pubAttrs })).handle;
  return { privateHandle, publicHandle, spki: u8(spki) };
}

describe('hsm-core: mechanisms', () => {
  describe('AES-GCM', () => {
    for (const keyBytes of [16, 24, 32]) {
      for (const tagBits of [96, 128] as const) {
        it(`AES-${keyBytes * 8}, ${tagBits}-bit tag: identical to WebCrypto both ways, and a changed byte fails`, async () => {
          const raw = rand(keyBytes);
          const handle = await importSecret(raw);
          const web = await subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']);
          for (const [ivLength, aad] of [
            [12, undefined],
            [16, rand(20)],
          ] as const) {
            const iv = rand(ivLength);
            const data = rand(100);
            const params = { name: 'AES-GCM', iv, tagLength: tagBits, ...(aad ? { additionalData: aad } : {}) };
            const mechanism = { name: 'aes-gcm', iv, tagLengthBits: tagBits, ...(aad ? { aad } : {}) } as const;
            const ours = await f.m.ok({ op: 'encrypt', session: f.alice, handle, mechanism, data });
            expect(hex(ours.data)).to.equal(hex(u8(await subtle.encrypt(params, web, data))));
            expect(ours.iv).to.equal(undefined);
            const theirs = u8(await subtle.encrypt(params, web, data));
            expect(hex((await f.m.ok({ op: 'decrypt', session: f.alice, handle, mechanism, data: theirs })).data)).to.equal(hex(data));
            theirs[3]! ^= 0x80;
            await f.m.fail({ op: 'decrypt', session: f.alice, handle, mechanism, data: theirs }, 'DECRYPTION_FAILED');
          }
        });
      }
    }

    it('without an IV the HSM picks a fresh 12-byte IV each time and returns it', async () => {
      const raw = rand(32);
      const handle = await importSecret(raw);
      const web = await subtle.importKey('raw', raw, 'AES-GCM', false, ['decrypt']);
      const ivs = new Set<string>();
      for (let i = 0; i < 50; i++) {
        const out = await f.m.ok({ op: 'encrypt', session: f.alice, handle, mechanism: { name: 'aes-gcm' }, data: bytes('cafe') });
        expect(out.iv).to.have.length(12);
        ivs.add(hex(out.iv!));
        expect(hex(u8(await subtle.decrypt({ name: 'AES-GCM', iv: out.iv! }, web, out.data)))).to.equal('cafe');
      }
      expect(ivs.size).to.equal(50);
      await f.m.fail({ op: 'decrypt', session: f.alice, handle, mechanism: { name: 'aes-gcm' }, data: rand(32) }, 'MECHANISM_PARAM_INVALID');
    });

    it('cloudhsm-aes-gcm puts the HSM-chosen IV in front of the ciphertext', async () => {
      const raw = rand(32);
      const handle = await importSecret(raw);
      const web = await subtle.importKey('raw', raw, 'AES-GCM', false, ['decrypt', 'encrypt']);
      const out = (await f.m.ok({ op: 'encrypt', session: f.alice, handle, mechanism: { name: 'cloudhsm-aes-gcm' }, data: bytes('0011') })).data;
      expect(out).to.have.length(12 + 2 + 16);
      expect(hex(u8(await subtle.decrypt({ name: 'AES-GCM', iv: out.subarray(0, 12) }, web, out.subarray(12))))).to.equal('0011');
      const iv = rand(12);
      const theirs = Buffer.concat([iv, u8(await subtle.encrypt({ name: 'AES-GCM', iv }, web, bytes('2233')))]);
      expect(hex((await f.m.ok({ op: 'decrypt', session: f.alice, handle, mechanism: { name: 'cloudhsm-aes-gcm' }, data: theirs })).data)).to.equal('2233');
    });
  });

  describe('AES-CBC, CTR, ECB', () => {
    it('aes-cbc-pad is WebCrypto AES-CBC; aes-cbc is the same without the padding block', async () => {
      const raw = rand(24);
      const handle = await importSecret(raw);
      const web = await subtle.importKey('raw', raw, 'AES-CBC', false, ['encrypt', 'decrypt']);
      const iv = rand(16);
      for (const length of [0, 1, 15, 16, 33, 64]) {
        const data = rand(length);
        const padded = await f.m.ok({ op: 'encrypt', session: f.alice, handle, mechanism: { name: 'aes-cbc-pad', iv }, data });
        expect(hex(padded.data)).to.equal(hex(u8(await subtle.encrypt({ name: 'AES-CBC', iv }, web, data))));
        expect(hex((await f.m.ok({ op: 'decrypt', session: f.alice, handle, mechanism: { name: 'aes-cbc-pad', iv }, data: padded.data })).data)).to.equal(hex(data));
        if (length % 16 === 0) {
          const plain = await f.m.ok({ op: 'encrypt', session: f.alice, handle, mechanism: { name: 'aes-cbc', iv }, data });
          expect(hex(plain.data)).to.equal(hex(padded.data.subarray(0, length)));
          expect(hex((await f.m.ok({ op: 'decrypt', session: f.alice, handle, mechanism: { name: 'aes-cbc', iv }, data: plain.data })).data)).to.equal(hex(data));
        } else {
          await f.m.fail({ op: 'encrypt', session: f.alice, handle, mechanism: { name: 'aes-cbc', iv }, data }, 'DATA_INVALID');
        }
      }
      await f.m.fail({ op: 'encrypt', session: f.alice, handle, mechanism: { name: 'aes-cbc-pad', iv: rand(12) }, data: rand(16) }, 'MECHANISM_PARAM_INVALID');
      const wrongPadding = (await f.m.ok({ op: 'encrypt', session: f.alice, handle, mechanism: { name: 'aes-cbc', iv }, data: new Uint8Array(16) })).data;
      await f.m.fail({ op: 'decrypt', session: f.alice, handle, mechanism: { name: 'aes-cbc-pad', iv }, data: wrongPadding }, 'DECRYPTION_FAILED');
    });

    for (const counterBits of [128, 64, 8]) {
      it(`aes-ctr with a ${counterBits}-bit counter, across its wrap, is WebCrypto AES-CTR`, async () => {
        const raw = rand(16);
        const handle = await importSecret(raw);
        const web = await subtle.importKey('raw', raw, 'AES-CTR', false, ['encrypt']);
        const counter = rand(16);
        // Put the counter a few blocks before it wraps.
        const tail = counterBits / 8;
        for (let i = 16 - tail; i < 16; i++) counter[i] = 0xff;
        counter[15] = 0xfd;
        const data = rand(16 * 6 + 5);
        const ours = await f.m.ok({ op: 'encrypt', session: f.alice, handle, mechanism: { name: 'aes-ctr', counter, counterBits }, data });
        expect(hex(ours.data)).to.equal(hex(u8(await subtle.encrypt({ name: 'AES-CTR', counter, length: counterBits }, web, data))));
      });
    }

    it('aes-ctr refuses more blocks than its counter can number', async () => {
      const handle = await importSecret(rand(16));
      const e = await f.m.fail({ op: 'encrypt', session: f.alice, handle, mechanism: { name: 'aes-ctr', counter: rand(16), counterBits: 2 }, data: rand(16 * 5) }, 'DATA_INVALID');
      expect(e.message).to.include('2-bit counter');
    });

    it('aes-ecb encrypts each block alone (= AES-CBC with a zero IV on that block)', async () => {
      const raw = rand(32);
      const handle = await importSecret(raw);
      const web = await subtle.importKey('raw', raw, 'AES-CBC', false, ['encrypt']);
      const data = rand(48);
      const out = (await f.m.ok({ op: 'encrypt', session: f.alice, handle, mechanism: { name: 'aes-ecb' }, data })).data;
      for (let i = 0; i < 3; i++) {
        const block = u8(await subtle.encrypt({ name: 'AES-CBC', iv: new Uint8Array(16) }, web, data.subarray(i * 16, i * 16 + 16)));
        expect(hex(out.subarray(i * 16, i * 16 + 16))).to.equal(hex(block.subarray(0, 16)));
      }
      expect(hex((await f.m.ok({ op: 'decrypt', session: f.alice, handle, mechanism: { name: 'aes-ecb' }, data: out })).data)).to.equal(hex(data));
    });
  });

  describe('AES-CMAC', () => {
    // RFC 4493 §4, with the AES-128 key 2b7e1516…
    const key = bytes('2b7e151628aed2a6abf7158809cf4f3c');
    const message = bytes(
      '6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710',
    );
    const vectors: [number, string][] = [
      [0, 'bb1d6929e95937287fa37d129b756746'],
      [16, '070a16b46b4d4144f79bdd9dd04a287c'],
      [40, 'dfa66747de9ae63030ca32611497c827'],
      [64, '51f0bebf7e3b9d92fc49741779363cfe'],
    ];
    for (const [length, tag] of vectors) {
      it(`RFC 4493 example with ${length} bytes`, async () => {
        const handle = await importSecret(key);
        const data = message.subarray(0, length);
        expect(hex((await f.m.ok({ op: 'sign', session: f.alice, handle, mechanism: { name: 'cmac' }, data })).signature)).to.equal(tag);
        expect((await f.m.ok({ op: 'verify', session: f.alice, handle, mechanism: { name: 'cmac' }, data, signature: bytes(tag) })).valid).to.equal(true);
        expect((await f.m.ok({ op: 'verify', session: f.alice, handle, mechanism: { name: 'cmac' }, data, signature: bytes(tag.replace(/^../, '00')) })).valid).to.equal(false);
      });
    }
  });

  describe('AES key wrap', () => {
    async function wrapRaw(kek: number, payloadRaw: Uint8Array, mechanism: { name: 'aes-no-pad' | 'aes-zero-pad' | 'aes-pkcs5-pad' }) {
      const payload = await importSecret(payloadRaw, 'generic-secret');
      return (await f.m.ok({ op: 'wrapKey', session: f.alice, mechanism, wrappingHandle: kek, payloadHandle: payload })).wrapped;
    }

    it('aes-no-pad is WebCrypto AES-KW (RFC 3394), and RFC 3394 §4.6', async () => {
      const kekRaw = bytes('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
      const kek = await importSecret(kekRaw);
      const known = await wrapRaw(kek, bytes('00112233445566778899aabbccddeeff000102030405060708090a0b0c0d0e0f'), { name: 'aes-no-pad' });
      expect(hex(known)).to.equal('28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21');
      const webKek = await subtle.importKey('raw', kekRaw, 'AES-KW', false, ['wrapKey']);
      for (const length of [16, 24, 32, 40]) {
        const raw = rand(length);
        const webPayload = await subtle.importKey('raw', raw, { name: 'HMAC', hash: 'SHA-256' }, true, ['sign']);
        const theirs = u8(await subtle.wrapKey('raw', webPayload, webKek, 'AES-KW'));
        expect(hex(await wrapRaw(kek, raw, { name: 'aes-no-pad' }))).to.equal(hex(theirs));
      }
      await f.m.fail(
        { op: 'wrapKey', session: f.alice, mechanism: { name: 'aes-no-pad' }, wrappingHandle: kek, payloadHandle: await importSecret(rand(20), 'generic-secret') },
        'DATA_INVALID',
      );
      await f.m.fail(
        { op: 'wrapKey', session: f.alice, mechanism: { name: 'aes-no-pad', iv: rand(8) }, wrappingHandle: kek, payloadHandle: await importSecret(rand(16)) },
        'MECHANISM_PARAM_INVALID',
      );
    });

    it('aes-zero-pad is RFC 5649 (§6 examples)', async () => {
      const kek = await importSecret(bytes('5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8'));
      expect(hex(await wrapRaw(kek, bytes('c37b7e6492584340bed12207808941155068f738'), { name: 'aes-zero-pad' }))).to.equal(
        '138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a',
      );
      expect(hex(await wrapRaw(kek, bytes('466f7250617369'), { name: 'aes-zero-pad' }))).to.equal('afbeb0f07dfbf5419200f2ccb50bb24f');
    });

    it('aes-pkcs5-pad is RFC 3394 over the PKCS #5-padded key, and unwraps back', async () => {
      const kekRaw = rand(32);
      const kek = await importSecret(kekRaw);
      const webKek = await subtle.importKey('raw', kekRaw, 'AES-KW', false, ['wrapKey']);
      for (const length of [8, 13, 16, 32]) {
        const raw = rand(length);
        const pad = 8 - (length % 8);
        const padded = Buffer.concat([raw, Buffer.alloc(pad, pad)]);
        const webPayload = await subtle.importKey('raw', padded, { name: 'HMAC', hash: 'SHA-256' }, true, ['sign']);
        const wrapped = await wrapRaw(kek, raw, { name: 'aes-pkcs5-pad' });
        expect(hex(wrapped)).to.equal(hex(u8(await subtle.wrapKey('raw', webPayload, webKek, 'AES-KW'))));
        const back = await f.m.ok({ op: 'unwrapKey', session: f.alice, mechanism: { name: 'aes-pkcs5-pad' }, unwrappingHandle: kek, wrapped, keyClass: 'secret-key', keyType: 'generic-secret', attributes: { sensitive: false } });
        expect(hex((await f.m.ok({ op: 'exportKey', session: f.alice, handle: back.handle, format: 'raw' })).keyData as Uint8Array)).to.equal(hex(raw));
      }
    });

    it('unwrapping with the wrong key fails cleanly', async () => {
      const kek = await importSecret(rand(32));
      const other = await importSecret(rand(32));
      for (const name of ['aes-no-pad', 'aes-zero-pad', 'aes-pkcs5-pad'] as const) {
        const wrapped = await wrapRaw(kek, rand(32), { name });
        await f.m.fail({ op: 'unwrapKey', session: f.alice, mechanism: { name }, unwrappingHandle: other, wrapped, keyClass: 'secret-key', keyType: 'aes' }, 'DECRYPTION_FAILED');
      }
    });
  });

  describe('RSA', () => {
    let rsa: { privateHandle: number; publicHandle: number; spki: Uint8Array };
    let pkcs8: Buffer;
    before(async () => {
      pkcs8 = rsaPkcs8(2048);
      rsa = await importPair(pkcs8, 'rsa');
    });

    for (const hash of WEB_HASHES) {
      it(`RSA-OAEP with ${hash}: WebCrypto decrypts ours and we decrypt theirs, with and without a label`, async () => {
        for (const label of [undefined, bytes('6c6162656c')]) {
          const params = { name: 'RSA-OAEP', ...(label ? { label } : {}) };
          const pub = await subtle.importKey('spki', rsa.spki, { name: 'RSA-OAEP', hash: WEB_HASH[hash] }, false, ['encrypt']);
          const priv = await subtle.importKey('pkcs8', pkcs8, { name: 'RSA-OAEP', hash: WEB_HASH[hash] }, false, ['decrypt']);
          const mechanism = { name: 'rsa-oaep', hash, ...(label ? { label } : {}) } as const;
          const data = rand(20);
          const ours = await f.m.ok({ op: 'encrypt', session: f.alice, handle: rsa.publicHandle, mechanism, data });
          expect(hex(u8(await subtle.decrypt(params, priv, ours.data)))).to.equal(hex(data));
          const theirs = u8(await subtle.encrypt(params, pub, data));
          expect(hex((await f.m.ok({ op: 'decrypt', session: f.alice, handle: rsa.privateHandle, mechanism, data: theirs })).data)).to.equal(hex(data));
        }
      });
    }

    it('RSA-OAEP refuses data longer than the key allows, and a ciphertext from another key', async () => {
      await f.m.fail({ op: 'encrypt', session: f.alice, handle: rsa.publicHandle, mechanism: { name: 'rsa-oaep', hash: 'sha256' }, data: rand(191) }, 'DATA_INVALID');
      await f.m.fail({ op: 'decrypt', session: f.alice, handle: rsa.privateHandle, mechanism: { name: 'rsa-oaep', hash: 'sha256' }, data: rand(256) }, 'DECRYPTION_FAILED');
    });

    it('RSA PKCS #1 v1.5 encryption pads as PKCS #1 says, and decrypts what OpenSSL encrypts', async () => {
      const data = rand(32);
      const ours = (await f.m.ok({ op: 'encrypt', session: f.alice, handle: rsa.publicHandle, mechanism: { name: 'rsa-pkcs' }, data })).data;
      const em = privateDecrypt({ key: createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }), padding: constants.RSA_NO_PADDING }, ours);
      expect(em[0]).to.equal(0);
      expect(em[1]).to.equal(2);
      const separator = em.indexOf(0, 2);
      expect(separator).to.be.greaterThan(9);
      expect(hex(em.subarray(separator + 1))).to.equal(hex(data));
      const theirs = publicEncrypt({ key: createPublicKey({ key: Buffer.from(rsa.spki), format: 'der', type: 'spki' }), padding: constants.RSA_PKCS1_PADDING }, data);
      expect(hex((await f.m.ok({ op: 'decrypt', session: f.alice, handle: rsa.privateHandle, mechanism: { name: 'rsa-pkcs' }, data: theirs })).data)).to.equal(hex(data));
      // A block of type 1 (signature padding) in place of type 2 must be refused.
      const wrongType = Buffer.concat([Buffer.from([0, 1]), Buffer.alloc(256 - 35, 0xff), Buffer.from([0]), data]);
      const forged = publicEncrypt({ key: createPublicKey({ key: Buffer.from(rsa.spki), format: 'der', type: 'spki' }), padding: constants.RSA_NO_PADDING }, wrongType);
      await f.m.fail({ op: 'decrypt', session: f.alice, handle: rsa.privateHandle, mechanism: { name: 'rsa-pkcs' }, data: forged }, 'DECRYPTION_FAILED');
    });

    for (const hash of WEB_HASHES) {
      it(`RSASSA-PKCS1-v1_5 with ${hash}: byte-identical to WebCrypto, verified both ways`, async () => {
        const params = { name: 'RSASSA-PKCS1-v1_5', hash: WEB_HASH[hash] };
        const priv = await subtle.importKey('pkcs8', pkcs8, params, false, ['sign']);
        const pub = await subtle.importKey('spki', rsa.spki, params, false, ['verify']);
        const data = rand(64);
        const ours = (await f.m.ok({ op: 'sign', session: f.alice, handle: rsa.privateHandle, mechanism: { name: 'rsa-pkcs', hash }, data })).signature;
        expect(hex(ours)).to.equal(hex(u8(await subtle.sign(params, priv, data))));
        expect(await subtle.verify(params, pub, ours, data)).to.equal(true);
        expect((await f.m.ok({ op: 'verify', session: f.alice, handle: rsa.publicHandle, mechanism: { name: 'rsa-pkcs', hash }, data, signature: ours })).valid).to.equal(true);
        data[0]! ^= 1;
        expect((await f.m.ok({ op: 'verify', session: f.alice, handle: rsa.publicHandle, mechanism: { name: 'rsa-pkcs', hash }, data, signature: ours })).valid).to.equal(false);
      });

      it(`RSA-PSS with ${hash}: WebCrypto verifies ours and we verify theirs; the salt length must match`, async () => {
        const saltLength = hash === 'sha1' ? 20 : 32;
        const params = { name: 'RSA-PSS', hash: WEB_HASH[hash] };
        const priv = await subtle.importKey('pkcs8', pkcs8, params, false, ['sign']);
        const pub = await subtle.importKey('spki', rsa.spki, params, false, ['verify']);
        const data = rand(64);
        const mechanism = { name: 'rsa-pkcs-pss', hash, saltLength } as const;
        const ours = (await f.m.ok({ op: 'sign', session: f.alice, handle: rsa.privateHandle, mechanism, data })).signature;
        expect(await subtle.verify({ name: 'RSA-PSS', saltLength }, pub, ours, data)).to.equal(true);
        const theirs = u8(await subtle.sign({ name: 'RSA-PSS', saltLength }, priv, data));
        expect((await f.m.ok({ op: 'verify', session: f.alice, handle: rsa.publicHandle, mechanism, data, signature: theirs })).valid).to.equal(true);
        expect(
          (await f.m.ok({ op: 'verify', session: f.alice, handle: rsa.publicHandle, mechanism: { ...mechanism, saltLength: saltLength + 1 }, data, signature: theirs })).valid,
        ).to.equal(false);
      });
    }

    it('RSA-AES wrap: an OAEP-wrapped ephemeral AES key, then RFC 5649 of the payload under it', async () => {
      const payloadRaw = rand(32);
      const payload = await importSecret(payloadRaw);
      const { wrapped } = await f.m.ok({ op: 'wrapKey', session: f.alice, mechanism: { name: 'rsa-aes', hash: 'sha256', aesKeyBits: 256 }, wrappingHandle: rsa.publicHandle, payloadHandle: payload });
      const priv = await subtle.importKey('pkcs8', pkcs8, { name: 'RSA-OAEP', hash: 'SHA-256' }, false, ['decrypt']);
      const ephemeral = Buffer.from(await subtle.decrypt({ name: 'RSA-OAEP' }, priv, wrapped.subarray(0, 256)));
      expect(ephemeral).to.have.length(32);
      const decipher = createDecipheriv('id-aes256-wrap-pad', ephemeral, Buffer.from('a65959a6', 'hex'));
      expect(hex(Buffer.concat([decipher.update(wrapped.subarray(256)), decipher.final()]))).to.equal(hex(payloadRaw));
      const back = await f.m.ok({ op: 'unwrapKey', session: f.alice, mechanism: { name: 'rsa-aes', hash: 'sha256' }, unwrappingHandle: rsa.privateHandle, wrapped, keyClass: 'secret-key', keyType: 'aes', attributes: { sensitive: false } });
      expect(hex((await f.m.ok({ op: 'exportKey', session: f.alice, handle: back.handle, format: 'raw' })).keyData as Uint8Array)).to.equal(hex(payloadRaw));
    });

    it('a private key wrapped under RSA-AES unwraps to the same key (pkcs8 and jwk)', async () => {
      const ec = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp384r1', privateAttributes: { sign: true, sensitive: false } });
      const exported = (await f.m.ok({ op: 'exportKey', session: f.alice, handle: ec.privateHandle, format: 'pkcs8' })).keyData as Uint8Array;
      for (const format of ['pkcs8', 'jwk'] as const) {
        const { wrapped } = await f.m.ok({ op: 'wrapKey', session: f.alice, mechanism: { name: 'rsa-aes', hash: 'sha1' }, wrappingHandle: rsa.publicHandle, payloadHandle: ec.privateHandle, format });
        const back = await f.m.ok({ op: 'unwrapKey', session: f.alice, mechanism: { name: 'rsa-aes', hash: 'sha1' }, unwrappingHandle: rsa.privateHandle, wrapped, format, keyClass: 'private-key', keyType: 'ec', attributes: { sensitive: false } });
        expect(hex((await f.m.ok({ op: 'exportKey', session: f.alice, handle: back.handle, format: 'pkcs8' })).keyData as Uint8Array)).to.equal(hex(exported));
      }
    });
  });

  describe('ECDSA, Ed25519', () => {
    for (const [curve, webCurve, hash] of [
      ['secp256r1', 'P-256', 'sha256'],
      ['secp384r1', 'P-384', 'sha384'],
      ['secp521r1', 'P-521', 'sha512'],
    ] as const) {
      it(`ECDSA on ${curve}: WebCrypto verifies ours (P1363) and we verify theirs`, async () => {
        const pair = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve, privateAttributes: { sign: true }, publicAttributes: { verify: true } });
        const spki = (await f.m.ok({ op: 'exportKey', session: f.alice, handle: pair.publicHandle, format: 'spki' })).keyData as Uint8Array;
        const pub = await subtle.importKey('spki', spki, { name: 'ECDSA', namedCurve: webCurve }, false, ['verify']);
        const data = rand(50);
        const mechanism = { name: 'ecdsa', hash } as const;
        const ours = (await f.m.ok({ op: 'sign', session: f.alice, handle: pair.privateHandle, mechanism, data })).signature;
        expect(await subtle.verify({ name: 'ECDSA', hash: WEB_HASH[hash] }, pub, ours, data)).to.equal(true);
        const theirKeys = (await subtle.generateKey({ name: 'ECDSA', namedCurve: webCurve }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
        const theirSpki = u8(await subtle.exportKey('spki', theirKeys.publicKey));
        const theirPub = (await f.m.ok({ op: 'importKey', session: f.alice, keyClass: 'public-key', keyType: 'ec', format: 'spki', keyData: theirSpki, attributes: { verify: true } })).handle;
        const theirs = u8(await subtle.sign({ name: 'ECDSA', hash: WEB_HASH[hash] }, theirKeys.privateKey, data));
        expect((await f.m.ok({ op: 'verify', session: f.alice, handle: theirPub, mechanism, data, signature: theirs })).valid).to.equal(true);
        expect((await f.m.ok({ op: 'verify', session: f.alice, handle: theirPub, mechanism, data, signature: theirs.subarray(1) })).valid).to.equal(false);
      });
    }

    for (const curve of ['secp224r1', 'secp256k1'] as const) {
      it(`ECDSA on ${curve} (not in WebCrypto): OpenSSL verifies ours, DER and P1363`, async () => {
        const pair = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve, privateAttributes: { sign: true }, publicAttributes: { verify: true } });
        const spki = (await f.m.ok({ op: 'exportKey', session: f.alice, handle: pair.publicHandle, format: 'spki' })).keyData as Uint8Array;
        const key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
        const data = rand(33);
        for (const format of ['der', 'p1363'] as const) {
          const sig = (await f.m.ok({ op: 'sign', session: f.alice, handle: pair.privateHandle, mechanism: { name: 'ecdsa', hash: 'sha256', signatureFormat: format }, data })).signature;
          expect(nodeVerify('sha256', data, { key, dsaEncoding: format === 'der' ? 'der' : 'ieee-p1363' }, sig)).to.equal(true);
        }
      });
    }

    /** An ECDSA P-256 pair of alice's: `sign` makes a signature of `data`, `verifies` checks one with node:crypto. */
    async function ecdsaSigner() {
      const pair = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp256r1', privateAttributes: { sign: true }, publicAttributes: { verify: true } });
      const spki = (await f.m.ok({ op: 'exportKey', session: f.alice, handle: pair.publicHandle, format: 'spki' })).keyData as Uint8Array;
      const key = { key: createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }), dsaEncoding: 'ieee-p1363' } as const;
      const data = rand(32);
      return {
        sign: () => f.m.ok({ op: 'sign', session: f.alice, handle: pair.privateHandle, mechanism: { name: 'ecdsa', hash: 'sha256' }, data }),
        verifies: (signature: Uint8Array) => nodeVerify('sha256', data, key, signature),
      };
    }

    it('signatures awaited one after another let timers and I/O run between them; many at once all verify too', async () => {
      const { sign, verifies } = await ecdsaSigner();
      // Counts turns of the event loop while 20 signatures are awaited one by one (each is made
      // on the member's thread, not the pool, but answered in a later turn).
      const counter = turnCounter();
      for (let i = 0; i < 20; i++) expect(verifies((await sign()).signature)).to.equal(true);
      counter.stop();
      expect(counter.turns()).to.be.at.least(20);
      const many = await Promise.all(Array.from({ length: 16 }, sign));
      for (const { signature } of many) expect(verifies(signature)).to.equal(true);
    });

    it('with several callers, one signature a turn is made on the member\'s thread and the rest on the pool, never more', async () => {
      const { sign, verifies } = await ecdsaSigner();
      const before = poolUse();
      const counter = turnCounter();
      const signatures = (await Promise.all(Array.from({ length: 8 }, async () => {
        const mine: Uint8Array[] = [];
        for (let i = 0; i < 12; i++) mine.push((await sign()).signature);
        return mine;
      }))).flat();
      counter.stop();
      const after = poolUse();
      for (const signature of signatures) expect(verifies(signature)).to.equal(true);
      const here = after.here - before.here;
      expect(here + after.pool - before.pool).to.equal(96);
      // This thread signs beside the pool (it used to leave everything to the pool as soon as one
      // signature was there), and at most once a turn of the event loop.
      expect(here).to.be.at.least(12);
      expect(after.pool - before.pool).to.be.at.least(12);
      expect(here).to.be.at.most(counter.turns() + 1);
    });

    it('while 16 of the thread\'s operations are out, a signature goes to the pool even when it is alone in its turn; once they are back, it is made here again', async () => {
      const big = await importPair(rsaPkcs8(3072), 'rsa');
      const { sign, verifies } = await ecdsaSigner();
      const message = rand(100);
      // 28 RSA-3072 signatures (about 1.5 ms each, four at a time on the pool) stay out for several milliseconds.
      const rsa = Promise.all(Array.from({ length: 28 }, () => f.m.ok({ op: 'sign', session: f.alice, handle: big.privateHandle, mechanism: { name: 'rsa-pkcs', hash: 'sha256' }, data: message })));
      await new Promise((resolve) => setImmediate(resolve));
      const before = poolUse();
      expect(before.out).to.be.at.least(16);
      const busy = await sign();
      const during = poolUse();
      expect([during.here - before.here, during.pool - before.pool]).to.deep.equal([0, 1]);
      expect(verifies(busy.signature)).to.equal(true);
      expect(await rsa).to.have.length(28);
      expect(poolUse().out).to.equal(0);
      const alone = await sign();
      const after = poolUse();
      expect([after.here - during.here, after.pool - during.pool]).to.deep.equal([1, 0]);
      expect(verifies(alone.signature)).to.equal(true);
    });

    it('an operation node:crypto refuses before it reaches the pool is not counted as out afterwards', async () => {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const data = rand(32);
      // The first of a turn is made here; the second goes to the pool, where node:crypto refuses its digest at once.
      const made = signAsync('sha256', data, privateKey);
      const refused = signAsync('sha999', data, privateKey);
      expect(poolUse().out).to.equal(0);
      expect((await rejection(refused)) as Error & { code?: string }).to.have.property('code', 'ERR_CRYPTO_INVALID_DIGEST');
      expect((await made).length).to.be.greaterThan(0);
    });

    it('RSA over a digest the caller made (PKCS #1 v1.5, PSS) and raw PKCS #1 v1.5, several at once: signed off the member\'s thread, each verifying', async () => {
      const pair = await importPair(rsaPkcs8(2048), 'rsa');
      const key = createPublicKey({ key: Buffer.from(pair.spki), format: 'der', type: 'spki' });
      const message = rand(100);
      const digest = createHash('sha256').update(message).digest();
      const before = poolUse();
      const laterBefore = answersInLaterTurns();
      // Issued together: on the member's thread they would be made one after another in this turn.
      const [pkcs1, pss, raw] = await Promise.all(
        [{ name: 'rsa-pkcs', hash: 'sha256', prehashed: true }, { name: 'rsa-pkcs-pss', hash: 'sha256', saltLength: 32, prehashed: true }, { name: 'rsa-pkcs-raw' }].map(
          async (mechanism) => (await f.m.ok({ op: 'sign', session: f.alice, handle: pair.privateHandle, mechanism: mechanism as never, data: mechanism.name === 'rsa-pkcs-raw' ? message : digest })).signature,
        ),
      );
      const after = poolUse();
      // At most the first is made on the member's thread (one a turn, none while others are out).
      expect(after.here - before.here + after.pool - before.pool).to.equal(3);
      expect(after.pool - before.pool).to.be.at.least(2);
      // Each was answered in a later turn than its request, from an RSA thread or made here and
      // given in the next turn, and is counted so (the in-process transport gives such an answer
      // at once, starting no turn's budget).
      expect(answersInLaterTurns() - laterBefore).to.equal(3);
      expect(nodeVerify('sha256', message, { key, padding: constants.RSA_PKCS1_PADDING }, pkcs1!)).to.equal(true);
      expect(nodeVerify('sha256', message, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, pss!)).to.equal(true);
      expect(Buffer.from(publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, raw!))).to.deep.equal(Buffer.from(message));
    });

    it('an RSA signature alone is made on the member\'s thread when its key has at most 2048 bits; a bigger key, or one while another is out, goes off it', async () => {
      const small = await importPair(rsaPkcs8(2048), 'rsa');
      const big = await importPair(rsaPkcs8(3072), 'rsa');
      const message = rand(100);
      const digest = createHash('sha256').update(message).digest();
      const sign = async (pair: typeof small, mechanism: Record<string, unknown>, data: Uint8Array) => {
        const before = poolUse();
        const { signature } = await f.m.ok({ op: 'sign', session: f.alice, handle: pair.privateHandle, mechanism: mechanism as never, data });
        const after = poolUse();
        const key = createPublicKey({ key: Buffer.from(pair.spki), format: 'der', type: 'spki' });
        expect(nodeVerify('sha256', message, { key, padding: constants.RSA_PKCS1_PADDING }, signature)).to.equal(true);
        return [after.here - before.here, after.pool - before.pool];
      };
      const pkcs1 = { name: 'rsa-pkcs', hash: 'sha256' };
      const overDigest = { name: 'rsa-pkcs', hash: 'sha256', prehashed: true };
      // [made here, sent off the thread]
      expect(await sign(small, pkcs1, message)).to.deep.equal([1, 0]);
      expect(await sign(small, overDigest, digest)).to.deep.equal([1, 0]);
      // RSA-3072 takes about 1.5 ms: more than this thread is ever held up for.
      expect(await sign(big, pkcs1, message)).to.deep.equal([0, 1]);
      expect(await sign(big, overDigest, digest)).to.deep.equal([0, 1]);
      // While an RSA-3072 signature is out, an RSA-2048 one is not made here either.
      const before = poolUse();
      const both = await Promise.all([big, small].map((pair) => f.m.ok({ op: 'sign', session: f.alice, handle: pair.privateHandle, mechanism: pkcs1 as never, data: message })));
      const after = poolUse();
      expect([after.here - before.here, after.pool - before.pool]).to.deep.equal([0, 2]);
      expect(both).to.have.length(2);
    });

    it('while 16 of the thread\'s operations are out, one RSA-2048 private-key operation a turn is made on the member\'s thread (RSA-3072 never), signing and decrypting as on the pool', async () => {
      const small = await importPair(rsaPkcs8(2048), 'rsa');
      const big = await importPair(rsaPkcs8(3072), 'rsa');
      const key = createPublicKey({ key: Buffer.from(small.spki), format: 'der', type: 'spki' });
      const message = rand(100);
      const pkcs1 = { name: 'rsa-pkcs', hash: 'sha256' } as const;
      const signWith = (pair: typeof small) => f.m.ok({ op: 'sign', session: f.alice, handle: pair.privateHandle, mechanism: pkcs1, data: message });
      // 32 callers, three RSA-2048 signatures each: from the second turn on, more than 16 are out.
      let before = poolUse();
      const counter = turnCounter();
      const signatures = (await Promise.all(Array.from({ length: 32 }, async () => {
        const mine: Uint8Array[] = [];
        for (let i = 0; i < 3; i++) mine.push((await signWith(small)).signature);
        return mine;
      }))).flat();
      counter.stop();
      let after = poolUse();
      for (const signature of signatures) expect(nodeVerify('sha256', message, { key, padding: constants.RSA_PKCS1_PADDING }, signature)).to.equal(true);
      const here = after.here - before.here;
      expect(here + after.pool - before.pool).to.equal(96);
      // Before, only the first (alone) was made here: once another RSA operation was out, all went to the pool.
      expect(here).to.be.at.least(4);
      expect(here).to.be.at.most(counter.turns() + 1);
      // RSA-3072 (about 1.5 ms) never, however many are out; 64 of them stay out for tens of milliseconds.
      before = poolUse();
      const bigOnes = Promise.all(Array.from({ length: 64 }, () => signWith(big)));
      await new Promise((resolve) => setImmediate(resolve));
      const during = poolUse();
      expect([during.here - before.here, during.pool - before.pool]).to.deep.equal([0, 64]);
      // While they are out, an RSA-2048 signature and an RSA-OAEP decryption, each alone in its turn, are made here.
      expect(during.out).to.be.at.least(16);
      const lone = await signWith(small);
      after = poolUse();
      expect([after.here - during.here, after.pool - during.pool]).to.deep.equal([1, 0]);
      expect(nodeVerify('sha256', message, { key, padding: constants.RSA_PKCS1_PADDING }, lone.signature)).to.equal(true);
      const secret = rand(32);
      const sealed = publicEncrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, secret);
      const beforeDecrypt = poolUse();
      expect(beforeDecrypt.out).to.be.at.least(16);
      const opened = await f.m.ok({ op: 'decrypt', session: f.alice, handle: small.privateHandle, mechanism: { name: 'rsa-oaep', hash: 'sha256' }, data: sealed });
      const afterDecrypt = poolUse();
      expect([afterDecrypt.here - beforeDecrypt.here, afterDecrypt.pool - beforeDecrypt.pool]).to.deep.equal([1, 0]);
      expect(hex(opened.data)).to.equal(hex(secret));
      expect(await bigOnes).to.have.length(64);
      expect(poolUse().out).to.equal(0);
    });

    it('what goes to an RSA thread carries only its own bytes, never the rest of a buffer it is a view of (Node\'s 8 KiB pool)', async () => {
      const pair = await importPair(rsaPkcs8(2048), 'rsa');
      const digest = createHash('sha256').update('pooled').digest();
      const posted: { data: Uint8Array }[] = [];
      const post = Worker.prototype.postMessage;
      Worker.prototype.postMessage = function (this: Worker, message: unknown, ...rest: never[]) {
        if (message && typeof message === 'object' && 'decrypt' in message) posted.push(message as unknown as { data: Uint8Array });
        return post.call(this, message, ...rest);
      };
      try {
        // The DigestInfo of a CKM_RSA_PKCS signature is a small Buffer.concat: a view into the pool.
        await Promise.all(Array.from({ length: 3 }, () => f.m.ok({ op: 'sign', session: f.alice, handle: pair.privateHandle, mechanism: { name: 'rsa-pkcs', hash: 'sha256', prehashed: true }, data: digest })));
      } finally {
        Worker.prototype.postMessage = post;
      }
      expect(posted.length).to.be.at.least(2);
      for (const { data } of posted) expect([data.byteLength, data.buffer.byteLength]).to.deep.equal([51, 51]);
    });

    it('RSA decryption (RSA-OAEP, PKCS #1 v1.5), several at once: made off the member\'s thread, each right, a forged one refused as on the thread', async () => {
      const pair = await importPair(rsaPkcs8(2048), 'rsa');
      const key = createPublicKey({ key: Buffer.from(pair.spki), format: 'der', type: 'spki' });
      const label = rand(8);
      const plain = Array.from({ length: 4 }, () => rand(32));
      const oaep = { name: 'rsa-oaep', hash: 'sha256', label } as const;
      const sealed = plain.map((p, i) => (i % 2 ? publicEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, p) : publicEncrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: label }, p)));
      const before = poolUse();
      const opened = await Promise.all(sealed.map(async (data, i) => (await f.m.ok({ op: 'decrypt', session: f.alice, handle: pair.privateHandle, mechanism: i % 2 ? { name: 'rsa-pkcs' } : oaep, data })).data));
      const after = poolUse();
      expect(after.here - before.here + after.pool - before.pool).to.equal(4);
      expect(after.pool - before.pool).to.be.at.least(3);
      expect(opened.map(hex)).to.deep.equal(plain.map(hex));
      // Refusals read as they do on the member's thread, several at once too.
      const refused = await Promise.all([oaep, { name: 'rsa-pkcs' } as const].map((mechanism) => f.m.fail({ op: 'decrypt', session: f.alice, handle: pair.privateHandle, mechanism, data: rand(256) }, 'DECRYPTION_FAILED')));
      expect(refused.map((e) => e.message)).to.deep.equal(['RSA-OAEP: the ciphertext was not made with this key and these parameters', 'RSA PKCS #1 v1.5: the ciphertext was not made with this key and these parameters']);
    });

    it('Ed25519: byte-identical to WebCrypto, verified both ways', async () => {
      const theirs = (await subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
      const pkcs8 = u8(await subtle.exportKey('pkcs8', theirs.privateKey));
      const pair = await importPair(pkcs8, 'ed25519');
      const data = rand(70);
      const ours = (await f.m.ok({ op: 'sign', session: f.alice, handle: pair.privateHandle, mechanism: { name: 'ed25519' }, data })).signature;
      expect(hex(ours)).to.equal(hex(u8(await subtle.sign('Ed25519', theirs.privateKey, data))));
      expect(await subtle.verify('Ed25519', theirs.publicKey, ours, data)).to.equal(true);
      expect((await f.m.ok({ op: 'verify', session: f.alice, handle: pair.publicHandle, mechanism: { name: 'ed25519' }, data, signature: ours })).valid).to.equal(true);
      ours[0]! ^= 1;
      expect((await f.m.ok({ op: 'verify', session: f.alice, handle: pair.publicHandle, mechanism: { name: 'ed25519' }, data, signature: ours })).valid).to.equal(false);
    });
  });

  describe('key agreement', () => {
    for (const [curve, webCurve] of [
      ['secp256r1', 'P-256'],
      ['secp384r1', 'P-384'],
      ['secp521r1', 'P-521'],
    ] as const) {
      it(`ECDH on ${curve}: the same secret as WebCrypto, by handle or by SPKI, whole or truncated`, async () => {
        const ours = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve, privateAttributes: { derive: true } });
        const ourSpki = (await f.m.ok({ op: 'exportKey', session: f.alice, handle: ours.publicHandle, format: 'spki' })).keyData as Uint8Array;
        const theirs = (await subtle.generateKey({ name: 'ECDH', namedCurve: webCurve }, true, ['deriveBits'])) as webcrypto.CryptoKeyPair;
        const theirSpki = u8(await subtle.exportKey('spki', theirs.publicKey));
        const theirHandle = (await f.m.ok({ op: 'importKey', session: f.alice, keyClass: 'public-key', keyType: 'ec', format: 'spki', keyData: theirSpki })).handle;
        const ourPublicForThem = await subtle.importKey('spki', ourSpki, { name: 'ECDH', namedCurve: webCurve }, false, []);
        const expected = u8(await subtle.deriveBits({ name: 'ECDH', public: ourPublicForThem }, theirs.privateKey, null as unknown as number));
        const byHandle = await f.m.ok({ op: 'deriveBits', session: f.alice, baseHandle: ours.privateHandle, mechanism: { name: 'ecdh', publicHandle: theirHandle } });
        expect(hex(byHandle.bits)).to.equal(hex(expected));
        const bySpki = await f.m.ok({ op: 'deriveBits', session: f.alice, baseHandle: ours.privateHandle, mechanism: { name: 'ecdh', publicKey: theirSpki }, lengthBits: 130 });
        const truncated = u8(await subtle.deriveBits({ name: 'ECDH', public: ourPublicForThem }, theirs.privateKey, 130));
        expect(hex(bySpki.bits)).to.equal(hex(truncated));
      });
    }

    it('X25519: the same secret as WebCrypto', async () => {
      const theirs = (await subtle.generateKey({ name: 'X25519' }, true, ['deriveBits'])) as webcrypto.CryptoKeyPair;
      const mine = (await subtle.generateKey({ name: 'X25519' }, true, ['deriveBits'])) as webcrypto.CryptoKeyPair;
      const pair = await importPair(u8(await subtle.exportKey('pkcs8', mine.privateKey)), 'x25519');
      const theirRaw = u8(await subtle.exportKey('raw', theirs.publicKey));
      const theirHandle = (await f.m.ok({ op: 'importKey', session: f.alice, keyClass: 'public-key', keyType: 'x25519', format: 'raw', keyData: theirRaw })).handle;
      const expected = u8(await subtle.deriveBits({ name: 'X25519', public: mine.publicKey }, theirs.privateKey, 256));
      const ours = await f.m.ok({ op: 'deriveBits', session: f.alice, baseHandle: pair.privateHandle, mechanism: { name: 'ecdh', publicHandle: theirHandle }, lengthBits: 256 });
      expect(hex(ours.bits)).to.equal(hex(expected));
    });

    it('ECDH with the X9.63 KDF (CKD_CLOUDHSM_X963_SHA256_KDF) hashes secret ‖ counter ‖ shared info', async () => {
      const ours = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp256r1', privateAttributes: { derive: true } });
      const peer = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp256r1' });
      const z = (await f.m.ok({ op: 'deriveBits', session: f.alice, baseHandle: ours.privateHandle, mechanism: { name: 'ecdh', publicHandle: peer.publicHandle } })).bits;
      const info = bytes('a1b2c3');
      const expected = Buffer.concat(
        [1, 2].map((i) => createHash('sha256').update(Buffer.concat([z, Buffer.from([0, 0, 0, i]), info])).digest()),
      ).subarray(0, 40);
      const derived = await f.m.ok({ op: 'deriveBits', session: f.alice, baseHandle: ours.privateHandle, mechanism: { name: 'ecdh', publicHandle: peer.publicHandle, kdf: 'x963-sha256', sharedInfo: info }, lengthBits: 320 });
      expect(hex(derived.bits)).to.equal(hex(expected));
    });

    it('refuses a peer on another curve', async () => {
      const ours = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp256r1', privateAttributes: { derive: true } });
      const peer = await f.m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp384r1' });
      await f.m.fail({ op: 'deriveBits', session: f.alice, baseHandle: ours.privateHandle, mechanism: { name: 'ecdh', publicHandle: peer.publicHandle } }, 'KEY_TYPE_INCONSISTENT');
    });
  });

  describe('HMAC, digests, KDFs, random', () => {
    for (const hash of WEB_HASHES) {
      it(`HMAC-${hash} is byte-identical to WebCrypto; verify accepts it and rejects a changed tag`, async () => {
        const raw = rand(48);
        const handle = await importSecret(raw, 'generic-secret');
        const web = await subtle.importKey('raw', raw, { name: 'HMAC', hash: WEB_HASH[hash] }, false, ['sign']);
        const data = rand(1000);
        const tag = (await f.m.ok({ op: 'sign', session: f.alice, handle, mechanism: { name: 'hmac', hash }, data })).signature;
        expect(hex(tag)).to.equal(hex(u8(await subtle.sign('HMAC', web, data))));
        expect((await f.m.ok({ op: 'verify', session: f.alice, handle, mechanism: { name: 'hmac', hash }, data, signature: tag })).valid).to.equal(true);
        tag[5]! ^= 4;
        expect((await f.m.ok({ op: 'verify', session: f.alice, handle, mechanism: { name: 'hmac', hash }, data, signature: tag })).valid).to.equal(false);
      });

      it(`SHA digest ${hash} is WebCrypto's`, async () => {
        const data = rand(300);
        expect(hex((await f.m.ok({ op: 'digest', session: f.alice, hash, data })).digest)).to.equal(hex(u8(await subtle.digest(WEB_HASH[hash], data))));
      });
    }

    it('HMAC and digest with SHA-224 (not in WebCrypto) match OpenSSL', async () => {
      const raw = rand(20);
      const handle = await importSecret(raw, 'generic-secret');
      const data = rand(10);
      expect(hex((await f.m.ok({ op: 'sign', session: f.alice, handle, mechanism: { name: 'hmac', hash: 'sha224' }, data })).signature)).to.equal(
        createHmac('sha224', raw).update(data).digest('hex'),
      );
      expect(hex((await f.m.ok({ op: 'digest', session: f.alice, hash: 'sha224', data })).digest)).to.equal(createHash('sha224').update(data).digest('hex'));
    });

    it('HKDF bits and HKDF-derived AES keys are what WebCrypto derives', async () => {
      const ikm = rand(32);
      const salt = rand(16);
      const info = bytes('696e666f');
      const handle = await importSecret(ikm, 'generic-secret');
      const web = await subtle.importKey('raw', ikm, 'HKDF', false, ['deriveBits', 'deriveKey']);
      const params = { name: 'HKDF', hash: 'SHA-384', salt, info };
      const bits = await f.m.ok({ op: 'deriveBits', session: f.alice, baseHandle: handle, mechanism: { name: 'hkdf', hash: 'sha384', salt, info }, lengthBits: 424 });
      expect(hex(bits.bits)).to.equal(hex(u8(await subtle.deriveBits(params, web, 424))));
      const derived = await f.m.ok({ op: 'deriveKey', session: f.alice, baseHandle: handle, mechanism: { name: 'hkdf', hash: 'sha384', salt, info }, keyType: 'aes', lengthBytes: 16, attributes: { encrypt: true } });
      const webKey = await subtle.deriveKey(params, web, { name: 'AES-GCM', length: 128 }, false, ['encrypt']);
      const iv = rand(12);
      const ours = await f.m.ok({ op: 'encrypt', session: f.alice, handle: derived.handle, mechanism: { name: 'aes-gcm', iv }, data: bytes('00') });
      expect(hex(ours.data)).to.equal(hex(u8(await subtle.encrypt({ name: 'AES-GCM', iv }, webKey, bytes('00')))));
      await f.m.fail({ op: 'deriveBits', session: f.alice, baseHandle: handle, mechanism: { name: 'hkdf', hash: 'sha384', salt, info }, lengthBits: 12 }, 'DATA_INVALID');
    });

    it('PBKDF2 is what WebCrypto derives', async () => {
      const password = new TextEncoder().encode('correct horse battery staple');
      const salt = rand(16);
      const handle = await importSecret(password, 'generic-secret');
      const web = await subtle.importKey('raw', password, 'PBKDF2', false, ['deriveBits']);
      for (const hash of WEB_HASHES) {
        const ours = await f.m.ok({ op: 'deriveBits', session: f.alice, baseHandle: handle, mechanism: { name: 'pbkdf2', hash, salt, iterations: 1000 }, lengthBits: 256 });
        expect(hex(ours.bits)).to.equal(hex(u8(await subtle.deriveBits({ name: 'PBKDF2', hash: WEB_HASH[hash], salt, iterations: 1000 }, web, 256))));
      }
    });

    it('the SP 800-108 counter KDF with HMAC and with CMAC frames its PRF input as the standard says', async () => {
      const raw = rand(32);
      const label = bytes('4c4142454c');
      const context = bytes('c0ffee');
      const input = (i: number, bits: number) => Buffer.concat([Buffer.from([0, 0, 0, i]), label, Buffer.from([0]), context, Buffer.from([0, 0, bits >> 8, bits & 0xff])]);
      const generic = await importSecret(raw, 'generic-secret');
      const viaHmac = await f.m.ok({ op: 'deriveBits', session: f.alice, baseHandle: generic, mechanism: { name: 'sp800-108-counter', prf: 'hmac-sha256', label, context }, lengthBits: 384 });
      const expectedHmac = Buffer.concat([createHmac('sha256', raw).update(input(1, 384)).digest(), createHmac('sha256', raw).update(input(2, 384)).digest()]).subarray(0, 48);
      expect(hex(viaHmac.bits)).to.equal(hex(expectedHmac));
      const aes = await importSecret(raw);
      const viaCmac = await f.m.ok({ op: 'deriveBits', session: f.alice, baseHandle: aes, mechanism: { name: 'sp800-108-counter', prf: 'cmac', label, context }, lengthBits: 256 });
      const cmacOf = async (data: Buffer) => (await f.m.ok({ op: 'sign', session: f.alice, handle: aes, mechanism: { name: 'cmac' }, data })).signature;
      expect(hex(viaCmac.bits)).to.equal(hex(Buffer.concat([await cmacOf(input(1, 256)), await cmacOf(input(2, 256))])));
      await f.m.fail({ op: 'deriveBits', session: f.alice, baseHandle: generic, mechanism: { name: 'sp800-108-counter', prf: 'cmac', label, context }, lengthBits: 128 }, 'KEY_TYPE_INCONSISTENT');
    });

    it('random bytes: the length asked for, and different every time', async () => {
      const a = (await f.m.ok({ op: 'generateRandom', session: f.alice, length: 64 })).data;
      const b = (await f.m.ok({ op: 'generateRandom', session: f.alice, length: 64 })).data;
      expect(a).to.have.length(64);
      expect(hex(a)).to.not.equal(hex(b));
    });
  });

  describe('import and export formats', () => {
    it('pkcs8, spki and jwk round-trip byte for byte; raw EC points may be compressed on import', async () => {
      const theirs = (await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
      const pkcs8 = u8(await subtle.exportKey('pkcs8', theirs.privateKey));
      const spki = u8(await subtle.exportKey('spki', theirs.publicKey));
      const jwk = await subtle.exportKey('jwk', theirs.privateKey);
      const raw = u8(await subtle.exportKey('raw', theirs.publicKey));
      const pair = await importPair(pkcs8, 'ec');
      const out = async (handle: number, format: 'pkcs8' | 'spki' | 'jwk' | 'raw') => (await f.m.ok({ op: 'exportKey', session: f.alice, handle, format })).keyData;
      expect(hex((await out(pair.privateHandle, 'pkcs8')) as Uint8Array)).to.equal(hex(pkcs8));
      expect(hex((await out(pair.publicHandle, 'spki')) as Uint8Array)).to.equal(hex(spki));
      expect(hex((await out(pair.publicHandle, 'raw')) as Uint8Array)).to.equal(hex(raw));
      expect(await out(pair.privateHandle, 'jwk')).to.deep.include({ kty: 'EC', crv: 'P-256', d: jwk.d, x: jwk.x, y: jwk.y });
      const compressed = Buffer.concat([Buffer.from([2 + (raw[64]! & 1)]), raw.subarray(1, 33)]);
      const fromCompressed = (await f.m.ok({ op: 'importKey', session: f.alice, keyClass: 'public-key', keyType: 'ec', format: 'raw', keyData: compressed, curve: 'secp256r1' })).handle;
      expect(hex((await out(fromCompressed, 'raw')) as Uint8Array)).to.equal(hex(raw));
      const fromJwk = (await f.m.ok({ op: 'importKey', session: f.alice, keyClass: 'private-key', keyType: 'ec', format: 'jwk', keyData: jwk as never, attributes: { sign: true, sensitive: false } })).handle;
      expect(hex((await out(fromJwk, 'pkcs8')) as Uint8Array)).to.equal(hex(pkcs8));
    });

    it('EC public keys on every curve (secp224r1 too, which JWK does not name) import from SPKI, compressed or not, and export uncompressed', async () => {
      const tlv = (tag: number, body: Buffer) =>
        Buffer.concat([Buffer.from([tag]), Buffer.from(body.length < 0x80 ? [body.length] : body.length < 0x100 ? [0x81, body.length] : [0x82, body.length >> 8, body.length & 0xff]), body]);
      for (const curve of ['secp224r1', 'secp256k1', 'secp521r1'] as const) {
        const { publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
        const spki = publicKey.export({ format: 'der', type: 'spki' });
        const algAt = spki[1]! & 0x80 ? 2 + (spki[1]! & 0x7f) : 2;
        const algorithm = spki.subarray(algAt, algAt + 2 + spki[algAt + 1]!);
        const uncompressed = spki.subarray(algAt + algorithm.length + 3 + (spki[algAt + algorithm.length + 1]! & 0x80 ? spki[algAt + algorithm.length + 1]! & 0x7f : 0));
        const point = ECDH.convertKey(uncompressed, curve, undefined, undefined, 'compressed') as Buffer;
        const compressedSpki = tlv(0x30, Buffer.concat([algorithm, tlv(0x03, Buffer.concat([Buffer.from([0]), point]))]));
        for (const keyData of [spki, compressedSpki]) {
          const { handle } = await f.m.ok({ op: 'importKey', session: f.alice, keyClass: 'public-key', keyType: 'ec', format: 'spki', keyData: new Uint8Array(keyData) });
          const out = (await f.m.ok({ op: 'exportKey', session: f.alice, handle, format: 'spki' })).keyData as Uint8Array;
          expect(hex(out), curve).to.equal(hex(spki));
        }
      }
    });

    it('refuses key data that is not the declared type, class or curve', async () => {
      const ec = (await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign'])) as webcrypto.CryptoKeyPair;
      const pkcs8 = u8(await subtle.exportKey('pkcs8', ec.privateKey));
      await f.m.fail({ op: 'importKey', session: f.alice, keyClass: 'private-key', keyType: 'rsa', format: 'pkcs8', keyData: pkcs8 }, 'KEY_TYPE_INCONSISTENT');
      await f.m.fail({ op: 'importKey', session: f.alice, keyClass: 'private-key', keyType: 'ec', format: 'pkcs8', keyData: pkcs8, curve: 'secp256r1' }, 'KEY_TYPE_INCONSISTENT');
      await f.m.fail({ op: 'importKey', session: f.alice, keyClass: 'public-key', keyType: 'ec', format: 'spki', keyData: pkcs8 }, 'KEY_DATA_INVALID');
      await f.m.fail({ op: 'importKey', session: f.alice, keyClass: 'secret-key', keyType: 'aes', format: 'raw', keyData: rand(17) }, 'KEY_SIZE_INVALID');
      await f.m.fail({ op: 'importKey', session: f.alice, keyClass: 'secret-key', keyType: 'ec', format: 'raw', keyData: rand(16) }, 'KEY_TYPE_INCONSISTENT');
      await f.m.fail({ op: 'importKey', session: f.alice, keyClass: 'public-key', keyType: 'ec', format: 'raw', keyData: rand(65), curve: 'secp256r1' }, 'KEY_DATA_INVALID');
      const e = await f.m.fail({ op: 'importKey', session: f.alice, keyClass: 'private-key', keyType: 'ec', format: 'jwk', keyData: { kty: 'RSA', n: 'AQAB', e: 'AQAB' } }, 'KEY_DATA_INVALID');
      expect(e.message).to.equal('keyData.kty: an ec JWK has kty "EC", not "RSA"');
    });

    it('signs with a private key imported from OpenSSL and verifies with OpenSSL', async () => {
      const pkcs8 = rsaPkcs8(2048, 2);
      const pair = await importPair(pkcs8, 'rsa');
      const data = rand(10);
      const sig = (await f.m.ok({ op: 'sign', session: f.alice, handle: pair.privateHandle, mechanism: { name: 'rsa-pkcs', hash: 'sha256' }, data })).signature;
      expect(hex(sig)).to.equal(hex(nodeSign('sha256', data, createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }))));
    });
  });
});
