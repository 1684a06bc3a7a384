/**
 * HMAC keys and MACs, HKDF and PBKDF2 base keys, and digests. HMAC, HKDF and PBKDF2 keys are HSM
 * `generic-secret` keys; HKDF and PBKDF2 keys are never extractable, as the spec says.
 *
 * @module
 */
import { HkdfProvider, HmacProvider, Pbkdf2Provider, ProviderCrypto } from 'webcrypto-core';
import type { DeriveMechanism, KeyInfo } from '../../hsm-core/face.js';
import {
  arrayBuffer,
  base64UrlBytes,
  checkJwk,
  checkUsages,
  decorateJwk,
  hashBlockBits,
  hsmHash,
  jwkAlg,
  normaliseUsages,
  templateFor,
  view,
  webHash,
  type DeriveCapable,
  type DeriveTarget,
  type Door,
  type KeyRecipe,
  type UnwrapCapable,
} from '../common.js';
import { refusal } from '../errors.js';
import type { KeyUsage, KeyFormat, CryptoKey, JsonWebKey, Algorithm, AlgorithmIdentifier, BufferSource, HmacKeyGenParams, HmacImportParams, HmacKeyAlgorithm, HkdfParams, Pbkdf2Params } from '../types.js';
import { doorProvider } from './base.js';

function hmacLength(algorithm: Algorithm): number | undefined {
  const length = (algorithm as { length?: unknown }).length;
  if (length === undefined) return undefined;
  if (typeof length !== 'number' || !Number.isInteger(length) || length <= 0) throw refusal('OperationError', `length: an HMAC key has a positive number of bits, got ${String(length)}`);
  if (length % 8) throw refusal('NotSupportedError', `length: the HSM makes HMAC keys of whole bytes, got ${length} bits`);
  return length;
}

export class HsmHmacProvider extends doorProvider(HmacProvider) implements UnwrapCapable, DeriveTarget {
  readonly #door: Door;

  constructor(door: Door) {
    super();
    this.#door = door;
  }

  override getDefaultLength(hash: string): number {
    return hashBlockBits(hsmHash(hash));
  }

  override checkGenerateKeyParams(algorithm: HmacKeyGenParams): void {
    hsmHash(algorithm.hash);
    hmacLength(algorithm);
  }

