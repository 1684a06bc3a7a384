/**
 * What succeeds with Node's own crypto.webcrypto succeeds at the door, with the same result
 * (issue 18): zero-length and whole-secret derivations, JWK spellings Node accepts, compressed EC
 * points, and every wrapKey/unwrapKey combination of wrapping algorithm, key algorithm, format
 * and extractability that Node round trips. Written from the WebCrypto specification and Node's
 * observed behaviour: each case runs on both and the outcomes are compared.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { expect } from 'chai';
import { rsaPkcs8 } from '../helpers/keys.js';
import { buf, native, openDoor, text, type CryptoKey, type CryptoKeyPair, type DoorFixture, type SubtleCrypto } from '../helpers/door.js';
import { rejection } from '../helpers/refusal.js';
import type { JsonWebKey, KeyUsage } from '../../src/subtle/types.js';

let f: DoorFixture;
let door: SubtleCrypto;
before(async () => {
  f = await openDoor('unlimited');
  door = f.subtle;
});
after(() => f.close());

const hex = (b: ArrayBuffer) => buf(b).toString('hex');
/** An export to compare: bytes as hex, a JWK's members sorted (the order is not part of the format). */
const normalisedExport = (data: ArrayBuffer | JsonWebKey) =>
  data instanceof ArrayBuffer ? hex(data) : Object.fromEntries(Object.entries(data).sort(([x], [y]) => x.localeCompare(y)));

