/**
 * When no member answers (issue 14, smaller items): the CLI, keytool and `strongroom/register`
 * say so once, in one line naming the addresses and where they came from, suggest starting the
 * cluster, and print no stack trace.
 */
import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const REGISTER = join(ROOT, 'dist', 'src', 'register.js');

function run(args: string[], env: Record<string, string>): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, out: stdout + stderr });
    });
  });
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

describe('security: no member answers', function () {
  this.timeout(30_000);
  let dir: string;
  let file: string;
  let address: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'strongroom-none-'));
    address = `127.0.0.1:${await closedPort()}`;
    // Well-formed credentials (a self-signed certificate): only the member is missing.
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=nobody', '-days', '1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    copyFileSync(join(dir, 'cert.pem'), join(dir, 'ca.pem'));
    file = join(dir, 'cluster.json');
    writeFileSync(file, JSON.stringify({ members: [address], ca: join(dir, 'ca.pem'), cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') }));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const expected = () => `no member of the cluster answered at ${address} (nothing listens on ${address}); is the cluster running (npm start, or strongroom up)? The addresses come from ${file}`;

  for (const [name, args, env] of [
    ['the CLI', [BIN, 'key', 'list'], { CLOUDHSM_ROLE: 'crypto-user', CLOUDHSM_PIN: 'app:app-password' }],
    ['keytool', [BIN, 'keytool', '-list', '-storepass', 'store-password'], { HSM_USER: 'app', HSM_PASSWORD: 'app-password' }],
    ['strongroom/register', ['--import', REGISTER, '-e', 'console.log("unreachable")'], { HSM_USER: 'app', HSM_PASSWORD: 'app-password' }],
  ] as const) {
    it(`${name} says so in one line, with what to do, and no stack trace`, async () => {
      const { code, out } = await run([...args], { ...env, STRONGROOM_CLUSTER: file });
      expect(code).to.equal(1);
      expect(out).to.contain(expected());
      expect(out.split(expected()).length - 1, 'said once').to.equal(1);
      expect(out).not.to.match(/^\s+at /m);
      expect(out).not.to.contain('unreachable');
    });
  }
});
