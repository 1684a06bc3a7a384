/**
 * `strongroom up`: the embedded default that `npm start` runs. It starts a local cluster — by
 * default three `strongroom hsm serve` members on loopback behind mutual TLS, with a data folder
 * holding the trust anchor, the client certificate and each member's certificate — activates
 * it, creates a development crypto user, runs the quick-start sample against it, prints where
 * the members are and how to connect, and serves until Ctrl-C (or stops at once with `--once`).
 *
 * It also writes `cluster.json` in the data folder: the addresses and certificate paths, which
 * `STRONGROOM_CLUSTER=<that file>` hands to `strongroom/register`.
 *
 * @module
 */
import { join, resolve } from 'node:path';
import { startLocalCluster, type LocalCluster, type LocalTransport } from '../app/index.js';
import { demoSite, openDemoCa, startRelay, type Relay } from '../relay/index.js';
import type { Pkcs11Door } from '../pkcs11/index.js';
import { HsmError, writeFileDurably, type ProfileName } from '../hsm-core/index.js';

/** Development credentials: printed, never meant for anything but a local cluster. */
export const DEV_ADMIN = { username: 'admin', password: 'strongroom-admin' } as const;
export const DEV_USER = { username: 'app', password: 'strongroom-app' } as const;
/** The crypto user that owns the demo CA's key. */
export const DEV_CA_USER = { username: 'demo_ca', password: 'strongroom-demo-ca' } as const;

export interface UpOptions {
  profile: ProfileName;
  /** CloudHSM's cluster mode (default non-fips: every hsm2m.medium mechanism). */
  mode?: 'fips' | 'non-fips';
  members: number;
  transport: LocalTransport;
  dataDir: string;
  /** Stop after the sample instead of serving until a signal. */
  once: boolean;
  /** Where the relay and demo pages listen while serving (`host:port`, port 0 for any); null for none. Default 127.0.0.1:8787. */
  relay?: string | null;
  /** Make the cluster from a backup (CloudHSM's create-cluster --source-backup-id) instead of activating a new one. */
  fromBackup?: { dir: string; backupId: string };
  /** log2 of scrypt's N for new password hashes (default 15); lower it only for tests. */
  passwordCost?: number;
  /** Where the CloudHSM V2 API listens while serving (`host:port`, port 0 for any); null for none. Default 127.0.0.1:0. */
  controlPlane?: string | null;
  log: (line: string) => void;
}

/** What `cluster.json` holds. */
export interface ClusterFile {
  members: string[];
  ca: string;
  cert: string;
  key: string;
}

export interface Up {
  cluster: LocalCluster;
  /** The relay and demo pages, when serving. */
  relay: Relay | null;
  /** The PKCS #11 door (`<data folder>/pkcs11/pkcs11.sock`), when serving. */
  pkcs11: Pkcs11Door | null;
  /** The CloudHSM V2 API (its clusters in `<data folder>/control-plane/`), when serving. */
  controlPlane: { url: string; close(): Promise<void> } | null;
}

