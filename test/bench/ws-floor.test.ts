/**
 * The relay table's floor (bench/ws-floor.ts) measures a real round trip only if every answer
 * reaches the call that asked for it, whatever order the server finishes them in.
 */
import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { startWsFloor } from '../../bench/ws-floor.js';
import { seeded, testSeed } from '../helpers/random.js';

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest();

describe('bench: the relay\'s WebSocket floor', () => {
  it('answers each call with its own request\'s result when the server finishes them out of order (seed 2212)', async () => {
    const random = seeded(testSeed(2212));
    const floor = await startWsFloor(
      async (data) => {
        // Some answers wait a few turns of the event loop, so later requests finish first.
        for (let turns = data[0]! % 4; turns > 0; turns--) await new Promise((resolve) => setImmediate(resolve));
        const digest = sha256(data);
        return digest.buffer.slice(digest.byteOffset, digest.byteOffset + digest.length) as ArrayBuffer;
      },
      64,
      32,
    );
    try {
      const requests = Array.from({ length: 200 }, () => new Uint8Array(random.bytes(64)));
      const answers = await Promise.all(requests.map((r) => floor.call(r)));
      for (let i = 0; i < requests.length; i++) expect(Buffer.from(answers[i]!).equals(sha256(requests[i]!)), `answer ${i}`).to.equal(true);
      expect(() => floor.call(new Uint8Array(63))).to.throw(RangeError, "the floor's requests are 64 bytes, not 63");
    } finally {
      await floor.close();
    }
  });
});
