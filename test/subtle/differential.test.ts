/**
 * Differential tests of the WebCrypto door against Node's native crypto.webcrypto: for every
 * algorithm and method, what the HSM produces verifies or decrypts natively and the other way
 * round, and deterministic results (digests, MACs, RSASSA-PKCS1-v1_5, Ed25519, key agreement,
 * HKDF, PBKDF2, AES with a fixed IV, key wrapping, key export) are byte-identical. K-256, which
 * Node's WebCrypto lacks, is compared with @peculiar/webcrypto.
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { Crypto as PeculiarCrypto } from '@peculiar/webcrypto';
import { expect } from 'chai';
import { rsaPkcs8 } from '../helpers/keys.js';
import { buf, native, openDoor, text, type CryptoKey, type CryptoKeyPair, type DoorFixture, type SubtleCrypto } from '../helpers/door.js';
import type { JsonWebKey, KeyUsage } from '../../src/subtle/types.js';

let f: DoorFixture;
let ours: SubtleCrypto;
before(async () => {
  f = await openDoor();
  ours = f.subtle;
});
after(() => f.close());

const MESSAGE = text('the quick brown fox jumps over the lazy dog, twice: the quick brown fox');
const hex = (b: ArrayBuffer) => buf(b).toString('hex');

/** Generates a secret key at the door (extractable) and the same key natively. */
async function twinSecret(algorithm: Record<string, unknown>, usages: KeyUsage[]): Promise<{ hsm: CryptoKey; node: CryptoKey }> {
  const hsm = (await ours.generateKey(algorithm as never, true, usages)) as unknown as CryptoKey;
  const raw = await ours.exportKey('raw', hsm);
  const node = await native.importKey('raw', raw, algorithm as never, true, usages);
  return { hsm, node };
}

