/**
 * The member's wire vocabulary: every request is plain, serialisable data (strings, numbers,
 * booleans, Uint8Array, plain objects) discriminated on `op`, and every answer is
 * `{ ok: true, result }` or `{ ok: false, error: { code, message } }`. Nothing here is a class,
 * so the same member runs in-process, in a worker or behind a socket unchanged.
 *
 * The schemas below are the single source of both the TypeScript types and the run-time checks
 * that a member applies to whatever reaches it.
 *
 * @module
 */
import { z } from 'zod';
import {
  EC_CURVES,
  KEY_CLASSES,
  KEY_TYPES,
  filterSchema,
  templateSchema,
  type AttributeFilter,
  type KeyAttributes,
  type KeyClass,
  type KeyType,
} from './attributes.js';
import type { WireError } from './errors.js';
import { ADMIN_SERVICES, HASHES, PRECO_USERNAME, QUORUM_SERVICES } from './names.js';

export { ADMIN_SERVICES, HASHES, PRECO_USERNAME, QUORUM_SERVICES };
export type QuorumService = (typeof QUORUM_SERVICES)[number];
/** See names.ts. */
export type AdminService = (typeof ADMIN_SERVICES)[number];

// A byte string is checked by the view's own internal slot (ArrayBuffer.isView), not by its
// prototype chain alone (an object made with Object.create(Uint8Array.prototype) is not one), and
// must be a plain Uint8Array or Buffer: a subclass could bring methods of its own into the member.
export function isBytes(v: unknown): v is Uint8Array {
  if (!ArrayBuffer.isView(v)) return false;
  const proto = Object.getPrototypeOf(v) as object;
  return proto === Uint8Array.prototype || proto === Buffer.prototype;
}
const bytes = z.custom<Uint8Array>(isBytes, { message: 'expected bytes (a Uint8Array)' });
const handle = z.int().min(0).max(Number.MAX_SAFE_INTEGER);
/** Every operation but login, activation and getHsmInfo names its session; a missing one is refused as NOT_LOGGED_IN. */
const session = z.string().min(1).max(128).optional();
const text = z.string().max(256);

/** The published initial password of the temporary admin (PRECO_USERNAME) of a never-activated member. */
export const PRECO_INITIAL_PASSWORD = 'password';
/** The appliance user that exists on every member. */
export const APPLIANCE_USERNAME = 'app_user';

export type HashName = (typeof HASHES)[number];
const hash = z.enum(HASHES);

export const USER_ROLES = ['unactivated-admin', 'admin', 'crypto-user', 'appliance'] as const;
export type UserRole = (typeof USER_ROLES)[number];

export const KEY_FORMATS = ['raw', 'pkcs8', 'spki', 'jwk'] as const;
export type KeyFormat = (typeof KEY_FORMATS)[number];

/** A JSON Web Key as plain data; the member checks its members against the key type. */
const jwk = z.looseObject({ kty: z.string() });
export type Jwk = z.infer<typeof jwk>;

const curve = z.enum([...EC_CURVES, 'prime256v1']);
/** The AES-GCM tag lengths a member takes, in bits. */
export const GCM_TAG_BITS = [32, 64, 96, 104, 112, 120, 128] as const;
const gcmTag = z.union(GCM_TAG_BITS.map((n) => z.literal(n)) as [z.ZodLiteral<number>, ...z.ZodLiteral<number>[]]);

// ---- mechanisms -------------------------------------------------------------------------------

