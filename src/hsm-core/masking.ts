/**
 * Masked objects: a token key (material, attributes, owner, shares, handle) encrypted under the
 * cluster's masking key with AES-256-GCM, so that it can travel to another member of the same
 * cluster and nowhere else. This is how keys are synchronised; the material is never in the
 * clear outside a member.
 *
 * Every masked thing carries its generation (see MemberState.stamp), and a deletion travels as a
 * masked *tombstone*: so a member can tell an old copy from a new one and refuse to bring back
 * what was changed or deleted since.
 *
 * Also the sync digests: an HMAC (under a key derived from the masking key) of each token key's
 * canonical form, equal on two members exactly when they hold the same version of the key.
 *
 * @module
 */
import { createCipheriv, createDecipheriv, createHmac, createSecretKey, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import type { KeyAttributes, KeyClass, KeyType } from './attributes.js';
import { HsmError } from './errors.js';
import type { MtlsSettings } from './quorum.js';
import { isVersionOf, sharesOf, type KeyRecord, type KeyVersion } from './key-store.js';
import { defaultFormat, parseHeldKey, serialiseKey } from './mechanisms/keys.js';
import type { UserRecord } from './users.js';

const MAGIC = Buffer.from('SRMO1');
const AAD = Buffer.from('strongroom:masked-object:v1');
const USER_AAD = Buffer.from('strongroom:masked-user:v1');
/** A session key moving to its session's login on another member: never mistaken for a token key. */
const SESSION_KEY_AAD = Buffer.from('strongroom:masked-session-key:v1');
const SETTINGS_AAD = Buffer.from('strongroom:masked-settings:v1');

export interface MaskedContent {
  handle: number;
  /** The version's generation (absent in records written before generations: 0). */
  gen?: number;
  cls: KeyClass;
  type: KeyType;
  owner: string;
  shared: string[];
  attrs: KeyAttributes;
  /** The material in its default format (raw, pkcs8 or spki), base64. */
  material: string;
}

/**
 * JSON with object keys sorted, so equal content gives equal text whatever order its members were
 * set in (members of different versions may build a key's attributes in different orders).
 */
export function canonicalJson(value: unknown): string {
  // A copy with sorted members, then JSON.stringify without a replacer: a replacer turns off V8's
  // fast serializer and is called for every value (this took a fifth of a member's join).
  return JSON.stringify(sortedCopy(value));
}

/** `value` as JSON.stringify sees it (after toJSON), with every object's members in sorted order. */
function sortedCopy(value: unknown): unknown {
  let v = value as { toJSON?: () => unknown } | null;
  if (v !== null && typeof v === 'object' && typeof v.toJSON === 'function') v = v.toJSON() as typeof v;
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(sortedCopy);
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v).sort()) {
    const member = sortedCopy((v as Record<string, unknown>)[k]);
    // A member named __proto__ stays a member (an assignment would set the prototype).
    if (k === '__proto__') Object.defineProperty(out, k, { value: member, enumerable: true, writable: true, configurable: true });
    else out[k] = member;
  }
  return out;
}

/** A user as it travels between members: the password only as its hash. */
export type MaskedUser = Pick<UserRecord, 'username' | 'role' | 'password' | 'tokenSign' | 'gen'>;

/** A deletion as it travels: which key or user, and its generation. */
export interface KeyTombstone {
  handle: number;
  deleted: true;
  gen: number;
}
export interface UserTombstone {
  username: string;
  deleted: true;
  gen: number;
}

/** The cluster settings as they travel: quorum values and timeouts, and their generation. */
export interface MaskedSettings {
  /** `cluster` is absent from settings sealed before it existed (then 1). */
  values: { user: number; quorum: number; cluster?: number };
  timeouts: { generated: number; approved: number };
  mtls?: MtlsSettings;
  gen: number;
}

/** What travels of a user (and what its sync digest covers): no token-sign key is written as none. */
export function maskedUserOf(user: UserRecord): MaskedUser {
  const masked: MaskedUser = { username: user.username, role: user.role, password: user.password, gen: user.gen ?? 0 };
  if (user.tokenSign) masked.tokenSign = { ...user.tokenSign };
  return masked;
}

/** A token key record from its content (material parsed once, here). */
export function keyFromContent(content: MaskedContent, shared: (username: string) => boolean = () => true, session: string | null = null): KeyRecord {
  return {
    handle: content.handle,
    gen: content.gen ?? 0,
    cls: content.cls,
    type: content.type,
    owner: content.owner,
    shared: sharesOf(content.shared.filter(shared)),
    session,
    attrs: { ...content.attrs, token: session === null },
    material: parseHeldKey(content.cls, content.type, defaultFormat(content.cls), Buffer.from(content.material, 'base64')),
  };
}

export function contentOf(key: KeyRecord): MaskedContent {
  const bytes = serialiseKey(key, defaultFormat(key.cls)) as Uint8Array;
  return {
    handle: key.handle,
    gen: key.gen,
    cls: key.cls,
    type: key.type,
    owner: key.owner,
    shared: [...key.shared].sort(),
    attrs: key.attrs,
    material: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64'),
  };
}

