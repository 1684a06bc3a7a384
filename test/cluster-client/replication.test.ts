/**
 * How a session's changes reach the other members (cluster.ts: #toOthers, #replicate) when a
 * member does not take a copy: a refusal for a real reason fails the change and names the member
 * and what it refused; a member holding something newer, or one that is gone, does not; a new
 * token key that too few members took is refused as CloudHSM's SDK refuses it, and is copied
 * again when it is next used.
 */
import { expect } from 'chai';
import type { Cluster } from '../../src/cluster-client/index.js';
import { keyRef } from '../../src/hsm-core/index.js';
import { rawCluster, type Refusal, type TestTransport } from '../helpers/raw-cluster.js';

const refuseEverywhere = (transports: TestTransport[], op: string, refusal: Refusal) => transports.forEach((t) => t.refuse.set(op, refusal));
const quota = { code: 'QUOTA_EXCEEDED', message: 'no room for more objects' };

describe('cluster-client: copies the other members do not take', function () {
  this.timeout(30_000);
  let cluster: Cluster;
  let transports: TestTransport[];
  beforeEach(async () => ({ cluster, transports } = await rawCluster(3)));
  afterEach(() => cluster.close());

  it('a user another member refuses fails the change, naming the member, the user and the reason', async () => {
    const admin = await cluster.login('admin', 'admin-password');
    refuseEverywhere(transports, 'insertMaskedUser', quota);
    const err = await admin.send({ op: 'createUser', username: 'bob', password: 'bob-password', role: 'crypto-user' }).then(
      () => expect.fail('createUser succeeded'),
      (e: { code: string; message: string }) => e,
    );
    expect(err.code).to.equal('QUOTA_EXCEEDED');
    expect(err.message).to.match(/^in-process member [0-2] did not take bob: no room for more objects$/);
  });

  it('a changed key another member refuses fails the change, naming the key', async () => {
    const app = await cluster.login('app', 'app-password');
    const { handle } = (await app.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 16, attributes: { token: true, encrypt: true, label: 'k' } })) as { handle: number };
    refuseEverywhere(transports, 'insertMaskedObject', quota);
    const err = await app.send({ op: 'setAttributes', handle, attributes: { label: 'renamed' } }).then(
      () => expect.fail('setAttributes succeeded'),
      (e: { code: string; message: string }) => e,
    );
    expect(err.code).to.equal('QUOTA_EXCEEDED');
    expect(err.message).to.equal(`${err.message.split(' did not')[0]} did not take key ${keyRef(handle)}: no room for more objects`);
  });

  it('changed settings another member refuses fail the change, naming the settings', async () => {
    const admin = await cluster.login('admin', 'admin-password');
    refuseEverywhere(transports, 'insertMaskedSettings', quota);
    const err = await admin.send({ op: 'setQuorumTimeouts', generated: 120 }).then(
      () => expect.fail('setQuorumTimeouts succeeded'),
      (e: { code: string; message: string }) => e,
    );
    expect(err.code).to.equal('QUOTA_EXCEEDED');
    expect(err.message).to.match(/did not take the cluster settings: no room for more objects$/);
  });

  it('a member that holds something newer, or that is gone, does not fail the change', async () => {
    const admin = await cluster.login('admin', 'admin-password');
    refuseEverywhere(transports, 'insertMaskedUser', { code: 'MASKED_OBJECT_STALE', message: 'holds a newer version' });
    expect(await admin.send({ op: 'createUser', username: 'carol', password: 'carol-password', role: 'crypto-user' })).to.include({ username: 'carol' });
    refuseEverywhere(transports, 'insertMaskedUser', { code: 'MEMBER_UNAVAILABLE', message: 'connection reset' });
    expect(await admin.send({ op: 'createUser', username: 'dave', password: 'dave-password', role: 'crypto-user' })).to.include({ username: 'dave' });
    // The members that were "gone" are marked down (and probed back), not left taking requests.
    expect(cluster.status().filter((s) => s.state !== 'up').length).to.be.greaterThan(0);
  });

  it('a new token key that no other member took is refused as unavailable, and is copied when next used', async () => {
    const app = await cluster.login('app', 'app-password');
    refuseEverywhere(transports, 'insertMaskedObject', quota);
    const err = await app.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 16, attributes: { token: true, encrypt: true, decrypt: true } }).then(
      () => expect.fail('generateKey succeeded'),
      (e: { code: string; message: string }) => e,
    );
    expect(err.code).to.equal('KEY_NOT_AVAILABLE');
    const handle = Number.parseInt(/Key 0x([0-9a-f]+) does not meet/.exec(err.message)![1]!, 16);
    expect(err.message).to.equal(`Key ${keyRef(handle)} does not meet the availability requirements - The key must be available on at least 2 HSMs before being used.`);
    // While the others still refuse, using the key is refused the same way.
    const again = await app.send({ op: 'encrypt', handle, mechanism: { name: 'aes-gcm', iv: new Uint8Array(12) }, data: new Uint8Array(4) }).then(
      () => expect.fail('encrypt succeeded'),
      (e: { code: string }) => e,
    );
    expect(again.code).to.equal('KEY_NOT_AVAILABLE');
    // Once they take copies, the next use copies the key and runs.
    transports.forEach((t) => t.refuse.clear());
    const { data } = (await app.send({ op: 'encrypt', handle, mechanism: { name: 'aes-gcm', iv: new Uint8Array(12) }, data: new Uint8Array(4) })) as { data: Uint8Array };
    expect(data.length).to.equal(4 + 16);
    // The use copied it to every member that lacked it.
    const answers = await Promise.all([0, 1, 2].map((i) => app.sendToMember(i, { op: 'getAttributes', handle }).then(() => 'held', (e: { code: string }) => e.code)));
    expect(answers).to.deep.equal(['held', 'held', 'held']);
  });

  it('a new token key the others already hold newer counts as held there', async () => {
    const app = await cluster.login('app', 'app-password');
    refuseEverywhere(transports, 'insertMaskedObject', { code: 'MASKED_OBJECT_STALE', message: 'holds a newer version' });
    const made = (await app.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 16, attributes: { token: true, encrypt: true } })) as { handle: number };
    expect(made.handle).to.be.a('number');
  });
});
