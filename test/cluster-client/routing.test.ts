/**
 * Where the cluster sends a request (cluster.ts: handlesOf and the session's sticky member): a
 * request that names a session key — in any of the fields that name keys — goes to the member
 * that holds it, whatever member the balancing would have picked.
 */
import { expect } from 'chai';
import { type HsmSession, type LocalCluster } from '../../src/index.js';
import { startTestCluster } from '../helpers/cluster.js';

describe('cluster-client: requests that name session keys go to their member', function () {
  this.timeout(60_000);
  let cluster: LocalCluster;
  let app: HsmSession;
  before(async () => {
    cluster = await startTestCluster();
    app = await cluster.login('app', 'app-password');
  });
  after(async () => cluster?.close());

  /** Sends the same request four times: balancing alone would send some of them to another member. */
  const everyTime = async (request: Parameters<HsmSession['send']>[0]) => {
    for (let i = 0; i < 4; i++) await app.send(request);
  };
  const secret = async (attributes: Record<string, unknown>) => (await app.send({ op: 'generateKey', keyType: 'aes', lengthBytes: 32, attributes })).handle;

  it('wrapping, payload and unwrapping keys', async () => {
    const sessionKek = await secret({ wrap: true, unwrap: true });
    const tokenKek = await secret({ token: true, wrap: true });
    const tokenPayload = await secret({ token: true });
    const sessionPayload = await secret({});
    await everyTime({ op: 'wrapKey', mechanism: { name: 'aes-no-pad' }, wrappingHandle: sessionKek, payloadHandle: tokenPayload });
    await everyTime({ op: 'wrapKey', mechanism: { name: 'aes-no-pad' }, wrappingHandle: tokenKek, payloadHandle: sessionPayload });
    const { wrapped } = await app.send({ op: 'wrapKey', mechanism: { name: 'aes-no-pad' }, wrappingHandle: sessionKek, payloadHandle: tokenPayload });
    await everyTime({ op: 'unwrapKey', mechanism: { name: 'aes-no-pad' }, unwrappingHandle: sessionKek, wrapped, keyClass: 'secret-key', keyType: 'aes' });
  });

  it('base keys and ECDH peers', async () => {
    const base = (await app.send({ op: 'generateKey', keyType: 'generic-secret', lengthBytes: 32, attributes: { derive: true } })).handle;
    await everyTime({ op: 'deriveBits', baseHandle: base, mechanism: { name: 'hkdf', hash: 'sha256', salt: new Uint8Array(0), info: new Uint8Array(0) }, lengthBits: 128 });
    const ours = await app.send({ op: 'generateKeyPair', keyType: 'ec', curve: 'secp256r1', privateAttributes: { token: true, derive: true }, publicAttributes: { token: true } });
    const theirs = await app.send({ op: 'generateKeyPair', keyType: 'ec', curve: 'secp256r1' });
    await everyTime({ op: 'deriveBits', baseHandle: ours.privateHandle, mechanism: { name: 'ecdh', publicHandle: theirs.publicHandle } });
    const bits = await app.send({ op: 'deriveBits', baseHandle: ours.privateHandle, mechanism: { name: 'ecdh', publicHandle: theirs.publicHandle } });
    expect(bits.bits).to.have.length(32);
  });
});
