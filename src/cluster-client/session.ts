/**
 * A logged-in session: the client-side handle through which an application talks to the HSM as
 * one user. It holds session tokens and handles only; never key material. Where its requests go
 * (which member, retries, replication) is the cluster's business (cluster.ts). The session
 * applications get (`login()`, with its WebCrypto door `.crypto`) is app/session.ts, built on this.
 *
 * @module
 */
import { HsmError, type KeyInfo, type Request, type RequestOf, type Results, type UserRole } from '../hsm-core/face.js';
import type { SessionChannel } from './channel.js';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** Any request that runs in a session, without its `session` field (the session adds it). */
export type SessionRequest = DistributiveOmit<Extract<Request, { session?: string }>, 'session'>;

export class ClusterSession {
  readonly #channel: SessionChannel;
  #open = true;

  /** @internal Made by `login`. */
  constructor(channel: SessionChannel) {
    this.#channel = channel;
  }

  /** The user, as the HSM spells the name (lowercase). */
  get username(): string {
    return this.#channel.username;
  }

  get role(): UserRole {
    return this.#channel.role;
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
    if (request.op === 'logout') return this.logout().then(() => ({ loggedOut: true }) as Results[R['op']]);
    return this.#channel.send(request as SessionRequest & { op: string }) as Promise<Results[R['op']]>;
  }

  /**
   * Sends one request to one given member of the cluster (0-based), bypassing load balancing:
   * for what differs per member (audit logs, hsm info) and to check what each member holds.
   * Changes made this way are not replicated.
   */
  sendToMember<R extends SessionRequest>(member: number, request: R): Promise<Results[R['op']]> {
    if (!this.#open) return Promise.reject(new HsmError('NOT_LOGGED_IN', `the session of ${this.username} has logged out`));
    return this.#channel.sendToMember(member, request as SessionRequest & { op: string }) as Promise<Results[R['op']]>;
  }

  /**
   * `findKeys` with CloudHSM's `cluster-coverage` for each key: `full` when every member that is
   * up holds the same token key (compared by sync digest), `inconsistent` when some lack it or
   * hold a different version, `session` for a session key (it lives on one member by design).
   */
  async listKeys(request: Omit<RequestOf<'findKeys'>, 'op' | 'session'> = {}): Promise<{ keys: (KeyInfo & { clusterCoverage: 'full' | 'inconsistent' | 'session' })[]; nextToken: string | null }> {
    // The operation goes last: a caller's own `op` (a page's, through the relay) cannot replace it.
    const page = await this.send({ ...request, op: 'findKeys' });
    const statuses = (await this.#channel.everyMember({ op: 'getSyncStatus' })) as Results['getSyncStatus'][];
    const digests = statuses.map((s) => new Map(s.keys.map((k) => [k.handle, k.digest])));
    return {
      nextToken: page.nextToken,
      keys: page.keys.map((k) => {
        if (k.sessionKey) return { ...k, clusterCoverage: 'session' as const };
        const seen = new Set(digests.map((d) => d.get(k.handle)));
        return { ...k, clusterCoverage: seen.size === 1 && !seen.has(undefined) ? ('full' as const) : ('inconsistent' as const) };
      }),
    };
  }

  /** Whether logout has not been called. (The member may still have ended the session.) */
  get isOpen(): boolean {
    return this.#open;
  }

  /** Ends the session on every member; its session keys are destroyed. */
  async logout(): Promise<void> {
    if (!this.#open) return;
    this.#open = false;
    await this.#channel.logout();
  }
}
