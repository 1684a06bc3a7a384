/**
 * Key pairs at the door: generation, import and export for RSA, EC, Ed25519 and X25519 keys, as
 * one helper the asymmetric providers share. The helper knows each family's formats, JWK names and
 * how its WebCrypto algorithm follows from what the HSM reports about a key.
 *
 * @module
 */
import type { KeyInfo, Template } from '../../hsm-core/face.js';
import {
  CURVES,
  ECDSA_JWK_ALG,
  arrayBuffer,
  checkJwk,
  checkUsages,
  decorateJwk,
  jwkAlg,
  exponentBytes,
  exponentNumber,
  hsmCurve,
  normaliseUsages,
  templateFor,
  usagesFor,
  view,
  webCurve,
  webHash,
  type Door,
  type KeyRecipe,
  type NamedCurve,
  type HsmCurve,
} from '../common.js';
import { refusal } from '../errors.js';
import type { KeyKind } from '../key.js';
import type { KeyUsage, KeyFormat, CryptoKey, CryptoKeyPair, JsonWebKey, AlgorithmIdentifier, KeyAlgorithm, RsaHashedKeyAlgorithm, EcKeyAlgorithm } from '../types.js';

export type Family = 'rsa' | 'ec' | 'ed25519' | 'x25519' | 'ed448' | 'x448';

export interface PairSpec {
  /** The algorithm name, e.g. `RSA-PSS`. */
  name: string;
  family: Family;
  privateUsages: KeyUsage[];
  publicUsages: KeyUsage[];
  /** `sig` or `enc`, for JWK `use`. */
  use: 'sig' | 'enc';
}

const JWK_KTY: Readonly<Record<Family, string>> = { rsa: 'RSA', ec: 'EC', ed25519: 'OKP', x25519: 'OKP', ed448: 'OKP', x448: 'OKP' };
const OKP_CRV: Readonly<Record<string, string>> = { ed25519: 'Ed25519', x25519: 'X25519', ed448: 'Ed448', x448: 'X448' };

/** The class of key a list of usages implies, for JWKs unwrapped sight unseen: private if any usage is a private key's. */
function kindFromUsages(spec: PairSpec, usages: readonly KeyUsage[]): 'private' | 'public' {
  return usages.some((u) => spec.privateUsages.includes(u)) ? 'private' : 'public';
}

export class KeyPairs {
  constructor(
    private readonly door: Door,
    private readonly spec: PairSpec,
  ) {}

