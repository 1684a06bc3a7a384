/**
 * Quick start: keys that never leave the HSM.
 *
 * Run on its own (`npx tsx samples/quickstart.ts`) it starts a one-member cluster itself;
 * `npm start` runs it against the cluster it started.
 */
import { webcrypto } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { HsmError, keyRef, startLocalCluster, type LocalCluster } from 'strongroom';

export async function quickstart(
  cluster: LocalCluster,
  user: { username: string; password: string },
  log: (line: string) => void = console.log,
): Promise<void> {
  const session = await cluster.login(user.username, user.password);
  log(`logged in as ${session.username} (${session.role})`);

  // The WebCrypto door: session.crypto is a standard Crypto whose keys live in the HSM.
  const subtle = session.crypto.subtle;
  const ecdsa = { name: 'ECDSA', hash: 'SHA-256' };
  const signer = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
  const invoice = new TextEncoder().encode('invoice #42: 100 EUR');
  const webSignature = await subtle.sign(ecdsa, signer.privateKey, invoice);
  // Anyone verifies with the public key, here with Node's own WebCrypto.
  const spki = await subtle.exportKey('spki', signer.publicKey);
  const nodePublic = await webcrypto.subtle.importKey('spki', spki, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
  log(`WebCrypto: signed with an HSM ECDSA key; Node's own WebCrypto verifies it: ${await webcrypto.subtle.verify(ecdsa, nodePublic, webSignature, invoice)}`);
  try {
    await subtle.exportKey('pkcs8', signer.privateKey);
  } catch (e) {
    log(`WebCrypto: exporting the private key is refused: ${(e as Error).name}`);
  }

  // An AES-256 key made inside the HSM. extractable: false means its bytes can never leave.
  const { handle: aes } = await session.send({
    op: 'generateKey',
    keyType: 'aes',
    lengthBytes: 32,
    attributes: { label: 'quickstart-aes', encrypt: true, decrypt: true, extractable: false },
  });
  log(`generated AES-256 key ${keyRef(aes)}`);

  const message = new TextEncoder().encode('attack at dawn');
  const sealed = await session.send({ op: 'encrypt', handle: aes, mechanism: { name: 'aes-gcm' }, data: message });
  log(`encrypted ${message.length} bytes with AES-GCM; the HSM chose the ${sealed.iv!.length}-byte IV`);
  const opened = await session.send({ op: 'decrypt', handle: aes, mechanism: { name: 'aes-gcm', iv: sealed.iv! }, data: sealed.data });
  log(`decrypted: "${new TextDecoder().decode(opened.data)}"`);

  // An ECDSA P-256 key pair: the private key signs inside the HSM, the public key verifies.
  const pair = await session.send({
    op: 'generateKeyPair',
    keyType: 'ec',
    curve: 'secp256r1',
    privateAttributes: { label: 'quickstart-ec', sign: true, extractable: false },
    publicAttributes: { label: 'quickstart-ec:public', verify: true },
  });
  const { signature } = await session.send({
    op: 'sign',
    handle: pair.privateHandle,
    mechanism: { name: 'ecdsa', hash: 'sha256' },
    data: message,
  });
  const { valid } = await session.send({
    op: 'verify',
    handle: pair.publicHandle,
    mechanism: { name: 'ecdsa', hash: 'sha256' },
    data: message,
    signature,
  });
  log(`signed with ${keyRef(pair.privateHandle)}; signature valid: ${valid}`);

  // The HSM refuses to hand out a non-extractable key.
  try {
    await session.send({ op: 'exportKey', handle: aes, format: 'raw' });
    log('exported the AES key (this should not happen)');
  } catch (e) {
    if (!(e instanceof HsmError)) throw e;
    log(`export refused: ${e.code}: ${e.message}`);
  }

  // Keys are found by attribute, as with `key list --filter attr.label=…`.
  const { keys } = await session.send({ op: 'findKeys', filter: { attributes: { label: 'quickstart-ec:public' } } });
  log(`found ${keys.length} key labelled quickstart-ec:public, KCV ${keys[0]?.attributes['check-value']}`);

  await session.logout();
  log('logged out; the session keys are gone');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const cluster = await startLocalCluster({
    adminPassword: 'admin-password',
    users: [{ username: 'app', password: 'app-password', role: 'crypto-user' }],
  });
  try {
    await quickstart(cluster, { username: 'app', password: 'app-password' });
  } finally {
    await cluster.close();
  }
}
