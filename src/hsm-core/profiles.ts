/**
 * Profiles: the capacity rules a member enforces. `cloudhsm` reproduces CloudHSM's published
 * per-call data limits, quotas and key types of an hsm2m.medium cluster, `cloudhsm-hsm1` those of
 * an hsm1.medium cluster (CLOUDHSM.md §3.1, §8: 3,300 keys, 250 users, no Ed25519, FIPS mode
 * only); `unlimited` keeps every rule of access and attributes but lifts sizes and counts, for
 * tests and for workloads that CloudHSM would refuse (small RSA keys, X25519, large HMAC inputs).
 *
 * @module
 */
import { HsmError } from './errors.js';
import type { KeyType } from './attributes.js';

export type ProfileName = 'cloudhsm' | 'cloudhsm-hsm1' | 'unlimited';
export const PROFILE_NAMES: readonly ProfileName[] = ['cloudhsm', 'cloudhsm-hsm1', 'unlimited'];

/** CloudHSM's HSM types, and the profile that reproduces each. */
export const HSM_TYPE_PROFILES = { 'hsm2m.medium': 'cloudhsm', 'hsm1.medium': 'cloudhsm-hsm1' } as const satisfies Record<string, ProfileName>;
export type HsmType = keyof typeof HSM_TYPE_PROFILES;

/** Mechanisms whose input is capped per call in CloudHSM (pkcs11-mechanisms.md, "Maximum data size"). */
export type DataLimitName =
  | 'aes-gcm'
  | 'aes-cbc'
  | 'hmac-sha1'
  | 'hmac-sha224'
  | 'hmac-sha256'
  | 'hmac-sha384'
  | 'hmac-sha512';

export interface Profile {
  readonly name: ProfileName;
  /** The CloudHSM HSM type it reproduces (null: none, `unlimited`). */
  readonly hsmType: HsmType | null;
  /** The cluster modes it may run in (hsm1.medium: FIPS only). */
  readonly modes: readonly ('fips' | 'non-fips')[];
  /** Keys per member (CloudHSM: keys per cluster). */
  readonly maxKeys: number;
  /** Of which public and private key objects. */
  readonly maxAsymmetricKeys: number;
  readonly maxUsers: number;
  readonly maxSessions: number;
  readonly maxRandomBytes: number;
  readonly dataLimits: Readonly<Record<DataLimitName, number>>;
  readonly keyTypes: ReadonlySet<KeyType>;
  readonly rsa: { readonly minBits: number; readonly maxBits: number; readonly stepBits: number; readonly minExponent: number };
  readonly genericSecret: { readonly minBytes: number; readonly maxBytes: number };
  /**
   * PBKDF2 work one call may ask for: iterations × output blocks (of the hash's size). A bound
   * on what one user can make the member's shared thread pool do (see slow-work.ts).
   */
  readonly maxKdfWork: number;
  /**
   * Whether AES-CTR may wrap keys (WebCrypto allows it; CloudHSM does not): only under a key that
   * cannot also encrypt data, whose keystream would otherwise give away what it wraps.
   */
  readonly ctrKeyWrap: boolean;
}

const CLOUDHSM: Profile = {
  name: 'cloudhsm',
  hsmType: 'hsm2m.medium',
  modes: ['fips', 'non-fips'],
  maxKeys: 16_666,
  maxAsymmetricKeys: 3_333,
  maxUsers: 1_024,
  maxSessions: 2_048,
  maxRandomBytes: 65_536,
  dataLimits: {
    'aes-gcm': 16_224,
    'aes-cbc': 16_272,
    'hmac-sha1': 16_288,
    'hmac-sha224': 16_256,
    'hmac-sha256': 16_288,
    'hmac-sha384': 16_224,
    'hmac-sha512': 16_224,
  },
  // hsm2m.medium in non-FIPS mode: RSA, EC, Ed25519, AES, generic secret.
  keyTypes: new Set<KeyType>(['aes', 'generic-secret', 'rsa', 'ec', 'ed25519']),
  rsa: { minBits: 2048, maxBits: 4096, stepBits: 256, minExponent: 65537 },
  genericSecret: { minBytes: 1, maxBytes: 800 },
  maxKdfWork: 10_000_000,
  ctrKeyWrap: false,
};

