/**
 * How p11-kit carries each attribute's value (its `map_attribute_to_value_type`, as 0.24 has it):
 * a byte for the booleans, a u64 for the CK_ULONG ones, nested attributes for the templates, u64s
 * for allowed mechanisms, a 0- or 8-byte array for dates, and a byte array for everything else —
 * unknown and vendor attributes and CKA_DESTROYABLE too. Both ends use the same table, so it must
 * be exact.
 *
 * @module
 */
import { CKA } from './constants.js';

export type AttributeClass = 'byte' | 'ulong' | 'attributes' | 'mechanisms' | 'date' | 'bytes';

const BYTE = new Set<number>([
  CKA.TOKEN, CKA.PRIVATE, CKA.TRUSTED, CKA.SENSITIVE, CKA.ENCRYPT, CKA.DECRYPT, CKA.WRAP, CKA.UNWRAP, CKA.SIGN, CKA.SIGN_RECOVER, CKA.VERIFY,
  CKA.VERIFY_RECOVER, CKA.DERIVE, CKA.EXTRACTABLE, CKA.LOCAL, CKA.NEVER_EXTRACTABLE, CKA.ALWAYS_SENSITIVE, CKA.MODIFIABLE, CKA.COPYABLE,
  CKA.SECONDARY_AUTH, CKA.ALWAYS_AUTHENTICATE, CKA.WRAP_WITH_TRUSTED, CKA.RESET_ON_INIT, CKA.HAS_RESET, CKA.COLOR,
]);
const ULONG = new Set<number>([
  CKA.CLASS, CKA.CERTIFICATE_TYPE, CKA.CERTIFICATE_CATEGORY, CKA.JAVA_MIDP_SECURITY_DOMAIN, CKA.KEY_TYPE, CKA.MODULUS_BITS, CKA.PRIME_BITS,
  CKA.SUB_PRIME_BITS, CKA.VALUE_BITS, CKA.VALUE_LEN, CKA.KEY_GEN_MECHANISM, CKA.AUTH_PIN_FLAGS, CKA.HW_FEATURE_TYPE, CKA.PIXEL_X, CKA.PIXEL_Y,
  CKA.RESOLUTION, CKA.CHAR_ROWS, CKA.CHAR_COLUMNS, CKA.BITS_PER_PIXEL, CKA.MECHANISM_TYPE,
]);

export function attributeClass(type: number): AttributeClass {
  if (BYTE.has(type)) return 'byte';
  if (ULONG.has(type)) return 'ulong';
  if (type === CKA.WRAP_TEMPLATE || type === CKA.UNWRAP_TEMPLATE || type === CKA.DERIVE_TEMPLATE) return 'attributes';
  if (type === CKA.ALLOWED_MECHANISMS) return 'mechanisms';
  if (type === CKA.START_DATE || type === CKA.END_DATE) return 'date';
  return 'bytes';
}
