/**
 * RSA mechanisms: OAEP (SHA-1…512 with the matching MGF1), PKCS #1 v1.5 encryption, PKCS #1 v1.5
 * and PSS signatures, and CloudHSM's RSA-AES key wrap (an ephemeral AES key under OAEP, the
 * payload under RFC 5649 with it).
 *
 * PKCS #1 v1.5 decryption: Node refuses it through privateDecrypt since CVE-2023-46809, so the
 * member does the raw RSA operation and checks the padding itself, looking at every byte and
 * answering every padding failure with the same error; an unwrap answers a wrong-length key the
 * same way, so neither is a padding oracle by its answers. JavaScript's timing is not hardened
 * against Bleichenbacher/Marvin-style measurements; prefer OAEP, as CloudHSM's FIPS mode does.
 *
 * @module
 */
import {
  constants,
  createSecretKey,
  privateDecrypt,
  publicDecrypt,
  publicEncrypt,
  randomBytes,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';
import { HsmError } from '../errors.js';
import type { HashName } from '../protocol.js';
import { kwZeroPadUnwrap, kwZeroPadWrap } from './aes.js';
import { HASH_BYTES, NODE_HASH } from './hash.js';
import { privateDecryptAsync, privateEncryptAsync, signAsync, verifyAsync } from './pool.js';

function modulusBytes(key: KeyObject): number {
  return Math.ceil(key.asymmetricKeyDetails!.modulusLength! / 8);
}

function decryptionFailed(what: string): HsmError {
  return new HsmError('DECRYPTION_FAILED', `${what}: the ciphertext was not made with this key and these parameters`);
}

export function oaepEncrypt(publicKey: KeyObject, hash: HashName, label: Uint8Array | undefined, data: Uint8Array): Buffer {
  const max = modulusBytes(publicKey) - 2 * HASH_BYTES[hash] - 2;
  if (data.length > max) {
    throw new HsmError('DATA_INVALID', `data: RSA-OAEP with ${hash} and this key takes at most ${max} bytes, not ${data.length}`);
  }
  return publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: NODE_HASH[hash], ...(label ? { oaepLabel: label } : {}) }, data);
}

function oaepOptions(privateKey: KeyObject, hash: HashName, label: Uint8Array | undefined, data: Uint8Array) {
  if (data.length !== modulusBytes(privateKey)) {
    throw new HsmError('DATA_INVALID', `data: an RSA-OAEP ciphertext for this key is ${modulusBytes(privateKey)} bytes, not ${data.length}`);
  }
  return { padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: NODE_HASH[hash], ...(label ? { oaepLabel: label } : {}) };
}

export function oaepDecrypt(privateKey: KeyObject, hash: HashName, label: Uint8Array | undefined, data: Uint8Array): Buffer {
  const options = oaepOptions(privateKey, hash, label, data);
  try {
    return privateDecrypt({ ...options, key: privateKey }, data);
  } catch {
    throw decryptionFailed('RSA-OAEP');
  }
}

/** {@link oaepDecrypt} for the decrypt operation: on an RSA thread when several are in flight (pool.ts). Not for unwrapping. */
export async function oaepDecryptAsync(privateKey: KeyObject, hash: HashName, label: Uint8Array | undefined, data: Uint8Array): Promise<Buffer> {
  const options = oaepOptions(privateKey, hash, label, data);
  try {
    return await privateDecryptAsync(privateKey, options, data);
  } catch {
    throw decryptionFailed('RSA-OAEP');
  }
}

export function pkcs1Encrypt(publicKey: KeyObject, data: Uint8Array): Buffer {
  const max = modulusBytes(publicKey) - 11;
  if (data.length > max) throw new HsmError('DATA_INVALID', `data: RSA PKCS #1 v1.5 encryption with this key takes at most ${max} bytes, not ${data.length}`);
  return publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, data);
}

function checkPkcs1Ciphertext(privateKey: KeyObject, data: Uint8Array): void {
  const k = modulusBytes(privateKey);
  if (data.length !== k) throw new HsmError('DATA_INVALID', `data: an RSA ciphertext for this key is ${k} bytes, not ${data.length}`);
}

