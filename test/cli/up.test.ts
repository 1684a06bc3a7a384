/**
 * `strongroom up`, what `npm start` runs, from the built package: a three-member TLS cluster with
 * a data folder, the quick-start sample, connection details, serving until Ctrl-C.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { connect as netConnect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { connect } from '../../src/index.js';
import { FrameReader, encodeFrame, writeMessage } from '../../src/pkcs11/codec.js';
import { markedBlock } from '../helpers/docs.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const run = promisify(execFile);

describe('cli: strongroom up', function () {
  this.timeout(90_000);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'strongroom-up-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('--once: starts three TLS members, runs the quick-start sample, prints credentials and certificate paths, and exits 0', async () => {
    const { stdout } = await run(process.execPath, [BIN, 'up', '--once', '--data-dir', dir, '--password-cost', '10'], { cwd: ROOT });
    expect(stdout).to.match(/^Strongroom: started a 3-member tls cluster \(profile cloudhsm, cluster-[0-9a-f]{16}, state active\)/);
    expect(stdout).to.match(/member 2 {2}tls member 2 \(127\.0\.0\.1:\d+\) {2}serial SR-[0-9A-F]{12} {2}up/);
    expect(stdout).to.include('crypto user  app / strongroom-app');
    expect(stdout).to.include(`trust anchor ${join(dir, 'customerCA.crt')}`);
    // No passphrase: the folder is the secret, and that is said.
    expect(stdout).to.include(`NOTE: no STRONGROOM_MASTER_PASSPHRASE, so the folder ${dir} is the secret`);
    expect(stdout).to.include('decrypted: "attack at dawn"');
    expect(stdout).to.include('export refused: KEY_NOT_EXTRACTABLE');
    expect(stdout).to.include('Users on the cluster: admin (admin, full), app (crypto-user, full), app_user (appliance, full), demo_ca (crypto-user, full)');
    expect(stdout).to.not.include('Demo pages');
    expect(stdout).to.match(/Stopped \(--once\)\.\n$/);
  });

  it('serves until Ctrl-C: clients connect with the printed files (also through strongroom/register), then it stops cleanly', async () => {
    const child = spawn(process.execPath, [BIN, 'up', '--data-dir', dir, '--relay', '127.0.0.1:0', '--password-cost', '10'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setInterval(() => {
          if (out.includes('Serving. Press Ctrl-C to stop.')) {
            clearInterval(timer);
            resolve();
          }
        }, 50);
        void exited.then(() => reject(new Error(`strongroom up exited early: ${out}`)));
      });
      // The relay and the demo pages, where it says.
      const demo = /Demo pages: (http:\/\/127\.0\.0\.1:\d+)\/ {2}\(log in as app \/ strongroom-app; admin \/ strongroom-admin as admin for the audit log\)/.exec(out);
      expect(demo, out).to.not.equal(null);
      const home = await fetch(`${demo![1]}/`);
      expect(home.status).to.equal(200);
      expect(await home.text()).to.contain('<title>Strongroom');
      expect((await fetch(`${demo![1]}/strongroom-browser.js`)).headers.get('content-type')).to.contain('text/javascript');
      expect(readFileSync(join(dir, 'demo-ca.crt'), 'utf8')).to.contain('BEGIN CERTIFICATE');
      const file = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as { members: string[]; ca: string; cert: string; key: string };
      expect(file.members).to.have.length(3);
      // Only the folder's owner can drive the cluster or read its client key.
      expect(statSync(join(dir, 'control.sock')).mode & 0o777).to.equal(0o600);
      expect(statSync(file.key).mode & 0o777).to.equal(0o600);
      const credentials = { ca: readFileSync(file.ca, 'utf8'), cert: readFileSync(file.cert, 'utf8'), key: readFileSync(file.key, 'utf8') };
      const cluster = await connect({ members: [file.members[2]!], ...credentials });
      expect(cluster.status().map((s) => s.state)).to.deep.equal(['up', 'up', 'up']);
      const app = await cluster.login('app', 'strongroom-app');
      const key = await app.crypto.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
      expect((await app.crypto.subtle.sign('HMAC', key, new Uint8Array(3))).byteLength).to.equal(32);
      await cluster.close();

      const script = join(dir, 'plain-app.mjs');
      writeFileSync(script, "const k = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);\nconsole.log(crypto.constructor.name, (await crypto.subtle.sign('Ed25519', k.privateKey, new Uint8Array(1))).byteLength);\n");
      const { stdout } = await run(process.execPath, ['--import', 'strongroom/register', script], {
        cwd: ROOT,
        env: { ...process.env, STRONGROOM_CLUSTER: join(dir, 'cluster.json'), HSM_USER: 'app', HSM_PASSWORD: 'strongroom-app' },
      });
      expect(stdout.trim()).to.equal('HsmCrypto 64');

      // The README's CloudHSM CLI example, line by line, against this cluster (bash -e: any error stops it).
      const example = markedBlock('cli-example', 'sh');
      const shell = example.replaceAll('npx strongroom', `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)}`);
      const cli = await run('bash', ['-euo', 'pipefail', '-c', shell], { cwd: ROOT, env: { ...process.env, STRONGROOM_CLUSTER: join(dir, 'cluster.json') } });
      const answers = cli.stdout.match(/"error_code": \d+/g) ?? [];
      expect(answers).to.have.length(example.split('\n').filter((l) => l.startsWith('npx strongroom')).length);
      expect(answers.every((a) => a === '"error_code": 0')).to.equal(true);
      expect(cli.stdout).to.include('Signature verified successfully');
      expect(cli.stdout).to.include('"label": "cli-demo"');

      // The PKCS #11 door, at the address printed, in a folder only its owner enters: a client's
      // C_Initialize and C_GetInfo (as p11-kit-client.so would send them) are answered.
      const p11 = /P11_KIT_SERVER_ADDRESS=unix:path=(\S+)/.exec(out);
      expect(p11, out).to.not.equal(null);
      expect(statSync(dirname(p11![1]!)).mode & 0o777).to.equal(0o700);
      const info = await new Promise<Buffer>((resolve, reject) => {
        const s = netConnect(p11![1]!, () => {
          const init = writeMessage(1, 'ayyay', [{ data: Buffer.from('PRIVATE-GNOME-KEYRING-PKCS11-PROTOCOL-V-1'), length: 41 }, 0, { data: Buffer.from([0]), length: 1 }]);
          s.write(Buffer.concat([Buffer.from([0]), encodeFrame(0x10, init), encodeFrame(0x11, writeMessage(3, '', []))]));
        });
        const reader = new FrameReader();
        let versionSeen = false;
        s.on('data', (d: Buffer) => {
          const frames = reader.push(versionSeen ? d : d.subarray(1));
          versionSeen = true;
          const answer = frames.find((f) => f.code === 0x11);
          if (answer) {
            s.end();
            resolve(answer.body);
          }
        });
        s.on('error', reject);
      });
      expect(info.toString('latin1')).to.contain('Strongroom');

      // The CloudHSM V2 API, with the endpoint and credentials printed, through AWS's SDK.
      const api = /AWS_ENDPOINT_URL_CLOUDHSM_V2=(\S+) AWS_REGION=(\S+) AWS_ACCESS_KEY_ID=(\S+) AWS_SECRET_ACCESS_KEY=(\S+)/.exec(out);
      expect(api, out).to.not.equal(null);
      const { CloudHSMV2Client, DescribeClustersCommand } = await import('@aws-sdk/client-cloudhsm-v2');
      const sdk = new CloudHSMV2Client({ endpoint: api![1]!, region: api![2]!, credentials: { accessKeyId: api![3]!, secretAccessKey: api![4]! } });
      expect((await sdk.send(new DescribeClustersCommand({}))).Clusters).to.deep.equal([]);
      sdk.destroy();
      expect(statSync(join(dir, 'control-plane', 'credentials.json')).mode & 0o777).to.equal(0o600);

      // A runbook written for AWS's cloudhsm-cli (bash, jq, openssl), unchanged, with the package's
      // cloudhsm-cli command first on the PATH: paging, printed key references, ECDSA r‖s checked
      // by openssl, AES-GCM with the printed IV, a reference PEM.
      const bin = join(dir, 'bin');
      mkdirSync(bin);
      writeFileSync(join(bin, 'cloudhsm-cli'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} "$@"\n`, { mode: 0o755 });
      const runbook = await run('bash', [join(ROOT, 'samples', 'cloudhsm-cli-runbook.sh')], {
        cwd: dir,
        env: { ...process.env, PATH: `${bin}:${process.env.PATH!}`, STRONGROOM_CLUSTER: join(dir, 'cluster.json'), CLOUDHSM_ROLE: 'crypto-user', CLOUDHSM_PIN: 'app:strongroom-app' },
      });
      expect(runbook.stdout).to.match(/^runbook: ok \(\d+ keys listed, signature verified by openssl, AES-GCM round trip, reference PEM\)\n$/);

      child.kill('SIGINT');
      expect(await exited).to.equal(0);
      expect(out).to.include('Strongroom: stopped.');
      // Its members are gone too.
      const [host, port] = file.members[0]!.split(':');
      const refused = await new Promise<string>((resolve) => {
        const s = tlsConnect({ host: host!, port: Number(port), ...credentials });
        s.on('secureConnect', () => {
          s.destroy();
          resolve('connected');
        });
        s.on('error', (e) => resolve(e.message));
      });
      expect(refused).to.match(/ECONNREFUSED/);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('refuses an unknown profile with a message and a non-zero exit', async () => {
    try {
      await run(process.execPath, [BIN, 'up', '--profile', 'fast'], { cwd: ROOT });
      expect.fail('should have failed');
    } catch (e) {
      const err = e as { code: number; stderr: string };
      expect(err.code).to.not.equal(0);
      expect(err.stderr).to.include("option '--profile <profile>' argument 'fast' is invalid. Allowed choices are cloudhsm, cloudhsm-hsm1, unlimited.");
    }
  });
});
