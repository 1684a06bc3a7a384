/**
 * The mechanism registry: one entry per mechanism, holding which key type it takes and how it
 * runs. The member looks a mechanism up once and hands it the key; nothing else in hsm-core
 * switches on mechanism names. Tables have a null prototype, so a name such as `constructor`
 * finds nothing.
 *
 * @module
 */
import { timingSafeEqual, type KeyObject } from 'node:crypto';
import type { KeyType } from '../attributes.js';
import { HsmError } from '../errors.js';
import { checkDataLimit, type Profile } from '../profiles.js';
import type { CipherMechanism, DeriveMechanism, SignMechanism, WrapMechanism } from '../protocol.js';
import * as aes from './aes.js';
import { agree, ecdsaSign, ecdsaVerify, eddsaSign, eddsaVerify } from './ec.js';
import { HASH_BYTES, hmac } from './hash.js';
import { hkdf, pbkdf2, sp800108Counter, x963 } from './kdf.js';
import * as rsa from './rsa.js';
import * as prehashed from './prehashed.js';
import { curveOf as curveOfKey } from './keys.js';

type MechanismOf<U extends { name: string }, N extends U['name']> = Extract<U, { name: N }>;

export interface CipherEntry<M extends WrapMechanism = WrapMechanism> {
  /** The key type the mechanism takes (the class follows from the encrypt/decrypt attribute). */
  readonly keyType: KeyType;
  encrypt(key: KeyObject, mechanism: M, data: Uint8Array, profile: Profile): { data: Buffer; iv?: Buffer };
  decrypt(key: KeyObject, mechanism: M, data: Uint8Array, profile: Profile): Buffer;
  /**
   * The decrypt operation's form, where it differs: RSA's, which runs on an RSA thread when several
   * are in flight (pool.ts). Unwrapping always uses `decrypt`, so that no unwrapped key is made off
   * the member's thread.
   */
  decryptAsync?(key: KeyObject, mechanism: M, data: Uint8Array, profile: Profile): Promise<Buffer>;
}

function tagBytes(m: { tagLengthBits?: number | undefined }): number {
  return (m.tagLengthBits ?? 128) / 8;
}

/** The HSM's bounds on AES-GCM parameters (WebCrypto's are looser, and its door asks for them with `webcrypto`). */
export const GCM_MIN_IV_BYTES = 12;
export const GCM_MIN_TAG_BITS = 96;

function checkGcmBounds(m: { iv?: Uint8Array | undefined; tagLengthBits?: number | undefined; webcrypto?: true | undefined }): void {
  if (m.webcrypto) return;
  if (m.iv !== undefined && m.iv.length < GCM_MIN_IV_BYTES) {
    throw new HsmError('MECHANISM_PARAM_INVALID', `mechanism.iv: an AES-GCM IV has at least ${GCM_MIN_IV_BYTES} bytes (12 recommended; shorter ones repeat too soon), not ${m.iv.length}`);
  }
  if (m.tagLengthBits !== undefined && m.tagLengthBits < GCM_MIN_TAG_BITS) {
    throw new HsmError('MECHANISM_PARAM_INVALID', `mechanism.tagLengthBits: an AES-GCM tag has at least ${GCM_MIN_TAG_BITS} bits (shorter ones are forged too easily), not ${m.tagLengthBits}`);
  }
}

/**
 * Mechanisms that wrap keys. CTR, ECB and CBC without padding encrypt data only: a CTR keystream
 * or an ECB codebook that another user of the key can reproduce would give away a wrapped key.
 */
export const WRAP_MECHANISMS: ReadonlySet<WrapMechanism['name']> = new Set(['aes-gcm', 'cloudhsm-aes-gcm', 'aes-cbc-pad', 'aes-no-pad', 'aes-pkcs5-pad', 'aes-zero-pad', 'rsa-oaep', 'rsa-pkcs', 'rsa-aes']);

function table<T>(entries: T): T {
  return Object.assign(Object.create(null), entries) as T;
}

type CipherTable = { readonly [N in WrapMechanism['name']]: CipherEntry<MechanismOf<WrapMechanism, N>> };

