/**
 * Key material: generation, parsing, serialising, and the facts the HSM reports about it
 * (sizes, curve, modulus, KCV). Material is held as one parsed `KeyObject` per key, so nothing is
 * parsed twice. Everything here stays inside hsm-core; callers outside only ever see handles and
 * the public facts.
 *
 * @module
 */
import {
  ECDH,
  KeyObject,
  createCipheriv,
  createECDH,
  createHash,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  generateKeyPair as generateKeyPairCallback,
  generateKeyPairSync,
  randomBytes,
} from 'node:crypto';
import { promisify } from 'node:util';
import { EC_CURVES, normaliseCurveName, type Curve, type EcCurve, type KeyClass, type KeyType, type MaterialFacts } from '../attributes.js';
import { HsmError } from '../errors.js';
import { liftHint, type Profile } from '../profiles.js';
import { withArticle } from '../errors.js';
import type { Jwk, KeyFormat } from '../protocol.js';

const generateKeyPairAsync = promisify(generateKeyPairCallback);

/** CloudHSM curve name → OpenSSL name, field size in bytes, JWK name (where JWK has one). */
const CURVE_INFO: Readonly<Record<EcCurve, { openssl: string; fieldBytes: number; jwk: string | null }>> = {
  secp224r1: { openssl: 'secp224r1', fieldBytes: 28, jwk: null },
  secp256r1: { openssl: 'prime256v1', fieldBytes: 32, jwk: 'P-256' },
  secp384r1: { openssl: 'secp384r1', fieldBytes: 48, jwk: 'P-384' },
  secp521r1: { openssl: 'secp521r1', fieldBytes: 66, jwk: 'P-521' },
  secp256k1: { openssl: 'secp256k1', fieldBytes: 32, jwk: 'secp256k1' },
};

const CURVE_BY_OPENSSL: ReadonlyMap<string, EcCurve> = new Map(
  EC_CURVES.map((c) => [CURVE_INFO[c].openssl, c] as const),
);

export function curveFieldBytes(curve: EcCurve): number {
  return CURVE_INFO[curve].fieldBytes;
}

export function opensslCurve(curve: EcCurve): string {
  return CURVE_INFO[curve].openssl;
}

/**
 * A key just made or parsed: its class, type and parsed key, with its facts (sizes, curve,
 * modulus, KCV) for the checks and the attributes of its creation. A key record keeps only the
 * parsed key (its class and type are the record's own; the facts are among its attributes). It
 * used to keep this whole object, and one with the facts computed on demand for a key read back:
 * about 100 and 60 bytes a key.
 */
export interface Material {
  readonly cls: KeyClass;
  readonly type: KeyType;
  readonly key: KeyObject;
  readonly facts: MaterialFacts;
}

function keyDataError(message: string, cause?: unknown): HsmError {
  return new HsmError('KEY_DATA_INVALID', message, cause === undefined ? undefined : { cause });
}

// ---- facts ------------------------------------------------------------------------------------

function hexOf(bytes: Uint8Array): string {
  return `0x${Buffer.from(bytes).toString('hex')}`;
}

/** CloudHSM's KCV for AES: the first 3 bytes of the encryption of a zero block. */
function aesCheckValue(key: KeyObject): string {
  const cipher = createCipheriv(`aes-${key.symmetricKeySize! * 8}-ecb`, key, null);
  cipher.setAutoPadding(false);
  return hexOf(cipher.update(Buffer.alloc(16)).subarray(0, 3));
}

/** The public half as SubjectPublicKeyInfo DER. */
function spkiOf(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return pub.export({ format: 'der', type: 'spki' });
}

/** The uncompressed EC point (04‖x‖y) of an EC key: the tail of its SPKI. */
export function ecPointOf(key: KeyObject, curve: EcCurve): Buffer {
  const spki = spkiOf(key);
  return spki.subarray(spki.length - (1 + 2 * curveFieldBytes(curve)));
}

/** An OKP key's SubjectPublicKeyInfo is a 12-byte header and the raw public key. */
const OKP_SPKI_PREFIX_BYTES = 12;

