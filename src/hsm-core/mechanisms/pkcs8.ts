/**
 * Encrypted private keys (PKCS #8 EncryptedPrivateKeyInfo, RFC 5958 / RFC 8018), made and opened
 * inside the member: what a PKCS #12 file's shrouded key bag holds.
 *
 * Made: PBES2 with PBKDF2-HMAC-SHA256 at {@link EXPORT_ITERATIONS} iterations and AES-256-CBC
 * (OpenSSL's own default is 2,048 iterations, too few for a file that may leave the building).
 * Opened: PBES2 with PBKDF2 (any HMAC-SHA) and AES-CBC here, on the thread pool; anything else
 * (PBES1, PKCS #12 PBEs, scrypt, 3DES) through OpenSSL. Either way the work a file asks for is
 * read first and bounded, so a file with 10⁹ iterations is refused instead of stalling the member.
 *
 * The DER here is the little these structures need: a reader of tag-length-value and a writer.
 *
 * @module
 */
import { createDecipheriv, createCipheriv, createPrivateKey, pbkdf2 as pbkdf2Callback, randomBytes, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { HsmError } from '../errors.js';

const pbkdf2Async = promisify(pbkdf2Callback);

/**
 * PBKDF2 iterations of an exported key: above the 100,000 the project promises; OWASP's figure for
 * PBKDF2-HMAC-SHA256 of 2021 (its 2023 figure is 600,000). About 0.1 s per export or import here.
 */
export const EXPORT_ITERATIONS = 310_000;
/** The most PBKDF2 iterations an imported file may ask for (about a second on the thread pool). */
export const IMPORT_MAX_ITERATIONS = 10_000_000;
/** Files opened by OpenSSL run on the member's own thread: their cost is bounded lower. */
const OPENSSL_MAX_ITERATIONS = 200_000;

const OID = {
  pbes2: '2a864886f70d01050d',
  pbkdf2: '2a864886f70d01050c',
  scrypt: '2b06010401da470b',
  hmac: { '2a864886f70d0207': 'sha1', '2a864886f70d0208': 'sha224', '2a864886f70d0209': 'sha256', '2a864886f70d020a': 'sha384', '2a864886f70d020b': 'sha512' } as Record<string, string>,
  aesCbc: { '608648016503040102': 16, '608648016503040116': 24, '60864801650304012a': 32 } as Record<string, number>,
} as const;

// ---- DER -------------------------------------------------------------------------------------

interface Tlv {
  tag: number;
  /** The value's bytes. */
  value: Buffer;
  /** Where the next element starts. */
  next: number;
}

function bad(why: string): never {
  throw new HsmError('KEY_DATA_INVALID', `encryptedPrivateKeyInfo: ${why}`);
}

function readTlv(data: Buffer, at: number): Tlv {
  if (at + 2 > data.length) bad('it is truncated');
  const tag = data[at]!;
  let length = data[at + 1]!;
  let start = at + 2;
  if (length & 0x80) {
    const n = length & 0x7f;
    if (n === 0 || n > 4 || start + n > data.length) bad('a length is malformed');
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + data[start + i]!;
    start += n;
  }
  if (start + length > data.length) bad('it is truncated');
  return { tag, value: data.subarray(start, start + length), next: start + length };
}

/** The elements of a SEQUENCE's value. */
function children(value: Buffer): Tlv[] {
  const out: Tlv[] = [];
  for (let at = 0; at < value.length; ) {
    const t = readTlv(value, at);
    out.push(t);
    at = t.next;
  }
  return out;
}

function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (!t || t.tag !== tag) bad(`${what} is missing or of the wrong type`);
  return t;
}

function integer(t: Tlv | undefined, what: string): number {
  const v = expectTag(t, 0x02, what).value;
  if (v.length === 0 || v.length > 6 || v[0]! & 0x80) bad(`${what} is not a small positive integer`);
  return v.readUIntBE(0, v.length);
}

function tlv(tag: number, ...parts: Buffer[]): Buffer {
  const value = Buffer.concat(parts);
  const n = value.length;
  const length = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : n < 0x10000 ? Buffer.from([0x82, n >> 8, n & 0xff]) : Buffer.from([0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), length, value]);
}

const oid = (hex: string) => tlv(0x06, Buffer.from(hex, 'hex'));
const seq = (...parts: Buffer[]) => tlv(0x30, ...parts);
const octets = (b: Buffer) => tlv(0x04, b);
function int(n: number): Buffer {
  let hex = n.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  if (parseInt(hex.slice(0, 2), 16) & 0x80) hex = `00${hex}`;
  return tlv(0x02, Buffer.from(hex, 'hex'));
}

// ---- making ----------------------------------------------------------------------------------

/** PKCS #8 DER of a private key, encrypted under `password` (PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC). */
export async function encryptPrivateKey(key: KeyObject, password: string, iterations = EXPORT_ITERATIONS): Promise<Buffer> {
  const salt = randomBytes(16);
  const iv = randomBytes(16);
  const kek = await pbkdf2Async(Buffer.from(password, 'utf8'), salt, iterations, 32, 'sha256');
  const plain = key.export({ format: 'der', type: 'pkcs8' });
  try {
    const cipher = createCipheriv('aes-256-cbc', kek, iv);
    const encrypted = Buffer.concat([cipher.update(plain), cipher.final()]);
    const params = seq(
      seq(oid(OID.pbkdf2), seq(octets(salt), int(iterations), seq(oid('2a864886f70d0209'), tlv(0x05)))),
      seq(oid('60864801650304012a'), octets(iv)),
    );
    return seq(seq(oid(OID.pbes2), params), octets(encrypted));
  } finally {
    plain.fill(0);
    kek.fill(0);
  }
}

