/**
 * `SubtleCrypto` of the door: webcrypto-core's argument handling, our providers, and three
 * methods of our own. `wrapKey`, `unwrapKey` and `deriveKey` are one HSM request each, because
 * webcrypto-core's versions run in the caller (export + encrypt, decrypt + import, deriveBits +
 * import) and would carry key bytes through the application. Every method's errors pass through
 * {@link webCryptoError} once, here.
 *
 * @module
 */
import { SubtleCrypto as CoreSubtleCrypto, type ProviderCrypto } from 'webcrypto-core';
import type { ClusterSession } from '../cluster-client/session.js';
import { withArticle } from '../hsm-core/face.js';
import { Door, checkUsages, has, jwkAlg, normaliseUsages, usagesFromAttributes, webCurve, templateFor, view, arrayBuffer, type DeriveCapable, type DeriveTarget, type UnwrapCapable, type WrapCapable } from './common.js';
import { refusal, webCryptoError, type Method } from './errors.js';
import { AES_MODES, HsmAesCmacProvider, HsmAesProvider } from './providers/aes.js';
import {
  HsmEcdhProvider,
  HsmEcdsaProvider,
  EddsaProvider,
  HsmRsaOaepProvider,
  HsmRsaPssProvider,
  HsmRsaSsaProvider,
  XdhProvider,
} from './providers/asymmetric.js';
import { HsmHkdfProvider, HsmHmacProvider, HsmPbkdf2Provider, HsmShaProvider } from './providers/hmac.js';
import type { Algorithm, KeyUsage, KeyFormat, KeyType, CryptoKey, CryptoKeyPair, JsonWebKey, AlgorithmIdentifier, BufferSource, RsaHashedKeyGenParams, EcKeyGenParams, AesKeyGenParams, HmacKeyGenParams, Pbkdf2Params, HmacImportParams, RsaHashedImportParams, EcKeyImportParams } from './types.js';

/** Which key types each export/wrap format carries (the spec's table). */
const FORMAT_TYPES: Readonly<Record<string, readonly KeyType[]>> = {
  raw: ['secret', 'public'],
  pkcs8: ['private'],
  spki: ['public'],
  jwk: ['secret', 'private', 'public'],
};

const ASYMMETRIC = new Set(['RSASSA-PKCS1-V1_5', 'RSA-PSS', 'RSA-OAEP', 'ECDSA', 'ECDH', 'ED25519', 'X25519', 'ED448', 'X448']);

/** Whether an import makes a public key (which may have no usages). */
function importsPublicKey(format: unknown, keyData: unknown, algorithmName: string): boolean {
  if (!ASYMMETRIC.has(algorithmName.toUpperCase())) return false;
  if (format === 'spki' || format === 'raw') return true;
  return format === 'jwk' && typeof keyData === 'object' && keyData !== null && !('d' in keyData);
}

/** A BufferSource as a view of the caller's bytes, or the TypeError WebIDL gives for anything else. */
function bytesOf(value: unknown, name: string): Uint8Array {
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return view(value as BufferSource);
  throw new TypeError(`${name}: expected an ArrayBuffer or ArrayBufferView`);
}

