/**
 * The key store: handle → key record (owner, shares, attributes, material). This is the only
 * place in Strongroom that holds key material, as one parsed KeyObject per key.
 *
 * Handles are unique across a cluster without coordination: a member numbered `memberIndex`
 * (0–31) hands out `counter × 32 + memberIndex`, and a key copied to another member as a masked
 * object keeps its handle there.
 *
 * @module
 */
import type { KeyAttributes, KeyClass, KeyType } from './attributes.js';
import { HsmError } from './errors.js';
import type { KeyObject } from 'node:crypto';

export const MAX_MEMBERS = 32;

/**
 * Handles by a key's label (or its session): one handle as itself, more than one in a Set. Most
 * labels name one key, and a Set for each cost about 100 bytes a key.
 */
type HandleIndex<K> = Map<K, number | Set<number>>;

function indexAdd<K>(index: HandleIndex<K>, key: K, handle: number): void {
  const held = index.get(key);
  if (held === undefined) index.set(key, handle);
  else if (typeof held !== 'number') held.add(handle);
  else if (held !== handle) index.set(key, new Set([held, handle]));
}

function indexDelete<K>(index: HandleIndex<K>, key: K, handle: number): void {
  const held = index.get(key);
  if (held === handle || (typeof held === 'object' && held.delete(handle) && held.size === 0)) index.delete(key);
}

/** The handles `index` holds under `key` (a copy: the index may change while they are read). */
function indexed<K>(index: HandleIndex<K>, key: K): number[] {
  const held = index.get(key);
  return held === undefined ? [] : typeof held === 'number' ? [held] : [...held];
}

export interface KeyRecord {
  readonly handle: number;
  readonly cls: KeyClass;
  readonly type: KeyType;
  /** The crypto user who created, imported, unwrapped or derived the key; never changes. */
  readonly owner: string;
  /**
   * Crypto users who may use (not manage) the key. Never changed in place: a change puts another
   * set here ({@link sharesOf}), so that every key shared with nobody holds the same empty one.
   */
  shared: ReadonlySet<string>;
  /** The generation of this version of the key: it grows with every change (see MemberState.stamp). */
  gen: number;
  /** The token of the session a session key belongs to; null for token keys. */
  session: string | null;
  /** Changed only through KeyStore.setAttributes, which keeps the label index. */
  readonly attrs: KeyAttributes;
  /** The key's material, parsed (its facts are among its attributes). */
  readonly material: KeyObject;
}

/** The shares of a key shared with nobody: one set for all of them (each of their own took about 100 bytes a key). */
export const NO_SHARES: ReadonlySet<string> = new Set();

/** `names` as a key's shares: {@link NO_SHARES} when there are none. */
export function sharesOf(names: Iterable<string>): ReadonlySet<string> {
  const set = new Set(names);
  return set.size === 0 ? NO_SHARES : set;
}

/** `shares` with `username` added or (`add` false) taken off: another set, or the same one when nothing changes. */
export function withShare(shares: ReadonlySet<string>, username: string, add: boolean): ReadonlySet<string> {
  if (shares.has(username) === add) return shares;
  return sharesOf(add ? [...shares, username] : [...shares].filter((u) => u !== username));
}

/**
 * What a cache of something made from a key (its sync digest, its sealed record for the data
 * folder) keeps to tell whether the key is still that version: its generation, its attributes
 * object and its shares (both replaced on a change, never changed in place; a user's deletion
 * takes them off every key without a new generation). A cache writes these fields
 * in an object literal of its own: kept digests made by spreading a version object
 * (`{ ...version, digest }`) made a sync summary of 100,000 keys, mostly their look-ups, about three
 * times slower (170 ms against 65).
 */
export interface KeyVersion {
  gen: number;
  attrs: KeyAttributes;
  shared: ReadonlySet<string>;
}

/** Whether `kept` is of `key` as it is now. */
export function isVersionOf<V extends KeyVersion>(kept: V | undefined, key: KeyRecord): kept is V {
  return kept !== undefined && kept.gen === key.gen && kept.attrs === key.attrs && kept.shared === key.shared;
}