  #checkKindUsages(kind: 'private' | 'public', usages: readonly KeyUsage[]): void {
    checkUsages(usages, kind === 'private' ? this.spec.privateUsages : this.spec.publicUsages, `an ${this.spec.name} ${kind} key`);
    if (kind === 'private' && usages.length === 0) throw refusal('SyntaxError', `keyUsages: an ${this.spec.name} private key needs at least one usage`);
  }

  /** The WebCrypto algorithm of a key, from the caller's parameters and what the HSM reports. */
  algorithm(params: Record<string, unknown>, info: KeyInfo): KeyAlgorithm {
    const a = info.attributes;
    switch (this.spec.family) {
      case 'rsa':
        return {
          name: this.spec.name,
          modulusLength: a['modulus-size-bits'] ?? 0,
          publicExponent: exponentBytes(a['public-exponent'] ?? 0),
          hash: webHash(params.hash as AlgorithmIdentifier),
        } as RsaHashedKeyAlgorithm;
      case 'ec':
        return { name: this.spec.name, namedCurve: webCurve(a.curve) ?? String(a.curve) } as EcKeyAlgorithm;
      default:
        return { name: this.spec.name };
    }
  }

  async generate(algorithm: Record<string, unknown>, extractable: boolean, keyUsages: KeyUsage[]): Promise<CryptoKeyPair> {
    const privateUsages = usagesFor(keyUsages, this.spec.privateUsages);
    const publicUsages = usagesFor(keyUsages, this.spec.publicUsages);
    if (privateUsages.length === 0) throw refusal('SyntaxError', `keyUsages: the private key of an ${this.spec.name} pair needs a usage (${this.spec.privateUsages.join(', ')})`);
    const publicAttributes = templateFor('public', publicUsages, true);
    const privateAttributes = templateFor('private', privateUsages, extractable);
    let shape: { keyType: Family; modulusBits?: number; publicExponent?: number; curve?: HsmCurve };
    let keyAlgorithm: KeyAlgorithm;
    if (this.spec.family === 'rsa') {
      const modulusBits = algorithm.modulusLength as number;
      const exponent = view(algorithm.publicExponent as Uint8Array);
      shape = { keyType: 'rsa', modulusBits, publicExponent: exponentNumber(exponent) };
      keyAlgorithm = { name: this.spec.name, modulusLength: modulusBits, publicExponent: exponent.slice(), hash: webHash(algorithm.hash as AlgorithmIdentifier) } as RsaHashedKeyAlgorithm;
    } else if (this.spec.family === 'ec') {
      const namedCurve = algorithm.namedCurve as NamedCurve;
      shape = { keyType: 'ec', curve: CURVES[namedCurve] };
      keyAlgorithm = { name: this.spec.name, namedCurve } as EcKeyAlgorithm;
    } else {
      shape = { keyType: this.spec.family };
      keyAlgorithm = { name: this.spec.name };
    }
    const r = await this.door.session.send({ op: 'generateKeyPair', ...shape, publicAttributes, privateAttributes });
    return {
      privateKey: this.door.key(r.privateHandle, 'private', keyAlgorithm, extractable, privateUsages),
      publicKey: this.door.key(r.publicHandle, 'public', structuredClone(keyAlgorithm), true, publicUsages),
    };
  }

  /** The curve parameter the HSM needs, checking the caller's namedCurve. */
  #curve(algorithm: Record<string, unknown>): HsmCurve | undefined {
    if (this.spec.family !== 'ec') return undefined;
    return hsmCurve(algorithm.namedCurve);
  }

  /** The JWK `alg` values a key of this algorithm accepts at import; undefined where the spec checks none (ECDH, X25519). */
  #jwkAlgs(algorithm: Record<string, unknown>): string | readonly string[] | undefined {
    if (this.spec.name === 'ECDSA') return ECDSA_JWK_ALG[String(algorithm.namedCurve)];
    if (this.spec.name === 'Ed25519' || this.spec.name === 'Ed448') return [this.spec.name, 'EdDSA'];
    return jwkAlg({ name: this.spec.name, hash: algorithm.hash } as KeyAlgorithm);
  }

  #jwkForHsm(jwk: JsonWebKey, algorithm: Record<string, unknown>, kind: 'private' | 'public', usages: KeyUsage[], extractable: boolean): JsonWebKey {
    const spec = this.spec;
    checkJwk(jwk, { kty: JWK_KTY[spec.family], alg: this.#jwkAlgs(algorithm), use: spec.use, usages, extractable });
    if (spec.family === 'ec') {
      if (jwk.crv !== algorithm.namedCurve) throw refusal('DataError', `keyData.crv: expected ${String(algorithm.namedCurve)}, got ${JSON.stringify(jwk.crv)}`);
      // Node's JWK spelling of secp256k1.
      if (jwk.crv === 'K-256') return { ...jwk, crv: 'secp256k1' };
    }
    if (spec.family in OKP_CRV && jwk.crv !== OKP_CRV[spec.family]) {
      throw refusal('DataError', `keyData.crv: expected ${OKP_CRV[spec.family]}, got ${JSON.stringify(jwk.crv)}`);
    }
    if (kind === 'public' && 'd' in jwk) throw refusal('DataError', 'keyData.d: a public key must not carry d');
    return jwk;
  }

  async import(format: KeyFormat, keyData: JsonWebKey | ArrayBuffer, algorithm: Record<string, unknown>, extractable: boolean, keyUsages: KeyUsage[]): Promise<CryptoKey> {
    const usages = normaliseUsages(keyUsages);
    let kind: 'private' | 'public';
    if (format === 'jwk') kind = 'd' in (keyData as JsonWebKey) ? 'private' : 'public';
    else if (format === 'pkcs8') kind = 'private';
    else if (format === 'spki') kind = 'public';
    else if (this.spec.family !== 'rsa') kind = 'public';
    else throw refusal('NotSupportedError', `format: RSA keys are imported as spki, pkcs8 or jwk, not ${format}`);
    this.#checkKindUsages(kind, usages);
    const curve = this.#curve(algorithm);
    const data = format === 'jwk' ? this.#jwkForHsm(keyData as JsonWebKey, algorithm, kind, usages, extractable) : view(keyData as ArrayBuffer);
    const r = await this.door.session.send({
      op: 'importKey',
      keyClass: kind === 'private' ? 'private-key' : 'public-key',
      keyType: this.spec.family,
      format,
      keyData: data as Uint8Array,
      ...(curve ? { curve } : {}),
      attributes: templateFor(kind, usages, extractable),
    });
    return this.door.key(r.handle, kind, this.algorithm(algorithm, r.key), extractable, usages);
  }

  async export(format: KeyFormat, key: CryptoKey): Promise<JsonWebKey | ArrayBuffer> {
    if (format === 'raw' && (key.type !== 'public' || this.spec.family === 'rsa')) {
      throw refusal('InvalidAccessError', `format: raw exports only ${this.spec.family === 'rsa' ? 'non-RSA ' : ''}public keys`);
    }
    const { keyData } = await this.door.session.send({ op: 'exportKey', handle: this.door.handle(key), format });
    if (format !== 'jwk') return arrayBuffer(keyData as Uint8Array);
    const jwk = { ...(keyData as JsonWebKey) };
    if (jwk.crv === 'secp256k1') jwk.crv = 'K-256';
    return decorateJwk(jwk as { kty: string }, key);
  }

  /** How an unwrapped key of this algorithm is made: its class follows from the format (or, for JWK, the usages). */
  unwrapRecipe(format: KeyFormat, algorithm: Record<string, unknown>, usages: KeyUsage[]): KeyRecipe {
    let kind: 'private' | 'public';
    if (format === 'pkcs8') kind = 'private';
    else if (format === 'spki' || (format === 'raw' && this.spec.family !== 'rsa')) kind = 'public';
    else if (format === 'jwk') kind = kindFromUsages(this.spec, usages);
    else throw refusal('NotSupportedError', `format: RSA keys are unwrapped from spki, pkcs8 or jwk, not ${format}`);
    this.#checkKindUsages(kind, usages);
    const curve = this.#curve(algorithm);
    return {
      keyClass: kind === 'private' ? 'private-key' : 'public-key',
      keyType: this.spec.family,
      ...(curve ? { curve } : {}),
      kind: kind as KeyKind,
      usages: normaliseUsages(usages),
      algorithm: (info) => this.algorithm(algorithm, info),
    };
  }
}

/** The creation template an unwrap or derive asks for; public keys carry no extractable attribute. */
export function recipeTemplate(recipe: KeyRecipe, extractable: boolean): Template {
  return templateFor(recipe.kind, recipe.usages, extractable);
}
