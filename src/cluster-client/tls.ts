/**
 * Network members: the client side of mutual TLS, the operator's trust anchor, and `connect`.
 *
 * - `SocketTransport`: one TLS 1.3 connection to a member, many requests in flight, frames
 *   written together once per tick, or every 16 frames (wire.ts).
 * - `TrustAnchor`: the operator's own CA (CloudHSM's customerCA): it signs each member's cluster
 *   CSR and the client certificates. Its key is the operator's credential, kept in the cluster's
 *   data folder (0600); it is not an HSM key and never enters a member.
 *
 * (`connect`, which discovers a cluster's members from one address, is app/remote-cluster.ts.)
 *
 * @module
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { webcrypto } from 'node:crypto';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type * as X509 from '@peculiar/x509';
import { issueCertificate, loadX509, pem } from '../certificates/index.js';
import { FrameReader, HsmError, encodeFrame, tickBatched, writeFileDurably, type Response } from '../hsm-core/client.js';
import { PendingTransport } from './transport.js';
import { parseAddress } from './address.js';

type CryptoKeyPair = webcrypto.CryptoKeyPair;
type CryptoKey = webcrypto.CryptoKey;

/** Client credentials for mutual TLS, as PEM text or bytes. */
export interface TlsCredentials {
  /** The trust anchor that issued the members' certificates (customerCA.crt). */
  ca: string | Buffer;
  /** This client's certificate, issued by the same trust anchor. */
  cert: string | Buffer;
  /** This client's private key. */
  key: string | Buffer;
}

/** One member over mutual TLS. */
export class SocketTransport extends PendingTransport {
  readonly description: string;
  readonly #socket: TLSSocket;
  /** Requests posted within one tick leave together (in writes of up to 16 frames). */
  readonly #send: (frame: Uint8Array) => boolean;

  private constructor(socket: TLSSocket, description: string) {
    super();
    this.#socket = socket;
    this.#send = tickBatched(socket);
    this.description = description;
    const reader = new FrameReader();
    socket.on('data', (chunk: Buffer) => {
      let frames;
      try {
        frames = reader.push(chunk);
      } catch (e) {
        this.down(`the member sent a bad frame (${e instanceof Error ? e.message : String(e)})`);
        socket.destroy();
        return;
      }
      for (const { id, body } of frames) {
        if (id === 0) {
          const error = (body as { error?: { message?: string } }).error;
          this.down(`the member closed the connection: ${error?.message ?? 'no reason given'}`);
          continue;
        }
        this.answer(id, body as Response);
      }
    });
    socket.on('close', () => this.down('the connection closed'));
    socket.on('error', (e) => this.down(`connection error: ${e.message}`));
    socket.unref();
  }

  protected hold(active: boolean): void {
    if (active) this.#socket.ref();
    else this.#socket.unref();
  }

  /** Connects and completes the TLS handshake (the member's certificate checked against `ca`). */
  static connect(address: string, credentials: TlsCredentials, options: { timeoutMs?: number; description?: string } = {}): Promise<SocketTransport> {
    const { host, port } = parseAddress(address);
    const description = options.description ?? `tls member ${address}`;
    return new Promise((resolve, reject) => {
      // The member's certificate must chain to the cluster's trust anchor; its names are not
      // checked against the address, as CloudHSM's client checks the cluster certificate against
      // customerCA.crt only (the certificate a customer signs over the cluster CSR names no host).
      const socket = tlsConnect({ host, port, ca: credentials.ca, cert: credentials.cert, key: credentials.key, minVersion: 'TLSv1.3', servername: /^[\d.:]+$/.test(host) ? undefined : host, checkServerIdentity: () => undefined });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new HsmError('MEMBER_UNAVAILABLE', `${description}: no TLS handshake within ${options.timeoutMs ?? 5000} ms`));
      }, options.timeoutMs ?? 5000);
      const fail = (e: Error) => {
        clearTimeout(timer);
        reject(new HsmError('MEMBER_UNAVAILABLE', `${description}: ${e.message}`));
      };
      socket.once('error', fail);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        socket.off('error', fail);
        socket.setNoDelay(true);
        resolve(new SocketTransport(socket, description));
      });
    });
  }

  protected post(id: number, request: unknown): void {
    this.#send(encodeFrame(id, request));
  }

  /** Drops the connection as if the network had failed (tests). */
  kill(): void {
    this.#socket.destroy();
  }

  async close(): Promise<void> {
    this.down('the cluster was closed');
    this.#socket.destroy();
  }
}

