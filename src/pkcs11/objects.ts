/**
 * Strongroom's keys as PKCS #11 objects: each attribute a key has in the HSM, as CKA_… values
 * (CloudHSM's PKCS #11 library's mapping, CLOUDHSM.md §2.3), and templates read back into
 * Strongroom's attributes. A handle is the key's handle in the HSM.
 *
 * @module
 */
import { HsmError, type KeyInfo } from '../hsm-core/index.js';
import type { Attribute, AttributeValue } from './codec.js';
import { attributeClass } from './attributes.js';
import { CKA, CKK, CKO, CKR } from './constants.js';

/** A PKCS #11 return value travelling as an exception. */
export class Ckr extends Error {
  constructor(
    readonly rv: number,
    message = `CKR 0x${rv.toString(16)}`,
  ) {
    super(message);
  }
}

const CLASS_OF: Record<string, number> = { 'secret-key': CKO.SECRET_KEY, 'public-key': CKO.PUBLIC_KEY, 'private-key': CKO.PRIVATE_KEY };
const KEY_TYPE_OF: Record<string, number> = { rsa: CKK.RSA, ec: CKK.EC, aes: CKK.AES, 'generic-secret': CKK.GENERIC_SECRET, ed25519: CKK.EC_EDWARDS };

/** The named-curve OIDs (DER) of CKA_EC_PARAMS. */
export const EC_PARAMS: Readonly<Record<string, string>> = {
  secp224r1: '06052b81040021',
  secp256r1: '06082a8648ce3d030107',
  secp384r1: '06052b81040022',
  secp521r1: '06052b81040023',
  secp256k1: '06052b8104000a',
  ed25519: '06032b6570',
};
export const CURVE_BY_PARAMS = new Map(Object.entries(EC_PARAMS).map(([curve, der]) => [der, curve]));

/** Strongroom's boolean attributes by their CKA. */
export const BOOLEANS: Readonly<Record<number, string>> = {
  [CKA.TOKEN]: 'token',
  [CKA.PRIVATE]: 'private',
  [CKA.SENSITIVE]: 'sensitive',
  [CKA.ENCRYPT]: 'encrypt',
  [CKA.DECRYPT]: 'decrypt',
  [CKA.WRAP]: 'wrap',
  [CKA.UNWRAP]: 'unwrap',
  [CKA.SIGN]: 'sign',
  [CKA.VERIFY]: 'verify',
  [CKA.DERIVE]: 'derive',
  [CKA.EXTRACTABLE]: 'extractable',
  [CKA.LOCAL]: 'local',
  [CKA.NEVER_EXTRACTABLE]: 'never-extractable',
  [CKA.ALWAYS_SENSITIVE]: 'always-sensitive',
  [CKA.MODIFIABLE]: 'modifiable',
  [CKA.DESTROYABLE]: 'destroyable',
  [CKA.TRUSTED]: 'trusted',
  [CKA.WRAP_WITH_TRUSTED]: 'wrap-with-trusted',
};

const hex = (value: unknown): Buffer => Buffer.from(String(value ?? '').replace(/^0x/, ''), 'hex');

/** CKA_ID bytes ⇄ Strongroom's id: `0x…` hex as the door writes it (and the CLI prints), else the text's bytes. */
export function idBytes(id: string): Buffer {
  return /^0x([0-9a-fA-F]{2})*$/.test(id) ? hex(id) : Buffer.from(id, 'utf8');
}
export const idOf = (bytes: Buffer): string => (bytes.length ? `0x${bytes.toString('hex')}` : '');

