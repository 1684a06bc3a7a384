/**
 * A cluster handle's members coming and going (cluster.ts): a member the supervisor stopped is
 * routed around at once; a removed member finishes what it is working on (up to a limit) and is
 * then let go; a member that cannot be added, or that closes while the cluster closes, is not
 * left running; a member that cannot be brought in line is marked down with the reason.
 */
import { expect } from 'chai';
import { Cluster, InProcessTransport } from '../../src/cluster-client/index.js';
import { HsmError, createMember, keyRef } from '../../src/hsm-core/index.js';
import { MEMBER_OPTIONS, TestTransport, ask, clusterMembers, rawCluster } from '../helpers/raw-cluster.js';

/** The refusal a promise ends with (it must be one). */
const refusalOf = (p: Promise<unknown>) => p.then(() => expect.fail('it succeeded'), (e: { code: string; message: string }) => ({ code: e.code, message: e.message }));
/** Lets every callback already queued run. */
const turns = async (n = 20) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

describe('cluster-client: members coming and going', function () {
  this.timeout(30_000);

  it('a member the supervisor stopped is down at once, counted once, and its connection closed', async () => {
    const { cluster, transports } = await rawCluster(3);
    try {
      cluster.memberStopped(1, 'stopped by the test');
      const [, one] = cluster.status();
      expect(one).to.deep.include({ state: 'down', reason: 'stopped by the test' });
      expect(one!.counters.downs).to.equal(1);
      expect(transports[1]!.alive).to.equal(false);
      cluster.memberStopped(1, 'again');
      expect(cluster.status()[1]!.counters.downs).to.equal(1);
      cluster.memberStopped(7, 'no such member');
      expect(cluster.status().map((s) => s.state)).to.deep.equal(['up', 'down', 'up']);
    } finally {
      await cluster.close();
    }
  });

  it('a removed member takes no new request, finishes the one it works on, and is then let go', async () => {
    const { cluster, transports } = await rawCluster(3);
    try {
      const release = transports[1]!.hold('getHsmInfo');
      const inFlight = cluster.sendTo(cluster.links[1]!, { op: 'getHsmInfo' });
      let removed = false;
      const removing = cluster.removeMember(1, 10_000).then(() => (removed = true));
      expect(cluster.status()[1]).to.deep.include({ state: 'removed', reason: 'removed from the cluster' });
      expect(cluster.pick(new Set([0, 2]))).to.equal(undefined);
      await turns();
      expect(removed).to.equal(false);
      expect(transports[1]!.alive).to.equal(true);
      release();
      expect((await inFlight).ok).to.equal(true);
      await removing;
      expect(transports[1]!.alive).to.equal(false);
      // Removing it again, or a member that does not exist, changes nothing.
      await cluster.removeMember(1);
      await cluster.removeMember(9);
      expect(cluster.status().map((s) => s.state)).to.deep.equal(['up', 'removed', 'up']);
      expect(cluster.status()[1]!.counters.downs).to.equal(0);
    } finally {
      await cluster.close();
    }
  });

  it('a removed member is let go after the drain time even with a request still running', async () => {
    const { cluster, transports } = await rawCluster(2);
    const release = transports[1]!.hold('getHsmInfo');
    try {
      void cluster.sendTo(cluster.links[1]!, { op: 'getHsmInfo' });
      await cluster.removeMember(1, 50);
      expect(cluster.status()[1]!.outstanding).to.equal(1);
      expect(transports[1]!.alive).to.equal(false);
    } finally {
      release();
      await cluster.close();
    }
  });

  it('a member whose preparation fails is not added, not left running, and says why', async () => {
    const { cluster } = await rawCluster(2);
    try {
      const extra = new InProcessTransport(await createMember({ ...MEMBER_OPTIONS, memberIndex: 2 }), 2);
      const refused = await refusalOf(cluster.addMember({ description: 'member 2', start: async () => extra }, async () => {
        throw new HsmError('BACKUP_INVALID', 'backup: not a backup of this installation');
      }));
      expect(refused).to.deep.equal({ code: 'BACKUP_INVALID', message: 'backup: not a backup of this installation' });
      expect(cluster.status()[2]).to.deep.include({ state: 'removed', reason: 'could not be added: backup: not a backup of this installation' });
      expect(extra.alive).to.equal(false);
    } finally {
      await cluster.close();
    }
  });

  it('a member still starting when the cluster closes is closed as it arrives', async () => {
    const { cluster } = await rawCluster(2);
    const extra = new InProcessTransport(await createMember({ ...MEMBER_OPTIONS, memberIndex: 2 }), 2);
    let arrive!: () => void;
    const started = new Promise<void>((r) => (arrive = r));
    const adding = refusalOf(cluster.addMember({ description: 'member 2', start: async () => (await started, extra) }, async () => undefined));
    // While it starts it is a member being repaired: in the cluster's list, taking no reads.
    expect(cluster.status()[2]).to.deep.include({ state: 'repairing', description: 'member 2' });
    await cluster.close();
    arrive();
    expect(await adding).to.deep.equal({ code: 'MEMBER_CLOSED', message: 'the cluster has been closed' });
    expect(extra.alive).to.equal(false);
  });

  it('a member that cannot be brought in line is marked down, with the reason', async () => {
    const { cluster, transports } = await rawCluster(3);
    try {
      expect(await refusalOf(cluster.resync(1, 9))).to.deep.equal({ code: 'MEMBER_UNAVAILABLE', message: 'member 9: no such member to copy from' });
      // Something to copy: a token key on member 0 only; member 1 refuses to take it.
      const alice = (await ask(transports[0]!.member, { op: 'login', username: 'app', password: 'app-password' })).session as string;
      const made = (await ask(transports[0]!.member, { op: 'generateKey', session: alice, keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle as number;
      // While it is compared it is being repaired.
      const release = transports[1]!.hold('getSyncStatus');
      const comparing = cluster.resync(1, 0);
      expect(cluster.status()[1]!.state).to.equal('repairing');
      transports[1]!.refuse.set('insertMaskedObject', { code: 'QUOTA_EXCEEDED', message: 'no room for more objects' });
      release();
      expect(await refusalOf(comparing)).to.deep.equal({ code: 'QUOTA_EXCEEDED', message: 'no room for more objects' });
      expect(cluster.status()[1]).to.deep.include({ state: 'down', reason: 'no room for more objects' });
      // Member 2 takes it, and the comparison of the members still up agrees.
      await cluster.resync(2, 0);
      expect(cluster.status()[2]!.state).to.equal('up');
      expect(await cluster.reconcile()).to.deep.equal({ inSync: true, keys: [], users: [], settings: false });
      const onTwo = (await ask(transports[2]!.member, { op: 'login', username: 'app', password: 'app-password' })).session as string;
      expect(await ask(transports[2]!.member, { op: 'getAttributes', session: onTwo, handle: made })).to.include({ keyReference: keyRef(made) });
    } finally {
      await cluster.close();
    }
  });

  it('a client without the appliance password says so when a new member needs a backup', async () => {
    const { cluster } = await rawCluster(1, {});
    try {
      const fresh = new InProcessTransport(await createMember({ ...MEMBER_OPTIONS, memberIndex: 1 }), 1);
      const refused = await refusalOf(cluster.addMember({ description: 'member 1', start: async () => fresh }, async () => undefined));
      expect(refused).to.deep.equal({ code: 'MEMBER_UNAVAILABLE', message: 'in-process member 1 is a new member and this client has no appliance password to restore a backup onto it' });
    } finally {
      await cluster.close();
    }
  });

  it('a member that cannot be reached when the handle opens is down with the reason; one that answers badly after a restart is let go again', async () => {
    const [first, second] = await clusterMembers(2);
    const retried: TestTransport[] = [];
    const cluster = await Cluster.open(
      [
        { description: 'member 0', start: async () => new TestTransport(first!, 0) },
        {
          description: 'member 1',
          start: async () => {
            if (!retried.length) {
              const t = new TestTransport(second!, 1);
              t.refuse.set('getHsmInfo', { code: 'INTERNAL_ERROR', message: 'still booting' });
              retried.push(t);
              throw new Error('connect ECONNREFUSED 127.0.0.1:2223');
            }
            const t = retried[0]!;
            return t;
          },
        },
      ],
      { appliancePassword: 'appliance-password', probeIntervalMs: 10 },
    );
    try {
      expect(cluster.status()[1]).to.deep.include({ state: 'down', reason: 'connect ECONNREFUSED 127.0.0.1:2223' });
      // The probe starts it again; it answers its first request with a refusal, so it is let go.
      while (retried[0]!.alive) await new Promise((r) => setTimeout(r, 10));
      expect(cluster.status()[1]!.state).to.equal('down');
      expect(cluster.status()[1]!.reason).to.equal('still booting');
    } finally {
      await cluster.close();
    }
  });
});
