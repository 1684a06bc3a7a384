/**
 * Cryptographic operations: encrypt, decrypt, sign, verify, digest, random bytes and derived
 * bits. Each checks that the caller may use the key and that the key's attribute permits the
 * operation, then hands the key to the mechanism's registry entry. None of them is audited, as
 * in CloudHSM (only management operations are).
 *
 * @module
 */
import { checkModeAllows } from '../profiles.js';
import { randomBytes } from 'node:crypto';
import { usableKey } from '../access.js';
import { keyApproval } from './quorum-ops.js';
import { HsmError, keyRef } from '../errors.js';
import type { KeyRecord } from '../key-store.js';
import { SIGNERS, cipherFor } from '../mechanisms/index.js';
import { digest as hashDigest } from '../mechanisms/hash.js';
import { liftHint } from '../profiles.js';
import { signedIn, type Handler } from '../state.js';
import { checkChosenIv, derivationInputs, runDerivation } from './key-ops.js';

function keyTypeError(mechanism: string, wants: string, key: KeyRecord): HsmError {
  return new HsmError('KEY_TYPE_INCONSISTENT', `mechanism ${mechanism} takes ${wants} keys, but key ${keyRef(key.handle)} is ${key.type}`);
}

export const encrypt: Handler<'encrypt'> = (m, caller, req) => {
  const me = signedIn(caller);
  const key = usableKey(m.keys, me, req.handle, 'encrypt');
  checkChosenIv(me, key, req.mechanism);
  checkModeAllows(m.profile, m.backupKeys.mode, { mechanism: req.mechanism.name, use: 'encrypt' });
  const entry = cipherFor(req.mechanism);
  if (entry.keyType !== key.type) throw keyTypeError(req.mechanism.name, entry.keyType, key);
  const out = entry.encrypt(key.material, req.mechanism, req.data, m.profile);
  return out.iv ? { data: out.data, iv: out.iv } : { data: out.data };
};

export const decrypt: Handler<'decrypt'> = (m, caller, req) => {
  const key = usableKey(m.keys, signedIn(caller), req.handle, 'decrypt');
  const entry = cipherFor(req.mechanism);
  if (entry.keyType !== key.type) throw keyTypeError(req.mechanism.name, entry.keyType, key);
  if (entry.decryptAsync) return entry.decryptAsync(key.material, req.mechanism, req.data, m.profile).then((data) => ({ data }));
  return { data: entry.decrypt(key.material, req.mechanism, req.data, m.profile) };
};

export const sign: Handler<'sign'> = async (m, caller, req) => {
  const me = signedIn(caller);
  const key = usableKey(m.keys, me, req.handle, 'sign');
  const entry = SIGNERS[req.mechanism.name];
  if (!entry.keyTypes.includes(key.type)) throw keyTypeError(req.mechanism.name, entry.keyTypes.join(' or '), key);
  const approve = keyApproval(m, me, key, 'use', req.approval);
  const signature = await entry.sign(key.material, req.mechanism as never, req.data, m.profile);
  approve();
  return { signature };
};

export const verify: Handler<'verify'> = async (m, caller, req) => {
  const key = usableKey(m.keys, signedIn(caller), req.handle, 'verify');
  const entry = SIGNERS[req.mechanism.name];
  if (!entry.keyTypes.includes(key.type)) throw keyTypeError(req.mechanism.name, entry.keyTypes.join(' or '), key);
  return { valid: await entry.verify(key.material, req.mechanism as never, req.data, req.signature, m.profile) };
};

export const digest: Handler<'digest'> = (_m, _caller, req) => ({ digest: hashDigest(req.hash, req.data) });

export const generateRandom: Handler<'generateRandom'> = (m, _caller, req) => {
  if (req.length > m.profile.maxRandomBytes) {
    throw new HsmError('LIMIT_EXCEEDED', `length: at most ${m.profile.maxRandomBytes} random bytes per call under the ${m.profile.name} profile, not ${req.length}${liftHint(m.profile)}`);
  }
  return { data: randomBytes(req.length) };
};

export const deriveBits: Handler<'deriveBits'> = async (m, caller, req) => {
  const me = signedIn(caller);
  const { base, peer, entry } = derivationInputs(m, me, req.baseHandle, req.mechanism);
  const bits = req.lengthBits;
  if (bits === undefined && !entry.naturalLength) {
    throw new HsmError('BAD_REQUEST', `lengthBits: required for ${req.mechanism.name}`);
  }
  if (bits !== undefined && bits % 8 !== 0 && !entry.naturalLength) {
    throw new HsmError('DATA_INVALID', `lengthBits: ${req.mechanism.name} derives whole bytes, so a multiple of 8, not ${bits}`);
  }
  const out = await runDerivation(m, me, entry, base, req.mechanism, bits === undefined ? null : Math.ceil(bits / 8), peer);
  if (bits !== undefined && bits % 8 !== 0) {
    // Keep only the first `bits` bits of the last byte.
    out[out.length - 1] = out[out.length - 1]! & (0xff << (8 - (bits % 8)));
  }
  return { bits: out };
};
