/**
 * The PKCS #11 door with real applications nobody here wrote: opensc's pkcs11-tool through
 * Debian's p11-kit-client.so, checked by openssl. Outside CI a missing tool skips these tests
 * with a message; in CI (.ci/run installs p11-kit-modules and opensc) it fails them.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { startLocalCluster, type LocalCluster } from '../../src/index.js';
import { P11_KIT_CLIENT, servePkcs11, type Pkcs11Door } from '../../src/pkcs11/index.js';
import { pkcs11Uri } from '../../src/pkcs11/uri.js';
import { parseReferencePem, referencePem } from '../../src/cluster-client/reference-pem.js';

const run = promisify(execFile);
const PIN = 'cu1:cu1-password';
/** libp11's OpenSSL engine (libengine-pkcs11-openssl). */
const ENGINE = ['/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so', '/usr/lib/aarch64-linux-gnu/engines-3/pkcs11.so'].some((p) => existsSync(p));

describe('pkcs11: pkcs11-tool and openssl through p11-kit-client.so', function () {
  this.timeout(60_000);
  let dir: string;
  let cluster: LocalCluster;
  let door: Pkcs11Door;
  let env: NodeJS.ProcessEnv;
  const tool = async (...args: string[]) => {
    try {
      const { stdout, stderr } = await run('pkcs11-tool', ['--module', P11_KIT_CLIENT, ...args], { env, encoding: 'buffer' });
      return { code: 0, out: stdout.toString('latin1'), err: stderr.toString() };
    } catch (e) {
      const err = e as { code: number; stdout: Buffer; stderr: Buffer };
      return { code: err.code, out: err.stdout.toString('latin1'), err: err.stderr.toString() };
    }
  };

  before(async function () {
    const missing = [existsSync(P11_KIT_CLIENT) ? null : `${P11_KIT_CLIENT} (p11-kit-modules)`, existsSync('/usr/bin/pkcs11-tool') ? null : 'pkcs11-tool (opensc)'].filter(Boolean);
    if (missing.length) {
      if (process.env.CI) throw new Error(`the PKCS #11 tests need ${missing.join(' and ')}; .ci/run installs them`);
      console.log(`      (skipped: install ${missing.join(' and ')} to run the PKCS #11 application tests)`);
      this.skip();
    }
    dir = mkdtempSync(join(tmpdir(), 'strongroom-p11-'));
    // Non-FIPS: Debian 12's client wraps with RSA PKCS #1 v1.5 only (OAEP fails in the client), which FIPS mode refuses.
    cluster = await startLocalCluster({ mode: 'non-fips', adminPassword: 'admin-password', passwordCost: 10, users: [{ username: 'cu1', password: 'cu1-password', role: 'crypto-user' }] });
    door = await servePkcs11({ cluster, socket: join(dir, 'run', 'pkcs11.sock'), objectsFolder: join(dir, 'run', 'objects'), clusterId: 'test' });
    env = { ...process.env, P11_KIT_SERVER_ADDRESS: `unix:path=${door.socket}` };
  });
  after(async () => {
    await door?.close();
    await cluster?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('lists the slot, the token and the mechanisms, in a folder only its owner enters', async () => {
    const slots = await tool('-L');
    expect(slots.out).to.contain('token label        : Strongroom');
    expect(slots.out).to.contain('login required');
    const mechanisms = (await tool('-M')).out;
    for (const m of ['RSA-PKCS-KEY-PAIR-GEN', 'ECDSA-KEY-PAIR-GEN', 'ECDSA,', 'RSA-PKCS-PSS', 'SHA256-RSA-PKCS', 'SHA256, digest']) expect(mechanisms).to.contain(m);
    const { statSync } = await import('node:fs');
    expect(statSync(join(dir, 'run')).mode & 0o777).to.equal(0o700);
  });

  it('refuses a wrong PIN and a PIN that is not user:password, by CK_RV', async () => {
    expect((await tool('--login', '--pin', 'cu1:wrong-password', '-O')).err).to.contain('CKR_PIN_INCORRECT');
    expect((await tool('--login', '--pin', '1234', '-O')).err).to.contain('CKR_PIN_INCORRECT');
  });

  it('generates EC P-256, P-384 and RSA-2048 pairs in the HSM and signs (ECDSA over a hash, SHA256-RSA-PKCS, RSA-PSS); openssl verifies with the public key read back', async () => {
    const data = join(dir, 'data.txt');
    writeFileSync(data, 'pay 100 to bob');
    const { createHash, createPublicKey, verify, constants } = await import('node:crypto');
    const digest = join(dir, 'data.sha256');
    writeFileSync(digest, createHash('sha256').update(readFileSync(data)).digest());
    expect((await tool('--login', '--pin', PIN, '--keypairgen', '--key-type', 'EC:prime256v1', '--label', 'p11-ec', '--id', '01')).code).to.equal(0);
    expect((await tool('--login', '--pin', PIN, '--keypairgen', '--key-type', 'rsa:2048', '--label', 'p11-rsa', '--id', '02')).code).to.equal(0);
    const publicOf = async (id: string) => {
      const file = join(dir, `pub-${id}.der`);
      expect((await tool('--login', '--pin', PIN, '--read-object', '--type', 'pubkey', '--id', id, '-o', file)).code).to.equal(0);
      return createPublicKey({ key: readFileSync(file), format: 'der', type: 'spki' });
    };
    const sign = async (id: string, mechanism: string, input: string, ...extra: string[]) => {
      const out = join(dir, `${id}-${mechanism}.sig`);
      const r = await tool('--login', '--pin', PIN, '--sign', '-m', mechanism, '--id', id, '-i', input, '-o', out, ...extra);
      expect(r.code, r.err).to.equal(0);
      return readFileSync(out);
    };
    const ec = await publicOf('01');
    expect(verify('sha256', readFileSync(data), { key: ec, dsaEncoding: 'der' }, await sign('01', 'ECDSA', digest, '--signature-format', 'openssl'))).to.equal(true);
    expect((await tool('--login', '--pin', PIN, '--keypairgen', '--key-type', 'EC:secp384r1', '--label', 'p11-p384', '--id', '03')).code).to.equal(0);
    const digest384 = join(dir, 'data.sha384');
    writeFileSync(digest384, createHash('sha384').update(readFileSync(data)).digest());
    // pkcs11-tool 0.23 cannot read a P-384 public key back ("cannot create EVP_PKEY"): the cluster gives it.
    const session = await cluster.login('cu1', 'cu1-password');
    const p384 = await session.listKeys({ filter: { attributes: { label: 'p11-p384', class: 'public-key' } } }).then(({ keys }) => session.send({ op: 'exportKey', handle: keys[0]!.handle, format: 'spki' })).finally(() => session.logout());
    const p384Key = createPublicKey({ key: Buffer.from(p384.keyData as Uint8Array), format: 'der', type: 'spki' });
    expect(verify('sha384', readFileSync(data), { key: p384Key, dsaEncoding: 'der' }, await sign('03', 'ECDSA', digest384, '--signature-format', 'openssl'))).to.equal(true);
    const rsa = await publicOf('02');
    expect(verify('sha256', readFileSync(data), rsa, await sign('02', 'SHA256-RSA-PKCS', data))).to.equal(true);
    const pss = await sign('02', 'RSA-PKCS-PSS', digest, '--hash-algorithm', 'SHA256', '--mgf', 'MGF1-SHA256');
    expect(verify('sha256', readFileSync(data), { key: rsa, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, pss)).to.equal(true);
    // The private keys never left: their values are sensitive.
    const objects = (await tool('--login', '--pin', PIN, '-O')).out;
    expect(objects).to.contain('Private Key Object; EC').and.to.contain('label:      p11-ec').and.to.contain('sensitive');
  });

  it('RSA decryption in the HSM: what openssl encrypts with the public key (OAEP with SHA-256, and PKCS #1 v1.5) decrypts through the door', async () => {
    const made = await tool('--login', '--pin', PIN, '--keypairgen', '--key-type', 'rsa:2048', '--usage-decrypt', '--label', 'p11-enc', '--id', '05');
    expect(made.code, made.err).to.equal(0);
    const pub = join(dir, 'enc.pub.der');
    expect((await tool('--login', '--pin', PIN, '--read-object', '--type', 'pubkey', '--id', '05', '-o', pub)).code).to.equal(0);
    const { createPublicKey, publicEncrypt, constants } = await import('node:crypto');
    const key = createPublicKey({ key: readFileSync(pub), format: 'der', type: 'spki' });
    const secret = Buffer.from('the vault code is 4711');
    for (const [mechanism, padding, extra] of [
      ['RSA-PKCS-OAEP', constants.RSA_PKCS1_OAEP_PADDING, ['--hash-algorithm', 'SHA256', '--mgf', 'MGF1-SHA256']],
      ['RSA-PKCS', constants.RSA_PKCS1_PADDING, []],
    ] as const) {
      const ciphertext = join(dir, `ct-${mechanism}.bin`);
      writeFileSync(ciphertext, publicEncrypt({ key, padding, oaepHash: 'sha256' }, secret));
      const out = await tool('--login', '--pin', PIN, '--decrypt', '-m', mechanism, '--id', '05', '-i', ciphertext, ...extra);
      expect(out.code, out.err).to.equal(0);
      expect(Buffer.from(out.out, 'latin1').subarray(-secret.length).toString(), mechanism).to.equal(secret.toString());
    }
  });

  it('imports an openssl RSA key (--write-object) that signs raw bytes (RSA-PKCS, RSA-X-509) openssl recovers; an AES key wrapped with RSA-PKCS unwraps to a key that decrypts what it encrypted', async () => {
    const pem = join(dir, 'imported.pem');
    await run('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', pem]);
    await run('openssl', ['pkey', '-in', pem, '-outform', 'DER', '-out', join(dir, 'imported.der')]);
    const imported = await tool('--login', '--pin', PIN, '--write-object', join(dir, 'imported.der'), '--type', 'privkey', '--id', '10', '--label', 'imported', '--usage-sign');
    expect(imported.code, imported.err).to.equal(0);
    expect(imported.out).to.contain('Private Key Object; RSA').and.to.contain('sensitive');
    // TLS 1.0's MD5 ‖ SHA-1 is no DigestInfo: CKM_RSA_PKCS pads it as it is.
    const raw = join(dir, 'md5sha1.bin');
    writeFileSync(raw, Buffer.concat([createHash('md5').update('hello').digest(), createHash('sha1').update('hello').digest()]));
    for (const [mechanism, mode] of [['RSA-PKCS', 'pkcs1'], ['RSA-X-509', 'none']] as const) {
      const input = mode === 'none' ? join(dir, 'block.bin') : raw;
      if (mode === 'none') writeFileSync(input, Buffer.concat([Buffer.from([0, 1]), Buffer.alloc(254, 0x5a)]));
      const signature = join(dir, `imported-${mode}.sig`);
      const signed = await tool('--login', '--pin', PIN, '--sign', '-m', mechanism, '--id', '10', '-i', input, '-o', signature);
      expect(signed.code, signed.err).to.equal(0);
      const recovered = await run('openssl', ['pkeyutl', '-verifyrecover', '-inkey', pem, '-in', signature, '-pkeyopt', `rsa_padding_mode:${mode}`], { encoding: 'buffer' });
      expect(recovered.stdout, mechanism).to.deep.equal(readFileSync(input));
    }
    // Wrap and unwrap through the tool (RSA PKCS #1 v1.5, which Debian 12's client carries).
    expect((await tool('--login', '--pin', PIN, '--keypairgen', '--key-type', 'rsa:2048', '--label', 'p11-wrap', '--id', '11', '--usage-wrap')).code).to.equal(0);
    expect((await tool('--login', '--pin', PIN, '--keygen', '--key-type', 'AES:32', '--label', 'p11-aes', '--id', '12', '--extractable')).code).to.equal(0);
    const wrapped = join(dir, 'aes.wrapped');
    const w = await tool('--login', '--pin', PIN, '--wrap', '-m', 'RSA-PKCS', '--id', '11', '--application-id', '12', '-o', wrapped);
    expect(w.code, w.err).to.equal(0);
    expect(readFileSync(wrapped)).to.have.length(256);
    const u = await tool('--login', '--pin', PIN, '--unwrap', '-m', 'RSA-PKCS', '--id', '11', '-i', wrapped, '--key-type', 'AES:', '--application-id', '13', '--application-label', 'p11-aes-unwrapped');
    expect(u.code, u.err).to.equal(0);
    const block = join(dir, 'block16');
    writeFileSync(block, 'sixteen bytes!!!');
    const encrypted = join(dir, 'block16.enc');
    expect((await tool('--login', '--pin', PIN, '--encrypt', '-m', 'AES-ECB', '--id', '12', '-i', block, '-o', encrypted)).code).to.equal(0);
    const decrypted = join(dir, 'block16.dec');
    expect((await tool('--login', '--pin', PIN, '--decrypt', '-m', 'AES-ECB', '--id', '13', '-i', encrypted, '-o', decrypted)).code).to.equal(0);
    expect(readFileSync(decrypted, 'utf8')).to.equal('sixteen bytes!!!');
  });

  it('a generic secret made in the HSM MACs with SHA256-HMAC (the tool verifies it), and C_SetAttributeValue changes its CKA_ID', async () => {
    // CloudHSM's PKCS #11 defaults give a new key no usages: the template asks for signing.
    const made = await tool('--login', '--pin', PIN, '--keygen', '--key-type', 'GENERIC:32', '--usage-sign', '--label', 'p11-mac', '--id', '03');
    expect(made.code, made.err).to.equal(0);
    expect(made.out).to.contain('Secret Key Object; Generic secret length 32');
    const data = join(dir, 'mac-data.txt');
    writeFileSync(data, 'pay 100 to bob');
    const mac = join(dir, 'mac.bin');
    const signed = await tool('--login', '--pin', PIN, '--sign', '-m', 'SHA256-HMAC', '--id', '03', '-i', data, '-o', mac);
    expect(signed.code, signed.err).to.equal(0);
    expect(readFileSync(mac)).to.have.length(32);
    const verified = await tool('--login', '--pin', PIN, '--verify', '-m', 'SHA256-HMAC', '--id', '03', '-i', data, '--signature-file', mac);
    expect(verified.out).to.contain('Signature is valid');
    writeFileSync(data, 'pay 900 to bob');
    expect((await tool('--login', '--pin', PIN, '--verify', '-m', 'SHA256-HMAC', '--id', '03', '-i', data, '--signature-file', mac)).out).to.contain('Invalid signature');
    expect((await tool('--login', '--pin', PIN, '--set-id', '0a', '--id', '03', '--type', 'secrkey')).code).to.equal(0);
    expect((await tool('--login', '--pin', PIN, '-O', '--type', 'secrkey')).out).to.contain('label:      p11-mac').and.to.contain('ID:         0a');
  });

  it('OpenSSL with libp11\'s engine: a self-signed certificate by each HSM key verifies, and s_server offloads TLS 1.3 and 1.2 to the HSM (RSA-PSS and ECDSA)', async function () {
    if (!ENGINE) {
      if (process.env.CI) throw new Error('the OpenSSL test needs libengine-pkcs11-openssl; .ci/run installs it');
      console.log('      (skipped: install libengine-pkcs11-openssl for the OpenSSL engine and TLS offload test)');
      this.skip();
    }
    const sslEnv = { ...env, PKCS11_MODULE_PATH: P11_KIT_CLIENT };
    for (const [label, signature] of [['p11-ec', 'ECDSA'], ['p11-rsa', 'RSA-PSS']] as const) {
      const uri = `pkcs11:token=Strongroom;object=${label};type=private;pin-value=${PIN}`;
      const cert = join(dir, `${label}.pem`);
      await run('openssl', ['req', '-new', '-x509', '-engine', 'pkcs11', '-keyform', 'engine', '-key', uri, '-subj', `/CN=${label}`, '-days', '2', '-out', cert], { env: sslEnv });
      expect((await run('openssl', ['verify', '-CAfile', cert, cert])).stdout).to.equal(`${cert}: OK\n`);
      for (const version of ['-tls1_3', '-tls1_2']) {
        const server = spawn('openssl', ['s_server', '-engine', 'pkcs11', '-keyform', 'engine', '-key', uri, '-cert', cert, '-accept', '127.0.0.1:0', '-naccept', '1', '-www'], { env: sslEnv });
        try {
          const port = await new Promise<string>((resolve, reject) => {
            let text = '';
            server.stdout.on('data', (d: Buffer) => {
              text += d.toString();
              const m = /ACCEPT (?:0\.0\.0\.0|127\.0\.0\.1|\[::\]):(\d+)/.exec(text);
              if (m) resolve(m[1]!);
            });
            server.once('exit', () => reject(new Error(`s_server exited: ${text}`)));
          });
          const client = await new Promise<string>((resolve) => {
            const c = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, version, '-CAfile', cert, '-verify_return_error'], { env: sslEnv });
            let text = '';
            c.stdout.on('data', (d: Buffer) => (text += d.toString()));
            c.stderr.on('data', (d: Buffer) => (text += d.toString()));
            c.once('exit', () => resolve(text));
            c.stdin.end('GET / HTTP/1.0\r\n\r\n');
          });
          expect(client, `${label} ${version}`).to.contain('Verification: OK').and.to.contain(`Peer signature type: ${signature}`).and.to.match(new RegExp(`New, TLSv1\\.${version === '-tls1_3' ? 3 : 2}, Cipher is `));
        } finally {
          server.kill();
        }
      }
    }
  });

  it('nginx (master_process off) offloads TLS 1.3 and 1.2 to the ECDSA and RSA keys in the HSM, loading them by the URIs `key pkcs11-uri` makes of their reference PEMs', async function () {
    if (!ENGINE || !existsSync('/usr/sbin/nginx')) {
      if (process.env.CI) throw new Error('the nginx test needs nginx and libengine-pkcs11-openssl; .ci/run installs them');
      console.log('      (skipped: install nginx and libengine-pkcs11-openssl for the nginx TLS offload test)');
      this.skip();
    }
    // The keys by reference PEM (key generate-file --encoding reference-pem), as a migration runbook hands them over.
    const session = await cluster.login('cu1', 'cu1-password');
    let uris: string[];
    try {
      const visible = (await session.listKeys({ maxItems: 10_000 })).keys;
      uris = ['p11-ec', 'p11-rsa'].map((label) => {
        const pem = referencePem(visible.find((k) => k.attributes.label === label && k.attributes.class === 'private-key')!);
        return pkcs11Uri(visible.find((k) => k.handle === parseReferencePem(pem)!.keyReference)!, visible);
      });
    } finally {
      await session.logout();
    }
    expect(uris).to.deep.equal(['pkcs11:object=p11-ec;id=%01;type=private', 'pkcs11:object=p11-rsa;id=%02;type=private']);
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const root = join(dir, 'nginx');
    mkdirSync(join(root, 'logs'), { recursive: true });
    // The engine must be initialised by OpenSSL's configuration, or nginx finds it "not initialised".
    writeFileSync(join(root, 'openssl.cnf'), `openssl_conf = init\n[init]\nengines = engines\n[engines]\npkcs11 = pkcs11\n[pkcs11]\nengine_id = pkcs11\nMODULE_PATH = ${P11_KIT_CLIENT}\ninit = 1\n`);
    const keys = uris.map((uri, i) => `    ssl_certificate ${join(dir, i ? 'p11-rsa.pem' : 'p11-ec.pem')};\n    ssl_certificate_key "engine:pkcs11:${uri};pin-value=${PIN}";\n`).join('');
    writeFileSync(
      join(root, 'nginx.conf'),
      `daemon off;\nmaster_process off;\npid ${root}/nginx.pid;\nevents {}\nhttp {\n  access_log off;\n  client_body_temp_path ${root}/body;\n  server {\n    listen 127.0.0.1:${port} ssl;\n    ssl_protocols TLSv1.2 TLSv1.3;\n${keys}    location / { return 200 "served with a key in the HSM\\n"; }\n  }\n}\n`,
    );
    const nginx = spawn('nginx', ['-p', root, '-e', join(root, 'logs', 'error.log'), '-c', join(root, 'nginx.conf')], { env: { ...env, OPENSSL_CONF: join(root, 'openssl.cnf') } });
    try {
      let exited = false;
      nginx.once('exit', () => (exited = true));
      for (;;) {
        const up = await new Promise<boolean>((resolve) => createConnection(port, '127.0.0.1').once('connect', function (this: Socket) { this.destroy(); resolve(true); }).once('error', () => resolve(false)));
        if (up) break;
        if (exited) throw new Error(`nginx exited: ${readFileSync(join(root, 'logs', 'error.log'), 'utf8')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      for (const [cert, sigalgs, signature] of [['p11-ec.pem', 'ECDSA+SHA256', 'ECDSA'], ['p11-rsa.pem', 'RSA-PSS+SHA256', 'RSA-PSS']] as const) {
        for (const version of ['-tls1_3', '-tls1_2']) {
          const client = await new Promise<string>((resolve) => {
            const c = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, version, '-sigalgs', sigalgs, '-CAfile', join(dir, cert), '-verify_return_error', '-ign_eof'], { env });
            let text = '';
            c.stdout.on('data', (d: Buffer) => (text += d.toString()));
            c.stderr.on('data', (d: Buffer) => (text += d.toString()));
            c.once('exit', () => resolve(text));
            c.stdin.end('GET / HTTP/1.0\r\n\r\n');
          });
          expect(client, `${signature} ${version}: ${client} ${readFileSync(join(root, "logs", "error.log"), "utf8")}`).to.contain('Verification: OK').and.to.contain(`Peer signature type: ${signature}`).and.to.contain('served with a key in the HSM');
        }
      }
    } finally {
      nginx.kill();
    }
  });

  it('GnuTLS: p11tool --test-sign signs with each HSM key and verifies against the public key in the token', async function () {
    if (!existsSync('/usr/bin/p11tool')) {
      if (process.env.CI) throw new Error('the GnuTLS test needs p11tool (gnutls-bin); .ci/run installs it');
      console.log('      (skipped: install gnutls-bin for the p11tool test)');
      this.skip();
    }
    for (const [label, algorithm] of [['p11-ec', 'ECDSA-SHA256'], ['p11-rsa', 'RSA-SHA256']] as const) {
      const { stdout, stderr } = await run('p11tool', ['--provider', P11_KIT_CLIENT, '--login', '--test-sign', `pkcs11:token=Strongroom;object=${label};type=private`], { env: { ...env, GNUTLS_PIN: PIN } });
      expect(stdout + stderr).to.contain(`Signing using ${algorithm}... ok`).and.to.contain('Verifying against public key in the token... ok');
    }
  });

  it('Java 17 (SunPKCS11): with a certificate written beside the key (pkcs11-tool --write-object), keytool lists the key entries with their chains, keytool -genkeypair makes a key in the HSM that jarsigner signs a jar with, and 8 threads sign at once; the certificate outlives the door', async function () {
    if (!ENGINE || !existsSync('/usr/bin/java')) {
      if (process.env.CI) throw new Error('the Java test needs openjdk-17-jdk-headless and libengine-pkcs11-openssl; .ci/run installs them');
      console.log('      (skipped: install openjdk-17-jdk-headless and libengine-pkcs11-openssl for the Java test)');
      this.skip();
    }
    // The certificate the OpenSSL test made with the HSM key, as DER, written beside the key (same CKA_ID).
    const der = join(dir, 'p11-ec.der');
    await run('openssl', ['x509', '-in', join(dir, 'p11-ec.pem'), '-outform', 'DER', '-out', der]);
    const written = await tool('--login', '--pin', PIN, '--write-object', der, '--type', 'cert', '--id', '01', '--label', 'p11-ec');
    expect(written.code, written.err).to.equal(0);
    const config = join(dir, 'java.cfg');
    // CloudHSM's PKCS #11 defaults give a new private key no usage: Java asks for CKA_SIGN, as it must with CloudHSM.
    writeFileSync(config, `name = strongroom\nlibrary = ${P11_KIT_CLIENT}\nslot = 1\nattributes(generate, CKO_PRIVATE_KEY, *) = {\n  CKA_SIGN = true\n}\n`);
    const store = ['-keystore', 'NONE', '-storetype', 'PKCS11', '-providerClass', 'sun.security.pkcs11.SunPKCS11', '-providerArg', config, '-storepass', PIN];
    // keytool makes a key pair in the HSM (a session key, copied to a token key by C_CopyObject with the alias as CKA_ID) and its certificate.
    await run('keytool', ['-genkeypair', '-alias', 'java-made', '-keyalg', 'EC', '-groupname', 'secp256r1', '-dname', 'CN=java-made', ...store], { env });
    const listed = await run('keytool', ['-list', '-v', ...store], { env });
    for (const alias of ['p11-ec', 'java-made']) expect(listed.stdout).to.match(new RegExp(`^Alias name: ${alias}\nEntry type: PrivateKeyEntry\nCertificate chain length: 1\nCertificate\\[1\\]:\nOwner: CN=${alias}\n`, 'm'));
    // jarsigner signs a jar with the HSM key; jarsigner -verify (no HSM) accepts it.
    mkdirSync(join(dir, 'jar'));
    writeFileSync(join(dir, 'jar', 'hello.txt'), 'signed in the HSM\n');
    const jar = join(dir, 'app.jar');
    await run('jar', ['--create', '--file', jar, '-C', join(dir, 'jar'), '.']);
    await run('jarsigner', [...store, jar, 'java-made'], { env });
    const verified = await run('jarsigner', ['-verify', '-verbose', '-certs', jar]);
    expect(verified.stdout).to.match(/^sm\s+\d+ .* hello\.txt$/m).and.to.contain('- Signed by "CN=java-made"').and.to.contain('jar verified.');
    const signer = await run('java', [join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'Signer.java'), config, PIN, 'p11-ec'], { env });
    expect(signer.stdout).to.equal('signed 40 of 40 with SHA256withECDSA\n');
    // A new door on the same folder still has the certificate (a token object, kept in a file only its owner reads).
    await door.close();
    door = await servePkcs11({ cluster, socket: join(dir, 'run', 'pkcs11.sock'), objectsFolder: join(dir, 'run', 'objects'), clusterId: 'test' });
    expect((await tool('--login', '--pin', PIN, '-O', '--type', 'cert')).out).to.contain('Certificate Object; type = X.509 cert').and.to.contain('label:      p11-ec');
  });

  it('a key made through the cluster (as session.crypto or the CLI make them) is an object for PKCS #11 and a PKCS #11 key signs through the cluster; random bytes come from the HSM', async () => {
    const session = await cluster.login('cu1', 'cu1-password');
    try {
      await session.send({ op: 'generateKeyPair', keyType: 'ec', curve: 'secp384r1', publicAttributes: { token: true, label: 'made-elsewhere' }, privateAttributes: { token: true, sign: true, label: 'made-elsewhere' } });
      // And the other way: the pair pkcs11-tool made signs through the cluster (as session.crypto or the CLI would use it).
      const { keys } = await session.listKeys({ filter: { attributes: { label: 'p11-ec' } } });
      const priv = keys.find((k) => k.attributes.class === 'private-key')!;
      const pub = keys.find((k) => k.attributes.class === 'public-key')!;
      const data = new TextEncoder().encode('made by pkcs11-tool, used by the cluster');
      const { signature } = await session.send({ op: 'sign', handle: priv.handle, mechanism: { name: 'ecdsa', hash: 'sha256' }, data });
      expect((await session.send({ op: 'verify', handle: pub.handle, mechanism: { name: 'ecdsa', hash: 'sha256' }, data, signature })).valid).to.equal(true);
    } finally {
      await session.logout();
    }
    const listed = (await tool('--login', '--pin', PIN, '-O')).out;
    expect(listed).to.contain('label:      made-elsewhere');
    const random = await tool('--generate-random', '32');
    expect(random.code).to.equal(0);
    expect(Buffer.from(random.out, 'latin1')).to.have.length(32);
  });

  it('a connection that sends what is not the protocol is closed; the door and the HSM go on', async () => {
    const before = (await cluster.hsmInfo())[0]!.keys;
    await new Promise<void>((resolve) => {
      const s = createConnection(door.socket, () => {
        s.write(Buffer.from([0]));
        // A frame claiming call 99 with a signature of its own.
        const body = Buffer.from('00000063000000017500000000000000', 'hex');
        const header = Buffer.alloc(12);
        header.writeUInt32BE(0x10, 0);
        header.writeUInt32BE(body.length, 8);
        s.write(Buffer.concat([header, body]));
      });
      s.resume(); // read the version byte, so the close is seen
      s.on('close', () => resolve());
      s.on('error', () => resolve());
    });
    expect((await tool('-L')).out).to.contain('token label        : Strongroom');
    expect((await cluster.hsmInfo())[0]!.keys).to.equal(before);
  });
});
