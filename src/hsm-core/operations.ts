/**
 * One table of facts per member operation: who may call it, which request fields name key
 * handles, how a cluster brings its change to the other members, what a member keeps of it,
 * whether a relay forwards it from a page, and what the audit log records. The member (access
 * checks, audit, persistence), the cluster client (routing, replication), the relay and the
 * permission tests all read it; a new operation does not compile until it has its row.
 *
 * It holds data and small pure functions only (no member, no `node:` import): the cluster
 * client and the relay read it as well as the member.
 *
 * @module
 */
import { PRECO_USERNAME } from './names.js';
import type { Op, RequestOf, Results, UserRole } from './protocol.js';

/** The request fields that can name a key handle (`mechanism.publicHandle`: ECDH's peer key). */
export type HandleField = 'handle' | 'wrappingHandle' | 'payloadHandle' | 'unwrappingHandle' | 'baseHandle' | 'mechanism.publicHandle';

/**
 * How a cluster runs the operation and brings what it changed to the other members.
 *
 * - `one-member`: one member answers; nothing to bring elsewhere (reads, cryptography, and the
 *   replication operations themselves).
 * - `creates-key`: a new key; a token key is copied to every member as a masked object.
 * - `changes-key`: a token key's new version (or its deletion) is copied to every member.
 * - `changes-user`: the user (or its deletion) named in the result is copied to every member.
 * - `changes-setting`: the cluster settings are copied to every member.
 * - `every-member`: sent to every member that is up and the answers combined (quorum tokens).
 * - `search`: one member searches; the session's session keys on other members are added.
 * - `session`: the session's own life (login, logout), which the cluster session handles.
 */
export type ClusterRule = 'one-member' | 'creates-key' | 'changes-key' | 'changes-user' | 'changes-setting' | 'every-member' | 'search' | 'session';

/** What the audit log records for an operation (CloudHSM's opcodes; SR_ for Strongroom's own). */
export interface AuditSpec<O extends Op> {
  opcode: string | ((req: RequestOf<O>) => string);
  /** The key handles the record names. */
  keys?: (req: RequestOf<O>, result: Results[O] | undefined) => (number | undefined)[];
  /** The user the operation is about. */
  target?: (req: RequestOf<O>) => string;
}

interface Common {
  /** Who may call it; `anyone` includes callers who are not logged in. */
  who: 'anyone' | readonly UserRole[];
  /** The request fields that name key handles (routing to a session key's member, availability checks). */
  handles: readonly HandleField[];
  cluster: ClusterRule;
  /** Whether a relay forwards it from a page. */
  relay: boolean;
}

/**
 * What a member keeps of an operation. `change`: audited, written to the data folder before it
 * is acknowledged, and the member's `lastChange`. `audit`: audited and written (the record, a
 * failed login's count) but changes nothing a cluster compares (sessions, tokens, exports). Not
 * audited (`durable: false`): reads and cryptography, which change nothing.
 */
export type OperationFacts<O extends Op> = Common & ({ durable: false } | { durable: 'change' | 'audit'; audit: AuditSpec<O> });

const ANY_SESSION: readonly UserRole[] = ['unactivated-admin', 'admin', 'crypto-user', 'appliance'];
const CU: readonly UserRole[] = ['crypto-user'];
const MANAGERS: readonly UserRole[] = ['admin', 'appliance'];
const WRAP_FLAVOURS = new Set(['aes-no-pad', 'aes-pkcs5-pad', 'aes-zero-pad']);

