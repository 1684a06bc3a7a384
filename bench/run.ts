/**
 * Benchmarks: operations per second of Strongroom's in-process member (through a logged-in
 * session, the path an application takes) against Node's native crypto.webcrypto, measured in the
 * same run, sequentially and with 32 calls in flight. Run with `npm run bench`.
 *
 * Environment: BENCH_SECONDS (default 1) per measurement.
 */
import { webcrypto } from 'node:crypto';
import { cpus } from 'node:os';
import { startLocalCluster } from '../src/index.js';

const subtle = webcrypto.subtle;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 1);
const CONCURRENCY = 32;

async function measure(op: () => Promise<unknown>, inFlight: number): Promise<number> {
  for (let i = 0; i < 20; i++) await op(); // warm up
  const deadline = performance.now() + SECONDS * 1000;
  let count = 0;
  const worker = async () => {
    while (performance.now() < deadline) {
      await op();
      count += 1;
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: inFlight }, worker));
  return count / ((performance.now() - start) / 1000);
}

interface Case {
  name: string;
  native: () => Promise<unknown>;
  strongroom: () => Promise<unknown>;
}

async function main(): Promise<void> {
  const cluster = await startLocalCluster({
    adminPassword: 'bench-admin-pw',
    users: [{ username: 'bench', password: 'bench-password', role: 'crypto-user' }],
  });
  const s = await cluster.login('bench', 'bench-password');
  const kib = webcrypto.getRandomValues(new Uint8Array(1024));
  const iv = webcrypto.getRandomValues(new Uint8Array(12));

  const rsaNative = (await subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, false, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const rsa = await s.send({ op: 'generateKeyPair', keyType: 'rsa', modulusBits: 2048, privateAttributes: { sign: true } });
  const ecNative = (await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const ec = await s.send({ op: 'generateKeyPair', keyType: 'ec', curve: 'secp256r1', privateAttributes: { sign: true }, publicAttributes: { verify: true } });
  const ecSig = new Uint8Array(await subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, ecNative.privateKey, kib));
  const ecSpki = (await s.send({ op: 'exportKey', handle: ec.publicHandle, format: 'spki' })).keyData as Uint8Array;
  const ecOurSig = (await s.send({ op: 'sign', handle: ec.privateHandle, mechanism: { name: 'ecdsa', hash: 'sha256' }, data: kib })).signature;
  const ecPubNative = await subtle.importKey('spki', ecSpki, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
  void ecSig;
  const edNative = (await subtle.generateKey({ name: 'Ed25519' }, false, ['sign'])) as webcrypto.CryptoKeyPair;
  const ed = await s.send({ op: 'generateKeyPair', keyType: 'ed25519', privateAttributes: { sign: true } });
  const aesNative = await subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt']);
  const aes = await s.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 32, attributes: { encrypt: true } });
  const hmacNative = await subtle.generateKey({ name: 'HMAC', hash: 'SHA-256', length: 256 }, false, ['sign']);
  const hmac = await s.send({ op: 'generateKey', keyType: 'generic-secret', lengthBytes: 32, attributes: { sign: true } });

  const cases: Case[] = [
    {
      name: 'RSA-2048 sign (PKCS#1 v1.5, SHA-256)',
      native: () => subtle.sign('RSASSA-PKCS1-v1_5', rsaNative.privateKey, kib),
      strongroom: () => s.send({ op: 'sign', handle: rsa.privateHandle, mechanism: { name: 'rsa-pkcs', hash: 'sha256' }, data: kib }),
    },
    {
      name: 'ECDSA P-256 sign',
      native: () => subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, ecNative.privateKey, kib),
      strongroom: () => s.send({ op: 'sign', handle: ec.privateHandle, mechanism: { name: 'ecdsa', hash: 'sha256' }, data: kib }),
    },
    {
      name: 'ECDSA P-256 verify',
      native: () => subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, ecPubNative, ecOurSig, kib),
      strongroom: () => s.send({ op: 'verify', handle: ec.publicHandle, mechanism: { name: 'ecdsa', hash: 'sha256' }, data: kib, signature: ecOurSig }),
    },
    {
      name: 'Ed25519 sign',
      native: () => subtle.sign('Ed25519', edNative.privateKey, kib),
      strongroom: () => s.send({ op: 'sign', handle: ed.privateHandle, mechanism: { name: 'ed25519' }, data: kib }),
    },
    {
      name: 'AES-256-GCM encrypt 1 KiB',
      native: () => subtle.encrypt({ name: 'AES-GCM', iv }, aesNative, kib),
      strongroom: () => s.send({ op: 'encrypt', handle: aes.handle, mechanism: { name: 'aes-gcm', iv }, data: kib }),
    },
    {
      name: 'HMAC-SHA256 1 KiB',
      native: () => subtle.sign('HMAC', hmacNative, kib),
      strongroom: () => s.send({ op: 'sign', handle: hmac.handle, mechanism: { name: 'hmac', hash: 'sha256' }, data: kib }),
    },
    {
      name: 'SHA-256 1 KiB',
      native: () => subtle.digest('SHA-256', kib),
      strongroom: () => s.send({ op: 'digest', hash: 'sha256', data: kib }),
    },
  ];

  console.log(`Strongroom bench: Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${SECONDS} s per measurement`);
  console.log('One in-process member (profile cloudhsm), through a logged-in session; native = node:crypto webcrypto.subtle.\n');
  const header = ['operation', 'in flight', 'native ops/s', 'strongroom ops/s', 'ratio'];
  const rows: string[][] = [];
  for (const c of cases) {
    for (const inFlight of [1, CONCURRENCY]) {
      const native = await measure(c.native, inFlight);
      const ours = await measure(c.strongroom, inFlight);
      rows.push([c.name, String(inFlight), native.toFixed(0), ours.toFixed(0), (ours / native).toFixed(2)]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const r of rows) console.log(line(r));
  await s.logout();
  await cluster.close();
}

await main();
