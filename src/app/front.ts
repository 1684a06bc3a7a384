/**
 * What every cluster an application holds offers, local or remote: logging in, what the members
 * say about themselves, their state, and closing. `LocalCluster` and `RemoteCluster` add what
 * only they can do (start and supervise members; discover them over TLS).
 *
 * @module
 */
import type { Cluster, LoginOptions, MemberStatus } from '../cluster-client/index.js';
import type { HsmInfo, Results, UserInfo } from '../hsm-core/face.js';
import { HsmSession } from './session.js';

export abstract class ClusterFront {
  readonly #cluster: Cluster;

  protected constructor(cluster: Cluster) {
    this.#cluster = cluster;
  }

  /** Logs in (on every member) and returns the session. `role`, when given, must be the user's role. */
  async login(username: string, password: string, options: LoginOptions = {}): Promise<HsmSession> {
    return new HsmSession(await this.#cluster.login(username, password, options));
  }

  /** What each member says about itself (no login needed). */
  hsmInfo(): Promise<HsmInfo[]> {
    return this.#cluster.hsmInfo();
  }

  /** The users (no login needed, as in CloudHSM), with their cluster coverage. */
  listUsers(): Promise<(UserInfo & { clusterCoverage: 'full' | 'inconsistent' })[]> {
    return this.#cluster.listUsers();
  }

  /** A request that needs no login, on every member that is up: one answer each. */
  askEveryMember<O extends 'getHsmInfo' | 'listUsers' | 'listQuorumTokens' | 'getQuorumSettings'>(op: O): Promise<Results[O][]> {
    return this.#cluster.askEveryMember(op);
  }

  /** Activates a never-activated cluster (CloudHSM's `cluster activate`). */
  activate(password: string): Promise<void> {
    return this.#cluster.activate(password);
  }

  /** Per-member state (up, down, repairing, removed), outstanding requests, capacity and counters. */
  status(): MemberStatus[] {
    return this.#cluster.status();
  }

  /** Waits until every member is up again (after a failure: restarted and repaired). */
  whenAllUp(timeoutMs?: number): Promise<void> {
    return this.#cluster.whenAllUp(timeoutMs);
  }

  /** @internal the cluster handle. */
  get cluster(): Cluster {
    return this.#cluster;
  }

  /** Ends every session and lets go of the members. */
  close(): Promise<void> {
    return this.#cluster.close();
  }
}
