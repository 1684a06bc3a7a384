/**
 * Strongroom: an emulated CloudHSM cluster for Node.
 *
 * @module
 */
export {
  startLocalCluster,
  connect,
  LocalCluster,
  RemoteCluster,
  HsmSession,
  clusterContainer,
  CLOCK,
  RANDOM,
  BACKUP_STORE,
  START_MEMBER,
  type ClusterServices,
  type ConnectOptions,
  type LocalClusterOptions,
  type LocalTransport,
  type LocalUser,
} from './app/index.js';
export {
  TrustAnchor,
  BackupStore,
  type BackupInfo,
  type StoredBackupInfo,
  type BackupState,
  type BackupTrigger,
  type ClusterOptions,
  type MemberStatus,
  type SessionRequest,
  type SyncState,
  type TlsCredentials,
} from './cluster-client/index.js';
export {
  HsmError,
  HSM_ERROR_CODES,
  verifyAuditChain,
  keyRef,
  type AuditRecord,
  type AuditVerdict,
  type HsmErrorCode,
  type HsmInfo,
  type KeyAttributes,
  type KeyInfo,
  type ProfileName,
  type Template,
  type UserInfo,
  type UserRole,
} from './hsm-core/index.js';
