/**
 * `startLocalCluster`: a cluster started by the application itself, for development and tests.
 * It starts the members (in this process, in worker threads, or as `strongroom hsm serve`
 * processes behind mutual TLS, through the supervisor of cluster-client/supervisor.ts),
 * activates the first, joins the others to it, provisions the given users, and hands out
 * logged-in sessions.
 *
 * @module
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HsmError, MEMBER_FILES, PROFILE_NAMES, lockFolder, writeFileDurably, type FolderLock, type HsmInfo, type Results } from '../hsm-core/index.js';
import { Cluster, resultOf, type SyncState } from '../cluster-client/index.js';
import { BackupStore, type BackupInfo, type BackupTrigger } from '../cluster-client/backups.js';
import { CLUSTER_CERTIFICATE_FILES, memberTrust, prepareTlsCluster } from '../cluster-client/local-tls.js';
import { installationKeys, type InstallationKeys } from '../cluster-client/installation.js';
import { Supervisor, TRANSPORTS, type LocalClusterOptions as MemberSetOptions, type LocalTlsInfo, type LocalTransport } from '../cluster-client/supervisor.js';
import { clusterContainer, resolveServices, type ClusterServices, type ServiceContainer } from './container.js';

export interface LocalClusterOptions extends MemberSetOptions {
  /**
   * The cluster's composition root (`clusterContainer()` from `strongroom`): its clock, random
   * source, backup store and member starter. Default: a new container with the defaults.
   */
  services?: ServiceContainer;
}
import type { ProfileName } from '../hsm-core/index.js';
import { ClusterFront } from './front.js';

export class LocalCluster extends ClusterFront {
  readonly #supervisor: Supervisor;
  readonly profile: ProfileName;
  readonly transport: LocalTransport;
  /** Where backups are kept, if anywhere. */
  readonly backupStore: BackupStore | null;
  /** For `tls` clusters: credentials and addresses for `connect`. */
  readonly tls: LocalTlsInfo | null;
  readonly #removeOnClose: string | null;
  #periodic: NodeJS.Timeout | undefined;
  #syncing: NodeJS.Timeout | undefined;
  #lastSync: SyncState = { inSync: true, keys: [], users: [], settings: false };

  readonly #lock: FolderLock | null;
  /** What a start needs after the members are up. */
  readonly #start: { source: Uint8Array | null };
  /**
   * The holder of a stale lock on the cluster folder that this start took over (a supervisor that
   * died), or null; `strongroom up` says so.
   */
  readonly tookOverLock: string | null;
  /** How the cluster folder keeps the installation's backup keys: `passphrase`, `files` (the folder is the secret) or `memory`. */
  readonly keyProtection: InstallationKeys['protection'];

  private constructor(cluster: Cluster, supervisor: Supervisor, backupStore: BackupStore | null, removeOnClose: string | null, lock: FolderLock | null, source: Uint8Array | null) {
    super(cluster);
    this.#lock = lock;
    this.#start = { source };
    this.tookOverLock = lock?.tookOver ?? null;
    this.keyProtection = supervisor.keys.protection;
    this.#supervisor = supervisor;
    this.profile = supervisor.profile;
    this.transport = supervisor.transport;
    this.backupStore = backupStore;
    const { credentials, dataDir } = supervisor;
    this.tls = credentials && dataDir ? { dataDir, addresses: supervisor.addresses(), ca: credentials.ca, cert: credentials.cert, key: credentials.key } : null;
    this.#removeOnClose = removeOnClose;
  }

