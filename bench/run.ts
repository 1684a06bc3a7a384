/**
 * Benchmarks: operations per second of Node's native crypto.webcrypto, of @peculiar/webcrypto,
 * and of Strongroom with one in-process member — through the WebCrypto door
 * (`session.crypto.subtle`, what applications use) and through raw session requests (the door's
 * floor) — measured in the same run, sequentially and with 32 calls in flight, with ratios to
 * native. Run with `npm run bench`.
 *
 * Each figure is the median of BENCH_ROUNDS rounds (default 3); in every round native, the door
 * and raw requests are measured for BENCH_SECONDS each, in 8 slices that take turns
 * (bench/measure.ts), and a ratio is the median of the per-round ratios, so that the drift of a
 * shared machine affects both sides of a ratio alike. @peculiar/webcrypto takes turns with native
 * on its own, just before: its JavaScript leaves garbage that whoever allocates next pays for,
 * and sharing the door's slices it took 4-5 % off the door's ratio for signatures with 32 in
 * flight (bench/HISTORY.md, "Measured on 2026-12-03 (before midnight)").
 *
 * A second table measures clusters: RSA-2048 and ECDSA P-256 signatures with token keys, 64
 * calls in flight, on 1 and 2 worker members and on 2 TLS members, against native WebCrypto; and
 * the per-request cost of a TLS member when pipelined.
 *
 * A third table measures the relay: ECDSA P-256 sign and AES-GCM 1 KiB from a Node WebSocket
 * client (strongroom/browser over the ws package) in the relay's own process, and from a page in
 * headless Chromium (bench/page/, when Chromium is installed), 64 in flight, beside the same
 * through `session.crypto` and native WebCrypto, and beside its floor: `session.crypto` behind a
 * bare WebSocket (bench/ws-floor.ts).
 *
 * Environment: BENCH_SECONDS (default 1) per measurement, BENCH_ROUNDS (default 3),
 * BENCH_ONLY=door|peers|cluster|relay|pkcs11|control-plane|curves to run one table, or several
 * comma-separated in the order given (curves: how cost grows with token keys, bench/curves.ts;
 * BENCH_CURVE_MAX lowers its largest size), BENCH_OPS=text to measure only the door's operations
 * whose names hold it (BENCH_ONLY=door BENCH_OPS=Ed25519). The PKCS #11 table (bench/pkcs11.ts)
 * compares the PKCS #11 door with SoftHSM behind p11-kit's server; the control plane's
 * (bench/control-plane.ts) measures the CloudHSM V2 API.
 */
import { webcrypto } from 'node:crypto';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Crypto as PeculiarCrypto } from '@peculiar/webcrypto';
import WebSocket from 'ws';
import { startLocalCluster, type HsmSession, type LocalCluster } from '../src/index.js';
import { demoSite, startRelay } from '../src/relay/index.js';
import { connectRelay } from '../src/browser/index.js';
import { benchPkcs11 } from './pkcs11.js';
import { benchControlPlane } from './control-plane.js';
import { benchCurves } from './curves.js';
import { benchPeers } from './peers.js';
import { startEcho } from './echo.js';
import { startWsFloor } from './ws-floor.js';
import { CHROMIUM, openChromiumPage } from './chromium.js';
import { progress, table } from './report.js';
import { drawCharts, writeTables } from './charts.js';
import { interleaved, median, rate, takingTurns } from './measure.js';
import { chosenTables } from './only.js';

type Subtle = webcrypto.SubtleCrypto;
type Pair = webcrypto.CryptoKeyPair;
type Key = webcrypto.CryptoKey;

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 1);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

const CONCURRENCY = 32;


