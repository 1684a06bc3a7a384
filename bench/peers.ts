/**
 * The WebCrypto-over-PKCS#11 peer: node-webcrypto-p11 (PeculiarVentures) on SoftHSM v2 (Debian's
 * softhsm2, loaded into this process through pkcs11js), beside Strongroom's door over one
 * in-process member and Node's native WebCrypto, the same operations one call at a time (the peer
 * runs every call on one PKCS #11 session: a second call in flight is CKR_OPERATION_ACTIVE), and
 * the door again with 32 in flight, as an application with many requests uses it.
 * The target: the door at 3 × the peer or more on every operation the peer has. CloudHSM's
 * published figures per HSM are printed beside, as the reference a user compares with.
 */
import { execFileSync } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startLocalCluster } from '../src/index.js';
import { interleaved, median } from './measure.js';
import { SOFTHSM, softhsmToken } from './pkcs11.js';
import { progress, table } from './report.js';

type Subtle = webcrypto.SubtleCrypto;
type Pair = webcrypto.CryptoKeyPair;
type Key = webcrypto.CryptoKey;

const IN_FLIGHT = 32;

/** The operations, on keys each implementation makes itself (non-extractable, as in an HSM). */
async function cases(subtle: Subtle): Promise<Record<string, () => Promise<unknown>>> {
  const kib = new Uint8Array(1024).fill(7);
  const iv = new Uint8Array(12).fill(1);
  const rsa = (await subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, false, ['sign', 'verify'])) as Pair;
  const ec = (await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])) as Pair;
  const aes = (await subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt'])) as Key;
  const hmac = (await subtle.generateKey({ name: 'HMAC', hash: 'SHA-256', length: 256 }, false, ['sign', 'verify'])) as Key;
  const ecSig = await subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, ec.privateKey, kib);
  return {
    'RSA-2048 sign': () => subtle.sign('RSASSA-PKCS1-v1_5', rsa.privateKey, kib),
    'ECDSA P-256 sign': () => subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, ec.privateKey, kib),
    'ECDSA P-256 verify': () => subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, ec.publicKey, ecSig, kib),
    'AES-256-GCM encrypt 1 KiB': () => subtle.encrypt({ name: 'AES-GCM', iv }, aes, kib),
    'HMAC-SHA256 1 KiB': () => subtle.sign('HMAC', hmac, kib),
    'SHA-256 1 KiB': () => subtle.digest('SHA-256', kib),
  };
}

/**
 * Whether the peer works on this machine (what `bench/setup.sh` ends with): node-webcrypto-p11
 * makes an ECDSA P-256 key pair on a new SoftHSM token in a folder of its own and signs with it,
 * and Node's WebCrypto verifies the signature with the public key the peer exports. Says which
 * versions it found; throws what failed.
 */
export async function checkPeer(): Promise<string> {
  if (!SOFTHSM) throw new Error('no SoftHSM here (/usr/lib/softhsm/libsofthsm2.so): install Debian\'s softhsm2');
  const dir = mkdtempSync(join(tmpdir(), 'strongroom-bench-peer-check-'));
  try {
    process.env.SOFTHSM2_CONF = softhsmToken(dir, 'check');
    const { Crypto: P11Crypto } = await import('node-webcrypto-p11');
    const p11 = new P11Crypto({ library: SOFTHSM, slot: 0, readWrite: true, pin: '1234', name: 'SoftHSM' });
    const ec = { name: 'ECDSA', namedCurve: 'P-256' } as const;
    const pair = (await p11.subtle.generateKey(ec, false, ['sign', 'verify'])) as unknown as Pair;
    const data = new TextEncoder().encode('strongroom bench peer check');
    const signature = await p11.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, pair.privateKey as never, data);
    const spki = await p11.subtle.exportKey('spki', pair.publicKey as never);
    const publicKey = await webcrypto.subtle.importKey('spki', spki, ec, false, ['verify']);
    if (!(await webcrypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, publicKey, signature, data))) {
      throw new Error("node-webcrypto-p11 on SoftHSM made an ECDSA signature that Node's WebCrypto does not verify");
    }
    const version = (pkg: string) => (JSON.parse(readFileSync(createRequire(import.meta.url).resolve(`${pkg}/package.json`), 'utf8')) as { version: string }).version;
    const softhsm = execFileSync('softhsm2-util', ['--version'], { encoding: 'utf8' }).trim();
    return `the peer works: node-webcrypto-p11 ${version('node-webcrypto-p11')} (pkcs11js ${version('pkcs11js')}) on SoftHSM ${softhsm} signed, and Node's WebCrypto verified the signature`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchPeers(seconds: number, rounds: number): Promise<void> {
  if (!SOFTHSM) {
    console.log('\nPeer table skipped: no SoftHSM here; `npm run bench:setup` installs it (Debian\'s softhsm2) and checks the peer.');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'strongroom-bench-peers-'));
  // SoftHSM reads its configuration when the library initialises, in this process.
  process.env.SOFTHSM2_CONF = softhsmToken(dir, 'peers');
  const { Crypto: P11Crypto } = await import('node-webcrypto-p11');
  const p11 = new P11Crypto({ library: SOFTHSM, slot: 0, readWrite: true, pin: '1234', name: 'SoftHSM' });
  const cluster = await startLocalCluster({ adminPassword: 'bench-admin-pw', users: [{ username: 'bench', password: 'bench-password', role: 'crypto-user' }] });
  const session = await cluster.login('bench', 'bench-password');
  try {
    progress('peers', 'making keys in SoftHSM, in the HSM and in Node');
    const impls = [await cases(webcrypto.subtle), await cases(session.crypto.subtle as unknown as Subtle), await cases(p11.subtle as unknown as Subtle)];
    const rows: string[][] = [];
    for (const name of Object.keys(impls[0]!)) {
      progress('peers', name);
      // native, door and peer one at a time; the door with IN_FLIGHT.
      const runs = [...impls.map((impl) => [impl[name]!, 1] as const), [impls[1]![name]!, IN_FLIGHT] as const];
      const rates: number[][] = runs.map(() => []);
      for (let round = 0; round < rounds; round++) {
        const measured = await interleaved(runs.map(([op, inFlight]) => ({ op, inFlight })), seconds, 8, 10);
        measured.forEach((r, k) => rates[k]!.push(r));
      }
      const over = (k: number) => median(rates[k]!.map((v, r) => v / rates[2]![r]!)).toFixed(2);
      rows.push([name, ...rates.slice(0, 3).map((r) => median(r).toFixed(0)), over(1), median(rates[3]!).toFixed(0), over(3)]);
    }
    console.log(`\nPeers: the p11 peer is node-webcrypto-p11 on SoftHSM v2 in this process (one call at a time: it has one PKCS #11 session); the door is session.crypto over one in-process member.\n`);
    table(
      ['operation', 'native ops/s (1)', 'door ops/s (1)', 'node-webcrypto-p11 + SoftHSM ops/s (1)', 'door / peer (1)', `door ops/s (${IN_FLIGHT})`, `door (${IN_FLIGHT}) / peer`],
      rows,
      { id: 'peers', title: 'The door beside node-webcrypto-p11 on SoftHSM' },
    );
    console.log('\nCloudHSM publishes about 1,000 RSA-2048 and (hsm2m.medium) 1,500 ECDSA P-256 signatures per second per HSM (its performance page).');
  } finally {
    await session.logout();
    await cluster.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href && process.argv[2] === '--check') {
  console.log(await checkPeer());
}
