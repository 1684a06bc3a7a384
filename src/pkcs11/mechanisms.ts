/**
 * The door's mechanisms: what each PKCS #11 mechanism is as the member's (CloudHSM's PKCS #11 list,
 * CLOUDHSM.md §3.2, as far as the member does them), the flags and key sizes C_GetMechanismInfo
 * reports, and which of them CloudHSM runs in one part only.
 *
 * @module
 */
import type { CipherMechanism, DeriveMechanism, HashName, SignMechanism, WrapMechanism } from '../hsm-core/index.js';
import type { Mechanism } from './codec.js';
import { CKD, CKF, CKG, CKM, CKR } from './constants.js';
import { Ckr } from './objects.js';
import { ecSpki } from './keys.js';

/** Key sizes by family (bits for RSA and EC, bytes for AES and generic secrets), and common flags. */
const RSA = { min: 2048, max: 4096 };
const EC = { min: 224, max: 521 };
const AES = { min: 16, max: 32 };
const SECRET = { min: 1, max: 800 };
const NO_KEY = { min: 0, max: 0 };
const SIGN_VERIFY = CKF.HW | CKF.SIGN | CKF.VERIFY;
const ENCRYPT_DECRYPT = CKF.HW | CKF.ENCRYPT | CKF.DECRYPT;
const WRAP_UNWRAP = CKF.WRAP | CKF.UNWRAP;
const EC_CAPS = CKF.EC_F_P | CKF.EC_NAMEDCURVE | CKF.EC_UNCOMPRESS;

/** Rows of the table: each mechanism with the same sizes and flags. */
const rows = (mechanisms: number[], sizes: { min: number; max: number }, flags: number) => mechanisms.map((m) => [m, { ...sizes, flags }] as const);

/** The mechanisms of the door (CloudHSM's PKCS #11 list, as far as the member does them): flags and key sizes. */
export const MECHANISMS: ReadonlyMap<number, { min: number; max: number; flags: number }> = new Map([
  ...rows([CKM.RSA_PKCS_KEY_PAIR_GEN], RSA, CKF.HW | CKF.GENERATE_KEY_PAIR),
  ...rows([CKM.RSA_PKCS], RSA, SIGN_VERIFY | ENCRYPT_DECRYPT | WRAP_UNWRAP),
  ...rows([CKM.RSA_X_509], RSA, SIGN_VERIFY | ENCRYPT_DECRYPT),
  ...rows(
    [CKM.RSA_PKCS_PSS, CKM.SHA1_RSA_PKCS, CKM.SHA256_RSA_PKCS, CKM.SHA384_RSA_PKCS, CKM.SHA512_RSA_PKCS, CKM.SHA224_RSA_PKCS,
      CKM.SHA1_RSA_PKCS_PSS, CKM.SHA224_RSA_PKCS_PSS, CKM.SHA256_RSA_PKCS_PSS, CKM.SHA384_RSA_PKCS_PSS, CKM.SHA512_RSA_PKCS_PSS],
    RSA,
    SIGN_VERIFY,
  ),
  ...rows([CKM.EC_KEY_PAIR_GEN], EC, CKF.HW | CKF.GENERATE_KEY_PAIR | EC_CAPS),
  ...rows([CKM.ECDSA, CKM.ECDSA_SHA1, CKM.ECDSA_SHA224, CKM.ECDSA_SHA256, CKM.ECDSA_SHA384, CKM.ECDSA_SHA512], EC, SIGN_VERIFY | EC_CAPS),
  ...rows([CKM.SHA_1, CKM.SHA224, CKM.SHA256, CKM.SHA384, CKM.SHA512], NO_KEY, CKF.DIGEST),
  ...rows([CKM.RSA_PKCS_OAEP], RSA, ENCRYPT_DECRYPT | WRAP_UNWRAP),
  ...rows([CKM.AES_ECB, CKM.AES_CBC, CKM.AES_CBC_PAD, CKM.AES_CTR], AES, ENCRYPT_DECRYPT),
  ...rows([CKM.AES_GCM, CKM.CLOUDHSM_AES_GCM], AES, ENCRYPT_DECRYPT | WRAP_UNWRAP),
  ...rows([CKM.AES_CMAC], AES, SIGN_VERIFY),
  ...rows([CKM.AES_KEY_WRAP, CKM.AES_KEY_WRAP_PAD, CKM.CLOUDHSM_AES_KEY_WRAP_NO_PAD, CKM.CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD, CKM.CLOUDHSM_AES_KEY_WRAP_ZERO_PAD], AES, CKF.HW | WRAP_UNWRAP),
  ...rows([CKM.ECDH1_DERIVE], EC, CKF.HW | CKF.DERIVE | EC_CAPS),
  ...rows([CKM.GENERIC_SECRET_KEY_GEN], SECRET, CKF.HW | CKF.GENERATE),
  ...rows([CKM.AES_KEY_GEN], AES, CKF.HW | CKF.GENERATE),
  ...rows([CKM.SHA_1_HMAC, CKM.SHA224_HMAC, CKM.SHA256_HMAC, CKM.SHA384_HMAC, CKM.SHA512_HMAC], SECRET, SIGN_VERIFY),
]);

