/**
 * The CloudHSM V2 API driven by AWS's own SDK (@aws-sdk/client-cloudhsm-v2), through CloudHSM's
 * getting-started story on real members: a cluster, its first HSM and cluster CSR, the CSR signed
 * with openssl under a trust anchor made here, InitializeCluster, `cluster activate` through the
 * strongroom CLI, more HSMs, keys made over TLS, an HSM deleted under a signing load, backups,
 * tags and pages; each refusal by its type. Requests are SigV4-signed and checked.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate, type webcrypto } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CloudHSMV2Client,
  CopyBackupToRegionCommand,
  CreateClusterCommand,
  CreateHsmCommand,
  DeleteBackupCommand,
  DeleteClusterCommand,
  DeleteHsmCommand,
  DescribeBackupsCommand,
  DescribeClustersCommand,
  InitializeClusterCommand,
  ListTagsCommand,
  ModifyBackupAttributesCommand,
  ModifyClusterCommand,
  RestoreBackupCommand,
  TagResourceCommand,
  UntagResourceCommand,
  type Cluster,
} from '@aws-sdk/client-cloudhsm-v2';
import { expect } from 'chai';
import { connectFromEnvironment } from '../../src/app/index.js';
import { BackupStore } from '../../src/cluster-client/index.js';
import { ControlPlane, serveControlPlane, type ControlPlaneServer } from '../../src/control-plane/index.js';
import { runCli } from '../helpers/cloudhsm-cli.js';

const CREDENTIALS = { accessKeyId: 'AKIASTRONGROOMTEST01', secretAccessKey: 'strongroom-test-secret-access-key-0001' };
/** A key whose policy allows reading only (IAM action patterns). */
const READ_ONLY = { accessKeyId: 'AKIASTRONGROOMREAD01', secretAccessKey: 'strongroom-test-secret-access-key-read', actions: ['cloudhsm:Describe*', 'cloudhsm:ListTags'] };
const SUBNETS = ['subnet-0a1b2c3d4e5f60718', 'subnet-0f1e2d3c4b5a69788'];

/** The SHA-256 fingerprint of the certificate the member at `address` presents to a client trusting only `anchor`. */
function presented(address: string, anchor: string, client: { cert: string; key: string }): Promise<string> {
  const [host, port] = address.split(':');
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: host!, port: Number(port), ca: anchor, cert: readFileSync(client.cert), key: readFileSync(client.key), checkServerIdentity: () => undefined }, () => {
      resolve(socket.getPeerX509Certificate()!.fingerprint256);
      socket.destroy();
    });
    socket.on('error', reject);
  });
}

/** The events of a CloudWatch-shaped audit stream file. */
function streamEvents(file: string): { timestamp: number; message: string }[] {
  return readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { timestamp: number; message: string });
}

/** The refusal a call ends in: its exception name and message. */
async function refusal(p: Promise<unknown>): Promise<{ name: string; message: string; status: number | undefined }> {
  try {
    await p;
  } catch (e) {
    const err = e as { name: string; message: string; $metadata?: { httpStatusCode?: number } };
    return { name: err.name, message: err.message, status: err.$metadata?.httpStatusCode };
  }
  throw new Error('the call was answered; a refusal was expected');
}

