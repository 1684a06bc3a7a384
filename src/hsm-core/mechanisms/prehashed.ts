/**
 * Signing a digest the caller computed (CloudHSM CLI's `--data-type digest`, PKCS #11's CKM_ECDSA,
 * CKM_RSA_PKCS over a DigestInfo, CKM_RSA_PKCS_PSS) and Ed25519ph (RFC 8032 §5.1, the HashEdDSA of
 * Ed25519).
 *
 * node:crypto hashes whatever it signs, so: RSA runs the private-key operation of node:crypto on
 * the encoded message (PKCS #1 v1.5 type-1 padding by OpenSSL; the EMSA-PSS encoding of RFC 8017
 * §9.1 here, on node's hashes); ECDSA over a digest takes its k·G from OpenSSL (ECDH, on a thread of
 * its own: ecdsa-nonces.ts) and does the few operations modulo n here; its verification and
 * Ed25519ph come from @noble/curves (audited).
 *
 * @module
 */
import { constants, createHash, publicDecrypt, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import { HsmError } from '../errors.js';
import type { EcCurve } from '../attributes.js';
import type { HashName } from '../protocol.js';
import { HASH_BYTES, NODE_HASH } from './hash.js';
import { ecPointOf } from './keys.js';
import { nonce } from './ecdsa-nonces.js';
import { privateEncryptAsync } from './pool.js';

/** The digest a `prehashed` mechanism is given must be exactly the hash's length. */
export function checkDigest(hash: HashName, data: Uint8Array): void {
  if (data.length !== HASH_BYTES[hash]) {
    throw new HsmError('DATA_INVALID', `data: a ${hash} digest is ${HASH_BYTES[hash]} bytes, not ${data.length} (give the digest, not the data, with prehashed)`);
  }
}

// ---- RSA PKCS #1 v1.5 over a DigestInfo ------------------------------------------------------

/** The DER of DigestInfo up to the digest (RFC 8017 §9.2, note 1). */
const DIGEST_INFO_PREFIX: Readonly<Record<HashName, string>> = {
  sha1: '3021300906052b0e03021a05000414',
  sha224: '302d300d06096086480165030402040500041c',
  sha256: '3031300d060960864801650304020105000420',
  sha384: '3041300d060960864801650304020205000430',
  sha512: '3051300d060960864801650304020305000440',
};

const digestInfo = (hash: HashName, digest: Uint8Array) => Buffer.concat([Buffer.from(DIGEST_INFO_PREFIX[hash], 'hex'), digest]);

export function pkcs1SignDigest(privateKey: KeyObject, hash: HashName, digest: Uint8Array): Promise<Buffer> {
  checkDigest(hash, digest);
  return privateEncryptAsync(privateKey, constants.RSA_PKCS1_PADDING, digestInfo(hash, digest));
}

export function pkcs1VerifyDigest(publicKey: KeyObject, hash: HashName, digest: Uint8Array, signature: Uint8Array): boolean {
  checkDigest(hash, digest);
  const expected = digestInfo(hash, digest);
  let recovered: Buffer;
  try {
    recovered = publicDecrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, signature);
  } catch {
    return false; // not a signature under this key
  }
  return recovered.length === expected.length && timingSafeEqual(recovered, expected);
}

// ---- RSA-PSS over a digest (RFC 8017 §9.1) ---------------------------------------------------

function mgf1(hash: HashName, seed: Uint8Array, length: number): Buffer {
  const out: Buffer[] = [];
  for (let counter = 0, have = 0; have < length; counter++) {
    const c = Buffer.alloc(4);
    c.writeUInt32BE(counter);
    const block = createHash(NODE_HASH[hash]).update(seed).update(c).digest();
    out.push(block);
    have += block.length;
  }
  return Buffer.concat(out).subarray(0, length);
}

const PSS_PADDING1 = Buffer.alloc(8);

/** M' = 0x00 × 8 ‖ mHash ‖ salt, hashed. */
const pssH = (hash: HashName, mHash: Uint8Array, salt: Uint8Array) => createHash(NODE_HASH[hash]).update(PSS_PADDING1).update(mHash).update(salt).digest();