/** The hash of each HMAC mechanism. */
const HMAC_HASH: Readonly<Record<number, HashName>> = {
  [CKM.SHA_1_HMAC]: 'sha1',
  [CKM.SHA224_HMAC]: 'sha224',
  [CKM.SHA256_HMAC]: 'sha256',
  [CKM.SHA384_HMAC]: 'sha384',
  [CKM.SHA512_HMAC]: 'sha512',
};

export const HASH_OF_MECHANISM: Readonly<Record<number, HashName>> = {
  [CKM.SHA_1]: 'sha1',
  [CKM.SHA224]: 'sha224',
  [CKM.SHA256]: 'sha256',
  [CKM.SHA384]: 'sha384',
  [CKM.SHA512]: 'sha512',
};
export const MGF_HASH: Readonly<Record<number, HashName>> = { [CKG.MGF1_SHA1]: 'sha1', [CKG.MGF1_SHA224]: 'sha224', [CKG.MGF1_SHA256]: 'sha256', [CKG.MGF1_SHA384]: 'sha384', [CKG.MGF1_SHA512]: 'sha512' };

/** A PKCS #11 mechanism as the member's sign mechanism (digest-signing ones `prehashed`). */
export function signMechanism(m: Mechanism): SignMechanism {
  switch (m.type) {
    case CKM.ECDSA:
      return { name: 'ecdsa', hash: 'sha256', signatureFormat: 'p1363', prehashed: true };
    case CKM.ECDSA_SHA1:
    case CKM.ECDSA_SHA224:
    case CKM.ECDSA_SHA256:
    case CKM.ECDSA_SHA384:
    case CKM.ECDSA_SHA512: {
      const hash = (['sha1', 'sha224', 'sha256', 'sha384', 'sha512'] as const)[m.type - CKM.ECDSA_SHA1]!;
      return { name: 'ecdsa', hash, signatureFormat: 'p1363' };
    }
    case CKM.RSA_PKCS:
      return { name: 'rsa-pkcs', hash: 'sha256', prehashed: true };
    case CKM.RSA_X_509:
      return { name: 'rsa-x-509' };
    case CKM.AES_CMAC:
      return { name: 'cmac' };
    case CKM.SHA1_RSA_PKCS_PSS:
    case CKM.SHA224_RSA_PKCS_PSS:
    case CKM.SHA256_RSA_PKCS_PSS:
    case CKM.SHA384_RSA_PKCS_PSS:
    case CKM.SHA512_RSA_PKCS_PSS: {
      const hash = PSS_HASH[m.type]!;
      const p = m.param;
      if (!p || p.kind !== 'pss') throw new Ckr(CKR.MECHANISM_PARAM_INVALID, 'CKM_SHA*_RSA_PKCS_PSS needs its parameters');
      if (HASH_OF_MECHANISM[Number(p.hash)] !== hash || MGF_HASH[Number(p.mgf)] !== hash) throw new Ckr(CKR.MECHANISM_PARAM_INVALID, `the PSS parameters name ${hash} and MGF1 with ${hash}, the mechanism's hash`);
      return { name: 'rsa-pkcs-pss', hash, saltLength: Number(p.saltLength) };
    }
    case CKM.SHA1_RSA_PKCS:
      return { name: 'rsa-pkcs', hash: 'sha1' };
    case CKM.SHA224_RSA_PKCS:
      return { name: 'rsa-pkcs', hash: 'sha224' };
    case CKM.SHA256_RSA_PKCS:
      return { name: 'rsa-pkcs', hash: 'sha256' };
    case CKM.SHA384_RSA_PKCS:
      return { name: 'rsa-pkcs', hash: 'sha384' };
    case CKM.SHA512_RSA_PKCS:
      return { name: 'rsa-pkcs', hash: 'sha512' };
    case CKM.SHA_1_HMAC:
    case CKM.SHA224_HMAC:
    case CKM.SHA256_HMAC:
    case CKM.SHA384_HMAC:
    case CKM.SHA512_HMAC:
      return { name: 'hmac', hash: HMAC_HASH[m.type]! };
    case CKM.RSA_PKCS_PSS: {
      const p = m.param;
      if (!p || p.kind !== 'pss') throw new Ckr(CKR.MECHANISM_PARAM_INVALID, 'CKM_RSA_PKCS_PSS needs its parameters');
      const hash = HASH_OF_MECHANISM[Number(p.hash)];
      if (!hash || MGF_HASH[Number(p.mgf)] !== hash) throw new Ckr(CKR.MECHANISM_PARAM_INVALID, 'CKM_RSA_PKCS_PSS: MGF1 with the same hash as the message');
      return { name: 'rsa-pkcs-pss', hash, saltLength: Number(p.saltLength), prehashed: true };
    }
    default:
      throw new Ckr(CKR.MECHANISM_INVALID, `mechanism 0x${m.type.toString(16)} does not sign here`);
  }
}