const aesGcm = z.strictObject({
  name: z.literal('aes-gcm'),
  /**
   * Omitted on encrypt: the HSM generates 12 random bytes and returns them (always so when wrapping,
   * and for callers who do not own the key). Otherwise at least 12 bytes, unless `webcrypto`.
   */
  iv: bytes.optional(),
  aad: bytes.optional(),
  /** 96–128 bits (128 when omitted), unless `webcrypto`. */
  tagLengthBits: gcmTag.optional(),
  /** WebCrypto's bounds instead of the HSM's: IVs from 1 byte, tags from 32 bits (the WebCrypto door sets it, as the spec requires). */
  webcrypto: z.literal(true).optional(),
});
const cloudhsmAesGcm = z.strictObject({
  name: z.literal('cloudhsm-aes-gcm'),
  aad: bytes.optional(),
  tagLengthBits: gcmTag.optional(),
});
const aesCbc = z.strictObject({ name: z.literal('aes-cbc'), iv: bytes });
const aesCbcPad = z.strictObject({ name: z.literal('aes-cbc-pad'), iv: bytes });
const aesCtr = z.strictObject({
  name: z.literal('aes-ctr'),
  /** The 16-byte initial counter block. */
  counter: bytes,
  /** How many rightmost bits of the block count (1–128; 128 when omitted). */
  counterBits: z.int().min(1).max(128).optional(),
});
const aesEcb = z.strictObject({ name: z.literal('aes-ecb') });
const rsaOaep = z.strictObject({ name: z.literal('rsa-oaep'), hash, label: bytes.optional() });
const rsaPkcsCipher = z.strictObject({ name: z.literal('rsa-pkcs') });
/** Raw RSA (PKCS #11's CKM_RSA_X_509): the data as a number below the modulus, no padding; the output is modulus-long. Encrypt and decrypt only: it never wraps. */
const rsaX509 = z.strictObject({ name: z.literal('rsa-x-509') });

const ciphers = [aesGcm, cloudhsmAesGcm, aesCbc, aesCbcPad, aesCtr, aesEcb, rsaOaep, rsaPkcsCipher, rsaX509] as const;
export const cipherMechanismSchema = z.discriminatedUnion('name', ciphers);
export type CipherMechanism = z.infer<typeof cipherMechanismSchema>;

const aesNoPad = z.strictObject({ name: z.literal('aes-no-pad'), iv: bytes.optional() });
const aesPkcs5Pad = z.strictObject({ name: z.literal('aes-pkcs5-pad'), iv: bytes.optional() });
const aesZeroPad = z.strictObject({ name: z.literal('aes-zero-pad') });
const rsaAes = z.strictObject({
  name: z.literal('rsa-aes'),
  /** OAEP hash (and MGF1 hash) for the ephemeral AES key. */
  hash,
  /** Size of the ephemeral AES key; 256 when omitted. */
  aesKeyBits: z.union([z.literal(128), z.literal(192), z.literal(256)]).optional(),
});

/** Every cipher wraps too; the key-wrap flavours and RSA-AES only wrap. */
export const wrapMechanismSchema = z.discriminatedUnion('name', [...ciphers, aesNoPad, aesPkcs5Pad, aesZeroPad, rsaAes]);
export type WrapMechanism = z.infer<typeof wrapMechanismSchema>;

/**
 * The data is the digest of `hash` the caller computed (exactly its length), not the message:
 * CloudHSM CLI's `--data-type digest`, PKCS #11's single-part CKM_ECDSA / CKM_RSA_PKCS(_PSS).
 */
const prehashed = z.boolean().optional();

/** How an ECDSA signature is encoded: r‖s (`p1363`) or an ASN.1 sequence (`der`). */
export const SIGNATURE_FORMATS = ['p1363', 'der'] as const;

