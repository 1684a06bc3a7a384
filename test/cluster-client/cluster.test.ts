/**
 * Multi-member clusters (CLOUDHSM.md §4): the same behaviour whatever carries the requests — in
 * this process, in worker threads (and, in tls.test.ts, over mutual TLS).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { HsmError, startLocalCluster, type HsmSession, type LocalCluster, type LocalTransport } from '../../src/index.js';
import { BATCH_LIMIT, createMember, keyRef, type Member, type Response } from '../../src/hsm-core/index.js';
import { Cluster, InProcessTransport } from '../../src/cluster-client/index.js';
import { BUSY_RETRIES } from '../../src/cluster-client/busy.js';
import { PendingTransport } from '../../src/cluster-client/transport.js';
import { refusal } from '../helpers/refusal.js';
import { waitUntil } from '../helpers/wait.js';

/** A member that can stop answering without going away, as a hung machine does. */
class HangingTransport extends PendingTransport {
  readonly description = 'hanging member';
  hung = false;
  constructor(readonly member: Member) {
    super();
  }
  protected post(id: number, request: unknown): void {
    if (!this.hung) void this.member.handle(request).then((r) => this.answer(id, r));
  }
  protected hold(): void {}
  async close(): Promise<void> {
    this.down('closed');
  }
}

/** A member that answers MEMBER_BUSY to every `listUsers` while `busy` is set, counting them. */
class BusyTransport extends InProcessTransport {
  busy = false;
  listUsersSeen = 0;
  override send(request: unknown): Promise<Response> {
    if ((request as { op?: string }).op !== 'listUsers') return super.send(request);
    this.listUsersSeen += 1;
    if (this.busy) return Promise.resolve({ ok: false, error: { code: 'MEMBER_BUSY', message: 'busy member: the queue is full (0xBB)' } });
    return super.send(request);
  }
}

const ADMIN_PASSWORD = 'admin-password';
const AVAILABILITY = /^Key 0x[0-9a-f]{16} does not meet the availability requirements - The key must be available on at least 2 HSMs before being used\.$/;


async function start(transport: LocalTransport, members: number, extra: Partial<Parameters<typeof startLocalCluster>[0]> = {}): Promise<LocalCluster> {
  return startLocalCluster({
    adminPassword: ADMIN_PASSWORD,
    members,
    transport,
    profile: 'unlimited',
    passwordCost: 10,
    users: [
      { username: 'app', password: 'app-password', role: 'crypto-user' },
      { username: 'ops', password: 'ops-password', role: 'admin' },
    ],
    ...extra,
  });
}

/** Every member's sync digests, as the appliance-free view of a crypto user cannot give: compared through each member. */
async function digests(session: HsmSession, members: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < members; i++) out.push(JSON.stringify(await session.sendToMember(i, { op: 'getSyncStatus' })));
  return out;
}

const data = new TextEncoder().encode('cluster data');