/** A PKCS #11 cipher mechanism as the member's. */
export function cipherMechanism(m: Mechanism): CipherMechanism {
  const p = m.param;
  switch (m.type) {
    case CKM.RSA_PKCS:
      return { name: 'rsa-pkcs' };
    case CKM.RSA_X_509:
      return { name: 'rsa-x-509' };
    case CKM.CLOUDHSM_AES_GCM:
      // The HSM makes the IV and puts it before the ciphertext (CloudHSM's safer AES-GCM).
      return { name: 'cloudhsm-aes-gcm', ...gcmExtras(p) };
    case CKM.RSA_PKCS_OAEP: {
      if (!p || p.kind !== 'oaep') throw new Ckr(CKR.MECHANISM_PARAM_INVALID, 'CKM_RSA_PKCS_OAEP needs its parameters');
      const hash = HASH_OF_MECHANISM[Number(p.hash)];
      if (!hash || MGF_HASH[Number(p.mgf)] !== hash) throw new Ckr(CKR.MECHANISM_PARAM_INVALID, 'CKM_RSA_PKCS_OAEP: MGF1 with the same hash');
      return { name: 'rsa-oaep', hash, ...(p.sourceData && p.sourceData.length ? { label: p.sourceData } : {}) };
    }
    case CKM.AES_ECB:
      return { name: 'aes-ecb' };
    case CKM.AES_CBC:
    case CKM.AES_CBC_PAD: {
      const iv = p?.kind === 'iv' ? p.iv : p?.kind === 'bytes' ? p.data : null;
      if (!iv || iv.length !== 16) throw new Ckr(CKR.MECHANISM_PARAM_INVALID, 'AES-CBC needs a 16-byte IV');
      return { name: m.type === CKM.AES_CBC ? 'aes-cbc' : 'aes-cbc-pad', iv };
    }
    case CKM.AES_CTR: {
      if (p?.kind !== 'ctr') throw new Ckr(CKR.MECHANISM_PARAM_INVALID, 'AES-CTR needs its counter block');
      return { name: 'aes-ctr', counter: p.counterBlock, counterBits: Number(p.counterBits) };
    }
    case CKM.AES_GCM: {
      if (p?.kind !== 'gcm' || !p.iv) throw new Ckr(CKR.MECHANISM_PARAM_INVALID, 'AES-GCM needs its IV');
      return { name: 'aes-gcm', iv: p.iv, ...gcmExtras(p) };
    }
    default:
      throw new Ckr(CKR.MECHANISM_INVALID, `mechanism 0x${m.type.toString(16)} does not encrypt here`);
  }
}

