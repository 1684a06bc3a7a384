/**
 * The CloudHSM V2 API's resources, driving real members: a cluster is a folder and, once it has
 * an HSM, a running local cluster of `strongroom hsm serve` members behind mutual TLS; an HSM is
 * one of its members; backups are the members' own (the cluster's backup store). The records are
 * kept in `control-plane.json` (written whole and renamed into place), so the API's state survives
 * a restart.
 *
 * States change in the background, as AWS's do: a call answers with the `…_IN_PROGRESS` state,
 * and DescribeClusters shows the next one when the work is done. The lifecycle is the getting-started
 * guide's: CreateCluster → UNINITIALIZED; the first CreateHsm starts a member, whose cluster CSR
 * DescribeClusters returns; InitializeCluster takes the certificate your trust anchor signed over it
 * → INITIALIZED; `cluster activate` through the CLI (or `session`) → ACTIVE; further HSMs join the
 * activated cluster.
 *
 * @module
 */
import { X509Certificate, createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startLocalCluster, type LocalCluster } from '../app/index.js';
import { loadX509 } from '../certificates/index.js';
import { BackupStore, installationKeys, type BackupInfo, type InstallationKeys, type StoredBackupInfo } from '../cluster-client/index.js';
import { HSM_TYPE_PROFILES, HsmError, writeFileDurably, type HsmType } from '../hsm-core/index.js';
import { AuditLogExporter } from './audit-logs.js';
import { ApiError, invalid, notFound } from './errors.js';
import { actionMatches, type Caller } from './sigv4.js';

export const HSM_TYPES = Object.keys(HSM_TYPE_PROFILES) as HsmType[];
export const MODES = ['FIPS', 'NON_FIPS'] as const;

export interface Tag {
  Key: string;
  Value: string;
}

interface HsmRecord {
  HsmId: string;
  AvailabilityZone: string;
  SubnetId: string;
  EniId: string;
  EniIp: string;
  State: 'CREATE_IN_PROGRESS' | 'ACTIVE' | 'DEGRADED' | 'DELETE_IN_PROGRESS' | 'DELETED';
  StateMessage: string;
  /** Its member's index in the local cluster, once started. */
  member: number | null;
}

interface ClusterRecord {
  ClusterId: string;
  Region: string;
  HsmType: HsmType;
  Mode: (typeof MODES)[number];
  State: string;
  StateMessage: string;
  CreateTimestamp: number;
  SubnetMapping: Record<string, string>;
  VpcId: string;
  SecurityGroup: string;
  NetworkType: string;
  BackupRetentionPolicy: { Type: 'DAYS'; Value: string };
  TagList: Tag[];
  Certificates: { ClusterCsr?: string; ClusterCertificate?: string };
  Hsms: HsmRecord[];
  /** The backup it was made from (CreateCluster with SourceBackupId). */
  SourceBackupId?: string;
  /** The members' own cluster id, which their backups carry (known once activated). */
  MemberClusterId?: string;
}

interface Records {
  v: 1;
  clusters: ClusterRecord[];
  /** Resource policies of backups, by backup ARN. */
  policies?: Record<string, string>;
}

export interface ControlPlaneOptions {
  /** Where the API keeps its records and each cluster's folder. */
  dataDir: string;
  /** The account in ARNs (default 111122223333, AWS's example account). */
  accountId?: string;
  /** log2 of scrypt's N for the members' password hashes (tests lower it). */
  passwordCost?: number;
  /** Protects the service's backup keys in its folder (default STRONGROOM_MASTER_PASSPHRASE; see installation.ts). */
  passphrase?: string;
  /**
   * Where the members' audit logs are written in CloudWatch Logs' shape (see audit-logs.ts);
   * default `<dataDir>/cloudwatch-logs`. As CloudHSM's, the logs are always written.
   */
  auditLogDir?: string;
  /** How often new audit records are exported (milliseconds, default 1000). */
  auditLogIntervalMs?: number;
  log?: (line: string) => void;
}

const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
/** An id as AWS makes them: a prefix and 11 characters of base32 (`cluster-igklspoyj5v`). */
export function newId(prefix: 'cluster' | 'hsm'): string {
  return `${prefix}-${[...randomBytes(11)].map((b) => ID_ALPHABET[b & 31]).join('')}`;
}

const PATTERNS = {
  clusterId: /^cluster-[2-7a-zA-Z]{11,16}$/,
  hsmId: /^hsm-[2-7a-zA-Z]{11,16}$/,
  subnetId: /^subnet-[0-9a-fA-F]{8,17}$/,
  az: /^[a-z]{2}(-(gov))?-(east|west|north|south|central){1,2}-\d[a-z]$/,
  ip: /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/,
  eniId: /^eni-[0-9a-fA-F]{8,17}$/,
  tagKey: /^[\p{L}\p{Z}\p{N}_.:/=+\-@]{1,128}$/u,
  tagValue: /^[\p{L}\p{Z}\p{N}_.:/=+\-@]{0,256}$/u,
};

const hexOf = (text: string, n: number) => createHash('sha256').update(text).digest('hex').slice(0, n);

/** A string member, or undefined; anything else is the caller's mistake, named. */
function str(body: Record<string, unknown>, name: string, required: true): string;
function str(body: Record<string, unknown>, name: string, required?: false): string | undefined;
function str(body: Record<string, unknown>, name: string, required = false): string | undefined {
  const v = body[name];
  if (v === undefined || v === null) {
    if (required) throw invalid(`${name}: required`);
    return undefined;
  }
  if (typeof v !== 'string') throw invalid(`${name}: a string, not ${JSON.stringify(v)}`);
  return v;
}

function matching(value: string, pattern: RegExp, name: string): string {
  if (!pattern.test(value)) throw invalid(`${name}: ${JSON.stringify(value)} is not a valid ${name} (${pattern.source})`);
  return value;
}

