/**
 * The local supervisor's TLS members: each one a `strongroom hsm serve` process on loopback,
 * with a data folder, a cluster certificate signed by the cluster's trust anchor, and a client
 * certificate for this client. CloudHSM's cluster initialisation (CLOUDHSM.md §4.3), automated:
 * the member writes its cluster CSR, the trust anchor signs it, the certificate is installed.
 *
 * Cluster folder: `customerCA.key`/`customerCA.crt` (the trust anchor), `client.key`/`client.crt`
 * (this client's credentials), and `member-N/` per member.
 *
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { HsmError, MEMBER_FILES, cloneClusterIdentity, ensureClusterCsr, writeFileDurably, type ProfileName, type Response } from '../hsm-core/index.js';
import { SocketTransport, TrustAnchor, type TlsCredentials } from './tls.js';
import type { Transport } from './transport.js';
import { entryPoint, loaderArguments } from './entry-point.js';

/**
 * The cluster certificate a customer installed (CloudHSM's InitializeCluster): signed by their own
 * trust anchor over the first member's cluster CSR. Once it is in the cluster folder, every member
 * presents it — later members are clones holding the same identity, as CloudHSM's HSMs of one
 * cluster all present the cluster certificate — and clients verify members against that anchor.
 */
export const CLUSTER_CERTIFICATE_FILES = { cert: 'clusterCertificate.crt', anchor: 'trustAnchor.crt' } as const;

/** What a client of the cluster trusts members under: the folder's anchor, and the customer's once installed. */
export function memberTrust(dir: string, anchorPem: string): string {
  const customer = join(dir, CLUSTER_CERTIFICATE_FILES.anchor);
  return existsSync(customer) ? `${anchorPem.trimEnd()}\n${readFileSync(customer, 'utf8')}` : anchorPem;
}

/** The folder of a member that presents the installed cluster certificate, if one does. */
function clusterIdentityHolder(dir: string): string | null {
  const file = join(dir, CLUSTER_CERTIFICATE_FILES.cert);
  if (!existsSync(file)) return null;
  const cert = readFileSync(file, 'utf8').trim();
  const holder = readdirSync(dir)
    .filter((d) => /^member-\d+$/.test(d))
    .map((d) => join(dir, d))
    .find((d) => existsSync(join(d, MEMBER_FILES.cert)) && existsSync(join(d, MEMBER_FILES.key)) && readFileSync(join(d, MEMBER_FILES.cert), 'utf8').trim() === cert);
  return holder ?? null;
}

