/**
 * How the cluster brings members that differ back into line (Cluster.reconcile, which the
 * supervisor runs every few seconds and `LocalCluster.sync()` runs on demand). Each difference is
 * made on one member only (`sendToMember` is not replicated), then one comparison settles it:
 * a key's deletion beats every copy of it, otherwise the newer version wins, and what one member
 * alone holds reaches the others.
 */
import { expect } from 'chai';
import { type HsmSession, type LocalCluster } from '../../src/index.js';
import { startTestCluster } from '../helpers/cluster.js';
import { Cluster, InProcessTransport } from '../../src/cluster-client/index.js';
import { unavailable } from '../../src/cluster-client/transport.js';
import { createMember } from '../../src/hsm-core/index.js';
import { refusal } from '../helpers/refusal.js';

const MEMBERS = 3;

describe('cluster-client: reconciling members that differ', function () {
  this.timeout(60_000);
  let cluster: LocalCluster;
  let app: HsmSession;
  let admin: HsmSession;
  beforeEach(async () => {
    cluster = await startTestCluster({
      profile: 'unlimited',
      users: ['app', 'dave', 'erin'].map((username) => ({ username, password: `${username}-password`, role: 'crypto-user' as const })),
    });
    app = await cluster.login('app', 'app-password');
    admin = await cluster.login('admin', 'admin-password');
  });
  afterEach(async () => cluster?.close());

  const onEvery = async <T>(ask: (i: number) => Promise<T>): Promise<T[]> => Promise.all(Array.from({ length: MEMBERS }, (_, i) => ask(i)));
  const token = async (label: string) => (await app.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 16, attributes: { token: true, label } })).handle;

  it('members already alike are left alone', async () => {
    await token('everywhere');
    expect(await cluster.sync()).to.deep.equal({ inSync: true, keys: [], users: [], settings: false });
  });

  it('a key\'s deletion on one member wins over a newer change to it on another', async () => {
    const handle = await token('before');
    await app.sendToMember(1, { op: 'deleteKey', handle });
    await app.sendToMember(2, { op: 'setAttributes', handle, attributes: { label: 'changed after the deletion' } });
    expect((await cluster.sync()).inSync).to.equal(true);
    for (const e of await onEvery((i) => refusal(app.sendToMember(i, { op: 'getAttributes', handle })))) expect(e.code).to.equal('KEY_NOT_FOUND');
  });

  it('the newer version of a key wins, whichever member holds it', async () => {
    const [first, second] = [await token('first'), await token('second')];
    await app.sendToMember(2, { op: 'setAttributes', handle: first, attributes: { label: 'newer on 2' } });
    await app.sendToMember(0, { op: 'setAttributes', handle: second, attributes: { label: 'newer on 0' } });
    expect((await cluster.sync()).inSync).to.equal(true);
    const labels = await onEvery(async (i) => [
      (await app.sendToMember(i, { op: 'getAttributes', handle: first })).attributes.label,
      (await app.sendToMember(i, { op: 'getAttributes', handle: second })).attributes.label,
    ]);
    expect(labels).to.deep.equal(Array(MEMBERS).fill(['newer on 2', 'newer on 0']));
  });

  it('a key that only one member holds reaches the others, whichever member it is', async () => {
    const made = [];
    for (const i of [0, 2]) made.push((await app.sendToMember(i, { op: 'generateKey', keyType: 'aes', lengthBytes: 16, attributes: { token: true, label: `only on ${i}` } })).handle);
    expect((await cluster.sync()).inSync).to.equal(true);
    for (const handle of made) {
      const labels = await onEvery(async (i) => (await app.sendToMember(i, { op: 'getAttributes', handle })).attributes.label);
      expect(new Set(labels).size, `key ${handle}`).to.equal(1);
    }
  });

  it('a user\'s new password and another user\'s deletion, each made on one member, reach every member', async () => {
    await admin.sendToMember(0, { op: 'changePassword', username: 'dave', password: 'dave-new-password' });
    await admin.sendToMember(1, { op: 'deleteUser', username: 'erin' });
    expect((await cluster.sync()).inSync).to.equal(true);
    const users = await onEvery(async (i) => (await admin.sendToMember(i, { op: 'listUsers' })).users.map((u) => u.username));
    for (const names of users) expect(names).to.include('dave').and.not.include('erin');
    const dave = await cluster.login('dave', 'dave-new-password');
    expect(await onEvery(async (i) => (await dave.sendToMember(i, { op: 'generateRandom', length: 1 })).data.length)).to.deep.equal([1, 1, 1]);
    await dave.logout();
  });

  it('a user created again on one member after being deleted everywhere comes back everywhere (a user\'s deletion is a version like any other)', async () => {
    await admin.send({ op: 'deleteUser', username: 'erin' });
    await admin.sendToMember(0, { op: 'createUser', username: 'erin', password: 'erin-second-password', role: 'crypto-user' });
    expect((await cluster.sync()).inSync).to.equal(true);
    const users = await onEvery(async (i) => (await admin.sendToMember(i, { op: 'listUsers' })).users.map((u) => u.username));
    for (const names of users) expect(names).to.include('erin');
    await (await cluster.login('erin', 'erin-second-password')).logout();
  });

  it('more keys than one batch of copies (64), made on one member, all reach the others', async () => {
    const made: number[] = [];
    for (let i = 0; i < 70; i++) made.push((await app.sendToMember(1, { op: 'generateKey', keyType: 'aes', lengthBytes: 16, attributes: { token: true } })).handle);
    expect((await cluster.sync()).inSync).to.equal(true);
    for (const i of [0, 2]) {
      const held = (await app.sendToMember(i, { op: 'findKeys', maxItems: 1000 })).keys.map((k) => k.handle);
      expect(held, `member ${i}`).to.include.members(made);
    }
  });

  it('newer quorum settings on one member reach the others', async () => {
    await admin.sendToMember(2, { op: 'setQuorumTimeouts', generated: 300 });
    expect((await cluster.sync()).inSync).to.equal(true);
    const timeouts = await onEvery(async (i) => (await admin.sendToMember(i, { op: 'getQuorumSettings' })).timeouts.generated);
    expect(timeouts).to.deep.equal([300, 300, 300]);
  });

  it('comparisons reuse their appliance sessions: members do not collect one per run', async () => {
    const sessions = async () => onEvery(async (i) => {
      const answer = await cluster.cluster.links[i]!.transport!.send({ op: 'getHsmInfo' });
      return answer.ok ? (answer.result as { sessions: number }).sessions : -1;
    });
    await app.sendToMember(0, { op: 'generateKey', keyType: 'aes', lengthBytes: 16, attributes: { token: true } });
    await cluster.sync();
    const first = await sessions();
    for (let i = 0; i < 3; i++) {
      await app.sendToMember(i, { op: 'generateKey', keyType: 'aes', lengthBytes: 16, attributes: { token: true } });
      expect((await cluster.sync()).inSync).to.equal(true);
    }
    expect(await sessions()).to.deep.equal(first);
  });

  it('a comparison that fails part-way logs its appliance sessions out: members do not collect one per failure', async () => {
    const sessions = async () => onEvery(async (i) => {
      const answer = await cluster.cluster.links[i]!.transport!.send({ op: 'getHsmInfo' });
      return answer.ok ? (answer.result as { sessions: number }).sessions : -1;
    });
    await cluster.sync();
    const first = await sessions();
    // Member 2 stops answering comparisons (as a member being removed does mid-run); then it answers again.
    const transport = cluster.cluster.links[2]!.transport!;
    const send = transport.send.bind(transport);
    transport.send = (request: unknown) => ((request as { op?: string }).op === 'getSyncStatus' ? Promise.resolve(unavailable(transport.description, 'going away')) : send(request));
    try {
      const e = await refusal(cluster.sync());
      expect([e.code, e.message]).to.deep.equal(['MEMBER_UNAVAILABLE', `${transport.description}: going away`]);
    } finally {
      transport.send = send;
    }
    expect((await cluster.sync()).inSync).to.equal(true);
    expect(await sessions()).to.deep.equal(first);
  });

  it('after a comparison every member gives the same sync summary, and the next comparison finds nothing', async () => {
    await app.sendToMember(1, { op: 'generateKey', keyType: 'aes', lengthBytes: 16, attributes: { token: true } });
    await admin.sendToMember(0, { op: 'setQuorumTimeouts', approved: 900 });
    await cluster.sync();
    const summaries = await onEvery(async (i) => (await admin.sendToMember(i, { op: 'getSyncStatus', summaryOnly: true })).summary);
    expect(new Set(summaries).size).to.equal(1);
    expect(await cluster.sync()).to.deep.equal({ inSync: true, keys: [], users: [], settings: false });
  });
});