// ---- opening ---------------------------------------------------------------------------------

interface Pbes2 {
  salt: Buffer;
  iterations: number;
  hash: string;
  keyBytes: number;
  iv: Buffer;
  encrypted: Buffer;
}

/** What an EncryptedPrivateKeyInfo asks for: PBES2 with PBKDF2 and AES-CBC (opened here), or something OpenSSL must open. */
function inspect(der: Buffer): { kind: 'pbes2'; params: Pbes2 } | { kind: 'other'; iterations: number } {
  const top = expectTag(readTlv(der, 0), 0x30, 'the structure');
  const [algorithm, data] = children(top.value);
  const [algOid, algParams] = children(expectTag(algorithm, 0x30, 'the encryption algorithm').value);
  const algo = expectTag(algOid, 0x06, 'the encryption algorithm').value.toString('hex');
  const encrypted = expectTag(data, 0x04, 'the encrypted data').value;
  if (algo !== OID.pbes2) {
    // PBES1 and the PKCS #12 PBEs: parameters are SEQUENCE { salt, iterations }.
    const parts = children(expectTag(algParams, 0x30, 'the PBE parameters').value);
    return { kind: 'other', iterations: integer(parts[1], 'the iteration count') };
  }
  const [kdf, scheme] = children(expectTag(algParams, 0x30, 'the PBES2 parameters').value);
  const [kdfOid, kdfParams] = children(expectTag(kdf, 0x30, 'the key derivation').value);
  const kdfName = expectTag(kdfOid, 0x06, 'the key derivation').value.toString('hex');
  if (kdfName === OID.scrypt) {
    // scrypt-params: salt, costParameter (N), blockSize (r), parallelization (p).
    const parts = children(expectTag(kdfParams, 0x30, 'the scrypt parameters').value);
    const n = integer(parts[1], 'scrypt N');
    const r = integer(parts[2], 'scrypt r');
    const p = integer(parts[3], 'scrypt p');
    if (n > 2 ** 20 || r > 16 || p > 16) bad(`its scrypt cost (N ${n}, r ${r}, p ${p}) is above what the HSM opens (N ≤ 2^20, r and p ≤ 16)`);
    return { kind: 'other', iterations: 0 };
  }
  if (kdfName !== OID.pbkdf2) bad('its key derivation is neither PBKDF2 nor scrypt');
  const kp = children(expectTag(kdfParams, 0x30, 'the PBKDF2 parameters').value);
  const salt = expectTag(kp[0], 0x04, 'the PBKDF2 salt').value;
  const iterations = integer(kp[1], 'the iteration count');
  let rest = kp.slice(2);
  if (rest[0]?.tag === 0x02) rest = rest.slice(1); // keyLength: implied by the cipher
  let hash = 'sha1';
  if (rest[0]) {
    const prf = expectTag(children(expectTag(rest[0], 0x30, 'the PBKDF2 PRF').value)[0], 0x06, 'the PBKDF2 PRF').value.toString('hex');
    hash = OID.hmac[prf] ?? bad('its PBKDF2 PRF is not HMAC-SHA');
  }
  const [schemeOid, schemeIv] = children(expectTag(scheme, 0x30, 'the encryption scheme').value);
  const keyBytes = OID.aesCbc[expectTag(schemeOid, 0x06, 'the encryption scheme').value.toString('hex')];
  if (keyBytes === undefined) return { kind: 'other', iterations };
  const iv = expectTag(schemeIv, 0x04, 'the IV').value;
  if (iv.length !== 16) bad('its AES-CBC IV is not 16 bytes');
  return { kind: 'pbes2', params: { salt, iterations, hash, keyBytes, iv, encrypted } };
}

const failed = () => new HsmError('DECRYPTION_FAILED', 'encryptedPrivateKeyInfo: it does not open with this password (or it is not an encrypted PKCS #8 key)');

/** Opens an EncryptedPrivateKeyInfo with its password, after bounding the work it asks for. */
export async function decryptPrivateKey(bytes: Uint8Array, password: string): Promise<KeyObject> {
  const der = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const found = inspect(der);
  if (found.kind === 'other') {
    if (found.iterations > OPENSSL_MAX_ITERATIONS) {
      throw new HsmError('LIMIT_EXCEEDED', `encryptedPrivateKeyInfo: ${found.iterations} iterations of a legacy PBE; the HSM opens legacy files of at most ${OPENSSL_MAX_ITERATIONS} (PBES2 with PBKDF2 and AES: ${IMPORT_MAX_ITERATIONS})`);
    }
    try {
      return createPrivateKey({ key: der, format: 'der', type: 'pkcs8', passphrase: password });
    } catch {
      throw failed();
    }
  }
  const p = found.params;
  if (p.iterations > IMPORT_MAX_ITERATIONS) {
    throw new HsmError('LIMIT_EXCEEDED', `encryptedPrivateKeyInfo: ${p.iterations} PBKDF2 iterations; the HSM opens files of at most ${IMPORT_MAX_ITERATIONS}`);
  }
  const kek = await pbkdf2Async(Buffer.from(password, 'utf8'), p.salt, p.iterations, p.keyBytes, p.hash);
  let plain: Buffer;
  try {
    const decipher = createDecipheriv(`aes-${p.keyBytes * 8}-cbc`, kek, p.iv);
    plain = Buffer.concat([decipher.update(p.encrypted), decipher.final()]);
  } catch {
    throw failed();
  } finally {
    kek.fill(0);
  }
  try {
    return createPrivateKey({ key: plain, format: 'der', type: 'pkcs8' });
  } catch {
    throw failed();
  } finally {
    plain.fill(0);
  }
}