export function pkcs1Decrypt(privateKey: KeyObject, data: Uint8Array): Buffer {
  checkPkcs1Ciphertext(privateKey, data);
  let em: Buffer;
  try {
    em = privateDecrypt({ key: privateKey, padding: constants.RSA_NO_PADDING }, data);
  } catch {
    throw decryptionFailed('RSA PKCS #1 v1.5');
  }
  return pkcs1Unpad(em);
}

/** {@link pkcs1Decrypt} for the decrypt operation: on an RSA thread when several are in flight (pool.ts). Not for unwrapping. */
export async function pkcs1DecryptAsync(privateKey: KeyObject, data: Uint8Array): Promise<Buffer> {
  checkPkcs1Ciphertext(privateKey, data);
  let em: Buffer;
  try {
    em = await privateDecryptAsync(privateKey, { padding: constants.RSA_NO_PADDING }, data);
  } catch {
    throw decryptionFailed('RSA PKCS #1 v1.5');
  }
  return pkcs1Unpad(em);
}

/** M from EM, checked in constant time. */
function pkcs1Unpad(em: Buffer): Buffer {
  // EM = 0x00 ‖ 0x02 ‖ PS (≥ 8 non-zero bytes) ‖ 0x00 ‖ M. Every byte is looked at and the
  // verdict is one flag, so a bad padding and a short separator take the same path and answer
  // alike (the unwrap that uses this answers a bad length the same way too).
  let good = ((em[0]! | (em[1]! ^ 2)) === 0 ? 1 : 0);
  let separator = 0;
  let found = 0;
  for (let i = 2; i < em.length; i++) {
    const zero = ((em[i]! - 1) >>> 31) & 1; // 1 exactly when em[i] is 0
    const first = zero & (found ^ 1);
    separator |= -first & i;
    found |= zero;
  }
  good &= found & (((9 - separator) >>> 31) & 1); // separator ≥ 10
  if (good !== 1) {
    em.fill(0);
    throw decryptionFailed('RSA PKCS #1 v1.5');
  }
  return em.subarray(separator + 1);
}

export function pkcs1Sign(privateKey: KeyObject, hash: HashName, data: Uint8Array): Promise<Buffer> {
  return signAsync(NODE_HASH[hash], data, { key: privateKey, padding: constants.RSA_PKCS1_PADDING });
}

export function pkcs1Verify(publicKey: KeyObject, hash: HashName, data: Uint8Array, signature: Uint8Array): Promise<boolean> {
  return verifyAsync(NODE_HASH[hash], data, { key: publicKey, padding: constants.RSA_PKCS1_PADDING }, signature);
}

/** The block raw RSA works on: the data as a big-endian number, zeros before it up to the modulus length. */
function rawBlock(key: KeyObject, data: Uint8Array, what: string): Buffer {
  const k = modulusBytes(key);
  if (data.length > k) throw new HsmError('DATA_INVALID', `data: ${what} takes at most ${k} bytes with this key, not ${data.length}`);
  const block = Buffer.alloc(k);
  block.set(data, k - data.length);
  return block;
}

/** Raw RSA with the private key (CKM_RSA_X_509 decryption and signature): block^d mod n. */
export function rawPrivate(privateKey: KeyObject, data: Uint8Array): Buffer {
  const block = rawBlock(privateKey, data, 'raw RSA (rsa-x-509)');
  try {
    return privateDecrypt({ key: privateKey, padding: constants.RSA_NO_PADDING }, block);
  } catch {
    throw new HsmError('DATA_INVALID', 'data: raw RSA (rsa-x-509) takes a number below the modulus');
  }
}

/** Raw RSA with the public key (CKM_RSA_X_509 encryption, and the check of its signatures): block^e mod n. */
export function rawPublic(publicKey: KeyObject, data: Uint8Array): Buffer {
  const block = rawBlock(publicKey, data, 'raw RSA (rsa-x-509)');
  try {
    return publicEncrypt({ key: publicKey, padding: constants.RSA_NO_PADDING }, block);
  } catch {
    throw new HsmError('DATA_INVALID', 'data: raw RSA (rsa-x-509) takes a number below the modulus');
  }
}