const kib = webcrypto.getRandomValues(new Uint8Array(1024));
const iv = webcrypto.getRandomValues(new Uint8Array(12));
const RSA = { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' };
const EC = { name: 'ECDSA', namedCurve: 'P-256' };
const ECDSA = { name: 'ECDSA', hash: 'SHA-256' };

/** A secret of 32 bytes to decrypt with RSA-OAEP (a wrapped AES key's size). */
const secret = webcrypto.getRandomValues(new Uint8Array(32));
const RSA_OAEP = { ...RSA, name: 'RSA-OAEP' };

/** The operations of the issue, and RSA-OAEP decryption, as WebCrypto calls on any SubtleCrypto. */
async function webCryptoCases(subtle: Subtle): Promise<Record<string, () => Promise<unknown>>> {
  const rsa = (await subtle.generateKey(RSA, false, ['sign', 'verify'])) as Pair;
  const ec = (await subtle.generateKey(EC, false, ['sign', 'verify'])) as Pair;
  const ecSig = await subtle.sign(ECDSA, ec.privateKey, kib);
  const ed = (await subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify'])) as Pair;
  const aes = (await subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt'])) as Key;
  const hmac = (await subtle.generateKey({ name: 'HMAC', hash: 'SHA-256', length: 256 }, false, ['sign'])) as Key;
  const oaep = (await subtle.generateKey(RSA_OAEP, false, ['encrypt', 'decrypt'])) as Pair;
  const sealed = await subtle.encrypt('RSA-OAEP', oaep.publicKey, secret);
  return {
    'RSA-2048 sign (PKCS#1 v1.5, SHA-256)': () => subtle.sign('RSASSA-PKCS1-v1_5', rsa.privateKey, kib),
    'RSA-2048 decrypt (OAEP, SHA-256)': () => subtle.decrypt('RSA-OAEP', oaep.privateKey, sealed),
    'ECDSA P-256 sign': () => subtle.sign(ECDSA, ec.privateKey, kib),
    'ECDSA P-256 verify': () => subtle.verify(ECDSA, ec.publicKey, ecSig, kib),
    'Ed25519 sign': () => subtle.sign('Ed25519', ed.privateKey, kib),
    'AES-256-GCM encrypt 1 KiB': () => subtle.encrypt({ name: 'AES-GCM', iv }, aes, kib),
    'HMAC-SHA256 1 KiB': () => subtle.sign('HMAC', hmac, kib),
    'SHA-256 1 KiB': () => subtle.digest('SHA-256', kib),
  };
}

/** `ROUNDS` rounds of `measure` (a rate for each contender): medians of the rates and of the per-round ratios to the first. */
async function rounds(measure: () => Promise<number[]>): Promise<{ rates: number[]; ratios: number[] }> {
  const rates: number[][] = [];
  for (let round = 0; round < ROUNDS; round++) (await measure()).forEach((r, k) => (rates[k] ??= []).push(r));
  return {
    rates: rates.map(median),
    ratios: rates.map((r) => median(r.map((v, round) => v / rates[0]![round]!))),
  };
}

/** Rounds of {@link interleaved} rates of `impls`, each with `inFlight` callers. */
function compare(impls: (() => Promise<unknown>)[], inFlight: number): Promise<{ rates: number[]; ratios: number[] }> {
  return rounds(() => interleaved(impls.map((op) => ({ op, inFlight })), SECONDS));
}

/**
 * Rounds of rates from measurers that each measure for the seconds they are given (a page in
 * another process among them), taking turns in slices ({@link takingTurns}).
 */
function compareRates(measurers: ((seconds: number) => Promise<number>)[]): Promise<{ rates: number[]; ratios: number[] }> {
  const stretches = measurers.map((measure) => async (ms: number) => ({ count: (await measure(ms / 1000)) * (ms / 1000), ms }));
  return rounds(() => takingTurns(stretches, SECONDS));
}

const CLUSTER_USER = { username: 'bench', password: 'bench-password', role: 'crypto-user' as const };

async function benchCluster(): Promise<void> {
  const IN_FLIGHT = 64;
  const start = (members: number, transport: 'in-process' | 'worker' | 'tls') =>
    startLocalCluster({ adminPassword: 'bench-admin-pw', members, transport, users: [CLUSTER_USER] });
  const clusters: [string, LocalCluster][] = [
    ['1 worker member', await start(1, 'worker')],
    ['2 worker members', await start(2, 'worker')],
    ['2 TLS members', await start(2, 'tls')],
  ];
  const signers = async (s: HsmSession) => {
    const rsa = await s.send({ op: 'generateKeyPair', keyType: 'rsa', modulusBits: 2048, privateAttributes: { sign: true, token: true }, publicAttributes: { token: true } });
    const ec = await s.send({ op: 'generateKeyPair', keyType: 'ec', curve: 'secp256r1', privateAttributes: { sign: true, token: true }, publicAttributes: { token: true } });
    return {
      rsa: () => s.send({ op: 'sign', handle: rsa.privateHandle, mechanism: { name: 'rsa-pkcs', hash: 'sha256' }, data: kib }),
      ec: () => s.send({ op: 'sign', handle: ec.privateHandle, mechanism: { name: 'ecdsa', hash: 'sha256' }, data: kib }),
    };
  };
  const sessions = await Promise.all(clusters.map(([, c]) => c.login(CLUSTER_USER.username, CLUSTER_USER.password)));
  const ops = await Promise.all(sessions.map(signers));
  // Each cluster's supervisor first compares its members about 2 s after the start, logging in
  // as the appliance user on each (a password hash of about 0.1 s of CPU, on the cores being
  // measured); comparing now makes that happen before the first round, not during it.
  for (const [, c] of clusters) await c.sync();
  const nativeRsa = (await webcrypto.subtle.generateKey(RSA, false, ['sign', 'verify'])) as Pair;
  const nativeEc = (await webcrypto.subtle.generateKey(EC, false, ['sign', 'verify'])) as Pair;
  const native = {
    rsa: () => webcrypto.subtle.sign('RSASSA-PKCS1-v1_5', nativeRsa.privateKey, kib),
    ec: () => webcrypto.subtle.sign(ECDSA, nativeEc.privateKey, kib),
  };

  console.log(`\nClusters: token keys, ${IN_FLIGHT} calls in flight, session requests; ratios to native WebCrypto in the same run.\n`);
  const rows: string[][] = [];
  for (const [name, pick] of [['RSA-2048 sign', 'rsa'], ['ECDSA P-256 sign', 'ec']] as const) {
    progress('clusters', name);
    const { rates, ratios } = await compare([native[pick], ...ops.map((o) => o[pick])], IN_FLIGHT);
    rows.push([name, ...rates.map((r) => r.toFixed(0)), ...ratios.slice(1).map((r) => r.toFixed(2)), (rates[2]! / rates[1]!).toFixed(2)]);
  }
  table(['operation', 'native ops/s', ...clusters.map(([n]) => `${n} ops/s`), ...clusters.map(([n]) => `${n} ×`), '2 workers / 1 worker'], rows, { id: 'cluster', title: 'Clusters of worker and TLS members against native WebCrypto' });

  for (const s of sessions) await s.logout();
  for (const [, c] of clusters) await c.close();

  // Per-request cost of a TLS member, pipelined: a request that costs the member almost nothing
  // (SHA-256 of 32 bytes), 64 in flight, one TLS member against one in-process member. The
  // clusters above are closed first: their idle members' timers would show in these microseconds.
  const tiny = new Uint8Array(32);
  const one = [await start(1, 'in-process'), await start(1, 'tls')];
  const oneSessions = await Promise.all(one.map((c) => c.login(CLUSTER_USER.username, CLUSTER_USER.password)));
  const digest = oneSessions.map((s) => () => s.send({ op: 'digest', hash: 'sha256', data: tiny }));
  progress('clusters', 'per-request cost of a TLS member');
  const echoes = [await startEcho(), await startEcho({ tls: true })];
  const piped = await compare(digest, IN_FLIGHT);
  const single = await compare([...digest, ...echoes.map((e) => e.roundTrip)], 1);
  for (const e of echoes) e.close();
  const us = (rate: number) => 1e6 / rate;
  const [tcp, tls] = [us(single.rates[2]!), us(single.rates[3]!)];
  const overhead = us(single.rates[1]!) - us(single.rates[0]!);
  console.log('\nPer-request cost of a TLS member (SHA-256 of 32 bytes, so nearly all of it is the trip); the floors are a bare echo between two processes on this machine, over TCP and over TLS 1.3:\n');
  table(
    ['in flight', 'in-process µs/request', 'TLS µs/request', 'TLS overhead µs', 'TCP echo µs', 'TLS echo µs (floor)', 'overhead above the TLS echo µs'],
    [
      [String(IN_FLIGHT), us(piped.rates[0]!).toFixed(1), us(piped.rates[1]!).toFixed(1), (us(piped.rates[1]!) - us(piped.rates[0]!)).toFixed(1), '–', '–', '–'],
      ['1', us(single.rates[0]!).toFixed(1), us(single.rates[1]!).toFixed(1), overhead.toFixed(1), tcp.toFixed(1), tls.toFixed(1), (overhead - tls).toFixed(1)],
    ],
    { id: 'tls-overhead', title: 'Per-request cost of a TLS member' },
  );
  for (const s of oneSessions) await s.logout();
  for (const c of one) await c.close();
}

/** The relay benchmark's page in Chromium (bench/page/relay.js), logged in, or null without Chromium. */
async function relayPage(relayUrl: string): Promise<{ rate: (impl: 'relay' | 'native', name: string, seconds: number) => Promise<number>; close: () => Promise<void> } | null> {
  let page;
  try {
    page = await openChromiumPage(`${relayUrl}/bench/relay.html`);
  } catch (e) {
    console.error(`Chromium did not start, so the relay table has no Chromium columns: ${e instanceof Error ? e.message : String(e)}`);
    return null;
  }
  if (!page) return null;
  for (let i = 0; i < 100 && !(await page.evaluate<boolean>('globalThis.benchReady === true')); i++) await new Promise((r) => setTimeout(r, 50));
  await page.evaluate(`benchSetUp(${JSON.stringify(CLUSTER_USER.username)}, ${JSON.stringify(CLUSTER_USER.password)})`);
  return {
    rate: (impl, name, seconds) => page.evaluate<number>(`benchRate(${JSON.stringify(impl)}, ${JSON.stringify(name)}, ${seconds}, 64)`),
    close: async () => {
      await page.evaluate('benchLogout()');
      await page.close();
    },
  };
}

async function benchRelay(): Promise<void> {
  const IN_FLIGHT = 64;
  const cluster = await startLocalCluster({ adminPassword: 'bench-admin-pw', users: [CLUSTER_USER] });
  const site = demoSite();
  const relay = await startRelay({ cluster, port: 0, maxInFlight: 1024, files: site.files, folders: { '/bench/': join(BENCH_DIR, 'page') } });
  const Socket = class extends WebSocket {
    constructor(url: string) {
      super(url, { origin: relay.url });
    }
  } as unknown as new (url: string) => globalThis.WebSocket;
  const page = await connectRelay(`${relay.url.replace('http', 'ws')}/ws`, { username: CLUSTER_USER.username, password: CLUSTER_USER.password }, { WebSocket: Socket });
  const session = await cluster.login(CLUSTER_USER.username, CLUSTER_USER.password);
  const cases = async (subtle: Subtle) => {
    const ec = (await subtle.generateKey(EC, false, ['sign', 'verify'])) as Pair;
    const aes = (await subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt'])) as Key;
    return {
      'ECDSA P-256 sign': (data = kib) => subtle.sign(ECDSA, ec.privateKey, data),
      'AES-256-GCM encrypt 1 KiB': (data = kib) => subtle.encrypt({ name: 'AES-GCM', iv }, aes, data),
    };
  };
  const viaSession = await cases(session.crypto.subtle as unknown as Subtle);
  const impls = [await cases(webcrypto.subtle), viaSession, await cases(page.crypto.subtle as unknown as Subtle)];
  // The floor under the relay: session.crypto's own call behind a bare WebSocket (bench/ws-floor.ts).
  const floors = {
    'ECDSA P-256 sign': await startWsFloor(viaSession['ECDSA P-256 sign'], kib.length, 64),
    'AES-256-GCM encrypt 1 KiB': await startWsFloor(viaSession['AES-256-GCM encrypt 1 KiB'], kib.length, kib.length + 16),
  };
  progress('relay', 'starting Chromium');
  const browser = await relayPage(relay.url);
  console.log(
    `\nThe relay: one in-process member; ${IN_FLIGHT} calls in flight; ratios to native. "relay" is a Node WebSocket client (strongroom/browser over ws) in the relay's own process, so page and relay share its thread; "floor" is session.crypto's own call behind a bare WebSocket in the same arrangement, with no codec, no relay and no page client (bench/ws-floor.ts), which any relay pays; "from Chromium" is a page in headless Chromium (another process, as a browser is), with Chromium's own WebCrypto beside it.${browser ? '' : ` No Chromium page (${CHROMIUM}, or set CHROMIUM_PATH): its columns are empty.`}\n`,
  );
  const rows: string[][] = [];
  for (const name of ['ECDSA P-256 sign', 'AES-256-GCM encrypt 1 KiB'] as const) {
    progress('relay', name);
    const measurers = [...impls.map((c) => c[name]), () => floors[name].call(kib)].map((op) => (seconds: number) => rate(op, IN_FLIGHT, seconds, 2));
    if (browser) measurers.push((seconds) => browser.rate('relay', name, seconds), (seconds) => browser.rate('native', name, seconds));
    const { rates, ratios } = await compareRates(measurers);
    const fromChromium = browser ? [rates[4]!.toFixed(0), rates[5]!.toFixed(0), ratios[4]!.toFixed(2), (rates[4]! / rates[1]!).toFixed(2)] : ['–', '–', '–', '–'];
    const floor = [rates[3]!.toFixed(0), ratios[3]!.toFixed(2), (rates[3]! / rates[1]!).toFixed(2)];
    rows.push([name, ...rates.slice(0, 3).map((r) => r.toFixed(0)), ratios[1]!.toFixed(2), ratios[2]!.toFixed(2), (rates[2]! / rates[1]!).toFixed(2), ...floor, ...fromChromium]);
  }
  table(
    ['operation', 'native ops/s', 'session.crypto ops/s', 'relay ops/s', 'session.crypto ×', 'relay ×', 'relay / session.crypto', 'floor ops/s', 'floor ×', 'floor / session.crypto', 'from Chromium ops/s', 'Chromium native ops/s', 'from Chromium ×', 'from Chromium / session.crypto'],
    rows,
    { id: 'relay', title: 'The relay against session.crypto and native WebCrypto' },
  );
  for (const floor of Object.values(floors)) await floor.close();
  await browser?.close();
  await page.logout();
  await session.logout();
  await relay.close();
  await cluster.close();
}

/**
 * The door's table: each WebCrypto operation of the issue through the door, as a raw session
 * request, through native WebCrypto and through @peculiar/webcrypto.
 */
async function benchDoor(): Promise<void> {
  const cluster = await startLocalCluster({
    adminPassword: 'bench-admin-pw',
    users: [{ username: 'bench', password: 'bench-password', role: 'crypto-user' }],
  });
  const s = await cluster.login('bench', 'bench-password');

  // The same operations as raw session requests: what the door costs on top of the member.
  const rsa = await s.send({ op: 'generateKeyPair', keyType: 'rsa', modulusBits: 2048, privateAttributes: { sign: true } });
  const ec = await s.send({ op: 'generateKeyPair', keyType: 'ec', curve: 'secp256r1', privateAttributes: { sign: true }, publicAttributes: { verify: true } });
  const ecSig = (await s.send({ op: 'sign', handle: ec.privateHandle, mechanism: { name: 'ecdsa', hash: 'sha256' }, data: kib })).signature;
  const ed = await s.send({ op: 'generateKeyPair', keyType: 'ed25519', privateAttributes: { sign: true } });
  const aes = await s.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 32, attributes: { encrypt: true } });
  const hmac = await s.send({ op: 'generateKey', keyType: 'generic-secret', lengthBytes: 32, attributes: { sign: true } });
  const oaep = await s.send({ op: 'generateKeyPair', keyType: 'rsa', modulusBits: 2048, privateAttributes: { decrypt: true }, publicAttributes: { encrypt: true } });
  const sealed = (await s.send({ op: 'encrypt', handle: oaep.publicHandle, mechanism: { name: 'rsa-oaep', hash: 'sha256' }, data: secret })).data;
  const raw: Record<string, () => Promise<unknown>> = {
    'RSA-2048 sign (PKCS#1 v1.5, SHA-256)': () => s.send({ op: 'sign', handle: rsa.privateHandle, mechanism: { name: 'rsa-pkcs', hash: 'sha256' }, data: kib }),
    'RSA-2048 decrypt (OAEP, SHA-256)': () => s.send({ op: 'decrypt', handle: oaep.privateHandle, mechanism: { name: 'rsa-oaep', hash: 'sha256' }, data: sealed }),
    'ECDSA P-256 sign': () => s.send({ op: 'sign', handle: ec.privateHandle, mechanism: { name: 'ecdsa', hash: 'sha256' }, data: kib }),
    'ECDSA P-256 verify': () => s.send({ op: 'verify', handle: ec.publicHandle, mechanism: { name: 'ecdsa', hash: 'sha256' }, data: kib, signature: ecSig }),
    'Ed25519 sign': () => s.send({ op: 'sign', handle: ed.privateHandle, mechanism: { name: 'ed25519' }, data: kib }),
    'AES-256-GCM encrypt 1 KiB': () => s.send({ op: 'encrypt', handle: aes.handle, mechanism: { name: 'aes-gcm', iv }, data: kib }),
    'HMAC-SHA256 1 KiB': () => s.send({ op: 'sign', handle: hmac.handle, mechanism: { name: 'hmac', hash: 'sha256' }, data: kib }),
    'SHA-256 1 KiB': () => s.send({ op: 'digest', hash: 'sha256', data: kib }),
  };

  const native = await webCryptoCases(webcrypto.subtle);
  const peculiar = await webCryptoCases(new PeculiarCrypto().subtle as unknown as Subtle);
  const door = await webCryptoCases(s.crypto.subtle as unknown as Subtle);

  console.log('\nnative = node:crypto webcrypto.subtle; peculiar = @peculiar/webcrypto; door = session.crypto.subtle of one');
  console.log('in-process member (profile cloudhsm); raw = the same operation as a session request. Ratios are to native.\n');
  const header = ['operation', 'in flight', 'native ops/s', 'peculiar ops/s', 'door ops/s', 'raw ops/s', 'peculiar ×', 'door ×', 'raw ×'];
  const rows: string[][] = [];
  const ops = process.env.BENCH_OPS;
  for (const name of Object.keys(native).filter((n) => !ops || n.includes(ops))) {
    for (const inFlight of [1, CONCURRENCY]) {
      progress('door', `${name}, ${inFlight} in flight`);
      const theirs = await compare([native[name]!, peculiar[name]!], inFlight);
      const ours = await compare([native[name]!, door[name]!, raw[name]!], inFlight);
      const rates = [ours.rates[0]!, theirs.rates[1]!, ours.rates[1]!, ours.rates[2]!];
      const ratios = [theirs.ratios[1]!, ours.ratios[1]!, ours.ratios[2]!];
      rows.push([name, String(inFlight), ...rates.map((r) => r.toFixed(0)), ...ratios.map((v) => v.toFixed(2))]);
    }
  }
  table(header, rows, { id: 'door', title: 'The WebCrypto door against native WebCrypto' });
  await s.logout();
  await cluster.close();
}

/** Every table, in the order a whole run measures them; `BENCH_ONLY` picks some (bench/only.ts). */
const TABLES: Record<string, { run: () => Promise<void>; timed: boolean }> = {
  door: { run: benchDoor, timed: true },
  peers: { run: () => benchPeers(SECONDS, ROUNDS), timed: true },
  cluster: { run: benchCluster, timed: true },
  relay: { run: benchRelay, timed: true },
  pkcs11: { run: () => benchPkcs11(SECONDS, ROUNDS), timed: true },
  'control-plane': { run: () => benchControlPlane(SECONDS, ROUNDS), timed: true },
  curves: { run: benchCurves, timed: false },
};

async function main(): Promise<void> {
  let chosen: string[];
  try {
    chosen = chosenTables(process.env.BENCH_ONLY, Object.keys(TABLES));
  } catch (e) {
    // Before anything is measured or written: a misspelt name does not start a whole run.
    console.error(`bench: ${(e as Error).message}`);
    process.exit(2);
  }
  const settings = chosen.some((name) => TABLES[name]!.timed) ? `, ${SECONDS} s per measurement, median of ${ROUNDS} rounds` : '';
  console.log(`Strongroom bench: Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}${settings}`);
  for (const name of chosen) await TABLES[name]!.run();
}

await main();
for (const file of drawCharts()) process.stderr.write(`chart: ${file}\n`);
const tables = writeTables();
if (tables) process.stderr.write(`tables: ${tables}\n`);
