/**
 * cluster-client: how applications reach HSM members (CloudHSM's client SDK): the cluster handle
 * (load balancing, retries, replication, repair), transports, the supervisor of local members,
 * backups. The entry points applications call (`startLocalCluster`, `connect`, `HsmSession`)
 * are in app/, above the WebCrypto door.
 *
 * @module
 */
export { Cluster, type ClusterOptions } from './cluster.js';
export { resultOf, MemberLink, type MemberStatus, type MemberState, type MemberStarter } from './member-link.js';
export { ClusterSessionChannel, type LoginOptions, type MfaSigner, type SessionChannel } from './channel.js';
export { BUSY_RETRIES, type RetryMode } from './busy.js';
export type { SyncState } from './repair.js';
export { ClusterSession, type SessionRequest } from './session.js';
export { InProcessTransport, WorkerTransport, type Transport } from './transport.js';
export { SocketTransport, TrustAnchor, type TlsCredentials } from './tls.js';
export { parseAddress } from './address.js';
export { Supervisor, startMember, type LocalClusterOptions, type LocalUser, type LocalTransport, type LocalTlsInfo, type LiveMember, type MemberSpec, type TransportFactory } from './supervisor.js';
export { BackupStore, RETENTION_DEFAULT_DAYS, RETENTION_MIN_DAYS, RETENTION_MAX_DAYS, type BackupInfo, type StoredBackupInfo, type BackupState, type BackupTrigger, type BackupStoreOptions } from './backups.js';
export { INSTALLATION_FILES, installationKeys, type InstallationKeys } from './installation.js';