export function rawVerify(publicKey: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  const k = modulusBytes(publicKey);
  if (signature.length !== k || data.length > k) return false;
  let recovered: Buffer;
  try {
    recovered = publicEncrypt({ key: publicKey, padding: constants.RSA_NO_PADDING }, signature);
  } catch {
    return false; // not below the modulus: no signature of this key
  }
  return timingSafeEqual(recovered, rawBlock(publicKey, data, 'raw RSA (rsa-x-509)'));
}

/** PKCS #1 v1.5 block type 1 over the caller's bytes (no DigestInfo added): at most k − 11 bytes. */
export function pkcs1SignRaw(privateKey: KeyObject, data: Uint8Array): Promise<Buffer> {
  const max = modulusBytes(privateKey) - 11;
  if (data.length > max) throw new HsmError('DATA_INVALID', `data: an RSA PKCS #1 v1.5 signature of raw bytes (rsa-pkcs-raw) takes at most ${max} bytes with this key, not ${data.length}`);
  return privateEncryptAsync(privateKey, constants.RSA_PKCS1_PADDING, data);
}

export function pkcs1VerifyRaw(publicKey: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  let recovered: Buffer;
  try {
    recovered = publicDecrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, signature);
  } catch {
    return false;
  }
  return recovered.length === data.length && timingSafeEqual(recovered, data);
}

function checkSaltLength(key: KeyObject, hash: HashName, saltLength: number): void {
  const emLen = Math.ceil((key.asymmetricKeyDetails!.modulusLength! - 1) / 8);
  const max = emLen - HASH_BYTES[hash] - 2;
  if (saltLength > max) {
    throw new HsmError('MECHANISM_PARAM_INVALID', `mechanism.saltLength: at most ${max} bytes with ${hash} and this key, not ${saltLength}`);
  }
}

export function pssSign(privateKey: KeyObject, hash: HashName, saltLength: number, data: Uint8Array): Promise<Buffer> {
  checkSaltLength(privateKey, hash, saltLength);
  return signAsync(NODE_HASH[hash], data, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength });
}

export function pssVerify(publicKey: KeyObject, hash: HashName, saltLength: number, data: Uint8Array, signature: Uint8Array): Promise<boolean> {
  checkSaltLength(publicKey, hash, saltLength);
  return verifyAsync(NODE_HASH[hash], data, { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }, signature);
}

/** CKM_RSA_AES_KEY_WRAP: OAEP(ephemeral AES key) ‖ RFC 5649(payload under that key). */
export function rsaAesWrap(publicKey: KeyObject, hash: HashName, aesKeyBits: number, payload: Uint8Array): Buffer {
  const ephemeral = randomBytes(aesKeyBits / 8);
  try {
    const wrappedKey = oaepEncrypt(publicKey, hash, undefined, ephemeral);
    return Buffer.concat([wrappedKey, kwZeroPadWrap(createSecretKey(ephemeral), payload)]);
  } finally {
    ephemeral.fill(0);
  }
}

export function rsaAesUnwrap(privateKey: KeyObject, hash: HashName, wrapped: Uint8Array): Buffer {
  const k = modulusBytes(privateKey);
  if (wrapped.length <= k) throw new HsmError('DATA_INVALID', `wrapped: RSA-AES output is longer than the ${k}-byte RSA block, but it is ${wrapped.length} bytes`);
  const ephemeral = oaepDecrypt(privateKey, hash, undefined, wrapped.subarray(0, k));
  if (![16, 24, 32].includes(ephemeral.length)) throw decryptionFailed('RSA-AES unwrap');
  try {
    return kwZeroPadUnwrap(createSecretKey(ephemeral), wrapped.subarray(k));
  } finally {
    ephemeral.fill(0);
  }
}
