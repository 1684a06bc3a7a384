/**
 * The PKCS #11 table: ECDSA P-256 and RSA-2048 signatures per second through Strongroom's PKCS #11
 * door and through SoftHSM behind p11-kit's own server (`p11-kit server` + softhsm2), as one
 * application reaches them through p11-kit-client.so: one connection, its sessions' requests
 * pipelined on it (1 and 8 in flight). The client is the project's codec speaking the same RPC
 * protocol as p11-kit-client.so to both servers, in a worker thread of its own as an application
 * is a process of its own (bench/pkcs11-client.ts); each signature is C_SignInit then C_Sign of a
 * SHA-256 digest (CKM_ECDSA, CKM_RSA_PKCS over a DigestInfo), as OpenSSL's engine and Java do.
 * SoftHSM also runs loaded into the process (pkcs11js), with no RPC at all, for scale.
 * Needs p11-kit, softhsm2 and opensc (pkcs11-tool) from Debian; without them it says so and skips.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalCluster } from '../src/index.js';
import { CKA, CKM, CKO } from '../src/pkcs11/constants.js';
import { servePkcs11 } from '../src/pkcs11/index.js';
import { DIGEST, DIGEST_INFO, rateInWorker } from './pkcs11-client.js';
import { median } from './measure.js';
import { progress, table } from './report.js';

export const SOFTHSM = ['/usr/lib/softhsm/libsofthsm2.so'].find((p) => existsSync(p));

/**
 * The same signatures with SoftHSM loaded into this process (pkcs11js), no RPC in between: one
 * session signing in a loop (1), or 8 sessions whose C_Sign run on libuv's worker threads (8).
 */
async function rateDirect(tokenConf: string, label: string, mechanism: number, inFlight: number, seconds: number): Promise<number> {
  const { PKCS11 } = await import('pkcs11js');
  const previous = process.env.SOFTHSM2_CONF;
  process.env.SOFTHSM2_CONF = tokenConf;
  const p11 = new PKCS11();
  p11.load(SOFTHSM!);
  p11.C_Initialize({ flags: 2 /* CKF_OS_LOCKING_OK */ });
  try {
    const slot = p11.C_GetSlotList(true)[0]!;
    const sessions = Array.from({ length: inFlight }, () => p11.C_OpenSession(slot, 6 /* CKF_SERIAL_SESSION | CKF_RW_SESSION */));
    p11.C_Login(sessions[0]!, 1, '1234');
    p11.C_FindObjectsInit(sessions[0]!, [{ type: CKA.CLASS, value: CKO.PRIVATE_KEY }, { type: CKA.LABEL, value: label }]);
    const key = p11.C_FindObjects(sessions[0]!);
    p11.C_FindObjectsFinal(sessions[0]!);
    if (!key) throw new Error(`no private key labelled ${label} in SoftHSM`);
    const data = mechanism === CKM.ECDSA ? DIGEST : DIGEST_INFO;
    let count = 0;
    const deadline = performance.now() + seconds * 1000;
    const start = performance.now();
    if (inFlight === 1) {
      const out = Buffer.alloc(512);
      while (performance.now() < deadline) {
        p11.C_SignInit(sessions[0]!, { mechanism }, key);
        p11.C_Sign(sessions[0]!, data, out);
        count++;
      }
    } else {
      await Promise.all(
        sessions.map(async (session) => {
          const out = Buffer.alloc(512);
          while (performance.now() < deadline) {
            p11.C_SignInit(session, { mechanism }, key);
            await p11.C_SignAsync(session, data, out);
            count++;
          }
        }),
      );
    }
    return count / ((performance.now() - start) / 1000);
  } finally {
    p11.C_Finalize();
    p11.close();
    if (previous === undefined) delete process.env.SOFTHSM2_CONF;
    else process.env.SOFTHSM2_CONF = previous;
  }
}

/**
 * A SoftHSM v2 token (user PIN 1234) whose files live in `dir`; returns the configuration file to
 * name in SOFTHSM2_CONF.
 */
