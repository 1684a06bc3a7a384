/**
 * The `Crypto` object of the door: `subtle`, `getRandomValues`, `randomUUID`, plus
 * `randomBytes()` for HSM random bytes asked for asynchronously.
 *
 * `getRandomValues` is synchronous by specification, so it cannot wait for the HSM. It is served
 * from a pool of HSM random bytes (128 KiB) that refills itself in the background, 64 KiB per
 * request, whenever it falls below half. A call the pool cannot cover — before the first refill
 * has landed, or under a burst larger than the pool — is served by Node's CSPRNG
 * (the platform's `crypto.getRandomValues`, as it was when this module loaded) instead, so that code written for `globalThis.crypto` never
 * fails; {@link HsmCrypto.randomStats} counts both kinds, and `await crypto.ready()` waits for
 * the first refill. Bytes handed out are removed from the pool: no byte is given twice.
 *
 * @module
 */
import { Crypto as CoreCrypto } from 'webcrypto-core';
import type { ClusterSession } from '../cluster-client/session.js';
import { webCryptoError } from './errors.js';
import { HsmSubtleCrypto } from './subtle.js';
import { adoptHandle } from './key.js';
import type { AlgorithmIdentifier, CryptoKey, EcKeyImportParams, HmacImportParams, RsaHashedImportParams } from './types.js';

/** The platform's CSPRNG (Node's or the page's), taken before anything can install an HsmCrypto as `globalThis.crypto`. */
const platformCrypto = globalThis.crypto;
const platformRandom = (target: Uint8Array): void => void platformCrypto.getRandomValues(target);

/** The spec's limit on one getRandomValues call. */
export const MAX_RANDOM_VALUES_BYTES = 65_536;
const POOL_BYTES = 2 * MAX_RANDOM_VALUES_BYTES;
const REFILL_BYTES = MAX_RANDOM_VALUES_BYTES;

const INTEGER_ARRAYS = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, BigInt64Array, BigUint64Array];

export interface RandomStats {
  /** Bytes served to getRandomValues from the HSM pool. */
  fromHsm: number;
  /** Bytes served by Node's CSPRNG because the pool was short. */
  fromFallback: number;
  /** Bytes in the pool now. */
  pooled: number;
}

export class HsmCrypto extends CoreCrypto {
  readonly subtle: HsmSubtleCrypto;
  readonly #session: ClusterSession;
  #pool = new Uint8Array(POOL_BYTES);
  /** Bytes available are #pool[0, #filled). */
  #filled = 0;
  #refilling: Promise<void> | null = null;
  #stats = { fromHsm: 0, fromFallback: 0 };

  /** @internal Use `session.crypto`. */
  constructor(session: ClusterSession) {
    super();
    this.#session = session;
    this.subtle = new HsmSubtleCrypto(session);
    this.#refill();
  }

  /** Resolves once the random pool holds HSM bytes (or the HSM refused; see randomStats). */
  async ready(): Promise<void> {
    while (this.#refilling) await this.#refilling;
  }

  /** Random bytes straight from the HSM (asynchronous; no length limit beyond the profile's). */
  async randomBytes(length: number): Promise<Uint8Array> {
    try {
      return (await this.#session.send({ op: 'generateRandom', length })).data;
    } catch (e) {
      throw webCryptoError(e, 'generateKey');
    }
  }

  /**
   * A CryptoKey for an existing HSM key (by handle), to use with a WebCrypto algorithm: token
   * keys, and keys other users shared with this one. See {@link HsmSubtleCrypto.openKey}.
   */
  keyFromHandle(handle: number, algorithm: AlgorithmIdentifier | HmacImportParams | RsaHashedImportParams | EcKeyImportParams): Promise<CryptoKey> {
    return this.subtle.openKey(handle, algorithm);
  }

  /**
   * The HSM handle of a key of this session, or null for any other key. `{ keep: true }` stops
   * the door from deleting the HSM object when the CryptoKey is collected (for a key made
   * persistent, e.g. stored in a KeyStore).
   */
  handleOf(key: CryptoKey, options: { keep?: boolean } = {}): number | null {
    return adoptHandle(key, this.#session, options.keep === true);
  }

  randomStats(): RandomStats {
    return { ...this.#stats, pooled: this.#filled };
  }

  getRandomValues<T extends ArrayBufferView | null>(array: T): T {
    if (!INTEGER_ARRAYS.some((C) => array instanceof C)) {
      throw new DOMException('getRandomValues: the argument must be an integer-typed array', 'TypeMismatchError');
    }
    const view = array as unknown as ArrayBufferView;
    const n = view.byteLength;
    if (n > MAX_RANDOM_VALUES_BYTES) {
      throw new DOMException(`getRandomValues: at most ${MAX_RANDOM_VALUES_BYTES} bytes per call, asked for ${n}`, 'QuotaExceededError');
    }
    const target = new Uint8Array(view.buffer, view.byteOffset, n);
    if (n <= this.#filled) {
      const start = this.#filled - n;
      target.set(this.#pool.subarray(start, this.#filled));
      this.#pool.fill(0, start, this.#filled);
      this.#filled = start;
      this.#stats.fromHsm += n;
    } else {
      platformRandom(target);
      this.#stats.fromFallback += n;
    }
    if (this.#filled < POOL_BYTES / 2) this.#refill();
    return array;
  }

  #refill(): void {
    if (this.#refilling || !this.#session.isOpen) return;
    this.#refilling = (async () => {
      try {
        while (this.#filled + REFILL_BYTES <= POOL_BYTES && this.#session.isOpen) {
          const { data } = await this.#session.send({ op: 'generateRandom', length: REFILL_BYTES });
          const room = POOL_BYTES - this.#filled;
          const take = Math.min(room, data.length);
          this.#pool.set(data.subarray(0, take), this.#filled);
          this.#filled += take;
          data.fill(0);
        }
      } catch {
        // The session ended or the HSM refused; calls fall back until a later refill succeeds.
      } finally {
        this.#refilling = null;
      }
    })();
  }
}
