/**
 * `strongroom up`: the embedded default. It starts a one-member in-process cluster, activates it,
 * creates a development crypto user, runs the quick-start sample against it and reports.
 *
 * @module
 */
import { startLocalCluster } from '../cluster-client/index.js';
import type { ProfileName } from '../hsm-core/index.js';

/** Development credentials: printed, never meant for anything but a local cluster. */
export const DEV_ADMIN = { username: 'admin', password: 'strongroom-admin' } as const;
export const DEV_USER = { username: 'app', password: 'strongroom-app' } as const;

export async function up(options: { profile: ProfileName; log: (line: string) => void }): Promise<void> {
  const { log } = options;
  const cluster = await startLocalCluster({
    adminPassword: DEV_ADMIN.password,
    profile: options.profile,
    users: [{ ...DEV_USER, role: 'crypto-user' }],
  });
  try {
    const [info] = await cluster.hsmInfo();
    log(`Strongroom: started a 1-member in-process cluster (profile ${cluster.profile}, member ${info!.serialNumber}, state ${info!.state})`);
    log(`  admin        ${DEV_ADMIN.username} / ${DEV_ADMIN.password}`);
    log(`  crypto user  ${DEV_USER.username} / ${DEV_USER.password}`);
    log('');
    log('Running the quick-start sample (samples/quickstart.ts):');
    // The sample is compiled beside the CLI (dist/samples), or run from source by tsx.
    const { quickstart } = (await import('../../samples/quickstart.js')) as typeof import('../../samples/quickstart.js');
    await quickstart(cluster, DEV_USER, (line) => log(`  ${line}`));
    log('');
    const users = await cluster.listUsers();
    log(`Users on the member: ${users.map((u) => `${u.username} (${u.role})`).join(', ')}`);
    log('The cluster lives in this process only and stops now. Use it from code with startLocalCluster() (see README.md).');
  } finally {
    await cluster.close();
  }
}
