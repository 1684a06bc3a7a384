/**
 * The member's quicker reading of its commonest requests (src/hsm-core/hot-requests.ts) against
 * the schemas it stands in for: every request it accepts, the schema accepts with the same
 * result; every common request is taken by it. Seeded mutations of valid requests probe the edges.
 */
import { isDeepStrictEqual } from 'node:util';
import { expect } from 'chai';
import { requestSchemas } from '../../src/hsm-core/protocol.js';
import { readHotRequest } from '../../src/hsm-core/hot-requests.js';
import { seeded, testSeed } from '../helpers/random.js';

const SESSION = 'a'.repeat(32);
const bytes = (n: number) => new Uint8Array(n);

/** Valid requests: each hot op with each mechanism it reads quickly, with and without its optional fields. */
function valid(): Record<string, unknown>[] {
  const sign = [
    { name: 'hmac', hash: 'sha256' },
    { name: 'ecdsa', hash: 'sha384' },
    { name: 'ecdsa', hash: 'sha256', signatureFormat: 'der', prehashed: true },
    { name: 'ed25519' },
    { name: 'rsa-pkcs', hash: 'sha1', prehashed: false },
    { name: 'rsa-pkcs-pss', hash: 'sha512', saltLength: 0 },
    { name: 'rsa-pkcs-pss', hash: 'sha224', saltLength: 1024, prehashed: true },
  ];
  const ciphers = [
    { name: 'aes-gcm' },
    { name: 'aes-gcm', iv: bytes(12), aad: bytes(3), tagLengthBits: 96, webcrypto: true },
    { name: 'aes-cbc', iv: bytes(16) },
    { name: 'aes-cbc-pad', iv: bytes(16) },
    { name: 'aes-ctr', counter: bytes(16) },
    { name: 'aes-ctr', counter: bytes(16), counterBits: 128 },
    { name: 'rsa-oaep', hash: 'sha256', label: Buffer.from('label') },
  ];
  return [
    ...sign.map((mechanism) => ({ op: 'sign', session: SESSION, handle: 7, mechanism, data: bytes(10) })),
    ...sign.map((mechanism) => ({ op: 'verify', handle: 0, mechanism, data: Buffer.alloc(3), signature: bytes(64) })),
    ...ciphers.map((mechanism) => ({ op: 'encrypt', session: SESSION, handle: Number.MAX_SAFE_INTEGER, mechanism, data: bytes(0) })),
    ...ciphers.map((mechanism) => ({ op: 'decrypt', session: 's', handle: 1, mechanism, data: bytes(32) })),
    { op: 'digest', session: SESSION, hash: 'sha1', data: bytes(5) },
    { op: 'digest', hash: 'sha512', data: Buffer.alloc(0) },
  ];
}

class OwnBytes extends Uint8Array {}
const TRICKY: unknown[] = [
  undefined, null, 0, -1, -0, 1.5, 2 ** 53, NaN, Infinity, 1024, 1025, 32, 33, 128, 129, true, false, 'true', '', 'x'.repeat(129), 's',
  'sha256', 'sha3-256', 'SHA256', 'p1363', 'der', 'hmac', 'aes-gcm', 'ecdsa', [], {}, [1, 2],
  bytes(4), Buffer.alloc(2), new Uint16Array(2), new DataView(new ArrayBuffer(2)), new OwnBytes(2), Object.create(Uint8Array.prototype), new ArrayBuffer(4),
];
/** Values at and just past each field's bounds. */
const EDGES: Record<string, unknown[]> = {
  handle: [-1, -0, 0, 2 ** 53 - 1, 2 ** 53, 1.5],
  session: ['', 's', 'x'.repeat(128), 'x'.repeat(129)],
  hash: ['sha1', 'sha512', 'md5', 'sha-256'],
  saltLength: [-1, 0, 1024, 1025, 3.5],
  counterBits: [0, 1, 128, 129, 64.5],
  tagLengthBits: [24, 32, 96, 100, 128, 136],
  signatureFormat: ['p1363', 'der', 'raw'],
  webcrypto: [true, false, 1],
  prehashed: [true, false, 0],
};
const REQUEST_FIELDS = ['op', 'session', 'handle', 'mechanism', 'data', 'signature', 'hash', 'approval', 'extra', '__proto__', 'constructor'];
const MECHANISM_FIELDS = ['name', 'hash', 'iv', 'aad', 'tagLengthBits', 'webcrypto', 'saltLength', 'prehashed', 'signatureFormat', 'counter', 'counterBits', 'label', 'extra', '__proto__'];

