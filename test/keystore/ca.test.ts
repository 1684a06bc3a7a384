/**
 * An issuing CA in the HSM: root, intermediate and leaf from a CSR, verified by openssl and by a
 * real TLS handshake; a CSR signed in the HSM verified by openssl.
 */
import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, get } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { expect } from 'chai';
import { HsmError, startLocalCluster, type HsmSession, type LocalCluster } from '../../src/index.js';
import { IssuingCa, generateHsmKeyPair } from '../../src/keystore/index.js';

const openssl = (...args: string[]) => execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

describe('keystore: an issuing CA in the HSM', function () {
  this.timeout(60_000);
  let cluster: LocalCluster;
  let session: HsmSession;
  let dir: string;
  before(async () => {
    cluster = await startLocalCluster({ adminPassword: 'admin-password', profile: 'unlimited', passwordCost: 10, users: [{ username: 'ca', password: 'ca-password', role: 'crypto-user' }] });
    session = await cluster.login('ca', 'ca-password');
    dir = mkdtempSync(join(tmpdir(), 'strongroom-ca-'));
  });
  after(async () => {
    await cluster?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('issues a root, an intermediate and a leaf from a CSR that openssl verifies and a TLS client trusts', async () => {
    const root = await IssuingCa.createRoot(session, { subject: 'CN=Strongroom Test Root, O=Strongroom', alias: 'root-ca', pathLength: 1 });
    const issuing = await root.issueIntermediate({ subject: 'CN=Strongroom Test Issuing CA, O=Strongroom', alias: 'issuing-ca', algorithm: 'RSA-2048', pathLength: 0 });
    expect(issuing.chain.map((c) => c.subject)).to.deep.equal(['CN=Strongroom Test Issuing CA, O=Strongroom', 'CN=Strongroom Test Root, O=Strongroom']);

    // The CA keys are non-extractable token keys in the HSM, labelled by alias.
    const { keys } = await session.send({ op: 'findKeys', filter: { attributes: { label: 'root-ca' } } });
    expect(keys).to.have.length(1);
    expect(keys[0]!.attributes).to.include({ token: true, extractable: false, class: 'private-key' });
    const refused = await session.send({ op: 'exportKey', handle: keys[0]!.handle, format: 'pkcs8' }).then(() => null, (e: HsmError) => e.code);
    expect(refused).to.equal('KEY_NOT_EXTRACTABLE');

    // A server's own key pair, in software (Node's TLS needs the key itself), and its CSR.
    x509.cryptoProvider.set(webcrypto as never);
    const serverKeys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: 'CN=localhost',
      keys: serverKeys as never,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'localhost' }, { type: 'ip', value: '127.0.0.1' }])],
    });
    const leaf = await issuing.signCsr(csr.toString('pem'), { usages: ['serverAuth'] });
    expect(leaf.issuer).to.equal(issuing.certificate.subject);

    writeFileSync(join(dir, 'root.pem'), root.certificate.toString('pem'));
    writeFileSync(join(dir, 'issuing.pem'), issuing.certificate.toString('pem'));
    writeFileSync(join(dir, 'leaf.pem'), leaf.toString('pem'));
    expect(openssl('verify', '-CAfile', join(dir, 'root.pem'), '-untrusted', join(dir, 'issuing.pem'), join(dir, 'leaf.pem')).trim()).to.equal(`${join(dir, 'leaf.pem')}: OK`);
    expect(Buffer.from(leaf.rawData).length).to.be.greaterThan(300); // DER too

    const key = `-----BEGIN PRIVATE KEY-----\n${Buffer.from(await webcrypto.subtle.exportKey('pkcs8', serverKeys.privateKey)).toString('base64')}\n-----END PRIVATE KEY-----\n`;
    const server = createServer({ key, cert: [leaf.toString('pem'), issuing.certificate.toString('pem')].join('\n') }, (_req, res) => res.end('issued by the HSM'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const body = await new Promise<string>((resolve, reject) => {
      get({ host: '127.0.0.1', port, path: '/', ca: root.certificate.toString('pem'), servername: 'localhost' }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve(text));
      }).on('error', reject);
    });
    server.close();
    expect(body).to.equal('issued by the HSM');
  });

  it('a CSR signed in the HSM verifies with openssl req -verify', async () => {
    const pair = await generateHsmKeyPair(session, 'csr-key', 'ECDSA-P256');
    const csr = await x509.Pkcs10CertificateRequestGenerator.create(
      { name: 'CN=hsm-held key', keys: { privateKey: pair.privateKey, publicKey: pair.publicKey } as never, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } },
      session.crypto as never,
    );
    writeFileSync(join(dir, 'hsm.csr'), csr.toString('pem'));
    const err = execFileSync('sh', ['-c', `openssl req -verify -noout -in ${join(dir, 'hsm.csr')} 2>&1`], { encoding: 'utf8' });
    expect(err).to.match(/verify OK/);
  });

  it('refuses a request whose signature does not verify, or that is not a request', async () => {
    const root = await IssuingCa.createRoot(session, { subject: 'CN=Refusing Root', alias: 'refusing-root', algorithm: 'ECDSA-P256' });
    const e = await root.signCsr('not a csr').then(() => null, (err: HsmError) => err);
    expect(e?.code).to.equal('BAD_REQUEST');
    expect(e?.message).to.match(/^csr: not a PKCS #10 request/);
    x509.cryptoProvider.set(webcrypto as never);
    const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=tampered', keys: keys as never, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } });
    const der = new Uint8Array(csr.rawData);
    der[der.length - 5]! ^= 1;
    const bad = await root.signCsr(der).then(() => null, (err: HsmError) => err);
    expect(bad?.message).to.match(/csr: the request's signature does not verify|csr: not a PKCS #10 request/);
  });

  it('reopens a CA from its alias and chain in a new session and keeps issuing', async () => {
    const root = await IssuingCa.createRoot(session, { subject: 'CN=Reopened Root', alias: 'reopened-root', algorithm: 'ECDSA-P256' });
    const later = await cluster.login('ca', 'ca-password');
    const again = await IssuingCa.open(later, 'reopened-root', root.chain);
    const sub = await again.issueIntermediate({ subject: 'CN=Sub of reopened', alias: 'reopened-sub', algorithm: 'ECDSA-P256' });
    expect(await sub.certificate.verify({ publicKey: root.certificate.publicKey }, webcrypto as never)).to.equal(true);
    await later.logout();
  });
});
