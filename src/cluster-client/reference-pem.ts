/**
 * Reference PEMs: CloudHSM's "fake PEM" private keys (`key generate-file --encoding reference-pem`),
 * which SSL-offload and migration runbooks hand to OpenSSL and nginx. The file has the shape of an
 * ordinary private key (PKCS #1 for RSA, SEC 1 for EC) so tools that read a private key read it,
 * and its public half is the real one; where the secret would be it holds only a marker and the
 * key's reference in the HSM. No key material ever leaves the HSM to make one: it is built from
 * the key's public attributes.
 *
 * Strongroom's marker: the 8 bytes `SRKEYREF` followed by the key reference (8 bytes, big-endian),
 * as the RSA private exponent, or as the last 16 bytes of the EC private scalar (zeros in front).
 * The other RSA private fields are 1.
 *
 * @module
 */
import { AsnConvert } from '@peculiar/asn1-schema';
import { RSAPrivateKey } from '@peculiar/asn1-rsa';
import { ECParameters, ECPrivateKey } from '@peculiar/asn1-ecc';
import { OctetString } from '@peculiar/asn1-schema';
import { HsmError, type KeyInfo } from '../hsm-core/client.js';

const MAGIC = Buffer.from('SRKEYREF', 'ascii');

/** The named-curve OIDs of the curves the HSM holds. */
const CURVE_OIDS: Readonly<Record<string, string>> = {
  secp224r1: '1.3.132.0.33',
  secp256r1: '1.2.840.10045.3.1.7',
  secp384r1: '1.3.132.0.34',
  secp521r1: '1.3.132.0.35',
  secp256k1: '1.3.132.0.10',
};
const CURVE_BY_OID = new Map(Object.entries(CURVE_OIDS).map(([name, oid]) => [oid, name]));

function marker(keyReference: number): Buffer {
  const ref = Buffer.alloc(8);
  ref.writeBigUInt64BE(BigInt(keyReference));
  return Buffer.concat([MAGIC, ref]);
}

const unhex = (hex: unknown) => Buffer.from(String(hex).replace(/^0x/, ''), 'hex');
const pem = (label: string, der: ArrayBuffer) =>
  `-----BEGIN ${label}-----\n${Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END ${label}-----\n`;

/** The point inside the member's DER-wrapped ec-point (a DER OCTET STRING). */
function pointOf(ecPoint: unknown): Buffer {
  const der = unhex(ecPoint);
  const long = der[1]! & 0x80 ? der[1]! & 0x7f : 0;
  return der.subarray(2 + long);
}

/** A reference PEM for a private RSA or EC key, from what the HSM reports of it. */
export function referencePem(key: KeyInfo): string {
  const a = key.attributes;
  if (a.class !== 'private-key') throw new HsmError('BAD_REQUEST', `--encoding reference-pem: key ${key.keyReference} is a ${String(a.class)}; a reference PEM stands for a private key (use --encoding pem for a public key)`);
  const one = new Uint8Array([1]).buffer;
  if (a['key-type'] === 'rsa') {
    const exponent = Buffer.alloc(4);
    exponent.writeUInt32BE(a['public-exponent']!);
    const der = AsnConvert.serialize(
      new RSAPrivateKey({
        modulus: new Uint8Array(unhex(a.modulus)).buffer,
        publicExponent: new Uint8Array(exponent.subarray(exponent.findIndex((b) => b !== 0))).buffer,
        privateExponent: new Uint8Array(marker(key.handle)).buffer,
        prime1: one,
        prime2: one,
        exponent1: one,
        exponent2: one,
        coefficient: one,
      }),
    );
    return pem('RSA PRIVATE KEY', der);
  }
  if (a['key-type'] === 'ec') {
    const point = pointOf(a['ec-point']);
    const scalar = Buffer.alloc((point.length - 1) / 2);
    marker(key.handle).copy(scalar, scalar.length - 16);
    const der = AsnConvert.serialize(
      new ECPrivateKey({
        privateKey: new OctetString(new Uint8Array(scalar)),
        parameters: new ECParameters({ namedCurve: CURVE_OIDS[a.curve!]! }),
        publicKey: new Uint8Array(point).buffer,
      }),
    );
    return pem('EC PRIVATE KEY', der);
  }
  throw new HsmError('BAD_REQUEST', `--encoding reference-pem: key ${key.keyReference} is ${String(a['key-type'])}; reference PEMs stand for RSA and EC private keys, as CloudHSM's do`);
}

/**
 * The key a reference PEM stands for, or null when the PEM is an ordinary private key (a real key,
 * which a caller must not treat as a reference).
 */
export function parseReferencePem(text: string): { keyType: 'rsa' | 'ec'; keyReference: number; curve?: string } | null {
  const m = /-----BEGIN (RSA|EC) PRIVATE KEY-----([\s\S]+?)-----END \1 PRIVATE KEY-----/.exec(text);
  if (!m) return null;
  const der = new Uint8Array(Buffer.from(m[2]!.replace(/\s+/g, ''), 'base64'));
  const fromMarker = (bytes: Buffer): number | null =>
    bytes.length >= 16 && bytes.subarray(bytes.length - 16, bytes.length - 8).equals(MAGIC) && bytes.subarray(0, bytes.length - 16).every((b) => b === 0)
      ? Number(bytes.readBigUInt64BE(bytes.length - 8))
      : null;
  try {
    if (m[1] === 'RSA') {
      const key = AsnConvert.parse(der, RSAPrivateKey);
      const ref = fromMarker(Buffer.from(key.privateExponent));
      return ref === null ? null : { keyType: 'rsa', keyReference: ref };
    }
    const key = AsnConvert.parse(der, ECPrivateKey);
    const ref = fromMarker(Buffer.from(key.privateKey.buffer));
    const curve = key.parameters?.namedCurve ? CURVE_BY_OID.get(key.parameters.namedCurve) : undefined;
    return ref === null ? null : { keyType: 'ec', keyReference: ref, ...(curve ? { curve } : {}) };
  } catch {
    return null;
  }
}
