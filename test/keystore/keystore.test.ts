/**
 * The KeyStore door with CloudHSM's semantics (CLOUDHSM.md §7): keys in the HSM by label,
 * certificates in the local PKCS #12 file, and every error path.
 */
import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { expect } from 'chai';
import { startLocalCluster, type HsmSession, type LocalCluster } from '../../src/index.js';
import { IssuingCa, KeyStore, generateHsmKeyPair } from '../../src/keystore/index.js';
import { refusal } from '../helpers/refusal.js';


describe('keystore: KeyStore.getInstance(\'CloudHSM\')', function () {
  this.timeout(60_000);
  let cluster: LocalCluster;
  let app: HsmSession;
  let other: HsmSession;
  let root: IssuingCa;
  let dir: string;

  /** A leaf certificate for an HSM key pair, issued by `root`. */
  async function leafFor(alias: string): Promise<{ keys: Awaited<ReturnType<typeof generateHsmKeyPair>>; cert: x509.X509Certificate }> {
    const keys = await generateHsmKeyPair(app, alias, 'ECDSA-P256');
    const csr = await x509.Pkcs10CertificateRequestGenerator.create(
      { name: `CN=${alias}`, keys: { privateKey: keys.privateKey, publicKey: keys.publicKey } as never, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } },
      app.crypto as never,
    );
    return { keys, cert: await root.signCsr(csr.toString('pem')) };
  }

  before(async () => {
    cluster = await startLocalCluster({
      adminPassword: 'admin-password',
      members: 2,
      profile: 'unlimited',
      passwordCost: 10,
      users: [
        { username: 'app', password: 'app-password', role: 'crypto-user' },
        { username: 'other', password: 'other-password', role: 'crypto-user' },
      ],
    });
    app = await cluster.login('app', 'app-password');
    other = await cluster.login('other', 'other-password');
    root = await IssuingCa.createRoot(app, { subject: 'CN=KeyStore Test Root', alias: 'ks-root', algorithm: 'ECDSA-P256' });
    dir = mkdtempSync(join(tmpdir(), 'strongroom-ks-'));
  });
  after(async () => {
    await cluster?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('must be loaded first; only the CloudHSM type and a session are accepted', async () => {
    const ks = KeyStore.getInstance('CloudHSM', app);
    expect((await refusal(ks.aliases())).message).to.match(/not loaded; call load\(null, null\)/);
    expect(() => KeyStore.getInstance('JKS' as never, app)).to.throw(/KeyStore type: CloudHSM or PKCS12, got "JKS"/);
  });

  it('finds HSM keys by label, including keys made outside the KeyStore; aliases and containsAlias look at both', async () => {
    await app.send({ op: 'generateKey', keyType: 'generic-secret', lengthBytes: 32, attributes: { token: true, sign: true, label: 'outside-hmac' } });
    const ks = KeyStore.getInstance('CloudHSM', app);
    await ks.load(null, null);
    expect(await ks.containsAlias('outside-hmac')).to.equal(true);
    expect(await ks.isKeyEntry('outside-hmac')).to.equal(true);
    expect(await ks.entryInstanceOf('outside-hmac', 'SecretKeyEntry')).to.equal(true);
    const key = await ks.getKey('outside-hmac');
    expect(key!.algorithm.name).to.equal('HMAC');
    expect((await app.crypto.subtle.sign('HMAC', key!, new Uint8Array(1))).byteLength).to.equal(32);
    expect(await ks.aliases()).to.include.members(['outside-hmac', 'ks-root']);
    expect(await ks.getKey('no-such-alias')).to.equal(null);
    expect(ks.getCertificate('no-such-alias')).to.equal(null);
    expect(ks.getCertificateChain('outside-hmac')).to.equal(null);
    // Another user's key is not there for this user.
    const theirs = KeyStore.getInstance('CloudHSM', other);
    await theirs.load(null, null);
    expect(await theirs.getKey('outside-hmac')).to.equal(null);
  });

  it('setKeyEntry: stores a token key labelled by the alias with its chain; refuses a missing, mismatched or broken chain and an alias in use', async () => {
    const ks = KeyStore.getInstance('CloudHSM', app);
    await ks.load(null, null);
    const { keys, cert } = await leafFor('signer-1');
    expect((await refusal(ks.setKeyEntry('signer-1', keys.privateKey, []))).message).to.match(/a private key needs its certificate chain/);
    const { cert: otherCert } = await leafFor('signer-2');
    expect((await refusal(ks.setKeyEntry('signer-1', keys.privateKey, [otherCert, root.certificate]))).message).to.match(/the first certificate \(CN=signer-2\) is not for this key/);
    const stranger = await IssuingCa.createRoot(app, { subject: 'CN=Stranger Root', alias: 'stranger-root', algorithm: 'ECDSA-P256' });
    expect((await refusal(ks.setKeyEntry('signer-1', keys.privateKey, [cert, stranger.certificate]))).message).to.match(
      /the chain does not link: link 0: CN=signer-1 was issued by CN=KeyStore Test Root, but the next certificate is CN=Stranger Root/,
    );
    await ks.setKeyEntry('signer-1', keys.privateKey, [cert, root.certificate]);
    expect(ks.getCertificateChain('signer-1')!.map((c) => c.subject)).to.deep.equal(['CN=signer-1', 'CN=KeyStore Test Root']);
    expect(ks.getCertificateAlias(cert)).to.equal('signer-1');
    expect(ks.getCreationDate('signer-1')!.getTime()).to.equal(cert.notBefore.getTime());
    expect(await ks.entryInstanceOf('signer-1', 'PrivateKeyEntry')).to.equal(true);
    expect((await refusal(ks.setKeyEntry('signer-1', keys.privateKey, [cert, root.certificate]))).message).to.match(/alias signer-1 exists already/);
    // An alias another HSM key already has is refused too.
    const { keys: clash } = await leafFor('clash');
    expect((await refusal(ks.setKeyEntry('signer-2', clash.privateKey, [otherCert, root.certificate]))).message).to.match(/not for this key|the HSM holds another key labelled signer-2/);

    // The entry's key is a token key, synced to every member.
    const [info] = (await app.send({ op: 'findKeys', filter: { attributes: { label: 'signer-1' } } })).keys;
    expect(info!.attributes.token).to.equal(true);
    expect((await app.sendToMember(1, { op: 'getAttributes', handle: info!.handle })).attributes.label).to.equal('signer-1');
  });

  it('setKeyEntry imports a key that is not in the HSM yet, as a token key', async () => {
    const ks = KeyStore.getInstance('CloudHSM', app);
    await ks.load(null, null);
    const soft = await webcrypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, true, ['encrypt', 'decrypt']);
    await ks.setKeyEntry('imported-aes', soft as never);
    const key = await ks.getKey('imported-aes');
    expect(key!.algorithm.name).to.equal('AES-GCM');
    expect(key!.extractable).to.equal(false);
    const iv = new Uint8Array(12);
    const sealed = await app.crypto.subtle.encrypt({ name: 'AES-GCM', iv }, key!, new Uint8Array(4));
    const plain = await webcrypto.subtle.decrypt({ name: 'AES-GCM', iv }, soft, sealed);
    expect(new Uint8Array(plain)).to.deep.equal(new Uint8Array(4));
    expect((await refusal(ks.setKeyEntry('secret-with-chain', soft as never, [root.certificate]))).message).to.match(/a secret key takes no certificate chain/);
  });

  it('setCertificateEntry stores certificates locally; deleteEntry removes local entries only; destroyKey deletes the HSM keys (owner only)', async () => {
    const ks = KeyStore.getInstance('CloudHSM', app);
    await ks.load(null, null);
    await ks.setCertificateEntry('trusted-root', root.certificate);
    expect(ks.isCertificateEntry('trusted-root')).to.equal(true);
    expect(await ks.entryInstanceOf('trusted-root', 'TrustedCertificateEntry')).to.equal(true);
    expect((await refusal(ks.setCertificateEntry('trusted-root', root.certificate))).message).to.match(/alias trusted-root exists already/);
    expect((await refusal(ks.setCertificateEntry('ks-root', root.certificate))).message).to.match(/alias ks-root exists already/);
    // An expired certificate is refused, saying so.
    x509.cryptoProvider.set(webcrypto as never);
    const oldKeys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const expired = await x509.X509CertificateGenerator.createSelfSigned({ name: 'CN=Expired', notBefore: new Date(2000, 0, 1), notAfter: new Date(2001, 0, 1), keys: oldKeys as never, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } });
    expect((await refusal(ks.setCertificateEntry('expired', expired))).message).to.match(/certificate 0 \(CN=Expired\) is not valid now/);

    await ks.deleteEntry('trusted-root');
    expect(await ks.containsAlias('trusted-root')).to.equal(false);
    expect((await refusal(ks.deleteEntry('trusted-root'))).message).to.match(/alias trusted-root: no such entry/);
    expect((await refusal(ks.deleteEntry('ks-root'))).message).to.match(/has no local entry; its HSM key is deleted only with destroyKey/);

    const mine = await generateHsmKeyPair(app, 'to-destroy', 'ECDSA-P256');
    expect(mine.privateHandle).to.be.a('number');
    const theirs = KeyStore.getInstance('CloudHSM', other);
    await theirs.load(null, null);
    // Another user sees the public key (public keys are visible to every crypto user) but may not delete it.
    const notOwner = await refusal(theirs.destroyKey('to-destroy'));
    expect(notOwner.code).to.equal('NOT_KEY_OWNER');
    expect(notOwner.message).to.match(/only the owner of key 0x[0-9a-f]{16} \(app\)/);
    expect(await ks.destroyKey('to-destroy')).to.equal(2);
    expect(await ks.containsAlias('to-destroy')).to.equal(false);
  });

  it('store and load: a password-protected PKCS #12 file of certificates that openssl reads; a wrong password is refused', async () => {
    const ks = KeyStore.getInstance('CloudHSM', app);
    await ks.load(null, null);
    const { keys, cert } = await leafFor('stored-signer');
    await ks.setKeyEntry('stored-signer', keys.privateKey, [cert, root.certificate]);
    await ks.setCertificateEntry('stored-root', root.certificate);
    const file = join(dir, 'store.p12');
    await ks.storeFile(file, 'store-password');

    const again = KeyStore.getInstance('CloudHSM', app);
    await again.loadFile(file, 'store-password');
    expect(again.getCertificateChain('stored-signer')!.map((c) => c.subject)).to.deep.equal(['CN=stored-signer', 'CN=KeyStore Test Root']);
    expect(again.isCertificateEntry('stored-root')).to.equal(true);
    const key = await again.getKey('stored-signer');
    const signature = await app.crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key!, new Uint8Array(3));
    expect(await webcrypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, await cert.publicKey.export(webcrypto as never), signature, new Uint8Array(3))).to.equal(true);

    // A store with no entries (after deleting the last one, say) stores and loads too, and still checks its password.
    const empty = KeyStore.getInstance('CloudHSM', app);
    await empty.load(null, null);
    const emptyFile = await empty.store('empty-password');
    await KeyStore.getInstance('CloudHSM', app).load(emptyFile, 'empty-password');
    expect((await refusal(KeyStore.getInstance('CloudHSM', app).load(emptyFile, 'not-it'))).message).to.match(/^keystore: wrong password/);

    const wrong = await refusal(KeyStore.getInstance('CloudHSM', app).loadFile(file, 'not-the-password'));
    expect(wrong.message).to.match(/^keystore: wrong password/);
    writeFileSync(join(dir, 'garbage.p12'), 'not pkcs12');
    expect((await refusal(KeyStore.getInstance('CloudHSM', app).loadFile(join(dir, 'garbage.p12'), 'x'))).message).to.match(/not a PKCS #12 file/);

    const listing = execFileSync('openssl', ['pkcs12', '-in', file, '-nokeys', '-passin', 'pass:store-password'], { encoding: 'utf8' });
    expect(listing).to.include('friendlyName: stored-signer');
    expect(listing).to.include('friendlyName: stored-root');
    expect((listing.match(/BEGIN CERTIFICATE/g) ?? []).length).to.equal(3);
  });
});
