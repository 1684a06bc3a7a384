/**
 * A durable member: its token keys, users, attributes, shares, cluster settings and audit log in
 * an LMDB environment (the `lmdb` package: memory-mapped, ACID, crash-safe) in its data folder.
 *
 * What is stored, under which record key:
 * - `meta`: format version, member number, serial, profile, lifecycle, cluster id, addresses,
 *   the key-handle counter and the reboot counter;
 * - `user/<name>`: a user (name, role, password hash, failed logins);
 * - `key/<handle>`: a token key — owner, shares, attributes and material — encrypted;
 * - `masking`: the cluster's masking key, encrypted;
 * - `audit/<sequence>`: the audit records, hash-chained as in memory;
 * - `deleted/key/<handle>`, `deleted/user/<name>`: tombstones (the generation of a deletion), so
 *   that no copy of a deleted key or user is taken back after a restart.
 *
 * Encryption at rest: each `key/…` and the `masking` record is AES-256-GCM under the member's
 * storage key, with the record key (its identity) as associated data, so a record copied under
 * another name does not open. The storage key is 32 random bytes kept in `storage-key` (mode
 * 0600), or, when a passphrase is configured, wrapped (AES-256-GCM) under a key derived from the
 * passphrase with scrypt in `storage-key.json`.
 *
 * That protects key material in a copy of the data folder taken without the passphrase (a
 * backup tape, a stolen disk image, another user on the machine when the passphrase is used),
 * and it detects records altered or moved. It does not protect against anyone who can read the
 * member's memory or, without a passphrase, the `storage-key` file as the owner; and users'
 * password hashes, attributes and the audit log are stored in the clear (they are not secret).
 *
 * Durability: a change is committed and flushed to disk before the member answers the request
 * that made it. A commit is all or nothing; when one fails (a full disk), its request is refused
 * and the next commit writes what it held again, and a commit queued before the failure fails
 * too, so the folder never holds a later change without an earlier one (the audit log no gap).
 *
 * @module
 */
import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { syncFolder, writeFileDurably } from './durable.js';
import { dirname, join, resolve } from 'node:path';
import type { Key, RangeOptions, RootDatabase } from 'lmdb';
import type { AuditRecord } from './protocol.js';
import type { AuditArchive } from './audit.js';
import { HsmError } from './errors.js';
import { lockFolder, type FolderLock } from './folder-lock.js';
import { isVersionOf, type KeyRecord, type KeyVersion } from './key-store.js';
import { contentOf, keyFromContent, type MaskedContent } from './masking.js';
import { KEYS_A_TURN, inTurns, nextTurn, usesThreadPool } from './mechanisms/pool.js';
import type { MemberState } from './state.js';
import type { UserRecord } from './users.js';
import type { QuorumSettings } from './quorum.js';

/** The format this version reads and writes. A folder with a larger number is refused. */
export const STORE_FORMAT = 1;

export interface StoredMeta {
  format: number;
  memberIndex: number;
  serialNumber: string;
  profile: string;
  lifecycle: 'initialized' | 'active';
  clusterId: string | null;
  addresses: string[];
  keyCounter: number;
  rebootCounter: number;
  lastChange?: string | null;
  /** Quorum values and token timeouts (absent in folders written before quorum existed). */
  quorum?: QuorumSettings;
  /** The generation of the quorum settings and the logical clock (absent before generations: 0). */
  quorumGen?: number;
  clock?: number;
}

let injectedFailures = 0;

/**
 * For tests: the next `count` commits of any store in this process fail as a disk that refuses a
 * write would, writing nothing.
 */
export function injectStoreFailures(count: number): void {
  injectedFailures = count;
}

/** What a commit must write besides meta, users and new audit records. */
export interface CommitScope {
  /** Token keys to write or remove: these handles, or every key. */
  keys: readonly number[] | 'all';
  masking: boolean;
}

const KEY_AAD = 'strongroom:storage-key:v1';

/** The record key of audit record `sequence`: zero-padded, so that keys sort as numbers do. */
function auditKey(sequence: number): string {
  return `audit/${String(sequence).padStart(12, '0')}`;
}