export const signMechanismSchema = z.discriminatedUnion('name', [
  z.strictObject({ name: z.literal('hmac'), hash }),
  z.strictObject({ name: z.literal('cmac') }),
  z.strictObject({ name: z.literal('rsa-pkcs'), hash, prehashed }),
  z.strictObject({ name: z.literal('rsa-pkcs-pss'), hash, saltLength: z.int().min(0).max(1024), prehashed }),
  /** PKCS #1 v1.5 signature padding (block type 1) over the caller's bytes as they are, at most the modulus less 11: PKCS #11's CKM_RSA_PKCS over data that is not a DigestInfo. */
  z.strictObject({ name: z.literal('rsa-pkcs-raw') }),
  /** Raw RSA with the private key (CKM_RSA_X_509): the caller pads. */
  rsaX509,
  z.strictObject({
    name: z.literal('ecdsa'),
    hash,
    /** `p1363` (r‖s, as WebCrypto and PKCS#11 use; the default) or `der` (as X.509 and OpenSSL use). */
    signatureFormat: z.enum(SIGNATURE_FORMATS).optional(),
    prehashed,
  }),
  z.strictObject({ name: z.literal('ed25519') }),
  /** Ed25519ph (RFC 8032 HashEdDSA: SHA-512 of the message, empty context). */
  z.strictObject({ name: z.literal('ed25519ph'), prehashed }),
  /** Ed448 (RFC 8032, pure, empty context). */
  z.strictObject({ name: z.literal('ed448') }),
]);
export type SignMechanism = z.infer<typeof signMechanismSchema>;

export const KDF_NAMES = ['null', 'x963-sha1', 'x963-sha224', 'x963-sha256', 'x963-sha384', 'x963-sha512'] as const;

export const deriveMechanismSchema = z.discriminatedUnion('name', [
  z.strictObject({
    name: z.literal('ecdh'),
    /** The peer's public key, as a handle the caller can see … */
    publicHandle: handle.optional(),
    /** … or as SubjectPublicKeyInfo DER bytes. Exactly one of the two. */
    publicKey: bytes.optional(),
    /** Key derivation applied to the shared secret: `null` (the raw secret, the default) or X9.63. */
    kdf: z.enum(KDF_NAMES).optional(),
    sharedInfo: bytes.optional(),
  }),
  z.strictObject({ name: z.literal('hkdf'), hash, salt: bytes, info: bytes }),
  z.strictObject({ name: z.literal('pbkdf2'), hash, salt: bytes, iterations: z.int().min(1).max(100_000_000) }),
  z.strictObject({
    name: z.literal('sp800-108-counter'),
    prf: z.enum(['hmac-sha1', 'hmac-sha224', 'hmac-sha256', 'hmac-sha384', 'hmac-sha512', 'cmac']),
    label: bytes,
    context: bytes,
  }),
]);
export type DeriveMechanism = z.infer<typeof deriveMechanismSchema>;

// ---- requests ---------------------------------------------------------------------------------

/** A quorum token with the approvers' signatures (CloudHSM's token file, decoded). */
const approval = z
  .strictObject({
    /** The token's approval_data: one segment from each member. */
    approvalData: bytes,
    /** Signatures over SHA-256(approvalData), RSA PKCS #1 v1.5, by approvers' registered keys. */
    signatures: z.array(z.strictObject({ username: z.string().max(64), signature: bytes })).max(32),
  })
  .optional();
/**
 * Crypto users a new secret or private key is shared with as it is made, in the same step (so a
 * key whose quorum values need them is never left without them). CloudHSM allows seven besides
 * the owner.
 */
const shareWith = z.array(z.string().max(64)).max(7).optional();
/** A registration token signed by the key being registered. */
const registration = z.strictObject({ approvalData: bytes, signature: bytes });

const newSecret = { keyType: z.enum(['aes', 'generic-secret']), lengthBytes: z.int().min(0).max(1 << 20) };