/** hsm1.medium: 3,300 keys of any class, 250 users (the current quota table), no Ed25519, FIPS only. */
const CLOUDHSM_HSM1: Profile = {
  ...CLOUDHSM,
  name: 'cloudhsm-hsm1',
  hsmType: 'hsm1.medium',
  modes: ['fips'],
  maxKeys: 3_300,
  maxAsymmetricKeys: 3_300,
  maxUsers: 250,
  keyTypes: new Set<KeyType>(['aes', 'generic-secret', 'rsa', 'ec']),
};

const UNLIMITED: Profile = {
  name: 'unlimited',
  hsmType: null,
  modes: ['fips', 'non-fips'],
  maxKeys: Infinity,
  maxAsymmetricKeys: Infinity,
  maxUsers: Infinity,
  maxSessions: Infinity,
  maxRandomBytes: 16 * 1024 * 1024,
  dataLimits: {
    'aes-gcm': Infinity,
    'aes-cbc': Infinity,
    'hmac-sha1': Infinity,
    'hmac-sha224': Infinity,
    'hmac-sha256': Infinity,
    'hmac-sha384': Infinity,
    'hmac-sha512': Infinity,
  },
  keyTypes: new Set<KeyType>(['aes', 'generic-secret', 'rsa', 'ec', 'ed25519', 'x25519', 'ed448', 'x448']),
  rsa: { minBits: 512, maxBits: 16384, stepBits: 8, minExponent: 3 },
  genericSecret: { minBytes: 0, maxBytes: 1024 * 1024 },
  maxKdfWork: 100_000_000,
  ctrKeyWrap: true,
};

export function getProfile(name: ProfileName): Profile {
  if (name === 'cloudhsm') return CLOUDHSM;
  if (name === 'cloudhsm-hsm1') return CLOUDHSM_HSM1;
  if (name === 'unlimited') return UNLIMITED;
  throw new HsmError('BAD_REQUEST', `profile: expected ${PROFILE_NAMES.join(', ')}, got ${JSON.stringify(name)}`);
}

/** Refuses a mode the profile's HSM type does not have (NON_FIPS is hsm2m.medium's only). */
export function checkProfileMode(profile: Profile, mode: 'fips' | 'non-fips'): void {
  if (!profile.modes.includes(mode)) {
    throw new HsmError('BAD_REQUEST', `mode: ${profile.hsmType} clusters run in FIPS mode only (the ${profile.name} profile); non-fips is for hsm2m.medium (the cloudhsm profile)`);
  }
}

/** The advice appended to every profile refusal, so the reader knows which switch lifts it. */
export function liftHint(profile: Profile): string {
  return profile.hsmType !== null ? " (CloudHSM's limit; start the cluster with profile: 'unlimited' to lift it)" : '';
}

/** Refuses `length` bytes of input to a mechanism capped by the profile. */
export function checkDataLimit(profile: Profile, limit: DataLimitName, length: number): void {
  const max = profile.dataLimits[limit];
  if (length > max) {
    throw new HsmError(
      'LIMIT_EXCEEDED',
      `data is ${length} bytes; the ${profile.name} profile allows at most ${max} bytes per ${limit} call${liftHint(profile)}`,
    );
  }
}

/**
 * What CloudHSM's FIPS mode refuses that its non-FIPS mode allows (CLOUDHSM.md §3): Ed25519 keys
 * (hsm2m.medium in non-FIPS mode only) and RSA PKCS #1 v1.5 encryption and wrapping (deprecated for
 * FIPS clusters after 2023; decryption and unwrapping of what exists stay). Only the `cloudhsm`
 * profile follows the mode; `unlimited` keeps every mechanism.
 */
export function checkModeAllows(profile: Profile, mode: 'fips' | 'non-fips', what: { keyType: KeyType } | { mechanism: string; use: 'encrypt' | 'wrap' }): void {
  if (profile.hsmType === null || mode !== 'fips') return;
  if ('keyType' in what) {
    if (what.keyType === 'ed25519') throw new HsmError('NOT_SUPPORTED_BY_PROFILE', 'ed25519 keys are for clusters in non-FIPS mode; this cluster is in FIPS mode (create it with mode non-fips, Mode NON_FIPS in the CloudHSM V2 API)');
    return;
  }
  if (what.mechanism === 'rsa-pkcs') {
    throw new HsmError('NOT_SUPPORTED_BY_PROFILE', `rsa-pkcs (PKCS #1 v1.5) ${what.use === 'wrap' ? 'wrapping' : 'encryption'} is not allowed in FIPS mode since 2024; use rsa-oaep, or a cluster in non-FIPS mode`);
  }
}
