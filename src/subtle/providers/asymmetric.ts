/**
 * The asymmetric algorithms: RSASSA-PKCS1-v1_5, RSA-PSS, RSA-OAEP, ECDSA, ECDH, Ed25519,
 * X25519, Ed448 and X448. Each provider says which HSM mechanism its operations become; key handling is
 * {@link KeyPairs}.
 *
 * @module
 */
import {
  CryptoKey as CryptoKeyClass,
  ProviderCrypto,
  EcdhProvider,
  EcdsaProvider,
  RsaOaepProvider,
  RsaPssProvider,
  RsaSsaProvider,
} from 'webcrypto-core';
import type { CipherMechanism, DeriveMechanism, SignMechanism, WrapMechanism } from '../../hsm-core/face.js';
import { arrayBuffer, hsmCurve, hsmHash, view, type DeriveCapable, type Door, type KeyRecipe, type UnwrapCapable, type WrapCapable } from '../common.js';
import { refusal } from '../errors.js';
import { deriveBits } from './hmac.js';
import { KeyPairs } from './keypairs.js';
import type { KeyUsage, KeyFormat, CryptoKey, CryptoKeyPair, JsonWebKey, Algorithm, AlgorithmIdentifier, RsaHashedKeyAlgorithm, RsaPssParams, RsaOaepParams, EcKeyAlgorithm, EcdsaParams, BufferSource } from '../types.js';
import { doorProvider, type DoorChecks, type ProviderClass } from './base.js';

type Params = Record<string, unknown>;

async function sign(door: Door, key: CryptoKey, mechanism: SignMechanism, data: ArrayBuffer): Promise<ArrayBuffer> {
  const { signature } = await door.session.send({ op: 'sign', handle: door.handle(key), mechanism, data: view(data) });
  return arrayBuffer(signature);
}

async function verify(door: Door, key: CryptoKey, mechanism: SignMechanism, signature: ArrayBuffer, data: ArrayBuffer): Promise<boolean> {
  const r = await door.session.send({ op: 'verify', handle: door.handle(key), mechanism, data: view(data), signature: view(signature) });
  return r.valid;
}

function checkRsaGenerate(a: Params): void {
  hsmHash(a.hash as AlgorithmIdentifier);
  const e = a.publicExponent;
  if (!(e instanceof Uint8Array)) throw new TypeError('publicExponent: expected a Uint8Array (usually [1, 0, 1])');
  const m = a.modulusLength;
  if (typeof m !== 'number') throw new TypeError('modulusLength: required, a number of bits');
}

// ---- what every key-pair provider shares ------------------------------------------------------

/** What a family of keys checks of an algorithm's parameters, beyond webcrypto-core's checks. */
interface FamilyChecks {
  /** generateKey's parameters. */
  generate?(a: Params): void;
  /** importKey's parameters. */
  import?(a: Params): void;
  /** unwrapKey's parameters for the key it makes. */
  unwrap?(a: Params): void;
}

const RSA_CHECKS: FamilyChecks = {
  generate: checkRsaGenerate,
  unwrap: (a) => void hsmHash(a.hash as AlgorithmIdentifier),
};

const EC_CHECKS: FamilyChecks = {
  generate: (a) => void hsmCurve(a.namedCurve),
  import: (a) => void hsmCurve(a.namedCurve),
  unwrap: (a) => void hsmCurve(a.namedCurve),
};

/**
 * A provider class that a mixin made of `Base`: the mixin's members are named by an interface,
 * since a declaration file cannot spell the class it returns (webcrypto-core's have protected
 * members).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Mixed<Base extends ProviderClass, Members> = Base & (abstract new (...args: any[]) => Members);

/** What {@link pairProvider} adds to a provider; a subclass sets `door` and `pairs` in its constructor. */
interface PairMembers extends DoorChecks, UnwrapCapable {
  /** The door the provider's keys go through. */
  readonly door: Door;
  /** Generation, import, export and unwrapping of the provider's keys. */
  readonly pairs: KeyPairs;
  onGenerateKey(a: Algorithm, extractable: boolean, usages: KeyUsage[]): Promise<CryptoKeyPair>;
  onImportKey(format: KeyFormat, data: JsonWebKey | ArrayBuffer, a: Algorithm, extractable: boolean, usages: KeyUsage[]): Promise<CryptoKey>;
  onExportKey(format: KeyFormat, key: CryptoKey): Promise<JsonWebKey | ArrayBuffer>;
}