export const CIPHERS: CipherTable = table<CipherTable>({
  'aes-gcm': {
    keyType: 'aes',
    encrypt(key, m, data, profile) {
      checkGcmBounds(m);
      checkDataLimit(profile, 'aes-gcm', data.length);
      const iv = m.iv ? Buffer.from(m.iv) : aes.newGcmIv();
      const out = aes.gcmEncrypt(key, iv, data, m.aad, tagBytes(m));
      return m.iv ? { data: out } : { data: out, iv };
    },
    decrypt(key, m, data, profile) {
      checkGcmBounds(m);
      checkDataLimit(profile, 'aes-gcm', data.length);
      if (!m.iv) throw new HsmError('MECHANISM_PARAM_INVALID', 'mechanism.iv: required to decrypt with aes-gcm');
      return aes.gcmDecrypt(key, m.iv, data, m.aad, tagBytes(m));
    },
  },
  'cloudhsm-aes-gcm': {
    keyType: 'aes',
    encrypt(key, m, data, profile) {
      checkGcmBounds(m);
      checkDataLimit(profile, 'aes-gcm', data.length);
      const iv = aes.newGcmIv();
      return { data: Buffer.concat([iv, aes.gcmEncrypt(key, iv, data, m.aad, tagBytes(m))]) };
    },
    decrypt(key, m, data, profile) {
      checkGcmBounds(m);
      checkDataLimit(profile, 'aes-gcm', data.length);
      if (data.length < aes.GCM_IV_BYTES) throw new HsmError('DATA_INVALID', 'data: cloudhsm-aes-gcm ciphertext starts with its 12-byte IV');
      return aes.gcmDecrypt(key, data.subarray(0, aes.GCM_IV_BYTES), data.subarray(aes.GCM_IV_BYTES), m.aad, tagBytes(m));
    },
  },
  'aes-cbc': {
    keyType: 'aes',
    encrypt: (key, m, data, profile) => (checkDataLimit(profile, 'aes-cbc', data.length), { data: aes.cbcEncrypt(key, m.iv, data, false) }),
    decrypt: (key, m, data, profile) => (checkDataLimit(profile, 'aes-cbc', data.length), aes.cbcDecrypt(key, m.iv, data, false)),
  },
  'aes-cbc-pad': {
    keyType: 'aes',
    encrypt: (key, m, data, profile) => (checkDataLimit(profile, 'aes-cbc', data.length), { data: aes.cbcEncrypt(key, m.iv, data, true) }),
    decrypt: (key, m, data, profile) => (checkDataLimit(profile, 'aes-cbc', data.length), aes.cbcDecrypt(key, m.iv, data, true)),
  },
  'aes-ctr': {
    keyType: 'aes',
    encrypt: (key, m, data) => ({ data: aes.ctr(key, m.counter, m.counterBits ?? 128, data) }),
    decrypt: (key, m, data) => aes.ctr(key, m.counter, m.counterBits ?? 128, data),
  },
  'aes-ecb': {
    keyType: 'aes',
    encrypt: (key, _m, data) => ({ data: aes.ecb(key, data, true) }),
    decrypt: (key, _m, data) => aes.ecb(key, data, false),
  },
  'rsa-oaep': {
    keyType: 'rsa',
    encrypt: (key, m, data) => ({ data: rsa.oaepEncrypt(key, m.hash, m.label, data) }),
    decrypt: (key, m, data) => rsa.oaepDecrypt(key, m.hash, m.label, data),
    decryptAsync: (key, m, data) => rsa.oaepDecryptAsync(key, m.hash, m.label, data),
  },
  'rsa-pkcs': {
    keyType: 'rsa',
    encrypt: (key, _m, data) => ({ data: rsa.pkcs1Encrypt(key, data) }),
    decrypt: (key, _m, data) => rsa.pkcs1Decrypt(key, data),
    decryptAsync: (key, _m, data) => rsa.pkcs1DecryptAsync(key, data),
  },
  'rsa-x-509': {
    keyType: 'rsa',
    encrypt: (key, _m, data) => ({ data: rsa.rawPublic(key, data) }),
    decrypt: (key, _m, data) => rsa.rawPrivate(key, data),
  },
  'aes-no-pad': {
    keyType: 'aes',
    encrypt: (key, m, data) => ({ data: aes.kwNoPadWrap(key, data, m.iv) }),
    decrypt: (key, m, data) => aes.kwNoPadUnwrap(key, data, m.iv),
  },
  'aes-pkcs5-pad': {
    keyType: 'aes',
    encrypt: (key, m, data) => ({ data: aes.kwPkcs5Wrap(key, data, m.iv) }),
    decrypt: (key, m, data) => aes.kwPkcs5Unwrap(key, data, m.iv),
  },
  'aes-zero-pad': {
    keyType: 'aes',
    encrypt: (key, _m, data) => ({ data: aes.kwZeroPadWrap(key, data) }),
    decrypt: (key, _m, data) => aes.kwZeroPadUnwrap(key, data),
  },
  'rsa-aes': {
    keyType: 'rsa',
    encrypt: (key, m, data) => ({ data: rsa.rsaAesWrap(key, m.hash, m.aesKeyBits ?? 256, data) }),
    decrypt: (key, m, data) => rsa.rsaAesUnwrap(key, m.hash, data),
  },
});

