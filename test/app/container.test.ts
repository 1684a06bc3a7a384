/**
 * The composition root (app/container.ts): a cluster takes its clock, random source, backup
 * store and member starter from its container, so a test (or an embedding) replaces one by
 * registering over it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { CLOCK, RANDOM, START_MEMBER, clusterContainer, startLocalCluster } from '../../src/index.js';
import { startMember, type MemberSpec, type TransportFactory } from '../../src/cluster-client/index.js';

describe('app: the composition root', function () {
  this.timeout(30_000);
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  const folder = () => {
    const d = mkdtempSync(join(tmpdir(), 'strongroom-container-'));
    dirs.push(d);
    return d;
  };

  it('the clock and the random source registered in the container stamp and name the backups', async () => {
    const services = clusterContainer();
    services.register(CLOCK, { useValue: () => new Date('2031-05-06T07:08:09.000Z') });
    services.register(RANDOM, { useValue: (n: number) => new Uint8Array(n) });
    const cluster = await startLocalCluster({ adminPassword: 'admin-password', passwordCost: 10, syncIntervalMs: 0, dataDir: folder(), services });
    try {
      const [activation] = cluster.backupStore!.list();
      expect(activation).to.include({ backupId: 'backup-aaaaaaaaaaa', createTimestamp: '2031-05-06T07:08:09.000Z', trigger: 'activation' });
    } finally {
      await cluster.close();
    }
  });

  it('members are started by the registered starter, also when one is started again after a crash', async () => {
    const started: MemberSpec[] = [];
    const counting: TransportFactory = (spec) => {
      started.push(spec);
      return startMember(spec);
    };
    const services = clusterContainer();
    services.register(START_MEMBER, { useValue: counting });
    const cluster = await startLocalCluster({ members: 2, adminPassword: 'admin-password', passwordCost: 10, syncIntervalMs: 0, services });
    try {
      expect(started.map((s) => [s.kind, s.index])).to.deep.equal([['in-process', 0], ['in-process', 1]]);
      cluster.killMember(1);
      await cluster.whenAllUp();
      expect(started.map((s) => s.index)).to.deep.equal([0, 1, 1]);
    } finally {
      await cluster.close();
    }
  });

  it('a container left alone starts a cluster with the defaults', async () => {
    const cluster = await startLocalCluster({ adminPassword: 'admin-password', passwordCost: 10, syncIntervalMs: 0, services: clusterContainer() });
    try {
      expect((await cluster.hsmInfo()).map((i) => i.state)).to.deep.equal(['active']);
    } finally {
      await cluster.close();
    }
  });
});
