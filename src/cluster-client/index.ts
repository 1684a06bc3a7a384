/**
 * cluster-client: how applications reach HSM members (CloudHSM's client SDK).
 *
 * @module
 */
export { startLocalCluster, LocalCluster, type LocalClusterOptions, type LocalUser, type LocalTransport } from './local-cluster.js';
export { Cluster, type ClusterOptions, type LoginOptions, type MfaSigner, type MemberStatus, type MemberState, type SyncState } from './cluster.js';
export { HsmSession, type SessionRequest } from './session.js';
export { InProcessTransport, WorkerTransport, type Transport } from './transport.js';
export { connect, RemoteCluster, SocketTransport, TrustAnchor, parseAddress, type ConnectOptions, type TlsCredentials } from './tls.js';
export { BackupStore, RETENTION_DEFAULT_DAYS, RETENTION_MIN_DAYS, RETENTION_MAX_DAYS, type BackupInfo, type BackupState, type BackupTrigger, type BackupStoreOptions } from './backups.js';
export { connectFromEnvironment, connectOrExplain } from './from-env.js';
export { INSTALLATION_FILES, type InstallationKeys } from './installation.js';