export class KeyStore {
  readonly #keys = new Map<number, KeyRecord>();
  /**
   * Session keys by the session that made them, so that a logout does not look at every key. A
   * key made a token key (setAttributes) keeps its entry until its session ends; dropSession
   * checks each key's session before deleting it.
   */
  readonly #bySession: HandleIndex<string> = new Map();
  /** Keys by their label: findKeys with a label looks at those only. */
  readonly #byLabel: HandleIndex<string> = new Map();
  readonly #memberIndex: number;
  #counter = 0;
  #asymmetric = 0;

  constructor(memberIndex: number) {
    if (!Number.isInteger(memberIndex) || memberIndex < 0 || memberIndex >= MAX_MEMBERS) {
      throw new HsmError('BAD_REQUEST', `memberIndex: 0–${MAX_MEMBERS - 1}, got ${memberIndex}`);
    }
    this.#memberIndex = memberIndex;
  }

  /** The handle counter (persisted, so that no handle is handed out twice across restarts). */
  get counter(): number {
    return this.#counter;
  }

  set counter(value: number) {
    this.#counter = Math.max(this.#counter, value);
  }

  nextHandle(): number {
    this.#counter += 1;
    return this.#counter * MAX_MEMBERS + this.#memberIndex;
  }

  add(record: KeyRecord): void {
    if (this.#keys.has(record.handle)) throw new HsmError('HANDLE_IN_USE', `key handle ${record.handle} is already in use`);
    this.#keys.set(record.handle, record);
    if (record.cls !== 'secret-key') this.#asymmetric += 1;
    if (record.session !== null) indexAdd(this.#bySession, record.session, record.handle);
    indexAdd(this.#byLabel, record.attrs.label, record.handle);
    // A key arriving from another member keeps its handle; never hand that number out here.
    this.#counter = Math.max(this.#counter, Math.floor(record.handle / MAX_MEMBERS));
  }

  get(handle: number): KeyRecord | undefined {
    return this.#keys.get(handle);
  }

  delete(handle: number): void {
    const record = this.#keys.get(handle);
    if (!record) return;
    this.#keys.delete(handle);
    if (record.cls !== 'secret-key') this.#asymmetric -= 1;
    if (record.session !== null) indexDelete(this.#bySession, record.session, handle);
    indexDelete(this.#byLabel, record.attrs.label, handle);
  }

  /** Gives a key of this store new attributes. */
  setAttributes(record: KeyRecord, attrs: KeyAttributes): void {
    indexDelete(this.#byLabel, record.attrs.label, record.handle);
    (record as { attrs: KeyAttributes }).attrs = attrs;
    if (this.#keys.get(record.handle) === record) indexAdd(this.#byLabel, attrs.label, record.handle);
  }

  /** The keys labelled `label`, exactly. */
  withLabel(label: string): KeyRecord[] {
    const out: KeyRecord[] = [];
    for (const handle of indexed(this.#byLabel, label)) {
      const record = this.#keys.get(handle);
      if (record) out.push(record);
    }
    return out;
  }

  values(): IterableIterator<KeyRecord> {
    return this.#keys.values();
  }

  get size(): number {
    return this.#keys.size;
  }

  get asymmetricCount(): number {
    return this.#asymmetric;
  }

  /** How many keys (token or session) `username` owns. */
  ownedBy(username: string): number {
    let n = 0;
    for (const k of this.#keys.values()) if (k.owner === username) n += 1;
    return n;
  }

  /** Deletes every session key of the session `token`; returns their handles. */
  dropSession(token: string): number[] {
    const dropped: number[] = [];
    for (const handle of indexed(this.#bySession, token)) {
      if (this.#keys.get(handle)?.session === token) {
        this.delete(handle);
        dropped.push(handle);
      }
    }
    this.#bySession.delete(token);
    return dropped;
  }

  clear(): void {
    this.#keys.clear();
    this.#bySession.clear();
    this.#byLabel.clear();
    this.#asymmetric = 0;
  }
}
