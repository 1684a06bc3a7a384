/**
 * AES at the door: the WebCrypto modes (AES-CBC, AES-CTR, AES-GCM, AES-KW) and the HSM's extras
 * under vendor-prefixed names, as Node names its own extensions (NODE-ED25519), so that a standard
 * name the door lacks stays NotSupportedError as in a browser: CLOUDHSM-AES-ECB, CLOUDHSM-AES-CMAC,
 * and CloudHSM's two other key-wrap flavours as CLOUDHSM-AES-KWP and CLOUDHSM-AES-KW-PKCS5.
 * One provider class, configured per mode by the table below; every key is an HSM `aes` key.
 *
 * @module
 */
import { AesProvider } from 'webcrypto-core';
import type { CipherMechanism, KeyInfo, WrapMechanism } from '../../hsm-core/face.js';
import {
  base64UrlBytes,
  sameBytes,
  checkJwk,
  checkUsages,
  decorateJwk,
  jwkAlg,
  normaliseUsages,
  templateFor,
  view,
  arrayBuffer,
  type DeriveTarget,
  type Door,
  type KeyRecipe,
  type UnwrapCapable,
  type WrapCapable,
} from '../common.js';
import { refusal } from '../errors.js';
import type { KeyUsage, KeyFormat, CryptoKey, JsonWebKey, Algorithm, BufferSource, AesKeyGenParams, AesKeyAlgorithm } from '../types.js';
import { doorProvider } from './base.js';

const CIPHER: KeyUsage[] = ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'];
const WRAP: KeyUsage[] = ['wrapKey', 'unwrapKey'];

interface AesMode {
  usages: KeyUsage[];
  /** Checks the operation parameters (spec errors) and returns the HSM mechanism. */
  mechanism?(a: Record<string, unknown>): WrapMechanism;
  /** Whether encrypt/decrypt are offered (the key-wrap modes only wrap). */
  cipher: boolean;
}

function bytesParam(a: Record<string, unknown>, name: string): Uint8Array {
  const v = a[name];
  if (!(v instanceof ArrayBuffer || ArrayBuffer.isView(v))) throw new TypeError(`${name}: expected an ArrayBuffer or ArrayBufferView`);
  return view(v as BufferSource);
}

function optionalBytes(a: Record<string, unknown>, name: string): Uint8Array | undefined {
  return a[name] === undefined ? undefined : bytesParam(a, name);
}

export const AES_MODES: Readonly<Record<string, AesMode>> = {
  'AES-CBC': {
    usages: CIPHER,
    cipher: true,
    mechanism(a) {
      const iv = bytesParam(a, 'iv');
      if (iv.length !== 16) throw refusal('OperationError', `iv: AES-CBC needs 16 bytes, got ${iv.length}`);
      return { name: 'aes-cbc-pad', iv };
    },
  },
  'AES-CTR': {
    usages: CIPHER,
    cipher: true,
    mechanism(a) {
      const counter = bytesParam(a, 'counter');
      if (counter.length !== 16) throw refusal('OperationError', `counter: AES-CTR needs 16 bytes, got ${counter.length}`);
      const length = a.length;
      if (typeof length !== 'number' || !Number.isInteger(length) || length < 1 || length > 128) {
        throw refusal('OperationError', `length: the counter width is 1 to 128 bits, got ${String(length)}`);
      }
      return { name: 'aes-ctr', counter, counterBits: length };
    },
  },
  'AES-GCM': {
    usages: CIPHER,
    cipher: true,
    mechanism(a) {
      const iv = bytesParam(a, 'iv');
      if (iv.length < 1 || iv.length > 255) throw refusal('OperationError', `iv: the HSM takes AES-GCM IVs of 1 to 255 bytes, got ${iv.length}`);
      const tag = a.tagLength ?? 128;
      if (![32, 64, 96, 104, 112, 120, 128].includes(tag as number)) {
        throw refusal('OperationError', `tagLength: must be 32, 64, 96, 104, 112, 120 or 128, got ${String(tag)}`);
      }
      const aad = optionalBytes(a, 'additionalData');
      // WebCrypto's bounds (IVs from 1 byte, tags from 32 bits), which the spec requires of the door.
      return { name: 'aes-gcm', iv, tagLengthBits: tag as 128, webcrypto: true, ...(aad ? { aad } : {}) };
    },
  },
  'AES-KW': { usages: WRAP, cipher: false, mechanism: () => ({ name: 'aes-no-pad' }) },
  'CLOUDHSM-AES-KWP': { usages: WRAP, cipher: false, mechanism: () => ({ name: 'aes-zero-pad' }) },
  'CLOUDHSM-AES-KW-PKCS5': { usages: WRAP, cipher: false, mechanism: () => ({ name: 'aes-pkcs5-pad' }) },
  'CLOUDHSM-AES-ECB': { usages: CIPHER, cipher: true, mechanism: () => ({ name: 'aes-ecb' }) },
  'CLOUDHSM-AES-CMAC': { usages: ['sign', 'verify'], cipher: false },
};

