/**
 * What every provider of the door shares: the session it speaks for, the translation of WebCrypto
 * names (hashes, curves, usages) into HSM terms, creation templates, JWK checks, and byte
 * conversions. Providers stay small: they say which HSM request a WebCrypto call becomes.
 *
 * @module
 */
import type { ClusterSession } from '../cluster-client/session.js';
import { USAGE_ATTRIBUTE as HSM_USAGE_ATTRIBUTE, type CipherMechanism, type HashName, type Jwk, type KeyInfo, type KeyOp, type Template, type WrapMechanism } from '../hsm-core/face.js';
import { refusal } from './errors.js';
import { handleOf, newKey, type HsmCryptoKey, type KeyKind } from './key.js';
import type { KeyUsage, KeyFormat, CryptoKey, JsonWebKey, Algorithm, AlgorithmIdentifier, KeyAlgorithm, BufferSource } from './types.js';

/** The session a door's providers speak for. */
export class Door {
  constructor(readonly session: ClusterSession) {}

  handle(key: CryptoKey): number {
    return handleOf(key, this.session);
  }

  key(handle: number, type: KeyKind, algorithm: KeyAlgorithm, extractable: boolean, usages: KeyUsage[], owned = true): HsmCryptoKey {
    return newKey(this.session, handle, type, algorithm, extractable, usages, owned);
  }
}

// ---- names ------------------------------------------------------------------------------------

