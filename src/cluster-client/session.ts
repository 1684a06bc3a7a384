/**
 * A logged-in session: the client-side handle through which an application talks to the HSM as
 * one user. It holds the session token and handles only; never key material.
 *
 * @module
 */
import { HsmError, type Request, type Results, type UserRole } from '../hsm-core/index.js';
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