  #algorithm(hash: AlgorithmIdentifier, lengthBits: number): HmacKeyAlgorithm {
    return { name: 'HMAC', hash: webHash(hash), length: lengthBits };
  }

  async onGenerateKey(algorithm: HmacKeyGenParams, extractable: boolean, keyUsages: KeyUsage[]): Promise<CryptoKey> {
    const usages = normaliseUsages(keyUsages);
    const bits = hmacLength(algorithm) ?? this.getDefaultLength(webHash(algorithm.hash).name);
    const { handle } = await this.#door.session.send({
      op: 'generateKey',
      keyType: 'generic-secret',
      lengthBytes: bits / 8,
      attributes: templateFor('secret', usages, extractable),
    });
    return this.#door.key(handle, 'secret', this.#algorithm(algorithm.hash, bits), extractable, usages);
  }

  async onImportKey(format: KeyFormat, keyData: JsonWebKey | ArrayBuffer, algorithm: HmacImportParams, extractable: boolean, keyUsages: KeyUsage[]): Promise<CryptoKey> {
    const usages = normaliseUsages(keyUsages);
    if (format !== 'raw' && format !== 'jwk') throw refusal('NotSupportedError', `format: HMAC keys are imported as raw or jwk, not ${format}`);
    hsmHash(algorithm.hash);
    let bytes: number;
    if (format === 'jwk') {
      const jwk = keyData as JsonWebKey;
      bytes = base64UrlBytes(jwk.k);
      checkJwk(jwk, { kty: 'oct', alg: jwkAlg(this.#algorithm(algorithm.hash, bytes * 8)), use: 'sig', usages, extractable });
    } else {
      bytes = (keyData as ArrayBuffer).byteLength;
    }
    if (bytes === 0) throw refusal('DataError', 'keyData: an HMAC key has at least one byte');
    const length = hmacLength(algorithm);
    if (length !== undefined && length !== bytes * 8) throw refusal('DataError', `length: ${length} bits, but the key data has ${bytes * 8}`);
    const { handle } = await this.#door.session.send({
      op: 'importKey',
      keyClass: 'secret-key',
      keyType: 'generic-secret',
      format,
      keyData: format === 'jwk' ? { ...(keyData as JsonWebKey), kty: 'oct' } : view(keyData as ArrayBuffer),
      attributes: templateFor('secret', usages, extractable),
    });
    return this.#door.key(handle, 'secret', this.#algorithm(algorithm.hash, bytes * 8), extractable, usages);
  }

  async onExportKey(format: KeyFormat, key: CryptoKey): Promise<JsonWebKey | ArrayBuffer> {
    if (format !== 'raw' && format !== 'jwk') throw refusal('InvalidAccessError', `format: HMAC keys are exported as raw or jwk, not ${format}`);
    const { keyData } = await this.#door.session.send({ op: 'exportKey', handle: this.#door.handle(key), format });
    if (format === 'raw') return arrayBuffer(keyData as Uint8Array);
    return decorateJwk(keyData as { kty: string }, key);
  }

  override async onSign(_algorithm: Algorithm, key: CryptoKey, data: ArrayBuffer): Promise<ArrayBuffer> {
    const hash = hsmHash((key.algorithm as HmacKeyAlgorithm).hash);
    const { signature } = await this.#door.session.send({ op: 'sign', handle: this.#door.handle(key), mechanism: { name: 'hmac', hash }, data: view(data) });
    return arrayBuffer(signature);
  }

  override async onVerify(_algorithm: Algorithm, key: CryptoKey, signature: ArrayBuffer, data: ArrayBuffer): Promise<boolean> {
    const hash = hsmHash((key.algorithm as HmacKeyAlgorithm).hash);
    const r = await this.#door.session.send({
      op: 'verify',
      handle: this.#door.handle(key),
      mechanism: { name: 'hmac', hash },
      data: view(data),
      signature: view(signature),
    });
    return r.valid;
  }

  unwrapRecipe(format: KeyFormat, algorithm: Algorithm, _extractable: boolean, usages: KeyUsage[]): KeyRecipe {
    if (format !== 'raw' && format !== 'jwk') throw refusal('NotSupportedError', `format: HMAC keys are unwrapped from raw or jwk, not ${format}`);
    const hash = (algorithm as HmacImportParams).hash;
    hsmHash(hash);
    checkUsages(usages, this.usages, 'HMAC');
    return {
      keyClass: 'secret-key',
      keyType: 'generic-secret',
      kind: 'secret',
      usages: normaliseUsages(usages),
      algorithm: (info: KeyInfo) => this.#algorithm(hash, (info.attributes['key-length-bytes'] ?? 0) * 8),
    };
  }

  derivedRecipe(algorithm: Algorithm, usages: KeyUsage[]): KeyRecipe & { lengthBytes: number } {
    const hash = (algorithm as HmacImportParams).hash;
    const bits = hmacLength(algorithm) ?? this.getDefaultLength(webHash(hash).name);
    checkUsages(usages, this.usages, 'HMAC');
    return { keyClass: 'secret-key', keyType: 'generic-secret', kind: 'secret', usages: normaliseUsages(usages), lengthBytes: bits / 8, algorithm: () => this.#algorithm(hash, bits) };
  }
}

/** Import of a password or input keying material as a non-extractable derive-only HSM key. */
async function importBaseKey(door: Door, name: string, format: KeyFormat, keyData: JsonWebKey | ArrayBuffer, extractable: boolean, keyUsages: KeyUsage[]): Promise<CryptoKey> {
  if (format !== 'raw') throw refusal('NotSupportedError', `format: ${name} keys are imported as raw, not ${format}`);
  if (extractable) throw refusal('SyntaxError', `extractable: ${name} keys are never extractable; import with extractable=false`);
  const usages = normaliseUsages(keyUsages);
  const { handle } = await door.session.send({
    op: 'importKey',
    keyClass: 'secret-key',
    keyType: 'generic-secret',
    format: 'raw',
    keyData: view(keyData as ArrayBuffer),
    attributes: templateFor('secret', usages, false),
  });
  return door.key(handle, 'secret', { name }, false, usages);
}

function saltOf(algorithm: Algorithm, name: string): Uint8Array {
  const v = (algorithm as unknown as Record<string, unknown>)[name];
  if (!(v instanceof ArrayBuffer || ArrayBuffer.isView(v))) throw new TypeError(`${name}: expected an ArrayBuffer or ArrayBufferView`);
  return view(v as BufferSource);
}

export class HsmHkdfProvider extends doorProvider(HkdfProvider) implements DeriveCapable {
  readonly #door: Door;

  constructor(door: Door) {
    super();
    this.#door = door;
  }

