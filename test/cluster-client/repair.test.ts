/**
 * How the cluster handle treats a member that fails, returns or leaves (cluster.ts: markDown,
 * probe, bringUp, repair, removeMember): what `status()` says about it, that its repair leaves no
 * session behind on any member, and what a client without the appliance password can and cannot do.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { type HsmSession, type LocalCluster } from '../../src/index.js';
import { startTestCluster } from '../helpers/cluster.js';
import { Cluster, InProcessTransport, type Transport } from '../../src/cluster-client/index.js';
import { createMember, type Member, type Response } from '../../src/hsm-core/index.js';
import { waitUntil } from '../helpers/wait.js';

describe('cluster-client: failing, returning and leaving members', function () {
  this.timeout(60_000);
  let cluster: LocalCluster | undefined;
  let app: HsmSession;
  beforeEach(async () => {
    cluster = await startTestCluster();
    app = await cluster.login('app', 'app-password');
  });
  afterEach(async () => {
    await cluster?.close();
    cluster = undefined;
  });

  /** How many sessions member i has open (asked without a session, so the question opens none). */
  const sessionsOn = async (i: number) => {
    const answer = await cluster!.cluster.links[i]!.transport!.send({ op: 'getHsmInfo' });
    return answer.ok ? (answer.result as { sessions: number }).sessions : answer.error.code;
  };

  it('a failed member is down with its reason, counted once however often it is reported, and comes back repaired', async () => {
    const c = cluster!;
    const handle = (await app.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
    const before = [await sessionsOn(0), await sessionsOn(2)];
    c.killMember(1, { restart: false });
    c.cluster.memberStopped(1, 'reported again');
    const down = c.status()[1]!;
    expect([down.state, down.reason, down.counters.downs]).to.deep.equal(['down', 'the member was stopped', 1]);
    // Made while member 1 is away; it returns empty (no data folder) and is restored and compared.
    const later = (await app.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle;
    c.restartMember(1);
    await c.whenAllUp();
    const up = c.status()[1]!;
    expect([up.state, up.reason, up.counters.downs]).to.deep.equal(['up', null, 1]);
    expect(up.counters.repairs).to.be.at.least(1);
    for (const h of [handle, later]) expect((await app.sendToMember(1, { op: 'getAttributes', handle: h })).attributes.token).to.equal(true);
    // The repair's appliance sessions are all closed again.
    expect([await sessionsOn(0), await sessionsOn(2)]).to.deep.equal(before);
  });

  it('a returning member that alone holds a key gives it to every other member, and leaves no session behind', async () => {
    await cluster!.close();
    const dir = mkdtempSync(join(tmpdir(), 'strongroom-repair-'));
    try {
      const c = (cluster = await startTestCluster({ dataDir: dir }));
      app = await c.login('app', 'app-password');
      // Made on member 1 alone, which then fails before any copy went out; it returns from its data folder.
      const only = (await app.sendToMember(1, { op: 'generateKey', keyType: 'aes', lengthBytes: 16, attributes: { token: true, label: 'only on 1' } })).handle;
      const before = [await sessionsOn(0), await sessionsOn(2)];
      c.killMember(1);
      await c.whenAllUp();
      for (const i of [0, 2]) expect((await app.sendToMember(i, { op: 'getAttributes', handle: only })).attributes.label, `member ${i}`).to.equal('only on 1');
      expect([await sessionsOn(0), await sessionsOn(2)]).to.deep.equal(before);
    } finally {
      await cluster?.close();
      cluster = undefined;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a removed member takes no more requests and says why; removing it twice is refused', async () => {
    const c = cluster!;
    await c.removeMember(2);
    const removed = c.status()[2]!;
    expect([removed.state, removed.reason]).to.deep.equal(['removed', 'removed from the cluster']);
    await c.cluster.removeMember(2);
    expect(c.status()[2]!.state).to.equal('removed');
    c.cluster.memberStopped(2, 'too late');
    expect(c.status()[2]!.state).to.equal('removed');
    for (let i = 0; i < 6; i++) await app.send({ op: 'generateRandom', length: 1 });
    expect(c.status()[2]!.counters.requests).to.equal(removed.counters.requests);
  });
});

/** A connection to a member that outlives it: closing the connection leaves the member running, as a network blip does. */
class Connection implements Transport {
  alive = true;
  readonly #listeners: ((reason: string) => void)[] = [];
  constructor(readonly member: Member, readonly description: string) {}
  send(request: unknown): Promise<Response> {
    return this.member.handle(request);
  }
  onDown(listener: (reason: string) => void): void {
    this.#listeners.push(listener);
  }
  async close(): Promise<void> {
    this.alive = false;
  }
}

describe('cluster-client: a client without the appliance password', function () {
  this.timeout(30_000);

  it('cannot bring a new (emptied) member into the cluster, and says so; a member that kept its state comes back as it is', async () => {
    const serviceKey = new Uint8Array(32).fill(8);
    const first = await createMember({ passwordCost: 10, serviceKey, appliancePassword: 'appliance-password' });
    await first.handle({ op: 'activateCluster', password: 'admin-password' });
    const admin = ((await first.handle({ op: 'login', username: 'admin', password: 'admin-password' })) as { result: { session: string } }).result.session;
    const backup = ((await first.handle({ op: 'createBackup', session: admin })) as { result: { backup: Uint8Array } }).result.backup;
    const second = await createMember({ passwordCost: 10, serviceKey, memberIndex: 1 });
    await second.handle({ op: 'restoreBackup', backup });
    let emptied = false;
    const raw = await Cluster.open([
      { description: 'member 0', start: async () => new InProcessTransport(first, 0) },
      { description: 'member 1', start: async () => (emptied ? new InProcessTransport(await createMember({ passwordCost: 10, serviceKey, memberIndex: 1 }), 1) : new Connection(second, 'member 1')) },
    ], { probeIntervalMs: 20 });
    try {
      raw.memberStopped(1, 'a network blip');
      await waitUntil(() => raw.status()[1]!.state === 'up', 'member 1 to be up again');
      emptied = true;
      raw.memberStopped(1, 'a crash');
      await waitUntil(() => (raw.status()[1]!.reason ?? '').includes('no appliance password'), 'the repair to give up');
      expect(raw.status()[1]!.reason).to.equal('in-process member 1 is a new member and this client has no appliance password to restore a backup onto it');
      expect(raw.status()[1]!.state).to.equal('down');
    } finally {
      await raw.close();
    }
  });
});
