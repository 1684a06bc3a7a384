/**
 * A small in-process cluster for tests that decide themselves when members are compared: three
 * members, `admin-password` for the admin, crypto user `app` (password `app-password`) unless
 * `users` says otherwise, a low password cost and no supervisor comparisons.
 */
import { startLocalCluster, type LocalCluster, type LocalClusterOptions } from '../../src/index.js';

export function startTestCluster(extra: Partial<LocalClusterOptions> = {}): Promise<LocalCluster> {
  return startLocalCluster({
    members: 3,
    adminPassword: 'admin-password',
    passwordCost: 10,
    syncIntervalMs: 0,
    users: [{ username: 'app', password: 'app-password', role: 'crypto-user' }],
    ...extra,
  });
}