/** A key's sync digest, and the version of the key it is of. */
type KeptDigest = KeyVersion & { digest: string };

export class Masking {
  readonly #key: KeyObject;
  readonly #digestKey: KeyObject;

  /** A new cluster's masking key, or (from a clone) the cluster's existing one. */
  constructor(secret: Buffer = randomBytes(32)) {
    if (secret.length !== 32) throw new HsmError('MASKED_OBJECT_INVALID', 'the masking key must be 32 bytes');
    this.#key = createSecretKey(secret);
    this.#digestKey = createSecretKey(Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), 'strongroom:sync-digest', 32)));
    secret.fill(0);
  }

  /** The masking key's bytes, for a clone sealed to a joining member; the caller must wipe them. */
  exportSecret(): Buffer {
    return this.#key.export();
  }

  seal(key: KeyRecord): Uint8Array {
    return this.#seal(contentOf(key), AAD);
  }

  /** A session key, to move to the same user's session on another member of the cluster. */
  sealSessionKey(key: KeyRecord): Uint8Array {
    return this.#seal(contentOf(key), SESSION_KEY_AAD);
  }

  /** A session key sealed by {@link sealSessionKey}, or null when the blob is not one (a token key's, or none). */
  openSessionKey(blob: Uint8Array): MaskedContent | null {
    let plain: Buffer;
    try {
      plain = this.#open(blob, SESSION_KEY_AAD, 'maskedObject');
    } catch {
      return null;
    }
    try {
      return JSON.parse(plain.toString('utf8')) as MaskedContent;
    } finally {
      plain.fill(0);
    }
  }

  /** A key's deletion, to travel like the key did. */
  sealKeyTombstone(handle: number, gen: number): Uint8Array {
    return this.#seal({ handle, deleted: true, gen } satisfies KeyTombstone, AAD);
  }

  sealUser(user: UserRecord): Uint8Array {
    return this.#seal(maskedUserOf(user), USER_AAD);
  }

  sealUserTombstone(username: string, gen: number): Uint8Array {
    return this.#seal({ username, deleted: true, gen } satisfies UserTombstone, USER_AAD);
  }

  openUser(blob: Uint8Array): MaskedUser | UserTombstone {
    return JSON.parse(this.#open(blob, USER_AAD, 'maskedUser').toString('utf8')) as MaskedUser | UserTombstone;
  }

  sealSettings(settings: MaskedSettings): Uint8Array {
    return this.#seal(settings, SETTINGS_AAD);
  }

  openSettings(blob: Uint8Array): MaskedSettings {
    return JSON.parse(this.#open(blob, SETTINGS_AAD, 'maskedSettings').toString('utf8')) as MaskedSettings;
  }

  #seal(content: unknown, aad: Buffer): Uint8Array {
    const plain = Buffer.from(canonicalJson(content));
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(aad);
    const body = Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
    plain.fill(0);
    return Buffer.concat([MAGIC, iv, body]);
  }

  open(blob: Uint8Array): MaskedContent | KeyTombstone {
    const plain = this.#open(blob, AAD, 'maskedObject');
    try {
      return JSON.parse(plain.toString('utf8')) as MaskedContent | KeyTombstone;
    } finally {
      plain.fill(0);
    }
  }

  #open(blob: Uint8Array, aad: Buffer, field: string): Buffer {
    const refuse = (why: string): never => {
      throw new HsmError('MASKED_OBJECT_INVALID', `${field}: ${why}`);
    };
    if (blob.length < MAGIC.length + 12 + 16 || !MAGIC.equals(blob.subarray(0, MAGIC.length))) refuse('not a Strongroom masked object');
    const iv = blob.subarray(MAGIC.length, MAGIC.length + 12);
    const body = blob.subarray(MAGIC.length + 12);
    const decipher = createDecipheriv('aes-256-gcm', this.#key, iv);
    decipher.setAAD(aad);
    decipher.setAuthTag(body.subarray(body.length - 16));
    try {
      return Buffer.concat([decipher.update(body.subarray(0, body.length - 16)), decipher.final()]);
    } catch {
      return refuse('it was not masked by a member of this cluster, or it was altered');
    }
  }

  /**
   * The sync digest of a token key. Kept per version (generation, attributes, shares), so
   * comparing thousands of keys again and again costs a lookup each, not a serialisation.
   */
  digest(key: KeyRecord): string {
    const cached = this.#digests.get(key);
    if (isVersionOf(cached, key)) return cached.digest;
    const digest = createHmac('sha256', this.#digestKey).update(canonicalJson(contentOf(key))).digest('hex');
    this.#digests.set(key, { gen: key.gen, attrs: key.attrs, shared: key.shared, digest });
    return digest;
  }

  readonly #digests = new WeakMap<KeyRecord, KeptDigest>();

  /** Whether {@link digest} of `key` is made already (for this version of it). */
  hasDigest(key: KeyRecord): boolean {
    return isVersionOf(this.#digests.get(key), key);
  }

  /** The sync digest of a user: name, role and password hash. */
  userDigest(user: UserRecord): string {
    const masked = maskedUserOf(user);
    return createHmac('sha256', this.#digestKey).update('user:').update(canonicalJson(masked)).digest('hex');
  }
}
