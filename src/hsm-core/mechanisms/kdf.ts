/**
 * Key derivation: HKDF (RFC 5869), PBKDF2, the SP 800-108 counter-mode KDF with an HMAC or CMAC
 * PRF, and the ANSI X9.63 KDF that CloudHSM applies to ECDH secrets (CKD_CLOUDHSM_X963_*).
 *
 * @module
 */
import { hkdfSync, pbkdf2 as pbkdf2Callback, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { HsmError } from '../errors.js';
import type { HashName } from '../protocol.js';
import { cmac } from './aes.js';
import { HASH_BYTES, NODE_HASH, digest, hmac } from './hash.js';

const pbkdf2Async = promisify(pbkdf2Callback);

export function hkdf(key: KeyObject, hash: HashName, salt: Uint8Array, info: Uint8Array, lengthBytes: number): Buffer {
  const max = 255 * HASH_BYTES[hash];
  if (lengthBytes > max) throw new HsmError('DATA_INVALID', `length: HKDF with ${hash} derives at most ${max} bytes, not ${lengthBytes}`);
  if (info.length > 1024) throw new HsmError('MECHANISM_PARAM_INVALID', `mechanism.info: at most 1024 bytes, not ${info.length}`);
  if (lengthBytes === 0) return Buffer.alloc(0);
  return Buffer.from(hkdfSync(NODE_HASH[hash], key, salt, info, lengthBytes));
}

export async function pbkdf2(password: KeyObject, hash: HashName, salt: Uint8Array, iterations: number, lengthBytes: number): Promise<Buffer> {
  if (lengthBytes === 0) return Buffer.alloc(0);
  const secret = password.export();
  try {
    return await pbkdf2Async(secret, salt, iterations, lengthBytes, NODE_HASH[hash]);
  } finally {
    secret.fill(0);
  }
}

export type Prf = 'hmac-sha1' | 'hmac-sha224' | 'hmac-sha256' | 'hmac-sha384' | 'hmac-sha512' | 'cmac';

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

/**
 * SP 800-108 KDF in counter mode: K(i) = PRF(KI, [i]₃₂ ‖ Label ‖ 0x00 ‖ Context ‖ [L]₃₂), i from 1,
 * L the output length in bits.
 */
export function sp800108Counter(key: KeyObject, prf: Prf, label: Uint8Array, context: Uint8Array, lengthBytes: number): Buffer {
  const tail = Buffer.concat([label, Buffer.from([0]), context, u32(lengthBytes * 8)]);
  const out: Buffer[] = [];
  let have = 0;
  for (let i = 1; have < lengthBytes; i++) {
    const input = Buffer.concat([u32(i), tail]);
    const block = prf === 'cmac' ? cmac(key, input) : hmac(key, prf.slice(5) as HashName, input);
    out.push(block);
    have += block.length;
  }
  return takeAndWipe(out, lengthBytes);
}

/** The first `length` bytes of the blocks, in a buffer of their own; the blocks are zeroed. */
function takeAndWipe(blocks: Buffer[], length: number): Buffer {
  const result = Buffer.alloc(length);
  let at = 0;
  for (const block of blocks) {
    at += block.copy(result, at, 0, Math.min(block.length, length - at));
    block.fill(0);
  }
  return result;
}

/** ANSI X9.63 KDF: K(i) = H(Z ‖ [i]₃₂ ‖ SharedInfo), i from 1. */
export function x963(secret: Uint8Array, hash: HashName, sharedInfo: Uint8Array, lengthBytes: number): Buffer {
  const out: Buffer[] = [];
  let have = 0;
  for (let i = 1; have < lengthBytes; i++) {
    const block = digest(hash, Buffer.concat([secret, u32(i), sharedInfo]));
    out.push(block);
    have += block.length;
  }
  return takeAndWipe(out, lengthBytes);
}