function keyLengthBits(a: Record<string, unknown>): number {
  const length = a.length;
  if (typeof length !== 'number') throw new TypeError('length: required, the key size in bits (128, 192 or 256)');
  if (length !== 128 && length !== 192 && length !== 256) throw refusal('OperationError', `length: AES keys are 128, 192 or 256 bits, got ${length}`);
  return length;
}

export class HsmAesProvider extends doorProvider(AesProvider) implements WrapCapable, UnwrapCapable, DeriveTarget {
  readonly name: string;
  readonly usages: KeyUsage[];
  readonly #mode: AesMode;
  protected readonly door: Door;

  constructor(door: Door, name: string) {
    super();
    this.door = door;
    this.name = name;
    this.#mode = AES_MODES[name]!;
    this.usages = this.#mode.usages;
  }

  override checkGenerateKeyParams(algorithm: AesKeyGenParams): void {
    keyLengthBits(algorithm as unknown as Record<string, unknown>);
  }

  override checkAlgorithmParams(algorithm: Algorithm): void {
    if (this.#mode.mechanism) this.#mode.mechanism(algorithm as unknown as Record<string, unknown>);
  }

  #algorithm(lengthBits: number): AesKeyAlgorithm {
    return { name: this.name, length: lengthBits };
  }

  async onGenerateKey(algorithm: AesKeyGenParams, extractable: boolean, keyUsages: KeyUsage[]): Promise<CryptoKey> {
    const usages = normaliseUsages(keyUsages);
    const { handle } = await this.door.session.send({
      op: 'generateKey',
      keyType: 'aes',
      lengthBytes: algorithm.length / 8,
      attributes: templateFor('secret', usages, extractable),
    });
    return this.door.key(handle, 'secret', this.#algorithm(algorithm.length), extractable, usages);
  }

  async onImportKey(format: KeyFormat, keyData: JsonWebKey | ArrayBuffer, _algorithm: Algorithm, extractable: boolean, keyUsages: KeyUsage[]): Promise<CryptoKey> {
    const usages = normaliseUsages(keyUsages);
    if (format !== 'raw' && format !== 'jwk') throw refusal('NotSupportedError', `format: AES keys are imported as raw or jwk, not ${format}`);
    let bytes: number;
    if (format === 'jwk') {
      const jwk = keyData as JsonWebKey;
      bytes = base64UrlBytes(jwk.k);
      checkJwk(jwk, { kty: 'oct', alg: jwkAlg(this.#algorithm(bytes * 8)), use: 'enc', usages, extractable });
    } else {
      bytes = (keyData as ArrayBuffer).byteLength;
    }
    if (bytes !== 16 && bytes !== 24 && bytes !== 32) throw refusal('DataError', `keyData: AES keys are 16, 24 or 32 bytes, got ${bytes}`);
    const { handle } = await this.door.session.send({
      op: 'importKey',
      keyClass: 'secret-key',
      keyType: 'aes',
      format,
      keyData: format === 'jwk' ? { ...(keyData as JsonWebKey), kty: 'oct' } : view(keyData as ArrayBuffer),
      attributes: templateFor('secret', usages, extractable),
    });
    return this.door.key(handle, 'secret', this.#algorithm(bytes * 8), extractable, usages);
  }

  async onExportKey(format: KeyFormat, key: CryptoKey): Promise<JsonWebKey | ArrayBuffer> {
    if (format !== 'raw' && format !== 'jwk') throw refusal('InvalidAccessError', `format: AES keys are exported as raw or jwk, not ${format}`);
    const { keyData } = await this.door.session.send({ op: 'exportKey', handle: this.door.handle(key), format });
    if (format === 'raw') return arrayBuffer(keyData as Uint8Array);
    return decorateJwk(keyData as { kty: string }, key);
  }

  wrapMechanism(algorithm: Algorithm): WrapMechanism & CipherMechanism {
    return this.#mode.mechanism!(algorithm as unknown as Record<string, unknown>) as WrapMechanism & CipherMechanism;
  }

  async #cipher(op: 'encrypt' | 'decrypt', algorithm: Algorithm, key: CryptoKey, data: ArrayBuffer): Promise<ArrayBuffer> {
    if (!this.#mode.cipher) throw refusal('NotSupportedError', `${this.name} only wraps and unwraps keys; it does not ${op}`);
    const mechanism = this.wrapMechanism(algorithm);
    const r = await this.door.session.send({ op, handle: this.door.handle(key), mechanism, data: view(data) });
    return arrayBuffer(r.data);
  }

  override onEncrypt(algorithm: Algorithm, key: CryptoKey, data: ArrayBuffer): Promise<ArrayBuffer> {
    return this.#cipher('encrypt', algorithm, key, data);
  }

  override onDecrypt(algorithm: Algorithm, key: CryptoKey, data: ArrayBuffer): Promise<ArrayBuffer> {
    return this.#cipher('decrypt', algorithm, key, data);
  }

  unwrapRecipe(format: KeyFormat, _algorithm: Algorithm, _extractable: boolean, usages: KeyUsage[]): KeyRecipe {
    if (format !== 'raw' && format !== 'jwk') throw refusal('NotSupportedError', `format: AES keys are unwrapped from raw or jwk, not ${format}`);
    checkUsages(usages, this.usages, this.name);
    return { keyClass: 'secret-key', keyType: 'aes', kind: 'secret', usages: normaliseUsages(usages), algorithm: (info: KeyInfo) => this.#algorithm((info.attributes['key-length-bytes'] ?? 0) * 8) };
  }

  derivedRecipe(algorithm: Algorithm, usages: KeyUsage[]): KeyRecipe & { lengthBytes: number } {
    const bits = keyLengthBits(algorithm as unknown as Record<string, unknown>);
    checkUsages(usages, this.usages, this.name);
    return { keyClass: 'secret-key', keyType: 'aes', kind: 'secret', usages: normaliseUsages(usages), lengthBytes: bits / 8, algorithm: () => this.#algorithm(bits) };
  }
}

/** CLOUDHSM-AES-CMAC: an AES key that signs and verifies (CloudHSM's CMAC; `length` in bits truncates the MAC). */
export class HsmAesCmacProvider extends HsmAesProvider {
  constructor(door: Door) {
    super(door, 'CLOUDHSM-AES-CMAC');
  }

  #macLength(algorithm: Algorithm): number {
    const length = (algorithm as { length?: unknown }).length ?? 128;
    if (typeof length !== 'number' || length < 8 || length > 128 || length % 8) {
      throw refusal('OperationError', `length: a CLOUDHSM-AES-CMAC is 8 to 128 bits in whole bytes, got ${String(length)}`);
    }
    return length / 8;
  }

  override async onSign(algorithm: Algorithm, key: CryptoKey, data: ArrayBuffer): Promise<ArrayBuffer> {
    const bytes = this.#macLength(algorithm);
    const { signature } = await this.door.session.send({ op: 'sign', handle: this.door.handle(key), mechanism: { name: 'cmac' }, data: view(data) });
    return arrayBuffer(signature.subarray(0, bytes));
  }

  override async onVerify(algorithm: Algorithm, key: CryptoKey, signature: ArrayBuffer, data: ArrayBuffer): Promise<boolean> {
    const bytes = this.#macLength(algorithm);
    const handle = this.door.handle(key);
    if (bytes === 16) {
      const r = await this.door.session.send({ op: 'verify', handle, mechanism: { name: 'cmac' }, data: view(data), signature: view(signature) });
      return r.valid;
    }
    // A truncated MAC: the HSM computes the MAC, the door compares its first bytes (a MAC is public output).
    const { signature: full } = await this.door.session.send({ op: 'sign', handle, mechanism: { name: 'cmac' }, data: view(data) });
    return signature.byteLength === bytes && sameBytes(full.subarray(0, bytes), view(signature));
  }
}
