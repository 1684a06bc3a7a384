/**
 * AES mechanisms: GCM (with HSM-chosen or caller IVs, and CloudHSM's IV-prefixed variant), CBC
 * with and without padding, CTR with a counter of any width, ECB, CMAC (RFC 4493), and the three
 * CloudHSM AES key-wrap flavours (RFC 3394 no-pad, RFC 5649 zero-pad, PKCS #5-pad; §3.4).
 * node:crypto does the block cipher; this module only frames it.
 *
 * @module
 */
import { createCipheriv, createDecipheriv, randomBytes, type KeyObject } from 'node:crypto';
import { HsmError } from '../errors.js';

function algorithm(key: KeyObject, mode: string): string {
  return `aes-${key.symmetricKeySize! * 8}-${mode}`;
}

/**
 * The parts of an output, joined in memory of its own. Buffer.concat would place a small output
 * in Node's shared 8 KiB pool, and the member copies any such view once more before answering
 * (detach.ts, detachBytes); this is the one copy. A single part is returned as it is: node:crypto
 * gives each output memory of its own.
 */
function joined(parts: Buffer[]): Buffer {
  const filled = parts.filter((p) => p.length > 0);
  if (filled.length === 1 && filled[0]!.byteOffset === 0 && filled[0]!.length === filled[0]!.buffer.byteLength) return filled[0]!;
  let total = 0;
  for (const p of filled) total += p.length;
  const out = Buffer.allocUnsafeSlow(total);
  let at = 0;
  for (const p of filled) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function paramError(message: string): HsmError {
  return new HsmError('MECHANISM_PARAM_INVALID', message);
}

export function decryptionFailed(what: string): HsmError {
  return new HsmError('DECRYPTION_FAILED', `${what}: the data is not authentic or was not encrypted with this key and these parameters`);
}

// ---- GCM --------------------------------------------------------------------------------------

export const GCM_IV_BYTES = 12;

/** OpenSSL 3.0 takes GCM IVs of 1–255 bytes (Node's own WebCrypto fails beyond that too). */
export const GCM_IV_MAX_BYTES = 255;

function checkGcmIv(iv: Uint8Array): void {
  if (iv.length === 0 || iv.length > GCM_IV_MAX_BYTES) {
    throw paramError(`mechanism.iv: an AES-GCM IV has 1–${GCM_IV_MAX_BYTES} bytes (12 recommended), not ${iv.length}`);
  }
}

export function gcmEncrypt(key: KeyObject, iv: Uint8Array, data: Uint8Array, aad: Uint8Array | undefined, tagBytes: number): Buffer {
  checkGcmIv(iv);
  const cipher = createCipheriv(algorithm(key, 'gcm') as 'aes-256-gcm', key, iv, { authTagLength: tagBytes });
  if (aad) cipher.setAAD(aad);
  return joined([cipher.update(data), cipher.final(), cipher.getAuthTag()]);
}

export function gcmDecrypt(key: KeyObject, iv: Uint8Array, data: Uint8Array, aad: Uint8Array | undefined, tagBytes: number): Buffer {
  checkGcmIv(iv);
  if (data.length < tagBytes) {
    throw new HsmError('DATA_INVALID', `data: AES-GCM ciphertext ends with a ${tagBytes}-byte tag, but only ${data.length} bytes were given`);
  }
  const decipher = createDecipheriv(algorithm(key, 'gcm') as 'aes-256-gcm', key, iv, { authTagLength: tagBytes });
  if (aad) decipher.setAAD(aad);
  decipher.setAuthTag(data.subarray(data.length - tagBytes));
  try {
    return joined([decipher.update(data.subarray(0, data.length - tagBytes)), decipher.final()]);
  } catch {
    throw decryptionFailed('AES-GCM');
  }
}

/** A fresh 12-byte IV, as CloudHSM generates for every GCM encryption. */
export function newGcmIv(): Buffer {
  return randomBytes(GCM_IV_BYTES);
}

// ---- CBC, ECB ---------------------------------------------------------------------------------

function checkBlockIv(iv: Uint8Array, field: string): void {
  if (iv.length !== 16) throw paramError(`${field}: an AES IV is 16 bytes, not ${iv.length}`);
}

function checkBlocks(data: Uint8Array, mechanism: string): void {
  if (data.length % 16 !== 0) {
    throw new HsmError('DATA_INVALID', `data: ${mechanism} takes whole 16-byte blocks, but ${data.length} bytes were given`);
  }
}

export function cbcEncrypt(key: KeyObject, iv: Uint8Array, data: Uint8Array, pad: boolean): Buffer {
  checkBlockIv(iv, 'mechanism.iv');
  if (!pad) checkBlocks(data, 'aes-cbc');
  const cipher = createCipheriv(algorithm(key, 'cbc'), key, iv);
  cipher.setAutoPadding(pad);
  return joined([cipher.update(data), cipher.final()]);
}

export function cbcDecrypt(key: KeyObject, iv: Uint8Array, data: Uint8Array, pad: boolean): Buffer {
  checkBlockIv(iv, 'mechanism.iv');
  checkBlocks(data, pad ? 'aes-cbc-pad decryption' : 'aes-cbc');
  if (pad && data.length === 0) throw new HsmError('DATA_INVALID', 'data: aes-cbc-pad ciphertext has at least one block');
  const decipher = createDecipheriv(algorithm(key, 'cbc'), key, iv);
  decipher.setAutoPadding(pad);
  try {
    return joined([decipher.update(data), decipher.final()]);
  } catch {
    throw decryptionFailed('AES-CBC-PAD (the padding is wrong)');
  }
}

export function ecb(key: KeyObject, data: Uint8Array, encrypt: boolean): Buffer {
  checkBlocks(data, 'aes-ecb');
  const c = encrypt ? createCipheriv(algorithm(key, 'ecb'), key, null) : createDecipheriv(algorithm(key, 'ecb'), key, null);
  c.setAutoPadding(false);
  return joined([c.update(data), c.final()]);
}

// ---- CTR --------------------------------------------------------------------------------------

function ctrRun(key: KeyObject, counter: Uint8Array, data: Uint8Array): Buffer {
  const c = createCipheriv(algorithm(key, 'ctr'), key, counter);
  return joined([c.update(data), c.final()]);
}

/**
 * AES-CTR where only the rightmost `counterBits` bits of the block count, as WebCrypto defines
 * it: when they wrap, the bits to their left stay unchanged. OpenSSL counts with all 128 bits,
 * so the data is split where the counter wraps.
 */
export function ctr(key: KeyObject, counter: Uint8Array, counterBits: number, data: Uint8Array): Buffer {
  if (counter.length !== 16) throw paramError(`mechanism.counter: an AES-CTR counter block is 16 bytes, not ${counter.length}`);
  const blocks = BigInt(Math.ceil(data.length / 16));
  const space = 1n << BigInt(counterBits);
  if (blocks > space) {
    throw new HsmError('DATA_INVALID', `data: ${data.length} bytes need ${blocks} counter values, but a ${counterBits}-bit counter has only ${space}`);
  }
  if (counterBits === 128) return ctrRun(key, counter, data);
  const mask = space - 1n;
  const value = BigInt(`0x${Buffer.from(counter).toString('hex')}`);
  const untilWrap = space - (value & mask);
  if (blocks <= untilWrap) return ctrRun(key, counter, data);
  const firstBytes = Number(untilWrap) * 16;
  const wrapped = Buffer.from((value & ~mask & ((1n << 128n) - 1n)).toString(16).padStart(32, '0'), 'hex');
  return joined([ctrRun(key, counter, data.subarray(0, firstBytes)), ctrRun(key, wrapped, data.subarray(firstBytes))]);
}

// ---- CMAC (RFC 4493) --------------------------------------------------------------------------

function doubleBlock(block: Buffer): Buffer {
  const out = Buffer.alloc(16);
  let carry = 0;
  for (let i = 15; i >= 0; i--) {
    const b = block[i]!;
    out[i] = ((b << 1) | carry) & 0xff;
    carry = b >> 7;
  }
  if (block[0]! & 0x80) out[15] = out[15]! ^ 0x87;
  return out;
}

export function cmac(key: KeyObject, data: Uint8Array): Buffer {
  const l = ecb(key, Buffer.alloc(16), true);
  const k1 = doubleBlock(l);
  const complete = data.length > 0 && data.length % 16 === 0;
  const lastStart = complete ? data.length - 16 : data.length - (data.length % 16);
  const last = Buffer.alloc(16);
  Buffer.from(data.subarray(lastStart)).copy(last);
  const subkey = complete ? k1 : doubleBlock(k1);
  if (!complete) last[data.length - lastStart] = 0x80;
  for (let i = 0; i < 16; i++) last[i] = last[i]! ^ subkey[i]!;
  // CBC-MAC with a zero IV over the full blocks and the masked last block; the tag is the last block.
  const cipher = createCipheriv(algorithm(key, 'cbc'), key, Buffer.alloc(16));
  cipher.setAutoPadding(false);
  const out = Buffer.concat([cipher.update(data.subarray(0, lastStart)), cipher.update(last)]);
  return out.subarray(out.length - 16);
}

// ---- AES key wrap (SP 800-38F) ----------------------------------------------------------------

/** RFC 3394's default IV, the only explicit IV CloudHSM accepts for no-pad and PKCS #5-pad. */
export const KW_DEFAULT_IV = Buffer.from('a6a6a6a6a6a6a6a6', 'hex');
const KWP_IV = Buffer.from('a65959a6', 'hex');

function checkKwIv(iv: Uint8Array | undefined, name: string): void {
  if (iv !== undefined && !KW_DEFAULT_IV.equals(iv)) {
    throw paramError(`mechanism.iv: ${name} accepts only the default IV 0xa6a6a6a6a6a6a6a6 (or none)`);
  }
}

/** node:crypto's cipher for key wrap with `key` (RFC 5649 with `pad`, else RFC 3394), and its IV. */
export function kwCipher(key: KeyObject, pad: boolean): { name: string; iv: Buffer } {
  return { name: `id-aes${key.symmetricKeySize! * 8}-wrap${pad ? '-pad' : ''}`, iv: pad ? KWP_IV : KW_DEFAULT_IV };
}

function kw(key: KeyObject, data: Uint8Array, encrypt: boolean, pad: boolean): Buffer {
  const { name, iv } = kwCipher(key, pad);
  const c = encrypt ? createCipheriv(name, key, iv) : createDecipheriv(name, key, iv);
  return joined([c.update(data), c.final()]);
}

/** RFC 3394: the payload is whole 8-byte blocks, at least two. */
export function kwNoPadWrap(key: KeyObject, payload: Uint8Array, iv?: Uint8Array): Buffer {
  checkKwIv(iv, 'aes-no-pad');
  if (payload.length < 16 || payload.length % 8 !== 0) {
    throw new HsmError('DATA_INVALID', `aes-no-pad wraps whole 8-byte blocks of at least 16 bytes, but the payload is ${payload.length} bytes (use aes-zero-pad or aes-pkcs5-pad)`);
  }
  return kw(key, payload, true, false);
}

export function kwNoPadUnwrap(key: KeyObject, wrapped: Uint8Array, iv?: Uint8Array): Buffer {
  checkKwIv(iv, 'aes-no-pad');
  if (wrapped.length < 24 || wrapped.length % 8 !== 0) {
    throw new HsmError('DATA_INVALID', `wrapped: RFC 3394 output is whole 8-byte blocks of at least 24 bytes, not ${wrapped.length}`);
  }
  try {
    return kw(key, wrapped, false, false);
  } catch {
    throw decryptionFailed('aes-no-pad unwrap');
  }
}

/** RFC 5649 (CloudHSM's "zero pad"): any payload length; the IV is always implicit. */
export function kwZeroPadWrap(key: KeyObject, payload: Uint8Array): Buffer {
  if (payload.length === 0) throw new HsmError('DATA_INVALID', 'aes-zero-pad: the payload is empty');
  return kw(key, payload, true, true);
}

export function kwZeroPadUnwrap(key: KeyObject, wrapped: Uint8Array): Buffer {
  if (wrapped.length < 16 || wrapped.length % 8 !== 0) {
    throw new HsmError('DATA_INVALID', `wrapped: RFC 5649 output is whole 8-byte blocks of at least 16 bytes, not ${wrapped.length}`);
  }
  try {
    return kw(key, wrapped, false, true);
  } catch {
    throw decryptionFailed('aes-zero-pad unwrap');
  }
}

/**
 * CloudHSM's PKCS #5-pad flavour: PKCS #5 padding to a multiple of 8 bytes (1–8 bytes, so a
 * block-aligned key gains 8), then RFC 3394 with the default IV.
 */
export function kwPkcs5Wrap(key: KeyObject, payload: Uint8Array, iv?: Uint8Array): Buffer {
  checkKwIv(iv, 'aes-pkcs5-pad');
  const padLength = 8 - (payload.length % 8);
  if (payload.length + padLength < 16) {
    throw new HsmError('DATA_INVALID', `aes-pkcs5-pad needs a payload of at least 8 bytes, but it is ${payload.length} (use aes-zero-pad)`);
  }
  const padded = Buffer.alloc(payload.length + padLength, padLength);
  padded.set(payload);
  try {
    return kw(key, padded, true, false);
  } finally {
    padded.fill(0);
  }
}

export function kwPkcs5Unwrap(key: KeyObject, wrapped: Uint8Array, iv?: Uint8Array): Buffer {
  const padded = kwNoPadUnwrap(key, wrapped, iv);
  const padLength = padded[padded.length - 1]!;
  let good = padLength >= 1 && padLength <= 8;
  for (let i = 1; good && i <= padLength; i++) good = padded[padded.length - i] === padLength;
  if (!good) throw decryptionFailed('aes-pkcs5-pad unwrap (the padding is wrong)');
  return padded.subarray(0, padded.length - padLength);
}