/** The length of a private key's PKCS #8 encoding (the bytes are wiped at once). */
function pkcs8Length(key: KeyObject): number {
  const der = key.export({ format: 'der', type: 'pkcs8' });
  const length = der.length;
  der.fill(0);
  return length;
}

/** DER OCTET STRING around `content` (CloudHSM reports ec-point this way). */
function derOctetString(content: Uint8Array): Buffer {
  const len = content.length;
  const header =
    len < 0x80 ? Buffer.from([0x04, len]) : len < 0x100 ? Buffer.from([0x04, 0x81, len]) : Buffer.from([0x04, 0x82, len >> 8, len & 0xff]);
  return Buffer.concat([header, content]);
}

export function curveOf(key: KeyObject): EcCurve {
  const name = key.asymmetricKeyDetails?.namedCurve;
  const curve = name === undefined ? undefined : CURVE_BY_OPENSSL.get(name);
  if (!curve) throw keyDataError(`the EC key is on curve ${String(name)}, which the HSM does not support (supported: ${EC_CURVES.join(', ')})`);
  return curve;
}

function computeFacts(cls: KeyClass, type: KeyType, key: KeyObject): MaterialFacts {
  if (cls === 'secret-key') {
    return {
      'check-value': type === 'aes' ? aesCheckValue(key) : null,
      'key-length-bytes': key.symmetricKeySize!,
    };
  }
  // Asymmetric: the KCV is the first 3 bytes of SHA-1 over the public key (SPKI DER), so the two
  // halves of a pair report the same value.
  const spki = spkiOf(key);
  const kcv = hexOf(createHash('sha1').update(spki).digest().subarray(0, 3));
  switch (type) {
    case 'rsa': {
      const details = key.asymmetricKeyDetails!;
      const jwk = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'jwk' });
      const modulus = Buffer.from(jwk.n!, 'base64url');
      return {
        'check-value': kcv,
        // CloudHSM's sizes: twice the modulus for a public key (512 for RSA-2048), the PKCS #8
        // encoding for a private one (about 1217).
        'key-length-bytes': key.type === 'private' ? pkcs8Length(key) : 2 * modulus.length,
        modulus: hexOf(modulus),
        'modulus-size-bits': details.modulusLength!,
        'public-exponent': Number(details.publicExponent!),
      };
    }
    case 'ec': {
      const curve = curveOf(key);
      const point = spki.subarray(spki.length - (1 + 2 * curveFieldBytes(curve)));
      // CloudHSM's sizes: the point for a public key (57 on secp224r1), PKCS #8 for a private one (122).
      return { 'check-value': kcv, 'key-length-bytes': key.type === 'private' ? pkcs8Length(key) : point.length, curve, 'ec-point': hexOf(derOctetString(point)) };
    }
    case 'ed25519':
    case 'x25519':
    case 'ed448':
    case 'x448': {
      const publicBytes = spki.length - OKP_SPKI_PREFIX_BYTES;
      return { 'check-value': kcv, 'key-length-bytes': key.type === 'private' ? pkcs8Length(key) : publicBytes, curve: type };
    }
    default:
      throw new HsmError('INTERNAL_ERROR', `no facts for ${type} ${cls}`);
  }
}

/** The material and its facts, with the size of an AES key checked. */
function material(cls: KeyClass, type: KeyType, key: KeyObject): Material {
  checkAesSize(type, key);
  return { cls, type, key, facts: computeFacts(cls, type, key) };
}

function checkAesSize(type: KeyType, key: KeyObject): void {
  if (type === 'aes' && ![16, 24, 32].includes(key.symmetricKeySize!)) {
    throw new HsmError('KEY_SIZE_INVALID', `an AES key is 16, 24 or 32 bytes, not ${key.symmetricKeySize}`);
  }
}

// ---- profile rules ----------------------------------------------------------------------------