describe('cluster-client: when there is nothing to reconcile with', function () {
  this.timeout(60_000);

  it('fewer than two members up: nothing to compare, so in sync', async () => {
    const cluster = await startTestCluster({ users: [] });
    try {
      cluster.killMember(1, { restart: false });
      cluster.killMember(2, { restart: false });
      expect(await cluster.sync()).to.deep.equal({ inSync: true, keys: [], users: [], settings: false });
    } finally {
      await cluster.close();
    }
  });

  it('a client without the appliance password cannot compare members, and says who can', async () => {
    const serviceKey = new Uint8Array(32).fill(3);
    const first = await createMember({ passwordCost: 10, serviceKey });
    await first.handle({ op: 'activateCluster', password: 'admin-password' });
    const admin = ((await first.handle({ op: 'login', username: 'admin', password: 'admin-password' })) as { result: { session: string } }).result.session;
    const second = await createMember({ passwordCost: 10, serviceKey, memberIndex: 1 });
    await second.handle({ op: 'restoreBackup', backup: ((await first.handle({ op: 'createBackup', session: admin })) as { result: { backup: Uint8Array } }).result.backup });
    const raw = await Cluster.open([
      { description: 'member 0', start: async () => new InProcessTransport(first, 0) },
      { description: 'member 1', start: async () => new InProcessTransport(second, 1) },
    ]);
    try {
      const e = await refusal(raw.reconcile());
      expect([e.code, e.message]).to.deep.equal(['PERMISSION_DENIED', 'reconciling members needs the appliance password (the supervisor has it)']);
    } finally {
      await raw.close();
    }
  });
});
