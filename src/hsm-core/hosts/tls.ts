/**
 * A member on the network: `strongroom hsm serve` runs one member behind mutual TLS 1.3.
 *
 * The member's identity is CloudHSM's cluster certificate (CLOUDHSM.md §4.3): at first start the
 * member makes a key pair and a certificate signing request (the "cluster CSR") in its data
 * folder; the operator signs the CSR with their trust anchor (customerCA) and puts the
 * certificate beside it; from then on the member presents it. The member's private key is made
 * and used here, inside hsm-core, and leaves its data folder only as a file copied to a new member
 * of the same cluster folder ({@link cloneClusterIdentity}).
 *
 * Clients must present a certificate issued by the same trust anchor; one that does not (none,
 * another CA's, an expired one) is refused during the handshake, before any request is read.
 * Requests travel as frames (wire.ts); a frame that is too large or does not decode closes that
 * connection, after an answer saying why, and nothing else. A client that stops reading its
 * answers has its requests left unread until they drain (backpressure), so it cannot make the
 * member buffer without bound.
 *
 * Data folder: `member.key` (0600), `member.csr`, `member.crt`, `customerCA.crt`.
 *
 * @module
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { copyFileDurably, writeFileDurably } from '../durable.js';
import { KeyObject, X509Certificate, webcrypto } from 'node:crypto';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type * as X509 from '@peculiar/x509';
import { HsmError, checkPositiveIntegers } from '../errors.js';
import type { Member } from '../member.js';
import type { Results } from '../protocol.js';
import { FrameReader, MAX_FRAME_BYTES, RequestFlow, encodeFrame, tickBatched } from '../wire.js';

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;

export const MEMBER_FILES = { key: 'member.key', csr: 'member.csr', cert: 'member.crt', ca: 'customerCA.crt' } as const;

/**
 * Makes the member's key pair and cluster CSR in `dataDir` if they are not there yet, and
 * returns the CSR (PEM). The subject names the member; the CSR asks for loopback and `localhost`
 * as subject alternative names, plus any `hosts` given.
 */
