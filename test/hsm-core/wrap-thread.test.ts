/**
 * A backup's key wrap away from the member's thread (mechanisms/wrap-thread.ts): for an in-process
 * member the application's event loop turns while a large payload is wrapped, the wrap is RFC
 * 5649's byte for byte, and no byte of the payload is left on the member's thread. A member with
 * a thread of its own wraps in place and zeroes the payload.
 */
import { createHash, createSecretKey } from 'node:crypto';
import { expect } from 'chai';
import { kwZeroPadUnwrap, kwZeroPadWrap } from '../../src/hsm-core/mechanisms/aes.js';
import { useThreadPool } from '../../src/hsm-core/mechanisms/pool.js';
import { kwZeroPadUnwrapAway, kwZeroPadWrapAway, wrapThreadUse } from '../../src/hsm-core/mechanisms/wrap-thread.js';
import { refusal, rejection } from '../helpers/refusal.js';
import { turnCounter } from '../helpers/turns.js';
import { startLocalCluster } from '../../src/index.js';

/** Bytes that are the same in every run: SHAKE256 of a label. */
const seededBytes = (label: string, length: number) => createHash('shake256', { outputLength: length }).update(label).digest();

const key = createSecretKey(seededBytes('wrap-thread key', 32));
/** A payload of its own buffer: 1 MiB, about the content of a backup of 10,000 AES keys. */
const payload = () => new Uint8Array(seededBytes('wrap-thread payload', 1 << 20));

/** `call`'s answer, once checked that it went to the wrap thread and that the event loop turned meanwhile. */
async function onTheThread<T>(what: string, call: () => Promise<T>): Promise<T> {
  const before = wrapThreadUse();
  const counter = turnCounter();
  const value = await call();
  counter.stop();
  expect(counter.turns(), `turns of the event loop during the ${what}`).to.be.greaterThan(0);
  expect(wrapThreadUse()).to.deep.equal({ away: before.away + 1, here: before.here });
  return value;
}

describe('hsm-core: a backup\'s key wrap on a thread of its own', function () {
  this.timeout(60_000);

  it('lets the event loop turn while it wraps, gives RFC 5649\'s bytes, and leaves none of the payload here', async () => {
    const data = payload();
    const expected = kwZeroPadWrap(key, payload());
    const wrapped = await onTheThread('wrap', () => kwZeroPadWrapAway(key, data));
    expect(Buffer.compare(wrapped, expected)).to.equal(0);
    expect(Buffer.compare(kwZeroPadUnwrap(key, wrapped), Buffer.from(payload()))).to.equal(0);
    // The payload's buffer went to the thread: nothing of it is readable here.
    expect(data.byteLength).to.equal(0);
  });

  it('unwraps there too, letting the event loop turn, and refuses an altered wrap as an unwrap in place does', async () => {
    const wrapped = kwZeroPadWrap(key, payload());
    const plain = await onTheThread('unwrap', () => kwZeroPadUnwrapAway(key, wrapped));
    expect(Buffer.compare(plain, Buffer.from(payload()))).to.equal(0);
    // The answer is a buffer of its own, and the wrapped bytes given are left as they were.
    expect(plain.byteLength).to.equal(plain.buffer.byteLength);
    expect(Buffer.compare(wrapped, kwZeroPadWrap(key, payload()))).to.equal(0);

    wrapped[1000] ^= 1;
    const there = await refusal(kwZeroPadUnwrapAway(key, wrapped));
    const here = await refusal(() => kwZeroPadUnwrap(key, wrapped));
    expect([there.code, there.message]).to.deep.equal(['DECRYPTION_FAILED', here.message]);
  });

  it("an in-process cluster's new member joins through it: the backup is wrapped and unwrapped there, and the member holds the keys", async () => {
    const cluster = await startLocalCluster({ adminPassword: 'admin-password', passwordCost: 10, users: [{ username: 'app', password: 'app-password', role: 'crypto-user' }] });
    try {
      const app = await cluster.login('app', 'app-password');
      const { handle } = await app.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 32, attributes: { token: true, label: 'joins', encrypt: true } });
      // The members' own copy of the module: the cluster loads hsm-core with import(), which under
      // mocha is not the copy this file's imports give.
      const { wrapThreadUse: membersUse } = await import('../../src/hsm-core/mechanisms/wrap-thread.js');
      const before = membersUse();
      const index = await cluster.addMember();
      expect(membersUse().away - before.away, 'a wrap and an unwrap').to.equal(2);
      expect((await app.sendToMember(index, { op: 'getAttributes', handle })).attributes.label).to.equal('joins');
      await app.logout();
    } finally {
      await cluster.close();
    }
  });

  it('wraps in place, and zeroes the payload, for a member with a thread of its own', async () => {
    useThreadPool(false);
    try {
      const data = payload();
      const before = wrapThreadUse();
      const wrapped = await kwZeroPadWrapAway(key, data);
      expect(wrapThreadUse()).to.deep.equal({ away: before.away, here: before.here + 1 });
      expect(Buffer.compare(wrapped, kwZeroPadWrap(key, payload()))).to.equal(0);
      expect(data.byteLength).to.equal(1 << 20);
      expect(data.every((b) => b === 0)).to.equal(true);
    } finally {
      useThreadPool(true);
    }
  });

  it('refuses a payload that is a view into a larger buffer, which it could not hand over whole', async () => {
    const shared = payload();
    const refused = await rejection(kwZeroPadWrapAway(key, shared.subarray(8)));
    expect(refused.message).to.equal('kwZeroPadWrapAway: the payload must own its whole buffer');
    expect(shared.byteLength).to.equal(1 << 20);
  });
});