/**
 * Every operation's facts. The role matrix (CLOUDHSM.md §1.2), as the `who` column says:
 *
 * | Operation                                                | none | PRECO | admin | CU | AU |
 * |----------------------------------------------------------|------|-------|-------|----|----|
 * | getHsmInfo, listUsers, login, getMfaToken, activate,    |  Y   |   Y   |   Y   | Y  | Y  |
 * |   listQuorumTokens, getQuorumSettings, getMtlsSettings   |      |       |       |    |    |
 * | generate/delete quorum tokens, registerQuorumKey,        |  -   |   -   |   Y   | Y  | -  |
 * |   changeMfa (CU: itself only)                            |      |       |       |    |    |
 * | setQuorumValue, setQuorumTimeouts, register/deregister  |  -   |   -   |   Y   | -  | -  |
 * |   TrustAnchor, setMtlsEnforcement (the admin `admin`)    |      |       |       |    |    |
 * | logout, closeSession, changePassword (own; admin:       |  -   |   Y   |   Y   | Y  | Y  |
 * |   anyone's), generateRandom                              |      |       |       |    |    |
 * | createUser, deleteUser                                   |  -   |   -   |   Y   | -  | -  |
 * | getAuditLog                                              |  -   |   -   |   Y   | -  | Y  |
 * | findKeys, getAttributes                                  |  -   |   -   |   Y   | Y  | -  |
 * | setAttributes (admin: `trusted` only; CU: owner only)    |  -   |   -   |   Y   | Y  | -  |
 * | extract/insert masked objects, getSyncStatus             |  -   |   -   |   Y   | Y  | Y  |
 * | extract/insert masked users (CU: itself only)            |  -   |   -   |   Y   | Y  | Y  |
 * | extract/insert masked settings                           |  -   |   -   |   Y   | -  | Y  |
 * | setClusterAddresses                                      |  -   |   -   |   Y   | -  | Y  |
 * | createBackup                                             |  -   |   -   |   Y   | -  | Y  |
 * | restoreBackup (in a cluster: admin with approval, AU)    |  Y   |   Y   |   Y   | Y  | Y  |
 * | generate, import, copy, export, unwrap, wrap, derive,    |  -   |   -   |   -   | Y  | -  |
 * |   delete, share, unshare (owner rules: access.ts)        |      |       |       |    |    |
 * | encrypt, decrypt, sign, verify, digest, deriveBits       |  -   |   -   |   -   | Y  | -  |
 */
