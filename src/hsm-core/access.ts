/**
 * Who may do what: the role matrix of CLOUDHSM.md §1.2, and the key guards that every key
 * operation goes through. A refusal names the rule that refused.
 *
 * @module
 */
import type { Usage } from './attributes.js';
import { HsmError, keyRef } from './errors.js';
import type { KeyRecord, KeyStore } from './key-store.js';
import type { Op, UserRole } from './protocol.js';
import type { SessionRecord } from './sessions.js';

/** The logged-in session behind a request, or null for an unauthenticated one. */
export type Caller = SessionRecord | null;

/**
 * The role matrix. "anyone" includes callers who are not logged in.
 *
 * | Operation                                                | none | PRECO | admin | CU | AU |
 * |----------------------------------------------------------|------|-------|-------|----|----|
 * | getHsmInfo, listUsers, login, getMfaToken, activate,    |  Y   |   Y   |   Y   | Y  | Y  |
 * |   listQuorumTokens, getQuorumSettings                    |      |       |       |    |    |
 * | generate/delete quorum tokens, registerQuorumKey,        |  -   |   -   |   Y   | Y  | -  |
 * |   changeMfa (CU: itself only)                            |      |       |       |    |    |
 * | setQuorumValue, setQuorumTimeouts                        |  -   |   -   |   Y   | -  | -  |
 * | logout, closeSession, changePassword (own; admin:       |  -   |   Y   |   Y   | Y  | Y  |
 * |   anyone's), generateRandom                              |      |       |       |    |    |
 * | createUser, deleteUser                                   |  -   |   -   |   Y   | -  | -  |
 * | getAuditLog                                              |  -   |   -   |   Y   | -  | -  |
 * | findKeys, getAttributes                                  |  -   |   -   |   Y   | Y  | -  |
 * | setAttributes (admin: `trusted` only; CU: owner only)    |  -   |   -   |   Y   | Y  | -  |
 * | extract/insert masked objects, getSyncStatus             |  -   |   -   |   Y   | Y  | Y  |
 * | extract/insert masked users (CU: itself only)            |  -   |   -   |   Y   | Y  | Y  |
 * | extract/insert masked settings                           |  -   |   -   |   Y   | -  | Y  |
 * | setClusterAddresses                                      |  -   |   -   |   Y   | -  | Y  |
 * | createBackup                                             |  -   |   -   |   Y   | -  | Y  |
 * | restoreBackup (in a cluster: admin with approval, AU)    |  Y   |   Y   |   Y   | Y  | Y  |
 * | generate, import, export, unwrap, wrap, derive, delete,  |  -   |   -   |   -   | Y  | -  |
 * |   share, unshare (owner rules below)                     |      |       |       |    |    |
 * | encrypt, decrypt, sign, verify, digest, deriveBits       |  -   |   -   |   -   | Y  | -  |
 *
 * Key rules for crypto users: the owner alone may delete, wrap, export, share, unshare and change
 * attributes; users a key is shared with may only use it; public keys are visible to and usable
 * by every crypto user; a session key is visible only in the session that made it.
 */
export const WHO_MAY: Readonly<Record<Op, 'anyone' | readonly UserRole[]>> = {
  getHsmInfo: 'anyone',
  listUsers: 'anyone',
  login: 'anyone',
  getMfaToken: 'anyone',
  activateCluster: 'anyone',
  listQuorumTokens: 'anyone',
  getQuorumSettings: 'anyone',
  generateQuorumToken: ['admin', 'crypto-user'],
  deleteQuorumTokens: ['admin', 'crypto-user'],
  setQuorumValue: ['admin'],
  setQuorumTimeouts: ['admin'],
  registerQuorumKey: ['admin', 'crypto-user'],
  changeMfa: ['admin', 'crypto-user'],
  logout: ['unactivated-admin', 'admin', 'crypto-user', 'appliance'],
  closeSession: ['unactivated-admin', 'admin', 'crypto-user', 'appliance'],
  changePassword: ['unactivated-admin', 'admin', 'crypto-user', 'appliance'],
  generateRandom: ['unactivated-admin', 'admin', 'crypto-user', 'appliance'],
  createUser: ['admin'],
  deleteUser: ['admin'],
  getAuditLog: ['admin'],
  findKeys: ['admin', 'crypto-user'],
  getAttributes: ['admin', 'crypto-user'],
  setAttributes: ['admin', 'crypto-user'],
  extractMaskedObject: ['admin', 'crypto-user', 'appliance'],
  insertMaskedObject: ['admin', 'crypto-user', 'appliance'],
  getSyncStatus: ['admin', 'crypto-user', 'appliance'],
  extractMaskedUser: ['admin', 'crypto-user', 'appliance'],
  insertMaskedUser: ['admin', 'crypto-user', 'appliance'],
  extractMaskedSettings: ['admin', 'appliance'],
  insertMaskedSettings: ['admin', 'appliance'],
  setClusterAddresses: ['admin', 'appliance'],
  createBackup: ['admin', 'appliance'],
  restoreBackup: 'anyone',
  generateKey: ['crypto-user'],
  generateKeyPair: ['crypto-user'],
  importKey: ['crypto-user'],
  exportKey: ['crypto-user'],
  exportEncryptedKey: ['crypto-user'],
  importEncryptedKey: ['crypto-user'],
  wrapKey: ['crypto-user'],
  unwrapKey: ['crypto-user'],
  deriveKey: ['crypto-user'],
  deleteKey: ['crypto-user'],
  shareKey: ['crypto-user'],
  unshareKey: ['crypto-user'],
  encrypt: ['crypto-user'],
  decrypt: ['crypto-user'],
  sign: ['crypto-user'],
  verify: ['crypto-user'],
  digest: ['crypto-user'],
  deriveBits: ['crypto-user'],
};

const ROLE_NAMES: Readonly<Record<UserRole, string>> = {
  'unactivated-admin': 'the unactivated admin',
  admin: 'an admin',
  'crypto-user': 'a crypto user',
  appliance: 'the appliance user',
};

export function checkRole(op: Op, caller: Caller): void {
  const allowed = WHO_MAY[op];
  if (allowed === 'anyone') return;
  if (!caller) throw new HsmError('NOT_LOGGED_IN', `${op}: log in first (session is missing)`);
  if (!allowed.includes(caller.role)) {
    const hint = caller.role === 'unactivated-admin' ? ' (activate the cluster first)' : '';
    throw new HsmError('PERMISSION_DENIED', `${op} is not allowed for ${ROLE_NAMES[caller.role]}${hint}; it needs ${allowed.map((r) => ROLE_NAMES[r]).join(' or ')}`);
  }
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
