/**
 * The door itself: whatever arrives, the member answers with data (never throws), a refusal has
 * a stable code and a message naming what was wrong, and a refusal changes nothing. Ends with a
 * seeded fuzz run over mutated requests.
 */
import { expect } from 'chai';
import { HSM_ERROR_CODES, type HsmErrorCode } from '../../src/hsm-core/index.js';
import { activatedMember, bytes, snapshot, type Fixture } from '../helpers/member.js';
import { prng, testSeed } from '../helpers/random.js';

describe('hsm-core: bad requests', () => {
  let f: Fixture;
  let key: number;
  before(async () => {
    f = await activatedMember();
    key = (await f.m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { encrypt: true, decrypt: true, token: true } })).handle;
  });

  const cases: [string, (f: Fixture, key: number) => unknown, HsmErrorCode, RegExp | string][] = [
    ['null', () => null, 'BAD_REQUEST', 'request: expected an object with an op'],
    ['an array', () => [], 'BAD_REQUEST', 'request: expected an object with an op'],
    ['a string', () => 'login', 'BAD_REQUEST', 'request: expected an object with an op'],
    ['no op', () => ({}), 'UNKNOWN_OPERATION', 'op: unknown operation undefined'],
    ['an unknown op', () => ({ op: 'formatHsm' }), 'UNKNOWN_OPERATION', 'op: unknown operation "formatHsm"'],
    ['an inherited name as op', () => ({ op: 'constructor' }), 'UNKNOWN_OPERATION', 'op: unknown operation "constructor"'],
    ['an unknown field', (f) => ({ op: 'findKeys', session: f.alice, everything: true }), 'BAD_REQUEST', 'findKeys: unknown field everything'],
    ['a missing field', (f, k) => ({ op: 'encrypt', session: f.alice, handle: k, data: bytes('00') }), 'BAD_REQUEST', 'encrypt.mechanism: required'],
    ['a string for a number', (f) => ({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: '32' }), 'BAD_REQUEST', /^generateKey\.lengthBytes: expected number, received string/],
    ['a fraction for an integer', (f) => ({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 1.5 }), 'BAD_REQUEST', /^generateKey\.lengthBytes: expected int/],
    ['a string for bytes', (f, k) => ({ op: 'encrypt', session: f.alice, handle: k, mechanism: { name: 'aes-gcm' }, data: 'secret' }), 'BAD_REQUEST', 'encrypt.data: expected bytes (a Uint8Array), got string'],
    ['an array for bytes', (f, k) => ({ op: 'encrypt', session: f.alice, handle: k, mechanism: { name: 'aes-gcm' }, data: [1, 2] }), 'BAD_REQUEST', 'encrypt.data: expected bytes (a Uint8Array), got an array'],
    ['a negative handle', (f) => ({ op: 'getAttributes', session: f.alice, handle: -1 }), 'BAD_REQUEST', /^getAttributes\.handle: /],
    ['an unsafe handle', (f) => ({ op: 'getAttributes', session: f.alice, handle: 2 ** 60 }), 'BAD_REQUEST', /^getAttributes\.handle: /],
    ['an unknown mechanism', (f, k) => ({ op: 'encrypt', session: f.alice, handle: k, mechanism: { name: 'rot13' }, data: bytes('00') }), 'BAD_REQUEST', 'encrypt.mechanism.name: unknown name "rot13"'],
    ['a mechanism parameter of another mechanism', (f, k) => ({ op: 'encrypt', session: f.alice, handle: k, mechanism: { name: 'aes-ecb', iv: bytes('00') }, data: bytes('00') }), 'BAD_REQUEST', 'encrypt.mechanism: unknown field iv'],
    ['an unknown key type', (f) => ({ op: 'generateKey', session: f.alice, keyType: 'des3', lengthBytes: 24 }), 'BAD_REQUEST', /^generateKey\.keyType: /],
    ['a session that is a number', () => ({ op: 'findKeys', session: 42 }), 'BAD_REQUEST', /^findKeys\.session: expected string/],
    ['an unknown handle', (f) => ({ op: 'encrypt', session: f.alice, handle: 123456, mechanism: { name: 'aes-gcm' }, data: bytes('00') }), 'KEY_NOT_FOUND', 'no key 0x000000000001e240 that alice can see'],
    ['data over the profile limit', (f, k) => ({ op: 'encrypt', session: f.alice, handle: k, mechanism: { name: 'aes-gcm' }, data: new Uint8Array(16_225) }), 'LIMIT_EXCEEDED', /^data is 16225 bytes; the cloudhsm profile allows at most 16224 bytes per aes-gcm call/],
    ['an AES-GCM IV over 255 bytes', (f, k) => ({ op: 'encrypt', session: f.alice, handle: k, mechanism: { name: 'aes-gcm', iv: new Uint8Array(256) }, data: bytes('00') }), 'MECHANISM_PARAM_INVALID', 'mechanism.iv: an AES-GCM IV has 1–255 bytes (12 recommended), not 256'],
    ['a wrong-size RSA modulus', (f) => ({ op: 'generateKeyPair', session: f.alice, keyType: 'rsa', modulusBits: 1024 }), 'KEY_SIZE_INVALID', /^an RSA modulus is 2048–4096 bits in steps of 256 under the cloudhsm profile, not 1024/],
    ['a curve for an RSA key', (f) => ({ op: 'generateKeyPair', session: f.alice, keyType: 'rsa', modulusBits: 2048, curve: 'secp256r1' }), 'BAD_REQUEST', 'curve: not a parameter of rsa key pairs'],
    ['ECDH with two peers', (f, k) => ({ op: 'deriveBits', session: f.alice, baseHandle: k, mechanism: { name: 'ecdh', publicHandle: k, publicKey: bytes('00') } }), 'ATTRIBUTE_FORBIDS_OPERATION', /derive=false/],
  ];

  for (const [what, request, code, message] of cases) {
    it(`${what}: ${code}, and nothing changes`, async () => {
      const before = await snapshot(f);
      const auditBefore = (await f.m.ok({ op: 'getHsmInfo' })).auditHead.sequence;
      const response = await f.m.raw(request(f, key));
      expect(response.ok).to.equal(false);
      if (response.ok) return;
      expect(response.error.code).to.equal(code);
      if (typeof message === 'string') expect(response.error.message).to.equal(message);
      else expect(response.error.message).to.match(message);
      expect(await snapshot(f)).to.equal(before);
      // The only trace a refusal may leave is its own audit record (management operations only).
      const added = (await f.m.ok({ op: 'getAuditLog', session: f.admin, fromSequence: auditBefore + 1 })).records;
      expect(added.length).to.be.at.most(1);
      if (added.length) expect(added[0]!.response).to.equal(code);
    });
  }

  it('a request object is not changed by the member, and the answer does not alias it', async () => {
    const data = bytes('00112233');
    const request = { op: 'encrypt', session: f.alice, handle: key, mechanism: { name: 'aes-cbc-pad', iv: new Uint8Array(16) }, data } as const;
    const copy = JSON.stringify(request, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v));
    const out = await f.m.ok(request);
    expect(JSON.stringify(request, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v))).to.equal(copy);
    out.data.fill(0);
    expect(Buffer.from(data).toString('hex')).to.equal('00112233');
  });
});

