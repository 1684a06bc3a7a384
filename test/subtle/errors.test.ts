/**
 * Errors at the WebCrypto door: the same bad call raises the same error name at the door as in
 * Node's own crypto.webcrypto (or, where Node departs from the spec, the name the spec gives),
 * refusals by the HSM keep their HsmError as `cause`, and a refused call leaves no key behind.
 */
import { expect } from 'chai';
import { HsmError } from '../../src/hsm-core/face.js';
import { native, openDoor, text, type CryptoKey, type CryptoKeyPair, type DoorFixture, type SubtleCrypto } from '../helpers/door.js';
import type { JsonWebKey } from '../../src/subtle/types.js';

let f: DoorFixture;
before(async () => {
  f = await openDoor();
});
after(() => f.close());

interface Keys {
  ecExtractable: CryptoKeyPair;
  ecExtractable2: CryptoKeyPair;
  ed: CryptoKeyPair;
  ed2: CryptoKeyPair;
  x25519Extractable: CryptoKeyPair;
  aes: CryptoKey;
  aesKw: CryptoKey;
  hmac: CryptoKey;
  ec: CryptoKeyPair;
  ecdh: CryptoKeyPair;
  x25519: CryptoKeyPair;
  hkdf: CryptoKey;
  hkdfDerive: CryptoKey;
}

async function keysOf(s: SubtleCrypto): Promise<Keys> {
  const pair = async (algorithm: object, usages: string[]) => (await s.generateKey(algorithm as never, true, usages as never)) as CryptoKeyPair;
  return {
    ecExtractable: await pair({ name: 'ECDSA', namedCurve: 'P-256' }, ['sign', 'verify']),
    ecExtractable2: await pair({ name: 'ECDSA', namedCurve: 'P-256' }, ['sign', 'verify']),
    ed: await pair({ name: 'Ed25519' }, ['sign', 'verify']),
    ed2: await pair({ name: 'Ed25519' }, ['sign', 'verify']),
    x25519Extractable: await pair({ name: 'X25519' }, ['deriveBits']),
    aes: (await s.generateKey({ name: 'AES-GCM', length: 128 }, false, ['encrypt', 'decrypt'])) as unknown as CryptoKey,
    aesKw: (await s.generateKey({ name: 'AES-KW', length: 128 }, true, ['wrapKey', 'unwrapKey'])) as unknown as CryptoKey,
    hmac: (await s.generateKey({ name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])) as unknown as CryptoKey,
    ec: (await s.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])) as CryptoKeyPair,
    ecdh: (await s.generateKey({ name: 'ECDH', namedCurve: 'P-384' }, false, ['deriveBits'])) as CryptoKeyPair,
    x25519: (await s.generateKey({ name: 'X25519' }, false, ['deriveBits'])) as CryptoKeyPair,
    hkdf: await s.importKey('raw', text('input keying material'), 'HKDF', false, ['deriveBits']),
    hkdfDerive: await s.importKey('raw', text('input keying material'), 'HKDF', false, ['deriveKey']),
  };
}

type Case = [label: string, call: (s: SubtleCrypto, k: Keys) => Promise<unknown>, spec?: string];

const iv12 = new Uint8Array(12);
const data = text('data');

/**
 * Bad calls. The third element, when present, is the spec's name where Node 20 raises another
 * (Node throws "InvalidAccessException" for exporting a non-extractable key, and DataError for
 * bytes given as a JWK, which WebIDL makes a TypeError).
 */
