/**
 * The session an application gets from `login()`: a cluster session with its WebCrypto door.
 *
 * @module
 */
import { ClusterSession } from '../cluster-client/session.js';
import { HsmCrypto } from '../subtle/crypto.js';

export class HsmSession extends ClusterSession {
  #crypto: HsmCrypto | undefined;

  /**
   * A standard WebCrypto `Crypto` for this session: every key it makes or imports lives in the
   * HSM as a session key of this user. See docs/webcrypto.md.
   *
   * @example
   * ```ts
   * const key = await session.crypto.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
   * ```
   */
  get crypto(): HsmCrypto {
    this.#crypto ??= new HsmCrypto(this);
    return this.#crypto;
  }
}