export function softhsmToken(dir: string, label: string): string {
  const tokens = join(dir, 'softhsm-tokens');
  mkdirSync(tokens);
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\n`);
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--so-pin', '12345678', '--pin', '1234'], { env: { ...process.env, SOFTHSM2_CONF: conf }, stdio: 'ignore' });
  return conf;
}

export async function benchPkcs11(seconds: number, rounds: number): Promise<void> {
  const missing = [SOFTHSM ? null : 'softhsm2', existsSync('/usr/bin/p11-kit') ? null : 'p11-kit', existsSync('/usr/bin/pkcs11-tool') ? null : 'opensc'].filter(Boolean);
  if (missing.length) {
    console.log(`\nPKCS #11 table skipped: no ${missing.join(', ')} here; \`npm run bench:setup\` installs them (Debian) to compare with SoftHSM.`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'strongroom-bench-p11-'));
  // SoftHSM: a token with the same two keys, served by p11-kit's own server.
  const conf = softhsmToken(dir, 'bench');
  const env = { ...process.env, SOFTHSM2_CONF: conf };
  for (const [type, label] of [['EC:prime256v1', 'ec'], ['rsa:2048', 'rsa']]) {
    execFileSync('pkcs11-tool', ['--module', SOFTHSM!, '--login', '--pin', '1234', '--keypairgen', '--key-type', type!, '--label', label!], { env, stdio: 'ignore' });
  }
  const softSocket = join(dir, 'softhsm.sock');
  const server = spawn('p11-kit', ['server', '-f', '--provider', SOFTHSM!, '-n', softSocket, 'pkcs11:'], { env, stdio: 'ignore' });
  for (let i = 0; i < 100 && !existsSync(softSocket); i++) await new Promise((r) => setTimeout(r, 50));
  // Strongroom: one in-process member behind the door, the same two keys.
  const cluster = await startLocalCluster({ adminPassword: 'bench-admin-pw', users: [{ username: 'bench', password: 'bench-password', role: 'crypto-user' }] });
  const s = await cluster.login('bench', 'bench-password');
  await s.send({ op: 'generateKeyPair', keyType: 'ec', curve: 'secp256r1', privateAttributes: { token: true, sign: true, label: 'ec' }, publicAttributes: { token: true, label: 'ec' } });
  await s.send({ op: 'generateKeyPair', keyType: 'rsa', modulusBits: 2048, privateAttributes: { token: true, sign: true, label: 'rsa' }, publicAttributes: { token: true, label: 'rsa' } });
  await s.logout();
  const door = await servePkcs11({ cluster, socket: join(dir, 'run', 'door.sock') });
  try {
    const rows: string[][] = [];
    for (const [name, label, mechanism] of [['ECDSA P-256 sign (CKM_ECDSA)', 'ec', CKM.ECDSA], ['RSA-2048 sign (CKM_RSA_PKCS)', 'rsa', CKM.RSA_PKCS]] as const) {
      for (const inFlight of [1, 8]) {
        progress('pkcs11', `${name}, ${inFlight} in flight`);
        const ours: number[] = [];
        const theirs: number[] = [];
        const direct: number[] = [];
        for (let round = 0; round < rounds; round++) {
          ours.push(await rateInWorker({ path: door.socket, pin: 'bench:bench-password', label, mechanism, inFlight, seconds }));
          theirs.push(await rateInWorker({ path: softSocket, pin: '1234', label, mechanism, inFlight, seconds }));
          direct.push(await rateDirect(conf, label, mechanism, inFlight, seconds));
        }
        const ratio = median(ours.map((v, i) => v / theirs[i]!));
        const ratioDirect = median(ours.map((v, i) => v / direct[i]!));
        rows.push([name, String(inFlight), median(direct).toFixed(0), median(theirs).toFixed(0), median(ours).toFixed(0), ratio.toFixed(2), ratioDirect.toFixed(2)]);
      }
    }
    console.log('\nPKCS #11: one application (a thread of its own), one connection (as p11-kit-client.so makes), its sessions pipelined.');
    console.log('SoftHSM via p11-kit = softhsm2 behind `p11-kit server`; SoftHSM direct = libsofthsm2.so loaded in this process (pkcs11js);');
    console.log('door = Strongroom\'s PKCS #11 door over one in-process member.');
    table(['operation', 'in flight', 'SoftHSM direct sigs/s', 'SoftHSM via p11-kit sigs/s', 'door sigs/s', 'door / SoftHSM via p11-kit', 'door / SoftHSM direct'], rows, { id: 'pkcs11', title: 'The PKCS #11 door against SoftHSM' });
  } finally {
    await door.close();
    await cluster.close();
    server.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}
