/**
 * `startLocalCluster`: a cluster started by the application itself, for development and tests.
 * It starts the members (in this process, in worker threads, or as `strongroom hsm serve`
 * processes behind mutual TLS), activates the first, joins the others to it, provisions the given
 * users, and hands out logged-in sessions.
 *
 * It is also the members' supervisor, in the role AWS plays for CloudHSM: a member that fails is
 * started again and, being empty, is brought back into the cluster from a clone of a healthy
 * member (with the appliance user, whose password only the supervisor knows).
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HsmError, PROFILE_NAMES, type HsmInfo, type MemberOptions, type ProfileName, type UserInfo, type UserRole } from '../hsm-core/index.js';
import { Cluster, type ClusterOptions, type MemberStatus } from './cluster.js';
import { HsmSession } from './session.js';
import { InProcessTransport, WorkerTransport, type Transport } from './transport.js';
import { ProcessMemberTransport, prepareTlsCluster } from './local-tls.js';
import type { TlsCredentials } from './tls.js';

export interface LocalUser {
  username: string;
  password: string;
  role: 'admin' | 'crypto-user';
}

export type LocalTransport = 'in-process' | 'worker' | 'tls';

export interface LocalClusterOptions extends Pick<ClusterOptions, 'retry' | 'keyAvailabilityCheck'> {
  /** How many members, 1–32. Default 1. */
  members?: number;
  /**
   * Where the members run: `in-process` (default), `worker` (one worker thread each) or `tls`
   * (one `strongroom hsm serve` process each, on loopback, behind mutual TLS).
   */
  transport?: LocalTransport;
  /**
   * The cluster's folder: one durable data folder per member (`member-N/`), and for `tls` the
   * trust anchor and client certificate. Reused if it exists: the members come back with their
   * users and token keys, and activation and existing users are skipped. Without it, in-process
   * and worker members live in memory only, and `tls` uses a temporary folder removed by
   * `close()`.
   */
  dataDir?: string;
  /** Protects each member's storage key (see MemberOptions.passphrase). */
  passphrase?: string;
  /** The first admin's password, set when the cluster is activated (8–32 characters). */
  adminPassword: string;
  /** Users created when the cluster is first activated. */
  users?: LocalUser[];
  /** `cloudhsm` (default) or `unlimited`. */
  profile?: ProfileName;
  /** Each member's queue limit (see MemberOptions.queueLimit). */
  queueLimit?: number;
  /** log2 of scrypt's N for password hashes (10–20, default 15). Lower it only in tests. */
  passwordCost?: number;
}

const TRANSPORTS: readonly LocalTransport[] = ['in-process', 'worker', 'tls'];

/** What a `tls` local cluster hands out so that other clients can `connect` to it. */
export interface LocalTlsInfo extends TlsCredentials {
  /** The cluster's folder. */
  dataDir: string;
  /** `host:port` of each member. */
  addresses: string[];
}

export class LocalCluster {
  readonly #cluster: Cluster;
  readonly profile: ProfileName;
  readonly transport: LocalTransport;
  readonly #live: (Transport & { kill(): void })[];
  readonly #held: Set<number>;
  /** For `tls` clusters: credentials and addresses for `connect`. */
  readonly tls: LocalTlsInfo | null;
  readonly #removeOnClose: string | null;

  private constructor(
    cluster: Cluster,
    profile: ProfileName,
    transport: LocalTransport,
    live: (Transport & { kill(): void })[],
    held: Set<number>,
    tls: LocalTlsInfo | null,
    removeOnClose: string | null,
  ) {
    this.#cluster = cluster;
    this.profile = profile;
    this.transport = transport;
    this.#live = live;
    this.#held = held;
    this.tls = tls;
    this.#removeOnClose = removeOnClose;
  }