/** A key's attribute as PKCS #11 gives it, or undefined when the object has no such attribute. */
export function attributeOf(key: KeyInfo, type: number): { value: AttributeValue; length: number } | 'sensitive' | undefined {
  const a = key.attributes as unknown as Record<string, unknown>;
  const cls = a.class as string;
  const bool = (v: unknown) => ({ value: { byte: v ? 1 : 0 }, length: 1 });
  const ulong = (v: number) => ({ value: { ulong: BigInt(v) }, length: 8 });
  const bytes = (b: Buffer) => ({ value: { bytes: b }, length: b.length });
  const asymmetric = cls !== 'secret-key';
  switch (type) {
    case CKA.CLASS:
      return ulong(CLASS_OF[cls]!);
    case CKA.KEY_TYPE:
      return KEY_TYPE_OF[a['key-type'] as string] === undefined ? undefined : ulong(KEY_TYPE_OF[a['key-type'] as string]!);
    case CKA.TOKEN:
      return bool(!key.sessionKey);
    case CKA.LABEL:
      return bytes(Buffer.from(String(a.label ?? ''), 'utf8'));
    case CKA.ID:
      return bytes(idBytes(String(a.id ?? '')));
    case CKA.SUBJECT:
      return asymmetric ? bytes(Buffer.alloc(0)) : undefined;
    case CKA.START_DATE:
    case CKA.END_DATE:
      return { value: { date: Buffer.alloc(0) }, length: 0 };
    case CKA.KEY_GEN_MECHANISM:
      return { value: { ulong: 0xffffffffffffffffn }, length: 8 };
    case CKA.SIGN_RECOVER:
    case CKA.VERIFY_RECOVER:
    case CKA.ALWAYS_AUTHENTICATE:
    case CKA.COPYABLE:
      return bool(false);
    case CKA.CHECK_VALUE:
      return typeof a['check-value'] === 'string' ? bytes(hex(a['check-value'])) : undefined;
    case CKA.MODULUS:
      return a.modulus === undefined ? undefined : bytes(hex(a.modulus));
    case CKA.MODULUS_BITS:
      return a['modulus-size-bits'] === undefined ? undefined : ulong(a['modulus-size-bits'] as number);
    case CKA.PUBLIC_EXPONENT: {
      if (a['public-exponent'] === undefined) return undefined;
      const e = (a['public-exponent'] as number).toString(16);
      return bytes(Buffer.from(e.length % 2 ? `0${e}` : e, 'hex'));
    }
    case CKA.EC_PARAMS:
      return a['key-type'] === 'ec' || a['key-type'] === 'ed25519' ? bytes(hex(EC_PARAMS[a.curve as string] ?? '')) : undefined;
    case CKA.EC_POINT:
      return a['ec-point'] === undefined ? undefined : bytes(hex(a['ec-point']));
    case CKA.VALUE_LEN:
      return cls === 'secret-key' ? ulong(a['key-length-bytes'] as number) : undefined;
    case CKA.VALUE:
      // Key material comes out this way only when the member exports it (getAttributes' `value`).
      return cls === 'public-key' ? undefined : 'sensitive';
    case CKA.PRIVATE_EXPONENT:
    case CKA.PRIME_1:
    case CKA.PRIME_2:
    case CKA.EXPONENT_1:
    case CKA.EXPONENT_2:
    case CKA.COEFFICIENT:
      return cls === 'private-key' && a['key-type'] === 'rsa' ? 'sensitive' : undefined;
    default: {
      const name = BOOLEANS[type];
      if (name === undefined || !(name in a)) return undefined;
      return bool(a[name]);
    }
  }
}

/** One GetAttributeValue answer: the attributes asked for, and the CK_RV a module would give. */
export function getAttributes(key: KeyInfo, wanted: { type: number; length: number }[], value?: Buffer): { attributes: Attribute[]; rv: number } {
  let rv: number = CKR.OK;
  const attributes = wanted.map(({ type, length: room }): Attribute => {
    // CKA_VALUE of a secret key the member let out (neither sensitive nor unextractable).
    const found = type === CKA.VALUE && value ? { value: { bytes: value }, length: value.length } : attributeOf(key, type);
    if (found === undefined || found === 'sensitive') {
      // Sensitive outranks an unknown type, as modules order them.
      if (found === 'sensitive') rv = CKR.ATTRIBUTE_SENSITIVE;
      else if (rv === CKR.OK) rv = CKR.ATTRIBUTE_TYPE_INVALID;
      return { type, value: null, length: -1 };
    }
    if (room === 0) {
      // A size query: the length, and (as p11-kit writes a NULL pValue) no value.
      const cls = attributeClass(type);
      const empty: AttributeValue = cls === 'byte' ? { byte: 0 } : cls === 'ulong' ? { ulong: 0n } : cls === 'date' ? { date: Buffer.alloc(0) } : { bytes: null };
      return { type, value: empty, length: found.length };
    }
    if (room < found.length) {
      if (rv === CKR.OK) rv = CKR.BUFFER_TOO_SMALL;
      return { type, value: null, length: -1 };
    }
    return { type, value: found.value, length: found.length };
  });
  return { attributes, rv };
}

/** A template attribute's value as a boolean, a number or bytes (refusing what its class is not). */
export function templateValue(attr: Attribute): boolean | number | Buffer {
  const v = attr.value;
  if (v === null) throw new Ckr(CKR.ATTRIBUTE_VALUE_INVALID, `attribute 0x${attr.type.toString(16)} has no value`);
  if ('byte' in v) return v.byte !== 0;
  if ('ulong' in v) {
    if (v.ulong > BigInt(Number.MAX_SAFE_INTEGER)) throw new Ckr(CKR.ATTRIBUTE_VALUE_INVALID);
    return Number(v.ulong);
  }
  if ('bytes' in v) return v.bytes ?? Buffer.alloc(0);
  if ('date' in v) return v.date;
  throw new Ckr(CKR.ATTRIBUTE_VALUE_INVALID, `attribute 0x${attr.type.toString(16)}: templates inside templates are not taken`);
}

