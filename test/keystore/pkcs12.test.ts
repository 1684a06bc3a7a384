/**
 * PKCS #12 interop with the openssl command: files it makes import into the HSM (keytool
 * -importkeystore's path), and files a PKCS12 store writes (keys exported encrypted by the HSM)
 * open with `openssl pkcs12`.
 */
import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { expect } from 'chai';
import { HsmError, startLocalCluster, type HsmSession, type LocalCluster } from '../../src/index.js';
import { IssuingCa, KeyStore, generateHsmKeyPair } from '../../src/keystore/index.js';

describe('keystore: PKCS #12 files and openssl', function () {
  this.timeout(60_000);
  let cluster: LocalCluster;
  let app: HsmSession;
  let dir: string;
  const sh = (args: string[]) => execFileSync('openssl', args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

  before(async () => {
    cluster = await startLocalCluster({ adminPassword: 'admin-password', profile: 'unlimited', passwordCost: 10, users: [{ username: 'app', password: 'app-password', role: 'crypto-user' }] });
    app = await cluster.login('app', 'app-password');
    dir = mkdtempSync(join(tmpdir(), 'strongroom-p12-'));
    // An openssl CA and leaves (EC and RSA), exported as PKCS #12 with the CA certificate.
    sh(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=OpenSSL Test CA', '-days', '30', '-addext', 'basicConstraints=critical,CA:TRUE']);
    for (const [name, alg] of [['ec-leaf', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']], ['rsa-leaf', ['-newkey', 'rsa:2048']]] as const) {
      sh(['req', ...alg, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
      sh(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '10']);
      sh(['pkcs12', '-export', '-inkey', `${name}.key`, '-in', `${name}.crt`, '-certfile', 'ca.crt', '-name', name, '-passout', 'pass:p12-password', '-out', `${name}.p12`]);
    }
  });
  after(async () => {
    await cluster?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('imports openssl-made files: the key into the HSM as a non-extractable token key, the chain beside it', async () => {
    const ks = KeyStore.getInstance('CloudHSM', app);
    await ks.load(null, null);
    const wrong = await ks.importPkcs12(readFileSync(join(dir, 'ec-leaf.p12')), 'not-the-password').then(() => null, (e: HsmError) => e);
    expect(wrong?.message).to.match(/^keystore: wrong password/);
    for (const name of ['ec-leaf', 'rsa-leaf']) {
      expect(await ks.importPkcs12(readFileSync(join(dir, `${name}.p12`)), 'p12-password')).to.deep.equal([name]);
      expect(ks.getCertificateChain(name)!.map((c) => c.subject)).to.deep.equal([`CN=${name}`, 'CN=OpenSSL Test CA']);
      const { keys } = await app.send({ op: 'findKeys', filter: { attributes: { label: name } } });
      expect(keys.map((k) => [k.attributes.class, k.attributes.token, k.attributes.extractable])).to.deep.equal([['private-key', true, false]]);
      const key = await ks.getKey(name);
      const data = new TextEncoder().encode(name);
      const params = name === 'ec-leaf' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5' };
      const signature = await app.crypto.subtle.sign(params, key!, data);
      const publicKey = await ks.getCertificate(name)!.publicKey.export(key!.algorithm as never, ['verify'], webcrypto as never);
      expect(await webcrypto.subtle.verify(params, publicKey, signature, data), name).to.equal(true);
    }
    const again = await ks.importPkcs12(readFileSync(join(dir, 'ec-leaf.p12')), 'p12-password').then(() => null, (e: HsmError) => e);
    expect(again?.message).to.match(/alias ec-leaf exists already; nothing was imported/);
    // A CloudHSM store refuses to load a file with keys in it, saying what to do instead.
    const refused = await KeyStore.getInstance('CloudHSM', app).load(readFileSync(join(dir, 'ec-leaf.p12')), 'p12-password').then(() => null, (e: HsmError) => e);
    expect(refused?.message).to.match(/import the file with importPkcs12/);
  });

  it('imports all or nothing: a key the HSM refuses takes back the keys imported before it', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const { writePkcs12 } = await import('../../src/keystore/pkcs12.js');
    // DSA: a key type the HSM does not hold.
    const encrypted = (type: 'ec' | 'dsa') => {
      const { privateKey } = type === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('dsa', { modulusLength: 1024, divisorLength: 160 });
      return new Uint8Array(privateKey.export({ format: 'der', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'mixed-password' }));
    };
    const file = await writePkcs12(
      [
        { alias: 'accepted-first', kind: 'key', chain: [], encryptedKey: encrypted('ec') },
        { alias: 'refused-second', kind: 'key', chain: [], encryptedKey: encrypted('dsa') },
      ],
      'mixed-password',
    );
    const ks = KeyStore.getInstance('CloudHSM', app);
    await ks.load(null, null);
    const e = await ks.importPkcs12(file, 'mixed-password').then(() => null, (err: HsmError) => err);
    expect(e?.code, e?.message).to.equal('KEY_TYPE_INCONSISTENT');
    expect(e?.message).to.match(/nothing was imported$/);
    expect(await ks.containsAlias('accepted-first')).to.equal(false);
    expect((await app.send({ op: 'findKeys', filter: { attributes: { label: 'accepted-first' } } })).keys).to.deep.equal([]);
  });

  it('a PKCS12 store writes a file whose keys the HSM exported encrypted, which openssl opens and which reloads into a new session', async () => {
    const root = await IssuingCa.createRoot(app, { subject: 'CN=P12 Root', alias: 'p12-root', algorithm: 'ECDSA-P256' });
    const pair = await generateHsmKeyPair(app, 'p12-leaf', 'ECDSA-P256', { extractable: true });
    const csr = await x509.Pkcs10CertificateRequestGenerator.create(
      { name: 'CN=p12-leaf', keys: { privateKey: pair.privateKey, publicKey: pair.publicKey } as never, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } },
      app.crypto as never,
    );
    const leaf = await root.signCsr(csr.toString('pem'));
    const ks = KeyStore.getInstance('PKCS12', app);
    await ks.load(null, null);
    await ks.setKeyEntry('p12-leaf', pair.privateKey, [leaf, root.certificate]);
    // A non-extractable key cannot go into a file.
    const locked = await generateHsmKeyPair(app, 'locked', 'ECDSA-P256');
    const lockedCsr = await x509.Pkcs10CertificateRequestGenerator.create(
      { name: 'CN=locked', keys: { privateKey: locked.privateKey, publicKey: locked.publicKey } as never, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } },
      app.crypto as never,
    );
    const lockedStore = KeyStore.getInstance('PKCS12', app);
    await lockedStore.load(null, null);
    await lockedStore.setKeyEntry('locked', locked.privateKey, [await root.signCsr(lockedCsr.toString('pem')), root.certificate]);
    expect((await lockedStore.store('file-password').then(() => null, (e: HsmError) => e))?.code).to.equal('KEY_NOT_EXTRACTABLE');

    const file = join(dir, 'exported.p12');
    writeFileSync(file, await ks.store('file-password'));
    const text = sh(['pkcs12', '-in', file, '-passin', 'pass:file-password', '-nodes']);
    expect(text).to.include('friendlyName: p12-leaf');
    expect(text).to.match(/-----BEGIN PRIVATE KEY-----/);
    expect((text.match(/BEGIN CERTIFICATE/g) ?? []).length).to.equal(2);
    // The private key openssl extracted is the leaf certificate's.
    writeFileSync(join(dir, 'extracted.pem'), text);
    const fromKey = sh(['pkey', '-in', 'extracted.pem', '-pubout']);
    writeFileSync(join(dir, 'leaf.pem'), leaf.toString('pem'));
    expect(fromKey).to.equal(sh(['x509', '-in', 'leaf.pem', '-noout', '-pubkey']));

    const later = await cluster.login('app', 'app-password');
    const reloaded = KeyStore.getInstance('PKCS12', later);
    await reloaded.load(readFileSync(file), 'file-password');
    expect(await reloaded.aliases()).to.deep.equal(['p12-leaf']);
    const key = await reloaded.getKey('p12-leaf');
    const signature = await later.crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key!, new Uint8Array(2));
    expect(await webcrypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, await leaf.publicKey.export(webcrypto as never), signature, new Uint8Array(2))).to.equal(true);
    // Stored again under another password, it still opens with openssl.
    writeFileSync(join(dir, 'rekeyed.p12'), await reloaded.store('another-password'));
    expect(sh(['pkcs12', '-in', 'rekeyed.p12', '-passin', 'pass:another-password', '-nodes'])).to.match(/BEGIN PRIVATE KEY/);
    await later.logout();
  });
});
