/**
 * CryptoKeys at the door are handles: nothing reachable from them holds key bytes; the HSM
 * enforces extractable and usages (not only the provider); wrapKey, unwrapKey and deriveKey are
 * one HSM request each; keys are session keys that go when the CryptoKey is collected or the
 * session logs out; and the HSM's sharing rules and profile limits keep applying.
 */
import { inspect } from 'node:util';
import { expect } from 'chai';
import { createMember, type Request } from '../../src/hsm-core/index.js';
import { HsmSession } from '../../src/app/index.js';
import { Cluster, InProcessTransport, type Transport } from '../../src/cluster-client/index.js';
import { buf, openDoor, text, type CryptoKey, type CryptoKeyPair, type DoorFixture, type SubtleCrypto } from '../helpers/door.js';
import { rejection } from '../helpers/refusal.js';

let f: DoorFixture;
before(async () => {
  f = await openDoor();
});
after(() => f.close());


/** Every value reachable from `root` through own and inherited properties (getters included), symbols too. */
function reachable(root: unknown): unknown[] {
  const seen = new Set<unknown>();
  const queue = [root];
  while (queue.length) {
    const value = queue.shift();
    if (value === null || (typeof value !== 'object' && typeof value !== 'function') || seen.has(value)) continue;
    seen.add(value);
    for (let o: object | null = value as object; o && o !== Object.prototype && o !== Function.prototype; o = Object.getPrototypeOf(o)) {
      for (const key of Reflect.ownKeys(o)) {
        let v: unknown;
        try {
          v = Reflect.get(o, key, value);
        } catch {
          continue;
        }
        queue.push(v);
      }
    }
  }
  return [...seen];
}