/** Refuses a key type or size the profile does not allow. */
export function checkKeyAllowed(profile: Profile, type: KeyType, facts: MaterialFacts): void {
  if (!profile.keyTypes.has(type)) {
    throw new HsmError(
      'NOT_SUPPORTED_BY_PROFILE',
      `${type} keys are not an ${profile.hsmType ?? 'unlimited'} key type, so the ${profile.name} profile refuses them${liftHint(profile)}`,
    );
  }
  if (type === 'aes') {
    const len = facts['key-length-bytes']!;
    if (len !== 16 && len !== 24 && len !== 32) {
      throw new HsmError('KEY_SIZE_INVALID', `an AES key is 16, 24 or 32 bytes, not ${len}`);
    }
  } else if (type === 'generic-secret') {
    const len = facts['key-length-bytes']!;
    const { minBytes, maxBytes } = profile.genericSecret;
    if (len < minBytes || len > maxBytes) {
      throw new HsmError('KEY_SIZE_INVALID', `a generic secret is ${minBytes}–${maxBytes} bytes under the ${profile.name} profile, not ${len}${liftHint(profile)}`);
    }
  } else if (type === 'rsa') {
    checkRsaShape(profile, facts['modulus-size-bits']!, facts['public-exponent']!);
  }
}

/** Refuses an RSA modulus size or public exponent the profile does not allow. */
export function checkRsaShape(profile: Profile, bits: number, exponent: number): void {
  const { minBits, maxBits, stepBits, minExponent } = profile.rsa;
  if (bits < minBits || bits > maxBits || bits % stepBits !== 0) {
    throw new HsmError(
      'KEY_SIZE_INVALID',
      `an RSA modulus is ${minBits}–${maxBits} bits in steps of ${stepBits} under the ${profile.name} profile, not ${bits}${liftHint(profile)}`,
    );
  }
  if (exponent % 2 === 0 || exponent < minExponent) {
    throw new HsmError(
      'KEY_SIZE_INVALID',
      `an RSA public exponent must be odd and at least ${minExponent} under the ${profile.name} profile, not ${exponent}${liftHint(profile)}`,
    );
  }
}

// ---- generation -------------------------------------------------------------------------------

export function generateSecret(type: 'aes' | 'generic-secret', lengthBytes: number): Material {
  const bytes = randomBytes(lengthBytes);
  try {
    return createSecretMaterial(type, bytes);
  } finally {
    bytes.fill(0);
  }
}

/** Secret material from bytes the member made (derivation); KeyObject keeps its own copy. */
export function createSecretMaterial(type: 'aes' | 'generic-secret', bytes: Uint8Array): Material {
  return material('secret-key', type, createSecretKey(bytes));
}

export interface PairSpec {
  type: 'rsa' | 'ec' | OkpType;
  modulusBits?: number;
  publicExponent?: number;
  curve?: EcCurve;
}

export async function generatePair(spec: PairSpec): Promise<{ publicKey: Material; privateKey: Material }> {
  let pair: { publicKey: KeyObject; privateKey: KeyObject };
  switch (spec.type) {
    case 'rsa':
      pair = await generateKeyPairAsync('rsa', { modulusLength: spec.modulusBits!, publicExponent: spec.publicExponent! });
      break;
    case 'ec':
      pair = await generateKeyPairAsync('ec', { namedCurve: opensslCurve(spec.curve!) });
      break;
    default:
      pair = await generateKeyPairAsync(spec.type as 'ed25519');
      break;
  }
  return {
    publicKey: material('public-key', spec.type, pair.publicKey),
    privateKey: material('private-key', spec.type, pair.privateKey),
  };
}

// ---- import -----------------------------------------------------------------------------------

/** Node's asymmetricKeyType for each of our asymmetric key types. */
const NODE_TYPE: Partial<Record<KeyType, string>> = { rsa: 'rsa', ec: 'ec', ed25519: 'ed25519', x25519: 'x25519', ed448: 'ed448', x448: 'x448' };

/** The key types of RFC 8037's OKP family, and the length of their raw public keys. */
type OkpType = 'ed25519' | 'x25519' | 'ed448' | 'x448';
const OKP_PUBLIC_BYTES: Readonly<Record<OkpType, number>> = { ed25519: 32, x25519: 32, ed448: 57, x448: 56 };
const isOkp = (type: KeyType): type is OkpType => type in OKP_PUBLIC_BYTES;

