/**
 * The CloudHSM V2 API with Debian's AWS CLI v2 (`aws cloudhsmv2 …`, package awscli): the
 * getting-started story, shorter, and its output compared field by field with what the AWS SDK for
 * JavaScript reads from the same API. Outside CI a missing `aws` skips it with a message.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CloudHSMV2Client, DescribeClustersCommand } from '@aws-sdk/client-cloudhsm-v2';
import { expect } from 'chai';
import { ControlPlane, serveControlPlane, type ControlPlaneServer } from '../../src/control-plane/index.js';

const run = promisify(execFile);
/** Debian's AWS CLI v2 (a Python one elsewhere on PATH may be v1). */
const AWS = '/usr/bin/aws';
const CREDENTIALS = { accessKeyId: 'AKIASTRONGROOMCLI001', secretAccessKey: 'strongroom-cli-test-secret-0001' };

describe('control plane: the AWS CLI v2 (aws cloudhsmv2)', function () {
  this.timeout(120_000);
  let dir: string;
  let plane: ControlPlane;
  let server: ControlPlaneServer;
  let env: NodeJS.ProcessEnv;
  /** One `aws cloudhsmv2` command: its JSON output, or its exit code and message. */
  const aws = async (...args: string[]): Promise<{ code: number; json: Record<string, unknown> | null; err: string }> => {
    try {
      const { stdout } = await run(AWS, ['--endpoint-url', server.url, '--output', 'json', 'cloudhsmv2', ...args], { env });
      return { code: 0, json: stdout.trim() ? (JSON.parse(stdout) as Record<string, unknown>) : null, err: '' };
    } catch (e) {
      const err = e as { code: number; stderr: string };
      return { code: err.code, json: null, err: err.stderr.trim() };
    }
  };
  const cluster = async (id: string) => ((await aws('describe-clusters', '--filters', `clusterIds=${id}`)).json!.Clusters as Record<string, unknown>[])[0]!;
  /** Waits (asking through the SDK, which answers in milliseconds where the CLI takes a second) until the cluster is ready, then shows it through the CLI. */
  const until = async (id: string, ready: (c: Record<string, unknown>) => boolean) => {
    const sdk = new CloudHSMV2Client({ endpoint: server.url, region: 'us-east-1', credentials: CREDENTIALS });
    try {
      for (;;) {
        const seen = JSON.parse(JSON.stringify((await sdk.send(new DescribeClustersCommand({ Filters: { clusterIds: [id] } }))).Clusters![0]!)) as Record<string, unknown>;
        if (ready(seen)) break;
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      sdk.destroy();
    }
    const c = await cluster(id);
    expect(ready(c), JSON.stringify(c)).to.equal(true);
    return c;
  };

  before(async function () {
    if (!existsSync(AWS)) {
      if (process.env.CI) throw new Error('the AWS CLI test needs Debian\'s awscli (/usr/bin/aws); .ci/run installs it');
      console.log('      (skipped: install awscli (Debian) for the AWS CLI test)');
      this.skip();
    }
    dir = mkdtempSync(join(tmpdir(), 'strongroom-aws-cli-'));
    plane = new ControlPlane({ dataDir: join(dir, 'plane'), passwordCost: 10 });
    server = await serveControlPlane(plane, { credentials: [CREDENTIALS] });
    env = { ...process.env, AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey, AWS_REGION: 'us-east-1', AWS_CONFIG_FILE: join(dir, 'none'), AWS_SHARED_CREDENTIALS_FILE: join(dir, 'none'), AWS_PAGER: '' };
  });
  after(async () => {
    await server?.close();
    await plane?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('creates a cluster and its first HSM, initializes it with an openssl-signed certificate, and shows what the SDK shows; refusals exit non-zero with the service\'s words', async () => {
    const created = await aws('create-cluster', '--hsm-type', 'hsm2m.medium', '--subnet-ids', 'subnet-0a1b2c3d4e5f60718', '--tag-list', 'Key=team,Value=ops');
    expect(created.code, created.err).to.equal(0);
    const id = (created.json!.Cluster as { ClusterId: string }).ClusterId;
    await until(id, (c) => c.State === 'UNINITIALIZED');
    expect((await aws('create-hsm', '--cluster-id', id, '--availability-zone', 'us-east-1a')).json!.Hsm).to.include({ ClusterId: id, State: 'CREATE_IN_PROGRESS' });
    const ready = await until(id, (c) => (c.Certificates as { ClusterCsr?: string }).ClusterCsr !== undefined);
    writeFileSync(join(dir, 'cluster.csr'), (ready.Certificates as { ClusterCsr: string }).ClusterCsr);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=CLI test CA', '-days', '30'], { cwd: dir, stdio: 'ignore' });
    execFileSync('openssl', ['x509', '-req', '-days', '30', '-in', 'cluster.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'cluster.crt'], { cwd: dir, stdio: 'ignore' });
    const init = await aws('initialize-cluster', '--cluster-id', id, '--signed-cert', `file://${join(dir, 'cluster.crt')}`, '--trust-anchor', `file://${join(dir, 'ca.crt')}`);
    expect(init.json).to.deep.equal({ State: 'INITIALIZE_IN_PROGRESS', StateMessage: 'The cluster is being initialized.' });
    const shown = await until(id, (c) => c.State === 'INITIALIZED');
    expect(shown.Certificates).to.deep.equal({ ClusterCertificate: readFileSync(join(dir, 'cluster.crt'), 'utf8') });
    expect((await aws('list-tags', '--resource-id', id)).json).to.deep.equal({ TagList: [{ Key: 'team', Value: 'ops' }] });

    // Field by field, the CLI's JSON is what the SDK read (timestamps as ISO text there, Dates here).
    const sdk = new CloudHSMV2Client({ endpoint: server.url, region: 'us-east-1', credentials: CREDENTIALS });
    const fromSdk = (await sdk.send(new DescribeClustersCommand({ Filters: { clusterIds: [id] } }))).Clusters![0]!;
    sdk.destroy();
    const normalised = JSON.parse(JSON.stringify(fromSdk, (_k, v: unknown) => v)) as Record<string, unknown>;
    expect(Date.parse(shown.CreateTimestamp as string)).to.equal(Date.parse(normalised.CreateTimestamp as string));
    // Every field the CLI printed is the SDK's (this SDK also keeps the HSMs' newer HsmType, which the CLI's 2.9 model drops).
    const alike = (cli: unknown, js: unknown): unknown =>
      Array.isArray(cli) ? cli.map((v, i) => alike(v, (js as unknown[])[i])) : cli && typeof cli === 'object' ? Object.fromEntries(Object.keys(cli).map((k) => [k, alike((cli as Record<string, unknown>)[k], (js as Record<string, unknown>)[k])])) : js;
    expect(alike({ ...shown, CreateTimestamp: null }, { ...normalised, CreateTimestamp: null })).to.deep.equal({ ...shown, CreateTimestamp: null });
    expect(Object.keys(shown).sort()).to.deep.equal(['BackupPolicy', 'BackupRetentionPolicy', 'Certificates', 'ClusterId', 'CreateTimestamp', 'HsmType', 'Hsms', 'SecurityGroup', 'State', 'StateMessage', 'SubnetMapping', 'TagList', 'VpcId']);

    const hsmId = ((shown.Hsms as { HsmId: string }[])[0]!).HsmId;
    expect((await aws('delete-hsm', '--cluster-id', id, '--hsm-id', hsmId)).json).to.deep.equal({ HsmId: hsmId });
    await until(id, (c) => (c.Hsms as unknown[]).length === 0);
    expect(((await aws('delete-cluster', '--cluster-id', id)).json!.Cluster as { State: string }).State).to.equal('DELETE_IN_PROGRESS');

    const refused = await aws('create-hsm', '--cluster-id', 'cluster-aaaaaaaaaaa', '--availability-zone', 'us-east-1a');
    expect(refused.code).to.equal(254);
    expect(refused.err).to.equal('An error occurred (CloudHsmResourceNotFoundException) when calling the CreateHsm operation: ClusterId: no cluster cluster-aaaaaaaaaaa in us-east-1');
  });
});
