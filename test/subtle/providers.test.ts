/**
 * The door's provider table: what a relay lists as the door's algorithms is exactly what a
 * session's SubtleCrypto has, and the door's shared overrides hold for every provider.
 */
import { expect } from 'chai';
import { doorAlgorithms } from '../../src/subtle/subtle.js';
import { native, openDoor, type DoorFixture } from '../helpers/door.js';

describe('subtle: the provider table', function () {
  this.timeout(30_000);
  let door: DoorFixture;
  before(async () => (door = await openDoor()));
  after(() => door.close());

  it('lists the algorithms a session has, without making a SubtleCrypto', () => {
    const live = (door.subtle as unknown as { providers: { algorithms: string[] } }).providers.algorithms;
    expect(doorAlgorithms()).to.deep.equal([...live].sort());
    expect(doorAlgorithms()).to.include.members(['CLOUDHSM-AES-CMAC', 'AES-GCM', 'ECDSA', 'SHA-256', 'X25519']);
  });

  it('every provider refuses a key of another algorithm with InvalidAccessError', async () => {
    const hmac = await door.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
    const refused = await door.subtle.sign({ name: 'CLOUDHSM-AES-CMAC', length: 128 } as never, hmac as never, new Uint8Array(4)).then(
      () => 'signed',
      (e: Error) => `${e.name}: ${e.message}`,
    );
    expect(refused).to.equal('InvalidAccessError: the key is an HMAC key, not CLOUDHSM-AES-CMAC');
  });

  it('an unknown hash is NotSupportedError wherever a provider checks it, as in Node', async () => {
    const calls: [string, (subtle: typeof door.subtle) => Promise<unknown>][] = [
      ['HMAC import', (subtle) => subtle.importKey('raw', new Uint8Array(32), { name: 'HMAC', hash: 'SHA-999' } as never, false, ['sign'])],
      ['RSA-PSS import', (subtle) => subtle.importKey('spki', new Uint8Array(10), { name: 'RSA-PSS', hash: 'SHA-999' } as never, false, ['verify'])],
      ['HKDF deriveBits', async (subtle) => subtle.deriveBits({ name: 'HKDF', hash: 'SHA-999', salt: new Uint8Array(1), info: new Uint8Array(1) } as never, await subtle.importKey('raw', new Uint8Array(16), 'HKDF', false, ['deriveBits']), 128)],
    ];
    for (const [what, call] of calls) {
      const [ours, node] = await Promise.all([door.subtle, native].map((subtle) => call(subtle).then(() => 'accepted', (e: Error) => e.name)));
      expect([what, ours]).to.deep.equal([what, 'NotSupportedError']);
      expect([what, node]).to.deep.equal([what, 'NotSupportedError']);
    }
  });
});