function tagsOf(body: Record<string, unknown>, name: string): Tag[] {
  const v = body[name];
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length < 1 || v.length > 50) throw invalid(`${name}: a list of 1 to 50 tags`);
  return v.map((t, i) => {
    const tag = t as { Key?: unknown; Value?: unknown };
    if (typeof tag?.Key !== 'string' || typeof tag.Value !== 'string') throw invalid(`${name}[${i}]: a tag is {"Key": string, "Value": string}`);
    if (!PATTERNS.tagKey.test(tag.Key) || !PATTERNS.tagValue.test(tag.Value)) throw new ApiError('CloudHsmTagException', `${name}[${i}]: tag keys are 1–128 and values 0–256 letters, digits, spaces and _.:/=+-@`);
    if (tag.Key.toLowerCase().startsWith('aws:')) throw new ApiError('CloudHsmTagException', `${name}[${i}]: the aws: prefix is reserved for AWS's own tags`);
    return { Key: tag.Key, Value: tag.Value };
  });
}

function retentionOf(v: unknown): { Type: 'DAYS'; Value: string } {
  const p = v as { Type?: unknown; Value?: unknown };
  if (typeof p !== 'object' || p === null || p.Type !== 'DAYS' || typeof p.Value !== 'string' || !/^\d{1,3}$/.test(p.Value) || Number(p.Value) < 7 || Number(p.Value) > 379) {
    throw invalid('BackupRetentionPolicy: {"Type": "DAYS", "Value": "7"} to "379" days');
  }
  return { Type: 'DAYS', Value: String(Number(p.Value)) };
}

/** The HSM type of the members a backup was taken from (from the profile its header names). */
function hsmTypeOf(b: StoredBackupInfo): HsmType {
  return b.profile === HSM_TYPE_PROFILES['hsm1.medium'] ? 'hsm1.medium' : 'hsm2m.medium';
}

/** NextToken: an opaque position in a listing (the index of the next item). */
function page<T>(items: T[], body: Record<string, unknown>, max: number, name: string): { items: T[]; next: string | undefined } {
  const limit = body.MaxResults;
  if (limit !== undefined && (!Number.isInteger(limit) || (limit as number) < 1 || (limit as number) > max)) throw invalid(`MaxResults: 1 to ${max} ${name}`);
  const size = (limit as number | undefined) ?? max;
  let start = 0;
  const token = str(body, 'NextToken');
  if (token !== undefined) {
    const decoded = /^[A-Za-z0-9_-]+$/.test(token) ? Buffer.from(token, 'base64url').toString() : '';
    if (!/^at:\d{1,9}$/.test(decoded)) throw invalid('NextToken: pass the NextToken of the previous page unchanged');
    start = Number(decoded.slice(3));
  }
  const slice = items.slice(start, start + size);
  return { items: slice, next: start + size < items.length ? Buffer.from(`at:${start + size}`).toString('base64url') : undefined };
}

export class ControlPlane {
  readonly #file: string;
  readonly #records: Records;
  readonly #live = new Map<string, LocalCluster>();
  readonly #work = new Set<Promise<unknown>>();
  readonly #stores = new Map<string, BackupStore>();
  /** One emulated service: its backup keys (AKBK, MKBK) are every cluster's, so a backup restores into any of them. */
  readonly #keys: InstallationKeys;
  readonly accountId: string;
  readonly auditLogs: AuditLogExporter;
  readonly #auditTimer: NodeJS.Timeout;