describe('subtle: CryptoKeys are handles', () => {
  it('have the spec shape: type, algorithm, extractable, usages, and the CryptoKey tag', async () => {
    const key = (await f.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt'])) as unknown as CryptoKey;
    expect(Object.prototype.toString.call(key)).to.equal('[object CryptoKey]');
    expect(key.type).to.equal('secret');
    expect(key.algorithm).to.deep.equal({ name: 'AES-GCM', length: 256 });
    expect(key.extractable).to.equal(false);
    expect(key.usages).to.deep.equal(['encrypt', 'decrypt']);
    expect(inspect(key)).to.match(/^CryptoKey \{/);
  });

  it("a key of Node's own WebCrypto, a look-alike or no object at all has no handle here, and is refused as a key", async () => {
    const native = await globalThis.crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt']);
    const door = (await f.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt'])) as unknown as CryptoKey;
    const lookAlike = Object.create(Object.getPrototypeOf(door), Object.getOwnPropertyDescriptors(door)) as CryptoKey;
    for (const other of [native, lookAlike, structuredClone(door), {}, null, 5, 'key']) expect(f.crypto.handleOf(other as never)).to.equal(null);
    expect(f.crypto.handleOf(door)).to.be.a('number');
    const copied = await rejection(f.subtle.encrypt({ name: 'AES-GCM', iv: new Uint8Array(12) }, lookAlike, new Uint8Array(16)));
    expect([copied.name, copied.message]).to.deep.equal(['InvalidAccessError', 'the key is not a Strongroom CryptoKey (import it into this session first)']);
    // A clone is a plain object: not a CryptoKey at all.
    const cloned = await rejection(f.subtle.encrypt({ name: 'AES-GCM', iv: new Uint8Array(12) }, structuredClone(door) as CryptoKey, new Uint8Array(16)));
    expect([cloned.name, cloned.message]).to.deep.equal(['TypeError', "Key is not of type 'CryptoKey'"]);
  });

  it('no key bytes are reachable from a non-extractable key: properties, prototypes, structuredClone, util.inspect', async () => {
    // Make the key from known bytes, so that we can look for them.
    const secret = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
    const key = await f.subtle.importKey('raw', new Uint8Array(secret), 'AES-GCM', false, ['encrypt']);
    secret.fill(0);
    const needle = '000102030405060708090a0b0c0d0e0f';
    for (const value of reachable(key)) {
      if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) {
        expect(buf(value as ArrayBuffer).toString('hex')).to.not.include(needle);
      }
      if (typeof value === 'object' && value !== null && 'handle' in value) expect.fail('a handle is reachable from the CryptoKey');
    }
    const clone = structuredClone(key) as unknown;
    expect(inspect(clone, { depth: 10, showHidden: true })).to.not.include(needle.slice(0, 8));
    for (const value of reachable(clone)) expect(ArrayBuffer.isView(value) || value instanceof ArrayBuffer).to.equal(false);
    expect(inspect(key, { depth: 10, showHidden: true })).to.not.match(/0001020304|AAECAwQF|handle/);
    expect(JSON.stringify(key)).to.not.include('AAECAwQF');
  });

  it('extractable=false is the HSM attribute: the HSM itself refuses the export, and it is audited', async () => {
    const key = (await f.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])) as unknown as CryptoKey;
    const [info] = (await f.session.send({ op: 'findKeys', filter: { attributes: { 'key-type': 'generic-secret', extractable: false } } })).keys.slice(-1);
    expect(info!.attributes.extractable).to.equal(false);
    expect(info!.attributes.sensitive).to.equal(true);
    expect(info!.sessionKey).to.equal(true);
    // Even if the object claims otherwise, the HSM decides.
    const forged = Object.create(Object.getPrototypeOf(key), { ...Object.getOwnPropertyDescriptors(key), extractable: { value: true } }) as CryptoKey;
    expect(forged.extractable).to.equal(true);
    const err = await f.subtle.exportKey('raw', key).then(() => null, (e: Error) => e);
    expect(err?.name).to.equal('InvalidAccessError');
    expect((err as { cause?: { code?: string } }).cause?.code).to.equal('KEY_NOT_EXTRACTABLE');
    // The refusal is in the audit log (admins read it), against this key, for this user.
    const admin = await f.cluster.login('admin', 'admin-password');
    const records = (await admin.send({ op: 'getAuditLog', maxItems: 10_000 })).records; // one member
    await admin.logout();
    expect(records.filter((r) => r.keyHandles.includes(info!.handle) && r.response === 'KEY_NOT_EXTRACTABLE').map((r) => [r.opcode, r.user])).to.deep.equal([['SR_EXPORT_KEY', 'app']]);
  });

  it('usages are HSM attributes: a key used outside them is refused by the HSM', async () => {
    const key = (await f.subtle.generateKey({ name: 'AES-CBC', length: 128 }, true, ['encrypt'])) as unknown as CryptoKey;
    const handle = (await f.session.send({ op: 'findKeys', filter: { attributes: { 'key-type': 'aes', encrypt: true, decrypt: false } } })).keys.at(-1)!.handle;
    const attrs = (await f.session.send({ op: 'getAttributes', handle })).attributes;
    expect({ encrypt: attrs.encrypt, decrypt: attrs.decrypt, wrap: attrs.wrap, sign: attrs.sign }).to.deep.equal({ encrypt: true, decrypt: false, wrap: false, sign: false });
    // The CryptoKey's usages cannot be rewritten …
    expect(() => {
      (key as { usages: string[] }).usages = ['encrypt', 'decrypt'];
    }).to.throw(TypeError);
    // … and a forged object with more usages gets past webcrypto-core, but not the HSM.
    const forged = Object.create(Object.getPrototypeOf(key), { ...Object.getOwnPropertyDescriptors(key), usages: { value: ['encrypt', 'decrypt'] } }) as CryptoKey;
    const err = await f.subtle.decrypt({ name: 'AES-CBC', iv: new Uint8Array(16) }, forged, new Uint8Array(16)).then(() => null, (e: Error) => e);
    expect(err?.name).to.equal('InvalidAccessError');
  });

  it('a key from another session is refused with InvalidAccessError', async () => {
    const key = (await f.other.crypto.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])) as unknown as CryptoKey;
    const err = await f.subtle.sign('HMAC', key, text('x')).then(() => null, (e: Error) => e);
    expect(err?.name).to.equal('InvalidAccessError');
    expect(err?.message).to.match(/another session/);
  });
});

