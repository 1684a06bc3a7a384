/**
 * Keys a template describes: key import by C_CreateObject (plaintext key material, as CloudHSM's
 * PKCS #11 library takes it), the class and type of the key C_UnwrapKey or C_DeriveKey makes, and
 * the DER the member takes for a public EC point.
 *
 * @module
 */
import type { Jwk, KeyClass, KeyType } from '../hsm-core/index.js';
import { CKA, CKK, CKO, CKR } from './constants.js';
import { CURVE_BY_PARAMS, Ckr } from './objects.js';

/** One DER element: tag, definite length, contents. */
export function der(tag: number, contents: Buffer): Buffer {
  const n = contents.length;
  const length = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), length, contents]);
}

const EC_PUBLIC_KEY_OID = Buffer.from('06072a8648ce3d0201', 'hex');

/** An uncompressed point, unwrapped when it comes DER-wrapped as CKA_EC_POINT is (04 len 04 x y). */
export function rawPoint(point: Buffer, what: string): Buffer {
  const raw = point[0] === 0x04 && point.length > 2 && point[1] === point.length - 2 && point[2] === 0x04 ? point.subarray(2) : point;
  if (raw[0] !== 0x04 || raw.length % 2 !== 1) throw new Ckr(CKR.ATTRIBUTE_VALUE_INVALID, `${what}: an uncompressed EC point (04 ‖ x ‖ y)`);
  return raw;
}

/** The SubjectPublicKeyInfo of an EC point on the curve CKA_EC_PARAMS names. */
export function ecSpki(curveParams: Buffer, point: Buffer, what: string): Buffer {
  return der(0x30, Buffer.concat([der(0x30, Buffer.concat([EC_PUBLIC_KEY_OID, curveParams])), der(0x03, Buffer.concat([Buffer.from([0]), rawPoint(point, what)]))]));
}

const CLASSES: Readonly<Record<number, KeyClass>> = { [CKO.SECRET_KEY]: 'secret-key', [CKO.PUBLIC_KEY]: 'public-key', [CKO.PRIVATE_KEY]: 'private-key' };
const TYPES: Readonly<Record<number, KeyType>> = { [CKK.AES]: 'aes', [CKK.GENERIC_SECRET]: 'generic-secret', [CKK.RSA]: 'rsa', [CKK.EC]: 'ec' };
const SECRET_TYPES: ReadonlySet<KeyType> = new Set(['aes', 'generic-secret']);

type Facts = ReadonlyMap<number, boolean | number | Buffer>;

/** The class and type a key template names (CKA_CLASS and CKA_KEY_TYPE, both required), as the member's. */
export function keyKind(facts: Facts, call: string): { keyClass: KeyClass; keyType: KeyType } {
  const cls = facts.get(CKA.CLASS);
  const type = facts.get(CKA.KEY_TYPE);
  if (typeof cls !== 'number' || typeof type !== 'number') throw new Ckr(CKR.TEMPLATE_INCOMPLETE, `${call}: the template names the key's CKA_CLASS and CKA_KEY_TYPE`);
  const keyClass = CLASSES[cls];
  const keyType = TYPES[type];
  if (!keyClass) throw new Ckr(CKR.TEMPLATE_INCONSISTENT, `${call}: CKA_CLASS 0x${cls.toString(16)} is not a key class`);
  if (!keyType) throw new Ckr(CKR.TEMPLATE_INCONSISTENT, `${call}: CKA_KEY_TYPE 0x${type.toString(16)} is not a key type the HSM holds here (AES, generic secret, RSA, EC)`);
  if ((keyClass === 'secret-key') !== SECRET_TYPES.has(keyType)) throw new Ckr(CKR.TEMPLATE_INCONSISTENT, `${call}: a ${keyClass} cannot be of key type ${keyType}`);
  return { keyClass, keyType };
}

const b64url = (b: Buffer): string => b.subarray(b.findIndex((x) => x !== 0) < 0 ? b.length - 1 : b.findIndex((x) => x !== 0)).toString('base64url');

/** What C_CreateObject of a key asks the member to import (the importKey request without its op and attributes). */
export function importOf(facts: Facts): { keyClass: KeyClass; keyType: KeyType; format: 'raw' | 'spki' | 'pkcs8' | 'jwk'; keyData: Uint8Array | Jwk } {
  const { keyClass, keyType } = keyKind(facts, 'C_CreateObject');
  const bytes = (type: number, name: string): Buffer => {
    const v = facts.get(type);
    if (!Buffer.isBuffer(v) || v.length === 0) throw new Ckr(CKR.TEMPLATE_INCOMPLETE, `C_CreateObject: a ${keyType} ${keyClass} needs ${name}`);
    return v;
  };
  if (keyClass === 'secret-key') {
    const value = bytes(CKA.VALUE, 'CKA_VALUE');
    const length = facts.get(CKA.VALUE_LEN);
    if (length !== undefined && length !== value.length) throw new Ckr(CKR.TEMPLATE_INCONSISTENT, `C_CreateObject: CKA_VALUE_LEN is ${String(length)} but CKA_VALUE has ${value.length} bytes`);
    return { keyClass, keyType, format: 'raw', keyData: value };
  }
  if (keyType === 'rsa') {
    const n = b64url(bytes(CKA.MODULUS, 'CKA_MODULUS'));
    const e = b64url(bytes(CKA.PUBLIC_EXPONENT, 'CKA_PUBLIC_EXPONENT'));
    if (keyClass === 'public-key') return { keyClass, keyType, format: 'jwk', keyData: { kty: 'RSA', n, e } };
    const part = (type: number, name: string) => b64url(bytes(type, name));
    return {
      keyClass,
      keyType,
      format: 'jwk',
      keyData: {
        kty: 'RSA', n, e,
        d: part(CKA.PRIVATE_EXPONENT, 'CKA_PRIVATE_EXPONENT'),
        p: part(CKA.PRIME_1, 'CKA_PRIME_1'),
        q: part(CKA.PRIME_2, 'CKA_PRIME_2'),
        dp: part(CKA.EXPONENT_1, 'CKA_EXPONENT_1'),
        dq: part(CKA.EXPONENT_2, 'CKA_EXPONENT_2'),
        qi: part(CKA.COEFFICIENT, 'CKA_COEFFICIENT'),
      },
    };
  }
  const params = bytes(CKA.EC_PARAMS, 'CKA_EC_PARAMS');
  const curve = CURVE_BY_PARAMS.get(params.toString('hex'));
  if (!curve || curve === 'ed25519') throw new Ckr(CKR.CURVE_NOT_SUPPORTED, 'CKA_EC_PARAMS names no curve the HSM holds (P-224, P-256, P-384, P-521, secp256k1)');
  if (keyClass === 'public-key') return { keyClass, keyType, format: 'spki', keyData: ecSpki(params, bytes(CKA.EC_POINT, 'CKA_EC_POINT'), 'CKA_EC_POINT') };
  // PKCS #8 of an ECPrivateKey without its public half: the member computes it.
  const ecPrivateKey = der(0x30, Buffer.concat([Buffer.from('020101', 'hex'), der(0x04, bytes(CKA.VALUE, 'CKA_VALUE'))]));
  const pkcs8 = der(0x30, Buffer.concat([Buffer.from('020100', 'hex'), der(0x30, Buffer.concat([EC_PUBLIC_KEY_OID, params])), der(0x04, ecPrivateKey)]));
  return { keyClass, keyType, format: 'pkcs8', keyData: pkcs8 };
}
