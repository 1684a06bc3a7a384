/**
 * Reference PEMs (CloudHSM's "fake PEM"): made from a key's public attributes only, read back as
 * the key reference they stand for, and never confused with a real private key.
 */
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { expect } from 'chai';
import { parseReferencePem, referencePem } from '../../src/cluster-client/reference-pem.js';
import type { KeyInfo } from '../../src/hsm-core/index.js';

/** What the HSM reports of a private key: attributes, no material. */
function infoOf(handle: number, attributes: Record<string, unknown>): KeyInfo {
  return { handle, keyReference: `0x${handle.toString(16).padStart(16, '0')}`, owner: 'alice', sharedUsers: [], sessionKey: false, attributes } as unknown as KeyInfo;
}

describe('cluster-client: reference PEMs', () => {
  it('an RSA and an EC reference name their key and carry its real public half', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const n = Buffer.from(rsa.publicKey.export({ format: 'jwk' }).n!, 'base64url');
    const rsaPem = referencePem(infoOf(0x40da2, { class: 'private-key', 'key-type': 'rsa', modulus: `0x${n.toString('hex')}`, 'public-exponent': 65537 }));
    expect(rsaPem).to.match(/^-----BEGIN RSA PRIVATE KEY-----\n/);
    expect(parseReferencePem(rsaPem)).to.deep.equal({ keyType: 'rsa', keyReference: 0x40da2 });
    expect(createPublicKey(rsaPem).export({ format: 'jwk' }).n).to.equal(rsa.publicKey.export({ format: 'jwk' }).n);

    const ec = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const spki = ec.publicKey.export({ format: 'der', type: 'spki' });
    const point = spki.subarray(spki.length - 97);
    const ecPem = referencePem(infoOf(7, { class: 'private-key', 'key-type': 'ec', curve: 'secp384r1', 'ec-point': `0x0461${point.toString('hex')}` }));
    expect(parseReferencePem(ecPem)).to.deep.equal({ keyType: 'ec', keyReference: 7, curve: 'secp384r1' });
    expect(createPublicKey(ecPem).export({ format: 'der', type: 'spki' }).equals(spki)).to.equal(true);
  });

  it('a real private key is not a reference, and a public key or an Ed25519 key has none', () => {
    const real = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs1' }) as string;
    expect(parseReferencePem(real)).to.equal(null);
    const ecReal = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'sec1' }) as string;
    expect(parseReferencePem(ecReal)).to.equal(null);
    expect(() => referencePem(infoOf(3, { class: 'public-key', 'key-type': 'rsa' }))).to.throw('a reference PEM stands for a private key (use --encoding pem for a public key)');
    expect(() => referencePem(infoOf(3, { class: 'private-key', 'key-type': 'ed25519' }))).to.throw("reference PEMs stand for RSA and EC private keys, as CloudHSM's do");
  });
});
