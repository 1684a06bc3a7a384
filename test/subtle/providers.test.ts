/**
 * The door's provider table: what a relay lists as the door's algorithms is exactly what a
 * session's SubtleCrypto has, and the door's shared overrides hold for every provider.
 */
import { expect } from 'chai';
import { doorAlgorithms } from '../../src/subtle/subtle.js';
import { openDoor, type DoorFixture } from '../helpers/door.js';

describe('subtle: the provider table', function () {
  this.timeout(30_000);
  let door: DoorFixture;
  before(async () => (door = await openDoor()));
  after(() => door.close());

  it('lists the algorithms a session has, without making a SubtleCrypto', () => {
    const live = (door.subtle as unknown as { providers: { algorithms: string[] } }).providers.algorithms;
    expect(doorAlgorithms()).to.deep.equal([...live].sort());
    expect(doorAlgorithms()).to.include.members(['AES-CMAC', 'AES-GCM', 'ECDSA', 'SHA-256', 'X25519']);
  });

  it('every provider refuses a key of another algorithm with InvalidAccessError', async () => {
    const hmac = await door.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
    const refused = await door.subtle.sign({ name: 'AES-CMAC', length: 128 } as never, hmac as never, new Uint8Array(4)).then(
      () => 'signed',
      (e: Error) => `${e.name}: ${e.message}`,
    );
    expect(refused).to.equal('InvalidAccessError: the key is an HMAC key, not AES-CMAC');
  });
});