/**
 * {@link doorProvider} plus what every key-pair provider does alike: its keys are generated,
 * imported, exported and unwrapped by its {@link KeyPairs}, after the family's own checks.
 */
function pairProvider<Base extends ProviderClass>(base: Base, checks: FamilyChecks): Mixed<Base, PairMembers> {
  abstract class PairProvider extends doorProvider(base) implements UnwrapCapable {
    abstract readonly door: Door;
    abstract readonly pairs: KeyPairs;

    override checkGenerateKeyParams(a: Algorithm): void {
      if (checks.generate) checks.generate(a as unknown as Params);
      else super.checkGenerateKeyParams(a);
    }

    override checkImportParams(a: Algorithm): void {
      if (checks.import) checks.import(a as unknown as Params);
      else super.checkImportParams(a);
    }

    override onGenerateKey(a: Algorithm, extractable: boolean, usages: KeyUsage[]): Promise<CryptoKeyPair> {
      return this.pairs.generate(a as unknown as Params, extractable, usages);
    }

    override onImportKey(format: KeyFormat, data: JsonWebKey | ArrayBuffer, a: Algorithm, extractable: boolean, usages: KeyUsage[]): Promise<CryptoKey> {
      return this.pairs.import(format, data, a as unknown as Params, extractable, usages);
    }

    override onExportKey(format: KeyFormat, key: CryptoKey): Promise<JsonWebKey | ArrayBuffer> {
      return this.pairs.export(format, key);
    }

    unwrapRecipe(format: KeyFormat, a: Algorithm, _e: boolean, usages: KeyUsage[]): KeyRecipe {
      checks.unwrap?.(a as unknown as Params);
      return this.pairs.unwrapRecipe(format, a as unknown as Params, usages);
    }
  }
  return PairProvider;
}

/** What {@link agreementProvider} adds to {@link pairProvider}'s. */
interface Agreement extends DeriveCapable {
  onDeriveBits(a: Algorithm, baseKey: CryptoKey, length: number): Promise<ArrayBuffer>;
}

/** {@link pairProvider} for key agreement (ECDH, X25519, X448): the peer's checks and the HSM's ecdh mechanism. */
function agreementProvider<Base extends ProviderClass>(base: Base, checks: FamilyChecks): Mixed<Base, PairMembers & Agreement> {
  abstract class AgreementProvider extends pairProvider(base, checks) implements DeriveCapable {
    override checkAlgorithmParams(algorithm: Algorithm): void {
      checkPeer(algorithm as unknown as Params, this.name);
    }

    override checkDeriveBits(algorithm: Algorithm, baseKey: CryptoKey, _length: number, options: { keyUsage?: boolean } = {}): void {
      this.checkAlgorithmName(algorithm);
      this.checkAlgorithmParams(algorithm);
      this.checkCryptoKey(baseKey, options.keyUsage ? 'deriveBits' : undefined);
    }

    deriveMechanism(a: Algorithm, baseKey: CryptoKey): DeriveMechanism {
      return agreement(this.door, a as unknown as Params, baseKey);
    }

    override onDeriveBits(a: Algorithm, baseKey: CryptoKey, length: number): Promise<ArrayBuffer> {
      return deriveBits(this.door, this.deriveMechanism(a, baseKey), baseKey, length, this.name);
    }
  }
  return AgreementProvider;
}

// ---- RSA ---------------------------------------------------------------------------------------

export class HsmRsaSsaProvider extends pairProvider(RsaSsaProvider, RSA_CHECKS) {
  override readonly pairs: KeyPairs;

  constructor(override readonly door: Door) {
    super();
    this.pairs = new KeyPairs(door, { name: 'RSASSA-PKCS1-v1_5', family: 'rsa', privateUsages: ['sign'], publicUsages: ['verify'], use: 'sig' });
  }

  override onSign(_a: Algorithm, key: CryptoKey, data: ArrayBuffer): Promise<ArrayBuffer> {
    return sign(this.door, key, { name: 'rsa-pkcs', hash: hsmHash((key.algorithm as RsaHashedKeyAlgorithm).hash) }, data);
  }