/** DigestInfo prefixes: CKM_RSA_PKCS signs a DigestInfo the caller built; the member takes the digest and its hash. */
const DIGEST_INFO: ReadonlyArray<[HashName, string]> = [
  ['sha1', '3021300906052b0e03021a05000414'],
  ['sha224', '302d300d06096086480165030402040500041c'],
  ['sha256', '3031300d060960864801650304020105000420'],
  ['sha384', '3041300d060960864801650304020205000430'],
  ['sha512', '3051300d060960864801650304020305000440'],
];

/** What the member signs for a raw-input mechanism: the hash the data's length says (ECDSA, PSS) or the DigestInfo names (RSA PKCS #1). */
export function prehashedInput(mech: SignMechanism, data: Buffer): { mechanism: SignMechanism; data: Buffer } {
  if (!('prehashed' in mech) || !mech.prehashed) return { mechanism: mech, data };
  if (mech.name === 'rsa-pkcs') {
    for (const [hash, prefix] of DIGEST_INFO) {
      const p = Buffer.from(prefix, 'hex');
      if (data.length === p.length + p[p.length - 1]! && data.subarray(0, p.length).equals(p)) return { mechanism: { ...mech, hash }, data: data.subarray(p.length) };
    }
    // Not a DigestInfo (TLS 1.0's MD5‖SHA-1, a caller's own encoding): padded as it is.
    return { mechanism: { name: 'rsa-pkcs-raw' }, data };
  }
  if (mech.name === 'ecdsa') {
    const hash = ({ 20: 'sha1', 28: 'sha224', 32: 'sha256', 48: 'sha384', 64: 'sha512' } as Record<number, HashName>)[data.length];
    if (!hash) throw new Ckr(CKR.DATA_LEN_RANGE, `CKM_ECDSA signs a hash (20 to 64 bytes), not ${data.length} bytes`);
    return { mechanism: { ...mech, hash }, data };
  }
  return { mechanism: mech, data };
}

const PSS_HASH: Readonly<Record<number, HashName>> = {
  [CKM.SHA1_RSA_PKCS_PSS]: 'sha1',
  [CKM.SHA224_RSA_PKCS_PSS]: 'sha224',
  [CKM.SHA256_RSA_PKCS_PSS]: 'sha256',
  [CKM.SHA384_RSA_PKCS_PSS]: 'sha384',
  [CKM.SHA512_RSA_PKCS_PSS]: 'sha512',
};

/** The AAD and tag length of CK_GCM_PARAMS (a 128-bit tag when the caller gives none). */
function gcmExtras(p: Mechanism['param']): { aad?: Buffer; tagLengthBits?: 96 | 104 | 112 | 120 | 128 } {
  if (p === null) return {};
  if (p.kind !== 'gcm') throw new Ckr(CKR.MECHANISM_PARAM_INVALID, 'AES-GCM takes CK_GCM_PARAMS');
  const bits = Number(p.tagBits);
  if (![96, 104, 112, 120, 128].includes(bits)) throw new Ckr(CKR.MECHANISM_PARAM_INVALID, `AES-GCM tags are 96 to 128 bits here, not ${bits}`);
  return { ...(p.aad && p.aad.length ? { aad: p.aad } : {}), tagLengthBits: bits as 96 };
}

/** The mechanisms CloudHSM runs in one part only (C_*Update is refused): raw-input signatures and RSA ciphers, AES-GCM. */
export const SINGLE_PART: ReadonlySet<number> = new Set([CKM.RSA_PKCS, CKM.RSA_X_509, CKM.RSA_PKCS_PSS, CKM.RSA_PKCS_OAEP, CKM.ECDSA, CKM.AES_GCM, CKM.CLOUDHSM_AES_GCM]);

/**
 * A PKCS #11 wrapping mechanism as the member's. CloudHSM's AES key wraps are vendor-defined
 * (CKM_CLOUDHSM_AES_KEY_WRAP_*); the standard CKM_AES_KEY_WRAP (RFC 3394) and CKM_AES_KEY_WRAP_PAD
 * (RFC 5649, as SoftHSM reads it) are taken too. No p11-kit client forwards any of them (it has no
 * encoding for their IV): behind p11-kit, RSA-OAEP, RSA PKCS #1 and AES-GCM wrap.
 */