/** Every request, keyed by `op`. A request without `session` is one an unauthenticated caller may make. */
export const requestSchemas = {
  getHsmInfo: z.strictObject({ op: z.literal('getHsmInfo') }),
  activateCluster: z.strictObject({ op: z.literal('activateCluster'), password: z.string() }),
  login: z.strictObject({
    op: z.literal('login'),
    username: z.string(),
    password: z.string(),
    role: z.enum(USER_ROLES).optional(),
    /** For a user with MFA: a token from getMfaToken and its signature by the registered key. */
    mfa: z.strictObject({ unsigned: bytes, signature: bytes }).optional(),
  }),
  /** First step of an MFA login: checks the password and hands out an unsigned token to sign. */
  getMfaToken: z.strictObject({ op: z.literal('getMfaToken'), username: z.string(), password: z.string(), role: z.enum(USER_ROLES).optional() }),
  logout: z.strictObject({ op: z.literal('logout'), session }),
  /** What a host sends for the sessions of a connection that ended without logging out. */
  closeSession: z.strictObject({ op: z.literal('closeSession'), session }),
  listUsers: z.strictObject({ op: z.literal('listUsers'), session }),
  createUser: z.strictObject({
    op: z.literal('createUser'),
    session,
    username: z.string(),
    password: z.string(),
    role: z.enum(['admin', 'crypto-user']),
    approval,
  }),
  deleteUser: z.strictObject({ op: z.literal('deleteUser'), session, username: z.string(), approval }),
  changePassword: z.strictObject({
    op: z.literal('changePassword'),
    session,
    username: z.string(),
    password: z.string(),
    approval,
    /** Also remove the user's token-sign key for MFA (and so for quorum). */
    deregisterMfa: z.boolean().optional(),
    /** Also remove the user's quorum registration. */
    deregisterQuorum: z.boolean().optional(),
  }),
  changeMfa: z.strictObject({
    op: z.literal('changeMfa'),
    session,
    username: z.string(),
    role: z.enum(['admin', 'crypto-user']).optional(),
    /** The token-sign public key (PEM or SPKI DER), RSA 2048. */
    publicKey: bytes.optional(),
    registration: registration.optional(),
    deregister: z.boolean().optional(),
    /** Register the key for quorum as well. */
    changeQuorum: z.boolean().optional(),
    approval,
  }),
  registerQuorumKey: z.strictObject({ op: z.literal('registerQuorumKey'), session, publicKey: bytes, registration }),
  generateQuorumToken: z.strictObject({
    op: z.literal('generateQuorumToken'),
    session,
    service: z.enum(QUORUM_SERVICES),
    /** The key a key-management or key-usage token is for. */
    handle: handle.optional(),
  }),
  listQuorumTokens: z.strictObject({ op: z.literal('listQuorumTokens'), session }),
  deleteQuorumTokens: z.strictObject({
    op: z.literal('deleteQuorumTokens'),
    session,
    /** Only the tokens in this approval_data. */
    approvalData: bytes.optional(),
    username: z.string().optional(),
    service: z.enum(QUORUM_SERVICES).optional(),
  }),
  getQuorumSettings: z.strictObject({ op: z.literal('getQuorumSettings'), session }),
  setQuorumValue: z.strictObject({ op: z.literal('setQuorumValue'), session, service: z.enum(ADMIN_SERVICES), value: z.int().min(1).max(8), approval }),
  setQuorumTimeouts: z.strictObject({
    op: z.literal('setQuorumTimeouts'),
    session,
    generated: z.int().min(1).max(86_400).optional(),
    approved: z.int().min(1).max(86_400).optional(),
  }),

  /** Mutual TLS (hsm2m): a CA certificate (PEM, or a chain in hierarchical order) whose client certificates the members accept. */
  registerTrustAnchor: z.strictObject({ op: z.literal('registerTrustAnchor'), session, certificate: z.string().max(6980), approval }),
  deregisterTrustAnchor: z.strictObject({ op: z.literal('deregisterTrustAnchor'), session, reference: z.int().min(1).max(255), approval }),
  /** The anchors and the enforcement level: public, so the TLS host reads them unauthenticated. */
  getMtlsSettings: z.strictObject({ op: z.literal('getMtlsSettings'), session: session.optional() }),
  /** `cluster`: only client certificates under a registered anchor connect. */
  setMtlsEnforcement: z.strictObject({ op: z.literal('setMtlsEnforcement'), session, level: z.enum(['none', 'cluster']), approval }),

  generateKey: z.strictObject({ op: z.literal('generateKey'), session, ...newSecret, attributes: templateSchema.optional(), shareWith }),
  generateKeyPair: z.strictObject({
    op: z.literal('generateKeyPair'),
    session,
    keyType: z.enum(['rsa', 'ec', 'ed25519', 'x25519', 'ed448', 'x448']),
    /** RSA only. */
    modulusBits: z.int().min(0).max(65536).optional(),
    /** RSA only; 65537 when omitted. */
    publicExponent: z.int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    /** EC only. */
    curve: curve.optional(),
    publicAttributes: templateSchema.optional(),
    privateAttributes: templateSchema.optional(),
    /** Crypto users the private key is shared with as it is made. */
    shareWith,
  }),
  importKey: z.strictObject({
    op: z.literal('importKey'),
    session,
    keyClass: z.enum(KEY_CLASSES),
    keyType: z.enum(KEY_TYPES),
    format: z.enum(KEY_FORMATS),
    /** Bytes for raw, pkcs8 and spki; a JSON Web Key object for jwk. */
    keyData: z.union([bytes, jwk]),
    /** Required for raw EC public keys. */
    curve: curve.optional(),
    attributes: templateSchema.optional(),
    shareWith,
  }),
  exportKey: z.strictObject({
    op: z.literal('exportKey'),
    session,
    handle,
    format: z.enum(KEY_FORMATS),
    /** Approval for the key (its manage-key-quorum-value), as for a wrap. */
    approval,
  }),
  /** A new key with the material of `handle` (PKCS #11's C_CopyObject): the attributes as a change of the original's would make them. */
  copyKey: z.strictObject({ op: z.literal('copyKey'), session, handle, attributes: templateSchema.optional(), approval }),
  getAttributes: z.strictObject({ op: z.literal('getAttributes'), session, handle }),
  setAttributes: z.strictObject({ op: z.literal('setAttributes'), session, handle, attributes: templateSchema, approval }),
  findKeys: z.strictObject({
    op: z.literal('findKeys'),
    session,
    filter: z.strictObject({ handle: handle.optional(), attributes: filterSchema.optional() }).optional(),
    /** Page size; 100 when omitted. */
    maxItems: z.int().min(1).max(10_000).optional(),
    /** The `nextToken` of the previous page. */
    startingToken: z.string().max(32).optional(),
  }),
  deleteKey: z.strictObject({ op: z.literal('deleteKey'), session, handle }),
  shareKey: z.strictObject({ op: z.literal('shareKey'), session, handle, username: z.string(), approval }),
  unshareKey: z.strictObject({ op: z.literal('unshareKey'), session, handle, username: z.string(), approval }),

  encrypt: z.strictObject({ op: z.literal('encrypt'), session, handle, mechanism: cipherMechanismSchema, data: bytes }),
  decrypt: z.strictObject({ op: z.literal('decrypt'), session, handle, mechanism: cipherMechanismSchema, data: bytes }),
  sign: z.strictObject({ op: z.literal('sign'), session, handle, mechanism: signMechanismSchema, data: bytes, approval }),
  verify: z.strictObject({
    op: z.literal('verify'),
    session,
    handle,
    mechanism: signMechanismSchema,
    data: bytes,
    signature: bytes,
  }),
  digest: z.strictObject({ op: z.literal('digest'), session, hash, data: bytes }),
  generateRandom: z.strictObject({ op: z.literal('generateRandom'), session, length: z.int().min(0).max(1 << 30) }),

  wrapKey: z.strictObject({
    op: z.literal('wrapKey'),
    session,
    mechanism: wrapMechanismSchema,
    wrappingHandle: handle,
    payloadHandle: handle,
    /** What is wrapped: raw for secret keys, pkcs8 for private keys, spki for public keys when omitted. */
    format: z.enum(KEY_FORMATS).optional(),
    /** Public JWK members (alg, ext, key_ops, use) to add when format is jwk. */
    jwkExtras: z
      .strictObject({ alg: text.optional(), ext: z.boolean().optional(), key_ops: z.array(text).max(16).optional(), use: text.optional() })
      .optional(),
    /** Approval for the wrapping key (its manage-key-quorum-value). */
    approval,
    /** Approval for the payload key. */
    payloadApproval: approval,
  }),
  unwrapKey: z.strictObject({
    op: z.literal('unwrapKey'),
    session,
    mechanism: wrapMechanismSchema,
    unwrappingHandle: handle,
    wrapped: bytes,
    format: z.enum(KEY_FORMATS).optional(),
    keyClass: z.enum(KEY_CLASSES),
    keyType: z.enum(KEY_TYPES),
    curve: curve.optional(),
    attributes: templateSchema.optional(),
    shareWith,
    approval,
  }),
  deriveKey: z.strictObject({
    op: z.literal('deriveKey'),
    session,
    mechanism: deriveMechanismSchema,
    baseHandle: handle,
    ...newSecret,
    attributes: templateSchema.optional(),
  }),
  deriveBits: z.strictObject({
    op: z.literal('deriveBits'),
    session,
    mechanism: deriveMechanismSchema,
    baseHandle: handle,
    /** Bits to derive; for ECDH it may be omitted for the whole shared secret. */
    lengthBits: z.int().min(0).max(1 << 20).optional(),
  }),

  extractMaskedObject: z.strictObject({ op: z.literal('extractMaskedObject'), session, handle }),
  insertMaskedObject: z.strictObject({ op: z.literal('insertMaskedObject'), session, maskedObject: bytes }),
  getSyncStatus: z.strictObject({
    op: z.literal('getSyncStatus'),
    session,
    /** Only `summary` (and the settings): enough to tell whether two members agree. */
    summaryOnly: z.boolean().optional(),
  }),
  extractMaskedUser: z.strictObject({ op: z.literal('extractMaskedUser'), session, username: z.string() }),
  insertMaskedUser: z.strictObject({ op: z.literal('insertMaskedUser'), session, maskedUser: bytes }),
  extractMaskedSettings: z.strictObject({ op: z.literal('extractMaskedSettings'), session }),
  insertMaskedSettings: z.strictObject({ op: z.literal('insertMaskedSettings'), session, maskedSettings: bytes }),
  exportEncryptedKey: z.strictObject({
    op: z.literal('exportEncryptedKey'),
    session,
    handle,
    /** At least 8 characters: the file is only as strong as its password. */
    password: z.string().min(8, 'at least 8 characters').max(1024),
    /** Approval for the key (its manage-key-quorum-value), as for a wrap. */
    approval,
  }),
  importEncryptedKey: z.strictObject({
    op: z.literal('importEncryptedKey'),
    session,
    /** A PKCS #8 EncryptedPrivateKeyInfo, DER (what a PKCS #12 shrouded key bag holds). */
    encryptedPrivateKeyInfo: bytes,
    password: z.string().max(1024),
    attributes: templateSchema.optional(),
  }),
  createBackup: z.strictObject({ op: z.literal('createBackup'), session }),
  restoreBackup: z.strictObject({
    op: z.literal('restoreBackup'),
    session,
    backup: bytes,
    /** Make a new cluster from it (a new cluster id; CloudHSM's create-cluster from a backup), rather than join its cluster. */
    asNewCluster: z.boolean().optional(),
    /** On an active member, an admin's restore needs the user service's approval (the appliance user's repair does not). */
    approval,
  }),
  setClusterAddresses: z.strictObject({
    op: z.literal('setClusterAddresses'),
    session,
    addresses: z.array(z.string().regex(/^[A-Za-z0-9.\-]+:\d{1,5}$|^\[[0-9A-Fa-f:]+\]:\d{1,5}$/, 'expected host:port')).max(32),
  }),
  getAuditLog: z.strictObject({
    op: z.literal('getAuditLog'),
    session,
    fromSequence: z.int().min(0).optional(),
    maxItems: z.int().min(1).max(10_000).optional(),
  }),
} as const;