export const OPERATIONS: { readonly [O in Op]: OperationFacts<O> } = {
  // ---- the member, sessions and users
  getHsmInfo: { who: 'anyone', handles: [], cluster: 'one-member', relay: false, durable: false },
  activateCluster: { who: 'anyone', handles: [], cluster: 'one-member', relay: false, durable: 'change', audit: { opcode: 'CN_CHANGE_PSWD', target: () => PRECO_USERNAME } },
  login: { who: 'anyone', handles: [], cluster: 'session', relay: false, durable: 'audit', audit: { opcode: 'CN_LOGIN' } },
  getMfaToken: { who: 'anyone', handles: [], cluster: 'session', relay: false, durable: 'audit', audit: { opcode: 'SR_MFA_TOKEN' } },
  logout: { who: ANY_SESSION, handles: [], cluster: 'session', relay: false, durable: 'audit', audit: { opcode: 'CN_LOGOUT' } },
  // A connection that ended without a logout (CloudHSM logs CN_CLOSE_SESSION then).
  closeSession: { who: ANY_SESSION, handles: [], cluster: 'session', relay: false, durable: 'audit', audit: { opcode: 'CN_CLOSE_SESSION' } },
  listUsers: { who: 'anyone', handles: [], cluster: 'one-member', relay: false, durable: false },
  createUser: {
    who: ['admin'],
    handles: [],
    cluster: 'changes-user',
    relay: false,
    durable: 'change',
    audit: { opcode: (r) => (r.role === 'admin' ? 'CN_CREATE_CO' : 'CN_CREATE_USER'), target: (r) => r.username },
  },
  deleteUser: { who: ['admin'], handles: [], cluster: 'changes-user', relay: false, durable: 'change', audit: { opcode: 'CN_DELETE_USER', target: (r) => r.username } },
  changePassword: { who: ANY_SESSION, handles: [], cluster: 'changes-user', relay: false, durable: 'change', audit: { opcode: 'CN_CHANGE_PSWD', target: (r) => r.username } },
  changeMfa: { who: ['admin', 'crypto-user'], handles: [], cluster: 'changes-user', relay: false, durable: 'change', audit: { opcode: 'SR_CHANGE_MFA', target: (r) => r.username } },
  // The appliance user reads it too: CloudHSM's side of the cluster sends the logs to CloudWatch Logs.
  getAuditLog: { who: ['admin', 'appliance'], handles: [], cluster: 'one-member', relay: true, durable: false },

  // ---- quorum
  registerQuorumKey: { who: ['admin', 'crypto-user'], handles: [], cluster: 'changes-user', relay: false, durable: 'change', audit: { opcode: 'SR_REGISTER_QUORUM_KEY' } },
  generateQuorumToken: { who: ['admin', 'crypto-user'], handles: ['handle'], cluster: 'every-member', relay: false, durable: 'audit', audit: { opcode: 'CN_GET_TOKEN', keys: (r) => [r.handle] } },
  listQuorumTokens: { who: 'anyone', handles: [], cluster: 'one-member', relay: false, durable: false },
  deleteQuorumTokens: { who: ['admin', 'crypto-user'], handles: [], cluster: 'every-member', relay: false, durable: 'audit', audit: { opcode: 'CN_DELETE_TOKEN' } },
  getQuorumSettings: { who: 'anyone', handles: [], cluster: 'one-member', relay: false, durable: false },
  setQuorumValue: { who: ['admin'], handles: [], cluster: 'changes-setting', relay: false, durable: 'change', audit: { opcode: 'CN_SET_M_VALUE' } },
  setQuorumTimeouts: { who: ['admin'], handles: [], cluster: 'changes-setting', relay: false, durable: 'change', audit: { opcode: 'SR_SET_QUORUM_TIMEOUTS' } },

  // ---- mutual TLS (hsm2m)
  registerTrustAnchor: { who: ['admin'], handles: [], cluster: 'changes-setting', relay: false, durable: 'change', audit: { opcode: 'CN_REGISTER_TRUST_ANCHOR' } },
  deregisterTrustAnchor: { who: ['admin'], handles: [], cluster: 'changes-setting', relay: false, durable: 'change', audit: { opcode: 'CN_DEREGISTER_TRUST_ANCHOR' } },
  getMtlsSettings: { who: 'anyone', handles: [], cluster: 'one-member', relay: false, durable: false },
  setMtlsEnforcement: { who: ['admin'], handles: [], cluster: 'changes-setting', relay: false, durable: 'change', audit: { opcode: 'CN_SET_MTLS_ENFORCEMENT' } },

  // ---- keys
  generateKey: { who: CU, handles: [], cluster: 'creates-key', relay: true, durable: 'change', audit: { opcode: 'CN_GENERATE_KEY', keys: (_r, res) => [res?.handle] } },
  generateKeyPair: {
    who: CU,
    handles: [],
    cluster: 'creates-key',
    relay: true,
    durable: 'change',
    audit: { opcode: 'CN_GENERATE_KEY_PAIR', keys: (_r, res) => [res?.privateHandle, res?.publicHandle] },
  },
  importKey: { who: CU, handles: [], cluster: 'creates-key', relay: true, durable: 'change', audit: { opcode: 'CN_CREATE_OBJECT', keys: (_r, res) => [res?.handle] } },
  copyKey: { who: CU, handles: ['handle'], cluster: 'creates-key', relay: false, durable: 'change', audit: { opcode: 'CN_COPY_OBJECT', keys: (r, res) => [res?.handle, r.handle] } },
  exportKey: { who: CU, handles: ['handle'], cluster: 'one-member', relay: true, durable: 'audit', audit: { opcode: 'SR_EXPORT_KEY', keys: (r) => [r.handle] } },
  exportEncryptedKey: { who: CU, handles: ['handle'], cluster: 'one-member', relay: false, durable: 'audit', audit: { opcode: 'SR_EXPORT_ENCRYPTED_KEY', keys: (r) => [r.handle] } },
  importEncryptedKey: { who: CU, handles: [], cluster: 'creates-key', relay: false, durable: 'change', audit: { opcode: 'CN_CREATE_OBJECT', keys: (_r, res) => [res?.handle] } },
  getAttributes: { who: ['admin', 'crypto-user'], handles: ['handle'], cluster: 'one-member', relay: true, durable: false },
  setAttributes: { who: ['admin', 'crypto-user'], handles: ['handle'], cluster: 'changes-key', relay: true, durable: 'change', audit: { opcode: 'CN_MODIFY_OBJECT', keys: (r) => [r.handle] } },
  findKeys: { who: ['admin', 'crypto-user'], handles: [], cluster: 'search', relay: true, durable: false },
  deleteKey: { who: CU, handles: ['handle'], cluster: 'changes-key', relay: true, durable: 'change', audit: { opcode: 'CN_DESTROY_OBJECT', keys: (r) => [r.handle] } },
  shareKey: { who: CU, handles: ['handle'], cluster: 'changes-key', relay: true, durable: 'change', audit: { opcode: 'CN_SHARE_OBJECT', keys: (r) => [r.handle], target: (r) => r.username } },
  unshareKey: { who: CU, handles: ['handle'], cluster: 'changes-key', relay: true, durable: 'change', audit: { opcode: 'CN_SHARE_OBJECT', keys: (r) => [r.handle], target: (r) => r.username } },
  wrapKey: {
    who: CU,
    handles: ['wrappingHandle', 'payloadHandle'],
    cluster: 'one-member',
    relay: true,
    durable: 'audit',
    audit: { opcode: (r) => (WRAP_FLAVOURS.has(r.mechanism.name) ? 'CN_NIST_AES_WRAP' : 'CN_WRAP_KEY'), keys: (r) => [r.payloadHandle, r.wrappingHandle] },
  },
  unwrapKey: { who: CU, handles: ['unwrappingHandle'], cluster: 'creates-key', relay: true, durable: 'change', audit: { opcode: 'CN_UNWRAP_KEY', keys: (r, res) => [res?.handle, r.unwrappingHandle] } },
  deriveKey: { who: CU, handles: ['baseHandle', 'mechanism.publicHandle'], cluster: 'creates-key', relay: true, durable: 'change', audit: { opcode: 'CN_DERIVE_KEY', keys: (r, res) => [res?.handle, r.baseHandle] } },

  // ---- cryptography
  encrypt: { who: CU, handles: ['handle'], cluster: 'one-member', relay: true, durable: false },
  decrypt: { who: CU, handles: ['handle'], cluster: 'one-member', relay: true, durable: false },
  sign: { who: CU, handles: ['handle'], cluster: 'one-member', relay: true, durable: false },
  verify: { who: CU, handles: ['handle'], cluster: 'one-member', relay: true, durable: false },
  digest: { who: CU, handles: [], cluster: 'one-member', relay: true, durable: false },
  generateRandom: { who: ANY_SESSION, handles: [], cluster: 'one-member', relay: true, durable: false },
  deriveBits: { who: CU, handles: ['baseHandle', 'mechanism.publicHandle'], cluster: 'one-member', relay: true, durable: false },

  // ---- between members: synchronisation, backups
  extractMaskedObject: { who: ['admin', 'crypto-user', 'appliance'], handles: ['handle'], cluster: 'one-member', relay: false, durable: 'audit', audit: { opcode: 'CN_EXTRACT_MASKED_OBJECT_USER', keys: (r) => [r.handle] } },
  insertMaskedObject: { who: ['admin', 'crypto-user', 'appliance'], handles: [], cluster: 'one-member', relay: false, durable: 'change', audit: { opcode: 'CN_INSERT_MASKED_OBJECT_USER', keys: (_r, res) => [res?.handle] } },
  getSyncStatus: { who: ['admin', 'crypto-user', 'appliance'], handles: [], cluster: 'one-member', relay: false, durable: false },
  extractMaskedUser: { who: ['admin', 'crypto-user', 'appliance'], handles: [], cluster: 'one-member', relay: false, durable: 'audit', audit: { opcode: 'SR_EXTRACT_MASKED_USER', target: (r) => r.username } },
  insertMaskedUser: { who: ['admin', 'crypto-user', 'appliance'], handles: [], cluster: 'one-member', relay: false, durable: 'change', audit: { opcode: 'SR_INSERT_MASKED_USER' } },
  extractMaskedSettings: { who: MANAGERS, handles: [], cluster: 'one-member', relay: false, durable: false },
  insertMaskedSettings: { who: MANAGERS, handles: [], cluster: 'one-member', relay: false, durable: 'change', audit: { opcode: 'SR_INSERT_MASKED_SETTINGS' } },
  setClusterAddresses: { who: MANAGERS, handles: [], cluster: 'one-member', relay: false, durable: 'change', audit: { opcode: 'SR_SET_CLUSTER_ADDRESSES' } },
  createBackup: { who: MANAGERS, handles: [], cluster: 'one-member', relay: false, durable: 'audit', audit: { opcode: 'SR_CREATE_BACKUP' } },
  restoreBackup: { who: 'anyone', handles: [], cluster: 'one-member', relay: false, durable: 'change', audit: { opcode: 'SR_RESTORE_BACKUP' } },
};

/** Every key handle a request names, by its operation's `handles`. */
export function handlesOf(req: { op: string } & Record<string, unknown>): number[] {
  const facts = (OPERATIONS as Record<string, OperationFacts<Op> | undefined>)[req.op];
  const out: number[] = [];
  for (const field of facts?.handles ?? []) {
    const v = field === 'mechanism.publicHandle' ? (req.mechanism as { publicHandle?: unknown } | undefined)?.publicHandle : req[field];
    if (typeof v === 'number') out.push(v);
  }
  return out;
}