const HASHES: Readonly<Record<string, HashName>> = { 'SHA-1': 'sha1', 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512' };
const HASH_NAMES: ReadonlyMap<string, HashName> = new Map(Object.entries(HASHES));

/** The HSM name of a WebCrypto hash (`'SHA-256'` or `{ name: 'SHA-256' }`, any case). */
export function hsmHash(hash: AlgorithmIdentifier | undefined): HashName {
  const name = typeof hash === 'string' ? hash : hash?.name;
  // The spec's spelling is found without an upper-cased copy.
  const found = typeof name === 'string' ? (HASH_NAMES.get(name) ?? HASH_NAMES.get(name.toUpperCase())) : undefined;
  if (!found) throw refusal('NotSupportedError', `hash: ${String(name)} is not one of ${Object.keys(HASHES).join(', ')}`);
  return found;
}

/** The spec's spelling of a hash name, for key algorithms. */
export function webHash(hash: AlgorithmIdentifier | undefined): { name: string } {
  const hsm = hsmHash(hash);
  return { name: Object.keys(HASHES).find((k) => HASHES[k] === hsm)! };
}

/** The block size in bits of a hash, the default length of an HMAC key. */
export function hashBlockBits(hash: HashName): number {
  return hash === 'sha384' || hash === 'sha512' ? 1024 : 512;
}

export const CURVES = { 'P-256': 'secp256r1', 'P-384': 'secp384r1', 'P-521': 'secp521r1', 'K-256': 'secp256k1' } as const;
export type NamedCurve = keyof typeof CURVES;
export type HsmCurve = (typeof CURVES)[NamedCurve];

/** The HSM's name of a WebCrypto curve; NotSupportedError for a name the door does not know (an own property of CURVES, not an inherited one). */
export function hsmCurve(namedCurve: unknown): HsmCurve {
  if (typeof namedCurve !== 'string' || !Object.hasOwn(CURVES, namedCurve)) {
    throw refusal('NotSupportedError', `namedCurve: expected one of ${Object.keys(CURVES).join(', ')}, got ${String(namedCurve)}`);
  }
  return CURVES[namedCurve as NamedCurve];
}

export function webCurve(hsmCurve: string | null | undefined): NamedCurve | undefined {
  return (Object.keys(CURVES) as NamedCurve[]).find((k) => CURVES[k] === hsmCurve);
}

// ---- usages and templates ---------------------------------------------------------------------

const USAGE_ATTRIBUTE: Readonly<Record<KeyUsage, (typeof HSM_USAGE_ATTRIBUTE)[KeyOp]>> = HSM_USAGE_ATTRIBUTE;

/**
 * The HSM template of a new door key: a session key whose usage attributes are exactly the
 * WebCrypto usages, and (secret and private keys) extractable as asked. An extractable key is
 * created with `sensitive=false`, since WebCrypto's exportKey reveals it in plaintext; a
 * non-extractable one is sensitive and can never leave the HSM.
 */
export function templateFor(kind: KeyKind, usages: readonly KeyUsage[], extractable: boolean): Template {
  const t: Template = { token: false, encrypt: false, decrypt: false, sign: false, verify: false, wrap: false, unwrap: false, derive: false };
  for (const u of usages) t[USAGE_ATTRIBUTE[u]] = true;
  if (kind !== 'public') {
    t.extractable = extractable;
    t.sensitive = !extractable;
  }
  return t;
}

/** The WebCrypto usages an HSM key's attributes grant, among those its algorithm allows. */
export function usagesFromAttributes(attributes: object, allowed: readonly KeyUsage[]): KeyUsage[] {
  return normaliseUsages(allowed.filter((u) => (attributes as Record<string, unknown>)[USAGE_ATTRIBUTE[u]] === true));
}

const USAGE_ORDER = Object.keys(USAGE_ATTRIBUTE) as KeyUsage[];

/**
 * Usages in the order the spec lists them, without repeats (as Node reports them). The array
 * `filter` makes has room for 16 more elements (152 bytes of them in V8, where one usage takes 8),
 * and a CryptoKey keeps its usages for its life: `slice` copies them into an array of their size,
 * which took a CryptoKey of the door from about 400 bytes of heap to about 270.
 */
export function normaliseUsages(usages: Iterable<KeyUsage>): KeyUsage[] {
  const set = new Set(usages);
  return USAGE_ORDER.filter((u) => set.has(u)).slice();
}

/** The usages of a list that a key of one kind may carry, per the provider's table. */
export function usagesFor(usages: readonly KeyUsage[], allowed: readonly KeyUsage[]): KeyUsage[] {
  return normaliseUsages(usages.filter((u) => allowed.includes(u)));
}

export function checkUsages(usages: readonly KeyUsage[], allowed: readonly KeyUsage[], what: string): void {
  for (const u of usages) {
    if (!allowed.includes(u)) throw refusal('SyntaxError', `keyUsages: ${u} is not a usage of ${what} (allowed: ${allowed.join(', ') || 'none'})`);
  }
}

// ---- JWK --------------------------------------------------------------------------------------

/**
 * The import checks of the spec for a JWK: kty, use, key_ops (a list without repeats that allows
 * every usage asked for), ext and, when the algorithm names one, alg (any of `alg`'s spellings).
 */
export function checkJwk(jwk: JsonWebKey, expect: { kty: string; alg?: string | readonly string[] | undefined; use?: 'sig' | 'enc'; usages: readonly KeyUsage[]; extractable: boolean }): void {
  if (jwk.kty !== expect.kty) throw refusal('DataError', `keyData.kty: expected "${expect.kty}", got ${JSON.stringify(jwk.kty)}`);
  if (expect.use && jwk.use !== undefined && expect.usages.length > 0 && jwk.use !== expect.use) {
    throw refusal('DataError', `keyData.use: expected "${expect.use}", got ${JSON.stringify(jwk.use)}`);
  }
  if (jwk.key_ops !== undefined) {
    if (!Array.isArray(jwk.key_ops)) throw new TypeError('keyData.key_ops: expected a list of key operations');
    if (new Set(jwk.key_ops).size !== jwk.key_ops.length) throw refusal('DataError', `keyData.key_ops ${JSON.stringify(jwk.key_ops)} names an operation twice`);
    const missing = expect.usages.filter((u) => !jwk.key_ops!.includes(u));
    if (missing.length) throw refusal('DataError', `keyData.key_ops ${JSON.stringify(jwk.key_ops)} does not allow ${missing.join(', ')}`);
  }
  if (jwk.ext === false && expect.extractable) throw refusal('DataError', 'keyData.ext is false, so the key cannot be imported as extractable');
  const algs = typeof expect.alg === 'string' ? [expect.alg] : expect.alg;
  if (algs !== undefined && jwk.alg !== undefined && !algs.includes(jwk.alg)) {
    throw refusal('DataError', `keyData.alg: expected ${algs.map((a) => `"${a}"`).join(' or ')}, got ${JSON.stringify(jwk.alg)}`);
  }
}

/** The JWK `alg` values an ECDSA key on each curve accepts (RFC 7518, RFC 8812). */
export const ECDSA_JWK_ALG: Readonly<Record<string, string>> = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512', 'K-256': 'ES256K' };

const JWK_HASH: Readonly<Record<HashName, string>> = { sha1: '1', sha224: '224', sha256: '256', sha384: '384', sha512: '512' };
const JWK_AES: Readonly<Record<string, string>> = { 'AES-CBC': 'CBC', 'AES-CTR': 'CTR', 'AES-GCM': 'GCM', 'AES-KW': 'KW' };

/** The JWK `alg` of a key with this WebCrypto algorithm, when JOSE names one (RFC 7518, RFC 8037). */
export function jwkAlg(a: KeyAlgorithm & { length?: number; hash?: AlgorithmIdentifier }): string | undefined {
  const aes = JWK_AES[a.name];
  if (aes) return `A${a.length}${aes}`;
  switch (a.name) {
    case 'HMAC':
      return `HS${JWK_HASH[hsmHash(a.hash)]}`;
    case 'RSASSA-PKCS1-v1_5':
      return `RS${JWK_HASH[hsmHash(a.hash)]}`;
    case 'RSA-PSS':
      return `PS${JWK_HASH[hsmHash(a.hash)]}`;
    case 'RSA-OAEP': {
      const hash = hsmHash(a.hash);
      return hash === 'sha1' ? 'RSA-OAEP' : `RSA-OAEP-${JWK_HASH[hash]}`;
    }
    case 'Ed25519':
      return 'Ed25519';
    case 'Ed448':
      return 'Ed448';
    default:
      return undefined;
  }
}

/** A JWK export as the spec shapes it: the key members, then alg (when the algorithm has one), ext and key_ops. */
export function decorateJwk(jwk: Jwk, key: CryptoKey): JsonWebKey {
  const out: JsonWebKey = { ...(jwk as JsonWebKey), key_ops: [...key.usages], ext: key.extractable };
  const alg = jwkAlg(key.algorithm);
  if (alg !== undefined) out.alg = alg;
  return out;
}

/** A JWK's k (or other base64url member) length in bytes, without decoding it. */
export function base64UrlBytes(text: unknown): number {
  if (typeof text !== 'string' || !/^[A-Za-z0-9_-]*$/.test(text)) throw refusal('DataError', 'keyData.k: expected base64url text');
  return Math.floor((text.length * 3) / 4);
}

// ---- bytes ------------------------------------------------------------------------------------

/** A view of the caller's bytes, without a copy (the HSM copies what it keeps). */
export function view(data: BufferSource): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(data);
}

