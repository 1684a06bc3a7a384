/**
 * `CryptoKey` objects of the WebCrypto door. Each is a handle: its visible properties are the
 * four the spec defines (`type`, `algorithm`, `extractable`, `usages`), read-only, and the HSM
 * handle behind it sits in a private field, so nothing reachable from the object —
 * own or inherited properties, `structuredClone`, `util.inspect` — holds key material or even
 * the handle.
 *
 * Keys made at this door are HSM session keys. When a `CryptoKey` is garbage-collected, a
 * FinalizationRegistry deletes its HSM object; when the session logs out, the HSM drops them all.
 *
 * @module
 */
import { CryptoKey as CoreCryptoKey } from 'webcrypto-core';
import type { ClusterSession } from '../cluster-client/session.js';
import { refusal } from './errors.js';
import type { KeyUsage, CryptoKey, KeyAlgorithm } from './types.js';

export type KeyKind = 'secret' | 'private' | 'public';

interface Slot {
  readonly session: ClusterSession;
  readonly handle: number;
  /** Whether the door made this HSM object, so that collecting the CryptoKey deletes it. */
  readonly owned: boolean;
}

/** Deletes the HSM object of a collected key. Failures (session ended, key gone) are expected and ignored. */
const collector = new FinalizationRegistry<Slot>((slot) => {
  if (!slot.session.isOpen) return;
  slot.session.send({ op: 'deleteKey', handle: slot.handle }).catch(() => undefined);
});

export class HsmCryptoKey extends CoreCryptoKey {
  /**
   * The HSM object behind the key, in a private field: no property, `structuredClone` or
   * `util.inspect` reaches it. (It was in a module-private WeakMap, whose entry cost a key about
   * 30 bytes more and each call a hash lookup.)
   */
  readonly #slot: Slot;

  /** @internal Made by the door's providers. */
  constructor(slot: Slot, type: KeyKind, algorithm: KeyAlgorithm, extractable: boolean, usages: KeyUsage[]) {
    super();
    for (const [name, value] of [
      ['type', type],
      ['algorithm', algorithm],
      ['extractable', extractable],
      ['usages', usages],
    ] as const) {
      Object.defineProperty(this, name, { value, enumerable: true, writable: false, configurable: false });
    }
    this.#slot = slot;
    if (slot.owned) collector.register(this, slot, slot);
  }

  /** @internal The slot of a key of this door; undefined for anything else. */
  static slotOf(key: unknown): Slot | undefined {
    return typeof key === 'object' && key !== null && #slot in key ? (key as HsmCryptoKey).#slot : undefined;
  }
}

/** The HSM handle behind a key of this door, or an InvalidAccessError for any other key. */
export function handleOf(key: CryptoKey, session: ClusterSession): number {
  const slot = HsmCryptoKey.slotOf(key);
  if (!slot) throw refusal('InvalidAccessError', 'the key is not a Strongroom CryptoKey (import it into this session first)');
  if (slot.session !== session) {
    throw refusal('InvalidAccessError', `the key belongs to another session (of ${slot.session.username}); session keys live only in the session that made them`);
  }
  return slot.handle;
}

/**
 * The HSM handle behind `key` if it is a key of `session`'s door, else null; with `keep`, the
 * HSM object no longer goes when the CryptoKey is collected (it became a persistent key).
 */
export function adoptHandle(key: CryptoKey, session: ClusterSession, keep: boolean): number | null {
  const slot = HsmCryptoKey.slotOf(key);
  if (!slot || slot.session !== session) return null;
  if (keep && slot.owned) collector.unregister(slot);
  return slot.handle;
}

/** A door key for an HSM object: one this session just created (owned), or an existing key it opened. */
export function newKey(session: ClusterSession, handle: number, type: KeyKind, algorithm: KeyAlgorithm, extractable: boolean, usages: KeyUsage[], owned = true): HsmCryptoKey {
  return new HsmCryptoKey({ session, handle, owned }, type, algorithm, extractable, usages);
}

// Shown as `CryptoKey` by util.inspect and in stack traces, as Node's own keys are.
Object.defineProperty(HsmCryptoKey, 'name', { value: 'CryptoKey' });