  override onVerify(_a: Algorithm, key: CryptoKey, signature: ArrayBuffer, data: ArrayBuffer): Promise<boolean> {
    return verify(this.door, key, { name: 'rsa-pkcs', hash: hsmHash((key.algorithm as RsaHashedKeyAlgorithm).hash) }, signature, data);
  }
}

export class HsmRsaPssProvider extends pairProvider(RsaPssProvider, RSA_CHECKS) {
  override readonly pairs: KeyPairs;

  constructor(override readonly door: Door) {
    super();
    this.pairs = new KeyPairs(door, { name: 'RSA-PSS', family: 'rsa', privateUsages: ['sign'], publicUsages: ['verify'], use: 'sig' });
  }

  override checkAlgorithmParams(a: RsaPssParams): void {
    if (typeof a.saltLength !== 'number' || !Number.isInteger(a.saltLength) || a.saltLength < 0) {
      throw new TypeError(`saltLength: required, a whole number of bytes, got ${String(a.saltLength)}`);
    }
  }

  #mechanism(a: RsaPssParams, key: CryptoKey): SignMechanism {
    return { name: 'rsa-pkcs-pss', hash: hsmHash((key.algorithm as RsaHashedKeyAlgorithm).hash), saltLength: a.saltLength };
  }

  override onSign(a: RsaPssParams, key: CryptoKey, data: ArrayBuffer): Promise<ArrayBuffer> {
    return sign(this.door, key, this.#mechanism(a, key), data);
  }

  override onVerify(a: RsaPssParams, key: CryptoKey, signature: ArrayBuffer, data: ArrayBuffer): Promise<boolean> {
    return verify(this.door, key, this.#mechanism(a, key), signature, data);
  }
}

export class HsmRsaOaepProvider extends pairProvider(RsaOaepProvider, RSA_CHECKS) implements WrapCapable {
  override readonly pairs: KeyPairs;

  constructor(override readonly door: Door) {
    super();
    this.pairs = new KeyPairs(door, { name: 'RSA-OAEP', family: 'rsa', privateUsages: ['decrypt', 'unwrapKey'], publicUsages: ['encrypt', 'wrapKey'], use: 'enc' });
  }

  wrapMechanism(a: Algorithm, key: CryptoKey): WrapMechanism & CipherMechanism {
    const label = (a as RsaOaepParams).label;
    return {
      name: 'rsa-oaep',
      hash: hsmHash((key.algorithm as RsaHashedKeyAlgorithm).hash),
      ...(label !== undefined && label !== null ? { label: view(label) } : {}),
    };
  }

  override async onEncrypt(a: RsaOaepParams, key: CryptoKey, data: ArrayBuffer): Promise<ArrayBuffer> {
    const r = await this.door.session.send({ op: 'encrypt', handle: this.door.handle(key), mechanism: this.wrapMechanism(a, key), data: view(data) });
    return arrayBuffer(r.data);
  }

  override async onDecrypt(a: RsaOaepParams, key: CryptoKey, data: ArrayBuffer): Promise<ArrayBuffer> {
    const r = await this.door.session.send({ op: 'decrypt', handle: this.door.handle(key), mechanism: this.wrapMechanism(a, key), data: view(data) });
    return arrayBuffer(r.data);
  }
}

// ---- elliptic curves ---------------------------------------------------------------------------

export class HsmEcdsaProvider extends pairProvider(EcdsaProvider, EC_CHECKS) {
  override readonly pairs: KeyPairs;

  constructor(override readonly door: Door) {
    super();
    this.pairs = new KeyPairs(door, { name: 'ECDSA', family: 'ec', privateUsages: ['sign'], publicUsages: ['verify'], use: 'sig' });
  }

  override checkAlgorithmParams(a: EcdsaParams): void {
    hsmHash(a.hash);
  }

  override onSign(a: EcdsaParams, key: CryptoKey, data: ArrayBuffer): Promise<ArrayBuffer> {
    return sign(this.door, key, { name: 'ecdsa', hash: hsmHash(a.hash) }, data);
  }

  override onVerify(a: EcdsaParams, key: CryptoKey, signature: ArrayBuffer, data: ArrayBuffer): Promise<boolean> {
    return verify(this.door, key, { name: 'ecdsa', hash: hsmHash(a.hash) }, signature, data);
  }
}

/**
 * The spec's checks of a key agreement's `public`, in its order: a value that is not a CryptoKey
 * fails WebIDL's conversion (TypeError); a key that is not public, or of another algorithm, is an
 * InvalidAccessError.
 */
function checkPeer(algorithm: Params, name: string): void {
  if (!('public' in algorithm) || algorithm.public === undefined) throw new TypeError(`public: required, the peer's public ${name} key`);
  const peer = algorithm.public;
  if (!(peer instanceof CryptoKeyClass)) throw new TypeError(`public: expected a CryptoKey, got ${peer === null ? 'null' : typeof peer}`);
  if (peer.type !== 'public') throw refusal('InvalidAccessError', `public: expected a public key, got a ${peer.type} key`);
  if (peer.algorithm.name !== name) throw refusal('InvalidAccessError', `public: a ${peer.algorithm.name} key cannot agree with a ${name} key`);
}

/** The HSM mechanism of a key agreement with `public`, a key of this door. */
function agreement(door: Door, algorithm: Params, baseKey: CryptoKey): DeriveMechanism {
  // checkPeer has checked the peer's algorithm, and checkCryptoKey the base key's: both are the provider's.
  const peer = algorithm.public as CryptoKey;
  const peerCurve = (peer.algorithm as EcKeyAlgorithm).namedCurve;
  if (peerCurve !== (baseKey.algorithm as EcKeyAlgorithm).namedCurve) {
    throw refusal('InvalidAccessError', `public: the keys are on different curves (${String(peerCurve)} and ${String((baseKey.algorithm as EcKeyAlgorithm).namedCurve)})`);
  }
  return { name: 'ecdh', publicHandle: door.handle(peer) };
}

export class HsmEcdhProvider extends agreementProvider(EcdhProvider, EC_CHECKS) {
  override readonly pairs: KeyPairs;

  constructor(override readonly door: Door) {
    super();
    this.pairs = new KeyPairs(door, { name: 'ECDH', family: 'ec', privateUsages: ['deriveKey', 'deriveBits'], publicUsages: [], use: 'enc' });
  }
}

// webcrypto-core's Ed25519 and X25519 providers carry only their names and usages (and it has no
// Ed448 or X448): the door's four are these two classes on its ProviderCrypto, one per curve
// (subtle.ts's provider table names the curve).

/** Ed25519 and Ed448: pure EdDSA, one HSM mechanism each. */
export class EddsaProvider extends pairProvider(ProviderCrypto, {}) {
  readonly usages = { privateKey: ['sign'] as KeyUsage[], publicKey: ['verify'] as KeyUsage[] };

  override readonly pairs: KeyPairs;

  constructor(override readonly door: Door, readonly name: 'Ed25519' | 'Ed448', private readonly family: 'ed25519' | 'ed448') {
    super();
    this.pairs = new KeyPairs(door, { name, family, privateUsages: ['sign'], publicUsages: ['verify'], use: 'sig' });
  }

  /** Ed448's optional context (RFC 8032): the HSM signs with the empty one only, as Node does. */
  override checkAlgorithmParams(algorithm: Algorithm): void {
    const context = (algorithm as { context?: BufferSource }).context;
    if (context !== undefined && view(context).length > 0) throw refusal('NotSupportedError', `context: ${this.name} signs with an empty context only`);
  }

  override onSign(_a: Algorithm, key: CryptoKey, data: ArrayBuffer): Promise<ArrayBuffer> {
    return sign(this.door, key, { name: this.family }, data);
  }

  override onVerify(_a: Algorithm, key: CryptoKey, signature: ArrayBuffer, data: ArrayBuffer): Promise<boolean> {
    return verify(this.door, key, { name: this.family }, signature, data);
  }
}

/** X25519 and X448: key agreement through the HSM's ecdh mechanism. */
export class XdhProvider extends agreementProvider(ProviderCrypto, {}) {
  readonly usages = { privateKey: ['deriveKey', 'deriveBits'] as KeyUsage[], publicKey: [] as KeyUsage[] };

  override readonly pairs: KeyPairs;

  constructor(override readonly door: Door, readonly name: 'X25519' | 'X448', family: 'x25519' | 'x448') {
    super();
    this.pairs = new KeyPairs(door, { name, family, privateUsages: ['deriveKey', 'deriveBits'], publicUsages: [], use: 'enc' });
  }
}
