/**
 * The composition root: the pieces that differ between an embedded cluster, worker and TLS
 * members, `strongroom up`, the relay and tests — the clock, the random source, the backup store
 * and how members are started — registered in one tsyringe container per cluster. Nothing below
 * this file imports tsyringe; the pieces take what they need as plain arguments.
 *
 * @example
 * ```ts
 * const services = clusterContainer();
 * services.register(CLOCK, { useValue: () => new Date('2030-01-01T00:00:00Z') });
 * const cluster = await startLocalCluster({ adminPassword: 'admin-password', dataDir, services });
 * ```
 *
 * @module
 */
import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { container, type DependencyContainer } from 'tsyringe';
import { BackupStore, startMember, type BackupStoreOptions, type TransportFactory } from '../cluster-client/index.js';

/** `() => Date`: the time backups are stamped with and retention is measured by. */
export const CLOCK = Symbol('strongroom.clock');
/** `(n) => Uint8Array`: random bytes (backup ids, the appliance user's password). */
export const RANDOM = Symbol('strongroom.random');
/** `(dir, options) => BackupStore`: where backups are kept. */
export const BACKUP_STORE = Symbol('strongroom.backupStore');
/** {@link TransportFactory}: how a member is started (in this process, a worker, a TLS process). */
export const START_MEMBER = Symbol('strongroom.startMember');

/** A cluster's container (tsyringe's), as the rest of the project names it. */
export type ServiceContainer = DependencyContainer;

/** What a local cluster takes from its container. */
export interface ClusterServices {
  clock: () => Date;
  random: (n: number) => Uint8Array;
  backupStore: (dir: string, options?: Pick<BackupStoreOptions, 'region' | 'create'>) => BackupStore;
  startMember: TransportFactory;
}

/** A container for one cluster, with the defaults registered; register over them to replace one. */
export function clusterContainer(parent: DependencyContainer = container): DependencyContainer {
  const c = parent.createChildContainer();
  c.register(CLOCK, { useValue: () => new Date() });
  c.register(RANDOM, { useValue: (n: number) => new Uint8Array(randomBytes(n)) });
  // Resolved when asked for, so that a clock or random source registered later is the one used.
  c.register(BACKUP_STORE, {
    useFactory: (d) => (dir: string, options: Pick<BackupStoreOptions, 'region' | 'create'> = {}) =>
      new BackupStore(dir, { ...options, clock: d.resolve<() => Date>(CLOCK), random: d.resolve<(n: number) => Uint8Array>(RANDOM) }),
  });
  c.register(START_MEMBER, { useValue: startMember });
  return c;
}

/** The services a cluster uses, from its container. */
export function resolveServices(c: DependencyContainer): ClusterServices {
  return {
    clock: c.resolve(CLOCK),
    random: c.resolve(RANDOM),
    backupStore: c.resolve(BACKUP_STORE),
    startMember: c.resolve(START_MEMBER),
  };
}
