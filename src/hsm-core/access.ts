/**
 * Who may do what: the role check of the operations table (operations.ts, whose `who` column is
 * the role matrix of CLOUDHSM.md §1.2), the named guards operations add to it (managers, a user
 * acting on itself), and the key guards that every key operation goes through. Key rules for
 * crypto users: the owner alone may delete, wrap, export, share, unshare and change attributes;
 * users a key is shared with may only use it; public keys are visible to and usable by every
 * crypto user; a session key is visible only in the session that made it. A refusal names the
 * rule that refused.
 *
 * @module
 */
import type { Usage } from './attributes.js';
import { HsmError, keyRef, withArticle } from './errors.js';
import type { KeyRecord, KeyStore } from './key-store.js';
import type { Op, UserRole } from './protocol.js';
import { OPERATIONS } from './operations.js';
import type { SessionRecord } from './sessions.js';

/** The logged-in session behind a request, or null for an unauthenticated one. */
export type Caller = SessionRecord | null;

const ROLE_NAMES: Readonly<Record<UserRole, string>> = {
  'unactivated-admin': 'the unactivated admin',
  admin: 'an admin',
  'crypto-user': 'a crypto user',
  appliance: 'the appliance user',
};

export function checkRole(op: Op, caller: Caller): void {
  const allowed = OPERATIONS[op].who;
  if (allowed === 'anyone') return;
  if (!caller) throw new HsmError('NOT_LOGGED_IN', `${op}: log in first (session is missing)`);
  if (!allowed.includes(caller.role)) {
    const hint = caller.role === 'unactivated-admin' ? ' (activate the cluster first)' : '';
    throw new HsmError('PERMISSION_DENIED', `${op} is not allowed for ${ROLE_NAMES[caller.role]}${hint}; it needs ${allowed.map((r) => ROLE_NAMES[r]).join(' or ')}`);
  }
}

// ---- guards the operations name (beyond the role matrix) --------------------------------------

/** Whether the caller manages the member's users and cluster state: an admin or the appliance user. */
export const isManager = (caller: SessionRecord): boolean => caller.role === 'admin' || caller.role === 'appliance';

/** `what` on a member that is in a cluster needs an admin or the appliance user. */
export function requireManager(caller: Caller, what: string): void {
  if (!caller) throw new HsmError('NOT_LOGGED_IN', `${what}: this member is in a cluster; log in first as an admin or the appliance user`);
  if (!isManager(caller)) {
    throw new HsmError('PERMISSION_DENIED', `${what} is not allowed for ${withArticle(caller.role)} on a member that is in a cluster; it needs an admin or the appliance user`);
  }
}

/** Something a user may do to itself, and an admin to anyone (a password, MFA, quorum tokens); `refusal` says what. */
export function requireSelfOrAdmin(caller: SessionRecord, username: string, refusal: string): void {
  if (username !== caller.username && caller.role !== 'admin') throw new HsmError('PERMISSION_DENIED', refusal);
}

/** Something a user may do to itself, and an admin or the appliance user to anyone (its masked user). */
export function requireSelfOrManager(caller: SessionRecord, username: string, refusal: string): void {
  if (username !== caller.username && !isManager(caller)) throw new HsmError('PERMISSION_DENIED', refusal);
}

/** Whether the caller can see the key at all (otherwise it does not exist for them). */
export function canSee(caller: SessionRecord, key: KeyRecord): boolean {
  if (key.session !== null && key.session !== caller.token) return false;
  if (caller.role === 'crypto-user') {
    return key.owner === caller.username || key.shared.has(caller.username) || key.cls === 'public-key';
  }
  return caller.role === 'admin' || caller.role === 'appliance';
}

/** A key the caller can see; an invisible key is reported as not found, never as forbidden. */
export function visibleKey(keys: KeyStore, caller: SessionRecord, handle: number): KeyRecord {
  const key = keys.get(handle);
  if (!key || !canSee(caller, key)) {
    throw new HsmError('KEY_NOT_FOUND', `no key ${keyRef(handle)} that ${caller.username} can see`);
  }
  return key;
}

/** A key the caller may manage: they must own it. */
export function ownedKey(keys: KeyStore, caller: SessionRecord, handle: number, action: string): KeyRecord {
  const key = visibleKey(keys, caller, handle);
  if (key.owner !== caller.username) {
    throw new HsmError('NOT_KEY_OWNER', `only the owner of key ${keyRef(handle)} (${key.owner}) can ${action} it`);
  }
  return key;
}

/** A key the caller may use for `usage`: visible (owned, shared or public) and with that attribute set. */
export function usableKey(keys: KeyStore, caller: SessionRecord, handle: number, usage: Usage): KeyRecord {
  const key = visibleKey(keys, caller, handle);
  if (!key.attrs[usage]) {
    throw new HsmError('ATTRIBUTE_FORBIDS_OPERATION', `key ${keyRef(handle)} has ${usage}=false, so it cannot ${usage}`);
  }
  return key;
}