/** Makes (or reuses) the trust anchor, the client's credentials and each member's certificate. */
export async function prepareTlsCluster(dir: string, members: number): Promise<TlsCredentials & { anchor: TrustAnchor; appliance: TlsCredentials }> {
  const anchor = await TrustAnchor.openOrCreate(dir);
  // The clients' certificate (cluster.json, the CLI, applications) and the supervisor's own
  // (`appliance`): members pin the latter, so mTLS enforcement never locks the supervisor out.
  const issued: Record<string, { cert: string; key: string }> = {};
  for (const [name, subject] of [['client', 'strongroom local client'], ['appliance', 'strongroom appliance']] as const) {
    const certFile = join(dir, `${name}.crt`);
    const keyFile = join(dir, `${name}.key`);
    if (!existsSync(certFile) || !existsSync(keyFile)) {
      const made = await anchor.issueClient(subject);
      writeFileDurably(keyFile, made.key, 0o600);
      writeFileDurably(certFile, made.cert, 0o644);
    }
    issued[name] = { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
  }
  const identity = clusterIdentityHolder(dir);
  for (let i = 0; i < members; i++) {
    const memberDir = join(dir, `member-${i}`);
    // A new member of an initialized cluster: a clone presenting the cluster certificate.
    if (identity !== null && identity !== memberDir && !existsSync(join(memberDir, MEMBER_FILES.cert))) cloneClusterIdentity(identity, memberDir);
    const csr = await ensureClusterCsr(memberDir, `strongroom member ${i}`);
    if (!existsSync(join(memberDir, MEMBER_FILES.cert))) writeFileDurably(join(memberDir, MEMBER_FILES.cert), await anchor.signClusterCsr(csr), 0o644);
    writeFileDurably(join(memberDir, MEMBER_FILES.ca), anchor.pem, 0o644);
  }
  const trust = memberTrust(dir, anchor.pem);
  return { anchor, ca: trust, ...issued.client!, appliance: { ca: trust, ...issued.appliance! } };
}

/** How to run the `strongroom` command: compiled, or its source under tsx (see entry-point.ts). */
function cliCommand(): string[] {
  const entry = entryPoint(import.meta.url, '../cli/main');
  return [...loaderArguments(entry), entry.file];
}

export interface MemberProcessOptions {
  dir: string;
  index: number;
  /** 0 the first time; then the port it got, so its address stays the same across restarts. */
  port: number;
  profile: ProfileName;
  appliancePassword: string;
  passphrase?: string;
  queueLimit?: number;
  passwordCost?: number;
  mode?: 'fips' | 'non-fips';
  serviceKey?: Uint8Array;
  manufacturerKey?: Uint8Array;
}

/** A member process and the TLS connection to it. */
export class ProcessMemberTransport implements Transport {
  readonly #child: ChildProcess;
  readonly #socket: SocketTransport;
  readonly port: number;

  private constructor(child: ChildProcess, socket: SocketTransport, port: number) {
    this.#child = child;
    this.#socket = socket;
    this.port = port;
  }

  /** Starts `strongroom hsm serve` for the member and connects to it. */
  static async start(options: MemberProcessOptions, given: TlsCredentials & { appliance?: TlsCredentials }): Promise<ProcessMemberTransport> {
    // The supervisor connects as the cluster's service, with the certificate the member pins.
    const credentials = given.appliance ?? given;
    const args = [
      ...cliCommand(),
      'hsm', 'serve',
      '--listen', `127.0.0.1:${options.port}`,
      '--data-dir', options.dir,
      '--member-index', String(options.index),
      '--profile', options.profile,
      ...(options.mode !== undefined ? ['--mode', options.mode] : []),
      '--exit-with-stdin',
      ...(options.queueLimit !== undefined ? ['--queue-limit', String(options.queueLimit)] : []),
      ...(options.passwordCost !== undefined ? ['--password-cost', String(options.passwordCost)] : []),
    ];
    const child = spawn(process.execPath, args, {
      env: {
        ...process.env,
        STRONGROOM_APPLIANCE_PASSWORD: options.appliancePassword,
        ...(given.appliance ? { STRONGROOM_APPLIANCE_CERT_SHA256: new X509Certificate(given.appliance.cert).fingerprint256 } : {}),
        ...(options.passphrase !== undefined ? { STRONGROOM_MASTER_PASSPHRASE: options.passphrase } : {}),
        ...(options.serviceKey !== undefined ? { STRONGROOM_SERVICE_KEY: Buffer.from(options.serviceKey).toString('hex') } : {}),
        ...(options.manufacturerKey !== undefined ? { STRONGROOM_MANUFACTURER_KEY: Buffer.from(options.manufacturerKey).toString('hex') } : {}),
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      let err = '';
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new HsmError('MEMBER_UNAVAILABLE', `member ${options.index} did not start within 20 s: ${err.trim() || out.trim()}`));
      }, 20_000);
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const m = /listening on [^\s]+:(\d+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      child.stderr!.on('data', (chunk: Buffer) => {
        err += chunk.toString();
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new HsmError('MEMBER_UNAVAILABLE', `member ${options.index} exited (${signal ?? `code ${code}`}) before listening: ${err.trim() || out.trim()}`));
      });
    });
    child.stdout!.resume();
    child.stderr!.resume();
    try {
      const socket = await SocketTransport.connect(`127.0.0.1:${port}`, credentials, { description: `tls member ${options.index} (127.0.0.1:${port})` });
      child.once('exit', () => void socket.close());
      return new ProcessMemberTransport(child, socket, port);
    } catch (e) {
      child.kill('SIGKILL');
      throw e;
    }
  }

  get description(): string {
    return this.#socket.description;
  }

  get alive(): boolean {
    return this.#socket.alive;
  }

  send(request: unknown): Promise<Response> {
    return this.#socket.send(request);
  }

  onDown(listener: (reason: string) => void): void {
    this.#socket.onDown(listener);
  }

  watchdog(ms: number): void {
    this.#socket.watchdog(ms);
  }

  /** SIGKILL: the member process dies at once, as in a crash. */
  kill(): void {
    this.#child.kill('SIGKILL');
  }

  /** Resolves once the member process has exited (and so let go of its data folder). */
  get closed(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => this.#child.once('exit', () => resolve()));
  }

  async close(): Promise<void> {
    await this.#socket.close();
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      const exited = new Promise((r) => this.#child.once('exit', r));
      this.#child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
      if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
    }
  }
}