function modulusBits(key: KeyObject): number {
  return key.asymmetricKeyDetails!.modulusLength!;
}

export function pssSignDigest(privateKey: KeyObject, hash: HashName, saltLength: number, digest: Uint8Array): Promise<Buffer> {
  checkDigest(hash, digest);
  const emBits = modulusBits(privateKey) - 1;
  const emLen = Math.ceil(emBits / 8);
  const hLen = HASH_BYTES[hash];
  if (emLen < hLen + saltLength + 2) throw new HsmError('MECHANISM_PARAM_INVALID', `mechanism: a salt of ${saltLength} bytes does not fit this key with ${hash}`);
  const salt = randomBytes(saltLength);
  const h = pssH(hash, digest, salt);
  const db = Buffer.alloc(emLen - hLen - 1);
  db[emLen - saltLength - hLen - 2] = 0x01;
  salt.copy(db, db.length - saltLength);
  const mask = mgf1(hash, h, db.length);
  for (let i = 0; i < db.length; i++) db[i]! ^= mask[i]!;
  db[0]! &= 0xff >> (8 * emLen - emBits);
  const em = Buffer.concat([db, h, Buffer.from([0xbc])]);
  // The private-key operation needs the modulus's length: a zero byte in front when emLen is one less.
  const k = Math.ceil(modulusBits(privateKey) / 8);
  return privateEncryptAsync(privateKey, constants.RSA_NO_PADDING, Buffer.concat([Buffer.alloc(k - emLen), em]));
}

export function pssVerifyDigest(publicKey: KeyObject, hash: HashName, saltLength: number, digest: Uint8Array, signature: Uint8Array): boolean {
  checkDigest(hash, digest);
  const emBits = modulusBits(publicKey) - 1;
  const emLen = Math.ceil(emBits / 8);
  const k = Math.ceil(modulusBits(publicKey) / 8);
  const hLen = HASH_BYTES[hash];
  if (signature.length !== k || emLen < hLen + saltLength + 2) return false;
  let decoded: Buffer;
  try {
    decoded = publicDecrypt({ key: publicKey, padding: constants.RSA_NO_PADDING }, signature);
  } catch {
    return false;
  }
  if (decoded.length !== k || decoded.subarray(0, k - emLen).some((b) => b !== 0)) return false;
  const em = decoded.subarray(k - emLen);
  if (em[emLen - 1] !== 0xbc) return false;
  const maskedDb = em.subarray(0, emLen - hLen - 1);
  const h = em.subarray(emLen - hLen - 1, emLen - 1);
  const topBits = 8 * emLen - emBits;
  if ((maskedDb[0]! & ~(0xff >> topBits) & 0xff) !== 0) return false;
  const mask = mgf1(hash, h, maskedDb.length);
  const db = Buffer.from(maskedDb.map((b, i) => b ^ mask[i]!));
  db[0]! &= 0xff >> topBits;
  const ps = emLen - hLen - saltLength - 2;
  if (db.subarray(0, ps).some((b) => b !== 0) || db[ps] !== 0x01) return false;
  return timingSafeEqual(pssH(hash, digest, db.subarray(db.length - saltLength)), h);
}

// ---- ECDSA over a digest ---------------------------------------------------------------------

/**
 * @noble/curves, loaded at the first digest signature (most members and every CLI command never
 * need it): the member's curves, secp224r1 built from its SEC 2 parameters, and Ed25519ph over a
 * digest (RFC 8032's dom2 with the prehash flag, and PH the identity on the SHA-512 given).
 */