describe('control plane: the CloudHSM V2 API with the AWS SDK, over real members', function () {
  this.timeout(180_000);
  let dir: string;
  let plane: ControlPlane;
  let server: ControlPlaneServer;
  let client: CloudHSMV2Client;
  /** What the server logged. */
  const logged: string[] = [];
  /** The story's cluster, which the restart test brings back. */
  let story: string;

  /** The cluster as DescribeClusters shows it, once `ready` says so (states change in the background, as AWS's). */
  async function until(clusterId: string, ready: (c: Cluster) => boolean): Promise<Cluster> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (Date.now() > deadline) throw new Error(`cluster ${clusterId} did not reach the state awaited in 60 s: ${JSON.stringify((await client.send(new DescribeClustersCommand({ Filters: { clusterIds: [clusterId] } }))).Clusters)}`);
      const { Clusters } = await client.send(new DescribeClustersCommand({ Filters: { clusterIds: [clusterId] } }));
      const c = Clusters![0]!;
      if (ready(c)) return c;
      expect(c.State, c.StateMessage).to.not.equal('DEGRADED');
      for (const h of c.Hsms ?? []) expect(h.State, h.StateMessage).to.not.equal('DEGRADED');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'strongroom-control-plane-'));
    plane = new ControlPlane({ dataDir: join(dir, 'plane'), passwordCost: 10, log: (l) => console.error(l) });
    server = await serveControlPlane(plane, { credentials: [CREDENTIALS, READ_ONLY], log: (l) => logged.push(l) });
    client = new CloudHSMV2Client({ endpoint: server.url, region: 'us-east-1', credentials: CREDENTIALS });
  });
  after(async () => {
    client?.destroy();
    await server?.close();
    await plane?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the getting-started story: create, CSR, initialize with an openssl-signed certificate, activate by the CLI, HSMs, keys, an HSM deleted under load', async () => {
    const created = await client.send(new CreateClusterCommand({ HsmType: 'hsm2m.medium', SubnetIds: SUBNETS, TagList: [{ Key: 'team', Value: 'payments' }] }));
    const id = created.Cluster!.ClusterId!;
    story = id;
    expect(id).to.match(/^cluster-[2-7a-z]{11}$/);
    expect(created.Cluster!.State).to.equal('CREATE_IN_PROGRESS');
    expect(created.Cluster!.CreateTimestamp).to.be.instanceOf(Date);
    let c = await until(id, (x) => x.State === 'UNINITIALIZED');
    expect(c.SubnetMapping).to.deep.equal({ 'us-east-1a': SUBNETS[0], 'us-east-1b': SUBNETS[1] });
    expect(c.HsmType).to.equal('hsm2m.medium');
    expect(c.BackupRetentionPolicy).to.deep.equal({ Type: 'DAYS', Value: '90' });
    expect(c.VpcId).to.match(/^vpc-[0-9a-f]{8}$/);

    // The first HSM: a member starts, and the cluster's CSR appears.
    const hsm = await client.send(new CreateHsmCommand({ ClusterId: id, AvailabilityZone: 'us-east-1a' }));
    expect(hsm.Hsm!.HsmId).to.match(/^hsm-[2-7a-z]{11}$/);
    expect(hsm.Hsm!.State).to.equal('CREATE_IN_PROGRESS');
    c = await until(id, (x) => x.Hsms?.[0]?.State === 'ACTIVE' && x.Certificates?.ClusterCsr !== undefined);
    expect(c.Hsms![0]).to.include({ AvailabilityZone: 'us-east-1a', SubnetId: SUBNETS[0], ClusterId: id });
    expect(c.Hsms![0]!.EniIp).to.match(/^10\.0\.0\.\d+$/);

    // As the guide: a trust anchor of our own signs the CSR with openssl.
    writeFileSync(join(dir, 'cluster.csr'), c.Certificates!.ClusterCsr!);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'customerCA.key', '-out', 'customerCA.crt', '-subj', '/CN=Example customer CA', '-days', '3652'], { cwd: dir, stdio: 'ignore' });
    execFileSync('openssl', ['x509', '-req', '-days', '3652', '-in', 'cluster.csr', '-CA', 'customerCA.crt', '-CAkey', 'customerCA.key', '-CAcreateserial', '-out', 'cluster.crt'], { cwd: dir, stdio: 'ignore' });
    const signed = readFileSync(join(dir, 'cluster.crt'), 'utf8');
    const anchor = readFileSync(join(dir, 'customerCA.crt'), 'utf8');
    // A certificate that is not over the CSR's key is refused, and nothing changes.
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'other.key', '-out', 'other.crt', '-subj', '/CN=other', '-days', '2'], { cwd: dir, stdio: 'ignore' });
    const wrongAnchor = await refusal(client.send(new InitializeClusterCommand({ ClusterId: id, SignedCert: signed, TrustAnchor: readFileSync(join(dir, 'other.crt'), 'utf8') })));
    expect(wrongAnchor).to.deep.equal({ name: 'CloudHsmInvalidRequestException', message: 'SignedCert: not issued by the TrustAnchor given (sign the cluster CSR with that CA)', status: 400 });
    expect((await until(id, () => true)).State).to.equal('UNINITIALIZED');
    const init = await client.send(new InitializeClusterCommand({ ClusterId: id, SignedCert: signed, TrustAnchor: anchor }));
    expect(init.State).to.equal('INITIALIZE_IN_PROGRESS');
    c = await until(id, (x) => x.State === 'INITIALIZED');
    expect(c.Certificates).to.deep.equal({ ClusterCertificate: signed });
    // The HSM now presents the certificate we signed; a client that trusts only our anchor connects.
    const clusterFile = JSON.parse(readFileSync(join(plane.clusterDir(id), 'cluster.json'), 'utf8')) as { members: string[]; ca: string; cert: string; key: string };
    expect(readFileSync(clusterFile.ca, 'utf8')).to.equal(anchor.endsWith('\n') ? anchor : `${anchor}\n`);
    expect(await presented(clusterFile.members[0]!, anchor, clusterFile)).to.equal(new X509Certificate(signed).fingerprint256);

    // Activation is the admin's, through the CLI, against the cluster's own cluster.json.
    const cli = { ...process.env, STRONGROOM_CLUSTER: join(plane.clusterDir(id), 'cluster.json'), STRONGROOM_CLI_CONFIG: join(dir, 'cli.json') };
    expect((await runCli(cli, ['cluster', 'activate', '--password', 'admin-password-1'])).error_code).to.equal(0);
    c = await until(id, (x) => x.State === 'ACTIVE');

    // Two more HSMs join the activated cluster, one after the other.
    for (const az of ['us-east-1b', 'us-east-1a']) {
      const more = await client.send(new CreateHsmCommand({ ClusterId: id, AvailabilityZone: az }));
      c = await until(id, (x) => x.Hsms!.find((h) => h.HsmId === more.Hsm!.HsmId)?.State === 'ACTIVE');
    }
    expect(c.Hsms!.map((h) => h.State)).to.deep.equal(['ACTIVE', 'ACTIVE', 'ACTIVE']);
    // Every HSM of the cluster presents the cluster certificate, as CloudHSM's do.
    const joined = JSON.parse(readFileSync(join(plane.clusterDir(id), 'cluster.json'), 'utf8')) as { members: string[]; ca: string; cert: string; key: string };
    expect(joined.members).to.have.length(3);
    for (const address of joined.members) expect(await presented(address, anchor, joined)).to.equal(new X509Certificate(signed).fingerprint256);

    // An application connects over TLS with cluster.json, as any other, and makes keys.
    let victim = '';
    const remote = await connectFromEnvironment({ STRONGROOM_CLUSTER: cli.STRONGROOM_CLUSTER });
    try {
      const admin = await remote.login('admin', 'admin-password-1');
      await admin.send({ op: 'createUser', username: 'app', password: 'app-password-1', role: 'crypto-user' });
      await admin.logout();
      // Prometheus sees the sessions and keys move (CloudWatch's names, ClusterId and HsmId as labels).
      let text = '';
      const scrape = async (name: string) => {
        text = await (await fetch(`${server.url}/metrics`)).text();
        return [...text.matchAll(new RegExp(`^${name}\\{ClusterId="${id}",HsmId="(hsm-[a-z2-7]+)"\\} (\\d+)$`, 'gm'))].reduce((sum, m) => sum + Number(m[2]), 0);
      };
      const sessionsBefore = await scrape('HsmSessionCount');
      expect(await scrape('HsmKeysSessionOccupied')).to.equal(0);
      expect(await scrape('HsmUsersMax'), text).to.equal(3 * 1024);
      const app = await remote.login('app', 'app-password-1');
      const pair = (await app.crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
      expect(await scrape('HsmSessionCount')).to.be.greaterThan(sessionsBefore);
      expect(await scrape('HsmKeysSessionOccupied')).to.equal(2);
      expect(await scrape('HsmUnhealthy')).to.equal(0);
      const data = new TextEncoder().encode('signed while an HSM goes away');
      // DeleteHsm under a signing load: every signature succeeds and verifies.
      let stop = false;
      let signatures = 0;
      const load = Promise.all(
        Array.from({ length: 4 }, async () => {
          while (!stop) {
            const sig = await app.crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, pair.privateKey, data);
            expect(await app.crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, pair.publicKey, sig, data)).to.equal(true);
            signatures++;
          }
        }),
      );
      victim = c.Hsms![1]!.HsmId!;
      expect(await client.send(new DeleteHsmCommand({ ClusterId: id, HsmId: victim }))).to.include({ HsmId: victim });
      c = await until(id, (x) => !x.Hsms!.some((h) => h.HsmId === victim));
      stop = true;
      await load;
      expect(signatures).to.be.greaterThan(0);
      expect(c.Hsms).to.have.length(2);
      await app.logout();
    } finally {
      await remote.close();
    }

    // The audit logs as CloudHSM sends them to CloudWatch Logs: a stream per HSM, gapless from 0,
    // each event in CloudHSM's text shape; the deleted HSM's stream stays. First a comparison of
    // the members, so that the supervisor's appliance sessions exist on both (its next runs log
    // nothing new: below, nothing but the exporter reads the members).
    await plane.runningClusters().find((r) => r.clusterId === id)!.live.sync();
    await plane.exportAuditLogs();
    const streams = readdirSync(join(dir, 'plane', 'cloudwatch-logs', 'aws', 'cloudhsm', id)).filter((f) => f.endsWith('.jsonl')).sort();
    expect(streams).to.deep.equal([...c.Hsms!.map((h) => h.HsmId!), victim].map((h) => `${h}.jsonl`).sort());
    const first = join(dir, 'plane', 'cloudwatch-logs', 'aws', 'cloudhsm', id, `${c.Hsms![0]!.HsmId}.jsonl`);
    const events = streamEvents(first);
    expect(events.map((e) => Number(/^Sequence No : (0x[0-9a-f]+)$/m.exec(e.message)![1]))).to.deep.equal(events.map((_, i) => i));
    expect(events[0]!.message).to.match(/^Time: \d\d\/\d\d\/\d\d \d\d:\d\d:\d\d\.\d{6}, usecs:\d{16}\nSequence No : 0x0\nReboot counter : 0x0\nCommand Type\(hex\) : CN_MGMT_CMD \(0x0\)\nOpcode : CN_INIT_TOKEN \(0x1\)\nSession Handle : 0x0\nResponse : 0:HSM Return: SUCCESS\nLog type : MINIMAL_LOG_ENTRY \(0\)$/);
    expect(events[0]!.timestamp).to.be.closeTo(Date.now(), 600_000);
    const appLogin = events.find((e) => e.message.includes('Opcode : CN_LOGIN (0xd)') && e.message.includes('User Name : app\n'));
    expect(appLogin?.message).to.match(/Response : 0:HSM Return: SUCCESS\nLog type : MGMT_USER_DETAILS_LOG \(2\)\nUser Name : app\nUser Type : CN_CRYPTO_USER \(1\)$/);
    const activation = events.find((e) => e.message.includes('Opcode : CN_CHANGE_PSWD (0x9)'));
    expect(activation?.message).to.match(/User Name : admin\nUser Type : CN_CRYPTO_PRE_OFFICER \(6\)$/);
    // Exporting again with nothing new changes nothing (the exporter's own reading is not news).
    await plane.exportAuditLogs();
    await plane.exportAuditLogs();
    expect(readFileSync(first, 'utf8').trimEnd().split('\n')).to.have.length(events.length);

    // The members' own backups: at least those taken when members were added and removed.
    const { Backups } = await client.send(new DescribeBackupsCommand({ Filters: { clusterIds: [id] } }));
    expect(Backups!.length).to.be.greaterThan(1);
    for (const b of Backups!) {
      // (HsmType and Mode are newer than this SDK, which leaves them out, as it should.)
      expect(b).to.include({ ClusterId: id, BackupState: 'READY', NeverExpires: false });
      expect(b.BackupId).to.match(/^backup-[2-7a-z]+$/);
      expect(b.CreateTimestamp).to.be.instanceOf(Date);
    }
    const newest = Backups!.at(-1)!.BackupId!;
    expect((await client.send(new ModifyBackupAttributesCommand({ BackupId: newest, NeverExpires: true }))).Backup).to.include({ BackupId: newest, NeverExpires: true });
    // Marked for deletion, then brought back.
    const older = Backups![0]!.BackupId!;
    expect((await client.send(new DeleteBackupCommand({ BackupId: older }))).Backup).to.include({ BackupState: 'PENDING_DELETION' });
    expect((await client.send(new RestoreBackupCommand({ BackupId: older }))).Backup).to.include({ BackupState: 'READY' });

    // Copied to another region, where a new cluster is made from it: its users come back.
    const copied = await client.send(new CopyBackupToRegionCommand({ BackupId: newest, DestinationRegion: 'eu-west-1', TagList: [{ Key: 'copy', Value: 'dr' }] }));
    expect(copied.DestinationBackup).to.include({ SourceRegion: 'us-east-1', SourceBackup: newest, SourceCluster: id });
    const west = new CloudHSMV2Client({ endpoint: server.url, region: 'eu-west-1', credentials: CREDENTIALS });
    try {
      const there = (await west.send(new DescribeBackupsCommand({ Filters: { sourceBackupIds: [newest] } }))).Backups!;
      expect(there).to.have.length(1);
      expect(there[0]).to.include({ SourceBackup: newest, SourceRegion: 'us-east-1', BackupState: 'READY' });
      expect((await west.send(new ListTagsCommand({ ResourceId: there[0]!.BackupId! }))).TagList).to.deep.equal([{ Key: 'copy', Value: 'dr' }]);
      expect(await refusal(west.send(new CreateClusterCommand({ HsmType: 'hsm2m.medium', SubnetIds: [SUBNETS[0]!], SourceBackupId: there[0]!.BackupId!, Mode: 'NON_FIPS' } as never)))).to.deep.equal({
        name: 'CloudHsmInvalidRequestException',
        message: `SourceBackupId: the backup ${there[0]!.BackupId!} is of a FIPS cluster; it restores only into a FIPS cluster (Mode)`,
        status: 400,
      });
      const restored = (await west.send(new CreateClusterCommand({ HsmType: 'hsm2m.medium', SubnetIds: [SUBNETS[0]!], SourceBackupId: there[0]!.BackupId! }))).Cluster!.ClusterId!;
      const westUntil = async (ready: (x: Cluster) => boolean) => {
        for (;;) {
          const x = (await west.send(new DescribeClustersCommand({ Filters: { clusterIds: [restored] } }))).Clusters![0]!;
          if (ready(x)) return x;
          for (const h of x.Hsms ?? []) expect(h.State, h.StateMessage).to.not.equal('DEGRADED');
          await new Promise((r) => setTimeout(r, 50));
        }
      };
      await westUntil((x) => x.State === 'UNINITIALIZED');
      await west.send(new CreateHsmCommand({ ClusterId: restored, AvailabilityZone: 'eu-west-1a' }));
      const r = await westUntil((x) => x.Hsms?.[0]?.State === 'ACTIVE');
      expect(r.State).to.equal('ACTIVE');
      expect(r.SourceBackupId).to.equal(there[0]!.BackupId);
      const restoredRemote = await connectFromEnvironment({ STRONGROOM_CLUSTER: join(plane.clusterDir(restored), 'cluster.json') });
      try {
        const app = await restoredRemote.login('app', 'app-password-1');
        expect(app.username).to.equal('app');
        await app.logout();
      } finally {
        await restoredRemote.close();
      }
      await west.send(new DeleteHsmCommand({ ClusterId: restored, HsmId: r.Hsms![0]!.HsmId! }));
      await westUntil((x) => x.Hsms!.length === 0);
    } finally {
      west.destroy();
    }
  });

  it('tags, retention, pages, deletion and every refusal by its type; the request signature is checked', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await client.send(new CreateClusterCommand({ HsmType: 'hsm2m.medium', SubnetIds: [SUBNETS[0]!], Mode: 'NON_FIPS' } as never))).Cluster!.ClusterId!);
    for (const id of ids) await until(id, (x) => x.State === 'UNINITIALIZED');
    // An hsm1.medium cluster (FIPS, its own limits): its HSM is a member of the cloudhsm-hsm1 profile.
    const hsm1 = (await client.send(new CreateClusterCommand({ HsmType: 'hsm1.medium', SubnetIds: [SUBNETS[0]!] }))).Cluster!.ClusterId!;
    await until(hsm1, (x) => x.State === 'UNINITIALIZED');
    await client.send(new CreateHsmCommand({ ClusterId: hsm1, AvailabilityZone: 'us-east-1a' }));
    const small = await until(hsm1, (x) => x.Hsms?.[0]?.State === 'ACTIVE');
    expect(small).to.include({ HsmType: 'hsm1.medium', State: 'UNINITIALIZED' });
    expect((await plane.live(hsm1)!.hsmInfo())[0]).to.include({ profile: 'cloudhsm-hsm1', mode: 'fips', maxUsers: 250 });
    // An HSM that does not answer is the service's failure, not the request's; nothing changes.
    plane.live(hsm1)!.killMember(0, { restart: false });
    expect(await refusal(client.send(new InitializeClusterCommand({ ClusterId: hsm1, SignedCert: 'x', TrustAnchor: 'y' })))).to.deep.equal({ name: 'CloudHsmServiceException', message: `the HSM of ${hsm1} is not answering; try again when it is`, status: 400 });
    expect((await until(hsm1, () => true)).State).to.equal('UNINITIALIZED');
    plane.live(hsm1)!.restartMember(0);
    await client.send(new DeleteHsmCommand({ ClusterId: hsm1, HsmId: small.Hsms![0]!.HsmId! }));
    await until(hsm1, (x) => x.Hsms!.length === 0);
    // Pages of one: every cluster exactly once.
    const seen: string[] = [];
    let token: string | undefined;
    do {
      const page = await client.send(new DescribeClustersCommand({ MaxResults: 1, ...(token ? { NextToken: token } : {}) }));
      seen.push(...page.Clusters!.map((x) => x.ClusterId!));
      token = page.NextToken;
    } while (token);
    expect(new Set(seen).size).to.equal(seen.length);
    expect(seen).to.include.members(ids);
    // Another region is another set of clusters.
    const west = new CloudHSMV2Client({ endpoint: server.url, region: 'ap-south-1', credentials: CREDENTIALS });
    expect((await west.send(new DescribeClustersCommand({}))).Clusters).to.deep.equal([]);
    expect((await west.send(new DescribeClustersCommand({ Filters: { clusterIds: [ids[0]!] } }))).Clusters).to.deep.equal([]);
    expect((await refusal(west.send(new ListTagsCommand({ ResourceId: ids[0]! })))).name).to.equal('CloudHsmResourceNotFoundException');
    west.destroy();

    const id = ids[0]!;
    await client.send(new TagResourceCommand({ ResourceId: id, TagList: [{ Key: 'env', Value: 'dev' }, { Key: 'owner', Value: 'team-a' }] }));
    await client.send(new UntagResourceCommand({ ResourceId: id, TagKeyList: ['owner'] }));
    expect((await client.send(new ListTagsCommand({ ResourceId: id }))).TagList).to.deep.equal([{ Key: 'env', Value: 'dev' }]);
    expect((await client.send(new ModifyClusterCommand({ ClusterId: id, BackupRetentionPolicy: { Type: 'DAYS', Value: '30' } }))).Cluster!.BackupRetentionPolicy).to.deep.equal({ Type: 'DAYS', Value: '30' });

    // Refusals, by type; none changes anything.
    expect(await refusal(client.send(new CreateClusterCommand({ HsmType: 'hsm9.tiny', SubnetIds: SUBNETS })))).to.deep.equal({ name: 'CloudHsmInvalidRequestException', message: 'HsmType: hsm1.medium or hsm2m.medium, not "hsm9.tiny"', status: 400 });
    expect(await refusal(client.send(new CreateClusterCommand({ HsmType: 'hsm1.medium', SubnetIds: SUBNETS, Mode: 'NON_FIPS' } as never)))).to.deep.equal({ name: 'CloudHsmInvalidRequestException', message: 'Mode: hsm1.medium clusters run in FIPS mode only; NON_FIPS is for hsm2m.medium', status: 400 });
    const hsm2mBackup = (await client.send(new DescribeBackupsCommand({ Filters: { clusterIds: [story] } }))).Backups![0]!.BackupId!;
    expect(await refusal(client.send(new CreateClusterCommand({ HsmType: 'hsm1.medium', SubnetIds: SUBNETS, SourceBackupId: hsm2mBackup })))).to.deep.equal({
      name: 'CloudHsmInvalidRequestException',
      message: `SourceBackupId: the backup ${hsm2mBackup} is of an hsm2m.medium cluster; it restores only into an hsm2m.medium cluster (HsmType)`,
      status: 400,
    });
    expect(await refusal(client.send(new CreateHsmCommand({ ClusterId: 'cluster-aaaaaaaaaaa', AvailabilityZone: 'us-east-1a' })))).to.deep.equal({ name: 'CloudHsmResourceNotFoundException', message: 'ClusterId: no cluster cluster-aaaaaaaaaaa in us-east-1', status: 400 });
    expect(await refusal(client.send(new CreateHsmCommand({ ClusterId: id, AvailabilityZone: 'us-east-1c' })))).to.deep.equal({ name: 'CloudHsmInvalidRequestException', message: `AvailabilityZone: the cluster ${id} has subnets in us-east-1a, not us-east-1c`, status: 400 });
    expect(await refusal(client.send(new TagResourceCommand({ ResourceId: id, TagList: [{ Key: 'aws:reserved', Value: 'x' }] })))).to.deep.equal({ name: 'CloudHsmTagException', message: 'TagList[0]: the aws: prefix is reserved for AWS\'s own tags', status: 400 });
    expect(await refusal(client.send(new TagResourceCommand({ ResourceId: id, TagList: Array.from({ length: 50 }, (_, i) => ({ Key: `k${i}`, Value: 'v' })) })))).to.deep.equal({ name: 'CloudHsmResourceLimitExceededException', message: `a resource has at most 50 tags; ${id} would have 51`, status: 400 });
    expect(await refusal(client.send(new InitializeClusterCommand({ ClusterId: id, SignedCert: 'x', TrustAnchor: 'y' })))).to.include({ name: 'CloudHsmInvalidRequestException' });
    expect((await client.send(new ListTagsCommand({ ResourceId: id }))).TagList).to.deep.equal([{ Key: 'env', Value: 'dev' }]);

    // Deletion: DELETE_IN_PROGRESS, then DELETED; then it is not found.
    expect((await client.send(new DeleteClusterCommand({ ClusterId: ids[2]! }))).Cluster!.State).to.equal('DELETE_IN_PROGRESS');
    await until(ids[2]!, (x) => x.State === 'DELETED');
    expect((await refusal(client.send(new DeleteClusterCommand({ ClusterId: ids[2]! })))).name).to.equal('CloudHsmResourceNotFoundException');

    // A key whose policy allows reading: it reads, and anything else is CloudHsmAccessDeniedException.
    const reader = new CloudHSMV2Client({ endpoint: server.url, region: 'us-east-1', credentials: READ_ONLY });
    expect((await reader.send(new ListTagsCommand({ ResourceId: id }))).TagList).to.deep.equal([{ Key: 'env', Value: 'dev' }]);
    expect((await reader.send(new DescribeClustersCommand({ Filters: { clusterIds: [id] } }))).Clusters).to.have.length(1);
    expect(await refusal(reader.send(new TagResourceCommand({ ResourceId: id, TagList: [{ Key: 'env', Value: 'prod' }] })))).to.deep.equal({
      name: 'CloudHsmAccessDeniedException',
      message: 'the access key AKIASTRONGROOMREAD01 may not call cloudhsm:TagResource; its actions are cloudhsm:Describe*, cloudhsm:ListTags',
      status: 400,
    });
    expect((await refusal(reader.send(new DeleteClusterCommand({ ClusterId: id })))).name).to.equal('CloudHsmAccessDeniedException');
    reader.destroy();
    expect((await client.send(new ListTagsCommand({ ResourceId: id }))).TagList).to.deep.equal([{ Key: 'env', Value: 'dev' }]);
    expect((await until(id, () => true)).State).to.equal('UNINITIALIZED');

    // The signature: a wrong secret, and an unknown key.
    const forged = new CloudHSMV2Client({ endpoint: server.url, region: 'us-east-1', credentials: { ...CREDENTIALS, secretAccessKey: 'not-the-secret' } });
    expect(await refusal(forged.send(new DescribeClustersCommand({})))).to.deep.equal({ name: 'InvalidSignatureException', message: 'the request signature does not match the one computed with the secret key of its access key', status: 403 });
    forged.destroy();
    const stranger = new CloudHSMV2Client({ endpoint: server.url, region: 'us-east-1', credentials: { accessKeyId: 'AKIAUNKNOWN000000000', secretAccessKey: 'x' } });
    expect((await refusal(stranger.send(new DescribeClustersCommand({})))).name).to.equal('UnrecognizedClientException');
    stranger.destroy();

    // Not the protocol: unsigned, an unknown operation, not JSON, another content type.
    const raw = (headers: Record<string, string>, body: string) => fetch(server.url, { method: 'POST', headers, body }).then(async (r) => ({ status: r.status, body: (await r.json()) as { __type: string; Message: string } }));
    expect(await raw({ 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'BaldrApiService.DescribeClusters' }, '{}')).to.deep.equal({
      status: 403,
      body: { __type: 'MissingAuthenticationTokenException', Message: 'the request is not signed: sign it with AWS Signature Version 4 (the AWS SDKs and CLI do)' },
    });
    expect((await raw({ 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'BaldrApiService.LaunchRockets' }, '{}')).body.__type).to.equal('MissingAuthenticationTokenException');
    expect(await raw({ 'content-type': 'text/plain', 'x-amz-target': 'BaldrApiService.DescribeClusters' }, '{}')).to.deep.equal({ status: 400, body: { __type: 'UnknownOperationException', Message: 'Content-Type: application/x-amz-json-1.1, not "text/plain"' } });
  });

  it('DescribeBackups: each filter, filters together, the order both ways and pages; a deleted backup is not shown', async () => {
    // Eight backups in a region of their own, as a member made them (one of the story's), at
    // known times with known ids. The last is deleted (marked, then swept 8 days later); the rest
    // are changed through the API.
    const east = join(dir, 'plane', 'backups', 'us-east-1');
    const bytes = readFileSync(join(east, readdirSync(east).find((f) => f.endsWith('.backup'))!));
    let now = Date.UTC(2026, 0, 1);
    let seed = 0;
    const store = new BackupStore(join(dir, 'plane', 'backups', 'ap-south-1'), {
      region: 'ap-south-1',
      clock: () => new Date((now += 60_000)),
      random: (n) => Uint8Array.from({ length: n }, () => seed++ % 251),
    });
    const made: string[] = [];
    for (let i = 0; i < 8; i++) made.push((await store.add(bytes, { trigger: 'periodic' })).backupId);
    const gone = made.pop()!;
    store.delete(gone);
    now += 8 * 86_400_000;
    expect(store.sweep()).to.deep.equal({ markedForDeletion: [], deleted: [gone] });
    const south = new CloudHSMV2Client({ endpoint: server.url, region: 'ap-south-1', credentials: CREDENTIALS });
    try {
      const ids = async (input: ConstructorParameters<typeof DescribeBackupsCommand>[0]) => (await south.send(new DescribeBackupsCommand(input))).Backups!.map((b) => b.BackupId);
      expect(await ids({})).to.deep.equal(made);
      await south.send(new ModifyBackupAttributesCommand({ BackupId: made[1]!, NeverExpires: true }));
      await south.send(new ModifyBackupAttributesCommand({ BackupId: made[4]!, NeverExpires: true }));
      await south.send(new DeleteBackupCommand({ BackupId: made[2]! }));
      expect(await ids({ SortAscending: false })).to.deep.equal([...made].reverse());
      expect(await ids({ Filters: { backupIds: [made[5]!, made[1]!, gone] } })).to.deep.equal([made[1], made[5]]);
      expect(await ids({ Filters: { states: ['PENDING_DELETION'] } })).to.deep.equal([made[2]]);
      expect(await ids({ Filters: { states: ['READY', 'PENDING_DELETION', 'DELETED'] } })).to.deep.equal(made);
      expect(await ids({ Filters: { neverExpires: ['true'] } })).to.deep.equal([made[1], made[4]]);
      expect(await ids({ Filters: { neverExpires: ['false'], states: ['READY'] } })).to.deep.equal([made[0], made[3], made[5], made[6]]);
      // Filters of different names must all hold; the values of one are alternatives.
      expect(await ids({ Filters: { backupIds: [made[0]!, made[1]!, made[2]!], neverExpires: ['true'] } })).to.deep.equal([made[1]]);
      expect(await ids({ Filters: { backupIds: ['backup-aaaaaaaaaaa'] } })).to.deep.equal([]);
      expect(await ids({ Filters: { backupIds: [] } })).to.deep.equal([]);
      // These backups belong to no cluster of the API's: no value of clusterIds matches them.
      expect(await ids({ Filters: { clusterIds: ['undefined'] } })).to.deep.equal([]);
      // A filter the API does not have is refused by name, even one every object inherits.
      for (const name of ['hsmIds', 'constructor']) {
        expect(await refusal(south.send(new DescribeBackupsCommand({ Filters: { [name]: ['x'] } })))).to.deep.equal({
          name: 'CloudHsmInvalidRequestException',
          message: `Filters: ${name} is not a filter of DescribeBackups (backupIds, sourceBackupIds, clusterIds, states, neverExpires)`,
          status: 400,
        });
      }
      // Pages of 3, newest first, cover all seven once each.
      const pages: (string | undefined)[][] = [];
      let token: string | undefined;
      do {
        const { Backups, NextToken } = await south.send(new DescribeBackupsCommand({ SortAscending: false, MaxResults: 3, ...(token ? { NextToken: token } : {}) }));
        pages.push(Backups!.map((b) => b.BackupId));
        token = NextToken;
      } while (token);
      expect(pages).to.deep.equal([[made[6], made[5], made[4]], [made[3], made[2], made[1]], [made[0]]]);
    } finally {
      south.destroy();
    }
  });

  it('signed raw requests: an unknown operation and a body that is not JSON are refused by the protocol\'s own types', async () => {
    const { SignatureV4 } = await import('@smithy/signature-v4');
    const { Sha256 } = await import('../../src/control-plane/sigv4.js');
    const signer = new SignatureV4({ service: 'cloudhsm', region: 'us-east-1', credentials: CREDENTIALS, sha256: Sha256 });
    const url = new URL(server.url);
    const call = async (target: string, body: string) => {
      const signed = await signer.sign({ method: 'POST', protocol: 'http:', hostname: url.hostname, port: Number(url.port), path: '/', query: {}, headers: { host: url.host, 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': target }, body });
      const r = await fetch(server.url, { method: 'POST', headers: signed.headers as Record<string, string>, body });
      return { status: r.status, body: (await r.json()) as unknown };
    };
    expect(await call('BaldrApiService.LaunchRockets', '{}')).to.deep.equal({ status: 400, body: { __type: 'UnknownOperationException', Message: 'LaunchRockets is not an operation of CloudHSM V2 (BaldrApiService)' } });
    expect(await call('BaldrApiService.DescribeClusters', '{not json')).to.deep.equal({ status: 400, body: { __type: 'SerializationException', Message: 'the request body is not JSON' } });
    expect(await call('BaldrApiService.DescribeClusters', '{"Filters": {"colours": ["blue"]}}')).to.deep.equal({ status: 400, body: { __type: 'CloudHsmInvalidRequestException', Message: 'Filters: colours is not a filter of DescribeClusters (clusterIds, states, vpcIds)' } });
    // Newer than the SDK here: Mode on clusters, and resource policies on backups.
    const clusters = (await call('BaldrApiService.DescribeClusters', '{"Filters": {"states": ["UNINITIALIZED"]}}')).body as { Clusters: { Mode: string }[] };
    expect(clusters.Clusters.map((c) => c.Mode)).to.include('NON_FIPS');
    const backups = (await call('BaldrApiService.DescribeBackups', '{}')).body as { Backups: { BackupArn: string; Mode: string; HsmType: string }[] };
    const arn = backups.Backups[0]!.BackupArn;
    expect(arn).to.match(/^arn:aws:cloudhsm:us-east-1:111122223333:backup\/backup-[2-7a-z]{11}$/);
    expect(backups.Backups[0]).to.include({ Mode: 'FIPS', HsmType: 'hsm2m.medium' });
    const policy = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::444455556666:root' }, Action: ['cloudhsm:CreateCluster', 'cloudhsm:DescribeBackups'], Resource: arn }] });
    expect(await call('BaldrApiService.GetResourcePolicy', JSON.stringify({ ResourceArn: arn }))).to.deep.equal({ status: 200, body: {} });
    expect(await call('BaldrApiService.PutResourcePolicy', JSON.stringify({ ResourceArn: arn, Policy: policy }))).to.deep.equal({ status: 200, body: { ResourceArn: arn, Policy: policy } });
    expect(await call('BaldrApiService.GetResourcePolicy', JSON.stringify({ ResourceArn: arn }))).to.deep.equal({ status: 200, body: { Policy: policy } });
    expect((await call('BaldrApiService.PutResourcePolicy', JSON.stringify({ ResourceArn: arn, Policy: 'allow everyone' }))).body).to.deep.equal({ __type: 'CloudHsmInvalidRequestException', Message: 'Policy: not a JSON policy document' });
    expect(await call('BaldrApiService.DeleteResourcePolicy', JSON.stringify({ ResourceArn: arn }))).to.deep.equal({ status: 200, body: { ResourceArn: arn, Policy: policy } });
    expect((await call('BaldrApiService.GetResourcePolicy', JSON.stringify({ ResourceArn: arn.replace('us-east-1', 'eu-north-1') }))).body).to.include({ __type: 'CloudHsmResourceNotFoundException' });
    // A failure inside the service (here a backup record damaged on disk) is CloudHsmInternalFailureException,
    // with no detail in the answer; the cause goes to the log.
    const damaged = join(dir, 'plane', 'backups', 'us-east-1', 'backup-aaaaaaaaaaa.json');
    writeFileSync(damaged, '{ not a record');
    try {
      expect(await call('BaldrApiService.DescribeBackups', '{}')).to.deep.equal({ status: 500, body: { __type: 'CloudHsmInternalFailureException', Message: 'the request failed inside the service; it is logged' } });
      expect(logged.some((l) => l.includes('SyntaxError') && l.includes('JSON'))).to.equal(true);
    } finally {
      rmSync(damaged);
    }
    expect((await call('BaldrApiService.DescribeBackups', '{}')).status).to.equal(200);
  });

  it('the API\'s state survives a restart: the active cluster comes back with its HSMs, and serves its users', async () => {
    client.destroy();
    await server.close();
    await plane.close();
    plane = new ControlPlane({ dataDir: join(dir, 'plane'), passwordCost: 10 });
    await plane.resume();
    server = await serveControlPlane(plane, { credentials: [CREDENTIALS, READ_ONLY] });
    client = new CloudHSMV2Client({ endpoint: server.url, region: 'us-east-1', credentials: CREDENTIALS });
    const c = await until(story, () => true);
    expect(c.State).to.equal('ACTIVE');
    expect(c.Hsms!.map((h) => h.State)).to.deep.equal(['ACTIVE', 'ACTIVE']);
    expect(plane.live(story)!.status().filter((m) => m.state === 'up')).to.have.length(2);
    // The HSM that came back from its folder continues its stream; the one re-added (a new member,
    // restored from a backup) starts a new stream from 0, the old one moved aside.
    await plane.exportAuditLogs();
    const folder = join(dir, 'plane', 'cloudwatch-logs', 'aws', 'cloudhsm', story);
    const files = readdirSync(folder).filter((f) => f.endsWith('.jsonl'));
    for (const h of c.Hsms!) {
      const events = streamEvents(join(folder, `${h.HsmId}.jsonl`));
      expect(events.map((e) => Number(/^Sequence No : (0x[0-9a-f]+)$/m.exec(e.message)![1])), h.HsmId).to.deep.equal(events.map((_, i) => i));
    }
    expect(files.filter((f) => f.startsWith(`${c.Hsms![1]!.HsmId}.`) && f !== `${c.Hsms![1]!.HsmId}.jsonl`)).to.have.length(1);
    expect(files.filter((f) => f.startsWith(`${c.Hsms![0]!.HsmId}.`))).to.deep.equal([`${c.Hsms![0]!.HsmId}.jsonl`]);
    const remote = await connectFromEnvironment({ STRONGROOM_CLUSTER: join(plane.clusterDir(story), 'cluster.json') });
    try {
      const app = await remote.login('app', 'app-password-1');
      await app.logout();
    } finally {
      await remote.close();
    }
  });
  it('a change the last run answered but did not finish is settled at the restart: an initialization never installed is undone', async () => {
    const id = (await client.send(new CreateClusterCommand({ HsmType: 'hsm2m.medium', SubnetIds: [SUBNETS[0]!] }))).Cluster!.ClusterId!;
    await until(id, (x) => x.State === 'UNINITIALIZED');
    await client.send(new CreateHsmCommand({ ClusterId: id, AvailabilityZone: 'us-east-1a' }));
    const csr = (await until(id, (x) => x.Certificates?.ClusterCsr !== undefined)).Certificates!.ClusterCsr!;
    client.destroy();
    await server.close();
    await plane.close();
    // As if the last run had stopped right after answering InitializeCluster.
    const file = join(dir, 'plane', 'control-plane.json');
    const records = JSON.parse(readFileSync(file, 'utf8')) as { clusters: { ClusterId: string; State: string }[] };
    records.clusters.find((x) => x.ClusterId === id)!.State = 'INITIALIZE_IN_PROGRESS';
    writeFileSync(file, JSON.stringify(records));
    plane = new ControlPlane({ dataDir: join(dir, 'plane'), passwordCost: 10 });
    await plane.resume();
    server = await serveControlPlane(plane, { credentials: [CREDENTIALS] });
    client = new CloudHSMV2Client({ endpoint: server.url, region: 'us-east-1', credentials: CREDENTIALS });
    const c = await until(id, () => true);
    expect(c).to.include({ State: 'UNINITIALIZED', StateMessage: 'The control plane stopped before the certificate was installed; call InitializeCluster again.' });
    expect(c.Certificates).to.deep.equal({ ClusterCsr: csr });
    await client.send(new DeleteHsmCommand({ ClusterId: id, HsmId: c.Hsms![0]!.HsmId! }));
    await until(id, (x) => x.Hsms!.length === 0);
  });
});

describe('control plane: its HTTP server', () => {
  it('closes with connections open that never finished a request (silent, or a request cut short)', async function () {
    this.timeout(15_000);
    const dir = mkdtempSync(join(tmpdir(), 'strongroom-control-plane-close-'));
    const plane = new ControlPlane({ dataDir: join(dir, 'plane'), passwordCost: 10 });
    const server = await serveControlPlane(plane, { credentials: [CREDENTIALS] });
    const { hostname, port } = new URL(server.url);
    const open = await Promise.all(
      ['', 'POST / HTTP/1.1\r\nHost: cloudhsmv2.us-east-1.amazonaws.com\r\n'].map(async (partial) => {
        const raw = netConnect(Number(port), hostname);
        raw.on('error', () => undefined);
        const ended = new Promise((resolve) => raw.once('close', resolve));
        await new Promise((resolve) => raw.once('connect', resolve));
        raw.write(partial);
        return { ended };
      }),
    );
    await server.close();
    await Promise.all(open.map((c) => c.ended));
    await plane.close();
    rmSync(dir, { recursive: true, force: true });
  });
});