  constructor(private readonly options: ControlPlaneOptions) {
    mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
    this.#file = join(options.dataDir, 'control-plane.json');
    this.accountId = options.accountId ?? '111122223333';
    this.#records = existsSync(this.#file) ? (JSON.parse(readFileSync(this.#file, 'utf8')) as Records) : { v: 1, clusters: [] };
    this.#keys = installationKeys(options.dataDir, options.passphrase ?? (process.env.STRONGROOM_MASTER_PASSPHRASE || undefined));
    this.auditLogs = new AuditLogExporter(options.auditLogDir ?? join(options.dataDir, 'cloudwatch-logs'));
    this.#auditTimer = setInterval(() => {
      this.exportAuditLogs().catch((e: unknown) => options.log?.(`control plane: exporting audit logs failed: ${e instanceof Error ? e.message : String(e)}`));
    }, options.auditLogIntervalMs ?? 1000);
    this.#auditTimer.unref();
  }

  /** Writes every running HSM's new audit records to its CloudWatch-shaped stream (the timer does it every second). */
  async exportAuditLogs(): Promise<void> {
    await this.auditLogs.export(() =>
      this.runningClusters().flatMap(({ clusterId, hsmIds, live }) => [...hsmIds].filter(([, hsmId]) => !this.#retired.has(hsmId)).map(([member, hsmId]) => ({ clusterId, hsmId, member, live }))),
    );
  }

  /** HSMs being deleted whose streams are complete: no pass reads them again. */
  readonly #retired = new Set<string>();

  /** The folder of a cluster's members, trust anchor, cluster.json and backups. */
  clusterDir(clusterId: string): string {
    return join(this.options.dataDir, 'clusters', clusterId);
  }

  /** A region's backups: one store per region, which every cluster of the region backs up into. */
  #store(region: string): BackupStore {
    let store = this.#stores.get(region);
    if (!store) this.#stores.set(region, (store = new BackupStore(join(this.options.dataDir, 'backups', region), { region })));
    return store;
  }

  #memberOptions(c: ClusterRecord) {
    return {
      transport: 'tls' as const,
      profile: HSM_TYPE_PROFILES[c.HsmType],
      dataDir: this.clusterDir(c.ClusterId),
      mode: c.Mode === 'FIPS' ? ('fips' as const) : ('non-fips' as const),
      backups: { dir: this.#store(c.Region).dir, region: c.Region },
      installationKeys: this.#keys,
      ...(this.options.passwordCost !== undefined ? { passwordCost: this.options.passwordCost } : {}),
    };
  }

  /** Each running cluster, with its HSMs' ids by member index (for the metrics). */
  runningClusters(): { clusterId: string; hsmIds: Map<number, string>; live: LocalCluster }[] {
    return this.#records.clusters.flatMap((c) => {
      const live = this.#live.get(c.ClusterId);
      if (!live) return [];
      return [{ clusterId: c.ClusterId, hsmIds: new Map(c.Hsms.filter((h) => h.member !== null && h.State !== 'DELETED').map((h) => [h.member!, h.HsmId])), live }];
    });
  }

  /** The running local cluster of an API cluster (for the CLI, tests and metrics). */
  live(clusterId: string): LocalCluster | undefined {
    return this.#live.get(clusterId);
  }

  /**
   * Brings back the members of clusters that had HSMs when the API last stopped: the first HSM's
   * member from its folder, the others as new members joining it (restored from its backup).
   */
  async resume(): Promise<void> {
    for (const c of this.#records.clusters) {
      const hsms = c.Hsms.filter((h) => (h.State === 'ACTIVE' || h.State === 'DEGRADED') && h.member !== null).sort((a, b) => a.member! - b.member!);
      c.Hsms.filter((h) => h.State === 'CREATE_IN_PROGRESS' || h.State === 'DELETE_IN_PROGRESS').forEach((h) => {
        // Work the last run did not finish: the HSM is reported as it is, for the caller to delete.
        h.State = 'DEGRADED';
        h.StateMessage = 'The control plane stopped while this HSM was changing; delete it and create another.';
      });
      this.#finishClusterChange(c);
      if (!hsms.length || c.State === 'DELETED') continue;
      // The first HSM's member comes back from its folder (as member 0); the others join it as new
      // members do, restored from a backup of it.
      const dir = this.clusterDir(c.ClusterId);
      const [first, ...rest] = hsms;
      if (first!.member !== 0) {
        rmSync(join(dir, 'member-0'), { recursive: true, force: true });
        renameSync(join(dir, `member-${first!.member}`), join(dir, 'member-0'));
      }
      first!.member = 0;
      const live = await startLocalCluster({ ...this.#memberOptions(c), members: 1, activate: false });
      this.#live.set(c.ClusterId, live);
      for (const h of rest) h.member = await live.addMember();
      this.#writeClusterFile(c.ClusterId, live);
      for (const h of hsms) h.State = 'ACTIVE';
    }
    this.#save();
  }

  /**
   * A cluster change the last run answered but did not finish (it stopped in between): creation
   * and deletion are completed; an initialization counts as done if the certificate was installed
   * in the cluster's folder (the HSM presents it when it starts), and otherwise is undone, for the
   * caller to initialize again.
   */
  #finishClusterChange(c: ClusterRecord): void {
    const dir = this.clusterDir(c.ClusterId);
    if (c.State === 'CREATE_IN_PROGRESS') {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      c.State = 'UNINITIALIZED';
      c.StateMessage = 'The cluster has no HSM yet: create one, then sign its cluster CSR.';
    } else if (c.State === 'DELETE_IN_PROGRESS') {
      c.State = 'DELETED';
      c.StateMessage = 'The cluster was deleted; its backups remain.';
    } else if (c.State === 'INITIALIZE_IN_PROGRESS') {
      const installed = join(dir, 'clusterCertificate.crt');
      if (existsSync(installed)) {
        c.Certificates = { ClusterCertificate: readFileSync(installed, 'utf8') };
        c.State = 'INITIALIZED';
        c.StateMessage = 'The cluster is initialized: activate it (cluster activate), as its admin.';
      } else {
        rmSync(join(dir, 'trustAnchor.crt'), { force: true });
        c.State = 'UNINITIALIZED';
        c.StateMessage = 'The control plane stopped before the certificate was installed; call InitializeCluster again.';
      }
    }
  }

  /** Waits for the background work in flight (state changes), then stops every member. */
  async close(): Promise<void> {
    clearInterval(this.#auditTimer);
    await Promise.allSettled([...this.#work]);
    // What the members logged last reaches the streams before they stop.
    await this.exportAuditLogs().catch((e: unknown) => this.options.log?.(`control plane: exporting audit logs failed: ${e instanceof Error ? e.message : String(e)}`));
    await Promise.all([...this.#live.values()].map((c) => c.close()));
    this.#live.clear();
  }

  #save(): void {
    writeFileDurably(this.#file, JSON.stringify(this.#records, null, 1), 0o600);
  }

  /** Work that moves a resource to its next state; its failure is the resource's state message. */
  #background(what: string, work: () => Promise<void>, failed: (message: string) => void): void {
    // On a later turn, as AWS's: the call answers with the state it started.
    const p = new Promise((resolve) => setImmediate(resolve))
      .then(work)
      .catch((e: unknown) => {
        const message = e instanceof Error ? e.message : String(e);
        this.options.log?.(`control plane: ${what} failed: ${message}`);
        failed(message);
      })
      .finally(() => {
        this.#save();
        this.#work.delete(p);
      });
    this.#work.add(p);
  }

  #cluster(caller: Caller, body: Record<string, unknown>): ClusterRecord {
    const id = matching(str(body, 'ClusterId', true), PATTERNS.clusterId, 'ClusterId');
    const c = this.#records.clusters.find((x) => x.ClusterId === id && x.Region === caller.region);
    if (!c || c.State === 'DELETED') throw notFound(`ClusterId: no cluster ${id} in ${caller.region}`);
    return c;
  }

  arn(region: string, kind: 'cluster' | 'backup' | 'hsm', id: string): string {
    return `arn:aws:cloudhsm:${region}:${this.accountId}:${kind}/${id}`;
  }

  /** A cluster as the API shows it (the ACTIVE state follows the members' own activation). */
  async #view(c: ClusterRecord): Promise<Record<string, unknown>> {
    const live = this.#live.get(c.ClusterId);
    if (live && c.State === 'INITIALIZED') {
      const info = await live.hsmInfo().catch(() => []);
      if (info[0]?.state === 'active') {
        c.State = 'ACTIVE';
        c.StateMessage = 'The cluster is active.';
        if (info[0].clusterId) c.MemberClusterId = info[0].clusterId;
        this.#save();
      }
    }
    const certificates: Record<string, string> = {};
    if (c.State === 'UNINITIALIZED' && c.Certificates.ClusterCsr) certificates.ClusterCsr = c.Certificates.ClusterCsr;
    if (c.Certificates.ClusterCertificate) certificates.ClusterCertificate = c.Certificates.ClusterCertificate;
    return {
      BackupPolicy: 'DEFAULT',
      BackupRetentionPolicy: c.BackupRetentionPolicy,
      ClusterId: c.ClusterId,
      CreateTimestamp: c.CreateTimestamp,
      Hsms: c.Hsms.filter((h) => h.State !== 'DELETED').map((h) => ({
        AvailabilityZone: h.AvailabilityZone,
        ClusterId: c.ClusterId,
        SubnetId: h.SubnetId,
        EniId: h.EniId,
        EniIp: h.EniIp,
        HsmId: h.HsmId,
        HsmType: c.HsmType,
        State: h.State,
        StateMessage: h.StateMessage,
      })),
      HsmType: c.HsmType,
      SecurityGroup: c.SecurityGroup,
      ...(c.SourceBackupId ? { SourceBackupId: c.SourceBackupId } : {}),
      State: c.State,
      StateMessage: c.StateMessage,
      SubnetMapping: c.SubnetMapping,
      VpcId: c.VpcId,
      NetworkType: c.NetworkType,
      Certificates: certificates,
      TagList: c.TagList,
      Mode: c.Mode,
    };
  }

  // ---- operations --------------------------------------------------------------------------

  async CreateCluster(caller: Caller, body: Record<string, unknown>): Promise<unknown> {
    const hsmType = str(body, 'HsmType', true) as HsmType;
    if (!HSM_TYPES.includes(hsmType)) throw invalid(`HsmType: hsm1.medium or hsm2m.medium, not ${JSON.stringify(hsmType)}`);
    const mode = (str(body, 'Mode') ?? 'FIPS') as ClusterRecord['Mode'];
    if (!MODES.includes(mode)) throw invalid(`Mode: FIPS or NON_FIPS, not ${JSON.stringify(mode)}`);
    if (hsmType === 'hsm1.medium' && mode !== 'FIPS') throw invalid('Mode: hsm1.medium clusters run in FIPS mode only; NON_FIPS is for hsm2m.medium');
    const sourceId = str(body, 'SourceBackupId');
    let source: BackupInfo | undefined;
    if (sourceId !== undefined) {
      source = this.#backup(caller, sourceId.replace(/^arn:aws:cloudhsm:[a-z0-9-]+:\d{12}:backup\//, ''), 'SourceBackupId');
      if (source.state !== 'READY') throw invalid(`SourceBackupId: the backup ${source.backupId} is ${source.state}, not READY`);
      const backupMode = source.mode === 'fips' ? 'FIPS' : 'NON_FIPS';
      const backupType = hsmTypeOf(source);
      if (backupType !== hsmType) throw invalid(`SourceBackupId: the backup ${source.backupId} is of an ${backupType} cluster; it restores only into an ${backupType} cluster (HsmType)`);
      if (backupMode !== mode) throw invalid(`SourceBackupId: the backup ${source.backupId} is of a ${backupMode} cluster; it restores only into a ${backupMode} cluster (Mode)`);
    }
    const subnets = body.SubnetIds;
    if (!Array.isArray(subnets) || subnets.length < 1 || subnets.length > 10) throw invalid('SubnetIds: a list of 1 to 10 subnet ids');
    const networkType = str(body, 'NetworkType') ?? 'IPV4';
    if (networkType !== 'IPV4' && networkType !== 'DUALSTACK') throw invalid(`NetworkType: IPV4 or DUALSTACK, not ${JSON.stringify(networkType)}`);
    const mapping: Record<string, string> = {};
    subnets.forEach((s, i) => {
      if (typeof s !== 'string') throw invalid(`SubnetIds[${i}]: a string`);
      matching(s, PATTERNS.subnetId, 'SubnetId');
      // Each subnet stands for its own Availability Zone of the region (a, b, c, …).
      const az = `${caller.region}${'abcdefghij'[i]}`;
      if (Object.values(mapping).includes(s)) throw invalid(`SubnetIds: ${s} is given twice`);
      mapping[az] = s;
    });
    const record: ClusterRecord = {
      ClusterId: newId('cluster'),
      Region: caller.region,
      HsmType: hsmType,
      Mode: mode,
      State: 'CREATE_IN_PROGRESS',
      StateMessage: 'The cluster is being created.',
      CreateTimestamp: Date.now() / 1000,
      SubnetMapping: mapping,
      VpcId: `vpc-${hexOf(subnets.join(','), 8)}`,
      SecurityGroup: `sg-${hexOf(`${subnets.join(',')}/sg`, 17)}`,
      NetworkType: networkType,
      BackupRetentionPolicy: body.BackupRetentionPolicy === undefined ? { Type: 'DAYS', Value: '90' } : retentionOf(body.BackupRetentionPolicy),
      TagList: tagsOf(body, 'TagList'),
      Certificates: {},
      Hsms: [],
      ...(source ? { SourceBackupId: source.backupId } : {}),
    };
    this.#records.clusters.push(record);
    this.#save();
    const view = await this.#view(record);
    this.#background(
      `creating ${record.ClusterId}`,
      async () => {
        mkdirSync(this.clusterDir(record.ClusterId), { recursive: true, mode: 0o700 });
        record.State = 'UNINITIALIZED';
        record.StateMessage = source ? `The cluster is made from ${source.backupId}: create an HSM and it is restored.` : 'The cluster has no HSM yet: create one, then sign its cluster CSR.';
      },
      (m) => ((record.State = 'DEGRADED'), (record.StateMessage = m)),
    );
    return { Cluster: view };
  }

  async DescribeClusters(caller: Caller, body: Record<string, unknown>): Promise<unknown> {
    const filters = (body.Filters ?? {}) as Record<string, unknown>;
    if (typeof filters !== 'object' || filters === null || Array.isArray(filters)) throw invalid('Filters: a map of filter names to lists of values');
    for (const [name, values] of Object.entries(filters)) {
      if (!['clusterIds', 'states', 'vpcIds'].includes(name)) throw invalid(`Filters: ${name} is not a filter of DescribeClusters (clusterIds, states, vpcIds)`);
      if (!Array.isArray(values) || values.some((v) => typeof v !== 'string')) throw invalid(`Filters.${name}: a list of strings`);
    }
    const want = filters as Record<string, string[]>;
    const clusters = this.#records.clusters
      .filter((c) => c.Region === caller.region)
      .filter((c) => !want.clusterIds || want.clusterIds.includes(c.ClusterId))
      .filter((c) => !want.vpcIds || want.vpcIds.includes(c.VpcId));
    const views = await Promise.all(clusters.map((c) => this.#view(c)));
    const shown = views.filter((v) => !want.states || want.states.includes(v.State as string));
    const { items, next } = page(shown, body, 25, 'clusters');
    return { Clusters: items, ...(next ? { NextToken: next } : {}) };
  }

  async CreateHsm(caller: Caller, body: Record<string, unknown>): Promise<unknown> {
    const c = this.#cluster(caller, body);
    const az = matching(str(body, 'AvailabilityZone', true), PATTERNS.az, 'AvailabilityZone');
    const subnet = c.SubnetMapping[az];
    if (!subnet) throw invalid(`AvailabilityZone: the cluster ${c.ClusterId} has subnets in ${Object.keys(c.SubnetMapping).join(', ')}, not ${az}`);
    const ip = str(body, 'IpAddress');
    if (ip !== undefined) matching(ip, PATTERNS.ip, 'IpAddress');
    if (!['UNINITIALIZED', 'INITIALIZED', 'ACTIVE', 'DEGRADED'].includes(c.State)) throw invalid(`ClusterId: the cluster ${c.ClusterId} is ${c.State}; HSMs are created in a cluster that is not being created or deleted`);
    const running = c.Hsms.filter((h) => h.State === 'ACTIVE' || h.State === 'CREATE_IN_PROGRESS');
    const first = running.length === 0;
    if (!first && c.State !== 'ACTIVE') throw invalid(`ClusterId: the cluster ${c.ClusterId} is ${c.State}; further HSMs join it once it is activated (initialize it, then cluster activate)`);
    if (running.some((h) => h.State === 'CREATE_IN_PROGRESS')) throw invalid(`ClusterId: an HSM of ${c.ClusterId} is being created; create the next when it is ACTIVE`);
    const n = c.Hsms.length;
    const hsm: HsmRecord = {
      HsmId: newId('hsm'),
      AvailabilityZone: az,
      SubnetId: subnet,
      EniId: `eni-${hexOf(`${c.ClusterId}/${n}`, 17)}`,
      EniIp: ip ?? `10.0.${Object.keys(c.SubnetMapping).indexOf(az)}.${10 + n}`,
      State: 'CREATE_IN_PROGRESS',
      StateMessage: 'The HSM is being created.',
      member: null,
    };
    c.Hsms.push(hsm);
    this.#save();
    this.#background(
      `creating ${hsm.HsmId}`,
      async () => {
        const dir = this.clusterDir(c.ClusterId);
        let live = this.#live.get(c.ClusterId);
        if (!live) {
          // The first HSM: a member whose cluster CSR the customer signs (CloudHSM's initialisation).
          if (c.SourceBackupId && c.State === 'UNINITIALIZED') {
            // A cluster made from a backup: its first member is restored from it, initialized and active.
            live = await startLocalCluster({ ...this.#memberOptions(c), members: 1, fromBackup: { dir: this.#store(c.Region).dir, backupId: c.SourceBackupId } });
            c.State = 'ACTIVE';
            c.StateMessage = `The cluster was restored from ${c.SourceBackupId}.`;
            const info = await live.hsmInfo();
            if (info[0]?.clusterId) c.MemberClusterId = info[0].clusterId;
          } else {
            live = await startLocalCluster({ ...this.#memberOptions(c), members: 1, activate: false });
          }
          this.#live.set(c.ClusterId, live);
          hsm.member = 0;
          if (c.State === 'UNINITIALIZED') c.Certificates.ClusterCsr = readFileSync(join(dir, 'member-0', 'member.csr'), 'utf8');
        } else {
          hsm.member = await live.addMember();
        }
        this.#writeClusterFile(c.ClusterId, live);
        hsm.State = 'ACTIVE';
        hsm.StateMessage = 'The HSM is active.';
      },
      (m) => ((hsm.State = 'DEGRADED'), (hsm.StateMessage = m)),
    );
    return { Hsm: { AvailabilityZone: az, ClusterId: c.ClusterId, SubnetId: subnet, EniId: hsm.EniId, EniIp: hsm.EniIp, HsmId: hsm.HsmId, HsmType: c.HsmType, State: hsm.State, StateMessage: hsm.StateMessage } };
  }

  /** cluster.json in the cluster's folder: what the CLI and applications connect with (STRONGROOM_CLUSTER). */
  #writeClusterFile(clusterId: string, live: LocalCluster): void {
    const dir = this.clusterDir(clusterId);
    // Once initialized, members present the customer's cluster certificate: clients trust its anchor.
    const anchor = join(dir, 'trustAnchor.crt');
    const file = { members: live.tls!.addresses, ca: existsSync(anchor) ? anchor : join(dir, 'customerCA.crt'), cert: join(dir, 'client.crt'), key: join(dir, 'client.key') };
    writeFileDurably(join(dir, 'cluster.json'), JSON.stringify(file, null, 2) + '\n', 0o644);
  }

  async DeleteHsm(caller: Caller, body: Record<string, unknown>): Promise<unknown> {
    const c = this.#cluster(caller, body);
    const hsmId = str(body, 'HsmId');
    const eniId = str(body, 'EniId');
    const eniIp = str(body, 'EniIp');
    if ([hsmId, eniId, eniIp].filter((v) => v !== undefined).length !== 1) throw invalid('name the HSM by one of HsmId, EniId or EniIp');
    if (hsmId !== undefined) matching(hsmId, PATTERNS.hsmId, 'HsmId');
    if (eniId !== undefined) matching(eniId, PATTERNS.eniId, 'EniId');
    const hsm = c.Hsms.find((h) => h.State !== 'DELETED' && (h.HsmId === hsmId || h.EniId === eniId || h.EniIp === eniIp));
    if (!hsm) throw notFound(`no HSM ${hsmId ?? eniId ?? eniIp} in the cluster ${c.ClusterId}`);
    if (hsm.State !== 'ACTIVE' && hsm.State !== 'DEGRADED') throw invalid(`HsmId: the HSM ${hsm.HsmId} is ${hsm.State}`);
    hsm.State = 'DELETE_IN_PROGRESS';
    hsm.StateMessage = 'The HSM is being deleted.';
    this.#save();
    this.#background(
      `deleting ${hsm.HsmId}`,
      async () => {
        const live = this.#live.get(c.ClusterId);
        const others = c.Hsms.filter((h) => h !== hsm && h.State === 'ACTIVE');
        if (live && hsm.member !== null) {
          if (others.length) {
            // Its stream gets what it logged before it goes.
            await this.exportAuditLogs();
            this.#retired.add(hsm.HsmId);
            await live.removeMember(hsm.member);
            this.#writeClusterFile(c.ClusterId, live);
          } else {
            // The last HSM: the members stop; the cluster's folder keeps its state for the next HSM.
            if (live.backupStore && c.State === 'ACTIVE') await live.takeBackup('member-removed');
            await this.exportAuditLogs();
            this.#live.delete(c.ClusterId);
            // An export under way finishes before its cluster closes.
            await this.auditLogs.export(() => []);
            await live.close();
          }
        }
        hsm.State = 'DELETED';
        hsm.StateMessage = 'The HSM was deleted.';
      },
      (m) => ((hsm.State = 'DEGRADED'), (hsm.StateMessage = m)),
    );
    return { HsmId: hsm.HsmId };
  }

  async InitializeCluster(caller: Caller, body: Record<string, unknown>): Promise<unknown> {
    const c = this.#cluster(caller, body);
    const signedPem = str(body, 'SignedCert', true);
    const anchorPem = str(body, 'TrustAnchor', true);
    if (c.State !== 'UNINITIALIZED' || !c.Certificates.ClusterCsr) throw invalid(`ClusterId: the cluster ${c.ClusterId} is ${c.State}${c.Certificates.ClusterCsr ? '' : ' and has no cluster CSR yet (create an HSM first)'}; only an UNINITIALIZED cluster with an HSM is initialized`);
    if (this.#live.get(c.ClusterId)?.status()[0]?.state !== 'up') throw new ApiError('CloudHsmServiceException', `the HSM of ${c.ClusterId} is not answering; try again when it is`);
    if (signedPem.length > 5000 || anchorPem.length > 5000) throw invalid('SignedCert and TrustAnchor: PEM certificates of at most 5000 characters');
    const parse = (pem: string, name: string) => {
      try {
        return new X509Certificate(pem);
      } catch {
        throw invalid(`${name}: not a PEM X.509 certificate`);
      }
    };
    const signed = parse(signedPem, 'SignedCert');
    const anchor = parse(anchorPem, 'TrustAnchor');
    if (anchor.issuer !== anchor.subject || !anchor.verify(anchor.publicKey)) throw invalid('TrustAnchor: the issuing CA\'s own certificate, self-signed');
    if (!signed.verify(anchor.publicKey) || signed.issuer !== anchor.subject) throw invalid('SignedCert: not issued by the TrustAnchor given (sign the cluster CSR with that CA)');
    const csr = new (await loadX509()).Pkcs10CertificateRequest(c.Certificates.ClusterCsr);
    const csrKey = Buffer.from(csr.publicKey.rawData);
    if (!csrKey.equals(signed.publicKey.export({ type: 'spki', format: 'der' }))) throw invalid('SignedCert: its public key is not the cluster CSR\'s; sign the CSR DescribeClusters returns for this cluster');
    const now = new Date();
    if (new Date(signed.validFrom) > now || new Date(signed.validTo) < now) throw invalid(`SignedCert: valid from ${signed.validFrom} to ${signed.validTo}, not now`);
    c.State = 'INITIALIZE_IN_PROGRESS';
    c.StateMessage = 'The cluster is being initialized.';
    this.#save();
    this.#background(
      `initializing ${c.ClusterId}`,
      async () => {
        // The HSM presents the certificate from now on; clients verify it against the trust anchor.
        const live = this.#live.get(c.ClusterId);
        if (!live) throw new Error(`the cluster ${c.ClusterId} has no running HSM`);
        await live.installClusterCertificate(signedPem, anchorPem);
        this.#writeClusterFile(c.ClusterId, live);
        c.Certificates = { ClusterCertificate: signedPem };
        c.State = 'INITIALIZED';
        c.StateMessage = 'The cluster is initialized: activate it (cluster activate), as its admin.';
      },
      (m) => ((c.State = 'UNINITIALIZED'), (c.StateMessage = m)),
    );
    return { State: 'INITIALIZE_IN_PROGRESS', StateMessage: c.StateMessage };
  }

  async DeleteCluster(caller: Caller, body: Record<string, unknown>): Promise<unknown> {
    const c = this.#cluster(caller, body);
    const hsms = c.Hsms.filter((h) => h.State !== 'DELETED');
    if (hsms.length) throw invalid(`ClusterId: the cluster ${c.ClusterId} still has ${hsms.length} HSM(s); delete them first (DeleteHsm)`);
    if (c.State.endsWith('_IN_PROGRESS')) throw invalid(`ClusterId: the cluster ${c.ClusterId} is ${c.State}`);
    c.State = 'DELETE_IN_PROGRESS';
    c.StateMessage = 'The cluster is being deleted.';
    this.#save();
    const view = await this.#view(c);
    this.#background(
      `deleting ${c.ClusterId}`,
      async () => {
        c.State = 'DELETED';
        c.StateMessage = 'The cluster was deleted; its backups remain.';
      },
      (m) => (c.StateMessage = m),
    );
    return { Cluster: view };
  }

  async ModifyCluster(caller: Caller, body: Record<string, unknown>): Promise<unknown> {
    const c = this.#cluster(caller, body);
    if (body.HsmType !== undefined && body.HsmType !== c.HsmType) throw invalid('HsmType: migrating a cluster to another HSM type is not emulated');
    if (body.BackupRetentionPolicy === undefined && body.HsmType === undefined) throw invalid('BackupRetentionPolicy: required (the change to make)');
    if (body.BackupRetentionPolicy !== undefined) {
      c.BackupRetentionPolicy = retentionOf(body.BackupRetentionPolicy);
      if (c.MemberClusterId) this.#store(c.Region).setRetention(c.MemberClusterId, Number(c.BackupRetentionPolicy.Value));
    }
    this.#save();
    return { Cluster: await this.#view(c) };
  }

  /** A tagged resource: a cluster (tags in its record) or a backup (tags in the store). */
  #taggable(caller: Caller, body: Record<string, unknown>): { tags: () => Tag[]; set: (tags: Tag[]) => void; id: string } {
    const id = str(body, 'ResourceId', true);
    if (!/^(cluster|backup)-[2-7a-zA-Z]{11,16}$/.test(id)) throw invalid(`ResourceId: a cluster or backup id, not ${JSON.stringify(id)}`);
    if (id.startsWith('backup-')) {
      const b = this.#backup(caller, id, 'ResourceId');
      const store = this.#store(caller.region);
      return {
        id,
        tags: () => Object.entries(store.get(b.backupId).tags).map(([Key, Value]) => ({ Key, Value })),
        set: (tags) => {
          const before = Object.keys(store.get(b.backupId).tags);
          store.modify(b.backupId, { untag: before, tags: Object.fromEntries(tags.map((t) => [t.Key, t.Value])) });
        },
      };
    }
    const c = this.#cluster(caller, { ClusterId: id });
    return {
      id,
      tags: () => c.TagList,
      set: (tags) => {
        c.TagList = tags;
        this.#save();
      },
    };
  }

  async TagResource(caller: Caller, body: Record<string, unknown>): Promise<unknown> {
    const r = this.#taggable(caller, body);
    const tags = tagsOf(body, 'TagList');
    if (!tags.length) throw invalid('TagList: required');
    const merged = new Map(r.tags().map((t) => [t.Key, t.Value]));
    for (const t of tags) merged.set(t.Key, t.Value);
    if (merged.size > 50) throw new ApiError('CloudHsmResourceLimitExceededException', `a resource has at most 50 tags; ${r.id} would have ${merged.size}`);
    r.set([...merged].map(([Key, Value]) => ({ Key, Value })));
    return {};
  }

  async UntagResource(caller: Caller, body: Record<string, unknown>): Promise<unknown> {
    const r = this.#taggable(caller, body);
    const keys = body.TagKeyList;
    if (!Array.isArray(keys) || keys.length < 1 || keys.length > 50 || keys.some((k) => typeof k !== 'string')) throw invalid('TagKeyList: a list of 1 to 50 tag keys');
    r.set(r.tags().filter((t) => !(keys as string[]).includes(t.Key)));
    return {};
  }

  async ListTags(caller: Caller, body: Record<string, unknown>): Promise<unknown> {
    const r = this.#taggable(caller, body);
    const { items, next } = page(r.tags(), body, 100, 'tags');
    return { TagList: items, ...(next ? { NextToken: next } : {}) };
  }


  /** The API's cluster id of a member cluster id (backups carry the members' own). */
  #apiClusterId(region: string, memberClusterId: string | null): string | undefined {
    if (!memberClusterId) return undefined;
    return this.#records.clusters.find((c) => c.Region === region && c.MemberClusterId === memberClusterId)?.ClusterId;
  }

  #backupView(region: string, b: StoredBackupInfo): Record<string, unknown> {
    const cluster = this.#apiClusterId(region, b.clusterId);
    const source = b.sourceBackupId ? this.#apiClusterId(b.sourceRegion ?? region, b.sourceClusterId) : undefined;
    return {
      BackupId: b.backupId,
      BackupArn: this.arn(region, 'backup', b.backupId),
      BackupState: b.state,
      ...(cluster ? { ClusterId: cluster } : {}),
      CreateTimestamp: Date.parse(b.createTimestamp) / 1000,
      ...(b.sourceBackupId ? { CopyTimestamp: Date.parse(b.createTimestamp) / 1000, SourceBackup: b.sourceBackupId, SourceRegion: b.sourceRegion, ...(source ? { SourceCluster: source } : {}) } : {}),
      NeverExpires: b.neverExpires,
      ...(b.deleteTimestamp ? { DeleteTimestamp: Date.parse(b.deleteTimestamp) / 1000 } : {}),
      TagList: Object.entries(b.tags).map(([Key, Value]) => ({ Key, Value })),
      HsmType: hsmTypeOf(b),
      Mode: b.mode === 'fips' ? 'FIPS' : 'NON_FIPS',
    };
  }

  /** A backup of the caller's region, by id. */
  #backup(caller: Caller, id: string, name = 'BackupId'): BackupInfo {
    if (!/^backup-[2-7a-zA-Z]{11,16}$/.test(id)) throw invalid(`${name}: ${JSON.stringify(id)} is not a backup id (backup-…)`);
    const found = this.#store(caller.region).find(id);
    if (!found || found.state === 'DELETED') throw notFound(`${name}: no backup ${id} in ${caller.region}`);
    return found;
  }

  async DescribeBackups(caller: Caller, body: Record<string, unknown>): Promise<unknown> {
    // Filtered on the store's own records (not copied), and only the page shown made into the API's
    // shape: a region may hold thousands of backups. Only the filters given are tested, each a
    // set of its values. (filter makes the array that reverse turns around.)
    const apiIds = new Map(this.#records.clusters.filter((c) => c.Region === caller.region && c.MemberClusterId).map((c) => [c.MemberClusterId!, c.ClusterId]));
    const fields: Record<string, (b: StoredBackupInfo) => unknown> = {
      backupIds: (b) => b.backupId,
      sourceBackupIds: (b) => b.sourceBackupId ?? undefined,
      clusterIds: (b) => (b.clusterId === null ? undefined : apiIds.get(b.clusterId)),
      states: (b) => b.state,
      neverExpires: (b) => String(b.neverExpires),
    };
    const filters = (body.Filters ?? {}) as Record<string, string[]>;
    if (typeof filters !== 'object' || filters === null || Array.isArray(filters)) throw invalid('Filters: a map of filter names to lists of values');
    for (const [name, values] of Object.entries(filters)) {
      if (!Object.hasOwn(fields, name)) throw invalid(`Filters: ${name} is not a filter of DescribeBackups (${Object.keys(fields).join(', ')})`);
      if (!Array.isArray(values) || values.some((v) => typeof v !== 'string')) throw invalid(`Filters.${name}: a list of strings`);
    }
    const tests = Object.entries(filters).map(([name, values]) => ({ field: fields[name]!, values: new Set<unknown>(values) }));
    const newestFirst = this.#store(caller.region)
      .records()
      .filter((b) => b.state !== 'DELETED' && tests.every((t) => t.values.has(t.field(b))));
    const shown = body.SortAscending === false ? newestFirst : newestFirst.reverse();
    const { items, next } = page(shown, body, 50, 'backups');
    return { Backups: items.map((b) => this.#backupView(caller.region, b)), ...(next ? { NextToken: next } : {}) };
  }

  async DeleteBackup(caller: Caller, body: Record<string, unknown>): Promise<unknown> {
    const b = this.#backup(caller, str(body, 'BackupId', true));
    if (b.state !== 'READY') throw invalid(`BackupId: the backup ${b.backupId} is ${b.state}, not READY`);
    return { Backup: this.#backupView(caller.region, this.#store(caller.region).delete(b.backupId)) };
  }

  async RestoreBackup(caller: Caller, body: Record<string, unknown>): Promise<unknown> {
    const b = this.#backup(caller, str(body, 'BackupId', true));
    if (b.state !== 'PENDING_DELETION') throw invalid(`BackupId: the backup ${b.backupId} is ${b.state}; only a backup pending deletion is restored`);
    return { Backup: this.#backupView(caller.region, this.#store(caller.region).restore(b.backupId)) };
  }

  async ModifyBackupAttributes(caller: Caller, body: Record<string, unknown>): Promise<unknown> {
    const b = this.#backup(caller, str(body, 'BackupId', true));
    if (typeof body.NeverExpires !== 'boolean') throw invalid('NeverExpires: required, true or false');
    return { Backup: this.#backupView(caller.region, this.#store(caller.region).modify(b.backupId, { neverExpires: body.NeverExpires })) };
  }

  async CopyBackupToRegion(caller: Caller, body: Record<string, unknown>): Promise<unknown> {
    const destination = matching(str(body, 'DestinationRegion', true), /^[a-z]{2}(-(gov))?-(east|west|north|south|central){1,2}-\d$/, 'DestinationRegion');
    const b = this.#backup(caller, str(body, 'BackupId', true));
    if (destination === caller.region) throw invalid(`DestinationRegion: the backup ${b.backupId} is in ${destination} already`);
    if (b.state !== 'READY') throw invalid(`BackupId: the backup ${b.backupId} is ${b.state}, not READY`);
    const tags = tagsOf(body, 'TagList');
    let copy = await this.#store(caller.region).copyTo(b.backupId, this.#store(destination));
    if (tags.length) copy = this.#store(destination).modify(copy.backupId, { tags: Object.fromEntries(tags.map((t) => [t.Key, t.Value])) });
    const cluster = this.#apiClusterId(caller.region, b.clusterId);
    return { DestinationBackup: { CreateTimestamp: Date.parse(copy.createTimestamp) / 1000, SourceRegion: caller.region, SourceBackup: b.backupId, ...(cluster ? { SourceCluster: cluster } : {}) } };
  }

  /** The backup a resource policy is on (policies are on backups: sharing them with other accounts). */
  #policyTarget(caller: Caller, body: Record<string, unknown>): { arn: string; backup: BackupInfo } {
    const arn = str(body, 'ResourceArn', true);
    const m = /^arn:aws:cloudhsm:([a-z0-9-]+):(\d{12}):backup\/(backup-[2-7a-zA-Z]{11,16})$/.exec(arn);
    if (!m) throw invalid(`ResourceArn: a backup's ARN (arn:aws:cloudhsm:REGION:ACCOUNT:backup/backup-…), not ${JSON.stringify(arn)}`);
    if (m[1] !== caller.region || m[2] !== this.accountId) throw notFound(`ResourceArn: ${arn} is not a backup of account ${this.accountId} in ${caller.region}`);
    return { arn, backup: this.#backup(caller, m[3]!, 'ResourceArn') };
  }

  async GetResourcePolicy(caller: Caller, body: Record<string, unknown>): Promise<unknown> {
    const { arn } = this.#policyTarget(caller, body);
    const policy = this.#records.policies?.[arn];
    return policy === undefined ? {} : { Policy: policy };
  }

  async PutResourcePolicy(caller: Caller, body: Record<string, unknown>): Promise<unknown> {
    const { arn } = this.#policyTarget(caller, body);
    const policy = str(body, 'Policy', true);
    if (policy.length < 1 || policy.length > 20000) throw invalid('Policy: 1 to 20000 characters');
    let parsed: unknown;
    try {
      parsed = JSON.parse(policy);
    } catch {
      throw invalid('Policy: not a JSON policy document');
    }
    if (typeof parsed !== 'object' || parsed === null || !Array.isArray((parsed as { Statement?: unknown }).Statement)) throw invalid('Policy: a policy document with a Statement list');
    this.#records.policies = { ...(this.#records.policies ?? {}), [arn]: policy };
    this.#save();
    return { ResourceArn: arn, Policy: policy };
  }

  async DeleteResourcePolicy(caller: Caller, body: Record<string, unknown>): Promise<unknown> {
    const { arn } = this.#policyTarget(caller, body);
    const previous = this.#records.policies?.[arn];
    if (previous !== undefined) {
      delete this.#records.policies![arn];
      this.#save();
    }
    return { ResourceArn: arn, ...(previous !== undefined ? { Policy: previous } : {}) };
  }

  /** Every operation of the service, by name. */
  async call(operation: string, caller: Caller, body: Record<string, unknown>): Promise<unknown> {
    switch (operation) {
      case 'CreateCluster':
      case 'DescribeClusters':
      case 'DeleteCluster':
      case 'ModifyCluster':
      case 'InitializeCluster':
      case 'CreateHsm':
      case 'DeleteHsm':
      case 'DescribeBackups':
      case 'TagResource':
      case 'UntagResource':
      case 'ListTags':
      case 'DeleteBackup':
      case 'RestoreBackup':
      case 'ModifyBackupAttributes':
      case 'CopyBackupToRegion':
      case 'GetResourcePolicy':
      case 'PutResourcePolicy':
      case 'DeleteResourcePolicy':
        if (caller.actions && !caller.actions.some((pattern) => actionMatches(pattern, `cloudhsm:${operation}`))) {
          throw new ApiError('CloudHsmAccessDeniedException', `the access key ${caller.accessKeyId} may not call cloudhsm:${operation}; its actions are ${caller.actions.join(', ') || 'none'}`);
        }
        try {
          return await this[operation](caller, body);
        } catch (e) {
          // An HSM that does not answer is the service's failure; any other refusal is the request's.
          if (e instanceof HsmError) throw e.code === 'MEMBER_UNAVAILABLE' ? new ApiError('CloudHsmServiceException', e.message) : invalid(e.message);
          throw e;
        }
      default:
        throw new ApiError('UnknownOperationException', `${operation} is not an operation of CloudHSM V2 (BaldrApiService)`);
    }
  }
}
