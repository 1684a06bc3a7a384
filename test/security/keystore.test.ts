/**
 * KeyStore alias squatting (issue 14, item 8): labels are not unique, and another user can share a
 * key under the label the victim uses. `getKey` takes the session user's own key, and refuses an
 * alias that only several other users' keys carry, naming their owners.
 */
import 'reflect-metadata';
import { expect } from 'chai';
import { startLocalCluster, type HsmSession, type LocalCluster } from '../../src/index.js';
import { KeyStore } from '../../src/keystore/index.js';
import { refusal } from '../helpers/refusal.js';

describe('security: KeyStore aliases', function () {
  this.timeout(30_000);
  let cluster: LocalCluster;
  const s: Record<string, HsmSession> = {};

  before(async () => {
    cluster = await startLocalCluster({
      adminPassword: 'admin-password',
      passwordCost: 10,
      users: ['alice', 'mallory', 'trudy'].map((username) => ({ username, password: `${username}-password`, role: 'crypto-user' as const })),
    });
    for (const name of ['alice', 'mallory', 'trudy']) s[name] = await cluster.login(name, `${name}-password`);
  });
  after(() => cluster?.close());

  /** An HMAC key labelled `label`, owned by `owner`, shared with alice when `owner` is someone else. */
  async function hmacKey(owner: string, label: string): Promise<number> {
    const { handle } = await s[owner]!.send({ op: 'generateKey', keyType: 'generic-secret', lengthBytes: 32, attributes: { token: true, sign: true, verify: true, label } });
    if (owner !== 'alice') await s[owner]!.send({ op: 'shareKey', handle, username: 'alice' });
    return handle;
  }

  const data = new TextEncoder().encode('pay 100 to bob');
  const tag = async (handle: number) => (await s.alice!.send({ op: 'sign', handle, mechanism: { name: 'hmac', hash: 'sha256' }, data })).signature;

  it('item 8: getKey gives the user their own key, not one another user shared under the same label', async () => {
    const squatter = await hmacKey('mallory', 'payments-key');
    const own = await hmacKey('alice', 'payments-key');
    const ks = KeyStore.getInstance('CloudHSM', s.alice!);
    await ks.load(null, null);
    const key = await ks.getKey('payments-key', { name: 'HMAC', hash: 'SHA-256' });
    const signature = new Uint8Array(await s.alice!.crypto.subtle.sign('HMAC', key as never, data));
    expect(signature).to.deep.equal(await tag(own));
    expect(signature).not.to.deep.equal(await tag(squatter));
  });

  it('item 8: an alias only other users\' keys carry, from several owners, is refused with their names', async () => {
    await hmacKey('mallory', 'invoices-key');
    await hmacKey('trudy', 'invoices-key');
    const ks = KeyStore.getInstance('CloudHSM', s.alice!);
    await ks.load(null, null);
    const e = await refusal(ks.getKey('invoices-key'));
    expect(e.message).to.equal('alias invoices-key is ambiguous: alice owns no key with that label, and 2 keys shared with them have it (owned by mallory, trudy); use a label of your own');
    // One shared key of one owner is still found: sharing a key with someone is how they use it.
    const shared = await hmacKey('trudy', 'shared-key');
    const key = await ks.getKey('shared-key', { name: 'HMAC', hash: 'SHA-256' });
    expect(new Uint8Array(await s.alice!.crypto.subtle.sign('HMAC', key as never, data))).to.deep.equal(await tag(shared));
  });
});