export async function ensureClusterCsr(dataDir: string, subject: string, hosts: string[] = []): Promise<string> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const keyFile = join(dataDir, MEMBER_FILES.key);
  const csrFile = join(dataDir, MEMBER_FILES.csr);
  if (existsSync(keyFile) && existsSync(csrFile)) return readFileSync(csrFile, 'utf8');
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const names = [
    { type: 'ip' as const, value: '127.0.0.1' },
    { type: 'ip' as const, value: '::1' },
    { type: 'dns' as const, value: 'localhost' },
    ...hosts.map((h) => ({ type: /^[\d.]+$|:/.test(h) ? ('ip' as const) : ('dns' as const), value: h })),
  ];
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${subject}, O=Strongroom cluster member`,
    keys: keys as unknown as Parameters<typeof X509.Pkcs10CertificateRequestGenerator.create>[0]['keys'],
    signingAlgorithm: SIGN,
    extensions: [new x509.SubjectAlternativeNameExtension(names)],
  }, webcrypto as unknown as Parameters<typeof X509.Pkcs10CertificateRequestGenerator.create>[1]);
  writeFileDurably(keyFile, KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }), 0o600);
  const text = csr.toString('pem');
  writeFileDurably(csrFile, `${text}\n`, 0o644);
  return text;
}

/**
 * Gives a new member folder the cluster identity that the member in `fromDir` presents: its key,
 * its CSR and the certificate signed over it. CloudHSM's HSMs of one cluster all present the
 * cluster certificate the customer signed (InitializeCluster), so a member added after it is a
 * clone of that identity. The key file is copied from folder to folder (0600), never read here.
 */
export function cloneClusterIdentity(fromDir: string, toDir: string): void {
  mkdirSync(toDir, { recursive: true, mode: 0o700 });
  copyFileDurably(join(fromDir, MEMBER_FILES.key), join(toDir, MEMBER_FILES.key), 0o600);
  for (const f of [MEMBER_FILES.csr, MEMBER_FILES.cert]) copyFileDurably(join(fromDir, f), join(toDir, f), 0o644);
}

export interface ServeOptions {
  member: Member;
  dataDir: string;
  host: string;
  /** 0 picks a free port; see `Served.port`. */
  port: number;
  maxFrameBytes?: number;
  /** Connections at once; more are closed at once. Default 256. */
  maxConnections?: number;
  /**
   * The SHA-256 fingerprint (as X509Certificate.fingerprint256 prints it) of the client certificate
   * of the cluster's own service (the local supervisor: CloudHSM's side of the cluster), which mTLS
   * enforcement never refuses. Customers' clients use other certificates.
   */
  applianceCertificate?: string;
  /** Called with one line per notable event (connections refused, bad frames); never with secrets. */
  log?: (line: string) => void;
}

export interface Served {
  server: Server;
  port: number;
  close(): Promise<void>;
}

/** Serves `member` over mutual TLS 1.3 with the certificate in its data folder. */
export async function serveMember(options: ServeOptions): Promise<Served> {
  const { member, dataDir } = options;
  const maxFrame = options.maxFrameBytes ?? MAX_FRAME_BYTES;
  const maxConnections = options.maxConnections ?? 256;
  checkPositiveIntegers({ maxFrameBytes: maxFrame, maxConnections });
  const read = (name: string, what: string) => {
    const file = join(dataDir, name);
    if (!existsSync(file)) throw new HsmError('BAD_REQUEST', `${file}: missing; ${what}`);
    return readFileSync(file);
  };
  const key = read(MEMBER_FILES.key, 'the member makes it with its cluster CSR at first start');
  const cert = read(MEMBER_FILES.cert, 'sign member.csr with your trust anchor and save the certificate as member.crt');
  const ca = read(MEMBER_FILES.ca, 'copy your trust anchor certificate (customerCA.crt) here');
  const log = options.log ?? (() => undefined);
  const sockets = new Set<TLSSocket>();
  // Every connection from its first byte, handshake or not: one still in its TLS handshake (a
  // client that stalled, a port scanner) would hold close() open until the handshake timed out.
  const connections = new Set<Socket>();
  // Client certificates: the installation's (customerCA), and those under a registered trust
  // anchor; with enforcement `cluster`, only the latter (see MtlsGate).
  const gate = new MtlsGate(member, log, options.applianceCertificate);
  await gate.refresh();
  const contextOptions = () => ({ key, cert, ca: [ca, ...gate.anchorPems], requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' as const });
  const server = createServer(contextOptions(), (socket) => {
    if (!gate.admits(socket)) {
      log('refused a connection: mTLS is enforced and its client certificate is not issued under a registered trust anchor');
      socket.destroy();
      return;
    }
    sockets.add(socket);
    // Answers leave as they are written (wire.ts batches them): Nagle's algorithm would hold a
    // batch back until the client acknowledged the one before.
    socket.setNoDelay(true);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    serveConnection(socket, member, maxFrame, log, async () => {
      if (!(await gate.refresh())) return;
      server.setSecureContext(contextOptions());
      // Enforcement drops the connections it no longer admits, as CloudHSM does (once the answer
      // that turned it on has been written).
      setImmediate(() => {
        for (const s of sockets) if (!gate.admits(s)) s.destroy();
      });
    });
  });
  server.maxConnections = maxConnections;
  server.on('tlsClientError', (e) => log(`refused a connection during the TLS handshake: ${e.message}`));
  server.on('connection', (connection: Socket) => {
    connections.add(connection);
    connection.once('close', () => connections.delete(connection));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
        for (const c of connections) c.destroy();
      }),
  };
}

/** The ops after which the member's mTLS settings may have changed. */
const SETTINGS_OPS: ReadonlySet<unknown> = new Set(['registerTrustAnchor', 'deregisterTrustAnchor', 'setMtlsEnforcement', 'insertMaskedSettings', 'restoreBackup']);

/** The member's mTLS settings as the host applies them: the anchors' certificates and the enforcement. */
class MtlsGate {
  anchorPems: string[] = [];
  #anchors: X509Certificate[] = [];
  #enforced = false;
  #seen = '';

  constructor(
    private readonly member: Member,
    private readonly log: (line: string) => void,
    private readonly appliance: string | undefined,
  ) {}

  /** Reads the settings again; true when they changed. */
  async refresh(): Promise<boolean> {
    const response = await this.member.handle({ op: 'getMtlsSettings' });
    if (!response.ok) return false;
    const settings = response.result as Results['getMtlsSettings'];
    const seen = JSON.stringify(settings);
    if (seen === this.#seen) return false;
    this.#seen = seen;
    this.anchorPems = settings.anchors.map((a) => a.certificate);
    this.#anchors = this.anchorPems.flatMap((pem) => (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((b) => new X509Certificate(b)));
    this.#enforced = settings.enforcement === 'cluster';
    this.log(`mTLS: ${settings.anchors.length} trust anchor(s), enforcement ${settings.enforcement}`);
    return true;
  }

  /** Whether a connection may stay: always without enforcement; with it, a chain under an anchor. */
  admits(socket: TLSSocket): boolean {
    if (!this.#enforced) return true;
    if (this.appliance !== undefined && socket.getPeerX509Certificate()?.fingerprint256 === this.appliance) return true;
    let peer = socket.getPeerCertificate(true) as (ReturnType<TLSSocket['getPeerCertificate']> & { issuerCertificate?: { raw: Buffer } & object }) | null;
    for (let depth = 0; peer && peer.raw && depth < 8; depth++) {
      const cert = new X509Certificate(peer.raw);
      if (this.#anchors.some((anchor) => cert.fingerprint256 === anchor.fingerprint256 || (cert.checkIssued(anchor) && cert.verify(anchor.publicKey)))) return true;
      const next = peer.issuerCertificate as typeof peer | undefined;
      if (!next || next === peer) break;
      peer = next;
    }
    return false;
  }
}

/**
 * One client connection: frames in, answers out, written together once per tick (wire.ts), with
 * backpressure ({@link RequestFlow}): a client that never reads its answers holds at most a few
 * of them in the member's memory, however much it sends.
 */
function serveConnection(socket: TLSSocket, member: Member, maxFrame: number, log: (line: string) => void, settingsChanged: () => Promise<void>): void {
  const reader = new FrameReader(maxFrame);
  let closed = false;
  // Sessions logged in over this connection: when it ends, they end (session keys, quorum tokens).
  const sessions = new Set<string>();
  const closeSession = (session: string) => void member.handle({ op: 'closeSession', session });
  const flow = new RequestFlow(socket, (frame: { id: number; body: unknown }) => dispatch(frame));
  socket.on('drain', () => flow.drained());
  socket.on('close', () => {
    closed = true;
    flow.close();
    for (const s of sessions) closeSession(s);
    sessions.clear();
  });
  const send = tickBatched(socket);
  const write = (frame: Buffer) => {
    if (closed) return;
    if (!send(frame)) flow.full();
  };
  const dispatch = ({ id, body }: { id: number; body: unknown }) =>
    member.handle(body).then((response) => {
      const op = (body as { op?: unknown } | null)?.op;
      if (response.ok && op === 'login') {
        const { session } = response.result as { session: string };
        if (closed) closeSession(session);
        else sessions.add(session);
      } else if (response.ok && op === 'logout') {
        sessions.delete((body as { session: string }).session);
      } else if (response.ok && SETTINGS_OPS.has(op)) {
        void settingsChanged();
      }
      write(encodeFrame(id, response));
    });
  socket.on('data', (chunk: Buffer) => {
    let frames;
    try {
      frames = reader.push(chunk);
    } catch (e) {
      const message = e instanceof HsmError ? e.message : String(e);
      log(`closed a connection: ${message}`);
      write(encodeFrame(0, { ok: false, error: { code: 'BAD_REQUEST', message: `${message}; closing this connection` } }));
      closed = true;
      flow.close();
      socket.end();
      return;
    }
    flow.push(frames);
  });
}