describe('subtle: differential against Node WebCrypto', function () {
  this.timeout(60_000);

  describe('AES', () => {
    const cases: [string, (iv: Uint8Array) => Record<string, unknown>][] = [
      ['AES-CBC', (iv) => ({ name: 'AES-CBC', iv: iv.subarray(0, 16) })],
      ['AES-CTR', (iv) => ({ name: 'AES-CTR', counter: iv.subarray(0, 16), length: 64 })],
      ['AES-GCM', (iv) => ({ name: 'AES-GCM', iv: iv.subarray(0, 12), additionalData: text('header') })],
      ['AES-GCM (96-bit tag)', (iv) => ({ name: 'AES-GCM', iv: iv.subarray(0, 12), tagLength: 96 })],
    ];
    for (const [label, params] of cases) {
      for (const length of [128, 192, 256]) {
        it(`${label} ${length}: identical ciphertexts, and each side decrypts the other's`, async () => {
          const name = params(new Uint8Array(16)).name as string;
          const { hsm, node } = await twinSecret({ name, length }, ['encrypt', 'decrypt']);
          const p = params(randomBytes(16));
          const a = await ours.encrypt(p as never, hsm, MESSAGE);
          const b = await native.encrypt(p as never, node, MESSAGE);
          expect(hex(a)).to.equal(hex(b));
          expect(buf(await native.decrypt(p as never, node, a)).equals(buf(MESSAGE))).to.equal(true);
          expect(buf(await ours.decrypt(p as never, hsm, b)).equals(buf(MESSAGE))).to.equal(true);
        });
      }
    }

    it('a key generated natively and imported as JWK encrypts identically', async () => {
      const node = (await native.generateKey({ name: 'AES-GCM', length: 256 }, true, ['encrypt', 'decrypt'])) as CryptoKey;
      const jwk = await native.exportKey('jwk', node);
      const hsm = await ours.importKey('jwk', jwk, 'AES-GCM', true, ['encrypt', 'decrypt']);
      const p = { name: 'AES-GCM', iv: new Uint8Array(12).fill(7) };
      expect(hex(await ours.encrypt(p, hsm, MESSAGE))).to.equal(hex(await native.encrypt(p, node, MESSAGE)));
      expect(await ours.exportKey('jwk', hsm)).to.deep.equal(await native.exportKey('jwk', await native.importKey('jwk', jwk, 'AES-GCM', true, ['encrypt', 'decrypt'])));
    });

    it('AES-KW: wrapKey is byte-identical, and each side unwraps the other', async () => {
      const { hsm: kek, node: nodeKek } = await twinSecret({ name: 'AES-KW', length: 256 }, ['wrapKey', 'unwrapKey']);
      const { hsm: payload, node: nodePayload } = await twinSecret({ name: 'AES-CBC', length: 192 }, ['encrypt']);
      const a = await ours.wrapKey('raw', payload, kek, 'AES-KW');
      const b = await native.wrapKey('raw', nodePayload, nodeKek, 'AES-KW');
      expect(hex(a)).to.equal(hex(b));
      const back = await ours.unwrapKey('raw', b, kek, 'AES-KW', 'AES-CBC', true, ['encrypt']);
      expect(back.algorithm).to.deep.equal({ name: 'AES-CBC', length: 192 });
      expect(hex(await ours.exportKey('raw', back))).to.equal(hex(await native.exportKey('raw', nodePayload)));
    });

    it('wrapKey as JWK under AES-GCM: Node unwraps what the HSM wrapped and gets the same key', async () => {
      const { hsm: kek, node: nodeKek } = await twinSecret({ name: 'AES-GCM', length: 256 }, ['wrapKey', 'unwrapKey']);
      const hmac = (await ours.generateKey({ name: 'HMAC', hash: 'SHA-384' }, true, ['sign', 'verify'])) as CryptoKey;
      const p = { name: 'AES-GCM', iv: new Uint8Array(12).fill(1) };
      const wrapped = await ours.wrapKey('jwk', hmac, kek, p);
      const unwrapped = await native.unwrapKey('jwk', wrapped, nodeKek, p, { name: 'HMAC', hash: 'SHA-384' }, true, ['sign', 'verify']);
      expect(await native.exportKey('jwk', unwrapped)).to.deep.equal(await ours.exportKey('jwk', hmac));
      const nativeWrapped = await native.wrapKey('jwk', unwrapped, nodeKek, p);
      expect(hex(nativeWrapped)).to.equal(hex(wrapped));
    });
  });

  describe('the HSM extras (CLOUDHSM-AES-ECB, CLOUDHSM-AES-CMAC, CLOUDHSM-AES-KWP, CLOUDHSM-AES-KW-PKCS5)', () => {
    const h = (x: string) => Buffer.from(x.replace(/\s/g, ''), 'hex');

    it('CLOUDHSM-AES-ECB encrypts whole blocks as node:crypto aes-128-ecb does, and decrypts them', async () => {
      const raw = randomBytes(16);
      const key = await ours.importKey('raw', raw, 'CLOUDHSM-AES-ECB', false, ['encrypt', 'decrypt']);
      const blocks = randomBytes(48);
      const expected = createCipheriv('aes-128-ecb', raw, null).setAutoPadding(false).update(blocks);
      const ct = await ours.encrypt('CLOUDHSM-AES-ECB', key, blocks);
      expect(buf(ct).equals(expected)).to.equal(true);
      expect(buf(await ours.decrypt('CLOUDHSM-AES-ECB', key, ct)).equals(blocks)).to.equal(true);
    });

    it('CLOUDHSM-AES-CMAC gives the RFC 4493 tags, verifies them, and truncates with length', async () => {
      const key = await ours.importKey('raw', h('2b7e151628aed2a6abf7158809cf4f3c'), 'CLOUDHSM-AES-CMAC', false, ['sign', 'verify']);
      expect(hex(await ours.sign({ name: 'CLOUDHSM-AES-CMAC', length: 128 } as never, key, new Uint8Array(0)))).to.equal('bb1d6929e95937287fa37d129b756746');
      const m = h('6bc1bee22e409f96e93d7e117393172a');
      const tag = await ours.sign({ name: 'CLOUDHSM-AES-CMAC', length: 128 } as never, key, m);
      expect(hex(tag)).to.equal('070a16b46b4d4144f79bdd9dd04a287c');
      expect(await ours.verify({ name: 'CLOUDHSM-AES-CMAC', length: 128 } as never, key, tag, m)).to.equal(true);
      expect(hex(await ours.sign({ name: 'CLOUDHSM-AES-CMAC', length: 64 } as never, key, m))).to.equal('070a16b46b4d4144');
      expect(await ours.verify({ name: 'CLOUDHSM-AES-CMAC', length: 64 } as never, key, h('070a16b46b4d4144'), m)).to.equal(true);
      expect(await ours.verify({ name: 'CLOUDHSM-AES-CMAC', length: 64 } as never, key, h('070a16b46b4d4145'), m)).to.equal(false);
    });

    it('CLOUDHSM-AES-KWP wraps the RFC 5649 examples byte for byte and unwraps them', async () => {
      const kek = await ours.importKey('raw', h('5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8'), 'CLOUDHSM-AES-KWP', false, ['wrapKey', 'unwrapKey']);
      for (const [payload, wrapped] of [
        ['c37b7e6492584340bed12207808941155068f738', '138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a'],
        ['466f7250617369', 'afbeb0f07dfbf5419200f2ccb50bb24f'],
      ]) {
        const key = await ours.importKey('raw', h(payload!), { name: 'HMAC', hash: 'SHA-256' }, true, ['sign']);
        expect(hex(await ours.wrapKey('raw', key, kek, 'CLOUDHSM-AES-KWP'))).to.equal(wrapped);
        const back = await ours.unwrapKey('raw', h(wrapped!), kek, 'CLOUDHSM-AES-KWP', { name: 'HMAC', hash: 'SHA-256' }, true, ['sign']);
        expect(hex(await ours.exportKey('raw', back))).to.equal(payload);
      }
    });

    it('CLOUDHSM-AES-KW-PKCS5 pads with PKCS #5 and wraps with RFC 3394, as node:crypto does by hand', async () => {
      const kekRaw = randomBytes(16);
      const kek = await ours.importKey('raw', kekRaw, 'CLOUDHSM-AES-KW-PKCS5', false, ['wrapKey', 'unwrapKey']);
      const payload = randomBytes(20);
      const key = await ours.importKey('raw', payload, { name: 'HMAC', hash: 'SHA-1' }, true, ['sign']);
      const padded = Buffer.concat([payload, Buffer.alloc(4, 4)]);
      const expected = createCipheriv('id-aes128-wrap', kekRaw, Buffer.from('a6a6a6a6a6a6a6a6', 'hex')).update(padded);
      const wrapped = await ours.wrapKey('raw', key, kek, 'CLOUDHSM-AES-KW-PKCS5');
      expect(buf(wrapped).equals(expected)).to.equal(true);
      const back = await ours.unwrapKey('raw', wrapped, kek, 'CLOUDHSM-AES-KW-PKCS5', { name: 'HMAC', hash: 'SHA-1' }, true, ['sign']);
      expect(buf(await ours.exportKey('raw', back)).equals(payload)).to.equal(true);
    });
  });

  describe('wrapping private and public keys', () => {
    for (const [label, alg, usages, format] of [
      ['an ECDSA private key as pkcs8', { name: 'ECDSA', namedCurve: 'P-384' }, ['sign'], 'pkcs8'],
      ['an ECDSA private key as jwk', { name: 'ECDSA', namedCurve: 'P-256' }, ['sign'], 'jwk'],
      ['an RSA-PSS private key as pkcs8', { name: 'RSA-PSS', hash: 'SHA-256', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]) }, ['sign'], 'pkcs8'],
      ['an Ed25519 private key as jwk', { name: 'Ed25519' }, ['sign'], 'jwk'],
    ] as const) {
      it(`${label}: Node unwraps what the HSM wrapped under AES-GCM and signs with it; the HSM unwraps Node's`, async () => {
        const { hsm: kek, node: nodeKek } = await twinSecret({ name: 'AES-GCM', length: 256 }, ['wrapKey', 'unwrapKey']);
        const p = { name: 'AES-GCM', iv: randomBytes(12) };
        const pair = (await ours.generateKey(alg as never, true, ['sign', 'verify'])) as unknown as CryptoKeyPair;
        const wrapped = await ours.wrapKey(format, pair.privateKey, kek, p);
        const inNode = await native.unwrapKey(format, wrapped, nodeKek, p, alg as never, true, [...usages]);
        const signParams = alg.name === 'ECDSA' ? { name: 'ECDSA', hash: 'SHA-256' } : alg.name === 'RSA-PSS' ? { name: 'RSA-PSS', saltLength: 32 } : { name: alg.name };
        expect(await ours.verify(signParams, pair.publicKey, await native.sign(signParams, inNode, MESSAGE), MESSAGE)).to.equal(true);
        const nodeWrapped = await native.wrapKey(format, inNode, nodeKek, p);
        const back = await ours.unwrapKey(format, nodeWrapped, kek, p, alg as never, false, [...usages]);
        expect(back.type).to.equal('private');
        expect(back.algorithm).to.deep.equal(pair.privateKey.algorithm);
        expect(await ours.verify(signParams, pair.publicKey, await ours.sign(signParams, back, MESSAGE), MESSAGE)).to.equal(true);
      });
    }

    it('a public key wrapped as spki (CLOUDHSM-AES-KWP, for its 91 bytes) unwraps as a public key that verifies', async () => {
      const kek = (await ours.generateKey({ name: 'CLOUDHSM-AES-KWP', length: 128 } as never, false, ['wrapKey', 'unwrapKey'])) as unknown as CryptoKey;
      const pair = (await ours.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])) as unknown as CryptoKeyPair;
      const p = { name: 'ECDSA', hash: 'SHA-256' };
      const wrapped = await ours.wrapKey('spki', pair.publicKey, kek, 'CLOUDHSM-AES-KWP');
      const back = await ours.unwrapKey('spki', wrapped, kek, 'CLOUDHSM-AES-KWP', { name: 'ECDSA', namedCurve: 'P-256' }, true, ['verify']);
      expect(back.type).to.equal('public');
      expect(hex(await ours.exportKey('spki', back))).to.equal(hex(await ours.exportKey('spki', pair.publicKey)));
      expect(await ours.verify(p, back, await ours.sign(p, pair.privateKey, MESSAGE), MESSAGE)).to.equal(true);
    });
  });

  describe('HMAC', () => {
    for (const hash of ['SHA-1', 'SHA-256', 'SHA-384', 'SHA-512']) {
      it(`HMAC ${hash}: identical MACs, each side verifies the other's, and the default length is the hash block`, async () => {
        const { hsm, node } = await twinSecret({ name: 'HMAC', hash }, ['sign', 'verify']);
        expect(hsm.algorithm).to.deep.equal((await native.generateKey({ name: 'HMAC', hash }, true, ['sign'])).algorithm);
        const a = await ours.sign('HMAC', hsm, MESSAGE);
        expect(hex(a)).to.equal(hex(await native.sign('HMAC', node, MESSAGE)));
        expect(await native.verify('HMAC', node, a, MESSAGE)).to.equal(true);
        expect(await ours.verify('HMAC', hsm, a, MESSAGE)).to.equal(true);
        const bad = new Uint8Array(a);
        bad[0]! ^= 1;
        expect(await ours.verify('HMAC', hsm, bad, MESSAGE)).to.equal(false);
        expect(await ours.verify('HMAC', hsm, bad.subarray(0, 10), MESSAGE)).to.equal(false);
      });
    }
  });

  describe('digests', () => {
    for (const hash of ['SHA-1', 'SHA-256', 'SHA-384', 'SHA-512']) {
      it(`${hash}: identical digests (empty and non-empty input)`, async () => {
        expect(hex(await ours.digest(hash, MESSAGE))).to.equal(hex(await native.digest(hash, MESSAGE)));
        expect(hex(await ours.digest({ name: hash }, new Uint8Array(0)))).to.equal(hex(await native.digest(hash, new Uint8Array(0))));
      });
    }
  });

  describe('RSA', () => {
    const pkcs8 = () => rsaPkcs8(2048);

    async function twinRsa(name: string, hash: string, usages: [KeyUsage[], KeyUsage[]]): Promise<{ hsm: CryptoKeyPair; node: CryptoKeyPair }> {
      const alg = { name, hash };
      const nodePriv = await native.importKey('pkcs8', pkcs8(), alg, true, usages[0]);
      const spki = await native.exportKey('spki', await native.importKey('jwk', publicJwk(await native.exportKey('jwk', nodePriv)), alg, true, usages[1]));
      const nodePub = await native.importKey('spki', spki, alg, true, usages[1]);
      const hsm = { privateKey: await ours.importKey('pkcs8', pkcs8(), alg, true, usages[0]), publicKey: await ours.importKey('spki', spki, alg, true, usages[1]) };
      return { hsm, node: { privateKey: nodePriv, publicKey: nodePub } };
    }

    it('RSASSA-PKCS1-v1_5: identical signatures, verified both ways, and identical key algorithms', async () => {
      for (const hash of ['SHA-1', 'SHA-256', 'SHA-512']) {
        const { hsm, node } = await twinRsa('RSASSA-PKCS1-v1_5', hash, [['sign'], ['verify']]);
        expect(hsm.privateKey.algorithm).to.deep.equal(node.privateKey.algorithm);
        const a = await ours.sign('RSASSA-PKCS1-v1_5', hsm.privateKey, MESSAGE);
        expect(hex(a)).to.equal(hex(await native.sign('RSASSA-PKCS1-v1_5', node.privateKey, MESSAGE)));
        expect(await native.verify('RSASSA-PKCS1-v1_5', node.publicKey, a, MESSAGE)).to.equal(true);
        expect(await ours.verify('RSASSA-PKCS1-v1_5', hsm.publicKey, a, MESSAGE)).to.equal(true);
        expect(await ours.verify('RSASSA-PKCS1-v1_5', hsm.publicKey, a, text('another message'))).to.equal(false);
      }
    });

    it('RSA-PSS: each side verifies the other, for salt lengths 0, 32 and 64', async () => {
      const { hsm, node } = await twinRsa('RSA-PSS', 'SHA-256', [['sign'], ['verify']]);
      for (const saltLength of [0, 32, 64]) {
        const p = { name: 'RSA-PSS', saltLength };
        expect(await native.verify(p, node.publicKey, await ours.sign(p, hsm.privateKey, MESSAGE), MESSAGE)).to.equal(true);
        expect(await ours.verify(p, hsm.publicKey, await native.sign(p, node.privateKey, MESSAGE), MESSAGE)).to.equal(true);
      }
    });

    it('RSA-OAEP: each side decrypts the other, with and without a label', async () => {
      const { hsm, node } = await twinRsa('RSA-OAEP', 'SHA-256', [['decrypt', 'unwrapKey'], ['encrypt', 'wrapKey']]);
      for (const p of [{ name: 'RSA-OAEP' }, { name: 'RSA-OAEP', label: text('label') }]) {
        expect(buf(await native.decrypt(p, node.privateKey, await ours.encrypt(p, hsm.publicKey, MESSAGE))).equals(buf(MESSAGE))).to.equal(true);
        expect(buf(await ours.decrypt(p, hsm.privateKey, await native.encrypt(p, node.publicKey, MESSAGE))).equals(buf(MESSAGE))).to.equal(true);
      }
    });

    it('RSA-OAEP wrapKey/unwrapKey: Node unwraps what the HSM wrapped, the HSM unwraps what Node wrapped', async () => {
      const { hsm, node } = await twinRsa('RSA-OAEP', 'SHA-256', [['decrypt', 'unwrapKey'], ['encrypt', 'wrapKey']]);
      const { hsm: aes, node: nodeAes } = await twinSecret({ name: 'AES-GCM', length: 256 }, ['encrypt', 'decrypt']);
      const wrapped = await ours.wrapKey('raw', aes, hsm.publicKey, 'RSA-OAEP');
      const inNode = await native.unwrapKey('raw', wrapped, node.privateKey, 'RSA-OAEP', 'AES-GCM', true, ['encrypt']);
      expect(hex(await native.exportKey('raw', inNode))).to.equal(hex(await ours.exportKey('raw', aes)));
      const back = await ours.unwrapKey('raw', await native.wrapKey('raw', nodeAes, node.publicKey, 'RSA-OAEP'), hsm.privateKey, 'RSA-OAEP', 'AES-GCM', false, ['decrypt']);
      const iv = new Uint8Array(12);
      const ct = await native.encrypt({ name: 'AES-GCM', iv }, nodeAes, MESSAGE);
      expect(buf(await ours.decrypt({ name: 'AES-GCM', iv }, back, ct)).equals(buf(MESSAGE))).to.equal(true);
    });

    it('a key pair generated in the HSM exports SPKI/JWK that Node uses to verify its signatures', async () => {
      const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]) };
      const pair = (await ours.generateKey(alg, false, ['sign', 'verify'])) as CryptoKeyPair;
      expect(pair.privateKey.algorithm).to.deep.include({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 1024, hash: { name: 'SHA-256' } });
      const sig = await ours.sign(alg, pair.privateKey, MESSAGE);
      for (const format of ['spki', 'jwk'] as const) {
        const exported = await ours.exportKey(format as 'spki', pair.publicKey);
        const pub = await native.importKey(format as 'spki', exported, alg, true, ['verify']);
        expect(await native.verify(alg, pub, sig, MESSAGE)).to.equal(true);
      }
    });
  });

  describe('elliptic curves', () => {
    for (const [curve, hash] of [
      ['P-256', 'SHA-256'],
      ['P-384', 'SHA-384'],
      ['P-521', 'SHA-512'],
      ['P-256', 'SHA-1'],
    ] as const) {
      it(`ECDSA ${curve} ${hash}: each side verifies the other's signatures`, async () => {
        const alg = { name: 'ECDSA', namedCurve: curve };
        const p = { name: 'ECDSA', hash };
        const hsm = (await ours.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
        const node = (await native.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
        const hsmPubInNode = await native.importKey('raw', await ours.exportKey('raw', hsm.publicKey), alg, true, ['verify']);
        const nodePubInHsm = await ours.importKey('raw', await native.exportKey('raw', node.publicKey), alg, true, ['verify']);
        expect(await native.verify(p, hsmPubInNode, await ours.sign(p, hsm.privateKey, MESSAGE), MESSAGE)).to.equal(true);
        expect(await ours.verify(p, nodePubInHsm, await native.sign(p, node.privateKey, MESSAGE), MESSAGE)).to.equal(true);
        expect(await ours.verify(p, nodePubInHsm, await native.sign(p, node.privateKey, MESSAGE), text('other'))).to.equal(false);
      });
    }

    it('ECDSA K-256 (secp256k1): agrees with @peculiar/webcrypto both ways', async () => {
      const peculiar = new PeculiarCrypto().subtle as unknown as SubtleCrypto;
      const alg = { name: 'ECDSA', namedCurve: 'K-256' };
      const p = { name: 'ECDSA', hash: 'SHA-256' };
      const hsm = (await ours.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
      const ref = (await peculiar.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
      const jwk = await ours.exportKey('jwk', hsm.publicKey);
      expect(jwk.crv).to.equal('K-256');
      const hsmPubInRef = await peculiar.importKey('jwk', jwk, alg, true, ['verify']);
      const refPubInHsm = await ours.importKey('spki', await peculiar.exportKey('spki', ref.publicKey), alg, true, ['verify']);
      expect(await peculiar.verify(p, hsmPubInRef, await ours.sign(p, hsm.privateKey, MESSAGE), MESSAGE)).to.equal(true);
      expect(await ours.verify(p, refPubInHsm, await peculiar.sign(p, ref.privateKey, MESSAGE), MESSAGE)).to.equal(true);
    });

    for (const curve of ['P-256', 'P-384', 'P-521']) {
      it(`ECDH ${curve}: identical shared secrets either way round; deriveKey equals deriveBits`, async () => {
        const alg = { name: 'ECDH', namedCurve: curve };
        const hsm = (await ours.generateKey(alg, false, ['deriveBits', 'deriveKey'])) as CryptoKeyPair;
        const node = (await native.generateKey(alg, true, ['deriveBits'])) as CryptoKeyPair;
        const nodePubInHsm = await ours.importKey('spki', await native.exportKey('spki', node.publicKey), alg, true, []);
        const hsmPubInNode = await native.importKey('spki', await ours.exportKey('spki', hsm.publicKey), alg, true, []);
        const bits = curve === 'P-521' ? 528 : Number(curve.slice(2));
        const a = await ours.deriveBits({ name: 'ECDH', public: nodePubInHsm }, hsm.privateKey, bits);
        const b = await native.deriveBits({ name: 'ECDH', public: hsmPubInNode }, node.privateKey, bits);
        expect(hex(a)).to.equal(hex(b));
        const aes = await ours.deriveKey({ name: 'ECDH', public: nodePubInHsm }, hsm.privateKey, { name: 'AES-GCM', length: 128 }, true, ['encrypt']);
        expect(hex(await ours.exportKey('raw', aes))).to.equal(hex(b).slice(0, 32));
        const odd = await ours.deriveBits({ name: 'ECDH', public: nodePubInHsm }, hsm.privateKey, 13);
        expect(hex(odd)).to.equal(hex(await native.deriveBits({ name: 'ECDH', public: hsmPubInNode }, node.privateKey, 13)));
      });
    }

    it('Ed25519: identical signatures for the same key, verified both ways', async () => {
      const node = (await native.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify'])) as CryptoKeyPair;
      const hsmPriv = await ours.importKey('pkcs8', await native.exportKey('pkcs8', node.privateKey), 'Ed25519', false, ['sign']);
      const hsmPub = await ours.importKey('raw', await native.exportKey('raw', node.publicKey), 'Ed25519', true, ['verify']);
      const a = await ours.sign('Ed25519', hsmPriv, MESSAGE);
      expect(hex(a)).to.equal(hex(await native.sign('Ed25519', node.privateKey, MESSAGE)));
      expect(await native.verify('Ed25519', node.publicKey, a, MESSAGE)).to.equal(true);
      expect(await ours.verify('Ed25519', hsmPub, a, MESSAGE)).to.equal(true);
      const generated = (await ours.generateKey('Ed25519', false, ['sign', 'verify'])) as CryptoKeyPair;
      const pubInNode = await native.importKey('jwk', await ours.exportKey('jwk', generated.publicKey), 'Ed25519', true, ['verify']);
      expect(await native.verify('Ed25519', pubInNode, await ours.sign('Ed25519', generated.privateKey, MESSAGE), MESSAGE)).to.equal(true);
    });

    it('X25519: identical shared secrets either way round', async () => {
      const hsm = (await ours.generateKey('X25519', false, ['deriveBits'])) as CryptoKeyPair;
      const node = (await native.generateKey({ name: 'X25519' }, true, ['deriveBits'])) as CryptoKeyPair;
      const nodePubInHsm = await ours.importKey('raw', await native.exportKey('raw', node.publicKey), 'X25519', true, []);
      const hsmPubInNode = await native.importKey('raw', await ours.exportKey('raw', hsm.publicKey), { name: 'X25519' }, true, []);
      const a = await ours.deriveBits({ name: 'X25519', public: nodePubInHsm }, hsm.privateKey, 256);
      expect(hex(a)).to.equal(hex(await native.deriveBits({ name: 'X25519', public: hsmPubInNode } as never, node.privateKey, 256)));
      const hsmBoth = (await ours.generateKey('X25519', false, ['deriveKey'])) as unknown as CryptoKeyPair;
      const nodeBoth = (await native.generateKey({ name: 'X25519' }, true, ['deriveKey'])) as CryptoKeyPair;
      const peerInHsm = await ours.importKey('raw', await native.exportKey('raw', nodeBoth.publicKey), 'X25519', true, []);
      const peerInNode = await native.importKey('raw', await ours.exportKey('raw', hsmBoth.publicKey), { name: 'X25519' }, true, []);
      const k1 = await ours.deriveKey({ name: 'X25519', public: peerInHsm } as never, hsmBoth.privateKey, { name: 'AES-GCM', length: 256 }, true, ['encrypt']);
      const k2 = await native.deriveKey({ name: 'X25519', public: peerInNode } as never, nodeBoth.privateKey, { name: 'AES-GCM', length: 256 }, true, ['encrypt']);
      expect(await ours.exportKey('jwk', k1)).to.deep.equal(await native.exportKey('jwk', k2));
    });
  });

  describe('key derivation', () => {
    const salt = text('salt of the earth');
    for (const [name, params] of [
      ['HKDF', { name: 'HKDF', hash: 'SHA-256', salt, info: text('context') }],
      ['HKDF', { name: 'HKDF', hash: 'SHA-512', salt: new Uint8Array(0), info: new Uint8Array(0) }],
      ['PBKDF2', { name: 'PBKDF2', hash: 'SHA-256', salt, iterations: 1000 }],
      ['PBKDF2', { name: 'PBKDF2', hash: 'SHA-1', salt, iterations: 1 }],
    ] as const) {
      it(`${name} ${params.hash}: identical deriveBits, and deriveKey gives the same key as Node's`, async () => {
        const secret = text('correct horse battery staple');
        const hsm = await ours.importKey('raw', secret, name, false, ['deriveBits', 'deriveKey']);
        const node = await native.importKey('raw', secret, name, false, ['deriveBits', 'deriveKey']);
        expect(hex(await ours.deriveBits(params, hsm, 384))).to.equal(hex(await native.deriveBits(params, node, 384)));
        for (const target of [{ name: 'AES-CBC', length: 256 }, { name: 'HMAC', hash: 'SHA-256', length: 128 }]) {
          const a = await ours.deriveKey(params, hsm, target, true, target.name === 'HMAC' ? ['sign'] : ['encrypt']);
          const b = await native.deriveKey(params, node, target, true, target.name === 'HMAC' ? ['sign'] : ['encrypt']);
          expect(a.algorithm).to.deep.equal(b.algorithm);
          expect(await ours.exportKey('jwk', a)).to.deep.equal(await native.exportKey('jwk', b));
        }
      });
    }
  });

  describe('key export', () => {
    it('every format of every key type exports exactly what Node exports for the same key', async () => {
      const cases: [Record<string, unknown>, KeyUsage[], ('raw' | 'spki' | 'pkcs8' | 'jwk')[], ('raw' | 'spki' | 'pkcs8' | 'jwk')[]][] = [
        [{ name: 'RSA-PSS', hash: 'SHA-384', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]) }, ['sign', 'verify'], ['pkcs8', 'jwk'], ['spki', 'jwk']],
        [{ name: 'RSA-OAEP', hash: 'SHA-512', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]) }, ['decrypt', 'encrypt'], ['pkcs8', 'jwk'], ['spki', 'jwk']],
        [{ name: 'ECDSA', namedCurve: 'P-384' }, ['sign', 'verify'], ['pkcs8', 'jwk'], ['raw', 'spki', 'jwk']],
        [{ name: 'ECDH', namedCurve: 'P-521' }, ['deriveBits'], ['pkcs8', 'jwk'], ['raw', 'spki', 'jwk']],
        [{ name: 'Ed25519' }, ['sign', 'verify'], ['pkcs8', 'jwk'], ['raw', 'spki', 'jwk']],
        [{ name: 'X25519' }, ['deriveBits'], ['pkcs8', 'jwk'], ['raw', 'spki', 'jwk']],
      ];
      for (const [alg, usages, privateFormats, publicFormats] of cases) {
        const node = (await native.generateKey(alg as never, true, usages)) as CryptoKeyPair;
        for (const [key, formats] of [
          [node.privateKey, privateFormats],
          [node.publicKey, publicFormats],
        ] as const) {
          const jwk = await native.exportKey('jwk', key);
          const hsm = await ours.importKey('jwk', jwk, alg as never, true, key.usages);
          expect(hsm.algorithm, `${String(alg.name)} ${key.type}`).to.deep.equal(key.algorithm);
          expect(hsm.usages).to.deep.equal(key.usages);
          for (const format of formats) {
            const a = await ours.exportKey(format as 'spki', hsm);
            const b = await native.exportKey(format as 'spki', key);
            if (format === 'jwk') expect(a, `${String(alg.name)} ${key.type} jwk`).to.deep.equal(b);
            else expect(hex(a as ArrayBuffer), `${String(alg.name)} ${key.type} ${format}`).to.equal(hex(b as ArrayBuffer));
          }
        }
      }
    });
  });
});

function publicJwk(jwk: JsonWebKey): JsonWebKey {
  return { kty: jwk.kty, n: jwk.n, e: jwk.e };
}
