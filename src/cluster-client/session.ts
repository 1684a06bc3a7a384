/**
 * A logged-in session: the client-side handle through which an application talks to the HSM as
 * one user. It holds the session token and handles only; never key material.
 *
 * @module
 */
import { HsmError, type Request, type Results, type UserRole } from '../hsm-core/index.js';
import { HsmCrypto } from '../subtle/crypto.js';
import type { Transport } from './transport.js';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** Any request that runs in a session, without its `session` field (the session adds it). */
export type SessionRequest = DistributiveOmit<Extract<Request, { session?: string }>, 'session'>;

/** Sends a request and returns its result, or throws the member's refusal as an HsmError. */
export async function call<R extends { op: keyof Results }>(transport: Transport, request: R): Promise<Results[R['op']]> {
  const response = await transport.send(request);
  if (!response.ok) throw HsmError.fromWire(response.error);
  return response.result as Results[R['op']];
}

export class HsmSession {
  readonly username: string;
  readonly role: UserRole;
  readonly #transport: Transport;
  readonly #token: string;
  #open = true;
  #crypto: HsmCrypto | undefined;

  /** @internal Made by `login`. */
  constructor(transport: Transport, token: string, username: string, role: UserRole) {
    this.#transport = transport;
    this.#token = token;
    this.username = username;
    this.role = role;
  }

  /**
   * Sends one request in this session.
   *
   * @example
   * ```ts
   * const { handle } = await session.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 32, attributes: { encrypt: true } });
   * ```
   */
  send<R extends SessionRequest>(request: R): Promise<Results[R['op']]> {
    if (!this.#open) return Promise.reject(new HsmError('NOT_LOGGED_IN', `the session of ${this.username} has logged out`));
    return call(this.#transport, { ...request, session: this.#token });
  }

  /**
   * A standard WebCrypto `Crypto` for this session: every key it makes or imports lives in the
   * HSM as a session key of this user. See the README's "WebCrypto door".
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

  /** Whether logout has not been called. (The member may still have ended the session.) */
  get isOpen(): boolean {
    return this.#open;
  }

  /** Ends the session; its session keys are destroyed. */
  async logout(): Promise<void> {
    if (!this.#open) return;
    await call(this.#transport, { op: 'logout', session: this.#token });
    this.#open = false;
  }
}