  /** @internal use {@link startLocalCluster}. */
  static async start(options: LocalClusterOptions): Promise<LocalCluster> {
    if (!options || typeof options.adminPassword !== 'string') {
      throw new HsmError('BAD_REQUEST', 'adminPassword: required, the password the first admin gets at activation');
    }
    const members = options.members ?? 1;
    if (!Number.isInteger(members) || members < 1 || members > 32) {
      throw new HsmError('BAD_REQUEST', `members: 1–32, got ${String(members)}`);
    }
    const transport = options.transport ?? 'in-process';
    if (!TRANSPORTS.includes(transport)) {
      throw new HsmError('BAD_REQUEST', `transport: expected ${TRANSPORTS.join(' or ')}, got ${JSON.stringify(transport)}`);
    }
    const profile = options.profile ?? 'cloudhsm';
    if (!PROFILE_NAMES.includes(profile)) {
      throw new HsmError('BAD_REQUEST', `profile: expected ${PROFILE_NAMES.join(' or ')}, got ${JSON.stringify(profile)}`);
    }
    const appliancePassword = randomBytes(18).toString('base64url');
    const live: (Transport & { kill(): void })[] = [];
    const held = new Set<number>();
    let dataDir: string | null = null;
    let removeOnClose: string | null = null;
    let credentials: TlsCredentials | null = null;
    const ports: number[] = Array.from({ length: members }, () => 0);
    if (options.dataDir !== undefined) dataDir = options.dataDir;
    if (transport === 'tls') {
      dataDir ??= removeOnClose = mkdtempSync(join(tmpdir(), 'strongroom-cluster-'));
      credentials = await prepareTlsCluster(dataDir, members);
    }
    const starters = Array.from({ length: members }, (_, index) => {
      const memberOptions: MemberOptions = {
        profile,
        memberIndex: index,
        appliancePassword,
        ...(options.queueLimit !== undefined ? { queueLimit: options.queueLimit } : {}),
        ...(options.passwordCost !== undefined ? { passwordCost: options.passwordCost } : {}),
        ...(dataDir !== null ? { dataDir: join(dataDir, `member-${index}`) } : {}),
        ...(options.passphrase !== undefined ? { passphrase: options.passphrase } : {}),
      };
      return {
        description: `${transport} member ${index}`,
        // Every start is a new, empty member; the cluster client joins it from a clone.
        start: async (): Promise<Transport> => {
          if (held.has(index)) throw new Error(`member ${index} is held down (killMember with restart: false)`);
          let t: Transport & { kill(): void };
          if (transport === 'tls') {
            const p = await ProcessMemberTransport.start(
              {
                dir: join(dataDir!, `member-${index}`),
                index,
                port: ports[index]!,
                profile,
                appliancePassword,
                ...(options.passphrase !== undefined ? { passphrase: options.passphrase } : {}),
                ...(options.queueLimit !== undefined ? { queueLimit: options.queueLimit } : {}),
                ...(options.passwordCost !== undefined ? { passwordCost: options.passwordCost } : {}),
              },
              credentials!,
            );
            ports[index] = p.port;
            t = p;
          } else {
            // A member restarting on the same data folder waits until the one before has let go of it.
            await (live[index] as { closed?: Promise<void> } | undefined)?.closed;
            t = transport === 'worker' ? await WorkerTransport.start(memberOptions, index) : await InProcessTransport.start(memberOptions, index);
          }
          live[index] = t;
          return t;
        },
      };
    });
    const cluster = await Cluster.open(starters, {
      appliancePassword,
      probeIntervalMs: 50,
      ...(options.retry !== undefined ? { retry: options.retry } : {}),
      ...(options.keyAvailabilityCheck !== undefined ? { keyAvailabilityCheck: options.keyAvailabilityCheck } : {}),
    });
    const tls = credentials && dataDir ? { dataDir, addresses: ports.map((p) => `127.0.0.1:${p}`), ca: credentials.ca, cert: credentials.cert, key: credentials.key } : null;
    const local = new LocalCluster(cluster, profile, transport, live, held, tls, removeOnClose);
    try {
      const first = cluster.links[0]!;
      const info = await cluster.sendTo(first, { op: 'getHsmInfo' });
      const existing = info.ok && (info.result as HsmInfo).clusterId !== null;
      if (!existing) {
        const activated = await cluster.sendTo(first, { op: 'activateCluster', password: options.adminPassword });
        if (!activated.ok) throw HsmError.fromWire(activated.error);
      }
      if (tls) {
        // Discovery: every member can tell a client where the others are (clones carry it).
        const login = await cluster.sendTo(first, { op: 'login', username: 'app_user', password: appliancePassword });
        if (!login.ok) throw HsmError.fromWire(login.error);
        const session = (login.result as { session: string }).session;
        const set = await cluster.sendTo(first, { op: 'setClusterAddresses', session, addresses: tls.addresses });
        await cluster.sendTo(first, { op: 'logout', session });
        if (!set.ok) throw HsmError.fromWire(set.error);
      }
      for (let i = 1; i < members; i++) await cluster.resync(i);
      const present = new Set((await cluster.listUsers()).map((u) => u.username));
      const missing = (options.users ?? []).filter((u) => !present.has(u.username.toLowerCase()));
      if (missing.length) {
        const admin = await local.login('admin', options.adminPassword);
        try {
          for (const user of missing) {
            await admin.send({ op: 'createUser', username: user.username, password: user.password, role: user.role });
          }
        } finally {
          await admin.logout();
        }
      }
    } catch (e) {
      await local.close();
      throw e;
    }
    return local;
  }

  /** Logs in (on every member) and returns the session. `role`, when given, must be the user's role. */
  async login(username: string, password: string, options: { role?: UserRole } = {}): Promise<HsmSession> {
    return new HsmSession(await this.#cluster.login(username, password, options));
  }

  /** What each member says about itself (no login needed). */
  async hsmInfo(): Promise<HsmInfo[]> {
    return this.#cluster.hsmInfo();
  }

  /** The users (no login needed, as in CloudHSM), with their cluster coverage. */
  async listUsers(): Promise<(UserInfo & { clusterCoverage: 'full' | 'inconsistent' })[]> {
    return this.#cluster.listUsers();
  }

  /** Per-member state (up, down, repairing), outstanding requests, capacity and counters. */
  status(): MemberStatus[] {
    return this.#cluster.status();
  }

  /** Waits until every member is up again (after a failure: restarted and repaired). */
  whenAllUp(timeoutMs?: number): Promise<void> {
    return this.#cluster.whenAllUp(timeoutMs);
  }

  /**
   * Makes member `index` fail, as a crash would: its worker is terminated (or its in-process
   * member stopped), and everything it held in memory is gone. The supervisor starts it again
   * and the cluster repairs it — unless `restart: false`, which keeps it down until
   * {@link restartMember}. For chaos tests and demonstrations.
   */
  killMember(index: number, options: { restart?: boolean } = {}): void {
    const t = this.#live[index];
    if (!t) throw new HsmError('BAD_REQUEST', `member ${index}: no such member (the cluster has ${this.#cluster.size})`);
    if (options.restart === false) this.#held.add(index);
    t.kill();
    this.#cluster.memberStopped(index, 'stopped by killMember');
  }

  /** Lets a member held down by `killMember(i, { restart: false })` start again. */
  restartMember(index: number): void {
    this.#held.delete(index);
  }

  /** @internal the cluster handle. */
  get cluster(): Cluster {
    return this.#cluster;
  }

  /** Stops the members; every session ends and every key is forgotten. */
  async close(): Promise<void> {
    await this.#cluster.close();
    if (this.#removeOnClose) rmSync(this.#removeOnClose, { recursive: true, force: true });
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
