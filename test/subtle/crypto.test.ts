/**
 * The Crypto object of the door: getRandomValues from the HSM's random pool with the standard
 * limits and errors, randomUUID, asynchronous HSM random bytes, and a thousand concurrent calls
 * on one session.
 */
import { expect } from 'chai';
import { MAX_RANDOM_VALUES_BYTES } from '../../src/subtle/index.js';
import { buf, native, openDoor, text, type CryptoKey, type CryptoKeyPair, type DoorFixture } from '../helpers/door.js';

let f: DoorFixture;
before(async () => {
  f = await openDoor();
  await f.crypto.ready();
});
after(() => f.close());

describe('subtle: Crypto', () => {
  it('getRandomValues fills integer arrays in place from the HSM pool, never the same bytes twice', () => {
    const before = f.crypto.randomStats();
    expect(before.pooled).to.be.at.least(MAX_RANDOM_VALUES_BYTES);
    const a = new Uint8Array(32);
    expect(f.crypto.getRandomValues(a)).to.equal(a);
    const b = f.crypto.getRandomValues(new Uint32Array(8));
    expect(buf(a).equals(buf(b))).to.equal(false);
    expect(buf(a).equals(Buffer.alloc(32))).to.equal(false);
    const after = f.crypto.randomStats();
    expect(after.fromHsm - before.fromHsm).to.equal(64);
    expect(after.fromFallback).to.equal(before.fromFallback);
    expect(after.pooled).to.equal(before.pooled - 64);
  });

  it('getRandomValues takes 65,536 bytes and refuses more with QuotaExceededError; non-integer arrays get TypeMismatchError', () => {
    expect(f.crypto.getRandomValues(new Uint8Array(MAX_RANDOM_VALUES_BYTES)).length).to.equal(MAX_RANDOM_VALUES_BYTES);
    expect(() => f.crypto.getRandomValues(new Uint8Array(MAX_RANDOM_VALUES_BYTES + 1))).to.throw(DOMException).with.property('name', 'QuotaExceededError');
    expect(() => f.crypto.getRandomValues(new Float64Array(4) as never)).to.throw(DOMException).with.property('name', 'TypeMismatchError');
    // The same behaviour as Node's own.
    expect(() => globalThis.crypto.getRandomValues(new Uint8Array(MAX_RANDOM_VALUES_BYTES + 1))).to.throw().with.property('name', 'QuotaExceededError');
  });

  it('the pool refills itself in the background from the HSM', async () => {
    for (let i = 0; i < 3; i++) f.crypto.getRandomValues(new Uint8Array(MAX_RANDOM_VALUES_BYTES));
    const drained = f.crypto.randomStats();
    expect(drained.fromFallback).to.be.greaterThan(0);
    await f.crypto.ready();
    expect(f.crypto.randomStats().pooled).to.be.at.least(MAX_RANDOM_VALUES_BYTES);
  });

  it('randomUUID gives version-4 UUIDs', () => {
    const ids = new Set(Array.from({ length: 100 }, () => f.crypto.randomUUID()));
    expect(ids.size).to.equal(100);
    for (const id of ids) expect(id).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('randomBytes asks the HSM directly, within the profile limit', async () => {
    const bytes = await f.crypto.randomBytes(100_000);
    expect(bytes.length).to.equal(100_000);
    const strict = await openDoor('cloudhsm');
    try {
      const err = await strict.crypto.randomBytes(70_000).then(() => null, (e: Error) => e);
      expect(err?.name).to.equal('OperationError');
      expect(err?.message).to.match(/65536/);
    } finally {
      await strict.close();
    }
  });

  it('a thousand concurrent calls on one session all succeed, with correct results', async function () {
    this.timeout(60_000);
    const s = f.subtle;
    const ec = (await s.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])) as CryptoKeyPair;
    const hmac = (await s.generateKey({ name: 'HMAC', hash: 'SHA-256' }, true, ['sign', 'verify'])) as unknown as CryptoKey;
    const aes = (await s.generateKey({ name: 'AES-GCM', length: 256 }, true, ['encrypt', 'decrypt'])) as unknown as CryptoKey;
    const nativeHmac = await native.importKey('raw', await s.exportKey('raw', hmac), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    const nativeAes = await native.importKey('raw', await s.exportKey('raw', aes), 'AES-GCM', false, ['decrypt']);
    const spki = await native.importKey('spki', await s.exportKey('spki', ec.publicKey), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
    const jobs = Array.from({ length: 1000 }, async (_, i) => {
      const data = text(`message ${i}`);
      switch (i % 5) {
        case 0:
          return native.verify({ name: 'ECDSA', hash: 'SHA-256' }, spki, await s.sign({ name: 'ECDSA', hash: 'SHA-256' }, ec.privateKey, data), data);
        case 1:
          return buf(await s.sign('HMAC', hmac, data)).equals(buf(await native.sign('HMAC', nativeHmac, data)));
        case 2: {
          const iv = new Uint8Array(12).fill(i % 256);
          return buf(await native.decrypt({ name: 'AES-GCM', iv }, nativeAes, await s.encrypt({ name: 'AES-GCM', iv }, aes, data))).equals(buf(data));
        }
        case 3:
          return buf(await s.digest('SHA-256', data)).equals(buf(await native.digest('SHA-256', data)));
        default: {
          const key = (await s.generateKey({ name: 'AES-CTR', length: 128 }, false, ['encrypt'])) as unknown as CryptoKey;
          return (await s.encrypt({ name: 'AES-CTR', counter: new Uint8Array(16), length: 64 }, key, data)).byteLength === data.length;
        }
      }
    });
    const results = await Promise.allSettled(jobs);
    const failed = results.filter((r) => r.status === 'rejected' || r.value !== true);
    expect(failed.length, String((failed[0] as PromiseRejectedResult | undefined)?.reason)).to.equal(0);
  });
});