let noble: ReturnType<typeof loadNoble> | null = null;
async function loadNoble() {
  const [{ ed25519, ed25519ph }, { eddsa }, { ecdsa, weierstrass }, { p256, p384, p521 }, { secp256k1 }, { sha224, sha512 }] = await Promise.all([
    import('@noble/curves/ed25519.js'),
    import('@noble/curves/abstract/edwards.js'),
    import('@noble/curves/abstract/weierstrass.js'),
    import('@noble/curves/nist.js'),
    import('@noble/curves/secp256k1.js'),
    import('@noble/hashes/sha2.js'),
  ]);
  const p224 = ecdsa(
    weierstrass({
      p: BigInt('0xffffffffffffffffffffffffffffffff000000000000000000000001'),
      n: BigInt('0xffffffffffffffffffffffffffff16a2e0b8f03e13dd29455c5c2a3d'),
      h: BigInt(1),
      a: BigInt('0xfffffffffffffffffffffffffffffffefffffffffffffffffffffffe'),
      b: BigInt('0xb4050a850c04b3abf54132565044b0b7d7bfd8ba270b39432355ffb4'),
      Gx: BigInt('0xb70e0cbd6bb4bf7f321390b94a03c1d356c21122343280d6115c1d21'),
      Gy: BigInt('0xbd376388b5f723fb4c22dfe6cd4375a05a07476444d5819985007e34'),
    }),
    sha224,
  );
  const ed25519phOfDigest = eddsa(ed25519.Point, sha512, {
    domain: dom2,
    prehash: (digest: Uint8Array) => digest,
    adjustScalarBytes: (bytes: Uint8Array) => {
      bytes[0]! &= 248;
      bytes[31]! &= 127;
      bytes[31]! |= 64;
      return bytes;
    },
  });
  const curves = { secp224r1: p224, secp256r1: p256, secp384r1: p384, secp521r1: p521, secp256k1 } as const satisfies Record<EcCurve, unknown>;
  return { curves, ed25519ph, ed25519phOfDigest };
}
const nobleLib = () => (noble ??= loadNoble());

const fromB64url = (s: string) => new Uint8Array(Buffer.from(s, 'base64url'));

/** The private scalar of an EC key, from its SEC 1 ECPrivateKey (JWK does not cover secp224r1). */
function ecPrivateScalar(key: KeyObject): Uint8Array {
  const der = key.export({ format: 'der', type: 'sec1' });
  try {
    // SEQUENCE (short or long length) { INTEGER 1, OCTET STRING privateKey, … }
    let at = der[1]! & 0x80 ? 2 + (der[1]! & 0x7f) : 2;
    at += 3; // 02 01 01
    if (der[at] !== 0x04) throw new HsmError('INTERNAL_ERROR', 'an EC private key without its scalar');
    const length = der[at + 1]!;
    return new Uint8Array(der.subarray(at + 2, at + 2 + length));
  } finally {
    der.fill(0);
  }
}

/** The group orders n of the curves, and their sizes in bits. */
const ORDER: Readonly<Record<EcCurve, bigint>> = {
  secp224r1: BigInt('0xffffffffffffffffffffffffffff16a2e0b8f03e13dd29455c5c2a3d'),
  secp256r1: BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551'),
  secp384r1: BigInt('0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973'),
  secp521r1: BigInt('0x1fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409'),
  secp256k1: BigInt('0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141'),
};

/** n's length in bits (n.toString(2).length, which costs a microsecond a signature). */
const ORDER_BITS: Readonly<Record<EcCurve, number>> = { secp224r1: 224, secp256r1: 256, secp384r1: 384, secp521r1: 521, secp256k1: 256 };

const toBig = (b: Uint8Array) => BigInt(`0x${Buffer.from(b).toString('hex') || '0'}`);
const fromBig = (x: bigint, bytes: number) => Buffer.from(x.toString(16).padStart(bytes * 2, '0'), 'hex');

/** DER SEQUENCE { INTEGER r, INTEGER s }. */
function derSignature(r: Buffer, s: Buffer): Buffer {
  const int = (v: Buffer) => {
    let i = 0;
    while (i < v.length - 1 && v[i] === 0) i++;
    const body = v[i]! & 0x80 ? Buffer.concat([Buffer.from([0]), v.subarray(i)]) : v.subarray(i);
    return Buffer.concat([Buffer.from([0x02, body.length]), body]);
  };
  const body = Buffer.concat([int(r), int(s)]);
  return Buffer.concat([Buffer.from(body.length < 0x80 ? [0x30, body.length] : [0x30, 0x81, body.length]), body]);
}