for (const transport of ['in-process', 'worker', 'tls'] as const) {
  describe(`cluster-client: three ${transport} members`, function () {
    this.timeout(60_000);
    let cluster: LocalCluster;
    let app: HsmSession;
    before(async () => {
      cluster = await start(transport, 3);
      app = await cluster.login('app', 'app-password');
    });
    after(async () => cluster?.close());

    it('joins every member to one cluster: same cluster id, same users', async () => {
      const infos = await cluster.hsmInfo();
      expect(infos).to.have.length(3);
      expect(new Set(infos.map((i) => i.clusterId)).size).to.equal(1);
      expect(infos[0]!.clusterId).to.match(/^cluster-/);
      expect(infos.map((i) => i.memberIndex)).to.deep.equal([0, 1, 2]);
      const users = await cluster.listUsers();
      expect(users.map((u) => `${u.username}:${u.clusterCoverage}`)).to.include.members(['app:full', 'ops:full', 'admin:full']);
      expect(cluster.status().map((s) => s.state)).to.deep.equal(['up', 'up', 'up']);
    });

    it('a token key made through one member is usable through every member, under the same handle', async () => {
      const pair = await app.send({
        op: 'generateKeyPair',
        keyType: 'ec',
        curve: 'secp256r1',
        privateAttributes: { sign: true, token: true, label: 'cluster-ec' },
        publicAttributes: { verify: true, token: true },
      });
      for (let i = 0; i < 3; i++) {
        const info = await app.sendToMember(i, { op: 'getAttributes', handle: pair.privateHandle });
        expect(info.handle).to.equal(pair.privateHandle);
        expect(info.attributes.label).to.equal('cluster-ec');
      }
      const { signature } = await app.sendToMember(0, { op: 'sign', handle: pair.privateHandle, mechanism: { name: 'ecdsa', hash: 'sha256' }, data });
      for (let i = 0; i < 3; i++) {
        const { valid } = await app.sendToMember(i, { op: 'verify', handle: pair.publicHandle, mechanism: { name: 'ecdsa', hash: 'sha256' }, data, signature });
        expect(valid, `member ${i}`).to.equal(true);
      }
      const d = await digests(app, 3);
      expect(d[1]).to.equal(d[0]);
      expect(d[2]).to.equal(d[0]);

      // The members' audit logs say how it travelled (CLOUDHSM.md §4.1).
      const admin = await cluster.login('ops', 'ops-password');
      const home = pair.privateHandle % 32;
      for (let i = 0; i < 3; i++) {
        const { records } = await admin.sendToMember(i, { op: 'getAuditLog', maxItems: 10_000 });
        const opcodes = records.filter((r) => r.keyHandles.includes(pair.privateHandle)).map((r) => r.opcode);
        expect(opcodes, `member ${i}`).to.include(i === home ? 'CN_EXTRACT_MASKED_OBJECT_USER' : 'CN_INSERT_MASKED_OBJECT_USER');
      }
      await admin.logout();
    });

    it('attribute changes, shares and deletions of token keys reach every member', async () => {
      const { handle } = await app.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 32, attributes: { token: true, encrypt: true, label: 'before' } });
      await app.send({ op: 'setAttributes', handle, attributes: { label: 'after' } });
      for (let i = 0; i < 3; i++) expect((await app.sendToMember(i, { op: 'getAttributes', handle })).attributes.label).to.equal('after');
      const admin = await cluster.login('ops', 'ops-password');
      await admin.send({ op: 'createUser', username: 'peer', password: 'peer-password', role: 'crypto-user' });
      await app.send({ op: 'shareKey', handle, username: 'peer' });
      for (let i = 0; i < 3; i++) expect((await app.sendToMember(i, { op: 'getAttributes', handle })).sharedUsers).to.deep.equal(['peer']);
      await app.send({ op: 'unshareKey', handle, username: 'peer' });
      await admin.send({ op: 'deleteUser', username: 'peer' });
      await admin.logout();
      await app.send({ op: 'deleteKey', handle });
      for (let i = 0; i < 3; i++) expect((await refusal(app.sendToMember(i, { op: 'getAttributes', handle }))).code).to.equal('KEY_NOT_FOUND');
    });

    it('a session key stays on the member that made it, and every request using it goes there; its token copy reaches every member', async () => {
      const { handle } = await app.send({ op: 'generateKey', keyType: 'generic-secret', lengthBytes: 32, attributes: { sign: true } });
      const home = handle % 32;
      const before = cluster.status().map((s) => s.counters.requests);
      const macs = await Promise.all(Array.from({ length: 30 }, () => app.send({ op: 'sign', handle, mechanism: { name: 'hmac', hash: 'sha256' }, data })));
      expect(new Set(macs.map((m) => Buffer.from(m.signature).toString('hex'))).size).to.equal(1);
      const after = cluster.status().map((s) => s.counters.requests);
      expect(after[home]! - before[home]!).to.be.at.least(30);
      for (let i = 0; i < 3; i++) {
        if (i === home) continue;
        expect((await refusal(app.sendToMember(i, { op: 'getAttributes', handle }))).code).to.equal('KEY_NOT_FOUND');
      }
      // Its copy as a token key (C_CopyObject) is made on that member and reaches every member; so does a copy of that copy.
      const copy = await app.send({ op: 'copyKey', handle, attributes: { token: true, label: 'copied' } });
      const second = await app.send({ op: 'copyKey', handle: copy.handle, attributes: { label: 'copied again' } });
      expect(copy.handle % 32).to.equal(home);
      for (let i = 0; i < 3; i++) {
        expect((await app.sendToMember(i, { op: 'getAttributes', handle: copy.handle })).attributes.label, `member ${i}`).to.equal('copied');
        expect((await app.sendToMember(i, { op: 'getAttributes', handle: second.handle })).attributes.label, `member ${i}`).to.equal('copied again');
      }
    });

    it('spreads work over every member', async () => {
      const { handle } = await app.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 32, attributes: { token: true, encrypt: true } });
      const before = cluster.status().map((s) => s.counters.requests);
      await Promise.all(Array.from({ length: 300 }, () => app.send({ op: 'encrypt', handle, mechanism: { name: 'aes-gcm' }, data })));
      const after = cluster.status().map((s) => s.counters.requests);
      for (let i = 0; i < 3; i++) expect(after[i]! - before[i]!, `member ${i}`).to.be.greaterThan(30);
    });

    it('user creation, password change and deletion reach every member', async () => {
      const admin = await cluster.login('ops', 'ops-password');
      await admin.send({ op: 'createUser', username: 'carol', password: 'carol-password', role: 'crypto-user' });
      for (let i = 0; i < 3; i++) {
        const { users } = await admin.sendToMember(i, { op: 'listUsers' });
        expect(users.map((u) => u.username), `member ${i}`).to.include('carol');
      }
      await admin.send({ op: 'changePassword', username: 'carol', password: 'carol-new-password' });
      const carol = await cluster.login('carol', 'carol-new-password'); // logs in on all three members
      for (let i = 0; i < 3; i++) expect((await carol.sendToMember(i, { op: 'generateRandom', length: 4 })).data).to.have.length(4);
      await carol.logout();
      expect((await refusal(cluster.login('carol', 'carol-password'))).code).to.equal('LOGIN_FAILED');
      await admin.send({ op: 'deleteUser', username: 'carol' });
      expect((await cluster.listUsers()).map((u) => u.username)).to.not.include('carol');
      await admin.logout();
    });

    it('chaos: a member fails under 300 concurrent requests; every request completes and the member comes back repaired', async () => {
      const { handle: aes } = await app.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 32, attributes: { token: true, encrypt: true, decrypt: true } });
      const ec = await app.send({ op: 'generateKeyPair', keyType: 'ec', curve: 'secp256r1', privateAttributes: { sign: true, token: true }, publicAttributes: { verify: true, token: true } });
      const requests = Array.from({ length: 300 }, (_, i) =>
        i % 2
          ? app.send({ op: 'sign', handle: ec.privateHandle, mechanism: { name: 'ecdsa', hash: 'sha256' }, data })
          : app.send({ op: 'encrypt', handle: aes, mechanism: { name: 'aes-gcm' }, data }),
      );
      // The member fails with all 300 in flight: sent, none answered yet.
      cluster.killMember(1);
      const results = await Promise.allSettled(requests);
      const failed = results.filter((r) => r.status === 'rejected');
      expect(failed.map((r) => String((r as PromiseRejectedResult).reason))).to.deep.equal([]);
      expect(cluster.status()[1]!.counters.downs).to.be.at.least(1);
      // A terminated worker or killed process drops what it was working on: those requests went to another member.
      if (transport !== 'in-process') expect(cluster.status()[1]!.counters.failovers).to.be.at.least(1);

      // Changes made while it is away reach it when it returns.
      const admin = await cluster.login('ops', 'ops-password');
      await admin.send({ op: 'createUser', username: 'dave', password: 'dave-password', role: 'crypto-user' });
      await admin.logout();
      await cluster.whenAllUp();
      expect(cluster.status()[1]!.counters.repairs).to.be.at.least(1);
      const d = await digests(app, 3);
      expect(d[1]).to.equal(d[0]);
      expect(d[2]).to.equal(d[0]);
      const { valid } = await app.sendToMember(1, {
        op: 'verify',
        handle: ec.publicHandle,
        mechanism: { name: 'ecdsa', hash: 'sha256' },
        data,
        signature: (await app.sendToMember(1, { op: 'sign', handle: ec.privateHandle, mechanism: { name: 'ecdsa', hash: 'sha256' }, data })).signature,
      });
      expect(valid).to.equal(true);
      const users = await cluster.listUsers();
      expect(users.find((u) => u.username === 'dave')?.clusterCoverage).to.equal('full');
    });
  });
}

