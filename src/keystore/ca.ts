/**
 * An issuing certificate authority whose private keys live in the HSM (one of CloudHSM's main
 * uses): a root CA key pair made in the HSM as non-extractable token keys, a self-signed root
 * certificate, intermediates, and leaf certificates signed from PKCS #10 requests. Every
 * signature is made by the HSM through the session's WebCrypto door; `@peculiar/x509` builds the
 * certificates around it.
 *
 * Keys are labelled as CloudHSM's KeyStore expects: the private key's label is the alias, the
 * public key's `alias:public`, so a KeyStore finds them by alias.
 *
 * Revocation is not done yet; CA certificates carry `cRLSign` so that CRLs can be added later.
 *
 * @module
 */
import type * as X509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { issueCertificate, loadX509 } from '../certificates/index.js';
import { HsmError } from '../hsm-core/index.js';
import type { HsmSession } from '../app/index.js';

type CryptoKey = webcrypto.CryptoKey;
type Crypto = webcrypto.Crypto;

export type CaKeyAlgorithm = 'ECDSA-P256' | 'ECDSA-P384' | 'RSA-2048' | 'RSA-3072' | 'RSA-4096';

interface AlgorithmPlan {
  request: Record<string, unknown>;
  webKey: { name: string; namedCurve?: string; hash?: string };
  signing: { name: string; hash: string };
}

function plan(algorithm: CaKeyAlgorithm): AlgorithmPlan {
  switch (algorithm) {
    case 'ECDSA-P256':
      return { request: { keyType: 'ec', curve: 'secp256r1' }, webKey: { name: 'ECDSA', namedCurve: 'P-256' }, signing: { name: 'ECDSA', hash: 'SHA-256' } };
    case 'ECDSA-P384':
      return { request: { keyType: 'ec', curve: 'secp384r1' }, webKey: { name: 'ECDSA', namedCurve: 'P-384' }, signing: { name: 'ECDSA', hash: 'SHA-384' } };
    case 'RSA-2048':
    case 'RSA-3072':
    case 'RSA-4096': {
      const bits = Number(algorithm.slice(4));
      return { request: { keyType: 'rsa', modulusBits: bits }, webKey: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, signing: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } };
    }
    default:
      throw new HsmError('BAD_REQUEST', `algorithm: one of ECDSA-P256, ECDSA-P384, RSA-2048, RSA-3072, RSA-4096, got ${JSON.stringify(algorithm)}`);
  }
}

/** A key pair in the HSM, as WebCrypto keys of the session. */
export interface HsmKeyPair {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  privateHandle: number;
  publicHandle: number;
}

/**
 * Makes a key pair in the HSM as token keys labelled `alias` and `alias:public`; the private key
 * is non-extractable unless `extractable` says otherwise.
 */
export async function generateHsmKeyPair(session: HsmSession, alias: string, algorithm: CaKeyAlgorithm, options: { extractable?: boolean } = {}): Promise<HsmKeyPair> {
  const p = plan(algorithm);
  const r = await session.send({
    op: 'generateKeyPair',
    ...p.request,
    privateAttributes: { sign: true, token: true, label: alias, extractable: options.extractable === true },
    publicAttributes: { verify: true, token: true, label: `${alias}:public` },
  } as never);
  const { privateHandle, publicHandle } = r as { privateHandle: number; publicHandle: number };
  return {
    privateHandle,
    publicHandle,
    privateKey: await session.crypto.keyFromHandle(privateHandle, p.webKey as never),
    publicKey: await session.crypto.keyFromHandle(publicHandle, p.webKey as never),
  };
}

export interface CaOptions {
  /** The distinguished name, e.g. `CN=Example Root CA, O=Example`. */
  subject: string;
  /** The alias: the label of the CA's private key in the HSM. */
  alias: string;
  algorithm?: CaKeyAlgorithm;
  /** Validity in days (root default 3650, intermediate 1825). */
  days?: number;
  /** How many CAs may follow it in a chain (basic constraints pathLenConstraint). */
  pathLength?: number;
  /** False for a self-signed end-entity certificate (keytool -genkeypair without -ext bc:c). Default true. */
  ca?: boolean;
}

export interface LeafOptions {
  /** Validity in days, default 397. */
  days?: number;
  /** Extended key usages; default serverAuth and clientAuth. */
  usages?: ('serverAuth' | 'clientAuth' | 'codeSigning' | 'emailProtection')[];
}

/** An issuing CA: its certificate, its chain up to the root, and its private key in the HSM. */
export class IssuingCa {
  readonly certificate: X509.X509Certificate;
  /** This CA's certificate first, the root last. */
  readonly chain: X509.X509Certificate[];
  readonly #key: CryptoKey;
  readonly #signing: { name: string; hash: string };
  readonly #session: HsmSession;
  readonly #x509: typeof X509;

  private constructor(x509: typeof X509, session: HsmSession, chain: X509.X509Certificate[], key: CryptoKey, signing: { name: string; hash: string }) {
    this.#x509 = x509;
    this.#session = session;
    this.chain = chain;
    this.certificate = chain[0]!;
    this.#key = key;
    this.#signing = signing;
  }

  /** The CA's private key in the HSM, as a CryptoKey of the session (for a KeyStore entry). */
  get privateKey(): CryptoKey {
    return this.#key;
  }

