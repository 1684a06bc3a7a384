/**
 * Quorum (M of N) authentication and the token-sign key behind it and behind MFA
 * (CLOUDHSM.md §1.5, §1.6).
 *
 * A user registers one RSA-2048 public key ("token-sign"). The same key answers MFA login
 * challenges and approves quorum tokens, as in CloudHSM.
 *
 * A quorum token is issued by each member as a 72-byte *segment*: magic, service, member, a random
 * id, its time and the user it is for. A cluster client concatenates the segments of every member
 * into the token's `approval_data`; approvers sign SHA-256(approval_data) with PKCS #1 v1.5 (what
 * `openssl pkeyutl -sign -pkeyopt digest:sha256` does with the 32-byte digest as input). The
 * member of the *first* segment is the one that may use the token: a token is consumed once in
 * the whole cluster, and the other members refuse it, so a client that sends the approved
 * operation to every member directly cannot multiply it. That member checks that the token is
 * alive, belongs to the caller's session and service (and key), counts the distinct valid
 * signatures of eligible approvers, and consumes the token only when the operation commits; what
 * the operation changed then travels to the other members as masked objects, users or settings.
 *
 * @module
 */
import { createHash, createPublicKey, publicDecrypt, randomBytes, timingSafeEqual, constants, type KeyObject } from 'node:crypto';
import { HsmError, keyRef } from './errors.js';
import type { SessionRecord } from './sessions.js';
import { QUORUM_SERVICES, type AdminService, type QuorumService } from './protocol.js';


export const QUORUM_MAX = 8;
/** Tokens one member holds at most; when full, expired ones are purged first (CLOUDHSM.md §1.6). */
export const MAX_TOKENS = 1024;
/** CloudHSM's text when an operation lacks approval. */
export const APPROVAL_REQUIRED = 'Quorum approval is required for this operation';

export interface QuorumSettings {
  values: Record<AdminService, number>;
  /** Seconds: how long a generated token stays valid, and how long an approved one would. */
  timeouts: { generated: number; approved: number };
  /** Mutual TLS (hsm2m): absent until a trust anchor is first registered. */
  mtls?: MtlsSettings;
}

/**
 * Client certificates the TLS members accept besides the installation's own (customerCA), and
 * whether only those are accepted (`cluster`). A cluster setting: it travels with the quorum
 * values. AWS allows two trust anchors.
 */
export interface MtlsSettings {
  anchors: { reference: number; certificate: string }[];
  enforcement: 'none' | 'cluster';
}

export const MAX_TRUST_ANCHORS = 2;

export function defaultQuorumSettings(): QuorumSettings {
  return { values: { user: 1, quorum: 1, cluster: 1 }, timeouts: { generated: 600, approved: 600 } };
}

/** A user's registered token-sign key (SPKI DER, base64) and what it is registered for. */
export interface TokenSign {
  key: string;
  mfa: boolean;
  quorum: boolean;
}

export interface Approval {
  approvalData: Uint8Array;
  signatures: { username: string; signature: Uint8Array }[];
}

interface TokenRecord {
  id: string;
  service: QuorumService;
  username: string;
  /** The session token it belongs to: it dies with the session. */
  session: string;
  sessionHandle: number;
  handle: number | null;
  created: number;
  expires: number;
}

const MAGIC = Buffer.from('SRQ');
export const SEGMENT_BYTES = 72;
const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

/** The public key of a registration: PEM text or SPKI DER, RSA with a 2048-bit modulus. */
export function parseTokenSignKey(bytes: Uint8Array): KeyObject {
  let key: KeyObject;
  const data = Buffer.from(bytes);
  try {
    key = data.subarray(0, 11).toString('latin1') === '-----BEGIN ' ? createPublicKey(data.toString('utf8')) : createPublicKey({ key: data, format: 'der', type: 'spki' });
  } catch {
    throw new HsmError('KEY_INVALID', 'publicKey: not a PEM or DER public key');
  }
  if (key.asymmetricKeyType !== 'rsa' || key.asymmetricKeyDetails?.modulusLength !== 2048) {
    throw new HsmError('KEY_INVALID', `publicKey: the token-sign key must be RSA 2048 (sha256WithRSAEncryption), got ${key.asymmetricKeyType}${key.asymmetricKeyDetails?.modulusLength ? ` ${key.asymmetricKeyDetails.modulusLength}` : ''}`);
  }
  return key;
}

export function spkiOf(key: KeyObject): string {
  return key.export({ format: 'der', type: 'spki' }).toString('base64');
}

/** Whether `signature` is PKCS #1 v1.5 over the SHA-256 digest `digest` under `spkiB64`. */
export function verifyDigestSignature(spkiB64: string, digest: Buffer, signature: Uint8Array): boolean {
  const key = createPublicKey({ key: Buffer.from(spkiB64, 'base64'), format: 'der', type: 'spki' });
  let decoded: Buffer;
  try {
    decoded = publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, Buffer.from(signature));
  } catch {
    return false;
  }
  const expected = Buffer.concat([SHA256_DIGEST_INFO, digest]);
  return decoded.length === expected.length && timingSafeEqual(decoded, expected);
}

export const sha256 = (data: Uint8Array): Buffer => createHash('sha256').update(data).digest();

/** The quorum tokens one member has issued. */
export class QuorumTokens {
  readonly #tokens = new Map<string, TokenRecord>();

  constructor(private readonly memberIndex: number) {}