export type Op = keyof typeof requestSchemas;
export const OPS = Object.keys(requestSchemas) as Op[];

/** Every request a member understands. */
export type Request = { [O in Op]: z.infer<(typeof requestSchemas)[O]> }[Op];
export type RequestOf<O extends Op> = Extract<Request, { op: O }>;

// ---- results ----------------------------------------------------------------------------------

export interface UserInfo {
  username: string;
  role: UserRole;
  locked: boolean;
  failedLogins: number;
  /** MFA (token-sign) is registered. */
  mfa: boolean;
  /** A quorum (token-sign) key is registered. */
  quorum: boolean;
}

export interface QuorumTokenInfo {
  username: string;
  service: QuorumService;
  handle: number | null;
  approvalsRequired: number;
  /** Approvals given so far (approvals are checked when the token is used, so 0 until then). */
  approvals: number;
  secondsLeft: number;
}

/** What `findKeys` and `getAttributes` report about a key: handle, ownership and attributes, never material. */
export interface KeyInfo {
  handle: number;
  /** The handle as CloudHSM prints key references (`0x…`). */
  keyReference: string;
  owner: string;
  sharedUsers: string[];
  /** Whether the key lives only as long as the session that made it. */
  sessionKey: boolean;
  attributes: KeyAttributes;
}