const spkiPrefixes = new Map<string, Buffer>();

/** The SPKI DER header for a raw public key of this type (and curve), learnt once from a sample key. */
function spkiPrefix(type: 'ec' | OkpType, curve: EcCurve | undefined): Buffer {
  const cacheKey = `${type}:${curve ?? ''}`;
  let prefix = spkiPrefixes.get(cacheKey);
  if (!prefix) {
    const sample = type === 'ec' ? generateKeyPairSync('ec', { namedCurve: opensslCurve(curve!) }).publicKey : generateKeyPairSync(type as 'ed25519').publicKey;
    const der = sample.export({ format: 'der', type: 'spki' });
    const pointLength = type === 'ec' ? 1 + 2 * curveFieldBytes(curve!) : OKP_PUBLIC_BYTES[type];
    prefix = Buffer.from(der.subarray(0, der.length - pointLength));
    spkiPrefixes.set(cacheKey, prefix);
  }
  return prefix;
}

/** A raw public key (EC point, compressed or not; or 32 bytes of Ed25519/X25519) as a KeyObject. */
function rawPublicKey(type: KeyType, curve: EcCurve | undefined, data: Uint8Array): KeyObject {
  if (type === 'ec') {
    if (!curve) throw new HsmError('BAD_REQUEST', 'curve: required to import a raw EC public key');
    let point: Buffer;
    try {
      point = ECDH.convertKey(data, opensslCurve(curve), undefined, undefined, 'uncompressed') as Buffer;
    } catch (e) {
      throw keyDataError(`keyData: not a point on ${curve}`, e);
    }
    return createPublicKey({ key: Buffer.concat([spkiPrefix('ec', curve), point]), format: 'der', type: 'spki' });
  }
  if (isOkp(type)) {
    if (data.length !== OKP_PUBLIC_BYTES[type]) throw keyDataError(`keyData: a raw ${type} public key is ${OKP_PUBLIC_BYTES[type]} bytes, not ${data.length}`);
    return createPublicKey({ key: Buffer.concat([spkiPrefix(type, undefined), data]), format: 'der', type: 'spki' });
  }
  throw keyDataError(`format: raw is not a format for ${type} public keys (use spki or jwk)`);
}

/** The point in an EC SubjectPublicKeyInfo (its BIT STRING, compressed or not). */
function spkiPoint(spki: Buffer): Buffer {
  let at = 0;
  const length = (): number => {
    const first = spki[at++]!;
    if (!(first & 0x80)) return first;
    let n = 0;
    for (let i = 0; i < (first & 0x7f); i++) n = (n << 8) | spki[at++]!;
    return n;
  };
  at++; // SEQUENCE
  length();
  at++; // the algorithm's SEQUENCE
  const algorithm = length();
  at += algorithm;
  at++; // BIT STRING
  const bits = length();
  return spki.subarray(at + 1, at + bits); // after the unused-bits byte
}

