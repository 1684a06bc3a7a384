/**
 * `strongroom keytool` against a running three-member TLS cluster (`strongroom up`), from the
 * built package: a CA and a server key made in the HSM, a CSR, a certificate issued and
 * installed as the reply, export, an openssl-made PKCS #12 imported, list (with the PKCS #11
 * door's certificates) and delete, and errors.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { CKA, CKF, CKM, CKO } from '../../src/pkcs11/constants.js';
import { RpcClient, attr } from '../helpers/p11-rpc.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const exec = promisify(execFile);

describe('cli: strongroom keytool', function () {
  this.timeout(120_000);
  let dir: string;
  let child: ReturnType<typeof spawn>;
  let env: Record<string, string | undefined>;

  async function keytool(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await exec(process.execPath, [BIN, 'keytool', ...args, '-keystore', 'ks.p12', '-storepass', 'changeit'], { cwd: dir, env });
      return { code: 0, stdout, stderr };
    } catch (e) {
      const err = e as { code: number; stdout: string; stderr: string };
      return { code: err.code, stdout: err.stdout, stderr: err.stderr };
    }
  }
  const ok = async (...args: string[]) => {
    const r = await keytool(...args);
    if (r.code !== 0) expect.fail(`keytool ${args.join(' ')}: ${r.stderr}`);
    return r;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'strongroom-keytool-'));
    child = spawn(process.execPath, [BIN, 'up', '--data-dir', join(dir, 'cluster'), '--members', '2', '--no-relay', '--password-cost', '10'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    while (!out.includes('Serving.')) {
      if (child.exitCode !== null) throw new Error(`up exited: ${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    env = { ...process.env, STRONGROOM_CLUSTER: join(dir, 'cluster', 'cluster.json'), HSM_USER: 'app', HSM_PASSWORD: 'strongroom-app' };
  });
  after(async () => {
    // Ctrl-C, as a person would: up stops its member processes (SIGKILL would leave them running).
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGINT');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('a CA and a server key in the HSM, a CSR, a certificate issued and installed, openssl verifying the chain', async () => {
    const made = await ok('-genkeypair', '-alias', 'ca', '-keyalg', 'EC', '-keysize', '384', '-dname', 'CN=Keytool CA, O=Example', '-ext', 'bc:c', '-validity', '365');
    expect(made.stderr).to.include('Generated the key pair of <ca> in the HSM (non-extractable)');
    await ok('-genkeypair', '-alias', 'server', '-keyalg', 'RSA', '-dname', 'CN=localhost');
    await ok('-certreq', '-alias', 'server', '-file', 'server.csr');
    expect(execFileSync('sh', ['-c', 'openssl req -verify -noout -in server.csr 2>&1'], { cwd: dir, encoding: 'utf8' })).to.match(/verify OK/);
    await ok('-gencert', '-alias', 'ca', '-infile', 'server.csr', '-outfile', 'server.crt', '-rfc');
    expect((await ok('-importcert', '-alias', 'server', '-file', 'server.crt')).stderr).to.include('Certificate reply was installed in keystore (<server>, chain of 2)');
    await ok('-exportcert', '-alias', 'ca', '-rfc', '-file', 'ca.pem');
    expect(execFileSync('openssl', ['verify', '-CAfile', 'ca.pem', 'server.crt'], { cwd: dir, encoding: 'utf8' }).trim()).to.equal('server.crt: OK');

    const list = await ok('-list', '-v');
    expect(list.stdout).to.match(/Your keystore contains 2 entries/);
    expect(list.stdout).to.match(/server, PrivateKeyEntry,\nCertificate fingerprint \(SHA-256\): [0-9A-F:]{95}\n {2}\[1\] Owner: CN=localhost\n {6}Issuer: CN=Keytool CA, O=Example/);
  });

  it('lists the certificates PKCS #11 applications wrote through the door beside their keys (CKA_ID pairs them), after the store\'s own entries', async () => {
    // As pkcs11-tool --write-object or Java's SunPKCS11 would: a token key pair and a certificate with its CKA_ID.
    const c = await RpcClient.connect(join(dir, 'cluster', 'pkcs11', 'pkcs11.sock'), 'p11-kit-0.24');
    try {
      const bytes = (b: Buffer) => ({ data: b, length: b.length });
      await c.call('C_Initialize', [bytes(Buffer.from('PRIVATE-GNOME-KEYRING-PKCS11-PROTOCOL-V-1')), 0, bytes(Buffer.from([0]))]);
      const [rw] = (await c.call('C_OpenSession', [1n, BigInt(CKF.SERIAL_SESSION | CKF.RW_SESSION)])) as [bigint];
      await c.call('C_Login', [rw, 1n, bytes(Buffer.from('app:strongroom-app'))]);
      const id = attr.bytes(CKA.ID, Buffer.from([0x0a]));
      await c.call('C_GenerateKeyPair', [rw, { type: CKM.EC_KEY_PAIR_GEN, param: null }, [attr.bytes(CKA.EC_PARAMS, Buffer.from('06082a8648ce3d030107', 'hex')), attr.bool(CKA.TOKEN, true), id], [attr.bool(CKA.TOKEN, true), attr.bool(CKA.SIGN, true), id]]);
      const der = Buffer.from(readFileSync(join(dir, 'server.crt'), 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64');
      await c.call('C_CreateObject', [rw, [attr.ulong(CKA.CLASS, CKO.CERTIFICATE), attr.bool(CKA.TOKEN, true), attr.label('door-cert'), id, attr.bytes(CKA.VALUE, der)]]);
    } finally {
      c.close();
    }
    const fingerprint = execFileSync('openssl', ['x509', '-in', 'server.crt', '-noout', '-fingerprint', '-sha256'], { cwd: dir, encoding: 'utf8' }).trim().split('=')[1];
    const list = await ok('-list', '-v');
    expect(list.stdout).to.match(new RegExp(`\\nPKCS #11 door \\(.*pkcs11/objects\\): 1 certificate\\n\\ndoor-cert, PrivateKeyEntry \\(CKA_ID 0x0a, key 0x[0-9a-f]{16} in the HSM\\),\\nCertificate fingerprint \\(SHA-256\\): ${fingerprint}\\n {2}\\[1\\] Owner: CN=localhost\\n`));
  });

  it('imports an openssl PKCS #12 (key into the HSM), deletes local entries only, and reports errors', async () => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'o.key', '-out', 'o.crt', '-subj', '/CN=from openssl', '-days', '5'], { cwd: dir, stdio: 'ignore' });
    execFileSync('openssl', ['pkcs12', '-export', '-inkey', 'o.key', '-in', 'o.crt', '-name', 'from-openssl', '-passout', 'pass:p12pass', '-out', 'o.p12'], { cwd: dir });
    const imported = await ok('-importkeystore', '-srckeystore', 'o.p12', '-srcstorepass', 'p12pass');
    expect(imported.stderr).to.include('Imported 1 entry (from-openssl); private keys are in the HSM as non-extractable token keys');
    expect((await ok('-list')).stdout).to.include('from-openssl, PrivateKeyEntry');

    await ok('-delete', '-alias', 'from-openssl');
    // The local entry is gone; the HSM key is still found by its label.
    const after = (await ok('-list', '-alias', 'from-openssl')).stdout;
    expect(after, after).to.include('from-openssl, PrivateKeyEntry, (key in the HSM, no certificate)');

    const exists = await keytool('-genkeypair', '-alias', 'ca', '-dname', 'CN=again');
    expect(exists.code).to.equal(1);
    expect(exists.stderr).to.include('keytool error: alias <ca> already exists');
    const unknown = await keytool('-exportcert', '-alias', 'nobody');
    expect(unknown.stderr).to.include('keytool error: alias <nobody> does not exist or has no certificate');
    const badOption = await keytool('-list', '-frobnicate');
    expect(badOption.stderr).to.match(/keytool error: keytool -list: unknown option -frobnicate/);
    const wrong = await exec(process.execPath, [BIN, 'keytool', '-list', '-keystore', 'ks.p12', '-storepass', 'wrong'], { cwd: dir, env }).then(() => null, (e: { stderr: string }) => e.stderr);
    expect(wrong).to.include('keytool error: keystore: wrong password');
    expect(readFileSync(join(dir, 'ks.p12')).length).to.be.greaterThan(100);
  });
});