export interface HsmInfo {
  model: string;
  serialNumber: string;
  firmware: string;
  state: 'initialized' | 'active';
  /** The cluster this member belongs to (null before activation or a clone). */
  clusterId: string | null;
  /** Requests it works on at once: its capacity, for load balancing. */
  queueLimit: number;
  /** `fips` or `non-fips`: backups restore only into the same mode. */
  mode: 'fips' | 'non-fips';
  /** Where every member of its cluster listens (`host:port`), for discovery from one address. */
  clusterAddresses: string[];
  profile: string;
  memberIndex: number;
  keys: number;
  /** Of `keys`, the session keys (CloudWatch's HsmKeysSessionOccupied; the rest are token keys). */
  sessionKeys: number;
  users: number;
  /** The profile's user limit (null: none). */
  maxUsers: number | null;
  sessions: number;
  auditHead: { sequence: number; hash: string };
  /** When its keys, users or cluster settings last changed (logins and reads do not count), or null. */
  lastChange: string | null;
}

export interface AuditRecord {
  /** Starts at 0, no gaps. */
  sequence: number;
  /** ISO 8601 UTC time. */
  time: string;
  /** How many times this member has started. */
  rebootCounter: number;
  opcode: string;
  /** The numeric session handle (never the session's secret token), or null. */
  sessionHandle: number | null;
  /** Who acted (null before login). */
  user: string | null;
  userType: UserRole | null;
  /** The user a user-management operation was about. */
  targetUser: string | null;
  keyHandles: number[];
  /** `SUCCESS` or the HsmError code of the refusal. */
  response: string;
  /** Hex SHA-256 of the previous record (64 zeros for the first). */
  previousHash: string;
  /** Hex SHA-256 over this record's other fields. */
  hash: string;
}