/** A session whose transport records the operations sent. */
async function spiedSession(): Promise<{ session: HsmSession; ops: string[]; subtle: SubtleCrypto }> {
  const member = await createMember({ profile: 'unlimited', passwordCost: 10 });
  const inner = new InProcessTransport(member);
  const ops: string[] = [];
  const spy: Transport = {
    description: 'spy',
    get alive() {
      return inner.alive;
    },
    onDown: (listener) => inner.onDown(listener),
    send: (request: unknown) => {
      ops.push((request as Request).op);
      return inner.send(request);
    },
    close: () => inner.close(),
  };
  const cluster = await Cluster.open([{ description: 'spy', start: async () => spy }]);
  await cluster.sendOnce({ op: 'activateCluster', password: 'admin-password' });
  const admin = new HsmSession(await cluster.login('admin', 'admin-password'));
  await admin.send({ op: 'createUser', username: 'app', password: 'app-password', role: 'crypto-user' });
  const session = new HsmSession(await cluster.login('app', 'app-password'));
  const subtle = session.crypto.subtle as unknown as SubtleCrypto;
  await session.crypto.ready();
  ops.length = 0;
  return { session, ops, subtle };
}

describe('subtle: wrapKey, unwrapKey and deriveKey are one HSM request each', () => {
  it('no export, decrypt, deriveBits or import reaches the HSM for them, even with extractable keys', async () => {
    const { ops, subtle } = await spiedSession();
    const kek = (await subtle.generateKey({ name: 'AES-KW', length: 256 }, true, ['wrapKey', 'unwrapKey'])) as unknown as CryptoKey;
    const payload = (await subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, true, ['sign'])) as unknown as CryptoKey;
    const base = await subtle.importKey('raw', text('input keying material'), 'HKDF', false, ['deriveKey']);
    const ecdh = (await subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveKey'])) as CryptoKeyPair;
    ops.length = 0;

    const wrapped = await subtle.wrapKey('raw', payload, kek, 'AES-KW');
    expect(ops.splice(0)).to.deep.equal(['wrapKey']);
    // A JWK is wrapped in the HSM too (padded with spaces to whole 8-byte blocks for AES-KW, as Node does).
    const wrappedJwk = await subtle.wrapKey('jwk', payload, kek, 'AES-KW');
    expect(wrappedJwk.byteLength % 8).to.equal(0);
    expect(ops.splice(0)).to.deep.equal(['wrapKey']);
    await subtle.unwrapKey('raw', wrapped, kek, 'AES-KW', { name: 'HMAC', hash: 'SHA-256' }, true, ['sign']);
    expect(ops.splice(0)).to.deep.equal(['unwrapKey']);
    await subtle.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(8), info: new Uint8Array(0) }, base, { name: 'AES-GCM', length: 256 }, true, ['encrypt']);
    expect(ops.splice(0)).to.deep.equal(['deriveKey']);
    await subtle.deriveKey({ name: 'ECDH', public: ecdh.publicKey }, ecdh.privateKey, { name: 'HMAC', hash: 'SHA-1', length: 256 }, true, ['sign']);
    expect(ops.splice(0)).to.deep.equal(['deriveKey']);
  });
});

