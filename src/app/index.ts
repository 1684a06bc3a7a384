/**
 * app: what applications call. `startLocalCluster` and `connect` give a cluster; its `login()`
 * gives an `HsmSession`, whose `.crypto` is the WebCrypto door (subtle/) over the cluster client
 * (cluster-client/).
 *
 * @module
 */
export { startLocalCluster, LocalCluster, type LocalClusterOptions } from './local-cluster.js';
export { clusterContainer, resolveServices, CLOCK, RANDOM, BACKUP_STORE, START_MEMBER, type ClusterServices } from './container.js';
export { connect, RemoteCluster, type ConnectOptions } from './remote-cluster.js';
export { ClusterFront } from './front.js';
export { HsmSession } from './session.js';
export { connectFromEnvironment, connectOrExplain } from './from-env.js';
export type { LocalUser, LocalTransport, LocalTlsInfo } from '../cluster-client/supervisor.js';
