/**
 * The CloudHSM V2 API's table: DescribeClusters and DescribeBackups requests per second through
 * AWS's SDK (SigV4 signed and checked, JSON over HTTP on loopback) with 100 clusters and 10,000
 * backups in the region, and how long an HSM takes from CreateHsm to serving: the first HSM of a
 * cluster to its cluster CSR, and a further HSM of an active cluster to its first signature.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudHSMV2Client, CreateClusterCommand, CreateHsmCommand, DescribeBackupsCommand, DescribeClustersCommand, InitializeClusterCommand, type Cluster } from '@aws-sdk/client-cloudhsm-v2';
import { BackupStore } from '../src/cluster-client/index.js';
import { ControlPlane, serveControlPlane } from '../src/control-plane/index.js';
import { median, rate } from './measure.js';
import { progress as report, saveJson, table } from './report.js';

const CREDENTIALS = { accessKeyId: 'AKIASTRONGROOMBENCH1', secretAccessKey: 'strongroom-bench-secret-access-key' };
const SUBNETS = ['subnet-0a1b2c3d4e5f60718', 'subnet-0f1e2d3c4b5a69788'];

export async function benchControlPlane(seconds: number, rounds: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'strongroom-bench-cp-'));
  const progress = (step: string) => report('control plane', step);
  const plane = new ControlPlane({ dataDir: join(dir, 'plane'), passwordCost: 10 });
  const server = await serveControlPlane(plane, { credentials: [CREDENTIALS] });
  const client = new CloudHSMV2Client({ endpoint: server.url, region: 'us-east-1', credentials: CREDENTIALS });
  const until = async (id: string, ready: (c: Cluster) => boolean): Promise<Cluster> => {
    for (;;) {
      const c = (await client.send(new DescribeClustersCommand({ Filters: { clusterIds: [id] } }))).Clusters![0]!;
      if (ready(c)) return c;
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  try {
    // An active cluster, as the getting-started guide makes one, timing its HSMs.
    progress('an active cluster (CreateCluster, CreateHsm, InitializeCluster with an openssl-signed certificate, activate)');
    const id = (await client.send(new CreateClusterCommand({ HsmType: 'hsm2m.medium', SubnetIds: SUBNETS, Mode: 'NON_FIPS' } as never))).Cluster!.ClusterId!;
    await until(id, (c) => c.State === 'UNINITIALIZED');
    let t = performance.now();
    await client.send(new CreateHsmCommand({ ClusterId: id, AvailabilityZone: 'us-east-1a' }));
    const csr = (await until(id, (c) => c.Certificates?.ClusterCsr !== undefined)).Certificates!.ClusterCsr!;
    const firstHsmMs = performance.now() - t;
    writeFileSync(join(dir, 'cluster.csr'), csr);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=bench CA', '-days', '30'], { cwd: dir, stdio: 'ignore' });
    execFileSync('openssl', ['x509', '-req', '-days', '30', '-in', 'cluster.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'cluster.crt'], { cwd: dir, stdio: 'ignore' });
    await client.send(new InitializeClusterCommand({ ClusterId: id, SignedCert: readFileSync(join(dir, 'cluster.crt'), 'utf8'), TrustAnchor: readFileSync(join(dir, 'ca.crt'), 'utf8') }));
    await until(id, (c) => c.State === 'INITIALIZED');
    const live = plane.live(id)!;
    await live.activate('bench-admin-password');
    await until(id, (c) => c.State === 'ACTIVE');
    const admin = await live.login('admin', 'bench-admin-password');
    await admin.send({ op: 'createUser', username: 'bench', password: 'bench-password', role: 'crypto-user' });
    await admin.logout();
    const user = await live.login('bench', 'bench-password');
    const { privateHandle } = await user.send({ op: 'generateKeyPair', keyType: 'ec', curve: 'secp256r1', privateAttributes: { token: true, sign: true } });
    const joinTimes: number[] = [];
    for (const az of ['us-east-1b', 'us-east-1a']) {
      progress(`CreateHsm in ${az}, timed to its first signature`);
      t = performance.now();
      const hsmId = (await client.send(new CreateHsmCommand({ ClusterId: id, AvailabilityZone: az }))).Hsm!.HsmId!;
      await until(id, (c) => c.Hsms!.find((h) => h.HsmId === hsmId)?.State === 'ACTIVE');
      const index = live.cluster.size - 1;
      await user.sendToMember(index, { op: 'sign', handle: privateHandle, mechanism: { name: 'ecdsa', hash: 'sha256' }, data: new Uint8Array(32) });
      joinTimes.push(performance.now() - t);
    }
    await user.logout();

    // 100 clusters in the region (no HSMs: the API's records).
    progress('100 clusters');
    const more = await Promise.all(Array.from({ length: 99 }, () => client.send(new CreateClusterCommand({ HsmType: 'hsm2m.medium', SubnetIds: [SUBNETS[0]!] }))));
    for (const c of more) await until(c.Cluster!.ClusterId!, (x) => x.State === 'UNINITIALIZED');

    // 10,000 backups in the region's store: copies of one the members made.
    progress('10,000 backups');
    const store = new BackupStore(join(dir, 'plane', 'backups', 'us-east-1'), { region: 'us-east-1' });
    const backup = store.read((await live.takeBackup()).backupId);
    const existing = store.list().length;
    for (let i = existing; i < 10_000; i++) await store.add(backup, { trigger: 'periodic' });
    const one = store.list()[5_000]!.backupId;

    const cases: [string, () => Promise<unknown>][] = [
      ['DescribeClusters, a page of 25 of 100', () => client.send(new DescribeClustersCommand({}))],
      ['DescribeClusters, one cluster by id', () => client.send(new DescribeClustersCommand({ Filters: { clusterIds: [id] } }))],
      ['DescribeBackups, a page of 50 of 10,000', () => client.send(new DescribeBackupsCommand({}))],
      ['DescribeBackups, one backup by id', () => client.send(new DescribeBackupsCommand({ Filters: { backupIds: [one] } }))],
    ];
    const rows: string[][] = [];
    for (const [name, op] of cases) {
      for (const inFlight of [1, 8]) {
        progress(`${name}, ${inFlight} in flight`);
        const rates: number[] = [];
        for (let round = 0; round < rounds; round++) rates.push(await rate(op, inFlight, seconds, 5));
        const r = median(rates);
        rows.push([name, String(inFlight), r.toFixed(0), (1000 / r * inFlight).toFixed(2)]);
      }
    }
    console.log('\nThe CloudHSM V2 API through @aws-sdk/client-cloudhsm-v2 (SigV4 signed and checked, loopback HTTP):\n');
    table(['request', 'in flight', 'requests/s', 'ms each'], rows, { id: 'control-plane', title: 'The CloudHSM V2 API through the AWS SDK' });
    // The sentences printed are kept with the figures: tables.md prints them as they are (charts.ts).
    const lines = [
      `CreateHsm → the first HSM's cluster CSR in DescribeClusters: ${firstHsmMs.toFixed(0)} ms (a member process starts and makes its key and CSR)`,
      `CreateHsm → a further HSM of an active cluster ACTIVE and serving its first signature: ${joinTimes.map((ms) => `${ms.toFixed(0)} ms`).join(', ')} (backup, restore, start, catch up)`,
    ];
    saveJson('control-plane-hsms', { title: 'CreateHsm to serving', firstHsmToCsrMs: firstHsmMs, furtherHsmToFirstSignatureMs: joinTimes, lines });
    console.log(`\n${lines.join('\n')}`);
    client.destroy();
  } finally {
    await server.close();
    await plane.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