export interface Results {
  getHsmInfo: HsmInfo;
  activateCluster: { activated: true };
  login: { session: string; username: string; role: UserRole };
  /** `unsigned`: SHA-256 of the member's challenge, to be signed with the registered key. */
  getMfaToken: { unsigned: Uint8Array };
  changeMfa: { username: string; role: UserRole; mfa: boolean; quorum: boolean };
  registerQuorumKey: { username: string; role: UserRole };
  /** `approvalData`: this member's segment of the token. */
  generateQuorumToken: { approvalData: Uint8Array };
  listQuorumTokens: { tokens: QuorumTokenInfo[]; limit: number };
  deleteQuorumTokens: { deleted: number };
  getQuorumSettings: { values: Record<AdminService, number>; timeouts: { generated: number; approved: number } };
  setQuorumValue: { service: AdminService; value: number };
  setQuorumTimeouts: { generated: number; approved: number };
  registerTrustAnchor: { reference: number; certificate: string };
  deregisterTrustAnchor: { reference: number };
  getMtlsSettings: { anchors: { reference: number; certificate: string }[]; enforcement: 'none' | 'cluster' };
  setMtlsEnforcement: { level: 'none' | 'cluster' };
  logout: { loggedOut: true };
  closeSession: { loggedOut: true };
  listUsers: { users: UserInfo[] };
  createUser: { username: string; role: UserRole };
  deleteUser: { username: string };
  changePassword: { username: string; role: UserRole };
  generateKey: { handle: number };
  generateKeyPair: { publicHandle: number; privateHandle: number };
  /** `key`: what the new key looks like (class, type, size, curve), so a caller need not ask. */
  importKey: { handle: number; key: KeyInfo };
  copyKey: { handle: number; key: KeyInfo };
  exportKey: { keyData: Uint8Array | Jwk };
  getAttributes: KeyInfo;
  setAttributes: KeyInfo;
  findKeys: { keys: KeyInfo[]; nextToken: string | null };
  deleteKey: { handle: number };
  shareKey: { handle: number; sharedUsers: string[] };
  unshareKey: { handle: number; sharedUsers: string[] };
  /** `iv` is present when the HSM chose it (aes-gcm without an iv). */
  encrypt: { data: Uint8Array; iv?: Uint8Array };
  decrypt: { data: Uint8Array };
  sign: { signature: Uint8Array };
  verify: { valid: boolean };
  digest: { digest: Uint8Array };
  generateRandom: { data: Uint8Array };
  wrapKey: { wrapped: Uint8Array; iv?: Uint8Array };
  unwrapKey: { handle: number; key: KeyInfo };
  deriveKey: { handle: number };
  deriveBits: { bits: Uint8Array };
  /** `deleted`: the key was deleted, and `maskedObject` is its tombstone. */
  extractMaskedObject: { maskedObject: Uint8Array; deleted: boolean };
  /** `merged`: `applied` (added, replaced or deleted), `same` (already so) or `stale` (an equal generation that lost the tie). */
  insertMaskedObject: { handle: number; deleted: boolean; merged: 'applied' | 'same' | 'stale' };
  /** Digests of every token key and every user but the appliance user: equal on two members exactly when they agree. */
  getSyncStatus: {
    keys: { handle: number; digest: string; gen: number }[];
    users: { username: string; digest: string; gen: number }[];
    /** SHA-256 of the cluster settings that travel in backups (quorum values and timeouts). */
    settings: string;
    settingsGen: number;
    /** Token keys deleted here, with the generation of the deletion. */
    deletedKeys: { handle: number; gen: number }[];
    deletedUsers: { username: string; gen: number }[];
    /** SHA-256 over all of the above: equal on two members exactly when they agree. */
    summary: string;
  };
  /** `deleted`: the user was deleted, and `maskedUser` is its tombstone. */
  extractMaskedUser: { maskedUser: Uint8Array; deleted: boolean };
  insertMaskedUser: { username: string; deleted: boolean; merged: 'applied' | 'same' | 'stale' };
  extractMaskedSettings: { maskedSettings: Uint8Array };
  insertMaskedSettings: { merged: 'applied' | 'same' | 'stale' };
  setClusterAddresses: { addresses: string[] };
  /** `backup`: the encrypted backup; `header`: its clear header (cluster, mode, manufacturer, time). */
  exportEncryptedKey: { encryptedPrivateKeyInfo: Uint8Array };
  importEncryptedKey: { handle: number; key: KeyInfo };
  createBackup: { backup: Uint8Array; header: { v: 1 | 2; clusterId: string; mode: 'fips' | 'non-fips'; manufacturer: string; sourceSerial: string; createdAt: string; profile?: string } };
  /** `merged`: the member was active, and the backup's newer versions were merged in (nothing older replaced anything). */
  restoreBackup: { clusterId: string; users: number; keys: number; merged: boolean };
  getAuditLog: { records: AuditRecord[]; head: { sequence: number; hash: string } };
}

export type ResultOf<O extends Op> = Results[O];

export type Response<O extends Op = Op> = { ok: true; result: Results[O] } | { ok: false; error: WireError };

export type { AttributeFilter, KeyAttributes, KeyClass, KeyType };