/** The door's providers, one row per WebCrypto algorithm name (the name is what a relay lists as its capabilities). */
const PROVIDERS: readonly { name: string; make: (door: Door) => ProviderCrypto }[] = [
  ...Object.keys(AES_MODES).map((name) => ({ name, make: (door: Door) => (name === 'CLOUDHSM-AES-CMAC' ? new HsmAesCmacProvider(door) : new HsmAesProvider(door, name)) })),
  { name: 'HMAC', make: (door) => new HsmHmacProvider(door) },
  { name: 'HKDF', make: (door) => new HsmHkdfProvider(door) },
  { name: 'PBKDF2', make: (door) => new HsmPbkdf2Provider(door) },
  { name: 'RSASSA-PKCS1-v1_5', make: (door) => new HsmRsaSsaProvider(door) },
  { name: 'RSA-PSS', make: (door) => new HsmRsaPssProvider(door) },
  { name: 'RSA-OAEP', make: (door) => new HsmRsaOaepProvider(door) },
  { name: 'ECDSA', make: (door) => new HsmEcdsaProvider(door) },
  { name: 'ECDH', make: (door) => new HsmEcdhProvider(door) },
  { name: 'Ed25519', make: (door) => new EddsaProvider(door, 'Ed25519', 'ed25519') },
  { name: 'X25519', make: (door) => new XdhProvider(door, 'X25519', 'x25519') },
  { name: 'Ed448', make: (door) => new EddsaProvider(door, 'Ed448', 'ed448') },
  { name: 'X448', make: (door) => new XdhProvider(door, 'X448', 'x448') },
  ...['SHA-1', 'SHA-256', 'SHA-384', 'SHA-512'].map((name) => ({ name, make: (door: Door) => new HsmShaProvider(door, name) })),
];

export class HsmSubtleCrypto extends CoreSubtleCrypto {
  readonly #door: Door;
  /** The providers by their names as the spec spells them, looked up before webcrypto-core's case-folding storage. */
  readonly #byName = new Map<string, ProviderCrypto>();

  /** @internal Use `session.crypto.subtle`. */
  constructor(session: ClusterSession) {
    super();
    this.#door = new Door(session);
    const door = this.#door;
    // webcrypto-core keeps its providers in a plain object, where the algorithm names
    // 'constructor' and '__proto__' found Object.prototype's own properties and failed with a
    // TypeError instead of the spec's NotSupportedError: an object without a prototype finds none.
    (this.providers as unknown as { items: Record<string, ProviderCrypto> }).items = Object.create(null) as Record<string, ProviderCrypto>;
    for (const { make } of PROVIDERS) {
      const provider = make(door);
      this.providers.set(provider);
      this.#byName.set(provider.name, provider);
    }
  }

  /** The provider of an algorithm name, any case; the spec's spelling needs no case-folded copy. */
  protected override getProvider(name: string): ProviderCrypto {
    return this.#byName.get(name) ?? super.getProvider(name);
  }

