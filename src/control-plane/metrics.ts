/**
 * CloudHSM's CloudWatch metrics for each running cluster, as a Prometheus endpoint (prom-client):
 * the metric names CloudWatch uses, with its dimensions `ClusterId` and `HsmId` as labels, read
 * from the members at each scrape. Teams point dashboards and alerts at `/metrics` to test them.
 *
 * - HsmKeysSessionOccupied, HsmKeysTokenOccupied: session and token keys on the HSM.
 * - HsmSessionCount: open sessions; HsmSslCtxsOccupied: the same here (each connection of the
 *   client holds one end-to-end channel; the member counts sessions, not channels).
 * - HsmUsersAvailable, HsmUsersMax: users left and the limit (hsm2m.medium: 1,024).
 * - HsmUnhealthy: 1 while the HSM does not answer.
 * - ClientRequests, ClientRetries, ClientFailovers, ClientMemberDowns: what the cluster client
 *   sent to the HSM and how often it had to go around it (Strongroom's, not CloudWatch's).
 *
 * @module
 */
import { Gauge, Registry } from 'prom-client';
import type { LocalCluster } from '../app/index.js';

export interface MetricSource {
  /** Each running cluster: its API id, its HSM ids by member index, and the cluster. */
  clusters(): { clusterId: string; hsmIds: Map<number, string>; live: LocalCluster }[];
}

const HSM_GAUGES = ['HsmKeysSessionOccupied', 'HsmKeysTokenOccupied', 'HsmSessionCount', 'HsmSslCtxsOccupied', 'HsmUsersAvailable', 'HsmUsersMax', 'HsmUnhealthy'] as const;
const CLIENT_GAUGES = { ClientRequests: 'requests', ClientRetries: 'retries', ClientFailovers: 'failovers', ClientMemberDowns: 'downs' } as const;

/** A registry whose gauges are filled from the members at each scrape. */
export function metricsRegistry(source: MetricSource): Registry {
  const registry = new Registry();
  const gauges = new Map<string, Gauge>();
  const fill = async (): Promise<void> => {
    for (const g of gauges.values()) g.reset();
    for (const { clusterId, hsmIds, live } of source.clusters()) {
      const status = live.status();
      const infos = await live.hsmInfo().catch(() => []);
      for (const [index, hsmId] of hsmIds) {
        const labels = { ClusterId: clusterId, HsmId: hsmId };
        const link = status[index];
        const up = link?.state === 'up';
        gauges.get('HsmUnhealthy')!.set(labels, up ? 0 : 1);
        const info = infos.find((i) => i.memberIndex === index);
        if (info) {
          gauges.get('HsmKeysSessionOccupied')!.set(labels, info.sessionKeys);
          gauges.get('HsmKeysTokenOccupied')!.set(labels, info.keys - info.sessionKeys);
          gauges.get('HsmSessionCount')!.set(labels, info.sessions);
          gauges.get('HsmSslCtxsOccupied')!.set(labels, info.sessions);
          if (info.maxUsers !== null) {
            gauges.get('HsmUsersMax')!.set(labels, info.maxUsers);
            gauges.get('HsmUsersAvailable')!.set(labels, info.maxUsers - info.users);
          }
        }
        if (link) for (const [name, counter] of Object.entries(CLIENT_GAUGES)) gauges.get(name)!.set(labels, link.counters[counter]);
      }
    }
  };
  // The registry collects its metrics at once: every gauge waits for the same filling of this scrape.
  let pending: Promise<void> | null = null;
  const filled = () => (pending ??= fill().finally(() => setImmediate(() => (pending = null))));
  for (const name of [...HSM_GAUGES, ...Object.keys(CLIENT_GAUGES)]) {
    gauges.set(name, new Gauge({ name, help: `CloudHSM ${name} (per HSM)`, labelNames: ['ClusterId', 'HsmId'], registers: [registry], collect: filled }));
  }
  return registry;
}