/** Whether two records have the same fields with the same values (nested values by identity). */
function sameFields(a: object, b: object): boolean {
  let count = 0;
  for (const k in a) {
    if ((a as Record<string, unknown>)[k] !== (b as Record<string, unknown>)[k]) return false;
    count += 1;
  }
  for (const _ in b) count -= 1;
  return count === 0;
}

function refuse(dir: string, why: string): never {
  throw new HsmError('BAD_REQUEST', `data folder ${dir}: ${why}; nothing was changed`);
}

function seal(key: Buffer, aad: string, plain: Buffer, iv: Buffer = randomBytes(12)): Buffer {
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad));
  return Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
}

/** A token key's record as stored under `key/<handle>`: its content (masking.ts's contentOf), sealed. */
function sealKey(key: Buffer, record: KeyRecord, iv: Buffer): Buffer {
  const name = `key/${record.handle}`;
  const plain = Buffer.from(JSON.stringify(contentOf(record)));
  try {
    return seal(key, name, plain, iv);
  } finally {
    plain.fill(0);
  }
}

/** A key's record sealed before the commit that writes it (see MemberStore.sealAhead), and the version of the key it is of. */
type SealedAhead = KeyVersion & { sealed: Buffer };

function unseal(key: Buffer, aad: string, blob: Buffer): Buffer | null {
  if (blob.length < 28) return null;
  const decipher = createDecipheriv('aes-256-gcm', key, blob.subarray(0, 12));
  decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(blob.subarray(blob.length - 16));
  try {
    return Buffer.concat([decipher.update(blob.subarray(12, blob.length - 16)), decipher.final()]);
  } catch {
    return null;
  }
}

/** Loads or makes the storage key. */
function storageKey(dir: string, passphrase: string | undefined, fresh: boolean): Buffer {
  const rawFile = join(dir, 'storage-key');
  const wrappedFile = join(dir, 'storage-key.json');
  if (existsSync(rawFile) || existsSync(wrappedFile)) {
    if (passphrase === undefined && existsSync(wrappedFile)) refuse(dir, 'its storage key is protected by a passphrase; set STRONGROOM_MASTER_PASSPHRASE (or the passphrase option)');
    if (passphrase !== undefined && existsSync(rawFile)) refuse(dir, 'its storage key is not protected by a passphrase, but one was given; start without it');
    if (passphrase === undefined) {
      const mode = statSync(rawFile).mode & 0o777;
      if (mode & 0o077) refuse(dir, `storage-key is readable by others (mode ${mode.toString(8)}); chmod 600 it`);
      const key = readFileSync(rawFile);
      if (key.length !== 32) refuse(dir, 'storage-key is not a 32-byte key');
      return key;
    }
    let file: { format?: number; kdf?: { log2N: number; r: number; p: number; salt: string }; wrapped?: string };
    try {
      file = JSON.parse(readFileSync(wrappedFile, 'utf8')) as typeof file;
    } catch {
      return refuse(dir, 'storage-key.json is not valid JSON');
    }
    if (!file.kdf || typeof file.wrapped !== 'string') refuse(dir, 'storage-key.json lacks its kdf or wrapped key');
    const { log2N, r, p, salt } = file.kdf!;
    const kek = scryptSync(passphrase, Buffer.from(salt, 'base64'), 32, { N: 2 ** log2N, r, p, maxmem: 256 * 2 ** log2N * r });
    const key = unseal(kek, KEY_AAD, Buffer.from(file.wrapped!, 'base64'));
    kek.fill(0);
    if (!key) refuse(dir, 'wrong passphrase (the storage key does not open with it)');
    return key!;
  }
  if (!fresh) refuse(dir, 'the store exists but its storage key file is missing');
  const key = randomBytes(32);
  if (passphrase === undefined) {
    writeFileDurably(rawFile, key, 0o600);
  } else {
    if (passphrase.length < 8) throw new HsmError('BAD_REQUEST', 'passphrase: at least 8 characters');
    const kdf = { log2N: 15, r: 8, p: 1, salt: randomBytes(16).toString('base64') };
    const kek = scryptSync(passphrase, Buffer.from(kdf.salt, 'base64'), 32, { N: 2 ** kdf.log2N, r: kdf.r, p: kdf.p, maxmem: 256 * 2 ** kdf.log2N * kdf.r });
    writeFileDurably(wrappedFile, JSON.stringify({ format: 1, kdf, wrapped: seal(kek, KEY_AAD, key).toString('base64') }, null, 2) + '\n', 0o600);
    kek.fill(0);
  }
  // The folder's own name, in the folder that holds it (its entries, the store's files and the
  // key's, were flushed with the key).
  syncFolder(dirname(resolve(dir)));
  return key;
}