describe('cluster-client: key availability, busy members and retries', function () {
  this.timeout(60_000);
  let cluster: LocalCluster | undefined;
  afterEach(async () => cluster?.close());

  it('a new token key must be on at least 2 members before use, with CloudHSM\'s message', async () => {
    cluster = await start('in-process', 2);
    const app = await cluster.login('app', 'app-password');
    cluster.killMember(1, { restart: false });
    await waitUntil(() => cluster!.status()[1]!.state === 'down', 'member 1 to be seen down');
    const e = await refusal(app.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 32, attributes: { token: true, encrypt: true } }));
    expect(e.code).to.equal('KEY_NOT_AVAILABLE');
    expect(e.message).to.match(AVAILABILITY);
    const handle = Number.parseInt(e.message.slice(4, 22), 16);
    expect((await refusal(app.send({ op: 'encrypt', handle, mechanism: { name: 'aes-gcm' }, data }))).code).to.equal('KEY_NOT_AVAILABLE');
    // Session keys are not subject to it.
    await app.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 32, attributes: { encrypt: true } });

    cluster.restartMember(1);
    await cluster.whenAllUp();
    const { data: ciphertext } = await app.send({ op: 'encrypt', handle, mechanism: { name: 'aes-gcm' }, data });
    expect(ciphertext.length).to.be.greaterThan(data.length);
  });

  it('a session key dies with its member: using it after the member failed is refused, and it never comes back', async () => {
    cluster = await start('in-process', 3);
    const app = await cluster.login('app', 'app-password');
    const { handle } = await app.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 32, attributes: { encrypt: true } });
    const holders = [];
    for (let i = 0; i < 3; i++) holders.push((await Promise.allSettled([app.sendToMember(i, { op: 'getAttributes', handle })]))[0]!.status);
    const home = holders.indexOf('fulfilled');
    expect(holders.filter((h) => h === 'fulfilled')).to.have.length(1);
    cluster.killMember(home, { restart: false });
    const gone = await refusal(app.send({ op: 'encrypt', handle, mechanism: { name: 'aes-gcm' }, data }));
    expect([gone.code, gone.message]).to.deep.equal([
      'MEMBER_UNAVAILABLE',
      `session key ${keyRef(handle)} lived on in-process member ${home}, which is down; session keys do not survive their member`,
    ]);
    cluster.restartMember(home);
    await cluster.whenAllUp();
    const after = await refusal(app.send({ op: 'encrypt', handle, mechanism: { name: 'aes-gcm' }, data }));
    expect([after.code, after.message]).to.deep.equal(['KEY_NOT_FOUND', `no key ${keyRef(handle)} that app can see`]);
  });

  it('key list reports cluster coverage: full, inconsistent, session', async () => {
    cluster = await start('in-process', 3);
    const app = await cluster.login('app', 'app-password');
    const { handle: everywhere } = await app.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 16, attributes: { token: true, label: 'everywhere' } });
    const { handle: partial } = await app.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 16, attributes: { token: true, label: 'partial' } });
    const { handle: session } = await app.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 16, attributes: { label: 'session' } });
    await app.sendToMember(1, { op: 'deleteKey', handle: partial }); // on one member only: not replicated
    const { keys } = await app.listKeys();
    const coverage = Object.fromEntries(keys.map((k) => [k.handle, k.clusterCoverage]));
    expect(coverage).to.deep.equal({ [everywhere]: 'full', [partial]: 'inconsistent', [session]: 'session' });
  });

  it('keyAvailabilityCheck: false lets a key on one member be used', async () => {
    cluster = await start('in-process', 2, { keyAvailabilityCheck: false });
    const app = await cluster.login('app', 'app-password');
    cluster.killMember(1, { restart: false });
    await waitUntil(() => cluster!.status()[1]!.state === 'down', 'member 1 to be seen down');
    const { handle } = await app.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 32, attributes: { token: true, encrypt: true } });
    await app.send({ op: 'encrypt', handle, mechanism: { name: 'aes-gcm' }, data });
  });

  it('a one-member cluster does not check availability', async () => {
    cluster = await start('in-process', 1);
    const app = await cluster.login('app', 'app-password');
    const { handle } = await app.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 32, attributes: { token: true, encrypt: true } });
    await app.send({ op: 'encrypt', handle, mechanism: { name: 'aes-gcm' }, data });
  });

  it('a full member answers MEMBER_BUSY (0xBB); retry off surfaces it, retry standard rides it out', async () => {
    const burst = async (app: HsmSession, handle: number) =>
      Promise.allSettled(Array.from({ length: 40 }, () => app.send({ op: 'sign', handle, mechanism: { name: 'ecdsa', hash: 'sha256' }, data })));
    cluster = await start('in-process', 1, { queueLimit: 2, retry: 'off' });
    let app = await cluster.login('app', 'app-password');
    let pair = await app.send({ op: 'generateKeyPair', keyType: 'ec', curve: 'secp256r1', privateAttributes: { sign: true } });
    const off = await burst(app, pair.privateHandle);
    const busy = off.filter((r) => r.status === 'rejected' && (r.reason as HsmError).code === 'MEMBER_BUSY');
    expect(busy.length).to.be.greaterThan(0);
    expect((busy[0] as PromiseRejectedResult).reason.message).to.match(/0xBB/);
    await cluster.close();

    cluster = await start('in-process', 1, { queueLimit: 8 });
    app = await cluster.login('app', 'app-password');
    pair = await app.send({ op: 'generateKeyPair', keyType: 'ec', curve: 'secp256r1', privateAttributes: { sign: true } });
    const standard = await burst(app, pair.privateHandle);
    expect(standard.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason))).to.deep.equal([]);
    expect(cluster.status()[0]!.counters.retries).to.be.greaterThan(0);
  });

  it(`standard retry mode sends to a busy member ${BUSY_RETRIES + 1} times (${BUSY_RETRIES} retries), then says it is busy`, async () => {
    const busy = new BusyTransport(await createMember({ passwordCost: 10 }));
    const raw = await Cluster.open([{ description: 'busy member', start: async () => busy }]);
    try {
      busy.busy = true;
      const answer = await raw.sendOnce({ op: 'listUsers' });
      expect(answer.ok ? 'answered' : answer.error.code).to.equal('MEMBER_BUSY');
      expect(busy.listUsersSeen).to.equal(4);
      expect(raw.status()[0]!.counters.retries).to.equal(3);
    } finally {
      await raw.close();
    }
  });

  it('a member that stops answering is marked down by the watchdog, and requests go to another', async () => {
    const hanging = new HangingTransport(await createMember({ passwordCost: 10 }));
    const other = new InProcessTransport(await createMember({ passwordCost: 10 }), 1);
    let starts = 0;
    const raw = await Cluster.open(
      [
        { description: 'hanging member', start: async () => (starts++ === 0 ? hanging : Promise.reject(new Error('still hung'))) },
        { description: 'other member', start: async () => other },
      ],
      { requestTimeoutMs: 1000 }, // long enough that the healthy member always answers in time on a loaded machine
    );
    try {
      hanging.hung = true;
      const answers = await Promise.all(Array.from({ length: 10 }, () => raw.sendOnce({ op: 'getHsmInfo' })));
      expect(answers.every((a) => a.ok)).to.equal(true);
      const [first] = raw.status();
      expect(first!.state).to.equal('down');
      expect(first!.reason).to.match(/no answer in 1000 ms|still hung/);
      expect(first!.counters.failovers).to.be.at.least(1);
    } finally {
      await raw.close();
    }
  });

  it('a cluster with a data folder comes back after a restart with its keys and users (no second activation)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'strongroom-durable-cluster-'));
    try {
      cluster = await start('worker', 2, { dataDir });
      let app = await cluster.login('app', 'app-password');
      const { handle } = await app.send({ op: 'generateKey', keyType: 'generic-secret', lengthBytes: 32, attributes: { token: true, sign: true } });
      const tag = (await app.send({ op: 'sign', handle, mechanism: { name: 'hmac', hash: 'sha256' }, data })).signature;
      const clusterId = (await cluster.hsmInfo())[0]!.clusterId;
      // A member that dies comes back with what it had on disk, and is compared, not cloned.
      cluster.killMember(1);
      await cluster.whenAllUp();
      expect((await app.sendToMember(1, { op: 'sign', handle, mechanism: { name: 'hmac', hash: 'sha256' }, data })).signature).to.deep.equal(tag);
      await cluster.close();

      cluster = await start('worker', 2, { dataDir });
      expect((await cluster.hsmInfo()).map((i) => i.clusterId)).to.deep.equal([clusterId, clusterId]);
      app = await cluster.login('app', 'app-password');
      for (let i = 0; i < 2; i++) expect((await app.sendToMember(i, { op: 'sign', handle, mechanism: { name: 'hmac', hash: 'sha256' }, data })).signature).to.deep.equal(tag);
      expect((await cluster.listUsers()).filter((u) => u.username === 'app')).to.have.length(1);
    } finally {
      await cluster?.close();
      cluster = undefined;
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('a restarted cluster takes the member that changed last as its reference: what a member missed while down is not lost', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'strongroom-reference-'));
    try {
      cluster = await start('in-process', 2, { dataDir, keyAvailabilityCheck: false });
      let app = await cluster.login('app', 'app-password');
      cluster.killMember(0, { restart: false });
      const { handle } = await app.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 16, attributes: { token: true, label: 'made while 0 was down' } });
      await cluster.close();
      cluster = await start('in-process', 2, { dataDir });
      app = await cluster.login('app', 'app-password');
      for (let i = 0; i < 2; i++) expect((await app.sendToMember(i, { op: 'getAttributes', handle })).attributes.label).to.equal('made while 0 was down');
    } finally {
      await cluster?.close();
      cluster = undefined;
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('refuses a bad retry mode', async () => {
    const e = await refusal(start('in-process', 1, { retry: 'sometimes' as never }));
    expect(e.code).to.equal('BAD_REQUEST');
    expect(e.message).to.match(/retry/);
  });
});

