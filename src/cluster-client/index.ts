/**
 * cluster-client: how applications reach HSM members (CloudHSM's client SDK).
 *
 * @module
 */
export { startLocalCluster, LocalCluster, type LocalClusterOptions, type LocalUser } from './local-cluster.js';
export { HsmSession, type SessionRequest } from './session.js';
export { InProcessTransport, type Transport } from './transport.js';
