/**
 * `strongroom relay` from the built package, against a TLS cluster named by a cluster.json: it
 * prints where it is, pages log in and use the HSM through it, its demo CA issues certificates,
 * and Ctrl-C stops it; a bad --listen is refused.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';
import WebSocket from 'ws';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { startLocalCluster, type LocalCluster } from '../../src/index.js';
import { connectRelay } from '../../src/browser/index.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');

describe('cli: strongroom relay', function () {
  this.timeout(90_000);
  let dir: string;
  let cluster: LocalCluster;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'strongroom-relay-'));
    cluster = await startLocalCluster({
      transport: 'tls',
      members: 1,
      dataDir: dir,
      passwordCost: 10,
      adminPassword: 'admin-password',
      users: [
        { username: 'app', password: 'app-password', role: 'crypto-user' },
        { username: 'demo_ca', password: 'demo-ca-password', role: 'crypto-user' },
      ],
    });
    writeFileSync(join(dir, 'cluster.json'), JSON.stringify({ members: cluster.tls!.addresses, ca: join(dir, 'customerCA.crt'), cert: join(dir, 'client.crt'), key: join(dir, 'client.key') }));
  });
  after(async () => {
    await cluster?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves pages until Ctrl-C, with the demo CA', async () => {
    const child = spawn(process.execPath, [BIN, 'relay', '--listen', '127.0.0.1:0', '--cluster', join(dir, 'cluster.json'), '--demo-ca-user', 'demo_ca:demo-ca-password'], { cwd: ROOT });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', r));
    try {
      const deadline = Date.now() + 30_000;
      while (!/Relay: (http:\/\/127\.0\.0\.1:\d+)\//.test(out)) {
        if (Date.now() > deadline) throw new Error(`no relay line: ${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const url = /Relay: (http:\/\/127\.0\.0\.1:\d+)\//.exec(out)![1]!;
      const Socket = class extends WebSocket {
        constructor(u: string) {
          super(u, { origin: url });
        }
      } as unknown as new (u: string) => globalThis.WebSocket;
      const page = await connectRelay(`${url.replace('http', 'ws')}/ws`, { username: 'app', password: 'app-password' }, { WebSocket: Socket });
      const keys = await page.crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
      const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=cli.example', keys: keys as never, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } }, page.crypto as never);
      const issued = await page.issueCertificate(csr.toString('pem'));
      expect(new x509.X509Certificate(issued.certificate).issuer).to.equal('CN=Strongroom Demo CA, O=Strongroom (development only)');
      await page.logout();
      expect(out).to.not.contain('app-password');
      child.kill('SIGINT');
      expect(await exited).to.equal(0);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('refuses a bad --listen with a message and exit 1', async () => {
    try {
      await promisify(execFile)(process.execPath, [BIN, 'relay', '--listen', 'nowhere', '--cluster', join(dir, 'cluster.json')], { cwd: ROOT });
      expect.fail('should have failed');
    } catch (e) {
      const err = e as { code: number; stderr: string };
      expect(err.code).to.equal(1);
      expect(err.stderr).to.contain('--listen: host:port, got "nowhere"');
    }
  });
});