/** How many audit records' names a start checks in one turn of the event loop (about 5 ms of work). */
const AUDIT_KEYS_A_TURN = 10_000;

/**
 * A range of the store read `size` entries a piece, each piece after the first in a later turn of
 * the event loop on a member that shares its thread with the application: a range of its own,
 * after the last key of the piece before (nothing else writes here while the member starts).
 */
async function* inPieces<T>(read: (range: RangeOptions) => Iterable<T>, keyOf: (entry: T) => Key, start: string, end: string, size: number): AsyncGenerator<T[]> {
  let range: RangeOptions = { start, end, limit: size };
  for (let first = true; ; first = false) {
    if (!first && usesThreadPool()) await nextTurn();
    const piece = [...read(range)];
    yield piece;
    if (piece.length < size) return;
    range = { start: keyOf(piece.at(-1)!), exclusiveStart: true, end, limit: size };
  }
}

export interface LoadedState {
  meta: StoredMeta;
  users: UserRecord[];
  keys: KeyRecord[];
  masking: Buffer | null;
  /** The audit log in the folder, read when asked (a long log is not held in memory). */
  audit: AuditArchive;
  deletedKeys: Map<number, number>;
  deletedUsers: Map<string, number>;
}

export class MemberStore {
  readonly dir: string;
  readonly #db: RootDatabase;
  readonly #key: Buffer;
  /**
   * The users on disk: name → the record as written. Users change in place, one field at a time
   * (failed logins, a new password hash), and their fields are replaced, never changed inside, so
   * a user whose fields are the same values is the same user.
   */
  readonly #users = new Map<string, UserRecord>();
  readonly #keys = new Set<number>();
  /** Tombstones on disk: record name → generation. */
  readonly #tombstones = new Map<string, number>();
  #auditWritten = 0;
  #closed = false;
  /**
   * What commits that failed were to write, which the next commit writes again (with what memory
   * holds then): token keys (written or removed), tombstones, the masking key.
   */
  readonly #retry = { keys: new Set<number>(), keyTombstones: new Set<number>(), userTombstones: new Set<string>(), masking: false };
  /** Keys' records sealed ahead of the commit that writes them (see sealAhead). */
  readonly #sealedAhead = new WeakMap<KeyRecord, SealedAhead>();

  readonly #lock: FolderLock;

  private constructor(dir: string, db: RootDatabase, key: Buffer, lock: FolderLock) {
    this.dir = dir;
    this.#db = db;
    this.#key = key;
    this.#lock = lock;
  }

  /**
   * Opens (or creates) the store in `dir`, taking the folder's lock first: a folder another
   * process has open is refused with FOLDER_IN_USE (folder-lock.ts).
   */
  static async open(dir: string, passphrase?: string): Promise<MemberStore> {
    // Loaded when a member opens a folder: a process that only talks to members (the CLI) never loads it.
    const { open } = await import('lmdb');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const lock = lockFolder(dir, 'data folder');
    if (lock.tookOver) process.emitWarning(`data folder ${dir}: took over the lock of ${lock.tookOver}, which is no longer running`, 'StrongroomWarning');
    const path = join(dir, 'store');
    let db: RootDatabase;
    try {
      db = open({ path, compression: false });
    } catch (e) {
      lock.release();
      return refuse(dir, `its store does not open (${e instanceof Error ? e.message : String(e)})`);
    }
    try {
      const meta = db.get('meta') as StoredMeta | undefined;
      if (meta && meta.format > STORE_FORMAT) refuse(dir, `it was written by a newer Strongroom (store format ${meta.format}; this one reads ${STORE_FORMAT})`);
      // No meta: nothing was ever committed here (a new folder, or a first start that was refused).
      const key = storageKey(dir, passphrase, meta === undefined);
      return new MemberStore(dir, db, key, lock);
    } catch (e) {
      void db.close();
      lock.release();
      throw e;
    }
  }