  get #crypto(): Crypto {
    return this.#session.crypto as unknown as Crypto;
  }

  /** A new root CA: a key pair made in the HSM and a self-signed certificate. */
  static async createRoot(session: HsmSession, options: CaOptions): Promise<IssuingCa> {
    const x509 = await loadX509();
    const algorithm = options.algorithm ?? 'ECDSA-P384';
    const p = plan(algorithm);
    const keys = await generateHsmKeyPair(session, options.alias, algorithm);
    const crypto = session.crypto as unknown as Crypto;
    const certificate = await issueCertificate(x509, {
      subject: options.subject,
      issuer: options.subject,
      publicKey: keys.publicKey,
      signingKey: keys.privateKey,
      signingAlgorithm: p.signing,
      days: options.days ?? 3650,
      crypto: crypto as never,
      extensions: [
        ...(options.ca === false
          ? [new x509.BasicConstraintsExtension(false, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true)]
          : [
              new x509.BasicConstraintsExtension(true, options.pathLength, true),
              new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
            ]),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as never, false, crypto as never),
      ],
    });
    return new IssuingCa(x509, session, [certificate], keys.privateKey, p.signing);
  }

  /**
   * A CA whose key is already in the HSM (found by its alias) and whose chain is known: for
   * example after a KeyStore reload in a new session.
   */
  static async open(session: HsmSession, alias: string, chain: X509.X509Certificate[]): Promise<IssuingCa> {
    const x509 = await loadX509();
    if (!chain.length) throw new HsmError('BAD_REQUEST', 'chain: the CA certificate first, up to the root');
    const { keys } = await session.send({ op: 'findKeys', filter: { attributes: { label: alias, class: 'private-key' } } });
    if (!keys.length) throw new HsmError('KEY_NOT_FOUND', `no private key labelled ${alias} that ${session.username} can see`);
    const info = keys[0]!;
    const algorithm = chain[0]!.publicKey.algorithm as { name: string; namedCurve?: string };
    const ec = algorithm.name === 'ECDSA';
    const signing = ec ? { name: 'ECDSA', hash: algorithm.namedCurve === 'P-384' ? 'SHA-384' : 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    const key = await session.crypto.keyFromHandle(info.handle, (ec ? { name: 'ECDSA', namedCurve: algorithm.namedCurve } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }) as never);
    return new IssuingCa(x509, session, chain, key, signing);
  }

  /** An intermediate CA under this one, its key made in the HSM. */
  async issueIntermediate(options: CaOptions): Promise<IssuingCa> {
    const x509 = this.#x509;
    const algorithm = options.algorithm ?? 'ECDSA-P384';
    const p = plan(algorithm);
    const keys = await generateHsmKeyPair(this.#session, options.alias, algorithm);
    const certificate = await this.#issue(options.subject, keys.publicKey, options.days ?? 1825, [
      new x509.BasicConstraintsExtension(true, options.pathLength, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ]);
    return new IssuingCa(x509, this.#session, [certificate, ...this.chain], keys.privateKey, p.signing);
  }

  /**
   * Signs a PKCS #10 request (PEM or DER) after checking its signature: the subject and subject
   * alternative names come from the request, the rest from this CA.
   */
  async signCsr(csr: string | Uint8Array, options: LeafOptions = {}): Promise<X509.X509Certificate> {
    const x509 = this.#x509;
    let request: X509.Pkcs10CertificateRequest;
    try {
      request = new x509.Pkcs10CertificateRequest(typeof csr === 'string' ? csr : Buffer.from(csr));
    } catch (e) {
      throw new HsmError('BAD_REQUEST', `csr: not a PKCS #10 request (${e instanceof Error ? e.message : String(e)})`);
    }
    if (!(await request.verify(webcrypto as never))) throw new HsmError('BAD_REQUEST', `csr: the request's signature does not verify (subject ${request.subject})`);
    const rsa = request.publicKey.algorithm.name.startsWith('RSA');
    const san = request.getExtension('2.5.29.17');
    const ekus = (options.usages ?? ['serverAuth', 'clientAuth']).map((u) => x509.ExtendedKeyUsage[u]);
    return this.#issue(request.subject, request.publicKey, options.days ?? 397, [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | (rsa ? x509.KeyUsageFlags.keyEncipherment : 0), true),
      new x509.ExtendedKeyUsageExtension(ekus, false),
      ...(san ? [san] : []),
    ]);
  }

  /** `publicKey`: an HSM key of this session, or the public key of a request. */
  async #issue(subject: string, publicKey: CryptoKey | X509.PublicKey, days: number, extensions: X509.Extension[]): Promise<X509.X509Certificate> {
    const x509 = this.#x509;
    return issueCertificate(x509, {
      subject,
      issuer: this.certificate.subject,
      publicKey,
      signingKey: this.#key,
      signingAlgorithm: this.#signing,
      days,
      until: this.certificate.notAfter,
      crypto: this.#crypto as never,
      extensions: [
        ...extensions,
        await x509.SubjectKeyIdentifierExtension.create(publicKey as never, false, this.#crypto as never),
        await x509.AuthorityKeyIdentifierExtension.create(this.certificate, false, this.#crypto as never),
      ],
    });
  }
}