/**
 * A PKCS #11 template as Strongroom's attributes: booleans, label and id. Attributes that only
 * describe what is made (class, key type, sizes, curve) are returned apart for the caller.
 */
export function templateAttributes(template: Attribute[]): { attributes: Record<string, unknown>; facts: Map<number, boolean | number | Buffer> } {
  const attributes: Record<string, unknown> = {};
  const facts = new Map<number, boolean | number | Buffer>();
  for (const attr of template) {
    const value = templateValue(attr);
    const name = BOOLEANS[attr.type];
    if (name !== undefined) {
      if (attr.type === CKA.LOCAL || attr.type === CKA.NEVER_EXTRACTABLE || attr.type === CKA.ALWAYS_SENSITIVE) continue; // computed by the HSM
      if (attr.type === CKA.PRIVATE) continue; // CloudHSM keys are always private objects
      attributes[name] = value === true || (Buffer.isBuffer(value) && value.length > 0 && value[0] !== 0);
    } else if (attr.type === CKA.LABEL) attributes.label = (value as Buffer).toString('utf8');
    else if (attr.type === CKA.ID) attributes.id = idOf(value as Buffer);
    else facts.set(attr.type, value);
  }
  return { attributes, facts };
}

/** Whether a key matches a FindObjects template. */
export function matches(key: KeyInfo, template: Attribute[]): boolean {
  for (const t of template) {
    const found = attributeOf(key, t.type);
    if (found === undefined || found === 'sensitive') return false;
    const want = t.value;
    const have = found.value;
    if (want === null) return false;
    if ('byte' in want && 'byte' in have && (want.byte !== 0) !== (have.byte !== 0)) return false;
    if ('ulong' in want && 'ulong' in have && want.ulong !== have.ulong) return false;
    if ('bytes' in want && 'bytes' in have && !(want.bytes ?? Buffer.alloc(0)).equals(have.bytes ?? Buffer.alloc(0))) return false;
  }
  return true;
}

/** The CK_RV for a refusal from the HSM. */
export function rvOf(e: unknown): number {
  if (e instanceof Ckr) return e.rv;
  if (!(e instanceof HsmError)) return CKR.GENERAL_ERROR;
  const map: Record<string, number> = {
    LOGIN_FAILED: CKR.PIN_INCORRECT,
    USER_LOCKED: CKR.PIN_LOCKED,
    NOT_LOGGED_IN: CKR.USER_NOT_LOGGED_IN,
    PERMISSION_DENIED: CKR.FUNCTION_REJECTED,
    KEY_NOT_FOUND: CKR.OBJECT_HANDLE_INVALID,
    NOT_KEY_OWNER: CKR.ACTION_PROHIBITED,
    ATTRIBUTE_FORBIDS_OPERATION: CKR.KEY_FUNCTION_NOT_PERMITTED,
    ATTRIBUTE_READ_ONLY: CKR.ATTRIBUTE_READ_ONLY,
    ATTRIBUTE_INVALID: CKR.ATTRIBUTE_VALUE_INVALID,
    TEMPLATE_INCONSISTENT: CKR.TEMPLATE_INCONSISTENT,
    KEY_NOT_EXTRACTABLE: CKR.KEY_UNEXTRACTABLE,
    KEY_TYPE_INCONSISTENT: CKR.KEY_TYPE_INCONSISTENT,
    KEY_SIZE_INVALID: CKR.KEY_SIZE_RANGE,
    KEY_DATA_INVALID: CKR.ATTRIBUTE_VALUE_INVALID,
    MECHANISM_PARAM_INVALID: CKR.MECHANISM_PARAM_INVALID,
    DATA_INVALID: CKR.DATA_INVALID,
    DECRYPTION_FAILED: CKR.ENCRYPTED_DATA_INVALID,
    NOT_SUPPORTED_BY_PROFILE: CKR.MECHANISM_INVALID,
    LIMIT_EXCEEDED: CKR.DATA_LEN_RANGE,
    QUOTA_EXCEEDED: CKR.DEVICE_MEMORY,
    QUORUM_APPROVAL_REQUIRED: CKR.FUNCTION_REJECTED,
    MEMBER_UNAVAILABLE: CKR.DEVICE_ERROR,
  };
  return map[e.code] ?? CKR.FUNCTION_FAILED;
}