/**
 * The entry of a cipher mechanism. The request schemas already keep wrap-only mechanisms out of
 * encrypt and decrypt, so every name reaching here has an entry.
 */
export function cipherFor(mechanism: CipherMechanism | WrapMechanism): CipherEntry {
  return CIPHERS[mechanism.name] as CipherEntry;
}

export interface SignEntry<M extends SignMechanism = SignMechanism> {
  readonly keyTypes: readonly KeyType[];
  /** Asymmetric mechanisms answer asynchronously (thread pool); MACs synchronously. */
  sign(key: KeyObject, mechanism: M, data: Uint8Array, profile: Profile): Buffer | Promise<Buffer>;
  verify(key: KeyObject, mechanism: M, data: Uint8Array, signature: Uint8Array, profile: Profile): boolean | Promise<boolean>;
}

function macVerify(expected: Buffer, signature: Uint8Array): boolean {
  return expected.length === signature.length && timingSafeEqual(expected, signature);
}

type SignTable = { readonly [N in SignMechanism['name']]: SignEntry<MechanismOf<SignMechanism, N>> };

export const SIGNERS: SignTable = table<SignTable>({
  hmac: {
    keyTypes: ['generic-secret'],
    sign(key, m, data, profile) {
      checkDataLimit(profile, `hmac-${m.hash}`, data.length);
      return hmac(key, m.hash, data);
    },
    verify(key, m, data, signature, profile) {
      checkDataLimit(profile, `hmac-${m.hash}`, data.length);
      return macVerify(hmac(key, m.hash, data), signature);
    },
  },
  cmac: {
    keyTypes: ['aes'],
    sign: (key, _m, data) => aes.cmac(key, data),
    verify: (key, _m, data, signature) => macVerify(aes.cmac(key, data), signature),
  },
  'rsa-pkcs': {
    keyTypes: ['rsa'],
    sign: (key, m, data) => (m.prehashed ? prehashed.pkcs1SignDigest(key, m.hash, data) : rsa.pkcs1Sign(key, m.hash, data)),
    verify: (key, m, data, signature) => (m.prehashed ? prehashed.pkcs1VerifyDigest(key, m.hash, data, signature) : rsa.pkcs1Verify(key, m.hash, data, signature)),
  },
  'rsa-pkcs-raw': {
    keyTypes: ['rsa'],
    sign: (key, _m, data) => rsa.pkcs1SignRaw(key, data),
    verify: (key, _m, data, signature) => rsa.pkcs1VerifyRaw(key, data, signature),
  },
  'rsa-x-509': {
    keyTypes: ['rsa'],
    sign: (key, _m, data) => rsa.rawPrivate(key, data),
    verify: (key, _m, data, signature) => rsa.rawVerify(key, data, signature),
  },
  'rsa-pkcs-pss': {
    keyTypes: ['rsa'],
    sign: (key, m, data) => (m.prehashed ? prehashed.pssSignDigest(key, m.hash, m.saltLength, data) : rsa.pssSign(key, m.hash, m.saltLength, data)),
    verify: (key, m, data, signature) =>
      m.prehashed ? prehashed.pssVerifyDigest(key, m.hash, m.saltLength, data, signature) : rsa.pssVerify(key, m.hash, m.saltLength, data, signature),
  },
  ecdsa: {
    keyTypes: ['ec'],
    sign: (key, m, data) =>
      m.prehashed ? prehashed.ecdsaSignDigest(key, curveOfKey(key), m.hash, m.signatureFormat ?? 'p1363', data) : ecdsaSign(key, m.hash, m.signatureFormat ?? 'p1363', data),
    verify: (key, m, data, signature) =>
      m.prehashed
        ? prehashed.ecdsaVerifyDigest(key, curveOfKey(key), m.hash, m.signatureFormat ?? 'p1363', data, signature)
        : ecdsaVerify(key, m.hash, m.signatureFormat ?? 'p1363', data, signature),
  },
  ed25519: {
    keyTypes: ['ed25519'],
    sign: (key, _m, data) => eddsaSign(key, data),
    verify: (key, _m, data, signature) => eddsaVerify(key, data, signature),
  },
  ed25519ph: {
    keyTypes: ['ed25519'],
    sign: (key, m, data) => prehashed.ed25519phSign(key, data, m.prehashed === true),
    verify: (key, m, data, signature) => prehashed.ed25519phVerify(key, data, m.prehashed === true, signature),
  },
  ed448: {
    keyTypes: ['ed448'],
    sign: (key, _m, data) => eddsaSign(key, data),
    verify: (key, _m, data, signature) => eddsaVerify(key, data, signature),
  },
});

