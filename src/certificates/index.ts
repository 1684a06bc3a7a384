/**
 * Certificates, for everything that makes or reads them outside the HSM member: loading
 * `@peculiar/x509` (with Node's WebCrypto as its default provider), PEM text, serial numbers, and
 * the one way a certificate is issued here — by the operator's trust anchor (cluster-client's
 * `TrustAnchor`) or by a CA whose key is in the HSM (keystore's `IssuingCa`). It imports nothing
 * of this project's.
 *
 * @module
 */
import { webcrypto } from 'node:crypto';
import type * as X509 from '@peculiar/x509';

type CryptoKey = webcrypto.CryptoKey;

/** @peculiar/x509 (and the metadata polyfill it needs), loaded only by those who make or read certificates. */
export async function loadX509(): Promise<typeof X509> {
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof X509.cryptoProvider.set>[0]);
  return x509;
}

/** DER as PEM text with the given label. */
export function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
}

/** A certificate serial number: 16 random bytes, positive (RFC 5280 §4.1.2.2), as hex. */
export function serialNumber(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return Buffer.from(bytes).toString('hex');
}

const DAY = 86_400_000;

export interface Issue {
  subject: string;
  /** The issuer's name; the subject's for a self-signed certificate. */
  issuer: string;
  publicKey: CryptoKey | X509.PublicKey;
  signingKey: CryptoKey;
  signingAlgorithm: { name: string; hash?: string };
  /** Valid for this many days from a minute ago, unless `notBefore` / `notAfter` say otherwise, and never past `until` (the issuer's own end). */
  days: number;
  notBefore?: Date;
  notAfter?: Date;
  until?: Date;
  extensions: X509.Extension[];
  /** The WebCrypto that signs (an HSM session's, for an HSM key); default Node's. */
  crypto?: webcrypto.Crypto;
}

/** Issues (signs) one certificate. */
export async function issueCertificate(x509: typeof X509, o: Issue): Promise<X509.X509Certificate> {
  const now = Date.now();
  const end = o.notAfter ?? new Date(now + o.days * DAY);
  return x509.X509CertificateGenerator.create(
    {
      serialNumber: serialNumber(),
      subject: o.subject,
      issuer: o.issuer,
      notBefore: o.notBefore ?? new Date(now - 60_000),
      notAfter: o.until && o.until < end ? o.until : end,
      signingAlgorithm: o.signingAlgorithm,
      publicKey: o.publicKey as never,
      signingKey: o.signingKey as never,
      extensions: o.extensions,
    },
    (o.crypto ?? webcrypto) as never,
  );
}