  /** Issues a token segment for the caller's session. */
  issue(caller: SessionRecord, service: QuorumService, handle: number | null, lifetimeSeconds: number, now = Date.now()): Uint8Array {
    this.purgeExpired(now);
    if (service === 'user' || service === 'quorum') {
      const active = [...this.#tokens.values()].find((t) => t.username === caller.username && t.service === service);
      if (active) {
        throw new HsmError('QUORUM_TOKEN_EXISTS', `${caller.username} already has an active ${service} token (one per user per service); use it, delete it with quorum token-sign delete, or let it expire`);
      }
    }
    if (this.#tokens.size >= MAX_TOKENS) {
      throw new HsmError('QUOTA_EXCEEDED', `the member holds ${MAX_TOKENS} live quorum tokens, its limit; delete some or wait for them to expire`);
    }
    const id = randomBytes(16);
    const record: TokenRecord = {
      id: id.toString('hex'),
      service,
      username: caller.username,
      session: caller.token,
      sessionHandle: caller.handle,
      handle,
      created: now,
      expires: now + lifetimeSeconds * 1000,
    };
    this.#tokens.set(record.id, record);
    const segment = Buffer.alloc(SEGMENT_BYTES);
    MAGIC.copy(segment, 0);
    segment[3] = 1;
    segment[4] = QUORUM_SERVICES.indexOf(service);
    segment[5] = this.memberIndex;
    id.copy(segment, 8);
    segment.writeBigUInt64BE(BigInt(Math.floor(now / 1000)), 24);
    segment.writeBigUInt64BE(BigInt(handle === null ? 0 : handle + 1), 32);
    Buffer.from(caller.username, 'utf8').copy(segment, 40, 0, 32);
    return new Uint8Array(segment);
  }

  /** The live token of this member named in `approvalData`, checked against what it must be for. */
  find(approvalData: Uint8Array, caller: SessionRecord, service: QuorumService, handle: number | null, now = Date.now()): TokenRecord {
    const data = Buffer.from(approvalData);
    if (data.length === 0 || data.length % SEGMENT_BYTES !== 0 || data.length > SEGMENT_BYTES * 32) {
      throw new HsmError('QUORUM_TOKEN_INVALID', `approval: approval_data is not a quorum token (${data.length} bytes; a token is a multiple of ${SEGMENT_BYTES})`);
    }
    let record: TokenRecord | undefined;
    let position = -1;
    for (let at = 0; at < data.length; at += SEGMENT_BYTES) {
      const segment = data.subarray(at, at + SEGMENT_BYTES);
      if (!MAGIC.equals(segment.subarray(0, 3))) throw new HsmError('QUORUM_TOKEN_INVALID', 'approval: approval_data is not a quorum token');
      record = this.#tokens.get(segment.subarray(8, 24).toString('hex'));
      if (record) {
        position = at;
        break;
      }
    }
    if (record && position > 0) {
      // One token, one use in the whole cluster: only the member that issued its first segment
      // may consume it; the others' segments only show the token in their lists.
      throw new HsmError('QUORUM_TOKEN_INVALID', `approval: this token is used on member ${data[5]} (the member of its first segment), not on this one (member ${this.memberIndex})`);
    }
    if (!record || record.expires <= now) {
      if (record) this.#tokens.delete(record.id);
      throw new HsmError('QUORUM_TOKEN_INVALID', 'approval: this member holds no live token in it (it expired, was used, was deleted, or its session logged out); generate a new one');
    }
    if (record.session !== caller.token) {
      throw new HsmError('QUORUM_TOKEN_INVALID', `approval: the token belongs to another login session of ${record.username}; a token is valid only in the session that generated it`);
    }
    if (record.service !== service) {
      throw new HsmError('QUORUM_TOKEN_INVALID', `approval: the token is for the ${record.service} service, and this operation needs a ${service} token`);
    }
    if (record.handle !== handle) {
      throw new HsmError('QUORUM_TOKEN_INVALID', `approval: the token was generated for ${record.handle === null ? 'no key' : `key ${keyRef(record.handle)}`}, not ${handle === null ? 'this operation' : `key ${keyRef(handle)}`}`);
    }
    return record;
  }

  /** Uses a token up; false if it was gone already (used, deleted or dropped meanwhile). */
  consume(id: string): boolean {
    return this.#tokens.delete(id);
  }

  /** Deletes tokens; returns how many. */
  delete(match: (t: { username: string; service: QuorumService; session: string; id: string }) => boolean): number {
    let n = 0;
    for (const t of [...this.#tokens.values()]) {
      if (match(t)) {
        this.#tokens.delete(t.id);
        n += 1;
      }
    }
    return n;
  }

  /** Forgets the tokens of a session that ended. */
  dropSession(sessionToken: string): void {
    this.delete((t) => t.session === sessionToken);
  }

  purgeExpired(now = Date.now()): void {
    for (const t of [...this.#tokens.values()]) if (t.expires <= now) this.#tokens.delete(t.id);
  }

  list(now = Date.now()): { username: string; service: QuorumService; handle: number | null; secondsLeft: number; segmentId: string }[] {
    this.purgeExpired(now);
    return [...this.#tokens.values()].map((t) => ({
      username: t.username,
      service: t.service,
      handle: t.handle,
      secondsLeft: Math.max(0, Math.ceil((t.expires - now) / 1000)),
      segmentId: t.id,
    }));
  }

  idsIn(approvalData: Uint8Array): string[] {
    const data = Buffer.from(approvalData);
    const ids: string[] = [];
    for (let at = 0; at + SEGMENT_BYTES <= data.length; at += SEGMENT_BYTES) ids.push(data.subarray(at + 8, at + 24).toString('hex'));
    return ids;
  }
}