/** A copy of `request` with one to three random changes, at the top level or in its mechanism. */
function mutate(request: Record<string, unknown>, r: ReturnType<typeof seeded>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...request, ...(request.mechanism ? { mechanism: { ...(request.mechanism as object) } } : {}) };
  for (let n = 1 + r.below(3); n > 0; n--) {
    const m = out.mechanism;
    const inMechanism = m !== null && typeof m === 'object' && r.below(2) === 1;
    const target = inMechanism ? (m as Record<string, unknown>) : out;
    const fields = inMechanism ? MECHANISM_FIELDS : REQUEST_FIELDS;
    const field = fields[r.below(fields.length)]!;
    switch (r.below(4)) {
      case 0:
        delete target[field];
        break;
      case 1:
        {
          const edges = EDGES[field];
          const value = edges && r.below(2) ? edges[r.below(edges.length)] : TRICKY[r.below(TRICKY.length)];
          Object.defineProperty(target, field, { value, enumerable: true, configurable: true, writable: true });
        }
        break;
      case 2:
        // the same fields, but one of them inherited rather than own
        if (field in target) {
          const value = target[field];
          delete target[field];
          Object.setPrototypeOf(target, { [field]: value });
        }
        break;
      default:
        target.name = ['hmac', 'ecdsa', 'ed25519', 'rsa-pkcs-pss', 'aes-gcm', 'aes-ctr', 'rsa-oaep', 'aes-ecb', 'cmac'][r.below(9)];
    }
  }
  return out;
}

/** What the schema makes of `request` as `op`, or null when it refuses it (or throws reading it, which the member also refuses). */
function schemaRead(op: string, request: Record<string, unknown>): unknown {
  try {
    const parsed = requestSchemas[op as 'sign'].safeParse(request);
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

describe('hsm-core: the quick reading of common requests', () => {
  it('takes every common request, giving exactly what the schema gives', () => {
    for (const request of valid()) {
      const quick = readHotRequest(request.op as string, request);
      expect(quick, JSON.stringify(request)).to.not.equal(undefined);
      expect(isDeepStrictEqual(quick, schemaRead(request.op as string, request)), JSON.stringify(request)).to.equal(true);
      // a new object: changing the request afterwards changes nothing read
      expect(quick).to.not.equal(request);
      if (request.mechanism) expect(quick!.mechanism).to.not.equal(request.mechanism);
    }
  });

  const seed = testSeed(2212);
  it(`accepts nothing the schema refuses, and reads nothing differently (40,000 seeded mutations, seed ${seed})`, () => {
    const r = seeded(seed);
    const requests = valid();
    const wrong: string[] = [];
    let taken = 0;
    let refusedBySchema = 0;
    for (let i = 0; i < 40_000; i++) {
      const request = mutate(requests[r.below(requests.length)]!, r);
      const op = typeof request.op === 'string' && Object.hasOwn(requestSchemas, request.op) ? request.op : 'sign';
      const quick = readHotRequest(op, request);
      const schema = schemaRead(op, request);
      if (schema === null) refusedBySchema += 1;
      if (quick === undefined) continue;
      taken += 1;
      if (schema === null || !isDeepStrictEqual(quick, schema)) wrong.push(`${i}: ${JSON.stringify(request)}`);
    }
    expect(wrong.slice(0, 5)).to.deep.equal([]);
    // The mutations reach both sides of the line: many are taken quickly, many refused.
    expect(taken).to.be.greaterThan(1000);
    expect(refusedBySchema).to.be.greaterThan(10_000);
  });

  it('leaves a quorum approval, an undefined optional field and other mechanisms to the schema', () => {
    const base = { op: 'sign', session: SESSION, handle: 1, data: bytes(1) };
    expect(readHotRequest('sign', { ...base, mechanism: { name: 'hmac', hash: 'sha256' }, approval: { approvalData: bytes(1), signatures: [] } })).to.equal(undefined);
    expect(readHotRequest('sign', { ...base, mechanism: { name: 'ecdsa', hash: 'sha256', prehashed: undefined } })).to.equal(undefined);
    expect(readHotRequest('sign', { ...base, mechanism: { name: 'cmac' } })).to.equal(undefined);
    expect(readHotRequest('encrypt', { ...base, op: 'encrypt', mechanism: { name: 'aes-ecb' } })).to.equal(undefined);
    expect(readHotRequest('wrapKey', { ...base, op: 'wrapKey' })).to.equal(undefined);
  });
});