const CASES: Case[] = [
  ['unknown algorithm', (s) => s.digest('SHA-3000', data)],
  ['generateKey: AES length 100', (s) => s.generateKey({ name: 'AES-GCM', length: 100 }, true, ['encrypt'])],
  ['generateKey: no usages', (s) => s.generateKey({ name: 'AES-GCM', length: 128 }, true, [])],
  ['generateKey: usage the algorithm lacks', (s) => s.generateKey({ name: 'AES-GCM', length: 128 }, true, ['sign'])],
  ['generateKey: ECDSA on an unknown curve', (s) => s.generateKey({ name: 'ECDSA', namedCurve: 'P-192' }, true, ['sign'])],
  ['generateKey: ECDSA pair with only verify', (s) => s.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['verify'])],
  ['generateKey: HMAC with an unknown hash', (s) => s.generateKey({ name: 'HMAC', hash: 'SHA-3' }, true, ['sign'])],
  ['encrypt: key lacks the usage', (s, k) => s.encrypt({ name: 'AES-GCM', iv: iv12 }, k.hmac, data)],
  ['encrypt: AES-CBC IV of 12 bytes', async (s) => s.encrypt({ name: 'AES-CBC', iv: iv12 }, (await s.generateKey({ name: 'AES-CBC', length: 128 }, false, ['encrypt'])) as unknown as CryptoKey, data)],
  ['encrypt: AES-GCM tag length 33', (s, k) => s.encrypt({ name: 'AES-GCM', iv: iv12, tagLength: 33 }, k.aes, data)],
  ['decrypt: AES-GCM tag does not match', (s, k) => s.decrypt({ name: 'AES-GCM', iv: iv12 }, k.aes, new Uint8Array(32))],
  ['decrypt: AES-GCM shorter than the tag', (s, k) => s.decrypt({ name: 'AES-GCM', iv: iv12 }, k.aes, new Uint8Array(8))],
  ['sign: key of another algorithm', (s, k) => s.sign({ name: 'ECDSA', hash: 'SHA-256' }, k.hmac, data)],
  ['sign: with a public key', (s, k) => s.sign({ name: 'ECDSA', hash: 'SHA-256' }, k.ec.publicKey, data)],
  ['exportKey: non-extractable secret key', (s, k) => s.exportKey('raw', k.aes), 'InvalidAccessError'],
  ['exportKey: non-extractable private key', (s, k) => s.exportKey('pkcs8', k.ec.privateKey), 'InvalidAccessError'],
  ['exportKey: raw of a private key', async (s) => s.exportKey('raw', ((await s.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign'])) as CryptoKeyPair).privateKey)],
  ['exportKey: unknown format', (s, k) => s.exportKey('pem' as 'raw', k.ec.publicKey)],
  ['importKey: AES key of 20 bytes', (s) => s.importKey('raw', new Uint8Array(20), 'AES-GCM', true, ['encrypt'])],
  ['importKey: EC point on another curve', async (s, k) => s.importKey('raw', await s.exportKey('raw', k.ec.publicKey), { name: 'ECDSA', namedCurve: 'P-384' }, true, ['verify'])],
  ['importKey: garbage SPKI', (s) => s.importKey('spki', new Uint8Array(40), { name: 'ECDSA', namedCurve: 'P-256' }, true, ['verify'])],
  ['importKey: private key with no usages', async (s) => s.importKey('pkcs8', await s.exportKey('pkcs8', ((await s.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign'])) as CryptoKeyPair).privateKey), { name: 'ECDSA', namedCurve: 'P-256' }, true, [])],
  ['importKey: JWK with ext=false as extractable', (s) => s.importKey('jwk', { kty: 'oct', k: 'AAAAAAAAAAAAAAAAAAAAAA', ext: false }, 'AES-GCM', true, ['encrypt'])],
  ['importKey: JWK whose alg disagrees', (s) => s.importKey('jwk', { kty: 'oct', k: 'AAAAAAAAAAAAAAAAAAAAAA', alg: 'A256GCM' }, 'AES-GCM', true, ['encrypt'])],
  ['importKey: JWK key_ops without the usage', (s) => s.importKey('jwk', { kty: 'oct', k: 'AAAAAAAAAAAAAAAAAAAAAA', key_ops: ['decrypt'] }, 'AES-GCM', true, ['encrypt'])],
  ['importKey: JWK of the wrong kty', (s) => s.importKey('jwk', { kty: 'EC', k: 'AAAAAAAAAAAAAAAAAAAAAA' }, 'AES-GCM', true, ['encrypt'])],
  ['importKey: HKDF as extractable', (s) => s.importKey('raw', data, 'HKDF', true, ['deriveBits'])],
  ['importKey: HMAC key of no bytes', (s) => s.importKey('raw', new Uint8Array(0), { name: 'HMAC', hash: 'SHA-256' }, true, ['sign'])],
  ['deriveBits: ECDH with a key of another curve', async (s, k) => s.deriveBits({ name: 'ECDH', public: ((await s.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits'])) as CryptoKeyPair).publicKey }, k.ecdh.privateKey, 256)],
  ['deriveBits: ECDH asking more bits than the secret has', (s, k) => s.deriveBits({ name: 'ECDH', public: k.ecdh.publicKey }, k.ecdh.privateKey, 512)],
  ['deriveBits: ECDH with a private key as public', (s, k) => s.deriveBits({ name: 'ECDH', public: k.ecdh.privateKey }, k.ecdh.privateKey, 256)],
  ['deriveBits: HKDF without a length', (s, k) => s.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: data, info: data }, k.hkdf, null as unknown as number)],
  ['deriveBits: PBKDF2 with 0 iterations', async (s) => s.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt: data, iterations: 0 }, await s.importKey('raw', data, 'PBKDF2', false, ['deriveBits']), 128)],
  ['deriveKey: base key lacks deriveKey', (s, k) => s.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt: data, info: data }, k.hkdf, { name: 'AES-GCM', length: 128 }, true, ['encrypt'])],
  ['wrapKey: non-extractable key', (s, k) => s.wrapKey('raw', k.aes, k.aesKw, 'AES-KW'), 'InvalidAccessError'],
  ['wrapKey: wrapping key lacks wrapKey', async (s, k) => s.wrapKey('raw', k.aesKw, (await s.generateKey({ name: 'AES-KW', length: 128 }, true, ['unwrapKey'])) as unknown as CryptoKey, 'AES-KW')],
  ['unwrapKey: wrapped bytes that fail the integrity check', (s, k) => s.unwrapKey('raw', new Uint8Array(24), k.aesKw, 'AES-KW', 'AES-GCM', true, ['encrypt'])],
  ['verify: ECDSA with an unknown hash', (s, k) => s.verify({ name: 'ECDSA', hash: 'SHA-3' }, k.ec.publicKey, new Uint8Array(64), data)],
  ['sign: data that is not a BufferSource', (s, k) => s.sign('HMAC', k.hmac, 'text' as never)],
  ['digest: data that is not a BufferSource', (s) => s.digest('SHA-256', [1, 2, 3] as never)],
  ['too few arguments', (s) => (s.encrypt as (...a: unknown[]) => Promise<unknown>)({ name: 'AES-GCM', iv: iv12 })],
  // Names that are not WebCrypto's: the door's own algorithms carry a vendor prefix, so these stay unknown.
  ...['AES-CMAC', 'AES-ECB', 'AES-KWP', 'AES-KW-PKCS5'].map((name): Case => [`generateKey: ${name}, which is not a WebCrypto algorithm`, (s) => s.generateKey({ name, length: 128 } as never, true, ['sign'])]),
  ['importKey: JWK without kty', (s) => s.importKey('jwk', { k: 'AAAAAAAAAAAAAAAAAAAAAA' }, 'AES-GCM', true, ['encrypt'])],
  ['importKey: JWK given as bytes', (s) => s.importKey('jwk', new Uint8Array(16) as never, 'AES-GCM', true, ['encrypt']), 'TypeError'],
  ['importKey: JWK given as null', (s) => s.importKey('jwk', null as never, 'AES-GCM', true, ['encrypt'])],
  ['importKey: JWK key_ops naming an operation twice', (s) => s.importKey('jwk', { kty: 'oct', k: 'AAAAAAAAAAAAAAAAAAAAAA', key_ops: ['encrypt', 'encrypt'] }, 'AES-GCM', true, ['encrypt'])],
  ['importKey: ECDSA JWK whose alg names another curve', async (s, k) => s.importKey('jwk', { ...(await jwkOf(s, k.ecExtractable.privateKey)), alg: 'ES384' }, { name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign'])],
  ['importKey: ECDSA JWK with another algorithm\'s alg', async (s, k) => s.importKey('jwk', { ...(await jwkOf(s, k.ecExtractable.privateKey)), alg: 'RS256' }, { name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign'])],
  ['importKey: EC private JWK with the public point of another key', async (s, k) => s.importKey('jwk', { ...(await jwkOf(s, k.ecExtractable.privateKey)), x: (await jwkOf(s, k.ecExtractable2.publicKey)).x, y: (await jwkOf(s, k.ecExtractable2.publicKey)).y }, { name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign'])],
  ['importKey: EC private JWK without x', async (s, k) => s.importKey('jwk', { ...(await jwkOf(s, k.ecExtractable.privateKey)), x: undefined }, { name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign'])],
  ['importKey: Ed25519 private JWK with the x of another key', async (s, k) => s.importKey('jwk', { ...(await jwkOf(s, k.ed.privateKey)), x: (await jwkOf(s, k.ed2.publicKey)).x }, 'Ed25519', true, ['sign'])],
  ['importKey: Ed25519 private JWK without x', async (s, k) => s.importKey('jwk', { ...(await jwkOf(s, k.ed.privateKey)), x: undefined }, 'Ed25519', true, ['sign'])],
  ['importKey: Ed25519 JWK with an alg that is not EdDSA or Ed25519', async (s, k) => s.importKey('jwk', { ...(await jwkOf(s, k.ed.privateKey)), alg: 'ES256' }, 'Ed25519', true, ['sign'])],
  ['importKey: X25519 private JWK with the x of another key', async (s, k) => s.importKey('jwk', { ...(await jwkOf(s, k.x25519Extractable.privateKey)), x: (await jwkOf(s, k.x25519.publicKey)).x }, 'X25519', true, ['deriveBits'])],
  ['deriveBits: X25519 with a private key as public', (s, k) => s.deriveBits({ name: 'X25519', public: k.x25519.privateKey } as never, k.x25519.privateKey, 256)],
  ['deriveBits: X25519 with an ECDH key as public', (s, k) => s.deriveBits({ name: 'X25519', public: k.ecdh.publicKey } as never, k.x25519.privateKey, 256)],
  ['deriveBits: X25519 with a public that is not a CryptoKey', (s, k) => s.deriveBits({ name: 'X25519', public: {} } as never, k.x25519.privateKey, 256)],
  ['deriveBits: ECDH with a public that is not a CryptoKey', (s, k) => s.deriveBits({ name: 'ECDH', public: { type: 'public' } } as never, k.ecdh.privateKey, 256)],
  ['deriveBits: ECDH with a secret key as public', (s, k) => s.deriveBits({ name: 'ECDH', public: k.hmac }, k.ecdh.privateKey, 256)],
  ['deriveBits: HKDF with the length left out', (s, k) => (s.deriveBits as (...a: unknown[]) => Promise<unknown>)({ name: 'HKDF', hash: 'SHA-256', salt: data, info: data }, k.hkdf)],
  ['deriveKey: HKDF into an HKDF key, which has no length', (s, k) => s.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt: data, info: data }, k.hkdfDerive, 'HKDF', false, ['deriveBits'])],
  ['deriveKey: HKDF into an ECDH key', (s, k) => s.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt: data, info: data }, k.hkdfDerive, { name: 'ECDH', namedCurve: 'P-256' } as never, true, ['deriveBits'])],
  ['deriveBits: one argument', (s) => (s.deriveBits as (...a: unknown[]) => Promise<unknown>)({ name: 'HKDF', hash: 'SHA-256', salt: data, info: data })],
];

const jwkOf = (s: SubtleCrypto, key: CryptoKey) => s.exportKey('jwk', key) as Promise<JsonWebKey>;

/** What a call threw, or null when it succeeded. */
async function thrown(call: () => Promise<unknown>): Promise<Error | null> {
  try {
    await call();
  } catch (e) {
    return e as Error;
  }
  return null;
}

const errorName = async (call: () => Promise<unknown>): Promise<string> => (await thrown(call))?.name ?? 'no error';

describe('subtle: errors', () => {
  let ours: Keys;
  let theirs: Keys;
  before(async () => {
    ours = await keysOf(f.subtle);
    theirs = await keysOf(native);
  });

  for (const [label, call, spec] of CASES) {
    it(`${label}: the same error name as Node's WebCrypto${spec ? ` (the spec's ${spec} where Node differs)` : ''}`, async () => {
      const expected = spec ?? (await errorName(() => call(native, theirs)));
      expect(expected, 'the case must be an error').to.not.equal('no error');
      const actual = await errorName(() => call(f.subtle, ours));
      expect(actual).to.equal(expected);
    });
  }

  it('every error is a one-line message that says what was wrong', async () => {
    for (const [label, call] of CASES) {
      const e = await thrown(() => call(f.subtle, ours));
      expect(e, label).to.be.instanceOf(Error);
      expect(e!.message, label).to.be.a('string').and.not.equal('');
      expect(e!.message, label).to.not.include('\n');
    }
  });

  it('an HSM refusal keeps its HsmError code as the cause', async () => {
    const e = await thrown(() => f.subtle.exportKey('raw', ours.aes));
    expect(e?.name).to.equal('InvalidAccessError');
    expect((e as { cause?: unknown }).cause).to.be.instanceOf(HsmError);
    expect((e as { cause: HsmError }).cause.code).to.equal('KEY_NOT_EXTRACTABLE');
  });

  it('a refused call leaves no key behind in the HSM', async () => {
    // The handles the user can see. (Keys of earlier tests may go meanwhile: the door deletes a
    // session key when its CryptoKey is garbage-collected, which a browser does readily.)
    const handles = async () => new Set((await f.session.send({ op: 'findKeys', maxItems: 10_000 })).keys.map((k) => k.handle));
    // Cases that first make a helper key (to then misuse it) are left out: only the refused call runs.
    const single = CASES.filter(([, call]) => !/generateKey|PBKDF2["'],\s*false/.test(call.toString()));
    expect(single.length).to.be.greaterThan(20);
    const before = await handles();
    for (const [label, call] of single) {
      await errorName(() => call(f.subtle, ours));
      const added = [...(await handles())].filter((h) => !before.has(h));
      expect(added, label).to.deep.equal([]);
    }
  });
});
