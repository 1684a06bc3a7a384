/**
 * The members' supervisor of a local cluster (app/local-cluster.ts), in the role AWS plays for
 * CloudHSM: how to start member `index` (in this process, in a worker thread, or as a
 * `strongroom hsm serve` process behind mutual TLS, on its data folder if it has one), the
 * appliance user's password that only it knows, and the knobs for chaos (kill, hold down). A
 * member that fails is started again and, being empty, is brought back into the cluster from a
 * clone of a healthy member.
 *
 * @module
 */
import { join } from 'node:path';
import type { MemberOptions, ProfileName } from '../hsm-core/index.js';
import type { ClusterOptions } from './cluster.js';
import type { MemberStarter } from './member-link.js';
import { InProcessTransport, WorkerTransport, type Transport } from './transport.js';
import { ProcessMemberTransport } from './local-tls.js';
import type { InstallationKeys } from './installation.js';
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
  /** The first admin's password, set when the cluster is activated (8–32 characters); not needed with `fromBackup` and no `users`. */
  adminPassword?: string;
  /** Users created when the cluster is first activated. */
  users?: LocalUser[];
  /** `cloudhsm` (default) or `unlimited`. */
  profile?: ProfileName;
  /** Each member's queue limit (see MemberOptions.queueLimit). */
  queueLimit?: number;
  /** log2 of scrypt's N for password hashes (10–20, default 15). Lower it only in tests. */
  passwordCost?: number;
  /**
   * The members' mode, as CloudHSM's clusters: `non-fips` (the default here, every hsm2m.medium
   * mechanism, Ed25519 and RSA PKCS #1 v1.5 encryption included) or `fips` (the cloudhsm profile then
   * refuses what CloudHSM's FIPS mode refuses). Backups restore only into the same mode. The
   * CloudHSM V2 API's CreateCluster defaults to FIPS, as AWS's.
   */
  mode?: 'fips' | 'non-fips';
  /** MKBK: the emulated manufacturer's key, 32 bytes (default: the installation's, made at its first start; see installation.ts). */
  manufacturerKey?: Uint8Array;
  /**
   * The installation's backup keys, when the caller keeps them for many clusters (the control
   * plane: one emulated service whose backups restore into any of its clusters). Default: the
   * cluster folder's own (installation.ts).
   */
  installationKeys?: InstallationKeys;
  /**
   * Backups: where they are kept (default `<dataDir>/backups`, or none without a data folder)
   * and how often one is taken besides activation and membership changes (default 24 h).
   */
  backups?: { dir?: string; intervalMs?: number; region?: string };
  /**
   * Make the new cluster from a backup instead of activating one (CloudHSM's create-cluster
   * --source-backup-id): the first member is restored from it and gets its users, keys and
   * policies; the new cluster gets its own cluster id and is independent afterwards.
   * `adminPassword` is then the backup's admin's password.
   */
  fromBackup?: { dir: string; backupId: string };
  /**
   * How often the supervisor compares the members that are up and brings each to the newest
   * version of everything any of them holds (`Cluster.reconcile`), in ms. Default 2000; 0: never.
   */
  syncIntervalMs?: number;
  /**
   * `false`: leave a new one-member cluster unactivated, for whoever activates it the way CloudHSM's
   * users do (`strongroom cluster activate`); `adminPassword` and `users` are then not used. Add
   * members after the activation (`addMember`). Default true.
   */
  activate?: boolean;
}

export const TRANSPORTS: readonly LocalTransport[] = ['in-process', 'worker', 'tls'];

/** What a `tls` local cluster hands out so that other clients can `connect` to it. */
export interface LocalTlsInfo extends TlsCredentials {
  /** The cluster's folder. */
  dataDir: string;
  /** `host:port` of each member. */
  addresses: string[];
}

/** One member slot's way to start a member, for the cluster client. */
export interface Slot {
  description: string;
  start: MemberStarter;
}

/** What a transport factory is asked for: member `index` of a local cluster, and where it runs. */
export interface MemberSpec {
  kind: LocalTransport;
  index: number;
  memberOptions: MemberOptions;
  /** Its data folder, if it has one (a `tls` member always has). */
  dir: string | null;
  /** For `tls`: the port it had (0: any free one). */
  port: number;
  credentials: TlsCredentials | null;
}

/** A started member: its transport, a way to make it fail as a crash would, and (for `tls`) its port. */
export type LiveMember = Transport & { kill(): void; port?: number };

