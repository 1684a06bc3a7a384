/**
 * An issuing CA in the HSM, kept in a CloudHSM-style KeyStore: a three-level chain (root,
 * issuing CA, a signing leaf) whose private keys never leave the HSM, stored to a PKCS #12 file
 * (certificates only: the keys stay in the HSM), reloaded in a new session, and the leaf key used
 * to sign.
 *
 * Run on its own: `npx tsx samples/keystore-ca.ts`.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as x509 from '@peculiar/x509';
import { startLocalCluster, type LocalCluster } from 'strongroom';
import { IssuingCa, KeyStore, generateHsmKeyPair } from 'strongroom/keystore';

export async function keystoreCa(cluster: LocalCluster, user: { username: string; password: string }, log: (line: string) => void = console.log): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'strongroom-keystore-'));
  const file = join(dir, 'ca.p12');
  try {
    const session = await cluster.login(user.username, user.password);
    const root = await IssuingCa.createRoot(session, { subject: 'CN=Example Root CA, O=Example', alias: 'example-root', pathLength: 1 });
    const issuing = await root.issueIntermediate({ subject: 'CN=Example Issuing CA, O=Example', alias: 'example-issuing', pathLength: 0 });
    // The leaf's key is made in the HSM too; its CSR is signed there, then the issuing CA signs the CSR.
    const leafKeys = await generateHsmKeyPair(session, 'example-signer', 'ECDSA-P256');
    const csr = await x509.Pkcs10CertificateRequestGenerator.create(
      { name: 'CN=Example document signer, O=Example', keys: { privateKey: leafKeys.privateKey, publicKey: leafKeys.publicKey } as never, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } },
      session.crypto as never,
    );
    const leaf = await issuing.signCsr(csr.toString('pem'), { usages: ['codeSigning'] });
    log(`issued: ${leaf.subject} <- ${issuing.certificate.subject} <- ${root.certificate.subject}`);

    const store = KeyStore.getInstance('CloudHSM', session);
    await store.load(null, null);
    await store.setKeyEntry('example-signer', leafKeys.privateKey, [leaf, ...issuing.chain]);
    await store.setKeyEntry('example-issuing', issuing.privateKey, issuing.chain);
    await store.setCertificateEntry('example-root-cert', root.certificate);
    await store.storeFile(file, 'store-password');
    log(`stored ${await store.size()} aliases; the file holds certificates only: ${(await store.aliases()).join(', ')}`);
    await session.logout();

    // A new session, a new process's view: reload the file, find the key in the HSM by alias, sign.
    const later = await cluster.login(user.username, user.password);
    const reloaded = KeyStore.getInstance('CloudHSM', later);
    await reloaded.loadFile(file, 'store-password');
    const key = await reloaded.getKey('example-signer');
    const chain = reloaded.getCertificateChain('example-signer')!;
    const document = new TextEncoder().encode('contract v1');
    const signature = await later.crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key!, document);
    const publicKey = await chain[0]!.publicKey.export({ name: 'ECDSA', namedCurve: 'P-256' }, ['verify'], webcrypto as never);
    log(`reloaded: chain of ${chain.length}, signed with the HSM key, verified with the certificate: ${await webcrypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, publicKey, signature, document)}`);
    const wrong = await KeyStore.getInstance('CloudHSM', later).loadFile(file, 'wrong-password').then(() => 'loaded', (e: Error) => e.message);
    log(`wrong password: ${wrong}`);
    await later.logout();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const cluster = await startLocalCluster({
    adminPassword: 'admin-password',
    users: [{ username: 'ca_operator', password: 'ca-operator-password', role: 'crypto-user' }],
  });
  try {
    await keystoreCa(cluster, { username: 'ca_operator', password: 'ca-operator-password' });
  } finally {
    await cluster.close();
  }
}