/** A Buffer over the same memory (no copy, so no copy of key bytes lands in Node's Buffer pool). */
function view(data: Uint8Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function jwkSecret(jwk: Jwk): Buffer {
  if (jwk.kty !== 'oct') throw keyDataError(`keyData.kty: a secret key's JWK has kty "oct", not ${JSON.stringify(jwk.kty)}`);
  if (typeof jwk.k !== 'string' || !/^[A-Za-z0-9_-]*$/.test(jwk.k)) throw keyDataError('keyData.k: expected the key as base64url text');
  return Buffer.from(jwk.k, 'base64url');
}

/** Which JWK kty each asymmetric type uses. */
const JWK_KTY: Partial<Record<KeyType, string>> = { rsa: 'RSA', ec: 'EC', ed25519: 'OKP', x25519: 'OKP', ed448: 'OKP', x448: 'OKP' };

/**
 * Parses key material handed to the HSM (import, unwrap), checking that it is the class and type
 * the caller declared, with its facts.
 */
export function parseKey(cls: KeyClass, type: KeyType, format: KeyFormat, data: Uint8Array | Jwk, curveName?: string): Material {
  const key = parseKeyObject(cls, type, format, data, curveName);
  return { cls, type, key, facts: computeFacts(cls, type, key) };
}

/**
 * Parses material stored with its attributes (a key read back from a member's folder, a backup
 * or a masked object), checked as {@link parseKey} checks it, without computing its facts: they
 * are among its attributes already, and computing them for every key (an AES check value, an RSA
 * modulus) was a fifth of a start.
 */
export function parseHeldKey(cls: KeyClass, type: KeyType, format: KeyFormat, data: Uint8Array): KeyObject {
  return parseKeyObject(cls, type, format, data);
}

function parseKeyObject(cls: KeyClass, type: KeyType, format: KeyFormat, data: Uint8Array | Jwk, curveName?: string): KeyObject {
  const curve = curveName === undefined ? undefined : (normaliseCurveName(curveName) as EcCurve);
  const isBytes = data instanceof Uint8Array;
  if (format === 'jwk' ? isBytes : !isBytes) {
    throw new HsmError('BAD_REQUEST', format === 'jwk' ? 'keyData: expected a JWK object for format jwk' : `keyData: expected bytes for format ${format}`);
  }
  if (cls === 'secret-key') {
    if (type !== 'aes' && type !== 'generic-secret') {
      throw new HsmError('KEY_TYPE_INCONSISTENT', `keyType: ${type} keys are not secret keys (secret key types: aes, generic-secret)`);
    }
    if (format !== 'raw' && format !== 'jwk') throw keyDataError(`format: a secret key is imported as raw or jwk, not ${format}`);
    const bytes = format === 'raw' ? (data as Uint8Array) : jwkSecret(data as Jwk);
    const secret = createSecretKey(bytes);
    checkAesSize(type, secret);
    return secret;
  }
  if (type === 'aes' || type === 'generic-secret') {
    throw new HsmError('KEY_TYPE_INCONSISTENT', `keyClass: ${type} keys are secret keys, not ${cls}s`);
  }
  let key: KeyObject;
  try {
    if (cls === 'private-key') {
      if (format === 'pkcs8') key = createPrivateKey({ key: view(data as Uint8Array), format: 'der', type: 'pkcs8' });
      else if (format === 'jwk') key = matchingPublicPart(createPrivateKey({ key: checkJwkKty(type, data as Jwk), format: 'jwk' }), data as Jwk);
      else throw keyDataError(`format: a private key is imported as pkcs8 or jwk, not ${format}`);
    } else {
      if (format === 'spki') key = createPublicKey({ key: view(data as Uint8Array), format: 'der', type: 'spki' });
      else if (format === 'jwk') {
        const jwk = checkJwkKty(type, data as Jwk);
        if ('d' in jwk) throw keyDataError('keyData.d: a public key JWK must not hold the private value d');
        key = createPublicKey({ key: jwk, format: 'jwk' });
      } else key = rawPublicKey(type, curve, data as Uint8Array);
    }
  } catch (e) {
    if (e instanceof HsmError) throw e;
    throw keyDataError(`keyData: not a valid ${type} ${cls} in ${format} format (${(e as Error).message})`, e);
  }
  const actual = key.asymmetricKeyType;
  if (actual !== NODE_TYPE[type]) {
    throw new HsmError('KEY_TYPE_INCONSISTENT', `keyData holds a ${String(actual)} key, but keyType says ${type}`);
  }
  if (type === 'ec') {
    const actualCurve = curveOf(key);
    if (curve !== undefined && curve !== actualCurve) {
      throw new HsmError('KEY_TYPE_INCONSISTENT', `keyData holds a key on ${actualCurve}, but curve says ${curve}`);
    }
    // A point given compressed (only an SPKI can hold one: JWK and raw imports are made
    // uncompressed) is kept uncompressed, the form every export (spki, raw, ec-point) uses.
    if (cls === 'public-key' && format === 'spki') {
      const point = spkiPoint(view(data as Uint8Array));
      if (point[0] !== 0x04) key = rawPublicKey('ec', actualCurve, point);
    }
  }
  return key;
}

/**
 * A private EC or OKP key's JWK carries its public point too (x, and y for EC): it must be there
 * and be the one the private value gives, or the JWK is not one key.
 */
function matchingPublicPart(key: KeyObject, jwk: Jwk): KeyObject {
  if (key.asymmetricKeyType === 'rsa') return key;
  // OKP: node:crypto makes the public part from d. EC: it keeps the x and y it was given, so
  // the point is computed from d here.
  const derived: { x?: string; y?: string } = key.asymmetricKeyType === 'ec' ? ecPointFromPrivate(key, jwk) : createPublicKey(key).export({ format: 'jwk' });
  for (const member of ['x', 'y'] as const) {
    if (derived[member] === undefined) continue;
    if (jwk[member] === undefined) throw keyDataError(`keyData.${member}: a private key's JWK needs its public ${member}`);
    if (jwk[member] !== derived[member]) throw keyDataError(`keyData.${member}: not the public point of keyData.d (the JWK mixes two keys)`);
  }
  return key;
}

/** The public point of an EC JWK's d, as JWK x and y. */
function ecPointFromPrivate(key: KeyObject, jwk: Jwk): { x: string; y: string } {
  const ecdh = createECDH(CURVE_INFO[curveOf(key)].openssl);
  ecdh.setPrivateKey(Buffer.from(String(jwk.d), 'base64url'));
  const point = ecdh.getPublicKey();
  const size = (point.length - 1) / 2;
  return { x: point.subarray(1, 1 + size).toString('base64url'), y: point.subarray(1 + size).toString('base64url') };
}

function checkJwkKty(type: KeyType, jwk: Jwk): Jwk {
  const want = JWK_KTY[type];
  if (jwk.kty !== want) throw keyDataError(`keyData.kty: ${withArticle(type)} JWK has kty ${JSON.stringify(want)}, not ${JSON.stringify(jwk.kty)}`);
  return jwk;
}

// ---- export -----------------------------------------------------------------------------------

/** The default format in which a key of this class is wrapped or exported. */
export function defaultFormat(cls: KeyClass): KeyFormat {
  return cls === 'secret-key' ? 'raw' : cls === 'private-key' ? 'pkcs8' : 'spki';
}

/** Serialises a key's material (`material`, its parsed key). Only the member calls this, after its extraction rules said yes. */
export function serialiseKey({ cls, type, material: key }: { cls: KeyClass; type: KeyType; material: KeyObject }, format: KeyFormat): Uint8Array | Jwk {
  const refuse = (): never => {
    throw new HsmError('KEY_DATA_INVALID', `format: a ${type} ${cls} cannot be exported as ${format}`);
  };
  if (cls === 'secret-key') {
    if (format === 'raw') return key.export();
    if (format === 'jwk') return { kty: 'oct', k: key.export().toString('base64url') };
    return refuse();
  }
  if (format === 'jwk') {
    if (type === 'ec' && CURVE_INFO[curveOf(key)].jwk === null) return refuse();
    return key.export({ format: 'jwk' }) as Jwk;
  }
  if (cls === 'private-key') return format === 'pkcs8' ? key.export({ format: 'der', type: 'pkcs8' }) : refuse();
  if (format === 'spki') return key.export({ format: 'der', type: 'spki' });
  if (format === 'raw') {
    if (type === 'ec') return ecPointOf(key, curveOf(key));
    if (isOkp(type)) return spkiOf(key).subarray(-OKP_PUBLIC_BYTES[type]);
  }
  return refuse();
}

/** A standalone public key for a peer (ECDH) given as SPKI bytes. */
export function parsePeerPublicKey(spki: Uint8Array): KeyObject {
  try {
    return createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch (e) {
    throw keyDataError(`mechanism.publicKey: not a SubjectPublicKeyInfo (${(e as Error).message})`, e);
  }
}

/** The curve (or OKP type) of an asymmetric KeyObject, for comparing two keys in ECDH. */
export function curveLabel(key: KeyObject): Curve | string {
  if (key.asymmetricKeyType === 'ec') return curveOf(key);
  return String(key.asymmetricKeyType);
}