  /** The stored state, or null for a new store. Refuses a record that does not decrypt. */
  async load(): Promise<LoadedState | null> {
    const meta = this.#db.get('meta') as StoredMeta | undefined;
    if (!meta) return null;
    const users: UserRecord[] = [];
    const keys: KeyRecord[] = [];
    let masking: Buffer | null = null;
    // The keys, KEYS_A_TURN records a turn on a member that shares its thread with the
    // application (reading 100,000 held it about 3 s).
    for await (const piece of inPieces((range) => this.#db.getRange(range), (entry) => entry.key, 'key/', 'key0', KEYS_A_TURN)) {
      for (const { key, value } of piece) {
        const plain = unseal(this.#key, String(key), Buffer.from(value as Uint8Array));
        if (!plain) refuse(this.dir, `record ${String(key)} is corrupted (it does not authenticate under the storage key)`);
        try {
          keys.push(keyFromContent(JSON.parse(plain!.toString('utf8')) as MaskedContent));
        } catch (e) {
          refuse(this.dir, `record ${String(key)} holds a key that does not parse (${e instanceof Error ? e.message : String(e)})`);
        } finally {
          plain!.fill(0);
        }
        this.#keys.add(Number(String(key).slice(4)));
      }
    }
    for (const { key, value } of this.#db.getRange({ start: 'user/', end: 'user0' })) {
      users.push(value as UserRecord);
      this.#users.set(String(key).slice(5), value as UserRecord);
    }
    const deletedKeys = new Map<number, number>();
    const deletedUsers = new Map<string, number>();
    for (const { key, value } of this.#db.getRange({ start: 'deleted/', end: 'deleted0' })) {
      const name = String(key);
      if (name.startsWith('deleted/key/')) deletedKeys.set(Number(name.slice(12)), value as number);
      else if (name.startsWith('deleted/user/')) deletedUsers.set(name.slice(13), value as number);
      this.#tombstones.set(name, value as number);
    }
    const sealed = this.#db.get('masking') as Uint8Array | undefined;
    if (sealed) {
      masking = unseal(this.#key, 'masking', Buffer.from(sealed));
      if (!masking) refuse(this.dir, 'record masking is corrupted (it does not authenticate under the storage key)');
    }
    // lmdb gives the keys in order, and they are zero-padded sequence numbers: 0, 1, 2, ... Checked
    // AUDIT_KEYS_A_TURN a turn on a member that shares its thread (100,000 records took 70 ms).
    let count = 0;
    for await (const piece of inPieces((range) => this.#db.getKeys(range), (key) => key, 'audit/', 'audit0', AUDIT_KEYS_A_TURN)) {
      for (const key of piece) {
        if (key !== auditKey(count)) refuse(this.dir, 'the audit log has a gap');
        count += 1;
      }
    }
    this.#auditWritten = count;
    return { meta, users, keys, masking, audit: this.auditArchive(), deletedKeys, deletedUsers };
  }

  /** The audit records written so far, as an archive for the member's log (audit.ts). */
  auditArchive(): AuditArchive {
    const db = this.#db;
    const count = this.#auditWritten;
    return {
      count,
      last: count ? (db.get(auditKey(count - 1)) as AuditRecord) : null,
      read(from, max) {
        // The log asks only for records it has been told are written.
        const out: AuditRecord[] = [];
        for (const { value } of db.getRange({ start: auditKey(from), end: auditKey(from + max) })) out.push(value as AuditRecord);
        return out;
      },
    };
  }

  /**
   * Seals the records of keys that a coming commit will write (a restore's, before they are the
   * member's), {@link KEYS_A_TURN} a turn of the event loop on a member that shares its thread with
   * the application: the commit, which makes its whole picture in one turn, then takes each as it
   * is, if the key is still that version (its generation, attributes and shares, as the sync
   * digests are kept), and seals it again if not. A restore of 100,000 keys into an in-process
   * member held the thread about 3 s in its commit, most of it sealing.
   */
  async sealAhead(keys: readonly KeyRecord[]): Promise<void> {
    for await (const slice of inTurns(keys)) {
      // One draw of IVs a slice: random, so as unlikely to repeat as a draw each.
      const ivs = randomBytes(12 * slice.length);
      slice.forEach((record, i) => {
        if (record.session !== null) return;
        const sealed = sealKey(this.#key, record, ivs.subarray(12 * i, 12 * i + 12));
        this.#sealedAhead.set(record, { gen: record.gen, attrs: record.attrs, shared: record.shared, sealed });
      });
    }
  }

  /** `record`'s record sealed ahead, if it was and the key is still the version it was then; taken once. */
  #takeSealedAhead(record: KeyRecord): Buffer | undefined {
    const ahead = this.#sealedAhead.get(record);
    if (!ahead) return undefined;
    this.#sealedAhead.delete(record);
    return isVersionOf(ahead, record) ? ahead.sealed : undefined;
  }

  /** Writes what `scope` names plus meta, users and new audit records, in one transaction, and waits until it is on disk. */
  async commit(m: MemberState, scope: CommitScope): Promise<void> {
    if (this.#closed) throw new HsmError('MEMBER_CLOSED', 'this member has been closed');
    const db = this.#db;
    const key = this.#key;
    const knownUsers = this.#users;
    const knownKeys = this.#keys;
    const written = this.#auditWritten;
    const records = m.audit.read(written, Number.MAX_SAFE_INTEGER);
    const meta: StoredMeta = {
      format: STORE_FORMAT,
      memberIndex: m.memberIndex,
      serialNumber: m.serialNumber,
      profile: m.profile.name,
      lifecycle: m.lifecycle,
      clusterId: m.clusterId,
      addresses: m.addresses,
      keyCounter: m.keys.counter,
      rebootCounter: m.audit.rebootCounter,
      lastChange: m.lastChange,
      quorum: m.quorum,
      quorumGen: m.quorumGen,
      clock: m.clock,
    };
    // Everything is computed and encrypted here, synchronously, so the transaction writes one
    // consistent picture of the member.
    const puts: [string, unknown][] = [['meta', meta]];
    const removes: string[] = [];
    // Users: those whose fields changed since they were written (writing every user at every
    // commit made a member of 1,000 users four times slower at everything it stores).
    const usersWritten = new Map<string, UserRecord>();
    for (const u of m.users.values()) {
      const known = knownUsers.get(u.username);
      if (known && sameFields(u, known)) continue;
      const copy = { ...u };
      puts.push([`user/${u.username}`, copy]);
      usersWritten.set(u.username, copy);
    }
    const usersRemoved: string[] = [];
    for (const name of knownUsers.keys()) if (!m.users.has(name)) usersRemoved.push(name);
    for (const name of usersRemoved) removes.push(`user/${name}`);
    const retry = this.#retry;
    const handles = scope.keys === 'all' ? new Set([...knownKeys, ...[...m.keys.values()].map((k) => k.handle)]) : new Set(scope.keys);
    for (const h of retry.keys) handles.add(h);
    retry.keys.clear();
    const masking = scope.masking || retry.masking;
    retry.masking = false;
    const keyPuts = new Set<number>();
    // The IVs of the records this commit seals, drawn up to KEYS_A_TURN at once (a draw per record
    // took a tenth of a restore's time) and only when needed: a restore's commit finds most of its
    // records sealed ahead, and drawing 100,000 IVs for them took 4-7 ms of its turn. Random, so as
    // unlikely to repeat as separate draws.
    const chunk = Math.min(handles.size + 1, KEYS_A_TURN);
    let ivs = Buffer.alloc(0);
    let drawn = 0;
    const iv = () => {
      if (drawn === ivs.length) [ivs, drawn] = [randomBytes(12 * chunk), 0];
      return ivs.subarray(drawn, (drawn += 12));
    };
    for (const h of handles) {
      const record = m.keys.get(h);
      const name = `key/${h}`;
      if (record && record.session === null) {
        puts.push([name, this.#takeSealedAhead(record) ?? sealKey(key, record, iv())]);
        keyPuts.add(h);
      } else if (knownKeys.has(h)) {
        removes.push(name);
      }
    }
    if (masking) {
      const secret = m.masking.exportSecret();
      puts.push(['masking', seal(key, 'masking', secret, iv())]);
      secret.fill(0);
    }
    for (const r of records) puts.push([auditKey(r.sequence), r]);
    // Tombstones: those set or deleted since the last commit (the others are on disk as they are).
    const known = this.#tombstones;
    const tombstone = (name: string, gen: number | undefined) => {
      if (gen === undefined) {
        if (known.delete(name)) removes.push(name);
      } else if (known.get(name) !== gen) {
        puts.push([name, gen]);
        known.set(name, gen);
      }
    };
    const keyTombstones = new Set([...m.keyTombstones.takeChanges(), ...retry.keyTombstones]);
    const userTombstones = new Set([...m.userTombstones.takeChanges(), ...retry.userTombstones]);
    retry.keyTombstones.clear();
    retry.userTombstones.clear();
    for (const handle of keyTombstones) tombstone(`deleted/key/${handle}`, m.keyTombstones.get(handle));
    for (const name of userTombstones) tombstone(`deleted/user/${name}`, m.userTombstones.get(name));
    // Transactions commit in the order they are queued, so what is known can move on now.
    for (const h of handles) {
      if (keyPuts.has(h)) knownKeys.add(h);
      else knownKeys.delete(h);
    }
    this.#auditWritten = Math.max(this.#auditWritten, written + records.length);
    // A child transaction, so that a write that throws takes back every write of this commit (in a
    // plain one, lmdb keeps those made before the throw). Its audit records follow the last one
    // on disk, or it writes nothing: when a commit before it failed (its records are not there),
    // this one fails too, and the next writes both again.
    try {
      await db.childTransaction(() => {
        if (written > 0 && db.get(auditKey(written - 1)) === undefined) {
          throw new HsmError('INTERNAL_ERROR', 'a write to the data folder queued before this one failed');
        }
        if (injectedFailures > 0) {
          injectedFailures -= 1;
          throw new HsmError('INTERNAL_ERROR', 'the data folder refused a write (injected by a test)');
        }
        for (const [k, v] of puts) void db.put(k, v);
        for (const k of removes) void db.remove(k);
      });
      await db.flushed;
    } catch (e) {
      // Nothing of this commit is on disk: the next commit writes all of it again. Every key named
      // here counts as maybe on disk, so that the next commit removes it if memory no longer has it.
      for (const h of handles) {
        knownKeys.add(h);
        retry.keys.add(h);
      }
      for (const h of keyTombstones) {
        known.set(`deleted/key/${h}`, NaN);
        retry.keyTombstones.add(h);
      }
      for (const name of userTombstones) {
        known.set(`deleted/user/${name}`, NaN);
        retry.userTombstones.add(name);
      }
      if (masking) retry.masking = true;
      this.#auditWritten = Math.min(this.#auditWritten, written);
      throw e;
    }
    // On disk now. Users are known as written only from here, so that a commit that failed is
    // written again by the next one (as when every user was written each time).
    for (const name of usersRemoved) knownUsers.delete(name);
    for (const [name, copy] of usersWritten) knownUsers.set(name, copy);
    // The log need not hold these records in memory (it reads them from here, see load).
    m.audit.archived(written + records.length);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#db.close();
    this.#key.fill(0);
    this.#lock.release();
  }
}