export async function up(options: UpOptions): Promise<Up> {
  const { log } = options;
  const dataDir = resolve(options.dataDir);
  const cluster = await startLocalCluster({
    adminPassword: DEV_ADMIN.password,
    profile: options.profile,
    ...(options.mode ? { mode: options.mode } : {}),
    members: options.members,
    transport: options.transport,
    dataDir,
    ...(options.passwordCost !== undefined ? { passwordCost: options.passwordCost } : {}),
    ...(options.fromBackup ? { fromBackup: options.fromBackup } : { users: [{ ...DEV_USER, role: 'crypto-user' as const }, { ...DEV_CA_USER, role: 'crypto-user' as const }] }),
  });
  try {
    const infos = await cluster.hsmInfo();
    log(`Strongroom: started a ${options.members}-member ${options.transport} cluster (profile ${cluster.profile}, ${infos[0]!.clusterId}, state ${infos[0]!.state})`);
    if (options.fromBackup) log(`  made from backup ${options.fromBackup.backupId}: its users, keys and policies`);
    if (cluster.tookOverLock) log(`  took over the cluster folder's lock from ${cluster.tookOverLock}, which is no longer running`);
    if (cluster.keyProtection === 'files') {
      log(`  NOTE: no STRONGROOM_MASTER_PASSPHRASE, so the folder ${dataDir} is the secret: anyone who copies it can open`);
      log('        every key and every backup in it. For a folder that must resist copying, start a new one with');
      log('        STRONGROOM_MASTER_PASSPHRASE set (8+ characters): its keys and backups then open only with the passphrase.');
    }
    for (const [i, s] of cluster.status().entries()) log(`  member ${i}  ${s.description}  serial ${infos[i]?.serialNumber ?? '?'}  ${s.state}`);
    log(`  admin        ${DEV_ADMIN.username} / ${DEV_ADMIN.password}`);
    log(`  crypto user  ${DEV_USER.username} / ${DEV_USER.password}`);
    if (cluster.tls) {
      const file: ClusterFile = {
        members: cluster.tls.addresses,
        ca: join(dataDir, 'customerCA.crt'),
        cert: join(dataDir, 'client.crt'),
        key: join(dataDir, 'client.key'),
      };
      writeFileDurably(join(dataDir, 'cluster.json'), JSON.stringify(file, null, 2) + '\n', 0o644);
      log(`  data folder  ${dataDir}`);
      log(`  trust anchor ${file.ca}`);
      log(`  client cert  ${file.cert}`);
      log(`  client key   ${file.key}`);
      log(`  connect      connect({ members: ['${file.members[0]}'], ca, cert, key }) from 'strongroom'`);
      log(`  register     STRONGROOM_CLUSTER=${join(dataDir, 'cluster.json')} HSM_USER=${DEV_USER.username} HSM_PASSWORD=${DEV_USER.password} node --import strongroom/register app.js`);
      log(`  cli          npx strongroom (interactive), or CLOUDHSM_ROLE=crypto-user CLOUDHSM_PIN=${DEV_USER.username}:${DEV_USER.password} npx strongroom key list`);
    }
    if (cluster.backupStore) log(`  backups      ${cluster.backupStore.dir} (npx strongroom backup list --data-dir ${dataDir})`);
    log('');
    if (!options.fromBackup) {
      log('Running the quick-start sample (samples/quickstart.ts):');
      // The sample is compiled beside the CLI (dist/samples), or run from source by tsx.
      const { quickstart } = (await import('../../samples/quickstart.js')) as typeof import('../../samples/quickstart.js');
      await quickstart(cluster, DEV_USER, (line) => log(`  ${line}`));
      log('');
    }
    const users = await cluster.listUsers();
    log(`Users on the cluster: ${users.map((u) => `${u.username} (${u.role}, ${u.clusterCoverage})`).join(', ')}`);
    log(`Members keep their users, token keys and audit logs in ${dataDir}; a restart brings them back.`);
  } catch (e) {
    await cluster.close();
    throw e;
  }
  if (options.once) {
    await cluster.close();
    log('Stopped (--once).');
    return { cluster, relay: null, pkcs11: null, controlPlane: null };
  }
  let relay: Relay | null = null;
  if (options.relay !== null && !options.fromBackup) {
    try {
      relay = await startDemoRelay(cluster, options.relay ?? '127.0.0.1:8787', dataDir);
    } catch (e) {
      await cluster.close();
      throw e;
    }
    log(`Demo pages: ${relay.url}/  (log in as ${DEV_USER.username} / ${DEV_USER.password}; ${DEV_ADMIN.username} / ${DEV_ADMIN.password} as admin for the audit log)`);
  }
  // The PKCS #11 door, in a folder only this user enters (the protocol has no authentication).
  const { servePkcs11, moduleLines } = await import('../pkcs11/index.js');
  const clusterId = (await cluster.hsmInfo())[0]?.clusterId ?? 'cluster';
  const pkcs11 = await servePkcs11({ cluster, socket: join(dataDir, 'pkcs11', 'pkcs11.sock'), objectsFolder: join(dataDir, 'pkcs11', 'objects'), clusterId });
  const [address, module] = moduleLines(pkcs11.socket);
  log(`PKCS #11 applications: ${address}  (${module}; PIN ${DEV_USER.username}:${DEV_USER.password})`);
  log(`  p11-kit module file: echo 'remote: unix:path=${pkcs11.socket}' > ~/.config/pkcs11/modules/strongroom.module`);
  let controlPlane: Up['controlPlane'] = null;
  if (options.controlPlane !== null) {
    // The AWS management plane: its own clusters (CreateCluster, CreateHsm, …), beside this one.
    const { ControlPlane, serveControlPlane, folderCredentials, endpointLines } = await import('../control-plane/index.js');
    const folder = join(dataDir, 'control-plane');
    const plane = new ControlPlane({ dataDir: folder, log, ...(options.passwordCost !== undefined ? { passwordCost: options.passwordCost } : {}) });
    await plane.resume();
    const keys = folderCredentials(folder);
    const credentials = keys[0]!;
    const server = await serveControlPlane(plane, { listen: options.controlPlane ?? '127.0.0.1:0', credentials: keys, log });
    controlPlane = { url: server.url, close: () => server.close().then(() => plane.close()) };
    log(`AWS CloudHSM V2 API (aws cloudhsmv2 …, @aws-sdk/client-cloudhsm-v2): ${endpointLines(server.url, credentials).join(' ')}`);
    log(`  its clusters' audit logs, as CloudWatch Logs streams: ${join(plane.auditLogs.folder, 'aws', 'cloudhsm', '<cluster id>', '<hsm id>.jsonl')}`);
  }
  return { cluster, relay, pkcs11, controlPlane };
}

/** Where a server listens, from `host:port` or `[v6]:port` (port 0: any free port). */
export function listenAddress(value: string, flag: string): { host: string; port: number } {
  const at = value.lastIndexOf(':');
  const port = Number(value.slice(at + 1));
  if (at < 1 || !/^\d{1,5}$/.test(value.slice(at + 1)) || port > 65535) throw new HsmError('BAD_REQUEST', `${flag}: host:port, got ${JSON.stringify(value)}`);
  return { host: value.slice(0, at).replace(/^\[|\]$/g, ''), port };
}

/** The relay with the demo pages and the demo CA (its key owned by demo_ca, its certificate in the data folder). */
async function startDemoRelay(cluster: LocalCluster, listen: string, dataDir: string): Promise<Relay> {
  const { host, port } = listenAddress(listen, '--relay');
  const caSession = await cluster.login(DEV_CA_USER.username, DEV_CA_USER.password);
  const ca = await openDemoCa(caSession, join(dataDir, 'demo-ca.crt'));
  try {
    return await startRelay({ cluster, host, port, ca, ...demoSite() });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'EADDRINUSE' ? `the relay's port ${port} is in use; pass --relay ${host}:0 (any free port) or another port, or --no-relay` : String(e));
  }
}
