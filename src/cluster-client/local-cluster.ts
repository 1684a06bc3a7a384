/**
 * `startLocalCluster`: a cluster started by the application itself, for development and tests.
 * It creates the member, activates it with the given admin password, provisions the given users,
 * and hands out logged-in sessions.
 *
 * @module
 */
import { createMember, HsmError, PROFILE_NAMES, type HsmInfo, type ProfileName, type UserInfo, type UserRole } from '../hsm-core/index.js';
import { HsmSession, call } from './session.js';
import { InProcessTransport, type Transport } from './transport.js';

export interface LocalUser {
  username: string;
  password: string;
  role: 'admin' | 'crypto-user';
}

export interface LocalClusterOptions {
  /** How many members. Only 1 until multi-member clusters land (see the README's roadmap). */
  members?: number;
  /** The first admin's password, set when the cluster is activated (8–32 characters). */
  adminPassword: string;
  /** Users created when the cluster is first activated. */
  users?: LocalUser[];
  /** `cloudhsm` (default) or `unlimited`. */
  profile?: ProfileName;
}

export class LocalCluster {
  readonly #transport: Transport;
  readonly profile: ProfileName;
  #closed = false;

  private constructor(transport: Transport, profile: ProfileName) {
    this.#transport = transport;
    this.profile = profile;
  }

  /** @internal use {@link startLocalCluster}. */
  static async start(options: LocalClusterOptions): Promise<LocalCluster> {
    if (!options || typeof options.adminPassword !== 'string') {
      throw new HsmError('BAD_REQUEST', 'adminPassword: required, the password the first admin gets at activation');
    }
    const members = options.members ?? 1;
    if (members !== 1) {
      throw new HsmError('BAD_REQUEST', `members: this version runs 1 member in-process; got ${members}`);
    }
    const profile = options.profile ?? 'cloudhsm';
    if (!PROFILE_NAMES.includes(profile)) {
      throw new HsmError('BAD_REQUEST', `profile: expected ${PROFILE_NAMES.join(' or ')}, got ${JSON.stringify(profile)}`);
    }
    const member = await createMember({ profile });
    const cluster = new LocalCluster(new InProcessTransport(member), profile);
    try {
      await call(cluster.#transport, { op: 'activateCluster', password: options.adminPassword });
      if (options.users?.length) {
        const admin = await cluster.login('admin', options.adminPassword);
        try {
          for (const user of options.users) {
            await admin.send({ op: 'createUser', username: user.username, password: user.password, role: user.role });
          }
        } finally {
          await admin.logout();
        }
      }
    } catch (e) {
      await cluster.close();
      throw e;
    }
    return cluster;
  }

  /** Logs in and returns the session. `role`, when given, must be the user's role. */
  async login(username: string, password: string, options: { role?: UserRole } = {}): Promise<HsmSession> {
    this.#checkOpen();
    const r = await call(this.#transport, { op: 'login', username, password, ...(options.role ? { role: options.role } : {}) });
    return new HsmSession(this.#transport, r.session, r.username, r.role);
  }

  /** What the member says about itself (no login needed). */
  async hsmInfo(): Promise<HsmInfo[]> {
    this.#checkOpen();
    return [await call(this.#transport, { op: 'getHsmInfo' })];
  }

  /** The users (no login needed, as in CloudHSM). */
  async listUsers(): Promise<UserInfo[]> {
    this.#checkOpen();
    return (await call(this.#transport, { op: 'listUsers' })).users;
  }

  /** Stops the members; every session ends and every key is forgotten. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#transport.close();
  }

  #checkOpen(): void {
    if (this.#closed) throw new HsmError('MEMBER_CLOSED', 'the cluster has been closed');
  }
}

/**
 * Starts a local cluster, activates it and creates its users.
 *
 * @example
 * ```ts
 * const cluster = await startLocalCluster({
 *   adminPassword: 'admin-password',
 *   users: [{ username: 'app', password: 'app-password', role: 'crypto-user' }],
 * });
 * const session = await cluster.login('app', 'app-password');
 * ```
 */
export function startLocalCluster(options: LocalClusterOptions): Promise<LocalCluster> {
  return LocalCluster.start(options);
}
