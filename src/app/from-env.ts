/**
 * A cluster connection from the environment, for programs that cannot take options (
 * `strongroom/register`, `strongroom keytool`): `STRONGROOM_CLUSTER` is the path of a
 * `cluster.json` (which `strongroom up` writes in its data folder: member addresses and the paths
 * of the trust anchor, client certificate and key), or `host:port[,host:port…]` with
 * `STRONGROOM_CA`, `STRONGROOM_CERT` and `STRONGROOM_KEY` naming the PEM files.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { HsmError } from '../hsm-core/face.js';
import { connect, type RemoteCluster } from './remote-cluster.js';

function readPem(variable: string, path: string | undefined): string {
  if (!path) throw new HsmError('BAD_REQUEST', `${variable}: required with STRONGROOM_CLUSTER=host:port (a PEM file for mutual TLS)`);
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new HsmError('BAD_REQUEST', `${variable}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
}

/**
 * `connect`, with a refusal that says what to do when no member answers: one line naming the
 * addresses tried and where they came from (a person reads this, not a program).
 */
export async function connectOrExplain(options: Parameters<typeof connect>[0], source: string): Promise<RemoteCluster> {
  try {
    return await connect(options);
  } catch (e) {
    if (!(e instanceof HsmError) || e.code !== 'MEMBER_UNAVAILABLE') throw e;
    const why = e.message.replace(/^no member answered: /, '').replace(/tls member [^:]+:\d+: /g, '').replace(/connect ECONNREFUSED /g, 'nothing listens on ');
    throw new HsmError('MEMBER_UNAVAILABLE', `no member of the cluster answered at ${options.members.join(', ')} (${why}); is the cluster running (npm start, or strongroom up)? The addresses come from ${source}`);
  }
}

/** Connects as `STRONGROOM_CLUSTER` (and its companions) say. */
export async function connectFromEnvironment(env: Record<string, string | undefined> = process.env): Promise<RemoteCluster> {
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
    return connectOrExplain({ members: file.members as string[], ca: readPem('ca', file.ca), cert: readPem('cert', file.cert), key: readPem('key', file.key) }, address);
  }
  return connectOrExplain({
    members: address.split(',').map((a) => a.trim()),
    ca: readPem('STRONGROOM_CA', env.STRONGROOM_CA),
    cert: readPem('STRONGROOM_CERT', env.STRONGROOM_CERT),
    key: readPem('STRONGROOM_KEY', env.STRONGROOM_KEY),
  }, 'STRONGROOM_CLUSTER');
}