/** Starts one member of a local cluster. The composition root (app/container.ts) chooses it; tests may wrap it. */
export type TransportFactory = (spec: MemberSpec) => Promise<LiveMember>;

/** Members in this process, in worker threads, or as `strongroom hsm serve` processes behind mutual TLS. */
export const startMember: TransportFactory = async ({ kind, index, memberOptions, dir, port, credentials }) => {
  if (kind === 'tls') {
    return ProcessMemberTransport.start({ ...memberOptions, dir: dir!, index, port, profile: memberOptions.profile!, appliancePassword: memberOptions.appliancePassword! }, credentials!);
  }
  return kind === 'worker' ? WorkerTransport.start(memberOptions, index) : InProcessTransport.start(memberOptions, index);
};

/**
 * What runs the members: how to start member `index` (a new worker, process or in-process
 * member, on its data folder if there is one), and the knobs for chaos (kill, hold down).
 */
/** @internal */
export class Supervisor {
  readonly live: LiveMember[] = [];
  readonly held = new Set<number>();
  readonly ports: number[] = [];
  readonly appliancePassword: string;
  /** Protects the members' storage keys and the installation keys (option, or STRONGROOM_MASTER_PASSPHRASE). */
  readonly passphrase: string | undefined;

  constructor(
    readonly options: LocalClusterOptions,
    readonly transport: LocalTransport,
    readonly profile: ProfileName,
    readonly dataDir: string | null,
    readonly credentials: TlsCredentials | null,
    readonly keys: InstallationKeys,
    readonly services: { startMember: TransportFactory; random: (n: number) => Uint8Array },
  ) {
    this.appliancePassword = Buffer.from(services.random(18)).toString('base64url');
    this.passphrase = options.passphrase ?? (process.env.STRONGROOM_MASTER_PASSPHRASE || undefined);
  }

  /** Connections from now on trust members under `ca` (PEM, one or more certificates). */
  trustMembersUnder(ca: string): void {
    const credentials = this.credentials as (TlsCredentials & { appliance?: TlsCredentials }) | null;
    if (!credentials) return;
    credentials.ca = ca;
    if (credentials.appliance) credentials.appliance.ca = ca;
  }

  memberDir(index: number): string | null {
    return this.dataDir === null ? null : join(this.dataDir, `member-${index}`);
  }

  slot(index: number): Slot {
    const { options, transport, profile } = this;
    const dir = this.memberDir(index);
    const memberOptions: MemberOptions = {
      profile,
      memberIndex: index,
      appliancePassword: this.appliancePassword,
      serviceKey: this.keys.serviceKey,
      manufacturerKey: options.manufacturerKey ?? this.keys.manufacturerKey,
      // hsm1.medium has FIPS mode only; the others default to non-FIPS (every mechanism).
      mode: options.mode ?? (profile === 'cloudhsm-hsm1' ? 'fips' : 'non-fips'),
      ...(options.queueLimit !== undefined ? { queueLimit: options.queueLimit } : {}),
      ...(options.passwordCost !== undefined ? { passwordCost: options.passwordCost } : {}),
      ...(dir !== null ? { dataDir: dir } : {}),
      ...(this.passphrase !== undefined ? { passphrase: this.passphrase } : {}),
    };
    return {
      description: `${transport} member ${index}`,
      // A start is a new member process, worker or object: on its data folder if it has one,
      // otherwise empty, and then the cluster client brings it in line (clone, compare).
      start: async (): Promise<Transport> => {
        if (this.held.has(index)) throw new Error(`member ${index} is held down (killMember with restart: false)`);
        // A member restarting on the same data folder waits until the one before has let go of it.
        await (this.live[index] as { closed?: Promise<unknown> } | undefined)?.closed;
        const t = await this.services.startMember({ kind: transport, index, memberOptions, dir, port: this.ports[index] ?? 0, credentials: this.credentials });
        if (t.port !== undefined) this.ports[index] = t.port;
        if (this.held.has(index)) {
          // Held down (killMember with restart: false) while it was starting: it stops at once.
          t.kill();
          throw new Error(`member ${index} is held down (killMember with restart: false)`);
        }
        this.live[index] = t;
        return t;
      },
    };
  }

  /** Where the members that are part of the cluster listen (a removed member's port is 0). */
  addresses(): string[] {
    return this.ports.filter((p) => p > 0).map((p) => `127.0.0.1:${p}`);
  }
}