  /** `body`'s answer, with any refusal (thrown at once or rejected later) as WebCrypto's DOMException. */
  #run<T>(method: Method, body: () => Promise<T>): Promise<T> {
    let answer: Promise<T>;
    try {
      answer = body();
    } catch (e) {
      return Promise.reject(webCryptoError(e, method));
    }
    return answer.then(undefined, (e: unknown) => {
      throw webCryptoError(e, method);
    });
  }

  /**
   * The data methods, as webcrypto-core's but without its copy of every input: the member reads
   * the bytes before the call returns to the caller's code (synchronous mechanisms run at once,
   * asynchronous ones are handed to node:crypto, which copies them), so a copy costs time and
   * buys nothing. Each provider's checks run as its own `sign`, `encrypt`… would run them; its
   * `on…` method is then called directly, which spares the two async wrappers around it (each a
   * promise and three turns of the microtask queue on every call).
   */
  #data<T>(method: 'digest' | 'sign' | 'verify' | 'encrypt' | 'decrypt', args: unknown[], count: number): Promise<T> {
    return this.#run(method, () => this.#start(method, args, count) as Promise<T>);
  }

  #start(method: 'digest' | 'sign' | 'verify' | 'encrypt' | 'decrypt', args: unknown[], count: number): Promise<unknown> {
    this.checkRequiredArguments(args, count, method);
    const given = args[0] as AlgorithmIdentifier;
    let provider: ProviderCrypto;
    let algorithm: Algorithm;
    if (typeof given === 'string') {
      // What prepareAlgorithm and the copy below make of a name, in one object.
      provider = this.getProvider(given);
      algorithm = { name: provider.name };
    } else {
      const prepared = this.prepareAlgorithm(given);
      provider = this.getProvider(prepared.name);
      algorithm = { ...prepared, name: provider.name };
    }
    if (method === 'digest') {
      const data = bytesOf(args[1], 'data') as never;
      provider.checkDigest(algorithm, data);
      return provider.onDigest(algorithm, data);
    }
    const key = args[1] as CryptoKey;
    this.checkCryptoKey(key);
    const data = bytesOf(args[count - 1], 'data') as never;
    switch (method) {
      case 'sign':
        provider.checkSign(algorithm, key, data);
        return provider.onSign(algorithm, key, data);
      case 'verify': {
        const signature = bytesOf(args[2], 'signature') as never;
        provider.checkVerify(algorithm, key, signature, data);
        return provider.onVerify(algorithm, key, signature, data);
      }
      case 'encrypt':
        provider.checkEncrypt(algorithm, key, data, { keyUsage: true });
        return provider.onEncrypt(algorithm, key, data);
      case 'decrypt':
        provider.checkDecrypt(algorithm, key, data, { keyUsage: true });
        return provider.onDecrypt(algorithm, key, data);
    }
  }

  override digest(...args: Parameters<CoreSubtleCrypto['digest']>): Promise<ArrayBuffer> {
    return this.#data('digest', args, 2);
  }

  override generateKey(algorithm: RsaHashedKeyGenParams | EcKeyGenParams | 'Ed25519' | 'X25519', extractable: boolean, keyUsages: readonly KeyUsage[]): Promise<CryptoKeyPair>;
  override generateKey(algorithm: AesKeyGenParams | HmacKeyGenParams | Pbkdf2Params, extractable: boolean, keyUsages: readonly KeyUsage[]): Promise<CryptoKey>;
  override generateKey(algorithm: AlgorithmIdentifier, extractable: boolean, keyUsages: readonly KeyUsage[]): Promise<CryptoKeyPair | CryptoKey>;
  override generateKey(...args: [AlgorithmIdentifier, boolean, readonly KeyUsage[]]): Promise<CryptoKeyPair | CryptoKey> {
    return this.#run('generateKey', () => super.generateKey(...(args as [AlgorithmIdentifier, boolean, KeyUsage[]])) as Promise<CryptoKeyPair | CryptoKey>);
  }

  override sign(...args: Parameters<CoreSubtleCrypto['sign']>): Promise<ArrayBuffer> {
    return this.#data('sign', args, 3);
  }

  override verify(...args: Parameters<CoreSubtleCrypto['verify']>): Promise<boolean> {
    return this.#data('verify', args, 4);
  }

  override encrypt(...args: Parameters<CoreSubtleCrypto['encrypt']>): Promise<ArrayBuffer> {
    return this.#data('encrypt', args, 3);
  }

  override decrypt(...args: Parameters<CoreSubtleCrypto['decrypt']>): Promise<ArrayBuffer> {
    return this.#data('decrypt', args, 3);
  }

  /** `length` may be left out (the spec's `optional unsigned long? length = null`): all the bits a key agreement gives. */
  override deriveBits(algorithm: AlgorithmIdentifier, baseKey: CryptoKey, length?: number | null): Promise<ArrayBuffer> {
    const count = arguments.length;
    return this.#run('deriveBits', () => {
      this.checkRequiredArguments(new Array(count), 2, 'deriveBits');
      return super.deriveBits(algorithm, baseKey, (length ?? null) as number);
    });
  }

  override exportKey(...args: [KeyFormat, CryptoKey]): Promise<ArrayBuffer & JsonWebKey> {
    return this.#run('exportKey', () => super.exportKey(...(args as [KeyFormat, CryptoKey])) as Promise<ArrayBuffer & JsonWebKey>);
  }

  override importKey(...args: unknown[]): Promise<CryptoKey> {
    return this.#run('importKey', async () => {
      this.checkRequiredArguments(args, 5, 'importKey');
      const [format, keyData, algorithm, , keyUsages] = args as [KeyFormat, unknown, AlgorithmIdentifier, boolean, KeyUsage[]];
      const name = this.prepareAlgorithm(algorithm).name;
      if (format === 'jwk') {
        // Bytes are not a JsonWebKey dictionary (TypeError, the spec's and browsers' answer; Node
        // says DataError); null is an empty dictionary, and a JWK without kty is a DataError.
        if (keyData instanceof ArrayBuffer || ArrayBuffer.isView(keyData)) throw new TypeError('keyData: format jwk takes a JsonWebKey object, not bytes');
        if ((keyData === null || typeof keyData === 'object') && typeof (keyData as JsonWebKey | null)?.kty !== 'string') {
          this.getProvider(name);
          throw refusal('DataError', 'keyData: a JWK needs its kty');
        }
      }
      if (Array.isArray(keyUsages) && keyUsages.length === 0 && !importsPublicKey(format, keyData, name)) {
        this.getProvider(name);
        throw refusal('SyntaxError', 'keyUsages: a secret or private key needs at least one usage');
      }
      return super.importKey(...args);
    });
  }

  /**
   * A CryptoKey for a key that already exists in the HSM (a token key, or one shared with this
   * user), to use with `algorithm`. Its usages are those its HSM attributes grant; it is
   * extractable only if the HSM says so. Collecting the CryptoKey leaves the HSM key alone.
   */
  openKey(handle: number, algorithm: AlgorithmIdentifier | HmacImportParams | RsaHashedImportParams | EcKeyImportParams): Promise<CryptoKey> {
    return this.#run('importKey', async () => {
      const info = await this.#door.session.send({ op: 'getAttributes', handle });
      const a = info.attributes;
      const prepared = this.prepareAlgorithm(algorithm as AlgorithmIdentifier);
      const provider = this.getProvider(prepared.name);
      if (!has(provider, 'unwrapRecipe')) throw refusal('NotSupportedError', `${provider.name} keys cannot be opened`);
      const format = a.class === 'secret-key' ? 'raw' : a.class === 'private-key' ? 'pkcs8' : 'spki';
      const curve = webCurve(a.curve);
      const params = { ...prepared, name: provider.name, ...(curve && !('namedCurve' in prepared) ? { namedCurve: curve } : {}) };
      const allowed = Array.isArray(provider.usages) ? provider.usages : a.class === 'private-key' ? provider.usages.privateKey : provider.usages.publicKey;
      const usages = usagesFromAttributes(a, allowed);
      if (usages.length === 0 && a.class !== 'public-key') {
        throw refusal('InvalidAccessError', `key ${info.keyReference} has no usage attribute that ${provider.name} uses (${allowed.join(', ')})`);
      }
      const recipe = (provider as unknown as UnwrapCapable).unwrapRecipe(format, params, a.extractable === true, usages);
      if (recipe.keyType !== a['key-type'] || recipe.keyClass !== a.class || (recipe.curve !== undefined && recipe.curve !== a.curve)) {
        throw refusal('InvalidAccessError', `key ${info.keyReference} is ${withArticle(`${a['key-type']} ${a.class}`)}${a.curve ? ` on ${a.curve}` : ''}, not ${withArticle(`${provider.name} key`)}`);
      }
      const extractable = a.class === 'public-key' || a.extractable === true;
      return this.#door.key(handle, recipe.kind, recipe.algorithm(info), extractable, usages, false);
    });
  }

  /** One HSM request: the key is serialised and encrypted inside the member. */
  override wrapKey(format: KeyFormat, key: CryptoKey, wrappingKey: CryptoKey, wrapAlgorithm: AlgorithmIdentifier): Promise<ArrayBuffer> {
    const count = arguments.length;
    return this.#run('wrapKey', async () => {
      this.checkRequiredArguments(new Array(count), 4, 'wrapKey');
      this.checkCryptoKey(key);
      this.checkCryptoKey(wrappingKey);
      const algorithm = this.prepareAlgorithm(wrapAlgorithm);
      const provider = this.getProvider(algorithm.name);
      if (!has(provider, 'wrapMechanism')) throw refusal('NotSupportedError', `${provider.name} does not wrap keys`);
      const normalised = { ...algorithm, name: provider.name };
      provider.checkAlgorithmParams(normalised);
      provider.checkCryptoKey(wrappingKey, 'wrapKey');
      provider.checkKeyFormat(format);
      if (!FORMAT_TYPES[format]!.includes(key.type)) throw refusal('InvalidAccessError', `format: a ${key.type} key cannot be wrapped as ${format}`);
      if (key.type === 'public' && !key.extractable) throw refusal('InvalidAccessError', 'the key was imported with extractable=false');
      const mechanism = (provider as unknown as WrapCapable).wrapMechanism(normalised, wrappingKey);
      let jwkExtras: { alg?: string; ext: boolean; key_ops: string[] } | undefined;
      if (format === 'jwk') {
        const alg = jwkAlg(key.algorithm);
        jwkExtras = { ...(alg ? { alg } : {}), ext: key.extractable, key_ops: [...key.usages] };
      }
      const r = await this.#door.session.send({
        op: 'wrapKey',
        mechanism,
        wrappingHandle: this.#door.handle(wrappingKey),
        payloadHandle: this.#door.handle(key),
        format,
        ...(jwkExtras ? { jwkExtras } : {}),
      });
      return arrayBuffer(r.wrapped);
    });
  }

  /** One HSM request: the wrapped bytes are decrypted and become a key inside the member. */
  override unwrapKey(
    format: KeyFormat,
    wrappedKey: BufferSource,
    unwrappingKey: CryptoKey,
    unwrapAlgorithm: AlgorithmIdentifier,
    unwrappedKeyAlgorithm: AlgorithmIdentifier,
    extractable: boolean,
    keyUsages: KeyUsage[],
  ): Promise<CryptoKey> {
    const count = arguments.length;
    return this.#run('unwrapKey', async () => {
      this.checkRequiredArguments(new Array(count), 7, 'unwrapKey');
      this.checkCryptoKey(unwrappingKey);
      const algorithm = this.prepareAlgorithm(unwrapAlgorithm);
      const provider = this.getProvider(algorithm.name);
      if (!has(provider, 'wrapMechanism')) throw refusal('NotSupportedError', `${provider.name} does not unwrap keys`);
      const normalised = { ...algorithm, name: provider.name };
      provider.checkAlgorithmParams(normalised);
      provider.checkCryptoKey(unwrappingKey, 'unwrapKey');
      provider.checkKeyFormat(format);
      const keyAlgorithm = this.prepareAlgorithm(unwrappedKeyAlgorithm);
      const keyProvider = this.getProvider(keyAlgorithm.name);
      if (!has(keyProvider, 'unwrapRecipe')) throw refusal('NotSupportedError', `${keyProvider.name} keys cannot be unwrapped`);
      const keyNormalised = { ...keyAlgorithm, name: keyProvider.name };
      keyProvider.checkImportParams(keyNormalised);
      const usages = [...keyUsages];
      const recipe = (keyProvider as unknown as UnwrapCapable).unwrapRecipe(format, keyNormalised, extractable, usages);
      if (recipe.kind !== 'public' && usages.length === 0) throw refusal('SyntaxError', 'keyUsages: a secret or private key needs at least one usage');
      const mechanism = (provider as unknown as WrapCapable).wrapMechanism(normalised, unwrappingKey);
      const r = await this.#door.session.send({
        op: 'unwrapKey',
        mechanism,
        unwrappingHandle: this.#door.handle(unwrappingKey),
        wrapped: view(wrappedKey),
        format,
        keyClass: recipe.keyClass,
        keyType: recipe.keyType,
        ...(recipe.curve ? { curve: recipe.curve } : {}),
        attributes: templateFor(recipe.kind, recipe.usages, extractable),
      });
      return this.#door.key(r.handle, recipe.kind, recipe.algorithm(r.key), extractable, recipe.usages);
    });
  }

  /** One HSM request: the derived bits become the new key inside the member. */
  override deriveKey(algorithm: AlgorithmIdentifier, baseKey: CryptoKey, derivedKeyType: AlgorithmIdentifier, extractable: boolean, keyUsages: KeyUsage[]): Promise<CryptoKey> {
    const count = arguments.length;
    return this.#run('deriveKey', async () => {
      this.checkRequiredArguments(new Array(count), 5, 'deriveKey');
      this.checkCryptoKey(baseKey);
      const prepared = this.prepareAlgorithm(algorithm);
      const provider = this.getProvider(prepared.name);
      if (!has(provider, 'deriveMechanism')) throw refusal('NotSupportedError', `${provider.name} does not derive keys`);
      const normalised = { ...prepared, name: provider.name };
      provider.checkAlgorithmParams(normalised);
      provider.checkCryptoKey(baseKey, 'deriveKey');
      const target = this.prepareAlgorithm(derivedKeyType);
      const targetProvider = this.getProvider(target.name);
      let recipe: ReturnType<DeriveTarget['derivedRecipe']>;
      if (KDF_KEYS.includes(targetProvider.name)) {
        // HKDF and PBKDF2 keys have no length of their own (the spec's "get key length" is null):
        // a key agreement gives its whole secret; HKDF and PBKDF2 cannot derive without a length
        // (the spec's OperationError). As Node answers both.
        if (KDF_KEYS.includes(provider.name)) throw refusal('OperationError', `length: ${provider.name} cannot derive a ${targetProvider.name} key, which has no length of its own`);
        if (extractable) throw refusal('SyntaxError', `extractable: ${targetProvider.name} keys are never extractable; derive with extractable=false`);
        checkUsages(keyUsages, ['deriveKey', 'deriveBits'], `${targetProvider.name} keys`);
        const name = targetProvider.name;
        recipe = { keyClass: 'secret-key', keyType: 'generic-secret', kind: 'secret', usages: normaliseUsages(keyUsages), lengthBytes: agreementBytes(baseKey), algorithm: () => ({ name }) };
      } else if (has(targetProvider, 'derivedRecipe')) {
        recipe = (targetProvider as unknown as DeriveTarget).derivedRecipe({ ...target, name: targetProvider.name }, [...keyUsages]);
      } else {
        throw refusal('NotSupportedError', `${targetProvider.name} keys cannot be derived (AES, HMAC, HKDF and PBKDF2 keys can)`);
      }
      if (recipe.usages.length === 0) throw refusal('SyntaxError', 'keyUsages: a derived key needs at least one usage');
      const mechanism = (provider as unknown as DeriveCapable).deriveMechanism(normalised, baseKey);
      const r = await this.#door.session.send({
        op: 'deriveKey',
        mechanism,
        baseHandle: this.#door.handle(baseKey),
        keyType: recipe.keyType as 'aes' | 'generic-secret',
        lengthBytes: recipe.lengthBytes,
        attributes: templateFor('secret', recipe.usages, extractable),
      });
      return this.#door.key(r.handle, 'secret', recipe.algorithm(undefined as never), extractable, recipe.usages);
    });
  }
}

/** The algorithms whose keys are key-derivation inputs with no length of their own. */
const KDF_KEYS = ['HKDF', 'PBKDF2'];

/** The size of a key agreement's shared secret, from its base key's curve. */
function agreementBytes(baseKey: CryptoKey): number {
  const algorithm = baseKey.algorithm as { name: string; namedCurve?: string };
  const bytes: Readonly<Record<string, number>> = { 'P-256': 32, 'P-384': 48, 'P-521': 66, 'K-256': 32, X25519: 32, X448: 56 };
  return bytes[algorithm.namedCurve ?? algorithm.name]!;
}

/** The WebCrypto algorithm names the door implements (what a relay lists as its capabilities). */
export function doorAlgorithms(): string[] {
  return PROVIDERS.map((p) => p.name).sort();
}
