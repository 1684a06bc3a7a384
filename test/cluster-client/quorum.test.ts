/**
 * Quorum (M of N) and MFA token-sign through the API, on a three-member cluster: registration,
 * approvals counted per member, single use, logout, expiry of deletion, key quorum values, MFA
 * login with one token per member, and the same key serving both.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalCluster, type HsmSession, type LocalCluster } from '../../src/index.js';
import { refusal } from '../helpers/refusal.js';
import { approve, registerQuorum, startQuorumCluster, twoApproverSigningKey, signDigest, tokenOf, tokenSignKey } from '../helpers/quorum.js';

describe('cluster-client: quorum and MFA', function () {
  this.timeout(60_000);
  let cluster: LocalCluster;
  let admins: Record<string, HsmSession>;

  before(async () => {
    ({ cluster, sessions: admins } = await startQuorumCluster(['admin', 'admin2', 'admin3']));
  });
  after(() => cluster?.close());

  it('registration shows on every member; defaults are 1/1 and 600/600 s', async () => {
    const users = await cluster.listUsers();
    expect(users.find((u) => u.username === 'admin2')).to.include({ quorum: true, mfa: false, clusterCoverage: 'full' });
    const settings = await admins.admin!.send({ op: 'getQuorumSettings' });
    expect(settings).to.deep.equal({ values: { user: 1, quorum: 1, cluster: 1 }, timeouts: { generated: 600, approved: 600 } });
  });

  it('a registration signed by another key is refused and registers nothing', async () => {
    const { approvalData } = await admins.admin3!.send({ op: 'generateQuorumToken', service: 'registration' });
    const e = await refusal(admins.admin3!.send({
      op: 'registerQuorumKey',
      publicKey: tokenSignKey('someone-else').publicPem,
      registration: { approvalData, signature: signDigest(tokenSignKey('admin3').privateKey, tokenOf(approvalData)) },
    }));
    expect(e.code).to.equal('QUORUM_TOKEN_INVALID');
  });

  it('2 of 3 for user management: refused without approval, with one, and reused; works once with two', async () => {
    const admin = admins.admin!;
    await admin.send({ op: 'setQuorumValue', service: 'user', value: 2 });
    expect((await admin.send({ op: 'getQuorumSettings' })).values.user).to.equal(2);
    const none = await refusal(admin.send({ op: 'createUser', username: 'carol', password: 'carol-password', role: 'crypto-user' }));
    expect(none.code).to.equal('QUORUM_APPROVAL_REQUIRED');
    expect(none.message).to.contain('Quorum approval is required for this operation');

    const { approvalData } = await admin.send({ op: 'generateQuorumToken', service: 'user' });
    expect(approvalData.length).to.equal(72 * 3); // one segment per member
    const twice = await refusal(admin.send({ op: 'generateQuorumToken', service: 'user' }));
    expect(twice.code).to.equal('QUORUM_TOKEN_EXISTS');
    const one = await refusal(admin.send({ op: 'createUser', username: 'carol', password: 'carol-password', role: 'crypto-user', approval: approve(approvalData, ['admin2']) }));
    expect(one.message).to.contain('1 valid approval of the 2 needed');
    const forged = approve(approvalData, ['admin2', 'admin3']);
    forged.signatures[1]!.signature = forged.signatures[0]!.signature;
    expect((await refusal(admin.send({ op: 'createUser', username: 'carol', password: 'carol-password', role: 'crypto-user', approval: forged }))).code).to.equal('QUORUM_TOKEN_INVALID');
    expect((await cluster.listUsers()).map((u) => u.username)).not.to.include('carol');

    const good = approve(approvalData, ['admin2', 'admin3']);
    await admin.send({ op: 'createUser', username: 'carol', password: 'carol-password', role: 'crypto-user', approval: good });
    expect((await cluster.listUsers()).find((u) => u.username === 'carol')?.clusterCoverage).to.equal('full');
    // Single use, on every member: the token's other segments were retired too.
    for (let i = 0; i < 3; i++) {
      const again = await refusal(admin.sendToMember(i, { op: 'deleteUser', username: 'carol', approval: good }));
      expect(again.code).to.equal('QUORUM_TOKEN_INVALID');
    }
    // The member that ran the change logs it (CloudHSM: only the executing HSM does); the others log its arrival.
    const audits = await Promise.all([0, 1, 2].map(async (i) => (await admin.sendToMember(i, { op: 'getAuditLog' })).records.map((r) => r.opcode)));
    expect(audits.filter((a) => a.includes('CN_SET_M_VALUE'))).to.have.length(1);
    expect(audits.filter((a) => a.includes('SR_INSERT_MASKED_SETTINGS'))).to.have.length(2);
    for (const a of audits) expect(a).to.include('CN_GET_TOKEN');
  });

  it('a token dies with its session, and is valid only in it', async () => {
    const admin2 = await cluster.login('admin2', 'admin2-password');
    const { approvalData } = await admin2.send({ op: 'generateQuorumToken', service: 'user' });
    const other = await refusal(admins.admin2!.send({ op: 'deleteUser', username: 'carol', approval: approve(approvalData, ['admin', 'admin3']) }));
    expect(other.message).to.contain('another login session');
    expect((await admin2.send({ op: 'listQuorumTokens' })).tokens.some((t) => t.username === 'admin2')).to.equal(true);
    await admin2.logout();
    expect((await admins.admin!.send({ op: 'listQuorumTokens' })).tokens.some((t) => t.username === 'admin2')).to.equal(false);
  });

  it('raising the quorum service makes its own changes need approval', async () => {
    const admin = admins.admin!;
    await admin.send({ op: 'setQuorumValue', service: 'quorum', value: 2 });
    const e = await refusal(admin.send({ op: 'setQuorumValue', service: 'user', value: 1 }));
    expect(e.code).to.equal('QUORUM_APPROVAL_REQUIRED');
    const { approvalData } = await admin.send({ op: 'generateQuorumToken', service: 'quorum' });
    await admin.send({ op: 'setQuorumValue', service: 'user', value: 1, approval: approve(approvalData, ['admin', 'admin2']) });
    const { approvalData: again } = await admin.send({ op: 'generateQuorumToken', service: 'quorum' });
    await admin.send({ op: 'setQuorumValue', service: 'quorum', value: 1, approval: approve(again, ['admin2', 'admin3']) });
    for (let i = 0; i < 3; i++) expect((await admin.sendToMember(i, { op: 'getQuorumSettings' })).values).to.deep.equal({ user: 1, quorum: 1, cluster: 1 });
    expect((await refusal(admin.send({ op: 'setQuorumValue', service: 'user', value: 4 }))).code).to.equal('QUORUM_VALUE_INVALID');
  });

  it('key quorum: use-key-quorum-value 2 needs the owner and a shared user to approve a signature', async () => {
    const alice = await cluster.login('alice', 'alice-password');
    const bob = await cluster.login('bob', 'bob-password');
    await registerQuorum(alice);
    await registerQuorum(bob);
    const { privateHandle } = await twoApproverSigningKey(alice, 'bob');
    const mechanism = { name: 'ecdsa', hash: 'sha256' } as const;
    const data = new TextEncoder().encode('pay 100');
    expect((await refusal(alice.send({ op: 'sign', handle: privateHandle, mechanism, data }))).code).to.equal('QUORUM_APPROVAL_REQUIRED');
    const { approvalData } = await alice.send({ op: 'generateQuorumToken', service: 'key-usage', handle: privateHandle });
    const { signature } = await alice.send({ op: 'sign', handle: privateHandle, mechanism, data, approval: approve(approvalData, ['alice', 'bob']) });
    expect(signature.length).to.equal(64);
    expect((await refusal(alice.send({ op: 'sign', handle: privateHandle, mechanism, data, approval: approve(approvalData, ['alice', 'bob']) }))).code).to.equal('QUORUM_TOKEN_INVALID');
    const unshare = await refusal(alice.send({ op: 'unshareKey', handle: privateHandle, username: 'bob' }));
    expect(unshare.code).to.equal('QUORUM_VALUE_INVALID');
    const info = await alice.send({ op: 'getAttributes', handle: privateHandle });
    expect(info.attributes['use-key-quorum-value']).to.equal(2);
    await alice.logout();
    await bob.logout();
  });

  it('MFA: login needs one signed token per member; the same key then approves quorum; deregistering removes both', async () => {
    const bob = await cluster.login('bob', 'bob-password');
    const { approvalData } = await bob.send({ op: 'generateQuorumToken', service: 'registration' });
    await bob.send({
      op: 'changeMfa',
      username: 'bob',
      publicKey: tokenSignKey('bob').publicPem,
      registration: { approvalData, signature: signDigest(tokenSignKey('bob').privateKey, tokenOf(approvalData)) },
    });
    await bob.logout();
    expect((await cluster.listUsers()).find((u) => u.username === 'bob')).to.include({ mfa: true, quorum: true });

    expect((await refusal(cluster.login('bob', 'bob-password'))).code).to.equal('MFA_REQUIRED');
    let seen = 0;
    const session = await cluster.login('bob', 'bob-password', {
      mfa: async (tokens) => {
        seen = tokens.length;
        return tokens.map((t) => signDigest(tokenSignKey('bob').privateKey, t));
      },
    });
    expect(seen).to.equal(3);
    const wrong = await refusal(cluster.login('bob', 'bob-password', { mfa: async (tokens) => tokens.map((t) => signDigest(tokenSignKey('alice').privateKey, t)) }));
    expect(wrong.code).to.equal('LOGIN_FAILED');
    expect(wrong.message).to.contain('the MFA token did not verify');
    // A bad MFA signature counts towards the lockout, like a wrong password.
    expect((await cluster.listUsers()).find((u) => u.username === 'bob')).to.include({ failedLogins: 1 });
    await session.send({ op: 'changeMfa', username: 'bob', deregister: true });
    await session.logout();
    expect((await cluster.listUsers()).find((u) => u.username === 'bob')).to.include({ mfa: false, quorum: false });
    const plain = await cluster.login('bob', 'bob-password');
    await plain.logout();
  });

  it('a durable member that was down when a quorum setting changed gets it when it comes back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'strongroom-quorum-repair-'));
    const durable = await startLocalCluster({ members: 3, adminPassword: 'admin-password', passwordCost: 10, dataDir: dir });
    try {
      const admin = await durable.login('admin', 'admin-password');
      durable.killMember(2, { restart: false });
      await admin.send({ op: 'setQuorumTimeouts', generated: 300 });
      durable.restartMember(2);
      await durable.whenAllUp(20_000);
      expect((await admin.sendToMember(2, { op: 'getQuorumSettings' })).timeouts.generated).to.equal(300);
      expect(durable.status()[2]!.counters.repairs).to.be.greaterThan(0);
      await admin.logout();
    } finally {
      await durable.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
