/**
 * A cluster connection from the environment, for programs that cannot take options (
 * `strongroom/register`, `strongroom keytool`): `STRONGROOM_CLUSTER` is the path of a
 * `cluster.json` (which `strongroom up` writes in its data folder: member addresses and the paths
 * of the trust anchor, client certificate and key), or `host:port[,host:port…]` with
 * `STRONGROOM_CA`, `STRONGROOM_CERT` and `STRONGROOM_KEY` naming the PEM files
 * (cluster-client/connect.ts reads them).
 *
 * @module
 */
import { explained, fromEnvironment, type ConnectOptions } from '../cluster-client/connect.js';
import { connect, type RemoteCluster } from './remote-cluster.js';

/**
 * `connect`, with a refusal that says what to do when no member answers: one line naming the
 * addresses tried and where they came from (a person reads this, not a program).
 */
export function connectOrExplain(options: ConnectOptions, source: string): Promise<RemoteCluster> {
  return explained(connect, options, source);
}

/** Connects as `STRONGROOM_CLUSTER` (and its companions) say. */
export async function connectFromEnvironment(env: Record<string, string | undefined> = process.env): Promise<RemoteCluster> {
  const { options, source } = fromEnvironment(env);
  return connectOrExplain(options, source);
}
