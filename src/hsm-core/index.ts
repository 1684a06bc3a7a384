/**
 * hsm-core: one simulated HSM member. The public surface is deliberately small: create a member,
 * talk to it through `handle(request)`, and the protocol's types. Nothing exported here gives
 * access to key material.
 *
 * @module
 */
export { createMember, type Member, type MemberOptions } from './member.js';
export { useThreadPool } from './mechanisms/pool.js';
export { digest } from './mechanisms/hash.js';
export { readBackupHeader, type BackupHeader } from './ops/backup-ops.js';
export { MEMBER_MODES, type MemberMode } from './state.js';
export { FrameReader, RequestFlow, encodeFrame, tickBatched, BATCH_LIMIT, MAX_FRAME_BYTES, type Frame } from './wire.js';
export { perTurn } from './face.js';
export { serveMember, ensureClusterCsr, cloneClusterIdentity, MEMBER_FILES, type ServeOptions, type Served } from './hosts/tls.js';
export { HsmError, HSM_ERROR_CODES, checkPositiveIntegers, keyRef, withArticle, type HsmErrorCode, type WireError } from './errors.js';
export { verifyAuditChain, GENESIS_HASH, type AuditVerdict } from './audit.js';
export { lockFolder, LOCK_FILE, type FolderLock } from './folder-lock.js';
export { appendFileDurably, copyFileDurably, syncFolder, truncateFileDurably, writeFileDurably, writeFileDurablyAsync } from './durable.js';
export { HSM_TYPE_PROFILES, PROFILE_NAMES, type HsmType, type ProfileName } from './profiles.js';
export { OPERATIONS, handlesOf, type OperationFacts, type ClusterRule, type HandleField } from './operations.js';
export {
  EC_CURVES,
  KEY_CLASSES,
  KEY_TYPES,
  USAGES,
  usageAllowed,
  COMPUTED_ATTRIBUTES,
  type AttributeFilter,
  type Curve,
  type EcCurve,
  type KeyAttributes,
  type KeyClass,
  type KeyType,
  type Template,
  type Usage,
} from './attributes.js';
export {
  HASHES,
  KEY_FORMATS,
  OPS,
  PRECO_INITIAL_PASSWORD,
  PRECO_USERNAME,
  APPLIANCE_USERNAME,
  QUORUM_SERVICES,
  ADMIN_SERVICES,
  USER_ROLES,
  type AuditRecord,
  type CipherMechanism,
  type DeriveMechanism,
  type HashName,
  type HsmInfo,
  type Jwk,
  type KeyFormat,
  type KeyInfo,
  type Op,
  type QuorumService,
  type AdminService,
  type Request,
  type RequestOf,
  type Response,
  type ResultOf,
  type Results,
  type SignMechanism,
  type UserInfo,
  type UserRole,
  type WrapMechanism,
} from './protocol.js';
export { APPROVAL_REQUIRED, type QuorumSettings } from './quorum.js';
export type { QuorumTokenInfo } from './protocol.js';
export { LOCKOUT_THRESHOLD } from './users.js';
