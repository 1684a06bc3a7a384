/**
 * The cryptographic operations' own checks (crypto-ops.ts): a mechanism takes only its key type,
 * random bytes stop at the profile's limit, and derived bits come in the length asked for.
 */
import { expect } from 'chai';
import { activatedMember, bytes } from '../helpers/member.js';

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