const FUZZ_SEED = testSeed(20261123);

describe('hsm-core: fuzzed requests', function () {
  this.timeout(120_000);

  it(`never throw, never fail unexpectedly, and leave the member unchanged whenever they are refused (seed ${FUZZ_SEED})`, async () => {
    const seed = FUZZ_SEED;
    const random = prng(seed);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const f = await activatedMember();
    const { m } = f;
    const aes = (await m.ok({ op: 'generateKey', session: f.alice, keyType: 'aes', lengthBytes: 32, attributes: { encrypt: true, decrypt: true, wrap: true, unwrap: true, sign: true, verify: true, token: true } })).handle;
    const pair = await m.ok({ op: 'generateKeyPair', session: f.alice, keyType: 'ec', curve: 'secp256r1', privateAttributes: { sign: true, derive: true, token: true }, publicAttributes: { verify: true, token: true } });
    const secret = (await m.ok({ op: 'generateKey', session: f.alice, keyType: 'generic-secret', lengthBytes: 32, attributes: { sign: true, derive: true, token: true } })).handle;
    const handles = [aes, pair.privateHandle, pair.publicHandle, secret, 0, 1, 999_999];
    const sessions = [f.alice, f.bob, f.admin, f.appliance, 'nonsense'];

    const bases = (): Record<string, unknown>[] => [
      { op: 'encrypt', session: f.alice, handle: aes, mechanism: { name: 'aes-gcm', iv: new Uint8Array(12) }, data: bytes('0011') },
      { op: 'decrypt', session: f.alice, handle: aes, mechanism: { name: 'aes-cbc-pad', iv: new Uint8Array(16) }, data: new Uint8Array(16) },
      { op: 'sign', session: f.alice, handle: pair.privateHandle, mechanism: { name: 'ecdsa', hash: 'sha256' }, data: bytes('00') },
      { op: 'verify', session: f.alice, handle: secret, mechanism: { name: 'hmac', hash: 'sha256' }, data: bytes('00'), signature: new Uint8Array(32) },
      { op: 'wrapKey', session: f.alice, mechanism: { name: 'aes-zero-pad' }, wrappingHandle: aes, payloadHandle: secret },
      { op: 'unwrapKey', session: f.alice, mechanism: { name: 'aes-no-pad' }, unwrappingHandle: aes, wrapped: new Uint8Array(40), keyClass: 'secret-key', keyType: 'aes' },
      { op: 'deriveBits', session: f.alice, baseHandle: secret, mechanism: { name: 'hkdf', hash: 'sha256', salt: bytes(''), info: bytes('') }, lengthBits: 256 },
      { op: 'deriveBits', session: f.alice, baseHandle: pair.privateHandle, mechanism: { name: 'ecdh', publicHandle: pair.publicHandle } },
      { op: 'setAttributes', session: f.alice, handle: aes, attributes: { label: 'fuzz' } },
      { op: 'importKey', session: f.alice, keyClass: 'public-key', keyType: 'ec', format: 'raw', keyData: new Uint8Array(65), curve: 'secp256r1' },
      { op: 'importKey', session: f.alice, keyClass: 'private-key', keyType: 'ec', format: 'jwk', keyData: { kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA', d: 'AA' } },
      { op: 'exportKey', session: f.alice, handle: pair.publicHandle, format: 'jwk' },
      { op: 'findKeys', session: f.alice, filter: { attributes: { label: 'fuzz' } }, maxItems: 2, startingToken: '0' },
      { op: 'shareKey', session: f.alice, handle: aes, username: 'bob' },
      { op: 'createUser', session: f.admin, username: 'zed', password: 'zed-password', role: 'crypto-user' },
      { op: 'changePassword', session: f.admin, username: 'nobody', password: 'new-password' },
      { op: 'extractMaskedObject', session: f.alice, handle: aes },
      { op: 'insertMaskedObject', session: f.alice, maskedObject: new Uint8Array(60) },
      { op: 'getAuditLog', session: f.admin, fromSequence: 0, maxItems: 1 },
      { op: 'generateRandom', session: f.alice, length: 8 },
    ];

    const values = (): unknown[] => [
      undefined,
      null,
      '',
      'x'.repeat(300),
      'sha256',
      'aes-gcm',
      -1,
      0,
      1.5,
      2 ** 53,
      Number.NaN,
      true,
      [],
      [1, 2, 3],
      {},
      { name: 'aes-gcm' },
      { name: 'hmac', hash: 'md5' },
      new Uint8Array(0),
      new Uint8Array(Math.floor(random() * 300)),
      pick(handles),
      pick(sessions),
      { label: 'x', extractable: true },
      { trusted: true },
      { 'wrap-template': { class: 'secret-key' } },
      Object.create(null),
    ];

    function mutate(request: Record<string, unknown>): Record<string, unknown> {
      const out: Record<string, unknown> = { ...request };
      const steps = 1 + Math.floor(random() * 3);
      for (let i = 0; i < steps; i++) {
        const keys = Object.keys(out);
        const field = pick(keys);
        const action = random();
        if (action < 0.15) delete out[field];
        else if (action < 0.25) out[`${field}_`] = out[field];
        else if (action < 0.4 && out[field] && typeof out[field] === 'object' && !(out[field] instanceof Uint8Array)) {
          const inner: Record<string, unknown> = { ...(out[field] as Record<string, unknown>) };
          const innerKeys = Object.keys(inner);
          if (innerKeys.length) inner[pick(innerKeys)] = pick(values());
          out[field] = inner;
        } else out[field] = pick(values());
      }
      return out;
    }

    let baseline = await snapshot(f);
    let refusals = 0;
    for (let i = 0; i < 1500; i++) {
      const request = mutate(pick(bases()));
      let response;
      try {
        response = await m.raw(request);
      } catch (e) {
        expect.fail(`seed ${seed}, case ${i}: handle threw ${String(e)}`);
      }
      if (response.ok) {
        baseline = await snapshot(f);
        continue;
      }
      refusals += 1;
      const { code, message } = response.error;
      expect(HSM_ERROR_CODES, `seed ${seed}, case ${i}`).to.include(code);
      expect(code, `seed ${seed}, case ${i}: ${message}`).to.not.equal('INTERNAL_ERROR');
      expect(message, `seed ${seed}, case ${i}`).to.be.a('string').and.not.equal('');
      expect(message, `seed ${seed}, case ${i}`).to.not.include('\n');
      expect(await snapshot(f), `seed ${seed}, case ${i}: ${code} changed the member`).to.equal(baseline);
    }
    expect(refusals).to.be.greaterThan(500);
  });
});
