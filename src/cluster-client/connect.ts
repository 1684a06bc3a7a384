/**
 * Reaching a cluster of network members over mutual TLS: `connectCluster` discovers the members
 * from the first address that answers; `fromEnvironment` reads where the cluster is from
 * `STRONGROOM_CLUSTER` (a `cluster.json`, as `strongroom up` writes it, or `host:port[,…]` with
 * `STRONGROOM_CA`, `STRONGROOM_CERT` and `STRONGROOM_KEY`); `explained` turns "no member
 * answered" into one line a person can act on. app/ wraps these for applications (`connect`); the
 * CLI uses them as they are, without the WebCrypto door.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { HsmError } from '../hsm-core/face.js';
import { parseAddress } from './address.js';
import { Cluster, type ClusterOptions } from './cluster.js';
import { SocketTransport, type TlsCredentials } from './tls.js';

export interface ConnectOptions extends TlsCredentials, ClusterOptions {
  /** `host:port` of one or more members; the others are discovered. */
  members: string[];
}

/** Connects to the members of a cluster, discovering the others from the first that answers. */
export async function connectCluster(options: ConnectOptions): Promise<Cluster> {
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
  return Cluster.open(
    addresses.map((address) => ({ description: `tls member ${address}`, start: () => SocketTransport.connect(address, options) })),
    options,
  );
}

/**
 * `open(options)`, with a refusal that says what to do when no member answers: one line naming the
 * addresses tried and where they came from (a person reads this, not a program).
 */
export async function explained<T>(open: (options: ConnectOptions) => Promise<T>, options: ConnectOptions, source: string): Promise<T> {
  try {
    return await open(options);
  } catch (e) {
    if (!(e instanceof HsmError) || e.code !== 'MEMBER_UNAVAILABLE') throw e;
    const why = e.message.replace(/^no member answered: /, '').replace(/tls member [^:]+:\d+: /g, '').replace(/connect ECONNREFUSED /g, 'nothing listens on ');
    throw new HsmError('MEMBER_UNAVAILABLE', `no member of the cluster answered at ${options.members.join(', ')} (${why}); is the cluster running (npm start, or strongroom up)? The addresses come from ${source}`);
  }
}

function readPem(variable: string, path: string | undefined): string {
  if (!path) throw new HsmError('BAD_REQUEST', `${variable}: required with STRONGROOM_CLUSTER=host:port (a PEM file for mutual TLS)`);
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new HsmError('BAD_REQUEST', `${variable}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
}

/** The connection options `STRONGROOM_CLUSTER` (and its companions) give, and where they came from. */
export function fromEnvironment(env: Record<string, string | undefined> = process.env): { options: ConnectOptions; source: string } {
  const address = env.STRONGROOM_CLUSTER;
  if (!address) throw new HsmError('BAD_REQUEST', 'STRONGROOM_CLUSTER: set it to a cluster.json (strongroom up writes one in its data folder) or to host:port addresses');
  if (address.endsWith('.json')) {
    let file: { members?: unknown; ca?: unknown; cert?: unknown; key?: unknown };
    try {
      file = JSON.parse(readFileSync(address, 'utf8')) as typeof file;
    } catch (e) {
      throw new HsmError('BAD_REQUEST', `STRONGROOM_CLUSTER: cannot read ${address} as a cluster file (${e instanceof Error ? e.message : String(e)})`);
    }
    if (!Array.isArray(file.members) || typeof file.ca !== 'string' || typeof file.cert !== 'string' || typeof file.key !== 'string') {
      throw new HsmError('BAD_REQUEST', `STRONGROOM_CLUSTER: ${address} needs members (addresses) and ca, cert, key (paths), as strongroom up writes it`);
    }
    return { options: { members: file.members as string[], ca: readPem('ca', file.ca), cert: readPem('cert', file.cert), key: readPem('key', file.key) }, source: address };
  }
  return {
    options: {
      members: address.split(',').map((a) => a.trim()),
      ca: readPem('STRONGROOM_CA', env.STRONGROOM_CA),
      cert: readPem('STRONGROOM_CERT', env.STRONGROOM_CERT),
      key: readPem('STRONGROOM_KEY', env.STRONGROOM_KEY),
    },
    source: 'STRONGROOM_CLUSTER',
  };
}