const RSA = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) } as const;
const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;

/**
 * The operator's trust anchor: a self-signed RSA-2048 CA (as CloudHSM asks for), kept as
 * `customerCA.key` (0600) and `customerCA.crt` in a folder.
 */
export class TrustAnchor {
  readonly certificate: X509.X509Certificate;
  readonly #key: CryptoKey;
  readonly #x509: typeof X509;

  private constructor(x509: typeof X509, certificate: X509.X509Certificate, key: CryptoKey) {
    this.#x509 = x509;
    this.certificate = certificate;
    this.#key = key;
  }

  /** Loads the trust anchor from `dir`, or makes one there. */
  static async openOrCreate(dir: string, name = 'Strongroom local trust anchor'): Promise<TrustAnchor> {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const x509 = await loadX509();
    const keyFile = join(dir, 'customerCA.key');
    const certFile = join(dir, 'customerCA.crt');
    if (existsSync(keyFile) && existsSync(certFile)) {
      const certificate = new x509.X509Certificate(readFileSync(certFile, 'utf8'));
      const der = Buffer.from(readFileSync(keyFile, 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64');
      const key = await webcrypto.subtle.importKey('pkcs8', der, RSA, false, ['sign']);
      return new TrustAnchor(x509, certificate, key);
    }
    const keys = (await webcrypto.subtle.generateKey(RSA, true, ['sign', 'verify'])) as CryptoKeyPair;
    const certificate = await issueCertificate(x509, {
      subject: `CN=${name}`,
      issuer: `CN=${name}`,
      publicKey: keys.publicKey,
      signingKey: keys.privateKey,
      signingAlgorithm: RSA,
      days: 3650,
      extensions: [new x509.BasicConstraintsExtension(true, 1, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
    });
    writeFileDurably(keyFile, pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), 0o600);
    writeFileDurably(certFile, certificate.toString('pem') + '\n', 0o644);
    return new TrustAnchor(x509, certificate, keys.privateKey);
  }

  get pem(): string {
    return this.certificate.toString('pem') + '\n';
  }

  /** Signs a member's cluster CSR: the member's certificate, with the CSR's names. */
  async signClusterCsr(csrPem: string, options: { days?: number } = {}): Promise<string> {
    const x509 = this.#x509;
    const csr = new x509.Pkcs10CertificateRequest(csrPem);
    if (!(await csr.verify())) throw new HsmError('BAD_REQUEST', 'cluster CSR: its signature does not verify');
    const san = csr.getExtension('2.5.29.17'); // subjectAltName
    const cert = await this.#issue(csr.subject, await csr.publicKey.export(), options.days ?? 825, [
      ...(san ? [san] : []),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
    ]);
    return cert.toString('pem') + '\n';
  }

  /** A client certificate and key (PEM) for mutual TLS; `notAfter` in the past makes an expired one (tests). */
  async issueClient(name: string, options: { notBefore?: Date; notAfter?: Date } = {}): Promise<{ cert: string; key: string }> {
    const x509 = this.#x509;
    const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
    const cert = await this.#issue(`CN=${name}`, keys.publicKey, 825, [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])], options);
    return { cert: cert.toString('pem') + '\n', key: pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)) };
  }

  async #issue(subject: string, publicKey: CryptoKey, days: number, extensions: X509.Extension[], validity: { notBefore?: Date; notAfter?: Date } = {}): Promise<X509.X509Certificate> {
    const x509 = this.#x509;
    return issueCertificate(x509, {
      subject,
      issuer: this.certificate.subject,
      publicKey,
      signingKey: this.#key,
      signingAlgorithm: RSA,
      days,
      ...validity,
      extensions: [new x509.BasicConstraintsExtension(false, undefined, true), ...extensions],
    });
  }
}