describe('cluster-client: a worker member under a burst of requests', function () {
  this.timeout(60_000);

  it(`takes a burst in groups of at most ${BATCH_LIMIT.frames} and answers each group as it is done, so the application starts on the first answers while the member makes the rest`, async () => {
    const cluster = await start('worker', 1);
    try {
      const app = await cluster.login('app', 'app-password');
      // Answers that arrive in one message settle in one run of the promise jobs; a tick queued by
      // the first of them runs after the last, before the next message is taken.
      const groups: number[] = [0];
      let ticking = false;
      const burst = 2 * BATCH_LIMIT.frames + 8;
      const answers = Array.from({ length: burst }, (_, i) =>
        app.sendToMember(0, { op: 'digest', hash: 'sha256', data: new Uint8Array([i]) }).then((r) => {
          groups[groups.length - 1]! += 1;
          if (!ticking) {
            ticking = true;
            process.nextTick(() => ((ticking = false), groups.push(0)));
          }
          return r.digest;
        }),
      );
      const digests = await Promise.all(answers);
      expect(digests.map((d) => Buffer.from(d).toString('hex'))).to.deep.equal(Array.from({ length: burst }, (_, i) => createHash('sha256').update(new Uint8Array([i])).digest('hex')));
      expect(groups.slice(0, 3)).to.deep.equal([BATCH_LIMIT.frames, BATCH_LIMIT.frames, 8]);
      await app.logout();
    } finally {
      await cluster.close();
    }
  });
});