export interface DeriveEntry<M extends DeriveMechanism = DeriveMechanism> {
  readonly keyTypes: readonly KeyType[];
  /** Whether the output length may be left out (ECDH: the whole shared secret). */
  readonly naturalLength: boolean;
  /**
   * Derives `lengthBytes` bytes (or the natural length when null). `peer` is the resolved peer
   * public key for key agreement.
   */
  derive(key: KeyObject, mechanism: M, lengthBytes: number | null, peer: KeyObject | null, keyType: KeyType): Promise<Buffer>;
}

type DeriveTable = { readonly [N in DeriveMechanism['name']]: DeriveEntry<MechanismOf<DeriveMechanism, N>> };

export const DERIVERS: DeriveTable = table<DeriveTable>({
  ecdh: {
    keyTypes: ['ec', 'x25519', 'x448'],
    naturalLength: true,
    async derive(key, m, lengthBytes, peer) {
      const secret = agree(key, peer!);
      const kdf = m.kdf ?? 'null';
      if (kdf === 'null') {
        if (m.sharedInfo) throw new HsmError('MECHANISM_PARAM_INVALID', 'mechanism.sharedInfo: only with an X9.63 kdf');
        if (lengthBytes === null) return secret;
        if (lengthBytes > secret.length) {
          throw new HsmError('DATA_INVALID', `length: the shared secret has ${secret.length * 8} bits, fewer than the ${lengthBytes * 8} asked for`);
        }
        return secret.subarray(0, lengthBytes);
      }
      const hash = kdf.slice(5) as keyof typeof HASH_BYTES;
      return x963(secret, hash, m.sharedInfo ?? new Uint8Array(0), lengthBytes ?? HASH_BYTES[hash]);
    },
  },
  hkdf: {
    keyTypes: ['generic-secret', 'aes'],
    naturalLength: false,
    derive: async (key, m, lengthBytes) => hkdf(key, m.hash, m.salt, m.info, lengthBytes!),
  },
  pbkdf2: {
    keyTypes: ['generic-secret'],
    naturalLength: false,
    derive: (key, m, lengthBytes) => pbkdf2(key, m.hash, m.salt, m.iterations, lengthBytes!),
  },
  'sp800-108-counter': {
    keyTypes: ['generic-secret', 'aes'],
    naturalLength: false,
    async derive(key, m, lengthBytes, _peer, keyType) {
      if (m.prf === 'cmac' && keyType !== 'aes') {
        throw new HsmError('KEY_TYPE_INCONSISTENT', `mechanism.prf: cmac needs an AES base key, not ${keyType}`);
      }
      return sp800108Counter(key, m.prf, m.label, m.context, lengthBytes!);
    },
  },
});