/** Whether two byte strings are equal, in time that depends only on their length. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** An ArrayBuffer of exactly these bytes (the answer's own buffer when it fits exactly). */
export function arrayBuffer(bytes: Uint8Array): ArrayBuffer {
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer) return bytes.buffer;
  return bytes.slice().buffer as ArrayBuffer;
}

/** A big-endian unsigned integer as the minimal Uint8Array WebCrypto uses for publicExponent. */
export function exponentBytes(value: number): Uint8Array {
  const out: number[] = [];
  for (let v = value; v > 0; v = Math.floor(v / 256)) out.unshift(v % 256);
  return new Uint8Array(out.length ? out : [0]);
}

export function exponentNumber(bytes: Uint8Array): number {
  let v = 0;
  for (const b of bytes) v = v * 256 + b;
  return v;
}

// ---- what providers implement beyond webcrypto-core --------------------------------------------

/** A provider whose algorithm can wrap keys: the HSM mechanism for its parameters. */
export interface WrapCapable {
  wrapMechanism(algorithm: Algorithm, key: CryptoKey): WrapMechanism & CipherMechanism;
}

/** What the HSM needs to create a key of a provider's algorithm from wrapped or derived bytes. */
export interface KeyRecipe {
  keyClass: 'secret-key' | 'public-key' | 'private-key';
  keyType: 'aes' | 'generic-secret' | 'rsa' | 'ec' | 'ed25519' | 'x25519' | 'ed448' | 'x448';
  curve?: HsmCurve;
  kind: KeyKind;
  usages: KeyUsage[];
  /** The WebCrypto algorithm of the new key, from what the HSM says about it. */
  algorithm(info: KeyInfo): KeyAlgorithm;
}

/** A provider that can make keys of its algorithm from unwrapped bytes. */
export interface UnwrapCapable {
  unwrapRecipe(format: KeyFormat, algorithm: Algorithm, extractable: boolean, usages: KeyUsage[]): KeyRecipe;
}

/** A provider whose keys a deriveKey may produce (AES and HMAC). */
export interface DeriveTarget {
  derivedRecipe(algorithm: Algorithm, usages: KeyUsage[]): KeyRecipe & { lengthBytes: number };
}

/** A provider whose algorithm derives (ECDH, X25519, HKDF, PBKDF2): the HSM mechanism for its parameters. */
export interface DeriveCapable {
  deriveMechanism(algorithm: Algorithm, baseKey: CryptoKey): import('../hsm-core/face.js').DeriveMechanism;
}

export function has<K extends string>(provider: object, method: K): provider is Record<K, (...args: never[]) => unknown> {
  return typeof (provider as Record<string, unknown>)[method] === 'function';
}
