/**
 * Real clients nobody here wrote, driving the door: jose signs and verifies JWTs and encrypts JWEs
 * with HSM keys (it only uses the global `crypto`, so the door's Crypto is installed for it, as
 * `strongroom/register` does), and @peculiar/x509 makes a self-signed certificate and a CSR whose
 * private key never leaves the HSM. Results are checked with Node's native WebCrypto.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { webcrypto, X509Certificate as NodeX509 } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { expect } from 'chai';
import * as jose from 'jose';
import { installGlobalCrypto } from '../../src/subtle/index.js';
import { openDoor, type CryptoKey, type CryptoKeyPair, type DoorFixture } from '../helpers/door.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

let f: DoorFixture;
before(async () => {
  f = await openDoor();
});
after(() => f.close());

/** Runs `body` with the door's Crypto as globalThis.crypto, then puts Node's back. */
async function withDoorAsGlobal<T>(body: () => Promise<T>): Promise<T> {
  const restore = installGlobalCrypto(f.crypto);
  try {
    return await body();
  } finally {
    restore();
  }
}

describe('subtle: real clients', function () {
  this.timeout(30_000);

  it('jose signs JWTs with HSM keys (ES256, PS256, EdDSA, HS256) that verify with Node WebCrypto', async () => {
    const cases: [string, () => Promise<CryptoKeyPair | CryptoKey>][] = [
      ['ES256', () => f.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']) as Promise<CryptoKeyPair>],
      ['PS256', () => f.subtle.generateKey({ name: 'RSA-PSS', hash: 'SHA-256', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) }, false, ['sign', 'verify']) as Promise<CryptoKeyPair>],
      ['EdDSA', () => f.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']) as Promise<CryptoKeyPair>],
      ['HS256', () => f.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, true, ['sign', 'verify']) as Promise<CryptoKey>],
    ];
    for (const [alg, make] of cases) {
      const keys = await make();
      const signing = 'privateKey' in keys ? keys.privateKey : keys;
      const { jwt, payload, exported } = await withDoorAsGlobal(async () => {
        const token = await new jose.SignJWT({ sub: 'alice', scope: 'hsm' }).setProtectedHeader({ alg }).setIssuedAt().setExpirationTime('5m').sign(signing);
        const verifying = 'publicKey' in keys ? keys.publicKey : keys;
        const verified = await jose.jwtVerify(token, verifying);
        const jwk = await jose.exportJWK(verifying);
        return { jwt: token, payload: verified.payload, exported: jwk };
      });
      expect(payload.sub, alg).to.equal('alice');
      // Node's own WebCrypto (the global is Node's again) verifies the HSM's signature.
      const nativeKey = await jose.importJWK(exported, alg);
      expect((await jose.jwtVerify(jwt, nativeKey)).payload.scope, alg).to.equal('hsm');
    }
  });

  it('jose encrypts and decrypts JWEs with HSM keys (RSA-OAEP-256 + A256GCM, ECDH-ES + A128GCM), Node decrypts them too', async () => {
    const rsa = (await f.subtle.generateKey({ name: 'RSA-OAEP', hash: 'SHA-256', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) }, true, ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'])) as CryptoKeyPair;
    const ec = (await f.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits'])) as CryptoKeyPair;
    for (const [alg, enc, pair] of [
      ['RSA-OAEP-256', 'A256GCM', rsa],
      ['ECDH-ES', 'A128GCM', ec],
    ] as const) {
      const { jwe, plaintext, privateJwk } = await withDoorAsGlobal(async () => {
        const token = await new jose.CompactEncrypt(new TextEncoder().encode('meet me at the HSM')).setProtectedHeader({ alg, enc }).encrypt(pair.publicKey);
        const opened = await jose.compactDecrypt(token, pair.privateKey);
        return { jwe: token, plaintext: new TextDecoder().decode(opened.plaintext), privateJwk: await jose.exportJWK(pair.privateKey) };
      });
      expect(plaintext, alg).to.equal('meet me at the HSM');
      const nativeKey = await jose.importJWK(privateJwk, alg);
      expect(new TextDecoder().decode((await jose.compactDecrypt(jwe, nativeKey)).plaintext), alg).to.equal('meet me at the HSM');
    }
  });

  it('@peculiar/x509 makes a self-signed certificate and a CSR signed inside the HSM', async () => {
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const keys = (await f.subtle.generateKey(alg, false, ['sign', 'verify'])) as CryptoKeyPair;
    const crypto = f.crypto as unknown as Crypto;
    x509.cryptoProvider.set(crypto);
    const cert = await x509.X509CertificateGenerator.createSelfSigned(
      {
        serialNumber: '01ab',
        name: 'CN=Strongroom test, O=Strongroom',
        notBefore: new Date('2026-01-01T00:00:00Z'),
        notAfter: new Date('2027-01-01T00:00:00Z'),
        keys,
        signingAlgorithm: alg,
        extensions: [new x509.BasicConstraintsExtension(true, 0, true), await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto)],
      },
      crypto,
    );
    // Checked by code that is not ours: Node's X509Certificate and @peculiar/x509 on native WebCrypto.
    const nodeCert = new NodeX509(cert.toString('pem'));
    expect(nodeCert.subject).to.include('CN=Strongroom test');
    expect(nodeCert.verify(nodeCert.publicKey)).to.equal(true);
    expect(await cert.verify({ signatureOnly: true }, webcrypto as unknown as Crypto)).to.equal(true);

    // No crypto argument: the provider set above is ours.
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=app.example', keys, signingAlgorithm: alg });
    x509.cryptoProvider.set(webcrypto as unknown as Crypto);
    const parsed = new x509.Pkcs10CertificateRequest(csr.toString('pem'));
    expect(parsed.subject).to.equal('CN=app.example');
    expect(await parsed.verify(webcrypto as unknown as Crypto)).to.equal(true);
  });

  it('strongroom/register replaces globalThis.crypto from HSM_USER and HSM_PASSWORD, and jose works on it unchanged', async () => {
    const run = promisify(execFile);
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'samples/register-jose.ts'], {
      cwd: ROOT,
      timeout: 60_000,
      env: { ...process.env, HSM_USER: 'jose_app', HSM_PASSWORD: 'jose-app-password' },
    });
    expect(stdout).to.match(/globalThis\.crypto is Strongroom's: true/);
    expect(stdout).to.match(/JWT verified, sub=alice/);
    expect(stdout).to.match(/private key export refused: InvalidAccessError/);
    const missing = await run(process.execPath, ['--import', 'tsx', 'samples/register-jose.ts'], { cwd: ROOT, timeout: 60_000, env: { ...process.env, HSM_USER: '', HSM_PASSWORD: '' } }).then(
      () => null,
      (e: { stderr: string }) => e.stderr,
    );
    expect(missing).to.match(/set HSM_USER and HSM_PASSWORD/);
  });

  it('node --import strongroom/register runs an unchanged plain JavaScript app on the HSM (the README command)', async () => {
    const dir = join(ROOT, 'test', '.tmp');
    mkdirSync(dir, { recursive: true });
    const app = join(dir, 'plain-app.mjs');
    writeFileSync(
      app,
      [
        "const key = await crypto.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);",
        "const tag = await crypto.subtle.sign('HMAC', key, new TextEncoder().encode('x'));",
        'console.log(`${crypto.constructor.name} ${tag.byteLength}`);',
      ].join('\n'),
    );
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'strongroom/register', app], {
      cwd: ROOT,
      timeout: 60_000,
      env: { ...process.env, HSM_USER: 'app', HSM_PASSWORD: 'app-password' },
    });
    expect(stdout.trim()).to.equal('HsmCrypto 32');
  });
});

type Crypto = webcrypto.Crypto;
