/**
 * `connect({ members, ca, cert, key })`: a cluster of network members reached over mutual TLS,
 * from one or more addresses; the client discovers the other members from the first that answers.
 *
 * @module
 */
import { createSecureContext } from 'node:tls';
import { HsmError } from '../hsm-core/face.js';
import { Cluster, type ClusterOptions } from '../cluster-client/cluster.js';
import { SocketTransport, type TlsCredentials } from '../cluster-client/tls.js';
import { parseAddress } from '../cluster-client/address.js';
import { ClusterFront } from './front.js';

export interface ConnectOptions extends TlsCredentials, ClusterOptions {
  /** `host:port` of one or more members; the others are discovered. */
  members: string[];
}

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
  if (!options || !Array.isArray(options.members) || options.members.length === 0) {
    throw new HsmError('BAD_REQUEST', 'members: at least one member address (host:port) is required');
  }
  for (const field of ['ca', 'cert', 'key'] as const) {
    if (typeof options[field] !== 'string' && !Buffer.isBuffer(options[field])) {
      throw new HsmError('BAD_REQUEST', `${field}: required, PEM text or bytes (mutual TLS: the trust anchor, this client's certificate and its key)`);
    }
  }
  const given = options.members.map((a) => {
    parseAddress(a);
    return a;
  });
  try {
    createSecureContext({ ca: options.ca, cert: options.cert, key: options.key });
  } catch (e) {
    throw new HsmError('BAD_REQUEST', `ca, cert, key: not a usable trust anchor, certificate and key (${e instanceof Error ? e.message : String(e)})`);
  }

  // Discovery: ask the first member that answers where the others are.
  let addresses: string[] = given;
  const errors: string[] = [];
  for (const address of given) {
    try {
      const t = await SocketTransport.connect(address, options);
      const info = await t.send({ op: 'getHsmInfo' });
      await t.close();
      if (info.ok && (info.result as { clusterAddresses: string[] }).clusterAddresses.length) {
        addresses = [...new Set([...(info.result as { clusterAddresses: string[] }).clusterAddresses, ...given])];
      }
      break;
    } catch (e) {
      errors.push(e instanceof Error ? e.message : String(e));
    }
  }
  if (errors.length === given.length) throw new HsmError('MEMBER_UNAVAILABLE', `no member answered: ${errors.join('; ')}`);
  const cluster = await Cluster.open(
    addresses.map((address) => ({ description: `tls member ${address}`, start: () => SocketTransport.connect(address, options) })),
    options,
  );
  return new RemoteCluster(cluster);
}