  /** @internal use {@link startLocalCluster}. */
  static async start(given: LocalClusterOptions): Promise<LocalCluster> {
    const activate = given?.activate ?? true;
    if (!given || (typeof given.adminPassword !== 'string' && !given.fromBackup && activate)) {
      throw new HsmError('BAD_REQUEST', 'adminPassword: required, the password the first admin gets at activation');
    }
    const options = withPasswordCost(given, process.env.STRONGROOM_PASSWORD_COST);
    const members = options.members ?? 1;
    if (!activate && (members !== 1 || options.fromBackup || options.users?.length)) {
      throw new HsmError('BAD_REQUEST', 'activate: false starts one unactivated member (no fromBackup, no users); add members after activating it');
    }
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
    let dataDir: string | null = options.dataDir ?? null;
    let removeOnClose: string | null = null;
    if (transport === 'tls' && dataDir === null) dataDir = removeOnClose = throwawayFolder();
    // One supervisor per cluster folder: a second one is refused before anything in it changes.
    let lock: FolderLock | null = null;
    if (dataDir !== null) {
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      lock = lockFolder(dataDir, 'cluster folder');
    }
    let local: LocalCluster;
    let cluster: Cluster;
    try {
      const services: ClusterServices = resolveServices(options.services ?? clusterContainer());
      const credentials = transport === 'tls' ? await prepareTlsCluster(dataDir!, members) : null;
      const source = options.fromBackup ? services.backupStore(options.fromBackup.dir, { create: false }).read(options.fromBackup.backupId) : null;
      const keys = options.installationKeys ?? installationKeys(dataDir, options.passphrase ?? (process.env.STRONGROOM_MASTER_PASSPHRASE || undefined));
      const supervisor = new Supervisor(options, transport, profile, dataDir, credentials, keys, services);
      const backupDir = options.backups?.dir ?? (dataDir !== null ? join(dataDir, 'backups') : null);
      const store = backupDir !== null ? services.backupStore(backupDir, options.backups?.region !== undefined ? { region: options.backups.region } : {}) : null;
      cluster = await Cluster.open(
        Array.from({ length: members }, (_, i) => supervisor.slot(i)),
        {
          appliancePassword: supervisor.appliancePassword,
          probeIntervalMs: 50,
          ...(options.retry !== undefined ? { retry: options.retry } : {}),
          ...(options.keyAvailabilityCheck !== undefined ? { keyAvailabilityCheck: options.keyAvailabilityCheck } : {}),
        },
      );
      local = new LocalCluster(cluster, supervisor, store, removeOnClose, lock, source);
    } catch (e) {
      lock?.release();
      if (removeOnClose) removeThrowaway(removeOnClose);
      throw e;
    }
    const { source } = local.#start;
    const store = local.backupStore;
    try {
      // A cluster folder used before: every member is merged with the one that changed last (the
      // newest version of everything wins, so nothing only one member holds is thrown away; a
      // member with no cluster yet gets a backup first). Otherwise member 0 is activated (or
      // restored from the backup) and the others join it.
      const infos = await Promise.all(cluster.links.map(async (l) => {
        const r = await cluster.sendTo(l, { op: 'getHsmInfo' });
        return r.ok ? (r.result as HsmInfo) : null;
      }));
      let reference = -1;
      for (const [i, info] of infos.entries()) {
        if (!info || info.clusterId === null) continue;
        if (reference < 0 || (info.lastChange ?? '') > (infos[reference]!.lastChange ?? '')) reference = i;
      }
      const existing = reference >= 0;
      if (!existing) reference = 0;
      const first = cluster.links[reference]!;
      let activated = false;
      if (!existing && source) {
        resultOf(await cluster.sendTo(first, { op: 'restoreBackup', backup: source, asNewCluster: true }));
      } else if (!existing && activate) {
        resultOf(await cluster.sendTo(first, { op: 'activateCluster', password: options.adminPassword! }));
        activated = true;
      }
      if (local.tls) await local.#publishAddresses();
      // Members that did not come up (yet) are compared and merged when they do (the probe's repair).
      for (let i = 0; i < members; i++) if (i !== reference && cluster.links[i]!.state === 'up') await cluster.resync(i, reference);
      const present = new Set((await cluster.listUsers()).map((u) => u.username));
      const missing = (activate || existing ? (options.users ?? []) : []).filter((u) => !present.has(u.username.toLowerCase()));
      if (missing.length) {
        const admin = await local.login('admin', options.adminPassword!);
        try {
          for (const user of missing) {
            await admin.send({ op: 'createUser', username: user.username, password: user.password, role: user.role });
          }
        } finally {
          await admin.logout();
        }
      }
      const syncEvery = options.syncIntervalMs ?? 2000;
      if (syncEvery > 0) {
        local.#syncing = setInterval(() => {
          if (local.#reconciling || cluster.closed) return;
          local.sync().catch(() => undefined); // a member that went down meanwhile: the next run, or its repair
        }, syncEvery);
        local.#syncing.unref();
      }
      if (store) {
        // CloudHSM backs a cluster up when it is activated (and made from a backup), then at least daily.
        if (activated || source) await local.takeBackup(activated ? 'activation' : 'on-demand');
        store.sweep();
        const interval = options.backups?.intervalMs ?? 86_400_000;
        local.#periodic = setInterval(() => {
          void local.takeBackup('periodic').then(() => store.sweep(), () => undefined);
        }, interval);
        local.#periodic.unref();
      }
    } catch (e) {
      await local.close();
      throw e;
    }
    return local;
  }

  /** Tells every member where all members are (for clients that connect to one address). */
  async #publishAddresses(): Promise<void> {
    const addresses = this.#supervisor.addresses();
    if (this.tls) this.tls.addresses.splice(0, this.tls.addresses.length, ...addresses);
    await this.#asAppliance(async (send) => {
      await send({ op: 'setClusterAddresses', addresses });
    }, 'all');
  }

  /** Runs `work` with appliance sessions on one healthy member, on every member that is up, or on member `where`. */
  async #asAppliance(work: (send: (request: Record<string, unknown>) => Promise<Record<string, unknown>>) => Promise<void>, where: 'one' | 'all' | number): Promise<void> {
    const links =
      where === 'all' ? this.cluster.upMembers() : where === 'one' ? [this.cluster.pick()].filter((l) => l !== undefined) : this.cluster.upMembers().filter((l) => l === this.cluster.links[where]);
    if (!links.length) throw new HsmError('MEMBER_UNAVAILABLE', typeof where === 'number' ? `member ${where} is not up` : 'no member of the cluster is up');
    for (const link of links) {
      const { session } = resultOf<'login'>(await this.cluster.sendTo(link, { op: 'login', username: 'app_user', password: this.#supervisor.appliancePassword }));
      try {
        await work(async (request) => {
          return resultOf(await this.cluster.sendTo(link, { ...request, session })) as unknown as Record<string, unknown>;
        });
      } finally {
        await this.cluster.sendTo(link, { op: 'logout', session });
      }
    }
  }

  /**
   * Takes a backup now, inside a healthy member, into the backup store (CloudHSM takes them
   * itself: at activation, when members are added or removed, and daily; this is the same step).
   */
  async takeBackup(trigger: BackupTrigger = 'on-demand'): Promise<BackupInfo> {
    const store = this.backupStore;
    if (!store) throw new HsmError('BAD_REQUEST', 'this cluster has no backup store: start it with a dataDir or backups.dir');
    return store.add(await this.#backupBytes(), { trigger });
  }

  /**
   * Installs the cluster certificate, as CloudHSM's InitializeCluster does: `certificate` is signed
   * by the customer's `trustAnchor` over the cluster CSR of member 0 (`member-0/member.csr`), the
   * cluster's only member. Member 0 restarts presenting it; members added later present it too
   * (see local-tls.ts), and clients verify members against the trust anchor (`trustAnchor.crt` in
   * the cluster folder). The caller checks the certificate against the CSR first.
   */
  async installClusterCertificate(certificate: string, trustAnchor: string): Promise<void> {
    const dir = this.#supervisor.dataDir;
    if (this.transport !== 'tls' || dir === null) throw new HsmError('BAD_REQUEST', 'only a cluster of TLS members presents a cluster certificate');
    if (this.cluster.size !== 1) throw new HsmError('BAD_REQUEST', `a cluster certificate is installed on a cluster of one member (this one has ${this.cluster.size})`);
    const pem = (text: string) => (text.endsWith('\n') ? text : `${text}\n`);
    // clusterCertificate.crt last: its presence says the installation is complete.
    writeFileDurably(join(dir, 'member-0', MEMBER_FILES.cert), pem(certificate), 0o644);
    writeFileDurably(join(dir, CLUSTER_CERTIFICATE_FILES.anchor), pem(trustAnchor), 0o644);
    writeFileDurably(join(dir, CLUSTER_CERTIFICATE_FILES.cert), pem(certificate), 0o644);
    this.#supervisor.trustMembersUnder(memberTrust(dir, readFileSync(join(dir, 'customerCA.crt'), 'utf8')));
    // The member reads its certificate when it starts: a restart, which the supervisor does at once.
    this.killMember(0);
    await this.cluster.whenAllUp();
  }

  /**
   * A page of member `index`'s audit log, read as the appliance user (CloudHSM's side of the
   * cluster, which ships the logs to CloudWatch): records from `fromSequence`, at most `maxItems`.
   * The appliance's own login and logout are recorded in the log like any other.
   */
  async readAuditLog(index: number, fromSequence: number, maxItems = 10_000): Promise<Results['getAuditLog']> {
    let page: Results['getAuditLog'] | undefined;
    await this.#asAppliance(async (send) => {
      page = (await send({ op: 'getAuditLog', fromSequence, maxItems })) as unknown as Results['getAuditLog'];
    }, index);
    return page!;
  }

  async #backupBytes(): Promise<Uint8Array> {
    let backup: Uint8Array | undefined;
    await this.#asAppliance(async (send) => {
      backup = (await send({ op: 'createBackup' })).backup as Uint8Array;
    }, 'one');
    return backup!;
  }

  /**
   * Adds a member while the cluster serves traffic, as CloudHSM does: back up an existing
   * member, restore the backup onto the new one, then route to it once it has caught up with
   * what changed since the backup. Returns its index.
   */
  async addMember(onProgress: (step: string) => void = () => undefined): Promise<number> {
    const index = this.cluster.size;
    if (index >= 32) throw new HsmError('BAD_REQUEST', 'a cluster has at most 32 members');
    const dir = this.#supervisor.memberDir(index);
    if (dir !== null) rmSync(dir, { recursive: true, force: true });
    if (this.transport === 'tls') {
      onProgress(`making member ${index}'s certificate (cluster CSR signed by the trust anchor)`);
      await prepareTlsCluster(this.#supervisor.dataDir!, index + 1);
    }
    onProgress('backing up an existing member');
    const backup = this.backupStore ? this.backupStore.read((await this.takeBackup('member-added')).backupId) : await this.#backupBytes();
    onProgress(`starting member ${index} and restoring the backup onto it`);
    await this.cluster.addMember(this.#supervisor.slot(index), async (transport) => {
      resultOf(await transport.send({ op: 'restoreBackup', backup }));
      onProgress(`member ${index} restored; bringing over what changed since the backup`);
    });
    if (this.tls) await this.#publishAddresses();
    onProgress(`member ${index} is up and takes requests`);
    return index;
  }

  /**
   * Removes member `index` while the cluster serves traffic: a backup first, then no new
   * requests go to it, the ones it is working on finish, and it is shut down (its data folder
   * deleted). Session keys that lived on it are gone, as with CloudHSM.
   */
  async removeMember(index: number, onProgress: (step: string) => void = () => undefined): Promise<void> {
    const link = this.cluster.links[index];
    if (!link || link.state === 'removed') throw new HsmError('BAD_REQUEST', `member ${index}: no such member in the cluster`);
    if (this.cluster.links.filter((l) => l.state !== 'removed').length <= 1) throw new HsmError('BAD_REQUEST', 'the last member of a cluster cannot be removed');
    if (this.backupStore) {
      onProgress('backing up the cluster');
      await this.takeBackup('member-removed');
    }
    onProgress(`stopping requests to member ${index} and letting those in flight finish`);
    this.#supervisor.held.add(index);
    await this.cluster.removeMember(index);
    onProgress(`member ${index} is shut down`);
    const dir = this.#supervisor.memberDir(index);
    if (dir !== null) rmSync(dir, { recursive: true, force: true });
    if (this.tls) {
      this.#supervisor.ports.splice(index, 1, 0);
      await this.#publishAddresses();
    }
  }

  /**
   * Whether the members that are up hold the same keys, users and settings, after bringing each
   * to the newest version any of them holds (the supervisor also does this every `syncIntervalMs`).
   * What still differs — keys not yet on every member — is listed.
   */
  async sync(): Promise<SyncState> {
    // One comparison at a time: a caller arriving during the supervisor's waits for it, then runs its own.
    while (this.#reconciling) await this.#reconciling.catch(() => undefined);
    const run = this.cluster.reconcile();
    this.#reconciling = run;
    try {
      this.#lastSync = await run;
      return this.#lastSync;
    } finally {
      if (this.#reconciling === run) this.#reconciling = null;
    }
  }

  #reconciling: Promise<SyncState> | null = null;

  /** What the last comparison of the members found (see {@link sync}). */
  get lastSync(): SyncState {
    return this.#lastSync;
  }

  /**
   * Makes member `index` fail, as a crash would: its worker stops at once (between two of its
   * tasks, then terminated: see WorkerTransport), its process is killed
   * (or its in-process member stopped), and what it held only in memory is gone. The supervisor
   * starts it again and the cluster repairs it — unless `restart: false`, which keeps it down
   * until {@link restartMember}. For chaos tests and demonstrations.
   */
  killMember(index: number, options: { restart?: boolean } = {}): void {
    const t = this.#supervisor.live[index];
    if (!t) throw new HsmError('BAD_REQUEST', `member ${index}: no such member (the cluster has ${this.cluster.size})`);
    if (options.restart === false) this.#supervisor.held.add(index);
    t.kill();
    this.cluster.memberStopped(index, 'stopped by killMember');
  }

  /** Lets a member held down by `killMember(i, { restart: false })` start again. */
  restartMember(index: number): void {
    this.#supervisor.held.delete(index);
  }

  /** Stops the members; every session ends, and keys not in a data folder are forgotten. */
  override async close(): Promise<void> {
    clearInterval(this.#periodic);
    clearInterval(this.#syncing);
    await super.close();
    this.#lock?.release();
    if (this.#removeOnClose) removeThrowaway(this.#removeOnClose);
  }
}

/**
 * The folders of TLS clusters started without a data folder (their certificates, keys and
 * members' stores, nothing meant to last): removed at close, or when the process exits without
 * one (a script that ends, a test runner's `--exit`), rather than left in the temporary folder
 * with the cluster's CA key in it.
 */
const throwaways = new Set<string>();
function throwawayFolder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'strongroom-cluster-'));
  if (throwaways.size === 0) process.on('exit', removeThrowaways);
  throwaways.add(dir);
  return dir;
}
function removeThrowaway(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  throwaways.delete(dir);
  if (throwaways.size === 0) process.off('exit', removeThrowaways);
}
function removeThrowaways(): void {
  for (const dir of throwaways) rmSync(dir, { recursive: true, force: true });
}

/**
 * The options with `passwordCost` taken from `STRONGROOM_PASSWORD_COST` when they do not set it:
 * a test run can make every cluster it starts hash passwords cheaply without editing the code
 * it runs (an example, a sample).
 */
function withPasswordCost(options: LocalClusterOptions, fromEnv: string | undefined): LocalClusterOptions {
  if (options.passwordCost !== undefined || fromEnv === undefined || fromEnv === '') return options;
  const cost = /^\d+$/.test(fromEnv) ? Number(fromEnv) : NaN;
  if (!(cost >= 10 && cost <= 20)) throw new HsmError('BAD_REQUEST', `STRONGROOM_PASSWORD_COST: a whole number 10–20, got ${JSON.stringify(fromEnv)}`);
  return { ...options, passwordCost: cost };
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
