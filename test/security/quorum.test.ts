/**
 * Quorum against one insider with a valid login (issue 14, items 1, 4 and 5): one admin cannot
 * register a token-sign key in another admin's name and so approve alone; no way out of the HSM
 * skips a key's manage-key-quorum-value; and one approval is one use in the whole cluster, even
 * for a client that calls every member directly.
 */
import { expect } from 'chai';
import { type HsmSession, type LocalCluster } from '../../src/index.js';
import { refusal } from '../helpers/refusal.js';
import { approve, startQuorumCluster, twoApproverSigningKey, signDigest, tokenOf, tokenSignKey } from '../helpers/quorum.js';

describe('security: quorum against one insider', function () {
  this.timeout(60_000);
  let cluster: LocalCluster;
  let s: Record<string, HsmSession>;

  before(async () => {
    ({ cluster, sessions: s } = await startQuorumCluster(['admin', 'admin2', 'admin3', 'alice', 'bob']));
    // 2 of 3 admins for user management and for the quorum values themselves.
    await s.admin!.send({ op: 'setQuorumValue', service: 'quorum', value: 2 });
    const { approvalData } = await s.admin!.send({ op: 'generateQuorumToken', service: 'quorum' });
    await s.admin!.send({ op: 'setQuorumValue', service: 'user', value: 2, approval: approve(approvalData, ['admin', 'admin2']) });
  });
  after(() => cluster?.close());

  it('item 1: one admin cannot register a key for another user, so cannot approve in their name', async () => {
    const attacker = s.admin!;
    // The attacker's own key ("mallory"), with a registration token of the attacker's session that it signs.
    const { approvalData: registration } = await attacker.send({ op: 'generateQuorumToken', service: 'registration' });
    const mallory = tokenSignKey('mallory');
    const attempt = {
      op: 'changeMfa',
      username: 'admin2',
      publicKey: mallory.publicPem,
      registration: { approvalData: registration, signature: signDigest(mallory.privateKey, tokenOf(registration)) },
      changeQuorum: true,
    } as const;
    const e = await refusal(attacker.send(attempt));
    expect(e.code).to.equal('QUORUM_APPROVAL_REQUIRED');
    expect((await cluster.listUsers()).find((u) => u.username === 'admin2')).to.include({ mfa: false, quorum: true });

    // So the attacker's "admin2" signatures do not count: no admin is created, no quorum value lowered.
    const { approvalData } = await attacker.send({ op: 'generateQuorumToken', service: 'user' });
    const forged = { approvalData, signatures: [...approve(approvalData, ['admin']).signatures, ...approve(approvalData, ['admin2'], 'mallory').signatures] };
    const create = await refusal(attacker.send({ op: 'createUser', username: 'evil', password: 'evil-password', role: 'admin', approval: forged }));
    expect(create.code).to.equal('QUORUM_TOKEN_INVALID');
    expect(create.message).to.contain('the signature by admin2 does not verify');
    await attacker.send({ op: 'deleteQuorumTokens', service: 'user' });
    const { approvalData: q } = await attacker.send({ op: 'generateQuorumToken', service: 'quorum' });
    const lower = await refusal(attacker.send({ op: 'setQuorumValue', service: 'user', value: 1, approval: { approvalData: q, signatures: [...approve(q, ['admin']).signatures, ...approve(q, ['admin2'], 'mallory').signatures] } }));
    expect(lower.code).to.equal('QUORUM_TOKEN_INVALID');
    await attacker.send({ op: 'deleteQuorumTokens', service: 'quorum' });
    expect((await cluster.listUsers()).map((u) => u.username)).not.to.include('evil');
    for (let i = 0; i < 3; i++) expect((await attacker.sendToMember(i, { op: 'getQuorumSettings' })).values).to.deep.equal({ user: 2, quorum: 2, cluster: 1 });

    // With the user service's approval (two real admins), an admin may set another user's key.
    const { approvalData: reg2 } = await attacker.send({ op: 'generateQuorumToken', service: 'registration' });
    const { approvalData: ok } = await attacker.send({ op: 'generateQuorumToken', service: 'user' });
    const admin3Key = tokenSignKey('admin3');
    await attacker.send({
      op: 'changeMfa',
      username: 'admin3',
      publicKey: admin3Key.publicPem,
      registration: { approvalData: reg2, signature: signDigest(admin3Key.privateKey, tokenOf(reg2)) },
      approval: approve(ok, ['admin', 'admin2']),
    });
    expect((await cluster.listUsers()).find((u) => u.username === 'admin3')).to.include({ mfa: true, quorum: true, clusterCoverage: 'full' });
  });

  it('item 4: exportKey and exportEncryptedKey need the approvals of a key with manage-key-quorum-value 2, as wrapKey does', async () => {
    const alice = s.alice!;
    const { handle } = await alice.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 32, attributes: { token: true, extractable: true, sensitive: false, 'manage-key-quorum-value': 2 } });
    const plain = await refusal(alice.send({ op: 'exportKey', handle, format: 'raw' }));
    expect(plain.code).to.equal('QUORUM_APPROVAL_REQUIRED');
    const { approvalData } = await alice.send({ op: 'generateQuorumToken', service: 'key-management', handle });
    const one = await refusal(alice.send({ op: 'exportKey', handle, format: 'raw', approval: approve(approvalData, ['alice']) }));
    expect(one.message).to.contain('1 valid approval of the 2 needed');

    const pair = await alice.send({
      op: 'generateKeyPair',
      keyType: 'ec',
      curve: 'secp256r1',
      privateAttributes: { token: true, sign: true, extractable: true, 'manage-key-quorum-value': 2 },
      publicAttributes: { token: true, verify: true },
    });
    const encrypted = await refusal(alice.send({ op: 'exportEncryptedKey', handle: pair.privateHandle, password: 'long-enough-password' }));
    expect(encrypted.code).to.equal('QUORUM_APPROVAL_REQUIRED');
    const wrapped = await refusal(
      alice.send({ op: 'wrapKey', mechanism: { name: 'aes-zero-pad' }, wrappingHandle: handle, payloadHandle: pair.privateHandle }),
    );
    expect(wrapped.code).to.equal('ATTRIBUTE_FORBIDS_OPERATION'); // the AES key has wrap=false; the payload's quorum is checked too (test/hsm-core)
  });

  it('item 5: one approval is one signature in the whole cluster, even sent to every member directly', async () => {
    const alice = s.alice!;
    const { privateHandle } = await twoApproverSigningKey(alice, 'bob');
    const { approvalData } = await alice.send({ op: 'generateQuorumToken', service: 'key-usage', handle: privateHandle });
    const approval = approve(approvalData, ['alice', 'bob']);
    const mechanism = { name: 'ecdsa', hash: 'sha256' } as const;
    const outcomes = await Promise.allSettled([0, 1, 2].map((i) => alice.sendToMember(i, { op: 'sign', handle: privateHandle, mechanism, data: new Uint8Array([i]), approval })));
    expect(outcomes.filter((o) => o.status === 'fulfilled')).to.have.length(1);
    const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected').map((o) => (o.reason as { code: string }).code);
    expect(refused).to.deep.equal(['QUORUM_TOKEN_INVALID', 'QUORUM_TOKEN_INVALID']);
    // And once used, it is used everywhere.
    for (let i = 0; i < 3; i++) {
      expect((await refusal(alice.sendToMember(i, { op: 'sign', handle: privateHandle, mechanism, data: new Uint8Array([9]), approval }))).code).to.equal('QUORUM_TOKEN_INVALID');
    }
  });

  it('an approval counts distinct eligible approvers: one person signing twice is one, and only admins (users) or the key\'s users (keys) count', async () => {
    const admin = s.admin!;
    const { approvalData } = await admin.send({ op: 'generateQuorumToken', service: 'user' });
    const create = (approval: ReturnType<typeof approve>) => refusal(admin.send({ op: 'createUser', username: 'twice', password: 'twice-password', role: 'admin', approval }));
    const twice = await create(approve(approvalData, ['admin', 'admin']));
    expect(twice.code).to.equal('QUORUM_APPROVAL_REQUIRED');
    expect(twice.message).to.contain('1 valid approval of the 2 needed');
    const byCryptoUser = await create(approve(approvalData, ['admin', 'alice']));
    expect(byCryptoUser.code).to.equal('QUORUM_TOKEN_INVALID');
    expect(byCryptoUser.message).to.equal('approval: signature by alice: only admins can approve this token');
    await admin.send({ op: 'deleteQuorumTokens', service: 'user' });
    expect((await cluster.listUsers()).map((u) => u.username)).not.to.include('twice');

    const alice = s.alice!;
    const { privateHandle } = await twoApproverSigningKey(alice, 'bob');
    const mechanism = { name: 'ecdsa', hash: 'sha256' } as const;
    const { approvalData: usage } = await alice.send({ op: 'generateQuorumToken', service: 'key-usage', handle: privateHandle });
    const sign = (approval: ReturnType<typeof approve>) => refusal(alice.send({ op: 'sign', handle: privateHandle, mechanism, data: new Uint8Array(8), approval }));
    expect((await sign(approve(usage, ['alice', 'alice']))).message).to.contain('1 valid approval of the 2 needed');
    const byAdmin = await sign(approve(usage, ['alice', 'admin']));
    expect(byAdmin.code).to.equal('QUORUM_TOKEN_INVALID');
    expect(byAdmin.message).to.match(/^approval: signature by admin: only the owner of key 0x[0-9a-f]+ and the users it is shared with can approve this token$/);
    // The token was never consumed by the refusals: the owner and the shared user approve it once.
    await alice.send({ op: 'sign', handle: privateHandle, mechanism, data: new Uint8Array(8), approval: approve(usage, ['alice', 'bob']) });
  });
});