/**
 * ECDSA over a digest the caller computed (SEC 1 §4.1.3): the nonce's r and k⁻¹ come from
 * ecdsa-nonces.ts (k·G by OpenSSL, on a thread of its own); the rest is a few operations modulo n.
 */
export async function ecdsaSignDigest(privateKey: KeyObject, curve: EcCurve, hash: HashName, format: 'p1363' | 'der', digest: Uint8Array): Promise<Buffer> {
  checkDigest(hash, digest);
  const n = ORDER[curve];
  const bits = ORDER_BITS[curve];
  const bytes = Math.ceil(bits / 8);
  const d = scalarOf(privateKey);
  // e: the leftmost bits of the digest, as many as n has.
  const e = toBig(digest) >> BigInt(Math.max(0, digest.length * 8 - bits));
  for (;;) {
    const { r, kInverse } = nonce(OPENSSL_CURVE[curve], n);
    const s = (kInverse * ((e + r * d) % n)) % n;
    if (s === 0n) continue;
    const rs = [fromBig(r, bytes), fromBig(s, bytes)] as const;
    return format === 'der' ? derSignature(...rs) : Buffer.concat(rs);
  }
}

/** Each private key's scalar, read once (the member holds its keys; this is one more form of one). */
const SCALARS = new WeakMap<KeyObject, bigint>();
function scalarOf(key: KeyObject): bigint {
  let d = SCALARS.get(key);
  if (d === undefined) {
    const bytes = ecPrivateScalar(key);
    d = toBig(bytes);
    bytes.fill(0);
    SCALARS.set(key, d);
  }
  return d;
}

const OPENSSL_CURVE: Readonly<Record<EcCurve, string>> = { secp224r1: 'secp224r1', secp256r1: 'prime256v1', secp384r1: 'secp384r1', secp521r1: 'secp521r1', secp256k1: 'secp256k1' };

export async function ecdsaVerifyDigest(publicKey: KeyObject, curve: EcCurve, hash: HashName, format: 'p1363' | 'der', digest: Uint8Array, signature: Uint8Array): Promise<boolean> {
  checkDigest(hash, digest);
  const { curves } = await nobleLib();
  try {
    return curves[curve].verify(signature, digest, ecPointOf(publicKey, curve), { prehash: false, format: format === 'der' ? 'der' : 'compact', lowS: false });
  } catch {
    return false; // a malformed signature is an invalid one
  }
}

// ---- Ed25519ph ---------------------------------------------------------------------------------

/** RFC 8032's dom2(phflag, context) in front of what is hashed. */
function dom2(data: Uint8Array, context: Uint8Array, phflag: boolean): Uint8Array {
  return new Uint8Array(Buffer.concat([Buffer.from('SigEd25519 no Ed25519 collisions'), Buffer.from([phflag ? 1 : 0, context.length]), context, data]));
}

function okpSeed(key: KeyObject): Uint8Array {
  return fromB64url(key.export({ format: 'jwk' }).d!);
}

/** Ed25519ph of `data` (the message, or with `prehashed` its SHA-512). */
export async function ed25519phSign(privateKey: KeyObject, data: Uint8Array, prehashed: boolean): Promise<Buffer> {
  if (prehashed) checkDigest('sha512', data);
  const { ed25519ph, ed25519phOfDigest } = await nobleLib();
  const seed = okpSeed(privateKey);
  try {
    return Buffer.from(prehashed ? ed25519phOfDigest.sign(data, seed) : ed25519ph.sign(data, seed));
  } finally {
    seed.fill(0);
  }
}

export async function ed25519phVerify(publicKey: KeyObject, data: Uint8Array, prehashed: boolean, signature: Uint8Array): Promise<boolean> {
  if (prehashed) checkDigest('sha512', data);
  const { ed25519ph, ed25519phOfDigest } = await nobleLib();
  const point = fromB64url(publicKey.export({ format: 'jwk' }).x!);
  try {
    return (prehashed ? ed25519phOfDigest : ed25519ph).verify(signature, data, point, { zip215: false });
  } catch {
    return false;
  }
}
