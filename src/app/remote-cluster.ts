/**
 * `connect({ members, ca, cert, key })`: a cluster of network members reached over mutual TLS,
 * from one or more addresses; the client discovers the other members from the first that answers.
 *
 * @module
 */
import { connectCluster, type ConnectOptions } from '../cluster-client/connect.js';
import type { Cluster } from '../cluster-client/cluster.js';
import { ClusterFront } from './front.js';

export type { ConnectOptions };

/** A cluster of network members, reached over mutual TLS. */
export class RemoteCluster extends ClusterFront {
  /** @internal use {@link connect}. */
  constructor(cluster: Cluster) {
    super(cluster);
  }
}

/**
 * Connects to a cluster of network members.
 *
 * @example
 * ```ts
 * const cluster = await connect({ members: ['127.0.0.1:2223'], ca, cert, key });
 * const session = await cluster.login('app', 'app-password');
 * ```
 */
export async function connect(options: ConnectOptions): Promise<RemoteCluster> {
  return new RemoteCluster(await connectCluster(options));
}