  override checkImportKey(format: KeyFormat, keyData: JsonWebKey | ArrayBuffer, algorithm: Algorithm, _extractable: boolean, keyUsages: KeyUsage[]): void {
    super.checkImportKey(format, keyData, algorithm, false, keyUsages);
  }

  onImportKey(format: KeyFormat, keyData: JsonWebKey | ArrayBuffer, _algorithm: Algorithm, extractable: boolean, keyUsages: KeyUsage[]): Promise<CryptoKey> {
    return importBaseKey(this.#door, 'HKDF', format, keyData, extractable, keyUsages);
  }

  deriveMechanism(algorithm: Algorithm): DeriveMechanism {
    const a = algorithm as HkdfParams;
    return { name: 'hkdf', hash: hsmHash(a.hash), salt: saltOf(a, 'salt'), info: saltOf(a, 'info') };
  }

  override async onDeriveBits(algorithm: HkdfParams, baseKey: CryptoKey, length: number): Promise<ArrayBuffer> {
    return deriveBits(this.#door, this.deriveMechanism(algorithm), baseKey, length, 'HKDF');
  }
}

export class HsmPbkdf2Provider extends doorProvider(Pbkdf2Provider) implements DeriveCapable {
  readonly #door: Door;

  constructor(door: Door) {
    super();
    this.#door = door;
  }

  override checkImportKey(format: KeyFormat, keyData: JsonWebKey | ArrayBuffer, algorithm: Algorithm, _extractable: boolean, keyUsages: KeyUsage[]): void {
    super.checkImportKey(format, keyData, algorithm, false, keyUsages);
  }

  override checkAlgorithmParams(algorithm: Pbkdf2Params): void {
    hsmHash(algorithm.hash);
    saltOf(algorithm, 'salt');
    if (typeof algorithm.iterations !== 'number') throw new TypeError('iterations: required, a number');
    if (algorithm.iterations < 1) throw refusal('OperationError', `iterations: at least 1, got ${algorithm.iterations}`);
  }

  onImportKey(format: KeyFormat, keyData: JsonWebKey | ArrayBuffer, _algorithm: Algorithm, extractable: boolean, keyUsages: KeyUsage[]): Promise<CryptoKey> {
    return importBaseKey(this.#door, 'PBKDF2', format, keyData, extractable, keyUsages);
  }

  deriveMechanism(algorithm: Algorithm): DeriveMechanism {
    const a = algorithm as Pbkdf2Params;
    return { name: 'pbkdf2', hash: hsmHash(a.hash), salt: saltOf(a, 'salt'), iterations: a.iterations };
  }

  override async onDeriveBits(algorithm: Pbkdf2Params, baseKey: CryptoKey, length: number): Promise<ArrayBuffer> {
    return deriveBits(this.#door, this.deriveMechanism(algorithm), baseKey, length, 'PBKDF2');
  }
}

/** deriveBits through the HSM. `length` null means "all" (key agreement only); 0 is an empty result (as in Node); other lengths may be any number of bits. */
export async function deriveBits(door: Door, mechanism: DeriveMechanism, baseKey: CryptoKey, length: number | null, name: string): Promise<ArrayBuffer> {
  if (length === null || length === undefined) {
    if (mechanism.name !== 'ecdh') throw refusal('OperationError', `length: ${name} needs a length in bits`);
    const { bits } = await door.session.send({ op: 'deriveBits', baseHandle: door.handle(baseKey), mechanism });
    return arrayBuffer(bits);
  }
  if (typeof length !== 'number' || !Number.isInteger(length) || length < 0) throw new TypeError(`length: expected a whole number of bits, got ${String(length)}`);
  if (length === 0) return new ArrayBuffer(0);
  const { bits } = await door.session.send({ op: 'deriveBits', baseHandle: door.handle(baseKey), mechanism, lengthBits: Math.ceil(length / 8) * 8 });
  const out = bits.slice();
  if (length % 8) out[out.length - 1]! &= 0xff << (8 - (length % 8));
  return out.buffer;
}

export class HsmShaProvider extends doorProvider(ProviderCrypto) {
  readonly name: string;
  readonly usages: KeyUsage[] = [];
  readonly #door: Door;

  constructor(door: Door, name: string) {
    super();
    this.#door = door;
    this.name = name;
  }

  override async onDigest(algorithm: Algorithm, data: ArrayBuffer): Promise<ArrayBuffer> {
    const { digest } = await this.#door.session.send({ op: 'digest', hash: hsmHash(algorithm.name), data: view(data) });
    return arrayBuffer(digest);
  }
}