describe('subtle: session keys', () => {
  it('a garbage-collected CryptoKey takes its HSM object with it', async function () {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (!gc) this.skip();
    // AES-192 keys are made only here, so other tests' keys (collected too) do not count.
    const aes192 = async () => (await f.session.send({ op: 'findKeys', maxItems: 10_000, filter: { attributes: { 'key-length-bytes': 24 } } })).keys.length;
    expect(await aes192()).to.equal(0);
    await (async () => {
      for (let i = 0; i < 20; i++) await f.subtle.generateKey({ name: 'AES-GCM', length: 192 }, false, ['encrypt']);
    })();
    const kept = (await f.subtle.generateKey({ name: 'AES-GCM', length: 192 }, false, ['encrypt'])) as unknown as CryptoKey;
    expect(await aes192()).to.be.greaterThan(1);
    for (let attempt = 0; attempt < 50 && (await aes192()) > 1; attempt++) {
      gc!();
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await aes192()).to.equal(1);
    // The key still referenced still works.
    await f.subtle.encrypt({ name: 'AES-GCM', iv: new Uint8Array(12) }, kept, text('still here'));
  });

  it('logout destroys every key the session made, and its CryptoKeys stop working', async () => {
    const session = await f.cluster.login('app', 'app-password');
    const subtle = session.crypto.subtle as unknown as SubtleCrypto;
    const key = (await subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])) as unknown as CryptoKey;
    await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
    // Every member's count of objects, whoever can see them: the HMAC key and the pair's two go.
    const objects = async () => (await f.cluster.hsmInfo()).reduce((n, member) => n + member.keys, 0);
    expect((await session.send({ op: 'findKeys' })).keys.filter((k) => k.sessionKey)).to.have.length(3);
    const before = await objects();
    await session.logout();
    expect(await objects()).to.equal(before - 3);
    const err = await subtle.sign('HMAC', key, text('x')).then(() => null, (e: Error) => e);
    expect(err?.name).to.equal('OperationError');
    expect(err?.message).to.match(/logged out/);
  });

  it('keys are created as session keys (token=false)', async () => {
    await f.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
    const ed = (await f.session.send({ op: 'findKeys', filter: { attributes: { 'key-type': 'ed25519' } } })).keys;
    expect(ed.length).to.be.greaterThan(0);
    for (const k of ed) expect(k.attributes.token).to.equal(false);
  });
});