export function wrapMechanism(m: Mechanism): WrapMechanism {
  const p = m.param;
  const iv = (): { iv?: Buffer } => {
    if (p === null) return {};
    if (p.kind !== 'bytes' || p.data.length !== 8) throw new Ckr(CKR.MECHANISM_PARAM_INVALID, 'an AES key wrap IV is 8 bytes (or none, for the default)');
    return { iv: p.data };
  };
  switch (m.type) {
    case CKM.RSA_PKCS:
    case CKM.RSA_PKCS_OAEP:
    case CKM.AES_GCM:
    case CKM.CLOUDHSM_AES_GCM:
      return cipherMechanism(m) as WrapMechanism;
    case CKM.AES_KEY_WRAP:
    case CKM.CLOUDHSM_AES_KEY_WRAP_NO_PAD:
      return { name: 'aes-no-pad', ...iv() };
    case CKM.CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD:
      return { name: 'aes-pkcs5-pad', ...iv() };
    case CKM.AES_KEY_WRAP_PAD:
    case CKM.CLOUDHSM_AES_KEY_WRAP_ZERO_PAD:
      if (p !== null) throw new Ckr(CKR.MECHANISM_PARAM_INVALID, 'AES key wrap with zero padding (RFC 5649) takes no IV here');
      return { name: 'aes-zero-pad' };
    default:
      throw new Ckr(CKR.MECHANISM_INVALID, `mechanism 0x${m.type.toString(16)} does not wrap here`);
  }
}

const KDF: Readonly<Record<number, 'null' | 'x963-sha1' | 'x963-sha224' | 'x963-sha256' | 'x963-sha384' | 'x963-sha512'>> = {
  [CKD.NULL]: 'null',
  [CKD.SHA1_KDF]: 'x963-sha1',
  [CKD.SHA224_KDF]: 'x963-sha224',
  [CKD.SHA256_KDF]: 'x963-sha256',
  [CKD.SHA384_KDF]: 'x963-sha384',
  [CKD.SHA512_KDF]: 'x963-sha512',
};

/**
 * CKM_ECDH1_DERIVE as the member's ECDH: the peer's point (`publicData`, raw or DER-wrapped as
 * CKA_EC_POINT) becomes a SubjectPublicKeyInfo on the base key's curve (`curveParams`, its
 * CKA_EC_PARAMS).
 */
export function deriveMechanism(m: Mechanism, curveParams: Buffer): DeriveMechanism {
  if (m.type !== CKM.ECDH1_DERIVE) throw new Ckr(CKR.MECHANISM_INVALID, `mechanism 0x${m.type.toString(16)} does not derive here`);
  const p = m.param;
  if (!p || p.kind !== 'ecdh' || !p.publicData?.length) throw new Ckr(CKR.MECHANISM_PARAM_INVALID, 'CKM_ECDH1_DERIVE needs CK_ECDH1_DERIVE_PARAMS with the peer\'s public point');
  const kdf = KDF[Number(p.kdf)];
  if (!kdf) throw new Ckr(CKR.MECHANISM_PARAM_INVALID, `CKM_ECDH1_DERIVE: KDF 0x${p.kdf.toString(16)} is not CKD_NULL or CKD_SHA*_KDF (X9.63)`);
  if (kdf === 'null' && p.sharedData?.length) throw new Ckr(CKR.MECHANISM_PARAM_INVALID, 'CKM_ECDH1_DERIVE: shared data goes with a KDF, not CKD_NULL');
  let spki: Buffer;
  try {
    spki = ecSpki(curveParams, p.publicData, 'CKM_ECDH1_DERIVE: the peer\'s point');
  } catch (e) {
    throw new Ckr(CKR.MECHANISM_PARAM_INVALID, (e as Error).message);
  }
  return { name: 'ecdh', publicKey: spki, kdf, ...(p.sharedData?.length ? { sharedInfo: p.sharedData } : {}) };
}
