/**
 * A quicker reading of the requests a member answers most — sign, verify, encrypt, decrypt and
 * digest, with their common mechanisms — than the schemas' (protocol.ts), which cost a quarter of
 * an HMAC's whole time at the door.
 *
 * It accepts only requests the schema accepts, and gives what the schema would give: a new
 * object (and a new mechanism object) holding the fields read, each read once. Anything else —
 * another mechanism, a quorum approval, a field present but undefined, an inherited field, any
 * doubt — it leaves to the schema (undefined), which also words every refusal. The tests hold it
 * to the schema request by request (test/hsm-core/hot-requests.test.ts).
 *
 * @module
 */
import { GCM_TAG_BITS, HASHES, SIGNATURE_FORMATS, isBytes } from './protocol.js';

type Check = (v: unknown) => boolean;
/** A field's rule: a check of its value, or (a mechanism) the shapes it may have, by its name. */
type Rule = Check | Union;
type Union = Map<unknown, Shape>;
/** A strict object: the fields it must have and those it may have, each with its rule. */
interface Shape {
  required: Map<string, Rule>;
  optional: Map<string, Rule>;
}

const shape = (required: Record<string, Rule>, optional: Record<string, Rule> = {}): Shape => ({
  required: new Map(Object.entries(required)),
  optional: new Map(Object.entries(optional)),
});

const HASH_NAMES = new Set<unknown>(HASHES);
const hash: Check = (v) => HASH_NAMES.has(v);
const intIn = (min: number, max: number): Check => (v) => Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max;
const handle = intIn(0, Number.MAX_SAFE_INTEGER);
const session: Check = (v) => typeof v === 'string' && v.length >= 1 && v.length <= 128;
const literal = (value: unknown): Check => (v) => v === value;
const oneOf = (values: readonly unknown[]): Check => {
  const set = new Set(values);
  return (v) => set.has(v);
};
const boolean: Check = (v) => typeof v === 'boolean';

/** The fields of `raw` as `s` allows them, copied into a new object; undefined at the first doubt. */
function read(raw: unknown, s: Shape): Record<string, unknown> | undefined {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return undefined;
  const out: Record<string, unknown> = {};
  let required = 0;
  // for…in, as the schema's unknown-field check: an inherited enumerable field is seen too.
  for (const k in raw) {
    if (!Object.hasOwn(raw, k)) return undefined;
    const v = (raw as Record<string, unknown>)[k];
    const isRequired = s.required.get(k);
    const rule = isRequired ?? s.optional.get(k);
    if (!rule) return undefined;
    if (rule instanceof Map) {
      const copy = readUnion(v, rule);
      if (!copy) return undefined;
      out[k] = copy;
    } else {
      if (!rule(v)) return undefined;
      out[k] = v;
    }
    if (isRequired) required += 1;
  }
  return required === s.required.size ? out : undefined;
}

/** A mechanism: read by the shape its `name` picks. */
function readUnion(v: unknown, union: Union): Record<string, unknown> | undefined {
  const shapeOf = v !== null && typeof v === 'object' ? union.get((v as { name?: unknown }).name) : undefined;
  return shapeOf && read(v, shapeOf);
}

const prehashed = { prehashed: boolean };
const SIGN_MECHANISMS: Union = new Map<unknown, Shape>([
  ['hmac', shape({ name: literal('hmac'), hash })],
  ['ecdsa', shape({ name: literal('ecdsa'), hash }, { signatureFormat: oneOf(SIGNATURE_FORMATS), ...prehashed })],
  ['ed25519', shape({ name: literal('ed25519') })],
  ['rsa-pkcs', shape({ name: literal('rsa-pkcs'), hash }, prehashed)],
  ['rsa-pkcs-pss', shape({ name: literal('rsa-pkcs-pss'), hash, saltLength: intIn(0, 1024) }, prehashed)],
]);
const CIPHER_MECHANISMS: Union = new Map<unknown, Shape>([
  ['aes-gcm', shape({ name: literal('aes-gcm') }, { iv: isBytes, aad: isBytes, tagLengthBits: oneOf(GCM_TAG_BITS), webcrypto: literal(true) })],
  ['aes-cbc', shape({ name: literal('aes-cbc'), iv: isBytes })],
  ['aes-cbc-pad', shape({ name: literal('aes-cbc-pad'), iv: isBytes })],
  ['aes-ctr', shape({ name: literal('aes-ctr'), counter: isBytes }, { counterBits: intIn(1, 128) })],
  ['rsa-oaep', shape({ name: literal('rsa-oaep'), hash }, { label: isBytes })],
]);

const REQUESTS = new Map<string, Shape>([
  ['sign', shape({ op: literal('sign'), handle, mechanism: SIGN_MECHANISMS, data: isBytes }, { session })],
  ['verify', shape({ op: literal('verify'), handle, mechanism: SIGN_MECHANISMS, data: isBytes, signature: isBytes }, { session })],
  ['encrypt', shape({ op: literal('encrypt'), handle, mechanism: CIPHER_MECHANISMS, data: isBytes }, { session })],
  ['decrypt', shape({ op: literal('decrypt'), handle, mechanism: CIPHER_MECHANISMS, data: isBytes }, { session })],
  ['digest', shape({ op: literal('digest'), hash, data: isBytes }, { session })],
]);

/** `raw` read as request `op` if it is one of the common ones and certainly valid; otherwise undefined (use the schema). */
export function readHotRequest(op: string, raw: unknown): Record<string, unknown> | undefined {
  const requestShape = REQUESTS.get(op);
  return requestShape && read(raw, requestShape);
}
