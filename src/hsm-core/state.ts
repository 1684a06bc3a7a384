/**
 * A member's state: users, sessions, keys, audit log, masking key and profile, plus the few
 * helpers every operation shares. Only the operations in `ops/` change it, and only after all
 * their checks have passed.
 *
 * @module
 */
import type { KeyAttributes } from './attributes.js';
import type { Caller } from './access.js';
import { AuditLog } from './audit.js';
import { HsmError, keyRef } from './errors.js';
import { KeyStore, NO_SHARES, type KeyRecord } from './key-store.js';
import { Masking } from './masking.js';
import type { Material } from './mechanisms/keys.js';
import { liftHint, type Profile } from './profiles.js';
import type { KeyInfo, Op, RequestOf, Results } from './protocol.js';
import { SessionTable, type SessionRecord } from './sessions.js';
import type { UserRecord } from './users.js';
import { QuorumTokens, defaultQuorumSettings, type QuorumSettings } from './quorum.js';
import { SlowWork } from './slow-work.js';

export const MEMBER_MODES = ['fips', 'non-fips'] as const;
export type MemberMode = (typeof MEMBER_MODES)[number];

/** The key material a member's backups depend on, from its configuration. */
export interface BackupKeys {
  mode: MemberMode;
  /** MKBK: the emulated manufacturer's backup key (32 bytes). */
  manufacturerKey: Buffer;
  /** AKBK: the installation's service key (32 bytes), or null when none is configured. */
  serviceKey: Buffer | null;
}

/**
 * A map that remembers which of its entries were set or deleted since it was last asked, so that
 * a durable member writes only those (store.ts): a commit that compared every entry cost time in
 * proportion to every key ever deleted.
 */
export class TrackedMap<K, V> extends Map<K, V> {
  readonly #changed = new Set<K>();

  override set(key: K, value: V): this {
    this.#changed.add(key);
    return super.set(key, value);
  }

  override delete(key: K): boolean {
    this.#changed.add(key);
    return super.delete(key);
  }

  override clear(): void {
    for (const key of super.keys()) this.#changed.add(key);
    super.clear();
  }

  /** The keys set or deleted since the last call. */
  takeChanges(): K[] {
    const changed = [...this.#changed];
    this.#changed.clear();
    return changed;
  }
}

export class MemberState {
  lifecycle: 'initialized' | 'active' = 'initialized';
  /** Set at activation and carried by clones: members with the same id form one cluster. */
  clusterId: string | null = null;
  /** Where the cluster's members can be reached, for clients that know one address (discovery). */
  addresses: string[] = [];
  /** When its keys, users or cluster settings last changed (ISO time), or null. */
  lastChange: string | null = null;
  /**
   * The summary of the last getSyncStatus (a hash over every token key's digest, every user's, the
   * settings and the tombstones), kept until an operation that may change any of them begins or
   * ends (member.ts drops it around every operation that is not read-only). A cluster asks each
   * member for it every few seconds, and making it reads every key.
   */
  syncSummary: string | undefined = undefined;
  /** Requests the member works on at once before answering MEMBER_BUSY. */
  queueLimit = 1024;
  /**
   * Readies keys that are about to come in (a restore's) for the member's data folder: a member
   * with one seals their records ahead (MemberStore.sealAhead). Set by member.ts.
   */
  prepareKeys: (keys: readonly KeyRecord[]) => Promise<void> = () => Promise.resolve();
  /** Mode, manufacturer key and service key: what its backups depend on. */
  backupKeys: BackupKeys = { mode: 'fips', manufacturerKey: Buffer.alloc(32), serviceKey: null };
  readonly users = new Map<string, UserRecord>();
  readonly sessions = new SessionTable();
  readonly keys: KeyStore;
  audit = new AuditLog();
  masking = new Masking();
  /** Quorum values of the admin services and token timeouts: a cluster setting, the same on every member. */
  quorum: QuorumSettings = defaultQuorumSettings();
  readonly quorumTokens: QuorumTokens;
  /** PBKDF2 and password-based key encryption: bounded, and shared fairly between sessions. */
  readonly slowWork = new SlowWork();
  /** When the quorum settings last changed, as a generation (see {@link MemberState.stamp}); 0: never. */
  quorumGen = 0;
  /** MFA login challenges handed out and not yet answered: unsigned token (hex) → who and until when. */
  readonly mfaChallenges = new Map<string, { username: string; expires: number }>();
  /**
   * Deleted token keys: handle → the generation of the deletion. Handles are never reused, so a
   * deleted key never comes back, whatever copy of it arrives later (a masked object, a backup).
   */
  readonly keyTombstones = new TrackedMap<number, number>();
  /**
   * Deleted users: name → the generation of the deletion. A copy of the user made before it
   * (a masked user, a backup) is refused; a user created again later is newer and wins.
   */
  readonly userTombstones = new TrackedMap<string, number>();
  /** The logical clock behind generations: the highest counter made or seen here. */
  clock = 0;