describe('subtle: the HSM rules keep applying', () => {
  it('a key shared with this user can be used but not exported', async () => {
    const { handle } = await f.other.send({
      op: 'generateKey',
      keyType: 'generic-secret',
      lengthBytes: 32,
      attributes: { token: true, sign: true, verify: true, extractable: true, sensitive: false, label: 'shared-hmac' },
    });
    await f.other.send({ op: 'shareKey', handle, username: 'app' });
    const key = await f.crypto.keyFromHandle(handle, { name: 'HMAC', hash: 'SHA-256' });
    expect(key.usages).to.deep.equal(['sign', 'verify']);
    const mac = await f.subtle.sign('HMAC', key, text('hello'));
    expect(await f.subtle.verify('HMAC', key, mac, text('hello'))).to.equal(true);
    const err = await f.subtle.exportKey('raw', key).then(() => null, (e: Error) => e);
    expect(err?.name).to.equal('InvalidAccessError');
    expect((err as { cause?: { code?: string } }).cause?.code).to.equal('NOT_KEY_OWNER');
    // The owner can export it; a key opened by handle is not deleted when collected.
    const mine = await f.other.crypto.keyFromHandle(handle, { name: 'HMAC', hash: 'SHA-256' });
    expect(buf(await f.other.crypto.subtle.exportKey('raw', mine)).length).to.equal(32);
    const wrong = await f.crypto.keyFromHandle(handle, { name: 'AES-GCM' }).then(() => null, (e: Error) => e);
    expect(wrong?.name).to.equal('InvalidAccessError');
    expect(wrong?.message).to.match(/^key 0x[0-9a-f]{16} has no usage attribute that AES-GCM uses \(/);
    const notAes = await f.crypto.keyFromHandle(handle, { name: 'CLOUDHSM-AES-CMAC' }).then(() => null, (e: Error) => e);
    expect(notAes?.name).to.equal('InvalidAccessError');
    expect(notAes?.message).to.match(/^key 0x[0-9a-f]{16} is a generic-secret secret-key, not a CLOUDHSM-AES-CMAC key$/);
  });

  it('a key opened by handle on a curve the door does not know is NotSupportedError, and on another curve InvalidAccessError', async () => {
    const ec = (await f.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])) as CryptoKeyPair;
    const handle = f.crypto.handleOf(ec.privateKey)!;
    for (const namedCurve of ['P-999', 'constructor']) {
      const e = await rejection(f.crypto.keyFromHandle(handle, { name: 'ECDSA', namedCurve }));
      expect(e.name).to.equal('NotSupportedError');
      expect(e.message).to.match(new RegExp(`^namedCurve: expected one of P-256, P-384, P-521\\b.*, got ${namedCurve}$`));
    }
    const e = await rejection(f.crypto.keyFromHandle(handle, { name: 'ECDSA', namedCurve: 'P-384' }));
    expect([e.name, e.message]).to.deep.equal(['InvalidAccessError', `key ${(await f.session.send({ op: 'getAttributes', handle })).keyReference} is an ec private-key on secp256r1, not an ECDSA key`]);
    const opened = await f.crypto.keyFromHandle(handle, { name: 'ECDSA', namedCurve: 'P-256' });
    expect(opened.algorithm).to.deep.equal({ name: 'ECDSA', namedCurve: 'P-256' });
  });

  it('the profile data limits become an OperationError that names the limit', async () => {
    const door = await openDoor('cloudhsm');
    try {
      const key = (await door.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt'])) as unknown as CryptoKey;
      const err = await door.subtle.encrypt({ name: 'AES-GCM', iv: new Uint8Array(12) }, key, new Uint8Array(20_000)).then(() => null, (e: Error) => e);
      expect(err?.name).to.equal('OperationError');
      expect(err?.message).to.match(/16224/);
      const x = await door.subtle.generateKey('X25519', false, ['deriveBits']).then(() => null, (e: Error) => e);
      expect(x?.name).to.equal('NotSupportedError');
      const small = await door.subtle
        .generateKey({ name: 'RSA-PSS', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, false, ['sign'])
        .then(() => null, (e: Error) => e);
      expect(small?.name).to.equal('OperationError');
      expect(small?.message).to.match(/2048/);
    } finally {
      await door.close();
    }
  });

  it('AES-GCM at the door honours the caller IV (the same IV gives the same ciphertext)', async () => {
    const key = (await f.subtle.generateKey({ name: 'AES-GCM', length: 128 }, false, ['encrypt'])) as unknown as CryptoKey;
    const iv = new Uint8Array(12).fill(9);
    const a = await f.subtle.encrypt({ name: 'AES-GCM', iv }, key, text('same'));
    const b = await f.subtle.encrypt({ name: 'AES-GCM', iv }, key, text('same'));
    expect(buf(a).equals(buf(b))).to.equal(true);
    expect(a.byteLength).to.equal(4 + 16);
  });

  it('an unwrapped JWK that says ext=false cannot become extractable, even inside the HSM', async () => {
    const kek = (await f.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['wrapKey', 'unwrapKey', 'encrypt'])) as unknown as CryptoKey;
    const iv = new Uint8Array(12);
    const jwk = text(JSON.stringify({ kty: 'oct', k: 'AAAAAAAAAAAAAAAAAAAAAA', ext: false }));
    const wrapped = await f.subtle.encrypt({ name: 'AES-GCM', iv }, kek, jwk);
    const err = await f.subtle.unwrapKey('jwk', wrapped, kek, { name: 'AES-GCM', iv }, 'AES-CBC', true, ['encrypt']).then(() => null, (e: Error) => e);
    expect(err?.name).to.equal('DataError');
    const ok = await f.subtle.unwrapKey('jwk', wrapped, kek, { name: 'AES-GCM', iv }, 'AES-CBC', false, ['encrypt']);
    expect(ok.extractable).to.equal(false);
  });
});
