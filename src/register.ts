/**
 * `import 'strongroom/register'` replaces `globalThis.crypto` with an HSM-backed `Crypto`, for
 * apps (and libraries such as jose) that use the global and cannot be changed. It reads:
 *
 * - `HSM_USER`, `HSM_PASSWORD`: the crypto user to log in as (the names CloudHSM's JCE provider
 *   reads);
 * - `STRONGROOM_CLUSTER`: where the cluster is.
 *   - `embedded` (the default) starts a one-member cluster inside this process and creates the
 *     user with that password; keys made through WebCrypto are session keys, so nothing
 *     outlives the process.
 *   - a path to a `cluster.json` (which `strongroom up` writes in its data folder): the members'
 *     addresses and the paths of the trust anchor, client certificate and key;
 *   - or `host:port[,host:port…]`, with `STRONGROOM_CA`, `STRONGROOM_CERT` and `STRONGROOM_KEY`
 *     naming the PEM files for mutual TLS.
 * - `STRONGROOM_PROFILE`: `cloudhsm` (default) or `unlimited`, for an embedded cluster.
 *
 * The import finishes only once the session is open and the random pool is filled, so code after
 * it can use `crypto` at once. `session` and `cluster` are exported for apps that want them.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { connectFromEnvironment, startLocalCluster, type HsmSession, type LocalCluster, type RemoteCluster } from './app/index.js';
import { HsmError, PROFILE_NAMES, type ProfileName } from './hsm-core/index.js';
import { installGlobalCrypto } from './subtle/global.js';

const env = process.env;
const username = env.HSM_USER;
const password = env.HSM_PASSWORD;
if (!username || !password) {
  throw new HsmError('BAD_REQUEST', 'strongroom/register: set HSM_USER and HSM_PASSWORD to the crypto user to log in as');
}
const address = env.STRONGROOM_CLUSTER ?? 'embedded';
const profile = (env.STRONGROOM_PROFILE ?? 'cloudhsm') as ProfileName;
if (!PROFILE_NAMES.includes(profile)) {
  throw new HsmError('BAD_REQUEST', `STRONGROOM_PROFILE: expected ${PROFILE_NAMES.join(' or ')}, got ${JSON.stringify(profile)}`);
}

async function open(): Promise<LocalCluster | RemoteCluster> {
  if (address === 'embedded') {
    return startLocalCluster({
      // Nobody logs in as the admin of an embedded cluster: a random password nobody knows.
      adminPassword: randomBytes(18).toString('base64url'),
      profile,
      users: [{ username: username!, password: password!, role: 'crypto-user' }],
    });
  }
  return connectFromEnvironment(env);
}

/** Opens the session, or ends the process with one line that says why (an app cannot catch an import's failure). */
async function start(): Promise<{ cluster: LocalCluster | RemoteCluster; session: HsmSession }> {
  try {
    const cluster = await open();
    const session = await cluster.login(username!, password!);
    await session.crypto.ready();
    return { cluster, session };
  } catch (e) {
    process.stderr.write(`strongroom/register: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  }
}

export const { cluster, session } = await start();
installGlobalCrypto(session.crypto);