describe('subtle: parity with Node WebCrypto', function () {
  this.timeout(60_000);

  describe('deriveBits', () => {
    it('a length of 0 gives an empty result for HKDF and PBKDF2, as in Node', async () => {
      for (const s of [door, native]) {
        const hkdf = await s.importKey('raw', text('key material'), 'HKDF', false, ['deriveBits']);
        const pbkdf2 = await s.importKey('raw', text('password'), 'PBKDF2', false, ['deriveBits']);
        expect((await s.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: text('salt'), info: text('info') }, hkdf, 0)).byteLength).to.equal(0);
        expect((await s.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt: text('salt'), iterations: 2 }, pbkdf2, 0)).byteLength).to.equal(0);
      }
    });

    it('ECDH and X25519 with the length left out give the whole shared secret, the bits Node derives', async () => {
      const cases: [object, object][] = [
        [{ name: 'ECDH', namedCurve: 'P-384' }, { name: 'ECDH', namedCurve: 'P-384' }],
        [{ name: 'X25519' }, { name: 'X25519' }],
      ];
      for (const [generate, imported] of cases) {
        const mine = (await native.generateKey(generate as never, true, ['deriveBits'])) as CryptoKeyPair;
        const theirs = (await native.generateKey(generate as never, true, ['deriveBits'])) as CryptoKeyPair;
        const pkcs8 = await native.exportKey('pkcs8', mine.privateKey);
        const spki = await native.exportKey('spki', theirs.publicKey);
        const privateKey = await door.importKey('pkcs8', pkcs8, imported as never, false, ['deriveBits']);
        const publicKey = await door.importKey('spki', spki, imported as never, true, []);
        const deriveAll = (s: SubtleCrypto, a: object, k: CryptoKey) => (s.deriveBits as (a: object, k: CryptoKey) => Promise<ArrayBuffer>).call(s, a, k);
        const ours = await deriveAll(door, { ...imported, public: publicKey }, privateKey);
        const nodes = await deriveAll(native, { ...imported, public: theirs.publicKey }, mine.privateKey);
        expect(hex(ours)).to.equal(hex(nodes));
        expect(ours.byteLength).to.equal('namedCurve' in imported ? 48 : 32);
      }
    });
  });

  describe('deriveKey', () => {
    it('a key agreement derives an HKDF or PBKDF2 key from its whole secret, which then derives the bits Node derives', async () => {
      for (const [generate, kdf] of [[{ name: 'ECDH', namedCurve: 'P-521' }, 'HKDF'], [{ name: 'X25519' }, 'PBKDF2']] as const) {
        const mine = (await native.generateKey(generate as never, true, ['deriveKey'])) as CryptoKeyPair;
        const theirs = (await native.generateKey(generate as never, true, ['deriveKey'])) as CryptoKeyPair;
        const privateKey = await door.importKey('pkcs8', await native.exportKey('pkcs8', mine.privateKey), generate as never, false, ['deriveKey']);
        const publicKey = await door.importKey('spki', await native.exportKey('spki', theirs.publicKey), generate as never, true, []);
        const params = kdf === 'HKDF' ? { name: 'HKDF', hash: 'SHA-384', salt: text('salt'), info: text('info') } : { name: 'PBKDF2', hash: 'SHA-256', salt: text('salt'), iterations: 10 };
        const ours = await door.deriveKey({ ...generate, public: publicKey } as never, privateKey, kdf, false, ['deriveBits']);
        expect(ours.algorithm, kdf).to.deep.equal({ name: kdf });
        const nodes = await native.deriveKey({ ...generate, public: theirs.publicKey } as never, mine.privateKey, kdf, false, ['deriveBits']);
        expect(hex(await door.deriveBits(params as never, ours, 256)), kdf).to.equal(hex(await native.deriveBits(params as never, nodes, 256)));
      }
    });
  });

  describe('importKey', () => {
    it("an Ed25519 JWK with alg EdDSA (RFC 8037's spelling) imports and signs; Node verifies", async () => {
      const pair = (await native.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify'])) as CryptoKeyPair;
      const jwk = { ...(await native.exportKey('jwk', pair.privateKey)), alg: 'EdDSA' } as JsonWebKey;
      const key = await door.importKey('jwk', jwk, 'Ed25519', false, ['sign']);
      const signature = await door.sign('Ed25519', key, text('message'));
      expect(await native.verify('Ed25519', pair.publicKey, signature, text('message'))).to.equal(true);
    });

    /** DER: a tag, a length and the content. */
    const der = (tag: number, content: Buffer) => {
      const n = content.length;
      const length = n < 128 ? Buffer.from([n]) : n < 256 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 255]);
      return Buffer.concat([Buffer.from([tag]), length, content]);
    };
    /** The SPKI of a compressed point: the uncompressed SPKI's AlgorithmIdentifier, then the point. */
    const compressedSpkiOf = (spki: Buffer, point: Buffer) => {
      const at = spki[1]! & 0x80 ? 2 + (spki[1]! & 0x7f) : 2; // past the outer SEQUENCE's header
      const algorithm = spki.subarray(at, at + 2 + spki[at + 1]!); // SEQUENCE { ecPublicKey, curve }
      return der(0x30, Buffer.concat([algorithm, der(0x03, Buffer.concat([Buffer.from([0]), point]))]));
    };

    for (const namedCurve of ['P-256', 'P-384', 'P-521'] as const) {
      it(`a compressed ${namedCurve} point imports from raw and from spki and exports uncompressed, as in Node`, async () => {
        const pair = (await native.generateKey({ name: 'ECDSA', namedCurve }, true, ['sign', 'verify'])) as CryptoKeyPair;
        const uncompressed = buf(await native.exportKey('raw', pair.publicKey));
        const size = (uncompressed.length - 1) / 2;
        const compressed = Buffer.concat([Buffer.from([2 + (uncompressed[uncompressed.length - 1]! & 1)]), uncompressed.subarray(1, 1 + size)]);
        const compressedSpki = compressedSpkiOf(buf(await native.exportKey('spki', pair.publicKey)), compressed);
        for (const [format, data] of [['raw', compressed], ['spki', compressedSpki]] as const) {
          const ours = await door.importKey(format, data, { name: 'ECDSA', namedCurve }, true, ['verify']);
          const nodes = await native.importKey(format, data, { name: 'ECDSA', namedCurve }, true, ['verify']);
          expect(hex(await door.exportKey('raw', ours)), format).to.equal(hex(await native.exportKey('raw', nodes)));
          const signature = await native.sign({ name: 'ECDSA', hash: 'SHA-256' }, pair.privateKey, text('signed'));
          expect(await door.verify({ name: 'ECDSA', hash: 'SHA-256' }, ours, signature, text('signed')), format).to.equal(true);
        }
      });
    }
  });

  describe('Ed448 and X448 (unlimited profile)', () => {
    it('Ed448: the door signs what Node verifies and verifies what Node signs; keys move between them in every format', async () => {
      const ours = (await door.generateKey({ name: 'Ed448' } as never, true, ['sign', 'verify'])) as CryptoKeyPair;
      const nodes = (await native.generateKey({ name: 'Ed448' } as never, true, ['sign', 'verify'])) as CryptoKeyPair;
      const message = text('a message for Ed448');
      const signature = await door.sign('Ed448', ours.privateKey, message);
      expect(signature.byteLength).to.equal(114);
      const ourPublic = await native.importKey('raw', await door.exportKey('raw', ours.publicKey), 'Ed448' as never, true, ['verify']);
      expect(await native.verify('Ed448', ourPublic, signature, message)).to.equal(true);
      // Ed448 signatures are deterministic: the same key signs the same bytes at both.
      const pkcs8 = await native.exportKey('pkcs8', nodes.privateKey);
      const imported = await door.importKey('pkcs8', pkcs8, 'Ed448' as never, true, ['sign']);
      expect(hex(await door.sign('Ed448', imported, message))).to.equal(hex(await native.sign('Ed448', nodes.privateKey, message)));
      expect(normalisedExport(await door.exportKey('jwk', imported))).to.deep.equal(normalisedExport(await native.exportKey('jwk', nodes.privateKey)));
      expect(hex(await door.exportKey('pkcs8', imported))).to.equal(hex(pkcs8));
      const jwk = await native.exportKey('jwk', nodes.publicKey);
      const fromJwk = await door.importKey('jwk', jwk, 'Ed448' as never, true, ['verify']);
      expect(await door.verify('Ed448', fromJwk, await native.sign('Ed448', nodes.privateKey, message), message)).to.equal(true);
      expect(hex(await door.exportKey('spki', fromJwk))).to.equal(hex(await native.exportKey('spki', nodes.publicKey)));
    });

    it('X448: the door and Node derive the same 56-byte secret from each other\'s public keys', async () => {
      const ours = (await door.generateKey({ name: 'X448' } as never, true, ['deriveBits'])) as CryptoKeyPair;
      const nodes = (await native.generateKey({ name: 'X448' } as never, true, ['deriveBits'])) as CryptoKeyPair;
      const theirPublic = await door.importKey('raw', await native.exportKey('raw', nodes.publicKey), 'X448' as never, true, []);
      const ourPublic = await native.importKey('spki', await door.exportKey('spki', ours.publicKey), 'X448' as never, true, []);
      const a = await door.deriveBits({ name: 'X448', public: theirPublic } as never, ours.privateKey, 448);
      const b = await native.deriveBits({ name: 'X448', public: ourPublic } as never, nodes.privateKey, 448);
      expect(a.byteLength).to.equal(56);
      expect(hex(a)).to.equal(hex(b));
    });

    it('under the cloudhsm profile Ed448 and X448 are NotSupportedError, as CloudHSM has neither', async () => {
      const cloudhsm = await openDoor('cloudhsm');
      try {
        for (const [name, usages] of [['Ed448', ['sign', 'verify']], ['X448', ['deriveBits']]] as const) {
          const e = await cloudhsm.subtle.generateKey({ name } as never, true, usages as never).then(() => null, (err: Error) => err);
          expect(e?.name, name).to.equal('NotSupportedError');
          expect(e?.message, name).to.contain(`${name.toLowerCase()} keys are not an hsm2m.medium key type`);
        }
      } finally {
        await cloudhsm.close();
      }
    });
  });

  describe('algorithm names', () => {
    it("names of Object.prototype's own members are NotSupportedError in every method, as in Node", async () => {
      const aes = await door.generateKey({ name: 'AES-GCM', length: 128 }, false, ['encrypt']);
      const data = new Uint8Array(16);
      for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
        const calls: [string, (s: SubtleCrypto, key: CryptoKey) => Promise<unknown>][] = [
          ['digest', (s) => s.digest(name, data)],
          ['generateKey', (s) => s.generateKey({ name } as never, false, ['sign'])],
          ['importKey', (s) => s.importKey('raw', data, { name } as never, false, ['sign'])],
          ['sign', (s, key) => s.sign(name, key, data)],
          ['encrypt', (s, key) => s.encrypt({ name, iv: data } as never, key, data)],
        ];
        const nativeKey = await native.generateKey({ name: 'AES-GCM', length: 128 }, false, ['encrypt']);
        for (const [method, call] of calls) {
          const [ours, node] = [await rejection(call(door, aes)), await rejection(call(native, nativeKey))];
          expect([ours.name, node.name], `${method} with ${name}`).to.deep.equal(['NotSupportedError', 'NotSupportedError']);
        }
      }
    });

    it("curve names of Object.prototype's own members are NotSupportedError in generateKey and importKey, as in Node", async () => {
      const spki = await native.exportKey('spki', ((await native.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign'])) as CryptoKeyPair).publicKey);
      for (const namedCurve of ['constructor', '__proto__']) {
        for (const [name, usages] of [['ECDSA', ['sign']], ['ECDH', ['deriveBits']]] as const) {
          for (const s of [door, native]) {
            const made = await rejection(s.generateKey({ name, namedCurve } as never, false, usages as never));
            expect(made.name, `generateKey ${name} ${namedCurve}`).to.equal('NotSupportedError');
            const imported = await rejection(s.importKey('spki', spki, { name, namedCurve } as never, true, []));
            expect(imported.name, `importKey ${name} ${namedCurve}`).to.equal('NotSupportedError');
          }
        }
      }
    });
  });

  describe('the event loop', () => {
    // Node's WebCrypto answers from its thread pool, so a caller awaiting one call after another
    // still lets timers and I/O run. An in-process member answers AES, HMAC and digests at once;
    // the door must not keep the loop from its timers for as long as such a loop lasts.
    it('a caller awaiting one AES-GCM, HMAC or digest call after another lets a due timer fire, as with Node', async () => {
      const data = new Uint8Array(1024);
      const iv = new Uint8Array(12);
      for (const s of [door, native]) {
        const aes = await s.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt']);
        const hmac = await s.generateKey({ name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
        const calls: [string, () => Promise<unknown>][] = [
          ['encrypt', () => s.encrypt({ name: 'AES-GCM', iv }, aes as CryptoKey, data)],
          ['sign', () => s.sign('HMAC', hmac as CryptoKey, data)],
          ['digest', () => s.digest('SHA-256', data)],
          ['session digest', () => f.session.send({ op: 'digest', hash: 'sha256', data })],
        ];
        for (const [name, call] of calls) {
          let fired = false;
          setTimeout(() => (fired = true), 1);
          let made = 0;
          // Bounded, so that a loop that never yields fails here instead of hanging the suite.
          while (!fired && made < 50_000) {
            await call();
            made += 1;
          }
          expect(fired, `${name}: the timer had not fired after ${made} calls`).to.equal(true);
        }
      }
    });

    // A signature is answered in a later turn than its request (from the thread pool, or made on
    // the member's thread and answered in the next turn), and such an answer starts no turn's
    // budget of its own. Calls answered at once after it must still give way to a due timer,
    // however many callers are in flight and however often signatures come between.
    it('callers mixing signatures with AES-GCM, HMAC and digests, 1 or 16 in flight, let a due timer fire', async () => {
      const data = new Uint8Array(1024);
      const iv = new Uint8Array(12);
      const aes = await door.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt']);
      const hmac = await door.generateKey({ name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
      const ec = (await door.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign'])) as CryptoKeyPair;
      const ed = (await door.generateKey({ name: 'Ed25519' }, false, ['sign'])) as CryptoKeyPair;
      const signatures: [string, () => Promise<unknown>][] = [
        ['ECDSA', () => door.sign({ name: 'ECDSA', hash: 'SHA-256' }, ec.privateKey, data)],
        ['Ed25519', () => door.sign('Ed25519', ed.privateKey, data)],
      ];
      const atOnce = [
        () => door.encrypt({ name: 'AES-GCM', iv }, aes as CryptoKey, data),
        () => door.sign('HMAC', hmac as CryptoKey, data),
        () => door.digest('SHA-256', data),
      ];
      for (const [name, signature] of signatures) {
        for (const callers of [1, 16]) {
          for (const between of [1, 1_000_000]) {
            // The timer is set in the turn of a signature's answer, so that the calls after it start
            // from the state the door is in then.
            await signature();
            let fired = false;
            setTimeout(() => (fired = true), 1);
            let made = 0;
            // Each caller makes `between` calls answered at once, then a signature, and again: a
            // signature every call, or none. Bounded, so that a loop that never yields fails here
            // instead of hanging the suite.
            await Promise.all(
              Array.from({ length: callers }, async (_, c) => {
                while (!fired && made < 50_000) {
                  for (let i = 0; i < between && !fired && made < 50_000; i++) {
                    await atOnce[(c + i) % atOnce.length]!();
                    made += 1;
                  }
                  await signature();
                }
              }),
            );
            // The last signature lets the timer fire in any case: it must have fired before the bound.
            expect(fired && made < 50_000, `${name}, ${callers} in flight, a signature every ${between} calls: the timer had not fired after ${made} calls`).to.equal(true);
          }
        }
      }
    });
  });

  describe('wrapKey and unwrapKey', () => {
    const rsaOaep = { name: 'RSA-OAEP', hash: 'SHA-256' };
    /** Wrapping algorithms: how to make the wrapping key pair (or key) on one side, and the wrap parameters. */
    const WRAPPERS: { name: string; make: (s: SubtleCrypto) => Promise<{ wrap: CryptoKey; unwrap: CryptoKey }>; params: object }[] = [
      { name: 'AES-KW', params: { name: 'AES-KW' }, make: (s) => secret(s, { name: 'AES-KW', length: 256 }) },
      { name: 'AES-GCM', params: { name: 'AES-GCM', iv: new Uint8Array(12).fill(3), additionalData: text('aad') }, make: (s) => secret(s, { name: 'AES-GCM', length: 256 }) },
      { name: 'AES-CBC', params: { name: 'AES-CBC', iv: new Uint8Array(16).fill(4) }, make: (s) => secret(s, { name: 'AES-CBC', length: 128 }) },
      { name: 'AES-CTR', params: { name: 'AES-CTR', counter: new Uint8Array(16).fill(5), length: 64 }, make: (s) => secret(s, { name: 'AES-CTR', length: 192 }) },
      {
        name: 'RSA-OAEP',
        params: { name: 'RSA-OAEP', label: text('label') },
        make: async (s) => ({
          wrap: await s.importKey('spki', createPublicKey(createPrivateKey({ key: rsaPkcs8(2048), format: 'der', type: 'pkcs8' })).export({ format: 'der', type: 'spki' }), rsaOaep, true, ['wrapKey']),
          unwrap: await s.importKey('pkcs8', rsaPkcs8(2048), rsaOaep, false, ['unwrapKey']),
        }),
      },
    ];
    async function secret(s: SubtleCrypto, algorithm: object): Promise<{ wrap: CryptoKey; unwrap: CryptoKey }> {
      const key = (await s.generateKey(algorithm as never, true, ['wrapKey', 'unwrapKey'])) as unknown as CryptoKey;
      return { wrap: key, unwrap: key };
    }
    /** Keys to wrap: their algorithm, usages per kind, and formats. */
    const PAYLOADS: { name: string; algorithm: object; usages: { secret?: KeyUsage[]; private?: KeyUsage[]; public?: KeyUsage[] }; formats: string[] }[] = [
      { name: 'AES-GCM', algorithm: { name: 'AES-GCM', length: 128 }, usages: { secret: ['encrypt', 'decrypt'] }, formats: ['raw', 'jwk'] },
      { name: 'HMAC', algorithm: { name: 'HMAC', hash: 'SHA-384' }, usages: { secret: ['sign', 'verify'] }, formats: ['raw', 'jwk'] },
      { name: 'ECDSA', algorithm: { name: 'ECDSA', namedCurve: 'P-384' }, usages: { private: ['sign'], public: ['verify'] }, formats: ['pkcs8', 'jwk', 'spki', 'raw'] },
      { name: 'ECDH', algorithm: { name: 'ECDH', namedCurve: 'P-256' }, usages: { private: ['deriveBits'], public: [] }, formats: ['pkcs8', 'jwk', 'spki', 'raw'] },
      { name: 'Ed25519', algorithm: { name: 'Ed25519' }, usages: { private: ['sign'], public: ['verify'] }, formats: ['pkcs8', 'jwk', 'spki', 'raw'] },
      { name: 'X25519', algorithm: { name: 'X25519' }, usages: { private: ['deriveBits'], public: [] }, formats: ['pkcs8', 'jwk', 'spki', 'raw'] },
      { name: 'RSA-PSS', algorithm: { name: 'RSA-PSS', hash: 'SHA-256' }, usages: { private: ['sign'], public: ['verify'] }, formats: ['pkcs8', 'jwk', 'spki'] },
    ];
    async function payloadOf(s: SubtleCrypto, p: (typeof PAYLOADS)[number]): Promise<{ secret?: CryptoKey; private?: CryptoKey; public?: CryptoKey }> {
      if (p.name === 'RSA-PSS') {
        const der = rsaPkcs8(1024);
        return {
          private: await s.importKey('pkcs8', der, p.algorithm as never, true, ['sign']),
          public: await s.importKey('spki', createPublicKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })).export({ format: 'der', type: 'spki' }), p.algorithm as never, true, ['verify']),
        };
      }
      const made = await s.generateKey(p.algorithm as never, true, [...(p.usages.secret ?? []), ...(p.usages.private ?? []), ...(p.usages.public ?? [])] as never);
      return 'privateKey' in made ? { private: (made as CryptoKeyPair).privateKey, public: (made as CryptoKeyPair).publicKey } : { secret: made as unknown as CryptoKey };
    }

    /** Keys made once per side and reused by every case (each case wraps and unwraps anew). */
    const made = new Map<string, Promise<unknown>>();
    function once<T>(s: SubtleCrypto, what: string, make: () => Promise<T>): Promise<T> {
      const id = `${s === native ? 'node' : 'door'} ${what}`;
      if (!made.has(id)) made.set(id, make());
      return made.get(id) as Promise<T>;
    }

    type Outcome = { ok: true; extractable: boolean; usages: string[]; exported: string } | { ok: false; error: string };
    /** Wraps the key, unwraps it, and exports what came back in the same format (or the error name). */
    async function roundTrip(s: SubtleCrypto, wrapper: (typeof WRAPPERS)[number], payload: (typeof PAYLOADS)[number], format: string, extractable: boolean): Promise<Outcome> {
      try {
        const { wrap, unwrap } = await once(s, `wrapper ${wrapper.name}`, () => wrapper.make(s));
        const keys = await once(s, `payload ${payload.name}`, () => payloadOf(s, payload));
        const kind = format === 'spki' || format === 'raw' ? (keys.public ? 'public' : 'secret') : keys.private ? 'private' : 'secret';
        const key = keys[kind]!;
        const wrapped = await s.wrapKey(format as never, key, wrap, wrapper.params as never);
        const usages = payload.usages[kind]!;
        const back = await s.unwrapKey(format as never, wrapped, unwrap, wrapper.params as never, payload.algorithm as never, extractable, usages as never);
        // A non-extractable key is compared by what it does: it exports nothing.
        const exported = back.extractable ? JSON.stringify(normalised(await s.exportKey(format as never, back))) : '';
        const original = back.extractable ? JSON.stringify(normalised(await s.exportKey(format as never, key))) : '';
        if (exported !== original) return { ok: false, error: `a different key came back: ${exported} for ${original}` };
        return { ok: true, extractable: back.extractable, usages: [...back.usages].sort(), exported: exported === '' ? '' : 'same key' };
      } catch (e) {
        return { ok: false, error: (e as Error).name };
      }
    }
    /** A JWK without its ext and key_ops (which follow the unwrapped key's flags), or bytes as hex. */
    function normalised(data: ArrayBuffer | JsonWebKey): unknown {
      if (data instanceof ArrayBuffer) return hex(data);
      const { ext: _ext, key_ops: _ops, ...rest } = data as JsonWebKey;
      return Object.fromEntries(Object.entries(rest).sort(([a], [b]) => a.localeCompare(b)));
    }

    for (const wrapper of WRAPPERS) {
      it(`under ${wrapper.name}: every key algorithm, format and extractable flag that Node round trips, the door round trips alike`, async () => {
        const differences: string[] = [];
        let nodeSucceeded = 0;
        for (const payload of PAYLOADS) {
          for (const format of payload.formats) {
            for (const extractable of [true, false]) {
              const label = `${format} ${payload.name}, unwrapped extractable=${extractable}`;
              const nodes = await roundTrip(native, wrapper, payload, format, extractable);
              const ours = await roundTrip(door, wrapper, payload, format, extractable);
              if (nodes.ok) nodeSucceeded += 1;
              if (JSON.stringify(ours) !== JSON.stringify(nodes)) differences.push(`${label}: Node ${JSON.stringify(nodes)}, door ${JSON.stringify(ours)}`);
            }
          }
        }
        expect(nodeSucceeded, 'Node round trips some of them').to.be.greaterThan(10);
        expect(differences).to.deep.equal([]);
      });
    }

    it("an unwrapped key's unknown curve or hash is NotSupportedError, as in Node", async () => {
      const ecPkcs8 = await native.exportKey('pkcs8', ((await native.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign'])) as CryptoKeyPair).privateKey);
      const iv = new Uint8Array(12);
      const cases: [string, ArrayBuffer | Uint8Array, object, KeyUsage[]][] = [
        ['ECDSA on P-999', ecPkcs8, { name: 'ECDSA', namedCurve: 'P-999' }, ['sign']],
        ['ECDH on constructor', ecPkcs8, { name: 'ECDH', namedCurve: 'constructor' }, ['deriveBits']],
        ['RSASSA-PKCS1-v1_5 with SHA-999', rsaPkcs8(2048), { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-999' }, ['sign']],
        ['RSA-OAEP with SHA-999', rsaPkcs8(2048), { name: 'RSA-OAEP', hash: 'SHA-999' }, ['decrypt']],
      ];
      for (const s of [door, native]) {
        const kek = await s.importKey('raw', new Uint8Array(16).fill(5), 'AES-GCM', false, ['encrypt', 'unwrapKey']);
        for (const [what, pkcs8, algorithm, usages] of cases) {
          const wrapped = await s.encrypt({ name: 'AES-GCM', iv }, kek, pkcs8);
          const e = await rejection(s.unwrapKey('pkcs8', wrapped, kek, { name: 'AES-GCM', iv }, algorithm as never, false, usages));
          expect(e.name, `${s === door ? 'the door' : 'Node'}: ${what}`).to.equal('NotSupportedError');
        }
      }
    });

    it('a JWK wrapped with AES-KW is padded to whole blocks as Node pads it: each side unwraps the other', async () => {
      const raw = new Uint8Array(32).fill(9);
      const kekOurs = await door.importKey('raw', raw, 'AES-KW', false, ['wrapKey', 'unwrapKey']);
      const kekNodes = await native.importKey('raw', raw, 'AES-KW', false, ['wrapKey', 'unwrapKey']);
      const hmac = { name: 'HMAC', hash: 'SHA-256' };
      const secretBytes = new Uint8Array(32).fill(1);
      const ours = await door.wrapKey('jwk', await door.importKey('raw', secretBytes, hmac, true, ['sign']), kekOurs, 'AES-KW');
      const nodes = await native.wrapKey('jwk', await native.importKey('raw', secretBytes, hmac, true, ['sign']), kekNodes, 'AES-KW');
      expect(ours.byteLength % 8).to.equal(0);
      for (const [s, kek, wrapped] of [[native, kekNodes, ours], [door, kekOurs, nodes]] as const) {
        const back = await s.unwrapKey('jwk', wrapped, kek, 'AES-KW', hmac, true, ['sign']);
        expect(hex(await s.exportKey('raw', back))).to.equal(hex(secretBytes.buffer));
      }
    });
  });
});