  constructor(
    readonly profile: Profile,
    readonly memberIndex: number,
    readonly serialNumber: string,
    /** log2 of scrypt's N for new password hashes. */
    readonly passwordCost: number,
  ) {
    this.keys = new KeyStore(memberIndex);
    this.quorumTokens = new QuorumTokens(memberIndex);
  }

  /**
   * A new generation for a change made here. Generations order the versions of a key, a user or
   * the cluster settings across the members of a cluster (a Lamport clock: `counter × 32 +
   * memberIndex`, so two members never make the same one, and a member that has seen a
   * generation makes only larger ones afterwards). Where two versions of one thing meet
   * (replication, repair, a restore), the larger generation wins; a deletion is a version too.
   */
  stamp(): number {
    this.clock += 1;
    return this.clock * GENERATION_STRIDE + this.memberIndex;
  }

  /** Moves the clock past a generation that arrived from elsewhere. */
  observe(gen: number): void {
    this.clock = Math.max(this.clock, Math.floor(gen / GENERATION_STRIDE));
  }
}

/** Generations interleave the members' counters, as key handles do (at most 32 members). */
export const GENERATION_STRIDE = 32;

/** An operation's implementation. Role checks have already passed when it runs. */
export type Handler<O extends Op> = (m: MemberState, caller: Caller, req: RequestOf<O>) => Results[O] | Promise<Results[O]>;

/** The caller of an operation that requires a login (checkRole guarantees one). */
export function signedIn(caller: Caller): SessionRecord {
  if (!caller) throw new HsmError('NOT_LOGGED_IN', 'log in first');
  return caller;
}

export function keyInfo(key: KeyRecord): KeyInfo {
  const attributes: KeyAttributes = { ...key.attrs };
  if (attributes['wrap-template']) attributes['wrap-template'] = { ...attributes['wrap-template'] };
  if (attributes['unwrap-template']) attributes['unwrap-template'] = { ...attributes['unwrap-template'] };
  return {
    handle: key.handle,
    keyReference: keyRef(key.handle),
    owner: key.owner,
    sharedUsers: [...key.shared].sort(),
    sessionKey: key.session !== null,
    attributes,
  };
}

/** Refuses new keys beyond the profile's quotas. */
export function checkKeyQuota(m: MemberState, total: number, asymmetric: number): void {
  const { profile, keys } = m;
  if (keys.size + total > profile.maxKeys) {
    throw new HsmError('QUOTA_EXCEEDED', `the member holds ${keys.size} keys; the ${profile.name} profile allows ${profile.maxKeys}${liftHint(profile)}`);
  }
  if (keys.asymmetricCount + asymmetric > profile.maxAsymmetricKeys) {
    throw new HsmError(
      'QUOTA_EXCEEDED',
      `the member holds ${keys.asymmetricCount} public and private keys; the ${profile.name} profile allows ${profile.maxAsymmetricKeys}${liftHint(profile)}`,
    );
  }
}

/**
 * Stores a new key owned by the caller: a session key of the caller's session unless token=true.
 * Refused if the session ended while the key was being made (key pair generation and derivation
 * wait on the thread pool), so no key outlives the session that asked for it unseen.
 */
export function addKey(m: MemberState, caller: SessionRecord, material: Pick<Material, 'cls' | 'type' | 'key'>, attrs: KeyAttributes, shared: ReadonlySet<string> = NO_SHARES): KeyRecord {
  if (m.sessions.get(caller.token) !== caller) {
    throw new HsmError('NOT_LOGGED_IN', `the session of ${caller.username} ended before the key was stored; nothing was created`);
  }
  const key: KeyRecord = {
    handle: m.keys.nextHandle(),
    gen: m.stamp(),
    cls: material.cls,
    type: material.type,
    owner: caller.username,
    shared,
    session: attrs.token ? null : caller.token,
    attrs,
    material: material.key,
  };
  m.keys.add(key);
  return key;
}
